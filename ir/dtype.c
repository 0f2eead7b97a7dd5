/* dtype.c -- element types: names, sizes, half-precision conversions, and
 * generic element loads and stores used by the reference kernels. */
#include <math.h>
#include <string.h>

#include "ir.h"
#include "lowp.h"

_Static_assert((int)LOWP_F8E4M3FN == (int)KILN_F8E4M3FN && (int)LOWP_U2 == (int)KILN_U2, "lowp.h dtype codes");

/* Which dtypes of the enum the library accepts. A type is switched on here
 * once every layer (reference kernels, code generator, importers, file
 * formats) handles it. */
static const bool dtype_supported[KILN_U2 + 1] = {
    [KILN_F32] = true, [KILN_F64] = true, [KILN_F16] = true, [KILN_BF16] = true,
    [KILN_I8] = true,  [KILN_U8] = true,  [KILN_I32] = true, [KILN_I64] = true,
    [KILN_BOOL] = true, [KILN_I16] = true, [KILN_U16] = true, [KILN_U32] = true, [KILN_U64] = true,
    [KILN_F8E4M3FN] = true, [KILN_F8E4M3FNUZ] = true, [KILN_F8E5M2] = true, [KILN_F8E5M2FNUZ] = true,
    [KILN_F8E8M0] = true, [KILN_F4E2M1] = true, [KILN_I4] = true, [KILN_U4] = true, [KILN_I2] = true,
    [KILN_U2] = true,
};

bool ir_dtype_valid(int dt) { return dt >= KILN_F32 && dt <= KILN_U2 && dtype_supported[dt]; }

const char *kiln_dtype_name(kiln_dtype dt)
{
    static const char *const names[KILN_U2 + 1] = {
        "?",      "f32",       "f64",      "f16",         "bf16",    "i8",     "u8",
        "i32",    "i64",       "bool",     "i16",         "u16",     "u32",    "u64",
        "f8e4m3fn", "f8e4m3fnuz", "f8e5m2", "f8e5m2fnuz", "f8e8m0",  "f4e2m1", "i4",
        "u4",     "i2",        "u2"};
    return ir_dtype_valid((int)dt) ? names[dt] : "?";
}

