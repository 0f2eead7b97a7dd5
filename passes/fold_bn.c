/* fold_bn.c -- inference folding: a per-feature affine map after a linear
 * op is folded into the op's constant weights and bias.
 *
 * The linear ops ("producers"), each with a constant weight:
 *   Conv2D(x, W[M,...], b[M]?)            features on axis 1 of [N,M,H,W]
 *   Gemm(A, B, C?) (C constant if given)  features on axis 1 of [M,N]
 *   MatMul(a, W) with a 2-D W             features on the last axis
 *   Add(MatMul(a, W), c)                  a MatMul with its bias
 * The affine maps, y -> y * s + t per feature f:
 *   BatchNormalization (inference, constant parameters; features on axis 1,
 *   so MatMul only with a 2-D result): s = scale / sqrt(var + eps),
 *   t = bias - mean * s
 *   Mul(y, c) / Mul(c, y): s = c;  Add(y, c) / Add(c, y): t = c;
 *   Sub(y, c): t = -c  -- with c a constant that varies along the feature
 *   axis only (every other dim 1) and leaves y's shape as it is.
 * Folding scales the weights along their output features (W'[f] = W[f] s[f])
 * and makes the bias b' = b s + t (added when there was none and t is not
 * all zero; a MatMul gets an Add). It needs the producer's output to have no
 * use but the affine node (and not to be a declared output), float dtypes,
 * and every folded tensor to be a Constant. Chains (Conv, Mul, Add) fold in
 * one walk. Reassociating changes rounding: results agree with the unfolded
 * graph to within float rounding, not bit for bit. */
#include <math.h>
#include <string.h>

#include "passes.h"

/* A matched producer. */
typedef struct {
    int node;                   /* Conv2D, Gemm or MatMul */
    const ir_node *n;
    kiln_value x;               /* the data input */
    const kiln_tensor *w;       /* the weight */
    const kiln_tensor *bias;    /* Conv2D b or Gemm C, NULL when none */
    double *mm_bias;            /* a MatMul's bias per feature (the Add), or NULL */
    const char *w_name, *b_name; /* the weight's and bias's nodes' names (b: or NULL) */
    int rank, axis;             /* output rank and feature axis */
    int64_t nfeat;
} producer;

typedef struct {
    int *uses;
    int cap;
} use_counts;

static const kiln_tensor *constant_of(const kiln_graph *g, kiln_value v)
{
    const ir_node *n = &g->nodes[v.node];
    return n->op == IR_OP_Constant ? ir_node_tensor(n, "value") : NULL;
}

/* c's values along the feature axis of an output of rank `rank`, into vals
 * (nfeat of them); false unless c varies along that axis only. */
static bool per_feature(const kiln_tensor *c, int rank, int axis, int64_t nfeat, double *vals)
{
    if (!c || c->rank > rank || !ir_dtype_is_float(c->dtype)) return false;
    int64_t stride = 0;
    for (int j = 0; j < c->rank; j++) {
        int a = rank - c->rank + j;
        if (c->dims[j] == 1) continue;
        if (a != axis || c->dims[j] != nfeat) return false;
        stride = 1;
        for (int k = j + 1; k < c->rank; k++) stride *= c->dims[k];
    }
    if (c->size == 0) return false;
    for (int64_t f = 0; f < nfeat; f++) vals[f] = ir_load_f64(c->dtype, c->data, (size_t)(f * stride));
    return true;
}

static bool single_use(const use_counts *u, kiln_value v)
{
    return v.index == 0 && v.node < u->cap && u->uses[v.node] == 1;
}

/* Matches a Conv2D, Gemm or MatMul with constant weights at v. */
static bool match_plain(const kiln_graph *g, kiln_value v, const use_counts *u, producer *p)
{
    if (!single_use(u, v)) return false;
    const ir_node *n = &g->nodes[v.node];
    if (n->op != IR_OP_Conv2D && n->op != IR_OP_Gemm && n->op != IR_OP_MatMul) return false;
    const ir_type *t = &n->outputs[0];
    if (!ir_dtype_is_float(t->dtype) || !ir_type_is_static(t)) return false;
    memset(p, 0, sizeof *p);
    p->node = v.node;
    p->n = n;
    p->x = n->inputs[0];
    p->rank = t->rank;
    p->w = constant_of(g, n->inputs[1]);
    if (!p->w) return false;
    p->w_name = g->nodes[n->inputs[1].node].name;
    if (n->ninputs == 3) p->b_name = g->nodes[n->inputs[2].node].name;
    switch (n->op) {
    case IR_OP_Conv2D:
        if (t->rank != 4) return false;
        p->axis = 1;
        p->nfeat = t->dims[1];
        if (p->w->rank != 4 || p->w->dims[0] != p->nfeat) return false;
        if (n->ninputs == 3) {
            p->bias = constant_of(g, n->inputs[2]);
            if (!p->bias || p->bias->rank != 1 || p->bias->dims[0] != p->nfeat) return false;
        }
        return true;
    case IR_OP_Gemm:
        if (t->rank != 2 || p->w->rank != 2) return false;
        p->axis = 1;
        p->nfeat = t->dims[1];
        if (n->ninputs == 3 && !(p->bias = constant_of(g, n->inputs[2]))) return false;
        return p->w->dims[ir_node_int(n, "transB") ? 0 : 1] == p->nfeat;
    case IR_OP_MatMul:
        if (t->rank < 1 || p->w->rank != 2) return false;
        p->axis = t->rank - 1;
        p->nfeat = t->dims[t->rank - 1];
        return p->w->dims[ir_node_int(n, "transpose_b") ? 0 : 1] == p->nfeat;
    default: return false;
    }
}

