/* onnx_signal.c -- the ONNX signal-processing ops: HannWindow,
 * HammingWindow, BlackmanWindow and MelWeightMatrix (constants computed at
 * import from their constant size inputs), and DFT and STFT, lowered at
 * import to MatMuls with constant cos/sin matrices. kiln compiles static
 * graphs, so the transform sizes must be known at import; an O(n^2)
 * matrix DFT is what the generated code then runs (fine for the frame and
 * signal sizes these ops see in audio front ends; large transforms would
 * want an FFT kernel). docs/onnx.md describes the approach. */
#include <math.h>
#include <string.h>

#include "onnx_internal.h"

/* Largest transform (and window) size accepted: the DFT matrices are
 * n x n constants. */
#define SIGNAL_MAX_N 8192

/* A constant of dtype dt and the given shape, filled from data (doubles,
 * stored as ir_store_f64 does); data is freed here. */
static kiln_value const_from(onnx_ctx *cx, kiln_dtype dt, int rank, const int64_t *dims, double *data)
{
    kiln_value r = kiln_value_invalid();
    kiln_tensor *t = data ? kiln_tensor_new(dt, rank, dims) : NULL;
    if (!t) {
        onnx_error(cx, KILN_ERR_OUT_OF_MEMORY, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < t->size; i++) ir_store_f64(dt, t->data, i, data[i]);
    r = onnx_const(cx, t);
done:
    kiln_tensor_free(t);
    ir_free(data);
    return r;
}

/* The output_datatype attribute (default float). */
static kiln_dtype output_dtype(onnx_ctx *cx, const Onnx__NodeProto *n)
{
    int64_t odt = onnx_attr_int(n, "output_datatype", 1);
    kiln_dtype dt = onnx_dtype((int)odt);
    if (!dt) onnx_error(cx, KILN_ERR_UNIMPLEMENTED, "output_datatype %lld has no kiln dtype", (long long)odt);
    return dt;
}

/* A constant integer scalar input in [lo, hi]. */
static int scalar_int(onnx_ctx *cx, const kiln_value *in, int nin, int i, const char *what, int64_t lo,
                      int64_t hi, int64_t *out)
{
    int cnt;
    int rc = onnx_input_ints(cx, in, nin, i, what, out, 1, &cnt);
    if (rc) return rc;
    if (cnt != 1 || *out < lo || *out > hi)
        return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "input %d (%s) must be one integer in [%lld, %lld]", i,
                          what, (long long)lo, (long long)hi);
    return KILN_OK;
}

/* ---- windows ---- */

ONNX_CONV(cv_window)
{
    int64_t size;
    if (scalar_int(cx, in, nin, 0, "size", 0, SIGNAL_MAX_N, &size)) return cx->st->code;
    kiln_dtype dt = output_dtype(cx, n);
    if (!dt) return cx->st->code;
    bool periodic = onnx_attr_int(n, "periodic", 1) != 0;
    /* the cosine terms a0 - a1 cos(2 pi k / N) + a2 cos(4 pi k / N) */
    double a0, a1, a2 = 0;
    if (!strcmp(n->op_type, "HannWindow")) {
        a0 = a1 = 0.5;
    } else if (!strcmp(n->op_type, "HammingWindow")) {
        a0 = 25.0 / 46.0;
        a1 = 1 - a0;
    } else {
        a0 = 0.42, a1 = 0.5, a2 = 0.08;
    }
    double denom = periodic ? (double)size : (double)size - 1;
    double *w = ir_malloc(sizeof *w * (size_t)(size ? size : 1));
    for (int64_t k = 0; w && k < size; k++) {
        /* a symmetric window of one point is 1 (0 / 0 otherwise) */
        double t = denom > 0 ? 2 * M_PI * (double)k / denom : 0;
        w[k] = denom > 0 ? a0 - a1 * cos(t) + a2 * cos(2 * t) : 1.0;
    }
    return onnx_done(cx, out, const_from(cx, dt, 1, &size, w));
}

