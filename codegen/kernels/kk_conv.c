/* kk_conv.c -- Conv2D, ConvTranspose2D and the 2-D pools over NCHW tensors,
 * as kernel-library C (see kk_conv.h for the entry points and work items).
 *
 * Loop structure. f32, f16 and bf16 are computed in float, f64 in double;
 * the code below the template marker is compiled once for each (this file
 * includes itself). Vectors are clang vector types of KK_CONV_TW lanes, so
 * what is vectorized does not depend on the auto-vectorizer.
 *
 * Conv2D: a work item is (image n, group, block of up to KK_CONV_MB output
 * channels, output row oh). The kernel rows kh whose input row is inside
 * the image are computed once per item (padding rows are skipped, not
 * multiplied). The row is cut into tiles of KK_CONV_TW output pixels; a
 * tile keeps one accumulator vector per output channel of the block (in
 * registers: the block size is a compile-time constant, remainders run
 * blocks of 4, 2 and 1) and loops over input channel, kh, kw: one input
 * vector per tap, one broadcast weight and FMA per output channel. Where
 * the input vector of a tap comes from depends on the tile:
 *   - whole tile inside the image, stride 1: one contiguous load;
 *   - inside, stride 2: two contiguous loads and a shuffle of even lanes;
 *   - inside, other strides: per-lane loads;
 *   - border tiles (a lane reads a pad, or the tile is past the row's
 *     end): per-lane loads, guarded, zero outside the image.
 * (Copying each tap's segment to a zero-padded buffer instead was slower:
 * the vector loads from the buffer stall on store forwarding.)
 * A 1x1 kernel with stride 1 and no pads is a GEMM per group: tiles of
 * KK_CONV_TW consecutive pixels of the flattened plane, the same
 * accumulator blocking, one contiguous load per input channel. Depthwise
 * convolution (one input channel per group) is the general loop with a
 * block of one output channel and a single channel per tap loop.
 *
 * ConvTranspose2D, as a gather: a work item is (n, output channel m, output
 * row oh). The kernel rows that reach oh (oh + pad - kh * dilation divisible
 * by the stride, inside the input) are found per item; for each of them,
 * each input channel of m's group and each kw, the input row is added with
 * the weight into a row accumulator at stride `stride` (the input range
 * that lands inside the output row is computed, so there are no guards in
 * the inner loop, which is contiguous and vectorizes for stride 1).
 *
 * Pools: a work item is one output row of one (n, c) plane; tiles of
 * KK_CONV_TW output pixels, padding lanes read -inf (max) or 0 (mean); a
 * max propagates NaN like the reference. GlobalAveragePool sums each plane
 * with vectors of double accumulators. */
#ifndef KK_CONV_TEMPLATE

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "kk_conv.h"

/* Vectors are passed by value only between always_inline functions, so the
 * calling convention for wide vectors never applies. */
#pragma clang diagnostic ignored "-Wpsabi"

#define AI static inline __attribute__((always_inline))
#define TW KK_CONV_TW
_Static_assert(TW == 8, "the stride-2 shuffle and the accumulator blocking assume 8 lanes");
#define MB KK_CONV_MB
/* The row accumulator of ConvTranspose2D, in elements. */
#define CT_ROW 256

typedef float vf __attribute__((vector_size(TW * sizeof(float))));
typedef double vd __attribute__((vector_size(TW * sizeof(double))));
typedef int32_t vi32 __attribute__((vector_size(TW * sizeof(int32_t))));
typedef int64_t vi64 __attribute__((vector_size(TW * sizeof(int64_t))));
typedef uint16_t vu16 __attribute__((vector_size(TW * sizeof(uint16_t))));
typedef uint32_t vu32 __attribute__((vector_size(TW * sizeof(uint32_t))));
typedef _Float16 vh __attribute__((vector_size(TW * sizeof(_Float16))));

/* ---- element and vector access per dtype ---- */

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

AI float ld_f(int64_t dt, const void *p, int64_t i)
{
    switch (dt) {
    case KK_F16: return (float)((const _Float16 *)p)[i];
    case KK_BF16: return bf16_to_f32(((const uint16_t *)p)[i]);
    default: return ((const float *)p)[i];
    }
}

AI double ld_d(int64_t dt, const void *p, int64_t i)
{
    (void)dt;
    return ((const double *)p)[i];
}

