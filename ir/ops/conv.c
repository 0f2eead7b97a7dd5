/* conv.c -- 2-D convolution and transposed convolution over NCHW tensors
 * (weights OIHW for Conv2D, IOHW for ConvTranspose2D), with strides,
 * asymmetric pads (ONNX order top, left, bottom, right), dilations and
 * groups. Floats only; the reference kernels accumulate in double. */
#include <stdint.h>
#include <string.h>

#include "../ir.h"

/* ---- attributes shared by both ops ---- */

/* The validated geometry of a convolution. */
typedef struct {
    int64_t stride[2], dilation[2], pad[4], outpad[2], group;
} conv_geom;

/* Reads the INTS attribute `name` into v (n values) or leaves the defaults
 * in v when it is unset; checks the length and that every value is >= lo.
 * Values are capped at 2^31 so that the size arithmetic cannot overflow. */
static int read_ints(ir_infer_ctx *cx, const char *name, int64_t *v, int n, int64_t lo)
{
    const ir_attr *a = ir_node_attr(cx->node, name);
    if (!a || a->kind == IR_ATTR_NONE) return 0;
    if (a->n != n)
        return ir_infer_error(cx, "attribute '%s' must have %d values, got %d", name, n, a->n);
    for (int i = 0; i < n; i++) {
        if (a->u.ints[i] < lo || a->u.ints[i] > ((int64_t)1 << 31))
            return ir_infer_error(cx, "attribute '%s'[%d] is %lld; it must be in [%lld, 2^31]", name,
                                  i, (long long)a->u.ints[i], (long long)lo);
        v[i] = a->u.ints[i];
    }
    return 0;
}

static int read_geom(ir_infer_ctx *cx, conv_geom *g, bool transpose)
{
    memset(g, 0, sizeof *g);
    g->stride[0] = g->stride[1] = 1;
    g->dilation[0] = g->dilation[1] = 1;
    if (read_ints(cx, "strides", g->stride, 2, 1) || read_ints(cx, "dilations", g->dilation, 2, 1) ||
        read_ints(cx, "pads", g->pad, 4, 0))
        return -1;
    g->group = ir_node_int(cx->node, "group");
    if (g->group < 1) return ir_infer_error(cx, "group is %lld; it must be >= 1", (long long)g->group);
    if (transpose) {
        if (read_ints(cx, "output_padding", g->outpad, 2, 0)) return -1;
        for (int i = 0; i < 2; i++)
            if (g->outpad[i] >= g->stride[i] && g->outpad[i] >= g->dilation[i])
                return ir_infer_error(cx,
                                      "output_padding[%d] is %lld; it must be smaller than the "
                                      "stride (%lld) or the dilation (%lld)",
                                      i, (long long)g->outpad[i], (long long)g->stride[i],
                                      (long long)g->dilation[i]);
    }
    return 0;
}

/* The kernel's extent along one axis, dilation * (k - 1) + 1, or -1 when it
 * does not fit in 62 bits. k >= 1. */
static int64_t kernel_extent(int64_t k, int64_t dilation)
{
    if (k - 1 > (((int64_t)1 << 62) - 1) / dilation) return -1;
    return dilation * (k - 1) + 1;
}

static const char *const axis_name[2] = {"height", "width"};

/* Shared input checks: ranks, dtypes, the bias's rank. */
static int check_inputs(ir_infer_ctx *cx)
{
    static const char *const what[3] = {"input", "weight", "bias"};
    static const int want_rank[3] = {4, 4, 1};
    for (int i = 0; i < cx->ninputs; i++)
        if (cx->in[i].rank != want_rank[i])
            return ir_infer_error(cx, "%s (input %d) must have rank %d, got rank %d", what[i], i,
                                  want_rank[i], cx->in[i].rank);
    if (ir_infer_require_float(cx, 0) || ir_infer_same_dtype(cx, 0, cx->ninputs - 1)) return -1;
    for (int i = 0; i < 2; i++)
        if (cx->in[1].dims[2 + i] == 0)
            return ir_infer_error(cx, "the kernel %s is 0; it must be >= 1", axis_name[i]);
    return 0;
}

