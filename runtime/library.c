/* library.c -- sessions on compiled libraries: kiln_session_load opens a
 * shared object made by kiln_compile_library, checks its ABI version, and
 * runs its entry function with the session's own copy of the variables, an
 * arena per run and the session's thread pool. The library's inputs and
 * outputs appear as named placeholders of a small graph the session owns,
 * so kiln_session_find and kiln_session_run work as for any session. */
#include <dlfcn.h>
#include <string.h>
#include <unistd.h>

#include "rt_pool.h"
#include "runtime.h"

struct rt_model_desc {
    cg_model_desc d;
};

static const cg_model_desc *desc_of(const kiln_session *s) { return &s->desc->d; }

static void free_arenas(kiln_session *s)
{
    for (int i = 0; i < s->narenas; i++) ir_free_aligned(s->arenas[i]);
    ir_free(s->arenas);
    s->arenas = NULL;
    s->narenas = s->cap_arenas = 0;
}

void rt_library_free(kiln_session *s)
{
    if (!s->dl) return;
    for (int k = 0; s->vars && k < desc_of(s)->nvariables; k++) kiln_tensor_free(s->vars[k]);
    ir_free(s->vars);
    s->vars = NULL;
    free_arenas(s);
    pthread_mutex_destroy(&s->arena_lock);
    rt_pool_free(s->pool);
    s->pool = NULL;
    kiln_graph_free(s->own_graph);
    s->own_graph = NULL;
    dlclose(s->dl);
    s->dl = NULL;
}

static bool valid_desc_types(const cg_tensor_desc *t, int n)
{
    for (int i = 0; i < n; i++) {
        if (!t[i].name || !ir_dtype_valid(t[i].dtype) || t[i].rank < 0 || t[i].rank > IR_MAX_RANK) return false;
        for (int d = 0; d < t[i].rank; d++)
            if (t[i].dims[d] < 0) return false;
    }
    return true;
}

