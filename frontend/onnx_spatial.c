/* onnx_spatial.c -- ONNX converters for spatial sampling: GridSample
 * (kiln's GridSample op) and AffineGrid (a constant base grid times the
 * transposed theta, since theta's shape and the output size are static). */
#include <string.h>

#include "onnx_internal.h"

/* GridSample 16-19 (4-D only; bilinear/nearest/bicubic) and 20+ (N-D;
 * linear/nearest/cubic). */
ONNX_CONV(cv_grid_sample)
{
    char mbuf[32], pbuf[32];
    const char *mode =
        onnx_attr_string(n, "mode", cx->opset < 20 ? "bilinear" : "linear", mbuf, sizeof mbuf);
    const char *pad = onnx_attr_string(n, "padding_mode", "zeros", pbuf, sizeof pbuf);
    if (!onnx_has(in, nin, 1))
        return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "input 1 (grid) is missing");
    if (strcmp(mode, "bilinear") == 0 || strcmp(mode, "linear") == 0)
        mode = "linear";
    else if (strcmp(mode, "bicubic") == 0 || strcmp(mode, "cubic") == 0)
        mode = "cubic";
    else if (strcmp(mode, "nearest") != 0)
        return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT,
                          "mode '%s' is not one of linear (bilinear), nearest, cubic (bicubic)",
                          mode);
    const ir_type *xt = onnx_type(cx, in[0]);
    if (cx->opset < 20 && xt->rank != 4) {
        char buf[IR_TYPE_STR_MAX];
        return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT,
                          "input %s: before opset 20 GridSample takes 4-D inputs only",
                          ir_type_str(xt, buf, sizeof buf));
    }
    kiln_attrs *a = onnx_bag(cx);
    if (!a) return cx->st->code;
    kiln_attrs_string(a, "mode", mode);
    kiln_attrs_string(a, "padding_mode", pad);
    kiln_attrs_int(a, "align_corners", onnx_attr_int(n, "align_corners", 0) != 0);
    kiln_value r = onnx_op(cx, "GridSample", in, 2, a);
    kiln_attrs_free(a);
    return onnx_done(cx, out, r);
}

/* AffineGrid(theta [N, k, k+1], size [N, C, D1..Dk]) for k = 2, 3: the
 * grid [N, D1..Dk, k] = base [D1*..*Dk, k+1] x theta^T, where a base row is
 * the normalized coordinates (last spatial dim first) and a 1. */
ONNX_CONV(cv_affine_grid)
{
    int64_t size[5];
    int ns;
    if (!onnx_has(in, nin, 1))
        return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "input 1 (size) is missing");
    if (onnx_input_ints(cx, in, nin, 1, "size", size, 5, &ns)) return cx->st->code;
    const ir_type *th = onnx_type(cx, in[0]);
    char buf[IR_TYPE_STR_MAX];
    if (ns != 4 && ns != 5)
        return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT,
                          "size has %d values; it must be [N, C, H, W] or [N, C, D, H, W]", ns);
    int k = ns - 2;
    if (size[0] < 0 || size[0] > ((int64_t)1 << 31))
        return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "size[0] = %lld is not a batch size",
                          (long long)size[0]);
    if (!ir_dtype_is_float(th->dtype) || th->rank != 3 || th->dims[1] != k || th->dims[2] != k + 1)
        return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT,
                          "theta is %s; it must be a float [N, %d, %d] for a %d-D size",
                          ir_type_str(th, buf, sizeof buf), k, k + 1, k);
    if (th->dims[0] >= 0 && th->dims[0] != size[0])
        return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT,
                          "theta's batch %lld differs from size's N = %lld", (long long)th->dims[0],
                          (long long)size[0]);
    int64_t pts = 1;
    for (int d = 0; d < k; d++) {
        if (size[2 + d] < 1 || size[2 + d] > ((int64_t)1 << 24))
            return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "size[%d] = %lld is out of range",
                              2 + d, (long long)size[2 + d]);
        pts *= size[2 + d];
        if (pts > ((int64_t)1 << 26))
            return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "the grid is too large");
    }
    bool align = onnx_attr_int(n, "align_corners", 0) != 0;
    int64_t bdims[2] = {pts, k + 1};
    kiln_tensor *b = kiln_tensor_new(th->dtype, 2, bdims);
    if (!b) return onnx_error(cx, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    for (int64_t p = 0; p < pts; p++) {
        int64_t rest = p;
        for (int d = k - 1; d >= 0; d--) {
            int64_t len = size[2 + d], i = rest % len;
            rest /= len;
            double v = align ? (len > 1 ? -1 + 2.0 * (double)i / (double)(len - 1) : -1)
                             : -1 + (2.0 * (double)i + 1) / (double)len;
            ir_store_f64(th->dtype, b->data, (size_t)(p * (k + 1) + (k - 1 - d)), v);
        }
        ir_store_f64(th->dtype, b->data, (size_t)(p * (k + 1) + k), 1);
    }
    kiln_value base = onnx_const(cx, b);
    kiln_tensor_free(b);
    int64_t perm[3] = {0, 2, 1};
    kiln_value tt = onnx_op_ints(cx, "Transpose", in[0], "perm", perm, 3);
    kiln_value g = onnx_op2(cx, "MatMul", base, tt);
    int64_t odims[5] = {size[0]};
    for (int d = 0; d < k; d++) odims[1 + d] = size[2 + d];
    odims[1 + k] = k;
    if (onnx_failed(cx)) return cx->st->code;
    return onnx_done(cx, out, onnx_reshape(cx, g, odims, k + 2));
}

