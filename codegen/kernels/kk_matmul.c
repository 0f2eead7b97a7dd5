/* kk_matmul.c -- matrix products for MatMul and Gemm.
 *
 *   Y[b] = alpha * op(A[b]) x op(B[b]) + beta * C (broadcast)
 *
 * Operands are read through (row, column) strides, so transposes and
 * broadcast batches cost nothing. The work items are (batch, block of
 * KK_MB rows); the kernel runs items [begin, end).
 *
 * f32 and f64 use a register-blocked kernel: for each KK_NR-wide panel of
 * columns and each KK_KC-deep slice of K, the panel of B is packed
 * contiguously on the stack, then KK_MR x KK_NR blocks of Y accumulate in
 * registers (the innermost loop runs over the panel's columns and
 * vectorizes). Other dtypes (f16, bf16 through f32, and the integers in
 * int64) take a plain triple loop. */
#include <stdint.h>
#include <string.h>

#include "kk.h"
#include "kk_matmul.h"

#define KK_MB 32 /* rows per work item */
#define KK_MR 6
#define KK_NR 32
#define KK_KC 256

typedef struct {
    int64_t m, n, k;
    int64_t a_rs, a_cs, b_rs, b_cs; /* element strides of op(A) and op(B) */
    int64_t nbatch, batch_rank;
    const int64_t *batch_dims;          /* output batch dims */
    const int64_t *a_bs, *b_bs, *c_bs;  /* per batch dim: element strides (0: broadcast) */
    int64_t c_rs, c_cs;                 /* C's strides over (row, column); 0 for broadcast */
    double alpha, beta;
} kk_mm;

static void batch_offsets(const kk_mm *p, int64_t b, int64_t *oa, int64_t *ob, int64_t *oc)
{
    *oa = *ob = *oc = 0;
    for (int64_t d = p->batch_rank - 1; d >= 0; d--) {
        int64_t i = b % p->batch_dims[d];
        b /= p->batch_dims[d];
        *oa += i * p->a_bs[d];
        *ob += i * p->b_bs[d];
        if (p->c_bs) *oc += i * p->c_bs[d];
    }
}

#define GEMM_BLOCKED(NAME, T)                                                                     \
    static void NAME(const kk_mm *p, const T *a, const T *b, T *y, const T *c, int64_t r0,        \
                     int64_t r1)                                                                  \
    {                                                                                             \
        T bp[KK_KC][KK_NR];                                                                       \
        for (int64_t j0 = 0; j0 < p->n; j0 += KK_NR) {                                            \
            int64_t nr = p->n - j0 < KK_NR ? p->n - j0 : KK_NR;                                   \
            for (int64_t k0 = 0; k0 < p->k; k0 += KK_KC) {                                        \
                int64_t kc = p->k - k0 < KK_KC ? p->k - k0 : KK_KC;                               \
                for (int64_t kk = 0; kk < kc; kk++) {                                             \
                    const T *src = b + (k0 + kk) * p->b_rs + j0 * p->b_cs;                        \
                    for (int64_t j = 0; j < KK_NR; j++) bp[kk][j] = j < nr ? src[j * p->b_cs] : 0; \
                }                                                                                 \
                for (int64_t i0 = r0; i0 < r1; i0 += KK_MR) {                                     \
                    int64_t mr = r1 - i0 < KK_MR ? r1 - i0 : KK_MR;                               \
                    T acc[KK_MR][KK_NR];                                                          \
                    memset(acc, 0, sizeof acc);                                                   \
                    for (int64_t kk = 0; kk < kc; kk++) {                                         \
                        for (int64_t i = 0; i < KK_MR; i++) {                                     \
                            T av = i < mr ? a[(i0 + i) * p->a_rs + (k0 + kk) * p->a_cs] : 0;      \
                            for (int64_t j = 0; j < KK_NR; j++) acc[i][j] += av * bp[kk][j];      \
                        }                                                                         \
                    }                                                                             \
                    for (int64_t i = 0; i < mr; i++) {                                            \
                        T *row = y + (i0 + i) * p->n + j0;                                        \
                        if (k0 == 0)                                                              \
                            for (int64_t j = 0; j < nr; j++) row[j] = acc[i][j];                  \
                        else                                                                      \
                            for (int64_t j = 0; j < nr; j++) row[j] += acc[i][j];                 \
                    }                                                                             \
                }                                                                                 \
            }                                                                                     \
        }                                                                                         \
        if (p->k == 0)                                                                            \
            for (int64_t i = r0; i < r1; i++)                                                     \
                for (int64_t j = 0; j < p->n; j++) y[i * p->n + j] = 0;                           \
        if (p->alpha != 1.0 || c)                                                                 \
            for (int64_t i = r0; i < r1; i++)                                                     \
                for (int64_t j = 0; j < p->n; j++) {                                              \
                    T v = (T)p->alpha * y[i * p->n + j];                                          \
                    if (c) v += (T)p->beta * c[i * p->c_rs + j * p->c_cs];                        \
                    y[i * p->n + j] = v;                                                          \
                }                                                                                 \
    }

