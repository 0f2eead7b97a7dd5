/* nn.c -- neural-network building blocks that are more than one
 * elementwise op: Softmax and LogSoftmax along one axis, BatchNormalization
 * in inference form and LayerNormalization. Reference kernels compute in
 * double and store in the input's float dtype. */
#include <math.h>

#include "../ir.h"

/* Splits a shape around the dims [first, last): the product of the dims
 * before, of the dims in, and of the dims after (all concrete at run time). */
static void split_dims(const kiln_tensor *x, int first, int last, size_t *outer, size_t *mid,
                       size_t *inner)
{
    size_t o = 1, m = 1, n = 1;
    for (int d = 0; d < x->rank; d++) {
        size_t v = (size_t)x->dims[d];
        if (d < first) o *= v;
        else if (d < last) m *= v;
        else n *= v;
    }
    *outer = o;
    *mid = m;
    *inner = n;
}

/* An epsilon must be a finite number >= 0. */
static int check_epsilon(ir_infer_ctx *cx)
{
    double eps = ir_node_float(cx->node, "epsilon");
    if (!(eps >= 0) || isinf(eps))
        return ir_infer_error(cx, "epsilon must be a finite number >= 0, got %g", eps);
    return 0;
}

/* ---- Softmax, LogSoftmax ---- */

static const ir_attrdef softmax_attrs[] = {IR_ATTR_I("axis", -1)};

static int infer_softmax(ir_infer_ctx *cx)
{
    if (ir_infer_require_float(cx, 0)) return -1;
    int64_t axis = ir_node_int(cx->node, "axis");
    int ax;
    if (cx->in[0].rank == 0)
        return ir_infer_error(cx, "input must have rank >= 1, got a scalar");
    if (!ir_norm_axis(axis, cx->in[0].rank, &ax))
        return ir_infer_error(cx, "axis %lld is out of range for rank %d (valid: -%d to %d)",
                              (long long)axis, cx->in[0].rank, cx->in[0].rank, cx->in[0].rank - 1);
    cx->out[0] = cx->in[0];
    return 0;
}

/* Both along one axis, shifted by the maximum so exp never overflows:
 * softmax = exp(x - m) / sum, log_softmax = (x - m) - log(sum). */
static int run_softmax(ir_kernel_ctx *kx, bool log_form)
{
    const kiln_tensor *x = kx->in[0];
    kiln_tensor *y = kx->out[0];
    int ax;
    ir_norm_axis(ir_node_int(kx->node, "axis"), x->rank, &ax);
    size_t outer, n, inner;
    split_dims(x, ax, ax + 1, &outer, &n, &inner);
    for (size_t o = 0; o < outer; o++) {
        for (size_t in = 0; in < inner; in++) {
            size_t base = o * n * inner + in;
            double m = -INFINITY;
            bool nan = false;
            for (size_t k = 0; k < n; k++) {
                double v = ir_load_f64(x->dtype, x->data, base + k * inner);
                if (v != v) nan = true;
                else if (v > m) m = v;
            }
            /* An all -inf row has no finite maximum: shift by 0 instead, so
             * the result is NaN (0/0) as in numpy rather than exp(-inf+inf). */
            if (isinf(m)) m = m > 0 ? m : 0;
            double sum = 0;
            for (size_t k = 0; k < n; k++)
                sum += exp(ir_load_f64(x->dtype, x->data, base + k * inner) - m);
            double lsum = log(sum);
            for (size_t k = 0; k < n; k++) {
                size_t i = base + k * inner;
                double v = ir_load_f64(x->dtype, x->data, i) - m;
                double r = log_form ? v - lsum : exp(v) / sum;
                ir_store_f64(y->dtype, y->data, i, nan ? NAN : r);
            }
        }
    }
    return 0;
}

static int kernel_softmax(ir_kernel_ctx *kx) { return run_softmax(kx, false); }
static int kernel_log_softmax(ir_kernel_ctx *kx) { return run_softmax(kx, true); }

const ir_opdef ir_opdef_Softmax = {
    .name = "Softmax", .min_inputs = 1, .max_inputs = 1, .noutputs = 1,
    .attrs = softmax_attrs, .nattrs = 1,
    .infer = infer_softmax, .kernel = kernel_softmax, .grad = ir_grad_Softmax,
    .doc = "exp(x) / sum(exp(x)) along 'axis' (default -1), computed stably.",
};

