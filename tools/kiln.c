/* kiln.c -- the kiln command line: compile, run, bench, info, dump.
 * Every subcommand has --help, exits 0 on success, 1 with a one-line
 * "kiln: error: ..." on failure and 2 on a usage error. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <dlfcn.h>

#include "../codegen/cg_internal.h"
#include "../passes/passes.h"
#include "kiln.h"

#define MAX_IO 256

static int fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("kiln: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

static int usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "kiln %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see 'kiln %s --help')\n", cmd);
    va_end(ap);
    return 2;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* ---- models: a graph file or a compiled library ---- */

typedef struct {
    const char *path;
    kiln_graph *graph;     /* a .kiln graph, or NULL */
    kiln_session *session; /* a session (on the graph, or the loaded library) */
    int ninputs, noutputs;
    kiln_value inputs[MAX_IO], outputs[MAX_IO];
    const char *input_names[MAX_IO], *output_names[MAX_IO];
} model;

static void model_free(model *m)
{
    kiln_session_free(m->session);
    kiln_graph_free(m->graph);
    memset(m, 0, sizeof *m);
}

static int load_graph(model *m, const char *path)
{
    kiln_status *st = kiln_status_new();
    m->path = path;
    m->graph = ends_with(path, ".onnx") ? kiln_import_onnx(path, NULL, st) : kiln_graph_load(path, st);
    if (!m->graph) {
        int rc = fail("%s", kiln_status_message(st));
        kiln_status_free(st);
        return rc;
    }
    kiln_status_free(st);
    m->ninputs = kiln_graph_inputs(m->graph, m->inputs, MAX_IO);
    m->noutputs = kiln_graph_outputs(m->graph, m->outputs, MAX_IO);
    if (m->ninputs > MAX_IO || m->noutputs > MAX_IO) return fail("%s: more than %d inputs or outputs", path, MAX_IO);
    for (int i = 0; i < m->ninputs; i++) m->input_names[i] = kiln_value_node_name(m->graph, m->inputs[i]);
    for (int i = 0; i < m->noutputs; i++) m->output_names[i] = kiln_value_node_name(m->graph, m->outputs[i]);
    return 0;
}

/* Opens a model for running: a .so through kiln_session_load, a graph
 * through a session with the chosen backend. */
static int open_model(model *m, const char *path, const char *backend, const char *device, int threads, int opt)
{
    kiln_status *st = kiln_status_new();
    int rc = 0;
    if (ends_with(path, ".so")) {
        if (device && !strcmp(device, "cuda")) {
            rc = fail("%s: a compiled library runs on the CPU; --device cuda needs a .kiln graph", path);
            goto done;
        }
        m->path = path;
        m->session = kiln_session_load(path, st);
        if (!m->session) {
            rc = fail("%s", kiln_status_message(st));
            goto done;
        }
        goto io;
    }
    if ((rc = load_graph(m, path))) goto done;
    kiln_session_options o;
    kiln_session_options_init(&o);
    if (backend && strcmp(backend, "ref") == 0) o.backend = KILN_BACKEND_REFERENCE;
    if (device && strcmp(device, "cuda") == 0) o.device = KILN_DEVICE_CUDA;
    o.threads = threads;
    if (opt >= 0) o.opt_level = opt;
    m->session = kiln_session_new(m->graph, &o, st);
    if (!m->session) {
        rc = fail("%s: %s", path, kiln_status_message(st));
        goto done;
    }
io:
    m->ninputs = kiln_session_inputs(m->session, m->inputs, MAX_IO);
    m->noutputs = kiln_session_outputs(m->session, m->outputs, MAX_IO);
    if (m->ninputs > MAX_IO || m->noutputs > MAX_IO) {
        rc = fail("%s: more than %d inputs or outputs", path, MAX_IO);
        goto done;
    }
    const kiln_graph *sg = kiln_session_graph(m->session);
    for (int i = 0; i < m->ninputs; i++) m->input_names[i] = kiln_value_node_name(sg, m->inputs[i]);
    for (int i = 0; i < m->noutputs; i++) m->output_names[i] = kiln_value_node_name(sg, m->outputs[i]);
done:
    kiln_status_free(st);
    return rc;
}

/* ---- inputs ---- */

typedef struct {
    int n;
    const char *name[MAX_IO]; /* NULL: positional */
    const char *file[MAX_IO];
} input_args;

static int add_input(input_args *a, const char *cmd, char *arg)
{
    if (a->n == MAX_IO) return usage_error(cmd, "too many --input");
    char *eq = strchr(arg, '=');
    if (eq && !ends_with(arg, ".npy")) eq = NULL;
    if (eq && strchr(eq + 1, '=') == NULL && eq != arg) {
        *eq = 0;
        a->name[a->n] = arg;
        a->file[a->n] = eq + 1;
    } else {
        a->name[a->n] = NULL;
        a->file[a->n] = arg;
    }
    a->n++;
    return 0;
}

