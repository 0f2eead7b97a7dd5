/* onnx_window.c -- window ops the importer lowers to kiln's 2-D ones:
 * 3-D pooling, convolution and transposed convolution (5-D inputs, static
 * shapes), and dilated average pooling / LpPool sums of any rank. Each is
 * exact, not an approximation; the comments say why. */
#include <string.h>

#include "onnx_internal.h"

/* Window attributes in range before any of them sizes a tensor or a loop:
 * kernel, strides and dilations in [1, 2^31], pads in [0, 2^31]. */
static bool win_ok(onnx_ctx *cx, const onnx_win *w)
{
    const int64_t lim = (int64_t)1 << 31;
    for (int i = 0; i < w->sp; i++)
        if (w->k[i] < 1 || w->k[i] > lim || w->s[i] < 1 || w->s[i] > lim || w->d[i] < 1 ||
            w->d[i] > lim || w->pads[i] < 0 || w->pads[i] > lim || w->pads[w->sp + i] < 0 ||
            w->pads[w->sp + i] > lim) {
            onnx_error(cx, KILN_ERR_INVALID_ARGUMENT,
                       "axis %d: kernel %lld, stride %lld, dilation %lld or pads %lld, %lld out "
                       "of range",
                       i, (long long)w->k[i], (long long)w->s[i], (long long)w->d[i],
                       (long long)w->pads[i], (long long)w->pads[w->sp + i]);
            return false;
        }
    return true;
}

/* A constant of n elements (at most 2^28) of dtype dt and dims, zeroed;
 * NULL after recording the error. */
static kiln_tensor *const_buffer(onnx_ctx *cx, kiln_dtype dt, int rank, const int64_t *dims)
{
    int64_t n = 1;
    for (int i = 0; i < rank; i++) {
        if (dims[i] < 0 || (dims[i] && n > ((int64_t)1 << 28) / dims[i])) {
            onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "a helper constant would be too large");
            return NULL;
        }
        n *= dims[i];
    }
    kiln_tensor *t = kiln_tensor_new(dt, rank, dims);
    if (!t) onnx_error(cx, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    return t;
}

/* x[start:end:step] along one axis. */
static kiln_value slice_axis(onnx_ctx *cx, kiln_value x, int64_t axis, int64_t start, int64_t end,
                             int64_t step)
{
    kiln_attrs *a = onnx_bag(cx);
    if (!a) return kiln_value_invalid();
    kiln_attrs_ints(a, "starts", &start, 1);
    kiln_attrs_ints(a, "ends", &end, 1);
    kiln_attrs_ints(a, "axes", &axis, 1);
    kiln_attrs_ints(a, "steps", &step, 1);
    kiln_value r = onnx_op(cx, "Slice", &x, 1, a);
    kiln_attrs_free(a);
    return r;
}

/* Swaps axes 1 and 2 of a rank-5 value. */
static kiln_value swap12(onnx_ctx *cx, kiln_value x)
{
    static const int64_t perm[5] = {0, 2, 1, 3, 4};
    return onnx_op_ints(cx, "Transpose", x, "perm", perm, 5);
}

/* One 2-D pool of x over window axes (a, b) of w (b < 0: a 1-wide axis). */
static kiln_value pool2d_of(onnx_ctx *cx, const char *op, kiln_value x, const onnx_win *w, int a,
                            int b, int64_t ceil_mode, int64_t count_include_pad)
{
    bool max = !strcmp(op, "MaxPool2D");
    int64_t k[2] = {w->k[a], b < 0 ? 1 : w->k[b]}, s[2] = {w->s[a], b < 0 ? 1 : w->s[b]},
            d[2] = {w->d[a], b < 0 ? 1 : w->d[b]},
            p[4] = {w->pads[a], b < 0 ? 0 : w->pads[b], w->pads[3 + a], b < 0 ? 0 : w->pads[3 + b]};
    kiln_attrs *at = onnx_bag(cx);
    if (!at) return kiln_value_invalid();
    kiln_attrs_ints(at, "kernel_shape", k, 2);
    kiln_attrs_ints(at, "strides", s, 2);
    kiln_attrs_ints(at, "pads", p, 4);
    if (max) kiln_attrs_ints(at, "dilations", d, 2);
    kiln_attrs_int(at, "ceil_mode", ceil_mode);
    if (!max) kiln_attrs_int(at, "count_include_pad", count_include_pad);
    kiln_value r = onnx_op(cx, op, &x, 1, at);
    kiln_attrs_free(at);
    return r;
}

