/* test_cuda_runtime.c -- the CUDA runtime layer. Everywhere: the driver is
 * loaded with dlopen, so a missing library, a library without the driver
 * API and a bad device option are clear errors that leak nothing. On a
 * machine with a CUDA driver (and an sm_80+ GPU) the same file runs graphs
 * on the device and compares them with the CPU backend; without one it
 * checks the "no CUDA driver found" status instead. */
#include "common/testutil.h"

#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../runtime/rt_cuda.h"
#include "ir.h"

static bool have_driver(void)
{
    void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (h) dlclose(h);
    return h != NULL;
}

static kiln_session *cuda_session(kiln_graph *g, kiln_status *st)
{
    kiln_session_options o;
    kiln_session_options_init(&o);
    o.device = KILN_DEVICE_CUDA;
    return kiln_session_new(g, &o, st);
}

static void test_missing_library(void **state)
{
    (void)state;
    kiln_status *st = kiln_status_new();
    assert_null(rt_cuda_open("libkiln-no-such-driver.so.1", 0, st));
    assert_int_equal(kiln_status_code(st), KILN_ERR_NOT_FOUND);
    const char *m = kiln_status_message(st);
    if (strncmp(m, "no CUDA driver found (libkiln-no-such-driver.so.1: ", 50) != 0)
        fail_msg("message: %s", m);
    kiln_status_free(st);
}

/* A library that loads but is not the driver: the first missing entry
 * point is named. */
static void test_library_without_driver_api(void **state)
{
    (void)state;
    kiln_status *st = kiln_status_new();
    assert_null(rt_cuda_open("libm.so.6", 0, st));
    assert_int_equal(kiln_status_code(st), KILN_ERR_NOT_FOUND);
    if (!strstr(kiln_status_message(st), "libm.so.6 has no cuInit"))
        fail_msg("message: %s", kiln_status_message(st));
    kiln_status_free(st);
}

static kiln_graph *small_graph(kiln_value *x, kiln_value *y)
{
    kiln_graph *g = kiln_graph_new();
    int64_t d[2] = {2, 3};
    *x = kiln_placeholder(g, "x", KILN_F32, 2, d);
    kiln_tensor *init = kiln_tensor_new(KILN_F32, 2, d);
    kiln_value w = kiln_variable(g, "w", init);
    kiln_tensor_free(init);
    kiln_value xw[2] = {*x, w};
    *y = kiln_op(g, "Add", xw, 2, NULL);
    return g;
}

/* Asking for the GPU through a driver that is not there fails in
 * kiln_session_new, with the library named, and leaks nothing. */
static void test_session_without_driver(void **state)
{
    (void)state;
    kiln_value x, y;
    kiln_graph *g = small_graph(&x, &y);
    kiln_status *st = kiln_status_new();
    setenv("KILN_CUDA_DRIVER", "libkiln-no-such-driver.so.1", 1);
    kiln_session *s = cuda_session(g, st);
    unsetenv("KILN_CUDA_DRIVER");
    assert_null(s);
    assert_int_equal(kiln_status_code(st), KILN_ERR_NOT_FOUND);
    assert_non_null(
        strstr(kiln_status_message(st), "no CUDA driver found (libkiln-no-such-driver.so.1: "));
    if (!have_driver()) {
        /* the default driver library, on a machine without it */
        assert_null(cuda_session(g, st));
        assert_int_equal(kiln_status_code(st), KILN_ERR_NOT_FOUND);
        if (strncmp(kiln_status_message(st), "no CUDA driver found (libcuda.so.1: ", 36) != 0)
            fail_msg("message: %s", kiln_status_message(st));
        printf("no CUDA driver here: %s\n", kiln_status_message(st));
    }
    kiln_status_free(st);
    kiln_graph_free(g);
}

/* Every allocation of a CUDA session's creation failing in turn (the
 * driver missing): always an error, never a leak. */
