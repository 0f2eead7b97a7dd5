/* test_init.c -- initializers: the generator against its documented
 * definition (re-derived here), reproducibility, statistics of large
 * tensors, bounds (uniform range, truncation at 2 std), Glorot and He
 * limits from hand-computed fans, constants, and argument errors. */
#include "common/testutil.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define NBIG 200000

static uint64_t mix(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void moments(const kiln_tensor *t, double *mean, double *std, double *lo, double *hi)
{
    size_t n = kiln_tensor_size(t);
    double s = 0, s2 = 0;
    *lo = INFINITY;
    *hi = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        double v = kiln_tensor_dtype(t) == KILN_F64 ? ((const double *)kiln_tensor_const_data(t))[i]
                                                   : ((const float *)kiln_tensor_const_data(t))[i];
        s += v;
        s2 += v * v;
        *lo = fmin(*lo, v);
        *hi = fmax(*hi, v);
    }
    *mean = s / n;
    *std = sqrt(s2 / n - *mean * *mean);
}

static void test_uniform_definition_and_reproducible(void **state)
{
    (void)state;
    int64_t d = 1000;
    kiln_tensor *a = kiln_init_uniform(KILN_F64, 1, &d, -2, 3, 1234, NULL);
    kiln_tensor *b = kiln_init_uniform(KILN_F64, 1, &d, -2, 3, 1234, NULL);
    kiln_tensor *c = kiln_init_uniform(KILN_F64, 1, &d, -2, 3, 1235, NULL);
    assert_non_null(a);
    assert_memory_equal(kiln_tensor_data(a), kiln_tensor_data(b), kiln_tensor_nbytes(a));
    assert_memory_not_equal(kiln_tensor_data(a), kiln_tensor_data(c), kiln_tensor_nbytes(a));
    /* The documented generator: element i is lo + (hi - lo) * u with u the
     * top 53 bits of mix(mix(mix(seed) ^ i) + 0) / 2^53. */
    const double *x = kiln_tensor_data(a);
    for (uint64_t i = 0; i < 1000; i++) {
        double u = (double)(mix(mix(mix(1234) ^ i) + 0) >> 11) * 0x1.0p-53;
        assert_true(x[i] == -2 + 5 * u);
    }
    kiln_tensor_free(a);
    kiln_tensor_free(b);
    kiln_tensor_free(c);
}

static void test_normal_golden(void **state)
{
    (void)state;
    /* Pinned values (polar method, logarithm from exact arithmetic): the
     * same on every IEEE-754 machine. */
    int64_t d = 4;
    kiln_tensor *t = kiln_init_normal(KILN_F64, 1, &d, 0, 1, 42, NULL);
    kiln_tensor *u = kiln_init_normal(KILN_F64, 1, &d, 0, 1, 42, NULL);
    assert_memory_equal(kiln_tensor_data(t), kiln_tensor_data(u), kiln_tensor_nbytes(t));
    const double *x = kiln_tensor_data(t);
    const double pinned[4] = {-0x1.9a0e5d8fcb61bp-1, 0x1.b00093f2a8566p+0, 0x1.c1b03ab44bf77p-3,
                              -0x1.17da842379873p+0};
    for (int i = 0; i < 4; i++) {
        if (x[i] != pinned[i]) fail_msg("normal(seed 42)[%d] = %a, pinned %a", i, x[i], pinned[i]);
        /* The polar method redone here with libm's log: equal to rounding. */
        for (uint64_t k = 0;; k += 2) {
            double a = 2 * ((double)(mix(mix(mix(42) ^ (uint64_t)i) + k) >> 11) * 0x1.0p-53) - 1;
            double b = 2 * ((double)(mix(mix(mix(42) ^ (uint64_t)i) + k + 1) >> 11) * 0x1.0p-53) - 1;
            double s = a * a + b * b;
            if (s > 0 && s < 1) {
                double z = a * sqrt(-2 * log(s) / s);
                assert_true(fabs(z - x[i]) <= 1e-14 * fabs(z));
                break;
            }
        }
    }
    kiln_tensor_free(t);
    kiln_tensor_free(u);
}

