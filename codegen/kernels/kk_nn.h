/* kk_nn.h -- the neural-network kernels of the kernel library (lowered by
 * codegen/lower_nn.c): Softmax/LogSoftmax, BatchNormalization (inference),
 * LayerNormalization, one function per float dtype (suffix f32, f64, f16,
 * bf16), and RandomUniform/RandomNormal (one function each, the dtype a
 * constant argument). Tensors are contiguous; each kernel takes [begin,
 * end) of its work items last, and is only called with a non-empty range
 * of real items (the lowering skips empty outputs).
 *
 * Precision: f16/bf16 load to float; f32, f16 and bf16 compute softmax in
 * float (exp by a vectorizable polynomial within 2 ulp of expf) with double
 * sums, normalizations in double; f64 all in double with libm's exp.
 * Stores from double round once (through a float rounded to odd), as the
 * reference's ir_store_f64 does. */
#ifndef KK_NN_H
#define KK_NN_H

#include <stdint.h>

/* The most contiguous columns one softmax work item handles at once when
 * the softmax axis is not the innermost dim. */
#define KK_NN_TILE 256
/* The most dims of a normalized LayerNormalization block after coalescing. */
#define KK_NN_MAX_DIMS 8

/* Softmax (log_form 0) or LogSoftmax (1) of x viewed as [outer, n, inner]
 * along n (n >= 1). inner == 1: work item w is row w (contiguous); else
 * work item w is the tile w % ntiles (tile columns) of outer index
 * w / ntiles. A row holding a NaN, or +inf, or only -inf, gives NaNs, as
 * in the reference.
 *
 * BatchNormalization of x viewed as [N, channels, inner] with per-channel
 * scale, bias, mean and var (x's dtype): work item p is plane p of N *
 * channels; y = (x - mean) * scale / sqrt(var + eps) + bias.
 *
 * LayerNormalization of x viewed as [outer, n] (work item r is row r):
 * the normalized block is n = prod(dims[0..nd)) elements, and scale (and
 * bias unless NULL) are read at offsets given by sstr / bstr over dims
 * (broadcast dims have stride 0; dims[nd - 1] is the innermost). */
#define KK_NN_DECL(SFX)                                                                           \
    void kk_softmax_##SFX(const void *x, void *y, int64_t log_form, int64_t n, int64_t inner,     \
                          int64_t tile, int64_t ntiles, int64_t begin, int64_t end);              \
    void kk_batchnorm_##SFX(const void *x, const void *scale, const void *bias, const void *mean, \
                            const void *var, void *y, double eps, int64_t channels,               \
                            int64_t inner, int64_t begin, int64_t end);                           \
    void kk_layernorm_##SFX(const void *x, const void *scale, const void *bias, void *y,          \
                            double eps, int64_t n, int64_t nd, const int64_t *dims,               \
                            const int64_t *sstr, const int64_t *bstr, int64_t begin, int64_t end);

KK_NN_DECL(f32)
KK_NN_DECL(f64)
KK_NN_DECL(f16)
KK_NN_DECL(bf16)

/* The counter-based generator of ir/ops/random.c: uniform in [0, 1) with 53
 * random bits, a pure function of (seed, counter, i). */
double kk_random_u01(uint64_t seed, uint64_t counter, uint64_t i);

/* RandomUniform into y (dtype a KK_* float code): element i = lo + (hi - lo)
 * * u(i), rounded to the dtype and kept inside [lo, hi) as the reference
 * does. Work item i is element i. */
void kk_random_uniform(void *y, int64_t dtype, double lo, double hi, int64_t seed,
                       int64_t counter, int64_t begin, int64_t end);
/* RandomNormal into y (size elements): Box-Muller on uniforms 2p and 2p+1
 * gives elements 2p and 2p+1. Work item p is the pair p. */
void kk_random_normal(void *y, int64_t dtype, double mean, double scale, int64_t seed,
                      int64_t counter, int64_t size, int64_t begin, int64_t end);

#endif
