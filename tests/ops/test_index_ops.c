/* test_index_ops.c -- the index family (ir/ops/index.c, codegen/lower_index.c,
 * codegen/kernels/kk_index.c): TopK, CumSum, CumProd, GatherElements,
 * ScatterElements, ScatterND and OneHot. Reference results against numpy
 * (expected_index.h, written by gen_index.py) for several dtypes, cases
 * worked out by hand, inference errors, out-of-range indices at run time
 * (a clear error from both backends, never a crash), and compiled against
 * reference on larger random inputs. */
#include "common/testutil.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "ops/expected_index.h"

static const kiln_dtype data_dtypes[] = {KILN_F32,  KILN_F64, KILN_F16,
                                         KILN_BF16, KILN_I32, KILN_I64};
#define NDTYPES (sizeof data_dtypes / sizeof data_dtypes[0])

/* ---- helpers ---- */

static const char *const int_names[6] = {"k", "axis", "largest", "exclusive", "reverse", "depth"};

static bool is_scatter(const char *op) { return strncmp(op, "Scatter", 7) == 0; }

/* Asserts t holds exactly the elements want would have in t's dtype. */
static void assert_same_elements(kiln_tensor *t, const index_tensor *o, const char *what)
{
    kiln_dtype dt = kiln_tensor_dtype(t);
    tu_assert_shape(t, dt, o->rank, o->dims);
    kiln_tensor *w = tu_from_f64(dt, o->rank, o->dims, o->data);
    size_t nb = kiln_tensor_nbytes(t), esz = kiln_dtype_size(dt);
    assert_int_equal(nb, kiln_tensor_nbytes(w));
    const unsigned char *a = kiln_tensor_data(t), *b = kiln_tensor_data(w);
    for (size_t i = 0; i < nb; i += esz)
        if (memcmp(a + i, b + i, esz) != 0)
            fail_msg("%s (%s): element %zu differs from %g", what, kiln_dtype_name(dt), i / esz,
                     o->data[i / esz]);
    kiln_tensor_free(w);
}

/* Builds one numpy case with data of dtype dt and indices of idt, checks
 * the built types, the reference results, and compiled against reference. */
static void run_case(const index_case *c, kiln_dtype dt, kiln_dtype idt)
{
    char what[256];
    snprintf(what, sizeof what, "%s %s", c->op, c->label);
    kiln_graph *g = kiln_graph_new();
    kiln_value ph[3];
    kiln_tensor *feeds[3];
    for (int i = 0; i < c->nin; i++) {
        const index_tensor *t = &c->in[i];
        kiln_dtype tdt = t->is_index ? idt : dt;
        ph[i] = kiln_placeholder(g, NULL, tdt, t->rank, t->dims);
        feeds[i] = tu_from_f64(tdt, t->rank, t->dims, t->data);
    }
    kiln_attrs *a = kiln_attrs_new();
    for (int k = 0; k < 6; k++)
        if (c->given[k]) kiln_attrs_int(a, int_names[k], c->ints[k]);
    if (is_scatter(c->op)) kiln_attrs_string(a, "reduction", c->reduction);
    kiln_value y = kiln_op(g, c->op, ph, c->nin, a);
    kiln_attrs_free(a);
    if (!kiln_value_ok(y)) fail_msg("%s: %s", what, kiln_graph_error(g));
    assert_int_equal(kiln_value_output_count(g, y), c->nout);
    kiln_value outs[2];
    for (int k = 0; k < c->nout; k++) {
        const index_tensor *o = &c->out[k];
        outs[k] = (kiln_value){y.node, k};
        int64_t dims[8];
        assert_int_equal(kiln_value_dtype(g, outs[k]), o->is_index ? KILN_I64 : dt);
        assert_int_equal(kiln_value_rank(g, outs[k]), o->rank);
        kiln_value_dims(g, outs[k], dims);
        for (int d = 0; d < o->rank; d++)
            if (dims[d] != o->dims[d])
                fail_msg("%s: output %d dim %d built as %lld, numpy says %lld", what, k, d,
                         (long long)dims[d], (long long)o->dims[d]);
        kiln_tensor *r = tu_run(g, outs[k], c->nin, ph, feeds);
        assert_same_elements(r, o, what);
        kiln_tensor_free(r);
    }
    tu_diff(g, c->nout, outs, c->nin, ph, feeds, 0, 0);
    for (int i = 0; i < c->nin; i++) kiln_tensor_free(feeds[i]);
    kiln_graph_free(g);
}

