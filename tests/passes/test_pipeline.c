/* test_pipeline.c -- the pass-pipeline property: on seeded random small
 * graphs (elementwise chains with identity constants, matmuls with constant
 * weights and biases, conv + batch norm + relu, reshape/transpose chains,
 * constant subexpressions), compiled sessions at -O0 (opt_level 0: no
 * passes) and at the default opt_level 2 (the default pipeline) give the
 * same results within tolerance, and both agree with the reference
 * backend. KILN_PIPELINE_SEEDS=N runs more graphs. */
#include "pass_test.h"

#include <stdlib.h>

typedef struct {
    uint64_t s;
} rng;

static uint64_t next(rng *r)
{
    r->s ^= r->s << 13;
    r->s ^= r->s >> 7;
    r->s ^= r->s << 17;
    return r->s;
}

static int pick(rng *r, int n) { return (int)(next(r) % (uint64_t)n); }

static kiln_value rconst(kiln_graph *g, rng *r, int rank, const int64_t *dims, double lo, double hi)
{
    return pt_random_const(g, NULL, rank, dims, lo, hi, next(r));
}

static kiln_value bn(kiln_graph *g, rng *r, kiln_value x, int64_t c)
{
    int64_t d[1] = {c};
    kiln_value in[5] = {x, rconst(g, r, 1, d, 0.5, 1.5), rconst(g, r, 1, d, -1, 1), rconst(g, r, 1, d, -1, 1),
                        rconst(g, r, 1, d, 0.5, 2)};
    return kiln_op(g, "BatchNormalization", in, 5, NULL);
}

/* x [n, f] through a random elementwise chain, with identities mixed in. */
static kiln_value elementwise_chain(kiln_graph *g, rng *r, kiln_value x, int64_t f)
{
    int len = 3 + pick(r, 6);
    for (int i = 0; i < len; i++) {
        switch (pick(r, 9)) {
        case 0: x = kiln_add(g, x, rconst(g, r, 1, (int64_t[]){f}, -1, 1)); break;
        case 1: x = kiln_mul(g, x, kiln_scalar(g, KILN_F32, 1)); break;
        case 2: x = kiln_add(g, kiln_scalar(g, KILN_F32, 0), x); break;
        case 3: x = kiln_neg(g, kiln_neg(g, kiln_tanh(g, x))); break;
        case 4: x = kiln_relu(g, x); break;
        case 5: x = kiln_sigmoid(g, x); break;
        case 6: x = kiln_identity(g, kiln_mul(g, x, rconst(g, r, 1, (int64_t[]){f}, 0.5, 1.5))); break;
        case 7: x = kiln_div(g, kiln_sub(g, x, kiln_scalar(g, KILN_F32, 0)), kiln_scalar(g, KILN_F32, 1)); break;
        default: x = kiln_add(g, x, kiln_leaky_relu(g, x, 0.1)); break;
        }
    }
    return x;
}

/* The constant subexpression: c = relu(A @ B + 1) * 0.5 computed from
 * constants only, added to x. */
static kiln_value constant_subexpr(kiln_graph *g, rng *r, kiln_value x, int64_t n, int64_t f)
{
    kiln_value a = rconst(g, r, 2, (int64_t[]){n, 3}, -1, 1);
    kiln_value b = rconst(g, r, 2, (int64_t[]){3, f}, -1, 1);
    kiln_value c = kiln_relu(g, kiln_add(g, kiln_matmul(g, a, b), kiln_scalar(g, KILN_F32, 1)));
    c = kiln_mul(g, c, kiln_scalar(g, KILN_F32, 0.5));
    return kiln_add(g, x, kiln_transpose(g, kiln_transpose(g, c, NULL, 0), NULL, 0));
}

