/* kiln_format.c -- kiln's native graph file, .kiln: kiln_graph_save and
 * kiln_graph_load. The schema is frontend/kiln_format.proto (C code made by
 * protoc-c at build time); docs/kiln-format.md describes the file.
 *
 * A file is a serialized kiln_format.Graph whose last 5 bytes are its
 * `crc32` field: CRC-32 of every byte before it. The envelope (magic,
 * version, checksum) is checked on the raw bytes before protobuf-c parses
 * anything, so a foreign, future, truncated or corrupted file gets a precise
 * error. Loading then rebuilds the graph node by node through
 * ir_graph_add_node, so every node is re-checked by type inference exactly
 * as if built through the API: a hostile file cannot produce a graph the
 * builder would refuse. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "frontend/kiln_format.pb-c.h"
#include "ir.h"

#define KF_MAGIC "kiln.graph"
#define KF_VERSION 1u
/* The bytes every file starts with: field 1 (magic), length 10, the magic. */
static const uint8_t kf_prefix[] = {0x0a, 0x0a, 'k', 'i', 'l', 'n', '.', 'g', 'r', 'a', 'p', 'h'};
#define KF_PREFIX_LEN sizeof kf_prefix
/* The version field's tag (field 2, varint) and the checksum's (15, fixed32). */
#define KF_VERSION_TAG 0x10
#define KF_CRC_TAG 0x7d
#define KF_TRAILER_LEN 5
/* protobuf-c writes nested message lengths as 32-bit varints. */
#define KF_MAX_NODE_BYTES ((size_t)UINT32_MAX - 64)
/* Attributes per op that the loader checks for duplicates. */
#define KF_MAX_ATTRS 64

/* ---- helpers shared by save and load ---- */

/* CRC-32 (IEEE, reflected, as zlib's crc32). The table lives with the
 * caller so there is no global state to initialise. */
typedef struct {
    uint32_t table[256];
    uint32_t crc; /* running value, pre-inverted */
} crc32_state;

static void crc32_init(crc32_state *c)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t r = i;
        for (int k = 0; k < 8; k++) r = (r >> 1) ^ (0xedb88320u & (0u - (r & 1u)));
        c->table[i] = r;
    }
    c->crc = 0xffffffffu;
}

static void crc32_update(crc32_state *c, const uint8_t *p, size_t n)
{
    uint32_t r = c->crc;
    for (size_t i = 0; i < n; i++) r = c->table[(r ^ p[i]) & 0xffu] ^ (r >> 8);
    c->crc = r;
}

static uint32_t crc32_final(const crc32_state *c) { return c->crc ^ 0xffffffffu; }

static bool host_is_little_endian(void)
{
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 1;
}

/* Reverses the bytes of each of n elements of size esz in place. */
static void swap_elements(uint8_t *p, size_t n, size_t esz)
{
    if (esz < 2) return;
    for (size_t i = 0; i < n; i++, p += esz)
        for (size_t a = 0, b = esz - 1; a < b; a++, b--) {
            uint8_t t = p[a];
            p[a] = p[b];
            p[b] = t;
        }
}

/* True when the product of the dims, zeros and symbolic (-1) dims left
 * out, overflows int64: such a shape is refused even when a zero dim makes
 * it empty, since strides over it would overflow. */
static bool dims_overflow(int rank, const int64_t *dims)
{
    int64_t p = 1;
    for (int i = 0; i < rank; i++) {
        if (dims[i] <= 0) continue;
        if (p > INT64_MAX / dims[i]) return true;
        p *= dims[i];
    }
    return false;
}

/* ==== save ==== */

/* Attribute payloads that are messages of their own. */
typedef union {
    KilnFormat__IntList ints;
    KilnFormat__FloatList floats;
    KilnFormat__Tensor tensor;
} attr_payload;

/* The Graph message of a kiln graph. Every message struct lives in one
 * block; strings, lists, dims and tensor data point into the graph (or, on
 * a big-endian host, into little-endian copies in `swapped`). */
typedef struct {
    KilnFormat__Graph msg;
    void *block;
    void **swapped;
    int nswapped;
} save_msg;

static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

static void save_msg_free(save_msg *s)
{
    for (int i = 0; i < s->nswapped; i++) ir_free(s->swapped[i]);
    ir_free(s->swapped);
    ir_free(s->block);
    memset(s, 0, sizeof *s);
}

/* Fills pb from the attribute a (which is set). Returns false when out of
 * memory (a byte-swapped copy). */
