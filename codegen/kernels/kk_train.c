/* kk_train.c -- kernels of the backward ops (kk_train.h): the filter
 * gradient of Conv2D, the input gradients of MaxPool2D and AveragePool2D,
 * MaxPool2DSelect and the scatter-add of GatherGrad. Elements are read and written through
 * per-dtype helpers and accumulated in double, as the reference kernels of
 * ir/ops/train.c do (MaxPool2DGrad and GatherGrad add into the output in
 * its own dtype). The entry points are always inlined into the generated
 * kernel, where the geometry is constant, so the dtype switches and the
 * sizes fold; the loops are otherwise kept simple rather than tiled. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kk_train.h"

#define AI static inline __attribute__((always_inline))

/* ---- element access (conversions as ir/dtype.c) ---- */

AI float bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

AI uint16_t f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

AI float f16_to_f32(uint16_t u)
{
    _Float16 h;
    memcpy(&h, &u, sizeof h);
    return (float)h;
}

AI uint16_t f32_to_f16(float f)
{
    _Float16 h = (_Float16)f;
    uint16_t u;
    memcpy(&u, &h, sizeof u);
    return u;
}

/* double -> float rounding to odd, so that a following f16/bf16 rounding
 * rounds once. */
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

AI double ld(int64_t dt, const void *p, int64_t i)
{
    switch (dt) {
    case KK_F64: return ((const double *)p)[i];
    case KK_F16: return f16_to_f32(((const uint16_t *)p)[i]);
    case KK_BF16: return bf16_to_f32(((const uint16_t *)p)[i]);
    default: return ((const float *)p)[i];
    }
}

AI void st(int64_t dt, void *p, int64_t i, double v)
{
    switch (dt) {
    case KK_F64: ((double *)p)[i] = v; break;
    case KK_F16: ((uint16_t *)p)[i] = f32_to_f16(f64_to_f32_odd(v)); break;
    case KK_BF16: ((uint16_t *)p)[i] = f32_to_bf16(f64_to_f32_odd(v)); break;
    default: ((float *)p)[i] = (float)v; break;
    }
}

AI int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }
AI int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* ---- Conv2DFilterGrad ---- */

#define VW 8

/* sum over i < n of x[xo + i * sx] * dy[dyo + i]: VW independent lane
 * accumulators (which LLVM keeps in vector registers), in float for the
 * float dtypes and double for f64, summed in double at the end. */
AI double dot_row(int64_t dt, const void *x, int64_t xo, int64_t sx, const void *dy, int64_t dyo,
                  int64_t n)
{
    double r = 0;
    int64_t i = 0;
    if (dt == KK_F64) {
        double l[VW] = {0};
        for (; i + VW <= n; i += VW)
            for (int j = 0; j < VW; j++) l[j] += ld(dt, x, xo + (i + j) * sx) * ld(dt, dy, dyo + i + j);
        for (int j = 0; j < VW; j++) r += l[j];
    } else {
        float l[VW] = {0};
        for (; i + VW <= n; i += VW)
            for (int j = 0; j < VW; j++)
                l[j] += (float)ld(dt, x, xo + (i + j) * sx) * (float)ld(dt, dy, dyo + i + j);
        for (int j = 0; j < VW; j++) r += (double)l[j];
    }
    for (; i < n; i++) r += ld(dt, x, xo + i * sx) * ld(dt, dy, dyo + i);
    return r;
}

