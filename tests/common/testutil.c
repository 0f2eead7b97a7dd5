/* testutil.c -- see testutil.h. */
#include "common/testutil.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ir.h"

kiln_tensor *tu_f32(int rank, const int64_t *dims, const float *data)
{
    kiln_tensor *t = kiln_tensor_from_data(KILN_F32, rank, dims, data);
    assert_non_null(t);
    return t;
}

kiln_tensor *tu_f64(int rank, const int64_t *dims, const double *data)
{
    kiln_tensor *t = kiln_tensor_from_data(KILN_F64, rank, dims, data);
    assert_non_null(t);
    return t;
}

kiln_tensor *tu_i64(int rank, const int64_t *dims, const int64_t *data)
{
    kiln_tensor *t = kiln_tensor_from_data(KILN_I64, rank, dims, data);
    assert_non_null(t);
    return t;
}

kiln_tensor *tu_i32(int rank, const int64_t *dims, const int32_t *data)
{
    kiln_tensor *t = kiln_tensor_from_data(KILN_I32, rank, dims, data);
    assert_non_null(t);
    return t;
}

kiln_tensor *tu_bool(int rank, const int64_t *dims, const uint8_t *data)
{
    kiln_tensor *t = kiln_tensor_from_data(KILN_BOOL, rank, dims, data);
    assert_non_null(t);
    return t;
}

kiln_tensor *tu_from_f64(kiln_dtype dt, int rank, const int64_t *dims, const double *data)
{
    kiln_tensor *t = kiln_tensor_new(dt, rank, dims);
    assert_non_null(t);
    for (size_t i = 0; i < kiln_tensor_size(t); i++) ir_store_f64(dt, kiln_tensor_data(t), i, data[i]);
    return t;
}

kiln_tensor *tu_random(kiln_dtype dt, int rank, const int64_t *dims, double lo, double hi, uint64_t seed)
{
    kiln_tensor *t = kiln_tensor_new(dt, rank, dims);
    assert_non_null(t);
    uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
    for (size_t i = 0; i < kiln_tensor_size(t); i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17; /* xorshift64 */
        double u = (double)(x >> 11) * 0x1p-53;
        ir_store_f64(dt, kiln_tensor_data(t), i, lo + (hi - lo) * u);
    }
    return t;
}

static kiln_session *ref_session(kiln_graph *g)
{
    kiln_session_options o;
    kiln_session_options_init(&o);
    o.backend = KILN_BACKEND_REFERENCE;
    kiln_status *st = kiln_status_new();
    kiln_session *s = kiln_session_new(g, &o, st);
    if (!s) fail_msg("kiln_session_new: %s", kiln_status_message(st));
    kiln_status_free(st);
    return s;
}

kiln_tensor *tu_run(kiln_graph *g, kiln_value out, int nfeeds, const kiln_value *phs,
                    kiln_tensor *const *feeds)
{
    kiln_session *s = ref_session(g);
    kiln_status *st = kiln_status_new();
    kiln_tensor *r = NULL;
    kiln_session_run(s, phs, feeds, nfeeds, &out, &r, 1, NULL, 0, st);
    if (kiln_status_code(st) != KILN_OK) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", kiln_status_message(st));
        kiln_status_free(st);
        kiln_session_free(s);
        fail_msg("kiln_session_run: %s", msg);
    }
    kiln_status_free(st);
    kiln_session_free(s);
    assert_non_null(r);
    return r;
}

void tu_run_fails(kiln_graph *g, kiln_value out, int nfeeds, const kiln_value *phs,
                  kiln_tensor *const *feeds, const char *substr)
{
    kiln_session *s = ref_session(g);
    kiln_status *st = kiln_status_new();
    kiln_tensor *r = NULL;
    kiln_session_run(s, phs, feeds, nfeeds, &out, &r, 1, NULL, 0, st);
    int code = kiln_status_code(st);
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", kiln_status_message(st));
    kiln_status_free(st);
    kiln_session_free(s);
    assert_null(r);
    assert_int_not_equal(code, KILN_OK);
    if (!strstr(msg, substr)) fail_msg("error message '%s' lacks '%s'", msg, substr);
}

int tu_run_backend(kiln_graph *g, kiln_backend backend, int nouts, const kiln_value *outs,
                   kiln_tensor **results, int nfeeds, const kiln_value *phs,
                   kiln_tensor *const *feeds, char *msg, size_t msg_size)
{
    kiln_session_options o;
    kiln_session_options_init(&o);
    o.backend = backend;
    kiln_status *st = kiln_status_new();
    kiln_session *s = kiln_session_new(g, &o, st);
    if (s) kiln_session_run(s, phs, feeds, nfeeds, outs, results, nouts, NULL, 0, st);
    int code = kiln_status_code(st);
    if (msg) snprintf(msg, msg_size, "%s", kiln_status_message(st));
    kiln_session_free(s);
    kiln_status_free(st);
    return code;
}

