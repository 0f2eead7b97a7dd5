/* test_random.c -- the counter-based generator (ir_random_uniform against
 * values computed independently in Python from the construction documented
 * in ir/ops/random.c), RandomUniform and RandomNormal: inference and its
 * error cases, statistics of 100000 samples, ranges in every float dtype,
 * and reproducibility across runs and sessions. */
#include "common/testutil.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"

/* ---- the generator ---- */

static void test_generator_golden(void **state)
{
    (void)state;
    /* Python: h = mix(seed + G); h = mix(h ^ mix(counter + 2G));
     * h = mix(h ^ mix(i + 3G)); (h >> 11) below, with splitmix64's mix. */
    static const struct {
        uint64_t seed, counter, i, bits;
    } golden[] = {
        {0, 0, 0, 4497265488341621ull},
        {0, 0, 1, 7294386261729695ull},
        {1, 0, 0, 6094542330605844ull},
        {0, 1, 0, 7143402923333945ull},
        {42, 7, 123456789, 4646400996681710ull},
        {UINT64_MAX, UINT64_MAX, UINT64_MAX, 6145051080052026ull},
    };
    for (size_t k = 0; k < sizeof golden / sizeof golden[0]; k++) {
        double u = ir_random_uniform(golden[k].seed, golden[k].counter, golden[k].i);
        double want = (double)golden[k].bits * 0x1p-53;
        if (u != want) fail_msg("case %zu: got %.17g, want %.17g", k, u, want);
    }
}

static void test_generator_streams(void **state)
{
    (void)state;
    /* same arguments, same value; any argument changed, a different value */
    int same = 0;
    for (uint64_t i = 0; i < 1000; i++) {
        double u = ir_random_uniform(5, 9, i);
        assert_true(u >= 0 && u < 1);
        assert_true(u == ir_random_uniform(5, 9, i));
        same += u == ir_random_uniform(6, 9, i);
        same += u == ir_random_uniform(5, 10, i);
        same += u == ir_random_uniform(5, 9, i + 1);
    }
    assert_int_equal(same, 0);
}

/* ---- graphs and sessions ---- */

static kiln_value random_op(kiln_graph *g, const char *op, kiln_dtype dt, int rank, const int64_t *dims,
                            double a, double b, int64_t seed)
{
    kiln_attrs *at = kiln_attrs_new();
    kiln_attrs_dtype(at, "dtype", dt);
    kiln_attrs_ints(at, "shape", dims, rank);
    bool uniform = strcmp(op, "RandomUniform") == 0;
    kiln_attrs_float(at, uniform ? "low" : "mean", a);
    kiln_attrs_float(at, uniform ? "high" : "scale", b);
    kiln_attrs_int(at, "seed", seed);
    kiln_value y = kiln_op(g, op, NULL, 0, at);
    kiln_attrs_free(at);
    return y;
}

static kiln_session *ref_session(kiln_graph *g)
{
    kiln_session_options o;
    kiln_session_options_init(&o);
    o.backend = KILN_BACKEND_REFERENCE;
    kiln_session *s = kiln_session_new(g, &o, NULL);
    assert_non_null(s);
    return s;
}

static kiln_tensor *run_once(kiln_session *s, kiln_value y)
{
    kiln_status *st = kiln_status_new();
    kiln_tensor *r = NULL;
    kiln_session_run(s, NULL, NULL, 0, &y, &r, 1, NULL, 0, st);
    if (kiln_status_code(st)) fail_msg("run: %s", kiln_status_message(st));
    kiln_status_free(st);
    assert_non_null(r);
    return r;
}

static bool same_tensor(const kiln_tensor *a, const kiln_tensor *b)
{
    return kiln_tensor_nbytes(a) == kiln_tensor_nbytes(b) &&
           memcmp(kiln_tensor_const_data(a), kiln_tensor_const_data(b), kiln_tensor_nbytes(a)) == 0;
}

