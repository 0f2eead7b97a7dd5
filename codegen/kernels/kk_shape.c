/* kk_shape.c -- data-movement kernels: strided copies (Transpose, Slice,
 * Expand, Tile), Concat, Split, Gather and Pad. Elements are moved as
 * unsigned integers of their size, so any dtype is a plain load and store;
 * generated code passes the sizes, shapes and strides as constants, and
 * after inlining the inner loops are counted loops with constant strides
 * (a stride of 1 becomes a memcpy, 0 a fill). */
#include <stdint.h>
#include <string.h>

#include "kk.h"
#include "kk_shape.h"

/* Element types that may alias the float data they copy. */
typedef uint8_t __attribute__((may_alias)) u8a;
typedef uint16_t __attribute__((may_alias)) u16a;
typedef uint32_t __attribute__((may_alias)) u32a;
typedef uint64_t __attribute__((may_alias)) u64a;

#define KK_INLINE static inline __attribute__((always_inline))

/* The side of the square tiles of a transposing copy, in elements. */
#define KK_TILE 32

#define COPY_ROW(T)                                     \
    do {                                                \
        T *restrict dd = (T *)d;                        \
        const T *restrict ss = (const T *)s;            \
        for (int64_t j = 0; j < n; j++) dd[j] = ss[j * st]; \
    } while (0)

/* d[j] = s[j * st] for j < n (elements of esz bytes). */
KK_INLINE void copy_row(unsigned char *restrict d, const unsigned char *restrict s, int64_t n,
                        int64_t st, int64_t esz)
{
    switch (esz) {
    case 1: COPY_ROW(u8a); return;
    case 2: COPY_ROW(u16a); return;
    case 4: COPY_ROW(u32a); return;
    case 8: COPY_ROW(u64a); return;
    default:
        for (int64_t j = 0; j < n; j++) memcpy(d + j * esz, s + j * st * esz, (size_t)esz);
        return;
    }
}

/* d[j] = s[i] for one element. */
KK_INLINE void copy_elem(unsigned char *d, int64_t j, const unsigned char *s, int64_t i, int64_t esz)
{
    switch (esz) {
    case 1: ((u8a *)d)[j] = ((const u8a *)s)[i]; return;
    case 2: ((u16a *)d)[j] = ((const u16a *)s)[i]; return;
    case 4: ((u32a *)d)[j] = ((const u32a *)s)[i]; return;
    case 8: ((u64a *)d)[j] = ((const u64a *)s)[i]; return;
    default: memcpy(d + j * esz, s + i * esz, (size_t)esz); return;
    }
}

#define FILL_ROW(T)                                               \
    do {                                                          \
        T *dd = (T *)d;                                           \
        for (int64_t j = from; j < to; j++) dd[j] = (T)(uint64_t)fill; \
    } while (0)

/* d[from..to) = the value in fill's low esz bytes (little-endian). */
KK_INLINE void fill_row(unsigned char *d, int64_t from, int64_t to, int64_t fill, int64_t esz)
{
    switch (esz) {
    case 1: FILL_ROW(u8a); return;
    case 2: FILL_ROW(u16a); return;
    case 4: FILL_ROW(u32a); return;
    case 8: FILL_ROW(u64a); return;
    default:
        for (int64_t j = from; j < to; j++) memcpy(d + j * esz, &fill, (size_t)esz);
        return;
    }
}

