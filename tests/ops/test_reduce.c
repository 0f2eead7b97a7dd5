/* test_reduce.c -- the reduce family (ir/ops/reduce.c): ReduceSum, ReduceMean,
 * ReduceMax, ReduceMin, ReduceProd, ArgMax, ArgMin. Shape inference with
 * static and symbolic dims, the error cases (build time and run time), and
 * reference results against numpy (expected_reduce.h, written by
 * gen_reduce.py) for every supported dtype, plus hand-checked cases. */
#include "common/testutil.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "ops/expected_reduce.h"

/* ---- helpers ---- */

static void assert_value_type(const kiln_graph *g, kiln_value v, kiln_dtype dt, int rank,
                              const int64_t *dims)
{
    if (!kiln_value_ok(v)) fail_msg("invalid value: %s", kiln_graph_error(g));
    assert_int_equal(kiln_value_dtype(g, v), dt);
    assert_int_equal(kiln_value_rank(g, v), rank);
    int64_t got[8];
    kiln_value_dims(g, v, got);
    for (int i = 0; i < rank; i++)
        if (got[i] != dims[i])
            fail_msg("dim %d is %lld, expected %lld", i, (long long)got[i], (long long)dims[i]);
}

static bool is_arg(const char *op) { return strncmp(op, "Arg", 3) == 0; }

/* x -> op(x) with the given axes (NULL: unset) and keepdims. */
static kiln_value reduce_op(kiln_graph *g, const char *op, kiln_value x, const int64_t *axes,
                            int naxes, int keepdims)
{
    kiln_attrs *a = kiln_attrs_new();
    if (axes) kiln_attrs_ints(a, "axes", axes, naxes);
    kiln_attrs_int(a, "keepdims", keepdims);
    kiln_value y = kiln_op(g, op, &x, 1, a);
    kiln_attrs_free(a);
    return y;
}

static kiln_value arg_op(kiln_graph *g, const char *op, kiln_value x, int64_t axis, int keepdims,
                         int last)
{
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_int(a, "axis", axis);
    kiln_attrs_int(a, "keepdims", keepdims);
    kiln_attrs_int(a, "select_last_index", last);
    kiln_value y = kiln_op(g, op, &x, 1, a);
    kiln_attrs_free(a);
    return y;
}

/* Builds and runs one numpy case with data of dtype dt; symbolic: every
 * placeholder dim is -1. Checks the built type and the result. */
static void run_case(const rd_case *c, kiln_dtype dt, bool symbolic)
{
    char what[256];
    snprintf(what, sizeof what, "%s %s %s%s", c->op, c->label, kiln_dtype_name(dt),
             symbolic ? " (symbolic)" : "");
    kiln_graph *g = kiln_graph_new();
    int64_t dims[8];
    for (int d = 0; d < c->in.rank; d++) dims[d] = symbolic ? -1 : c->in.dims[d];
    kiln_value x = kiln_placeholder(g, "x", dt, c->in.rank, dims);
    kiln_tensor *feed = tu_from_f64(dt, c->in.rank, c->in.dims, c->in.data);
    kiln_value y = is_arg(c->op)
                       ? arg_op(g, c->op, x, c->axis, c->keepdims, c->select_last_index)
                       : reduce_op(g, c->op, x, c->axes.n < 0 ? NULL : c->axes.v,
                                   c->axes.n < 0 ? 0 : c->axes.n, c->keepdims);
    if (!kiln_value_ok(y)) fail_msg("%s: %s", what, kiln_graph_error(g));
    kiln_dtype odt = is_arg(c->op) ? KILN_I64 : dt;
    assert_int_equal(kiln_value_dtype(g, y), odt);
    assert_int_equal(kiln_value_rank(g, y), c->out.rank);
    kiln_value_dims(g, y, dims);
    for (int d = 0; d < c->out.rank; d++)
        if (dims[d] != c->out.dims[d] && !(symbolic && dims[d] == -1))
            fail_msg("%s: built dim %d is %lld, numpy says %lld", what, d, (long long)dims[d],
                     (long long)c->out.dims[d]);
    kiln_tensor *r = tu_run(g, y, 1, &x, &feed);
    tu_assert_shape(r, odt, c->out.rank, c->out.dims);
    /* Integer data: sums and extremes are exact in every dtype; only the
     * means round (f32 to 1e-7, f16 and bf16 to their precision). */
    double rtol = dt == KILN_F16 ? 1e-3 : dt == KILN_BF16 ? 8e-3 : dt == KILN_F32 ? 1e-7 : 1e-15;
    if (odt != dt || !(dt == KILN_F32 || dt == KILN_F64 || dt == KILN_F16 || dt == KILN_BF16))
        rtol = 0;
    tu_assert_close(r, c->out.data, c->out.n, rtol, 0);
    kiln_tensor_free(r);
    kiln_tensor_free(feed);
    kiln_graph_free(g);
}

