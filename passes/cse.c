/* cse.c -- common-subexpression elimination: a node with the same op, the
 * same inputs and equal attributes as an earlier one is replaced by it.
 * Nodes with effects or state (Assign, Variable, Placeholder, random ops)
 * are never merged. Nodes are hashed so the pass is linear in practice. */
#include <string.h>

#include "passes.h"

static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    return h;
}

static uint64_t attr_hash(const ir_attr *a)
{
    uint64_t h = (uint64_t)a->kind;
    switch (a->kind) {
    case IR_ATTR_INT:
    case IR_ATTR_DTYPE: return mix(h, (uint64_t)a->u.i);
    case IR_ATTR_FLOAT: {
        uint64_t u;
        memcpy(&u, &a->u.f, 8);
        return mix(h, u);
    }
    case IR_ATTR_INTS:
        for (int i = 0; i < a->n; i++) h = mix(h, (uint64_t)a->u.ints[i]);
        return h;
    case IR_ATTR_STRING:
        for (const char *s = a->u.s; *s; s++) h = mix(h, (unsigned char)*s);
        return h;
    case IR_ATTR_TENSOR: {
        const kiln_tensor *t = a->u.t;
        h = mix(h, (uint64_t)t->dtype);
        size_t n = kiln_tensor_nbytes(t);
        const unsigned char *d = t->data;
        /* sample at most 64 bytes: equality is checked exactly later */
        for (size_t i = 0; i < n; i += n / 64 + 1) h = mix(h, d[i]);
        return mix(h, n);
    }
    default: return h;
    }
}

static bool mergeable(const ir_node *n)
{
    const ir_opdef *d = ir_op_def(n->op);
    return !(d->flags & (IR_OPF_STATEFUL | IR_OPF_RANDOM)) && n->op != IR_OP_Placeholder;
}

static uint64_t node_hash(const ir_node *n)
{
    const ir_opdef *d = ir_op_def(n->op);
    uint64_t h = mix(0, (uint64_t)n->op);
    for (int k = 0; k < n->ninputs; k++) h = mix(mix(h, (uint64_t)n->inputs[k].node), (uint64_t)n->inputs[k].index);
    for (int k = 0; k < d->nattrs; k++) h = mix(h, attr_hash(&n->attrs[k]));
    return h;
}

static bool same_node(const ir_node *a, const ir_node *b)
{
    if (a->op != b->op || a->ninputs != b->ninputs || a->noutputs != b->noutputs) return false;
    for (int k = 0; k < a->ninputs; k++)
        if (a->inputs[k].node != b->inputs[k].node || a->inputs[k].index != b->inputs[k].index) return false;
    const ir_opdef *d = ir_op_def(a->op);
    for (int k = 0; k < d->nattrs; k++)
        if (!ir_attr_equal(&a->attrs[k], &b->attrs[k])) return false;
    return true;
}

int pass_cse(kiln_graph *g, pass_context *cx, bool *changed)
{
    *changed = false;
    int nn = g->nnodes;
    size_t cap = 16;
    while (cap < (size_t)nn * 2) cap *= 2;
    int *table = ir_malloc(sizeof(int) * cap);
    int *rep = ir_malloc(sizeof(int) * ((size_t)nn + 1));
    uint64_t *hashes = ir_malloc(sizeof(uint64_t) * ((size_t)nn + 1));
    if (!table || !rep || !hashes) {
        ir_free(table);
        ir_free(rep);
        ir_free(hashes);
        return ir_set_status(cx->status, KILN_ERR_OUT_OF_MEMORY, "cse: out of memory");
    }
    for (size_t i = 0; i < cap; i++) table[i] = -1;
    /* In node order each node's inputs are first pointed at their
     * representatives, so chains of duplicates merge in one sweep. A merged
     * node keeps its op, so its outputs match its representative's. */
    for (int i = 0; i < nn; i++) {
        ir_node *n = &g->nodes[i];
        rep[i] = i;
        for (int k = 0; k < n->ninputs; k++) n->inputs[k].node = rep[n->inputs[k].node];
        if (!mergeable(n)) continue;
        uint64_t h = node_hash(n);
        hashes[i] = h;
        size_t slot = h & (cap - 1);
        for (; table[slot] >= 0; slot = (slot + 1) & (cap - 1)) {
            int j = table[slot];
            if (hashes[j] == h && same_node(&g->nodes[j], n)) {
                rep[i] = j;
                *changed = true;
                break;
            }
        }
        if (rep[i] == i) table[slot] = i;
    }
    for (int k = 0; k < g->noutputs; k++) g->outputs[k].node = rep[g->outputs[k].node];
    ir_free(table);
    ir_free(rep);
    ir_free(hashes);
    return *changed ? pass_compact(g, cx) : KILN_OK;
}
