/* test_diff_shape.c -- the data-movement ops (Transpose, Reshape, Flatten,
 * Squeeze, Unsqueeze, Concat, Split, Slice, Gather, Pad, Expand, Tile)
 * compiled by the CPU backend against the reference kernels, over every
 * dtype, shapes with size-1, size-0 and odd dims, symbolic placeholder dims,
 * and every attribute variant. They only move elements, so every dtype must
 * agree exactly. */
#include "common/testutil.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static const kiln_dtype ALL[] = {KILN_F32, KILN_F64, KILN_F16, KILN_BF16, KILN_I8,  KILN_U8,  KILN_I32,
                                 KILN_I64, KILN_BOOL, KILN_I16, KILN_U16,  KILN_U32, KILN_U64};
static const kiln_dtype CORE[] = {KILN_F32, KILN_F16, KILN_I8, KILN_I64, KILN_BOOL};
#define NALL 13
#define NCORE 5

/* Two dtypes of different sizes, rotating through ALL from call to call:
 * cases that vary shapes and attributes use them, to keep the run short. */
static const kiln_dtype *pair_next(void)
{
    static int k;
    static kiln_dtype buf[2];
    buf[0] = ALL[k % NALL];
    buf[1] = ALL[(k + 4) % NALL];
    k++;
    return buf;
}
#define PAIR pair_next(), 2

typedef struct {
    int rank;
    int64_t dims[8];
} shape;

static uint64_t seed = 1;

static kiln_tensor *random_for(kiln_dtype dt, const shape *s)
{
    double lo = dt == KILN_BOOL || dt == KILN_U8 || dt == KILN_U16 || dt == KILN_U32 || dt == KILN_U64 ? 0 : -100, hi = dt == KILN_BOOL ? 2 : 100;
    return tu_random(dt, s->rank, s->dims, lo, hi, seed++);
}

static tu_batch batch;

/* op(x) with attrs over x of shape s and dtype dt, added to the batch
 * (diffed exactly at the next tu_batch_flush); dim 0 of the placeholder
 * symbolic when asked. */
static void diff1_once(const char *op, kiln_dtype dt, const shape *s, kiln_attrs *attrs, bool sym)
{
    kiln_graph *g = tu_batch_case(&batch, 1, 0, 0);
    int64_t dims[8];
    memcpy(dims, s->dims, sizeof dims);
    if (sym && s->rank > 0) dims[0] = -1;
    kiln_value x = tu_batch_input(&batch, dt, s->rank, dims, random_for(dt, s));
    kiln_value y = kiln_op(g, op, &x, 1, attrs);
    char sh[64] = "";
    for (int d = 0, at = 0; d < s->rank && at < 48; d++)
        at += snprintf(sh + at, sizeof sh - (size_t)at, "%s%lld", d ? "," : "", (long long)s->dims[d]);
    tu_batch_output(&batch, y, "%s (%s%s) on [%s]", op, kiln_dtype_name(dt), sym ? ", symbolic" : "", sh);
}

/* Both with static dims and with dim 0 symbolic. */
static void diff1(const char *op, kiln_dtype dt, const shape *s, kiln_attrs *attrs)
{
    diff1_once(op, dt, s, attrs, false);
    if (s->rank > 0) diff1_once(op, dt, s, attrs, true);
}

/* Over several dtypes; the symbolic variant (which only changes shapes)
 * with the first. */
static void diff1_dtypes(const char *op, const kiln_dtype *dts, int ndt, const shape *s, kiln_attrs *a)
{
    diff1(op, dts[0], s, a);
    for (int d = 1; d < ndt; d++) diff1_once(op, dts[d], s, a, false);
}

static kiln_attrs *ints_attr(const char *name, const int64_t *v, int n)
{
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_ints(a, name, v, n);
    return a;
}

/* ---- Transpose ---- */

