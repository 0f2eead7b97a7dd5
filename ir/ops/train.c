/* train.c -- backward ops: the ops that gradient rules (ir/grad_nn.c) need
 * and that no forward op computes exactly. Conv2DFilterGrad (the gradient
 * of a convolution's weights), MaxPool2DGrad and AveragePool2DGrad (the
 * gradient of a pool's input), MaxPool2DSelect (MaxPool2DGrad's adjoint,
 * for second order), GatherGrad (a scatter-add: the gradient of
 * Gather's data), CumProdGrad (CumProd's gradient without division) and
 * GridSampleGrad (both of GridSample's gradients).
 * Geometry attributes mean what they mean on the forward
 * ops (ir/ops/conv.c, ir/ops/pool.c, ir/ops/shape_index.c). Floats only;
 * the reference kernels accumulate in double. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "../ir.h"

static const char *const axis_name[2] = {"height", "width"};

/* The validated geometry of a backward conv or pool node. */
typedef struct {
    int64_t kernel[2], stride[2], dilation[2], pad[4], group;
    bool ceil_mode, count_include_pad;
} train_geom;

/* Reads the INTS attribute `name` (n values, each in [lo, 2^31]) into v;
 * leaves the defaults in v when the attribute is unset. */
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

static int read_flag(ir_infer_ctx *cx, const char *name, bool *v)
{
    int64_t f = ir_node_int(cx->node, name);
    if (f != 0 && f != 1)
        return ir_infer_error(cx, "attribute '%s' is %lld; it must be 0 or 1", name, (long long)f);
    *v = f == 1;
    return 0;
}

/* Reads the attributes a node of this family has (by schema). */
static int read_geom(ir_infer_ctx *cx, train_geom *g)
{
    const ir_opdef *def = cx->def;
    memset(g, 0, sizeof *g);
    for (int i = 0; i < 2; i++) g->stride[i] = g->dilation[i] = 1;
    g->group = 1;
    if (read_ints(cx, "kernel_shape", g->kernel, 2, 1) || read_ints(cx, "strides", g->stride, 2, 1) ||
        read_ints(cx, "pads", g->pad, 4, 0))
        return -1;
    if (ir_op_attr_index(def, "dilations") >= 0 && read_ints(cx, "dilations", g->dilation, 2, 1))
        return -1;
    if (ir_op_attr_index(def, "ceil_mode") >= 0 && read_flag(cx, "ceil_mode", &g->ceil_mode))
        return -1;
    if (ir_op_attr_index(def, "count_include_pad") >= 0 &&
        read_flag(cx, "count_include_pad", &g->count_include_pad))
        return -1;
    if (ir_op_attr_index(def, "group") >= 0) {
        g->group = ir_node_int(cx->node, "group");
        if (g->group < 1)
            return ir_infer_error(cx, "group is %lld; it must be >= 1", (long long)g->group);
    }
    return 0;
}

/* Reads the geometry in a kernel (inference validated it). */
static void kernel_geom(const ir_node *n, const ir_opdef *def, train_geom *g)
{
    static const char *const names[4] = {"kernel_shape", "strides", "dilations", "pads"};
    int64_t *dst[4] = {g->kernel, g->stride, g->dilation, g->pad};
    static const int64_t defaults[4] = {1, 1, 1, 0};
    for (int a = 0; a < 4; a++) {
        int cnt = 0, want = a == 3 ? 4 : 2;
        const int64_t *v = ir_op_attr_index(def, names[a]) >= 0 ? ir_node_ints(n, names[a], &cnt) : NULL;
        for (int i = 0; i < want; i++) dst[a][i] = cnt == want ? v[i] : defaults[a];
    }
    g->group = ir_op_attr_index(def, "group") >= 0 ? ir_node_int(n, "group") : 1;
    g->ceil_mode = ir_op_attr_index(def, "ceil_mode") >= 0 && ir_node_int(n, "ceil_mode") == 1;
    g->count_include_pad =
        ir_op_attr_index(def, "count_include_pad") >= 0 && ir_node_int(n, "count_include_pad") == 1;
}

/* Inputs 0 and 1 are rank-4 floats of one dtype. */
static int check_pair(ir_infer_ctx *cx, const char *first, const char *second)
{
    const char *what[2] = {first, second};
    for (int i = 0; i < 2; i++)
        if (cx->in[i].rank != 4)
            return ir_infer_error(cx, "%s (input %d) must have rank 4 (N, C, H, W), got rank %d",
                                  what[i], i, cx->in[i].rank);
    if (ir_infer_require_float(cx, 0) || ir_infer_same_dtype(cx, 0, 1)) return -1;
    if (cx->in[0].dims[0] >= 0 && cx->in[1].dims[0] >= 0 && cx->in[0].dims[0] != cx->in[1].dims[0])
        return ir_infer_error(cx, "%s has batch %lld but %s has batch %lld", first,
                              (long long)cx->in[0].dims[0], second, (long long)cx->in[1].dims[0]);
    return 0;
}

