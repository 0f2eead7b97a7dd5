/* test_train_alloc_failures.c -- the training API under allocation
 * failures: the n-th allocation fails, for n = 0, 1, 2, ... until the call
 * succeeds; every failure must return an out-of-memory error (status or
 * graph error), change nothing it should not, and leak nothing. */
#include "common/testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ir.h"

#define MAX_STEPS 20000

static void assert_no_leak(long base, long n)
{
    long live = ir_alloc_live_blocks();
    if (live != base) fail_msg("fail_after(%ld): %ld blocks leaked", n, live - base);
}

typedef struct {
    kiln_graph *g;
    kiln_value x, y, w, logits, loss;
} small;

static small build(void)
{
    small m;
    m.g = kiln_graph_new();
    m.x = kiln_placeholder(m.g, "x", KILN_F32, 2, (int64_t[]){2, 3});
    m.y = kiln_placeholder(m.g, "y", KILN_I64, 1, (int64_t[]){2});
    kiln_tensor *w0 = tu_f32(2, (int64_t[]){3, 2}, (float[]){1, -1, 0.5f, 2, -0.5f, 0});
    m.w = kiln_variable(m.g, "w", w0);
    kiln_tensor_free(w0);
    m.logits = kiln_matmul(m.g, m.x, m.w);
    m.loss = kiln_value_invalid();
    return m;
}

static void test_sweep_losses_and_minimize(void **state)
{
    (void)state;
    long base = ir_alloc_live_blocks(), n;
    int failures = 0;
    for (n = 0; n < MAX_STEPS; n++) {
        small m = build();
        kiln_status *st = kiln_status_new();
        ir_alloc_fail_after(n);
        kiln_value loss = kiln_loss_softmax_cross_entropy(m.g, m.logits, m.y, KILN_REDUCTION_MEAN);
        kiln_optimizer o;
        kiln_optimizer_init(&o, KILN_OPTIMIZER_ADAM, 0.1);
        o.clip_global_norm = 1;
        kiln_value train = kiln_minimize(m.g, loss, &o, st);
        bool failed = ir_alloc_failed();
        ir_alloc_fail_after(-1);
        if (failed) {
            failures++;
            assert_false(kiln_value_ok(train));
            /* Out of memory, or how the builders report an attribute bag
             * that ran out of memory (INVALID_ARGUMENT, "the attribute bag
             * is incomplete"): never success, never INTERNAL. */
            int code = kiln_status_code(st);
            if (code == KILN_OK || code == KILN_ERR_INTERNAL)
                fail_msg("fail_after(%ld): %s %s", n, kiln_status_code_name(code),
                         kiln_status_message(st));
        } else {
            assert_true(kiln_value_ok(train));
            assert_int_equal(kiln_graph_verify(m.g, NULL), KILN_OK);
        }
        kiln_status_free(st);
        kiln_graph_free(m.g);
        assert_no_leak(base, n);
        if (!failed) break;
    }
    assert_true(n < MAX_STEPS);
    assert_true(failures > 20);
    print_message("losses + minimize: %ld failure points\n", n);
}

