/* onnx.c -- kiln_import_onnx: an ONNX ModelProto (parsed by protobuf-c code
 * generated at build time from the installed onnx package's onnx.proto)
 * rebuilt as a kiln graph. The model's nodes are sorted topologically here
 * (a cycle or a dangling input is an error), checked against the op table
 * (one error lists every unsupported op), then converted in order by
 * onnx_ops.c through onnx_op_n, which folds nodes whose inputs are all
 * constants. Every size in the file is checked before it sizes an
 * allocation; the whole parse goes through ir_malloc. */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "onnx_internal.h"

/* The largest model file read whole (protobuf's own limit is 2 GiB). */
#define ONNX_MAX_FILE ((size_t)INT32_MAX)

/* ---- errors ---- */

bool onnx_failed(const onnx_ctx *cx) { return cx->st->code != KILN_OK; }

static const char *node_label(const Onnx__NodeProto *n)
{
    return n->name && *n->name ? n->name : (n->n_output && n->output[0] ? n->output[0] : "?");
}

int onnx_error(onnx_ctx *cx, int code, const char *fmt, ...)
{
    if (onnx_failed(cx)) return cx->st->code;
    va_list ap;
    va_start(ap, fmt);
    char *msg = ir_vasprintf(fmt, ap);
    va_end(ap);
    const Onnx__NodeProto *n = cx->node;
    const Onnx__NodeProto *own = cx->outer ? cx->outer->owner : NULL;
    if (own == n) own = NULL;
    if (n)
        ir_set_status(cx->st, code, "%s: node '%s' (%s, opset %d)%s%s%s%s%s: %s", cx->path,
                      node_label(n), n->op_type ? n->op_type : "?", cx->opset,
                      own ? " in a subgraph of node '" : "", own ? node_label(own) : "",
                      own ? "' (" : "", own && own->op_type ? own->op_type : "", own ? ")" : "",
                      msg ? msg : "out of memory");
    else
        ir_set_status(cx->st, code, "%s: %s", cx->path, msg ? msg : "out of memory");
    if (!msg) cx->st->code = KILN_ERR_OUT_OF_MEMORY;
    ir_free(msg);
    return cx->st->code;
}

/* The graph's first error, as the import's. */
static kiln_value graph_failed(onnx_ctx *cx)
{
    onnx_error(cx, cx->g->error_code ? cx->g->error_code : KILN_ERR_INTERNAL, "%s",
               kiln_graph_error(cx->g));
    return kiln_value_invalid();
}

/* ---- values ---- */

const kiln_tensor *onnx_value_tensor(const onnx_ctx *cx, kiln_value v)
{
    if (!ir_value_valid(cx->g, v) || v.index != 0) return NULL;
    const ir_node *n = ir_graph_node(cx->g, v);
    return n->op == IR_OP_Constant ? ir_node_tensor(n, "value") : NULL;
}

const ir_type *onnx_type(const onnx_ctx *cx, kiln_value v)
{
    /* A missing (empty-named or absent) input a converter needs: report it
     * and hand out a placeholder type so the converter finishes without
     * touching memory; convert_node sees the error afterwards. */
    static const ir_type missing = {.dtype = KILN_F32, .rank = 0};
    if (ir_value_valid(cx->g, v)) return ir_value_type(cx->g, v);
    onnx_error((onnx_ctx *)cx, KILN_ERR_INVALID_ARGUMENT, "a required input is missing");
    return &missing;
}

kiln_value onnx_const(onnx_ctx *cx, const kiln_tensor *t)
{
    if (onnx_failed(cx)) return kiln_value_invalid();
    kiln_value v = kiln_constant(cx->g, NULL, t);
    return kiln_value_ok(v) ? v : graph_failed(cx);
}

kiln_value onnx_scalar(onnx_ctx *cx, kiln_dtype dt, double v)
{
    if (onnx_failed(cx)) return kiln_value_invalid();
    kiln_value r = kiln_scalar(cx->g, dt, v);
    return kiln_value_ok(r) ? r : graph_failed(cx);
}

kiln_value onnx_const_ints(onnx_ctx *cx, const int64_t *v, int n)
{
    int64_t d = n;
    kiln_tensor *t = kiln_tensor_from_data(KILN_I64, 1, &d, v);
    if (!t) {
        onnx_error(cx, KILN_ERR_OUT_OF_MEMORY, "out of memory");
        return kiln_value_invalid();
    }
    kiln_value r = onnx_const(cx, t);
    kiln_tensor_free(t);
    return r;
}

/* Evaluates op on constant inputs. Returns 1 when folded (outs filled),
 * 0 when not folded (too large), -1 on error. */
