/* test_grid_sample.c -- the GridSample op (ir/ops/index.c, compiled by
 * codegen/lower_index.c and kk_grid_sample): PyTorch-computed cases
 * (expected_grid_sample.h, written by gen_grid_sample.py) for every mode,
 * padding mode and align_corners in 2-D and 3-D, small cases by hand,
 * inference errors, and compiled against reference. */
#include <string.h>

#include "common/testutil.h"
#include "ops/expected_grid_sample.h"

static kiln_value grid_sample(kiln_graph *g, kiln_value x, kiln_value grid, const char *mode,
                              const char *pad, int align)
{
    kiln_attrs *a = kiln_attrs_new();
    if (mode) kiln_attrs_string(a, "mode", mode);
    if (pad) kiln_attrs_string(a, "padding_mode", pad);
    kiln_attrs_int(a, "align_corners", align);
    kiln_value y = kiln_op(g, "GridSample", (kiln_value[]){x, grid}, 2, a);
    kiln_attrs_free(a);
    return y;
}

/* One PyTorch case with X of dtype dt and the grid of gdt. */
static void run_case(const gs_case *c, kiln_dtype dt, kiln_dtype gdt, double tol)
{
    kiln_graph *g = kiln_graph_new();
    kiln_value ph[2] = {kiln_placeholder(g, "x", dt, c->x.rank, c->x.dims),
                        kiln_placeholder(g, "grid", gdt, c->grid.rank, c->grid.dims)};
    kiln_tensor *feeds[2] = {tu_from_f64(dt, c->x.rank, c->x.dims, c->x.data),
                             tu_from_f64(gdt, c->grid.rank, c->grid.dims, c->grid.data)};
    kiln_value y = grid_sample(g, ph[0], ph[1], c->mode, c->padding_mode, c->align_corners);
    if (!kiln_value_ok(y)) fail_msg("%s/%s: %s", c->mode, c->padding_mode, kiln_graph_error(g));
    kiln_tensor *r = tu_run(g, y, 2, ph, feeds);
    tu_assert_shape(r, dt, c->y.rank, c->y.dims);
    size_t n = 1;
    for (int d = 0; d < c->y.rank; d++) n *= (size_t)c->y.dims[d];
    tu_assert_close(r, c->y.data, n, tol, tol);
    kiln_tensor_free(r);
    tu_diff(g, 1, &y, 2, ph, feeds, 1e-6, 1e-6);
    for (int i = 0; i < 2; i++) kiln_tensor_free(feeds[i]);
    kiln_graph_free(g);
}

static void test_torch_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof gs_cases / sizeof gs_cases[0]; i++) {
        run_case(&gs_cases[i], KILN_F64, KILN_F64, 1e-9);
        run_case(&gs_cases[i], KILN_F32, i % 2 ? KILN_F32 : KILN_F64, 1e-5);
    }
}

/* X = [[1, 2], [3, 4]] sampled at one point. */
static double sample_2x2(double gx, double gy, const char *mode, const char *pad, int align)
{
    kiln_graph *g = kiln_graph_new();
    kiln_tensor *xt = tu_f64(4, (int64_t[]){1, 1, 2, 2}, (double[]){1, 2, 3, 4});
    kiln_value x = kiln_constant(g, NULL, xt);
    kiln_tensor_free(xt);
    kiln_value p = kiln_placeholder(g, "grid", KILN_F64, 4, (int64_t[]){1, 1, 1, 2});
    kiln_tensor *f = tu_f64(4, (int64_t[]){1, 1, 1, 2}, (double[]){gx, gy});
    kiln_value y = grid_sample(g, x, p, mode, pad, align);
    assert_true(kiln_value_ok(y));
    kiln_tensor *r = tu_run(g, y, 1, &p, &f);
    double v = ((const double *)kiln_tensor_data(r))[0];
    kiln_tensor_free(r);
    kiln_tensor_free(f);
    kiln_graph_free(g);
    return v;
}

static void test_by_hand(void **state)
{
    (void)state;
    /* the centre averages all four; corners with align_corners are exact */
    assert_true(sample_2x2(0, 0, NULL, NULL, 0) == 2.5);
    assert_true(sample_2x2(-1, -1, "linear", "zeros", 1) == 1);
    assert_true(sample_2x2(1, 1, "linear", "zeros", 1) == 4);
    /* without align_corners -1 is the outer edge of pixel 0: a quarter of 1 */
    assert_true(sample_2x2(-1, -1, "linear", "zeros", 0) == 0.25);
    assert_true(sample_2x2(-1, -1, "linear", "border", 0) == 1);
    /* x = 0.75 rounds to column 1, y = 0.25 to row 0 */
    assert_true(sample_2x2(0.5, -0.5, "nearest", "zeros", 1) == 2);
    /* x = 0.5 exactly: rounds half to even (column 0) */
    assert_true(sample_2x2(0, -1, "nearest", "zeros", 1) == 1);
    /* reflection: x = -0.5 with align_corners mirrors to 0.5 */
    assert_true(sample_2x2(-2, -1, "linear", "reflection", 1) == 1.5);
    /* far outside reads 0, or the edge */
    assert_true(sample_2x2(40, 0, "cubic", "zeros", 0) == 0);
    assert_true(sample_2x2(1e300, -1e300, "linear", "border", 1) == 2);
}