static bool fill_attr(save_msg *s, KilnFormat__Attribute *pb, attr_payload *pl, const char *name,
                      const ir_attr *a)
{
    kiln_format__attribute__init(pb);
    pb->name = (char *)name;
    switch (a->kind) {
    case IR_ATTR_INT:
        pb->value_case = KILN_FORMAT__ATTRIBUTE__VALUE_I;
        pb->i = a->u.i;
        break;
    case IR_ATTR_DTYPE:
        pb->value_case = KILN_FORMAT__ATTRIBUTE__VALUE_DTYPE;
        pb->dtype = (KilnFormat__DType)a->u.i;
        break;
    case IR_ATTR_FLOAT:
        pb->value_case = KILN_FORMAT__ATTRIBUTE__VALUE_F;
        pb->f = a->u.f;
        break;
    case IR_ATTR_STRING:
        pb->value_case = KILN_FORMAT__ATTRIBUTE__VALUE_S;
        pb->s = a->u.s;
        break;
    case IR_ATTR_INTS:
        kiln_format__int_list__init(&pl->ints);
        pl->ints.n_values = (size_t)a->n;
        pl->ints.values = a->u.ints;
        pb->value_case = KILN_FORMAT__ATTRIBUTE__VALUE_INTS;
        pb->ints = &pl->ints;
        break;
    case IR_ATTR_FLOATS:
        kiln_format__float_list__init(&pl->floats);
        pl->floats.n_values = (size_t)a->n;
        pl->floats.values = a->u.floats;
        pb->value_case = KILN_FORMAT__ATTRIBUTE__VALUE_FLOATS;
        pb->floats = &pl->floats;
        break;
    case IR_ATTR_TENSOR: {
        const kiln_tensor *t = a->u.t;
        KilnFormat__Tensor *pt = &pl->tensor;
        kiln_format__tensor__init(pt);
        pt->dtype = (KilnFormat__DType)t->dtype;
        pt->n_dims = (size_t)t->rank;
        pt->dims = (int64_t *)t->dims;
        pt->data.len = kiln_tensor_nbytes(t);
        pt->data.data = t->data;
        if (!host_is_little_endian() && kiln_dtype_size(t->dtype) > 1 && pt->data.len) {
            uint8_t *copy = ir_malloc(pt->data.len);
            if (!copy) return false;
            memcpy(copy, t->data, pt->data.len);
            swap_elements(copy, t->size, kiln_dtype_size(t->dtype));
            s->swapped[s->nswapped++] = copy;
            pt->data.data = copy;
        }
        pb->value_case = KILN_FORMAT__ATTRIBUTE__VALUE_TENSOR;
        pb->tensor = pt;
        break;
    }
    case IR_ATTR_NONE: break;
    }
    return true;
}

/* Builds s->msg from g. Returns false when out of memory. */
static bool build_save_msg(save_msg *s, const kiln_graph *g)
{
    memset(s, 0, sizeof *s);
    kiln_format__graph__init(&s->msg);
    s->msg.magic = KF_MAGIC;
    s->msg.format_version = KF_VERSION;
    s->msg.producer = "kiln";

    size_t nn = (size_t)g->nnodes, ni = 0, na = 0, nt = 0, no = (size_t)g->noutputs;
    for (int i = 0; i < g->nnodes; i++) {
        const ir_node *n = &g->nodes[i];
        const ir_opdef *def = ir_op_def(n->op);
        ni += (size_t)n->ninputs;
        for (int k = 0; k < def->nattrs; k++) {
            if (n->attrs[k].kind == IR_ATTR_NONE) continue;
            na++;
            if (n->attrs[k].kind == IR_ATTR_TENSOR) nt++;
        }
    }
    size_t size = round16(nn * sizeof(KilnFormat__Node)) + round16(nn * sizeof(void *)) +
                  round16((ni + no) * sizeof(KilnFormat__ValueRef)) +
                  round16((ni + no) * sizeof(void *)) +
                  round16(na * (sizeof(KilnFormat__Attribute) + sizeof(attr_payload))) +
                  round16(na * sizeof(void *));
    s->block = ir_calloc(1, size);
    if (!s->block) return false;
    if (nt && !host_is_little_endian()) {
        s->swapped = ir_calloc(nt, sizeof(void *));
        if (!s->swapped) return false;
    }
    uint8_t *p = s->block;
#define TAKE(var, count, type)          \
    do {                                \
        var = (type *)(void *)p;        \
        p += round16((count) * sizeof(type)); \
    } while (0)
    KilnFormat__Node *nodes, **node_ptrs;
    KilnFormat__ValueRef *refs, **ref_ptrs;
    KilnFormat__Attribute *attrs, **attr_ptrs;
    attr_payload *payloads;
    TAKE(nodes, nn, KilnFormat__Node);
    TAKE(node_ptrs, nn, KilnFormat__Node *);
    TAKE(refs, ni + no, KilnFormat__ValueRef);
    TAKE(ref_ptrs, ni + no, KilnFormat__ValueRef *);
    TAKE(attrs, na, KilnFormat__Attribute);
    TAKE(payloads, na, attr_payload);
    TAKE(attr_ptrs, na, KilnFormat__Attribute *);
#undef TAKE

    size_t r = 0, a = 0;
    for (int i = 0; i < g->nnodes; i++) {
        const ir_node *n = &g->nodes[i];
        const ir_opdef *def = ir_op_def(n->op);
        KilnFormat__Node *pn = &nodes[i];
        kiln_format__node__init(pn);
        pn->op = (char *)def->name;
        pn->name = n->name;
        pn->n_inputs = (size_t)n->ninputs;
        pn->inputs = &ref_ptrs[r];
        for (int k = 0; k < n->ninputs; k++, r++) {
            kiln_format__value_ref__init(&refs[r]);
            refs[r].node = (uint32_t)n->inputs[k].node;
            refs[r].index = (uint32_t)n->inputs[k].index;
            ref_ptrs[r] = &refs[r];
        }
        pn->attrs = &attr_ptrs[a];
        for (int k = 0; k < def->nattrs; k++) {
            if (n->attrs[k].kind == IR_ATTR_NONE) continue;
            if (!fill_attr(s, &attrs[a], &payloads[a], def->attrs[k].name, &n->attrs[k]))
                return false;
            attr_ptrs[a] = &attrs[a];
            a++;
            pn->n_attrs++;
        }
        node_ptrs[i] = pn;
    }
    s->msg.n_nodes = nn;
    s->msg.nodes = node_ptrs;
    s->msg.n_outputs = no;
    s->msg.outputs = &ref_ptrs[r];
    for (size_t k = 0; k < no; k++, r++) {
        kiln_format__value_ref__init(&refs[r]);
        refs[r].node = (uint32_t)g->outputs[k].node;
        refs[r].index = (uint32_t)g->outputs[k].index;
        ref_ptrs[r] = &refs[r];
    }
    return true;
}

