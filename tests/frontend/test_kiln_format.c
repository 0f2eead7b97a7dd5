/* test_kiln_format.c -- the .kiln graph file: round trips (text form and
 * reference results equal before and after; constants bit-exact in every
 * dtype), every load error on hand-crafted, truncated and corrupted files,
 * and allocation-failure sweeps over save and load. Files live in /tmp. */
#include "common/testutil.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "frontend/kiln_format.pb-c.h"
#include "ir.h"

/* ---- files ---- */

static void tmp_path(char *buf, size_t n, const char *tag)
{
    snprintf(buf, n, "/tmp/kiln_test_fmt_%ld_%s.kiln", (long)getpid(), tag);
}

static void write_bytes(const char *path, const void *data, size_t len)
{
    unlink(path); /* rewriting by truncation makes ext4 flush: slow */
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (len) assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* The whole file in a malloc'd buffer. */
static uint8_t *read_bytes(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

/* An independent bitwise CRC-32 (IEEE), the file's checksum. */
static uint32_t crc32_bitwise(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0xedb88320u : c >> 1;
    }
    return ~c;
}

/* Rewrites the last 4 bytes (the checksum) to match the rest. */
static void fix_crc(uint8_t *b, size_t len)
{
    uint32_t c = crc32_bitwise(b, len - 5);
    b[len - 5] = 0x7d;
    for (int i = 0; i < 4; i++) b[len - 4 + i] = (uint8_t)(c >> (8 * i));
}

/* Writes body + checksum trailer. */
static void write_with_crc(const char *path, const uint8_t *body, size_t len)
{
    uint8_t *b = malloc(len + 5);
    assert_non_null(b);
    memcpy(b, body, len);
    fix_crc(b, len + 5);
    write_bytes(path, b, len + 5);
    free(b);
}

static kiln_graph *load_ok(const char *path)
{
    kiln_status *st = kiln_status_new();
    kiln_graph *g = kiln_graph_load(path, st);
    if (!g) {
        char msg[2048];
        snprintf(msg, sizeof msg, "%s", kiln_status_message(st));
        kiln_status_free(st);
        fail_msg("kiln_graph_load: %s", msg);
    }
    assert_int_equal(kiln_status_code(st), KILN_OK);
    kiln_status_free(st);
    return g;
}

static void save_ok(const kiln_graph *g, const char *path)
{
    kiln_status *st = kiln_status_new();
    kiln_graph_save(g, path, st);
    if (kiln_status_code(st) != KILN_OK) {
        char msg[2048];
        snprintf(msg, sizeof msg, "%s", kiln_status_message(st));
        kiln_status_free(st);
        fail_msg("kiln_graph_save: %s", msg);
    }
    kiln_status_free(st);
}

/* Loads path expecting failure with `code` and a message naming the file
 * and containing every given substring (NULL-terminated). */
static void load_fails(const char *path, int code, ...)
{
    kiln_status *st = kiln_status_new();
    kiln_graph *g = kiln_graph_load(path, st);
    char msg[4096];
    snprintf(msg, sizeof msg, "%s", kiln_status_message(st));
    int got = kiln_status_code(st);
    kiln_status_free(st);
    if (g) {
        kiln_graph_free(g);
        fail_msg("loading %s succeeded; expected an error", path);
    }
    if (got != code)
        fail_msg("code %s, want %s: %s", kiln_status_code_name(got), kiln_status_code_name(code),
                 msg);
    if (!strstr(msg, path)) fail_msg("message does not name the file: %s", msg);
    va_list ap;
    va_start(ap, code);
    for (const char *s; (s = va_arg(ap, const char *));)
        if (!strstr(msg, s)) fail_msg("message lacks '%s': %s", s, msg);
    va_end(ap);
}

static void assert_same_text(const kiln_graph *a, const kiln_graph *b)
{
    char *ta = kiln_graph_to_text(a), *tb = kiln_graph_to_text(b);
    assert_non_null(ta);
    assert_non_null(tb);
    if (strcmp(ta, tb) != 0) {
        char msg[8192];
        snprintf(msg, sizeof msg, "text differs:\n--- saved\n%s--- loaded\n%s", ta, tb);
        kiln_free(ta);
        kiln_free(tb);
        fail_msg("%s", msg);
    }
    kiln_free(ta);
    kiln_free(tb);
}

static void assert_same_ports(const kiln_graph *a, const kiln_graph *b)
{
    kiln_value va[32], vb[32];
    int na = kiln_graph_outputs(a, va, 32), nb = kiln_graph_outputs(b, vb, 32);
    assert_int_equal(na, nb);
    for (int i = 0; i < na && i < 32; i++) {
        assert_int_equal(va[i].node, vb[i].node);
        assert_int_equal(va[i].index, vb[i].index);
    }
    na = kiln_graph_inputs(a, va, 32);
    nb = kiln_graph_inputs(b, vb, 32);
    assert_int_equal(na, nb);
    for (int i = 0; i < na && i < 32; i++) assert_int_equal(va[i].node, vb[i].node);
}

static void assert_same_tensor(const kiln_tensor *a, const kiln_tensor *b)
{
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(kiln_tensor_dtype(a), kiln_tensor_dtype(b));
    assert_int_equal(kiln_tensor_rank(a), kiln_tensor_rank(b));
    for (int i = 0; i < kiln_tensor_rank(a); i++)
        assert_int_equal(kiln_tensor_dims(a)[i], kiln_tensor_dims(b)[i]);
    assert_int_equal(kiln_tensor_nbytes(a), kiln_tensor_nbytes(b));
    if (kiln_tensor_nbytes(a))
        assert_memory_equal(kiln_tensor_const_data(a), kiln_tensor_const_data(b),
                            kiln_tensor_nbytes(a));
}

/* Runs both graphs with the reference backend on the same feeds and checks
 * each value in outs gives bit-identical results. */
static void assert_same_results(kiln_graph *a, kiln_graph *b, int nouts, const kiln_value *outs,
                                int nfeeds, const kiln_value *phs, kiln_tensor *const *feeds)
{
    for (int i = 0; i < nouts; i++) {
        kiln_tensor *ra = tu_run(a, outs[i], nfeeds, phs, feeds);
        kiln_tensor *rb = tu_run(b, outs[i], nfeeds, phs, feeds);
        assert_same_tensor(ra, rb);
        kiln_tensor_free(ra);
        kiln_tensor_free(rb);
    }
}

/* Saves g, loads it back (caller frees) and checks text and ports. */
static kiln_graph *round_trip(const kiln_graph *g, const char *tag)
{
    char path[256];
    tmp_path(path, sizeof path, tag);
    save_ok(g, path);
    kiln_graph *h = load_ok(path);
    assert_int_equal(kiln_graph_node_count(h), kiln_graph_node_count(g));
    assert_same_text(g, h);
    assert_same_ports(g, h);
    kiln_status *st = kiln_status_new();
    assert_int_equal(kiln_graph_verify(h, st), KILN_OK);
    kiln_status_free(st);
    unlink(path);
    return h;
}

/* ---- graphs ---- */

/* Core and elementwise ops with every attribute kind they have, symbolic
 * dims, a constant, a variable with an Assign, names given and made. */
static kiln_graph *build_elementwise_graph(kiln_value *phs, kiln_value *outs, int *nouts)
{
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){-1, 3});
    kiln_value y = kiln_placeholder(g, "y", KILN_F32, 2, (int64_t[]){-1, 3});
    kiln_tensor *ct = tu_f32(1, (int64_t[]){3}, (float[]){0.5f, -1.25f, 3.0f});
    kiln_value c = kiln_constant(g, "c", ct);
    kiln_tensor *vt = tu_f32(1, (int64_t[]){3}, (float[]){1.0f, 2.0f, -0.0f});
    kiln_value v = kiln_variable(g, "v", vt);
    kiln_tensor_free(ct);
    kiln_tensor_free(vt);
    kiln_value a = kiln_name(g, kiln_add(g, x, c), "x_plus_c");
    kiln_value m = kiln_mul(g, a, v);
    kiln_value lr = kiln_leaky_relu(g, m, 0.2);
    kiln_value el = kiln_elu(g, kiln_sub(g, lr, y), 0.5);
    kiln_value cl = kiln_clip(g, el, -1.0, INFINITY);
    kiln_attrs *at = kiln_attrs_new();
    kiln_attrs_string(at, "approximate", "tanh");
    kiln_value ge = kiln_op(g, "Gelu", &cl, 1, at);
    kiln_attrs_free(at);
    kiln_value cast = kiln_name(g, kiln_cast(g, ge, KILN_F64), "as_f64");
    kiln_value gt = kiln_greater(g, x, y);
    kiln_value nt = kiln_not(g, gt);
    kiln_value w = kiln_where(g, nt, kiln_identity(g, ge), kiln_neg(g, y));
    kiln_value as = kiln_assign(g, v, kiln_exp(g, c));
    kiln_value sig = kiln_sigmoid(g, kiln_div(g, w, kiln_scalar(g, KILN_F32, 4.0)));
    assert_null(kiln_graph_error(g));
    phs[0] = x;
    phs[1] = y;
    outs[0] = w;
    outs[1] = cast;
    outs[2] = sig;
    outs[3] = nt;
    outs[4] = as;
    *nouts = 5;
    kiln_graph_set_outputs(g, outs, 3);
    assert_null(kiln_graph_error(g));
    return g;
}

