/* test_npy.c -- .npy files: numpy's reference files (every dtype,
 * big-endian, Fortran order, a scalar, a zero-size array, rank 8, format
 * 2.0) read back with the values of tests/frontend/gen_npy.py (the literals
 * below are that script's); kiln's files byte-identical to numpy's; round
 * trips; malformed and hostile files; write errors; allocation-failure
 * sweeps. Tests run from the repository root (data files are found next to
 * this source file). */
#include "common/testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ir.h"

/* ---- Helpers -------------------------------------------------------------- */

static void data_path(const char *name, char *buf, size_t n)
{
    const char *f = __FILE__;
    const char *slash = strrchr(f, '/');
    int dirlen = slash ? (int)(slash - f + 1) : 0;
    snprintf(buf, n, "%.*sdata/%s.npy", dirlen, f, name);
}

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    unsigned char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 4096;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        size_t k = fread(buf + n, 1, cap - n, f);
        if (k == 0) break;
        n += k;
    }
    fclose(f);
    *len = n;
    return buf;
}

/* A new empty file under /tmp; its name in buf (at least 32 bytes). */
static void tmp_file(char *buf)
{
    strcpy(buf, "/tmp/kiln_npy_XXXXXX");
    int fd = mkstemp(buf);
    assert_true(fd >= 0);
    close(fd);
}

static void put_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static void assert_same_file(const char *a, const char *b)
{
    size_t na, nb;
    unsigned char *pa = slurp(a, &na), *pb = slurp(b, &nb);
    if (na != nb || memcmp(pa, pb, na) != 0) {
        print_error("%s (%zu bytes) and %s (%zu bytes) differ\n", a, na, b, nb);
        free(pa);
        free(pb);
        fail();
    }
    free(pa);
    free(pb);
}

static kiln_tensor *read_ok(const char *path)
{
    kiln_status *st = kiln_status_new();
    kiln_tensor *t = kiln_tensor_read_npy(path, st);
    if (!t) print_error("%s\n", kiln_status_message(st));
    assert_non_null(t);
    assert_int_equal(kiln_status_code(st), KILN_OK);
    kiln_status_free(st);
    return t;
}

static kiln_tensor *read_ref(const char *name)
{
    char path[512];
    data_path(name, path, sizeof path);
    return read_ok(path);
}

static void write_ok(const kiln_tensor *t, const char *path)
{
    kiln_status *st = kiln_status_new();
    int code = kiln_tensor_write_npy(t, path, st);
    if (code) print_error("%s\n", kiln_status_message(st));
    assert_int_equal(code, KILN_OK);
    assert_int_equal(kiln_status_code(st), KILN_OK);
    kiln_status_free(st);
}

static void assert_bytes(const kiln_tensor *t, const void *want, size_t n)
{
    assert_int_equal(kiln_tensor_nbytes(t), n);
    assert_memory_equal(kiln_tensor_const_data(t), want, n);
}

/* ---- numpy's files ------------------------------------------------------- */

static void test_read_every_dtype(void **state)
{
    (void)state;
    kiln_tensor *t = read_ref("f32");
    tu_assert_shape(t, KILN_F32, 2, (int64_t[]){2, 3});
    const float f32[] = {1.5f, -2.25f, 3.0f, 0.1f, -0.0f, INFINITY};
    assert_bytes(t, f32, sizeof f32); /* bitwise: -0.0 keeps its sign */
    kiln_tensor_free(t);

    t = read_ref("f64");
    tu_assert_shape(t, KILN_F64, 1, (int64_t[]){4});
    const double f64[] = {0.1, -1e300, 2.5, 5e-324};
    assert_bytes(t, f64, sizeof f64);
    kiln_tensor_free(t);

    t = read_ref("f16");
    tu_assert_shape(t, KILN_F16, 2, (int64_t[]){2, 2});
    const float f16[] = {0.5f, -1.25f, 65504.0f, 0x1p-14f};
    const uint16_t *h = kiln_tensor_const_data(t);
    for (int i = 0; i < 4; i++) assert_true(ir_f16_to_f32(h[i]) == f16[i]);
    kiln_tensor_free(t);

    t = read_ref("i8");
    tu_assert_shape(t, KILN_I8, 1, (int64_t[]){5});
    const int8_t i8[] = {-128, -1, 0, 1, 127};
    assert_bytes(t, i8, sizeof i8);
    kiln_tensor_free(t);

    t = read_ref("u8");
    tu_assert_shape(t, KILN_U8, 2, (int64_t[]){2, 2});
    const uint8_t u8[] = {0, 1, 128, 255};
    assert_bytes(t, u8, sizeof u8);
    kiln_tensor_free(t);

    t = read_ref("i32");
    tu_assert_shape(t, KILN_I32, 1, (int64_t[]){3});
    const int32_t i32[] = {INT32_MIN, 0, INT32_MAX};
    assert_bytes(t, i32, sizeof i32);
    kiln_tensor_free(t);

    t = read_ref("i64");
    tu_assert_shape(t, KILN_I64, 1, (int64_t[]){3});
    const int64_t i64[] = {INT64_MIN, 1, INT64_MAX};
    assert_bytes(t, i64, sizeof i64);
    kiln_tensor_free(t);

    t = read_ref("bool");
    tu_assert_shape(t, KILN_BOOL, 2, (int64_t[]){2, 3});
    const uint8_t b[] = {1, 0, 1, 0, 0, 1};
    assert_bytes(t, b, sizeof b);
    kiln_tensor_free(t);

    /* '|V2' reads as bf16. */
    t = read_ref("bf16");
    tu_assert_shape(t, KILN_BF16, 1, (int64_t[]){4});
    const float bf[] = {1.0f, -2.0f, 0.5f, 3.140625f};
    h = kiln_tensor_const_data(t);
    for (int i = 0; i < 4; i++) assert_true(ir_bf16_to_f32(h[i]) == bf[i]);
    kiln_tensor_free(t);
}

