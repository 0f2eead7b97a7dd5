/* test_diff_math.c -- the ops of ir/ops/math.c compiled by the CPU backend
 * against the reference kernels, over every dtype each op takes, shapes
 * with size-0 dims and odd sizes that defeat vector widths, broadcasting
 * for Mod, symbolic placeholder dims, and fused into chains with other
 * elementwise ops. Integers and bools must agree exactly; floats within a
 * tolerance for the dtype (the compiled code computes f32, f16 and bf16 in
 * f32, the reference in double). */
#include "common/testutil.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

static const kiln_dtype FLOATS[] = {KILN_F32, KILN_F64, KILN_F16, KILN_BF16};
static const kiln_dtype INTS[] = {KILN_I8,  KILN_U8,  KILN_I16, KILN_U16,
                                  KILN_I32, KILN_U32, KILN_I64, KILN_U64};

static bool is_unsigned(kiln_dtype dt)
{
    return dt == KILN_U8 || dt == KILN_U16 || dt == KILN_U32 || dt == KILN_U64;
}

static double rtol_for(kiln_dtype dt)
{
    switch (dt) {
    case KILN_F64: return 1e-12;
    case KILN_F32: return 2e-6;
    case KILN_F16: return 2e-3;
    case KILN_BF16: return 1.6e-2;
    default: return 0;
    }
}

typedef tu_shape shape;

static uint64_t seed = 1;

static tu_batch batch;

/* Adds op(a[, b]) to the batch (diffed at the next tu_batch_flush). */
static void diff_op(const char *op, int n, const kiln_dtype *dts, const shape *shapes, const double *lo,
                    const double *hi, kiln_attrs *attrs, bool symbolic)
{
    /* IsNaN/IsInf give bools: compared exactly whatever the tolerance */
    tu_batch_op(&batch, op, n, dts, shapes, lo, hi, attrs, symbolic, &seed, rtol_for(dts[0]));
}

static void diff_unary(const char *op, const kiln_dtype *dts, int ndt, double lo, double hi, kiln_attrs *attrs)
{
    /* symbolic dims on the first shape only: each diff compiles a kernel */
    static const shape SHAPES[] = {{2, {7, 13}}, {0, {0}}, {3, {2, 0, 3}}, {1, {4099}}};
    for (int d = 0; d < ndt; d++)
        for (int s = 0; s < 4; s++) {
            double l = is_unsigned(dts[d]) && lo < 0 ? 0 : lo;
            diff_op(op, 1, &dts[d], &SHAPES[s], &l, &hi, attrs, false);
            if (s == 0) diff_op(op, 1, &dts[d], &SHAPES[s], &l, &hi, attrs, true);
        }
    tu_batch_flush(&batch);
}

static void test_unary(void **state)
{
    (void)state;
    static const char *wide[] = {"Floor", "Ceil", "Round", "Sign", "Sin", "Cos", "Atan", "Asinh"};
    for (int i = 0; i < 8; i++) diff_unary(wide[i], FLOATS, 4, -8, 8, NULL);
    diff_unary("Tan", FLOATS, 4, -1.4, 1.4, NULL);
    diff_unary("Sinh", FLOATS, 4, -6, 6, NULL);
    diff_unary("Cosh", FLOATS, 4, -6, 6, NULL);
    /* the inverses over their domains and a little outside (NaN there) */
    diff_unary("Asin", FLOATS, 4, -1.2, 1.2, NULL);
    diff_unary("Acos", FLOATS, 4, -1.2, 1.2, NULL);
    diff_unary("Atanh", FLOATS, 4, -0.95, 0.95, NULL);
    diff_unary("Atanh", FLOATS, 2, -1.5, 1.5, NULL);
    diff_unary("Acosh", FLOATS, 4, 1, 20, NULL);
    diff_unary("Acosh", FLOATS, 2, -2, 3, NULL);
    diff_unary("Sign", INTS, 8, -100, 100, NULL);
    diff_unary("IsNaN", FLOATS, 4, -8, 8, NULL);
    diff_unary("IsInf", FLOATS, 4, -8, 8, NULL);
}

