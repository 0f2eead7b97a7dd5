/* bench_train.c -- the time of one training step (forward, backward, SGD
 * update), kiln compiled (JIT) against PyTorch on the CPU, measured in the
 * same run: an MLP 64-128-10 and a small CNN (2 x (conv3x3 + ReLU +
 * maxpool 2) then a dense layer, on 8x8x1 inputs), batches 32 and 128, on 1
 * and 2 threads (torch.set_num_threads and kiln's session threads).
 * Softmax cross-entropy and plain SGD (lr 0.01) in both. Median of timed
 * steps after a warm-up; ratio = PyTorch / kiln (above 1: kiln is faster).
 * PyTorch runs as /usr/bin/python3 (override with $KILN_BENCH_PYTHON) on a
 * script written to a temporary file, one process per configuration,
 * alternating with kiln's; without torch only kiln is shown. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kiln.h"

enum { MLP = 0, CNN = 1 };
static const char *const model_names[2] = {"MLP 64-128-10",
                                           "CNN 2x(conv3x3-relu-pool) + dense, 8x8x1"};
static const int batches[2] = {32, 128};
static const int iters[2] = {200, 100};

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static kiln_value var(kiln_graph *g, int rank, const int64_t *dims, uint64_t seed)
{
    kiln_tensor *t = seed ? kiln_init_he_uniform(KILN_F32, rank, dims, seed, NULL)
                          : kiln_init_zeros(KILN_F32, rank, dims, NULL);
    kiln_value v = kiln_variable(g, NULL, t);
    kiln_tensor_free(t);
    return v;
}

static kiln_value build_mlp(kiln_graph *g, kiln_value x)
{
    kiln_value h = kiln_relu(g, kiln_add(g, kiln_matmul(g, x, var(g, 2, (int64_t[]){64, 128}, 1)),
                                         var(g, 1, (int64_t[]){128}, 0)));
    return kiln_add(g, kiln_matmul(g, h, var(g, 2, (int64_t[]){128, 10}, 2)),
                    var(g, 1, (int64_t[]){10}, 0));
}

static kiln_value build_cnn(kiln_graph *g, kiln_value x)
{
    kiln_conv2d_options o;
    kiln_conv2d_options_init(&o);
    o.pads[0] = o.pads[1] = o.pads[2] = o.pads[3] = 1;
    kiln_pool2d_options p;
    kiln_pool2d_options_init(&p, 2, 2);
    p.strides[0] = p.strides[1] = 2;
    kiln_value h =
        kiln_conv2d(g, x, var(g, 4, (int64_t[]){8, 1, 3, 3}, 3), var(g, 1, (int64_t[]){8}, 0), &o);
    h = kiln_max_pool2d(g, kiln_relu(g, h), &p); /* [B, 8, 4, 4] */
    h = kiln_conv2d(g, h, var(g, 4, (int64_t[]){16, 8, 3, 3}, 4), var(g, 1, (int64_t[]){16}, 0),
                    &o);
    h = kiln_max_pool2d(g, kiln_relu(g, h), &p); /* [B, 16, 2, 2] */
    h = kiln_flatten(g, h, 1);
    return kiln_add(g, kiln_matmul(g, h, var(g, 2, (int64_t[]){64, 10}, 5)),
                    var(g, 1, (int64_t[]){10}, 0));
}

/* Median milliseconds of one kiln training step; < 0 on error. */
static double kiln_step_ms(int model, int batch, int threads)
{
    double result = -1;
    kiln_status *st = kiln_status_new();
    kiln_graph *g = kiln_graph_new();
    kiln_session *s = NULL;
    int64_t xdims[4] = {batch, 64, 0, 0};
    int xrank = 2;
    if (model == CNN) {
        xdims[1] = 1;
        xdims[2] = xdims[3] = 8;
        xrank = 4;
    }
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, xrank, xdims);
    kiln_value y = kiln_placeholder(g, "y", KILN_I64, 1, (int64_t[]){batch});
    kiln_value logits = model == MLP ? build_mlp(g, x) : build_cnn(g, x);
    kiln_value loss = kiln_loss_softmax_cross_entropy(g, logits, y, KILN_REDUCTION_MEAN);
    kiln_optimizer opt;
    kiln_optimizer_init(&opt, KILN_OPTIMIZER_SGD, 0.01);
    kiln_value train = kiln_minimize(g, loss, &opt, st);
    kiln_tensor *xv = kiln_init_uniform(KILN_F32, xrank, xdims, -1, 1, 9, NULL);
    kiln_tensor *yv = kiln_tensor_new(KILN_I64, 1, (int64_t[]){batch});
    double *times = malloc(sizeof(double) * (size_t)iters[model]);
    if (!kiln_value_ok(train) || !xv || !yv || !times) {
        fprintf(stderr, "bench_train: building: %s %s\n", kiln_status_message(st),
                kiln_graph_error(g) ? kiln_graph_error(g) : "");
        goto done;
    }
    for (int i = 0; i < batch; i++) ((int64_t *)kiln_tensor_data(yv))[i] = i % 10;
    kiln_session_options so;
    kiln_session_options_init(&so);
    so.threads = threads;
    s = kiln_session_new(g, &so, st);
    if (!s) {
        fprintf(stderr, "bench_train: session: %s\n", kiln_status_message(st));
        goto done;
    }
    kiln_value phs[2] = {x, y};
    kiln_tensor *feeds[2] = {xv, yv};
    for (int i = -10; i < iters[model]; i++) {
        kiln_tensor *l = NULL;
        double t0 = now();
        kiln_session_run(s, phs, feeds, 2, &loss, &l, 1, &train, 1, st);
        double t1 = now();
        kiln_tensor_free(l);
        if (kiln_status_code(st)) {
            fprintf(stderr, "bench_train: run: %s\n", kiln_status_message(st));
            goto done;
        }
        if (i >= 0) times[i] = t1 - t0;
    }
    qsort(times, (size_t)iters[model], sizeof(double), cmp);
    result = times[iters[model] / 2] * 1e3;
