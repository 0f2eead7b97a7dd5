/* pool.c -- 2-D pooling over NCHW tensors: MaxPool2D, AveragePool2D (ONNX
 * semantics for pads, ceil_mode and count_include_pad) and
 * GlobalAveragePool. Floats only; the reference kernels compute in double. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "../ir.h"

/* The validated window geometry of a pooling node. */
typedef struct {
    int64_t kernel[2], stride[2], dilation[2], pad[4];
    bool ceil_mode, count_include_pad;
} pool_geom;

static const char *const axis_name[2] = {"height", "width"};

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

/* The window extent along axis i: dilation * (kernel - 1) + 1. */
static int64_t extent(const pool_geom *g, int i) { return g->dilation[i] * (g->kernel[i] - 1) + 1; }

static int read_geom(ir_infer_ctx *cx, pool_geom *g, bool is_max)
{
    memset(g, 0, sizeof *g);
    for (int i = 0; i < 2; i++) g->stride[i] = g->dilation[i] = 1;
    if (read_ints(cx, "kernel_shape", g->kernel, 2, 1) || read_ints(cx, "strides", g->stride, 2, 1) ||
        read_ints(cx, "pads", g->pad, 4, 0) || read_flag(cx, "ceil_mode", &g->ceil_mode))
        return -1;
    if (is_max) {
        if (read_ints(cx, "dilations", g->dilation, 2, 1)) return -1;
    } else if (read_flag(cx, "count_include_pad", &g->count_include_pad)) {
        return -1;
    }
    /* kernel_shape is required, so the graph has made sure it is set. */
    for (int j = 0; j < 4; j++)
        if (g->pad[j] >= extent(g, j % 2))
            return ir_infer_error(cx, "pads[%d] is %lld; it must be smaller than the window %s (%lld)",
                                  j, (long long)g->pad[j], axis_name[j % 2],
                                  (long long)extent(g, j % 2));
    return 0;
}

/* Reads the geometry in a kernel (inference validated it). */
static void kernel_geom(const ir_node *n, pool_geom *g, bool is_max)
{
    int cnt;
    const int64_t *v = ir_node_ints(n, "kernel_shape", &cnt);
    g->kernel[0] = v[0];
    g->kernel[1] = v[1];
    v = ir_node_ints(n, "strides", &cnt);
    for (int i = 0; i < 2; i++) g->stride[i] = cnt == 2 ? v[i] : 1;
    v = ir_node_ints(n, "pads", &cnt);
    for (int i = 0; i < 4; i++) g->pad[i] = cnt == 4 ? v[i] : 0;
    if (is_max) {
        v = ir_node_ints(n, "dilations", &cnt);
        for (int i = 0; i < 2; i++) g->dilation[i] = cnt == 2 ? v[i] : 1;
        g->count_include_pad = false;
    } else {
        g->dilation[0] = g->dilation[1] = 1;
        g->count_include_pad = ir_node_int(n, "count_include_pad") == 1;
    }
    g->ceil_mode = ir_node_int(n, "ceil_mode") == 1;
}

static int check_x(ir_infer_ctx *cx)
{
    if (cx->in[0].rank != 4)
        return ir_infer_error(cx, "input must have rank 4 (N, C, H, W), got rank %d", cx->in[0].rank);
    return ir_infer_require_float(cx, 0);
}

static int infer_pool(ir_infer_ctx *cx, bool is_max)
{
    pool_geom g;
    if (check_x(cx) || read_geom(cx, &g, is_max)) return -1;
    const ir_type *x = &cx->in[0];
    ir_type *y = &cx->out[0];
    *y = *x;
    for (int i = 0; i < 2; i++) {
        int64_t in = x->dims[2 + i], ext = extent(&g, i), s = g.stride[i];
        y->dims[2 + i] = -1;
        if (in < 0) continue;
        if (in > INT64_MAX - ((int64_t)1 << 32))
            return ir_infer_error(cx, "the padded input %s overflows", axis_name[i]);
        int64_t padded = in + g.pad[i] + g.pad[2 + i];
        if (ext > padded)
            return ir_infer_error(cx, "the window %s (%lld) is larger than the padded input %s (%lld)",
                                  axis_name[i], (long long)ext, axis_name[i], (long long)padded);
        int64_t out;
        if (g.ceil_mode) {
            out = (padded - ext + s - 1) / s + 1;
            /* The last window must start inside the input or the leading pad. */
            if ((out - 1) * s >= in + g.pad[i]) out--;
        } else {
            out = (padded - ext) / s + 1;
        }
        y->dims[2 + i] = out;
    }
    return 0;
}

/* Max or mean over each output element's window; taps outside the input
 * are skipped (they are -inf for max, and zeros for the mean). */
