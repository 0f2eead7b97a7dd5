/* test_ptx.c -- the CUDA backend without a GPU: PTX is generated for every
 * elementwise op over every dtype it takes, for fused broadcasting groups,
 * reductions over assorted axes, Softmax/LogSoftmax and random chains of
 * them; each module names an .entry per kernel and is assembled by ptxas
 * for sm_80 and sm_90 (when the CUDA toolkit is installed; otherwise the
 * assembly is skipped with a notice). Ops the backend cannot compile yet
 * fail with a clear status. */
#include "common/testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../codegen/cg_gpu.h"
#include "ir.h"

/* The random-graph generator of tests/codegen/test_random_graphs.c, its
 * differential check (tu_diff) replaced by check_random_graph below: each
 * graph must give PTX that ptxas accepts, or (for the ops the backend does
 * not have yet, MatMul) a clean UNIMPLEMENTED status. */
static void check_random_graph(kiln_graph *g, int nouts, const kiln_value *outs, int nfeeds,
                               const kiln_value *phs, kiln_tensor *const *feeds, double rtol,
                               double atol);
int random_graphs_cpu_main(void);
#define main random_graphs_cpu_main
#define tu_diff check_random_graph
#include "codegen/test_random_graphs.c"
#undef tu_diff
#undef main

#define PTXAS "/usr/local/cuda/bin/ptxas"

static const kiln_dtype ALL[] = {KILN_F32, KILN_F64, KILN_F16, KILN_BF16, KILN_I8,
                                 KILN_U8,  KILN_I32, KILN_I64, KILN_BOOL};
#define NALL (int)(sizeof ALL / sizeof ALL[0])

static bool have_ptxas(void)
{
    static int known = -1;
    if (known < 0) {
        known = access(PTXAS, X_OK) == 0;
        if (!known) printf("NOTICE: %s not found: PTX is generated but not assembled\n", PTXAS);
    }
    return known;
}

static int assembled; /* modules ptxas accepted */

/* Assembles ptx for sm_<sm>; fails the test with ptxas's output. */
static void assemble(const char *ptx, int sm, const char *what)
{
    if (!have_ptxas()) return;
    char path[] = "/tmp/kiln-ptx-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    fputs(ptx, f);
    fclose(f);
    char cmd[512], log[300];
    snprintf(log, sizeof log, "%s.log", path);
    snprintf(cmd, sizeof cmd, "%s -arch=sm_%d %s -o /dev/null > %s 2>&1", PTXAS, sm, path, log);
    int rc = system(cmd);
    if (rc != 0) {
        char out[2000] = "";
        FILE *lf = fopen(log, "r");
        if (lf) {
            size_t n = fread(out, 1, sizeof out - 1, lf);
            out[n] = 0;
            fclose(lf);
        }
        fprintf(stderr, "ptxas rejected the PTX of %s for sm_%d (kept in %s):\n%s\n", what, sm,
                path, out);
        unlink(log);
        fail_msg("ptxas failed on %s (sm_%d)", what, sm);
    }
    unlink(path);
    unlink(log);
    assembled++;
}

/* Compiles outs over g (fed phs with their declared shapes) for sm. */
static cg_gpu_program *compile(kiln_graph *g, int nouts, const kiln_value *outs, int nph,
                               const kiln_value *phs, int sm, int opt_level, kiln_status *st)
{
    ir_type *types = calloc((size_t)nph + 1, sizeof *types);
    assert_non_null(types);
    for (int i = 0; i < nph; i++) {
        types[i].dtype = kiln_value_dtype(g, phs[i]);
        types[i].rank = kiln_value_dims(g, phs[i], types[i].dims);
    }
    cg_signature sig = {
        .ninputs = nph, .inputs = phs, .input_types = types, .noutputs = nouts, .outputs = outs};
    cg_options o = {.opt_level = opt_level};
    cg_gpu_program *p = cg_gpu_compile(g, &sig, &o, sm, st);
    free(types);
    return p;
}

/* Compiles for sm_80 and sm_90, checks an .entry per kernel and assembles. */
static cg_gpu_program *check_ptx(kiln_graph *g, int nouts, const kiln_value *outs, int nph,
                                 const kiln_value *phs, const char *what)
{
    static const int sms[] = {80, 90};
    cg_gpu_program *last = NULL;
    for (int s = 0; s < 2; s++) {
        kiln_status *st = kiln_status_new();
        cg_gpu_program *p = compile(g, nouts, outs, nph, phs, sms[s], 2, st);
        if (!p) fail_msg("%s: %s", what, kiln_status_message(st));
        kiln_status_free(st);
        assert_int_equal(p->sm, sms[s]);
        char target[32];
        snprintf(target, sizeof target, ".target sm_%d", sms[s]);
        assert_non_null(strstr(p->ptx, target));
        for (int k = 0; k < p->nkernels; k++) {
            char entry[64];
            snprintf(entry, sizeof entry, ".entry %s(", p->kernels[k].name);
            if (!strstr(p->ptx, entry)) fail_msg("%s: no '%s' in the PTX", what, entry);
            assert_true(p->kernels[k].grid >= 1 && p->kernels[k].block >= 1 &&
                        p->kernels[k].block <= 1024);
            assert_true(p->kernels[k].nparams >= 1);
            assert_int_equal(p->kernels[k].params[p->kernels[k].nparams - 1].where, CG_GPU_ERROR);
        }
        assemble(p->ptx, sms[s], what);
        if (last) cg_gpu_program_free(last);
        last = p;
    }
    return last;
}

/* A graph holding op over every dtype it accepts, inputs [7, 13] and (for
 * the others) [13], broadcasting. Returns the number of dtypes. */
