/* test_matmul.c -- the matmul family (ir/ops/matmul.c): MatMul and Gemm
 * shape inference with static and symbolic dims, the error cases, and
 * reference results against numpy (expected_matmul.h, written by
 * gen_matmul.py) for every supported dtype, plus hand-checked cases. */
#include "common/testutil.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "ops/expected_matmul.h"

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

static void tolerance(kiln_dtype dt, double *rtol, double *atol)
{
    switch (dt) {
    case KILN_F64: *rtol = 1e-12; *atol = 1e-12; break;
    case KILN_F32: *rtol = 1e-6; *atol = 1e-6; break;
    case KILN_F16: *rtol = 2e-3; *atol = 2e-3; break;
    case KILN_BF16: *rtol = 1e-2; *atol = 1e-2; break;
    default: *rtol = 0; *atol = 0; break;
    }
}

static kiln_value build_case(kiln_graph *g, const mm_case *c, const kiln_value *ph)
{
    bool gemm = strcmp(c->op, "Gemm") == 0;
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_int(a, gemm ? "transA" : "transpose_a", c->transpose_a);
    kiln_attrs_int(a, gemm ? "transB" : "transpose_b", c->transpose_b);
    if (gemm) {
        kiln_attrs_float(a, "alpha", c->alpha);
        kiln_attrs_float(a, "beta", c->beta);
    }
    kiln_value y = kiln_op(g, c->op, ph, c->nin, a);
    kiln_attrs_free(a);
    return y;
}

/* Builds and runs one numpy case in dtype dt; symbolic: every placeholder
 * dim is -1. Checks the built type (exact when static, -1 or exact when
 * symbolic) and the result. */
static void run_case(const mm_case *c, kiln_dtype dt, bool symbolic)
{
    char what[256];
    snprintf(what, sizeof what, "%s %s %s%s", c->op, c->label, kiln_dtype_name(dt),
             symbolic ? " (symbolic)" : "");
    kiln_graph *g = kiln_graph_new();
    kiln_value ph[3];
    kiln_tensor *feeds[3];
    for (int i = 0; i < c->nin; i++) {
        const mm_tensor *t = &c->in[i];
        int64_t dims[8];
        for (int d = 0; d < t->rank; d++) dims[d] = symbolic ? -1 : t->dims[d];
        ph[i] = kiln_placeholder(g, NULL, dt, t->rank, dims);
        feeds[i] = tu_from_f64(dt, t->rank, t->dims, t->data);
    }
    kiln_value y = build_case(g, c, ph);
    if (!kiln_value_ok(y)) fail_msg("%s: %s", what, kiln_graph_error(g));
    assert_int_equal(kiln_value_dtype(g, y), dt);
    assert_int_equal(kiln_value_rank(g, y), c->out.rank);
    int64_t dims[8];
    kiln_value_dims(g, y, dims);
    for (int d = 0; d < c->out.rank; d++)
        if (dims[d] != c->out.dims[d] && !(symbolic && dims[d] == -1))
            fail_msg("%s: built dim %d is %lld, numpy says %lld", what, d, (long long)dims[d],
                     (long long)c->out.dims[d]);
    kiln_tensor *r = tu_run(g, y, c->nin, ph, feeds);
    tu_assert_shape(r, dt, c->out.rank, c->out.dims);
    double rtol, atol;
    tolerance(dt, &rtol, &atol);
    /* Scale the absolute tolerance of the narrow floats by the data's size. */
    double big = 0;
    for (size_t i = 0; i < c->out.n; i++)
        if (fabs(c->out.data[i]) > big) big = fabs(c->out.data[i]);
    if (dt == KILN_F16 || dt == KILN_BF16) atol *= big > 1 ? big : 1;
    tu_assert_close(r, c->out.data, c->out.n, rtol, atol);
    kiln_tensor_free(r);
    for (int i = 0; i < c->nin; i++) kiln_tensor_free(feeds[i]);
    kiln_graph_free(g);
}