GEMM_BLOCKED(gemm_f32, float)
GEMM_BLOCKED(gemm_f64, double)

/* ---- other dtypes ---- */

static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, u;
    float f;
    if (exp == 0x1f) {
        u = sign | 0x7f800000u | (man << 13);
    } else if (exp == 0) {
        f = (float)man * 0x1p-24f;
        return sign ? -f : f;
    } else {
        u = sign | ((exp + 112) << 23) | (man << 13);
    }
    memcpy(&f, &u, 4);
    return f;
}

static uint16_t float_to_half(float f)
{
    _Float16 h = (_Float16)f;
    uint16_t u;
    memcpy(&u, &h, 2);
    return u;
}

static float bf16_to_float(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint16_t float_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

static double load(int32_t dt, const void *p, int64_t i)
{
    switch (dt) {
    case KK_F16: return half_to_float(((const uint16_t *)p)[i]);
    case KK_BF16: return bf16_to_float(((const uint16_t *)p)[i]);
    case KK_I32: return ((const int32_t *)p)[i];
    default: return (double)((const int64_t *)p)[i];
    }
}

static void gemm_slow(int32_t dt, const kk_mm *p, const void *a, const void *b, void *y,
                      const void *c, int64_t r0, int64_t r1)
{
    bool ints = dt == KK_I32 || dt == KK_I64;
    for (int64_t i = r0; i < r1; i++)
        for (int64_t j = 0; j < p->n; j++) {
            int64_t ci = c ? i * p->c_rs + j * p->c_cs : 0;
            if (ints) {
                uint64_t acc = 0;
                for (int64_t k = 0; k < p->k; k++)
                    acc += (uint64_t)(int64_t)load(dt, a, i * p->a_rs + k * p->a_cs) *
                           (uint64_t)(int64_t)load(dt, b, k * p->b_rs + j * p->b_cs);
                int64_t v = (int64_t)acc;
                if (p->alpha != 1.0) v = (int64_t)(p->alpha * (double)v);
                if (c) v += (int64_t)(p->beta * load(dt, c, ci));
                if (dt == KK_I32) ((int32_t *)y)[i * p->n + j] = (int32_t)(uint32_t)(uint64_t)v;
                else ((int64_t *)y)[i * p->n + j] = v;
            } else {
                float acc = 0;
                for (int64_t k = 0; k < p->k; k++)
                    acc += (float)load(dt, a, i * p->a_rs + k * p->a_cs) * (float)load(dt, b, k * p->b_rs + j * p->b_cs);
                float v = (float)p->alpha * acc;
                if (c) v += (float)p->beta * (float)load(dt, c, ci);
                uint16_t bits = dt == KK_F16 ? float_to_half(v) : float_to_bf16(v);
                ((uint16_t *)y)[i * p->n + j] = bits;
            }
        }
}

void kk_matmul(int32_t dtype, const void *a, const void *b, void *y, const void *c, int64_t m,
               int64_t n, int64_t k, int64_t a_rs, int64_t a_cs, int64_t b_rs, int64_t b_cs,
               int64_t batch_rank, const int64_t *batch_dims, const int64_t *a_bs, const int64_t *b_bs,
               const int64_t *c_bs, int64_t c_rs, int64_t c_cs, double alpha, double beta,
               void (*epi)(void *ctx, int64_t offset, int64_t count), void *epi_ctx,
               int64_t begin, int64_t end)
{
    kk_mm p = {m, n, k, a_rs, a_cs, b_rs, b_cs, 0, batch_rank, batch_dims, a_bs, b_bs, c_bs, c_rs, c_cs, alpha, beta};
    int64_t blocks = (m + KK_MB - 1) / KK_MB;
    if (blocks == 0) return;
    size_t esz = dtype == KK_F64 || dtype == KK_I64 ? 8 : dtype == KK_F32 || dtype == KK_I32 ? 4 : 2;
    for (int64_t w = begin; w < end; w++) {
        int64_t bi = w / blocks, r0 = (w % blocks) * KK_MB, r1 = r0 + KK_MB < m ? r0 + KK_MB : m;
        int64_t oa, ob, oc;
        batch_offsets(&p, bi, &oa, &ob, &oc);
        const char *ab = (const char *)a + (size_t)oa * esz, *bb = (const char *)b + (size_t)ob * esz;
        char *yb = (char *)y + (size_t)(bi * m * n) * esz;
        const char *cb = c ? (const char *)c + (size_t)oc * esz : 0;
        if (dtype == KK_F32) gemm_f32(&p, (const float *)ab, (const float *)bb, (float *)yb, (const float *)cb, r0, r1);
        else if (dtype == KK_F64) gemm_f64(&p, (const double *)ab, (const double *)bb, (double *)yb, (const double *)cb, r0, r1);
        else gemm_slow(dtype, &p, ab, bb, yb, cb, r0, r1);
        if (epi) epi(epi_ctx, (bi * m + r0) * n, (r1 - r0) * n);
    }
}
