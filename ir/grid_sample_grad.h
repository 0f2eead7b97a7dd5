/* grid_sample_grad.h -- the taps of GridSample along one spatial dim with
 * their derivatives, for the backward op GridSampleGrad. Header-only so
 * that the reference kernel (ir/ops/train.c) and the compiled one
 * (codegen/kernels/kk_train.c) share it and give the same bits. It follows
 * the forward op's tap rules (ir/ops/index.c): modes linear (0), nearest
 * (1), cubic (2, a = -0.75); padding zeros (0), border (1), reflection
 * (2). */
#ifndef KILN_GRID_SAMPLE_GRAD_H
#define KILN_GRID_SAMPLE_GRAD_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>

/* x mirrored into [lo, hi], and in *sign the derivative of the result with
 * respect to x (+1 or -1). */
static inline double gsg_reflect(double x, double lo, double hi, double *sign)
{
    double rng = hi - lo;
    *sign = 1;
    if (!(rng > 0)) {
        *sign = 0;
        return lo;
    }
    if (x < lo) {
        double dx = lo - x, n = floor(dx / rng), r = dx - n * rng;
        bool even = n - 2 * floor(n / 2) == 0;
        *sign = even ? -1 : 1;
        return even ? lo + r : hi - r;
    }
    if (x > hi) {
        double dx = x - hi, n = floor(dx / rng), r = dx - n * rng;
        bool even = n - 2 * floor(n / 2) == 0;
        *sign = even ? -1 : 1;
        return even ? hi - r : lo + r;
    }
    return x;
}

/* The taps of one spatial dim of size len for normalized coordinate g:
 * idx[t] (-1: reads 0), w[t] and dw[t] = d w[t] / d g. Returns the tap
 * count. The same indices and weights as the forward op. */
static inline int gsg_taps(double g, int64_t len, int mode, int pad, int align, int64_t *idx, double *w,
                           double *dw)
{
    double x = align ? (g + 1) / 2 * (double)(len - 1) : ((g + 1) * (double)len - 1) / 2;
    double dxdg = align ? (double)(len - 1) / 2 : (double)len / 2;
    double lo = align ? 0 : -0.5, hi = align ? (double)(len - 1) : (double)len - 0.5;
    int n = mode == 1 ? 1 : mode == 0 ? 2 : 4;
    if (mode == 1) {
        x = nearbyint(x);
        dxdg = 0;
    }
    if (x != x) {
        x = pad == 0 ? -10 : 0;
        dxdg = 0;
    }
    if (x < lo || x > hi) {
        if (pad == 1) {
            if (x < 0 || x > (double)(len - 1)) dxdg = 0;
            x = x < 0 ? 0 : x > (double)(len - 1) ? (double)(len - 1) : x;
        } else if (pad == 2) {
            double s = 0;
            if (isinf(x)) x = lo;
            else x = gsg_reflect(x, lo, hi, &s);
            dxdg *= s;
        } else if (x < -4 || x > (double)len + 4) {
            for (int t = 0; t < n; t++) idx[t] = -1, w[t] = 0, dw[t] = 0;
            return n;
        }
    }
    double f = floor(x), t = x - f;
    int64_t i0 = (int64_t)f;
    if (mode == 1) {
        i0 = (int64_t)x;
        w[0] = 1;
        dw[0] = 0;
    } else if (mode == 0) {
        w[0] = 1 - t;
        w[1] = t;
        dw[0] = -dxdg;
        dw[1] = dxdg;
    } else {
        const double a = -0.75;
        double t1 = t + 1, t2 = 1 - t, t3 = 2 - t;
        w[0] = ((a * t1 - 5 * a) * t1 + 8 * a) * t1 - 4 * a;
        w[1] = ((a + 2) * t - (a + 3)) * t * t + 1;
        w[2] = ((a + 2) * t2 - (a + 3)) * t2 * t2 + 1;
        w[3] = ((a * t3 - 5 * a) * t3 + 8 * a) * t3 - 4 * a;
        dw[0] = ((3 * a * t1 - 10 * a) * t1 + 8 * a) * dxdg;
        dw[1] = (3 * (a + 2) * t - 2 * (a + 3)) * t * dxdg;
        dw[2] = -(3 * (a + 2) * t2 - 2 * (a + 3)) * t2 * dxdg;
        dw[3] = -((3 * a * t3 - 10 * a) * t3 + 8 * a) * dxdg;
        i0 -= 1;
    }
    for (int s = 0; s < n; s++) {
        int64_t i = i0 + s;
        if (i < 0 || i >= len) {
            if (pad == 0) i = -1;
            else if (pad == 1) i = i < 0 ? 0 : len - 1;
            else {
                double unused;
                i = (int64_t)gsg_reflect((double)i, lo, hi, &unused);
                i = i < 0 ? 0 : i >= len ? len - 1 : i;
            }
        }
        idx[s] = i;
    }
    return n;
}

#endif