static void run_cases(const char *op)
{
    int n = 0;
    for (size_t k = 0; k < sizeof mm_cases / sizeof mm_cases[0]; k++) {
        const mm_case *c = &mm_cases[k];
        if (strcmp(c->op, op) != 0) continue;
        for (int d = 0; d < c->ndtypes; d++) {
            run_case(c, c->dtypes[d], false);
            run_case(c, c->dtypes[d], true);
            n++;
        }
    }
    assert_true(n > 10);
}

/* ---- numpy cases ---- */

static void test_matmul_numpy(void **state)
{
    (void)state;
    run_cases("MatMul");
}

static void test_gemm_numpy(void **state)
{
    (void)state;
    run_cases("Gemm");
}

/* ---- MatMul: hand-checked results ---- */

static void test_matmul_hand(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value a = kiln_placeholder(g, "a", KILN_F32, 2, (int64_t[]){2, 2});
    kiln_value b = kiln_placeholder(g, "b", KILN_F32, 2, (int64_t[]){2, 2});
    kiln_value y = kiln_matmul(g, a, b);
    kiln_value yt = kiln_matmul_t(g, a, b, 1, 0);
    kiln_tensor *ta = tu_f32(2, (int64_t[]){2, 2}, (float[]){1, 2, 3, 4});
    kiln_tensor *tb = tu_f32(2, (int64_t[]){2, 2}, (float[]){5, 6, 7, 8});
    kiln_tensor *r = tu_run(g, y, 2, (kiln_value[]){a, b}, (kiln_tensor *[]){ta, tb});
    tu_assert_close(r, (double[]){19, 22, 43, 50}, 4, 0, 0);
    kiln_tensor_free(r);
    /* a^T = [[1,3],[2,4]] */
    r = tu_run(g, yt, 2, (kiln_value[]){a, b}, (kiln_tensor *[]){ta, tb});
    tu_assert_close(r, (double[]){26, 30, 38, 44}, 4, 0, 0);
    kiln_tensor_free(r);
    kiln_tensor_free(ta);
    kiln_tensor_free(tb);
    kiln_graph_free(g);
}

static void test_matmul_int_wraps(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value a = kiln_placeholder(g, "a", KILN_I32, 2, (int64_t[]){1, 2});
    kiln_value b = kiln_placeholder(g, "b", KILN_I32, 1, (int64_t[]){2});
    kiln_value y = kiln_matmul(g, a, b);
    assert_value_type(g, y, KILN_I32, 1, (int64_t[]){1});
    /* 2^30 * 2 + 2^30 * 2 = 2^32, which wraps to 0 in i32; the int64
     * accumulator keeps intermediate sums exact. */
    kiln_tensor *ta = tu_i32(2, (int64_t[]){1, 2}, (int32_t[]){1 << 30, 1 << 30});
    kiln_tensor *tb = tu_i32(1, (int64_t[]){2}, (int32_t[]){2, 2});
    kiln_tensor *r = tu_run(g, y, 2, (kiln_value[]){a, b}, (kiln_tensor *[]){ta, tb});
    tu_assert_ints(r, (int64_t[]){0}, 1);
    kiln_tensor_free(r);
    kiln_tensor_free(ta);
    kiln_tensor_free(tb);
    ta = tu_i32(2, (int64_t[]){1, 2}, (int32_t[]){1 << 30, -(1 << 30)});
    tb = tu_i32(1, (int64_t[]){2}, (int32_t[]){3, 1});
    r = tu_run(g, y, 2, (kiln_value[]){a, b}, (kiln_tensor *[]){ta, tb});
    tu_assert_ints(r, (int64_t[]){INT32_MIN}, 1); /* 2^31 wraps to -2^31 */
    kiln_tensor_free(r);
    kiln_tensor_free(ta);
    kiln_tensor_free(tb);
    kiln_graph_free(g);
}