void tu_diff(kiln_graph *g, int nouts, const kiln_value *outs, int nfeeds, const kiln_value *phs,
             kiln_tensor *const *feeds, double rtol, double atol)
{
    tu_diff_labeled(g, nouts, outs, NULL, nfeeds, phs, feeds, rtol, atol);
}

void tu_diff_labeled(kiln_graph *g, int nouts, const kiln_value *outs, const char *const *labels,
                     int nfeeds, const kiln_value *phs, kiln_tensor *const *feeds, double rtol,
                     double atol)
{
    kiln_tensor *ref[16] = {0}, *cmp[16] = {0};
    char msg[1024];
    assert_true(nouts <= 16);
    if (tu_run_backend(g, KILN_BACKEND_REFERENCE, nouts, outs, ref, nfeeds, phs, feeds, msg, sizeof msg))
        fail_msg("reference run: %s", msg);
    if (tu_run_backend(g, KILN_BACKEND_DEFAULT, nouts, outs, cmp, nfeeds, phs, feeds, msg, sizeof msg)) {
        for (int i = 0; i < nouts; i++) kiln_tensor_free(ref[i]);
        fail_msg("compiled run: %s", msg);
    }
    char failure[512] = "";
    int bad = -1;
    for (int i = 0; i < nouts && !*failure; i++) {
        bad = i;
        const kiln_tensor *r = ref[i], *c = cmp[i];
        if (r->dtype != c->dtype || r->rank != c->rank || memcmp(r->dims, c->dims, sizeof(int64_t) * (size_t)r->rank)) {
            snprintf(failure, sizeof failure, "output %d: compiled type differs from the reference", i);
            break;
        }
        for (size_t k = 0; k < r->size; k++) {
            if (ir_dtype_is_float(r->dtype)) {
                double a = ir_load_f64(r->dtype, r->data, k), b = ir_load_f64(c->dtype, c->data, k);
                bool ok = isnan(a) ? isnan(b) : isinf(a) ? a == b : fabs(a - b) <= atol + rtol * fabs(a);
                if (!ok) {
                    snprintf(failure, sizeof failure, "output %d element %zu: compiled %.9g, reference %.9g (%s)",
                             i, k, b, a, kiln_dtype_name(r->dtype));
                    break;
                }
            } else if (ir_load_i64(r->dtype, r->data, k) != ir_load_i64(c->dtype, c->data, k)) {
                snprintf(failure, sizeof failure, "output %d element %zu: compiled %lld, reference %lld (%s)", i, k,
                         (long long)ir_load_i64(c->dtype, c->data, k), (long long)ir_load_i64(r->dtype, r->data, k),
                         kiln_dtype_name(r->dtype));
                break;
            }
        }
    }
    for (int i = 0; i < nouts; i++) {
        kiln_tensor_free(ref[i]);
        kiln_tensor_free(cmp[i]);
    }
    if (*failure) fail_msg("%s%s%s", bad >= 0 && labels ? labels[bad] : "", bad >= 0 && labels ? ": " : "", failure);
}

kiln_graph *tu_batch_case(tu_batch *b, int nin, double rtol, double atol)
{
    assert_true(nin <= TU_BATCH_INPUTS);
    if (b->g && (b->nout == TU_BATCH_OUTS || b->nin + nin > TU_BATCH_INPUTS || b->rtol != rtol ||
                 b->atol != atol))
        tu_batch_flush(b);
    if (!b->g) {
        b->g = kiln_graph_new();
        b->rtol = rtol;
        b->atol = atol;
    }
    return b->g;
}

kiln_value tu_batch_input(tu_batch *b, kiln_dtype dt, int rank, const int64_t *dims, kiln_tensor *feed)
{
    assert_true(b->g && b->nin < TU_BATCH_INPUTS);
    char name[16];
    snprintf(name, sizeof name, "p%d", b->nin);
    b->feeds[b->nin] = feed;
    return b->in[b->nin++] = kiln_placeholder(b->g, name, dt, rank, dims);
}

void tu_batch_output(tu_batch *b, kiln_value y, const char *fmt, ...)
{
    assert_true(b->g && b->nout < TU_BATCH_OUTS);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->label[b->nout], sizeof b->label[0], fmt, ap);
    va_end(ap);
    if (kiln_graph_error(b->g)) fail_msg("%s: %s", b->label[b->nout], kiln_graph_error(b->g));
    b->out[b->nout++] = y;
}

