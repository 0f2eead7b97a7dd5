/* test_session.c -- sessions: feeds and fetches, computing only what is
 * needed, feed checks, symbolic dims, overriding values by feeding them,
 * request errors, variables and Assign, options, and concurrent runs (one
 * read-only session from many threads; concurrent Assign runs on a shared
 * counter). The group runs once per backend: the reference kernels, and the
 * default (compiled) backend. */
#include "common/testutil.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "ir.h"

static kiln_backend backend = KILN_BACKEND_REFERENCE;

static kiln_session *open_session(kiln_graph *g)
{
    kiln_session_options o;
    kiln_session_options_init(&o);
    o.backend = backend;
    o.threads = 2;
    kiln_status *st = kiln_status_new();
    kiln_session *s = kiln_session_new(g, &o, st);
    if (!s) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", kiln_status_message(st));
        kiln_status_free(st);
        fail_msg("kiln_session_new: %s", msg);
    }
    kiln_status_free(st);
    return s;
}

/* Runs and asserts success. */
static void run_ok(kiln_session *s, int nin, const kiln_value *in, kiln_tensor *const *vals, int nout,
                   const kiln_value *out, kiln_tensor **res, int ntg, const kiln_value *tg)
{
    kiln_status *st = kiln_status_new();
    kiln_session_run(s, in, vals, nin, out, res, nout, tg, ntg, st);
    if (kiln_status_code(st) != KILN_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", kiln_status_message(st));
        kiln_status_free(st);
        fail_msg("kiln_session_run: %s", msg);
    }
    kiln_status_free(st);
    for (int i = 0; i < nout; i++) assert_non_null(res[i]);
}

/* Runs, expects failure with a message containing each of up to three
 * substrings, and checks every output slot was set to NULL. */
static void run_fails(kiln_session *s, int nin, const kiln_value *in, kiln_tensor *const *vals, int nout,
                      const kiln_value *out, int ntg, const kiln_value *tg, int code, const char *a,
                      const char *b, const char *c)
{
    kiln_tensor *res[8];
    kiln_tensor sentinel;
    assert_true(nout <= 8);
    for (int i = 0; i < 8; i++) res[i] = &sentinel; /* must be overwritten */
    kiln_status *st = kiln_status_new();
    kiln_session_run(s, in, vals, nin, out, res, nout, tg, ntg, st);
    int got = kiln_status_code(st);
    char msg[512];
    snprintf(msg, sizeof msg, "%s", kiln_status_message(st));
    kiln_status_free(st);
    for (int i = 0; i < nout; i++)
        if (res[i]) fail_msg("output %d not NULL after a failed run (%s)", i, msg);
    if (got == KILN_OK) fail_msg("the run succeeded; expected '%s'", a);
    if (code) assert_int_equal(got, code);
    const char *want[3] = {a, b, c};
    for (int i = 0; i < 3; i++)
        if (want[i] && !strstr(msg, want[i])) fail_msg("message '%s' lacks '%s'", msg, want[i]);
}

/* ---- feeds and fetches ---- */

static void test_feed_fetch(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){2, 2});
    kiln_tensor *ct = tu_f32(1, (int64_t[]){2}, (float[]){10, 20});
    kiln_value c = kiln_constant(g, "c", ct);
    kiln_tensor_free(ct);
    kiln_value two = kiln_scalar(g, KILN_F32, 2);
    kiln_value y = kiln_add(g, kiln_mul(g, x, two), c); /* 2x + c */
    kiln_value z = kiln_relu(g, kiln_neg(g, y));
    kiln_session *s = open_session(g);
    kiln_tensor *tx = tu_f32(2, (int64_t[]){2, 2}, (float[]){1, -2, 3, -40});
    kiln_tensor *r[5];
    /* several outputs in one run, including the fed value and a constant */
    run_ok(s, 1, &x, &tx, 5, (kiln_value[]){y, z, x, c, y}, r, 0, NULL);
    tu_assert_shape(r[0], KILN_F32, 2, (int64_t[]){2, 2});
    tu_assert_close(r[0], (double[]){12, 16, 16, -60}, 4, 0, 0);
    tu_assert_close(r[1], (double[]){0, 0, 0, 60}, 4, 0, 0);
    tu_assert_close(r[2], (double[]){1, -2, 3, -40}, 4, 0, 0);
    assert_ptr_not_equal(r[2], tx); /* a new tensor, not the feed */
    tu_assert_close(r[3], (double[]){10, 20}, 2, 0, 0);
    tu_assert_close(r[4], (double[]){12, 16, 16, -60}, 4, 0, 0);
    assert_ptr_not_equal(r[0], r[4]);
    for (int i = 0; i < 5; i++) kiln_tensor_free(r[i]);
    /* the same session runs again with other data */
    float *d = kiln_tensor_data(tx);
    d[0] = 0;
    run_ok(s, 1, &x, &tx, 1, &y, r, 0, NULL);
    tu_assert_close(r[0], (double[]){10, 16, 16, -60}, 4, 0, 0);
    kiln_tensor_free(r[0]);
    /* status may be NULL */
    kiln_session_run(s, &x, &tx, 1, &y, r, 1, NULL, 0, NULL);
    assert_non_null(r[0]);
    kiln_tensor_free(r[0]);
    /* a run with nothing to do */
    run_ok(s, 0, NULL, NULL, 0, NULL, NULL, 0, NULL);
    kiln_tensor_free(tx);
    kiln_session_free(s);
    kiln_graph_free(g);
}

