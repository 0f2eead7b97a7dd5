/* test_diff_bitwise.c -- the bitwise ops (BitwiseAnd/Or/Xor/Not, BitShift)
 * compiled by the CPU backend against the reference kernels: every integer
 * dtype and bool, broadcasting, size-0 and size-1 dims, symbolic dims,
 * shift amounts up to past the bit width, fused chains, and hand-computed
 * edge values that random data rarely reaches. Results must agree exactly. */
#include "common/testutil.h"

#include <stdbool.h>
#include <string.h>

static const kiln_dtype INTS[] = {KILN_I8,  KILN_U8,  KILN_I16, KILN_U16,
                                  KILN_I32, KILN_U32, KILN_I64, KILN_U64};
#define NINTS 8
static const kiln_dtype UNSIGNED[] = {KILN_U8, KILN_U16, KILN_U32, KILN_U64};

typedef tu_shape shape;

static const shape PAIRS[][2] = {
    {{2, {7, 13}}, {2, {7, 13}}},
    {{3, {5, 1, 9}}, {2, {4, 1}}},
    {{0, {0}}, {1, {33}}},
    {{1, {1}}, {3, {2, 3, 1}}},
    {{2, {0, 3}}, {1, {3}}},
    {{1, {1000}}, {1, {1000}}},
};
#define NPAIRS (int)(sizeof PAIRS / sizeof PAIRS[0])

static uint64_t seed = 7;

static kiln_attrs *direction(const char *dir)
{
    if (!dir) return NULL;
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_string(a, "direction", dir);
    return a;
}

static tu_batch batch;

/* Adds op over placeholders of the given shapes (dim 0 symbolic if asked),
 * random data in [lo, hi) per input, to the batch (diffed exactly at the
 * next tu_batch_flush). */
static void diff_op(const char *op, int n, kiln_dtype dt, const shape *shapes, const double *lo,
                    const double *hi, const char *dir, bool symbolic)
{
    kiln_attrs *a = direction(dir);
    kiln_dtype dts[2] = {dt, dt};
    tu_batch_op(&batch, op, n, dts, shapes, lo, hi, a, symbolic, &seed, 0);
    kiln_attrs_free(a);
}

static void diff_binary(const char *op, kiln_dtype dt, double lo0, double hi0, double lo1, double hi1,
                        const char *dir)
{
    double lo[2] = {lo0, lo1}, hi[2] = {hi0, hi1};
    for (int p = 0; p < NPAIRS; p++)
        for (int sym = 0; sym < 2; sym++) diff_op(op, 2, dt, PAIRS[p], lo, hi, dir, sym);
    tu_batch_flush(&batch);
}

static void test_and_or_xor(void **state)
{
    (void)state;
    static const char *const ops[] = {"BitwiseAnd", "BitwiseOr", "BitwiseXor"};
    for (int o = 0; o < 3; o++) {
        for (int d = 0; d < NINTS; d++) diff_binary(ops[o], INTS[d], -120, 120, -120, 120, NULL);
        diff_binary(ops[o], KILN_BOOL, 0, 2, 0, 2, NULL);
    }
}

static void test_not(void **state)
{
    (void)state;
    double lo = -120, hi = 120, blo = 0, bhi = 2;
    for (int p = 0; p < NPAIRS; p++)
        for (int sym = 0; sym < 2; sym++) {
            for (int d = 0; d < NINTS; d++) diff_op("BitwiseNot", 1, INTS[d], PAIRS[p], &lo, &hi, NULL, sym);
            diff_op("BitwiseNot", 1, KILN_BOOL, PAIRS[p], &blo, &bhi, NULL, sym);
        }
    tu_batch_flush(&batch);
}

static void test_shift(void **state)
{
    (void)state;
    for (int d = 0; d < 4; d++) {
        double width = (double)kiln_dtype_size(UNSIGNED[d]) * 8;
        /* amounts 0 .. width + 3: in range, at and past the width */
        diff_binary("BitShift", UNSIGNED[d], 0, 250, 0, width + 4, "LEFT");
        diff_binary("BitShift", UNSIGNED[d], 0, 250, 0, width + 4, "RIGHT");
    }
}

/* Runs op(a, b) on both backends; both must give want. */
static void check_both(const char *op, kiln_tensor *ta, kiln_tensor *tb, const char *dir, const int64_t *want,
                       size_t n)
{
    kiln_graph *g = kiln_graph_new();
    kiln_value ph[2];
    kiln_tensor *feeds[2] = {ta, tb};
    int nin = tb ? 2 : 1;
    for (int i = 0; i < nin; i++)
        ph[i] = kiln_placeholder(g, i ? "b" : "a", kiln_tensor_dtype(feeds[i]), kiln_tensor_rank(feeds[i]),
                                 kiln_tensor_dims(feeds[i]));
    kiln_attrs *a = direction(dir);
    kiln_value y = kiln_op(g, op, ph, nin, a);
    kiln_attrs_free(a);
    if (kiln_graph_error(g)) fail_msg("%s: %s", op, kiln_graph_error(g));
    kiln_backend backends[2] = {KILN_BACKEND_REFERENCE, KILN_BACKEND_DEFAULT};
    for (int b = 0; b < 2; b++) {
        kiln_tensor *r = NULL;
        char msg[512];
        if (tu_run_backend(g, backends[b], 1, &y, &r, nin, ph, feeds, msg, sizeof msg))
            fail_msg("%s (backend %d): %s", op, b, msg);
        tu_assert_ints(r, want, n);
        kiln_tensor_free(r);
    }
    kiln_tensor_free(ta);
    kiln_tensor_free(tb);
    kiln_graph_free(g);
}

