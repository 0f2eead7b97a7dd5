/* test_diff_matmul.c -- MatMul and Gemm compiled by the CPU backend against
 * the reference kernels: vector and matrix operands, transposes, batched
 * and broadcast batches, sizes that are not multiples of the register
 * blocks, K deeper than one packed slice, empty dims, and every dtype. */
#include "common/testutil.h"

#include <stdbool.h>
#include <string.h>

static uint64_t seed = 100;
static const kiln_dtype DTS[] = {KILN_F32, KILN_F64, KILN_F16, KILN_BF16, KILN_I32, KILN_I64};

static double rtol_for(kiln_dtype dt)
{
    /* the compiled kernel accumulates f32 in f32, the reference in double */
    return dt == KILN_F64 ? 1e-12 : dt == KILN_F32 ? 1e-5 : dt == KILN_F16 ? 4e-3 : dt == KILN_BF16 ? 2e-2 : 0;
}

static kiln_tensor *operand(kiln_dtype dt, int rank, const int64_t *dims)
{
    bool ints = dt == KILN_I32 || dt == KILN_I64;
    return tu_random(dt, rank, dims, ints ? -20 : -2, ints ? 20 : 2, seed++);
}

static void diff_matmul(kiln_dtype dt, int ra, const int64_t *da, int rb, const int64_t *db,
                        int ta, int tb, bool symbolic)
{
    kiln_graph *g = kiln_graph_new();
    int64_t sa[8], sb[8];
    memcpy(sa, da, sizeof(int64_t) * (size_t)ra);
    memcpy(sb, db, sizeof(int64_t) * (size_t)rb);
    if (symbolic && ra > 1) sa[0] = -1;
    kiln_value a = kiln_placeholder(g, "a", dt, ra, sa);
    kiln_value b = kiln_placeholder(g, "b", dt, rb, sb);
    kiln_value y = kiln_matmul_t(g, a, b, ta, tb);
    if (kiln_graph_error(g)) fail_msg("%s", kiln_graph_error(g));
    kiln_tensor *fa = operand(dt, ra, da), *fb = operand(dt, rb, db);
    double rt = rtol_for(dt);
    int64_t kdim = ra == 1 ? da[0] : ta ? da[ra - 2] : da[ra - 1];
    /* absolute error grows with the length of the dot products */
    tu_diff(g, 1, &y, 2, (kiln_value[]){a, b}, (kiln_tensor *[]){fa, fb}, rt, rt * (double)(kdim > 1 ? kdim : 1));
    kiln_tensor_free(fa);
    kiln_tensor_free(fb);
    kiln_graph_free(g);
}

static void test_matmul_shapes(void **state)
{
    (void)state;
    for (int d = 0; d < 6; d++) {
        kiln_dtype dt = DTS[d];
        diff_matmul(dt, 2, (int64_t[]){7, 13}, 2, (int64_t[]){13, 5}, 0, 0, false);
        diff_matmul(dt, 2, (int64_t[]){1, 1}, 2, (int64_t[]){1, 1}, 0, 0, false);
        diff_matmul(dt, 1, (int64_t[]){13}, 2, (int64_t[]){13, 9}, 0, 0, false);
        diff_matmul(dt, 2, (int64_t[]){9, 13}, 1, (int64_t[]){13}, 0, 0, false);
        diff_matmul(dt, 1, (int64_t[]){13}, 1, (int64_t[]){13}, 0, 0, false);
        diff_matmul(dt, 4, (int64_t[]){2, 3, 4, 5}, 2, (int64_t[]){5, 6}, 0, 0, true);
        diff_matmul(dt, 4, (int64_t[]){2, 1, 4, 5}, 3, (int64_t[]){3, 5, 6}, 0, 0, false);
        diff_matmul(dt, 3, (int64_t[]){3, 5, 4}, 3, (int64_t[]){3, 6, 5}, 1, 1, true);
        diff_matmul(dt, 2, (int64_t[]){13, 7}, 2, (int64_t[]){13, 5}, 1, 0, false);
        diff_matmul(dt, 2, (int64_t[]){7, 13}, 2, (int64_t[]){5, 13}, 0, 1, false);
        diff_matmul(dt, 2, (int64_t[]){0, 4}, 2, (int64_t[]){4, 3}, 0, 0, false);
        diff_matmul(dt, 2, (int64_t[]){3, 0}, 2, (int64_t[]){0, 3}, 0, 0, false);
    }
    /* several register blocks and packed K slices, and a parallel split */
    diff_matmul(KILN_F32, 2, (int64_t[]){67, 300}, 2, (int64_t[]){300, 71}, 0, 0, false);
    diff_matmul(KILN_F32, 2, (int64_t[]){300, 67}, 2, (int64_t[]){71, 300}, 1, 1, false);
    diff_matmul(KILN_F64, 2, (int64_t[]){129, 257}, 2, (int64_t[]){257, 33}, 0, 0, true);
    diff_matmul(KILN_F32, 3, (int64_t[]){8, 40, 64}, 3, (int64_t[]){8, 64, 48}, 0, 0, true);
}

static void diff_gemm(kiln_dtype dt, int64_t m, int64_t n, int64_t kk, int ta, int tb, int crank,
                      const int64_t *cdims, double alpha, double beta)
{
    kiln_graph *g = kiln_graph_new();
    int64_t da[2] = {ta ? kk : m, ta ? m : kk}, db[2] = {tb ? n : kk, tb ? kk : n};
    kiln_value a = kiln_placeholder(g, "a", dt, 2, da);
    kiln_value b = kiln_placeholder(g, "b", dt, 2, db);
    kiln_value c = crank >= 0 ? kiln_placeholder(g, "c", dt, crank, cdims) : kiln_value_invalid();
    kiln_value y = kiln_gemm(g, a, b, c, alpha, beta, ta, tb);
    if (kiln_graph_error(g)) fail_msg("%s", kiln_graph_error(g));
    kiln_tensor *f[3] = {operand(dt, 2, da), operand(dt, 2, db), crank >= 0 ? operand(dt, crank, cdims) : NULL};
    double rt = rtol_for(dt);
    tu_diff(g, 1, &y, crank >= 0 ? 3 : 2, (kiln_value[]){a, b, c}, f, rt, rt * (double)kk * 4);
    for (int i = 0; i < 3; i++) kiln_tensor_free(f[i]);
    kiln_graph_free(g);
}

static void test_gemm(void **state)
{
    (void)state;
    static const kiln_dtype FL[] = {KILN_F32, KILN_F64, KILN_F16, KILN_BF16};
    for (int d = 0; d < 4; d++) {
        kiln_dtype dt = FL[d];
        diff_gemm(dt, 7, 5, 13, 0, 0, -1, NULL, 1.0, 1.0);
        diff_gemm(dt, 7, 5, 13, 1, 0, 1, (int64_t[]){5}, 0.5, 2.0);
        diff_gemm(dt, 7, 5, 13, 0, 1, 2, (int64_t[]){7, 1}, 1.5, -1.0);
        diff_gemm(dt, 7, 5, 13, 1, 1, 2, (int64_t[]){1, 5}, 1.0, 0.25);
        diff_gemm(dt, 7, 5, 13, 0, 0, 2, (int64_t[]){7, 5}, -1.0, 1.0);
        diff_gemm(dt, 7, 5, 13, 0, 0, 0, (int64_t[]){0}, 1.0, 3.0);
    }
    diff_gemm(KILN_F32, 100, 70, 520, 0, 1, 1, (int64_t[]){70}, 1.0, 1.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_matmul_shapes),
        TU_TEST(test_gemm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
