/* test_gradients.c -- kiln_gradients and the gradient rules: every rule
 * against central finite differences in f64 (on random inputs, several
 * shapes, broadcasting and reduction axes) with the reference backend,
 * second order, zero gradients, fan-out, integer paths, the error listing
 * ops without rules, and compiled vs reference gradients. */
#include "common/testutil.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "ir.h"

#define MAXIN 4

typedef kiln_value (*build_fn)(kiln_graph *g, const kiln_value *x, const void *arg);

typedef struct {
    int rank;
    int64_t dims[4];
    double lo, hi;
} spec;

#define S0(lo, hi) {0, {0}, lo, hi}
#define S1(a, lo, hi) {1, {a}, lo, hi}
#define S2(a, b, lo, hi) {2, {a, b}, lo, hi}
#define S3(a, b, c, lo, hi) {3, {a, b, c}, lo, hi}
#define S4(a, b, c, d, lo, hi) {4, {a, b, c, d}, lo, hi}

static uint64_t seed_counter = 1;
static long fd_checked; /* elements compared, reported at the end */

static double run_scalar(kiln_graph *g, kiln_value v, int n, const kiln_value *x, kiln_tensor *const *feeds)
{
    kiln_tensor *r = tu_run(g, v, n, x, feeds);
    double d = ir_load_f64(r->dtype, r->data, 0);
    kiln_tensor_free(r);
    return d;
}

/* L = ReduceSum(f(x) * w) with a fixed random w; compares dL/dx from
 * kiln_gradients with central differences of L. */
static void gradcheck_eps(const char *what, build_fn f, const void *arg, int nin, const spec *sp,
                          double eps, double rtol, double atol)
{
    kiln_graph *g = kiln_graph_new();
    kiln_value x[MAXIN], dx[MAXIN];
    kiln_tensor *feed[MAXIN];
    uint64_t seed = seed_counter++ * 1000;
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
    if (kiln_value_dtype(g, loss) != KILN_F64) loss = kiln_cast(g, loss, KILN_F64);
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

/* ---- elementwise ---- */

static kiln_value build_op1(kiln_graph *g, const kiln_value *x, const void *arg)
{
    return kiln_op(g, arg, x, 1, NULL);
}

static kiln_value build_op2(kiln_graph *g, const kiln_value *x, const void *arg)
{
    return kiln_op(g, arg, x, 2, NULL);
}

static void test_unary(void **state)
{
    (void)state;
    static const struct {
        const char *op;
        double lo, hi;
    } ops[] = {{"Identity", -2, 2}, {"Neg", -2, 2}, {"Exp", -2, 2}, {"Log", 0.5, 3},
               {"Sqrt", 0.5, 3}, {"Rsqrt", 0.5, 3}, {"Reciprocal", 0.5, 3}, {"Tanh", -2, 2},
               {"Sigmoid", -3, 3}, {"Relu", -2, 2}, {"Softplus", -3, 3}, {"Erf", -2, 2},
               {"Gelu", -3, 3}, {"Abs", -2, 2}, {"LeakyRelu", -2, 2}, {"Elu", -2, 2}};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        spec shapes[3] = {S0(ops[i].lo, ops[i].hi), S1(5, ops[i].lo, ops[i].hi),
                          S3(2, 3, 2, ops[i].lo, ops[i].hi)};
        for (int s = 0; s < 3; s++) gradcheck(ops[i].op, build_op1, ops[i].op, 1, &shapes[s]);
    }
}

static void test_binary_broadcast(void **state)
{
    (void)state;
    static const struct {
        const char *op;
        double alo, ahi, blo, bhi;
    } ops[] = {{"Add", -2, 2, -2, 2}, {"Sub", -2, 2, -2, 2}, {"Mul", -2, 2, -2, 2},
               {"Div", -2, 2, 0.5, 2}, {"Pow", 0.5, 2, -1.5, 1.5}, {"Maximum", -2, 2, -2, 2},
               {"Minimum", -2, 2, -2, 2}};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        double a0 = ops[i].alo, a1 = ops[i].ahi, b0 = ops[i].blo, b1 = ops[i].bhi;
        spec pairs[5][2] = {{S2(2, 3, a0, a1), S2(2, 3, b0, b1)},
                            {S2(2, 3, a0, a1), S1(3, b0, b1)},
                            {S3(2, 1, 4, a0, a1), S2(3, 1, b0, b1)},
                            {S0(a0, a1), S2(2, 2, b0, b1)},
                            {S2(3, 1, a0, a1), S3(2, 1, 1, b0, b1)}};
        for (int s = 0; s < 5; s++) gradcheck(ops[i].op, build_op2, ops[i].op, 2, pairs[s]);
    }
}

