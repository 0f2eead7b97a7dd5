/* dataset.c -- kiln_dataset: numeric CSV (plain or gzip'd, through zlib)
 * and NPY files loaded into memory, split into train and test sets,
 * standardized, shuffled and cut into mini-batches for training loops.
 *
 * A CSV file is read whole (through zlib's gz* functions, which pass plain
 * files through unchanged) and parsed in two sweeps: the first counts the
 * data lines, the second parses the chosen cells straight into the
 * features and targets tensors. Errors name the file, the line and the
 * column, counted from 1. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "ir.h"

struct kiln_dataset {
    kiln_tensor *x; /* f32 [n, ...] */
    kiln_tensor *y; /* [n, ...] f32 or i64, or NULL */
};

void kiln_csv_options_init(kiln_csv_options *o)
{
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->delimiter = ',';
    o->target_column = -1;
    o->target_dtype = KILN_F32;
}

void kiln_dataset_free(kiln_dataset *d)
{
    if (!d) return;
    kiln_tensor_free(d->x);
    kiln_tensor_free(d->y);
    ir_free(d);
}

int64_t kiln_dataset_count(const kiln_dataset *d)
{
    return d ? d->x->dims[0] : 0;
}

const kiln_tensor *kiln_dataset_features(const kiln_dataset *d)
{
    return d ? d->x : NULL;
}

const kiln_tensor *kiln_dataset_targets(const kiln_dataset *d)
{
    return d ? d->y : NULL;
}

/* A dataset owning x and y (taken even on failure). */
static kiln_dataset *dataset_wrap(kiln_tensor *x, kiln_tensor *y, const char *what, kiln_status *st)
{
    kiln_dataset *d = x ? ir_calloc(1, sizeof *d) : NULL;
    if (!d) {
        kiln_tensor_free(x);
        kiln_tensor_free(y);
        ir_set_status(st, KILN_ERR_OUT_OF_MEMORY, "%s: out of memory", what);
        return NULL;
    }
    d->x = x;
    d->y = y;
    ir_status_ok(st);
    return d;
}

/* ---- Reading a whole (possibly gzip'd) file ------------------------------ */

/* The file's bytes, decompressed, NUL-terminated, in *out (ir_malloc'd) and
 * their count in *len. */
static int read_whole_file(const char *path, char **out, size_t *len, kiln_status *st)
{
    *out = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return ir_set_status(st, e == ENOENT ? KILN_ERR_NOT_FOUND : KILN_ERR_IO,
                             "reading '%s': cannot open: %s", path, strerror(e));
    }
    gzFile gz = gzdopen(fd, "rb");
    if (!gz) {
        close(fd);
        return ir_set_status(st, KILN_ERR_OUT_OF_MEMORY, "reading '%s': out of memory", path);
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = ir_malloc(cap);
    int rc = KILN_OK;
    if (!buf) goto oom;
    for (;;) {
        if (cap - n < 2) {
            if (cap > SIZE_MAX / 2) goto oom;
            char *b = ir_realloc(buf, cap * 2);
            if (!b) goto oom;
            buf = b;
            cap *= 2;
        }
        size_t want = cap - n - 1;
        if (want > (1u << 30)) want = 1u << 30;
        int k = gzread(gz, buf + n, (unsigned)want);
        if (k < 0) {
            int errnum;
            const char *msg = gzerror(gz, &errnum);
            rc = ir_set_status(st, KILN_ERR_IO, "reading '%s': %s", path,
                               errnum == Z_ERRNO ? strerror(errno) : msg);
            goto done;
        }
        if (k == 0) break;
        n += (size_t)k;
    }
    /* A gzip stream cut short reads as an early end of file: zlib keeps
     * the reason for gzerror. */
    int errnum = Z_OK;
    const char *msg = gzerror(gz, &errnum);
    if (errnum != Z_OK && errnum != Z_STREAM_END) {
        rc = ir_set_status(st, KILN_ERR_IO, "reading '%s': %s", path, msg);
        goto done;
    }
    buf[n] = 0;
    *out = buf;
    *len = n;
    buf = NULL;
    goto done;
oom:
    rc = ir_set_status(st, KILN_ERR_OUT_OF_MEMORY, "reading '%s': out of memory", path);
done:
    gzclose(gz); /* closes fd */
    ir_free(buf);
    return rc;
}

