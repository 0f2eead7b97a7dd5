/* digits.c -- classifying the 8x8 handwritten digits of scikit-learn
 * (1797 images, 64 pixels and a label per CSV line) with kiln, from data
 * to a deployed shared object:
 *
 *  1. load the CSV (gzip'd; kiln_dataset_read_csv decompresses it), split
 *     it 80/20 with a seed and standardize the pixels (fitted on train);
 *  2. train an MLP (64-64-10) and a small CNN (Conv-Relu-MaxPool twice,
 *     then Dense) with Adam through kiln_minimize, compiled by the JIT,
 *     shuffling every epoch; each graph has a training branch (a static
 *     batch) and an inference branch sharing its variables (any batch);
 *  3. freeze the trained CNN (kiln_graph_freeze: variables become
 *     constants, training nodes go), save it as a .kiln file, compile that
 *     file to a shared object with a C header (what `kiln compile` does),
 *     load the .so with kiln_session_load and check that it classifies the
 *     test set exactly as the training session did.
 *
 * Exits non-zero when the MLP's test accuracy is under 95%, the CNN's
 * under 97%, or the .so disagrees. `--quick` trains fewer epochs (the
 * test suite runs it); see --help for the options. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kiln.h"

#define DEFAULT_DATA "/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz"
#define CLASSES 10
#define MLP_THRESHOLD 0.95
#define CNN_THRESHOLD 0.97
#define C1 32 /* channels of the first and second convolution */
#define C2 32
#define MLP_LR 1e-3 /* Adam's learning rates */
#define CNN_LR 3e-3

typedef struct {
    const char *data, *out;
    int mlp_epochs, cnn_epochs;
    int64_t batch;
    uint64_t seed;
} options;

/* One network: the variables, a training branch on a static batch and an
 * inference branch (x of any batch) sharing them. */
typedef struct {
    kiln_graph *g;
    kiln_session *s;
    kiln_value x, y, loss, logits, train; /* training */
    kiln_value x_eval, logits_eval;       /* inference */
    kiln_value p[6];                      /* parameters */
    int np;
} model;

typedef kiln_value (*forward_fn)(kiln_graph *g, kiln_value x, const kiln_value *p);

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* A variable initialized by He (weights) or zeros (biases). */
static kiln_value param(kiln_graph *g, const char *name, int rank, const int64_t *dims,
                        uint64_t seed, kiln_status *st)
{
    kiln_tensor *t = rank > 1 ? kiln_init_he_uniform(KILN_F32, rank, dims, seed, st)
                              : kiln_init_zeros(KILN_F32, rank, dims, st);
    kiln_value v = t ? kiln_variable(g, name, t) : kiln_value_invalid();
    kiln_tensor_free(t);
    return v;
}

static kiln_value dense(kiln_graph *g, kiln_value x, kiln_value w, kiln_value b)
{
    return kiln_add(g, kiln_matmul(g, x, w), b);
}

static kiln_value mlp_forward(kiln_graph *g, kiln_value x, const kiln_value *p)
{
    return dense(g, kiln_relu(g, dense(g, x, p[0], p[1])), p[2], p[3]);
}

static kiln_value conv_block(kiln_graph *g, kiln_value x, kiln_value w, kiln_value b)
{
    kiln_conv2d_options c;
    kiln_conv2d_options_init(&c);
    for (int i = 0; i < 4; i++) c.pads[i] = 1; /* 3x3, same size */
    kiln_pool2d_options pool;
    kiln_pool2d_options_init(&pool, 2, 2);
    pool.strides[0] = pool.strides[1] = 2;
    return kiln_max_pool2d(g, kiln_relu(g, kiln_conv2d(g, x, w, b, &c)), &pool);
}

/* [n, 64] -> [n, 1, 8, 8] -> conv C1 -> pool -> [n, C1, 4, 4] -> conv C2 ->
 * pool -> [n, C2, 2, 2] -> [n, 4 C2] -> dense 10. */
static kiln_value cnn_forward(kiln_graph *g, kiln_value x, const kiln_value *p)
{
    kiln_value img = kiln_reshape(g, x, (int64_t[]){-1, 1, 8, 8}, 4);
    kiln_value h = conv_block(g, conv_block(g, img, p[0], p[1]), p[2], p[3]);
    return dense(g, kiln_flatten(g, h, 1), p[4], p[5]);
}

