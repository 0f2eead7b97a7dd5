/* test_cli.c -- the kiln command line end to end on a saved .kiln graph:
 * run, compile, info, dump, bench, each subcommand's --help, and the error
 * cases (missing file, wrong input shape, unknown input name, bad options)
 * with their exit codes. */
#include "common/testutil.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#ifndef KILN_BUILD_DIR
#error "KILN_BUILD_DIR must name the build folder"
#endif

static char dir[64];
static char out[65536]; /* the last command's output */

/* Runs `kiln ARGS` (in dir), capturing stdout and stderr; returns the exit code. */
static int kiln(const char *fmt, ...)
{
    char args[2048], cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "cd %s && %s/tools/kiln %s > out.txt 2>&1", dir, KILN_BUILD_DIR, args);
    int st = system(cmd);
    char path[128];
    snprintf(path, sizeof path, "%s/out.txt", dir);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(out, 1, sizeof out - 1, f) : 0;
    out[n] = 0;
    if (f) fclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void expect_out(const char *s)
{
    if (!strstr(out, s)) fail_msg("output lacks '%s':\n%s", s, out);
}

/* y = relu(x * w + b) with w a variable, b a constant; x f32[?,3]. */
static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/kiln-test-cli-XXXXXX");
    if (!mkdtemp(dir)) return -1;
    kiln_graph *g = kiln_graph_new();
    kiln_tensor *w = kiln_tensor_from_data(KILN_F32, 1, (int64_t[]){3}, (float[]){1, -2, 3});
    kiln_tensor *b = kiln_tensor_from_data(KILN_F32, 1, (int64_t[]){3}, (float[]){0.5f, 0.5f, -0.5f});
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){-1, 3});
    kiln_value y = kiln_relu(g, kiln_add(g, kiln_mul(g, x, kiln_variable(g, "w", w)), kiln_constant(g, "b", b)));
    kiln_name(g, y, "y");
    kiln_value s = kiln_name(g, kiln_neg(g, x), "neg");
    kiln_graph_set_outputs(g, (kiln_value[]){y, s}, 2);
    char path[128];
    snprintf(path, sizeof path, "%s/model.kiln", dir);
    kiln_status *st = kiln_status_new();
    kiln_graph_save(g, path, st);
    int rc = kiln_status_code(st);
    kiln_tensor *in = kiln_tensor_from_data(KILN_F32, 2, (int64_t[]){2, 3}, (float[]){1, 1, 1, -1, 2, 0.25f});
    snprintf(path, sizeof path, "%s/x.npy", dir);
    rc |= kiln_tensor_write_npy(in, path, st);
    kiln_tensor *bad = kiln_tensor_new(KILN_F32, 2, (int64_t[]){2, 4});
    snprintf(path, sizeof path, "%s/bad.npy", dir);
    rc |= kiln_tensor_write_npy(bad, path, st);
    kiln_tensor_free(bad);
    kiln_tensor_free(in);
    kiln_tensor_free(w);
    kiln_tensor_free(b);
    kiln_status_free(st);
    kiln_graph_free(g);
    return rc ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* relu(x * [1,-2,3] + [0.5,0.5,-0.5]) for x = [[1,1,1],[-1,2,0.25]] */
static const double Y[6] = {1.5, 0, 2.5, 0, 0, 0.25};

static void check_npy(const char *file, const double *want, int n)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    kiln_status *st = kiln_status_new();
    kiln_tensor *t = kiln_tensor_read_npy(path, st);
    if (!t) fail_msg("%s: %s", file, kiln_status_message(st));
    kiln_status_free(st);
    tu_assert_shape(t, KILN_F32, 2, (int64_t[]){2, 3});
    tu_assert_close(t, want, (size_t)n, 0, 1e-6);
    kiln_tensor_free(t);
}

static void test_help_and_usage(void **state)
{
    (void)state;
    assert_int_equal(kiln("--help"), 0);
    expect_out("compile");
    assert_int_equal(kiln(""), 2);
    assert_int_equal(kiln("frobnicate"), 2);
    expect_out("unknown command 'frobnicate'");
    const char *cmds[] = {"run", "compile", "bench", "info", "dump"};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(kiln("%s --help", cmds[i]), 0);
        expect_out("usage: kiln");
        assert_int_equal(kiln("%s --no-such-option", cmds[i]), 2);
        expect_out("unknown option");
    }
}

static void test_run(void **state)
{
    (void)state;
    assert_int_equal(kiln("run model.kiln --input x.npy --output y.npy --output neg.npy"), 0);
    check_npy("y.npy", Y, 6);
    check_npy("neg.npy", (double[]){-1, -1, -1, 1, -2, -0.25}, 6);
    assert_int_equal(kiln("run model.kiln --input x=x.npy --backend ref --output y_ref.npy"), 0);
    check_npy("y_ref.npy", Y, 6);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "mkdir -p %s/outs", dir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(kiln("run model.kiln --input x.npy --output-dir outs --threads 2"), 0);
    check_npy("outs/y.npy", Y, 6);
    /* without outputs: a summary */
    assert_int_equal(kiln("run model.kiln --input x.npy"), 0);
    expect_out("y: f32[2,3] = 1.5 0 2.5 0 0 0.25");
}

