/* cuda_session.c -- sessions on the GPU (kiln_session_options.device =
 * KILN_DEVICE_CUDA): the driver opened once per session, the variables
 * copied to the device once and kept there, and per run signature a PTX
 * program compiled on first use, loaded and cached. A run copies the fed
 * inputs to the device, launches the kernels and copies the fetches back
 * (cuda.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt_cuda.h"

typedef struct cuda_prog {
    struct cuda_prog *next;
    int ninputs, noutputs, ntargets;
    kiln_value *inputs, *outputs, *targets;
    ir_type *input_types;
    cg_gpu_program *prog;
    rt_cuda_module *mod;
} cuda_prog;

struct rt_cuda_session {
    rt_cuda *cu;
    pthread_mutex_t lock; /* guards cache */
    rt_devptr *vars;      /* per node: its variable's device copy, 0 for others */
    int nnodes;
    cuda_prog *cache;
};

static void prog_free(cuda_prog *c)
{
    if (!c) return;
    rt_cuda_unload(c->mod);
    cg_gpu_program_free(c->prog);
    ir_free(c->inputs);
    ir_free(c->outputs);
    ir_free(c->targets);
    ir_free(c->input_types);
    ir_free(c);
}

void rt_cuda_session_free(kiln_session *s)
{
    struct rt_cuda_session *cs = s->cuda;
    if (!cs) return;
    for (cuda_prog *c = cs->cache, *next; c; c = next) {
        next = c->next;
        prog_free(c);
    }
    for (int i = 0; cs->vars && i < cs->nnodes; i++) rt_cuda_free(cs->cu, cs->vars[i]);
    ir_free(cs->vars);
    rt_cuda_close(cs->cu);
    pthread_mutex_destroy(&cs->lock);
    ir_free(cs);
    s->cuda = NULL;
}

int rt_cuda_session_init(kiln_session *s, kiln_status *status)
{
    struct rt_cuda_session *cs = ir_calloc(1, sizeof *cs);
    if (!cs)
        return ir_set_status(status, KILN_ERR_OUT_OF_MEMORY, "kiln_session_new: out of memory");
    if (pthread_mutex_init(&cs->lock, NULL) != 0) {
        ir_free(cs);
        return ir_set_status(status, KILN_ERR_INTERNAL, "kiln_session_new: cannot create a lock");
    }
    s->cuda = cs;
    const char *lib = getenv("KILN_CUDA_DRIVER"); /* another driver library, for tests */
    cs->cu = rt_cuda_open(lib && *lib ? lib : NULL, 0, status);
    if (!cs->cu) goto fail;
    /* cuBLAS only when the graph has a product for it */
    for (int i = 0; i < s->graph->nnodes; i++) {
        ir_op op = s->graph->nodes[i].op;
        if (op != IR_OP_MatMul && op != IR_OP_Gemm) continue;
        const char *blas = getenv("KILN_CUBLAS"); /* another cuBLAS library, for tests */
        if (rt_cuda_load_cublas(cs->cu, blas && *blas ? blas : NULL, status)) goto fail;
        break;
    }
    cs->nnodes = s->nnodes;
    cs->vars = ir_calloc((size_t)s->nnodes + 1, sizeof(rt_devptr));
    if (!cs->vars) {
        ir_set_status(status, KILN_ERR_OUT_OF_MEMORY, "kiln_session_new: out of memory");
        goto fail;
    }
    for (int i = 0; i < s->nnodes; i++) {
        const kiln_tensor *t = s->vars[i];
        if (!t) continue;
        size_t n = kiln_tensor_nbytes(t);
        if (rt_cuda_alloc(cs->cu, n, &cs->vars[i], status) ||
            rt_cuda_upload(cs->cu, cs->vars[i], t->data, n, status))
            goto fail;
    }
    return KILN_OK;
fail:
    rt_cuda_session_free(s);
    return status ? status->code : KILN_ERR_INTERNAL;
}

int rt_cuda_session_upload_vars(kiln_session *s, kiln_status *status)
{
    struct rt_cuda_session *cs = s->cuda;
    for (int i = 0; i < cs->nnodes; i++) {
        if (!cs->vars[i]) continue;
        int rc = rt_cuda_upload(cs->cu, cs->vars[i], s->vars[i]->data,
                                kiln_tensor_nbytes(s->vars[i]), status);
        if (rc) return rc;
    }
    return KILN_OK;
}

static bool same_values(const kiln_value *a, const kiln_value *b, int n)
{
    for (int i = 0; i < n; i++)
        if (a[i].node != b[i].node || a[i].index != b[i].index) return false;
    return true;
}

static bool matches(const cuda_prog *c, const rt_run_request *r)
{
    if (c->ninputs != r->ninputs || c->noutputs != r->noutputs || c->ntargets != r->ntargets)
        return false;
    if (!same_values(c->inputs, r->inputs, r->ninputs) ||
        !same_values(c->outputs, r->outputs, r->noutputs) ||
        !same_values(c->targets, r->targets, r->ntargets))
        return false;
    for (int i = 0; i < r->ninputs; i++) {
        ir_type t;
        ir_tensor_type(r->input_values[i], &t);
        if (!ir_type_equal(&t, &c->input_types[i])) return false;
    }
    return true;
}

