/* kk_reduce.c -- reductions: ReduceSum, ReduceMean, ReduceMax, ReduceMin,
 * ReduceProd, ArgMax and ArgMin, one function per dtype (the body below is
 * a template this file includes once per dtype).
 *
 * Two loop structures, chosen by the lowering from the coalesced shape:
 * - row mode (the innermost input dim is reduced): each output element
 *   reduces contiguous rows with 16-lane vector accumulators, combined
 *   across lanes at the end (a reassociation: float sums accumulate in
 *   double, so the result stays within a few ulp of the reference's
 *   sequential double sum);
 * - column mode (the innermost dim is kept): a work item accumulates a
 *   tile of up to KK_RED_TILE contiguous output elements, adding one
 *   contiguous input row per reduced position, so the inner loop is an
 *   elementwise update of a local array that LLVM vectorizes without
 *   reordering anything.
 * Max/min propagate NaN with `acc = (v > acc | v != v) ? v : acc`, which
 * keeps a NaN once seen. ArgMax/ArgMin of a contiguous row find the
 * extreme first (vectorized), then search for its first (last) index. */
#ifndef KK_REDUCE_TEMPLATE

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kk.h"
#include "kk_reduce.h"

/* Vectors are passed by value only between always_inline functions. */
#pragma clang diagnostic ignored "-Wpsabi"

#define AI static inline __attribute__((always_inline))
#define VW 16

typedef float vf __attribute__((vector_size(VW * sizeof(float))));
typedef double vd __attribute__((vector_size(VW * sizeof(double))));
typedef _Float16 vh __attribute__((vector_size(VW * sizeof(_Float16))));
typedef uint16_t vu16 __attribute__((vector_size(VW * sizeof(uint16_t))));
typedef int16_t vi16 __attribute__((vector_size(VW * sizeof(int16_t))));
typedef int8_t vi8 __attribute__((vector_size(VW * sizeof(int8_t))));
typedef uint8_t vu8 __attribute__((vector_size(VW * sizeof(uint8_t))));
typedef int32_t vi32 __attribute__((vector_size(VW * sizeof(int32_t))));
typedef uint32_t vu32 __attribute__((vector_size(VW * sizeof(uint32_t))));
typedef int64_t vi64 __attribute__((vector_size(VW * sizeof(int64_t))));
typedef uint64_t vu64 __attribute__((vector_size(VW * sizeof(uint64_t))));

/* ---- conversions ---- */

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
 * rounds once, as the reference's stores do (ir/dtype.c). */
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

/* Element offset of index o of a row-major odometer over dims. */
AI int64_t odo_offset(int64_t o, int64_t n, const int64_t *dims, const int64_t *strides)
{
    int64_t off = 0;
    for (int64_t d = n - 1; d >= 0; d--) {
        off += (o % dims[d]) * strides[d];
        o /= dims[d];
    }
    return off;
}

/* Steps a row-major odometer (idx, running offset *off) by one. */
AI void odo_next(int64_t *idx, int64_t *off, int64_t n, const int64_t *dims, const int64_t *strides)
{
    for (int64_t d = n - 1; d >= 0; d--) {
        *off += strides[d];
        if (++idx[d] < dims[d]) return;
        *off -= dims[d] * strides[d];
        idx[d] = 0;
    }
}

/* ---- per-dtype loads and stores ---- */

#define LD_F32(p, i) (((const float *)(p))[i])
#define LD_F64(p, i) (((const double *)(p))[i])
#define LD_F16(p, i) f16_to_f32(((const uint16_t *)(p))[i])
#define LD_BF16(p, i) bf16_to_f32(((const uint16_t *)(p))[i])

