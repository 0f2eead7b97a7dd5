/* executor.c -- the reference executor: runs the nodes a request needs, in
 * graph order, with the reference kernels, freeing each intermediate after
 * its last use. It is the oracle every compiled path is tested against. */
#include <string.h>

#include "runtime.h"

typedef struct {
    kiln_session *s;
    const kiln_graph *g;
    const rt_run_request *req;
    int *out_base;        /* per node: index of its output 0 in vals */
    kiln_tensor **vals;   /* per value: its tensor while live */
    int *uses;            /* per value: consumers still to run (+ fetches) */
    int *feed;            /* per value: index of its feed, or -1 */
    unsigned char *needed;
    uint64_t run;
} exec_state;

/* A tensor header over someone else's data. */
static kiln_tensor *borrow(const kiln_tensor *t)
{
    kiln_tensor *v = ir_malloc(sizeof *v);
    if (!v) return NULL;
    *v = *t;
    v->borrowed = true;
    return v;
}

static int slot(const exec_state *st, kiln_value v) { return st->out_base[v.node] + v.index; }

/* Does the fed tensor match the type the graph declares for v? */
int rt_check_feed(const kiln_graph *g, kiln_value v, const kiln_tensor *t, kiln_status *status)
{
    const ir_node *n = &g->nodes[v.node];
    const ir_type *want = &n->outputs[v.index];
    bool ok = t->dtype == want->dtype && t->rank == want->rank;
    for (int i = 0; ok && i < want->rank; i++) ok = want->dims[i] < 0 || want->dims[i] == t->dims[i];
    if (ok) return KILN_OK;
    char a[IR_TYPE_STR_MAX], b[IR_TYPE_STR_MAX];
    ir_type got;
    ir_tensor_type(t, &got);
    return ir_set_status(status, KILN_ERR_INVALID_ARGUMENT,
                         "%s '%s' expects %s, but the fed tensor is %s", ir_op_def(n->op)->name,
                         n->name, ir_type_str(want, a, sizeof a), ir_type_str(&got, b, sizeof b));
}

static void mark_needed(exec_state *st, kiln_value v, int *stack, int *sp)
{
    if (st->needed[v.node]) return;
    st->needed[v.node] = 1;
    stack[(*sp)++] = v.node;
}

static bool all_outputs_fed(const exec_state *st, int node)
{
    const ir_node *n = &st->g->nodes[node];
    for (int k = 0; k < n->noutputs; k++)
        if (st->feed[st->out_base[node] + k] < 0) return false;
    return true;
}

static void release(exec_state *st, int sl)
{
    if (--st->uses[sl] > 0) return;
    kiln_tensor_free(st->vals[sl]);
    st->vals[sl] = NULL;
}

