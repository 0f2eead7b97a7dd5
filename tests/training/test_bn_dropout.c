/* test_bn_dropout.c -- the training-mode layers of frontend/train_layers.c:
 * kiln_batch_norm in training (batch statistics, values computed in the
 * test and by hand; running-statistic updates after two steps; gradients
 * against central finite differences) and inference (running statistics,
 * after freezing too); kiln_dropout (keep rate, scaling, reproducibility by
 * seed, a new mask per run, identity in inference, its gradient);
 * kiln_group; errors. Reference and compiled backends throughout. */
#include "common/testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"

static kiln_session *open_session(kiln_graph *g, kiln_backend b)
{
    kiln_session_options o;
    kiln_session_options_init(&o);
    o.backend = b;
    o.threads = 1;
    kiln_status *st = kiln_status_new();
    kiln_session *s = kiln_session_new(g, &o, st);
    if (!s) fail_msg("session: %s", kiln_status_message(st));
    kiln_status_free(st);
    return s;
}

/* One run: fetches out (may be NULL with nouts 0), runs the targets. */
static void run(kiln_session *s, int nfeeds, const kiln_value *phs, kiln_tensor *const *feeds,
                int nouts, const kiln_value *outs, kiln_tensor **res, int ntargets,
                const kiln_value *targets)
{
    kiln_status *st = kiln_status_new();
    kiln_session_run(s, phs, feeds, nfeeds, outs, res, nouts, targets, ntargets, st);
    if (kiln_status_code(st)) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", kiln_status_message(st));
        kiln_status_free(st);
        fail_msg("run: %s", msg);
    }
    kiln_status_free(st);
}

static double at(const kiln_tensor *t, size_t i)
{
    const void *d = kiln_tensor_const_data(t);
    return kiln_tensor_dtype(t) == KILN_F64 ? ((const double *)d)[i] : ((const float *)d)[i];
}

static kiln_value vec_var(kiln_graph *g, const char *name, kiln_dtype dt, int64_t c,
                          const double *v)
{
    kiln_tensor *t = tu_from_f64(dt, 1, &c, v);
    kiln_value r = kiln_variable(g, name, t);
    kiln_tensor_free(t);
    return r;
}

static const kiln_backend backends[2] = {KILN_BACKEND_REFERENCE, KILN_BACKEND_DEFAULT};

/* ---- batch norm, training: the forward values ---- */

/* By hand: one channel, x = [1, 3] (N = 2): mean 2, biased var 1, so with
 * epsilon 0 the normalized values are -1 and 1; scale 2, bias 0.5 give
 * -1.5 and 2.5. A second channel x = [2, 6]: mean 4, var 4, normalized -1
 * and 1; scale 1, bias 0: -1, 1. */
static void test_bn_train_by_hand(void **state)
{
    (void)state;
    for (int b = 0; b < 2; b++) {
        kiln_graph *g = kiln_graph_new();
        kiln_value x = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){2, 2});
        kiln_value scale = vec_var(g, "scale", KILN_F32, 2, (double[]){2, 1});
        kiln_value bias = vec_var(g, "bias", KILN_F32, 2, (double[]){0.5, 0});
        kiln_value rm = vec_var(g, "rm", KILN_F32, 2, (double[]){0, 0});
        kiln_value rv = vec_var(g, "rv", KILN_F32, 2, (double[]){1, 1});
        kiln_batch_norm_options o;
        kiln_batch_norm_options_init(&o);
        o.epsilon = 0;
        kiln_value up;
        kiln_value y = kiln_batch_norm(g, x, scale, bias, rm, rv, &o, 1, &up);
        assert_null(kiln_graph_error(g));
        kiln_tensor *xv = tu_f32(2, (int64_t[]){2, 2}, (float[]){1, 2, 3, 6});
        kiln_session *s = open_session(g, backends[b]);
        kiln_tensor *yv = NULL;
        run(s, 1, &x, &xv, 1, &y, &yv, 0, NULL);
        tu_assert_close(yv, (double[]){-1.5, -1, 2.5, 1}, 4, 1e-6, 1e-6);
        kiln_tensor_free(yv);
        kiln_tensor_free(xv);
        kiln_session_free(s);
        kiln_graph_free(g);
    }
}

/* NCHW [2, 3, 2, 2] with the channel axis 1, and [2, 2, 3] with axis -1,
 * against the definition computed in the test in double. */
