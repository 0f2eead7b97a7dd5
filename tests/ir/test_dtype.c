/* test_dtype.c -- dtype names and sizes, the f16 and bf16 conversions
 * against known bit patterns, and the generic element loads and stores
 * (integer wrap, float to int truncation and saturation). */
#include "common/testutil.h"

#include <math.h>
#include <string.h>

#include "ir.h"

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float f32_from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void test_names_and_sizes(void **state)
{
    (void)state;
    static const struct {
        kiln_dtype dt;
        const char *name;
        size_t size;
    } all[] = {
        {KILN_F32, "f32", 4}, {KILN_F64, "f64", 8}, {KILN_F16, "f16", 2},
        {KILN_BF16, "bf16", 2}, {KILN_I8, "i8", 1}, {KILN_U8, "u8", 1},
        {KILN_I32, "i32", 4}, {KILN_I64, "i64", 8}, {KILN_BOOL, "bool", 1},
    };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        assert_string_equal(kiln_dtype_name(all[i].dt), all[i].name);
        assert_int_equal(kiln_dtype_size(all[i].dt), all[i].size);
        assert_true(ir_dtype_valid((int)all[i].dt));
    }
    const int bad[] = {0, -1, 10, 1000, -100000};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_string_equal(kiln_dtype_name((kiln_dtype)bad[i]), "?");
        assert_int_equal(kiln_dtype_size((kiln_dtype)bad[i]), 0);
        assert_false(ir_dtype_valid(bad[i]));
    }
}

static void test_classes(void **state)
{
    (void)state;
    assert_true(ir_dtype_is_float(KILN_F32) && ir_dtype_is_float(KILN_F64) &&
                ir_dtype_is_float(KILN_F16) && ir_dtype_is_float(KILN_BF16));
    assert_false(ir_dtype_is_float(KILN_I32) || ir_dtype_is_float(KILN_BOOL));
    assert_true(ir_dtype_is_int(KILN_I8) && ir_dtype_is_int(KILN_U8) &&
                ir_dtype_is_int(KILN_I32) && ir_dtype_is_int(KILN_I64));
    assert_false(ir_dtype_is_int(KILN_BOOL) || ir_dtype_is_int(KILN_F16));
    assert_true(ir_dtype_is_signed(KILN_I8) && ir_dtype_is_signed(KILN_F16));
    assert_false(ir_dtype_is_signed(KILN_U8) || ir_dtype_is_signed(KILN_BOOL));
}

static void test_f32_to_f16(void **state)
{
    (void)state;
    static const struct {
        float in;
        uint16_t want;
    } cases[] = {
        {0.0f, 0x0000},
        {1.0f, 0x3c00},
        {-2.0f, 0xc000},
        {0.5f, 0x3800},
        {65504.0f, 0x7bff},           /* largest finite */
        {0x1p-14f, 0x0400},           /* smallest normal */
        {0x1p-24f, 0x0001},           /* smallest subnormal */
        {1023 * 0x1p-24f, 0x03ff},    /* largest subnormal */
        {-0x1p-24f, 0x8001},
        /* ties round to even */
        {1.0f + 0x1p-11f, 0x3c00},      /* between 0x3c00 and 0x3c01 */
        {1.0f + 3 * 0x1p-11f, 0x3c02},  /* between 0x3c01 and 0x3c02 */
        {2.0f - 0x1p-11f, 0x4000},      /* between 0x3bff.. 1.999 (0x3fff) and 2: carry into exponent */
        {0x1p-25f, 0x0000},             /* half the smallest subnormal: ties to 0 */
        {3 * 0x1p-25f, 0x0002},         /* 1.5 subnormal units: ties to 2 */
        {1023.5f * 0x1p-24f, 0x0400},   /* subnormal rounds up into the smallest normal */
        /* not ties: nearest */
        {1.0f + 0x1p-11f + 0x1p-20f, 0x3c01},
        {0x1.8p-25f, 0x0001},           /* 0.75 units -> 1 */
        {0x1p-26f, 0x0000},             /* 0.25 units -> 0 */
        /* overflow */
        {65519.0f, 0x7bff},            /* below the halfway point 65520 */
        {65520.0f, 0x7c00},            /* halfway to 65536: ties to even = inf */
        {1e6f, 0x7c00},
        {-1e6f, 0xfc00},
        {INFINITY, 0x7c00},
        {-INFINITY, 0xfc00},
        {-0.0f, 0x8000},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint16_t got = ir_f32_to_f16(cases[i].in);
        if (got != cases[i].want)
            fail_msg("f16(%a) = 0x%04x, want 0x%04x", (double)cases[i].in, got, cases[i].want);
    }
    /* NaN stays NaN (exponent all ones, mantissa non-zero), sign kept. */
    uint16_t n = ir_f32_to_f16(NAN);
    assert_int_equal(n & 0x7c00, 0x7c00);
    assert_int_not_equal(n & 0x03ff, 0);
    n = ir_f32_to_f16(f32_from_bits(0xff800001u)); /* a negative signalling NaN */
    assert_int_equal(n & 0xfc00, 0xfc00);
    assert_int_not_equal(n & 0x03ff, 0);
}

