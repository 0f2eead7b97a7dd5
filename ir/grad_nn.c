/* grad_nn.c -- gradient rules for the convolutions, pools, normalizations,
 * indexing and tiling ops, ReduceMax/Min/Prod, the ops of ir/ops/math.c
 * and the backward ops of ir/ops/train.c. Like ir/grad.c, rules are built
 * from ordinary ops; where no forward op computes a gradient exactly, the
 * rule uses a backward op of ir/ops/train.c. */
#include <math.h>
#include <string.h>

#include "ir.h"

/* v's type, or NULL when v is invalid (a builder call failed, e.g. out of
 * memory; the error is on the graph). */
static const ir_type *vtype(ir_grad_ctx *gx, kiln_value v)
{
    return ir_value_valid(gx->g, v) ? ir_value_type(gx->g, v) : NULL;
}

/* A scalar of like's dtype (invalid when like is). */
static kiln_value cst(ir_grad_ctx *gx, kiln_value like, double v)
{
    const ir_type *t = vtype(gx, like);
    return t ? kiln_scalar(gx->g, t->dtype, v) : kiln_value_invalid();
}

/* Copies node attribute `name` (INTS or INT) into a when the node has it set. */
static void copy_attr(kiln_attrs *a, const ir_node *n, const char *name)
{
    const ir_attr *v = ir_node_attr(n, name);
    if (!v) return;
    if (v->kind == IR_ATTR_INTS) kiln_attrs_ints(a, name, v->u.ints, v->n);
    else if (v->kind == IR_ATTR_INT) kiln_attrs_int(a, name, v->u.i);
}

/* Runs op on inputs with the attributes in a, then frees a. */
static kiln_value op_with(ir_grad_ctx *gx, const char *op, const kiln_value *in, int n, kiln_attrs *a)
{
    kiln_value v = kiln_op(gx->g, op, in, n, a);
    kiln_attrs_free(a);
    return v;
}

/* A Constant of zeros of type t (which must be static). */
static kiln_value zeros(ir_grad_ctx *gx, const ir_type *t, const char *what)
{
    if (!ir_type_is_static(t)) {
        char b[IR_TYPE_STR_MAX];
        ir_grad_error(gx, KILN_ERR_UNIMPLEMENTED, "a zero gradient for %s needs a static shape, got %s",
                      what, ir_type_str(t, b, sizeof b));
        return kiln_value_invalid();
    }
    kiln_tensor *c = ir_tensor_new_type(t);
    if (!c) {
        ir_grad_error(gx, KILN_ERR_OUT_OF_MEMORY, "out of memory");
        return kiln_value_invalid();
    }
    kiln_value r = kiln_constant(gx->g, NULL, c);
    kiln_tensor_free(c);
    return r;
}

/* Requires dims [first, last) of t to be static; `what` names the value. */
static int need_static(ir_grad_ctx *gx, const ir_type *t, int first, int last, const char *what)
{
    for (int d = first; d < last; d++)
        if (t->dims[d] < 0) {
            char b[IR_TYPE_STR_MAX];
            return ir_grad_error(gx, KILN_ERR_UNIMPLEMENTED, "needs static dims %d..%d of %s, got %s",
                                 first, last - 1, what, ir_type_str(t, b, sizeof b));
        }
    return 0;
}

/* ---- convolutions ---- */

typedef struct {
    int64_t stride[2], dilation[2], pad[4], group, kernel[2];
} conv_attrs;

static void read_conv(const ir_node *n, conv_attrs *c)
{
    static const char *const names[3] = {"strides", "dilations", "pads"};
    int64_t *dst[3] = {c->stride, c->dilation, c->pad};
    for (int a = 0; a < 3; a++) {
        int cnt, want = a == 2 ? 4 : 2;
        const int64_t *v = ir_node_ints(n, names[a], &cnt);
        for (int i = 0; i < want; i++) dst[a][i] = cnt == want ? v[i] : a == 2 ? 0 : 1;
    }
    c->group = ir_node_int(n, "group");
}

static kiln_attrs *conv_attr_bag(const conv_attrs *c, const int64_t *pads)
{
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_ints(a, "strides", c->stride, 2);
    kiln_attrs_ints(a, "dilations", c->dilation, 2);
    kiln_attrs_ints(a, "pads", pads ? pads : c->pad, 4);
    kiln_attrs_int(a, "group", c->group);
    return a;
}

/* Pads (zeros) or crops dims 2 and 3 of a rank-4 v at their end to h, w. */
static kiln_value fit_hw(ir_grad_ctx *gx, kiln_value v, int64_t h, int64_t w)
{
    const ir_type *t = vtype(gx, v);
    if (!t) return kiln_value_invalid();
    int64_t dh = h - t->dims[2], dw = w - t->dims[3];
    if (dh == 0 && dw == 0) return v;
    int64_t pads[8] = {0, 0, 0, 0, 0, 0, dh, dw};
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_ints(a, "pads", pads, 8);
    return op_with(gx, "Pad", &v, 1, a);
}

/* The adjoint of "Conv2D of an input of type xt" applied to dy [N, ., OH,
 * OW]: ConvTranspose2D(dy, w), its bottom/right pads chosen so that it
 * gives at most xt's height and width, then zero-padded to them (input
 * positions no tap reaches get zero; when no tap reaches the input at all,
 * zeros). w is OIHW for the conv (IOHW for the transpose). */
