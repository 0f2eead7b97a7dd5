/* test_diff_nn.c -- Softmax, LogSoftmax, BatchNormalization,
 * LayerNormalization, RandomUniform and RandomNormal compiled by the CPU
 * backend against the reference kernels, over f32, f64, f16 and bf16:
 * every axis form (first, middle, last, negative), odd sizes, size-1 and
 * size-0 dims, rows long enough to be split across threads, symbolic
 * placeholder dims, NaN / infinite rows, BatchNormalization of rank 2 to 5,
 * LayerNormalization with broadcast scale and bias. The random ops must
 * give the reference's numbers exactly (same generator, same counter). */
#include "common/testutil.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"

static const kiln_dtype FLOATS[] = {KILN_F32, KILN_F64, KILN_F16, KILN_BF16};
#define NFLOATS 4

static double rtol_for(kiln_dtype dt)
{
    switch (dt) {
    case KILN_F64: return 1e-12;
    case KILN_F32: return 1e-5;
    case KILN_F16: return 3e-3;
    default: return 2e-2;
    }
}

typedef struct {
    int rank;
    int64_t dims[8];
} shape;

static uint64_t seed = 1;

/* Whether case c (of a list that varies shapes and attributes) runs dtype
 * index d: all four for the first case, then two, rotating, to keep the
 * run short while every dtype meets every kind of case. */
static bool case_runs(size_t c, int d) { return c == 0 || (size_t)d % 2 == c % 2; }

/* Placeholders for the shapes (dim 0 symbolic when asked), random feeds in
 * [lo[i], hi[i]), op over them, diffed. */
static void diff_op(const char *op, kiln_dtype dt, int n, const shape *shapes, const double *lo,
                    const double *hi, kiln_attrs *attrs, bool symbolic)
{
    kiln_graph *g = kiln_graph_new();
    kiln_value ph[5];
    kiln_tensor *feeds[5];
    for (int i = 0; i < n; i++) {
        int64_t dims[8];
        memcpy(dims, shapes[i].dims, sizeof dims);
        if (symbolic && i == 0 && shapes[i].rank > 0) dims[0] = -1;
        char name[8] = {(char)('a' + i), 0};
        ph[i] = kiln_placeholder(g, name, dt, shapes[i].rank, dims);
        feeds[i] = tu_random(dt, shapes[i].rank, shapes[i].dims, lo[i], hi[i], seed++);
    }
    kiln_value y = kiln_op(g, op, ph, n, attrs);
    if (kiln_graph_error(g)) fail_msg("%s (%s): %s", op, kiln_dtype_name(dt), kiln_graph_error(g));
    tu_diff(g, 1, &y, n, ph, feeds, rtol_for(dt), rtol_for(dt));
    for (int i = 0; i < n; i++) kiln_tensor_free(feeds[i]);
    kiln_graph_free(g);
}

/* ---- Softmax, LogSoftmax ---- */

static void diff_softmax(const char *op, kiln_dtype dt, shape s, int64_t axis, bool symbolic)
{
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_int(a, "axis", axis);
    double lo = -10, hi = 10;
    diff_op(op, dt, 1, &s, &lo, &hi, a, symbolic);
    kiln_attrs_free(a);
}

static void test_softmax_axes(void **state)
{
    (void)state;
    static const struct {
        shape s;
        int64_t axis;
    } cases[] = {
        {{2, {7, 13}}, -1}, {{2, {7, 13}}, 0},       {{2, {7, 13}}, 1},
        {{3, {3, 5, 33}}, 0}, {{3, {3, 5, 33}}, 1},  {{3, {3, 5, 33}}, -1},
        {{3, {3, 5, 33}}, -2}, {{1, {1000}}, 0},     {{3, {2, 1, 7}}, 1},
        {{4, {2, 3, 4, 5}}, 2}, {{1, {1}}, -1},      {{2, {4, 0}}, 0},
        {{3, {2, 17, 1}}, -1},
    };
    /* LogSoftmax shares the kernel: every other case is enough */
    const char *ops[] = {"Softmax", "LogSoftmax"};
    for (int o = 0; o < 2; o++)
        for (size_t c = (size_t)o; c < sizeof cases / sizeof cases[0]; c += 1 + (size_t)o)
            for (int d = 0; d < NFLOATS; d++)
                if (case_runs(c, d)) diff_softmax(ops[o], FLOATS[d], cases[c].s, cases[c].axis, false);
}