/* ---- CSV ------------------------------------------------------------------- */

typedef struct {
    const char *path;
    const char *p, *end; /* the rest of the text */
    long line;           /* the number of the line last taken, from 1 */
} csv_reader;

/* The next line (without its end of line) in [*b, *e); false at the end. */
static bool next_line(csv_reader *r, const char **b, const char **e)
{
    if (r->p >= r->end) return false;
    const char *nl = memchr(r->p, '\n', (size_t)(r->end - r->p));
    const char *stop = nl ? nl : r->end;
    *b = r->p;
    *e = stop > r->p && stop[-1] == '\r' ? stop - 1 : stop;
    r->p = nl ? nl + 1 : r->end;
    r->line++;
    return true;
}

static bool blank(const char *b, const char *e)
{
    for (; b < e; b++)
        if (*b != ' ' && *b != '\t') return false;
    return true;
}

static int count_cells(const char *b, const char *e, char delim)
{
    int n = 1;
    for (; b < e; b++) n += *b == delim;
    return n;
}

/* A cell as it may be quoted in a message: at most 40 bytes, other bytes
 * than printable ASCII as '?'. */
static void cell_text(const char *b, const char *e, char *out, size_t cap)
{
    size_t k = 0;
    for (; b < e && k + 4 < cap; b++) out[k++] = *b >= 32 && *b < 127 ? *b : '?';
    if (b < e) {
        memcpy(out + k, "...", 3);
        k += 3;
    }
    out[k] = 0;
}

/* Parses the cell [b, e) as a finite number; false if it is not one. */
static bool parse_number(const char *b, const char *e, double *v)
{
    while (b < e && (*b == ' ' || *b == '\t')) b++;
    while (e > b && (e[-1] == ' ' || e[-1] == '\t')) e--;
    if (b == e || e - b > 400) return false;
    char tmp[512];
    memcpy(tmp, b, (size_t)(e - b));
    tmp[e - b] = 0;
    char *stop;
    errno = 0;
    double x = strtod(tmp, &stop);
    if (*stop || !isfinite(x)) return false;
    *v = x;
    return true;
}

/* Resolves a column index that may count from the end; -1 if out of range. */
static int resolve_column(int c, int ncols)
{
    if (c < 0) c += ncols;
    return c >= 0 && c < ncols ? c : -1;
}

/* Parses one data line's chosen cells into row `row`: feature_pos[c] is
 * column c's position among the features (or -1), target the target's
 * column (or -1). The line has ncols cells (checked by the caller). */
static int parse_row(const csv_reader *r, const char *b, const char *e, char delim,
                     const int *feature_pos, int nfeatures, int target, kiln_dataset *d,
                     int64_t row, kiln_status *st)
{
    float *x = (float *)d->x->data + row * nfeatures;
    const char *cell = b;
    int col = 0;
    for (const char *q = b;; q++) {
        if (q < e && *q != delim) continue;
        int pos = feature_pos[col];
        if (pos >= 0 || col == target) {
            double v;
            char text[48];
            if (!parse_number(cell, q, &v)) {
                if (blank(cell, q))
                    return ir_set_status(st, KILN_ERR_INVALID_ARGUMENT,
                                         "'%s', line %ld, column %d: the cell is empty (a number "
                                         "is needed)",
                                         r->path, r->line, col + 1);
                cell_text(cell, q, text, sizeof text);
                return ir_set_status(st, KILN_ERR_INVALID_ARGUMENT,
                                     "'%s', line %ld, column %d: '%s' is not a number", r->path,
                                     r->line, col + 1, text);
            }
            if (pos >= 0) x[pos] = (float)v;
            if (col == target && d->y->dtype == KILN_I64) {
                if (v != floor(v) || fabs(v) > 9.0e18) {
                    cell_text(cell, q, text, sizeof text);
                    return ir_set_status(st, KILN_ERR_INVALID_ARGUMENT,
                                         "'%s', line %ld, column %d: the target '%s' is not an "
                                         "integer (class labels must be)",
                                         r->path, r->line, col + 1, text);
                }
                ((int64_t *)d->y->data)[row] = (int64_t)v;
            } else if (col == target) {
                ((float *)d->y->data)[row] = (float)v;
            }
        }
        col++;
        cell = q + 1;
        if (q >= e) break;
    }
    return KILN_OK;
}