AI vf vld_f32(const void *p, int64_t i)
{
    vf v;
    memcpy(&v, (const float *)p + i, sizeof v);
    return v;
}
AI vd vld_f64(const void *p, int64_t i)
{
    vd v;
    memcpy(&v, (const double *)p + i, sizeof v);
    return v;
}
AI vf vld_f16(const void *p, int64_t i)
{
    vh h;
    memcpy(&h, (const uint16_t *)p + i, sizeof h);
    return __builtin_convertvector(h, vf);
}
AI vf vld_bf16(const void *p, int64_t i)
{
    vu16 h;
    memcpy(&h, (const uint16_t *)p + i, sizeof h);
    vu32 u = __builtin_convertvector(h, vu32) << 16;
    vf f;
    memcpy(&f, &u, sizeof f);
    return f;
}
#define VLD_INT(NAME, VT)                       \
    AI VT vld_##NAME(const void *p, int64_t i)  \
    {                                           \
        VT v;                                   \
        memcpy(&v, (const char *)p + i * (int64_t)sizeof v[0], sizeof v); \
        return v;                               \
    }
VLD_INT(i8, vi8)
VLD_INT(u8, vu8)
VLD_INT(i32, vi32)
VLD_INT(i64, vi64)
VLD_INT(i16, vi16)
VLD_INT(u16, vu16)
VLD_INT(u32, vu32)
VLD_INT(u64, vu64)

AI void std_f32(void *p, int64_t i, double v) { ((float *)p)[i] = (float)v; }
AI void std_f64(void *p, int64_t i, double v) { ((double *)p)[i] = v; }
AI void std_f16(void *p, int64_t i, double v) { ((uint16_t *)p)[i] = f32_to_f16(f64_to_f32_odd(v)); }
AI void std_bf16(void *p, int64_t i, double v) { ((uint16_t *)p)[i] = f32_to_bf16(f64_to_f32_odd(v)); }

AI void stc_f32(void *p, int64_t i, float v) { ((float *)p)[i] = v; }
AI void stc_f64(void *p, int64_t i, double v) { ((double *)p)[i] = v; }
AI void stc_f16(void *p, int64_t i, float v) { ((uint16_t *)p)[i] = f32_to_f16(v); }
AI void stc_bf16(void *p, int64_t i, float v) { ((uint16_t *)p)[i] = f32_to_bf16(v); }

/* ---- the template, once per dtype ---- */

#define KK_REDUCE_TEMPLATE
#define CAT2(a, b) a##_##b
#define CAT(a, b) CAT2(a, b)
#define FN(name) CAT(name, SFX)

/* Per dtype: T the element in memory, C the compute type (VC its vector,
 * MI the comparison mask of VC), A the sum/product accumulator (VA its
 * vector), LD(p, i) element i of p as a C. */
#define IS_FLOAT 1
#define A double
#define VA vd
#define TO_A(v) ((double)(v))
#define ISNAN(v) ((v) != (v))
#define VISNAN(v) ((MI)((v) != (v)))
#define C_LOWEST ((C)-INFINITY)
#define C_HIGHEST ((C)INFINITY)

#define SFX f32
#define T float
#define C float
#define VC vf
#define MI vi32
#define LD LD_F32
#define VTO_A(v) __builtin_convertvector(v, vd)
#include "kk_reduce.c"
#undef SFX
#undef T
#undef LD

#define SFX f16
#define T uint16_t
#define LD LD_F16
#include "kk_reduce.c"
#undef SFX
#undef LD

#define SFX bf16
#define LD LD_BF16
#include "kk_reduce.c"
#undef SFX
#undef T
#undef C
#undef VC
#undef MI
#undef LD
#undef VTO_A

#define SFX f64
#define T double
#define C double
#define VC vd
#define MI vi64
#define LD LD_F64
#define VTO_A(v) (v)
#include "kk_reduce.c"
#undef SFX
#undef T
#undef C
#undef VC
#undef MI
#undef LD
#undef VTO_A
#undef IS_FLOAT
#undef A
#undef VA
#undef TO_A
#undef ISNAN
#undef VISNAN
#undef C_LOWEST
#undef C_HIGHEST

/* Integers: A is the unsigned twin of the dtype (sums and products wrap). */
#define IS_FLOAT 0
#define T C
#define TO_A(v) ((A)(v))
#define VTO_A(v) ((VA)(v))
#define LD(p, i) (((const C *)(p))[i])
#define ISNAN(v) 0
#define VISNAN(v) ((MI){0})

