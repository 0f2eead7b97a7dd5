/* test_shape.c -- the shape family (ir/ops/shape.c, ir/ops/shape_index.c):
 * shape inference with static and symbolic dims, the error cases, and
 * reference results against numpy (expected_shape.h, written by
 * gen_shape.py) for every dtype, plus hand-checked cases. */
#include "common/testutil.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "ops/expected_shape.h"

static const kiln_dtype all_dtypes[] = {KILN_F32, KILN_F64, KILN_F16, KILN_BF16, KILN_I8,
                                        KILN_U8,  KILN_I32, KILN_I64, KILN_BOOL};
#define NDTYPES (sizeof all_dtypes / sizeof all_dtypes[0])

/* ---- helpers ---- */

static kiln_value op_ints(kiln_graph *g, const char *op, kiln_value x, const char *name,
                          const int64_t *v, int n)
{
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_ints(a, name, v, n);
    kiln_value y = kiln_op(g, op, &x, 1, a);
    kiln_attrs_free(a);
    return y;
}

/* Asserts the type v was built with. */
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

/* Asserts t holds exactly the elements want would have in t's dtype. */
static void assert_same_elements(kiln_tensor *t, int rank, const int64_t *dims, const double *want,
                                 const char *what)
{
    kiln_dtype dt = kiln_tensor_dtype(t);
    tu_assert_shape(t, dt, rank, dims);
    kiln_tensor *w = tu_from_f64(dt, rank, dims, want);
    size_t nb = kiln_tensor_nbytes(t), esz = kiln_dtype_size(dt);
    assert_int_equal(nb, kiln_tensor_nbytes(w));
    const unsigned char *a = kiln_tensor_data(t), *b = kiln_tensor_data(w);
    for (size_t i = 0; i < nb; i += esz)
        if (memcmp(a + i, b + i, esz) != 0)
            fail_msg("%s (%s): element %zu differs from %g", what, kiln_dtype_name(dt), i / esz,
                     want[i / esz]);
    kiln_tensor_free(w);
}

/* The op's INTS attributes, in the order of shape_case.attrs. */
static const char *ints_attr_name(const char *op, int k)
{
    static const struct {
        const char *op;
        const char *names[4];
    } table[] = {
        {"Transpose", {"perm"}},
        {"Slice", {"starts", "ends", "axes", "steps"}},
        {"Pad", {"pads"}},
        {"Expand", {"shape"}},
        {"Tile", {"repeats"}},
        {"Split", {"split"}},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(table[i].op, op) == 0) return table[i].names[k];
    return NULL;
}

/* Builds and runs one numpy case with data of dtype dt (Gather's indices of
 * idt). symbolic: every placeholder dim is -1. Checks the built types
 * (exact when static, -1 or exact when symbolic) and every output. */
static void run_case(const shape_case *c, kiln_dtype dt, kiln_dtype idt, bool symbolic)
{
    char what[256];
    snprintf(what, sizeof what, "%s %s%s", c->op, c->label, symbolic ? " (symbolic)" : "");
    kiln_graph *g = kiln_graph_new();
    kiln_value ph[3];
    kiln_tensor *feeds[3];
    bool gather = strcmp(c->op, "Gather") == 0;
    for (int i = 0; i < c->nin; i++) {
        const shape_tensor *t = &c->in[i];
        kiln_dtype tdt = gather && i == 1 ? idt : dt;
        int64_t dims[8];
        for (int d = 0; d < t->rank; d++) dims[d] = symbolic ? -1 : t->dims[d];
        ph[i] = kiln_placeholder(g, NULL, tdt, t->rank, dims);
        feeds[i] = tu_from_f64(tdt, t->rank, t->dims, t->data);
    }
    kiln_attrs *a = kiln_attrs_new();
    for (int k = 0; k < 4; k++) {
        const char *name = ints_attr_name(c->op, k);
        if (name && c->attrs[k].n >= 0) kiln_attrs_ints(a, name, c->attrs[k].v, c->attrs[k].n);
    }
    if (c->has_axis) kiln_attrs_int(a, "axis", c->axis);
    if (c->num_outputs) kiln_attrs_int(a, "num_outputs", c->num_outputs);
    if (c->mode) {
        kiln_attrs_string(a, "mode", c->mode);
        kiln_attrs_float(a, "value", c->value);
    }
    kiln_value y = kiln_op(g, c->op, ph, c->nin, a);
    kiln_attrs_free(a);
    if (!kiln_value_ok(y)) fail_msg("%s: %s", what, kiln_graph_error(g));
    assert_int_equal(kiln_value_output_count(g, y), c->nout);
    for (int k = 0; k < c->nout; k++) {
        const shape_tensor *o = &c->out[k];
        kiln_value yk = {y.node, k};
        int64_t dims[8];
        assert_int_equal(kiln_value_rank(g, yk), o->rank);
        kiln_value_dims(g, yk, dims);
        for (int d = 0; d < o->rank; d++)
            if (dims[d] != o->dims[d] && !(symbolic && dims[d] == -1))
                fail_msg("%s: output %d dim %d built as %lld, numpy says %lld", what, k, d,
                         (long long)dims[d], (long long)o->dims[d]);
        kiln_tensor *r = tu_run(g, yk, c->nin, ph, feeds);
        assert_same_elements(r, o->rank, o->dims, o->data, what);
        kiln_tensor_free(r);
    }
    for (int i = 0; i < c->nin; i++) kiln_tensor_free(feeds[i]);
    kiln_graph_free(g);
}

/* ---- numpy-computed cases, every dtype, static and symbolic ---- */

static void test_numpy_cases(void **state)
{
    (void)state;
    size_t ncases = sizeof shape_cases / sizeof shape_cases[0];
    for (size_t i = 0; i < ncases; i++)
        for (size_t k = 0; k < NDTYPES; k++) {
            kiln_dtype idt = k % 2 ? KILN_I32 : KILN_I64;
            run_case(&shape_cases[i], all_dtypes[k], idt, false);
            run_case(&shape_cases[i], all_dtypes[k], idt == KILN_I32 ? KILN_I64 : KILN_I32, true);
        }
}

/* ---- Transpose ---- */

