/* kk_nn.c -- Softmax/LogSoftmax, BatchNormalization, LayerNormalization
 * (one function per float dtype: the body below is a template this file
 * includes once per dtype) and the counter-based RandomUniform and
 * RandomNormal, which reproduce ir/ops/random.c exactly.
 *
 * Reductions along contiguous rows use VW independent lane accumulators
 * (kept in small local arrays, which LLVM turns into vector registers),
 * combined at the end: a reassociation the reference does not make, so
 * float results agree within a few ulp, not bit for bit. Reductions along
 * a strided axis keep a tile of contiguous columns and update it row by
 * row, an elementwise loop that vectorizes without reordering anything. */
#ifndef KK_NN_TEMPLATE

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kk.h"
#include "kk_nn.h"

#define AI static inline __attribute__((always_inline))
#define VW 16

/* ---- conversions (as ir/dtype.c) ---- */

AI float bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Round to nearest even, NaN stays a quiet NaN (as ir_f32_to_bf16). */
AI uint16_t f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

AI uint16_t f32_to_f16(float f)
{
    _Float16 h = (_Float16)f;
    uint16_t u;
    memcpy(&u, &h, sizeof u);
    return u;
}

AI float f16_to_f32(uint16_t u)
{
    _Float16 h;
    memcpy(&h, &u, sizeof h);
    return (float)h;
}

/* double -> float rounding to odd, so that the f16/bf16 rounding after it
 * rounds once, as the reference's stores do. */
AI float f64_to_f32_odd(double v)
{
    float f = (float)v;
    if (!isfinite(f) || (double)f == v) return f;
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if (fabs((double)f) > fabs(v)) u--;
    u |= 1u;
    memcpy(&f, &u, sizeof f);
    return f;
}

AI int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* Loads: element i as the compute type. */
#define LD_F32(p, i) ((p)[i])
#define LD_F64(p, i) ((p)[i])
#define LD_F16(p, i) f16_to_f32((p)[i])
#define LD_BF16(p, i) bf16_to_f32((p)[i])
/* Stores from the compute type. */
#define ST_F32(p, i, v) ((p)[i] = (v))
#define ST_F64(p, i, v) ((p)[i] = (v))
#define ST_F16(p, i, v) ((p)[i] = f32_to_f16(v))
#define ST_BF16(p, i, v) ((p)[i] = f32_to_bf16(v))
/* Stores from double, rounding once. */
#define STD_F32(p, i, v) ((p)[i] = (float)(v))
#define STD_F64(p, i, v) ((p)[i] = (v))
#define STD_F16(p, i, v) ((p)[i] = f32_to_f16(f64_to_f32_odd(v)))
#define STD_BF16(p, i, v) ((p)[i] = f32_to_bf16(f64_to_f32_odd(v)))

/* exp(x) in float for the softmax shifts (x - max <= 0, or NaN), as
 * straight-line arithmetic that vectorizes (a call to expf would not):
 * Cody-Waite reduction by ln 2 and Cephes' degree-6 polynomial, within
 * 2 ulp of expf; below -87 (where expf is subnormal or 0) it gives 0. */