/* ---- MelWeightMatrix ---- */

ONNX_CONV(cv_mel_weight_matrix)
{
    int64_t bins, dft_len, rate;
    double lo_hz, hi_hz;
    if (scalar_int(cx, in, nin, 0, "num_mel_bins", 1, SIGNAL_MAX_N, &bins) ||
        scalar_int(cx, in, nin, 1, "dft_length", 1, SIGNAL_MAX_N, &dft_len) ||
        scalar_int(cx, in, nin, 2, "sample_rate", 1, INT32_MAX, &rate) ||
        onnx_input_scalar(cx, in, nin, 3, "lower_edge_hertz", 0, &lo_hz) ||
        onnx_input_scalar(cx, in, nin, 4, "upper_edge_hertz", 0, &hi_hz))
        return cx->st->code;
    if (!onnx_has(in, nin, 3) || !onnx_has(in, nin, 4))
        return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "lower_edge_hertz and upper_edge_hertz are required");
    if (!(lo_hz >= 0 && hi_hz >= lo_hz))
        return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT,
                          "need 0 <= lower_edge_hertz <= upper_edge_hertz, got %g and %g", lo_hz, hi_hz);
    kiln_dtype dt = output_dtype(cx, n);
    if (!dt) return cx->st->code;
    int64_t spec = dft_len / 2 + 1;
    int64_t dims[2] = {spec, bins};
    double *m = ir_calloc((size_t)(spec * bins), sizeof *m);
    int64_t *edge = ir_malloc(sizeof *edge * (size_t)(bins + 2));
    if (!m || !edge) {
        ir_free(m);
        ir_free(edge);
        return onnx_error(cx, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    }
    /* bins + 2 points evenly spaced on the mel scale (the spec divides the
     * range by bins + 2), mapped back to Hz and to spectrogram bins */
    double lo_mel = 2595 * log10(1 + lo_hz / 700), hi_mel = 2595 * log10(1 + hi_hz / 700);
    double step = (hi_mel - lo_mel) / (double)(bins + 2);
    for (int64_t i = 0; i < bins + 2; i++) {
        double hz = 700 * (pow(10, ((double)i * step + lo_mel) / 2595) - 1);
        edge[i] = (int64_t)floor((double)(dft_len + 1) * hz / (double)rate);
    }
    /* triangles: rising from edge[i] to edge[i+1], falling to edge[i+2] */
    for (int64_t i = 0; i < bins; i++) {
        int64_t l = edge[i], c = edge[i + 1], h = edge[i + 2];
        if (c == l) {
            if (c >= 0 && c < spec) m[c * bins + i] = 1;
        } else {
            for (int64_t j = l; j <= c; j++)
                if (j >= 0 && j < spec) m[j * bins + i] = (double)(j - l) / (double)(c - l);
        }
        for (int64_t j = c; h > c && j < h; j++)
            if (j >= 0 && j < spec) m[j * bins + i] = (double)(h - j) / (double)(h - c);
    }
    ir_free(edge);
    return onnx_done(cx, out, const_from(cx, dt, 2, dims, m));
}

/* ---- DFT as MatMul ---- */

enum { DFT_FORWARD, DFT_INVERSE, DFT_IRFFT };

/* The [len, nout] matrices P and Q with Re(y) = a P + b Q and Im(y) =
 * b P - a Q for input a + ib (len samples, the first len of the n-point
 * transform; samples past n are dropped, missing ones are zeros):
 * forward P = cos, Q = sin; inverse P = cos / n, Q = -sin / n; the
 * inverse of a one-sided spectrum (irfft) weighs each bin but DC and
 * Nyquist twice, for its mirror image. Sign: which of Q (1) or -Q (-1). */