/* A producer at v, including Add(MatMul, c) as a MatMul with a bias. */
static int match_producer(const kiln_graph *g, kiln_value v, const use_counts *u, producer *p, bool *found,
                          pass_context *cx)
{
    *found = false;
    if (match_plain(g, v, u, p)) return *found = true, KILN_OK;
    const ir_node *add = &g->nodes[v.node];
    if (add->op != IR_OP_Add || !single_use(u, v)) return KILN_OK;
    for (int side = 0; side < 2; side++) {
        kiln_value mm = add->inputs[side];
        const kiln_tensor *c = constant_of(g, add->inputs[1 - side]);
        if (!c || g->nodes[mm.node].op != IR_OP_MatMul || !match_plain(g, mm, u, p)) continue;
        if (!ir_type_equal(&add->outputs[0], &p->n->outputs[0])) return KILN_OK;
        p->mm_bias = ir_malloc(sizeof(double) * ((size_t)p->nfeat + 1));
        if (!p->mm_bias) return ir_set_status(cx->status, KILN_ERR_OUT_OF_MEMORY, "fold_bn: Add '%s': out of memory", add->name);
        if (!per_feature(c, p->rank, p->axis, p->nfeat, p->mm_bias)) {
            ir_free(p->mm_bias);
            p->mm_bias = NULL;
            return KILN_OK;
        }
        p->b_name = g->nodes[add->inputs[1 - side].node].name;
        *found = true;
        return KILN_OK;
    }
    return KILN_OK;
}

/* w scaled along its output-feature dim: dim 0 (Conv2D; Gemm with transB;
 * MatMul with transpose_b) or the last dim (the other Gemm/MatMul). */
static kiln_tensor *scaled_weight(const producer *p, const double *s)
{
    kiln_tensor *w = kiln_tensor_copy(p->w);
    if (!w) return NULL;
    bool rows = p->n->op == IR_OP_Conv2D ||
                (p->n->op == IR_OP_Gemm && ir_node_int(p->n, "transB")) ||
                (p->n->op == IR_OP_MatMul && ir_node_int(p->n, "transpose_b"));
    size_t size = w->size, inner = rows ? size / (size_t)p->nfeat : 1;
    for (size_t i = 0; i < size; i++) {
        size_t f = rows ? i / inner : i % (size_t)p->nfeat;
        ir_store_f64(w->dtype, w->data, i, ir_load_f64(w->dtype, w->data, i) * s[f]);
    }
    return w;
}

/* The new bias: Gemm's beta*C*s + t broadcast to C's shape with [nfeat];
 * the others' b*s + t of shape [nfeat]. NULL in *out when there is none to
 * add (no bias and t all zero). */
static int new_bias(const producer *p, const double *s, const double *t, kiln_tensor **out)
{
    *out = NULL;
    kiln_dtype dt = p->n->outputs[0].dtype;
    bool any_t = false;
    for (int64_t f = 0; f < p->nfeat; f++) any_t |= t[f] != 0;
    if (!p->bias && !p->mm_bias && !any_t) return KILN_OK;
    ir_type feat = {.dtype = dt, .rank = 1, .dims = {p->nfeat}}, bt = feat;
    double beta = 1;
    if (p->n->op == IR_OP_Gemm && p->bias) {
        ir_type ct;
        ir_tensor_type(p->bias, &ct);
        if (!ir_broadcast(&ct, &feat, &bt)) return KILN_ERR_FAILED_PRECONDITION;
        beta = ir_node_float(p->n, "beta");
    }
    kiln_tensor *b = ir_tensor_new_type(&bt);
    if (!b) return KILN_ERR_OUT_OF_MEMORY;
    /* walk the result; operand 0 reads the old bias broadcast */
    ir_iter it;
    ir_iter_init(&it, bt.rank, bt.dims);
    int64_t st[IR_MAX_RANK] = {0};
    if (p->bias) ir_broadcast_strides(p->bias->rank, p->bias->dims, bt.rank, st);
    ir_iter_add(&it, st);
    for (size_t i = 0; i < b->size; i++, ir_iter_next(&it)) {
        size_t f = (size_t)it.idx[bt.rank - 1];
        double old = p->bias ? beta * ir_load_f64(p->bias->dtype, p->bias->data, (size_t)it.off[0])
                   : p->mm_bias ? p->mm_bias[f] : 0;
        ir_store_f64(dt, b->data, i, old * s[f] + t[f]);
    }
    *out = b;
    return KILN_OK;
}

