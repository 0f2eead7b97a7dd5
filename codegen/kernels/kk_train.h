/* kk_train.h -- the kernels of the backward ops of ir/ops/train.c
 * (kk_train.c), and the layout of the geometry array generated code passes
 * them. codegen/lower_train.c includes this header too, so the lowering and
 * the kernels agree on the layout and the work items. */
#ifndef KK_TRAIN_H
#define KK_TRAIN_H

#include <stdint.h>

#include "kk.h"

/* The geometry array: const int64_t geom[KTG_COUNT]. N, C, H, W: the
 * forward input x; M, OH, OW: the channels and size of dy; KH, KW: the
 * kernel or window; G: groups; pads top, left, bottom, right; FLAG:
 * count_include_pad (AveragePool2DGrad). */
enum {
    KTG_DT, KTG_N, KTG_C, KTG_H, KTG_W, KTG_M, KTG_KH, KTG_KW, KTG_OH, KTG_OW, KTG_G,
    KTG_SH, KTG_SW, KTG_DH, KTG_DW, KTG_PT, KTG_PL, KTG_PB, KTG_PR, KTG_FLAG,
    KTG_COUNT
};

/* Conv2DFilterGrad: dw[M, C/G, KH, KW]. Work items: M * (C/G), each the
 * KH * KW weights of one (output channel, input channel) pair. */
void kk_conv2d_filter_grad(const void *x, const void *dy, void *dw, const int64_t *geom,
                           int64_t begin, int64_t end);
/* MaxPool2DGrad / AveragePool2DGrad: dx of x's shape. Work items: the
 * N * C planes (each zeroed, then accumulated). */
void kk_max_pool2d_grad(const void *x, const void *dy, void *dx, const int64_t *geom,
                        int64_t begin, int64_t end);
void kk_avg_pool2d_grad(const void *dy, void *dx, const int64_t *geom, int64_t begin,
                        int64_t end);
/* MaxPool2DSelect: y[N, C, OH, OW] = v at the first maximum of x in each
 * window. Work items: the N * C planes. */
void kk_max_pool2d_select(const void *x, const void *v, void *y, const int64_t *geom,
                          int64_t begin, int64_t end);
/* GatherGrad: dx[outer, dim, inner] = 0, then dy[outer, nidx, inner]
 * added at the indices. Work items: outer. An index outside [-dim, dim)
 * stores KK_ERR_INDEX in *err. */
void kk_gather_grad(const void *dy, const void *idx, int64_t idx64, void *dx, int64_t dtype,
                    int64_t outer, int64_t dim, int64_t nidx, int64_t inner, int32_t *err,
                    int64_t begin, int64_t end);
/* CumProdGrad: dx of x's shape [outer, n, inner] for the CumProd along the
 * middle axis (see ir/ops/train.c for the recurrences). Work items: the
 * outer * inner lines. */
void kk_cumprod_grad(const void *x, const void *dy, void *dx, int64_t dtype, int64_t n, int64_t inner,
                     int64_t exclusive, int64_t reverse, int64_t begin, int64_t end);
/* GridSampleGrad: dx [batch, chans, sdims...] and dgrid [batch, points, k]
 * for GridSample's output gradient dy [batch, chans, points]; mode, pad,
 * align as ir/grid_sample_grad.h codes them. Work items: the batch entries
 * (each zeroes and fills its own part of dx and dgrid). At most 8 spatial
 * dims. */
void kk_grid_sample_grad(const void *x, const void *grid, int64_t gdt, const void *dy, void *dx, void *dgrid,
                         int64_t dt, int64_t k, const int64_t *sdims, int64_t chans, int64_t points, int64_t mode,
                         int64_t pad, int64_t align, int64_t begin, int64_t end);

#endif
