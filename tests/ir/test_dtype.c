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
        {KILN_I16, "i16", 2}, {KILN_U16, "u16", 2}, {KILN_U32, "u32", 4},
        {KILN_U64, "u64", 8},
    };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        assert_string_equal(kiln_dtype_name(all[i].dt), all[i].name);
        assert_int_equal(kiln_dtype_size(all[i].dt), all[i].size);
        assert_true(ir_dtype_valid((int)all[i].dt));
    }
    const int bad[] = {0, -1, KILN_U2 + 1, 1000, -100000};
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
    assert_true(ir_dtype_is_int(KILN_I16) && ir_dtype_is_int(KILN_U16) &&
                ir_dtype_is_int(KILN_U32) && ir_dtype_is_int(KILN_U64));
    assert_false(ir_dtype_is_float(KILN_I16) || ir_dtype_is_float(KILN_U64));
    assert_true(ir_dtype_is_signed(KILN_I16));
    assert_false(ir_dtype_is_signed(KILN_U16) || ir_dtype_is_signed(KILN_U32) ||
                 ir_dtype_is_signed(KILN_U64));
}

/* i16, u16, u32, u64: wrapping stores, exact u64 round trips, unsigned
 * order, and conversions to and from double. */
static void test_load_store_wide_ints(void **state)
{
    (void)state;
    unsigned char buf[16];
    ir_store_i64(KILN_I16, buf, 0, 40000); /* 40000 - 65536 */
    assert_int_equal(((int16_t *)buf)[0], -25536);
    assert_true(ir_load_i64(KILN_I16, buf, 0) == -25536);
    assert_true(ir_load_f64(KILN_I16, buf, 0) == -25536.0);
    ir_store_i64(KILN_U16, buf, 0, -1);
    assert_int_equal(((uint16_t *)buf)[0], 65535);
    assert_true(ir_load_i64(KILN_U16, buf, 0) == 65535);
    ir_store_i64(KILN_U32, buf, 0, (1LL << 32) + 3); /* wraps to 3 */
    assert_int_equal(((uint32_t *)buf)[0], 3);
    ir_store_i64(KILN_U32, buf, 0, -1);
    assert_true(((uint32_t *)buf)[0] == 4294967295u);
    assert_true(ir_load_i64(KILN_U32, buf, 0) == 4294967295LL); /* not -1 */
    assert_true(ir_load_f64(KILN_U32, buf, 0) == 4294967295.0);

    /* u64: every bit survives int64 */
    const uint64_t vals[] = {0, 1, 0x7fffffffffffffffu, 0x8000000000000000u, 0xfffffffffffffffeu,
                             0xffffffffffffffffu};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        uint64_t src = vals[i];
        int64_t v = ir_load_i64(KILN_U64, &src, 0);
        ir_store_i64(KILN_U64, buf, 0, v);
        uint64_t back;
        memcpy(&back, buf, 8);
        assert_true(back == src);
    }
    uint64_t big = 0xffffffffffffffffu;
    assert_true(ir_load_f64(KILN_U64, &big, 0) == 18446744073709551616.0); /* rounds up */
    /* ir_int_order: unsigned order for u64, unchanged for the rest */
    int64_t top = ir_load_i64(KILN_U64, &big, 0);
    assert_true(ir_int_order(KILN_U64, top) > ir_int_order(KILN_U64, 1));
    assert_true(ir_int_order(KILN_U64, 0) < ir_int_order(KILN_U64, INT64_MAX));
    assert_true(ir_int_order(KILN_I64, -1) < ir_int_order(KILN_I64, 1));

    /* doubles into u64: [2^63, 2^64) exactly, beyond saturates, below wraps */
    ir_store_f64(KILN_U64, buf, 0, 9223372036854775808.0 * 1.5);
    memcpy(&big, buf, 8);
    assert_true(big == 0xc000000000000000u);
    ir_store_f64(KILN_U64, buf, 0, 1e30);
    memcpy(&big, buf, 8);
    assert_true(big == UINT64_MAX);
    ir_store_f64(KILN_U64, buf, 0, 3.9);
    memcpy(&big, buf, 8);
    assert_true(big == 3);
    ir_store_f64(KILN_U64, buf, 0, NAN);
    memcpy(&big, buf, 8);
    assert_true(big == 0);
    ir_store_f64(KILN_U32, buf, 0, 3000000000.7); /* above INT32_MAX */
    assert_true(((uint32_t *)buf)[0] == 3000000000u);
    ir_store_f64(KILN_I16, buf, 0, -2.9);
    assert_int_equal(((int16_t *)buf)[0], -2);
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

/* ---- storage dtypes: float8, float4, int4, int2 (ONNX Cast rules) ---- */