static int grow_uses(use_counts *u, int n, pass_context *cx)
{
    if (n <= u->cap) return KILN_OK;
    int cap = u->cap * 2 > n ? u->cap * 2 : n;
    int *uses = ir_realloc(u->uses, sizeof(int) * (size_t)cap);
    if (!uses) return ir_set_status(cx->status, KILN_ERR_OUT_OF_MEMORY, "fold_bn: out of memory");
    for (int i = u->cap; i < cap; i++) uses[i] = 0;
    u->uses = uses;
    u->cap = cap;
    return KILN_OK;
}

/* Builds the folded producer for affine node `at` and returns its value. */
static int build(kiln_graph *g, int at, const producer *p, const double *s, const double *t,
                 use_counts *u, pass_rewrite *rw, pass_context *cx, kiln_value *out)
{
    const char *at_name = g->nodes[at].name;
    const char *at_op = ir_op_def(g->nodes[at].op)->name;
    kiln_tensor *w = scaled_weight(p, s), *b = NULL;
    kiln_attrs *attrs = ir_node_attr_bag(p->n);
    int rc = KILN_OK, wn, bn = -1, node;
    char what[300];
    snprintf(what, sizeof what, "fold_bn: %s '%s'", at_op, at_name);
    if (!w || !attrs || (rc = new_bias(p, s, t, &b)) == KILN_ERR_OUT_OF_MEMORY) {
        rc = ir_set_status(cx->status, KILN_ERR_OUT_OF_MEMORY, "%s: out of memory", what);
        goto done;
    }
    if (rc) {
        rc = ir_set_status(cx->status, KILN_ERR_INTERNAL, "%s: the bias does not broadcast (a pass bug)", what);
        goto done;
    }
    ir_op op = p->n->op;
    kiln_value x = p->x;
    const char *mm_name = p->n->name;
    /* the new weight and bias take the old ones' names when those go */
    if ((rc = pass_add_constant(g, w, what, cx, &wn)) || (rc = pass_rewrite_name(rw, g, wn, p->w_name, cx)))
        goto done;
    if (b && ((rc = pass_add_constant(g, b, what, cx, &bn)) ||
              (p->b_name && (rc = pass_rewrite_name(rw, g, bn, p->b_name, cx)))))
        goto done;
    if (op == IR_OP_Gemm && b) kiln_attrs_float(attrs, "beta", 1.0);
    kiln_value in[3] = {x, {wn, 0}, {bn, 0}};
    int nin = op == IR_OP_MatMul || !b ? 2 : 3;
    if ((rc = pass_add_node(g, op, in, nin, attrs, cx, &node))) goto done;
    if (op == IR_OP_MatMul && b) {
        kiln_value add_in[2] = {{node, 0}, {bn, 0}};
        if ((rc = grow_uses(u, g->nnodes, cx)) || (rc = pass_rewrite_name(rw, g, node, mm_name, cx))) goto done;
        u->uses[node] = 1;
        if ((rc = pass_add_node(g, IR_OP_Add, add_in, 2, NULL, cx, &node))) goto done;
    }
    if ((rc = grow_uses(u, g->nnodes, cx))) goto done;
    u->uses[wn] = 1;
    if (bn >= 0) u->uses[bn] = 1;
    u->uses[node] = u->uses[at];
    *out = (kiln_value){node, 0};
done:
    kiln_tensor_free(w);
    kiln_tensor_free(b);
    kiln_attrs_free(attrs);
    return rc;
}