static void test_roundtrip_elementwise(void **state)
{
    (void)state;
    kiln_value phs[2], outs[5];
    int nouts;
    kiln_graph *g = build_elementwise_graph(phs, outs, &nouts);
    kiln_graph *h = round_trip(g, "elementwise");
    assert_string_equal(kiln_value_node_name(h, outs[1]), "as_f64");
    assert_int_equal(kiln_graph_find(h, "x_plus_c").node, kiln_graph_find(g, "x_plus_c").node);
    /* The placeholders keep their symbolic dim. */
    int64_t dims[2];
    assert_int_equal(kiln_value_dims(h, phs[0], dims), 2);
    assert_int_equal(dims[0], -1);
    kiln_tensor *fx = tu_random(KILN_F32, 2, (int64_t[]){4, 3}, -3, 3, 1);
    kiln_tensor *fy = tu_random(KILN_F32, 2, (int64_t[]){4, 3}, -3, 3, 2);
    assert_same_results(g, h, nouts, outs, 2, phs, (kiln_tensor *[]){fx, fy});
    kiln_tensor_free(fx);
    kiln_tensor_free(fy);
    kiln_graph_free(h);
    kiln_graph_free(g);
}

/* Saving over an existing file replaces it and leaves no temporary. */
static void test_save_replaces_atomically(void **state)
{
    (void)state;
    char path[256], tmp[300];
    tmp_path(path, sizeof path, "replace");
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    write_bytes(path, "old contents", 12);
    kiln_value phs[2], outs[5];
    int nouts;
    kiln_graph *g = build_elementwise_graph(phs, outs, &nouts);
    save_ok(g, path);
    save_ok(g, path);
    assert_int_not_equal(access(tmp, F_OK), 0);
    size_t len;
    uint8_t *b = read_bytes(path, &len);
    /* The documented envelope: the magic first, the checksum last. */
    assert_true(len > 17);
    assert_memory_equal(b, "\x0a\x0akiln.graph\x10\x01", 14);
    assert_int_equal(b[len - 5], 0x7d);
    uint32_t crc = crc32_bitwise(b, len - 5);
    assert_int_equal(b[len - 4] | b[len - 3] << 8 | b[len - 2] << 16 | (uint32_t)b[len - 1] << 24,
                     crc);
    free(b);
    kiln_graph *h = load_ok(path);
    assert_same_text(g, h);
    kiln_graph_free(h);
    kiln_graph_free(g);
    unlink(path);
}

