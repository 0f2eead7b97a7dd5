/* test_losses.c -- the loss builders: values against expectations computed
 * here in double (numpy-style formulas), extreme logits staying finite,
 * gradients against central finite differences and the closed forms,
 * compiled against reference, and the errors. */
#include "common/testutil.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static double fetch_scalar(kiln_graph *g, kiln_value v, int n, const kiln_value *phs,
                           kiln_tensor *const *feeds)
{
    kiln_tensor *t = tu_run(g, v, n, phs, feeds);
    assert_int_equal(kiln_tensor_rank(t), 0);
    double d = kiln_tensor_dtype(t) == KILN_F64 ? ((double *)kiln_tensor_data(t))[0]
                                               : ((float *)kiln_tensor_data(t))[0];
    kiln_tensor_free(t);
    return d;
}

#define assert_near(a, b, eps)                                                                     \
    do {                                                                                           \
        double a_ = (a), b_ = (b);                                                                 \
        if (!(fabs(a_ - b_) <= (eps))) fail_msg("%s = %.17g, want %.17g", #a, a_, b_);            \
    } while (0)

static void test_mse(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    int64_t d[2] = {2, 3};
    kiln_value p = kiln_placeholder(g, "p", KILN_F32, 2, d);
    kiln_value t = kiln_placeholder(g, "t", KILN_F32, 2, d);
    kiln_value mean = kiln_loss_mse(g, p, t, KILN_REDUCTION_MEAN);
    kiln_value sum = kiln_loss_mse(g, p, t, KILN_REDUCTION_SUM);
    assert_null(kiln_graph_error(g));
    kiln_tensor *pv = tu_f32(2, d, (float[]){1, 2, 3, 4, 5, 6});
    kiln_tensor *tv = tu_f32(2, d, (float[]){1, 0, 4, 4, 8, 5});
    kiln_value phs[2] = {p, t};
    kiln_tensor *feeds[2] = {pv, tv};
    /* squared errors 0, 4, 1, 0, 9, 1: sum 15, mean 2.5 */
    assert_near(fetch_scalar(g, sum, 2, phs, feeds), 15.0, 1e-6);
    assert_near(fetch_scalar(g, mean, 2, phs, feeds), 2.5, 1e-6);
    tu_diff(g, 1, &mean, 2, phs, feeds, 1e-6, 1e-6);
    kiln_tensor_free(pv);
    kiln_tensor_free(tv);
    kiln_graph_free(g);
}

/* -log softmax(x)[label] = logsumexp(x) - x[label], computed stably. */
static double ce_row(const double *x, int n, const double *p)
{
    double m = x[0];
    for (int i = 1; i < n; i++) m = x[i] > m ? x[i] : m;
    double s = 0;
    for (int i = 0; i < n; i++) s += exp(x[i] - m);
    double lse = m + log(s), r = 0;
    for (int i = 0; i < n; i++) r += p[i] * (lse - x[i]);
    return r;
}

static void test_softmax_ce_labels_and_probs(void **state)
{
    (void)state;
    const double x[3][4] = {{1, 2, 3, 4}, {100, -100, 0, 5}, {-100, 100, -100, 100}};
    const int64_t lab[3] = {2, 1, 3};
    double want_sum = 0, onehot[12] = {0};
    for (int r = 0; r < 3; r++) {
        onehot[r * 4 + lab[r]] = 1;
        want_sum += ce_row(x[r], 4, &onehot[r * 4]);
    }
    /* Row 1 by hand: label -100 against max 100: about 200. */
    assert_near(ce_row(x[1], 4, &onehot[4]), 200.0, 1e-6);
    for (int dt = 0; dt < 2; dt++) {
        kiln_dtype ft = dt ? KILN_F64 : KILN_F32;
        kiln_graph *g = kiln_graph_new();
        int64_t dl[2] = {3, 4}, dy[1] = {3};
        kiln_value logits = kiln_placeholder(g, "logits", ft, 2, dl);
        kiln_value labels = kiln_placeholder(g, "labels", KILN_I64, 1, dy);
        kiln_value probs = kiln_placeholder(g, "probs", ft, 2, dl);
        kiln_value lm = kiln_loss_softmax_cross_entropy(g, logits, labels, KILN_REDUCTION_MEAN);
        kiln_value ls = kiln_loss_softmax_cross_entropy(g, logits, labels, KILN_REDUCTION_SUM);
        kiln_value pm = kiln_loss_softmax_cross_entropy(g, logits, probs, KILN_REDUCTION_MEAN);
        assert_null(kiln_graph_error(g));
        assert_int_equal(kiln_value_dtype(g, lm), ft);
        kiln_tensor *xv = tu_from_f64(ft, 2, dl, &x[0][0]);
        kiln_tensor *yv = tu_i64(1, dy, lab);
        kiln_tensor *pv = tu_from_f64(ft, 2, dl, onehot);
        kiln_value phs[3] = {logits, labels, probs};
        kiln_tensor *feeds[3] = {xv, yv, pv};
        double tol = dt ? 1e-10 : 1e-4;
        double got = fetch_scalar(g, ls, 3, phs, feeds);
        assert_true(isfinite(got));
        assert_near(got, want_sum, tol * want_sum);
        assert_near(fetch_scalar(g, lm, 3, phs, feeds), want_sum / 3, tol * want_sum);
        assert_near(fetch_scalar(g, pm, 3, phs, feeds), want_sum / 3, tol * want_sum);
        kiln_value outs[3] = {lm, ls, pm};
        tu_diff(g, 3, outs, 3, phs, feeds, 1e-5, 1e-5);
        kiln_tensor_free(xv);
        kiln_tensor_free(yv);
        kiln_tensor_free(pv);
        kiln_graph_free(g);
    }
}

static void test_softmax_ce_soft_labels_rank3_i32(void **state)
{
    (void)state;
    /* Soft targets: -sum p log softmax(x), per example, mean over 2x2. */
    kiln_graph *g = kiln_graph_new();
    int64_t dl[3] = {2, 2, 3}, dy[2] = {2, 2};
    double x[12], p[12], oh[12] = {0};
    for (int i = 0; i < 12; i++) x[i] = sin(i + 1.0) * 3;
    for (int r = 0; r < 4; r++) {
        double a = 1 + r, b = 2, c = 3 - 0.5 * r, s = a + b + c;
        p[r * 3] = a / s, p[r * 3 + 1] = b / s, p[r * 3 + 2] = c / s;
    }
    const int32_t lab[4] = {0, 2, 1, 7}; /* 7 is out of range: contributes 0 */
    double want_soft = 0, want_hard = 0;
    for (int r = 0; r < 4; r++) {
        want_soft += ce_row(&x[r * 3], 3, &p[r * 3]) / 4;
        if (lab[r] < 3) oh[r * 3 + lab[r]] = 1;
        want_hard += ce_row(&x[r * 3], 3, &oh[r * 3]) / 4;
    }
    kiln_value logits = kiln_placeholder(g, "x", KILN_F64, 3, dl);
    kiln_value probs = kiln_placeholder(g, "p", KILN_F64, 3, dl);
    kiln_value labels = kiln_placeholder(g, "y", KILN_I32, 2, dy);
    kiln_value soft = kiln_loss_softmax_cross_entropy(g, logits, probs, KILN_REDUCTION_MEAN);
    kiln_value hard = kiln_loss_softmax_cross_entropy(g, logits, labels, KILN_REDUCTION_MEAN);
    kiln_tensor *xv = tu_f64(3, dl, x), *pv = tu_f64(3, dl, p), *yv = tu_i32(2, dy, lab);
    kiln_value phs[3] = {logits, probs, labels};
    kiln_tensor *feeds[3] = {xv, pv, yv};
    assert_near(fetch_scalar(g, soft, 3, phs, feeds), want_soft, 1e-12);
    assert_near(fetch_scalar(g, hard, 3, phs, feeds), want_hard, 1e-12);
    kiln_tensor_free(xv);
    kiln_tensor_free(pv);
    kiln_tensor_free(yv);
    kiln_graph_free(g);
}

static double sce(double x, double z) { return fmax(x, 0) - x * z + log1p(exp(-fabs(x))); }

static void test_sigmoid_ce(void **state)
{
    (void)state;
    const double x[6] = {-100, -1, 0, 2, 100, 100};
    const double z[6] = {1, 1, 0.5, 0, 1, 0};
    double want = 0;
    for (int i = 0; i < 6; i++) want += sce(x[i], z[i]);
    /* By hand: x = -100, z = 1 and x = 100, z = 0 each cost 100; x = 100,
     * z = 1 costs log(1 + e^-100) ~ 0; x = 0: log 2. */
    assert_near(sce(-100, 1), 100, 1e-12);
    assert_near(sce(0, 0.5), log(2), 1e-15);
    for (int dt = 0; dt < 2; dt++) {
        kiln_dtype ft = dt ? KILN_F64 : KILN_F32;
        kiln_graph *g = kiln_graph_new();
        int64_t d = 6;
        kiln_value xp = kiln_placeholder(g, "x", ft, 1, &d);
        kiln_value zp = kiln_placeholder(g, "z", ft, 1, &d);
        kiln_value sum = kiln_loss_sigmoid_cross_entropy(g, xp, zp, KILN_REDUCTION_SUM);
        kiln_value mean = kiln_loss_sigmoid_cross_entropy(g, xp, zp, KILN_REDUCTION_MEAN);
        kiln_tensor *xv = tu_from_f64(ft, 1, &d, x), *zv = tu_from_f64(ft, 1, &d, z);
        kiln_value phs[2] = {xp, zp};
        kiln_tensor *feeds[2] = {xv, zv};
        double tol = dt ? 1e-12 : 1e-5;
        double got = fetch_scalar(g, sum, 2, phs, feeds);
        assert_true(isfinite(got));
        assert_near(got, want, tol * want);
        assert_near(fetch_scalar(g, mean, 2, phs, feeds), want / 6, tol * want);
        /* The gradient is sigmoid(x) - z: finite at the extremes too. */
        kiln_value dx;
        kiln_status *st = kiln_status_new();
        kiln_gradients(g, &sum, 1, &xp, 1, NULL, &dx, st);
        assert_int_equal(kiln_status_code(st), KILN_OK);
        kiln_status_free(st);
        kiln_tensor *gt = tu_run(g, dx, 2, phs, feeds);
        double wantg[6];
        for (int i = 0; i < 6; i++) wantg[i] = 1 / (1 + exp(-x[i])) - z[i];
        tu_assert_close(gt, wantg, 6, tol, tol);
        kiln_tensor_free(gt);
        kiln_value outs[3] = {sum, mean, dx};
        tu_diff(g, 3, outs, 2, phs, feeds, 1e-5, 1e-6);
        kiln_tensor_free(xv);
        kiln_tensor_free(zv);
        kiln_graph_free(g);
    }
}

/* dL/dx of a loss against central differences (f64, reference backend),
 * and, for softmax cross-entropy with labels, against (softmax - onehot)/N. */
static void test_gradients_fd(void **state)
{
    (void)state;
    for (int which = 0; which < 4; which++) {
        kiln_graph *g = kiln_graph_new();
        int64_t d[2] = {3, 4}, dy = 3;
        kiln_value x = kiln_placeholder(g, "x", KILN_F64, 2, d);
        kiln_value t = kiln_placeholder(g, "t", KILN_F64, 2, d);
        kiln_value y = kiln_placeholder(g, "y", KILN_I64, 1, &dy);
        kiln_value loss;
        if (which == 0) loss = kiln_loss_mse(g, x, t, KILN_REDUCTION_MEAN);
        else if (which == 1) loss = kiln_loss_softmax_cross_entropy(g, x, y, KILN_REDUCTION_MEAN);
        else if (which == 2) loss = kiln_loss_softmax_cross_entropy(g, x, t, KILN_REDUCTION_SUM);
        else loss = kiln_loss_sigmoid_cross_entropy(g, x, t, KILN_REDUCTION_MEAN);
        kiln_value dx;
        kiln_gradients(g, &loss, 1, &x, 1, NULL, &dx, NULL);
        assert_true(kiln_value_ok(dx));
        kiln_tensor *xv = tu_random(KILN_F64, 2, d, -3, 3, 100 + which);
        kiln_tensor *tv = tu_random(KILN_F64, 2, d, 0, 1, 200 + which);
        kiln_tensor *yv = tu_i64(1, &dy, (int64_t[]){3, 0, 1});
        kiln_value phs[3] = {x, t, y};
        kiln_tensor *feeds[3] = {xv, tv, yv};
        kiln_tensor *an = tu_run(g, dx, 3, phs, feeds);
        double *xd = kiln_tensor_data(xv), want[12], closed[12];
        for (int i = 0; i < 12; i++) {
            double o = xd[i], eps = 1e-6;
            xd[i] = o + eps;
            double lp = fetch_scalar(g, loss, 3, phs, feeds);
            xd[i] = o - eps;
            double lm = fetch_scalar(g, loss, 3, phs, feeds);
            xd[i] = o;
            want[i] = (lp - lm) / (2 * eps);
        }
        tu_assert_close(an, want, 12, 1e-6, 1e-8);
        if (which == 1) {
            const int64_t lab[3] = {3, 0, 1};
            for (int r = 0; r < 3; r++) {
                double m = -1e300, s = 0;
                for (int c = 0; c < 4; c++) m = fmax(m, xd[r * 4 + c]);
                for (int c = 0; c < 4; c++) s += exp(xd[r * 4 + c] - m);
                for (int c = 0; c < 4; c++)
                    closed[r * 4 + c] = (exp(xd[r * 4 + c] - m) / s - (c == lab[r])) / 3;
            }
            tu_assert_close(an, closed, 12, 1e-10, 1e-12);
        }
        kiln_tensor_free(an);
        kiln_tensor_free(xv);
        kiln_tensor_free(tv);
        kiln_tensor_free(yv);
        kiln_graph_free(g);
    }
}

static void test_errors(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value a = kiln_placeholder(g, "a", KILN_F32, 2, (int64_t[]){2, 3});
    kiln_value b = kiln_placeholder(g, "b", KILN_F32, 2, (int64_t[]){2, 4});
    assert_false(kiln_value_ok(kiln_loss_mse(g, a, b, KILN_REDUCTION_MEAN)));
    tu_assert_graph_error(g, "kiln_loss_mse", "pred f32[2,3]", "target f32[2,4]", NULL);
    kiln_graph_free(g);

    g = kiln_graph_new();
    a = kiln_placeholder(g, "a", KILN_F32, 2, (int64_t[]){2, 3});
    kiln_value y = kiln_placeholder(g, "y", KILN_I64, 1, (int64_t[]){3});
    assert_false(kiln_value_ok(kiln_loss_softmax_cross_entropy(g, a, y, KILN_REDUCTION_MEAN)));
    tu_assert_graph_error(g, "kiln_loss_softmax_cross_entropy", "i64[3]", "f32[2,3]", NULL);
    kiln_graph_free(g);

    g = kiln_graph_new();
    kiln_value i = kiln_placeholder(g, "i", KILN_I32, 1, (int64_t[]){3});
    kiln_value f = kiln_placeholder(g, "f", KILN_F32, 1, (int64_t[]){3});
    assert_false(kiln_value_ok(kiln_loss_sigmoid_cross_entropy(g, i, f, KILN_REDUCTION_SUM)));
    tu_assert_graph_error(g, "kiln_loss_sigmoid_cross_entropy", "logits must be floating point",
                          "i32[3]", NULL);
    kiln_graph_free(g);

    g = kiln_graph_new();
    f = kiln_placeholder(g, "f", KILN_F32, 1, (int64_t[]){3});
    kiln_value h = kiln_placeholder(g, "h", KILN_F64, 1, (int64_t[]){3});
    assert_false(kiln_value_ok(kiln_loss_sigmoid_cross_entropy(g, f, h, KILN_REDUCTION_SUM)));
    tu_assert_graph_error(g, "logits f32[3] and targets f64[3]", NULL);
    kiln_graph_free(g);

    g = kiln_graph_new();
    f = kiln_placeholder(g, "f", KILN_F32, 1, (int64_t[]){3});
    assert_false(kiln_value_ok(kiln_loss_mse(g, f, f, (kiln_reduction)7)));
    tu_assert_graph_error(g, "unknown reduction 7", NULL);
    /* Poisoned inputs stay poisoned without a second error. */
    assert_false(kiln_value_ok(kiln_loss_mse(g, kiln_value_invalid(), f, KILN_REDUCTION_SUM)));
    tu_assert_graph_error(g, "unknown reduction 7", NULL);
    kiln_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_mse),
        TU_TEST(test_softmax_ce_labels_and_probs),
        TU_TEST(test_softmax_ce_soft_labels_rank3_i32),
        TU_TEST(test_sigmoid_ce),
        TU_TEST(test_gradients_fd),
        TU_TEST(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
