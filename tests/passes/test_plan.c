/* test_plan.c -- memory planning (passes/plan.c): golden plans for chains
 * that run in place, values that must not (still read later, broadcast,
 * read by a non-elementwise kernel), fetches, the arena size, a plan dropped
 * by a later pass, symbolic shapes, which default pipeline a graph gets,
 * and compiled results at -O0 (planned by the code generator) and with the
 * default pipeline against the reference kernels. */
#include "common/testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../codegen/cg_internal.h"
#include "../passes/passes.h"

static void run(kiln_graph *g, const char *pipeline)
{
    kiln_status *st = kiln_status_new();
    pass_context cx;
    pass_context_init(&cx, st);
    int rc = pass_run_pipeline(g, pipeline, &cx);
    pass_context_clear(&cx);
    if (rc) fail_msg("pipeline '%s': %s", pipeline, kiln_status_message(st));
    kiln_status_free(st);
}

static void assert_text(const kiln_graph *g, const char *want)
{
    char *got = kiln_graph_to_text(g);
    assert_non_null(got);
    if (strcmp(got, want)) print_message("got:\n%swant:\n%s", got, want);
    assert_string_equal(got, want);
    kiln_free(got);
}

/* exp -> neg -> tanh: each output takes its dying input's place, so the
 * two intermediates share one buffer; the last is the fetch. */
static void test_chain_in_place(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 1, (int64_t[]){256});
    kiln_value y = kiln_name(g, kiln_tanh(g, kiln_neg(g, kiln_exp(g, x))), "y");
    kiln_graph_set_outputs(g, &y, 1);
    run(g, "plan");
    assert_text(g, "%0 = Placeholder() {dtype=f32, shape=[256]} : f32[256]  # x\n"
                   "%1 = Exp(%0) : f32[256]  # Exp_1  [arena +0]\n"
                   "%2 = Neg(%1) : f32[256]  # Neg_2  [arena +0 in place of %1]\n"
                   "%3 = Tanh(%2) : f32[256]  # y  [fetch 0]\n");
    assert_non_null(g->mem_plan);
    assert_int_equal(g->mem_plan->arena_size, 256 * 4);
    kiln_graph_free(g);
}

/* a = exp(x) is read again after neg: b = neg(a) needs its own buffer;
 * c = a + b then takes a's place (both die there). 2 buffers, not 3. */
static void test_value_read_later(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 1, (int64_t[]){100});
    kiln_value a = kiln_exp(g, x);
    kiln_value b = kiln_neg(g, a);
    kiln_value c = kiln_add(g, a, b);
    kiln_value y = kiln_name(g, kiln_tanh(g, c), "y");
    kiln_graph_set_outputs(g, &y, 1);
    run(g, "plan");
    assert_text(g, "%0 = Placeholder() {dtype=f32, shape=[100]} : f32[100]  # x\n"
                   "%1 = Exp(%0) : f32[100]  # Exp_1  [arena +0]\n"
                   "%2 = Neg(%1) : f32[100]  # Neg_2  [arena +448]\n"
                   "%3 = Add(%1, %2) : f32[100]  # Add_3  [arena +0 in place of %1]\n"
                   "%4 = Tanh(%3) : f32[100]  # y  [fetch 0]\n");
    /* 400 bytes, 64-aligned: two buffers of 448 (equal sizes go in value
     * order, so a's chain comes first) */
    assert_int_equal(g->mem_plan->arena_size, 2 * 448);
    kiln_graph_free(g);
}

/* A broadcast input is read at many output elements: never written over.
 * The full-shape input is; a MatMul (not elementwise) never writes over
 * its inputs. */
