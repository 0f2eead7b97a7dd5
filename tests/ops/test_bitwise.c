/* test_bitwise.c -- the ops of ir/ops/bitwise.c (BitwiseAnd, BitwiseOr,
 * BitwiseXor, BitwiseNot, BitShift): reference results computed by hand
 * (with broadcasting, every integer width, bool, shift amounts at and past
 * the width), inference errors, and autodiff treating them as carrying no
 * gradient. */
#include "common/testutil.h"

#include <stdbool.h>
#include <string.h>

#include "ir.h"

/* A 1-D tensor of dtype dt from int64 values (stored as ir_store_i64 does). */
static kiln_tensor *ints(kiln_dtype dt, int rank, const int64_t *dims, const int64_t *v)
{
    kiln_tensor *t = kiln_tensor_new(dt, rank, dims);
    assert_non_null(t);
    for (size_t i = 0; i < kiln_tensor_size(t); i++) ir_store_i64(dt, kiln_tensor_data(t), i, v[i]);
    return t;
}

/* op(a[, b]) with the reference backend; the result must equal want (as
 * ir_load_i64 reads it: u64 above INT64_MAX reads negative). */
static void check(const char *op, kiln_tensor *ta, kiln_tensor *tb, const char *dir, const int64_t *want,
                  size_t n)
{
    kiln_graph *g = kiln_graph_new();
    kiln_tensor *feeds[2] = {ta, tb};
    kiln_value ph[2];
    int nin = tb ? 2 : 1;
    for (int i = 0; i < nin; i++)
        ph[i] = kiln_placeholder(g, i ? "b" : "a", kiln_tensor_dtype(feeds[i]), kiln_tensor_rank(feeds[i]),
                                 kiln_tensor_dims(feeds[i]));
    kiln_attrs *a = NULL;
    if (dir) {
        a = kiln_attrs_new();
        kiln_attrs_string(a, "direction", dir);
    }
    kiln_value y = kiln_op(g, op, ph, nin, a);
    kiln_attrs_free(a);
    if (kiln_graph_error(g)) fail_msg("%s: %s", op, kiln_graph_error(g));
    kiln_tensor *r = tu_run(g, y, nin, ph, feeds);
    assert_int_equal(kiln_tensor_dtype(r), kiln_tensor_dtype(ta));
    assert_int_equal(kiln_tensor_size(r), n);
    tu_assert_ints(r, want, n);
    kiln_tensor_free(r);
    kiln_tensor_free(ta);
    kiln_tensor_free(tb);
    kiln_graph_free(g);
}

#define V(...) (const int64_t[]){__VA_ARGS__}
#define D1(n) 1, (const int64_t[]){n}

static void test_and_or_xor(void **state)
{
    (void)state;
    /* 12 = 1100b, 10 = 1010b: and 1000b, or 1110b, xor 0110b */
    check("BitwiseAnd", ints(KILN_I32, D1(3), V(12, -1, 0x7f0)), ints(KILN_I32, D1(3), V(10, -8, 0x0ff)), NULL,
          V(8, -8, 0xf0), 3);
    check("BitwiseOr", ints(KILN_I32, D1(3), V(12, -16, 0x700)), ints(KILN_I32, D1(3), V(10, 3, 0x0ff)), NULL,
          V(14, -13, 0x7ff), 3);
    check("BitwiseXor", ints(KILN_I32, D1(3), V(12, -1, 5)), ints(KILN_I32, D1(3), V(10, 5, 5)), NULL,
          V(6, -6, 0), 3);
    /* every width: all-ones and the sign bit */
    check("BitwiseAnd", ints(KILN_I8, D1(2), V(-1, -128)), ints(KILN_I8, D1(2), V(0x55, -1)), NULL, V(0x55, -128), 2);
    check("BitwiseXor", ints(KILN_U8, D1(2), V(0xff, 0xf0)), ints(KILN_U8, D1(2), V(0x0f, 0xff)), NULL,
          V(0xf0, 0x0f), 2);
    check("BitwiseOr", ints(KILN_I16, D1(2), V(-32768, 0x0f00)), ints(KILN_I16, D1(2), V(1, 0x00f0)), NULL,
          V(-32767, 0x0ff0), 2);
    check("BitwiseAnd", ints(KILN_U16, D1(2), V(0xffff, 0xabcd)), ints(KILN_U16, D1(2), V(0x8001, 0x0ff0)), NULL,
          V(0x8001, 0x0bc0), 2);
    check("BitwiseXor", ints(KILN_U32, D1(2), V(0xffffffff, 0x80000000)), ints(KILN_U32, D1(2), V(0x0000ffff, 1)),
          NULL, V(0xffff0000, 0x80000001), 2);
    check("BitwiseOr", ints(KILN_U64, D1(2), V(INT64_MIN, 0)), ints(KILN_U64, D1(2), V(1, -1)), NULL,
          V(INT64_MIN + 1, -1), 2);
    check("BitwiseAnd", ints(KILN_I64, D1(2), V(-1, 0x123456789)), ints(KILN_I64, D1(2), V(INT64_MIN, 0xff00ff00f)),
          NULL, V(INT64_MIN, 0x120056009), 2);
    /* bool: logical */
    check("BitwiseAnd", ints(KILN_BOOL, D1(4), V(0, 0, 1, 1)), ints(KILN_BOOL, D1(4), V(0, 1, 0, 1)), NULL,
          V(0, 0, 0, 1), 4);
    check("BitwiseOr", ints(KILN_BOOL, D1(4), V(0, 0, 1, 1)), ints(KILN_BOOL, D1(4), V(0, 1, 0, 1)), NULL,
          V(0, 1, 1, 1), 4);
    check("BitwiseXor", ints(KILN_BOOL, D1(4), V(0, 0, 1, 1)), ints(KILN_BOOL, D1(4), V(0, 1, 0, 1)), NULL,
          V(0, 1, 1, 0), 4);
}