static void test_statistics(void **state)
{
    (void)state;
    int64_t d = NBIG;
    double m, s, lo, hi, se = 1 / sqrt((double)NBIG);
    kiln_tensor *t = kiln_init_uniform(KILN_F32, 1, &d, -1, 3, 7, NULL);
    moments(t, &m, &s, &lo, &hi);
    /* U(-1, 3): mean 1, std 4 / sqrt(12) */
    assert_true(fabs(m - 1) < 5 * (4 / sqrt(12)) * se);
    assert_true(fabs(s - 4 / sqrt(12)) < 0.01 * 4 / sqrt(12));
    assert_true(lo >= -1 && hi < 3 && lo < -0.999 && hi > 2.999);
    kiln_tensor_free(t);

    t = kiln_init_normal(KILN_F32, 1, &d, 3, 2, 8, NULL);
    moments(t, &m, &s, &lo, &hi);
    assert_true(fabs(m - 3) < 5 * 2 * se);
    assert_true(fabs(s - 2) < 0.01 * 2);
    assert_true(lo < 3 - 2 * 4 && hi > 3 + 2 * 4); /* 4-sigma tails exist in 200000 draws */
    kiln_tensor_free(t);

    /* N(0, 1) truncated to +-2: std sqrt(1 - 4 phi(2) / (Phi(2) - Phi(-2))). */
    t = kiln_init_truncated_normal(KILN_F64, 1, &d, -1, 0.5, 9, NULL);
    moments(t, &m, &s, &lo, &hi);
    double phi2 = exp(-2.0) / sqrt(2 * M_PI), mass = erf(2 / sqrt(2.0));
    double tstd = sqrt(1 - 4 * phi2 / mass);
    assert_true(fabs(tstd - 0.8796) < 1e-4);
    assert_true(fabs(m + 1) < 5 * 0.5 * se);
    assert_true(fabs(s - 0.5 * tstd) < 0.01 * 0.5 * tstd);
    assert_true(lo >= -1 - 2 * 0.5 && hi <= -1 + 2 * 0.5);
    assert_true(lo < -1.99 && hi > -0.01);
    kiln_tensor_free(t);
}

static void test_fans(void **state)
{
    (void)state;
    int64_t fi, fo;
    assert_int_equal(kiln_init_fans(2, (int64_t[]){300, 200}, &fi, &fo, NULL), KILN_OK);
    assert_true(fi == 300 && fo == 200);
    assert_int_equal(kiln_init_fans(4, (int64_t[]){64, 32, 3, 3}, &fi, &fo, NULL), KILN_OK);
    assert_true(fi == 32 * 9 && fo == 64 * 9);
    assert_int_equal(kiln_init_fans(3, (int64_t[]){4, 5, 6}, &fi, &fo, NULL), KILN_OK);
    assert_true(fi == 30 && fo == 24);
    assert_int_equal(kiln_init_fans(1, (int64_t[]){7}, &fi, &fo, NULL), KILN_OK);
    assert_true(fi == 7 && fo == 7);
    assert_int_equal(kiln_init_fans(0, NULL, &fi, &fo, NULL), KILN_OK);
    assert_true(fi == 1 && fo == 1);
    assert_int_equal(kiln_init_fans(2, (int64_t[]){3, -1}, &fi, &fo, NULL), KILN_ERR_INVALID_ARGUMENT);
}

/* Every |x| within limit, the extremes near it, and std near want_std. */
static void check_scaled(kiln_tensor *t, double limit, double want_std)
{
    double m, s, lo, hi;
    moments(t, &m, &s, &lo, &hi);
    if (limit > 0) {
        assert_true(lo >= -limit && hi <= limit);
        assert_true(lo < -0.99 * limit && hi > 0.99 * limit);
    }
    if (fabs(s - want_std) > 0.015 * want_std) fail_msg("std %g, want %g", s, want_std);
    assert_true(fabs(m) < 5 * want_std / sqrt((double)kiln_tensor_size(t)));
    kiln_tensor_free(t);
}

