/* simplify.c -- algebraic simplification: identities that remove a node or
 * shorten a chain without changing any result.
 *
 *   x+0, 0+x, x-0, x*1, 1*x, x/1            -> x
 *   x*0, 0*x (integers only)                 -> a zero Constant
 *   Neg(Neg(x)), Identity(x), Cast(x) to x's dtype -> x
 *   Transpose(Transpose(x))                  -> one Transpose (or x)
 *   Transpose(x) with the identity perm      -> x
 *   Reshape/Flatten/Squeeze/Unsqueeze to x's own shape -> x
 *   a chain of those that ends in x's shape  -> x (Squeeze/Unsqueeze pairs)
 *   Reshape(any of those(x))                 -> Reshape(x)
 *   Concat of one input, Slice of the whole tensor (positive steps), Pad of
 *   zeros, Expand and Tile that change nothing -> x
 *
 * "0" and "1" are Constants every element of which equals 0 or 1. A rule
 * applies only when the value kept has exactly the node's type (dtype and
 * shape): x + zeros([4,3]) with x of shape [3] is left alone, since the
 * zeros broadcast x. x*0 is not rewritten for floats, where inf*0 and NaN*0
 * are NaN; x+0 is, although -0.0 + 0.0 is +0.0 (the values compare equal).
 * Shape rules also need static types, so a symbolic dim is never assumed
 * to equal another. Nodes are visited in order with forward substitution,
 * so Neg(Neg(Neg(Neg(x)))) and longer transpose chains collapse in one walk. */
#include <string.h>

#include "passes.h"

static const kiln_tensor *constant_of(const kiln_graph *g, kiln_value v)
{
    const ir_node *n = &g->nodes[v.node];
    return n->op == IR_OP_Constant ? ir_node_tensor(n, "value") : NULL;
}

/* Every element of t equals v (false for bools and for no constant). */
static bool all_equal(const kiln_tensor *t, int v)
{
    if (!t || t->dtype == KILN_BOOL) return false;
    bool fl = ir_dtype_is_float(t->dtype);
    for (size_t i = 0; i < t->size; i++) {
        if (fl ? ir_load_f64(t->dtype, t->data, i) != (double)v : ir_load_i64(t->dtype, t->data, i) != v)
            return false;
    }
    return true;
}

static bool is_const(const kiln_graph *g, kiln_value v, int c)
{
    return all_equal(constant_of(g, v), c);
}

/* v has exactly node n's output type. */
static bool keeps_type(const kiln_graph *g, kiln_value v, const ir_node *n)
{
    return ir_type_equal(ir_value_type(g, v), &n->outputs[0]);
}

/* As keeps_type, and the type is static (for shape ops). */
static bool keeps_static_type(const kiln_graph *g, kiln_value v, const ir_node *n)
{
    return ir_type_is_static(&n->outputs[0]) && keeps_type(g, v, n);
}

static bool reshape_like(ir_op op)
{
    return op == IR_OP_Reshape || op == IR_OP_Flatten || op == IR_OP_Squeeze || op == IR_OP_Unsqueeze;
}

/* The permutation a Transpose node applies (perm unset: reversed). */
static void transpose_perm(const ir_node *n, int rank, int64_t *perm)
{
    int np;
    const int64_t *p = ir_node_ints(n, "perm", &np);
    for (int i = 0; i < rank; i++) perm[i] = np == rank ? p[i] : rank - 1 - i;
}

static bool is_identity_perm(const int64_t *perm, int rank)
{
    for (int i = 0; i < rank; i++)
        if (perm[i] != i) return false;
    return true;
}

/* What node i simplifies to. Sets *repl to an existing value, or *make to
 * the op of a new node (with *make_in and *attrs); returns false when there
 * is nothing to do. */
typedef struct {
    kiln_value repl;     /* replace by this value ... */
    bool make;           /* ... or by a new node: */
    ir_op op;
    kiln_value in;
    const char *attr;    /* its one ints attribute */
    int64_t ints[IR_MAX_RANK];
    int nints;
    bool zeros;          /* ... or by a zero Constant of the node's type */
} rewrite;