/* Constants and variable initial values of every dtype, bit for bit:
 * NaN payloads, -0, infinities, subnormals, f16/bf16 patterns, scalars,
 * zero-size and rank-8 tensors. */
static void test_roundtrip_dtypes_bit_exact(void **state)
{
    (void)state;
    static const kiln_dtype dts[] = {KILN_F32, KILN_F64, KILN_F16, KILN_BF16, KILN_I8,  KILN_U8, KILN_I32,
                                     KILN_I64, KILN_BOOL, KILN_I16, KILN_U16,  KILN_U32, KILN_U64};
    kiln_graph *g = kiln_graph_new();
    kiln_tensor *made[64];
    int nmade = 0;
    for (size_t d = 0; d < sizeof dts / sizeof dts[0]; d++) {
        kiln_dtype dt = dts[d];
        size_t esz = kiln_dtype_size(dt);
        kiln_tensor *t = kiln_tensor_new(dt, 2, (int64_t[]){3, 5});
        uint8_t *p = kiln_tensor_data(t);
        for (size_t i = 0; i < 15 * esz; i++) p[i] = (uint8_t)(i * 37 + d * 11 + 0x80);
        if (dt == KILN_BOOL)
            for (size_t i = 0; i < 15; i++) p[i] &= 1;
        if (dt == KILN_F32) {
            uint32_t special[] = {0x7fc00001u, 0xff800000u, 0x80000000u, 0x00000001u, 0x7f7fffffu};
            memcpy(p, special, sizeof special);
        }
        if (dt == KILN_F64) {
            uint64_t special[] = {0x7ff8000000000abcull, 0xfff0000000000000ull,
                                  0x8000000000000000ull, 0x0000000000000001ull};
            memcpy(p, special, sizeof special);
        }
        if (dt == KILN_F16 || dt == KILN_BF16) {
            uint16_t special[] = {0x7e01, 0xfc00, 0x8000, 0x0001, 0x7bff};
            memcpy(p, special, sizeof special);
        }
        char name[32];
        snprintf(name, sizeof name, "c_%s", kiln_dtype_name(dt));
        kiln_constant(g, name, t);
        snprintf(name, sizeof name, "v_%s", kiln_dtype_name(dt));
        kiln_variable(g, name, t);
        made[nmade++] = t;
        /* A scalar and a zero-size tensor of each dtype. */
        kiln_tensor *s = kiln_tensor_new(dt, 0, NULL);
        memset(kiln_tensor_data(s), dt == KILN_BOOL ? 1 : 0x5a, esz);
        kiln_constant(g, NULL, s);
        made[nmade++] = s;
        kiln_tensor *z = kiln_tensor_new(dt, 2, (int64_t[]){0, 4});
        kiln_constant(g, NULL, z);
        made[nmade++] = z;
    }
    kiln_tensor *r8 = tu_random(KILN_F32, 8, (int64_t[]){1, 2, 1, 2, 1, 2, 1, 2}, -1, 1, 3);
    kiln_value c8 = kiln_constant(g, "rank8", r8);
    kiln_value id8 = kiln_identity(g, c8);
    made[nmade++] = r8;
    assert_null(kiln_graph_error(g));
    kiln_graph *h = round_trip(g, "dtypes");
    for (int i = 0; i < kiln_graph_node_count(g); i++) {
        const ir_node *a = &g->nodes[i], *b = &h->nodes[i];
        assert_int_equal(a->op, b->op);
        assert_string_equal(a->name, b->name);
        if (a->op != IR_OP_Constant && a->op != IR_OP_Variable) continue;
        assert_same_tensor(ir_node_tensor(a, "value"), ir_node_tensor(b, "value"));
    }
    kiln_tensor *ra = tu_run(g, id8, 0, NULL, NULL), *rb = tu_run(h, id8, 0, NULL, NULL);
    assert_same_tensor(ra, rb);
    assert_same_tensor(ra, r8);
    kiln_tensor_free(ra);
    kiln_tensor_free(rb);
    for (int i = 0; i < nmade; i++) kiln_tensor_free(made[i]);
    kiln_graph_free(h);
    kiln_graph_free(g);
}

/* A multi-output node (Split, from the shape family) and int attributes
 * equal to 0. Skipped if that family cannot build it. */
static void test_roundtrip_multi_output(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F64, 2, (int64_t[]){-1, 5});
    kiln_attrs *at = kiln_attrs_new();
    kiln_attrs_int(at, "axis", 1);
    kiln_attrs_ints(at, "split", (int64_t[]){2, 3, 0}, 3);
    kiln_value s0 = kiln_op(g, "Split", &x, 1, at);
    kiln_attrs_free(at);
    kiln_value s1 = {s0.node, 1}, s2 = {s0.node, 2};
    kiln_value cat = kiln_concat(g, (kiln_value[]){s1, s0, s2}, 3, 1);
    kiln_value t = kiln_tanh(g, s1);
    if (kiln_graph_error(g)) {
        kiln_graph_free(g);
        skip();
    }
    kiln_graph_set_outputs(g, (kiln_value[]){cat, s1, t, s2}, 4);
    kiln_graph *h = round_trip(g, "multi");
    assert_int_equal(kiln_value_output_count(h, s0), 3);
    kiln_tensor *fx = tu_random(KILN_F64, 2, (int64_t[]){3, 5}, -2, 2, 9);
    assert_same_results(g, h, 4, (kiln_value[]){cat, s1, t, s2}, 1, &x, &fx);
    kiln_tensor_free(fx);
    kiln_graph_free(h);
    kiln_graph_free(g);
}

/* No declared outputs stays "none declared" (the sinks are reported); an
 * empty graph round-trips. */
static void test_roundtrip_sinks_and_empty(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_graph *h = round_trip(g, "empty");
    assert_int_equal(kiln_graph_node_count(h), 0);
    kiln_graph_free(h);
    kiln_value x = kiln_placeholder(g, "x", KILN_I32, 1, (int64_t[]){-1});
    kiln_abs(g, x);
    kiln_maximum(g, x, kiln_scalar(g, KILN_I32, 2));
    h = round_trip(g, "sinks");
    assert_null(h->outputs);
    assert_int_equal(kiln_graph_outputs(h, NULL, 0), 2);
    kiln_graph_free(h);
    kiln_graph_free(g);
}