/* A ProtobufCBuffer that writes to a file descriptor through a buffer and
 * keeps the CRC of everything written. */
typedef struct {
    ProtobufCBuffer base; /* first: protobuf-c calls base.append */
    int fd;
    uint8_t *buf;
    size_t len, cap;
    crc32_state crc;
    int err; /* errno of the first failed write, or 0 */
} file_writer;

static void write_all(file_writer *w, const uint8_t *p, size_t n)
{
    while (n && !w->err) {
        ssize_t k = write(w->fd, p, n);
        if (k < 0) {
            if (errno == EINTR) continue;
            w->err = errno;
        } else if (k == 0) {
            w->err = EIO;
        } else {
            p += k;
            n -= (size_t)k;
        }
    }
}

static void writer_flush(file_writer *w)
{
    write_all(w, w->buf, w->len);
    w->len = 0;
}

static void writer_put(file_writer *w, const uint8_t *p, size_t n)
{
    if (w->err) return;
    if (w->len + n > w->cap) {
        writer_flush(w);
        if (n >= w->cap) {
            write_all(w, p, n);
            return;
        }
    }
    memcpy(w->buf + w->len, p, n);
    w->len += n;
}

static void writer_append(ProtobufCBuffer *b, size_t n, const uint8_t *p)
{
    file_writer *w = (file_writer *)(void *)b;
    crc32_update(&w->crc, p, n);
    writer_put(w, p, n);
}

/* fsync of the directory holding path, so the rename is durable. Best
 * effort: a failure here does not fail the save. */
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

/* Writes the message and its checksum to path through a temporary file
 * renamed into place. Returns KILN_OK or an error code (status set). */
static int write_file(const char *path, const KilnFormat__Graph *msg, kiln_status *st)
{
    file_writer w = {.base = {.append = writer_append}, .fd = -1, .cap = 1 << 16};
    int code = KILN_OK;
    char *tmp = ir_asprintf("%s.tmp.%ld", path, (long)getpid());
    w.buf = ir_malloc(w.cap);
    if (!tmp || !w.buf) {
        code = ir_set_status(st, KILN_ERR_OUT_OF_MEMORY, "%s: out of memory while saving", path);
        goto done;
    }
    w.fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (w.fd < 0) {
        code = ir_set_status(st, KILN_ERR_IO, "%s: cannot create '%s': %s", path, tmp,
                             strerror(errno));
        goto done;
    }
    crc32_init(&w.crc);
    protobuf_c_message_pack_to_buffer(&msg->base, &w.base);
    uint32_t crc = crc32_final(&w.crc);
    uint8_t trailer[KF_TRAILER_LEN] = {KF_CRC_TAG, (uint8_t)crc, (uint8_t)(crc >> 8),
                                       (uint8_t)(crc >> 16), (uint8_t)(crc >> 24)};
    writer_put(&w, trailer, sizeof trailer);
    writer_flush(&w);
    if (!w.err && fsync(w.fd) != 0) w.err = errno;
    if (close(w.fd) != 0 && !w.err) w.err = errno;
    w.fd = -1;
    if (!w.err && rename(tmp, path) != 0) w.err = errno;
    if (w.err) {
        code = ir_set_status(st, KILN_ERR_IO, "%s: writing failed: %s", path, strerror(w.err));
        unlink(tmp);
        goto done;
    }
    sync_parent_dir(path);
done:
    if (w.fd >= 0) {
        close(w.fd);
        unlink(tmp);
    }
    ir_free(w.buf);
    ir_free(tmp);
    return code;
}

