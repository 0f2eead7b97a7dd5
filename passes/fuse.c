/* fuse.c -- fusion: groups nodes into kernels the CPU backend lowers as one
 * loop nest, so intermediate values never reach memory.
 *
 *  - Elementwise trees: starting from the last node of the graph, an
 *    elementwise node roots a kernel and absorbs the elementwise producers
 *    of its inputs whose every use is inside the kernel (any fan-in; a
 *    value used outside stays materialized and roots its own kernel).
 *  - Epilogues: a MatMul, Gemm or Conv2D (f32 or f64) whose only use is
 *    such a kernel joins it as its head when the kernel's result has the
 *    head's shape and dtype: bias adds, activations, residual adds and clips
 *    then run on each block of the output as it is finished.
 *  - Prologues: a reduction (ReduceSum, ReduceMean, ReduceMax, ReduceMin,
 *    ReduceProd) over the innermost dim roots a kernel that absorbs the
 *    elementwise tree computing its input, as above; the reduction then
 *    reads the tree's values run by run as it goes (e.g. ReduceSum(x*x)
 *    reads only x).
 *
 * The pass only annotates (g->kernel_of); the graph's nodes stay as they
 * are, so the text form shows each node with the kernel it belongs to. It
 * runs last in a pipeline. */
#include <string.h>

#include "passes.h"

#define FUSE_MAX_MEMBERS 48
#define FUSE_MAX_LEAVES 16

static bool is_elementwise(const ir_node *n) { return (ir_op_def(n->op)->flags & IR_OPF_ELEMENTWISE) != 0; }

/* A reduction that takes a prologue: one whose innermost input dim of more
 * than one element is reduced, so that it reads its input in contiguous
 * rows (the kernels' row mode), where computing a run of the input on the
 * fly pays. With the innermost dim kept (column mode) each run is a short
 * tile of a row, and calling the prologue per tile cost more than writing
 * the input out (measured in bench/bench_fusion.c). */
static bool is_reduction(const ir_node *n, const kiln_graph *g)
{
    if (n->op != IR_OP_ReduceSum && n->op != IR_OP_ReduceMean && n->op != IR_OP_ReduceMax &&
        n->op != IR_OP_ReduceMin && n->op != IR_OP_ReduceProd)
        return false;
    const ir_type *x = ir_value_type(g, n->inputs[0]);
    int inner = x->rank - 1;
    while (inner >= 0 && x->dims[inner] == 1) inner--;
    if (inner < 0) return false; /* one element */
    int naxes;
    const int64_t *axes = ir_node_ints(n, "axes", &naxes);
    if (naxes == 0) return true; /* all axes */
    for (int i = 0; i < naxes; i++) {
        int ax;
        if (ir_norm_axis(axes[i], x->rank, &ax) && ax == inner) return true;
    }
    return false;
}

static bool is_head(const kiln_graph *g, const ir_node *n)
{
    if (n->op != IR_OP_MatMul && n->op != IR_OP_Gemm && n->op != IR_OP_Conv2D) return false;
    kiln_dtype dt = n->outputs[0].dtype;
    (void)g;
    return dt == KILN_F32 || dt == KILN_F64;
}

/* Distinct values from outside the group that members read. */
static int count_leaves(const kiln_graph *g, const int *kernel_of, int root, const int *members, int nm)
{
    kiln_value seen[FUSE_MAX_LEAVES * 4];
    int n = 0;
    for (int m = 0; m < nm; m++) {
        const ir_node *x = &g->nodes[members[m]];
        for (int k = 0; k < x->ninputs; k++) {
            kiln_value v = x->inputs[k];
            if (kernel_of[v.node] == root) continue;
            bool dup = false;
            for (int j = 0; j < n && !dup; j++) dup = seen[j].node == v.node && seen[j].index == v.index;
            if (dup) continue;
            if (n == (int)(sizeof seen / sizeof seen[0])) return n + 1;
            seen[n++] = v;
        }
    }
    return n;
}

int pass_fuse(kiln_graph *g, pass_context *cx, bool *changed)
{
    *changed = false;
    int nn = g->nnodes;
    int *uses = ir_calloc((size_t)nn + 1, sizeof(int)); /* uses of output 0 */
    int *kernel_of = ir_arena_alloc(&g->arena, sizeof(int) * ((size_t)nn + 1));
    int *members = ir_malloc(sizeof(int) * (FUSE_MAX_MEMBERS + 1));
    if (!uses || !kernel_of || !members) {
        ir_free(uses);
        ir_free(members);
        return ir_set_status(cx->status, KILN_ERR_OUT_OF_MEMORY, "fuse: out of memory");
    }
    for (int i = 0; i < nn; i++) {
        kernel_of[i] = -1;
        const ir_node *n = &g->nodes[i];
        for (int k = 0; k < n->ninputs; k++) uses[n->inputs[k].node] += n->inputs[k].index == 0 ? 1 : 1000000;
    }
    for (int k = 0; k < g->noutputs; k++) uses[g->outputs[k].node] += 1000000; /* must be materialized */
    for (int root = nn - 1; root >= 0; root--) {
        const ir_node *r = &g->nodes[root];
        bool reduction = is_reduction(r, g);
        if (kernel_of[root] >= 0 || !(is_elementwise(r) || reduction) || r->noutputs != 1) continue;
        int nm = 0;
        members[nm++] = root;
        kernel_of[root] = root;
        bool has_head = reduction; /* a reduction's prologue takes no head */
        /* Grow: look at producers of members' inputs, newest first. */
        for (bool grew = true; grew && nm < FUSE_MAX_MEMBERS;) {
            grew = false;
            for (int m = 0; m < nm && nm < FUSE_MAX_MEMBERS; m++) {
                const ir_node *x = &g->nodes[members[m]];
                /* a head's inputs are leaves; a reduction's input may be computed */
                bool reducer = reduction && members[m] == root;
                if (!is_elementwise(x) && !reducer) continue;
                for (int k = 0; k < (reducer ? 1 : x->ninputs) && nm < FUSE_MAX_MEMBERS; k++) {
                    int p = x->inputs[k].node;
                    const ir_node *pn = &g->nodes[p];
                    if (kernel_of[p] >= 0 || x->inputs[k].index != 0 || pn->noutputs != 1) continue;
                    bool head = !has_head && is_head(g, pn) && ir_type_equal(&pn->outputs[0], &r->outputs[0]);
                    if (!is_elementwise(pn) && !head) continue;
                    /* every use of p must come from the group */
                    int inside = 0;
                    bool feeds_head = false;
                    for (int j = 0; j < nm; j++) {
                        const ir_node *q = &g->nodes[members[j]];
                        for (int t = 0; t < q->ninputs; t++)
                            if (q->inputs[t].node == p) {
                                inside++;
                                /* a head reads it from memory */
                                feeds_head |= !is_elementwise(q) && !(reduction && members[j] == root);
                            }
                    }
                    if (inside != uses[p] || feeds_head) continue;
                    kernel_of[p] = root;
                    members[nm++] = p;
                    if (count_leaves(g, kernel_of, root, members, nm) > FUSE_MAX_LEAVES) {
                        kernel_of[p] = -1;
                        nm--;
                        continue;
                    }
                    if (head) has_head = true;
                    grew = true;
                }
            }
        }
        if (nm == 1) {
            kernel_of[root] = -1;
            continue;
        }
        *changed = true;
    }
    ir_free(uses);
    ir_free(members);
    g->kernel_of = kernel_of;
    return KILN_OK;
}