static kiln_value build_leaky(kiln_graph *g, const kiln_value *x, const void *arg)
{
    (void)arg;
    return kiln_leaky_relu(g, x[0], 0.2);
}

static kiln_value build_elu(kiln_graph *g, const kiln_value *x, const void *arg)
{
    (void)arg;
    return kiln_elu(g, x[0], 1.5);
}

static kiln_value build_gelu_tanh(kiln_graph *g, const kiln_value *x, const void *arg)
{
    (void)arg;
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_string(a, "approximate", "tanh");
    kiln_value y = kiln_op(g, "Gelu", x, 1, a);
    kiln_attrs_free(a);
    return y;
}

static kiln_value build_clip(kiln_graph *g, const kiln_value *x, const void *arg)
{
    (void)arg;
    return kiln_clip(g, x[0], -0.5, 0.7);
}

static kiln_value build_cast(kiln_graph *g, const kiln_value *x, const void *arg)
{
    (void)arg;
    return kiln_cast(g, kiln_mul(g, kiln_cast(g, x[0], KILN_F32), kiln_scalar(g, KILN_F32, 3)), KILN_F64);
}

static kiln_value build_where(kiln_graph *g, const kiln_value *x, const void *arg)
{
    (void)arg;
    kiln_tensor *c = tu_bool(2, (int64_t[]){2, 3}, (uint8_t[]){1, 0, 0, 1, 1, 0});
    kiln_value cond = kiln_constant(g, NULL, c);
    kiln_tensor_free(c);
    return kiln_where(g, cond, x[0], x[1]);
}

static void test_unary_attrs(void **state)
{
    (void)state;
    spec s = S2(3, 4, -2, 2);
    gradcheck("LeakyRelu(0.2)", build_leaky, NULL, 1, &s);
    gradcheck("Elu(1.5)", build_elu, NULL, 1, &s);
    gradcheck("Gelu(tanh)", build_gelu_tanh, NULL, 1, &s);
    gradcheck("Clip", build_clip, NULL, 1, &s);
    /* through f32 and back: finite differences need a larger step */
    gradcheck_eps("Cast", build_cast, NULL, 1, &s, 1e-3, 1e-3, 1e-4);
    spec w[2] = {S2(2, 3, -2, 2), S1(3, -2, 2)};
    gradcheck("Where", build_where, NULL, 2, w);
}

/* ---- MatMul, Gemm ---- */

typedef struct {
    int ta, tb;
} mm_arg;

static kiln_value build_matmul(kiln_graph *g, const kiln_value *x, const void *arg)
{
    const mm_arg *m = arg;
    return kiln_matmul_t(g, x[0], x[1], m->ta, m->tb);
}

static void test_matmul(void **state)
{
    (void)state;
    mm_arg flags[4] = {{0, 0}, {0, 1}, {1, 0}, {1, 1}};
    for (int f = 0; f < 4; f++) {
        spec s[2] = {S2(2, 3, -1, 1), S2(3, 4, -1, 1)};
        if (flags[f].ta) s[0] = (spec)S2(3, 2, -1, 1);
        if (flags[f].tb) s[1] = (spec)S2(4, 3, -1, 1);
        gradcheck("MatMul 2-D", build_matmul, &flags[f], 2, s);
        spec bs[2] = {S4(2, 1, 2, 3, -1, 1), S3(3, 3, 2, -1, 1)};
        if (flags[f].ta) bs[0] = (spec)S4(2, 1, 3, 2, -1, 1);
        if (flags[f].tb) bs[1] = (spec)S3(3, 2, 3, -1, 1);
        gradcheck("MatMul batch broadcast", build_matmul, &flags[f], 2, bs);
    }
    spec v1[2] = {S1(3, -1, 1), S2(3, 4, -1, 1)};
    spec v2[2] = {S2(2, 3, -1, 1), S1(3, -1, 1)};
    spec v3[2] = {S1(3, -1, 1), S1(3, -1, 1)};
    spec v4[2] = {S3(2, 2, 3, -1, 1), S1(3, -1, 1)};
    spec v5[2] = {S1(3, -1, 1), S3(2, 3, 2, -1, 1)};
    gradcheck("MatMul 1-D @ 2-D", build_matmul, &flags[0], 2, v1);
    gradcheck("MatMul 2-D @ 1-D", build_matmul, &flags[0], 2, v2);
    gradcheck("MatMul 1-D @ 1-D", build_matmul, &flags[0], 2, v3);
    gradcheck("MatMul 3-D @ 1-D", build_matmul, &flags[0], 2, v4);
    gradcheck("MatMul 1-D @ 3-D", build_matmul, &flags[0], 2, v5);
}