static int op_all_dtypes(const char *op, const ir_opdef *def, kiln_graph *g, kiln_value *outs,
                         kiln_value *phs, int *nph)
{
    int n = def->min_inputs, nout = 0;
    *nph = 0;
    for (int d = 0; d < NALL; d++) {
        if (!strcmp(op, "Cast") && ALL[d] == KILN_BOOL) continue;
        for (int to = 0; to < (strcmp(op, "Cast") ? 1 : NALL); to++) {
            kiln_graph *probe = kiln_graph_new();
            kiln_attrs *a = kiln_attrs_new();
            if (!strcmp(op, "Cast")) kiln_attrs_dtype(a, "to", ALL[to]);
            if (!strcmp(op, "BitShift"))
                kiln_attrs_string(a, "direction", d % 2 ? "LEFT" : "RIGHT");
            if (!strcmp(op, "Clip")) {
                kiln_attrs_float(a, "min", -1);
                kiln_attrs_float(a, "max", 2);
            }
            for (int pass = 0; pass < 2; pass++) {
                kiln_graph *gg = pass ? g : probe;
                kiln_value in[3];
                for (int i = 0; i < n; i++) {
                    kiln_dtype dt = !strcmp(op, "Where") && i == 0 ? KILN_BOOL : ALL[d];
                    int64_t dims[2] = {i ? 13 : 7, 13};
                    char name[48];
                    snprintf(name, sizeof name, "x%d_%d_%d", d, to, i);
                    in[i] = kiln_placeholder(gg, name, dt, i ? 1 : 2, i ? dims + 1 : dims);
                    if (pass) phs[(*nph)++] = in[i];
                }
                kiln_value y = kiln_op(gg, op, in, n, a);
                if (!pass) {
                    if (kiln_graph_error(probe)) break;
                    continue;
                }
                outs[nout++] = y;
            }
            kiln_attrs_free(a);
            kiln_graph_free(probe);
        }
    }
    return nout;
}

static void test_every_elementwise_op(void **state)
{
    (void)state;
    int ops = 0, kernels = 0;
    for (int op = 0; op < IR_OP_COUNT; op++) {
        const ir_opdef *def = ir_op_def((ir_op)op);
        if (!(def->flags & IR_OPF_ELEMENTWISE) || op == IR_OP_Assign || def->min_inputs < 1)
            continue;
        kiln_graph *g = kiln_graph_new();
        kiln_value outs[NALL * NALL], phs[NALL * NALL * 3];
        int nph = 0;
        int n = op_all_dtypes(def->name, def, g, outs, phs, &nph);
        if (kiln_graph_error(g)) fail_msg("%s: %s", def->name, kiln_graph_error(g));
        if (n == 0) {
            kiln_graph_free(g);
            continue;
        }
        cg_gpu_program *p = check_ptx(g, n, outs, nph, phs, def->name);
        kernels += p->nkernels;
        ops++;
        cg_gpu_program_free(p);
        kiln_graph_free(g);
    }
    printf("elementwise: %d ops, %d kernels, %d modules assembled\n", ops, kernels, assembled);
    assert_true(ops >= 50);
}

/* relu(x * y + c) -> tanh -> sigmoid over broadcasting shapes, per float
 * dtype: one fused kernel. */
static void test_fused_broadcast(void **state)
{
    (void)state;
    const kiln_dtype dts[] = {KILN_F32, KILN_F64, KILN_F16, KILN_BF16};
    for (int d = 0; d < 4; d++) {
        kiln_graph *g = kiln_graph_new();
        int64_t dx[3] = {4, 1, 33}, dy[2] = {5, 33}, dz[1] = {1};
        kiln_value ph[3] = {kiln_placeholder(g, "x", dts[d], 3, dx),
                            kiln_placeholder(g, "y", dts[d], 2, dy),
                            kiln_placeholder(g, "z", dts[d], 1, dz)};
        kiln_value v = kiln_op(g, "Mul", ph, 2, NULL);
        kiln_value add[2] = {v, ph[2]};
        v = kiln_op(g, "Add", add, 2, NULL);
        v = kiln_op(g, "Relu", &v, 1, NULL);
        v = kiln_op(g, "Tanh", &v, 1, NULL);
        kiln_value pw[2] = {v, ph[0]};
        v = kiln_op(g, "Pow", pw, 2, NULL);
        v = kiln_op(g, "Sigmoid", &v, 1, NULL);
        assert_null(kiln_graph_error(g));
        cg_gpu_program *p = check_ptx(g, 1, &v, 3, ph, kiln_dtype_name(dts[d]));
        assert_int_equal(p->nkernels, 1);
        assert_int_equal(p->kernels[0].nparams, 5); /* x, y, z, out, error word */
        assert_int_equal(p->fetch[0].where, CG_GPU_OUTPUT);
        cg_gpu_program_free(p);
        kiln_graph_free(g);
    }
}

static void test_reductions(void **state)
{
    (void)state;
    const char *ops[] = {"ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd"};
    const kiln_dtype dts[] = {KILN_F32, KILN_F64, KILN_F16, KILN_BF16, KILN_I32, KILN_I64};
    const int64_t axes[][3] = {{0}, {1}, {2}, {-1}, {0, 2}, {1, 2}};
    const int naxes[] = {1, 1, 1, 1, 2, 2};
    int built = 0;
    for (int o = 0; o < 5; o++) {
        kiln_graph *g = kiln_graph_new();
        kiln_value outs[64], phs[64];
        int n = 0, nph = 0;
        for (int d = 0; d < 6; d++) {
            int64_t dims[3] = {3, 37, 300};
            char name[32];
            snprintf(name, sizeof name, "x%d", d);
            kiln_value x = kiln_placeholder(g, name, dts[d], 3, dims);
            bool used = false;
            for (int a = -1; a < 6; a++) {
                kiln_graph *probe = kiln_graph_new();
                kiln_value px = kiln_placeholder(probe, "x", dts[d], 3, dims);
                kiln_attrs *at = kiln_attrs_new();
                if (a >= 0) kiln_attrs_ints(at, "axes", axes[a], naxes[a]);
                kiln_attrs_int(at, "keepdims", a % 2 == 0);
                kiln_op(probe, ops[o], &px, 1, at);
                bool ok = !kiln_graph_error(probe);
                kiln_graph_free(probe);
                if (ok) {
                    outs[n++] = kiln_op(g, ops[o], &x, 1, at);
                    used = true;
                }
                kiln_attrs_free(at);
            }
            if (used) phs[nph++] = x;
        }
        assert_null(kiln_graph_error(g));
        assert_true(n > 0);
        cg_gpu_program *p = check_ptx(g, n, outs, nph, phs, ops[o]);
        assert_true(p->nkernels >= n);
        for (int k = 0; k < p->nkernels; k++) assert_int_equal(p->kernels[k].block, CG_GPU_BLOCK);
        built += n;
        cg_gpu_program_free(p);
        kiln_graph_free(g);
    }
    assert_true(built >= 5 * 4 * 7);
}