/* A 3-D max or average pool of x (static [N, C, D, H, W]) as two 2-D
 * pools: over (H, W) with D folded into the channels, then over D with the
 * H*W plane as the width. Both are separable over a box window: a maximum
 * of maxima, and an average whose count is the product of the per-axis
 * counts (pads, count_include_pad and ceil_mode are per axis). */
kiln_value onnx_pool3d(onnx_ctx *cx, const char *op, kiln_value x, const onnx_win *w,
                       int64_t ceil_mode, int64_t count_include_pad)
{
    if (!win_ok(cx, w)) return kiln_value_invalid();
    const ir_type *t = onnx_type(cx, x);
    int64_t nb = t->dims[0], c = t->dims[1], d = t->dims[2];
    int64_t s1[4] = {nb, c * d, t->dims[3], t->dims[4]};
    kiln_value r =
        pool2d_of(cx, op, onnx_reshape(cx, x, s1, 4), w, 1, 2, ceil_mode, count_include_pad);
    if (onnx_failed(cx)) return kiln_value_invalid();
    int64_t h1 = onnx_type(cx, r)->dims[2], w1 = onnx_type(cx, r)->dims[3];
    int64_t s2[4] = {nb, c, d, h1 * w1};
    r = pool2d_of(cx, op, onnx_reshape(cx, r, s2, 4), w, 0, -1, ceil_mode, count_include_pad);
    if (onnx_failed(cx)) return kiln_value_invalid();
    int64_t s3[5] = {nb, c, onnx_type(cx, r)->dims[2], h1, w1};
    return onnx_reshape(cx, r, s3, 5);
}

/* A 3-D convolution of x (static [N, C, D, H, W]) with weights [M, C/g,
 * KD, KH, KW] as KD 2-D convolutions: for each depth tap j the depth
 * slices j*dil, j*dil + stride, ... of the padded input, folded into the
 * batch, convolved with the weights' slice j and summed; then the bias. */
kiln_value onnx_conv3d(onnx_ctx *cx, const Onnx__NodeProto *n, const kiln_value *in, int nin,
                       const onnx_win *w)
{
    if (!win_ok(cx, w)) return kiln_value_invalid();
    const ir_type *t = onnx_type(cx, in[0]), *tw = onnx_type(cx, in[1]);
    char b1[IR_TYPE_STR_MAX], b2[IR_TYPE_STR_MAX];
    if (!ir_type_is_static(tw) || tw->rank != 5) {
        onnx_error(cx, KILN_ERR_UNIMPLEMENTED, "3-D weights %s must have a static shape",
                   ir_type_str(tw, b1, sizeof b1));
        return kiln_value_invalid();
    }
    int64_t nb = t->dims[0], c = t->dims[1], m = tw->dims[0];
    int64_t ext = w->d[0] * (w->k[0] - 1) + 1, dp = t->dims[2] + w->pads[0] + w->pads[3];
    if (w->k[0] != tw->dims[2] || dp < ext) {
        onnx_error(cx, KILN_ERR_INVALID_ARGUMENT,
                   "the depth window (%lld) does not fit the padded input %s (weights %s)",
                   (long long)ext, ir_type_str(t, b1, sizeof b1), ir_type_str(tw, b2, sizeof b2));
        return kiln_value_invalid();
    }
    int64_t dout = (dp - ext) / w->s[0] + 1;
    kiln_value x = in[0];
    if (w->pads[0] || w->pads[3]) {
        int64_t p[10] = {0, 0, w->pads[0], 0, 0, 0, 0, w->pads[3], 0, 0};
        x = onnx_op_ints(cx, "Pad", x, "pads", p, 10);
    }
    kiln_value acc = kiln_value_invalid();
    int64_t xs[4] = {nb * dout, c, t->dims[3], t->dims[4]},
            ws[4] = {m, tw->dims[1], tw->dims[3], tw->dims[4]};
    int64_t s[2] = {w->s[1], w->s[2]}, d[2] = {w->d[1], w->d[2]},
            p[4] = {w->pads[1], w->pads[2], w->pads[4], w->pads[5]};
    for (int64_t j = 0; j < w->k[0] && !onnx_failed(cx); j++) {
        int64_t start = j * w->d[0];
        kiln_value xj = slice_axis(cx, x, 2, start, start + (dout - 1) * w->s[0] + 1, w->s[0]);
        kiln_value args[2] = {onnx_reshape(cx, swap12(cx, xj), xs, 4),
                              onnx_reshape(cx, slice_axis(cx, in[1], 2, j, j + 1, 1), ws, 4)};
        kiln_attrs *a = onnx_bag(cx);
        if (!a) return kiln_value_invalid();
        kiln_attrs_ints(a, "strides", s, 2);
        kiln_attrs_ints(a, "pads", p, 4);
        kiln_attrs_ints(a, "dilations", d, 2);
        kiln_attrs_int(a, "group", onnx_attr_int(n, "group", 1));
        kiln_value y = onnx_op(cx, "Conv2D", args, 2, a);
        kiln_attrs_free(a);
        acc = j ? onnx_op2(cx, "Add", acc, y) : y;
    }
    if (onnx_has(in, nin, 2)) {
        int64_t bs[4] = {1, m, 1, 1};
        acc = onnx_op2(cx, "Add", acc, onnx_reshape(cx, in[2], bs, 4));
    }
    if (onnx_failed(cx)) return kiln_value_invalid();
    const ir_type *ty = onnx_type(cx, acc);
    int64_t ys[5] = {nb, dout, m, ty->dims[2], ty->dims[3]};
    return swap12(cx, onnx_reshape(cx, acc, ys, 5));
}

