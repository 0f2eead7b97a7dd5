/* kk_index.c -- TopK, CumSum/CumProd, GatherElements, ScatterElements,
 * ScatterND and OneHot (see kk_index.h). Elements are read by dtype code
 * (a constant at each call site, so after inlining the switches fold);
 * conversions are those of ir/dtype.c, so results match the reference
 * kernels of ir/ops/index.c bit for bit. */
#include <stdint.h>
#include <string.h>

#include "kk.h"
#include "kk_index.h"

#define AI static inline __attribute__((always_inline))

typedef uint8_t __attribute__((may_alias)) u8a;
typedef uint16_t __attribute__((may_alias)) u16a;
typedef uint32_t __attribute__((may_alias)) u32a;
typedef uint64_t __attribute__((may_alias)) u64a;

/* ---- conversions (as ir/dtype.c) ---- */

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

/* double -> float rounding to odd, so that f16/bf16 round once. */
AI float f64_to_f32_odd(double v)
{
    float f = (float)v;
    if (f - f != 0 || (double)f == v) return f; /* inf, NaN or exact */
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    double af = f < 0 ? -(double)f : (double)f, av = v < 0 ? -v : v;
    if (af > av) u--;
    u |= 1u;
    memcpy(&f, &u, sizeof f);
    return f;
}

AI int is_float(int64_t dt)
{
    return dt == KK_F32 || dt == KK_F64 || dt == KK_F16 || dt == KK_BF16;
}

/* An integer from ld_i mapped so that signed order is the dtype's order
 * (as ir_int_order): u64 flips the sign bit. */
AI int64_t int_order(int64_t dt, int64_t v)
{
    return dt == KK_U64 ? (int64_t)((uint64_t)v ^ 0x8000000000000000u) : v;
}

AI int64_t dtype_bytes(int64_t dt)
{
    return dt == KK_F64 || dt == KK_I64 || dt == KK_U64              ? 8
           : dt == KK_F32 || dt == KK_I32 || dt == KK_U32            ? 4
           : dt == KK_F16 || dt == KK_BF16 || dt == KK_I16 || dt == KK_U16 ? 2
                                                                     : 1;
}

AI double ld_f(const void *p, int64_t dt, int64_t i)
{
    switch (dt) {
    case KK_F32: return ((const float *)p)[i];
    case KK_F64: return ((const double *)p)[i];
    case KK_F16: return f16_to_f32(((const uint16_t *)p)[i]);
    case KK_BF16: return bf16_to_f32(((const uint16_t *)p)[i]);
    default: return 0;
    }
}

/* Any dtype as int64: integers as they are, floats truncated toward zero
 * and saturated (NaN: 0), as ir_load_i64. */
AI int64_t ld_i(const void *p, int64_t dt, int64_t i)
{
    switch (dt) {
    case KK_I8: return ((const int8_t *)p)[i];
    case KK_U8: return ((const uint8_t *)p)[i];
    case KK_I32: return ((const int32_t *)p)[i];
    case KK_I64: return ((const int64_t *)p)[i];
    case KK_BOOL: return ((const uint8_t *)p)[i] != 0;
    case KK_I16: return ((const int16_t *)p)[i];
    case KK_U16: return ((const uint16_t *)p)[i];
    case KK_U32: return ((const uint32_t *)p)[i];
    case KK_U64: return (int64_t)((const uint64_t *)p)[i]; /* the same bits */
    default: break;
    }
    double v = ld_f(p, dt, i);
    if (v != v) return 0;
    if (v >= 9.2233720368547758e18) return INT64_MAX;
    if (v <= -9.2233720368547758e18) return INT64_MIN;
    return (int64_t)v;
}

AI void st_f(void *p, int64_t dt, int64_t i, double v)
{
    switch (dt) {
    case KK_F32: ((float *)p)[i] = (float)v; return;
    case KK_F64: ((double *)p)[i] = v; return;
    case KK_F16: ((uint16_t *)p)[i] = f32_to_f16(f64_to_f32_odd(v)); return;
    case KK_BF16: ((uint16_t *)p)[i] = f32_to_bf16(f64_to_f32_odd(v)); return;
    default: return;
    }
}