/* ArgMax/ArgMin along each axis, keepdims or not, first or last index. */
static void test_arg_reductions(void **state)
{
    (void)state;
    const kiln_dtype dts[] = {KILN_F32, KILN_F64, KILN_F16, KILN_I8, KILN_U8, KILN_I32, KILN_I64};
    const char *ops[] = {"ArgMax", "ArgMin"};
    kiln_graph *g = kiln_graph_new();
    kiln_value outs[256], phs[8];
    int n = 0;
    for (int d = 0; d < 7; d++) {
        int64_t dims[3] = {3, 37, 300};
        char name[16];
        snprintf(name, sizeof name, "x%d", d);
        kiln_value x = phs[d] = kiln_placeholder(g, name, dts[d], 3, dims);
        for (int o = 0; o < 2; o++)
            for (int ax = -1; ax < 3; ax++)
                for (int v = 0; v < 4; v++) {
                    kiln_attrs *at = kiln_attrs_new();
                    kiln_attrs_int(at, "axis", ax);
                    kiln_attrs_int(at, "keepdims", v & 1);
                    kiln_attrs_int(at, "select_last_index", v >> 1);
                    outs[n++] = kiln_op(g, ops[o], &x, 1, at);
                    kiln_attrs_free(at);
                }
    }
    if (kiln_graph_error(g)) fail_msg("%s", kiln_graph_error(g));
    cg_gpu_program *p = check_ptx(g, n, outs, 7, phs, "ArgMax/ArgMin");
    assert_true(p->nkernels >= 7 * 2 * 4);
    cg_gpu_program_free(p);
    kiln_graph_free(g);
}

/* A reduction reading a fused elementwise prologue, and Softmax/LogSoftmax
 * over the last axis with one. */
static void test_reduce_and_softmax_with_prologue(void **state)
{
    (void)state;
    const kiln_dtype dts[] = {KILN_F32, KILN_F64, KILN_F16};
    const char *roots[] = {"ReduceSum", "ReduceMax", "Softmax", "LogSoftmax"};
    for (int d = 0; d < 3; d++) {
        for (int r = 0; r < 4; r++) {
            kiln_graph *g = kiln_graph_new();
            int64_t dx[2] = {64, 1000}, dy[1] = {1000};
            kiln_value ph[2] = {kiln_placeholder(g, "x", dts[d], 2, dx),
                                kiln_placeholder(g, "y", dts[d], 1, dy)};
            kiln_value v = kiln_op(g, "Mul", ph, 2, NULL);
            v = kiln_op(g, "Exp", &v, 1, NULL);
            kiln_attrs *at = kiln_attrs_new();
            if (r < 2) {
                int64_t ax = 1;
                kiln_attrs_ints(at, "axes", &ax, 1);
            }
            v = kiln_op(g, roots[r], &v, 1, at);
            kiln_attrs_free(at);
            assert_null(kiln_graph_error(g));
            char what[64];
            snprintf(what, sizeof what, "%s(exp(x*y)) %s", roots[r], kiln_dtype_name(dts[d]));
            cg_gpu_program *p = check_ptx(g, 1, &v, 2, ph, what);
            assert_true(p->nkernels >= 1);
            cg_gpu_program_free(p);
            kiln_graph_free(g);
        }
    }
}

/* Random chains of elementwise ops, broadcasts and reductions. */
static void test_random_chains(void **state)
{
    (void)state;
    const char *un[] = {"Exp",  "Tanh", "Relu", "Sigmoid", "Neg",   "Abs",
                        "Sqrt", "Log",  "Erf",  "Sin",     "Floor", "Gelu"};
    const char *bin[] = {"Add", "Sub", "Mul", "Div", "Maximum", "Minimum", "Pow"};
    const char *red[] = {"ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin"};
    uint64_t s = 0x9e3779b97f4a7c15ull;
#define RND(n) (int)((s ^= s << 13, s ^= s >> 7, s ^= s << 17) % (uint64_t)(n))
    for (int seed = 0; seed < 12; seed++) {
        kiln_graph *g = kiln_graph_new();
        kiln_dtype dt = seed % 3 == 2 ? KILN_F64 : seed % 3 == 1 ? KILN_F16 : KILN_F32;
        int64_t da[3] = {6, 5, 17}, db[2] = {5, 17}, dc[3] = {6, 1, 1};
        kiln_value ph[3] = {kiln_placeholder(g, "a", dt, 3, da),
                            kiln_placeholder(g, "b", dt, 2, db),
                            kiln_placeholder(g, "c", dt, 3, dc)};
        kiln_value pool[32] = {ph[0], ph[1], ph[2]};
        int n = 3;
        kiln_value outs[8];
        int nout = 0;
        for (int step = 0; step < 14; step++) {
            kiln_value v;
            int kind = RND(6);
            kiln_value x = pool[n - 1 - RND(n < 4 ? n : 4)];
            if (kind < 2) {
                v = kiln_op(g, un[RND(12)], &x, 1, NULL);
            } else if (kind < 5) {
                kiln_value xy[2] = {x, pool[RND(n)]};
                v = kiln_op(g, bin[RND(7)], xy, 2, NULL);
            } else {
                kiln_attrs *at = kiln_attrs_new();
                int64_t ax = -1;
                kiln_attrs_ints(at, "axes", &ax, 1);
                kiln_attrs_int(at, "keepdims", 1);
                v = kiln_op(g, red[RND(4)], &x, 1, at);
                kiln_attrs_free(at);
            }
            if (kiln_graph_error(g)) fail_msg("seed %d: %s", seed, kiln_graph_error(g));
            pool[n++] = v;
            if (step % 5 == 4) outs[nout++] = v;
        }
        outs[nout++] = pool[n - 1];
        char what[32];
        snprintf(what, sizeof what, "random graph %d", seed);
        cg_gpu_program *p = check_ptx(g, nout, outs, 3, ph, what);
        cg_gpu_program_free(p);
        kiln_graph_free(g);
    }
#undef RND
}