static void check_bn_train(kiln_dtype dt, int rank, const int64_t *dims, int axis, double rtol)
{
    int ax = axis < 0 ? axis + rank : axis;
    int64_t c = dims[ax];
    size_t n = 1;
    for (int i = 0; i < rank; i++) n *= (size_t)dims[i];
    size_t inner = 1;
    for (int i = ax + 1; i < rank; i++) inner *= (size_t)dims[i];
    double sc[8], bi[8], mean[8] = {0}, var[8] = {0};
    for (int k = 0; k < c; k++) {
        sc[k] = 0.5 + 0.25 * k;
        bi[k] = -0.3 * k;
    }
    kiln_tensor *xv = tu_random(dt, rank, dims, -2, 3, 11);
    size_t per = n / (size_t)c;
    for (size_t i = 0; i < n; i++) mean[(i / inner) % (size_t)c] += at(xv, i) / (double)per;
    for (size_t i = 0; i < n; i++) {
        size_t k = (i / inner) % (size_t)c;
        var[k] += (at(xv, i) - mean[k]) * (at(xv, i) - mean[k]) / (double)per;
    }
    double *want = malloc(sizeof(double) * n);
    for (size_t i = 0; i < n; i++) {
        size_t k = (i / inner) % (size_t)c;
        want[i] = sc[k] * (at(xv, i) - mean[k]) / sqrt(var[k] + 1e-5) + bi[k];
    }
    for (int b = 0; b < 2; b++) {
        kiln_graph *g = kiln_graph_new();
        kiln_value x = kiln_placeholder(g, "x", dt, rank, dims);
        kiln_value scale = vec_var(g, "scale", dt, c, sc);
        kiln_value bias = vec_var(g, "bias", dt, c, bi);
        kiln_value rm = vec_var(g, "rm", dt, c, (double[8]){0});
        kiln_value rv = vec_var(g, "rv", dt, c, (double[8]){1, 1, 1, 1, 1, 1, 1, 1});
        kiln_batch_norm_options o;
        kiln_batch_norm_options_init(&o);
        o.axis = axis;
        kiln_value y = kiln_batch_norm(g, x, scale, bias, rm, rv, &o, 1, NULL);
        assert_null(kiln_graph_error(g));
        kiln_session *s = open_session(g, backends[b]);
        kiln_tensor *yv = NULL;
        run(s, 1, &x, &xv, 1, &y, &yv, 0, NULL);
        tu_assert_shape(yv, dt, rank, dims);
        tu_assert_close(yv, want, n, rtol, rtol);
        kiln_tensor_free(yv);
        kiln_session_free(s);
        kiln_graph_free(g);
    }
    free(want);
    kiln_tensor_free(xv);
}

static void test_bn_train_values(void **state)
{
    (void)state;
    check_bn_train(KILN_F64, 4, (int64_t[]){2, 3, 2, 2}, 1, 1e-12);
    check_bn_train(KILN_F32, 4, (int64_t[]){2, 3, 2, 2}, 1, 1e-5);
    check_bn_train(KILN_F64, 3, (int64_t[]){2, 2, 3}, -1, 1e-12);
    check_bn_train(KILN_F32, 2, (int64_t[]){5, 4}, 1, 1e-5);
}

/* ---- batch norm: running statistics ---- */

/* Two steps on x1 = [[1, 2], [3, 6]] then x2 = [[2, 0], [6, 1]] (N = 2,
 * momentum 0.9, starting from mean 0 and var 1). By hand, channel 0:
 * batch 1 mean 2, unbiased var 2 -> running 0.2, 1.1; batch 2 mean 4,
 * unbiased var 8 -> 0.58, 1.79. Channel 1: batch 1 mean 4, unbiased var 8
 * -> 0.4, 1.7; batch 2 mean 0.5, unbiased var 0.5 -> 0.41, 1.58. */
static void test_bn_running_stats(void **state)
{
    (void)state;
    for (int b = 0; b < 2; b++) {
        kiln_graph *g = kiln_graph_new();
        kiln_value x = kiln_placeholder(g, "x", KILN_F64, 2, (int64_t[]){2, 2});
        kiln_value scale = vec_var(g, "scale", KILN_F64, 2, (double[]){1, 1});
        kiln_value bias = vec_var(g, "bias", KILN_F64, 2, (double[]){0, 0});
        kiln_value rm = vec_var(g, "rm", KILN_F64, 2, (double[]){0, 0});
        kiln_value rv = vec_var(g, "rv", KILN_F64, 2, (double[]){1, 1});
        kiln_value up;
        kiln_batch_norm(g, x, scale, bias, rm, rv, NULL, 1, &up);
        assert_true(kiln_value_ok(up));
        assert_int_equal(kiln_value_dtype(g, up), KILN_F32);
        kiln_tensor *x1 = tu_f64(2, (int64_t[]){2, 2}, (double[]){1, 2, 3, 6});
        kiln_tensor *x2 = tu_f64(2, (int64_t[]){2, 2}, (double[]){2, 0, 6, 1});
        kiln_session *s = open_session(g, backends[b]);
        run(s, 1, &x, &x1, 0, NULL, NULL, 1, &up);
        kiln_tensor *m = kiln_session_variable(s, rm, NULL),
                    *v = kiln_session_variable(s, rv, NULL);
        tu_assert_close(m, (double[]){0.2, 0.4}, 2, 1e-12, 1e-12);
        tu_assert_close(v, (double[]){1.1, 1.7}, 2, 1e-12, 1e-12);
        kiln_tensor_free(m);
        kiln_tensor_free(v);
        run(s, 1, &x, &x2, 0, NULL, NULL, 1, &up);
        m = kiln_session_variable(s, rm, NULL);
        v = kiln_session_variable(s, rv, NULL);
        tu_assert_close(m, (double[]){0.58, 0.41}, 2, 1e-12, 1e-12);
        tu_assert_close(v, (double[]){1.79, 1.58}, 2, 1e-12, 1e-12);
        /* scale and bias are not touched by the update. */
        kiln_tensor *sv = kiln_session_variable(s, scale, NULL);
        tu_assert_close(sv, (double[]){1, 1}, 2, 0, 0);
        kiln_tensor_free(sv);
        kiln_tensor_free(m);
        kiln_tensor_free(v);
        kiln_tensor_free(x1);
        kiln_tensor_free(x2);
        kiln_session_free(s);
        kiln_graph_free(g);
    }
}