static void test_storage_names(void **state)
{
    (void)state;
    static const struct {
        kiln_dtype dt;
        const char *name;
        bool fl;
    } all[] = {
        {KILN_F8E4M3FN, "f8e4m3fn", true}, {KILN_F8E4M3FNUZ, "f8e4m3fnuz", true},
        {KILN_F8E5M2, "f8e5m2", true},     {KILN_F8E5M2FNUZ, "f8e5m2fnuz", true},
        {KILN_F8E8M0, "f8e8m0", true},     {KILN_F4E2M1, "f4e2m1", true},
        {KILN_I4, "i4", false},            {KILN_U4, "u4", false},
        {KILN_I2, "i2", false},            {KILN_U2, "u2", false},
    };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        assert_true(ir_dtype_valid((int)all[i].dt));
        assert_string_equal(kiln_dtype_name(all[i].dt), all[i].name);
        assert_int_equal(kiln_dtype_size(all[i].dt), 1); /* one byte an element, even 4- and 2-bit */
        assert_true(ir_dtype_is_storage(all[i].dt));
        assert_int_equal(ir_dtype_is_storage_float(all[i].dt), all[i].fl);
        assert_false(ir_dtype_is_float(all[i].dt) || ir_dtype_is_int(all[i].dt));
    }
    assert_false(ir_dtype_is_storage(KILN_F32) || ir_dtype_is_storage(KILN_U8) ||
                 ir_dtype_is_storage(KILN_U64));
}

typedef struct {
    kiln_dtype dt;
    double in;
    int saturate;
    uint8_t want;
} storage_case;

static void check_storage_cases(const storage_case *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t got = ir_storage_from_f64(c[i].dt, c[i].in, c[i].saturate != 0);
        if (got != c[i].want)
            fail_msg("%s(%a, saturate=%d) = 0x%02x, want 0x%02x", kiln_dtype_name(c[i].dt), c[i].in,
                     c[i].saturate, got, c[i].want);
    }
}

static void test_f8e4m3fn(void **state)
{
    (void)state;
    const storage_case c[] = {
        {KILN_F8E4M3FN, 1.0, 1, 0x38},     {KILN_F8E4M3FN, -1.0, 1, 0xb8},
        {KILN_F8E4M3FN, 448, 1, 0x7e},     {KILN_F8E4M3FN, 0.5, 1, 0x30},
        {KILN_F8E4M3FN, 0x1p-9, 1, 0x01},  /* smallest subnormal */
        {KILN_F8E4M3FN, 0x1p-10, 1, 0x00}, /* half of it: ties to even (0) */
        {KILN_F8E4M3FN, 0x3p-10, 1, 0x02}, /* 1.5 units: ties to 2 */
        {KILN_F8E4M3FN, 7 * 0x1p-9 + 0x1p-10, 1, 0x08}, /* rounds up into the smallest normal */
        {KILN_F8E4M3FN, 1.0625, 1, 0x38},  /* 1 + 1/16: tie between 1 and 1.125, even */
        {KILN_F8E4M3FN, 1.1875, 1, 0x3a},  /* 1 + 3/16: tie, to even 1.25 */
        {KILN_F8E4M3FN, 464, 0, 0x7e},     /* halfway to 480: ties to even 448, in range */
        {KILN_F8E4M3FN, 470, 1, 0x7e},     /* rounds to 480: out of range, saturates */
        {KILN_F8E4M3FN, 470, 0, 0x7f},     /* ... or NaN */
        {KILN_F8E4M3FN, 1e6, 1, 0x7e},     {KILN_F8E4M3FN, -1e6, 1, 0xfe},
        {KILN_F8E4M3FN, 1e6, 0, 0x7f},     {KILN_F8E4M3FN, -1e6, 0, 0xff},
        {KILN_F8E4M3FN, INFINITY, 1, 0x7e}, {KILN_F8E4M3FN, -INFINITY, 0, 0xff},
        {KILN_F8E4M3FN, NAN, 1, 0x7f},     {KILN_F8E4M3FN, -0.0, 1, 0x80},
        {KILN_F8E4M3FN, -1e-7, 1, 0x80},   /* underflow keeps the sign */
    };
    check_storage_cases(c, sizeof c / sizeof c[0]);
    assert_true(ir_storage_to_f32(KILN_F8E4M3FN, 0x7e) == 448.0f);
    assert_true(ir_storage_to_f32(KILN_F8E4M3FN, 0x38) == 1.0f);
    assert_true(ir_storage_to_f32(KILN_F8E4M3FN, 0x01) == 0x1p-9f);
    assert_true(ir_storage_to_f32(KILN_F8E4M3FN, 0x07) == 7 * 0x1p-9f);
    assert_true(ir_storage_to_f32(KILN_F8E4M3FN, 0xfe) == -448.0f);
    assert_true(isnan(ir_storage_to_f32(KILN_F8E4M3FN, 0x7f)));
    assert_true(isnan(ir_storage_to_f32(KILN_F8E4M3FN, 0xff)));
    float z = ir_storage_to_f32(KILN_F8E4M3FN, 0x80);
    assert_true(z == 0 && signbit(z));
}

