/* onnx_tensor.c -- ONNX TensorProto to kiln tensors: dtypes, the typed and
 * raw data fields, external data files; reading files with a size bound;
 * the protobuf-c allocator over ir_malloc. Every size a file states is
 * checked against the bytes that back it before anything is allocated. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "onnx_internal.h"

static void *pb_alloc(void *data, size_t n)
{
    onnx_allocator *a = data;
    void *p = ir_malloc(n ? n : 1);
    if (!p) a->failed = true;
    return p;
}

static void pb_free(void *data, void *p)
{
    (void)data;
    ir_free(p);
}

void onnx_allocator_init(onnx_allocator *a)
{
    memset(a, 0, sizeof *a);
    a->base.alloc = pb_alloc;
    a->base.free = pb_free;
    a->base.allocator_data = a;
}

kiln_dtype onnx_dtype(int t)
{
    switch (t) {
    case 1: return KILN_F32;
    case 2: return KILN_U8;
    case 3: return KILN_I8;
    case 6: return KILN_I32;
    case 7: return KILN_I64;
    case 9: return KILN_BOOL;
    case 10: return KILN_F16;
    case 11: return KILN_F64;
    case 16: return KILN_BF16;
    case 4: return KILN_U16;
    case 5: return KILN_I16;
    case 12: return KILN_U32;
    case 13: return KILN_U64;
    case 17: return KILN_F8E4M3FN;
    case 18: return KILN_F8E4M3FNUZ;
    case 19: return KILN_F8E5M2;
    case 20: return KILN_F8E5M2FNUZ;
    case 21: return KILN_U4;
    case 22: return KILN_I4;
    case 23: return KILN_F4E2M1;
    case 24: return KILN_F8E8M0;
    case 25: return KILN_U2;
    case 26: return KILN_I2;
    default: return (kiln_dtype)0;
    }
}

const char *onnx_dtype_name(int t)
{
    static const char *const names[] = {
        "UNDEFINED", "FLOAT", "UINT8", "INT8", "UINT16", "INT16", "INT32", "INT64",
        "STRING", "BOOL", "FLOAT16", "DOUBLE", "UINT32", "UINT64", "COMPLEX64", "COMPLEX128",
        "BFLOAT16", "FLOAT8E4M3FN", "FLOAT8E4M3FNUZ", "FLOAT8E5M2", "FLOAT8E5M2FNUZ", "UINT4",
        "INT4", "FLOAT4E2M1", "FLOAT8E8M0", "UINT2", "INT2"};
    if (t >= 0 && t < (int)(sizeof names / sizeof names[0])) return names[t];
    return "unknown";
}

int onnx_read_file(const char *path, size_t max_bytes, uint8_t **buf, size_t *len,
                   kiln_status *st)
{
    *buf = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ir_set_status(st, errno == ENOENT ? KILN_ERR_NOT_FOUND : KILN_ERR_IO,
                             "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return ir_set_status(st, KILN_ERR_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)sb.st_size > max_bytes) {
        close(fd);
        return ir_set_status(st, KILN_ERR_INVALID_ARGUMENT, "%s: %lld bytes is too large (limit %zu)",
                             path, (long long)sb.st_size, max_bytes);
    }
    size_t n = (size_t)sb.st_size;
    uint8_t *p = ir_malloc(n ? n : 1);
    if (!p) {
        close(fd);
        return ir_set_status(st, KILN_ERR_OUT_OF_MEMORY, "%s: out of memory reading %zu bytes",
                             path, n);
    }
    size_t got = 0;
    while (got < n) {
        ssize_t k = read(fd, p + got, n - got);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            int e = k < 0 ? errno : 0;
            close(fd);
            ir_free(p);
            return ir_set_status(st, KILN_ERR_IO, "%s: read failed: %s", path,
                                 e ? strerror(e) : "the file shrank while read");
        }
        got += (size_t)k;
    }
    close(fd);
    *buf = p;
    *len = n;
    return KILN_OK;
}

static bool host_is_little_endian(void)
{
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 1;
}

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

/* Reads `want` bytes of external data for tp into dst. */
static int read_external(const Onnx__TensorProto *tp, const char *dir, const char *what,
                         void *dst, size_t want, kiln_status *st)
{
    const char *location = NULL;
    int64_t offset = 0, length = -1;
    for (size_t i = 0; i < tp->n_external_data; i++) {
        const Onnx__StringStringEntryProto *e = tp->external_data[i];
        if (!e || !e->key) continue;
        char *end;
        if (strcmp(e->key, "location") == 0) location = e->value;
        else if (strcmp(e->key, "offset") == 0 || strcmp(e->key, "length") == 0) {
            errno = 0;
            long long v = strtoll(e->value ? e->value : "", &end, 10);
            if (errno || !e->value || end == e->value || *end || v < 0)
                return ir_set_status(st, KILN_ERR_INVALID_ARGUMENT,
                                     "tensor '%s': external data %s '%s' is not a size", what,
                                     e->key, e->value ? e->value : "");
            if (e->key[0] == 'o') offset = v;
            else length = v;
        }
    }
    if (!location || !*location)
        return ir_set_status(st, KILN_ERR_INVALID_ARGUMENT,
                             "tensor '%s': external data without a location", what);
    if (!dir)
        return ir_set_status(st, KILN_ERR_INVALID_ARGUMENT,
                             "tensor '%s': external data is not allowed here", what);
    if (location[0] == '/' || strstr(location, ".."))
        return ir_set_status(st, KILN_ERR_INVALID_ARGUMENT,
                             "tensor '%s': external data location '%s' must be a relative path "
                             "inside the model's folder",
                             what, location);
    if (length >= 0 && (uint64_t)length != want)
        return ir_set_status(st, KILN_ERR_INVALID_ARGUMENT,
                             "tensor '%s': external data length %lld, but its shape needs %zu bytes",
                             what, (long long)length, want);
    char *file = ir_asprintf("%s/%s", dir, location);
    if (!file) return ir_set_status(st, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    int rc = KILN_OK;
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0) {
        rc = ir_set_status(st, errno == ENOENT ? KILN_ERR_NOT_FOUND : KILN_ERR_IO,
                           "tensor '%s': cannot open external data file %s: %s", what, file,
                           strerror(errno));
        goto done;
    }
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        rc = ir_set_status(st, KILN_ERR_IO, "tensor '%s': %s is not a regular file", what, file);
        goto done;
    }
    if ((uint64_t)offset > (uint64_t)sb.st_size || want > (uint64_t)sb.st_size - (uint64_t)offset) {
        rc = ir_set_status(st, KILN_ERR_INVALID_ARGUMENT,
                           "tensor '%s': external data %s holds %lld bytes; offset %lld + %zu "
                           "bytes runs past its end",
                           what, file, (long long)sb.st_size, (long long)offset, want);
        goto done;
    }
    size_t got = 0;
    while (got < want) {
        ssize_t k = pread(fd, (uint8_t *)dst + got, want - got, (off_t)(offset + (int64_t)got));
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            rc = ir_set_status(st, KILN_ERR_IO, "tensor '%s': reading %s failed", what, file);
            goto done;
        }
        got += (size_t)k;
    }
