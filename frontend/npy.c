/* npy.c -- NumPy .npy tensor files: kiln_tensor_read_npy and
 * kiln_tensor_write_npy. docs/npy.md describes what is supported.
 *
 * A .npy file is the magic "\x93NUMPY", a version byte pair (1.0, 2.0 or
 * 3.0), the header length (2 bytes little-endian for 1.0, 4 for 2.0/3.0),
 * the header -- a Python dict literal such as
 *   {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
 * padded with spaces and a '\n' -- and then the raw elements.
 *
 * The reader treats the file as untrusted: the header is parsed by a small
 * strict parser (no Python evaluation), every size is checked for overflow,
 * and the data size the header claims is checked against the file size
 * before anything is allocated for it, so a hostile file costs at most an
 * allocation the size of itself. The writer produces exactly the bytes
 * numpy's np.save writes for the same array. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ir.h"

#define NPY_MAGIC "\x93NUMPY"
#define NPY_MAGIC_LEN 6
/* numpy pads the preamble (magic, version, length, header) to this. */
#define NPY_ALIGN 64
/* numpy leaves room after the dict for the growth axis to reach this many
 * digits, so that appending to the file can rewrite the header in place. */
#define NPY_GROWTH_DIGITS 21
/* Longest string (descr, key) the header parser accepts. */
#define NPY_STR_MAX 32

/* The dtypes kiln reads and writes, with the descr kiln writes. */
typedef struct {
    kiln_dtype dtype;
    char kind; /* numpy's type kind: f i u b, and V (void) for bf16 */
    int size;
    const char *descr;
} npy_type;

static const npy_type npy_types[] = {
    {KILN_F32, 'f', 4, "<f4"},  {KILN_F64, 'f', 8, "<f8"}, {KILN_F16, 'f', 2, "<f2"},
    {KILN_BF16, 'V', 2, "|V2"}, {KILN_I8, 'i', 1, "|i1"},  {KILN_U8, 'u', 1, "|u1"},
    {KILN_I32, 'i', 4, "<i4"},  {KILN_I64, 'i', 8, "<i8"}, {KILN_BOOL, 'b', 1, "|b1"},
    {KILN_I16, 'i', 2, "<i2"},  {KILN_U16, 'u', 2, "<u2"}, {KILN_U32, 'u', 4, "<u4"},
    {KILN_U64, 'u', 8, "<u8"},
};
#define NPY_NTYPES (sizeof npy_types / sizeof npy_types[0])

static bool host_is_little_endian(void)
{
    const uint16_t one = 1;
    uint8_t first;
    memcpy(&first, &one, 1);
    return first == 1;
}

static void swap_bytes(uint8_t *p, size_t n, size_t esz)
{
    if (esz < 2) return;
    for (size_t i = 0; i < n; i++, p += esz)
        for (size_t a = 0, b = esz - 1; a < b; a++, b--) {
            uint8_t x = p[a];
            p[a] = p[b];
            p[b] = x;
        }
}

/* "(2, 3)", "(4,)", "()": the shape as Python writes a tuple. */
static void shape_repr(int rank, const int64_t *dims, char *buf, size_t n)
{
    size_t len = (size_t)snprintf(buf, n, "(");
    for (int i = 0; i < rank && len < n; i++)
        len += (size_t)snprintf(buf + len, n - len, "%s%" PRId64, i ? ", " : "", dims[i]);
    if (len < n) snprintf(buf + len, n - len, rank == 1 ? ",)" : ")");
}

/* ---- Reading ------------------------------------------------------------- */

typedef struct {
    const char *path;
    kiln_status *st;
} npy_reader;

/* Sets the status to "<path>: <message>" and returns code. The message is
 * formatted on the stack so that reporting needs no allocation but the
 * status's own. */
static int rd_error(npy_reader *r, int code, const char *fmt, ...) IR_PRINTF(3, 4);
static int rd_error(npy_reader *r, int code, const char *fmt, ...)
{
    char msg[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return ir_set_status(r->st, code, "%s: %s", r->path, msg);
}

/* Reads up to n bytes at offset off; returns the count (short at the end of
 * the file) or -1 with errno set. */
static ssize_t read_at(int fd, void *buf, size_t n, uint64_t off)
{
    size_t got = 0;
    while (got < n) {
        ssize_t k = pread(fd, (uint8_t *)buf + got, n - got, (off_t)(off + got));
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) return -1;
        if (k == 0) break;
        got += (size_t)k;
    }
    return (ssize_t)got;
}