/* CenterCropPad (opset 18): each axis cropped or zero-padded to its size
 * in `shape` around the centre (the extra element at the end), as one
 * Pad with negative pads for the crops. */
ONNX_CONV(cv_center_crop_pad)
{
    const ir_type *t = onnx_type(cx, in[0]);
    char buf[IR_TYPE_STR_MAX];
    int64_t shape[IR_MAX_RANK], axes[IR_MAX_RANK], pads[2 * IR_MAX_RANK] = {0};
    int ns, na;
    if (!onnx_has(in, nin, 1))
        return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "input 1 (shape) is missing");
    if (onnx_input_ints(cx, in, nin, 1, "shape", shape, IR_MAX_RANK, &ns)) return cx->st->code;
    const int64_t *av = onnx_attr_ints(n, "axes", &na);
    if (na < 0) {
        na = t->rank;
        for (int i = 0; i < na; i++) axes[i] = i;
    } else {
        if (na > IR_MAX_RANK)
            return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "axes has %d values", na);
        memcpy(axes, av, sizeof(int64_t) * (size_t)na);
    }
    if (ns != na)
        return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT,
                          "shape has %d values for %d axes of input %s", ns, na,
                          ir_type_str(t, buf, sizeof buf));
    for (int i = 0; i < na; i++) {
        int a;
        if (!ir_norm_axis(axes[i], t->rank, &a))
            return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "axis %lld is out of range for %s",
                              (long long)axes[i], ir_type_str(t, buf, sizeof buf));
        int64_t dim = t->dims[a];
        if (dim < 0)
            return onnx_error(cx, KILN_ERR_UNIMPLEMENTED, "input %s: axis %d must be static",
                              ir_type_str(t, buf, sizeof buf), a);
        if (shape[i] < 0 || shape[i] > ((int64_t)1 << 40))
            return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "shape[%d] = %lld is not a size", i,
                              (long long)shape[i]);
        int64_t diff = shape[i] - dim; /* > 0: pad, < 0: crop */
        int64_t begin = diff >= 0 ? diff / 2 : -((-diff) / 2);
        pads[a] = begin;
        pads[t->rank + a] = diff - begin;
    }
    return onnx_done(cx, out, onnx_op_ints(cx, "Pad", in[0], "pads", pads, 2 * t->rank));
}

/* Col2Im (opset 18), 2-D images: the columns [N, C*kh*kw, L] summed back
 * into [N, C, H, W] as a grouped ConvTranspose2D of the columns (viewed as
 * [N, C*kh*kw, OH, OW]) with one-hot weights [C*kh*kw, 1, kh, kw]:
 * column channel c*kh*kw + j adds its value at block offset j. */