void kiln_graph_save(const kiln_graph *g, const char *path, kiln_status *status)
{
    if (!g || !path || !*path) {
        ir_set_status(status, KILN_ERR_INVALID_ARGUMENT, "kiln_graph_save: %s is %s",
                      !g ? "the graph" : "the path", !g || !path ? "NULL" : "empty");
        return;
    }
    if (g->error_code) {
        ir_set_status(status, KILN_ERR_FAILED_PRECONDITION,
                      "%s: cannot save a graph that has an error: %s", path, kiln_graph_error(g));
        return;
    }
    save_msg s;
    if (!build_save_msg(&s, g)) {
        save_msg_free(&s);
        ir_set_status(status, KILN_ERR_OUT_OF_MEMORY, "%s: out of memory while saving", path);
        return;
    }
    for (size_t i = 0; i < s.msg.n_nodes; i++) {
        if (kiln_format__node__get_packed_size(s.msg.nodes[i]) > KF_MAX_NODE_BYTES) {
            ir_set_status(status, KILN_ERR_UNIMPLEMENTED,
                          "%s: node %zu ('%s') takes more than 4 GiB, the limit of a .kiln node",
                          path, i, s.msg.nodes[i]->name);
            save_msg_free(&s);
            return;
        }
    }
    if (write_file(path, &s.msg, status) == KILN_OK) ir_status_ok(status);
    save_msg_free(&s);
}

/* ==== load ==== */

/* protobuf-c allocations go through ir_malloc, so the allocation-failure
 * tests reach them; `failed` tells an out-of-memory parse from a bad file. */
typedef struct {
    ProtobufCAllocator base;
    bool failed;
} pb_allocator;

static void *pb_alloc(void *data, size_t n)
{
    pb_allocator *a = data;
    void *p = ir_malloc(n);
    if (!p) a->failed = true;
    return p;
}

static void pb_free(void *data, void *p)
{
    (void)data;
    ir_free(p);
}

typedef struct {
    const char *path;
    kiln_status *st;
    int node; /* index of the node being loaded, or -1 */
    const char *name, *op;
} load_ctx;

/* Sets the status to "<path>: [node N ('name', Op): ]<message>"; returns code. */
static int load_error(load_ctx *lc, int code, const char *fmt, ...) IR_PRINTF(3, 4);
static int load_error(load_ctx *lc, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *m = ir_vasprintf(fmt, ap);
    va_end(ap);
    const char *msg = m ? m : "out of memory";
    if (lc->node >= 0)
        ir_set_status(lc->st, code, "%s: node %d ('%s', %s): %s", lc->path, lc->node, lc->name,
                      lc->op, msg);
    else
        ir_set_status(lc->st, code, "%s: %s", lc->path, msg);
    ir_free(m);
    return code;
}

/* Reads the whole file into an ir_malloc'd buffer. */
static int read_file(load_ctx *lc, uint8_t **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    /* O_NONBLOCK: a FIFO must not hang the open; it is refused below. */
    int fd = open(lc->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        int e = errno;
        return load_error(lc, e == ENOENT ? KILN_ERR_NOT_FOUND : KILN_ERR_IO, "cannot open: %s",
                          strerror(e));
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return load_error(lc, KILN_ERR_IO, "cannot stat: %s", strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return load_error(lc, KILN_ERR_INVALID_ARGUMENT, "not a regular file");
    }
    if ((uint64_t)sb.st_size > (uint64_t)SIZE_MAX / 2) {
        close(fd);
        return load_error(lc, KILN_ERR_INVALID_ARGUMENT, "file too large (%lld bytes)",
                          (long long)sb.st_size);
    }
    size_t size = (size_t)sb.st_size;
    uint8_t *buf = ir_malloc(size ? size : 1);
    if (!buf) {
        close(fd);
        return load_error(lc, KILN_ERR_OUT_OF_MEMORY, "out of memory reading %zu bytes", size);
    }
    size_t got = 0;
    while (got < size) {
        ssize_t k = read(fd, buf + got, size - got);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) {
            int e = errno;
            close(fd);
            ir_free(buf);
            return load_error(lc, KILN_ERR_IO, "read failed: %s", strerror(e));
        }
        if (k == 0) break; /* the file shrank: what is there gets checked */
        got += (size_t)k;
    }
    close(fd);
    *out = buf;
    *len = got;
    return KILN_OK;
}

