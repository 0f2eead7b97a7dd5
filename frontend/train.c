/* train.c -- the training half of kiln.h: loss builders and optimizers
 * (kiln_minimize), all composed of ordinary ops so that they are
 * differentiated, optimized and compiled like the rest of the graph. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../ir/ir.h"

/* ---- Losses ---------------------------------------------------------------- */

static bool reduction_ok(kiln_reduction r)
{
    return r == KILN_REDUCTION_MEAN || r == KILN_REDUCTION_SUM;
}

/* Common checks of a loss's two inputs; false (error recorded, unless an
 * input was already invalid from an earlier error) when the loss cannot be
 * built. */
static bool loss_check_inputs(kiln_graph *g, const char *loss, kiln_value a, const char *aname,
                              kiln_value b, const char *bname, kiln_reduction r)
{
    if (!g) return false;
    if (!ir_value_valid(g, a) || !ir_value_valid(g, b)) {
        if (!g->error_code)
            ir_graph_set_error(g, KILN_ERR_INVALID_ARGUMENT, "%s: %s is not a valid value", loss,
                               !ir_value_valid(g, a) ? aname : bname);
        return false;
    }
    if (!reduction_ok(r)) {
        ir_graph_set_error(g, KILN_ERR_INVALID_ARGUMENT,
                           "%s: unknown reduction %d (KILN_REDUCTION_MEAN or _SUM)", loss, (int)r);
        return false;
    }
    const ir_type *ta = ir_value_type(g, a);
    if (!ir_dtype_is_float(ta->dtype)) {
        char s[IR_TYPE_STR_MAX];
        ir_graph_set_error(g, KILN_ERR_INVALID_ARGUMENT, "%s: %s must be floating point, not %s",
                           loss, aname, ir_type_str(ta, s, sizeof s));
        return false;
    }
    return true;
}

/* Same dtype and shape (a symbolic dim matches anything). */
static bool same_type(const ir_type *a, const ir_type *b)
{
    if (a->dtype != b->dtype || a->rank != b->rank) return false;
    for (int i = 0; i < a->rank; i++)
        if (a->dims[i] >= 0 && b->dims[i] >= 0 && a->dims[i] != b->dims[i]) return false;
    return true;
}

static bool loss_require_same(kiln_graph *g, const char *loss, kiln_value a, const char *aname,
                              kiln_value b, const char *bname)
{
    const ir_type *ta = ir_value_type(g, a), *tb = ir_value_type(g, b);
    if (same_type(ta, tb)) return true;
    char s1[IR_TYPE_STR_MAX], s2[IR_TYPE_STR_MAX];
    ir_graph_set_error(g, KILN_ERR_INVALID_ARGUMENT,
                       "%s: %s %s and %s %s must have the same dtype and shape", loss, aname,
                       ir_type_str(ta, s1, sizeof s1), bname, ir_type_str(tb, s2, sizeof s2));
    return false;
}

static kiln_value reduce_terms(kiln_graph *g, kiln_value terms, kiln_reduction r)
{
    return r == KILN_REDUCTION_MEAN ? kiln_reduce_mean(g, terms, NULL, 0, 0)
                                    : kiln_reduce_sum(g, terms, NULL, 0, 0);
}

kiln_value kiln_loss_mse(kiln_graph *g, kiln_value pred, kiln_value target, kiln_reduction reduction)
{
    const char *what = "kiln_loss_mse";
    if (!loss_check_inputs(g, what, pred, "pred", target, "target", reduction) ||
        !loss_require_same(g, what, pred, "pred", target, "target"))
        return kiln_value_invalid();
    kiln_value d = kiln_sub(g, pred, target);
    return reduce_terms(g, kiln_mul(g, d, d), reduction);
}

kiln_value kiln_loss_sigmoid_cross_entropy(kiln_graph *g, kiln_value logits, kiln_value targets,
                                           kiln_reduction reduction)
{
    const char *what = "kiln_loss_sigmoid_cross_entropy";
    if (!loss_check_inputs(g, what, logits, "logits", targets, "targets", reduction) ||
        !loss_require_same(g, what, logits, "logits", targets, "targets"))
        return kiln_value_invalid();
    /* max(x, 0) - x z + log(1 + exp(-|x|)) is Softplus(x) - x z, and
     * Softplus computes exactly max(x, 0) + log1p(exp(-|x|)) (no exp of a
     * positive number). One Softplus instead of Relu + Abs also gives the
     * exact gradient sigmoid(x) - z at x = 0, where Relu's and Abs's
     * subgradients would not add up. */
    kiln_value terms = kiln_sub(g, kiln_softplus(g, logits), kiln_mul(g, logits, targets));
    return reduce_terms(g, terms, reduction);
}