static int random_compiled, random_unimplemented;

static void check_random_graph(kiln_graph *g, int nouts, const kiln_value *outs, int nfeeds,
                               const kiln_value *phs, kiln_tensor *const *feeds, double rtol,
                               double atol)
{
    (void)feeds, (void)rtol, (void)atol;
    kiln_status *st = kiln_status_new();
    cg_gpu_program *p = compile(g, nouts, outs, nfeeds, phs, 90, 2, st);
    if (!p) {
        if (kiln_status_code(st) != KILN_ERR_UNIMPLEMENTED ||
            !strstr(kiln_status_message(st), "the CUDA backend cannot compile"))
            fail_msg("random graph: %s", kiln_status_message(st));
        random_unimplemented++;
        kiln_status_free(st);
        return;
    }
    kiln_status_free(st);
    cg_gpu_program_free(p);
    cg_gpu_program_free(check_ptx(g, nouts, outs, nfeeds, phs, "a generator graph"));
    random_compiled++;
}

/* The seeds `make test` runs through the CPU backend (40). */
static void test_generator_graphs(void **state)
{
    (void)state;
    random_compiled = random_unimplemented = 0;
    for (uint64_t seed = 1; seed <= 40; seed++) run_seed(seed);
    printf(
        "generator graphs: %d compiled and assembled, %d stopped at an op without a GPU kernel\n",
        random_compiled, random_unimplemented);
    assert_true(random_compiled >= 5);
}

/* Data movement: Reshape, Flatten, Squeeze, Unsqueeze, Transpose, Expand. */
static void test_shape_ops(void **state)
{
    (void)state;
    const kiln_dtype dts[] = {KILN_F32, KILN_F64, KILN_F16, KILN_I8, KILN_I64, KILN_BOOL};
    kiln_graph *g = kiln_graph_new();
    kiln_value outs[64], phs[8];
    int n = 0;
    for (int d = 0; d < 6; d++) {
        int64_t dims[4] = {2, 3, 1, 5};
        char name[16];
        snprintf(name, sizeof name, "x%d", d);
        kiln_value x = phs[d] = kiln_placeholder(g, name, dts[d], 4, dims);
        outs[n++] = kiln_transpose(g, x, (int64_t[]){3, 0, 2, 1}, 4);
        outs[n++] = kiln_transpose(g, x, NULL, 0);
        outs[n++] = kiln_reshape(g, x, (int64_t[]){6, 5}, 2);
        outs[n++] = kiln_flatten(g, x, 2);
        outs[n++] = kiln_squeeze(g, x, (int64_t[]){2}, 1);
        outs[n++] = kiln_unsqueeze(g, x, (int64_t[]){0}, 1);
        outs[n++] = kiln_expand(g, x, (int64_t[]){4, 2, 3, 7, 5}, 5);
    }
    assert_null(kiln_graph_error(g));
    cg_gpu_program *p = check_ptx(g, n, outs, 6, phs, "shape ops");
    assert_true(p->nkernels >= 6 * 3);
    cg_gpu_program_free(p);
    kiln_graph_free(g);
}

static kiln_value op_with(kiln_graph *g, const char *op, const kiln_value *in, int n, kiln_attrs *a)
{
    kiln_value v = kiln_op(g, op, in, n, a);
    kiln_attrs_free(a);
    return v;
}

static kiln_value slice(kiln_graph *g, kiln_value x, const int64_t *starts, const int64_t *ends,
                        const int64_t *axes, const int64_t *steps, int n)
{
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_ints(a, "starts", starts, n);
    kiln_attrs_ints(a, "ends", ends, n);
    if (axes) kiln_attrs_ints(a, "axes", axes, n);
    if (steps) kiln_attrs_ints(a, "steps", steps, n);
    return op_with(g, "Slice", &x, 1, a);
}

static kiln_value pad(kiln_graph *g, kiln_value x, const int64_t *pads, int n, const char *mode,
                      double value)
{
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_ints(a, "pads", pads, n);
    kiln_attrs_string(a, "mode", mode);
    kiln_attrs_float(a, "value", value);
    return op_with(g, "Pad", &x, 1, a);
}

/* Slice (positive, negative and large steps, negative starts, empty
 * results), Concat, Split (every output fetched), Pad in its three modes
 * (with negative pads cropping), Tile, over several dtypes. */
static void test_slice_concat_split_pad_tile(void **state)
{
    (void)state;
    const kiln_dtype dts[] = {KILN_F32, KILN_F16, KILN_I8, KILN_I64, KILN_BOOL, KILN_F64};
    kiln_graph *g = kiln_graph_new();
    kiln_value outs[128], phs[16];
    int n = 0, nph = 0;
    for (int d = 0; d < 6; d++) {
        int64_t dims[3] = {4, 6, 5};
        char name[16];
        snprintf(name, sizeof name, "x%d", d);
        kiln_value x = phs[nph++] = kiln_placeholder(g, name, dts[d], 3, dims);
        snprintf(name, sizeof name, "y%d", d);
        kiln_value y = phs[nph++] = kiln_placeholder(g, name, dts[d], 3, (int64_t[]){4, 2, 5});
        outs[n++] = slice(g, x, (int64_t[]){1, 0}, (int64_t[]){3, 5}, (int64_t[]){0, 2}, NULL, 2);
        outs[n++] = slice(g, x, (int64_t[]){-1, 5}, (int64_t[]){-100, 0}, (int64_t[]){1, 2},
                          (int64_t[]){-2, -1}, 2);
        outs[n++] = slice(g, x, (int64_t[]){0, 0, 1}, (int64_t[]){4, 6, 5}, NULL,
                          (int64_t[]){3, 1000, 2}, 3);
        outs[n++] = slice(g, x, (int64_t[]){2}, (int64_t[]){2}, (int64_t[]){1}, NULL, 1);
        kiln_value cat[3] = {x, y, x};
        outs[n++] = kiln_concat(g, cat, 3, 1);
        outs[n++] = kiln_concat(g, cat, 2, -2);
        kiln_value c0[2] = {x, x};
        outs[n++] = kiln_concat(g, c0, 2, 0);
        kiln_attrs *a = kiln_attrs_new();
        kiln_attrs_int(a, "axis", 1);
        kiln_attrs_ints(a, "split", (int64_t[]){1, 0, 5}, 3);
        kiln_value s = op_with(g, "Split", &x, 1, a);
        for (int i = 0; i < 3; i++) outs[n++] = (kiln_value){s.node, i};
        a = kiln_attrs_new();
        kiln_attrs_int(a, "axis", 2);
        kiln_attrs_int(a, "num_outputs", 2);
        s = op_with(g, "Split", &x, 1, a);
        for (int i = 0; i < 2; i++) outs[n++] = (kiln_value){s.node, i};
        outs[n++] = pad(g, x, (int64_t[]){1, 0, 2, 0, 3, -1}, 6, "constant", 1.5);
        outs[n++] = pad(g, x, (int64_t[]){0, 2, 1, 1, 3, 4}, 6, "reflect", 0);
        outs[n++] = pad(g, x, (int64_t[]){2, 0, 3, 1, 0, 7}, 6, "edge", 0);
        outs[n++] = kiln_tile(g, x, (int64_t[]){2, 1, 3}, 3);
        outs[n++] = kiln_tile(g, y, (int64_t[]){1, 1, 1}, 3);
    }
    if (kiln_graph_error(g)) fail_msg("%s", kiln_graph_error(g));
    cg_gpu_program *p = check_ptx(g, n, outs, nph, phs, "Slice, Concat, Split, Pad, Tile");
    assert_true(p->nkernels >= 6 * 10);
    cg_gpu_program_free(p);
    kiln_graph_free(g);
}

