/* grad.c -- gradient rules: for each differentiable op, the nodes that
 * compute its inputs' gradients from its outputs' gradients. Rules are
 * built from ordinary (themselves differentiable) ops, so differentiating
 * a gradient graph gives higher derivatives. Used by passes/autodiff.c. */
#include <math.h>
#include <string.h>

#include "ir.h"

int ir_grad_error(ir_grad_ctx *gx, int code, const char *fmt, ...)
{
    char *msg = NULL;
    va_list ap;
    va_start(ap, fmt);
    msg = ir_vasprintf(fmt, ap);
    va_end(ap);
    ir_graph_set_error(gx->g, code, "gradient of %s '%s': %s", ir_op_def(gx->n.op)->name,
                       gx->n.name, msg ? msg : "out of memory");
    ir_free(msg);
    return -1;
}

static const ir_type *vtype(ir_grad_ctx *gx, kiln_value v) { return ir_value_type(gx->g, v); }

static kiln_value cst(ir_grad_ctx *gx, kiln_value like, double v)
{
    return kiln_scalar(gx->g, ir_value_type(gx->g, like)->dtype, v);
}

kiln_value ir_grad_unbroadcast(kiln_graph *g, kiln_value dx, const ir_type *target)
{
    if (!ir_value_valid(g, dx) || !target) return kiln_value_invalid(); /* error on g */
    const ir_type *t = ir_value_type(g, dx);
    if (t->rank < target->rank) {
        ir_graph_set_error(g, KILN_ERR_INTERNAL,
                           "gradient: cannot reduce a rank-%d gradient to rank %d", t->rank,
                           target->rank);
        return kiln_value_invalid();
    }
    int lead = t->rank - target->rank, n = 0;
    int64_t axes[IR_MAX_RANK];
    for (int d = lead; d < t->rank; d++)
        if (target->dims[d - lead] == 1 && t->dims[d] != 1) axes[n++] = d;
    if (n) dx = kiln_reduce_sum(g, dx, axes, n, 1);
    if (lead) {
        for (int d = 0; d < lead; d++) axes[d] = d;
        dx = kiln_reduce_sum(g, dx, axes, lead, 0);
    }
    return dx;
}

static kiln_value unb(ir_grad_ctx *gx, kiln_value dx, int input)
{
    const ir_type *t = vtype(gx, gx->inputs[input]);
    ir_type target = *t; /* the node array may move under t */
    return ir_grad_unbroadcast(gx->g, dx, &target);
}

/* Reshape v to type t's dims: static dims, or at most one symbolic (-1). */
static kiln_value reshape_to(ir_grad_ctx *gx, kiln_value v, const ir_type *t)
{
    int64_t dims[IR_MAX_RANK];
    int sym = 0;
    for (int d = 0; d < t->rank; d++) {
        dims[d] = t->dims[d];
        if (dims[d] < 0) sym++;
    }
    if (sym > 1) {
        ir_grad_error(gx, KILN_ERR_UNIMPLEMENTED, "needs a shape with at most one symbolic dim");
        return kiln_value_invalid();
    }
    return kiln_reshape(gx->g, v, dims, t->rank);
}

/* ---- elementwise ---- */

int ir_grad_Identity(ir_grad_ctx *gx)
{
    gx->dx[0] = gx->dy[0];
    return 0;
}

int ir_grad_Cast(ir_grad_ctx *gx)
{
    kiln_dtype from = vtype(gx, gx->inputs[0])->dtype, to = gx->n.outputs[0].dtype;
    if (ir_dtype_is_float(from) && ir_dtype_is_float(to)) gx->dx[0] = kiln_cast(gx->g, gx->dy[0], from);
    return 0;
}

int ir_grad_Add(ir_grad_ctx *gx)
{
    gx->dx[0] = unb(gx, gx->dy[0], 0);
    gx->dx[1] = unb(gx, gx->dy[0], 1);
    return 0;
}

