/* verify.c -- the graph verifier. It checks these invariants, each with a
 * test that breaks it (tests/ir/test_verify.c):
 *
 *  1. Every node's op is in the registry.
 *  2. Every node has a non-empty name, unique in the graph, and the name map
 *     finds the node by it.
 *  3. Every input is an existing output of an earlier node (no dangling
 *     values, no cycles).
 *  4. The input count is within the op's arity.
 *  5. Every attribute slot holds its schema's kind, or is unset only when
 *     the schema allows it; dtype attributes hold valid dtypes.
 *  6. Every output type has a valid dtype, a rank in 0..8 and dims >= -1.
 *  7. Re-running type inference on the node's input types gives exactly
 *     the recorded output types.
 *  8. An Assign's first input is a Variable.
 */
#include <string.h>

#include "ir.h"

static int fail(kiln_status *st, const kiln_graph *g, int i, const char *what)
{
    const ir_node *n = &g->nodes[i];
    const ir_opdef *def = ir_op_def(n->op);
    return ir_set_status(st, KILN_ERR_INTERNAL, "verifier: node %d (%s '%s'): %s", i,
                         def ? def->name : "?", n->name ? n->name : "?", what);
}

int ir_verify(const kiln_graph *g, kiln_status *st)
{
    if (!g) return ir_set_status(st, KILN_ERR_INVALID_ARGUMENT, "verifier: graph is NULL");
    if (g->error_code)
        return ir_set_status(st, g->error_code, "the graph has an error: %s", kiln_graph_error(g));
    for (int i = 0; i < g->nnodes; i++) {
        const ir_node *n = &g->nodes[i];
        const ir_opdef *def = ir_op_def(n->op);
        if (!def) return fail(st, g, i, "op is not in the registry (1)");
        if (!n->name || !*n->name) return fail(st, g, i, "node has no name (2)");
        if (ir_strmap_get(&g->names, n->name) != i)
            return fail(st, g, i, "name is not unique or not in the name map (2)");
        if (n->ninputs < def->min_inputs || (def->max_inputs >= 0 && n->ninputs > def->max_inputs))
            return fail(st, g, i, "input count outside the op's arity (4)");
        for (int k = 0; k < n->ninputs; k++) {
            kiln_value v = n->inputs[k];
            if (v.node < 0 || v.node >= i || v.index < 0 || v.index >= g->nodes[v.node].noutputs)
                return fail(st, g, i, "an input is not an output of an earlier node (3)");
        }
        for (int k = 0; k < def->nattrs; k++) {
            const ir_attr *a = &n->attrs[k];
            const ir_attrdef *ad = &def->attrs[k];
            if (a->kind == IR_ATTR_NONE) {
                if (ad->required) return fail(st, g, i, "a required attribute is unset (5)");
                continue;
            }
            if (a->kind != ad->kind) return fail(st, g, i, "an attribute has the wrong kind (5)");
            if (a->kind == IR_ATTR_DTYPE && !ir_dtype_valid((int)a->u.i))
                return fail(st, g, i, "a dtype attribute is not a dtype (5)");
        }
        if (n->noutputs < 0) return fail(st, g, i, "negative output count (6)");
        for (int k = 0; k < n->noutputs; k++) {
            const ir_type *t = &n->outputs[k];
            if (!ir_dtype_valid((int)t->dtype) || t->rank < 0 || t->rank > IR_MAX_RANK)
                return fail(st, g, i, "an output type is invalid (6)");
            for (int d = 0; d < t->rank; d++)
                if (t->dims[d] < -1) return fail(st, g, i, "an output dim is below -1 (6)");
        }
        if (n->op == IR_OP_Assign && g->nodes[n->inputs[0].node].op != IR_OP_Variable)
            return fail(st, g, i, "Assign's first input is not a Variable (8)");

        ir_type in[16];
        const kiln_tensor *cin[16];
        if (n->ninputs <= 16) {
            for (int k = 0; k < n->ninputs; k++) {
                in[k] = g->nodes[n->inputs[k].node].outputs[n->inputs[k].index];
                const ir_node *src = &g->nodes[n->inputs[k].node];
                cin[k] = src->op == IR_OP_Constant ? ir_node_tensor(src, "value") : NULL;
            }
            ir_infer_ctx cx;
            int rc = ir_infer_run(&cx, g, n, in, n->ninputs, cin);
            bool same = rc == 0 && cx.noutputs == n->noutputs;
            for (int k = 0; same && k < n->noutputs; k++) same = ir_type_equal(&cx.out[k], &n->outputs[k]);
            if (!same) {
                char *why = cx.error ? ir_asprintf("type inference fails: %s (7)", cx.error) : NULL;
                ir_infer_ctx_clear(&cx);
                int r = fail(st, g, i, why ? why : "recorded output types differ from inference (7)");
                ir_free(why);
                return r;
            }
            ir_infer_ctx_clear(&cx);
        }
    }
    ir_status_ok(st);
    return KILN_OK;
}