/* A Split whose other outputs nothing uses: only the fetched piece is
 * written (the others have no memory). */
static void test_split_unused_outputs(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){6, 4});
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_int(a, "num_outputs", 3);
    kiln_value s = op_with(g, "Split", &x, 1, a);
    kiln_value y = kiln_relu(g, (kiln_value){s.node, 1});
    if (kiln_graph_error(g)) fail_msg("%s", kiln_graph_error(g));
    cg_gpu_program *p = check_ptx(g, 1, &y, 1, &x, "Split with unused outputs");
    cg_gpu_program_free(p);
    kiln_graph_free(g);
}

/* Gather (i32 and i64 indices, any axis, scalar indices, a rank-2 index
 * array) and GatherElements; Where with broadcasting. */
static void test_gather_and_where(void **state)
{
    (void)state;
    const kiln_dtype dts[] = {KILN_F32, KILN_BF16, KILN_U8, KILN_I32};
    kiln_graph *g = kiln_graph_new();
    kiln_value outs[64], phs[24];
    int n = 0, nph = 0;
    for (int d = 0; d < 4; d++) {
        char name[16];
        snprintf(name, sizeof name, "x%d", d);
        kiln_value x = phs[nph++] = kiln_placeholder(g, name, dts[d], 3, (int64_t[]){5, 4, 3});
        snprintf(name, sizeof name, "i%d", d);
        kiln_value i32 = phs[nph++] = kiln_placeholder(g, name, KILN_I32, 2, (int64_t[]){2, 3});
        snprintf(name, sizeof name, "j%d", d);
        kiln_value i64 = phs[nph++] = kiln_placeholder(g, name, KILN_I64, 1, (int64_t[]){7});
        snprintf(name, sizeof name, "s%d", d);
        kiln_value sc = phs[nph++] = kiln_placeholder(g, name, KILN_I64, 0, NULL);
        snprintf(name, sizeof name, "e%d", d);
        kiln_value ei = phs[nph++] = kiln_placeholder(g, name, KILN_I64, 3, (int64_t[]){5, 2, 3});
        outs[n++] = kiln_gather(g, x, i32, 0);
        outs[n++] = kiln_gather(g, x, i64, 1);
        outs[n++] = kiln_gather(g, x, sc, -1);
        kiln_attrs *a = kiln_attrs_new();
        kiln_attrs_int(a, "axis", 1);
        kiln_value xe[2] = {x, ei};
        outs[n++] = op_with(g, "GatherElements", xe, 2, a);
        snprintf(name, sizeof name, "c%d", d);
        kiln_value cond = phs[nph++] = kiln_placeholder(g, name, KILN_BOOL, 2, (int64_t[]){4, 1});
        outs[n++] = kiln_where(g, cond, x, kiln_gather(g, x, sc, 0));
    }
    if (kiln_graph_error(g)) fail_msg("%s", kiln_graph_error(g));
    cg_gpu_program *p = check_ptx(g, n, outs, nph, phs, "Gather, GatherElements, Where");
    cg_gpu_program_free(p);
    kiln_graph_free(g);
}

/* MaxPool2D (dilations, pads, ceil_mode) and AveragePool2D (with and
 * without count_include_pad), f32/f64/f16/bf16; Softmax and LogSoftmax
 * over a leading and a middle axis; LayerNormalization. */