static void test_read_big_endian(void **state)
{
    (void)state;
    kiln_tensor *t = read_ref("be_f4");
    tu_assert_shape(t, KILN_F32, 2, (int64_t[]){2, 2});
    const float f[] = {1.0f, -2.5f, 3.25f, 1e-3f};
    assert_bytes(t, f, sizeof f);
    kiln_tensor_free(t);

    t = read_ref("be_i8");
    tu_assert_shape(t, KILN_I64, 1, (int64_t[]){3});
    const int64_t i[] = {1, -2, 0x0102030405060708};
    assert_bytes(t, i, sizeof i);
    kiln_tensor_free(t);
}

static void test_read_fortran_order(void **state)
{
    (void)state;
    kiln_tensor *t = read_ref("fortran_i4");
    tu_assert_shape(t, KILN_I32, 3, (int64_t[]){2, 3, 4});
    const int32_t *p = kiln_tensor_const_data(t);
    for (int k = 0; k < 24; k++) assert_int_equal(p[k], k); /* arange(24).reshape(2, 3, 4) */
    kiln_tensor_free(t);

    t = read_ref("fortran_f8");
    tu_assert_shape(t, KILN_F64, 2, (int64_t[]){2, 3});
    const double f[] = {1, 2, 3, 4, 5, 6};
    assert_bytes(t, f, sizeof f);
    kiln_tensor_free(t);
}

static void test_read_scalar_empty_rank8_v2(void **state)
{
    (void)state;
    kiln_tensor *t = read_ref("scalar");
    tu_assert_shape(t, KILN_F64, 0, NULL);
    assert_true(*(const double *)kiln_tensor_const_data(t) == 3.5);
    kiln_tensor_free(t);

    t = read_ref("empty");
    tu_assert_shape(t, KILN_F32, 2, (int64_t[]){0, 3});
    assert_int_equal(kiln_tensor_size(t), 0);
    kiln_tensor_free(t);

    t = read_ref("rank8");
    tu_assert_shape(t, KILN_I8, 8, (int64_t[]){1, 1, 1, 1, 1, 1, 1, 2});
    const int8_t i8[] = {5, -6};
    assert_bytes(t, i8, sizeof i8);
    kiln_tensor_free(t);

    t = read_ref("v2");
    tu_assert_shape(t, KILN_I64, 2, (int64_t[]){2, 2});
    const int64_t i64[] = {1, 2, 3, 4};
    assert_bytes(t, i64, sizeof i64);
    kiln_tensor_free(t);
}

/* ---- Writing ------------------------------------------------------------- */

/* kiln writes exactly the bytes numpy wrote, for every C-order
 * little-endian reference file. */
static void test_write_matches_numpy_bytes(void **state)
{
    (void)state;
    const char *names[] = {"f32", "f64",  "f16",  "i8",     "u8",    "i32",
                           "i64", "bool", "bf16", "scalar", "empty", "rank8"};
    char out[32];
    tmp_file(out);
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        char ref[512];
        data_path(names[k], ref, sizeof ref);
        kiln_tensor *t = read_ok(ref);
        write_ok(t, out);
        kiln_tensor_free(t);
        assert_same_file(ref, out);
    }

    /* The same from tensors built from the literals. */
    kiln_tensor *t =
        tu_f32(2, (int64_t[]){2, 3}, (float[]){1.5f, -2.25f, 3.0f, 0.1f, -0.0f, INFINITY});
    write_ok(t, out);
    kiln_tensor_free(t);
    char ref[512];
    data_path("f32", ref, sizeof ref);
    assert_same_file(ref, out);

    uint16_t bits[4];
    const float bf[] = {1.0f, -2.0f, 0.5f, 3.140625f};
    for (int i = 0; i < 4; i++) bits[i] = ir_f32_to_bf16(bf[i]);
    t = kiln_tensor_from_data(KILN_BF16, 1, (int64_t[]){4}, bits);
    write_ok(t, out);
    kiln_tensor_free(t);
    data_path("bf16", ref, sizeof ref);
    assert_same_file(ref, out);

    double s = 3.5;
    t = kiln_tensor_from_data(KILN_F64, 0, NULL, &s);
    write_ok(t, out);
    kiln_tensor_free(t);
    data_path("scalar", ref, sizeof ref);
    assert_same_file(ref, out);
    unlink(out);
}