typedef struct {
    int ta, tb, has_c;
    double alpha, beta;
} gemm_arg;

static kiln_value build_gemm(kiln_graph *g, const kiln_value *x, const void *arg)
{
    const gemm_arg *m = arg;
    return kiln_gemm(g, x[0], x[1], m->has_c ? x[2] : kiln_value_invalid(), m->alpha, m->beta, m->ta, m->tb);
}

static void test_gemm(void **state)
{
    (void)state;
    gemm_arg args[] = {{0, 0, 1, 1, 1}, {1, 0, 1, 0.5, 2}, {0, 1, 1, 2, -1}, {1, 1, 0, 1.5, 1}};
    spec cs[] = {S1(4, -1, 1), S2(2, 4, -1, 1), S2(1, 4, -1, 1), S0(-1, 1)};
    for (int i = 0; i < 4; i++) {
        spec s[3] = {S2(2, 3, -1, 1), S2(3, 4, -1, 1), cs[i]};
        if (args[i].ta) s[0] = (spec)S2(3, 2, -1, 1);
        if (args[i].tb) s[1] = (spec)S2(4, 3, -1, 1);
        gradcheck("Gemm", build_gemm, &args[i], args[i].has_c ? 3 : 2, s);
    }
}

/* ---- reductions, softmax ---- */

typedef struct {
    const char *op;
    int naxes;
    int64_t axes[3];
    int keepdims;
} axes_arg;

static kiln_value build_reduce(kiln_graph *g, const kiln_value *x, const void *arg)
{
    const axes_arg *r = arg;
    kiln_attrs *a = kiln_attrs_new();
    if (r->naxes >= 0) kiln_attrs_ints(a, "axes", r->axes, r->naxes);
    kiln_attrs_int(a, "keepdims", r->keepdims);
    kiln_value y = kiln_op(g, r->op, x, 1, a);
    kiln_attrs_free(a);
    return y;
}

static void test_reduce(void **state)
{
    (void)state;
    const char *ops[] = {"ReduceSum", "ReduceMean"};
    spec s = S3(2, 3, 4, -2, 2);
    for (int o = 0; o < 2; o++)
        for (int keep = 0; keep < 2; keep++) {
            axes_arg args[] = {{ops[o], -1, {0}, keep}, {ops[o], 1, {1}, keep},
                               {ops[o], 2, {0, 2}, keep}, {ops[o], 1, {-1}, keep},
                               {ops[o], 0, {0}, keep}};
            for (int i = 0; i < 5; i++) gradcheck(ops[o], build_reduce, &args[i], 1, &s);
        }
}

static kiln_value build_softmax(kiln_graph *g, const kiln_value *x, const void *arg)
{
    const axes_arg *r = arg;
    return strcmp(r->op, "Softmax") == 0 ? kiln_softmax(g, x[0], (int)r->axes[0])
                                         : kiln_log_softmax(g, x[0], (int)r->axes[0]);
}

static void test_softmax(void **state)
{
    (void)state;
    spec s = S3(2, 3, 4, -2, 2);
    const char *ops[] = {"Softmax", "LogSoftmax"};
    for (int o = 0; o < 2; o++)
        for (int ax = -1; ax < 3; ax++) {
            axes_arg a = {ops[o], 1, {ax}, 1};
            gradcheck(ops[o], build_softmax, &a, 1, &s);
        }
}

/* ---- shape ops ---- */

static kiln_value build_shape_ops(kiln_graph *g, const kiln_value *x, const void *arg)
{
    int which = *(const int *)arg;
    switch (which) {
    case 0: return kiln_transpose(g, x[0], (int64_t[]){2, 0, 1}, 3);
    case 1: return kiln_transpose(g, x[0], NULL, 0);
    case 2: return kiln_reshape(g, x[0], (int64_t[]){6, -1}, 2);
    case 3: return kiln_flatten(g, x[0], 2);
    case 4: return kiln_unsqueeze(g, x[0], (int64_t[]){0, 2}, 2);
    case 5: return kiln_expand(g, kiln_reduce_sum(g, x[0], (int64_t[]){1}, 1, 1), (int64_t[]){2, 2, 3, 4}, 4);
    case 6: return kiln_squeeze(g, kiln_reduce_sum(g, x[0], (int64_t[]){1}, 1, 1), (int64_t[]){1}, 1);
    default: return kiln_value_invalid();
    }
}

