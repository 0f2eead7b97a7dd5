/* test_torch_models.c -- models exported by PyTorch's torch.onnx.export
 * import, compile and give PyTorch's outputs: an MLP, a LeNet-style CNN,
 * ResNet-18 and a Transformer encoder layer. tests/onnx/torch_models.py
 * (Debian's python3 with python3-torch and python3-torchvision, which make
 * deps installs) builds them with seeded random weights and writes each
 * model with an input and PyTorch's output; nothing is committed or
 * downloaded. The criterion is relative error max|kiln - torch| /
 * max|torch| <= 1e-4, and every element within 1e-4 * max|torch|. */
#include "common/testutil.h"

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
    snprintf(dir, sizeof dir, "/tmp/kiln-torch-XXXXXX");
    if (!mkdtemp(dir)) return -1;
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/tests/onnx/torch_models.py %s > %s/export.log 2>&1", root, dir, dir);
    int st = system(cmd);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        snprintf(cmd, sizeof cmd, "tail -20 %s/export.log", dir);
        if (system(cmd)) {}
        fprintf(stderr, "tests/onnx/torch_models.py failed (python3-torch and python3-torchvision: make deps)\n");
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

static kiln_tensor *load_npy(const char *name, const char *ext)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s.%s.npy", dir, name, ext);
    kiln_status *st = kiln_status_new();
    kiln_tensor *t = kiln_tensor_read_npy(path, st);
    if (!t) fail_msg("%s: %s", path, kiln_status_message(st));
    kiln_status_free(st);
    return t;
}

static void check_model(const char *name, kiln_backend backend)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s.onnx", dir, name);
    kiln_status *st = kiln_status_new();
    kiln_graph *g = kiln_import_onnx(path, NULL, st);
    if (!g) fail_msg("importing %s: %s", name, kiln_status_message(st));
    kiln_value in = kiln_graph_find(g, "input"), out = kiln_graph_find(g, "output");
    assert_true(kiln_value_ok(in) && kiln_value_ok(out));
    kiln_tensor *x = load_npy(name, "in"), *want = load_npy(name, "out");
    kiln_session_options o;
    kiln_session_options_init(&o);
    o.backend = backend;
    kiln_session *s = kiln_session_new(g, &o, st);
    if (!s) fail_msg("%s: %s", name, kiln_status_message(st));
    kiln_tensor *got = NULL;
    kiln_session_run(s, &in, &x, 1, &out, &got, 1, NULL, 0, st);
    if (kiln_status_code(st)) fail_msg("running %s: %s", name, kiln_status_message(st));
    tu_assert_shape(got, KILN_F32, kiln_tensor_rank(want), kiln_tensor_dims(want));
    const float *a = kiln_tensor_const_data(got), *b = kiln_tensor_const_data(want);
    size_t n = kiln_tensor_size(want);
    double scale = 0, err = 0;
    for (size_t i = 0; i < n; i++) {
        double d = a[i] - b[i];
        if (d != d) fail_msg("%s: element %zu is %g, torch says %g", name, i, a[i], b[i]);
        if (fabs(d) > err) err = fabs(d);
        if (fabs(b[i]) > scale) scale = fabs(b[i]);
    }
    assert_true(scale > 0);
    print_message("%-12s %-9s %zu outputs, max |kiln - torch| / max |torch| = %.2e\n", name,
                  backend == KILN_BACKEND_REFERENCE ? "reference" : "compiled", n, err / scale);
    if (err > 1e-4 * scale) fail_msg("%s: relative error %.3g exceeds 1e-4", name, err / scale);
    kiln_tensor_free(got);
    kiln_tensor_free(x);
    kiln_tensor_free(want);
    kiln_session_free(s);
    kiln_graph_free(g);
    kiln_status_free(st);
}

static void test_mlp(void **state)
{
    (void)state;
    check_model("mlp", KILN_BACKEND_DEFAULT);
    check_model("mlp", KILN_BACKEND_REFERENCE);
}

static void test_lenet(void **state)
{
    (void)state;
    check_model("lenet", KILN_BACKEND_DEFAULT);
    check_model("lenet", KILN_BACKEND_REFERENCE);
}

static void test_resnet18(void **state)
{
    (void)state;
    check_model("resnet18", KILN_BACKEND_DEFAULT);
}

static void test_transformer(void **state)
{
    (void)state;
    check_model("transformer", KILN_BACKEND_DEFAULT);
    check_model("transformer", KILN_BACKEND_REFERENCE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_mlp),
        TU_TEST(test_lenet),
        TU_TEST(test_resnet18),
        TU_TEST(test_transformer),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