void kk_copy_strided(void *dst, const void *src, int64_t esz, int64_t rank, const int64_t *dims,
                     const int64_t *strides, int64_t base, int64_t rows, int64_t begin,
                     int64_t end)
{
    if (end > rows) end = rows;
    if (begin >= end || rank < 1 || rank > KK_SHAPE_MAX_DIMS) return;
    int64_t n0 = dims[rank - 1], s0 = strides[rank - 1];
    int64_t n1 = rank >= 2 ? dims[rank - 2] : 1, s1 = rank >= 2 ? strides[rank - 2] : 0;
    /* The row index splits into idx[0..rank-3] (outer, offset off) and i1. */
    int64_t idx[KK_SHAPE_MAX_DIMS], off = base, r = begin, i1 = r % n1;
    r /= n1;
    for (int64_t k = rank - 3; k >= 0; k--) {
        idx[k] = r % dims[k];
        r /= dims[k];
        off += idx[k] * strides[k];
    }
    unsigned char *d = (unsigned char *)dst + begin * n0 * esz;
    const unsigned char *s = (const unsigned char *)src;
    for (int64_t row = begin; row < end;) {
        int64_t cnt = n1 - i1 < end - row ? n1 - i1 : end - row;
        if (s1 == 1 && s0 != 0 && s0 != 1 && n0 >= 2 * KK_TILE) {
            /* A transpose of the last two dims: tiles, so that the lines of
             * the input a tile reads stay in cache while it is written. */
            for (int64_t ib = 0; ib < cnt; ib += KK_TILE) {
                int64_t ie = ib + KK_TILE < cnt ? ib + KK_TILE : cnt;
                for (int64_t jb = 0; jb < n0; jb += KK_TILE) {
                    int64_t nj = jb + KK_TILE < n0 ? KK_TILE : n0 - jb;
                    for (int64_t i = ib; i < ie; i++)
                        copy_row(d + (i * n0 + jb) * esz, s + (off + i1 + i + jb * s0) * esz, nj, s0, esz);
                }
            }
        } else {
            for (int64_t i = 0; i < cnt; i++)
                copy_row(d + i * n0 * esz, s + (off + (i1 + i) * s1) * esz, n0, s0, esz);
        }
        d += cnt * n0 * esz;
        row += cnt;
        i1 = 0;
        for (int64_t k = rank - 3; k >= 0; k--) {
            off += strides[k];
            if (++idx[k] < dims[k]) break;
            off -= idx[k] * strides[k];
            idx[k] = 0;
        }
    }
}

/* Walks the pieces of one block [lo, hi) of row o: calls the copy for the
 * intersection of each piece's bytes with the block. */
#define FOR_PIECES(COPY)                                                          \
    do {                                                                          \
        if (end > outer * nblk) end = outer * nblk;                               \
        for (int64_t w = begin; w < end; w++) {                                   \
            int64_t o = w / nblk, lo = (w % nblk) * blk;                          \
            int64_t hi = lo + blk < row ? lo + blk : row, at = 0;                 \
            for (int64_t i = 0; i < n && at < hi; i++) {                          \
                int64_t a = at > lo ? at : lo, b = at + chunk[i] < hi ? at + chunk[i] : hi; \
                if (a < b) COPY;                                                  \
                at += chunk[i];                                                   \
            }                                                                     \
        }                                                                         \
    } while (0)

void kk_concat(void *dst, void *const *srcs, const int64_t *chunk, int64_t n, int64_t row,
               int64_t blk, int64_t nblk, int64_t outer, int64_t begin, int64_t end)
{
    FOR_PIECES(memcpy((unsigned char *)dst + o * row + a,
                      (const unsigned char *)srcs[i] + o * chunk[i] + (a - at), (size_t)(b - a)));
}

void kk_split(const void *src, void *const *dsts, const int64_t *chunk, int64_t n, int64_t row,
              int64_t blk, int64_t nblk, int64_t outer, int64_t begin, int64_t end)
{
    FOR_PIECES(memcpy((unsigned char *)dsts[i] + o * chunk[i] + (a - at),
                      (const unsigned char *)src + o * row + a, (size_t)(b - a)));
}

KK_INLINE int64_t load_index(const void *idx, int64_t idx64, int64_t j)
{
    return idx64 ? ((const int64_t *)idx)[j] : (int64_t)((const int32_t *)idx)[j];
}

