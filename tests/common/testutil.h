/* testutil.h -- helpers shared by the cmocka tests: making tensors, running
 * a graph with the reference backend, comparing results, and checking that
 * a test leaked nothing. Include after <cmocka.h>'s prerequisites. */
#ifndef KILN_TESTUTIL_H
#define KILN_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "kiln.h"

/* Tensors from literal data. dims given as a compound literal:
 *   tu_f32(2, (int64_t[]){2, 3}, (float[]){1, 2, 3, 4, 5, 6}) */
kiln_tensor *tu_f32(int rank, const int64_t *dims, const float *data);
kiln_tensor *tu_f64(int rank, const int64_t *dims, const double *data);
kiln_tensor *tu_i64(int rank, const int64_t *dims, const int64_t *data);
kiln_tensor *tu_i32(int rank, const int64_t *dims, const int32_t *data);
kiln_tensor *tu_bool(int rank, const int64_t *dims, const uint8_t *data);
/* Any dtype from doubles (converted as ir_store_f64 does). */
kiln_tensor *tu_from_f64(kiln_dtype dt, int rank, const int64_t *dims, const double *data);
/* Deterministic pseudo-random data in [lo, hi) from a seed. */
kiln_tensor *tu_random(kiln_dtype dt, int rank, const int64_t *dims, double lo, double hi, uint64_t seed);

/* Runs g once with the reference backend: feeds feeds[i] to phs[i], fetches
 * out, asserts success, and returns the output (caller frees). */
kiln_tensor *tu_run(kiln_graph *g, kiln_value out, int nfeeds, const kiln_value *phs,
                    kiln_tensor *const *feeds);
/* As tu_run but expects failure and checks that the status message contains
 * `substr`. */
void tu_run_fails(kiln_graph *g, kiln_value out, int nfeeds, const kiln_value *phs,
                  kiln_tensor *const *feeds, const char *substr);

/* Runs g with the reference backend and with the compiled (default)
 * backend and asserts every fetched output agrees: same dtype and shape,
 * integers and bools exactly, floats within atol + rtol * |ref|. */
void tu_diff(kiln_graph *g, int nouts, const kiln_value *outs, int nfeeds, const kiln_value *phs,
             kiln_tensor *const *feeds, double rtol, double atol);
/* As tu_diff; a failure names labels[i] (labels may be NULL). */
void tu_diff_labeled(kiln_graph *g, int nouts, const kiln_value *outs, const char *const *labels,
                     int nfeeds, const kiln_value *phs, kiln_tensor *const *feeds, double rtol,
                     double atol);

/* Batched diffs: many small independent cases built into one graph and
 * diffed in one compile (compiling costs far more than running a small
 * kernel). A case: tu_batch_case (flushes first when the batch is full or
 * its tolerance differs, and returns the graph to build in), then
 * tu_batch_input per operand and tu_batch_output for the result. Call
 * tu_batch_flush before the test ends. */
#define TU_BATCH_OUTS 16
#define TU_BATCH_INPUTS 48
typedef struct {
    kiln_graph *g;
    int nin, nout;
    kiln_value in[TU_BATCH_INPUTS];
    kiln_tensor *feeds[TU_BATCH_INPUTS];
    kiln_value out[TU_BATCH_OUTS];
    char label[TU_BATCH_OUTS][128];
    double rtol, atol;
} tu_batch;
kiln_graph *tu_batch_case(tu_batch *b, int nin, double rtol, double atol);
/* A placeholder of the given declared dims (-1: symbolic) fed `feed`
 * (owned by the batch from here). */
kiln_value tu_batch_input(tu_batch *b, kiln_dtype dt, int rank, const int64_t *dims, kiln_tensor *feed);
void tu_batch_output(tu_batch *b, kiln_value y, const char *fmt, ...);
void tu_batch_flush(tu_batch *b);

/* A case of the batch: op(p0[, p1, ...]) on random operands of the given
 * shapes and dtypes, operand i uniform in [lo[i], hi[i]) from *seed (which
 * advances); with symbolic, each operand's first dim is declared -1.
 * Floats are compared within rtol (as atol too). */
typedef struct {
    int rank;
    int64_t dims[4];
} tu_shape;
void tu_batch_op(tu_batch *b, const char *op, int n, const kiln_dtype *dts, const tu_shape *shapes,
                 const double *lo, const double *hi, kiln_attrs *attrs, bool symbolic, uint64_t *seed,
                 double rtol);

/* Runs g with the given backend; returns the status code and fills outs
 * (caller frees); msg (may be NULL) receives the message. */
int tu_run_backend(kiln_graph *g, kiln_backend backend, int nouts, const kiln_value *outs,
                   kiln_tensor **results, int nfeeds, const kiln_value *phs,
                   kiln_tensor *const *feeds, char *msg, size_t msg_size);

/* Asserts the tensor's dtype and shape. */
void tu_assert_shape(const kiln_tensor *t, kiln_dtype dt, int rank, const int64_t *dims);
/* Asserts |t[i] - want[i]| <= atol + rtol * |want[i]| for every element
 * (NaNs must match NaNs, infinities must match exactly). */
void tu_assert_close(const kiln_tensor *t, const double *want, size_t n, double rtol, double atol);
/* Asserts integer/bool elements equal exactly. */
void tu_assert_ints(const kiln_tensor *t, const int64_t *want, size_t n);

/* Asserts g has an error whose message contains every given substring
 * (NULL-terminated list). */
void tu_assert_graph_error(const kiln_graph *g, ...);

/* cmocka setup/teardown: teardown fails the test if it leaked any block
 * allocated through kiln's allocator. Use with cmocka_unit_test_setup_teardown
 * or the TU_TEST macro. */
int tu_setup(void **state);
int tu_teardown(void **state);
#define TU_TEST(f) cmocka_unit_test_setup_teardown(f, tu_setup, tu_teardown)

#endif
