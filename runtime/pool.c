/* pool.c -- the thread pool that compiled kernels split their work over.
 * Any number of threads may call rt_pool_parallel_for at once (concurrent
 * session runs share one pool): each call queues a job of chunks, works on
 * it itself, and returns once every chunk is done. Idle workers take chunks
 * from the oldest unfinished job. */
#include <stdatomic.h>
#include <string.h>

#include "rt_pool.h"

typedef struct job {
    struct job *next;
    cg_kernel_fn fn;
    void *args;
    int64_t n, chunk, nchunks;
    atomic_int_fast64_t claimed; /* next chunk to hand out */
    int64_t finished;            /* chunks done (pool lock) */
    int users;                   /* workers holding a pointer (pool lock) */
    bool queued;
} job;

struct rt_pool {
    pthread_mutex_t lock;
    pthread_cond_t work;  /* a job was queued, or shutdown */
    pthread_cond_t done;  /* a job made progress */
    job *head, *tail;
    bool shutdown;
    int nthreads;         /* workers + the calling thread */
    pthread_t *threads;
    int started;
};

static void unqueue(rt_pool *p, job *j)
{
    if (!j->queued) return;
    job **pp = &p->head, *prev = NULL;
    while (*pp && *pp != j) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (*pp) {
        *pp = j->next;
        if (p->tail == j) p->tail = prev;
    }
    j->queued = false;
}

/* Runs chunks of j until none is left; returns how many it ran. */
static int64_t run_chunks(job *j)
{
    int64_t ran = 0;
    for (;;) {
        int64_t c = atomic_fetch_add(&j->claimed, 1);
        if (c >= j->nchunks) return ran;
        int64_t b = c * j->chunk, e = b + j->chunk < j->n ? b + j->chunk : j->n;
        j->fn(j->args, b, e);
        ran++;
    }
}

static void *worker(void *arg)
{
    rt_pool *p = arg;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->head && !p->shutdown) pthread_cond_wait(&p->work, &p->lock);
        if (p->shutdown) break;
        job *j = p->head;
        j->users++;
        pthread_mutex_unlock(&p->lock);
        int64_t ran = run_chunks(j);
        pthread_mutex_lock(&p->lock);
        unqueue(p, j); /* every chunk is claimed */
        j->finished += ran;
        j->users--;
        pthread_cond_broadcast(&p->done);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

rt_pool *rt_pool_new(int nthreads)
{
    if (nthreads < 2) return NULL;
    rt_pool *p = ir_calloc(1, sizeof *p);
    if (!p) return NULL;
    p->nthreads = nthreads;
    p->threads = ir_calloc((size_t)nthreads, sizeof(pthread_t));
    if (!p->threads || pthread_mutex_init(&p->lock, NULL)) goto fail_alloc;
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->done, NULL);
    for (int i = 0; i < nthreads - 1; i++) {
        if (pthread_create(&p->threads[i], NULL, worker, p) != 0) break;
        p->started++;
    }
    if (p->started == 0) {
        rt_pool_free(p);
        return NULL;
    }
    return p;
fail_alloc:
    ir_free(p->threads);
    ir_free(p);
    return NULL;
}

void rt_pool_free(rt_pool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->lock);
    p->shutdown = true;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < p->started; i++) pthread_join(p->threads[i], NULL);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->done);
    pthread_mutex_destroy(&p->lock);
    ir_free(p->threads);
    ir_free(p);
}

void rt_pool_parallel_for(void *pool, cg_kernel_fn fn, void *args, int64_t n, int64_t grain)
{
    rt_pool *p = pool;
    if (grain < 1) grain = 1;
    if (!p || n <= grain) {
        if (n > 0) fn(args, 0, n);
        return;
    }
    /* A few chunks per thread balance uneven work without much overhead. */
    int64_t nchunks = n / grain;
    int64_t most = (int64_t)p->nthreads * 4;
    if (nchunks > most) nchunks = most;
    if (nchunks < 1) nchunks = 1;
    job j;
    memset(&j, 0, sizeof j);
    j.fn = fn;
    j.args = args;
    j.n = n;
    j.chunk = (n + nchunks - 1) / nchunks;
    j.nchunks = (n + j.chunk - 1) / j.chunk;
    atomic_init(&j.claimed, 0);

    pthread_mutex_lock(&p->lock);
    if (p->tail) p->tail->next = &j;
    else p->head = &j;
    p->tail = &j;
    j.queued = true;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->lock);

    int64_t ran = run_chunks(&j);

    pthread_mutex_lock(&p->lock);
    unqueue(p, &j);
    j.finished += ran;
    while (j.finished < j.nchunks || j.users > 0) pthread_cond_wait(&p->done, &p->lock);
    pthread_mutex_unlock(&p->lock);
}