/* ---- MatMul: inference ---- */

static void test_matmul_infer(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value a = kiln_placeholder(g, "a", KILN_F32, 3, (int64_t[]){5, 2, 3});
    kiln_value b = kiln_placeholder(g, "b", KILN_F32, 4, (int64_t[]){4, 1, 3, 7});
    assert_value_type(g, kiln_matmul(g, a, b), KILN_F32, 4, (int64_t[]){4, 5, 2, 7});
    kiln_value bt = kiln_placeholder(g, "bt", KILN_F32, 2, (int64_t[]){7, 3});
    assert_value_type(g, kiln_matmul_t(g, a, bt, 0, 1), KILN_F32, 3, (int64_t[]){5, 2, 7});
    kiln_value at = kiln_placeholder(g, "at", KILN_F32, 2, (int64_t[]){3, 2});
    assert_value_type(g, kiln_matmul_t(g, at, bt, 1, 1), KILN_F32, 2, (int64_t[]){2, 7});
    kiln_value v = kiln_placeholder(g, "v", KILN_F32, 1, (int64_t[]){3});
    assert_value_type(g, kiln_matmul(g, v, v), KILN_F32, 0, NULL);
    assert_value_type(g, kiln_matmul(g, a, v), KILN_F32, 2, (int64_t[]){5, 2});
    assert_value_type(g, kiln_matmul(g, v, at), KILN_F32, 1, (int64_t[]){2});
    kiln_graph_free(g);
}

static void test_matmul_symbolic(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value a = kiln_placeholder(g, "a", KILN_F64, 3, (int64_t[]){-1, -1, 3});
    kiln_value b = kiln_placeholder(g, "b", KILN_F64, 2, (int64_t[]){3, -1});
    kiln_value y = kiln_matmul(g, a, b);
    assert_value_type(g, y, KILN_F64, 3, (int64_t[]){-1, -1, -1});
    kiln_value c = kiln_placeholder(g, "c", KILN_F64, 3, (int64_t[]){4, -1, 5});
    assert_value_type(g, kiln_matmul(g, a, c), KILN_F64, 3, (int64_t[]){4, -1, 5});
    /* A symbolic inner dim is checked when run. */
    kiln_value d = kiln_placeholder(g, "d", KILN_F64, 2, (int64_t[]){2, -1});
    kiln_value e = kiln_placeholder(g, "e", KILN_F64, 2, (int64_t[]){3, 2});
    kiln_value de = kiln_matmul(g, d, e);
    assert_value_type(g, de, KILN_F64, 2, (int64_t[]){2, 2});
    kiln_tensor *td = tu_f64(2, (int64_t[]){2, 3}, (double[]){1, 0, 0, 0, 1, 0});
    kiln_tensor *te = tu_f64(2, (int64_t[]){3, 2}, (double[]){1, 2, 3, 4, 5, 6});
    kiln_tensor *r = tu_run(g, de, 2, (kiln_value[]){d, e}, (kiln_tensor *[]){td, te});
    tu_assert_close(r, (double[]){1, 2, 3, 4}, 4, 0, 0);
    kiln_tensor_free(r);
    kiln_tensor_free(td);
    td = tu_f64(2, (int64_t[]){2, 4}, (double[]){1, 2, 3, 4, 5, 6, 7, 8});
    tu_run_fails(g, de, 2, (kiln_value[]){d, e}, (kiln_tensor *[]){td, te},
                 "inner dimensions differ");
    kiln_tensor_free(td);
    kiln_tensor_free(te);
    kiln_graph_free(g);
}