/* Mean and (population) variance of a float tensor. */
static void moments(const kiln_tensor *t, double *mean, double *var)
{
    size_t n = kiln_tensor_size(t);
    double s = 0, ss = 0;
    for (size_t i = 0; i < n; i++) s += ir_load_f64(kiln_tensor_dtype(t), kiln_tensor_const_data(t), i);
    *mean = s / (double)n;
    for (size_t i = 0; i < n; i++) {
        double d = ir_load_f64(kiln_tensor_dtype(t), kiln_tensor_const_data(t), i) - *mean;
        ss += d * d;
    }
    *var = ss / (double)n;
}

#define NSAMPLES 100000

static void check_uniform(kiln_dtype dt, double lo, double hi, int64_t seed, double var_rtol)
{
    kiln_graph *g = kiln_graph_new();
    kiln_value y = random_op(g, "RandomUniform", dt, 2, (int64_t[]){100, NSAMPLES / 100}, lo, hi, seed);
    if (kiln_graph_error(g)) fail_msg("%s", kiln_graph_error(g));
    kiln_session *s = ref_session(g);
    kiln_tensor *r = run_once(s, y);
    tu_assert_shape(r, dt, 2, (int64_t[]){100, NSAMPLES / 100});
    for (size_t i = 0; i < NSAMPLES; i++) {
        double v = ir_load_f64(dt, kiln_tensor_const_data(r), i);
        if (!(v >= lo && v < hi)) fail_msg("%s sample %zu is %.17g, outside [%g, %g)", kiln_dtype_name(dt), i, v, lo, hi);
    }
    double mean, var, w = hi - lo;
    moments(r, &mean, &var);
    double se = w / sqrt(12.0 * NSAMPLES);
    if (fabs(mean - (lo + hi) / 2) > 5 * se)
        fail_msg("%s: mean %g, want %g +- %g", kiln_dtype_name(dt), mean, (lo + hi) / 2, 5 * se);
    if (fabs(var - w * w / 12) > var_rtol * w * w / 12)
        fail_msg("%s: variance %g, want %g", kiln_dtype_name(dt), var, w * w / 12);
    /* a quarter of the samples in each quarter of the interval */
    size_t quarter[4] = {0};
    for (size_t i = 0; i < NSAMPLES; i++) {
        int q = (int)((ir_load_f64(dt, kiln_tensor_const_data(r), i) - lo) / w * 4);
        quarter[q < 0 ? 0 : q > 3 ? 3 : q]++;
    }
    for (int q = 0; q < 4; q++)
        if (fabs((double)quarter[q] - NSAMPLES / 4.0) > 5 * sqrt(NSAMPLES * 0.25 * 0.75))
            fail_msg("%s: quarter %d holds %zu samples", kiln_dtype_name(dt), q, quarter[q]);
    kiln_tensor_free(r);
    kiln_session_free(s);
    kiln_graph_free(g);
}

static void test_uniform_statistics(void **state)
{
    (void)state;
    check_uniform(KILN_F32, -2, 3, 1, 0.02);
    check_uniform(KILN_F64, 0, 1, 123456789, 0.02);
    check_uniform(KILN_F64, -1e-3, 1e-3, -7, 0.02);
    /* narrow dtypes: values near high round up to it and must be stepped back */
    check_uniform(KILN_F16, 0, 1, 3, 0.02);
    check_uniform(KILN_BF16, 0, 1, 4, 0.05);
    check_uniform(KILN_BF16, -3, -1, 5, 0.05);
}

