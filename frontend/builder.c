/* builder.c -- the graph-building half of kiln.h: sources, the generic
 * kiln_op, names and lookups, and the typed helpers built on kiln_op. */
#include <string.h>

#include "../ir/ir.h"

kiln_value kiln_value_invalid(void) { return (kiln_value){-1, -1}; }
int kiln_value_ok(kiln_value v) { return v.node >= 0 && v.index >= 0; }

static kiln_value node_value(int node) { return node < 0 ? kiln_value_invalid() : (kiln_value){node, 0}; }

kiln_value kiln_op(kiln_graph *g, const char *op, const kiln_value *inputs, int ninputs,
                   const kiln_attrs *attrs)
{
    if (!g) return kiln_value_invalid();
    int k = ir_op_lookup(op);
    if (k < 0) {
        ir_graph_set_error(g, KILN_ERR_NOT_FOUND, "unknown op '%s' (docs/ops.md lists the ops)",
                           op ? op : "(null)");
        return kiln_value_invalid();
    }
    return node_value(ir_graph_add_node(g, (ir_op)k, NULL, inputs, ninputs, attrs));
}

kiln_value kiln_placeholder(kiln_graph *g, const char *name, kiln_dtype dt, int rank,
                            const int64_t *dims)
{
    if (!g) return kiln_value_invalid();
    if (!ir_dtype_valid((int)dt) || rank < 0 || rank > IR_MAX_RANK || (rank > 0 && !dims)) {
        ir_graph_set_error(g, KILN_ERR_INVALID_ARGUMENT,
                           "Placeholder '%s': bad dtype (%d) or rank (%d, dims %s)",
                           name ? name : "?", (int)dt, rank, dims ? "given" : "NULL");
        return kiln_value_invalid();
    }
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_dtype(a, "dtype", dt);
    kiln_attrs_ints(a, "shape", dims, rank);
    /* The arguments were checked above, so a bag that failed is out of memory. */
    int n = a && !a->oom ? ir_graph_add_node(g, IR_OP_Placeholder, name, NULL, 0, a) : -1;
    if (!a || a->oom) ir_graph_set_error(g, KILN_ERR_OUT_OF_MEMORY, "Placeholder: out of memory");
    kiln_attrs_free(a);
    return node_value(n);
}

static kiln_value tensor_source(kiln_graph *g, ir_op op, const char *name, const kiln_tensor *t)
{
    if (!g) return kiln_value_invalid();
    if (!t) {
        ir_graph_set_error(g, KILN_ERR_INVALID_ARGUMENT, "%s '%s': tensor is NULL",
                           ir_op_def(op)->name, name ? name : "?");
        return kiln_value_invalid();
    }
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_tensor(a, "value", t);
    int n = a && !a->oom ? ir_graph_add_node(g, op, name, NULL, 0, a) : -1;
    if (!a || a->oom)
        ir_graph_set_error(g, KILN_ERR_OUT_OF_MEMORY, "%s: out of memory", ir_op_def(op)->name);
    kiln_attrs_free(a);
    return node_value(n);
}

kiln_value kiln_constant(kiln_graph *g, const char *name, const kiln_tensor *t)
{
    return tensor_source(g, IR_OP_Constant, name, t);
}

kiln_value kiln_variable(kiln_graph *g, const char *name, const kiln_tensor *init)
{
    return tensor_source(g, IR_OP_Variable, name, init);
}

kiln_value kiln_scalar(kiln_graph *g, kiln_dtype dt, double v)
{
    if (!g) return kiln_value_invalid();
    if (!ir_dtype_valid((int)dt)) {
        ir_graph_set_error(g, KILN_ERR_INVALID_ARGUMENT, "kiln_scalar: bad dtype %d", (int)dt);
        return kiln_value_invalid();
    }
    kiln_tensor *t = kiln_tensor_new(dt, 0, NULL);
    if (!t) {
        ir_graph_set_error(g, KILN_ERR_OUT_OF_MEMORY, "Constant: out of memory");
        return kiln_value_invalid();
    }
    ir_store_f64(dt, t->data, 0, v);
    kiln_value r = kiln_constant(g, NULL, t);
    kiln_tensor_free(t);
    return r;
}