/* The output length of one window axis (as AveragePool2D infers it) and
 * the extra end padding that makes a floor-mode window op reach it. */
static int64_t axis_out(int64_t len, const onnx_win *w, int i, bool ceil_mode, int64_t *extra)
{
    int64_t ext = w->d[i] * (w->k[i] - 1) + 1, padded = len + w->pads[i] + w->pads[w->sp + i];
    int64_t s = w->s[i], out = ceil_mode ? (padded - ext + s - 1) / s + 1 : (padded - ext) / s + 1;
    if (ceil_mode && (out - 1) * s >= len + w->pads[i]) out--;
    *extra = (out - 1) * s + ext - padded;
    if (*extra < 0) *extra = 0;
    return out;
}

/* Sums over 2-D windows of x [N, ch, A, B]: a depthwise Conv2D with ones. */
static kiln_value conv_sum(onnx_ctx *cx, kiln_value x, const int64_t *k, const int64_t *s,
                           const int64_t *d, const int64_t *p)
{
    const ir_type *t = onnx_type(cx, x);
    int64_t ch = t->dims[1], wd[4] = {ch, 1, k[0], k[1]};
    kiln_tensor *ones = const_buffer(cx, t->dtype, 4, wd);
    if (!ones) return kiln_value_invalid();
    for (size_t i = 0; i < (size_t)(ch * k[0] * k[1]); i++)
        ir_store_f64(t->dtype, ones->data, i, 1);
    kiln_value args[2] = {x, onnx_const(cx, ones)};
    kiln_tensor_free(ones);
    kiln_attrs *a = onnx_bag(cx);
    if (!a) return kiln_value_invalid();
    kiln_attrs_ints(a, "strides", s, 2);
    kiln_attrs_ints(a, "pads", p, 4);
    kiln_attrs_ints(a, "dilations", d, 2);
    kiln_attrs_int(a, "group", ch);
    kiln_value r = onnx_op(cx, "Conv2D", args, 2, a);
    kiln_attrs_free(a);
    return r;
}

/* Sums (avg 0) or averages over the windows of w (any dilation, 1-3
 * spatial dims, static x): window sums by depthwise convolutions with ones
 * (3-D: over (H, W), then over D), divided by a constant count: the taps
 * inside the input (avg 1) or inside input and pads (avg 2), per axis and
 * multiplied, as a box's count is. */