ONNX_CONV(cv_col2im)
{
    int64_t img[3], blk[3];
    int ni, nbk;
    char buf[IR_TYPE_STR_MAX];
    if (!onnx_has(in, nin, 1) || !onnx_has(in, nin, 2))
        return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT,
                          "image_shape and block_shape are required");
    if (onnx_input_ints(cx, in, nin, 1, "image_shape", img, 3, &ni) ||
        onnx_input_ints(cx, in, nin, 2, "block_shape", blk, 3, &nbk))
        return cx->st->code;
    const ir_type *t = onnx_type(cx, in[0]);
    if (ni != 2 || nbk != 2)
        return onnx_error(cx, KILN_ERR_UNIMPLEMENTED,
                          "%d-D image_shape: kiln supports 2-D images only", ni);
    if (t->rank != 3 || !ir_type_is_static(t))
        return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT,
                          "input %s must be a static [N, C*block, L]",
                          ir_type_str(t, buf, sizeof buf));
    int64_t s[2] = {1, 1}, d[2] = {1, 1}, p[4] = {0, 0, 0, 0}, o[2], outpad[2];
    int c;
    const int64_t *v = onnx_attr_ints(n, "strides", &c);
    if (c == 2) memcpy(s, v, sizeof s);
    v = onnx_attr_ints(n, "dilations", &c);
    if (c == 2) memcpy(d, v, sizeof d);
    v = onnx_attr_ints(n, "pads", &c);
    if (c == 4) memcpy(p, v, sizeof p);
    int64_t kk = 1;
    for (int i = 0; i < 2; i++) {
        const int64_t lim = (int64_t)1 << 31;
        if (blk[i] < 1 || blk[i] > 4096 || s[i] < 1 || s[i] > lim || d[i] < 1 || d[i] > lim ||
            img[i] < 1 || img[i] > lim || p[i] < 0 || p[i] > lim || p[2 + i] < 0 || p[2 + i] > lim)
            return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT,
                              "block_shape, strides, dilations, pads or image_shape out of range");
        int64_t ext = d[i] * (blk[i] - 1) + 1, padded = img[i] + p[i] + p[2 + i];
        if (padded < ext)
            return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "the block does not fit the image");
        o[i] = (padded - ext) / s[i] + 1;
        outpad[i] = (padded - ext) % s[i];
        kk *= blk[i];
    }
    if (t->dims[1] > ((int64_t)1 << 28) / kk)
        return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "input %s: too many channels",
                          ir_type_str(t, buf, sizeof buf));
    if (t->dims[1] % kk || t->dims[2] % o[0] || t->dims[2] / o[0] != o[1])
        return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT,
                          "input %s does not hold C*%lld channels of %lld x %lld blocks",
                          ir_type_str(t, buf, sizeof buf), (long long)kk, (long long)o[0],
                          (long long)o[1]);
    int64_t ch = t->dims[1] / kk, wd[4] = {ch * kk, 1, blk[0], blk[1]};
    kiln_tensor *wt = kiln_tensor_new(t->dtype, 4, wd);
    if (!wt) return onnx_error(cx, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    for (int64_t i = 0; i < ch * kk; i++)
        ir_store_f64(t->dtype, wt->data, (size_t)(i * kk + i % kk), 1);
    int64_t xd[4] = {t->dims[0], ch * kk, o[0], o[1]};
    kiln_value args[2] = {onnx_reshape(cx, in[0], xd, 4), onnx_const(cx, wt)};
    kiln_tensor_free(wt);
    kiln_attrs *a = onnx_bag(cx);
    if (!a) return cx->st->code;
    kiln_attrs_ints(a, "strides", s, 2);
    kiln_attrs_ints(a, "pads", p, 4);
    kiln_attrs_ints(a, "dilations", d, 2);
    kiln_attrs_ints(a, "output_padding", outpad, 2);
    kiln_attrs_int(a, "group", ch);
    kiln_value r = onnx_op(cx, "ConvTranspose2D", args, 2, a);
    kiln_attrs_free(a);
    return onnx_done(cx, out, r);
}