/* Skips the leading lines and the header; false (status set) when the file
 * ends first. */
static bool skip_preamble(csv_reader *r, const kiln_csv_options *o, kiln_status *st)
{
    int skip = o->skip_lines + (o->header ? 1 : 0);
    const char *b, *e;
    for (int i = 0; i < skip; i++)
        if (!next_line(r, &b, &e)) {
            ir_set_status(st, KILN_ERR_INVALID_ARGUMENT,
                          "'%s': the file has %ld lines, fewer than the %d to skip%s", r->path,
                          r->line, skip, o->header ? " (with the header)" : "");
            return false;
        }
    return true;
}

kiln_dataset *kiln_dataset_read_csv(const char *path, const kiln_csv_options *opts,
                                    kiln_status *st)
{
    kiln_csv_options defaults;
    kiln_csv_options_init(&defaults);
    const kiln_csv_options *o = opts ? opts : &defaults;
    if (!path) {
        ir_set_status(st, KILN_ERR_INVALID_ARGUMENT, "kiln_dataset_read_csv: path is NULL");
        return NULL;
    }
    if (o->skip_lines < 0 || o->nfeature_columns < 0 ||
        (o->nfeature_columns > 0 && !o->feature_columns) ||
        (!o->no_target && o->target_dtype != KILN_F32 && o->target_dtype != KILN_I64) ||
        o->delimiter == '\n' || o->delimiter == '\r' || o->delimiter == 0) {
        ir_set_status(st, KILN_ERR_INVALID_ARGUMENT,
                      "kiln_dataset_read_csv '%s': bad options (skip_lines %d, nfeature_columns "
                      "%d, target dtype %s, delimiter %d)",
                      path, o->skip_lines, o->nfeature_columns, kiln_dtype_name(o->target_dtype),
                      (int)o->delimiter);
        return NULL;
    }
    char *text = NULL;
    size_t len = 0;
    int *feature_pos = NULL;
    kiln_dataset *d = NULL;
    if (read_whole_file(path, &text, &len, st)) return NULL;

    /* Sweep 1: the data lines and the cells of the first. */
    csv_reader r = {path, text, text + len, 0};
    const char *b, *e;
    if (!skip_preamble(&r, o, st)) goto fail;
    const char *data_start = r.p;
    long data_line0 = r.line, first_line = 0;
    int64_t rows = 0;
    int ncols = 0;
    while (next_line(&r, &b, &e)) {
        if (blank(b, e)) continue;
        if (rows == 0) {
            ncols = count_cells(b, e, o->delimiter);
            first_line = r.line;
        }
        rows++;
    }
    if (rows == 0) {
        ir_set_status(st, KILN_ERR_INVALID_ARGUMENT, "'%s': no data lines%s", path,
                      o->skip_lines || o->header ? " after the skipped lines" : "");
        goto fail;
    }

    /* The columns. */
    int target = -1;
    if (!o->no_target && (target = resolve_column(o->target_column, ncols)) < 0) {
        ir_set_status(st, KILN_ERR_INVALID_ARGUMENT,
                      "'%s': target column %d is out of range: line %ld has %d columns", path,
                      o->target_column, first_line, ncols);
        goto fail;
    }
    feature_pos = ir_malloc(sizeof(int) * (size_t)ncols);
    if (!feature_pos) goto oom;
    for (int c = 0; c < ncols; c++) feature_pos[c] = -1;
    int nfeatures = 0;
    if (o->feature_columns) {
        for (int i = 0; i < o->nfeature_columns; i++) {
            int c = resolve_column(o->feature_columns[i], ncols);
            if (c < 0 || feature_pos[c] >= 0) {
                ir_set_status(st, KILN_ERR_INVALID_ARGUMENT,
                              "'%s': feature column %d (feature_columns[%d]) is %s: line %ld has "
                              "%d columns",
                              path, o->feature_columns[i], i,
                              c < 0 ? "out of range" : "given twice", first_line, ncols);
                goto fail;
            }
            feature_pos[c] = nfeatures++;
        }
    } else {
        for (int c = 0; c < ncols; c++)
            if (c != target) feature_pos[c] = nfeatures++;
    }
    if (nfeatures == 0) {
        ir_set_status(st, KILN_ERR_INVALID_ARGUMENT, "'%s': no feature columns (line %ld has %d)",
                      path, first_line, ncols);
        goto fail;
    }

    d = ir_calloc(1, sizeof *d);
    if (!d) goto oom;
    d->x = kiln_tensor_new(KILN_F32, 2, (int64_t[]){rows, nfeatures});
    if (!d->x) goto oom;
    if (target >= 0 && !(d->y = kiln_tensor_new(o->target_dtype, 1, &rows))) goto oom;

    /* Sweep 2: check and parse every data line. */
    r.p = data_start;
    r.line = data_line0;
    int64_t row = 0;
    while (next_line(&r, &b, &e)) {
        if (blank(b, e)) continue;
        int n = count_cells(b, e, o->delimiter);
        if (n != ncols) {
            ir_set_status(st, KILN_ERR_INVALID_ARGUMENT,
                          "'%s', line %ld: %d columns, but line %ld (the first data line) has %d",
                          path, r.line, n, first_line, ncols);
            goto fail;
        }
        if (parse_row(&r, b, e, o->delimiter, feature_pos, nfeatures, target, d, row, st))
            goto fail;
        row++;
    }
    ir_free(text);
    ir_free(feature_pos);
    ir_status_ok(st);
    return d;
oom:
    ir_set_status(st, KILN_ERR_OUT_OF_MEMORY, "reading '%s': out of memory", path);
fail:
    ir_free(text);
    ir_free(feature_pos);
    kiln_dataset_free(d);
    return NULL;
}

