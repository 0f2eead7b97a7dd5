/* test_fuse.c -- fusion: how many kernels typical patterns compile to, the
 * fused graph's text form, what must not fuse, and fused results against the
 * reference kernels. */
#include "common/testutil.h"

#include <string.h>

#include "../codegen/cg_internal.h"
#include "../passes/passes.h"

/* Kernels the compiler makes for g with placeholders fed as declared
 * (symbolic dims 2) and `outs` fetched, after the default pipeline. */
static int kernel_count(kiln_graph *g, int nout, const kiln_value *outs)
{
    kiln_value in[8];
    int nin = kiln_graph_inputs(g, in, 8);
    ir_type types[8];
    for (int i = 0; i < nin; i++) {
        types[i] = *ir_value_type(g, in[i]);
        for (int d = 0; d < types[i].rank; d++)
            if (types[i].dims[d] < 0) types[i].dims[d] = 2;
    }
    cg_signature sig = {nin, in, types, nout, outs, 0, NULL};
    cg_options o = {.opt_level = 2};
    cg_spec spec;
    cg_plan plan;
    kiln_status *st = kiln_status_new();
    int n = -1;
    if (cg_specialize(g, &sig, &spec, st) == KILN_OK) {
        if (cg_optimize(&spec, &o, st) == KILN_OK && cg_plan_memory(&spec, &plan, st) == KILN_OK) {
            n = plan.nkernels;
            cg_plan_free(&plan);
        }
        cg_spec_free(&spec);
    }
    if (n < 0) fail_msg("%s", kiln_status_message(st));
    kiln_status_free(st);
    return n;
}

static kiln_value constant(kiln_graph *g, int rank, const int64_t *dims, uint64_t seed)
{
    kiln_tensor *t = tu_random(KILN_F32, rank, dims, -1, 1, seed);
    kiln_value v = kiln_constant(g, NULL, t);
    kiln_tensor_free(t);
    return v;
}

static void test_chain_of_ten(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){-1, 37});
    kiln_value b = constant(g, 1, (int64_t[]){37}, 1);
    kiln_value y = x;
    const char *ops[10] = {"Tanh", "Sigmoid", "Relu", "Neg", "Abs", "Exp", "Erf", "Softplus", "Gelu", "Identity"};
    for (int i = 0; i < 10; i++) {
        y = kiln_op(g, ops[i], &y, 1, NULL);
        if (i % 3 == 0) y = kiln_add(g, y, b);
    }
    assert_int_equal(kernel_count(g, 1, &y), 1);
    kiln_tensor *t = tu_random(KILN_F32, 2, (int64_t[]){5, 37}, -2, 2, 7);
    tu_diff(g, 1, &y, 1, &x, &t, 1e-5, 1e-5);
    kiln_tensor_free(t);
    kiln_graph_free(g);
}

static void test_matmul_bias_gelu(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){-1, 48});
    kiln_value y = kiln_gelu(g, kiln_add(g, kiln_matmul(g, x, constant(g, 2, (int64_t[]){48, 40}, 2)),
                                         constant(g, 1, (int64_t[]){40}, 3)));
    assert_int_equal(kernel_count(g, 1, &y), 1);
    kiln_tensor *t = tu_random(KILN_F32, 2, (int64_t[]){70, 48}, -2, 2, 8); /* several row blocks */
    tu_diff(g, 1, &y, 1, &x, &t, 1e-5, 1e-5);
    kiln_tensor_free(t);
    /* with a residual add and a clip, f64 */
    kiln_graph_free(g);
    g = kiln_graph_new();
    x = kiln_placeholder(g, "x", KILN_F64, 2, (int64_t[]){-1, 16});
    kiln_tensor *w = tu_random(KILN_F64, 2, (int64_t[]){16, 16}, -1, 1, 4);
    kiln_value mm = kiln_matmul(g, x, kiln_constant(g, "w", w));
    kiln_tensor_free(w);
    y = kiln_clip(g, kiln_add(g, mm, x), -1, 1);
    assert_int_equal(kernel_count(g, 1, &y), 1);
    t = tu_random(KILN_F64, 2, (int64_t[]){33, 16}, -2, 2, 9);
    tu_diff(g, 1, &y, 1, &x, &t, 1e-12, 1e-12);
    kiln_tensor_free(t);
    kiln_graph_free(g);
}