/* Checks magic, version and checksum on the raw bytes. */
static int check_envelope(load_ctx *lc, const uint8_t *buf, size_t len)
{
    if (len < KF_PREFIX_LEN || memcmp(buf, kf_prefix, KF_PREFIX_LEN) != 0) {
        if (len < KF_PREFIX_LEN && memcmp(buf, kf_prefix, len) == 0)
            return load_error(lc, KILN_ERR_INVALID_ARGUMENT,
                              "not a kiln graph file: truncated to %zu bytes", len);
        return load_error(lc, KILN_ERR_INVALID_ARGUMENT,
                          "not a kiln graph file (it does not start with the \"%s\" magic)",
                          KF_MAGIC);
    }
    size_t pos = KF_PREFIX_LEN;
    if (pos >= len || buf[pos] != KF_VERSION_TAG)
        return load_error(lc, KILN_ERR_INVALID_ARGUMENT,
                          "invalid kiln graph file: no format version after the magic");
    uint64_t version = 0;
    int shift = 0;
    for (pos++;; pos++, shift += 7) {
        if (pos >= len || shift > 63)
            return load_error(lc, KILN_ERR_INVALID_ARGUMENT,
                              "invalid kiln graph file: bad format version field");
        version |= (uint64_t)(buf[pos] & 0x7f) << shift;
        if (!(buf[pos] & 0x80)) break;
    }
    if (version != KF_VERSION)
        return load_error(lc, KILN_ERR_INVALID_ARGUMENT,
                          "kiln graph format version %llu is not supported (this kiln reads "
                          "version %u)",
                          (unsigned long long)version, KF_VERSION);
    if (len < pos + 1 + KF_TRAILER_LEN || buf[len - KF_TRAILER_LEN] != KF_CRC_TAG)
        return load_error(lc, KILN_ERR_INVALID_ARGUMENT,
                          "truncated or corrupted kiln graph file (%zu bytes; no checksum at "
                          "the end)",
                          len);
    const uint8_t *t = buf + len - 4;
    uint32_t want = (uint32_t)t[0] | (uint32_t)t[1] << 8 | (uint32_t)t[2] << 16 |
                    (uint32_t)t[3] << 24;
    crc32_state c;
    crc32_init(&c);
    crc32_update(&c, buf, len - KF_TRAILER_LEN);
    if (crc32_final(&c) != want)
        return load_error(lc, KILN_ERR_INVALID_ARGUMENT,
                          "truncated or corrupted kiln graph file (%zu bytes; checksum mismatch)",
                          len);
    return KILN_OK;
}

/* Lists every distinct unknown op name in the file (with the first node
 * using it); returns KILN_OK when all are known. */
static int check_ops(load_ctx *lc, const KilnFormat__Graph *m)
{
    ir_strmap seen = {0};
    ir_buf b = {0};
    size_t nodes = 0, distinct = 0;
    bool oom = false;
    for (size_t i = 0; i < m->n_nodes; i++) {
        const char *op = m->nodes[i]->op ? m->nodes[i]->op : "";
        if (ir_op_lookup(op) >= 0) continue;
        nodes++;
        if (ir_strmap_get(&seen, op) >= 0) continue;
        if (!ir_strmap_put(&seen, op, 1)) oom = true;
        ir_buf_printf(&b, "%s'%s' (node %zu '%s')", distinct++ ? ", " : "", op, i,
                      m->nodes[i]->name ? m->nodes[i]->name : "");
    }
    ir_strmap_free(&seen);
    if (!nodes) {
        ir_buf_free(&b);
        return KILN_OK;
    }
    char *list = ir_buf_take(&b);
    int code;
    if (oom || !list)
        code = load_error(lc, KILN_ERR_OUT_OF_MEMORY, "out of memory listing unknown ops");
    else
        code = load_error(lc, KILN_ERR_INVALID_ARGUMENT,
                          "%zu unknown op%s in %zu node%s: %s (see docs/ops.md for kiln's ops)",
                          distinct, distinct == 1 ? "" : "s", nodes, nodes == 1 ? "" : "s", list);
    ir_free(list);
    return code;
}

/* A tensor from the file, after checking dtype, dims and byte size; the
 * file's copy of the bytes is released as soon as it is copied. */