AI void st_i(void *p, int64_t dt, int64_t i, int64_t v)
{
    switch (dt) {
    case KK_I8: ((int8_t *)p)[i] = (int8_t)(uint8_t)(uint64_t)v; return;
    case KK_U8: ((uint8_t *)p)[i] = (uint8_t)(uint64_t)v; return;
    case KK_I32: ((int32_t *)p)[i] = (int32_t)(uint32_t)(uint64_t)v; return;
    case KK_I64: ((int64_t *)p)[i] = v; return;
    case KK_BOOL: ((uint8_t *)p)[i] = v != 0; return;
    case KK_I16: ((int16_t *)p)[i] = (int16_t)(uint16_t)(uint64_t)v; return;
    case KK_U16: ((uint16_t *)p)[i] = (uint16_t)(uint64_t)v; return;
    case KK_U32: ((uint32_t *)p)[i] = (uint32_t)(uint64_t)v; return;
    case KK_U64: ((uint64_t *)p)[i] = (uint64_t)v; return;
    default: return;
    }
}

/* d[j] = s[i] for one element of esz bytes. */
AI void copy_elem(void *d, int64_t j, const void *s, int64_t i, int64_t esz)
{
    switch (esz) {
    case 1: ((u8a *)d)[j] = ((const u8a *)s)[i]; return;
    case 2: ((u16a *)d)[j] = ((const u16a *)s)[i]; return;
    case 4: ((u32a *)d)[j] = ((const u32a *)s)[i]; return;
    case 8: ((u64a *)d)[j] = ((const u64a *)s)[i]; return;
    default:
        memcpy((unsigned char *)d + j * esz, (const unsigned char *)s + i * esz, (size_t)esz);
        return;
    }
}

AI int64_t ld_index(const void *idx, int64_t idx64, int64_t j)
{
    return idx64 ? ((const int64_t *)idx)[j] : (int64_t)((const int32_t *)idx)[j];
}

/* ---- TopK ---- */

/* Element i goes before element j of the line at x + base (stride st). */
AI int topk_before(const void *x, int64_t dt, int64_t base, int64_t st, int64_t i, int64_t j,
                   int64_t largest)
{
    if (is_float(dt)) {
        double a = ld_f(x, dt, base + i * st), b = ld_f(x, dt, base + j * st);
        int na = a != a, nb = b != b;
        if (na || nb) {
            if (na && nb) return i < j;
            return largest ? na : nb;
        }
        if (a != b) return largest ? a > b : a < b;
        return i < j;
    }
    int64_t a = int_order(dt, ld_i(x, dt, base + i * st)), b = int_order(dt, ld_i(x, dt, base + j * st));
    if (a != b) return largest ? a > b : a < b;
    return i < j;
}

void kk_topk(void *y, int64_t *yi, const void *x, int64_t dt, int64_t n, int64_t k, int64_t inner,
             int64_t largest, int64_t lines, int64_t begin, int64_t end)
{
    if (end > lines) end = lines;
    if (k <= 0) return;
    int64_t esz = dtype_bytes(dt);
    for (int64_t w = begin; w < end; w++) {
        int64_t o = w / inner, in = w % inner;
        int64_t base = o * n * inner + in, yb = o * k * inner + in;
        /* insertion into the sorted list of the best so far, kept in yi */
        int64_t cnt = 0;
        for (int64_t i = 0; i < n; i++) {
            if (cnt == k && !topk_before(x, dt, base, inner, i, yi[yb + (k - 1) * inner], largest))
                continue;
            int64_t p = cnt < k ? cnt++ : k - 1;
            while (p > 0 && topk_before(x, dt, base, inner, i, yi[yb + (p - 1) * inner], largest)) {
                yi[yb + p * inner] = yi[yb + (p - 1) * inner];
                p--;
            }
            yi[yb + p * inner] = i;
        }
        for (int64_t j = 0; j < k; j++)
            copy_elem(y, yb + j * inner, x, base + yi[yb + j * inner] * inner, esz);
    }
}