static void test_not_in_place(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){8, 8});
    kiln_value b = kiln_placeholder(g, "b", KILN_F32, 1, (int64_t[]){8});
    kiln_value e = kiln_exp(g, b);          /* [8], dies at the add */
    kiln_value t = kiln_exp(g, x);          /* [8, 8], dies at the add */
    kiln_value s = kiln_add(g, e, t);       /* takes t's place, not e's */
    kiln_value m = kiln_matmul(g, s, s);    /* s dies here, but MatMul reads it whole */
    kiln_value y = kiln_name(g, kiln_relu(g, m), "y");
    kiln_graph_set_outputs(g, &y, 1);
    run(g, "plan");
    assert_text(g, "%0 = Placeholder() {dtype=f32, shape=[8,8]} : f32[8,8]  # x\n"
                   "%1 = Placeholder() {dtype=f32, shape=[8]} : f32[8]  # b\n"
                   "%2 = Exp(%1) : f32[8]  # Exp_2  [arena +256]\n"
                   "%3 = Exp(%0) : f32[8,8]  # Exp_3  [arena +0]\n"
                   "%4 = Add(%2, %3) : f32[8,8]  # Add_4  [arena +0 in place of %3]\n"
                   "%5 = MatMul(%4, %4) : f32[8,8]  # MatMul_5  [arena +256]\n"
                   "%6 = Relu(%5) : f32[8,8]  # y  [fetch 0]\n");
    kiln_graph_free(g);
}

/* A value fetched twice, or fetched and read later, lives in the arena
 * until the end (it is copied out); a fused chain leaves nothing there. */
static void test_fetches_and_fusion(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 1, (int64_t[]){16});
    kiln_value a = kiln_exp(g, x);
    kiln_value y = kiln_name(g, kiln_neg(g, a), "y");
    kiln_graph_set_outputs(g, (kiln_value[]){a, y, a}, 3);
    run(g, "plan");
    assert_text(g, "%0 = Placeholder() {dtype=f32, shape=[16]} : f32[16]  # x\n"
                   "%1 = Exp(%0) : f32[16]  # Exp_1  [arena +0]\n"
                   "%2 = Neg(%1) : f32[16]  # y  [fetch 1]\n");
    kiln_graph_free(g);

    g = kiln_graph_new();
    x = kiln_placeholder(g, "x", KILN_F32, 1, (int64_t[]){16});
    y = kiln_name(g, kiln_tanh(g, kiln_neg(g, kiln_exp(g, x))), "y");
    kiln_graph_set_outputs(g, &y, 1);
    run(g, "fuse,plan");
    assert_text(g, "%0 = Placeholder() {dtype=f32, shape=[16]} : f32[16]  # x\n"
                   "%1 = Exp(%0) : f32[16]  # Exp_1  [in kernel %3]\n"
                   "%2 = Neg(%1) : f32[16]  # Neg_2  [in kernel %3]\n"
                   "%3 = Tanh(%2) : f32[16]  # y  [kernel %3]  [fetch 0]\n");
    assert_int_equal(g->mem_plan->arena_size, 0);
    /* a pass that changes the graph after the plan drops it */
    kiln_graph_free(g);
    g = kiln_graph_new();
    x = kiln_placeholder(g, "x", KILN_F32, 1, (int64_t[]){16});
    y = kiln_tanh(g, kiln_neg(g, kiln_exp(g, x)));
    kiln_graph_set_outputs(g, &y, 1);
    run(g, "plan");
    assert_non_null(g->mem_plan);
    run(g, "fuse");
    assert_null(g->mem_plan);
    kiln_graph_free(g);

    /* symbolic shapes: planned later, once specialized; no error now */
    g = kiln_graph_new();
    x = kiln_placeholder(g, "x", KILN_F32, 1, (int64_t[]){-1});
    y = kiln_exp(g, x);
    kiln_graph_set_outputs(g, &y, 1);
    run(g, "plan");
    assert_null(g->mem_plan);
    kiln_graph_free(g);
}

/* The passes cg_optimize runs for g (fetching out, running targets). */
static char *passes_run(kiln_graph *g, kiln_value in, kiln_value out, int ntargets, const kiln_value *targets)
{
    ir_type t = *ir_value_type(g, in);
    cg_signature sig = {1, &in, &t, 1, &out, ntargets, targets};
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    cg_options o = {.opt_level = 2, .time_passes = 1, .print_to = f};
    cg_spec spec;
    kiln_status *st = kiln_status_new();
    assert_int_equal(cg_specialize(g, &sig, &spec, st), KILN_OK);
    assert_int_equal(cg_optimize(&spec, &o, st), KILN_OK);
    cg_spec_free(&spec);
    kiln_status_free(st);
    fclose(f);
    return buf;
}

/* A graph that assigns variables gets the training pipeline (no fold_bn);
 * others the inference one; both end with plan. */
