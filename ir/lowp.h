/* lowp.h -- conversions between f32 and the low-precision storage dtypes
 * (float8 E4M3FN/E4M3FNUZ/E5M2/E5M2FNUZ/E8M0, float4 E2M1, int4/uint4,
 * int2/uint2), following ONNX Cast: round to nearest even, the 'saturate'
 * attribute for the float8 types. Each element is one byte (sub-byte
 * types in the low bits; i4/i2 sign-extended).
 *
 * Header-only, plain C with no library calls, because two places compile
 * it: ir/dtype.c (reference kernels, importers) and the kernel library
 * codegen/kernels/kk_lowp.c (compiled code), which must agree bit for bit.
 * Dtype codes are the values of kiln_dtype. */
#ifndef KILN_LOWP_H
#define KILN_LOWP_H

#include <stdbool.h>
#include <stdint.h>

enum {
    LOWP_F8E4M3FN = 14,
    LOWP_F8E4M3FNUZ,
    LOWP_F8E5M2,
    LOWP_F8E5M2FNUZ,
    LOWP_F8E8M0,
    LOWP_F4E2M1,
    LOWP_I4,
    LOWP_U4,
    LOWP_I2,
    LOWP_U2
};

static inline uint32_t lowp_f32_bits(float f)
{
    union {
        float f;
        uint32_t u;
    } x;
    x.f = f;
    return x.u;
}

static inline float lowp_bits_f32(uint32_t u)
{
    union {
        float f;
        uint32_t u;
    } x;
    x.u = u;
    return x.f;
}

/* Layout of a minifloat: mantissa bits, exponent bias, the largest finite
 * magnitude code, the sign bit, NaN/inf codes (-1: none), and whether it
 * is an FNUZ type (no -0, one NaN: the sign bit alone). */
typedef struct {
    int mbits, bias, maxcode, signbit, nan, inf;
    bool uz;
} lowp_format;

static inline bool lowp_format_of(int dt, lowp_format *f)
{
    switch (dt) {
    case LOWP_F8E4M3FN:
        *f = (lowp_format){3, 7, 0x7e, 0x80, 0x7f, -1, false};
        return true;
    case LOWP_F8E4M3FNUZ:
        *f = (lowp_format){3, 8, 0x7f, 0x80, 0x80, -1, true};
        return true;
    case LOWP_F8E5M2:
        *f = (lowp_format){2, 15, 0x7b, 0x80, 0x7f, 0x7c, false};
        return true;
    case LOWP_F8E5M2FNUZ:
        *f = (lowp_format){2, 16, 0x7f, 0x80, 0x80, -1, true};
        return true;
    case LOWP_F4E2M1:
        *f = (lowp_format){1, 1, 0x7, 0x8, -1, -1, false};
        return true;
    default:
        return false;
    }
}

/* |x| (f32 bits, finite, non-zero) rounded to nearest even on the format's
 * grid, as a magnitude code; may exceed maxcode (overflow). */
static inline uint32_t lowp_round_magnitude(uint32_t abs, int mbits, int bias)
{
    int emin = 1 - bias;
    int field = (int)(abs >> 23);
    int e = field ? field - 127 : -126;
    uint64_t sig = (abs & 0x7fffffu) | (field ? 0x800000u : 0);
    int eq = e > emin ? e : emin;
    int shift = 23 + eq - e - mbits; /* >= 23 - mbits > 0 */
    if (shift >= 26) return 0;       /* below half the smallest step */
    uint64_t q = sig >> shift, rem = sig & ((1ull << shift) - 1), half = 1ull << (shift - 1);
    if (rem > half || (rem == half && (q & 1))) q++;
    /* subnormal: the code is q; normal: the exponent field carries in */
    return (uint32_t)(((uint64_t)(eq - emin) << mbits) + q);
}

/* f32 -> float8 E4M3FN/E4M3FNUZ/E5M2/E5M2FNUZ or float4 E2M1 code. */
static inline uint8_t lowp_from_f32_minifloat(const lowp_format *f, float x, bool saturate)
{
    uint32_t u = lowp_f32_bits(x), abs = u & 0x7fffffffu;
    uint32_t sign = (u >> 31) ? (uint32_t)f->signbit : 0;
    if (abs > 0x7f800000u) /* NaN; float4 has none and gives -0 (as ONNX) */
        return (uint8_t)(f->nan < 0 ? (uint32_t)f->signbit
                         : f->uz    ? (uint32_t)f->nan
                                    : sign | (uint32_t)f->nan);
    uint32_t m;
    bool over;
    if (abs == 0x7f800000u) {
        over = true;
        m = 0;
    } else {
        m = abs ? lowp_round_magnitude(abs, f->mbits, f->bias) : 0;
        over = m > (uint32_t)f->maxcode;
    }
    if (over) {
        if (saturate || f->nan < 0)
            m = (uint32_t)f->maxcode;
        else if (f->inf >= 0)
            m = (uint32_t)f->inf;
        else
            return (uint8_t)(f->uz ? (uint32_t)f->nan : sign | (uint32_t)f->nan);
    }
    if (m == 0 && f->uz) return 0; /* no -0 */
    return (uint8_t)(sign | m);
}