static kiln_value dft_matrix(onnx_ctx *cx, kiln_dtype dt, int mode, int64_t len, int64_t nout, int64_t n,
                             bool cosine, double sign)
{
    int64_t dims[2] = {len, nout};
    double *m = ir_malloc(sizeof *m * (size_t)(len * nout > 0 ? len * nout : 1));
    for (int64_t l = 0; m && l < len; l++)
        for (int64_t k = 0; k < nout; k++) {
            /* the sample index of row l and the bin of column k */
            int64_t bin = mode == DFT_FORWARD ? k : l, t = mode == DFT_FORWARD ? l : k;
            double v = 0;
            bool used = mode == DFT_IRFFT ? bin <= n / 2 : l < n;
            if (used) {
                double th = 2 * M_PI * (double)((bin * t) % n) / (double)n;
                v = cosine ? cos(th) : sin(th);
                if (mode != DFT_FORWARD) {
                    v /= (double)n;
                    if (!cosine) v = -v;
                }
                if (mode == DFT_IRFFT && bin != 0 && 2 * bin != n) v *= 2;
            }
            m[l * nout + k] = cosine ? v : sign * v;
        }
    if (!m) {
        onnx_error(cx, KILN_ERR_OUT_OF_MEMORY, "out of memory");
        return kiln_value_invalid();
    }
    return const_from(cx, dt, 2, dims, m);
}

static kiln_value matmul(onnx_ctx *cx, kiln_value a, kiln_value b) { return onnx_op2(cx, "MatMul", a, b); }

static kiln_value slice_last(onnx_ctx *cx, kiln_value x, int64_t axis, int64_t at)
{
    kiln_attrs *a = onnx_bag(cx);
    if (!a) return kiln_value_invalid();
    int64_t end = at + 1;
    kiln_attrs_ints(a, "starts", &at, 1);
    kiln_attrs_ints(a, "ends", &end, 1);
    kiln_attrs_ints(a, "axes", &axis, 1);
    kiln_value r = onnx_op(cx, "Slice", &x, 1, a);
    kiln_attrs_free(a);
    return onnx_op_ints(cx, "Squeeze", r, "axes", &axis, 1);
}

/* re and im (same shape) stacked on a new last axis. */
static kiln_value stack_complex(onnx_ctx *cx, kiln_value re, kiln_value im, int rank)
{
    int64_t ax = rank;
    kiln_value parts[2] = {onnx_op_ints(cx, "Unsqueeze", re, "axes", &ax, 1), kiln_value_invalid()};
    if (!kiln_value_ok(im)) return parts[0];
    parts[1] = onnx_op_ints(cx, "Unsqueeze", im, "axes", &ax, 1);
    kiln_attrs *a = onnx_bag(cx);
    if (!a) return kiln_value_invalid();
    kiln_attrs_int(a, "axis", rank);
    kiln_value r = onnx_op(cx, "Concat", parts, 2, a);
    kiln_attrs_free(a);
    return r;
}

/* The transform of a (+ ib, b may be invalid) along their last axis of
 * len samples: re and im (im invalid for irfft) of nout bins. */
static void dft_last(onnx_ctx *cx, kiln_dtype dt, int mode, kiln_value a, kiln_value b, int64_t len, int64_t nout,
                     int64_t n, kiln_value *re, kiln_value *im)
{
    kiln_value p = dft_matrix(cx, dt, mode, len, nout, n, true, 1);
    kiln_value q = dft_matrix(cx, dt, mode, len, nout, n, false, 1);
    *re = matmul(cx, a, p);
    if (kiln_value_ok(b)) *re = onnx_op2(cx, "Add", *re, matmul(cx, b, q));
    *im = kiln_value_invalid();
    if (mode == DFT_IRFFT) return;
    kiln_value nq = dft_matrix(cx, dt, mode, len, nout, n, false, -1);
    *im = matmul(cx, a, nq);
    if (kiln_value_ok(b)) *im = onnx_op2(cx, "Add", *im, matmul(cx, b, p));
}

