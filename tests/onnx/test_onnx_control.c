/* test_onnx_control.c -- ONNX control flow imported into static graphs:
 * If with a folded condition (one branch inlined) and a run-time one
 * (both branches and Where), Scan with reversed inputs and outputs on
 * other axes and opset 8's batched Scan, Loop with a constant trip count
 * and with a condition that folds, an If holding a Loop whose body uses
 * values two graphs out, and the errors (a data-dependent trip count,
 * branches of different shapes, the unroll cap, nesting too deep), plus
 * an allocation-failure sweep. tests/onnx/control_models.py
 * (python3-onnx, python3-numpy) writes the models and numpy's expected
 * outputs; nothing is committed. */
#include "common/testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "ir.h"

static char dir[64];
static char root[4096];

static int setup(void **state)
{
    (void)state;
    snprintf(root, sizeof root, "%s", KILN_BUILD_DIR);
    char *slash = strrchr(root, '/');
    if (slash) *slash = 0;
    snprintf(dir, sizeof dir, "/tmp/kiln-control-XXXXXX");
    if (!mkdtemp(dir)) return -1;
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 %s/tests/onnx/control_models.py %s > %s/models.log 2>&1", root, dir,
             dir);
    int st = system(cmd);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        snprintf(cmd, sizeof cmd, "tail -20 %s/models.log", dir);
        if (system(cmd)) {
        }
        fprintf(stderr,
                "tests/onnx/control_models.py failed (python3-onnx, python3-numpy: make deps)\n");
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static const char *model_path(const char *name)
{
    static char p[256];
    snprintf(p, sizeof p, "%s/%s.onnx", dir, name);
    return p;
}

static kiln_tensor *load_npy(const char *data, const char *kind, int k)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s.%s%d.npy", dir, data, kind, k);
    kiln_status *st = kiln_status_new();
    kiln_tensor *t = kiln_tensor_read_npy(path, st);
    if (!t) fail_msg("%s: %s", path, kiln_status_message(st));
    kiln_status_free(st);
    return t;
}

/* Imports `model`, runs it on data set `data` with both backends and
 * compares every output with numpy's. */
static void check(const char *model, const char *data, int nin, const char *const *ins, int nout,
                  const char *const *outs)
{
    kiln_status *st = kiln_status_new();
    kiln_graph *g = kiln_import_onnx(model_path(model), NULL, st);
    if (!g) fail_msg("importing %s: %s", model, kiln_status_message(st));
    kiln_value ph[8], fetch[8];
    kiln_tensor *feed[8], *want[8], *got[8] = {0};
    assert_true(nin <= 8 && nout <= 8);
    for (int i = 0; i < nin; i++) {
        ph[i] = kiln_graph_find(g, ins[i]);
        assert_true(kiln_value_ok(ph[i]));
        feed[i] = load_npy(data, "in", i);
    }
    for (int k = 0; k < nout; k++) {
        fetch[k] = kiln_graph_find(g, outs[k]);
        assert_true(kiln_value_ok(fetch[k]));
        want[k] = load_npy(data, "out", k);
    }
    kiln_backend backends[2] = {KILN_BACKEND_REFERENCE, KILN_BACKEND_DEFAULT};
    for (int b = 0; b < 2; b++) {
        char msg[512];
        int rc = tu_run_backend(g, backends[b], nout, fetch, got, nin, ph, feed, msg, sizeof msg);
        if (rc) fail_msg("running %s on %s: %s", model, data, msg);
        for (int k = 0; k < nout; k++) {
            tu_assert_shape(got[k], kiln_tensor_dtype(want[k]), kiln_tensor_rank(want[k]),
                            kiln_tensor_dims(want[k]));
            size_t n = kiln_tensor_size(want[k]);
            const float *w = kiln_tensor_const_data(want[k]);
            double *wd = malloc(sizeof(double) * (n ? n : 1));
            for (size_t i = 0; i < n; i++) wd[i] = w[i];
            tu_assert_close(got[k], wd, n, 1e-5, 1e-5);
            free(wd);
            kiln_tensor_free(got[k]);
            got[k] = NULL;
        }
    }
    for (int i = 0; i < nin; i++) kiln_tensor_free(feed[i]);
    for (int k = 0; k < nout; k++) kiln_tensor_free(want[k]);
    kiln_graph_free(g);
    kiln_status_free(st);
}