void tu_batch_flush(tu_batch *b)
{
    if (!b->g) return;
    const char *labels[TU_BATCH_OUTS];
    for (int i = 0; i < b->nout; i++) labels[i] = b->label[i];
    if (b->nout) tu_diff_labeled(b->g, b->nout, b->out, labels, b->nin, b->in, b->feeds, b->rtol, b->atol);
    for (int i = 0; i < b->nin; i++) kiln_tensor_free(b->feeds[i]);
    kiln_graph_free(b->g);
    memset(b, 0, sizeof *b);
}

void tu_assert_shape(const kiln_tensor *t, kiln_dtype dt, int rank, const int64_t *dims)
{
    assert_non_null(t);
    assert_int_equal(kiln_tensor_dtype(t), dt);
    assert_int_equal(kiln_tensor_rank(t), rank);
    for (int i = 0; i < rank; i++) assert_int_equal(kiln_tensor_dims(t)[i], dims[i]);
}

void tu_assert_close(const kiln_tensor *t, const double *want, size_t n, double rtol, double atol)
{
    assert_non_null(t);
    assert_int_equal(kiln_tensor_size(t), n);
    const void *d = kiln_tensor_const_data(t);
    for (size_t i = 0; i < n; i++) {
        double got = ir_load_f64(kiln_tensor_dtype(t), d, i);
        double w = want[i];
        bool ok;
        if (isnan(w)) ok = isnan(got);
        else if (isinf(w)) ok = got == w;
        else ok = fabs(got - w) <= atol + rtol * fabs(w);
        if (!ok) fail_msg("element %zu: got %.9g, want %.9g (rtol %g, atol %g)", i, got, w, rtol, atol);
    }
}

void tu_assert_ints(const kiln_tensor *t, const int64_t *want, size_t n)
{
    assert_non_null(t);
    assert_int_equal(kiln_tensor_size(t), n);
    const void *d = kiln_tensor_const_data(t);
    for (size_t i = 0; i < n; i++) {
        int64_t got = ir_load_i64(kiln_tensor_dtype(t), d, i);
        if (got != want[i]) fail_msg("element %zu: got %lld, want %lld", i, (long long)got, (long long)want[i]);
    }
}

void tu_assert_graph_error(const kiln_graph *g, ...)
{
    const char *err = kiln_graph_error(g);
    if (!err) fail_msg("expected a graph error, got none");
    va_list ap;
    va_start(ap, g);
    for (const char *s = va_arg(ap, const char *); s; s = va_arg(ap, const char *))
        if (!strstr(err, s)) {
            va_end(ap);
            fail_msg("graph error '%s' lacks '%s'", err, s);
        }
    va_end(ap);
}

int tu_setup(void **state)
{
    (void)state;
    ir_alloc_fail_after(-1);
    return ir_alloc_live_blocks() == 0 ? 0 : -1;
}

int tu_teardown(void **state)
{
    (void)state;
    long live = ir_alloc_live_blocks();
    if (live != 0) {
        print_error("leak: %ld blocks allocated by kiln are still live\n", live);
        return -1;
    }
    return 0;
}

void tu_batch_op(tu_batch *b, const char *op, int n, const kiln_dtype *dts, const tu_shape *shapes,
                 const double *lo, const double *hi, kiln_attrs *attrs, bool symbolic, uint64_t *seed,
                 double rtol)
{
    kiln_value ph[8];
    assert_true(n <= 8);
    kiln_graph *g = tu_batch_case(b, n, rtol, rtol);
    char shapes_s[112] = "";
    size_t at = 0;
    for (int i = 0; i < n; i++) {
        int64_t dims[4];
        memcpy(dims, shapes[i].dims, sizeof dims);
        if (symbolic && shapes[i].rank > 0) dims[0] = -1;
        kiln_tensor *feed = tu_random(dts[i], shapes[i].rank, shapes[i].dims, lo[i], hi[i], (*seed)++);
        ph[i] = tu_batch_input(b, dts[i], shapes[i].rank, dims, feed);
        at += (size_t)snprintf(shapes_s + at, sizeof shapes_s - at, "%s[", i ? ", " : "");
        for (int d = 0; d < shapes[i].rank && at < sizeof shapes_s; d++)
            at += (size_t)snprintf(shapes_s + at, sizeof shapes_s - at, "%s%lld", d ? "," : "",
                                   (long long)shapes[i].dims[d]);
        if (at < sizeof shapes_s) at += (size_t)snprintf(shapes_s + at, sizeof shapes_s - at, "]");
        if (at >= sizeof shapes_s) at = sizeof shapes_s - 1;
    }
    kiln_value y = kiln_op(g, op, ph, n, attrs);
    tu_batch_output(b, y, "%s (%s%s) on %s", op, kiln_dtype_name(dts[n - 1]), symbolic ? ", symbolic" : "",
                    shapes_s);
}