static kiln_value mlp(kiln_graph *g, rng *r, kiln_value x, int64_t in, int64_t *out)
{
    int64_t h = 2 + pick(r, 6);
    kiln_value w = rconst(g, r, 2, (int64_t[]){in, h}, -1, 1);
    kiln_value y;
    switch (pick(r, 4)) {
    case 0: y = kiln_add(g, kiln_matmul(g, x, w), rconst(g, r, 1, (int64_t[]){h}, -1, 1)); break;
    case 1: {
        kiln_value wt = rconst(g, r, 2, (int64_t[]){h, in}, -1, 1);
        y = kiln_gemm(g, x, wt, rconst(g, r, 1, (int64_t[]){h}, -1, 1), 1.0, 1.0, 0, 1);
        break;
    }
    case 2: y = bn(g, r, kiln_matmul(g, x, w), h); break;
    default: y = kiln_mul(g, kiln_matmul(g, x, w), rconst(g, r, 1, (int64_t[]){h}, -2, 2)); break;
    }
    *out = h;
    return pick(r, 2) ? kiln_relu(g, y) : y;
}

static kiln_value reshape_chain(kiln_graph *g, rng *r, kiln_value x, int64_t n, int64_t f)
{
    kiln_value y = kiln_reshape(g, x, (int64_t[]){n * f}, 1);
    y = kiln_reshape(g, y, (int64_t[]){f, n}, 2);
    y = kiln_transpose(g, y, (int64_t[]){1, 0}, 2);      /* [n, f], not x's order */
    y = kiln_unsqueeze(g, y, (int64_t[]){0}, 1);         /* [1, n, f] */
    y = kiln_transpose(g, y, (int64_t[]){0, 2, 1}, 3);   /* [1, f, n] */
    y = kiln_transpose(g, y, (int64_t[]){0, 2, 1}, 3);   /* [1, n, f] */
    y = kiln_squeeze(g, y, (int64_t[]){0}, 1);           /* [n, f] */
    return kiln_add(g, kiln_reshape(g, y, (int64_t[]){n, f}, 2), x);
}

static kiln_value conv_bn_relu(kiln_graph *g, rng *r, kiln_value x, int64_t c)
{
    int64_t m = 2 + pick(r, 3), k = 1 + 2 * pick(r, 2);
    kiln_value w = rconst(g, r, 4, (int64_t[]){m, c, k, k}, -1, 1);
    kiln_value b = pick(r, 2) ? rconst(g, r, 1, (int64_t[]){m}, -1, 1) : kiln_value_invalid();
    kiln_conv2d_options o;
    kiln_conv2d_options_init(&o);
    o.pads[0] = o.pads[1] = o.pads[2] = o.pads[3] = k / 2;
    kiln_value y = bn(g, r, kiln_conv2d(g, x, w, b, &o), m);
    if (pick(r, 2)) y = kiln_mul(g, y, rconst(g, r, 3, (int64_t[]){m, 1, 1}, 0.5, 1.5));
    return kiln_relu(g, y);
}

/* One random graph: a placeholder, a few stages, one or two outputs. */
static void build_random(kiln_graph *g, uint64_t seed)
{
    rng r = {seed * 0x9e3779b97f4a7c15ull + 1};
    next(&r);
    int kind = (int)(seed % 5);
    kiln_value outs[2];
    int nouts = 1;
    if (kind == 2) {
        int64_t c = 1 + pick(&r, 3), hw = 3 + pick(&r, 4);
        kiln_value x = kiln_placeholder(g, "x", KILN_F32, 4, (int64_t[]){2, c, hw, hw});
        kiln_value y = conv_bn_relu(g, &r, x, c);
        if (pick(&r, 2)) y = kiln_flatten(g, y, 1);
        outs[0] = y;
    } else {
        int64_t n = 1 + pick(&r, 5), f = 2 + pick(&r, 6);
        kiln_value x = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){n, f});
        kiln_value y = x;
        switch (kind) {
        case 0: y = elementwise_chain(g, &r, x, f); break;
        case 1: {
            int64_t h;
            y = mlp(g, &r, x, f, &h);
            y = elementwise_chain(g, &r, y, h);
            y = mlp(g, &r, y, h, &h);
            break;
        }
        case 3: y = reshape_chain(g, &r, elementwise_chain(g, &r, x, f), n, f); break;
        default: y = constant_subexpr(g, &r, elementwise_chain(g, &r, x, f), n, f); break;
        }
        outs[0] = y;
        if (pick(&r, 2)) {
            outs[1] = kiln_reduce_sum(g, y, NULL, 0, 0);
            nouts = 2;
        }
    }
    pt_outputs(g, nouts, outs);
}

