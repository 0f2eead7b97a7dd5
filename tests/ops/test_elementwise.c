/* test_elementwise.c -- elementwise ops: shape inference (with the error
 * cases) and reference results against hand-computed values. */
#include "common/testutil.h"

#include <math.h>

static void test_add_broadcast(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value a = kiln_placeholder(g, "a", KILN_F32, 2, (int64_t[]){2, 3});
    kiln_value b = kiln_placeholder(g, "b", KILN_F32, 1, (int64_t[]){3});
    kiln_value y = kiln_add(g, a, b);
    assert_null(kiln_graph_error(g));
    kiln_tensor *ta = tu_f32(2, (int64_t[]){2, 3}, (float[]){1, 2, 3, 4, 5, 6});
    kiln_tensor *tb = tu_f32(1, (int64_t[]){3}, (float[]){10, 20, 30});
    kiln_tensor *r = tu_run(g, y, 2, (kiln_value[]){a, b}, (kiln_tensor *[]){ta, tb});
    tu_assert_shape(r, KILN_F32, 2, (int64_t[]){2, 3});
    tu_assert_close(r, (double[]){11, 22, 33, 14, 25, 36}, 6, 0, 0);
    kiln_tensor_free(r);
    kiln_tensor_free(ta);
    kiln_tensor_free(tb);
    kiln_graph_free(g);
}

static void test_add_shape_mismatch(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value a = kiln_placeholder(g, "a", KILN_F32, 2, (int64_t[]){2, 3});
    kiln_value b = kiln_placeholder(g, "b", KILN_F32, 1, (int64_t[]){4});
    kiln_value y = kiln_add(g, a, b);
    assert_false(kiln_value_ok(y));
    tu_assert_graph_error(g, "Add", "broadcast", "f32[2,3]", "f32[4]", NULL);
    /* poisoned: building on y keeps the first error */
    kiln_value z = kiln_relu(g, y);
    assert_false(kiln_value_ok(z));
    tu_assert_graph_error(g, "Add", NULL);
    kiln_graph_free(g);
}

static void test_int_div(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value a = kiln_placeholder(g, "a", KILN_I32, 1, (int64_t[]){4});
    kiln_value b = kiln_placeholder(g, "b", KILN_I32, 1, (int64_t[]){4});
    kiln_value y = kiln_div(g, a, b);
    kiln_tensor *ta = tu_i32(1, (int64_t[]){4}, (int32_t[]){7, -7, 9, 0});
    kiln_tensor *tb = tu_i32(1, (int64_t[]){4}, (int32_t[]){2, 2, -4, 5});
    kiln_tensor *r = tu_run(g, y, 2, (kiln_value[]){a, b}, (kiln_tensor *[]){ta, tb});
    tu_assert_ints(r, (int64_t[]){3, -3, -2, 0}, 4); /* C truncation */
    kiln_tensor_free(r);
    int32_t *bd = kiln_tensor_data(tb);
    bd[1] = 0;
    tu_run_fails(g, y, 2, (kiln_value[]){a, b}, (kiln_tensor *[]){ta, tb}, "division by zero");
    kiln_tensor_free(ta);
    kiln_tensor_free(tb);
    kiln_graph_free(g);
}

static void test_sigmoid_gelu(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F64, 1, (int64_t[]){3});
    kiln_value s = kiln_sigmoid(g, x);
    kiln_value ge = kiln_gelu(g, x);
    kiln_tensor *tx = tu_f64(1, (int64_t[]){3}, (double[]){-1000, 0, 2});
    kiln_tensor *r = tu_run(g, s, 1, &x, &tx);
    tu_assert_close(r, (double[]){0, 0.5, 1 / (1 + exp(-2.0))}, 3, 1e-15, 0);
    kiln_tensor_free(r);
    r = tu_run(g, ge, 1, &x, &tx);
    /* gelu(2) = 2 * Phi(2) = 2 * 0.9772498680518208 */
    tu_assert_close(r, (double[]){-0.0, 0, 1.9544997361036416}, 3, 1e-14, 0);
    kiln_tensor_free(r);
    kiln_tensor_free(tx);
    kiln_graph_free(g);
}

static void test_dtype_errors(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value a = kiln_placeholder(g, "a", KILN_I32, 1, (int64_t[]){4});
    kiln_value y = kiln_exp(g, a);
    assert_false(kiln_value_ok(y));
    tu_assert_graph_error(g, "Exp", "i32", "supported: f32", NULL);
    kiln_graph_free(g);

    g = kiln_graph_new();
    a = kiln_placeholder(g, "a", KILN_I32, 1, (int64_t[]){4});
    kiln_value b = kiln_placeholder(g, "b", KILN_F32, 1, (int64_t[]){4});
    y = kiln_mul(g, a, b);
    tu_assert_graph_error(g, "Mul", "different dtypes", "i32", "f32", NULL);
    kiln_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_add_broadcast),
        TU_TEST(test_add_shape_mismatch),
        TU_TEST(test_int_div),
        TU_TEST(test_sigmoid_gelu),
        TU_TEST(test_dtype_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