static int build(model *m, const char *kind, int64_t batch, uint64_t seed, double lr,
                 kiln_status *st)
{
    kiln_graph *g = m->g = kiln_graph_new();
    if (!g) return fprintf(stderr, "out of memory\n"), 1;
    forward_fn fwd;
    if (!strcmp(kind, "mlp")) {
        m->p[0] = param(g, "w1", 2, (int64_t[]){64, 64}, seed, st);
        m->p[1] = param(g, "b1", 1, (int64_t[]){64}, 0, st);
        m->p[2] = param(g, "w2", 2, (int64_t[]){64, CLASSES}, seed + 1, st);
        m->p[3] = param(g, "b2", 1, (int64_t[]){CLASSES}, 0, st);
        m->np = 4;
        fwd = mlp_forward;
    } else {
        m->p[0] = param(g, "conv1_w", 4, (int64_t[]){C1, 1, 3, 3}, seed, st);
        m->p[1] = param(g, "conv1_b", 1, (int64_t[]){C1}, 0, st);
        m->p[2] = param(g, "conv2_w", 4, (int64_t[]){C2, C1, 3, 3}, seed + 1, st);
        m->p[3] = param(g, "conv2_b", 1, (int64_t[]){C2}, 0, st);
        m->p[4] = param(g, "fc_w", 2, (int64_t[]){C2 * 4, CLASSES}, seed + 2, st);
        m->p[5] = param(g, "fc_b", 1, (int64_t[]){CLASSES}, 0, st);
        m->np = 6;
        fwd = cnn_forward;
    }
    /* Training: a static batch (gradients of a mean need static shapes). */
    m->x = kiln_placeholder(g, "x_train", KILN_F32, 2, (int64_t[]){batch, 64});
    m->y = kiln_placeholder(g, "y_train", KILN_I64, 1, &batch);
    m->logits = fwd(g, m->x, m->p);
    m->loss = kiln_loss_softmax_cross_entropy(g, m->logits, m->y, KILN_REDUCTION_MEAN);
    /* Inference: any batch; what is frozen and deployed. */
    m->x_eval = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){-1, 64});
    m->logits_eval = kiln_name(g, fwd(g, m->x_eval, m->p), "logits");
    kiln_graph_set_outputs(g, &m->logits_eval, 1);
    if (kiln_graph_error(g)) return fprintf(stderr, "%s: %s\n", kind, kiln_graph_error(g)), 1;

    kiln_optimizer opt;
    kiln_optimizer_init(&opt, KILN_OPTIMIZER_ADAM, lr);
    m->train = kiln_minimize(g, m->loss, &opt, st); /* before the session */
    if (!kiln_value_ok(m->train)) return fprintf(stderr, "%s: %s\n", kind, kiln_status_message(st)), 1;
    m->s = kiln_session_new(g, NULL, st);
    if (!m->s) return fprintf(stderr, "%s: %s\n", kind, kiln_status_message(st)), 1;
    return 0;
}

static void model_free(model *m)
{
    kiln_session_free(m->s);
    kiln_graph_free(m->g);
    memset(m, 0, sizeof *m);
}

static int64_t argmax_row(const float *row)
{
    int64_t best = 0;
    for (int64_t c = 1; c < CLASSES; c++)
        if (row[c] > row[best]) best = c;
    return best;
}

/* Correct predictions among logits [n, CLASSES] against labels; writes the
 * predicted classes to pred when not NULL. */
static int64_t count_correct(const kiln_tensor *logits, const kiln_tensor *labels, int64_t *pred)
{
    const float *l = kiln_tensor_const_data(logits);
    const int64_t *y = kiln_tensor_const_data(labels);
    int64_t n = kiln_tensor_dims(labels)[0], ok = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t p = argmax_row(l + i * CLASSES);
        ok += p == y[i];
        if (pred) pred[i] = p;
    }
    return ok;
}

/* Runs the inference branch (or a loaded library) on x; new logits or NULL. */
static kiln_tensor *infer(kiln_session *s, kiln_value in, kiln_value out, kiln_tensor *x,
                          kiln_status *st)
{
    kiln_tensor *logits = NULL;
    kiln_session_run(s, &in, &x, 1, &out, &logits, 1, NULL, 0, st);
    if (kiln_status_code(st)) fprintf(stderr, "inference: %s\n", kiln_status_message(st));
    return logits;
}

/* Trains m for epochs over train, reporting each epoch (one updating line on
 * a terminal, a line each otherwise). Returns 0 or 1. */