static int fold(onnx_ctx *cx, int op, const kiln_value *in, int nin, const kiln_attrs *attrs,
                kiln_value *outs, int nouts)
{
    const ir_opdef *def = ir_op_def((ir_op)op);
    kiln_graph *s = kiln_graph_new();
    kiln_tensor *small[8] = {0};
    kiln_tensor **ins = nin <= 8 ? small : ir_calloc((size_t)nin, sizeof *ins);
    kiln_value ph_small[8];
    kiln_value *ph = nin <= 8 ? ph_small : ir_calloc((size_t)nin, sizeof *ph);
    kiln_tensor *res[8] = {0};
    int rc = -1;
    kiln_status st = {0};
    if (!s || !ins || !ph) {
        onnx_error(cx, KILN_ERR_OUT_OF_MEMORY, "out of memory");
        goto done;
    }
    size_t in_bytes = 0;
    for (int i = 0; i < nin; i++) {
        ins[i] = (kiln_tensor *)onnx_value_tensor(cx, in[i]);
        in_bytes += kiln_tensor_nbytes(ins[i]);
        ph[i] = kiln_placeholder(s, NULL, ins[i]->dtype, ins[i]->rank, ins[i]->dims);
    }
    int id = ir_graph_add_node(s, (ir_op)op, NULL, ph, nin, attrs);
    if (id < 0) {
        onnx_error(cx, s->error_code ? s->error_code : KILN_ERR_INTERNAL, "%s", kiln_graph_error(s));
        goto done;
    }
    const ir_node *n = &s->nodes[id];
    if (n->noutputs > 8) {
        rc = 0;
        goto done;
    }
    size_t limit = in_bytes > ONNX_FOLD_LIMIT ? in_bytes : ONNX_FOLD_LIMIT;
    int code = ir_eval_node(n, def, ins, nin, limit, res, &st);
    if (code == KILN_ERR_FAILED_PRECONDITION) {
        rc = 0;
        goto done;
    }
    if (code) {
        onnx_error(cx, code, "evaluating constant %s: %s", def->name, st.message);
        goto done;
    }
    /* Unrolled control flow can fold the same large constant once per
     * iteration: bound what a small file can make the importer hold. */
    for (int k = 0; cx->depth && k < n->noutputs; k++) cx->unrolled_bytes += kiln_tensor_nbytes(res[k]);
    if (cx->unrolled_bytes > ONNX_MAX_UNROLL_BYTES) {
        onnx_error(cx, KILN_ERR_UNIMPLEMENTED,
                   "the constants folded in unrolled control flow pass %zu MiB (the limit)",
                   ONNX_MAX_UNROLL_BYTES >> 20);
        goto done;
    }
    for (int k = 0; k < n->noutputs; k++) {
        kiln_value c = onnx_const(cx, res[k]);
        if (!kiln_value_ok(c)) goto done;
        if (k < nouts) outs[k] = c;
    }
    rc = 1;
done:
    for (int k = 0; k < 8; k++) kiln_tensor_free(res[k]);
    ir_free(st.message);
    if (ins != small) ir_free(ins);
    if (ph != ph_small) ir_free(ph);
    kiln_graph_free(s);
    return rc;
}

kiln_value onnx_op_n(onnx_ctx *cx, const char *op, const kiln_value *in, int nin,
                     const kiln_attrs *attrs, kiln_value *outs, int nouts)
{
    for (int k = 0; outs && k < nouts; k++) outs[k] = kiln_value_invalid();
    if (onnx_failed(cx)) return kiln_value_invalid();
    int opi = ir_op_lookup(op);
    if (opi < 0) {
        onnx_error(cx, KILN_ERR_INTERNAL, "kiln has no op '%s'", op);
        return kiln_value_invalid();
    }
    const ir_opdef *def = ir_op_def((ir_op)opi);
    bool all_const = cx->fold && nin > 0 && def->kernel &&
                     !(def->flags & (IR_OPF_SOURCE | IR_OPF_STATEFUL | IR_OPF_RANDOM));
    for (int i = 0; i < nin; i++) {
        if (!ir_value_valid(cx->g, in[i])) {
            onnx_error(cx, KILN_ERR_INTERNAL, "%s: input %d is not a value", op, i);
            return kiln_value_invalid();
        }
        if (!onnx_value_tensor(cx, in[i])) all_const = false;
    }
    if (all_const) {
        kiln_value tmp[8];
        int r = fold(cx, opi, in, nin, attrs, outs ? outs : tmp, outs ? nouts : 1);
        if (r < 0) return kiln_value_invalid();
        if (r > 0) return outs ? outs[0] : tmp[0];
    }
    int id = ir_graph_add_node(cx->g, (ir_op)opi, NULL, in, nin, attrs);
    if (id < 0) return graph_failed(cx);
    for (int k = 0; outs && k < nouts; k++)
        outs[k] = k < cx->g->nodes[id].noutputs ? (kiln_value){id, k} : kiln_value_invalid();
    return (kiln_value){id, 0};
}

kiln_value onnx_op(onnx_ctx *cx, const char *op, const kiln_value *in, int nin,
                   const kiln_attrs *attrs)
{
    return onnx_op_n(cx, op, in, nin, attrs, NULL, 0);
}

kiln_value onnx_op1(onnx_ctx *cx, const char *op, kiln_value a) { return onnx_op(cx, op, &a, 1, NULL); }

kiln_value onnx_op2(onnx_ctx *cx, const char *op, kiln_value a, kiln_value b)
{
    kiln_value in[2] = {a, b};
    return onnx_op(cx, op, in, 2, NULL);
}

/* ---- the ONNX value map ---- */

/* The innermost binding of name: this graph's, then the enclosing ones'. */
static int value_lookup(const onnx_ctx *cx, const char *name, kiln_value *v)
{
    int i = ir_strmap_get(&cx->names, name);
    if (i >= 0) {
        *v = cx->vals[i];
        return 0;
    }
    for (const onnx_scope *s = cx->outer; s; s = s->outer)
        if ((i = ir_strmap_get(&s->names, name)) >= 0) {
            *v = s->vals[i];
            return 0;
        }
    return -1;
}

static bool claim(onnx_ctx *cx, int node)
{
    if (node >= cx->capclaimed) {
        int cap = cx->capclaimed ? cx->capclaimed : 256;
        while (cap <= node) cap *= 2;
        unsigned char *c = ir_realloc(cx->claimed, (size_t)cap);
        if (!c) return false;
        memset(c + cx->capclaimed, 0, (size_t)(cap - cx->capclaimed));
        cx->claimed = c;
        cx->capclaimed = cap;
    }
    cx->claimed[node] = 1;
    return true;
}

static bool claimed(const onnx_ctx *cx, int node)
{
    return node < cx->capclaimed && cx->claimed[node];
}

/* Gives v's node the ONNX name `name` (when it has none of the model's
 * yet), moving an auto-named node out of the way. */
