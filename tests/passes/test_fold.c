/* test_fold.c -- constant folding: golden before/after text and numeric
 * equivalence with the unfolded graph; chains fold in one walk; the size
 * limit is respected; stateful, random and failing nodes stay. */
#include "pass_test.h"

/* ---- a chain of constant computations feeding one live op ---- */

static void build_chain(kiln_graph *g)
{
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){2, 3});
    kiln_value a = pt_const(g, "a", 2, (int64_t[]){2, 3}, (float[]){1, 2, 3, 4, 5, 6});
    kiln_value b = pt_const(g, "b", 1, (int64_t[]){3}, (float[]){10, 20, 30});
    kiln_value s = kiln_name(g, kiln_add(g, a, b), "s");
    kiln_value m = kiln_name(g, kiln_mul(g, s, kiln_scalar(g, KILN_F32, -1)), "m");
    kiln_value r = kiln_name(g, kiln_relu(g, m), "r");
    kiln_value y = kiln_name(g, kiln_add(g, x, r), "y");
    pt_outputs(g, 1, &y);
}

static void test_fold_chain(void **state)
{
    (void)state;
    pt_check(build_chain, "fold",
             "%0 = Placeholder() {dtype=f32, shape=[2,3]} : f32[2,3]  # x\n"
             "%1 = Constant() {value=<f32[2,3] 1,2,3,4,5,6>} : f32[2,3]  # a\n"
             "%2 = Constant() {value=<f32[3] 10,20,30>} : f32[3]  # b\n"
             "%3 = Add(%1, %2) : f32[2,3]  # s\n"
             "%4 = Constant() {value=<f32[] -1>} : f32[]  # Constant_4\n"
             "%5 = Mul(%3, %4) : f32[2,3]  # m\n"
             "%6 = Relu(%5) : f32[2,3]  # r\n"
             "%7 = Add(%0, %6) : f32[2,3]  # y\n",
             "%0 = Placeholder() {dtype=f32, shape=[2,3]} : f32[2,3]  # x\n"
             "%1 = Constant() {value=<f32[2,3] 0,0,0,0,0,0>} : f32[2,3]  # r\n"
             "%2 = Add(%0, %1) : f32[2,3]  # y\n",
             0);
}

/* ---- a transposed constant weight folds; the MatMul stays ---- */

static void build_weight(kiln_graph *g)
{
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){4, 3});
    kiln_value w = pt_const(g, "w", 2, (int64_t[]){2, 3}, (float[]){1, 2, 3, 4, 5, 6});
    kiln_value wt = kiln_name(g, kiln_transpose(g, w, (int64_t[]){1, 0}, 2), "wt");
    kiln_value y = kiln_name(g, kiln_matmul(g, x, wt), "y");
    pt_outputs(g, 1, &y);
}

static void test_fold_weight_transpose(void **state)
{
    (void)state;
    pt_check(build_weight, "fold",
             "%0 = Placeholder() {dtype=f32, shape=[4,3]} : f32[4,3]  # x\n"
             "%1 = Constant() {value=<f32[2,3] 1,2,3,4,5,6>} : f32[2,3]  # w\n"
             "%2 = Transpose(%1) {perm=[1,0]} : f32[3,2]  # wt\n"
             "%3 = MatMul(%0, %2) : f32[4,2]  # y\n",
             "%0 = Placeholder() {dtype=f32, shape=[4,3]} : f32[4,3]  # x\n"
             "%1 = Constant() {value=<f32[3,2] 1,4,2,5,3,6>} : f32[3,2]  # wt\n"
             "%2 = MatMul(%0, %1) : f32[4,2]  # y\n",
             1e-6);
}

/* ---- the size limit: an Expand to 64x64 f32 (16 KiB) ---- */

static void build_expand(kiln_graph *g)
{
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){64, 64});
    kiln_value c = kiln_name(g, kiln_scalar(g, KILN_F32, 0.5), "c");
    kiln_value e = kiln_name(g, kiln_expand(g, c, (int64_t[]){64, 64}, 2), "e");
    kiln_value y = kiln_name(g, kiln_mul(g, x, e), "y");
    pt_outputs(g, 1, &y);
}