static void test_numpy_cases(void **state)
{
    (void)state;
    size_t ncases = sizeof index_cases / sizeof index_cases[0];
    for (size_t i = 0; i < ncases; i++)
        for (size_t k = 0; k < NDTYPES; k++)
            run_case(&index_cases[i], data_dtypes[k], (i + k) % 2 ? KILN_I32 : KILN_I64);
}

/* One op on placeholders with int attributes (names[i] = vals[i]). */
static kiln_value op_attrs(kiln_graph *g, const char *op, const kiln_value *in, int nin,
                           const char *const *names, const int64_t *vals, int n,
                           const char *reduction)
{
    kiln_attrs *a = kiln_attrs_new();
    for (int i = 0; i < n; i++) kiln_attrs_int(a, names[i], vals[i]);
    if (reduction) kiln_attrs_string(a, "reduction", reduction);
    kiln_value y = kiln_op(g, op, in, nin, a);
    kiln_attrs_free(a);
    return y;
}

/* ---- cases worked out by hand ---- */

static void test_topk_by_hand(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 1, (int64_t[]){5});
    /* [4, 1, 4, 2, 1]: the two 4s and the two 1s are ties. */
    kiln_tensor *tx = tu_f32(1, (int64_t[]){5}, (float[]){4, 1, 4, 2, 1});
    static const char *const names[] = {"k", "axis", "largest"};
    kiln_value big = op_attrs(g, "TopK", &x, 1, names, (int64_t[]){3, 0, 1}, 3, NULL);
    kiln_value sml = op_attrs(g, "TopK", &x, 1, names, (int64_t[]){3, -1, 0}, 3, NULL);
    assert_true(kiln_value_ok(big) && kiln_value_ok(sml));
    kiln_tensor *r = tu_run(g, big, 1, &x, &tx);
    tu_assert_close(r, (double[]){4, 4, 2}, 3, 0, 0);
    kiln_tensor_free(r);
    r = tu_run(g, (kiln_value){big.node, 1}, 1, &x, &tx);
    tu_assert_shape(r, KILN_I64, 1, (int64_t[]){3});
    tu_assert_ints(r, (int64_t[]){0, 2, 3}, 3);
    kiln_tensor_free(r);
    r = tu_run(g, (kiln_value){sml.node, 1}, 1, &x, &tx);
    tu_assert_ints(r, (int64_t[]){1, 4, 3}, 3);
    kiln_tensor_free(r);
    kiln_value outs[4] = {big, {big.node, 1}, sml, {sml.node, 1}};
    tu_diff(g, 4, outs, 1, &x, &tx, 0, 0);
    kiln_tensor_free(tx);

    /* NaN counts as the largest value: first for largest, last for smallest. */
    tx = tu_f32(1, (int64_t[]){5}, (float[]){1, NAN, 3, -2, NAN});
    r = tu_run(g, (kiln_value){big.node, 1}, 1, &x, &tx);
    tu_assert_ints(r, (int64_t[]){1, 4, 2}, 3);
    kiln_tensor_free(r);
    r = tu_run(g, (kiln_value){sml.node, 1}, 1, &x, &tx);
    tu_assert_ints(r, (int64_t[]){3, 0, 2}, 3);
    kiln_tensor_free(r);
    kiln_value idx_outs[2] = {{big.node, 1}, {sml.node, 1}};
    tu_diff(g, 2, idx_outs, 1, &x, &tx, 0, 0);
    kiln_tensor_free(tx);

    /* symbolic dims other than the axis stay symbolic */
    kiln_value s = kiln_placeholder(g, "s", KILN_I64, 2, (int64_t[]){-1, 5});
    kiln_value ys = op_attrs(g, "TopK", &s, 1, names, (int64_t[]){2, 1, 1}, 3, NULL);
    int64_t d[2];
    assert_int_equal(kiln_value_dims(g, ys, d), 2);
    assert_int_equal(d[0], -1);
    assert_int_equal(d[1], 2);
    kiln_graph_free(g);
}