/* BN on the input of a linear model trained with kiln_minimize, the train
 * op and the update grouped into one target: the running statistics are
 * not trained (the loss does not depend on them) and follow the batches;
 * the inference branch, built from the same variables, uses them, and so
 * does the frozen graph; the compiled step agrees with the reference. */
static void test_bn_with_minimize_and_freeze(void **state)
{
    (void)state;
    kiln_tensor *res[2][4] = {{0}};
    for (int b = 0; b < 2; b++) {
        kiln_graph *g = kiln_graph_new();
        kiln_value x = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){4, 3});
        kiln_value t = kiln_placeholder(g, "t", KILN_F32, 2, (int64_t[]){4, 1});
        kiln_value scale = vec_var(g, "bn/scale", KILN_F32, 3, (double[]){1, 1, 1});
        kiln_value bias = vec_var(g, "bn/bias", KILN_F32, 3, (double[]){0, 0, 0});
        kiln_value rm = vec_var(g, "bn/mean", KILN_F32, 3, (double[]){0, 0, 0});
        kiln_value rv = vec_var(g, "bn/var", KILN_F32, 3, (double[]){1, 1, 1});
        kiln_tensor *w0 = tu_f32(2, (int64_t[]){3, 1}, (float[]){0.5f, -0.25f, 1});
        kiln_value w = kiln_variable(g, "w", w0);
        kiln_tensor_free(w0);
        kiln_value up;
        kiln_value h = kiln_batch_norm(g, x, scale, bias, rm, rv, NULL, 1, &up);
        kiln_value loss = kiln_loss_mse(g, kiln_matmul(g, h, w), t, KILN_REDUCTION_MEAN);
        kiln_value hi = kiln_batch_norm(g, x, scale, bias, rm, rv, NULL, 0, NULL);
        kiln_value yi = kiln_name(g, kiln_matmul(g, hi, w), "y_eval");
        kiln_graph_set_outputs(g, &yi, 1);
        kiln_optimizer opt;
        kiln_optimizer_init(&opt, KILN_OPTIMIZER_SGD, 0.1);
        kiln_status *st = kiln_status_new();
        kiln_value train = kiln_minimize(g, loss, &opt, st);
        assert_int_equal(kiln_status_code(st), KILN_OK);
        kiln_value step = kiln_group(g, (kiln_value[]){train, up}, 2);
        assert_null(kiln_graph_error(g));
        /* 3 trained variables (scale, bias, w) + the 2 running statistics. */
        assert_int_equal(kiln_value_rank(g, step), 1);
        int64_t len;
        kiln_value_dims(g, step, &len);
        assert_int_equal(len, 2);
        kiln_value_dims(g, train, &len);
        assert_int_equal(len, 3);

        kiln_tensor *xa =
            tu_f32(2, (int64_t[]){4, 3}, (float[]){1, 0, 2, 3, 1, 2, 5, 0, 4, 7, 1, 4});
        kiln_tensor *xb =
            tu_f32(2, (int64_t[]){4, 3}, (float[]){0, 2, 1, 0, 4, 1, 4, 2, 1, 4, 0, 1});
        kiln_tensor *tv = tu_f32(2, (int64_t[]){4, 1}, (float[]){1, -1, 0.5f, 2});
        kiln_session *s = open_session(g, backends[b]);
        kiln_value phs[2] = {x, t};
        kiln_tensor *fa[2] = {xa, tv}, *fb[2] = {xb, tv};
        run(s, 2, phs, fa, 0, NULL, NULL, 1, &step);
        run(s, 2, phs, fb, 0, NULL, NULL, 1, &step);
        /* Channel means: xa 4, 0.5, 3; xb 2, 2, 1. Unbiased variances:
         * xa 20/3, 1/3, 4/3; xb 16/3, 8/3, 0. */
        kiln_tensor *m = kiln_session_variable(s, rm, NULL),
                    *v = kiln_session_variable(s, rv, NULL);
        double wm[3], wv[3];
        const double ma[3] = {4, 0.5, 3}, mb[3] = {2, 2, 1};
        const double va[3] = {20.0 / 3, 1.0 / 3, 4.0 / 3}, vb[3] = {16.0 / 3, 8.0 / 3, 0};
        for (int k = 0; k < 3; k++) {
            wm[k] = 0.9 * (0.9 * 0 + 0.1 * ma[k]) + 0.1 * mb[k];
            wv[k] = 0.9 * (0.9 * 1 + 0.1 * va[k]) + 0.1 * vb[k];
        }
        tu_assert_close(m, wm, 3, 1e-6, 1e-6);
        tu_assert_close(v, wv, 3, 1e-6, 1e-6);
        /* The inference branch: scale * (x - running_mean) / sqrt(running_var
         * + eps) + bias, times w, with the trained values. */
        kiln_tensor *sv = kiln_session_variable(s, scale, NULL),
                    *bv = kiln_session_variable(s, bias, NULL);
        kiln_tensor *wv2 = kiln_session_variable(s, w, NULL);
        double want[4];
        for (int i = 0; i < 4; i++) {
            want[i] = 0;
            for (int k = 0; k < 3; k++) {
                double hk =
                    at(sv, (size_t)k) * (at(xa, (size_t)(3 * i + k)) - wm[k]) / sqrt(wv[k] + 1e-5) +
                    at(bv, (size_t)k);
                want[i] += hk * at(wv2, (size_t)k);
            }
        }
        kiln_tensor *yv = NULL;
        run(s, 1, &x, &xa, 1, &yi, &yv, 0, NULL);
        tu_assert_close(yv, want, 4, 1e-5, 1e-5);
        /* Freezing keeps the inference branch with the running statistics
         * as constants. */
        kiln_graph *fz = kiln_graph_freeze(g, s, st);
        assert_non_null(fz);
        kiln_value fx = kiln_graph_find(fz, "x"), fy = kiln_graph_find(fz, "y_eval");
        kiln_tensor *fyv = tu_run(fz, fy, 1, &fx, &xa);
        tu_assert_close(fyv, want, 4, 1e-5, 1e-5);
        kiln_tensor_free(fyv);
        kiln_graph_free(fz);
        res[b][0] = m;
        res[b][1] = v;
        res[b][2] = wv2;
        res[b][3] = sv;
        kiln_tensor_free(bv);
        kiln_tensor_free(yv);
        kiln_tensor_free(xa);
        kiln_tensor_free(xb);
        kiln_tensor_free(tv);
        kiln_status_free(st);
        kiln_session_free(s);
        kiln_graph_free(g);
    }
    /* Compiled vs reference after two steps. */
    for (int k = 0; k < 4; k++) {
        double want[3];
        for (size_t i = 0; i < kiln_tensor_size(res[0][k]); i++) want[i] = at(res[0][k], i);
        tu_assert_close(res[1][k], want, kiln_tensor_size(res[0][k]), 1e-5, 1e-6);
        kiln_tensor_free(res[0][k]);
        kiln_tensor_free(res[1][k]);
    }
}