__attribute__((always_inline)) void kk_conv2d_filter_grad(const void *x, const void *dy, void *dw, const int64_t *g,
                           int64_t begin, int64_t end)
{
    const int64_t dt = g[KTG_DT], N = g[KTG_N], C = g[KTG_C], H = g[KTG_H], W = g[KTG_W];
    const int64_t M = g[KTG_M], OH = g[KTG_OH], OW = g[KTG_OW], KH = g[KTG_KH], KW = g[KTG_KW];
    const int64_t Cg = C / g[KTG_G], Mg = M / g[KTG_G];
    const int64_t sh = g[KTG_SH], sw = g[KTG_SW], dh = g[KTG_DH], dwl = g[KTG_DW];
    const int64_t pt = g[KTG_PT], pl = g[KTG_PL];
    if (end > M * Cg) end = M * Cg;
    for (int64_t item = begin; item < end; item++) {
        int64_t m = item / Cg, cl = item % Cg, c = (m / Mg) * Cg + cl;
        for (int64_t kh = 0; kh < KH; kh++)
            for (int64_t kw = 0; kw < KW; kw++) {
                /* the output columns whose tap stays inside the row */
                int64_t off = kw * dwl - pl;
                int64_t ow0 = off >= 0 ? 0 : (-off + sw - 1) / sw;
                int64_t ow1 = W - off <= 0 ? 0 : min64(OW, (W - off - 1) / sw + 1);
                double acc = 0;
                for (int64_t n = 0; n < N; n++)
                    for (int64_t oh = 0; oh < OH; oh++) {
                        int64_t ih = oh * sh - pt + kh * dh;
                        if (ih < 0 || ih >= H) continue;
                        int64_t xrow = ((n * C + c) * H + ih) * W + off, drow = ((n * M + m) * OH + oh) * OW;
                        if (ow1 > ow0)
                            acc += dot_row(dt, x, xrow + ow0 * sw, sw, dy, drow + ow0, ow1 - ow0);
                    }
                st(dt, dw, (item * KH + kh) * KW + kw, acc);
            }
    }
}

/* ---- MaxPool2DGrad, MaxPool2DSelect: the first maximum of each window ---- */

/* The offset in its plane of the first maximum of x in window (oh, ow),
 * NaN counting as the maximum; -1 when no tap is inside x. */
AI int64_t window_argmax(const int64_t *g, const void *x, int64_t base, int64_t oh, int64_t ow)
{
    const int64_t dt = g[KTG_DT], H = g[KTG_H], W = g[KTG_W];
    const int64_t h0 = oh * g[KTG_SH] - g[KTG_PT], w0 = ow * g[KTG_SW] - g[KTG_PL];
    int64_t best_i = -1;
    double best = 0;
    for (int64_t kh = 0; kh < g[KTG_KH]; kh++) {
        int64_t ih = h0 + kh * g[KTG_DH];
        if (ih < 0 || ih >= H) continue;
        for (int64_t kw = 0; kw < g[KTG_KW]; kw++) {
            int64_t iw = w0 + kw * g[KTG_DW];
            if (iw < 0 || iw >= W) continue;
            double v = ld(dt, x, base + ih * W + iw);
            if (best_i < 0 || (v != v && best == best) || v > best) {
                best = v;
                best_i = ih * W + iw;
            }
        }
    }
    return best_i;
}

__attribute__((always_inline)) void kk_max_pool2d_grad(const void *x, const void *dy, void *dx,
                                                       const int64_t *g, int64_t begin, int64_t end)
{
    const int64_t dt = g[KTG_DT], H = g[KTG_H], W = g[KTG_W], OH = g[KTG_OH], OW = g[KTG_OW];
    if (end > g[KTG_N] * g[KTG_C]) end = g[KTG_N] * g[KTG_C];
    for (int64_t p = begin; p < end; p++) {
        int64_t base = p * H * W;
        for (int64_t i = 0; i < H * W; i++) st(dt, dx, base + i, 0.0);
        for (int64_t oh = 0; oh < OH; oh++)
            for (int64_t ow = 0; ow < OW; ow++) {
                int64_t bi = window_argmax(g, x, base, oh, ow);
                if (bi < 0) continue;
                double d = ld(dt, dy, (p * OH + oh) * OW + ow);
                st(dt, dx, base + bi, ld(dt, dx, base + bi) + d);
            }
    }
}

__attribute__((always_inline)) void kk_max_pool2d_select(const void *x, const void *v, void *y,
                                                         const int64_t *g, int64_t begin, int64_t end)
{
    const int64_t dt = g[KTG_DT], H = g[KTG_H], W = g[KTG_W], OH = g[KTG_OH], OW = g[KTG_OW];
    if (end > g[KTG_N] * g[KTG_C]) end = g[KTG_N] * g[KTG_C];
    for (int64_t p = begin; p < end; p++) {
        int64_t base = p * H * W;
        for (int64_t oh = 0; oh < OH; oh++)
            for (int64_t ow = 0; ow < OW; ow++) {
                int64_t bi = window_argmax(g, x, base, oh, ow);
                st(dt, y, (p * OH + oh) * OW + ow, bi < 0 ? 0.0 : ld(dt, v, base + bi));
            }
    }
}

