/* test_diff_reduce.c -- ReduceSum, ReduceMean, ReduceMax, ReduceMin,
 * ReduceProd, ArgMax and ArgMin compiled by the CPU backend against the
 * reference kernels: every dtype they take, axes unset / empty / single /
 * several (adjacent and not) / negative / first / last, keepdims both
 * ways, odd and size-1 dims, symbolic placeholder dims, empty axes,
 * reductions large enough to be split over the thread pool, NaN inputs,
 * ties, and the empty-axis error of the compiled code.
 *
 * Compiling a module costs far more than one more kernel in it, so each
 * test builds a batch: one graph with many placeholders and many fetched
 * reductions, run once with each backend and compared output by output,
 * each with its own tolerance. Integers must agree exactly; floats within
 * a tolerance for the dtype (the compiled code sums in double too, but in
 * a different order). */
#include "common/testutil.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"

static const kiln_dtype ALL[] = {KILN_F32, KILN_F64, KILN_F16, KILN_BF16, KILN_I8,  KILN_U8,
                                 KILN_I32, KILN_I64, KILN_I16, KILN_U16,  KILN_U32, KILN_U64};
#define NALL 12
static const char *const REDUCE_OPS[] = {"ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin",
                                         "ReduceProd"};

static bool is_float(kiln_dtype dt)
{
    return dt == KILN_F32 || dt == KILN_F64 || dt == KILN_F16 || dt == KILN_BF16;
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

static uint64_t seed = 1;

/* ---- batches ---- */

#define MAX_IN 32
#define MAX_OUT 320

typedef struct {
    kiln_graph *g;
    int nin, nout;
    kiln_value in[MAX_IN];
    kiln_tensor *feed[MAX_IN];
    kiln_value out[MAX_OUT];
    double rtol[MAX_OUT], atol[MAX_OUT];
    char what[MAX_OUT][64];
} batch;

static batch *batch_new(void)
{
    batch *b = calloc(1, sizeof *b);
    assert_non_null(b);
    b->g = kiln_graph_new();
    return b;
}

/* A placeholder fed t (the batch takes t); symbolic: its first dim is -1. */
static kiln_value batch_input(batch *b, kiln_tensor *t, bool symbolic)
{
    assert_true(b->nin < MAX_IN);
    int64_t dims[IR_MAX_RANK];
    memcpy(dims, t->dims, sizeof dims);
    if (symbolic && t->rank > 0) dims[0] = -1;
    char name[16];
    snprintf(name, sizeof name, "x%d", b->nin);
    kiln_value x = kiln_placeholder(b->g, name, t->dtype, t->rank, dims);
    b->in[b->nin] = x;
    b->feed[b->nin++] = t;
    return x;
}

static void batch_output(batch *b, kiln_value y, double rtol, double atol, const char *what)
{
    if (kiln_graph_error(b->g)) fail_msg("%s: %s", what, kiln_graph_error(b->g));
    assert_true(b->nout < MAX_OUT);
    b->out[b->nout] = y;
    b->rtol[b->nout] = rtol;
    b->atol[b->nout] = atol;
    snprintf(b->what[b->nout++], 64, "%s", what);
}

/* Runs the batch with both backends, compares, and frees it. */
static void batch_run(batch *b)
{
    kiln_tensor **ref = calloc(MAX_OUT, sizeof *ref), **cmp = calloc(MAX_OUT, sizeof *cmp);
    char msg[512], failure[768] = "";
    if (tu_run_backend(b->g, KILN_BACKEND_REFERENCE, b->nout, b->out, ref, b->nin, b->in, b->feed,
                       msg, sizeof msg))
        snprintf(failure, sizeof failure, "reference run: %s", msg);
    else if (tu_run_backend(b->g, KILN_BACKEND_DEFAULT, b->nout, b->out, cmp, b->nin, b->in,
                            b->feed, msg, sizeof msg))
        snprintf(failure, sizeof failure, "compiled run: %s", msg);
    for (int i = 0; i < b->nout && !*failure; i++) {
        const kiln_tensor *r = ref[i], *c = cmp[i];
        if (r->dtype != c->dtype || r->rank != c->rank ||
            memcmp(r->dims, c->dims, sizeof(int64_t) * (size_t)r->rank)) {
            snprintf(failure, sizeof failure, "%s: compiled type differs from the reference", b->what[i]);
            break;
        }
        for (size_t k = 0; k < r->size; k++) {
            bool ok;
            if (ir_dtype_is_float(r->dtype)) {
                double x = ir_load_f64(r->dtype, r->data, k), y = ir_load_f64(c->dtype, c->data, k);
                ok = isnan(x) ? isnan(y) : isinf(x) ? x == y : fabs(x - y) <= b->atol[i] + b->rtol[i] * fabs(x);
                if (!ok)
                    snprintf(failure, sizeof failure, "%s element %zu: compiled %.9g, reference %.9g",
                             b->what[i], k, y, x);
            } else {
                int64_t x = ir_load_i64(r->dtype, r->data, k), y = ir_load_i64(c->dtype, c->data, k);
                ok = x == y;
                if (!ok)
                    snprintf(failure, sizeof failure, "%s element %zu: compiled %lld, reference %lld",
                             b->what[i], k, (long long)y, (long long)x);
            }
            if (!ok) break;
        }
    }
    for (int i = 0; i < MAX_OUT; i++) {
        kiln_tensor_free(ref[i]);
        kiln_tensor_free(cmp[i]);
    }
    for (int i = 0; i < b->nin; i++) kiln_tensor_free(b->feed[i]);
    free(ref);
    free(cmp);
    kiln_graph_free(b->g);
    free(b);
    if (*failure) fail_msg("%s", failure);
}

/* ---- building the ops ---- */

/* An axes variant: naxes < 0 leaves 'axes' unset. */
typedef struct {
    int naxes;
    int64_t axes[4];
} axes_t;

static void reduce_out(batch *b, const char *op, kiln_value x, const axes_t *a, int keepdims,
                       double rtol, double atol)
{
    kiln_attrs *at = kiln_attrs_new();
    if (a->naxes >= 0) kiln_attrs_ints(at, "axes", a->axes, a->naxes);
    kiln_attrs_int(at, "keepdims", keepdims);
    kiln_value y = kiln_op(b->g, op, &x, 1, at);
    kiln_attrs_free(at);
    char what[64];
    int n = snprintf(what, sizeof what, "%s(%s%s, axes", op, kiln_dtype_name(kiln_value_dtype(b->g, x)),
                     keepdims ? ", keep" : "");
    if (a->naxes < 0) n += snprintf(what + n, sizeof what - (size_t)n, " unset");
    for (int i = 0; i < a->naxes && n < 50; i++)
        n += snprintf(what + n, sizeof what - (size_t)n, " %lld", (long long)a->axes[i]);
    snprintf(what + n, sizeof what - (size_t)n, ")");
    batch_output(b, y, rtol, atol, what);
}

static void arg_out(batch *b, const char *op, kiln_value x, int axis, int keepdims, int last)
{
    kiln_attrs *at = kiln_attrs_new();
    kiln_attrs_int(at, "axis", axis);
    kiln_attrs_int(at, "keepdims", keepdims);
    kiln_attrs_int(at, "select_last_index", last);
    kiln_value y = kiln_op(b->g, op, &x, 1, at);
    kiln_attrs_free(at);
    char what[64];
    snprintf(what, sizeof what, "%s(%s, axis %d%s%s)", op, kiln_dtype_name(kiln_value_dtype(b->g, x)),
             axis, keepdims ? ", keep" : "", last ? ", last" : "");
    batch_output(b, y, 0, 0, what);
}

/* Every axis (negative ones too) of ArgMax and ArgMin, select_last_index
 * and keepdims both ways. */
static void arg_all_axes(batch *b, kiln_value x, int rank)
{
    for (int ax = -rank; ax < rank; ax++)
        for (int last = 0; last < 2; last++) {
            arg_out(b, "ArgMax", x, ax, (ax + last) & 1, last);
            arg_out(b, "ArgMin", x, ax, (ax + last + 1) & 1, last);
        }
}

/* ---- data ---- */

static uint64_t lcg(uint64_t *s)
{
    *s = *s * 6364136223846793005u + 1442695040888963407u;
    return *s >> 33;
}

/* Small integer values (many ties), with a NaN now and then in floats
 * (one in nan_every, 0 for none). */
static kiln_tensor *tie_data(kiln_dtype dt, int rank, const int64_t *dims, int nan_every)
{
    size_t n = 1;
    for (int d = 0; d < rank; d++) n *= (size_t)dims[d];
    double *v = malloc(sizeof(double) * (n + 1));
    uint64_t s = seed++;
    for (size_t i = 0; i < n; i++) {
        v[i] = (double)(lcg(&s) % 5) - (!ir_dtype_is_signed(dt) ? 0 : 2);
        if (nan_every && lcg(&s) % (uint64_t)nan_every == 0) v[i] = NAN;
    }
    kiln_tensor *t = tu_from_f64(dt, rank, dims, v);
    free(v);
    return t;
}

/* Values for an op and dtype: float products stay near 1, integer ones
 * small (they wrap all the same); u8 has no negatives. */
static kiln_tensor *data_for(const char *op, kiln_dtype dt, int rank, const int64_t *dims)
{
    bool prod = strcmp(op, "ReduceProd") == 0;
    double lo, hi;
    if (is_float(dt)) {
        lo = prod ? 0.8 : -5;
        hi = prod ? 1.25 : 5;
    } else {
        lo = !ir_dtype_is_signed(dt) ? 0 : prod ? -3 : -100;
        hi = prod ? 4 : 100;
    }
    return tu_random(dt, rank, dims, lo, hi, seed++);
}

/* ---- reductions over axes ---- */

typedef struct {
    int rank;
    int64_t dims[4];
    bool symbolic; /* the first dim of the placeholder is -1 */
    int nvariants, ncore; /* the first ncore variants are run for every dtype and op */
    axes_t variants[10];
} red_case;

static const red_case CASES[] = {
    {2, {7, 13}, false, 7, 3,
     {{1, {-1}}, {1, {0}}, {-1, {0}}, {0, {0}}, {1, {1}}, {2, {0, 1}}, {1, {-2}}}},
    {4, {3, 5, 7, 2}, true, 9, 3,
     {{2, {0, 2}}, {2, {1, 3}}, {1, {1}}, {2, {-1, -3}}, {1, {3}}, {1, {0}}, {2, {1, 2}},
      {4, {0, 1, 2, 3}}, {2, {2, 0}}}},
    {3, {2, 1, 33}, false, 5, 1, {{2, {0, 2}}, {1, {1}}, {1, {2}}, {2, {0, 1}}, {-1, {0}}}},
    {3, {1000, 1, 3}, true, 4, 1, {{1, {0}}, {1, {2}}, {2, {0, 2}}, {1, {1}}}},
    {2, {1, 1}, false, 3, 0, {{1, {0}}, {-1, {0}}, {1, {1}}}},
    {0, {0}, false, 2, 0, {{-1, {0}}, {0, {0}}}}, /* a scalar */
    /* an empty output over non-empty reduced axes */
    {3, {2, 0, 3}, false, 3, 0, {{1, {0}}, {1, {2}}, {2, {0, 2}}}},
};
#define NCASES (int)(sizeof CASES / sizeof CASES[0])

/* Per dtype, one batch. The loops do not depend on the dtype, only the
 * loads, stores and accumulators do, so f32 and i32 run every variant of
 * every case for ReduceSum and ReduceMax (one of each loop family) and the
 * core variants for the others; the other dtypes run the core variants for
 * ReduceSum and ReduceMax and two for the rest. keepdims alternates, and
 * goes both ways for the first case. */
static void test_reduce_axes(void **state)
{
    (void)state;
    for (int d = 0; d < NALL; d++) {
        kiln_dtype dt = ALL[d];
        bool full = dt == KILN_F32 || dt == KILN_I32;
        double rt = rtol_for(dt);
        batch *b = batch_new();
        for (int c = 0; c < NCASES; c++) {
            const red_case *rc = &CASES[c];
            kiln_value x = batch_input(b, data_for("ReduceSum", dt, rc->rank, rc->dims), rc->symbolic);
            kiln_value xp = batch_input(b, data_for("ReduceProd", dt, rc->rank, rc->dims), false);
            for (int o = 0; o < 5; o++) {
                if (o == 1 && !is_float(dt)) continue;
                bool main_op = o == 0 || o == 2;
                int nv = main_op ? (full ? rc->nvariants : rc->ncore)
                                 : (full ? rc->ncore : c < 2 ? 1 : 0);
                for (int v = 0; v < nv; v++)
                    for (int kd = 0; kd < 2; kd++) {
                        if (!(c == 0 && o == 0) && kd != ((v + o) & 1)) continue;
                        reduce_out(b, REDUCE_OPS[o], o == 4 ? xp : x, &rc->variants[v], kd, rt, rt * 10);
                    }
            }
        }
        batch_run(b);
    }
}

/* Sum / Prod / Mean over an empty axis give 0 / 1 / NaN; Max / Min the
 * lowest / highest value (-inf / +inf for floats, ONNX opset 18+). */
static void test_reduce_empty_axis(void **state)
{
    (void)state;
    static const int64_t dims[3] = {3, 0, 4};
    static const axes_t variants[] = {{1, {1}}, {2, {1, 2}}, {-1, {0}}};
    batch *b = batch_new();
    for (int d = 0; d < NALL; d++) {
        kiln_value x = batch_input(b, kiln_tensor_new(ALL[d], 3, dims), d == 0);
        reduce_out(b, "ReduceSum", x, &variants[0], 0, 0, 0);
        reduce_out(b, "ReduceSum", x, &variants[1], 1, 0, 0);
        reduce_out(b, "ReduceProd", x, &variants[2], d & 1, 0, 0);
        if (is_float(ALL[d])) reduce_out(b, "ReduceMean", x, &variants[d & 1], 1, 0, 0);
        reduce_out(b, "ReduceMax", x, &variants[d & 1], d & 1, 0, 0);
        reduce_out(b, "ReduceMin", x, &variants[2], 1, 0, 0);
        reduce_out(b, "ReduceMax", x, &variants[2], 0, 0, 0);
    }
    batch_run(b);
}

/* Max / Min over an empty axis fill the output with the identity, in the
 * compiled code as in the reference, also with a fused prologue. */
static void test_reduce_empty_max_min(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){3, 0});
    kiln_attrs *at = kiln_attrs_new();
    kiln_attrs_ints(at, "axes", (int64_t[]){1}, 1);
    kiln_value y[2];
    y[0] = kiln_op(g, "ReduceMax", &x, 1, at);
    kiln_value nx = kiln_op(g, "Neg", &x, 1, NULL);
    y[1] = kiln_op(g, "ReduceMin", &nx, 1, at);
    kiln_attrs_free(at);
    assert_null(kiln_graph_error(g));
    kiln_tensor *t = kiln_tensor_new(KILN_F32, 2, (int64_t[]){3, 0});
    for (int be = 0; be < 2; be++) {
        kiln_tensor *r[2] = {NULL, NULL};
        char msg[512] = "";
        if (tu_run_backend(g, be ? KILN_BACKEND_REFERENCE : KILN_BACKEND_DEFAULT, 2, y, r, 1, &x, &t, msg, sizeof msg))
            fail_msg("backend %d: %s", be, msg);
        tu_assert_close(r[0], (double[]){-INFINITY, -INFINITY, -INFINITY}, 3, 0, 0);
        tu_assert_close(r[1], (double[]){INFINITY, INFINITY, INFINITY}, 3, 0, 0);
        kiln_tensor_free(r[0]);
        kiln_tensor_free(r[1]);
    }
    kiln_tensor_free(t);
    kiln_graph_free(g);
}

