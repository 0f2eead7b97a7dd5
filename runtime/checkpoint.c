/* checkpoint.c -- saving and restoring a session's variables in kiln's
 * checkpoint format (docs/training.md), with atomic writes and a restore
 * that checks everything before it changes anything.
 *
 * The format, all integers little-endian:
 *   "KILNCKPT"                         8 bytes
 *   u32 version (1), u32 count
 *   count times: u32 name length, name bytes (no NUL), u32 dtype (the
 *                kiln_dtype value), u32 rank, i64 dims[rank], u64 data
 *                bytes, the data (row-major, little-endian elements)
 *   u32 CRC-32 (IEEE 802.3, as zlib's crc32) of every byte before it */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rt_checkpoint.h"
#include "rt_cuda.h"
#include "runtime.h"

#define CKPT_MAGIC "KILNCKPT"
#define CKPT_VERSION 1u
#define CKPT_MAX_NAME (1u << 20)

static long crash_after = -1;

void rt_checkpoint_crash_after(long nbytes) { crash_after = nbytes; }

static uint32_t crc32_bytes(const unsigned char *p, size_t n)
{
    uint32_t table[256];
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        table[i] = c;
    }
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
    return crc ^ 0xFFFFFFFFu;
}

static unsigned char *put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) *p++ = (unsigned char)(v >> (8 * i));
    return p;
}

static unsigned char *put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) *p++ = (unsigned char)(v >> (8 * i));
    return p;
}

/* ---- Writing ------------------------------------------------------------ */

/* The folder of path ("." when it has none), ir_malloc'd. */
static char *folder_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash) return ir_strdup(".");
    if (slash == path) return ir_strdup("/");
    return ir_asprintf("%.*s", (int)(slash - path), path);
}

/* Writes buf to path atomically: a temporary file in the same folder,
 * written, flushed and synced, renamed over path, then the folder synced. */
static int write_atomic(const char *path, const unsigned char *buf, size_t n, kiln_status *st)
{
    int rc = KILN_OK;
    char *tmp = ir_asprintf("%s.tmp.XXXXXX", path);
    char *dir = folder_of(path);
    FILE *f = NULL;
    if (!tmp || !dir) {
        rc = ir_set_status(st, KILN_ERR_OUT_OF_MEMORY, "saving checkpoint '%s': out of memory", path);
        goto done;
    }
    int fd = mkstemp(tmp);
    if (fd < 0) {
        rc = ir_set_status(st, KILN_ERR_IO, "saving checkpoint '%s': cannot create a temporary file "
                           "in '%s': %s", path, dir, strerror(errno));
        goto done;
    }
    (void)fchmod(fd, 0644);
    f = fdopen(fd, "wb");
    if (!f) {
        rc = ir_set_status(st, KILN_ERR_IO, "saving checkpoint '%s': %s", path, strerror(errno));
        close(fd);
        unlink(tmp);
        goto done;
    }
    if (crash_after >= 0) {
        /* The test hook: stop part-way and leave the temporary file, as a
         * process killed here would. */
        size_t part = (size_t)crash_after < n ? (size_t)crash_after : n;
        crash_after = -1;
        if (part) (void)fwrite(buf, 1, part, f);
        fclose(f);
        f = NULL;
        rc = ir_set_status(st, KILN_ERR_IO,
                           "saving checkpoint '%s': simulated crash after %zu of %zu bytes", path,
                           part, n);
        goto done;
    }
    if (fwrite(buf, 1, n, f) != n || fflush(f) != 0 || fsync(fileno(f)) != 0) {
        rc = ir_set_status(st, KILN_ERR_IO, "saving checkpoint '%s': writing '%s': %s", path, tmp,
                           strerror(errno));
        fclose(f);
        f = NULL;
        unlink(tmp);
        goto done;
    }
    int closed = fclose(f);
    f = NULL;
    if (closed != 0) {
        rc = ir_set_status(st, KILN_ERR_IO, "saving checkpoint '%s': closing '%s': %s", path, tmp,
                           strerror(errno));
        unlink(tmp);
        goto done;
    }
    if (rename(tmp, path) != 0) {
        rc = ir_set_status(st, KILN_ERR_IO, "saving checkpoint '%s': renaming '%s' to it: %s", path,
                           tmp, strerror(errno));
        unlink(tmp);
        goto done;
    }
    /* Make the rename itself durable. Some file systems cannot sync a
     * folder (EINVAL); the file is in place either way. */
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        if (fsync(dfd) != 0 && errno != EINVAL)
            rc = ir_set_status(st, KILN_ERR_IO, "saving checkpoint '%s': syncing folder '%s': %s",
                               path, dir, strerror(errno));
        close(dfd);
    }
