/* test_onnx_import.c -- the ONNX importer's own tests: models built here
 * with the generated protobuf-c structs (or as raw bytes), covering names,
 * shape overrides and folding, initializers as variables, external data,
 * the one-error list of unsupported ops, malformed and hostile files, and
 * an allocation-failure sweep. The conformance runner covers the ops. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/testutil.h"
#include "ir.h"
#include "onnx/onnx.pb-c.h"

/* ---- building models: every allocation is kept in a list, freed at once ---- */

static void *pool[4096];
static int npool;

static void *keep(void *p)
{
    assert_true(npool < 4096);
    pool[npool++] = p;
    return p;
}

static void pool_free(void)
{
    while (npool > 0) free(pool[--npool]);
}

static char tmpdir[64];

static void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/kiln_onnx_XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
}

static void remove_tmpdir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    assert_int_equal(system(cmd), 0);
}

static const char *tmp_path(const char *name)
{
    static char p[2][128];
    static int k;
    k ^= 1;
    snprintf(p[k], sizeof p[k], "%s/%s", tmpdir, name);
    return p[k];
}

static char **strs(int n, const char *const *v)
{
    char **a = keep(calloc((size_t)(n ? n : 1), sizeof(char *)));
    for (int i = 0; i < n; i++) a[i] = (char *)v[i];
    return a;
}

static Onnx__NodeProto *node(const char *op, const char *name, int nin, const char *const *in,
                             int nout, const char *const *out)
{
    Onnx__NodeProto *n = keep(malloc(sizeof *n));
    onnx__node_proto__init(n);
    n->op_type = (char *)op;
    n->name = (char *)name;
    n->n_input = (size_t)nin;
    n->input = strs(nin, in);
    n->n_output = (size_t)nout;
    n->output = strs(nout, out);
    return n;
}

static void node_attr_ints(Onnx__NodeProto *n, const char *name, const int64_t *v, int count)
{
    Onnx__AttributeProto *a = keep(malloc(sizeof *a));
    onnx__attribute_proto__init(a);
    a->name = (char *)name;
    a->has_type = 1;
    a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
    a->n_ints = (size_t)count;
    a->ints = (int64_t *)v;
    Onnx__AttributeProto **arr = keep(calloc(n->n_attribute + 1, sizeof *arr));
    for (size_t i = 0; i < n->n_attribute; i++) arr[i] = n->attribute[i];
    arr[n->n_attribute++] = a;
    n->attribute = arr;
}

/* A tensor value_info: dims -1 become dim_param "N". */
static Onnx__ValueInfoProto *vinfo(const char *name, int elem, int rank, const int64_t *dims)
{
    Onnx__ValueInfoProto *v = keep(malloc(sizeof *v));
    onnx__value_info_proto__init(v);
    v->name = (char *)name;
    Onnx__TypeProto *t = keep(malloc(sizeof *t));
    onnx__type_proto__init(t);
    Onnx__TypeProto__Tensor *tt = keep(malloc(sizeof *tt));
    onnx__type_proto__tensor__init(tt);
    tt->has_elem_type = 1;
    tt->elem_type = elem;
    Onnx__TensorShapeProto *s = keep(malloc(sizeof *s));
    onnx__tensor_shape_proto__init(s);
    s->n_dim = (size_t)rank;
    s->dim = keep(calloc((size_t)(rank ? rank : 1), sizeof *s->dim));
    for (int i = 0; i < rank; i++) {
        Onnx__TensorShapeProto__Dimension *d = keep(malloc(sizeof *d));
        onnx__tensor_shape_proto__dimension__init(d);
        if (dims[i] >= 0) {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            d->dim_value = dims[i];
        } else {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            d->dim_param = "N";
        }
        s->dim[i] = d;
    }
    tt->shape = s;
    t->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    t->tensor_type = tt;
    v->type = t;
    return v;
}

static Onnx__TensorProto *ftensor(const char *name, int rank, const int64_t *dims, const float *data,
                                  size_t n)
{
    Onnx__TensorProto *t = keep(malloc(sizeof *t));
    onnx__tensor_proto__init(t);
    t->name = (char *)name;
    t->has_data_type = 1;
    t->data_type = 1;
    t->n_dims = (size_t)rank;
    t->dims = (int64_t *)dims;
    t->has_raw_data = 1;
    t->raw_data.len = n * sizeof(float);
    t->raw_data.data = (uint8_t *)data;
    return t;
}

typedef struct {
    Onnx__ModelProto m;
    Onnx__GraphProto g;
    Onnx__OperatorSetIdProto opset;
    Onnx__OperatorSetIdProto *opsets[1];
    Onnx__NodeProto *nodes[16];
    Onnx__ValueInfoProto *inputs[8], *outputs[8];
    Onnx__TensorProto *inits[8];
} model;

static void model_init(model *md, int opset)
{
    memset(md, 0, sizeof *md);
    onnx__model_proto__init(&md->m);
    onnx__graph_proto__init(&md->g);
    onnx__operator_set_id_proto__init(&md->opset);
    md->opset.domain = "";
    md->opset.has_version = 1;
    md->opset.version = opset;
    md->opsets[0] = &md->opset;
    md->m.n_opset_import = 1;
    md->m.opset_import = md->opsets;
    md->m.has_ir_version = 1;
    md->m.ir_version = 8;
    md->m.graph = &md->g;
    md->g.name = "g";
    md->g.node = md->nodes;
    md->g.input = md->inputs;
    md->g.output = md->outputs;
    md->g.initializer = md->inits;
}

