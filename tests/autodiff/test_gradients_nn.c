/* test_gradients_nn.c -- the gradient rules of ir/grad_nn.c and the
 * backward ops of ir/ops/train.c: every rule against central finite
 * differences in f64 (random inputs, several shapes and attribute
 * combinations) with the reference backend, second order through the
 * backward ops, hand-computed cases (ties, duplicate indices, zeros in a
 * product), errors, and compiled (JIT) vs reference runs of the backward
 * ops and of whole gradient graphs. */
#include "common/testutil.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "ir.h"

#define MAXIN 5

typedef kiln_value (*build_fn)(kiln_graph *g, const kiln_value *x, const void *arg);

typedef struct {
    int rank;
    int64_t dims[5];
    double lo, hi;
} spec;

#define S1(a, lo, hi) {1, {a}, lo, hi}
#define S2(a, b, lo, hi) {2, {a, b}, lo, hi}
#define S3(a, b, c, lo, hi) {3, {a, b, c}, lo, hi}
#define S4(a, b, c, d, lo, hi) {4, {a, b, c, d}, lo, hi}

static uint64_t seed_counter = 1;
static long fd_checked;

static double run_scalar(kiln_graph *g, kiln_value v, int n, const kiln_value *x, kiln_tensor *const *feeds)
{
    kiln_tensor *r = tu_run(g, v, n, x, feeds);
    double d = ir_load_f64(r->dtype, r->data, 0);
    kiln_tensor_free(r);
    return d;
}

/* L = ReduceSum(f(x) * w) with a fixed random w; compares dL/dx from
 * kiln_gradients with central differences of L (inputs with nograd set
 * are fed but not checked). */
static void gradcheck_eps(const char *what, build_fn f, const void *arg, int nin, const spec *sp,
                          double eps, double rtol, double atol)
{
    kiln_graph *g = kiln_graph_new();
    kiln_value x[MAXIN], dx[MAXIN];
    kiln_tensor *feed[MAXIN];
    uint64_t seed = seed_counter++ * 1000 + 7;
    for (int i = 0; i < nin; i++) {
        char name[16];
        snprintf(name, sizeof name, "x%d", i);
        x[i] = kiln_placeholder(g, name, KILN_F64, sp[i].rank, sp[i].dims);
        feed[i] = tu_random(KILN_F64, sp[i].rank, sp[i].dims, sp[i].lo, sp[i].hi, seed + (uint64_t)i);
    }
    kiln_value y = f(g, x, arg);
    if (!kiln_value_ok(y)) fail_msg("%s: building: %s", what, kiln_graph_error(g));
    int64_t ydims[KILN_MAX_RANK];
    int yr = kiln_value_rank(g, y);
    kiln_value_dims(g, y, ydims);
    kiln_tensor *w = tu_random(kiln_value_dtype(g, y), yr, ydims, -1, 1, seed + 99);
    kiln_value loss = kiln_reduce_sum(g, kiln_mul(g, y, kiln_constant(g, "w", w)), NULL, 0, 0);
    kiln_tensor_free(w);
    kiln_status *st = kiln_status_new();
    kiln_gradients(g, &loss, 1, x, nin, NULL, dx, st);
    if (kiln_status_code(st) != KILN_OK) fail_msg("%s: kiln_gradients: %s", what, kiln_status_message(st));
    kiln_status_free(st);
    assert_int_equal(kiln_graph_verify(g, NULL), KILN_OK);
    for (int i = 0; i < nin; i++) {
        kiln_tensor *an = tu_run(g, dx[i], nin, x, feed);
        tu_assert_shape(an, KILN_F64, sp[i].rank, sp[i].dims);
        double *xd = kiln_tensor_data(feed[i]);
        for (size_t j = 0; j < kiln_tensor_size(feed[i]); j++) {
            double orig = xd[j];
            xd[j] = orig + eps;
            double lp = run_scalar(g, loss, nin, x, feed);
            xd[j] = orig - eps;
            double lm = run_scalar(g, loss, nin, x, feed);
            xd[j] = orig;
            fd_checked++;
            double fd = (lp - lm) / (2 * eps), got = ((const double *)an->data)[j];
            if (!(fabs(got - fd) <= atol + rtol * fabs(fd)))
                fail_msg("%s: d/dx%d[%zu]: analytic %.10g, finite differences %.10g", what, i, j, got, fd);
        }
        kiln_tensor_free(an);
    }
    for (int i = 0; i < nin; i++) kiln_tensor_free(feed[i]);
    kiln_graph_free(g);
}

static void gradcheck(const char *what, build_fn f, const void *arg, int nin, const spec *sp)
{
    gradcheck_eps(what, f, arg, nin, sp, 1e-6, 1e-5, 1e-7);
}

/* The gradients of f's inputs as one value (their sums of squares added),
 * so that gradcheck on it checks second-order rules. */
typedef struct {
    build_fn f;
    const void *arg;
    int nin;
} second_arg;

static kiln_value build_grad_norm(kiln_graph *g, const kiln_value *x, const void *arg)
{
    const second_arg *s = arg;
    kiln_value y = s->f(g, x, s->arg), d[MAXIN];
    kiln_value l = kiln_reduce_sum(g, kiln_mul(g, y, kiln_tanh(g, y)), NULL, 0, 0);
    kiln_status *st = kiln_status_new();
    kiln_gradients(g, &l, 1, x, s->nin, NULL, d, st);
    bool ok = kiln_status_code(st) == KILN_OK;
    if (!ok) print_message("inner kiln_gradients: %s\n", kiln_status_message(st));
    kiln_status_free(st);
    if (!ok) return kiln_value_invalid();
    kiln_value sum = kiln_reduce_sum(g, kiln_mul(g, d[0], d[0]), NULL, 0, 0);
    for (int i = 1; i < s->nin; i++)
        sum = kiln_add(g, sum, kiln_reduce_sum(g, kiln_mul(g, d[i], d[i]), NULL, 0, 0));
    return sum;
}

/* ---- convolutions ---- */

typedef struct {
    int64_t strides[2], pads[4], dilations[2], group, outpad[2];
    bool bias;
} conv_arg;

static kiln_attrs *conv_attrs(const conv_arg *c, bool transpose)
{
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_ints(a, "strides", c->strides, 2);
    kiln_attrs_ints(a, "pads", c->pads, 4);
    kiln_attrs_ints(a, "dilations", c->dilations, 2);
    kiln_attrs_int(a, "group", c->group);
    if (transpose) kiln_attrs_ints(a, "output_padding", c->outpad, 2);
    return a;
}

static kiln_value build_conv(kiln_graph *g, const kiln_value *x, const void *arg)
{
    const conv_arg *c = arg;
    kiln_attrs *a = conv_attrs(c, false);
    kiln_value y = kiln_op(g, "Conv2D", x, c->bias ? 3 : 2, a);
    kiln_attrs_free(a);
    return y;
}

static kiln_value build_convt(kiln_graph *g, const kiln_value *x, const void *arg)
{
    const conv_arg *c = arg;
    kiln_attrs *a = conv_attrs(c, true);
    kiln_value y = kiln_op(g, "ConvTranspose2D", x, c->bias ? 3 : 2, a);
    kiln_attrs_free(a);
    return y;
}

static void test_conv2d(void **state)
{
    (void)state;
    static const struct {
        conv_arg c;
        int64_t n, ch, h, w, m, kh, kw;
    } cases[] = {
        {{{1, 1}, {1, 1, 1, 1}, {1, 1}, 1, {0, 0}, true}, 2, 2, 4, 4, 3, 3, 3},
        {{{2, 2}, {0, 1, 1, 0}, {1, 1}, 1, {0, 0}, true}, 1, 2, 6, 5, 2, 3, 2},  /* stride 2, asymmetric pads */
        {{{1, 2}, {0, 0, 0, 0}, {2, 2}, 1, {0, 0}, false}, 1, 1, 6, 7, 2, 2, 3}, /* dilation 2 */
        {{{2, 1}, {1, 0, 0, 1}, {1, 1}, 2, {0, 0}, true}, 2, 4, 5, 4, 2, 2, 2},  /* groups 2, stride 2 */
        {{{2, 2}, {1, 1, 1, 1}, {2, 1}, 2, {0, 0}, false}, 1, 2, 7, 6, 4, 2, 3}, /* all of it */
        {{{20, 1}, {10, 0, 0, 0}, {1, 1}, 1, {0, 0}, true}, 1, 1, 2, 3, 1, 1, 2}, /* rows read only pads */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const conv_arg *c = &cases[i].c;
        spec sp[3] = {S4(cases[i].n, cases[i].ch, cases[i].h, cases[i].w, -1, 1),
                      S4(cases[i].m, cases[i].ch / c->group, cases[i].kh, cases[i].kw, -1, 1),
                      S1(cases[i].m, -1, 1)};
        char what[32];
        snprintf(what, sizeof what, "Conv2D case %zu", i);
        gradcheck(what, build_conv, c, c->bias ? 3 : 2, sp);
    }
}