done:
    ir_free(tmp);
    ir_free(dir);
    return rc;
}

int kiln_session_save_variables(kiln_session *s, const char *path, kiln_status *st)
{
    if (!s || !path)
        return ir_set_status(st, KILN_ERR_INVALID_ARGUMENT,
                             "kiln_session_save_variables: session or path is NULL");
    if (s->dl)
        return ir_set_status(st, KILN_ERR_UNIMPLEMENTED,
                             "kiln_session_save_variables: a session on a compiled library has no "
                             "variables to save ('%s')", path);
    const kiln_graph *g = s->graph;
    pthread_rwlock_rdlock(&s->vars_lock);
    size_t n = 8 + 4 + 4 + 4;
    uint32_t count = 0;
    for (int i = 0; i < s->nnodes; i++) {
        const kiln_tensor *t = s->vars[i];
        if (!t) continue;
        count++;
        n += 4 + strlen(g->nodes[i].name) + 4 + 4 + 8 * (size_t)t->rank + 8 + kiln_tensor_nbytes(t);
    }
    unsigned char *buf = ir_malloc(n);
    if (!buf) {
        pthread_rwlock_unlock(&s->vars_lock);
        return ir_set_status(st, KILN_ERR_OUT_OF_MEMORY,
                             "saving checkpoint '%s': out of memory (%zu bytes)", path, n);
    }
    unsigned char *p = buf;
    memcpy(p, CKPT_MAGIC, 8);
    p = put_u32(p + 8, CKPT_VERSION);
    p = put_u32(p, count);
    for (int i = 0; i < s->nnodes; i++) {
        const kiln_tensor *t = s->vars[i];
        if (!t) continue;
        size_t len = strlen(g->nodes[i].name), nb = kiln_tensor_nbytes(t);
        p = put_u32(p, (uint32_t)len);
        memcpy(p, g->nodes[i].name, len);
        p = put_u32(p + len, (uint32_t)t->dtype);
        p = put_u32(p, (uint32_t)t->rank);
        for (int d = 0; d < t->rank; d++) p = put_u64(p, (uint64_t)t->dims[d]);
        p = put_u64(p, (uint64_t)nb);
        if (nb) memcpy(p, t->data, nb);
        p += nb;
    }
    pthread_rwlock_unlock(&s->vars_lock);
    put_u32(p, crc32_bytes(buf, n - 4));
    int rc = write_atomic(path, buf, n, st);
    ir_free(buf);
    if (rc == KILN_OK) ir_status_ok(st);
    return rc;
}

/* ---- Reading ------------------------------------------------------------ */

typedef struct {
    const unsigned char *p;
    size_t n, off; /* n excludes the trailing CRC */
    bool short_read;
} reader;

static bool get(reader *r, void *out, size_t k)
{
    if (r->off > r->n || r->n - r->off < k) {
        r->short_read = true;
        return false;
    }
    if (out) memcpy(out, r->p + r->off, k);
    r->off += k;
    return true;
}

static bool get_u32(reader *r, uint32_t *v)
{
    unsigned char b[4];
    if (!get(r, b, 4)) return false;
    *v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    return true;
}