/* one_hot(labels) over the last axis of C classes, as dtype dt: Equal
 * against a constant 0..C-1 (no gradient is needed through labels). */
static kiln_value one_hot(kiln_graph *g, kiln_value labels, int64_t classes, kiln_dtype dt)
{
    kiln_dtype lt = kiln_value_dtype(g, labels);
    kiln_tensor *iota = kiln_tensor_new(lt, 1, &classes);
    if (!iota) {
        ir_graph_set_error(g, KILN_ERR_OUT_OF_MEMORY, "kiln_loss_softmax_cross_entropy: out of memory");
        return kiln_value_invalid();
    }
    for (int64_t c = 0; c < classes; c++) ir_store_i64(lt, iota->data, (size_t)c, c);
    kiln_value classes_v = kiln_constant(g, NULL, iota);
    kiln_tensor_free(iota);
    int64_t axis = kiln_value_rank(g, labels);
    kiln_value col = kiln_unsqueeze(g, labels, &axis, 1);
    return kiln_cast(g, kiln_equal(g, col, classes_v), dt);
}

kiln_value kiln_loss_softmax_cross_entropy(kiln_graph *g, kiln_value logits, kiln_value labels,
                                           kiln_reduction reduction)
{
    const char *what = "kiln_loss_softmax_cross_entropy";
    if (!loss_check_inputs(g, what, logits, "logits", labels, "labels", reduction))
        return kiln_value_invalid();
    const ir_type *tl = ir_value_type(g, logits), *ty = ir_value_type(g, labels);
    char s1[IR_TYPE_STR_MAX], s2[IR_TYPE_STR_MAX];
    if (tl->rank < 1) {
        ir_graph_set_error(g, KILN_ERR_INVALID_ARGUMENT,
                           "%s: logits %s must have a class axis (rank >= 1)", what,
                           ir_type_str(tl, s1, sizeof s1));
        return kiln_value_invalid();
    }
    int last = tl->rank - 1;
    kiln_value probs;
    if (ty->dtype == KILN_I32 || ty->dtype == KILN_I64) {
        bool ok = ty->rank == last;
        for (int i = 0; ok && i < last; i++)
            ok = tl->dims[i] < 0 || ty->dims[i] < 0 || tl->dims[i] == ty->dims[i];
        if (!ok || tl->dims[last] < 0) {
            ir_graph_set_error(g, KILN_ERR_INVALID_ARGUMENT,
                               "%s: integer labels %s must have the shape of logits %s without "
                               "its last (class) axis, whose size must be static",
                               what, ir_type_str(ty, s2, sizeof s2), ir_type_str(tl, s1, sizeof s1));
            return kiln_value_invalid();
        }
        probs = one_hot(g, labels, tl->dims[last], tl->dtype);
    } else if (ir_dtype_is_float(ty->dtype)) {
        if (!loss_require_same(g, what, logits, "logits", labels, "labels (probabilities)"))
            return kiln_value_invalid();
        probs = labels;
    } else {
        ir_graph_set_error(g, KILN_ERR_INVALID_ARGUMENT,
                           "%s: labels %s must be i32/i64 class indices or probabilities of the "
                           "logits' dtype (logits %s)",
                           what, ir_type_str(ty, s2, sizeof s2), ir_type_str(tl, s1, sizeof s1));
        return kiln_value_invalid();
    }
    kiln_value logp = kiln_log_softmax(g, logits, -1);
    int64_t axis = last;
    kiln_value terms = kiln_neg(g, kiln_reduce_sum(g, kiln_mul(g, probs, logp), &axis, 1, 0));
    return reduce_terms(g, terms, reduction);
}

/* ---- Optimizers -------------------------------------------------------------- */