static void test_pooling_and_softmax_axes(void **state)
{
    (void)state;
    const kiln_dtype dts[] = {KILN_F32, KILN_F64, KILN_F16, KILN_BF16};
    kiln_graph *g = kiln_graph_new();
    kiln_value outs[64], phs[8];
    int n = 0;
    for (int d = 0; d < 4; d++) {
        char name[16];
        snprintf(name, sizeof name, "x%d", d);
        kiln_value x = phs[d] = kiln_placeholder(g, name, dts[d], 4, (int64_t[]){2, 3, 9, 7});
        kiln_pool2d_options o;
        kiln_pool2d_options_init(&o, 3, 2);
        outs[n++] = kiln_max_pool2d(g, x, &o);
        outs[n++] = kiln_avg_pool2d(g, x, &o);
        o.strides[0] = 2;
        o.strides[1] = 3;
        o.pads[0] = o.pads[1] = o.pads[2] = o.pads[3] = 1;
        o.ceil_mode = 1;
        outs[n++] = kiln_max_pool2d(g, x, &o);
        outs[n++] = kiln_avg_pool2d(g, x, &o);
        o.count_include_pad = 1;
        outs[n++] = kiln_avg_pool2d(g, x, &o);
        kiln_attrs *a = kiln_attrs_new();
        kiln_attrs_ints(a, "kernel_shape", (int64_t[]){2, 2}, 2);
        kiln_attrs_ints(a, "dilations", (int64_t[]){2, 3}, 2);
        kiln_attrs_ints(a, "pads", (int64_t[]){1, 0, 1, 2}, 4);
        outs[n++] = op_with(g, "MaxPool2D", &x, 1, a);
        outs[n++] = kiln_softmax(g, x, 0);
        outs[n++] = kiln_log_softmax(g, x, 2);
        kiln_value e = kiln_op(g, "Exp", &x, 1, NULL);
        outs[n++] = kiln_softmax(g, e, 1);
        /* LayerNormalization over the last two dims (scale broadcast from
         * [7], bias [9, 7]) and over the last one without a bias */
        kiln_tensor *ts = kiln_tensor_new(dts[d], 1, (int64_t[]){7});
        kiln_tensor *tb = kiln_tensor_new(dts[d], 2, (int64_t[]){9, 7});
        snprintf(name, sizeof name, "s%d", d);
        kiln_value sc = kiln_constant(g, name, ts);
        snprintf(name, sizeof name, "b%d", d);
        kiln_value bi = kiln_constant(g, name, tb);
        kiln_tensor_free(ts);
        kiln_tensor_free(tb);
        kiln_value ln[3] = {x, sc, bi};
        kiln_attrs *la = kiln_attrs_new();
        kiln_attrs_int(la, "axis", 2);
        outs[n++] = op_with(g, "LayerNormalization", ln, 3, la);
        outs[n++] = kiln_op(g, "LayerNormalization", ln, 2, NULL);
    }
    if (kiln_graph_error(g)) fail_msg("%s", kiln_graph_error(g));
    cg_gpu_program *p = check_ptx(g, n, outs, 4, phs, "pooling and Softmax over other axes");
    cg_gpu_program_free(p);
    kiln_graph_free(g);
}

/* An SGD step, w <- w - 0.1 * x: the Assign kernel writes the variable's
 * device slot. */
static void test_assign(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    int64_t d[2] = {3, 5};
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 2, d);
    kiln_tensor *init = kiln_tensor_new(KILN_F32, 2, d);
    kiln_value w = kiln_variable(g, "w", init);
    kiln_tensor_free(init);
    kiln_value lr = kiln_scalar(g, KILN_F32, 0.1);
    kiln_value step = kiln_sub(g, w, kiln_mul(g, lr, x));
    kiln_value upd = kiln_assign(g, w, step);
    if (kiln_graph_error(g)) fail_msg("%s", kiln_graph_error(g));
    cg_gpu_program *p = check_ptx(g, 1, &upd, 1, &x, "Assign");
    bool var_param = false;
    for (int k = 0; k < p->nkernels; k++)
        for (int i = 0; i < p->kernels[k].nparams; i++)
            var_param |= p->kernels[k].params[i].where == CG_GPU_VAR;
    assert_true(var_param);
    assert_true(p->writes_vars);
    cg_gpu_program_free(p);
    /* run as a target only: the Assign has no output to write */
    ir_type xt = {.dtype = KILN_F32, .rank = 2, .dims = {3, 5}};
    cg_signature sig = {
        .ninputs = 1, .inputs = &x, .input_types = &xt, .ntargets = 1, .targets = &upd};
    kiln_status *st = kiln_status_new();
    p = cg_gpu_compile(g, &sig, NULL, 80, st);
    if (!p) fail_msg("%s", kiln_status_message(st));
    assert_true(p->writes_vars);
    assemble(p->ptx, 80, "a target-only Assign");
    cg_gpu_program_free(p);
    kiln_status_free(st);
    kiln_graph_free(g);
}

/* The cuBLAS calls of a program, checked field by field. */
static void expect_gemm(const cg_gpu_gemm *q, int64_t m, int64_t n, int64_t k, bool ta, bool tb,
                        int64_t lda, int64_t ldb, int64_t batch, int64_t sa, int64_t sb, int64_t sc)
{
    if (q->m != m || q->n != n || q->k != k || q->trans_a != ta || q->trans_b != tb ||
        q->lda != lda || q->ldb != ldb || q->ldc != n || q->batch != batch || q->stride_a != sa ||
        q->stride_b != sb || q->stride_c != sc)
        fail_msg("%s: m %lld n %lld k %lld trans %d %d ld %lld %lld %lld batch %lld strides %lld "
                 "%lld %lld",
                 q->label, (long long)q->m, (long long)q->n, (long long)q->k, q->trans_a,
                 q->trans_b, (long long)q->lda, (long long)q->ldb, (long long)q->ldc,
                 (long long)q->batch, (long long)q->stride_a, (long long)q->stride_b,
                 (long long)q->stride_c);
}

/* A graph y = MatMul(a, b) (or Gemm) over placeholders of the given
 * shapes, compiled and assembled. */
static cg_gpu_program *product(kiln_dtype dt, int ra, const int64_t *da, int rb, const int64_t *db,
                               bool gemm, int ta, int tb, bool relu)
{
    kiln_graph *g = kiln_graph_new();
    kiln_value ph[3] = {kiln_placeholder(g, "a", dt, ra, da), kiln_placeholder(g, "b", dt, rb, db)};
    int nph = 2;
    kiln_value y;
    if (gemm) {
        int64_t n = tb ? db[0] : db[1];
        ph[nph++] = kiln_placeholder(g, "c", dt, 1, &n);
        y = kiln_gemm(g, ph[0], ph[1], ph[2], 0.5, 2.0, ta, tb);
    } else {
        y = kiln_matmul_t(g, ph[0], ph[1], ta, tb);
    }
    if (relu) y = kiln_relu(g, kiln_add(g, y, kiln_scalar(g, dt, 1)));
    if (kiln_graph_error(g)) fail_msg("%s", kiln_graph_error(g));
    cg_gpu_program *p = check_ptx(g, 1, &y, nph, ph, "a product");
    kiln_graph_free(g);
    for (int s = 0; s < p->nsteps; s++) {
        const cg_gpu_step *st = &p->steps[s];
        assert_true(st->kind == CG_GPU_STEP_KERNEL ? st->index < p->nkernels
                                                   : st->index < p->ngemms);
    }
    return p;
}

