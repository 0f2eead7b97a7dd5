/* test_dataset.c -- kiln_dataset: CSV (plain, gzip'd, header and skipped
 * lines, chosen columns, CRLF, blanks) and NPY loading; errors naming the
 * file, line and column (bad cells, ragged rows, bad gzip); the split, the
 * standardization (fitted on train only), reproducible shuffles that keep
 * features and targets paired; batches covering every example exactly
 * once per epoch; and an allocation-failure sweep. */
#include "common/testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "ir.h"

static char tmpdir[64];

static int make_tmpdir(void **state)
{
    (void)state;
    strcpy(tmpdir, "/tmp/kiln-test-dataset-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_tmpdir(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Writes text to <tmpdir>/<name> (gzip'd when gz) and returns the path
 * (static storage, one at a time). */
static const char *write_file(const char *name, const char *text, int gz)
{
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    if (gz) {
        gzFile f = gzopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(gzwrite(f, text, (unsigned)strlen(text)), (int)strlen(text));
        assert_int_equal(gzclose(f), Z_OK);
    } else {
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        fputs(text, f);
        fclose(f);
    }
    return path;
}

static const float *fx(const kiln_dataset *d)
{
    return kiln_tensor_const_data(kiln_dataset_features(d));
}

static kiln_dataset *read_ok(const char *path, const kiln_csv_options *o)
{
    kiln_status *st = kiln_status_new();
    kiln_dataset *d = kiln_dataset_read_csv(path, o, st);
    if (!d) fail_msg("%s", kiln_status_message(st));
    kiln_status_free(st);
    return d;
}

/* Reading must fail with code and a message holding every substring
 * (NULL-terminated). */
static void read_fails(const char *path, const kiln_csv_options *o, int code, ...)
{
    kiln_status *st = kiln_status_new();
    kiln_dataset *d = kiln_dataset_read_csv(path, o, st);
    assert_null(d);
    assert_int_equal(kiln_status_code(st), code);
    va_list ap;
    va_start(ap, code);
    for (const char *s; (s = va_arg(ap, const char *));)
        if (!strstr(kiln_status_message(st), s))
            fail_msg("'%s' is not in the message: %s", s, kiln_status_message(st));
    va_end(ap);
    kiln_status_free(st);
}

static void test_csv_basic(void **state)
{
    (void)state;
    /* The layout of scikit-learn's Boston file: a count line, a header. */
    const char *p = write_file("b.csv",
                               "3,2,,\n\"A\",\"B\",\"C\"\n1.5,2,10\n-3, 4e1 ,20\r\n\n  \n0,0.25,30\n", 0);
    kiln_csv_options o;
    kiln_csv_options_init(&o);
    o.skip_lines = 1;
    o.header = 1;
    kiln_dataset *d = read_ok(p, &o);
    assert_int_equal(kiln_dataset_count(d), 3);
    tu_assert_shape(kiln_dataset_features(d), KILN_F32, 2, (int64_t[]){3, 2});
    tu_assert_close(kiln_dataset_features(d), (double[]){1.5, 2, -3, 40, 0, 0.25}, 6, 0, 0);
    tu_assert_shape(kiln_dataset_targets(d), KILN_F32, 1, (int64_t[]){3});
    tu_assert_close(kiln_dataset_targets(d), (double[]){10, 20, 30}, 3, 0, 0);
    kiln_dataset_free(d);

    /* Integer labels in the middle, features chosen (one from the end), an
     * unparsed text column ignored. */
    p = write_file("c.csv", "7;1;x;8\n5;0;y;6\n", 0);
    kiln_csv_options_init(&o);
    o.delimiter = ';';
    o.target_column = 1;
    o.target_dtype = KILN_I64;
    o.feature_columns = (int[]){-1, 0};
    o.nfeature_columns = 2;
    d = read_ok(p, &o);
    tu_assert_close(kiln_dataset_features(d), (double[]){8, 7, 6, 5}, 4, 0, 0);
    tu_assert_shape(kiln_dataset_targets(d), KILN_I64, 1, (int64_t[]){2});
    tu_assert_ints(kiln_dataset_targets(d), (int64_t[]){1, 0}, 2);
    kiln_dataset_free(d);

    /* No target: every column is a feature; no final newline. */
    p = write_file("d.csv", "1,2\n3,4", 0);
    kiln_csv_options_init(&o);
    o.no_target = 1;
    d = read_ok(p, &o);
    assert_null(kiln_dataset_targets(d));
    tu_assert_close(kiln_dataset_features(d), (double[]){1, 2, 3, 4}, 4, 0, 0);
    kiln_dataset_free(d);
}

static void test_csv_gzip(void **state)
{
    (void)state;
    const char *p = write_file("g.csv.gz", "0,1,2\n3,4,5\n", 1);
    kiln_csv_options o;
    kiln_csv_options_init(&o);
    o.target_dtype = KILN_I64;
    kiln_dataset *d = read_ok(p, &o);
    tu_assert_close(kiln_dataset_features(d), (double[]){0, 1, 3, 4}, 4, 0, 0);
    tu_assert_ints(kiln_dataset_targets(d), (int64_t[]){2, 5}, 2);
    kiln_dataset_free(d);

    /* A gzip stream cut short is an I/O error naming the file. */
    char text[4096];
    for (int i = 0; i < 200; i++) {
        char line[64];
        snprintf(line, sizeof line, "%6d,%6d,%5d\n", i, 2 * i, i % 10); /* 20 characters */
        memcpy(text + i * 20, line, 20);
    }
    text[200 * 20] = 0;
    p = write_file("t.csv.gz", text, 1);
    FILE *f = fopen(p, "rb");
    unsigned char buf[8192];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    f = fopen(p, "wb");
    fwrite(buf, 1, n / 2, f);
    fclose(f);
    read_fails(p, NULL, KILN_ERR_IO, "t.csv.gz", NULL);
}

static void test_csv_errors(void **state)
{
    (void)state;
    kiln_csv_options o;
    kiln_csv_options_init(&o);
    char missing[128];
    snprintf(missing, sizeof missing, "%s/nope.csv", tmpdir);
    read_fails(missing, NULL, KILN_ERR_NOT_FOUND, "nope.csv", "cannot open", NULL);

    const char *p = write_file("bad.csv", "1,2,3\n4,abc,6\n", 0);
    read_fails(p, NULL, KILN_ERR_INVALID_ARGUMENT, "bad.csv', line 2, column 2: 'abc' is not a number",
               NULL);
    p = write_file("empty_cell.csv", "1,2,3\n\n4,,6\n", 0);
    read_fails(p, NULL, KILN_ERR_INVALID_ARGUMENT, "empty_cell.csv', line 3, column 2: the cell is empty",
               NULL);
    p = write_file("inf.csv", "1,2,3\n4,inf,6\n", 0);
    read_fails(p, NULL, KILN_ERR_INVALID_ARGUMENT, "line 2, column 2: 'inf' is not a number", NULL);
    p = write_file("trail.csv", "1,2,3\n4,5x,6\n", 0);
    read_fails(p, NULL, KILN_ERR_INVALID_ARGUMENT, "line 2, column 2: '5x'", NULL);

    /* Ragged rows, shorter and longer. */
    p = write_file("ragged.csv", "h\n1,2,3\n4,5,6\n7,8\n", 0);
    o.header = 1;
    read_fails(p, &o, KILN_ERR_INVALID_ARGUMENT,
               "ragged.csv', line 4: 2 columns, but line 2 (the first data line) has 3", NULL);
    p = write_file("ragged2.csv", "1,2\n3,4,5\n", 0);
    read_fails(p, NULL, KILN_ERR_INVALID_ARGUMENT, "line 2: 3 columns, but line 1", NULL);

    /* Labels must be integers. */
    kiln_csv_options_init(&o);
    o.target_dtype = KILN_I64;
    p = write_file("label.csv", "1,2\n3,4.5\n", 0);
    read_fails(p, &o, KILN_ERR_INVALID_ARGUMENT, "line 2, column 2: the target '4.5' is not an integer",
               NULL);

    /* Columns out of range, twice, none left. */
    p = write_file("cols.csv", "1,2\n3,4\n", 0);
    kiln_csv_options_init(&o);
    o.target_column = 2;
    read_fails(p, &o, KILN_ERR_INVALID_ARGUMENT, "target column 2 is out of range", "2 columns", NULL);
    kiln_csv_options_init(&o);
    o.feature_columns = (int[]){0, -2};
    o.nfeature_columns = 2;
    read_fails(p, &o, KILN_ERR_INVALID_ARGUMENT, "feature column -2 (feature_columns[1]) is given twice",
               NULL);
    o.feature_columns = (int[]){5};
    o.nfeature_columns = 1;
    read_fails(p, &o, KILN_ERR_INVALID_ARGUMENT, "feature column 5", "out of range", NULL);
    p = write_file("one.csv", "1\n3\n", 0);
    read_fails(p, NULL, KILN_ERR_INVALID_ARGUMENT, "no feature columns", NULL);

    /* Nothing to read. */
    p = write_file("hdr.csv", "a,b\n\n", 0);
    kiln_csv_options_init(&o);
    o.header = 1;
    read_fails(p, &o, KILN_ERR_INVALID_ARGUMENT, "hdr.csv': no data lines", NULL);
    o.skip_lines = 5;
    read_fails(p, &o, KILN_ERR_INVALID_ARGUMENT, "fewer than the 6 to skip", NULL);
    kiln_csv_options_init(&o);
    o.target_dtype = KILN_BOOL;
    read_fails(p, &o, KILN_ERR_INVALID_ARGUMENT, "bad options", NULL);
    read_fails(NULL, NULL, KILN_ERR_INVALID_ARGUMENT, "path is NULL", NULL);

    /* Binary junk is a bad cell, not a crash. */
    p = write_file("junk.csv", "\x01\x02\xff,\x7f\n", 0);
    read_fails(p, NULL, KILN_ERR_INVALID_ARGUMENT, "line 1, column 1: '\?\?\?' is not a number", NULL);
}

static void test_npy(void **state)
{
    (void)state;
    char xp[256], yp[256], bad[256];
    snprintf(xp, sizeof xp, "%s/x.npy", tmpdir);
    snprintf(yp, sizeof yp, "%s/y.npy", tmpdir);
    snprintf(bad, sizeof bad, "%s/bad.npy", tmpdir);
    kiln_tensor *x = kiln_tensor_new(KILN_U8, 3, (int64_t[]){3, 2, 2});
    for (int i = 0; i < 12; i++) ((uint8_t *)kiln_tensor_data(x))[i] = (uint8_t)(i * 20);
    kiln_tensor *y = tu_i32(1, (int64_t[]){3}, (int32_t[]){2, 0, 1});
    kiln_tensor *y2 = tu_i32(1, (int64_t[]){2}, (int32_t[]){2, 0});
    assert_int_equal(kiln_tensor_write_npy(x, xp, NULL), KILN_OK);
    assert_int_equal(kiln_tensor_write_npy(y, yp, NULL), KILN_OK);
    assert_int_equal(kiln_tensor_write_npy(y2, bad, NULL), KILN_OK);
    kiln_status *st = kiln_status_new();
    kiln_dataset *d = kiln_dataset_read_npy(xp, yp, st);
    assert_non_null(d);
    tu_assert_shape(kiln_dataset_features(d), KILN_F32, 3, (int64_t[]){3, 2, 2});
    assert_true(fx(d)[11] == 220.0f);
    tu_assert_shape(kiln_dataset_targets(d), KILN_I64, 1, (int64_t[]){3});
    tu_assert_ints(kiln_dataset_targets(d), (int64_t[]){2, 0, 1}, 3);
    kiln_dataset_free(d);

    assert_null(kiln_dataset_read_npy(xp, bad, st));
    assert_int_equal(kiln_status_code(st), KILN_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(kiln_status_message(st), "bad.npy"));
    assert_non_null(strstr(kiln_status_message(st), "one row per example"));
    assert_null(kiln_dataset_read_npy(yp, "/nonexistent/y.npy", st));
    assert_int_equal(kiln_status_code(st), KILN_ERR_NOT_FOUND);

    /* A vector of features is one feature per example; no targets. */
    d = kiln_dataset_read_npy(yp, NULL, st);
    assert_non_null(d);
    tu_assert_shape(kiln_dataset_features(d), KILN_F32, 2, (int64_t[]){3, 1});
    assert_null(kiln_dataset_targets(d));
    kiln_dataset_free(d);

    /* From tensors: copies, float targets stay f32. */
    kiln_tensor *yf = tu_f64(1, (int64_t[]){3}, (double[]){0.5, 1.5, 2.5});
    d = kiln_dataset_from_tensors(x, yf, st);
    assert_non_null(d);
    tu_assert_shape(kiln_dataset_targets(d), KILN_F32, 1, (int64_t[]){3});
    tu_assert_close(kiln_dataset_targets(d), (double[]){0.5, 1.5, 2.5}, 3, 0, 0);
    kiln_dataset_free(d);
    assert_null(kiln_dataset_from_tensors(NULL, NULL, st));
    kiln_tensor *empty = kiln_tensor_new(KILN_F32, 2, (int64_t[]){0, 3});
    assert_null(kiln_dataset_from_tensors(empty, NULL, st));
    assert_non_null(strstr(kiln_status_message(st), "n >= 1"));
    kiln_tensor_free(empty);
    kiln_tensor_free(yf);
    kiln_tensor_free(x);
    kiln_tensor_free(y);
    kiln_tensor_free(y2);
    kiln_status_free(st);
}

/* n examples: features [i, 1000 + i], targets i (i64). */
static kiln_dataset *counting(int64_t n)
{
    kiln_tensor *x = kiln_tensor_new(KILN_F32, 2, (int64_t[]){n, 2});
    kiln_tensor *y = kiln_tensor_new(KILN_I64, 1, &n);
    for (int64_t i = 0; i < n; i++) {
        ((float *)kiln_tensor_data(x))[2 * i] = (float)i;
        ((float *)kiln_tensor_data(x))[2 * i + 1] = (float)(1000 + i);
        ((int64_t *)kiln_tensor_data(y))[i] = i;
    }
    kiln_dataset *d = kiln_dataset_from_tensors(x, y, NULL);
    assert_non_null(d);
    kiln_tensor_free(x);
    kiln_tensor_free(y);
    return d;
}

/* Every row still pairs features [i, 1000 + i] with target i; marks the
 * ids seen in seen[] (which must be new). */
static void check_rows(const kiln_tensor *x, const kiln_tensor *y, unsigned char *seen)
{
    int64_t m = kiln_tensor_dims(x)[0];
    const float *xv = kiln_tensor_const_data(x);
    const int64_t *yv = kiln_tensor_const_data(y);
    for (int64_t i = 0; i < m; i++) {
        assert_true(xv[2 * i] == (float)yv[i]);
        assert_true(xv[2 * i + 1] == (float)(1000 + yv[i]));
        if (seen) {
            assert_int_equal(seen[yv[i]], 0);
            seen[yv[i]] = 1;
        }
    }
}

static void test_shuffle(void **state)
{
    (void)state;
    const int64_t n = 50;
    kiln_dataset *a = counting(n), *b = counting(n), *c = counting(n);
    assert_int_equal(kiln_dataset_shuffle(a, 7, NULL), KILN_OK);
    assert_int_equal(kiln_dataset_shuffle(b, 7, NULL), KILN_OK);
    assert_int_equal(kiln_dataset_shuffle(c, 8, NULL), KILN_OK);
    /* Same seed, same order; another seed, another order; a permutation
     * with rows kept whole. */
    assert_memory_equal(fx(a), fx(b), sizeof(float) * 2 * n);
    assert_memory_not_equal(fx(a), fx(c), sizeof(float) * 2 * n);
    unsigned char seen[50] = {0};
    check_rows(kiln_dataset_features(a), kiln_dataset_targets(a), seen);
    int moved = 0;
    for (int64_t i = 0; i < n; i++) moved += fx(a)[2 * i] != (float)i;
    assert_true(moved > n / 2);
    /* Pinned: the order is part of the contract (same on every machine). */
    const int64_t *ya = kiln_tensor_const_data(kiln_dataset_targets(a));
    int64_t first[5];
    memcpy(first, ya, sizeof first);
    kiln_dataset *again = counting(n);
    kiln_dataset_shuffle(again, 7, NULL);
    assert_memory_equal(kiln_tensor_const_data(kiln_dataset_targets(again)), first, sizeof first);
    kiln_dataset_free(again);
    assert_int_equal(kiln_dataset_shuffle(NULL, 1, NULL), KILN_ERR_INVALID_ARGUMENT);
    kiln_dataset_free(a);
    kiln_dataset_free(b);
    kiln_dataset_free(c);
}

static void test_split(void **state)
{
    (void)state;
    kiln_dataset *d = counting(101), *train, *test, *train2, *test2;
    kiln_status *st = kiln_status_new();
    assert_int_equal(kiln_dataset_split(d, 0.2, 3, &train, &test, st), KILN_OK);
    assert_int_equal(kiln_dataset_count(test), 21); /* ceil(20.2) */
    assert_int_equal(kiln_dataset_count(train), 80);
    unsigned char seen[101] = {0};
    check_rows(kiln_dataset_features(test), kiln_dataset_targets(test), seen);
    check_rows(kiln_dataset_features(train), kiln_dataset_targets(train), seen);
    for (int i = 0; i < 101; i++) assert_int_equal(seen[i], 1);
    /* Reproducible, and the order kiln_dataset_shuffle gives. */
    assert_int_equal(kiln_dataset_split(d, 0.2, 3, &train2, &test2, st), KILN_OK);
    assert_memory_equal(fx(test), fx(test2), sizeof(float) * 2 * 21);
    kiln_dataset *s = counting(101);
    kiln_dataset_shuffle(s, 3, NULL);
    assert_memory_equal(fx(s), fx(test), sizeof(float) * 2 * 21);
    assert_memory_equal(fx(s) + 2 * 21, fx(train), sizeof(float) * 2 * 80);
    /* d itself is unchanged. */
    for (int i = 0; i < 101; i++) assert_true(fx(d)[2 * i] == (float)i);
    kiln_dataset_free(s);
    kiln_dataset_free(train2);
    kiln_dataset_free(test2);

    /* Bad fractions leave both outputs NULL. */
    double bad[] = {0, 1, -0.5, 1.5, NAN, 0.999};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(kiln_dataset_split(d, bad[i], 1, &train2, &test2, st),
                         KILN_ERR_INVALID_ARGUMENT);
        assert_null(train2);
        assert_null(test2);
    }
    assert_non_null(strstr(kiln_status_message(st), "of 101 examples"));
    kiln_dataset_free(train);
    kiln_dataset_free(test);
    kiln_dataset_free(d);
    kiln_status_free(st);
}

static void test_standardize(void **state)
{
    (void)state;
    /* Feature 0: 1, 2, 3 (mean 2, std sqrt(2/3)); feature 1 constant 5. */
    kiln_tensor *x = tu_f32(2, (int64_t[]){3, 2}, (float[]){1, 5, 2, 5, 3, 5});
    kiln_tensor *xt = tu_f32(2, (int64_t[]){1, 2}, (float[]){4, 7});
    kiln_dataset *train = kiln_dataset_from_tensors(x, NULL, NULL);
    kiln_dataset *test = kiln_dataset_from_tensors(xt, NULL, NULL);
    kiln_tensor *mean = NULL, *scale = NULL;
    kiln_status *st = kiln_status_new();
    assert_int_equal(kiln_dataset_standardize(train, test, &mean, &scale, st), KILN_OK);
    double sd = sqrt(2.0 / 3.0);
    tu_assert_close(mean, (double[]){2, 5}, 2, 1e-7, 0);
    tu_assert_close(scale, (double[]){sd, 1}, 2, 1e-7, 0);
    tu_assert_close(kiln_dataset_features(train), (double[]){-1 / sd, 0, 0, 0, 1 / sd, 0}, 6, 1e-6, 1e-7);
    /* The test set uses the training set's statistics. */
    tu_assert_close(kiln_dataset_features(test), (double[]){2 / sd, 2}, 2, 1e-6, 0);
    kiln_tensor_free(mean);
    kiln_tensor_free(scale);

    /* Shapes must agree; nothing changes on error. */
    kiln_tensor *x3 = tu_f32(2, (int64_t[]){1, 3}, (float[]){1, 2, 3});
    kiln_dataset *other = kiln_dataset_from_tensors(x3, NULL, NULL);
    assert_int_equal(kiln_dataset_standardize(train, other, &mean, NULL, st),
                     KILN_ERR_INVALID_ARGUMENT);
    assert_null(mean);
    assert_non_null(strstr(kiln_status_message(st), "f32[3,2]"));
    assert_non_null(strstr(kiln_status_message(st), "f32[1,3]"));
    tu_assert_close(kiln_dataset_features(other), (double[]){1, 2, 3}, 3, 0, 0);
    assert_int_equal(kiln_dataset_standardize(NULL, NULL, NULL, NULL, st), KILN_ERR_INVALID_ARGUMENT);
    /* Without a test set. */
    assert_int_equal(kiln_dataset_standardize(other, NULL, NULL, NULL, st), KILN_OK);
    kiln_dataset_free(other);
    kiln_tensor_free(x3);
    kiln_dataset_free(train);
    kiln_dataset_free(test);
    kiln_tensor_free(x);
    kiln_tensor_free(xt);
    kiln_status_free(st);
}

static void test_batches(void **state)
{
    (void)state;
    const int64_t n = 23;
    kiln_dataset *d = counting(n);
    kiln_status *st = kiln_status_new();
    assert_int_equal(kiln_dataset_batch_count(d, 5, 0), 5);
    assert_int_equal(kiln_dataset_batch_count(d, 5, 1), 4);
    assert_int_equal(kiln_dataset_batch_count(d, 23, 1), 1);
    assert_int_equal(kiln_dataset_batch_count(d, 24, 1), 0);
    assert_int_equal(kiln_dataset_batch_count(d, 0, 0), 0);
    assert_int_equal(kiln_dataset_batch_count(NULL, 5, 0), 0);
    for (int epoch = 0; epoch < 3; epoch++) {
        assert_int_equal(kiln_dataset_shuffle(d, (uint64_t)epoch, st), KILN_OK);
        for (int drop = 0; drop < 2; drop++) {
            /* Kept: every example exactly once. Dropped: the last 3 of this
             * epoch's order are left out, the others seen exactly once. */
            unsigned char seen[23] = {0};
            int64_t nb = kiln_dataset_batch_count(d, 5, drop), total = 0;
            for (int64_t i = 0; i < nb; i++) {
                kiln_tensor *x = NULL, *y = NULL;
                assert_int_equal(kiln_dataset_batch(d, i, 5, drop, &x, &y, st), KILN_OK);
                int64_t m = i == 4 ? 3 : 5;
                tu_assert_shape(x, KILN_F32, 2, (int64_t[]){m, 2});
                tu_assert_shape(y, KILN_I64, 1, (int64_t[]){m});
                check_rows(x, y, seen);
                total += m;
                kiln_tensor_free(x);
                kiln_tensor_free(y);
            }
            assert_int_equal(total, drop ? 20 : 23);
            const int64_t *order = kiln_tensor_const_data(kiln_dataset_targets(d));
            for (int64_t i = 0; i < n; i++) assert_int_equal(seen[order[i]], drop && i >= 20 ? 0 : 1);
        }
    }
    /* Out of range, bad size; y may be NULL. */
    kiln_tensor *x = NULL, *y = NULL;
    assert_int_equal(kiln_dataset_batch(d, 4, 5, 1, &x, &y, st), KILN_ERR_INVALID_ARGUMENT);
    assert_null(x);
    assert_null(y);
    assert_non_null(strstr(kiln_status_message(st),
                           "batch 4 does not exist: 23 examples make 4 batches of 5 (the partial one dropped)"));
    assert_int_equal(kiln_dataset_batch(d, -1, 5, 0, &x, &y, st), KILN_ERR_INVALID_ARGUMENT);
    assert_int_equal(kiln_dataset_batch(d, 0, 0, 0, &x, &y, st), KILN_ERR_INVALID_ARGUMENT);
    assert_int_equal(kiln_dataset_batch(d, 0, 5, 0, &x, NULL, st), KILN_OK);
    kiln_tensor_free(x);
    kiln_dataset_free(d);

    /* No targets: *y is NULL. */
    kiln_tensor *xs = tu_f32(2, (int64_t[]){2, 1}, (float[]){1, 2});
    d = kiln_dataset_from_tensors(xs, NULL, NULL);
    y = (kiln_tensor *)1;
    assert_int_equal(kiln_dataset_batch(d, 0, 2, 0, &x, &y, st), KILN_OK);
    assert_null(y);
    kiln_tensor_free(x);
    kiln_tensor_free(xs);
    kiln_dataset_free(d);
    kiln_status_free(st);
}

/* Reading, splitting, standardizing and batching with the n-th allocation
 * failing, for every n until the whole succeeds: each failure is an
 * out-of-memory error and nothing leaks. */
static void test_alloc_failures(void **state)
{
    (void)state;
    const char *p = write_file("sweep.csv", "c\n1,2,0\n3,4,1\n5,6,0\n7,8,1\n9,10,1\n", 0);
    kiln_csv_options o;
    kiln_csv_options_init(&o);
    o.header = 1;
    o.target_dtype = KILN_I64;
    long base = ir_alloc_live_blocks();
    int failures = 0;
    for (long n = 0; n < 1000; n++) {
        kiln_status *st = kiln_status_new();
        kiln_dataset *d = NULL, *train = NULL, *test = NULL;
        kiln_tensor *mean = NULL, *x = NULL, *y = NULL;
        ir_alloc_fail_after(n);
        int rc = KILN_ERR_OUT_OF_MEMORY;
        d = kiln_dataset_read_csv(p, &o, st);
        if (d && !kiln_dataset_split(d, 0.4, 1, &train, &test, st) &&
            !kiln_dataset_standardize(train, test, &mean, NULL, st) &&
            !kiln_dataset_shuffle(train, 2, st))
            rc = kiln_dataset_batch(train, 0, 2, 1, &x, &y, st);
        bool failed = ir_alloc_failed();
        ir_alloc_fail_after(-1);
        if (failed) {
            failures++;
            assert_int_equal(kiln_status_code(st), KILN_ERR_OUT_OF_MEMORY);
        } else {
            assert_int_equal(rc, KILN_OK);
            tu_assert_shape(x, KILN_F32, 2, (int64_t[]){2, 2});
        }
        kiln_tensor_free(x);
        kiln_tensor_free(y);
        kiln_tensor_free(mean);
        kiln_dataset_free(d);
        kiln_dataset_free(train);
        kiln_dataset_free(test);
        kiln_status_free(st);
        if (ir_alloc_live_blocks() != base) fail_msg("fail_after(%ld): %ld blocks leaked", n, ir_alloc_live_blocks() - base);
        if (!failed) break;
    }
    assert_true(failures > 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_csv_basic),      TU_TEST(test_csv_gzip),    TU_TEST(test_csv_errors),
        TU_TEST(test_npy),            TU_TEST(test_shuffle),     TU_TEST(test_split),
        TU_TEST(test_standardize),    TU_TEST(test_batches),     TU_TEST(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}
