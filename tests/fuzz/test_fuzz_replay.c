/* test_fuzz_replay.c -- replays the saved fuzz corpora (tests/fuzz/corpus_*)
 * through the fuzz targets in the normal test run, so inputs the fuzzer
 * once found stay covered: each must import or fail cleanly, leaking
 * nothing. */
#include "common/testutil.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz/fuzz_onnx.c"

#ifndef KILN_SOURCE_DIR
#define KILN_SOURCE_DIR "."
#endif

static int replay(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) fail_msg("cannot open %s", dir);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "rb");
        if (!f) continue;
        fseek(f, 0, SEEK_END);
        long size = ftell(f);
        fseek(f, 0, SEEK_SET);
        uint8_t *buf = malloc((size_t)size + 1);
        size_t got = fread(buf, 1, (size_t)size, f);
        fclose(f);
        LLVMFuzzerTestOneInput(buf, got);
        free(buf);
        n++;
    }
    closedir(d);
    return n;
}

static void test_replay_onnx(void **state)
{
    (void)state;
    int n = replay("tests/fuzz/corpus_onnx");
    assert_true(n > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_replay_onnx),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