/* ---- Conv2DFilterGrad ---- */

static const ir_attrdef filter_grad_attrs[] = {
    IR_ATTR_REQ("kernel_shape", IR_ATTR_INTS),
    IR_ATTR_OPT("strides", IR_ATTR_INTS),
    IR_ATTR_OPT("pads", IR_ATTR_INTS),
    IR_ATTR_OPT("dilations", IR_ATTR_INTS),
    IR_ATTR_I("group", 1),
};

static int infer_filter_grad(ir_infer_ctx *cx)
{
    train_geom g;
    if (check_pair(cx, "x", "dy") || read_geom(cx, &g)) return -1;
    int64_t C = cx->in[0].dims[1], M = cx->in[1].dims[1];
    if (C >= 0 && C % g.group != 0)
        return ir_infer_error(cx, "x's channels (%lld) are not divisible by group %lld", (long long)C,
                              (long long)g.group);
    if (M >= 0 && M % g.group != 0)
        return ir_infer_error(cx, "dy's channels (%lld) are not divisible by group %lld",
                              (long long)M, (long long)g.group);
    ir_type *w = &cx->out[0];
    w->dtype = cx->in[0].dtype;
    w->rank = 4;
    w->dims[0] = M;
    w->dims[1] = C < 0 ? -1 : C / g.group;
    w->dims[2] = g.kernel[0];
    w->dims[3] = g.kernel[1];
    return 0;
}

/* dw[m,cl,kh,kw] = sum over n, oh, ow of dy[n,m,oh,ow] *
 * x[n, group(m) * Cg + cl, oh * sh - pt + kh * dh, ow * sw - pl + kw * dw]
 * (taps outside x count as zero). */
static int kernel_filter_grad(ir_kernel_ctx *kx)
{
    const kiln_tensor *x = kx->in[0], *dy = kx->in[1];
    kiln_tensor *w = kx->out[0];
    train_geom g;
    kernel_geom(kx->node, kx->def, &g);
    const int64_t N = x->dims[0], C = x->dims[1], H = x->dims[2], W = x->dims[3];
    const int64_t M = dy->dims[1], OH = dy->dims[2], OW = dy->dims[3];
    const int64_t Cg = C / g.group, Mg = M / g.group, KH = g.kernel[0], KW = g.kernel[1];
    size_t o = 0;
    for (int64_t m = 0; m < M; m++)
        for (int64_t cl = 0; cl < Cg; cl++)
            for (int64_t kh = 0; kh < KH; kh++)
                for (int64_t kw = 0; kw < KW; kw++, o++) {
                    int64_t c = (m / Mg) * Cg + cl;
                    double acc = 0;
                    for (int64_t n = 0; n < N; n++)
                        for (int64_t oh = 0; oh < OH; oh++) {
                            int64_t ih = oh * g.stride[0] - g.pad[0] + kh * g.dilation[0];
                            if (ih < 0 || ih >= H) continue;
                            for (int64_t ow = 0; ow < OW; ow++) {
                                int64_t iw = ow * g.stride[1] - g.pad[1] + kw * g.dilation[1];
                                if (iw < 0 || iw >= W) continue;
                                size_t xi = (size_t)(((n * C + c) * H + ih) * W + iw);
                                size_t di = (size_t)(((n * M + m) * OH + oh) * OW + ow);
                                acc += ir_load_f64(x->dtype, x->data, xi) *
                                       ir_load_f64(dy->dtype, dy->data, di);
                            }
                        }
                    ir_store_f64(w->dtype, w->data, o, acc);
                }
    return 0;
}

const ir_opdef ir_opdef_Conv2DFilterGrad = {
    .name = "Conv2DFilterGrad", .min_inputs = 2, .max_inputs = 2, .noutputs = 1,
    .attrs = filter_grad_attrs, .nattrs = 5,
    .infer = infer_filter_grad, .kernel = kernel_filter_grad, .grad = ir_grad_Conv2DFilterGrad,
    .doc = "Conv2DFilterGrad(x[N,C,H,W], dy[N,M,OH,OW]) -> [M,C/group,kH,kW]: the gradient of "
           "Conv2D's weights; kernel_shape, strides, pads, dilations, group as on Conv2D (taps "
           "outside x are zero).",
};

