/* test_examples.c -- runs the training examples (examples/housing.c and
 * examples/digits.c) in --quick mode, checks their exit status and the
 * metrics they print, and compiles the CNN that digits froze and saved
 * with the `kiln compile` command line. The examples check their own
 * thresholds (and exit non-zero when they miss one); the test checks them
 * again from the printed numbers, so a change that breaks the reporting
 * fails too. The data come from python3-sklearn (make deps installs it). */
#include "common/testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef KILN_BUILD_DIR
#define KILN_BUILD_DIR "build"
#endif

#define SKLEARN_DATA "/usr/lib/python3/dist-packages/sklearn/datasets/data"

/* Runs cmd through the shell with stderr joined to stdout; returns its
 * output (malloc'd) and its exit status in *status. */
static char *run(const char *cmd, int *status)
{
    char full[4096];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    FILE *p = popen(full, "r");
    assert_non_null(p);
    size_t cap = 1 << 16, n = 0;
    char *out = malloc(cap);
    assert_non_null(out);
    size_t k;
    while ((k = fread(out + n, 1, cap - n - 1, p)) > 0) {
        n += k;
        if (cap - n < 2) {
            cap *= 2;
            out = realloc(out, cap);
            assert_non_null(out);
        }
    }
    out[n] = 0;
    int rc = pclose(p);
    *status = WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
    return out;
}

/* The number printed after `key` (on the first line holding it). */
static double metric(const char *out, const char *key)
{
    const char *at = strstr(out, key);
    if (!at) fail_msg("'%s' is not in the output:\n%s", key, out);
    return strtod(at + strlen(key), NULL);
}

static void require_data(const char *file)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", SKLEARN_DATA, file);
    if (access(path, R_OK) != 0)
        fail_msg("%s is missing: install python3-sklearn (make deps)", path);
}

static void test_housing_quick(void **state)
{
    (void)state;
    require_data("boston_house_prices.csv");
    int status;
    char *out = run(KILN_BUILD_DIR "/examples/housing --quick", &status);
    if (status != 0) fail_msg("housing --quick exited with %d:\n%s", status, out);
    double lin = metric(out, "linear: test RMSE "), net = metric(out, "network: test RMSE ");
    print_message("housing: linear RMSE %.3f, network RMSE %.3f\n", lin, net);
    assert_true(lin > 0 && lin < 6.0);
    assert_true(net > 0 && net < lin);
    assert_non_null(strstr(out, "ok: the network beats linear regression"));
    /* Not a terminal: one plain line per epoch, no carriage returns. */
    assert_null(strchr(out, '\r'));
    assert_non_null(strstr(out, "network epoch  80/80"));
    free(out);
}

static void test_digits_quick(void **state)
{
    (void)state;
    require_data("digits.csv.gz");
    char dir[] = "/tmp/kiln-test-digits-XXXXXX", cmd[1024];
    assert_non_null(mkdtemp(dir));
    int status;
    snprintf(cmd, sizeof cmd, KILN_BUILD_DIR "/examples/digits --quick --out %s", dir);
    char *out = run(cmd, &status);
    if (status != 0) fail_msg("digits --quick exited with %d:\n%s", status, out);
    double mlp = metric(out, "mlp: test accuracy "), cnn = metric(out, "cnn: test accuracy ");
    double so = metric(out, "cnn .so: test accuracy ");
    print_message("digits: mlp %.2f%%, cnn %.2f%%, .so %.2f%%\n", mlp, cnn, so);
    assert_true(mlp >= 95.0);
    assert_true(cnn >= 97.0);
    assert_true(so == cnn);
    assert_non_null(strstr(out, "the same prediction as the session for 360/360"));
    assert_null(strchr(out, '\r'));
    free(out);

    /* The frozen CNN it saved compiles with the command line too. */
    snprintf(cmd, sizeof cmd,
             KILN_BUILD_DIR "/tools/kiln compile %s/digits_cnn.kiln -o %s/libcli.so --dim 1 && "
             KILN_BUILD_DIR "/tools/kiln info %s/libcli.so",
             dir, dir, dir);
    out = run(cmd, &status);
    if (status != 0) fail_msg("kiln compile/info exited with %d:\n%s", status, out);
    assert_non_null(strstr(out, "logits"));
    free(out);

    const char *files[] = {"digits_cnn.kiln", "libdigits_cnn.so", "digits_cnn.h", "libcli.so"};
    for (int i = 0; i < 4; i++) {
        snprintf(cmd, sizeof cmd, "%s/%s", dir, files[i]);
        assert_int_equal(unlink(cmd), 0);
    }
    assert_int_equal(rmdir(dir), 0);
}

/* Bad options are refused with a usage message and status 2. */
static void test_bad_options(void **state)
{
    (void)state;
    int status;
    char *out = run(KILN_BUILD_DIR "/examples/digits --epochs x", &status);
    assert_int_equal(status, 2);
    assert_non_null(strstr(out, "usage:"));
    free(out);
    out = run(KILN_BUILD_DIR "/examples/housing --data /nonexistent.csv", &status);
    assert_int_equal(status, 1);
    assert_non_null(strstr(out, "/nonexistent.csv"));
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_housing_quick),
        TU_TEST(test_digits_quick),
        TU_TEST(test_bad_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
