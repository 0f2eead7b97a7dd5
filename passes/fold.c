/* fold.c -- constant folding: a node whose inputs are all Constant nodes is
 * evaluated with its reference kernel (ir_eval_node) and replaced by one
 * Constant per output. Nodes are visited in order, so chains of constant
 * computations fold in one walk. Stateful and random ops are never folded,
 * and a result larger than cx->fold_limit bytes is left as it is, so
 * folding never blows up the model (an Expand of a scalar to a huge shape
 * stays an Expand). A node whose evaluation fails for a reason other than
 * memory (an integer division by zero, say) is also left alone: running it
 * reports the error where it belongs. */
#include "passes.h"

#define FOLD_SMALL 8

static bool foldable(const kiln_graph *g, const ir_node *n)
{
    const ir_opdef *d = ir_op_def(n->op);
    if ((d->flags & (IR_OPF_SOURCE | IR_OPF_STATEFUL | IR_OPF_RANDOM)) || !d->kernel || n->ninputs == 0)
        return false;
    for (int k = 0; k < n->ninputs; k++)
        if (g->nodes[n->inputs[k].node].op != IR_OP_Constant) return false;
    return true;
}

/* Whether node n's declared outputs (when static) already exceed the limit:
 * then it is not worth evaluating at all. */
static bool over_limit(const ir_node *n, int64_t limit)
{
    if (limit <= 0) return false;
    for (int k = 0; k < n->noutputs; k++) {
        const ir_type *t = &n->outputs[k];
        int64_t numel = ir_shape_numel(t->rank, t->dims);
        if (numel == -2) return true;
        if (numel >= 0 && (uint64_t)numel > (uint64_t)limit / kiln_dtype_size(t->dtype)) return true;
    }
    return false;
}

/* Evaluates node i and replaces its outputs by constants. Returns KILN_OK
 * (folded or left alone) or an error code for an out-of-memory condition. */
static int fold_node(kiln_graph *g, int i, pass_rewrite *rw, pass_context *cx)
{
    const ir_node *n = &g->nodes[i];
    const ir_opdef *d = ir_op_def(n->op);
    int nin = n->ninputs, nout = n->noutputs, rc = KILN_OK;
    kiln_tensor *in_small[FOLD_SMALL], *out_small[FOLD_SMALL];
    kiln_tensor **in = nin <= FOLD_SMALL ? in_small : ir_malloc(sizeof(kiln_tensor *) * (size_t)nin);
    kiln_tensor **out = nout <= FOLD_SMALL ? out_small : ir_calloc((size_t)nout, sizeof(kiln_tensor *));
    if (out)
        for (int k = 0; k < nout; k++) out[k] = NULL;
    if (!in || !out) {
        rc = ir_set_status(cx->status, KILN_ERR_OUT_OF_MEMORY, "fold: %s '%s': out of memory", d->name, n->name);
        goto done;
    }
    /* The kernels take non-const inputs (Assign writes its variable); no
     * folded op writes an input. */
    for (int k = 0; k < nin; k++)
        in[k] = (kiln_tensor *)ir_node_tensor(&g->nodes[n->inputs[k].node], "value");
    size_t limit = cx->fold_limit > 0 ? (size_t)cx->fold_limit : 0;
    rc = ir_eval_node(n, d, in, nin, limit, out, cx->status);
    if (rc != KILN_OK) {
        if (rc != KILN_ERR_OUT_OF_MEMORY) {
            /* too large, or failing: the node stays, and is no error here */
            ir_status_ok(cx->status);
            rc = KILN_OK;
        }
        goto done;
    }
    for (int k = 0; k < nout; k++) {
        ir_type t;
        ir_tensor_type(out[k], &t);
        /* a symbolic dim resolved by folding would change the graph's types */
        if (!ir_type_equal(&t, &n->outputs[k])) goto done;
    }
    const char *name = n->name;
    for (int k = 0; k < nout; k++) {
        /* g->nodes may move when a node is added: n is not used from here */
        char what[300];
        snprintf(what, sizeof what, "fold: %s '%s'", d->name, name);
        int c;
        if ((rc = pass_add_constant(g, out[k], what, cx, &c))) goto done;
        if ((rc = pass_rewrite_replace(rw, g, (kiln_value){i, k}, (kiln_value){c, 0}, cx))) goto done;
    }
done:
    if (out)
        for (int k = 0; k < nout; k++) kiln_tensor_free(out[k]);
    if (in != in_small) ir_free(in);
    if (out != out_small) ir_free(out);
    return rc;
}

int pass_fold(kiln_graph *g, pass_context *cx, bool *changed)
{
    *changed = false;
    pass_rewrite rw;
    int rc = pass_rewrite_begin(&rw, g, cx);
    if (rc) return rc;
    for (int i = 0; i < rw.nnodes; i++) {
        pass_rewrite_inputs(&rw, g, i);
        const ir_node *n = &g->nodes[i];
        if (!foldable(g, n) || over_limit(n, cx->fold_limit)) continue;
        if ((rc = fold_node(g, i, &rw, cx))) {
            pass_rewrite_stop(&rw, g, cx);
            return rc;
        }
    }
    return pass_rewrite_finish(&rw, g, cx, changed);
}