static void test_transpose(void **state)
{
    (void)state;
    static const struct {
        shape s;
        int nperm; /* -1: perm unset */
        int64_t perm[8];
        bool all_dtypes;
    } cases[] = {
        {{2, {7, 13}}, -1, {0}, true},
        {{3, {2, 3, 5}}, 3, {0, 2, 1}, true},
        {{3, {2, 3, 5}}, 3, {2, 0, 1}, false},
        {{3, {2, 3, 5}}, 3, {1, 0, 2}, false},
        {{4, {4, 1, 6, 5}}, 4, {0, 2, 3, 1}, false},
        {{4, {3, 1, 6, 5}}, 4, {3, 2, 1, 0}, false},
        {{3, {2, 0, 3}}, 3, {2, 1, 0}, false},
        {{0, {0}}, -1, {0}, false},
        {{1, {33}}, 1, {0}, false},
        {{5, {2, 3, 4, 5, 6}}, 5, {0, 1, 4, 2, 3}, false},
        {{5, {2, 3, 4, 5, 6}}, 5, {4, 3, 0, 1, 2}, false},
        {{3, {5, 7, 1}}, 3, {1, 2, 0}, false},
        {{2, {1, 1000}}, 2, {1, 0}, false},
        {{3, {3, 100, 70}}, 3, {0, 2, 1}, false}, /* tiled */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        kiln_attrs *a = cases[i].nperm < 0 ? NULL : ints_attr("perm", cases[i].perm, cases[i].nperm);
        if (cases[i].all_dtypes) diff1_dtypes("Transpose", ALL, NALL, &cases[i].s, a);
        else diff1_dtypes("Transpose", PAIR, &cases[i].s, a);
        kiln_attrs_free(a);
    }
    /* an empty perm list for a scalar */
    kiln_attrs *a = ints_attr("perm", (int64_t[]){0}, 0);
    diff1("Transpose", KILN_F32, &(shape){0, {0}}, a);
    kiln_attrs_free(a);
    tu_batch_flush(&batch);
}

/* ---- Reshape, Flatten, Squeeze, Unsqueeze ---- */

static void test_reshapes(void **state)
{
    (void)state;
    shape s = {3, {3, 4, 5}};
    kiln_attrs *a = ints_attr("shape", (int64_t[]){0, -1}, 2);
    diff1_dtypes("Reshape", ALL, NALL, &s, a);
    kiln_attrs_free(a);
    a = ints_attr("shape", (int64_t[]){60}, 1);
    diff1("Reshape", KILN_F32, &s, a);
    kiln_attrs_free(a);
    a = ints_attr("shape", (int64_t[]){0, 0, 5, 1}, 4);
    diff1_dtypes("Reshape", CORE, NCORE, &s, a);
    kiln_attrs_free(a);
    a = ints_attr("shape", (int64_t[]){0, 3, -1}, 3);
    diff1("Reshape", KILN_I64, &(shape){3, {2, 0, 3}}, a);
    kiln_attrs_free(a);

    for (int64_t axis = -3; axis <= 3; axis++) {
        a = kiln_attrs_new();
        kiln_attrs_int(a, "axis", axis);
        diff1_dtypes("Flatten", PAIR, &s, a);
        kiln_attrs_free(a);
    }
    diff1_dtypes("Flatten", ALL, NALL, &(shape){2, {7, 13}}, NULL);

    shape sq = {4, {1, 3, 1, 5}};
    for (int d = 0; d < NALL; d++) diff1_once("Squeeze", ALL[d], &sq, NULL, false);
    /* Without axes every dim must be known (static shapes only). */
    for (int d = 0; d < NCORE; d++) diff1_once("Squeeze", CORE[d], &(shape){4, {3, 1, 1, 5}}, NULL, false);
    a = ints_attr("axes", (int64_t[]){-2}, 1);
    diff1_dtypes("Squeeze", CORE, NCORE, &sq, a);
    kiln_attrs_free(a);
    a = ints_attr("axes", (int64_t[]){0, 2}, 2);
    diff1_dtypes("Squeeze", CORE, NCORE, &sq, a);
    kiln_attrs_free(a);

    a = ints_attr("axes", (int64_t[]){0, -1}, 2);
    diff1_dtypes("Unsqueeze", ALL, NALL, &(shape){2, {7, 13}}, a);
    diff1_dtypes("Unsqueeze", CORE, NCORE, &(shape){2, {0, 3}}, a);
    kiln_attrs_free(a);
    a = ints_attr("axes", (int64_t[]){1, -2}, 2);
    diff1_dtypes("Unsqueeze", CORE, NCORE, &(shape){0, {0}}, a);
    kiln_attrs_free(a);
    tu_batch_flush(&batch);
}

/* ---- Concat ---- */