static void *dup_array(const void *src, size_t n, size_t size)
{
    void *d = ir_malloc(n * size + 1);
    if (d && n) memcpy(d, src, n * size);
    return d;
}

/* The newest sm the code generator knows that the device runs. */
static int target_sm(int device_sm)
{
    static const int known[] = {90, 89, 87, 86, 80};
    for (int i = 0; i < 5; i++)
        if (device_sm >= known[i]) return known[i];
    return 80;
}

/* Finds or compiles and loads the program for r (lock held). */
static cuda_prog *get_program(kiln_session *s, const rt_run_request *r, kiln_status *status)
{
    struct rt_cuda_session *cs = s->cuda;
    for (cuda_prog *c = cs->cache; c; c = c->next)
        if (matches(c, r)) return c;
    cuda_prog *c = ir_calloc(1, sizeof *c);
    if (!c) goto oom;
    c->ninputs = r->ninputs;
    c->noutputs = r->noutputs;
    c->ntargets = r->ntargets;
    c->inputs = dup_array(r->inputs, (size_t)r->ninputs, sizeof(kiln_value));
    c->outputs = dup_array(r->outputs, (size_t)r->noutputs, sizeof(kiln_value));
    c->targets = dup_array(r->targets, (size_t)r->ntargets, sizeof(kiln_value));
    c->input_types = ir_malloc(sizeof(ir_type) * ((size_t)r->ninputs + 1));
    if (!c->inputs || !c->outputs || !c->targets || !c->input_types) {
        prog_free(c);
        goto oom;
    }
    for (int i = 0; i < r->ninputs; i++) ir_tensor_type(r->input_values[i], &c->input_types[i]);
    cg_options o = {.opt_level = s->opts.opt_level,
                    .pipeline = s->opts.passes,
                    .fold_limit = s->opts.fold_limit};
    cg_signature sig = {r->ninputs, r->inputs,   c->input_types, r->noutputs,
                        r->outputs, r->ntargets, r->targets};
    c->prog = cg_gpu_compile(s->graph, &sig, &o, target_sm(rt_cuda_sm(cs->cu)), status);
    if (!c->prog || !(c->mod = rt_cuda_load(cs->cu, c->prog, status))) {
        prog_free(c);
        return NULL;
    }
    c->next = cs->cache;
    cs->cache = c;
    return c;
oom:
    ir_set_status(status, KILN_ERR_OUT_OF_MEMORY, "kiln_session_run: out of memory");
    return NULL;
}

int rt_cuda_session_run(kiln_session *s, const rt_run_request *r, kiln_status *status)
{
    struct rt_cuda_session *cs = s->cuda;
    int rc = KILN_OK;
    for (int i = 0; i < r->ninputs; i++)
        if ((rc = rt_check_feed(s->graph, r->inputs[i], r->input_values[i], status))) return rc;
    pthread_mutex_lock(&cs->lock);
    cuda_prog *c = get_program(s, r, status);
    pthread_mutex_unlock(&cs->lock);
    if (!c) return status ? status->code : KILN_ERR_INTERNAL;
    const cg_gpu_program *p = c->prog;
    const void **in = ir_calloc((size_t)p->ninputs + 1, sizeof(void *));
    void **out = ir_calloc((size_t)p->noutputs + 1, sizeof(void *));
    rt_devptr *vars = ir_calloc((size_t)p->nvars + 1, sizeof(rt_devptr));
    if (!in || !out || !vars) {
        rc = ir_set_status(status, KILN_ERR_OUT_OF_MEMORY, "kiln_session_run: out of memory");
        goto done;
    }
    for (int i = 0; i < p->ninputs; i++) in[i] = r->input_values[i]->data;
    for (int i = 0; i < p->noutputs; i++) {
        r->output_values[i] = ir_tensor_new_type(&p->output_types[i]);
        if (!r->output_values[i]) {
            rc = ir_set_status(status, KILN_ERR_OUT_OF_MEMORY,
                               "kiln_session_run: out of memory for output %d", i);
            goto done;
        }
        out[i] = r->output_values[i]->data;
    }
    for (int k = 0; k < p->nvars; k++) vars[k] = cs->vars[p->var_nodes[k]];
    /* A restore rewrites the variables; a run that assigns them is
     * serialized with every other run and copies them back to the host,
     * so kiln_session_variable and checkpoints see the new values. */
    if (p->writes_vars)
        pthread_rwlock_wrlock(&s->vars_lock);
    else
        pthread_rwlock_rdlock(&s->vars_lock);
    rc = rt_cuda_run(c->mod, in, out, vars, status);
    for (int k = 0; rc == KILN_OK && p->writes_vars && k < p->nvars; k++) {
        kiln_tensor *t = s->vars[p->var_nodes[k]];
        rc = rt_cuda_download(cs->cu, t->data, vars[k], kiln_tensor_nbytes(t), status);
    }
    pthread_rwlock_unlock(&s->vars_lock);
done:
    ir_free(in);
    ir_free(out);
    ir_free(vars);
    if (rc != KILN_OK)
        for (int i = 0; i < r->noutputs; i++) {
            kiln_tensor_free(r->output_values[i]);
            r->output_values[i] = NULL;
        }
    return rc;
}