/* Reads the --input files and matches them to the model's inputs: named
 * ones by name, the others in input order. */
static int read_inputs(model *m, const input_args *a, kiln_value *vals, kiln_tensor **tensors, int *count)
{
    *count = 0;
    int next_positional = 0;
    for (int i = 0; i < a->n; i++) {
        kiln_value v = kiln_value_invalid();
        if (a->name[i]) {
            v = kiln_session_find(m->session, a->name[i]);
            if (!kiln_value_ok(v)) return fail("%s has no input named '%s'", m->path, a->name[i]);
        } else {
            if (next_positional >= m->ninputs)
                return fail("%s takes %d inputs; %s is one too many", m->path, m->ninputs, a->file[i]);
            v = m->inputs[next_positional++];
        }
        kiln_status *st = kiln_status_new();
        tensors[*count] = kiln_tensor_read_npy(a->file[i], st);
        if (!tensors[*count]) {
            int rc = fail("%s", kiln_status_message(st));
            kiln_status_free(st);
            return rc;
        }
        kiln_status_free(st);
        vals[(*count)++] = v;
    }
    return 0;
}

/* ---- subcommands ---- */

static const char HELP_RUN[] =
    "usage: kiln run MODEL [--input [NAME=]FILE.npy]... [--output FILE.npy]...\n"
    "                      [--output-dir DIR] [--backend cpu|ref] [--threads N]\n"
    "                      [--device cpu|cuda]\n"
    "Runs MODEL (a .kiln graph or a .so made by 'kiln compile') once; --device cuda\n"
    "runs a .kiln graph on NVIDIA GPU 0 (docs/gpu.md).\n"
    "Inputs without a NAME= are taken in the model's input order; --output files\n"
    "receive the outputs in the model's output order; --output-dir writes every\n"
    "output as DIR/NAME.npy. Without either, a summary of each output is printed.\n";

static void print_summary(const char *name, const kiln_tensor *t)
{
    printf("%s: %s[", name, kiln_dtype_name(kiln_tensor_dtype(t)));
    for (int d = 0; d < kiln_tensor_rank(t); d++) printf("%s%lld", d ? "," : "", (long long)kiln_tensor_dims(t)[d]);
    printf("]");
    size_t n = kiln_tensor_size(t);
    const void *p = kiln_tensor_const_data(t);
    printf(" =");
    for (size_t i = 0; i < n && i < 8; i++) {
        switch (kiln_tensor_dtype(t)) {
        case KILN_F32: printf(" %.6g", ((const float *)p)[i]); break;
        case KILN_F64: printf(" %.6g", ((const double *)p)[i]); break;
        case KILN_I32: printf(" %d", ((const int32_t *)p)[i]); break;
        case KILN_I64: printf(" %lld", (long long)((const int64_t *)p)[i]); break;
        case KILN_I8: printf(" %d", ((const int8_t *)p)[i]); break;
        case KILN_U8:
        case KILN_BOOL: printf(" %u", ((const uint8_t *)p)[i]); break;
        case KILN_I16: printf(" %d", ((const int16_t *)p)[i]); break;
        case KILN_U16: printf(" %u", ((const uint16_t *)p)[i]); break;
        case KILN_U32: printf(" %lu", (unsigned long)((const uint32_t *)p)[i]); break;
        case KILN_U64: printf(" %llu", (unsigned long long)((const uint64_t *)p)[i]); break;
        default: printf(" 0x%04x", ((const uint16_t *)p)[i]); break;
        }
    }
    printf(n > 8 ? " ...\n" : "\n");
}

static int parse_int(const char *cmd, const char *opt, const char *s, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return usage_error(cmd, "%s needs a number from %d to %d, got '%s'", opt, lo, hi, s);
    *out = (int)v;
    return 0;
}