/* A high that the dtype cannot hold: still every value < high. */
static void test_uniform_narrow_range(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value y = random_op(g, "RandomUniform", KILN_BF16, 1, (int64_t[]){4096}, 0.5, 0.50001, 11);
    kiln_value z = random_op(g, "RandomUniform", KILN_F16, 1, (int64_t[]){4096}, 60000, 1e6, 12);
    kiln_value w = random_op(g, "RandomUniform", KILN_F16, 1, (int64_t[]){4096}, 1000, 1001, 13);
    kiln_session *s = ref_session(g);
    kiln_tensor *r = run_once(s, y);
    for (size_t i = 0; i < 4096; i++) {
        double v = ir_load_f64(KILN_BF16, kiln_tensor_const_data(r), i);
        assert_true(v >= 0.5 && v < 0.50001);
    }
    kiln_tensor_free(r);
    r = run_once(s, z);
    for (size_t i = 0; i < 4096; i++) {
        double v = ir_load_f64(KILN_F16, kiln_tensor_const_data(r), i);
        assert_true(v >= 60000 && v <= 65504); /* never inf */
    }
    kiln_tensor_free(r);
    r = run_once(s, w); /* f16 holds only 1000 and 1000.5 in [1000, 1001) */
    size_t n1000 = 0;
    for (size_t i = 0; i < 4096; i++) {
        double v = ir_load_f64(KILN_F16, kiln_tensor_const_data(r), i);
        assert_true(v == 1000 || v == 1000.5);
        n1000 += v == 1000;
    }
    assert_true(n1000 > 0 && n1000 < 4096);
    kiln_tensor_free(r);
    kiln_session_free(s);
    kiln_graph_free(g);
}

static void check_normal(kiln_dtype dt, double mu, double sigma, int64_t seed, int64_t n, double tol)
{
    kiln_graph *g = kiln_graph_new();
    kiln_value y = random_op(g, "RandomNormal", dt, 1, &n, mu, sigma, seed);
    if (kiln_graph_error(g)) fail_msg("%s", kiln_graph_error(g));
    kiln_session *s = ref_session(g);
    kiln_tensor *r = run_once(s, y);
    tu_assert_shape(r, dt, 1, &n);
    double mean, var;
    moments(r, &mean, &var);
    if (fabs(mean - mu) > 5 * sigma / sqrt((double)n))
        fail_msg("%s: mean %g, want %g", kiln_dtype_name(dt), mean, mu);
    if (fabs(var - sigma * sigma) > tol * sigma * sigma)
        fail_msg("%s: variance %g, want %g", kiln_dtype_name(dt), var, sigma * sigma);
    /* 68.27% within one sigma, 95.45% within two */
    size_t in1 = 0, in2 = 0;
    for (int64_t i = 0; i < n; i++) {
        double z = fabs(ir_load_f64(dt, kiln_tensor_const_data(r), (size_t)i) - mu) / sigma;
        assert_true(isfinite(z));
        in1 += z < 1;
        in2 += z < 2;
    }
    double f1 = (double)in1 / (double)n, f2 = (double)in2 / (double)n;
    if (fabs(f1 - 0.6827) > 0.01 || fabs(f2 - 0.9545) > 0.006)
        fail_msg("%s: %.4f within 1 sigma, %.4f within 2", kiln_dtype_name(dt), f1, f2);
    kiln_tensor_free(r);
    kiln_session_free(s);
    kiln_graph_free(g);
}

static void test_normal_statistics(void **state)
{
    (void)state;
    check_normal(KILN_F32, 0, 1, 0, NSAMPLES, 0.03);
    check_normal(KILN_F64, 3, 0.5, 99, NSAMPLES + 1, 0.03); /* odd count: the last pair is half used */
    check_normal(KILN_F16, -1, 2, 7, NSAMPLES, 0.03);
    check_normal(KILN_BF16, 0, 1, 8, NSAMPLES, 0.04);
}