static void test_f16_to_f32(void **state)
{
    (void)state;
    static const struct {
        uint16_t in;
        float want;
    } cases[] = {
        {0x3c00, 1.0f},          {0x7bff, 65504.0f},     {0x0001, 0x1p-24f},
        {0x03ff, 1023 * 0x1p-24f}, {0x0400, 0x1p-14f},   {0xc000, -2.0f},
        {0x3555, 0x1.554p-2f},   {0x7c00, INFINITY},     {0xfc00, -INFINITY},
        {0x0000, 0.0f},          {0x3c01, 1.0f + 0x1p-10f},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        float got = ir_f16_to_f32(cases[i].in);
        if (f32_bits(got) != f32_bits(cases[i].want))
            fail_msg("f16 0x%04x -> %a, want %a", cases[i].in, (double)got, (double)cases[i].want);
    }
    float z = ir_f16_to_f32(0x8000);
    assert_true(z == 0.0f && signbit(z));
    assert_true(isnan(ir_f16_to_f32(0x7e00)));
    assert_true(isnan(ir_f16_to_f32(0x7c01)));
    assert_true(isnan(ir_f16_to_f32(0xfe00)) && signbit(ir_f16_to_f32(0xfe00)));
    /* Every finite half survives a round trip. */
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) continue; /* NaNs */
        uint16_t back = ir_f32_to_f16(ir_f16_to_f32((uint16_t)h));
        if (back != h) fail_msg("f16 0x%04x round trip gives 0x%04x", h, back);
    }
}

static void test_bf16(void **state)
{
    (void)state;
    static const struct {
        float in;
        uint16_t want;
    } cases[] = {
        {1.0f, 0x3f80},
        {-2.0f, 0xc000},
        {3.140625f, 0x4049},
        {0.0f, 0x0000},
        {-0.0f, 0x8000},
        {1.0f + 0x1p-8f, 0x3f80},           /* tie between 0x3f80 and 0x3f81: even */
        {1.0f + 3 * 0x1p-8f, 0x3f82},       /* tie between 0x3f81 and 0x3f82: even */
        {1.0f + 0x1p-8f + 0x1p-20f, 0x3f81}, /* just above the tie */
        {0x1.fep127f, 0x7f7f},              /* largest finite bf16 */
        {0x1.fffffep127f, 0x7f80},          /* FLT_MAX rounds to inf */
        {INFINITY, 0x7f80},
        {-INFINITY, 0xff80},
        {0x1p-133f, 0x0001},                /* smallest bf16 subnormal */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint16_t got = ir_f32_to_bf16(cases[i].in);
        if (got != cases[i].want)
            fail_msg("bf16(%a) = 0x%04x, want 0x%04x", (double)cases[i].in, got, cases[i].want);
    }
    assert_true(ir_bf16_to_f32(0x3f80) == 1.0f);
    assert_true(ir_bf16_to_f32(0x4049) == 3.140625f);
    assert_true(ir_bf16_to_f32(0xff80) == -INFINITY);
    float z = ir_bf16_to_f32(0x8000);
    assert_true(z == 0.0f && signbit(z));
    /* NaN stays NaN, also a signalling NaN whose payload is in the low bits
     * that truncation would drop. */
    uint16_t n = ir_f32_to_bf16(NAN);
    assert_true(isnan(ir_bf16_to_f32(n)));
    n = ir_f32_to_bf16(f32_from_bits(0x7f800001u));
    assert_true(isnan(ir_bf16_to_f32(n)));
    n = ir_f32_to_bf16(f32_from_bits(0xff800001u));
    assert_true(isnan(ir_bf16_to_f32(n)) && (n & 0x8000));
}