/* MatMul and Gemm become cuBLAS steps with the right sizes, leading
 * dimensions, transposes and batch strides; epilogues and Gemm's C become
 * generated kernels after them. */
static void test_matmul_library_steps(void **state)
{
    (void)state;
    /* 2-D */
    cg_gpu_program *p =
        product(KILN_F32, 2, (int64_t[]){3, 4}, 2, (int64_t[]){4, 5}, false, 0, 0, false);
    assert_int_equal(p->ngemms, 1);
    assert_int_equal(p->nsteps, 1);
    assert_int_equal(p->steps[0].kind, CG_GPU_STEP_GEMM);
    expect_gemm(&p->gemms[0], 3, 5, 4, false, false, 4, 5, 1, 0, 0, 0);
    assert_int_equal(p->gemms[0].a.where, CG_GPU_INPUT);
    assert_int_equal(p->gemms[0].a.index, 0);
    assert_int_equal(p->gemms[0].b.index, 1);
    assert_int_equal(p->gemms[0].c.where, CG_GPU_OUTPUT);
    assert_true(p->gemms[0].alpha == 1.0);
    cg_gpu_program_free(p);
    /* transposed operands */
    p = product(KILN_F64, 2, (int64_t[]){4, 3}, 2, (int64_t[]){5, 4}, false, 1, 1, false);
    expect_gemm(&p->gemms[0], 3, 5, 4, true, true, 3, 4, 1, 0, 0, 0);
    assert_int_equal(p->gemms[0].dtype, KILN_F64);
    cg_gpu_program_free(p);
    /* batched, both operands */
    p = product(KILN_F16, 3, (int64_t[]){2, 3, 4}, 3, (int64_t[]){2, 4, 5}, false, 0, 0, false);
    assert_int_equal(p->ngemms, 1);
    expect_gemm(&p->gemms[0], 3, 5, 4, false, false, 4, 5, 2, 12, 20, 15);
    cg_gpu_program_free(p);
    /* a shared weight matrix: stride 0 */
    p = product(KILN_BF16, 4, (int64_t[]){2, 6, 3, 4}, 2, (int64_t[]){4, 5}, false, 0, 0, false);
    assert_int_equal(p->ngemms, 1);
    expect_gemm(&p->gemms[0], 3, 5, 4, false, false, 4, 5, 12, 12, 0, 15);
    cg_gpu_program_free(p);
    /* batch dims broadcast both ways: one call per leading index */
    p = product(KILN_F32, 4, (int64_t[]){2, 1, 3, 4}, 4, (int64_t[]){1, 3, 4, 5}, false, 0, 0,
                false);
    assert_int_equal(p->ngemms, 2);
    for (int i = 0; i < 2; i++) {
        expect_gemm(&p->gemms[i], 3, 5, 4, false, false, 4, 5, 3, 0, 20, 15);
        assert_int_equal(p->gemms[i].a_at, (size_t)(i * 12 * 4));
        assert_int_equal(p->gemms[i].b_at, 0);
        assert_int_equal(p->gemms[i].c_at, (size_t)(i * 45 * 4));
    }
    cg_gpu_program_free(p);
    /* vectors: [K] x [K, N] and [M, K] x [K] */
    p = product(KILN_F32, 1, (int64_t[]){4}, 2, (int64_t[]){4, 5}, false, 0, 0, false);
    expect_gemm(&p->gemms[0], 1, 5, 4, false, false, 4, 5, 1, 0, 0, 0);
    cg_gpu_program_free(p);
    p = product(KILN_F32, 2, (int64_t[]){3, 4}, 1, (int64_t[]){4}, false, 0, 0, false);
    expect_gemm(&p->gemms[0], 3, 1, 4, false, false, 4, 1, 1, 0, 0, 0);
    cg_gpu_program_free(p);
    /* Gemm with transA, transB, alpha and C: the call, then C's kernel */
    p = product(KILN_F32, 2, (int64_t[]){4, 3}, 2, (int64_t[]){5, 4}, true, 1, 1, false);
    assert_int_equal(p->ngemms, 1);
    expect_gemm(&p->gemms[0], 3, 5, 4, true, true, 3, 4, 1, 0, 0, 0);
    assert_true(p->gemms[0].alpha == 0.5);
    assert_int_equal(p->nsteps, 2);
    assert_int_equal(p->steps[0].kind, CG_GPU_STEP_GEMM);
    assert_int_equal(p->steps[1].kind, CG_GPU_STEP_KERNEL);
    cg_gpu_program_free(p);
    /* a fused epilogue (+ 1, Relu) runs as a generated kernel after the call */
    p = product(KILN_F32, 2, (int64_t[]){8, 16}, 2, (int64_t[]){16, 32}, false, 0, 0, true);
    assert_int_equal(p->ngemms, 1);
    assert_int_equal(p->nkernels, 1);
    assert_int_equal(p->nsteps, 2);
    assert_int_equal(p->steps[0].kind, CG_GPU_STEP_GEMM);
    assert_int_equal(p->steps[1].kind, CG_GPU_STEP_KERNEL);
    assert_int_equal(p->gemms[0].c.where, CG_GPU_ARENA);
    cg_gpu_program_free(p);
}

/* cuBLAS has no integer product: an integer MatMul stays UNIMPLEMENTED,
 * naming the node and the dtype. */
static void test_integer_matmul_unimplemented(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    int64_t d[2] = {4, 4};
    kiln_value ph[2] = {kiln_placeholder(g, "a", KILN_I32, 2, d),
                        kiln_placeholder(g, "b", KILN_I32, 2, d)};
    kiln_value v = kiln_name(g, kiln_matmul(g, ph[0], ph[1]), "mm");
    kiln_status *st = kiln_status_new();
    assert_null(compile(g, 1, &v, 2, ph, 90, 2, st));
    assert_int_equal(kiln_status_code(st), KILN_ERR_UNIMPLEMENTED);
    if (!strstr(kiln_status_message(st),
                "MatMul 'mm': the CUDA backend cannot compile MatMul of i32"))
        fail_msg("message: %s", kiln_status_message(st));
    kiln_status_free(st);
    kiln_graph_free(g);
}

