/* test_fold_bn.c -- inference folding: BatchNormalization and per-channel
 * Mul/Add/Sub folded into Conv2D (with and without a bias), Gemm and
 * MatMul weights. Golden text before and after, and the folded graph
 * computes what the unfolded one did within 1e-5 on random inputs. The
 * cases that must stay: a producer with another use, a parameter that is
 * not constant, a MatMul whose features are not on BN's channel axis. */
#include "pass_test.h"

#define TOL 1e-5

static kiln_value bn_params(kiln_graph *g, kiln_value x, int64_t c, uint64_t seed)
{
    int64_t d[1] = {c};
    kiln_value in[5] = {
        x,
        pt_random_const(g, "gamma", 1, d, 0.5, 1.5, seed),
        pt_random_const(g, "beta", 1, d, -1, 1, seed + 1),
        pt_random_const(g, "mean", 1, d, -1, 1, seed + 2),
        pt_random_const(g, "var", 1, d, 0.5, 2, seed + 3),
    };
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_float(a, "epsilon", 1e-3);
    kiln_value y = kiln_name(g, kiln_op(g, "BatchNormalization", in, 5, a), "bn");
    kiln_attrs_free(a);
    return y;
}

/* ---- Conv2D + BN, with and without a bias ---- */

static void build_conv_bn(kiln_graph *g, bool bias)
{
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 4, (int64_t[]){2, 2, 5, 5});
    kiln_value w = pt_random_const(g, "w", 4, (int64_t[]){3, 2, 3, 3}, -1, 1, 11);
    kiln_value b = bias ? pt_random_const(g, "b", 1, (int64_t[]){3}, -1, 1, 12) : kiln_value_invalid();
    kiln_conv2d_options o;
    kiln_conv2d_options_init(&o);
    o.pads[0] = o.pads[1] = o.pads[2] = o.pads[3] = 1;
    kiln_value c = kiln_name(g, kiln_conv2d(g, x, w, b, &o), "conv");
    kiln_value y = kiln_name(g, kiln_relu(g, bn_params(g, c, 3, 20)), "y");
    pt_outputs(g, 1, &y);
}

static void build_conv_bn_bias(kiln_graph *g) { build_conv_bn(g, true); }
static void build_conv_bn_nobias(kiln_graph *g) { build_conv_bn(g, false); }

static void test_conv_bn_bias(void **state)
{
    (void)state;
    pt_check(build_conv_bn_bias, "fold_bn",
             "%0 = Placeholder() {dtype=f32, shape=[2,2,5,5]} : f32[2,2,5,5]  # x\n"
             "%1 = Constant() {value=<f32[3,2,3,3]>} : f32[3,2,3,3]  # w\n"
             "%2 = Constant() {value=<f32[3] -0.0770732462,0.809265018,0.152443558>} : f32[3]  # b\n"
             "%3 = Conv2D(%0, %1, %2) {strides=[1,1], pads=[1,1,1,1], dilations=[1,1]} : f32[2,3,5,5]  # conv\n"
             "%4 = Constant() {value=<f32[3] 1.49115896,0.904004335,1.42488503>} : f32[3]  # gamma\n"
             "%5 = Constant() {value=<f32[3] -0.174751669,0.63784945,0.340061694>} : f32[3]  # beta\n"
             "%6 = Constant() {value=<f32[3] -0.687465072,0.616170585,-0.2813555>} : f32[3]  # mean\n"
             "%7 = Constant() {value=<f32[3] 0.814422846,1.99909294,0.608435035>} : f32[3]  # var\n"
             "%8 = BatchNormalization(%3, %4, %5, %6, %7) {epsilon=0.001} : f32[2,3,5,5]  # bn\n"
             "%9 = Relu(%8) : f32[2,3,5,5]  # y\n",
             "%0 = Placeholder() {dtype=f32, shape=[2,2,5,5]} : f32[2,2,5,5]  # x\n"
             "%1 = Constant() {value=<f32[3,2,3,3]>} : f32[3,2,3,3]  # w\n"
             "%2 = Constant() {value=<f32[3] 0.833203495,0.761277854,1.13184202>} : f32[3]  # b\n"
             "%3 = Conv2D(%0, %1, %2) {strides=[1,1], pads=[1,1,1,1], dilations=[1,1]} : f32[2,3,5,5]  # bn\n"
             "%4 = Relu(%3) : f32[2,3,5,5]  # y\n", TOL);
}