static void test_conv_transpose2d(void **state)
{
    (void)state;
    static const struct {
        conv_arg c;
        int64_t n, ch, h, w, mg, kh, kw;
    } cases[] = {
        {{{1, 1}, {0, 0, 0, 0}, {1, 1}, 1, {0, 0}, true}, 2, 2, 3, 3, 2, 2, 2},
        {{{2, 2}, {1, 0, 0, 1}, {1, 1}, 1, {1, 0}, true}, 1, 2, 3, 4, 2, 3, 3},  /* stride 2, output padding */
        {{{1, 1}, {1, 1, 0, 0}, {2, 2}, 1, {1, 1}, false}, 1, 1, 3, 3, 2, 2, 2}, /* output padding >= stride */
        {{{2, 1}, {0, 1, 1, 0}, {1, 2}, 2, {1, 0}, true}, 2, 4, 3, 3, 1, 2, 2},  /* groups 2 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const conv_arg *c = &cases[i].c;
        spec sp[3] = {S4(cases[i].n, cases[i].ch, cases[i].h, cases[i].w, -1, 1),
                      S4(cases[i].ch, cases[i].mg, cases[i].kh, cases[i].kw, -1, 1),
                      S1(cases[i].mg * c->group, -1, 1)};
        char what[40];
        snprintf(what, sizeof what, "ConvTranspose2D case %zu", i);
        gradcheck(what, build_convt, c, c->bias ? 3 : 2, sp);
    }
}

/* ---- pools ---- */

typedef struct {
    const char *op;
    int64_t kernel[2], strides[2], pads[4], dilations[2];
    int ceil_mode, count_include_pad;
} pool_arg;

static kiln_value build_pool(kiln_graph *g, const kiln_value *x, const void *arg)
{
    const pool_arg *p = arg;
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_ints(a, "kernel_shape", p->kernel, 2);
    kiln_attrs_ints(a, "strides", p->strides, 2);
    kiln_attrs_ints(a, "pads", p->pads, 4);
    kiln_attrs_int(a, "ceil_mode", p->ceil_mode);
    if (strcmp(p->op, "MaxPool2D") == 0) kiln_attrs_ints(a, "dilations", p->dilations, 2);
    else kiln_attrs_int(a, "count_include_pad", p->count_include_pad);
    kiln_value y = kiln_op(g, p->op, x, 1, a);
    kiln_attrs_free(a);
    return y;
}

static const pool_arg pool_cases[] = {
    {"MaxPool2D", {2, 2}, {2, 2}, {0, 0, 0, 0}, {1, 1}, 0, 0},
    {"MaxPool2D", {3, 3}, {1, 2}, {1, 1, 1, 1}, {1, 1}, 0, 0},
    {"MaxPool2D", {2, 2}, {1, 1}, {0, 1, 1, 0}, {2, 2}, 0, 0},
    {"MaxPool2D", {3, 2}, {2, 2}, {1, 0, 0, 1}, {1, 1}, 1, 0},
    {"AveragePool2D", {2, 2}, {2, 2}, {0, 0, 0, 0}, {1, 1}, 0, 0},
    {"AveragePool2D", {3, 3}, {2, 1}, {1, 1, 1, 1}, {1, 1}, 0, 0},
    {"AveragePool2D", {3, 3}, {2, 1}, {1, 1, 1, 1}, {1, 1}, 0, 1},
    {"AveragePool2D", {3, 2}, {2, 2}, {1, 0, 1, 1}, {1, 1}, 1, 0},
    {"AveragePool2D", {3, 2}, {2, 2}, {1, 0, 1, 1}, {1, 1}, 1, 1},
};

static void test_pools(void **state)
{
    (void)state;
    spec s = S4(2, 2, 5, 6, -2, 2);
    for (size_t i = 0; i < sizeof pool_cases / sizeof pool_cases[0]; i++) {
        char what[48];
        snprintf(what, sizeof what, "%s case %zu", pool_cases[i].op, i);
        gradcheck(what, build_pool, &pool_cases[i], 1, &s);
    }
}

static kiln_value build_gap(kiln_graph *g, const kiln_value *x, const void *arg)
{
    (void)arg;
    return kiln_op(g, "GlobalAveragePool", x, 1, NULL);
}

static void test_global_average_pool(void **state)
{
    (void)state;
    spec s[2] = {S4(2, 3, 4, 5, -2, 2), S4(1, 2, 1, 3, -2, 2)};
    for (int i = 0; i < 2; i++) gradcheck("GlobalAveragePool", build_gap, NULL, 1, &s[i]);
}

/* ---- normalizations ---- */

static kiln_value build_bn(kiln_graph *g, const kiln_value *x, const void *arg)
{
    (void)arg;
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_float(a, "epsilon", 1e-3);
    kiln_value y = kiln_op(g, "BatchNormalization", x, 5, a);
    kiln_attrs_free(a);
    return y;
}

static void test_batch_norm(void **state)
{
    (void)state;
    spec shapes[3][5] = {
        {S4(2, 3, 2, 2, -2, 2), S1(3, -1, 1), S1(3, -1, 1), S1(3, -1, 1), S1(3, 0.5, 2)},
        {S2(4, 3, -2, 2), S1(3, -1, 1), S1(3, -1, 1), S1(3, -1, 1), S1(3, 0.5, 2)},
        {S3(2, 2, 3, -2, 2), S1(2, -1, 1), S1(2, -1, 1), S1(2, -1, 1), S1(2, 0.5, 2)},
    };
    for (int i = 0; i < 3; i++) gradcheck("BatchNormalization", build_bn, NULL, 5, shapes[i]);
}

typedef struct {
    int axis, ninputs;
} ln_arg;

static kiln_value build_ln(kiln_graph *g, const kiln_value *x, const void *arg)
{
    const ln_arg *l = arg;
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_int(a, "axis", l->axis);
    kiln_attrs_float(a, "epsilon", 1e-3);
    kiln_value y = kiln_op(g, "LayerNormalization", x, l->ninputs, a);
    kiln_attrs_free(a);
    return y;
}

static void test_layer_norm(void **state)
{
    (void)state;
    ln_arg a1 = {-1, 3}, a2 = {1, 3}, a3 = {1, 2};
    spec s1[3] = {S3(2, 3, 4, -2, 2), S1(4, -1, 1), S1(4, -1, 1)};
    spec s2[3] = {S3(2, 3, 4, -2, 2), S2(3, 4, -1, 1), S2(1, 4, -1, 1)}; /* bias broadcast over dim 1 */
    spec s3[2] = {S3(2, 3, 2, -2, 2), S1(2, -1, 1)};
    gradcheck("LayerNormalization axis -1", build_ln, &a1, 3, s1);
    gradcheck("LayerNormalization axis 1", build_ln, &a2, 3, s2);
    gradcheck("LayerNormalization no bias", build_ln, &a3, 2, s3);
}

/* ---- Gather, Split, Pad, Tile ---- */

static kiln_value build_gather(kiln_graph *g, const kiln_value *x, const void *arg)
{
    int which = *(const int *)arg;
    kiln_tensor *idx = which == 0 ? tu_i64(1, (int64_t[]){6}, (int64_t[]){0, 2, 0, 4, -1, 2})
                                  : tu_i32(2, (int64_t[]){2, 2}, (int32_t[]){1, 1, 0, -3});
    kiln_value iv = kiln_constant(g, NULL, idx);
    kiln_tensor_free(idx);
    return kiln_gather(g, x[0], iv, which == 0 ? 0 : 1);
}

static void test_gather(void **state)
{
    (void)state;
    int w0 = 0, w1 = 1;
    spec s0 = S2(5, 3, -2, 2), s1 = S3(2, 3, 2, -2, 2);
    gradcheck("Gather axis 0 (duplicates)", build_gather, &w0, 1, &s0);
    gradcheck("Gather axis 1 (2-D indices)", build_gather, &w1, 1, &s1);
}

static kiln_value build_split(kiln_graph *g, const kiln_value *x, const void *arg)
{
    int which = *(const int *)arg;
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_int(a, "axis", 1);
    kiln_attrs_ints(a, "split", (int64_t[]){2, 1, 3}, 3);
    kiln_value s = kiln_op(g, "Split", x, 1, a);
    kiln_attrs_free(a);
    kiln_value o0 = s, o1 = {s.node, 1}, o2 = {s.node, 2};
    switch (which) {
    case 0: return kiln_concat(g, (kiln_value[]){kiln_exp(g, o2), o0}, 2, 1); /* output 1 unused */
    case 1: return kiln_tanh(g, o1);                                           /* only output 1 */
    default: return kiln_concat(g, (kiln_value[]){o2, kiln_mul(g, o1, o1), o0}, 3, 1);
    }
}

static void test_split(void **state)
{
    (void)state;
    spec s = S3(2, 6, 2, -2, 2);
    for (int w = 0; w < 3; w++) gradcheck("Split", build_split, &w, 1, &s);
}

typedef struct {
    const char *mode;
    int64_t pads[8]; /* 2 * rank of them */
} pad_arg;

static kiln_value build_pad(kiln_graph *g, const kiln_value *x, const void *arg)
{
    const pad_arg *p = arg;
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_ints(a, "pads", p->pads, 2 * kiln_value_rank(g, x[0]));
    kiln_attrs_string(a, "mode", p->mode);
    if (strcmp(p->mode, "constant") == 0) kiln_attrs_float(a, "value", 1.5);
    kiln_value y = kiln_op(g, "Pad", x, 1, a);
    kiln_attrs_free(a);
    return y;
}

static void test_pad(void **state)
{
    (void)state;
    static const pad_arg cases[] = {
        {"constant", {1, 0, 2, 0, 3, 1}},
        {"constant", {0, -1, 1, 2, 1, -2}},  /* crops */
        {"reflect", {1, 0, 2, 2, 3, 0}},
        {"reflect", {2, -1, 1, -1, 2, -2}},  /* pads and crops */
        {"reflect", {0, 3, 0, 0, -5, 0}},    /* only padding left of axis 1 */
        {"edge", {2, 0, 3, 1, 4, 0}},
        {"edge", {3, -2, 1, -1, 0, -3}},
        {"edge", {0, 3, 0, 0, -6, 0}},
        {"edge", {0, -5, 0, 0, 3, 0}},       /* only padding right of axis 1 */
    };
    spec s = S3(3, 4, 3, -2, 2);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char what[32];
        snprintf(what, sizeof what, "Pad %s case %zu", cases[i].mode, i);
        gradcheck(what, build_pad, &cases[i], 1, &s);
    }
    /* second order through reflect padding (its rule uses Slice with step
     * -1, whose rule is a GatherGrad) */
    second_arg a2 = {build_pad, &cases[3], 1};
    gradcheck_eps("Pad reflect second order", build_grad_norm, &a2, 1, &s, 1e-5, 1e-5, 1e-7);
}

static kiln_value build_tile(kiln_graph *g, const kiln_value *x, const void *arg)
{
    const int64_t *rep = arg;
    return kiln_tile(g, x[0], rep, kiln_value_rank(g, x[0]));
}

static void test_tile(void **state)
{
    (void)state;
    static const int64_t r1[3] = {2, 1, 3}, r2[1] = {3}, r3[3] = {1, 1, 1};
    spec s1 = S3(2, 3, 2, -2, 2), s2 = S1(4, -2, 2);
    gradcheck("Tile 2,1,3", build_tile, r1, 1, &s1);
    gradcheck("Tile 3", build_tile, r2, 1, &s2);
    gradcheck("Tile 1,1,1", build_tile, r3, 1, &s1);
}

/* ---- ReduceMax, ReduceMin, ReduceProd ---- */

typedef struct {
    const char *op;
    int naxes;
    int64_t axes[3];
    int keepdims;
} red_arg;

static kiln_value build_red(kiln_graph *g, const kiln_value *x, const void *arg)
{
    const red_arg *r = arg;
    kiln_attrs *a = kiln_attrs_new();
    if (r->naxes) kiln_attrs_ints(a, "axes", r->axes, r->naxes);
    kiln_attrs_int(a, "keepdims", r->keepdims);
    kiln_value y = kiln_op(g, r->op, x, 1, a);
    kiln_attrs_free(a);
    return y;
}

static void test_reduce_extreme_prod(void **state)
{
    (void)state;
    const char *ops[] = {"ReduceMax", "ReduceMin", "ReduceProd"};
    for (int o = 0; o < 3; o++)
        for (int keep = 0; keep < 2; keep++) {
            red_arg args[] = {{ops[o], 0, {0}, keep}, {ops[o], 1, {1}, keep}, {ops[o], 2, {0, 2}, keep},
                              {ops[o], 1, {-1}, keep}};
            spec s = o == 2 ? (spec)S3(2, 3, 4, 0.5, 1.5) : (spec)S3(2, 3, 4, -2, 2);
            if (o == 2) { /* with signs too */
                spec s2 = S3(2, 3, 2, -1.5, 1.5);
                gradcheck(ops[o], build_red, &args[1], 1, &s2);
            }
            for (int i = 0; i < 4; i++) gradcheck(ops[o], build_red, &args[i], 1, &s);
        }
}

/* Hand-computed: ties split the gradient evenly; zeros in a product. */
static void test_reduce_hand_cases(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F64, 2, (int64_t[]){2, 3});
    red_arg amax = {"ReduceMax", 1, {1}, 0}, amin = {"ReduceMin", 0, {0}, 1}, prod = {"ReduceProd", 1, {1}, 1};
    kiln_value ys[3] = {build_red(g, &x, &amax), build_red(g, &x, &amin), build_red(g, &x, &prod)};
    kiln_value d[3];
    kiln_status *st = kiln_status_new();
    for (int i = 0; i < 3; i++) {
        kiln_gradients(g, &ys[i], 1, &x, 1, NULL, &d[i], st);
        assert_int_equal(kiln_status_code(st), KILN_OK);
    }
    kiln_tensor *in = tu_f64(2, (int64_t[]){2, 3}, (double[]){1, 3, 3, -2, 0, -2});
    kiln_tensor *r = tu_run(g, d[0], 1, &x, &in);
    tu_assert_close(r, (double[]){0, 0.5, 0.5, 0, 1, 0}, 6, 0, 1e-15); /* max ties: split */
    kiln_tensor_free(r);
    r = tu_run(g, d[1], 1, &x, &in);
    tu_assert_close(r, (double[]){0, 0, 0, 0.5, 0, 0.5}, 6, 0, 1e-15); /* global min -2 twice */
    kiln_tensor_free(r);
    r = tu_run(g, d[2], 1, &x, &in);
    /* row 0: no zero: prod/x = 9/1, 9/3, 9/3; row 1: one zero: 4 at it */
    tu_assert_close(r, (double[]){9, 3, 3, 0, 4, 0}, 6, 0, 1e-12);
    kiln_tensor_free(r);
    kiln_tensor_free(in);
    in = tu_f64(2, (int64_t[]){2, 3}, (double[]){0, 5, 0, 2, -3, 0.5});
    r = tu_run(g, d[2], 1, &x, &in);
    /* row 0: two zeros: all 0; row 1: no zero: -3/x */
    tu_assert_close(r, (double[]){0, 0, 0, -1.5, 1, -6}, 6, 0, 1e-12);
    kiln_tensor_free(r);
    kiln_tensor_free(in);
    kiln_status_free(st);
    kiln_graph_free(g);
}

