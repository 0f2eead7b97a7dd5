/* specialize.c -- turns one run signature of a graph into a static graph:
 * only the nodes the fetches and targets need, fed values replaced by
 * placeholders of the fed (concrete) types, every type re-inferred. The
 * compiler works on this graph, so every shape it sees is a constant. */
#include <stdio.h>
#include <string.h>

#include "../passes/passes.h"
#include "cg_internal.h"

void cg_spec_free(cg_spec *s)
{
    kiln_graph_free(s->g);
    ir_free(s->input_nodes);
    ir_free(s->outputs);
    ir_free(s->targets);
    ir_free(s->var_src);
    ir_free(s->var_node);
    ir_free(s->var_slot);
    ir_free(s->src_node);
    memset(s, 0, sizeof *s);
}

static int fed_index(const cg_signature *sig, kiln_value v)
{
    for (int i = 0; i < sig->ninputs; i++)
        if (sig->inputs[i].node == v.node && sig->inputs[i].index == v.index) return i;
    return -1;
}

int cg_specialize(const kiln_graph *src, const cg_signature *sig, cg_spec *s, kiln_status *status)
{
    memset(s, 0, sizeof *s);
    int nn = src->nnodes, rc = KILN_OK;
    unsigned char *needed = ir_calloc((size_t)nn + 1, 1);
    int *stack = ir_malloc(sizeof(int) * ((size_t)nn + 1));
    int *map_base = ir_malloc(sizeof(int) * ((size_t)nn + 1)); /* src node -> dst node */
    int *fed_node = ir_malloc(sizeof(int) * ((size_t)sig->ninputs + 1));
    s->g = kiln_graph_new();
    s->input_nodes = ir_malloc(sizeof(int) * ((size_t)sig->ninputs + 1));
    s->outputs = ir_malloc(sizeof(kiln_value) * ((size_t)sig->noutputs + 1));
    s->targets = ir_malloc(sizeof(int) * ((size_t)sig->ntargets + 1));
    s->var_src = ir_malloc(sizeof(int) * ((size_t)nn + 1));
    if (!needed || !stack || !map_base || !fed_node || !s->g || !s->input_nodes || !s->outputs ||
        !s->targets || !s->var_src)
        goto oom;
    s->ninputs = sig->ninputs;
    s->noutputs = sig->noutputs;
    s->ntargets = sig->ntargets;

    /* Fed values first, as placeholders in input order. */
    for (int i = 0; i < sig->ninputs; i++) {
        const ir_node *n = &src->nodes[sig->inputs[i].node];
        char name[300];
        if (n->op == IR_OP_Placeholder) snprintf(name, sizeof name, "%s", n->name);
        else snprintf(name, sizeof name, "%s:%d:fed", n->name, (int)sig->inputs[i].index);
        const ir_type *t = &sig->input_types[i];
        kiln_value v = kiln_placeholder(s->g, name, t->dtype, t->rank, t->dims);
        if (!kiln_value_ok(v)) goto graph_error;
        s->input_nodes[i] = v.node;
        fed_node[i] = v.node;
    }

    /* What the fetches and targets need, stopping at fed values. A node is
     * copied when any of its outputs is needed and not fed. */
    int sp = 0;
    for (int i = 0; i < sig->noutputs; i++)
        if (fed_index(sig, sig->outputs[i]) < 0 && !needed[sig->outputs[i].node]) {
            needed[sig->outputs[i].node] = 1;
            stack[sp++] = sig->outputs[i].node;
        }
    for (int i = 0; i < sig->ntargets; i++)
        if (!needed[sig->targets[i].node]) {
            needed[sig->targets[i].node] = 1;
            stack[sp++] = sig->targets[i].node;
        }
    while (sp > 0) {
        const ir_node *n = &src->nodes[stack[--sp]];
        for (int k = 0; k < n->ninputs; k++) {
            kiln_value v = n->inputs[k];
            if (fed_index(sig, v) >= 0 || needed[v.node]) continue;
            needed[v.node] = 1;
            stack[sp++] = v.node;
        }
    }

    for (int i = 0; i < nn; i++) {
        map_base[i] = -1;
        if (!needed[i]) continue;
        const ir_node *n = &src->nodes[i];
        if (n->op == IR_OP_Placeholder) {
            char t[IR_TYPE_STR_MAX];
            rc = ir_set_status(status, KILN_ERR_INVALID_ARGUMENT,
                               "Placeholder '%s' (%s) must be fed: the requested outputs need it",
                               n->name, ir_type_str(&n->outputs[0], t, sizeof t));
            goto fail;
        }
        kiln_value in_small[8], *in = n->ninputs <= 8 ? in_small : ir_malloc(sizeof(kiln_value) * (size_t)n->ninputs);
        if (!in) goto oom;
        for (int k = 0; k < n->ninputs; k++) {
            int f = fed_index(sig, n->inputs[k]);
            in[k] = f >= 0 ? (kiln_value){fed_node[f], 0}
                           : (kiln_value){map_base[n->inputs[k].node], n->inputs[k].index};
        }
        int d = ir_graph_copy_node(s->g, src, i, in, NULL);
        if (in != in_small) ir_free(in);
        if (d < 0) goto graph_error;
        map_base[i] = d;
        if (n->op == IR_OP_Variable) s->var_src[s->nvars++] = i;
    }
    for (int i = 0; i < sig->noutputs; i++) {
        int f = fed_index(sig, sig->outputs[i]);
        s->outputs[i] = f >= 0 ? (kiln_value){fed_node[f], 0}
                               : (kiln_value){map_base[sig->outputs[i].node], sig->outputs[i].index};
    }
    for (int i = 0; i < sig->ntargets; i++) s->targets[i] = map_base[sig->targets[i].node];

    s->var_slot = ir_malloc(sizeof(int) * ((size_t)s->g->nnodes + 1));
    s->var_node = ir_malloc(sizeof(int) * ((size_t)s->nvars + 1));
    s->src_node = ir_malloc(sizeof(int) * ((size_t)s->g->nnodes + 1));
    if (!s->var_slot || !s->var_node || !s->src_node) goto oom;
    for (int i = 0; i < s->g->nnodes; i++) s->src_node[i] = -1;
    for (int i = 0; i < nn; i++)
        if (map_base[i] >= 0) s->src_node[map_base[i]] = i;
    for (int i = 0; i < s->g->nnodes; i++) s->var_slot[i] = -1;
    for (int k = 0; k < s->nvars; k++) {
        s->var_node[k] = map_base[s->var_src[k]];
        s->var_slot[s->var_node[k]] = k;
    }
    for (int i = 0; i < s->g->nnodes; i++)
        for (int k = 0; k < s->g->nodes[i].noutputs; k++)
            if (!ir_type_is_static(&s->g->nodes[i].outputs[k])) {
                rc = ir_set_status(status, KILN_ERR_INTERNAL,
                                   "%s '%s': output %d is not static after specialization",
                                   ir_op_def(s->g->nodes[i].op)->name, s->g->nodes[i].name, k);
                goto fail;
            }
    goto done;

graph_error:
    rc = ir_set_status(status, s->g->error_code ? s->g->error_code : KILN_ERR_INTERNAL, "%s",
                       kiln_graph_error(s->g) ? kiln_graph_error(s->g) : "specialization failed");
    goto fail;
oom:
    rc = ir_set_status(status, KILN_ERR_OUT_OF_MEMORY, "compile: out of memory");
fail:
    cg_spec_free(s);
done:
    ir_free(needed);
    ir_free(stack);
    ir_free(map_base);
    ir_free(fed_node);
    return rc;
}

