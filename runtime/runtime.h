/* runtime.h -- the runtime's interface between its files: the session
 * layout and the reference executor. Not a public header. */
#ifndef KILN_RUNTIME_H
#define KILN_RUNTIME_H

#include <pthread.h>
#include <stdatomic.h>

#include "../ir/ir.h"

struct kiln_session {
    kiln_graph *graph;
    int nnodes;                 /* nodes visible to the session */
    kiln_session_options opts;
    kiln_tensor **vars;         /* per node: the variable's value, NULL for others */
    pthread_rwlock_t vars_lock; /* shared for reading runs, exclusive for assigning runs */
    atomic_uint_fast64_t runs;  /* run counter: seeds random ops per run */
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

#endif