static void test_only_needed(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value a = kiln_placeholder(g, "a", KILN_F64, 1, (int64_t[]){3});
    kiln_value b = kiln_placeholder(g, "b", KILN_F64, 2, (int64_t[]){-1, 3});
    kiln_value ya = kiln_abs(g, a);
    kiln_value yb = kiln_add(g, b, ya);
    kiln_value k = kiln_mul(g, kiln_scalar(g, KILN_F64, 3), kiln_scalar(g, KILN_F64, 4));
    kiln_session *s = open_session(g);
    kiln_tensor *ta = tu_f64(1, (int64_t[]){3}, (double[]){-1, 2, -3});
    kiln_tensor *r[2];
    /* b is not fed and not needed */
    run_ok(s, 1, &a, &ta, 1, &ya, r, 0, NULL);
    tu_assert_close(r[0], (double[]){1, 2, 3}, 3, 0, 0);
    kiln_tensor_free(r[0]);
    /* nothing fed at all */
    run_ok(s, 0, NULL, NULL, 1, &k, r, 0, NULL);
    tu_assert_shape(r[0], KILN_F64, 0, NULL);
    tu_assert_close(r[0], (double[]){12}, 1, 0, 0);
    kiln_tensor_free(r[0]);
    /* b is needed: the error names it and its type */
    run_fails(s, 1, &a, &ta, 2, (kiln_value[]){ya, yb}, 0, NULL, KILN_ERR_INVALID_ARGUMENT,
              "Placeholder 'b'", "f64[?,3]", "must be fed");
    run_fails(s, 0, NULL, NULL, 1, &ya, 0, NULL, KILN_ERR_INVALID_ARGUMENT, "Placeholder 'a'",
              "f64[3]", "must be fed");
    /* feeding both works */
    kiln_tensor *tb = tu_f64(2, (int64_t[]){2, 3}, (double[]){1, 1, 1, 2, 2, 2});
    run_ok(s, 2, (kiln_value[]){b, a}, (kiln_tensor *[]){tb, ta}, 1, &yb, r, 0, NULL);
    tu_assert_close(r[0], (double[]){2, 3, 4, 3, 4, 5}, 6, 0, 0);
    kiln_tensor_free(r[0]);
    kiln_tensor_free(tb);
    kiln_tensor_free(ta);
    kiln_session_free(s);
    kiln_graph_free(g);
}

