/* test_aot.c -- ahead-of-time compilation: a graph compiled to .so, .o and
 * .a; a C program built against each with only the generated header gives
 * the JIT session's results; kiln_session_load runs the .so; the .so needs
 * only libc, libm and libpthread; bad requests get clear errors. */
#include "common/testutil.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];

static int setup_dir(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/kiln-test-aot-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int remove_dir(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static int sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    return system(cmd);
}

/* y = tanh(x * w + b), z = x + 1 (i32 cast); w a variable, b a constant. */
static kiln_graph *build(kiln_value *x, kiln_value *y, kiln_value *z)
{
    kiln_graph *g = kiln_graph_new();
    kiln_tensor *w = tu_f32(1, (int64_t[]){3}, (float[]){0.5f, -1.0f, 2.0f});
    kiln_tensor *b = tu_f32(2, (int64_t[]){2, 3}, (float[]){0.1f, 0.2f, 0.3f, -0.1f, -0.2f, -0.3f});
    *x = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){-1, 3});
    kiln_value wv = kiln_variable(g, "w", w);
    *y = kiln_name(g, kiln_tanh(g, kiln_add(g, kiln_mul(g, *x, wv), kiln_constant(g, "b", b))), "y");
    *z = kiln_name(g, kiln_cast(g, kiln_add(g, *x, kiln_scalar(g, KILN_F32, 1)), KILN_I32), "z.int");
    kiln_tensor_free(w);
    kiln_tensor_free(b);
    assert_null(kiln_graph_error(g));
    return g;
}

static const float X[6] = {1, 2, 3, -4, 5.5f, -6};

/* The expected outputs, computed by hand from the formula. */
static void expected(double *y, int64_t *z)
{
    const double w[3] = {0.5, -1, 2}, b[6] = {0.1, 0.2, 0.3, -0.1, -0.2, -0.3};
    for (int i = 0; i < 6; i++) {
        y[i] = tanh((double)X[i] * w[i % 3] + b[i]);
        z[i] = (int64_t)((double)X[i] + 1);
    }
}

static void compile(kiln_graph *g, kiln_value x, kiln_value y, kiln_value z, const char *file,
                    const char *header)
{
    char path[256], hpath[256];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    snprintf(hpath, sizeof hpath, "%s/%s", dir, header);
    kiln_compile_options o;
    kiln_compile_options_init(&o);
    o.name = "mdl";
    o.header = hpath;
    o.symbolic_dim = 2;
    kiln_status *st = kiln_status_new();
    kiln_compile_library(g, &x, 1, (kiln_value[]){y, z}, 2, path, &o, st);
    if (kiln_status_code(st)) fail_msg("compile %s: %s", file, kiln_status_message(st));
    kiln_status_free(st);
}

static const char PROGRAM[] =
    "#include <stdio.h>\n#include \"mdl.h\"\n"
    "int main(void) {\n"
    "  float x[MDL_INPUT_X_SIZE] = {1, 2, 3, -4, 5.5f, -6};\n"
    "  float y[MDL_OUTPUT_Y_SIZE]; int32_t z[MDL_OUTPUT_Z_INT_SIZE];\n"
    "  mdl_inputs in = {x}; mdl_outputs out = {y, z};\n"
    "  int rc = mdl_run(&in, &out, NULL);\n"
    "  if (rc) { printf(\"error %s\\n\", mdl_error(rc)); return 1; }\n"
    "  const kiln_model_desc *d = mdl_describe();\n"
    "  if (d->ninputs != 1 || d->noutputs != 2 || d->inputs[0].dims[0] != 2 || MDL_ABI_VERSION != d->abi_version) return 2;\n"
    "  for (int i = 0; i < 6; i++) printf(\"%.9g %d\\n\", y[i], (int)z[i]);\n"
    "  return 0;\n}\n";

static void check_program_output(const char *out_file)
{
    double y[6];
    int64_t z[6];
    expected(y, z);
    FILE *f = fopen(out_file, "r");
    assert_non_null(f);
    for (int i = 0; i < 6; i++) {
        double gy;
        int gz;
        assert_int_equal(fscanf(f, "%lf %d", &gy, &gz), 2);
        assert_true(fabs(gy - y[i]) < 1e-6);
        assert_int_equal(gz, z[i]);
    }
    fclose(f);
}