/* ---- Tensors and NPY ----------------------------------------------------- */

/* x as f32 [n, ...] (rank 1 as [n, 1]); y as i64 or f32 [n, ...]. New
 * tensors in *xo, *yo; what = the caller's name for messages. */
static int convert_xy(const kiln_tensor *x, const kiln_tensor *y, const char *what,
                      kiln_tensor **xo, kiln_tensor **yo, kiln_status *st)
{
    *xo = *yo = NULL;
    char s1[IR_TYPE_STR_MAX], s2[IR_TYPE_STR_MAX];
    ir_type tx, ty;
    ir_tensor_type(x, &tx);
    if (tx.rank < 1 || tx.dims[0] < 1 || tx.dtype == KILN_BOOL)
        return ir_set_status(st, KILN_ERR_INVALID_ARGUMENT,
                             "%s: features %s must be numeric [n, ...] with n >= 1", what,
                             ir_type_str(&tx, s1, sizeof s1));
    if (y) {
        ir_tensor_type(y, &ty);
        if (ty.rank < 1 || ty.dims[0] != tx.dims[0])
            return ir_set_status(st, KILN_ERR_INVALID_ARGUMENT,
                                 "%s: targets %s must have one row per example of features %s",
                                 what, ir_type_str(&ty, s2, sizeof s2),
                                 ir_type_str(&tx, s1, sizeof s1));
    }
    int64_t dims[KILN_MAX_RANK] = {tx.dims[0], 1};
    int rank = tx.rank == 1 ? 2 : tx.rank;
    if (tx.rank > 1) memcpy(dims, tx.dims, sizeof(int64_t) * (size_t)tx.rank);
    *xo = kiln_tensor_new(KILN_F32, rank, dims);
    if (!*xo) goto oom;
    float *xf = (*xo)->data;
    for (size_t i = 0; i < x->size; i++) xf[i] = (float)ir_load_f64(x->dtype, x->data, i);
    if (y) {
        bool is_float = ir_dtype_is_float(y->dtype);
        *yo = kiln_tensor_new(is_float ? KILN_F32 : KILN_I64, y->rank, y->dims);
        if (!*yo) goto oom;
        for (size_t i = 0; i < y->size; i++) {
            if (is_float) ((float *)(*yo)->data)[i] = (float)ir_load_f64(y->dtype, y->data, i);
            else ((int64_t *)(*yo)->data)[i] = ir_load_i64(y->dtype, y->data, i);
        }
    }
    return KILN_OK;
oom:
    kiln_tensor_free(*xo);
    *xo = NULL;
    return ir_set_status(st, KILN_ERR_OUT_OF_MEMORY, "%s: out of memory", what);
}