/* What the header says. */
typedef struct {
    char descr[NPY_STR_MAX + 1];
    int fortran; /* -1 until seen */
    int rank;    /* -1 until seen */
    int64_t dims[IR_MAX_RANK];
} npy_header;

/* A cursor over the header text (NUL-terminated, no NULs inside). */
typedef struct {
    npy_reader *r;
    const char *start, *p;
} hparser;

static int hp_error(hparser *h, const char *what)
{
    return rd_error(h->r, KILN_ERR_INVALID_ARGUMENT,
                    "malformed .npy header: %s (at byte %ld of the header)", what,
                    (long)(h->p - h->start));
}

static void hp_skip_ws(hparser *h)
{
    while (*h->p == ' ' || *h->p == '\t' || *h->p == '\n' || *h->p == '\r') h->p++;
}

/* A Python string literal in single or double quotes, without escapes. */
static int hp_string(hparser *h, char *out, const char *what)
{
    char q = *h->p;
    if (q != '\'' && q != '"') {
        char m[96];
        snprintf(m, sizeof m, "%s is not a string", what);
        return hp_error(h, m);
    }
    h->p++;
    size_t n = 0;
    for (;; h->p++) {
        char c = *h->p;
        if (c == q) break;
        if (c == 0) return hp_error(h, "unterminated string");
        if (c == '\\') return hp_error(h, "escape sequences in strings are not supported");
        if ((unsigned char)c < 0x20 || (unsigned char)c > 0x7e)
            return hp_error(h, "non-printable character in a string");
        if (n == NPY_STR_MAX) return hp_error(h, "string too long");
        out[n++] = c;
    }
    out[n] = 0;
    h->p++;
    return KILN_OK;
}

/* True if the text at p is the word w (not followed by more of a name). */
static bool hp_word(hparser *h, const char *w)
{
    size_t n = strlen(w);
    if (strncmp(h->p, w, n) != 0) return false;
    char c = h->p[n];
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')
        return false;
    h->p += n;
    return true;
}

/* A non-negative decimal integer (Python 2's 'L' suffix allowed). */
static int hp_dim(hparser *h, int64_t *out)
{
    if (*h->p == '-') return hp_error(h, "negative dimension in 'shape'");
    if (*h->p < '0' || *h->p > '9') return hp_error(h, "'shape' is not a tuple of integers");
    int64_t v = 0;
    while (*h->p >= '0' && *h->p <= '9') {
        int d = *h->p - '0';
        if (v > (INT64_MAX - d) / 10) return hp_error(h, "dimension in 'shape' too large");
        v = v * 10 + d;
        h->p++;
    }
    if (*h->p == 'L' || *h->p == 'l') h->p++;
    *out = v;
    return KILN_OK;
}

/* A tuple of dims: (), (3,), (2, 3) or (2, 3,). */
static int hp_shape(hparser *h, npy_header *hd)
{
    if (*h->p != '(') return hp_error(h, "'shape' is not a tuple");
    h->p++;
    hp_skip_ws(h);
    int n = 0;
    bool comma = false;
    while (*h->p != ')') {
        if (n == IR_MAX_RANK)
            return hp_error(h, "'shape' has more than 8 dimensions (kiln's largest rank is 8)");
        int code = hp_dim(h, &hd->dims[n]);
        if (code) return code;
        n++;
        hp_skip_ws(h);
        comma = *h->p == ',';
        if (comma) {
            h->p++;
            hp_skip_ws(h);
        } else if (*h->p != ')') {
            return hp_error(h, "expected ',' or ')' in 'shape'");
        }
    }
    if (n == 1 && !comma)
        return hp_error(h, "'shape' is not a tuple (a 1-d shape is written (n,))");
    h->p++;
    hd->rank = n;
    return KILN_OK;
}