static void test_conv_bn_nobias(void **state)
{
    (void)state;
    pt_check(build_conv_bn_nobias, "fold_bn",
             "%0 = Placeholder() {dtype=f32, shape=[2,2,5,5]} : f32[2,2,5,5]  # x\n"
             "%1 = Constant() {value=<f32[3,2,3,3]>} : f32[3,2,3,3]  # w\n"
             "%2 = Conv2D(%0, %1) {strides=[1,1], pads=[1,1,1,1], dilations=[1,1]} : f32[2,3,5,5]  # conv\n"
             "%3 = Constant() {value=<f32[3] 1.49115896,0.904004335,1.42488503>} : f32[3]  # gamma\n"
             "%4 = Constant() {value=<f32[3] -0.174751669,0.63784945,0.340061694>} : f32[3]  # beta\n"
             "%5 = Constant() {value=<f32[3] -0.687465072,0.616170585,-0.2813555>} : f32[3]  # mean\n"
             "%6 = Constant() {value=<f32[3] 0.814422846,1.99909294,0.608435035>} : f32[3]  # var\n"
             "%7 = BatchNormalization(%2, %3, %4, %5, %6) {epsilon=0.001} : f32[2,3,5,5]  # bn\n"
             "%8 = Relu(%7) : f32[2,3,5,5]  # y\n",
             "%0 = Placeholder() {dtype=f32, shape=[2,2,5,5]} : f32[2,2,5,5]  # x\n"
             "%1 = Constant() {value=<f32[3,2,3,3]>} : f32[3,2,3,3]  # w\n"
             "%2 = Constant() {value=<f32[3] 0.960476458,0.243985355,0.853598416>} : f32[3]  # Constant_10\n"
             "%3 = Conv2D(%0, %1, %2) {strides=[1,1], pads=[1,1,1,1], dilations=[1,1]} : f32[2,3,5,5]  # bn\n"
             "%4 = Relu(%3) : f32[2,3,5,5]  # y\n", TOL);
}

/* ---- Gemm + BN (transB, alpha, beta and a broadcast C) ---- */

static void build_gemm_bn(kiln_graph *g)
{
    kiln_value a = kiln_placeholder(g, "a", KILN_F32, 2, (int64_t[]){4, 5});
    kiln_value b = pt_random_const(g, "wb", 2, (int64_t[]){3, 5}, -1, 1, 31);
    kiln_value c = pt_random_const(g, "c", 2, (int64_t[]){4, 1}, -1, 1, 32);
    kiln_value gm = kiln_name(g, kiln_gemm(g, a, b, c, 0.5, 2.0, 0, 1), "gemm");
    kiln_value y = bn_params(g, gm, 3, 40);
    pt_outputs(g, 1, &y);
}

static void test_gemm_bn(void **state)
{
    (void)state;
    pt_check(build_gemm_bn, "fold_bn",
             "%0 = Placeholder() {dtype=f32, shape=[4,5]} : f32[4,5]  # a\n"
             "%1 = Constant() {value=<f32[3,5]>} : f32[3,5]  # wb\n"
             "%2 = Constant() {value=<f32[4,1] 0.245573729,0.48556748,0.793571532,-0.342954814>} : f32[4,1]  # c\n"
             "%3 = Gemm(%0, %1, %2) {alpha=0.5, beta=2, transB=1} : f32[4,3]  # gemm\n"
             "%4 = Constant() {value=<f32[3] 1.47450554,1.48775363,1.39711833>} : f32[3]  # gamma\n"
             "%5 = Constant() {value=<f32[3] -0.128031477,0.037270721,-0.757313132>} : f32[3]  # beta\n"
             "%6 = Constant() {value=<f32[3] 0.650496662,0.650752902,0.174525082>} : f32[3]  # mean\n"
             "%7 = Constant() {value=<f32[3] 0.603414595,0.764793038,1.561059>} : f32[3]  # var\n"
             "%8 = BatchNormalization(%3, %4, %5, %6, %7) {epsilon=0.001} : f32[4,3]  # bn\n",
             "%0 = Placeholder() {dtype=f32, shape=[4,5]} : f32[4,5]  # a\n"
             "%1 = Constant() {value=<f32[3,5]>} : f32[3,5]  # wb\n"
             "%2 = Constant() {value=<f32[4,3]>} : f32[4,3]  # c\n"
             "%3 = Gemm(%0, %1, %2) {alpha=0.5, transB=1} : f32[4,3]  # bn\n", TOL);
}