/* BN after a trained layer: the running statistics of a step come from the
 * weights before the step's update (x W1 with W1's initial value), on both
 * backends, although the same step assigns W1. */
static void test_bn_stats_use_old_weights(void **state)
{
    (void)state;
    const float x0[6] = {1, 2, 0, -1, 3, 1}, w0[4] = {0.5f, -1, 2, 0.25f};
    double h[3][2];
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 2; k++)
            h[i][k] = (double)x0[2 * i] * w0[k] + (double)x0[2 * i + 1] * w0[2 + k];
    double want_m[2], want_v[2];
    for (int k = 0; k < 2; k++) {
        double m = (h[0][k] + h[1][k] + h[2][k]) / 3, v = 0;
        for (int i = 0; i < 3; i++) v += (h[i][k] - m) * (h[i][k] - m) / 2; /* unbiased */
        want_m[k] = 0.1 * m;
        want_v[k] = 0.9 + 0.1 * v;
    }
    for (int b = 0; b < 2; b++) {
        kiln_graph *g = kiln_graph_new();
        kiln_value x = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){3, 2});
        kiln_tensor *wt = tu_f32(2, (int64_t[]){2, 2}, w0);
        kiln_value w1 = kiln_variable(g, "w1", wt);
        kiln_tensor_free(wt);
        kiln_value rm = vec_var(g, "rm", KILN_F32, 2, (double[]){0, 0});
        kiln_value rv = vec_var(g, "rv", KILN_F32, 2, (double[]){1, 1});
        kiln_value up;
        kiln_value y = kiln_batch_norm(
            g, kiln_matmul(g, x, w1), vec_var(g, "s", KILN_F32, 2, (double[]){1, 2}),
            vec_var(g, "b", KILN_F32, 2, (double[]){0, 1}), rm, rv, NULL, 1, &up);
        kiln_value loss = kiln_reduce_sum(g, kiln_mul(g, y, y), NULL, 0, 0);
        kiln_optimizer opt;
        kiln_optimizer_init(&opt, KILN_OPTIMIZER_SGD, 0.5);
        kiln_value train = kiln_minimize(g, loss, &opt, NULL);
        kiln_value step = kiln_group(g, (kiln_value[]){train, up}, 2);
        assert_null(kiln_graph_error(g));
        kiln_tensor *xv = tu_f32(2, (int64_t[]){3, 2}, x0);
        kiln_session *s = open_session(g, backends[b]);
        run(s, 1, &x, &xv, 0, NULL, NULL, 1, &step);
        kiln_tensor *w = kiln_session_variable(s, w1, NULL);
        assert_true(((const float *)kiln_tensor_const_data(w))[0] != w0[0]); /* W1 did move */
        kiln_tensor *m = kiln_session_variable(s, rm, NULL),
                    *v = kiln_session_variable(s, rv, NULL);
        tu_assert_close(m, want_m, 2, 1e-5, 1e-6);
        tu_assert_close(v, want_v, 2, 1e-5, 1e-6);
        kiln_tensor_free(w);
        kiln_tensor_free(m);
        kiln_tensor_free(v);
        kiln_tensor_free(xv);
        kiln_session_free(s);
        kiln_graph_free(g);
    }
}