static int hp_dict(hparser *h, npy_header *hd)
{
    bool have_descr = false;
    hp_skip_ws(h);
    if (*h->p != '{') return hp_error(h, "the header is not a dict");
    h->p++;
    for (;;) {
        hp_skip_ws(h);
        if (*h->p == '}') break;
        char key[NPY_STR_MAX + 1];
        int code = hp_string(h, key, "a key");
        if (code) return code;
        hp_skip_ws(h);
        if (*h->p != ':') return hp_error(h, "expected ':' after a key");
        h->p++;
        hp_skip_ws(h);
        if (strcmp(key, "descr") == 0) {
            if (have_descr) return hp_error(h, "duplicate key 'descr'");
            if (*h->p == '[')
                return hp_error(h, "structured dtypes (a list as 'descr') are not supported");
            code = hp_string(h, hd->descr, "'descr'");
            have_descr = true;
        } else if (strcmp(key, "fortran_order") == 0) {
            if (hd->fortran >= 0) return hp_error(h, "duplicate key 'fortran_order'");
            if (hp_word(h, "True"))
                hd->fortran = 1;
            else if (hp_word(h, "False"))
                hd->fortran = 0;
            else
                code = hp_error(h, "'fortran_order' is neither True nor False");
        } else if (strcmp(key, "shape") == 0) {
            if (hd->rank >= 0) return hp_error(h, "duplicate key 'shape'");
            code = hp_shape(h, hd);
        } else {
            char m[96];
            snprintf(m, sizeof m, "unexpected key '%s'", key);
            return hp_error(h, m);
        }
        if (code) return code;
        hp_skip_ws(h);
        if (*h->p == ',') {
            h->p++;
        } else if (*h->p != '}') {
            return hp_error(h, "expected ',' or '}' after a value");
        }
    }
    h->p++;
    hp_skip_ws(h);
    if (*h->p) return hp_error(h, "unexpected text after the dict");
    const char *missing = !have_descr       ? "descr"
                          : hd->fortran < 0 ? "fortran_order"
                          : hd->rank < 0    ? "shape"
                                            : NULL;
    if (missing) {
        char m[64];
        snprintf(m, sizeof m, "the header has no '%s' key", missing);
        return hp_error(h, m);
    }
    return KILN_OK;
}

/* Maps a descr to a dtype; *swap says whether the elements need swapping
 * to the host's byte order. */
static int descr_type(npy_reader *r, const char *descr, const npy_type **out, bool *swap)
{
    const char *s = descr;
    char order = '=';
    if (*s == '<' || *s == '>' || *s == '|' || *s == '=') order = *s++;
    char kind = *s ? *s++ : 0;
    int size = 0;
    while (*s >= '0' && *s <= '9' && size < 1000) size = size * 10 + (*s++ - '0');
    const npy_type *ty = NULL;
    if (!*s)
        for (size_t i = 0; i < NPY_NTYPES; i++)
            if (npy_types[i].kind == kind && npy_types[i].size == size) ty = &npy_types[i];
    if (!ty)
        return rd_error(
            r, KILN_ERR_INVALID_ARGUMENT,
            "unsupported dtype '%s' (kiln reads f4 f8 f2 i1 u1 i4 i8 b1, and V2 as bf16)", descr);
    if (kind == 'V' && order == '>')
        return rd_error(r, KILN_ERR_INVALID_ARGUMENT,
                        "dtype '%s' is not read as bf16: bf16 is '|V2' or '<V2' (little-endian)",
                        descr);
    /* '|' and '=' mean the host's order, except for bf16, which has no
     * numpy type of its own and is always stored little-endian. */
    bool little = host_is_little_endian();
    if (kind == 'V')
        *swap = !little;
    else
        *swap = size > 1 && ((order == '>' && little) || (order == '<' && !little));
    *out = ty;
    return KILN_OK;
}

/* Rearranges Fortran-order (column-major) elements src into C order in t. */
static void fortran_to_c(const uint8_t *src, kiln_tensor *t, size_t esz)
{
    int64_t fstrides[IR_MAX_RANK];
    int64_t s = 1;
    for (int d = 0; d < t->rank; d++) {
        fstrides[d] = s;
        s *= t->dims[d];
    }
    ir_iter it;
    ir_iter_init(&it, t->rank, t->dims);
    ir_iter_add(&it, fstrides);
    uint8_t *dst = t->data;
    for (size_t i = 0; i < t->size; i++, ir_iter_next(&it))
        memcpy(dst + i * esz, src + (size_t)it.off[0] * esz, esz);
}

/* Parses the header; fills the dtype and shape and checks the data size
 * against what the file holds after the header. */