static int name_node(onnx_ctx *cx, kiln_value v, const char *name)
{
    if (v.index != 0 || claimed(cx, v.node) || !*name) return KILN_OK;
    kiln_value other = kiln_graph_find(cx->g, name);
    if (kiln_value_ok(other) && other.node != v.node) {
        if (claimed(cx, other.node)) return KILN_OK; /* the model reuses a name: keep the first */
        char fresh[64];
        for (int k = cx->g->nnodes;; k++) {
            snprintf(fresh, sizeof fresh, "_onnx_%d", k);
            if (!kiln_value_ok(kiln_graph_find(cx->g, fresh))) break;
        }
        if (!kiln_value_ok(kiln_name(cx->g, other, fresh))) return graph_failed(cx), cx->st->code;
    }
    if (!kiln_value_ok(kiln_name(cx->g, v, name))) return graph_failed(cx), cx->st->code;
    if (!claim(cx, v.node)) return onnx_error(cx, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    return KILN_OK;
}

/* Binds the ONNX value `name` to v. */
static int bind(onnx_ctx *cx, const char *name, kiln_value v)
{
    if (!*name) return KILN_OK; /* an output the model leaves unnamed: unused */
    if (ir_strmap_get(&cx->names, name) >= 0)
        return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT,
                          "value '%s' is defined twice (ONNX graphs are in SSA form)", name);
    if (cx->nvals == cx->capvals) {
        int cap = cx->capvals ? cx->capvals * 2 : 256;
        kiln_value *nv = ir_realloc(cx->vals, sizeof(kiln_value) * (size_t)cap);
        if (!nv) return onnx_error(cx, KILN_ERR_OUT_OF_MEMORY, "out of memory");
        cx->vals = nv;
        cx->capvals = cap;
    }
    if (!ir_strmap_put(&cx->names, name, cx->nvals))
        return onnx_error(cx, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    cx->vals[cx->nvals++] = v;
    /* A subgraph may be inlined many times (unrolled loops): its values
     * keep the names kiln gives them. */
    return cx->depth ? KILN_OK : name_node(cx, v, name);
}

/* ---- model checks ---- */

static int find_opset(onnx_ctx *cx, const Onnx__ModelProto *m)
{
    cx->opset = 0;
    for (size_t i = 0; i < m->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *o = m->opset_import[i];
        if (!o) continue;
        if (!o->domain || !*o->domain || strcmp(o->domain, "ai.onnx") == 0)
            cx->opset = o->has_version ? (int)(o->version > INT_MAX ? INT_MAX : o->version) : 1;
    }
    /* A model of other domains only: check_ops lists its ops. */
    if (cx->opset == 0) cx->opset = ONNX_MAX_OPSET;
    if (cx->opset < ONNX_MIN_OPSET || cx->opset > ONNX_MAX_OPSET)
        return onnx_error(cx, KILN_ERR_UNIMPLEMENTED,
                          "ai.onnx opset %d is not supported (kiln reads opsets %d to %d)",
                          cx->opset, ONNX_MIN_OPSET, ONNX_MAX_OPSET);
    return KILN_OK;
}

/* The subgraphs an attribute holds (g, or graphs): *n of them. */
static Onnx__GraphProto *const *attr_graphs(const Onnx__AttributeProto *a, size_t *n)
{
    if (a->g) {
        *n = 1;
        return &a->g;
    }
    *n = a->n_graphs;
    return a->graphs;
}

typedef struct {
    ir_strmap seen;
    ir_buf b;
    int distinct, nodes;
    bool oom;
} unsupported_list;

/* Adds gp's unsupported ops (and those of its subgraphs) to the list. */
static void list_unsupported(onnx_ctx *cx, const Onnx__GraphProto *gp, unsupported_list *l)
{
    for (size_t i = 0; i < gp->n_node && !l->oom; i++) {
        const Onnx__NodeProto *n = gp->node[i];
        for (size_t k = 0; k < n->n_attribute; k++) {
            size_t ng;
            Onnx__GraphProto *const *gs = attr_graphs(n->attribute[k], &ng);
            for (size_t j = 0; j < ng; j++)
                if (gs[j]) list_unsupported(cx, gs[j], l);
        }
        const char *why = NULL;
        const char *dom = n->domain ? n->domain : "";
        if (onnx_find_op(dom, n->op_type, cx->opset, &why)) continue;
        l->nodes++;
        char key[256];
        snprintf(key, sizeof key, "%s%s%s", dom, *dom ? "." : "", n->op_type);
        if (ir_strmap_get(&l->seen, key) >= 0) continue;
        char *k = ir_strdup(key);
        if (!k || !ir_strmap_put(&l->seen, k, l->distinct)) {
            ir_free(k);
            l->oom = true;
            break;
        }
        if (*dom && strcmp(dom, "ai.onnx"))
            ir_buf_printf(&l->b, "%s%s (%s)", l->distinct++ ? ", " : "", key, why ? why : "unsupported");
        else
            ir_buf_printf(&l->b, "%s%s (opset %d%s%s)", l->distinct++ ? ", " : "", key, cx->opset,
                          why ? ": " : "", why ? why : "");
    }
}

/* One error listing every op type (with its opset and the reason when
 * known) that kiln cannot import, and how many nodes use each, subgraphs
 * included (check_graph bounded their nesting). */
static int check_ops(onnx_ctx *cx, const Onnx__GraphProto *gp)
{
    unsupported_list l = {0};
    list_unsupported(cx, gp, &l);
    ir_strmap seen = l.seen;
    ir_buf b = l.b;
    int distinct = l.distinct, nodes = l.nodes;
    bool oom = l.oom;
    for (size_t i = 0; i < seen.cap; i++) ir_free((void *)seen.keys[i]);
    ir_strmap_free(&seen);
    char *list = ir_buf_take(&b);
    int code = KILN_OK;
    if (oom || (distinct && !list))
        code = onnx_error(cx, KILN_ERR_OUT_OF_MEMORY, "out of memory listing unsupported ops");
    else if (distinct)
        code = onnx_error(cx, KILN_ERR_UNIMPLEMENTED,
                          "%d unsupported op%s in %d node%s: %s", distinct, distinct == 1 ? "" : "s",
                          nodes, nodes == 1 ? "" : "s", list);
    ir_free(list);
    return code;
}

static bool str_ok(const char *s) { return s != NULL; }

/* Basic shape of the graph message: no NULL entries, names present,
 * bounded counts, subgraphs (checked the same way) nested at most
 * ONNX_MAX_SUBGRAPH_DEPTH deep. */
static int check_graph(onnx_ctx *cx, const Onnx__GraphProto *gp, int depth)
{
    if (depth > ONNX_MAX_SUBGRAPH_DEPTH)
        return onnx_error(cx, KILN_ERR_UNIMPLEMENTED, "subgraphs nest more than %d deep",
                          ONNX_MAX_SUBGRAPH_DEPTH);
    if (gp->n_node > ONNX_MAX_NODES)
        return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "%zu nodes; the limit is %d", gp->n_node,
                          ONNX_MAX_NODES);
    for (size_t i = 0; i < gp->n_node; i++) {
        const Onnx__NodeProto *n = gp->node[i];
        if (!n || !n->op_type || !*n->op_type)
            return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "node %zu has no op_type", i);
        if (n->n_input > ONNX_MAX_NODE_IO || n->n_output > ONNX_MAX_NODE_IO)
            return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "node %zu ('%s') has %zu inputs and %zu outputs",
                              i, n->name ? n->name : "", n->n_input, n->n_output);
        for (size_t k = 0; k < n->n_input; k++)
            if (!str_ok(n->input[k]))
                return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "node %zu: input %zu has no name", i, k);
        for (size_t k = 0; k < n->n_output; k++)
            if (!str_ok(n->output[k]))
                return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "node %zu: output %zu has no name", i, k);
        for (size_t k = 0; k < n->n_attribute; k++)
            if (!n->attribute[k] || !n->attribute[k]->name)
                return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "node %zu: attribute %zu has no name", i, k);
        for (size_t k = 0; k < n->n_attribute; k++) {
            size_t ng;
            Onnx__GraphProto *const *gs = attr_graphs(n->attribute[k], &ng);
            for (size_t j = 0; j < ng; j++) {
                int rc = gs[j] ? check_graph(cx, gs[j], depth + 1)
                               : onnx_error(cx, KILN_ERR_INVALID_ARGUMENT,
                                            "node %zu: attribute '%s' holds an empty graph", i,
                                            n->attribute[k]->name);
                if (rc) return rc;
            }
        }
    }
    for (size_t i = 0; i < gp->n_initializer; i++)
        if (!gp->initializer[i] || !gp->initializer[i]->name || !*gp->initializer[i]->name)
            return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "initializer %zu has no name", i);
    for (size_t i = 0; i < gp->n_input; i++)
        if (!gp->input[i] || !gp->input[i]->name || !*gp->input[i]->name)
            return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "graph input %zu has no name", i);
    for (size_t i = 0; i < gp->n_output; i++)
        if (!gp->output[i] || !gp->output[i]->name || !*gp->output[i]->name)
            return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "graph output %zu has no name", i);
    if (gp->n_sparse_initializer)
        return onnx_error(cx, KILN_ERR_UNIMPLEMENTED, "sparse initializers are not supported");
    return KILN_OK;
}