static void test_shape_ops(void **state)
{
    (void)state;
    spec s = S3(2, 3, 4, -2, 2);
    for (int which = 0; which < 7; which++) gradcheck("shape op", build_shape_ops, &which, 1, &s);
}

static kiln_value build_concat(kiln_graph *g, const kiln_value *x, const void *arg)
{
    return kiln_concat(g, x, 3, *(const int *)arg);
}

static void test_concat(void **state)
{
    (void)state;
    int axis = 1;
    spec s[3] = {S2(2, 1, -1, 1), S2(2, 3, -1, 1), S2(2, 2, -1, 1)};
    gradcheck("Concat axis 1", build_concat, &axis, 3, s);
    axis = -3;
    spec t[3] = {S3(1, 2, 2, -1, 1), S3(2, 2, 2, -1, 1), S3(1, 2, 2, -1, 1)};
    gradcheck("Concat axis -3", build_concat, &axis, 3, t);
}

static kiln_value build_slice(kiln_graph *g, const kiln_value *x, const void *arg)
{
    int which = *(const int *)arg;
    kiln_attrs *a = kiln_attrs_new();
    if (which == 0) {
        kiln_attrs_ints(a, "starts", (int64_t[]){1, 0}, 2);
        kiln_attrs_ints(a, "ends", (int64_t[]){3, -1}, 2);
        kiln_attrs_ints(a, "axes", (int64_t[]){0, 1}, 2);
    } else if (which == 1) {
        kiln_attrs_ints(a, "starts", (int64_t[]){-3}, 1);
        kiln_attrs_ints(a, "ends", (int64_t[]){100}, 1);
        kiln_attrs_ints(a, "axes", (int64_t[]){-1}, 1);
    } else if (which == 2) { /* step 2 on rows, unit step on columns */
        kiln_attrs_ints(a, "starts", (int64_t[]){0, 1}, 2);
        kiln_attrs_ints(a, "ends", (int64_t[]){4, 4}, 2);
        kiln_attrs_ints(a, "axes", (int64_t[]){0, 1}, 2);
        kiln_attrs_ints(a, "steps", (int64_t[]){2, 1}, 2);
    } else if (which == 3) { /* reversed columns with step -2, rows step 3 */
        kiln_attrs_ints(a, "starts", (int64_t[]){-1, 1}, 2);
        kiln_attrs_ints(a, "ends", (int64_t[]){-100, 100}, 2);
        kiln_attrs_ints(a, "axes", (int64_t[]){1, 0}, 2);
        kiln_attrs_ints(a, "steps", (int64_t[]){-2, 3}, 2);
    } else { /* the whole axis reversed */
        kiln_attrs_ints(a, "starts", (int64_t[]){-1}, 1);
        kiln_attrs_ints(a, "ends", (int64_t[]){INT64_MIN}, 1);
        kiln_attrs_ints(a, "axes", (int64_t[]){0}, 1);
        kiln_attrs_ints(a, "steps", (int64_t[]){-1}, 1);
    }
    kiln_value y = kiln_op(g, "Slice", x, 1, a);
    kiln_attrs_free(a);
    return y;
}

static void test_slice(void **state)
{
    (void)state;
    spec s = S2(4, 5, -1, 1);
    for (int which = 0; which < 5; which++) gradcheck("Slice", build_slice, &which, 1, &s);

    /* by hand: x[1::2] of [a, b, c, d, e] is [b, d]; with dy = [1, 2] the
     * gradient is [0, 1, 0, 2, 0], compiled and reference */
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 1, (int64_t[]){5});
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_ints(a, "starts", (int64_t[]){1}, 1);
    kiln_attrs_ints(a, "ends", (int64_t[]){5}, 1);
    kiln_attrs_ints(a, "steps", (int64_t[]){2}, 1);
    kiln_value y = kiln_op(g, "Slice", &x, 1, a);
    kiln_attrs_free(a);
    kiln_tensor *dyt = tu_f32(1, (int64_t[]){2}, (float[]){1, 2});
    kiln_value dy = kiln_constant(g, NULL, dyt), d;
    kiln_tensor_free(dyt);
    kiln_status *st = kiln_status_new();
    kiln_gradients(g, &y, 1, &x, 1, &dy, &d, st);
    assert_int_equal(kiln_status_code(st), KILN_OK);
    kiln_status_free(st);
    kiln_tensor *f = tu_f32(1, (int64_t[]){5}, (float[]){5, 6, 7, 8, 9});
    for (int b = 0; b < 2; b++) {
        kiln_tensor *r = NULL;
        assert_int_equal(tu_run_backend(g, b ? KILN_BACKEND_DEFAULT : KILN_BACKEND_REFERENCE, 1, &d, &r, 1, &x, &f,
                                        NULL, 0),
                         KILN_OK);
        tu_assert_close(r, (double[]){0, 1, 0, 2, 0}, 5, 0, 0);
        kiln_tensor_free(r);
    }
    kiln_tensor_free(f);
    kiln_graph_free(g);
}