static int read_header(npy_reader *r, int fd, uint64_t fsize, npy_header *hd, const npy_type **ty,
                       bool *swap, uint64_t *data_off, size_t *nbytes)
{
    uint8_t pre[12];
    ssize_t got = read_at(fd, pre, sizeof pre, 0);
    if (got < 0) return rd_error(r, KILN_ERR_IO, "read failed: %s", strerror(errno));
    size_t n = (size_t)got;
    if (n < NPY_MAGIC_LEN || memcmp(pre, NPY_MAGIC, NPY_MAGIC_LEN) != 0) {
        if (memcmp(pre, NPY_MAGIC, n < NPY_MAGIC_LEN ? n : NPY_MAGIC_LEN) == 0)
            return rd_error(r, KILN_ERR_INVALID_ARGUMENT,
                            "truncated .npy file: %zu bytes, shorter than the magic", n);
        return rd_error(r, KILN_ERR_INVALID_ARGUMENT,
                        "not a .npy file (bad magic: it does not start with \"\\x93NUMPY\")");
    }
    if (n < 8)
        return rd_error(r, KILN_ERR_INVALID_ARGUMENT, "truncated .npy file: no format version");
    unsigned major = pre[6], minor = pre[7];
    if (major < 1 || major > 3 || minor != 0)
        return rd_error(r, KILN_ERR_INVALID_ARGUMENT,
                        "unsupported .npy format version %u.%u (kiln reads 1.0, 2.0 and 3.0)",
                        major, minor);
    size_t lenbytes = major == 1 ? 2 : 4;
    if (n < 8 + lenbytes)
        return rd_error(r, KILN_ERR_INVALID_ARGUMENT, "truncated .npy file: no header length");
    uint32_t hlen = (uint32_t)pre[8] | (uint32_t)pre[9] << 8;
    if (lenbytes == 4) hlen |= (uint32_t)pre[10] << 16 | (uint32_t)pre[11] << 24;
    uint64_t off = 8 + lenbytes + (uint64_t)hlen;
    if (off > fsize)
        return rd_error(r, KILN_ERR_INVALID_ARGUMENT,
                        "truncated .npy file: the header length %" PRIu32
                        " goes beyond the end of the file (%" PRIu64 " bytes)",
                        hlen, fsize);

    char *text = ir_malloc((size_t)hlen + 1);
    if (!text)
        return rd_error(r, KILN_ERR_OUT_OF_MEMORY,
                        "out of memory reading a %" PRIu32 "-byte header", hlen);
    got = read_at(fd, text, hlen, 8 + lenbytes);
    if (got < 0 || (size_t)got != hlen) {
        int e = errno;
        ir_free(text);
        if (got < 0) return rd_error(r, KILN_ERR_IO, "read failed: %s", strerror(e));
        return rd_error(r, KILN_ERR_IO, "the file shrank while it was read");
    }
    text[hlen] = 0;
    int code = KILN_OK;
    if (memchr(text, 0, hlen)) {
        code =
            rd_error(r, KILN_ERR_INVALID_ARGUMENT, "malformed .npy header: it contains a NUL byte");
    } else {
        hparser h = {.r = r, .start = text, .p = text};
        hd->fortran = hd->rank = -1;
        code = hp_dict(&h, hd);
    }
    ir_free(text);
    if (code) return code;

    code = descr_type(r, hd->descr, ty, swap);
    if (code) return code;

    char shape[IR_MAX_RANK * 22 + 4];
    shape_repr(hd->rank, hd->dims, shape, sizeof shape);
    /* The byte size of the nonzero dims must fit, even when a zero dim makes
     * the array empty: strides over it must be representable. */
    uint64_t bytes = (uint64_t)(*ty)->size, nonzero = bytes;
    bool empty = false;
    for (int d = 0; d < hd->rank; d++) {
        uint64_t dim = (uint64_t)hd->dims[d];
        if (dim == 0) {
            empty = true;
            continue;
        }
        if (nonzero > (uint64_t)INT64_MAX / dim)
            return rd_error(r, KILN_ERR_INVALID_ARGUMENT,
                            "shape %s of '%s' is too large (its byte size overflows)", shape,
                            hd->descr);
        nonzero *= dim;
    }
    bytes = empty ? 0 : nonzero;
    uint64_t avail = fsize - off;
    if (bytes > avail)
        return rd_error(r, KILN_ERR_INVALID_ARGUMENT,
                        "truncated .npy file: shape %s of '%s' needs %" PRIu64
                        " bytes of data but the file holds %" PRIu64 " after the header",
                        shape, hd->descr, bytes, avail);
    if (bytes < avail)
        return rd_error(r, KILN_ERR_INVALID_ARGUMENT,
                        "trailing data: %" PRIu64 " bytes after the %" PRIu64
                        " bytes of the array (shape %s of '%s')",
                        avail - bytes, bytes, shape, hd->descr);
    *data_off = off;
    *nbytes = (size_t)bytes;
    return KILN_OK;
}