/* scale 0 gives the mean exactly; an odd shape fills every element. */
static void test_normal_edge(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value y = random_op(g, "RandomNormal", KILN_F64, 2, (int64_t[]){3, 3}, 2.5, 0, 1);
    kiln_value z = random_op(g, "RandomNormal", KILN_F32, 0, NULL, 0, 1, 1);
    kiln_value e = random_op(g, "RandomUniform", KILN_F32, 2, (int64_t[]){0, 3}, 0, 1, 1);
    assert_null(kiln_graph_error(g));
    kiln_session *s = ref_session(g);
    kiln_tensor *r = run_once(s, y);
    tu_assert_close(r, (double[]){2.5, 2.5, 2.5, 2.5, 2.5, 2.5, 2.5, 2.5, 2.5}, 9, 0, 0);
    kiln_tensor_free(r);
    r = run_once(s, z);
    tu_assert_shape(r, KILN_F32, 0, NULL);
    assert_true(isfinite(*(const float *)kiln_tensor_const_data(r)));
    kiln_tensor_free(r);
    r = run_once(s, e);
    tu_assert_shape(r, KILN_F32, 2, (int64_t[]){0, 3});
    kiln_tensor_free(r);
    kiln_session_free(s);
    kiln_graph_free(g);
}

/* Runs differ; a new session on the same graph repeats the first session's
 * runs; the same seed in two graphs of the same layout gives the same
 * values, different seeds different ones; two nodes differ. */
static void test_reproducibility(void **state)
{
    (void)state;
    for (int op = 0; op < 2; op++) {
        const char *name = op ? "RandomNormal" : "RandomUniform";
        kiln_graph *g = kiln_graph_new();
        kiln_value y = random_op(g, name, KILN_F32, 1, (int64_t[]){64}, 0, 1, 17);
        kiln_value y2 = random_op(g, name, KILN_F32, 1, (int64_t[]){64}, 0, 1, 17);
        kiln_graph *h = kiln_graph_new();
        kiln_value hy = random_op(h, name, KILN_F32, 1, (int64_t[]){64}, 0, 1, 17);
        kiln_graph *k = kiln_graph_new();
        kiln_value ky = random_op(k, name, KILN_F32, 1, (int64_t[]){64}, 0, 1, 18);
        assert_null(kiln_graph_error(g));

        kiln_session *s1 = ref_session(g);
        kiln_tensor *a1 = run_once(s1, y), *a2 = run_once(s1, y), *a3 = run_once(s1, y2);
        kiln_session *s2 = ref_session(g);
        kiln_tensor *b1 = run_once(s2, y), *b2 = run_once(s2, y);
        kiln_session *sh = ref_session(h), *sk = ref_session(k);
        kiln_tensor *h1 = run_once(sh, hy), *k1 = run_once(sk, ky);

        assert_false(same_tensor(a1, a2)); /* a second run draws new values */
        assert_true(same_tensor(a1, b1));  /* a new session repeats the first run */
        assert_true(same_tensor(a2, b2));  /* ... and the second */
        assert_false(same_tensor(a1, a3)); /* another node, another stream */
        assert_true(same_tensor(a1, h1));  /* same seed, same node, same run: same values */
        assert_false(same_tensor(h1, k1)); /* different seeds differ */

        kiln_tensor *all[] = {a1, a2, a3, b1, b2, h1, k1};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) kiln_tensor_free(all[i]);
        kiln_session_free(s1);
        kiln_session_free(s2);
        kiln_session_free(sh);
        kiln_session_free(sk);
        kiln_graph_free(g);
        kiln_graph_free(h);
        kiln_graph_free(k);
    }
}

/* ---- inference ---- */

static void test_infer(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_ints(a, "shape", (int64_t[]){2, 0, 5}, 3);
    kiln_value y = kiln_op(g, "RandomUniform", NULL, 0, a); /* dtype defaults to f32 */
    kiln_value z = kiln_op(g, "RandomNormal", NULL, 0, a);
    kiln_attrs_free(a);
    assert_null(kiln_graph_error(g));
    int64_t d[8];
    assert_int_equal(kiln_value_dtype(g, y), KILN_F32);
    assert_int_equal(kiln_value_rank(g, y), 3);
    kiln_value_dims(g, y, d);
    assert_int_equal(d[0], 2);
    assert_int_equal(d[1], 0);
    assert_int_equal(d[2], 5);
    assert_int_equal(kiln_value_dtype(g, z), KILN_F32);
    assert_int_equal(kiln_value_rank(g, z), 3);
    kiln_graph_free(g);
}