int ir_grad_Sub(ir_grad_ctx *gx)
{
    gx->dx[0] = unb(gx, gx->dy[0], 0);
    gx->dx[1] = unb(gx, kiln_neg(gx->g, gx->dy[0]), 1);
    return 0;
}

int ir_grad_Mul(ir_grad_ctx *gx)
{
    kiln_graph *g = gx->g;
    kiln_value a = gx->inputs[0], b = gx->inputs[1], dy = gx->dy[0];
    gx->dx[0] = unb(gx, kiln_mul(g, dy, b), 0);
    gx->dx[1] = unb(gx, kiln_mul(g, dy, a), 1);
    return 0;
}

int ir_grad_Div(ir_grad_ctx *gx)
{
    kiln_graph *g = gx->g;
    kiln_value b = gx->inputs[1], y = gx->outputs[0], dy = gx->dy[0];
    gx->dx[0] = unb(gx, kiln_div(g, dy, b), 0);
    /* d(a/b)/db = -(a/b)/b */
    gx->dx[1] = unb(gx, kiln_neg(g, kiln_div(g, kiln_mul(g, dy, y), b)), 1);
    return 0;
}

int ir_grad_Pow(ir_grad_ctx *gx)
{
    kiln_graph *g = gx->g;
    kiln_value a = gx->inputs[0], b = gx->inputs[1], y = gx->outputs[0], dy = gx->dy[0];
    kiln_value am1 = kiln_pow(g, a, kiln_sub(g, b, cst(gx, b, 1)));
    gx->dx[0] = unb(gx, kiln_mul(g, dy, kiln_mul(g, b, am1)), 0);
    gx->dx[1] = unb(gx, kiln_mul(g, dy, kiln_mul(g, y, kiln_log(g, a))), 1);
    return 0;
}

/* Maximum/Minimum: the gradient goes to a where pick_a(a, b), else to b. */
static int grad_select(ir_grad_ctx *gx, const char *pick_a)
{
    kiln_graph *g = gx->g;
    kiln_value a = gx->inputs[0], b = gx->inputs[1], dy = gx->dy[0], zero = cst(gx, dy, 0);
    kiln_value c = kiln_op(g, pick_a, (kiln_value[]){a, b}, 2, NULL);
    gx->dx[0] = unb(gx, kiln_where(g, c, dy, zero), 0);
    gx->dx[1] = unb(gx, kiln_where(g, c, zero, dy), 1);
    return 0;
}

int ir_grad_Maximum(ir_grad_ctx *gx) { return grad_select(gx, "GreaterOrEqual"); }
int ir_grad_Minimum(ir_grad_ctx *gx) { return grad_select(gx, "LessOrEqual"); }

int ir_grad_Neg(ir_grad_ctx *gx)
{
    gx->dx[0] = kiln_neg(gx->g, gx->dy[0]);
    return 0;
}

int ir_grad_Abs(ir_grad_ctx *gx)
{
    kiln_graph *g = gx->g;
    kiln_value x = gx->inputs[0], dy = gx->dy[0], zero = cst(gx, x, 0);
    kiln_value neg = kiln_where(g, kiln_less(g, x, zero), kiln_neg(g, dy), zero);
    gx->dx[0] = kiln_where(g, kiln_greater(g, x, zero), dy, neg);
    return 0;
}

int ir_grad_Exp(ir_grad_ctx *gx)
{
    gx->dx[0] = kiln_mul(gx->g, gx->dy[0], gx->outputs[0]);
    return 0;
}

int ir_grad_Log(ir_grad_ctx *gx)
{
    gx->dx[0] = kiln_div(gx->g, gx->dy[0], gx->inputs[0]);
    return 0;
}

int ir_grad_Sqrt(ir_grad_ctx *gx)
{
    kiln_value y = gx->outputs[0];
    gx->dx[0] = kiln_div(gx->g, gx->dy[0], kiln_mul(gx->g, y, cst(gx, y, 2)));
    return 0;
}