/* Big-endian and Fortran-order files are rewritten little-endian, C order,
 * format 1.0. */
static void test_write_normalizes(void **state)
{
    (void)state;
    char out[32];
    tmp_file(out);
    kiln_tensor *t = read_ref("fortran_i4");
    write_ok(t, out);
    kiln_tensor_free(t);
    size_t n;
    unsigned char *p = slurp(out, &n);
    assert_int_equal(n, 128 + 24 * 4);
    assert_memory_equal(p, "\x93NUMPY\x01\x00\x76\x00", 10);
    const char *dict = "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3, 4), }";
    assert_memory_equal(p + 10, dict, strlen(dict));
    assert_int_equal(p[127], '\n');
    for (int k = 0; k < 24; k++) {
        const unsigned char *e = p + 128 + 4 * k;
        assert_int_equal(e[0] | e[1] << 8 | e[2] << 16 | e[3] << 24, k);
    }
    free(p);

    t = read_ref("be_i8");
    write_ok(t, out);
    kiln_tensor_free(t);
    p = slurp(out, &n);
    assert_int_equal(n, 128 + 24);
    assert_memory_equal(p + 128 + 16, "\x08\x07\x06\x05\x04\x03\x02\x01", 8);
    free(p);

    t = read_ref("v2");
    write_ok(t, out);
    kiln_tensor_free(t);
    p = slurp(out, &n);
    assert_int_equal(p[6], 1);
    free(p);
    unlink(out);
}

static void test_round_trip(void **state)
{
    (void)state;
    const kiln_dtype all[] = {KILN_F32, KILN_F64, KILN_F16, KILN_BF16, KILN_I8,  KILN_U8, KILN_I32,
                              KILN_I64, KILN_BOOL, KILN_I16, KILN_U16,  KILN_U32, KILN_U64};
    static const struct {
        int rank;
        int64_t dims[8];
    } shapes[] = {{0, {0}},
                  {1, {7}},
                  {3, {2, 3, 4}},
                  {2, {5, 0}},
                  {2, {0, 1000000000000}},
                  {8, {1, 2, 1, 2, 1, 2, 1, 2}},
                  {2, {12345, 3}}};
    char out[32];
    tmp_file(out);
    for (size_t d = 0; d < sizeof all / sizeof all[0]; d++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            kiln_tensor *t = tu_random(all[d], shapes[s].rank, shapes[s].dims, -100, 100,
                                       (uint64_t)(d * 31 + s));
            assert_non_null(t);
            write_ok(t, out);
            kiln_tensor *u = read_ok(out);
            tu_assert_shape(u, all[d], shapes[s].rank, shapes[s].dims);
            assert_bytes(u, kiln_tensor_const_data(t), kiln_tensor_nbytes(t));
            kiln_tensor_free(t);
            kiln_tensor_free(u);
            /* numpy's alignment: the preamble is a multiple of 64 bytes */
            struct stat sb;
            assert_int_equal(stat(out, &sb), 0);
            size_t nbytes = (size_t)sb.st_size;
            assert_int_equal(nbytes % 64, (kiln_dtype_size(all[d]) *
                                           (size_t)ir_shape_numel(shapes[s].rank, shapes[s].dims)) %
                                              64);
        }
    unlink(out);
}

/* Writing replaces the file in one step and leaves no temporary behind. */
static void test_write_atomic_replace(void **state)
{
    (void)state;
    char out[32];
    tmp_file(out);
    kiln_tensor *a = tu_i64(1, (int64_t[]){2}, (int64_t[]){1, 2});
    kiln_tensor *b = tu_i32(2, (int64_t[]){1, 3}, (int32_t[]){7, 8, 9});
    write_ok(a, out);
    write_ok(b, out);
    kiln_tensor *r = read_ok(out);
    tu_assert_shape(r, KILN_I32, 2, (int64_t[]){1, 3});
    assert_bytes(r, kiln_tensor_const_data(b), 12);
    char tmp[96];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", out, (long)getpid());
    assert_int_not_equal(access(tmp, F_OK), 0);
    kiln_tensor_free(a);
    kiln_tensor_free(b);
    kiln_tensor_free(r);
    unlink(out);
}

