/* graph.c -- graphs and nodes: the arena and name map they live in, adding
 * a node (schema check, attribute copy, type inference), and lookups. */
#include <stdio.h>
#include <string.h>

#include "ir.h"

/* ---- arena ---- */

struct ir_arena_block {
    ir_arena_block *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

#define ARENA_BLOCK 65536

void *ir_arena_alloc(ir_arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    ir_arena_block *b = a->head;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > ARENA_BLOCK ? n : ARENA_BLOCK;
        b = ir_malloc(sizeof(ir_arena_block) + cap);
        if (!b) return NULL;
        b->cap = cap;
        b->used = 0;
        /* A big block goes behind the head so the head's free space stays usable. */
        if (a->head && n > ARENA_BLOCK) {
            b->next = a->head->next;
            a->head->next = b;
        } else {
            b->next = a->head;
            a->head = b;
        }
    }
    void *p = b->data + b->used;
    b->used += n;
    memset(p, 0, n);
    return p;
}

char *ir_arena_strdup(ir_arena *a, const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = ir_arena_alloc(a, n);
    if (d) memcpy(d, s, n);
    return d;
}

void ir_arena_free(ir_arena *a)
{
    ir_arena_block *b = a->head;
    while (b) {
        ir_arena_block *next = b->next;
        ir_free(b);
        b = next;
    }
    a->head = NULL;
}

/* ---- string map ---- */

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static bool strmap_grow(ir_strmap *m)
{
    size_t cap = m->cap ? m->cap * 2 : 64;
    const char **keys = ir_calloc(cap, sizeof *keys);
    int *vals = ir_calloc(cap, sizeof *vals);
    if (!keys || !vals) {
        ir_free(keys);
        ir_free(vals);
        return false;
    }
    for (size_t j = 0; j < m->cap; j++) {
        if (!m->keys[j]) continue;
        size_t i = hash_str(m->keys[j]) & (cap - 1);
        while (keys[i]) i = (i + 1) & (cap - 1);
        keys[i] = m->keys[j];
        vals[i] = m->vals[j];
    }
    ir_free(m->keys);
    ir_free(m->vals);
    m->keys = keys;
    m->vals = vals;
    m->cap = cap;
    return true;
}

