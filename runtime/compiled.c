/* compiled.c -- the compiled backend of sessions: a program per run
 * signature (fed values and their shapes, fetches, targets), compiled on
 * first use and cached; each run takes an arena from the program's pool,
 * so concurrent runs never share scratch memory. */
#include <stdio.h>
#include <string.h>

#include "rt_jit.h"
#include "rt_pool.h"

struct rt_compiled {
    rt_compiled *next;
    /* the signature */
    int ninputs, noutputs, ntargets;
    kiln_value *inputs, *outputs, *targets;
    ir_type *input_types;
    cg_program *prog;
    /* free arenas */
    pthread_mutex_t arena_lock;
    void **arenas;
    int narenas, cap;
};

static void compiled_free(rt_compiled *c)
{
    if (!c) return;
    for (int i = 0; i < c->narenas; i++) ir_free_aligned(c->arenas[i]);
    ir_free(c->arenas);
    pthread_mutex_destroy(&c->arena_lock);
    cg_program_free(c->prog);
    ir_free(c->inputs);
    ir_free(c->outputs);
    ir_free(c->targets);
    ir_free(c->input_types);
    ir_free(c);
}

int rt_compiled_init(kiln_session *s, kiln_status *status)
{
    if (pthread_mutex_init(&s->cache_lock, NULL) != 0)
        return ir_set_status(status, KILN_ERR_INTERNAL, "kiln_session_new: cannot create a lock");
    s->jit = rt_jit_new(status);
    if (!s->jit) {
        pthread_mutex_destroy(&s->cache_lock);
        return status ? status->code : KILN_ERR_INTERNAL;
    }
    s->pool = rt_pool_new(s->opts.threads); /* NULL (serial) if threads cannot start */
    return KILN_OK;
}

void rt_compiled_free(kiln_session *s)
{
    if (!s->jit) return;
    for (rt_compiled *c = s->cache, *next; c; c = next) {
        next = c->next;
        compiled_free(c);
    }
    s->cache = NULL;
    rt_pool_free(s->pool);
    s->pool = NULL;
    rt_jit_free(s->jit);
    s->jit = NULL;
    pthread_mutex_destroy(&s->cache_lock);
}

static bool same_values(const kiln_value *a, const kiln_value *b, int n)
{
    for (int i = 0; i < n; i++)
        if (a[i].node != b[i].node || a[i].index != b[i].index) return false;
    return true;
}