kiln_session *kiln_session_load(const char *path, kiln_status *status)
{
    if (!path) {
        ir_set_status(status, KILN_ERR_INVALID_ARGUMENT, "kiln_session_load: path is NULL");
        return NULL;
    }
    if (access(path, R_OK) != 0) {
        ir_set_status(status, KILN_ERR_NOT_FOUND, "kiln_session_load: cannot read '%s'", path);
        return NULL;
    }
    /* dlopen needs a slash to not search the library path. */
    char *full = strchr(path, '/') ? ir_strdup(path) : ir_asprintf("./%s", path);
    if (!full) {
        ir_set_status(status, KILN_ERR_OUT_OF_MEMORY, "kiln_session_load: out of memory");
        return NULL;
    }
    void *dl = dlopen(full, RTLD_NOW | RTLD_LOCAL);
    ir_free(full);
    if (!dl) {
        const char *e = dlerror();
        ir_set_status(status, KILN_ERR_INVALID_ARGUMENT, "kiln_session_load: '%s' is not a loadable library: %s", path, e ? e : "?");
        return NULL;
    }
    const cg_model_desc *(*describe)(void);
    *(void **)&describe = dlsym(dl, "kiln_model_describe");
    if (!describe) {
        dlclose(dl);
        ir_set_status(status, KILN_ERR_INVALID_ARGUMENT,
                      "kiln_session_load: '%s' is not a kiln model (no kiln_model_describe)", path);
        return NULL;
    }
    const cg_model_desc *d = describe();
    if (!d || d->abi_version != CG_ABI_VERSION) {
        int version = d ? d->abi_version : -1;
        dlclose(dl);
        ir_set_status(status, KILN_ERR_FAILED_PRECONDITION,
                      "kiln_session_load: '%s' was built for kiln ABI version %d; this kiln runs version %d: "
                      "compile the model again",
                      path, version, CG_ABI_VERSION);
        return NULL;
    }
    if (!d->entry || !valid_desc_types(d->inputs, d->ninputs) || !valid_desc_types(d->outputs, d->noutputs) ||
        !valid_desc_types(d->variables, d->nvariables) || d->noutputs < 1) {
        dlclose(dl);
        ir_set_status(status, KILN_ERR_INVALID_ARGUMENT, "kiln_session_load: '%s' has a malformed description", path);
        return NULL;
    }

    kiln_session *s = ir_calloc(1, sizeof *s);
    kiln_graph *g = kiln_graph_new();
    if (!s || !g) goto oom;
    s->dl = dl;
    s->desc = (const struct rt_model_desc *)d;
    s->own_graph = g;
    s->graph = g;
    kiln_session_options_init(&s->opts);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    s->opts.threads = ncpu > 0 ? (int)ncpu : 1;
    for (int i = 0; i < d->ninputs; i++)
        kiln_placeholder(g, d->inputs[i].name, (kiln_dtype)d->inputs[i].dtype, d->inputs[i].rank, d->inputs[i].dims);
    for (int i = 0; i < d->noutputs; i++)
        kiln_placeholder(g, d->outputs[i].name, (kiln_dtype)d->outputs[i].dtype, d->outputs[i].rank, d->outputs[i].dims);
    if (kiln_graph_error(g)) {
        ir_set_status(status, KILN_ERR_INVALID_ARGUMENT, "kiln_session_load: '%s': %s", path, kiln_graph_error(g));
        goto fail;
    }
    s->nnodes = g->nnodes;
    s->vars = ir_calloc((size_t)d->nvariables + 1, sizeof(kiln_tensor *));
    if (!s->vars) goto oom;
    for (int k = 0; k < d->nvariables; k++) {
        s->vars[k] = kiln_tensor_from_data((kiln_dtype)d->variables[k].dtype, d->variables[k].rank,
                                           d->variables[k].dims, d->variable_data[k]);
        if (!s->vars[k]) goto oom;
    }
    if (pthread_rwlock_init(&s->vars_lock, NULL) || pthread_mutex_init(&s->arena_lock, NULL)) {
        ir_set_status(status, KILN_ERR_INTERNAL, "kiln_session_load: cannot create a lock");
        goto fail;
    }
    s->pool = rt_pool_new(s->opts.threads);
    ir_status_ok(status);
    return s;
oom:
    ir_set_status(status, KILN_ERR_OUT_OF_MEMORY, "kiln_session_load: out of memory");
fail:
    if (s && s->vars)
        for (int k = 0; k < d->nvariables; k++) kiln_tensor_free(s->vars[k]);
    if (s) ir_free(s->vars);
    ir_free(s);
    kiln_graph_free(g);
    dlclose(dl);
    return NULL;
}

static void *take_arena(kiln_session *s)
{
    void *a = NULL;
    pthread_mutex_lock(&s->arena_lock);
    if (s->narenas > 0) a = s->arenas[--s->narenas];
    pthread_mutex_unlock(&s->arena_lock);
    return a ? a : ir_malloc_aligned(desc_of(s)->arena_bytes ? desc_of(s)->arena_bytes : CG_ALIGN);
}

static void give_arena(kiln_session *s, void *a)
{
    pthread_mutex_lock(&s->arena_lock);
    if (s->narenas == s->cap_arenas) {
        int cap = s->cap_arenas ? s->cap_arenas * 2 : 4;
        void **arr = ir_realloc(s->arenas, sizeof(void *) * (size_t)cap);
        if (!arr) {
            pthread_mutex_unlock(&s->arena_lock);
            ir_free_aligned(a);
            return;
        }
        s->arenas = arr;
        s->cap_arenas = cap;
    }
    s->arenas[s->narenas++] = a;
    pthread_mutex_unlock(&s->arena_lock);
}

