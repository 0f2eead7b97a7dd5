/* test_elementwise.c -- elementwise ops, Identity and Cast: shape
 * inference (with the error cases) and reference results against
 * hand-computed values and against numpy (expected_elementwise.h, generated
 * by gen_elementwise.py) for every op over every dtype it supports. */
#include "common/testutil.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "ir.h"
#include "ops/expected_elementwise.h"

static void test_add_broadcast(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value a = kiln_placeholder(g, "a", KILN_F32, 2, (int64_t[]){2, 3});
    kiln_value b = kiln_placeholder(g, "b", KILN_F32, 1, (int64_t[]){3});
    kiln_value y = kiln_add(g, a, b);
    assert_null(kiln_graph_error(g));
    kiln_tensor *ta = tu_f32(2, (int64_t[]){2, 3}, (float[]){1, 2, 3, 4, 5, 6});
    kiln_tensor *tb = tu_f32(1, (int64_t[]){3}, (float[]){10, 20, 30});
    kiln_tensor *r = tu_run(g, y, 2, (kiln_value[]){a, b}, (kiln_tensor *[]){ta, tb});
    tu_assert_shape(r, KILN_F32, 2, (int64_t[]){2, 3});
    tu_assert_close(r, (double[]){11, 22, 33, 14, 25, 36}, 6, 0, 0);
    kiln_tensor_free(r);
    kiln_tensor_free(ta);
    kiln_tensor_free(tb);
    kiln_graph_free(g);
}

static void test_add_shape_mismatch(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value a = kiln_placeholder(g, "a", KILN_F32, 2, (int64_t[]){2, 3});
    kiln_value b = kiln_placeholder(g, "b", KILN_F32, 1, (int64_t[]){4});
    kiln_value y = kiln_add(g, a, b);
    assert_false(kiln_value_ok(y));
    tu_assert_graph_error(g, "Add", "broadcast", "f32[2,3]", "f32[4]", NULL);
    /* poisoned: building on y keeps the first error */
    kiln_value z = kiln_relu(g, y);
    assert_false(kiln_value_ok(z));
    tu_assert_graph_error(g, "Add", NULL);
    kiln_graph_free(g);
}

static void test_int_div(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value a = kiln_placeholder(g, "a", KILN_I32, 1, (int64_t[]){4});
    kiln_value b = kiln_placeholder(g, "b", KILN_I32, 1, (int64_t[]){4});
    kiln_value y = kiln_div(g, a, b);
    kiln_tensor *ta = tu_i32(1, (int64_t[]){4}, (int32_t[]){7, -7, 9, 0});
    kiln_tensor *tb = tu_i32(1, (int64_t[]){4}, (int32_t[]){2, 2, -4, 5});
    kiln_tensor *r = tu_run(g, y, 2, (kiln_value[]){a, b}, (kiln_tensor *[]){ta, tb});
    tu_assert_ints(r, (int64_t[]){3, -3, -2, 0}, 4); /* C truncation */
    kiln_tensor_free(r);
    int32_t *bd = kiln_tensor_data(tb);
    bd[1] = 0;
    tu_run_fails(g, y, 2, (kiln_value[]){a, b}, (kiln_tensor *[]){ta, tb}, "division by zero");
    kiln_tensor_free(ta);
    kiln_tensor_free(tb);
    kiln_graph_free(g);
}

static void test_sigmoid_gelu(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F64, 1, (int64_t[]){3});
    kiln_value s = kiln_sigmoid(g, x);
    kiln_value ge = kiln_gelu(g, x);
    kiln_tensor *tx = tu_f64(1, (int64_t[]){3}, (double[]){-1000, 0, 2});
    kiln_tensor *r = tu_run(g, s, 1, &x, &tx);
    tu_assert_close(r, (double[]){0, 0.5, 1 / (1 + exp(-2.0))}, 3, 1e-15, 0);
    kiln_tensor_free(r);
    r = tu_run(g, ge, 1, &x, &tx);
    /* gelu(2) = 2 * Phi(2) = 2 * 0.9772498680518208 */
    tu_assert_close(r, (double[]){-0.0, 0, 1.9544997361036416}, 3, 1e-14, 0);
    kiln_tensor_free(r);
    kiln_tensor_free(tx);
    kiln_graph_free(g);
}