/* Calls fn(ud, name) for each value name the nodes of n's subgraphs use,
 * at any depth: such a value may come from the graph around n, which
 * must then produce it before n. Stops when fn returns false. */
static bool each_subgraph_input(const Onnx__NodeProto *n, int depth,
                                bool (*fn)(void *, const char *), void *ud)
{
    if (depth > ONNX_MAX_SUBGRAPH_DEPTH) return true; /* check_graph refused it */
    for (size_t k = 0; k < n->n_attribute; k++) {
        size_t ng;
        Onnx__GraphProto *const *gs = attr_graphs(n->attribute[k], &ng);
        for (size_t j = 0; j < ng; j++)
            for (size_t i = 0; gs[j] && i < gs[j]->n_node; i++) {
                const Onnx__NodeProto *m = gs[j]->node[i];
                for (size_t q = 0; q < m->n_input; q++)
                    if (*m->input[q] && !fn(ud, m->input[q])) return false;
                if (!each_subgraph_input(m, depth + 1, fn, ud)) return false;
            }
    }
    return true;
}

typedef struct {
    const ir_strmap *producer;
    int node;       /* the node whose subgraphs are walked */
    int *start, *indeg, *adj, *fill;
    size_t nedges;
} implicit_edges;

static bool count_implicit(void *ud, const char *name)
{
    implicit_edges *e = ud;
    int p = ir_strmap_get(e->producer, name);
    if (p >= 0 && p != e->node) {
        e->start[p + 1]++;
        e->indeg[e->node]++;
        e->nedges++;
    }
    return true;
}

static bool fill_implicit(void *ud, const char *name)
{
    implicit_edges *e = ud;
    int p = ir_strmap_get(e->producer, name);
    if (p >= 0 && p != e->node) e->adj[e->fill[p]++] = e->node;
    return true;
}

/* Orders the nodes so each comes after the producers of its inputs and of
 * the outer values its subgraphs use (Kahn's algorithm). Inputs must be
 * graph inputs, initializers, outputs of nodes or (in a subgraph) values
 * of an enclosing graph; a cycle is an error. order gets n_node indices. */