/* ---- math.c ---- */

static kiln_value build_op1(kiln_graph *g, const kiln_value *x, const void *arg)
{
    return kiln_op(g, arg, x, 1, NULL);
}

static void test_math_unary(void **state)
{
    (void)state;
    static const struct {
        const char *op;
        double lo, hi;
    } ops[] = {{"Sin", -3, 3}, {"Cos", -3, 3}, {"Tan", -1.2, 1.2}, {"Asin", -0.9, 0.9},
               {"Acos", -0.9, 0.9}, {"Atan", -3, 3}, {"Sinh", -2, 2}, {"Cosh", -2, 2},
               {"Asinh", -3, 3}, {"Acosh", 1.1, 4}, {"Atanh", -0.9, 0.9}};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        spec shapes[2] = {S1(5, ops[i].lo, ops[i].hi), S3(2, 3, 2, ops[i].lo, ops[i].hi)};
        for (int s = 0; s < 2; s++) gradcheck(ops[i].op, build_op1, ops[i].op, 1, &shapes[s]);
    }
}

static kiln_value build_mod(kiln_graph *g, const kiln_value *x, const void *arg)
{
    (void)arg;
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_int(a, "fmod", 1);
    kiln_value y = kiln_op(g, "Mod", x, 2, a);
    kiln_attrs_free(a);
    return y;
}

static void test_mod(void **state)
{
    (void)state;
    spec s1[2] = {S2(3, 4, -5, 5), S2(3, 4, 0.7, 2)};
    spec s2[2] = {S2(3, 4, -5, 5), S1(4, -2, -0.7)}; /* negative divisors, broadcast */
    gradcheck("Mod", build_mod, NULL, 2, s1);
    gradcheck("Mod broadcast", build_mod, NULL, 2, s2);
}

/* Floor, Ceil, Round and Sign have zero gradient: y = op(x) * 3 + x has
 * dy/dx = 1. */
static void test_zero_gradient_ops(void **state)
{
    (void)state;
    const char *ops[] = {"Floor", "Ceil", "Round", "Sign"};
    for (int i = 0; i < 4; i++) {
        kiln_graph *g = kiln_graph_new();
        kiln_value x = kiln_placeholder(g, "x", KILN_F64, 1, (int64_t[]){4});
        kiln_value y = kiln_add(g, kiln_mul(g, kiln_op(g, ops[i], &x, 1, NULL), kiln_scalar(g, KILN_F64, 3)), x);
        kiln_value l = kiln_reduce_sum(g, y, NULL, 0, 0), d;
        kiln_status *st = kiln_status_new();
        kiln_gradients(g, &l, 1, &x, 1, NULL, &d, st);
        assert_int_equal(kiln_status_code(st), KILN_OK);
        kiln_tensor *in = tu_f64(1, (int64_t[]){4}, (double[]){-1.5, 0.2, 2.7, 3});
        kiln_tensor *r = tu_run(g, d, 1, &x, &in);
        tu_assert_close(r, (double[]){1, 1, 1, 1}, 4, 0, 0);
        kiln_tensor_free(r);
        kiln_tensor_free(in);
        kiln_status_free(st);
        kiln_graph_free(g);
    }
}

/* ---- second order through the backward ops ---- */

static void test_second_order(void **state)
{
    (void)state;
    static const conv_arg c1 = {{2, 1}, {1, 0, 0, 1}, {1, 2}, 2, {0, 0}, false};
    second_arg a1 = {build_conv, &c1, 2};
    spec s1[2] = {S4(1, 2, 5, 5, -1, 1), S4(2, 1, 2, 2, -1, 1)};
    gradcheck_eps("Conv2D second order", build_grad_norm, &a1, 2, s1, 1e-5, 1e-5, 1e-7);
    static const conv_arg c2 = {{2, 2}, {1, 0, 0, 1}, {1, 1}, 1, {1, 0}, false};
    second_arg a2 = {build_convt, &c2, 2};
    spec s2[2] = {S4(1, 1, 3, 3, -1, 1), S4(1, 2, 3, 2, -1, 1)};
    gradcheck_eps("ConvTranspose2D second order", build_grad_norm, &a2, 2, s2, 1e-5, 1e-5, 1e-7);
    for (int i = 0; i < 4; i++) { /* MaxPool2D: through MaxPool2DGrad's rule */
        second_arg am = {build_pool, &pool_cases[i], 1};
        spec sm = S4(1, 2, 5, 6, -2, 2);
        gradcheck_eps("MaxPool2D second order", build_grad_norm, &am, 1, &sm, 1e-5, 1e-5, 1e-7);
    }
    second_arg a3 = {build_pool, &pool_cases[8], 1};
    spec s3 = S4(1, 2, 5, 6, -2, 2);
    gradcheck_eps("AveragePool2D second order", build_grad_norm, &a3, 1, &s3, 1e-5, 1e-5, 1e-7);
    int w0 = 0;
    second_arg a4 = {build_gather, &w0, 1};
    spec s4 = S2(5, 3, -2, 2);
    gradcheck_eps("Gather second order", build_grad_norm, &a4, 1, &s4, 1e-5, 1e-5, 1e-7);
    ln_arg l = {-1, 3};
    second_arg a5 = {build_ln, &l, 3};
    spec s5[3] = {S2(2, 4, -2, 2), S1(4, -1, 1), S1(4, -1, 1)};
    gradcheck_eps("LayerNormalization second order", build_grad_norm, &a5, 3, s5, 1e-5, 1e-5, 1e-7);
}

/* ---- errors ---- */

