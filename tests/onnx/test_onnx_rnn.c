/* test_onnx_rnn.c -- the recurrent ops LSTM, GRU and RNN, imported by
 * unrolling (frontend/onnx_recurrent.c), against independent values:
 * tests/onnx/rnn_models.py writes one-node models with seeded weights and
 * the outputs of PyTorch (nn.LSTM/GRU/RNN, packed sequences for variable
 * lengths) or of a numpy loop over the spec's equations where PyTorch has
 * no such variant (peepholes, GRU linear_before_reset=0, other
 * activations, clip); and the opset-27 LinearAttention and
 * CausalConvWithState (frontend/onnx_stateful.c) against numpy loops.
 * Nothing is committed or downloaded. Each model runs
 * compiled and on the reference kernels; every element must be within
 * 1e-4 * max|expected|. */
#include "common/testutil.h"

#include "ir.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static char dir[64];
static char root[4096];

static int setup(void **state)
{
    (void)state;
    snprintf(root, sizeof root, "%s", KILN_BUILD_DIR);
    char *slash = strrchr(root, '/');
    if (slash) *slash = 0;
    snprintf(dir, sizeof dir, "/tmp/kiln-rnn-XXXXXX");
    if (!mkdtemp(dir)) return -1;
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 %s/tests/onnx/rnn_models.py %s > %s/export.log 2>&1", root, dir,
             dir);
    int st = system(cmd);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        snprintf(cmd, sizeof cmd, "tail -20 %s/export.log", dir);
        if (system(cmd)) {
        }
        fprintf(stderr,
                "tests/onnx/rnn_models.py failed (python3-torch and python3-onnx: make deps)\n");
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

static kiln_tensor *load_npy(const char *model, const char *name)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s.%s.npy", dir, model, name);
    kiln_status *st = kiln_status_new();
    kiln_tensor *t = kiln_tensor_read_npy(path, st);
    if (!t) fail_msg("%s: %s", path, kiln_status_message(st));
    kiln_status_free(st);
    return t;
}

/* Runs model `name` with run-time inputs `ins` and compares `outs`. */
static void check_model(const char *name, const char *const *ins, int nin, const char *const *outs,
                        int nout, kiln_backend backend)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s.onnx", dir, name);
    kiln_status *st = kiln_status_new();
    kiln_graph *g = kiln_import_onnx(path, NULL, st);
    if (!g) fail_msg("importing %s: %s", name, kiln_status_message(st));
    kiln_value iv[6], ov[3];
    kiln_tensor *x[6], *got[3] = {NULL, NULL, NULL};
    for (int i = 0; i < nin; i++) {
        iv[i] = kiln_graph_find(g, ins[i]);
        assert_true(kiln_value_ok(iv[i]));
        x[i] = load_npy(name, ins[i]);
    }
    for (int k = 0; k < nout; k++) {
        ov[k] = kiln_graph_find(g, outs[k]);
        assert_true(kiln_value_ok(ov[k]));
    }
    kiln_session_options o;
    kiln_session_options_init(&o);
    o.backend = backend;
    kiln_session *s = kiln_session_new(g, &o, st);
    if (!s) fail_msg("%s: %s", name, kiln_status_message(st));
    kiln_session_run(s, iv, x, nin, ov, got, nout, NULL, 0, st);
    if (kiln_status_code(st)) fail_msg("running %s: %s", name, kiln_status_message(st));
    for (int k = 0; k < nout; k++) {
        kiln_tensor *want = load_npy(name, outs[k]);
        tu_assert_shape(got[k], KILN_F32, kiln_tensor_rank(want), kiln_tensor_dims(want));
        const float *a = kiln_tensor_const_data(got[k]), *b = kiln_tensor_const_data(want);
        size_t n = kiln_tensor_size(want);
        double scale = 0, err = 0;
        for (size_t i = 0; i < n; i++) {
            double d = (double)a[i] - (double)b[i];
            if (d != d)
                fail_msg("%s %s: element %zu is %g, expected %g", name, outs[k], i, a[i], b[i]);
            if (fabs(d) > err) err = fabs(d);
            if (fabs(b[i]) > scale) scale = fabs(b[i]);
        }
        assert_true(scale > 0);
        if (err > 1e-4 * scale)
            fail_msg("%s %s (%s): max error %.3g, max |expected| %.3g", name, outs[k],
                     backend == KILN_BACKEND_REFERENCE ? "reference" : "compiled", err, scale);
        kiln_tensor_free(want);
        kiln_tensor_free(got[k]);
    }
    for (int i = 0; i < nin; i++) kiln_tensor_free(x[i]);
    kiln_session_free(s);
    kiln_graph_free(g);
    kiln_status_free(st);
}

static void check_both(const char *name, const char *const *ins, int nin, const char *const *outs,
                       int nout)
{
    check_model(name, ins, nin, outs, nout, KILN_BACKEND_DEFAULT);
    check_model(name, ins, nin, outs, nout, KILN_BACKEND_REFERENCE);
}