static void test_broadcast(void **state)
{
    (void)state;
    /* [2,3] & [3] and [2,1] | [3] */
    check("BitwiseAnd", ints(KILN_U8, 2, (const int64_t[]){2, 3}, V(0xff, 0x0f, 0xf0, 7, 8, 9)),
          ints(KILN_U8, D1(3), V(0x3c, 0x3c, 1)), NULL, V(0x3c, 0x0c, 0, 4, 8, 1), 6);
    check("BitwiseOr", ints(KILN_I64, 2, (const int64_t[]){2, 1}, V(1, 16)), ints(KILN_I64, D1(3), V(2, 4, 8)),
          NULL, V(3, 5, 9, 18, 20, 24), 6);
    /* scalar shift amount */
    check("BitShift", ints(KILN_U8, D1(3), V(1, 2, 3)), ints(KILN_U8, 0, NULL, V(2)), "LEFT", V(4, 8, 12), 3);
}

static void test_not(void **state)
{
    (void)state;
    check("BitwiseNot", ints(KILN_I32, D1(4), V(0, -1, 5, INT32_MIN)), NULL, NULL, V(-1, 0, -6, INT32_MAX), 4);
    check("BitwiseNot", ints(KILN_U8, D1(3), V(0, 0xff, 0x0f)), NULL, NULL, V(0xff, 0, 0xf0), 3);
    check("BitwiseNot", ints(KILN_I8, D1(2), V(127, -128)), NULL, NULL, V(-128, 127), 2);
    check("BitwiseNot", ints(KILN_U16, D1(2), V(0, 0x1234)), NULL, NULL, V(0xffff, 0xedcb), 2);
    check("BitwiseNot", ints(KILN_U32, D1(1), V(1)), NULL, NULL, V(0xfffffffe), 1);
    check("BitwiseNot", ints(KILN_U64, D1(2), V(0, INT64_MAX)), NULL, NULL, V(-1, INT64_MIN), 2);
    check("BitwiseNot", ints(KILN_BOOL, D1(2), V(0, 1)), NULL, NULL, V(1, 0), 2);
}

static void test_shift(void **state)
{
    (void)state;
    /* u8: 0xff << 1 drops the top bit; shifting by 8 or more gives 0 */
    check("BitShift", ints(KILN_U8, D1(6), V(1, 0xff, 0x81, 3, 0xff, 0xff)), ints(KILN_U8, D1(6), V(0, 1, 7, 2, 8, 200)),
          "LEFT", V(1, 0xfe, 0x80, 12, 0, 0), 6);
    check("BitShift", ints(KILN_U8, D1(5), V(0x80, 0xff, 16, 0xff, 0xff)), ints(KILN_U8, D1(5), V(7, 4, 2, 8, 255)),
          "RIGHT", V(1, 0x0f, 4, 0, 0), 5);
    check("BitShift", ints(KILN_U16, D1(4), V(1, 0x8000, 0xffff, 0xffff)), ints(KILN_U16, D1(4), V(15, 15, 16, 17)),
          "LEFT", V(0x8000, 0, 0, 0), 4);
    check("BitShift", ints(KILN_U16, D1(3), V(0x8000, 0xffff, 0xffff)), ints(KILN_U16, D1(3), V(15, 16, 1)),
          "RIGHT", V(1, 0, 0x7fff), 3);
    check("BitShift", ints(KILN_U32, D1(4), V(1, 3, 0xffffffff, 0x80000000)), ints(KILN_U32, D1(4), V(31, 31, 32, 31)),
          "LEFT", V(0x80000000, 0x80000000, 0, 0), 4);
    check("BitShift", ints(KILN_U32, D1(3), V(0x80000000, 0xffffffff, 5)), ints(KILN_U32, D1(3), V(31, 32, 1)),
          "RIGHT", V(1, 0, 2), 3);
    /* u64: the top bit shifts in and out logically; amounts above INT64_MAX
     * (negative as int64) still count as >= 64 */
    check("BitShift", ints(KILN_U64, D1(4), V(1, 3, -1, -1)), ints(KILN_U64, D1(4), V(63, 63, 64, INT64_MIN)), "LEFT",
          V(INT64_MIN, INT64_MIN, 0, 0), 4);
    check("BitShift", ints(KILN_U64, D1(4), V(INT64_MIN, -1, -1, -1)), ints(KILN_U64, D1(4), V(63, 1, 64, -1)),
          "RIGHT", V(1, INT64_MAX, 0, 0), 4);
}