static kiln_value conv_input_grad(ir_grad_ctx *gx, kiln_value dy, kiln_value w, const conv_attrs *c,
                                  const ir_type *xt)
{
    const ir_type *dt = vtype(gx, dy);
    if (!dt) return kiln_value_invalid();
    int64_t pads[4] = {c->pad[0], c->pad[1], 0, 0};
    for (int i = 0; i < 2; i++) {
        int64_t ext = c->dilation[i] * (c->kernel[i] - 1) + 1;
        int64_t reach = c->stride[i] * (dt->dims[2 + i] - 1) + ext - c->pad[i];
        if (reach < 1) return zeros(gx, xt, "an input only padding reaches");
        pads[2 + i] = reach > xt->dims[2 + i] ? reach - xt->dims[2 + i] : 0;
    }
    kiln_value r = op_with(gx, "ConvTranspose2D", (kiln_value[]){dy, w}, 2, conv_attr_bag(c, pads));
    return fit_hw(gx, r, xt->dims[2], xt->dims[3]);
}

/* The adjoint of "ConvTranspose2D giving an [., ., h, w] output" (and of
 * Conv2DFilterGrad's dy) applied to v: Conv2D(v, w) with the bottom/right
 * pads raised until every one of the oh x ow outputs exists, then cropped
 * to oh x ow. */
static kiln_value conv_output_grad(ir_grad_ctx *gx, kiln_value v, kiln_value w, const conv_attrs *c,
                                   int64_t oh, int64_t ow)
{
    const ir_type *vt = vtype(gx, v);
    if (!vt) return kiln_value_invalid();
    int64_t target[2] = {oh, ow}, pads[4] = {c->pad[0], c->pad[1], c->pad[2], c->pad[3]};
    for (int i = 0; i < 2; i++) {
        int64_t ext = c->dilation[i] * (c->kernel[i] - 1) + 1;
        int64_t need = c->stride[i] * (target[i] - 1) + ext - vt->dims[2 + i] - c->pad[i];
        if (need > pads[2 + i]) pads[2 + i] = need;
    }
    kiln_value r = op_with(gx, "Conv2D", (kiln_value[]){v, w}, 2, conv_attr_bag(c, pads));
    return fit_hw(gx, r, oh, ow);
}

static kiln_value filter_grad(ir_grad_ctx *gx, kiln_value x, kiln_value dy, const conv_attrs *c)
{
    kiln_attrs *a = conv_attr_bag(c, NULL);
    kiln_attrs_ints(a, "kernel_shape", c->kernel, 2);
    return op_with(gx, "Conv2DFilterGrad", (kiln_value[]){x, dy}, 2, a);
}

static kiln_value bias_grad(ir_grad_ctx *gx, kiln_value dy)
{
    return kiln_reduce_sum(gx->g, dy, (int64_t[]){0, 2, 3}, 3, 0);
}

/* y = Conv2D(x, w, b): dx is the transposed convolution of dy, dw the
 * filter gradient, db the sum of dy over N, H, W. */
int ir_grad_Conv2D(ir_grad_ctx *gx)
{
    kiln_value x = gx->inputs[0], w = gx->inputs[1], dy = gx->dy[0];
    ir_type xt = *vtype(gx, x), wt = *vtype(gx, w);
    if (need_static(gx, &xt, 2, 4, "x") || need_static(gx, &wt, 2, 4, "w")) return -1;
    conv_attrs c;
    read_conv(&gx->n, &c);
    c.kernel[0] = wt.dims[2];
    c.kernel[1] = wt.dims[3];
    gx->dx[0] = conv_input_grad(gx, dy, w, &c, &xt);
    gx->dx[1] = filter_grad(gx, x, dy, &c);
    if (gx->n.ninputs > 2) gx->dx[2] = bias_grad(gx, dy);
    return 0;
}

/* y = ConvTranspose2D(x, w, b) is the adjoint of Conv2D(., w): dx is the
 * convolution of dy with w, dw the filter gradient with the roles of x and
 * dy swapped. */
int ir_grad_ConvTranspose2D(ir_grad_ctx *gx)
{
    kiln_value x = gx->inputs[0], w = gx->inputs[1], dy = gx->dy[0];
    ir_type xt = *vtype(gx, x), wt = *vtype(gx, w);
    if (need_static(gx, &xt, 2, 4, "x") || need_static(gx, &wt, 2, 4, "w")) return -1;
    conv_attrs c;
    read_conv(&gx->n, &c);
    c.kernel[0] = wt.dims[2];
    c.kernel[1] = wt.dims[3];
    gx->dx[0] = conv_output_grad(gx, dy, w, &c, xt.dims[2], xt.dims[3]);
    gx->dx[1] = filter_grad(gx, dy, x, &c);
    if (gx->n.ninputs > 2) gx->dx[2] = bias_grad(gx, dy);
    return 0;
}

/* dW = Conv2DFilterGrad(x, dy) is bilinear: given dL/ddW = g, dL/ddy is
 * Conv2D(x, g) and dL/dx the transposed convolution of dy with g. */
int ir_grad_Conv2DFilterGrad(ir_grad_ctx *gx)
{
    kiln_value x = gx->inputs[0], d = gx->inputs[1], gw = gx->dy[0];
    ir_type xt = *vtype(gx, x), dt = *vtype(gx, d);
    if (need_static(gx, &xt, 2, 4, "x") || need_static(gx, &dt, 2, 4, "dy")) return -1;
    conv_attrs c;
    read_conv(&gx->n, &c);
    int cnt;
    const int64_t *k = ir_node_ints(&gx->n, "kernel_shape", &cnt);
    c.kernel[0] = k[0];
    c.kernel[1] = k[1];
    gx->dx[0] = conv_input_grad(gx, d, gw, &c, &xt);
    gx->dx[1] = conv_output_grad(gx, x, gw, &c, dt.dims[2], dt.dims[3]);
    return 0;
}

/* ---- pools ---- */

static int pool_grad(ir_grad_ctx *gx, const char *op, const char *const *names, int nnames)
{
    kiln_attrs *a = kiln_attrs_new();
    for (int i = 0; i < nnames; i++) copy_attr(a, &gx->n, names[i]);
    gx->dx[0] = op_with(gx, op, (kiln_value[]){gx->inputs[0], gx->dy[0]}, 2, a);
    return 0;
}