static void diff_concat(kiln_dtype dt, int n, const shape *s, int64_t axis, bool symbolic)
{
    kiln_graph *g = kiln_graph_new();
    kiln_value x[4];
    kiln_tensor *t[4];
    for (int i = 0; i < n; i++) {
        char name[4] = {'x', (char)('0' + i), 0};
        /* the symbolic dim is one that is not concatenated */
        int64_t dims[8];
        memcpy(dims, s[i].dims, sizeof dims);
        if (symbolic) dims[axis == 0 || axis == -s[i].rank ? 1 : 0] = -1;
        x[i] = kiln_placeholder(g, name, dt, s[i].rank, dims);
        t[i] = random_for(dt, &s[i]);
    }
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_int(a, "axis", axis);
    kiln_value y = kiln_op(g, "Concat", x, n, a);
    kiln_attrs_free(a);
    if (kiln_graph_error(g)) fail_msg("Concat: %s", kiln_graph_error(g));
    tu_diff(g, 1, &y, n, x, t, 0, 0);
    for (int i = 0; i < n; i++) kiln_tensor_free(t[i]);
    kiln_graph_free(g);
}

static void test_concat(void **state)
{
    (void)state;
    const shape a0[3] = {{3, {2, 3, 5}}, {3, {4, 3, 5}}, {3, {1, 3, 5}}};
    const shape a1[3] = {{3, {2, 3, 5}}, {3, {2, 0, 5}}, {3, {2, 7, 5}}};
    const shape a2[2] = {{3, {2, 3, 1}}, {3, {2, 3, 13}}};
    const shape one[1] = {{2, {3, 4}}};
    const shape empty[2] = {{2, {0, 4}}, {2, {0, 3}}};
    for (int d = 0; d < NALL; d++) diff_concat(ALL[d], 3, a1, 1, d == 1);
    for (int d = 0; d < NCORE; d++)
        for (int sym = 0; sym < 1 + (d == 0); sym++) {
            diff_concat(CORE[d], 3, a0, 0, sym);
            diff_concat(CORE[d], 3, a1, -2, sym);
            diff_concat(CORE[d], 2, a2, -1, sym);
            diff_concat(CORE[d], 2, a2, 2, sym);
            diff_concat(CORE[d], 1, one, 1, sym);
            diff_concat(CORE[d], 2, empty, 1, sym);
        }
    /* long rows cut into blocks, and one long row */
    const shape big[2] = {{2, {2, 40000}}, {2, {2, 30001}}};
    diff_concat(KILN_F32, 2, big, 1, false);
    const shape big0[2] = {{2, {300, 257}}, {2, {101, 257}}};
    diff_concat(KILN_F16, 2, big0, 0, false);
}

/* ---- Split ---- */

/* Splits x of shape s along axis with the attributes and diffs every
 * output, fetched together. */
static void diff_split(kiln_dtype dt, const shape *s, int64_t axis, const int64_t *split, int nsplit,
                       int64_t num_outputs, bool symbolic)
{
    kiln_graph *g = kiln_graph_new();
    int a = (int)(axis < 0 ? axis + s->rank : axis);
    int64_t dims[8];
    memcpy(dims, s->dims, sizeof dims);
    if (symbolic) dims[a == 0 ? s->rank - 1 : 0] = -1;
    kiln_value x = kiln_placeholder(g, "x", dt, s->rank, dims);
    kiln_attrs *at = kiln_attrs_new();
    kiln_attrs_int(at, "axis", axis);
    if (split) kiln_attrs_ints(at, "split", split, nsplit);
    else kiln_attrs_int(at, "num_outputs", num_outputs);
    kiln_value y = kiln_op(g, "Split", &x, 1, at);
    kiln_attrs_free(at);
    if (kiln_graph_error(g)) fail_msg("Split: %s", kiln_graph_error(g));
    int n = split ? nsplit : (int)num_outputs;
    kiln_value outs[8];
    for (int i = 0; i < n; i++) outs[i] = (kiln_value){y.node, i};
    kiln_tensor *t = random_for(dt, s);
    tu_diff(g, n, outs, 1, &x, &t, 0, 0);
    /* one output alone: the others still get written somewhere */
    if (dt == KILN_F32) tu_diff(g, 1, &outs[n - 1], 1, &x, &t, 0, 0);
    kiln_tensor_free(t);
    kiln_graph_free(g);
}