static void test_bad_feeds(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){-1, 3});
    kiln_value q = kiln_placeholder(g, "q", KILN_I32, 1, (int64_t[]){2});
    kiln_value y = kiln_relu(g, x);
    kiln_session *s = open_session(g);
    kiln_tensor *t64 = kiln_tensor_new(KILN_F64, 2, (int64_t[]){2, 3});
    run_fails(s, 1, &x, &t64, 1, &y, 0, NULL, KILN_ERR_INVALID_ARGUMENT, "Placeholder 'x'",
              "expects f32[?,3]", "fed tensor is f64[2,3]");
    kiln_tensor *t24 = kiln_tensor_new(KILN_F32, 2, (int64_t[]){2, 4});
    run_fails(s, 1, &x, &t24, 1, &y, 0, NULL, KILN_ERR_INVALID_ARGUMENT, "Placeholder 'x'",
              "expects f32[?,3]", "fed tensor is f32[2,4]");
    kiln_tensor *t3 = kiln_tensor_new(KILN_F32, 1, (int64_t[]){3});
    run_fails(s, 1, &x, &t3, 1, &y, 0, NULL, KILN_ERR_INVALID_ARGUMENT, "Placeholder 'x'",
              "expects f32[?,3]", "fed tensor is f32[3]");
    kiln_tensor *null_t = NULL;
    run_fails(s, 1, &x, &null_t, 1, &y, 0, NULL, KILN_ERR_INVALID_ARGUMENT, "Placeholder 'x'",
              "NULL", NULL);
    /* a bad feed is an error even where the fetch does not need the value */
    kiln_tensor *t23 = kiln_tensor_new(KILN_F32, 2, (int64_t[]){2, 3});
    run_fails(s, 2, (kiln_value[]){x, q}, (kiln_tensor *[]){t23, t3}, 1, &y, 0, NULL,
              KILN_ERR_INVALID_ARGUMENT, "Placeholder 'q'", "expects i32[2]", "f32[3]");
    kiln_tensor *r;
    run_ok(s, 1, &x, &t23, 1, &y, &r, 0, NULL);
    tu_assert_shape(r, KILN_F32, 2, (int64_t[]){2, 3});
    kiln_tensor_free(r);
    kiln_tensor_free(t23);
    kiln_tensor_free(t24);
    kiln_tensor_free(t3);
    kiln_tensor_free(t64);
    kiln_session_free(s);
    kiln_graph_free(g);
}

static void test_symbolic_dims(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){-1, 3});
    kiln_value w = kiln_placeholder(g, "w", KILN_F32, 1, (int64_t[]){-1});
    kiln_tensor *ct = tu_f32(1, (int64_t[]){3}, (float[]){1, 2, 3});
    kiln_value y = kiln_mul(g, x, kiln_constant(g, "c", ct));
    kiln_tensor_free(ct);
    kiln_session *s = open_session(g);
    for (int64_t rows = 0; rows <= 4; rows += 2) {
        kiln_tensor *tx = kiln_tensor_new(KILN_F32, 2, (int64_t[]){rows, 3});
        float *d = kiln_tensor_data(tx);
        for (int64_t i = 0; i < rows * 3; i++) d[i] = (float)i;
        kiln_tensor *r;
        run_ok(s, 1, &x, &tx, 1, &y, &r, 0, NULL);
        tu_assert_shape(r, KILN_F32, 2, (int64_t[]){rows, 3});
        double want[12];
        for (int64_t i = 0; i < rows * 3; i++) want[i] = (double)i * (double)(i % 3 + 1);
        tu_assert_close(r, want, (size_t)(rows * 3), 0, 0);
        kiln_tensor_free(r);
        kiln_tensor_free(tx);
    }
    /* Two symbolic dims meet at run time: they must agree or broadcast. */
    kiln_value v = kiln_add(g, x, w); /* [?,3] + [?] */
    kiln_session_free(s);
    s = open_session(g);
    kiln_tensor *tx = tu_f32(2, (int64_t[]){2, 3}, (float[]){0, 1, 2, 3, 4, 5});
    kiln_tensor *tw = tu_f32(1, (int64_t[]){3}, (float[]){10, 20, 30});
    kiln_tensor *r;
    run_ok(s, 2, (kiln_value[]){x, w}, (kiln_tensor *[]){tx, tw}, 1, &v, &r, 0, NULL);
    tu_assert_close(r, (double[]){10, 21, 32, 13, 24, 35}, 6, 0, 0);
    kiln_tensor_free(r);
    kiln_tensor *tw1 = tu_f32(1, (int64_t[]){1}, (float[]){100});
    run_ok(s, 2, (kiln_value[]){x, w}, (kiln_tensor *[]){tx, tw1}, 1, &v, &r, 0, NULL);
    tu_assert_close(r, (double[]){100, 101, 102, 103, 104, 105}, 6, 0, 0);
    kiln_tensor_free(r);
    kiln_tensor *tw4 = kiln_tensor_new(KILN_F32, 1, (int64_t[]){4});
    run_fails(s, 2, (kiln_value[]){x, w}, (kiln_tensor *[]){tx, tw4}, 1, &v, 0, NULL, 0, "Add",
              "f32[4]", NULL);
    kiln_tensor_free(tw4);
    kiln_tensor_free(tw1);
    kiln_tensor_free(tw);
    kiln_tensor_free(tx);
    kiln_session_free(s);
    kiln_graph_free(g);
}