void kiln_optimizer_init(kiln_optimizer *o, kiln_optimizer_kind kind, double learning_rate)
{
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->kind = kind;
    o->learning_rate = learning_rate;
    o->momentum = kind == KILN_OPTIMIZER_MOMENTUM ? 0.9 : 0.0;
    o->beta1 = 0.9;
    o->beta2 = 0.999;
    o->epsilon = 1e-8;
    o->weight_decay = kind == KILN_OPTIMIZER_ADAMW ? 0.01 : 0.0;
    o->rho = 0.99;
}

static const char *optimizer_name(kiln_optimizer_kind k)
{
    switch (k) {
    case KILN_OPTIMIZER_SGD: return "SGD";
    case KILN_OPTIMIZER_MOMENTUM: return "Momentum";
    case KILN_OPTIMIZER_ADAM: return "Adam";
    case KILN_OPTIMIZER_ADAMW: return "AdamW";
    case KILN_OPTIMIZER_RMSPROP: return "RMSprop";
    }
    return NULL;
}

static int check_settings(const kiln_optimizer *o, kiln_status *st)
{
    const char *kind = optimizer_name(o->kind);
    if (!kind)
        return ir_set_status(st, KILN_ERR_INVALID_ARGUMENT, "kiln_minimize: unknown optimizer kind %d",
                             (int)o->kind);
#define BAD(cond, ...)                                                                             \
    do {                                                                                           \
        if (cond) return ir_set_status(st, KILN_ERR_INVALID_ARGUMENT, __VA_ARGS__);               \
    } while (0)
    BAD(!(o->learning_rate >= 0) || !isfinite(o->learning_rate),
        "kiln_minimize (%s): learning_rate is %g; it must be finite and >= 0", kind, o->learning_rate);
    BAD(!(o->weight_decay >= 0) || !isfinite(o->weight_decay),
        "kiln_minimize (%s): weight_decay is %g; it must be finite and >= 0", kind, o->weight_decay);
    BAD(!(o->clip_global_norm >= 0) || !isfinite(o->clip_global_norm),
        "kiln_minimize (%s): clip_global_norm is %g; it must be > 0, or 0 for off", kind,
        o->clip_global_norm);
    BAD(!(o->momentum >= 0) || !isfinite(o->momentum),
        "kiln_minimize (%s): momentum is %g; it must be finite and >= 0", kind, o->momentum);
    BAD(o->nesterov && (o->kind != KILN_OPTIMIZER_MOMENTUM || o->momentum <= 0),
        "kiln_minimize (%s): nesterov needs the MOMENTUM kind and momentum > 0 (momentum %g)", kind,
        o->momentum);
    if (o->kind == KILN_OPTIMIZER_ADAM || o->kind == KILN_OPTIMIZER_ADAMW) {
        BAD(!(o->beta1 >= 0 && o->beta1 < 1), "kiln_minimize (%s): beta1 is %g; it must be in [0, 1)",
            kind, o->beta1);
        BAD(!(o->beta2 >= 0 && o->beta2 < 1), "kiln_minimize (%s): beta2 is %g; it must be in [0, 1)",
            kind, o->beta2);
    }
    if (o->kind == KILN_OPTIMIZER_RMSPROP)
        BAD(!(o->rho >= 0 && o->rho < 1), "kiln_minimize (%s): rho is %g; it must be in [0, 1)", kind,
            o->rho);
    BAD(!(o->epsilon >= 0) || !isfinite(o->epsilon),
        "kiln_minimize (%s): epsilon is %g; it must be finite and >= 0", kind, o->epsilon);
    BAD(o->nvar_list < 0 || (o->nvar_list > 0 && !o->var_list),
        "kiln_minimize (%s): var_list is NULL or nvar_list (%d) is negative", kind, o->nvar_list);
#undef BAD
    return KILN_OK;
}

/* base, or base_1, base_2, ... : the first name not used in g (NULL when out
 * of memory). The caller frees it with ir_free. */
static char *unique_name(const kiln_graph *g, const char *base)
{
    char *name = ir_strdup(base);
    for (int k = 1; name && ir_strmap_get(&g->names, name) >= 0; k++) {
        ir_free(name);
        name = ir_asprintf("%s_%d", base, k);
    }
    return name;
}

/* base, or base_1, base_2, ...: the first prefix p for which neither
 * "p/step" nor "p/train" names a node of g (NULL when out of memory). */