static bool matches(const rt_compiled *c, const rt_run_request *r)
{
    if (c->ninputs != r->ninputs || c->noutputs != r->noutputs || c->ntargets != r->ntargets) return false;
    if (!same_values(c->inputs, r->inputs, r->ninputs) || !same_values(c->outputs, r->outputs, r->noutputs) ||
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

/* Finds or compiles the program for r (cache_lock held). */
static rt_compiled *get_program(kiln_session *s, const rt_run_request *r, kiln_status *status)
{
    for (rt_compiled *c = s->cache; c; c = c->next)
        if (matches(c, r)) return c;
    rt_compiled *c = ir_calloc(1, sizeof *c);
    if (!c) goto oom;
    if (pthread_mutex_init(&c->arena_lock, NULL) != 0) {
        ir_free(c);
        goto oom;
    }
    c->ninputs = r->ninputs;
    c->noutputs = r->noutputs;
    c->ntargets = r->ntargets;
    c->inputs = dup_array(r->inputs, (size_t)r->ninputs, sizeof(kiln_value));
    c->outputs = dup_array(r->outputs, (size_t)r->noutputs, sizeof(kiln_value));
    c->targets = dup_array(r->targets, (size_t)r->ntargets, sizeof(kiln_value));
    c->input_types = ir_malloc(sizeof(ir_type) * ((size_t)r->ninputs + 1));
    if (!c->inputs || !c->outputs || !c->targets || !c->input_types) {
        compiled_free(c);
        goto oom;
    }
    for (int i = 0; i < r->ninputs; i++) ir_tensor_type(r->input_values[i], &c->input_types[i]);
    static atomic_int program_ids;
    char entry[48];
    snprintf(entry, sizeof entry, "kiln_entry_%d", atomic_fetch_add(&program_ids, 1));
    cg_options o = {.opt_level = s->opts.opt_level >= 0 ? s->opts.opt_level : 2, .cpu = "native", .entry_name = entry,
                    .pipeline = s->opts.passes, .fold_limit = s->opts.fold_limit};
    cg_signature sig = {r->ninputs, r->inputs, c->input_types, r->noutputs, r->outputs, r->ntargets, r->targets};
    c->prog = cg_compile(s->graph, &sig, &o, status);
    if (!c->prog || rt_jit_load(s->jit, c->prog, status)) {
        compiled_free(c);
        return NULL;
    }
    c->next = s->cache;
    s->cache = c;
    return c;
oom:
    ir_set_status(status, KILN_ERR_OUT_OF_MEMORY, "kiln_session_run: out of memory");
    return NULL;
}

static void *take_arena(rt_compiled *c)
{
    void *a = NULL;
    pthread_mutex_lock(&c->arena_lock);
    if (c->narenas > 0) a = c->arenas[--c->narenas];
    pthread_mutex_unlock(&c->arena_lock);
    return a ? a : ir_malloc_aligned(c->prog->arena_size ? c->prog->arena_size : CG_ALIGN);
}

static void give_arena(rt_compiled *c, void *a)
{
    pthread_mutex_lock(&c->arena_lock);
    if (c->narenas == c->cap) {
        int cap = c->cap ? c->cap * 2 : 4;
        void **arr = ir_realloc(c->arenas, sizeof(void *) * (size_t)cap);
        if (!arr) {
            pthread_mutex_unlock(&c->arena_lock);
            ir_free_aligned(a);
            return;
        }
        c->arenas = arr;
        c->cap = cap;
    }
    c->arenas[c->narenas++] = a;
    pthread_mutex_unlock(&c->arena_lock);
}

int rt_compiled_run(kiln_session *s, const rt_run_request *r, kiln_status *status)
{
    int rc = KILN_OK;
    for (int i = 0; i < r->ninputs; i++)
        if ((rc = rt_check_feed(s->graph, r->inputs[i], r->input_values[i], status))) return rc;
    pthread_mutex_lock(&s->cache_lock);
    rt_compiled *c = get_program(s, r, status);
    pthread_mutex_unlock(&s->cache_lock);
    if (!c) return status ? status->code : KILN_ERR_INTERNAL;
    const cg_program *p = c->prog;

    void *small[16];
    size_t nptr = (size_t)p->ninputs + (size_t)p->noutputs + (size_t)p->nvars + 3;
    void **ptrs = nptr <= 16 ? small : ir_malloc(sizeof(void *) * nptr);
    void *arena = take_arena(c);
    if (!ptrs || !arena) {
        if (ptrs != small) ir_free(ptrs);
        if (arena) give_arena(c, arena);
        return ir_set_status(status, KILN_ERR_OUT_OF_MEMORY, "kiln_session_run: out of memory for the arena (%zu bytes)", p->arena_size);
    }
    void **in = ptrs, **out = ptrs + p->ninputs, **vars = out + p->noutputs;
    for (int i = 0; i < p->ninputs; i++) in[i] = r->input_values[i]->data;
    for (int i = 0; i < p->noutputs; i++) {
        r->output_values[i] = ir_tensor_new_type(&p->output_types[i]);
        if (!r->output_values[i]) {
            rc = ir_set_status(status, KILN_ERR_OUT_OF_MEMORY, "kiln_session_run: out of memory for output %d", i);
            goto done;
        }
        out[i] = r->output_values[i]->data;
    }
    if (p->writes_vars) pthread_rwlock_wrlock(&s->vars_lock);
    else pthread_rwlock_rdlock(&s->vars_lock);
    for (int k = 0; k < p->nvars; k++) vars[k] = s->vars[p->var_nodes[k]]->data;
    cg_rt rt = {rt_pool_parallel_for, s->pool, atomic_fetch_add(&s->runs, 1)};
    int32_t code = p->entry(in, out, vars, arena, &rt);
    pthread_rwlock_unlock(&s->vars_lock);
    if (code != 0) rc = cg_program_error(p, code, status);
    else ir_status_ok(status);
done:
    give_arena(c, arena);
    if (ptrs != small) ir_free(ptrs);
    if (rc != KILN_OK)
        for (int i = 0; i < r->noutputs; i++) {
            kiln_tensor_free(r->output_values[i]);
            r->output_values[i] = NULL;
        }
    return rc;
}
