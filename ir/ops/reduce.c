/* reduce.c -- reductions over axes (ReduceSum, ReduceMean, ReduceMax,
 * ReduceMin, ReduceProd) and index reductions along one axis (ArgMax,
 * ArgMin). Reference kernels reduce floats in double and integers in int64
 * (wrapping), then store in the output dtype. */
#include <math.h>

#include "../ir.h"

static int check_flag(ir_infer_ctx *cx, const char *name)
{
    int64_t v = ir_node_int(cx->node, name);
    if (v != 0 && v != 1)
        return ir_infer_error(cx, "attribute '%s' must be 0 or 1, got %lld", name, (long long)v);
    return 0;
}

/* The reduced axes of a node for an input of rank `rank`: reduced[d] is set
 * for each reduced dim. Unset or empty 'axes' reduces every axis. Returns 0,
 * or -1 after ir_infer_error when cx is given (an invariant otherwise: the
 * kernel runs only after inference accepted the axes). */
static int reduced_axes(ir_infer_ctx *cx, const ir_node *node, int rank, bool *reduced)
{
    int n;
    const int64_t *axes = ir_node_ints(node, "axes", &n);
    for (int d = 0; d < rank; d++) reduced[d] = n == 0;
    for (int i = 0; i < n; i++) {
        int ax;
        if (!ir_norm_axis(axes[i], rank, &ax))
            return cx ? ir_infer_error(cx, "axis %lld is out of range for rank %d",
                                       (long long)axes[i], rank)
                      : -1;
        if (reduced[ax])
            return cx ? ir_infer_error(cx, "axis %lld is listed twice in 'axes'",
                                       (long long)axes[i])
                      : -1;
        reduced[ax] = true;
    }
    return 0;
}

/* Output type of a reduction: reduced dims become 1 (keepdims) or go. */
static void reduced_type(const ir_type *x, const bool *reduced, bool keepdims, ir_type *out)
{
    ir_type r = {.dtype = x->dtype};
    for (int d = 0; d < x->rank; d++) {
        if (!reduced[d]) r.dims[r.rank++] = x->dims[d];
        else if (keepdims) r.dims[r.rank++] = 1;
    }
    *out = r;
}

/* ---- ReduceSum, ReduceMean, ReduceMax, ReduceMin, ReduceProd ---- */

static const ir_attrdef reduce_attrs[] = {
    IR_ATTR_OPT("axes", IR_ATTR_INTS),
    IR_ATTR_I("keepdims", 1),
};

static int infer_reduce(ir_infer_ctx *cx, unsigned dtypes)
{
    if (check_flag(cx, "keepdims") || ir_infer_require_dtypes(cx, 0, dtypes)) return -1;
    bool reduced[IR_MAX_RANK];
    if (reduced_axes(cx, cx->node, cx->in[0].rank, reduced)) return -1;
    reduced_type(&cx->in[0], reduced, ir_node_int(cx->node, "keepdims") != 0, &cx->out[0]);
    return 0;
}

static int infer_reduce_numeric(ir_infer_ctx *cx) { return infer_reduce(cx, IR_DT_NUMERIC); }
static int infer_reduce_float(ir_infer_ctx *cx) { return infer_reduce(cx, IR_DT_FLOATS); }

enum { RED_SUM, RED_MEAN, RED_MAX, RED_MIN, RED_PROD };

/* The lowest (or highest) value of an integer dtype, as ir_load_i64 reads
 * it: the identity of max (min). */
static int64_t int_extreme(kiln_dtype dt, bool highest)
{
    unsigned bits = (unsigned)kiln_dtype_size(dt) * 8;
    if (ir_dtype_is_signed(dt)) {
        int64_t lo = bits >= 64 ? INT64_MIN : -((int64_t)1 << (bits - 1));
        return highest ? -(lo + 1) : lo;
    }
    if (!highest) return 0;
    return bits >= 64 ? -1 : (int64_t)((UINT64_C(1) << bits) - 1); /* u64: all ones */
}

/* Two odometers over the input: `outer` walks the kept dims (the reduced
 * ones pinned to size 1), which visits output elements in order, and
 * `inner` walks the reduced dims from there. */