/* The real and imaginary parts of a [..., 1 or 2] signal: Squeeze or two
 * Slices of the last axis. */
static int split_complex(onnx_ctx *cx, kiln_value x, const ir_type *t, kiln_value *a, kiln_value *b)
{
    char s[IR_TYPE_STR_MAX];
    int64_t c = t->rank ? t->dims[t->rank - 1] : 0;
    if (t->rank < 2 || (c != 1 && c != 2) || !ir_dtype_is_float(t->dtype))
        return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT,
                          "input %s must be a float signal of rank >= 2 whose last dim is 1 (real) or 2 (complex)",
                          ir_type_str(t, s, sizeof s));
    int64_t last = t->rank - 1;
    *b = kiln_value_invalid();
    if (c == 1) {
        *a = onnx_op_ints(cx, "Squeeze", x, "axes", &last, 1);
    } else {
        *a = slice_last(cx, x, last, 0);
        *b = slice_last(cx, x, last, 1);
    }
    return onnx_failed(cx) ? cx->st->code : KILN_OK;
}

ONNX_CONV(cv_dft)
{
    const ir_type *t = onnx_type(cx, in[0]);
    char s[IR_TYPE_STR_MAX];
    int64_t axis = 1;
    if (cx->opset >= 20) {
        axis = -2;
        if (onnx_has(in, nin, 2) && scalar_int(cx, in, nin, 2, "axis", -IR_MAX_RANK, IR_MAX_RANK, &axis))
            return cx->st->code;
    } else {
        axis = onnx_attr_int(n, "axis", 1);
    }
    int64_t given = axis;
    if (axis < 0) axis += t->rank;
    if (axis < 0 || axis >= t->rank - 1)
        return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "axis %lld is out of range for input %s (the last dim is "
                          "the complex one)", (long long)given, ir_type_str(t, s, sizeof s));
    kiln_value a, b;
    if (split_complex(cx, in[0], t, &a, &b)) return cx->st->code;
    int64_t len = t->dims[axis];
    if (len < 1 || len > SIGNAL_MAX_N)
        return onnx_error(cx, KILN_ERR_UNIMPLEMENTED,
                          "the transformed dim of %s must be static and in [1, %d] (kiln lowers DFT to a MatMul "
                          "with constant matrices)", ir_type_str(t, s, sizeof s), SIGNAL_MAX_N);
    bool inverse = onnx_attr_int(n, "inverse", 0) != 0, onesided = onnx_attr_int(n, "onesided", 0) != 0;
    int mode = !inverse ? DFT_FORWARD : onesided ? DFT_IRFFT : DFT_INVERSE;
    /* the transform size: dft_length, else the input's (a one-sided
     * spectrum of len bins comes from 2 (len - 1) samples) */
    int64_t nsz = mode == DFT_IRFFT ? 2 * (len - 1) : len;
    if (onnx_has(in, nin, 1) && scalar_int(cx, in, nin, 1, "dft_length", 1, SIGNAL_MAX_N, &nsz))
        return cx->st->code;
    if (nsz < 1)
        return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "a one-sided spectrum of 1 bin needs dft_length");
    int64_t bins = mode == DFT_FORWARD && onesided ? nsz / 2 + 1 : nsz;
    /* move the axis last, transform, move it back */
    int q = t->rank - 1;
    int64_t perm[IR_MAX_RANK], back[IR_MAX_RANK];
    for (int d = 0, k = 0; d < q; d++)
        if (d != axis) perm[k++] = d;
    perm[q - 1] = axis;
    bool moved = axis != q - 1;
    if (moved) {
        a = onnx_op_ints(cx, "Transpose", a, "perm", perm, q);
        if (kiln_value_ok(b)) b = onnx_op_ints(cx, "Transpose", b, "perm", perm, q);
    }
    kiln_value re, im;
    dft_last(cx, t->dtype, mode, a, b, len, bins, nsz, &re, &im);
    kiln_value y = stack_complex(cx, re, im, q);
    if (moved) {
        for (int d = 0; d < q; d++) back[perm[d]] = d;
        back[q] = q;
        y = onnx_op_ints(cx, "Transpose", y, "perm", back, q + 1);
    }
    return onnx_done(cx, out, y);
}