static void test_write_errors(void **state)
{
    (void)state;
    kiln_status *st = kiln_status_new();
    kiln_tensor *t = tu_f32(1, (int64_t[]){1}, (float[]){1});
    const char *bad = "/tmp/kiln_npy_no_such_dir_4d1f/x.npy";
    assert_int_equal(kiln_tensor_write_npy(t, bad, st), KILN_ERR_IO);
    assert_int_equal(kiln_status_code(st), KILN_ERR_IO);
    assert_non_null(strstr(kiln_status_message(st), bad));
    assert_int_equal(kiln_tensor_write_npy(NULL, "/tmp/x.npy", st), KILN_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(kiln_status_message(st), "/tmp/x.npy"));
    assert_int_equal(kiln_tensor_write_npy(t, NULL, st), KILN_ERR_INVALID_ARGUMENT);
    assert_int_equal(kiln_tensor_write_npy(t, bad, NULL), KILN_ERR_IO); /* NULL status is fine */
    kiln_tensor_free(t);
    /* numpy has no float8/float4/int4/int2: refused, naming the dtype */
    t = kiln_tensor_new(KILN_F8E4M3FN, 1, (int64_t[]){2});
    assert_int_equal(kiln_tensor_write_npy(t, "/tmp/kiln_npy_f8.npy", st), KILN_ERR_UNIMPLEMENTED);
    assert_non_null(strstr(kiln_status_message(st), "f8e4m3fn"));
    assert_int_equal(access("/tmp/kiln_npy_f8.npy", F_OK), -1);
    kiln_tensor_free(t);
    kiln_status_free(st);
}

/* numpy reads kiln's files (when /usr/bin/python3 with numpy is there). */
static void test_numpy_reads_kiln(void **state)
{
    (void)state;
    if (access("/usr/bin/python3", X_OK) != 0 ||
        system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") != 0) {
        skip();
        return;
    }
    char a[32], b[32], c[32];
    tmp_file(a);
    tmp_file(b);
    tmp_file(c);
    kiln_tensor *t = tu_f32(2, (int64_t[]){2, 3}, (float[]){1.5f, -2.25f, 3, 4, 5, 6});
    write_ok(t, a);
    kiln_tensor_free(t);
    t = tu_bool(1, (int64_t[]){3}, (uint8_t[]){1, 0, 1});
    write_ok(t, b);
    kiln_tensor_free(t);
    uint16_t bits[2] = {0x3f80, 0xc000}; /* bf16 1.0, -2.0 */
    t = kiln_tensor_from_data(KILN_BF16, 1, (int64_t[]){2}, bits);
    write_ok(t, c);
    kiln_tensor_free(t);
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c \"import sys, numpy as np\n"
             "a, b, c = (np.load(p) for p in sys.argv[1:])\n"
             "assert a.dtype == np.float32 and a.tolist() == [[1.5, -2.25, 3], [4, 5, 6]], a\n"
             "assert b.dtype == np.bool_ and b.tolist() == [True, False, True], b\n"
             "assert c.dtype == np.dtype('V2') and c.shape == (2,)\n"
             "assert c.tobytes() == bytes([0x80, 0x3f, 0x00, 0xc0]), c.tobytes()\n"
             "\" %s %s %s",
             a, b, c);
    assert_int_equal(system(cmd), 0);
    unlink(a);
    unlink(b);
    unlink(c);
}

/* ---- Accepted variations --------------------------------------------------- */

/* A .npy image: magic, version major.0, the header length (2 bytes for 1.0,
 * 4 otherwise), the header text exactly as given, then the data. */
static size_t make_npy(unsigned char *buf, int major, const char *header, const void *data,
                       size_t ndata)
{
    size_t hl = strlen(header), n = 0;
    memcpy(buf, "\x93NUMPY", 6);
    n = 6;
    buf[n++] = (unsigned char)major;
    buf[n++] = 0;
    buf[n++] = (unsigned char)hl;
    buf[n++] = (unsigned char)(hl >> 8);
    if (major != 1) {
        buf[n++] = (unsigned char)(hl >> 16);
        buf[n++] = (unsigned char)(hl >> 24);
    }
    memcpy(buf + n, header, hl);
    n += hl;
    if (ndata) memcpy(buf + n, data, ndata);
    return n + ndata;
}

static kiln_tensor *read_bytes(const void *p, size_t n, kiln_status *st, char *path)
{
    tmp_file(path);
    put_file(path, p, n);
    kiln_tensor *t = kiln_tensor_read_npy(path, st);
    unlink(path);
    return t;
}