static int cmd_run(int argc, char **argv)
{
    const char *path = NULL, *backend = "cpu", *outdir = NULL, *device = "cpu";
    const char *outputs[MAX_IO];
    int nout_files = 0, threads = 0, rc;
    input_args in = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) return fputs(HELP_RUN, stdout), 0;
        if (!strcmp(a, "--input") || !strcmp(a, "--output") || !strcmp(a, "--output-dir") ||
            !strcmp(a, "--backend") || !strcmp(a, "--threads") || !strcmp(a, "--device")) {
            if (i + 1 >= argc) return usage_error("run", "%s needs a value", a);
            char *v = argv[++i];
            if (!strcmp(a, "--input")) {
                if ((rc = add_input(&in, "run", v))) return rc;
            } else if (!strcmp(a, "--output")) {
                if (nout_files == MAX_IO) return usage_error("run", "too many --output");
                outputs[nout_files++] = v;
            } else if (!strcmp(a, "--output-dir")) {
                outdir = v;
            } else if (!strcmp(a, "--backend")) {
                if (strcmp(v, "cpu") && strcmp(v, "ref")) return usage_error("run", "--backend is cpu or ref, not '%s'", v);
                backend = v;
            } else if (!strcmp(a, "--device")) {
                if (strcmp(v, "cpu") && strcmp(v, "cuda")) return usage_error("run", "--device is cpu or cuda, not '%s'", v);
                device = v;
            } else if ((rc = parse_int("run", a, v, 0, 4096, &threads))) {
                return rc;
            }
        } else if (a[0] == '-') {
            return usage_error("run", "unknown option '%s'", a);
        } else if (!path) {
            path = a;
        } else {
            return usage_error("run", "one MODEL only ('%s' and '%s')", path, a);
        }
    }
    if (!path) return usage_error("run", "no MODEL given");
    model m = {0};
    if ((rc = open_model(&m, path, backend, device, threads, -1))) {
        model_free(&m);
        return rc;
    }
    kiln_value vals[MAX_IO];
    kiln_tensor *feeds[MAX_IO] = {0}, *results[MAX_IO] = {0};
    int nfeeds = 0;
    rc = read_inputs(&m, &in, vals, feeds, &nfeeds);
    if (!rc && nout_files > m.noutputs) rc = fail("%s has %d outputs; %d --output files given", path, m.noutputs, nout_files);
    if (!rc) {
        kiln_status *st = kiln_status_new();
        kiln_session_run(m.session, vals, feeds, nfeeds, m.outputs, results, m.noutputs, NULL, 0, st);
        if (kiln_status_code(st)) rc = fail("%s", kiln_status_message(st));
        for (int i = 0; !rc && i < m.noutputs; i++) {
            const char *file = i < nout_files ? outputs[i] : NULL;
            char buf[4096];
            if (!file && outdir) {
                snprintf(buf, sizeof buf, "%s/%s.npy", outdir, m.output_names[i]);
                for (char *c = buf + strlen(outdir) + 1; *c; c++)
                    if (*c == '/') *c = '_';
                file = buf;
            }
            if (file) {
                if (kiln_tensor_write_npy(results[i], file, st)) rc = fail("%s", kiln_status_message(st));
            } else if (nout_files == 0 && !outdir) {
                print_summary(m.output_names[i], results[i]);
            }
        }
        kiln_status_free(st);
    }
    for (int i = 0; i < MAX_IO; i++) {
        kiln_tensor_free(feeds[i]);
        kiln_tensor_free(results[i]);
    }
    model_free(&m);
    return rc;
}


/* ---- shared option parsing ---- */

/* The concrete type of a model input: symbolic dims take `dim`. */
static void concrete_dims(const kiln_graph *g, kiln_value v, int64_t dim, int *rank, int64_t *dims)
{
    *rank = kiln_value_dims(g, v, dims);
    for (int d = 0; d < *rank; d++)
        if (dims[d] < 0) dims[d] = dim;
}

static void print_type(FILE *f, kiln_dtype dt, int rank, const int64_t *dims)
{
    fprintf(f, "%s[", kiln_dtype_name(dt));
    for (int d = 0; d < rank; d++) {
        if (dims[d] < 0) fprintf(f, "%s?", d ? "," : "");
        else fprintf(f, "%s%lld", d ? "," : "", (long long)dims[d]);
    }
    fprintf(f, "]");
}

/* Random inputs for every model input not given (for bench). */
static int fill_inputs(model *m, kiln_value *vals, kiln_tensor **tensors, int *count, int64_t dim)
{
    const kiln_graph *g = kiln_session_graph(m->session);
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < m->ninputs; i++) {
        bool given = false;
        for (int j = 0; j < *count; j++) given |= vals[j].node == m->inputs[i].node;
        if (given) continue;
        int rank;
        int64_t dims[KILN_MAX_RANK];
        concrete_dims(g, m->inputs[i], dim, &rank, dims);
        kiln_dtype dt = kiln_value_dtype(g, m->inputs[i]);
        kiln_tensor *t = kiln_tensor_new(dt, rank, dims);
        if (!t) return fail("out of memory for input '%s'", m->input_names[i]);
        for (size_t k = 0; k < kiln_tensor_size(t); k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            double u = (double)(x >> 11) * 0x1p-53;
            void *p = kiln_tensor_data(t);
            switch (dt) {
            case KILN_F32: ((float *)p)[k] = (float)(u * 2 - 1); break;
            case KILN_F64: ((double *)p)[k] = u * 2 - 1; break;
            case KILN_I32: ((int32_t *)p)[k] = (int32_t)(u * 10); break;
            case KILN_I64: ((int64_t *)p)[k] = (int64_t)(u * 10); break;
            case KILN_BOOL: ((uint8_t *)p)[k] = u < 0.5; break;
            case KILN_I16: ((int16_t *)p)[k] = (int16_t)(u * 10); break;
            case KILN_U16: ((uint16_t *)p)[k] = (uint16_t)(u * 10); break;
            case KILN_U32: ((uint32_t *)p)[k] = (uint32_t)(u * 10); break;
            case KILN_U64: ((uint64_t *)p)[k] = (uint64_t)(u * 10); break;
            default: break; /* zeros */
            }
        }
        vals[*count] = m->inputs[i];
        tensors[(*count)++] = t;
    }
    return 0;
}