/* STFT (opset 17): frames of frame_length samples every frame_step,
 * gathered with constant indices, windowed, and transformed like DFT. */
ONNX_CONV(cv_stft)
{
    const ir_type *t = onnx_type(cx, in[0]);
    char s[IR_TYPE_STR_MAX];
    if (t->rank != 3)
        return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "signal %s must be [batch, length, 1 or 2]",
                          ir_type_str(t, s, sizeof s));
    int64_t step, flen = -1, siglen = t->dims[1];
    if (siglen < 1)
        return onnx_error(cx, KILN_ERR_UNIMPLEMENTED, "the signal length of %s must be static",
                          ir_type_str(t, s, sizeof s));
    if (scalar_int(cx, in, nin, 1, "frame_step", 1, INT32_MAX, &step)) return cx->st->code;
    bool has_window = onnx_has(in, nin, 2);
    if (has_window) {
        const ir_type *w = onnx_type(cx, in[2]);
        if (w->rank != 1 || w->dims[0] < 1)
            return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "window %s must be 1-D and static",
                              ir_type_str(w, s, sizeof s));
        flen = w->dims[0];
    }
    if (onnx_has(in, nin, 3)) {
        int64_t given;
        if (scalar_int(cx, in, nin, 3, "frame_length", 1, SIGNAL_MAX_N, &given)) return cx->st->code;
        if (flen >= 0 && given != flen)
            return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "frame_length %lld differs from the window's %lld",
                              (long long)given, (long long)flen);
        flen = given;
    }
    if (flen < 0) return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "needs a window or a frame_length");
    if (flen > siglen || flen > SIGNAL_MAX_N)
        return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "frame_length %lld does not fit signal %s",
                          (long long)flen, ir_type_str(t, s, sizeof s));
    int64_t frames = (siglen - flen) / step + 1;
    bool onesided = onnx_attr_int(n, "onesided", 1) != 0;
    int64_t bins = onesided ? flen / 2 + 1 : flen;
    kiln_value a, b;
    if (split_complex(cx, in[0], t, &a, &b)) return cx->st->code;
    /* [batch, length] -> [batch, frames, frame_length] */
    kiln_tensor *idx = kiln_tensor_new(KILN_I64, 2, (int64_t[]){frames, flen});
    if (!idx) return onnx_error(cx, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    for (int64_t f = 0; f < frames; f++)
        for (int64_t k = 0; k < flen; k++) ((int64_t *)idx->data)[f * flen + k] = f * step + k;
    kiln_value iv = onnx_const(cx, idx);
    kiln_tensor_free(idx);
    kiln_attrs *ga = onnx_bag(cx);
    if (!ga) return cx->st->code;
    kiln_attrs_int(ga, "axis", 1);
    a = onnx_op(cx, "Gather", (kiln_value[]){a, iv}, 2, ga);
    if (kiln_value_ok(b)) b = onnx_op(cx, "Gather", (kiln_value[]){b, iv}, 2, ga);
    kiln_attrs_free(ga);
    if (has_window) {
        kiln_value w = onnx_cast(cx, in[2], t->dtype);
        a = onnx_op2(cx, "Mul", a, w);
        if (kiln_value_ok(b)) b = onnx_op2(cx, "Mul", b, w);
    }
    kiln_value re, im;
    dft_last(cx, t->dtype, DFT_FORWARD, a, b, flen, bins, flen, &re, &im);
    return onnx_done(cx, out, stack_complex(cx, re, im, 3));
}
