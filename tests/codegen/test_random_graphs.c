/* test_random_graphs.c -- random-graph differential testing: a seeded
 * generator builds valid DAGs of registry ops over random shapes (chains,
 * fan-out, broadcasting, reused values), and the compiled backend must
 * agree with the reference executor on every sink. `make test` runs a fixed
 * set of seeds; `make fuzz-graphs SEEDS=N` (KILN_GRAPH_SEEDS=N) runs more,
 * and KILN_GRAPH_SEED=S replays one. */
#include "common/testutil.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POOL 64

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

typedef struct {
    kiln_graph *g;
    rng r;
    int n;
    kiln_value v[POOL];
    int rank[POOL];
    int64_t dims[POOL][4];
    bool used[POOL];
    int nfeeds;
    kiln_value ph[8];
    kiln_tensor *feeds[8];
} gen;

static int add(gen *G, kiln_value v)
{
    if (!kiln_value_ok(v)) fail_msg("generator built an invalid node: %s", kiln_graph_error(G->g));
    if (G->n == POOL) return -1;
    int i = G->n++;
    G->v[i] = v;
    G->rank[i] = kiln_value_dims(G->g, v, G->dims[i]);
    G->used[i] = false;
    return i;
}

/* An operand, recent values more likely. */
static int operand(gen *G)
{
    int i = G->n - 1 - pick(&G->r, G->n < 6 ? G->n : 6);
    if (pick(&G->r, 4) == 0) i = pick(&G->r, G->n);
    G->used[i] = true;
    return i;
}

static int64_t numel(const gen *G, int i)
{
    int64_t n = 1;
    for (int d = 0; d < G->rank[i]; d++) n *= G->dims[i][d];
    return n;
}

static void new_input(gen *G)
{
    int rank = 1 + pick(&G->r, 3);
    int64_t dims[4];
    for (int d = 0; d < rank; d++) dims[d] = 1 + pick(&G->r, 9);
    if (G->nfeeds < 8 && pick(&G->r, 2)) {
        char name[16];
        snprintf(name, sizeof name, "in%d", G->nfeeds);
        kiln_value p = kiln_placeholder(G->g, name, KILN_F32, rank, dims);
        G->ph[G->nfeeds] = p;
        G->feeds[G->nfeeds] = tu_random(KILN_F32, rank, dims, -2, 2, next(&G->r));
        G->nfeeds++;
        add(G, p);
    } else {
        kiln_tensor *t = tu_random(KILN_F32, rank, dims, -2, 2, next(&G->r));
        add(G, kiln_constant(G->g, NULL, t));
        kiln_tensor_free(t);
    }
}

/* A value shaped to broadcast against operand i: some dims kept, some 1,
 * sometimes fewer dims. */
static int broadcast_partner(gen *G, int i)
{
    int rank = G->rank[i] - pick(&G->r, G->rank[i] + 1);
    int64_t dims[4];
    for (int d = 0; d < rank; d++) {
        int64_t full = G->dims[i][G->rank[i] - rank + d];
        dims[d] = pick(&G->r, 3) == 0 ? 1 : full;
    }
    kiln_tensor *t = tu_random(KILN_F32, rank, dims, 0.5, 2, next(&G->r));
    int k = add(G, kiln_constant(G->g, NULL, t));
    kiln_tensor_free(t);
    return k;
}

static const char *UNARY[] = {"Tanh", "Sigmoid", "Relu", "Neg", "Abs", "Exp", "Erf", "Softplus",
                              "Gelu", "LeakyRelu", "Elu", "Identity"};
static const char *BINARY[] = {"Add", "Sub", "Mul", "Maximum", "Minimum", "Div"};