/* Runs one computed node: concrete inference, output allocation, kernel. */
static int run_node(exec_state *st, int node, kiln_status *status)
{
    const kiln_graph *g = st->g;
    const ir_node *n = &g->nodes[node];
    const ir_opdef *def = ir_op_def(n->op);
    int rc = KILN_OK;
    ir_type *in = ir_calloc((size_t)(n->ninputs ? n->ninputs : 1), sizeof(ir_type));
    kiln_tensor **inputs = ir_calloc((size_t)(n->ninputs ? n->ninputs : 1), sizeof(kiln_tensor *));
    kiln_tensor **outs = ir_calloc((size_t)n->noutputs, sizeof(kiln_tensor *));
    kiln_tensor *var_view = NULL;
    ir_infer_ctx cx;
    memset(&cx, 0, sizeof cx);
    cx.out = cx.out_small;
    if (!in || !inputs || !outs) goto oom;
    for (int i = 0; i < n->ninputs; i++) {
        inputs[i] = st->vals[slot(st, n->inputs[i])];
        if (!inputs[i]) {
            rc = ir_set_status(status, KILN_ERR_INTERNAL, "%s '%s': input %d was freed early",
                               def->name, n->name, i);
            goto done;
        }
        ir_tensor_type(inputs[i], &in[i]);
    }
    if (n->op == IR_OP_Assign) {
        /* Assign writes the session's variable itself, even when its value
         * was fed for this run. */
        var_view = borrow(st->s->vars[n->inputs[0].node]);
        if (!var_view) goto oom;
        inputs[0] = var_view;
    }
    if (ir_infer_run(&cx, g, n, in, n->ninputs, NULL) != 0) {
        if (!cx.error) goto oom;
        rc = ir_set_status(status, cx.error_code, "%s", cx.error);
        goto done;
    }
    if (cx.noutputs != n->noutputs) {
        rc = ir_set_status(status, KILN_ERR_INTERNAL,
                           "%s '%s': %d outputs at run time, %d when built", def->name, n->name,
                           cx.noutputs, n->noutputs);
        goto done;
    }
    for (int k = 0; k < n->noutputs; k++) {
        const ir_type *built = &n->outputs[k], *now = &cx.out[k];
        bool ok = built->dtype == now->dtype && built->rank == now->rank;
        for (int d = 0; ok && d < now->rank; d++) ok = built->dims[d] < 0 || built->dims[d] == now->dims[d];
        if (!ok) {
            char a[IR_TYPE_STR_MAX], b[IR_TYPE_STR_MAX];
            rc = ir_set_status(status, KILN_ERR_INTERNAL,
                               "%s '%s': output %d is %s at run time but was built as %s",
                               def->name, n->name, k, ir_type_str(now, a, sizeof a),
                               ir_type_str(built, b, sizeof b));
            goto done;
        }
        outs[k] = ir_tensor_new_type(now);
        if (!outs[k]) {
            char a[IR_TYPE_STR_MAX];
            rc = ir_set_status(status, KILN_ERR_OUT_OF_MEMORY,
                               "%s '%s': out of memory for output %d (%s)", def->name, n->name, k,
                               ir_type_str(now, a, sizeof a));
            goto done;
        }
    }
    if (!def->kernel) {
        rc = ir_set_status(status, KILN_ERR_UNIMPLEMENTED, "%s '%s': no reference kernel",
                           def->name, n->name);
        goto done;
    }
    ir_kernel_ctx kx = {.node = n, .def = def, .ninputs = n->ninputs, .in = inputs,
                        .noutputs = n->noutputs, .out = outs,
                        .run_counter = st->run * 0x9e3779b97f4a7c15ull + (uint64_t)node};
    if (def->kernel(&kx) != 0) {
        rc = ir_set_status(status, kx.error_code ? kx.error_code : KILN_ERR_INTERNAL, "%s",
                           kx.error ? kx.error : "kernel failed");
        ir_free(kx.error);
        goto done;
    }
    for (int k = 0; k < n->noutputs; k++) {
        int sl = st->out_base[node] + k;
        st->vals[sl] = outs[k];
        outs[k] = NULL;
    }
    goto done;
oom:
    rc = ir_set_status(status, KILN_ERR_OUT_OF_MEMORY, "%s '%s': out of memory", def->name, n->name);
done:
    ir_infer_ctx_clear(&cx);
    for (int k = 0; outs && k < n->noutputs; k++) kiln_tensor_free(outs[k]);
    ir_free(outs);
    ir_free(inputs);
    ir_free(in);
    kiln_tensor_free(var_view);
    return rc;
}