static void test_glorot_and_he(void **state)
{
    (void)state;
    int64_t dense[2] = {300, 200};   /* fan_in 300, fan_out 200 */
    int64_t conv[4] = {64, 32, 3, 3}; /* fan_in 288, fan_out 576 */
    double lim = sqrt(6.0 / 500); /* 0.10954... */
    assert_true(fabs(lim - 0.1095445) < 1e-6);
    check_scaled(kiln_init_glorot_uniform(KILN_F32, 2, dense, 1, NULL), lim, lim / sqrt(3.0));
    check_scaled(kiln_init_glorot_normal(KILN_F32, 2, dense, 2, NULL), 0, sqrt(2.0 / 500));
    double lim_conv = sqrt(6.0 / (288 + 576));
    check_scaled(kiln_init_glorot_uniform(KILN_F64, 4, conv, 3, NULL), lim_conv, lim_conv / sqrt(3.0));
    double he = sqrt(6.0 / 288); /* 0.14434 */
    assert_true(fabs(he - 0.1443376) < 1e-6);
    check_scaled(kiln_init_he_uniform(KILN_F32, 4, conv, 4, NULL), he, he / sqrt(3.0));
    check_scaled(kiln_init_he_normal(KILN_F32, 4, conv, 5, NULL), 0, sqrt(2.0 / 288));
    check_scaled(kiln_init_he_normal(KILN_F32, 2, dense, 6, NULL), 0, sqrt(2.0 / 300));
}

static void test_constants_and_dtypes(void **state)
{
    (void)state;
    int64_t d[2] = {2, 3};
    kiln_tensor *t = kiln_init_ones(KILN_I32, 2, d, NULL);
    tu_assert_shape(t, KILN_I32, 2, d);
    tu_assert_ints(t, (int64_t[]){1, 1, 1, 1, 1, 1}, 6);
    kiln_tensor_free(t);
    t = kiln_init_ones(KILN_BF16, 2, d, NULL);
    tu_assert_close(t, (double[]){1, 1, 1, 1, 1, 1}, 6, 0, 0);
    kiln_tensor_free(t);
    t = kiln_init_zeros(KILN_F64, 0, NULL, NULL);
    tu_assert_close(t, (double[]){0}, 1, 0, 0);
    kiln_tensor_free(t);
    /* f16 uniform stays in range. */
    int64_t n = 10000;
    t = kiln_init_uniform(KILN_F16, 1, &n, 0, 1, 3, NULL);
    const uint16_t *h = kiln_tensor_data(t);
    for (int64_t i = 0; i < n; i++) assert_true(h[i] < 0x3C00); /* below 1.0 in binary16 */
    kiln_tensor_free(t);
    /* Empty tensors are fine. */
    int64_t z[2] = {0, 5};
    t = kiln_init_glorot_uniform(KILN_F32, 2, z, 1, NULL);
    assert_non_null(t);
    assert_int_equal(kiln_tensor_size(t), 0);
    kiln_tensor_free(t);
}

static void test_errors(void **state)
{
    (void)state;
    kiln_status *st = kiln_status_new();
    int64_t d = 4, bad = -2;
    assert_null(kiln_init_uniform(KILN_F32, 1, &d, 1, 1, 0, st));
    assert_non_null(strstr(kiln_status_message(st), "kiln_init_uniform: the range [1, 1)"));
    assert_null(kiln_init_normal(KILN_I32, 1, &d, 0, 1, 0, st));
    assert_non_null(strstr(kiln_status_message(st), "dtype i32"));
    assert_null(kiln_init_normal(KILN_F32, 1, &d, 0, -1, 0, st));
    assert_non_null(strstr(kiln_status_message(st), "std -1"));
    assert_null(kiln_init_he_uniform(KILN_F32, 1, &bad, 0, st));
    assert_non_null(strstr(kiln_status_message(st), "dim 0 is -2"));
    assert_null(kiln_init_zeros(KILN_F32, 9, (int64_t[9]){1}, st));
    assert_int_equal(kiln_status_code(st), KILN_ERR_INVALID_ARGUMENT);
    kiln_status_free(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_uniform_definition_and_reproducible),
        TU_TEST(test_normal_golden),
        TU_TEST(test_statistics),
        TU_TEST(test_fans),
        TU_TEST(test_glorot_and_he),
        TU_TEST(test_constants_and_dtypes),
        TU_TEST(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
