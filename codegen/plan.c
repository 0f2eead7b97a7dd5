/* plan.c -- the memory plan of a specialized graph, as the code generator
 * uses it: every value gets a location (cg_loc). Where values live is
 * decided by the memory-planning pass (passes/plan.c), which the default
 * pipelines run last; a graph that reaches the code generator without a
 * current plan (-O0, a custom pipeline) is planned here by the same pass.
 * This file maps the plan onto the entry point's operands: fed inputs,
 * variables and constants stay where they are, fetched values made in place
 * go to their output buffers, the rest to arena offsets; fetches made
 * elsewhere are copied at the end. */
#include <string.h>

#include "cg_internal.h"
#include "../passes/passes.h"

_Static_assert(PASS_PLAN_ALIGN % CG_ALIGN == 0, "arena offsets keep the arena's alignment");

void cg_plan_free(cg_plan *p)
{
    ir_free(p->base);
    ir_free(p->loc);
    ir_free(p->kernels);
    ir_free(p->copy_src);
    memset(p, 0, sizeof *p);
}

/* True when g's plan is current and was made with s's fetches first. */
static bool plan_is_current(const cg_spec *s)
{
    const kiln_graph *g = s->g;
    const ir_mem_plan *mp = g->mem_plan;
    if (!mp || mp->nnodes != g->nnodes || g->noutputs < s->noutputs + s->ntargets) return false;
    for (int i = 0; i < s->noutputs; i++)
        if (g->outputs[i].node != s->outputs[i].node || g->outputs[i].index != s->outputs[i].index) return false;
    return true;
}

int cg_plan_memory(const cg_spec *s, cg_plan *p, kiln_status *status)
{
    memset(p, 0, sizeof *p);
    kiln_graph *g = s->g;
    if (!plan_is_current(s)) {
        /* the fetches, then the targets, are what the plan keeps */
        int nroots = s->noutputs + s->ntargets;
        kiln_value *roots = ir_malloc(sizeof(kiln_value) * ((size_t)nroots + 1));
        if (!roots) return ir_set_status(status, KILN_ERR_OUT_OF_MEMORY, "compile: out of memory in memory planning");
        for (int i = 0; i < s->noutputs; i++) roots[i] = s->outputs[i];
        for (int i = 0; i < s->ntargets; i++) roots[s->noutputs + i] = (kiln_value){s->targets[i], 0};
        kiln_graph_set_outputs(g, roots, nroots);
        ir_free(roots);
        if (g->error_code) return ir_set_status(status, g->error_code, "%s", kiln_graph_error(g));
        int rc = pass_plan_memory(g, s->noutputs, status);
        if (rc) return rc;
        if (!g->mem_plan)
            return ir_set_status(status, KILN_ERR_INTERNAL, "compile: the specialized graph has shapes that are not static");
    }
    const ir_mem_plan *mp = g->mem_plan;
    int nn = g->nnodes;
    p->nvalues = mp->nvalues;
    p->base = ir_malloc(sizeof(int) * ((size_t)nn + 1));
    p->kernels = ir_malloc(sizeof(int) * ((size_t)nn + 1));
    p->copy_src = ir_malloc(sizeof(int) * ((size_t)s->noutputs + 1));
    p->loc = ir_calloc((size_t)p->nvalues + 1, sizeof(cg_loc));
    if (!p->base || !p->kernels || !p->copy_src || !p->loc) {
        cg_plan_free(p);
        return ir_set_status(status, KILN_ERR_OUT_OF_MEMORY, "compile: out of memory in memory planning");
    }
    /* Kernels: every node that runs, except members of a fused kernel. */
    for (int i = 0; i < nn; i++) {
        p->base[i] = mp->base[i];
        if (ir_op_def(g->nodes[i].op)->flags & IR_OPF_SOURCE) continue;
        if (g->kernel_of && g->kernel_of[i] >= 0 && g->kernel_of[i] != i) continue;
        p->kernels[p->nkernels++] = i;
    }
    for (int i = 0; i < s->noutputs; i++) p->copy_src[i] = mp->base[s->outputs[i].node] + s->outputs[i].index;
    for (int i = 0; i < nn; i++) {
        const ir_node *n = &g->nodes[i];
        for (int k = 0; k < n->noutputs; k++) {
            int v = mp->base[i] + k;
            cg_loc *l = &p->loc[v];
            l->bytes = (size_t)ir_shape_numel(n->outputs[k].rank, n->outputs[k].dims) * kiln_dtype_size(n->outputs[k].dtype);
            switch (mp->kind[v]) {
            case IR_MEM_SOURCE:
                if (n->op == IR_OP_Placeholder) {
                    for (int j = 0; j < s->ninputs; j++)
                        if (s->input_nodes[j] == i) {
                            l->kind = CG_LOC_INPUT;
                            l->index = j;
                        }
                } else if (n->op == IR_OP_Variable) {
                    l->kind = CG_LOC_VAR;
                    l->index = s->var_slot[i];
                } else if (n->op == IR_OP_Constant) {
                    l->kind = CG_LOC_CONST;
                    l->index = i;
                }
                break;
            case IR_MEM_ARENA:
                l->kind = CG_LOC_ARENA;
                l->offset = (size_t)mp->offset[v];
                break;
            case IR_MEM_FETCH:
                l->kind = CG_LOC_OUTPUT;
                l->index = mp->index[v];
                p->copy_src[mp->index[v]] = -1;
                break;
            case IR_MEM_NONE: break;
            }
        }
    }
    p->arena_size = (size_t)mp->arena_size;
    return KILN_OK;
}