static void test_matmul_errors(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value a = kiln_placeholder(g, "a", KILN_F32, 2, (int64_t[]){32, 784});
    kiln_value b = kiln_placeholder(g, "b", KILN_F32, 2, (int64_t[]){512, 10});
    kiln_value y = kiln_matmul(g, a, b);
    assert_false(kiln_value_ok(y));
    tu_assert_graph_error(g, "MatMul", "inner dimensions differ", "784", "512", "f32[32,784]",
                          "f32[512,10]", NULL);
    kiln_graph_free(g);

    /* transposing the wrong operand */
    g = kiln_graph_new();
    a = kiln_placeholder(g, "a", KILN_F32, 2, (int64_t[]){2, 3});
    b = kiln_placeholder(g, "b", KILN_F32, 2, (int64_t[]){3, 4});
    y = kiln_matmul_t(g, a, b, 1, 0);
    tu_assert_graph_error(g, "MatMul", "inner dimensions differ", NULL);
    kiln_graph_free(g);

    g = kiln_graph_new();
    a = kiln_placeholder(g, "a", KILN_F32, 3, (int64_t[]){2, 2, 3});
    b = kiln_placeholder(g, "b", KILN_F32, 3, (int64_t[]){3, 3, 4});
    y = kiln_matmul(g, a, b);
    tu_assert_graph_error(g, "MatMul", "batch dimensions do not broadcast", "f32[2,2,3]",
                          "f32[3,3,4]", NULL);
    kiln_graph_free(g);

    g = kiln_graph_new();
    a = kiln_placeholder(g, "a", KILN_F32, 0, NULL);
    b = kiln_placeholder(g, "b", KILN_F32, 1, (int64_t[]){3});
    y = kiln_matmul(g, a, b);
    tu_assert_graph_error(g, "MatMul", "rank >= 1", NULL);
    kiln_graph_free(g);

    g = kiln_graph_new();
    a = kiln_placeholder(g, "a", KILN_F32, 2, (int64_t[]){2, 3});
    b = kiln_placeholder(g, "b", KILN_F64, 2, (int64_t[]){3, 4});
    y = kiln_matmul(g, a, b);
    tu_assert_graph_error(g, "MatMul", "different dtypes", "f32", "f64", NULL);
    kiln_graph_free(g);

    g = kiln_graph_new();
    a = kiln_placeholder(g, "a", KILN_BOOL, 2, (int64_t[]){2, 3});
    b = kiln_placeholder(g, "b", KILN_BOOL, 2, (int64_t[]){3, 4});
    y = kiln_matmul(g, a, b);
    tu_assert_graph_error(g, "MatMul", "bool", "supported", NULL);
    kiln_graph_free(g);

    g = kiln_graph_new();
    a = kiln_placeholder(g, "a", KILN_F32, 2, (int64_t[]){2, 3});
    b = kiln_placeholder(g, "b", KILN_F32, 2, (int64_t[]){3, 4});
    kiln_attrs *at = kiln_attrs_new();
    kiln_attrs_int(at, "transpose_a", 2);
    y = kiln_op(g, "MatMul", (kiln_value[]){a, b}, 2, at);
    kiln_attrs_free(at);
    tu_assert_graph_error(g, "MatMul", "transpose_a", "0 or 1", NULL);
    kiln_graph_free(g);

    g = kiln_graph_new();
    a = kiln_placeholder(g, "a", KILN_F32, 2, (int64_t[]){2, 3});
    y = kiln_op(g, "MatMul", &a, 1, NULL);
    tu_assert_graph_error(g, "MatMul", "takes 2 inputs", NULL);
    kiln_graph_free(g);
}

/* ---- Gemm ---- */