static void test_dtype_errors(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value a = kiln_placeholder(g, "a", KILN_I32, 1, (int64_t[]){4});
    kiln_value y = kiln_exp(g, a);
    assert_false(kiln_value_ok(y));
    tu_assert_graph_error(g, "Exp", "i32", "supported: f32", NULL);
    kiln_graph_free(g);

    g = kiln_graph_new();
    a = kiln_placeholder(g, "a", KILN_I32, 1, (int64_t[]){4});
    kiln_value b = kiln_placeholder(g, "b", KILN_F32, 1, (int64_t[]){4});
    y = kiln_mul(g, a, b);
    tu_assert_graph_error(g, "Mul", "different dtypes", "i32", "f32", NULL);
    kiln_graph_free(g);
}

/* ---- numpy-checked cases: every op, every dtype it takes ---- */

static double rtol_for(kiln_dtype dt)
{
    switch (dt) {
    case KILN_F64: return 1e-12;
    case KILN_F32: return 1e-6;
    case KILN_F16: return 1e-3;
    case KILN_BF16: return 8e-3;
    default: return 0;
    }
}

static kiln_tensor *case_input(const ew_case *c, int j, kiln_dtype dt)
{
    kiln_dtype idt = c->in_dt[j] ? (kiln_dtype)c->in_dt[j] : dt;
    if (ir_dtype_is_float(idt)) return tu_from_f64(idt, c->rank[j], c->dims[j], c->in[j]);
    kiln_tensor *t = kiln_tensor_new(idt, c->rank[j], c->dims[j]);
    assert_non_null(t);
    for (size_t i = 0; i < kiln_tensor_size(t); i++) ir_store_i64(idt, kiln_tensor_data(t), i, c->ini[j][i]);
    return t;
}

/* Compares an output with a case's expectation; the message names the case. */
static void check_output(const ew_case *c, kiln_dtype dt, const kiln_tensor *r, kiln_dtype odt)
{
    size_t n = 1;
    for (int d = 0; d < c->out_rank; d++) n *= (size_t)c->out_dims[d];
    tu_assert_shape(r, odt, c->out_rank, c->out_dims);
    const void *data = kiln_tensor_const_data(r);
    double rtol = c->exact ? 0 : rtol_for(odt), atol = odt == KILN_F16 && !c->exact ? 1e-7 : 0;
    for (size_t i = 0; i < n; i++) {
        if (!ir_dtype_is_float(odt)) {
            int64_t got = ir_load_i64(odt, data, i);
            if (got != c->yi[i])
                fail_msg("%s (%s): element %zu is %lld, want %lld", c->name, kiln_dtype_name(dt), i,
                         (long long)got, (long long)c->yi[i]);
            continue;
        }
        double got = ir_load_f64(odt, data, i), w = c->y[i];
        bool ok = isnan(w) ? isnan(got) : isinf(w) ? got == w : fabs(got - w) <= atol + rtol * fabs(w);
        if (!ok)
            fail_msg("%s (%s): element %zu is %.17g, want %.17g", c->name, kiln_dtype_name(dt), i, got, w);
    }
}

/* Builds the case's op on placeholders of dtype dt (all dims symbolic when
 * asked), checks the inferred type, runs it and checks the result. */
static void run_ew_case(const ew_case *c, kiln_dtype dt, bool symbolic)
{
    kiln_graph *g = kiln_graph_new();
    kiln_value ph[3];
    kiln_tensor *feeds[3];
    for (int j = 0; j < c->nin; j++) {
        int64_t dims[4];
        for (int d = 0; d < c->rank[j]; d++) dims[d] = symbolic ? -1 : c->dims[j][d];
        kiln_dtype idt = c->in_dt[j] ? (kiln_dtype)c->in_dt[j] : dt;
        ph[j] = kiln_placeholder(g, NULL, idt, c->rank[j], dims);
        feeds[j] = case_input(c, j, dt);
    }
    kiln_attrs *a = kiln_attrs_new();
    for (int k = 0; k < 2; k++)
        if (c->fattr[k]) kiln_attrs_float(a, c->fattr[k], c->fval[k]);
    if (c->sattr) kiln_attrs_string(a, c->sattr, c->sval);
    if (c->cast_to) kiln_attrs_dtype(a, "to", (kiln_dtype)c->cast_to);
    kiln_value y = kiln_op(g, c->op, ph, c->nin, a);
    kiln_attrs_free(a);
    if (kiln_graph_error(g)) fail_msg("%s (%s): %s", c->name, kiln_dtype_name(dt), kiln_graph_error(g));
    kiln_dtype odt = c->out_bool ? KILN_BOOL : c->cast_to ? (kiln_dtype)c->cast_to : dt;
    assert_int_equal(kiln_value_dtype(g, y), odt);
    assert_int_equal(kiln_value_rank(g, y), c->out_rank);
    int64_t d[8];
    kiln_value_dims(g, y, d);
    for (int k = 0; k < c->out_rank; k++) {
        /* a symbolic dim broadcast against a known one > 1 becomes known */
        if (symbolic && d[k] == -1) continue;
        if (d[k] != c->out_dims[k])
            fail_msg("%s (%s): output dim %d is %lld, want %lld", c->name, kiln_dtype_name(dt), k,
                     (long long)d[k], (long long)c->out_dims[k]);
    }
    kiln_tensor *r = tu_run(g, y, c->nin, ph, feeds);
    check_output(c, dt, r, odt);
    kiln_tensor_free(r);
    for (int j = 0; j < c->nin; j++) kiln_tensor_free(feeds[j]);
    kiln_graph_free(g);
}