static void test_split(void **state)
{
    (void)state;
    const shape s = {3, {4, 7, 3}};
    for (int d = 0; d < NALL; d++) {
        diff_split(ALL[d], &s, 1, (int64_t[]){2, 3, 2}, 3, 0, false);
        diff_split(ALL[d], &s, 1, NULL, 0, 3, d == 0);
    }
    for (int d = 0; d < NCORE; d++)
        for (int sym = 0; sym < 1 + (d == 0); sym++) {
            diff_split(CORE[d], &s, -2, (int64_t[]){0, 5, 2}, 3, 0, sym);
            diff_split(CORE[d], &s, 0, (int64_t[]){1, 1, 2}, 3, 0, sym);
            diff_split(CORE[d], &s, -1, NULL, 0, 3, sym);
            diff_split(CORE[d], &s, 2, NULL, 0, 2, sym); /* pieces 2 and 1 */
            diff_split(CORE[d], &(shape){2, {0, 5}}, 1, (int64_t[]){4, 1}, 2, 0, sym);
            diff_split(CORE[d], &(shape){1, {13}}, 0, NULL, 0, 1, sym);
        }
    diff_split(KILN_F64, &(shape){2, {2, 70001}}, 1, (int64_t[]){30000, 40001}, 2, 0, false);
}

/* ---- Slice ---- */

typedef struct {
    shape s;
    int n;
    int64_t starts[4], ends[4], axes[4], steps[4];
    bool have_axes, have_steps;
} slice_case;

