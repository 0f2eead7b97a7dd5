/* test_diff_storage.c -- the storage dtypes (float8, float4, int4, int2)
 * compiled by the CPU backend against the reference kernels: Cast to and
 * from every wider dtype (with and without saturate) over values that hit
 * rounding ties, subnormals, overflow, inf and NaN; data movement
 * (Transpose, Reshape, Concat) by element size; and the type error other ops
 * give. Storage outputs must agree byte for byte, f32 outputs bit for bit. */
#include "common/testutil.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ir.h"

static const kiln_dtype STORAGE[] = {KILN_F8E4M3FN, KILN_F8E4M3FNUZ, KILN_F8E5M2, KILN_F8E5M2FNUZ,
                                     KILN_F8E8M0,   KILN_F4E2M1,     KILN_I4,     KILN_U4,
                                     KILN_I2,       KILN_U2};
#define NSTORAGE (int)(sizeof STORAGE / sizeof STORAGE[0])

/* Asserts the reference and compiled results of outs are identical bytes
 * (NaNs of f32/f16 outputs: any NaN). */
static void diff_exact(kiln_graph *g, int nouts, const kiln_value *outs, int nfeeds,
                       const kiln_value *phs, kiln_tensor *const *feeds, const char *what)
{
    kiln_tensor *ref[64] = {0}, *cmp[64] = {0};
    assert_true(nouts <= 64);
    char msg[512];
    if (tu_run_backend(g, KILN_BACKEND_REFERENCE, nouts, outs, ref, nfeeds, phs, feeds, msg,
                       sizeof msg))
        fail_msg("%s: reference run: %s", what, msg);
    if (tu_run_backend(g, KILN_BACKEND_DEFAULT, nouts, outs, cmp, nfeeds, phs, feeds, msg,
                       sizeof msg))
        fail_msg("%s: compiled run: %s", what, msg);
    for (int i = 0; i < nouts; i++) {
        kiln_dtype dt = kiln_tensor_dtype(ref[i]);
        assert_int_equal(dt, kiln_tensor_dtype(cmp[i]));
        size_t n = kiln_tensor_size(ref[i]), esz = kiln_dtype_size(dt);
        const uint8_t *r = kiln_tensor_const_data(ref[i]), *c = kiln_tensor_const_data(cmp[i]);
        for (size_t k = 0; k < n; k++) {
            if (!memcmp(r + k * esz, c + k * esz, esz)) continue;
            double a = ir_load_f64(dt, r, k), b = ir_load_f64(dt, c, k);
            if ((dt == KILN_F32 || dt == KILN_F16 || dt == KILN_F64) && isnan(a) && isnan(b))
                continue;
            fail_msg("%s: output %d (%s) element %zu: compiled %.9g, reference %.9g", what, i,
                     kiln_dtype_name(dt), k, b, a);
        }
        kiln_tensor_free(ref[i]);
        kiln_tensor_free(cmp[i]);
    }
}

/* Values that exercise every format: ties, subnormals, the largest finite
 * values and just past them, infinities, NaN, signed zeros, and a sweep. */
static kiln_tensor *special_f32(int64_t *count)
{
    static const float fixed[] = {
        0.0f,     -0.0f,     1.0f,   -1.0f, 0.5f,    1.0625f,  1.1875f,    448,
        464,      470,       -480,   240,   248,     57344,    61440,      -65536,
        6,        5,         0.25f,  0.75f, 0x1p-9f, 0x1p-10f, 0x3p-10f,   0x1p-16f,
        0x1p-17f, 1e-7f,     -1e-7f, 1e6f,  -1e6f,   0x1p127f, 0x1.8p127f, 3.4e38f,
        INFINITY, -INFINITY, NAN,    7,     8,       -8,       -9,         15,
        16,       2.5f,      -2.5f,  3.5f,  1e20f,   -1e20f};
    const int nfixed = (int)(sizeof fixed / sizeof fixed[0]), nsweep = 600;
    int64_t n = nfixed + nsweep;
    kiln_tensor *t = kiln_tensor_new(KILN_F32, 1, &n);
    float *p = kiln_tensor_data(t);
    memcpy(p, fixed, sizeof fixed);
    for (int i = 0; i < nsweep; i++) /* signed values across 2^-12 .. 2^12 */
        p[nfixed + i] =
            (i & 1 ? -1.0f : 1.0f) * ldexpf(1.0f + (float)(i % 37) / 37.0f, i % 25 - 12);
    *count = n;
    return t;
}

static kiln_attrs *cast_to(kiln_dtype dt, int saturate)
{
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_dtype(a, "to", dt);
    if (saturate >= 0) kiln_attrs_int(a, "saturate", saturate);
    return a;
}

static kiln_value cast(kiln_graph *g, kiln_value x, kiln_dtype dt, int saturate)
{
    kiln_attrs *a = cast_to(dt, saturate);
    kiln_value y = kiln_op(g, "Cast", &x, 1, a);
    kiln_attrs_free(a);
    return y;
}

/* f32/f16/f64/i32 -> storage (stored) and back to f32 and to i8; one graph
 * per source, every storage dtype with and without saturate. */