static char *unique_prefix(const kiln_graph *g, const char *base)
{
    for (int k = 0;; k++) {
        char *p = k ? ir_asprintf("%s_%d", base, k) : ir_strdup(base);
        char *a = p ? ir_asprintf("%s/step", p) : NULL;
        char *b = p ? ir_asprintf("%s/train", p) : NULL;
        bool ok = a && b && ir_strmap_get(&g->names, a) < 0 && ir_strmap_get(&g->names, b) < 0;
        bool oom = !a || !b;
        ir_free(a);
        ir_free(b);
        if (ok || oom) {
            if (oom) {
                ir_free(p);
                p = NULL;
            }
            return p;
        }
        ir_free(p);
    }
}

/* A zero-filled variable named "<prefix>/<slot>" of var's type. */
static kiln_value new_state(kiln_graph *g, const char *prefix, const char *slot, kiln_dtype dt,
                            int rank, const int64_t *dims)
{
    char *base = ir_asprintf("%s/%s", prefix, slot);
    char *name = base ? unique_name(g, base) : NULL;
    kiln_tensor *t = name ? kiln_tensor_new(dt, rank, dims) : NULL;
    kiln_value v = kiln_value_invalid();
    if (t) v = kiln_variable(g, name, t);
    else ir_graph_set_error(g, KILN_ERR_OUT_OF_MEMORY, "kiln_minimize: out of memory");
    kiln_tensor_free(t);
    ir_free(name);
    ir_free(base);
    return v;
}

/* The float variables loss depends on (or opt->var_list, checked), in node
 * order, into *vars (ir_malloc'd). Returns the count or -1 with status set. */
static int trained_variables(const kiln_graph *g, kiln_value loss, const kiln_optimizer *o,
                             kiln_value **vars, kiln_status *st)
{
    *vars = NULL;
    int n = 0;
    if (o->var_list) {
        *vars = ir_malloc(sizeof(kiln_value) * (size_t)(o->nvar_list ? o->nvar_list : 1));
        if (!*vars) goto oom;
        for (int i = 0; i < o->nvar_list; i++) {
            kiln_value v = o->var_list[i];
            if (!ir_value_valid(g, v) || g->nodes[v.node].op != IR_OP_Variable ||
                !ir_dtype_is_float(ir_value_type(g, v)->dtype)) {
                char t[IR_TYPE_STR_MAX] = "?";
                if (ir_value_valid(g, v)) ir_type_str(ir_value_type(g, v), t, sizeof t);
                ir_set_status(st, KILN_ERR_INVALID_ARGUMENT,
                              "kiln_minimize: var_list[%d] ('%s', %s %s) is not a floating-point "
                              "variable",
                              i, ir_value_valid(g, v) ? g->nodes[v.node].name : "invalid",
                              ir_value_valid(g, v) ? ir_op_def(g->nodes[v.node].op)->name : "", t);
                goto fail;
            }
            for (int j = 0; j < i; j++)
                if (o->var_list[j].node == v.node) {
                    ir_set_status(st, KILN_ERR_INVALID_ARGUMENT,
                                  "kiln_minimize: variable '%s' is in var_list twice (%d and %d)",
                                  g->nodes[v.node].name, j, i);
                    goto fail;
                }
            (*vars)[n++] = (kiln_value){v.node, 0};
        }
        return n;
    }
    unsigned char *seen = ir_calloc((size_t)loss.node + 1, 1);
    int *stack = ir_malloc(sizeof(int) * ((size_t)loss.node + 1));
    *vars = ir_malloc(sizeof(kiln_value) * ((size_t)loss.node + 1));
    if (!seen || !stack || !*vars) {
        ir_free(seen);
        ir_free(stack);
        goto oom;
    }
    int sp = 0;
    stack[sp++] = loss.node;
    seen[loss.node] = 1;
    while (sp > 0) {
        const ir_node *nd = &g->nodes[stack[--sp]];
        for (int i = 0; i < nd->ninputs; i++) {
            int in = nd->inputs[i].node;
            if (!seen[in]) {
                seen[in] = 1;
                stack[sp++] = in;
            }
        }
    }
    for (int i = 0; i <= loss.node; i++) {
        const ir_node *nd = &g->nodes[i];
        if (seen[i] && nd->op == IR_OP_Variable && ir_dtype_is_float(nd->outputs[0].dtype) &&
            ir_shape_numel(nd->outputs[0].rank, nd->outputs[0].dims) > 0)
            (*vars)[n++] = (kiln_value){i, 0};
    }
    ir_free(seen);
    ir_free(stack);
    return n;
oom:
    ir_set_status(st, KILN_ERR_OUT_OF_MEMORY, "kiln_minimize: out of memory");
fail:
    ir_free(*vars);
    *vars = NULL;
    return -1;
}