static bool simplify_binary(const kiln_graph *g, const ir_node *n, rewrite *r)
{
    kiln_value a = n->inputs[0], b = n->inputs[1];
    switch (n->op) {
    case IR_OP_Add:
        if (is_const(g, b, 0) && keeps_type(g, a, n)) return r->repl = a, true;
        if (is_const(g, a, 0) && keeps_type(g, b, n)) return r->repl = b, true;
        return false;
    case IR_OP_Sub:
        if (is_const(g, b, 0) && keeps_type(g, a, n)) return r->repl = a, true;
        return false;
    case IR_OP_Mul:
        if (is_const(g, b, 1) && keeps_type(g, a, n)) return r->repl = a, true;
        if (is_const(g, a, 1) && keeps_type(g, b, n)) return r->repl = b, true;
        if (ir_dtype_is_int(n->outputs[0].dtype) && (is_const(g, a, 0) || is_const(g, b, 0))) {
            /* the zero constant itself, when it has the result's shape */
            if (is_const(g, b, 0) && keeps_type(g, b, n)) return r->repl = b, true;
            if (is_const(g, a, 0) && keeps_type(g, a, n)) return r->repl = a, true;
            r->zeros = true;
            return true;
        }
        return false;
    case IR_OP_Div:
        if (is_const(g, b, 1) && keeps_type(g, a, n)) return r->repl = a, true;
        return false;
    default: return false;
    }
}

static bool simplify_transpose(const kiln_graph *g, const ir_node *n, rewrite *r)
{
    kiln_value x = n->inputs[0];
    int rank = n->outputs[0].rank;
    int64_t p[IR_MAX_RANK], q[IR_MAX_RANK];
    transpose_perm(n, rank, p);
    const ir_node *inner = &g->nodes[x.node];
    if (inner->op == IR_OP_Transpose) {
        /* out dim i = inner dim p[i] = x dim q[p[i]] */
        transpose_perm(inner, rank, q);
        kiln_value xx = inner->inputs[0];
        for (int i = 0; i < rank; i++) r->ints[i] = q[p[i]];
        if (is_identity_perm(r->ints, rank)) {
            if (!keeps_type(g, xx, n)) return false;
            r->repl = xx;
            return true;
        }
        r->make = true;
        r->op = IR_OP_Transpose;
        r->in = xx;
        r->attr = "perm";
        r->nints = rank;
        return true;
    }
    if (is_identity_perm(p, rank) && keeps_type(g, x, n)) return r->repl = x, true;
    return false;
}

static bool simplify_reshape(const kiln_graph *g, const ir_node *n, rewrite *r)
{
    kiln_value x = n->inputs[0];
    if (keeps_static_type(g, x, n)) return r->repl = x, true;
    const ir_node *inner = &g->nodes[x.node];
    if (!reshape_like(inner->op)) return false;
    kiln_value xx = inner->inputs[0];
    /* the bytes never move: a chain ending in xx's shape is xx */
    if (keeps_static_type(g, xx, n)) return r->repl = xx, true;
    if (n->op != IR_OP_Reshape || !ir_type_is_static(&n->outputs[0])) return false;
    r->make = true;
    r->op = IR_OP_Reshape;
    r->in = xx;
    r->attr = "shape";
    r->nints = n->outputs[0].rank;
    memcpy(r->ints, n->outputs[0].dims, sizeof(int64_t) * (size_t)r->nints);
    return true;
}

static bool all_zero_ints(const ir_node *n, const char *attr)
{
    int c;
    const int64_t *v = ir_node_ints(n, attr, &c);
    for (int i = 0; i < c; i++)
        if (v[i] != 0) return false;
    return true;
}

