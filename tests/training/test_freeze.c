/* test_freeze.c -- kiln_graph_freeze: after a few training steps the frozen
 * graph holds no variables or Assigns, keeps only what the declared
 * outputs need, gives the trained session's outputs (reference and JIT,
 * and after a save/load round trip), and reports bad requests. */
#include "common/testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    kiln_graph *g;
    kiln_value x, y, logits, loss, train;
    kiln_tensor *xv, *yv;
} mlp;

static mlp make_mlp(int declare)
{
    mlp m;
    m.g = kiln_graph_new();
    kiln_graph *g = m.g;
    m.x = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){4, 3});
    m.y = kiln_placeholder(g, "y", KILN_I64, 1, (int64_t[]){4});
    kiln_tensor *w1 = kiln_init_glorot_uniform(KILN_F32, 2, (int64_t[]){3, 5}, 1, NULL);
    kiln_tensor *b1 = kiln_init_zeros(KILN_F32, 1, (int64_t[]){5}, NULL);
    kiln_tensor *w2 = kiln_init_glorot_uniform(KILN_F32, 2, (int64_t[]){5, 2}, 2, NULL);
    kiln_value h = kiln_relu(g, kiln_add(g, kiln_matmul(g, m.x, kiln_variable(g, "w1", w1)),
                                         kiln_variable(g, "b1", b1)));
    m.logits = kiln_name(g, kiln_matmul(g, h, kiln_variable(g, "w2", w2)), "logits");
    kiln_tensor_free(w1);
    kiln_tensor_free(b1);
    kiln_tensor_free(w2);
    m.loss = kiln_loss_softmax_cross_entropy(g, m.logits, m.y, KILN_REDUCTION_MEAN);
    kiln_optimizer o;
    kiln_optimizer_init(&o, KILN_OPTIMIZER_MOMENTUM, 0.5);
    m.train = kiln_minimize(g, m.loss, &o, NULL);
    assert_true(kiln_value_ok(m.train));
    if (declare) kiln_graph_set_outputs(g, &m.logits, 1);
    m.xv = tu_random(KILN_F32, 2, (int64_t[]){4, 3}, -1, 1, 5);
    m.yv = tu_i64(1, (int64_t[]){4}, (int64_t[]){0, 1, 1, 0});
    return m;
}

static void free_mlp(mlp *m)
{
    kiln_tensor_free(m->xv);
    kiln_tensor_free(m->yv);
    kiln_graph_free(m->g);
}

static kiln_session *trained(mlp *m)
{
    kiln_session *s = kiln_session_new(m->g, NULL, NULL);
    assert_non_null(s);
    kiln_value phs[2] = {m->x, m->y};
    kiln_tensor *feeds[2] = {m->xv, m->yv};
    for (int i = 0; i < 3; i++) {
        kiln_status *st = kiln_status_new();
        kiln_session_run(s, phs, feeds, 2, NULL, NULL, 0, &m->train, 1, st);
        assert_int_equal(kiln_status_code(st), KILN_OK);
        kiln_status_free(st);
    }
    return s;
}

static int count_ops(const kiln_graph *g, const char *op)
{
    int n = 0;
    for (int i = 0; i < kiln_graph_node_count(g); i++)
        if (!strcmp(kiln_value_op_name(g, (kiln_value){i, 0}), op)) n++;
    return n;
}

static double *to_doubles(const kiln_tensor *t)
{
    size_t n = kiln_tensor_size(t);
    double *d = malloc(n * sizeof *d);
    for (size_t i = 0; i < n; i++) d[i] = ((const float *)kiln_tensor_const_data(t))[i];
    return d;
}