/* Builds GridSample on placeholders of the given types in a fresh graph
 * and asserts it fails with a message holding both substrings. */
static void expect_error(kiln_dtype xdt, int xr, const int64_t *xd, kiln_dtype gdt, int gr,
                         const int64_t *gd, const char *mode, const char *pad, const char *a,
                         const char *b)
{
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", xdt, xr, xd);
    kiln_value grid = kiln_placeholder(g, "g", gdt, gr, gd);
    assert_false(kiln_value_ok(grid_sample(g, x, grid, mode, pad, 0)));
    tu_assert_graph_error(g, a, b, (const char *)NULL);
    kiln_graph_free(g);
}

static void test_inference_errors(void **state)
{
    (void)state;
    const int64_t xd[4] = {2, 3, 5, 5}, gd[4] = {2, 4, 4, 2}, g3[4] = {2, 4, 4, 3},
                  gb[4] = {3, 4, 4, 2};
    kiln_graph *g = kiln_graph_new();
    kiln_value y = grid_sample(g, kiln_placeholder(g, "x", KILN_F32, 4, xd),
                               kiln_placeholder(g, "g", KILN_F32, 4, gd), "linear", "zeros", 0);
    assert_true(kiln_value_ok(y));
    int64_t dims[4];
    kiln_value_dims(g, y, dims);
    assert_true(dims[0] == 2 && dims[1] == 3 && dims[2] == 4 && dims[3] == 4);
    kiln_graph_free(g);

    expect_error(KILN_F32, 4, xd, KILN_F32, 4, gd, "bilinear", "zeros", "GridSample",
                 "mode 'bilinear'");
    expect_error(KILN_F32, 4, xd, KILN_F32, 4, gd, "linear", "wrap", "padding_mode 'wrap'",
                 "f32[2,3,5,5]");
    expect_error(KILN_F32, 4, xd, KILN_F32, 4, g3, NULL, NULL, "grid's last dim is 3",
                 "f32[2,4,4,3]");
    expect_error(KILN_F32, 4, xd, KILN_F32, 4, gb, NULL, NULL, "batch 3 differs", "GridSample");
    expect_error(KILN_F32, 4, xd, KILN_I32, 4, gd, NULL, NULL, "GridSample", "i32");
    expect_error(KILN_I64, 4, xd, KILN_F32, 4, gd, NULL, NULL, "GridSample", "i64");
    expect_error(KILN_F32, 2, xd, KILN_F32, 2, gd, NULL, NULL, "rank >= 3", "GridSample");
    expect_error(KILN_F32, 4, xd, KILN_F32, 3, gd, NULL, NULL, "grid has rank 3", "GridSample");
}

static void test_compiled_vs_reference(void **state)
{
    (void)state;
    static const char *const modes[] = {"linear", "nearest", "cubic"};
    static const char *const pads[] = {"zeros", "border", "reflection"};
    const int64_t xd[4] = {2, 5, 17, 13}, gd[4] = {2, 9, 11, 2};
    const int64_t xd3[5] = {1, 3, 6, 7, 5}, gd3[5] = {1, 4, 3, 5, 3};
    for (int m = 0; m < 3; m++) {
        kiln_graph *g = kiln_graph_new();
        kiln_value ph[4] = {
            kiln_placeholder(g, "x", KILN_F32, 4, xd),
            kiln_placeholder(g, "grid", KILN_F32, 4, gd),
            kiln_placeholder(g, "x3", KILN_F16, 5, xd3),
            kiln_placeholder(g, "grid3", KILN_F64, 5, gd3),
        };
        kiln_tensor *feeds[4] = {
            tu_random(KILN_F32, 4, xd, -5, 5, 1),
            tu_random(KILN_F32, 4, gd, -1.7, 1.7, 2),
            tu_random(KILN_F16, 5, xd3, -2, 2, 3),
            tu_random(KILN_F64, 5, gd3, -1.5, 1.5, 4),
        };
        kiln_value outs[9];
        int n = 0;
        for (int p = 0; p < 3; p++) {
            for (int a = 0; a < 2; a++)
                outs[n++] = grid_sample(g, ph[0], ph[1], modes[m], pads[p], a);
            outs[n++] = grid_sample(g, ph[2], ph[3], modes[m], pads[p], (m + p) % 2);
        }
        for (int i = 0; i < n; i++)
            if (!kiln_value_ok(outs[i])) fail_msg("output %d: %s", i, kiln_graph_error(g));
        tu_diff(g, n, outs, 4, ph, feeds, 1e-6, 1e-6);
        for (int i = 0; i < 4; i++) kiln_tensor_free(feeds[i]);
        kiln_graph_free(g);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_torch_cases),
        TU_TEST(test_by_hand),
        TU_TEST(test_inference_errors),
        TU_TEST(test_compiled_vs_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