static void test_f8_fnuz_and_e5m2(void **state)
{
    (void)state;
    const storage_case c[] = {
        /* E4M3FNUZ: bias 8, max 240, one NaN (0x80), no -0 */
        {KILN_F8E4M3FNUZ, 1.0, 1, 0x40},   {KILN_F8E4M3FNUZ, 240, 1, 0x7f},
        {KILN_F8E4M3FNUZ, -240, 1, 0xff},  {KILN_F8E4M3FNUZ, 1e6, 1, 0x7f},
        {KILN_F8E4M3FNUZ, 1e6, 0, 0x80},   {KILN_F8E4M3FNUZ, -INFINITY, 0, 0x80},
        {KILN_F8E4M3FNUZ, -INFINITY, 1, 0xff},
        {KILN_F8E4M3FNUZ, NAN, 1, 0x80},   {KILN_F8E4M3FNUZ, -0.0, 1, 0x00},
        {KILN_F8E4M3FNUZ, -1e-9, 1, 0x00},
        /* E5M2: bias 15, max 57344, inf 0x7c */
        {KILN_F8E5M2, 1.0, 1, 0x3c},       {KILN_F8E5M2, 57344, 1, 0x7b},
        {KILN_F8E5M2, 61440, 1, 0x7b},     /* halfway to 65536: to even = overflow */
        {KILN_F8E5M2, 61440, 0, 0x7c},     {KILN_F8E5M2, -1e6, 0, 0xfc},
        {KILN_F8E5M2, INFINITY, 1, 0x7b},  {KILN_F8E5M2, INFINITY, 0, 0x7c},
        {KILN_F8E5M2, 0x1p-16, 1, 0x01},   /* smallest subnormal */
        {KILN_F8E5M2, NAN, 0, 0x7f},       {KILN_F8E5M2, -0.0, 1, 0x80},
        /* E5M2FNUZ: bias 16 */
        {KILN_F8E5M2FNUZ, 1.0, 1, 0x40},   {KILN_F8E5M2FNUZ, 57344, 1, 0x7f},
        {KILN_F8E5M2FNUZ, 1e6, 0, 0x80},   {KILN_F8E5M2FNUZ, NAN, 1, 0x80},
        {KILN_F8E5M2FNUZ, -0.0, 0, 0x00},
    };
    check_storage_cases(c, sizeof c / sizeof c[0]);
    assert_true(isnan(ir_storage_to_f32(KILN_F8E4M3FNUZ, 0x80)));
    assert_true(ir_storage_to_f32(KILN_F8E4M3FNUZ, 0x7f) == 240.0f);
    assert_true(ir_storage_to_f32(KILN_F8E4M3FNUZ, 0x00) == 0.0f);
    assert_true(ir_storage_to_f32(KILN_F8E5M2, 0x7b) == 57344.0f);
    assert_true(isinf(ir_storage_to_f32(KILN_F8E5M2, 0x7c)));
    assert_true(ir_storage_to_f32(KILN_F8E5M2, 0xfc) == -INFINITY);
    assert_true(isnan(ir_storage_to_f32(KILN_F8E5M2, 0x7d)));
    assert_true(isnan(ir_storage_to_f32(KILN_F8E5M2FNUZ, 0x80)));
    assert_true(ir_storage_to_f32(KILN_F8E5M2FNUZ, 0x7f) == 57344.0f);
    /* every non-NaN code survives a round trip through f32 */
    const kiln_dtype f8[] = {KILN_F8E4M3FN, KILN_F8E4M3FNUZ, KILN_F8E5M2, KILN_F8E5M2FNUZ};
    for (size_t t = 0; t < 4; t++)
        for (int code = 0; code < 256; code++) {
            float v = ir_storage_to_f32(f8[t], (uint8_t)code);
            if (isnan(v) || (code == 0x80 && v == 0)) continue;
            uint8_t back = ir_storage_from_f64(f8[t], v, false);
            if (back != code)
                fail_msg("%s: 0x%02x -> %a -> 0x%02x", kiln_dtype_name(f8[t]), code, (double)v, back);
        }
}