/* ---- CumSum, CumProd ---- */

void kk_cum(void *y, const void *x, int64_t dt, int64_t n, int64_t inner, int64_t prod,
            int64_t exclusive, int64_t reverse, int64_t lines, int64_t begin, int64_t end)
{
    if (end > lines) end = lines;
    int fl = is_float(dt);
    for (int64_t w = begin; w < end; w++) {
        int64_t o = w / inner, in = w % inner;
        double fa = prod ? 1 : 0;
        uint64_t ia = prod ? 1 : 0;
        for (int64_t s = 0; s < n; s++) {
            int64_t i = reverse ? n - 1 - s : s;
            int64_t at = (o * n + i) * inner + in;
            if (fl) {
                double v = ld_f(x, dt, at);
                if (exclusive) st_f(y, dt, at, fa);
                fa = prod ? fa * v : fa + v;
                if (!exclusive) st_f(y, dt, at, fa);
            } else {
                uint64_t v = (uint64_t)ld_i(x, dt, at);
                if (exclusive) st_i(y, dt, at, (int64_t)ia);
                ia = prod ? ia * v : ia + v;
                if (!exclusive) st_i(y, dt, at, (int64_t)ia);
            }
        }
    }
}

/* ---- GatherElements, ScatterElements ---- */

/* The element of x that index element j addresses; -1 when the index is
 * out of range. */
AI int64_t element_target(const void *idx, int64_t idx64, int64_t rank, const int64_t *idims,
                          const int64_t *xstrides, int64_t axis, int64_t dim, int64_t j)
{
    int64_t v = ld_index(idx, idx64, j);
    if (v < -dim || v >= dim) return -1;
    if (v < 0) v += dim;
    int64_t off = 0, r = j;
    for (int64_t d = rank - 1; d >= 0; d--) {
        int64_t c = r % idims[d];
        r /= idims[d];
        off += (d == axis ? v : c) * xstrides[d];
    }
    return off;
}

void kk_gather_elements(void *y, const void *x, const void *idx, int64_t idx64, int64_t esz,
                        int64_t rank, const int64_t *idims, const int64_t *xstrides, int64_t axis,
                        int64_t dim, int64_t nidx, int32_t *err, int64_t begin, int64_t end)
{
    if (end > nidx) end = nidx;
    for (int64_t j = begin; j < end; j++) {
        int64_t at = element_target(idx, idx64, rank, idims, xstrides, axis, dim, j);
        if (at < 0) {
            *err = KK_ERR_INDEX;
            return;
        }
        copy_elem(y, j, x, at, esz);
    }
}

/* y[at] = u[j], or combined with it by the reduction. */
AI void reduce_into(void *y, int64_t at, const void *u, int64_t j, int64_t dt, int64_t esz,
                    int64_t red)
{
    if (red == KK_RED_NONE) {
        copy_elem(y, at, u, j, esz);
    } else if (is_float(dt)) {
        double a = ld_f(y, dt, at), b = ld_f(u, dt, j);
        double r = red == KK_RED_ADD   ? a + b
                   : red == KK_RED_MUL ? a * b
                   : red == KK_RED_MAX ? (a >= b || a != a ? a : b)
                                       : (a <= b || a != a ? a : b);
        st_f(y, dt, at, r);
    } else {
        int64_t a = ld_i(y, dt, at), b = ld_i(u, dt, j);
        int64_t r = red == KK_RED_ADD   ? (int64_t)((uint64_t)a + (uint64_t)b)
                    : red == KK_RED_MUL ? (int64_t)((uint64_t)a * (uint64_t)b)
                    : red == KK_RED_MAX ? (int_order(dt, a) > int_order(dt, b) ? a : b)
                                        : (int_order(dt, a) < int_order(dt, b) ? a : b);
        st_i(y, dt, at, r);
    }
}

