/* kk_reduce.h -- the reduction kernels of the kernel library (lowered by
 * codegen/lower_reduce.c): ReduceSum/Mean/Max/Min/Prod and ArgMax/ArgMin,
 * one function per dtype (suffix f32, f64, f16, bf16, i8, u8, i16, u16, i32,
 * u32, i64, u64).
 * Shapes are in elements of a contiguous input. Each takes [begin, end) of
 * its work items last and clamps end to the real item count (the runtime
 * calls a kernel of 0 items with [0, 1)).
 *
 * Accumulation: float sums, means and products in double (f16/bf16/f32
 * loaded to float, then widened), 16 lanes wide, so a long f32 sum stays
 * as accurate as the reference's sequential double sum; float max/min in
 * the compute type (exact); integer sums and products wrap in the dtype's
 * width (the reference wraps in int64 and truncates: the same bits). */
#ifndef KK_REDUCE_H
#define KK_REDUCE_H

#include <stdint.h>

enum { KK_RED_SUM = 0, KK_RED_MEAN = 1, KK_RED_MAX = 2, KK_RED_MIN = 3, KK_RED_PROD = 4 };

/* The most dims of each kind after coalescing (kept and reduced alternate). */
#define KK_RED_MAX_DIMS 8
/* The most contiguous output elements one work item accumulates at once. */
#define KK_RED_TILE 256

/* The input, coalesced, is an odometer of kept dims (keep_dims/strides, nkeep
 * of them) and reduced dims (red_dims/strides, nred, npos positions in all);
 * count is the number of reduced elements per output (for the mean).
 *
 * row_mode 1: the innermost dim is reduced and contiguous, of len elements,
 *   and not part of red_*. Work item w is output element w; the kept dims
 *   enumerate all output elements.
 * row_mode 0: the innermost dim is kept, of len contiguous elements, and not
 *   part of keep_*. Work item w is tile w % ntiles (tile elements) of output
 *   row w / ntiles; the kept dims enumerate the rows.
 *
 * nwork is the real number of work items. */
#define KK_REDUCE_DECL(SFX)                                                                       \
    void kk_reduce_##SFX(const void *x, void *y, int64_t op, int64_t row_mode, int64_t nkeep,     \
                         const int64_t *keep_dims, const int64_t *keep_strides, int64_t nred,     \
                         const int64_t *red_dims, const int64_t *red_strides, int64_t npos,       \
                         int64_t len, int64_t tile, int64_t ntiles, int64_t count, int64_t nwork, \
                         int64_t begin, int64_t end);

/* ArgMax (is_max 1) / ArgMin of x viewed as [outer, len, inner] along len
 * (len >= 1) into y (i64, [outer, inner]); ties go to the first index, or
 * the last with `last`; NaN counts as the extreme (the first NaN wins, the
 * last with `last`). inner == 1: work item w is output w (a contiguous
 * row); else work item w is tile w % ntiles of row w / ntiles. */
#define KK_ARG_DECL(SFX)                                                                        \
    void kk_arg_##SFX(const void *x, int64_t *y, int64_t is_max, int64_t last, int64_t outer,   \
                      int64_t len, int64_t inner, int64_t tile, int64_t ntiles, int64_t begin,  \
                      int64_t end);

/* A fused elementwise prologue: writes elements [off, off + n) (n <=
 * KK_RED_TILE) of the reduction's input, as a contiguous tensor of the
 * input's shape and dtype, to dst. The kk_reduce_pro_* kernels take it and
 * its argument block in place of x and read every input run through it. */
typedef void (*kk_pro_fn)(void *args, int64_t off, int64_t n, void *dst);

#define KK_REDUCE_PRO_DECL(SFX)                                                                   \
    void kk_reduce_pro_##SFX(kk_pro_fn pro, void *pro_args, void *y, int64_t op,                 \
                             int64_t row_mode, int64_t nkeep, const int64_t *keep_dims,          \
                             const int64_t *keep_strides, int64_t nred, const int64_t *red_dims, \
                             const int64_t *red_strides, int64_t npos, int64_t len, int64_t tile, \
                             int64_t ntiles, int64_t count, int64_t nwork, int64_t begin,        \
                             int64_t end);

#define KK_REDUCE_ALL(M) \
    M(f32) M(f64) M(f16) M(bf16) M(i8) M(u8) M(i16) M(u16) M(i32) M(u32) M(i64) M(u64)

KK_REDUCE_ALL(KK_REDUCE_DECL)
KK_REDUCE_ALL(KK_REDUCE_PRO_DECL)
KK_REDUCE_ALL(KK_ARG_DECL)

#endif