static void build_gemm_nobias_bn(kiln_graph *g)
{
    kiln_value a = kiln_placeholder(g, "a", KILN_F32, 2, (int64_t[]){5, 4});
    kiln_value b = pt_random_const(g, "wb", 2, (int64_t[]){5, 3}, -1, 1, 33);
    kiln_value gm = kiln_name(g, kiln_gemm(g, a, b, kiln_value_invalid(), 1.0, 1.0, 1, 0), "gemm");
    kiln_value y = bn_params(g, gm, 3, 44);
    pt_outputs(g, 1, &y);
}

static void test_gemm_nobias_bn(void **state)
{
    (void)state;
    pt_check(build_gemm_nobias_bn, "fold_bn",
             "%0 = Placeholder() {dtype=f32, shape=[5,4]} : f32[5,4]  # a\n"
             "%1 = Constant() {value=<f32[5,3]>} : f32[5,3]  # wb\n"
             "%2 = Gemm(%0, %1) {transA=1} : f32[4,3]  # gemm\n"
             "%3 = Constant() {value=<f32[3] 0.812534928,1.17866671,1.04227924>} : f32[3]  # gamma\n"
             "%4 = Constant() {value=<f32[3] -0.76657939,-0.187523067,-0.612627864>} : f32[3]  # beta\n"
             "%5 = Constant() {value=<f32[3] -0.161539033,-0.877320886,0.364418238>} : f32[3]  # mean\n"
             "%6 = Constant() {value=<f32[3] 1.96036732,0.602186263,1.68844354>} : f32[3]  # var\n"
             "%7 = BatchNormalization(%2, %3, %4, %5, %6) {epsilon=0.001} : f32[4,3]  # bn\n",
             "%0 = Placeholder() {dtype=f32, shape=[5,4]} : f32[5,4]  # a\n"
             "%1 = Constant() {value=<f32[5,3]>} : f32[5,3]  # wb\n"
             "%2 = Constant() {value=<f32[3] -0.672857702,1.14392352,-0.90484947>} : f32[3]  # Constant_9\n"
             "%3 = Gemm(%0, %1, %2) {transA=1} : f32[4,3]  # bn\n", TOL);
}

/* ---- MatMul + BN, MatMul + bias + BN ---- */

static void build_matmul_bn(kiln_graph *g)
{
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){4, 5});
    kiln_value w = pt_random_const(g, "w", 2, (int64_t[]){5, 3}, -1, 1, 51);
    kiln_value m = kiln_name(g, kiln_matmul(g, x, w), "mm");
    kiln_value y = bn_params(g, m, 3, 60);
    pt_outputs(g, 1, &y);
}