static void test_read_variations(void **state)
{
    (void)state;
    unsigned char buf[1024];
    char path[32];
    const float f[2] = {1.0f, 2.0f};
    /* Double quotes, another key order, no trailing comma, no padding,
     * Python 2 'L' dims, a descr without a byte order, format 3.0. */
    const char *headers[] = {
        "{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (2,)}",
        "{'shape': (2L,), 'fortran_order': False, 'descr': '<f4'}\n",
        "{'descr':'f4','fortran_order':False,'shape':(2 , ) , }   \n",
        "{'descr': '=f4', 'fortran_order': True, 'shape': (2,), }",
        "  {'descr': '<f4', 'fortran_order': False, 'shape': (1, 2,), }\t\r\n",
    };
    for (int major = 1; major <= 3; major++)
        for (size_t k = 0; k < sizeof headers / sizeof headers[0]; k++) {
            size_t n = make_npy(buf, major, headers[k], f, sizeof f);
            kiln_status *st = kiln_status_new();
            kiln_tensor *t = read_bytes(buf, n, st, path);
            if (!t) print_error("%s: %s\n", headers[k], kiln_status_message(st));
            assert_non_null(t);
            assert_int_equal(kiln_tensor_dtype(t), KILN_F32);
            assert_int_equal(kiln_tensor_size(t), 2);
            assert_bytes(t, f, sizeof f);
            kiln_tensor_free(t);
            kiln_status_free(st);
        }

    /* Any nonzero bool byte is true (kiln stores it as 1). */
    size_t n = make_npy(buf, 1, "{'descr': '<b1', 'fortran_order': False, 'shape': (3,), }",
                        "\x00\x02\xff", 3);
    kiln_tensor *t = read_bytes(buf, n, NULL, path);
    assert_non_null(t);
    assert_bytes(t, "\x00\x01\x01", 3);
    kiln_tensor_free(t);

    /* '<V2' is bf16 too. */
    n = make_npy(buf, 1, "{'descr': '<V2', 'fortran_order': False, 'shape': (), }", "\x80\x3f", 2);
    t = read_bytes(buf, n, NULL, path);
    assert_non_null(t);
    tu_assert_shape(t, KILN_BF16, 0, NULL);
    assert_true(ir_bf16_to_f32(*(const uint16_t *)kiln_tensor_const_data(t)) == 1.0f);
    kiln_tensor_free(t);

    /* Fortran order with a zero-size dim and big-endian Fortran order. */
    n = make_npy(buf, 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (0, 3), }", NULL, 0);
    t = read_bytes(buf, n, NULL, path);
    assert_non_null(t);
    tu_assert_shape(t, KILN_F32, 2, (int64_t[]){0, 3});
    kiln_tensor_free(t);
    /* [[1, 2, 3], [4, 5, 6]] column by column, big-endian */
    const unsigned char be4[] = {0, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0, 2,
                                 0, 0, 0, 5, 0, 0, 0, 3, 0, 0, 0, 6};
    n = make_npy(buf, 1, "{'descr': '>i4', 'fortran_order': True, 'shape': (2, 3), }", be4,
                 sizeof be4);
    t = read_bytes(buf, n, NULL, path);
    assert_non_null(t);
    const int32_t want[] = {1, 2, 3, 4, 5, 6};
    assert_bytes(t, want, sizeof want);
    kiln_tensor_free(t);
}

/* i16, u16, u32, u64: little- and big-endian, values at the edges of each. */
static void test_read_wide_ints(void **state)
{
    (void)state;
    unsigned char buf[512];
    char path[32];
    const unsigned char u8le[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80};
    size_t n = make_npy(buf, 1, "{'descr': '<u8', 'fortran_order': False, 'shape': (2,), }", u8le,
                        sizeof u8le);
    kiln_tensor *t = read_bytes(buf, n, NULL, path);
    assert_non_null(t);
    tu_assert_shape(t, KILN_U64, 1, (int64_t[]){2});
    const uint64_t want64[] = {0xffffffffffffffffu, 0x8000000000000000u};
    assert_bytes(t, want64, sizeof want64);
    kiln_tensor_free(t);
    const unsigned char u4be[] = {0xb2, 0xd0, 0x5e, 0x00, 0x00, 0x00, 0x00, 0x07};
    n = make_npy(buf, 1, "{'descr': '>u4', 'fortran_order': False, 'shape': (2,), }", u4be,
                 sizeof u4be);
    t = read_bytes(buf, n, NULL, path);
    assert_non_null(t);
    tu_assert_shape(t, KILN_U32, 1, (int64_t[]){2});
    const uint32_t want32[] = {3000000000u, 7};
    assert_bytes(t, want32, sizeof want32);
    kiln_tensor_free(t);
    const unsigned char i2le[] = {0x00, 0x80, 0xff, 0x7f, 0xfe, 0xff};
    n = make_npy(buf, 1, "{'descr': '<i2', 'fortran_order': False, 'shape': (3,), }", i2le,
                 sizeof i2le);
    t = read_bytes(buf, n, NULL, path);
    assert_non_null(t);
    tu_assert_shape(t, KILN_I16, 1, (int64_t[]){3});
    const int16_t want16[] = {-32768, 32767, -2};
    assert_bytes(t, want16, sizeof want16);
    kiln_tensor_free(t);
    const unsigned char u2be[] = {0xff, 0xfe};
    n = make_npy(buf, 1, "{'descr': '>u2', 'fortran_order': False, 'shape': (), }", u2be,
                 sizeof u2be);
    t = read_bytes(buf, n, NULL, path);
    assert_non_null(t);
    tu_assert_shape(t, KILN_U16, 0, NULL);
    const uint16_t wantu16[] = {65534};
    assert_bytes(t, wantu16, sizeof wantu16);
    kiln_tensor_free(t);
}