static int run_pool(ir_kernel_ctx *kx, bool is_max)
{
    const kiln_tensor *x = kx->in[0];
    kiln_tensor *y = kx->out[0];
    pool_geom g;
    kernel_geom(kx->node, &g, is_max);
    const int64_t NC = x->dims[0] * x->dims[1], H = x->dims[2], W = x->dims[3];
    const int64_t OH = y->dims[2], OW = y->dims[3];
    size_t o = 0;
    for (int64_t p = 0; p < NC; p++) {
        size_t base = (size_t)(p * H * W);
        for (int64_t oh = 0; oh < OH; oh++)
            for (int64_t ow = 0; ow < OW; ow++, o++) {
                int64_t h0 = oh * g.stride[0] - g.pad[0], w0 = ow * g.stride[1] - g.pad[1];
                double acc = is_max ? -INFINITY : 0.0;
                int64_t valid = 0;
                for (int64_t kh = 0; kh < g.kernel[0]; kh++) {
                    int64_t ih = h0 + kh * g.dilation[0];
                    if (ih < 0 || ih >= H) continue;
                    for (int64_t kw = 0; kw < g.kernel[1]; kw++) {
                        int64_t iw = w0 + kw * g.dilation[1];
                        if (iw < 0 || iw >= W) continue;
                        double v = ir_load_f64(x->dtype, x->data, base + (size_t)(ih * W + iw));
                        if (!is_max)
                            acc += v;
                        else if (v != v || v > acc) /* NaN propagates */
                            acc = v;
                        valid++;
                    }
                }
                if (!is_max) {
                    int64_t div = valid;
                    if (g.count_include_pad) {
                        /* Positions inside the explicit pads count; those past
                         * them (a ceil_mode window) do not. */
                        int64_t h1 = h0 + g.kernel[0], w1 = w0 + g.kernel[1];
                        if (h1 > H + g.pad[2]) h1 = H + g.pad[2];
                        if (w1 > W + g.pad[3]) w1 = W + g.pad[3];
                        div = (h1 - h0) * (w1 - w0);
                    }
                    acc /= (double)div;
                }
                ir_store_f64(y->dtype, y->data, o, acc);
            }
    }
    return 0;
}

/* ---- MaxPool2D ---- */

static const ir_attrdef maxpool_attrs[] = {
    IR_ATTR_REQ("kernel_shape", IR_ATTR_INTS),
    IR_ATTR_OPT("strides", IR_ATTR_INTS),
    IR_ATTR_OPT("pads", IR_ATTR_INTS),
    IR_ATTR_OPT("dilations", IR_ATTR_INTS),
    IR_ATTR_I("ceil_mode", 0),
};

static int infer_maxpool(ir_infer_ctx *cx) { return infer_pool(cx, true); }
static int kernel_maxpool(ir_kernel_ctx *kx) { return run_pool(kx, true); }

const ir_opdef ir_opdef_MaxPool2D = {
    .name = "MaxPool2D", .min_inputs = 1, .max_inputs = 1, .noutputs = 1,
    .attrs = maxpool_attrs, .nattrs = 5,
    .infer = infer_maxpool, .kernel = kernel_maxpool, .grad = ir_grad_MaxPool2D,
    .doc = "Max over 2-D windows of NCHW input; kernel_shape, strides, pads (-inf), dilations, "
           "ceil_mode.",
};

/* ---- AveragePool2D ---- */

static const ir_attrdef avgpool_attrs[] = {
    IR_ATTR_REQ("kernel_shape", IR_ATTR_INTS),
    IR_ATTR_OPT("strides", IR_ATTR_INTS),
    IR_ATTR_OPT("pads", IR_ATTR_INTS),
    IR_ATTR_I("ceil_mode", 0),
    IR_ATTR_I("count_include_pad", 0),
};

static int infer_avgpool(ir_infer_ctx *cx) { return infer_pool(cx, false); }
static int kernel_avgpool(ir_kernel_ctx *kx) { return run_pool(kx, false); }

const ir_opdef ir_opdef_AveragePool2D = {
    .name = "AveragePool2D", .min_inputs = 1, .max_inputs = 1, .noutputs = 1,
    .attrs = avgpool_attrs, .nattrs = 5,
    .infer = infer_avgpool, .kernel = kernel_avgpool, .grad = ir_grad_AveragePool2D,
    .doc = "Mean over 2-D windows of NCHW input; kernel_shape, strides, pads, ceil_mode, "
           "count_include_pad.",
};

/* ---- GlobalAveragePool ---- */

static int infer_gap(ir_infer_ctx *cx)
{
    if (check_x(cx)) return -1;
    cx->out[0] = cx->in[0];
    cx->out[0].dims[2] = cx->out[0].dims[3] = 1;
    return 0;
}

static int kernel_gap(ir_kernel_ctx *kx)
{
    const kiln_tensor *x = kx->in[0];
    kiln_tensor *y = kx->out[0];
    size_t plane = (size_t)(x->dims[2] * x->dims[3]);
    for (size_t p = 0; p < y->size; p++) {
        double acc = 0.0;
        for (size_t i = 0; i < plane; i++) acc += ir_load_f64(x->dtype, x->data, p * plane + i);
        ir_store_f64(y->dtype, y->data, p, acc / (double)plane); /* empty plane: NaN */
    }
    return 0;
}

const ir_opdef ir_opdef_GlobalAveragePool = {
    .name = "GlobalAveragePool", .min_inputs = 1, .max_inputs = 1, .noutputs = 1,
    .infer = infer_gap, .kernel = kernel_gap, .grad = ir_grad_GlobalAveragePool,
    .doc = "Mean over H and W of NCHW input: [N,C,H,W] -> [N,C,1,1].",
};