static bool get_u64(reader *r, uint64_t *v)
{
    unsigned char b[8];
    if (!get(r, b, 8)) return false;
    *v = 0;
    for (int i = 7; i >= 0; i--) *v = *v << 8 | b[i];
    return true;
}

/* One entry of the file, pointing into the file's bytes. */
typedef struct {
    const char *name; /* not NUL-terminated */
    uint32_t name_len;
    ir_type type;
    const unsigned char *data;
    size_t nbytes;
} entry;

static int read_file(const char *path, unsigned char **out, size_t *size, kiln_status *st)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return ir_set_status(st, errno == ENOENT ? KILN_ERR_NOT_FOUND : KILN_ERR_IO,
                             "restoring checkpoint '%s': %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return ir_set_status(st, KILN_ERR_IO, "restoring checkpoint '%s': not a regular file", path);
    }
    size_t n = (size_t)sb.st_size;
    unsigned char *buf = ir_malloc(n ? n : 1);
    if (!buf) {
        fclose(f);
        return ir_set_status(st, KILN_ERR_OUT_OF_MEMORY,
                             "restoring checkpoint '%s': out of memory (%zu bytes)", path, n);
    }
    size_t got = fread(buf, 1, n, f);
    int err = ferror(f);
    fclose(f);
    if (got != n || err) {
        ir_free(buf);
        return ir_set_status(st, KILN_ERR_IO, "restoring checkpoint '%s': read %zu of %zu bytes",
                             path, got, n);
    }
    *out = buf;
    *size = n;
    return KILN_OK;
}

/* Walks the entries into ents (count of them). Returns KILN_OK or an error
 * naming what is wrong; r->short_read says whether the file ran out. */
static int parse_entries(const char *path, reader *r, uint32_t count, entry *ents, kiln_status *st)
{
    for (uint32_t k = 0; k < count; k++) {
        entry *e = &ents[k];
        uint32_t dt, rank;
        uint64_t nb;
        if (!get_u32(r, &e->name_len)) goto truncated;
        if (e->name_len == 0 || e->name_len > CKPT_MAX_NAME)
            return ir_set_status(st, KILN_ERR_INVALID_ARGUMENT,
                                 "restoring checkpoint '%s': variable %u has a name of %u bytes",
                                 path, k, e->name_len);
        e->name = (const char *)r->p + r->off;
        if (!get(r, NULL, e->name_len) || !get_u32(r, &dt) || !get_u32(r, &rank)) goto truncated;
        if (!ir_dtype_valid((int)dt) || rank > IR_MAX_RANK)
            return ir_set_status(st, KILN_ERR_INVALID_ARGUMENT,
                                 "restoring checkpoint '%s': variable '%.*s' has dtype %u and rank "
                                 "%u",
                                 path, (int)e->name_len, e->name, dt, rank);
        e->type.dtype = (kiln_dtype)dt;
        e->type.rank = (int)rank;
        for (uint32_t d = 0; d < rank; d++) {
            uint64_t v;
            if (!get_u64(r, &v)) goto truncated;
            if (v > (uint64_t)INT64_MAX / 2)
                return ir_set_status(st, KILN_ERR_INVALID_ARGUMENT,
                                     "restoring checkpoint '%s': variable '%.*s' has dim %u = %llu",
                                     path, (int)e->name_len, e->name, d, (unsigned long long)v);
            e->type.dims[d] = (int64_t)v;
        }
        if (!get_u64(r, &nb)) goto truncated;
        int64_t numel = ir_shape_numel(e->type.rank, e->type.dims);
        size_t esz = kiln_dtype_size(e->type.dtype);
        if (numel < 0 || (uint64_t)numel > UINT64_MAX / esz || nb != (uint64_t)numel * esz) {
            char t[IR_TYPE_STR_MAX];
            return ir_set_status(st, KILN_ERR_INVALID_ARGUMENT,
                                 "restoring checkpoint '%s': variable '%.*s' (%s) has %llu bytes "
                                 "of data",
                                 path, (int)e->name_len, e->name, ir_type_str(&e->type, t, sizeof t),
                                 (unsigned long long)nb);
        }
        e->data = r->p + r->off;
        e->nbytes = (size_t)nb;
        if (!get(r, NULL, e->nbytes)) goto truncated;
        continue;
    truncated:
        return ir_set_status(st, KILN_ERR_INVALID_ARGUMENT,
                             "restoring checkpoint '%s': the file is truncated (it ends inside "
                             "variable %u of %u)",
                             path, k + 1, count);
    }
    if (r->off != r->n)
        return ir_set_status(st, KILN_ERR_INVALID_ARGUMENT,
                             "restoring checkpoint '%s': %zu unexpected bytes after the last "
                             "variable",
                             path, r->n - r->off);
    return KILN_OK;
}