/* ArgMax / ArgMin over an empty axis fail at run time, from the compiled
 * code as from the reference, naming the op. */
static void expect_empty_error(const char *op, const int64_t *dims, int rank, kiln_attrs *at)
{
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, rank, dims);
    kiln_value y = kiln_op(g, op, &x, 1, at);
    assert_null(kiln_graph_error(g));
    kiln_tensor *t = kiln_tensor_new(KILN_F32, rank, dims);
    for (int b = 0; b < 2; b++) {
        kiln_backend be = b ? KILN_BACKEND_REFERENCE : KILN_BACKEND_DEFAULT;
        kiln_tensor *r = NULL;
        char msg[512] = "";
        int code = tu_run_backend(g, be, 1, &y, &r, 1, &x, &t, msg, sizeof msg);
        if (code != KILN_ERR_INVALID_ARGUMENT || !strstr(msg, "empty axis") || !strstr(msg, op))
            fail_msg("%s backend %d: code %d, message '%s'", op, b, code, msg);
        assert_null(r);
    }
    kiln_tensor_free(t);
    kiln_graph_free(g);
}

static void test_empty_axis_errors(void **state)
{
    (void)state;
    kiln_attrs *at = kiln_attrs_new();
    kiln_attrs_int(at, "axis", 0);
    expect_empty_error("ArgMax", (int64_t[]){0, 4}, 2, at);
    kiln_attrs_free(at);
    at = kiln_attrs_new();
    kiln_attrs_int(at, "axis", -1);
    expect_empty_error("ArgMin", (int64_t[]){0, 0}, 2, at);
    kiln_attrs_free(at);
}