#define SFX i8
#define C int8_t
#define VC vi8
#define MI vi8
#define A uint8_t
#define VA vu8
#define C_LOWEST ((C)INT8_MIN)
#define C_HIGHEST ((C)INT8_MAX)
#include "kk_reduce.c"
#undef SFX
#undef C
#undef VC
#undef C_LOWEST
#undef C_HIGHEST

#define SFX u8
#define C uint8_t
#define VC vu8
#define C_LOWEST ((C)0)
#define C_HIGHEST ((C)UINT8_MAX)
#include "kk_reduce.c"
#undef SFX
#undef C
#undef VC
#undef MI
#undef A
#undef VA
#undef C_LOWEST
#undef C_HIGHEST

#define SFX i32
#define C int32_t
#define VC vi32
#define MI vi32
#define A uint32_t
#define VA vu32
#define C_LOWEST ((C)INT32_MIN)
#define C_HIGHEST ((C)INT32_MAX)
#include "kk_reduce.c"
#undef SFX
#undef C
#undef VC
#undef MI
#undef A
#undef VA
#undef C_LOWEST
#undef C_HIGHEST

#define SFX i64
#define C int64_t
#define VC vi64
#define MI vi64
#define A uint64_t
#define VA vu64
#define C_LOWEST ((C)INT64_MIN)
#define C_HIGHEST ((C)INT64_MAX)
#include "kk_reduce.c"
#undef SFX
#undef C
#undef VC
#undef C_LOWEST
#undef C_HIGHEST

/* u64 shares i64's mask and accumulator types; its comparisons are unsigned. */
#define SFX u64
#define C uint64_t
#define VC vu64
#define C_LOWEST ((C)0)
#define C_HIGHEST ((C)UINT64_MAX)
#include "kk_reduce.c"
#undef SFX
#undef C
#undef VC
#undef MI
#undef A
#undef VA
#undef C_LOWEST
#undef C_HIGHEST

#define SFX i16
#define C int16_t
#define VC vi16
#define MI vi16
#define A uint16_t
#define VA vu16
#define C_LOWEST ((C)INT16_MIN)
#define C_HIGHEST ((C)INT16_MAX)
#include "kk_reduce.c"
#undef SFX
#undef C
#undef VC
#undef C_LOWEST
#undef C_HIGHEST

#define SFX u16
#define C uint16_t
#define VC vu16
#define C_LOWEST ((C)0)
#define C_HIGHEST ((C)UINT16_MAX)
#include "kk_reduce.c"
#undef SFX
#undef C
#undef VC
#undef MI
#undef A
#undef VA
#undef C_LOWEST
#undef C_HIGHEST

#define SFX u32
#define C uint32_t
#define VC vu32
#define MI vi32
#define A uint32_t
#define VA vu32
#define C_LOWEST ((C)0)
#define C_HIGHEST ((C)UINT32_MAX)
#include "kk_reduce.c"

#else /* KK_REDUCE_TEMPLATE: the body for one dtype */


/* v replaces acc: a new extreme, or a NaN (which then stays). */
#define TAKES(is_max, v, acc) ((is_max) ? ((v) > (acc)) | ISNAN(v) : ((v) < (acc)) | ISNAN(v))

AI VC FN(vload)(const void *p, int64_t i) { return CAT(vld, SFX)(p, i); }

AI VC FN(vsel)(MI m, VC a, VC b) { return (VC)(((MI)a & m) | ((MI)b & ~m)); }

/* Sums (or multiplies) x[0..n) into the lanes of *v and the scalar *s. */
AI void FN(row_sum)(const void *x, int64_t n, int64_t prod, VA *v, A *s)
{
    int64_t i = 0;
    VA acc = *v;
    for (; i + VW <= n; i += VW) {
        VA e = VTO_A(FN(vload)(x, i));
        if (prod) acc *= e;
        else acc += e;
    }
    *v = acc;
    A t = *s;
    for (; i < n; i++) {
        if (prod) t *= TO_A(LD(x, i));
        else t += TO_A(LD(x, i));
    }
    *s = t;
}