/* Matches the entries with the session's variables: src[node] = data. */
static int match_entries(const kiln_session *s, const char *path, const entry *ents,
                         uint32_t count, const unsigned char **src, kiln_status *st)
{
    const kiln_graph *g = s->graph;
    for (uint32_t k = 0; k < count; k++) {
        const entry *e = &ents[k];
        char *name = ir_asprintf("%.*s", (int)e->name_len, e->name);
        if (!name)
            return ir_set_status(st, KILN_ERR_OUT_OF_MEMORY, "restoring checkpoint '%s': out of memory",
                                 path);
        int node = ir_strmap_get(&g->names, name);
        int rc = KILN_OK;
        char a[IR_TYPE_STR_MAX], b[IR_TYPE_STR_MAX];
        if (node < 0 || node >= s->nnodes || !s->vars[node]) {
            rc = ir_set_status(st, KILN_ERR_NOT_FOUND,
                               "restoring checkpoint '%s': it holds variable '%s' (%s), which the "
                               "session does not have",
                               path, name, ir_type_str(&e->type, a, sizeof a));
        } else if (src[node]) {
            rc = ir_set_status(st, KILN_ERR_INVALID_ARGUMENT,
                               "restoring checkpoint '%s': variable '%s' appears twice", path, name);
        } else {
            ir_type have;
            ir_tensor_type(s->vars[node], &have);
            if (!ir_type_equal(&have, &e->type))
                rc = ir_set_status(st, KILN_ERR_INVALID_ARGUMENT,
                                   "restoring checkpoint '%s': variable '%s' is %s in the "
                                   "checkpoint but %s in the session",
                                   path, name, ir_type_str(&e->type, a, sizeof a),
                                   ir_type_str(&have, b, sizeof b));
            else src[node] = e->data;
        }
        ir_free(name);
        if (rc) return rc;
    }
    for (int i = 0; i < s->nnodes; i++) {
        if (s->vars[i] && !src[i]) {
            char a[IR_TYPE_STR_MAX];
            ir_type have;
            ir_tensor_type(s->vars[i], &have);
            return ir_set_status(st, KILN_ERR_NOT_FOUND,
                                 "restoring checkpoint '%s': the session's variable '%s' (%s) is "
                                 "not in it",
                                 path, g->nodes[i].name, ir_type_str(&have, a, sizeof a));
        }
    }
    return KILN_OK;
}