/* ---- bench ---- */

static const char HELP_BENCH[] =
    "usage: kiln bench MODEL [--input [NAME=]FILE.npy]... [--iters N] [--warmup N]\n"
    "                        [--threads N] [--backend cpu|ref] [--dim N]\n"
    "                        [--device cpu|cuda]\n"
    "Times runs of MODEL and prints min/median/p90 latency and runs per second.\n"
    "Inputs not given are filled with random values; their symbolic dims take\n"
    "--dim (default 1).\n";

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int cmd_bench(int argc, char **argv)
{
    const char *path = NULL, *backend = "cpu", *device = "cpu";
    int iters = 100, warmup = 5, threads = 0, dim = 1, rc;
    input_args in = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) return fputs(HELP_BENCH, stdout), 0;
        if (!strcmp(a, "--input") || !strcmp(a, "--iters") || !strcmp(a, "--warmup") ||
            !strcmp(a, "--threads") || !strcmp(a, "--backend") || !strcmp(a, "--dim") || !strcmp(a, "--device")) {
            if (i + 1 >= argc) return usage_error("bench", "%s needs a value", a);
            char *v = argv[++i];
            if (!strcmp(a, "--input")) rc = add_input(&in, "bench", v);
            else if (!strcmp(a, "--iters")) rc = parse_int("bench", a, v, 1, 100000000, &iters);
            else if (!strcmp(a, "--warmup")) rc = parse_int("bench", a, v, 0, 100000000, &warmup);
            else if (!strcmp(a, "--threads")) rc = parse_int("bench", a, v, 0, 4096, &threads);
            else if (!strcmp(a, "--dim")) rc = parse_int("bench", a, v, 1, 1 << 30, &dim);
            else if (!strcmp(a, "--device"))
                rc = strcmp(v, "cpu") && strcmp(v, "cuda") ? usage_error("bench", "--device is cpu or cuda, not '%s'", v)
                                                            : (device = v, 0);
            else if (strcmp(v, "cpu") && strcmp(v, "ref")) rc = usage_error("bench", "--backend is cpu or ref, not '%s'", v);
            else backend = v, rc = 0;
            if (rc) return rc;
        } else if (a[0] == '-') {
            return usage_error("bench", "unknown option '%s'", a);
        } else if (!path) {
            path = a;
        } else {
            return usage_error("bench", "one MODEL only ('%s' and '%s')", path, a);
        }
    }
    if (!path) return usage_error("bench", "no MODEL given");
    model m = {0};
    if ((rc = open_model(&m, path, backend, device, threads, -1))) {
        model_free(&m);
        return rc;
    }
    kiln_value vals[MAX_IO];
    kiln_tensor *feeds[MAX_IO] = {0};
    int nfeeds = 0;
    double *times = calloc((size_t)iters, sizeof(double));
    if (!times) rc = fail("out of memory");
    if (!rc) rc = read_inputs(&m, &in, vals, feeds, &nfeeds);
    if (!rc) rc = fill_inputs(&m, vals, feeds, &nfeeds, dim);
    kiln_status *st = kiln_status_new();
    double first = 0;
    for (int it = 0; !rc && it < warmup + iters; it++) {
        kiln_tensor *results[MAX_IO] = {0};
        double t0 = now_s();
        kiln_session_run(m.session, vals, feeds, nfeeds, m.outputs, results, m.noutputs, NULL, 0, st);
        double t = now_s() - t0;
        for (int k = 0; k < m.noutputs; k++) kiln_tensor_free(results[k]);
        if (kiln_status_code(st)) rc = fail("%s", kiln_status_message(st));
        if (it == 0) first = t;
        if (it >= warmup) times[it - warmup] = t;
    }
    if (!rc) {
        qsort(times, (size_t)iters, sizeof(double), cmp_double);
        double med = times[iters / 2], p90 = times[(int)((iters - 1) * 0.9)];
        printf("%s: %d runs (%d warm-up; the first, with compilation, took %.3f ms)\n", path, iters, warmup, first * 1e3);
        printf("  min %.3f ms  median %.3f ms  p90 %.3f ms  %.1f runs/s\n", times[0] * 1e3, med * 1e3, p90 * 1e3, 1.0 / med);
    }
    kiln_status_free(st);
    free(times);
    for (int i = 0; i < MAX_IO; i++) kiln_tensor_free(feeds[i]);
    model_free(&m);
    return rc;
}