/* ---- AveragePool2DGrad: each input element gathers from its windows ---- */

/* The divisor of window (oh, ow), as the forward pool computes it. */
AI int64_t avg_div(const int64_t *g, int64_t h0, int64_t w0)
{
    const int64_t H = g[KTG_H], W = g[KTG_W], KH = g[KTG_KH], KW = g[KTG_KW];
    if (g[KTG_FLAG]) {
        int64_t h1 = min64(h0 + KH, H + g[KTG_PB]), w1 = min64(w0 + KW, W + g[KTG_PR]);
        return (h1 - h0) * (w1 - w0);
    }
    return (min64(h0 + KH, H) - max64(h0, 0)) * (min64(w0 + KW, W) - max64(w0, 0));
}

__attribute__((always_inline)) void kk_avg_pool2d_grad(const void *dy, void *dx, const int64_t *g, int64_t begin, int64_t end)
{
    const int64_t dt = g[KTG_DT], H = g[KTG_H], W = g[KTG_W], OH = g[KTG_OH], OW = g[KTG_OW];
    const int64_t KH = g[KTG_KH], KW = g[KTG_KW], sh = g[KTG_SH], sw = g[KTG_SW];
    const int64_t pt = g[KTG_PT], pl = g[KTG_PL];
    if (end > g[KTG_N] * g[KTG_C]) end = g[KTG_N] * g[KTG_C];
    for (int64_t p = begin; p < end; p++)
        for (int64_t ih = 0; ih < H; ih++) {
            /* windows oh with oh * sh - pt <= ih < oh * sh - pt + KH */
            int64_t t = ih + pt, oh0 = t - KH + 1 <= 0 ? 0 : (t - KH + 1 + sh - 1) / sh;
            int64_t oh1 = min64(OH - 1, t / sh);
            for (int64_t iw = 0; iw < W; iw++) {
                int64_t u = iw + pl, ow0 = u - KW + 1 <= 0 ? 0 : (u - KW + 1 + sw - 1) / sw;
                int64_t ow1 = min64(OW - 1, u / sw);
                double acc = 0;
                for (int64_t oh = oh0; oh <= oh1; oh++)
                    for (int64_t ow = ow0; ow <= ow1; ow++) {
                        int64_t div = avg_div(g, oh * sh - pt, ow * sw - pl);
                        if (div > 0) acc += ld(dt, dy, (p * OH + oh) * OW + ow) / (double)div;
                    }
                st(dt, dx, (p * H + ih) * W + iw, acc);
            }
        }
}

/* ---- GatherGrad ---- */

AI int64_t load_index(const void *idx, int64_t idx64, int64_t j)
{
    return idx64 ? ((const int64_t *)idx)[j] : (int64_t)((const int32_t *)idx)[j];
}

__attribute__((always_inline)) void kk_gather_grad(const void *dy, const void *idx, int64_t idx64, void *dx, int64_t dt,
                    int64_t outer, int64_t dim, int64_t nidx, int64_t inner, int32_t *err,
                    int64_t begin, int64_t end)
{
    if (begin == 0)
        for (int64_t j = 0; j < nidx; j++) {
            int64_t v = load_index(idx, idx64, j);
            if (v < -dim || v >= dim) {
                *err = KK_ERR_INDEX;
                return;
            }
        }
    if (end > outer) end = outer;
    for (int64_t o = begin; o < end; o++) {
        int64_t block = o * dim * inner;
        for (int64_t i = 0; i < dim * inner; i++) st(dt, dx, block + i, 0.0);
        for (int64_t j = 0; j < nidx; j++) {
            int64_t v = load_index(idx, idx64, j);
            if (v < -dim || v >= dim) {
                *err = KK_ERR_INDEX;
                return;
            }
            if (v < 0) v += dim;
            int64_t src = (o * nidx + j) * inner, dst = block + v * inner;
            for (int64_t i = 0; i < inner; i++) st(dt, dx, dst + i, ld(dt, dx, dst + i) + ld(dt, dy, src + i));
        }
    }
}