static int topo_sort(onnx_ctx *cx, const Onnx__GraphProto *gp, int *order)
{
    size_t nn = gp->n_node, nedges = 0;
    ir_strmap producer = {0}, known = {0};
    int *indeg = ir_calloc(nn + 1, sizeof(int));
    int *start = ir_calloc(nn + 2, sizeof(int));
    int *adj = NULL, *fill = NULL;
    int rc = KILN_OK;
    if (!indeg || !start) goto oom;
    for (size_t i = 0; i < gp->n_input; i++)
        if (!ir_strmap_put(&known, gp->input[i]->name, 1)) goto oom;
    for (size_t i = 0; i < gp->n_initializer; i++)
        if (!ir_strmap_put(&known, gp->initializer[i]->name, 1)) goto oom;
    for (size_t i = 0; i < nn; i++) {
        const Onnx__NodeProto *n = gp->node[i];
        for (size_t k = 0; k < n->n_output; k++) {
            const char *o = n->output[k];
            if (!*o) continue;
            if (ir_strmap_get(&producer, o) >= 0 || ir_strmap_get(&known, o) >= 0) {
                cx->node = n;
                rc = onnx_error(cx, KILN_ERR_INVALID_ARGUMENT,
                                "value '%s' is defined twice (ONNX graphs are in SSA form)", o);
                goto done;
            }
            if (!ir_strmap_put(&producer, o, (int)i)) goto oom;
        }
    }
    for (size_t i = 0; i < nn; i++) {
        const Onnx__NodeProto *n = gp->node[i];
        for (size_t k = 0; k < n->n_input; k++) {
            const char *in = n->input[k];
            if (!*in) continue;
            int p = ir_strmap_get(&producer, in);
            if (p >= 0) {
                start[p + 1]++;
                indeg[i]++;
                nedges++;
            } else if (ir_strmap_get(&known, in) < 0 && value_lookup(cx, in, &(kiln_value){0}) < 0) {
                cx->node = n;
                rc = onnx_error(cx, KILN_ERR_INVALID_ARGUMENT,
                                "input %zu '%s' is neither a graph input, an initializer nor the "
                                "output of a node",
                                k, in);
                goto done;
            }
        }
        implicit_edges ie = {.producer = &producer, .node = (int)i, .start = start, .indeg = indeg};
        each_subgraph_input(n, cx->depth + 1, count_implicit, &ie);
        nedges += ie.nedges;
    }
    for (size_t i = 0; i < nn; i++) start[i + 1] += start[i];
    adj = ir_malloc(sizeof(int) * (nedges ? nedges : 1));
    fill = ir_malloc(sizeof(int) * (nn ? nn : 1));
    if (!adj || !fill) goto oom;
    for (size_t i = 0; i < nn; i++) fill[i] = start[i];
    for (size_t i = 0; i < nn; i++) {
        const Onnx__NodeProto *n = gp->node[i];
        for (size_t k = 0; k < n->n_input; k++) {
            int p = *n->input[k] ? ir_strmap_get(&producer, n->input[k]) : -1;
            if (p >= 0) adj[fill[p]++] = (int)i;
        }
        implicit_edges ie = {.producer = &producer, .node = (int)i, .adj = adj, .fill = fill};
        each_subgraph_input(n, cx->depth + 1, fill_implicit, &ie);
    }
    /* Ready nodes in file order, so a sorted file keeps its order. */
    size_t head = 0, tail = 0;
    for (size_t i = 0; i < nn; i++)
        if (!indeg[i]) order[tail++] = (int)i;
    while (head < tail) {
        int u = order[head++];
        for (int e = start[u]; e < start[u + 1]; e++)
            if (--indeg[adj[e]] == 0) order[tail++] = adj[e];
    }
    if (tail < nn) {
        for (size_t i = 0; i < nn; i++)
            if (indeg[i]) {
                cx->node = gp->node[i];
                break;
            }
        rc = onnx_error(cx, KILN_ERR_INVALID_ARGUMENT,
                        "the graph has a cycle through this node (%zu of %zu nodes are on or "
                        "behind a cycle)",
                        nn - tail, nn);
    }
    goto done;
oom:
    rc = onnx_error(cx, KILN_ERR_OUT_OF_MEMORY, "out of memory sorting %zu nodes", nn);
done:
    cx->node = NULL;
    ir_strmap_free(&producer);
    ir_strmap_free(&known);
    ir_free(indeg);
    ir_free(start);
    ir_free(adj);
    ir_free(fill);
    return rc;
}

/* ---- graph inputs, initializers, nodes, outputs ---- */

static const kiln_input_shape *find_override(const kiln_import_options *o, const char *name)
{
    for (int i = 0; o && i < o->ninput_shapes; i++)
        if (o->input_shapes[i].name && strcmp(o->input_shapes[i].name, name) == 0)
            return &o->input_shapes[i];
    return NULL;
}

static const kiln_tensor *find_bound(const kiln_import_options *o, const char *name)
{
    for (int i = 0; o && i < o->nconstant_inputs; i++)
        if (o->constant_input_names[i] && strcmp(o->constant_input_names[i], name) == 0)
            return o->constant_input_values[i];
    return NULL;
}