/* The slot holding key, or -1. */
static long strmap_find(const ir_strmap *m, const char *key)
{
    if (!m->cap) return -1;
    for (size_t i = hash_str(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        if (!m->keys[i]) return -1;
        if (strcmp(m->keys[i], key) == 0) return (long)i;
    }
}

int ir_strmap_get(const ir_strmap *m, const char *key)
{
    long i = strmap_find(m, key);
    return i >= 0 ? m->vals[i] : -1;
}

bool ir_strmap_put(ir_strmap *m, const char *key, int val)
{
    /* Updating a key (and deleting one) never grows the map, so it cannot
     * fail: kiln_name relies on dropping the old name. */
    long found = strmap_find(m, key);
    if (found >= 0) {
        m->vals[found] = val;
        return true;
    }
    if ((m->count + 1) * 2 > m->cap && !strmap_grow(m)) return false;
    size_t i = hash_str(key) & (m->cap - 1);
    while (m->keys[i]) i = (i + 1) & (m->cap - 1);
    m->keys[i] = key;
    m->vals[i] = val;
    m->count++;
    return true;
}

bool ir_strmap_del(ir_strmap *m, const char *key)
{
    /* A deleted key keeps its slot with value -1, so probe chains stay intact. */
    if (ir_strmap_get(m, key) < 0) return false;
    return ir_strmap_put(m, key, -1);
}

void ir_strmap_free(ir_strmap *m)
{
    ir_free(m->keys);
    ir_free(m->vals);
    memset(m, 0, sizeof *m);
}

/* ---- graphs ---- */

kiln_graph *kiln_graph_new(void) { return ir_calloc(1, sizeof(kiln_graph)); }

void kiln_graph_free(kiln_graph *g)
{
    if (!g) return;
    for (int i = 0; i < g->nnodes; i++) {
        ir_node *n = &g->nodes[i];
        int na = ir_op_def(n->op)->nattrs;
        for (int k = 0; k < na; k++) ir_attr_clear(&n->attrs[k]);
    }
    ir_free(g->nodes);
    ir_strmap_free(&g->names);
    ir_arena_free(&g->arena);
    ir_free(g->error);
    ir_free(g);
}

const char *kiln_graph_error(const kiln_graph *g)
{
    if (!g) return "graph is NULL";
    return g->error_code ? (g->error ? g->error : "out of memory") : NULL;
}

int kiln_graph_node_count(const kiln_graph *g) { return g ? g->nnodes : 0; }

void ir_graph_set_error(kiln_graph *g, int code, const char *fmt, ...)
{
    if (!g || g->error_code) return;
    g->error_code = code;
    va_list ap;
    va_start(ap, fmt);
    g->error = ir_vasprintf(fmt, ap);
    va_end(ap);
}

bool ir_value_valid(const kiln_graph *g, kiln_value v)
{
    return g && v.node >= 0 && v.node < g->nnodes && v.index >= 0 &&
           v.index < g->nodes[v.node].noutputs;
}

const ir_type *ir_value_type(const kiln_graph *g, kiln_value v)
{
    return &g->nodes[v.node].outputs[v.index];
}

/* Copies the caller's attributes into the node's schema slots, converting
 * int to float where the schema wants a float, and fills defaults. */
static int set_node_attrs(kiln_graph *g, const ir_opdef *def, ir_attr *slots, const char *name,
                          const kiln_attrs *attrs)
{
    if (attrs && attrs->oom) {
        ir_graph_set_error(g, KILN_ERR_INVALID_ARGUMENT,
                           "%s '%s': the attribute bag is incomplete (out of memory or a NULL "
                           "argument while it was filled)",
                           def->name, name);
        return -1;
    }
    for (int i = 0; attrs && i < attrs->n; i++) {
        int k = ir_op_attr_index(def, attrs->names[i]);
        if (k < 0) {
            ir_buf b = {0};
            for (int j = 0; j < def->nattrs; j++)
                ir_buf_printf(&b, "%s%s", j ? ", " : "", def->attrs[j].name);
            char *list = ir_buf_take(&b);
            ir_graph_set_error(g, KILN_ERR_INVALID_ARGUMENT,
                               "%s '%s': unknown attribute '%s' (%s takes: %s)", def->name, name,
                               attrs->names[i], def->name,
                               list ? (*list ? list : "no attributes") : "?");
            ir_free(list);
            return -1;
        }
        const ir_attr *v = &attrs->vals[i];
        ir_attr conv = *v;
        double tmp[64];
        ir_attr_kind want = def->attrs[k].kind;
        if (want == IR_ATTR_FLOAT && v->kind == IR_ATTR_INT) {
            conv.kind = IR_ATTR_FLOAT;
            conv.u.f = (double)v->u.i;
        } else if (want == IR_ATTR_FLOATS && v->kind == IR_ATTR_INTS && v->n <= 64) {
            for (int j = 0; j < v->n; j++) tmp[j] = (double)v->u.ints[j];
            conv.kind = IR_ATTR_FLOATS;
            conv.u.floats = tmp;
        } else if (want == IR_ATTR_DTYPE && v->kind == IR_ATTR_INT) {
            conv.kind = IR_ATTR_DTYPE;
        } else if (want != v->kind) {
            ir_graph_set_error(g, KILN_ERR_INVALID_ARGUMENT,
                               "%s '%s': attribute '%s' must be %s, got %s", def->name, name,
                               attrs->names[i], ir_attr_kind_name(want),
                               ir_attr_kind_name(v->kind));
            return -1;
        }
        if (conv.kind == IR_ATTR_DTYPE && !ir_dtype_valid((int)conv.u.i)) {
            ir_graph_set_error(g, KILN_ERR_INVALID_ARGUMENT,
                               "%s '%s': attribute '%s' is not a dtype (%lld)", def->name, name,
                               attrs->names[i], (long long)conv.u.i);
            return -1;
        }
        ir_attr_clear(&slots[k]);
        if (!ir_attr_copy(&slots[k], &conv)) {
            ir_graph_set_error(g, KILN_ERR_OUT_OF_MEMORY, "%s '%s': out of memory", def->name,
                               name);
            return -1;
        }
    }
    for (int k = 0; k < def->nattrs; k++) {
        const ir_attrdef *ad = &def->attrs[k];
        if (slots[k].kind != IR_ATTR_NONE) continue;
        if (ad->required) {
            ir_graph_set_error(g, KILN_ERR_INVALID_ARGUMENT,
                               "%s '%s': missing required attribute '%s' (%s)", def->name, name,
                               ad->name, ir_attr_kind_name(ad->kind));
            return -1;
        }
        ir_attr d = {.kind = ad->kind};
        switch (ad->kind) {
        case IR_ATTR_INT:
        case IR_ATTR_DTYPE: d.u.i = ad->def_i; break;
        case IR_ATTR_FLOAT: d.u.f = ad->def_f; break;
        case IR_ATTR_STRING:
            if (!ad->def_s) continue;
            d.u.s = (char *)ad->def_s;
            break;
        default: continue; /* lists and tensors: left unset */
        }
        if (!ir_attr_copy(&slots[k], &d)) {
            ir_graph_set_error(g, KILN_ERR_OUT_OF_MEMORY, "%s '%s': out of memory", def->name,
                               name);
            return -1;
        }
    }
    return 0;
}

static void clear_slots(ir_attr *slots, int n)
{
    for (int k = 0; k < n; k++) ir_attr_clear(&slots[k]);
}

int ir_graph_add_node(kiln_graph *g, ir_op op, const char *name, const kiln_value *inputs,
                      int ninputs, const kiln_attrs *attrs)
{
    const ir_opdef *def = ir_op_def(op);
    if (!g || !def) return -1;
    char autoname[96];
    if (!name) {
        snprintf(autoname, sizeof autoname, "%s_%d", def->name, g->nnodes);
        for (int k = 1; ir_strmap_get(&g->names, autoname) >= 0; k++)
            snprintf(autoname, sizeof autoname, "%s_%d_%d", def->name, g->nnodes, k);
        name = autoname;
    } else if (!*name) {
        ir_graph_set_error(g, KILN_ERR_INVALID_ARGUMENT, "%s: node name is empty", def->name);
        return -1;
    } else if (ir_strmap_get(&g->names, name) >= 0) {
        ir_graph_set_error(g, KILN_ERR_INVALID_ARGUMENT,
                           "%s '%s': the name is already used by another node", def->name, name);
        return -1;
    }
    if (ninputs < 0 || ninputs < def->min_inputs ||
        (def->max_inputs >= 0 && ninputs > def->max_inputs)) {
        if (def->max_inputs < 0)
            ir_graph_set_error(g, KILN_ERR_INVALID_ARGUMENT,
                               "%s '%s': takes at least %d inputs, got %d", def->name, name,
                               def->min_inputs, ninputs);
        else if (def->min_inputs == def->max_inputs)
            ir_graph_set_error(g, KILN_ERR_INVALID_ARGUMENT, "%s '%s': takes %d inputs, got %d",
                               def->name, name, def->min_inputs, ninputs);
        else
            ir_graph_set_error(g, KILN_ERR_INVALID_ARGUMENT,
                               "%s '%s': takes %d to %d inputs, got %d", def->name, name,
                               def->min_inputs, def->max_inputs, ninputs);
        return -1;
    }
    if (ninputs > 0 && !inputs) {
        ir_graph_set_error(g, KILN_ERR_INVALID_ARGUMENT, "%s '%s': inputs is NULL", def->name,
                           name);
        return -1;
    }
    for (int i = 0; i < ninputs; i++) {
        if (!ir_value_valid(g, inputs[i])) {
            /* A value poisoned by an earlier error: that error stands. */
            ir_graph_set_error(g, KILN_ERR_INVALID_ARGUMENT,
                               "%s '%s': input %d is not a valid value of this graph (%d:%d)",
                               def->name, name, i, (int)inputs[i].node, (int)inputs[i].index);
            return -1;
        }
    }
    if (g->nnodes == g->cap) {
        int cap = g->cap ? g->cap * 2 : 64;
        ir_node *nodes = ir_realloc(g->nodes, sizeof(ir_node) * (size_t)cap);
        if (!nodes) goto oom;
        g->nodes = nodes;
        g->cap = cap;
    }

    ir_node n = {.op = op, .ninputs = ninputs};
    n.name = ir_arena_strdup(&g->arena, name);
    n.inputs = ir_arena_alloc(&g->arena, sizeof(kiln_value) * (size_t)(ninputs ? ninputs : 1));
    n.attrs = ir_arena_alloc(&g->arena, sizeof(ir_attr) * (size_t)(def->nattrs ? def->nattrs : 1));
    if (!n.name || !n.inputs || !n.attrs) goto oom;
    if (ninputs) memcpy(n.inputs, inputs, sizeof(kiln_value) * (size_t)ninputs);
    if (set_node_attrs(g, def, n.attrs, name, attrs) < 0) {
        clear_slots(n.attrs, def->nattrs);
        return -1;
    }

    ir_type in_small[8];
    const kiln_tensor *cin_small[8];
    ir_type *in = ninputs <= 8 ? in_small : ir_malloc(sizeof(ir_type) * (size_t)ninputs);
    const kiln_tensor **cin =
        ninputs <= 8 ? cin_small : ir_malloc(sizeof(kiln_tensor *) * (size_t)ninputs);
    if (!in || !cin) {
        if (in != in_small) ir_free(in);
        if (cin != cin_small) ir_free(cin);
        clear_slots(n.attrs, def->nattrs);
        goto oom;
    }
    for (int i = 0; i < ninputs; i++) {
        in[i] = *ir_value_type(g, inputs[i]);
        const ir_node *src = &g->nodes[inputs[i].node];
        cin[i] = src->op == IR_OP_Constant ? ir_node_tensor(src, "value") : NULL;
    }
    ir_infer_ctx cx;
    int rc = ir_infer_run(&cx, g, &n, in, ninputs, cin);
    if (in != in_small) ir_free(in);
    if (cin != cin_small) ir_free(cin);
    if (rc == 0) {
        n.noutputs = cx.noutputs;
        n.outputs = ir_arena_alloc(&g->arena, sizeof(ir_type) * (size_t)(cx.noutputs ? cx.noutputs : 1));
        if (!n.outputs) {
            cx.error_code = KILN_ERR_OUT_OF_MEMORY;
            rc = -1;
        } else {
            memcpy(n.outputs, cx.out, sizeof(ir_type) * (size_t)cx.noutputs);
        }
    }
    if (rc != 0) {
        if (cx.error)
            ir_graph_set_error(g, cx.error_code ? cx.error_code : KILN_ERR_INVALID_ARGUMENT, "%s",
                               cx.error);
        else
            ir_graph_set_error(g, KILN_ERR_OUT_OF_MEMORY, "%s '%s': out of memory", def->name,
                               name);
        ir_infer_ctx_clear(&cx);
        clear_slots(n.attrs, def->nattrs);
        return -1;
    }
    ir_infer_ctx_clear(&cx);
    if (!ir_strmap_put(&g->names, n.name, g->nnodes)) {
        clear_slots(n.attrs, def->nattrs);
        goto oom;
    }
    g->nodes[g->nnodes] = n;
    return g->nnodes++;

oom:
    ir_graph_set_error(g, KILN_ERR_OUT_OF_MEMORY, "%s '%s': out of memory", def->name, name);
    return -1;
}

const ir_attr *ir_node_attr(const ir_node *n, const char *name)
{
    const ir_opdef *def = ir_op_def(n->op);
    int k = ir_op_attr_index(def, name);
    return k >= 0 ? &n->attrs[k] : NULL;
}

int64_t ir_node_int(const ir_node *n, const char *name)
{
    const ir_attr *a = ir_node_attr(n, name);
    return a && (a->kind == IR_ATTR_INT || a->kind == IR_ATTR_DTYPE) ? a->u.i : 0;
}

double ir_node_float(const ir_node *n, const char *name)
{
    const ir_attr *a = ir_node_attr(n, name);
    return a && a->kind == IR_ATTR_FLOAT ? a->u.f : 0.0;
}

const char *ir_node_string(const ir_node *n, const char *name)
{
    const ir_attr *a = ir_node_attr(n, name);
    return a && a->kind == IR_ATTR_STRING ? a->u.s : NULL;
}

const int64_t *ir_node_ints(const ir_node *n, const char *name, int *count)
{
    const ir_attr *a = ir_node_attr(n, name);
    if (!a || a->kind != IR_ATTR_INTS) {
        *count = 0;
        return NULL;
    }
    *count = a->n;
    return a->u.ints;
}

const double *ir_node_floats(const ir_node *n, const char *name, int *count)
{
    const ir_attr *a = ir_node_attr(n, name);
    if (!a || a->kind != IR_ATTR_FLOATS) {
        *count = 0;
        return NULL;
    }
    *count = a->n;
    return a->u.floats;
}

const kiln_tensor *ir_node_tensor(const ir_node *n, const char *name)
{
    const ir_attr *a = ir_node_attr(n, name);
    return a && a->kind == IR_ATTR_TENSOR ? a->u.t : NULL;
}