static void test_session_allocation_failures(void **state)
{
    (void)state;
    kiln_value x, y;
    kiln_graph *g = small_graph(&x, &y);
    setenv("KILN_CUDA_DRIVER", "libkiln-no-such-driver.so.1", 1);
    long n;
    for (n = 0; n < 1000; n++) {
        long live = ir_alloc_live_blocks();
        kiln_status *st = kiln_status_new();
        ir_alloc_fail_after(n);
        kiln_session *s = cuda_session(g, st);
        bool failed = ir_alloc_failed();
        ir_alloc_fail_after(-1);
        assert_null(s);
        int code = kiln_status_code(st);
        if (failed ? code == KILN_OK : code != KILN_ERR_NOT_FOUND)
            fail_msg("fail_after(%ld): %s", n, kiln_status_message(st));
        kiln_status_free(st);
        if (ir_alloc_live_blocks() != live)
            fail_msg("fail_after(%ld): %ld blocks leaked", n, ir_alloc_live_blocks() - live);
        if (!failed) break;
    }
    unsetenv("KILN_CUDA_DRIVER");
    assert_true(n > 0 && n < 1000);
    kiln_graph_free(g);
}

static void test_bad_device_option(void **state)
{
    (void)state;
    kiln_value x, y;
    kiln_graph *g = small_graph(&x, &y);
    kiln_status *st = kiln_status_new();
    kiln_session_options o;
    kiln_session_options_init(&o);
    assert_int_equal(o.device, KILN_DEVICE_CPU);
    o.device = (kiln_device)7;
    assert_null(kiln_session_new(g, &o, st));
    assert_int_equal(kiln_status_code(st), KILN_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(kiln_status_message(st), "unknown device 7"));
    o.device = KILN_DEVICE_CUDA;
    o.backend = KILN_BACKEND_REFERENCE;
    assert_null(kiln_session_new(g, &o, st));
    assert_int_equal(kiln_status_code(st), KILN_ERR_INVALID_ARGUMENT);
    kiln_status_free(st);
    kiln_graph_free(g);
}

/* ---- on a GPU ---- */

/* Runs outs over g on the CPU and on the GPU and compares. */
static void diff_on_device(kiln_graph *g, int nouts, const kiln_value *outs, int nfeeds,
                           const kiln_value *phs, kiln_tensor *const *feeds, double tol)
{
    kiln_status *st = kiln_status_new();
    kiln_session *cpu = kiln_session_new(g, NULL, st);
    kiln_session *gpu = cuda_session(g, st);
    if (!gpu) fail_msg("CUDA session: %s", kiln_status_message(st));
    kiln_tensor *want[8], *got[8];
    kiln_session_run(cpu, phs, feeds, nfeeds, outs, want, nouts, NULL, 0, st);
    assert_int_equal(kiln_status_code(st), KILN_OK);
    for (int rep = 0; rep < 2; rep++) { /* the second run reuses the loaded program */
        kiln_session_run(gpu, phs, feeds, nfeeds, outs, got, nouts, NULL, 0, st);
        if (kiln_status_code(st)) fail_msg("GPU run: %s", kiln_status_message(st));
        for (int i = 0; i < nouts; i++) {
            size_t n = kiln_tensor_size(want[i]);
            double *w = malloc(sizeof(double) * (n + 1));
            for (size_t j = 0; j < n; j++)
                w[j] = ir_load_f64(kiln_tensor_dtype(want[i]), kiln_tensor_const_data(want[i]), j);
            tu_assert_close(got[i], w, n, tol, tol);
            free(w);
            kiln_tensor_free(got[i]);
        }
    }
    for (int i = 0; i < nouts; i++) kiln_tensor_free(want[i]);
    kiln_session_free(gpu);
    kiln_session_free(cpu);
    kiln_status_free(st);
}