/* Stores of doubles into halves must round once, from the double: a value
 * just above a tie must not first round to the tie in f32. */
static void test_store_half_from_double(void **state)
{
    (void)state;
    uint16_t h[4];
    ir_store_f64(KILN_F16, h, 0, 1.0 + 0x1p-11 + 0x1p-40); /* above the tie: up */
    ir_store_f64(KILN_F16, h, 1, 1.0 + 0x1p-11);           /* the tie: even */
    ir_store_f64(KILN_F16, h, 2, 1.0 + 3 * 0x1p-11 - 0x1p-40); /* below the tie: down */
    ir_store_f64(KILN_F16, h, 3, -(1.0 + 0x1p-11 + 0x1p-40));
    assert_int_equal(h[0], 0x3c01);
    assert_int_equal(h[1], 0x3c00);
    assert_int_equal(h[2], 0x3c01);
    assert_int_equal(h[3], 0xbc01);
    ir_store_f64(KILN_BF16, h, 0, 1.0 + 0x1p-8 + 0x1p-40);
    ir_store_f64(KILN_BF16, h, 1, 1.0 + 0x1p-8);
    ir_store_f64(KILN_BF16, h, 2, 1.0 + 3 * 0x1p-8 - 0x1p-40);
    assert_int_equal(h[0], 0x3f81);
    assert_int_equal(h[1], 0x3f80);
    assert_int_equal(h[2], 0x3f81);
    /* Exact values, overflow, tiny values and NaN still convert as before. */
    ir_store_f64(KILN_F16, h, 0, 65504.0);
    ir_store_f64(KILN_F16, h, 1, 1e300);
    ir_store_f64(KILN_F16, h, 2, 0x1p-24);
    ir_store_f64(KILN_F16, h, 3, 0x1p-25 + 0x1p-60); /* just above half a unit: up */
    assert_int_equal(h[0], 0x7bff);
    assert_int_equal(h[1], 0x7c00);
    assert_int_equal(h[2], 0x0001);
    assert_int_equal(h[3], 0x0001);
    ir_store_f64(KILN_F16, h, 0, NAN);
    assert_true(isnan(ir_load_f64(KILN_F16, h, 0)));
    ir_store_f64(KILN_F16, h, 0, 1e-300);
    assert_int_equal(h[0], 0x0000);
    ir_store_f64(KILN_F16, h, 0, -0.0);
    assert_int_equal(h[0], 0x8000);
}

/* Oracle for a positive finite double: the nearest f16 by brute force over
 * the neighbours of a guess, ties to the even bit pattern. */
static uint16_t nearest_f16(double v)
{
    uint16_t g = ir_f32_to_f16((float)v);
    uint16_t best = g;
    double bestd = INFINITY;
    for (int d = -2; d <= 2; d++) {
        int h = (int)g + d;
        if (h < 0 || h > 0x7c00) continue;
        double x = ir_f16_to_f32((uint16_t)h);
        if (h == 0x7c00) x = 65536.0; /* rounding treats inf as the next step */
        double dist = fabs(x - v);
        if (dist < bestd || (dist == bestd && !(h & 1))) {
            bestd = dist;
            best = (uint16_t)h;
        }
    }
    return best;
}

static void test_store_half_sweep(void **state)
{
    (void)state;
    /* Points just around every half-way point of a range of halves. */
    for (uint32_t h = 0; h < 0x7bff; h += 7) {
        double lo = ir_f16_to_f32((uint16_t)h), hi = ir_f16_to_f32((uint16_t)(h + 1));
        double mid = (lo + hi) / 2;
        const double probes[] = {mid, mid * (1 + 0x1p-45), mid * (1 - 0x1p-45), lo, hi};
        for (size_t k = 0; k < sizeof probes / sizeof probes[0]; k++) {
            uint16_t got;
            ir_store_f64(KILN_F16, &got, 0, probes[k]);
            uint16_t want = nearest_f16(probes[k]);
            if (got != want) fail_msg("f16 store of %a gives 0x%04x, want 0x%04x", probes[k], got, want);
        }
    }
}