/* The affine map node n applies to its producer, if any: fills p, s, t. */
static int match_affine(const kiln_graph *g, const ir_node *n, const use_counts *u, producer *p, double **s,
                        double **t, bool *found, pass_context *cx)
{
    *found = false;
    int rc = KILN_OK;
    if (n->noutputs != 1 || !ir_dtype_is_float(n->outputs[0].dtype)) return KILN_OK;
    if (n->op == IR_OP_BatchNormalization) {
        if (ir_node_int(n, "training_mode") != 0) return KILN_OK;
        const kiln_tensor *prm[4];
        for (int k = 0; k < 4; k++)
            if (!(prm[k] = constant_of(g, n->inputs[k + 1]))) return KILN_OK;
        if ((rc = match_producer(g, n->inputs[0], u, p, found, cx)) || !*found) return rc;
        *found = false;
        if (p->axis != 1 || prm[0]->size != (size_t)p->nfeat) goto no;
        *s = ir_malloc(sizeof(double) * ((size_t)p->nfeat + 1));
        *t = ir_malloc(sizeof(double) * ((size_t)p->nfeat + 1));
        if (!*s || !*t) goto oom;
        double eps = ir_node_float(n, "epsilon");
        for (int64_t f = 0; f < p->nfeat; f++) {
            double scale = ir_load_f64(prm[0]->dtype, prm[0]->data, (size_t)f);
            double bias = ir_load_f64(prm[1]->dtype, prm[1]->data, (size_t)f);
            double mean = ir_load_f64(prm[2]->dtype, prm[2]->data, (size_t)f);
            double var = ir_load_f64(prm[3]->dtype, prm[3]->data, (size_t)f);
            (*s)[f] = scale / sqrt(var + eps);
            (*t)[f] = bias - mean * (*s)[f];
        }
        *found = true;
        return KILN_OK;
    }
    if (n->op != IR_OP_Mul && n->op != IR_OP_Add && n->op != IR_OP_Sub) return KILN_OK;
    for (int side = 0; side < (n->op == IR_OP_Sub ? 1 : 2); side++) {
        const kiln_tensor *c = constant_of(g, n->inputs[1 - side]);
        if (!c) continue;
        if ((rc = match_producer(g, n->inputs[side], u, p, found, cx))) return rc;
        if (!*found) continue;
        *found = false;
        /* Add after a bias-less MatMul is already MatMul-with-bias form */
        if (n->op == IR_OP_Add && p->n->op == IR_OP_MatMul && !p->mm_bias) goto no;
        if (!ir_type_equal(&n->outputs[0], &g->nodes[n->inputs[side].node].outputs[0])) goto no;
        *s = ir_malloc(sizeof(double) * ((size_t)p->nfeat + 1));
        *t = ir_malloc(sizeof(double) * ((size_t)p->nfeat + 1));
        if (!*s || !*t) goto oom;
        double *vals = n->op == IR_OP_Mul ? *s : *t;
        if (!per_feature(c, p->rank, p->axis, p->nfeat, vals)) goto no;
        for (int64_t f = 0; f < p->nfeat; f++) {
            if (n->op == IR_OP_Mul) (*t)[f] = 0;
            else (*s)[f] = 1;
            if (n->op == IR_OP_Sub) (*t)[f] = -(*t)[f];
        }
        *found = true;
        return KILN_OK;
    }
    return KILN_OK;
oom:
    rc = ir_set_status(cx->status, KILN_ERR_OUT_OF_MEMORY, "fold_bn: %s '%s': out of memory",
                       ir_op_def(n->op)->name, n->name);
no:
    ir_free(p->mm_bias);
    p->mm_bias = NULL;
    ir_free(*s);
    ir_free(*t);
    *s = *t = NULL;
    return rc;
}

int pass_fold_bn(kiln_graph *g, pass_context *cx, bool *changed)
{
    *changed = false;
    use_counts u = {0};
    pass_rewrite rw;
    int rc = pass_rewrite_begin(&rw, g, cx);
    if (rc) return rc;
    if ((rc = grow_uses(&u, g->nnodes + 16, cx))) goto done;
    for (int i = 0; i < g->nnodes; i++)
        for (int k = 0; k < g->nodes[i].ninputs; k++) u.uses[g->nodes[i].inputs[k].node]++;
    /* a declared output is a use no rewrite may take away */
    for (int k = 0; k < g->noutputs; k++) u.uses[g->outputs[k].node] += 2;
    for (int i = 0; i < rw.nnodes; i++) {
        pass_rewrite_inputs(&rw, g, i);
        producer p = {0};
        double *s = NULL, *t = NULL;
        bool found;
        if ((rc = match_affine(g, &g->nodes[i], &u, &p, &s, &t, &found, cx))) break;
        if (!found) continue;
        kiln_value repl;
        rc = build(g, i, &p, s, t, &u, &rw, cx, &repl);
        ir_free(p.mm_bias);
        ir_free(s);
        ir_free(t);
        if (rc || (rc = pass_rewrite_replace(&rw, g, (kiln_value){i, 0}, repl, cx))) break;
    }
done:
    ir_free(u.uses);
    if (rc) {
        pass_rewrite_stop(&rw, g, cx);
        return rc;
    }
    return pass_rewrite_finish(&rw, g, cx, changed);
}