static void run_cases(const char *op)
{
    int n = 0;
    for (size_t k = 0; k < sizeof rd_cases / sizeof rd_cases[0]; k++) {
        const rd_case *c = &rd_cases[k];
        if (strcmp(c->op, op) != 0) continue;
        for (int d = 0; d < c->ndtypes; d++) {
            run_case(c, c->dtypes[d], false);
            run_case(c, c->dtypes[d], true);
            n++;
        }
    }
    assert_true(n > 20);
}

/* ---- numpy cases ---- */

static void test_sum_numpy(void **state) { (void)state; run_cases("ReduceSum"); }
static void test_mean_numpy(void **state) { (void)state; run_cases("ReduceMean"); }
static void test_max_numpy(void **state) { (void)state; run_cases("ReduceMax"); }
static void test_min_numpy(void **state) { (void)state; run_cases("ReduceMin"); }
static void test_prod_numpy(void **state) { (void)state; run_cases("ReduceProd"); }
static void test_argmax_numpy(void **state) { (void)state; run_cases("ArgMax"); }
static void test_argmin_numpy(void **state) { (void)state; run_cases("ArgMin"); }

/* ---- hand-checked ---- */

static void test_reduce_hand(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){2, 3});
    kiln_value s = kiln_reduce_sum(g, x, (int64_t[]){1}, 1, 0);
    kiln_value m = kiln_reduce_mean(g, x, NULL, 0, 1);
    kiln_value mx = kiln_reduce_max(g, x, (int64_t[]){-2}, 1, 1);
    kiln_value am = kiln_argmax(g, x, -1, 0);
    assert_value_type(g, s, KILN_F32, 1, (int64_t[]){2});
    assert_value_type(g, m, KILN_F32, 2, (int64_t[]){1, 1});
    assert_value_type(g, mx, KILN_F32, 2, (int64_t[]){1, 3});
    assert_value_type(g, am, KILN_I64, 1, (int64_t[]){2});
    kiln_tensor *tx = tu_f32(2, (int64_t[]){2, 3}, (float[]){1, 5, 3, -4, 0.5f, 8});
    kiln_tensor *r = tu_run(g, s, 1, &x, &tx);
    tu_assert_close(r, (double[]){9, 4.5}, 2, 0, 0);
    kiln_tensor_free(r);
    r = tu_run(g, m, 1, &x, &tx);
    tu_assert_close(r, (double[]){13.5 / 6}, 1, 1e-7, 0);
    kiln_tensor_free(r);
    r = tu_run(g, mx, 1, &x, &tx);
    tu_assert_close(r, (double[]){1, 5, 8}, 3, 0, 0);
    kiln_tensor_free(r);
    r = tu_run(g, am, 1, &x, &tx);
    tu_assert_ints(r, (int64_t[]){1, 2}, 2);
    kiln_tensor_free(r);
    kiln_tensor_free(tx);
    kiln_graph_free(g);
}

static void test_reduce_int_wraps(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_I32, 1, (int64_t[]){3});
    kiln_value s = reduce_op(g, "ReduceSum", x, NULL, 0, 0);
    kiln_value p = reduce_op(g, "ReduceProd", x, NULL, 0, 0);
    kiln_tensor *tx = tu_i32(1, (int64_t[]){3}, (int32_t[]){INT32_MAX, 1, 65536});
    kiln_tensor *r = tu_run(g, s, 1, &x, &tx);
    tu_assert_ints(r, (int64_t[]){INT32_MIN + 65536}, 1);
    kiln_tensor_free(r);
    r = tu_run(g, p, 1, &x, &tx);
    /* (2^31 - 1) * 2^16 mod 2^32 = -2^16 */
    tu_assert_ints(r, (int64_t[]){-65536}, 1);
    kiln_tensor_free(r);
    kiln_tensor_free(tx);
    kiln_graph_free(g);
}

static void test_reduce_infer(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 4, (int64_t[]){-1, 3, -1, 5});
    assert_value_type(g, reduce_op(g, "ReduceSum", x, (int64_t[]){2}, 1, 1), KILN_F32, 4,
                      (int64_t[]){-1, 3, 1, 5});
    assert_value_type(g, reduce_op(g, "ReduceMin", x, (int64_t[]){0, -1}, 2, 0), KILN_F32, 2,
                      (int64_t[]){3, -1});
    assert_value_type(g, reduce_op(g, "ReduceProd", x, NULL, 0, 0), KILN_F32, 0, NULL);
    assert_value_type(g, reduce_op(g, "ReduceMean", x, (int64_t[]){0}, 0, 1), KILN_F32, 4,
                      (int64_t[]){1, 1, 1, 1});
    assert_value_type(g, arg_op(g, "ArgMin", x, 2, 0, 1), KILN_I64, 3, (int64_t[]){-1, 3, 5});
    assert_value_type(g, arg_op(g, "ArgMax", x, -4, 1, 0), KILN_I64, 4, (int64_t[]){1, 3, -1, 5});
    kiln_value i = kiln_placeholder(g, "i", KILN_U8, 2, (int64_t[]){2, 3});
    assert_value_type(g, reduce_op(g, "ReduceMax", i, NULL, 0, 1), KILN_U8, 2, (int64_t[]){1, 1});
    assert_value_type(g, arg_op(g, "ArgMax", i, 1, 1, 0), KILN_I64, 2, (int64_t[]){2, 1});
    assert_null(kiln_graph_error(g));
    kiln_graph_free(g);
}