static void test_conv_bias_relu(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 4, (int64_t[]){-1, 3, 9, 11});
    kiln_conv2d_options o;
    kiln_conv2d_options_init(&o);
    o.pads[0] = o.pads[1] = o.pads[2] = o.pads[3] = 1;
    kiln_value conv = kiln_conv2d(g, x, constant(g, 4, (int64_t[]){10, 3, 3, 3}, 5), constant(g, 1, (int64_t[]){10}, 6), &o);
    kiln_value y = kiln_relu(g, kiln_add(g, conv, constant(g, 3, (int64_t[]){10, 1, 1}, 7)));
    assert_int_equal(kernel_count(g, 1, &y), 1);
    kiln_tensor *t = tu_random(KILN_F32, 4, (int64_t[]){2, 3, 9, 11}, -2, 2, 10);
    tu_diff(g, 1, &y, 1, &x, &t, 1e-5, 1e-5);
    kiln_tensor_free(t);
    kiln_graph_free(g);
    /* a 1x1 convolution (the GEMM path) with a sigmoid */
    g = kiln_graph_new();
    x = kiln_placeholder(g, "x", KILN_F32, 4, (int64_t[]){1, 16, 13, 13});
    y = kiln_sigmoid(g, kiln_conv2d(g, x, constant(g, 4, (int64_t[]){12, 16, 1, 1}, 11), kiln_value_invalid(), NULL));
    assert_int_equal(kernel_count(g, 1, &y), 1);
    t = tu_random(KILN_F32, 4, (int64_t[]){1, 16, 13, 13}, -2, 2, 12);
    tu_diff(g, 1, &y, 1, &x, &t, 1e-5, 1e-5);
    kiln_tensor_free(t);
    kiln_graph_free(g);
}

/* BatchNormalization folds into the convolution's weights, then the Relu
 * fuses into it: one kernel. */
static void test_conv_bn_relu(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 4, (int64_t[]){-1, 4, 8, 8});
    kiln_value conv = kiln_conv2d(g, x, constant(g, 4, (int64_t[]){6, 4, 3, 3}, 21), constant(g, 1, (int64_t[]){6}, 22), NULL);
    kiln_tensor *var = tu_random(KILN_F32, 1, (int64_t[]){6}, 0.5, 2, 23);
    kiln_value bn_in[5] = {conv, constant(g, 1, (int64_t[]){6}, 24), constant(g, 1, (int64_t[]){6}, 25),
                           constant(g, 1, (int64_t[]){6}, 26), kiln_constant(g, "var", var)};
    kiln_tensor_free(var);
    kiln_value y = kiln_relu(g, kiln_op(g, "BatchNormalization", bn_in, 5, NULL));
    assert_null(kiln_graph_error(g));
    assert_int_equal(kernel_count(g, 1, &y), 1);
    kiln_tensor *t = tu_random(KILN_F32, 4, (int64_t[]){2, 4, 8, 8}, -2, 2, 27);
    tu_diff(g, 1, &y, 1, &x, &t, 1e-5, 1e-5);
    kiln_tensor_free(t);
    kiln_graph_free(g);
}

static void test_softmax_one_kernel(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){4, 10});
    kiln_value y = kiln_softmax(g, x, -1);
    assert_int_equal(kernel_count(g, 1, &y), 1);
    kiln_graph_free(g);
}

static void test_what_does_not_fuse(void **state)
{
    (void)state;
    /* t = tanh(x) is fetched and used by two kernels: it stays a kernel */
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 1, (int64_t[]){8});
    kiln_value t = kiln_tanh(g, x);
    kiln_value a = kiln_exp(g, kiln_neg(g, t));
    kiln_value b = kiln_sigmoid(g, kiln_abs(g, t));
    assert_int_equal(kernel_count(g, 3, (kiln_value[]){t, a, b}), 3);
    /* used twice inside one kernel is fine: x * sigmoid(x) */
    kiln_value s = kiln_mul(g, t, kiln_sigmoid(g, t));
    assert_int_equal(kernel_count(g, 1, &s), 1);
    kiln_tensor *in = tu_random(KILN_F32, 1, (int64_t[]){8}, -2, 2, 13);
    tu_diff(g, 4, (kiln_value[]){t, a, b, s}, 1, &x, &in, 1e-5, 1e-6);
    kiln_tensor_free(in);
    kiln_graph_free(g);
    /* a MatMul whose result is also fetched keeps its own kernel */
    g = kiln_graph_new();
    x = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){4, 4});
    kiln_value mm = kiln_matmul(g, x, x);
    kiln_value r = kiln_relu(g, mm);
    assert_int_equal(kernel_count(g, 2, (kiln_value[]){mm, r}), 2);
    assert_int_equal(kernel_count(g, 1, &r), 1);
    kiln_graph_free(g);
}

/* Reductions over the innermost dim absorb the elementwise tree computing
 * their input: one kernel each, with rows longer than a prologue run, a
 * broadcast leaf, over all axes, in f32, f16 and i32. A reduction over an
 * outer dim only (the innermost kept) stays two kernels. Compiled equals
 * the reference either way. */