static void test_matmul_bn(void **state)
{
    (void)state;
    pt_check(build_matmul_bn, "fold_bn",
             "%0 = Placeholder() {dtype=f32, shape=[4,5]} : f32[4,5]  # x\n"
             "%1 = Constant() {value=<f32[5,3]>} : f32[5,3]  # w\n"
             "%2 = MatMul(%0, %1) : f32[4,3]  # mm\n"
             "%3 = Constant() {value=<f32[3] 1.25289631,1.47584081,1.15962958>} : f32[3]  # gamma\n"
             "%4 = Constant() {value=<f32[3] -0.776381373,-0.215437517,0.344372004>} : f32[3]  # beta\n"
             "%5 = Constant() {value=<f32[3] 0.406863302,0.113417856,0.896438897>} : f32[3]  # mean\n"
             "%6 = Constant() {value=<f32[3] 1.27460313,1.66634178,1.36452615>} : f32[3]  # var\n"
             "%7 = BatchNormalization(%2, %3, %4, %5, %6) {epsilon=0.001} : f32[4,3]  # bn\n",
             "%0 = Placeholder() {dtype=f32, shape=[4,5]} : f32[4,5]  # x\n"
             "%1 = Constant() {value=<f32[5,3]>} : f32[5,3]  # w\n"
             "%2 = MatMul(%0, %1) : f32[4,3]  # mm\n"
             "%3 = Constant() {value=<f32[3] -1.22772348,-0.345068455,-0.54521817>} : f32[3]  # Constant_9\n"
             "%4 = Add(%2, %3) : f32[4,3]  # bn\n", TOL);
}

static void build_matmul_bias_bn(kiln_graph *g)
{
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){4, 5});
    kiln_value w = pt_random_const(g, "w", 2, (int64_t[]){3, 5}, -1, 1, 52);
    kiln_value m = kiln_name(g, kiln_matmul_t(g, x, w, 0, 1), "mm");
    kiln_value b = pt_random_const(g, "b", 2, (int64_t[]){1, 3}, -1, 1, 53);
    kiln_value a = kiln_name(g, kiln_add(g, b, m), "biased");
    kiln_value y = bn_params(g, a, 3, 64);
    pt_outputs(g, 1, &y);
}

static void test_matmul_bias_bn(void **state)
{
    (void)state;
    pt_check(build_matmul_bias_bn, "fold_bn",
             "%0 = Placeholder() {dtype=f32, shape=[4,5]} : f32[4,5]  # x\n"
             "%1 = Constant() {value=<f32[3,5]>} : f32[3,5]  # w\n"
             "%2 = MatMul(%0, %1) {transpose_b=1} : f32[4,3]  # mm\n"
             "%3 = Constant() {value=<f32[1,3] 0.41143918,-0.52876848,0.733902276>} : f32[1,3]  # b\n"
             "%4 = Add(%3, %2) : f32[4,3]  # biased\n"
             "%5 = Constant() {value=<f32[3] 0.745573759,0.798078835,0.89849931>} : f32[3]  # gamma\n"
             "%6 = Constant() {value=<f32[3] -0.379249841,0.576100111,-0.509732187>} : f32[3]  # beta\n"
             "%7 = Constant() {value=<f32[3] 0.607341051,-0.71448046,0.570718408>} : f32[3]  # mean\n"
             "%8 = Constant() {value=<f32[3] 1.27534974,0.648696363,1.78095686>} : f32[3]  # var\n"
             "%9 = BatchNormalization(%4, %5, %6, %7, %8) {epsilon=0.001} : f32[4,3]  # bn\n",
             "%0 = Placeholder() {dtype=f32, shape=[4,5]} : f32[4,5]  # x\n"
             "%1 = Constant() {value=<f32[3,5]>} : f32[3,5]  # w\n"
             "%2 = MatMul(%0, %1) {transpose_b=1} : f32[4,3]  # mm\n"
             "%3 = Constant() {value=<f32[3] -0.508533716,0.759978414,-0.399895757>} : f32[3]  # b\n"
             "%4 = Add(%2, %3) : f32[4,3]  # bn\n", TOL);
}

/* ---- per-channel Mul / Add / Sub after Conv2D and MatMul, chained ---- */

static void build_conv_affine(kiln_graph *g)
{
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 4, (int64_t[]){1, 2, 4, 4});
    kiln_value w = pt_random_const(g, "w", 4, (int64_t[]){3, 2, 1, 1}, -1, 1, 71);
    kiln_value c = kiln_name(g, kiln_conv2d(g, x, w, kiln_value_invalid(), NULL), "conv");
    kiln_value s = pt_const(g, "s", 3, (int64_t[]){3, 1, 1}, (float[]){2, -1, 0.5f});
    kiln_value m = kiln_name(g, kiln_mul(g, s, c), "scaled");
    kiln_value t = pt_const(g, "t", 4, (int64_t[]){1, 3, 1, 1}, (float[]){1, 2, 3});
    kiln_value a = kiln_name(g, kiln_add(g, m, t), "shifted");
    kiln_value u = kiln_name(g, kiln_sub(g, a, kiln_scalar(g, KILN_F32, 0.25)), "y");
    pt_outputs(g, 1, &u);
}

