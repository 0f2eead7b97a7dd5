/* graph_ports.c -- a graph's inputs (its placeholders) and its declared
 * outputs, which saved graphs and the command line use. */
#include <string.h>

#include "ir.h"

void kiln_graph_set_outputs(kiln_graph *g, const kiln_value *outputs, int n)
{
    if (!g) return;
    if (n < 0 || (n > 0 && !outputs)) {
        ir_graph_set_error(g, KILN_ERR_INVALID_ARGUMENT,
                           "kiln_graph_set_outputs: %d outputs, array %s", n,
                           outputs ? "given" : "NULL");
        return;
    }
    for (int i = 0; i < n; i++) {
        if (!ir_value_valid(g, outputs[i])) {
            ir_graph_set_error(g, KILN_ERR_INVALID_ARGUMENT,
                               "kiln_graph_set_outputs: output %d (%d:%d) is not a value of the "
                               "graph",
                               i, (int)outputs[i].node, (int)outputs[i].index);
            return;
        }
    }
    kiln_value *copy = NULL;
    if (n > 0) {
        copy = ir_arena_alloc(&g->arena, sizeof(kiln_value) * (size_t)n);
        if (!copy) {
            ir_graph_set_error(g, KILN_ERR_OUT_OF_MEMORY, "kiln_graph_set_outputs: out of memory");
            return;
        }
        memcpy(copy, outputs, sizeof(kiln_value) * (size_t)n);
    }
    g->outputs = copy;
    g->noutputs = n;
}

int kiln_graph_outputs(const kiln_graph *g, kiln_value *out, int max)
{
    if (!g) return 0;
    if (g->outputs || g->noutputs) {
        for (int i = 0; i < g->noutputs && i < max; i++) out[i] = g->outputs[i];
        return g->noutputs;
    }
    /* No declared outputs: the sinks. A value is used when a later node
     * takes it as input. Marks live in a byte per output. */
    int total = 0;
    for (int i = 0; i < g->nnodes; i++) total += g->nodes[i].noutputs;
    unsigned char *used = ir_calloc((size_t)(total ? total : 1), 1);
    int *base = ir_malloc(sizeof(int) * (size_t)(g->nnodes ? g->nnodes : 1));
    int count = 0;
    if (!used || !base) goto done;
    for (int i = 0, b = 0; i < g->nnodes; i++) {
        base[i] = b;
        b += g->nodes[i].noutputs;
    }
    for (int i = 0; i < g->nnodes; i++)
        for (int k = 0; k < g->nodes[i].ninputs; k++) {
            kiln_value v = g->nodes[i].inputs[k];
            used[base[v.node] + v.index] = 1;
        }
    for (int i = 0; i < g->nnodes; i++) {
        if (ir_op_def(g->nodes[i].op)->flags & IR_OPF_SOURCE) continue;
        for (int k = 0; k < g->nodes[i].noutputs; k++) {
            if (used[base[i] + k]) continue;
            if (count < max) out[count] = (kiln_value){i, k};
            count++;
        }
    }
done:
    ir_free(used);
    ir_free(base);
    return count;
}

int kiln_graph_inputs(const kiln_graph *g, kiln_value *out, int max)
{
    if (!g) return 0;
    int count = 0;
    for (int i = 0; i < g->nnodes; i++) {
        if (g->nodes[i].op != IR_OP_Placeholder) continue;
        if (count < max) out[count] = (kiln_value){i, 0};
        count++;
    }
    return count;
}