static void test_feed_overrides(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 1, (int64_t[]){2});
    kiln_value c = kiln_scalar(g, KILN_F32, 5);
    kiln_value y = kiln_add(g, x, c);
    kiln_value z = kiln_neg(g, y);
    kiln_tensor *vt = tu_f32(1, (int64_t[]){2}, (float[]){7, 8});
    kiln_value v = kiln_variable(g, "v", vt);
    kiln_tensor_free(vt);
    kiln_value zv = kiln_neg(g, v);
    kiln_session *s = open_session(g);
    kiln_tensor *r[2];
    /* feed the intermediate y: x is not needed any more */
    kiln_tensor *ty = tu_f32(1, (int64_t[]){2}, (float[]){1, 2});
    run_ok(s, 1, &y, &ty, 2, (kiln_value[]){z, y}, r, 0, NULL);
    tu_assert_close(r[0], (double[]){-1, -2}, 2, 0, 0);
    tu_assert_close(r[1], (double[]){1, 2}, 2, 0, 0);
    kiln_tensor_free(r[0]);
    kiln_tensor_free(r[1]);
    /* feed a constant (a scalar) */
    kiln_tensor *tc = tu_f32(0, NULL, (float[]){100});
    kiln_tensor *tx = tu_f32(1, (int64_t[]){2}, (float[]){1, 2});
    run_ok(s, 2, (kiln_value[]){x, c}, (kiln_tensor *[]){tx, tc}, 1, &z, r, 0, NULL);
    tu_assert_close(r[0], (double[]){-101, -102}, 2, 0, 0);
    kiln_tensor_free(r[0]);
    /* the feed must match the value's type */
    run_fails(s, 2, (kiln_value[]){x, c}, (kiln_tensor *[]){tx, tx}, 1, &z, 0, NULL,
              KILN_ERR_INVALID_ARGUMENT, "Constant", "expects f32[]", "f32[2]");
    /* feed a variable: this run only; the variable keeps its value */
    run_ok(s, 1, &v, &ty, 1, &zv, r, 0, NULL);
    tu_assert_close(r[0], (double[]){-1, -2}, 2, 0, 0);
    kiln_tensor_free(r[0]);
    run_ok(s, 0, NULL, NULL, 1, &zv, r, 0, NULL);
    tu_assert_close(r[0], (double[]){-7, -8}, 2, 0, 0);
    kiln_tensor_free(r[0]);
    kiln_tensor_free(tc);
    kiln_tensor_free(tx);
    kiln_tensor_free(ty);
    kiln_session_free(s);
    kiln_graph_free(g);
}

