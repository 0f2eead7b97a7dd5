/* session.c -- sessions: variables, option handling, validating a run
 * request, and dispatch to a backend. */
#include <string.h>
#include <unistd.h>

#include "rt_cuda.h"
#include "runtime.h"

void kiln_session_options_init(kiln_session_options *o)
{
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->backend = KILN_BACKEND_DEFAULT;
    o->threads = 0;
    o->opt_level = 2;
}

kiln_session *kiln_session_new(kiln_graph *g, const kiln_session_options *opts,
                               kiln_status *status)
{
    if (!g) {
        ir_set_status(status, KILN_ERR_INVALID_ARGUMENT, "kiln_session_new: graph is NULL");
        return NULL;
    }
    if (g->error_code) {
        ir_set_status(status, g->error_code, "the graph has an error: %s", kiln_graph_error(g));
        return NULL;
    }
    kiln_session_options o;
    kiln_session_options_init(&o);
    if (opts) o = *opts;
    if (o.backend != KILN_BACKEND_DEFAULT && o.backend != KILN_BACKEND_REFERENCE) {
        ir_set_status(status, KILN_ERR_INVALID_ARGUMENT, "kiln_session_new: unknown backend %d",
                      (int)o.backend);
        return NULL;
    }
    if (o.device != KILN_DEVICE_CPU && o.device != KILN_DEVICE_CUDA) {
        ir_set_status(status, KILN_ERR_INVALID_ARGUMENT, "kiln_session_new: unknown device %d", (int)o.device);
        return NULL;
    }
    if (o.device == KILN_DEVICE_CUDA && o.backend == KILN_BACKEND_REFERENCE) {
        ir_set_status(status, KILN_ERR_INVALID_ARGUMENT,
                      "kiln_session_new: the reference backend runs on the CPU only");
        return NULL;
    }
    if (o.threads < 0) {
        ir_set_status(status, KILN_ERR_INVALID_ARGUMENT,
                      "kiln_session_new: threads is %d; use 0 for the number of cores", o.threads);
        return NULL;
    }
    if (o.opt_level < 0 || o.opt_level > 3) {
        ir_set_status(status, KILN_ERR_INVALID_ARGUMENT,
                      "kiln_session_new: opt_level is %d; it must be 0 to 3", o.opt_level);
        return NULL;
    }
    if (o.threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        o.threads = n > 0 ? (int)n : 1;
    }
    kiln_session *s = ir_calloc(1, sizeof *s);
    if (!s) goto oom;
    s->graph = g;
    s->nnodes = g->nnodes;
    s->opts = o;
    s->vars = ir_calloc((size_t)(g->nnodes ? g->nnodes : 1), sizeof(kiln_tensor *));
    if (!s->vars) goto oom;
    for (int i = 0; i < g->nnodes; i++) {
        if (g->nodes[i].op != IR_OP_Variable) continue;
        s->vars[i] = kiln_tensor_copy(ir_node_tensor(&g->nodes[i], "value"));
        if (!s->vars[i]) goto oom;
    }
    if (pthread_rwlock_init(&s->vars_lock, NULL) != 0) {
        ir_set_status(status, KILN_ERR_INTERNAL, "kiln_session_new: cannot create a lock");
        s->nnodes = g->nnodes;
        for (int i = 0; i < s->nnodes; i++) kiln_tensor_free(s->vars[i]);
        ir_free(s->vars);
        ir_free(s);
        return NULL;
    }
    atomic_init(&s->runs, 0);
    if (o.device == KILN_DEVICE_CUDA ? rt_cuda_session_init(s, status) != KILN_OK
                                     : o.backend == KILN_BACKEND_DEFAULT && rt_compiled_init(s, status) != KILN_OK) {
        kiln_session_free(s);
        return NULL;
    }
    ir_status_ok(status);
    return s;

oom:
    if (s) {
        for (int i = 0; s->vars && i < g->nnodes; i++) kiln_tensor_free(s->vars[i]);
        ir_free(s->vars);
        ir_free(s);
    }
    ir_set_status(status, KILN_ERR_OUT_OF_MEMORY, "kiln_session_new: out of memory");
    return NULL;
}

void kiln_session_free(kiln_session *s)
{
    if (!s) return;
    rt_compiled_free(s);
    rt_cuda_session_free(s);
    rt_library_free(s);
    for (int i = 0; s->vars && i < s->nnodes; i++) kiln_tensor_free(s->vars[i]);
    ir_free(s->vars);
    pthread_rwlock_destroy(&s->vars_lock);
    ir_free(s);
}