static const char expand_text[] =
    "%0 = Placeholder() {dtype=f32, shape=[64,64]} : f32[64,64]  # x\n"
    "%1 = Constant() {value=<f32[] 0.5>} : f32[]  # c\n"
    "%2 = Expand(%1) {shape=[64,64]} : f32[64,64]  # e\n"
    "%3 = Mul(%0, %2) : f32[64,64]  # y\n";

static void test_fold_respects_limit(void **state)
{
    (void)state;
    /* one byte short of the result: nothing folds */
    pt_check_limit(build_expand, "fold", 64 * 64 * 4 - 1, expand_text, expand_text, 0);
    /* exactly the result's size: it folds */
    pt_check_limit(build_expand, "fold", 64 * 64 * 4, expand_text,
                   "%0 = Placeholder() {dtype=f32, shape=[64,64]} : f32[64,64]  # x\n"
                   "%1 = Constant() {value=<f32[64,64]>} : f32[64,64]  # e\n"
                   "%2 = Mul(%0, %1) : f32[64,64]  # y\n",
                   0);
}

/* The limit applies to every output: a chain stops folding where a result
 * grows past it, and what is below it still folds. */
static void build_grow(kiln_graph *g)
{
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){16, 16});
    kiln_value c = kiln_name(g, kiln_scalar(g, KILN_F32, 3), "c");
    kiln_value n = kiln_name(g, kiln_neg(g, c), "n");                             /* 4 bytes */
    kiln_value row = kiln_name(g, kiln_expand(g, n, (int64_t[]){1, 16}, 2), "row"); /* 64 bytes */
    kiln_value sq = kiln_name(g, kiln_expand(g, row, (int64_t[]){16, 16}, 2), "sq"); /* 1 KiB */
    kiln_value y = kiln_name(g, kiln_add(g, x, sq), "y");
    pt_outputs(g, 1, &y);
}

static void test_fold_limit_partial(void **state)
{
    (void)state;
    pt_check_limit(build_grow, "fold", 100,
                   "%0 = Placeholder() {dtype=f32, shape=[16,16]} : f32[16,16]  # x\n"
                   "%1 = Constant() {value=<f32[] 3>} : f32[]  # c\n"
                   "%2 = Neg(%1) : f32[]  # n\n"
                   "%3 = Expand(%2) {shape=[1,16]} : f32[1,16]  # row\n"
                   "%4 = Expand(%3) {shape=[16,16]} : f32[16,16]  # sq\n"
                   "%5 = Add(%0, %4) : f32[16,16]  # y\n",
                   "%0 = Placeholder() {dtype=f32, shape=[16,16]} : f32[16,16]  # x\n"
                   "%1 = Constant() {value=<f32[1,16]>} : f32[1,16]  # row\n"
                   "%2 = Expand(%1) {shape=[16,16]} : f32[16,16]  # sq\n"
                   "%3 = Add(%0, %2) : f32[16,16]  # y\n",
                   0);
}

/* The default limit is 64 MiB and the context carries it. */
static void test_fold_default_limit(void **state)
{
    (void)state;
    pass_context cx;
    pass_context_init(&cx, NULL);
    assert_int_equal(cx.fold_limit, 64 << 20);
    pass_context_clear(&cx);
}

/* ---- random and stateful nodes are never folded ---- */

static void build_effects(kiln_graph *g)
{
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_ints(a, "shape", (int64_t[]){3}, 1);
    kiln_value r = kiln_name(g, kiln_op(g, "RandomUniform", NULL, 0, a), "r");
    kiln_attrs_free(a);
    kiln_value one = kiln_name(g, kiln_scalar(g, KILN_F32, 1), "one");
    kiln_value ra = kiln_name(g, kiln_add(g, r, one), "ra");
    kiln_tensor *init = tu_f32(1, (int64_t[]){3}, (float[]){1, 2, 3});
    kiln_value v = kiln_variable(g, "v", init);
    kiln_tensor_free(init);
    kiln_value va = kiln_name(g, kiln_add(g, v, one), "va");
    kiln_value two = kiln_name(g, kiln_add(g, one, one), "two");
    kiln_value y = kiln_name(g, kiln_mul(g, kiln_add(g, ra, va), two), "y");
    pt_outputs(g, 1, &y);
}

