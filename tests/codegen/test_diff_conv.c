/* test_diff_conv.c -- Conv2D, ConvTranspose2D, MaxPool2D, AveragePool2D and
 * GlobalAveragePool compiled by the CPU backend against the reference
 * kernels, over every float dtype and a spread of geometries: strides 1, 2
 * and 3, asymmetric pads, dilations, groups (1, 2, depthwise, depthwise
 * with a channel multiplier), with and without bias, 1x1 kernels (the GEMM
 * path and the general one), odd spatial sizes that defeat the tile width,
 * channel counts that leave remainder blocks, symbolic and zero batches,
 * ceil_mode and count_include_pad both ways, max-pool dilation, windows
 * with no tap inside the input, NaN and infinities. The compiled code
 * accumulates f32, f16 and bf16 in float, the reference in double. */
#include "common/testutil.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static const kiln_dtype FLOATS[] = {KILN_F32, KILN_F64, KILN_F16, KILN_BF16};

static double tol_for(kiln_dtype dt)
{
    switch (dt) {
    case KILN_F64: return 1e-12;
    case KILN_F32: return 2e-5;
    case KILN_F16: return 3e-3;
    default: return 2e-2;
    }
}

static uint64_t seed = 7;

/* Cases are diffed in batches: one graph per dtype holding up to
 * BATCH_OUTS independent ops (each on its own placeholders), compiled once,
 * so the test spends its time on the cases and not on per-module overhead.
 * A failure names the output: the index of the case within its batch (set
 * BATCH_OUTS to 1 to see the failing case alone). */
#define BATCH_OUTS 12

typedef struct {
    kiln_graph *g;
    kiln_dtype dt;
    int nouts, nfeeds;
    kiln_value outs[BATCH_OUTS], phs[3 * BATCH_OUTS];
    kiln_tensor *feeds[3 * BATCH_OUTS];
} batch;

static void batch_begin(batch *b, kiln_dtype dt)
{
    memset(b, 0, sizeof *b);
    b->g = kiln_graph_new();
    b->dt = dt;
}

/* Diffs what the batch holds and frees it. */
static void batch_end(batch *b)
{
    double tol = tol_for(b->dt);
    if (b->nouts) tu_diff(b->g, b->nouts, b->outs, b->nfeeds, b->phs, b->feeds, tol, tol);
    for (int i = 0; i < b->nfeeds; i++) kiln_tensor_free(b->feeds[i]);
    kiln_graph_free(b->g);
    memset(b, 0, sizeof *b);
}

/* A new placeholder of the batch's dtype (batch dim symbolic if asked) fed
 * with data, or with random values in [lo, hi) when data is NULL. */
static kiln_value batch_input(batch *b, int rank, const int64_t *dims, bool symbolic, double lo,
                              double hi, const double *data)
{
    char name[16];
    snprintf(name, sizeof name, "in%d", b->nfeeds);
    int64_t ph[4];
    memcpy(ph, dims, sizeof(int64_t) * (size_t)rank);
    if (symbolic) ph[0] = -1;
    b->phs[b->nfeeds] = kiln_placeholder(b->g, name, b->dt, rank, ph);
    b->feeds[b->nfeeds] = data ? tu_from_f64(b->dt, rank, dims, data)
                               : tu_random(b->dt, rank, dims, lo, hi, seed++);
    return b->phs[b->nfeeds++];
}

/* Adds op(ins) as an output; a full batch is diffed and started afresh. */
static void batch_output(batch *b, const char *op, const kiln_value *ins, int n,
                         const kiln_attrs *a)
{
    kiln_value y = kiln_op(b->g, op, ins, n, a);
    if (kiln_graph_error(b->g)) fail_msg("%s: %s", op, kiln_graph_error(b->g));
    b->outs[b->nouts++] = y;
    if (b->nouts == BATCH_OUTS) {
        kiln_dtype dt = b->dt;
        batch_end(b);
        batch_begin(b, dt);
    }
}

/* ---- convolutions ---- */