/* ---- Malformed and hostile files ------------------------------------------- */

/* Reading the bytes fails with code and a message naming the file and
 * containing substr; nothing is returned and nothing leaks. */
static void expect_error(const void *p, size_t n, int code, const char *substr)
{
    char path[32];
    kiln_status *st = kiln_status_new();
    kiln_tensor *t = read_bytes(p, n, st, path);
    const char *msg = kiln_status_message(st);
    if (t || kiln_status_code(st) != code || !strstr(msg, path) || !strstr(msg, substr))
        print_error("want code %d and \"%s\", got code %d: %s\n", code, substr,
                    kiln_status_code(st), msg);
    assert_null(t);
    assert_int_equal(kiln_status_code(st), code);
    assert_non_null(strstr(msg, path));
    assert_non_null(strstr(msg, substr));
    kiln_status_free(st);
}

static void expect_header_error(const char *header, size_t ndata, const char *substr)
{
    unsigned char buf[1024];
    unsigned char zeros[64] = {0};
    assert_true(ndata <= sizeof zeros);
    size_t n = make_npy(buf, 1, header, zeros, ndata);
    expect_error(buf, n, KILN_ERR_INVALID_ARGUMENT, substr);
}

static void test_bad_envelope(void **state)
{
    (void)state;
    expect_error("", 0, KILN_ERR_INVALID_ARGUMENT, "truncated");
    expect_error("\x93NUM", 4, KILN_ERR_INVALID_ARGUMENT, "shorter than the magic");
    expect_error("PK\x03\x04 not numpy at all", 22, KILN_ERR_INVALID_ARGUMENT, "bad magic");
    expect_error("\x93NUMPZ\x01\x00\x00\x00", 10, KILN_ERR_INVALID_ARGUMENT, "bad magic");
    expect_error("\x93NUMPY\x04\x00\x02\x00{}", 12, KILN_ERR_INVALID_ARGUMENT,
                 "unsupported .npy format version 4.0");
    expect_error("\x93NUMPY\x01\x01\x02\x00{}", 12, KILN_ERR_INVALID_ARGUMENT, "version 1.1");
    expect_error("\x93NUMPY\x00\x00\x02\x00{}", 12, KILN_ERR_INVALID_ARGUMENT, "version 0.0");
    expect_error("\x93NUMPY\x01", 7, KILN_ERR_INVALID_ARGUMENT, "no format version");
    expect_error("\x93NUMPY\x01\x00", 8, KILN_ERR_INVALID_ARGUMENT, "no header length");
    expect_error("\x93NUMPY\x02\x00\x10\x00", 10, KILN_ERR_INVALID_ARGUMENT, "no header length");
    expect_error("\x93NUMPY\x01\x00\xff\xff{}", 12, KILN_ERR_INVALID_ARGUMENT,
                 "header length 65535 goes beyond the end of the file (12 bytes)");
    /* A 4 GiB header length must not allocate 4 GiB. */
    expect_error("\x93NUMPY\x02\x00\xff\xff\xff\xff{}", 14, KILN_ERR_INVALID_ARGUMENT,
                 "header length 4294967295 goes beyond");
}

static void test_bad_header(void **state)
{
    (void)state;
    expect_header_error("{'descr': '<f4', 'fortran_order': False, }", 0, "no 'shape' key");
    expect_header_error("{'fortran_order': False, 'shape': (), }", 4, "no 'descr' key");
    expect_header_error("{'descr': '<f4', 'shape': (), }", 4, "no 'fortran_order' key");
    expect_header_error("{}", 0, "no 'descr' key");
    expect_header_error("", 0, "the header is not a dict");
    expect_header_error("hello", 0, "the header is not a dict");
    expect_header_error("{'descr': '<f4', 'fortran_order': False, 'shape': (), } x", 4,
                        "unexpected text after the dict");
    expect_header_error("{'descr': '<f4', 'fortran_order': False, 'shape': (), 'foo': 1}", 4,
                        "unexpected key 'foo'");
    expect_header_error("{'descr': '<f4', 'shape': (), 'fortran_order': False, 'shape': (), }", 4,
                        "duplicate key 'shape'");
    expect_header_error("{'descr': '<f4', 'descr': '<f4', }", 4, "duplicate key 'descr'");
    expect_header_error("{'fortran_order': True, 'fortran_order': True, }", 4,
                        "duplicate key 'fortran_order'");
    expect_header_error("{'descr': '<f4', 'fortran_order': Maybe, 'shape': (), }", 4,
                        "'fortran_order' is neither True nor False");
    expect_header_error("{'descr': '<f4', 'fortran_order': Falsey, 'shape': (), }", 4,
                        "'fortran_order' is neither True nor False");
    expect_header_error("{'descr': '<f4', 'fortran_order': 0, 'shape': (), }", 4,
                        "'fortran_order' is neither True nor False");
    expect_header_error("{'descr", 0, "unterminated string");
    expect_header_error("{descr: '<f4'}", 0, "a key is not a string");
    expect_header_error("{'descr': <f4}", 0, "'descr' is not a string");
    expect_header_error("{'de\\scr': '<f4'}", 0, "escape sequences");
    expect_header_error("{'descr' '<f4'}", 0, "expected ':' after a key");
    expect_header_error("{'descr': '<f4' 'shape': ()}", 0, "expected ',' or '}' after a value");
    expect_header_error("{'descr': 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'}", 0,
                        "string too long");
    expect_header_error("{'descr': '<f\x01'}", 0, "non-printable");
    /* A NUL inside the header. */
    unsigned char buf[256];
    size_t n =
        make_npy(buf, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (), }", "\0\0\0\0", 4);
    buf[12] = 0;
    expect_error(buf, n, KILN_ERR_INVALID_ARGUMENT, "NUL byte");
}