int kiln_session_restore_variables(kiln_session *s, const char *path, kiln_status *st)
{
    if (!s || !path)
        return ir_set_status(st, KILN_ERR_INVALID_ARGUMENT,
                             "kiln_session_restore_variables: session or path is NULL");
    if (s->dl)
        return ir_set_status(st, KILN_ERR_UNIMPLEMENTED,
                             "kiln_session_restore_variables: a session on a compiled library has "
                             "no variables to restore ('%s')", path);
    unsigned char *buf = NULL;
    entry *ents = NULL;
    const unsigned char **src = NULL;
    size_t n = 0;
    int rc = read_file(path, &buf, &n, st);
    if (rc) return rc;
    reader r = {buf, n >= 4 ? n - 4 : 0, 0, false};
    uint32_t version = 0, count = 0;
    if (n < 8 || memcmp(buf, CKPT_MAGIC, 8) != 0) {
        rc = ir_set_status(st, KILN_ERR_INVALID_ARGUMENT,
                           "restoring checkpoint '%s': not a kiln checkpoint (%zu bytes, no "
                           "'" CKPT_MAGIC "' at the start)", path, n);
        goto done;
    }
    r.off = 8;
    if (!get_u32(&r, &version) || !get_u32(&r, &count)) {
        rc = ir_set_status(st, KILN_ERR_INVALID_ARGUMENT,
                           "restoring checkpoint '%s': the file is truncated (%zu bytes, in the "
                           "header)", path, n);
        goto done;
    }
    if (version != CKPT_VERSION) {
        rc = ir_set_status(st, KILN_ERR_UNIMPLEMENTED,
                           "restoring checkpoint '%s': format version %u; this kiln reads version %u",
                           path, version, CKPT_VERSION);
        goto done;
    }
    uint32_t stored = (uint32_t)buf[n - 4] | (uint32_t)buf[n - 3] << 8 |
                      (uint32_t)buf[n - 2] << 16 | (uint32_t)buf[n - 1] << 24;
    bool crc_ok = stored == crc32_bytes(buf, n - 4);
    /* Each entry takes at least 21 bytes: a count beyond that is damage. */
    if (count > (n - r.off) / 21 + 1) {
        rc = ir_set_status(st, KILN_ERR_INVALID_ARGUMENT,
                           "restoring checkpoint '%s': the file is %s (it claims %u variables in "
                           "%zu bytes)", path, crc_ok ? "invalid" : "truncated or corrupt", count, n);
        goto done;
    }
    ents = ir_calloc(count ? count : 1, sizeof *ents);
    src = ir_calloc((size_t)(s->nnodes ? s->nnodes : 1), sizeof *src);
    if (!ents || !src) {
        rc = ir_set_status(st, KILN_ERR_OUT_OF_MEMORY, "restoring checkpoint '%s': out of memory", path);
        goto done;
    }
    kiln_status *walk = kiln_status_new();
    if (!walk) {
        rc = ir_set_status(st, KILN_ERR_OUT_OF_MEMORY, "restoring checkpoint '%s': out of memory", path);
        goto done;
    }
    int prc = parse_entries(path, &r, count, ents, walk);
    if (prc && r.short_read) {
        rc = ir_set_status(st, prc, "%s", kiln_status_message(walk));
    } else if (!crc_ok) {
        rc = ir_set_status(st, KILN_ERR_INVALID_ARGUMENT,
                           "restoring checkpoint '%s': checksum mismatch: the file is corrupt "
                           "(stored CRC-32 %08x, computed %08x)",
                           path, stored, crc32_bytes(buf, n - 4));
    } else if (prc) {
        rc = ir_set_status(st, prc, "%s", kiln_status_message(walk));
    }
    kiln_status_free(walk);
    if (rc) goto done;
    if ((rc = match_entries(s, path, ents, count, src, st))) goto done;
    /* Everything checked: now write, with runs excluded. */
    pthread_rwlock_wrlock(&s->vars_lock);
    for (int i = 0; i < s->nnodes; i++)
        if (src[i] && s->vars[i]->size) memcpy(s->vars[i]->data, src[i], kiln_tensor_nbytes(s->vars[i]));
    /* a session on the GPU keeps its variables there too */
    rc = s->cuda ? rt_cuda_session_upload_vars(s, st) : KILN_OK;
    pthread_rwlock_unlock(&s->vars_lock);
    if (rc) goto done;
    ir_status_ok(st);
done:
    ir_free(buf);
    ir_free(ents);
    ir_free(src);
    return rc;
}