static void test_request_errors(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 1, (int64_t[]){2});
    kiln_value y = kiln_relu(g, x);
    kiln_session *s = open_session(g);
    kiln_tensor *tx = tu_f32(1, (int64_t[]){2}, (float[]){1, -1});
    kiln_value later = kiln_neg(g, y); /* added after the session */
    assert_true(kiln_value_ok(later));

    run_fails(s, 2, (kiln_value[]){x, x}, (kiln_tensor *[]){tx, tx}, 1, &y, 0, NULL,
              KILN_ERR_INVALID_ARGUMENT, "'x' is fed twice", "inputs 0 and 1", NULL);
    run_fails(s, 1, &x, &tx, 2, (kiln_value[]){y, {99, 0}}, 0, NULL, KILN_ERR_INVALID_ARGUMENT,
              "output 1 (99:0)", "not a value of the session's graph", NULL);
    run_fails(s, 1, &x, &tx, 1, (kiln_value[]){{1, 3}}, 0, NULL, KILN_ERR_INVALID_ARGUMENT,
              "output 0 (1:3)", NULL, NULL);
    run_fails(s, 1, &x, &tx, 1, (kiln_value[]){kiln_value_invalid()}, 0, NULL,
              KILN_ERR_INVALID_ARGUMENT, "output 0 (-1:-1)", NULL, NULL);
    run_fails(s, 1, &x, &tx, 1, &later, 0, NULL, KILN_ERR_INVALID_ARGUMENT, "output 0 (2:0)",
              "added after the session was created", NULL);
    run_fails(s, 1, &later, &tx, 1, &y, 0, NULL, KILN_ERR_INVALID_ARGUMENT, "input 0 (2:0)",
              "added after the session", NULL);
    run_fails(s, 1, &x, &tx, 0, NULL, 1, &later, KILN_ERR_INVALID_ARGUMENT, "target 0 (2:0)",
              "added after the session", NULL);
    /* NULL arrays with non-zero counts, negative counts */
    run_fails(s, 1, NULL, &tx, 1, &y, 0, NULL, KILN_ERR_INVALID_ARGUMENT, "array is NULL",
              "inputs 1", NULL);
    run_fails(s, 1, &x, NULL, 1, &y, 0, NULL, KILN_ERR_INVALID_ARGUMENT, "array is NULL", NULL,
              NULL);
    run_fails(s, 1, &x, &tx, 1, NULL, 0, NULL, KILN_ERR_INVALID_ARGUMENT, "array is NULL",
              "outputs 1", NULL);
    run_fails(s, 1, &x, &tx, 1, &y, 2, NULL, KILN_ERR_INVALID_ARGUMENT, "array is NULL",
              "targets 2", NULL);
    run_fails(s, -1, &x, &tx, 1, &y, 0, NULL, KILN_ERR_INVALID_ARGUMENT, "negative", NULL, NULL);
    kiln_status *st = kiln_status_new();
    kiln_session_run(s, &x, &tx, 1, &y, NULL, 1, NULL, 0, st); /* output array NULL */
    assert_int_equal(kiln_status_code(st), KILN_ERR_INVALID_ARGUMENT);
    kiln_tensor *r = tx;
    kiln_session_run(NULL, &x, &tx, 1, &y, &r, 1, NULL, 0, st);
    assert_null(r);
    assert_int_equal(kiln_status_code(st), KILN_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(kiln_status_message(st), "session is NULL"));
    /* after all the failures the session still works */
    run_ok(s, 1, &x, &tx, 1, &y, &r, 0, NULL);
    tu_assert_close(r, (double[]){1, 0}, 2, 0, 0);
    kiln_tensor_free(r);
    kiln_status_free(st);
    kiln_tensor_free(tx);
    kiln_session_free(s);
    kiln_graph_free(g);
}

/* ---- variables ---- */

static void test_variables_and_assign(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_tensor *zero = kiln_tensor_new(KILN_I64, 0, NULL);
    kiln_value v = kiln_variable(g, "counter", zero);
    kiln_value one = kiln_scalar(g, KILN_I64, 1);
    kiln_value inc = kiln_name(g, kiln_assign(g, v, kiln_add(g, v, one)), "inc");
    kiln_value twice = kiln_mul(g, v, kiln_scalar(g, KILN_I64, 2));
    assert_null(kiln_graph_error(g));
    kiln_session *s = open_session(g);
    for (int i = 0; i < 3; i++) run_ok(s, 0, NULL, NULL, 0, NULL, NULL, 1, &inc);
    kiln_status *st = kiln_status_new();
    kiln_tensor *cur = kiln_session_variable(s, v, st);
    assert_int_equal(kiln_status_code(st), KILN_OK);
    tu_assert_ints(cur, (int64_t[]){3}, 1);
    /* a copy: changing it changes nothing */
    *(int64_t *)kiln_tensor_data(cur) = 1000;
    kiln_tensor_free(cur);
    cur = kiln_session_variable(s, v, st);
    tu_assert_ints(cur, (int64_t[]){3}, 1);
    kiln_tensor_free(cur);
    /* reads see the value across runs */
    kiln_tensor *r;
    run_ok(s, 0, NULL, NULL, 1, &twice, &r, 0, NULL);
    tu_assert_ints(r, (int64_t[]){6}, 1);
    kiln_tensor_free(r);
    /* fetching the Assign runs it and returns the new value */
    run_ok(s, 0, NULL, NULL, 1, &inc, &r, 0, NULL);
    tu_assert_ints(r, (int64_t[]){4}, 1);
    kiln_tensor_free(r);
    /* the graph's initial value is untouched; a second session starts over */
    kiln_session *s2 = open_session(g);
    cur = kiln_session_variable(s2, v, st);
    tu_assert_ints(cur, (int64_t[]){0}, 1);
    kiln_tensor_free(cur);
    run_ok(s2, 0, NULL, NULL, 0, NULL, NULL, 1, &inc);
    kiln_session_free(s2);
    cur = kiln_session_variable(s, v, st);
    tu_assert_ints(cur, (int64_t[]){4}, 1);
    kiln_tensor_free(cur);
    /* not a variable */
    assert_null(kiln_session_variable(s, one, st));
    assert_int_equal(kiln_status_code(st), KILN_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(kiln_status_message(st), "not a variable"));
    assert_null(kiln_session_variable(s, (kiln_value){77, 0}, st));
    assert_null(kiln_session_variable(s, kiln_value_invalid(), st));
    assert_null(kiln_session_variable(NULL, v, st));
    kiln_status_free(st);
    kiln_tensor_free(zero);
    kiln_session_free(s);
    kiln_graph_free(g);
}