/* ---- compile ---- */

static const char HELP_COMPILE[] =
    "usage: kiln compile MODEL -o OUT.{so,o,a} [--header OUT.h] [--name NAME]\n"
    "                    [--cpu CPU] [--emit-llvm FILE.ll] [-O0|-O1|-O2|-O3] [--dim N]\n"
    "                    [--passes a,b,c] [--print-after PASS] [--time-passes]\n"
    "                    [--fold-limit BYTES]\n"
    "Compiles MODEL (a .kiln graph) ahead of time: its placeholders are the\n"
    "inputs and its declared outputs the outputs. NAME prefixes the generated\n"
    "symbols (default: from OUT, libfoo.so -> foo). CPU is an LLVM CPU name\n"
    "(default x86-64-v3; native for this machine). Symbolic input dims take\n"
    "--dim N. --emit-llvm also writes the optimized LLVM IR. -O0 runs no graph\n"
    "passes; --passes replaces the default pipeline; --print-after prints the\n"
    "graph after a pass (or 'all'); --time-passes prints each pass's time.\n"
    "--fold-limit leaves constant-folded results over BYTES unfolded (default\n"
    "64 MiB; -1: no limit).\n";

static char *name_from_path(const char *out)
{
    const char *base = strrchr(out, '/');
    base = base ? base + 1 : out;
    if (!strncmp(base, "lib", 3) && base[3]) base += 3;
    char *n = strdup(base);
    if (!n) return NULL;
    char *dot = strchr(n, '.');
    if (dot) *dot = 0;
    for (char *c = n; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '_')) *c = '_';
    if (!*n || (*n >= '0' && *n <= '9')) {
        free(n);
        return strdup("model");
    }
    return n;
}

static int cmd_compile(int argc, char **argv)
{
    const char *path = NULL, *out = NULL, *header = NULL, *name = NULL, *cpu = NULL, *ll = NULL;
    const char *passes = NULL, *print_after = NULL;
    int opt = 2, dim = 0, rc, time_passes = 0;
    long long fold_limit = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) return fputs(HELP_COMPILE, stdout), 0;
        if (!strcmp(a, "--fold-limit")) {
            if (i + 1 >= argc) return usage_error("compile", "%s needs a value", a);
            const char *v = argv[++i];
            char *end;
            errno = 0;
            fold_limit = strtoll(v, &end, 10);
            if (errno || *end || !*v || fold_limit < -1)
                return usage_error("compile", "--fold-limit needs a byte count (or -1 for no limit), got '%s'", v);
            if (fold_limit == 0) fold_limit = 1; /* 0 in the options means the default */
            continue;
        }
        if (!strncmp(a, "-O", 2) && a[2] >= '0' && a[2] <= '3' && !a[3]) {
            opt = a[2] - '0';
        } else if (!strcmp(a, "--time-passes")) {
            time_passes = 1;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--header") || !strcmp(a, "--name") ||
                   !strcmp(a, "--cpu") || !strcmp(a, "--emit-llvm") || !strcmp(a, "--dim") ||
                   !strcmp(a, "--passes") || !strcmp(a, "--print-after")) {
            if (i + 1 >= argc) return usage_error("compile", "%s needs a value", a);
            const char *v = argv[++i];
            if (!strcmp(a, "-o")) out = v;
            else if (!strcmp(a, "--passes")) passes = v;
            else if (!strcmp(a, "--print-after")) print_after = v;
            else if (!strcmp(a, "--header")) header = v;
            else if (!strcmp(a, "--name")) name = v;
            else if (!strcmp(a, "--cpu")) cpu = v;
            else if (!strcmp(a, "--emit-llvm")) ll = v;
            else if ((rc = parse_int("compile", a, v, 1, 1 << 30, &dim))) return rc;
        } else if (a[0] == '-') {
            return usage_error("compile", "unknown option '%s'", a);
        } else if (!path) {
            path = a;
        } else {
            return usage_error("compile", "one MODEL only ('%s' and '%s')", path, a);
        }
    }
    if (!path) return usage_error("compile", "no MODEL given");
    if (!out) return usage_error("compile", "no output given (-o OUT.so, OUT.o or OUT.a)");
    if (!ends_with(out, ".so") && !ends_with(out, ".o") && !ends_with(out, ".a"))
        return usage_error("compile", "the output must end in .so, .o or .a, not '%s'", out);
    if (ends_with(path, ".so")) return fail("%s is already compiled; compile a .kiln graph", path);
    model m = {0};
    if ((rc = load_graph(&m, path))) {
        model_free(&m);
        return rc;
    }
    char *auto_name = name ? NULL : name_from_path(out);
    kiln_compile_options o;
    kiln_compile_options_init(&o);
    o.opt_level = opt;
    o.cpu = cpu;
    o.name = name ? name : auto_name;
    o.header = header;
    o.symbolic_dim = dim;
    o.passes = passes;
    o.print_after = print_after;
    o.time_passes = time_passes;
    o.fold_limit = fold_limit;
    kiln_status *st = kiln_status_new();
    kiln_compile_library(m.graph, m.inputs, m.ninputs, m.outputs, m.noutputs, out, &o, st);
    if (kiln_status_code(st)) rc = fail("%s", kiln_status_message(st));
    if (!rc && ll) {
        ir_type types[MAX_IO];
        for (int i = 0; i < m.ninputs; i++) {
            types[i].dtype = kiln_value_dtype(m.graph, m.inputs[i]);
            concrete_dims(m.graph, m.inputs[i], dim > 0 ? dim : 1, &types[i].rank, types[i].dims);
        }
        cg_signature sig = {m.ninputs, m.inputs, types, m.noutputs, m.outputs, 0, NULL};
        cg_options co = {.opt_level = opt, .cpu = cpu ? cpu : "x86-64-v3", .entry_name = "kiln_entry", .pipeline = passes};
        if (cg_emit_llvm_ir(m.graph, &sig, &co, ll, st)) rc = fail("%s", kiln_status_message(st));
    }
    kiln_status_free(st);
    free(auto_name);
    model_free(&m);
    return rc;
}

