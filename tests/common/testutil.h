/* testutil.h -- helpers shared by the cmocka tests: making tensors, running
 * a graph with the reference backend, comparing results, and checking that
 * a test leaked nothing. Include after <cmocka.h>'s prerequisites. */
#ifndef KILN_TESTUTIL_H
#define KILN_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
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
