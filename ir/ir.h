/*
 * ir.h -- the interface of kiln's IR for the other modules: allocation,
 * dtypes, types and shapes, attributes, graphs and nodes, the op registry,
 * the verifier and the printers. Not a public header.
 */
#ifndef KILN_IR_H
#define KILN_IR_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kiln.h"

#define IR_MAX_RANK KILN_MAX_RANK
#define IR_ALIGN 64

#if defined(__GNUC__)
#define IR_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define IR_PRINTF(f, a)
#endif

/* ---- Allocation (ir/alloc.c) ---------------------------------------------
 * All library memory goes through these, so tests can fail the n-th
 * allocation and count live blocks. */
void *ir_malloc(size_t n);
void *ir_calloc(size_t count, size_t size);
void *ir_realloc(void *p, size_t n);
void ir_free(void *p);
/* 64-byte aligned; free with ir_free_aligned. */
void *ir_malloc_aligned(size_t n);
void ir_free_aligned(void *p);
char *ir_strdup(const char *s);
/* printf into a new ir_malloc'd string (NULL when out of memory). */
char *ir_asprintf(const char *fmt, ...) IR_PRINTF(1, 2);
char *ir_vasprintf(const char *fmt, va_list ap);

/* Test hooks: fail every allocation after `n` more succeed (-1: never), and
 * the number of live blocks. Not thread-safe; for tests only. */
void ir_alloc_fail_after(long n);
long ir_alloc_live_blocks(void);
bool ir_alloc_failed(void); /* true once an injected failure happened */

/* ---- Status (runtime/status.c, used everywhere) ------------------------- */
struct kiln_status {
    int code;
    char *message; /* ir_malloc'd or NULL */
};
/* Sets status (may be NULL) to code and a formatted message; returns code. */
int ir_set_status(kiln_status *s, int code, const char *fmt, ...) IR_PRINTF(3, 4);
void ir_status_ok(kiln_status *s);

/* ---- A growable string buffer -------------------------------------------- */
typedef struct {
    char *data;
    size_t len, cap;
    bool oom;
} ir_buf;
void ir_buf_printf(ir_buf *b, const char *fmt, ...) IR_PRINTF(2, 3);
void ir_buf_puts(ir_buf *b, const char *s);
/* Hands the string to the caller (NULL if out of memory) and resets b. */
char *ir_buf_take(ir_buf *b);
void ir_buf_free(ir_buf *b);

/* ---- Dtypes (ir/dtype.c) -------------------------------------------------- */
bool ir_dtype_valid(int dt);
bool ir_dtype_is_float(kiln_dtype dt);  /* f32 f64 f16 bf16 */
bool ir_dtype_is_int(kiln_dtype dt);    /* i8 u8 i16 u16 i32 u32 i64 u64 */
bool ir_dtype_is_signed(kiln_dtype dt); /* floats and i8 i16 i32 i64 */
/* The storage dtypes (float8, float4, int4/uint4, int2/uint2): one byte an
 * element, no arithmetic; feeds, fetches, constants, data movement, Cast and
 * (De)QuantizeLinear only. _float: the float8 and float4 ones. */
bool ir_dtype_is_storage(kiln_dtype dt);
bool ir_dtype_is_storage_float(kiln_dtype dt);
/* v converted to a storage dtype's byte by ONNX Cast rules (round to nearest
 * even; saturate: out-of-range float8 goes to the largest finite value);
 * and a storage byte's value (exact). */
uint8_t ir_storage_from_f64(kiln_dtype dt, double v, bool saturate);
float ir_storage_to_f32(kiln_dtype dt, uint8_t code);
/* An integer as ir_load_i64 reads it, mapped so that signed int64 order is
 * the dtype's order: u64 values above INT64_MAX read negative, so u64 flips
 * the sign bit (the map is its own inverse). Other dtypes are unchanged. */
