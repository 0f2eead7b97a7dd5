/* core.c -- sources and plumbing: Placeholder, Constant, Variable, Assign,
 * Identity, Cast. The executor feeds placeholders and binds constants and
 * variables itself, so those three have no kernel. */
#include <string.h>

#include "../ir.h"

/* ---- Placeholder ---- */

static const ir_attrdef placeholder_attrs[] = {
    IR_ATTR_REQ("dtype", IR_ATTR_DTYPE),
    IR_ATTR_OPT("shape", IR_ATTR_INTS),
};

static int infer_placeholder(ir_infer_ctx *cx)
{
    int n;
    const int64_t *dims = ir_node_ints(cx->node, "shape", &n);
    if (n > IR_MAX_RANK) return ir_infer_error(cx, "rank %d exceeds the maximum %d", n, IR_MAX_RANK);
    ir_type *t = &cx->out[0];
    t->dtype = (kiln_dtype)ir_node_int(cx->node, "dtype");
    t->rank = n;
    for (int i = 0; i < n; i++) {
        if (dims[i] < -1)
            return ir_infer_error(cx, "dim %d is %lld; dims are >= 0, or -1 for symbolic", i,
                                  (long long)dims[i]);
        t->dims[i] = dims[i];
    }
    return 0;
}

const ir_opdef ir_opdef_Placeholder = {
    .name = "Placeholder", .min_inputs = 0, .max_inputs = 0, .noutputs = 1,
    .attrs = placeholder_attrs, .nattrs = 2, .flags = IR_OPF_SOURCE | IR_OPF_NOT_DIFFERENTIABLE,
    .infer = infer_placeholder,
    .doc = "A graph input, fed at run time; -1 dims are symbolic.",
};

/* ---- Constant and Variable ---- */

static const ir_attrdef value_attrs[] = {IR_ATTR_REQ("value", IR_ATTR_TENSOR)};

static int infer_value(ir_infer_ctx *cx)
{
    const kiln_tensor *t = ir_node_tensor(cx->node, "value");
    ir_tensor_type(t, &cx->out[0]);
    return 0;
}

const ir_opdef ir_opdef_Constant = {
    .name = "Constant", .min_inputs = 0, .max_inputs = 0, .noutputs = 1,
    .attrs = value_attrs, .nattrs = 1, .flags = IR_OPF_SOURCE | IR_OPF_NOT_DIFFERENTIABLE,
    .infer = infer_value,
    .doc = "A constant tensor held in the graph.",
};

const ir_opdef ir_opdef_Variable = {
    .name = "Variable", .min_inputs = 0, .max_inputs = 0, .noutputs = 1,
    .attrs = value_attrs, .nattrs = 1, .flags = IR_OPF_SOURCE | IR_OPF_STATEFUL,
    .infer = infer_value,
    .doc = "Persistent session state, initialised from 'value'; updated by Assign.",
};

/* ---- Assign ---- */

static int infer_assign(ir_infer_ctx *cx)
{
    if (cx->graph && cx->node->inputs) {
        const ir_node *var = &cx->graph->nodes[cx->node->inputs[0].node];
        if (var->op != IR_OP_Variable)
            return ir_infer_error(cx, "input 0 must be a Variable, got %s '%s'",
                                  ir_op_def(var->op)->name, var->name);
    }
    const ir_type *v = &cx->in[0], *x = &cx->in[1];
    if (v->dtype != x->dtype)
        return ir_infer_error(cx, "value dtype %s differs from the variable's %s",
                              kiln_dtype_name(x->dtype), kiln_dtype_name(v->dtype));
    bool ok = v->rank == x->rank;
    for (int i = 0; ok && i < v->rank; i++)
        ok = x->dims[i] < 0 || x->dims[i] == v->dims[i];
    if (!ok) return ir_infer_error(cx, "value shape differs from the variable's");
    cx->out[0] = *v;
    return 0;
}

static int kernel_assign(ir_kernel_ctx *kx)
{
    size_t nb = kiln_tensor_nbytes(kx->in[1]);
    memcpy(kx->in[0]->data, kx->in[1]->data, nb);
    memcpy(kx->out[0]->data, kx->in[1]->data, nb);
    return 0;
}