static int add_input(onnx_ctx *cx, const Onnx__ValueInfoProto *vi, const kiln_import_options *o)
{
    const Onnx__TypeProto *tp = vi->type;
    if (!tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type) {
        const char *kind = !tp ? "no type"
                           : tp->value_case == ONNX__TYPE_PROTO__VALUE_SEQUENCE_TYPE ? "a sequence"
                           : tp->value_case == ONNX__TYPE_PROTO__VALUE_OPTIONAL_TYPE ? "an optional"
                           : tp->value_case == ONNX__TYPE_PROTO__VALUE_MAP_TYPE ? "a map"
                           : tp->value_case == ONNX__TYPE_PROTO__VALUE_SPARSE_TENSOR_TYPE
                               ? "a sparse tensor"
                               : "not a tensor";
        return onnx_error(cx, KILN_ERR_UNIMPLEMENTED, "graph input '%s' is %s; kiln takes tensors",
                          vi->name, kind);
    }
    const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
    int et = tt->has_elem_type ? tt->elem_type : 0;
    kiln_dtype dt = onnx_dtype(et);
    if (!dt)
        return onnx_error(cx, KILN_ERR_UNIMPLEMENTED,
                          "graph input '%s' has element type %s, which kiln does not support",
                          vi->name, onnx_dtype_name(et));
    int64_t dims[IR_MAX_RANK];
    int rank;
    const kiln_input_shape *ov = find_override(o, vi->name);
    if (!tt->shape && !ov)
        return onnx_error(cx, KILN_ERR_UNIMPLEMENTED,
                          "graph input '%s' has no shape (not even a rank); give one with "
                          "kiln_import_options.input_shapes",
                          vi->name);
    if (tt->shape && tt->shape->n_dim > IR_MAX_RANK)
        return onnx_error(cx, KILN_ERR_UNIMPLEMENTED, "graph input '%s' has rank %zu; kiln's limit is %d",
                          vi->name, tt->shape->n_dim, IR_MAX_RANK);
    if (ov) {
        if (ov->rank < 0 || ov->rank > IR_MAX_RANK || (ov->rank && !ov->dims) ||
            (tt->shape && (size_t)ov->rank != tt->shape->n_dim))
            return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT,
                              "input shape override for '%s' has rank %d; the model's input has "
                              "rank %d",
                              vi->name, ov->rank, tt->shape ? (int)tt->shape->n_dim : -1);
        rank = ov->rank;
        for (int i = 0; i < rank; i++) {
            if (ov->dims[i] < -1)
                return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT,
                                  "input shape override for '%s': dim %d is %lld", vi->name, i,
                                  (long long)ov->dims[i]);
            dims[i] = ov->dims[i];
        }
    } else {
        rank = (int)tt->shape->n_dim;
        for (int i = 0; i < rank; i++) {
            const Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[i];
            dims[i] = -1;
            if (d && d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE) {
                if (d->dim_value < 0)
                    return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT,
                                      "graph input '%s': dim %d is %lld", vi->name, i,
                                      (long long)d->dim_value);
                dims[i] = d->dim_value;
            }
        }
    }
    int64_t p = 1;
    for (int i = 0; i < rank; i++)
        if (dims[i] > 0) {
            if (p > INT64_MAX / dims[i])
                return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT,
                                  "graph input '%s': the element count of its dims overflows",
                                  vi->name);
            p *= dims[i];
        }
    const kiln_tensor *bound = find_bound(o, vi->name);
    if (bound) {
        char want[IR_TYPE_STR_MAX], got[IR_TYPE_STR_MAX];
        ir_type dt_want = {.dtype = dt, .rank = rank};
        memcpy(dt_want.dims, dims, sizeof(int64_t) * (size_t)rank);
        ir_type dt_got = {.dtype = bound->dtype, .rank = bound->rank};
        memcpy(dt_got.dims, bound->dims, sizeof(int64_t) * (size_t)bound->rank);
        bool fits = bound->dtype == dt && bound->rank == rank;
        for (int i = 0; fits && i < rank; i++) fits = dims[i] < 0 || dims[i] == bound->dims[i];
        if (!fits)
            return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT,
                              "constant input '%s' is %s; the model's input is %s", vi->name,
                              ir_type_str(&dt_got, got, sizeof got), ir_type_str(&dt_want, want, sizeof want));
    }
    kiln_value v = bound ? kiln_constant(cx->g, vi->name, bound) : kiln_placeholder(cx->g, vi->name, dt, rank, dims);
    if (!kiln_value_ok(v)) return graph_failed(cx), cx->st->code;
    if (!claim(cx, v.node)) return onnx_error(cx, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    return bind(cx, vi->name, v);
}

static int add_initializer(onnx_ctx *cx, const Onnx__TensorProto *tp, const char *dir,
                           bool as_variable)
{
    kiln_tensor *t;
    int rc = onnx_tensor_from_proto(tp, dir, tp->name, &t, cx->st);
    if (rc) {
        /* Prefix the file name like every other error. */
        char *m = ir_strdup(cx->st->message ? cx->st->message : "");
        ir_set_status(cx->st, rc, "%s: initializer %s", cx->path, m ? m : "");
        ir_free(m);
        return rc;
    }
    /* Placeholder/Constant names must be unique: a graph input of the
     * same name (IR < 4 models list initializers as inputs too) was
     * skipped by the caller. */
    kiln_value v = as_variable ? kiln_variable(cx->g, tp->name, t) : kiln_constant(cx->g, tp->name, t);
    kiln_tensor_free(t);
    if (!kiln_value_ok(v)) return graph_failed(cx), cx->st->code;
    if (!claim(cx, v.node)) return onnx_error(cx, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    return bind(cx, tp->name, v);
}

static int convert_node(onnx_ctx *cx, const Onnx__NodeProto *n)
{
    cx->node = n;
    const char *why = NULL;
    onnx_convert_fn fn = onnx_find_op(n->domain ? n->domain : "", n->op_type, cx->opset, &why);
    if (!fn) return onnx_error(cx, KILN_ERR_UNIMPLEMENTED, "unsupported op%s%s", why ? ": " : "", why ? why : "");
    int nin = (int)n->n_input, nout = (int)n->n_output;
    /* Converters may look at inputs past the ones given (optional inputs):
     * they read as absent (invalid) values. */
    const int spare = 8;
    kiln_value *in = ir_malloc(sizeof(kiln_value) * (size_t)(nin + spare + nout + spare));
    if (!in) return onnx_error(cx, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    for (int i = 0; i < nin + spare + nout + spare; i++) in[i] = kiln_value_invalid();
    kiln_value *out = in + nin + spare;
    int rc = KILN_OK;
    for (int i = 0; i < nin; i++) {
        in[i] = kiln_value_invalid();
        if (*n->input[i] && value_lookup(cx, n->input[i], &in[i]) < 0) {
            rc = onnx_error(cx, KILN_ERR_INTERNAL, "input '%s' is not bound", n->input[i]);
            goto done;
        }
    }
    for (int k = 0; k < nout; k++) out[k] = kiln_value_invalid();
    rc = fn(cx, n, in, nin, out, nout);
    if (!rc && onnx_failed(cx)) rc = cx->st->code;
    if (rc) goto done;
    for (int k = 0; k < nout; k++) {
        if (!*n->output[k]) continue;
        if (!kiln_value_ok(out[k])) {
            rc = onnx_error(cx, KILN_ERR_UNIMPLEMENTED, "output %d ('%s') is not supported", k,
                            n->output[k]);
            goto done;
        }
        if ((rc = bind(cx, n->output[k], out[k]))) goto done;
    }
done:
    ir_free(in);
    cx->node = NULL;
    return rc;
}

/* ---- subgraphs (If branches, Scan and Loop bodies) ---- */

int onnx_import_subgraph(onnx_ctx *cx, const Onnx__GraphProto *gp, const char *what,
                         const kiln_value *in, int nin, kiln_value *out, int nout)
{
    for (int k = 0; k < nout; k++) out[k] = kiln_value_invalid();
    if (onnx_failed(cx)) return cx->st->code;
    if (!gp) return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "the %s subgraph is missing", what);
    if (cx->depth >= ONNX_MAX_SUBGRAPH_DEPTH)
        return onnx_error(cx, KILN_ERR_UNIMPLEMENTED, "subgraphs nest more than %d deep",
                          ONNX_MAX_SUBGRAPH_DEPTH);
    if ((size_t)nin != gp->n_input || (size_t)nout != gp->n_output)
        return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT,
                          "the %s subgraph has %zu inputs and %zu outputs; %d and %d expected",
                          what, gp->n_input, gp->n_output, nin, nout);
    if (cx->g->nnodes + gp->n_node > ONNX_MAX_UNROLL_NODES)
        return onnx_error(cx, KILN_ERR_UNIMPLEMENTED,
                          "inlining the %s subgraph (%zu nodes) would take the graph past %d "
                          "nodes (the limit on unrolled control flow)",
                          what, gp->n_node, ONNX_MAX_UNROLL_NODES);
    int rc = check_graph(cx, gp, cx->depth + 1);
    if (rc) return rc;
    const Onnx__NodeProto *owner = cx->node;
    /* The enclosing graph's names move into a scope; the subgraph gets an
     * empty table of its own, freed when it is done. */
    onnx_scope scope = {.names = cx->names, .vals = cx->vals, .nvals = cx->nvals,
                        .capvals = cx->capvals, .owner = owner, .outer = cx->outer};
    memset(&cx->names, 0, sizeof cx->names);
    cx->vals = NULL;
    cx->nvals = cx->capvals = 0;
    cx->outer = &scope;
    cx->depth++;
    int *order = ir_malloc(sizeof(int) * (gp->n_node ? gp->n_node : 1));
    if (!order) {
        rc = onnx_error(cx, KILN_ERR_OUT_OF_MEMORY, "out of memory");
        goto done;
    }
    if ((rc = topo_sort(cx, gp, order))) goto done;
    cx->node = owner;
    for (int k = 0; k < nin && !rc; k++) {
        if (!ir_value_valid(cx->g, in[k]))
            rc = onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "%s subgraph input %d ('%s') has no value",
                            what, k, gp->input[k]->name);
        else
            rc = bind(cx, gp->input[k]->name, in[k]);
    }
    for (size_t k = 0; k < gp->n_initializer && !rc; k++) {
        kiln_tensor *t;
        rc = onnx_tensor_from_proto(gp->initializer[k], cx->dir, gp->initializer[k]->name, &t, cx->st);
        if (rc) {
            char *m = ir_strdup(cx->st->message ? cx->st->message : "");
            ir_set_status(cx->st, rc, "%s: %s subgraph initializer %s", cx->path, what, m ? m : "");
            ir_free(m);
            break;
        }
        kiln_value v = onnx_const(cx, t);
        kiln_tensor_free(t);
        rc = kiln_value_ok(v) ? bind(cx, gp->initializer[k]->name, v) : cx->st->code;
    }
    for (size_t k = 0; k < gp->n_node && !rc; k++) rc = convert_node(cx, gp->node[order[k]]);
    cx->node = owner;
    for (int k = 0; k < nout && !rc; k++)
        if (value_lookup(cx, gp->output[k]->name, &out[k]) < 0)
            rc = onnx_error(cx, KILN_ERR_INVALID_ARGUMENT,
                            "%s subgraph output '%s' is not produced by any node, input or "
                            "initializer",
                            what, gp->output[k]->name);
