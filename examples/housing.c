/* housing.c -- regression on the Boston housing data (506 districts, 13
 * features, the median house value in $1000s) with kiln: linear
 * regression and a two-layer network, both trained with Adam through
 * kiln_minimize and compiled by the JIT, compared by their RMSE on a
 * held-out test set.
 *
 * The CSV that scikit-learn ships starts with a line of counts and a line
 * of column names: kiln_dataset_read_csv skips them (skip_lines 1, header
 * 1). The data are split 80/20 with a seed and the features standardized
 * with the training set's mean and deviation. Each model's graph has a
 * training branch (a static batch, as gradients of a mean need) and an
 * inference branch (any batch) sharing its variables.
 *
 * Exits non-zero when the network does not beat linear regression on the
 * test set (or linear regression is not under an RMSE of 6). `--quick`
 * trains fewer epochs (the test suite runs it); see --help. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kiln.h"

#define DEFAULT_DATA "/usr/lib/python3/dist-packages/sklearn/datasets/data/boston_house_prices.csv"
#define HIDDEN 64
#define LINEAR_MAX_RMSE 6.0

typedef struct {
    const char *data;
    int linear_epochs, net_epochs;
    int64_t batch;
    uint64_t seed;
} options;

typedef struct {
    kiln_graph *g;
    kiln_session *s;
    kiln_value x, y, loss, train; /* training branch: a static batch */
    kiln_value x_eval, pred_eval; /* inference branch: any batch */
} model;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static kiln_value variable(kiln_graph *g, const char *name, kiln_tensor *init)
{
    kiln_value v = init ? kiln_variable(g, name, init) : kiln_value_invalid();
    kiln_tensor_free(init);
    return v;
}

/* The prediction for x [n, F]: a vector [n]. p holds w, b (linear) or w1,
 * b1, w2, b2 (the network). */
static kiln_value forward(kiln_graph *g, kiln_value x, const kiln_value *p, int layers)
{
    kiln_value h = x;
    if (layers == 2) h = kiln_relu(g, kiln_add(g, kiln_matmul(g, x, p[0]), p[1]));
    kiln_value out = kiln_add(g, kiln_matmul(g, h, p[2 * layers - 2]), p[2 * layers - 1]);
    return kiln_squeeze(g, out, (int64_t[]){1}, 1);
}

/* layers 1: linear regression; 2: a hidden layer of HIDDEN ReLUs. The
 * output bias starts at the training targets' mean. */
static int build(model *m, int layers, int64_t nfeat, int64_t batch, float y_mean, uint64_t seed,
                 double lr, kiln_status *st)
{
    kiln_graph *g = m->g = kiln_graph_new();
    if (!g) return fprintf(stderr, "out of memory\n"), 1;
    kiln_value p[4];
    int64_t one = 1, hidden = HIDDEN;
    if (layers == 2) {
        p[0] = variable(g, "w1", kiln_init_he_uniform(KILN_F32, 2, (int64_t[]){nfeat, HIDDEN}, seed, st));
        p[1] = variable(g, "b1", kiln_init_zeros(KILN_F32, 1, &hidden, st));
    }
    int64_t in = layers == 2 ? HIDDEN : nfeat;
    p[2 * layers - 2] = variable(g, layers == 2 ? "w2" : "w",
                                 kiln_init_glorot_uniform(KILN_F32, 2, (int64_t[]){in, 1}, seed + 1, st));
    p[2 * layers - 1] = variable(g, layers == 2 ? "b2" : "b",
                                 kiln_tensor_from_data(KILN_F32, 1, &one, &y_mean));

    m->x = kiln_placeholder(g, "x_train", KILN_F32, 2, (int64_t[]){batch, nfeat});
    m->y = kiln_placeholder(g, "y_train", KILN_F32, 1, &batch);
    m->loss = kiln_loss_mse(g, forward(g, m->x, p, layers), m->y, KILN_REDUCTION_MEAN);
    m->x_eval = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){-1, nfeat});
    m->pred_eval = kiln_name(g, forward(g, m->x_eval, p, layers), "price");
    kiln_graph_set_outputs(g, &m->pred_eval, 1);
    if (kiln_graph_error(g)) return fprintf(stderr, "%s\n", kiln_graph_error(g)), 1;

    kiln_optimizer opt;
    kiln_optimizer_init(&opt, KILN_OPTIMIZER_ADAM, lr);
    m->train = kiln_minimize(g, m->loss, &opt, st);
    if (!kiln_value_ok(m->train)) return fprintf(stderr, "%s\n", kiln_status_message(st)), 1;
    m->s = kiln_session_new(g, NULL, st);
    if (!m->s) return fprintf(stderr, "%s\n", kiln_status_message(st)), 1;
    return 0;
}