int rt_ref_run(kiln_session *s, const rt_run_request *req, kiln_status *status)
{
    const kiln_graph *g = s->graph;
    int nn = s->nnodes;
    exec_state st = {.s = s, .g = g, .req = req};
    int rc = KILN_OK, *stack = NULL, nvals = 0;
    bool locked = false;

    st.out_base = ir_malloc(sizeof(int) * (size_t)(nn + 1));
    st.needed = ir_calloc((size_t)(nn ? nn : 1), 1);
    stack = ir_malloc(sizeof(int) * (size_t)(nn ? nn : 1));
    if (!st.out_base || !st.needed || !stack) goto oom;
    for (int i = 0; i < nn; i++) {
        st.out_base[i] = nvals;
        nvals += g->nodes[i].noutputs;
    }
    st.out_base[nn] = nvals;
    st.vals = ir_calloc((size_t)(nvals ? nvals : 1), sizeof(kiln_tensor *));
    st.uses = ir_calloc((size_t)(nvals ? nvals : 1), sizeof(int));
    st.feed = ir_malloc(sizeof(int) * (size_t)(nvals ? nvals : 1));
    if (!st.vals || !st.uses || !st.feed) goto oom;
    for (int i = 0; i < nvals; i++) st.feed[i] = -1;
    for (int i = 0; i < req->ninputs; i++) {
        if ((rc = rt_check_feed(g, req->inputs[i], req->input_values[i], status))) goto done;
        st.feed[slot(&st, req->inputs[i])] = i;
    }

    /* What the fetches and targets need, stopping at fed nodes. */
    int sp = 0;
    for (int i = 0; i < req->noutputs; i++) mark_needed(&st, req->outputs[i], stack, &sp);
    for (int i = 0; i < req->ntargets; i++) mark_needed(&st, req->targets[i], stack, &sp);
    while (sp > 0) {
        int node = stack[--sp];
        if (all_outputs_fed(&st, node)) continue;
        const ir_node *n = &g->nodes[node];
        for (int i = 0; i < n->ninputs; i++) mark_needed(&st, n->inputs[i], stack, &sp);
    }
    bool assigns = false;
    for (int i = 0; i < nn; i++) {
        if (!st.needed[i] || all_outputs_fed(&st, i)) continue;
        const ir_node *n = &g->nodes[i];
        if (n->op == IR_OP_Assign) assigns = true;
        for (int k = 0; k < n->ninputs; k++) st.uses[slot(&st, n->inputs[k])]++;
    }
    for (int i = 0; i < req->noutputs; i++) st.uses[slot(&st, req->outputs[i])]++;

    if (assigns) pthread_rwlock_wrlock(&s->vars_lock);
    else pthread_rwlock_rdlock(&s->vars_lock);
    locked = true;
    st.run = atomic_fetch_add(&s->runs, 1);

    for (int node = 0; node < nn; node++) {
        if (!st.needed[node]) continue;
        const ir_node *n = &g->nodes[node];
        int base = st.out_base[node];
        if (all_outputs_fed(&st, node)) {
            for (int k = 0; k < n->noutputs; k++)
                if (!(st.vals[base + k] = borrow(req->input_values[st.feed[base + k]]))) goto oom;
        } else if (n->op == IR_OP_Placeholder) {
            char t[IR_TYPE_STR_MAX];
            rc = ir_set_status(status, KILN_ERR_INVALID_ARGUMENT,
                               "Placeholder '%s' (%s) must be fed: the requested outputs need it",
                               n->name, ir_type_str(&n->outputs[0], t, sizeof t));
            goto done;
        } else if (n->op == IR_OP_Constant) {
            if (!(st.vals[base] = borrow(ir_node_tensor(n, "value")))) goto oom;
        } else if (n->op == IR_OP_Variable) {
            if (!(st.vals[base] = borrow(s->vars[node]))) goto oom;
        } else {
            if ((rc = run_node(&st, node, status))) goto done;
            for (int k = 0; k < n->noutputs; k++) {
                if (st.feed[base + k] < 0) continue;
                kiln_tensor_free(st.vals[base + k]);
                if (!(st.vals[base + k] = borrow(req->input_values[st.feed[base + k]]))) goto oom;
            }
            for (int i = 0; i < n->ninputs; i++) release(&st, slot(&st, n->inputs[i]));
        }
        /* Outputs nobody reads (a target's, an unused second output) go now. */
        for (int k = 0; k < n->noutputs; k++)
            if (st.uses[base + k] == 0) {
                kiln_tensor_free(st.vals[base + k]);
                st.vals[base + k] = NULL;
            }
    }
    for (int i = 0; i < req->noutputs; i++) {
        const kiln_tensor *t = st.vals[slot(&st, req->outputs[i])];
        if (!t || !(req->output_values[i] = kiln_tensor_copy(t))) goto oom;
    }
    ir_status_ok(status);
    goto done;

oom:
    rc = ir_set_status(status, KILN_ERR_OUT_OF_MEMORY, "kiln_session_run: out of memory");
done:
    if (locked) pthread_rwlock_unlock(&s->vars_lock);
    if (rc != KILN_OK)
        for (int i = 0; i < req->noutputs; i++) {
            kiln_tensor_free(req->output_values[i]);
            req->output_values[i] = NULL;
        }
    for (int i = 0; st.vals && i < nvals; i++) kiln_tensor_free(st.vals[i]);
    ir_free(st.vals);
    ir_free(st.uses);
    ir_free(st.feed);
    ir_free(st.needed);
    ir_free(st.out_base);
    ir_free(stack);
    return rc;
}