static void test_reduce_prologue(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){7, 300});
    kiln_value z = kiln_placeholder(g, "z", KILN_F32, 2, (int64_t[]){300, 37});
    kiln_value w = kiln_placeholder(g, "w", KILN_F32, 3, (int64_t[]){4, 5, 6});
    kiln_value b = constant(g, 1, (int64_t[]){37}, 3);
    kiln_value sq = kiln_reduce_sum(g, kiln_mul(g, x, x), (int64_t[]){1}, 1, 0);
    kiln_value me = kiln_reduce_mean(g, kiln_exp(g, kiln_sub(g, z, b)), (int64_t[]){1}, 1, 1);
    kiln_value mx = kiln_reduce_max(g, kiln_abs(g, kiln_tanh(g, x)), NULL, 0, 0);
    kiln_value mid = kiln_reduce_sum(g, kiln_relu(g, w), (int64_t[]){1, 2}, 2, 0);
    kiln_value col = kiln_reduce_mean(g, kiln_exp(g, kiln_sub(g, z, b)), (int64_t[]){0}, 1, 1);
    kiln_value outs[5] = {sq, me, mx, mid, col};
    for (int i = 0; i < 4; i++) assert_int_equal(kernel_count(g, 1, &outs[i]), 1);
    assert_int_equal(kernel_count(g, 1, &col), 2);
    assert_int_equal(kernel_count(g, 4, outs), 4);
    kiln_tensor *in[3] = {tu_random(KILN_F32, 2, (int64_t[]){7, 300}, -2, 2, 21),
                          tu_random(KILN_F32, 2, (int64_t[]){300, 37}, -2, 2, 22),
                          tu_random(KILN_F32, 3, (int64_t[]){4, 5, 6}, -2, 2, 23)};
    tu_diff(g, 5, outs, 3, (kiln_value[]){x, z, w}, in, 1e-6, 1e-6);
    for (int i = 0; i < 3; i++) kiln_tensor_free(in[i]);
    kiln_graph_free(g);

    /* f16 and i32: the fused input is rounded (wrapped) as the stored one */
    g = kiln_graph_new();
    kiln_value h = kiln_placeholder(g, "h", KILN_F16, 2, (int64_t[]){3, 513});
    kiln_value n = kiln_placeholder(g, "n", KILN_I32, 2, (int64_t[]){5, 40});
    kiln_value hs = kiln_reduce_sum(g, kiln_mul(g, h, h), (int64_t[]){1}, 1, 0);
    kiln_value ns = kiln_reduce_sum(g, kiln_mul(g, n, n), (int64_t[]){1}, 1, 0);
    assert_int_equal(kernel_count(g, 1, &hs), 1);
    assert_int_equal(kernel_count(g, 1, &ns), 1);
    kiln_tensor *hin[2] = {tu_random(KILN_F16, 2, (int64_t[]){3, 513}, -3, 3, 24),
                           tu_random(KILN_I32, 2, (int64_t[]){5, 40}, -1000, 1000, 25)};
    tu_diff(g, 2, (kiln_value[]){hs, ns}, 2, (kiln_value[]){h, n}, hin, 1e-3, 1e-3);
    for (int i = 0; i < 2; i++) kiln_tensor_free(hin[i]);
    kiln_graph_free(g);

    /* an input that is also fetched stays materialized: two kernels */
    g = kiln_graph_new();
    x = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){4, 8});
    kiln_value x2 = kiln_mul(g, x, x);
    sq = kiln_reduce_sum(g, x2, (int64_t[]){1}, 1, 0);
    assert_int_equal(kernel_count(g, 2, (kiln_value[]){x2, sq}), 2);
    kiln_tensor *t = tu_random(KILN_F32, 2, (int64_t[]){4, 8}, -2, 2, 26);
    tu_diff(g, 2, (kiln_value[]){x2, sq}, 1, &x, &t, 1e-6, 1e-6);
    kiln_tensor_free(t);
    kiln_graph_free(g);
}

static void test_fused_text(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 1, (int64_t[]){3});
    kiln_value y = kiln_name(g, kiln_relu(g, kiln_tanh(g, x)), "y");
    kiln_graph_set_outputs(g, &y, 1);
    pass_context cx;
    kiln_status *st = kiln_status_new();
    pass_context_init(&cx, st);
    assert_int_equal(pass_run_pipeline(g, "fuse", &cx), KILN_OK);
    pass_context_clear(&cx);
    char *text = kiln_graph_to_text(g);
    assert_string_equal(text,
                        "%0 = Placeholder() {dtype=f32, shape=[3]} : f32[3]  # x\n"
                        "%1 = Tanh(%0) : f32[3]  # Tanh_1  [in kernel %2]\n"
                        "%2 = Relu(%1) : f32[3]  # y  [kernel %2]\n");
    kiln_free(text);
    kiln_status_free(st);
    kiln_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_chain_of_ten),
        TU_TEST(test_matmul_bias_gelu),
        TU_TEST(test_conv_bias_relu),
        TU_TEST(test_conv_bn_relu),
        TU_TEST(test_softmax_one_kernel),
        TU_TEST(test_what_does_not_fuse),
        TU_TEST(test_reduce_prologue),
        TU_TEST(test_fused_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