static void test_runs_on_device(void **state)
{
    (void)state;
    if (!have_driver()) {
        printf("NOTICE: no CUDA driver (libcuda.so.1): the on-device tests are skipped\n");
        return;
    }
    const kiln_dtype dts[] = {KILN_F32, KILN_F64, KILN_F16};
    for (int d = 0; d < 3; d++) {
        kiln_graph *g = kiln_graph_new();
        int64_t dx[2] = {37, 1000}, dy[1] = {1000};
        kiln_value ph[2] = {kiln_placeholder(g, "x", dts[d], 2, dx),
                            kiln_placeholder(g, "y", dts[d], 1, dy)};
        kiln_value v = kiln_op(g, "Mul", ph, 2, NULL);
        kiln_value outs[6];
        outs[0] = kiln_op(g, "Tanh", &v, 1, NULL);
        kiln_attrs *at = kiln_attrs_new();
        int64_t ax = 1;
        kiln_attrs_ints(at, "axes", &ax, 1);
        outs[1] = kiln_op(g, "ReduceSum", &v, 1, at);
        outs[2] = kiln_op(g, "ReduceMax", &ph[0], 1, at);
        kiln_attrs_free(at);
        outs[3] = kiln_op(g, "Softmax", &v, 1, NULL);
        kiln_attrs *am = kiln_attrs_new();
        kiln_attrs_int(am, "axis", 1);
        outs[5] = kiln_op(g, "ArgMax", &ph[0], 1, am);
        kiln_attrs_free(am);
        kiln_tensor *init = tu_random(dts[d], 1, dy, -1, 1, 7);
        kiln_value w = kiln_variable(g, "w", init);
        kiln_tensor_free(init);
        kiln_value vw[2] = {v, w};
        outs[4] = kiln_op(g, "Add", vw, 2, NULL);
        assert_null(kiln_graph_error(g));
        kiln_tensor *feeds[2] = {tu_random(dts[d], 2, dx, -1, 1, 1),
                                 tu_random(dts[d], 1, dy, -1, 1, 2)};
        diff_on_device(g, 6, outs, 2, ph, feeds,
                       dts[d] == KILN_F16   ? 2e-2
                       : dts[d] == KILN_F32 ? 1e-4
                                            : 1e-10);
        kiln_tensor_free(feeds[0]);
        kiln_tensor_free(feeds[1]);
        kiln_graph_free(g);
    }
}

/* cuBLAS is loaded with dlopen too: a missing library and a library
 * without the cuBLAS API are clear errors that leak nothing. */
static void test_cublas_missing(void **state)
{
    (void)state;
    kiln_status *st = kiln_status_new();
    assert_null(rt_cublas_open("libkiln-no-such-cublas.so.12", st));
    assert_int_equal(kiln_status_code(st), KILN_ERR_NOT_FOUND);
    if (strncmp(kiln_status_message(st), "cuBLAS not found (libkiln-no-such-cublas.so.12: ", 48) !=
        0)
        fail_msg("message: %s", kiln_status_message(st));
    assert_null(rt_cublas_open("libm.so.6", st));
    assert_int_equal(kiln_status_code(st), KILN_ERR_NOT_FOUND);
    if (!strstr(kiln_status_message(st), "libm.so.6 has no cublasCreate_v2"))
        fail_msg("message: %s", kiln_status_message(st));
    /* the toolkit's own cuBLAS, where installed: every entry point resolves
     * (no GPU needed to load it). Not under AddressSanitizer: cuBLAS's own
     * static C++ runtime allocates a pool at load that LeakSanitizer
     * reports once the library is closed. */
    const char *real = "/usr/local/cuda/lib64/libcublas.so";
#if defined(__SANITIZE_ADDRESS__)
    real = "";
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    real = "";
#endif
#endif
    if (*real && access(real, R_OK) == 0) {
        rt_cublas *b = rt_cublas_open(real, st);
        if (!b) fail_msg("%s: %s", real, kiln_status_message(st));
        rt_cublas_close(b);
    }
    kiln_status_free(st);
}

/* With a driver: a session whose graph has a MatMul fails at creation
 * when cuBLAS is missing (KILN_CUBLAS points at no library); one without
 * a product does not load cuBLAS at all. */
static void test_session_without_cublas(void **state)
{
    (void)state;
    if (!have_driver()) return;
    kiln_graph *g = kiln_graph_new();
    int64_t d[2] = {4, 4};
    kiln_value ph[2] = {kiln_placeholder(g, "a", KILN_F32, 2, d),
                        kiln_placeholder(g, "b", KILN_F32, 2, d)};
    kiln_op(g, "MatMul", ph, 2, NULL);
    kiln_graph *plain = kiln_graph_new();
    kiln_value x = kiln_placeholder(plain, "x", KILN_F32, 2, d);
    kiln_op(plain, "Relu", &x, 1, NULL);
    kiln_status *st = kiln_status_new();
    setenv("KILN_CUBLAS", "libkiln-no-such-cublas.so.12", 1);
    kiln_session *s2 = cuda_session(plain, st);
    kiln_session *s = cuda_session(g, st);
    unsetenv("KILN_CUBLAS");
    assert_null(s);
    if (!strstr(kiln_status_message(st), "cuBLAS not found (libkiln-no-such-cublas.so.12: "))
        fail_msg("message: %s", kiln_status_message(st));
    assert_non_null(s2);
    kiln_session_free(s2);
    kiln_status_free(st);
    kiln_graph_free(g);
    kiln_graph_free(plain);
}