done:
    if (fd >= 0) close(fd);
    ir_free(file);
    return rc;
}

/* ONNX packs the 4-bit types two to a byte and the 2-bit types four to a
 * byte, low bits first; kiln keeps one element a byte. */
static int packed_per_byte(int ot)
{
    return ot == 21 || ot == 22 || ot == 23 ? 2 : ot == 25 || ot == 26 ? 4 : 1;
}

/* Element i of a packed tensor, from the byte that holds it. */
static uint8_t subbyte_elem(kiln_dtype dt, int per, unsigned byte, size_t i)
{
    unsigned bits = 8u / (unsigned)per, mask = (1u << bits) - 1;
    unsigned v = (byte >> ((i % (size_t)per) * bits)) & mask;
    if ((dt == KILN_I4 || dt == KILN_I2) && (v >> (bits - 1))) v |= ~mask; /* sign-extend */
    return (uint8_t)v;
}

int onnx_tensor_from_proto(const Onnx__TensorProto *tp, const char *dir, const char *what,
                           kiln_tensor **out, kiln_status *st)
{
    *out = NULL;
    int ot = tp->has_data_type ? tp->data_type : 0;
    kiln_dtype dt = onnx_dtype(ot);
    if (!dt)
        return ir_set_status(st, KILN_ERR_UNIMPLEMENTED,
                             "tensor '%s': element type %s (%d) is not supported by kiln", what,
                             onnx_dtype_name(ot), ot);
    if (tp->n_dims > IR_MAX_RANK)
        return ir_set_status(st, KILN_ERR_UNIMPLEMENTED, "tensor '%s': rank %zu; kiln's limit is %d",
                             what, tp->n_dims, IR_MAX_RANK);
    int rank = (int)tp->n_dims;
    /* The product of the non-zero dims must fit, even for an empty tensor:
     * strides over it would overflow. */
    uint64_t numel = 1, nonzero = 1;
    bool overflow = false;
    for (int i = 0; i < rank; i++) {
        if (tp->dims[i] < 0)
            return ir_set_status(st, KILN_ERR_INVALID_ARGUMENT, "tensor '%s': dim %d is %lld", what,
                                 i, (long long)tp->dims[i]);
        if (!tp->dims[i]) {
            numel = 0;
            continue;
        }
        if (nonzero > (uint64_t)INT64_MAX / (uint64_t)tp->dims[i]) overflow = true;
        else nonzero *= (uint64_t)tp->dims[i];
    }
    if (numel) numel = nonzero;
    size_t esz = kiln_dtype_size(dt);
    if (overflow || numel > SIZE_MAX / 16)
        return ir_set_status(st, KILN_ERR_INVALID_ARGUMENT,
                             "tensor '%s': the element count of its dims overflows", what);
    size_t n = (size_t)numel, want = n * esz;
    int per = packed_per_byte(ot);
    size_t packed = (n + (size_t)per - 1) / (size_t)per; /* bytes in the file */
    bool external = tp->has_data_location &&
                    tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    /* How many elements the file gives, before allocating for them. */
    size_t have;
    const char *field;
    if (external) {
        if (per > 1)
            return ir_set_status(st, KILN_ERR_UNIMPLEMENTED,
                                 "tensor '%s': %s in external data is not supported", what,
                                 onnx_dtype_name(ot));
        have = n;
        field = "external data";
    } else if (tp->has_raw_data && per > 1) {
        if (tp->raw_data.len != packed)
            return ir_set_status(st, KILN_ERR_INVALID_ARGUMENT,
                                 "tensor '%s': %s with %zu elements needs %zu bytes of packed "
                                 "raw_data, the file holds %zu",
                                 what, onnx_dtype_name(ot), n, packed, tp->raw_data.len);
        have = n;
        field = "raw_data";
    } else if (tp->has_raw_data) {
        if (tp->raw_data.len != want)
            return ir_set_status(st, KILN_ERR_INVALID_ARGUMENT,
                                 "tensor '%s': %s with %zu elements needs %zu bytes of raw_data, "
                                 "the file holds %zu",
                                 what, onnx_dtype_name(ot), n, want, tp->raw_data.len);
        have = n;
        field = "raw_data";
    } else {
        switch (ot) {
        case 1: have = tp->n_float_data; field = "float_data"; break;
        case 7: have = tp->n_int64_data; field = "int64_data"; break;
        case 11: have = tp->n_double_data; field = "double_data"; break;
        case 12: /* UINT32 and UINT64 live in uint64_data (onnx.proto) */
        case 13: have = tp->n_uint64_data; field = "uint64_data"; break;
        default: have = tp->n_int32_data; field = "int32_data"; break;
        }
        if (per > 1 && have == packed) have = n; /* one packed byte per int32 */
        if (have != n)
            return ir_set_status(st, KILN_ERR_INVALID_ARGUMENT,
                                 "tensor '%s': its shape has %zu elements, %s holds %zu", what, n,
                                 field, have);
    }
    int64_t dims[IR_MAX_RANK];
    for (int i = 0; i < rank; i++) dims[i] = tp->dims[i];
    /* External data is checked against the file's size before this. */
    if (external) {
        kiln_tensor *t = kiln_tensor_new(dt, rank, dims);
        if (!t) return ir_set_status(st, KILN_ERR_OUT_OF_MEMORY, "tensor '%s': out of memory", what);
        int rc = read_external(tp, dir, what, t->data, want, st);
        if (rc) {
            kiln_tensor_free(t);
            return rc;
        }
        if (!host_is_little_endian()) swap_elements(t->data, n, esz);
        *out = t;
        return KILN_OK;
    }
    kiln_tensor *t = kiln_tensor_new(dt, rank, dims);
    if (!t) return ir_set_status(st, KILN_ERR_OUT_OF_MEMORY, "tensor '%s': out of memory", what);
    if (per > 1) {
        for (size_t i = 0; i < n; i++) {
            size_t k = i / (size_t)per;
            unsigned b = tp->has_raw_data ? tp->raw_data.data[k] : (uint8_t)tp->int32_data[k];
            ((uint8_t *)t->data)[i] = subbyte_elem(dt, per, b, i);
        }
    } else if (tp->has_raw_data) {
        if (want) memcpy(t->data, tp->raw_data.data, want);
        if (!host_is_little_endian()) swap_elements(t->data, n, esz);
    } else if (ir_dtype_is_storage(dt)) {
        /* float8: int32_data holds each element's bits */
        for (size_t i = 0; i < n; i++) ((uint8_t *)t->data)[i] = (uint8_t)tp->int32_data[i];
    } else {
        for (size_t i = 0; i < n; i++) {
            switch (ot) {
            case 1: ((float *)t->data)[i] = tp->float_data[i]; break;
            case 7: ((int64_t *)t->data)[i] = tp->int64_data[i]; break;
            case 11: ((double *)t->data)[i] = tp->double_data[i]; break;
            case 10:
            case 16: ((uint16_t *)t->data)[i] = (uint16_t)tp->int32_data[i]; break;
            case 12:
            case 13: ir_store_i64(dt, t->data, i, (int64_t)tp->uint64_data[i]); break;
            default: ir_store_i64(dt, t->data, i, tp->int32_data[i]); break;
            }
        }
    }
    *out = t;
    return KILN_OK;
}