/* IsNaN and IsInf on NaN and infinities, with every IsInf attribute pair. */
static void test_nan_inf(void **state)
{
    (void)state;
    const double v[] = {NAN, INFINITY, -INFINITY, 0.0, -0.0, 1.5, -2.0, 65504.0, NAN, 3.0, -INFINITY};
    for (int d = 0; d < 4; d++)
        for (int mode = 0; mode < 5; mode++) {
            kiln_graph *g = kiln_graph_new();
            kiln_value x = kiln_placeholder(g, "x", FLOATS[d], 1, (int64_t[]){-1});
            kiln_attrs *a = kiln_attrs_new();
            if (mode < 4) {
                kiln_attrs_int(a, "detect_positive", mode & 1);
                kiln_attrs_int(a, "detect_negative", (mode >> 1) & 1);
            }
            kiln_value y = kiln_op(g, mode == 4 ? "IsNaN" : "IsInf", &x, 1, a);
            kiln_attrs_free(a);
            assert_null(kiln_graph_error(g));
            kiln_tensor *t = tu_from_f64(FLOATS[d], 1, (int64_t[]){11}, v);
            tu_diff(g, 1, &y, 1, &x, &t, 0, 0);
            kiln_tensor_free(t);
            kiln_graph_free(g);
        }
}

static const shape PAIRS[][2] = {
    {{2, {7, 13}}, {2, {7, 13}}},
    {{3, {5, 1, 9}}, {2, {4, 1}}},
    {{0, {0}}, {1, {33}}},
    {{1, {1}}, {3, {2, 3, 1}}},
    {{2, {0, 3}}, {1, {3}}},
    {{1, {1000}}, {1, {1000}}},
};
#define NPAIRS (int)(sizeof PAIRS / sizeof PAIRS[0])

static void diff_mod(const kiln_dtype *dts, int ndt, int fm, double lo0, double hi0, double lo1, double hi1)
{
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_int(a, "fmod", fm);
    for (int d = 0; d < ndt; d++) {
        kiln_dtype two[2] = {dts[d], dts[d]};
        double lo[2] = {lo0, lo1}, hi[2] = {hi0, hi1};
        if (is_unsigned(dts[d])) {
            if (hi[1] <= 0) continue;
            if (lo[0] < 0) lo[0] = 0;
            if (lo[1] < 1) lo[1] = 1;
        }
        for (int p = 0; p < NPAIRS; p++) {
            diff_op("Mod", 2, two, PAIRS[p], lo, hi, a, false);
            diff_op("Mod", 2, two, PAIRS[p], lo, hi, a, true);
        }
    }
    tu_batch_flush(&batch);
    kiln_attrs_free(a);
}

static void test_mod(void **state)
{
    (void)state;
    diff_mod(FLOATS, 4, 1, -10, 10, 0.5, 4);
    diff_mod(FLOATS, 4, 1, -10, 10, -4, -0.5);
    for (int fm = 0; fm < 2; fm++) {
        diff_mod(INTS, 8, fm, -100, 100, 1, 9);
        diff_mod(INTS, 8, fm, -100, 100, -9, -1);
    }
}