static void test_fold_skips_random_and_state(void **state)
{
    (void)state;
    kiln_graph *g = pt_build(build_effects);
    pt_run(g, "fold");
    pt_assert_text(g,
                   "%0 = Variable() {value=<f32[3] 1,2,3>} : f32[3]  # v\n"
                   "%1 = RandomUniform() {shape=[3]} : f32[3]  # r\n"
                   "%2 = Constant() {value=<f32[] 1>} : f32[]  # one\n"
                   "%3 = Add(%1, %2) : f32[3]  # ra\n"
                   "%4 = Add(%0, %2) : f32[3]  # va\n"
                   "%5 = Add(%3, %4) : f32[3]  # Add_6\n"
                   "%6 = Constant() {value=<f32[] 2>} : f32[]  # two\n"
                   "%7 = Mul(%5, %6) : f32[3]  # y\n",
                   "after");
    kiln_graph_free(g);
}

/* ---- several outputs: a Split of a constant becomes one constant each ---- */

static void build_split(kiln_graph *g)
{
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 1, (int64_t[]){2});
    kiln_value c = pt_const(g, "c", 1, (int64_t[]){4}, (float[]){1, 2, 3, 4});
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_int(a, "num_outputs", 2);
    kiln_value sp = kiln_name(g, kiln_op(g, "Split", &c, 1, a), "sp");
    kiln_attrs_free(a);
    kiln_value y0 = kiln_name(g, kiln_add(g, x, sp), "y0");
    kiln_value y1 = kiln_name(g, kiln_mul(g, x, (kiln_value){sp.node, 1}), "y1");
    pt_outputs(g, 2, (kiln_value[]){y0, y1});
}

static void test_fold_multiple_outputs(void **state)
{
    (void)state;
    pt_check(build_split, "fold",
             "%0 = Placeholder() {dtype=f32, shape=[2]} : f32[2]  # x\n"
             "%1 = Constant() {value=<f32[4] 1,2,3,4>} : f32[4]  # c\n"
             "%2, %2.1 = Split(%1) {num_outputs=2} : f32[2], f32[2]  # sp\n"
             "%3 = Add(%0, %2) : f32[2]  # y0\n"
             "%4 = Mul(%0, %2.1) : f32[2]  # y1\n",
             "%0 = Placeholder() {dtype=f32, shape=[2]} : f32[2]  # x\n"
             "%1 = Constant() {value=<f32[2] 1,2>} : f32[2]  # sp\n"
             "%2 = Add(%0, %1) : f32[2]  # y0\n"
             "%3 = Constant() {value=<f32[2] 3,4>} : f32[2]  # Constant_6\n"
             "%4 = Mul(%0, %3) : f32[2]  # y1\n",
             0);
}

/* ---- a node whose evaluation fails stays, and the pass succeeds ---- */

static void build_div_zero(kiln_graph *g)
{
    kiln_value x = kiln_placeholder(g, "x", KILN_I32, 1, (int64_t[]){2});
    kiln_tensor *t = tu_i32(1, (int64_t[]){2}, (int32_t[]){7, 8});
    kiln_value a = kiln_constant(g, "a", t);
    kiln_tensor_free(t);
    kiln_value z = kiln_name(g, kiln_scalar(g, KILN_I32, 0), "z");
    kiln_value q = kiln_name(g, kiln_div(g, a, z), "q");
    kiln_value y = kiln_name(g, kiln_add(g, x, q), "y");
    pt_outputs(g, 1, &y);
}