void kk_gather(void *dst, const void *src, const void *idx, int64_t idx64, int64_t outer,
               int64_t dim, int64_t nidx, int64_t inner_bytes, int32_t *err, int64_t begin,
               int64_t end)
{
    if (outer == 0 || inner_bytes == 0) {
        /* Nothing to copy, but a bad index is still an error. */
        for (int64_t j = 0; begin == 0 && j < nidx; j++) {
            int64_t v = load_index(idx, idx64, j);
            if (v < -dim || v >= dim) {
                *err = KK_ERR_INDEX;
                return;
            }
        }
        return;
    }
    if (end > outer * nidx) end = outer * nidx;
    if (begin >= end) return;
    int64_t o = begin / nidx, j = begin % nidx;
    unsigned char *d = (unsigned char *)dst + begin * inner_bytes;
    const unsigned char *s = (const unsigned char *)src + o * dim * inner_bytes;
    for (int64_t w = begin; w < end; w++) {
        int64_t v = load_index(idx, idx64, j);
        if (v < -dim || v >= dim) {
            *err = KK_ERR_INDEX;
            return;
        }
        if (v < 0) v += dim;
        memcpy(d, s + v * inner_bytes, (size_t)inner_bytes);
        d += inner_bytes;
        if (++j == nidx) {
            j = 0;
            s += dim * inner_bytes;
        }
    }
}

/* Where output coordinate i of a dim reads the input (pads p before, the
 * input's size n): the coordinate itself inside, else by the mode; -1 for a
 * constant pad. */
KK_INLINE int64_t pad_source(int64_t i, int64_t p, int64_t n, int64_t mode)
{
    int64_t c = i - p;
    if (c >= 0 && c < n) return c;
    if (mode == KK_PAD_CONSTANT) return -1;
    if (mode == KK_PAD_EDGE) return c < 0 ? 0 : n - 1;
    return c < 0 ? -c : 2 * (n - 1) - c;
}

/* One output row of n elements from an input row s of xn elements, p pads
 * before: the pads on each side, and between them one contiguous copy. */
KK_INLINE void pad_row(unsigned char *d, const unsigned char *s, int64_t n, int64_t xn, int64_t p,
                       int64_t mode, int64_t fill, int64_t esz)
{
    int64_t j0 = p < 0 ? 0 : p > n ? n : p;
    int64_t j1 = p + xn < j0 ? j0 : p + xn > n ? n : p + xn;
    if (mode == KK_PAD_CONSTANT) {
        fill_row(d, 0, j0, fill, esz);
        fill_row(d, j1, n, fill, esz);
    } else {
        for (int64_t j = 0; j < j0; j++) copy_elem(d, j, s, pad_source(j, p, xn, mode), esz);
        for (int64_t j = j1; j < n; j++) copy_elem(d, j, s, pad_source(j, p, xn, mode), esz);
    }
    if (j1 > j0) memcpy(d + j0 * esz, s + (j0 - p) * esz, (size_t)((j1 - j0) * esz));
}

void kk_pad(void *dst, const void *src, int64_t esz, int64_t rank, const int64_t *ydims,
            const int64_t *xdims, const int64_t *xstrides, const int64_t *pb, int64_t mode,
            int64_t fill, int64_t rows, int64_t begin, int64_t end)
{
    if (end > rows) end = rows;
    if (begin >= end || rank < 1 || rank > KK_SHAPE_MAX_DIMS) return;
    int64_t n = ydims[rank - 1];
    int64_t idx[KK_SHAPE_MAX_DIMS], r = begin;
    for (int64_t k = rank - 2; k >= 0; k--) {
        idx[k] = r % ydims[k];
        r /= ydims[k];
    }
    unsigned char *d = (unsigned char *)dst + begin * n * esz;
    for (int64_t row = begin; row < end; row++, d += n * esz) {
        int64_t off = 0;
        int inside = 1;
        for (int64_t k = 0; k < rank - 1 && inside; k++) {
            int64_t c = pad_source(idx[k], pb[k], xdims[k], mode);
            if (c < 0) inside = 0;
            off += c * xstrides[k];
        }
        if (inside)
            pad_row(d, (const unsigned char *)src + off * esz, n, xdims[rank - 1], pb[rank - 1],
                    mode, fill, esz);
        else
            fill_row(d, 0, n, fill, esz);
        for (int64_t k = rank - 2; k >= 0; k--) {
            if (++idx[k] < ydims[k]) break;
            idx[k] = 0;
        }
    }
}