kiln_value onnx_window_sum(onnx_ctx *cx, kiln_value x, const onnx_win *w, bool ceil_mode, int avg)
{
    if (!win_ok(cx, w)) return kiln_value_invalid();
    const ir_type *t = onnx_type(cx, x);
    int sp = w->sp;
    int64_t out[3], extra[3], len[3], nb = t->dims[0], c = t->dims[1];
    for (int i = 0; i < sp; i++) {
        len[i] = t->dims[2 + i];
        out[i] = axis_out(len[i], w, i, ceil_mode, &extra[i]);
        if (out[i] < 1) {
            char b[IR_TYPE_STR_MAX];
            onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "the window does not fit input %s",
                       ir_type_str(t, b, sizeof b));
            return kiln_value_invalid();
        }
    }
    /* the last two axes (a 1-D window gets a leading axis of 1) */
    int a0 = sp >= 2 ? sp - 2 : -1, a1 = sp - 1;
    int64_t k[2] = {a0 < 0 ? 1 : w->k[a0], w->k[a1]}, s[2] = {a0 < 0 ? 1 : w->s[a0], w->s[a1]},
            d[2] = {a0 < 0 ? 1 : w->d[a0], w->d[a1]},
            p[4] = {a0 < 0 ? 0 : w->pads[a0], w->pads[a1],
                    a0 < 0 ? 0 : w->pads[sp + a0] + extra[a0], w->pads[sp + a1] + extra[a1]};
    int64_t s1[4] = {nb, c * (sp == 3 ? len[0] : 1), sp >= 2 ? len[a0] : 1, len[a1]};
    kiln_value r = conv_sum(cx, onnx_reshape(cx, x, s1, 4), k, s, d, p);
    if (sp == 3) {
        int64_t s2[4] = {nb, c, len[0], out[1] * out[2]}, k2[2] = {w->k[0], 1},
                st2[2] = {w->s[0], 1}, d2[2] = {w->d[0], 1},
                p2[4] = {w->pads[0], 0, w->pads[3] + extra[0], 0};
        r = conv_sum(cx, onnx_reshape(cx, r, s2, 4), k2, st2, d2, p2);
    }
    int64_t yd[5] = {nb, c, out[0], out[1], out[2]};
    r = onnx_reshape(cx, r, yd, 2 + sp);
    if (!avg || onnx_failed(cx)) return r;
    int64_t cd[5] = {1, 1, out[0], out[1], out[2]}, total = 1;
    for (int i = 0; i < sp; i++) total *= out[i];
    kiln_tensor *cnt = const_buffer(cx, t->dtype, 2 + sp, cd);
    if (!cnt) return kiln_value_invalid();
    for (int64_t o = 0; o < total; o++) {
        int64_t rest = o, n = 1;
        for (int i = sp - 1; i >= 0; i--) {
            int64_t oi = rest % out[i], m = 0;
            rest /= out[i];
            int64_t lo = avg == 2 ? -w->pads[i] : 0,
                    hi = avg == 2 ? len[i] + w->pads[sp + i] : len[i];
            for (int64_t j = 0; j < w->k[i]; j++) {
                int64_t at = oi * w->s[i] - w->pads[i] + j * w->d[i];
                if (at >= lo && at < hi) m++;
            }
            n *= m;
        }
        ir_store_f64(t->dtype, cnt->data, (size_t)o, (double)n);
    }
    kiln_value cv = onnx_const(cx, cnt);
    kiln_tensor_free(cnt);
    return onnx_op2(cx, "Div", r, cv);
}

/* A 3-D transposed convolution of x (static [N, C, D, H, W]) with weights
 * [C, M/g, KD, KH, KW] as two ConvTranspose2D: over (H, W) with D folded
 * into the batch and the depth taps into the output channels (the weights
 * reshaped to [C, M/g*KD, KH, KW], so channel m*KD + j holds tap j of
 * output m), then over D with one-hot weights [M*KD, 1, KD, 1] in M
 * groups, which places tap j of input depth d at output depth
 * d*stride + j*dilation - pad. */