static void test_errors(void **state)
{
    (void)state;
    kiln_status *st = kiln_status_new();
    /* reflect padding needs static dims: the error names the op and type;
     * with static dims second order works (Slice with step -1 has a rule) */
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){-1, 4});
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_ints(a, "pads", (int64_t[]){1, 1, 1, 1}, 4);
    kiln_attrs_string(a, "mode", "reflect");
    kiln_value p = kiln_op(g, "Pad", &x, 1, a);
    kiln_value l = p, d;
    kiln_gradients(g, &l, 1, &x, 1, &p, &d, st);
    assert_int_equal(kiln_status_code(st), KILN_ERR_UNIMPLEMENTED);
    assert_non_null(strstr(kiln_status_message(st), "Pad"));
    assert_non_null(strstr(kiln_status_message(st), "f32[?,4]"));
    assert_false(kiln_value_ok(d));
    kiln_graph_free(g);
    g = kiln_graph_new();
    x = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){3, 4});
    p = kiln_op(g, "Pad", &x, 1, a);
    kiln_attrs_free(a);
    l = kiln_reduce_sum(g, kiln_mul(g, p, p), NULL, 0, 0);
    kiln_gradients(g, &l, 1, &x, 1, NULL, &d, st);
    assert_int_equal(kiln_status_code(st), KILN_OK);
    l = kiln_reduce_sum(g, kiln_mul(g, d, d), NULL, 0, 0);
    kiln_gradients(g, &l, 1, &x, 1, NULL, &d, st);
    assert_int_equal(kiln_status_code(st), KILN_OK);
    assert_true(kiln_value_ok(d));
    kiln_graph_free(g);
    /* a convolution over a symbolic height */
    g = kiln_graph_new();
    x = kiln_placeholder(g, "x", KILN_F32, 4, (int64_t[]){1, 1, -1, 4});
    kiln_value w = kiln_placeholder(g, "w", KILN_F32, 4, (int64_t[]){1, 1, 2, 2});
    kiln_value y = kiln_conv2d(g, x, w, kiln_value_invalid(), NULL);
    kiln_gradients(g, &y, 1, &w, 1, &y, &d, st);
    assert_int_equal(kiln_status_code(st), KILN_ERR_UNIMPLEMENTED);
    assert_non_null(strstr(kiln_status_message(st), "Conv2D"));
    assert_non_null(strstr(kiln_status_message(st), "f32[1,1,?,4]"));
    kiln_graph_free(g);
    /* MaxPool2DSelect has no rule: second order through MaxPool2D works,
     * third order lists it */
    g = kiln_graph_new();
    x = kiln_placeholder(g, "x", KILN_F32, 4, (int64_t[]){1, 1, 4, 4});
    pool_arg pa = {"MaxPool2D", {2, 2}, {2, 2}, {0, 0, 0, 0}, {1, 1}, 0, 0};
    kiln_value mp = build_pool(g, &x, &pa);
    l = kiln_reduce_sum(g, kiln_mul(g, mp, mp), NULL, 0, 0);
    kiln_gradients(g, &l, 1, &x, 1, NULL, &d, st);
    assert_int_equal(kiln_status_code(st), KILN_OK);
    kiln_value l2 = kiln_reduce_sum(g, kiln_mul(g, d, d), NULL, 0, 0), d2;
    kiln_gradients(g, &l2, 1, &x, 1, NULL, &d2, st);
    assert_int_equal(kiln_status_code(st), KILN_OK);
    kiln_value l3 = kiln_reduce_sum(g, kiln_mul(g, d2, d2), NULL, 0, 0), d3;
    kiln_gradients(g, &l3, 1, &x, 1, NULL, &d3, st);
    assert_int_equal(kiln_status_code(st), KILN_ERR_UNIMPLEMENTED);
    assert_non_null(strstr(kiln_status_message(st), "no gradient rule for 1 op"));
    assert_non_null(strstr(kiln_status_message(st), "MaxPool2DSelect"));
    kiln_graph_free(g);
    /* inference errors of the backward ops name the op, node and shapes */
    g = kiln_graph_new();
    x = kiln_placeholder(g, "x", KILN_F32, 4, (int64_t[]){1, 2, 4, 4});
    kiln_value dy = kiln_placeholder(g, "dy", KILN_F32, 4, (int64_t[]){1, 2, 3, 2});
    a = kiln_attrs_new();
    kiln_attrs_ints(a, "kernel_shape", (int64_t[]){2, 2}, 2);
    kiln_attrs_ints(a, "strides", (int64_t[]){2, 2}, 2);
    kiln_value bad = kiln_op(g, "MaxPool2DGrad", (kiln_value[]){x, dy}, 2, a);
    kiln_attrs_free(a);
    assert_false(kiln_value_ok(bad));
    tu_assert_graph_error(g, "MaxPool2DGrad", "dy's height is 3", "f32[1,2,4,4]", (char *)NULL);
    kiln_graph_free(g);
    g = kiln_graph_new();
    dy = kiln_placeholder(g, "dy", KILN_F32, 2, (int64_t[]){3, 2});
    kiln_value idx = kiln_placeholder(g, "i", KILN_F32, 1, (int64_t[]){3});
    a = kiln_attrs_new();
    kiln_attrs_int(a, "axis_size", 4);
    bad = kiln_op(g, "GatherGrad", (kiln_value[]){dy, idx}, 2, a);
    kiln_attrs_free(a);
    assert_false(kiln_value_ok(bad));
    tu_assert_graph_error(g, "GatherGrad", "f32", (char *)NULL);
    kiln_graph_free(g);
    kiln_status_free(st);
}

/* ---- the backward ops: hand-computed cases, reference vs compiled ---- */

static void test_conv2d_filter_grad_op(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 4, (int64_t[]){1, 1, 3, 3});
    kiln_value dy = kiln_placeholder(g, "dy", KILN_F32, 4, (int64_t[]){1, 1, 2, 2});
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_ints(a, "kernel_shape", (int64_t[]){2, 2}, 2);
    kiln_value dw = kiln_op(g, "Conv2DFilterGrad", (kiln_value[]){x, dy}, 2, a);
    kiln_attrs_free(a);
    assert_true(kiln_value_ok(dw));
    kiln_tensor *f[2] = {tu_f32(4, (int64_t[]){1, 1, 3, 3}, (float[]){1, 2, 3, 4, 5, 6, 7, 8, 9}),
                         tu_f32(4, (int64_t[]){1, 1, 2, 2}, (float[]){1, 1, 1, 1})};
    kiln_value ph[2] = {x, dy};
    kiln_tensor *r = tu_run(g, dw, 2, ph, f);
    tu_assert_shape(r, KILN_F32, 4, (int64_t[]){1, 1, 2, 2});
    tu_assert_close(r, (double[]){12, 16, 24, 28}, 4, 0, 0); /* sums of the 2x2 windows */
    kiln_tensor_free(r);
    tu_diff(g, 1, &dw, 2, ph, f, 1e-6, 1e-6);
    for (int i = 0; i < 2; i++) kiln_tensor_free(f[i]);
    kiln_graph_free(g);
    /* random, groups, strides, dilations, pads, f32 and f64 */
    static const conv_arg cs[] = {
        {{2, 1}, {1, 0, 0, 1}, {1, 2}, 2, {0, 0}, false},
        {{1, 1}, {1, 1, 1, 1}, {1, 1}, 1, {0, 0}, false},
        {{2, 3}, {0, 2, 1, 0}, {2, 1}, 1, {0, 0}, false},
    };
    for (size_t c = 0; c < sizeof cs / sizeof cs[0]; c++)
        for (int dti = 0; dti < 2; dti++) {
            kiln_dtype dt = dti ? KILN_F64 : KILN_F32;
            g = kiln_graph_new();
            int64_t xd[4] = {2, 4, 9, 8}, wd[4] = {6, 4 / cs[c].group, 3, 2};
            x = kiln_placeholder(g, "x", dt, 4, xd);
            kiln_value w = kiln_placeholder(g, "w", dt, 4, wd);
            kiln_value y = build_conv(g, (kiln_value[]){x, w}, &cs[c]);
            int64_t yd[4];
            kiln_value_dims(g, y, yd);
            dy = kiln_placeholder(g, "dy", dt, 4, yd);
            a = kiln_attrs_new();
            kiln_attrs_ints(a, "kernel_shape", wd + 2, 2);
            kiln_attrs_ints(a, "strides", cs[c].strides, 2);
            kiln_attrs_ints(a, "pads", cs[c].pads, 4);
            kiln_attrs_ints(a, "dilations", cs[c].dilations, 2);
            kiln_attrs_int(a, "group", cs[c].group);
            dw = kiln_op(g, "Conv2DFilterGrad", (kiln_value[]){x, dy}, 2, a);
            kiln_attrs_free(a);
            assert_true(kiln_value_ok(dw));
            kiln_value ph2[2] = {x, dy};
            kiln_tensor *f2[2] = {tu_random(dt, 4, xd, -1, 1, 11 + c), tu_random(dt, 4, yd, -1, 1, 21 + c)};
            tu_diff(g, 1, &dw, 2, ph2, f2, dt == KILN_F32 ? 1e-4 : 1e-10, 1e-5);
            /* and it is the gradient kiln_gradients builds for w */
            kiln_value dwg;
            kiln_status *st = kiln_status_new();
            kiln_gradients(g, &y, 1, &w, 1, &dy, &dwg, st);
            assert_int_equal(kiln_status_code(st), KILN_OK);
            kiln_status_free(st);
            kiln_value ph3[3] = {x, w, dy};
            kiln_tensor *f3[3] = {f2[0], tu_random(dt, 4, wd, -1, 1, 31), f2[1]};
            tu_diff(g, 1, &dwg, 3, ph3, f3, dt == KILN_F32 ? 1e-4 : 1e-10, 1e-5);
            kiln_tensor_free(f3[1]);
            for (int i = 0; i < 2; i++) kiln_tensor_free(f2[i]);
            kiln_graph_free(g);
        }
}

/* Builds op(x, dy) for a pool case with dy the pool output's shape; runs
 * reference vs compiled. */