static void test_conv_mul_add_sub(void **state)
{
    (void)state;
    pt_check(build_conv_affine, "fold_bn",
             "%0 = Placeholder() {dtype=f32, shape=[1,2,4,4]} : f32[1,2,4,4]  # x\n"
             "%1 = Constant() {value=<f32[3,2,1,1] -0.7656461,-0.537569523,0.7868554,-0.911588073,-0.668986082,0.980714321>} : f32[3,2,1,1]  # w\n"
             "%2 = Conv2D(%0, %1) {strides=[1,1], pads=[0,0,0,0], dilations=[1,1]} : f32[1,3,4,4]  # conv\n"
             "%3 = Constant() {value=<f32[3,1,1] 2,-1,0.5>} : f32[3,1,1]  # s\n"
             "%4 = Mul(%3, %2) : f32[1,3,4,4]  # scaled\n"
             "%5 = Constant() {value=<f32[1,3,1,1] 1,2,3>} : f32[1,3,1,1]  # t\n"
             "%6 = Add(%4, %5) : f32[1,3,4,4]  # shifted\n"
             "%7 = Constant() {value=<f32[] 0.25>} : f32[]  # Constant_7\n"
             "%8 = Sub(%6, %7) : f32[1,3,4,4]  # y\n",
             "%0 = Placeholder() {dtype=f32, shape=[1,2,4,4]} : f32[1,2,4,4]  # x\n"
             "%1 = Constant() {value=<f32[3,2,1,1] -1.5312922,-1.07513905,-0.7868554,0.911588073,-0.334493041,0.490357161>} : f32[3,2,1,1]  # w\n"
             "%2 = Constant() {value=<f32[3] 0.75,1.75,2.75>} : f32[3]  # Constant_12\n"
             "%3 = Conv2D(%0, %1, %2) {strides=[1,1], pads=[0,0,0,0], dilations=[1,1]} : f32[1,3,4,4]  # y\n", TOL);
}

static void build_matmul_mul(kiln_graph *g)
{
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 3, (int64_t[]){2, 4, 5});
    kiln_value w = pt_random_const(g, "w", 2, (int64_t[]){5, 3}, -1, 1, 81);
    kiln_value m = kiln_name(g, kiln_matmul(g, x, w), "mm");
    kiln_value s = pt_const(g, "s", 1, (int64_t[]){3}, (float[]){3, -2, 0.5f});
    kiln_value y = kiln_name(g, kiln_mul(g, m, s), "y");
    kiln_value z = kiln_name(g, kiln_add(g, y, s), "z"); /* bias-less MatMul + c: already folded form */
    pt_outputs(g, 1, &z);
}

static void test_matmul_mul(void **state)
{
    (void)state;
    pt_check(build_matmul_mul, "fold_bn",
             "%0 = Placeholder() {dtype=f32, shape=[2,4,5]} : f32[2,4,5]  # x\n"
             "%1 = Constant() {value=<f32[5,3]>} : f32[5,3]  # w\n"
             "%2 = MatMul(%0, %1) : f32[2,4,3]  # mm\n"
             "%3 = Constant() {value=<f32[3] 3,-2,0.5>} : f32[3]  # s\n"
             "%4 = Mul(%2, %3) : f32[2,4,3]  # y\n"
             "%5 = Add(%4, %3) : f32[2,4,3]  # z\n",
             "%0 = Placeholder() {dtype=f32, shape=[2,4,5]} : f32[2,4,5]  # x\n"
             "%1 = Constant() {value=<f32[5,3]>} : f32[5,3]  # w\n"
             "%2 = MatMul(%0, %1) : f32[2,4,3]  # y\n"
             "%3 = Constant() {value=<f32[3] 3,-2,0.5>} : f32[3]  # s\n"
             "%4 = Add(%2, %3) : f32[2,4,3]  # z\n", TOL);
}