/* ---- Conv2D ---- */

static const ir_attrdef conv_attrs[] = {
    IR_ATTR_OPT("strides", IR_ATTR_INTS),
    IR_ATTR_OPT("pads", IR_ATTR_INTS),
    IR_ATTR_OPT("dilations", IR_ATTR_INTS),
    IR_ATTR_I("group", 1),
};

static int infer_conv(ir_infer_ctx *cx)
{
    conv_geom g;
    if (check_inputs(cx) || read_geom(cx, &g, false)) return -1;
    const ir_type *x = &cx->in[0], *w = &cx->in[1];
    int64_t C = x->dims[1], M = w->dims[0], Cg = w->dims[1];
    if (C >= 0 && C % g.group != 0)
        return ir_infer_error(cx, "input channels (%lld) are not divisible by group %lld",
                              (long long)C, (long long)g.group);
    if (M >= 0 && M % g.group != 0)
        return ir_infer_error(cx, "output channels (%lld) are not divisible by group %lld",
                              (long long)M, (long long)g.group);
    if (C >= 0 && Cg >= 0 && Cg != C / g.group)
        return ir_infer_error(cx,
                              "weight has %lld input channels per group; expected input channels "
                              "/ group = %lld / %lld = %lld",
                              (long long)Cg, (long long)C, (long long)g.group,
                              (long long)(C / g.group));
    if (cx->ninputs == 3 && M >= 0 && cx->in[2].dims[0] >= 0 && cx->in[2].dims[0] != M)
        return ir_infer_error(cx, "bias has %lld elements; expected the %lld output channels",
                              (long long)cx->in[2].dims[0], (long long)M);
    ir_type *y = &cx->out[0];
    y->dtype = x->dtype;
    y->rank = 4;
    y->dims[0] = x->dims[0];
    y->dims[1] = M;
    for (int i = 0; i < 2; i++) {
        int64_t in = x->dims[2 + i], k = w->dims[2 + i];
        y->dims[2 + i] = -1;
        if (k < 0) continue;
        int64_t ext = kernel_extent(k, g.dilation[i]);
        if (ext < 0) return ir_infer_error(cx, "the dilated kernel %s is too large", axis_name[i]);
        if (in < 0) continue;
        if (in > INT64_MAX - ((int64_t)1 << 32))
            return ir_infer_error(cx, "the padded input %s overflows", axis_name[i]);
        int64_t padded = in + g.pad[i] + g.pad[2 + i];
        if (ext > padded)
            return ir_infer_error(cx,
                                  "the kernel %s (%lld, dilated) is larger than the padded input "
                                  "%s (%lld)",
                                  axis_name[i], (long long)ext, axis_name[i], (long long)padded);
        y->dims[2 + i] = (padded - ext) / g.stride[i] + 1;
    }
    return 0;
}

/* Reads the geometry again in a kernel (inference validated it). */
static void kernel_geom(const ir_node *n, conv_geom *g, bool transpose)
{
    static const char *const names[4] = {"strides", "dilations", "pads", "output_padding"};
    int64_t *dst[4] = {g->stride, g->dilation, g->pad, g->outpad};
    static const int64_t defaults[4] = {1, 1, 0, 0};
    for (int a = 0; a < (transpose ? 4 : 3); a++) {
        int cnt;
        const int64_t *v = ir_node_ints(n, names[a], &cnt);
        int want = a == 2 ? 4 : 2;
        for (int i = 0; i < want; i++) dst[a][i] = cnt == want ? v[i] : defaults[a];
    }
    if (!transpose) g->outpad[0] = g->outpad[1] = 0;
    g->group = ir_node_int(n, "group");
}