AI void st_f(int64_t dt, void *p, int64_t i, float v)
{
    switch (dt) {
    case KK_F16: ((_Float16 *)p)[i] = (_Float16)v; break;
    case KK_BF16: ((uint16_t *)p)[i] = f32_to_bf16(v); break;
    default: ((float *)p)[i] = v; break;
    }
}

AI void st_d(int64_t dt, void *p, int64_t i, double v)
{
    (void)dt;
    ((double *)p)[i] = v;
}

/* TW contiguous elements from element i. */
AI vf vld_f(int64_t dt, const void *p, int64_t i)
{
    switch (dt) {
    case KK_F16: {
        vh h;
        memcpy(&h, (const uint16_t *)p + i, sizeof h);
        return __builtin_convertvector(h, vf);
    }
    case KK_BF16: {
        vu16 h;
        memcpy(&h, (const uint16_t *)p + i, sizeof h);
        vu32 u = __builtin_convertvector(h, vu32) << 16;
        vf f;
        memcpy(&f, &u, sizeof f);
        return f;
    }
    default: {
        vf v;
        memcpy(&v, (const float *)p + i, sizeof v);
        return v;
    }
    }
}

AI vd vld_d(int64_t dt, const void *p, int64_t i)
{
    (void)dt;
    vd v;
    memcpy(&v, (const double *)p + i, sizeof v);
    return v;
}

AI void vst_f(int64_t dt, void *p, int64_t i, vf v)
{
    switch (dt) {
    case KK_F16: {
        vh h = __builtin_convertvector(v, vh);
        memcpy((uint16_t *)p + i, &h, sizeof h);
        break;
    }
    case KK_BF16: {
        vu32 u;
        memcpy(&u, &v, sizeof u);
        vu32 nan = (vu32)((u & 0x7fffffffu) > 0x7f800000u);
        vu32 r = (u + 0x7fffu + ((u >> 16) & 1)) >> 16;
        vu32 q = (u >> 16) | 0x40u;
        vu16 h = __builtin_convertvector((q & nan) | (r & ~nan), vu16);
        memcpy((uint16_t *)p + i, &h, sizeof h);
        break;
    }
    default: memcpy((float *)p + i, &v, sizeof v); break;
    }
}

AI void vst_d(int64_t dt, void *p, int64_t i, vd v)
{
    (void)dt;
    memcpy((double *)p + i, &v, sizeof v);
}

AI vd vf_to_vd(vf v) { return __builtin_convertvector(v, vd); }
AI vd vd_to_vd(vd v) { return v; }