static void test_program_links_each_kind(void **state)
{
    (void)state;
    kiln_value x, y, z;
    kiln_graph *g = build(&x, &y, &z);
    char prog[256];
    snprintf(prog, sizeof prog, "%s/main.c", dir);
    FILE *f = fopen(prog, "w");
    assert_non_null(f);
    fputs(PROGRAM, f);
    fclose(f);
    const char *kinds[] = {"libmdl.so", "mdl.o", "libmdl.a"};
    for (int k = 0; k < 3; k++) {
        compile(g, x, y, z, kinds[k], "mdl.h");
        int rc = k == 0 ? sh("cd %s && cc -std=c11 main.c -L. -lmdl -Wl,-rpath,%s -lm -lpthread -o prog_%d", dir, dir, k)
               : k == 1 ? sh("cd %s && cc -std=c11 main.c mdl.o -lm -lpthread -o prog_%d", dir, k)
                        : sh("cd %s && cc -std=c11 main.c libmdl.a -lm -lpthread -o prog_%d", dir, k);
        assert_int_equal(rc, 0);
        assert_int_equal(sh("cd %s && ./prog_%d > out_%d.txt", dir, k, k), 0);
        char out[256];
        snprintf(out, sizeof out, "%s/out_%d.txt", dir, k);
        check_program_output(out);
        if (k == 1) sh("rm -f %s/mdl.o", dir); /* -lmdl must not pick the .o up */
    }
    kiln_graph_free(g);
}

