/* plan.c -- memory planning: decides where every value of a static graph
 * lives while it runs, and records it on the graph (g->mem_plan).
 *
 * Kernels are the nodes that run: every node but sources and the members of
 * fused kernels (passes/fuse.c), in node order. A value produced by a kernel
 * lives from that kernel to the last kernel that reads it.
 *  - Sources (placeholders, constants, variables) stay where they are.
 *  - Members of fused kernels never reach memory.
 *  - A fetched value (one of the first cx->nfetched declared outputs) made by
 *    a kernel and fetched once is written straight into the caller's buffer;
 *    one fetched twice, or fetched and also made elsewhere, lives in the arena
 *    until the end, when it is copied out.
 *  - In place: the output of an elementwise kernel (every member elementwise)
 *    takes the storage of a value it reads that dies at that kernel and has
 *    the output's shape and element size, so it is read at element i only to
 *    write element i. Chains of such kernels run in one buffer.
 *  - Every other value gets an offset in one arena, shared with values whose
 *    lifetimes do not overlap: greedily, largest first, at the lowest aligned
 *    offset that fits between the live values already placed.
 *
 * The plan is the last word on memory: a pass that changes the graph after
 * it drops it (pass_run_pipeline), and the code generator plans again when
 * a graph reaches it without one. */
#include <stdlib.h>
#include <string.h>

#include "passes.h"

typedef struct {
    int value;
    int first, last; /* kernel indices */
    int64_t bytes;
} plan_life;

static int by_size_desc(const void *a, const void *b)
{
    const plan_life *x = a, *y = b;
    if (x->bytes != y->bytes) return x->bytes < y->bytes ? 1 : -1;
    return x->value - y->value;
}

typedef struct {
    int64_t offset, end;
} plan_span;

