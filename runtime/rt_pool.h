/* rt_pool.h -- the runtime's thread pool (pool.c). */
#ifndef KILN_RT_POOL_H
#define KILN_RT_POOL_H

#include <pthread.h>

#include "../codegen/cg.h"

typedef struct rt_pool rt_pool;
/* A pool running work on nthreads threads (the caller included); NULL for
 * nthreads < 2 or when no thread could be started: work then runs on the
 * calling thread. */
rt_pool *rt_pool_new(int nthreads);
void rt_pool_free(rt_pool *p);
/* cg_rt.parallel_for: runs fn(args, b, e) over [0, n) in chunks of at least
 * grain items and returns when all are done. pool may be NULL. */
void rt_pool_parallel_for(void *pool, cg_kernel_fn fn, void *args, int64_t n, int64_t grain);

#endif