typedef struct {
    int64_t N, C, H, W, M, KH, KW;
    int64_t strides[2], pads[4], dilations[2], group;
    bool bias;
    int64_t outpad[2]; /* ConvTranspose2D only */
} conv_case;

/* Adds op(x, w[, b]) for case cs to the batch; symbolic leaves the input's
 * batch dim unknown. */
static void add_conv(batch *bt, const char *op, const conv_case *cs, bool symbolic)
{
    bool transpose = strcmp(op, "ConvTranspose2D") == 0;
    int64_t xd[4] = {cs->N, cs->C, cs->H, cs->W};
    int64_t wd[4] = {cs->M, cs->C / cs->group, cs->KH, cs->KW};
    if (transpose) {
        wd[0] = cs->C;
        wd[1] = cs->M / cs->group;
    }
    int64_t bd[1] = {cs->M};
    kiln_value in[3];
    in[0] = batch_input(bt, 4, xd, symbolic, -1, 1, NULL);
    in[1] = batch_input(bt, 4, wd, false, -1, 1, NULL);
    if (cs->bias) in[2] = batch_input(bt, 1, bd, false, -1, 1, NULL);
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_ints(a, "strides", cs->strides, 2);
    kiln_attrs_ints(a, "pads", cs->pads, 4);
    kiln_attrs_ints(a, "dilations", cs->dilations, 2);
    kiln_attrs_int(a, "group", cs->group);
    if (transpose) kiln_attrs_ints(a, "output_padding", cs->outpad, 2);
    batch_output(bt, op, in, cs->bias ? 3 : 2, a);
    kiln_attrs_free(a);
}

/* Every case in every float dtype, the batch dim symbolic in a third. */
static void diff_conv_all(const char *op, const conv_case *cases, int ncases)
{
    for (int d = 0; d < 4; d++) {
        batch b;
        batch_begin(&b, FLOATS[d]);
        for (int i = 0; i < ncases; i++) add_conv(&b, op, &cases[i], (i + d) % 3 == 0);
        batch_end(&b);
    }
}

#define S(a, b) {a, b}
#define P(t, l, b, r) {t, l, b, r}