static void step(gen *G)
{
    int i = operand(G);
    kiln_graph *g = G->g;
    switch (pick(&G->r, 6)) {
    case 0: { /* unary; Exp only on bounded values */
        const char *op = UNARY[pick(&G->r, 12)];
        kiln_value x = G->v[i];
        if (!strcmp(op, "Exp")) x = kiln_tanh(g, x);
        add(G, kiln_op(g, op, &x, 1, NULL));
        break;
    }
    case 1:
    case 2: { /* binary with a broadcast partner or a same-shape value */
        const char *op = BINARY[pick(&G->r, 6)];
        int j = -1;
        for (int t = 0; t < 4 && j < 0; t++) {
            int c = pick(&G->r, G->n);
            if (c != i && G->rank[c] == G->rank[i] && !memcmp(G->dims[c], G->dims[i], sizeof(int64_t) * (size_t)G->rank[i])) j = c;
        }
        if (j < 0 || !strcmp(op, "Div")) j = broadcast_partner(G, i); /* divisors in [0.5, 2) */
        kiln_value in[2] = {G->v[i], G->v[j]};
        if (pick(&G->r, 2)) {
            kiln_value t = in[0];
            in[0] = in[1];
            in[1] = t;
        }
        if (!strcmp(op, "Div")) in[0] = G->v[i], in[1] = G->v[j];
        add(G, kiln_op(g, op, in, 2, NULL));
        break;
    }
    case 3: { /* MatMul with a fresh right operand, on the last dim */
        if (G->rank[i] == 0) {
            add(G, kiln_tanh(g, G->v[i]));
            break;
        }
        int64_t k = G->dims[i][G->rank[i] - 1];
        int64_t n = 1 + pick(&G->r, 9);
        kiln_tensor *w = tu_random(KILN_F32, 2, (int64_t[]){k, n}, -1, 1, next(&G->r));
        add(G, kiln_matmul(g, G->v[i], kiln_constant(g, NULL, w)));
        kiln_tensor_free(w);
        break;
    }
    case 4: { /* Clip or Where-by-comparison */
        if (pick(&G->r, 2)) {
            add(G, kiln_clip(g, G->v[i], -1.0 - pick(&G->r, 3), 0.5 + pick(&G->r, 3)));
        } else {
            int j = broadcast_partner(G, i);
            kiln_value cond = kiln_greater(g, G->v[i], G->v[j]);
            add(G, kiln_where(g, cond, G->v[i], kiln_neg(g, G->v[i])));
        }
        break;
    }
    default: /* a cast round trip through f64 or f16 */
        add(G, kiln_cast(g, kiln_cast(g, G->v[i], pick(&G->r, 2) ? KILN_F64 : KILN_F16), KILN_F32));
        break;
    }
    (void)numel;
}

static void run_seed(uint64_t seed)
{
    gen G;
    memset(&G, 0, sizeof G);
    G.g = kiln_graph_new();
    G.r.s = seed * 0x9e3779b97f4a7c15ull + 12345;
    for (int k = 0; k < 2 + pick(&G.r, 2); k++) new_input(&G);
    int steps = 4 + pick(&G.r, 20);
    for (int k = 0; k < steps && G.n < POOL - 4; k++) {
        if (pick(&G.r, 8) == 0) new_input(&G);
        step(&G);
    }
    /* fetch the sinks (at most 8) plus the last value */
    kiln_value outs[8];
    int nout = 0;
    for (int k = G.n - 1; k >= 0 && nout < 8; k--)
        if (!G.used[k] && strcmp(kiln_value_op_name(G.g, G.v[k]), "Constant") && strcmp(kiln_value_op_name(G.g, G.v[k]), "Placeholder"))
            outs[nout++] = G.v[k];
    if (nout == 0) outs[nout++] = G.v[G.n - 1];
    if (kiln_graph_error(G.g)) fail_msg("seed %llu: %s", (unsigned long long)seed, kiln_graph_error(G.g));
    /* f16 round trips lose precision: compare loosely enough for them */
    tu_diff(G.g, nout, outs, G.nfeeds, G.ph, G.feeds, 2e-3, 2e-3);
    for (int k = 0; k < G.nfeeds; k++) kiln_tensor_free(G.feeds[k]);
    kiln_graph_free(G.g);
}

static void test_random_graphs(void **state)
{
    (void)state;
    const char *one = getenv("KILN_GRAPH_SEED");
    const char *many = getenv("KILN_GRAPH_SEEDS");
    if (one) {
        run_seed(strtoull(one, NULL, 10));
        return;
    }
    long n = many ? strtol(many, NULL, 10) : 40;
    for (long s = 1; s <= n; s++) {
        if (many) fprintf(stderr, "seed %ld\n", s);
        run_seed((uint64_t)s);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_random_graphs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