/* Checks that v is an output of a node the session can see. */
static int check_value(const kiln_session *s, kiln_value v, const char *what, int i,
                       kiln_status *status)
{
    if (v.node < 0 || v.node >= s->nnodes || v.index < 0 ||
        v.index >= s->graph->nodes[v.node].noutputs)
        return ir_set_status(status, KILN_ERR_INVALID_ARGUMENT,
                             "kiln_session_run: %s %d (%d:%d) is not a value of the session's "
                             "graph%s",
                             what, i, (int)v.node, (int)v.index,
                             v.node >= s->nnodes && v.node < s->graph->nnodes
                                 ? " (the node was added after the session was created)"
                                 : "");
    return KILN_OK;
}

void kiln_session_run(kiln_session *s, const kiln_value *inputs, kiln_tensor *const *input_values,
                      int ninputs, const kiln_value *outputs, kiln_tensor **output_values,
                      int noutputs, const kiln_value *targets, int ntargets, kiln_status *status)
{
    for (int i = 0; output_values && i < noutputs; i++) output_values[i] = NULL;
    if (!s) {
        ir_set_status(status, KILN_ERR_INVALID_ARGUMENT, "kiln_session_run: session is NULL");
        return;
    }
    if (ninputs < 0 || noutputs < 0 || ntargets < 0 || (ninputs && (!inputs || !input_values)) ||
        (noutputs && (!outputs || !output_values)) || (ntargets && !targets)) {
        ir_set_status(status, KILN_ERR_INVALID_ARGUMENT,
                      "kiln_session_run: a count is negative or an array is NULL (inputs %d, "
                      "outputs %d, targets %d)",
                      ninputs, noutputs, ntargets);
        return;
    }
    for (int i = 0; i < ninputs; i++) {
        if (check_value(s, inputs[i], "input", i, status)) return;
        if (!input_values[i]) {
            const ir_node *n = &s->graph->nodes[inputs[i].node];
            ir_set_status(status, KILN_ERR_INVALID_ARGUMENT,
                          "kiln_session_run: the tensor fed to %s '%s' is NULL",
                          ir_op_def(n->op)->name, n->name);
            return;
        }
        for (int j = 0; j < i; j++) {
            if (inputs[j].node == inputs[i].node && inputs[j].index == inputs[i].index) {
                ir_set_status(status, KILN_ERR_INVALID_ARGUMENT,
                              "kiln_session_run: '%s' is fed twice (inputs %d and %d)",
                              s->graph->nodes[inputs[i].node].name, j, i);
                return;
            }
        }
    }
    for (int i = 0; i < noutputs; i++)
        if (check_value(s, outputs[i], "output", i, status)) return;
    for (int i = 0; i < ntargets; i++)
        if (check_value(s, targets[i], "target", i, status)) return;

    rt_run_request req = {inputs, input_values, ninputs, outputs, output_values, noutputs,
                          targets, ntargets};
    if (s->dl) rt_library_run(s, &req, status);
    else if (s->cuda) rt_cuda_session_run(s, &req, status);
    else if (s->jit) rt_compiled_run(s, &req, status);
    else rt_ref_run(s, &req, status);
}

kiln_tensor *kiln_session_variable(kiln_session *s, kiln_value v, kiln_status *status)
{
    if (!s || s->dl || v.node < 0 || v.node >= s->nnodes || !s->vars[v.node]) {
        ir_set_status(status, KILN_ERR_INVALID_ARGUMENT,
                      "kiln_session_variable: the value is not a variable of the session");
        return NULL;
    }
    pthread_rwlock_rdlock(&s->vars_lock);
    kiln_tensor *t = kiln_tensor_copy(s->vars[v.node]);
    pthread_rwlock_unlock(&s->vars_lock);
    if (!t) ir_set_status(status, KILN_ERR_OUT_OF_MEMORY, "kiln_session_variable: out of memory");
    else ir_status_ok(status);
    return t;
}

kiln_value kiln_session_find(const kiln_session *s, const char *name)
{
    if (!s || !name) return kiln_value_invalid();
    kiln_value v = kiln_graph_find(s->graph, name);
    return kiln_value_ok(v) && v.node < s->nnodes ? v : kiln_value_invalid();
}

const kiln_graph *kiln_session_graph(const kiln_session *s) { return s ? s->graph : NULL; }

int kiln_session_inputs(const kiln_session *s, kiln_value *out, int max)
{
    if (!s) return 0;
    if (s->dl) return rt_library_io(s, true, out, max);
    int n = 0;
    for (int i = 0; i < s->nnodes; i++) {
        if (s->graph->nodes[i].op != IR_OP_Placeholder) continue;
        if (n < max) out[n] = (kiln_value){i, 0};
        n++;
    }
    return n;
}

int kiln_session_outputs(const kiln_session *s, kiln_value *out, int max)
{
    if (!s) return 0;
    if (s->dl) return rt_library_io(s, false, out, max);
    return kiln_graph_outputs(s->graph, out, max);
}