/* ---- MaxPool2DGrad, AveragePool2DGrad ---- */

/* The pool output's spatial dims for x (-1 where x's dim is symbolic),
 * as MaxPool2D / AveragePool2D compute them. */
static int pool_out_dims(ir_infer_ctx *cx, const train_geom *g, const ir_type *x, int64_t *out)
{
    for (int j = 0; j < 4; j++) {
        int64_t ext = g->dilation[j % 2] * (g->kernel[j % 2] - 1) + 1;
        if (g->pad[j] >= ext)
            return ir_infer_error(cx, "pads[%d] is %lld; it must be smaller than the window %s (%lld)",
                                  j, (long long)g->pad[j], axis_name[j % 2], (long long)ext);
    }
    for (int i = 0; i < 2; i++) {
        int64_t in = x->dims[2 + i], ext = g->dilation[i] * (g->kernel[i] - 1) + 1, s = g->stride[i];
        out[i] = -1;
        if (in < 0) continue;
        if (in > INT64_MAX - ((int64_t)1 << 32))
            return ir_infer_error(cx, "the padded input %s overflows", axis_name[i]);
        int64_t padded = in + g->pad[i] + g->pad[2 + i];
        if (ext > padded)
            return ir_infer_error(cx, "the window %s (%lld) is larger than the padded input %s (%lld)",
                                  axis_name[i], (long long)ext, axis_name[i], (long long)padded);
        if (g->ceil_mode) {
            out[i] = (padded - ext + s - 1) / s + 1;
            if ((out[i] - 1) * s >= in + g->pad[i]) out[i]--;
        } else {
            out[i] = (padded - ext) / s + 1;
        }
    }
    return 0;
}

/* Checks that dy has the shape the forward pool gives x. */
static int infer_pool_grad(ir_infer_ctx *cx)
{
    train_geom g;
    if (check_pair(cx, "x", "dy") || read_geom(cx, &g)) return -1;
    const ir_type *x = &cx->in[0], *dy = &cx->in[1];
    if (x->dims[1] >= 0 && dy->dims[1] >= 0 && x->dims[1] != dy->dims[1])
        return ir_infer_error(cx, "dy has %lld channels but x has %lld", (long long)dy->dims[1],
                              (long long)x->dims[1]);
    int64_t out[2];
    if (pool_out_dims(cx, &g, x, out)) return -1;
    for (int i = 0; i < 2; i++)
        if (out[i] >= 0 && dy->dims[2 + i] >= 0 && dy->dims[2 + i] != out[i])
            return ir_infer_error(cx, "dy's %s is %lld; the pool of x gives %lld", axis_name[i],
                                  (long long)dy->dims[2 + i], (long long)out[i]);
    cx->out[0] = *x;
    return 0;
}

/* MaxPool2DGrad: each dy element goes to the first (row-major in the
 * window) tap that holds the window's maximum, NaN counting as the
 * maximum as in MaxPool2D. AveragePool2DGrad: each dy element divided by
 * its window's divisor goes to every tap inside x. */
