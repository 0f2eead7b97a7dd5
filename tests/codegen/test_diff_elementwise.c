/* test_diff_elementwise.c -- every elementwise op compiled by the CPU
 * backend against the reference kernels, over every dtype the op takes and
 * shapes that exercise broadcasting, size-1 and size-0 dims, odd sizes that
 * defeat vector widths, and symbolic placeholder dims. Integers and bools
 * must agree exactly; floats within a tolerance for the dtype (the compiled
 * code computes f32, f16 and bf16 in f32, the reference in double). */
#include "common/testutil.h"

#include <stdbool.h>
#include <string.h>

static const kiln_dtype FLOATS[] = {KILN_F32, KILN_F64, KILN_F16, KILN_BF16};
static const kiln_dtype INTS[] = {KILN_I8,  KILN_U8,  KILN_I16, KILN_U16,
                                  KILN_I32, KILN_U32, KILN_I64, KILN_U64};
#define NINTS 8

/* i16, u16, u32, u64 share every shape path with the other integers: they
 * run fewer shapes, and no symbolic dims, to keep the test quick. */
static bool light(kiln_dtype dt)
{
    return dt == KILN_I16 || dt == KILN_U16 || dt == KILN_U32 || dt == KILN_U64;
}

static bool is_unsigned(kiln_dtype dt)
{
    return dt == KILN_U8 || dt == KILN_U16 || dt == KILN_U32 || dt == KILN_U64 || dt == KILN_BOOL;
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

/* Pairs of operand shapes: equal, broadcast both ways, scalar, size 0. */
static const shape PAIRS[][2] = {
    {{2, {7, 13}}, {2, {7, 13}}},
    {{3, {5, 1, 9}}, {2, {4, 1}}},
    {{0, {0}}, {1, {33}}},
    {{1, {1}}, {3, {2, 3, 1}}},
    {{2, {0, 3}}, {1, {3}}},
    {{1, {1000}}, {1, {1000}}},
};
#define NPAIRS (int)(sizeof PAIRS / sizeof PAIRS[0])

static uint64_t seed = 1;

static tu_batch batch;

/* Adds op(a[, b]) on placeholders of the given shapes to the batch (diffed
 * at the next tu_batch_flush), within the output dtype's tolerance. */
static void diff_op(const char *op, int n, const kiln_dtype *dts, const shape *shapes,
                    const double *lo, const double *hi, kiln_attrs *attrs, bool symbolic)
{
    kiln_dtype odt = dts[n - 1]; /* the output's: the last operand's (Where's x), or Cast's "to" */
    if (!strcmp(op, "Cast")) {
        kiln_graph *t = kiln_graph_new();
        kiln_value x = kiln_placeholder(t, "x", dts[0], 0, NULL);
        odt = kiln_value_dtype(t, kiln_op(t, op, &x, 1, attrs));
        kiln_graph_free(t);
    }
    tu_batch_op(&batch, op, n, dts, shapes, lo, hi, attrs, symbolic, &seed, rtol_for(odt));
}

static void diff_binary(const char *op, const kiln_dtype *dts, int ndt, double lo0, double hi0,
                        double lo1, double hi1)
{
    for (int d = 0; d < ndt; d++) {
        kiln_dtype two[2] = {dts[d], dts[d]};
        double lo[2] = {lo0, lo1}, hi[2] = {hi0, hi1};
        /* unsigned ints cannot hold negative test values */
        if (is_unsigned(dts[d])) {
            if (hi[0] <= 0 || hi[1] <= 0) continue;
            if (lo[0] < 0) lo[0] = 0;
            if (lo[1] < 0) lo[1] = 0;
        }
        for (int p = 0; p < NPAIRS; p++) {
            if (light(dts[d]) && p != 1 && p != 4) continue;
            diff_op(op, 2, two, PAIRS[p], lo, hi, NULL, false);
            if (!light(dts[d])) diff_op(op, 2, two, PAIRS[p], lo, hi, NULL, true);
        }
    }    tu_batch_flush(&batch);
}

static void test_arithmetic(void **state)
{
    (void)state;
    static const char *ops[] = {"Add", "Sub", "Mul", "Maximum", "Minimum"};
    for (int i = 0; i < 5; i++) {
        diff_binary(ops[i], FLOATS, 4, -10, 10, -10, 10);
        diff_binary(ops[i], INTS, NINTS, -100, 100, -100, 100);
    }
    diff_binary("Div", FLOATS, 4, -10, 10, 0.5, 4);
    diff_binary("Div", INTS, NINTS, -100, 100, 1, 9);
    diff_binary("Div", INTS, NINTS, -100, 100, -9, -1);
    diff_binary("Pow", FLOATS, 4, 0.1, 3, -2, 2);
    diff_binary("Pow", INTS, NINTS, -5, 5, 0, 5);
}

static void test_int_division_by_zero(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value a = kiln_placeholder(g, "a", KILN_I32, 1, (int64_t[]){3});
    kiln_value b = kiln_placeholder(g, "b", KILN_I32, 1, (int64_t[]){3});
    kiln_value y = kiln_div(g, a, b);
    kiln_tensor *ta = tu_i32(1, (int64_t[]){3}, (int32_t[]){6, INT32_MIN, 5});
    kiln_tensor *tb = tu_i32(1, (int64_t[]){3}, (int32_t[]){3, -1, 0});
    kiln_tensor *r = NULL;
    char msg[512];
    int code = tu_run_backend(g, KILN_BACKEND_DEFAULT, 1, &y, &r, 2, (kiln_value[]){a, b},
                              (kiln_tensor *[]){ta, tb}, msg, sizeof msg);
    assert_int_equal(code, KILN_ERR_INVALID_ARGUMENT);
    assert_null(r);
    assert_non_null(strstr(msg, "Div"));
    assert_non_null(strstr(msg, "division by zero"));
    /* MIN / -1 wraps instead of trapping */
    int32_t *bd = kiln_tensor_data(tb);
    bd[2] = 1;
    tu_diff(g, 1, &y, 2, (kiln_value[]){a, b}, (kiln_tensor *[]){ta, tb}, 0, 0);
    kiln_tensor_free(ta);
    kiln_tensor_free(tb);
    kiln_graph_free(g);
}

static void diff_unary(const char *op, const kiln_dtype *dts, int ndt, double lo, double hi,
                       kiln_attrs *attrs)
{
    static const shape SHAPES[] = {{2, {7, 13}}, {0, {0}}, {3, {2, 0, 3}}, {1, {4099}}};
    for (int d = 0; d < ndt; d++)
        for (int s = 0; s < 4; s++) {
            if (light(dts[d]) && s != 3) continue;
            double l = is_unsigned(dts[d]) && lo < 0 ? 0 : lo;
            diff_op(op, 1, &dts[d], &SHAPES[s], &l, &hi, attrs, false);
            if (!light(dts[d])) diff_op(op, 1, &dts[d], &SHAPES[s], &l, &hi, attrs, true);
        }
    tu_batch_flush(&batch);
}

static void test_unary(void **state)
{
    (void)state;
    static const char *float_ops[] = {"Exp", "Tanh", "Sigmoid", "Erf", "Softplus", "Reciprocal",
                                      "Gelu", "LeakyRelu", "Elu"};
    for (int i = 0; i < 9; i++) diff_unary(float_ops[i], FLOATS, 4, -8, 8, NULL);
    diff_unary("Log", FLOATS, 4, 0.01, 100, NULL);
    diff_unary("Sqrt", FLOATS, 4, 0, 100, NULL);
    diff_unary("Rsqrt", FLOATS, 4, 0.01, 100, NULL);
    static const kiln_dtype SIGNED[] = {KILN_F32, KILN_F64, KILN_F16, KILN_BF16, KILN_I8, KILN_I16, KILN_I32, KILN_I64};
    diff_unary("Neg", SIGNED, 8, -100, 100, NULL);
    diff_unary("Relu", SIGNED, 8, -100, 100, NULL);
    diff_unary("Abs", FLOATS, 4, -100, 100, NULL);
    diff_unary("Abs", INTS, NINTS, -100, 100, NULL);
    diff_unary("Identity", FLOATS, 4, -100, 100, NULL);
    diff_unary("Identity", INTS, NINTS, -100, 100, NULL);

    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_float(a, "alpha", 0.3);
    diff_unary("LeakyRelu", FLOATS, 4, -8, 8, a);
    diff_unary("Elu", FLOATS, 4, -8, 8, a);
    kiln_attrs_free(a);
    a = kiln_attrs_new();
    kiln_attrs_string(a, "approximate", "tanh");
    diff_unary("Gelu", FLOATS, 4, -8, 8, a);
    kiln_attrs_free(a);
    a = kiln_attrs_new();
    kiln_attrs_float(a, "min", -2.5);
    kiln_attrs_float(a, "max", 3.5);
    diff_unary("Clip", FLOATS, 4, -8, 8, a);
    diff_unary("Clip", INTS, NINTS, -8, 8, a);
    kiln_attrs_free(a);
    diff_unary("Clip", FLOATS, 4, -8, 8, NULL);
}

static void test_compare_logic(void **state)
{
    (void)state;
    static const char *ops[] = {"Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"};
    for (int i = 0; i < 5; i++) {
        /* small integer ranges so that equal values occur */
        diff_binary(ops[i], INTS, NINTS, -3, 3, -3, 3);
        diff_binary(ops[i], FLOATS, 4, -2, 2, -2, 2);
    }
    static const kiln_dtype B[] = {KILN_BOOL};
    diff_binary("Equal", B, 1, 0, 2, 0, 2);
    diff_binary("And", B, 1, 0, 2, 0, 2);
    diff_binary("Or", B, 1, 0, 2, 0, 2);
    diff_binary("Xor", B, 1, 0, 2, 0, 2);
    diff_unary("Not", B, 1, 0, 2, NULL);
}

static void test_where(void **state)
{
    (void)state;
    static const kiln_dtype ALL[] = {KILN_F32, KILN_F64, KILN_F16, KILN_BF16, KILN_I8, KILN_U8, KILN_I32, KILN_I64, KILN_BOOL,
                                     KILN_I16, KILN_U16, KILN_U32, KILN_U64};
    const shape sh[3] = {{2, {4, 1}}, {1, {5}}, {2, {1, 5}}};
    for (int d = 0; d < 13; d++) {
        kiln_dtype dts[3] = {KILN_BOOL, ALL[d], ALL[d]};
        double lo[3] = {0, 0, 0}, hi[3] = {2, 100, 100};
        diff_op("Where", 3, dts, sh, lo, hi, NULL, false);
        diff_op("Where", 3, dts, sh, lo, hi, NULL, true);
    }
    tu_batch_flush(&batch);
}

static void test_cast(void **state)
{
    (void)state;
    static const kiln_dtype ALL[] = {KILN_F32, KILN_F64, KILN_F16, KILN_BF16, KILN_I8, KILN_U8, KILN_I32, KILN_I64, KILN_BOOL,
                                     KILN_I16, KILN_U16, KILN_U32, KILN_U64};
    const shape sh = {2, {3, 37}};
    /* "to" outermost: a batch holds one output dtype (one tolerance) */
    for (int to = 0; to < 13; to++)
        for (int from = 0; from < 13; from++) {
            kiln_attrs *a = kiln_attrs_new();
            kiln_attrs_dtype(a, "to", ALL[to]);
            double lo = is_unsigned(ALL[from]) ? 0 : -300;
            double hi = ALL[from] == KILN_BOOL ? 2 : 300;
            diff_op("Cast", 1, &ALL[from], &sh, &lo, &hi, a, false);
            kiln_attrs_free(a);
        }
    tu_batch_flush(&batch);
}

/* Runs op(a, b) (b NULL: op(a)) on both backends; both must give want
 * (as ir_load_i64 bits: u64 above INT64_MAX reads negative). */
static void check_both(const char *op, kiln_tensor *ta, kiln_tensor *tb, kiln_attrs *attrs,
                       const int64_t *want, size_t n)
{
    kiln_graph *g = kiln_graph_new();
    kiln_value ph[2];
    kiln_tensor *feeds[2] = {ta, tb};
    int nin = tb ? 2 : 1;
    for (int i = 0; i < nin; i++) {
        char name[2] = {(char)('a' + i), 0};
        ph[i] = kiln_placeholder(g, name, kiln_tensor_dtype(feeds[i]), kiln_tensor_rank(feeds[i]),
                                 kiln_tensor_dims(feeds[i]));
    }
    kiln_value y = kiln_op(g, op, ph, nin, attrs);
    if (kiln_graph_error(g)) fail_msg("%s: %s", op, kiln_graph_error(g));
    kiln_backend backends[2] = {KILN_BACKEND_REFERENCE, KILN_BACKEND_DEFAULT};
    for (int b = 0; b < 2; b++) {
        kiln_tensor *r = NULL;
        char msg[512];
        if (tu_run_backend(g, backends[b], 1, &y, &r, nin, ph, feeds, msg, sizeof msg))
            fail_msg("%s (backend %d): %s", op, b, msg);
        tu_assert_ints(r, want, n);
        kiln_tensor_free(r);
    }
    kiln_graph_free(g);
}

static kiln_tensor *u64s(size_t n, const uint64_t *v)
{
    return kiln_tensor_from_data(KILN_U64, 1, (int64_t[]){(int64_t)n}, v);
}

static kiln_tensor *u32s(size_t n, const uint32_t *v)
{
    return kiln_tensor_from_data(KILN_U32, 1, (int64_t[]){(int64_t)n}, v);
}

/* Values the random tests never reach: u64 above INT64_MAX, u32 above
 * INT32_MAX, wrap-around and i16 division signs, checked by hand. */
static void test_wide_int_values(void **state)
{
    (void)state;
    const uint64_t M = 0xffffffffffffffffu, H = 0x8000000000000000u;
    kiln_tensor *a = u64s(4, (uint64_t[]){M, H, 5, 0});
    kiln_tensor *b = u64s(4, (uint64_t[]){3, 1, H, 1});
    check_both("Greater", a, b, NULL, (int64_t[]){1, 1, 0, 0}, 4);
    check_both("Less", a, b, NULL, (int64_t[]){0, 0, 1, 1}, 4);
    check_both("Maximum", a, b, NULL, (int64_t[]){-1, INT64_MIN, INT64_MIN, 1}, 4);
    check_both("Minimum", a, b, NULL, (int64_t[]){3, 1, 5, 0}, 4);
    /* 0xffff...ff / 3 = 0x5555...55; 2^63 / 1; 5 / 2^63 = 0 */
    check_both("Div", a, b, NULL, (int64_t[]){0x5555555555555555, INT64_MIN, 0, 0}, 4);
    check_both("Add", a, b, NULL, (int64_t[]){2, INT64_MIN + 1, INT64_MIN + 5, 1}, 4); /* wraps */
    kiln_attrs *fm = kiln_attrs_new();
    kiln_attrs_int(fm, "fmod", 0);
    check_both("Mod", a, b, fm, (int64_t[]){0, 0, 5, 0}, 4); /* 2^64-1 = 3 * 0x55..55 */
    kiln_attrs_free(fm);
    check_both("Abs", a, NULL, NULL, (int64_t[]){-1, INT64_MIN, 5, 0}, 4);
    check_both("Sign", a, NULL, NULL, (int64_t[]){1, 1, 1, 0}, 4);
    kiln_attrs *cl = kiln_attrs_new();
    kiln_attrs_float(cl, "min", 4);
    kiln_attrs_float(cl, "max", 1e19); /* above 2^63 */
    check_both("Clip", a, NULL, cl, (int64_t[]){(int64_t)10000000000000000000u, INT64_MIN, 5, 4}, 4);
    kiln_attrs_free(cl);
    /* casts: u64 -> f64 -> u64 and i64 */
    kiln_attrs *to = kiln_attrs_new();
    kiln_attrs_dtype(to, "to", KILN_F64);
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_U64, 1, (int64_t[]){4});
    kiln_value f = kiln_op(g, "Cast", &x, 1, to);
    kiln_tensor *r = NULL;
    assert_int_equal(tu_run_backend(g, KILN_BACKEND_DEFAULT, 1, &f, &r, 1, &x, &a, NULL, 0), KILN_OK);
    tu_assert_close(r, (double[]){18446744073709551616.0, 9223372036854775808.0, 5, 0}, 4, 0, 0);
    kiln_tensor_free(r);
    kiln_graph_free(g);
    kiln_attrs_free(to);
    kiln_tensor *fl = kiln_tensor_from_data(KILN_F64, 1, (int64_t[]){4},
                                            (double[]){1.5e19, 3e19, -1.0, 9.5});
    to = kiln_attrs_new();
    kiln_attrs_dtype(to, "to", KILN_U64);
    check_both("Cast", fl, NULL, to, (int64_t[]){(int64_t)15000000000000000000u, -1, -1, 9}, 4);
    kiln_attrs_free(to);
    kiln_tensor_free(fl);
    kiln_tensor_free(a);
    kiln_tensor_free(b);

    /* u32 above 2^31: unsigned compares, wrap-around, casts to float */
    kiln_tensor *c = u32s(3, (uint32_t[]){3000000000u, 4294967295u, 7});
    kiln_tensor *d = u32s(3, (uint32_t[]){5, 1, 2147483648u});
    check_both("Greater", c, d, NULL, (int64_t[]){1, 1, 0}, 3);
    check_both("Add", c, d, NULL, (int64_t[]){3000000005LL, 0, 2147483655LL}, 3);
    check_both("Sub", d, c, NULL, (int64_t[]){1294967301LL, 2, 2147483641LL}, 3);
    check_both("Mul", c, d, NULL, (int64_t[]){2115098112LL, 4294967295LL, 2147483648LL}, 3);
    check_both("Div", c, d, NULL, (int64_t[]){600000000, 4294967295LL, 0}, 3);
    to = kiln_attrs_new();
    kiln_attrs_dtype(to, "to", KILN_I64);
    check_both("Cast", c, NULL, to, (int64_t[]){3000000000LL, 4294967295LL, 7}, 3);
    kiln_attrs_free(to);
    to = kiln_attrs_new();
    kiln_attrs_dtype(to, "to", KILN_F32);
    g = kiln_graph_new();
    x = kiln_placeholder(g, "x", KILN_U32, 1, (int64_t[]){3});
    f = kiln_op(g, "Cast", &x, 1, to);
    kiln_backend backends[2] = {KILN_BACKEND_REFERENCE, KILN_BACKEND_DEFAULT};
    for (int k = 0; k < 2; k++) {
        assert_int_equal(tu_run_backend(g, backends[k], 1, &f, &r, 1, &x, &c, NULL, 0), KILN_OK);
        tu_assert_close(r, (double[]){3e9, 4294967296.0, 7}, 3, 0, 0);
        kiln_tensor_free(r);
    }
    kiln_graph_free(g);
    kiln_attrs_free(to);
    kiln_tensor_free(c);
    kiln_tensor_free(d);

    /* i16: division truncates toward zero, Mod takes the divisor's sign */
    kiln_tensor *e = kiln_tensor_from_data(KILN_I16, 1, (int64_t[]){4}, (int16_t[]){-7, 7, -7, -32768});
    kiln_tensor *h = kiln_tensor_from_data(KILN_I16, 1, (int64_t[]){4}, (int16_t[]){2, -2, -2, -1});
    check_both("Div", e, h, NULL, (int64_t[]){-3, -3, 3, -32768}, 4);
    check_both("Mod", e, h, NULL, (int64_t[]){1, -1, -1, 0}, 4);
    check_both("Add", e, e, NULL, (int64_t[]){-14, 14, -14, 0}, 4); /* -32768 * 2 wraps */
    kiln_tensor_free(e);
    kiln_tensor_free(h);
}

/* Large enough to be split over the session's thread pool. */
static void test_parallel(void **state)
{
    (void)state;
    const shape big[2] = {{2, {3, 70001}}, {2, {3, 1}}};
    kiln_dtype dts[2] = {KILN_F32, KILN_F32};
    double lo[2] = {-5, -5}, hi[2] = {5, 5};
    diff_op("Mul", 2, dts, big, lo, hi, NULL, false);
    const shape big1 = {2, {257, 1031}};
    diff_op("Tanh", 1, dts, &big1, lo, hi, NULL, true);
    tu_batch_flush(&batch);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_arithmetic),
        TU_TEST(test_int_division_by_zero),
        TU_TEST(test_unary),
        TU_TEST(test_compare_logic),
        TU_TEST(test_where),
        TU_TEST(test_cast),
        TU_TEST(test_wide_int_values),
        TU_TEST(test_parallel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