int ir_grad_Rsqrt(ir_grad_ctx *gx)
{
    kiln_graph *g = gx->g;
    kiln_value x = gx->inputs[0], y = gx->outputs[0];
    /* d(x^-1/2) = -1/2 x^-3/2 = -y / (2x) */
    kiln_value d = kiln_mul(g, cst(gx, x, -0.5), kiln_div(g, y, x));
    gx->dx[0] = kiln_mul(g, gx->dy[0], d);
    return 0;
}

int ir_grad_Reciprocal(ir_grad_ctx *gx)
{
    kiln_graph *g = gx->g;
    kiln_value y = gx->outputs[0];
    gx->dx[0] = kiln_neg(g, kiln_mul(g, gx->dy[0], kiln_mul(g, y, y)));
    return 0;
}

int ir_grad_Tanh(ir_grad_ctx *gx)
{
    kiln_graph *g = gx->g;
    kiln_value y = gx->outputs[0];
    gx->dx[0] = kiln_mul(g, gx->dy[0], kiln_sub(g, cst(gx, y, 1), kiln_mul(g, y, y)));
    return 0;
}

int ir_grad_Sigmoid(ir_grad_ctx *gx)
{
    kiln_graph *g = gx->g;
    kiln_value y = gx->outputs[0];
    gx->dx[0] = kiln_mul(g, gx->dy[0], kiln_mul(g, y, kiln_sub(g, cst(gx, y, 1), y)));
    return 0;
}

int ir_grad_Relu(ir_grad_ctx *gx)
{
    kiln_graph *g = gx->g;
    kiln_value x = gx->inputs[0], zero = cst(gx, x, 0);
    gx->dx[0] = kiln_where(g, kiln_greater(g, x, zero), gx->dy[0], zero);
    return 0;
}

int ir_grad_LeakyRelu(ir_grad_ctx *gx)
{
    kiln_graph *g = gx->g;
    kiln_value x = gx->inputs[0], dy = gx->dy[0];
    double alpha = ir_node_float(&gx->n, "alpha");
    kiln_value c = kiln_op(g, "GreaterOrEqual", (kiln_value[]){x, cst(gx, x, 0)}, 2, NULL);
    gx->dx[0] = kiln_where(g, c, dy, kiln_mul(g, dy, cst(gx, x, alpha)));
    return 0;
}

int ir_grad_Elu(ir_grad_ctx *gx)
{
    kiln_graph *g = gx->g;
    kiln_value x = gx->inputs[0], y = gx->outputs[0], dy = gx->dy[0];
    double alpha = ir_node_float(&gx->n, "alpha");
    /* for x < 0: d(alpha (e^x - 1)) = alpha e^x = y + alpha */
    kiln_value c = kiln_op(g, "GreaterOrEqual", (kiln_value[]){x, cst(gx, x, 0)}, 2, NULL);
    gx->dx[0] = kiln_where(g, c, dy, kiln_mul(g, dy, kiln_add(g, y, cst(gx, y, alpha))));
    return 0;
}

int ir_grad_Softplus(ir_grad_ctx *gx)
{
    gx->dx[0] = kiln_mul(gx->g, gx->dy[0], kiln_sigmoid(gx->g, gx->inputs[0]));
    return 0;
}

int ir_grad_Erf(ir_grad_ctx *gx)
{
    kiln_graph *g = gx->g;
    kiln_value x = gx->inputs[0];
    kiln_value e = kiln_exp(g, kiln_neg(g, kiln_mul(g, x, x)));
    gx->dx[0] = kiln_mul(g, gx->dy[0], kiln_mul(g, e, cst(gx, x, 2.0 / sqrt(M_PI))));
    return 0;
}