static void test_cum_by_hand(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_I32, 2, (int64_t[]){2, 3});
    kiln_tensor *tx = tu_i32(2, (int64_t[]){2, 3}, (int32_t[]){1, 2, 3, 4, 5, 6});
    static const char *const names[] = {"axis", "exclusive", "reverse"};
    kiln_value s = op_attrs(g, "CumSum", &x, 1, names, (int64_t[]){1, 0, 0}, 3, NULL);
    kiln_value se = op_attrs(g, "CumSum", &x, 1, names, (int64_t[]){1, 1, 0}, 3, NULL);
    kiln_value sr = op_attrs(g, "CumSum", &x, 1, names, (int64_t[]){-1, 1, 1}, 3, NULL);
    kiln_value s0 = op_attrs(g, "CumSum", &x, 1, names, (int64_t[]){0, 0, 0}, 3, NULL);
    kiln_value p = op_attrs(g, "CumProd", &x, 1, names, (int64_t[]){1, 0, 1}, 3, NULL);
    kiln_value outs[5] = {s, se, sr, s0, p};
    static const int64_t want[5][6] = {
        {1, 3, 6, 4, 9, 15},     /* running sums of each row */
        {0, 1, 3, 0, 4, 9},      /* exclusive */
        {5, 3, 0, 11, 6, 0},     /* exclusive, from the end */
        {1, 2, 3, 5, 7, 9},      /* down the columns */
        {6, 6, 3, 120, 30, 6},   /* products from the end */
    };
    for (int i = 0; i < 5; i++) {
        kiln_tensor *r = tu_run(g, outs[i], 1, &x, &tx);
        tu_assert_shape(r, KILN_I32, 2, (int64_t[]){2, 3});
        tu_assert_ints(r, want[i], 6);
        kiln_tensor_free(r);
    }
    tu_diff(g, 5, outs, 1, &x, &tx, 0, 0);
    kiln_tensor_free(tx);
    kiln_graph_free(g);
}