/* -O0 (no graph passes, no LLVM optimization) still gives valid PTX. */
static void test_opt_level_0(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    int64_t d[2] = {3, 1000};
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 2, d);
    kiln_value v = kiln_op(g, "Tanh", &x, 1, NULL);
    v = kiln_op(g, "Softmax", &v, 1, NULL);
    kiln_status *st = kiln_status_new();
    cg_gpu_program *p = compile(g, 1, &v, 1, &x, 80, 0, st);
    if (!p) fail_msg("%s", kiln_status_message(st));
    assert_int_equal(p->nkernels, 2);
    assemble(p->ptx, 80, "-O0");
    cg_gpu_program_free(p);
    kiln_status_free(st);
    kiln_graph_free(g);
}

static void test_unimplemented_op(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    int64_t d[2] = {4, 4};
    kiln_value ph[2] = {kiln_placeholder(g, "a", KILN_F32, 2, d),
                        kiln_placeholder(g, "b", KILN_F32, 2, d)};
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_int(a, "k", 2);
    kiln_value v = kiln_op(g, "TopK", ph, 1, a);
    kiln_attrs_free(a);
    v = kiln_op(g, "Relu", &v, 1, NULL);
    kiln_status *st = kiln_status_new();
    cg_gpu_program *p = compile(g, 1, &v, 2, ph, 90, 2, st);
    assert_null(p);
    assert_int_equal(kiln_status_code(st), KILN_ERR_UNIMPLEMENTED);
    if (!strstr(kiln_status_message(st), "the CUDA backend cannot compile TopK yet"))
        fail_msg("message: %s", kiln_status_message(st));
    kiln_status_free(st);
    kiln_graph_free(g);
}

static void test_bad_sm(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    int64_t d[1] = {4};
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 1, d);
    kiln_value v = kiln_op(g, "Relu", &x, 1, NULL);
    kiln_status *st = kiln_status_new();
    assert_null(compile(g, 1, &v, 1, &x, 70, 2, st));
    assert_int_equal(kiln_status_code(st), KILN_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(kiln_status_message(st), "sm_70"));
    kiln_status_free(st);
    kiln_graph_free(g);
}

static void test_missing_libdevice(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    int64_t d[1] = {4};
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 1, d);
    kiln_value v = kiln_op(g, "Exp", &x, 1, NULL);
    kiln_value r = kiln_op(g, "Relu", &x, 1, NULL);
    setenv("KILN_LIBDEVICE", "/nonexistent/libdevice.10.bc", 1);
    kiln_status *st = kiln_status_new();
    cg_gpu_program *p = compile(g, 1, &v, 1, &x, 90, 2, st);
    assert_null(p);
    assert_int_equal(kiln_status_code(st), KILN_ERR_IO);
    if (!strstr(kiln_status_message(st), "/nonexistent/libdevice.10.bc"))
        fail_msg("message: %s", kiln_status_message(st));
    /* a module without math functions needs no libdevice */
    p = compile(g, 1, &r, 1, &x, 90, 2, st);
    unsetenv("KILN_LIBDEVICE");
    if (!p) fail_msg("%s", kiln_status_message(st));
    cg_gpu_program_free(p);
    kiln_status_free(st);
    kiln_graph_free(g);
}

/* Every allocation of a GPU compile failing in turn: each returns NULL
 * with a status and leaks nothing, until the compile succeeds. */
static void test_allocation_failures(void **state)
{
    (void)state;
    long n;
    for (n = 0; n < 20000; n++) {
        kiln_graph *g = kiln_graph_new();
        int64_t d[2] = {8, 300}, c[1] = {300};
        kiln_value ph[2] = {kiln_placeholder(g, "x", KILN_F32, 2, d),
                            kiln_placeholder(g, "y", KILN_F32, 1, c)};
        kiln_value v = kiln_op(g, "Add", ph, 2, NULL);
        v = kiln_op(g, "Relu", &v, 1, NULL);
        kiln_value outs[2] = {v, kiln_op(g, "ReduceMax", &v, 1, NULL)};
        assert_null(kiln_graph_error(g));
        long live = ir_alloc_live_blocks();
        kiln_status *st = kiln_status_new();
        ir_alloc_fail_after(n);
        cg_gpu_program *p = compile(g, 2, outs, 2, ph, 90, 2, st);
        bool failed = ir_alloc_failed();
        ir_alloc_fail_after(-1);
        if (failed) {
            if (p) fail_msg("fail_after(%ld): an allocation failed but the compile succeeded", n);
            if (kiln_status_code(st) == KILN_OK) fail_msg("fail_after(%ld): no status", n);
        } else if (!p) {
            fail_msg("no allocation failed, but: %s", kiln_status_message(st));
        }
        cg_gpu_program_free(p);
        kiln_status_free(st);
        if (ir_alloc_live_blocks() != live)
            fail_msg("fail_after(%ld): %ld blocks leaked", n, ir_alloc_live_blocks() - live);
        kiln_graph_free(g);
        if (!failed) break;
    }
    assert_true(n > 10 && n < 20000);
    print_message("GPU compile: %ld failure points\n", n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_every_elementwise_op),
        TU_TEST(test_fused_broadcast),
        TU_TEST(test_reductions),
        TU_TEST(test_arg_reductions),
        TU_TEST(test_reduce_and_softmax_with_prologue),
        TU_TEST(test_shape_ops),
        TU_TEST(test_slice_concat_split_pad_tile),
        TU_TEST(test_split_unused_outputs),
        TU_TEST(test_gather_and_where),
        TU_TEST(test_pooling_and_softmax_axes),
        TU_TEST(test_assign),
        TU_TEST(test_matmul_library_steps),
        TU_TEST(test_integer_matmul_unimplemented),
        TU_TEST(test_random_chains),
        TU_TEST(test_generator_graphs),
        TU_TEST(test_opt_level_0),
        TU_TEST(test_unimplemented_op),
        TU_TEST(test_bad_sm),
        TU_TEST(test_missing_libdevice),
        TU_TEST(test_allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