kiln_value kiln_name(kiln_graph *g, kiln_value v, const char *name)
{
    if (!g) return kiln_value_invalid();
    if (!ir_value_valid(g, v)) {
        ir_graph_set_error(g, KILN_ERR_INVALID_ARGUMENT, "kiln_name('%s'): not a valid value",
                           name ? name : "(null)");
        return kiln_value_invalid();
    }
    ir_node *n = &g->nodes[v.node];
    if (!name || !*name) {
        ir_graph_set_error(g, KILN_ERR_INVALID_ARGUMENT, "kiln_name: empty name for node '%s'",
                           n->name);
        return kiln_value_invalid();
    }
    if (strcmp(n->name, name) == 0) return v;
    if (ir_strmap_get(&g->names, name) >= 0) {
        ir_graph_set_error(g, KILN_ERR_INVALID_ARGUMENT,
                           "kiln_name: cannot name %s '%s' '%s': the name is already used",
                           ir_op_def(n->op)->name, n->name, name);
        return kiln_value_invalid();
    }
    char *copy = ir_arena_strdup(&g->arena, name);
    if (!copy || !ir_strmap_put(&g->names, copy, v.node)) {
        ir_graph_set_error(g, KILN_ERR_OUT_OF_MEMORY, "kiln_name: out of memory");
        return kiln_value_invalid();
    }
    ir_strmap_del(&g->names, n->name);
    n->name = copy;
    return v;
}

kiln_value kiln_graph_find(const kiln_graph *g, const char *name)
{
    if (!g || !name) return kiln_value_invalid();
    return node_value(ir_strmap_get(&g->names, name));
}

int kiln_value_output_count(const kiln_graph *g, kiln_value v)
{
    return ir_value_valid(g, v) ? g->nodes[v.node].noutputs : 0;
}

kiln_dtype kiln_value_dtype(const kiln_graph *g, kiln_value v)
{
    return ir_value_valid(g, v) ? ir_value_type(g, v)->dtype : (kiln_dtype)0;
}

int kiln_value_rank(const kiln_graph *g, kiln_value v)
{
    return ir_value_valid(g, v) ? ir_value_type(g, v)->rank : -1;
}

int kiln_value_dims(const kiln_graph *g, kiln_value v, int64_t *dims)
{
    if (!ir_value_valid(g, v)) return -1;
    const ir_type *t = ir_value_type(g, v);
    if (dims) memcpy(dims, t->dims, sizeof(int64_t) * (size_t)t->rank);
    return t->rank;
}

const char *kiln_value_node_name(const kiln_graph *g, kiln_value v)
{
    return ir_value_valid(g, v) ? g->nodes[v.node].name : NULL;
}

const char *kiln_value_op_name(const kiln_graph *g, kiln_value v)
{
    return ir_value_valid(g, v) ? ir_op_def(g->nodes[v.node].op)->name : NULL;
}

char *kiln_graph_to_text(const kiln_graph *g) { return g ? ir_graph_text(g) : NULL; }
char *kiln_graph_to_dot(const kiln_graph *g) { return g ? ir_graph_dot(g) : NULL; }
int kiln_graph_verify(const kiln_graph *g, kiln_status *status) { return ir_verify(g, status); }

/* ---- typed helpers ---- */

static kiln_value op1(kiln_graph *g, const char *op, kiln_value x)
{
    return kiln_op(g, op, &x, 1, NULL);
}

static kiln_value op2(kiln_graph *g, const char *op, kiln_value a, kiln_value b)
{
    kiln_value in[2] = {a, b};
    return kiln_op(g, op, in, 2, NULL);
}

/* Runs op with the attributes a (which it frees); NULL a means out of memory. */
static kiln_value op_with(kiln_graph *g, const char *op, const kiln_value *in, int n,
                          kiln_attrs *a)
{
    if (!a) {
        ir_graph_set_error(g, KILN_ERR_OUT_OF_MEMORY, "%s: out of memory", op);
        return kiln_value_invalid();
    }
    kiln_value r = kiln_op(g, op, in, n, a);
    kiln_attrs_free(a);
    return r;
}

#define HELPER2(fn, op) \
    kiln_value fn(kiln_graph *g, kiln_value a, kiln_value b) { return op2(g, op, a, b); }
#define HELPER1(fn, op) \
    kiln_value fn(kiln_graph *g, kiln_value x) { return op1(g, op, x); }

HELPER2(kiln_add, "Add")
HELPER2(kiln_sub, "Sub")
HELPER2(kiln_mul, "Mul")
HELPER2(kiln_div, "Div")
HELPER2(kiln_pow, "Pow")
HELPER2(kiln_maximum, "Maximum")
HELPER2(kiln_minimum, "Minimum")
HELPER2(kiln_equal, "Equal")
HELPER2(kiln_less, "Less")
HELPER2(kiln_greater, "Greater")
HELPER2(kiln_and, "And")
HELPER2(kiln_or, "Or")
HELPER1(kiln_neg, "Neg")
HELPER1(kiln_abs, "Abs")
HELPER1(kiln_exp, "Exp")
HELPER1(kiln_log, "Log")
HELPER1(kiln_sqrt, "Sqrt")
HELPER1(kiln_rsqrt, "Rsqrt")
HELPER1(kiln_reciprocal, "Reciprocal")
HELPER1(kiln_tanh, "Tanh")
HELPER1(kiln_sigmoid, "Sigmoid")
HELPER1(kiln_relu, "Relu")
HELPER1(kiln_gelu, "Gelu")
HELPER1(kiln_erf, "Erf")
HELPER1(kiln_softplus, "Softplus")
HELPER1(kiln_not, "Not")
HELPER1(kiln_identity, "Identity")