/* Runs every case of the listed ops in every dtype, and once with symbolic
 * dims; returns how many cases ran. */
static int run_ew_cases(const char *const *ops)
{
    int ran = 0;
    for (size_t i = 0; i < sizeof ew_cases / sizeof ew_cases[0]; i++) {
        const ew_case *c = &ew_cases[i];
        bool mine = false;
        for (const char *const *o = ops; *o && !mine; o++) mine = strcmp(*o, c->op) == 0;
        if (!mine) continue;
        bool first = true;
        for (int dt = KILN_F32; dt <= KILN_BOOL; dt++) {
            if (!(c->dtypes & (1u << dt))) continue;
            run_ew_case(c, (kiln_dtype)dt, false);
            if (first) run_ew_case(c, (kiln_dtype)dt, true);
            first = false;
        }
        ran++;
    }
    return ran;
}

/* Every op of the listed ones has cases in each dtype of `need`. */
static void assert_covered(const char *const *ops, unsigned need)
{
    for (const char *const *o = ops; *o; o++) {
        unsigned seen = 0;
        for (size_t i = 0; i < sizeof ew_cases / sizeof ew_cases[0]; i++)
            if (strcmp(ew_cases[i].op, *o) == 0) seen |= ew_cases[i].dtypes;
        if ((seen & need) != need) fail_msg("op %s lacks cases for some dtypes (have 0x%x, need 0x%x)", *o, seen, need);
    }
}

#define FLOAT_DTS ((1u << KILN_F32) | (1u << KILN_F64) | (1u << KILN_F16) | (1u << KILN_BF16))
#define INT_DTS ((1u << KILN_I8) | (1u << KILN_U8) | (1u << KILN_I32) | (1u << KILN_I64))

static void test_numpy_binary(void **state)
{
    (void)state;
    static const char *const ops[] = {"Add", "Sub", "Mul", "Div", "Pow", "Maximum", "Minimum", NULL};
    assert_covered(ops, FLOAT_DTS | INT_DTS);
    assert_true(run_ew_cases(ops) > 0);
}

static void test_numpy_unary(void **state)
{
    (void)state;
    static const char *const float_ops[] = {"Exp", "Log", "Sqrt", "Rsqrt", "Reciprocal", "Tanh", "Sigmoid",
                                            "LeakyRelu", "Elu", "Gelu", "Erf", "Softplus", NULL};
    static const char *const int_ops[] = {"Abs", "Clip", NULL};
    static const char *const signed_ops[] = {"Neg", "Relu", NULL};
    assert_covered(float_ops, FLOAT_DTS);
    assert_covered(int_ops, FLOAT_DTS | INT_DTS);
    assert_covered(signed_ops, FLOAT_DTS | (INT_DTS & ~(1u << KILN_U8)));
    assert_true(run_ew_cases(float_ops) > 0);
    assert_true(run_ew_cases(int_ops) > 0);
    assert_true(run_ew_cases(signed_ops) > 0);
}

static void test_numpy_compare_logic_where(void **state)
{
    (void)state;
    static const char *const cmp[] = {"Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", NULL};
    static const char *const logic[] = {"And", "Or", "Xor", "Not", NULL};
    static const char *const where[] = {"Where", NULL};
    assert_covered(cmp, FLOAT_DTS | INT_DTS);
    assert_covered((const char *const[]){"Equal", NULL}, 1u << KILN_BOOL);
    assert_covered(logic, 1u << KILN_BOOL);
    assert_covered(where, FLOAT_DTS | INT_DTS | (1u << KILN_BOOL));
    assert_true(run_ew_cases(cmp) > 0);
    assert_true(run_ew_cases(logic) > 0);
    assert_true(run_ew_cases(where) > 0);
}