static const char *const yhc[3] = {"Y", "Y_h", "Y_c"};

/* bidirectional, initial_h and initial_c, sequence_lens given at run time */
static void test_lstm_bidirectional(void **state)
{
    (void)state;
    const char *ins[2] = {"X", "sequence_lens"};
    check_both("lstm_bidir", ins, 2, yhc, 3);
}

/* bidirectional with peepholes, initial states (initial_h at run time) and clip */
static void test_lstm_peepholes(void **state)
{
    (void)state;
    const char *ins[2] = {"X", "initial_h"};
    check_both("lstm_peep", ins, 2, yhc, 3);
}

static void test_gru_linear_before_reset_layout1(void **state)
{
    (void)state;
    const char *ins[2] = {"X", "initial_h"};
    check_both("gru_lbr1_layout1", ins, 2, yhc, 2);
}

/* reverse, sequence lengths 3, 5 and 0 at run time */
static void test_gru_reverse_lengths(void **state)
{
    (void)state;
    const char *ins[2] = {"X", "sequence_lens"};
    check_both("gru_lbr0", ins, 2, yhc, 2);
}

/* HardSigmoid and LeakyRelu with activation_alpha/activation_beta */
static void test_gru_activations(void **state)
{
    (void)state;
    const char *ins[1] = {"X"};
    check_both("gru_acts", ins, 1, yhc, 2);
}

/* Relu, layout 1, constant sequence_lens and initial_h */
static void test_rnn_relu_layout1(void **state)
{
    (void)state;
    const char *ins[1] = {"X"};
    check_both("rnn_relu_layout1", ins, 1, yhc, 2);
}

/* input_forget couples the forget gate to the input gate; only Y_c */
static void test_lstm_input_forget(void **state)
{
    (void)state;
    const char *ins[1] = {"X"}, *outs[1] = {"Y_c"};
    check_both("lstm_input_forget", ins, 1, outs, 1);
}

/* LinearAttention (opset 27): gated delta rule, grouped query heads,
 * per-head decay, shared beta, past state and an explicit scale */
static void test_linear_attention(void **state)
{
    (void)state;
    const char *ins[6] = {"query", "key", "value", "past_state", "decay", "beta"};
    const char *outs[2] = {"output", "present_state"};
    check_both("linear_attention_gqa", ins, 6, outs, 2);
}

/* CausalConvWithState (opset 27): silu, bias, past state */
static void test_causal_conv(void **state)
{
    (void)state;
    const char *ins[2] = {"input", "past_state"}, *outs[2] = {"output", "present_state"};
    check_both("causal_conv_silu", ins, 2, outs, 2);
}

/* a malformed node fails import with a message naming the input and shapes */
static void test_bad_weights(void **state)
{
    (void)state;
    char path[256];
    snprintf(path, sizeof path, "%s/lstm_bad_w.onnx", dir);
    kiln_status *st = kiln_status_new();
    kiln_graph *g = kiln_import_onnx(path, NULL, st);
    assert_null(g);
    const char *msg = kiln_status_message(st);
    if (!strstr(msg, "LSTM") || !strstr(msg, "input W") || !strstr(msg, "[1,24,4]"))
        fail_msg("unexpected message: %s", msg);
    print_message("%s\n", msg);
    kiln_status_free(st);
}

/* Every allocation of the import failing in turn: out of memory each time,
 * nothing leaks (ir_alloc_fail_after counts kiln's allocations). */
static void sweep_import(const char *name)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s.onnx", dir, name);
    long base = ir_alloc_live_blocks();
    for (long n = 0;; n++) {
        kiln_status st = {0};
        ir_alloc_fail_after(n);
        kiln_graph *g = kiln_import_onnx(path, NULL, &st);
        bool failed = ir_alloc_failed();
        ir_alloc_fail_after(-1);
        if (g) {
            kiln_graph_free(g);
            ir_free(st.message);
            if (!failed) break;
        } else {
            if (st.code != KILN_ERR_OUT_OF_MEMORY)
                fail_msg("%s, n=%ld: code %s: %s", name, n, kiln_status_code_name(st.code),
                         st.message ? st.message : "");
            ir_free(st.message);
        }
        assert_int_equal(ir_alloc_live_blocks(), base);
        assert_true(n < 1000000);
    }
}

static void test_alloc_failure_sweep(void **state)
{
    (void)state;
    sweep_import("lstm_bidir");
    sweep_import("gru_lbr0");
    sweep_import("linear_attention_gqa");
    sweep_import("causal_conv_silu");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_lstm_bidirectional),
        TU_TEST(test_lstm_peepholes),
        TU_TEST(test_gru_linear_before_reset_layout1),
        TU_TEST(test_gru_reverse_lengths),
        TU_TEST(test_gru_activations),
        TU_TEST(test_rnn_relu_layout1),
        TU_TEST(test_lstm_input_forget),
        TU_TEST(test_linear_attention),
        TU_TEST(test_causal_conv),
        TU_TEST(test_bad_weights),
        TU_TEST(test_alloc_failure_sweep),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