static int by_offset(const void *a, const void *b)
{
    const plan_span *x = a, *y = b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static int64_t align_up(int64_t n) { return (n + PASS_PLAN_ALIGN - 1) / PASS_PLAN_ALIGN * PASS_PLAN_ALIGN; }

static bool all_elementwise(const kiln_graph *g, int root)
{
    if (!(ir_op_def(g->nodes[root].op)->flags & IR_OPF_ELEMENTWISE)) return false;
    if (!g->kernel_of || g->kernel_of[root] != root) return true;
    for (int i = 0; i < root; i++)
        if (g->kernel_of[i] == root && !(ir_op_def(g->nodes[i].op)->flags & IR_OPF_ELEMENTWISE)) return false;
    return true;
}

static bool same_layout(const ir_type *a, const ir_type *b)
{
    if (a->rank != b->rank || kiln_dtype_size(a->dtype) != kiln_dtype_size(b->dtype)) return false;
    for (int d = 0; d < a->rank; d++)
        if (a->dims[d] != b->dims[d]) return false;
    return true;
}

int pass_plan_memory(kiln_graph *g, int nfetched, kiln_status *status)
{
    g->mem_plan = NULL;
    int nn = g->nnodes;
    for (int i = 0; i < nn; i++)
        for (int k = 0; k < g->nodes[i].noutputs; k++)
            if (!ir_type_is_static(&g->nodes[i].outputs[k])) return KILN_OK; /* planned once shapes are known */
    if (nfetched < 0 || nfetched > g->noutputs) nfetched = g->noutputs;
    ir_mem_plan *p = ir_arena_alloc(&g->arena, sizeof *p);
    int *base = ir_arena_alloc(&g->arena, sizeof(int) * ((size_t)nn + 1));
    if (!p || !base) return ir_set_status(status, KILN_ERR_OUT_OF_MEMORY, "plan: out of memory");
    memset(p, 0, sizeof *p);
    p->nnodes = nn;
    p->base = base;
    for (int i = 0; i < nn; i++) {
        base[i] = p->nvalues;
        p->nvalues += g->nodes[i].noutputs;
    }
    size_t nv = (size_t)p->nvalues + 1;
    p->kind = ir_arena_alloc(&g->arena, sizeof(ir_mem_kind) * nv);
    p->index = ir_arena_alloc(&g->arena, sizeof(int) * nv);
    p->offset = ir_arena_alloc(&g->arena, sizeof(int64_t) * nv);
    p->alias = ir_arena_alloc(&g->arena, sizeof(int) * nv);
    int *kidx_of = ir_malloc(sizeof(int) * ((size_t)nn + 1));
    int *first = ir_malloc(sizeof(int) * nv), *last = ir_malloc(sizeof(int) * nv);
    int *fetches = ir_calloc(nv, sizeof(int)), *store = ir_malloc(sizeof(int) * nv);
    int64_t *bytes = ir_malloc(sizeof(int64_t) * nv);
    plan_life *lt = ir_malloc(sizeof(plan_life) * nv);
    plan_span *spans = ir_malloc(sizeof(plan_span) * nv);
    int rc = KILN_OK;
    if (!p->kind || !p->index || !p->offset || !p->alias || !kidx_of || !first || !last || !fetches || !store ||
        !bytes || !lt || !spans) {
        rc = ir_set_status(status, KILN_ERR_OUT_OF_MEMORY, "plan: out of memory");
        goto done;
    }

    int nkernels = 0;
    for (int i = 0; i < nn; i++) {
        kidx_of[i] = -1;
        if (ir_op_def(g->nodes[i].op)->flags & IR_OPF_SOURCE) continue;
        if (g->kernel_of && g->kernel_of[i] >= 0 && g->kernel_of[i] != i) continue;
        kidx_of[i] = nkernels++;
    }
    for (int i = 0; i < nn; i++) {
        const ir_node *n = &g->nodes[i];
        bool source = (ir_op_def(n->op)->flags & IR_OPF_SOURCE) != 0;
        for (int k = 0; k < n->noutputs; k++) {
            int v = base[i] + k;
            bytes[v] = ir_shape_numel(n->outputs[k].rank, n->outputs[k].dims) * (int64_t)kiln_dtype_size(n->outputs[k].dtype);
            first[v] = last[v] = -1;
            store[v] = v;
            p->kind[v] = source ? IR_MEM_SOURCE : IR_MEM_NONE;
            p->index[v] = -1;
            p->offset[v] = -1;
            p->alias[v] = -1;
        }
        if (source) continue;
        int root = g->kernel_of && g->kernel_of[i] >= 0 ? g->kernel_of[i] : i;
        int kidx = kidx_of[root];
        if (root == i)
            for (int k = 0; k < n->noutputs; k++) first[base[i] + k] = kidx;
        for (int k = 0; k < n->ninputs; k++) {
            int v = base[n->inputs[k].node] + n->inputs[k].index;
            if (kidx > last[v]) last[v] = kidx;
        }
    }
    /* Fetched values: into the caller's buffer when a kernel makes them and
     * they are fetched once; otherwise kept to the end and copied. */
    for (int i = 0; i < nfetched; i++) fetches[base[g->outputs[i].node] + g->outputs[i].index]++;
    for (int i = 0; i < nfetched; i++) {
        int v = base[g->outputs[i].node] + g->outputs[i].index;
        if (first[v] >= 0 && fetches[v] == 1) {
            p->kind[v] = IR_MEM_FETCH;
            p->index[v] = i;
        } else {
            last[v] = nkernels; /* read by the copies after the last kernel */
        }
    }
    /* Every other value a kernel makes goes to the arena. */
    for (int v = 0; v < p->nvalues; v++)
        if (first[v] >= 0 && p->kind[v] == IR_MEM_NONE) p->kind[v] = IR_MEM_ARENA;
    /* In place: an elementwise kernel's output takes the storage of a value
     * it reads that dies there and is laid out as the output. */
    for (int i = 0; i < nn; i++) {
        int kidx = kidx_of[i];
        const ir_node *n = &g->nodes[i];
        if (kidx < 0 || n->noutputs != 1 || p->kind[base[i]] != IR_MEM_ARENA || !all_elementwise(g, i)) continue;
        int o = base[i];
        for (int m = 0; m <= i && p->alias[o] < 0; m++) {
            if (m != i && !(g->kernel_of && g->kernel_of[i] == i && g->kernel_of[m] == i)) continue;
            const ir_node *x = &g->nodes[m];
            for (int k = 0; k < x->ninputs && p->alias[o] < 0; k++) {
                kiln_value in = x->inputs[k];
                int v = base[in.node] + in.index;
                if (p->kind[v] != IR_MEM_ARENA || last[v] != kidx || first[v] >= kidx) continue;
                if (g->kernel_of && g->kernel_of[in.node] == i) continue; /* a member, not a leaf */
                if (!same_layout(&g->nodes[in.node].outputs[in.index], &n->outputs[0])) continue;
                p->alias[o] = v;
                store[o] = store[v];
            }
        }
    }
    /* Storage: one lifetime per chain of in-place values, kept by its first. */
    for (int v = 0; v < p->nvalues; v++) {
        if (p->kind[v] != IR_MEM_ARENA) continue;
        int s = store[v];
        int end = last[v] > first[v] ? last[v] : first[v];
        if (end > last[s]) last[s] = end;
    }
    int nlt = 0;
    for (int v = 0; v < p->nvalues; v++) {
        if (p->kind[v] != IR_MEM_ARENA || store[v] != v) continue;
        int end = last[v] > first[v] ? last[v] : first[v];
        lt[nlt++] = (plan_life){v, first[v], end, align_up(bytes[v] ? bytes[v] : 1)};
    }
    qsort(lt, (size_t)nlt, sizeof *lt, by_size_desc);
    for (int i = 0; i < nlt; i++) {
        int ns = 0;
        for (int j = 0; j < i; j++) {
            if (lt[j].last < lt[i].first || lt[i].last < lt[j].first) continue;
            spans[ns++] = (plan_span){p->offset[lt[j].value], p->offset[lt[j].value] + lt[j].bytes};
        }
        qsort(spans, (size_t)ns, sizeof *spans, by_offset);
        int64_t off = 0;
        for (int j = 0; j < ns; j++) {
            if (spans[j].offset >= off + lt[i].bytes) break;
            if (spans[j].end > off) off = spans[j].end;
        }
        p->offset[lt[i].value] = off;
        if (off + lt[i].bytes > p->arena_size) p->arena_size = off + lt[i].bytes;
    }
    for (int v = 0; v < p->nvalues; v++)
        if (p->kind[v] == IR_MEM_ARENA) p->offset[v] = p->offset[store[v]];
    g->mem_plan = p;
done:
    ir_free(kidx_of);
    ir_free(first);
    ir_free(last);
    ir_free(fetches);
    ir_free(store);
    ir_free(bytes);
    ir_free(lt);
    ir_free(spans);
    return rc;
}

int pass_plan(kiln_graph *g, pass_context *cx, bool *changed)
{
    *changed = false;
    int rc = pass_plan_memory(g, cx->nfetched, cx->status);
    *changed = rc == KILN_OK && g->mem_plan != NULL;
    return rc;
}