static void test_assign_from_feed(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_tensor *init = tu_f32(1, (int64_t[]){3}, (float[]){1, 2, 3});
    kiln_value v = kiln_variable(g, "w", init);
    kiln_tensor_free(init);
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 1, (int64_t[]){3});
    kiln_value set = kiln_assign(g, v, x);
    kiln_value sum = kiln_add(g, v, v);
    kiln_session *s = open_session(g);
    kiln_tensor *tx = tu_f32(1, (int64_t[]){3}, (float[]){-1, 0.5f, 9});
    run_ok(s, 1, &x, &tx, 0, NULL, NULL, 1, &set);
    kiln_tensor_free(tx); /* the variable holds its own copy */
    kiln_tensor *r;
    run_ok(s, 0, NULL, NULL, 1, &sum, &r, 0, NULL);
    tu_assert_close(r, (double[]){-2, 1, 18}, 3, 0, 0);
    kiln_tensor_free(r);
    /* a failed assigning run leaves the variable alone */
    run_fails(s, 0, NULL, NULL, 0, NULL, 1, &set, KILN_ERR_INVALID_ARGUMENT, "Placeholder 'x'",
              NULL, NULL);
    kiln_status *st = kiln_status_new();
    kiln_tensor *cur = kiln_session_variable(s, v, st);
    tu_assert_close(cur, (double[]){-1, 0.5, 9}, 3, 0, 0);
    kiln_tensor_free(cur);
    kiln_status_free(st);
    /* Assign to a non-variable is a graph error */
    kiln_value bad = kiln_assign(g, x, x);
    assert_false(kiln_value_ok(bad));
    tu_assert_graph_error(g, "Assign", "must be a Variable", "Placeholder 'x'", NULL);
    kiln_session_free(s);
    kiln_graph_free(g);
}

/* ---- sessions ---- */

static void test_options_and_errors(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 0, NULL);
    kiln_value y = kiln_neg(g, x);
    kiln_status *st = kiln_status_new();
    kiln_session_options o;
    kiln_session_options_init(&o);
    assert_int_equal(o.backend, KILN_BACKEND_DEFAULT);
    assert_int_equal(o.threads, 0);
    assert_int_equal(o.opt_level, 2);
    kiln_session_options_init(NULL);

    /* the reference backend, chosen explicitly */
    o.backend = KILN_BACKEND_REFERENCE;
    kiln_session *s = kiln_session_new(g, &o, st);
    assert_non_null(s);
    assert_int_equal(kiln_status_code(st), KILN_OK);
    kiln_tensor *tx = tu_f32(0, NULL, (float[]){2.5f});
    kiln_tensor *r;
    run_ok(s, 1, &x, &tx, 1, &y, &r, 0, NULL);
    tu_assert_close(r, (double[]){-2.5}, 1, 0, 0);
    kiln_tensor_free(r);
    kiln_session_free(s);

    /* bad options */
    o.backend = (kiln_backend)7;
    assert_null(kiln_session_new(g, &o, st));
    assert_non_null(strstr(kiln_status_message(st), "unknown backend 7"));
    kiln_session_options_init(&o);
    o.threads = -2;
    assert_null(kiln_session_new(g, &o, st));
    assert_non_null(strstr(kiln_status_message(st), "threads is -2"));
    kiln_session_options_init(&o);
    o.opt_level = 4;
    assert_null(kiln_session_new(g, &o, st));
    assert_non_null(strstr(kiln_status_message(st), "opt_level is 4"));
    assert_null(kiln_session_new(NULL, NULL, st));
    assert_int_equal(kiln_status_code(st), KILN_ERR_INVALID_ARGUMENT);
    assert_null(kiln_session_new(NULL, NULL, NULL));

    /* inputs, outputs, find, graph */
    s = open_session(g);
    kiln_value vs[4];
    assert_int_equal(kiln_session_inputs(s, vs, 4), 1);
    assert_int_equal(vs[0].node, x.node);
    assert_int_equal(kiln_session_outputs(s, vs, 4), 1);
    assert_int_equal(vs[0].node, y.node);
    assert_int_equal(kiln_session_find(s, "x").node, x.node);
    assert_false(kiln_value_ok(kiln_session_find(s, "nope")));
    assert_false(kiln_value_ok(kiln_session_find(s, NULL)));
    assert_ptr_equal(kiln_session_graph(s), g);
    kiln_placeholder(g, "late", KILN_F32, 0, NULL);
    assert_false(kiln_value_ok(kiln_session_find(s, "late"))); /* not visible */
    assert_int_equal(kiln_session_inputs(s, vs, 4), 1);
    kiln_session_free(s);
    assert_false(kiln_value_ok(kiln_session_find(NULL, "x")));
    assert_null(kiln_session_graph(NULL));
    assert_int_equal(kiln_session_inputs(NULL, vs, 4), 0);
    assert_int_equal(kiln_session_outputs(NULL, vs, 4), 0);

    /* a graph with an error cannot open a session */
    kiln_op(g, "Cast", &x, 1, NULL);
    assert_null(kiln_session_new(g, NULL, st));
    assert_int_equal(kiln_status_code(st), KILN_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(kiln_status_message(st), "missing required attribute 'to'"));

    /* NULLs are fine to free */
    kiln_session_free(NULL);
    kiln_graph_free(NULL);
    kiln_tensor_free(NULL);
    kiln_status_free(NULL);
    kiln_attrs_free(NULL);
    kiln_free(NULL);
    kiln_tensor_free(tx);
    kiln_status_free(st);
    kiln_graph_free(g);
}