static const conv_case CONV_CASES[] = {
    /* N  C   H   W   M  KH KW strides   pads          dilations group bias */
    {1, 3, 7, 9, 8, 3, 3, S(1, 1), P(1, 1, 1, 1), S(1, 1), 1, true, S(0, 0)},
    {2, 4, 13, 13, 12, 3, 3, S(2, 2), P(0, 1, 2, 0), S(1, 1), 1, false, S(0, 0)},
    {1, 6, 13, 13, 14, 3, 3, S(3, 3), P(2, 1, 0, 3), S(2, 2), 2, true, S(0, 0)},
    {1, 4, 9, 11, 4, 3, 3, S(1, 1), P(0, 0, 0, 0), S(1, 1), 2, false, S(0, 0)},
    /* depthwise, and depthwise with a channel multiplier */
    {2, 8, 9, 7, 8, 3, 3, S(1, 1), P(1, 1, 1, 1), S(1, 1), 8, true, S(0, 0)},
    {1, 8, 13, 13, 16, 5, 5, S(2, 2), P(2, 2, 2, 2), S(1, 1), 8, false, S(0, 0)},
    {1, 5, 11, 20, 5, 3, 3, S(1, 2), P(1, 0, 1, 2), S(2, 1), 5, true, S(0, 0)},
    /* 1x1: the GEMM path (pixels not a multiple of the tile), then strided or padded */
    {2, 16, 7, 9, 24, 1, 1, S(1, 1), P(0, 0, 0, 0), S(1, 1), 1, true, S(0, 0)},
    {1, 6, 13, 13, 10, 1, 1, S(1, 1), P(0, 0, 0, 0), S(3, 3), 2, false, S(0, 0)},
    {1, 8, 13, 13, 8, 1, 1, S(2, 2), P(0, 0, 0, 0), S(1, 1), 1, true, S(0, 0)},
    {1, 4, 5, 5, 4, 1, 1, S(1, 1), P(1, 1, 1, 1), S(1, 1), 1, true, S(0, 0)},
    {1, 5, 1, 1, 9, 1, 1, S(1, 1), P(0, 0, 0, 0), S(1, 1), 1, true, S(0, 0)},
    /* a kernel larger than the input: every tile is a border tile */
    {1, 2, 3, 2, 3, 5, 5, S(1, 1), P(2, 2, 2, 2), S(1, 1), 1, true, S(0, 0)},
    /* wide rows: interior tiles with stride 1 and with strides 2, 3 */
    {1, 3, 10, 50, 5, 3, 4, S(2, 3), P(0, 0, 0, 0), S(1, 2), 1, false, S(0, 0)},
    {1, 3, 6, 45, 8, 2, 3, S(1, 2), P(1, 3, 0, 1), S(1, 1), 1, true, S(0, 0)},
    {1, 2, 5, 40, 3, 3, 7, S(1, 1), P(1, 3, 1, 3), S(1, 1), 1, false, S(0, 0)},
    /* a dilation too long for the segment buffer: per-lane gathers */
    {1, 2, 3, 700, 2, 1, 3, S(1, 1), P(0, 5, 0, 0), S(1, 300), 1, true, S(0, 0)},
    /* 1x1 spatial input with a 3x3 kernel in the pads */
    {1, 3, 1, 1, 4, 3, 3, S(1, 1), P(1, 1, 1, 1), S(1, 1), 1, true, S(0, 0)},
    /* zero batch; an empty input height inside the pads */
    {0, 3, 5, 5, 4, 3, 3, S(1, 1), P(1, 1, 1, 1), S(1, 1), 1, true, S(0, 0)},
    {1, 2, 0, 4, 3, 1, 1, S(1, 1), P(1, 0, 1, 0), S(1, 1), 1, true, S(0, 0)},
};

static void test_conv2d(void **state)
{
    (void)state;
    diff_conv_all("Conv2D", CONV_CASES, (int)(sizeof CONV_CASES / sizeof CONV_CASES[0]));
}

/* Large enough to be split over the session's thread pool, both paths. */
static void test_conv2d_parallel(void **state)
{
    (void)state;
    static const conv_case big[] = {
        {2, 32, 33, 40, 40, 3, 3, S(1, 1), P(1, 1, 1, 1), S(1, 1), 1, true, S(0, 0)},
        {1, 64, 28, 28, 72, 1, 1, S(1, 1), P(0, 0, 0, 0), S(1, 1), 1, false, S(0, 0)},
        {1, 32, 30, 30, 32, 3, 3, S(2, 2), P(1, 1, 1, 1), S(1, 1), 32, true, S(0, 0)},
    };
    static const kiln_dtype dts[2] = {KILN_F32, KILN_BF16};
    for (int d = 0; d < 2; d++) {
        batch b;
        batch_begin(&b, dts[d]);
        for (int i = 0; i < 3; i++) add_conv(&b, "Conv2D", &big[i], i == d);
        batch_end(&b);
    }
}

static const conv_case CONVT_CASES[] = {
    /* N  C   H   W   M  KH KW strides   pads          dilations group bias outpad */
    {1, 4, 5, 5, 6, 3, 3, S(2, 2), P(1, 1, 1, 1), S(1, 1), 1, true, S(1, 1)},
    {2, 6, 7, 9, 6, 3, 3, S(1, 1), P(0, 1, 2, 0), S(2, 2), 3, false, S(0, 0)},
    {1, 2, 4, 3, 3, 2, 4, S(3, 2), P(1, 0, 0, 2), S(1, 1), 1, true, S(2, 1)},
    {1, 3, 6, 6, 4, 1, 1, S(1, 1), P(0, 0, 0, 0), S(1, 1), 1, false, S(0, 0)},
    {1, 4, 5, 5, 4, 3, 3, S(2, 1), P(0, 2, 1, 0), S(1, 3), 4, true, S(0, 0)},
    /* output rows wider than the row accumulator */
    {1, 2, 3, 150, 2, 3, 3, S(2, 2), P(0, 0, 0, 0), S(1, 1), 1, true, S(0, 0)},
    {1, 3, 1, 1, 5, 3, 3, S(1, 1), P(0, 0, 0, 0), S(1, 1), 1, true, S(0, 0)},
    {0, 2, 3, 3, 2, 2, 2, S(2, 2), P(0, 0, 0, 0), S(1, 1), 1, true, S(0, 0)},
};

