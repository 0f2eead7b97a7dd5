/* autodiff.c -- kiln_gradients: reverse-mode differentiation as a graph
 * transformation. Walks the nodes between xs and ys in reverse order, calls
 * each op's gradient rule (ir/grad.c) and sums gradients over fan-out with
 * Add. The result is ordinary graph nodes, so it can be differentiated again
 * and compiled like anything else. */
#include <string.h>

#include "../ir/ir.h"

/* Per-value gradient slots of the nodes that existed before we started. */
typedef struct {
    int *first;       /* index of node i's first output slot */
    kiln_value *grad; /* per value; node < 0: none yet */
} grad_table;

static kiln_value *slot(grad_table *t, kiln_value v) { return &t->grad[t->first[v.node] + v.index]; }

static bool is_float_value(const kiln_graph *g, kiln_value v)
{
    return ir_dtype_is_float(ir_value_type(g, v)->dtype);
}

/* Adds gradient d into v's slot. False on a graph error. */
static bool accumulate(kiln_graph *g, grad_table *t, kiln_value v, kiln_value d)
{
    kiln_value *s = slot(t, v);
    *s = kiln_value_ok(*s) ? kiln_add(g, *s, d) : d;
    return kiln_value_ok(*s);
}

/* A constant of zeros or ones with type ty; invalid (with status) when its
 * shape is symbolic. */
static kiln_value filled(kiln_graph *g, const ir_type *ty, double v, const char *what,
                         kiln_status *st)
{
    if (!ir_type_is_static(ty)) {
        char buf[IR_TYPE_STR_MAX];
        ir_set_status(st, KILN_ERR_UNIMPLEMENTED,
                      "kiln_gradients: %s of symbolic type %s (pass dys, or fix the shape)", what,
                      ir_type_str(ty, buf, sizeof buf));
        return kiln_value_invalid();
    }
    kiln_tensor *c = ir_tensor_new_type(ty);
    if (!c) {
        ir_set_status(st, KILN_ERR_OUT_OF_MEMORY, "kiln_gradients: out of memory");
        return kiln_value_invalid();
    }
    if (v != 0)
        for (size_t i = 0; i < c->size; i++) ir_store_f64(c->dtype, c->data, i, v);
    kiln_value r = kiln_constant(g, NULL, c);
    kiln_tensor_free(c);
    if (!kiln_value_ok(r))
        ir_set_status(st, g->error_code ? g->error_code : KILN_ERR_OUT_OF_MEMORY, "kiln_gradients: %s: %s", what,
                      kiln_graph_error(g) ? kiln_graph_error(g) : "cannot add the constant");
    return r;
}

/* Lists every op on the path that has no gradient rule; KILN_OK if none. */
static int check_rules(kiln_graph *g, int n0, const bool *active, const bool *dep, kiln_status *st)
{
    ir_buf b = {0};
    bool listed[IR_OP_COUNT] = {false};
    int missing = 0;
    for (int i = 0; i < n0; i++) {
        if (!active[i]) continue;
        const ir_node *n = &g->nodes[i];
        const ir_opdef *def = ir_op_def(n->op);
        if (def->grad || (def->flags & IR_OPF_NOT_DIFFERENTIABLE)) continue;
        bool float_in = false, float_out = false;
        for (int k = 0; k < n->ninputs; k++)
            float_in |= dep[n->inputs[k].node] && is_float_value(g, n->inputs[k]);
        for (int k = 0; k < n->noutputs; k++) float_out |= ir_dtype_is_float(n->outputs[k].dtype);
        if (!float_in || !float_out || listed[n->op]) continue;
        listed[n->op] = true;
        ir_buf_printf(&b, "%s%s ('%s')", missing ? ", " : "", def->name, n->name);
        missing++;
    }
    if (!missing) return KILN_OK;
    char *s = ir_buf_take(&b);
    ir_set_status(st, KILN_ERR_UNIMPLEMENTED,
                  "kiln_gradients: no gradient rule for %d op%s on the path: %s", missing,
                  missing == 1 ? "" : "s", s ? s : "(out of memory)");
    ir_free(s);
    return KILN_ERR_UNIMPLEMENTED;
}

