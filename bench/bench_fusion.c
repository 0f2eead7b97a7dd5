/* bench_fusion.c -- the effect of the graph passes (fusion above all) on an
 * MLP and a small CNN: the same graph in two sessions, one with no graph
 * passes and one with the default pipeline (both with LLVM -O2), timed
 * alternately in one run; prints the median latencies and their ratio.
 * (-O0, which also turns LLVM's optimizations off, is shown for scale.) */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "kiln.h"

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

static kiln_value weight(kiln_graph *g, int rank, const int64_t *dims, unsigned seed)
{
    kiln_tensor *t = kiln_tensor_new(KILN_F32, rank, dims);
    float *d = kiln_tensor_data(t);
    srand(seed);
    for (size_t i = 0; i < kiln_tensor_size(t); i++) d[i] = ((float)rand() / (float)RAND_MAX - 0.5f) * 0.1f;
    kiln_value v = kiln_constant(g, NULL, t);
    kiln_tensor_free(t);
    return v;
}

/* 784-512-512-10 with bias, GELU, a residual add and a softmax. */
static kiln_value mlp(kiln_graph *g, kiln_value x)
{
    kiln_value h = kiln_gelu(g, kiln_add(g, kiln_matmul(g, x, weight(g, 2, (int64_t[]){784, 512}, 1)), weight(g, 1, (int64_t[]){512}, 2)));
    kiln_value h2 = kiln_gelu(g, kiln_add(g, kiln_matmul(g, h, weight(g, 2, (int64_t[]){512, 512}, 3)), weight(g, 1, (int64_t[]){512}, 4)));
    h2 = kiln_add(g, h2, h);
    return kiln_softmax(g, kiln_add(g, kiln_matmul(g, h2, weight(g, 2, (int64_t[]){512, 10}, 5)), weight(g, 1, (int64_t[]){10}, 6)), -1);
}

/* (conv3x3 + bias + relu, maxpool) x 2, then a dense layer. */
static kiln_value cnn(kiln_graph *g, kiln_value x)
{
    kiln_conv2d_options o;
    kiln_conv2d_options_init(&o);
    o.pads[0] = o.pads[1] = o.pads[2] = o.pads[3] = 1;
    kiln_pool2d_options p;
    kiln_pool2d_options_init(&p, 2, 2);
    p.strides[0] = p.strides[1] = 2;
    kiln_value h = kiln_conv2d(g, x, weight(g, 4, (int64_t[]){32, 3, 3, 3}, 7), kiln_value_invalid(), &o);
    h = kiln_max_pool2d(g, kiln_relu(g, kiln_add(g, h, weight(g, 3, (int64_t[]){32, 1, 1}, 8))), &p);
    h = kiln_conv2d(g, h, weight(g, 4, (int64_t[]){64, 32, 3, 3}, 9), kiln_value_invalid(), &o);
    h = kiln_max_pool2d(g, kiln_relu(g, kiln_add(g, h, weight(g, 3, (int64_t[]){64, 1, 1}, 10))), &p);
    h = kiln_flatten(g, h, 1);
    return kiln_add(g, kiln_matmul(g, h, weight(g, 2, (int64_t[]){64 * 8 * 8, 10}, 11)), weight(g, 1, (int64_t[]){10}, 12));
}

/* Reductions of elementwise expressions: the prologue fuses into the reduce
 * kernel when the innermost dim is reduced, so the expression's result is
 * never written out; over an outer dim it stays unfused. */
static kiln_value sum_squares(kiln_graph *g, kiln_value x)
{
    return kiln_reduce_sum(g, kiln_mul(g, x, x), (int64_t[]){1}, 1, 0);
}

static kiln_value mean_exp_rows(kiln_graph *g, kiln_value x)
{
    return kiln_reduce_mean(g, kiln_exp(g, kiln_neg(g, kiln_abs(g, x))), (int64_t[]){1}, 1, 0);
}

static kiln_value sum_squares_cols(kiln_graph *g, kiln_value x)
{
    return kiln_reduce_sum(g, kiln_mul(g, x, x), (int64_t[]){0}, 1, 0);
}

static void bench(const char *name, kiln_value (*build)(kiln_graph *, kiln_value), int rank, const int64_t *dims, int iters)
{
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, rank, dims);
    kiln_value y = build(g, x);
    if (kiln_graph_error(g)) {
        fprintf(stderr, "%s: %s\n", name, kiln_graph_error(g));
        exit(1);
    }
    kiln_status *st = kiln_status_new();
    kiln_session *s[3];
    for (int k = 0; k < 3; k++) {
        kiln_session_options o;
        kiln_session_options_init(&o);
        o.passes = k == 0 ? "" : NULL;
        o.threads = 1; /* one core: the ratio is not at the mercy of a busy second core */
        o.opt_level = k == 2 ? 0 : 2;
        s[k] = kiln_session_new(g, &o, st);
    }
    kiln_tensor *in = kiln_tensor_new(KILN_F32, rank, dims);
    double *t[3] = {malloc(sizeof(double) * (size_t)iters), malloc(sizeof(double) * (size_t)iters),
                    malloc(sizeof(double) * (size_t)iters)};
    for (int it = -3; it < iters; it++)
        for (int k = 0; k < 3; k++) {
            if (k == 2 && it >= iters / 4) continue; /* -O0 is slow: fewer runs */
            kiln_tensor *out = NULL;
            double t0 = now();
            kiln_session_run(s[k], &x, &in, 1, &y, &out, 1, NULL, 0, st);
            double dt = now() - t0;
            if (kiln_status_code(st)) {
                fprintf(stderr, "%s: %s\n", name, kiln_status_message(st));
                exit(1);
            }
            kiln_tensor_free(out);
            if (it >= 0) t[k][it] = dt;
        }
    int q = iters / 4 > 0 ? iters / 4 : 1;
    qsort(t[0], (size_t)iters, sizeof(double), cmp);
    qsort(t[1], (size_t)iters, sizeof(double), cmp);
    qsort(t[2], (size_t)q, sizeof(double), cmp);
    double m0 = t[0][iters / 2], m2 = t[1][iters / 2], mo = t[2][q / 2];
    printf("%-34s no passes %8.3f ms  default %8.3f ms  ratio x%.2f   (-O0 %8.3f ms)\n", name, m0 * 1e3, m2 * 1e3,
           m0 / m2, mo * 1e3);
    for (int k = 0; k < 3; k++) {
        free(t[k]);
        kiln_session_free(s[k]);
    }
    kiln_tensor_free(in);
    kiln_status_free(st);
    kiln_graph_free(g);
}

int main(void)
{
    printf("graph passes: median latency over alternating runs, one thread\n");
    bench("MLP 784-512-512-10, b=64", mlp, 2, (int64_t[]){64, 784}, 200);
    bench("MLP 784-512-512-10, b=1", mlp, 2, (int64_t[]){1, 784}, 500);
    bench("CNN 2x(conv3x3+relu+pool), b=16", cnn, 4, (int64_t[]){16, 3, 32, 32}, 50);
    bench("ReduceSum(x*x, 1), 512x4096", sum_squares, 2, (int64_t[]){512, 4096}, 100);
    bench("ReduceMean(exp(-|x|), 1), 512x4096", mean_exp_rows, 2, (int64_t[]){512, 4096}, 100);
    bench("ReduceSum(x*x, 0), 4096x512", sum_squares_cols, 2, (int64_t[]){4096, 512}, 100);
    return 0;
}