static void test_sweep_checkpoint_and_freeze(void **state)
{
    (void)state;
    small m = build();
    kiln_value target = kiln_scalar(m.g, KILN_F32, 1);
    m.loss = kiln_loss_mse(m.g, kiln_reduce_sum(m.g, m.logits, NULL, 0, 0), target,
                           KILN_REDUCTION_SUM);
    kiln_optimizer o;
    kiln_optimizer_init(&o, KILN_OPTIMIZER_MOMENTUM, 0.1);
    kiln_value train = kiln_minimize(m.g, m.loss, &o, NULL);
    assert_true(kiln_value_ok(train));
    kiln_graph_set_outputs(m.g, &m.logits, 1);
    kiln_session_options so;
    kiln_session_options_init(&so);
    so.backend = KILN_BACKEND_REFERENCE;
    kiln_session *s = kiln_session_new(m.g, &so, NULL);
    kiln_tensor *xv = tu_f32(2, (int64_t[]){2, 3}, (float[]){1, 2, 3, 4, 5, 6});
    kiln_session_run(s, &m.x, &xv, 1, NULL, NULL, 0, &train, 1, NULL);
    kiln_tensor *trained_w = kiln_session_variable(s, m.w, NULL);
    char dir[] = "/tmp/kiln-ckpt-oom-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/m.ckpt", dir);
    long base = ir_alloc_live_blocks(), n;

    /* save */
    for (n = 0; n < MAX_STEPS; n++) {
        kiln_status *st = kiln_status_new();
        ir_alloc_fail_after(n);
        int rc = kiln_session_save_variables(s, path, st);
        bool failed = ir_alloc_failed();
        ir_alloc_fail_after(-1);
        if (failed) assert_int_equal(rc, KILN_ERR_OUT_OF_MEMORY);
        else assert_int_equal(rc, KILN_OK);
        kiln_status_free(st);
        assert_no_leak(base, n);
        if (!failed) break;
    }
    assert_true(n > 0 && n < MAX_STEPS);

    /* restore into a fresh session: on failure its w stays at the start */
    kiln_session *s2 = kiln_session_new(m.g, &so, NULL);
    kiln_tensor *w0 = kiln_session_variable(s2, m.w, NULL);
    base = ir_alloc_live_blocks();
    for (n = 0; n < MAX_STEPS; n++) {
        kiln_status *st = kiln_status_new();
        ir_alloc_fail_after(n);
        int rc = kiln_session_restore_variables(s2, path, st);
        bool failed = ir_alloc_failed();
        ir_alloc_fail_after(-1);
        kiln_tensor *now = kiln_session_variable(s2, m.w, NULL);
        if (failed) {
            assert_int_equal(rc, KILN_ERR_OUT_OF_MEMORY);
            assert_memory_equal(kiln_tensor_data(now), kiln_tensor_data(w0), kiln_tensor_nbytes(w0));
        } else {
            assert_int_equal(rc, KILN_OK);
            assert_memory_equal(kiln_tensor_data(now), kiln_tensor_data(trained_w),
                                kiln_tensor_nbytes(w0));
        }
        kiln_tensor_free(now);
        kiln_status_free(st);
        assert_no_leak(base, n);
        if (!failed) break;
    }
    assert_true(n > 0 && n < MAX_STEPS);

    /* freeze */
    for (n = 0; n < MAX_STEPS; n++) {
        kiln_status *st = kiln_status_new();
        ir_alloc_fail_after(n);
        kiln_graph *f = kiln_graph_freeze(m.g, s, st);
        bool failed = ir_alloc_failed();
        ir_alloc_fail_after(-1);
        if (failed) {
            assert_null(f);
            assert_int_equal(kiln_status_code(st), KILN_ERR_OUT_OF_MEMORY);
        } else {
            assert_non_null(f);
            assert_int_equal(kiln_graph_verify(f, NULL), KILN_OK);
            kiln_value fw = kiln_graph_find(f, "w");
            assert_string_equal(kiln_value_op_name(f, fw), "Constant");
        }
        kiln_graph_free(f);
        kiln_status_free(st);
        assert_no_leak(base, n);
        if (!failed) break;
    }
    assert_true(n > 0 && n < MAX_STEPS);

    /* initializers */
    for (n = 0; n < MAX_STEPS; n++) {
        ir_alloc_fail_after(n);
        kiln_tensor *t = kiln_init_he_normal(KILN_F32, 2, (int64_t[]){4, 4}, 1, NULL);
        bool failed = ir_alloc_failed();
        ir_alloc_fail_after(-1);
        assert_true(failed == (t == NULL));
        kiln_tensor_free(t);
        assert_no_leak(base, n);
        if (!failed) break;
    }

    unlink(path);
    rmdir(dir);
    kiln_tensor_free(w0);
    kiln_tensor_free(trained_w);
    kiln_tensor_free(xv);
    kiln_session_free(s2);
    kiln_session_free(s);
    kiln_graph_free(m.g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_sweep_losses_and_minimize),
        TU_TEST(test_sweep_checkpoint_and_freeze),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