static void test_slice(void **state)
{
    (void)state;
    static const slice_case cases[] = {
        {{2, {7, 13}}, 2, {1, 2}, {6, 11}, {0}, {0}, false, false},
        {{2, {7, 13}}, 1, {-4}, {INT64_MAX}, {-1}, {0}, true, false},
        {{2, {7, 13}}, 2, {-1, 12}, {INT64_MIN, -100}, {0, 1}, {-1, -3}, true, true},
        {{3, {5, 6, 7}}, 2, {0, 1}, {100, 6}, {2, 0}, {2, 2}, true, true},
        {{3, {5, 6, 7}}, 1, {3}, {3}, {1}, {1}, true, true},       /* empty */
        {{3, {5, 6, 7}}, 1, {10}, {20}, {2}, {1}, true, true},     /* start past the end */
        {{3, {5, 6, 7}}, 1, {-100}, {-90}, {0}, {1}, true, true},  /* before the start */
        {{3, {5, 6, 7}}, 3, {4, 5, 6}, {-100, -100, -100}, {0, 1, 2}, {-1, -2, -3}, true, true},
        {{3, {5, 6, 7}}, 1, {2}, {3}, {-1}, {INT64_MAX}, true, true}, /* one element, huge step */
        {{3, {5, 6, 7}}, 1, {6}, {0}, {2}, {INT64_MIN}, true, true},
        {{3, {5, 0, 7}}, 2, {1, 0}, {4, 3}, {0, 1}, {1, 1}, true, true},
        {{1, {1000}}, 1, {3}, {997}, {0}, {7}, true, true},
        {{4, {2, 3, 4, 5}}, 2, {0, 1}, {2, 4}, {0, 3}, {1, 1}, true, true}, /* rows stay whole */
        {{2, {1, 9}}, 1, {-1}, {-10}, {1}, {-1}, true, true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const slice_case *c = &cases[i];
        kiln_attrs *a = kiln_attrs_new();
        kiln_attrs_ints(a, "starts", c->starts, c->n);
        kiln_attrs_ints(a, "ends", c->ends, c->n);
        if (c->have_axes) kiln_attrs_ints(a, "axes", c->axes, c->n);
        if (c->have_steps) kiln_attrs_ints(a, "steps", c->steps, c->n);
        if (i < 3) diff1_dtypes("Slice", ALL, NALL, &c->s, a);
        else diff1_dtypes("Slice", PAIR, &c->s, a);
        kiln_attrs_free(a);
    }
    tu_batch_flush(&batch);
}

/* ---- Gather ---- */

static kiln_tensor *indices(kiln_dtype dt, int rank, const int64_t *dims, const int64_t *v)
{
    size_t n = 1;
    for (int i = 0; i < rank; i++) n *= (size_t)dims[i];
    if (dt == KILN_I64) return tu_i64(rank, dims, v);
    int32_t w[64];
    for (size_t i = 0; i < n; i++) w[i] = (int32_t)v[i];
    return tu_i32(rank, dims, w);
}

static void diff_gather(kiln_dtype dt, kiln_dtype it, const shape *s, int64_t axis, int irank,
                        const int64_t *idims, const int64_t *iv, bool symbolic)
{
    kiln_graph *g = kiln_graph_new();
    int a = (int)(axis < 0 ? axis + s->rank : axis);
    int64_t dims[8];
    memcpy(dims, s->dims, sizeof dims);
    if (symbolic && s->rank > 1) dims[a == 0 ? 1 : 0] = -1;
    kiln_value ph[2] = {kiln_placeholder(g, "x", dt, s->rank, dims), {0, 0}};
    int64_t sym_idims[8];
    memcpy(sym_idims, idims, sizeof(int64_t) * (size_t)irank);
    if (symbolic && irank > 0) sym_idims[0] = -1;
    ph[1] = kiln_placeholder(g, "i", it, irank, sym_idims);
    kiln_value y = kiln_gather(g, ph[0], ph[1], (int)axis);
    if (kiln_graph_error(g)) fail_msg("Gather: %s", kiln_graph_error(g));
    kiln_tensor *t[2] = {random_for(dt, s), indices(it, irank, idims, iv)};
    tu_diff(g, 1, &y, 2, ph, t, 0, 0);
    kiln_tensor_free(t[0]);
    kiln_tensor_free(t[1]);
    kiln_graph_free(g);
}

static void test_gather(void **state)
{
    (void)state;
    const shape s = {3, {5, 6, 7}};
    const kiln_dtype IT[2] = {KILN_I32, KILN_I64};
    for (int i = 0; i < 2; i++) {
        for (int d = 0; d < NALL; d++)
            diff_gather(ALL[d], IT[i], &s, 1, 2, (int64_t[]){2, 3}, (int64_t[]){0, -1, 5, -6, 2, 2}, false);
        for (int d = 0; d < NCORE; d++)
            for (int sym = 0; sym < 1 + (d == 0); sym++) {
                diff_gather(CORE[d], IT[i], &s, 0, 1, (int64_t[]){4}, (int64_t[]){4, -5, 0, 3}, sym);
                diff_gather(CORE[d], IT[i], &s, -1, 1, (int64_t[]){9}, (int64_t[]){6, -7, 0, 1, -1, 3, 3, 2, 5}, sym);
                diff_gather(CORE[d], IT[i], &s, 2, 0, (int64_t[]){0}, (int64_t[]){-3}, sym);      /* scalar index */
                diff_gather(CORE[d], IT[i], &s, 1, 1, (int64_t[]){0}, (int64_t[]){0}, sym); /* no indices */
                diff_gather(CORE[d], IT[i], &(shape){3, {2, 0, 4}}, 0, 1, (int64_t[]){3}, (int64_t[]){1, -2, 0}, sym);
                diff_gather(CORE[d], IT[i], &(shape){1, {1000}}, 0, 2, (int64_t[]){3, 2},
                            (int64_t[]){999, -1000, 7, 500, -1, 0}, sym);
            }
    }
}

/* Runs y = Gather(x, i) with the compiled backend and expects the index
 * error, naming the op and node. */
static void gather_fails(kiln_dtype it, const shape *s, int64_t axis, int ni, const int64_t *iv)
{
    kiln_graph *g = kiln_graph_new();
    kiln_value ph[2] = {kiln_placeholder(g, "x", KILN_F32, s->rank, s->dims),
                        kiln_placeholder(g, "i", it, 1, (int64_t[]){ni})};
    kiln_value y = kiln_name(g, kiln_gather(g, ph[0], ph[1], (int)axis), "pick");
    assert_null(kiln_graph_error(g));
    kiln_tensor *t[2] = {random_for(KILN_F32, s), indices(it, 1, (int64_t[]){ni}, iv)};
    kiln_backend backends[2] = {KILN_BACKEND_REFERENCE, KILN_BACKEND_DEFAULT};
    for (int b = 0; b < 2; b++) {
        kiln_tensor *r = NULL;
        char msg[512];
        int code = tu_run_backend(g, backends[b], 1, &y, &r, 2, ph, t, msg, sizeof msg);
        assert_int_equal(code, KILN_ERR_INVALID_ARGUMENT);
        assert_null(r);
        assert_non_null(strstr(msg, "Gather"));
        assert_non_null(strstr(msg, "pick"));
        assert_non_null(strstr(msg, "out of range"));
        if (backends[b] == KILN_BACKEND_DEFAULT)
            assert_non_null(strstr(msg, "Gather 'pick': an index is out of range"));
    }
    kiln_tensor_free(t[0]);
    kiln_tensor_free(t[1]);
    kiln_graph_free(g);
}

static void test_gather_out_of_range(void **state)
{
    (void)state;
    const shape s = {2, {4, 5}};
    for (int i = 0; i < 2; i++) {
        kiln_dtype it = i ? KILN_I64 : KILN_I32;
        gather_fails(it, &s, 0, 3, (int64_t[]){0, 4, 1});
        gather_fails(it, &s, 1, 3, (int64_t[]){0, 1, -6});
        gather_fails(it, &s, -1, 2, (int64_t[]){2, 5});
        /* nothing to copy, but the index is still checked */
        gather_fails(it, &(shape){2, {0, 5}}, 1, 1, (int64_t[]){7});
        gather_fails(it, &(shape){2, {3, 0}}, 0, 2, (int64_t[]){0, -4});
    }
    gather_fails(KILN_I64, &s, 0, 1, (int64_t[]){INT64_MIN});
    gather_fails(KILN_I64, &s, 0, 1, (int64_t[]){(int64_t)1 << 40});
}

/* ---- Pad ---- */

static void diff_pad(const kiln_dtype *dts, int ndt, const shape *s, const int64_t *pads,
                     const char *mode, double value)
{
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_ints(a, "pads", pads, 2 * s->rank);
    if (mode) kiln_attrs_string(a, "mode", mode);
    if (value != 0) kiln_attrs_float(a, "value", value);
    diff1_dtypes("Pad", dts, ndt, s, a);
    kiln_attrs_free(a);
}

static void test_pad(void **state)
{
    (void)state;
    const shape s = {3, {3, 4, 5}};
    const int64_t p1[6] = {1, 0, 2, 2, 0, 1};
    const int64_t pneg[6] = {-1, 2, -2, 0, -1, 3};
    const int64_t pinner[6] = {0, 0, 3, 0, 0, 4};
    const int64_t pouter[6] = {2, 1, 0, 1, 0, 0};
    diff_pad(ALL, NALL, &s, p1, NULL, 0);
    diff_pad(ALL, NALL, &s, p1, "constant", -1.5);
    diff_pad(ALL, NALL, &s, p1, "reflect", 0);
    diff_pad(ALL, NALL, &s, p1, "edge", 0);
    const char *modes[3] = {"constant", "reflect", "edge"};
    for (int m = 0; m < 3; m++) {
        diff_pad(PAIR, &s, pneg, modes[m], 2.7);
        diff_pad(PAIR, &s, pinner, modes[m], 1e30);
        diff_pad(PAIR, &s, pouter, modes[m], -300.9);
        diff_pad(PAIR, &(shape){2, {1, 13}}, (int64_t[]){0, 12, 0, 12}, modes[m], 0.5);
        diff_pad(PAIR, &(shape){1, {1000}}, (int64_t[]){-3, 7}, modes[m], 3);
        diff_pad(PAIR, &(shape){2, {7, 13}}, (int64_t[]){0, 0, 0, 0}, modes[m], 3);
    }
    /* crops: an empty output, pads past a crop, a scalar, an empty input */
    diff_pad(PAIR, &s, (int64_t[]){0, -2, 0, 0, -2, 0}, "constant", 1);
    diff_pad(PAIR, &(shape){1, {2}}, (int64_t[]){5, -3}, "constant", 4);
    diff_pad(PAIR, &(shape){1, {2}}, (int64_t[]){-5, 6}, "edge", 4);
    diff_pad(PAIR, &(shape){1, {4}}, (int64_t[]){-3, 3}, "reflect", 0);
    diff_pad(PAIR, &(shape){0, {0}}, (int64_t[]){0}, "reflect", 0);
    diff_pad(PAIR, &(shape){2, {0, 3}}, (int64_t[]){2, 1, 1, 0}, "constant", 9);
    diff_pad(PAIR, &(shape){2, {3, 0}}, (int64_t[]){0, 2, 0, 0}, "constant", -9);
    tu_batch_flush(&batch);
}

/* ---- Expand, Tile ---- */

static void test_expand(void **state)
{
    (void)state;
    static const struct {
        shape s;
        int n;
        int64_t to[8];
    } cases[] = {
        {{2, {3, 1}}, 3, {2, 3, 4}}, {{1, {1}}, 1, {1000}}, {{3, {4, 1, 6}}, 3, {4, 5, 6}},
        {{2, {3, 4}}, 2, {1, 1}},    {{2, {1, 3}}, 2, {0, 3}}, {{0, {0}}, 2, {3, 2}},
        {{3, {1, 7, 1}}, 4, {2, 1, 7, 13}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        kiln_attrs *a = ints_attr("shape", cases[i].to, cases[i].n);
        if (i == 0) diff1_dtypes("Expand", ALL, NALL, &cases[i].s, a);
        else diff1_dtypes("Expand", PAIR, &cases[i].s, a);
        kiln_attrs_free(a);
    }
    tu_batch_flush(&batch);
}

static void test_tile(void **state)
{
    (void)state;
    static const struct {
        shape s;
        int64_t r[8];
    } cases[] = {
        {{2, {3, 5}}, {2, 3}},    {{3, {2, 3, 4}}, {1, 1, 1}}, {{3, {2, 1, 4}}, {3, 5, 1}},
        {{2, {3, 5}}, {0, 2}},    {{2, {0, 5}}, {2, 2}},       {{0, {0}}, {0}},
        {{1, {7}}, {13}},         {{2, {1, 1}}, {4, 1000}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        kiln_attrs *a = ints_attr("repeats", cases[i].r, cases[i].s.rank);
        if (i == 0) diff1_dtypes("Tile", ALL, NALL, &cases[i].s, a);
        else diff1_dtypes("Tile", PAIR, &cases[i].s, a);
        kiln_attrs_free(a);
    }
    tu_batch_flush(&batch);
}

/* Large enough to be split over the session's thread pool. */
static void test_parallel(void **state)
{
    (void)state;
    kiln_attrs *a = ints_attr("perm", (int64_t[]){1, 0}, 2);
    diff1("Transpose", KILN_F32, &(shape){2, {257, 1031}}, a);
    kiln_attrs_free(a);
    a = ints_attr("perm", (int64_t[]){0, 2, 3, 1}, 4);
    diff1("Transpose", KILN_U8, &(shape){4, {2, 3, 127, 129}}, a);
    kiln_attrs_free(a);
    a = kiln_attrs_new();
    kiln_attrs_ints(a, "starts", (int64_t[]){-1}, 1);
    kiln_attrs_ints(a, "ends", (int64_t[]){INT64_MIN}, 1);
    kiln_attrs_ints(a, "steps", (int64_t[]){-1}, 1);
    diff1("Slice", KILN_I32, &(shape){1, {300000}}, a);
    kiln_attrs_free(a);
    diff_pad((kiln_dtype[]){KILN_BF16}, 1, &(shape){2, {300, 301}}, (int64_t[]){3, 2, 1, 4}, "reflect", 0);
    a = ints_attr("repeats", (int64_t[]){50, 3}, 2);
    diff1("Tile", KILN_F64, &(shape){2, {33, 65}}, a);
    kiln_attrs_free(a);
    a = ints_attr("shape", (int64_t[]){64, 3, 1031}, 3);
    diff1("Expand", KILN_I8, &(shape){2, {3, 1}}, a);
    kiln_attrs_free(a);
    diff_gather(KILN_F32, KILN_I64, &(shape){2, {1000, 64}}, 0, 1, (int64_t[]){1},
                (int64_t[]){-17}, false);
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){200, 300});
    kiln_value i = kiln_placeholder(g, "i", KILN_I32, 1, (int64_t[]){-1});
    kiln_value y = kiln_gather(g, x, i, 1);
    kiln_tensor *t[2] = {random_for(KILN_F32, &(shape){2, {200, 300}}), NULL};
    int64_t iv[64];
    for (int k = 0; k < 64; k++) iv[k] = (k * 37) % 600 - 300;
    t[1] = indices(KILN_I32, 1, (int64_t[]){64}, iv);
    tu_diff(g, 1, &y, 2, (kiln_value[]){x, i}, t, 0, 0);
    kiln_tensor_free(t[0]);
    kiln_tensor_free(t[1]);
    kiln_graph_free(g);
    tu_batch_flush(&batch);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_transpose),
        TU_TEST(test_reshapes),
        TU_TEST(test_concat),
        TU_TEST(test_split),
        TU_TEST(test_slice),
        TU_TEST(test_gather),
        TU_TEST(test_gather_out_of_range),
        TU_TEST(test_pad),
        TU_TEST(test_expand),
        TU_TEST(test_tile),
        TU_TEST(test_parallel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