static void expect_error(const char *op, int n, kiln_dtype dt0, kiln_dtype dt1, const char *dir, const char *what)
{
    kiln_graph *g = kiln_graph_new();
    kiln_value ph[2];
    kiln_dtype dts[2] = {dt0, dt1};
    for (int i = 0; i < n; i++) ph[i] = kiln_placeholder(g, NULL, dts[i], 1, (const int64_t[]){3});
    kiln_attrs *a = NULL;
    if (dir) {
        a = kiln_attrs_new();
        kiln_attrs_string(a, "direction", dir);
    }
    kiln_value y = kiln_op(g, op, ph, n, a);
    kiln_attrs_free(a);
    if (kiln_value_ok(y)) fail_msg("%s: expected an error containing '%s'", op, what);
    tu_assert_graph_error(g, op, what, NULL);
    kiln_graph_free(g);
}

static void test_errors(void **state)
{
    (void)state;
    expect_error("BitwiseAnd", 2, KILN_F32, KILN_F32, NULL,
                 "input 0 has dtype f32, which it does not support (it takes integers or bool)");
    expect_error("BitwiseOr", 2, KILN_I32, KILN_I64, NULL, "different dtypes (i32 vs i64)");
    expect_error("BitwiseXor", 1, KILN_I32, KILN_I32, NULL, "takes 2 inputs, got 1");
    expect_error("BitwiseNot", 1, KILN_F64, KILN_F64, NULL, "dtype f64");
    expect_error("BitShift", 2, KILN_I32, KILN_I32, "LEFT", "dtype i32, which it does not support (it takes unsigned integers)");
    expect_error("BitShift", 2, KILN_BOOL, KILN_BOOL, "LEFT", "dtype bool");
    expect_error("BitShift", 2, KILN_U8, KILN_U8, "UP", "direction must be \"LEFT\" or \"RIGHT\", got \"UP\"");
    expect_error("BitShift", 2, KILN_U8, KILN_U8, NULL, "direction");
    expect_error("BitShift", 2, KILN_U8, KILN_U16, "RIGHT", "different dtypes (u8 vs u16)");
    /* shapes that do not broadcast */
    kiln_graph *g = kiln_graph_new();
    kiln_value ph[2] = {kiln_placeholder(g, "a", KILN_I32, 1, (const int64_t[]){3}),
                        kiln_placeholder(g, "b", KILN_I32, 1, (const int64_t[]){4})};
    kiln_value y = kiln_op(g, "BitwiseAnd", ph, 2, NULL);
    assert_false(kiln_value_ok(y));
    tu_assert_graph_error(g, "BitwiseAnd", "do not broadcast", NULL);
    kiln_graph_free(g);
}

/* Bitwise ops carry no gradient: a float path through a Cast to int, a
 * bitwise op and back differentiates (that branch contributes nothing),
 * rather than failing for a missing rule. */
static void test_no_gradient(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 1, (const int64_t[]){3});
    kiln_attrs *to_i = kiln_attrs_new(), *to_f = kiln_attrs_new();
    kiln_attrs_dtype(to_i, "to", KILN_I32);
    kiln_attrs_dtype(to_f, "to", KILN_F32);
    kiln_value xi = kiln_op(g, "Cast", &x, 1, to_i);
    kiln_tensor *t3 = ints(KILN_I32, 0, NULL, V(3));
    kiln_value three = kiln_constant(g, NULL, t3);
    kiln_tensor_free(t3);
    kiln_value m = kiln_op(g, "BitwiseAnd", (kiln_value[]){xi, three}, 2, NULL);
    m = kiln_op(g, "BitwiseNot", &m, 1, NULL);
    kiln_value mf = kiln_op(g, "Cast", &m, 1, to_f);
    kiln_value y = kiln_op(g, "Mul", (kiln_value[]){x, mf}, 2, NULL);
    kiln_attrs_free(to_i);
    kiln_attrs_free(to_f);
    kiln_value dx;
    kiln_status *st = kiln_status_new();
    kiln_gradients(g, &y, 1, &x, 1, NULL, &dx, st);
    if (kiln_status_code(st)) fail_msg("%s", kiln_status_message(st));
    kiln_status_free(st);
    /* dy/dx = mf = ~(x & 3) */
    kiln_tensor *feed = tu_f32(1, (const int64_t[]){3}, (const float[]){1, 6, 12});
    kiln_tensor *r = tu_run(g, dx, 1, &x, &feed);
    tu_assert_close(r, (const double[]){~(1 & 3), ~(6 & 3), ~(12 & 3)}, 3, 0, 0);
    kiln_tensor_free(r);
    kiln_tensor_free(feed);
    kiln_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_and_or_xor), TU_TEST(test_broadcast), TU_TEST(test_not),
        TU_TEST(test_shift),      TU_TEST(test_errors),    TU_TEST(test_no_gradient),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