static inline int64_t ir_int_order(kiln_dtype dt, int64_t v)
{
    return dt == KILN_U64 ? (int64_t)((uint64_t)v ^ 0x8000000000000000u) : v;
}
float ir_f16_to_f32(uint16_t h);
uint16_t ir_f32_to_f16(float f);
float ir_bf16_to_f32(uint16_t h);
uint16_t ir_f32_to_bf16(float f);
/* Element i of a buffer of dtype dt read or written as double / int64.
 * Writes convert as C does for f32/f64, round to nearest even for f16/bf16,
 * and wrap (two's complement) for integers; bool stores v != 0. */
double ir_load_f64(kiln_dtype dt, const void *p, size_t i);
int64_t ir_load_i64(kiln_dtype dt, const void *p, size_t i);
void ir_store_f64(kiln_dtype dt, void *p, size_t i, double v);
void ir_store_i64(kiln_dtype dt, void *p, size_t i, int64_t v);

/* ---- Types and shapes (ir/shape.c) ---------------------------------------- */
/* A value's type. dims[i] == -1 is a symbolic dim (unknown until run time). */
typedef struct {
    kiln_dtype dtype;
    int rank;
    int64_t dims[IR_MAX_RANK];
} ir_type;

/* Elements of a shape; -1 if any dim is symbolic, -2 on overflow. */
int64_t ir_shape_numel(int rank, const int64_t *dims);
bool ir_type_is_static(const ir_type *t);
bool ir_type_equal(const ir_type *a, const ir_type *b);
/* "f32[2,3]" ("f32[?,3]" for symbolic dims, "f32[]" for a scalar) into buf. */
char *ir_type_str(const ir_type *t, char *buf, size_t n);
#define IR_TYPE_STR_MAX 160
/* Row-major strides (in elements) of a shape. */
void ir_shape_strides(int rank, const int64_t *dims, int64_t *strides);
/* Numpy broadcasting of two shapes into out (rank = max). Symbolic dims
 * broadcast with 1 to symbolic and with n to n. Returns false if the shapes
 * do not broadcast. */
bool ir_broadcast(const ir_type *a, const ir_type *b, ir_type *out);
/* Normalizes axis (which may be negative) for a rank; false if out of range. */
bool ir_norm_axis(int64_t axis, int rank, int *out);
/* Strides for reading an input of shape (rank, dims) broadcast to an output
 * of rank out_rank: the input's dims are right-aligned and broadcast dims get
 * stride 0. */
void ir_broadcast_strides(int rank, const int64_t *dims, int out_rank, int64_t *strides);

/* An odometer over a shape that also tracks up to IR_ITER_MAX linear
 * offsets into inputs with their own strides (0 for broadcast dims). */
#define IR_ITER_MAX 4
typedef struct {
    int rank, n;
    int64_t dims[IR_MAX_RANK];
    int64_t idx[IR_MAX_RANK];
    int64_t strides[IR_ITER_MAX][IR_MAX_RANK];
    int64_t off[IR_ITER_MAX];
} ir_iter;
void ir_iter_init(ir_iter *it, int rank, const int64_t *dims);
/* Adds an operand with the given strides (over it->rank dims); returns its slot. */
int ir_iter_add(ir_iter *it, const int64_t *strides);
/* Steps to the next index (row-major). */
static inline void ir_iter_next(ir_iter *it)
{
    for (int d = it->rank - 1; d >= 0; d--) {
        for (int k = 0; k < it->n; k++) it->off[k] += it->strides[k][d];
        if (++it->idx[d] < it->dims[d]) return;
        for (int k = 0; k < it->n; k++) it->off[k] -= it->strides[k][d] * it->dims[d];
        it->idx[d] = 0;
    }
}

/* ---- Tensors (runtime/tensor.c; layout shared with the IR) --------------- */
struct kiln_tensor {
    kiln_dtype dtype;
    int rank;
    int64_t dims[IR_MAX_RANK];
    size_t size;  /* elements */
    void *data;   /* 64-byte aligned, owned unless `borrowed` */
    bool borrowed;
};
/* A tensor of type t (which must be static), zero-filled; NULL when out of
 * memory. */