/* ---- ArgMax / ArgMin ---- */

/* Per dtype, one batch: f32 and i32 every axis of every shape, on data
 * with many ties (select_last_index both ways) and on random data; the
 * other dtypes each axis of one shape. */
static void test_arg(void **state)
{
    (void)state;
    static const struct {
        int rank;
        int64_t dims[4];
    } shapes[] = {{3, {3, 33, 5}}, {2, {7, 13}}, {1, {1000}}, {4, {2, 1, 17, 3}}};
    for (int d = 0; d < NALL; d++) {
        kiln_dtype dt = ALL[d];
        bool full = dt == KILN_F32 || dt == KILN_I32;
        batch *b = batch_new();
        for (int s = 0; s < (full ? 4 : 2); s++) {
            int rank = shapes[s].rank;
            const int64_t *dims = shapes[s].dims;
            kiln_value x = batch_input(b, tie_data(dt, rank, dims, 0), s == 0);
            kiln_value xr = batch_input(b, tu_random(dt, rank, dims, !ir_dtype_is_signed(dt) ? 0 : -100, 100, seed++), false);
            if (full) {
                arg_all_axes(b, x, rank);
                for (int ax = 0; ax < rank; ax++) arg_out(b, ax & 1 ? "ArgMin" : "ArgMax", xr, ax, 1, 0);
            } else if (s == 0) {
                for (int ax = 0; ax < rank; ax++) {
                    arg_out(b, "ArgMax", x, ax, ax & 1, 0);
                    arg_out(b, "ArgMin", x, ax - rank, 0, 1);
                }
            } else {
                arg_out(b, "ArgMax", xr, 1, 0, 0);
                arg_out(b, "ArgMin", xr, 0, 1, 0);
            }
        }
        /* an empty output along a non-empty axis */
        kiln_value x = batch_input(b, kiln_tensor_new(dt, 2, (int64_t[]){0, 3}), false);
        arg_out(b, "ArgMax", x, 1, 0, 0);
        batch_run(b);
    }
}

