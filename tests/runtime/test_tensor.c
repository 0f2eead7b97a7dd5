/* test_tensor.c -- kiln_tensor: creation, copies, accessors, alignment,
 * zero fill, scalars and zero-size tensors, and bad arguments. */
#include "common/testutil.h"

#include <stdint.h>
#include <string.h>

#include "ir.h"

static void test_new_zero_filled_aligned(void **state)
{
    (void)state;
    const kiln_dtype all[] = {KILN_F32, KILN_F64, KILN_F16, KILN_BF16, KILN_I8,  KILN_U8, KILN_I32,
                              KILN_I64, KILN_BOOL, KILN_I16, KILN_U16,  KILN_U32, KILN_U64};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) {
        int64_t dims[3] = {3, 1, 5};
        kiln_tensor *t = kiln_tensor_new(all[k], 3, dims);
        assert_non_null(t);
        dims[0] = 99; /* the tensor keeps its own copy of the dims */
        assert_int_equal(kiln_tensor_dtype(t), all[k]);
        assert_int_equal(kiln_tensor_rank(t), 3);
        assert_int_equal(kiln_tensor_dims(t)[0], 3);
        assert_int_equal(kiln_tensor_dims(t)[1], 1);
        assert_int_equal(kiln_tensor_dims(t)[2], 5);
        assert_int_equal(kiln_tensor_size(t), 15);
        assert_int_equal(kiln_tensor_nbytes(t), 15 * kiln_dtype_size(all[k]));
        assert_int_equal((uintptr_t)kiln_tensor_data(t) % 64, 0);
        assert_ptr_equal(kiln_tensor_data(t), kiln_tensor_const_data(t));
        const unsigned char *p = kiln_tensor_const_data(t);
        for (size_t i = 0; i < kiln_tensor_nbytes(t); i++) assert_int_equal(p[i], 0);
        kiln_tensor_free(t);
    }
    /* Alignment holds for odd sizes too. */
    for (int64_t n = 1; n < 70; n += 3) {
        kiln_tensor *t = kiln_tensor_new(KILN_U8, 1, &n);
        assert_non_null(t);
        assert_int_equal((uintptr_t)kiln_tensor_data(t) % 64, 0);
        memset(kiln_tensor_data(t), 0xab, (size_t)n); /* writable, all of it */
        kiln_tensor_free(t);
    }
}

static void test_scalar_and_empty(void **state)
{
    (void)state;
    /* rank 0: one element; dims may be NULL */
    kiln_tensor *s = kiln_tensor_new(KILN_F64, 0, NULL);
    assert_non_null(s);
    assert_int_equal(kiln_tensor_rank(s), 0);
    assert_int_equal(kiln_tensor_size(s), 1);
    assert_int_equal(kiln_tensor_nbytes(s), 8);
    assert_true(*(double *)kiln_tensor_data(s) == 0.0);
    kiln_tensor_free(s);
    double v = 2.5;
    s = kiln_tensor_from_data(KILN_F64, 0, NULL, &v);
    assert_non_null(s);
    assert_true(*(const double *)kiln_tensor_const_data(s) == 2.5);
    kiln_tensor_free(s);

    /* a zero dim: no elements, still a valid tensor with a data pointer */
    kiln_tensor *e = kiln_tensor_new(KILN_F32, 2, (int64_t[]){4, 0});
    assert_non_null(e);
    assert_int_equal(kiln_tensor_size(e), 0);
    assert_int_equal(kiln_tensor_nbytes(e), 0);
    assert_int_equal(kiln_tensor_dims(e)[0], 4);
    assert_int_equal(kiln_tensor_dims(e)[1], 0);
    kiln_tensor *ec = kiln_tensor_copy(e);
    assert_non_null(ec);
    assert_int_equal(kiln_tensor_size(ec), 0);
    assert_int_equal(kiln_tensor_dims(ec)[0], 4);
    kiln_tensor_free(ec);
    kiln_tensor_free(e);
    /* from_data with no bytes to copy accepts NULL data */
    e = kiln_tensor_from_data(KILN_I32, 1, (int64_t[]){0}, NULL);
    assert_non_null(e);
    kiln_tensor_free(e);
    /* the maximum rank */
    int64_t d8[8] = {1, 2, 1, 2, 1, 2, 1, 2};
    kiln_tensor *t8 = kiln_tensor_new(KILN_I8, 8, d8);
    assert_non_null(t8);
    assert_int_equal(kiln_tensor_size(t8), 16);
    kiln_tensor_free(t8);
}