kiln_tensor *ir_tensor_new_type(const ir_type *t);
void ir_tensor_type(const kiln_tensor *x, ir_type *t);

/* ---- Attributes (ir/attr.c) ---------------------------------------------- */
typedef enum {
    IR_ATTR_NONE = 0,
    IR_ATTR_INT,
    IR_ATTR_FLOAT,
    IR_ATTR_STRING,
    IR_ATTR_INTS,
    IR_ATTR_FLOATS,
    IR_ATTR_TENSOR,
    IR_ATTR_DTYPE
} ir_attr_kind;

typedef struct {
    ir_attr_kind kind; /* IR_ATTR_NONE: not set (optional, no default) */
    int n;             /* element count for INTS / FLOATS */
    union {
        int64_t i; /* INT, DTYPE */
        double f;
        char *s;
        int64_t *ints;
        double *floats;
        kiln_tensor *t;
    } u;
} ir_attr;

struct kiln_attrs {
    int n, cap;
    char **names;
    ir_attr *vals;
    bool oom;
};

const char *ir_attr_kind_name(ir_attr_kind k);
/* Deep copy of src into dst (dst overwritten); false when out of memory. */
bool ir_attr_copy(ir_attr *dst, const ir_attr *src);
void ir_attr_clear(ir_attr *a);
bool ir_attr_equal(const ir_attr *a, const ir_attr *b);

/* ---- Op registry (ir/registry.c, ir/ops/\*.c) ---------------------------- */
typedef enum {
#define IR_OP(name, family) IR_OP_##name,
#include "ops/ops.def"
#undef IR_OP
    IR_OP_COUNT
} ir_op;

/* One attribute of an op's schema. */
typedef struct {
    const char *name;
    ir_attr_kind kind;
    bool required;
    /* Default, used when not required and not given. For INTS/FLOATS/STRING/
     * TENSOR kinds with no default the attribute stays unset (IR_ATTR_NONE). */
    int64_t def_i;
    double def_f;
    const char *def_s;
} ir_attrdef;

#define IR_ATTR_REQ(nm, k) {.name = nm, .kind = k, .required = true}
#define IR_ATTR_I(nm, d) {.name = nm, .kind = IR_ATTR_INT, .def_i = (d)}
#define IR_ATTR_F(nm, d) {.name = nm, .kind = IR_ATTR_FLOAT, .def_f = (d)}
#define IR_ATTR_S(nm, d) {.name = nm, .kind = IR_ATTR_STRING, .def_s = (d)}
#define IR_ATTR_DT(nm, d) {.name = nm, .kind = IR_ATTR_DTYPE, .def_i = (d)}
#define IR_ATTR_OPT(nm, k) {.name = nm, .kind = k}

struct ir_node;
typedef struct ir_infer_ctx ir_infer_ctx;
typedef struct ir_grad_ctx ir_grad_ctx;
typedef struct ir_kernel_ctx ir_kernel_ctx;

/* Computes output types from input types and attributes. Returns 0, or -1
 * after ir_infer_error. Called when a node is built (symbolic dims possible)
 * and again at run time with concrete shapes. */
typedef int (*ir_infer_fn)(ir_infer_ctx *cx);
/* Computes outputs (allocated by the caller to the inferred types) from
 * inputs. Returns 0, or -1 after ir_kernel_error. */
typedef int (*ir_kernel_fn)(ir_kernel_ctx *kx);
/* Adds nodes computing an op's input gradients from its output gradients
 * (see "Gradient rules" below). Returns 0, or -1 with an error recorded on
 * the graph. */
typedef int (*ir_grad_fn)(ir_grad_ctx *gx);

enum {
    IR_OPF_SOURCE = 1u << 0,    /* no inputs: Placeholder, Constant, Variable */
    IR_OPF_STATEFUL = 1u << 1,  /* reads or writes session state: never merged or folded */
    IR_OPF_RANDOM = 1u << 2,    /* output differs per run */
    IR_OPF_ELEMENTWISE = 1u << 3,
    IR_OPF_NOT_DIFFERENTIABLE = 1u << 4
};