kiln_dataset *kiln_dataset_from_tensors(const kiln_tensor *x, const kiln_tensor *y,
                                        kiln_status *st)
{
    const char *what = "kiln_dataset_from_tensors";
    if (!x) {
        ir_set_status(st, KILN_ERR_INVALID_ARGUMENT, "%s: features are NULL", what);
        return NULL;
    }
    kiln_tensor *xo, *yo;
    if (convert_xy(x, y, what, &xo, &yo, st)) return NULL;
    return dataset_wrap(xo, yo, what, st);
}

kiln_dataset *kiln_dataset_read_npy(const char *x_path, const char *y_path, kiln_status *st)
{
    if (!x_path) {
        ir_set_status(st, KILN_ERR_INVALID_ARGUMENT, "kiln_dataset_read_npy: x_path is NULL");
        return NULL;
    }
    kiln_tensor *x = kiln_tensor_read_npy(x_path, st), *y = NULL, *xo = NULL, *yo = NULL;
    if (!x) return NULL;
    if (y_path && !(y = kiln_tensor_read_npy(y_path, st))) {
        kiln_tensor_free(x);
        return NULL;
    }
    char *what = y_path ? ir_asprintf("reading '%s' and '%s'", x_path, y_path)
                        : ir_asprintf("reading '%s'", x_path);
    kiln_dataset *d = NULL;
    if (!what) ir_set_status(st, KILN_ERR_OUT_OF_MEMORY, "kiln_dataset_read_npy: out of memory");
    else if (!convert_xy(x, y, what, &xo, &yo, st)) d = dataset_wrap(xo, yo, what, st);
    ir_free(what);
    kiln_tensor_free(x);
    kiln_tensor_free(y);
    return d;
}

/* ---- Order: splitmix64, shuffling, splitting ----------------------------- */

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [0, bound), bound >= 1, without modulo bias. */
static uint64_t uniform_below(uint64_t *state, uint64_t bound)
{
    uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
    uint64_t r;
    do r = splitmix64(state);
    while (r >= limit);
    return r % bound;
}

/* Bytes of one example of t ([n, ...]). */
static size_t row_bytes(const kiln_tensor *t)
{
    return t->size / (size_t)t->dims[0] * kiln_dtype_size(t->dtype);
}

static void swap_rows(kiln_tensor *t, int64_t i, int64_t j)
{
    size_t rb = row_bytes(t);
    unsigned char *a = (unsigned char *)t->data + (size_t)i * rb;
    unsigned char *b = (unsigned char *)t->data + (size_t)j * rb;
    for (size_t k = 0; k < rb; k++) {
        unsigned char c = a[k];
        a[k] = b[k];
        b[k] = c;
    }
}

int kiln_dataset_shuffle(kiln_dataset *d, uint64_t seed, kiln_status *st)
{
    if (!d) return ir_set_status(st, KILN_ERR_INVALID_ARGUMENT, "kiln_dataset_shuffle: dataset is NULL");
    uint64_t state = seed;
    for (int64_t i = d->x->dims[0] - 1; i > 0; i--) {
        int64_t j = (int64_t)uniform_below(&state, (uint64_t)i + 1);
        if (j == i) continue;
        swap_rows(d->x, i, j);
        if (d->y) swap_rows(d->y, i, j);
    }
    ir_status_ok(st);
    return KILN_OK;
}