static void test_gather_scatter_by_hand(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){2, 2});
    kiln_value i = kiln_placeholder(g, "i", KILN_I64, 2, (int64_t[]){2, 2});
    kiln_value u = kiln_placeholder(g, "u", KILN_F32, 2, (int64_t[]){2, 2});
    kiln_value ph[3] = {x, i, u};
    kiln_tensor *feeds[3] = {tu_f32(2, (int64_t[]){2, 2}, (float[]){1, 2, 3, 4}),
                             tu_i64(2, (int64_t[]){2, 2}, (int64_t[]){0, 0, 1, 0}),
                             tu_f32(2, (int64_t[]){2, 2}, (float[]){10, 20, 30, 40})};
    static const char *const axis[] = {"axis"};
    /* ONNX's GatherElements example: [[1, 1], [4, 3]] */
    kiln_value ge = op_attrs(g, "GatherElements", ph, 2, axis, (int64_t[]){1}, 1, NULL);
    /* row 0 gets 10 then 20 at column 0; row 1: 30 at column 1, 40 at 0 */
    kiln_value sn = op_attrs(g, "ScatterElements", ph, 3, axis, (int64_t[]){1}, 1, "none");
    kiln_value sa = op_attrs(g, "ScatterElements", ph, 3, axis, (int64_t[]){1}, 1, "add");
    kiln_value outs[3] = {ge, sn, sa};
    static const double want[3][4] = {{1, 1, 4, 3}, {20, 2, 40, 30}, {31, 2, 43, 34}};
    for (int k = 0; k < 3; k++) {
        kiln_tensor *r = tu_run(g, outs[k], 3, ph, feeds);
        tu_assert_close(r, want[k], 4, 0, 0);
        kiln_tensor_free(r);
    }
    tu_diff(g, 3, outs, 3, ph, feeds, 0, 0);
    for (int k = 0; k < 3; k++) kiln_tensor_free(feeds[k]);
    kiln_graph_free(g);

    /* ScatterND: rows 2 and 0 of a [3, 2] replaced; OneHot of [1, -1, 5] */
    g = kiln_graph_new();
    x = kiln_placeholder(g, "x", KILN_I64, 2, (int64_t[]){3, 2});
    i = kiln_placeholder(g, "i", KILN_I32, 2, (int64_t[]){2, 1});
    u = kiln_placeholder(g, "u", KILN_I64, 2, (int64_t[]){2, 2});
    kiln_value ph2[3] = {x, i, u};
    kiln_tensor *f2[3] = {tu_i64(2, (int64_t[]){3, 2}, (int64_t[]){1, 2, 3, 4, 5, 6}),
                          tu_i32(2, (int64_t[]){2, 1}, (int32_t[]){2, 0}),
                          tu_i64(2, (int64_t[]){2, 2}, (int64_t[]){7, 8, 9, 10})};
    kiln_value nd = op_attrs(g, "ScatterND", ph2, 3, NULL, NULL, 0, "mul");
    kiln_tensor *r = tu_run(g, nd, 3, ph2, f2);
    tu_assert_ints(r, (int64_t[]){9, 20, 3, 4, 35, 48}, 6);
    kiln_tensor_free(r);
    tu_diff(g, 1, &nd, 3, ph2, f2, 0, 0);
    for (int k = 0; k < 3; k++) kiln_tensor_free(f2[k]);
    kiln_graph_free(g);

    g = kiln_graph_new();
    kiln_value oi = kiln_placeholder(g, "i", KILN_I64, 1, (int64_t[]){3});
    kiln_value ov = kiln_placeholder(g, "v", KILN_BOOL, 1, (int64_t[]){2});
    kiln_value ph3[2] = {oi, ov};
    kiln_tensor *f3[2] = {tu_i64(1, (int64_t[]){3}, (int64_t[]){1, -1, 5}),
                          tu_bool(1, (int64_t[]){2}, (uint8_t[]){0, 1})};
    static const char *const oh[] = {"depth", "axis"};
    kiln_value y = op_attrs(g, "OneHot", ph3, 2, oh, (int64_t[]){3, 0}, 2, NULL);
    r = tu_run(g, y, 2, ph3, f3);
    tu_assert_shape(r, KILN_BOOL, 2, (int64_t[]){3, 3});
    /* column j is index j: 1 -> row 1, -1 -> row 2, 5 (out of range) -> none */
    tu_assert_ints(r, (int64_t[]){0, 0, 0, 1, 0, 0, 0, 1, 0}, 9);
    kiln_tensor_free(r);
    tu_diff(g, 1, &y, 2, ph3, f3, 0, 0);
    for (int k = 0; k < 2; k++) kiln_tensor_free(f3[k]);
    kiln_graph_free(g);
}

/* ---- inference errors ---- */

static void expect_error(kiln_graph *g, kiln_value y, const char *a, const char *b)
{
    assert_false(kiln_value_ok(y));
    tu_assert_graph_error(g, a, b, (const char *)NULL);
}