static void test_bad_descr(void **state)
{
    (void)state;
    const char *bad[] = {"<c8", "<u3", "<i16", "<U10", "|O",  "f4x",
                         "",    "<",   "<f16", "<M8",  "|S3", "<f99999999999"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        char h[128], want[64];
        snprintf(h, sizeof h, "{'descr': '%s', 'fortran_order': False, 'shape': (0,), }", bad[k]);
        snprintf(want, sizeof want, "unsupported dtype '%s'", bad[k]);
        expect_header_error(h, 0, want);
    }
    expect_header_error("{'descr': '>V2', 'fortran_order': False, 'shape': (1,), }", 2,
                        "'>V2' is not read as bf16");
    expect_header_error("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", 4,
                        "structured dtypes");
}

static void test_bad_shape(void **state)
{
    (void)state;
    expect_header_error("{'descr': '<f4', 'fortran_order': False, 'shape': 'abc', }", 0,
                        "'shape' is not a tuple");
    expect_header_error("{'descr': '<f4', 'fortran_order': False, 'shape': [2], }", 0,
                        "'shape' is not a tuple");
    expect_header_error("{'descr': '<f4', 'fortran_order': False, 'shape': (2, x), }", 0,
                        "'shape' is not a tuple of integers");
    expect_header_error("{'descr': '<f4', 'fortran_order': False, 'shape': (2.0,), }", 0,
                        "expected ',' or ')' in 'shape'");
    expect_header_error("{'descr': '<f4', 'fortran_order': False, 'shape': (2 3), }", 0,
                        "expected ',' or ')' in 'shape'");
    expect_header_error("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3", 0,
                        "expected ',' or ')' in 'shape'");
    expect_header_error("{'descr': '<f4', 'fortran_order': False, 'shape': (2, ", 0,
                        "'shape' is not a tuple of integers");
    expect_header_error("{'descr': '<f4', 'fortran_order': False, 'shape': (3), }", 12,
                        "a 1-d shape is written (n,)");
    expect_header_error("{'descr': '<f4', 'fortran_order': False, 'shape': (,), }", 0,
                        "'shape' is not a tuple of integers");
    expect_header_error("{'descr': '<f4', 'fortran_order': False, 'shape': (-1, 3), }", 0,
                        "negative dimension");
    expect_header_error("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 1, 1, 1, 1, "
                        "1, 1, 1), }",
                        4, "more than 8 dimensions");
    expect_header_error("{'descr': '<f4', 'fortran_order': False, 'shape': "
                        "(99999999999999999999,), }",
                        0, "dimension in 'shape' too large");
    /* Dims whose byte size overflows, also when another dim is zero. */
    expect_header_error("{'descr': '<f4', 'fortran_order': False, 'shape': "
                        "(4611686018427387904, 4), }",
                        0, "is too large (its byte size overflows)");
    expect_header_error("{'descr': '<i1', 'fortran_order': False, 'shape': "
                        "(4294967296, 4294967296, 0), }",
                        0, "is too large");
    /* Data shorter or longer than the shape needs. */
    expect_header_error("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 20,
                        "shape (2, 3) of '<f4' needs 24 bytes of data but the file holds 20");
    expect_header_error("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 12,
                        "trailing data: 4 bytes after the 8 bytes");
    expect_header_error("{'descr': '<f8', 'fortran_order': False, 'shape': (), }", 0,
                        "needs 8 bytes");
}

/* A header claiming a huge array in a small file is refused before
 * anything is allocated for the data. */
static void test_no_allocation_beyond_file(void **state)
{
    (void)state;
    unsigned char buf[256];
    size_t n = make_npy(
        buf, 1, "{'descr': '<f8', 'fortran_order': True, 'shape': (1000000000, 1000000000), }",
        "\0\0\0\0\0\0\0\0", 8);
    char path[32];
    tmp_file(path);
    put_file(path, buf, n);
    kiln_status *st = kiln_status_new();
    /* Two allocations: the header text and the status message. */
    ir_alloc_fail_after(2);
    kiln_tensor *t = kiln_tensor_read_npy(path, st);
    bool failed = ir_alloc_failed();
    ir_alloc_fail_after(-1);
    assert_null(t);
    assert_false(failed);
    assert_int_equal(kiln_status_code(st), KILN_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(kiln_status_message(st), "needs 8000000000000000000 bytes"));
    kiln_status_free(st);
    unlink(path);
}