static void test_gemm_hand(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value a = kiln_placeholder(g, "a", KILN_F64, 2, (int64_t[]){2, 2});
    kiln_value b = kiln_placeholder(g, "b", KILN_F64, 2, (int64_t[]){2, 2});
    kiln_value c = kiln_placeholder(g, "c", KILN_F64, 1, (int64_t[]){2});
    kiln_value y = kiln_gemm(g, a, b, c, 2.0, 10.0, 0, 1);
    assert_value_type(g, y, KILN_F64, 2, (int64_t[]){2, 2});
    kiln_tensor *ta = tu_f64(2, (int64_t[]){2, 2}, (double[]){1, 2, 3, 4});
    kiln_tensor *tb = tu_f64(2, (int64_t[]){2, 2}, (double[]){5, 6, 7, 8});
    kiln_tensor *tc = tu_f64(1, (int64_t[]){2}, (double[]){1, -1});
    /* a @ b^T = [[17, 23], [39, 53]]; * 2 + 10 * [1, -1] */
    kiln_tensor *r = tu_run(g, y, 3, (kiln_value[]){a, b, c}, (kiln_tensor *[]){ta, tb, tc});
    tu_assert_close(r, (double[]){44, 36, 88, 96}, 4, 0, 0);
    kiln_tensor_free(r);
    kiln_value y2 = kiln_gemm(g, a, b, kiln_value_invalid(), 1.0, 1.0, 1, 0);
    /* a^T @ b = [[26, 30], [38, 44]] */
    r = tu_run(g, y2, 2, (kiln_value[]){a, b}, (kiln_tensor *[]){ta, tb});
    tu_assert_close(r, (double[]){26, 30, 38, 44}, 4, 0, 0);
    kiln_tensor_free(r);
    kiln_tensor_free(ta);
    kiln_tensor_free(tb);
    kiln_tensor_free(tc);
    kiln_graph_free(g);
}

static void test_gemm_symbolic(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value a = kiln_placeholder(g, "a", KILN_F32, 2, (int64_t[]){-1, 3});
    kiln_value b = kiln_placeholder(g, "b", KILN_F32, 2, (int64_t[]){3, 4});
    kiln_value c = kiln_placeholder(g, "c", KILN_F32, 2, (int64_t[]){-1, -1});
    kiln_value y = kiln_gemm(g, a, b, c, 1.0, 1.0, 0, 0);
    assert_value_type(g, y, KILN_F32, 2, (int64_t[]){-1, 4});
    kiln_tensor *ta = tu_f32(2, (int64_t[]){1, 3}, (float[]){1, 2, 3});
    kiln_tensor *tb = tu_f32(2, (int64_t[]){3, 4}, (float[]){1, 0, 0, 1, 0, 1, 0, 1, 0, 0, 1, 1});
    kiln_tensor *tc = tu_f32(2, (int64_t[]){1, 1}, (float[]){100});
    kiln_tensor *r = tu_run(g, y, 3, (kiln_value[]){a, b, c}, (kiln_tensor *[]){ta, tb, tc});
    tu_assert_shape(r, KILN_F32, 2, (int64_t[]){1, 4});
    tu_assert_close(r, (double[]){101, 102, 103, 106}, 4, 0, 0);
    kiln_tensor_free(r);
    kiln_tensor_free(tc);
    /* C of [1,3] does not broadcast to [1,4]: caught when run */
    tc = tu_f32(2, (int64_t[]){1, 3}, (float[]){1, 2, 3});
    tu_run_fails(g, y, 3, (kiln_value[]){a, b, c}, (kiln_tensor *[]){ta, tb, tc},
                 "C does not broadcast");
    kiln_tensor_free(ta);
    kiln_tensor_free(tb);
    kiln_tensor_free(tc);
    kiln_graph_free(g);
}