/* ---- batch norm: inference ---- */

static void test_bn_inference(void **state)
{
    (void)state;
    const double sc[3] = {2, 0.5, 1}, bi[3] = {1, 0, -1}, mu[3] = {0.5, -1, 2},
                 va[3] = {4, 0.25, 1};
    /* axis 1 (the BatchNormalization op) and axis -1 on rank 3 (composed). */
    for (int variant = 0; variant < 2; variant++) {
        int rank = variant == 0 ? 2 : 3;
        const int64_t *dims = variant == 0 ? (int64_t[]){2, 3} : (int64_t[]){2, 2, 3};
        size_t n = variant == 0 ? 6 : 12;
        kiln_tensor *xv = tu_random(KILN_F64, rank, dims, -3, 3, 5);
        double want[12];
        for (size_t i = 0; i < n; i++) {
            size_t k = i % 3;
            want[i] = sc[k] * (at(xv, i) - mu[k]) / sqrt(va[k] + 1e-3) + bi[k];
        }
        kiln_graph *g = kiln_graph_new();
        kiln_value x = kiln_placeholder(g, "x", KILN_F64, rank, dims);
        kiln_batch_norm_options o;
        kiln_batch_norm_options_init(&o);
        o.epsilon = 1e-3;
        o.axis = variant == 0 ? 1 : -1;
        kiln_value up = {7, 7};
        kiln_value y = kiln_batch_norm(
            g, x, vec_var(g, "s", KILN_F64, 3, sc), vec_var(g, "b", KILN_F64, 3, bi),
            vec_var(g, "m", KILN_F64, 3, mu), vec_var(g, "v", KILN_F64, 3, va), &o, 0, &up);
        assert_false(kiln_value_ok(up));
        assert_null(kiln_graph_error(g));
        if (variant == 0) assert_string_equal(kiln_value_op_name(g, y), "BatchNormalization");
        for (int b = 0; b < 2; b++) {
            kiln_session *s = open_session(g, backends[b]);
            kiln_tensor *yv = NULL;
            run(s, 1, &x, &xv, 1, &y, &yv, 0, NULL);
            tu_assert_close(yv, want, n, 1e-12, 1e-12);
            kiln_tensor_free(yv);
            kiln_session_free(s);
        }
        kiln_tensor_free(xv);
        kiln_graph_free(g);
    }
}

/* ---- batch norm: gradients against central finite differences ---- */

static double eval_loss(kiln_graph *g, kiln_value loss, int nf, const kiln_value *phs,
                        kiln_tensor *const *feeds)
{
    kiln_tensor *l = NULL;
    char msg[512];
    if (tu_run_backend(g, KILN_BACKEND_REFERENCE, 1, &loss, &l, nf, phs, feeds, msg, sizeof msg))
        fail_msg("%s", msg);
    double v = at(l, 0);
    kiln_tensor_free(l);
    return v;
}