/* ---- composite graphs and second order ---- */

static kiln_value build_mlp(kiln_graph *g, const kiln_value *x, const void *arg)
{
    (void)arg;
    kiln_value h = kiln_tanh(g, kiln_add(g, kiln_matmul(g, x[0], x[1]), x[2]));
    return kiln_log_softmax(g, kiln_matmul(g, h, x[3]), -1);
}

static void test_mlp(void **state)
{
    (void)state;
    spec s[4] = {S2(3, 4, -1, 1), S2(4, 5, -1, 1), S1(5, -1, 1), S2(5, 2, -1, 1)};
    gradcheck("MLP", build_mlp, NULL, 4, s);
}

/* d/dx of (the gradient of sum(f(x)) wrt x), checked by finite differences
 * of that gradient: the gradcheck's "y" is itself a gradient. */
static kiln_value build_grad_of(kiln_graph *g, const kiln_value *x, const void *arg)
{
    int which = *(const int *)arg, n = which == 0 ? 1 : 2;
    kiln_value y;
    if (which == 0)
        y = kiln_mul(g, kiln_tanh(g, x[0]), x[0]);
    else
        y = kiln_matmul(g, kiln_tanh(g, kiln_matmul(g, x[0], x[1])), x[1]);
    kiln_value s = kiln_reduce_sum(g, kiln_mul(g, y, y), NULL, 0, 0), d[2];
    kiln_status *st = kiln_status_new();
    kiln_gradients(g, &s, 1, x, n, NULL, d, st);
    assert_int_equal(kiln_status_code(st), KILN_OK);
    kiln_status_free(st);
    return n == 1 ? d[0] : kiln_add(g, kiln_reduce_sum(g, d[0], NULL, 0, 0), kiln_reduce_sum(g, d[1], NULL, 0, 0));
}

static void test_second_order(void **state)
{
    (void)state;
    int which = 0;
    spec s = S2(2, 3, -2, 2);
    gradcheck("d2 tanh(x)*x", build_grad_of, &which, 1, &s);
    which = 1;
    spec m[2] = {S2(3, 3, -1, 1), S2(3, 3, -1, 1)};
    gradcheck("d2 matmul-tanh-matmul", build_grad_of, &which, 2, m);
}

static void test_second_order_values(void **state)
{
    (void)state;
    /* f = tanh(x) * x; f' = tanh + x (1 - tanh^2); f'' = 2 (1 - t^2) (1 - x t) */
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F64, 1, (int64_t[]){3});
    kiln_value s = kiln_reduce_sum(g, kiln_mul(g, kiln_tanh(g, x), x), NULL, 0, 0), d1, d2;
    kiln_gradients(g, &s, 1, &x, 1, NULL, &d1, NULL);
    kiln_value s1 = kiln_reduce_sum(g, d1, NULL, 0, 0);
    kiln_gradients(g, &s1, 1, &x, 1, NULL, &d2, NULL);
    double xv[3] = {-1.0, 0.25, 1.5}, want1[3], want2[3];
    for (int i = 0; i < 3; i++) {
        double t = tanh(xv[i]);
        want1[i] = t + xv[i] * (1 - t * t);
        want2[i] = 2 * (1 - t * t) * (1 - xv[i] * t);
    }
    kiln_tensor *fx = tu_f64(1, (int64_t[]){3}, xv);
    kiln_tensor *r1 = tu_run(g, d1, 1, &x, &fx), *r2 = tu_run(g, d2, 1, &x, &fx);
    tu_assert_close(r1, want1, 3, 1e-12, 1e-12);
    tu_assert_close(r2, want2, 3, 1e-12, 1e-12);
    kiln_tensor_free(r1);
    kiln_tensor_free(r2);
    kiln_tensor_free(fx);
    kiln_graph_free(g);
}