static int run_reduce(ir_kernel_ctx *kx, int how)
{
    const kiln_tensor *x = kx->in[0];
    kiln_tensor *y = kx->out[0];
    bool reduced[IR_MAX_RANK];
    if (reduced_axes(NULL, kx->node, x->rank, reduced))
        return ir_kernel_error(kx, KILN_ERR_INTERNAL, "invalid axes");
    int64_t strides[IR_MAX_RANK], odims[IR_MAX_RANK], idims[IR_MAX_RANK];
    ir_shape_strides(x->rank, x->dims, strides);
    int64_t count = 1;
    for (int d = 0; d < x->rank; d++) {
        odims[d] = reduced[d] ? 1 : x->dims[d];
        idims[d] = reduced[d] ? x->dims[d] : 1;
        count *= idims[d];
    }
    if (count == 0 && (how == RED_MAX || how == RED_MIN)) {
        /* ONNX (opset 18+): the max of nothing is the lowest value (-inf
         * for floats), the min of nothing the highest */
        for (size_t o = 0; o < y->size; o++) {
            if (ir_dtype_is_float(x->dtype)) ir_store_f64(y->dtype, y->data, o, how == RED_MAX ? -INFINITY : INFINITY);
            else ir_store_i64(y->dtype, y->data, o, int_extreme(x->dtype, how == RED_MIN));
        }
        return 0;
    }
    ir_iter outer;
    ir_iter_init(&outer, x->rank, odims);
    ir_iter_add(&outer, strides);
    bool is_float = ir_dtype_is_float(x->dtype);
    for (size_t o = 0; o < y->size; o++, ir_iter_next(&outer)) {
        ir_iter inner;
        ir_iter_init(&inner, x->rank, idims);
        ir_iter_add(&inner, strides);
        if (is_float) {
            double acc = how == RED_PROD ? 1.0 : 0.0;
            for (int64_t i = 0; i < count; i++, ir_iter_next(&inner)) {
                double v = ir_load_f64(x->dtype, x->data, (size_t)(outer.off[0] + inner.off[0]));
                if (i == 0 && (how == RED_MAX || how == RED_MIN)) acc = v;
                else if (how == RED_SUM || how == RED_MEAN) acc += v;
                else if (how == RED_PROD) acc *= v;
                else if (acc != acc || v != v) acc = NAN; /* NaN propagates */
                else if (how == RED_MAX ? v > acc : v < acc) acc = v;
            }
            if (how == RED_MEAN) acc = count ? acc / (double)count : NAN;
            ir_store_f64(y->dtype, y->data, o, acc);
        } else {
            uint64_t acc = how == RED_PROD ? 1u : 0u; /* wraps like the hardware */
            for (int64_t i = 0; i < count; i++, ir_iter_next(&inner)) {
                int64_t v = ir_load_i64(x->dtype, x->data, (size_t)(outer.off[0] + inner.off[0]));
                if (i == 0 && (how == RED_MAX || how == RED_MIN)) acc = (uint64_t)v;
                else if (how == RED_SUM) acc += (uint64_t)v;
                else if (how == RED_PROD) acc *= (uint64_t)v;
                else {
                    int64_t vo = ir_int_order(x->dtype, v), ao = ir_int_order(x->dtype, (int64_t)acc);
                    if (how == RED_MAX ? vo > ao : vo < ao) acc = (uint64_t)v;
                }
            }
            ir_store_i64(y->dtype, y->data, o, (int64_t)acc);
        }
    }
    return 0;
}

#define REDUCE_OP(NAME, INFER, HOW, GRAD, DOC)                                              \
    static int kernel_##NAME(ir_kernel_ctx *kx) { return run_reduce(kx, HOW); }             \
    const ir_opdef ir_opdef_##NAME = {                                                     \
        .name = #NAME, .min_inputs = 1, .max_inputs = 1, .noutputs = 1,                      \
        .attrs = reduce_attrs, .nattrs = 2, .infer = INFER, .kernel = kernel_##NAME,         \
        .grad = GRAD, .doc = DOC,                                                            \
    };

REDUCE_OP(ReduceSum, infer_reduce_numeric, RED_SUM, ir_grad_ReduceSum,
          "Sum over 'axes' (all when unset or empty); keepdims keeps them as size 1.")
REDUCE_OP(ReduceMean, infer_reduce_float, RED_MEAN, ir_grad_ReduceMean,
          "Mean over 'axes' (all when unset or empty); an empty axis gives NaN.")
REDUCE_OP(ReduceMax, infer_reduce_numeric, RED_MAX, ir_grad_ReduceMax,
          "Maximum over 'axes' (all when unset or empty); NaN propagates; an empty axis gives -inf "
          "(the lowest integer).")
REDUCE_OP(ReduceMin, infer_reduce_numeric, RED_MIN, ir_grad_ReduceMin,
          "Minimum over 'axes' (all when unset or empty); NaN propagates; an empty axis gives +inf "
          "(the highest integer).")
REDUCE_OP(ReduceProd, infer_reduce_numeric, RED_PROD, ir_grad_ReduceProd,
          "Product over 'axes' (all when unset or empty); an empty axis gives 1.")

/* ---- ArgMax, ArgMin ---- */