static int fit(model *m, const char *name, const kiln_dataset *train_set, kiln_tensor *test_x,
               kiln_tensor *test_y, const options *o, int epochs, kiln_status *st)
{
    /* Shuffling reorders in place: a copy of its own makes each model's
     * epochs independent of what trained before it. */
    kiln_dataset *train = kiln_dataset_from_tensors(kiln_dataset_features(train_set),
                                                    kiln_dataset_targets(train_set), st);
    if (!train) return fprintf(stderr, "%s: %s\n", name, kiln_status_message(st)), 1;
    int tty = isatty(STDOUT_FILENO);
    int64_t nb = kiln_dataset_batch_count(train, o->batch, 1);
    if (nb == 0) {
        fprintf(stderr, "%s: batches of %lld are more than the %lld training examples\n", name,
                (long long)o->batch, (long long)kiln_dataset_count(train));
        kiln_dataset_free(train);
        return 1;
    }
    for (int epoch = 1; epoch <= epochs; epoch++) {
        if (kiln_dataset_shuffle(train, o->seed * 1000 + (uint64_t)epoch, st)) break;
        double t0 = now(), loss_sum = 0;
        int64_t correct = 0, seen = 0;
        for (int64_t i = 0; i < nb; i++) {
            kiln_tensor *feeds[2] = {NULL, NULL}, *outs[2] = {NULL, NULL};
            if (kiln_dataset_batch(train, i, o->batch, 1, &feeds[0], &feeds[1], st)) break;
            kiln_value phs[2] = {m->x, m->y}, fetch[2] = {m->loss, m->logits};
            kiln_session_run(m->s, phs, feeds, 2, fetch, outs, 2, &m->train, 1, st);
            if (!kiln_status_code(st)) {
                loss_sum += *(const float *)kiln_tensor_const_data(outs[0]);
                correct += count_correct(outs[1], feeds[1], NULL);
                seen += o->batch;
            }
            for (int k = 0; k < 2; k++) {
                kiln_tensor_free(feeds[k]);
                kiln_tensor_free(outs[k]);
            }
            if (kiln_status_code(st)) break;
        }
        if (kiln_status_code(st)) break;
        double secs = now() - t0;
        kiln_tensor *logits = infer(m->s, m->x_eval, m->logits_eval, test_x, st);
        if (!logits) break;
        double test_acc = (double)count_correct(logits, test_y, NULL) / (double)kiln_tensor_dims(test_y)[0];
        kiln_tensor_free(logits);
        printf("%s%-4s epoch %3d/%d  loss %.4f  train acc %6.2f%%  test acc %6.2f%%  %7.0f ex/s%s",
               tty ? "\r\033[K" : "", name, epoch, epochs, loss_sum / (double)nb,
               100.0 * (double)correct / (double)seen, 100.0 * test_acc, (double)seen / secs,
               tty && epoch < epochs ? "" : "\n");
        fflush(stdout);
    }
    kiln_dataset_free(train);
    if (kiln_status_code(st)) {
        fprintf(stderr, "%s: training: %s\n", name, kiln_status_message(st));
        return 1;
    }
    return 0;
}

/* Freezes the trained CNN, saves it as a .kiln file, compiles that file to
 * a shared object and runs the test set through it: 0 when its accuracy
 * and every prediction equal the session's. */