/* ---- semantics ---- */

static void test_unused_x_gets_zeros(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value a = kiln_placeholder(g, "a", KILN_F32, 1, (int64_t[]){2});
    kiln_value b = kiln_placeholder(g, "b", KILN_F32, 2, (int64_t[]){2, 3});
    kiln_value y = kiln_mul(g, a, kiln_scalar(g, KILN_F32, 2));
    kiln_value d[2];
    kiln_status *st = kiln_status_new();
    kiln_gradients(g, &y, 1, (kiln_value[]){a, b}, 2, NULL, d, st);
    assert_int_equal(kiln_status_code(st), KILN_OK);
    assert_string_equal(kiln_value_op_name(g, d[1]), "Constant");
    kiln_tensor *fa = tu_f32(1, (int64_t[]){2}, (float[]){1, NAN});
    kiln_tensor *fb = tu_f32(2, (int64_t[]){2, 3}, (float[]){NAN, INFINITY, 1, 2, 3, 4});
    kiln_tensor *ra = tu_run(g, d[0], 2, (kiln_value[]){a, b}, (kiln_tensor *[]){fa, fb});
    kiln_tensor *rb = tu_run(g, d[1], 2, (kiln_value[]){a, b}, (kiln_tensor *[]){fa, fb});
    tu_assert_close(ra, (double[]){2, 2}, 2, 0, 0);
    tu_assert_shape(rb, KILN_F32, 2, (int64_t[]){2, 3});
    tu_assert_close(rb, (double[]){0, 0, 0, 0, 0, 0}, 6, 0, 0);
    kiln_tensor_free(ra);
    kiln_tensor_free(rb);
    kiln_tensor_free(fa);
    kiln_tensor_free(fb);
    kiln_status_free(st);
    kiln_graph_free(g);
}

static void test_fanout_and_int_paths(void **state)
{
    (void)state;
    /* y = x*x + x + f64(i32(x)) * x_stop, where the integer path carries
     * nothing: dy/dx = 2x + 1 + 0 */
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F64, 1, (int64_t[]){3});
    kiln_value ip = kiln_cast(g, kiln_cast(g, x, KILN_I32), KILN_F64);
    kiln_value am = kiln_cast(g, kiln_argmax(g, x, 0, 1), KILN_F64);
    kiln_value y = kiln_add(g, kiln_add(g, kiln_mul(g, x, x), x), kiln_add(g, ip, am));
    kiln_tensor *dyt = tu_f64(1, (int64_t[]){3}, (double[]){1, 2, 3});
    kiln_value dy = kiln_constant(g, NULL, dyt);
    kiln_tensor_free(dyt);
    kiln_value d;
    kiln_status *st = kiln_status_new();
    kiln_gradients(g, &y, 1, &x, 1, &dy, &d, st);
    assert_int_equal(kiln_status_code(st), KILN_OK);
    kiln_tensor *fx = tu_f64(1, (int64_t[]){3}, (double[]){0.5, -2, 3});
    kiln_tensor *r = tu_run(g, d, 1, &x, &fx);
    tu_assert_close(r, (double[]){1 * 2.0, 2 * -3.0, 3 * 7.0}, 3, 1e-12, 0);
    kiln_tensor_free(r);
    kiln_tensor_free(fx);
    kiln_status_free(st);
    kiln_graph_free(g);
}

static void test_multiple_ys_and_intermediate_x(void **state)
{
    (void)state;
    /* ys = {sum(h), sum(h*h)}, h = 3x, xs = {x, h}: d/dh = 1 + 2h, d/dx = 3 (1 + 2h) */
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F64, 1, (int64_t[]){2});
    kiln_value h = kiln_mul(g, x, kiln_scalar(g, KILN_F64, 3));
    kiln_value ys[2] = {kiln_reduce_sum(g, h, NULL, 0, 0), kiln_reduce_sum(g, kiln_mul(g, h, h), NULL, 0, 0)};
    kiln_value d[2];
    kiln_status *st = kiln_status_new();
    kiln_gradients(g, ys, 2, (kiln_value[]){x, h}, 2, NULL, d, st);
    assert_int_equal(kiln_status_code(st), KILN_OK);
    kiln_tensor *fx = tu_f64(1, (int64_t[]){2}, (double[]){1, -1});
    kiln_tensor *rx = tu_run(g, d[0], 1, &x, &fx), *rh = tu_run(g, d[1], 1, &x, &fx);
    tu_assert_close(rh, (double[]){7, -5}, 2, 1e-12, 0);
    tu_assert_close(rx, (double[]){21, -15}, 2, 1e-12, 0);
    kiln_tensor_free(rx);
    kiln_tensor_free(rh);
    kiln_tensor_free(fx);
    kiln_status_free(st);
    kiln_graph_free(g);
}