/* ---- what must stay ---- */

static void build_kept(kiln_graph *g)
{
    /* conv: used by the BN and by a Relu */
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 4, (int64_t[]){1, 2, 3, 3});
    kiln_value w = pt_random_const(g, "w", 4, (int64_t[]){2, 2, 1, 1}, -1, 1, 91);
    kiln_value c = kiln_name(g, kiln_conv2d(g, x, w, kiln_value_invalid(), NULL), "conv");
    kiln_value y1 = kiln_add(g, bn_params(g, c, 2, 92), kiln_relu(g, c));
    /* conv2: the BN's mean is fed, not constant */
    kiln_value mean = kiln_placeholder(g, "fed_mean", KILN_F32, 1, (int64_t[]){2});
    kiln_value c2 = kiln_name(g, kiln_conv2d(g, x, w, kiln_value_invalid(), NULL), "conv2");
    kiln_value one = pt_const(g, "one", 1, (int64_t[]){2}, (float[]){1, 1});
    kiln_value y2 = kiln_op(g, "BatchNormalization", (kiln_value[]){c2, one, one, mean, one}, 5, NULL);
    /* mm: rank 3, so BN's channel axis 1 is not the features */
    kiln_value p = kiln_placeholder(g, "p", KILN_F32, 3, (int64_t[]){2, 2, 2});
    kiln_value wm = pt_const(g, "wm", 2, (int64_t[]){2, 2}, (float[]){1, 2, 3, 4});
    kiln_value mm = kiln_name(g, kiln_matmul(g, p, wm), "mm");
    kiln_value y3 = kiln_op(g, "BatchNormalization", (kiln_value[]){mm, one, one, one, one}, 5, NULL);
    /* conv3: a per-channel constant that broadcasts the result larger */
    kiln_value c3 = kiln_name(g, kiln_conv2d(g, x, w, kiln_value_invalid(), NULL), "conv3");
    kiln_value big = pt_random_const(g, "big", 5, (int64_t[]){2, 1, 2, 1, 1}, -1, 1, 93);
    kiln_value y4 = kiln_mul(g, c3, big);
    /* conv4: a declared output itself */
    kiln_value c4 = kiln_name(g, kiln_conv2d(g, x, w, kiln_value_invalid(), NULL), "conv4");
    kiln_value y5 = kiln_mul(g, c4, pt_const(g, "two", 0, NULL, (float[]){2}));
    pt_outputs(g, 6, (kiln_value[]){y1, y2, y3, y4, y5, c4});
}

static void test_kept(void **state)
{
    (void)state;
    kiln_graph *g = pt_build(build_kept);
    char *before = kiln_graph_to_text(g);
    pass_context cx;
    pass_context_init(&cx, NULL);
    bool changed = true;
    assert_int_equal(pass_fold_bn(g, &cx, &changed), KILN_OK);
    assert_false(changed);
    pass_context_clear(&cx);
    pt_assert_text(g, before, "after");
    kiln_free(before);
    kiln_graph_free(g);
}

/* ---- the whole inference pipeline on Conv + BN + Relu ---- */

static void test_conv_bn_pipeline(void **state)
{
    (void)state;
    kiln_graph *orig = pt_build(build_conv_bn_bias), *g = pt_build(build_conv_bn_bias);
    pt_run(g, "fold,simplify,fold_bn,fold,cse,dce");
    pt_assert_same_results(orig, g, KILN_BACKEND_REFERENCE, TOL, TOL, 3);
    kiln_graph_free(orig);
    kiln_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_conv_bn_bias),
        TU_TEST(test_conv_bn_nobias),
        TU_TEST(test_gemm_bn),
        TU_TEST(test_gemm_nobias_bn),
        TU_TEST(test_matmul_bn),
        TU_TEST(test_matmul_bias_bn),
        TU_TEST(test_conv_mul_add_sub),
        TU_TEST(test_matmul_mul),
        TU_TEST(test_kept),
        TU_TEST(test_conv_bn_pipeline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
