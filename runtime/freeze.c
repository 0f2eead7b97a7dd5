/* freeze.c -- kiln_graph_freeze: a deployment copy of a session's graph,
 * its variables turned into constants holding the session's current
 * values and its training-only nodes (Assigns and what depends on them)
 * dropped. */
#include <string.h>

#include "runtime.h"

kiln_graph *kiln_graph_freeze(const kiln_graph *g, kiln_session *s, kiln_status *st)
{
    if (!g || !s) {
        ir_set_status(st, KILN_ERR_INVALID_ARGUMENT, "kiln_graph_freeze: graph or session is NULL");
        return NULL;
    }
    if (s->dl || s->graph != g) {
        ir_set_status(st, KILN_ERR_INVALID_ARGUMENT,
                      "kiln_graph_freeze: the session is not a session on this graph%s",
                      s->dl ? " (it runs a compiled library)" : "");
        return NULL;
    }
    if (g->error_code) {
        ir_set_status(st, KILN_ERR_FAILED_PRECONDITION, "kiln_graph_freeze: the graph has an error: %s",
                      g->error ? g->error : "?");
        return NULL;
    }
    int nn = s->nnodes, maxin = 1;
    for (int i = 0; i < nn; i++)
        if (g->nodes[i].ninputs > maxin) maxin = g->nodes[i].ninputs;
    int *map = ir_malloc(sizeof(int) * (size_t)(nn ? nn : 1));
    unsigned char *needed = ir_calloc((size_t)(nn ? nn : 1), 1);
    kiln_value *ins = ir_malloc(sizeof(kiln_value) * (size_t)maxin);
    kiln_value *outs = NULL;
    kiln_graph *f = kiln_graph_new();
    if (!map || !needed || !ins || !f) goto oom;
    /* With declared outputs, only what they need (nodes use earlier nodes,
     * so one backward sweep finds it); otherwise everything. */
    for (int k = 0; k < g->noutputs; k++)
        if (g->outputs[k].node < nn) needed[g->outputs[k].node] = 1;
    for (int i = nn - 1; i >= 0; i--) {
        if (g->noutputs == 0) needed[i] = 1;
        if (!needed[i]) continue;
        for (int k = 0; k < g->nodes[i].ninputs; k++) needed[g->nodes[i].inputs[k].node] = 1;
    }

    pthread_rwlock_rdlock(&s->vars_lock);
    for (int i = 0; i < nn; i++) {
        const ir_node *n = &g->nodes[i];
        map[i] = -1;
        if (!needed[i] || n->op == IR_OP_Assign) continue; /* unused, or training only */
        bool dropped = false;
        for (int k = 0; k < n->ninputs; k++) {
            if (map[n->inputs[k].node] < 0) dropped = true;
            else ins[k] = (kiln_value){map[n->inputs[k].node], n->inputs[k].index};
        }
        if (dropped) continue; /* depends on an Assign */
        if (n->op == IR_OP_Variable) map[i] = kiln_constant(f, n->name, s->vars[i]).node;
        else map[i] = ir_graph_copy_node(f, g, i, ins, NULL);
        if (map[i] < 0) break;
    }
    pthread_rwlock_unlock(&s->vars_lock);
    if (f->error_code) {
        ir_set_status(st, f->error_code, "kiln_graph_freeze: %s", f->error ? f->error : "?");
        goto fail;
    }

    if (g->noutputs > 0) {
        outs = ir_malloc(sizeof(kiln_value) * (size_t)g->noutputs);
        if (!outs) goto oom;
        for (int k = 0; k < g->noutputs; k++) {
            kiln_value v = g->outputs[k];
            const char *why = v.node >= nn ? "was added after the session was created"
                              : map[v.node] < 0 ? "depends on an Assign (training only)" : NULL;
            if (why) {
                const ir_node *n = &g->nodes[v.node];
                ir_set_status(st, KILN_ERR_INVALID_ARGUMENT,
                              "kiln_graph_freeze: declared output %d (%s '%s') %s", k,
                              ir_op_def(n->op)->name, n->name, why);
                goto fail;
            }
            outs[k] = (kiln_value){map[v.node], v.index};
        }
        kiln_graph_set_outputs(f, outs, g->noutputs);
        if (f->error_code) {
            ir_set_status(st, f->error_code, "kiln_graph_freeze: %s", f->error ? f->error : "?");
            goto fail;
        }
    }
    ir_free(map);
    ir_free(needed);
    ir_free(ins);
    ir_free(outs);
    ir_status_ok(st);
    return f;

oom:
    ir_set_status(st, KILN_ERR_OUT_OF_MEMORY, "kiln_graph_freeze: out of memory");
fail:
    ir_free(map);
    ir_free(needed);
    ir_free(ins);
    ir_free(outs);
    kiln_graph_free(f);
    return NULL;
}
