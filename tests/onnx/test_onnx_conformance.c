/* test_onnx_conformance.c -- the ONNX backend test runner. Each case of
 * the ONNX project's test data (node/, simple/, pytorch-operator/,
 * pytorch-converted/ under ../shared/onnx-tests, or $KILN_ONNX_TESTS) is
 * imported, run with the reference backend and the compiled backend, and
 * compared with its expected outputs (rtol 1e-3, atol 1e-7; integers and
 * bools exactly). Prints one line per case (PASS, FAIL or SKIP with the
 * reason) and `N passed, N failed, N skipped`.
 *
 *   test_onnx_conformance            the cases in tests/onnx/expected_pass.txt;
 *                                    exits 1 if any of them does not pass
 *   test_onnx_conformance --all      every case (make onnx-conformance)
 *   test_onnx_conformance DIR...     the given case folders (relative to the data)
 *   test_onnx_conformance --op-table the supported-op table (markdown) for docs/onnx.md
 */
#include <dirent.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/testutil.h"
#include "ir.h"
#include "../frontend/onnx_internal.h"

#define MAX_IO 64
#define RTOL 1e-3
#define ATOL 1e-7

enum { R_PASS, R_FAIL, R_SKIP };

static int cases_bound; /* cases imported with inputs bound as constants */

/* snprintf into a path buffer; a path too long reads as empty (and then
 * does not exist). */
#define PATHF(buf, ...)                                                                   \
    do {                                                                                  \
        if (snprintf(buf, sizeof buf, __VA_ARGS__) >= (int)sizeof buf) (buf)[0] = 0; \
    } while (0)