int ir_grad_Gelu(ir_grad_ctx *gx)
{
    kiln_graph *g = gx->g;
    kiln_value x = gx->inputs[0], d;
    const char *approx = ir_node_string(&gx->n, "approximate");
    if (approx && strcmp(approx, "tanh") == 0) {
        /* y = x/2 (1 + t), t = tanh(c (x + k x^3)):
         * dy/dx = (1 + t)/2 + x/2 (1 - t^2) c (1 + 3k x^2) */
        const double c = sqrt(2.0 / M_PI), k = 0.044715;
        kiln_value x2 = kiln_mul(g, x, x);
        kiln_value u = kiln_mul(g, cst(gx, x, c), kiln_add(g, x, kiln_mul(g, cst(gx, x, k), kiln_mul(g, x2, x))));
        kiln_value t = kiln_tanh(g, u);
        kiln_value half = cst(gx, x, 0.5), one = cst(gx, x, 1);
        kiln_value du = kiln_mul(g, cst(gx, x, c), kiln_add(g, one, kiln_mul(g, cst(gx, x, 3 * k), x2)));
        kiln_value a = kiln_mul(g, half, kiln_add(g, one, t));
        kiln_value b = kiln_mul(g, kiln_mul(g, half, x), kiln_mul(g, kiln_sub(g, one, kiln_mul(g, t, t)), du));
        d = kiln_add(g, a, b);
    } else {
        /* Phi(x) + x phi(x) */
        kiln_value phi_big = kiln_mul(g, cst(gx, x, 0.5),
                                      kiln_add(g, cst(gx, x, 1), kiln_erf(g, kiln_mul(g, x, cst(gx, x, M_SQRT1_2)))));
        kiln_value pdf = kiln_mul(g, cst(gx, x, 1.0 / sqrt(2.0 * M_PI)),
                                  kiln_exp(g, kiln_mul(g, cst(gx, x, -0.5), kiln_mul(g, x, x))));
        d = kiln_add(g, phi_big, kiln_mul(g, x, pdf));
    }
    gx->dx[0] = kiln_mul(g, gx->dy[0], d);
    return 0;
}

int ir_grad_Clip(ir_grad_ctx *gx)
{
    kiln_graph *g = gx->g;
    kiln_value x = gx->inputs[0];
    double lo = ir_node_float(&gx->n, "min"), hi = ir_node_float(&gx->n, "max");
    kiln_value in_lo = kiln_op(g, "GreaterOrEqual", (kiln_value[]){x, cst(gx, x, lo)}, 2, NULL);
    kiln_value in_hi = kiln_op(g, "LessOrEqual", (kiln_value[]){x, cst(gx, x, hi)}, 2, NULL);
    gx->dx[0] = kiln_where(g, kiln_and(g, in_lo, in_hi), gx->dy[0], cst(gx, x, 0));
    return 0;
}

int ir_grad_Where(ir_grad_ctx *gx)
{
    kiln_graph *g = gx->g;
    kiln_value c = gx->inputs[0], dy = gx->dy[0], zero = cst(gx, dy, 0);
    gx->dx[1] = unb(gx, kiln_where(g, c, dy, zero), 1);
    gx->dx[2] = unb(gx, kiln_where(g, c, zero, dy), 2);
    return 0;
}

/* ---- MatMul, Gemm ---- */

/* Gradients of Y = op(A) @ op(B) (op: transpose the last two dims when the
 * flag is set), batch dims broadcast, before unbroadcasting. */
static void matmul_grads(kiln_graph *g, kiln_value a, kiln_value b, kiln_value dy, int ta, int tb,
                         kiln_value *da, kiln_value *db)
{
    if (!ta && !tb) {
        *da = kiln_matmul_t(g, dy, b, 0, 1);
        *db = kiln_matmul_t(g, a, dy, 1, 0);
    } else if (!ta && tb) {
        *da = kiln_matmul_t(g, dy, b, 0, 0);
        *db = kiln_matmul_t(g, dy, a, 1, 0);
    } else if (ta && !tb) {
        *da = kiln_matmul_t(g, b, dy, 0, 1);
        *db = kiln_matmul_t(g, a, dy, 0, 0);
    } else {
        *da = kiln_matmul_t(g, b, dy, 1, 1);
        *db = kiln_matmul_t(g, dy, a, 1, 1);
    }
}

