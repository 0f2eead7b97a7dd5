/* test_alloc_failures.c -- allocation-failure sweeps (as SQLite and Lua
 * test): for n = 0, 1, 2, ... every allocation after the first n fails,
 * until the operation succeeds. Each failing n must end in an error (a
 * graph error, a NULL result, a status), never a crash or a silent wrong
 * result, and after freeing everything no block may be left live. */
#include "common/testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"

#define MAX_STEPS 100000

static void assert_no_leak(long n)
{
    long live = ir_alloc_live_blocks();
    if (live != 0) fail_msg("fail_after(%ld): %ld blocks leaked", n, live);
}

/* A small graph: placeholders, a constant, a variable, a few ops with
 * attributes, names and an Assign. Any step may fail; returns the graph
 * (NULL when even kiln_graph_new failed). */
typedef struct {
    kiln_value x, w, y, out, act, asg, v;
} small_values;

static kiln_graph *build_small(small_values *sv)
{
    kiln_graph *g = kiln_graph_new();
    if (!g) return NULL;
    memset(sv, 0xff, sizeof *sv);
    sv->x = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){-1, 3});
    sv->w = kiln_placeholder(g, NULL, KILN_F32, 1, (int64_t[]){3});
    kiln_tensor *ct = kiln_tensor_from_data(KILN_F32, 1, (int64_t[]){3}, (float[]){1, -2, 3});
    kiln_value c = kiln_constant(g, "c", ct); /* a NULL tensor is a graph error */
    sv->v = kiln_variable(g, "v", ct);
    kiln_tensor_free(ct);
    sv->y = kiln_add(g, sv->x, c);
    sv->act = kiln_name(g, kiln_leaky_relu(g, sv->y, 0.5), "act");
    kiln_value cl = kiln_clip(g, sv->act, -1, 4);
    sv->out = kiln_name(g, kiln_cast(g, kiln_mul(g, cl, kiln_scalar(g, KILN_F32, 2)), KILN_F64), "out");
    sv->asg = kiln_name(g, kiln_assign(g, sv->v, kiln_add(g, sv->v, sv->w)), "asg");
    return g;
}

static char *small_text(void)
{
    small_values sv;
    ir_alloc_fail_after(-1);
    kiln_graph *g = build_small(&sv);
    assert_non_null(g);
    assert_null(kiln_graph_error(g));
    char *t = kiln_graph_to_text(g);
    assert_non_null(t);
    char *copy = strdup(t);
    kiln_free(t);
    kiln_graph_free(g);
    return copy;
}

/* (a) building a graph */
static void test_sweep_build(void **state)
{
    (void)state;
    char *want = small_text();
    long n;
    int failures = 0;
    for (n = 0; n < MAX_STEPS; n++) {
        small_values sv;
        ir_alloc_fail_after(n);
        kiln_graph *g = build_small(&sv);
        bool failed = ir_alloc_failed();
        ir_alloc_fail_after(-1);
        const char *err = g ? kiln_graph_error(g) : NULL;
        if (failed) {
            failures++;
            if (g && !err) fail_msg("fail_after(%ld): allocation failed but the graph has no error", n);
        } else {
            assert_non_null(g);
            if (err) fail_msg("no allocation failed, but: %s", err);
            char *t = kiln_graph_to_text(g);
            assert_non_null(t);
            if (strcmp(t, want) != 0) fail_msg("graph differs:\n%s\nwant:\n%s", t, want);
            kiln_free(t);
        }
        kiln_graph_free(g);
        assert_no_leak(n);
        if (!failed) break;
    }
    assert_true(n < MAX_STEPS);
    assert_true(failures > 5);
    print_message("building: %ld failure points\n", n);
    free(want);
}

/* (b) opening a session, per backend */
static void sweep_session_new(kiln_backend backend)
{
    long n;
    for (n = 0; n < MAX_STEPS; n++) {
        small_values sv;
        kiln_graph *g = build_small(&sv);
        assert_non_null(g);
        assert_null(kiln_graph_error(g));
        kiln_status *st = kiln_status_new();
        kiln_session_options o;
        kiln_session_options_init(&o);
        o.backend = backend;
        o.threads = 2;
        ir_alloc_fail_after(n);
        kiln_session *s = kiln_session_new(g, &o, st);
        bool failed = ir_alloc_failed();
        ir_alloc_fail_after(-1);
        if (failed) {
            if (s) {
                /* a failure it recovered from must leave a working session */
                kiln_tensor *r = NULL;
                kiln_session_run(s, NULL, NULL, 0, &sv.v, &r, 1, NULL, 0, st);
                if (kiln_status_code(st) != KILN_OK)
                    fail_msg("fail_after(%ld): session opened but does not run: %s", n,
                             kiln_status_message(st));
                kiln_tensor_free(r);
            } else {
                assert_int_equal(kiln_status_code(st), KILN_ERR_OUT_OF_MEMORY);
            }
        } else {
            assert_non_null(s);
            assert_int_equal(kiln_status_code(st), KILN_OK);
        }
        kiln_session_free(s);
        kiln_status_free(st);
        kiln_graph_free(g);
        assert_no_leak(n);
        if (!failed) break;
    }
    assert_true(n > 0 && n < MAX_STEPS);
    print_message("kiln_session_new (%s): %ld failure points\n",
                  backend == KILN_BACKEND_REFERENCE ? "reference" : "default", n);
}