void kk_scatter_elements(void *y, const void *x, const void *idx, int64_t idx64, const void *u,
                         int64_t dt, int64_t esz, int64_t rank, const int64_t *idims,
                         const int64_t *xstrides, int64_t axis, int64_t dim, int64_t nidx,
                         int64_t xbytes, int64_t red, int32_t *err, int64_t begin, int64_t end)
{
    if (begin > 0 || begin >= end) return;
    if (y != x && xbytes > 0) memmove(y, x, (size_t)xbytes);
    for (int64_t j = 0; j < nidx; j++) {
        int64_t at = element_target(idx, idx64, rank, idims, xstrides, axis, dim, j);
        if (at < 0) {
            *err = KK_ERR_INDEX;
            return;
        }
        reduce_into(y, at, u, j, dt, esz, red);
    }
}

/* ---- ScatterND ---- */

void kk_scatter_nd(void *y, const void *x, const void *idx, int64_t idx64, const void *u,
                   int64_t dt, int64_t esz, int64_t m, const int64_t *xdims,
                   const int64_t *xstrides, int64_t slice, int64_t ntuples, int64_t xbytes,
                   int64_t red, int32_t *err, int64_t begin, int64_t end)
{
    if (begin > 0 || begin >= end) return;
    if (y != x && xbytes > 0) memmove(y, x, (size_t)xbytes);
    for (int64_t t = 0; t < ntuples; t++) {
        int64_t off = 0;
        for (int64_t d = 0; d < m; d++) {
            int64_t v = ld_index(idx, idx64, t * m + d);
            if (v < -xdims[d] || v >= xdims[d]) {
                *err = KK_ERR_INDEX;
                return;
            }
            off += (v < 0 ? v + xdims[d] : v) * xstrides[d];
        }
        for (int64_t e = 0; e < slice; e++) reduce_into(y, off + e, u, t * slice + e, dt, esz, red);
    }
}

/* ---- OneHot ---- */

void kk_onehot(void *y, const void *idx, int64_t idt, const void *values, int64_t esz,
               int64_t depth, int64_t inner, int64_t total, int64_t begin, int64_t end)
{
    if (end > total) end = total;
    for (int64_t w = begin; w < end; w++) {
        int64_t in = w % inner, c = (w / inner) % depth, o = w / (inner * depth);
        int64_t k = ld_i(idx, idt, o * inner + in);
        if (k < 0) k += depth;
        copy_elem(y, w, values, k == c ? 1 : 0, esz);
    }
}

/* ---- GridSample ---- */

enum { GS_LINEAR, GS_NEAREST, GS_CUBIC };
enum { GS_ZEROS, GS_BORDER, GS_REFLECTION };

/* x mirrored into [lo, hi], as gs_reflect of ir/ops/index.c. */
AI double gs_reflect(double x, double lo, double hi)
{
    double rng = hi - lo;
    if (!(rng > 0)) return lo;
    if (x < lo) {
        double dx = lo - x, n = __builtin_floor(dx / rng), r = dx - n * rng;
        return n - 2 * __builtin_floor(n / 2) == 0 ? lo + r : hi - r;
    }
    if (x > hi) {
        double dx = x - hi, n = __builtin_floor(dx / rng), r = dx - n * rng;
        return n - 2 * __builtin_floor(n / 2) == 0 ? hi - r : lo + r;
    }
    return x;
}

/* The taps of one spatial dim (idx -1: reads 0), as gs_taps of
 * ir/ops/index.c; returns the tap count. */