/* ---- info ---- */

static const char HELP_INFO[] =
    "usage: kiln info MODEL [--dim N]\n"
    "Prints MODEL's inputs and outputs (dtypes, shapes), and for a graph its\n"
    "node count, constant bytes, and, compiled for its inputs (symbolic dims\n"
    "taking --dim, default 1), the arena bytes, kernel count and an estimate\n"
    "of the floating-point operations per run.\n";

/* Multiply-adds count 2. A rough count, for comparing models. */
static double node_flops(const kiln_graph *g, const ir_node *n)
{
    const ir_type *y = n->noutputs ? &n->outputs[0] : NULL;
    double out = y ? (double)ir_shape_numel(y->rank, y->dims) : 0;
    const ir_type *x = n->ninputs ? ir_value_type(g, n->inputs[0]) : NULL;
    double in = x ? (double)ir_shape_numel(x->rank, x->dims) : 0;
    switch (n->op) {
    case IR_OP_MatMul: {
        int64_t k = x->rank == 1 ? x->dims[0] : ir_node_int(n, "transpose_a") ? x->dims[x->rank - 2] : x->dims[x->rank - 1];
        return 2 * out * (double)k;
    }
    case IR_OP_Gemm: return 2 * out * (double)(ir_node_int(n, "transA") ? x->dims[0] : x->dims[1]) + out;
    case IR_OP_Conv2D: {
        const ir_type *w = ir_value_type(g, n->inputs[1]);
        return 2 * out * (double)(w->dims[1] * w->dims[2] * w->dims[3]);
    }
    case IR_OP_ConvTranspose2D: {
        const ir_type *w = ir_value_type(g, n->inputs[1]);
        return 2 * in * (double)(w->dims[1] * w->dims[2] * w->dims[3]);
    }
    case IR_OP_MaxPool2D:
    case IR_OP_AveragePool2D: {
        int k;
        const int64_t *ks = ir_node_ints(n, "kernel_shape", &k);
        return k == 2 ? out * (double)(ks[0] * ks[1]) : out;
    }
    case IR_OP_Softmax:
    case IR_OP_LogSoftmax:
    case IR_OP_LayerNormalization:
    case IR_OP_BatchNormalization: return 5 * in;
    default:
        if (ir_op_def(n->op)->flags & IR_OPF_SOURCE) return 0;
        return in > out ? in : out;
    }
}