typedef struct ir_opdef {
    const char *name;
    int min_inputs, max_inputs; /* max_inputs -1: variadic */
    int noutputs;               /* -1: set by infer (ir_infer_set_noutputs) */
    const ir_attrdef *attrs;
    int nattrs;
    unsigned flags;
    ir_infer_fn infer;
    ir_kernel_fn kernel;
    ir_grad_fn grad;   /* gradient rule (ir/grad.c), NULL: none */
    const void *lower; /* lowering: filled by codegen */
    /* A one-line description for the op table in the docs. */
    const char *doc;
} ir_opdef;

/* Each family file defines `const ir_opdef ir_opdef_NAME` for its ops. */
#define IR_OP(name, family) extern const ir_opdef ir_opdef_##name;
#include "ops/ops.def"
#undef IR_OP

const ir_opdef *ir_op_def(ir_op op);
/* The op with that name, or -1. */
int ir_op_lookup(const char *name);
/* Index of an attribute in an op's schema, or -1. */
int ir_op_attr_index(const ir_opdef *def, const char *name);

/* ---- Graphs and nodes (ir/graph.c) --------------------------------------- */
typedef struct ir_node {
    ir_op op;
    char *name;           /* unique in the graph */
    int ninputs;
    kiln_value *inputs;
    int noutputs;
    ir_type *outputs;
    ir_attr *attrs; /* def->nattrs of them, in schema order, defaults filled */
} ir_node;

/* A bump allocator for the graph's nodes' names, inputs, types and attribute
 * payloads: freed all at once with the graph. */
typedef struct ir_arena_block ir_arena_block;
typedef struct {
    ir_arena_block *head;
} ir_arena;
void *ir_arena_alloc(ir_arena *a, size_t n); /* 16-byte aligned, zeroed; NULL on OOM */
char *ir_arena_strdup(ir_arena *a, const char *s);
void ir_arena_free(ir_arena *a);

/* A string -> int map (open addressing) used for node names. */
typedef struct {
    const char **keys;
    int *vals;
    size_t cap, count;
} ir_strmap;
int ir_strmap_get(const ir_strmap *m, const char *key); /* -1 if absent */
bool ir_strmap_put(ir_strmap *m, const char *key, int val); /* key borrowed */
bool ir_strmap_del(ir_strmap *m, const char *key);
void ir_strmap_free(ir_strmap *m);

/* Where a value lives while a static graph runs (passes/plan.c). */
typedef enum {
    IR_MEM_NONE = 0, /* never in memory: a member of a fused kernel, or unused */
    IR_MEM_SOURCE,   /* a placeholder, constant or variable: where it is */
    IR_MEM_ARENA,    /* at offset in the run's arena */
    IR_MEM_FETCH     /* written straight into the buffer of fetch `index` */
} ir_mem_kind;

typedef struct ir_mem_plan {
    int nnodes, nvalues; /* of the graph it was made for */
    int *base;           /* node i's output k is value base[i] + k */
    ir_mem_kind *kind;   /* per value */
    int *index;          /* IR_MEM_FETCH: the fetch (declared output) index */
    int64_t *offset;     /* IR_MEM_ARENA: byte offset (64-byte aligned) */
    int *alias;          /* the value whose storage it reuses in place, or -1 */
    int64_t arena_size;
} ir_mem_plan;

struct kiln_graph {
    ir_node *nodes;
    int nnodes, cap;
    ir_arena arena;
    ir_strmap names;
    char *error;     /* first builder error (ir_malloc'd) */
    int error_code;
    kiln_value *outputs; /* declared outputs (in the arena), or NULL */
    int noutputs;
    /* Fusion (passes/fuse.c), in the arena, or NULL: per node, the root node
     * of the fused kernel it belongs to (the root's own entry is itself), or
     * -1 for a node that is its own kernel. */
    int *kernel_of;
    /* Memory plan (passes/plan.c), in the arena, or NULL. Any change to the
     * nodes drops it (compaction, the pass manager). */
    struct ir_mem_plan *mem_plan;
    /* Tensors held by attributes (constants, initial values) are owned by
     * the nodes and freed with the graph; other payloads live in the arena. */
};