done:
    ir_free(order);
    ir_free(cx->vals);
    ir_strmap_free(&cx->names);
    cx->names = scope.names;
    cx->vals = scope.vals;
    cx->nvals = scope.nvals;
    cx->capvals = scope.capvals;
    cx->outer = scope.outer;
    cx->depth--;
    cx->node = owner;
    if (rc)
        for (int k = 0; k < nout; k++) out[k] = kiln_value_invalid();
    return rc;
}

/* Declares the graph outputs; each is found by its ONNX name (an Identity
 * named after it when its producer carries another name). */
static int set_outputs(onnx_ctx *cx, const Onnx__GraphProto *gp)
{
    kiln_value *outs = ir_malloc(sizeof(kiln_value) * (gp->n_output ? gp->n_output : 1));
    if (!outs) return onnx_error(cx, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    int rc = KILN_OK;
    for (size_t i = 0; i < gp->n_output; i++) {
        const char *name = gp->output[i]->name;
        kiln_value v;
        if (value_lookup(cx, name, &v) < 0) {
            rc = onnx_error(cx, KILN_ERR_INVALID_ARGUMENT,
                            "graph output '%s' is not produced by any node, input or initializer",
                            name);
            goto done;
        }
        kiln_value found = kiln_graph_find(cx->g, name);
        bool named = kiln_value_ok(found) && found.node == v.node && v.index == 0;
        /* A name held by another of the model's values (a model that reuses
         * names) stays with it; the output is still declared. */
        if (!named && !(kiln_value_ok(found) && claimed(cx, found.node))) {
            int id = ir_graph_add_node(cx->g, IR_OP_Identity, NULL, &v, 1, NULL);
            if (id < 0) {
                graph_failed(cx);
                rc = cx->st->code;
                goto done;
            }
            if (kiln_value_ok(found)) {
                char fresh[64];
                snprintf(fresh, sizeof fresh, "_onnx_%d", found.node);
                kiln_name(cx->g, found, fresh);
            }
            v = (kiln_value){id, 0};
            if (!kiln_value_ok(kiln_name(cx->g, v, name)) || !claim(cx, id)) {
                graph_failed(cx);
                rc = cx->st->code;
                goto done;
            }
        }
        outs[i] = v;
    }
    kiln_graph_set_outputs(cx->g, outs, (int)gp->n_output);
    if (cx->g->error_code) {
        graph_failed(cx);
        rc = cx->st->code;
    }
done:
    ir_free(outs);
    return rc;
}

/* Every value's element count must fit (type inference reports overflow
 * for computed values; inputs were checked when added). */
static int build(onnx_ctx *cx, const Onnx__ModelProto *m, const char *dir,
                 const kiln_import_options *o)
{
    const Onnx__GraphProto *gp = m->graph;
    int rc;
    cx->dir = dir;
    if ((rc = find_opset(cx, m))) return rc;
    if ((rc = check_graph(cx, gp, 0))) return rc;
    if ((rc = check_ops(cx, gp))) return rc;
    int *order = ir_malloc(sizeof(int) * (gp->n_node ? gp->n_node : 1));
    if (!order) return onnx_error(cx, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    if ((rc = topo_sort(cx, gp, order))) goto done;
    for (int i = 0; o && i < o->ninput_shapes; i++) {
        const char *nm = o->input_shapes[i].name;
        bool found = false;
        for (size_t k = 0; nm && k < gp->n_input && !found; k++)
            found = strcmp(gp->input[k]->name, nm) == 0;
        for (size_t k = 0; nm && k < gp->n_initializer && found; k++)
            if (strcmp(gp->initializer[k]->name, nm) == 0) found = false;
        if (!found) {
            rc = onnx_error(cx, KILN_ERR_NOT_FOUND,
                            "input shape override for '%s': the model has no such graph input",
                            nm ? nm : "(null)");
            goto done;
        }
    }
    for (int i = 0; o && i < o->nconstant_inputs; i++) {
        const char *nm = o->constant_input_names ? o->constant_input_names[i] : NULL;
        bool found = false;
        for (size_t k = 0; nm && k < gp->n_input && !found; k++)
            found = strcmp(gp->input[k]->name, nm) == 0;
        for (size_t k = 0; nm && k < gp->n_initializer && found; k++)
            if (strcmp(gp->initializer[k]->name, nm) == 0) found = false;
        if (!found || !o->constant_input_values || !o->constant_input_values[i]) {
            rc = onnx_error(cx, found ? KILN_ERR_INVALID_ARGUMENT : KILN_ERR_NOT_FOUND,
                            found ? "constant input '%s' has no value"
                                  : "constant input '%s': the model has no such graph input",
                            nm ? nm : "(null)");
            goto done;
        }
    }
    ir_strmap inits = {0};
    for (size_t k = 0; k < gp->n_initializer; k++)
        if (!ir_strmap_put(&inits, gp->initializer[k]->name, (int)k)) {
            ir_strmap_free(&inits);
            rc = onnx_error(cx, KILN_ERR_OUT_OF_MEMORY, "out of memory");
            goto done;
        }
    for (size_t k = 0; k < gp->n_input && !rc; k++)
        if (ir_strmap_get(&inits, gp->input[k]->name) < 0) rc = add_input(cx, gp->input[k], o);
    ir_strmap_free(&inits);
    if (rc) goto done;
    for (size_t k = 0; k < gp->n_initializer && !rc; k++)
        rc = add_initializer(cx, gp->initializer[k], dir, o && o->initializers_as_variables);
    if (rc) goto done;
    for (size_t k = 0; k < gp->n_node && !rc; k++) rc = convert_node(cx, gp->node[order[k]]);
    if (rc) goto done;
    rc = set_outputs(cx, gp);
done:
    ir_free(order);
    return rc;
}

void kiln_import_options_init(kiln_import_options *o)
{
    if (o) memset(o, 0, sizeof *o);
}

kiln_graph *kiln_import_onnx(const char *path, const kiln_import_options *opts,
                             kiln_status *status)
{
    kiln_status local = {0};
    kiln_status *st = status ? status : &local;
    ir_status_ok(st);
    if (!path || !*path) {
        ir_set_status(st, KILN_ERR_INVALID_ARGUMENT, "kiln_import_onnx: the path is %s",
                      path ? "empty" : "NULL");
        ir_free(local.message);
        return NULL;
    }
    onnx_ctx cx = {.path = path, .st = st, .fold = true};
    uint8_t *buf = NULL;
    size_t len = 0;
    Onnx__ModelProto *m = NULL;
    onnx_allocator pa;
    onnx_allocator_init(&pa);
    char *dir = NULL;
    if (onnx_read_file(path, ONNX_MAX_FILE, &buf, &len, st)) goto fail;
    m = onnx__model_proto__unpack(&pa.base, len, buf);
    ir_free(buf);
    buf = NULL;
    if (!m) {
        if (pa.failed)
            onnx_error(&cx, KILN_ERR_OUT_OF_MEMORY, "out of memory parsing %zu bytes", len);
        else
            onnx_error(&cx, KILN_ERR_INVALID_ARGUMENT,
                       "not an ONNX model: the protobuf message does not parse (%zu bytes; "
                       "truncated, corrupted or another format)",
                       len);
        goto fail;
    }
    if (!m->graph) {
        onnx_error(&cx, KILN_ERR_INVALID_ARGUMENT, "the model has no graph");
        goto fail;
    }
    dir = ir_strdup(path);
    if (!dir) {
        onnx_error(&cx, KILN_ERR_OUT_OF_MEMORY, "out of memory");
        goto fail;
    }
    char *slash = strrchr(dir, '/');
    if (slash) slash[slash == dir ? 1 : 0] = 0;
    else strcpy(dir, ".");
    cx.g = kiln_graph_new();
    if (!cx.g) {
        onnx_error(&cx, KILN_ERR_OUT_OF_MEMORY, "out of memory");
        goto fail;
    }
    if (build(&cx, m, dir, opts)) goto fail;
    kiln_status vs = {0};
    int rc = ir_verify(cx.g, &vs);
    if (rc) {
        onnx_error(&cx, rc, "the imported graph does not verify: %s",
                   vs.message ? vs.message : kiln_status_code_name(rc));
        ir_free(vs.message);
        goto fail;
    }
    ir_free(dir);
    ir_free(cx.vals);
    ir_free(cx.claimed);
    ir_strmap_free(&cx.names);
    onnx__model_proto__free_unpacked(m, &pa.base);
    ir_status_ok(st);
    return cx.g;
fail:
    ir_free(buf);
    ir_free(dir);
    ir_free(cx.vals);
    ir_free(cx.claimed);
    ir_strmap_free(&cx.names);
    if (m) onnx__model_proto__free_unpacked(m, &pa.base);
    kiln_graph_free(cx.g);
    ir_free(local.message);
    return NULL;
}