const ir_opdef ir_opdef_Assign = {
    .name = "Assign", .min_inputs = 2, .max_inputs = 2, .noutputs = 1,
    .flags = IR_OPF_STATEFUL | IR_OPF_NOT_DIFFERENTIABLE,
    .infer = infer_assign, .kernel = kernel_assign,
    .doc = "Assign(var, value): stores value in the variable; outputs the new value.",
};

/* ---- Identity ---- */

static int infer_identity(ir_infer_ctx *cx)
{
    cx->out[0] = cx->in[0];
    return 0;
}

static int kernel_copy(ir_kernel_ctx *kx)
{
    memcpy(kx->out[0]->data, kx->in[0]->data, kiln_tensor_nbytes(kx->in[0]));
    return 0;
}

const ir_opdef ir_opdef_Identity = {
    .name = "Identity", .min_inputs = 1, .max_inputs = 1, .noutputs = 1,
    .flags = IR_OPF_ELEMENTWISE,
    .infer = infer_identity, .kernel = kernel_copy, .grad = ir_grad_Identity,
    .doc = "Returns its input.",
};

/* ---- Cast ---- */

static const ir_attrdef cast_attrs[] = {IR_ATTR_REQ("to", IR_ATTR_DTYPE), IR_ATTR_I("saturate", 1)};

static int infer_cast(ir_infer_ctx *cx)
{
    cx->out[0] = cx->in[0];
    cx->out[0].dtype = (kiln_dtype)ir_node_int(cx->node, "to");
    return 0;
}

static int kernel_cast(ir_kernel_ctx *kx)
{
    const kiln_tensor *x = kx->in[0];
    kiln_tensor *y = kx->out[0];
    if (x->dtype == y->dtype) return kernel_copy(kx);
    if (ir_dtype_is_storage(y->dtype)) {
        /* int4/int2 wrap as the wider integers do; float8/float4 round to
         * nearest even, 'saturate' (default 1) deciding float8 overflow */
        bool sat = ir_node_int(kx->node, "saturate") != 0;
        bool ints = !ir_dtype_is_float(x->dtype) && !ir_dtype_is_storage_float(x->dtype);
        uint8_t *out = y->data;
        for (size_t i = 0; i < x->size; i++)
            if (ints && !ir_dtype_is_storage_float(y->dtype))
                ir_store_i64(y->dtype, y->data, i, ir_load_i64(x->dtype, x->data, i));
            else if (ints)
                out[i] = ir_storage_from_f64(y->dtype, (double)ir_load_i64(x->dtype, x->data, i), sat);
            else
                out[i] = ir_storage_from_f64(y->dtype, ir_load_f64(x->dtype, x->data, i), sat);
        return 0;
    }
    /* Integer to integer (or bool) goes through int64 to stay exact; anything
     * involving a float goes through double: float to int truncates toward
     * zero and saturates, NaN becomes 0. */
    bool ints = !ir_dtype_is_float(x->dtype) && !ir_dtype_is_float(y->dtype);
    for (size_t i = 0; i < x->size; i++) {
        if (ints)
            ir_store_i64(y->dtype, y->data, i, ir_load_i64(x->dtype, x->data, i));
        else if (ir_dtype_is_float(y->dtype))
            ir_store_f64(y->dtype, y->data, i, ir_load_f64(x->dtype, x->data, i));
        else if (y->dtype == KILN_BOOL)
            ir_store_i64(y->dtype, y->data, i, ir_load_f64(x->dtype, x->data, i) != 0);
        else /* ir_store_f64 truncates and saturates, u64 to [0, 2^64) */
            ir_store_f64(y->dtype, y->data, i, ir_load_f64(x->dtype, x->data, i));
    }
    return 0;
}

const ir_opdef ir_opdef_Cast = {
    .name = "Cast", .min_inputs = 1, .max_inputs = 1, .noutputs = 1,
    .attrs = cast_attrs, .nattrs = 2, .flags = IR_OPF_ELEMENTWISE,
    .infer = infer_cast, .kernel = kernel_cast, .grad = ir_grad_Cast,
    .doc = "Converts to dtype 'to' (float to int truncates toward zero, saturating to int64 (NaN: 0), then wraps to the width). "
           "To int4/int2 as to the wider integers (wrapping). To float8/float4: round to nearest even; "
           "float8 overflow goes to the largest finite value unless saturate=0 (then inf or NaN, as the format has).",
};