static int deploy(model *m, const char *dir, kiln_tensor *test_x, kiln_tensor *test_y,
                  const int64_t *session_pred, double session_acc, kiln_status *st)
{
    char kiln_path[1024], so_path[1024], h_path[1024];
    snprintf(kiln_path, sizeof kiln_path, "%s/digits_cnn.kiln", dir);
    snprintf(so_path, sizeof so_path, "%s/libdigits_cnn.so", dir);
    snprintf(h_path, sizeof h_path, "%s/digits_cnn.h", dir);
    int64_t n = kiln_tensor_dims(test_y)[0];
    int rc = 1;
    kiln_graph *loaded = NULL;
    kiln_session *lib = NULL;
    kiln_tensor *logits = NULL;
    int64_t *pred = malloc(sizeof(int64_t) * (size_t)n);

    kiln_graph *frozen = kiln_graph_freeze(m->g, m->s, st);
    if (!frozen || !pred) goto fail;
    kiln_graph_save(frozen, kiln_path, st);
    if (kiln_status_code(st)) goto fail;
    printf("frozen CNN: %d nodes (the training graph has %d), saved to %s\n",
           kiln_graph_node_count(frozen), kiln_graph_node_count(m->g), kiln_path);

    /* What `kiln compile FILE.kiln -o LIB.so --header H --dim N` does. */
    loaded = kiln_graph_load(kiln_path, st);
    if (!loaded) goto fail;
    kiln_value in, out;
    if (kiln_graph_inputs(loaded, &in, 1) != 1 || kiln_graph_outputs(loaded, &out, 1) != 1) {
        fprintf(stderr, "deploy: the frozen graph should have one input and one output\n");
        goto done;
    }
    kiln_compile_options co;
    kiln_compile_options_init(&co);
    co.name = "digits_cnn";
    co.header = h_path;
    co.symbolic_dim = n; /* the whole test set in one call */
    double t0 = now();
    kiln_compile_library(loaded, &in, 1, &out, 1, so_path, &co, st);
    if (kiln_status_code(st)) goto fail;
    printf("compiled %s and %s in %.2f s (as: kiln compile %s -o %s --header %s --dim %lld)\n",
           so_path, h_path, now() - t0, kiln_path, so_path, h_path, (long long)n);

    lib = kiln_session_load(so_path, st);
    if (!lib) goto fail;
    logits = infer(lib, kiln_session_find(lib, "x"), kiln_session_find(lib, "logits"), test_x, st);
    if (!logits) goto done;
    int64_t correct = count_correct(logits, test_y, pred), same = 0;
    for (int64_t i = 0; i < n; i++) same += pred[i] == session_pred[i];
    double acc = (double)correct / (double)n;
    printf("cnn .so: test accuracy %.2f%% (%lld/%lld), the same prediction as the session for "
           "%lld/%lld\n",
           100.0 * acc, (long long)correct, (long long)n, (long long)same, (long long)n);
    if (same != n || acc != session_acc) {
        fprintf(stderr, "FAIL: the compiled library does not classify as the session did\n");
        goto done;
    }
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "deploy: %s\n", pred ? kiln_status_message(st) : "out of memory");
done:
    kiln_tensor_free(logits);
    kiln_session_free(lib);
    kiln_graph_free(loaded);
    kiln_graph_free(frozen);
    free(pred);
    return rc;
}

static int usage(const char *prog, int rc)
{
    fprintf(rc ? stderr : stdout,
            "usage: %s [--quick] [--epochs N] [--data FILE] [--out DIR] [--batch N] [--seed N]\n"
            "  --quick      fewer epochs (still checked against the thresholds)\n"
            "  --epochs N   epochs for both networks (default: MLP 30, CNN 20; quick 12, 10)\n"
            "  --data FILE  the digits CSV, gzip'd or not (default %s)\n"
            "  --out DIR    keep the frozen .kiln, the .so and its header in DIR\n"
            "               (default: a temporary folder, removed at the end)\n",
            prog, DEFAULT_DATA);
    return rc;
}

