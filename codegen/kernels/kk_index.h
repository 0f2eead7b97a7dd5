/* kk_index.h -- the index kernels of the kernel library (lowered by
 * codegen/lower_index.c): TopK, CumSum/CumProd, GatherElements,
 * ScatterElements, ScatterND, OneHot and GridSample. `dt` is a kiln dtype code (KK_*),
 * `esz` an element size in bytes; shapes and strides are in elements.
 * Floats are combined in double and stored rounding once, integers in
 * int64 wrapping, as the reference kernels of ir/ops/index.c do. Index
 * tensors are i32 (idx64 0) or i64 (idx64 1); an index outside its dim
 * stores KK_ERR_INDEX in *err and stops. Each takes [begin, end) of its work
 * items last and clamps end to the real item count. */
#ifndef KK_INDEX_H
#define KK_INDEX_H

#include <stdint.h>

/* The most dims of an index kernel's shapes. */
#define KK_INDEX_MAX_DIMS 8

/* TopK of x viewed as [outer, n, inner] along n: work items are the
 * lines = outer * inner; line w writes k values to y and their indices to
 * yi (both viewed as [outer, k, inner]), best first, ties by lower index,
 * NaN largest. */
void kk_topk(void *y, int64_t *yi, const void *x, int64_t dt, int64_t n, int64_t k, int64_t inner,
             int64_t largest, int64_t lines, int64_t begin, int64_t end);

/* Running sum (prod 0) or product (prod 1) of x viewed as [outer, n, inner]
 * along n; work items are the lines = outer * inner. */
void kk_cum(void *y, const void *x, int64_t dt, int64_t n, int64_t inner, int64_t prod,
            int64_t exclusive, int64_t reverse, int64_t lines, int64_t begin, int64_t end);

/* GatherElements: y (idx's shape idims) = x at idx's coordinates with
 * coordinate `axis` replaced by the index (x strides xstrides, dim `dim`
 * along axis). Work items are the nidx index elements. */
void kk_gather_elements(void *y, const void *x, const void *idx, int64_t idx64, int64_t esz,
                        int64_t rank, const int64_t *idims, const int64_t *xstrides, int64_t axis,
                        int64_t dim, int64_t nidx, int32_t *err, int64_t begin, int64_t end);

/* Reductions of the scatter kernels. */
enum { KK_RED_NONE = 0, KK_RED_ADD, KK_RED_MUL, KK_RED_MAX, KK_RED_MIN };

/* ScatterElements: y = x (xbytes bytes), then for each index element in
 * order the update at the same position is stored (or combined) at its
 * target as kk_gather_elements addresses it. One work item. */
void kk_scatter_elements(void *y, const void *x, const void *idx, int64_t idx64, const void *u,
                         int64_t dt, int64_t esz, int64_t rank, const int64_t *idims,
                         const int64_t *xstrides, int64_t axis, int64_t dim, int64_t nidx,
                         int64_t xbytes, int64_t red, int32_t *err, int64_t begin, int64_t end);

/* ScatterND: y = x (xbytes bytes), then for each of the ntuples index
 * tuples of m indices (into dims xdims with strides xstrides) the slice of
 * `slice` update elements is stored (or combined) there. One work item. */
void kk_scatter_nd(void *y, const void *x, const void *idx, int64_t idx64, const void *u,
                   int64_t dt, int64_t esz, int64_t m, const int64_t *xdims,
                   const int64_t *xstrides, int64_t slice, int64_t ntuples, int64_t xbytes,
                   int64_t red, int32_t *err, int64_t begin, int64_t end);

/* OneHot: y viewed as [outer, depth, inner] from indices (dtype idt,
 * viewed as [outer, inner]) and the two values [off, on] of esz bytes.
 * Work items are the total = outer * depth * inner output elements. */
void kk_onehot(void *y, const void *idx, int64_t idt, const void *values, int64_t esz,
               int64_t depth, int64_t inner, int64_t total, int64_t begin, int64_t end);

/* GridSample (ir/ops/index.c): y [batch, chans, points] from x (dtype xdt,
 * [batch, chans, sdims[0..k)]) sampled at grid (dtype gdt,
 * [batch, points, k], coordinates last dim first). mode: 0 linear,
 * 1 nearest, 2 cubic; pad: 0 zeros, 1 border, 2 reflection. Work items are
 * the batch * points output points (each writes all channels). */
void kk_grid_sample(void *y, const void *x, int64_t xdt, const void *grid, int64_t gdt,
                    int64_t k, const int64_t *sdims, int64_t chans, int64_t points,
                    int64_t batch, int64_t mode, int64_t pad, int64_t align, int64_t begin,
                    int64_t end);

#endif
