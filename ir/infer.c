/* infer.c -- running an op's type inference, and the helpers that op
 * families share: dtype checks, broadcasting, error messages that name the
 * op, the node and the input types. */
#include <string.h>

#include "ir.h"

/* The storage dtypes (float8, float4, int4, int2) have no arithmetic: only
 * Cast and data movement that copies whole elements accept them. */
static int storage_dtype_check(ir_infer_ctx *cx)
{
    if (!cx->node) return 0;
    switch (cx->node->op) {
    case IR_OP_Placeholder:
    case IR_OP_Constant:
    case IR_OP_Identity:
    case IR_OP_Cast:
    case IR_OP_Transpose:
    case IR_OP_Reshape:
    case IR_OP_Flatten:
    case IR_OP_Squeeze:
    case IR_OP_Unsqueeze:
    case IR_OP_Concat: return 0;
    default: break;
    }
    for (int i = 0; i < cx->ninputs; i++)
        if (ir_dtype_is_storage(cx->in[i].dtype))
            return ir_infer_error(cx, "input %d has the storage dtype %s, which only Cast and data "
                                      "movement accept (Cast it to a wider type first)",
                                  i, kiln_dtype_name(cx->in[i].dtype));
    return 0;
}

int ir_infer_run(ir_infer_ctx *cx, const kiln_graph *g, const ir_node *node, const ir_type *in,
                 int ninputs, const kiln_tensor *const *const_in)
{
    memset(cx, 0, sizeof *cx);
    cx->graph = g;
    cx->node = node;
    cx->def = ir_op_def(node->op);
    cx->ninputs = ninputs;
    cx->in = in;
    cx->const_in = const_in;
    cx->out = cx->out_small;
    int n = cx->def->noutputs < 0 ? 1 : cx->def->noutputs;
    if (ir_infer_set_noutputs(cx, n) < 0) return -1;
    if (!cx->def->infer) return ir_infer_error(cx, "has no type inference");
    if (storage_dtype_check(cx) != 0) return -1;
    int rc = cx->def->infer(cx);
    if (rc != 0) return -1;
    for (int i = 0; i < cx->noutputs; i++) {
        const ir_type *t = &cx->out[i];
        if (!ir_dtype_valid((int)t->dtype) || t->rank < 0 || t->rank > IR_MAX_RANK)
            return ir_infer_error(cx, "inferred an invalid type for output %d (internal error)", i);
        if (ir_shape_numel(t->rank, t->dims) == -2)
            return ir_infer_error(cx, "output %d has more elements than fit in 64 bits", i);
    }
    return 0;
}

void ir_infer_ctx_clear(ir_infer_ctx *cx)
{
    if (cx->out != cx->out_small) ir_free(cx->out);
    cx->out = cx->out_small;
    ir_free(cx->error);
    cx->error = NULL;
}

int ir_infer_set_noutputs(ir_infer_ctx *cx, int n)
{
    if (n < 0) n = 0;
    ir_type *out = cx->out_small;
    if (n > (int)(sizeof cx->out_small / sizeof cx->out_small[0])) {
        out = ir_calloc((size_t)n, sizeof(ir_type));
        if (!out) return -1;
    } else {
        memset(out, 0, sizeof cx->out_small);
    }
    if (cx->out != cx->out_small) ir_free(cx->out);
    cx->out = out;
    cx->noutputs = n;
    return 0;
}

int ir_infer_error(ir_infer_ctx *cx, const char *fmt, ...)
{
    if (cx->error) return -1;
    ir_buf b = {0};
    ir_buf_printf(&b, "%s '%s': ", cx->def->name, cx->node && cx->node->name ? cx->node->name : "?");
    va_list ap;
    va_start(ap, fmt);
    char *msg = ir_vasprintf(fmt, ap);
    va_end(ap);
    ir_buf_puts(&b, msg ? msg : "error");
    ir_free(msg);
    if (cx->ninputs > 0) {
        ir_buf_puts(&b, " (inputs: ");
        for (int i = 0; i < cx->ninputs; i++) {
            char t[IR_TYPE_STR_MAX];
            ir_buf_printf(&b, "%s%s", i ? ", " : "", ir_type_str(&cx->in[i], t, sizeof t));
        }
        ir_buf_puts(&b, ")");
    }
    cx->error = ir_buf_take(&b);
    if (!cx->error_code) cx->error_code = KILN_ERR_INVALID_ARGUMENT;
    return -1;
}

int ir_infer_same_dtype(ir_infer_ctx *cx, int first, int last)
{
    for (int i = first + 1; i <= last && i < cx->ninputs; i++)
        if (cx->in[i].dtype != cx->in[first].dtype)
            return ir_infer_error(cx, "inputs %d and %d have different dtypes (%s vs %s)", first, i,
                                  kiln_dtype_name(cx->in[first].dtype),
                                  kiln_dtype_name(cx->in[i].dtype));
    return 0;
}

int ir_infer_require_dtypes(ir_infer_ctx *cx, int input, unsigned mask)
{
    kiln_dtype dt = cx->in[input].dtype;
    if (mask & IR_DT_MASK(dt)) return 0;
    ir_buf b = {0};
    int k = 0;
    for (int d = KILN_F32; d <= KILN_U2; d++) /* every dtype of the enum */
        if (mask & IR_DT_MASK(d)) ir_buf_printf(&b, "%s%s", k++ ? ", " : "", kiln_dtype_name((kiln_dtype)d));
    char *list = ir_buf_take(&b);
    ir_infer_error(cx, "input %d has dtype %s, which it does not support (supported: %s)", input,
                   kiln_dtype_name(dt), list ? list : "?");
    ir_free(list);
    return -1;
}

int ir_infer_require_float(ir_infer_ctx *cx, int input)
{
    return ir_infer_require_dtypes(cx, input, IR_DT_FLOATS);
}

int ir_infer_broadcast(ir_infer_ctx *cx)
{
    ir_type r = cx->in[0];
    for (int i = 1; i < cx->ninputs; i++) {
        ir_type next;
        if (!ir_broadcast(&r, &cx->in[i], &next))
            return ir_infer_error(cx, "input shapes do not broadcast");
        r = next;
    }
    r.dtype = cx->in[0].dtype;
    cx->out[0] = r;
    return 0;
}

int ir_kernel_error(ir_kernel_ctx *kx, int code, const char *fmt, ...)
{
    if (kx->error) return -1;
    va_list ap;
    va_start(ap, fmt);
    char *msg = ir_vasprintf(fmt, ap);
    va_end(ap);
    kx->error = ir_asprintf("%s '%s': %s", kx->def->name, kx->node->name, msg ? msg : "error");
    ir_free(msg);
    kx->error_code = code;
    return -1;
}