static void check_bn_grad(int rank, const int64_t *dims, int axis)
{
    int ax = axis < 0 ? axis + rank : axis;
    int64_t c = dims[ax];
    kiln_graph *g = kiln_graph_new();
    kiln_value ph[3];
    ph[0] = kiln_placeholder(g, "x", KILN_F64, rank, dims);
    ph[1] = kiln_placeholder(g, "scale", KILN_F64, 1, &c);
    ph[2] = kiln_placeholder(g, "bias", KILN_F64, 1, &c);
    kiln_value rm = vec_var(g, "rm", KILN_F64, c, (double[8]){0});
    kiln_value rv = vec_var(g, "rv", KILN_F64, c, (double[8]){1, 1, 1, 1, 1, 1, 1, 1});
    kiln_batch_norm_options o;
    kiln_batch_norm_options_init(&o);
    o.axis = axis;
    kiln_value y = kiln_batch_norm(g, ph[0], ph[1], ph[2], rm, rv, &o, 1, NULL);
    kiln_tensor *wt = tu_random(KILN_F64, rank, dims, -1, 1, 3);
    kiln_value loss = kiln_reduce_sum(g, kiln_mul(g, y, kiln_constant(g, NULL, wt)), NULL, 0, 0);
    kiln_value grads[3];
    kiln_status *st = kiln_status_new();
    kiln_gradients(g, &loss, 1, ph, 3, NULL, grads, st);
    assert_int_equal(kiln_status_code(st), KILN_OK);
    kiln_tensor *feeds[3] = {tu_random(KILN_F64, rank, dims, -2, 2, 9),
                             tu_random(KILN_F64, 1, &c, 0.5, 2, 4),
                             tu_random(KILN_F64, 1, &c, -1, 1, 6)};
    kiln_tensor *gv[3] = {0};
    char msg[512];
    if (tu_run_backend(g, KILN_BACKEND_REFERENCE, 3, grads, gv, 3, ph, feeds, msg, sizeof msg))
        fail_msg("%s", msg);
    for (int i = 0; i < 3; i++) {
        double *d = kiln_tensor_data(feeds[i]);
        size_t n = kiln_tensor_size(feeds[i]);
        double *fd = malloc(sizeof(double) * n);
        for (size_t k = 0; k < n; k++) {
            double keep = d[k], h = 1e-6;
            d[k] = keep + h;
            double lp = eval_loss(g, loss, 3, ph, feeds);
            d[k] = keep - h;
            double lm = eval_loss(g, loss, 3, ph, feeds);
            d[k] = keep;
            fd[k] = (lp - lm) / (2 * h);
        }
        tu_assert_close(gv[i], fd, n, 1e-5, 1e-7);
        free(fd);
    }
    /* The compiled gradient graph agrees with the reference. */
    tu_diff(g, 3, grads, 3, ph, feeds, 1e-9, 1e-9);
    for (int i = 0; i < 3; i++) {
        kiln_tensor_free(gv[i]);
        kiln_tensor_free(feeds[i]);
    }
    kiln_tensor_free(wt);
    kiln_status_free(st);
    kiln_graph_free(g);
}

static void test_bn_gradients(void **state)
{
    (void)state;
    check_bn_grad(2, (int64_t[]){4, 3}, 1);
    check_bn_grad(4, (int64_t[]){2, 2, 3, 2}, 1);
    check_bn_grad(3, (int64_t[]){3, 2, 2}, -1);
}

/* ---- dropout ---- */

static void test_dropout_rate_and_scale(void **state)
{
    (void)state;
    const double rate = 0.3;
    const int64_t n = 100000;
    for (int b = 0; b < 2; b++) {
        kiln_graph *g = kiln_graph_new();
        kiln_value x = kiln_placeholder(g, "x", KILN_F32, 1, &n);
        kiln_value y = kiln_dropout(g, x, rate, 1234, 1);
        assert_null(kiln_graph_error(g));
        kiln_tensor *xv = tu_random(KILN_F32, 1, &n, 0.5, 2, 8);
        kiln_session *s = open_session(g, backends[b]);
        kiln_tensor *yv = NULL;
        run(s, 1, &x, &xv, 1, &y, &yv, 0, NULL);
        const float *xd = kiln_tensor_const_data(xv), *yd = kiln_tensor_const_data(yv);
        float k = (float)(1.0 / (1.0 - rate));
        size_t dropped = 0;
        double sum_ratio = 0;
        for (int64_t i = 0; i < n; i++) {
            if (yd[i] == 0) {
                dropped++;
                continue;
            }
            /* a kept element is x / (1 - rate), to f32 rounding of x * k */
            if (yd[i] != xd[i] * k)
                fail_msg("element %lld: %g is neither 0 nor %g / 0.7", (long long)i, yd[i], xd[i]);
            sum_ratio += yd[i] / xd[i];
        }
        /* Binomial(n, 0.3): sd sqrt(n 0.3 0.7) = 145; allow 5 sd. */
        double frac = (double)dropped / (double)n;
        if (fabs(frac - rate) > 5 * sqrt(rate * (1 - rate) / (double)n))
            fail_msg("dropped fraction %g", frac);
        /* E[y / x] = 1: inverted dropout keeps the expectation. */
        assert_true(fabs(sum_ratio / (double)n - 1.0) < 0.01);
        kiln_tensor_free(yv);
        kiln_tensor_free(xv);
        kiln_session_free(s);
        kiln_graph_free(g);
    }
}

/* The masks of runs 1 and 2 of a session on a graph with dropout seeded 7,
 * as 0/1 per element. */