static kiln_tensor *vec(kiln_dtype dt, size_t n, const void *v)
{
    return kiln_tensor_from_data(dt, 1, (int64_t[]){(int64_t)n}, v);
}

static void test_edge_values(void **state)
{
    (void)state;
    const uint64_t M = 0xffffffffffffffffu, H = 0x8000000000000000u;
    check_both("BitShift", vec(KILN_U64, 5, (uint64_t[]){1, M, M, M, 3}), vec(KILN_U64, 5, (uint64_t[]){63, 64, H, 1, 62}),
               "LEFT", (int64_t[]){INT64_MIN, 0, 0, -2, INT64_MIN | 0x4000000000000000}, 5);
    check_both("BitShift", vec(KILN_U64, 4, (uint64_t[]){H, M, M, M}), vec(KILN_U64, 4, (uint64_t[]){63, 64, M, 1}),
               "RIGHT", (int64_t[]){1, 0, 0, INT64_MAX}, 4);
    check_both("BitShift", vec(KILN_U32, 3, (uint32_t[]){0xffffffffu, 1, 0x80000000u}),
               vec(KILN_U32, 3, (uint32_t[]){32, 31, 31}), "LEFT", (int64_t[]){0, 0x80000000, 0}, 3);
    check_both("BitShift", vec(KILN_U8, 4, (uint8_t[]){0xff, 0xff, 0x80, 0xff}), vec(KILN_U8, 4, (uint8_t[]){7, 8, 7, 255}),
               "RIGHT", (int64_t[]){1, 0, 1, 0}, 4);
    check_both("BitwiseNot", vec(KILN_BOOL, 2, (uint8_t[]){0, 1}), NULL, NULL, (int64_t[]){1, 0}, 2);
    check_both("BitwiseNot", vec(KILN_U64, 2, (uint64_t[]){0, H}), NULL, NULL, (int64_t[]){-1, INT64_MAX}, 2);
    check_both("BitwiseXor", vec(KILN_I16, 2, (int16_t[]){-32768, 0x5555}), vec(KILN_I16, 2, (int16_t[]){-1, 0x7fff}), NULL,
               (int64_t[]){32767, 0x2aaa}, 2);
}

/* A chain of bitwise ops fuses into one kernel and must still agree:
 * ~((a & b) | 3) >> 1 and (a ^ b) << 2 on u16, and bool logic. */
static void test_fused_chain(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    int64_t dims[2] = {17, 33};
    kiln_value a = kiln_placeholder(g, "a", KILN_U16, 2, dims);
    kiln_value b = kiln_placeholder(g, "b", KILN_U16, 1, dims + 1);
    kiln_tensor *t3 = tu_from_f64(KILN_U16, 0, NULL, (const double[]){3});
    kiln_tensor *t1 = tu_from_f64(KILN_U16, 0, NULL, (const double[]){1});
    kiln_value three = kiln_constant(g, NULL, t3), one = kiln_constant(g, NULL, t1);
    kiln_tensor_free(t3);
    kiln_tensor_free(t1);
    kiln_attrs *right = direction("RIGHT"), *left = direction("LEFT");
    kiln_value v = kiln_op(g, "BitwiseAnd", (kiln_value[]){a, b}, 2, NULL);
    v = kiln_op(g, "BitwiseOr", (kiln_value[]){v, three}, 2, NULL);
    v = kiln_op(g, "BitwiseNot", &v, 1, NULL);
    kiln_value y0 = kiln_op(g, "BitShift", (kiln_value[]){v, one}, 2, right);
    kiln_value w = kiln_op(g, "BitwiseXor", (kiln_value[]){a, b}, 2, NULL);
    kiln_value y1 = kiln_op(g, "BitShift", (kiln_value[]){w, b}, 2, left);
    kiln_attrs_free(right);
    kiln_attrs_free(left);
    if (kiln_graph_error(g)) fail_msg("%s", kiln_graph_error(g));
    kiln_tensor *feeds[2] = {tu_random(KILN_U16, 2, dims, 0, 65535, 11), tu_random(KILN_U16, 1, dims + 1, 0, 20, 12)};
    kiln_value ph[2] = {a, b}, outs[2] = {y0, y1};
    tu_diff(g, 2, outs, 2, ph, feeds, 0, 0);
    kiln_tensor_free(feeds[0]);
    kiln_tensor_free(feeds[1]);
    kiln_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_and_or_xor), TU_TEST(test_not),         TU_TEST(test_shift),
        TU_TEST(test_edge_values), TU_TEST(test_fused_chain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