/* The max (min) of x[0..n) into the lanes of *v and the scalar *s. */
AI void FN(row_max)(const void *x, int64_t n, int64_t is_max, VC *v, C *s)
{
    int64_t i = 0;
    VC acc = *v;
    for (; i + VW <= n; i += VW) {
        VC e = FN(vload)(x, i);
        MI m = is_max ? (MI)(e > acc) | VISNAN(e) : (MI)(e < acc) | VISNAN(e);
        acc = FN(vsel)(m, e, acc);
    }
    *v = acc;
    C t = *s;
    for (; i < n; i++) {
        C e = LD(x, i);
        if (TAKES(is_max, e, t)) t = e;
    }
    *s = t;
}

AI C FN(combine_max)(VC v, C s, int64_t is_max)
{
    for (int j = 0; j < VW; j++)
        if (TAKES(is_max, v[j], s)) s = v[j];
    return s;
}

/* Stores a finished sum-family accumulator. */
AI void FN(store_sum)(void *y, int64_t i, A acc, int64_t op, int64_t count)
{
#if IS_FLOAT
    double r = op == KK_RED_MEAN ? acc / (double)count : acc; /* 0 / 0: NaN */
    CAT(std, SFX)(y, i, r);
#else
    (void)op;
    (void)count;
    ((C *)y)[i] = (C)acc;
#endif
}

AI void FN(store_c)(void *y, int64_t i, C v)
{
#if IS_FLOAT
    CAT(stc, SFX)(y, i, v);
#else
    ((C *)y)[i] = v;
#endif
}

/* Row mode: output element w reduces npos contiguous rows of len. */
AI void FN(reduce_rows)(const void *x, kk_pro_fn pro, void *pa, void *y, int64_t op, int64_t nkeep, const int64_t *kd,
                        const int64_t *ks, int64_t nred, const int64_t *rd, const int64_t *rs,
                        int64_t npos, int64_t len, int64_t count, int64_t begin, int64_t end)
{
    const int64_t sum_like = op == KK_RED_SUM || op == KK_RED_MEAN || op == KK_RED_PROD;
    const int64_t prod = op == KK_RED_PROD, is_max = op == KK_RED_MAX;
    for (int64_t w = begin; w < end; w++) {
        const int64_t xoff = odo_offset(w, nkeep, kd, ks);
        const T *xb = pro ? NULL : (const T *)x + xoff;
        T buf[KK_RED_TILE];
        int64_t idx[KK_RED_MAX_DIMS] = {0}, roff = 0;
        if (sum_like) {
            VA v;
            A s = prod ? (A)1 : (A)0;
            for (int j = 0; j < VW; j++) v[j] = s;
            for (int64_t p = 0; p < npos; p++) {
                if (pro)
                    for (int64_t c0 = 0; c0 < len; c0 += KK_RED_TILE) {
                        const int64_t m = min64(KK_RED_TILE, len - c0);
                        pro(pa, xoff + roff + c0, m, buf);
                        FN(row_sum)(buf, m, prod, &v, &s);
                    }
                else
                    FN(row_sum)(xb + roff, len, prod, &v, &s);
                odo_next(idx, &roff, nred, rd, rs);
            }
            for (int j = 0; j < VW; j++) {
                if (prod) s *= v[j];
                else s += v[j];
            }
            FN(store_sum)(y, w, s, op, count);
        } else {
            VC v;
            C s = is_max ? C_LOWEST : C_HIGHEST;
            for (int j = 0; j < VW; j++) v[j] = s;
            for (int64_t p = 0; p < npos; p++) {
                if (pro)
                    for (int64_t c0 = 0; c0 < len; c0 += KK_RED_TILE) {
                        const int64_t m = min64(KK_RED_TILE, len - c0);
                        pro(pa, xoff + roff + c0, m, buf);
                        FN(row_max)(buf, m, is_max, &v, &s);
                    }
                else
                    FN(row_max)(xb + roff, len, is_max, &v, &s);
                odo_next(idx, &roff, nred, rd, rs);
            }
            FN(store_c)(y, w, FN(combine_max)(v, s, is_max));
        }
    }
}

