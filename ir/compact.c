/* compact.c -- the two primitives graph rewrites are built on.
 *
 * A pass adds replacement nodes at the end of the graph and redirects uses
 * of old values to new ones (ir_replace_uses). That can leave nodes using
 * values defined after them, and nodes nobody uses. ir_graph_compact then
 * restores the graph's invariants: it keeps what the declared outputs need
 * (and every placeholder and variable), puts the nodes back in an order
 * where each uses only earlier nodes (keeping the old order wherever it can),
 * drops the rest, and reports where each old node went. */
#include <string.h>

#include "ir.h"

void ir_replace_uses(kiln_graph *g, kiln_value old, kiln_value repl)
{
    for (int i = 0; i < g->nnodes; i++) {
        ir_node *n = &g->nodes[i];
        for (int k = 0; k < n->ninputs; k++)
            if (n->inputs[k].node == old.node && n->inputs[k].index == old.index) n->inputs[k] = repl;
    }
    for (int k = 0; k < g->noutputs; k++)
        if (g->outputs[k].node == old.node && g->outputs[k].index == old.index) g->outputs[k] = repl;
}

int ir_graph_compact(kiln_graph *g, int *remap)
{
    int nn = g->nnodes, rc = KILN_OK;
    unsigned char *state = ir_calloc((size_t)nn + 1, 1); /* 0 new, 1 on stack, 2 placed */
    int *order = ir_malloc(sizeof(int) * ((size_t)nn + 1));
    int *stack = ir_malloc(sizeof(int) * ((size_t)nn + 1));
    int *next_in = ir_calloc((size_t)nn + 1, sizeof(int));
    ir_node *nodes = ir_malloc(sizeof(ir_node) * ((size_t)nn + 1));
    ir_strmap names = {0};
    int placed = 0;
    if (!state || !order || !stack || !next_in || !nodes) {
        rc = KILN_ERR_OUT_OF_MEMORY;
        goto done;
    }
    /* Roots, in node order: declared outputs' nodes, placeholders, variables. */
    unsigned char *root = state; /* reuse: mark roots with bit 4 first */
    for (int k = 0; k < g->noutputs; k++) root[g->outputs[k].node] |= 4;
    for (int i = 0; i < nn; i++)
        if (g->nodes[i].op == IR_OP_Placeholder || g->nodes[i].op == IR_OP_Variable) root[i] |= 4;
    /* Depth-first, inputs before users; visiting roots in node order keeps
     * the original order where it is already valid. */
    for (int r = 0; r < nn; r++) {
        if (!(state[r] & 4) || (state[r] & 3)) continue;
        int sp = 0;
        stack[sp++] = r;
        state[r] = (unsigned char)((state[r] & 4) | 1);
        next_in[r] = 0;
        while (sp > 0) {
            int v = stack[sp - 1];
            const ir_node *n = &g->nodes[v];
            if (next_in[v] < n->ninputs) {
                int u = n->inputs[next_in[v]++].node;
                if ((state[u] & 3) == 1) {
                    rc = KILN_ERR_INTERNAL; /* a cycle: a rewrite bug */
                    goto done;
                }
                if ((state[u] & 3) == 0) {
                    state[u] = (unsigned char)((state[u] & 4) | 1);
                    next_in[u] = 0;
                    stack[sp++] = u;
                }
                continue;
            }
            sp--;
            state[v] = (unsigned char)((state[v] & 4) | 2);
            order[placed++] = v;
        }
    }
    for (int i = 0; i < nn; i++) remap[i] = -1;
    for (int k = 0; k < placed; k++) remap[order[k]] = k;
    for (int k = 0; k < placed; k++) {
        nodes[k] = g->nodes[order[k]];
        if (!ir_strmap_put(&names, nodes[k].name, k)) {
            rc = KILN_ERR_OUT_OF_MEMORY;
            goto done;
        }
    }
    int *ko = NULL;
    if (g->kernel_of) {
        /* fused kernels follow their nodes; a kernel whose root went is gone */
        ko = ir_arena_alloc(&g->arena, sizeof(int) * ((size_t)placed + 1));
        if (!ko) {
            rc = KILN_ERR_OUT_OF_MEMORY;
            goto done;
        }
        for (int k = 0; k < placed; k++) {
            int r = g->kernel_of[order[k]];
            ko[k] = r >= 0 ? remap[r] : -1;
        }
    }
    /* Nothing can fail from here on. */
    for (int k = 0; k < placed; k++)
        for (int j = 0; j < nodes[k].ninputs; j++) nodes[k].inputs[j].node = remap[nodes[k].inputs[j].node];
    /* Dropped nodes give up their attributes now (names, inputs and types
     * live in the arena until the graph goes). */
    for (int i = 0; i < nn; i++) {
        if (remap[i] >= 0) continue;
        ir_node *n = &g->nodes[i];
        int na = ir_op_def(n->op)->nattrs;
        for (int k = 0; k < na; k++) ir_attr_clear(&n->attrs[k]);
    }
    if (ko) g->kernel_of = ko;
    g->mem_plan = NULL; /* values are renumbered */
    if (placed) memcpy(g->nodes, nodes, sizeof(ir_node) * (size_t)placed);
    g->nnodes = placed;
    for (int k = 0; k < g->noutputs; k++) g->outputs[k].node = remap[g->outputs[k].node];
    ir_strmap_free(&g->names);
    g->names = names;
    names = (ir_strmap){0};
done:
    ir_strmap_free(&names);
    ir_free(state);
    ir_free(order);
    ir_free(stack);
    ir_free(next_in);
    ir_free(nodes);
    return rc;
}
