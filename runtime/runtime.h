/* runtime.h -- the runtime's interface between its files: the session
 * layout and the reference executor. Not a public header. */
#ifndef KILN_RUNTIME_H
#define KILN_RUNTIME_H

#include <pthread.h>
#include <stdatomic.h>

#include "../ir/ir.h"

typedef struct rt_compiled rt_compiled;
struct rt_jit;

struct kiln_session {
    kiln_graph *graph;
    int nnodes;                 /* nodes visible to the session */
    kiln_session_options opts;
    kiln_tensor **vars;         /* per node: the variable's value, NULL for others */
    pthread_rwlock_t vars_lock; /* shared for reading runs, exclusive for assigning runs */
    atomic_uint_fast64_t runs;  /* run counter: seeds random ops per run */
    /* The compiled backend (NULL for the reference backend). */
    struct rt_jit *jit;
    struct rt_pool *pool;       /* NULL: kernels run on the calling thread */
    struct rt_cuda_session *cuda; /* a session on the GPU (cuda_session.c), else NULL */
    pthread_mutex_t cache_lock; /* guards cache and the JIT */
    rt_compiled *cache;         /* one program per run signature */
    /* A session on a compiled library (kiln_session_load). */
    void *dl;                   /* dlopen handle */
    const struct rt_model_desc *desc;
    kiln_graph *own_graph;      /* inputs and outputs as named placeholders */
    pthread_mutex_t arena_lock;
    void **arenas;
    int narenas, cap_arenas;
};

/* One run request, as given to kiln_session_run. */
typedef struct {
    const kiln_value *inputs;
    kiln_tensor *const *input_values;
    int ninputs;
    const kiln_value *outputs;
    kiln_tensor **output_values;
    int noutputs;
    const kiln_value *targets;
    int ntargets;
} rt_run_request;

/* Runs a request with the reference kernels. The caller has validated the
 * request's values and holds no lock; the executor takes vars_lock itself.
 * Returns KILN_OK or an error code with status set. */
int rt_ref_run(kiln_session *s, const rt_run_request *req, kiln_status *status);

/* Checks a fed tensor against the type the graph declares for v. */
int rt_check_feed(const kiln_graph *g, kiln_value v, const kiln_tensor *t, kiln_status *status);

/* The compiled backend (compiled.c): sets up / tears down the session's JIT
 * and program cache, and runs a request with compiled code. */
int rt_compiled_init(kiln_session *s, kiln_status *status);
void rt_compiled_free(kiln_session *s);
int rt_compiled_run(kiln_session *s, const rt_run_request *req, kiln_status *status);

/* Sessions on compiled libraries (library.c). */
void rt_library_free(kiln_session *s);
int rt_library_run(kiln_session *s, const rt_run_request *req, kiln_status *status);
/* A library's inputs (or outputs) as values of the session's graph. */
int rt_library_io(const kiln_session *s, bool inputs, kiln_value *out, int max);

#endif