/* A new tensor of rows order[0..m) of t. */
static kiln_tensor *gather_rows(const kiln_tensor *t, const int64_t *order, int64_t first, int64_t m)
{
    int64_t dims[KILN_MAX_RANK];
    memcpy(dims, t->dims, sizeof dims);
    dims[0] = m;
    kiln_tensor *o = kiln_tensor_new(t->dtype, t->rank, dims);
    if (!o) return NULL;
    size_t rb = row_bytes(t);
    for (int64_t i = 0; i < m; i++) {
        int64_t src = order ? order[first + i] : first + i;
        memcpy((unsigned char *)o->data + (size_t)i * rb,
               (const unsigned char *)t->data + (size_t)src * rb, rb);
    }
    return o;
}

int kiln_dataset_split(const kiln_dataset *d, double test_fraction, uint64_t seed,
                       kiln_dataset **train, kiln_dataset **test, kiln_status *st)
{
    if (train) *train = NULL;
    if (test) *test = NULL;
    if (!d || !train || !test)
        return ir_set_status(st, KILN_ERR_INVALID_ARGUMENT,
                             "kiln_dataset_split: dataset or an output is NULL");
    int64_t n = d->x->dims[0];
    double nt = ceil(test_fraction * (double)n);
    if (!(test_fraction > 0 && test_fraction < 1) || nt < 1 || nt > (double)(n - 1))
        return ir_set_status(st, KILN_ERR_INVALID_ARGUMENT,
                             "kiln_dataset_split: test_fraction %g of %lld examples must be in "
                             "(0, 1) and leave both parts at least one example",
                             test_fraction, (long long)n);
    int64_t ntest = (int64_t)nt;
    kiln_dataset *a = NULL, *b = NULL;
    int64_t *order = ir_malloc(sizeof(int64_t) * (size_t)n);
    if (!order) goto oom;
    /* The permutation kiln_dataset_shuffle(seed) applies. */
    for (int64_t i = 0; i < n; i++) order[i] = i;
    uint64_t state = seed;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)uniform_below(&state, (uint64_t)i + 1);
        int64_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    a = ir_calloc(1, sizeof *a);
    b = ir_calloc(1, sizeof *b);
    if (!a || !b) goto oom;
    if (!(b->x = gather_rows(d->x, order, 0, ntest))) goto oom;
    if (!(a->x = gather_rows(d->x, order, ntest, n - ntest))) goto oom;
    if (d->y && !(b->y = gather_rows(d->y, order, 0, ntest))) goto oom;
    if (d->y && !(a->y = gather_rows(d->y, order, ntest, n - ntest))) goto oom;
    ir_free(order);
    *train = a;
    *test = b;
    ir_status_ok(st);
    return KILN_OK;
oom:
    ir_free(order);
    kiln_dataset_free(a);
    kiln_dataset_free(b);
    return ir_set_status(st, KILN_ERR_OUT_OF_MEMORY, "kiln_dataset_split: out of memory");
}

/* ---- Standardizing ------------------------------------------------------- */

static void apply_standardize(kiln_tensor *x, const double *mean, const double *scale, size_t f)
{
    float *v = x->data;
    for (size_t i = 0; i < x->size; i++) v[i] = (float)(((double)v[i] - mean[i % f]) / scale[i % f]);
}