int ir_grad_MaxPool2D(ir_grad_ctx *gx)
{
    static const char *const names[] = {"kernel_shape", "strides", "pads", "dilations", "ceil_mode"};
    return pool_grad(gx, "MaxPool2DGrad", names, 5);
}

int ir_grad_AveragePool2D(ir_grad_ctx *gx)
{
    static const char *const names[] = {"kernel_shape", "strides", "pads", "ceil_mode",
                                        "count_include_pad"};
    return pool_grad(gx, "AveragePool2DGrad", names, 5);
}

/* MaxPool2DGrad is linear in dy, with adjoint MaxPool2DSelect; in x it is
 * piecewise constant (the argmax moves only at ties), so x gets none. */
int ir_grad_MaxPool2DGrad(ir_grad_ctx *gx)
{
    static const char *const names[] = {"kernel_shape", "strides", "pads", "dilations", "ceil_mode"};
    kiln_attrs *a = kiln_attrs_new();
    for (int i = 0; i < 5; i++) copy_attr(a, &gx->n, names[i]);
    gx->dx[1] = op_with(gx, "MaxPool2DSelect", (kiln_value[]){gx->inputs[0], gx->dy[0]}, 2, a);
    return 0;
}

/* AveragePool2DGrad is linear in dy; its adjoint is the pool itself. */
int ir_grad_AveragePool2DGrad(ir_grad_ctx *gx)
{
    static const char *const names[] = {"kernel_shape", "strides", "pads", "ceil_mode",
                                        "count_include_pad"};
    kiln_attrs *a = kiln_attrs_new();
    for (int i = 0; i < 5; i++) copy_attr(a, &gx->n, names[i]);
    gx->dx[1] = op_with(gx, "AveragePool2D", &gx->dy[0], 1, a);
    return 0;
}

int ir_grad_GlobalAveragePool(ir_grad_ctx *gx)
{
    ir_type xt = *vtype(gx, gx->inputs[0]);
    if (need_static(gx, &xt, 0, 4, "x")) return -1;
    kiln_value e = kiln_expand(gx->g, gx->dy[0], xt.dims, 4);
    double plane = (double)(xt.dims[2] * xt.dims[3]);
    gx->dx[0] = kiln_mul(gx->g, e, cst(gx, e, plane > 0 ? 1.0 / plane : 0.0));
    return 0;
}

/* ---- normalizations ---- */

/* BatchNormalization (inference form): y = k (x - mean) + bias with
 * k = scale / sqrt(var + eps), per channel (axis 1). */
int ir_grad_BatchNormalization(ir_grad_ctx *gx)
{
    kiln_graph *g = gx->g;
    kiln_value x = gx->inputs[0], scale = gx->inputs[1], mean = gx->inputs[3], var = gx->inputs[4];
    kiln_value dy = gx->dy[0];
    int r = vtype(gx, x)->rank;
    int64_t bc_axes[IR_MAX_RANK], red[IR_MAX_RANK];
    int nbc = 0, nred = 0;
    for (int d = 2; d < r; d++) bc_axes[nbc++] = d - 1;
    red[nred++] = 0;
    for (int d = 2; d < r; d++) red[nred++] = d;
#define BC(v) (nbc ? kiln_unsqueeze(g, (v), bc_axes, nbc) : (v))
    double eps = ir_node_float(&gx->n, "epsilon");
    kiln_value inv = kiln_rsqrt(g, kiln_add(g, var, cst(gx, var, eps)));
    kiln_value k = kiln_mul(g, scale, inv);
    kiln_value xc = kiln_sub(g, x, BC(mean));
    kiln_value sdy = kiln_reduce_sum(g, dy, red, nred, 0);
    kiln_value sdyxc = kiln_reduce_sum(g, kiln_mul(g, dy, xc), red, nred, 0);
    gx->dx[0] = kiln_mul(g, dy, BC(k));
    gx->dx[1] = kiln_mul(g, sdyxc, inv);
    gx->dx[2] = sdy;
    gx->dx[3] = kiln_neg(g, kiln_mul(g, sdy, k));
    kiln_value inv3 = kiln_mul(g, inv, kiln_mul(g, inv, inv));
    gx->dx[4] = kiln_mul(g, kiln_mul(g, sdyxc, scale), kiln_mul(g, inv3, cst(gx, inv, -0.5)));
#undef BC
    return 0;
}

/* LayerNormalization over dims [axis, rank): with xhat = (x - mu) * inv and
 * g = dy * scale, dx = inv * (g - mean(g) - xhat * mean(g * xhat)). */
int ir_grad_LayerNormalization(ir_grad_ctx *gx)
{
    kiln_graph *g = gx->g;
    kiln_value x = gx->inputs[0], scale = gx->inputs[1], dy = gx->dy[0];
    int r = vtype(gx, x)->rank, ax;
    if (!ir_norm_axis(ir_node_int(&gx->n, "axis"), r, &ax))
        return ir_grad_error(gx, KILN_ERR_INTERNAL, "axis out of range");
    int64_t axes[IR_MAX_RANK];
    int na = 0;
    for (int d = ax; d < r; d++) axes[na++] = d;
    double eps = ir_node_float(&gx->n, "epsilon");
    kiln_value xc = kiln_sub(g, x, kiln_reduce_mean(g, x, axes, na, 1));
    kiln_value var = kiln_reduce_mean(g, kiln_mul(g, xc, xc), axes, na, 1);
    kiln_value inv = kiln_rsqrt(g, kiln_add(g, var, cst(gx, var, eps)));
    kiln_value xhat = kiln_mul(g, xc, inv);
    kiln_value gd = kiln_mul(g, dy, scale);
    kiln_value m1 = kiln_reduce_mean(g, gd, axes, na, 1);
    kiln_value m2 = kiln_reduce_mean(g, kiln_mul(g, gd, xhat), axes, na, 1);
    gx->dx[0] = kiln_mul(g, inv, kiln_sub(g, kiln_sub(g, gd, m1), kiln_mul(g, xhat, m2)));
    ir_type st = *vtype(gx, scale);
    gx->dx[1] = ir_grad_unbroadcast(g, kiln_mul(g, dy, xhat), &st);
    if (gx->n.ninputs > 2) {
        ir_type bt = *vtype(gx, gx->inputs[2]);
        gx->dx[2] = ir_grad_unbroadcast(g, dy, &bt);
    }
    return 0;
}