static int load_tensor(load_ctx *lc, const char *attr, KilnFormat__Tensor *pt, kiln_tensor **out)
{
    *out = NULL;
    int dt = (int)pt->dtype;
    if (!ir_dtype_valid(dt))
        return load_error(lc, KILN_ERR_INVALID_ARGUMENT, "tensor '%s': invalid dtype %d", attr, dt);
    if (pt->n_dims > IR_MAX_RANK)
        return load_error(lc, KILN_ERR_INVALID_ARGUMENT,
                          "tensor '%s': %zu dims; the most is %d", attr, pt->n_dims, IR_MAX_RANK);
    int rank = (int)pt->n_dims;
    for (int i = 0; i < rank; i++)
        if (pt->dims[i] < 0)
            return load_error(lc, KILN_ERR_INVALID_ARGUMENT, "tensor '%s': dim %d is %lld", attr,
                              i, (long long)pt->dims[i]);
    int64_t numel = ir_shape_numel(rank, pt->dims);
    size_t esz = kiln_dtype_size((kiln_dtype)dt);
    if (dims_overflow(rank, pt->dims) || numel < 0 || (uint64_t)numel > SIZE_MAX / esz / 2)
        return load_error(lc, KILN_ERR_INVALID_ARGUMENT,
                          "tensor '%s': the element count of its dims overflows", attr);
    size_t want = (size_t)numel * esz;
    if (pt->data.len != want)
        return load_error(lc, KILN_ERR_INVALID_ARGUMENT,
                          "tensor '%s': %s with %lld elements needs %zu bytes, the file holds %zu",
                          attr, kiln_dtype_name((kiln_dtype)dt), (long long)numel, want,
                          pt->data.len);
    kiln_tensor *t = kiln_tensor_from_data((kiln_dtype)dt, rank, pt->dims, pt->data.data);
    if (!t) return load_error(lc, KILN_ERR_OUT_OF_MEMORY, "tensor '%s': out of memory", attr);
    if (!host_is_little_endian()) swap_elements(t->data, t->size, esz);
    ir_free(pt->data.data);
    pt->data.data = NULL;
    pt->data.len = 0;
    *out = t;
    return KILN_OK;
}

/* Appends (name, tensor) to the bag, which takes the tensor (no copy). */
static bool bag_take_tensor(kiln_attrs *a, const char *name, kiln_tensor *t)
{
    if (a->n == a->cap) {
        int cap = a->cap ? a->cap * 2 : 8;
        char **names = ir_realloc(a->names, sizeof(char *) * (size_t)cap);
        if (!names) return false;
        a->names = names;
        ir_attr *vals = ir_realloc(a->vals, sizeof(ir_attr) * (size_t)cap);
        if (!vals) return false;
        a->vals = vals;
        a->cap = cap;
    }
    char *nm = ir_strdup(name);
    if (!nm) return false;
    a->names[a->n] = nm;
    a->vals[a->n] = (ir_attr){.kind = IR_ATTR_TENSOR, .u.t = t};
    a->n++;
    return true;
}

/* Adds one attribute of the file to the bag. seen marks schema slots
 * already given (the first KF_MAX_ATTRS of them; no op has more). */