/* ---- threads ---- */

enum { NTHREADS = 8, NRUNS = 200, NASSIGN = 50 };

typedef struct {
    kiln_session *s;
    kiln_value x, out[2];
    const kiln_tensor *want[2];
    int thread;
    int failures;
    char msg[256];
} thread_arg;

static void *reader(void *p)
{
    thread_arg *a = p;
    kiln_status *st = kiln_status_new();
    kiln_tensor *tx = kiln_tensor_new(KILN_F32, 2, (int64_t[]){4, 5});
    if (!st || !tx) {
        a->failures++;
        goto done;
    }
    float *d = kiln_tensor_data(tx);
    for (int i = 0; i < 20; i++) d[i] = (float)i * 0.25f - 2;
    for (int run = 0; run < NRUNS; run++) {
        kiln_tensor *r[2] = {NULL, NULL};
        kiln_session_run(a->s, &a->x, &tx, 1, a->out, r, 2, NULL, 0, st);
        if (kiln_status_code(st) != KILN_OK) {
            snprintf(a->msg, sizeof a->msg, "%s", kiln_status_message(st));
            a->failures++;
        } else {
            for (int k = 0; k < 2; k++)
                if (kiln_tensor_nbytes(r[k]) != kiln_tensor_nbytes(a->want[k]) ||
                    memcmp(kiln_tensor_const_data(r[k]), kiln_tensor_const_data(a->want[k]),
                           kiln_tensor_nbytes(r[k])) != 0) {
                    snprintf(a->msg, sizeof a->msg, "thread %d run %d output %d differs", a->thread,
                             run, k);
                    a->failures++;
                }
        }
        kiln_tensor_free(r[0]);
        kiln_tensor_free(r[1]);
    }
done:
    kiln_tensor_free(tx);
    kiln_status_free(st);
    return NULL;
}

static void test_threads_read_only(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){-1, 5});
    kiln_tensor *wt = tu_random(KILN_F32, 1, (int64_t[]){5}, -1, 1, 7);
    kiln_value w = kiln_variable(g, "w", wt);
    kiln_tensor_free(wt);
    kiln_value y = kiln_tanh(g, kiln_add(g, kiln_mul(g, x, w), kiln_scalar(g, KILN_F32, 0.5)));
    kiln_value z = kiln_sigmoid(g, kiln_sub(g, y, x));
    assert_null(kiln_graph_error(g));
    kiln_session *s = open_session(g);

    /* single-threaded results first */
    kiln_tensor *tx = kiln_tensor_new(KILN_F32, 2, (int64_t[]){4, 5});
    float *d = kiln_tensor_data(tx);
    for (int i = 0; i < 20; i++) d[i] = (float)i * 0.25f - 2;
    kiln_tensor *want[2];
    run_ok(s, 1, &x, &tx, 2, (kiln_value[]){y, z}, want, 0, NULL);
    kiln_tensor_free(tx);

    pthread_t th[NTHREADS];
    thread_arg args[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        args[i] = (thread_arg){.s = s, .x = x, .out = {y, z}, .want = {want[0], want[1]}, .thread = i};
        assert_int_equal(pthread_create(&th[i], NULL, reader, &args[i]), 0);
    }
    for (int i = 0; i < NTHREADS; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < NTHREADS; i++)
        if (args[i].failures) fail_msg("thread %d: %d failures: %s", i, args[i].failures, args[i].msg);
    kiln_tensor_free(want[0]);
    kiln_tensor_free(want[1]);
    kiln_session_free(s);
    kiln_graph_free(g);
}

