/* kk_conv.h -- the convolution and pooling kernels of the kernel library
 * (kk_conv.c), and the layout of the geometry array that generated code
 * passes them. codegen/lower_conv.c includes this header too, so the
 * lowering and the kernels agree on the array layout, the tile sizes and
 * the work items. */
#ifndef KK_CONV_H
#define KK_CONV_H

#include <stdint.h>

#include "kk.h"

/* Output pixels per tile (one vector of accumulators per output channel). */
#define KK_CONV_TW 8
/* Output channels per Conv2D work item. */
#define KK_CONV_MB 8
/* Output pixels per work item of the 1x1 (GEMM) Conv2D. */
#define KK_CONV_PIX 128

/* The geometry array: const int64_t geom[KKG_COUNT], a constant global of
 * the generated module. For Conv2D C and M are the input and output
 * channels, G the groups; for ConvTranspose2D the same (M = the output's
 * channels); for the pools M = C and G = 1, KH/KW the window and FLAG
 * count_include_pad. Pads are top, left, bottom, right. */
enum {
    KKG_DT, KKG_N, KKG_C, KKG_H, KKG_W, KKG_M, KKG_KH, KKG_KW, KKG_OH, KKG_OW, KKG_G,
    KKG_SH, KKG_SW, KKG_DH, KKG_DW, KKG_PT, KKG_PL, KKG_PB, KKG_PR, KKG_BIAS, KKG_FLAG,
    KKG_COUNT
};

/* Conv2D, general. Work items: N * G * ceil(Mg / KK_CONV_MB) * OH, each one
 * output row of KK_CONV_MB (or fewer) output channels of one group. b may
 * be NULL when geom[KKG_BIAS] is 0. */
void kk_conv2d(const void *x, const void *w, const void *b, void *y, const int64_t *geom,
               int64_t begin, int64_t end);
/* Conv2D with a 1x1 kernel, stride 1 and no pads: a GEMM per group over
 * the flattened H*W pixels. Work items: N * G * ceil(Mg / KK_CONV_MB) *
 * ceil(H*W / KK_CONV_PIX). */
void kk_conv2d_1x1(const void *x, const void *w, const void *b, void *y, const int64_t *geom,
                   int64_t begin, int64_t end);
/* ConvTranspose2D (weights C x M/G x KH x KW). Work items: N * M * OH. */
void kk_conv_transpose2d(const void *x, const void *w, const void *b, void *y,
                         const int64_t *geom, int64_t begin, int64_t end);
/* MaxPool2D / AveragePool2D. Work items: N * C * OH output rows. */
void kk_max_pool2d(const void *x, void *y, const int64_t *geom, int64_t begin, int64_t end);
void kk_avg_pool2d(const void *x, void *y, const int64_t *geom, int64_t begin, int64_t end);
/* GlobalAveragePool: the mean of each of the planes (plane elements each).
 * Work items: the planes. */
void kk_global_avg_pool(const void *x, void *y, int64_t dtype, int64_t plane, int64_t begin,
                        int64_t end);

/* kk_conv2d and kk_conv2d_1x1 with a fused epilogue: after each work item,
 * epi(ctx, first element, count) is called on every contiguous run of the
 * output the item wrote (one output row, or one pixel chunk, per channel). */
void kk_conv2d_epi(const void *x, const void *w, const void *b, void *y, const int64_t *geom,
                   void (*epi)(void *ctx, int64_t offset, int64_t count), void *ctx,
                   int64_t begin, int64_t end);
void kk_conv2d_1x1_epi(const void *x, const void *w, const void *b, void *y, const int64_t *geom,
                       void (*epi)(void *ctx, int64_t offset, int64_t count), void *ctx,
                       int64_t begin, int64_t end);

#endif