static int run_session(kiln_graph *g, kiln_backend backend, int opt_level, kiln_tensor *feed, int nouts,
                       kiln_tensor **res, char *msg, size_t msg_size)
{
    kiln_value ph[1], outs[2];
    kiln_graph_inputs(g, ph, 1);
    kiln_graph_outputs(g, outs, 2);
    kiln_session_options o;
    kiln_session_options_init(&o);
    o.backend = backend;
    o.opt_level = opt_level;
    kiln_status *st = kiln_status_new();
    kiln_session *s = kiln_session_new(g, &o, st);
    if (s) kiln_session_run(s, ph, &feed, 1, outs, res, nouts, NULL, 0, st);
    int code = kiln_status_code(st);
    snprintf(msg, msg_size, "%s", kiln_status_message(st));
    kiln_session_free(s);
    kiln_status_free(st);
    return code;
}

static void compare(const kiln_tensor *want, const kiln_tensor *got, double tol, uint64_t seed, const char *what)
{
    assert_int_equal(kiln_tensor_dtype(want), kiln_tensor_dtype(got));
    assert_int_equal(kiln_tensor_size(want), kiln_tensor_size(got));
    const float *a = kiln_tensor_const_data(want), *b = kiln_tensor_const_data(got);
    for (size_t i = 0; i < kiln_tensor_size(want); i++)
        if (!(fabs((double)a[i] - (double)b[i]) <= tol + tol * fabs((double)a[i])))
            fail_msg("seed %llu: %s: element %zu: %.9g vs %.9g", (unsigned long long)seed, what, i, (double)b[i],
                     (double)a[i]);
}

static void check_seed(uint64_t seed)
{
    kiln_graph *g = kiln_graph_new();
    build_random(g, seed);
    if (kiln_graph_error(g)) fail_msg("seed %llu: generator: %s", (unsigned long long)seed, kiln_graph_error(g));
    kiln_value ph, outs[2];
    kiln_graph_inputs(g, &ph, 1);
    int nouts = kiln_graph_outputs(g, outs, 2);
    int64_t dims[KILN_MAX_RANK];
    int rank = kiln_value_dims(g, ph, dims);
    kiln_tensor *feed = tu_random(KILN_F32, rank, dims, -2, 2, seed + 99);
    kiln_tensor *ref[2] = {0}, *o0[2] = {0}, *o2[2] = {0};
    char msg[1024];
    if (run_session(g, KILN_BACKEND_REFERENCE, 0, feed, nouts, ref, msg, sizeof msg))
        fail_msg("seed %llu: reference: %s", (unsigned long long)seed, msg);
    if (run_session(g, KILN_BACKEND_DEFAULT, 0, feed, nouts, o0, msg, sizeof msg))
        fail_msg("seed %llu: -O0: %s", (unsigned long long)seed, msg);
    if (run_session(g, KILN_BACKEND_DEFAULT, 2, feed, nouts, o2, msg, sizeof msg))
        fail_msg("seed %llu: -O2: %s", (unsigned long long)seed, msg);
    for (int k = 0; k < nouts; k++) {
        compare(o0[k], o2[k], 1e-4, seed, "-O2 vs -O0");
        compare(ref[k], o2[k], 1e-4, seed, "-O2 vs reference");
    }
    for (int k = 0; k < 2; k++) {
        kiln_tensor_free(ref[k]);
        kiln_tensor_free(o0[k]);
        kiln_tensor_free(o2[k]);
    }
    kiln_tensor_free(feed);
    kiln_graph_free(g);
}

static void test_pipeline_matches_O0(void **state)
{
    (void)state;
    const char *env = getenv("KILN_PIPELINE_SEEDS");
    int n = env ? atoi(env) : 20;
    for (int s = 0; s < n; s++) check_seed((uint64_t)s);
}