static void test_f8e8m0_and_f4e2m1(void **state)
{
    (void)state;
    const storage_case c[] = {
        /* E8M0: 2^(code - 127), rounding up to the next power of two */
        {KILN_F8E8M0, 1.0, 1, 0x7f},      {KILN_F8E8M0, 2.0, 1, 0x80},
        {KILN_F8E8M0, 3.0, 1, 0x81},      {KILN_F8E8M0, 0.75, 1, 0x7f},
        {KILN_F8E8M0, -4.0, 1, 0x81},     /* the sign is dropped */
        {KILN_F8E8M0, 0x1p127, 1, 0xfe},  {KILN_F8E8M0, 0x1.8p127, 1, 0xfe},
        {KILN_F8E8M0, 0x1.8p127, 0, 0xff}, {KILN_F8E8M0, NAN, 1, 0xff},
        {KILN_F8E8M0, INFINITY, 1, 0xff}, {KILN_F8E8M0, 0.0, 1, 0x00},
        /* F4E2M1: 0, 0.5, 1, 1.5, 2, 3, 4, 6; always saturating; NaN -> -0 */
        {KILN_F4E2M1, 0.5, 1, 0x1},       {KILN_F4E2M1, 6.0, 1, 0x7},
        {KILN_F4E2M1, 5.0, 1, 0x6},       /* tie between 4 and 6: even */
        {KILN_F4E2M1, 0.25, 1, 0x0},      {KILN_F4E2M1, 0.75, 1, 0x2},
        {KILN_F4E2M1, -3.5, 1, 0xe},      {KILN_F4E2M1, 100, 0, 0x7},
        {KILN_F4E2M1, -INFINITY, 0, 0xf}, {KILN_F4E2M1, NAN, 1, 0x8},
        {KILN_F4E2M1, -0.0, 1, 0x8},
    };
    check_storage_cases(c, sizeof c / sizeof c[0]);
    assert_true(ir_storage_to_f32(KILN_F8E8M0, 0x7f) == 1.0f);
    assert_true(ir_storage_to_f32(KILN_F8E8M0, 0x00) == 0x1p-127f);
    assert_true(ir_storage_to_f32(KILN_F8E8M0, 0xfe) == 0x1p127f);
    assert_true(isnan(ir_storage_to_f32(KILN_F8E8M0, 0xff)));
    const float f4[16] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6, -0.0f, -0.5f, -1, -1.5f, -2, -3, -4, -6};
    for (int code = 0; code < 16; code++) assert_true(ir_storage_to_f32(KILN_F4E2M1, (uint8_t)code) == f4[code]);
}

static void test_int4_int2(void **state)
{
    (void)state;
    /* as Cast to the wider integers: truncate toward zero, then wrap; the
     * byte holds the value, sign-extended for i4/i2 */
    const storage_case c[] = {
        {KILN_I4, 7, 1, 0x07},   {KILN_I4, -8, 1, 0xf8},  {KILN_I4, 8, 1, 0xf8},
        {KILN_I4, -9, 1, 0x07},  {KILN_I4, 2.7, 1, 0x02}, {KILN_I4, -2.7, 1, 0xfe},
        {KILN_I4, NAN, 1, 0x00}, {KILN_U4, 15, 1, 0x0f},  {KILN_U4, 16, 1, 0x00},
        {KILN_U4, -1, 1, 0x0f},  {KILN_I2, 1, 1, 0x01},   {KILN_I2, 2, 1, 0xfe},
        {KILN_I2, -3, 1, 0x01},  {KILN_U2, -1, 1, 0x03},  {KILN_U2, 4, 1, 0x00},
    };
    check_storage_cases(c, sizeof c / sizeof c[0]);
    uint8_t buf[4];
    ir_store_i64(KILN_I4, buf, 0, 23); /* 23 = 16 + 7 */
    ir_store_i64(KILN_U2, buf, 1, -2);
    ir_store_f64(KILN_I2, buf, 2, -1.5);
    assert_int_equal(buf[0], 7);
    assert_int_equal(buf[1], 2);
    assert_int_equal(buf[2], 0xff);
    assert_true(ir_load_i64(KILN_I2, buf, 2) == -1);
    assert_true(ir_load_f64(KILN_I4, (uint8_t[]){0xf8}, 0) == -8.0);
    assert_true(ir_load_i64(KILN_U4, (uint8_t[]){0x0f}, 0) == 15);
    /* loads of float8 go through the format */
    assert_true(ir_load_f64(KILN_F8E4M3FN, (uint8_t[]){0x7e}, 0) == 448.0);
    assert_true(ir_load_i64(KILN_F8E5M2, (uint8_t[]){0xbc}, 0) == -1); /* -1.0 */
    ir_store_f64(KILN_F8E4M3FN, buf, 3, 1e9); /* stores saturate */
    assert_int_equal(buf[3], 0x7e);
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
        TU_TEST(test_load_store_wide_ints),
        TU_TEST(test_type_str),
        TU_TEST(test_storage_names),
        TU_TEST(test_f8e4m3fn),
        TU_TEST(test_f8_fnuz_and_e5m2),
        TU_TEST(test_f8e8m0_and_f4e2m1),
        TU_TEST(test_int4_int2),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