static void test_numpy_identity_cast(void **state)
{
    (void)state;
    static const char *const ops[] = {"Identity", "Cast", NULL};
    assert_covered(ops, FLOAT_DTS | INT_DTS | (1u << KILN_BOOL));
    /* every (from, to) pair of dtypes */
    for (int from = KILN_F32; from <= KILN_BOOL; from++)
        for (int to = KILN_F32; to <= KILN_BOOL; to++) {
            bool found = false;
            for (size_t i = 0; i < sizeof ew_cases / sizeof ew_cases[0] && !found; i++)
                found = strcmp(ew_cases[i].op, "Cast") == 0 && ew_cases[i].dtypes == (1u << from) &&
                        ew_cases[i].cast_to == to;
            if (!found) fail_msg("no Cast case from %s to %s", kiln_dtype_name((kiln_dtype)from), kiln_dtype_name((kiln_dtype)to));
        }
    assert_true(run_ew_cases(ops) > 0);
}

/* ---- inference errors ---- */

/* Builds op on placeholders of the given dtypes and shapes (NULL attrs ok)
 * and asserts the graph error names the op and contains `what`. */
static void expect_ew_error(const char *op, int n, const kiln_dtype *dts, const int *ranks,
                            const int64_t (*dims)[4], kiln_attrs *a, const char *what)
{
    kiln_graph *g = kiln_graph_new();
    kiln_value ph[3];
    for (int i = 0; i < n; i++) ph[i] = kiln_placeholder(g, NULL, dts[i], ranks[i], dims[i]);
    kiln_value y = kiln_op(g, op, ph, n, a);
    kiln_attrs_free(a);
    if (kiln_value_ok(y)) fail_msg("%s: expected an error containing '%s'", op, what);
    tu_assert_graph_error(g, op, what, NULL);
    kiln_graph_free(g);
}

static const int64_t D3[3][4] = {{3}, {3}, {3}};
static const int R1[3] = {1, 1, 1};

static void test_errors_binary(void **state)
{
    (void)state;
    static const char *const ops[] = {"Add", "Sub", "Mul", "Div", "Pow", "Maximum", "Minimum"};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        expect_ew_error(ops[i], 2, (kiln_dtype[]){KILN_F32, KILN_F64}, R1, D3, NULL, "different dtypes (f32 vs f64)");
        expect_ew_error(ops[i], 2, (kiln_dtype[]){KILN_I32, KILN_I32}, (int[]){2, 1},
                        (const int64_t[][4]){{2, 3}, {2}}, NULL, "input shapes do not broadcast");
        expect_ew_error(ops[i], 2, (kiln_dtype[]){KILN_BOOL, KILN_BOOL}, R1, D3, NULL,
                        "input 0 has dtype bool, which it does not support");
        expect_ew_error(ops[i], 1, (kiln_dtype[]){KILN_F32}, R1, D3, NULL, "takes 2 inputs, got 1");
    }
}

static void test_errors_unary(void **state)
{
    (void)state;
    static const char *const float_only[] = {"Exp", "Log", "Sqrt", "Rsqrt", "Reciprocal", "Tanh", "Sigmoid",
                                             "LeakyRelu", "Elu", "Gelu", "Erf", "Softplus"};
    for (size_t i = 0; i < sizeof float_only / sizeof float_only[0]; i++) {
        expect_ew_error(float_only[i], 1, (kiln_dtype[]){KILN_I64}, R1, D3, NULL,
                        "input 0 has dtype i64, which it does not support (supported: f32, f64, f16, bf16)");
        expect_ew_error(float_only[i], 1, (kiln_dtype[]){KILN_BOOL}, R1, D3, NULL, "dtype bool");
    }
    static const char *const signed_only[] = {"Neg", "Relu"};
    for (size_t i = 0; i < 2; i++)
        expect_ew_error(signed_only[i], 1, (kiln_dtype[]){KILN_U8}, R1, D3, NULL, "dtype u8, which it does not support");
    expect_ew_error("Abs", 1, (kiln_dtype[]){KILN_BOOL}, R1, D3, NULL, "dtype bool");
    expect_ew_error("Clip", 1, (kiln_dtype[]){KILN_BOOL}, R1, D3, NULL, "dtype bool");
    expect_ew_error("Exp", 2, (kiln_dtype[]){KILN_F32, KILN_F32}, R1, D3, NULL, "takes 1 inputs, got 2");

    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_string(a, "approximate", "fast");
    expect_ew_error("Gelu", 1, (kiln_dtype[]){KILN_F32}, R1, D3, a, "approximate must be \"none\" or \"tanh\", got \"fast\"");
    a = kiln_attrs_new();
    kiln_attrs_float(a, "min", 2);
    kiln_attrs_float(a, "max", 1);
    expect_ew_error("Clip", 1, (kiln_dtype[]){KILN_F32}, R1, D3, a, "min must be <= max");
    a = kiln_attrs_new();
    kiln_attrs_float(a, "min", NAN);
    expect_ew_error("Clip", 1, (kiln_dtype[]){KILN_I32}, R1, D3, a, "neither NaN");
    a = kiln_attrs_new();
    kiln_attrs_string(a, "alpha", "0.1");
    expect_ew_error("LeakyRelu", 1, (kiln_dtype[]){KILN_F32}, R1, D3, a, "attribute 'alpha' must be");
    a = kiln_attrs_new();
    kiln_attrs_float(a, "beta", 1);
    expect_ew_error("Elu", 1, (kiln_dtype[]){KILN_F32}, R1, D3, a, "unknown attribute 'beta'");
}