/* The graphs are worth optimizing: the default pipeline removes nodes from
 * each kind (identities, folded constants, batch norms, shape chains). */
static void test_pipeline_shrinks(void **state)
{
    (void)state;
    for (uint64_t s = 0; s < 5; s++) {
        kiln_graph *g = kiln_graph_new();
        build_random(g, s);
        int before = kiln_graph_node_count(g);
        pt_run(g, "fold,simplify,fold_bn,fold,cse,dce");
        int after = kiln_graph_node_count(g);
        if (after >= before) fail_msg("seed %llu (kind %d): %d nodes before, %d after", (unsigned long long)s,
                                      (int)(s % 5), before, after);
        kiln_graph_free(g);
    }
}

/* Allocation failures: failing the n-th allocation of a pipeline run, for
 * every n until the run succeeds, returns KILN_ERR_OUT_OF_MEMORY, leaks
 * nothing (the teardown counts live blocks), and leaves a graph without an
 * error that still verifies and computes what it did. */
static void test_pipeline_out_of_memory(void **state)
{
    (void)state;
    for (uint64_t seed = 0; seed < 5; seed++) {
        for (long n = 0;; n++) {
            kiln_graph *g = kiln_graph_new(), *orig = kiln_graph_new();
            build_random(g, seed);
            build_random(orig, seed);
            kiln_status *st = kiln_status_new();
            pass_context cx;
            pass_context_init(&cx, st);
            ir_alloc_fail_after(n);
            int rc = pass_run_pipeline(g, "fold,simplify,fold_bn,fold,cse,dce", &cx);
            ir_alloc_fail_after(-1);
            pass_context_clear(&cx);
            if (rc != KILN_OK) {
                if (rc != KILN_ERR_OUT_OF_MEMORY)
                    fail_msg("seed %llu, failing allocation %ld: %s (code %d)", (unsigned long long)seed, n,
                             kiln_status_message(st), rc);
            }
            if (kiln_graph_error(g))
                fail_msg("seed %llu, failing allocation %ld: the graph has an error: %s", (unsigned long long)seed, n,
                         kiln_graph_error(g));
            if (kiln_graph_verify(g, st))
                fail_msg("seed %llu, failing allocation %ld: the graph does not verify: %s", (unsigned long long)seed,
                         n, kiln_status_message(st));
            if (n % 8 == 0 || rc == KILN_OK)
                pt_assert_same_results(orig, g, KILN_BACKEND_REFERENCE, 1e-4, 1e-4, seed);
            kiln_status_free(st);
            kiln_graph_free(g);
            kiln_graph_free(orig);
            if (rc == KILN_OK) break;
            if (n > 100000) fail_msg("seed %llu: the pipeline never succeeded", (unsigned long long)seed);
        }
    }
}

/* docs/passes.md has a section for every registered pass, and shows the
 * default pipeline. */
static void test_docs_list_every_pass(void **state)
{
    (void)state;
    FILE *f = fopen("docs/passes.md", "rb");
    if (!f) f = fopen(KILN_BUILD_DIR "/../docs/passes.md", "rb");
    if (!f) fail_msg("docs/passes.md not found (run from the repository root)");
    static char doc[1 << 16];
    size_t n = fread(doc, 1, sizeof doc - 1, f);
    fclose(f);
    doc[n] = 0;
    int count;
    const pass_def *all = pass_list(&count);
    for (int i = 0; i < count; i++) {
        char heading[80];
        snprintf(heading, sizeof heading, "\n### %s", all[i].name);
        if (!strstr(doc, heading)) fail_msg("docs/passes.md has no '### %s' section", all[i].name);
    }
    if (!strstr(doc, pass_default_pipeline()))
        fail_msg("docs/passes.md does not show the default pipeline '%s'", pass_default_pipeline());
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_pipeline_matches_O0),
        TU_TEST(test_pipeline_shrinks),
        TU_TEST(test_pipeline_out_of_memory),
        TU_TEST(test_docs_list_every_pass),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