static void test_softmax_large_symbolic(void **state)
{
    (void)state;
    const char *ops[] = {"Softmax", "LogSoftmax"};
    for (int o = 0; o < 2; o++)
        for (int d = o; d < NFLOATS; d += 1 + o) { /* LogSoftmax: f64, bf16 */
            /* long rows, many rows: split across threads */
            diff_softmax(ops[o], FLOATS[d], (shape){2, {96, 4099}}, -1, true);
            /* a strided axis over wide rows: column tiles split across threads */
            diff_softmax(ops[o], FLOATS[d], (shape){3, {6, 101, 700}}, 1, true);
            diff_softmax(ops[o], FLOATS[d], (shape){3, {5, 9, 3}}, 0, true);
        }
}

/* Rows with NaN, +inf, only -inf, -inf among finite values: the compiled
 * code must give NaN where the reference does. */
static void test_softmax_special(void **state)
{
    (void)state;
    const double inf = INFINITY, nan = NAN;
    enum { R = 6, N = 19 };
    double v[R * N];
    for (int i = 0; i < R * N; i++) v[i] = (double)((i * 7) % 11) - 5;
    v[0 * N + 3] = nan;              /* row 0: a NaN */
    v[1 * N + 18] = inf;             /* row 1: +inf */
    for (int k = 0; k < N; k++) v[2 * N + k] = -inf; /* row 2: all -inf */
    v[3 * N + 0] = -inf;             /* row 3: some -inf */
    v[3 * N + 17] = -inf;
    v[4 * N + 5] = nan;              /* row 4: NaN and +inf */
    v[4 * N + 6] = inf;
    const char *ops[] = {"Softmax", "LogSoftmax"};
    for (int o = 0; o < 2; o++)
        for (int d = 0; d < NFLOATS; d++)
            for (int ax = d == 0 ? 0 : 1; ax < 2; ax++) {
                kiln_graph *g = kiln_graph_new();
                int64_t dims[2] = {R, N};
                kiln_value x = kiln_placeholder(g, "x", FLOATS[d], 2, dims);
                kiln_attrs *a = kiln_attrs_new();
                kiln_attrs_int(a, "axis", ax);
                kiln_value y = kiln_op(g, ops[o], &x, 1, a);
                kiln_tensor *t = tu_from_f64(FLOATS[d], 2, dims, v);
                tu_diff(g, 1, &y, 1, &x, &t, rtol_for(FLOATS[d]), rtol_for(FLOATS[d]));
                kiln_tensor_free(t);
                kiln_attrs_free(a);
                kiln_graph_free(g);
            }
}

/* ---- BatchNormalization ---- */

static void diff_batchnorm(kiln_dtype dt, shape x, double eps, bool symbolic)
{
    shape s[5] = {x};
    for (int i = 1; i < 5; i++) s[i] = (shape){1, {x.dims[1]}};
    /* x, scale, bias, mean, var (var >= 0) */
    double lo[5] = {-3, -2, -1, -1, 0}, hi[5] = {3, 2, 1, 1, 2};
    kiln_attrs *a = kiln_attrs_new();
    if (eps >= 0) kiln_attrs_float(a, "epsilon", eps);
    diff_op("BatchNormalization", dt, 5, s, lo, hi, a, symbolic);
    kiln_attrs_free(a);
}

static void test_batchnorm(void **state)
{
    (void)state;
    static const shape shapes[] = {
        {2, {5, 3}},        {3, {2, 4, 9}},    {4, {2, 3, 5, 7}}, {4, {1, 1, 1, 1}},
        {5, {2, 3, 2, 3, 5}}, {3, {3, 0, 4}},  {4, {2, 3, 0, 2}}, {4, {4, 64, 33, 31}},
    };
    for (size_t c = 0; c < sizeof shapes / sizeof shapes[0]; c++)
        for (int d = 0; d < NFLOATS; d++)
            if (case_runs(c, d)) diff_batchnorm(FLOATS[d], shapes[c], -1, c % 2 == 1);
    for (int d = 0; d < NFLOATS; d++) {
        diff_batchnorm(FLOATS[d], (shape){4, {2, 5, 3, 3}}, 1e-3, false);
        diff_batchnorm(FLOATS[d], (shape){2, {7, 13}}, 0.5, true);
    }
}

/* ---- LayerNormalization ---- */

static void diff_layernorm(kiln_dtype dt, shape x, int64_t axis, const shape *scale,
                           const shape *bias, bool symbolic)
{
    shape s[3] = {x, *scale};
    if (bias) s[2] = *bias;
    double lo[3] = {-3, -2, -1}, hi[3] = {3, 2, 1};
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_int(a, "axis", axis);
    diff_op("LayerNormalization", dt, bias ? 3 : 2, s, lo, hi, a, symbolic);
    kiln_attrs_free(a);
}