static void model_free(model *m)
{
    kiln_session_free(m->s);
    kiln_graph_free(m->g);
    memset(m, 0, sizeof *m);
}

/* The model's RMSE on (x, y), or a negative number on error. */
static double rmse(model *m, kiln_tensor *x, const kiln_tensor *y, kiln_status *st)
{
    kiln_tensor *pred = NULL;
    kiln_session_run(m->s, &m->x_eval, &x, 1, &m->pred_eval, &pred, 1, NULL, 0, st);
    if (kiln_status_code(st)) {
        fprintf(stderr, "inference: %s\n", kiln_status_message(st));
        return -1;
    }
    const float *p = kiln_tensor_const_data(pred), *t = kiln_tensor_const_data(y);
    size_t n = kiln_tensor_size(y);
    double sum = 0;
    for (size_t i = 0; i < n; i++) sum += ((double)p[i] - t[i]) * ((double)p[i] - t[i]);
    kiln_tensor_free(pred);
    return sqrt(sum / (double)n);
}

/* Trains for epochs, one progress line per epoch (updated in place on a
 * terminal). Returns the final test RMSE, or a negative number. */
static double fit(model *m, const char *name, const kiln_dataset *train_set, kiln_tensor *test_x,
                  kiln_tensor *test_y, const options *o, int epochs, kiln_status *st)
{
    /* Shuffling reorders in place: a copy of its own makes each model's
     * epochs independent of what trained before it. */
    kiln_dataset *train = kiln_dataset_from_tensors(kiln_dataset_features(train_set),
                                                    kiln_dataset_targets(train_set), st);
    if (!train) return fprintf(stderr, "%s: %s\n", name, kiln_status_message(st)), -1;
    int tty = isatty(STDOUT_FILENO);
    int64_t nb = kiln_dataset_batch_count(train, o->batch, 1);
    if (nb == 0) {
        fprintf(stderr, "%s: batches of %lld are more than the %lld training examples\n", name,
                (long long)o->batch, (long long)kiln_dataset_count(train));
        kiln_dataset_free(train);
        return -1;
    }
    double test_rmse = -1;
    for (int epoch = 1; epoch <= epochs; epoch++) {
        if (kiln_dataset_shuffle(train, o->seed * 1000 + (uint64_t)epoch, st)) break;
        double t0 = now(), loss_sum = 0;
        for (int64_t i = 0; i < nb; i++) {
            kiln_tensor *feeds[2] = {NULL, NULL}, *loss = NULL;
            if (kiln_dataset_batch(train, i, o->batch, 1, &feeds[0], &feeds[1], st)) break;
            kiln_value phs[2] = {m->x, m->y};
            kiln_session_run(m->s, phs, feeds, 2, &m->loss, &loss, 1, &m->train, 1, st);
            if (loss) loss_sum += *(const float *)kiln_tensor_const_data(loss);
            kiln_tensor_free(loss);
            kiln_tensor_free(feeds[0]);
            kiln_tensor_free(feeds[1]);
            if (kiln_status_code(st)) break;
        }
        if (kiln_status_code(st)) {
            fprintf(stderr, "%s: training: %s\n", name, kiln_status_message(st));
            break;
        }
        double secs = now() - t0;
        if ((test_rmse = rmse(m, test_x, test_y, st)) < 0) break;
        double mse = loss_sum / (double)nb;
        printf("%s%-7s epoch %3d/%d  loss %8.3f  train rmse %6.3f  test rmse %6.3f  %8.0f ex/s%s",
               tty ? "\r\033[K" : "", name, epoch, epochs, mse, sqrt(mse), test_rmse,
               (double)(nb * o->batch) / secs, tty && epoch < epochs ? "" : "\n");
        fflush(stdout);
    }
    kiln_dataset_free(train);
    return kiln_status_code(st) ? -1 : test_rmse;
}