static kiln_tensor *read_npy_fd(npy_reader *r, int fd)
{
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        rd_error(r, KILN_ERR_IO, "cannot stat: %s", strerror(errno));
        return NULL;
    }
    if (!S_ISREG(sb.st_mode)) {
        rd_error(r, KILN_ERR_INVALID_ARGUMENT, "not a regular file");
        return NULL;
    }
    uint64_t fsize = (uint64_t)sb.st_size;
    if (fsize > (uint64_t)SIZE_MAX / 4) {
        rd_error(r, KILN_ERR_INVALID_ARGUMENT, "file too large (%" PRIu64 " bytes)", fsize);
        return NULL;
    }
    npy_header hd;
    const npy_type *ty = NULL;
    bool swap = false;
    uint64_t off = 0;
    size_t nbytes = 0;
    if (read_header(r, fd, fsize, &hd, &ty, &swap, &off, &nbytes)) return NULL;

    size_t esz = (size_t)ty->size;
    bool transpose = hd.fortran && hd.rank > 1 && nbytes > 0;
    kiln_tensor *t = kiln_tensor_new(ty->dtype, hd.rank, hd.dims);
    uint8_t *fbuf = transpose ? ir_malloc(nbytes) : NULL;
    if (!t || (transpose && !fbuf)) {
        rd_error(r, KILN_ERR_OUT_OF_MEMORY, "out of memory reading %zu bytes of data", nbytes);
        goto fail;
    }
    uint8_t *dst = transpose ? fbuf : t->data;
    ssize_t got = read_at(fd, dst, nbytes, off);
    if (got < 0) {
        rd_error(r, KILN_ERR_IO, "read failed: %s", strerror(errno));
        goto fail;
    }
    if ((size_t)got != nbytes) {
        rd_error(r, KILN_ERR_IO, "the file shrank while it was read");
        goto fail;
    }
    if (swap) swap_bytes(dst, t->size, esz);
    if (transpose) fortran_to_c(fbuf, t, esz);
    if (ty->dtype == KILN_BOOL) {
        /* kiln's bools are 0 or 1; numpy reads any nonzero byte as True. */
        uint8_t *b = t->data;
        for (size_t i = 0; i < t->size; i++) b[i] = b[i] != 0;
    }
    ir_free(fbuf);
    ir_status_ok(r->st);
    return t;
fail:
    ir_free(fbuf);
    kiln_tensor_free(t);
    return NULL;
}

kiln_tensor *kiln_tensor_read_npy(const char *path, kiln_status *status)
{
    if (!path) {
        ir_set_status(status, KILN_ERR_INVALID_ARGUMENT, "kiln_tensor_read_npy: path is NULL");
        return NULL;
    }
    npy_reader r = {.path = path, .st = status};
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        rd_error(&r, e == ENOENT ? KILN_ERR_NOT_FOUND : KILN_ERR_IO, "cannot open: %s",
                 strerror(e));
        return NULL;
    }
    kiln_tensor *t = read_npy_fd(&r, fd);
    close(fd);
    return t;
}

/* ---- Writing ------------------------------------------------------------- */

/* Writes all n bytes; 0 or an errno. */
static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) return errno;
        if (k == 0) return EIO;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Writes the elements little-endian: straight from the tensor on a
 * little-endian host, else swapped through a bounded buffer. */
static int write_data(int fd, const kiln_tensor *t, size_t esz, bool *oom)
{
    const uint8_t *p = t->data;
    size_t n = t->size * esz;
    if (esz == 1 || host_is_little_endian()) return write_all(fd, p, n);
    enum { CHUNK = 1 << 16 };
    uint8_t *buf = ir_malloc(CHUNK);
    if (!buf) {
        *oom = true;
        return ENOMEM;
    }
    int err = 0;
    while (n && !err) {
        size_t k = n < CHUNK ? n : CHUNK;
        memcpy(buf, p, k);
        swap_bytes(buf, k / esz, esz);
        err = write_all(fd, buf, k);
        p += k;
        n -= k;
    }
    ir_free(buf);
    return err;
}

/* fsync of the directory holding path, so the rename is durable. Best
 * effort: a failure here does not fail the write. */
static void sync_parent_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? ir_strdup(path) : NULL;
    if (slash && !dir) return;
    if (dir) dir[slash == path ? 1 : slash - path] = 0;
    int fd = open(dir ? dir : ".", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    ir_free(dir);
}