static void test_cast_from_wide(void **state)
{
    (void)state;
    const kiln_dtype sources[] = {KILN_F32, KILN_F16, KILN_F64, KILN_I32};
    for (int s = 0; s < 4; s++) {
        int64_t n;
        kiln_tensor *f = special_f32(&n);
        kiln_graph *g = kiln_graph_new();
        kiln_value x = kiln_placeholder(g, "x", sources[s], 1, &n);
        kiln_value outs[3 * 2 * NSTORAGE];
        int no = 0;
        for (int d = 0; d < NSTORAGE; d++)
            for (int sat = -1; sat <= 0; sat++) {
                kiln_value y = cast(g, x, STORAGE[d], sat);
                outs[no++] = y;
                outs[no++] = cast(g, y, KILN_F32, -1);
                outs[no++] = cast(g, y, KILN_I8, -1);
            }
        if (kiln_graph_error(g)) fail_msg("%s", kiln_graph_error(g));
        kiln_tensor *feed = f;
        if (sources[s] != KILN_F32) { /* the same values, converted as Cast does */
            feed = kiln_tensor_new(sources[s], 1, &n);
            for (int64_t i = 0; i < n; i++) {
                double v = ir_load_f64(KILN_F32, kiln_tensor_data(f), (size_t)i);
                if (sources[s] == KILN_I32) v = isfinite(v) && fabs(v) < 1e9 ? v : 0;
                ir_store_f64(sources[s], kiln_tensor_data(feed), (size_t)i, v);
            }
        }
        char what[96];
        snprintf(what, sizeof what, "Cast from %s", kiln_dtype_name(sources[s]));
        diff_exact(g, no, outs, 1, &x, &feed, what);
        if (feed != f) kiln_tensor_free(feed);
        kiln_tensor_free(f);
        kiln_graph_free(g);
    }
}

/* Every byte of each storage dtype -> f32, f16, i32, u8, and to each other
 * storage dtype. */
static void test_cast_from_storage(void **state)
{
    (void)state;
    for (int s = 0; s < NSTORAGE; s++) {
        int64_t n = 256;
        kiln_tensor *t = kiln_tensor_new(STORAGE[s], 1, &n);
        uint8_t *p = kiln_tensor_data(t);
        for (int i = 0; i < 256; i++) /* valid codes only: int4 bytes are sign-extended */
            p[i] = ir_storage_from_f64(STORAGE[s], ir_storage_to_f32(STORAGE[s], (uint8_t)i), true);
        kiln_graph *g = kiln_graph_new();
        kiln_value x = kiln_placeholder(g, "x", STORAGE[s], 1, &n);
        kiln_value outs[4 + NSTORAGE] = {cast(g, x, KILN_F32, -1), cast(g, x, KILN_F16, -1),
                                         cast(g, x, KILN_I32, -1), cast(g, x, KILN_U8, -1)};
        for (int d = 0; d < NSTORAGE; d++) outs[4 + d] = cast(g, x, STORAGE[d], -1);
        char what[64];
        snprintf(what, sizeof what, "Cast from %s", kiln_dtype_name(STORAGE[s]));
        diff_exact(g, 4 + NSTORAGE, outs, 1, &x, &t, what);
        kiln_tensor_free(t);
        kiln_graph_free(g);
    }
}

/* Transpose, Reshape and Concat move storage elements as bytes. */
static void test_data_movement(void **state)
{
    (void)state;
    for (int s = 0; s < NSTORAGE; s++) {
        int64_t dims[3] = {3, 5, 7};
        kiln_tensor *t = kiln_tensor_new(STORAGE[s], 3, dims);
        uint8_t *p = kiln_tensor_data(t);
        for (int i = 0; i < 105; i++) p[i] = ir_storage_from_f64(STORAGE[s], (i % 11) - 5, true);
        kiln_graph *g = kiln_graph_new();
        kiln_value x = kiln_placeholder(g, "x", STORAGE[s], 3, dims);
        kiln_attrs *a = kiln_attrs_new();
        kiln_attrs_ints(a, "perm", (int64_t[]){2, 0, 1}, 3);
        kiln_value tr = kiln_op(g, "Transpose", &x, 1, a);
        kiln_attrs_free(a);
        a = kiln_attrs_new();
        kiln_attrs_ints(a, "shape", (int64_t[]){15, 7}, 2);
        kiln_value rs = kiln_op(g, "Reshape", &x, 1, a);
        kiln_attrs_free(a);
        a = kiln_attrs_new();
        kiln_attrs_int(a, "axis", 1);
        kiln_value two[2] = {x, x};
        kiln_value cc = kiln_op(g, "Concat", two, 2, a);
        kiln_attrs_free(a);
        if (kiln_graph_error(g))
            fail_msg("%s: %s", kiln_dtype_name(STORAGE[s]), kiln_graph_error(g));
        kiln_value outs[3] = {tr, rs, cc};
        diff_exact(g, 3, outs, 1, &x, &t, kiln_dtype_name(STORAGE[s]));
        kiln_tensor *r = tu_run(g, tr, 1, &x, &t);
        /* out[k][i][j] = x[i][j][k] */
        assert_int_equal(((uint8_t *)kiln_tensor_data(r))[1 * 15 + 2 * 5 + 3],
                         p[2 * 35 + 3 * 7 + 1]);
        kiln_tensor_free(r);
        kiln_tensor_free(t);
        kiln_graph_free(g);
    }
}

/* Arithmetic on a storage dtype is a type error naming the op and dtype. */
static void test_arithmetic_rejected(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    int64_t d = 4;
    kiln_value x = kiln_placeholder(g, "x", KILN_F8E4M3FN, 1, &d);
    kiln_value xs[2] = {x, x};
    kiln_op(g, "Add", xs, 2, NULL);
    tu_assert_graph_error(g, "Add", "f8e4m3fn", "Cast", NULL);
    kiln_graph_free(g);
    g = kiln_graph_new();
    x = kiln_placeholder(g, "x", KILN_I4, 1, &d);
    kiln_op(g, "Relu", &x, 1, NULL);
    tu_assert_graph_error(g, "Relu", "i4", NULL);
    kiln_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_cast_from_wide),
        TU_TEST(test_cast_from_storage),
        TU_TEST(test_data_movement),
        TU_TEST(test_arithmetic_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