static void test_inference_errors(void **state)
{
    (void)state;
    static const char *const k_axis[] = {"k", "axis"};
    static const char *const axis[] = {"axis"};
    static const char *const oh[] = {"depth", "axis"};
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){3, 5});
    expect_error(g, op_attrs(g, "TopK", &x, 1, k_axis, (int64_t[]){2, 2}, 2, NULL), "TopK",
                 "axis 2 is out of range for rank 2");
    kiln_graph_free(g);

    g = kiln_graph_new();
    x = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){3, 5});
    expect_error(g, op_attrs(g, "TopK", &x, 1, k_axis, (int64_t[]){6, 1}, 2, NULL),
                 "k = 6 is larger than dim 1 (size 5)", "f32[3,5]");
    kiln_graph_free(g);

    g = kiln_graph_new();
    kiln_value b = kiln_placeholder(g, "b", KILN_BOOL, 1, (int64_t[]){4});
    expect_error(g, op_attrs(g, "TopK", &b, 1, k_axis, (int64_t[]){1, 0}, 2, NULL), "TopK", "bool");
    kiln_graph_free(g);

    g = kiln_graph_new();
    x = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){3, 5});
    expect_error(g, op_attrs(g, "CumSum", &x, 1, axis, (int64_t[]){-3}, 1, NULL), "CumSum",
                 "axis -3 is out of range for rank 2");
    kiln_graph_free(g);

    g = kiln_graph_new();
    x = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){3, 5});
    kiln_value i1 = kiln_placeholder(g, "i", KILN_I64, 1, (int64_t[]){3});
    expect_error(
        g, op_attrs(g, "GatherElements", (kiln_value[]){x, i1}, 2, axis, (int64_t[]){0}, 1, NULL),
        "GatherElements", "indices have rank 1; data has rank 2");
    kiln_graph_free(g);

    g = kiln_graph_new();
    x = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){3, 5});
    kiln_value fi = kiln_placeholder(g, "i", KILN_F32, 2, (int64_t[]){3, 5});
    expect_error(
        g, op_attrs(g, "GatherElements", (kiln_value[]){x, fi}, 2, axis, (int64_t[]){0}, 1, NULL),
        "GatherElements", "f32");
    kiln_graph_free(g);

    g = kiln_graph_new();
    x = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){3, 5});
    kiln_value i2 = kiln_placeholder(g, "i", KILN_I64, 2, (int64_t[]){2, 2});
    kiln_value u = kiln_placeholder(g, "u", KILN_F32, 2, (int64_t[]){2, 3});
    expect_error(g,
                 op_attrs(g, "ScatterElements", (kiln_value[]){x, i2, u}, 3, axis, (int64_t[]){0},
                          1, "none"),
                 "ScatterElements", "updates and indices must have the same shape");
    kiln_graph_free(g);

    g = kiln_graph_new();
    x = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){3, 5});
    i2 = kiln_placeholder(g, "i", KILN_I64, 2, (int64_t[]){2, 2});
    u = kiln_placeholder(g, "u", KILN_F32, 2, (int64_t[]){2, 2});
    expect_error(
        g,
        op_attrs(g, "ScatterElements", (kiln_value[]){x, i2, u}, 3, axis, (int64_t[]){0}, 1, "avg"),
        "ScatterElements", "reduction 'avg' is not one of none, add, mul, max, min");
    kiln_graph_free(g);

    g = kiln_graph_new();
    x = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){3, 5});
    kiln_value i3 = kiln_placeholder(g, "i", KILN_I64, 2, (int64_t[]){2, 3});
    u = kiln_placeholder(g, "u", KILN_F32, 1, (int64_t[]){2});
    expect_error(g, op_attrs(g, "ScatterND", (kiln_value[]){x, i3, u}, 3, NULL, NULL, 0, "none"),
                 "ScatterND", "the last dim of indices is 3; it must be in [1, 2]");
    kiln_graph_free(g);

    g = kiln_graph_new();
    kiln_value oi = kiln_placeholder(g, "i", KILN_I64, 1, (int64_t[]){3});
    kiln_value ov = kiln_placeholder(g, "v", KILN_F32, 1, (int64_t[]){2});
    expect_error(g,
                 op_attrs(g, "OneHot", (kiln_value[]){oi, ov}, 2, oh, (int64_t[]){0, -1}, 2, NULL),
                 "OneHot", "depth = 0; it must be at least 1");
    kiln_graph_free(g);

    g = kiln_graph_new();
    oi = kiln_placeholder(g, "i", KILN_I64, 1, (int64_t[]){3});
    ov = kiln_placeholder(g, "v", KILN_F32, 1, (int64_t[]){3});
    expect_error(g,
                 op_attrs(g, "OneHot", (kiln_value[]){oi, ov}, 2, oh, (int64_t[]){4, -1}, 2, NULL),
                 "OneHot", "values must hold two elements");
    kiln_graph_free(g);
}

