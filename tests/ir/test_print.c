/* test_print.c -- the stable text form (compared whole against a golden
 * string) and the Graphviz DOT form of small graphs. */
#include "common/testutil.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ir.h"

static void assert_text(const char *got, const char *want)
{
    if (!got) fail_msg("printer returned NULL");
    if (strcmp(got, want) != 0) fail_msg("text form differs.\n--- got:\n%s--- want:\n%s", got, want);
}

/* The graph of the golden text below. */
static kiln_graph *small_graph(void)
{
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){-1, 3});
    kiln_tensor *t = tu_f32(1, (int64_t[]){3}, (float[]){1, 2.5f, -3});
    kiln_value c = kiln_constant(g, "c", t);
    kiln_tensor_free(t);
    kiln_value s = kiln_name(g, kiln_add(g, x, c), "sum");
    kiln_value a = kiln_leaky_relu(g, s, 0.2);       /* non-default float */
    kiln_value d = kiln_leaky_relu(g, a, 0.01);      /* the default: not printed */
    kiln_value cl = kiln_clip(g, d, 0, INFINITY);     /* min shown, max default */
    kiln_value h = kiln_cast(g, cl, KILN_F16);        /* required: always shown */
    kiln_value k = kiln_scalar(g, KILN_I64, -7);
    kiln_value i = kiln_placeholder(g, "i", KILN_I64, 0, NULL);
    kiln_value m = kiln_maximum(g, i, k);
    kiln_attrs *at = kiln_attrs_new();
    kiln_attrs_string(at, "approximate", "tanh");
    kiln_value ge = kiln_op(g, "Gelu", &cl, 1, at);
    kiln_attrs_free(at);
    (void)h, (void)m, (void)ge;
    assert_null(kiln_graph_error(g));
    return g;
}

static const char small_text[] =
    "%0 = Placeholder() {dtype=f32, shape=[-1,3]} : f32[?,3]  # x\n"
    "%1 = Constant() {value=<f32[3] 1,2.5,-3>} : f32[3]  # c\n"
    "%2 = Add(%0, %1) : f32[?,3]  # sum\n"
    "%3 = LeakyRelu(%2) {alpha=0.2} : f32[?,3]  # LeakyRelu_3\n"
    "%4 = LeakyRelu(%3) : f32[?,3]  # LeakyRelu_4\n"
    "%5 = Clip(%4) {min=0} : f32[?,3]  # Clip_5\n"
    "%6 = Cast(%5) {to=f16} : f16[?,3]  # Cast_6\n"
    "%7 = Constant() {value=<i64[] -7>} : i64[]  # Constant_7\n"
    "%8 = Placeholder() {dtype=i64, shape=[]} : i64[]  # i\n"
    "%9 = Maximum(%8, %7) : i64[]  # Maximum_9\n"
    "%10 = Gelu(%5) {approximate=\"tanh\"} : f32[?,3]  # Gelu_10\n";

static void test_text_golden(void **state)
{
    (void)state;
    kiln_graph *g = small_graph();
    char *txt = kiln_graph_to_text(g);
    assert_text(txt, small_text);
    kiln_free(txt);
    /* stable: printing twice gives the same text */
    txt = kiln_graph_to_text(g);
    assert_text(txt, small_text);
    kiln_free(txt);
    kiln_graph_free(g);
    assert_null(kiln_graph_to_text(NULL));
    assert_null(kiln_graph_to_dot(NULL));
}

static void test_text_empty_and_values(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    char *txt = kiln_graph_to_text(g);
    assert_text(txt, "");
    kiln_free(txt);

    /* tensor attributes: more than 8 elements print only the type; special
     * floats print as inf/nan; bools and halves print their values */
    kiln_tensor *big = kiln_tensor_new(KILN_F64, 2, (int64_t[]){3, 3});
    kiln_constant(g, "big", big);
    kiln_tensor_free(big);
    kiln_tensor *sp = tu_f64(1, (int64_t[]){4}, (double[]){INFINITY, -INFINITY, NAN, 1e-10});
    kiln_constant(g, "special", sp);
    kiln_tensor_free(sp);
    kiln_tensor *b = tu_bool(1, (int64_t[]){3}, (uint8_t[]){1, 0, 1});
    kiln_constant(g, "b", b);
    kiln_tensor_free(b);
    kiln_tensor *e = kiln_tensor_new(KILN_F32, 2, (int64_t[]){0, 4});
    kiln_value ev = kiln_constant(g, "empty", e);
    kiln_tensor_free(e);
    kiln_value hs = kiln_scalar(g, KILN_F16, 0.1); /* 0x2e66 = 0.0999755859375 */
    kiln_value hv = kiln_clip(g, hs, -1.5, 1e300);
    kiln_value n = kiln_neg(g, ev);
    (void)hv, (void)n;
    assert_null(kiln_graph_error(g));
    txt = kiln_graph_to_text(g);
    assert_text(txt,
                "%0 = Constant() {value=<f64[3,3]>} : f64[3,3]  # big\n"
                "%1 = Constant() {value=<f64[4] inf,-inf,nan,1e-10>} : f64[4]  # special\n"
                "%2 = Constant() {value=<bool[3] 1,0,1>} : bool[3]  # b\n"
                "%3 = Constant() {value=<f32[0,4]>} : f32[0,4]  # empty\n"
                "%4 = Constant() {value=<f16[] 0.0999755859>} : f16[]  # Constant_4\n"
                "%5 = Clip(%4) {min=-1.5, max=1e+300} : f16[]  # Clip_5\n"
                "%6 = Neg(%3) : f32[0,4]  # Neg_6\n");
    kiln_free(txt);
    kiln_graph_free(g);
}