static int run_pool_grad(ir_kernel_ctx *kx, bool is_max)
{
    const kiln_tensor *x = kx->in[0], *dy = kx->in[1];
    kiln_tensor *dx = kx->out[0];
    train_geom g;
    kernel_geom(kx->node, kx->def, &g);
    const int64_t NC = x->dims[0] * x->dims[1], H = x->dims[2], W = x->dims[3];
    const int64_t OH = dy->dims[2], OW = dy->dims[3];
    double *acc = ir_calloc((size_t)(H * W) + 1, sizeof *acc);
    if (!acc) return ir_kernel_error(kx, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    for (int64_t p = 0; p < NC; p++) {
        size_t base = (size_t)(p * H * W);
        memset(acc, 0, sizeof *acc * (size_t)(H * W));
        for (int64_t oh = 0; oh < OH; oh++)
            for (int64_t ow = 0; ow < OW; ow++) {
                double d = ir_load_f64(dy->dtype, dy->data, (size_t)((p * OH + oh) * OW + ow));
                int64_t h0 = oh * g.stride[0] - g.pad[0], w0 = ow * g.stride[1] - g.pad[1];
                if (is_max) {
                    int64_t best_i = -1;
                    double best = 0;
                    for (int64_t kh = 0; kh < g.kernel[0]; kh++) {
                        int64_t ih = h0 + kh * g.dilation[0];
                        if (ih < 0 || ih >= H) continue;
                        for (int64_t kw = 0; kw < g.kernel[1]; kw++) {
                            int64_t iw = w0 + kw * g.dilation[1];
                            if (iw < 0 || iw >= W) continue;
                            double v = ir_load_f64(x->dtype, x->data, base + (size_t)(ih * W + iw));
                            if (best_i < 0 || (v != v && best == best) || v > best) {
                                best = v;
                                best_i = ih * W + iw;
                            }
                        }
                    }
                    if (best_i >= 0) acc[best_i] += d;
                    continue;
                }
                int64_t hs = h0 < 0 ? 0 : h0, ws = w0 < 0 ? 0 : w0;
                int64_t he = h0 + g.kernel[0] < H ? h0 + g.kernel[0] : H;
                int64_t we = w0 + g.kernel[1] < W ? w0 + g.kernel[1] : W;
                int64_t div = (he - hs) * (we - ws);
                if (g.count_include_pad) {
                    int64_t h1 = h0 + g.kernel[0], w1 = w0 + g.kernel[1];
                    if (h1 > H + g.pad[2]) h1 = H + g.pad[2];
                    if (w1 > W + g.pad[3]) w1 = W + g.pad[3];
                    div = (h1 - h0) * (w1 - w0);
                }
                if (div <= 0) continue;
                double share = d / (double)div;
                for (int64_t ih = hs; ih < he; ih++)
                    for (int64_t iw = ws; iw < we; iw++) acc[ih * W + iw] += share;
            }
        for (int64_t i = 0; i < H * W; i++) ir_store_f64(dx->dtype, dx->data, base + (size_t)i, acc[i]);
    }
    ir_free(acc);
    return 0;
}

static int kernel_maxpool_grad(ir_kernel_ctx *kx) { return run_pool_grad(kx, true); }
static int kernel_avgpool_grad(ir_kernel_ctx *kx) { return run_pool_grad(kx, false); }

static const ir_attrdef maxpool_grad_attrs[] = {
    IR_ATTR_REQ("kernel_shape", IR_ATTR_INTS),
    IR_ATTR_OPT("strides", IR_ATTR_INTS),
    IR_ATTR_OPT("pads", IR_ATTR_INTS),
    IR_ATTR_OPT("dilations", IR_ATTR_INTS),
    IR_ATTR_I("ceil_mode", 0),
};

const ir_opdef ir_opdef_MaxPool2DGrad = {
    .name = "MaxPool2DGrad", .min_inputs = 2, .max_inputs = 2, .noutputs = 1,
    .attrs = maxpool_grad_attrs, .nattrs = 5,
    .infer = infer_pool_grad, .kernel = kernel_maxpool_grad, .grad = ir_grad_MaxPool2DGrad,
    .doc = "MaxPool2DGrad(x, dy): the gradient of MaxPool2D's input (same attributes); each dy "
           "element goes to the first maximum of its window.",
};

static const ir_attrdef avgpool_grad_attrs[] = {
    IR_ATTR_REQ("kernel_shape", IR_ATTR_INTS),
    IR_ATTR_OPT("strides", IR_ATTR_INTS),
    IR_ATTR_OPT("pads", IR_ATTR_INTS),
    IR_ATTR_I("ceil_mode", 0),
    IR_ATTR_I("count_include_pad", 0),
};

const ir_opdef ir_opdef_AveragePool2DGrad = {
    .name = "AveragePool2DGrad", .min_inputs = 2, .max_inputs = 2, .noutputs = 1,
    .attrs = avgpool_grad_attrs, .nattrs = 5,
    .infer = infer_pool_grad, .kernel = kernel_avgpool_grad, .grad = ir_grad_AveragePool2DGrad,
    .doc = "AveragePool2DGrad(x, dy): the gradient of AveragePool2D's input (same attributes; x "
           "gives only the shape).",
};

/* ---- MaxPool2DSelect ---- */

/* v has x's shape; the output has the pool's. */
static int infer_maxpool_select(ir_infer_ctx *cx)
{
    train_geom g;
    if (check_pair(cx, "x", "v") || read_geom(cx, &g)) return -1;
    const ir_type *x = &cx->in[0], *v = &cx->in[1];
    for (int d = 1; d < 4; d++)
        if (x->dims[d] >= 0 && v->dims[d] >= 0 && x->dims[d] != v->dims[d])
            return ir_infer_error(cx, "v must have x's shape; dim %d is %lld, x has %lld", d,
                                  (long long)v->dims[d], (long long)x->dims[d]);
    int64_t out[2];
    if (pool_out_dims(cx, &g, x, out)) return -1;
    cx->out[0] = *x;
    cx->out[0].dims[2] = out[0];
    cx->out[0].dims[3] = out[1];
    return 0;
}

/* y[o] = v at the first maximum of x in window o (0 for a window with no
 * tap inside x): the adjoint of MaxPool2DGrad in dy. */
static int kernel_maxpool_select(ir_kernel_ctx *kx)
{
    const kiln_tensor *x = kx->in[0], *v = kx->in[1];
    kiln_tensor *y = kx->out[0];
    train_geom g;
    kernel_geom(kx->node, kx->def, &g);
    const int64_t NC = x->dims[0] * x->dims[1], H = x->dims[2], W = x->dims[3];
    const int64_t OH = y->dims[2], OW = y->dims[3];
    size_t o = 0;
    for (int64_t p = 0; p < NC; p++) {
        size_t base = (size_t)(p * H * W);
        for (int64_t oh = 0; oh < OH; oh++)
            for (int64_t ow = 0; ow < OW; ow++, o++) {
                int64_t h0 = oh * g.stride[0] - g.pad[0], w0 = ow * g.stride[1] - g.pad[1], best_i = -1;
                double best = 0;
                for (int64_t kh = 0; kh < g.kernel[0]; kh++) {
                    int64_t ih = h0 + kh * g.dilation[0];
                    if (ih < 0 || ih >= H) continue;
                    for (int64_t kw = 0; kw < g.kernel[1]; kw++) {
                        int64_t iw = w0 + kw * g.dilation[1];
                        if (iw < 0 || iw >= W) continue;
                        double xv = ir_load_f64(x->dtype, x->data, base + (size_t)(ih * W + iw));
                        if (best_i < 0 || (xv != xv && best == best) || xv > best) {
                            best = xv;
                            best_i = ih * W + iw;
                        }
                    }
                }
                double r = best_i < 0 ? 0.0 : ir_load_f64(v->dtype, v->data, base + (size_t)best_i);
                ir_store_f64(y->dtype, y->data, o, r);
            }
    }
    return 0;
}

const ir_opdef ir_opdef_MaxPool2DSelect = {
    .name = "MaxPool2DSelect", .min_inputs = 2, .max_inputs = 2, .noutputs = 1,
    .attrs = maxpool_grad_attrs, .nattrs = 5,
    .infer = infer_maxpool_select, .kernel = kernel_maxpool_select,
    .doc = "MaxPool2DSelect(x, v): per MaxPool2D window of x (same attributes), v's element at the "
           "window's first maximum; the adjoint of MaxPool2DGrad (second order through MaxPool2D).",
};

/* ---- GatherGrad ---- */

static const ir_attrdef gather_grad_attrs[] = {
    IR_ATTR_I("axis", 0),
    IR_ATTR_REQ("axis_size", IR_ATTR_INT),
};

/* dy has Gather's output shape data.shape[:axis] + indices.shape +
 * data.shape[axis+1:]; the result has data's shape. */
static int infer_gather_grad(ir_infer_ctx *cx)
{
    const ir_type *dy = &cx->in[0], *idx = &cx->in[1];
    if (ir_infer_require_float(cx, 0) ||
        ir_infer_require_dtypes(cx, 1, IR_DT_MASK(KILN_I32) | IR_DT_MASK(KILN_I64)))
        return -1;
    int rank = dy->rank - idx->rank + 1;
    if (rank < 1)
        return ir_infer_error(cx, "dy (rank %d) has a lower rank than the indices (rank %d)",
                              dy->rank, idx->rank);
    int64_t axis = ir_node_int(cx->node, "axis"), size = ir_node_int(cx->node, "axis_size");
    int a;
    if (!ir_norm_axis(axis, rank, &a))
        return ir_infer_error(cx, "axis %lld is out of range for data of rank %d", (long long)axis,
                              rank);
    if (size < 0) return ir_infer_error(cx, "axis_size is %lld; it must be >= 0", (long long)size);
    for (int d = 0; d < idx->rank; d++)
        if (dy->dims[a + d] >= 0 && idx->dims[d] >= 0 && dy->dims[a + d] != idx->dims[d])
            return ir_infer_error(cx, "dy's dim %d is %lld but indices' dim %d is %lld", a + d,
                                  (long long)dy->dims[a + d], d, (long long)idx->dims[d]);
    ir_type *y = &cx->out[0];
    y->dtype = dy->dtype;
    y->rank = rank;
    for (int d = 0; d < a; d++) y->dims[d] = dy->dims[d];
    y->dims[a] = size;
    for (int d = a + 1; d < rank; d++) y->dims[d] = dy->dims[d - 1 + idx->rank];
    return 0;
}

static int kernel_gather_grad(ir_kernel_ctx *kx)
{
    const kiln_tensor *dy = kx->in[0], *idx = kx->in[1];
    kiln_tensor *dx = kx->out[0];
    int a;
    ir_norm_axis(ir_node_int(kx->node, "axis"), dx->rank, &a);
    int64_t dim = dx->dims[a];
    for (size_t j = 0; j < idx->size; j++) {
        int64_t v = ir_load_i64(idx->dtype, idx->data, j);
        if (v < -dim || v >= dim)
            return ir_kernel_error(kx, KILN_ERR_INVALID_ARGUMENT,
                                   "index %lld (element %zu of the indices) is out of range for "
                                   "dim %d of size %lld",
                                   (long long)v, j, a, (long long)dim);
    }
    size_t outer = 1, inner = 1;
    for (int d = 0; d < a; d++) outer *= (size_t)dx->dims[d];
    for (int d = a + 1; d < dx->rank; d++) inner *= (size_t)dx->dims[d];
    size_t n = dx->size;
    double *acc = ir_calloc(n ? n : 1, sizeof *acc);
    if (!acc) return ir_kernel_error(kx, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    size_t k = 0;
    for (size_t o = 0; o < outer; o++)
        for (size_t j = 0; j < idx->size; j++) {
            int64_t v = ir_load_i64(idx->dtype, idx->data, j);
            if (v < 0) v += dim;
            size_t dst = (o * (size_t)dim + (size_t)v) * inner;
            for (size_t i = 0; i < inner; i++, k++) acc[dst + i] += ir_load_f64(dy->dtype, dy->data, k);
        }
    for (size_t i = 0; i < n; i++) ir_store_f64(dx->dtype, dx->data, i, acc[i]);
    ir_free(acc);
    return 0;
}

const ir_opdef ir_opdef_GatherGrad = {
    .name = "GatherGrad", .min_inputs = 2, .max_inputs = 2, .noutputs = 1,
    .attrs = gather_grad_attrs, .nattrs = 2,
    .infer = infer_gather_grad, .kernel = kernel_gather_grad, .grad = ir_grad_GatherGrad,
    .doc = "GatherGrad(dy, indices): the gradient of Gather's data: zeros of data's shape (dim "
           "'axis' of size 'axis_size') with dy's slices added at the indices (duplicates add up).",
};

/* ---- CumProdGrad ---- */

/* CumProd's attributes, with their meaning there. */
static const ir_attrdef cumprod_grad_attrs[] = {
    IR_ATTR_REQ("axis", IR_ATTR_INT),
    IR_ATTR_I("exclusive", 0),
    IR_ATTR_I("reverse", 0),
};

static int infer_cumprod_grad(ir_infer_ctx *cx)
{
    const ir_type *x = &cx->in[0], *dy = &cx->in[1];
    if (ir_infer_require_float(cx, 0) || ir_infer_require_float(cx, 1)) return -1;
    if (dy->dtype != x->dtype)
        return ir_infer_error(cx, "dy is %s; x is %s (they must match)", kiln_dtype_name(dy->dtype),
                              kiln_dtype_name(x->dtype));
    if (x->rank == 0) return ir_infer_error(cx, "needs an input of rank >= 1, not a scalar");
    if (dy->rank != x->rank)
        return ir_infer_error(cx, "dy has rank %d; x has rank %d (they must match)", dy->rank, x->rank);
    for (int d = 0; d < x->rank; d++)
        if (x->dims[d] >= 0 && dy->dims[d] >= 0 && x->dims[d] != dy->dims[d])
            return ir_infer_error(cx, "dy's dim %d is %lld but x's is %lld", d, (long long)dy->dims[d],
                                  (long long)x->dims[d]);
    int a;
    int64_t axis = ir_node_int(cx->node, "axis");
    if (!ir_norm_axis(axis, x->rank, &a))
        return ir_infer_error(cx, "axis %lld is out of range for rank %d", (long long)axis, x->rank);
    cx->out[0] = *x;
    return 0;
}

/* One line of n elements, element s at offset s * stride, taken in the
 * order CumProd takes them (from the end when reverse). With E_j the
 * product of the elements before j, an inclusive CumProd has
 *   dx_j = E_j * S_j,  S_j = dy_j + x_{j+1} S_{j+1}  (S_{n-1} = dy_{n-1}),
 * and an exclusive one dx_j = E_j * T_j, T_j = dy_{j+1} + x_{j+1} T_{j+1}
 * (T_{n-1} = 0): no division, so zeros in x are exact. The backward pass
 * leaves S (or T) in dx, the forward pass multiplies E in. The compiled
 * kernel (kk_cumprod_grad) does the same operations in the same order. */
static void cumprod_grad_line(kiln_dtype dt, const void *x, const void *dy, void *dx, size_t base,
                              size_t stride, int64_t n, bool excl, bool rev)
{
#define AT(s) (base + (size_t)(rev ? n - 1 - (s) : (s)) * stride)
    double acc = 0;
    for (int64_t s = n - 1; s >= 0; s--) {
        if (excl) {
            ir_store_f64(dt, dx, AT(s), acc);
            acc = ir_load_f64(dt, dy, AT(s)) + ir_load_f64(dt, x, AT(s)) * acc;
        } else {
            acc = ir_load_f64(dt, dy, AT(s)) + (s + 1 < n ? ir_load_f64(dt, x, AT(s + 1)) : 0) * acc;
            ir_store_f64(dt, dx, AT(s), acc);
        }
    }
    double e = 1;
    for (int64_t s = 0; s < n; s++) {
        ir_store_f64(dt, dx, AT(s), e * ir_load_f64(dt, dx, AT(s)));
        e *= ir_load_f64(dt, x, AT(s));
    }
#undef AT
}

static int kernel_cumprod_grad(ir_kernel_ctx *kx)
{
    const kiln_tensor *x = kx->in[0], *dy = kx->in[1];
    kiln_tensor *dx = kx->out[0];
    int a;
    ir_norm_axis(ir_node_int(kx->node, "axis"), x->rank, &a);
    bool excl = ir_node_int(kx->node, "exclusive") != 0, rev = ir_node_int(kx->node, "reverse") != 0;
    size_t outer = 1, inner = 1;
    for (int d = 0; d < a; d++) outer *= (size_t)x->dims[d];
    for (int d = a + 1; d < x->rank; d++) inner *= (size_t)x->dims[d];
    int64_t n = x->dims[a];
    for (size_t o = 0; o < outer; o++)
        for (size_t i = 0; i < inner; i++)
            cumprod_grad_line(x->dtype, x->data, dy->data, dx->data, o * (size_t)n * inner + i, inner, n,
                              excl, rev);
    return 0;
}

const ir_opdef ir_opdef_CumProdGrad = {
    .name = "CumProdGrad", .min_inputs = 2, .max_inputs = 2, .noutputs = 1,
    .attrs = cumprod_grad_attrs, .nattrs = 3,
    .infer = infer_cumprod_grad, .kernel = kernel_cumprod_grad,
    .doc = "CumProdGrad(x, dy): the gradient of CumProd(x) (same axis, exclusive, reverse) for the "
           "output gradient dy, computed without dividing by x (zeros in x are exact).",
};

/* ---- GridSampleGrad ---- */

#include "../grid_sample_grad.h"

static const ir_attrdef grid_sample_grad_attrs[] = {
    IR_ATTR_S("mode", "linear"),
    IR_ATTR_S("padding_mode", "zeros"),
    IR_ATTR_I("align_corners", 0),
};

static int gsg_code(const char *s, const char *a, const char *b, const char *c)
{
    if (!s) return -1;
    return strcmp(s, a) == 0 ? 0 : strcmp(s, b) == 0 ? 1 : strcmp(s, c) == 0 ? 2 : -1;
}

/* GridSampleGrad(x, grid, dy) -> (dx, dgrid): the gradients of
 * GridSample(x, grid) for the output gradient dy. */
static int infer_grid_sample_grad(ir_infer_ctx *cx)
{
    const ir_type *x = &cx->in[0], *g = &cx->in[1], *dy = &cx->in[2];
    if (ir_infer_require_float(cx, 0) || ir_infer_require_float(cx, 1) || ir_infer_require_float(cx, 2))
        return -1;
    if (gsg_code(ir_node_string(cx->node, "mode"), "linear", "nearest", "cubic") < 0 ||
        gsg_code(ir_node_string(cx->node, "padding_mode"), "zeros", "border", "reflection") < 0)
        return ir_infer_error(cx, "mode or padding_mode is not one GridSample takes");
    if (x->rank < 3 || g->rank != x->rank || dy->rank != x->rank)
        return ir_infer_error(cx, "x, grid and dy must have the same rank >= 3 (got %d, %d, %d)", x->rank,
                              g->rank, dy->rank);
    if (dy->dtype != x->dtype)
        return ir_infer_error(cx, "dy is %s; x is %s (they must match)", kiln_dtype_name(dy->dtype),
                              kiln_dtype_name(x->dtype));
    if (!ir_type_is_static(x) || !ir_type_is_static(g) || !ir_type_is_static(dy))
        return ir_infer_error(cx, "needs static shapes");
    int k = x->rank - 2;
    bool ok = g->dims[g->rank - 1] == k && g->dims[0] == x->dims[0] && dy->dims[0] == x->dims[0] &&
              dy->dims[1] == x->dims[1];
    for (int d = 0; ok && d < k; d++) ok = dy->dims[2 + d] == g->dims[1 + d];
    if (!ok) return ir_infer_error(cx, "dy's shape does not match GridSample(x, grid)'s output");
    cx->out[0] = *x;
    cx->out[1] = *g;
    return 0;
}

static int kernel_grid_sample_grad(ir_kernel_ctx *kx)
{
    const kiln_tensor *x = kx->in[0], *g = kx->in[1], *dy = kx->in[2];
    kiln_tensor *dx = kx->out[0], *dg = kx->out[1];
    int mode = gsg_code(ir_node_string(kx->node, "mode"), "linear", "nearest", "cubic");
    int pad = gsg_code(ir_node_string(kx->node, "padding_mode"), "zeros", "border", "reflection");
    int align = ir_node_int(kx->node, "align_corners") != 0;
    int k = x->rank - 2;
    int64_t nb = x->dims[0], ch = x->dims[1];
    size_t vol = 1, pts = 1;
    for (int d = 2; d < x->rank; d++) vol *= (size_t)x->dims[d];
    for (int d = 2; d < dy->rank; d++) pts *= (size_t)dy->dims[d];
    int64_t st[IR_MAX_RANK], idx[IR_MAX_RANK][4];
    double w[IR_MAX_RANK][4], dw[IR_MAX_RANK][4];
    int nt[IR_MAX_RANK];
    ir_shape_strides(k, x->dims + 2, st);
    for (size_t i = 0; i < dx->size; i++) ir_store_f64(dx->dtype, dx->data, i, 0);
    for (size_t i = 0; i < dg->size; i++) ir_store_f64(dg->dtype, dg->data, i, 0);
    for (int64_t n = 0; n < nb; n++)
        for (size_t p = 0; p < pts; p++) {
            size_t gb = ((size_t)n * pts + p) * (size_t)k;
            for (int j = 0; j < k; j++) {
                int d = k - 1 - j;
                nt[d] = gsg_taps(ir_load_f64(g->dtype, g->data, gb + (size_t)j), x->dims[2 + d], mode, pad, align,
                                 idx[d], w[d], dw[d]);
            }
            double dgs[IR_MAX_RANK] = {0};
            for (int64_t c = 0; c < ch; c++) {
                size_t xbase = ((size_t)n * (size_t)ch + (size_t)c) * vol;
                double dyv = ir_load_f64(dy->dtype, dy->data, ((size_t)n * (size_t)ch + (size_t)c) * pts + p);
                int sel[IR_MAX_RANK] = {0};
                for (;;) {
                    double wt = 1;
                    int64_t off = 0;
                    bool inside = true;
                    for (int d = 0; d < k; d++) {
                        wt *= w[d][sel[d]];
                        if (idx[d][sel[d]] < 0) inside = false;
                        off += idx[d][sel[d]] * st[d];
                    }
                    if (inside) {
                        size_t at = xbase + (size_t)off;
                        ir_store_f64(dx->dtype, dx->data, at, ir_load_f64(dx->dtype, dx->data, at) + dyv * wt);
                        double xv = dyv * ir_load_f64(x->dtype, x->data, at);
                        for (int d = 0; d < k; d++) {
                            double pr = dw[d][sel[d]];
                            for (int e = 0; e < k; e++)
                                if (e != d) pr *= w[e][sel[e]];
                            dgs[d] += xv * pr;
                        }
                    }
                    int d = k - 1;
                    while (d >= 0 && ++sel[d] == nt[d]) sel[d--] = 0;
                    if (d < 0) break;
                }
            }
            for (int j = 0; j < k; j++) ir_store_f64(dg->dtype, dg->data, gb + (size_t)j, dgs[k - 1 - j]);
        }
    return 0;
}

const ir_opdef ir_opdef_GridSampleGrad = {
    .name = "GridSampleGrad", .min_inputs = 3, .max_inputs = 3, .noutputs = 2,
    .attrs = grid_sample_grad_attrs, .nattrs = 3,
    .infer = infer_grid_sample_grad, .kernel = kernel_grid_sample_grad,
    .doc = "GridSampleGrad(x, grid, dy) -> (dx, dgrid): the gradients of GridSample(x, grid) (same "
           "attributes) for the output gradient dy; dgrid is zero for mode nearest and where border "
           "padding clamps.",
};