/* MIN mod -1 is 0 (no trap); the extremes of every signed type. */
static void test_mod_extremes(void **state)
{
    (void)state;
    const double a[] = {-128, -128, 127, -7, 7, -7, 7, 0};
    const double b[] = {-1, 127, -128, 3, -3, -3, 3, -5};
    const kiln_dtype SIGNED[] = {KILN_I8, KILN_I16, KILN_I32, KILN_I64};
    for (int d = 0; d < 4; d++)
        for (int fm = 0; fm < 2; fm++) {
            kiln_graph *g = kiln_graph_new();
            kiln_value ab[2] = {kiln_placeholder(g, "a", SIGNED[d], 1, (int64_t[]){8}),
                                kiln_placeholder(g, "b", SIGNED[d], 1, (int64_t[]){8})};
            kiln_attrs *at = kiln_attrs_new();
            kiln_attrs_int(at, "fmod", fm);
            kiln_value y = kiln_op(g, "Mod", ab, 2, at);
            kiln_attrs_free(at);
            kiln_tensor *t[2] = {tu_from_f64(SIGNED[d], 1, (int64_t[]){8}, a),
                                 tu_from_f64(SIGNED[d], 1, (int64_t[]){8}, b)};
            if (SIGNED[d] == KILN_I64) {
                int64_t *ad = kiln_tensor_data(t[0]), *bd = kiln_tensor_data(t[1]);
                ad[0] = INT64_MIN, bd[0] = -1;
                ad[1] = INT64_MAX, bd[1] = INT64_MIN;
                ad[2] = INT64_MIN, bd[2] = INT64_MAX;
            }
            tu_diff(g, 1, &y, 2, ab, t, 0, 0);
            kiln_tensor_free(t[0]);
            kiln_tensor_free(t[1]);
            kiln_graph_free(g);
        }
}

/* The new ops fused with each other and with elementwise.c's ops: a chain
 * the fusion pass turns into one kernel, f16 intermediates included. */
static void test_fused_chain(void **state)
{
    (void)state;
    for (int d = 0; d < 4; d++)
        for (int sym = 0; sym < 2; sym++) {
            kiln_graph *g = kiln_graph_new();
            kiln_value x = kiln_placeholder(g, "x", FLOATS[d], 2, (int64_t[]){sym ? -1 : 33, 17});
            /* Floor(x * x) rounds the same in both: the product is rounded to
             * the dtype first */
            kiln_value f = kiln_op(g, "Floor", (kiln_value[]){kiln_mul(g, x, x)}, 1, NULL);
            kiln_attrs *a = kiln_attrs_new();
            kiln_attrs_int(a, "fmod", 1);
            kiln_value m = kiln_op(g, "Mod", (kiln_value[]){kiln_add(g, f, x), x}, 2, a);
            kiln_attrs_free(a);
            kiln_value y = kiln_add(g, kiln_op(g, "Atan", &m, 1, NULL), kiln_op(g, "Sign", &x, 1, NULL));
            y = kiln_add(g, y, kiln_op(g, "Sin", &x, 1, NULL));
            kiln_value z = kiln_op(g, "IsNaN", &y, 1, NULL);
            assert_null(kiln_graph_error(g));
            kiln_tensor *t = tu_random(FLOATS[d], 2, (int64_t[]){33, 17}, 0.5, 6, seed++);
            double rt = rtol_for(FLOATS[d]);
            tu_diff(g, 1, &y, 1, &x, &t, rt, rt);
            tu_diff(g, 1, &z, 1, &x, &t, 0, 0);
            kiln_value c = kiln_op(g, "Cosh", (kiln_value[]){kiln_op(g, "Round", &x, 1, NULL)}, 1, NULL);
            tu_diff(g, 1, &c, 1, &x, &t, rt, rt);
            kiln_tensor_free(t);
            kiln_graph_free(g);
        }
}

/* Large enough to be split over the session's thread pool. */
static void test_parallel(void **state)
{
    (void)state;
    kiln_dtype dts[2] = {KILN_I32, KILN_I32};
    const shape big[2] = {{2, {3, 70001}}, {2, {3, 1}}};
    double lo[2] = {-1000, 1}, hi[2] = {1000, 50};
    diff_op("Mod", 2, dts, big, lo, hi, NULL, false);
    const shape big1 = {2, {257, 1031}};
    kiln_dtype f = KILN_F32;
    double l = -5, h = 5;
    diff_op("Sin", 1, &f, &big1, &l, &h, NULL, true);
    tu_batch_flush(&batch);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_unary),
        TU_TEST(test_nan_inf),
        TU_TEST(test_mod),
        TU_TEST(test_mod_extremes),
        TU_TEST(test_fused_chain),
        TU_TEST(test_parallel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