/* Each case builds one bad node on a fresh graph and checks the message. */
static void expect_reduce_error(const char *op, kiln_dtype dt, int rank, const int64_t *dims,
                                const int64_t *axes, int naxes, int keepdims, const char *what)
{
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", dt, rank, dims);
    kiln_value y = reduce_op(g, op, x, axes, naxes, keepdims);
    assert_false(kiln_value_ok(y));
    tu_assert_graph_error(g, op, what, NULL);
    kiln_graph_free(g);
}

static void test_reduce_errors(void **state)
{
    (void)state;
    const int64_t d23[] = {2, 3};
    expect_reduce_error("ReduceSum", KILN_F32, 2, d23, (int64_t[]){2}, 1, 1,
                        "axis 2 is out of range for rank 2");
    expect_reduce_error("ReduceMax", KILN_F32, 2, d23, (int64_t[]){-3}, 1, 1,
                        "axis -3 is out of range");
    expect_reduce_error("ReduceProd", KILN_F32, 2, d23, (int64_t[]){1, -1}, 2, 1, "listed twice");
    expect_reduce_error("ReduceMin", KILN_F32, 0, NULL, (int64_t[]){0}, 1, 1,
                        "out of range for rank 0");
    expect_reduce_error("ReduceSum", KILN_F32, 2, d23, NULL, 0, 2, "'keepdims' must be 0 or 1");
    expect_reduce_error("ReduceMean", KILN_I32, 2, d23, NULL, 0, 1, "i32");
    expect_reduce_error("ReduceSum", KILN_BOOL, 2, d23, NULL, 0, 1, "bool");

    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 2, d23);
    kiln_value y = arg_op(g, "ArgMax", x, 2, 1, 0);
    assert_false(kiln_value_ok(y));
    tu_assert_graph_error(g, "ArgMax", "axis 2 is out of range for rank 2", "f32[2,3]", NULL);
    kiln_graph_free(g);

    g = kiln_graph_new();
    x = kiln_placeholder(g, "x", KILN_F32, 0, NULL);
    y = arg_op(g, "ArgMin", x, 0, 1, 0);
    tu_assert_graph_error(g, "ArgMin", "out of range for rank 0", NULL);
    kiln_graph_free(g);

    g = kiln_graph_new();
    x = kiln_placeholder(g, "x", KILN_F32, 2, d23);
    y = arg_op(g, "ArgMin", x, 0, 1, 3);
    tu_assert_graph_error(g, "ArgMin", "'select_last_index' must be 0 or 1", NULL);
    kiln_graph_free(g);

    g = kiln_graph_new();
    x = kiln_placeholder(g, "x", KILN_BOOL, 2, d23);
    y = arg_op(g, "ArgMax", x, 0, 1, 0);
    tu_assert_graph_error(g, "ArgMax", "bool", "supported", NULL);
    kiln_graph_free(g);

    /* a wrongly typed attribute */
    g = kiln_graph_new();
    x = kiln_placeholder(g, "x", KILN_F32, 2, d23);
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_int(a, "axes", 1);
    y = kiln_op(g, "ReduceSum", &x, 1, a);
    kiln_attrs_free(a);
    tu_assert_graph_error(g, "ReduceSum", "axes", NULL);
    kiln_graph_free(g);
}

/* ArgMax, ArgMin of an empty axis fail cleanly when run; Max and Min give
 * their identity (ONNX opset 18+: -inf / +inf, the lowest / highest
 * integer); an axis that is kept may be empty. */