static void test_load_store_f64(void **state)
{
    (void)state;
    unsigned char buf[64];
    /* Floats round trip (f32 rounds as C does). */
    ir_store_f64(KILN_F32, buf, 1, 0.1);
    assert_true(((float *)buf)[1] == 0.1f);
    assert_true(ir_load_f64(KILN_F32, buf, 1) == (double)0.1f);
    ir_store_f64(KILN_F64, buf, 2, -1.25e-300);
    assert_true(ir_load_f64(KILN_F64, buf, 2) == -1.25e-300);
    ir_store_f64(KILN_F16, buf, 3, 1.0);
    assert_int_equal(((uint16_t *)buf)[3], 0x3c00);
    assert_true(ir_load_f64(KILN_F16, buf, 3) == 1.0);
    ir_store_f64(KILN_BF16, buf, 3, -2.0);
    assert_int_equal(((uint16_t *)buf)[3], 0xc000);
    assert_true(ir_load_f64(KILN_BF16, buf, 3) == -2.0);

    /* Float to int truncates toward zero, then wraps. */
    ir_store_f64(KILN_I32, buf, 0, -2.9);
    assert_int_equal(((int32_t *)buf)[0], -2);
    ir_store_f64(KILN_I32, buf, 0, 2.9);
    assert_int_equal(((int32_t *)buf)[0], 2);
    ir_store_f64(KILN_I8, buf, 0, 300.7); /* 300 wraps to 44 */
    assert_int_equal(((int8_t *)buf)[0], 44);
    ir_store_f64(KILN_I8, buf, 0, -129.5); /* -129 wraps to 127 */
    assert_int_equal(((int8_t *)buf)[0], 127);
    ir_store_f64(KILN_U8, buf, 0, -1.0);
    assert_int_equal(((uint8_t *)buf)[0], 255);
    ir_store_f64(KILN_U8, buf, 0, NAN);
    assert_int_equal(((uint8_t *)buf)[0], 0);
    ir_store_f64(KILN_I64, buf, 0, 1e30); /* saturates */
    assert_true(((int64_t *)buf)[0] == INT64_MAX);
    ir_store_f64(KILN_I64, buf, 0, -1e30);
    assert_true(((int64_t *)buf)[0] == INT64_MIN);
    ir_store_f64(KILN_I64, buf, 0, -INFINITY);
    assert_true(((int64_t *)buf)[0] == INT64_MIN);
    ir_store_f64(KILN_I64, buf, 0, 4503599627370497.0); /* 2^52 + 1: exact */
    assert_true(((int64_t *)buf)[0] == 4503599627370497LL);
    ir_store_f64(KILN_BOOL, buf, 0, 0.5);
    assert_int_equal(buf[0], 1);
    ir_store_f64(KILN_BOOL, buf, 0, -0.0);
    assert_int_equal(buf[0], 0);
    ir_store_f64(KILN_BOOL, buf, 0, NAN);
    assert_int_equal(buf[0], 1); /* NaN != 0 */

    /* Loads of every integer kind. */
    int8_t i8[2] = {-128, 127};
    uint8_t u8[2] = {255, 0};
    int32_t i32[1] = {INT32_MIN};
    int64_t i64[1] = {-(1LL << 53)};
    uint8_t b[2] = {0, 7};
    assert_true(ir_load_f64(KILN_I8, i8, 0) == -128.0);
    assert_true(ir_load_f64(KILN_U8, u8, 0) == 255.0);
    assert_true(ir_load_f64(KILN_I32, i32, 0) == -2147483648.0);
    assert_true(ir_load_f64(KILN_I64, i64, 0) == -9007199254740992.0);
    assert_true(ir_load_f64(KILN_BOOL, b, 1) == 1.0);
    assert_true(ir_load_f64(KILN_BOOL, b, 0) == 0.0);
}

