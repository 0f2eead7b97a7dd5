/* eval.c -- evaluates one node on concrete tensors with its reference
 * kernel: the building block of constant folding (at import and in the
 * folding pass). */
#include <string.h>

#include "ir.h"

int ir_eval_node(const ir_node *n, const ir_opdef *def, kiln_tensor *const *inputs, int ninputs,
                 size_t max_bytes, kiln_tensor **outputs, kiln_status *st)
{
    int rc = KILN_OK;
    ir_type in_small[8];
    ir_type *in = ninputs <= 8 ? in_small : ir_malloc(sizeof(ir_type) * (size_t)ninputs);
    ir_infer_ctx cx;
    memset(&cx, 0, sizeof cx);
    cx.out = cx.out_small;
    for (int k = 0; k < n->noutputs; k++) outputs[k] = NULL;
    if (!in) return ir_set_status(st, KILN_ERR_OUT_OF_MEMORY, "%s '%s': out of memory", def->name,
                                  n->name);
    if (!def->kernel) {
        rc = ir_set_status(st, KILN_ERR_UNIMPLEMENTED, "%s '%s': no reference kernel", def->name,
                           n->name);
        goto done;
    }
    if (def->flags & (IR_OPF_SOURCE | IR_OPF_STATEFUL | IR_OPF_RANDOM)) {
        rc = ir_set_status(st, KILN_ERR_FAILED_PRECONDITION,
                           "%s '%s': a source, stateful or random op is not evaluated", def->name,
                           n->name);
        goto done;
    }
    for (int i = 0; i < ninputs; i++) ir_tensor_type(inputs[i], &in[i]);
    if (ir_infer_run(&cx, NULL, n, in, ninputs, (const kiln_tensor *const *)inputs) != 0) {
        if (cx.error)
            rc = ir_set_status(st, cx.error_code ? cx.error_code : KILN_ERR_INVALID_ARGUMENT, "%s",
                               cx.error);
        else
            rc = ir_set_status(st, KILN_ERR_OUT_OF_MEMORY, "%s '%s': out of memory", def->name,
                               n->name);
        goto done;
    }
    if (cx.noutputs != n->noutputs) {
        rc = ir_set_status(st, KILN_ERR_INTERNAL, "%s '%s': %d outputs, the node has %d",
                           def->name, n->name, cx.noutputs, n->noutputs);
        goto done;
    }
    for (int k = 0; k < cx.noutputs; k++) {
        int64_t numel = ir_shape_numel(cx.out[k].rank, cx.out[k].dims);
        size_t esz = kiln_dtype_size(cx.out[k].dtype);
        if (numel < 0 || (max_bytes && (uint64_t)numel > max_bytes / esz)) {
            char t[IR_TYPE_STR_MAX];
            rc = ir_set_status(st, KILN_ERR_FAILED_PRECONDITION,
                               "%s '%s': output %d (%s) is larger than %zu bytes", def->name,
                               n->name, k, ir_type_str(&cx.out[k], t, sizeof t), max_bytes);
            goto done;
        }
    }
    for (int k = 0; k < cx.noutputs; k++) {
        outputs[k] = ir_tensor_new_type(&cx.out[k]);
        if (!outputs[k]) {
            rc = ir_set_status(st, KILN_ERR_OUT_OF_MEMORY, "%s '%s': out of memory", def->name,
                               n->name);
            goto done;
        }
    }
    ir_kernel_ctx kx = {.node = n, .def = def, .ninputs = ninputs, .in = inputs,
                        .noutputs = n->noutputs, .out = outputs};
    if (def->kernel(&kx) != 0) {
        rc = ir_set_status(st, kx.error_code ? kx.error_code : KILN_ERR_INTERNAL, "%s",
                           kx.error ? kx.error : "kernel failed");
        ir_free(kx.error);
        goto done;
    }
done:
    if (rc != KILN_OK)
        for (int k = 0; k < n->noutputs; k++) {
            kiln_tensor_free(outputs[k]);
            outputs[k] = NULL;
        }
    ir_infer_ctx_clear(&cx);
    if (in != in_small) ir_free(in);
    return rc;
}