static void test_frozen_matches_session(void **state)
{
    (void)state;
    mlp m = make_mlp(1);
    kiln_session *s = trained(&m);
    kiln_tensor *want = NULL;
    kiln_session_run(s, &m.x, &m.xv, 1, &m.logits, &want, 1, NULL, 0, NULL);
    assert_non_null(want);
    double *wd = to_doubles(want);
    /* Training moved the weights away from their initial values. */
    kiln_tensor *w1 = kiln_session_variable(s, kiln_graph_find(m.g, "w1"), NULL);
    kiln_tensor *w1_init = kiln_init_glorot_uniform(KILN_F32, 2, (int64_t[]){3, 5}, 1, NULL);
    assert_memory_not_equal(kiln_tensor_data(w1), kiln_tensor_data(w1_init), kiln_tensor_nbytes(w1));
    kiln_tensor_free(w1_init);

    kiln_status *st = kiln_status_new();
    kiln_graph *f = kiln_graph_freeze(m.g, s, st);
    if (!f) fail_msg("freeze: %s", kiln_status_message(st));
    assert_int_equal(kiln_graph_verify(f, NULL), KILN_OK);
    assert_int_equal(count_ops(f, "Variable"), 0);
    assert_int_equal(count_ops(f, "Assign"), 0);
    assert_int_equal(count_ops(f, "Constant"), 3);
    /* x, w1, b1, w2, MatMul, Add, Relu, MatMul: no gradient or optimizer
     * nodes, and not the labels' placeholder y, which only the loss used. */
    assert_int_equal(kiln_graph_node_count(f), 8);
    assert_false(kiln_value_ok(kiln_graph_find(f, "y")));
    kiln_value ins[2];
    assert_int_equal(kiln_graph_inputs(f, ins, 2), 1);
    kiln_value fw1 = kiln_graph_find(f, "w1");
    assert_string_equal(kiln_value_op_name(f, fw1), "Constant");
    kiln_value out;
    assert_int_equal(kiln_graph_outputs(f, &out, 1), 1);
    assert_string_equal(kiln_value_node_name(f, out), "logits");
    kiln_value fx = kiln_graph_find(f, "x");
    /* The constant holds the trained value, and the outputs agree. */
    kiln_tensor *cw1 = tu_run(f, fw1, 0, NULL, NULL);
    assert_memory_equal(kiln_tensor_data(cw1), kiln_tensor_data(w1), kiln_tensor_nbytes(w1));
    kiln_tensor_free(cw1);
    kiln_tensor_free(w1);
    for (int be = 0; be < 2; be++) {
        kiln_tensor *got = NULL;
        int rc = tu_run_backend(f, be ? KILN_BACKEND_DEFAULT : KILN_BACKEND_REFERENCE, 1, &out, &got,
                                1, &fx, &m.xv, NULL, 0);
        assert_int_equal(rc, KILN_OK);
        tu_assert_close(got, wd, 8, 1e-5, 1e-6);
        kiln_tensor_free(got);
    }
    /* Saved for deployment and loaded back, it still agrees. */
    char path[] = "/tmp/kiln-frozen-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    kiln_graph_save(f, path, st);
    assert_int_equal(kiln_status_code(st), KILN_OK);
    kiln_graph *l = kiln_graph_load(path, st);
    unlink(path);
    assert_non_null(l);
    kiln_value lout;
    assert_int_equal(kiln_graph_outputs(l, &lout, 1), 1);
    kiln_value lx = kiln_graph_find(l, "x");
    kiln_tensor *got = tu_run(l, lout, 1, &lx, &m.xv);
    tu_assert_close(got, wd, 8, 1e-6, 0);
    kiln_tensor_free(got);
    kiln_graph_free(l);
    /* The session and its graph are unchanged by freezing. */
    kiln_tensor *again = NULL;
    kiln_session_run(s, &m.x, &m.xv, 1, &m.logits, &again, 1, NULL, 0, NULL);
    tu_assert_close(again, wd, 8, 0, 0);
    kiln_tensor_free(again);
    kiln_graph_free(f);
    kiln_status_free(st);
    free(wd);
    kiln_tensor_free(want);
    kiln_session_free(s);
    free_mlp(&m);
}

static void test_without_declared_outputs(void **state)
{
    (void)state;
    mlp m = make_mlp(0);
    kiln_session *s = trained(&m);
    kiln_value phs[2] = {m.x, m.y};
    kiln_tensor *feeds[2] = {m.xv, m.yv};
    kiln_tensor *want = NULL;
    kiln_session_run(s, phs, feeds, 2, &m.loss, &want, 1, NULL, 0, NULL);
    assert_non_null(want);
    kiln_graph *f = kiln_graph_freeze(m.g, s, NULL);
    assert_non_null(f);
    assert_int_equal(count_ops(f, "Variable"), 0);
    assert_int_equal(count_ops(f, "Assign"), 0);
    /* Every node but the Assigns and what uses them is kept, in order, so
     * the loss keeps its node index... by name: */
    kiln_value floss = kiln_graph_find(f, kiln_value_node_name(m.g, m.loss));
    assert_true(kiln_value_ok(floss));
    kiln_value fphs[2] = {kiln_graph_find(f, "x"), kiln_graph_find(f, "y")};
    kiln_tensor *got = tu_run(f, floss, 2, fphs, feeds);
    double wl = ((float *)kiln_tensor_data(want))[0];
    tu_assert_close(got, &wl, 1, 1e-6, 0);
    kiln_tensor_free(got);
    kiln_tensor_free(want);
    kiln_graph_free(f);
    kiln_session_free(s);
    free_mlp(&m);
}

static void test_errors(void **state)
{
    (void)state;
    mlp m = make_mlp(0);
    kiln_value outs[2] = {m.logits, m.train};
    kiln_graph_set_outputs(m.g, outs, 2);
    kiln_session *s = kiln_session_new(m.g, NULL, NULL);
    kiln_status *st = kiln_status_new();
    assert_null(kiln_graph_freeze(m.g, s, st));
    assert_int_equal(kiln_status_code(st), KILN_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(kiln_status_message(st), "declared output 1"));
    assert_non_null(strstr(kiln_status_message(st), "depends on an Assign"));
    mlp other = make_mlp(1);
    assert_null(kiln_graph_freeze(other.g, s, st));
    assert_non_null(strstr(kiln_status_message(st), "not a session on this graph"));
    assert_null(kiln_graph_freeze(NULL, s, st));
    assert_int_equal(kiln_status_code(st), KILN_ERR_INVALID_ARGUMENT);
    kiln_status_free(st);
    kiln_session_free(s);
    free_mlp(&other);
    free_mlp(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_frozen_matches_session),
        TU_TEST(test_without_declared_outputs),
        TU_TEST(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