static void test_gemm_errors(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value a = kiln_placeholder(g, "a", KILN_F32, 3, (int64_t[]){1, 2, 3});
    kiln_value b = kiln_placeholder(g, "b", KILN_F32, 2, (int64_t[]){3, 4});
    kiln_value y = kiln_gemm(g, a, b, kiln_value_invalid(), 1, 1, 0, 0);
    assert_false(kiln_value_ok(y));
    tu_assert_graph_error(g, "Gemm", "rank 2", NULL);
    kiln_graph_free(g);

    g = kiln_graph_new();
    a = kiln_placeholder(g, "a", KILN_F32, 2, (int64_t[]){2, 3});
    b = kiln_placeholder(g, "b", KILN_F32, 2, (int64_t[]){4, 3});
    y = kiln_gemm(g, a, b, kiln_value_invalid(), 1, 1, 0, 0);
    tu_assert_graph_error(g, "Gemm", "inner dimensions differ", "f32[2,3]", "f32[4,3]", NULL);
    kiln_graph_free(g);

    g = kiln_graph_new();
    a = kiln_placeholder(g, "a", KILN_F32, 2, (int64_t[]){2, 3});
    b = kiln_placeholder(g, "b", KILN_F32, 2, (int64_t[]){3, 4});
    kiln_value c = kiln_placeholder(g, "c", KILN_F32, 1, (int64_t[]){2});
    y = kiln_gemm(g, a, b, c, 1, 1, 0, 0);
    tu_assert_graph_error(g, "Gemm", "C does not broadcast", "[2,4]", NULL);
    kiln_graph_free(g);

    g = kiln_graph_new();
    a = kiln_placeholder(g, "a", KILN_F32, 2, (int64_t[]){2, 3});
    b = kiln_placeholder(g, "b", KILN_F32, 2, (int64_t[]){3, 4});
    c = kiln_placeholder(g, "c", KILN_F32, 3, (int64_t[]){1, 2, 4});
    y = kiln_gemm(g, a, b, c, 1, 1, 0, 0);
    tu_assert_graph_error(g, "Gemm", "C has rank 3", NULL);
    kiln_graph_free(g);

    g = kiln_graph_new();
    a = kiln_placeholder(g, "a", KILN_F32, 2, (int64_t[]){2, 3});
    b = kiln_placeholder(g, "b", KILN_F32, 2, (int64_t[]){3, 4});
    c = kiln_placeholder(g, "c", KILN_F64, 2, (int64_t[]){2, 4});
    y = kiln_gemm(g, a, b, c, 1, 1, 0, 0);
    tu_assert_graph_error(g, "Gemm", "different dtypes", NULL);
    kiln_graph_free(g);

    g = kiln_graph_new();
    a = kiln_placeholder(g, "a", KILN_I32, 2, (int64_t[]){2, 3});
    b = kiln_placeholder(g, "b", KILN_I32, 2, (int64_t[]){3, 4});
    y = kiln_gemm(g, a, b, kiln_value_invalid(), 0.5, 1, 0, 0);
    tu_assert_graph_error(g, "Gemm", "whole-number alpha and beta", NULL);
    kiln_graph_free(g);

    g = kiln_graph_new();
    a = kiln_placeholder(g, "a", KILN_U8, 2, (int64_t[]){2, 3});
    b = kiln_placeholder(g, "b", KILN_U8, 2, (int64_t[]){3, 4});
    y = kiln_gemm(g, a, b, kiln_value_invalid(), 1, 1, 0, 0);
    tu_assert_graph_error(g, "Gemm", "u8", "supported", NULL);
    kiln_graph_free(g);

    g = kiln_graph_new();
    a = kiln_placeholder(g, "a", KILN_F32, 2, (int64_t[]){2, 3});
    b = kiln_placeholder(g, "b", KILN_F32, 2, (int64_t[]){3, 4});
    kiln_attrs *at = kiln_attrs_new();
    kiln_attrs_int(at, "transB", -1);
    y = kiln_op(g, "Gemm", (kiln_value[]){a, b}, 2, at);
    kiln_attrs_free(at);
    tu_assert_graph_error(g, "Gemm", "transB", "0 or 1", NULL);
    kiln_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_matmul_numpy),
        TU_TEST(test_gemm_numpy),
        TU_TEST(test_matmul_hand),
        TU_TEST(test_matmul_int_wraps),
        TU_TEST(test_matmul_infer),
        TU_TEST(test_matmul_symbolic),
        TU_TEST(test_matmul_errors),
        TU_TEST(test_gemm_hand),
        TU_TEST(test_gemm_symbolic),
        TU_TEST(test_gemm_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