/* Nodes with several outputs print "%N, %N.1 = ..." and their consumers
 * "%N.1". No core or elementwise op has two outputs, so this builds a graph
 * and gives one node a second output by hand (the printer only reads the
 * node's recorded types). */
static void test_text_multi_output(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 1, (int64_t[]){2});
    kiln_value y = kiln_identity(g, x);
    kiln_value z = kiln_relu(g, y);
    assert_null(kiln_graph_error(g));
    ir_node *n = ir_graph_node(g, y);
    ir_type *two = ir_arena_alloc(&g->arena, 2 * sizeof(ir_type));
    assert_non_null(two);
    two[0] = n->outputs[0];
    two[1] = (ir_type){.dtype = KILN_I64, .rank = 0};
    n->outputs = two;
    n->noutputs = 2;
    ir_graph_node(g, z)->inputs[0] = (kiln_value){1, 1};
    char *txt = kiln_graph_to_text(g);
    assert_text(txt,
                "%0 = Placeholder() {dtype=f32, shape=[2]} : f32[2]  # x\n"
                "%1, %1.1 = Identity(%0) : f32[2], i64[]  # Identity_1\n"
                "%2 = Relu(%1.1) : f32[2]  # Relu_2\n");
    kiln_free(txt);
    char *dot = kiln_graph_to_dot(g);
    assert_non_null(dot);
    assert_non_null(strstr(dot, "  n1 -> n2 [label=\"1\"];\n"));
    kiln_free(dot);
    kiln_graph_free(g);
}

static void test_print_node(void **state)
{
    (void)state;
    kiln_graph *g = small_graph();
    ir_buf b = {0};
    ir_print_node(&b, g, 6);
    char *line = ir_buf_take(&b);
    assert_text(line, "%6 = Cast(%5) {to=f16} : f16[?,3]  # Cast_6");
    ir_free(line);
    kiln_graph_free(g);
}

static void test_dot(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){-1, 3});
    kiln_value c = kiln_scalar(g, KILN_F32, 2);
    kiln_value y = kiln_mul(g, x, c);
    kiln_value q = kiln_name(g, kiln_relu(g, y), "say \"hi\"\\");
    kiln_value s = kiln_add(g, q, y);
    (void)s;
    assert_null(kiln_graph_error(g));
    char *dot = kiln_graph_to_dot(g);
    assert_non_null(dot);
    assert_int_equal(strncmp(dot, "digraph kiln {\n", 15), 0);
    assert_string_equal(dot + strlen(dot) - 2, "}\n");
    static const char *const want[] = {
        "  n0 [shape=ellipse, label=\"x\\nPlaceholder\\nf32[?,3]\"];\n",
        "  n1 [shape=ellipse, label=\"Constant_1\\nConstant\\nf32[]\"];\n",
        "  n2 [shape=box, label=\"Mul_2\\nMul\\nf32[?,3]\"];\n",
        "  n3 [shape=box, label=\"say \\\"hi\\\"\\\\\\nRelu\\nf32[?,3]\"];\n",
        "  n4 [shape=box, label=\"Add_4\\nAdd\\nf32[?,3]\"];\n",
        "  n0 -> n2;\n",
        "  n1 -> n2;\n",
        "  n2 -> n3;\n",
        "  n3 -> n4;\n",
        "  n2 -> n4;\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr(dot, want[i])) fail_msg("DOT lacks '%s':\n%s", want[i], dot);
    /* exactly five edges */
    int edges = 0;
    for (const char *p = dot; (p = strstr(p, " -> ")); p++) edges++;
    assert_int_equal(edges, 5);
    kiln_free(dot);
    kiln_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_text_golden),
        TU_TEST(test_text_empty_and_values),
        TU_TEST(test_text_multi_output),
        TU_TEST(test_print_node),
        TU_TEST(test_dot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