/* Runs node i's rule and accumulates its input gradients. */
static int backprop_node(kiln_graph *g, int i, grad_table *t, const bool *dep, kiln_status *st)
{
    ir_node n = g->nodes[i]; /* a copy: rules add nodes, which may move g->nodes */
    const ir_opdef *def = ir_op_def(n.op);
    kiln_value *dy = ir_malloc(sizeof *dy * (size_t)n.noutputs);
    kiln_value *outs = ir_malloc(sizeof *outs * (size_t)n.noutputs);
    kiln_value *dx = ir_malloc(sizeof *dx * (size_t)(n.ninputs ? n.ninputs : 1));
    int rc = KILN_OK;
    if (!dy || !outs || !dx) {
        rc = ir_set_status(st, KILN_ERR_OUT_OF_MEMORY, "kiln_gradients: out of memory");
        goto done;
    }
    for (int k = 0; k < n.noutputs; k++) {
        outs[k] = (kiln_value){i, k};
        dy[k] = *slot(t, outs[k]);
    }
    for (int k = 0; k < n.ninputs; k++) dx[k] = kiln_value_invalid();
    ir_grad_ctx gx = {.g = g, .node = i, .n = n, .inputs = n.inputs, .outputs = outs, .dy = dy, .dx = dx};
    if (def->grad(&gx) != 0 || g->error_code) goto graph_error;
    for (int k = 0; k < n.ninputs; k++) {
        kiln_value in = n.inputs[k];
        if (!kiln_value_ok(dx[k]) || !dep[in.node] || !is_float_value(g, in)) continue;
        if (!ir_value_valid(g, dx[k])) goto graph_error;
        const ir_type *want = ir_value_type(g, in), *got = ir_value_type(g, dx[k]);
        if (!ir_type_equal(want, got)) {
            char b1[IR_TYPE_STR_MAX], b2[IR_TYPE_STR_MAX];
            rc = ir_set_status(st, KILN_ERR_INTERNAL,
                               "kiln_gradients: %s '%s': the gradient of input %d is %s, not %s",
                               def->name, n.name, k, ir_type_str(got, b1, sizeof b1),
                               ir_type_str(want, b2, sizeof b2));
            goto done;
        }
        if (!accumulate(g, t, in, dx[k])) goto graph_error;
    }
    goto done;
graph_error:
    rc = ir_set_status(st, g->error_code ? g->error_code : KILN_ERR_INTERNAL,
                       "kiln_gradients: %s '%s': %s", def->name, n.name,
                       g->error ? g->error : "the gradient rule failed");
done:
    ir_free(dy);
    ir_free(outs);
    ir_free(dx);
    return rc;
}