static int info_library(const char *path)
{
    char *full = strchr(path, '/') ? strdup(path) : NULL;
    if (!full) {
        size_t n = strlen(path) + 3;
        full = malloc(n);
        if (full) snprintf(full, n, "./%s", path);
    }
    void *dl = full ? dlopen(full, RTLD_NOW | RTLD_LOCAL) : NULL;
    free(full);
    if (!dl) return fail("%s is not a loadable library", path);
    const cg_model_desc *(*describe)(void);
    *(void **)&describe = dlsym(dl, "kiln_model_describe");
    const cg_model_desc *d = describe ? describe() : NULL;
    if (!d) {
        dlclose(dl);
        return fail("%s is not a kiln model", path);
    }
    printf("%s: compiled model '%s', ABI version %d%s\n", path, d->name, d->abi_version,
           d->abi_version == CG_ABI_VERSION ? "" : " (not this kiln's: it cannot be loaded)");
    const cg_tensor_desc *lists[3] = {d->inputs, d->outputs, d->variables};
    int counts[3] = {d->ninputs, d->noutputs, d->nvariables};
    const char *what[3] = {"inputs", "outputs", "variables"};
    size_t var_bytes = 0;
    for (int l = 0; l < 3; l++) {
        printf("%s:\n", what[l]);
        for (int i = 0; i < counts[l]; i++) {
            printf("  %-24s ", lists[l][i].name);
            print_type(stdout, (kiln_dtype)lists[l][i].dtype, lists[l][i].rank, lists[l][i].dims);
            printf("\n");
            if (l == 2) var_bytes += lists[l][i].bytes;
        }
    }
    printf("arena bytes: %zu (alignment %zu)\nvariable bytes: %zu\n", d->arena_bytes, d->alignment, var_bytes);
    dlclose(dl);
    return 0;
}

static int cmd_info(int argc, char **argv)
{
    const char *path = NULL;
    int dim = 1, rc;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) return fputs(HELP_INFO, stdout), 0;
        if (!strcmp(a, "--dim")) {
            if (i + 1 >= argc) return usage_error("info", "--dim needs a value");
            if ((rc = parse_int("info", a, argv[++i], 1, 1 << 30, &dim))) return rc;
        } else if (a[0] == '-') {
            return usage_error("info", "unknown option '%s'", a);
        } else if (!path) {
            path = a;
        } else {
            return usage_error("info", "one MODEL only ('%s' and '%s')", path, a);
        }
    }
    if (!path) return usage_error("info", "no MODEL given");
    if (ends_with(path, ".so")) return info_library(path);
    model m = {0};
    if ((rc = load_graph(&m, path))) {
        model_free(&m);
        return rc;
    }
    const kiln_graph *g = m.graph;
    printf("%s: %d nodes\ninputs:\n", path, kiln_graph_node_count(g));
    int64_t dims[KILN_MAX_RANK];
    for (int i = 0; i < m.ninputs; i++) {
        int rank = kiln_value_dims(g, m.inputs[i], dims);
        printf("  %-24s ", m.input_names[i]);
        print_type(stdout, kiln_value_dtype(g, m.inputs[i]), rank, dims);
        printf("\n");
    }
    printf("outputs:\n");
    for (int i = 0; i < m.noutputs; i++) {
        int rank = kiln_value_dims(g, m.outputs[i], dims);
        printf("  %-24s ", m.output_names[i]);
        print_type(stdout, kiln_value_dtype(g, m.outputs[i]), rank, dims);
        printf("\n");
    }
    size_t const_bytes = 0, var_bytes = 0;
    for (int i = 0; i < g->nnodes; i++) {
        const ir_node *n = &g->nodes[i];
        if (n->op == IR_OP_Constant) const_bytes += kiln_tensor_nbytes(ir_node_tensor(n, "value"));
        if (n->op == IR_OP_Variable) var_bytes += kiln_tensor_nbytes(ir_node_tensor(n, "value"));
    }
    printf("constant bytes: %zu\nvariable bytes: %zu\n", const_bytes, var_bytes);
    ir_type types[MAX_IO];
    for (int i = 0; i < m.ninputs; i++) {
        types[i].dtype = kiln_value_dtype(g, m.inputs[i]);
        concrete_dims(g, m.inputs[i], dim, &types[i].rank, types[i].dims);
    }
    cg_signature sig = {m.ninputs, m.inputs, types, m.noutputs, m.outputs, 0, NULL};
    cg_spec spec;
    cg_plan plan;
    kiln_status *st = kiln_status_new();
    cg_options co = {.opt_level = 2};
    if (cg_specialize(g, &sig, &spec, st) == KILN_OK) {
        if (cg_optimize(&spec, &co, st) == KILN_OK && cg_plan_memory(&spec, &plan, st) == KILN_OK) {
            double flops = 0;
            for (int i = 0; i < spec.g->nnodes; i++) flops += node_flops(spec.g, &spec.g->nodes[i]);
            printf("compiled (default passes) for inputs with symbolic dims = %d:\n", dim);
            printf("  arena bytes: %zu\n  kernels: %d\n  FLOPs per run: %.4g\n", plan.arena_size, plan.nkernels, flops);
            cg_plan_free(&plan);
        } else {
            rc = fail("%s", kiln_status_message(st));
        }
        cg_spec_free(&spec);
    } else {
        rc = fail("%s", kiln_status_message(st));
    }
    kiln_status_free(st);
    model_free(&m);
    return rc;
}

/* ---- dump ---- */