typedef struct {
    kiln_session *s;
    kiln_value target, var;
    bool read;
    int failures;
    char msg[256];
} counter_arg;

static void *counter_thread(void *p)
{
    counter_arg *a = p;
    kiln_status *st = kiln_status_new();
    for (int run = 0; run < NASSIGN; run++) {
        if (a->read) {
            /* readers see a whole value: an integer count in range */
            kiln_tensor *r = NULL;
            kiln_session_run(a->s, NULL, NULL, 0, &a->var, &r, 1, NULL, 0, st);
            if (kiln_status_code(st) != KILN_OK) {
                a->failures++;
                snprintf(a->msg, sizeof a->msg, "%s", kiln_status_message(st));
            } else {
                double v = *(const double *)kiln_tensor_const_data(r);
                if (v < 0 || v > NTHREADS * NASSIGN || v != (double)(int64_t)v) {
                    a->failures++;
                    snprintf(a->msg, sizeof a->msg, "read %g", v);
                }
            }
            kiln_tensor_free(r);
        } else {
            kiln_session_run(a->s, NULL, NULL, 0, NULL, NULL, 0, &a->target, 1, st);
            if (kiln_status_code(st) != KILN_OK) {
                a->failures++;
                snprintf(a->msg, sizeof a->msg, "%s", kiln_status_message(st));
            }
        }
    }
    kiln_status_free(st);
    return NULL;
}

static void test_threads_assign_counter(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_tensor *zero = kiln_tensor_new(KILN_F64, 0, NULL);
    kiln_value v = kiln_variable(g, "n", zero);
    kiln_tensor_free(zero);
    kiln_value inc = kiln_assign(g, v, kiln_add(g, v, kiln_scalar(g, KILN_F64, 1)));
    kiln_value readv = kiln_identity(g, v);
    assert_null(kiln_graph_error(g));
    kiln_session *s = open_session(g);
    pthread_t th[NTHREADS + 2];
    counter_arg args[NTHREADS + 2];
    for (int i = 0; i < NTHREADS + 2; i++) {
        args[i] = (counter_arg){.s = s, .target = inc, .var = readv, .read = i >= NTHREADS};
        assert_int_equal(pthread_create(&th[i], NULL, counter_thread, &args[i]), 0);
    }
    for (int i = 0; i < NTHREADS + 2; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < NTHREADS + 2; i++)
        if (args[i].failures) fail_msg("thread %d: %d failures: %s", i, args[i].failures, args[i].msg);
    kiln_status *st = kiln_status_new();
    kiln_tensor *cur = kiln_session_variable(s, v, st);
    tu_assert_close(cur, (double[]){NTHREADS * NASSIGN}, 1, 0, 0);
    kiln_tensor_free(cur);
    kiln_status_free(st);
    kiln_session_free(s);
    kiln_graph_free(g);
}

static int use_reference(void **state)
{
    (void)state;
    backend = KILN_BACKEND_REFERENCE;
    return 0;
}

static int use_default(void **state)
{
    (void)state;
    backend = KILN_BACKEND_DEFAULT;
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_feed_fetch),
        TU_TEST(test_only_needed),
        TU_TEST(test_bad_feeds),
        TU_TEST(test_symbolic_dims),
        TU_TEST(test_feed_overrides),
        TU_TEST(test_request_errors),
        TU_TEST(test_variables_and_assign),
        TU_TEST(test_assign_from_feed),
        TU_TEST(test_options_and_errors),
        TU_TEST(test_threads_read_only),
        TU_TEST(test_threads_assign_counter),
    };
    int fails = cmocka_run_group_tests_name("reference backend", tests, use_reference, NULL);
    fails += cmocka_run_group_tests_name("default backend", tests, use_default, NULL);
    return fails;
}