static void test_sweep_session_new_reference(void **state)
{
    (void)state;
    sweep_session_new(KILN_BACKEND_REFERENCE);
}

static void test_sweep_session_new_default(void **state)
{
    (void)state;
    sweep_session_new(KILN_BACKEND_DEFAULT);
}

/* (c) running a session: two fetches and an Assign target */
static void sweep_run(kiln_backend backend)
{
    long n;
    int failures = 0;
    for (n = 0; n < MAX_STEPS; n++) {
        small_values sv;
        kiln_graph *g = build_small(&sv);
        assert_non_null(g);
        kiln_status *st = kiln_status_new();
        kiln_session_options o;
        kiln_session_options_init(&o);
        o.backend = backend;
        o.threads = 1;
        kiln_session *s = kiln_session_new(g, &o, st);
        assert_non_null(s);
        kiln_tensor *tx = tu_f32(2, (int64_t[]){2, 3}, (float[]){1, 2, 3, -4, -5, 6});
        kiln_tensor *tw = tu_f32(1, (int64_t[]){3}, (float[]){10, 20, 30});
        kiln_tensor *r[2] = {tx, tx}; /* must be overwritten */
        ir_alloc_fail_after(n);
        kiln_session_run(s, (kiln_value[]){sv.x, sv.w}, (kiln_tensor *[]){tx, tw}, 2,
                         (kiln_value[]){sv.out, sv.y}, r, 2, &sv.asg, 1, st);
        bool failed = ir_alloc_failed();
        ir_alloc_fail_after(-1);
        int code = kiln_status_code(st);
        if (code != KILN_OK) {
            failures++;
            if (!failed) fail_msg("fail_after(%ld): run failed without an allocation failure: %s",
                                  n, kiln_status_message(st));
            if (code != KILN_ERR_OUT_OF_MEMORY)
                fail_msg("fail_after(%ld): %s instead of OUT_OF_MEMORY: %s", n,
                         kiln_status_code_name(code), kiln_status_message(st));
            assert_null(r[0]);
            assert_null(r[1]);
        } else {
            /* y = x + c; out = f64(2 * clip(leaky(y, 0.5), -1, 4)) */
            tu_assert_close(r[1], (double[]){2, 0, 6, -3, -7, 9}, 6, 0, 0);
            tu_assert_shape(r[0], KILN_F64, 2, (int64_t[]){2, 3});
            tu_assert_close(r[0], (double[]){4, 0, 8, -2, -2, 8}, 6, 0, 0);
            kiln_tensor *v = kiln_session_variable(s, sv.v, st);
            tu_assert_close(v, (double[]){11, 18, 33}, 3, 0, 0);
            kiln_tensor_free(v);
        }
        kiln_tensor_free(r[0]);
        kiln_tensor_free(r[1]);
        kiln_tensor_free(tx);
        kiln_tensor_free(tw);
        kiln_session_free(s);
        kiln_status_free(st);
        kiln_graph_free(g);
        assert_no_leak(n);
        if (!failed) break;
    }
    assert_true(n < MAX_STEPS);
    assert_true(failures > 3);
    print_message("kiln_session_run (%s): %ld failure points\n",
                  backend == KILN_BACKEND_REFERENCE ? "reference" : "default", n);
}

static void test_sweep_run_reference(void **state)
{
    (void)state;
    sweep_run(KILN_BACKEND_REFERENCE);
}

static void test_sweep_run_default(void **state)
{
    (void)state;
    sweep_run(KILN_BACKEND_DEFAULT);
}

/* (d) printing */
static void test_sweep_text_and_dot(void **state)
{
    (void)state;
    char *want = small_text();
    for (int dot = 0; dot < 2; dot++) {
        long n;
        for (n = 0; n < MAX_STEPS; n++) {
            small_values sv;
            kiln_graph *g = build_small(&sv);
            ir_alloc_fail_after(n);
            char *t = dot ? kiln_graph_to_dot(g) : kiln_graph_to_text(g);
            bool failed = ir_alloc_failed();
            ir_alloc_fail_after(-1);
            if (failed) assert_null(t);
            else if (!dot) assert_string_equal(t, want);
            else assert_non_null(strstr(t, "label=\"out\\nCast\\nf64[?,3]\""));
            kiln_free(t);
            kiln_graph_free(g);
            assert_no_leak(n);
            if (!failed) break;
        }
        assert_true(n > 0 && n < MAX_STEPS);
        print_message("%s: %ld failure points\n", dot ? "kiln_graph_to_dot" : "kiln_graph_to_text", n);
    }
    free(want);
}

