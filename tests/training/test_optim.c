/* test_optim.c -- kiln_minimize: every optimizer's first steps on a small
 * quadratic against the textbook (PyTorch) update computed here in double,
 * independently of the graph; hand-computed first steps; Nesterov; AdamW's
 * decoupled decay; clipping by global norm; slot and counter variables;
 * bad settings; and compiled (JIT) against reference training of a small
 * classifier. */
#include "common/testutil.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define N 3

#define assert_near(a, b, eps)                                                                     \
    do {                                                                                           \
        double a_ = (a), b_ = (b);                                                                 \
        if (!(fabs(a_ - b_) <= (eps))) fail_msg("%s = %.17g, want %.17g", #a, a_, b_);            \
    } while (0)
#define STEPS 3

/* The quadratic L = 0.5 * sum(c * w^2): dL/dw = c * w. */
static const double C[N] = {1.0, 2.0, 3.0};
static const double W0[N] = {1.0, -2.0, 3.0};

/* The reference: PyTorch's update rules (torch.optim docs), in double. */
typedef struct {
    double w[N], m[N], v[N], b[N];
    int t;
} ref_state;

static void ref_step(const kiln_optimizer *o, ref_state *s)
{
    s->t++;
    for (int i = 0; i < N; i++) {
        double g = C[i] * s->w[i];
        if (o->kind != KILN_OPTIMIZER_ADAMW) g += o->weight_decay * s->w[i];
        switch (o->kind) {
        case KILN_OPTIMIZER_SGD: s->w[i] -= o->learning_rate * g; break;
        case KILN_OPTIMIZER_MOMENTUM:
            s->b[i] = s->t == 1 ? g : o->momentum * s->b[i] + g; /* torch: buf = g at first */
            s->w[i] -= o->learning_rate * (o->nesterov ? g + o->momentum * s->b[i] : s->b[i]);
            break;
        case KILN_OPTIMIZER_ADAM:
        case KILN_OPTIMIZER_ADAMW: {
            if (o->kind == KILN_OPTIMIZER_ADAMW) s->w[i] *= 1 - o->learning_rate * o->weight_decay;
            s->m[i] = o->beta1 * s->m[i] + (1 - o->beta1) * g;
            s->v[i] = o->beta2 * s->v[i] + (1 - o->beta2) * g * g;
            double mhat = s->m[i] / (1 - pow(o->beta1, s->t));
            double vhat = s->v[i] / (1 - pow(o->beta2, s->t));
            s->w[i] -= o->learning_rate * mhat / (sqrt(vhat) + o->epsilon);
            break;
        }
        case KILN_OPTIMIZER_RMSPROP:
            s->v[i] = o->rho * s->v[i] + (1 - o->rho) * g * g;
            if (o->momentum > 0) {
                s->b[i] = o->momentum * s->b[i] + g / (sqrt(s->v[i]) + o->epsilon);
                s->w[i] -= o->learning_rate * s->b[i];
            } else {
                s->w[i] -= o->learning_rate * g / (sqrt(s->v[i]) + o->epsilon);
            }
            break;
        }
    }
}

/* Builds the quadratic in dt with variable "w", minimizes with o. */
static kiln_graph *quadratic(kiln_dtype dt, const kiln_optimizer *o, kiln_value *w, kiln_value *train)
{
    kiln_graph *g = kiln_graph_new();
    int64_t n = N;
    kiln_tensor *w0 = tu_from_f64(dt, 1, &n, W0), *c = tu_from_f64(dt, 1, &n, C);
    *w = kiln_variable(g, "w", w0);
    kiln_value cw2 = kiln_mul(g, kiln_constant(g, "c", c), kiln_mul(g, *w, *w));
    kiln_value loss = kiln_mul(g, kiln_scalar(g, dt, 0.5), kiln_reduce_sum(g, cw2, NULL, 0, 0));
    kiln_tensor_free(w0);
    kiln_tensor_free(c);
    kiln_status *st = kiln_status_new();
    *train = kiln_minimize(g, loss, o, st);
    if (kiln_status_code(st) != KILN_OK) fail_msg("kiln_minimize: %s", kiln_status_message(st));
    kiln_status_free(st);
    assert_true(kiln_value_ok(*train));
    assert_int_equal(kiln_graph_verify(g, NULL), KILN_OK);
    return g;
}

static void step(kiln_session *s, kiln_value train)
{
    kiln_status *st = kiln_status_new();
    kiln_session_run(s, NULL, NULL, 0, NULL, NULL, 0, &train, 1, st);
    if (kiln_status_code(st) != KILN_OK) fail_msg("train step: %s", kiln_status_message(st));
    kiln_status_free(st);
}

static kiln_tensor *var(kiln_session *s, kiln_value v)
{
    kiln_tensor *t = kiln_session_variable(s, v, NULL);
    assert_non_null(t);
    return t;
}

/* STEPS steps with the given backend against ref_step after each step. */
static void check_optimizer(const char *what, const kiln_optimizer *o, kiln_dtype dt,
                            kiln_backend backend)
{
    kiln_value w, train;
    kiln_graph *g = quadratic(dt, o, &w, &train);
    kiln_session_options so;
    kiln_session_options_init(&so);
    so.backend = backend;
    so.threads = 1;
    kiln_status *st = kiln_status_new();
    kiln_session *s = kiln_session_new(g, &so, st);
    if (!s) fail_msg("%s: session: %s", what, kiln_status_message(st));
    ref_state r;
    memset(&r, 0, sizeof r);
    memcpy(r.w, W0, sizeof r.w);
    double rtol = dt == KILN_F64 ? 1e-12 : 2e-5, atol = dt == KILN_F64 ? 1e-13 : 1e-6;
    for (int k = 0; k < STEPS; k++) {
        step(s, train);
        ref_step(o, &r);
        kiln_tensor *got = var(s, w);
        tu_assert_close(got, r.w, N, rtol, atol);
        kiln_tensor_free(got);
    }
    kiln_session_free(s);
    kiln_status_free(st);
    kiln_graph_free(g);
}

static void check_all_backends(const char *what, const kiln_optimizer *o)
{
    check_optimizer(what, o, KILN_F64, KILN_BACKEND_REFERENCE);
    check_optimizer(what, o, KILN_F32, KILN_BACKEND_REFERENCE);
    check_optimizer(what, o, KILN_F32, KILN_BACKEND_DEFAULT);
    check_optimizer(what, o, KILN_F64, KILN_BACKEND_DEFAULT);
}

static void test_sgd(void **state)
{
    (void)state;
    kiln_optimizer o;
    kiln_optimizer_init(&o, KILN_OPTIMIZER_SGD, 0.1);
    check_all_backends("sgd", &o);
    o.weight_decay = 0.5;
    check_all_backends("sgd+wd", &o);

    /* By hand: g = c * w = [1, -4, 9]; w - 0.1 g = [0.9, -1.6, 2.1]. */
    kiln_optimizer_init(&o, KILN_OPTIMIZER_SGD, 0.1);
    kiln_value w, train;
    kiln_graph *g = quadratic(KILN_F64, &o, &w, &train);
    kiln_session *s = kiln_session_new(g, NULL, NULL);
    step(s, train);
    kiln_tensor *t = var(s, w);
    tu_assert_close(t, (double[]){0.9, -1.6, 2.1}, N, 1e-12, 0);
    kiln_tensor_free(t);
    /* Step 2: g = [0.9, -3.2, 6.3]: w = [0.81, -1.28, 1.47]. */
    step(s, train);
    t = var(s, w);
    tu_assert_close(t, (double[]){0.81, -1.28, 1.47}, N, 1e-12, 1e-15);
    kiln_tensor_free(t);
    kiln_session_free(s);
    kiln_graph_free(g);
}

static void test_momentum(void **state)
{
    (void)state;
    kiln_optimizer o;
    kiln_optimizer_init(&o, KILN_OPTIMIZER_MOMENTUM, 0.1);
    assert_true(o.momentum == 0.9);
    check_all_backends("momentum", &o);
    o.nesterov = 1;
    check_all_backends("nesterov", &o);
    o.weight_decay = 0.1;
    check_all_backends("nesterov+wd", &o);

    /* By hand, Nesterov, mu 0.9, lr 0.1, w = 1 (c = 1): step 1: g = 1,
     * b = 1, w = 1 - 0.1 (1 + 0.9) = 0.81. Step 2: g = 0.81,
     * b = 0.9 + 0.81 = 1.71, w = 0.81 - 0.1 (0.81 + 0.9 * 1.71) = 0.5751. */
    kiln_optimizer_init(&o, KILN_OPTIMIZER_MOMENTUM, 0.1);
    o.nesterov = 1;
    kiln_value w, train;
    kiln_graph *g = quadratic(KILN_F64, &o, &w, &train);
    kiln_session *s = kiln_session_new(g, NULL, NULL);
    step(s, train);
    step(s, train);
    kiln_tensor *t = var(s, w);
    assert_near(((double *)kiln_tensor_data(t))[0], 0.5751, 1e-12);
    kiln_tensor_free(t);
    t = var(s, kiln_graph_find(g, "w/momentum"));
    assert_near(((double *)kiln_tensor_data(t))[0], 1.71, 1e-12);
    kiln_tensor_free(t);
    kiln_session_free(s);
    kiln_graph_free(g);
}

static void test_adam(void **state)
{
    (void)state;
    kiln_optimizer o;
    kiln_optimizer_init(&o, KILN_OPTIMIZER_ADAM, 0.1);
    check_all_backends("adam", &o);
    o.weight_decay = 0.2;
    o.beta1 = 0.5;
    o.beta2 = 0.75;
    o.epsilon = 1e-3;
    check_all_backends("adam+wd", &o);

    /* The first Adam step moves each weight by lr * g / (|g| + eps): about
     * lr against the gradient's sign. */
    kiln_optimizer_init(&o, KILN_OPTIMIZER_ADAM, 0.1);
    kiln_value w, train;
    kiln_graph *g = quadratic(KILN_F64, &o, &w, &train);
    kiln_session *s = kiln_session_new(g, NULL, NULL);
    step(s, train);
    kiln_tensor *t = var(s, w);
    tu_assert_close(t, (double[]){0.9, -1.9, 2.9}, N, 0, 1e-7);
    kiln_tensor_free(t);
    step(s, train);
    step(s, train);
    kiln_value counter = kiln_graph_find(g, "Adam/step");
    assert_true(kiln_value_ok(counter));
    t = var(s, counter);
    tu_assert_ints(t, (int64_t[]){3}, 1);
    kiln_tensor_free(t);
    /* m after 3 steps is a variable too, of w's type. */
    t = var(s, kiln_graph_find(g, "w/adam_m"));
    tu_assert_shape(t, KILN_F64, 1, (int64_t[]){N});
    kiln_tensor_free(t);
    assert_true(kiln_value_ok(kiln_graph_find(g, "w/adam_v")));
    kiln_session_free(s);
    kiln_graph_free(g);
}

static void test_adamw_decoupled(void **state)
{
    (void)state;
    kiln_optimizer o;
    kiln_optimizer_init(&o, KILN_OPTIMIZER_ADAMW, 0.1);
    assert_true(o.weight_decay == 0.01);
    check_all_backends("adamw", &o);
    o.weight_decay = 0.5;
    check_all_backends("adamw 0.5", &o);

    /* Decoupled: the decay does not enter m and v, so the first step is
     * w (1 - lr wd) - lr sign(g) (up to eps): w = 1: 1 * 0.95 - 0.1 = 0.85.
     * Adam with L2 instead would give 1 - 0.1 = 0.9 (g + wd w keeps its
     * sign). */
    kiln_value w, train;
    kiln_graph *g = quadratic(KILN_F64, &o, &w, &train);
    kiln_session *s = kiln_session_new(g, NULL, NULL);
    step(s, train);
    kiln_tensor *t = var(s, w);
    tu_assert_close(t, (double[]){0.85, -2 * 0.95 + 0.1, 3 * 0.95 - 0.1}, N, 0, 1e-7);
    kiln_tensor_free(t);
    kiln_session_free(s);
    kiln_graph_free(g);
}

static void test_rmsprop(void **state)
{
    (void)state;
    kiln_optimizer o;
    kiln_optimizer_init(&o, KILN_OPTIMIZER_RMSPROP, 0.01);
    assert_true(o.rho == 0.99 && o.momentum == 0);
    check_all_backends("rmsprop", &o);
    o.momentum = 0.5;
    o.weight_decay = 0.1;
    check_all_backends("rmsprop+momentum", &o);

    /* By hand: v = 0.01 g^2, so the first step is lr * g / (0.1 |g|) =
     * 10 lr against the sign: w = 1 - 0.1. */
    kiln_optimizer_init(&o, KILN_OPTIMIZER_RMSPROP, 0.01);
    kiln_value w, train;
    kiln_graph *g = quadratic(KILN_F64, &o, &w, &train);
    kiln_session *s = kiln_session_new(g, NULL, NULL);
    step(s, train);
    kiln_tensor *t = var(s, w);
    tu_assert_close(t, (double[]){0.9, -1.9, 2.9}, N, 0, 1e-6);
    kiln_tensor_free(t);
    kiln_session_free(s);
    kiln_graph_free(g);
}

/* Two variables, L = 0.5 (|a|^2 + |b|^2), a = [3, 0], b = [4]: the
 * gradients are a and b, the global norm 5. */
static void clip_case(double clip, const double *want_a, const double *want_b)
{
    kiln_graph *g = kiln_graph_new();
    kiln_tensor *a0 = tu_f32(1, (int64_t[]){2}, (float[]){3, 0});
    kiln_tensor *b0 = tu_f32(1, (int64_t[]){1}, (float[]){4});
    kiln_value a = kiln_variable(g, "a", a0), b = kiln_variable(g, "b", b0);
    kiln_tensor_free(a0);
    kiln_tensor_free(b0);
    kiln_value ss = kiln_add(g, kiln_reduce_sum(g, kiln_mul(g, a, a), NULL, 0, 0),
                             kiln_reduce_sum(g, kiln_mul(g, b, b), NULL, 0, 0));
    kiln_value loss = kiln_mul(g, kiln_scalar(g, KILN_F32, 0.5), ss);
    kiln_optimizer o;
    kiln_optimizer_init(&o, KILN_OPTIMIZER_SGD, 1.0);
    o.clip_global_norm = clip;
    kiln_value train = kiln_minimize(g, loss, &o, NULL);
    assert_true(kiln_value_ok(train));
    for (int be = 0; be < 2; be++) {
        kiln_session_options so;
        kiln_session_options_init(&so);
        so.backend = be ? KILN_BACKEND_DEFAULT : KILN_BACKEND_REFERENCE;
        kiln_session *s = kiln_session_new(g, &so, NULL);
        assert_non_null(s);
        step(s, train);
        kiln_tensor *ta = var(s, a), *tb = var(s, b);
        tu_assert_close(ta, want_a, 2, 1e-6, 1e-7);
        tu_assert_close(tb, want_b, 1, 1e-6, 1e-7);
        kiln_tensor_free(ta);
        kiln_tensor_free(tb);
        kiln_session_free(s);
    }
    kiln_graph_free(g);
}

static void test_clip_global_norm(void **state)
{
    (void)state;
    /* clip 1 < 5: gradients scaled by 1/5: a = [3 - 0.6, 0], b = [4 - 0.8]. */
    clip_case(1.0, (double[]){2.4, 0}, (double[]){3.2});
    /* clip 10 >= 5: unchanged: w - g = 0. */
    clip_case(10.0, (double[]){0, 0}, (double[]){0});
}

static void test_var_list_and_names(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_tensor *one = tu_f32(0, NULL, (float[]){1});
    kiln_value a = kiln_variable(g, "a", one), b = kiln_variable(g, "b", one);
    kiln_tensor_free(one);
    kiln_value loss = kiln_mul(g, a, b); /* d/da = b = 1, d/db = a = 1 */
    kiln_optimizer o;
    kiln_optimizer_init(&o, KILN_OPTIMIZER_ADAM, 0.5);
    o.var_list = &a;
    o.nvar_list = 1;
    kiln_value t1 = kiln_minimize(g, loss, &o, NULL);
    assert_true(kiln_value_ok(t1));
    /* A second optimizer on the same graph gets fresh names. */
    kiln_value t2 = kiln_minimize(g, loss, &o, NULL);
    assert_true(kiln_value_ok(t2));
    assert_true(kiln_value_ok(kiln_graph_find(g, "a/adam_m")));
    assert_true(kiln_value_ok(kiln_graph_find(g, "a/adam_m_1")));
    assert_true(kiln_value_ok(kiln_graph_find(g, "Adam/step")));
    assert_true(kiln_value_ok(kiln_graph_find(g, "Adam_1/step")));
    assert_false(kiln_value_ok(kiln_graph_find(g, "b/adam_m")));
    kiln_session *s = kiln_session_new(g, NULL, NULL);
    step(s, t1);
    kiln_tensor *ta = var(s, a), *tb = var(s, b);
    assert_near(((float *)kiln_tensor_data(ta))[0], 0.5f, 1e-6);
    assert_near(((float *)kiln_tensor_data(tb))[0], 1.0f, 0);
    kiln_tensor_free(ta);
    kiln_tensor_free(tb);
    /* The train op's value: first elements of a, a/adam_m, a/adam_v, step. */
    kiln_tensor *out = NULL;
    kiln_session_run(s, NULL, NULL, 0, &t1, &out, 1, NULL, 0, NULL);
    assert_non_null(out);
    tu_assert_shape(out, KILN_F32, 1, (int64_t[]){4});
    kiln_tensor_free(out);
    kiln_session_free(s);
    kiln_graph_free(g);
}

static void test_errors(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_tensor *one = tu_f32(0, NULL, (float[]){1});
    kiln_value a = kiln_variable(g, "a", one);
    kiln_value c = kiln_constant(g, "c", one);
    kiln_tensor_free(one);
    kiln_value loss = kiln_mul(g, a, a);
    kiln_status *st = kiln_status_new();
    kiln_optimizer o;
    kiln_optimizer_init(&o, KILN_OPTIMIZER_ADAM, 0.1);
    o.beta1 = 1.0;
    assert_false(kiln_value_ok(kiln_minimize(g, loss, &o, st)));
    assert_int_equal(kiln_status_code(st), KILN_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(kiln_status_message(st), "beta1 is 1"));
    kiln_optimizer_init(&o, KILN_OPTIMIZER_SGD, -1);
    assert_false(kiln_value_ok(kiln_minimize(g, loss, &o, st)));
    assert_non_null(strstr(kiln_status_message(st), "learning_rate is -1"));
    kiln_optimizer_init(&o, KILN_OPTIMIZER_SGD, 0.1);
    o.nesterov = 1;
    assert_false(kiln_value_ok(kiln_minimize(g, loss, &o, st)));
    assert_non_null(strstr(kiln_status_message(st), "nesterov"));
    kiln_optimizer_init(&o, KILN_OPTIMIZER_SGD, 0.1);
    assert_false(kiln_value_ok(kiln_minimize(g, kiln_mul(g, c, c), &o, st)));
    assert_non_null(strstr(kiln_status_message(st), "depends on no floating-point variable"));
    o.var_list = &c;
    o.nvar_list = 1;
    assert_false(kiln_value_ok(kiln_minimize(g, loss, &o, st)));
    assert_non_null(strstr(kiln_status_message(st), "var_list[0] ('c', Constant f32[])"));
    kiln_value idx = kiln_argmax(g, kiln_reshape(g, a, (int64_t[]){1}, 1), 0, 0);
    kiln_optimizer_init(&o, KILN_OPTIMIZER_SGD, 0.1);
    assert_false(kiln_value_ok(kiln_minimize(g, idx, &o, st)));
    assert_non_null(strstr(kiln_status_message(st), "must be floating point"));
    assert_null(kiln_graph_error(g));
    kiln_status_free(st);
    kiln_graph_free(g);
}

/* A small softmax classifier trained with Adam for several steps: the JIT
 * and the reference backends give the same losses and weights. */
static void test_compiled_matches_reference(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_tensor *x0 = tu_random(KILN_F32, 2, (int64_t[]){8, 5}, -1, 1, 7);
    kiln_tensor *w0 = tu_random(KILN_F32, 2, (int64_t[]){5, 4}, -0.5, 0.5, 8);
    kiln_tensor *b0 = tu_random(KILN_F32, 1, (int64_t[]){4}, -0.1, 0.1, 9);
    kiln_tensor *y0 = tu_i64(1, (int64_t[]){8}, (int64_t[]){0, 1, 2, 3, 3, 2, 1, 0});
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){8, 5});
    kiln_value y = kiln_placeholder(g, "y", KILN_I64, 1, (int64_t[]){8});
    kiln_value w = kiln_variable(g, "w", w0), b = kiln_variable(g, "b", b0);
    kiln_value logits = kiln_add(g, kiln_matmul(g, x, w), b);
    kiln_value loss = kiln_loss_softmax_cross_entropy(g, logits, y, KILN_REDUCTION_MEAN);
    kiln_optimizer o;
    kiln_optimizer_init(&o, KILN_OPTIMIZER_ADAM, 0.05);
    o.clip_global_norm = 0.5;
    kiln_value train = kiln_minimize(g, loss, &o, NULL);
    assert_true(kiln_value_ok(train));
    kiln_session *s[2];
    for (int k = 0; k < 2; k++) {
        kiln_session_options so;
        kiln_session_options_init(&so);
        so.backend = k ? KILN_BACKEND_DEFAULT : KILN_BACKEND_REFERENCE;
        s[k] = kiln_session_new(g, &so, NULL);
        assert_non_null(s[k]);
    }
    kiln_value phs[2] = {x, y};
    kiln_tensor *feeds[2] = {x0, y0};
    double first = 0, last = 0;
    for (int it = 0; it < 10; it++) {
        double l[2];
        for (int k = 0; k < 2; k++) {
            kiln_tensor *out = NULL;
            kiln_status *st = kiln_status_new();
            kiln_session_run(s[k], phs, feeds, 2, &loss, &out, 1, &train, 1, st);
            if (kiln_status_code(st)) fail_msg("step %d backend %d: %s", it, k, kiln_status_message(st));
            kiln_status_free(st);
            l[k] = ((float *)kiln_tensor_data(out))[0];
            kiln_tensor_free(out);
        }
        assert_near(l[0], l[1], 1e-5 * fabs(l[0]) + 1e-6);
        if (it == 0) first = l[0];
        last = l[0];
    }
    assert_true(last < first); /* it learns */
    kiln_tensor *wr = var(s[0], w), *wc = var(s[1], w);
    double want[20];
    for (int i = 0; i < 20; i++) want[i] = ((float *)kiln_tensor_data(wr))[i];
    tu_assert_close(wc, want, 20, 1e-4, 1e-5);
    kiln_tensor_free(wr);
    kiln_tensor_free(wc);
    for (int k = 0; k < 2; k++) kiln_session_free(s[k]);
    kiln_tensor_free(x0);
    kiln_tensor_free(w0);
    kiln_tensor_free(b0);
    kiln_tensor_free(y0);
    kiln_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_sgd),
        TU_TEST(test_momentum),
        TU_TEST(test_adam),
        TU_TEST(test_adamw_decoupled),
        TU_TEST(test_rmsprop),
        TU_TEST(test_clip_global_norm),
        TU_TEST(test_var_list_and_names),
        TU_TEST(test_errors),
        TU_TEST(test_compiled_matches_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