static int kernel_conv(ir_kernel_ctx *kx)
{
    const kiln_tensor *x = kx->in[0], *w = kx->in[1], *b = kx->ninputs == 3 ? kx->in[2] : NULL;
    kiln_tensor *y = kx->out[0];
    conv_geom g;
    kernel_geom(kx->node, &g, false);
    const int64_t N = x->dims[0], C = x->dims[1], H = x->dims[2], W = x->dims[3];
    const int64_t M = w->dims[0], KH = w->dims[2], KW = w->dims[3];
    const int64_t OH = y->dims[2], OW = y->dims[3];
    const int64_t Cg = C / g.group, Mg = M / g.group;
    size_t o = 0;
    for (int64_t n = 0; n < N; n++)
        for (int64_t m = 0; m < M; m++) {
            int64_t c0 = (m / Mg) * Cg;
            double bias = b ? ir_load_f64(b->dtype, b->data, (size_t)m) : 0.0;
            for (int64_t oh = 0; oh < OH; oh++)
                for (int64_t ow = 0; ow < OW; ow++, o++) {
                    double acc = bias;
                    for (int64_t cl = 0; cl < Cg; cl++)
                        for (int64_t kh = 0; kh < KH; kh++) {
                            int64_t ih = oh * g.stride[0] - g.pad[0] + kh * g.dilation[0];
                            if (ih < 0 || ih >= H) continue;
                            for (int64_t kw = 0; kw < KW; kw++) {
                                int64_t iw = ow * g.stride[1] - g.pad[1] + kw * g.dilation[1];
                                if (iw < 0 || iw >= W) continue;
                                size_t xi = (size_t)(((n * C + c0 + cl) * H + ih) * W + iw);
                                size_t wi = (size_t)(((m * Cg + cl) * KH + kh) * KW + kw);
                                acc += ir_load_f64(x->dtype, x->data, xi) *
                                       ir_load_f64(w->dtype, w->data, wi);
                            }
                        }
                    ir_store_f64(y->dtype, y->data, o, acc);
                }
        }
    return 0;
}

const ir_opdef ir_opdef_Conv2D = {
    .name = "Conv2D", .min_inputs = 2, .max_inputs = 3, .noutputs = 1,
    .attrs = conv_attrs, .nattrs = 4,
    .infer = infer_conv, .kernel = kernel_conv, .grad = ir_grad_Conv2D,
    .doc = "Conv2D(x[N,C,H,W], w[M,C/group,kH,kW], b[M]?): 2-D convolution; strides, pads "
           "[top,left,bottom,right], dilations, group.",
};

/* ---- ConvTranspose2D ---- */

static const ir_attrdef convt_attrs[] = {
    IR_ATTR_OPT("strides", IR_ATTR_INTS),
    IR_ATTR_OPT("pads", IR_ATTR_INTS),
    IR_ATTR_OPT("dilations", IR_ATTR_INTS),
    IR_ATTR_I("group", 1),
    IR_ATTR_OPT("output_padding", IR_ATTR_INTS),
};

static int infer_convt(ir_infer_ctx *cx)
{
    conv_geom g;
    if (check_inputs(cx) || read_geom(cx, &g, true)) return -1;
    const ir_type *x = &cx->in[0], *w = &cx->in[1];
    int64_t C = x->dims[1], WC = w->dims[0], Mg = w->dims[1];
    if (C >= 0 && C % g.group != 0)
        return ir_infer_error(cx, "input channels (%lld) are not divisible by group %lld",
                              (long long)C, (long long)g.group);
    if (C >= 0 && WC >= 0 && WC != C)
        return ir_infer_error(cx, "weight dim 0 is %lld; expected the %lld input channels",
                              (long long)WC, (long long)C);
    if (Mg > INT64_MAX / g.group)
        return ir_infer_error(cx, "output channels (weight dim 1 * group) overflow");
    int64_t M = Mg < 0 ? -1 : Mg * g.group;
    if (cx->ninputs == 3 && M >= 0 && cx->in[2].dims[0] >= 0 && cx->in[2].dims[0] != M)
        return ir_infer_error(cx,
                              "bias has %lld elements; expected the %lld output channels "
                              "(weight dim 1 * group)",
                              (long long)cx->in[2].dims[0], (long long)M);
    ir_type *y = &cx->out[0];
    y->dtype = x->dtype;
    y->rank = 4;
    y->dims[0] = x->dims[0];
    y->dims[1] = M;
    for (int i = 0; i < 2; i++) {
        int64_t in = x->dims[2 + i], k = w->dims[2 + i];
        y->dims[2 + i] = -1;
        if (in == 0)
            return ir_infer_error(cx, "the input %s is 0; it must be >= 1", axis_name[i]);
        int64_t ext = k < 0 ? 0 : kernel_extent(k, g.dilation[i]);
        if (ext < 0) return ir_infer_error(cx, "the dilated kernel %s is too large", axis_name[i]);
        if (in < 0 || k < 0) continue;
        if (in - 1 > (((int64_t)1 << 61) / g.stride[i]) || ext > ((int64_t)1 << 61))
            return ir_infer_error(cx, "the output %s overflows", axis_name[i]);
        int64_t out = g.stride[i] * (in - 1) + g.outpad[i] + ext - g.pad[i] - g.pad[2 + i];
        if (out < 1)
            return ir_infer_error(cx,
                                  "the output %s would be %lld; the pads are too large for the "
                                  "input and kernel",
                                  axis_name[i], (long long)out);
        y->dims[2 + i] = out;
    }
    return 0;
}

