/* test_cse.c -- common-subexpression elimination: duplicates merge (golden
 * text, same results), chains of duplicates merge in one sweep, and nodes
 * with effects or per-run values never merge: Assign, Variable, random ops. */
#include "pass_test.h"

static void build_dups(kiln_graph *g)
{
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 1, (int64_t[]){3});
    kiln_value c1 = pt_const(g, "c1", 1, (int64_t[]){3}, (float[]){1, 2, 3});
    kiln_value c2 = pt_const(g, "c2", 1, (int64_t[]){3}, (float[]){1, 2, 3});
    kiln_value a = kiln_name(g, kiln_add(g, x, c1), "a");
    kiln_value b = kiln_name(g, kiln_add(g, x, c2), "b");
    kiln_value ea = kiln_name(g, kiln_exp(g, a), "ea");
    kiln_value eb = kiln_name(g, kiln_exp(g, b), "eb");
    kiln_value l1 = kiln_name(g, kiln_leaky_relu(g, ea, 0.1), "l1");
    kiln_value l2 = kiln_name(g, kiln_leaky_relu(g, eb, 0.2), "l2"); /* other attribute: stays */
    kiln_value y = kiln_name(g, kiln_add(g, l1, l2), "y");
    pt_outputs(g, 1, &y);
}

static void test_cse_merges(void **state)
{
    (void)state;
    pt_check(build_dups, "cse",
             "%0 = Placeholder() {dtype=f32, shape=[3]} : f32[3]  # x\n"
             "%1 = Constant() {value=<f32[3] 1,2,3>} : f32[3]  # c1\n"
             "%2 = Constant() {value=<f32[3] 1,2,3>} : f32[3]  # c2\n"
             "%3 = Add(%0, %1) : f32[3]  # a\n"
             "%4 = Add(%0, %2) : f32[3]  # b\n"
             "%5 = Exp(%3) : f32[3]  # ea\n"
             "%6 = Exp(%4) : f32[3]  # eb\n"
             "%7 = LeakyRelu(%5) {alpha=0.1} : f32[3]  # l1\n"
             "%8 = LeakyRelu(%6) {alpha=0.2} : f32[3]  # l2\n"
             "%9 = Add(%7, %8) : f32[3]  # y\n",
             "%0 = Placeholder() {dtype=f32, shape=[3]} : f32[3]  # x\n"
             "%1 = Constant() {value=<f32[3] 1,2,3>} : f32[3]  # c1\n"
             "%2 = Add(%0, %1) : f32[3]  # a\n"
             "%3 = Exp(%2) : f32[3]  # ea\n"
             "%4 = LeakyRelu(%3) {alpha=0.1} : f32[3]  # l1\n"
             "%5 = LeakyRelu(%3) {alpha=0.2} : f32[3]  # l2\n"
             "%6 = Add(%4, %5) : f32[3]  # y\n",
             0);
}

/* Two random ops with the same attributes draw different numbers: never
 * one node. Nor are their users merged. */
static void build_random(kiln_graph *g)
{
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 1, (int64_t[]){3});
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_ints(a, "shape", (int64_t[]){3}, 1);
    kiln_value r1 = kiln_name(g, kiln_op(g, "RandomUniform", NULL, 0, a), "r1");
    kiln_value r2 = kiln_name(g, kiln_op(g, "RandomUniform", NULL, 0, a), "r2");
    kiln_value n1 = kiln_name(g, kiln_op(g, "RandomNormal", NULL, 0, a), "n1");
    kiln_value n2 = kiln_name(g, kiln_op(g, "RandomNormal", NULL, 0, a), "n2");
    kiln_attrs_free(a);
    kiln_value s1 = kiln_name(g, kiln_add(g, x, r1), "s1");
    kiln_value s2 = kiln_name(g, kiln_add(g, x, r2), "s2");
    kiln_value t = kiln_name(g, kiln_sub(g, n1, n2), "t");
    kiln_value y = kiln_name(g, kiln_add(g, kiln_sub(g, s1, s2), t), "y");
    pt_outputs(g, 1, &y);
}

static void test_cse_keeps_random(void **state)
{
    (void)state;
    kiln_graph *g = pt_build(build_random);
    char *before = kiln_graph_to_text(g);
    pt_run(g, "cse");
    pt_assert_text(g, before, "after");
    kiln_free(before);
    kiln_graph_free(g);
}

/* Two Assigns of the same value to the same variable are two effects, and
 * two variables with the same initial value are two pieces of state. */
static void build_assign(kiln_graph *g)
{
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 1, (int64_t[]){2});
    kiln_tensor *init = tu_f32(1, (int64_t[]){2}, (float[]){0, 0});
    kiln_value v = kiln_variable(g, "v", init);
    kiln_value w = kiln_variable(g, "w", init);
    kiln_tensor_free(init);
    kiln_value a1 = kiln_name(g, kiln_assign(g, v, x), "a1");
    kiln_value a2 = kiln_name(g, kiln_assign(g, v, x), "a2");
    kiln_value s = kiln_name(g, kiln_add(g, v, w), "s");
    pt_outputs(g, 3, (kiln_value[]){a1, a2, s});
}

static void test_cse_keeps_assign_and_variables(void **state)
{
    (void)state;
    kiln_graph *g = pt_build(build_assign);
    static const char text[] =
        "%0 = Placeholder() {dtype=f32, shape=[2]} : f32[2]  # x\n"
        "%1 = Variable() {value=<f32[2] 0,0>} : f32[2]  # v\n"
        "%2 = Variable() {value=<f32[2] 0,0>} : f32[2]  # w\n"
        "%3 = Assign(%1, %0) : f32[2]  # a1\n"
        "%4 = Assign(%1, %0) : f32[2]  # a2\n"
        "%5 = Add(%1, %2) : f32[2]  # s\n";
    pt_assert_text(g, text, "before");
    pt_run(g, "cse");
    pt_assert_text(g, text, "after");
    /* the default pipeline keeps them too */
    pt_run(g, pass_default_pipeline());
    kiln_value outs[3];
    assert_int_equal(kiln_graph_outputs(g, outs, 3), 3);
    assert_int_not_equal(outs[0].node, outs[1].node);
    assert_string_equal(kiln_value_op_name(g, outs[0]), "Assign");
    assert_string_equal(kiln_value_op_name(g, outs[1]), "Assign");
    kiln_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_cse_merges),
        TU_TEST(test_cse_keeps_random),
        TU_TEST(test_cse_keeps_assign_and_variables),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