/* NaN inputs: Max/Min/Sum/Mean propagate them, Arg* pick the first (last)
 * one; one batch per float dtype. */
static void test_nan(void **state)
{
    (void)state;
    static const int64_t dims[3] = {5, 37, 19};
    static const axes_t variants[] = {{1, {2}}, {1, {1}}, {2, {0, 2}}, {-1, {0}}, {1, {0}}};
    for (int d = 0; d < 4; d++) {
        kiln_dtype dt = ALL[d];
        double rt = rtol_for(dt);
        batch *b = batch_new();
        /* frequent NaNs, and (f32) sparse ones: some rows and columns have none */
        for (int k = 0; k < (dt == KILN_F32 ? 2 : 1); k++) {
            kiln_value x = batch_input(b, tie_data(dt, 3, dims, k ? 150 : 3), false);
            for (int v = 0; v < 5; v++)
                reduce_out(b, v & 1 ? "ReduceMin" : "ReduceMax", x, &variants[v], v & 1, 0, 0);
            reduce_out(b, "ReduceSum", x, &variants[0], 0, rt, rt);
            reduce_out(b, "ReduceMean", x, &variants[2], 1, rt, rt);
            for (int ax = 0; ax < 3; ax++) {
                arg_out(b, "ArgMax", x, ax, 0, ax & 1);
                arg_out(b, "ArgMin", x, ax, 0, (ax + 1) & 1);
            }
        }
        /* a single NaN in the middle of long rows and columns */
        kiln_tensor *t = tu_random(dt, 3, dims, -5, 5, seed++);
        kiln_tensor *one = tu_from_f64(dt, 0, NULL, (double[]){NAN});
        size_t esz = kiln_dtype_size(dt);
        memcpy((char *)t->data + (size_t)((2 * 37 + 20) * 19 + 7) * esz, one->data, esz);
        kiln_tensor_free(one);
        kiln_value x = batch_input(b, t, false);
        for (int v = 0; v < 5; v++) reduce_out(b, v & 1 ? "ReduceMax" : "ReduceMin", x, &variants[v], 0, 0, 0);
        for (int ax = 0; ax < 3; ax++) arg_out(b, ax & 1 ? "ArgMin" : "ArgMax", x, ax, 0, ax == 2);
        batch_run(b);
    }
}