static int load_attr(load_ctx *lc, const ir_opdef *def, KilnFormat__Attribute *pa,
                     kiln_attrs *bag, bool *seen)
{
    const char *name = pa->name ? pa->name : "";
    if (!*name) return load_error(lc, KILN_ERR_INVALID_ARGUMENT, "an attribute has no name");
    int k = ir_op_attr_index(def, name);
    if (k >= 0 && k < KF_MAX_ATTRS) {
        if (seen[k])
            return load_error(lc, KILN_ERR_INVALID_ARGUMENT, "attribute '%s' is given twice",
                              name);
        seen[k] = true;
    }
    /* Names not in the schema go into the bag: ir_graph_add_node reports
     * them with the list of the op's attributes. */
    switch (pa->value_case) {
    case KILN_FORMAT__ATTRIBUTE__VALUE_I: kiln_attrs_int(bag, name, pa->i); break;
    case KILN_FORMAT__ATTRIBUTE__VALUE_F: kiln_attrs_float(bag, name, pa->f); break;
    case KILN_FORMAT__ATTRIBUTE__VALUE_S: kiln_attrs_string(bag, name, pa->s ? pa->s : ""); break;
    case KILN_FORMAT__ATTRIBUTE__VALUE_DTYPE:
        kiln_attrs_dtype(bag, name, (kiln_dtype)pa->dtype);
        break;
    case KILN_FORMAT__ATTRIBUTE__VALUE_INTS:
    case KILN_FORMAT__ATTRIBUTE__VALUE_FLOATS: {
        bool ints = pa->value_case == KILN_FORMAT__ATTRIBUTE__VALUE_INTS;
        size_t n = ints ? (pa->ints ? pa->ints->n_values : 0)
                        : (pa->floats ? pa->floats->n_values : 0);
        if (n > INT_MAX)
            return load_error(lc, KILN_ERR_INVALID_ARGUMENT, "attribute '%s': %zu values", name,
                              n);
        if (ints) kiln_attrs_ints(bag, name, n ? pa->ints->values : NULL, (int)n);
        else kiln_attrs_floats(bag, name, n ? pa->floats->values : NULL, (int)n);
        break;
    }
    case KILN_FORMAT__ATTRIBUTE__VALUE_TENSOR: {
        if (!pa->tensor)
            return load_error(lc, KILN_ERR_INVALID_ARGUMENT, "attribute '%s' has no tensor",
                              name);
        kiln_tensor *t;
        int code = load_tensor(lc, name, pa->tensor, &t);
        if (code) return code;
        if (!bag_take_tensor(bag, name, t)) {
            kiln_tensor_free(t);
            return load_error(lc, KILN_ERR_OUT_OF_MEMORY, "out of memory");
        }
        break;
    }
    default:
        return load_error(lc, KILN_ERR_INVALID_ARGUMENT, "attribute '%s' has no value", name);
    }
    if (bag->oom) return load_error(lc, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    return KILN_OK;
}

/* Adds node i of the file to g. `inputs` has room for its inputs. */
static int load_node(load_ctx *lc, kiln_graph *g, const KilnFormat__Node *pn, kiln_value *inputs)
{
    int op = ir_op_lookup(pn->op);
    const ir_opdef *def = ir_op_def((ir_op)op);
    lc->op = def->name;
    if (!*lc->name) return load_error(lc, KILN_ERR_INVALID_ARGUMENT, "the node has no name");
    int other = ir_strmap_get(&g->names, lc->name);
    if (other >= 0)
        return load_error(lc, KILN_ERR_INVALID_ARGUMENT,
                          "duplicate node name: node %d has the same name", other);
    for (size_t k = 0; k < pn->n_inputs; k++) {
        const KilnFormat__ValueRef *r = pn->inputs[k];
        uint32_t src = r ? r->node : 0, idx = r ? r->index : 0;
        if (src >= (uint32_t)g->nnodes)
            return load_error(lc, KILN_ERR_INVALID_ARGUMENT,
                              "input %zu refers to node %u, which is not an earlier node (nodes "
                              "are stored in topological order: a cycle or a dangling input)",
                              k, src);
        if (idx >= (uint32_t)g->nodes[src].noutputs)
            return load_error(lc, KILN_ERR_INVALID_ARGUMENT,
                              "input %zu refers to output %u of node %u ('%s'), which has %d "
                              "output%s",
                              k, idx, src, g->nodes[src].name, g->nodes[src].noutputs,
                              g->nodes[src].noutputs == 1 ? "" : "s");
        inputs[k] = (kiln_value){(int32_t)src, (int32_t)idx};
    }
    kiln_attrs *bag = kiln_attrs_new();
    if (!bag) return load_error(lc, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    bool seen[KF_MAX_ATTRS] = {false};
    int code = KILN_OK;
    for (size_t k = 0; k < pn->n_attrs && !code; k++)
        if (pn->attrs[k]) code = load_attr(lc, def, pn->attrs[k], bag, seen);
    if (!code && ir_graph_add_node(g, (ir_op)op, lc->name, inputs, (int)pn->n_inputs, bag) < 0) {
        /* The graph's error names the op, the node and the types. */
        int node = lc->node;
        lc->node = -1;
        code = load_error(lc, g->error_code ? g->error_code : KILN_ERR_INTERNAL, "node %d: %s",
                          node, kiln_graph_error(g));
        lc->node = node;
    }
    kiln_attrs_free(bag);
    return code;
}

/* Every output type must have a countable number of elements. */
static int check_types(load_ctx *lc, const kiln_graph *g)
{
    for (int i = 0; i < g->nnodes; i++) {
        const ir_node *n = &g->nodes[i];
        for (int k = 0; k < n->noutputs; k++) {
            if (!dims_overflow(n->outputs[k].rank, n->outputs[k].dims)) continue;
            char s[IR_TYPE_STR_MAX];
            lc->node = i;
            lc->name = n->name;
            lc->op = ir_op_def(n->op)->name;
            return load_error(lc, KILN_ERR_INVALID_ARGUMENT,
                              "output %d has type %s, whose element count overflows", k,
                              ir_type_str(&n->outputs[k], s, sizeof s));
        }
    }
    return KILN_OK;
}

static kiln_graph *build_graph(load_ctx *lc, const KilnFormat__Graph *m)
{
    if (!m->magic || strcmp(m->magic, KF_MAGIC) != 0) {
        load_error(lc, KILN_ERR_INVALID_ARGUMENT, "not a kiln graph file (bad magic field)");
        return NULL;
    }
    if (m->format_version != KF_VERSION) {
        load_error(lc, KILN_ERR_INVALID_ARGUMENT,
                   "kiln graph format version %u is not supported (this kiln reads version %u)",
                   m->format_version, KF_VERSION);
        return NULL;
    }
    if (m->n_nodes > INT_MAX / 2) {
        load_error(lc, KILN_ERR_INVALID_ARGUMENT, "%zu nodes is too many", m->n_nodes);
        return NULL;
    }
    size_t max_inputs = 1;
    for (size_t i = 0; i < m->n_nodes; i++) {
        if (!m->nodes[i]) {
            load_error(lc, KILN_ERR_INVALID_ARGUMENT, "node %zu is missing", i);
            return NULL;
        }
        if (m->nodes[i]->n_inputs > max_inputs) max_inputs = m->nodes[i]->n_inputs;
    }
    if (max_inputs > INT_MAX) {
        load_error(lc, KILN_ERR_INVALID_ARGUMENT, "a node has %zu inputs", max_inputs);
        return NULL;
    }
    if (check_ops(lc, m)) return NULL;

    kiln_graph *g = kiln_graph_new();
    kiln_value *inputs = ir_malloc(sizeof(kiln_value) * max_inputs);
    kiln_value *outs = ir_malloc(sizeof(kiln_value) * (m->n_outputs ? m->n_outputs : 1));
    if (!g || !inputs || !outs) {
        load_error(lc, KILN_ERR_OUT_OF_MEMORY, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < m->n_nodes; i++) {
        lc->node = (int)i;
        lc->name = m->nodes[i]->name ? m->nodes[i]->name : "";
        lc->op = m->nodes[i]->op;
        if (load_node(lc, g, m->nodes[i], inputs)) goto fail;
    }
    lc->node = -1;
    if (check_types(lc, g)) goto fail;
    lc->node = -1;
    for (size_t k = 0; k < m->n_outputs; k++) {
        const KilnFormat__ValueRef *r = m->outputs[k];
        uint32_t src = r ? r->node : 0, idx = r ? r->index : 0;
        if (src >= (uint32_t)g->nnodes || idx >= (uint32_t)g->nodes[src].noutputs) {
            load_error(lc, KILN_ERR_INVALID_ARGUMENT,
                       "declared output %zu (%u:%u) is not a value of the graph", k, src, idx);
            goto fail;
        }
        outs[k] = (kiln_value){(int32_t)src, (int32_t)idx};
    }
    if (m->n_outputs) {
        kiln_graph_set_outputs(g, outs, (int)m->n_outputs);
        if (g->error_code) {
            load_error(lc, g->error_code, "%s", kiln_graph_error(g));
            goto fail;
        }
    }
    kiln_status vs = {0};
    int rc = ir_verify(g, &vs);
    if (rc) {
        load_error(lc, rc, "%s", vs.message ? vs.message : kiln_status_code_name(rc));
        ir_free(vs.message);
        goto fail;
    }
    ir_free(inputs);
    ir_free(outs);
    return g;
fail:
    ir_free(inputs);
    ir_free(outs);
    kiln_graph_free(g);
    return NULL;
}

kiln_graph *kiln_graph_load(const char *path, kiln_status *status)
{
    if (!path || !*path) {
        ir_set_status(status, KILN_ERR_INVALID_ARGUMENT, "kiln_graph_load: the path is %s",
                      path ? "empty" : "NULL");
        return NULL;
    }
    load_ctx lc = {.path = path, .st = status, .node = -1};
    uint8_t *buf;
    size_t len;
    if (read_file(&lc, &buf, &len)) return NULL;
    if (check_envelope(&lc, buf, len)) {
        ir_free(buf);
        return NULL;
    }
    pb_allocator pa = {.base = {.alloc = pb_alloc, .free = pb_free}};
    pa.base.allocator_data = &pa;
    KilnFormat__Graph *m = kiln_format__graph__unpack(&pa.base, len, buf);
    ir_free(buf);
    if (!m) {
        if (pa.failed)
            load_error(&lc, KILN_ERR_OUT_OF_MEMORY, "out of memory parsing %zu bytes", len);
        else
            load_error(&lc, KILN_ERR_INVALID_ARGUMENT,
                       "malformed kiln graph file (the protobuf message does not parse)");
        return NULL;
    }
    kiln_graph *g = build_graph(&lc, m);
    kiln_format__graph__free_unpacked(m, &pa.base);
    if (g) ir_status_ok(status);
    return g;
}