const ir_opdef ir_opdef_LogSoftmax = {
    .name = "LogSoftmax", .min_inputs = 1, .max_inputs = 1, .noutputs = 1,
    .attrs = softmax_attrs, .nattrs = 1,
    .infer = infer_softmax, .kernel = kernel_log_softmax, .grad = ir_grad_LogSoftmax,
    .doc = "x - log(sum(exp(x))) along 'axis' (default -1), computed stably.",
};

/* ---- BatchNormalization ---- */

static const ir_attrdef batchnorm_attrs[] = {
    IR_ATTR_F("epsilon", 1e-5),
    IR_ATTR_F("momentum", 0.9),
    IR_ATTR_I("training_mode", 0),
};

static int infer_batchnorm(ir_infer_ctx *cx)
{
    static const char *const names[] = {"x", "scale", "bias", "mean", "var"};
    if (ir_node_int(cx->node, "training_mode") != 0) {
        cx->error_code = KILN_ERR_UNIMPLEMENTED;
        return ir_infer_error(cx, "training mode is not supported by this op yet (training_mode=%lld)",
                              (long long)ir_node_int(cx->node, "training_mode"));
    }
    if (check_epsilon(cx)) return -1;
    double mom = ir_node_float(cx->node, "momentum");
    if (!isfinite(mom)) return ir_infer_error(cx, "momentum must be finite, got %g", mom);
    if (ir_infer_require_float(cx, 0) || ir_infer_same_dtype(cx, 0, 4)) return -1;
    const ir_type *x = &cx->in[0];
    if (x->rank < 2)
        return ir_infer_error(cx, "x must have rank >= 2 ([N, C, ...]), got rank %d", x->rank);
    int64_t c = x->dims[1];
    for (int i = 1; i < 5; i++) {
        const ir_type *p = &cx->in[i];
        if (p->rank != 1)
            return ir_infer_error(cx, "%s (input %d) must have rank 1, got rank %d", names[i], i,
                                  p->rank);
        if (p->dims[0] >= 0 && c >= 0 && p->dims[0] != c)
            return ir_infer_error(cx, "%s (input %d) has %lld elements but x has %lld channels",
                                  names[i], i, (long long)p->dims[0], (long long)c);
        if (c < 0) c = p->dims[0];
    }
    cx->out[0] = *x;
    return 0;
}

static int kernel_batchnorm(ir_kernel_ctx *kx)
{
    const kiln_tensor *x = kx->in[0];
    kiln_tensor *y = kx->out[0];
    double eps = ir_node_float(kx->node, "epsilon");
    size_t n, c, inner;
    split_dims(x, 1, 2, &n, &c, &inner);
    for (size_t ch = 0; ch < c; ch++) {
        double scale = ir_load_f64(kx->in[1]->dtype, kx->in[1]->data, ch);
        double bias = ir_load_f64(kx->in[2]->dtype, kx->in[2]->data, ch);
        double mean = ir_load_f64(kx->in[3]->dtype, kx->in[3]->data, ch);
        double var = ir_load_f64(kx->in[4]->dtype, kx->in[4]->data, ch);
        double inv = 1.0 / sqrt(var + eps);
        for (size_t b = 0; b < n; b++) {
            size_t base = (b * c + ch) * inner;
            for (size_t k = 0; k < inner; k++) {
                double v = ir_load_f64(x->dtype, x->data, base + k);
                ir_store_f64(y->dtype, y->data, base + k, scale * (v - mean) * inv + bias);
            }
        }
    }
    return 0;
}

const ir_opdef ir_opdef_BatchNormalization = {
    .name = "BatchNormalization", .min_inputs = 5, .max_inputs = 5, .noutputs = 1,
    .attrs = batchnorm_attrs, .nattrs = 3,
    .infer = infer_batchnorm, .kernel = kernel_batchnorm, .grad = ir_grad_BatchNormalization,
    .doc = "BatchNormalization(x, scale, bias, mean, var): scale * (x - mean) / sqrt(var + epsilon) + bias over channel axis 1 (inference).",
};

/* ---- LayerNormalization ---- */

static const ir_attrdef layernorm_attrs[] = {
    IR_ATTR_I("axis", -1),
    IR_ATTR_F("epsilon", 1e-5),
};

