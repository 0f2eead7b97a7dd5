/* plan.c -- memory planning: every value of the specialized graph gets a
 * location. Fed inputs, variables and constants stay where they are; a
 * fetched value produced by a kernel is written straight into its output
 * buffer; every other intermediate gets an offset in one arena, shared with
 * values whose lifetimes (first producing to last consuming kernel) do not
 * overlap. Offsets are chosen greedily, largest values first, at the lowest
 * aligned offset that fits between the live values already placed. */
#include <stdlib.h>
#include <string.h>

#include "cg_internal.h"

void cg_plan_free(cg_plan *p)
{
    ir_free(p->base);
    ir_free(p->loc);
    ir_free(p->kernels);
    ir_free(p->copy_src);
    memset(p, 0, sizeof *p);
}

typedef struct {
    int value;
    int first, last; /* kernel indices */
    size_t bytes;
} lifetime;

static int by_size_desc(const void *a, const void *b)
{
    const lifetime *x = a, *y = b;
    if (x->bytes != y->bytes) return x->bytes < y->bytes ? 1 : -1;
    return x->value - y->value;
}

typedef struct {
    size_t offset, end;
} span;

static int by_offset(const void *a, const void *b)
{
    const span *x = a, *y = b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static size_t align_up(size_t n) { return (n + CG_ALIGN - 1) / CG_ALIGN * CG_ALIGN; }

int cg_plan_memory(const cg_spec *s, cg_plan *p, kiln_status *status)
{
    memset(p, 0, sizeof *p);
    const kiln_graph *g = s->g;
    int nn = g->nnodes;
    lifetime *lt = NULL;
    span *spans = NULL;
    int *first_kernel = NULL, *last_use = NULL, *fetch_count = NULL, *kidx_of = NULL;
    p->base = ir_malloc(sizeof(int) * ((size_t)nn + 1));
    p->kernels = ir_malloc(sizeof(int) * ((size_t)nn + 1));
    p->copy_src = ir_malloc(sizeof(int) * ((size_t)s->noutputs + 1));
    if (!p->base || !p->kernels || !p->copy_src) goto oom;
    for (int i = 0; i < nn; i++) {
        p->base[i] = p->nvalues;
        p->nvalues += g->nodes[i].noutputs;
    }
    p->loc = ir_calloc((size_t)p->nvalues + 1, sizeof(cg_loc));
    first_kernel = ir_malloc(sizeof(int) * ((size_t)p->nvalues + 1));
    last_use = ir_malloc(sizeof(int) * ((size_t)p->nvalues + 1));
    fetch_count = ir_calloc((size_t)p->nvalues + 1, sizeof(int));
    lt = ir_malloc(sizeof(lifetime) * ((size_t)p->nvalues + 1));
    spans = ir_malloc(sizeof(span) * ((size_t)p->nvalues + 1));
    if (!p->loc || !first_kernel || !last_use || !fetch_count || !lt || !spans) goto oom;

    /* Kernels: every node that runs, except members of a fused kernel. */
    kidx_of = ir_malloc(sizeof(int) * ((size_t)nn + 1));
    if (!kidx_of) goto oom;
    for (int i = 0; i < nn; i++) {
        kidx_of[i] = -1;
        if (ir_op_def(g->nodes[i].op)->flags & IR_OPF_SOURCE) continue;
        if (g->kernel_of && g->kernel_of[i] >= 0 && g->kernel_of[i] != i) continue;
        kidx_of[i] = p->nkernels;
        p->kernels[p->nkernels++] = i;
    }
    for (int i = 0; i < nn; i++) {
        const ir_node *n = &g->nodes[i];
        for (int k = 0; k < n->noutputs; k++) {
            int v = p->base[i] + k;
            p->loc[v].bytes = (size_t)ir_shape_numel(n->outputs[k].rank, n->outputs[k].dims) *
                              kiln_dtype_size(n->outputs[k].dtype);
            first_kernel[v] = -1;
            last_use[v] = -1;
        }
        if (n->op == IR_OP_Placeholder) {
            for (int j = 0; j < s->ninputs; j++)
                if (s->input_nodes[j] == i) p->loc[p->base[i]] = (cg_loc){CG_LOC_INPUT, j, 0, p->loc[p->base[i]].bytes};
        } else if (n->op == IR_OP_Variable) {
            p->loc[p->base[i]].kind = CG_LOC_VAR;
            p->loc[p->base[i]].index = s->var_slot[i];
        } else if (n->op == IR_OP_Constant) {
            p->loc[p->base[i]].kind = CG_LOC_CONST;
            p->loc[p->base[i]].index = i;
        } else {
            /* A member of a fused kernel runs as part of its root: its
             * inputs are read by the root's kernel and its outputs never
             * reach memory. */
            int root = g->kernel_of && g->kernel_of[i] >= 0 ? g->kernel_of[i] : i;
            int kidx = kidx_of[root];
            if (root == i)
                for (int k = 0; k < n->noutputs; k++) first_kernel[p->base[i] + k] = kidx;
            for (int k = 0; k < n->ninputs; k++) {
                int v = p->base[n->inputs[k].node] + n->inputs[k].index;
                if (kidx > last_use[v]) last_use[v] = kidx;
            }
        }
    }
    /* Fetched values: produced in place when a kernel makes them and they
     * are fetched once; otherwise copied at the end. */
    for (int i = 0; i < s->noutputs; i++) fetch_count[p->base[s->outputs[i].node] + s->outputs[i].index]++;
    for (int i = 0; i < s->noutputs; i++) {
        int v = p->base[s->outputs[i].node] + s->outputs[i].index;
        if (first_kernel[v] >= 0 && p->loc[v].kind == CG_LOC_NONE && fetch_count[v] == 1) {
            p->loc[v].kind = CG_LOC_OUTPUT;
            p->loc[v].index = i;
            p->copy_src[i] = -1;
        } else {
            p->copy_src[i] = v;
            last_use[v] = p->nkernels; /* read by the copies after the last kernel */
        }
    }
    int nlt = 0;
    for (int v = 0; v < p->nvalues; v++) {
        if (first_kernel[v] < 0 || p->loc[v].kind != CG_LOC_NONE) continue;
        int last = last_use[v] > first_kernel[v] ? last_use[v] : first_kernel[v];
        lt[nlt++] = (lifetime){v, first_kernel[v], last, align_up(p->loc[v].bytes ? p->loc[v].bytes : 1)};
    }
    qsort(lt, (size_t)nlt, sizeof *lt, by_size_desc);
    for (int i = 0; i < nlt; i++) {
        int ns = 0;
        for (int j = 0; j < i; j++) {
            if (lt[j].last < lt[i].first || lt[i].last < lt[j].first) continue;
            const cg_loc *o = &p->loc[lt[j].value];
            spans[ns++] = (span){o->offset, o->offset + lt[j].bytes};
        }
        qsort(spans, (size_t)ns, sizeof *spans, by_offset);
        size_t off = 0;
        for (int j = 0; j < ns; j++) {
            if (spans[j].offset >= off + lt[i].bytes) break;
            if (spans[j].end > off) off = spans[j].end;
        }
        p->loc[lt[i].value].kind = CG_LOC_ARENA;
        p->loc[lt[i].value].offset = off;
        if (off + lt[i].bytes > p->arena_size) p->arena_size = off + lt[i].bytes;
    }
    ir_free(lt);
    ir_free(spans);
    ir_free(first_kernel);
    ir_free(last_use);
    ir_free(fetch_count);
    ir_free(kidx_of);
    return KILN_OK;
oom:
    ir_free(kidx_of);
    ir_free(lt);
    ir_free(spans);
    ir_free(first_kernel);
    ir_free(last_use);
    ir_free(fetch_count);
    cg_plan_free(p);
    return ir_set_status(status, KILN_ERR_OUT_OF_MEMORY, "compile: out of memory in memory planning");
}