int ir_grad_MatMul(ir_grad_ctx *gx)
{
    kiln_graph *g = gx->g;
    kiln_value a = gx->inputs[0], b = gx->inputs[1], dy = gx->dy[0];
    int ta = (int)ir_node_int(&gx->n, "transpose_a"), tb = (int)ir_node_int(&gx->n, "transpose_b");
    int ra = vtype(gx, a)->rank, rb = vtype(gx, b)->rank;
    if ((ra == 1 && ta) || (rb == 1 && tb))
        return ir_grad_error(gx, KILN_ERR_UNIMPLEMENTED, "a transpose flag on a 1-D operand");
    /* 1-D operands: as [1,K] @ ... and ... @ [K,1], the matching dim of dy
     * restored. */
    if (ra == 1) {
        a = kiln_unsqueeze(g, a, (int64_t[]){0}, 1);
        int rdy = vtype(gx, dy)->rank;
        dy = kiln_unsqueeze(g, dy, (int64_t[]){rb == 1 ? rdy : rdy - 1}, 1);
    }
    if (rb == 1) {
        b = kiln_unsqueeze(g, b, (int64_t[]){1}, 1);
        int rdy = vtype(gx, dy)->rank;
        dy = kiln_unsqueeze(g, dy, (int64_t[]){rdy}, 1);
    }
    kiln_value da, db;
    matmul_grads(g, a, b, dy, ta, tb, &da, &db);
    if (!kiln_value_ok(da) || !kiln_value_ok(db)) return -1;
    ir_type at = *vtype(gx, a), bt = *vtype(gx, b);
    da = ir_grad_unbroadcast(g, da, &at);
    db = ir_grad_unbroadcast(g, db, &bt);
    if (ra == 1) da = kiln_squeeze(g, da, (int64_t[]){0}, 1);
    if (rb == 1) db = kiln_squeeze(g, db, (int64_t[]){1}, 1);
    gx->dx[0] = da;
    gx->dx[1] = db;
    return 0;
}

int ir_grad_Gemm(ir_grad_ctx *gx)
{
    kiln_graph *g = gx->g;
    kiln_value a = gx->inputs[0], b = gx->inputs[1], dy = gx->dy[0];
    double alpha = ir_node_float(&gx->n, "alpha"), beta = ir_node_float(&gx->n, "beta");
    int ta = (int)ir_node_int(&gx->n, "transA"), tb = (int)ir_node_int(&gx->n, "transB");
    kiln_value da, db;
    kiln_value dya = alpha == 1 ? dy : kiln_mul(g, dy, cst(gx, dy, alpha));
    matmul_grads(g, a, b, dya, ta, tb, &da, &db);
    gx->dx[0] = da;
    gx->dx[1] = db;
    if (gx->n.ninputs > 2) {
        kiln_value dc = beta == 1 ? dy : kiln_mul(g, dy, cst(gx, dy, beta));
        gx->dx[2] = unb(gx, dc, 2);
    }
    return 0;
}

/* ---- reductions ---- */

/* Broadcasts the gradient of a reduction back over x's shape; *count gets
 * the number of elements reduced into each output (-1 if symbolic). */