/* ---- CumProdGrad ---- */

__attribute__((always_inline)) void kk_cumprod_grad(const void *x, const void *dy, void *dx, int64_t dt, int64_t n,
                                                    int64_t inner, int64_t excl, int64_t rev, int64_t begin,
                                                    int64_t end)
{
    for (int64_t line = begin; line < end; line++) {
        int64_t base = (line / inner) * n * inner + line % inner;
#define AT(s) (base + (rev ? n - 1 - (s) : (s)) * inner)
        double acc = 0;
        for (int64_t s = n - 1; s >= 0; s--) {
            if (excl) {
                st(dt, dx, AT(s), acc);
                acc = ld(dt, dy, AT(s)) + ld(dt, x, AT(s)) * acc;
            } else {
                acc = ld(dt, dy, AT(s)) + (s + 1 < n ? ld(dt, x, AT(s + 1)) : 0) * acc;
                st(dt, dx, AT(s), acc);
            }
        }
        double e = 1;
        for (int64_t s = 0; s < n; s++) {
            st(dt, dx, AT(s), e * ld(dt, dx, AT(s)));
            e *= ld(dt, x, AT(s));
        }
#undef AT
    }
}

/* ---- GridSampleGrad ---- */

#include "../../ir/grid_sample_grad.h"

#define KK_GS_MAX 8

__attribute__((always_inline)) void kk_grid_sample_grad(const void *x, const void *grid, int64_t gdt, const void *dy,
                                                        void *dx, void *dgrid, int64_t dt, int64_t k,
                                                        const int64_t *sdims, int64_t chans, int64_t points,
                                                        int64_t mode, int64_t pad, int64_t align, int64_t begin,
                                                        int64_t end)
{
    int64_t st_[KK_GS_MAX], idx[KK_GS_MAX][4], vol = 1;
    double w[KK_GS_MAX][4], dw[KK_GS_MAX][4];
    int nt[KK_GS_MAX];
    if (k < 1 || k > KK_GS_MAX) return;
    for (int64_t d = k - 1; d >= 0; d--) {
        st_[d] = vol;
        vol *= sdims[d];
    }
    for (int64_t n = begin; n < end; n++) {
        for (int64_t i = 0; i < chans * vol; i++) st(dt, dx, n * chans * vol + i, 0.0);
        for (int64_t p = 0; p < points; p++) {
            int64_t gb = (n * points + p) * k;
            for (int64_t j = 0; j < k; j++) {
                int64_t d = k - 1 - j;
                nt[d] = gsg_taps(ld(gdt, grid, gb + j), sdims[d], (int)mode, (int)pad, (int)align, idx[d], w[d],
                                 dw[d]);
            }
            double dgs[KK_GS_MAX] = {0};
            for (int64_t c = 0; c < chans; c++) {
                int64_t xbase = (n * chans + c) * vol;
                double dyv = ld(dt, dy, (n * chans + c) * points + p);
                int sel[KK_GS_MAX] = {0};
                for (;;) {
                    double wt = 1;
                    int64_t off = 0;
                    int inside = 1;
                    for (int64_t d = 0; d < k; d++) {
                        wt *= w[d][sel[d]];
                        if (idx[d][sel[d]] < 0) inside = 0;
                        off += idx[d][sel[d]] * st_[d];
                    }
                    if (inside) {
                        int64_t at = xbase + off;
                        st(dt, dx, at, ld(dt, dx, at) + dyv * wt);
                        double xv = dyv * ld(dt, x, at);
                        for (int64_t d = 0; d < k; d++) {
                            double pr = dw[d][sel[d]];
                            for (int64_t e = 0; e < k; e++)
                                if (e != d) pr *= w[e][sel[e]];
                            dgs[d] += xv * pr;
                        }
                    }
                    int64_t d = k - 1;
                    while (d >= 0 && ++sel[d] == nt[d]) sel[d--] = 0;
                    if (d < 0) break;
                }
            }
            for (int64_t j = 0; j < k; j++) st(gdt, dgrid, gb + j, dgs[k - 1 - j]);
        }
    }
}