static void test_conv_transpose2d(void **state)
{
    (void)state;
    diff_conv_all("ConvTranspose2D", CONVT_CASES,
                  (int)(sizeof CONVT_CASES / sizeof CONVT_CASES[0]));
}

/* ---- pools ---- */

typedef struct {
    int64_t N, C, H, W, KH, KW;
    int64_t strides[2], pads[4], dilations[2];
    int ceil_mode;
} pool_case;

static void set_pool_attrs(kiln_attrs *a, const pool_case *pc, bool is_max, int cip)
{
    int64_t ks[2] = {pc->KH, pc->KW};
    kiln_attrs_ints(a, "kernel_shape", ks, 2);
    kiln_attrs_ints(a, "strides", pc->strides, 2);
    kiln_attrs_ints(a, "pads", pc->pads, 4);
    kiln_attrs_int(a, "ceil_mode", pc->ceil_mode);
    if (is_max) kiln_attrs_ints(a, "dilations", pc->dilations, 2);
    else kiln_attrs_int(a, "count_include_pad", cip);
}

/* Adds op(x) for case pc to the batch (x from data when not NULL). */
static void add_pool(batch *b, const char *op, const pool_case *pc, int cip, bool symbolic,
                     const double *data)
{
    bool is_max = strcmp(op, "MaxPool2D") == 0;
    int64_t xd[4] = {pc->N, pc->C, pc->H, pc->W};
    kiln_value x = batch_input(b, 4, xd, symbolic, -4, 4, data);
    kiln_attrs *a = kiln_attrs_new();
    set_pool_attrs(a, pc, is_max, cip);
    batch_output(b, op, &x, 1, a);
    kiln_attrs_free(a);
}

static const pool_case POOL_CASES[] = {
    /* N  C   H   W  KH KW strides   pads          dilations ceil */
    {2, 3, 13, 13, 3, 3, S(2, 2), P(1, 1, 1, 1), S(1, 1), 0},
    {1, 2, 7, 9, 2, 2, S(2, 2), P(0, 0, 0, 0), S(1, 1), 1},
    {1, 2, 7, 9, 2, 2, S(2, 2), P(0, 0, 0, 0), S(1, 1), 0},
    {1, 3, 11, 12, 3, 3, S(1, 1), P(0, 1, 2, 0), S(2, 2), 1},
    {1, 3, 11, 12, 3, 2, S(3, 3), P(2, 1, 0, 1), S(1, 2), 1},
    {1, 3, 20, 37, 3, 2, S(1, 1), P(1, 1, 1, 1), S(1, 1), 0},
    {1, 2, 9, 40, 2, 3, S(2, 2), P(1, 1, 0, 2), S(1, 1), 1},
    {1, 2, 6, 50, 3, 3, S(3, 3), P(0, 2, 1, 0), S(1, 1), 0},
    {1, 4, 1, 1, 1, 1, S(1, 1), P(0, 0, 0, 0), S(1, 1), 0},
    {1, 4, 1, 1, 2, 2, S(1, 1), P(1, 1, 0, 0), S(1, 1), 1},
    {0, 3, 5, 5, 3, 3, S(2, 2), P(1, 1, 1, 1), S(1, 1), 1},
    {3, 5, 33, 17, 5, 4, S(3, 2), P(2, 1, 2, 3), S(1, 1), 1},
    /* windows with no tap inside the input: H = 1, dilation 3, kernel 2,
     * pads (2, _, 1, _) put the taps at -2 and 1; with H = 0 every window
     * lies in the pads (-inf for max; 0 / 0 = NaN for a mean without
     * count_include_pad, 0 with it) */
    {1, 2, 1, 5, 2, 1, S(1, 1), P(2, 0, 1, 0), S(3, 1), 0},
    {1, 2, 0, 4, 2, 2, S(1, 1), P(1, 0, 1, 0), S(1, 1), 0},
};