/* scale and bias broadcast (one way) to the normalized shape x.shape[axis:]. */
static int check_norm_param(ir_infer_ctx *cx, int input, const char *what, int axis)
{
    const ir_type *x = &cx->in[0], *p = &cx->in[input];
    int nr = x->rank - axis;
    if (p->rank > nr)
        return ir_infer_error(cx, "%s (input %d) has rank %d, more than the %d normalized dims", what,
                              input, p->rank, nr);
    for (int i = 0; i < p->rank; i++) {
        int64_t pd = p->dims[i], xd = x->dims[x->rank - p->rank + i];
        if (pd == 1 || pd < 0 || xd < 0 || pd == xd) continue;
        return ir_infer_error(cx, "%s (input %d) does not broadcast to the normalized shape "
                              "x.shape[%d:] (dim %d is %lld, x has %lld)",
                              what, input, axis, i, (long long)pd, (long long)xd);
    }
    return 0;
}

static int infer_layernorm(ir_infer_ctx *cx)
{
    if (ir_infer_require_float(cx, 0) || ir_infer_same_dtype(cx, 0, cx->ninputs - 1)) return -1;
    if (check_epsilon(cx)) return -1;
    const ir_type *x = &cx->in[0];
    int64_t axis = ir_node_int(cx->node, "axis");
    int ax;
    if (x->rank == 0) return ir_infer_error(cx, "x must have rank >= 1, got a scalar");
    if (!ir_norm_axis(axis, x->rank, &ax))
        return ir_infer_error(cx, "axis %lld is out of range for rank %d (valid: -%d to %d)",
                              (long long)axis, x->rank, x->rank, x->rank - 1);
    if (check_norm_param(cx, 1, "scale", ax)) return -1;
    if (cx->ninputs > 2 && check_norm_param(cx, 2, "bias", ax)) return -1;
    cx->out[0] = *x;
    return 0;
}

/* Offsets of a scale/bias tensor read broadcast over the normalized dims. */
static void param_offsets(const kiln_tensor *p, const kiln_tensor *x, int ax, int64_t *strides)
{
    ir_broadcast_strides(p->rank, p->dims, x->rank - ax, strides);
}

static int kernel_layernorm(ir_kernel_ctx *kx)
{
    const kiln_tensor *x = kx->in[0];
    const kiln_tensor *scale = kx->in[1], *bias = kx->ninputs > 2 ? kx->in[2] : NULL;
    kiln_tensor *y = kx->out[0];
    double eps = ir_node_float(kx->node, "epsilon");
    int ax;
    ir_norm_axis(ir_node_int(kx->node, "axis"), x->rank, &ax);
    size_t outer, n, unused;
    split_dims(x, ax, x->rank, &outer, &n, &unused);
    int64_t sst[IR_MAX_RANK], bst[IR_MAX_RANK];
    param_offsets(scale, x, ax, sst);
    if (bias) param_offsets(bias, x, ax, bst);
    for (size_t o = 0; o < outer; o++) {
        size_t base = o * n;
        double mean = 0, var = 0;
        for (size_t k = 0; k < n; k++) mean += ir_load_f64(x->dtype, x->data, base + k);
        mean /= (double)n;
        for (size_t k = 0; k < n; k++) {
            double d = ir_load_f64(x->dtype, x->data, base + k) - mean;
            var += d * d;
        }
        var /= (double)n;
        double inv = 1.0 / sqrt(var + eps);
        ir_iter it;
        ir_iter_init(&it, x->rank - ax, x->dims + ax);
        ir_iter_add(&it, sst);
        if (bias) ir_iter_add(&it, bst);
        for (size_t k = 0; k < n; k++, ir_iter_next(&it)) {
            double v = (ir_load_f64(x->dtype, x->data, base + k) - mean) * inv;
            v *= ir_load_f64(scale->dtype, scale->data, (size_t)it.off[0]);
            if (bias) v += ir_load_f64(bias->dtype, bias->data, (size_t)it.off[1]);
            ir_store_f64(y->dtype, y->data, base + k, v);
        }
    }
    return 0;
}

const ir_opdef ir_opdef_LayerNormalization = {
    .name = "LayerNormalization", .min_inputs = 2, .max_inputs = 3, .noutputs = 1,
    .attrs = layernorm_attrs, .nattrs = 2,
    .infer = infer_layernorm, .kernel = kernel_layernorm, .grad = ir_grad_LayerNormalization,
    .doc = "LayerNormalization(x, scale, [bias]): (x - mean) / sqrt(var + epsilon) * scale + bias over dims [axis, rank).",
};