AI int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
AI int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }
/* Floor and ceiling of a / b for b > 0. */
AI int64_t floordiv(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
AI int64_t ceildiv(int64_t a, int64_t b) { return -floordiv(-a, b); }

/* ---- geometry ---- */

typedef struct {
    int64_t dt, N, C, H, W, M, KH, KW, OH, OW, G, sh, sw, dh, dw, pt, pl, pb, pr, bias, flag;
} geom_t;

AI void read_geom(geom_t *g, const int64_t *a)
{
    g->dt = a[KKG_DT];
    g->N = a[KKG_N];
    g->C = a[KKG_C];
    g->H = a[KKG_H];
    g->W = a[KKG_W];
    g->M = a[KKG_M];
    g->KH = a[KKG_KH];
    g->KW = a[KKG_KW];
    g->OH = a[KKG_OH];
    g->OW = a[KKG_OW];
    g->G = a[KKG_G];
    g->sh = a[KKG_SH];
    g->sw = a[KKG_SW];
    g->dh = a[KKG_DH];
    g->dw = a[KKG_DW];
    g->pt = a[KKG_PT];
    g->pl = a[KKG_PL];
    g->pb = a[KKG_PB];
    g->pr = a[KKG_PR];
    g->bias = a[KKG_BIAS];
    g->flag = a[KKG_FLAG];
}

/* The kernel rows [*lo, *hi) whose input row oh * sh - pt + kh * dh lies in
 * [0, H) (empty when *hi <= *lo). */
AI void valid_rows(const geom_t *g, int64_t oh, int64_t *lo, int64_t *hi)
{
    int64_t h0 = oh * g->sh - g->pt;
    *lo = max64(0, ceildiv(-h0, g->dh));
    *hi = min64(g->KH, floordiv(g->H - 1 - h0, g->dh) + 1);
}

/* How a tile reads its input vectors (see the top of the file). */
enum { TILE_DIRECT, TILE_STRIDE2, TILE_STRIDED, TILE_GUARDED };

/* ---- the float and double instances ---- */

#define KK_CONV_TEMPLATE
#define T float
#define V vf
#define VI vi32
#define SFX f
#define LD ld_f
#define ST st_f
#define VLD vld_f
#define VST vst_f
#define TO_VD vf_to_vd
#include "kk_conv.c"
#undef T
#undef V
#undef VI
#undef SFX
#undef LD
#undef ST
#undef VLD
#undef VST
#undef TO_VD

#define T double
#define V vd
#define VI vi64
#define SFX d
#define LD ld_d
#define ST st_d
#define VLD vld_d
#define VST vst_d
#define TO_VD vd_to_vd
#include "kk_conv.c"

/* ---- the entry points: one instance per compute type ---- */

__attribute__((always_inline)) void kk_conv2d(const void *x, const void *w, const void *b, void *y,
                                              const int64_t *geom, int64_t begin, int64_t end)
{
    if (geom[KKG_DT] == KK_F64) conv_d(x, w, b, y, geom, begin, end);
    else conv_f(x, w, b, y, geom, begin, end);
}

__attribute__((always_inline)) void kk_conv2d_1x1(const void *x, const void *w, const void *b,
                                                  void *y, const int64_t *geom, int64_t begin,
                                                  int64_t end)
{
    if (geom[KKG_DT] == KK_F64) conv1x1_d(x, w, b, y, geom, begin, end);
    else conv1x1_f(x, w, b, y, geom, begin, end);
}

/* The work items decode as in conv and conv1x1 above. */
__attribute__((always_inline)) void kk_conv2d_epi(const void *x, const void *w, const void *b,
                                                  void *y, const int64_t *geom,
                                                  void (*epi)(void *, int64_t, int64_t), void *ctx,
                                                  int64_t begin, int64_t end)
{
    const int64_t G = geom[KKG_G], M = geom[KKG_M], OH = geom[KKG_OH], OW = geom[KKG_OW];
    const int64_t Mg = M / G, nmb = (Mg + MB - 1) / MB;
    for (int64_t it = begin; it < end; it++) {
        kk_conv2d(x, w, b, y, geom, it, it + 1);
        int64_t oh = it % OH, t = it / OH;
        int64_t mbi = t % nmb;
        t /= nmb;
        int64_t grp = t % G, n = t / G;
        int64_t m0 = grp * Mg + mbi * MB, cnt = Mg - mbi * MB < MB ? Mg - mbi * MB : MB;
        for (int64_t m = m0; m < m0 + cnt; m++) epi(ctx, ((n * M + m) * OH + oh) * OW, OW);
    }
}

__attribute__((always_inline)) void kk_conv2d_1x1_epi(const void *x, const void *w, const void *b,
                                                      void *y, const int64_t *geom,
                                                      void (*epi)(void *, int64_t, int64_t),
                                                      void *ctx, int64_t begin, int64_t end)
{
    const int64_t G = geom[KKG_G], M = geom[KKG_M], P = geom[KKG_H] * geom[KKG_W];
    const int64_t Mg = M / G, nmb = (Mg + MB - 1) / MB, npc = (P + KK_CONV_PIX - 1) / KK_CONV_PIX;
    for (int64_t it = begin; it < end; it++) {
        kk_conv2d_1x1(x, w, b, y, geom, it, it + 1);
        int64_t pc = it % npc, t = it / npc;
        int64_t mbi = t % nmb;
        t /= nmb;
        int64_t grp = t % G, n = t / G;
        int64_t pbeg = pc * KK_CONV_PIX, pend = P < pbeg + KK_CONV_PIX ? P : pbeg + KK_CONV_PIX;
        int64_t m0 = grp * Mg + mbi * MB, cnt = Mg - mbi * MB < MB ? Mg - mbi * MB : MB;
        for (int64_t m = m0; m < m0 + cnt; m++) epi(ctx, (n * M + m) * P + pbeg, pend - pbeg);
    }
}

__attribute__((always_inline)) void kk_conv_transpose2d(const void *x, const void *w,
                                                        const void *b, void *y,
                                                        const int64_t *geom, int64_t begin,
                                                        int64_t end)
{
    if (geom[KKG_DT] == KK_F64) convt_d(x, w, b, y, geom, begin, end);
    else convt_f(x, w, b, y, geom, begin, end);
}

__attribute__((always_inline)) void kk_max_pool2d(const void *x, void *y, const int64_t *geom,
                                                  int64_t begin, int64_t end)
{
    if (geom[KKG_DT] == KK_F64) pool_d(x, y, geom, begin, end, 1);
    else pool_f(x, y, geom, begin, end, 1);
}

__attribute__((always_inline)) void kk_avg_pool2d(const void *x, void *y, const int64_t *geom,
                                                  int64_t begin, int64_t end)
{
    if (geom[KKG_DT] == KK_F64) pool_d(x, y, geom, begin, end, 0);
    else pool_f(x, y, geom, begin, end, 0);
}

__attribute__((always_inline)) void kk_global_avg_pool(const void *x, void *y, int64_t dtype,
                                                       int64_t plane, int64_t begin, int64_t end)
{
    if (dtype == KK_F64) gap_d(x, y, dtype, plane, begin, end);
    else gap_f(x, y, dtype, plane, begin, end);
}

#else /* KK_CONV_TEMPLATE: compiled once with T = float and once with T = double */

#define CAT2(a, b) a##_##b
#define CAT(a, b) CAT2(a, b)
#define FN(name) CAT(name, SFX)

/* Lane j: x[row + start + j * s] where that is inside [0, W) and j < nv,
 * else pad. */
AI V FN(gather)(int64_t dt, const void *x, int64_t row, int64_t W, int64_t start, int64_t s,
                int64_t nv, T pad)
{
    V v;
    for (int j = 0; j < TW; j++) {
        int64_t iw = start + j * s;
        v[j] = j < nv && iw >= 0 && iw < W ? LD(dt, x, row + iw) : pad;
    }
    return v;
}

/* The input vector of a tap: lane j is x[row + start + j * s], read as
 * `mode` says; a guarded read gives pad outside [0, W) and past lane nv. */
AI V FN(tap)(int64_t dt, const void *x, int64_t row, int64_t W, int64_t start, int64_t s,
             int64_t nv, T pad, const int mode)
{
    if (mode == TILE_DIRECT) return VLD(dt, x, row + start);
    if (mode == TILE_STRIDE2) {
        /* elements start .. start + 14: the even ones of two loads */
        V lo = VLD(dt, x, row + start), hi = VLD(dt, x, row + start + TW - 1);
        return __builtin_shufflevector(lo, hi, 0, 2, 4, 6, 9, 11, 13, 15);
    }
    if (mode == TILE_GUARDED) return FN(gather)(dt, x, row, W, start, s, nv, pad);
    V v;
    for (int j = 0; j < TW; j++) v[j] = LD(dt, x, row + start + j * s);
    return v;
}

/* Stores lanes [0, nv) of v at y[o ...]. */
AI void FN(store_tile)(int64_t dt, void *y, int64_t o, V v, int64_t nv)
{
    if (nv == TW) {
        VST(dt, y, o, v);
    } else {
        for (int64_t j = 0; j < nv; j++) ST(dt, y, o + j, v[j]);
    }
}

/* ---- Conv2D ---- */

/* One tile: outputs ow0 .. ow0 + nv - 1 of row oh of image n for the nm
 * output channels m .. m + nm - 1, whose group's input channels start at cb;
 * kernel rows [khlo, khhi) are inside the image. */
AI void FN(conv_tile)(const geom_t *g, const void *x, const void *w, const void *b, void *y,
                      int64_t n, int64_t cb, int64_t m, int64_t oh, int64_t khlo, int64_t khhi,
                      int64_t ow0, int64_t nv, const int nm, const int mode)
{
    const int64_t dt = g->dt, Cg = g->C / g->G, CKK = Cg * g->KH * g->KW;
    const int64_t s = g->sw, d = g->dw, start = ow0 * s - g->pl;
    V acc[MB];
#pragma clang loop unroll(full)
    for (int j = 0; j < nm; j++) acc[j] = (V){0} + (g->bias ? LD(dt, b, m + j) : (T)0);
    for (int64_t c = 0; c < Cg; c++) {
        for (int64_t kh = khlo; kh < khhi; kh++) {
            const int64_t ih = oh * g->sh - g->pt + kh * g->dh;
            const int64_t row = ((n * g->C + cb + c) * g->H + ih) * g->W;
            const int64_t wr = ((m * Cg + c) * g->KH + kh) * g->KW;
            for (int64_t kw = 0; kw < g->KW; kw++) {
                V xv = FN(tap)(dt, x, row, g->W, start + kw * d, s, nv, (T)0, mode);
#pragma clang loop unroll(full)
                for (int j = 0; j < nm; j++) acc[j] += xv * LD(dt, w, wr + j * CKK + kw);
            }
        }
    }
#pragma clang loop unroll(full)
    for (int j = 0; j < nm; j++)
        FN(store_tile)(dt, y, ((n * g->M + m + j) * g->OH + oh) * g->OW + ow0, acc[j], nv);
}

/* One output row for nm output channels, tile by tile. */
AI void FN(conv_row)(const geom_t *g, const void *x, const void *w, const void *b, void *y,
                     int64_t n, int64_t cb, int64_t m, int64_t oh, int64_t khlo, int64_t khhi,
                     const int nm)
{
    const int64_t s = g->sw, span = (TW - 1) * s + (g->KW - 1) * g->dw + 1;
    for (int64_t ow0 = 0; ow0 < g->OW; ow0 += TW) {
        int64_t nv = min64(TW, g->OW - ow0), start = ow0 * s - g->pl;
        bool inside = nv == TW && start >= 0 && start + span <= g->W;
        if (inside && s == 1)
            FN(conv_tile)(g, x, w, b, y, n, cb, m, oh, khlo, khhi, ow0, nv, nm, TILE_DIRECT);
        else if (inside && s == 2)
            FN(conv_tile)(g, x, w, b, y, n, cb, m, oh, khlo, khhi, ow0, nv, nm, TILE_STRIDE2);
        else if (inside)
            FN(conv_tile)(g, x, w, b, y, n, cb, m, oh, khlo, khhi, ow0, nv, nm, TILE_STRIDED);
        else
            FN(conv_tile)(g, x, w, b, y, n, cb, m, oh, khlo, khhi, ow0, nv, nm, TILE_GUARDED);
    }
}

AI void FN(conv)(const void *x, const void *w, const void *b, void *y, const int64_t *geom,
                 int64_t begin, int64_t end)
{
    geom_t g;
    read_geom(&g, geom);
    const int64_t Cg = g.C / g.G, Mg = g.M / g.G, nmb = (Mg + MB - 1) / MB;
    for (int64_t it = begin; it < end; it++) {
        int64_t oh = it % g.OH, t = it / g.OH;
        int64_t mbi = t % nmb;
        t /= nmb;
        int64_t grp = t % g.G, n = t / g.G;
        int64_t khlo, khhi;
        valid_rows(&g, oh, &khlo, &khhi);
        int64_t m = grp * Mg + mbi * MB, cb = grp * Cg;
        if (Mg % MB == 0 || mbi < nmb - 1) {
            FN(conv_row)(&g, x, w, b, y, n, cb, m, oh, khlo, khhi, MB);
            continue;
        }
        int64_t left = Mg - mbi * MB; /* 1 .. MB - 1 */
        if (left & 4) {
            FN(conv_row)(&g, x, w, b, y, n, cb, m, oh, khlo, khhi, 4);
            m += 4;
        }
        if (left & 2) {
            FN(conv_row)(&g, x, w, b, y, n, cb, m, oh, khlo, khhi, 2);
            m += 2;
        }
        if (left & 1) FN(conv_row)(&g, x, w, b, y, n, cb, m, oh, khlo, khhi, 1);
    }
}

/* ---- Conv2D, 1x1 kernel, stride 1, no pads: a GEMM per group ---- */

AI void FN(gemm_tile)(const geom_t *g, const void *x, const void *w, const void *b, void *y,
                      int64_t n, int64_t cb, int64_t m, int64_t p0, int64_t nv, const int nm,
                      const int full)
{
    const int64_t dt = g->dt, Cg = g->C / g->G, P = g->H * g->W;
    V acc[MB];
#pragma clang loop unroll(full)
    for (int j = 0; j < nm; j++) acc[j] = (V){0} + (g->bias ? LD(dt, b, m + j) : (T)0);
    for (int64_t c = 0; c < Cg; c++) {
        int64_t xo = (n * g->C + cb + c) * P;
        V xv = full ? VLD(dt, x, xo + p0) : FN(gather)(dt, x, xo, P, p0, 1, nv, (T)0);
#pragma clang loop unroll(full)
        for (int j = 0; j < nm; j++) acc[j] += xv * LD(dt, w, (m + j) * Cg + c);
    }
#pragma clang loop unroll(full)
    for (int j = 0; j < nm; j++) FN(store_tile)(dt, y, (n * g->M + m + j) * P + p0, acc[j], nv);
}

AI void FN(gemm_block)(const geom_t *g, const void *x, const void *w, const void *b, void *y,
                       int64_t n, int64_t cb, int64_t m, int64_t pbeg, int64_t pend, const int nm)
{
    int64_t p0 = pbeg;
    for (; p0 + TW <= pend; p0 += TW) FN(gemm_tile)(g, x, w, b, y, n, cb, m, p0, TW, nm, 1);
    if (p0 < pend) FN(gemm_tile)(g, x, w, b, y, n, cb, m, p0, pend - p0, nm, 0);
}

AI void FN(conv1x1)(const void *x, const void *w, const void *b, void *y, const int64_t *geom,
                    int64_t begin, int64_t end)
{
    geom_t g;
    read_geom(&g, geom);
    const int64_t Cg = g.C / g.G, Mg = g.M / g.G, nmb = (Mg + MB - 1) / MB;
    const int64_t P = g.H * g.W, npc = (P + KK_CONV_PIX - 1) / KK_CONV_PIX;
    for (int64_t it = begin; it < end; it++) {
        int64_t pc = it % npc, t = it / npc;
        int64_t mbi = t % nmb;
        t /= nmb;
        int64_t grp = t % g.G, n = t / g.G;
        int64_t pbeg = pc * KK_CONV_PIX, pend = min64(P, pbeg + KK_CONV_PIX);
        int64_t m = grp * Mg + mbi * MB, cb = grp * Cg;
        if (Mg % MB == 0 || mbi < nmb - 1) {
            FN(gemm_block)(&g, x, w, b, y, n, cb, m, pbeg, pend, MB);
            continue;
        }
        int64_t left = Mg - mbi * MB;
        if (left & 4) {
            FN(gemm_block)(&g, x, w, b, y, n, cb, m, pbeg, pend, 4);
            m += 4;
        }
        if (left & 2) {
            FN(gemm_block)(&g, x, w, b, y, n, cb, m, pbeg, pend, 2);
            m += 2;
        }
        if (left & 1) FN(gemm_block)(&g, x, w, b, y, n, cb, m, pbeg, pend, 1);
    }
}

/* ---- ConvTranspose2D ---- */

AI void FN(convt)(const void *x, const void *w, const void *b, void *y, const int64_t *geom,
                  int64_t begin, int64_t end)
{
    geom_t g;
    read_geom(&g, geom);
    const int64_t dt = g.dt, Cg = g.C / g.G, Mg = g.M / g.G;
    for (int64_t it = begin; it < end; it++) {
        int64_t oh = it % g.OH, t = it / g.OH;
        int64_t m = t % g.M, n = t / g.M;
        int64_t grp = m / Mg, ml = m % Mg;
        T bias = g.bias ? LD(dt, b, m) : (T)0;
        for (int64_t ow0 = 0; ow0 < g.OW; ow0 += CT_ROW) {
            int64_t len = min64(CT_ROW, g.OW - ow0);
            T acc[CT_ROW];
            for (int64_t j = 0; j < len; j++) acc[j] = bias;
            for (int64_t kh = 0; kh < g.KH; kh++) {
                int64_t th = oh + g.pt - kh * g.dh;
                if (th < 0 || th % g.sh != 0 || th / g.sh >= g.H) continue;
                int64_t ih = th / g.sh;
                for (int64_t c = grp * Cg; c < (grp + 1) * Cg; c++) {
                    const int64_t row = ((n * g.C + c) * g.H + ih) * g.W;
                    const int64_t wr = ((c * Mg + ml) * g.KH + kh) * g.KW;
                    for (int64_t kw = 0; kw < g.KW; kw++) {
                        /* input iw lands on acc[iw * sw + off] */
                        const int64_t off = kw * g.dw - g.pl - ow0;
                        const int64_t lo = max64(0, ceildiv(-off, g.sw));
                        const int64_t hi = min64(g.W, floordiv(len - 1 - off, g.sw) + 1);
                        const T wv = LD(dt, w, wr + kw);
                        for (int64_t iw = lo; iw < hi; iw++)
                            acc[iw * g.sw + off] += wv * LD(dt, x, row + iw);
                    }
                }
            }
            int64_t o = ((n * g.M + m) * g.OH + oh) * g.OW + ow0;
            for (int64_t j = 0; j < len; j++) ST(dt, y, o + j, acc[j]);
        }
    }
}

/* ---- MaxPool2D, AveragePool2D ---- */

/* max(acc, v) per lane, where a NaN in v wins (as the reference's
 * "v != v || v > acc"). */
AI V FN(nanmax)(V acc, V v)
{
    VI take = (v != v) | (v > acc);
    return (V)(((VI)v & take) | ((VI)acc & ~take));
}

AI void FN(pool_tile)(const geom_t *g, const void *x, void *y, int64_t p, int64_t oh,
                      int64_t khlo, int64_t khhi, int64_t ow0, int64_t nv, const int is_max,
                      const int mode)
{
    const int64_t dt = g->dt, s = g->sw, d = g->dw, start = ow0 * s - g->pl;
    const T pad = is_max ? (T)-INFINITY : (T)0;
    V acc = (V){0} + pad;
    for (int64_t kh = khlo; kh < khhi; kh++) {
        const int64_t row = (p * g->H + oh * g->sh - g->pt + kh * g->dh) * g->W;
        for (int64_t kw = 0; kw < g->KW; kw++) {
            V xv = FN(tap)(dt, x, row, g->W, start + kw * d, s, nv, pad, mode);
            acc = is_max ? FN(nanmax)(acc, xv) : acc + xv;
        }
    }
    if (!is_max) {
        /* the divisor: the window's taps inside the input, or with
         * count_include_pad those inside the explicit pads (dilation 1) */
        const int64_t h0 = oh * g->sh - g->pt;
        V div;
        for (int j = 0; j < TW; j++) {
            int64_t w0 = (ow0 + j) * s - g->pl, cnt;
            if (g->flag) {
                int64_t h1 = min64(h0 + g->KH, g->H + g->pb), w1 = min64(w0 + g->KW, g->W + g->pr);
                cnt = (h1 - h0) * (w1 - w0);
            } else {
                cnt = max64(khhi - khlo, 0) * max64(min64(g->W, w0 + g->KW) - max64(0, w0), 0);
            }
            div[j] = (T)cnt;
        }
        acc = acc / div;
    }
    FN(store_tile)(dt, y, (p * g->OH + oh) * g->OW + ow0, acc, nv);
}

AI void FN(pool)(const void *x, void *y, const int64_t *geom, int64_t begin, int64_t end,
                 const int is_max)
{
    geom_t g;
    read_geom(&g, geom);
    const int64_t s = g.sw, ext = (g.KW - 1) * g.dw + 1;
    for (int64_t it = begin; it < end; it++) {
        int64_t oh = it % g.OH, p = it / g.OH;
        int64_t khlo, khhi;
        valid_rows(&g, oh, &khlo, &khhi);
        for (int64_t ow0 = 0; ow0 < g.OW; ow0 += TW) {
            int64_t nv = min64(TW, g.OW - ow0), start = ow0 * s - g.pl;
            bool inside = nv == TW && start >= 0 && start + (TW - 1) * s + ext <= g.W;
            if (inside && s == 1)
                FN(pool_tile)(&g, x, y, p, oh, khlo, khhi, ow0, nv, is_max, TILE_DIRECT);
            else if (inside && s == 2)
                FN(pool_tile)(&g, x, y, p, oh, khlo, khhi, ow0, nv, is_max, TILE_STRIDE2);
            else if (inside)
                FN(pool_tile)(&g, x, y, p, oh, khlo, khhi, ow0, nv, is_max, TILE_STRIDED);
            else
                FN(pool_tile)(&g, x, y, p, oh, khlo, khhi, ow0, nv, is_max, TILE_GUARDED);
        }
    }
}

/* ---- GlobalAveragePool ---- */

AI void FN(gap)(const void *x, void *y, int64_t dt, int64_t plane, int64_t begin, int64_t end)
{
    for (int64_t p = begin; p < end; p++) {
        const int64_t base = p * plane;
        vd acc = (vd){0};
        int64_t i = 0;
        for (; i + TW <= plane; i += TW) acc += TO_VD(VLD(dt, x, base + i));
        double sum = 0;
        for (int j = 0; j < TW; j++) sum += acc[j];
        for (; i < plane; i++) sum += LD(dt, x, base + i);
        ST(dt, y, p, (T)(sum / (double)plane)); /* an empty plane gives NaN */
    }
}

#undef CAT2
#undef CAT
#undef FN

#endif /* KK_CONV_TEMPLATE */