/* Integer sums and products that wrap, and the extreme values. */
static void test_int_wrap(void **state)
{
    (void)state;
    static const int64_t dims[2] = {67, 45};
    static const axes_t variants[] = {{1, {0}}, {1, {1}}};
    static const kiln_dtype ints[] = {KILN_I8, KILN_U8, KILN_I32, KILN_I64, KILN_I16, KILN_U16, KILN_U32, KILN_U64};
    /* the full range of each (u32 above 2^31, u64 above 2^63) */
    static const double los[] = {-128, 0, -2e9, -2e9, -32768, 0, 0, 0};
    static const double his[] = {127, 255, 2e9, 2e9, 32767, 65535, 4.2e9, 1.8e19};
    batch *b = batch_new();
    for (int d = 0; d < 8; d++) {
        double lo = los[d], hi = his[d];
        kiln_value x = batch_input(b, tu_random(ints[d], 2, dims, lo, hi, seed++), false);
        for (int o = 0; o < 5; o++)
            for (int v = 0; v < 2; v++)
                if (o != 1) reduce_out(b, REDUCE_OPS[o], x, &variants[v], 0, 0, 0);
    }
    int64_t v[15] = {INT64_MIN, INT64_MAX, -1, 0, 1, INT64_MAX, INT64_MAX, 2, 3, 4,
                     INT64_MIN, INT64_MIN, 7, -7, 0};
    kiln_value x = batch_input(b, tu_i64(2, (int64_t[]){3, 5}, v), false);
    for (int o = 0; o < 5; o++)
        for (int k = 0; k < 2; k++)
            if (o != 1) reduce_out(b, REDUCE_OPS[o], x, &variants[k], 1, 0, 0);
    for (int ax = 0; ax < 2; ax++) {
        arg_out(b, "ArgMax", x, ax, 0, ax);
        arg_out(b, "ArgMin", x, ax, 0, 1 - ax);
    }
    batch_run(b);
}