static void test_errors_compare_logic_where(void **state)
{
    (void)state;
    static const char *const cmp[] = {"Less", "Greater", "LessOrEqual", "GreaterOrEqual"};
    for (size_t i = 0; i < 4; i++) {
        expect_ew_error(cmp[i], 2, (kiln_dtype[]){KILN_BOOL, KILN_BOOL}, R1, D3, NULL, "dtype bool");
        expect_ew_error(cmp[i], 2, (kiln_dtype[]){KILN_I32, KILN_I64}, R1, D3, NULL, "different dtypes");
    }
    expect_ew_error("Equal", 2, (kiln_dtype[]){KILN_BOOL, KILN_U8}, R1, D3, NULL, "different dtypes (bool vs u8)");
    expect_ew_error("Equal", 2, (kiln_dtype[]){KILN_F32, KILN_F32}, R1, (const int64_t[][4]){{3}, {4}}, NULL,
                    "do not broadcast");
    static const char *const logic[] = {"And", "Or", "Xor"};
    for (size_t i = 0; i < 3; i++) {
        expect_ew_error(logic[i], 2, (kiln_dtype[]){KILN_BOOL, KILN_I32}, R1, D3, NULL, "input 1 has dtype i32");
        expect_ew_error(logic[i], 2, (kiln_dtype[]){KILN_F32, KILN_BOOL}, R1, D3, NULL, "supported: bool");
    }
    expect_ew_error("Not", 1, (kiln_dtype[]){KILN_U8}, R1, D3, NULL, "dtype u8");
    expect_ew_error("Where", 3, (kiln_dtype[]){KILN_I32, KILN_F32, KILN_F32}, R1, D3, NULL, "input 0 has dtype i32");
    expect_ew_error("Where", 3, (kiln_dtype[]){KILN_BOOL, KILN_F32, KILN_F16}, R1, D3, NULL,
                    "inputs 1 and 2 have different dtypes");
    expect_ew_error("Where", 3, (kiln_dtype[]){KILN_BOOL, KILN_F32, KILN_F32}, (int[]){1, 2, 1},
                    (const int64_t[][4]){{3}, {3, 2}, {3}}, NULL, "do not broadcast");
}

static void test_errors_identity_cast(void **state)
{
    (void)state;
    expect_ew_error("Identity", 2, (kiln_dtype[]){KILN_F32, KILN_F32}, R1, D3, NULL, "takes 1 inputs, got 2");
    expect_ew_error("Cast", 1, (kiln_dtype[]){KILN_F32}, R1, D3, NULL, "missing required attribute 'to'");
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_int(a, "to", 42);
    expect_ew_error("Cast", 1, (kiln_dtype[]){KILN_F32}, R1, D3, a, "attribute 'to' is not a dtype (42)");
    a = kiln_attrs_new();
    kiln_attrs_float(a, "to", 1);
    expect_ew_error("Cast", 1, (kiln_dtype[]){KILN_F32}, R1, D3, a, "attribute 'to' must be");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_add_broadcast),
        TU_TEST(test_add_shape_mismatch),
        TU_TEST(test_int_div),
        TU_TEST(test_sigmoid_gelu),
        TU_TEST(test_dtype_errors),
        TU_TEST(test_numpy_binary),
        TU_TEST(test_numpy_unary),
        TU_TEST(test_numpy_compare_logic_where),
        TU_TEST(test_numpy_identity_cast),
        TU_TEST(test_errors_binary),
        TU_TEST(test_errors_unary),
        TU_TEST(test_errors_compare_logic_where),
        TU_TEST(test_errors_identity_cast),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