static int parse_options(int argc, char **argv, options *o)
{
    *o = (options){DEFAULT_DATA, NULL, 30, 20, 32, 1};
    int epochs = 0, quick = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) exit(usage(argv[0], 0));
        if (!strcmp(a, "--quick")) {
            quick = 1;
            continue;
        }
        if (!v) return fprintf(stderr, "%s needs a value\n", a), usage(argv[0], 2);
        i++;
        if (!strcmp(a, "--data")) o->data = v;
        else if (!strcmp(a, "--out")) o->out = v;
        else if (!strcmp(a, "--epochs") && (epochs = (int)strtol(v, &end, 10)) > 0 && !*end) continue;
        else if (!strcmp(a, "--batch") && (o->batch = strtol(v, &end, 10)) > 0 && !*end) continue;
        else if (!strcmp(a, "--seed") && (o->seed = strtoull(v, &end, 10), !*end)) continue;
        else return fprintf(stderr, "bad option '%s %s'\n", a, v), usage(argv[0], 2);
    }
    if (quick) o->mlp_epochs = 12, o->cnn_epochs = 10;
    if (epochs) o->mlp_epochs = o->cnn_epochs = epochs;
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* progress and errors in order */
    options o;
    int rc = parse_options(argc, argv, &o);
    if (rc) return rc;
    rc = 1;
    kiln_status *st = kiln_status_new();
    kiln_dataset *all = NULL, *train = NULL, *test = NULL;
    kiln_tensor *test_x = NULL, *test_y = NULL, *logits = NULL;
    model mlp = {0}, cnn = {0};
    int64_t *pred = NULL;
    char tmpdir[] = "/tmp/kiln-digits-XXXXXX";
    const char *dir = o.out;

    /* 1. Data: 64 pixel columns then the label; no header. */
    kiln_csv_options co;
    kiln_csv_options_init(&co);
    co.target_dtype = KILN_I64;
    all = kiln_dataset_read_csv(o.data, &co, st);
    if (!all) {
        fprintf(stderr, "%s\n(python3-sklearn ships the file; `make deps` installs it)\n",
                kiln_status_message(st));
        goto done;
    }
    if (kiln_dataset_split(all, 0.2, o.seed, &train, &test, st) ||
        kiln_dataset_standardize(train, test, NULL, NULL, st) ||
        kiln_dataset_batch(test, 0, kiln_dataset_count(test), 0, &test_x, &test_y, st)) {
        fprintf(stderr, "%s\n", kiln_status_message(st));
        goto done;
    }
    int64_t ntest = kiln_dataset_count(test);
    printf("digits: %lld examples, %lld for training, %lld for testing; batches of %lld\n",
           (long long)kiln_dataset_count(all), (long long)kiln_dataset_count(train),
           (long long)ntest, (long long)o.batch);

    /* 2. The MLP. */
    if (build(&mlp, "mlp", o.batch, o.seed, MLP_LR, st) ||
        fit(&mlp, "mlp", train, test_x, test_y, &o, o.mlp_epochs, st))
        goto done;
    if (!(logits = infer(mlp.s, mlp.x_eval, mlp.logits_eval, test_x, st))) goto done;
    int64_t mlp_ok = count_correct(logits, test_y, NULL);
    double mlp_acc = (double)mlp_ok / (double)ntest;
    kiln_tensor_free(logits);
    logits = NULL;
    printf("mlp: test accuracy %.2f%% (%lld/%lld)\n", 100.0 * mlp_acc, (long long)mlp_ok,
           (long long)ntest);

    /* The CNN, its predictions kept to compare with the compiled library. */
    if (build(&cnn, "cnn", o.batch, o.seed, CNN_LR, st) ||
        fit(&cnn, "cnn", train, test_x, test_y, &o, o.cnn_epochs, st))
        goto done;
    if (!(logits = infer(cnn.s, cnn.x_eval, cnn.logits_eval, test_x, st))) goto done;
    pred = malloc(sizeof(int64_t) * (size_t)ntest);
    if (!pred) goto done;
    int64_t cnn_ok = count_correct(logits, test_y, pred);
    double cnn_acc = (double)cnn_ok / (double)ntest;
    printf("cnn: test accuracy %.2f%% (%lld/%lld)\n", 100.0 * cnn_acc, (long long)cnn_ok,
           (long long)ntest);

    /* 3. Deploy the CNN. */
    if (!dir && !(dir = mkdtemp(tmpdir))) {
        fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
        goto done;
    }
    int deployed = deploy(&cnn, dir, test_x, test_y, pred, cnn_acc, st);
    if (!o.out) {
        const char *files[] = {"digits_cnn.kiln", "libdigits_cnn.so", "digits_cnn.h"};
        char p[1024];
        for (int i = 0; i < 3; i++) {
            snprintf(p, sizeof p, "%s/%s", dir, files[i]);
            unlink(p);
        }
        rmdir(dir);
    }
    if (deployed) goto done;

    rc = 0;
    if (mlp_acc < MLP_THRESHOLD) {
        fprintf(stderr, "FAIL: the MLP's test accuracy %.2f%% is under %.0f%%\n", 100 * mlp_acc,
                100 * MLP_THRESHOLD);
        rc = 1;
    }
    if (cnn_acc < CNN_THRESHOLD) {
        fprintf(stderr, "FAIL: the CNN's test accuracy %.2f%% is under %.0f%%\n", 100 * cnn_acc,
                100 * CNN_THRESHOLD);
        rc = 1;
    }
    if (!rc) printf("ok: mlp >= %.0f%%, cnn >= %.0f%%, the .so agrees\n", 100 * MLP_THRESHOLD,
                    100 * CNN_THRESHOLD);
done:
    free(pred);
    kiln_tensor_free(logits);
    kiln_tensor_free(test_x);
    kiln_tensor_free(test_y);
    model_free(&mlp);
    model_free(&cnn);
    kiln_dataset_free(all);
    kiln_dataset_free(train);
    kiln_dataset_free(test);
    kiln_status_free(st);
    return rc;
}