/* ---- indexing, splitting, padding, tiling ---- */

int ir_grad_Gather(ir_grad_ctx *gx)
{
    ir_type xt = *vtype(gx, gx->inputs[0]);
    int a;
    if (!ir_norm_axis(ir_node_int(&gx->n, "axis"), xt.rank, &a))
        return ir_grad_error(gx, KILN_ERR_INTERNAL, "axis out of range");
    if (need_static(gx, &xt, a, a + 1, "data")) return -1;
    kiln_attrs *at = kiln_attrs_new();
    kiln_attrs_int(at, "axis", a);
    kiln_attrs_int(at, "axis_size", xt.dims[a]);
    gx->dx[0] = op_with(gx, "GatherGrad", (kiln_value[]){gx->dy[0], gx->inputs[1]}, 2, at);
    return 0;
}

/* GatherGrad is linear in dy; its adjoint gathers. */
int ir_grad_GatherGrad(ir_grad_ctx *gx)
{
    gx->dx[0] = kiln_gather(gx->g, gx->dy[0], gx->inputs[1], (int)ir_node_int(&gx->n, "axis"));
    return 0;
}

/* The output gradients concatenated; zeros for outputs nothing used. */
int ir_grad_Split(ir_grad_ctx *gx)
{
    int n = gx->n.noutputs, a;
    if (!ir_norm_axis(ir_node_int(&gx->n, "axis"), gx->n.outputs[0].rank, &a))
        return ir_grad_error(gx, KILN_ERR_INTERNAL, "axis out of range");
    kiln_value *parts = ir_malloc(sizeof *parts * (size_t)n);
    if (!parts) return ir_grad_error(gx, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    int rc = 0;
    for (int k = 0; k < n && rc == 0; k++) {
        parts[k] = gx->dy[k];
        if (kiln_value_ok(parts[k])) continue;
        ir_type t = gx->n.outputs[k];
        parts[k] = zeros(gx, &t, "an unused output");
        if (!kiln_value_ok(parts[k])) rc = -1;
    }
    if (rc == 0) gx->dx[0] = n == 1 ? parts[0] : kiln_concat(gx->g, parts, n, a);
    ir_free(parts);
    return rc;
}

/* v[s:e] along axis, or the same elements in reverse order (step -1;
 * dimsize is v's size there). */
static kiln_value slice_axis(ir_grad_ctx *gx, kiln_value v, int axis, int64_t s, int64_t e, bool rev,
                             int64_t dimsize)
{
    int64_t ax = axis, step = rev ? -1 : 1;
    int64_t st = rev ? e - 1 : s, en = rev ? (s > 0 ? s - 1 : -dimsize - 1) : e;
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_ints(a, "starts", &st, 1);
    kiln_attrs_ints(a, "ends", &en, 1);
    kiln_attrs_ints(a, "axes", &ax, 1);
    if (rev) kiln_attrs_ints(a, "steps", &step, 1);
    return op_with(gx, "Slice", &v, 1, a);
}

/* v with b zeros before and e after along axis. */
static kiln_value pad_axis(ir_grad_ctx *gx, kiln_value v, int axis, int rank, int64_t b, int64_t e)
{
    if (b == 0 && e == 0) return v;
    int64_t pads[2 * IR_MAX_RANK] = {0};
    pads[axis] = b;
    pads[rank + axis] = e;
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_ints(a, "pads", pads, 2 * rank);
    return op_with(gx, "Pad", &v, 1, a);
}

static kiln_value add_part(ir_grad_ctx *gx, kiln_value acc, kiln_value part)
{
    return kiln_value_ok(acc) ? kiln_add(gx->g, acc, part) : part;
}

/* The adjoint of reflect or edge padding along one axis (x's size there
 * dim, pads b before and e after, either may crop): the copied middle goes
 * back in place, and each padded element is added to the element it
 * copied -- the first/last one (edge) or its mirror image (reflect). */
static kiln_value unpad_axis(ir_grad_ctx *gx, kiln_value v, int axis, int rank, int64_t dim,
                             int64_t b, int64_t e, bool edge)
{
    kiln_graph *g = gx->g;
    int64_t ydim = dim + b + e, ax = axis;
    int64_t lo = b < 0 ? -b : 0, hi = ydim - b < dim ? ydim - b : dim;
    kiln_value acc = kiln_value_invalid();
    if (hi > lo)
        acc = pad_axis(gx, slice_axis(gx, v, axis, lo + b, hi + b, false, ydim), axis, rank, lo, dim - hi);
    int64_t left = b < ydim ? b : ydim; /* y[0, left) reads before x */
    if (b > 0 && left > 0) {
        kiln_value t;
        if (edge)
            t = pad_axis(gx, kiln_reduce_sum(g, slice_axis(gx, v, axis, 0, left, false, ydim), &ax, 1, 1),
                         axis, rank, 0, dim - 1);
        else /* y[i] = x[b - i]: x[b - left + 1 .. b] in reverse */
            t = pad_axis(gx, slice_axis(gx, v, axis, 0, left, true, ydim), axis, rank, b - left + 1,
                         dim - 1 - b);
        acc = add_part(gx, acc, t);
    }
    int64_t s = b + dim > 0 ? b + dim : 0, n = ydim - s; /* y[s, ydim) reads past x */
    if (e > 0 && n > 0) {
        int64_t c0 = s - b;
        kiln_value t;
        if (edge)
            t = pad_axis(gx, kiln_reduce_sum(g, slice_axis(gx, v, axis, s, ydim, false, ydim), &ax, 1, 1),
                         axis, rank, dim - 1, 0);
        else /* y[s + k] = x[2 (dim - 1) - c0 - k] */
            t = pad_axis(gx, slice_axis(gx, v, axis, s, ydim, true, ydim), axis, rank,
                         2 * dim - 1 - c0 - n, c0 - dim + 1);
        acc = add_part(gx, acc, t);
    }
    return kiln_value_ok(acc) ? acc : slice_axis(gx, v, axis, 0, 0, false, ydim);
}

/* Constant mode: Pad with the pads negated crops what was padded and
 * zero-fills what was cropped. Reflect and edge: one axis at a time (the
 * padding is an index map per axis), unpad_axis. */
int ir_grad_Pad(ir_grad_ctx *gx)
{
    const char *mode = ir_node_string(&gx->n, "mode");
    int n;
    const int64_t *pads = ir_node_ints(&gx->n, "pads", &n);
    if (!mode || strcmp(mode, "constant") == 0) {
        int64_t neg[2 * IR_MAX_RANK];
        for (int i = 0; i < n && i < 2 * IR_MAX_RANK; i++) neg[i] = -pads[i];
        kiln_attrs *a = kiln_attrs_new();
        kiln_attrs_ints(a, "pads", neg, n);
        gx->dx[0] = op_with(gx, "Pad", &gx->dy[0], 1, a);
        return 0;
    }
    bool edge = strcmp(mode, "edge") == 0;
    if (!edge && strcmp(mode, "reflect") != 0)
        return ir_grad_error(gx, KILN_ERR_UNIMPLEMENTED, "mode '%s' has no gradient rule", mode);
    ir_type xt = *vtype(gx, gx->inputs[0]);
    if (need_static(gx, &xt, 0, xt.rank, "x")) return -1;
    kiln_value v = gx->dy[0];
    for (int d = 0; d < xt.rank && kiln_value_ok(v); d++)
        if (pads[d] != 0 || pads[xt.rank + d] != 0)
            v = unpad_axis(gx, v, d, xt.rank, xt.dims[d], pads[d], pads[xt.rank + d], edge);
    gx->dx[0] = v;
    return 0;
}

/* Each repeated axis d in turn: the gradient, seen as [before, r, x_d,
 * after], summed over r. */
int ir_grad_Tile(ir_grad_ctx *gx)
{
    kiln_graph *g = gx->g;
    ir_type xt = *vtype(gx, gx->inputs[0]);
    if (need_static(gx, &xt, 0, xt.rank, "x")) return -1;
    int n;
    const int64_t *rep = ir_node_ints(&gx->n, "repeats", &n);
    ir_type cur = gx->n.outputs[0];
    for (int d = 0; d < xt.rank; d++)
        if (rep[d] == 0) {
            gx->dx[0] = zeros(gx, &xt, "Tile with a zero repeat");
            return kiln_value_ok(gx->dx[0]) ? 0 : -1;
        }
    kiln_value v = gx->dy[0];
    for (int d = 0; d < xt.rank; d++) {
        if (rep[d] == 1) continue;
        int64_t before = 1, after = 1;
        for (int e = 0; e < d; e++) before *= cur.dims[e];
        for (int e = d + 1; e < cur.rank; e++) after *= cur.dims[e];
        v = kiln_reshape(g, v, (int64_t[]){before, rep[d], xt.dims[d], after}, 4);
        v = kiln_reduce_sum(g, v, (int64_t[]){1}, 1, 0);
        cur.dims[d] = xt.dims[d];
        v = kiln_reshape(g, v, cur.dims, cur.rank);
    }
    gx->dx[0] = v;
    return 0;
}

/* ---- ReduceMax, ReduceMin, ReduceProd ---- */

/* The reduced axes (ascending) of a reduction node over an input of rank r. */
static int reduced_axes(ir_grad_ctx *gx, int r, int64_t *ax, int *nax)
{
    int n;
    const int64_t *axes = ir_node_ints(&gx->n, "axes", &n);
    bool red[IR_MAX_RANK] = {false};
    for (int i = 0; i < n; i++) {
        int a;
        if (!ir_norm_axis(axes[i], r, &a))
            return ir_grad_error(gx, KILN_ERR_INTERNAL, "axis %lld out of range", (long long)axes[i]);
        red[a] = true;
    }
    *nax = 0;
    for (int d = 0; d < r; d++)
        if (red[d] || n == 0) ax[(*nax)++] = d;
    return 0;
}

/* v (the reduction's output or its gradient) with the reduced dims kept as 1. */
static kiln_value kept(ir_grad_ctx *gx, kiln_value v, const int64_t *ax, int nax)
{
    if (ir_node_int(&gx->n, "keepdims") || nax == 0) return v;
    return kiln_unsqueeze(gx->g, v, ax, nax);
}

/* The gradient goes to the elements equal to the extreme, split evenly
 * among ties (a NaN extreme gives zero gradient). */
static int grad_extreme(ir_grad_ctx *gx)
{
    kiln_graph *g = gx->g;
    kiln_value x = gx->inputs[0];
    int64_t ax[IR_MAX_RANK];
    int nax;
    if (reduced_axes(gx, vtype(gx, x)->rank, ax, &nax)) return -1;
    kiln_value y = kept(gx, gx->outputs[0], ax, nax), dy = kept(gx, gx->dy[0], ax, nax);
    kiln_value mask = kiln_equal(g, x, y);
    kiln_value cnt = kiln_reduce_sum(g, kiln_cast(g, mask, vtype(gx, x)->dtype), ax, nax, 1);
    gx->dx[0] = kiln_where(g, mask, kiln_div(g, dy, cnt), cst(gx, x, 0));
    return 0;
}

int ir_grad_ReduceMax(ir_grad_ctx *gx) { return grad_extreme(gx); }
int ir_grad_ReduceMin(ir_grad_ctx *gx) { return grad_extreme(gx); }

/* The product of the other elements, without dividing by zero: with no
 * zero in the slice it is prod / x; with exactly one zero, the product of
 * the non-zeros at the zero and 0 elsewhere; with more, 0. */
int ir_grad_ReduceProd(ir_grad_ctx *gx)
{
    kiln_graph *g = gx->g;
    kiln_value x = gx->inputs[0];
    kiln_dtype dt = vtype(gx, x)->dtype;
    int64_t ax[IR_MAX_RANK];
    int nax;
    if (reduced_axes(gx, vtype(gx, x)->rank, ax, &nax)) return -1;
    kiln_value dy = kept(gx, gx->dy[0], ax, nax), zero = cst(gx, x, 0), one = cst(gx, x, 1);
    kiln_value z = kiln_equal(g, x, zero);
    kiln_value nz = kiln_reduce_sum(g, kiln_cast(g, z, dt), ax, nax, 1);
    kiln_value xnz = kiln_where(g, z, one, x);
    kiln_attrs *a = kiln_attrs_new();
    if (nax) kiln_attrs_ints(a, "axes", ax, nax);
    kiln_attrs_int(a, "keepdims", 1);
    kiln_value pnz = op_with(gx, "ReduceProd", &xnz, 1, a);
    kiln_value one_zero = kiln_and(g, kiln_equal(g, nz, one), z);
    kiln_value other = kiln_where(g, one_zero, pnz, zero);
    kiln_value d = kiln_where(g, kiln_equal(g, nz, zero), kiln_div(g, pnz, xnz), other);
    gx->dx[0] = kiln_mul(g, dy, d);
    return 0;
}

/* ---- math.c ---- */

static kiln_value op1(ir_grad_ctx *gx, const char *op, kiln_value x)
{
    return kiln_op(gx->g, op, &x, 1, NULL);
}

static int set_dx(ir_grad_ctx *gx, kiln_value d)
{
    gx->dx[0] = kiln_mul(gx->g, gx->dy[0], d);
    return 0;
}

/* 1 - x^2 and 1 + x^2 */
static kiln_value one_pm_sq(ir_grad_ctx *gx, kiln_value x, bool plus)
{
    kiln_value sq = kiln_mul(gx->g, x, x), one = cst(gx, x, 1);
    return plus ? kiln_add(gx->g, one, sq) : kiln_sub(gx->g, one, sq);
}

int ir_grad_Sin(ir_grad_ctx *gx) { return set_dx(gx, op1(gx, "Cos", gx->inputs[0])); }
int ir_grad_Cos(ir_grad_ctx *gx) { return set_dx(gx, kiln_neg(gx->g, op1(gx, "Sin", gx->inputs[0]))); }
int ir_grad_Tan(ir_grad_ctx *gx) { return set_dx(gx, one_pm_sq(gx, gx->outputs[0], true)); }
int ir_grad_Asin(ir_grad_ctx *gx) { return set_dx(gx, kiln_rsqrt(gx->g, one_pm_sq(gx, gx->inputs[0], false))); }
int ir_grad_Acos(ir_grad_ctx *gx)
{
    return set_dx(gx, kiln_neg(gx->g, kiln_rsqrt(gx->g, one_pm_sq(gx, gx->inputs[0], false))));
}
int ir_grad_Atan(ir_grad_ctx *gx) { return set_dx(gx, kiln_reciprocal(gx->g, one_pm_sq(gx, gx->inputs[0], true))); }
int ir_grad_Sinh(ir_grad_ctx *gx) { return set_dx(gx, op1(gx, "Cosh", gx->inputs[0])); }
int ir_grad_Cosh(ir_grad_ctx *gx) { return set_dx(gx, op1(gx, "Sinh", gx->inputs[0])); }
int ir_grad_Asinh(ir_grad_ctx *gx) { return set_dx(gx, kiln_rsqrt(gx->g, one_pm_sq(gx, gx->inputs[0], true))); }
int ir_grad_Atanh(ir_grad_ctx *gx)
{
    return set_dx(gx, kiln_reciprocal(gx->g, one_pm_sq(gx, gx->inputs[0], false)));
}
/* 1 / sqrt(x^2 - 1), as rsqrt(x - 1) * rsqrt(x + 1) to keep precision near 1 */
int ir_grad_Acosh(ir_grad_ctx *gx)
{
    kiln_graph *g = gx->g;
    kiln_value x = gx->inputs[0], one = cst(gx, x, 1);
    return set_dx(gx, kiln_mul(g, kiln_rsqrt(g, kiln_sub(g, x, one)), kiln_rsqrt(g, kiln_add(g, x, one))));
}

/* Float Mod is C fmod: y = a - trunc(a / b) b, so dy/da = 1 and dy/db =
 * -trunc(a / b) = -(a - y) / b (exact: a - y is a multiple of b). */
int ir_grad_Mod(ir_grad_ctx *gx)
{
    kiln_graph *g = gx->g;
    kiln_value a = gx->inputs[0], b = gx->inputs[1], y = gx->outputs[0], dy = gx->dy[0];
    ir_type at = *vtype(gx, a), bt = *vtype(gx, b);
    gx->dx[0] = ir_grad_unbroadcast(g, dy, &at);
    kiln_value q = kiln_div(g, kiln_sub(g, a, y), b);
    gx->dx[1] = ir_grad_unbroadcast(g, kiln_neg(g, kiln_mul(g, dy, q)), &bt);
    return 0;
}

/* ---- the index ops of ir/ops/index.c ---- */

/* CumSum is linear; its adjoint runs the other way: dx_j = sum over the
 * outputs that included x_j (the same exclusivity, the reverse flag
 * flipped). */
int ir_grad_CumSum(ir_grad_ctx *gx)
{
    kiln_attrs *at = kiln_attrs_new();
    kiln_attrs_int(at, "axis", ir_node_int(&gx->n, "axis"));
    kiln_attrs_int(at, "exclusive", ir_node_int(&gx->n, "exclusive"));
    kiln_attrs_int(at, "reverse", !ir_node_int(&gx->n, "reverse"));
    gx->dx[0] = op_with(gx, "CumSum", (kiln_value[]){gx->dy[0]}, 1, at);
    return 0;
}

/* dy added into zeros of data's shape at the gathered positions. */
static kiln_value scatter_add_into_zeros(ir_grad_ctx *gx, kiln_value like, kiln_value indices, kiln_value dy,
                                         int64_t axis)
{
    ir_type t = *vtype(gx, like);
    kiln_value z = zeros(gx, &t, "the scattered gradient");
    if (!kiln_value_ok(z)) return z;
    kiln_attrs *at = kiln_attrs_new();
    kiln_attrs_int(at, "axis", axis);
    kiln_attrs_string(at, "reduction", "add");
    return op_with(gx, "ScatterElements", (kiln_value[]){z, indices, dy}, 3, at);
}

/* Every element of data read by k outputs gets the sum of their gradients. */
int ir_grad_GatherElements(ir_grad_ctx *gx)
{
    gx->dx[0] = scatter_add_into_zeros(gx, gx->inputs[0], gx->inputs[1], gx->dy[0], ir_node_int(&gx->n, "axis"));
    return kiln_value_ok(gx->dx[0]) ? 0 : -1;
}

/* The values of TopK are input elements: their gradients go back to the
 * positions the indices output names (distinct within a slice). */
int ir_grad_TopK(ir_grad_ctx *gx)
{
    if (!kiln_value_ok(gx->dy[0])) return 0; /* only the indices were used */
    gx->dx[0] = scatter_add_into_zeros(gx, gx->inputs[0], gx->outputs[1], gx->dy[0], ir_node_int(&gx->n, "axis"));
    return kiln_value_ok(gx->dx[0]) ? 0 : -1;
}

/* reduction "add": data passes dy through, updates gather it. "none": the
 * scattered positions of data are overwritten, so their gradient is zero,
 * and each update gets dy at its position (exact when no two updates hit
 * one position; with duplicates the last write wins in the op, but every
 * duplicate gets the gradient here). mul/max/min have no rule. */
int ir_grad_ScatterElements(ir_grad_ctx *gx)
{
    const char *red = ir_node_string(&gx->n, "reduction");
    int64_t axis = ir_node_int(&gx->n, "axis");
    bool add = red && strcmp(red, "add") == 0;
    if (red && !add && strcmp(red, "none") != 0)
        return ir_grad_error(gx, KILN_ERR_UNIMPLEMENTED, "no gradient rule for reduction '%s' (only none and add)", red);
    kiln_attrs *at = kiln_attrs_new();
    kiln_attrs_int(at, "axis", axis);
    gx->dx[2] = op_with(gx, "GatherElements", (kiln_value[]){gx->dy[0], gx->inputs[1]}, 2, at);
    if (add) {
        gx->dx[0] = gx->dy[0];
    } else {
        ir_type ut = *vtype(gx, gx->inputs[2]);
        ut.dtype = vtype(gx, gx->dy[0])->dtype;
        kiln_value z = zeros(gx, &ut, "the overwritten positions");
        if (!kiln_value_ok(z)) return -1;
        at = kiln_attrs_new();
        kiln_attrs_int(at, "axis", axis);
        gx->dx[0] = op_with(gx, "ScatterElements", (kiln_value[]){gx->dy[0], gx->inputs[1], z}, 3, at);
    }
    return kiln_value_ok(gx->dx[0]) && kiln_value_ok(gx->dx[2]) ? 0 : -1;
}

/* CumProd: CumProdGrad runs the two recurrences (ir/ops/train.c), with no
 * division by x, so zeros in x get their exact gradient. */
int ir_grad_CumProd(ir_grad_ctx *gx)
{
    kiln_attrs *at = kiln_attrs_new();
    kiln_attrs_int(at, "axis", ir_node_int(&gx->n, "axis"));
    kiln_attrs_int(at, "exclusive", ir_node_int(&gx->n, "exclusive"));
    kiln_attrs_int(at, "reverse", ir_node_int(&gx->n, "reverse"));
    gx->dx[0] = op_with(gx, "CumProdGrad", (kiln_value[]){gx->inputs[0], gx->dy[0]}, 2, at);
    return kiln_value_ok(gx->dx[0]) ? 0 : -1;
}

/* A rank-1 constant of n integers of dtype dt (i32 or i64). */
static kiln_value int_vector(ir_grad_ctx *gx, kiln_dtype dt, int n, const int64_t *v)
{
    kiln_tensor *t = kiln_tensor_new(dt, 1, (int64_t[]){n});
    if (!t) {
        ir_grad_error(gx, KILN_ERR_OUT_OF_MEMORY, "out of memory");
        return kiln_value_invalid();
    }
    for (int i = 0; i < n; i++) ir_store_i64(dt, kiln_tensor_data(t), (size_t)i, v[i]);
    kiln_value c = kiln_constant(gx->g, NULL, t);
    kiln_tensor_free(t);
    return c;
}

/* GatherND(dy, indices) for ScatterND's index tuples (the last dim of
 * indices, m of them, address the first m dims of data): each tuple,
 * negative entries wrapped, becomes one flat index into dy reshaped to
 * [prod(dims[:m]), dims[m:]...], and Gather picks the slices. */
static kiln_value gather_tuples(ir_grad_ctx *gx, kiln_value dy, kiln_value indices)
{
    kiln_graph *g = gx->g;
    const ir_type *dt = vtype(gx, dy), *it = vtype(gx, indices);
    if (!dt || !it) return kiln_value_invalid();
    int m = (int)it->dims[it->rank - 1];
    if (need_static(gx, dt, 0, dt->rank, "data")) return kiln_value_invalid();
    int64_t dims[IR_MAX_RANK], strides[IR_MAX_RANK], rs[IR_MAX_RANK];
    int64_t lead = 1;
    for (int d = m - 1; d >= 0; d--) {
        dims[d] = dt->dims[d];
        strides[d] = lead;
        lead *= dt->dims[d];
    }
    rs[0] = lead;
    for (int d = m; d < dt->rank; d++) rs[d - m + 1] = dt->dims[d];
    kiln_value dimv = int_vector(gx, it->dtype, m, dims), strv = int_vector(gx, it->dtype, m, strides);
    kiln_value zero = kiln_scalar(g, it->dtype, 0);
    kiln_value wrapped = kiln_where(g, kiln_less(g, indices, zero), kiln_add(g, indices, dimv), indices);
    kiln_value flat = kiln_reduce_sum(g, kiln_mul(g, wrapped, strv), (int64_t[]){-1}, 1, 0);
    return kiln_gather(g, kiln_reshape(g, dy, rs, dt->rank - m + 1), flat, 0);
}

/* ScatterND, reduction "none": the written slices of data get no
 * gradient and each update gets dy at its tuple; "add": data passes dy
 * through and updates gather it. mul/max/min have no rule. */
int ir_grad_ScatterND(ir_grad_ctx *gx)
{
    const char *red = ir_node_string(&gx->n, "reduction");
    bool add = red && strcmp(red, "add") == 0;
    if (red && !add && strcmp(red, "none") != 0)
        return ir_grad_error(gx, KILN_ERR_UNIMPLEMENTED, "no gradient rule for reduction '%s' (only none and add)", red);
    gx->dx[2] = gather_tuples(gx, gx->dy[0], gx->inputs[1]);
    if (!kiln_value_ok(gx->dx[2])) return -1;
    if (add) {
        gx->dx[0] = gx->dy[0];
    } else {
        ir_type ut = *vtype(gx, gx->inputs[2]);
        ut.dtype = vtype(gx, gx->dy[0])->dtype;
        kiln_value z = zeros(gx, &ut, "the overwritten slices");
        if (!kiln_value_ok(z)) return -1;
        kiln_attrs *at = kiln_attrs_new();
        kiln_attrs_string(at, "reduction", "none");
        gx->dx[0] = op_with(gx, "ScatterND", (kiln_value[]){gx->dy[0], gx->inputs[1], z}, 3, at);
    }
    return kiln_value_ok(gx->dx[0]) ? 0 : -1;
}

/* OneHot(indices, values = [off, on]): on's gradient is the sum of dy
 * where the one-hot mask is set, off's the sum of the rest. The indices
 * are integers and get none. */
int ir_grad_OneHot(ir_grad_ctx *gx)
{
    kiln_graph *g = gx->g;
    const ir_type *vt = vtype(gx, gx->inputs[1]);
    if (!vt) return -1;
    kiln_tensor *t = kiln_tensor_new(vt->dtype, 1, (int64_t[]){2});
    if (!t) return ir_grad_error(gx, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    ir_store_f64(vt->dtype, kiln_tensor_data(t), 0, 0);
    ir_store_f64(vt->dtype, kiln_tensor_data(t), 1, 1);
    kiln_value bits = kiln_constant(g, NULL, t);
    kiln_tensor_free(t);
    kiln_attrs *at = kiln_attrs_new();
    kiln_attrs_int(at, "depth", ir_node_int(&gx->n, "depth"));
    kiln_attrs_int(at, "axis", ir_node_int(&gx->n, "axis"));
    kiln_value mask = op_with(gx, "OneHot", (kiln_value[]){gx->inputs[0], bits}, 2, at);
    kiln_value dy = gx->dy[0];
    kiln_value on = kiln_reduce_sum(g, kiln_mul(g, dy, mask), NULL, 0, 0);
    kiln_value off = kiln_sub(g, kiln_reduce_sum(g, dy, NULL, 0, 0), on);
    kiln_value both = kiln_concat(g, (kiln_value[]){kiln_reshape(g, off, (int64_t[]){1}, 1),
                                                    kiln_reshape(g, on, (int64_t[]){1}, 1)}, 2, 0);
    int64_t vd[IR_MAX_RANK];
    for (int d = 0; d < vt->rank; d++) vd[d] = vt->dims[d] < 0 ? 2 : vt->dims[d];
    gx->dx[1] = vt->rank == 1 ? both : kiln_reshape(g, both, vd, vt->rank);
    return kiln_value_ok(gx->dx[1]) ? 0 : -1;
}

/* GridSample: GridSampleGrad (ir/ops/train.c) gives both gradients at once
 * from the taps and their derivatives; the grid's is zero for mode nearest
 * and where border padding clamps. */
int ir_grad_GridSample(ir_grad_ctx *gx)
{
    kiln_attrs *at = kiln_attrs_new();
    const char *mode = ir_node_string(&gx->n, "mode"), *pad = ir_node_string(&gx->n, "padding_mode");
    kiln_attrs_string(at, "mode", mode ? mode : "linear");
    kiln_attrs_string(at, "padding_mode", pad ? pad : "zeros");
    kiln_attrs_int(at, "align_corners", ir_node_int(&gx->n, "align_corners"));
    kiln_value r = op_with(gx, "GridSampleGrad", (kiln_value[]){gx->inputs[0], gx->inputs[1], gx->dy[0]}, 3, at);
    if (!kiln_value_ok(r)) return -1;
    gx->dx[0] = r;
    gx->dx[1] = (kiln_value){r.node, 1};
    return 0;
}