/* MaxPool2DSelect (a backward op, the adjoint of MaxPool2DGrad) has no
 * gradient rule, so it is listed; ops with rules are not. */
static kiln_value maxpool_select_node(kiln_graph *g, kiln_value x, kiln_value v)
{
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_ints(a, "kernel_shape", (int64_t[]){2, 2}, 2);
    kiln_value r = kiln_op(g, "MaxPool2DSelect", (kiln_value[]){x, v}, 2, a);
    kiln_attrs_free(a);
    return r;
}

static void test_missing_rules_listed(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 4, (int64_t[]){1, 1, 3, 3});
    kiln_value m = maxpool_select_node(g, x, x);
    kiln_value m2 = maxpool_select_node(g, x, kiln_tanh(g, x)); /* a second one: listed once */
    kiln_value t = kiln_reduce_max(g, kiln_tile(g, x, (int64_t[]){1, 1, 1, 2}, 4), NULL, 0, 0);
    kiln_value y = kiln_add(g, kiln_add(g, kiln_reduce_sum(g, m, NULL, 0, 0), kiln_reduce_sum(g, m2, NULL, 0, 0)),
                            kiln_reduce_sum(g, t, NULL, 0, 0));
    assert_null(kiln_graph_error(g));
    kiln_value d = {0, 0};
    kiln_status *st = kiln_status_new();
    kiln_gradients(g, &y, 1, &x, 1, NULL, &d, st);
    assert_int_equal(kiln_status_code(st), KILN_ERR_UNIMPLEMENTED);
    const char *msg = kiln_status_message(st);
    assert_non_null(strstr(msg, "MaxPool2DSelect"));
    assert_non_null(strstr(msg, "1 op on the path"));
    assert_null(strstr(msg, "Tile"));
    assert_null(strstr(msg, "ReduceMax"));
    assert_null(strstr(strstr(msg, "MaxPool2DSelect (") + 1, "MaxPool2DSelect ("));
    assert_false(kiln_value_ok(d));
    kiln_status_free(st);
    kiln_graph_free(g);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_I32, 1, (int64_t[]){2});
    kiln_value f = kiln_placeholder(g, "f", KILN_F32, 1, (int64_t[]){-1});
    kiln_value y = kiln_cast(g, x, KILN_F32), d;
    kiln_status *st = kiln_status_new();
    kiln_gradients(g, &y, 1, &x, 1, NULL, &d, st);
    assert_int_equal(kiln_status_code(st), KILN_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(kiln_status_message(st), "xs[0]"));
    /* a symbolic y needs dys */
    kiln_value e = kiln_exp(g, f);
    kiln_gradients(g, &e, 1, &f, 1, NULL, &d, st);
    assert_int_equal(kiln_status_code(st), KILN_ERR_UNIMPLEMENTED);
    kiln_gradients(g, &e, 1, &f, 1, &e, &d, st);
    assert_int_equal(kiln_status_code(st), KILN_OK);
    kiln_tensor *ff = tu_f32(1, (int64_t[]){2}, (float[]){0, 1});
    kiln_tensor *r = tu_run(g, d, 1, &f, &ff);
    tu_assert_close(r, (double[]){1, exp(2.0)}, 2, 1e-6, 0);
    kiln_tensor_free(r);
    kiln_tensor_free(ff);
    kiln_status_free(st);
    kiln_graph_free(g);
}

/* ---- compiled backend gives the same gradients ---- */