static void pool_grad_diff(const pool_arg *p, kiln_dtype dt, uint64_t seed)
{
    kiln_graph *g = kiln_graph_new();
    int64_t xd[4] = {2, 3, 7, 6};
    kiln_value x = kiln_placeholder(g, "x", dt, 4, xd);
    kiln_value y = build_pool(g, &x, p);
    int64_t yd[4];
    kiln_value_dims(g, y, yd);
    kiln_value dy = kiln_placeholder(g, "dy", dt, 4, yd), d;
    kiln_status *st = kiln_status_new();
    kiln_gradients(g, &y, 1, &x, 1, &dy, &d, st);
    assert_int_equal(kiln_status_code(st), KILN_OK);
    kiln_status_free(st);
    kiln_value ph[2] = {x, dy};
    kiln_tensor *f[2] = {tu_random(dt, 4, xd, -2, 2, seed), tu_random(dt, 4, yd, -1, 1, seed + 1)};
    double rtol = dt == KILN_F64 ? 1e-12 : dt == KILN_F32 ? 1e-5 : 1e-2;
    tu_diff(g, 1, &d, 2, ph, f, rtol, rtol);
    if (strcmp(p->op, "MaxPool2D") == 0) { /* MaxPool2DSelect, the adjoint of MaxPool2DGrad */
        kiln_value dd;
        st = kiln_status_new();
        kiln_gradients(g, &d, 1, &dy, 1, &x, &dd, st);
        assert_int_equal(kiln_status_code(st), KILN_OK);
        kiln_status_free(st);
        assert_int_equal(ir_graph_node(g, dd)->op, IR_OP_MaxPool2DSelect);
        tu_diff(g, 1, &dd, 2, ph, f, rtol, rtol);
    }
    for (int i = 0; i < 2; i++) kiln_tensor_free(f[i]);
    kiln_graph_free(g);
}

static void test_pool_grad_ops(void **state)
{
    (void)state;
    /* MaxPool2DGrad by hand: ties go to the first maximum of the window */
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 4, (int64_t[]){1, 1, 2, 3});
    kiln_value dy = kiln_placeholder(g, "dy", KILN_F32, 4, (int64_t[]){1, 1, 1, 2});
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_ints(a, "kernel_shape", (int64_t[]){2, 2}, 2);
    kiln_value dm = kiln_op(g, "MaxPool2DGrad", (kiln_value[]){x, dy}, 2, a);
    kiln_attrs_free(a);
    kiln_value ph[2] = {x, dy};
    kiln_tensor *f[2] = {tu_f32(4, (int64_t[]){1, 1, 2, 3}, (float[]){1, 5, 2, 3, 5, 0}),
                         tu_f32(4, (int64_t[]){1, 1, 1, 2}, (float[]){10, 20})};
    kiln_tensor *r = tu_run(g, dm, 2, ph, f);
    tu_assert_close(r, (double[]){0, 30, 0, 0, 0, 0}, 6, 0, 0);
    kiln_tensor_free(r);
    tu_diff(g, 1, &dm, 2, ph, f, 0, 0);
    for (int i = 0; i < 2; i++) kiln_tensor_free(f[i]);
    kiln_graph_free(g);
    /* MaxPool2DSelect by hand: v at the first maximum of each window */
    g = kiln_graph_new();
    x = kiln_placeholder(g, "x", KILN_F32, 4, (int64_t[]){1, 1, 2, 3});
    kiln_value v = kiln_placeholder(g, "v", KILN_F32, 4, (int64_t[]){1, 1, 2, 3});
    a = kiln_attrs_new();
    kiln_attrs_ints(a, "kernel_shape", (int64_t[]){2, 2}, 2);
    kiln_value sel = kiln_op(g, "MaxPool2DSelect", (kiln_value[]){x, v}, 2, a);
    kiln_attrs_free(a);
    kiln_value phs[2] = {x, v};
    kiln_tensor *fs[2] = {tu_f32(4, (int64_t[]){1, 1, 2, 3}, (float[]){1, 5, 2, 3, 5, 7}),
                          tu_f32(4, (int64_t[]){1, 1, 2, 3}, (float[]){10, 20, 30, 40, 50, 60})};
    r = tu_run(g, sel, 2, phs, fs);
    tu_assert_shape(r, KILN_F32, 4, (int64_t[]){1, 1, 1, 2});
    tu_assert_close(r, (double[]){20, 60}, 2, 0, 0); /* window 0: 5 first at (0,1); window 1: 7 */
    kiln_tensor_free(r);
    tu_diff(g, 1, &sel, 2, phs, fs, 0, 0);
    for (int i = 0; i < 2; i++) kiln_tensor_free(fs[i]);
    kiln_graph_free(g);
    /* AveragePool2DGrad by hand: 3x3 input, 2x2 windows, stride 2, pads
     * bottom/right 1; count_include_pad 0 divides by 4, 2, 2, 1 and 1 by 4 */
    for (int cip = 0; cip < 2; cip++) {
        g = kiln_graph_new();
        x = kiln_placeholder(g, "x", KILN_F64, 4, (int64_t[]){1, 1, 3, 3});
        dy = kiln_placeholder(g, "dy", KILN_F64, 4, (int64_t[]){1, 1, 2, 2});
        a = kiln_attrs_new();
        kiln_attrs_ints(a, "kernel_shape", (int64_t[]){2, 2}, 2);
        kiln_attrs_ints(a, "strides", (int64_t[]){2, 2}, 2);
        kiln_attrs_ints(a, "pads", (int64_t[]){0, 0, 1, 1}, 4);
        kiln_attrs_int(a, "count_include_pad", cip);
        kiln_value da = kiln_op(g, "AveragePool2DGrad", (kiln_value[]){x, dy}, 2, a);
        kiln_attrs_free(a);
        kiln_value ph2[2] = {x, dy};
        kiln_tensor *f2[2] = {tu_random(KILN_F64, 4, (int64_t[]){1, 1, 3, 3}, -1, 1, 3),
                              tu_f64(4, (int64_t[]){1, 1, 2, 2}, (double[]){4, 2, 2, 1})};
        r = tu_run(g, da, 2, ph2, f2);
        if (cip) tu_assert_close(r, (double[]){1, 1, 0.5, 1, 1, 0.5, 0.5, 0.5, 0.25}, 9, 0, 1e-15);
        else tu_assert_close(r, (double[]){1, 1, 1, 1, 1, 1, 1, 1, 1}, 9, 0, 1e-15);
        kiln_tensor_free(r);
        tu_diff(g, 1, &da, 2, ph2, f2, 1e-14, 1e-14);
        for (int i = 0; i < 2; i++) kiln_tensor_free(f2[i]);
        kiln_graph_free(g);
    }
    /* random: every pool case, f32, f64 and f16 */
    static const kiln_dtype dts[3] = {KILN_F32, KILN_F64, KILN_F16};
    for (size_t i = 0; i < sizeof pool_cases / sizeof pool_cases[0]; i++)
        for (int d = 0; d < 3; d++) pool_grad_diff(&pool_cases[i], dts[d], 100 + 10 * i + (uint64_t)d);
}

static void test_gather_grad_op(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value dy = kiln_placeholder(g, "dy", KILN_F32, 2, (int64_t[]){4, 2});
    kiln_value idx = kiln_placeholder(g, "i", KILN_I64, 1, (int64_t[]){4});
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_int(a, "axis", 0);
    kiln_attrs_int(a, "axis_size", 3);
    kiln_value dx = kiln_op(g, "GatherGrad", (kiln_value[]){dy, idx}, 2, a);
    kiln_attrs_free(a);
    kiln_value ph[2] = {dy, idx};
    kiln_tensor *f[2] = {tu_f32(2, (int64_t[]){4, 2}, (float[]){1, 2, 3, 4, 5, 6, 7, 8}),
                         tu_i64(1, (int64_t[]){4}, (int64_t[]){0, 2, 0, -1})};
    kiln_tensor *r = tu_run(g, dx, 2, ph, f);
    tu_assert_shape(r, KILN_F32, 2, (int64_t[]){3, 2});
    /* row 0 gets rows 0 and 2 of dy, row 2 rows 1 and 3 (index -1), row 1 nothing */
    tu_assert_close(r, (double[]){6, 8, 0, 0, 10, 12}, 6, 0, 0);
    kiln_tensor_free(r);
    tu_diff(g, 1, &dx, 2, ph, f, 0, 0);
    /* an index out of range fails with both backends */
    kiln_tensor_free(f[1]);
    f[1] = tu_i64(1, (int64_t[]){4}, (int64_t[]){0, 3, 0, 1});
    tu_run_fails(g, dx, 2, ph, f, "out of range");
    kiln_tensor *res = NULL;
    char msg[256];
    assert_int_not_equal(tu_run_backend(g, KILN_BACKEND_DEFAULT, 1, &dx, &res, 2, ph, f, msg, sizeof msg),
                         KILN_OK);
    assert_null(res);
    for (int i = 0; i < 2; i++) kiln_tensor_free(f[i]);
    kiln_graph_free(g);
    /* random: axis 1 with 2-D i32 indices, f64; the rule's output */
    g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F64, 3, (int64_t[]){3, 5, 4});
    idx = kiln_placeholder(g, "i", KILN_I32, 2, (int64_t[]){3, 4});
    kiln_value y = kiln_gather(g, x, idx, 1);
    int64_t yd[5];
    kiln_value_dims(g, y, yd);
    dy = kiln_placeholder(g, "dy", KILN_F64, 4, yd);
    kiln_value d;
    kiln_status *st = kiln_status_new();
    kiln_gradients(g, &y, 1, &x, 1, &dy, &d, st);
    assert_int_equal(kiln_status_code(st), KILN_OK);
    kiln_status_free(st);
    kiln_value ph3[3] = {x, idx, dy};
    kiln_tensor *f3[3] = {tu_random(KILN_F64, 3, (int64_t[]){3, 5, 4}, -1, 1, 5),
                          tu_i32(2, (int64_t[]){3, 4}, (int32_t[]){0, 4, 4, -1, 2, 2, 1, 0, -5, 3, 3, 3}),
                          tu_random(KILN_F64, 4, yd, -1, 1, 6)};
    tu_diff(g, 1, &d, 3, ph3, f3, 1e-12, 1e-12);
    for (int i = 0; i < 3; i++) kiln_tensor_free(f3[i]);
    kiln_graph_free(g);
}

/* ---- whole gradient graphs: compiled vs reference ---- */