kiln_value onnx_conv_transpose3d(onnx_ctx *cx, const Onnx__NodeProto *n, const kiln_value *in,
                                 int nin, const onnx_win *w, const int64_t *outpad)
{
    if (!win_ok(cx, w)) return kiln_value_invalid();
    const ir_type *t = onnx_type(cx, in[0]), *tw = onnx_type(cx, in[1]);
    char b1[IR_TYPE_STR_MAX];
    if (!ir_type_is_static(tw) || tw->rank != 5 || tw->dims[2] != w->k[0]) {
        onnx_error(cx, KILN_ERR_UNIMPLEMENTED, "3-D weights %s must have a static shape",
                   ir_type_str(tw, b1, sizeof b1));
        return kiln_value_invalid();
    }
    int64_t group = onnx_attr_int(n, "group", 1);
    int64_t nb = t->dims[0], c = t->dims[1], d = t->dims[2], kd = w->k[0];
    int64_t m = tw->dims[1] * group;
    int64_t xs[4] = {nb * d, c, t->dims[3], t->dims[4]},
            ws[4] = {tw->dims[0], tw->dims[1] * kd, tw->dims[3], tw->dims[4]};
    kiln_value args[2] = {onnx_reshape(cx, swap12(cx, in[0]), xs, 4),
                          onnx_reshape(cx, in[1], ws, 4)};
    kiln_attrs *a = onnx_bag(cx);
    if (!a) return kiln_value_invalid();
    int64_t s[2] = {w->s[1], w->s[2]}, dl[2] = {w->d[1], w->d[2]},
            p[4] = {w->pads[1], w->pads[2], w->pads[4], w->pads[5]}, op[2] = {outpad[1], outpad[2]};
    kiln_attrs_ints(a, "strides", s, 2);
    kiln_attrs_ints(a, "pads", p, 4);
    kiln_attrs_ints(a, "dilations", dl, 2);
    kiln_attrs_ints(a, "output_padding", op, 2);
    kiln_attrs_int(a, "group", group);
    kiln_value z = onnx_op(cx, "ConvTranspose2D", args, 2, a);
    kiln_attrs_free(a);
    if (onnx_failed(cx)) return kiln_value_invalid();
    int64_t h1 = onnx_type(cx, z)->dims[2], w1 = onnx_type(cx, z)->dims[3];
    static const int64_t perm[4] = {0, 2, 1, 3};
    int64_t zs[4] = {nb, d, m * kd, h1 * w1};
    z = onnx_op_ints(cx, "Transpose", onnx_reshape(cx, z, zs, 4), "perm", perm, 4);
    int64_t od[4] = {m * kd, 1, kd, 1};
    kiln_tensor *oh = const_buffer(cx, t->dtype, 4, od);
    if (!oh) return kiln_value_invalid();
    for (int64_t i = 0; i < m * kd; i++)
        ir_store_f64(t->dtype, oh->data, (size_t)(i * kd + i % kd), 1);
    kiln_value args2[2] = {z, onnx_const(cx, oh)};
    kiln_tensor_free(oh);
    a = onnx_bag(cx);
    if (!a) return kiln_value_invalid();
    int64_t s2[2] = {w->s[0], 1}, d2[2] = {w->d[0], 1}, p2[4] = {w->pads[0], 0, w->pads[3], 0},
            op2[2] = {outpad[0], 0};
    kiln_attrs_ints(a, "strides", s2, 2);
    kiln_attrs_ints(a, "pads", p2, 4);
    kiln_attrs_ints(a, "dilations", d2, 2);
    kiln_attrs_ints(a, "output_padding", op2, 2);
    kiln_attrs_int(a, "group", m);
    kiln_value y = onnx_op(cx, "ConvTranspose2D", args2, 2, a);
    kiln_attrs_free(a);
    if (onnx_failed(cx)) return kiln_value_invalid();
    int64_t ys[5] = {nb, m, onnx_type(cx, y)->dims[2], h1, w1};
    y = onnx_reshape(cx, y, ys, 5);
    if (onnx_has(in, nin, 2)) {
        int64_t bs[5] = {1, m, 1, 1, 1};
        y = onnx_op2(cx, "Add", y, onnx_reshape(cx, in[2], bs, 5));
    }
    return y;
}