static bool is_dir(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static bool is_file(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* Compares got with want; writes why into msg when they differ. */
static bool same(const kiln_tensor *got, const kiln_tensor *want, char *msg, size_t n)
{
    char a[IR_TYPE_STR_MAX], b[IR_TYPE_STR_MAX];
    ir_type tg, tw;
    ir_tensor_type(got, &tg);
    ir_tensor_type(want, &tw);
    if (!ir_type_equal(&tg, &tw)) {
        snprintf(msg, n, "got %s, expected %s", ir_type_str(&tg, a, sizeof a),
                 ir_type_str(&tw, b, sizeof b));
        return false;
    }
    for (size_t i = 0; i < got->size; i++) {
        if (ir_dtype_is_storage_float(got->dtype)) {
            /* float8/float4: every value decodes exactly; no tolerance */
            double g = ir_load_f64(got->dtype, got->data, i), w = ir_load_f64(want->dtype, want->data, i);
            if ((isnan(w) && isnan(g)) || g == w) continue;
            snprintf(msg, n, "element %zu: got %.9g (0x%02x), expected %.9g (0x%02x)", i, g,
                     ((const uint8_t *)got->data)[i], w, ((const uint8_t *)want->data)[i]);
            return false;
        } else if (ir_dtype_is_float(got->dtype)) {
            double g = ir_load_f64(got->dtype, got->data, i), w = ir_load_f64(want->dtype, want->data, i);
            if (isnan(w) && isnan(g)) continue;
            if (isinf(w) && g == w) continue;
            if (!(fabs(g - w) <= ATOL + RTOL * fabs(w))) {
                snprintf(msg, n, "element %zu: got %.9g, expected %.9g", i, g, w);
                return false;
            }
        } else {
            int64_t g = ir_load_i64(got->dtype, got->data, i), w = ir_load_i64(want->dtype, want->data, i);
            if (g != w) {
                snprintf(msg, n, "element %zu: got %lld, expected %lld", i, (long long)g, (long long)w);
                return false;
            }
        }
    }
    return true;
}

static int load_set(const char *dir, const char *prefix, kiln_tensor **ts, int *count, char *why,
                    size_t n)
{
    *count = 0;
    for (int i = 0; i < MAX_IO; i++) {
        char p[PATH_MAX];
        PATHF(p, "%s/%s_%d.pb", dir, prefix, i);
        if (!is_file(p)) break;
        kiln_status *st = kiln_status_new();
        ts[i] = onnx_read_tensor_file(p, st);
        if (!ts[i]) {
            snprintf(why, n, "%s_%d.pb: %s", prefix, i, kiln_status_message(st));
            int code = kiln_status_code(st);
            kiln_status_free(st);
            return code == KILN_ERR_UNIMPLEMENTED ? R_SKIP : R_FAIL;
        }
        kiln_status_free(st);
        *count = i + 1;
    }
    return R_PASS;
}

/* Sequences and optionals are stored as other messages; a TensorProto
 * parse of them yields no dtype. */
static bool unsupported_data(const char *why)
{
    return strstr(why, "element type") != NULL || strstr(why, "not a TensorProto") != NULL;
}

/* The names of the model's graph inputs that are not initializers, in
 * order (the data sets' input_N.pb follow it); -1 if unreadable. */
static int model_inputs(const char *model, char **names, int max)
{
    FILE *f = fopen(model, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = len > 0 ? malloc((size_t)len) : NULL;
    size_t got = buf ? fread(buf, 1, (size_t)len, f) : 0;
    fclose(f);
    Onnx__ModelProto *m = got == (size_t)len && buf ? onnx__model_proto__unpack(NULL, got, buf) : NULL;
    free(buf);
    if (!m || !m->graph) {
        if (m) onnx__model_proto__free_unpacked(m, NULL);
        return -1;
    }
    int n = 0;
    const Onnx__GraphProto *gp = m->graph;
    for (size_t k = 0; k < gp->n_input && n < max; k++) {
        bool init = false;
        for (size_t j = 0; j < gp->n_initializer && !init; j++)
            init = strcmp(gp->initializer[j]->name, gp->input[k]->name) == 0;
        if (!init) names[n++] = strdup(gp->input[k]->name);
    }
    onnx__model_proto__free_unpacked(m, NULL);
    return n;
}

static bool same_tensor(const kiln_tensor *a, const kiln_tensor *b)
{
    if (a->dtype != b->dtype || a->rank != b->rank) return false;
    for (int d = 0; d < a->rank; d++)
        if (a->dims[d] != b->dims[d]) return false;
    return memcmp(a->data, b->data, kiln_tensor_nbytes(a)) == 0;
}

/* kiln needs some inputs constant (shapes, axes, k, scales) that the node
 * tests feed as graph inputs. When the import says so, the case is imported
 * again with such inputs bound to their data-set values
 * (kiln_import_options.constant_inputs), one more at a time from the last
 * input back, as long as every data set holds the same value for them; the
 * other inputs stay placeholders and run compiled. bound[i] marks the data
 * set inputs bound. */
static bool needs_constant(const char *why)
{
    return strstr(why, "must be a constant") || strstr(why, "must be constants") ||
           strstr(why, "must be constant");
}

static kiln_graph *import_bound(const char *dir, const char *model, bool *bound, int *nbound, kiln_status *st)
{
    char *names[MAX_IO];
    int nn = model_inputs(model, names, MAX_IO);
    kiln_graph *g = NULL;
    if (nn <= 0) return NULL;
    kiln_tensor *in[MAX_IO] = {0};
    int nin = 0;
    char set0[PATH_MAX], tmp[256];
    PATHF(set0, "%s/test_data_set_0", dir);
    if (load_set(set0, "input", in, &nin, tmp, sizeof tmp) != R_PASS || nin != nn) goto done;
    /* an input can be bound only if every data set feeds it the same */
    bool same[MAX_IO];
    for (int i = 0; i < nin; i++) same[i] = true;
    for (int s = 1;; s++) {
        char set[PATH_MAX];
        PATHF(set, "%s/test_data_set_%d", dir, s);
        if (!is_dir(set)) break;
        kiln_tensor *other[MAX_IO] = {0};
        int no = 0;
        if (load_set(set, "input", other, &no, tmp, sizeof tmp) != R_PASS || no != nin) {
            for (int i = 0; i < nin; i++) same[i] = false;
        } else {
            for (int i = 0; i < nin; i++) same[i] = same[i] && same_tensor(in[i], other[i]);
        }
        for (int i = 0; i < no; i++) kiln_tensor_free(other[i]);
    }
    const char *bnames[MAX_IO];
    const kiln_tensor *bvals[MAX_IO];
    for (int i = nin - 1; i >= 0; i--) {
        if (!same[i]) continue;
        bound[i] = true;
        int nb = 0;
        for (int k = 0; k < nin; k++)
            if (bound[k]) {
                bnames[nb] = names[k];
                bvals[nb++] = in[k];
            }
        kiln_import_options o;
        kiln_import_options_init(&o);
        o.constant_input_names = bnames;
        o.constant_input_values = bvals;
        o.nconstant_inputs = nb;
        g = kiln_import_onnx(model, &o, st);
        *nbound = nb;
        if (g || !needs_constant(kiln_status_message(st))) break;
    }
    if (!g) {
        for (int i = 0; i < nin; i++) bound[i] = false;
        *nbound = 0;
    }
done:
    for (int i = 0; i < nin; i++) kiln_tensor_free(in[i]);
    for (int i = 0; i < nn; i++) free(names[i]);
    return g;
}

/* Imports the model, fixing symbolic input dims from the first data set
 * (and binding inputs kiln needs constant, see import_bound). */
static kiln_graph *import_case(const char *dir, char *why, size_t n, int *code, bool *bound, int *nbound)
{
    char model[PATH_MAX], set0[PATH_MAX];
    PATHF(model, "%s/model.onnx", dir);
    PATHF(set0, "%s/test_data_set_0", dir);
    kiln_status *st = kiln_status_new();
    kiln_graph *g = kiln_import_onnx(model, NULL, st);
    if (!g && needs_constant(kiln_status_message(st))) {
        kiln_status *st2 = kiln_status_new();
        g = import_bound(dir, model, bound, nbound, st2);
        kiln_status_free(st2);
    }
    kiln_tensor *in[MAX_IO] = {0};
    int nin = 0;
    bool symbolic = !g;
    /* (a case with bound inputs runs with its symbolic dims as they are) */
    if (g && !*nbound) {
        kiln_value ph[MAX_IO];
        int np = kiln_graph_inputs(g, ph, MAX_IO);
        for (int i = 0; i < np && i < MAX_IO; i++) {
            int64_t d[KILN_MAX_RANK];
            int r = kiln_value_dims(g, ph[i], d);
            for (int k = 0; k < r; k++)
                if (d[k] < 0) symbolic = true;
        }
    }
    if (symbolic && is_dir(set0)) {
        char tmp[256];
        load_set(set0, "input", in, &nin, tmp, sizeof tmp);
        kiln_input_shape shapes[MAX_IO];
        int ns = 0;
        const char *names[MAX_IO];
        if (g) {
            kiln_value ph[MAX_IO];
            int np = kiln_graph_inputs(g, ph, MAX_IO);
            for (int i = 0; i < np && i < nin; i++) names[i] = kiln_value_node_name(g, ph[i]);
            ns = np < nin ? np : nin;
        }
        char *owned[MAX_IO] = {0};
        for (int i = 0; i < ns; i++) {
            owned[i] = strdup(names[i]);
            shapes[i] = (kiln_input_shape){owned[i], in[i]->rank, in[i]->dims};
        }
        kiln_import_options o;
        kiln_import_options_init(&o);
        o.input_shapes = shapes;
        o.ninput_shapes = ns;
        if (ns) {
            kiln_graph_free(g);
            g = kiln_import_onnx(model, &o, st);
        }
        for (int i = 0; i < ns; i++) free(owned[i]);
    }
    for (int i = 0; i < nin; i++) kiln_tensor_free(in[i]);
    *code = kiln_status_code(st);
    if (!g) snprintf(why, n, "%s", kiln_status_message(st));
    kiln_status_free(st);
    return g;
}

static int run_case(const char *root, const char *name, char *why, size_t n)
{
    char dir[PATH_MAX];
    PATHF(dir, "%s/%s", root, name);
    *why = 0;
    if (!is_dir(dir)) {
        snprintf(why, n, "no such case folder");
        return R_FAIL;
    }
    int code, nbound = 0;
    bool bound[MAX_IO] = {0};
    kiln_graph *g = import_case(dir, why, n, &code, bound, &nbound);
    if (!g) return code == KILN_ERR_UNIMPLEMENTED ? R_SKIP : R_FAIL;
    if (nbound) cases_bound++;
    kiln_value ph[MAX_IO], outs[MAX_IO];
    int np = kiln_graph_inputs(g, ph, MAX_IO), no = kiln_graph_outputs(g, outs, MAX_IO);
    int result = R_PASS, sets = 0;
    for (int s = 0; result == R_PASS; s++) {
        char set[PATH_MAX];
        PATHF(set, "%s/test_data_set_%d", dir, s);
        if (!is_dir(set)) break;
        sets++;
        kiln_tensor *in[MAX_IO] = {0}, *want[MAX_IO] = {0};
        kiln_tensor *ref[MAX_IO] = {0}, *cmp[MAX_IO] = {0};
        int nin = 0, nw = 0;
        result = load_set(set, "input", in, &nin, why, n);
        if (result == R_PASS && nbound) {
            /* drop the inputs bound as constants */
            int k = 0;
            for (int i = 0; i < nin; i++) {
                if (bound[i]) kiln_tensor_free(in[i]);
                else in[k++] = in[i];
            }
            for (int i = k; i < nin; i++) in[i] = NULL;
            nin = k;
        }
        if (result == R_PASS) result = load_set(set, "output", want, &nw, why, n);
        if (result != R_PASS && unsupported_data(why)) result = R_SKIP;
        if (result == R_PASS && (nin != np || nw > no)) {
            snprintf(why, n, "data set %d has %d inputs and %d outputs; the graph has %d and %d", s,
                     nin, nw, np, no);
            result = R_FAIL;
        }
        char msg[512];
        if (result == R_PASS &&
            tu_run_backend(g, KILN_BACKEND_REFERENCE, nw, outs, ref, np, ph, in, msg, sizeof msg)) {
            snprintf(why, n, "reference run: %s", msg);
            result = R_FAIL;
        }
        if (result == R_PASS &&
            tu_run_backend(g, KILN_BACKEND_DEFAULT, nw, outs, cmp, np, ph, in, msg, sizeof msg)) {
            snprintf(why, n, "compiled run: %s", msg);
            result = R_FAIL;
        }
        for (int i = 0; result == R_PASS && i < nw; i++) {
            if (!same(ref[i], want[i], msg, sizeof msg)) {
                snprintf(why, n, "reference output %d: %s", i, msg);
                result = R_FAIL;
            } else if (!same(cmp[i], want[i], msg, sizeof msg)) {
                snprintf(why, n, "compiled output %d: %s", i, msg);
                result = R_FAIL;
            }
        }
        for (int i = 0; i < MAX_IO; i++) {
            kiln_tensor_free(in[i]);
            kiln_tensor_free(want[i]);
            kiln_tensor_free(ref[i]);
            kiln_tensor_free(cmp[i]);
        }
    }
    if (result == R_PASS && !sets) {
        snprintf(why, n, "no test data sets");
        result = R_FAIL;
    }
    kiln_graph_free(g);
    return result;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every case folder of the four suites, sorted. */
static char **all_cases(const char *root, int *count)
{
    static const char *const suites[] = {"node", "simple", "pytorch-operator", "pytorch-converted"};
    char **list = NULL;
    int n = 0, cap = 0;
    for (size_t s = 0; s < sizeof suites / sizeof suites[0]; s++) {
        char p[PATH_MAX];
        PATHF(p, "%s/%s", root, suites[s]);
        DIR *d = opendir(p);
        if (!d) continue;
        struct dirent *e;
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.') continue;
            if (n == cap) {
                cap = cap ? cap * 2 : 1024;
                list = realloc(list, sizeof(char *) * (size_t)cap);
            }
            size_t len = strlen(suites[s]) + strlen(e->d_name) + 2;
            list[n] = malloc(len);
            snprintf(list[n], len, "%s/%s", suites[s], e->d_name);
            n++;
        }
        closedir(d);
    }
    if (n) qsort(list, (size_t)n, sizeof(char *), cmp_str);
    *count = n;
    return list;
}

static char **read_list(const char *path, int *count)
{
    FILE *f = fopen(path, "r");
    char **list = NULL;
    int n = 0, cap = 0;
    char line[1024];
    *count = -1;
    if (!f) return NULL;
    while (fgets(line, sizeof line, f)) {
        char *p = line;
        while (*p == ' ' || *p == '\t') p++;
        p[strcspn(p, " \t\r\n#")] = 0;
        if (!*p) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 1024;
            list = realloc(list, sizeof(char *) * (size_t)cap);
        }
        list[n++] = strdup(p);
    }
    fclose(f);
    *count = n;
    return list;
}

/* The repository root: the current folder when it holds the test lists,
 * else the parent of the build folder. */
static void repo_root(char *out, size_t n)
{
    if (is_file("tests/onnx/expected_pass.txt")) {
        snprintf(out, n, ".");
        return;
    }
    snprintf(out, n, "%s", KILN_BUILD_DIR);
    char *slash = strrchr(out, '/');
    if (slash) *slash = 0;
}

int main(int argc, char **argv)
{
    char root[PATH_MAX], data[PATH_MAX], listpath[PATH_MAX + 64];
    repo_root(root, sizeof root);
    const char *env = getenv("KILN_ONNX_TESTS");
    if (env && *env) PATHF(data, "%s", env);
    else PATHF(data, "%s/../shared/onnx-tests", root);
    if (argc > 1 && strcmp(argv[1], "--op-table") == 0) {
        ir_buf b = {0};
        onnx_op_table(&b);
        char *t = ir_buf_take(&b);
        fputs(t ? t : "", stdout);
        ir_free(t);
        return t ? 0 : 1;
    }
    bool all = argc > 1 && strcmp(argv[1], "--all") == 0;
    bool verbose = all || argc > 1 || getenv("KILN_ONNX_VERBOSE");
    char **cases;
    int ncases;
    if (all) {
        cases = all_cases(data, &ncases);
    } else if (argc > 1) {
        cases = argv + 1;
        ncases = argc - 1;
    } else {
        snprintf(listpath, sizeof listpath, "%s/tests/onnx/expected_pass.txt", root);
        cases = read_list(listpath, &ncases);
        if (ncases < 0) {
            fprintf(stderr, "cannot read %s\n", listpath);
            return 1;
        }
    }
    if (!is_dir(data)) {
        printf("ONNX test data not found at %s (set KILN_ONNX_TESTS): 0 passed, 0 failed, %d skipped\n",
               data, ncases > 0 ? ncases : 0);
        if (cases != argv + 1) {
            for (int i = 0; i < ncases; i++) free(cases[i]);
            free(cases);
        }
        return 0;
    }
    /* KILN_ONNX_SAMPLE=N runs every Nth listed case (make check-asan: the
     * sanitizer build is several times slower; make test runs them all) */
    const char *sample_env = getenv("KILN_ONNX_SAMPLE");
    int sample = sample_env ? atoi(sample_env) : 1;
    if (sample < 1) sample = 1;
    /* The cases are independent: KILN_ONNX_JOBS processes (default: one per
     * online CPU, at most 8) each run every jobs-th of them and report their
     * counts through a pipe. */
    const char *jobs_env = getenv("KILN_ONNX_JOBS");
    long jobs = jobs_env ? atol(jobs_env) : sysconf(_SC_NPROCESSORS_ONLN);
    if (jobs < 1) jobs = 1;
    if (jobs > 8) jobs = 8;
    int counts[5] = {0}; /* passed, failed, skipped, bound, leaked blocks */
    pid_t pids[8];
    int fds[8];
    int started = 0;
    fflush(stdout);
    for (int j = 0; j < jobs; j++) {
        int fd[2] = {-1, -1};
        pid_t pid = jobs > 1 && pipe(fd) == 0 ? fork() : -1;
        if (pid > 0) {
            close(fd[1]);
            pids[started] = pid;
            fds[started++] = fd[0];
            continue;
        }
        if (pid < 0 && jobs > 1) { /* no pipe or no fork: this process runs the rest */
            if (fd[0] >= 0) close(fd[0]), close(fd[1]);
            fd[0] = fd[1] = -1;
        }
        if (pid == 0) close(fd[0]);
        int pass = 0, failed = 0, skipped = 0;
        for (int i = 0, k = 0; i < ncases; i++) {
            if (i % sample) continue;
            if (pid == 0 && k++ % jobs != j) continue;
            if (pid < 0 && jobs > 1 && k++ % jobs < j) continue; /* done by the children */
            char why[1024];
            int r = run_case(data, cases[i], why, sizeof why);
            if (r == R_PASS) pass++;
            else if (r == R_FAIL) failed++;
            else skipped++;
            if (r == R_PASS && verbose) printf("PASS %s\n", cases[i]);
            else if (r == R_FAIL) printf("FAIL %s: %s\n", cases[i], why);
            else if (r == R_SKIP) printf("SKIP %s: %s\n", cases[i], why);
            fflush(stdout);
        }
        int mine[5] = {pass, failed, skipped, cases_bound, all ? 0 : (int)ir_alloc_live_blocks()};
        if (pid == 0) {
            ssize_t w = write(fd[1], mine, sizeof mine);
            _exit(w == (ssize_t)sizeof mine ? 0 : 1);
        }
        for (int c = 0; c < 5; c++) counts[c] += mine[c];
        break; /* this process ran the cases from j on */
    }
    for (int c = 0; c < started; c++) {
        int theirs[5], st = 0;
        ssize_t r = read(fds[c], theirs, sizeof theirs);
        close(fds[c]);
        waitpid(pids[c], &st, 0);
        if (r != (ssize_t)sizeof theirs || !WIFEXITED(st) || WEXITSTATUS(st)) {
            printf("FAIL: a worker process died (status %d)\n", st);
            counts[1]++;
            continue;
        }
        for (int k = 0; k < 5; k++) counts[k] += theirs[k];
    }
    if (counts[3])
        printf("%d cases ran with inputs kiln needs constant bound to their data-set values\n", counts[3]);
    printf("%d passed, %d failed, %d skipped\n", counts[0], counts[1], counts[2]);
    if (counts[4]) printf("leak: %d blocks still allocated\n", counts[4]);
    int failed = counts[1], skipped = counts[2];
    if (cases != argv + 1) {
        for (int i = 0; i < ncases; i++) free(cases[i]);
        free(cases);
    }
    /* In list mode every listed case must pass (a skip is a regression too). */
    return (all || argc > 1) ? 0 : (failed || skipped ? 1 : 0);
}