static void test_from_data_and_copy(void **state)
{
    (void)state;
    int32_t data[6] = {1, -2, 3, -4, 5, -6};
    kiln_tensor *t = kiln_tensor_from_data(KILN_I32, 2, (int64_t[]){2, 3}, data);
    assert_non_null(t);
    data[0] = 100; /* copied, not borrowed */
    const int32_t *p = kiln_tensor_const_data(t);
    assert_int_equal(p[0], 1);
    assert_int_equal(p[5], -6);
    assert_ptr_not_equal(p, data);

    kiln_tensor *c = kiln_tensor_copy(t);
    assert_non_null(c);
    assert_ptr_not_equal(kiln_tensor_data(c), kiln_tensor_data(t));
    assert_int_equal((uintptr_t)kiln_tensor_data(c) % 64, 0);
    tu_assert_shape(c, KILN_I32, 2, (int64_t[]){2, 3});
    assert_memory_equal(kiln_tensor_data(c), kiln_tensor_data(t), 24);
    ((int32_t *)kiln_tensor_data(c))[1] = 42; /* deep: the original is unchanged */
    assert_int_equal(p[1], -2);
    kiln_tensor_free(c);
    kiln_tensor_free(t);

    uint16_t h[3] = {0x3c00, 0xc000, 0x7bff};
    kiln_tensor *th = kiln_tensor_from_data(KILN_F16, 1, (int64_t[]){3}, h);
    tu_assert_close(th, (double[]){1, -2, 65504}, 3, 0, 0);
    kiln_tensor_free(th);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    int64_t d2[2] = {2, 3};
    float buf[6] = {0};
    assert_null(kiln_tensor_new((kiln_dtype)0, 2, d2));
    assert_null(kiln_tensor_new((kiln_dtype)(KILN_U2 + 1), 2, d2));
    assert_null(kiln_tensor_new((kiln_dtype)-3, 2, d2));
    int64_t d9[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    assert_null(kiln_tensor_new(KILN_F32, 9, d9));
    assert_null(kiln_tensor_new(KILN_F32, -1, d2));
    assert_null(kiln_tensor_new(KILN_F32, 2, (int64_t[]){2, -1}));
    assert_null(kiln_tensor_new(KILN_F32, 1, (int64_t[]){INT64_MIN}));
    assert_null(kiln_tensor_new(KILN_F32, 2, NULL));
    assert_null(kiln_tensor_from_data(KILN_F32, 2, NULL, buf));
    assert_null(kiln_tensor_from_data(KILN_F32, 2, d2, NULL)); /* bytes to copy, no data */
    assert_null(kiln_tensor_from_data((kiln_dtype)0, 2, d2, buf));
    assert_null(kiln_tensor_from_data(KILN_F32, 9, d9, buf));
    /* element counts and byte sizes that overflow */
    assert_null(kiln_tensor_new(KILN_F32, 2, (int64_t[]){INT64_MAX, 2}));
    assert_null(kiln_tensor_new(KILN_F32, 2, (int64_t[]){1LL << 40, 1LL << 40}));
    assert_null(kiln_tensor_new(KILN_F64, 1, (int64_t[]){1LL << 62}));
    /* a zero dim makes any other size fine (no elements) */
    kiln_tensor *z = kiln_tensor_new(KILN_F32, 2, (int64_t[]){INT64_MAX, 0});
    assert_non_null(z);
    assert_int_equal(kiln_tensor_size(z), 0);
    kiln_tensor_free(z);
    assert_null(kiln_tensor_copy(NULL));
}

static void test_null_tensor(void **state)
{
    (void)state;
    kiln_tensor_free(NULL);
    assert_null(kiln_tensor_data(NULL));
    assert_null(kiln_tensor_const_data(NULL));
    assert_int_equal(kiln_tensor_dtype(NULL), 0);
    assert_int_equal(kiln_tensor_rank(NULL), -1);
    assert_null(kiln_tensor_dims(NULL));
    assert_int_equal(kiln_tensor_size(NULL), 0);
    assert_int_equal(kiln_tensor_nbytes(NULL), 0);
    kiln_free(NULL);
    kiln_status_free(NULL);
    kiln_attrs_free(NULL);
}

static void test_internal_type_helpers(void **state)
{
    (void)state;
    ir_type t = {.dtype = KILN_BF16, .rank = 2, .dims = {3, 4}};
    kiln_tensor *x = ir_tensor_new_type(&t);
    assert_non_null(x);
    tu_assert_shape(x, KILN_BF16, 2, (int64_t[]){3, 4});
    ir_type back;
    memset(&back, 0x5a, sizeof back);
    ir_tensor_type(x, &back);
    assert_true(ir_type_equal(&t, &back));
    for (int i = 2; i < IR_MAX_RANK; i++) assert_int_equal(back.dims[i], 0);
    kiln_tensor_free(x);
}

static void test_status(void **state)
{
    (void)state;
    kiln_status *s = kiln_status_new();
    assert_non_null(s);
    assert_int_equal(kiln_status_code(s), KILN_OK);
    assert_string_equal(kiln_status_message(s), "");
    assert_int_equal(ir_set_status(s, KILN_ERR_NOT_FOUND, "no '%s' here", "x"), KILN_ERR_NOT_FOUND);
    assert_int_equal(kiln_status_code(s), KILN_ERR_NOT_FOUND);
    assert_string_equal(kiln_status_message(s), "no 'x' here");
    ir_status_ok(s);
    assert_int_equal(kiln_status_code(s), KILN_OK);
    assert_string_equal(kiln_status_message(s), "");
    assert_int_equal(kiln_status_code(NULL), KILN_OK);
    assert_string_equal(kiln_status_message(NULL), "");
    assert_int_equal(ir_set_status(NULL, KILN_ERR_IO, "x"), KILN_ERR_IO);
    assert_string_equal(kiln_status_code_name(KILN_OK), "OK");
    assert_string_equal(kiln_status_code_name(KILN_ERR_INVALID_ARGUMENT), "INVALID_ARGUMENT");
    assert_string_equal(kiln_status_code_name(KILN_ERR_OUT_OF_MEMORY), "OUT_OF_MEMORY");
    assert_string_equal(kiln_status_code_name(KILN_ERR_FAILED_PRECONDITION),
                        "FAILED_PRECONDITION");
    assert_string_equal(kiln_status_code_name(12345), "UNKNOWN");
    /* a status whose message could not be allocated still reads sensibly */
    ir_alloc_fail_after(0);
    ir_set_status(s, KILN_ERR_INTERNAL, "lost");
    ir_alloc_fail_after(-1);
    assert_int_equal(kiln_status_code(s), KILN_ERR_INTERNAL);
    assert_string_equal(kiln_status_message(s), "INTERNAL");
    kiln_status_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_new_zero_filled_aligned),
        TU_TEST(test_scalar_and_empty),
        TU_TEST(test_from_data_and_copy),
        TU_TEST(test_bad_arguments),
        TU_TEST(test_null_tensor),
        TU_TEST(test_internal_type_helpers),
        TU_TEST(test_status),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