/* ---- out-of-range indices at run time ---- */

/* Both backends refuse the feeds with a message about the index. */
static void expect_run_error(kiln_graph *g, kiln_value y, int n, const kiln_value *ph,
                             kiln_tensor *const *feeds, const char *ref_msg)
{
    tu_run_fails(g, y, n, ph, feeds, ref_msg);
    kiln_tensor *out = NULL;
    char msg[512];
    int rc = tu_run_backend(g, KILN_BACKEND_DEFAULT, 1, &y, &out, n, ph, feeds, msg, sizeof msg);
    assert_int_not_equal(rc, KILN_OK);
    assert_null(out);
    if (!strstr(msg, "out of range")) fail_msg("compiled run: unexpected message '%s'", msg);
}

static void test_index_out_of_range(void **state)
{
    (void)state;
    static const char *const axis[] = {"axis"};
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){2, 3});
    kiln_value i = kiln_placeholder(g, "i", KILN_I64, 2, (int64_t[]){2, 2});
    kiln_value u = kiln_placeholder(g, "u", KILN_F32, 2, (int64_t[]){2, 2});
    kiln_value ph[3] = {x, i, u};
    kiln_value ge = op_attrs(g, "GatherElements", ph, 2, axis, (int64_t[]){1}, 1, NULL);
    kiln_value se = op_attrs(g, "ScatterElements", ph, 3, axis, (int64_t[]){1}, 1, "add");
    kiln_tensor *f[3] = {tu_f32(2, (int64_t[]){2, 3}, (float[]){1, 2, 3, 4, 5, 6}),
                         tu_i64(2, (int64_t[]){2, 2}, (int64_t[]){0, 2, 3, 1}),
                         tu_f32(2, (int64_t[]){2, 2}, (float[]){1, 1, 1, 1})};
    const char *m = "index 3 (element 2 of the indices) is out of range for dim 1 of size 3";
    expect_run_error(g, ge, 2, ph, f, m);
    expect_run_error(g, se, 3, ph, f, m);
    kiln_tensor_free(f[1]);
    f[1] = tu_i64(2, (int64_t[]){2, 2}, (int64_t[]){0, -4, 1, 1});
    expect_run_error(g, ge, 2, ph, f, "index -4 (element 1 of the indices) is out of range");
    for (int k = 0; k < 3; k++) kiln_tensor_free(f[k]);
    kiln_graph_free(g);

    g = kiln_graph_new();
    x = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){2, 3});
    i = kiln_placeholder(g, "i", KILN_I32, 2, (int64_t[]){1, 2});
    u = kiln_placeholder(g, "u", KILN_F32, 1, (int64_t[]){1});
    kiln_value ph2[3] = {x, i, u};
    kiln_value nd = op_attrs(g, "ScatterND", ph2, 3, NULL, NULL, 0, "none");
    kiln_tensor *f2[3] = {tu_f32(2, (int64_t[]){2, 3}, (float[]){1, 2, 3, 4, 5, 6}),
                          tu_i32(2, (int64_t[]){1, 2}, (int32_t[]){1, 7}),
                          tu_f32(1, (int64_t[]){1}, (float[]){9})};
    expect_run_error(g, nd, 3, ph2, f2,
                     "index 7 (element 1 of the indices) is out of range for dim 1");
    for (int k = 0; k < 3; k++) kiln_tensor_free(f2[k]);
    kiln_graph_free(g);
}

/* ---- compiled against reference on larger inputs (several threads) ---- */