static const char HELP_DUMP[] =
    "usage: kiln dump MODEL [--format text|dot] [--after PASS] [--passes a,b,c] [--dim N]\n"
    "Prints MODEL's graph (a .kiln file), one node per line, or as Graphviz DOT.\n"
    "With --after, the graph as the compiler sees it after that pass of the\n"
    "pipeline (the default one, or --passes), specialized for the model's\n"
    "inputs with symbolic dims taking --dim (default 1).\n";

/* Specializes m's graph for its inputs and runs the passes up to `after`,
 * printing the graph then. */
static int dump_after(model *m, const char *after, const char *pipeline, int dim)
{
    const char *full = pipeline ? pipeline : pass_default_pipeline();
    bool found = !strcmp(after, "all");
    for (const char *p = full; *p && !found;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        found = n == strlen(after) && !strncmp(p, after, n);
        p += n + (e ? 1 : 0);
    }
    if (!found) return fail("pass '%s' is not in the pipeline '%s'", after, full);
    ir_type types[MAX_IO];
    for (int i = 0; i < m->ninputs; i++) {
        types[i].dtype = kiln_value_dtype(m->graph, m->inputs[i]);
        concrete_dims(m->graph, m->inputs[i], dim, &types[i].rank, types[i].dims);
    }
    cg_signature sig = {m->ninputs, m->inputs, types, m->noutputs, m->outputs, 0, NULL};
    cg_options o = {.opt_level = 2, .pipeline = full, .print_after = after, .print_to = stdout};
    cg_spec spec;
    kiln_status *st = kiln_status_new();
    int rc = 0;
    if (cg_specialize(m->graph, &sig, &spec, st) || cg_optimize(&spec, &o, st)) rc = fail("%s", kiln_status_message(st));
    if (spec.g) cg_spec_free(&spec);
    kiln_status_free(st);
    return rc;
}

static int cmd_dump(int argc, char **argv)
{
    const char *path = NULL, *format = "text", *after = NULL, *passes = NULL;
    int rc, dim = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) return fputs(HELP_DUMP, stdout), 0;
        if (!strcmp(a, "--after") || !strcmp(a, "--passes") || !strcmp(a, "--dim")) {
            if (i + 1 >= argc) return usage_error("dump", "%s needs a value", a);
            const char *v = argv[++i];
            if (!strcmp(a, "--after")) after = v;
            else if (!strcmp(a, "--passes")) passes = v;
            else if ((rc = parse_int("dump", a, v, 1, 1 << 30, &dim))) return rc;
        } else if (!strcmp(a, "--format")) {
            if (i + 1 >= argc) return usage_error("dump", "--format needs a value");
            format = argv[++i];
            if (strcmp(format, "text") && strcmp(format, "dot")) return usage_error("dump", "--format is text or dot, not '%s'", format);
        } else if (a[0] == '-') {
            return usage_error("dump", "unknown option '%s'", a);
        } else if (!path) {
            path = a;
        } else {
            return usage_error("dump", "one MODEL only ('%s' and '%s')", path, a);
        }
    }
    if (!path) return usage_error("dump", "no MODEL given");
    if (ends_with(path, ".so")) return fail("%s is a compiled library: it has no graph to dump (try 'kiln info')", path);
    model m = {0};
    if ((rc = load_graph(&m, path))) {
        model_free(&m);
        return rc;
    }
    if (after) {
        rc = dump_after(&m, after, passes, dim);
        model_free(&m);
        return rc;
    }
    char *s = strcmp(format, "dot") ? kiln_graph_to_text(m.graph) : kiln_graph_to_dot(m.graph);
    if (!s) rc = fail("out of memory");
    else fputs(s, stdout);
    kiln_free(s);
    model_free(&m);
    return rc;
}

int main(int argc, char **argv)
{
    static const char HELP[] =
        "usage: kiln COMMAND [ARGS]\n"
        "commands:\n"
        "  compile   compile a model to a shared object, object file or static archive\n"
        "  run       run a model on .npy inputs\n"
        "  bench     time a model\n"
        "  info      inputs, outputs, memory, kernels and FLOPs of a model\n"
        "  dump      print a model's graph as text or Graphviz\n"
        "'kiln COMMAND --help' describes each.\n";
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(HELP, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "run")) return cmd_run(argc - 1, argv + 1);
    if (!strcmp(cmd, "bench")) return cmd_bench(argc - 1, argv + 1);
    if (!strcmp(cmd, "compile")) return cmd_compile(argc - 1, argv + 1);
    if (!strcmp(cmd, "info")) return cmd_info(argc - 1, argv + 1);
    if (!strcmp(cmd, "dump")) return cmd_dump(argc - 1, argv + 1);
    fprintf(stderr, "kiln: unknown command '%s'\n%s", cmd, HELP);
    return 2;
}