/* Scales every gradient by clip / max(global_norm, clip), the global norm
 * taken in f64 over all of them (TensorFlow's clip_by_global_norm). */
static void clip_by_global_norm(kiln_graph *g, kiln_value *grads, int n, double clip)
{
    kiln_value total = kiln_value_invalid();
    for (int i = 0; i < n; i++) {
        kiln_value x = grads[i];
        if (kiln_value_dtype(g, x) != KILN_F64) x = kiln_cast(g, x, KILN_F64);
        kiln_value ss = kiln_reduce_sum(g, kiln_mul(g, x, x), NULL, 0, 0);
        total = i == 0 ? ss : kiln_add(g, total, ss);
    }
    kiln_value norm = kiln_sqrt(g, total);
    kiln_value c = kiln_scalar(g, KILN_F64, clip);
    kiln_value scale = kiln_div(g, c, kiln_maximum(g, norm, c));
    for (int i = 0; i < n; i++) {
        kiln_dtype dt = kiln_value_dtype(g, grads[i]);
        kiln_value s = dt == KILN_F64 ? scale : kiln_cast(g, scale, dt);
        grads[i] = kiln_mul(g, grads[i], s);
    }
}

/* Adam's per-step scalars, in f64 from the step counter. */
typedef struct {
    kiln_value step_size; /* lr / (1 - beta1^t) */
    kiln_value sqrt_bc2;  /* sqrt(1 - beta2^t) */
} adam_scalars;

/* One variable's update: its new value and its slots' new values, built
 * from the old values only. The Assigns come later (see kiln_minimize). */
typedef struct {
    kiln_value target[3];
    kiln_value value[3];
    int n;
} update;

static void push(update *u, kiln_value target, kiln_value value)
{
    u->target[u->n] = target;
    u->value[u->n] = value;
    u->n++;
}