/* The preamble numpy writes for a C-order array: magic, version, header
 * length, the dict, the growth-axis spaces, then spaces and '\n' up to a
 * multiple of NPY_ALIGN. Returns its length. */
static size_t build_preamble(const npy_type *ty, int rank, const int64_t *dims, uint8_t *buf,
                             size_t cap)
{
    char dict[IR_MAX_RANK * 22 + 128];
    char shape[IR_MAX_RANK * 22 + 4];
    shape_repr(rank, dims, shape, sizeof shape);
    int len = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }",
                       ty->descr, shape);
    size_t dlen = (size_t)len;
    if (rank > 0) {
        char first[24];
        int digits = snprintf(first, sizeof first, "%" PRId64, dims[0]);
        for (int i = digits; i < NPY_GROWTH_DIGITS; i++) dict[dlen++] = ' ';
    }
    /* Version 1.0 unless the header outgrows its 2-byte length. */
    size_t lenbytes = 2;
    size_t pad = NPY_ALIGN - (8 + lenbytes + dlen + 1) % NPY_ALIGN;
    if (dlen + 1 + pad > 0xffff) {
        lenbytes = 4;
        pad = NPY_ALIGN - (8 + lenbytes + dlen + 1) % NPY_ALIGN;
    }
    size_t hlen = dlen + pad + 1, total = 8 + lenbytes + hlen;
    if (total > cap) return 0;
    memcpy(buf, NPY_MAGIC, NPY_MAGIC_LEN);
    buf[6] = lenbytes == 2 ? 1 : 2;
    buf[7] = 0;
    for (size_t i = 0; i < lenbytes; i++) buf[8 + i] = (uint8_t)(hlen >> (8 * i));
    memcpy(buf + 8 + lenbytes, dict, dlen);
    memset(buf + 8 + lenbytes + dlen, ' ', pad);
    buf[total - 1] = '\n';
    return total;
}

int kiln_tensor_write_npy(const kiln_tensor *t, const char *path, kiln_status *status)
{
    if (!path)
        return ir_set_status(status, KILN_ERR_INVALID_ARGUMENT,
                             "kiln_tensor_write_npy: path is NULL");
    if (!t) return ir_set_status(status, KILN_ERR_INVALID_ARGUMENT, "%s: the tensor is NULL", path);
    if (ir_dtype_is_storage(t->dtype))
        return ir_set_status(status, KILN_ERR_UNIMPLEMENTED,
                             "%s: numpy has no %s dtype; Cast the tensor to f32 (or i8/u8) to "
                             "write it",
                             path, kiln_dtype_name(t->dtype));
    const npy_type *ty = NULL;
    for (size_t i = 0; i < NPY_NTYPES; i++)
        if (npy_types[i].dtype == t->dtype) ty = &npy_types[i];
    if (!ty || t->rank < 0 || t->rank > IR_MAX_RANK || (t->size && !t->data))
        return ir_set_status(status, KILN_ERR_INVALID_ARGUMENT, "%s: not a valid tensor", path);

    uint8_t pre[512];
    size_t prelen = build_preamble(ty, t->rank, t->dims, pre, sizeof pre);
    if (!prelen) return ir_set_status(status, KILN_ERR_INTERNAL, "%s: .npy header too long", path);

    int code = KILN_OK;
    char *tmp = ir_asprintf("%s.tmp.%ld", path, (long)getpid());
    if (!tmp)
        return ir_set_status(status, KILN_ERR_OUT_OF_MEMORY, "%s: out of memory while writing",
                             path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) {
        code = ir_set_status(status, KILN_ERR_IO, "%s: cannot create '%s': %s", path, tmp,
                             strerror(errno));
        ir_free(tmp);
        return code;
    }
    bool oom = false;
    int err = write_all(fd, pre, prelen);
    if (!err) err = write_data(fd, t, (size_t)ty->size, &oom);
    if (!err && fsync(fd) != 0) err = errno;
    if (close(fd) != 0 && !err) err = errno;
    if (!err && rename(tmp, path) != 0) err = errno;
    if (err) {
        unlink(tmp);
        code =
            oom ? ir_set_status(status, KILN_ERR_OUT_OF_MEMORY, "%s: out of memory while writing",
                                path)
                : ir_set_status(status, KILN_ERR_IO, "%s: writing failed: %s", path, strerror(err));
    } else {
        sync_parent_dir(path);
        ir_status_ok(status);
    }
    ir_free(tmp);
    return code;
}