static void test_open_errors(void **state)
{
    (void)state;
    kiln_status *st = kiln_status_new();
    const char *missing = "/tmp/kiln_npy_does_not_exist_93ac.npy";
    assert_null(kiln_tensor_read_npy(missing, st));
    assert_int_equal(kiln_status_code(st), KILN_ERR_NOT_FOUND);
    assert_non_null(strstr(kiln_status_message(st), missing));
    assert_null(kiln_tensor_read_npy("/tmp", st));
    assert_int_equal(kiln_status_code(st), KILN_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(kiln_status_message(st), "/tmp: not a regular file"));
    assert_null(kiln_tensor_read_npy(NULL, st));
    assert_int_equal(kiln_status_code(st), KILN_ERR_INVALID_ARGUMENT);
    assert_null(kiln_tensor_read_npy(missing, NULL)); /* NULL status is fine */
    /* A successful read resets a reused status. */
    kiln_tensor *t = kiln_tensor_read_npy(missing, st);
    assert_null(t);
    char ref[512];
    data_path("f32", ref, sizeof ref);
    t = kiln_tensor_read_npy(ref, st);
    assert_non_null(t);
    assert_int_equal(kiln_status_code(st), KILN_OK);
    kiln_tensor_free(t);
    kiln_status_free(st);
}

/* ---- Allocation-failure sweeps ------------------------------------------- */

static void sweep_read(const char *path)
{
    for (long n = 0;; n++) {
        assert_true(n < 100);
        kiln_status *st = kiln_status_new();
        assert_non_null(st);
        ir_alloc_fail_after(n);
        kiln_tensor *t = kiln_tensor_read_npy(path, st);
        ir_alloc_fail_after(-1);
        if (t) {
            assert_int_equal(kiln_status_code(st), KILN_OK);
            assert_true(n > 0);
            kiln_tensor_free(t);
            kiln_status_free(st);
            assert_int_equal(ir_alloc_live_blocks(), 0);
            return;
        }
        assert_int_equal(kiln_status_code(st), KILN_ERR_OUT_OF_MEMORY);
        kiln_status_free(st);
        assert_int_equal(ir_alloc_live_blocks(), 0);
    }
}

static void test_read_alloc_failures(void **state)
{
    (void)state;
    const char *names[] = {"f32", "fortran_i4", "be_i8", "bool", "v2"};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        char path[512];
        data_path(names[k], path, sizeof path);
        sweep_read(path);
    }
}

static void test_write_alloc_failures(void **state)
{
    (void)state;
    char out[32];
    tmp_file(out);
    kiln_tensor *t = read_ref("f32");
    long base = ir_alloc_live_blocks();
    for (long n = 0;; n++) {
        assert_true(n < 100);
        kiln_status *st = kiln_status_new();
        assert_non_null(st);
        ir_alloc_fail_after(n);
        int code = kiln_tensor_write_npy(t, out, st);
        ir_alloc_fail_after(-1);
        assert_int_equal(kiln_status_code(st), code);
        kiln_status_free(st);
        assert_int_equal(ir_alloc_live_blocks(), base);
        char tmp[96];
        snprintf(tmp, sizeof tmp, "%s.tmp.%ld", out, (long)getpid());
        assert_int_not_equal(access(tmp, F_OK), 0);
        if (code == KILN_OK) break;
        assert_int_equal(code, KILN_ERR_OUT_OF_MEMORY);
    }
    kiln_tensor_free(t);
    assert_int_equal(ir_alloc_live_blocks(), 0);
    char ref[512];
    data_path("f32", ref, sizeof ref);
    assert_same_file(ref, out);
    unlink(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_read_every_dtype),
        TU_TEST(test_read_wide_ints),
        TU_TEST(test_read_big_endian),
        TU_TEST(test_read_fortran_order),
        TU_TEST(test_read_scalar_empty_rank8_v2),
        TU_TEST(test_write_matches_numpy_bytes),
        TU_TEST(test_write_normalizes),
        TU_TEST(test_round_trip),
        TU_TEST(test_write_atomic_replace),
        TU_TEST(test_write_errors),
        TU_TEST(test_numpy_reads_kiln),
        TU_TEST(test_read_variations),
        TU_TEST(test_bad_envelope),
        TU_TEST(test_bad_header),
        TU_TEST(test_bad_descr),
        TU_TEST(test_bad_shape),
        TU_TEST(test_no_allocation_beyond_file),
        TU_TEST(test_open_errors),
        TU_TEST(test_read_alloc_failures),
        TU_TEST(test_write_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