static void test_run_errors(void **state)
{
    (void)state;
    assert_int_equal(kiln("run missing.kiln --input x.npy"), 1);
    expect_out("kiln: error: ");
    expect_out("missing.kiln");
    assert_int_equal(kiln("run model.kiln --input bad.npy"), 1);
    expect_out("'x' expects f32[?,3], but the fed tensor is f32[2,4]");
    assert_int_equal(kiln("run model.kiln --input nope=x.npy"), 1);
    expect_out("no input named 'nope'");
    assert_int_equal(kiln("run model.kiln --input x.npy --input x.npy"), 1);
    assert_int_equal(kiln("run model.kiln"), 1);
    expect_out("must be fed");
    assert_int_equal(kiln("run model.kiln --input missing.npy"), 1);
    expect_out("missing.npy");
    assert_int_equal(kiln("run model.kiln --input"), 2);
    assert_int_equal(kiln("run model.kiln --backend gpu"), 2);
    assert_int_equal(kiln("run"), 2);
    /* the error is one line */
    assert_int_equal(kiln("run model.kiln --input bad.npy"), 1);
    assert_ptr_equal(strchr(out, '\n'), out + strlen(out) - 1);
}

static void test_compile_and_run_library(void **state)
{
    (void)state;
    assert_int_equal(kiln("compile model.kiln -o libm1.so --header m1.h --dim 2 --emit-llvm m1.ll -O3"), 0);
    assert_int_equal(kiln("run libm1.so --input x.npy --output y_so.npy"), 0);
    check_npy("y_so.npy", Y, 6);
    char path[256];
    snprintf(path, sizeof path, "%s/m1.h", dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char text[8192];
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = 0;
    fclose(f);
    assert_non_null(strstr(text, "int m1_run(const m1_inputs *in, m1_outputs *out, void *arena);"));
    assert_non_null(strstr(text, "#define M1_INPUT_X_DIMS {2, 3}"));
    snprintf(path, sizeof path, "%s/m1.ll", dir);
    f = fopen(path, "r");
    assert_non_null(f);
    n = fread(text, 1, sizeof text - 1, f);
    text[n] = 0;
    fclose(f);
    assert_non_null(strstr(text, "define"));
    assert_int_equal(kiln("compile model.kiln -o m2.o --name m2 --dim 2 --cpu x86-64"), 0);
    assert_int_equal(kiln("compile model.kiln -o libm3.a --dim 2"), 0);
    /* errors */
    assert_int_equal(kiln("compile model.kiln -o libm.so"), 1);
    expect_out("symbolic");
    assert_int_equal(kiln("compile model.kiln -o m.dll --dim 2"), 2);
    assert_int_equal(kiln("compile model.kiln"), 2);
    assert_int_equal(kiln("compile missing.kiln -o libm.so"), 1);
    assert_int_equal(kiln("run libm1.so --input bad.npy"), 1);
    expect_out("expects f32[2,3]");
}

static void test_info_dump_bench(void **state)
{
    (void)state;
    assert_int_equal(kiln("info model.kiln --dim 4"), 0);
    expect_out("x");
    expect_out("f32[?,3]");
    expect_out("constant bytes: 12");
    expect_out("variable bytes: 12");
    expect_out("kernels: 2"); /* Mul, Add, Relu fused; Neg */
    expect_out("arena bytes:");
    expect_out("FLOPs per run: 48"); /* 4 elementwise nodes x 12 elements */
    assert_int_equal(kiln("compile model.kiln -o libinfo.so --dim 2"), 0);
    assert_int_equal(kiln("info libinfo.so"), 0);
    expect_out("ABI version 1");
    expect_out("f32[2,3]");
    assert_int_equal(kiln("dump model.kiln"), 0);
    expect_out("= Relu(");
    expect_out("# y");
    assert_int_equal(kiln("dump model.kiln --format dot"), 0);
    expect_out("digraph kiln");
    assert_int_equal(kiln("dump libinfo.so"), 1);
    assert_int_equal(kiln("dump model.kiln --format svg"), 2);
    assert_int_equal(kiln("bench model.kiln --iters 5 --warmup 1 --dim 8"), 0);
    expect_out("median");
    expect_out("runs/s");
    assert_int_equal(kiln("bench libinfo.so --iters 3"), 0);
    assert_int_equal(kiln("bench model.kiln --iters 0"), 2);
}

/* --fold-limit: exp(c) of a 256-byte constant folds by default, not when
 * the limit is 100 bytes; -1 is no limit; a bad value is a usage error. */
static void test_fold_limit(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_tensor *c = kiln_tensor_new(KILN_F32, 1, (int64_t[]){64});
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 1, (int64_t[]){64});
    kiln_value y = kiln_name(g, kiln_add(g, x, kiln_exp(g, kiln_constant(g, "c", c))), "y");
    kiln_graph_set_outputs(g, &y, 1);
    char path[128];
    snprintf(path, sizeof path, "%s/fold.kiln", dir);
    kiln_status *st = kiln_status_new();
    kiln_graph_save(g, path, st);
    assert_int_equal(kiln_status_code(st), KILN_OK);
    kiln_status_free(st);
    kiln_tensor_free(c);
    kiln_graph_free(g);
    assert_int_equal(kiln("compile fold.kiln -o fold1.so --print-after fold"), 0);
    if (strstr(out, "Exp(")) fail_msg("exp(c) was not folded:\n%s", out);
    assert_int_equal(kiln("compile fold.kiln -o fold2.so --fold-limit 100 --print-after fold"), 0);
    expect_out("= Exp(");
    assert_int_equal(kiln("compile fold.kiln -o fold3.so --fold-limit -1 --print-after fold"), 0);
    if (strstr(out, "Exp(")) fail_msg("exp(c) was not folded with no limit:\n%s", out);
    assert_int_equal(kiln("compile fold.kiln -o fold4.so --fold-limit lots"), 2);
    expect_out("--fold-limit");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_help_and_usage),
        TU_TEST(test_run),
        TU_TEST(test_run_errors),
        TU_TEST(test_compile_and_run_library),
        TU_TEST(test_info_dump_bench),
        TU_TEST(test_fold_limit),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