static void build_update(kiln_graph *g, const kiln_optimizer *o, kiln_value w, kiln_value grad,
                         const adam_scalars *adam, update *u)
{
    const ir_node *vn = &g->nodes[w.node];
    kiln_dtype dt = vn->outputs[0].dtype;
    int rank = vn->outputs[0].rank;
    int64_t dims[KILN_MAX_RANK];
    memcpy(dims, vn->outputs[0].dims, sizeof dims);
    const char *vname = vn->name; /* nodes may move while adding: copy what we need */
    char *prefix = ir_strdup(vname);
    if (!prefix) {
        ir_graph_set_error(g, KILN_ERR_OUT_OF_MEMORY, "kiln_minimize: out of memory");
        return;
    }
#define K(x) kiln_scalar(g, dt, (x))
    double lr = o->learning_rate, wd = o->weight_decay;
    kiln_value gr = grad;
    if (wd > 0 && o->kind != KILN_OPTIMIZER_ADAMW) gr = kiln_add(g, gr, kiln_mul(g, K(wd), w));
    kiln_value w_new = kiln_value_invalid();
    switch (o->kind) {
    case KILN_OPTIMIZER_SGD:
        w_new = kiln_sub(g, w, kiln_mul(g, K(lr), gr));
        break;
    case KILN_OPTIMIZER_MOMENTUM: {
        kiln_value b = new_state(g, prefix, "momentum", dt, rank, dims);
        kiln_value b_new = kiln_add(g, kiln_mul(g, K(o->momentum), b), gr);
        kiln_value step = o->nesterov ? kiln_add(g, gr, kiln_mul(g, K(o->momentum), b_new)) : b_new;
        w_new = kiln_sub(g, w, kiln_mul(g, K(lr), step));
        push(u, b, b_new);
        break;
    }
    case KILN_OPTIMIZER_ADAM:
    case KILN_OPTIMIZER_ADAMW: {
        kiln_value m = new_state(g, prefix, "adam_m", dt, rank, dims);
        kiln_value v = new_state(g, prefix, "adam_v", dt, rank, dims);
        kiln_value m_new = kiln_add(g, kiln_mul(g, K(o->beta1), m), kiln_mul(g, K(1 - o->beta1), gr));
        kiln_value v_new = kiln_add(g, kiln_mul(g, K(o->beta2), v),
                                    kiln_mul(g, K(1 - o->beta2), kiln_mul(g, gr, gr)));
        kiln_value step_size = dt == KILN_F64 ? adam->step_size : kiln_cast(g, adam->step_size, dt);
        kiln_value sqrt_bc2 = dt == KILN_F64 ? adam->sqrt_bc2 : kiln_cast(g, adam->sqrt_bc2, dt);
        kiln_value denom = kiln_add(g, kiln_div(g, kiln_sqrt(g, v_new), sqrt_bc2), K(o->epsilon));
        kiln_value base = w;
        if (o->kind == KILN_OPTIMIZER_ADAMW && wd > 0) base = kiln_mul(g, w, K(1 - lr * wd));
        w_new = kiln_sub(g, base, kiln_mul(g, step_size, kiln_div(g, m_new, denom)));
        push(u, m, m_new);
        push(u, v, v_new);
        break;
    }
    case KILN_OPTIMIZER_RMSPROP: {
        kiln_value sq = new_state(g, prefix, "rms", dt, rank, dims);
        kiln_value sq_new = kiln_add(g, kiln_mul(g, K(o->rho), sq),
                                     kiln_mul(g, K(1 - o->rho), kiln_mul(g, gr, gr)));
        kiln_value scaled = kiln_div(g, gr, kiln_add(g, kiln_sqrt(g, sq_new), K(o->epsilon)));
        push(u, sq, sq_new);
        if (o->momentum > 0) {
            kiln_value b = new_state(g, prefix, "momentum", dt, rank, dims);
            kiln_value b_new = kiln_add(g, kiln_mul(g, K(o->momentum), b), scaled);
            push(u, b, b_new);
            scaled = b_new;
        }
        w_new = kiln_sub(g, w, kiln_mul(g, K(lr), scaled));
        break;
    }
    }
#undef K
    /* The variable itself first: the train op's vector starts with it. */
    for (int i = u->n; i > 0; i--) {
        u->target[i] = u->target[i - 1];
        u->value[i] = u->value[i - 1];
    }
    u->target[0] = w;
    u->value[0] = w_new;
    u->n++;
    ir_free(prefix);
}

static adam_scalars adam_step(kiln_graph *g, const kiln_optimizer *o, const char *prefix,
                              update *counter)
{
    adam_scalars a;
    kiln_value step = new_state(g, prefix, "step", KILN_I64, 0, NULL);
    kiln_value step_new = kiln_add(g, step, kiln_scalar(g, KILN_I64, 1));
    kiln_value t = kiln_cast(g, step_new, KILN_F64);
    kiln_value one = kiln_scalar(g, KILN_F64, 1.0);
    kiln_value bc1 = kiln_sub(g, one, kiln_pow(g, kiln_scalar(g, KILN_F64, o->beta1), t));
    kiln_value bc2 = kiln_sub(g, one, kiln_pow(g, kiln_scalar(g, KILN_F64, o->beta2), t));
    a.step_size = kiln_div(g, kiln_scalar(g, KILN_F64, o->learning_rate), bc1);
    a.sqrt_bc2 = kiln_sqrt(g, bc2);
    counter->n = 0;
    push(counter, step, step_new);
    return a;
}

/* The first element of x, as f32[1]. */
static kiln_value first_element(kiln_graph *g, kiln_value x)
{
    int64_t flat = -1, zero = 0, one = 1;
    kiln_value f = kiln_reshape(g, x, &flat, 1);
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_ints(a, "starts", &zero, 1);
    kiln_attrs_ints(a, "ends", &one, 1);
    kiln_value s = kiln_op(g, "Slice", &f, 1, a);
    kiln_attrs_free(a);
    return kiln_value_dtype(g, s) == KILN_F32 ? s : kiln_cast(g, s, KILN_F32);
}