kiln_value kiln_leaky_relu(kiln_graph *g, kiln_value x, double alpha)
{
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_float(a, "alpha", alpha);
    return op_with(g, "LeakyRelu", &x, 1, a);
}

kiln_value kiln_elu(kiln_graph *g, kiln_value x, double alpha)
{
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_float(a, "alpha", alpha);
    return op_with(g, "Elu", &x, 1, a);
}

kiln_value kiln_clip(kiln_graph *g, kiln_value x, double lo, double hi)
{
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_float(a, "min", lo);
    kiln_attrs_float(a, "max", hi);
    return op_with(g, "Clip", &x, 1, a);
}

kiln_value kiln_where(kiln_graph *g, kiln_value cond, kiln_value a, kiln_value b)
{
    kiln_value in[3] = {cond, a, b};
    return kiln_op(g, "Where", in, 3, NULL);
}

kiln_value kiln_cast(kiln_graph *g, kiln_value x, kiln_dtype to)
{
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_dtype(a, "to", to);
    return op_with(g, "Cast", &x, 1, a);
}

kiln_value kiln_assign(kiln_graph *g, kiln_value var, kiln_value value)
{
    return op2(g, "Assign", var, value);
}

kiln_value kiln_matmul(kiln_graph *g, kiln_value a, kiln_value b) { return op2(g, "MatMul", a, b); }

kiln_value kiln_matmul_t(kiln_graph *g, kiln_value a, kiln_value b, int transpose_a, int transpose_b)
{
    kiln_attrs *at = kiln_attrs_new();
    kiln_attrs_int(at, "transpose_a", transpose_a != 0);
    kiln_attrs_int(at, "transpose_b", transpose_b != 0);
    kiln_value in[2] = {a, b};
    return op_with(g, "MatMul", in, 2, at);
}

kiln_value kiln_gemm(kiln_graph *g, kiln_value a, kiln_value b, kiln_value c, double alpha,
                     double beta, int transpose_a, int transpose_b)
{
    kiln_attrs *at = kiln_attrs_new();
    kiln_attrs_float(at, "alpha", alpha);
    kiln_attrs_float(at, "beta", beta);
    kiln_attrs_int(at, "transA", transpose_a != 0);
    kiln_attrs_int(at, "transB", transpose_b != 0);
    kiln_value in[3] = {a, b, c};
    return op_with(g, "Gemm", in, kiln_value_ok(c) ? 3 : 2, at);
}

static kiln_value op_ints(kiln_graph *g, const char *op, kiln_value x, const char *attr,
                          const int64_t *v, int n)
{
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_ints(a, attr, v, n);
    return op_with(g, op, &x, 1, a);
}

kiln_value kiln_transpose(kiln_graph *g, kiln_value x, const int64_t *perm, int n)
{
    if (!perm || n <= 0) return op1(g, "Transpose", x); /* reverses the dims */
    return op_ints(g, "Transpose", x, "perm", perm, n);
}

kiln_value kiln_reshape(kiln_graph *g, kiln_value x, const int64_t *dims, int n)
{
    return op_ints(g, "Reshape", x, "shape", dims, n);
}

kiln_value kiln_flatten(kiln_graph *g, kiln_value x, int axis)
{
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_int(a, "axis", axis);
    return op_with(g, "Flatten", &x, 1, a);
}

kiln_value kiln_squeeze(kiln_graph *g, kiln_value x, const int64_t *axes, int n)
{
    if (!axes || n <= 0) return op1(g, "Squeeze", x); /* all size-1 dims */
    return op_ints(g, "Squeeze", x, "axes", axes, n);
}

kiln_value kiln_unsqueeze(kiln_graph *g, kiln_value x, const int64_t *axes, int n)
{
    return op_ints(g, "Unsqueeze", x, "axes", axes, n);
}

kiln_value kiln_concat(kiln_graph *g, const kiln_value *xs, int n, int axis)
{
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_int(a, "axis", axis);
    return op_with(g, "Concat", xs, n, a);
}