/* The number of nodes of op `op` in the imported model. */
static int count_op(const char *model, const char *op)
{
    kiln_status *st = kiln_status_new();
    kiln_graph *g = kiln_import_onnx(model_path(model), NULL, st);
    if (!g) fail_msg("importing %s: %s", model, kiln_status_message(st));
    int opi = ir_op_lookup(op), n = 0;
    for (int i = 0; i < g->nnodes; i++) n += (int)g->nodes[i].op == opi;
    kiln_graph_free(g);
    kiln_status_free(st);
    return n;
}

/* Importing `model` fails with `code` and a message holding `what`. */
static void import_fails(const char *model, int code, const char *what)
{
    kiln_status *st = kiln_status_new();
    kiln_graph *g = kiln_import_onnx(model_path(model), NULL, st);
    if (g) fail_msg("%s imported; expected: %s", model, what);
    if (kiln_status_code(st) != code || !strstr(kiln_status_message(st), what))
        fail_msg("%s: %s: %s (expected %s: ...%s...)", model,
                 kiln_status_code_name(kiln_status_code(st)), kiln_status_message(st),
                 kiln_status_code_name(code), what);
    kiln_status_free(st);
}

static void test_if_constant_condition(void **state)
{
    (void)state;
    check("if_const", "if_const", 1, (const char *[]){"x"}, 1, (const char *[]){"y"});
    assert_int_equal(count_op("if_const", "Where"), 0);
    assert_int_equal(count_op("if_const", "ReduceSum"), 0); /* the else branch */
}

static void test_if_runtime_condition(void **state)
{
    (void)state;
    const char *ins[] = {"c", "x"}, *outs[] = {"y"};
    check("if_runtime", "if_runtime_t", 2, ins, 1, outs);
    check("if_runtime", "if_runtime_f", 2, ins, 1, outs);
    check("if_runtime1", "if_runtime1_f", 2, ins, 1, outs);
    assert_int_equal(count_op("if_runtime", "Where"), 1);
}

static void test_scan_reverse_axes(void **state)
{
    (void)state;
    check("scan_reverse", "scan_reverse", 3, (const char *[]){"s0", "x1", "x2"}, 3,
          (const char *[]){"s", "y1", "y2"});
    check("scan8_batch", "scan8_batch", 2, (const char *[]){"s0", "x"}, 2,
          (const char *[]){"s", "ys"});
}

static void test_loop_constant_trip_count(void **state)
{
    (void)state;
    const char *ins[] = {"x", "y0"}, *outs[] = {"y", "ys"};
    check("loop_const", "loop_const", 2, ins, 2, outs);
    check("loop_cond", "loop_cond", 2, ins, 2, outs);
}

static void test_nested_outer_values(void **state)
{
    (void)state;
    check("nested", "nested", 1, (const char *[]){"x"}, 1, (const char *[]){"y"});
}

static void test_errors(void **state)
{
    (void)state;
    import_fails("loop_runtime", KILN_ERR_UNIMPLEMENTED, "Loop with a data-dependent trip count");
    import_fails("if_mismatch", KILN_ERR_UNIMPLEMENTED,
                 "output 0 differs between the branches (then f32[2,3], else f32[3,2])");
    import_fails("loop_huge", KILN_ERR_UNIMPLEMENTED, "exceeds the limit of");
    import_fails("deep", KILN_ERR_UNIMPLEMENTED, "subgraphs nest more than");
}

/* Every allocation failure while importing the nested model is an
 * out-of-memory status that leaks nothing. */
static void test_alloc_failure_sweep(void **state)
{
    (void)state;
    const char *path = model_path("nested");
    long base = ir_alloc_live_blocks();
    for (long n = 0;; n++) {
        kiln_status s = {0};
        ir_alloc_fail_after(n);
        kiln_graph *g = kiln_import_onnx(path, NULL, &s);
        bool failed = ir_alloc_failed();
        ir_alloc_fail_after(-1);
        if (g) {
            kiln_graph_free(g);
            ir_free(s.message);
            if (!failed) break;
        } else {
            if (s.code != KILN_ERR_OUT_OF_MEMORY)
                fail_msg("n=%ld: code %s: %s", n, kiln_status_code_name(s.code),
                         s.message ? s.message : "");
            ir_free(s.message);
        }
        assert_int_equal(ir_alloc_live_blocks(), base);
        assert_true(n < 100000);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_if_constant_condition), TU_TEST(test_if_runtime_condition),
        TU_TEST(test_scan_reverse_axes),     TU_TEST(test_loop_constant_trip_count),
        TU_TEST(test_nested_outer_values),   TU_TEST(test_errors),
        TU_TEST(test_alloc_failure_sweep),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
