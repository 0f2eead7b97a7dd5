/* bench_gemm.c -- kiln's compiled MatMul against OpenBLAS's cblas_sgemm on
 * the same f32 square products, in the same run, one thread and all
 * threads; prints GFLOP/s and the kiln/OpenBLAS ratio. Run by `make bench`
 * with OPENBLAS_CORETYPE=SkylakeX (bench/run.sh). */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "kiln.h"

void openblas_set_num_threads(int);

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static double best_of(int reps, double (*fn)(void *), void *arg)
{
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t = fn(arg);
        if (t < best) best = t;
    }
    return best;
}

typedef struct {
    int n;
    float *a, *b, *c;
    kiln_session *s;
    kiln_value va, vb, vy;
    kiln_tensor *ta, *tb;
} job;

static double run_blas(void *p)
{
    job *j = p;
    double t0 = now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, j->n, j->n, j->n, 1.0f, j->a, j->n, j->b, j->n, 0.0f, j->c, j->n);
    return now() - t0;
}

static double run_kiln(void *p)
{
    job *j = p;
    kiln_tensor *out = NULL;
    double t0 = now();
    kiln_session_run(j->s, (kiln_value[]){j->va, j->vb}, (kiln_tensor *[]){j->ta, j->tb}, 2, &j->vy, &out, 1, NULL, 0, NULL);
    double t = now() - t0;
    kiln_tensor_free(out);
    return t;
}

int main(void)
{
    const int sizes[] = {128, 256, 512, 1024};
    printf("f32 GEMM n x n x n, best of 10 (GFLOP/s)\n");
    printf("%6s %8s %10s %10s %8s\n", "n", "threads", "kiln", "OpenBLAS", "ratio");
    for (int th = 1; th <= 2; th++) {
        openblas_set_num_threads(th);
        for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
            int n = sizes[k];
            job j = {.n = n};
            int64_t dims[2] = {n, n};
            j.ta = kiln_tensor_new(KILN_F32, 2, dims);
            j.tb = kiln_tensor_new(KILN_F32, 2, dims);
            j.a = kiln_tensor_data(j.ta);
            j.b = kiln_tensor_data(j.tb);
            j.c = malloc(sizeof(float) * (size_t)n * (size_t)n);
            for (int i = 0; i < n * n; i++) {
                j.a[i] = (float)(i % 17) * 0.01f;
                j.b[i] = (float)(i % 13) * 0.02f;
            }
            kiln_graph *g = kiln_graph_new();
            j.va = kiln_placeholder(g, "a", KILN_F32, 2, dims);
            j.vb = kiln_placeholder(g, "b", KILN_F32, 2, dims);
            j.vy = kiln_matmul(g, j.va, j.vb);
            kiln_session_options o;
            kiln_session_options_init(&o);
            o.threads = th;
            j.s = kiln_session_new(g, &o, NULL);
            run_kiln(&j); /* compile */
            run_blas(&j);
            double tk = best_of(10, run_kiln, &j), tb = best_of(10, run_blas, &j);
            double flop = 2.0 * n * n * n;
            printf("%6d %8d %10.1f %10.1f %8.2f\n", n, th, flop / tk / 1e9, flop / tb / 1e9, tb / tk);
            kiln_session_free(j.s);
            kiln_graph_free(g);
            kiln_tensor_free(j.ta);
            kiln_tensor_free(j.tb);
            free(j.c);
        }
    }
    return 0;
}