int kiln_dataset_standardize(kiln_dataset *train, kiln_dataset *test, kiln_tensor **mean_out,
                             kiln_tensor **scale_out, kiln_status *st)
{
    if (mean_out) *mean_out = NULL;
    if (scale_out) *scale_out = NULL;
    if (!train)
        return ir_set_status(st, KILN_ERR_INVALID_ARGUMENT,
                             "kiln_dataset_standardize: the training set is NULL");
    const kiln_tensor *x = train->x;
    if (test) {
        bool same = test->x->rank == x->rank;
        for (int i = 1; same && i < x->rank; i++) same = test->x->dims[i] == x->dims[i];
        if (!same) {
            char s1[IR_TYPE_STR_MAX], s2[IR_TYPE_STR_MAX];
            ir_type t1, t2;
            ir_tensor_type(x, &t1);
            ir_tensor_type(test->x, &t2);
            return ir_set_status(st, KILN_ERR_INVALID_ARGUMENT,
                                 "kiln_dataset_standardize: the training features %s and the test "
                                 "features %s differ in an example's shape",
                                 ir_type_str(&t1, s1, sizeof s1), ir_type_str(&t2, s2, sizeof s2));
        }
    }
    int64_t n = x->dims[0];
    size_t f = x->size / (size_t)n;
    double *mean = ir_calloc(f, sizeof(double)), *scale = ir_calloc(f, sizeof(double));
    kiln_tensor *mt = NULL, *stt = NULL;
    if (!mean || !scale) goto oom;
    if (mean_out && !(mt = kiln_tensor_new(KILN_F32, x->rank - 1, x->dims + 1))) goto oom;
    if (scale_out && !(stt = kiln_tensor_new(KILN_F32, x->rank - 1, x->dims + 1))) goto oom;
    const float *v = x->data;
    for (int64_t i = 0; i < n; i++)
        for (size_t k = 0; k < f; k++) mean[k] += v[(size_t)i * f + k];
    for (size_t k = 0; k < f; k++) mean[k] /= (double)n;
    for (int64_t i = 0; i < n; i++)
        for (size_t k = 0; k < f; k++) {
            double dv = v[(size_t)i * f + k] - mean[k];
            scale[k] += dv * dv;
        }
    for (size_t k = 0; k < f; k++) {
        scale[k] = sqrt(scale[k] / (double)n);
        if (!(scale[k] > 0)) scale[k] = 1; /* a constant feature: centred only */
        if (mt) ((float *)mt->data)[k] = (float)mean[k];
        if (stt) ((float *)stt->data)[k] = (float)scale[k];
    }
    apply_standardize(train->x, mean, scale, f);
    if (test) apply_standardize(test->x, mean, scale, f);
    ir_free(mean);
    ir_free(scale);
    if (mean_out) *mean_out = mt;
    if (scale_out) *scale_out = stt;
    ir_status_ok(st);
    return KILN_OK;
oom:
    ir_free(mean);
    ir_free(scale);
    kiln_tensor_free(mt);
    kiln_tensor_free(stt);
    return ir_set_status(st, KILN_ERR_OUT_OF_MEMORY, "kiln_dataset_standardize: out of memory");
}

/* ---- Batches --------------------------------------------------------------- */

int64_t kiln_dataset_batch_count(const kiln_dataset *d, int64_t batch_size, int drop_last)
{
    if (!d || batch_size < 1) return 0;
    int64_t n = d->x->dims[0];
    return drop_last ? n / batch_size : (n + batch_size - 1) / batch_size;
}

int kiln_dataset_batch(const kiln_dataset *d, int64_t index, int64_t batch_size, int drop_last,
                       kiln_tensor **x, kiln_tensor **y, kiln_status *st)
{
    if (x) *x = NULL;
    if (y) *y = NULL;
    if (!d || !x || batch_size < 1)
        return ir_set_status(st, KILN_ERR_INVALID_ARGUMENT,
                             "kiln_dataset_batch: %s", !d || !x ? "dataset or x is NULL"
                                                               : "batch_size must be >= 1");
    int64_t count = kiln_dataset_batch_count(d, batch_size, drop_last);
    if (index < 0 || index >= count)
        return ir_set_status(st, KILN_ERR_INVALID_ARGUMENT,
                             "kiln_dataset_batch: batch %lld does not exist: %lld examples make "
                             "%lld batches of %lld%s",
                             (long long)index, (long long)d->x->dims[0], (long long)count,
                             (long long)batch_size, drop_last ? " (the partial one dropped)" : "");
    int64_t first = index * batch_size, n = d->x->dims[0];
    int64_t m = n - first < batch_size ? n - first : batch_size;
    kiln_tensor *bx = gather_rows(d->x, NULL, first, m), *by = NULL;
    if (!bx || (y && d->y && !(by = gather_rows(d->y, NULL, first, m)))) {
        kiln_tensor_free(bx);
        return ir_set_status(st, KILN_ERR_OUT_OF_MEMORY, "kiln_dataset_batch: out of memory");
    }
    *x = bx;
    if (y) *y = by;
    ir_status_ok(st);
    return KILN_OK;
}