static void test_pools(void **state)
{
    (void)state;
    int n = (int)(sizeof POOL_CASES / sizeof POOL_CASES[0]);
    for (int d = 0; d < 4; d++) {
        batch b;
        batch_begin(&b, FLOATS[d]);
        for (int i = 0; i < n; i++) {
            const pool_case *pc = &POOL_CASES[i];
            bool sym = (i + d) % 3 == 0;
            add_pool(&b, "MaxPool2D", pc, 0, sym, NULL);
            /* average pooling has no dilations */
            if (pc->dilations[0] != 1 || pc->dilations[1] != 1) continue;
            add_pool(&b, "AveragePool2D", pc, 0, sym, NULL);
            add_pool(&b, "AveragePool2D", pc, 1, !sym, NULL);
        }
        batch_end(&b);
    }
}

/* NaN propagates through a max (wherever it sits in the window), an
 * infinity is an ordinary value. */
static void test_pool_nan_inf(void **state)
{
    (void)state;
    double v[80];
    for (int i = 0; i < 80; i++) v[i] = (i * 37 % 19) - 9.0;
    v[3] = NAN;
    v[25] = INFINITY;
    v[47] = -INFINITY;
    v[70] = NAN;
    v[9] = NAN;
    const pool_case pcs[3] = {{1, 1, 4, 20, 2, 3, S(1, 1), P(0, 1, 1, 0), S(1, 1), 0},
                              {1, 1, 4, 20, 3, 3, S(2, 2), P(1, 1, 1, 1), S(1, 1), 1},
                              {1, 1, 4, 20, 2, 2, S(1, 3), P(0, 0, 0, 0), S(1, 2), 0}};
    for (int d = 0; d < 4; d++) {
        batch b;
        batch_begin(&b, FLOATS[d]);
        for (int p = 0; p < 3; p++) {
            add_pool(&b, "MaxPool2D", &pcs[p], 0, false, v);
            add_pool(&b, "AveragePool2D", &pcs[p], p % 2, false, v);
        }
        batch_end(&b);
    }
}

static void test_pools_parallel(void **state)
{
    (void)state;
    const pool_case big = {2, 16, 56, 56, 3, 3, S(2, 2), P(1, 1, 1, 1), S(1, 1), 0};
    batch b;
    batch_begin(&b, KILN_F32);
    add_pool(&b, "MaxPool2D", &big, 0, true, NULL);
    add_pool(&b, "AveragePool2D", &big, 1, false, NULL);
    batch_end(&b);
}

static void test_global_avg_pool(void **state)
{
    (void)state;
    static const int64_t shapes[][4] = {
        {2, 3, 7, 9}, {1, 5, 1, 1}, {1, 2, 33, 40}, {0, 3, 4, 4}, {1, 2, 0, 3}, {3, 64, 7, 7},
    };
    for (int d = 0; d < 4; d++) {
        batch b;
        batch_begin(&b, FLOATS[d]);
        for (int s = 0; s < 6; s++) {
            kiln_value x = batch_input(&b, 4, shapes[s], (s + d) % 2 == 0, -4, 4, NULL);
            batch_output(&b, "GlobalAveragePool", &x, 1, NULL);
        }
        batch_end(&b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_conv2d),
        TU_TEST(test_conv2d_parallel),
        TU_TEST(test_conv_transpose2d),
        TU_TEST(test_pools),
        TU_TEST(test_pool_nan_inf),
        TU_TEST(test_pools_parallel),
        TU_TEST(test_global_avg_pool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