size_t kiln_dtype_size(kiln_dtype dt)
{
    static const size_t sizes[KILN_U2 + 1] = {0, 4, 8, 2, 2, 1, 1, 4, 8, 1, 2, 2, 4, 8,
                                              1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    return ir_dtype_valid((int)dt) ? sizes[dt] : 0;
}

bool ir_dtype_is_float(kiln_dtype dt)
{
    return dt == KILN_F32 || dt == KILN_F64 || dt == KILN_F16 || dt == KILN_BF16;
}

bool ir_dtype_is_int(kiln_dtype dt)
{
    return dt == KILN_I8 || dt == KILN_U8 || dt == KILN_I32 || dt == KILN_I64 || dt == KILN_I16 ||
           dt == KILN_U16 || dt == KILN_U32 || dt == KILN_U64;
}

bool ir_dtype_is_signed(kiln_dtype dt)
{
    return ir_dtype_is_float(dt) || dt == KILN_I8 || dt == KILN_I16 || dt == KILN_I32 || dt == KILN_I64;
}

bool ir_dtype_is_storage(kiln_dtype dt) { return dt >= KILN_F8E4M3FN && dt <= KILN_U2; }

bool ir_dtype_is_storage_float(kiln_dtype dt) { return dt >= KILN_F8E4M3FN && dt <= KILN_F4E2M1; }

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float ir_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    if (exp == 0x1f) return bits_f32(sign | 0x7f800000u | (man << 13)); /* inf, nan */
    if (exp == 0) {
        /* zero or subnormal: man * 2^-24 */
        float v = (float)man * 0x1p-24f;
        return sign ? -v : v;
    }
    return bits_f32(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t ir_f32_to_f16(float f)
{
    uint32_t u = f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t abs = u & 0x7fffffffu;
    if (abs >= 0x7f800000u) /* inf or nan (keep nan quiet and non-zero) */
        return (uint16_t)(sign | 0x7c00 | (abs > 0x7f800000u ? 0x200 | ((abs >> 13) & 0x3ff) : 0));
    if (abs >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); /* rounds to >= 65520: inf */
    if (abs < 0x38800000u) {
        /* result is subnormal or zero: round abs * 2^24 to an integer, ties to even */
        float a = bits_f32(abs) * 0x1p24f;
        float r = nearbyintf(a); /* default rounding mode: to nearest even */
        return (uint16_t)(sign | (uint16_t)r);
    }
    /* normal: rebias the exponent, round the 13 dropped mantissa bits */
    uint32_t m = abs - 0x38000000u; /* exponent - 112 */
    uint32_t r = (m >> 13) + (((m >> 12) & 1) & ((((m & 0xfff) != 0)) | ((m >> 13) & 1)));
    return (uint16_t)(sign | r);
}

float ir_bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

uint16_t ir_f32_to_bf16(float f)
{
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet nan */
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

double ir_load_f64(kiln_dtype dt, const void *p, size_t i)
{
    switch (dt) {
    case KILN_F32: return ((const float *)p)[i];
    case KILN_F64: return ((const double *)p)[i];
    case KILN_F16: return ir_f16_to_f32(((const uint16_t *)p)[i]);
    case KILN_BF16: return ir_bf16_to_f32(((const uint16_t *)p)[i]);
    case KILN_I8: return ((const int8_t *)p)[i];
    case KILN_U8: return ((const uint8_t *)p)[i];
    case KILN_I32: return ((const int32_t *)p)[i];
    case KILN_I64: return (double)((const int64_t *)p)[i];
    case KILN_BOOL: return ((const uint8_t *)p)[i] != 0;
    case KILN_I16: return ((const int16_t *)p)[i];
    case KILN_U16: return ((const uint16_t *)p)[i];
    case KILN_U32: return ((const uint32_t *)p)[i];
    case KILN_U64: return (double)((const uint64_t *)p)[i];
    default:
        if (ir_dtype_is_storage(dt)) return lowp_to_f32((int)dt, ((const uint8_t *)p)[i]);
        break;
    }
    return 0;
}

int64_t ir_load_i64(kiln_dtype dt, const void *p, size_t i)
{
    switch (dt) {
    case KILN_I8: return ((const int8_t *)p)[i];
    case KILN_U8: return ((const uint8_t *)p)[i];
    case KILN_I32: return ((const int32_t *)p)[i];
    case KILN_I64: return ((const int64_t *)p)[i];
    case KILN_BOOL: return ((const uint8_t *)p)[i] != 0;
    case KILN_I16: return ((const int16_t *)p)[i];
    case KILN_U16: return ((const uint16_t *)p)[i];
    case KILN_U32: return ((const uint32_t *)p)[i];
    /* u64: the same 64 bits (values above INT64_MAX read negative; callers
     * that compare, divide or widen use ir_dtype_is_u64 / ir_u64_*). */
    case KILN_U64: return (int64_t)((const uint64_t *)p)[i];
    case KILN_I4:
    case KILN_U4:
    case KILN_I2:
    case KILN_U2: return (int64_t)lowp_to_f32((int)dt, ((const uint8_t *)p)[i]);
    default: break;
    }
    /* floats: truncate toward zero, saturating (NaN reads as 0) */
    double v = ir_load_f64(dt, p, i);
    if (v != v) return 0;
    if (v >= 9.2233720368547758e18) return INT64_MAX;
    if (v <= -9.2233720368547758e18) return INT64_MIN;
    return (int64_t)v;
}

/* double -> float rounding to odd (truncate, then set the last bit when
 * inexact): the f16/bf16 conversion that follows then rounds once, as a
 * direct double -> half conversion would. Plain (float)v would round twice
 * and turn values just above a half-way point into a tie. */
static float f64_to_f32_odd(double v)
{
    float f = (float)v;
    if (!isfinite(f) || (double)f == v) return f;
    uint32_t u = f32_bits(f);
    if (fabs((double)f) > fabs(v)) u--; /* step the magnitude toward zero */
    return bits_f32(u | 1u);
}

void ir_store_f64(kiln_dtype dt, void *p, size_t i, double v)
{
    switch (dt) {
    case KILN_F32: ((float *)p)[i] = (float)v; return;
    case KILN_F64: ((double *)p)[i] = v; return;
    case KILN_F16: ((uint16_t *)p)[i] = ir_f32_to_f16(f64_to_f32_odd(v)); return;
    case KILN_BF16: ((uint16_t *)p)[i] = ir_f32_to_bf16(f64_to_f32_odd(v)); return;
    case KILN_BOOL: ((uint8_t *)p)[i] = v != 0; return;
    case KILN_U64:
        /* [2^63, 2^64) is representable only unsigned; beyond saturates */
        if (v >= 9.2233720368547758e18) {
            ((uint64_t *)p)[i] = v >= 1.8446744073709552e19 ? UINT64_MAX : (uint64_t)v;
            return;
        }
        break;
    default:
        if (ir_dtype_is_storage(dt)) {
            ((uint8_t *)p)[i] = ir_storage_from_f64(dt, v, true);
            return;
        }
        break;
    }
    /* integers: truncate toward zero, saturating to int64, then wrap */
    int64_t x;
    if (v != v) x = 0;
    else if (v >= 9.2233720368547758e18) x = INT64_MAX;
    else if (v <= -9.2233720368547758e18) x = INT64_MIN;
    else x = (int64_t)v;
    ir_store_i64(dt, p, i, x);
}

void ir_store_i64(kiln_dtype dt, void *p, size_t i, int64_t v)
{
    switch (dt) {
    case KILN_I8: ((int8_t *)p)[i] = (int8_t)(uint8_t)(uint64_t)v; return;
    case KILN_U8: ((uint8_t *)p)[i] = (uint8_t)(uint64_t)v; return;
    case KILN_I32: ((int32_t *)p)[i] = (int32_t)(uint32_t)(uint64_t)v; return;
    case KILN_I64: ((int64_t *)p)[i] = v; return;
    case KILN_BOOL: ((uint8_t *)p)[i] = v != 0; return;
    case KILN_I16: ((int16_t *)p)[i] = (int16_t)(uint16_t)(uint64_t)v; return;
    case KILN_U16: ((uint16_t *)p)[i] = (uint16_t)(uint64_t)v; return;
    case KILN_U32: ((uint32_t *)p)[i] = (uint32_t)(uint64_t)v; return;
    case KILN_U64: ((uint64_t *)p)[i] = (uint64_t)v; return;
    case KILN_I4:
    case KILN_U4:
    case KILN_I2:
    case KILN_U2: ((uint8_t *)p)[i] = lowp_from_i64((int)dt, v); return;
    default: ir_store_f64(dt, p, i, (double)v); return;
    }
}

uint8_t ir_storage_from_f64(kiln_dtype dt, double v, bool saturate)
{
    return lowp_from_f64((int)dt, v, saturate);
}

float ir_storage_to_f32(kiln_dtype dt, uint8_t code) { return lowp_to_f32((int)dt, code); }