static void masks(kiln_backend b, uint64_t seed, unsigned char out[2][256])
{
    const int64_t n = 256;
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){16, 16});
    kiln_value y = kiln_dropout(g, x, 0.5, seed, 1);
    kiln_tensor *ones = kiln_init_ones(KILN_F32, 2, (int64_t[]){16, 16}, NULL);
    kiln_session *s = open_session(g, b);
    for (int r = 0; r < 2; r++) {
        kiln_tensor *yv = NULL;
        run(s, 1, &x, &ones, 1, &y, &yv, 0, NULL);
        const float *d = kiln_tensor_const_data(yv);
        for (int64_t i = 0; i < n; i++) {
            assert_true(d[i] == 0 || d[i] == 2);
            out[r][i] = d[i] != 0;
        }
        kiln_tensor_free(yv);
    }
    kiln_tensor_free(ones);
    kiln_session_free(s);
    kiln_graph_free(g);
}

static void test_dropout_reproducible(void **state)
{
    (void)state;
    unsigned char a[2][256], b[2][256], c[2][256], d[2][256];
    masks(KILN_BACKEND_REFERENCE, 7, a);
    masks(KILN_BACKEND_REFERENCE, 7, b);
    masks(KILN_BACKEND_DEFAULT, 7, c);
    masks(KILN_BACKEND_REFERENCE, 8, d);
    assert_memory_equal(a, b, sizeof a);      /* same seed, new session: same masks */
    assert_memory_equal(a, c, sizeof a);      /* compiled draws the same numbers */
    assert_memory_not_equal(a[0], a[1], 256); /* a new mask on every run */
    assert_memory_not_equal(a[0], d[0], 256); /* another seed, another mask */
}

static void test_dropout_inference_and_gradient(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F64, 2, (int64_t[]){8, 4});
    kiln_value yi = kiln_dropout(g, x, 0.5, 1, 0);
    kiln_value y0 = kiln_dropout(g, x, 0.0, 1, 1);
    kiln_value yt = kiln_dropout(g, x, 0.25, 1, 1);
    assert_string_equal(kiln_value_op_name(g, yi), "Identity");
    assert_string_equal(kiln_value_op_name(g, y0), "Identity");
    kiln_value loss = kiln_reduce_sum(g, kiln_mul(g, yt, x), NULL, 0, 0);
    kiln_value dx;
    kiln_gradients(g, &loss, 1, &x, 1, NULL, &dx, NULL);
    assert_true(kiln_value_ok(dx));
    kiln_tensor *xv = tu_random(KILN_F64, 2, (int64_t[]){8, 4}, 1, 2, 3);
    for (int b = 0; b < 2; b++) {
        kiln_session *s = open_session(g, backends[b]);
        kiln_tensor *r[4] = {0};
        run(s, 1, &x, &xv, 4, (kiln_value[]){yi, y0, yt, dx}, r, 0, NULL);
        const double *xd = kiln_tensor_const_data(xv);
        assert_memory_equal(kiln_tensor_const_data(r[0]), xd, 32 * sizeof(double));
        assert_memory_equal(kiln_tensor_const_data(r[1]), xd, 32 * sizeof(double));
        /* L = sum(mask * x * x) / 0.75: dL/dx = 2 mask x / 0.75 = 2 y. */
        const double *yd = kiln_tensor_const_data(r[2]), *gd = kiln_tensor_const_data(r[3]);
        int kept = 0;
        for (int i = 0; i < 32; i++) {
            assert_true(yd[i] == 0 || fabs(yd[i] - xd[i] / 0.75) < 1e-12);
            assert_true(fabs(gd[i] - 2 * yd[i]) < 1e-12);
            kept += yd[i] != 0;
        }
        assert_true(kept > 0 && kept < 32);
        for (int i = 0; i < 4; i++) kiln_tensor_free(r[i]);
        kiln_session_free(s);
    }
    kiln_tensor_free(xv);
    kiln_graph_free(g);
}

/* ---- errors ---- */