static void test_transpose(void **state)
{
    (void)state;
    /* Values that f16/bf16 round: compared with a tolerance that fits each. */
    const double x[6] = {0.1, -1.7, 2.3, 3.14159, -0.004, 1e3};
    const double want[6] = {0.1, 3.14159, -1.7, -0.004, 2.3, 1e3};
    const struct {
        kiln_dtype dt;
        double rtol;
    } fl[] = {{KILN_F64, 0}, {KILN_F32, 1e-7}, {KILN_F16, 1e-3}, {KILN_BF16, 8e-3}};
    for (size_t i = 0; i < sizeof fl / sizeof fl[0]; i++) {
        kiln_graph *g = kiln_graph_new();
        kiln_value p = kiln_placeholder(g, "x", fl[i].dt, 2, (int64_t[]){2, 3});
        kiln_value y = kiln_transpose(g, p, NULL, 0);
        assert_value_type(g, y, fl[i].dt, 2, (int64_t[]){3, 2});
        kiln_tensor *tx = tu_from_f64(fl[i].dt, 2, (int64_t[]){2, 3}, x);
        kiln_tensor *r = tu_run(g, y, 1, &p, &tx);
        tu_assert_close(r, want, 6, fl[i].rtol, 0);
        kiln_tensor_free(r);
        kiln_tensor_free(tx);
        kiln_graph_free(g);
    }

    /* bool, by hand */
    kiln_graph *g = kiln_graph_new();
    kiln_value p = kiln_placeholder(g, "x", KILN_BOOL, 2, (int64_t[]){2, 3});
    kiln_value y = kiln_transpose(g, p, (int64_t[]){1, 0}, 2);
    kiln_tensor *tx = tu_bool(2, (int64_t[]){2, 3}, (uint8_t[]){1, 0, 0, 1, 1, 0});
    kiln_tensor *r = tu_run(g, y, 1, &p, &tx);
    tu_assert_shape(r, KILN_BOOL, 2, (int64_t[]){3, 2});
    tu_assert_ints(r, (int64_t[]){1, 1, 0, 1, 0, 0}, 6);
    kiln_tensor_free(r);
    kiln_tensor_free(tx);
    /* symbolic dims move with their axes; zero-size dims too */
    p = kiln_placeholder(g, "s", KILN_F32, 3, (int64_t[]){-1, 3, 0});
    assert_value_type(g, kiln_transpose(g, p, (int64_t[]){2, 0, 1}, 3), KILN_F32, 3,
                      (int64_t[]){0, -1, 3});
    assert_value_type(g, kiln_transpose(g, p, NULL, 0), KILN_F32, 3, (int64_t[]){0, 3, -1});
    kiln_graph_free(g);

    const struct {
        int64_t perm[3];
        int n;
        const char *msg;
    } bad[] = {
        {{1, 0}, 2, "perm has 2 entries; the input has rank 3"},
        {{0, 1, 3}, 3, "perm[2] = 3 is out of range [0, 3)"},
        {{0, -1, 2}, 3, "perm[1] = -1 is out of range"},
        {{0, 2, 0}, 3, "perm lists axis 0 twice"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        g = kiln_graph_new();
        p = kiln_placeholder(g, "x", KILN_F32, 3, (int64_t[]){2, 3, 4});
        assert_false(kiln_value_ok(kiln_transpose(g, p, bad[i].perm, bad[i].n)));
        tu_assert_graph_error(g, "Transpose", bad[i].msg, "f32[2,3,4]", NULL);
        kiln_graph_free(g);
    }
}

/* ---- Reshape ---- */

static void test_reshape(void **state)
{
    (void)state;
    double x[24];
    for (int i = 0; i < 24; i++) x[i] = i * 0.5 - 3;
    kiln_graph *g = kiln_graph_new();
    kiln_value p = kiln_placeholder(g, "x", KILN_F64, 3, (int64_t[]){2, 3, 4});
    kiln_value s = kiln_placeholder(g, "s", KILN_F64, 3, (int64_t[]){-1, 3, 4});
    const struct {
        kiln_value in;
        int64_t shape[4];
        int n, rank;
        int64_t want[4];
    } ok[] = {
        {p, {4, -1}, 2, 2, {4, 6}},
        {p, {0, -1}, 2, 2, {2, 12}},
        {p, {-1}, 1, 1, {24}},
        {p, {0, 0, 4}, 3, 3, {2, 3, 4}},
        {p, {2, 0, 2, -1}, 4, 4, {2, 3, 2, 2}},
        {s, {0, -1}, 2, 2, {-1, 12}},   /* the symbolic dim cancels */
        {s, {0, 12}, 2, 2, {-1, 12}},
        {s, {0, 3, 2, -1}, 4, 4, {-1, 3, 2, 2}},
        {s, {-1, 4}, 2, 2, {-1, 4}},    /* not copied: unknown until run time */
        {s, {6, -1}, 2, 2, {6, -1}},
    };
    kiln_tensor *tx = tu_f64(3, (int64_t[]){2, 3, 4}, x);
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        kiln_value y = kiln_reshape(g, ok[i].in, ok[i].shape, ok[i].n);
        assert_value_type(g, y, KILN_F64, ok[i].rank, ok[i].want);
        kiln_tensor *r = tu_run(g, y, 1, &ok[i].in, &tx);
        tu_assert_close(r, x, 24, 0, 0);
        kiln_tensor_free(r);
    }
    kiln_tensor_free(tx);
    /* to and from a scalar; zero-size dims */
    kiln_value one = kiln_placeholder(g, "one", KILN_I64, 2, (int64_t[]){1, 1});
    assert_value_type(g, kiln_reshape(g, one, NULL, 0), KILN_I64, 0, NULL);
    kiln_value z = kiln_placeholder(g, "z", KILN_I64, 2, (int64_t[]){0, 3});
    assert_value_type(g, kiln_reshape(g, z, (int64_t[]){-1, 0}, 2), KILN_I64, 2, (int64_t[]){0, 3});
    assert_value_type(g, kiln_reshape(g, z, (int64_t[]){0, 7}, 2), KILN_I64, 2, (int64_t[]){0, 7});
    kiln_graph_free(g);

    const struct {
        int rank;
        int64_t dims[3];
        int64_t shape[9];
        int n;
        const char *msg;
    } bad[] = {
        {2, {2, 3}, {4, 2}, 2, "cannot reshape f32[2,3] (6 elements) into [4,2] (8 elements)"},
        {2, {2, 3}, {-1, 4}, 2, "cannot reshape f32[2,3] (6 elements) into [-1,4]"},
        {2, {2, 3}, {-1, -1}, 2, "more than one -1"},
        {2, {2, 3}, {-2, 3}, 2, "shape[0] = -2"},
        {2, {2, 3}, {6, 1, 0}, 3, "shape[2] = 0 copies input dim 2, but the input has rank 2"},
        {2, {0, 3}, {0, -1}, 2, "cannot infer the -1"},
        {3, {-1, 3, 4}, {0, 5}, 2, "cannot reshape f32[?,3,4] (12 known elements) into [0,5]"},
        {2, {2, 3}, {1, 1, 1, 1, 1, 1, 1, 2, 3}, 9, "the maximum rank is 8"},
        {1, {2}, {INT64_MAX, 2}, 2, "more elements than fit in 64 bits"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        g = kiln_graph_new();
        p = kiln_placeholder(g, "x", KILN_F32, bad[i].rank, bad[i].dims);
        assert_false(kiln_value_ok(kiln_reshape(g, p, bad[i].shape, bad[i].n)));
        tu_assert_graph_error(g, "Reshape", bad[i].msg, NULL);
        kiln_graph_free(g);
    }
    /* a symbolic shape that does not fit is caught at run time */
    g = kiln_graph_new();
    p = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){-1, 3});
    kiln_value y = kiln_reshape(g, p, (int64_t[]){-1, 4}, 2);
    assert_value_type(g, y, KILN_F32, 2, (int64_t[]){-1, 4});
    kiln_tensor *t5 = tu_random(KILN_F32, 2, (int64_t[]){5, 3}, -1, 1, 1);
    tu_run_fails(g, y, 1, &p, &t5, "cannot reshape f32[5,3] (15 elements)");
    kiln_tensor_free(t5);
    /* missing attribute */
    assert_false(kiln_value_ok(kiln_op(g, "Reshape", &p, 1, NULL)));
    tu_assert_graph_error(g, "Reshape", "missing required attribute 'shape'", NULL);
    kiln_graph_free(g);
}