static void test_fold_leaves_failing_node(void **state)
{
    (void)state;
    kiln_graph *g = pt_build(build_div_zero);
    char *before = kiln_graph_to_text(g);
    kiln_status *st = kiln_status_new();
    pass_context cx;
    pass_context_init(&cx, st);
    bool changed = true;
    assert_int_equal(pass_fold(g, &cx, &changed), KILN_OK);
    assert_false(changed);
    assert_int_equal(kiln_status_code(st), KILN_OK);
    pass_context_clear(&cx);
    pt_assert_text(g, before, "after");
    kiln_free(before);
    kiln_status_free(st);
    kiln_graph_free(g);
}

/* ---- integers and bools fold exactly; a declared constant output stays ---- */

static void build_ints(kiln_graph *g)
{
    kiln_value x = kiln_placeholder(g, "x", KILN_I64, 1, (int64_t[]){3});
    kiln_tensor *t = tu_i64(1, (int64_t[]){3}, (int64_t[]){1, -2, 3});
    kiln_value a = kiln_constant(g, "a", t);
    kiln_tensor_free(t);
    kiln_value m = kiln_name(g, kiln_maximum(g, a, kiln_scalar(g, KILN_I64, 0)), "m");
    kiln_value gt = kiln_name(g, kiln_greater(g, m, kiln_scalar(g, KILN_I64, 1)), "gt");
    kiln_value y = kiln_name(g, kiln_where(g, gt, x, m), "y");
    pt_outputs(g, 2, (kiln_value[]){y, m});
}

static void test_fold_ints(void **state)
{
    (void)state;
    pt_check(build_ints, "fold,dce",
             "%0 = Placeholder() {dtype=i64, shape=[3]} : i64[3]  # x\n"
             "%1 = Constant() {value=<i64[3] 1,-2,3>} : i64[3]  # a\n"
             "%2 = Constant() {value=<i64[] 0>} : i64[]  # Constant_2\n"
             "%3 = Maximum(%1, %2) : i64[3]  # m\n"
             "%4 = Constant() {value=<i64[] 1>} : i64[]  # Constant_4\n"
             "%5 = Greater(%3, %4) : bool[3]  # gt\n"
             "%6 = Where(%5, %0, %3) : i64[3]  # y\n",
             "%0 = Placeholder() {dtype=i64, shape=[3]} : i64[3]  # x\n"
             "%1 = Constant() {value=<i64[3] 1,0,3>} : i64[3]  # m\n"
             "%2 = Constant() {value=<bool[3] 0,0,1>} : bool[3]  # gt\n"
             "%3 = Where(%2, %0, %1) : i64[3]  # y\n",
             0);
}

/* ---- the remap follows nodes through folding ---- */

static void test_fold_remap(void **state)
{
    (void)state;
    kiln_graph *g = pt_build(build_chain);
    pass_context cx;
    pass_context_init(&cx, NULL);
    assert_int_equal(pass_run_pipeline(g, "fold", &cx), KILN_OK);
    assert_int_equal(cx.remap[0], 0);  /* x */
    assert_int_equal(cx.remap[3], -1); /* s: folded away */
    assert_int_equal(cx.remap[7], 2);  /* y */
    pass_context_clear(&cx);
    kiln_graph_free(g);
}

/* ---- nothing to fold: unchanged, no compaction ---- */

static void test_fold_nothing(void **state)
{
    (void)state;
    kiln_graph *g = pt_build(build_expand);
    pass_context cx;
    pass_context_init(&cx, NULL);
    cx.fold_limit = 16;
    bool changed = true;
    assert_int_equal(pass_fold(g, &cx, &changed), KILN_OK);
    assert_false(changed);
    pass_context_clear(&cx);
    pt_assert_text(g, expand_text, "after");
    kiln_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_fold_chain),
        TU_TEST(test_fold_weight_transpose),
        TU_TEST(test_fold_respects_limit),
        TU_TEST(test_fold_limit_partial),
        TU_TEST(test_fold_default_limit),
        TU_TEST(test_fold_skips_random_and_state),
        TU_TEST(test_fold_multiple_outputs),
        TU_TEST(test_fold_leaves_failing_node),
        TU_TEST(test_fold_ints),
        TU_TEST(test_fold_remap),
        TU_TEST(test_fold_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