void kiln_gradients(kiln_graph *g, const kiln_value *ys, int ny, const kiln_value *xs, int nx,
                    const kiln_value *dys, kiln_value *dxs_out, kiln_status *st)
{
    grad_table t = {0};
    bool *dep = NULL, *need = NULL, *active = NULL;
    if (dxs_out)
        for (int j = 0; j < nx; j++) dxs_out[j] = kiln_value_invalid();
    if (!g || ny < 0 || nx < 0 || (ny && !ys) || (nx && (!xs || !dxs_out))) {
        ir_set_status(st, KILN_ERR_INVALID_ARGUMENT, "kiln_gradients: NULL graph or arrays");
        return;
    }
    if (g->error_code) {
        ir_set_status(st, KILN_ERR_FAILED_PRECONDITION,
                      "kiln_gradients: the graph has an error: %s", g->error ? g->error : "?");
        return;
    }
    for (int j = 0; j < ny; j++)
        if (!ir_value_valid(g, ys[j]) || (dys && !ir_value_valid(g, dys[j]))) {
            ir_set_status(st, KILN_ERR_INVALID_ARGUMENT, "kiln_gradients: ys[%d]%s is not a valid value", j,
                          dys ? " or dys[j]" : "");
            return;
        }
    for (int j = 0; j < nx; j++)
        if (!ir_value_valid(g, xs[j]) || !is_float_value(g, xs[j])) {
            ir_set_status(st, KILN_ERR_INVALID_ARGUMENT,
                          "kiln_gradients: xs[%d] is not a valid floating-point value", j);
            return;
        }
    int n0 = g->nnodes, nvals = 0;
    dep = ir_calloc((size_t)n0, sizeof *dep);
    need = ir_calloc((size_t)n0, sizeof *need);
    active = ir_calloc((size_t)n0, sizeof *active);
    t.first = ir_malloc(sizeof *t.first * (size_t)n0);
    if (!dep || !need || !active || !t.first) goto oom;
    for (int i = 0; i < n0; i++) {
        t.first[i] = nvals;
        nvals += g->nodes[i].noutputs;
    }
    t.grad = ir_malloc(sizeof *t.grad * (size_t)(nvals ? nvals : 1));
    if (!t.grad) goto oom;
    for (int i = 0; i < nvals; i++) t.grad[i] = kiln_value_invalid();

    /* dep: depends on some x (nodes only use earlier nodes); need: some y
     * depends on it. */
    for (int j = 0; j < nx; j++) dep[xs[j].node] = true;
    for (int i = 0; i < n0; i++) {
        const ir_node *n = &g->nodes[i];
        if (ir_op_def(n->op)->flags & IR_OPF_NOT_DIFFERENTIABLE) continue;
        for (int k = 0; k < n->ninputs && !dep[i]; k++) dep[i] = dep[n->inputs[k].node];
    }
    for (int j = 0; j < ny; j++) need[ys[j].node] = true;
    for (int i = n0 - 1; i >= 0; i--) {
        if (!need[i]) continue;
        const ir_node *n = &g->nodes[i];
        for (int k = 0; k < n->ninputs; k++) need[n->inputs[k].node] = true;
    }
    for (int i = 0; i < n0; i++) {
        const ir_node *n = &g->nodes[i];
        bool dep_in = false;
        for (int k = 0; k < n->ninputs; k++) dep_in |= dep[n->inputs[k].node];
        active[i] = dep_in && need[i];
    }
    if (check_rules(g, n0, active, dep, st) != KILN_OK) goto out;

    /* Seeds. */
    for (int j = 0; j < ny; j++) {
        if (!is_float_value(g, ys[j]) || !dep[ys[j].node]) continue;
        kiln_value d;
        if (dys) {
            d = dys[j];
        } else {
            ir_type yt = *ir_value_type(g, ys[j]);
            d = filled(g, &yt, 1.0, "a seed of ones for ys", st);
            if (!kiln_value_ok(d)) goto fail_status;
        }
        if (!accumulate(g, &t, ys[j], d)) goto graph_fail;
    }
    for (int i = n0 - 1; i >= 0; i--) {
        if (!active[i]) continue;
        const ir_opdef *def = ir_op_def(g->nodes[i].op);
        if (!def->grad) continue; /* not differentiable, or integer-only */
        bool any = false;
        for (int k = 0; k < g->nodes[i].noutputs; k++) any |= kiln_value_ok(*slot(&t, (kiln_value){i, k}));
        if (!any) continue;
        if (backprop_node(g, i, &t, dep, st) != KILN_OK) goto fail_status;
    }
    for (int j = 0; j < nx; j++) {
        kiln_value d = *slot(&t, xs[j]);
        if (!kiln_value_ok(d)) {
            ir_type xt = *ir_value_type(g, xs[j]);
            d = filled(g, &xt, 0.0, "a zero gradient", st);
            if (!kiln_value_ok(d)) goto fail_status;
        }
        dxs_out[j] = d;
    }
    if (g->error_code) goto graph_fail;
    ir_status_ok(st);
    goto out;
oom:
    ir_set_status(st, KILN_ERR_OUT_OF_MEMORY, "kiln_gradients: out of memory");
    goto fail_status;
graph_fail:
    ir_set_status(st, g->error_code ? g->error_code : KILN_ERR_INTERNAL, "kiln_gradients: %s",
                  g->error ? g->error : "building the gradient failed");
fail_status:
    for (int j = 0; j < nx; j++) dxs_out[j] = kiln_value_invalid();
out:
    ir_free(dep);
    ir_free(need);
    ir_free(active);
    ir_free(t.first);
    ir_free(t.grad);
}