done:
    free(times);
    kiln_tensor_free(xv);
    kiln_tensor_free(yv);
    kiln_session_free(s);
    kiln_graph_free(g);
    kiln_status_free(st);
    return result;
}

/* The same step in PyTorch, for the model, batch and thread count given
 * as arguments; prints the median ms. */
static const char torch_script[] =
    "import sys, time, torch\n"
    "import torch.nn as nn\n"
    "model, batch, threads = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])\n"
    "torch.set_num_threads(threads)\n"
    "torch.set_num_interop_threads(1)\n"
    "torch.manual_seed(0)\n"
    "if model == 0:\n"
    "    net, shape, iters = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10)), "
    "(64,), 200\n"
    "else:\n"
    "    net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),\n"
    "        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), "
    "nn.Linear(64, 10))\n"
    "    shape, iters = (1, 8, 8), 100\n"
    "opt = torch.optim.SGD(net.parameters(), lr=0.01)\n"
    "lossf = nn.CrossEntropyLoss()\n"
    "x = torch.rand((batch,) + shape) * 2 - 1\n"
    "y = torch.arange(batch) % 10\n"
    "times = []\n"
    "for i in range(-10, iters):\n"
    "    t0 = time.perf_counter()\n"
    "    opt.zero_grad(set_to_none=True)\n"
    "    loss = lossf(net(x), y)\n"
    "    loss.backward()\n"
    "    opt.step()\n"
    "    loss.item()\n"
    "    t1 = time.perf_counter()\n"
    "    if i >= 0: times.append(t1 - t0)\n"
    "times.sort()\n"
    "print(times[len(times) // 2] * 1e3, flush=True)\n";

/* The script, written once to a temporary file (path[0] = 0 on failure). */
static char script_path[64];

static void write_script(void)
{
    snprintf(script_path, sizeof script_path, "/tmp/kiln_bench_train_XXXXXX");
    int fd = mkstemp(script_path);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        if (fd >= 0) {
            close(fd);
            unlink(script_path);
        }
        script_path[0] = 0;
        return;
    }
    fputs(torch_script, f);
    fclose(f);
}

/* Median ms of one PyTorch step, or -1 when PyTorch could not be run. The
 * thread-count variables keep OpenMP and BLAS pools at the same size. */
static double torch_step_ms(int model, int batch, int threads)
{
    if (!script_path[0]) return -1;
    const char *py = getenv("KILN_BENCH_PYTHON");
    char cmd[512];
    snprintf(
        cmd, sizeof cmd,
        "OMP_NUM_THREADS=%d OPENBLAS_NUM_THREADS=%d MKL_NUM_THREADS=%d %s %s %d %d %d 2>/dev/null",
        threads, threads, threads, py ? py : "/usr/bin/python3", script_path, model, batch,
        threads);
    FILE *p = popen(cmd, "r");
    double t = -1;
    if (p) {
        if (fscanf(p, "%lf", &t) != 1) t = -1;
        pclose(p);
    }
    return t;
}

int main(void)
{
    write_script();
    printf("Training step (forward + backward + SGD), median ms; ratio = PyTorch / kiln "
           "(above 1: kiln faster)\n\n");
    printf(
        "| model | batch | threads | kiln ms | PyTorch ms | ratio |\n|---|---|---|---|---|---|\n");
    /* kiln and PyTorch alternate per configuration, so that both see the
     * same load on a shared machine. */
    for (int threads = 1; threads <= 2; threads++)
        for (int model = 0; model < 2; model++)
            for (int b = 0; b < 2; b++) {
                double t = torch_step_ms(model, batches[b], threads);
                double k = kiln_step_ms(model, batches[b], threads);
                if (k < 0) {
                    if (script_path[0]) unlink(script_path);
                    return 1;
                }
                if (t > 0)
                    printf("| %s | %d | %d | %.3f | %.3f | %.2f |\n", model_names[model],
                           batches[b], threads, k, t, t / k);
                else
                    printf("| %s | %d | %d | %.3f | (no torch) | |\n", model_names[model],
                           batches[b], threads, k);
                fflush(stdout);
            }
    if (script_path[0]) unlink(script_path);
    return 0;
}