static kiln_value grad_reduce(ir_grad_ctx *gx, int64_t *count)
{
    kiln_graph *g = gx->g;
    ir_type xt = *vtype(gx, gx->inputs[0]);
    int n;
    const int64_t *axes = ir_node_ints(&gx->n, "axes", &n);
    int keep = (int)ir_node_int(&gx->n, "keepdims");
    bool red[IR_MAX_RANK] = {false};
    if (n == 0)
        for (int d = 0; d < xt.rank; d++) red[d] = true;
    for (int i = 0; i < n; i++) {
        int a;
        if (!ir_norm_axis(axes[i], xt.rank, &a)) {
            ir_grad_error(gx, KILN_ERR_INTERNAL, "axis %lld out of range", (long long)axes[i]);
            return kiln_value_invalid();
        }
        red[a] = true;
    }
    int64_t ax[IR_MAX_RANK];
    int nax = 0;
    *count = 1;
    for (int d = 0; d < xt.rank; d++)
        if (red[d]) {
            ax[nax++] = d;
            *count = xt.dims[d] < 0 || *count < 0 ? -1 : *count * xt.dims[d];
        }
    if (!ir_type_is_static(&xt)) {
        ir_grad_error(gx, KILN_ERR_UNIMPLEMENTED, "needs static input dims");
        return kiln_value_invalid();
    }
    kiln_value dy = gx->dy[0];
    if (!keep && nax) dy = kiln_unsqueeze(g, dy, ax, nax);
    return kiln_expand(g, dy, xt.dims, xt.rank);
}

int ir_grad_ReduceSum(ir_grad_ctx *gx)
{
    int64_t count;
    gx->dx[0] = grad_reduce(gx, &count);
    return kiln_value_ok(gx->dx[0]) ? 0 : -1;
}

int ir_grad_ReduceMean(ir_grad_ctx *gx)
{
    int64_t count;
    kiln_value d = grad_reduce(gx, &count);
    if (!kiln_value_ok(d)) return -1;
    gx->dx[0] = count == 1 ? d : kiln_mul(gx->g, d, cst(gx, d, 1.0 / (double)count));
    return 0;
}

int ir_grad_Softmax(ir_grad_ctx *gx)
{
    kiln_graph *g = gx->g;
    kiln_value y = gx->outputs[0], dy = gx->dy[0];
    int64_t axis = ir_node_int(&gx->n, "axis");
    kiln_value s = kiln_reduce_sum(g, kiln_mul(g, dy, y), &axis, 1, 1);
    gx->dx[0] = kiln_mul(g, y, kiln_sub(g, dy, s));
    return 0;
}

int ir_grad_LogSoftmax(ir_grad_ctx *gx)
{
    kiln_graph *g = gx->g;
    kiln_value y = gx->outputs[0], dy = gx->dy[0];
    int64_t axis = ir_node_int(&gx->n, "axis");
    kiln_value s = kiln_reduce_sum(g, dy, &axis, 1, 1);
    gx->dx[0] = kiln_sub(g, dy, kiln_mul(g, kiln_exp(g, y), s));
    return 0;
}

/* ---- shape ops ---- */

int ir_grad_Transpose(ir_grad_ctx *gx)
{
    int n, rank = vtype(gx, gx->inputs[0])->rank;
    const int64_t *perm = ir_node_ints(&gx->n, "perm", &n);
    int64_t inv[IR_MAX_RANK];
    for (int i = 0; i < rank; i++) {
        int64_t p = n ? perm[i] : rank - 1 - i;
        if (p < 0) p += rank;
        inv[p] = i;
    }
    gx->dx[0] = kiln_transpose(gx->g, gx->dy[0], inv, rank);
    return 0;
}

static int grad_reshape_back(ir_grad_ctx *gx)
{
    ir_type xt = *vtype(gx, gx->inputs[0]);
    gx->dx[0] = reshape_to(gx, gx->dy[0], &xt);
    return kiln_value_ok(gx->dx[0]) ? 0 : -1;
}

int ir_grad_Reshape(ir_grad_ctx *gx) { return grad_reshape_back(gx); }
int ir_grad_Flatten(ir_grad_ctx *gx) { return grad_reshape_back(gx); }
int ir_grad_Squeeze(ir_grad_ctx *gx) { return grad_reshape_back(gx); }
int ir_grad_Unsqueeze(ir_grad_ctx *gx) { return grad_reshape_back(gx); }