static inline float lowp_to_f32_minifloat(const lowp_format *f, uint8_t c)
{
    uint32_t code = c & (uint32_t)(f->signbit | (f->signbit - 1));
    if (f->uz && code == (uint32_t)f->nan) return lowp_bits_f32(0x7fc00000u);
    uint32_t sign = (code & (uint32_t)f->signbit) ? 0x80000000u : 0;
    uint32_t m = code & (uint32_t)(f->signbit - 1);
    if (!f->uz && f->nan >= 0 && (m == (uint32_t)f->nan || (f->inf >= 0 && m > (uint32_t)f->inf)))
        return lowp_bits_f32(sign | 0x7fc00000u);
    if (f->inf >= 0 && m == (uint32_t)f->inf) return lowp_bits_f32(sign | 0x7f800000u);
    uint32_t field = m >> f->mbits, man = m & ((1u << f->mbits) - 1);
    uint32_t bits;
    if (field == 0) {
        if (man == 0) return lowp_bits_f32(sign);
        /* subnormal: man * 2^(1 - bias - mbits); normalize into an f32 */
        int e = 1 - f->bias;
        while (!(man & (1u << f->mbits))) {
            man <<= 1;
            e--;
        }
        man &= (1u << f->mbits) - 1;
        bits = ((uint32_t)(e + 127) << 23) | (man << (23 - f->mbits));
    } else {
        bits = ((uint32_t)((int)field - f->bias + 127) << 23) | (man << (23 - f->mbits));
    }
    return lowp_bits_f32(sign | bits);
}

/* E8M0: an unsigned power of two 2^(code - 127), 0xFF is NaN. ONNX rounds
 * up (to the next power) by default; the sign is ignored. */
static inline uint8_t lowp_from_f32_e8m0(float x, bool saturate)
{
    uint32_t u = lowp_f32_bits(x) & 0x7fffffffu;
    uint32_t e = u >> 23, man = u & 0x7fffffu;
    if (e == 0xff) return 0xff; /* NaN and inf */
    if (e == 0) {
        /* subnormal f32: 2^-127 is code 0; anything above rounds up to 2^-126 */
        return man > 0x400000u ? 1 : 0;
    }
    if (man) e++;
    if (e == 0xff) return saturate ? 0xfe : 0xff;
    return (uint8_t)e;
}

static inline float lowp_to_f32_e8m0(uint8_t c)
{
    if (c == 0xff) return lowp_bits_f32(0x7fc00000u);
    if (c == 0) return lowp_bits_f32(0x00400000u); /* 2^-127, an f32 subnormal */
    return lowp_bits_f32((uint32_t)c << 23);
}

/* Range of the integer storage types. */
static inline bool lowp_int_range(int dt, int *lo, int *hi)
{
    switch (dt) {
    case LOWP_I4:
        *lo = -8;
        *hi = 7;
        return true;
    case LOWP_U4:
        *lo = 0;
        *hi = 15;
        return true;
    case LOWP_I2:
        *lo = -2;
        *hi = 1;
        return true;
    case LOWP_U2:
        *lo = 0;
        *hi = 3;
        return true;
    default:
        return false;
    }
}

/* The element as f32 (integers exactly). */
static inline float lowp_to_f32(int dt, uint8_t c)
{
    lowp_format f;
    if (lowp_format_of(dt, &f)) return lowp_to_f32_minifloat(&f, c);
    switch (dt) {
    case LOWP_F8E8M0:
        return lowp_to_f32_e8m0(c);
    case LOWP_I4:
        return (float)((int8_t)(uint8_t)(c << 4) >> 4);
    case LOWP_U4:
        return (float)(c & 0xf);
    case LOWP_I2:
        return (float)((int8_t)(uint8_t)(c << 6) >> 6);
    case LOWP_U2:
        return (float)(c & 0x3);
    default:
        return 0;
    }
}

/* Integer -> int4/uint4/int2/uint2: the low bits (wraps, as Cast to the
 * wider integers does), sign-extended for int4/int2. */
static inline uint8_t lowp_from_i64(int dt, int64_t v)
{
    int lo, hi;
    if (!lowp_int_range(dt, &lo, &hi)) return 0;
    uint64_t m = (uint64_t)v & (uint64_t)(hi - lo); /* hi - lo = 2^bits - 1 */
    if (lo < 0 && m > (uint64_t)hi) m |= ~(uint64_t)(hi - lo);
    return (uint8_t)m;
}

/* f32 -> float8/float4 (int4/int2: see lowp_from_f64). */
static inline uint8_t lowp_from_f32(int dt, float x, bool saturate)
{
    lowp_format f;
    if (lowp_format_of(dt, &f)) return lowp_from_f32_minifloat(&f, x, saturate);
    if (dt == LOWP_F8E8M0) return lowp_from_f32_e8m0(x, saturate);
    return 0;
}

/* double -> f32 rounding to odd (truncate, set the last bit when inexact),
 * so that the float8 rounding that follows is the only one. */
static inline float lowp_f64_to_f32_odd(double v)
{
    float f = (float)v;
    if (f - f != 0 || (double)f == v) return f; /* inf, NaN or exact */
    uint32_t u = lowp_f32_bits(f);
    if (((double)f > v) == (v > 0)) u--; /* step the magnitude toward zero */
    return lowp_bits_f32(u | 1u);
}

/* double -> any storage dtype. int4/int2 as Cast to the wider integers:
 * truncate toward zero, saturating to int64 (NaN: 0), then wrap. */
static inline uint8_t lowp_from_f64(int dt, double v, bool saturate)
{
    int lo, hi;
    if (!lowp_int_range(dt, &lo, &hi)) return lowp_from_f32(dt, lowp_f64_to_f32_odd(v), saturate);
    int64_t x = !(v == v)                     ? 0
                : v >= 9.2233720368547758e18  ? INT64_MAX
                : v <= -9.2233720368547758e18 ? INT64_MIN
                                              : (int64_t)v;
    return lowp_from_i64(dt, x);
}

#endif