/* ---- save errors ---- */

static void test_save_errors(void **state)
{
    (void)state;
    char path[256];
    tmp_path(path, sizeof path, "bad_save");
    unlink(path);
    kiln_graph *g = kiln_graph_new();
    kiln_value a = kiln_placeholder(g, "a", KILN_F32, 1, (int64_t[]){2});
    kiln_value b = kiln_placeholder(g, "b", KILN_F32, 1, (int64_t[]){3});
    kiln_add(g, a, b);
    assert_non_null(kiln_graph_error(g));
    kiln_status *st = kiln_status_new();
    kiln_graph_save(g, path, st);
    assert_int_equal(kiln_status_code(st), KILN_ERR_FAILED_PRECONDITION);
    assert_non_null(strstr(kiln_status_message(st), "broadcast"));
    assert_non_null(strstr(kiln_status_message(st), path));
    assert_int_not_equal(access(path, F_OK), 0);
    kiln_graph_free(g);

    g = kiln_graph_new();
    kiln_placeholder(g, "a", KILN_F32, 1, (int64_t[]){2});
    kiln_graph_save(g, "/nonexistent-dir-kiln/x.kiln", st);
    assert_int_equal(kiln_status_code(st), KILN_ERR_IO);
    assert_non_null(strstr(kiln_status_message(st), "/nonexistent-dir-kiln/x.kiln"));
    kiln_graph_save(g, NULL, st);
    assert_int_equal(kiln_status_code(st), KILN_ERR_INVALID_ARGUMENT);
    kiln_graph_save(NULL, path, st);
    assert_int_equal(kiln_status_code(st), KILN_ERR_INVALID_ARGUMENT);
    kiln_graph_save(g, path, NULL); /* a NULL status is allowed */
    kiln_graph *h = kiln_graph_load(path, NULL);
    assert_non_null(h);
    kiln_graph_free(h);
    unlink(path);
    kiln_status_free(st);
    kiln_graph_free(g);
}

/* ---- hand-crafted files ---- */

typedef struct {
    KilnFormat__Graph g;
    KilnFormat__Node nodes[16], *np[16];
    KilnFormat__ValueRef refs[64], *rp[64];
    KilnFormat__Attribute attrs[32], *ap[32];
    KilnFormat__Tensor tensors[8];
    KilnFormat__IntList ints[8];
    KilnFormat__FloatList floats[8];
    int nrefs, nattrs, ntensors, nints, nfloats;
} craft;

static craft *craft_new(void)
{
    craft *c = calloc(1, sizeof *c);
    assert_non_null(c);
    kiln_format__graph__init(&c->g);
    c->g.magic = "kiln.graph";
    c->g.format_version = 1;
    c->g.producer = "test";
    c->g.nodes = c->np;
    return c;
}

/* Nodes are added in order; each node's inputs and attributes right after it. */
static KilnFormat__Node *craft_node(craft *c, const char *op, const char *name)
{
    KilnFormat__Node *n = &c->nodes[c->g.n_nodes];
    kiln_format__node__init(n);
    n->op = (char *)op;
    n->name = (char *)name;
    n->inputs = &c->rp[c->nrefs];
    n->attrs = &c->ap[c->nattrs];
    c->np[c->g.n_nodes++] = n;
    return n;
}

static void craft_input(craft *c, KilnFormat__Node *n, uint32_t node, uint32_t index)
{
    KilnFormat__ValueRef *r = &c->refs[c->nrefs];
    kiln_format__value_ref__init(r);
    r->node = node;
    r->index = index;
    c->rp[c->nrefs++] = r;
    n->n_inputs++;
}

static KilnFormat__Attribute *craft_attr(craft *c, KilnFormat__Node *n, const char *name)
{
    KilnFormat__Attribute *a = &c->attrs[c->nattrs];
    kiln_format__attribute__init(a);
    a->name = (char *)name;
    c->ap[c->nattrs++] = a;
    n->n_attrs++;
    return a;
}

static void craft_dtype(craft *c, KilnFormat__Node *n, const char *name, int dt)
{
    KilnFormat__Attribute *a = craft_attr(c, n, name);
    a->value_case = KILN_FORMAT__ATTRIBUTE__VALUE_DTYPE;
    a->dtype = (KilnFormat__DType)dt;
}

static void craft_ints(craft *c, KilnFormat__Node *n, const char *name, int64_t *v, size_t count)
{
    KilnFormat__Attribute *a = craft_attr(c, n, name);
    KilnFormat__IntList *l = &c->ints[c->nints++];
    kiln_format__int_list__init(l);
    l->values = v;
    l->n_values = count;
    a->value_case = KILN_FORMAT__ATTRIBUTE__VALUE_INTS;
    a->ints = l;
}

static void craft_tensor(craft *c, KilnFormat__Node *n, const char *name, int dt, int64_t *dims,
                         size_t ndims, const void *data, size_t len)
{
    KilnFormat__Attribute *a = craft_attr(c, n, name);
    KilnFormat__Tensor *t = &c->tensors[c->ntensors++];
    kiln_format__tensor__init(t);
    t->dtype = (KilnFormat__DType)dt;
    t->dims = dims;
    t->n_dims = ndims;
    t->data.data = (uint8_t *)data;
    t->data.len = len;
    a->value_case = KILN_FORMAT__ATTRIBUTE__VALUE_TENSOR;
    a->tensor = t;
}

/* A Placeholder f32[2] named name. */
static KilnFormat__Node *craft_placeholder(craft *c, const char *name)
{
    static int64_t two[] = {2};
    KilnFormat__Node *n = craft_node(c, "Placeholder", name);
    craft_dtype(c, n, "dtype", KILN_F32);
    craft_ints(c, n, "shape", two, 1);
    return n;
}