static inline ir_node *ir_graph_node(const kiln_graph *g, kiln_value v)
{
    return &g->nodes[v.node];
}
/* True when v names an existing output of g. */
bool ir_value_valid(const kiln_graph *g, kiln_value v);
const ir_type *ir_value_type(const kiln_graph *g, kiln_value v);

/* Adds a node: looks up the schema, copies and checks attributes, infers
 * output types. On error records it on the graph (first error wins) and
 * returns -1; returns the node index otherwise. `name` may be NULL. */
int ir_graph_add_node(kiln_graph *g, ir_op op, const char *name, const kiln_value *inputs,
                      int ninputs, const kiln_attrs *attrs);
/* A kiln_attrs bag holding a copy of node n's set attributes (NULL when out
 * of memory); the caller frees it. */
kiln_attrs *ir_node_attr_bag(const ir_node *n);
/* Adds to dst a copy of node `node` of src (op, attributes) with the given
 * inputs (values of dst) and name (NULL: src's name); types are re-inferred.
 * Returns the new node index or -1 with the error recorded on dst. */
int ir_graph_copy_node(kiln_graph *dst, const kiln_graph *src, int node, const kiln_value *inputs,
                       const char *name);
/* Graph rewriting (compact.c). ir_replace_uses points every use of old
 * (node inputs and declared outputs) at repl. ir_graph_compact keeps what the
 * declared outputs need plus every placeholder and variable, restores the
 * order in which each node uses only earlier nodes, drops the rest, and
 * writes each old node's new index (or -1) into remap (g->nnodes entries).
 * Returns KILN_OK, KILN_ERR_OUT_OF_MEMORY (graph unchanged) or
 * KILN_ERR_INTERNAL for a cycle. */
void ir_replace_uses(kiln_graph *g, kiln_value old, kiln_value repl);
int ir_graph_compact(kiln_graph *g, int *remap);
/* Records err (if none yet) on the graph. */
void ir_graph_set_error(kiln_graph *g, int code, const char *fmt, ...) IR_PRINTF(3, 4);

/* Attribute accessors on a built node (by schema name; the node's op must
 * have that attribute -- an internal invariant). */
const ir_attr *ir_node_attr(const ir_node *n, const char *name);
int64_t ir_node_int(const ir_node *n, const char *name);
double ir_node_float(const ir_node *n, const char *name);
const char *ir_node_string(const ir_node *n, const char *name);
/* INTS: count in *count (0 if unset), pointer to the values. */
const int64_t *ir_node_ints(const ir_node *n, const char *name, int *count);
const double *ir_node_floats(const ir_node *n, const char *name, int *count);
const kiln_tensor *ir_node_tensor(const ir_node *n, const char *name);

/* ---- Inference (ir/infer.c) ---------------------------------------------- */
struct ir_infer_ctx {
    const kiln_graph *graph; /* may be NULL at run time */
    const ir_node *node;     /* attrs, name; inputs/outputs not used */
    const ir_opdef *def;
    int ninputs;
    const ir_type *in;
    /* When input i is produced by a Constant node, its tensor; else NULL. */
    const kiln_tensor *const *const_in;
    int noutputs;
    ir_type *out; /* def->noutputs entries, or set by ir_infer_set_noutputs */
    ir_type out_small[4];
    char *error; /* ir_malloc'd message */
    int error_code;
};
/* Records an error on the node: the message is prefixed with the op and the
 * node's name and followed by the input types. Returns -1. */
int ir_infer_error(ir_infer_ctx *cx, const char *fmt, ...) IR_PRINTF(2, 3);
/* For ops whose output count depends on attributes. Returns 0 or -1 (OOM). */
int ir_infer_set_noutputs(ir_infer_ctx *cx, int n);
/* Runs an op's inference for a node with the given input types; fills
 * cx->out. The caller frees cx with ir_infer_ctx_clear. */