static void test_load_store_i64(void **state)
{
    (void)state;
    unsigned char buf[64];
    /* Integer stores wrap, two's complement. */
    ir_store_i64(KILN_I8, buf, 0, 200);
    assert_int_equal(((int8_t *)buf)[0], -56);
    ir_store_i64(KILN_I8, buf, 0, -129);
    assert_int_equal(((int8_t *)buf)[0], 127);
    ir_store_i64(KILN_U8, buf, 0, -1);
    assert_int_equal(((uint8_t *)buf)[0], 255);
    ir_store_i64(KILN_U8, buf, 0, 256 + 7);
    assert_int_equal(((uint8_t *)buf)[0], 7);
    ir_store_i64(KILN_I32, buf, 0, (1LL << 32) + 5);
    assert_int_equal(((int32_t *)buf)[0], 5);
    ir_store_i64(KILN_I32, buf, 0, 2147483648LL);
    assert_int_equal(((int32_t *)buf)[0], INT32_MIN);
    ir_store_i64(KILN_I64, buf, 0, INT64_MIN);
    assert_true(((int64_t *)buf)[0] == INT64_MIN);
    ir_store_i64(KILN_BOOL, buf, 0, -5);
    assert_int_equal(buf[0], 1);
    ir_store_i64(KILN_BOOL, buf, 0, 0);
    assert_int_equal(buf[0], 0);
    /* ... and into floats convert. */
    ir_store_i64(KILN_F32, buf, 0, 3);
    assert_true(((float *)buf)[0] == 3.0f);
    ir_store_i64(KILN_F64, buf, 0, -(1LL << 40));
    assert_true(((double *)buf)[0] == -1099511627776.0);
    ir_store_i64(KILN_F16, buf, 0, 2049); /* halfway between 2048 and 2050: even */
    assert_int_equal(((uint16_t *)buf)[0], 0x6800);
    ir_store_i64(KILN_BF16, buf, 0, 1);
    assert_int_equal(((uint16_t *)buf)[0], 0x3f80);

    /* Float loads as int64: truncate toward zero, saturate, NaN is 0. */
    float f[6] = {-3.7f, 3.7f, 1e30f, -1e30f, NAN, -0.5f};
    assert_true(ir_load_i64(KILN_F32, f, 0) == -3);
    assert_true(ir_load_i64(KILN_F32, f, 1) == 3);
    assert_true(ir_load_i64(KILN_F32, f, 2) == INT64_MAX);
    assert_true(ir_load_i64(KILN_F32, f, 3) == INT64_MIN);
    assert_true(ir_load_i64(KILN_F32, f, 4) == 0);
    assert_true(ir_load_i64(KILN_F32, f, 5) == 0);
    double d[1] = {9.2233720368547758e18}; /* 2^63 */
    assert_true(ir_load_i64(KILN_F64, d, 0) == INT64_MAX);
    uint16_t h[1] = {0xc500}; /* -5.0 */
    assert_true(ir_load_i64(KILN_F16, h, 0) == -5);
    uint16_t bh[1] = {0x4049}; /* 3.140625 */
    assert_true(ir_load_i64(KILN_BF16, bh, 0) == 3);
    int8_t i8[1] = {-7};
    uint8_t u8[1] = {250};
    int32_t i32[1] = {-100000};
    int64_t i64[1] = {INT64_MAX};
    uint8_t b[1] = {3};
    assert_true(ir_load_i64(KILN_I8, i8, 0) == -7);
    assert_true(ir_load_i64(KILN_U8, u8, 0) == 250);
    assert_true(ir_load_i64(KILN_I32, i32, 0) == -100000);
    assert_true(ir_load_i64(KILN_I64, i64, 0) == INT64_MAX);
    assert_true(ir_load_i64(KILN_BOOL, b, 0) == 1);
}

static void test_type_str(void **state)
{
    (void)state;
    char buf[IR_TYPE_STR_MAX];
    ir_type t = {.dtype = KILN_F32, .rank = 3, .dims = {2, -1, 0}};
    assert_string_equal(ir_type_str(&t, buf, sizeof buf), "f32[2,?,0]");
    ir_type s = {.dtype = KILN_BOOL, .rank = 0};
    assert_string_equal(ir_type_str(&s, buf, sizeof buf), "bool[]");
    ir_type big = {.dtype = KILN_BF16, .rank = 8};
    for (int i = 0; i < 8; i++) big.dims[i] = INT64_MAX;
    ir_type_str(&big, buf, sizeof buf); /* must fit, and not overflow */
    assert_true(strlen(buf) < sizeof buf);
    char small[8];
    ir_type_str(&t, small, sizeof small); /* truncated, terminated */
    assert_true(strlen(small) < sizeof small);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_names_and_sizes),
        TU_TEST(test_classes),
        TU_TEST(test_f32_to_f16),
        TU_TEST(test_f16_to_f32),
        TU_TEST(test_bf16),
        TU_TEST(test_store_half_from_double),
        TU_TEST(test_store_half_sweep),
        TU_TEST(test_load_store_f64),
        TU_TEST(test_load_store_i64),
        TU_TEST(test_type_str),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