static void test_compiled_cnn(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 4, (int64_t[]){2, 4, 9, 9});
    kiln_value w = kiln_placeholder(g, "w", KILN_F32, 4, (int64_t[]){6, 2, 3, 3});
    kiln_value b = kiln_placeholder(g, "b", KILN_F32, 1, (int64_t[]){6});
    kiln_value sc = kiln_placeholder(g, "scale", KILN_F32, 1, (int64_t[]){6});
    kiln_value wt = kiln_placeholder(g, "wt", KILN_F32, 4, (int64_t[]){6, 2, 2, 2});
    kiln_conv2d_options co;
    kiln_conv2d_options_init(&co);
    co.strides[0] = co.strides[1] = 2;
    co.pads[0] = co.pads[1] = co.pads[2] = co.pads[3] = 1;
    co.groups = 2;
    kiln_value h = kiln_conv2d(g, x, w, b, &co); /* [2,6,5,5] */
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_float(a, "epsilon", 1e-3);
    kiln_value mean = kiln_reduce_mean(g, h, (int64_t[]){0, 2, 3}, 3, 0);
    kiln_value var = kiln_add(g, kiln_mul(g, mean, mean), kiln_scalar(g, KILN_F32, 1));
    kiln_value bn = kiln_op(g, "BatchNormalization", (kiln_value[]){h, sc, b, mean, var}, 5, a);
    kiln_attrs_free(a);
    h = kiln_op(g, "Sin", &bn, 1, NULL);
    pool_arg mp = {"MaxPool2D", {2, 2}, {1, 1}, {0, 0, 1, 1}, {1, 1}, 0, 0};
    kiln_value m = build_pool(g, &h, &mp); /* [2,6,5,5] */
    static const conv_arg ct = {{2, 2}, {0, 0, 1, 1}, {1, 1}, 2, {1, 1}, false};
    kiln_value up = build_convt(g, (kiln_value[]){m, wt}, &ct); /* [2,4,10,10] */
    kiln_value av = build_pool(g, &up, &pool_cases[6]);
    ln_arg ln = {2, 2};
    kiln_value one = kiln_reduce_max(g, av, (int64_t[]){1}, 1, 1);
    kiln_value lnv = build_ln(g, (kiln_value[]){av, kiln_reshape(g, kiln_reduce_mean(g, sc, NULL, 0, 1), (int64_t[]){1}, 1)}, &ln);
    kiln_value gap = kiln_op(g, "GlobalAveragePool", &lnv, 1, NULL);
    kiln_tensor *it = tu_i64(1, (int64_t[]){5}, (int64_t[]){1, 0, 3, 1, -1});
    kiln_value gi = kiln_gather(g, kiln_reshape(g, gap, (int64_t[]){2, 4}, 2), kiln_constant(g, NULL, it), 1);
    kiln_tensor_free(it);
    kiln_value t = kiln_tile(g, gi, (int64_t[]){1, 2}, 2);
    a = kiln_attrs_new();
    kiln_attrs_ints(a, "pads", (int64_t[]){1, -1, 0, 2}, 4);
    kiln_value pd = kiln_op(g, "Pad", &t, 1, a);
    kiln_attrs_free(a);
    kiln_value loss = kiln_add(g, kiln_reduce_sum(g, kiln_mul(g, pd, pd), NULL, 0, 0),
                               kiln_reduce_sum(g, kiln_op(g, "Atan", &one, 1, NULL), NULL, 0, 0));
    assert_null(kiln_graph_error(g));
    kiln_value xs[5] = {x, w, b, sc, wt}, d[5];
    kiln_status *st = kiln_status_new();
    kiln_gradients(g, &loss, 1, xs, 5, NULL, d, st);
    if (kiln_status_code(st) != KILN_OK) fail_msg("%s", kiln_status_message(st));
    kiln_tensor *feeds[5] = {tu_random(KILN_F32, 4, (int64_t[]){2, 4, 9, 9}, -1, 1, 41),
                             tu_random(KILN_F32, 4, (int64_t[]){6, 2, 3, 3}, -1, 1, 42),
                             tu_random(KILN_F32, 1, (int64_t[]){6}, -1, 1, 43),
                             tu_random(KILN_F32, 1, (int64_t[]){6}, 0.5, 1.5, 44),
                             tu_random(KILN_F32, 4, (int64_t[]){6, 2, 2, 2}, -1, 1, 45)};
    tu_diff(g, 5, d, 5, xs, feeds, 2e-3, 1e-4);
    for (int i = 0; i < 5; i++) kiln_tensor_free(feeds[i]);
    kiln_status_free(st);
    kiln_graph_free(g);
}

static void test_compiled_misc(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F64, 3, (int64_t[]){2, 6, 3});
    kiln_value b = kiln_placeholder(g, "b", KILN_F64, 1, (int64_t[]){3});
    int which = 0;
    kiln_value s = build_split(g, &x, &which);
    red_arg rp = {"ReduceProd", 1, {2}, 0}, rm = {"ReduceMin", 2, {0, 1}, 1};
    kiln_value p = build_red(g, &s, &rp);
    kiln_value mn = build_red(g, &x, &rm);
    kiln_value md = build_mod(g, (kiln_value[]){x, kiln_add(g, kiln_abs(g, b), kiln_scalar(g, KILN_F64, 0.5))}, NULL);
    kiln_value th = kiln_op(g, "Tanh", &md, 1, NULL);
    pad_arg pr = {"reflect", {1, 2, 0, 0, -1, 2}}, pe = {"edge", {0, -2, 1, 2, 3, 0}};
    kiln_value pads = kiln_add(g, kiln_reduce_sum(g, kiln_mul(g, build_pad(g, &x, &pr), build_pad(g, &x, &pr)), NULL, 0, 0),
                               kiln_reduce_sum(g, kiln_op(g, "Sin", (kiln_value[]){build_pad(g, &x, &pe)}, 1, NULL), NULL, 0, 0));
    kiln_value loss = kiln_add(g, kiln_add(g, kiln_reduce_sum(g, kiln_op(g, "Cosh", &p, 1, NULL), NULL, 0, 0),
                                           kiln_reduce_sum(g, kiln_mul(g, mn, b), NULL, 0, 0)),
                               kiln_reduce_sum(g, kiln_mul(g, th, kiln_op(g, "Floor", &x, 1, NULL)), NULL, 0, 0));
    loss = kiln_add(g, loss, pads);
    kiln_value xs[2] = {x, b}, d[2];
    kiln_status *st = kiln_status_new();
    kiln_gradients(g, &loss, 1, xs, 2, NULL, d, st);
    if (kiln_status_code(st) != KILN_OK) fail_msg("%s", kiln_status_message(st));
    kiln_tensor *feeds[2] = {tu_random(KILN_F64, 3, (int64_t[]){2, 6, 3}, -1, 1, 51),
                             tu_random(KILN_F64, 1, (int64_t[]){3}, -1, 1, 52)};
    tu_diff(g, 2, d, 2, xs, feeds, 1e-9, 1e-10);
    for (int i = 0; i < 2; i++) kiln_tensor_free(feeds[i]);
    kiln_status_free(st);
    kiln_graph_free(g);
}

/* A symbolic batch: the conv and pool rules only need static spatial dims;
 * the graph runs with two batch sizes, compiled and reference. */
static void test_symbolic_batch(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 4, (int64_t[]){-1, 2, 6, 6});
    kiln_value w = kiln_placeholder(g, "w", KILN_F32, 4, (int64_t[]){3, 2, 3, 3});
    kiln_conv2d_options co;
    kiln_conv2d_options_init(&co);
    co.strides[0] = co.strides[1] = 2;
    co.pads[2] = co.pads[3] = 1;
    kiln_value y = build_pool(g, (kiln_value[]){kiln_conv2d(g, x, w, kiln_value_invalid(), &co)}, &pool_cases[7]);
    int64_t yd[4];
    kiln_value_dims(g, y, yd);
    assert_int_equal(yd[0], -1);
    kiln_value dy = kiln_placeholder(g, "dy", KILN_F32, 4, yd);
    kiln_value xs[2] = {x, w}, d[2];
    kiln_status *st = kiln_status_new();
    kiln_gradients(g, &y, 1, xs, 2, &dy, d, st);
    if (kiln_status_code(st) != KILN_OK) fail_msg("%s", kiln_status_message(st));
    kiln_status_free(st);
    for (int64_t n = 1; n <= 3; n += 2) {
        int64_t xd[4] = {n, 2, 6, 6}, dd[4] = {n, yd[1], yd[2], yd[3]};
        kiln_value ph[3] = {x, w, dy};
        kiln_tensor *f[3] = {tu_random(KILN_F32, 4, xd, -1, 1, 60 + (uint64_t)n),
                             tu_random(KILN_F32, 4, (int64_t[]){3, 2, 3, 3}, -1, 1, 61),
                             tu_random(KILN_F32, 4, dd, -1, 1, 62)};
        tu_diff(g, 2, d, 3, ph, f, 1e-4, 1e-5);
        for (int i = 0; i < 3; i++) kiln_tensor_free(f[i]);
    }
    kiln_graph_free(g);
}

/* Every allocation kiln_gradients makes fails in turn: the call reports
 * an error (never a crash or a half-built result) and nothing leaks. */
static kiln_graph *build_for_sweep(kiln_value *x, kiln_value *loss)
{
    kiln_graph *g = kiln_graph_new();
    *x = kiln_placeholder(g, "x", KILN_F32, 4, (int64_t[]){1, 2, 5, 5});
    kiln_tensor *wt = tu_random(KILN_F32, 4, (int64_t[]){2, 1, 2, 2}, -1, 1, 7);
    kiln_value w = kiln_constant(g, "w", wt);
    kiln_tensor_free(wt);
    kiln_conv2d_options co;
    kiln_conv2d_options_init(&co);
    co.groups = 2;
    kiln_value h = kiln_conv2d(g, *x, w, kiln_value_invalid(), &co); /* [1,2,4,4] */
    h = build_pool(g, &h, &pool_cases[3]);                           /* [1,2,2,2] */
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_int(a, "axis", 1);
    kiln_attrs_int(a, "num_outputs", 2);
    kiln_value s = kiln_op(g, "Split", &h, 1, a);
    kiln_attrs_free(a);
    kiln_value t = kiln_op(g, "Sin", (kiln_value[]){{s.node, 1}}, 1, NULL);
    a = kiln_attrs_new();
    kiln_attrs_ints(a, "pads", (int64_t[]){0, 0, 1, 1, 0, 0, 1, 0}, 8);
    kiln_attrs_string(a, "mode", "reflect");
    t = kiln_op(g, "Pad", &t, 1, a);
    kiln_attrs_free(a);
    red_arg rp = {"ReduceProd", 1, {3}, 0};
    *loss = kiln_reduce_sum(g, build_red(g, &t, &rp), NULL, 0, 0);
    return g;
}