int ir_infer_run(ir_infer_ctx *cx, const kiln_graph *g, const ir_node *node, const ir_type *in,
                 int ninputs, const kiln_tensor *const *const_in);
void ir_infer_ctx_clear(ir_infer_ctx *cx);

/* Common inference helpers. */
int ir_infer_same_dtype(ir_infer_ctx *cx, int first, int last); /* inputs [first,last] */
int ir_infer_require_float(ir_infer_ctx *cx, int input);
int ir_infer_require_dtypes(ir_infer_ctx *cx, int input, unsigned mask); /* 1u << dtype */
#define IR_DT_MASK(dt) (1u << (dt))
#define IR_DT_FLOATS (IR_DT_MASK(KILN_F32) | IR_DT_MASK(KILN_F64) | IR_DT_MASK(KILN_F16) | IR_DT_MASK(KILN_BF16))
#define IR_DT_INTS                                                                              \
    (IR_DT_MASK(KILN_I8) | IR_DT_MASK(KILN_U8) | IR_DT_MASK(KILN_I16) | IR_DT_MASK(KILN_U16) |     \
     IR_DT_MASK(KILN_I32) | IR_DT_MASK(KILN_U32) | IR_DT_MASK(KILN_I64) | IR_DT_MASK(KILN_U64))
#define IR_DT_UNSIGNED (IR_DT_MASK(KILN_U8) | IR_DT_MASK(KILN_U16) | IR_DT_MASK(KILN_U32) | IR_DT_MASK(KILN_U64))
#define IR_DT_NUMERIC (IR_DT_FLOATS | IR_DT_INTS)
#define IR_DT_ALL (IR_DT_NUMERIC | IR_DT_MASK(KILN_BOOL))
/* Output 0 broadcast of all inputs, dtype of input 0. */
int ir_infer_broadcast(ir_infer_ctx *cx);

/* ---- Kernels (run by the reference executor) ----------------------------- */
struct ir_kernel_ctx {
    const ir_node *node;
    const ir_opdef *def;
    int ninputs;
    kiln_tensor *const *in; /* in[i] may alias a variable (Assign writes it) */
    int noutputs;
    kiln_tensor **out;      /* allocated to the inferred types, zero-filled */
    uint64_t run_counter;   /* random ops: distinct per run of the node */
    char *error;            /* ir_malloc'd message */
    int error_code;
};
int ir_kernel_error(ir_kernel_ctx *kx, int code, const char *fmt, ...) IR_PRINTF(3, 4);

/* Counter-based random numbers (ir/ops/random.c): the i-th uniform double in
 * [0,1) of stream (seed, counter). Used by random ops and dropout. */
double ir_random_uniform(uint64_t seed, uint64_t counter, uint64_t i);

/* ---- Verifier and printers (ir/verify.c, ir/print.c) --------------------- */
/* Checks every invariant listed in verify.c; 0 or an error code (and
 * message in status). */
int ir_verify(const kiln_graph *g, kiln_status *status);
char *ir_graph_text(const kiln_graph *g);
char *ir_graph_dot(const kiln_graph *g);
/* One node's line of the text form, appended to b. */
void ir_print_node(ir_buf *b, const kiln_graph *g, int node);

/* ---- Evaluating one node (ir/eval.c) -------------------------------------- */
/* Runs node n (op def) on concrete input tensors with its reference kernel,
 * as constant folding does: infers the output types from the inputs' types,
 * allocates n->noutputs outputs into outputs[] (caller frees) and runs the
 * kernel. When max_bytes > 0 and an output would take more bytes, nothing
 * is computed and KILN_ERR_FAILED_PRECONDITION is returned. Returns KILN_OK
 * or an error code with status set; on error every outputs[i] is NULL. */
int ir_eval_node(const ir_node *n, const ir_opdef *def, kiln_tensor *const *inputs, int ninputs,
                 size_t max_bytes, kiln_tensor **outputs, kiln_status *st);

