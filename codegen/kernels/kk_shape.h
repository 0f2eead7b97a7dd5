/* kk_shape.h -- the data-movement kernels of the kernel library (lowered
 * by codegen/lower_shape.c). They copy elements of esz bytes (1, 2, 4 or 8)
 * whatever the dtype; shapes and strides are in elements unless a name says
 * bytes. Each takes [begin, end) of its work items last, and clamps end to
 * the real item count (the runtime calls a kernel of 0 items with [0, 1)). */
#ifndef KK_SHAPE_H
#define KK_SHAPE_H

#include <stdint.h>

/* The maximum rank of a strided copy (Tile views rank-8 tensors as 16 dims). */
#define KK_SHAPE_MAX_DIMS 16

/* dst (contiguous, shape dims[0..rank-1]) = src[base + sum idx[d] * strides[d]].
 * Work items are rows of dims[rank-1] elements: rows = prod(dims[0..rank-2]),
 * or 0 for an empty output. */
void kk_copy_strided(void *dst, const void *src, int64_t esz, int64_t rank, const int64_t *dims,
                     const int64_t *strides, int64_t base, int64_t rows, int64_t begin,
                     int64_t end);

/* Concat / Split in bytes: an output row of `row` bytes (one index of the
 * dims before the axis) is the pieces' rows of chunk[i] bytes one after the
 * other. Work items are blocks of `blk` bytes of rows: outer * nblk items. */
void kk_concat(void *dst, void *const *srcs, const int64_t *chunk, int64_t n, int64_t row,
               int64_t blk, int64_t nblk, int64_t outer, int64_t begin, int64_t end);
void kk_split(const void *src, void *const *dsts, const int64_t *chunk, int64_t n, int64_t row,
              int64_t blk, int64_t nblk, int64_t outer, int64_t begin, int64_t end);

/* Gather along an axis: x viewed as [outer, dim, inner_bytes], indices
 * (i32 when idx64 is 0, else i64) of nidx elements. Work items are the
 * outer * nidx copies of inner_bytes; an index outside [-dim, dim) stores
 * KK_ERR_INDEX in *err and stops the chunk. With nothing to copy (outer or
 * inner_bytes 0) item 0 still checks every index. */
void kk_gather(void *dst, const void *src, const void *idx, int64_t idx64, int64_t outer,
               int64_t dim, int64_t nidx, int64_t inner_bytes, int32_t *err, int64_t begin,
               int64_t end);

/* Pad: y (shape ydims) from x (shape xdims, strides xstrides) with pb[d]
 * leading pads per dim (negative: cropped); mode 0 constant (the value's
 * bytes in the low esz bytes of fill), 1 reflect, 2 edge. Work items are the
 * rows (rows = prod(ydims[0..rank-2]), 0 for an empty output). */
enum { KK_PAD_CONSTANT = 0, KK_PAD_REFLECT = 1, KK_PAD_EDGE = 2 };
void kk_pad(void *dst, const void *src, int64_t esz, int64_t rank, const int64_t *ydims,
            const int64_t *xdims, const int64_t *xstrides, const int64_t *pb, int64_t mode,
            int64_t fill, int64_t rows, int64_t begin, int64_t end);

#endif