/* Builds op with the given attributes and asserts the error names the op
 * and contains msg. */
static void expect_error(const char *op, kiln_attrs *a, const char *msg)
{
    kiln_graph *g = kiln_graph_new();
    kiln_value y = kiln_op(g, op, NULL, 0, a);
    assert_false(kiln_value_ok(y));
    tu_assert_graph_error(g, op, msg, NULL);
    kiln_graph_free(g);
    kiln_attrs_free(a);
}

static kiln_attrs *shape_attrs(void)
{
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_ints(a, "shape", (int64_t[]){4}, 1);
    return a;
}

static void test_infer_errors(void **state)
{
    (void)state;
    for (int op = 0; op < 2; op++) {
        const char *name = op ? "RandomNormal" : "RandomUniform";
        expect_error(name, kiln_attrs_new(), "missing required attribute 'shape'");
        kiln_attrs *a = shape_attrs();
        kiln_attrs_dtype(a, "dtype", KILN_I32);
        expect_error(name, a, "dtype i32 is not supported (supported: f32, f64, f16, bf16)");
        a = shape_attrs();
        kiln_attrs_dtype(a, "dtype", KILN_BOOL);
        expect_error(name, a, "dtype bool is not supported");
        a = kiln_attrs_new();
        kiln_attrs_ints(a, "shape", (int64_t[]){2, -1}, 2);
        expect_error(name, a, "shape dim 1 is -1; dims must be >= 0");
        a = kiln_attrs_new();
        kiln_attrs_ints(a, "shape", (int64_t[]){1, 1, 1, 1, 1, 1, 1, 1, 1}, 9);
        expect_error(name, a, "shape has rank 9; the maximum is 8");
        a = shape_attrs();
        kiln_attrs_int(a, "dtype", 77);
        expect_error(name, a, "is not a dtype");
        a = shape_attrs();
        kiln_attrs_float(a, "seed", 1.5);
        expect_error(name, a, "attribute 'seed' must be");
        kiln_graph *g = kiln_graph_new();
        kiln_value x = kiln_placeholder(g, "x", KILN_F32, 0, NULL);
        a = shape_attrs();
        kiln_value y = kiln_op(g, name, &x, 1, a);
        kiln_attrs_free(a);
        assert_false(kiln_value_ok(y));
        tu_assert_graph_error(g, name, "takes 0 inputs, got 1", NULL);
        kiln_graph_free(g);
    }
    const char *bad_uniform[][2] = {{"low", "1"}, {"high", "-1"}, {"low", "nan"}, {"high", "inf"}, {"low", "-1e308"}};
    for (size_t i = 0; i < sizeof bad_uniform / sizeof bad_uniform[0]; i++) {
        kiln_attrs *a = shape_attrs();
        kiln_attrs_float(a, bad_uniform[i][0], strtod(bad_uniform[i][1], NULL));
        if (i == 4) kiln_attrs_float(a, "high", 1e308); /* width overflows */
        expect_error("RandomUniform", a, "low and high must be finite with low < high");
    }
    kiln_attrs *a = shape_attrs();
    kiln_attrs_float(a, "scale", -1);
    expect_error("RandomNormal", a, "scale finite and >= 0");
    a = shape_attrs();
    kiln_attrs_float(a, "mean", INFINITY);
    expect_error("RandomNormal", a, "mean must be finite");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_generator_golden),
        TU_TEST(test_generator_streams),
        TU_TEST(test_uniform_statistics),
        TU_TEST(test_uniform_narrow_range),
        TU_TEST(test_normal_statistics),
        TU_TEST(test_normal_edge),
        TU_TEST(test_reproducibility),
        TU_TEST(test_infer),
        TU_TEST(test_infer_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