/* The data-movement, pooling and product kernels against the CPU. */
static void test_more_ops_on_device(void **state)
{
    (void)state;
    if (!have_driver()) return;
    kiln_graph *g = kiln_graph_new();
    int64_t dx[4] = {2, 3, 9, 7}, dw[2] = {7, 5}, db[3] = {2, 7, 4};
    kiln_value ph[3] = {kiln_placeholder(g, "x", KILN_F32, 4, dx),
                        kiln_placeholder(g, "w", KILN_F32, 2, dw),
                        kiln_placeholder(g, "bm", KILN_F32, 3, db)};
    kiln_value outs[16];
    int n = 0;
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_ints(a, "starts", (int64_t[]){-1, 1}, 2);
    kiln_attrs_ints(a, "ends", (int64_t[]){-100, 8}, 2);
    kiln_attrs_ints(a, "axes", (int64_t[]){2, 3}, 2);
    kiln_attrs_ints(a, "steps", (int64_t[]){-2, 3}, 2);
    outs[n++] = kiln_op(g, "Slice", ph, 1, a);
    kiln_attrs_free(a);
    kiln_value cat[2] = {ph[0], ph[0]};
    outs[n++] = kiln_concat(g, cat, 2, 2);
    a = kiln_attrs_new();
    kiln_attrs_ints(a, "pads", (int64_t[]){0, 1, 2, 3, 1, 0, 1, 2}, 8);
    kiln_attrs_string(a, "mode", "reflect");
    outs[n++] = kiln_op(g, "Pad", ph, 1, a);
    kiln_attrs_free(a);
    outs[n++] = kiln_tile(g, ph[0], (int64_t[]){1, 2, 1, 3}, 4);
    int64_t ni = 4;
    kiln_tensor *it = kiln_tensor_new(KILN_I64, 1, &ni);
    int64_t *iv = kiln_tensor_data(it);
    iv[0] = 2, iv[1] = -1, iv[2] = 0, iv[3] = 5;
    outs[n++] = kiln_gather(g, ph[0], kiln_constant(g, "idx", it), 2);
    kiln_tensor_free(it);
    kiln_pool2d_options po;
    kiln_pool2d_options_init(&po, 3, 3);
    po.strides[0] = po.strides[1] = 2;
    po.pads[0] = po.pads[1] = po.pads[2] = po.pads[3] = 1;
    po.ceil_mode = 1;
    outs[n++] = kiln_max_pool2d(g, ph[0], &po);
    outs[n++] = kiln_avg_pool2d(g, ph[0], &po);
    outs[n++] = kiln_softmax(g, ph[0], 1);
    kiln_tensor *ts = tu_random(KILN_F32, 1, (int64_t[]){7}, -1, 1, 4);
    kiln_value ln[2] = {ph[0], kiln_constant(g, "scale", ts)};
    kiln_tensor_free(ts);
    outs[n++] = kiln_op(g, "LayerNormalization", ln, 2, NULL);
    kiln_value mm = kiln_matmul(g, ph[0], ph[1]);
    outs[n++] = mm;
    outs[n++] =
        kiln_relu(g, kiln_add(g, kiln_matmul(g, ph[2], ph[1]), kiln_scalar(g, KILN_F32, 0.1)));
    assert_null(kiln_graph_error(g));
    kiln_tensor *feeds[3] = {tu_random(KILN_F32, 4, dx, -1, 1, 1),
                             tu_random(KILN_F32, 2, dw, -1, 1, 2),
                             tu_random(KILN_F32, 3, db, -1, 1, 3)};
    diff_on_device(g, n, outs, 3, ph, feeds, 1e-4);
    for (int i = 0; i < 3; i++) kiln_tensor_free(feeds[i]);
    kiln_graph_free(g);
}

/* An SGD step on the device: the variable changes there and the host copy
 * (kiln_session_variable) follows. */