/* ---- Flatten ---- */

static void test_flatten(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value p = kiln_placeholder(g, "x", KILN_F32, 3, (int64_t[]){2, 3, 4});
    kiln_value s = kiln_placeholder(g, "s", KILN_F32, 3, (int64_t[]){-1, 3, 4});
    kiln_value z = kiln_placeholder(g, "z", KILN_F32, 2, (int64_t[]){0, -1});
    kiln_value sc = kiln_placeholder(g, "sc", KILN_F32, 0, NULL);
    const struct {
        kiln_value in;
        int axis;
        int64_t want[2];
    } ok[] = {
        {p, 1, {2, 12}}, {p, 0, {1, 24}}, {p, 3, {24, 1}},  {p, -1, {6, 4}},
        {p, -3, {1, 24}}, {s, 1, {-1, 12}}, {s, 2, {-1, 4}}, {s, 0, {1, -1}},
        {z, 1, {0, -1}}, {z, 2, {0, 1}},   {sc, 0, {1, 1}},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        assert_value_type(g, kiln_flatten(g, ok[i].in, ok[i].axis), KILN_F32, 2, ok[i].want);
    /* default axis 1, data unchanged */
    kiln_value y = kiln_op(g, "Flatten", &s, 1, NULL);
    assert_value_type(g, y, KILN_F32, 2, (int64_t[]){-1, 12});
    kiln_tensor *tx = tu_random(KILN_F32, 3, (int64_t[]){2, 3, 4}, -5, 5, 7);
    kiln_tensor *r = tu_run(g, y, 1, &s, &tx);
    tu_assert_shape(r, KILN_F32, 2, (int64_t[]){2, 12});
    assert_memory_equal(kiln_tensor_data(r), kiln_tensor_data(tx), 24 * sizeof(float));
    kiln_tensor_free(r);
    kiln_tensor_free(tx);
    assert_false(kiln_value_ok(kiln_flatten(g, p, 4)));
    tu_assert_graph_error(g, "Flatten", "axis 4 is out of range [-3, 3]", NULL);
    kiln_graph_free(g);
    g = kiln_graph_new();
    p = kiln_placeholder(g, "x", KILN_F32, 3, (int64_t[]){2, 3, 4});
    assert_false(kiln_value_ok(kiln_flatten(g, p, -4)));
    tu_assert_graph_error(g, "Flatten", "axis -4 is out of range", NULL);
    kiln_graph_free(g);
}

/* ---- Squeeze and Unsqueeze ---- */

static void test_squeeze(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value p = kiln_placeholder(g, "x", KILN_I32, 4, (int64_t[]){1, 3, 1, 2});
    assert_value_type(g, kiln_squeeze(g, p, NULL, 0), KILN_I32, 2, (int64_t[]){3, 2});
    assert_value_type(g, kiln_squeeze(g, p, (int64_t[]){0, -2}, 2), KILN_I32, 2, (int64_t[]){3, 2});
    assert_value_type(g, kiln_squeeze(g, p, (int64_t[]){0}, 1), KILN_I32, 3, (int64_t[]){3, 1, 2});
    /* an explicit empty list squeezes every size-1 dim, like no list */
    kiln_value e = op_ints(g, "Squeeze", p, "axes", NULL, 0);
    assert_value_type(g, e, KILN_I32, 2, (int64_t[]){3, 2});
    kiln_value one = kiln_placeholder(g, "one", KILN_I32, 2, (int64_t[]){1, 1});
    assert_value_type(g, kiln_squeeze(g, one, NULL, 0), KILN_I32, 0, NULL);
    int32_t xd[6] = {1, -2, 3, -4, 5, -6};
    kiln_tensor *tx = tu_i32(4, (int64_t[]){1, 3, 1, 2}, xd);
    kiln_tensor *r = tu_run(g, e, 1, &p, &tx);
    tu_assert_shape(r, KILN_I32, 2, (int64_t[]){3, 2});
    tu_assert_ints(r, (int64_t[]){1, -2, 3, -4, 5, -6}, 6);
    kiln_tensor_free(r);
    kiln_tensor_free(tx);

    /* symbolic dims: checked at run time with axes; without axes an error */
    kiln_value s = kiln_placeholder(g, "s", KILN_F32, 3, (int64_t[]){-1, 1, 3});
    kiln_value ya = kiln_squeeze(g, s, (int64_t[]){0, 1}, 2);
    assert_value_type(g, ya, KILN_F32, 1, (int64_t[]){3});
    kiln_tensor *t1 = tu_random(KILN_F32, 3, (int64_t[]){1, 1, 3}, 0, 1, 3);
    r = tu_run(g, ya, 1, &s, &t1);
    tu_assert_shape(r, KILN_F32, 1, (int64_t[]){3});
    kiln_tensor_free(r);
    kiln_tensor *t2 = tu_random(KILN_F32, 3, (int64_t[]){2, 1, 3}, 0, 1, 3);
    tu_run_fails(g, ya, 1, &s, &t2, "cannot squeeze axis 0: its size is 2, not 1");
    kiln_tensor_free(t1);
    kiln_tensor_free(t2);
    kiln_graph_free(g);
    g = kiln_graph_new();
    s = kiln_placeholder(g, "s", KILN_F32, 3, (int64_t[]){-1, 1, 3});
    assert_false(kiln_value_ok(kiln_squeeze(g, s, NULL, 0)));
    tu_assert_graph_error(g, "Squeeze", "dim 0 is symbolic", "list the axes", NULL);
    kiln_graph_free(g);

    const struct {
        int64_t axes[2];
        int n;
        const char *msg;
    } bad[] = {
        {{1}, 1, "cannot squeeze axis 1: its size is 3, not 1"},
        {{0, -4}, 2, "axes lists axis 0 twice"},
        {{4}, 1, "axes[0] = 4 is out of range for rank 4"},
        {{-5}, 1, "axes[0] = -5 is out of range"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        g = kiln_graph_new();
        p = kiln_placeholder(g, "x", KILN_I32, 4, (int64_t[]){1, 3, 1, 2});
        assert_false(kiln_value_ok(kiln_squeeze(g, p, bad[i].axes, bad[i].n)));
        tu_assert_graph_error(g, "Squeeze", bad[i].msg, "i32[1,3,1,2]", NULL);
        kiln_graph_free(g);
    }
}

static void test_unsqueeze(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value p = kiln_placeholder(g, "x", KILN_BOOL, 2, (int64_t[]){3, 2});
    assert_value_type(g, kiln_unsqueeze(g, p, (int64_t[]){0, 3}, 2), KILN_BOOL, 4,
                      (int64_t[]){1, 3, 2, 1});
    assert_value_type(g, kiln_unsqueeze(g, p, (int64_t[]){-1}, 1), KILN_BOOL, 3,
                      (int64_t[]){3, 2, 1});
    assert_value_type(g, kiln_unsqueeze(g, p, (int64_t[]){-1, 1}, 2), KILN_BOOL, 4,
                      (int64_t[]){3, 1, 2, 1});
    kiln_value e = op_ints(g, "Unsqueeze", p, "axes", NULL, 0);
    assert_value_type(g, e, KILN_BOOL, 2, (int64_t[]){3, 2});
    kiln_value sc = kiln_placeholder(g, "sc", KILN_F32, 0, NULL);
    assert_value_type(g, kiln_unsqueeze(g, sc, (int64_t[]){0, 1}, 2), KILN_F32, 2,
                      (int64_t[]){1, 1});
    kiln_value s = kiln_placeholder(g, "s", KILN_F32, 2, (int64_t[]){-1, 2});
    assert_value_type(g, kiln_unsqueeze(g, s, (int64_t[]){0}, 1), KILN_F32, 3,
                      (int64_t[]){1, -1, 2});
    kiln_value y = kiln_unsqueeze(g, p, (int64_t[]){1}, 1);
    kiln_tensor *tx = tu_bool(2, (int64_t[]){3, 2}, (uint8_t[]){1, 0, 0, 1, 1, 1});
    kiln_tensor *r = tu_run(g, y, 1, &p, &tx);
    tu_assert_shape(r, KILN_BOOL, 3, (int64_t[]){3, 1, 2});
    tu_assert_ints(r, (int64_t[]){1, 0, 0, 1, 1, 1}, 6);
    kiln_tensor_free(r);
    kiln_tensor_free(tx);
    kiln_graph_free(g);

    const struct {
        int64_t axes[8];
        int n;
        const char *msg;
    } bad[] = {
        {{0, -4}, 2, "axes lists output axis 0 twice"},
        {{3}, 1, "axes[0] = 3 is out of range for the output rank 3"},
        {{-4}, 1, "axes[0] = -4 is out of range"},
        {{0, 1, 2, 3, 4, 5, 6}, 7, "would make rank 9, above the maximum 8"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        g = kiln_graph_new();
        p = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){3, 2});
        assert_false(kiln_value_ok(kiln_unsqueeze(g, p, bad[i].axes, bad[i].n)));
        tu_assert_graph_error(g, "Unsqueeze", bad[i].msg, NULL);
        kiln_graph_free(g);
    }
    g = kiln_graph_new();
    p = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){3, 2});
    assert_false(kiln_value_ok(kiln_op(g, "Unsqueeze", &p, 1, NULL)));
    tu_assert_graph_error(g, "Unsqueeze", "missing required attribute 'axes'", NULL);
    kiln_graph_free(g);
}