AI float exp_f32(float x)
{
    float xc = x >= -87.0f ? (x <= 88.0f ? x : 88.0f) : -87.0f; /* NaN -> -87 */
    float n = __builtin_floorf(xc * 1.44269504088896341f + 0.5f);
    float r = (xc - n * 0.693359375f) - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    uint32_t bits = (uint32_t)((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    float e = p * scale;
    return x != x ? x : x < -87.0f ? 0.0f : x > 88.0f ? (float)INFINITY : e;
}

/* Sum of VW lanes, pairwise. */
AI double lanes_sum(const double *s)
{
    double t[VW];
    for (int l = 0; l < VW; l++) t[l] = s[l];
    for (int w = VW / 2; w >= 1; w /= 2)
        for (int l = 0; l < w; l++) t[l] += t[l + w];
    return t[0];
}

/* ---- the template, once per dtype ---- */

#define KK_NN_TEMPLATE
#define CAT2(a, b) a##_##b
#define CAT(a, b) CAT2(a, b)
#define FN(name) CAT(name, SFX)

/* Per dtype: T the element in memory, C the compute type of softmax, EXP
 * its exp, LD/ST/STD as above, F64 whether it is f64 (softmax divides by
 * the sum exactly as the reference does; others multiply by its
 * reciprocal), TMP whether y can hold exp values between passes (T == C;
 * else they are recomputed). */
#define SFX f32
#define T float
#define C float
#define EXP exp_f32
#define LD LD_F32
#define ST ST_F32
#define STD STD_F32
#define F64 0
#define TMP 1
#include "kk_nn.c"
#undef SFX
#undef T
#undef LD
#undef ST
#undef STD
#undef TMP

#define SFX f16
#define T uint16_t
#define LD LD_F16
#define ST ST_F16
#define STD STD_F16
#define TMP 0
#include "kk_nn.c"
#undef SFX
#undef LD
#undef ST
#undef STD

#define SFX bf16
#define LD LD_BF16
#define ST ST_BF16
#define STD STD_BF16
#include "kk_nn.c"
#undef SFX
#undef T
#undef C
#undef EXP
#undef LD
#undef ST
#undef STD
#undef F64
#undef TMP

#define SFX f64
#define T double
#define C double
#define EXP exp
#define LD LD_F64
#define ST ST_F64
#define STD STD_F64
#define F64 1
#define TMP 1
#include "kk_nn.c"
#undef SFX
#undef T
#undef C
#undef EXP
#undef LD
#undef ST
#undef STD
#undef F64
#undef TMP

/* ---- the random generator (ir/ops/random.c, exactly) ---- */

#define RNG_GOLDEN 0x9e3779b97f4a7c15ull
/* M_PI's digits (not in strict C11), as the reference's 2.0 * M_PI. */
#define KK_PI 3.14159265358979323846

AI uint64_t rng_mix(uint64_t z)
{
    z ^= z >> 30;
    z *= 0xbf58476d1ce4e5b9ull;
    z ^= z >> 27;
    z *= 0x94d049bb133111ebull;
    z ^= z >> 31;
    return z;
}

/* The per-(seed, counter) prefix of the generator, hoisted out of loops. */
AI uint64_t rng_stream(uint64_t seed, uint64_t counter)
{
    uint64_t h = rng_mix(seed + RNG_GOLDEN);
    return rng_mix(h ^ rng_mix(counter + 2 * RNG_GOLDEN));
}

AI double rng_u01(uint64_t stream, uint64_t i)
{
    uint64_t h = rng_mix(stream ^ rng_mix(i + 3 * RNG_GOLDEN));
    return (double)(h >> 11) * 0x1p-53;
}

double kk_random_u01(uint64_t seed, uint64_t counter, uint64_t i)
{
    return rng_u01(rng_stream(seed, counter), i);
}

/* Neighbours toward -inf (down) or +inf of a float's bit pattern, as the
 * reference's step_value: +-0 steps to the smallest subnormal of the
 * direction's sign; otherwise away from or toward zero. */
AI uint64_t step_bits(uint64_t b, uint64_t sign, bool up)
{
    if ((b & (sign - 1)) == 0) return up ? 1 : sign | 1;
    return ((b & sign) != 0) != up ? b + 1 : b - 1;
}

AI double f64_of_bits(uint64_t b)
{
    double d;
    memcpy(&d, &b, sizeof d);
    return d;
}

AI uint64_t bits_of_f64(double d)
{
    uint64_t b;
    memcpy(&b, &d, sizeof b);
    return b;
}

AI float f32_of_bits(uint32_t b)
{
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
}

AI uint32_t bits_of_f32(float f)
{
    uint32_t b;
    memcpy(&b, &f, sizeof b);
    return b;
}

/* v stored in a 16-bit float dtype, kept inside [lo, hi) (the reference's
 * store_in_range). */
AI uint16_t half_in_range(double v, double lo, double hi, bool bf16)
{
    float f = f64_to_f32_odd(v);
    uint16_t b = bf16 ? f32_to_bf16(f) : f32_to_f16(f);
    double r = bf16 ? bf16_to_f32(b) : f16_to_f32(b);
    if (r >= hi) b = (uint16_t)step_bits(b, 0x8000, false);
    else if (r < lo) b = (uint16_t)step_bits(b, 0x8000, true);
    return b;
}

void kk_random_uniform(void *y, int64_t dtype, double lo, double hi, int64_t seed,
                       int64_t counter, int64_t begin, int64_t end)
{
    /* round as the reference's separate multiplies and adds do */
#pragma STDC FP_CONTRACT OFF
    uint64_t st = rng_stream((uint64_t)seed, (uint64_t)counter);
    switch (dtype) {
    case KK_F64:
        for (int64_t i = begin; i < end; i++) {
            double v = lo + (hi - lo) * rng_u01(st, (uint64_t)i);
            if (v >= hi) v = f64_of_bits(step_bits(bits_of_f64(v), 1ull << 63, false));
            else if (v < lo) v = f64_of_bits(step_bits(bits_of_f64(v), 1ull << 63, true));
            ((double *)y)[i] = v;
        }
        break;
    case KK_F32:
        for (int64_t i = begin; i < end; i++) {
            float f = (float)(lo + (hi - lo) * rng_u01(st, (uint64_t)i));
            double r = f;
            if (r >= hi) f = f32_of_bits((uint32_t)step_bits(bits_of_f32(f), 1u << 31, false));
            else if (r < lo) f = f32_of_bits((uint32_t)step_bits(bits_of_f32(f), 1u << 31, true));
            ((float *)y)[i] = f;
        }
        break;
    case KK_F16:
    case KK_BF16:
        for (int64_t i = begin; i < end; i++)
            ((uint16_t *)y)[i] =
                half_in_range(lo + (hi - lo) * rng_u01(st, (uint64_t)i), lo, hi, dtype == KK_BF16);
        break;
    default: break;
    }
}

AI void store_f64_as(void *y, int64_t dtype, int64_t i, double v)
{
    switch (dtype) {
    case KK_F64: STD_F64((double *)y, i, v); break;
    case KK_F32: STD_F32((float *)y, i, v); break;
    case KK_F16: STD_F16((uint16_t *)y, i, v); break;
    case KK_BF16: STD_BF16((uint16_t *)y, i, v); break;
    default: break;
    }
}

void kk_random_normal(void *y, int64_t dtype, double mean, double scale, int64_t seed,
                      int64_t counter, int64_t size, int64_t begin, int64_t end)
{
#pragma STDC FP_CONTRACT OFF
    uint64_t st = rng_stream((uint64_t)seed, (uint64_t)counter);
    for (int64_t p = begin; p < end; p++) {
        int64_t i = 2 * p;
        double u1 = rng_u01(st, (uint64_t)i);
        double u2 = rng_u01(st, (uint64_t)i + 1);
        double r = sqrt(-2.0 * log(1.0 - u1)), t = 2.0 * KK_PI * u2;
        store_f64_as(y, dtype, i, mean + scale * r * cos(t));
        if (i + 1 < size) store_f64_as(y, dtype, i + 1, mean + scale * r * sin(t));
    }
}

#else /* KK_NN_TEMPLATE: the body for one dtype */

/* ---- Softmax, LogSoftmax ---- */

/* The maximum of a contiguous row ignoring NaNs (-inf when there is none). */
AI C FN(row_max)(const T *x, int64_t n)
{
    C acc[VW];
    for (int l = 0; l < VW; l++) acc[l] = (C)-INFINITY;
    int64_t i = 0;
    for (; i + VW <= n; i += VW)
        for (int l = 0; l < VW; l++) {
            C v = LD(x, i + l);
            acc[l] = v > acc[l] ? v : acc[l];
        }
    C m = (C)-INFINITY;
    for (; i < n; i++) {
        C v = LD(x, i);
        m = v > m ? v : m;
    }
    for (int l = 0; l < VW; l++) m = acc[l] > m ? acc[l] : m;
    return m;
}

/* sum(exp(x - m)) over a contiguous row, storing the exps in y when it can
 * hold them. */
AI double FN(row_expsum)(const T *x, T *y, int64_t n, C m)
{
    double s[VW];
    for (int l = 0; l < VW; l++) s[l] = 0;
    int64_t i = 0;
    for (; i + VW <= n; i += VW)
        for (int l = 0; l < VW; l++) {
            C e = EXP(LD(x, i + l) - m);
            if (TMP) ST(y, i + l, e);
            s[l] += (double)e;
        }
    double tail = 0;
    for (; i < n; i++) {
        C e = EXP(LD(x, i) - m);
        if (TMP) ST(y, i, e);
        tail += (double)e;
    }
    return lanes_sum(s) + tail;
}

AI void FN(softmax_row)(const T *x, T *y, int64_t n, int64_t log_form)
{
    C m = FN(row_max)(x, n);
    /* An all -inf row has no finite maximum: shift by 0 (the result is
     * then NaN, 0/0), as the reference does. */
    if (m == (C)-INFINITY) m = 0;
    double sum = FN(row_expsum)(x, y, n, m);
    if (log_form) {
        C ls = (C)log(sum);
        for (int64_t i = 0; i < n; i++) ST(y, i, (LD(x, i) - m) - ls);
    } else if (F64) {
        for (int64_t i = 0; i < n; i++) ST(y, i, (C)(LD(y, i) / sum));
    } else {
        C inv = (C)(1.0 / sum);
        for (int64_t i = 0; i < n; i++) {
            C e = TMP ? LD(y, i) : EXP(LD(x, i) - m);
            ST(y, i, e * inv);
        }
    }
}

/* Columns [0, w) of a [n, inner] block at x (stride inner between rows). */
AI void FN(softmax_tile)(const T *x, T *y, int64_t n, int64_t inner, int64_t w, int64_t log_form)
{
    C m[KK_NN_TILE], f[KK_NN_TILE];
    double s[KK_NN_TILE];
    for (int64_t j = 0; j < w; j++) m[j] = (C)-INFINITY;
    for (int64_t k = 0; k < n; k++) {
        const T *xr = x + k * inner;
        for (int64_t j = 0; j < w; j++) {
            C v = LD(xr, j);
            m[j] = v > m[j] ? v : m[j];
        }
    }
    for (int64_t j = 0; j < w; j++) {
        if (m[j] == (C)-INFINITY) m[j] = 0;
        s[j] = 0;
    }
    for (int64_t k = 0; k < n; k++) {
        const T *xr = x + k * inner;
        T *yr = y + k * inner;
        for (int64_t j = 0; j < w; j++) {
            C e = EXP(LD(xr, j) - m[j]);
            if (TMP) ST(yr, j, e);
            s[j] += (double)e;
        }
    }
    if (log_form) {
        for (int64_t j = 0; j < w; j++) f[j] = (C)log(s[j]);
        for (int64_t k = 0; k < n; k++) {
            const T *xr = x + k * inner;
            T *yr = y + k * inner;
            for (int64_t j = 0; j < w; j++) ST(yr, j, (LD(xr, j) - m[j]) - f[j]);
        }
    } else if (F64) {
        for (int64_t k = 0; k < n; k++) {
            T *yr = y + k * inner;
            for (int64_t j = 0; j < w; j++) ST(yr, j, (C)(LD(yr, j) / s[j]));
        }
    } else {
        for (int64_t j = 0; j < w; j++) f[j] = (C)(1.0 / s[j]);
        for (int64_t k = 0; k < n; k++) {
            const T *xr = x + k * inner;
            T *yr = y + k * inner;
            for (int64_t j = 0; j < w; j++) {
                C e = TMP ? LD(yr, j) : EXP(LD(xr, j) - m[j]);
                ST(yr, j, e * f[j]);
            }
        }
    }
}

void FN(kk_softmax)(const void *x, void *y, int64_t log_form, int64_t n, int64_t inner,
                    int64_t tile, int64_t ntiles, int64_t begin, int64_t end)
{
    const T *xp = (const T *)x;
    T *yp = (T *)y;
    if (inner == 1) {
        for (int64_t r = begin; r < end; r++) FN(softmax_row)(xp + r * n, yp + r * n, n, log_form);
        return;
    }
    for (int64_t w = begin; w < end; w++) {
        int64_t o = w / ntiles, j0 = (w % ntiles) * tile;
        int64_t off = o * n * inner + j0;
        FN(softmax_tile)(xp + off, yp + off, n, inner, min64(tile, inner - j0), log_form);
    }
}

/* ---- BatchNormalization ---- */

void FN(kk_batchnorm)(const void *x, const void *scale, const void *bias, const void *mean,
                      const void *var, void *y, double eps, int64_t channels, int64_t inner,
                      int64_t begin, int64_t end)
{
    const T *sp = (const T *)scale, *bp = (const T *)bias, *mp = (const T *)mean, *vp = (const T *)var;
    for (int64_t p = begin; p < end; p++) {
        int64_t ch = p % channels;
        double sc = LD(sp, ch), bi = LD(bp, ch), mu = LD(mp, ch), va = LD(vp, ch);
        double a = sc * (1.0 / sqrt(va + eps));
        const T *xr = (const T *)x + p * inner;
        T *yr = (T *)y + p * inner;
        if (F64) {
            /* subtract first: x * a + (bias - mean * a) cancels when x is
             * close to the mean, which f64 would show */
            for (int64_t i = 0; i < inner; i++) STD(yr, i, ((double)LD(xr, i) - mu) * a + bi);
        } else {
            /* in double, x * a and mean * a cancel exactly enough */
            double b = bi - mu * a;
            for (int64_t i = 0; i < inner; i++) STD(yr, i, (double)LD(xr, i) * a + b);
        }
    }
}

/* ---- LayerNormalization ---- */

void FN(kk_layernorm)(const void *x, const void *scale, const void *bias, void *y, double eps,
                      int64_t n, int64_t nd, const int64_t *dims, const int64_t *sstr,
                      const int64_t *bstr, int64_t begin, int64_t end)
{
    const T *sp = (const T *)scale, *bp = (const T *)bias;
    const int64_t len = dims[nd - 1], ss = sstr[nd - 1], bs = bstr[nd - 1];
    const int64_t npre = len > 0 ? n / len : 0;
    for (int64_t r = begin; r < end; r++) {
        const T *xr = (const T *)x + r * n;
        T *yr = (T *)y + r * n;
        double s[VW], tail = 0;
        for (int l = 0; l < VW; l++) s[l] = 0;
        int64_t i = 0;
        for (; i + VW <= n; i += VW)
            for (int l = 0; l < VW; l++) s[l] += (double)LD(xr, i + l);
        for (; i < n; i++) tail += (double)LD(xr, i);
        const double mu = (lanes_sum(s) + tail) / (double)n;
        for (int l = 0; l < VW; l++) s[l] = 0;
        tail = 0;
        for (i = 0; i + VW <= n; i += VW)
            for (int l = 0; l < VW; l++) {
                double d = (double)LD(xr, i + l) - mu;
                s[l] += d * d;
            }
        for (; i < n; i++) {
            double d = (double)LD(xr, i) - mu;
            tail += d * d;
        }
        const double inv = 1.0 / sqrt((lanes_sum(s) + tail) / (double)n + eps);

        /* the normalized block: an odometer over dims[0..nd-1) around the
         * contiguous innermost dim, tracking scale and bias offsets */
        int64_t idx[KK_NN_MAX_DIMS] = {0}, so = 0, bo = 0;
        for (int64_t q = 0; q < npre; q++) {
            const T *xq = xr + q * len;
            T *yq = yr + q * len;
            if (bp) {
                for (int64_t j = 0; j < len; j++) {
                    double v = ((double)LD(xq, j) - mu) * inv;
                    v *= (double)LD(sp, so + j * ss);
                    v += (double)LD(bp, bo + j * bs);
                    STD(yq, j, v);
                }
            } else {
                for (int64_t j = 0; j < len; j++) {
                    double v = ((double)LD(xq, j) - mu) * inv;
                    v *= (double)LD(sp, so + j * ss);
                    STD(yq, j, v);
                }
            }
            for (int64_t d = nd - 2; d >= 0; d--) {
                so += sstr[d];
                bo += bstr[d];
                if (++idx[d] < dims[d]) break;
                so -= dims[d] * sstr[d];
                bo -= dims[d] * bstr[d];
                idx[d] = 0;
            }
        }
    }
}

#endif