static bool simplify_node(const kiln_graph *g, const ir_node *n, rewrite *r)
{
    memset(r, 0, sizeof *r);
    if (n->noutputs != 1) return false;
    kiln_value x = n->ninputs > 0 ? n->inputs[0] : kiln_value_invalid();
    switch (n->op) {
    case IR_OP_Add:
    case IR_OP_Sub:
    case IR_OP_Mul:
    case IR_OP_Div: return simplify_binary(g, n, r);
    case IR_OP_Neg: {
        const ir_node *inner = &g->nodes[x.node];
        if (inner->op == IR_OP_Neg && keeps_type(g, inner->inputs[0], n)) return r->repl = inner->inputs[0], true;
        return false;
    }
    case IR_OP_Identity:
    case IR_OP_Cast:
        if (keeps_type(g, x, n)) return r->repl = x, true;
        return false;
    case IR_OP_Transpose: return simplify_transpose(g, n, r);
    case IR_OP_Reshape:
    case IR_OP_Flatten:
    case IR_OP_Squeeze:
    case IR_OP_Unsqueeze: return simplify_reshape(g, n, r);
    case IR_OP_Concat:
        if (n->ninputs == 1 && keeps_type(g, x, n)) return r->repl = x, true;
        return false;
    case IR_OP_Slice: {
        /* same shape with positive steps: every element, in order */
        int c;
        const int64_t *steps = ir_node_ints(n, "steps", &c);
        for (int i = 0; i < c; i++)
            if (steps[i] <= 0) return false;
        if (keeps_static_type(g, x, n)) return r->repl = x, true;
        return false;
    }
    case IR_OP_Pad:
        if (all_zero_ints(n, "pads") && keeps_type(g, x, n)) return r->repl = x, true;
        return false;
    case IR_OP_Expand:
    case IR_OP_Tile:
        if (keeps_static_type(g, x, n)) return r->repl = x, true;
        return false;
    default: return false;
    }
}

/* Builds what r says to build for node i and returns its value in *out;
 * *out stays invalid when the rewrite is not worth it after all. */
static int build(kiln_graph *g, int i, const rewrite *r, pass_context *cx, kiln_value *out)
{
    *out = kiln_value_invalid();
    const ir_node *n = &g->nodes[i];
    int node, rc;
    if (r->zeros) {
        const ir_type *t = &n->outputs[0];
        int64_t numel = ir_shape_numel(t->rank, t->dims);
        if (numel < 0 || (cx->fold_limit > 0 && (uint64_t)numel * kiln_dtype_size(t->dtype) > (uint64_t)cx->fold_limit))
            return KILN_OK;
        kiln_tensor *z = ir_tensor_new_type(t);
        if (!z) return ir_set_status(cx->status, KILN_ERR_OUT_OF_MEMORY, "simplify: Mul '%s': out of memory", n->name);
        char what[300];
        snprintf(what, sizeof what, "simplify: Mul '%s'", n->name);
        rc = pass_add_constant(g, z, what, cx, &node);
        kiln_tensor_free(z);
        if (rc) return rc;
    } else {
        kiln_attrs *a = kiln_attrs_new();
        kiln_attrs_ints(a, r->attr, r->ints, r->nints);
        if (!a || a->oom) {
            kiln_attrs_free(a);
            return ir_set_status(cx->status, KILN_ERR_OUT_OF_MEMORY, "simplify: %s '%s': out of memory",
                                 ir_op_def(n->op)->name, n->name);
        }
        rc = pass_add_node(g, r->op, &r->in, 1, a, cx, &node);
        kiln_attrs_free(a);
        if (rc) return rc;
    }
    *out = (kiln_value){node, 0};
    return KILN_OK;
}

int pass_simplify(kiln_graph *g, pass_context *cx, bool *changed)
{
    *changed = false;
    pass_rewrite rw;
    int rc = pass_rewrite_begin(&rw, g, cx);
    if (rc) return rc;
    for (int i = 0; i < rw.nnodes; i++) {
        pass_rewrite_inputs(&rw, g, i);
        rewrite r;
        if (!simplify_node(g, &g->nodes[i], &r)) continue;
        kiln_value repl = r.repl;
        if ((r.make || r.zeros) && (rc = build(g, i, &r, cx, &repl))) break;
        if (!kiln_value_ok(repl)) continue;
        if ((rc = pass_rewrite_replace(&rw, g, (kiln_value){i, 0}, repl, cx))) break;
    }
    if (rc) {
        pass_rewrite_stop(&rw, g, cx);
        return rc;
    }
    return pass_rewrite_finish(&rw, g, cx, changed);
}