/* ---- Concat ---- */

static void test_concat(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value a = kiln_placeholder(g, "a", KILN_F32, 2, (int64_t[]){-1, 3});
    kiln_value b = kiln_placeholder(g, "b", KILN_F32, 2, (int64_t[]){2, 3});
    kiln_value c = kiln_placeholder(g, "c", KILN_F32, 2, (int64_t[]){2, -1});
    assert_value_type(g, kiln_concat(g, (kiln_value[]){a, b}, 2, 0), KILN_F32, 2,
                      (int64_t[]){-1, 3});
    assert_value_type(g, kiln_concat(g, (kiln_value[]){a, c}, 2, 1), KILN_F32, 2,
                      (int64_t[]){2, -1});
    kiln_value y = kiln_concat(g, (kiln_value[]){a, b}, 2, 1);
    assert_value_type(g, y, KILN_F32, 2, (int64_t[]){2, 6});
    /* the symbolic dim must match at run time */
    kiln_tensor *ta = tu_f32(2, (int64_t[]){2, 3}, (float[]){1, 2, 3, 4, 5, 6});
    kiln_tensor *tb = tu_f32(2, (int64_t[]){2, 3}, (float[]){7, 8, 9, 10, 11, 12});
    kiln_tensor *r = tu_run(g, y, 2, (kiln_value[]){a, b}, (kiln_tensor *[]){ta, tb});
    tu_assert_close(r, (double[]){1, 2, 3, 7, 8, 9, 4, 5, 6, 10, 11, 12}, 12, 0, 0);
    kiln_tensor_free(r);
    kiln_tensor *t3 = tu_f32(2, (int64_t[]){1, 3}, (float[]){1, 2, 3});
    tu_run_fails(g, y, 2, (kiln_value[]){a, b}, (kiln_tensor *[]){t3, tb},
                 "input 1 has size 2 in dim 0 where an earlier input has 1; only axis 1 may differ");
    kiln_tensor_free(ta);
    kiln_tensor_free(tb);
    kiln_tensor_free(t3);
    kiln_graph_free(g);

    struct {
        int rank0, rank1;
        int64_t d0[2], d1[2];
        kiln_dtype dt1;
        int axis;
        const char *msg;
    } bad[] = {
        {2, 2, {2, 3}, {2, 3}, KILN_I32, 0, "inputs 0 and 1 have different dtypes (f32 vs i32)"},
        {2, 1, {2, 3}, {3}, KILN_F32, 0, "input 1 has rank 1, input 0 has rank 2"},
        {2, 2, {2, 3}, {3, 3}, KILN_F32, 1, "input 1 has size 3 in dim 0"},
        {2, 2, {2, 3}, {2, 3}, KILN_F32, 2, "axis 2 is out of range for rank 2"},
        {2, 2, {2, 3}, {2, 3}, KILN_F32, -3, "axis -3 is out of range"},
        {0, 0, {0}, {0}, KILN_F32, 0, "cannot concatenate scalars"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        g = kiln_graph_new();
        a = kiln_placeholder(g, "a", KILN_F32, bad[i].rank0, bad[i].d0);
        b = kiln_placeholder(g, "b", bad[i].dt1, bad[i].rank1, bad[i].d1);
        assert_false(kiln_value_ok(kiln_concat(g, (kiln_value[]){a, b}, 2, bad[i].axis)));
        tu_assert_graph_error(g, "Concat", bad[i].msg, NULL);
        kiln_graph_free(g);
    }
    g = kiln_graph_new();
    assert_false(kiln_value_ok(kiln_op(g, "Concat", NULL, 0, NULL)));
    tu_assert_graph_error(g, "Concat", "at least 1 inputs, got 0", NULL);
    kiln_graph_free(g);
}

/* ---- Split ---- */

static kiln_value split_op(kiln_graph *g, kiln_value x, int axis, const int64_t *split, int n,
                           int64_t num)
{
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_int(a, "axis", axis);
    if (split) kiln_attrs_ints(a, "split", split, n);
    if (num) kiln_attrs_int(a, "num_outputs", num);
    kiln_value y = kiln_op(g, "Split", &x, 1, a);
    kiln_attrs_free(a);
    return y;
}

static void test_split(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value s = kiln_placeholder(g, "s", KILN_I64, 2, (int64_t[]){3, -1});
    kiln_value y = split_op(g, s, -1, NULL, 0, 2);
    assert_int_equal(kiln_value_output_count(g, y), 2);
    assert_value_type(g, y, KILN_I64, 2, (int64_t[]){3, -1});
    assert_value_type(g, (kiln_value){y.node, 1}, KILN_I64, 2, (int64_t[]){3, -1});
    int64_t xd[15];
    for (int i = 0; i < 15; i++) xd[i] = i;
    kiln_tensor *tx = tu_i64(2, (int64_t[]){3, 5}, xd);
    kiln_tensor *r = tu_run(g, (kiln_value){y.node, 1}, 1, &s, &tx);
    tu_assert_shape(r, KILN_I64, 2, (int64_t[]){3, 2});
    tu_assert_ints(r, (int64_t[]){3, 4, 8, 9, 13, 14}, 6);
    kiln_tensor_free(r);
    kiln_value z = split_op(g, s, 1, (int64_t[]){2, 3}, 2, 0);
    assert_value_type(g, (kiln_value){z.node, 1}, KILN_I64, 2, (int64_t[]){3, 3});
    r = tu_run(g, z, 1, &s, &tx);
    tu_assert_ints(r, (int64_t[]){0, 1, 5, 6, 10, 11}, 6);
    kiln_tensor_free(r);
    kiln_tensor_free(tx);
    tx = tu_random(KILN_I64, 2, (int64_t[]){3, 4}, 0, 9, 1);
    tu_run_fails(g, z, 1, &s, &tx, "split [2,3] sums to 5, but dim 1 has size 4");
    kiln_tensor_free(tx);
    kiln_graph_free(g);

    const struct {
        int axis;
        int64_t split[3];
        int n;
        int64_t num;
        const char *msg;
    } bad[] = {
        {0, {0}, -1, 0, "needs 'split' (the piece sizes) or 'num_outputs'"},
        {0, {2, 3}, 2, 2, "give either 'split' or 'num_outputs', not both"},
        {0, {2, 2}, 2, 0, "split [2,2] sums to 4, but dim 0 has size 5"},
        {0, {6, -1}, 2, 0, "split[1] = -1 is negative"},
        {0, {0}, 0, 0, "'split' is empty"},
        {0, {0}, -1, 4, "num_outputs = 4 cannot split dim 0 of size 5"},
        {0, {0}, -1, -1, "num_outputs = -1 is out of range"},
        {2, {0}, -1, 2, "axis 2 is out of range for rank 2"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        g = kiln_graph_new();
        kiln_value p = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){5, 2});
        kiln_value v = split_op(g, p, bad[i].axis, bad[i].n >= 0 ? bad[i].split : NULL,
                                bad[i].n, bad[i].num);
        assert_false(kiln_value_ok(v));
        tu_assert_graph_error(g, "Split", bad[i].msg, "f32[5,2]", NULL);
        kiln_graph_free(g);
    }
    g = kiln_graph_new();
    kiln_value sc = kiln_placeholder(g, "sc", KILN_F32, 0, NULL);
    assert_false(kiln_value_ok(split_op(g, sc, 0, NULL, 0, 1)));
    tu_assert_graph_error(g, "Split", "cannot split a scalar", NULL);
    kiln_graph_free(g);
}