static void add_node(model *md, Onnx__NodeProto *n) { md->nodes[md->g.n_node++] = n; }
static void add_input(model *md, Onnx__ValueInfoProto *v) { md->inputs[md->g.n_input++] = v; }
static void add_output(model *md, Onnx__ValueInfoProto *v) { md->outputs[md->g.n_output++] = v; }
static void add_init(model *md, Onnx__TensorProto *t) { md->inits[md->g.n_initializer++] = t; }

static void write_bytes(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
}

/* Packs the model into tmpdir/name and returns the path. */
static const char *save_model(model *md, const char *name)
{
    size_t n = onnx__model_proto__get_packed_size(&md->m);
    uint8_t *buf = malloc(n ? n : 1);
    onnx__model_proto__pack(&md->m, buf);
    const char *p = tmp_path(name);
    write_bytes(p, buf, n);
    free(buf);
    return p;
}

/* y = x + w (w an initializer [2,3]), z = Relu(y). */
static const float w_data[6] = {1, -2, 3, -4, 5, -6};
static const int64_t d23[2] = {2, 3};

static void add_relu_model(model *md, const int64_t *xdims)
{
    model_init(md, 17);
    add_input(md, vinfo("x", 1, 2, xdims));
    add_init(md, ftensor("w", 2, d23, w_data, 6));
    add_node(md, node("Add", "add0", 2, (const char *[]){"x", "w"}, 1, (const char *[]){"y"}));
    add_node(md, node("Relu", "relu0", 1, (const char *[]){"y"}, 1, (const char *[]){"z"}));
    add_output(md, vinfo("z", 1, 2, d23));
    add_output(md, vinfo("y", 1, 2, d23));
}

static kiln_graph *import_ok(const char *path, const kiln_import_options *o)
{
    kiln_status *st = kiln_status_new();
    kiln_graph *g = kiln_import_onnx(path, o, st);
    if (!g) fail_msg("import %s: %s", path, kiln_status_message(st));
    kiln_status_free(st);
    return g;
}

/* Imports and expects an error whose message holds each substring. */
static void import_fails(const char *path, const kiln_import_options *o, int code, ...)
{
    kiln_status *st = kiln_status_new();
    kiln_graph *g = kiln_import_onnx(path, o, st);
    char msg[2048];
    snprintf(msg, sizeof msg, "%s", kiln_status_message(st));
    int got = kiln_status_code(st);
    kiln_status_free(st);
    kiln_graph_free(g);
    if (g) fail_msg("import of %s succeeded", path);
    if (code && got != code) fail_msg("code %s, want %s: %s", kiln_status_code_name(got), kiln_status_code_name(code), msg);
    va_list ap;
    va_start(ap, code);
    for (const char *s; (s = va_arg(ap, const char *));)
        if (!strstr(msg, s)) fail_msg("error '%s' lacks '%s'", msg, s);
    va_end(ap);
}

static int setup(void **state)
{
    make_tmpdir();
    return tu_setup(state);
}