/* 1000 x 1000 over each axis and both: split over the thread pool; the f32
 * sums of 1000 and 10^6 elements stay within 1e-5 of the reference. */
static void test_large(void **state)
{
    (void)state;
    static const int64_t dims[2] = {1000, 1000};
    static const axes_t variants[] = {{1, {0}}, {1, {1}}, {-1, {0}}};
    batch *b = batch_new();
    for (int d = 0; d < NALL; d++) {
        kiln_dtype dt = ALL[d];
        if (dt != KILN_F32 && dt != KILN_F64 && dt != KILN_I32) continue;
        kiln_value x = batch_input(b, tu_random(dt, 2, dims, !ir_dtype_is_signed(dt) ? 0 : -100, 100, seed++), false);
        double rt = dt == KILN_F32 ? 1e-5 : rtol_for(dt);
        double at = dt == KILN_F32 ? 1e-2 : dt == KILN_F64 ? 1e-8 : 0;
        for (int v = 0; v < 3; v++) {
            reduce_out(b, "ReduceSum", x, &variants[v], 0, rt, at);
            reduce_out(b, "ReduceMax", x, &variants[v], 1, 0, 0);
            if (is_float(dt)) reduce_out(b, "ReduceMean", x, &variants[v], 0, rt, at);
        }
        if (dt == KILN_F32 || dt == KILN_I32)
            for (int ax = 0; ax < 2; ax++) {
                arg_out(b, "ArgMax", x, ax, 0, 0);
                arg_out(b, "ArgMin", x, ax, 1, 1);
            }
    }
    /* all-positive f32 sums: a plain float accumulator would be far off */
    kiln_value x = batch_input(b, tu_random(KILN_F32, 2, dims, 0, 1, seed++), false);
    for (int v = 0; v < 3; v++) reduce_out(b, "ReduceSum", x, &variants[v], 0, 1e-6, 0);
    /* f16 / bf16 means of long rows and columns */
    for (int h = 0; h < 2; h++) {
        kiln_dtype dt = h ? KILN_BF16 : KILN_F16;
        x = batch_input(b, tu_random(dt, 2, dims, -1, 1, seed++), false);
        for (int v = 0; v < 3; v++) reduce_out(b, "ReduceMean", x, &variants[v], 0, rtol_for(dt), 1e-3);
    }
    /* the middle axis of a 3-D tensor: a long kept row and few rows */
    static const int64_t dims3[3] = {3, 500, 700};
    static const axes_t v3[] = {{1, {1}}, {2, {0, 1}}, {2, {0, 2}}};
    x = batch_input(b, tu_random(KILN_F32, 3, dims3, -1, 1, seed++), true);
    kiln_value xp = batch_input(b, tu_random(KILN_F32, 3, dims3, 0.97, 1.03, seed++), false);
    for (int v = 0; v < 3; v++) {
        reduce_out(b, "ReduceSum", x, &v3[v], 1, 1e-5, 1e-4);
        reduce_out(b, "ReduceMin", x, &v3[v], 0, 0, 0);
        reduce_out(b, "ReduceProd", xp, &v3[v], 0, 1e-5, 0);
    }
    arg_out(b, "ArgMax", x, 1, 0, 0);
    batch_run(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_reduce_axes),
        TU_TEST(test_reduce_empty_axis),
        TU_TEST(test_reduce_empty_max_min),
        TU_TEST(test_empty_axis_errors),
        TU_TEST(test_arg),
        TU_TEST(test_nan),
        TU_TEST(test_int_wrap),
        TU_TEST(test_large),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