kiln_tensor *onnx_read_tensor_file(const char *path, kiln_status *st)
{
    uint8_t *buf;
    size_t len;
    if (onnx_read_file(path, (size_t)1 << 34, &buf, &len, st)) return NULL;
    onnx_allocator pa;
    onnx_allocator_init(&pa);
    Onnx__TensorProto *tp = onnx__tensor_proto__unpack(&pa.base, len, buf);
    ir_free(buf);
    if (!tp) {
        ir_set_status(st, pa.failed ? KILN_ERR_OUT_OF_MEMORY : KILN_ERR_INVALID_ARGUMENT,
                      "%s: %s", path,
                      pa.failed ? "out of memory" : "not a TensorProto (the protobuf does not parse)");
        return NULL;
    }
    kiln_tensor *t = NULL;
    char *dir = ir_strdup(path);
    if (dir) {
        char *slash = strrchr(dir, '/');
        if (slash) *slash = 0;
        else strcpy(dir, ".");
    }
    if (!dir) ir_set_status(st, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    else if (onnx_tensor_from_proto(tp, dir, tp->name && *tp->name ? tp->name : path, &t, st) ==
             KILN_OK)
        ir_status_ok(st);
    ir_free(dir);
    onnx__tensor_proto__free_unpacked(tp, &pa.base);
    return t;
}