static int usage(const char *prog, int rc)
{
    fprintf(rc ? stderr : stdout,
            "usage: %s [--quick] [--epochs N] [--data FILE] [--batch N] [--seed N]\n"
            "  --quick      fewer epochs (still checked: the network must beat linear)\n"
            "  --epochs N   epochs for both models (default: linear 150, network 200;\n"
            "               quick 60, 80)\n"
            "  --data FILE  the Boston housing CSV (default %s)\n",
            prog, DEFAULT_DATA);
    return rc;
}

static int parse_options(int argc, char **argv, options *o)
{
    *o = (options){DEFAULT_DATA, 150, 200, 16, 1};
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
        else if (!strcmp(a, "--epochs") && (epochs = (int)strtol(v, &end, 10)) > 0 && !*end) continue;
        else if (!strcmp(a, "--batch") && (o->batch = strtol(v, &end, 10)) > 0 && !*end) continue;
        else if (!strcmp(a, "--seed") && (o->seed = strtoull(v, &end, 10), !*end)) continue;
        else return fprintf(stderr, "bad option '%s %s'\n", a, v), usage(argv[0], 2);
    }
    if (quick) o->linear_epochs = 60, o->net_epochs = 80;
    if (epochs) o->linear_epochs = o->net_epochs = epochs;
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
    kiln_tensor *test_x = NULL, *test_y = NULL;
    model lin = {0}, net = {0};

    /* A count line, a header line, then 13 features and the target. */
    kiln_csv_options co;
    kiln_csv_options_init(&co);
    co.skip_lines = 1;
    co.header = 1;
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
    const kiln_tensor *ty = kiln_dataset_targets(train);
    int64_t ntrain = kiln_dataset_count(train), nfeat = kiln_tensor_dims(kiln_dataset_features(train))[1];
    double mean = 0;
    for (int64_t i = 0; i < ntrain; i++) mean += ((const float *)kiln_tensor_const_data(ty))[i];
    mean /= (double)ntrain;
    printf("housing: %lld districts, %lld features; %lld for training, %lld for testing\n",
           (long long)kiln_dataset_count(all), (long long)nfeat, (long long)ntrain,
           (long long)kiln_dataset_count(test));

    if (build(&lin, 1, nfeat, o.batch, (float)mean, o.seed, 0.01, st)) goto done;
    double lin_rmse = fit(&lin, "linear", train, test_x, test_y, &o, o.linear_epochs, st);
    if (lin_rmse < 0) goto done;
    if (build(&net, 2, nfeat, o.batch, (float)mean, o.seed, 3e-3, st)) goto done;
    double net_rmse = fit(&net, "network", train, test_x, test_y, &o, o.net_epochs, st);
    if (net_rmse < 0) goto done;

    printf("linear: test RMSE %.3f\n", lin_rmse);
    printf("network: test RMSE %.3f\n", net_rmse);
    rc = 0;
    if (!(lin_rmse < LINEAR_MAX_RMSE)) {
        fprintf(stderr, "FAIL: linear regression's test RMSE %.3f is not under %.1f\n", lin_rmse,
                LINEAR_MAX_RMSE);
        rc = 1;
    }
    if (!(net_rmse < lin_rmse)) {
        fprintf(stderr, "FAIL: the network (test RMSE %.3f) does not beat linear regression (%.3f)\n",
                net_rmse, lin_rmse);
        rc = 1;
    }
    if (!rc) printf("ok: the network beats linear regression by %.1f%%\n",
                    100.0 * (lin_rmse - net_rmse) / lin_rmse);
done:
    kiln_tensor_free(test_x);
    kiln_tensor_free(test_y);
    model_free(&lin);
    model_free(&net);
    kiln_dataset_free(all);
    kiln_dataset_free(train);
    kiln_dataset_free(test);
    kiln_status_free(st);
    return rc;
}