static const ir_attrdef arg_attrs[] = {
    IR_ATTR_I("axis", 0),
    IR_ATTR_I("keepdims", 1),
    IR_ATTR_I("select_last_index", 0),
};

static int infer_arg(ir_infer_ctx *cx)
{
    if (check_flag(cx, "keepdims") || check_flag(cx, "select_last_index") ||
        ir_infer_require_dtypes(cx, 0, IR_DT_NUMERIC))
        return -1;
    const ir_type *x = &cx->in[0];
    int64_t axis = ir_node_int(cx->node, "axis");
    int ax;
    if (!ir_norm_axis(axis, x->rank, &ax))
        return ir_infer_error(cx, "axis %lld is out of range for rank %d", (long long)axis,
                              x->rank);
    bool reduced[IR_MAX_RANK] = {false};
    reduced[ax] = true;
    reduced_type(x, reduced, ir_node_int(cx->node, "keepdims") != 0, &cx->out[0]);
    cx->out[0].dtype = KILN_I64;
    return 0;
}

/* Index of the max (min) along the axis; ties go to the first index, or the
 * last with select_last_index. As in numpy, NaN counts as the extreme: the
 * first NaN wins (the last one with select_last_index). */
static int run_arg(ir_kernel_ctx *kx, bool is_max)
{
    const kiln_tensor *x = kx->in[0];
    kiln_tensor *y = kx->out[0];
    int ax;
    if (!ir_norm_axis(ir_node_int(kx->node, "axis"), x->rank, &ax))
        return ir_kernel_error(kx, KILN_ERR_INTERNAL, "invalid axis");
    bool last = ir_node_int(kx->node, "select_last_index") != 0;
    int64_t len = x->dims[ax];
    if (len == 0)
        return ir_kernel_error(kx, KILN_ERR_INVALID_ARGUMENT,
                               "cannot reduce an empty axis (axis %d has size 0)", ax);
    int64_t strides[IR_MAX_RANK], odims[IR_MAX_RANK];
    ir_shape_strides(x->rank, x->dims, strides);
    for (int d = 0; d < x->rank; d++) odims[d] = d == ax ? 1 : x->dims[d];
    int64_t step = strides[ax];
    ir_iter it;
    ir_iter_init(&it, x->rank, odims);
    ir_iter_add(&it, strides);
    bool is_float = ir_dtype_is_float(x->dtype);
    int64_t *out = y->data;
    for (size_t o = 0; o < y->size; o++, ir_iter_next(&it)) {
        int64_t best_i = 0;
        size_t base = (size_t)it.off[0];
        if (is_float) {
            double best = ir_load_f64(x->dtype, x->data, base);
            for (int64_t i = 1; i < len; i++) {
                double v = ir_load_f64(x->dtype, x->data, base + (size_t)(i * step));
                bool take;
                if (best != best) take = last && v != v;
                else if (v != v) take = true;
                else take = (is_max ? v > best : v < best) || (last && v == best);
                if (take) {
                    best = v;
                    best_i = i;
                }
            }
        } else {
            /* compared in ir_int_order: u64 above INT64_MAX is large, not negative */
            int64_t best = ir_int_order(x->dtype, ir_load_i64(x->dtype, x->data, base));
            for (int64_t i = 1; i < len; i++) {
                int64_t v = ir_int_order(x->dtype, ir_load_i64(x->dtype, x->data, base + (size_t)(i * step)));
                if ((is_max ? v > best : v < best) || (last && v == best)) {
                    best = v;
                    best_i = i;
                }
            }
        }
        out[o] = best_i;
    }
    return 0;
}

static int kernel_argmax(ir_kernel_ctx *kx) { return run_arg(kx, true); }
static int kernel_argmin(ir_kernel_ctx *kx) { return run_arg(kx, false); }

const ir_opdef ir_opdef_ArgMax = {
    .name = "ArgMax", .min_inputs = 1, .max_inputs = 1, .noutputs = 1,
    .attrs = arg_attrs, .nattrs = 3, .flags = IR_OPF_NOT_DIFFERENTIABLE,
    .infer = infer_arg, .kernel = kernel_argmax,
    .doc = "Index (i64) of the maximum along 'axis'; first on ties unless select_last_index.",
};

const ir_opdef ir_opdef_ArgMin = {
    .name = "ArgMin", .min_inputs = 1, .max_inputs = 1, .noutputs = 1,
    .attrs = arg_attrs, .nattrs = 3, .flags = IR_OPF_NOT_DIFFERENTIABLE,
    .infer = infer_arg, .kernel = kernel_argmin,
    .doc = "Index (i64) of the minimum along 'axis'; first on ties unless select_last_index.",
};