static void test_compiled_matches_reference(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){4, 3});
    kiln_value w1 = kiln_placeholder(g, "w1", KILN_F32, 2, (int64_t[]){3, 5});
    kiln_value b1 = kiln_placeholder(g, "b1", KILN_F32, 1, (int64_t[]){5});
    kiln_value w2 = kiln_placeholder(g, "w2", KILN_F32, 2, (int64_t[]){5, 2});
    kiln_value h = kiln_relu(g, kiln_add(g, kiln_matmul(g, x, w1), b1));
    kiln_value z = kiln_sigmoid(g, kiln_matmul(g, kiln_tanh(g, h), w2));
    kiln_value p = kiln_softmax(g, kiln_mul(g, z, kiln_scalar(g, KILN_F32, 2)), -1);
    kiln_value loss = kiln_reduce_mean(g, kiln_mul(g, kiln_log(g, p), z), NULL, 0, 0);
    kiln_value xs[4] = {x, w1, b1, w2}, d[4];
    kiln_status *st = kiln_status_new();
    kiln_gradients(g, &loss, 1, xs, 4, NULL, d, st);
    assert_int_equal(kiln_status_code(st), KILN_OK);
    kiln_tensor *feeds[4] = {tu_random(KILN_F32, 2, (int64_t[]){4, 3}, -1, 1, 1),
                             tu_random(KILN_F32, 2, (int64_t[]){3, 5}, -1, 1, 2),
                             tu_random(KILN_F32, 1, (int64_t[]){5}, -1, 1, 3),
                             tu_random(KILN_F32, 2, (int64_t[]){5, 2}, -1, 1, 4)};
    tu_diff(g, 4, d, 4, xs, feeds, 1e-4, 1e-5);
    /* second order through the compiled backend too */
    kiln_value s = kiln_reduce_sum(g, kiln_mul(g, d[1], d[1]), NULL, 0, 0), dd;
    kiln_gradients(g, &s, 1, &w1, 1, NULL, &dd, st);
    assert_int_equal(kiln_status_code(st), KILN_OK);
    tu_diff(g, 1, &dd, 4, xs, feeds, 1e-3, 1e-5);
    for (int i = 0; i < 4; i++) kiln_tensor_free(feeds[i]);
    kiln_status_free(st);
    kiln_graph_free(g);
}

static void test_compiled_shape_ops(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value a = kiln_placeholder(g, "a", KILN_F32, 3, (int64_t[]){2, 3, 4});
    kiln_value b = kiln_placeholder(g, "b", KILN_F32, 2, (int64_t[]){3, 1});
    kiln_value t = kiln_transpose(g, kiln_mul(g, a, b), (int64_t[]){1, 0, 2}, 3);
    kiln_value c = kiln_concat(g, (kiln_value[]){t, kiln_exp(g, t)}, 2, 2);
    kiln_value y = kiln_log_softmax(g, kiln_reshape(g, c, (int64_t[]){6, 8}, 2), 1);
    kiln_value sq = kiln_mul(g, a, a);
    kiln_value wgt = kiln_reshape(g, kiln_concat(g, (kiln_value[]){sq, a}, 2, 2), (int64_t[]){6, 8}, 2);
    kiln_value loss = kiln_reduce_sum(g, kiln_mul(g, y, wgt), NULL, 0, 0);
    kiln_value xs[2] = {a, b}, d[2];
    kiln_status *st = kiln_status_new();
    kiln_gradients(g, &loss, 1, xs, 2, NULL, d, st);
    if (kiln_status_code(st) != KILN_OK) fail_msg("%s", kiln_status_message(st));
    kiln_tensor *feeds[2] = {tu_random(KILN_F32, 3, (int64_t[]){2, 3, 4}, -1, 1, 5),
                             tu_random(KILN_F32, 2, (int64_t[]){3, 1}, -1, 1, 6)};
    tu_diff(g, 2, d, 2, xs, feeds, 1e-4, 1e-5);
    for (int i = 0; i < 2; i++) kiln_tensor_free(feeds[i]);
    kiln_status_free(st);
    kiln_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_unary),
        TU_TEST(test_binary_broadcast),
        TU_TEST(test_unary_attrs),
        TU_TEST(test_matmul),
        TU_TEST(test_gemm),
        TU_TEST(test_reduce),
        TU_TEST(test_softmax),
        TU_TEST(test_shape_ops),
        TU_TEST(test_concat),
        TU_TEST(test_slice),
        TU_TEST(test_mlp),
        TU_TEST(test_second_order),
        TU_TEST(test_second_order_values),
        TU_TEST(test_unused_x_gets_zeros),
        TU_TEST(test_fanout_and_int_paths),
        TU_TEST(test_multiple_ys_and_intermediate_x),
        TU_TEST(test_missing_rules_listed),
        TU_TEST(test_bad_arguments),
        TU_TEST(test_compiled_matches_reference),
        TU_TEST(test_compiled_shape_ops),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    printf("%ld gradient elements checked against finite differences\n", fd_checked);
    return rc;
}