int ir_grad_Expand(ir_grad_ctx *gx)
{
    gx->dx[0] = unb(gx, gx->dy[0], 0);
    return 0;
}

int ir_grad_Concat(ir_grad_ctx *gx)
{
    const ir_type *yt = &gx->n.outputs[0];
    int axis;
    if (!ir_norm_axis(ir_node_int(&gx->n, "axis"), yt->rank, &axis))
        return ir_grad_error(gx, KILN_ERR_INTERNAL, "axis out of range");
    int64_t off = 0;
    for (int i = 0; i < gx->n.ninputs; i++) {
        int64_t len = vtype(gx, gx->inputs[i])->dims[axis];
        if (len < 0)
            return ir_grad_error(gx, KILN_ERR_UNIMPLEMENTED, "input %d has a symbolic dim on the axis", i);
        kiln_attrs *a = kiln_attrs_new();
        int64_t ax = axis, start = off, end = off + len;
        kiln_attrs_ints(a, "starts", &start, 1);
        kiln_attrs_ints(a, "ends", &end, 1);
        kiln_attrs_ints(a, "axes", &ax, 1);
        gx->dx[i] = kiln_op(gx->g, "Slice", &gx->dy[0], 1, a);
        kiln_attrs_free(a);
        off += len;
    }
    return 0;
}

/* Slice: along the dims sliced with step 1 the gradient is dy padded with
 * zeros back to x's size; along a dim with another step (negative ones
 * included) GatherGrad scatters dy's slices to the positions start + k *
 * step, zeros elsewhere. GatherGrad's own rule (a Gather) keeps second
 * order working. */
int ir_grad_Slice(ir_grad_ctx *gx)
{
    kiln_graph *g = gx->g;
    ir_type xt = *vtype(gx, gx->inputs[0]);
    int64_t start[IR_MAX_RANK], step[IR_MAX_RANK], len[IR_MAX_RANK];
    if (ir_slice_geometry(&gx->n, &xt, start, step, len))
        return ir_grad_error(gx, KILN_ERR_INTERNAL, "invalid slice attributes");
    int64_t pads[2 * IR_MAX_RANK] = {0};
    bool any_pad = false;
    for (int a = 0; a < xt.rank; a++) {
        if (step[a] == 1 && len[a] == xt.dims[a]) continue;
        if (xt.dims[a] < 0) return ir_grad_error(gx, KILN_ERR_UNIMPLEMENTED, "a symbolic dim is sliced");
        if (step[a] != 1) continue;
        pads[a] = start[a];
        pads[xt.rank + a] = xt.dims[a] - start[a] - len[a];
        any_pad = true;
    }
    kiln_value d = gx->dy[0];
    if (any_pad) {
        kiln_attrs *at = kiln_attrs_new();
        kiln_attrs_ints(at, "pads", pads, 2 * xt.rank);
        d = kiln_op(g, "Pad", &d, 1, at);
        kiln_attrs_free(at);
    }
    for (int a = 0; a < xt.rank; a++) {
        if (step[a] == 1) continue;
        kiln_tensor *idx = kiln_tensor_new(KILN_I64, 1, (int64_t[]){len[a]});
        if (!idx) return ir_grad_error(gx, KILN_ERR_OUT_OF_MEMORY, "out of memory");
        int64_t *iv = kiln_tensor_data(idx);
        for (int64_t k = 0; k < len[a]; k++) iv[k] = start[a] + k * step[a];
        kiln_value iv_c = kiln_constant(g, NULL, idx);
        kiln_tensor_free(idx);
        kiln_attrs *at = kiln_attrs_new();
        kiln_attrs_int(at, "axis", a);
        kiln_attrs_int(at, "axis_size", xt.dims[a]);
        d = kiln_op(g, "GatherGrad", (kiln_value[]){d, iv_c}, 2, at);
        kiln_attrs_free(at);
    }
    gx->dx[0] = d;
    return kiln_value_ok(d) ? 0 : -1;
}
