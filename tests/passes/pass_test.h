/* pass_test.h -- what the pass tests share: run a pipeline on a graph,
 * compare the graph's text form before and after with golden strings, and
 * check the rewritten graph computes what the original did (reference
 * backend, random inputs). Each test builds its graph with a function so
 * it can build the same graph twice: one copy is rewritten, the other is
 * the oracle. Header-only: every test file includes it once. */
#ifndef KILN_PASS_TEST_H
#define KILN_PASS_TEST_H

#include "common/testutil.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../passes/passes.h"

/* Builds a graph and declares its outputs (kiln_graph_set_outputs). */
typedef void (*pt_build_fn)(kiln_graph *g);

static inline kiln_graph *pt_build(pt_build_fn build)
{
    kiln_graph *g = kiln_graph_new();
    assert_non_null(g);
    build(g);
    if (kiln_graph_error(g)) fail_msg("building the test graph: %s", kiln_graph_error(g));
    return g;
}

static inline void pt_assert_text(const kiln_graph *g, const char *want, const char *when)
{
    char *got = kiln_graph_to_text(g);
    assert_non_null(got);
    if (strcmp(got, want) != 0) {
        print_message("--- %s, got:\n%s--- want:\n%s", when, got, want);
        kiln_free(got);
        fail_msg("text form %s differs", when);
    }
    kiln_free(got);
}

/* Runs a pipeline (fold_limit 0: the default), asserting success. */
static inline void pt_run_limit(kiln_graph *g, const char *pipeline, int64_t fold_limit)
{
    kiln_status *st = kiln_status_new();
    pass_context cx;
    pass_context_init(&cx, st);
    if (fold_limit) cx.fold_limit = fold_limit;
    int rc = pass_run_pipeline(g, pipeline, &cx);
    pass_context_clear(&cx);
    if (rc) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", kiln_status_message(st));
        kiln_status_free(st);
        fail_msg("pipeline '%s': %s", pipeline, msg);
    }
    kiln_status_free(st);
}

static inline void pt_run(kiln_graph *g, const char *pipeline) { pt_run_limit(g, pipeline, 0); }

/* Runs both graphs with the given backend on the same random inputs (one
 * per placeholder, in order) and asserts every declared output agrees:
 * same type, floats within atol + rtol * |want|, other dtypes exactly. */
static inline void pt_assert_same_results(kiln_graph *want_g, kiln_graph *got_g, kiln_backend backend, double rtol,
                                   double atol, uint64_t seed)
{
    kiln_value phs_w[8], phs_g[8], outs_w[8], outs_g[8];
    int nin = kiln_graph_inputs(want_g, phs_w, 8);
    assert_int_equal(kiln_graph_inputs(got_g, phs_g, 8), nin);
    int nout = kiln_graph_outputs(want_g, outs_w, 8);
    assert_int_equal(kiln_graph_outputs(got_g, outs_g, 8), nout);
    kiln_tensor *feeds[8] = {0}, *rw[8] = {0}, *rg[8] = {0};
    for (int i = 0; i < nin; i++) {
        int64_t dims[KILN_MAX_RANK];
        int rank = kiln_value_dims(want_g, phs_w[i], dims);
        kiln_dtype dt = kiln_value_dtype(want_g, phs_w[i]);
        feeds[i] = tu_random(dt, rank, dims, dt == KILN_BOOL ? 0 : -2, 2, seed + (uint64_t)i);
        assert_non_null(feeds[i]);
    }
    char msg[1024];
    if (tu_run_backend(want_g, backend, nout, outs_w, rw, nin, phs_w, feeds, msg, sizeof msg))
        fail_msg("running the original graph: %s", msg);
    if (tu_run_backend(got_g, backend, nout, outs_g, rg, nin, phs_g, feeds, msg, sizeof msg))
        fail_msg("running the rewritten graph: %s", msg);
    char failure[512] = "";
    for (int o = 0; o < nout && !*failure; o++) {
        const kiln_tensor *a = rw[o], *b = rg[o];
        if (kiln_tensor_dtype(a) != kiln_tensor_dtype(b) || kiln_tensor_rank(a) != kiln_tensor_rank(b) ||
            memcmp(kiln_tensor_dims(a), kiln_tensor_dims(b), sizeof(int64_t) * (size_t)kiln_tensor_rank(a)) != 0) {
            snprintf(failure, sizeof failure, "output %d: the types differ", o);
            break;
        }
        kiln_dtype dt = kiln_tensor_dtype(a);
        for (size_t k = 0; k < kiln_tensor_size(a); k++) {
            if (ir_dtype_is_float(dt)) {
                double x = ir_load_f64(dt, kiln_tensor_const_data(a), k);
                double y = ir_load_f64(dt, kiln_tensor_const_data(b), k);
                bool ok = isnan(x) ? isnan(y) : isinf(x) ? x == y : fabs(x - y) <= atol + rtol * fabs(x);
                if (!ok) {
                    snprintf(failure, sizeof failure, "output %d element %zu: rewritten %.9g, original %.9g", o, k, y, x);
                    break;
                }
            } else if (ir_load_i64(dt, kiln_tensor_const_data(a), k) != ir_load_i64(dt, kiln_tensor_const_data(b), k)) {
                snprintf(failure, sizeof failure, "output %d element %zu differs", o, k);
                break;
            }
        }
    }
    for (int i = 0; i < 8; i++) {
        kiln_tensor_free(feeds[i]);
        kiln_tensor_free(rw[i]);
        kiln_tensor_free(rg[i]);
    }
    if (*failure) fail_msg("%s", failure);
}

/* The golden check: builds the graph, compares its text with `before`,
 * runs the pipeline, compares with `after`, verifies it, and checks the
 * results against an unrewritten copy on random inputs. */
static inline void pt_check_limit(pt_build_fn build, const char *pipeline, int64_t fold_limit, const char *before,
                           const char *after, double tol)
{
    kiln_graph *orig = pt_build(build), *g = pt_build(build);
    pt_assert_text(g, before, "before");
    pt_run_limit(g, pipeline, fold_limit);
    pt_assert_text(g, after, "after");
    kiln_status *st = kiln_status_new();
    if (kiln_graph_verify(g, st)) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", kiln_status_message(st));
        kiln_status_free(st);
        fail_msg("the rewritten graph does not verify: %s", msg);
    }
    kiln_status_free(st);
    pt_assert_same_results(orig, g, KILN_BACKEND_REFERENCE, tol, tol, 7);
    kiln_graph_free(orig);
    kiln_graph_free(g);
}

static inline void pt_check(pt_build_fn build, const char *pipeline, const char *before, const char *after, double tol)
{
    pt_check_limit(build, pipeline, 0, before, after, tol);
}

/* A constant from literal floats. */
static inline kiln_value pt_const(kiln_graph *g, const char *name, int rank, const int64_t *dims, const float *data)
{
    kiln_tensor *t = tu_f32(rank, dims, data);
    kiln_value v = kiln_constant(g, name, t);
    kiln_tensor_free(t);
    return v;
}

/* A constant of seeded random floats in [lo, hi). */
static inline kiln_value pt_random_const(kiln_graph *g, const char *name, int rank, const int64_t *dims, double lo,
                                  double hi, uint64_t seed)
{
    kiln_tensor *t = tu_random(KILN_F32, rank, dims, lo, hi, seed);
    kiln_value v = kiln_constant(g, name, t);
    kiln_tensor_free(t);
    return v;
}

static inline void pt_outputs(kiln_graph *g, int n, const kiln_value *outs) { kiln_graph_set_outputs(g, outs, n); }

#endif