static int teardown(void **state)
{
    pool_free();
    remove_tmpdir();
    return tu_teardown(state);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

/* ---- tests ---- */

static void test_names_outputs_and_run(void **state)
{
    (void)state;
    model md;
    add_relu_model(&md, d23);
    kiln_graph *g = import_ok(save_model(&md, "m.onnx"), NULL);
    kiln_value outs[4], ins[4];
    assert_int_equal(kiln_graph_outputs(g, outs, 4), 2);
    assert_int_equal(kiln_graph_inputs(g, ins, 4), 1);
    assert_string_equal(kiln_value_node_name(g, ins[0]), "x");
    assert_true(kiln_value_ok(kiln_graph_find(g, "z")));
    assert_true(kiln_value_ok(kiln_graph_find(g, "y")));
    assert_true(kiln_value_ok(kiln_graph_find(g, "w")));
    assert_string_equal(kiln_value_op_name(g, kiln_graph_find(g, "w")), "Constant");
    assert_int_equal(kiln_graph_find(g, "z").node, outs[0].node);
    kiln_tensor *x = tu_f32(2, d23, (float[]){0, 0, 0, 1, 1, 1});
    kiln_tensor *z = tu_run(g, outs[0], 1, ins, &x);
    const float *zd = kiln_tensor_const_data(z);
    float want[6] = {1, 0, 3, 0, 6, 0};
    for (int i = 0; i < 6; i++) assert_float_equal(zd[i], want[i], 0);
    kiln_tensor_free(z);
    kiln_tensor_free(x);
    kiln_graph_free(g);
}

static void test_initializers_as_variables(void **state)
{
    (void)state;
    model md;
    add_relu_model(&md, d23);
    kiln_import_options o;
    kiln_import_options_init(&o);
    o.initializers_as_variables = 1;
    kiln_graph *g = import_ok(save_model(&md, "m.onnx"), &o);
    assert_string_equal(kiln_value_op_name(g, kiln_graph_find(g, "w")), "Variable");
    kiln_graph_free(g);
}

/* Reshape(x, Concat(Gather(Shape(x), 0), [-1])) folds to a constant shape
 * once the batch dim is given. */
static void build_shape_model(model *md)
{
    static const int64_t xd[3] = {-1, 2, 3}, yd[2] = {-1, 6};
    static const int64_t zero_dims[1] = {1};
    static const int64_t idx = 0, minus1 = -1, axis0 = 0;
    model_init(md, 13);
    add_input(md, vinfo("x", 1, 3, xd));
    Onnx__TensorProto *i0 = keep(malloc(sizeof *i0));
    onnx__tensor_proto__init(i0);
    i0->name = "i0", i0->has_data_type = 1, i0->data_type = 7;
    i0->n_int64_data = 1, i0->int64_data = (int64_t *)&idx;
    Onnx__TensorProto *m1 = keep(malloc(sizeof *m1));
    onnx__tensor_proto__init(m1);
    m1->name = "m1", m1->has_data_type = 1, m1->data_type = 7;
    m1->n_dims = 1, m1->dims = (int64_t *)zero_dims;
    m1->n_int64_data = 1, m1->int64_data = (int64_t *)&minus1;
    add_init(md, i0);
    add_init(md, m1);
    add_node(md, node("Shape", "shape", 1, (const char *[]){"x"}, 1, (const char *[]){"s"}));
    add_node(md, node("Gather", "gather", 2, (const char *[]){"s", "i0"}, 1, (const char *[]){"b"}));
    add_node(md, node("Unsqueeze", "unsq", 2, (const char *[]){"b", "ax"}, 1, (const char *[]){"b1"}));
    add_node(md, node("Concat", "concat", 2, (const char *[]){"b1", "m1"}, 1, (const char *[]){"shp"}));
    node_attr_ints(md->nodes[md->g.n_node - 1], "axis_unused", &axis0, 0);
    md->nodes[md->g.n_node - 1]->n_attribute = 0;
    add_node(md, node("Reshape", "reshape", 2, (const char *[]){"x", "shp"}, 1, (const char *[]){"y"}));
    Onnx__TensorProto *ax = keep(malloc(sizeof *ax));
    onnx__tensor_proto__init(ax);
    ax->name = "ax", ax->has_data_type = 1, ax->data_type = 7;
    ax->n_dims = 1, ax->dims = (int64_t *)zero_dims;
    ax->n_int64_data = 1, ax->int64_data = (int64_t *)&axis0;
    add_init(md, ax);
    add_output(md, vinfo("y", 1, 2, yd));
}

static void test_shape_override_folds(void **state)
{
    (void)state;
    model md;
    build_shape_model(&md);
    const char *path = save_model(&md, "shape.onnx");
    /* Without a batch size the shape chain cannot fold: a clear error. */
    import_fails(path, NULL, KILN_ERR_UNIMPLEMENTED, "'shape'", "Shape", "not known at import",
                 "input_shapes", NULL);
    kiln_input_shape s = {"x", 3, (const int64_t[]){4, 2, 3}};
    kiln_import_options o;
    kiln_import_options_init(&o);
    o.input_shapes = &s;
    o.ninput_shapes = 1;
    kiln_graph *g = import_ok(path, &o);
    kiln_value y = kiln_graph_find(g, "y");
    int64_t dims[8];
    assert_int_equal(kiln_value_dims(g, y, dims), 2);
    assert_int_equal(dims[0], 4);
    assert_int_equal(dims[1], 6);
    /* Everything but the input and the Reshape is a constant. */
    for (int i = 0; i < kiln_graph_node_count(g); i++) {
        const char *op = kiln_value_op_name(g, (kiln_value){i, 0});
        assert_true(!strcmp(op, "Placeholder") || !strcmp(op, "Constant") || !strcmp(op, "Reshape"));
    }
    kiln_graph_free(g);
    /* A name that is not an input, and a wrong rank. */
    s.name = "nope";
    import_fails(path, &o, KILN_ERR_NOT_FOUND, "'nope'", NULL);
    s.name = "x";
    s.rank = 2;
    import_fails(path, &o, KILN_ERR_INVALID_ARGUMENT, "rank 2", "rank 3", NULL);
}

static void test_unsupported_ops_listed_once(void **state)
{
    (void)state;
    model md;
    model_init(&md, 17);
    add_input(&md, vinfo("x", 1, 2, d23));
    add_node(&md, node("NonZero", "s1", 1, (const char *[]){"x"}, 1, (const char *[]){"a"}));
    add_node(&md, node("Unique", "c1", 1, (const char *[]){"a"}, 1, (const char *[]){"b"}));
    add_node(&md, node("NonZero", "s2", 1, (const char *[]){"b"}, 1, (const char *[]){"c"}));
    add_node(&md, node("FancyOp", "f", 1, (const char *[]){"c"}, 1, (const char *[]){"d"}));
    add_node(&md, node("Relu", "r", 1, (const char *[]){"d"}, 1, (const char *[]){"e"}));
    add_output(&md, vinfo("e", 1, 2, d23));
    import_fails(save_model(&md, "u.onnx"), NULL, KILN_ERR_UNIMPLEMENTED,
                 "3 unsupported ops in 4 nodes", "NonZero (opset 17", "Unique (opset 17", "FancyOp (opset 17",
                 NULL);
}

/* A tensor of raw bytes: elem is the ONNX data type (2 = UINT8). */
static Onnx__TensorProto *rtensor(const char *name, int elem, int rank, const int64_t *dims, const void *data,
                                  size_t bytes)
{
    Onnx__TensorProto *t = ftensor(name, rank, dims, data, 0);
    t->data_type = elem;
    t->raw_data.len = bytes;
    return t;
}

/* MatMulInteger with a per-row zero point for A and a scalar one for B,
 * against hand-computed values: A - [10, 1] = [[0, 10, 20], [0, 1, 2]],
 * B - 5 = [[-4, -3], [-2, -1], [0, 250]], product [[-20, 4990], [-2, 499]]. */
static void test_matmul_integer(void **state)
{
    (void)state;
    static const int64_t d32[2] = {3, 2}, d2[1] = {2};
    static const uint8_t b[6] = {1, 2, 3, 4, 5, 255}, azp[2] = {10, 1}, bzp[1] = {5};
    model md;
    model_init(&md, 10);
    add_input(&md, vinfo("a", 2, 2, d23));
    add_init(&md, rtensor("b", 2, 2, d32, b, 6));
    add_init(&md, rtensor("azp", 2, 1, d2, azp, 2));
    add_init(&md, rtensor("bzp", 2, 0, NULL, bzp, 1));
    add_node(&md, node("MatMulInteger", "mm", 4, (const char *[]){"a", "b", "azp", "bzp"}, 1, (const char *[]){"y"}));
    add_output(&md, vinfo("y", 6, 2, (const int64_t[]){2, 2}));
    kiln_graph *g = import_ok(save_model(&md, "mmi.onnx"), NULL);
    kiln_value y = kiln_graph_find(g, "y"), x = kiln_graph_find(g, "a");
    kiln_tensor *a = kiln_tensor_new(KILN_U8, 2, d23);
    memcpy(kiln_tensor_data(a), (uint8_t[]){10, 20, 30, 1, 2, 3}, 6);
    for (int be = 0; be < 2; be++) {
        kiln_tensor *r = NULL;
        assert_int_equal(tu_run_backend(g, be ? KILN_BACKEND_DEFAULT : KILN_BACKEND_REFERENCE, 1, &y, &r, 1, &x, &a,
                                        NULL, 0),
                         KILN_OK);
        tu_assert_shape(r, KILN_I32, 2, (const int64_t[]){2, 2});
        tu_assert_ints(r, (const int64_t[]){-20, 4990, -2, 499}, 4);
        kiln_tensor_free(r);
    }
    kiln_tensor_free(a);
    kiln_graph_free(g);
}

static void test_external_data(void **state)
{
    (void)state;
    float data[8] = {0, 0, 1, -2, 3, -4, 5, -6}; /* 8 bytes of padding, then w */
    write_bytes(tmp_path("w.bin"), data, sizeof data);
    for (int variant = 0; variant < 4; variant++) {
        model md;
        add_relu_model(&md, d23);
        Onnx__TensorProto *w = md.inits[0];
        w->has_raw_data = 0;
        w->has_data_location = 1;
        w->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
        static Onnx__StringStringEntryProto e[3];
        static Onnx__StringStringEntryProto *ep[3] = {&e[0], &e[1], &e[2]};
        for (int i = 0; i < 3; i++) onnx__string_string_entry_proto__init(&e[i]);
        e[0].key = "location", e[0].value = variant == 3 ? "/etc/passwd" : "w.bin";
        e[1].key = "offset", e[1].value = variant == 1 ? "16" : "8";
        e[2].key = "length", e[2].value = variant == 2 ? "20" : "24";
        w->n_external_data = 3;
        w->external_data = ep;
        const char *path = save_model(&md, "ext.onnx");
        if (variant == 0) {
            kiln_graph *g = import_ok(path, NULL);
            const kiln_tensor *t = ir_node_tensor(ir_graph_node(g, kiln_graph_find(g, "w")), "value");
            assert_memory_equal(kiln_tensor_const_data(t), w_data, sizeof w_data);
            kiln_graph_free(g);
        } else if (variant == 1) {
            import_fails(path, NULL, KILN_ERR_INVALID_ARGUMENT, "w.bin", "runs past its end", NULL);
        } else if (variant == 2) {
            import_fails(path, NULL, KILN_ERR_INVALID_ARGUMENT, "length 20", "24 bytes", NULL);
        } else {
            import_fails(path, NULL, KILN_ERR_INVALID_ARGUMENT, "relative path", NULL);
        }
    }
}

static void test_bad_tensors(void **state)
{
    (void)state;
    for (int variant = 0; variant < 4; variant++) {
        model md;
        add_relu_model(&md, d23);
        Onnx__TensorProto *w = md.inits[0];
        static int64_t neg[2] = {2, -3}, big[2] = {INT64_MAX / 2, 4}, zero_big[3] = {0, INT64_MAX, 4};
        const char *want = NULL;
        if (variant == 0) w->raw_data.len = 20, want = "needs 24 bytes of raw_data, the file holds 20";
        if (variant == 1) w->dims = neg, want = "dim 1 is -3";
        if (variant == 2) w->dims = big, want = "overflows";
        if (variant == 3) w->n_dims = 3, w->dims = zero_big, want = "overflows";
        import_fails(save_model(&md, "bad.onnx"), NULL, KILN_ERR_INVALID_ARGUMENT, "initializer", "'w'",
                     want, NULL);
    }
}

static void test_graph_structure_errors(void **state)
{
    (void)state;
    model md;
    /* A cycle: a = Relu(b), b = Relu(a). */
    model_init(&md, 17);
    add_input(&md, vinfo("x", 1, 2, d23));
    add_node(&md, node("Relu", "r1", 1, (const char *[]){"b"}, 1, (const char *[]){"a"}));
    add_node(&md, node("Relu", "r2", 1, (const char *[]){"a"}, 1, (const char *[]){"b"}));
    add_output(&md, vinfo("b", 1, 2, d23));
    import_fails(save_model(&md, "cycle.onnx"), NULL, KILN_ERR_INVALID_ARGUMENT, "cycle", NULL);
    /* A missing input. */
    model_init(&md, 17);
    add_input(&md, vinfo("x", 1, 2, d23));
    add_node(&md, node("Add", "add", 2, (const char *[]){"x", "ghost"}, 1, (const char *[]){"y"}));
    add_output(&md, vinfo("y", 1, 2, d23));
    import_fails(save_model(&md, "missing.onnx"), NULL, KILN_ERR_INVALID_ARGUMENT, "'add'", "'ghost'",
                 NULL);
    /* A value defined twice. */
    model_init(&md, 17);
    add_input(&md, vinfo("x", 1, 2, d23));
    add_node(&md, node("Relu", "r1", 1, (const char *[]){"x"}, 1, (const char *[]){"y"}));
    add_node(&md, node("Relu", "r2", 1, (const char *[]){"x"}, 1, (const char *[]){"y"}));
    add_output(&md, vinfo("y", 1, 2, d23));
    import_fails(save_model(&md, "dup.onnx"), NULL, KILN_ERR_INVALID_ARGUMENT, "defined twice", NULL);
    /* Nodes out of order are sorted. */
    model_init(&md, 17);
    add_input(&md, vinfo("x", 1, 2, d23));
    add_node(&md, node("Relu", "r2", 1, (const char *[]){"a"}, 1, (const char *[]){"b"}));
    add_node(&md, node("Neg", "r1", 1, (const char *[]){"x"}, 1, (const char *[]){"a"}));
    add_output(&md, vinfo("b", 1, 2, d23));
    kiln_graph *g = import_ok(save_model(&md, "order.onnx"), NULL);
    kiln_graph_free(g);
    /* A shape error names the ONNX node, its op and the shapes. */
    static const int64_t d32[2] = {3, 2};
    model_init(&md, 17);
    add_input(&md, vinfo("x", 1, 2, d23));
    add_input(&md, vinfo("x2", 1, 2, d23));
    add_node(&md, node("MatMul", "mm", 2, (const char *[]){"x", "x2"}, 1, (const char *[]){"y"}));
    add_output(&md, vinfo("y", 1, 2, d32));
    import_fails(save_model(&md, "shape.onnx"), NULL, KILN_ERR_INVALID_ARGUMENT, "'mm'", "MatMul",
                 "f32[2,3]", NULL);
    /* A graph output nobody produces. */
    model_init(&md, 17);
    add_input(&md, vinfo("x", 1, 2, d23));
    add_output(&md, vinfo("nothing", 1, 2, d23));
    import_fails(save_model(&md, "noout.onnx"), NULL, KILN_ERR_INVALID_ARGUMENT, "'nothing'", NULL);
}

static void test_malformed_bytes(void **state)
{
    (void)state;
    model md;
    add_relu_model(&md, d23);
    size_t n = onnx__model_proto__get_packed_size(&md.m);
    uint8_t *buf = malloc(n);
    onnx__model_proto__pack(&md.m, buf);
    /* Every truncation: an error, never a crash (and no leak, by teardown). */
    for (size_t cut = 1; cut < n; cut += 3) {
        write_bytes(tmp_path("t.onnx"), buf, cut);
        kiln_status *st = kiln_status_new();
        kiln_graph *g = kiln_import_onnx(tmp_path("t.onnx"), NULL, st);
        if (g) kiln_graph_free(g); /* a prefix can be a valid, smaller model */
        else assert_int_not_equal(kiln_status_code(st), KILN_OK);
        kiln_status_free(st);
    }
    /* Flipped bytes. */
    for (size_t i = 0; i < n; i += 5) {
        uint8_t *c = malloc(n);
        memcpy(c, buf, n);
        c[i] ^= 0x5a;
        write_bytes(tmp_path("f.onnx"), c, n);
        free(c);
        kiln_graph_free(kiln_import_onnx(tmp_path("f.onnx"), NULL, NULL));
    }
    free(buf);
    /* The graph field (7) with a varint wire type. */
    write_bytes(tmp_path("w.onnx"), (uint8_t[]){0x38, 0x01}, 2);
    import_fails(tmp_path("w.onnx"), NULL, KILN_ERR_INVALID_ARGUMENT, "does not parse", NULL);
    /* A length that runs past the end. */
    write_bytes(tmp_path("l.onnx"), (uint8_t[]){0x3a, 0xff, 0xff, 0x03, 0x0a}, 5);
    import_fails(tmp_path("l.onnx"), NULL, KILN_ERR_INVALID_ARGUMENT, "does not parse", NULL);
    /* An empty file and a missing one. */
    write_bytes(tmp_path("e.onnx"), "", 0);
    import_fails(tmp_path("e.onnx"), NULL, KILN_ERR_INVALID_ARGUMENT, "no graph", NULL);
    import_fails(tmp_path("none.onnx"), NULL, KILN_ERR_NOT_FOUND, "cannot open", NULL);
    import_fails(NULL, NULL, KILN_ERR_INVALID_ARGUMENT, "NULL", NULL);
}

/* More nodes than the limit, written as raw bytes (empty NodeProtos). */
static void test_huge_node_count(void **state)
{
    (void)state;
    size_t nodes = 1000001, body = nodes * 2;
    uint8_t *buf = malloc(body + 16);
    size_t k = 0;
    buf[k++] = 0x3a; /* ModelProto.graph, length-delimited */
    for (size_t v = body; ; v >>= 7) {
        buf[k++] = (uint8_t)((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));
        if (v < 0x80) break;
    }
    for (size_t i = 0; i < nodes; i++) buf[k++] = 0x0a, buf[k++] = 0x00;
    write_bytes(tmp_path("huge.onnx"), buf, k);
    free(buf);
    import_fails(tmp_path("huge.onnx"), NULL, KILN_ERR_INVALID_ARGUMENT, "1000001 nodes", "limit", NULL);
}

/* Ops whose attribute-like inputs are initializers: TopK's k, CumSum's
 * axis, Resize's scales (nearest, half_pixel, round_prefer_floor) and
 * sizes (linear, align_corners); the same inputs fed at run time are
 * refused with a message naming the input. */
static const int64_t d1[1] = {1}, d4[1] = {4}, d1122[4] = {1, 1, 2, 2};
static const int64_t k_one[1] = {1}, axis_three[1] = {3}, sizes33[4] = {1, 1, 3, 3};
static const float x1234[4] = {1, 2, 3, 4}, scales2x[4] = {1, 1, 2, 2};

static Onnx__TensorProto *itensor(const char *name, int rank, const int64_t *dims, const int64_t *data,
                                  size_t n)
{
    Onnx__TensorProto *t = ftensor(name, rank, dims, NULL, 0);
    t->data_type = 7;
    t->raw_data.len = n * sizeof(int64_t);
    t->raw_data.data = (uint8_t *)data;
    return t;
}

static void node_attr_string(Onnx__NodeProto *n, const char *name, const char *v)
{
    Onnx__AttributeProto *a = keep(malloc(sizeof *a));
    onnx__attribute_proto__init(a);
    a->name = (char *)name;
    a->has_type = 1;
    a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING;
    a->has_s = 1;
    a->s.len = strlen(v);
    a->s.data = (uint8_t *)v;
    Onnx__AttributeProto **arr = keep(calloc(n->n_attribute + 1, sizeof *arr));
    for (size_t i = 0; i < n->n_attribute; i++) arr[i] = n->attribute[i];
    arr[n->n_attribute++] = a;
    n->attribute = arr;
}

static void test_constant_attribute_inputs(void **state)
{
    (void)state;
    model md;
    model_init(&md, 19);
    add_input(&md, vinfo("x", 1, 4, d1122));
    add_init(&md, itensor("k", 1, d1, k_one, 1));
    add_init(&md, itensor("axis", 1, d1, axis_three, 1));
    add_init(&md, ftensor("scales", 1, d4, scales2x, 4));
    add_init(&md, itensor("sizes", 1, d4, sizes33, 4));
    add_node(&md, node("TopK", "topk", 2, (const char *[]){"x", "k"}, 2,
                       (const char *[]){"values", "indices"}));
    add_node(&md, node("CumSum", "cum", 2, (const char *[]){"x", "axis"}, 1, (const char *[]){"cs"}));
    add_node(&md, node("Resize", "up", 3, (const char *[]){"x", "", "scales"}, 1, (const char *[]){"up"}));
    Onnx__NodeProto *lin = node("Resize", "lin", 4, (const char *[]){"x", "", "", "sizes"}, 1,
                                (const char *[]){"lin"});
    node_attr_string(lin, "mode", "linear");
    node_attr_string(lin, "coordinate_transformation_mode", "align_corners");
    add_node(&md, lin);
    const char *names[5] = {"values", "indices", "cs", "up", "lin"};
    for (int i = 0; i < 5; i++) add_output(&md, vinfo(names[i], i == 1 ? 7 : 1, 0, NULL));
    kiln_graph *g = import_ok(save_model(&md, "m.onnx"), NULL);
    kiln_value ins[1], outs[5];
    assert_int_equal(kiln_graph_inputs(g, ins, 1), 1);
    assert_int_equal(kiln_graph_outputs(g, outs, 5), 5);
    kiln_tensor *x = tu_f32(4, d1122, x1234);
    static const double want_values[2] = {2, 4}, want_cs[4] = {1, 3, 3, 7};
    static const double want_up[16] = {1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4};
    static const double want_lin[9] = {1, 1.5, 2, 2, 2.5, 3, 3, 3.5, 4};
    const double *want[5] = {want_values, NULL, want_cs, want_up, want_lin};
    const size_t count[5] = {2, 2, 4, 16, 9};
    kiln_tensor *r[5] = {0};
    tu_diff(g, 5, outs, 1, ins, &x, 1e-6, 1e-6);
    for (int i = 0; i < 5; i++) {
        r[i] = tu_run(g, outs[i], 1, ins, &x);
        if (want[i]) tu_assert_close(r[i], want[i], count[i], 1e-6, 1e-6);
        else tu_assert_ints(r[i], (const int64_t[]){1, 1}, 2);
        kiln_tensor_free(r[i]);
    }
    kiln_tensor_free(x);
    kiln_graph_free(g);

    /* k fed at run time */
    model_init(&md, 19);
    add_input(&md, vinfo("x", 1, 4, d1122));
    add_input(&md, vinfo("k", 7, 1, d1));
    add_node(&md, node("TopK", "topk", 2, (const char *[]){"x", "k"}, 2,
                       (const char *[]){"values", "indices"}));
    add_output(&md, vinfo("values", 1, 0, NULL));
    import_fails(save_model(&md, "k.onnx"), NULL, KILN_ERR_UNIMPLEMENTED, "TopK", "input 1 (k",
                 "must be a constant", (const char *)NULL);
}

/* 3-D windows (lowered to 2-D ops at import) on small inputs worked out by
 * hand: x = 0..26 as [1, 1, 3, 3, 3] (x[d][h][w] = 9d + 3h + w). */
static void test_3d_windows(void **state)
{
    (void)state;
    static const int64_t dx[5] = {1, 1, 3, 3, 3}, dw[5] = {1, 1, 2, 2, 2}, dt[5] = {1, 1, 2, 1, 1};
    static const int64_t k2[3] = {2, 2, 2}, d2[3] = {2, 2, 2}, pd[6] = {1, 0, 0, 0, 0, 0};
    static float ones[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    model md;
    model_init(&md, 19);
    add_input(&md, vinfo("x", 1, 5, dx));
    add_init(&md, ftensor("w", 5, dw, ones, 8));
    add_init(&md, ftensor("wt", 5, dt, ones, 2));
    Onnx__NodeProto *mp = node("MaxPool", "mp", 1, (const char *[]){"x"}, 1, (const char *[]){"mp"});
    node_attr_ints(mp, "kernel_shape", k2, 3);
    add_node(&md, mp);
    Onnx__NodeProto *ap = node("AveragePool", "ap", 1, (const char *[]){"x"}, 1, (const char *[]){"ap"});
    node_attr_ints(ap, "kernel_shape", k2, 3);
    node_attr_ints(ap, "dilations", d2, 3);
    add_node(&md, ap);
    Onnx__NodeProto *cv = node("Conv", "cv", 2, (const char *[]){"x", "w"}, 1, (const char *[]){"cv"});
    node_attr_ints(cv, "strides", d2, 3);
    node_attr_ints(cv, "pads", pd, 6);
    add_node(&md, cv);
    Onnx__NodeProto *ct =
        node("ConvTranspose", "ct", 2, (const char *[]){"x", "wt"}, 1, (const char *[]){"ct"});
    add_node(&md, ct);
    const char *names[4] = {"mp", "ap", "cv", "ct"};
    for (int i = 0; i < 4; i++) add_output(&md, vinfo(names[i], 1, 0, NULL));
    kiln_graph *g = import_ok(save_model(&md, "win3d.onnx"), NULL);
    kiln_value ins[1], outs[4];
    assert_int_equal(kiln_graph_inputs(g, ins, 1), 1);
    assert_int_equal(kiln_graph_outputs(g, outs, 4), 4);
    float xv[27];
    for (int i = 0; i < 27; i++) xv[i] = (float)i;
    kiln_tensor *x = tu_f32(5, dx, xv);
    /* max of each 2x2x2 box: its far corner */
    static const double want_mp[8] = {13, 14, 16, 17, 22, 23, 25, 26};
    /* the corners 0, 2, 6, 8, 18, 20, 24, 26 */
    static const double want_ap[1] = {13};
    /* stride 2, one leading depth pad: depth windows {pad, 0} and {1, 2};
     * h, w windows {0, 1} only: sums of x[d][0..1][0..1] = 36d + 8 */
    static const double want_cv[2] = {8, 44 + 80};
    static const int64_t shape_mp[5] = {1, 1, 2, 2, 2}, shape_ap[5] = {1, 1, 1, 1, 1},
                         shape_cv[5] = {1, 1, 2, 1, 1}, shape_ct[5] = {1, 1, 4, 3, 3};
    const int64_t *shapes[4] = {shape_mp, shape_ap, shape_cv, shape_ct};
    double want_ct[36];
    /* depth kernel of two ones: y[d] = x[d] + x[d - 1] */
    for (int d = 0; d < 4; d++)
        for (int i = 0; i < 9; i++)
            want_ct[d * 9 + i] = (d < 3 ? xv[d * 9 + i] : 0) + (d > 0 ? xv[(d - 1) * 9 + i] : 0);
    const double *want[4] = {want_mp, want_ap, want_cv, want_ct};
    const size_t count[4] = {8, 1, 2, 36};
    tu_diff(g, 4, outs, 1, ins, &x, 1e-6, 1e-6);
    for (int i = 0; i < 4; i++) {
        kiln_tensor *r = tu_run(g, outs[i], 1, ins, &x);
        tu_assert_shape(r, KILN_F32, 5, shapes[i]);
        tu_assert_close(r, want[i], count[i], 1e-6, 1e-6);
        kiln_tensor_free(r);
    }
    kiln_tensor_free(x);
    kiln_graph_free(g);

    /* a symbolic batch: 3-D windows need static shapes */
    static const int64_t dn[5] = {-1, 1, 3, 3, 3};
    model_init(&md, 19);
    add_input(&md, vinfo("x", 1, 5, dn));
    mp = node("MaxPool", "mp", 1, (const char *[]){"x"}, 1, (const char *[]){"mp"});
    node_attr_ints(mp, "kernel_shape", k2, 3);
    add_node(&md, mp);
    add_output(&md, vinfo("mp", 1, 0, NULL));
    import_fails(save_model(&md, "win3dn.onnx"), NULL, KILN_ERR_UNIMPLEMENTED, "'mp'", "MaxPool",
                 "f32[?,1,3,3,3]", "static shapes", (const char *)NULL);
}

static void test_alloc_failure_sweep(void **state)
{
    (void)state;
    model md;
    build_shape_model(&md);
    const char *path = save_model(&md, "sweep.onnx");
    kiln_input_shape s = {"x", 3, (const int64_t[]){4, 2, 3}};
    kiln_import_options o;
    kiln_import_options_init(&o);
    o.input_shapes = &s;
    o.ninput_shapes = 1;
    long base = ir_alloc_live_blocks();
    for (long n = 0;; n++) {
        kiln_status st = {0};
        ir_alloc_fail_after(n);
        kiln_graph *g = kiln_import_onnx(path, &o, &st);
        bool failed = ir_alloc_failed();
        ir_alloc_fail_after(-1);
        if (g) {
            kiln_graph_free(g);
            ir_free(st.message);
            if (!failed) break;
        } else {
            if (st.code != KILN_ERR_OUT_OF_MEMORY)
                fail_msg("n=%ld: code %s: %s", n, kiln_status_code_name(st.code),
                         st.message ? st.message : "");
            ir_free(st.message);
        }
        assert_int_equal(ir_alloc_live_blocks(), base);
        assert_true(n < 100000);
    }
}

/* Reshape(x, shape) with shape a graph input: kiln needs it constant, so
 * the plain import fails naming it; bound with constant_inputs it imports,
 * x stays a placeholder, and the result is x in the new shape. A value of
 * the wrong dtype or shape, or a name the model lacks, is an error. */
static void test_constant_inputs(void **state)
{
    (void)state;
    model md;
    model_init(&md, 17);
    static const int64_t d2[1] = {2}, d32[2] = {3, 2};
    add_input(&md, vinfo("x", 1, 2, d23));
    add_input(&md, vinfo("shape", 7, 1, d2));
    add_node(&md, node("Reshape", "reshape0", 2, (const char *[]){"x", "shape"}, 1, (const char *[]){"y"}));
    add_output(&md, vinfo("y", 1, 2, d32));
    const char *path = save_model(&md, "reshape.onnx");
    import_fails(path, NULL, KILN_ERR_UNIMPLEMENTED, "reshape0", "must be a constant", NULL);

    kiln_tensor *shape = kiln_tensor_from_data(KILN_I64, 1, d2, (int64_t[]){3, 2});
    const char *names[1] = {"shape"};
    const kiln_tensor *vals[1] = {shape};
    kiln_import_options o;
    kiln_import_options_init(&o);
    o.constant_input_names = names;
    o.constant_input_values = vals;
    o.nconstant_inputs = 1;
    kiln_graph *g = import_ok(path, &o);
    kiln_value ins[4];
    assert_int_equal(kiln_graph_inputs(g, ins, 4), 1);
    assert_string_equal(kiln_value_node_name(g, ins[0]), "x");
    kiln_tensor *x = tu_f32(2, d23, (float[]){1, 2, 3, 4, 5, 6});
    kiln_tensor *y = tu_run(g, kiln_graph_find(g, "y"), 1, ins, &x);
    tu_assert_shape(y, KILN_F32, 2, d32);
    tu_assert_close(y, (double[]){1, 2, 3, 4, 5, 6}, 6, 0, 0);
    kiln_tensor_free(y);
    kiln_tensor_free(x);
    kiln_graph_free(g);

    kiln_tensor *bad = kiln_tensor_from_data(KILN_I32, 1, d2, (int32_t[]){3, 2});
    vals[0] = bad;
    import_fails(path, &o, KILN_ERR_INVALID_ARGUMENT, "constant input 'shape'", "i32[2]", "i64[2]", NULL);
    kiln_tensor_free(bad);
    names[0] = "ghost";
    vals[0] = shape;
    import_fails(path, &o, KILN_ERR_NOT_FOUND, "'ghost'", "no such graph input", NULL);
    kiln_tensor_free(shape);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_names_outputs_and_run),  T(test_initializers_as_variables),
        T(test_shape_override_folds),   T(test_unsupported_ops_listed_once),
        T(test_external_data),          T(test_bad_tensors),
        T(test_graph_structure_errors), T(test_malformed_bytes),
        T(test_huge_node_count),        T(test_alloc_failure_sweep),
        T(test_constant_attribute_inputs), T(test_constant_inputs),
        T(test_3d_windows),             T(test_matmul_integer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
