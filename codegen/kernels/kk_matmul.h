/* kk_matmul.h -- the matrix-product kernel (kk_matmul.c). */
#ifndef KK_MATMUL_H
#define KK_MATMUL_H

#include <stdint.h>

/* Y[b] = alpha * op(A) x op(B) + beta * C for the work items [begin, end)
 * of (output batch, block of 32 rows). op(A)[i,k] = a[i*a_rs + k*a_cs],
 * op(B)[k,j] = b[k*b_rs + j*b_cs], C[i,j] = c[i*c_rs + j*c_cs] (c may be
 * NULL); batch element strides per output batch dim (0 where broadcast).
 * When epi is not NULL it is called on each finished run of the output,
 * epi(epi_ctx, first element, element count), to apply a fused epilogue. */
void kk_matmul(int32_t dtype, const void *a, const void *b, void *y, const void *c, int64_t m,
               int64_t n, int64_t k, int64_t a_rs, int64_t a_cs, int64_t b_rs, int64_t b_cs,
               int64_t batch_rank, const int64_t *batch_dims, const int64_t *a_bs, const int64_t *b_bs,
               const int64_t *c_bs, int64_t c_rs, int64_t c_cs, double alpha, double beta,
               void (*epi)(void *ctx, int64_t offset, int64_t count), void *epi_ctx,
               int64_t begin, int64_t end);

#endif