AI int gs_taps(double g, int64_t len, int64_t mode, int64_t pad, int64_t align, int64_t *idx,
               double *w)
{
    double x = align ? (g + 1) / 2 * (double)(len - 1) : ((g + 1) * (double)len - 1) / 2;
    double lo = align ? 0 : -0.5, hi = align ? (double)(len - 1) : (double)len - 0.5;
    int n = mode == GS_NEAREST ? 1 : mode == GS_LINEAR ? 2 : 4;
    if (mode == GS_NEAREST) x = __builtin_nearbyint(x);
    if (x != x) x = pad == GS_ZEROS ? -10 : 0;
    if (x < lo || x > hi) {
        if (pad == GS_BORDER) x = x < 0 ? 0 : x > (double)(len - 1) ? (double)(len - 1) : x;
        else if (pad == GS_REFLECTION) x = x - x != 0 ? lo : gs_reflect(x, lo, hi);
        else if (x < -4 || x > (double)len + 4) {
            for (int t = 0; t < n; t++) idx[t] = -1, w[t] = 0;
            return n;
        }
    }
    double f = __builtin_floor(x), t = x - f;
    int64_t i0 = (int64_t)f;
    if (mode == GS_NEAREST) {
        i0 = (int64_t)x;
        w[0] = 1;
    } else if (mode == GS_LINEAR) {
        w[0] = 1 - t;
        w[1] = t;
    } else {
        const double a = -0.75;
        double t1 = t + 1, t2 = 1 - t, t3 = 2 - t;
        w[0] = ((a * t1 - 5 * a) * t1 + 8 * a) * t1 - 4 * a;
        w[1] = ((a + 2) * t - (a + 3)) * t * t + 1;
        w[2] = ((a + 2) * t2 - (a + 3)) * t2 * t2 + 1;
        w[3] = ((a * t3 - 5 * a) * t3 + 8 * a) * t3 - 4 * a;
        i0 -= 1;
    }
    for (int s = 0; s < n; s++) {
        int64_t i = i0 + s;
        if (i < 0 || i >= len) {
            if (pad == GS_ZEROS) i = -1;
            else if (pad == GS_BORDER) i = i < 0 ? 0 : len - 1;
            else {
                i = (int64_t)gs_reflect((double)i, lo, hi);
                i = i < 0 ? 0 : i >= len ? len - 1 : i;
            }
        }
        idx[s] = i;
    }
    return n;
}

void kk_grid_sample(void *y, const void *x, int64_t xdt, const void *grid, int64_t gdt,
                    int64_t k, const int64_t *sdims, int64_t chans, int64_t points,
                    int64_t batch, int64_t mode, int64_t pad, int64_t align, int64_t begin,
                    int64_t end)
{
    int64_t st[KK_INDEX_MAX_DIMS], idx[KK_INDEX_MAX_DIMS][4], vol = 1;
    double w[KK_INDEX_MAX_DIMS][4];
    int nt[KK_INDEX_MAX_DIMS];
    if (k < 1 || k > KK_INDEX_MAX_DIMS) return;
    for (int64_t d = k - 1; d >= 0; d--) {
        st[d] = vol;
        vol *= sdims[d];
    }
    if (end > batch * points) end = batch * points;
    for (int64_t wi = begin; wi < end; wi++) {
        int64_t n = wi / points, p = wi % points;
        for (int64_t j = 0; j < k; j++) {
            int64_t d = k - 1 - j;
            nt[d] = gs_taps(ld_f(grid, gdt, wi * k + j), sdims[d], mode, pad, align, idx[d], w[d]);
        }
        for (int64_t c = 0; c < chans; c++) {
            int64_t xbase = (n * chans + c) * vol;
            int sel[KK_INDEX_MAX_DIMS] = {0};
            double sum = 0;
            for (;;) {
                double wt = 1;
                int64_t off = 0;
                int inside = 1;
                for (int64_t d = 0; d < k; d++) {
                    wt *= w[d][sel[d]];
                    if (idx[d][sel[d]] < 0) inside = 0;
                    off += idx[d][sel[d]] * st[d];
                }
                if (inside) sum += wt * ld_f(x, xdt, xbase + off);
                int64_t d = k - 1;
                while (d >= 0 && ++sel[d] == nt[d]) sel[d--] = 0;
                if (d < 0) break;
            }
            st_f(y, xdt, (n * chans + c) * points + p, sum);
        }
    }
}