/* Column mode: a tile of n <= KK_RED_TILE contiguous outputs accumulates
 * one contiguous input row per reduced position. */
AI void FN(reduce_cols)(const void *x, kk_pro_fn pro, void *pa, void *y, int64_t op, int64_t nkeep, const int64_t *kd,
                        const int64_t *ks, int64_t nred, const int64_t *rd, const int64_t *rs,
                        int64_t npos, int64_t len, int64_t tile, int64_t ntiles, int64_t count,
                        int64_t begin, int64_t end)
{
    const int64_t sum_like = op == KK_RED_SUM || op == KK_RED_MEAN || op == KK_RED_PROD;
    const int64_t prod = op == KK_RED_PROD, is_max = op == KK_RED_MAX;
    for (int64_t w = begin; w < end; w++) {
        const int64_t row = w / ntiles, j0 = (w % ntiles) * tile;
        const int64_t n = min64(tile, len - j0);
        const int64_t xoff = odo_offset(row, nkeep, kd, ks) + j0;
        const T *xb = pro ? NULL : (const T *)x + xoff;
        T buf[KK_RED_TILE];
        const int64_t yb = row * len + j0;
        int64_t idx[KK_RED_MAX_DIMS] = {0}, roff = 0;
        if (sum_like) {
            A acc[KK_RED_TILE];
            const A init = prod ? (A)1 : (A)0;
            for (int64_t j = 0; j < n; j++) acc[j] = init;
            for (int64_t p = 0; p < npos; p++) {
                const T *xr = buf;
                if (pro) pro(pa, xoff + roff, n, buf);
                else xr = xb + roff;
                if (prod)
                    for (int64_t j = 0; j < n; j++) acc[j] *= TO_A(LD(xr, j));
                else
                    for (int64_t j = 0; j < n; j++) acc[j] += TO_A(LD(xr, j));
                odo_next(idx, &roff, nred, rd, rs);
            }
            for (int64_t j = 0; j < n; j++) FN(store_sum)(y, yb + j, acc[j], op, count);
        } else {
            C acc[KK_RED_TILE];
            const C init = is_max ? C_LOWEST : C_HIGHEST;
            for (int64_t j = 0; j < n; j++) acc[j] = init;
            for (int64_t p = 0; p < npos; p++) {
                const T *xr = buf;
                if (pro) pro(pa, xoff + roff, n, buf);
                else xr = xb + roff;
                if (is_max)
                    for (int64_t j = 0; j < n; j++) {
                        C e = LD(xr, j), a = acc[j];
                        acc[j] = ((e > a) | ISNAN(e)) ? e : a;
                    }
                else
                    for (int64_t j = 0; j < n; j++) {
                        C e = LD(xr, j), a = acc[j];
                        acc[j] = ((e < a) | ISNAN(e)) ? e : a;
                    }
                odo_next(idx, &roff, nred, rd, rs);
            }
            for (int64_t j = 0; j < n; j++) FN(store_c)(y, yb + j, acc[j]);
        }
    }
}

__attribute__((always_inline)) void FN(kk_reduce)(const void *x, void *y, int64_t op,
                                                  int64_t row_mode, int64_t nkeep,
                                                  const int64_t *keep_dims,
                                                  const int64_t *keep_strides, int64_t nred,
                                                  const int64_t *red_dims,
                                                  const int64_t *red_strides, int64_t npos,
                                                  int64_t len, int64_t tile, int64_t ntiles,
                                                  int64_t count, int64_t nwork, int64_t begin,
                                                  int64_t end)
{
    end = min64(end, nwork);
    if (row_mode)
        FN(reduce_rows)(x, NULL, NULL, y, op, nkeep, keep_dims, keep_strides, nred, red_dims,
                        red_strides, npos, len, count, begin, end);
    else
        FN(reduce_cols)(x, NULL, NULL, y, op, nkeep, keep_dims, keep_strides, nred, red_dims,
                        red_strides, npos, len, tile, ntiles, count, begin, end);
}