/* ---- Slice ---- */

static kiln_value slice_op(kiln_graph *g, kiln_value x, const int64_t *starts, const int64_t *ends,
                           int n, const int64_t *axes, int na, const int64_t *steps, int ns)
{
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_ints(a, "starts", starts, n);
    kiln_attrs_ints(a, "ends", ends, n);
    if (axes) kiln_attrs_ints(a, "axes", axes, na);
    if (steps) kiln_attrs_ints(a, "steps", steps, ns);
    kiln_value y = kiln_op(g, "Slice", &x, 1, a);
    kiln_attrs_free(a);
    return y;
}

static void test_slice(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value s = kiln_placeholder(g, "s", KILN_F32, 2, (int64_t[]){-1, 5});
    assert_value_type(g, slice_op(g, s, (int64_t[]){1}, (int64_t[]){3}, 1, (int64_t[]){1}, 1, NULL, 0),
                      KILN_F32, 2, (int64_t[]){-1, 2});
    kiln_value y = slice_op(g, s, (int64_t[]){1, -1}, (int64_t[]){INT64_MAX, INT64_MIN}, 2, NULL,
                            0, (int64_t[]){1, -2}, 2);
    assert_value_type(g, y, KILN_F32, 2, (int64_t[]){-1, 3});
    kiln_tensor *tx = tu_f32(2, (int64_t[]){3, 5},
                             (float[]){0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14});
    kiln_tensor *r = tu_run(g, y, 1, &s, &tx);
    tu_assert_shape(r, KILN_F32, 2, (int64_t[]){2, 3});
    tu_assert_close(r, (double[]){9, 7, 5, 14, 12, 10}, 6, 0, 0);
    kiln_tensor_free(r);
    kiln_tensor_free(tx);
    /* zero-size dims give empty slices whatever the bounds */
    kiln_value z = kiln_placeholder(g, "z", KILN_F32, 2, (int64_t[]){0, 3});
    assert_value_type(g, slice_op(g, z, (int64_t[]){0}, (int64_t[]){5}, 1, (int64_t[]){0}, 1, NULL, 0),
                      KILN_F32, 2, (int64_t[]){0, 3});
    assert_value_type(g, slice_op(g, z, (int64_t[]){-1}, (int64_t[]){INT64_MIN}, 1, (int64_t[]){0},
                                  1, (int64_t[]){-1}, 1),
                      KILN_F32, 2, (int64_t[]){0, 3});
    kiln_graph_free(g);

    const struct {
        int n, ne, na, ns;
        int64_t axes[3], steps[3];
        const char *msg;
    } bad[] = {
        {1, 1, -1, 1, {0}, {0}, "steps[0] is 0"},
        {1, 2, -1, -1, {0}, {0}, "starts has 1 entries but ends has 2"},
        {2, 2, 1, -1, {0}, {0}, "axes has 1 entries but starts has 2"},
        {2, 2, -1, 1, {0}, {1}, "steps has 1 entries but starts has 2"},
        {2, 2, 2, -1, {1, -1}, {0}, "axes lists axis 1 twice"},
        {1, 1, 1, -1, {2}, {0}, "axes[0] = 2 is out of range for rank 2"},
        {3, 3, -1, -1, {0}, {0}, "starts has 3 entries but the input has rank 2"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        g = kiln_graph_new();
        kiln_value p = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){4, 2});
        kiln_attrs *a = kiln_attrs_new();
        int64_t zeros[3] = {0, 0, 0};
        kiln_attrs_ints(a, "starts", zeros, bad[i].n);
        kiln_attrs_ints(a, "ends", zeros, bad[i].ne);
        if (bad[i].na >= 0) kiln_attrs_ints(a, "axes", bad[i].axes, bad[i].na);
        if (bad[i].ns >= 0) kiln_attrs_ints(a, "steps", bad[i].steps, bad[i].ns);
        assert_false(kiln_value_ok(kiln_op(g, "Slice", &p, 1, a)));
        kiln_attrs_free(a);
        tu_assert_graph_error(g, "Slice", bad[i].msg, "f32[4,2]", NULL);
        kiln_graph_free(g);
    }
    g = kiln_graph_new();
    kiln_value p = kiln_placeholder(g, "x", KILN_F32, 1, (int64_t[]){4});
    assert_false(kiln_value_ok(op_ints(g, "Slice", p, "starts", (int64_t[]){0}, 1)));
    tu_assert_graph_error(g, "Slice", "missing required attribute 'ends'", NULL);
    kiln_graph_free(g);
}