/* ---- Gradient rules (ir/grad.c; used by passes/autodiff.c) --------------
 * A rule builds, on the same graph, nodes computing the gradient of each
 * input from the gradients of the outputs, using kiln_op and the typed
 * helpers, so that rules made of differentiable ops give second order for
 * free. Adding nodes may move g->nodes: rules use the copy `n` (its
 * pointers live in the arena and stay valid), never &g->nodes[node]. */
struct ir_grad_ctx {
    kiln_graph *g;
    int node;                 /* the node being differentiated */
    ir_node n;                /* a copy of it */
    const kiln_value *inputs; /* n.ninputs */
    const kiln_value *outputs;/* n.noutputs */
    const kiln_value *dy;     /* per output; node < 0: zero gradient */
    kiln_value *dx;           /* per input, set by the rule; invalid: none */
};
/* Sums dx (a gradient of a value broadcast to dx's shape) over the broadcast
 * axes so it has target's shape: ReduceSum with keepdims over stretched
 * dims, then over the leading dims. Returns dx itself when nothing is
 * broadcast, an invalid value on error (recorded on g). */
kiln_value ir_grad_unbroadcast(kiln_graph *g, kiln_value dx, const ir_type *target);
/* Where a Slice node on an input of type x starts, its step and its
 * length along each dim (start 0, step 1, the whole dim where not sliced;
 * length -1 for a symbolic dim). Returns -1 for invalid attributes. */
int ir_slice_geometry(const ir_node *node, const ir_type *x, int64_t *start, int64_t *step, int64_t *len);

/* Records "<op> '<node>': <message>" with code on the graph; returns -1. */
int ir_grad_error(ir_grad_ctx *gx, int code, const char *fmt, ...) IR_PRINTF(3, 4);

#define IR_GRAD_RULES(X)                                                                      \
    X(Identity) X(Cast) X(Add) X(Sub) X(Mul) X(Div) X(Pow) X(Maximum) X(Minimum) X(Neg)     \
    X(Abs) X(Exp) X(Log) X(Sqrt) X(Rsqrt) X(Reciprocal) X(Tanh) X(Sigmoid) X(Relu)          \
    X(LeakyRelu) X(Elu) X(Gelu) X(Erf) X(Softplus) X(Clip) X(Where) X(MatMul) X(Gemm)       \
    X(ReduceSum) X(ReduceMean) X(Transpose) X(Reshape) X(Flatten) X(Squeeze) X(Unsqueeze)   \
    X(Concat) X(Slice) X(Expand) X(Softmax) X(LogSoftmax)
/* Rules of ir/grad_nn.c: convolutions, pools, normalizations, indexing and
 * tiling, the other reductions, ir/ops/math.c, the backward ops of
 * ir/ops/train.c and the index ops of ir/ops/index.c. */
#define IR_GRAD_RULES_NN(X)                                                                   \
    X(Conv2D) X(ConvTranspose2D) X(MaxPool2D) X(AveragePool2D) X(GlobalAveragePool)         \
    X(BatchNormalization) X(LayerNormalization) X(Gather) X(Split) X(Pad) X(Tile)           \
    X(ReduceMax) X(ReduceMin) X(ReduceProd) X(Sin) X(Cos) X(Tan) X(Asin) X(Acos) X(Atan)    \
    X(Sinh) X(Cosh) X(Asinh) X(Acosh) X(Atanh) X(Mod) X(Conv2DFilterGrad)                   \
    X(MaxPool2DGrad) X(AveragePool2DGrad) X(GatherGrad) X(CumSum) X(GatherElements) X(TopK)  \
    X(ScatterElements) X(CumProd) X(ScatterND) X(OneHot) X(GridSample)
#define IR_GRAD_DECL(name) int ir_grad_##name(ir_grad_ctx *gx);
IR_GRAD_RULES(IR_GRAD_DECL)
IR_GRAD_RULES_NN(IR_GRAD_DECL)
#undef IR_GRAD_DECL

#endif /* KILN_IR_H */