static void craft_write(craft *c, const char *path)
{
    size_t n = kiln_format__graph__get_packed_size(&c->g);
    uint8_t *b = malloc(n + 1);
    assert_non_null(b);
    assert_int_equal(kiln_format__graph__pack(&c->g, b), n);
    write_with_crc(path, b, n);
    free(b);
}

/* The crafting helpers themselves make a loadable file. */
static void test_crafted_valid(void **state)
{
    (void)state;
    char path[256];
    tmp_path(path, sizeof path, "crafted");
    craft *c = craft_new();
    craft_placeholder(c, "p");
    KilnFormat__Node *r = craft_node(c, "Relu", "r");
    craft_input(c, r, 0, 0);
    float data[] = {1.5f, -2.0f};
    KilnFormat__Node *k = craft_node(c, "Constant", "k");
    craft_tensor(c, k, "value", KILN_F32, (int64_t[]){2}, 1, data, sizeof data);
    KilnFormat__Node *ad = craft_node(c, "Add", "sum");
    craft_input(c, ad, 1, 0);
    craft_input(c, ad, 2, 0);
    craft_write(c, path);
    kiln_graph *g = load_ok(path);
    assert_int_equal(kiln_graph_node_count(g), 4);
    kiln_value p = kiln_graph_find(g, "p");
    kiln_tensor *fp = tu_f32(1, (int64_t[]){2}, (float[]){-1.0f, 4.0f});
    kiln_tensor *res = tu_run(g, kiln_graph_find(g, "sum"), 1, &p, &fp);
    tu_assert_close(res, (double[]){1.5, 2.0}, 2, 0, 0);
    kiln_tensor_free(res);
    kiln_tensor_free(fp);
    kiln_graph_free(g);
    free(c);
    unlink(path);
}

static void test_load_missing_and_foreign(void **state)
{
    (void)state;
    char path[256];
    tmp_path(path, sizeof path, "missing");
    unlink(path);
    load_fails(path, KILN_ERR_NOT_FOUND, "cannot open", NULL);
    write_bytes(path, "hello, world\n", 13);
    load_fails(path, KILN_ERR_INVALID_ARGUMENT, "not a kiln graph file", NULL);
    write_bytes(path, "", 0);
    load_fails(path, KILN_ERR_INVALID_ARGUMENT, "not a kiln graph file", NULL);
    write_bytes(path, "\x0a\x0akiln", 6);
    load_fails(path, KILN_ERR_INVALID_ARGUMENT, "truncated", NULL);
    load_fails("/tmp", KILN_ERR_INVALID_ARGUMENT, "not a regular file", NULL);
    unlink(path);
    assert_int_equal(mkfifo(path, 0600), 0); /* must not block */
    load_fails(path, KILN_ERR_INVALID_ARGUMENT, "not a regular file", NULL);
    kiln_status *st = kiln_status_new();
    assert_null(kiln_graph_load(NULL, st));
    assert_int_equal(kiln_status_code(st), KILN_ERR_INVALID_ARGUMENT);
    kiln_status_free(st);
    unlink(path);
}

static void test_load_wrong_version(void **state)
{
    (void)state;
    char path[256];
    tmp_path(path, sizeof path, "version");
    craft *c = craft_new();
    craft_placeholder(c, "p");
    c->g.format_version = 2;
    craft_write(c, path);
    load_fails(path, KILN_ERR_INVALID_ARGUMENT, "version 2", "reads version 1", NULL);
    c->g.format_version = 0; /* proto3 leaves a 0 out: no version at all */
    craft_write(c, path);
    load_fails(path, KILN_ERR_INVALID_ARGUMENT, "no format version", NULL);
    /* A later duplicate of the version field is caught after parsing. */
    c->g.format_version = 1;
    size_t n = kiln_format__graph__get_packed_size(&c->g);
    uint8_t *b = malloc(n + 2);
    kiln_format__graph__pack(&c->g, b);
    b[n] = 0x10;
    b[n + 1] = 0x03;
    write_with_crc(path, b, n + 2);
    load_fails(path, KILN_ERR_INVALID_ARGUMENT, "version 3", NULL);
    free(b);
    free(c);
    unlink(path);
}

static void test_load_malformed_protobuf(void **state)
{
    (void)state;
    char path[256];
    tmp_path(path, sizeof path, "malformed");
    /* A valid envelope around bytes that do not parse. */
    static const uint8_t bodies[][24] = {
        /* field 4 (nodes) with a length running past the end */
        {0x0a, 0x0a, 'k', 'i', 'l', 'n', '.', 'g', 'r', 'a', 'p', 'h', 0x10, 0x01, 0x22, 0xff,
         0xff, 0xff, 0x0f, 0x00},
        /* an invalid wire type (7) */
        {0x0a, 0x0a, 'k', 'i', 'l', 'n', '.', 'g', 'r', 'a', 'p', 'h', 0x10, 0x01, 0x27, 0x00},
        /* a varint that never ends */
        {0x0a, 0x0a, 'k', 'i', 'l', 'n', '.', 'g', 'r', 'a', 'p', 'h', 0x10, 0x01, 0x18, 0xff,
         0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
        /* nodes (field 4) declared as a varint */
        {0x0a, 0x0a, 'k', 'i', 'l', 'n', '.', 'g', 'r', 'a', 'p', 'h', 0x10, 0x01, 0x20, 0x05},
    };
    static const size_t lens[] = {20, 16, 24, 16};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        write_with_crc(path, bodies[i], lens[i]);
        load_fails(path, KILN_ERR_INVALID_ARGUMENT, "malformed", NULL);
    }
    unlink(path);
}

/* Every strict prefix of a real file and every single-byte corruption is
 * rejected. */