/* ---- Gather ---- */

static void test_gather(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value d = kiln_placeholder(g, "d", KILN_F32, 2, (int64_t[]){-1, 4});
    kiln_value i = kiln_placeholder(g, "i", KILN_I64, 2, (int64_t[]){2, -1});
    assert_value_type(g, kiln_gather(g, d, i, 0), KILN_F32, 3, (int64_t[]){2, -1, 4});
    kiln_value y = kiln_gather(g, d, i, -1);
    assert_value_type(g, y, KILN_F32, 3, (int64_t[]){-1, 2, -1});
    kiln_tensor *td = tu_f32(2, (int64_t[]){3, 4}, (float[]){0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11});
    kiln_tensor *ti = tu_i64(2, (int64_t[]){2, 1}, (int64_t[]){3, -4});
    kiln_tensor *r = tu_run(g, y, 2, (kiln_value[]){d, i}, (kiln_tensor *[]){td, ti});
    tu_assert_shape(r, KILN_F32, 3, (int64_t[]){3, 2, 1});
    tu_assert_close(r, (double[]){3, 0, 7, 4, 11, 8}, 6, 0, 0);
    kiln_tensor_free(r);
    /* out-of-range indices are a run-time error naming the index and the dim */
    int64_t *id = kiln_tensor_data(ti);
    id[1] = 4;
    tu_run_fails(g, y, 2, (kiln_value[]){d, i}, (kiln_tensor *[]){td, ti},
                 "index 4 (element 1 of the indices) is out of range for dim 1 of size 4");
    id[1] = -5;
    tu_run_fails(g, y, 2, (kiln_value[]){d, i}, (kiln_tensor *[]){td, ti}, "index -5");
    kiln_tensor_free(td);
    kiln_tensor_free(ti);
    /* checked even when the output is empty */
    td = tu_f32(2, (int64_t[]){0, 4}, NULL);
    ti = tu_i64(2, (int64_t[]){2, 1}, (int64_t[]){0, 9});
    tu_run_fails(g, y, 2, (kiln_value[]){d, i}, (kiln_tensor *[]){td, ti}, "index 9");
    kiln_tensor_free(ti);
    /* empty indices */
    ti = tu_i64(2, (int64_t[]){2, 0}, NULL);
    r = tu_run(g, kiln_gather(g, d, i, 0), 2, (kiln_value[]){d, i}, (kiln_tensor *[]){td, ti});
    tu_assert_shape(r, KILN_F32, 3, (int64_t[]){2, 0, 4});
    kiln_tensor_free(r);
    kiln_tensor_free(td);
    kiln_tensor_free(ti);

    /* bool data, i32 scalar index */
    kiln_value b = kiln_placeholder(g, "b", KILN_BOOL, 2, (int64_t[]){2, 3});
    kiln_value j = kiln_placeholder(g, "j", KILN_I32, 0, NULL);
    kiln_value yb = kiln_gather(g, b, j, 1);
    assert_value_type(g, yb, KILN_BOOL, 1, (int64_t[]){2});
    kiln_tensor *tb = tu_bool(2, (int64_t[]){2, 3}, (uint8_t[]){1, 0, 1, 0, 0, 1});
    kiln_tensor *tj = tu_i32(0, NULL, (int32_t[]){-1});
    r = tu_run(g, yb, 2, (kiln_value[]){b, j}, (kiln_tensor *[]){tb, tj});
    tu_assert_ints(r, (int64_t[]){1, 1}, 2);
    kiln_tensor_free(r);
    kiln_tensor_free(tb);
    kiln_tensor_free(tj);
    kiln_graph_free(g);

    const struct {
        int drank, irank;
        kiln_dtype idt;
        int axis;
        const char *msg;
    } bad[] = {
        {2, 1, KILN_F32, 0, "input 1 has dtype f32, which it does not support (supported: i32, i64)"},
        {0, 1, KILN_I64, 0, "cannot gather from a scalar"},
        {2, 1, KILN_I64, 2, "axis 2 is out of range for rank 2"},
        {2, 8, KILN_I32, 0, "the output would have rank 9, above the maximum 8"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        g = kiln_graph_new();
        int64_t ones[8] = {1, 1, 1, 1, 1, 1, 1, 1};
        d = kiln_placeholder(g, "d", KILN_F32, bad[k].drank, ones);
        i = kiln_placeholder(g, "i", bad[k].idt, bad[k].irank, ones);
        assert_false(kiln_value_ok(kiln_gather(g, d, i, bad[k].axis)));
        tu_assert_graph_error(g, "Gather", bad[k].msg, NULL);
        kiln_graph_free(g);
    }
}

/* ---- Pad ---- */

static kiln_value pad_op(kiln_graph *g, kiln_value x, const int64_t *pads, int n, const char *mode,
                         double value)
{
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_ints(a, "pads", pads, n);
    if (mode) kiln_attrs_string(a, "mode", mode);
    kiln_attrs_float(a, "value", value);
    kiln_value y = kiln_op(g, "Pad", &x, 1, a);
    kiln_attrs_free(a);
    return y;
}

static void test_pad(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F64, 1, (int64_t[]){2});
    kiln_value y = pad_op(g, x, (int64_t[]){1, 2}, 2, NULL, -2.5);
    assert_value_type(g, y, KILN_F64, 1, (int64_t[]){5});
    kiln_tensor *tx = tu_f64(1, (int64_t[]){2}, (double[]){1.25, 2});
    kiln_tensor *r = tu_run(g, y, 1, &x, &tx);
    tu_assert_close(r, (double[]){-2.5, 1.25, 2, -2.5, -2.5}, 5, 0, 0);
    kiln_tensor_free(r);
    kiln_tensor_free(tx);
    /* the value converts to the dtype: ints truncate, bools test != 0 */
    kiln_value xi = kiln_placeholder(g, "xi", KILN_I32, 1, (int64_t[]){1});
    kiln_tensor *ti = tu_i32(1, (int64_t[]){1}, (int32_t[]){5});
    r = tu_run(g, pad_op(g, xi, (int64_t[]){1, 1}, 2, "constant", 2.7), 1, &xi, &ti);
    tu_assert_ints(r, (int64_t[]){2, 5, 2}, 3);
    kiln_tensor_free(r);
    kiln_tensor_free(ti);
    kiln_value xb = kiln_placeholder(g, "xb", KILN_BOOL, 1, (int64_t[]){1});
    kiln_tensor *tb = tu_bool(1, (int64_t[]){1}, (uint8_t[]){0});
    r = tu_run(g, pad_op(g, xb, (int64_t[]){0, 1}, 2, "constant", 0.5), 1, &xb, &tb);
    tu_assert_ints(r, (int64_t[]){0, 1}, 2);
    kiln_tensor_free(r);
    kiln_tensor_free(tb);
    /* symbolic dims stay symbolic; reflect limits are checked at run time */
    kiln_value s = kiln_placeholder(g, "s", KILN_F32, 2, (int64_t[]){-1, 3});
    kiln_value ys = pad_op(g, s, (int64_t[]){2, 1, 2, -1}, 4, "reflect", 0);
    assert_value_type(g, ys, KILN_F32, 2, (int64_t[]){-1, 3});
    kiln_tensor *t2 = tu_random(KILN_F32, 2, (int64_t[]){2, 3}, 0, 1, 5);
    tu_run_fails(g, ys, 1, &s, &t2, "reflect padding of axis 0 needs pads smaller than its size 2");
    kiln_tensor_free(t2);
    kiln_graph_free(g);

    const struct {
        int64_t pads[4];
        int n;
        const char *mode;
        int64_t dims[2];
        const char *msg;
    } bad[] = {
        {{1, 1, 1, 1}, 4, "wrap", {3, 2}, "mode 'wrap' is not one of constant, reflect, edge"},
        {{1, 1, 1}, 3, "constant", {3, 2}, "pads has 3 entries; it needs 2 * rank = 4"},
        {{3, 0, 0, 0}, 4, "reflect", {3, 2}, "reflect padding of axis 0 needs pads smaller than its size 3"},
        {{0, 0, 0, 2}, 4, "reflect", {3, 2}, "reflect padding of axis 1"},
        {{0, 1, 0, 0}, 4, "edge", {3, 0}, "edge padding of axis 1 needs a non-empty dim"},
        {{-2, 0, -2, 0}, 4, "constant", {3, 2}, "pads -2 and -2 crop more than the 3 elements of axis 0"},
        {{INT64_MAX, 0, 1, 0}, 4, "constant", {3, 2}, "overflow"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        g = kiln_graph_new();
        x = kiln_placeholder(g, "x", KILN_F32, 2, bad[i].dims);
        assert_false(kiln_value_ok(pad_op(g, x, bad[i].pads, bad[i].n, bad[i].mode, 0)));
        tu_assert_graph_error(g, "Pad", bad[i].msg, NULL);
        kiln_graph_free(g);
    }
}

/* ---- Expand and Tile ---- */

static void test_expand(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value s = kiln_placeholder(g, "s", KILN_I8, 2, (int64_t[]){-1, 1});
    kiln_value y = kiln_expand(g, s, (int64_t[]){3, 4}, 2);
    assert_value_type(g, y, KILN_I8, 2, (int64_t[]){3, 4});
    assert_value_type(g, kiln_expand(g, s, (int64_t[]){1, 1}, 2), KILN_I8, 2, (int64_t[]){-1, 1});
    assert_value_type(g, kiln_expand(g, s, (int64_t[]){2, 1, 5}, 3), KILN_I8, 3,
                      (int64_t[]){2, -1, 5});
    kiln_tensor *t3 = tu_from_f64(KILN_I8, 2, (int64_t[]){3, 1}, (double[]){-1, 2, -3});
    kiln_tensor *r = tu_run(g, y, 1, &s, &t3);
    tu_assert_ints(r, (int64_t[]){-1, -1, -1, -1, 2, 2, 2, 2, -3, -3, -3, -3}, 12);
    kiln_tensor_free(r);
    kiln_tensor_free(t3);
    kiln_tensor *t2 = tu_from_f64(KILN_I8, 2, (int64_t[]){2, 1}, (double[]){1, 2});
    tu_run_fails(g, y, 1, &s, &t2, "does not broadcast with shape [3,4]");
    kiln_tensor_free(t2);
    kiln_graph_free(g);

    const struct {
        int64_t shape[9];
        int n;
        const char *msg;
    } bad[] = {
        {{4}, 1, "the input does not broadcast with shape [4]"},
        {{2, -1}, 2, "shape[1] = -1 is negative"},
        {{1, 1, 1, 1, 1, 1, 1, 2, 3}, 9, "the maximum rank is 8"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        g = kiln_graph_new();
        kiln_value x = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){2, 3});
        assert_false(kiln_value_ok(kiln_expand(g, x, bad[i].shape, bad[i].n)));
        tu_assert_graph_error(g, "Expand", bad[i].msg, "f32[2,3]", NULL);
        kiln_graph_free(g);
    }
}