static void test_empty_axis_errors(void **state)
{
    (void)state;
    static const char *ops[] = {"ReduceMax", "ReduceMin", "ArgMax", "ArgMin"};
    for (int k = 0; k < 4; k++) {
        kiln_graph *g = kiln_graph_new();
        kiln_value x = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){-1, 3});
        kiln_value y = is_arg(ops[k]) ? arg_op(g, ops[k], x, 0, 1, 0)
                                      : reduce_op(g, ops[k], x, (int64_t[]){0}, 1, 1);
        kiln_value z = is_arg(ops[k]) ? arg_op(g, ops[k], x, 1, 1, 0)
                                      : reduce_op(g, ops[k], x, (int64_t[]){1}, 1, 1);
        assert_null(kiln_graph_error(g));
        kiln_tensor *tx = kiln_tensor_new(KILN_F32, 2, (int64_t[]){0, 3});
        if (is_arg(ops[k])) {
            tu_run_fails(g, y, 1, &x, &tx, "cannot reduce an empty axis");
        } else {
            kiln_tensor *r = tu_run(g, y, 1, &x, &tx);
            tu_assert_shape(r, KILN_F32, 2, (int64_t[]){1, 3});
            double inf = k == 0 ? -INFINITY : INFINITY;
            tu_assert_close(r, (double[]){inf, inf, inf}, 3, 0, 0);
            kiln_tensor_free(r);
        }
        kiln_tensor *r = tu_run(g, z, 1, &x, &tx);
        tu_assert_shape(r, is_arg(ops[k]) ? KILN_I64 : KILN_F32, 2, (int64_t[]){0, 1});
        kiln_tensor_free(r);
        kiln_tensor_free(tx);
        kiln_graph_free(g);
    }
}

/* Max / Min over an empty axis of each integer dtype: the lowest / highest
 * value of the dtype (u64's highest reads as -1 through int64). */
static void test_empty_axis_int_identity(void **state)
{
    (void)state;
    static const struct {
        kiln_dtype dt;
        int64_t lowest, highest;
    } cases[] = {
        {KILN_I8, -128, 127},       {KILN_U8, 0, 255},
        {KILN_I16, -32768, 32767},  {KILN_U16, 0, 65535},
        {KILN_I32, INT32_MIN, INT32_MAX}, {KILN_U32, 0, 4294967295},
        {KILN_I64, INT64_MIN, INT64_MAX}, {KILN_U64, 0, -1},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (int k = 0; k < 2; k++) {
            kiln_graph *g = kiln_graph_new();
            kiln_value x = kiln_placeholder(g, "x", cases[c].dt, 2, (int64_t[]){2, 0});
            /* axis 1 of [2, 0] and every axis */
            kiln_value y = reduce_op(g, k ? "ReduceMin" : "ReduceMax", x, (int64_t[]){1}, 1, 0);
            kiln_value z = reduce_op(g, k ? "ReduceMin" : "ReduceMax", x, NULL, 0, 0);
            assert_null(kiln_graph_error(g));
            kiln_tensor *tx = kiln_tensor_new(cases[c].dt, 2, (int64_t[]){2, 0});
            int64_t want = k ? cases[c].highest : cases[c].lowest;
            kiln_tensor *r = tu_run(g, y, 1, &x, &tx);
            tu_assert_shape(r, cases[c].dt, 1, (int64_t[]){2});
            tu_assert_ints(r, (int64_t[]){want, want}, 2);
            kiln_tensor_free(r);
            r = tu_run(g, z, 1, &x, &tx);
            tu_assert_shape(r, cases[c].dt, 0, NULL);
            tu_assert_ints(r, &want, 1);
            kiln_tensor_free(r);
            kiln_tensor_free(tx);
            kiln_graph_free(g);
        }
}

static void test_symbolic_rank_checked_at_run(void **state)
{
    (void)state;
    /* A symbolic dim reduced with keepdims=0 disappears; run-time shapes
     * agree with the built type. */
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F64, 3, (int64_t[]){-1, -1, 2});
    kiln_value y = reduce_op(g, "ReduceSum", x, (int64_t[]){1}, 1, 0);
    assert_value_type(g, y, KILN_F64, 2, (int64_t[]){-1, 2});
    kiln_tensor *tx = tu_f64(3, (int64_t[]){2, 2, 2}, (double[]){1, 2, 3, 4, 5, 6, 7, 8});
    kiln_tensor *r = tu_run(g, y, 1, &x, &tx);
    tu_assert_shape(r, KILN_F64, 2, (int64_t[]){2, 2});
    tu_assert_close(r, (double[]){4, 6, 12, 14}, 4, 0, 0);
    kiln_tensor_free(r);
    kiln_tensor_free(tx);
    kiln_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_sum_numpy),
        TU_TEST(test_mean_numpy),
        TU_TEST(test_max_numpy),
        TU_TEST(test_min_numpy),
        TU_TEST(test_prod_numpy),
        TU_TEST(test_argmax_numpy),
        TU_TEST(test_argmin_numpy),
        TU_TEST(test_reduce_hand),
        TU_TEST(test_reduce_int_wraps),
        TU_TEST(test_reduce_infer),
        TU_TEST(test_reduce_errors),
        TU_TEST(test_empty_axis_errors),
        TU_TEST(test_empty_axis_int_identity),
        TU_TEST(test_symbolic_rank_checked_at_run),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