/* The other rules: ConvTranspose2D, the average pools, the normalizations,
 * Gather, Tile, Pad (edge), ReduceMax, math ops and Mod. */
static kiln_graph *build_for_sweep2(kiln_value *x, kiln_value *loss)
{
    kiln_graph *g = kiln_graph_new();
    *x = kiln_placeholder(g, "x", KILN_F64, 4, (int64_t[]){1, 2, 3, 3});
    kiln_tensor *wt = tu_random(KILN_F64, 4, (int64_t[]){2, 1, 2, 2}, -1, 1, 8);
    kiln_value w = kiln_constant(g, "w", wt);
    kiln_tensor_free(wt);
    static const conv_arg ct = {{2, 2}, {0, 1, 1, 0}, {1, 1}, 2, {1, 0}, false};
    kiln_value h = build_convt(g, (kiln_value[]){*x, w}, &ct); /* [1,2,6,5] */
    h = build_pool(g, &h, &pool_cases[8]);
    kiln_value c = kiln_scalar(g, KILN_F64, 1);
    kiln_value bn_in[5] = {h, kiln_reshape(g, kiln_reduce_mean(g, h, (int64_t[]){0, 2, 3}, 3, 0), (int64_t[]){2}, 1),
                           kiln_reduce_max(g, h, (int64_t[]){0, 2, 3}, 3, 0),
                           kiln_reduce_mean(g, h, (int64_t[]){0, 2, 3}, 3, 0), kiln_expand(g, c, (int64_t[]){2}, 1)};
    h = build_bn(g, bn_in, NULL);
    ln_arg ln = {2, 2};
    h = build_ln(g, (kiln_value[]){h, kiln_reduce_sum(g, h, (int64_t[]){0, 1}, 2, 0)}, &ln);
    kiln_value gap = kiln_reshape(g, kiln_op(g, "GlobalAveragePool", &h, 1, NULL), (int64_t[]){2}, 1);
    kiln_tensor *it = tu_i64(1, (int64_t[]){3}, (int64_t[]){1, 1, 0});
    kiln_value ga = kiln_gather(g, h, kiln_constant(g, NULL, it), 3);
    kiln_tensor_free(it);
    pad_arg pe = {"edge", {0, 0, 1, 0, 0, 1, 0, 2}};
    kiln_value pd = build_pad(g, &ga, &pe);
    kiln_value t = kiln_tile(g, gap, (int64_t[]){2}, 1);
    kiln_value m = build_mod(g, (kiln_value[]){kiln_op(g, "Atanh", (kiln_value[]){kiln_tanh(g, t)}, 1, NULL), c}, NULL);
    *loss = kiln_add(g, kiln_reduce_sum(g, m, NULL, 0, 0), kiln_reduce_sum(g, kiln_op(g, "Cos", &pd, 1, NULL), NULL, 0, 0));
    return g;
}

static void sweep_gradients(kiln_graph *(*build)(kiln_value *, kiln_value *))
{
    long n;
    int failures = 0;
    for (n = 0; n < 100000; n++) {
        kiln_value x, loss, d;
        kiln_graph *g = build(&x, &loss);
        if (kiln_graph_error(g)) fail_msg("building: %s", kiln_graph_error(g));
        kiln_status *st = kiln_status_new();
        ir_alloc_fail_after(n);
        kiln_gradients(g, &loss, 1, &x, 1, NULL, &d, st);
        bool failed = ir_alloc_failed();
        ir_alloc_fail_after(-1);
        if (failed) {
            failures++;
            if (kiln_status_code(st) == KILN_OK)
                fail_msg("fail_after(%ld): an allocation failed but the status is OK", n);
            assert_false(kiln_value_ok(d));
        } else if (kiln_status_code(st) != KILN_OK) {
            fail_msg("no allocation failed, but: %s", kiln_status_message(st));
        }
        kiln_status_free(st);
        kiln_graph_free(g);
        if (ir_alloc_live_blocks() != 0) fail_msg("fail_after(%ld): %ld blocks leaked", n, ir_alloc_live_blocks());
        if (!failed) break;
    }
    assert_true(failures > 20);
    print_message("kiln_gradients: %d allocation failure points\n", failures);
}

static void test_allocation_failures(void **state)
{
    (void)state;
    sweep_gradients(build_for_sweep);
    sweep_gradients(build_for_sweep2);
}

/* ---- the index ops: CumSum, GatherElements, TopK, ScatterElements ---- */

static kiln_value op_attrs(kiln_graph *g, const char *op, const kiln_value *in, int n, kiln_attrs *a)
{
    kiln_value v = kiln_op(g, op, in, n, a);
    kiln_attrs_free(a);
    return v;
}

static kiln_value build_cumsum(kiln_graph *g, const kiln_value *x, const void *arg)
{
    int w = *(const int *)arg; /* bit 0 exclusive, bit 1 reverse, bit 2 axis */
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_int(a, "axis", (w & 4) ? 1 : 0);
    kiln_attrs_int(a, "exclusive", w & 1);
    kiln_attrs_int(a, "reverse", (w >> 1) & 1);
    return op_attrs(g, "CumSum", x, 1, a);
}

static kiln_value int_const(kiln_graph *g, int rank, const int64_t *dims, const int64_t *v)
{
    kiln_tensor *t = tu_i64(rank, dims, v);
    kiln_value c = kiln_constant(g, NULL, t);
    kiln_tensor_free(t);
    return c;
}

static kiln_value build_gather_elements(kiln_graph *g, const kiln_value *x, const void *arg)
{
    (void)arg;
    /* data [3,4], indices [2,4] on axis 0 with repeats (and -1) */
    kiln_value idx = int_const(g, 2, (int64_t[]){2, 4}, (int64_t[]){0, 2, 2, -1, 0, 1, 2, 0});
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_int(a, "axis", 0);
    return op_attrs(g, "GatherElements", (kiln_value[]){x[0], idx}, 2, a);
}

static kiln_value build_topk(kiln_graph *g, const kiln_value *x, const void *arg)
{
    int largest = *(const int *)arg;
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_int(a, "k", 2);
    kiln_attrs_int(a, "axis", 1);
    kiln_attrs_int(a, "largest", largest);
    return op_attrs(g, "TopK", x, 1, a); /* output 0: the values */
}

static kiln_value build_scatter(kiln_graph *g, const kiln_value *x, const void *arg)
{
    int add = *(const int *)arg;
    /* data [4,3], updates [2,3] on axis 0; "none": distinct rows per
     * column, "add": a repeated row */
    kiln_value idx = add ? int_const(g, 2, (int64_t[]){2, 3}, (int64_t[]){1, 3, 1, 1, 0, 1})
                         : int_const(g, 2, (int64_t[]){2, 3}, (int64_t[]){1, 3, 0, 2, 0, -1});
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_int(a, "axis", 0);
    kiln_attrs_string(a, "reduction", add ? "add" : "none");
    kiln_value y = op_attrs(g, "ScatterElements", (kiln_value[]){x[0], idx, x[1]}, 3, a);
    return kiln_mul(g, y, y); /* so that data and updates both matter non-linearly */
}

static void test_index_ops(void **state)
{
    (void)state;
    spec s = S2(3, 4, -2, 2);
    for (int w = 0; w < 8; w++) gradcheck("CumSum", build_cumsum, &w, 1, &s);
    gradcheck("GatherElements (repeated indices)", build_gather_elements, NULL, 1, &s);
    for (int largest = 0; largest < 2; largest++) gradcheck("TopK values", build_topk, &largest, 1, &s);
    spec sc[2] = {S2(4, 3, -2, 2), S2(2, 3, -2, 2)};
    for (int add = 0; add < 2; add++) gradcheck(add ? "ScatterElements add" : "ScatterElements none", build_scatter, &add, 2, sc);

    /* the gradient graph compiled gives what the reference kernels give */
    {
        kiln_graph *g = kiln_graph_new();
        kiln_value x = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){3, 4});
        int w5 = 5, one = 1;
        kiln_value parts[3] = {build_cumsum(g, &x, &w5), build_gather_elements(g, &x, NULL), build_topk(g, &x, &one)};
        kiln_value loss = kiln_scalar(g, KILN_F32, 0);
        for (int i = 0; i < 3; i++)
            loss = kiln_add(g, loss, kiln_reduce_sum(g, kiln_mul(g, parts[i], kiln_tanh(g, parts[i])), NULL, 0, 0));
        kiln_value d;
        kiln_status *st = kiln_status_new();
        kiln_gradients(g, &loss, 1, &x, 1, NULL, &d, st);
        assert_int_equal(kiln_status_code(st), KILN_OK);
        kiln_status_free(st);
        kiln_tensor *f = tu_random(KILN_F32, 2, (int64_t[]){3, 4}, -2, 2, 77);
        tu_diff(g, 1, &d, 1, &x, &f, 1e-5, 1e-6);
        kiln_tensor_free(f);
        kiln_graph_free(g);
    }

    /* CumProd through zeros, by hand: x = [2, 0, 3], y = [2, 0, 0],
     * d(sum y)/dx = [1 + x1 + x1 x2, x0 + x0 x2, x0 x1] = [1, 8, 0]; the
     * exclusive y = [1, x0, x0 x1] = [1, 2, 0] gives [1 + x1, x0, 0] =
     * [1, 2, 0]. A rule dividing by x would give NaN at x1. */
    for (int excl = 0; excl < 2; excl++) {
        kiln_graph *g = kiln_graph_new();
        kiln_value x = kiln_placeholder(g, "x", KILN_F64, 1, (int64_t[]){3});
        kiln_attrs *a = kiln_attrs_new();
        kiln_attrs_int(a, "axis", 0);
        kiln_attrs_int(a, "exclusive", excl);
        kiln_value y = kiln_reduce_sum(g, op_attrs(g, "CumProd", &x, 1, a), NULL, 0, 0);
        kiln_value d;
        kiln_status *st = kiln_status_new();
        kiln_gradients(g, &y, 1, &x, 1, NULL, &d, st);
        assert_int_equal(kiln_status_code(st), KILN_OK);
        kiln_status_free(st);
        kiln_tensor *f = tu_f64(1, (int64_t[]){3}, (double[]){2, 0, 3});
        for (int b = 0; b < 2; b++) {
            kiln_tensor *r = NULL;
            assert_int_equal(tu_run_backend(g, b ? KILN_BACKEND_DEFAULT : KILN_BACKEND_REFERENCE, 1, &d, &r, 1, &x,
                                            &f, NULL, 0),
                             KILN_OK);
            double want[2][3] = {{1, 8, 0}, {1, 2, 0}};
            tu_assert_close(r, want[excl], 3, 0, 0);
            kiln_tensor_free(r);
        }
        kiln_tensor_free(f);
        kiln_graph_free(g);
    }
}