static void test_load_truncated_and_corrupted(void **state)
{
    (void)state;
    char path[256], bad[256];
    tmp_path(path, sizeof path, "trunc_src");
    tmp_path(bad, sizeof bad, "trunc");
    kiln_value phs[2], outs[5];
    int nouts;
    kiln_graph *g = build_elementwise_graph(phs, outs, &nouts);
    save_ok(g, path);
    kiln_graph_free(g);
    size_t len;
    uint8_t *b = read_bytes(path, &len);
    for (size_t n = 0; n < len; n++) {
        write_bytes(bad, b, n);
        kiln_status *st = kiln_status_new();
        kiln_graph *h = kiln_graph_load(bad, st);
        if (h) fail_msg("a prefix of %zu of %zu bytes loaded", n, len);
        assert_int_equal(kiln_status_code(st), KILN_ERR_INVALID_ARGUMENT);
        assert_non_null(strstr(kiln_status_message(st), bad));
        kiln_status_free(st);
    }
    load_fails(bad, KILN_ERR_INVALID_ARGUMENT, "truncated", NULL);
    for (size_t i = 0; i < len; i++) {
        b[i] ^= 0x20;
        write_bytes(bad, b, len);
        b[i] ^= 0x20;
        kiln_graph *h = kiln_graph_load(bad, NULL);
        if (h) fail_msg("a file with byte %zu of %zu flipped loaded", i, len);
    }
    free(b);
    unlink(path);
    unlink(bad);
}

/* Mutations with a corrected checksum get past the envelope and exercise
 * the parser and the graph checks: each load either fails cleanly or
 * yields a graph that verifies. Never a crash, never a leak. */
static void test_load_mutations_with_valid_checksum(void **state)
{
    (void)state;
    char path[256], bad[256];
    tmp_path(path, sizeof path, "mut_src");
    tmp_path(bad, sizeof bad, "mut");
    kiln_value phs[2], outs[5];
    int nouts;
    kiln_graph *g = build_elementwise_graph(phs, outs, &nouts);
    save_ok(g, path);
    kiln_graph_free(g);
    size_t len;
    uint8_t *b = read_bytes(path, &len);
    uint8_t *m = malloc(len);
    int loaded = 0, failed = 0;
    for (size_t i = 14; i + 5 < len; i++) {
        const uint8_t vals[] = {0x00, 0xff, (uint8_t)(b[i] ^ 1), (uint8_t)(b[i] + 1), 0x80};
        for (size_t k = 0; k < sizeof vals; k++) {
            memcpy(m, b, len);
            m[i] = vals[k];
            fix_crc(m, len);
            write_bytes(bad, m, len);
            kiln_status *st = kiln_status_new();
            kiln_graph *h = kiln_graph_load(bad, st);
            if (h) {
                assert_int_equal(kiln_graph_verify(h, st), KILN_OK);
                kiln_graph_free(h);
                loaded++;
            } else {
                assert_int_not_equal(kiln_status_code(st), KILN_OK);
                assert_non_null(strstr(kiln_status_message(st), bad));
                failed++;
            }
            kiln_status_free(st);
        }
    }
    assert_true(failed > 0);
    assert_true(loaded > 0); /* e.g. a changed constant value */
    free(m);
    free(b);
    unlink(path);
    unlink(bad);
}

static void test_load_unknown_ops(void **state)
{
    (void)state;
    char path[256];
    tmp_path(path, sizeof path, "unknown_ops");
    craft *c = craft_new();
    craft_placeholder(c, "p");
    craft_input(c, craft_node(c, "FancyConv", "a"), 0, 0);
    craft_input(c, craft_node(c, "Relu", "b"), 0, 0);
    craft_input(c, craft_node(c, "Frobnicate", "c"), 0, 0);
    craft_input(c, craft_node(c, "FancyConv", "d"), 0, 0);
    craft_write(c, path);
    load_fails(path, KILN_ERR_INVALID_ARGUMENT, "2 unknown ops in 3 nodes", "'FancyConv' (node 1 'a')",
               "'Frobnicate' (node 3 'c')", NULL);
    free(c);
    unlink(path);
}

static void test_load_bad_inputs(void **state)
{
    (void)state;
    char path[256];
    tmp_path(path, sizeof path, "bad_inputs");
    /* A cycle: r1 uses r2, which comes later and uses r1. */
    craft *c = craft_new();
    craft_placeholder(c, "p");
    craft_input(c, craft_node(c, "Relu", "r1"), 2, 0);
    craft_input(c, craft_node(c, "Relu", "r2"), 1, 0);
    craft_write(c, path);
    load_fails(path, KILN_ERR_INVALID_ARGUMENT, "node 1 ('r1', Relu)", "refers to node 2",
               "not an earlier node", NULL);
    free(c);
    /* A node using itself. */
    c = craft_new();
    craft_placeholder(c, "p");
    craft_input(c, craft_node(c, "Relu", "self"), 1, 0);
    craft_write(c, path);
    load_fails(path, KILN_ERR_INVALID_ARGUMENT, "'self'", "refers to node 1", NULL);
    free(c);
    /* A dangling reference far past the end. */
    c = craft_new();
    craft_placeholder(c, "p");
    craft_input(c, craft_node(c, "Relu", "r"), 4000000000u, 0);
    craft_write(c, path);
    load_fails(path, KILN_ERR_INVALID_ARGUMENT, "refers to node 4000000000", NULL);
    free(c);
    /* An output the node does not have. */
    c = craft_new();
    craft_placeholder(c, "p");
    craft_input(c, craft_node(c, "Relu", "r"), 0, 1);
    craft_write(c, path);
    load_fails(path, KILN_ERR_INVALID_ARGUMENT, "output 1 of node 0 ('p'), which has 1 output",
               NULL);
    free(c);
    /* A declared output that is not a value. */
    c = craft_new();
    craft_placeholder(c, "p");
    KilnFormat__ValueRef out = KILN_FORMAT__VALUE_REF__INIT, *outp = &out;
    out.node = 0;
    out.index = 3;
    c->g.outputs = &outp;
    c->g.n_outputs = 1;
    craft_write(c, path);
    load_fails(path, KILN_ERR_INVALID_ARGUMENT, "declared output 0 (0:3)", NULL);
    free(c);
    /* Input count outside the op's arity (checked by the graph). */
    c = craft_new();
    craft_placeholder(c, "p");
    craft_input(c, craft_node(c, "Add", "add1"), 0, 0);
    craft_write(c, path);
    load_fails(path, KILN_ERR_INVALID_ARGUMENT, "Add 'add1'", "takes 2 inputs, got 1", NULL);
    free(c);
    unlink(path);
}