static void test_assign_on_device(void **state)
{
    (void)state;
    if (!have_driver()) return;
    kiln_graph *g = kiln_graph_new();
    int64_t d[1] = {5};
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 1, d);
    kiln_tensor *init = kiln_tensor_new(KILN_F32, 1, d);
    kiln_value w = kiln_variable(g, "w", init);
    kiln_tensor_free(init);
    kiln_value upd =
        kiln_assign(g, w, kiln_sub(g, w, kiln_mul(g, kiln_scalar(g, KILN_F32, 0.5), x)));
    kiln_status *st = kiln_status_new();
    kiln_session *s = cuda_session(g, st);
    if (!s) fail_msg("%s", kiln_status_message(st));
    kiln_tensor *feed = kiln_tensor_new(KILN_F32, 1, d);
    float *fx = kiln_tensor_data(feed);
    for (int i = 0; i < 5; i++) fx[i] = (float)i;
    for (int r = 0; r < 2; r++) {
        kiln_session_run(s, &x, &feed, 1, NULL, NULL, 0, &upd, 1, st);
        if (kiln_status_code(st)) fail_msg("%s", kiln_status_message(st));
    }
    kiln_tensor *now = kiln_session_variable(s, w, st);
    assert_non_null(now);
    const float *wv = kiln_tensor_data(now);
    for (int i = 0; i < 5; i++) assert_true(wv[i] == -(float)i);
    kiln_tensor_free(now);
    kiln_tensor_free(feed);
    kiln_session_free(s);
    kiln_status_free(st);
    kiln_graph_free(g);
}

/* An op the CUDA backend cannot compile yet: the run fails and names it. */
static void test_unimplemented_on_device(void **state)
{
    (void)state;
    if (!have_driver()) return;
    kiln_graph *g = kiln_graph_new();
    int64_t d[2] = {4, 4};
    kiln_value ph[2] = {kiln_placeholder(g, "a", KILN_F32, 2, d),
                        kiln_placeholder(g, "b", KILN_F32, 2, d)};
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_int(a, "k", 2);
    kiln_value v = kiln_op(g, "TopK", ph, 1, a);
    kiln_attrs_free(a);
    kiln_status *st = kiln_status_new();
    kiln_session *s = cuda_session(g, st);
    if (!s) fail_msg("%s", kiln_status_message(st));
    kiln_tensor *feeds[2] = {tu_random(KILN_F32, 2, d, -1, 1, 1),
                             tu_random(KILN_F32, 2, d, -1, 1, 2)};
    kiln_tensor *out = NULL;
    kiln_session_run(s, ph, feeds, 2, &v, &out, 1, NULL, 0, st);
    assert_null(out);
    assert_int_equal(kiln_status_code(st), KILN_ERR_UNIMPLEMENTED);
    assert_non_null(strstr(kiln_status_message(st), "the CUDA backend cannot compile TopK yet"));
    kiln_tensor_free(feeds[0]);
    kiln_tensor_free(feeds[1]);
    kiln_session_free(s);
    kiln_status_free(st);
    kiln_graph_free(g);
}

/* `kiln run MODEL --device cuda` (the CLI, when it has been built): without
 * a driver, the same clear error and a failing exit status. */
static void test_cli_device(void **state)
{
    (void)state;
    char kiln[512], cmd[2048], dir[] = "/tmp/kiln-cuda-cli-XXXXXX";
    snprintf(kiln, sizeof kiln, "%s/tools/kiln", KILN_BUILD_DIR);
    if (access(kiln, X_OK) != 0 || have_driver()) {
        printf("NOTICE: %s not built or a driver is present: the CLI check is skipped\n", kiln);
        return;
    }
    assert_non_null(mkdtemp(dir));
    kiln_value x, y;
    kiln_graph *g = small_graph(&x, &y);
    kiln_graph_set_outputs(g, &y, 1);
    char model[600];
    snprintf(model, sizeof model, "%s/m.kiln", dir);
    kiln_status *st = kiln_status_new();
    kiln_graph_save(g, model, st);
    assert_int_equal(kiln_status_code(st), KILN_OK);
    snprintf(cmd, sizeof cmd, "%s run %s --device cuda > %s/out 2>&1", kiln, model, dir);
    assert_int_not_equal(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "grep -q 'no CUDA driver found (libcuda.so.1: ' %s/out", dir);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "%s run %s --device tpu > %s/out 2>&1", kiln, model, dir);
    assert_int_not_equal(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    kiln_status_free(st);
    kiln_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_missing_library),        TU_TEST(test_library_without_driver_api),
        TU_TEST(test_session_without_driver), TU_TEST(test_session_allocation_failures),
        TU_TEST(test_bad_device_option),      TU_TEST(test_cli_device),
        TU_TEST(test_runs_on_device),         TU_TEST(test_unimplemented_on_device),
        TU_TEST(test_cublas_missing),         TU_TEST(test_session_without_cublas),
        TU_TEST(test_more_ops_on_device),     TU_TEST(test_assign_on_device),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