static void test_compiled_vs_reference(void **state)
{
    (void)state;
    static const char *const topk_names[] = {"k", "axis", "largest"};
    static const char *const cum_names[] = {"axis", "exclusive", "reverse"};
    static const char *const axis[] = {"axis"};
    static const char *const oh[] = {"depth", "axis"};
    const int64_t xd[2] = {64, 300}, id[2] = {64, 200};
    kiln_graph *g = kiln_graph_new();
    kiln_value ph[8] = {
        kiln_placeholder(g, "x", KILN_F32, 2, xd),   kiln_placeholder(g, "h", KILN_F16, 2, xd),
        kiln_placeholder(g, "xi", KILN_I32, 2, xd),  kiln_placeholder(g, "gi", KILN_I64, 2, id),
        kiln_placeholder(g, "ui", KILN_I32, 2, id),  kiln_placeholder(g, "upd", KILN_F32, 2, id),
        kiln_placeholder(g, "oi", KILN_I64, 1, (int64_t[]){500}),
        kiln_placeholder(g, "ov", KILN_F32, 1, (int64_t[]){2}),
    };
    kiln_value x = ph[0], h = ph[1], xi = ph[2], gi = ph[3], ui = ph[4], upd = ph[5];
    kiln_tensor *feeds[8] = {
        tu_random(KILN_F32, 2, xd, -10, 10, 1), tu_random(KILN_F16, 2, xd, -4, 4, 2),
        tu_random(KILN_I32, 2, xd, -20, 20, 3), tu_random(KILN_I64, 2, id, -300, 300, 4),
        tu_random(KILN_I32, 2, id, 0, 300, 5),  tu_random(KILN_F32, 2, id, -1, 1, 6),
        tu_random(KILN_I64, 1, (int64_t[]){500}, -50, 50, 7),
        tu_f32(1, (int64_t[]){2}, (float[]){-1, 2}),
    };
    kiln_value outs[16];
    int n = 0;
    kiln_value t = op_attrs(g, "TopK", &x, 1, topk_names, (int64_t[]){10, 1, 1}, 3, NULL);
    outs[n++] = t;
    outs[n++] = (kiln_value){t.node, 1};
    t = op_attrs(g, "TopK", &xi, 1, topk_names, (int64_t[]){7, 0, 0}, 3, NULL);
    outs[n++] = t;
    outs[n++] = (kiln_value){t.node, 1};
    t = op_attrs(g, "TopK", &h, 1, topk_names, (int64_t[]){300, -1, 0}, 3, NULL);
    outs[n++] = (kiln_value){t.node, 1};
    outs[n++] = op_attrs(g, "CumSum", &x, 1, cum_names, (int64_t[]){1, 0, 0}, 3, NULL);
    outs[n++] = op_attrs(g, "CumSum", &h, 1, cum_names, (int64_t[]){0, 1, 1}, 3, NULL);
    outs[n++] = op_attrs(g, "CumSum", &xi, 1, cum_names, (int64_t[]){1, 1, 0}, 3, NULL);
    outs[n++] = op_attrs(g, "CumProd", &xi, 1, cum_names, (int64_t[]){0, 0, 1}, 3, NULL);
    outs[n++] =
        op_attrs(g, "GatherElements", (kiln_value[]){x, gi}, 2, axis, (int64_t[]){1}, 1, NULL);
    outs[n++] =
        op_attrs(g, "GatherElements", (kiln_value[]){h, ui}, 2, axis, (int64_t[]){1}, 1, NULL);
    outs[n++] = op_attrs(g, "ScatterElements", (kiln_value[]){x, gi, upd}, 3, axis, (int64_t[]){1},
                         1, "add");
    outs[n++] = op_attrs(g, "ScatterElements", (kiln_value[]){x, ui, upd}, 3, axis, (int64_t[]){1},
                         1, "max");
    outs[n++] =
        op_attrs(g, "OneHot", (kiln_value[]){ph[6], ph[7]}, 2, oh, (int64_t[]){40, 0}, 2, NULL);
    for (int i = 0; i < n; i++)
        if (!kiln_value_ok(outs[i])) fail_msg("output %d: %s", i, kiln_graph_error(g));
    tu_diff(g, n, outs, 8, ph, feeds, 0, 0);
    for (int i = 0; i < 8; i++) kiln_tensor_free(feeds[i]);
    kiln_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_numpy_cases),
        TU_TEST(test_topk_by_hand),
        TU_TEST(test_cum_by_hand),
        TU_TEST(test_gather_scatter_by_hand),
        TU_TEST(test_inference_errors),
        TU_TEST(test_index_out_of_range),
        TU_TEST(test_compiled_vs_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