static void test_layernorm(void **state)
{
    (void)state;
    static const struct {
        shape x;
        int64_t axis;
        shape scale, bias; /* bias rank -1: none */
    } cases[] = {
        {{2, {4, 7}}, -1, {1, {7}}, {1, {7}}},
        {{2, {4, 7}}, -1, {1, {7}}, {-1, {0}}},
        {{3, {3, 5, 6}}, -1, {1, {6}}, {1, {6}}},
        {{3, {3, 5, 6}}, -2, {2, {5, 6}}, {2, {5, 6}}},
        {{3, {3, 5, 6}}, -2, {1, {6}}, {2, {5, 1}}},   /* broadcast both ways */
        {{3, {3, 5, 6}}, -2, {2, {5, 1}}, {-1, {0}}},
        {{3, {3, 5, 6}}, 1, {1, {1}}, {1, {6}}},       /* scalar-like scale */
        {{3, {3, 5, 6}}, 1, {0, {0}}, {0, {0}}},       /* rank-0 scale and bias */
        {{4, {2, 3, 4, 5}}, 1, {3, {3, 1, 5}}, {2, {4, 5}}},
        {{4, {2, 3, 4, 5}}, 0, {4, {2, 3, 4, 5}}, {1, {5}}},
        {{3, {7, 1, 13}}, -2, {2, {1, 13}}, {1, {13}}},
        {{2, {0, 5}}, -1, {1, {5}}, {1, {5}}},
        {{1, {1}}, 0, {1, {1}}, {-1, {0}}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (int d = 0; d < NFLOATS; d++)
            if (case_runs(c, d))
                diff_layernorm(FLOATS[d], cases[c].x, cases[c].axis, &cases[c].scale,
                               cases[c].bias.rank >= 0 ? &cases[c].bias : NULL, false);
}

static void test_layernorm_large_symbolic(void **state)
{
    (void)state;
    for (int d = 0; d < NFLOATS; d++) {
        diff_layernorm(FLOATS[d], (shape){2, {33, 4099}}, -1, &(shape){1, {4099}},
                       &(shape){1, {4099}}, true);
        diff_layernorm(FLOATS[d], (shape){3, {300, 16, 24}}, -2, &(shape){1, {24}}, NULL, true);
        diff_layernorm(FLOATS[d], (shape){3, {5, 7, 9}}, 1, &(shape){2, {7, 9}},
                       &(shape){1, {9}}, true);
    }
}

/* LayerNorm of rows far from zero: the mean must not cost precision. */
static void test_layernorm_offset(void **state)
{
    (void)state;
    for (int d = 0; d < 2; d++) {
        shape s[2] = {{2, {6, 257}}, {1, {257}}};
        double lo[2] = {1000, 0.5}, hi[2] = {1001, 1.5};
        kiln_graph *g = kiln_graph_new();
        kiln_value ph[2];
        kiln_tensor *feeds[2];
        for (int i = 0; i < 2; i++) {
            ph[i] = kiln_placeholder(g, i ? "scale" : "x", FLOATS[d], s[i].rank, s[i].dims);
            feeds[i] = tu_random(FLOATS[d], s[i].rank, s[i].dims, lo[i], hi[i], seed++);
        }
        kiln_value y = kiln_op(g, "LayerNormalization", ph, 2, NULL);
        /* f64: the reference's own mean is off by ~1e-13 here */
        double tol = FLOATS[d] == KILN_F64 ? 1e-10 : rtol_for(FLOATS[d]);
        tu_diff(g, 1, &y, 2, ph, feeds, tol, tol);
        for (int i = 0; i < 2; i++) kiln_tensor_free(feeds[i]);
        kiln_graph_free(g);
    }
}

/* ---- RandomUniform, RandomNormal ---- */

static kiln_value random_node(kiln_graph *g, const char *op, kiln_dtype dt, shape s, double p0,
                              double p1, int64_t sd)
{
    bool uniform = strcmp(op, "RandomUniform") == 0;
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_dtype(a, "dtype", dt);
    kiln_attrs_ints(a, "shape", s.dims, s.rank);
    kiln_attrs_float(a, uniform ? "low" : "mean", p0);
    kiln_attrs_float(a, uniform ? "high" : "scale", p1);
    kiln_attrs_int(a, "seed", sd);
    kiln_value y = kiln_op(g, op, NULL, 0, a);
    kiln_attrs_free(a);
    if (kiln_graph_error(g)) fail_msg("%s: %s", op, kiln_graph_error(g));
    return y;
}

static void run_one(kiln_graph *g, kiln_backend be, kiln_value y, kiln_tensor **out)
{
    char msg[512];
    if (tu_run_backend(g, be, 1, &y, out, 0, NULL, NULL, msg, sizeof msg))
        fail_msg("%s run: %s", be == KILN_BACKEND_REFERENCE ? "reference" : "compiled", msg);
}

static void assert_same_bits(const kiln_tensor *r, const kiln_tensor *c, const char *what)
{
    size_t n = kiln_tensor_size(r);
    assert_int_equal(n, kiln_tensor_size(c));
    size_t es = kiln_dtype_size(kiln_tensor_dtype(r));
    const unsigned char *a = kiln_tensor_const_data(r), *b = kiln_tensor_const_data(c);
    for (size_t i = 0; i < n; i++)
        if (memcmp(a + i * es, b + i * es, es) != 0)
            fail_msg("%s (%s) element %zu: compiled %.17g, reference %.17g", what,
                     kiln_dtype_name(kiln_tensor_dtype(r)), i,
                     ir_load_f64(kiln_tensor_dtype(c), b, i), ir_load_f64(kiln_tensor_dtype(r), a, i));
}

/* A graph whose random node is its first node, run once in a fresh
 * session: both backends use counter 0 * G + 0, so the numbers must be
 * the reference's, bit for bit. */
static void exact_case(const char *op, kiln_dtype dt, shape s, double p0, double p1, int64_t sd)
{
    kiln_graph *g = kiln_graph_new();
    kiln_value y = random_node(g, op, dt, s, p0, p1, sd);
    kiln_tensor *r = NULL, *c = NULL;
    run_one(g, KILN_BACKEND_REFERENCE, y, &r);
    run_one(g, KILN_BACKEND_DEFAULT, y, &c);
    assert_same_bits(r, c, op);
    kiln_tensor_free(r);
    kiln_tensor_free(c);
    kiln_graph_free(g);
}

static void test_random_exact(void **state)
{
    (void)state;
    for (int d = 0; d < NFLOATS; d++) {
        kiln_dtype dt = FLOATS[d];
        /* large (split across threads) and odd */
        exact_case("RandomUniform", dt, (shape){2, {317, 331}}, 0, 1, 0);
        exact_case("RandomNormal", dt, (shape){2, {311, 313}}, 0, 1, 0);
        /* values that round up to `high` (or to -0 >= 0) in the dtype: the
         * fix-up that keeps them below */
        exact_case("RandomUniform", dt, (shape){1, {20000}}, 1000, 1001, 3);
        exact_case("RandomUniform", dt, (shape){1, {20000}}, 1, 1.0000001, 4);
        exact_case("RandomUniform", dt, (shape){1, {20000}}, -1e-3, 0, -5);
    }
    exact_case("RandomUniform", KILN_F32, (shape){1, {1001}}, -3, 5, 42);
    exact_case("RandomUniform", KILN_F64, (shape){2, {3, 0}}, -1, 1, 7);
    exact_case("RandomUniform", KILN_BF16, (shape){0, {0}}, -1, 1, 8); /* a scalar */
    exact_case("RandomNormal", KILN_F64, (shape){1, {1}}, 2, 0.5, 9);
    exact_case("RandomNormal", KILN_F16, (shape){3, {2, 3, 4}}, -1, 3, 123456789);
    exact_case("RandomNormal", KILN_F32, (shape){1, {65}}, 5, 0, 1);
}

typedef struct {
    double mean, var, min, max;
} stats;

static stats stats_of(const kiln_tensor *t)
{
    size_t n = kiln_tensor_size(t);
    const void *p = kiln_tensor_const_data(t);
    stats s = {0, 0, INFINITY, -INFINITY};
    for (size_t i = 0; i < n; i++) {
        double v = ir_load_f64(kiln_tensor_dtype(t), p, i);
        s.mean += v;
        if (v < s.min) s.min = v;
        if (v > s.max) s.max = v;
    }
    s.mean /= (double)n;
    for (size_t i = 0; i < n; i++) {
        double d = ir_load_f64(kiln_tensor_dtype(t), p, i) - s.mean;
        s.var += d * d;
    }
    s.var /= (double)n;
    return s;
}

/* 100k samples from each backend, from a graph where the random node comes
 * after an unused placeholder (so its node index differs between the source
 * graph and the compiled one): the streams may differ, the statistics must
 * not. Uniform values lie in [low, high). */
static void stats_case(const char *op, kiln_dtype dt, double p0, double p1)
{
    bool uniform = strcmp(op, "RandomUniform") == 0;
    kiln_graph *g = kiln_graph_new();
    kiln_placeholder(g, "unused", KILN_F32, 0, NULL);
    kiln_value y = random_node(g, op, dt, (shape){2, {250, 400}}, p0, p1, 11);
    kiln_tensor *r = NULL, *c = NULL;
    run_one(g, KILN_BACKEND_REFERENCE, y, &r);
    run_one(g, KILN_BACKEND_DEFAULT, y, &c);
    stats sr = stats_of(r), sc = stats_of(c);
    /* expected mean and standard deviation of the distribution */
    double mu = uniform ? (p0 + p1) / 2 : p0, sd = uniform ? (p1 - p0) / sqrt(12.0) : p1;
    double tol_mean = 6 * sd / sqrt(100000.0) + rtol_for(dt) * fabs(mu);
    if (fabs(sc.mean - mu) > tol_mean || fabs(sr.mean - mu) > tol_mean)
        fail_msg("%s %s: mean compiled %g, reference %g, expected %g", op, kiln_dtype_name(dt), sc.mean,
                 sr.mean, mu);
    if (fabs(sc.var - sr.var) > 0.03 * sr.var + 1e-12)
        fail_msg("%s %s: variance compiled %g, reference %g", op, kiln_dtype_name(dt), sc.var, sr.var);
    if (uniform && (sc.min < p0 || sc.max >= p1))
        fail_msg("%s %s: compiled values span [%.17g, %.17g], outside [%g, %g)", op,
                 kiln_dtype_name(dt), sc.min, sc.max, p0, p1);
    kiln_tensor_free(r);
    kiln_tensor_free(c);
    kiln_graph_free(g);
}

static void test_random_stats(void **state)
{
    (void)state;
    for (int d = 0; d < NFLOATS; d++) {
        stats_case("RandomUniform", FLOATS[d], d % 2 ? 0 : -3, d % 2 ? 1 : 5);
        stats_case("RandomNormal", FLOATS[d], d % 2 ? 0 : 2, d % 2 ? 1 : 0.5);
    }
}

/* A random node that is not the first of its graph, run three times in one
 * session: the compiled streams must follow the reference's run counter. */
static void test_random_exact_runs(void **state)
{
    (void)state;
    for (int d = 0; d < NFLOATS; d++) {
        const char *ops[] = {"RandomUniform", "RandomNormal"};
        for (int o = 0; o < 2; o++) {
            kiln_graph *g = kiln_graph_new();
            kiln_placeholder(g, "unused", KILN_F32, 0, NULL);
            kiln_value y = random_node(g, ops[o], FLOATS[d], (shape){2, {33, 65}}, 0, 1, 5);
            kiln_status *st = kiln_status_new();
            kiln_session_options opt[2];
            kiln_session *s[2];
            for (int b = 0; b < 2; b++) {
                kiln_session_options_init(&opt[b]);
                opt[b].backend = b == 0 ? KILN_BACKEND_REFERENCE : KILN_BACKEND_DEFAULT;
                s[b] = kiln_session_new(g, &opt[b], st);
                assert_non_null(s[b]);
            }
            for (int run = 0; run < 3; run++) {
                kiln_tensor *t[2];
                for (int b = 0; b < 2; b++) {
                    kiln_session_run(s[b], NULL, NULL, 0, &y, &t[b], 1, NULL, 0, st);
                    assert_int_equal(kiln_status_code(st), KILN_OK);
                }
                assert_same_bits(t[0], t[1], ops[o]);
                for (int b = 0; b < 2; b++) kiln_tensor_free(t[b]);
            }
            for (int b = 0; b < 2; b++) kiln_session_free(s[b]);
            kiln_status_free(st);
            kiln_graph_free(g);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_softmax_axes),
        TU_TEST(test_softmax_large_symbolic),
        TU_TEST(test_softmax_special),
        TU_TEST(test_batchnorm),
        TU_TEST(test_layernorm),
        TU_TEST(test_layernorm_large_symbolic),
        TU_TEST(test_layernorm_offset),
        TU_TEST(test_random_exact),
        TU_TEST(test_random_stats),
        TU_TEST(test_random_exact_runs),
    };
    /* TU_FILTER=test_name runs one test (while working on a kernel) */
    if (getenv("TU_FILTER")) cmocka_set_test_filter(getenv("TU_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