static void test_tile(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value s = kiln_placeholder(g, "s", KILN_U8, 2, (int64_t[]){-1, 2});
    assert_value_type(g, kiln_tile(g, s, (int64_t[]){0, 3}, 2), KILN_U8, 2, (int64_t[]){0, 6});
    kiln_value y = kiln_tile(g, s, (int64_t[]){2, 1}, 2);
    assert_value_type(g, y, KILN_U8, 2, (int64_t[]){-1, 2});
    kiln_tensor *tx = tu_from_f64(KILN_U8, 2, (int64_t[]){1, 2}, (double[]){200, 7});
    kiln_tensor *r = tu_run(g, y, 1, &s, &tx);
    tu_assert_shape(r, KILN_U8, 2, (int64_t[]){2, 2});
    tu_assert_ints(r, (int64_t[]){200, 7, 200, 7}, 4);
    kiln_tensor_free(r);
    kiln_tensor_free(tx);
    kiln_graph_free(g);

    const struct {
        int64_t dims[2];
        int64_t reps[3];
        int n;
        const char *msg;
    } bad[] = {
        {{2, 3}, {2}, 1, "repeats has 1 entries; the input has rank 2"},
        {{2, 3}, {2, -1}, 2, "repeats[1] = -1 is negative"},
        {{2, 1LL << 40}, {1, 1LL << 40}, 2, "dim 1 times 1099511627776 repeats overflows"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        g = kiln_graph_new();
        kiln_value x = kiln_placeholder(g, "x", KILN_F32, 2, bad[i].dims);
        assert_false(kiln_value_ok(kiln_tile(g, x, bad[i].reps, bad[i].n)));
        tu_assert_graph_error(g, "Tile", bad[i].msg, NULL);
        kiln_graph_free(g);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_numpy_cases), TU_TEST(test_transpose), TU_TEST(test_reshape),
        TU_TEST(test_flatten),     TU_TEST(test_squeeze),   TU_TEST(test_unsqueeze),
        TU_TEST(test_concat),      TU_TEST(test_split),     TU_TEST(test_slice),
        TU_TEST(test_gather),      TU_TEST(test_pad),       TU_TEST(test_expand),
        TU_TEST(test_tile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