/* The verifier under failures: OK, or out of memory -- never a false
 * report of a broken invariant. */
static void test_sweep_verify(void **state)
{
    (void)state;
    long n;
    for (n = 0; n < MAX_STEPS; n++) {
        small_values sv;
        kiln_graph *g = build_small(&sv);
        kiln_status *st = kiln_status_new();
        ir_alloc_fail_after(n);
        int code = kiln_graph_verify(g, st);
        bool failed = ir_alloc_failed();
        ir_alloc_fail_after(-1);
        if (code != KILN_OK && code != KILN_ERR_OUT_OF_MEMORY)
            fail_msg("fail_after(%ld): verifier says %s: %s", n, kiln_status_code_name(code),
                     kiln_status_message(st));
        if (!failed) assert_int_equal(code, KILN_OK);
        kiln_status_free(st);
        kiln_graph_free(g);
        assert_no_leak(n);
        if (!failed) break;
    }
    assert_true(n < MAX_STEPS);
}

/* Renaming when the name map must grow to drop the old name: a failure
 * there must not leave the old name pointing at the node. */
static void test_rename_when_map_grows(void **state)
{
    (void)state;
    for (long n = 0; n < 8; n++) {
        kiln_graph *g = kiln_graph_new();
        kiln_value v = kiln_placeholder(g, "p0", KILN_F32, 0, NULL);
        for (int i = 1; i < 31; i++) {
            char name[16];
            snprintf(name, sizeof name, "p%d", i);
            kiln_placeholder(g, name, KILN_F32, 0, NULL);
        }
        assert_null(kiln_graph_error(g));
        ir_alloc_fail_after(n);
        kiln_value r = kiln_name(g, v, "renamed");
        ir_alloc_fail_after(-1);
        if (kiln_graph_error(g)) {
            assert_false(kiln_value_ok(r));
            assert_string_equal(kiln_value_node_name(g, v), "p0");
        } else {
            assert_true(kiln_value_ok(r));
            assert_false(kiln_value_ok(kiln_graph_find(g, "p0")));
            assert_int_equal(kiln_graph_find(g, "renamed").node, v.node);
            assert_string_equal(kiln_value_node_name(g, v), "renamed");
            kiln_status *st = kiln_status_new();
            assert_int_equal(kiln_graph_verify(g, st), KILN_OK);
            kiln_status_free(st);
        }
        kiln_graph_free(g);
        assert_no_leak(n);
    }
}

/* Setting attributes into a bag under failures: the bag remembers, and
 * kiln_op reports it instead of silently dropping the attribute. */
static void test_sweep_attrs(void **state)
{
    (void)state;
    long n;
    for (n = 0; n < MAX_STEPS; n++) {
        kiln_graph *g = kiln_graph_new();
        kiln_value x = kiln_placeholder(g, "x", KILN_F32, 0, NULL);
        ir_alloc_fail_after(n);
        kiln_attrs *a = kiln_attrs_new();
        kiln_attrs_float(a, "min", 1);
        kiln_attrs_float(a, "max", 2);
        kiln_attrs_float(a, "min", 1.5);
        kiln_value y = a ? kiln_op(g, "Clip", &x, 1, a) : kiln_value_invalid();
        bool failed = ir_alloc_failed();
        ir_alloc_fail_after(-1);
        if (failed) {
            assert_false(kiln_value_ok(y));
            if (a) assert_non_null(kiln_graph_error(g));
        } else {
            assert_true(ir_node_float(ir_graph_node(g, y), "min") == 1.5);
            assert_true(ir_node_float(ir_graph_node(g, y), "max") == 2);
        }
        kiln_attrs_free(a);
        kiln_graph_free(g);
        assert_no_leak(n);
        if (!failed) break;
    }
    assert_true(n > 0 && n < MAX_STEPS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_sweep_build),
        TU_TEST(test_sweep_session_new_reference),
        TU_TEST(test_sweep_session_new_default),
        TU_TEST(test_sweep_run_reference),
        TU_TEST(test_sweep_run_default),
        TU_TEST(test_sweep_text_and_dot),
        TU_TEST(test_sweep_verify),
        TU_TEST(test_rename_when_map_grows),
        TU_TEST(test_sweep_attrs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