int cg_optimize(cg_spec *s, const cg_options *o, kiln_status *status)
{
    kiln_graph *g = s->g;
    bool training = false; /* a step that assigns variables */
    for (int i = 0; i < g->nnodes && !training; i++) training = g->nodes[i].op == IR_OP_Assign;
    const char *pipeline = o->pipeline               ? o->pipeline
                           : o->opt_level < 1        ? ""
                           : training                ? pass_training_pipeline()
                                                     : pass_default_pipeline();
    if (!*pipeline) return KILN_OK;
    /* The fetched values and the targets are what the passes must keep. */
    int nroots = s->noutputs + s->ntargets;
    kiln_value *roots = ir_malloc(sizeof(kiln_value) * ((size_t)nroots + 1));
    if (!roots) return ir_set_status(status, KILN_ERR_OUT_OF_MEMORY, "compile: out of memory");
    for (int i = 0; i < s->noutputs; i++) roots[i] = s->outputs[i];
    for (int i = 0; i < s->ntargets; i++) roots[s->noutputs + i] = (kiln_value){s->targets[i], 0};
    kiln_graph_set_outputs(g, roots, nroots);
    ir_free(roots);
    if (g->error_code) return ir_set_status(status, g->error_code, "%s", kiln_graph_error(g));
    pass_context cx;
    pass_context_init(&cx, status);
    cx.print_after = o->print_after;
    cx.time_passes = o->time_passes != 0;
    cx.print_to = o->print_to;
    cx.nfetched = s->noutputs;
    if (o->fold_limit) cx.fold_limit = o->fold_limit;
    int rc = pass_run_pipeline(g, pipeline, &cx);
    if (rc == KILN_OK) {
        for (int i = 0; i < s->ninputs; i++) s->input_nodes[i] = cx.remap[s->input_nodes[i]];
        for (int i = 0; i < s->noutputs; i++) s->outputs[i] = g->outputs[i];
        for (int i = 0; i < s->ntargets; i++) s->targets[i] = g->outputs[s->noutputs + i].node;
        int *slot = ir_malloc(sizeof(int) * ((size_t)g->nnodes + 1));
        if (!slot) {
            rc = ir_set_status(status, KILN_ERR_OUT_OF_MEMORY, "compile: out of memory");
        } else {
            for (int i = 0; i < g->nnodes; i++) slot[i] = -1;
            for (int k = 0; k < s->nvars; k++) {
                s->var_node[k] = cx.remap[s->var_node[k]];
                slot[s->var_node[k]] = k;
            }
            ir_free(s->var_slot);
            s->var_slot = slot;
            /* nodes keep their source node; nodes the passes made have none */
            int *src = ir_malloc(sizeof(int) * ((size_t)g->nnodes + 1));
            if (!src) {
                rc = ir_set_status(status, KILN_ERR_OUT_OF_MEMORY, "compile: out of memory");
            } else {
                for (int i = 0; i < g->nnodes; i++) src[i] = -1;
                for (int i = 0; i < cx.remap_size; i++)
                    if (cx.remap[i] >= 0) src[cx.remap[i]] = s->src_node[i];
                ir_free(s->src_node);
                s->src_node = src;
            }
        }
    }
    pass_context_clear(&cx);
    return rc;
}