static void test_load_bad_tensors(void **state)
{
    (void)state;
    char path[256];
    tmp_path(path, sizeof path, "bad_tensors");
    float six[6] = {0};
    struct {
        int dt;
        int64_t dims[10];
        size_t ndims, len;
        const char *want;
    } cases[] = {
        {KILN_F32, {2, 3}, 2, 20, "needs 24 bytes, the file holds 20"},
        {KILN_F16, {2, 3}, 2, 24, "needs 12 bytes, the file holds 24"},
        {KILN_BOOL, {2, 3}, 2, 0, "needs 6 bytes, the file holds 0"},
        {KILN_F32, {-1, 3}, 2, 0, "dim 0 is -1"},
        {KILN_F32, {2, -5}, 2, 0, "dim 1 is -5"},
        {KILN_F32, {1ll << 40, 1ll << 40}, 2, 0, "overflows"},
        {KILN_F32, {1ll << 62, 0, 1ll << 62}, 3, 0, "overflows"},
        {KILN_I64, {1ll << 61}, 1, 0, "overflows"},
        {KILN_F32, {1, 1, 1, 1, 1, 1, 1, 1, 1}, 9, 4, "9 dims; the most is 8"},
        {0, {2}, 1, 8, "invalid dtype 0"},
        {42, {2}, 1, 8, "invalid dtype 42"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        craft *c = craft_new();
        KilnFormat__Node *n = craft_node(c, i % 2 ? "Variable" : "Constant", "t");
        craft_tensor(c, n, "value", cases[i].dt, cases[i].dims, cases[i].ndims, six,
                     cases[i].len);
        craft_write(c, path);
        load_fails(path, KILN_ERR_INVALID_ARGUMENT, "node 0 ('t'", "tensor 'value'",
                   cases[i].want, NULL);
        free(c);
    }
    /* A tensor attribute with no tensor message. */
    craft *c = craft_new();
    KilnFormat__Attribute *a = craft_attr(c, craft_node(c, "Constant", "t"), "value");
    a->value_case = KILN_FORMAT__ATTRIBUTE__VALUE_TENSOR;
    a->tensor = NULL;
    craft_write(c, path);
    load_fails(path, KILN_ERR_INVALID_ARGUMENT, "node 0", NULL);
    free(c);
    unlink(path);
}

static void test_load_bad_names(void **state)
{
    (void)state;
    char path[256];
    tmp_path(path, sizeof path, "bad_names");
    craft *c = craft_new();
    craft_placeholder(c, "p");
    craft_input(c, craft_node(c, "Relu", "dup"), 0, 0);
    craft_input(c, craft_node(c, "Neg", "dup"), 1, 0);
    craft_write(c, path);
    load_fails(path, KILN_ERR_INVALID_ARGUMENT, "node 2 ('dup', Neg)",
               "duplicate node name: node 1 has the same name", NULL);
    free(c);
    c = craft_new();
    craft_placeholder(c, "");
    craft_write(c, path);
    load_fails(path, KILN_ERR_INVALID_ARGUMENT, "node 0", "has no name", NULL);
    free(c);
    unlink(path);
}

static void test_load_bad_attributes(void **state)
{
    (void)state;
    char path[256];
    tmp_path(path, sizeof path, "bad_attrs");
    /* No value. */
    craft *c = craft_new();
    craft_attr(c, craft_node(c, "Placeholder", "p"), "dtype");
    craft_write(c, path);
    load_fails(path, KILN_ERR_INVALID_ARGUMENT, "attribute 'dtype' has no value", NULL);
    free(c);
    /* Given twice. */
    c = craft_new();
    KilnFormat__Node *n = craft_placeholder(c, "p");
    craft_dtype(c, n, "dtype", KILN_F64);
    craft_write(c, path);
    load_fails(path, KILN_ERR_INVALID_ARGUMENT, "attribute 'dtype' is given twice", NULL);
    free(c);
    /* Not in the op's schema. */
    c = craft_new();
    n = craft_placeholder(c, "p");
    craft_dtype(c, n, "colour", KILN_F64);
    craft_write(c, path);
    load_fails(path, KILN_ERR_INVALID_ARGUMENT, "unknown attribute 'colour'", "dtype, shape",
               NULL);
    free(c);
    /* Missing a required attribute. */
    c = craft_new();
    craft_node(c, "Placeholder", "p");
    craft_write(c, path);
    load_fails(path, KILN_ERR_INVALID_ARGUMENT, "missing required attribute 'dtype'", NULL);
    free(c);
    /* A dtype attribute holding no dtype. */
    c = craft_new();
    craft_placeholder(c, "p");
    n = craft_node(c, "Cast", "cast");
    craft_input(c, n, 0, 0);
    craft_dtype(c, n, "to", 42);
    craft_write(c, path);
    load_fails(path, KILN_ERR_INVALID_ARGUMENT, "Cast 'cast'", "not a dtype (42)", NULL);
    free(c);
    /* The wrong kind: floats (and a float) where the schema wants a string. */
    c = craft_new();
    craft_placeholder(c, "p");
    n = craft_node(c, "Gelu", "gelu");
    craft_input(c, n, 0, 0);
    KilnFormat__Attribute *a = craft_attr(c, n, "approximate");
    KilnFormat__FloatList fl = KILN_FORMAT__FLOAT_LIST__INIT;
    double fv[] = {1.5, -2.5};
    fl.values = fv;
    fl.n_values = 2;
    a->value_case = KILN_FORMAT__ATTRIBUTE__VALUE_FLOATS;
    a->floats = &fl;
    craft_write(c, path);
    load_fails(path, KILN_ERR_INVALID_ARGUMENT, "attribute 'approximate' must be string, got floats",
               NULL);
    a->value_case = KILN_FORMAT__ATTRIBUTE__VALUE_F;
    a->f = 0.5;
    craft_write(c, path);
    load_fails(path, KILN_ERR_INVALID_ARGUMENT, "must be string, got float", NULL);
    free(c);
    /* An int where a float is wanted converts, as through the API. */
    c = craft_new();
    craft_placeholder(c, "p");
    n = craft_node(c, "LeakyRelu", "lr");
    craft_input(c, n, 0, 0);
    a = craft_attr(c, n, "alpha");
    a->value_case = KILN_FORMAT__ATTRIBUTE__VALUE_I;
    a->i = 2;
    craft_write(c, path);
    kiln_graph *g = load_ok(path);
    char *text = kiln_graph_to_text(g);
    assert_non_null(strstr(text, "LeakyRelu(%0) {alpha=2}"));
    kiln_free(text);
    kiln_graph_free(g);
    free(c);
    /* Type inference runs on every node: a shape mismatch. */
    c = craft_new();
    craft_placeholder(c, "p");
    static int64_t three[] = {3};
    n = craft_node(c, "Placeholder", "q");
    craft_dtype(c, n, "dtype", KILN_F32);
    craft_ints(c, n, "shape", three, 1);
    n = craft_node(c, "Add", "sum");
    craft_input(c, n, 0, 0);
    craft_input(c, n, 1, 0);
    craft_write(c, path);
    load_fails(path, KILN_ERR_INVALID_ARGUMENT, "node 2", "Add 'sum'", "broadcast", NULL);
    free(c);
    /* A placeholder whose element count overflows. */
    c = craft_new();
    static int64_t huge[] = {1ll << 62, 1ll << 62};
    n = craft_node(c, "Placeholder", "p");
    craft_dtype(c, n, "dtype", KILN_F32);
    craft_ints(c, n, "shape", huge, 2);
    craft_write(c, path);
    load_fails(path, KILN_ERR_INVALID_ARGUMENT, "node 0", "Placeholder", NULL);
    free(c);
    /* Assign to something that is not a Variable. */
    c = craft_new();
    craft_placeholder(c, "p");
    n = craft_node(c, "Assign", "as");
    craft_input(c, n, 0, 0);
    craft_input(c, n, 0, 0);
    craft_write(c, path);
    load_fails(path, KILN_ERR_INVALID_ARGUMENT, "must be a Variable", NULL);
    free(c);
    unlink(path);
}

/* ---- allocation-failure sweeps ---- */

static void test_alloc_sweep_save(void **state)
{
    (void)state;
    char path[256], tmp[300];
    tmp_path(path, sizeof path, "sweep_save");
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    unlink(path);
    kiln_value phs[2], outs[5];
    int nouts;
    kiln_graph *g = build_elementwise_graph(phs, outs, &nouts);
    long base = ir_alloc_live_blocks();
    int failures = 0;
    for (long n = 0;; n++) {
        kiln_status *st = kiln_status_new();
        ir_alloc_fail_after(n);
        kiln_graph_save(g, path, st);
        ir_alloc_fail_after(-1);
        int code = kiln_status_code(st);
        kiln_status_free(st);
        assert_int_equal(ir_alloc_live_blocks(), base);
        assert_int_not_equal(access(tmp, F_OK), 0);
        if (code == KILN_OK) break;
        assert_int_equal(code, KILN_ERR_OUT_OF_MEMORY);
        assert_int_not_equal(access(path, F_OK), 0);
        failures++;
        assert_true(n < 100000);
    }
    assert_true(failures > 0);
    kiln_graph *h = load_ok(path);
    assert_same_text(g, h);
    kiln_graph_free(h);
    kiln_graph_free(g);
    assert_int_equal(ir_alloc_live_blocks(), 0);
    unlink(path);
}

static void test_alloc_sweep_load(void **state)
{
    (void)state;
    char path[256];
    tmp_path(path, sizeof path, "sweep_load");
    kiln_value phs[2], outs[5];
    int nouts;
    kiln_graph *g = build_elementwise_graph(phs, outs, &nouts);
    save_ok(g, path);
    long base = ir_alloc_live_blocks();
    int failures = 0;
    for (long n = 0;; n++) {
        kiln_status *st = kiln_status_new();
        ir_alloc_fail_after(n);
        kiln_graph *h = kiln_graph_load(path, st);
        ir_alloc_fail_after(-1);
        int code = kiln_status_code(st);
        kiln_status_free(st);
        if (h) {
            assert_int_equal(code, KILN_OK);
            assert_same_text(g, h);
            kiln_graph_free(h);
            assert_int_equal(ir_alloc_live_blocks(), base);
            break;
        }
        assert_int_equal(ir_alloc_live_blocks(), base);
        assert_int_equal(code, KILN_ERR_OUT_OF_MEMORY);
        failures++;
        assert_true(n < 100000);
    }
    assert_true(failures > 10);
    kiln_graph_free(g);
    assert_int_equal(ir_alloc_live_blocks(), 0);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_roundtrip_elementwise),
        TU_TEST(test_save_replaces_atomically),
        TU_TEST(test_roundtrip_dtypes_bit_exact),
        TU_TEST(test_roundtrip_multi_output),
        TU_TEST(test_roundtrip_sinks_and_empty),
        TU_TEST(test_save_errors),
        TU_TEST(test_crafted_valid),
        TU_TEST(test_load_missing_and_foreign),
        TU_TEST(test_load_wrong_version),
        TU_TEST(test_load_malformed_protobuf),
        TU_TEST(test_load_truncated_and_corrupted),
        TU_TEST(test_load_mutations_with_valid_checksum),
        TU_TEST(test_load_unknown_ops),
        TU_TEST(test_load_bad_inputs),
        TU_TEST(test_load_bad_tensors),
        TU_TEST(test_load_bad_names),
        TU_TEST(test_load_bad_attributes),
        TU_TEST(test_alloc_sweep_save),
        TU_TEST(test_alloc_sweep_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