static void test_default_pipelines(void **state)
{
    (void)state;
    assert_non_null(strstr(pass_default_pipeline(), "fold_bn"));
    assert_null(strstr(pass_training_pipeline(), "fold_bn"));
    const char *pipes[2] = {pass_default_pipeline(), pass_training_pipeline()};
    for (int i = 0; i < 2; i++) {
        size_t n = strlen(pipes[i]);
        assert_true(n > 5 && strcmp(pipes[i] + n - 5, ",plan") == 0);
    }
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 1, (int64_t[]){4});
    kiln_tensor *z = kiln_tensor_new(KILN_F32, 1, (int64_t[]){4});
    kiln_value w = kiln_variable(g, "w", z);
    kiln_tensor_free(z);
    kiln_value y = kiln_mul(g, x, w);
    kiln_value step = kiln_assign(g, w, kiln_sub(g, w, y));
    char *log = passes_run(g, x, y, 0, NULL);
    assert_non_null(strstr(log, "pass fold_bn"));
    assert_non_null(strstr(log, "pass plan"));
    free(log);
    log = passes_run(g, x, y, 1, &step);
    assert_null(strstr(log, "pass fold_bn"));
    assert_non_null(strstr(log, "pass plan"));
    free(log);
    kiln_graph_free(g);
}

/* Runs g compiled at opt_level and returns output 0 (caller frees). */
static kiln_tensor *run_compiled(kiln_graph *g, int opt_level, kiln_value out, int nfeeds, const kiln_value *phs,
                                 kiln_tensor *const *feeds)
{
    kiln_session_options o;
    kiln_session_options_init(&o);
    o.opt_level = opt_level;
    kiln_status *st = kiln_status_new();
    kiln_session *s = kiln_session_new(g, &o, st);
    assert_non_null(s);
    kiln_tensor *r = NULL;
    kiln_session_run(s, phs, feeds, nfeeds, &out, &r, 1, NULL, 0, st);
    if (kiln_status_code(st)) fail_msg("%s", kiln_status_message(st));
    kiln_session_free(s);
    kiln_status_free(st);
    return r;
}

/* In-place chains, broadcasts and shared reads compute what the reference
 * kernels compute, unfused (-O0: planned by the code generator) and fused. */
static void test_results(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){33, 70});
    kiln_value b = kiln_placeholder(g, "b", KILN_F32, 1, (int64_t[]){70});
    kiln_value a = kiln_exp(g, kiln_mul(g, x, kiln_scalar(g, KILN_F32, 0.5)));
    kiln_value c = kiln_add(g, kiln_neg(g, a), b);
    kiln_value d = kiln_mul(g, kiln_tanh(g, c), a);
    kiln_value e = kiln_sigmoid(g, kiln_sub(g, d, kiln_exp(g, b)));
    kiln_value y = kiln_reduce_sum(g, kiln_matmul(g, e, kiln_transpose(g, e, NULL, 0)), (int64_t[]){1}, 1, 0);
    kiln_tensor *in[2] = {tu_random(KILN_F32, 2, (int64_t[]){33, 70}, -2, 2, 41),
                          tu_random(KILN_F32, 1, (int64_t[]){70}, -2, 2, 42)};
    kiln_value phs[2] = {x, b};
    kiln_tensor *ref = tu_run(g, y, 2, phs, in);
    size_t n = kiln_tensor_size(ref);
    double want[33];
    assert_int_equal(n, 33);
    for (size_t i = 0; i < n; i++) want[i] = ((const float *)kiln_tensor_const_data(ref))[i];
    for (int opt = 0; opt <= 2; opt += 2) {
        kiln_tensor *got = run_compiled(g, opt, y, 2, phs, in);
        tu_assert_close(got, want, n, 1e-5, 1e-5);
        kiln_tensor_free(got);
    }
    kiln_tensor_free(ref);
    for (int i = 0; i < 2; i++) kiln_tensor_free(in[i]);
    kiln_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_chain_in_place),
        TU_TEST(test_value_read_later),
        TU_TEST(test_not_in_place),
        TU_TEST(test_fetches_and_fusion),
        TU_TEST(test_default_pipelines),
        TU_TEST(test_results),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