__attribute__((always_inline)) void FN(kk_reduce_pro)(kk_pro_fn pro, void *pro_args, void *y,
                                                      int64_t op, int64_t row_mode,
                                                      int64_t nkeep, const int64_t *keep_dims,
                                                      const int64_t *keep_strides, int64_t nred,
                                                      const int64_t *red_dims,
                                                      const int64_t *red_strides, int64_t npos,
                                                      int64_t len, int64_t tile, int64_t ntiles,
                                                      int64_t count, int64_t nwork,
                                                      int64_t begin, int64_t end)
{
    end = min64(end, nwork);
    if (row_mode)
        FN(reduce_rows)(NULL, pro, pro_args, y, op, nkeep, keep_dims, keep_strides, nred,
                        red_dims, red_strides, npos, len, count, begin, end);
    else
        FN(reduce_cols)(NULL, pro, pro_args, y, op, nkeep, keep_dims, keep_strides, nred,
                        red_dims, red_strides, npos, len, tile, ntiles, count, begin, end);
}

/* ---- ArgMax / ArgMin ---- */

/* Index of the extreme of the contiguous row x[0..len): the extreme value
 * first, then its first (last) occurrence; a NaN is the extreme. */
AI int64_t FN(arg_row)(const T *x, int64_t len, int64_t is_max, int64_t last)
{
    VC v;
    C s = is_max ? C_LOWEST : C_HIGHEST;
    for (int j = 0; j < VW; j++) v[j] = s;
    FN(row_max)(x, len, is_max, &v, &s);
    const C m = FN(combine_max)(v, s, is_max);
    const int nan = ISNAN(m);
    if (last) {
        for (int64_t i = len - 1; i > 0; i--) {
            C e = LD(x, i);
            if (nan ? ISNAN(e) : e == m) return i;
        }
        return 0;
    }
    for (int64_t i = 0; i < len; i++) {
        C e = LD(x, i);
        if (nan ? ISNAN(e) : e == m) return i;
    }
    return 0;
}

__attribute__((always_inline)) void FN(kk_arg)(const void *x, int64_t *y, int64_t is_max,
                                               int64_t last, int64_t outer, int64_t len,
                                               int64_t inner, int64_t tile, int64_t ntiles,
                                               int64_t begin, int64_t end)
{
    const T *xc = (const T *)x;
    if (inner == 1) {
        end = min64(end, outer);
        for (int64_t w = begin; w < end; w++) y[w] = FN(arg_row)(xc + w * len, len, is_max, last);
        return;
    }
    end = min64(end, outer * ntiles);
    for (int64_t w = begin; w < end; w++) {
        const int64_t row = w / ntiles, j0 = (w % ntiles) * tile;
        const int64_t n = min64(tile, inner - j0);
        const T *xb = xc + row * len * inner + j0;
        C best[KK_RED_TILE];
        int64_t bi[KK_RED_TILE];
        for (int64_t j = 0; j < n; j++) {
            best[j] = LD(xb, j);
            bi[j] = 0;
        }
        for (int64_t i = 1; i < len; i++) {
            const T *xr = xb + i * inner;
            for (int64_t j = 0; j < n; j++) {
                C e = LD(xr, j), b = best[j];
                int en = ISNAN(e), bn = ISNAN(b);
                int better = is_max ? e > b : e < b;
                int take = (en & (!bn | (int)last)) | better | ((int)last & (e == b));
                best[j] = take ? e : b;
                bi[j] = take ? i : bi[j];
            }
        }
        int64_t *yr = y + row * inner + j0;
        for (int64_t j = 0; j < n; j++) yr[j] = bi[j];
    }
}

#undef TAKES

#endif /* KK_REDUCE_TEMPLATE */