static void test_errors(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){4, 3});
    kiln_dropout(g, x, 1.0, 1, 1);
    tu_assert_graph_error(g, "kiln_dropout", "rate is 1", NULL);
    kiln_graph_free(g);

    g = kiln_graph_new();
    x = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){-1, 3});
    kiln_dropout(g, x, 0.5, 1, 1);
    tu_assert_graph_error(g, "kiln_dropout", "static shape", "f32[?,3]", NULL);
    kiln_graph_free(g);

    g = kiln_graph_new();
    x = kiln_placeholder(g, "x", KILN_I32, 1, (int64_t[]){4});
    kiln_dropout(g, x, 0.5, 1, 0);
    tu_assert_graph_error(g, "kiln_dropout", "floating point", NULL);
    kiln_graph_free(g);

    /* a parameter with the wrong number of channels */
    g = kiln_graph_new();
    x = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){4, 3});
    kiln_value p3 = vec_var(g, "p3", KILN_F32, 3, (double[]){1, 1, 1});
    kiln_value p2 = vec_var(g, "p2", KILN_F32, 2, (double[]){1, 1});
    kiln_batch_norm(g, x, p3, p2, p3, p3, NULL, 1, NULL);
    tu_assert_graph_error(g, "kiln_batch_norm", "bias", "f32[2]", "f32[4,3]", NULL);
    kiln_graph_free(g);

    /* running statistics that are not variables cannot be updated */
    g = kiln_graph_new();
    x = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){4, 3});
    p3 = vec_var(g, "p3", KILN_F32, 3, (double[]){1, 1, 1});
    kiln_value c3 = kiln_identity(g, p3);
    kiln_value up;
    kiln_batch_norm(g, x, p3, p3, c3, p3, NULL, 1, &up);
    tu_assert_graph_error(g, "kiln_batch_norm", "running_mean", "must be a Variable", NULL);
    assert_false(kiln_value_ok(up));
    kiln_graph_free(g);

    /* one value per channel: no batch statistics */
    g = kiln_graph_new();
    x = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){1, 3});
    p3 = vec_var(g, "p3", KILN_F32, 3, (double[]){1, 1, 1});
    kiln_batch_norm(g, x, p3, p3, p3, p3, NULL, 1, NULL);
    tu_assert_graph_error(g, "kiln_batch_norm", "more than one value per channel", NULL);
    kiln_graph_free(g);

    g = kiln_graph_new();
    x = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){4, 3});
    kiln_batch_norm_options o;
    kiln_batch_norm_options_init(&o);
    o.axis = 2;
    p3 = vec_var(g, "p3", KILN_F32, 3, (double[]){1, 1, 1});
    kiln_batch_norm(g, x, p3, p3, p3, p3, &o, 0, NULL);
    tu_assert_graph_error(g, "kiln_batch_norm", "axis 2", NULL);
    kiln_graph_free(g);

    g = kiln_graph_new();
    kiln_group(g, NULL, 0);
    tu_assert_graph_error(g, "kiln_group", "at least one", NULL);
    kiln_graph_free(g);

    g = kiln_graph_new();
    x = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){0, 3});
    kiln_group(g, &x, 1);
    tu_assert_graph_error(g, "kiln_group", "no element", NULL);
    kiln_graph_free(g);
}

/* ---- allocation failures ---- */

/* The n-th allocation fails, for n = 0, 1, ... until the builders succeed:
 * each failure is a graph error (never a crash), and nothing leaks. */
static void test_alloc_failure_sweep(void **state)
{
    (void)state;
    long base = ir_alloc_live_blocks(), n;
    int failures = 0;
    for (n = 0; n < 20000; n++) {
        kiln_graph *g = kiln_graph_new();
        kiln_value x = kiln_placeholder(g, "x", KILN_F32, 4, (int64_t[]){2, 3, 2, 2});
        kiln_value p[4];
        for (int i = 0; i < 4; i++) {
            char name[8] = {'p', (char)('0' + i), 0};
            p[i] = vec_var(g, name, KILN_F32, 3, (double[]){1, 1, 1});
        }
        ir_alloc_fail_after(n);
        kiln_value up;
        kiln_value y = kiln_batch_norm(g, x, p[0], p[1], p[2], p[3], NULL, 1, &up);
        kiln_value e = kiln_batch_norm(g, x, p[0], p[1], p[2], p[3], NULL, 0, NULL);
        kiln_value d = kiln_dropout(g, kiln_add(g, y, e), 0.5, 3, 1);
        kiln_value grp = kiln_group(g, (kiln_value[]){d, up}, 2);
        bool failed = ir_alloc_failed();
        ir_alloc_fail_after(-1);
        if (failed) {
            failures++;
            assert_false(kiln_value_ok(grp));
            assert_non_null(kiln_graph_error(g));
        } else {
            assert_true(kiln_value_ok(grp));
            assert_int_equal(kiln_graph_verify(g, NULL), KILN_OK);
        }
        kiln_graph_free(g);
        if (ir_alloc_live_blocks() != base)
            fail_msg("fail_after(%ld): %ld blocks leaked", n, ir_alloc_live_blocks() - base);
        if (!failed) break;
    }
    assert_true(n < 20000);
    assert_true(failures > 20);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_bn_train_by_hand),
        TU_TEST(test_bn_train_values),
        TU_TEST(test_bn_running_stats),
        TU_TEST(test_bn_with_minimize_and_freeze),
        TU_TEST(test_bn_stats_use_old_weights),
        TU_TEST(test_bn_inference),
        TU_TEST(test_bn_gradients),
        TU_TEST(test_dropout_rate_and_scale),
        TU_TEST(test_dropout_reproducible),
        TU_TEST(test_dropout_inference_and_gradient),
        TU_TEST(test_errors),
        TU_TEST(test_alloc_failure_sweep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