static kiln_value build_cumprod(kiln_graph *g, const kiln_value *x, const void *arg)
{
    int w = *(const int *)arg; /* bit 0 exclusive, bit 1 reverse, bit 2 axis */
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_int(a, "axis", (w & 4) ? 1 : 0);
    kiln_attrs_int(a, "exclusive", w & 1);
    kiln_attrs_int(a, "reverse", (w >> 1) & 1);
    return op_attrs(g, "CumProd", x, 1, a);
}

static kiln_value build_scatter_nd(kiln_graph *g, const kiln_value *x, const void *arg)
{
    int add = *(const int *)arg;
    /* data [3,2,4]; index tuples of length 2 address rows of 4: updates
     * [2,4]. "none": distinct tuples (one negative), "add": a repeated one */
    kiln_value idx = add ? int_const(g, 2, (int64_t[]){2, 2}, (int64_t[]){2, 1, 2, 1})
                         : int_const(g, 2, (int64_t[]){2, 2}, (int64_t[]){0, 1, -1, 0});
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_string(a, "reduction", add ? "add" : "none");
    kiln_value y = op_attrs(g, "ScatterND", (kiln_value[]){x[0], idx, x[1]}, 3, a);
    return kiln_mul(g, y, y);
}

static kiln_value build_onehot(kiln_graph *g, const kiln_value *x, const void *arg)
{
    int axis = *(const int *)arg;
    kiln_value idx = int_const(g, 2, (int64_t[]){2, 3}, (int64_t[]){0, 3, -1, 2, 2, 7});
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_int(a, "depth", 4);
    kiln_attrs_int(a, "axis", axis);
    kiln_value y = op_attrs(g, "OneHot", (kiln_value[]){idx, x[0]}, 2, a);
    return kiln_mul(g, y, y);
}

static void test_index_ops_more(void **state)
{
    (void)state;
    spec s = S2(3, 4, -2, 2);
    for (int w = 0; w < 8; w++) gradcheck("CumProd", build_cumprod, &w, 1, &s);
    spec sc[2] = {S3(3, 2, 4, -2, 2), S2(2, 4, -2, 2)};
    for (int add = 0; add < 2; add++) gradcheck(add ? "ScatterND add" : "ScatterND none", build_scatter_nd, &add, 2, sc);
    spec so = S1(2, -2, 2);
    for (int axis = 0; axis < 2; axis++) gradcheck("OneHot values", build_onehot, (int[]){axis == 0 ? 0 : -1}, 1, &so);

    /* compiled gradients equal the reference ones */
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){3, 4});
    int w3 = 3;
    kiln_value p = build_cumprod(g, &x, &w3);
    kiln_value loss = kiln_reduce_sum(g, kiln_mul(g, p, kiln_tanh(g, p)), NULL, 0, 0);
    kiln_value d;
    kiln_status *st = kiln_status_new();
    kiln_gradients(g, &loss, 1, &x, 1, NULL, &d, st);
    assert_int_equal(kiln_status_code(st), KILN_OK);
    kiln_status_free(st);
    kiln_tensor *f = tu_random(KILN_F32, 2, (int64_t[]){3, 4}, -2, 2, 78);
    tu_diff(g, 1, &d, 1, &x, &f, 1e-5, 1e-6);
    kiln_tensor_free(f);
    kiln_graph_free(g);
}

/* ---- GridSample ---- */

typedef struct {
    const char *mode, *pad;
    int align;
} gs_arg;

static kiln_value build_grid_sample(kiln_graph *g, const kiln_value *x, const void *arg)
{
    const gs_arg *p = arg;
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_string(a, "mode", p->mode);
    kiln_attrs_string(a, "padding_mode", p->pad);
    kiln_attrs_int(a, "align_corners", p->align);
    return op_attrs(g, "GridSample", x, 2, a);
}

/* Both gradients, every mode and padding, 2-D and 3-D, against finite
 * differences (grid points in [-1.15, 1.15], so some fall outside and
 * exercise the padding); then the compiled gradients against the
 * reference ones. */
static void test_grid_sample(void **state)
{
    (void)state;
    static const char *const modes[] = {"linear", "cubic", "nearest"}, *const pads[] = {"zeros", "border", "reflection"};
    for (int m = 0; m < 3; m++)
        for (int p = 0; p < 3; p++)
            for (int al = 0; al < 2; al++) {
                gs_arg a = {modes[m], pads[p], al};
                char what[64];
                snprintf(what, sizeof what, "GridSample %s %s align %d", modes[m], pads[p], al);
                spec s2[2] = {S4(2, 2, 4, 5, -2, 2), S4(2, 3, 2, 2, -1.15, 1.15)};
                gradcheck(what, build_grid_sample, &a, 2, s2);
            }
    gs_arg a3 = {"linear", "reflection", 0}, c3 = {"cubic", "zeros", 1};
    spec s3[2] = {{5, {1, 2, 3, 4, 3}, -2, 2}, {5, {1, 2, 2, 2, 3}, -1.15, 1.15}};
    gradcheck("GridSample 3-D linear reflection", build_grid_sample, &a3, 2, s3);
    gradcheck("GridSample 3-D cubic zeros", build_grid_sample, &c3, 2, s3);
    /* 3-D, compiled against reference */
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 5, (int64_t[]){1, 2, 3, 4, 3});
    kiln_value grid = kiln_placeholder(g, "grid", KILN_F32, 5, (int64_t[]){1, 2, 2, 2, 3});
    kiln_value in[2] = {x, grid};
    kiln_value y = build_grid_sample(g, in, &a3);
    kiln_value loss = kiln_reduce_sum(g, kiln_mul(g, y, kiln_tanh(g, y)), NULL, 0, 0);
    kiln_value d[2];
    kiln_status *st = kiln_status_new();
    kiln_gradients(g, &loss, 1, in, 2, NULL, d, st);
    assert_int_equal(kiln_status_code(st), KILN_OK);
    kiln_status_free(st);
    kiln_tensor *f[2] = {tu_random(KILN_F32, 5, (int64_t[]){1, 2, 3, 4, 3}, -2, 2, 91),
                         tu_random(KILN_F32, 5, (int64_t[]){1, 2, 2, 2, 3}, -1.15, 1.15, 92)};
    tu_diff(g, 2, d, 2, in, f, 1e-5, 1e-6);
    kiln_tensor_free(f[0]);
    kiln_tensor_free(f[1]);
    kiln_graph_free(g);

    /* 2-D cubic with border padding, compiled against reference */
    gs_arg a2 = {"cubic", "border", 1};
    g = kiln_graph_new();
    x = kiln_placeholder(g, "x", KILN_F32, 4, (int64_t[]){2, 3, 5, 4});
    grid = kiln_placeholder(g, "grid", KILN_F32, 4, (int64_t[]){2, 3, 3, 2});
    in[0] = x, in[1] = grid;
    y = build_grid_sample(g, in, &a2);
    loss = kiln_reduce_sum(g, kiln_mul(g, y, kiln_tanh(g, y)), NULL, 0, 0);
    st = kiln_status_new();
    kiln_gradients(g, &loss, 1, in, 2, NULL, d, st);
    assert_int_equal(kiln_status_code(st), KILN_OK);
    kiln_status_free(st);
    f[0] = tu_random(KILN_F32, 4, (int64_t[]){2, 3, 5, 4}, -2, 2, 93);
    f[1] = tu_random(KILN_F32, 4, (int64_t[]){2, 3, 3, 2}, -1.15, 1.15, 94);
    tu_diff(g, 2, d, 2, in, f, 1e-5, 1e-6);
    kiln_tensor_free(f[0]);
    kiln_tensor_free(f[1]);
    kiln_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_conv2d),
        TU_TEST(test_conv_transpose2d),
        TU_TEST(test_pools),
        TU_TEST(test_global_average_pool),
        TU_TEST(test_batch_norm),
        TU_TEST(test_layer_norm),
        TU_TEST(test_gather),
        TU_TEST(test_split),
        TU_TEST(test_pad),
        TU_TEST(test_tile),
        TU_TEST(test_reduce_extreme_prod),
        TU_TEST(test_reduce_hand_cases),
        TU_TEST(test_math_unary),
        TU_TEST(test_mod),
        TU_TEST(test_zero_gradient_ops),
        TU_TEST(test_second_order),
        TU_TEST(test_index_ops_more),
        TU_TEST(test_grid_sample),
        TU_TEST(test_errors),
        TU_TEST(test_conv2d_filter_grad_op),
        TU_TEST(test_pool_grad_ops),
        TU_TEST(test_gather_grad_op),
        TU_TEST(test_compiled_cnn),
        TU_TEST(test_compiled_misc),
        TU_TEST(test_symbolic_batch),
        TU_TEST(test_allocation_failures),
        TU_TEST(test_index_ops),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    printf("%ld gradient elements checked against finite differences\n", fd_checked);
    return rc;
}