/* y[n,m,oh,ow] = b[m] + sum over the input channels c of m's group, kh, kw
 * with oh = ih * stride - pad_top + kh * dilation (likewise ow) of
 * x[n,c,ih,iw] * w[c, m % (M/group), kh, kw]. */
static int kernel_convt(ir_kernel_ctx *kx)
{
    const kiln_tensor *x = kx->in[0], *w = kx->in[1], *b = kx->ninputs == 3 ? kx->in[2] : NULL;
    kiln_tensor *y = kx->out[0];
    conv_geom g;
    kernel_geom(kx->node, &g, true);
    const int64_t N = x->dims[0], C = x->dims[1], H = x->dims[2], W = x->dims[3];
    const int64_t Mg = w->dims[1], KH = w->dims[2], KW = w->dims[3];
    const int64_t M = y->dims[1], OH = y->dims[2], OW = y->dims[3];
    const int64_t Cg = C / g.group;
    size_t o = 0;
    for (int64_t n = 0; n < N; n++)
        for (int64_t m = 0; m < M; m++) {
            int64_t c0 = (m / Mg) * Cg, ml = m % Mg;
            double bias = b ? ir_load_f64(b->dtype, b->data, (size_t)m) : 0.0;
            for (int64_t oh = 0; oh < OH; oh++)
                for (int64_t ow = 0; ow < OW; ow++, o++) {
                    double acc = bias;
                    for (int64_t cl = 0; cl < Cg; cl++)
                        for (int64_t kh = 0; kh < KH; kh++) {
                            int64_t th = oh + g.pad[0] - kh * g.dilation[0];
                            if (th < 0 || th % g.stride[0] != 0 || th / g.stride[0] >= H) continue;
                            int64_t ih = th / g.stride[0];
                            for (int64_t kw = 0; kw < KW; kw++) {
                                int64_t tw = ow + g.pad[1] - kw * g.dilation[1];
                                if (tw < 0 || tw % g.stride[1] != 0 || tw / g.stride[1] >= W)
                                    continue;
                                int64_t iw = tw / g.stride[1];
                                size_t xi = (size_t)(((n * C + c0 + cl) * H + ih) * W + iw);
                                size_t wi = (size_t)((((c0 + cl) * Mg + ml) * KH + kh) * KW + kw);
                                acc += ir_load_f64(x->dtype, x->data, xi) *
                                       ir_load_f64(w->dtype, w->data, wi);
                            }
                        }
                    ir_store_f64(y->dtype, y->data, o, acc);
                }
        }
    return 0;
}

const ir_opdef ir_opdef_ConvTranspose2D = {
    .name = "ConvTranspose2D", .min_inputs = 2, .max_inputs = 3, .noutputs = 1,
    .attrs = convt_attrs, .nattrs = 5,
    .infer = infer_convt, .kernel = kernel_convt, .grad = ir_grad_ConvTranspose2D,
    .doc = "ConvTranspose2D(x[N,C,H,W], w[C,M/group,kH,kW], b[M]?): transposed 2-D convolution "
           "(ONNX semantics); strides, pads, dilations, group, output_padding.",
};