kiln_value kiln_minimize(kiln_graph *g, kiln_value loss, const kiln_optimizer *opt, kiln_status *st)
{
    kiln_value *vars = NULL, *grads = NULL, *pieces = NULL;
    update *ups = NULL;
    char *prefix = NULL, *train_name = NULL;
    kiln_value result = kiln_value_invalid();
    if (!g || !opt) {
        ir_set_status(st, KILN_ERR_INVALID_ARGUMENT, "kiln_minimize: graph or optimizer is NULL");
        return result;
    }
    if (g->error_code) {
        ir_set_status(st, KILN_ERR_FAILED_PRECONDITION, "kiln_minimize: the graph has an error: %s",
                      g->error ? g->error : "?");
        return result;
    }
    if (check_settings(opt, st)) return result;
    if (!ir_value_valid(g, loss)) {
        ir_set_status(st, KILN_ERR_INVALID_ARGUMENT, "kiln_minimize: the loss is not a valid value");
        return result;
    }
    const ir_type *lt = ir_value_type(g, loss);
    if (!ir_dtype_is_float(lt->dtype) || !ir_type_is_static(lt)) {
        char s[IR_TYPE_STR_MAX];
        ir_set_status(st, KILN_ERR_INVALID_ARGUMENT,
                      "kiln_minimize: the loss %s '%s' is %s; it must be floating point with a "
                      "static shape",
                      ir_op_def(g->nodes[loss.node].op)->name, g->nodes[loss.node].name,
                      ir_type_str(lt, s, sizeof s));
        return result;
    }
    int n = trained_variables(g, loss, opt, &vars, st);
    if (n < 0) return result;
    if (n == 0) {
        ir_set_status(st, KILN_ERR_INVALID_ARGUMENT,
                      "kiln_minimize: the loss %s '%s' depends on no floating-point variable",
                      ir_op_def(g->nodes[loss.node].op)->name, g->nodes[loss.node].name);
        goto done;
    }
    grads = ir_malloc(sizeof(kiln_value) * (size_t)n);
    ups = ir_calloc((size_t)n + 1, sizeof(update));
    pieces = ir_malloc(sizeof(kiln_value) * (size_t)(3 * n + 1));
    prefix = unique_prefix(g, opt->name ? opt->name : optimizer_name(opt->kind));
    if (!grads || !ups || !pieces || !prefix) goto oom;
    kiln_gradients(g, &loss, 1, vars, n, NULL, grads, st);
    if (!kiln_value_ok(grads[0])) {
        /* kiln_gradients sets status, except (as of this writing) when a
         * constant it builds fails with a graph error: report that. */
        if (kiln_status_code(st) == KILN_OK)
            ir_set_status(st, g->error_code ? g->error_code : KILN_ERR_INTERNAL,
                          "kiln_minimize: computing the gradients failed: %s",
                          g->error ? g->error : "no reason given");
        goto done;
    }
    if (opt->clip_global_norm > 0) clip_by_global_norm(g, grads, n, opt->clip_global_norm);
    adam_scalars adam = {kiln_value_invalid(), kiln_value_invalid()};
    int nups = n;
    if (opt->kind == KILN_OPTIMIZER_ADAM || opt->kind == KILN_OPTIMIZER_ADAMW) {
        adam = adam_step(g, opt, prefix, &ups[n]);
        nups = n + 1;
    }
    for (int i = 0; i < n && !g->error_code; i++) build_update(g, opt, vars[i], grads[i], &adam, &ups[i]);
    if (g->error_code) goto graph_error;
    /* Every new value exists before the first Assign, so no update reads a
     * variable another Assign of this step has already written. */
    int np = 0;
    for (int i = 0; i < nups; i++)
        for (int k = 0; k < ups[i].n; k++)
            pieces[np++] = first_element(g, kiln_assign(g, ups[i].target[k], ups[i].value[k]));
    kiln_value train = kiln_concat(g, pieces, np, 0);
    char *base = ir_asprintf("%s/train", prefix);
    train_name = base ? unique_name(g, base) : NULL;
    ir_free(base);
    if (!train_name) goto oom;
    train = kiln_name(g, train, train_name);
    if (g->error_code) goto graph_error;
    result = train;
    ir_status_ok(st);
    goto done;
graph_error:
    ir_set_status(st, g->error_code, "kiln_minimize: %s", g->error ? g->error : "?");
    goto done;
oom:
    ir_set_status(st, KILN_ERR_OUT_OF_MEMORY, "kiln_minimize: out of memory");
done:
    ir_free(vars);
    ir_free(grads);
    ir_free(ups);
    ir_free(pieces);
    ir_free(prefix);
    ir_free(train_name);
    return result;
}