kiln_value kiln_gather(kiln_graph *g, kiln_value x, kiln_value indices, int axis)
{
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_int(a, "axis", axis);
    kiln_value in[2] = {x, indices};
    return op_with(g, "Gather", in, 2, a);
}

kiln_value kiln_expand(kiln_graph *g, kiln_value x, const int64_t *dims, int n)
{
    return op_ints(g, "Expand", x, "shape", dims, n);
}

kiln_value kiln_tile(kiln_graph *g, kiln_value x, const int64_t *repeats, int n)
{
    return op_ints(g, "Tile", x, "repeats", repeats, n);
}

static kiln_value reduce(kiln_graph *g, const char *op, kiln_value x, const int64_t *axes, int n,
                         int keepdims)
{
    kiln_attrs *a = kiln_attrs_new();
    if (axes && n > 0) kiln_attrs_ints(a, "axes", axes, n);
    kiln_attrs_int(a, "keepdims", keepdims != 0);
    return op_with(g, op, &x, 1, a);
}

kiln_value kiln_reduce_sum(kiln_graph *g, kiln_value x, const int64_t *axes, int n, int keepdims)
{
    return reduce(g, "ReduceSum", x, axes, n, keepdims);
}

kiln_value kiln_reduce_mean(kiln_graph *g, kiln_value x, const int64_t *axes, int n, int keepdims)
{
    return reduce(g, "ReduceMean", x, axes, n, keepdims);
}

kiln_value kiln_reduce_max(kiln_graph *g, kiln_value x, const int64_t *axes, int n, int keepdims)
{
    return reduce(g, "ReduceMax", x, axes, n, keepdims);
}

kiln_value kiln_argmax(kiln_graph *g, kiln_value x, int axis, int keepdims)
{
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_int(a, "axis", axis);
    kiln_attrs_int(a, "keepdims", keepdims != 0);
    return op_with(g, "ArgMax", &x, 1, a);
}

static kiln_value softmax_like(kiln_graph *g, const char *op, kiln_value x, int axis)
{
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_int(a, "axis", axis);
    return op_with(g, op, &x, 1, a);
}

kiln_value kiln_softmax(kiln_graph *g, kiln_value x, int axis) { return softmax_like(g, "Softmax", x, axis); }
kiln_value kiln_log_softmax(kiln_graph *g, kiln_value x, int axis) { return softmax_like(g, "LogSoftmax", x, axis); }

void kiln_conv2d_options_init(kiln_conv2d_options *o)
{
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->strides[0] = o->strides[1] = 1;
    o->dilations[0] = o->dilations[1] = 1;
    o->groups = 1;
}

kiln_value kiln_conv2d(kiln_graph *g, kiln_value x, kiln_value w, kiln_value b,
                       const kiln_conv2d_options *opts)
{
    kiln_conv2d_options def;
    if (!opts) {
        kiln_conv2d_options_init(&def);
        opts = &def;
    }
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_ints(a, "strides", opts->strides, 2);
    kiln_attrs_ints(a, "pads", opts->pads, 4);
    kiln_attrs_ints(a, "dilations", opts->dilations, 2);
    kiln_attrs_int(a, "group", opts->groups);
    kiln_value in[3] = {x, w, b};
    return op_with(g, "Conv2D", in, kiln_value_ok(b) ? 3 : 2, a);
}

void kiln_pool2d_options_init(kiln_pool2d_options *o, int64_t kh, int64_t kw)
{
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->kernel[0] = kh;
    o->kernel[1] = kw;
    o->strides[0] = o->strides[1] = 1;
}

static kiln_value pool(kiln_graph *g, const char *op, kiln_value x, const kiln_pool2d_options *o)
{
    if (!o) {
        ir_graph_set_error(g, KILN_ERR_INVALID_ARGUMENT, "%s: options are NULL (the kernel size is required)", op);
        return kiln_value_invalid();
    }
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_ints(a, "kernel_shape", o->kernel, 2);
    kiln_attrs_ints(a, "strides", o->strides, 2);
    kiln_attrs_ints(a, "pads", o->pads, 4);
    kiln_attrs_int(a, "ceil_mode", o->ceil_mode != 0);
    if (strcmp(op, "AveragePool2D") == 0) kiln_attrs_int(a, "count_include_pad", o->count_include_pad != 0);
    return op_with(g, op, &x, 1, a);
}

kiln_value kiln_max_pool2d(kiln_graph *g, kiln_value x, const kiln_pool2d_options *o) { return pool(g, "MaxPool2D", x, o); }
kiln_value kiln_avg_pool2d(kiln_graph *g, kiln_value x, const kiln_pool2d_options *o) { return pool(g, "AveragePool2D", x, o); }