static void test_shared_object_dependencies(void **state)
{
    (void)state;
    kiln_value x, y, z;
    kiln_graph *g = build(&x, &y, &z);
    compile(g, x, y, z, "libdeps.so", "deps.h");
    assert_int_equal(sh("ldd %s/libdeps.so > %s/ldd.txt", dir, dir), 0);
    char path[256], line[512];
    snprintf(path, sizeof path, "%s/ldd.txt", dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    int libs = 0;
    while (fgets(line, sizeof line, f)) {
        if (strstr(line, "linux-vdso") || strstr(line, "ld-linux")) continue;
        if (!strstr(line, "libc.so") && !strstr(line, "libm.so") && !strstr(line, "libpthread.so"))
            fail_msg("unexpected dependency: %s", line);
        libs++;
    }
    fclose(f);
    assert_true(libs >= 1);
    /* only the documented symbols are exported */
    assert_int_equal(sh("nm -D --defined-only %s/libdeps.so | awk '{print $3}' | grep -v -E '^(mdl_run|mdl_error|mdl_describe|kiln_model_describe)$' | grep -q . && exit 1 || exit 0", dir), 0);
    kiln_graph_free(g);
}

static void test_session_load(void **state)
{
    (void)state;
    kiln_value x, y, z;
    kiln_graph *g = build(&x, &y, &z);
    compile(g, x, y, z, "libload.so", "load.h");
    char path[256];
    snprintf(path, sizeof path, "%s/libload.so", dir);
    kiln_status *st = kiln_status_new();
    kiln_session *s = kiln_session_load(path, st);
    if (!s) fail_msg("load: %s", kiln_status_message(st));
    kiln_value lx = kiln_session_find(s, "x"), ly = kiln_session_find(s, "y"), lz = kiln_session_find(s, "z.int");
    assert_true(kiln_value_ok(lx) && kiln_value_ok(ly) && kiln_value_ok(lz));
    assert_false(kiln_value_ok(kiln_session_find(s, "nope")));
    kiln_tensor *in = tu_f32(2, (int64_t[]){2, 3}, X);
    kiln_tensor *out[3] = {0};
    /* outputs in another order, one twice */
    kiln_session_run(s, &lx, &in, 1, (kiln_value[]){lz, ly, lz}, out, 3, NULL, 0, st);
    if (kiln_status_code(st)) fail_msg("run: %s", kiln_status_message(st));
    double ey[6];
    int64_t ez[6];
    expected(ey, ez);
    tu_assert_shape(out[1], KILN_F32, 2, (int64_t[]){2, 3});
    tu_assert_close(out[1], ey, 6, 1e-6, 1e-7);
    tu_assert_ints(out[0], ez, 6);
    tu_assert_ints(out[2], ez, 6);
    for (int i = 0; i < 3; i++) kiln_tensor_free(out[i]);
    /* and the same through a JIT session */
    kiln_tensor *jit[2] = {0};
    char msg[256];
    assert_int_equal(tu_run_backend(g, KILN_BACKEND_DEFAULT, 2, (kiln_value[]){y, z}, jit, 1, &x, &in, msg, sizeof msg), 0);
    tu_assert_close(jit[0], ey, 6, 1e-6, 1e-7);
    kiln_tensor_free(jit[0]);
    kiln_tensor_free(jit[1]);
    /* wrong shape, missing input, feeding an output */
    kiln_tensor *bad = tu_f32(2, (int64_t[]){3, 3}, (float[9]){0});
    kiln_session_run(s, &lx, &bad, 1, &ly, out, 1, NULL, 0, st);
    assert_int_equal(kiln_status_code(st), KILN_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(kiln_status_message(st), "'x' expects f32[2,3]"));
    assert_null(out[0]);
    kiln_session_run(s, NULL, NULL, 0, &ly, out, 1, NULL, 0, st);
    assert_non_null(strstr(kiln_status_message(st), "must be fed"));
    kiln_session_run(s, (kiln_value[]){lx, ly}, (kiln_tensor *[]){in, in}, 2, &ly, out, 1, NULL, 0, st);
    assert_non_null(strstr(kiln_status_message(st), "cannot be fed"));
    kiln_tensor_free(bad);
    kiln_tensor_free(in);
    kiln_session_free(s);
    kiln_status_free(st);
    kiln_graph_free(g);
}

static void test_load_errors(void **state)
{
    (void)state;
    kiln_status *st = kiln_status_new();
    assert_null(kiln_session_load("/nonexistent/lib.so", st));
    assert_int_equal(kiln_status_code(st), KILN_ERR_NOT_FOUND);
    /* a shared object that is not a kiln model */
    assert_int_equal(sh("cd %s && printf 'int f(void){return 1;}' > other.c && cc -shared -fPIC other.c -o libother.so", dir), 0);
    char path[256];
    snprintf(path, sizeof path, "%s/libother.so", dir);
    assert_null(kiln_session_load(path, st));
    assert_non_null(strstr(kiln_status_message(st), "not a kiln model"));
    /* a model built for another ABI version */
    assert_int_equal(sh("cd %s && printf 'struct d { int abi; } D = {999}; struct d *kiln_model_describe(void){return &D;}' > old.c && cc -shared -fPIC old.c -o libold.so", dir), 0);
    snprintf(path, sizeof path, "%s/libold.so", dir);
    assert_null(kiln_session_load(path, st));
    assert_int_equal(kiln_status_code(st), KILN_ERR_FAILED_PRECONDITION);
    assert_non_null(strstr(kiln_status_message(st), "ABI version 999"));
    /* not a library at all */
    snprintf(path, sizeof path, "%s/main.c", dir);
    sh("echo hello > %s", path);
    assert_null(kiln_session_load(path, st));
    assert_int_equal(kiln_status_code(st), KILN_ERR_INVALID_ARGUMENT);
    kiln_status_free(st);
}

static void test_compile_errors(void **state)
{
    (void)state;
    kiln_value x, y, z;
    kiln_graph *g = build(&x, &y, &z);
    kiln_status *st = kiln_status_new();
    char path[256];
    snprintf(path, sizeof path, "%s/libbad.so", dir);
    kiln_compile_library(g, &x, 1, &y, 1, path, NULL, st); /* x has a symbolic dim */
    assert_int_equal(kiln_status_code(st), KILN_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(kiln_status_message(st), "symbolic"));
    kiln_compile_options o;
    kiln_compile_options_init(&o);
    o.symbolic_dim = 4;
    o.name = "not a name";
    kiln_compile_library(g, &x, 1, &y, 1, path, &o, st);
    assert_non_null(strstr(kiln_status_message(st), "not a C identifier"));
    o.name = "ok";
    snprintf(path, sizeof path, "%s/libbad.dll", dir);
    kiln_compile_library(g, &x, 1, &y, 1, path, &o, st);
    assert_non_null(strstr(kiln_status_message(st), ".so, .o or .a"));
    snprintf(path, sizeof path, "%s/libbad.so", dir);
    kiln_compile_library(g, &x, 1, &y, 0, path, &o, st);
    assert_int_equal(kiln_status_code(st), KILN_ERR_INVALID_ARGUMENT);
    o.cpu = "no-such-cpu-really";
    kiln_compile_library(g, &x, 1, &y, 1, path, &o, st);
    assert_int_not_equal(kiln_status_code(st), KILN_OK);
    kiln_status_free(st);
    kiln_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_program_links_each_kind),
        TU_TEST(test_shared_object_dependencies),
        TU_TEST(test_session_load),
        TU_TEST(test_load_errors),
        TU_TEST(test_compile_errors),
    };
    return cmocka_run_group_tests(tests, setup_dir, remove_dir);
}