int rt_library_run(kiln_session *s, const rt_run_request *r, kiln_status *status)
{
    const cg_model_desc *d = desc_of(s);
    int ni = d->ninputs, no = d->noutputs, rc = KILN_OK;
    if (r->ntargets > 0)
        return ir_set_status(status, KILN_ERR_INVALID_ARGUMENT,
                             "kiln_session_run: a compiled library has no targets; fetch its outputs");
    void **ptrs = ir_calloc((size_t)(ni + 2 * no + d->nvariables) + 1, sizeof(void *));
    kiln_tensor **outs = ir_calloc((size_t)no + 1, sizeof(kiln_tensor *));
    void *arena = NULL;
    if (!ptrs || !outs) goto oom;
    void **in = ptrs, **out = ptrs + ni, **vars = out + no;
    for (int i = 0; i < r->ninputs; i++) {
        if (r->inputs[i].node >= ni) {
            rc = ir_set_status(status, KILN_ERR_INVALID_ARGUMENT,
                               "kiln_session_run: '%s' is an output of the library and cannot be fed",
                               s->graph->nodes[r->inputs[i].node].name);
            goto done;
        }
        if ((rc = rt_check_feed(s->graph, r->inputs[i], r->input_values[i], status))) goto done;
        in[r->inputs[i].node] = r->input_values[i]->data;
    }
    for (int i = 0; i < ni; i++)
        if (!in[i]) {
            char t[IR_TYPE_STR_MAX];
            rc = ir_set_status(status, KILN_ERR_INVALID_ARGUMENT, "Placeholder '%s' (%s) must be fed: a compiled library needs every input",
                               s->graph->nodes[i].name, ir_type_str(&s->graph->nodes[i].outputs[0], t, sizeof t));
            goto done;
        }
    for (int i = 0; i < r->noutputs; i++)
        if (r->outputs[i].node < ni) {
            rc = ir_set_status(status, KILN_ERR_INVALID_ARGUMENT,
                               "kiln_session_run: '%s' is an input of the library, not an output",
                               s->graph->nodes[r->outputs[i].node].name);
            goto done;
        }
    for (int i = 0; i < no; i++) {
        outs[i] = ir_tensor_new_type(&s->graph->nodes[ni + i].outputs[0]);
        if (!outs[i]) goto oom;
        out[i] = outs[i]->data;
    }
    if (!(arena = take_arena(s))) goto oom;
    pthread_rwlock_rdlock(&s->vars_lock);
    for (int k = 0; k < d->nvariables; k++) vars[k] = s->vars[k]->data;
    cg_rt rt = {rt_pool_parallel_for, s->pool, atomic_fetch_add(&s->runs, 1)};
    int32_t code = d->entry(in, out, vars, arena, &rt);
    pthread_rwlock_unlock(&s->vars_lock);
    give_arena(s, arena);
    if (code != 0) {
        rc = ir_set_status(status, KILN_ERR_INVALID_ARGUMENT, "%s", d->error ? d->error(code) : "the model failed");
        goto done;
    }
    /* Hand out the fetched outputs (a second fetch of one output is a copy). */
    for (int i = 0; i < r->noutputs; i++) {
        int k = r->outputs[i].node - ni;
        if (outs[k]) {
            r->output_values[i] = outs[k];
            outs[k] = NULL;
        } else {
            int j = 0;
            while (r->outputs[j].node != r->outputs[i].node) j++; /* an earlier fetch of it */
            if (!(r->output_values[i] = kiln_tensor_copy(r->output_values[j]))) goto oom;
        }
    }
    ir_status_ok(status);
    goto done;
oom:
    rc = ir_set_status(status, KILN_ERR_OUT_OF_MEMORY, "kiln_session_run: out of memory");
done:
    if (rc != KILN_OK)
        for (int i = 0; i < r->noutputs; i++) {
            kiln_tensor_free(r->output_values[i]);
            r->output_values[i] = NULL;
        }
    for (int i = 0; outs && i < no; i++) kiln_tensor_free(outs[i]);
    ir_free(outs);
    ir_free(ptrs);
    return rc;
}

int rt_library_io(const kiln_session *s, bool inputs, kiln_value *out, int max)
{
    const cg_model_desc *d = desc_of(s);
    int n = inputs ? d->ninputs : d->noutputs, first = inputs ? 0 : d->ninputs;
    for (int i = 0; i < n && i < max; i++) out[i] = (kiln_value){first + i, 0};
    return n;
}
