/*
 * kiln.h -- the public C API of kiln, a static-graph compiler and runtime
 * for neural networks.
 *
 * A program builds a graph (placeholders, constants, variables and
 * operations), opens a session on it, and runs the session: it feeds
 * placeholders and fetches values. Everything here is plain C11.
 *
 * Conventions that hold for the whole API:
 *
 *  - Ownership. A function that returns a pointer to a new object (a
 *    `_new`, `_from_data`, a fetched output tensor) hands that object to the
 *    caller, who releases it with the matching `_free`. Every `_free` accepts
 *    NULL. Arguments are borrowed: kiln copies what it keeps (names, tensor
 *    data, attributes) before returning.
 *
 *  - Errors. Nothing in kiln aborts the process on bad input. Functions that
 *    can fail take a `kiln_status *` (may be NULL when the caller does not care)
 *    and set its code and a message that names the node, the op, the dtypes
 *    and the shapes involved. Graph builders record the first error on the
 *    graph instead (see kiln_graph_error) and return an invalid value that
 *    poisons everything built from it.
 *
 *  - Threads. A graph is not thread-safe: build it from one thread at a time.
 *    Tensors and statuses are plain data owned by one thread at a time. A
 *    session may be run from many threads at once (see kiln_session_run).
 */
#ifndef KILN_H
#define KILN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define KILN_API __attribute__((visibility("default")))
#else
#define KILN_API
#endif

/* The largest rank a tensor or a value may have. */
#define KILN_MAX_RANK 8

/* ------------------------------------------------------------------------ */
/* Data types                                                                */
/* ------------------------------------------------------------------------ */

/* Element types. F16 is IEEE binary16 and BF16 is bfloat16, each stored as
 * 16 bits; BOOL is one byte holding 0 or 1. */
typedef enum {
    KILN_F32 = 1,
    KILN_F64,
    KILN_F16,
    KILN_BF16,
    KILN_I8,
    KILN_U8,
    KILN_I32,
    KILN_I64,
    KILN_BOOL,
    /* More integer types. */
    KILN_I16,
    KILN_U16,
    KILN_U32,
    KILN_U64,
    /* Storage types: values of these types can be fed, fetched, stored as
     * constants and converted with Cast (and the quantize/dequantize ops);
     * arithmetic on them is done after a Cast to a wider type. The 8-bit
     * floats follow the OCP FP8 formats (E4M3FN, E5M2) and their "FNUZ"
     * variants (no negative zero, one NaN); E8M0 is the exponent-only scale
     * type; F4E2M1 is the OCP FP4 format. I4/U4/I2/U2 are 4- and 2-bit
     * integers; kiln keeps each element of these sub-byte types in one byte
     * (ONNX files pack them; the importer unpacks them). */
    KILN_F8E4M3FN,
    KILN_F8E4M3FNUZ,
    KILN_F8E5M2,
    KILN_F8E5M2FNUZ,
    KILN_F8E8M0,
    KILN_F4E2M1,
    KILN_I4,
    KILN_U4,
    KILN_I2,
    KILN_U2
} kiln_dtype;

/* "f32", "f64", ... or "?" for a value that is not a dtype. Static string. */
KILN_API const char *kiln_dtype_name(kiln_dtype dt);
/* Bytes per element, or 0 for a value that is not a dtype. */
KILN_API size_t kiln_dtype_size(kiln_dtype dt);

/* ------------------------------------------------------------------------ */
/* Status                                                                    */
/* ------------------------------------------------------------------------ */

/* Status codes. KILN_OK is zero; every other code is an error. */
enum {
    KILN_OK = 0,
    KILN_ERR_INVALID_ARGUMENT, /* a bad call or bad input: shape, dtype, name */
    KILN_ERR_NOT_FOUND,        /* a name, file or op that does not exist */
    KILN_ERR_UNIMPLEMENTED,    /* valid, but not supported (yet) */
    KILN_ERR_OUT_OF_MEMORY,    /* an allocation failed */
    KILN_ERR_INTERNAL,         /* a bug in kiln: please report it */
    KILN_ERR_IO,               /* reading or writing a file failed */
    KILN_ERR_FAILED_PRECONDITION /* the object is not in a state for this */
};

/* A status holds a code and a message. One status may be reused across
 * calls: each call that takes it overwrites it (and resets it to KILN_OK on
 * success). */
typedef struct kiln_status kiln_status;

/* Returns a new status (code KILN_OK), or NULL when out of memory. */
KILN_API kiln_status *kiln_status_new(void);
KILN_API void kiln_status_free(kiln_status *s);
/* KILN_OK (0) or an error code. A NULL status reads as KILN_OK. */
KILN_API int kiln_status_code(const kiln_status *s);
/* The message of the last error, or "" when the code is KILN_OK. The string
 * belongs to the status and is valid until the status is next written. */
KILN_API const char *kiln_status_message(const kiln_status *s);
/* A static name for a code: "OK", "INVALID_ARGUMENT", ... */
KILN_API const char *kiln_status_code_name(int code);

/* Frees a string or buffer that kiln returned to the caller (kiln_graph_to_text
 * and the like). Accepts NULL. */
KILN_API void kiln_free(void *p);

/* ------------------------------------------------------------------------ */
/* Tensors                                                                   */
/* ------------------------------------------------------------------------ */

/* A dense, row-major (C order) array with a dtype and a shape. Its data is
 * 64-byte aligned and owned by the tensor. */
typedef struct kiln_tensor kiln_tensor;

/* A new zero-filled tensor. rank is 0..KILN_MAX_RANK; dims may be NULL when
 * rank is 0; every dim must be >= 0. Returns NULL on a bad dtype, rank or dim,
 * or when out of memory. */
KILN_API kiln_tensor *kiln_tensor_new(kiln_dtype dt, int rank, const int64_t *dims);
/* As kiln_tensor_new, then copies size * dtype-size bytes from data. */
KILN_API kiln_tensor *kiln_tensor_from_data(kiln_dtype dt, int rank, const int64_t *dims,
                                            const void *data);
/* A deep copy, or NULL when out of memory or t is NULL. */
KILN_API kiln_tensor *kiln_tensor_copy(const kiln_tensor *t);
KILN_API void kiln_tensor_free(kiln_tensor *t);
/* The element buffer (NULL for a NULL tensor); writable by the owner. */
KILN_API void *kiln_tensor_data(kiln_tensor *t);
KILN_API const void *kiln_tensor_const_data(const kiln_tensor *t);
KILN_API kiln_dtype kiln_tensor_dtype(const kiln_tensor *t);
KILN_API int kiln_tensor_rank(const kiln_tensor *t);
/* rank dims; valid as long as the tensor. */
KILN_API const int64_t *kiln_tensor_dims(const kiln_tensor *t);
/* The number of elements (1 for a scalar). */
KILN_API size_t kiln_tensor_size(const kiln_tensor *t);
/* The number of bytes of data. */
KILN_API size_t kiln_tensor_nbytes(const kiln_tensor *t);

/* NumPy .npy files (format versions 1.0 to 3.0, C order, either byte
 * order; every kiln dtype but the storage ones (float8, float4, int4, int2),
 * which numpy lacks: writing one returns KILN_ERR_UNIMPLEMENTED. numpy has no bf16, so bf16 is written as the
 * opaque 2-byte type '|V2', which numpy reads as raw void values, and '|V2'
 * reads back as bf16). read returns a new tensor (caller frees) or NULL with
 * status set; write returns KILN_OK or an error code, and is atomic. */
KILN_API kiln_tensor *kiln_tensor_read_npy(const char *path, kiln_status *status);
KILN_API int kiln_tensor_write_npy(const kiln_tensor *t, const char *path, kiln_status *status);

/* ------------------------------------------------------------------------ */
/* Attributes                                                                */
/* ------------------------------------------------------------------------ */

/* A bag of named, typed attributes for kiln_op. The caller builds it, passes
 * it to kiln_op (which copies what it needs) and frees it. Setting a name
 * twice keeps the last value. Setters on a NULL bag do nothing; when out of
 * memory the bag remembers it and kiln_op reports it. */
typedef struct kiln_attrs kiln_attrs;

KILN_API kiln_attrs *kiln_attrs_new(void);
KILN_API void kiln_attrs_free(kiln_attrs *a);
KILN_API void kiln_attrs_int(kiln_attrs *a, const char *name, int64_t v);
KILN_API void kiln_attrs_float(kiln_attrs *a, const char *name, double v);
KILN_API void kiln_attrs_string(kiln_attrs *a, const char *name, const char *v);
KILN_API void kiln_attrs_ints(kiln_attrs *a, const char *name, const int64_t *v, int n);
KILN_API void kiln_attrs_floats(kiln_attrs *a, const char *name, const double *v, int n);
KILN_API void kiln_attrs_tensor(kiln_attrs *a, const char *name, const kiln_tensor *v);
KILN_API void kiln_attrs_dtype(kiln_attrs *a, const char *name, kiln_dtype v);

/* ------------------------------------------------------------------------ */
/* Graphs                                                                    */
/* ------------------------------------------------------------------------ */

/* A dataflow graph. Nodes are added in order and each uses only values that
 * already exist, so a graph is acyclic by construction. Not thread-safe. */
typedef struct kiln_graph kiln_graph;

/* One output of one node. Passed by value; never allocated. A value with
 * node < 0 is invalid: builders return it after an error. */
typedef struct {
    int32_t node, index;
} kiln_value;

/* The invalid value, and a test for it. */
KILN_API kiln_value kiln_value_invalid(void);
KILN_API int kiln_value_ok(kiln_value v);

/* A new empty graph, or NULL when out of memory. */
KILN_API kiln_graph *kiln_graph_new(void);
/* Frees the graph, its nodes, names and constants. A session built on the
 * graph must be freed first. */
KILN_API void kiln_graph_free(kiln_graph *g);

/* NULL, or the first error recorded by a builder call, naming the node, the
 * op and the shapes. The string belongs to the graph. */
KILN_API const char *kiln_graph_error(const kiln_graph *g);
/* The number of nodes (0 for NULL). */
KILN_API int kiln_graph_node_count(const kiln_graph *g);

/* A graph input of the given dtype and shape. A dim of -1 is symbolic: the
 * session takes it from the fed tensor. name may be NULL (a name is made). */
KILN_API kiln_value kiln_placeholder(kiln_graph *g, const char *name, kiln_dtype dt, int rank,
                                     const int64_t *dims);
/* A constant; copies the tensor. */
KILN_API kiln_value kiln_constant(kiln_graph *g, const char *name, const kiln_tensor *t);
/* A scalar constant of the given dtype holding v (converted). */
KILN_API kiln_value kiln_scalar(kiln_graph *g, kiln_dtype dt, double v);
/* A variable: persistent state of a session, starting as a copy of init. */
KILN_API kiln_value kiln_variable(kiln_graph *g, const char *name, const kiln_tensor *init);

/* The generic builder: adds a node running the op named `op` (see docs/ops.md)
 * on the inputs with the attributes (attrs may be NULL), checks types and
 * shapes, and returns its output 0. For ops with several outputs the others
 * are {node, 1}, {node, 2}, ... */
KILN_API kiln_value kiln_op(kiln_graph *g, const char *op, const kiln_value *inputs, int ninputs,
                            const kiln_attrs *attrs);

/* Names v's node (names are unique within a graph) and returns v. */
KILN_API kiln_value kiln_name(kiln_graph *g, kiln_value v, const char *name);
/* Output 0 of the node with that name, or an invalid value. */
KILN_API kiln_value kiln_graph_find(const kiln_graph *g, const char *name);
/* The number of outputs of v's node (0 for an invalid value). */
KILN_API int kiln_value_output_count(const kiln_graph *g, kiln_value v);

/* Introspection: a value's dtype (0 if invalid), rank (-1 if invalid) and
 * dims (-1 for a symbolic dim; copies rank dims into dims). The name of its
 * node and the op name (static strings or owned by the graph). */
KILN_API kiln_dtype kiln_value_dtype(const kiln_graph *g, kiln_value v);
KILN_API int kiln_value_rank(const kiln_graph *g, kiln_value v);
KILN_API int kiln_value_dims(const kiln_graph *g, kiln_value v, int64_t *dims);
KILN_API const char *kiln_value_node_name(const kiln_graph *g, kiln_value v);
KILN_API const char *kiln_value_op_name(const kiln_graph *g, kiln_value v);

/* The graph as text, one line per node:
 *   %7 = Conv2D(%3, %5) {strides=[1,1]} : f32[1,64,56,56]  # conv1
 * or as Graphviz DOT. Returns a string the caller frees with kiln_free, or
 * NULL when out of memory. */
KILN_API char *kiln_graph_to_text(const kiln_graph *g);
KILN_API char *kiln_graph_to_dot(const kiln_graph *g);
/* Runs the verifier over the whole graph (types, shapes, attributes, no
 * dangling values). Returns KILN_OK or an error code, also set in status. */
KILN_API int kiln_graph_verify(const kiln_graph *g, kiln_status *status);

/* The graph's declared outputs: what `kiln run` fetches and what a saved
 * graph remembers. set copies the list (replacing an earlier one); outputs
 * copies up to max of them into out and returns how many there are. A graph
 * with none declared reports its sinks: outputs of non-source nodes that no
 * node uses, in node order. */
KILN_API void kiln_graph_set_outputs(kiln_graph *g, const kiln_value *outputs, int n);
KILN_API int kiln_graph_outputs(const kiln_graph *g, kiln_value *out, int max);
/* The graph's placeholders in creation order (its inputs): as above. */
KILN_API int kiln_graph_inputs(const kiln_graph *g, kiln_value *out, int max);

/* Saves the graph (nodes, attributes, constants, initial variable values,
 * declared outputs) to a .kiln file, kiln's own format; the write is atomic
 * (a temporary file renamed into place). Loads one back: the caller frees
 * the graph. Errors name the file and what is wrong with it. */
KILN_API void kiln_graph_save(const kiln_graph *g, const char *path, kiln_status *status);
KILN_API kiln_graph *kiln_graph_load(const char *path, kiln_status *status);

/* ---- Typed helpers, built on kiln_op ------------------------------------ */

/* Elementwise binary ops with numpy broadcasting; both inputs of one dtype. */
KILN_API kiln_value kiln_add(kiln_graph *g, kiln_value a, kiln_value b);
KILN_API kiln_value kiln_sub(kiln_graph *g, kiln_value a, kiln_value b);
KILN_API kiln_value kiln_mul(kiln_graph *g, kiln_value a, kiln_value b);
KILN_API kiln_value kiln_div(kiln_graph *g, kiln_value a, kiln_value b);
KILN_API kiln_value kiln_pow(kiln_graph *g, kiln_value a, kiln_value b);
KILN_API kiln_value kiln_maximum(kiln_graph *g, kiln_value a, kiln_value b);
KILN_API kiln_value kiln_minimum(kiln_graph *g, kiln_value a, kiln_value b);
KILN_API kiln_value kiln_equal(kiln_graph *g, kiln_value a, kiln_value b);
KILN_API kiln_value kiln_less(kiln_graph *g, kiln_value a, kiln_value b);
KILN_API kiln_value kiln_greater(kiln_graph *g, kiln_value a, kiln_value b);
KILN_API kiln_value kiln_and(kiln_graph *g, kiln_value a, kiln_value b);
KILN_API kiln_value kiln_or(kiln_graph *g, kiln_value a, kiln_value b);
/* Elementwise unary ops. */
KILN_API kiln_value kiln_neg(kiln_graph *g, kiln_value x);
KILN_API kiln_value kiln_abs(kiln_graph *g, kiln_value x);
KILN_API kiln_value kiln_exp(kiln_graph *g, kiln_value x);
KILN_API kiln_value kiln_log(kiln_graph *g, kiln_value x);
KILN_API kiln_value kiln_sqrt(kiln_graph *g, kiln_value x);
KILN_API kiln_value kiln_rsqrt(kiln_graph *g, kiln_value x);
KILN_API kiln_value kiln_reciprocal(kiln_graph *g, kiln_value x);
KILN_API kiln_value kiln_tanh(kiln_graph *g, kiln_value x);
KILN_API kiln_value kiln_sigmoid(kiln_graph *g, kiln_value x);
KILN_API kiln_value kiln_relu(kiln_graph *g, kiln_value x);
KILN_API kiln_value kiln_gelu(kiln_graph *g, kiln_value x);
KILN_API kiln_value kiln_erf(kiln_graph *g, kiln_value x);
KILN_API kiln_value kiln_softplus(kiln_graph *g, kiln_value x);
KILN_API kiln_value kiln_not(kiln_graph *g, kiln_value x);
KILN_API kiln_value kiln_identity(kiln_graph *g, kiln_value x);
KILN_API kiln_value kiln_leaky_relu(kiln_graph *g, kiln_value x, double alpha);
KILN_API kiln_value kiln_elu(kiln_graph *g, kiln_value x, double alpha);
KILN_API kiln_value kiln_clip(kiln_graph *g, kiln_value x, double lo, double hi);
KILN_API kiln_value kiln_where(kiln_graph *g, kiln_value cond, kiln_value a, kiln_value b);
KILN_API kiln_value kiln_cast(kiln_graph *g, kiln_value x, kiln_dtype to);
/* Assigns value to the variable var when run as a target (or fetched);
 * returns the new value. */
KILN_API kiln_value kiln_assign(kiln_graph *g, kiln_value var, kiln_value value);

/* Matrix product with numpy matmul semantics (batch dims broadcast); the
 * last two dims of a (b) are transposed first when transpose_a (_b). */
KILN_API kiln_value kiln_matmul(kiln_graph *g, kiln_value a, kiln_value b);
KILN_API kiln_value kiln_matmul_t(kiln_graph *g, kiln_value a, kiln_value b, int transpose_a,
                                  int transpose_b);
/* alpha * op(A) * op(B) + beta * C for 2-D A and B; C (broadcast to the
 * result) may be an invalid value for none. */
KILN_API kiln_value kiln_gemm(kiln_graph *g, kiln_value a, kiln_value b, kiln_value c, double alpha,
                              double beta, int transpose_a, int transpose_b);

KILN_API kiln_value kiln_transpose(kiln_graph *g, kiln_value x, const int64_t *perm, int n);
/* dims may hold one -1 (inferred) and 0 (copy the input dim). */
KILN_API kiln_value kiln_reshape(kiln_graph *g, kiln_value x, const int64_t *dims, int n);
KILN_API kiln_value kiln_flatten(kiln_graph *g, kiln_value x, int axis);
KILN_API kiln_value kiln_squeeze(kiln_graph *g, kiln_value x, const int64_t *axes, int n);
KILN_API kiln_value kiln_unsqueeze(kiln_graph *g, kiln_value x, const int64_t *axes, int n);
KILN_API kiln_value kiln_concat(kiln_graph *g, const kiln_value *xs, int n, int axis);
KILN_API kiln_value kiln_gather(kiln_graph *g, kiln_value x, kiln_value indices, int axis);
KILN_API kiln_value kiln_expand(kiln_graph *g, kiln_value x, const int64_t *dims, int n);
KILN_API kiln_value kiln_tile(kiln_graph *g, kiln_value x, const int64_t *repeats, int n);

/* Reductions over axes (NULL/0 axes: all axes). */
KILN_API kiln_value kiln_reduce_sum(kiln_graph *g, kiln_value x, const int64_t *axes, int n,
                                    int keepdims);
KILN_API kiln_value kiln_reduce_mean(kiln_graph *g, kiln_value x, const int64_t *axes, int n,
                                     int keepdims);
KILN_API kiln_value kiln_reduce_max(kiln_graph *g, kiln_value x, const int64_t *axes, int n,
                                    int keepdims);
KILN_API kiln_value kiln_argmax(kiln_graph *g, kiln_value x, int axis, int keepdims);
KILN_API kiln_value kiln_softmax(kiln_graph *g, kiln_value x, int axis);
KILN_API kiln_value kiln_log_softmax(kiln_graph *g, kiln_value x, int axis);

/* 2-D convolution, NCHW input, OIHW weights (I = C / groups). */
typedef struct {
    int64_t strides[2];   /* default 1,1 */
    int64_t pads[4];      /* top, left, bottom, right; default 0 */
    int64_t dilations[2]; /* default 1,1 */
    int64_t groups;       /* default 1 */
} kiln_conv2d_options;
/* Fills the defaults. */
KILN_API void kiln_conv2d_options_init(kiln_conv2d_options *o);
/* b may be an invalid value for no bias; opts may be NULL for defaults. */
KILN_API kiln_value kiln_conv2d(kiln_graph *g, kiln_value x, kiln_value w, kiln_value b,
                                const kiln_conv2d_options *opts);

/* 2-D pooling over NCHW input. */
typedef struct {
    int64_t kernel[2];
    int64_t strides[2];       /* default 1,1 */
    int64_t pads[4];          /* top, left, bottom, right; default 0 */
    int ceil_mode;            /* default 0 */
    int count_include_pad;    /* AveragePool2D only; default 0 */
} kiln_pool2d_options;
KILN_API void kiln_pool2d_options_init(kiln_pool2d_options *o, int64_t kh, int64_t kw);
KILN_API kiln_value kiln_max_pool2d(kiln_graph *g, kiln_value x, const kiln_pool2d_options *o);
KILN_API kiln_value kiln_avg_pool2d(kiln_graph *g, kiln_value x, const kiln_pool2d_options *o);

/* ------------------------------------------------------------------------ */
/* Sessions                                                                  */
/* ------------------------------------------------------------------------ */

typedef enum {
    KILN_BACKEND_DEFAULT = 0, /* the best backend available */
    KILN_BACKEND_REFERENCE    /* the reference kernels: slow, the oracle */
} kiln_backend;

/* Where a session runs (docs/gpu.md). */
typedef enum {
    KILN_DEVICE_CPU = 0, /* the host CPU */
    KILN_DEVICE_CUDA     /* NVIDIA GPU 0 through the CUDA driver, loaded at run time */
} kiln_device;

typedef struct {
    kiln_backend backend;
    int threads;   /* worker threads; 0 = number of cores */
    int opt_level; /* 0: no graph passes, LLVM -O0; 1..3: the default graph passes
                      (docs/passes.md) and that LLVM level (default 2) */
    const char *passes; /* graph passes instead of the default pipeline, comma-
                           separated; "" for none (the string must outlive the
                           session) */
    int64_t fold_limit; /* constant folding leaves results larger than this many
                           bytes unfolded; 0 = the default (64 MiB), < 0 = no limit */
    kiln_device device; /* KILN_DEVICE_CPU (default) or KILN_DEVICE_CUDA: without a CUDA
                           driver, kiln_session_new fails ("no CUDA driver found") */
} kiln_session_options;

/* Fills the defaults. */
KILN_API void kiln_session_options_init(kiln_session_options *o);

typedef struct kiln_session kiln_session;

/* A session over g (opts NULL for defaults). The session borrows g: the
 * graph must outlive the session and must not be changed while a run is in
 * progress; nodes added after the session was created are not visible to it.
 * The session copies each variable's initial value. Returns NULL and sets
 * status when the graph has an error or out of memory. */
KILN_API kiln_session *kiln_session_new(kiln_graph *g, const kiln_session_options *opts,
                                        kiln_status *status);

/* Runs the graph: feeds input_values[i] to inputs[i] (placeholders, or any
 * value to override it), computes only what outputs and targets need, and
 * stores a new tensor for each outputs[i] in output_values[i], which the
 * caller frees with kiln_tensor_free. Targets are run for their effects
 * (variable assignments) and not returned. On error every output_values[i]
 * is NULL and status says which placeholder, node or shape was wrong.
 *
 * Thread safety: any number of threads may run one session at once. Runs
 * that assign variables take the session's variables exclusively; runs that
 * only read them share them. */
KILN_API void kiln_session_run(kiln_session *s, const kiln_value *inputs,
                               kiln_tensor *const *input_values, int ninputs,
                               const kiln_value *outputs, kiln_tensor **output_values,
                               int noutputs, const kiln_value *targets, int ntargets,
                               kiln_status *status);

/* A copy of the current value of a variable (caller frees), or NULL with
 * status set when v is not a variable of the session's graph. */
KILN_API kiln_tensor *kiln_session_variable(kiln_session *s, kiln_value v, kiln_status *status);

/* An input or output of the session by name: for a session on a graph, output
 * 0 of the node with that name; for a loaded library, the input or output of
 * that name. An invalid value when there is none. */
KILN_API kiln_value kiln_session_find(const kiln_session *s, const char *name);

/* The session's inputs and outputs: for a session on a graph, the graph's
 * placeholders and declared outputs (kiln_graph_inputs/_outputs); for a
 * loaded library, its inputs and outputs. Copies up to max values into out
 * and returns how many there are. */
KILN_API int kiln_session_inputs(const kiln_session *s, kiln_value *out, int max);
KILN_API int kiln_session_outputs(const kiln_session *s, kiln_value *out, int max);
/* The graph the session's values belong to (for a loaded library, a small
 * graph whose placeholders stand for its inputs and outputs), for
 * kiln_value_node_name, kiln_value_dtype, ... Owned by the session or the
 * caller as given to kiln_session_new. */
KILN_API const kiln_graph *kiln_session_graph(const kiln_session *s);

/* ------------------------------------------------------------------------ */
/* Ahead-of-time compilation                                                 */
/* ------------------------------------------------------------------------ */

typedef struct {
    int opt_level;        /* 0..3, default 2 */
    const char *cpu;      /* LLVM CPU name; NULL = "x86-64-v3"; "native" = this machine */
    const char *name;     /* C prefix of the generated symbols; NULL = "model" */
    const char *header;   /* also write the C header here (NULL: none) */
    int64_t symbolic_dim; /* value for every symbolic input dim; 0 = such dims are an error */
    const char *passes;   /* graph passes, comma-separated (docs/passes.md); NULL = the
                             default pipeline (none at opt_level 0) */
    const char *print_after; /* print the graph to stderr after this pass ("all": each) */
    int time_passes;      /* print each pass's time to stderr */
    int64_t fold_limit;   /* largest constant-folded result in bytes; 0 = the default
                             (64 MiB), < 0 = no limit */
} kiln_compile_options;

KILN_API void kiln_compile_options_init(kiln_compile_options *o);

/* Compiles the graph, with the given inputs fed and outputs fetched, into
 * `path`: a shared object (.so), an object file (.o) or a static archive (.a),
 * chosen by the extension. The result embeds the constants and the variables'
 * initial values, exports `<name>_run`, `<name>_describe` and `<name>_error`
 * (declared by the header, see docs/aot.md) and depends only on libc, libm
 * and libpthread. Uses the system C compiler (`cc`, or $CC) to link. */
KILN_API void kiln_compile_library(kiln_graph *g, const kiln_value *inputs, int ninputs,
                                   const kiln_value *outputs, int noutputs, const char *path,
                                   const kiln_compile_options *opts, kiln_status *status);

/* Opens a session on a shared object made by kiln_compile_library. It runs
 * with the same API: feed every input, fetch any of the outputs (find them
 * with kiln_session_find). The library's ABI version must match this kiln's;
 * otherwise NULL with a message saying both versions. */
KILN_API kiln_session *kiln_session_load(const char *library_path, kiln_status *status);

/* Frees the session and its variables. Accepts NULL. No run may be in
 * progress. */
KILN_API void kiln_session_free(kiln_session *s);

/* ------------------------------------------------------------------------ */
/* ONNX import                                                               */
/* ------------------------------------------------------------------------ */

/* The shape to give one graph input of an ONNX model, by name: replaces the
 * shape the model declares (rank must agree when the model gives one). A
 * dim of -1 stays symbolic. */
typedef struct {
    const char *name;
    int rank;
    const int64_t *dims;
} kiln_input_shape;

typedef struct {
    /* Input shapes to use instead of the model's (typically to fix a free
     * batch dim, so shape computations fold to constants). A name that is
     * not a graph input is an error. */
    const kiln_input_shape *input_shapes;
    int ninput_shapes;
    /* Nonzero: initializers become variables (trainable, for fine-tuning)
     * instead of constants; they are then not constant-folded. */
    int initializers_as_variables;
    /* Graph inputs bound to fixed values: each named input becomes a
     * constant holding a copy of its tensor instead of a placeholder, so
     * what is computed from it folds at import. For inputs kiln needs
     * constant that a model leaves as graph inputs (a Reshape's shape,
     * reduction axes, TopK's k, Resize's scales). The tensor's dtype must be
     * the input's, and its shape must fit the declared one; a name that is
     * not a graph input is an error. */
    const char *const *constant_input_names;
    const kiln_tensor *const *constant_input_values;
    int nconstant_inputs;
} kiln_import_options;

/* Fills the defaults: no shape overrides, initializers as constants. */
KILN_API void kiln_import_options_init(kiln_import_options *o);

/* Imports an ONNX model (ModelProto, opsets 1 to 28 of the ai.onnx domain;
 * see docs/onnx.md) as a new graph the caller frees. opts may be NULL for
 * the defaults. Graph inputs that are not initializers become placeholders
 * named as in the model (dim_param and unknown dims symbolic); initializers
 * become constants (or variables); every graph output is declared
 * (kiln_graph_outputs, in the model's order) and found by its ONNX name
 * with kiln_graph_find. Tensors stored as external data are read from
 * files relative to the model's folder. Nodes whose inputs are all
 * constants (shape computations, once input shapes are known) are folded
 * into constants. On error returns NULL and sets status: a model using ops
 * kiln cannot express gets one message listing every such op type and
 * opset; other messages name the ONNX node, its op type and the shapes. */
KILN_API kiln_graph *kiln_import_onnx(const char *path, const kiln_import_options *opts,
                                      kiln_status *status);

/* ------------------------------------------------------------------------ */
/* Gradients (passes/autodiff.c; docs/training.md)                           */
/* ------------------------------------------------------------------------ */

/* Adds to g the nodes computing the gradient of sum_j sum(dys[j] * ys[j])
 * with respect to each xs[i], and writes its value to dxs_out[i] (same
 * dtype and shape as xs[i]). dys may be NULL: ones of each y's shape (its
 * shape must then be static). Reverse mode: gradients are summed over
 * fan-out, broadcasting ops reduce them back to their inputs' shapes, and
 * integer and bool values (and ops flagged not differentiable: comparisons,
 * ArgMax, random ops, ...) carry none. An xs[i] that no y depends on gets a
 * constant of zeros (UNIMPLEMENTED when its shape is symbolic). Every xs[i]
 * must be a floating-point value; it may be any value of g, not only a
 * placeholder or variable. The new nodes are ordinary ops, so a gradient can
 * be differentiated again.
 * On error every dxs_out[i] is invalid and status says why: a path through
 * ops without a gradient rule gives UNIMPLEMENTED with one message listing
 * every such op (and a node of each); nodes already added stay in the graph,
 * unused. Not thread-safe for one graph. */
KILN_API void kiln_gradients(kiln_graph *g, const kiln_value *ys, int ny, const kiln_value *xs,
                             int nx, const kiln_value *dys, kiln_value *dxs_out,
                             kiln_status *status);

/* ------------------------------------------------------------------------ */
/* Training: losses, optimizers, initializers, checkpoints, freezing         */
/* (frontend/train.c, frontend/init.c, runtime/checkpoint.c,                 */
/*  runtime/freeze.c; docs/training.md)                                      */
/* ------------------------------------------------------------------------ */

/* How a loss reduces its per-element (or per-example) terms. */
typedef enum {
    KILN_REDUCTION_MEAN = 0, /* the mean over the terms (the default) */
    KILN_REDUCTION_SUM       /* their sum */
} kiln_reduction;

/* Loss builders: ordinary graph nodes (differentiable, compiled like any
 * other op) returning a scalar of the inputs' float dtype. Errors (dtype or
 * shape mismatch, a bad reduction) are recorded on the graph like any
 * builder's, naming the loss and both types, and an invalid value is
 * returned.
 *
 * mse: (pred - target)^2 over every element; pred and target have one float
 * dtype and the same shape.
 *
 * softmax_cross_entropy: logits [..., C] (classes on the last axis) and
 * labels either integer class indices (i32/i64, the logits' shape without
 * the last axis, C static) or probabilities / one-hot (the logits' dtype
 * and shape). Each example's term is -sum_c p_c * log_softmax(logits)_c,
 * computed through LogSoftmax so that extreme logits stay finite. An index
 * outside [0, C) selects no class and contributes 0. MEAN averages over the
 * examples (every axis but the last).
 *
 * sigmoid_cross_entropy: element-wise binary cross-entropy of targets z in
 * [0, 1] given logits x (same dtype and shape), in the stable form
 * max(x, 0) - x * z + log(1 + exp(-|x|)). */
KILN_API kiln_value kiln_loss_mse(kiln_graph *g, kiln_value pred, kiln_value target,
                                  kiln_reduction reduction);
KILN_API kiln_value kiln_loss_softmax_cross_entropy(kiln_graph *g, kiln_value logits,
                                                    kiln_value labels, kiln_reduction reduction);
KILN_API kiln_value kiln_loss_sigmoid_cross_entropy(kiln_graph *g, kiln_value logits,
                                                    kiln_value targets, kiln_reduction reduction);

typedef enum {
    KILN_OPTIMIZER_SGD = 1,  /* w -= lr * (g + wd * w) */
    KILN_OPTIMIZER_MOMENTUM, /* SGD with (optionally Nesterov) momentum */
    KILN_OPTIMIZER_ADAM,     /* Adam, weight decay as L2 added to g */
    KILN_OPTIMIZER_ADAMW,    /* Adam with decoupled weight decay */
    KILN_OPTIMIZER_RMSPROP   /* RMSprop (uncentered), optional momentum */
} kiln_optimizer_kind;

/* An optimizer's settings. The update formulas are PyTorch's (torch.optim
 * SGD, Adam, AdamW, RMSprop, with their default dampening 0, amsgrad off,
 * centered off) and are written out in docs/training.md. */
typedef struct {
    kiln_optimizer_kind kind;
    double learning_rate;
    double momentum;        /* MOMENTUM (default 0.9), RMSPROP (default 0) */
    int nesterov;           /* MOMENTUM: nonzero for Nesterov momentum */
    double beta1, beta2;    /* ADAM, ADAMW: default 0.9, 0.999 */
    double epsilon;         /* ADAM, ADAMW, RMSPROP: default 1e-8 */
    double weight_decay;    /* default 0 (ADAMW: 0.01); decoupled for ADAMW, L2 otherwise */
    double rho;             /* RMSPROP: the squares' decay (PyTorch's alpha), default 0.99 */
    double clip_global_norm; /* > 0: scale all gradients by
                                clip / max(global_norm, clip) first; 0: off */
    /* The variables to train; NULL (default): every float variable the
     * loss depends on. */
    const kiln_value *var_list;
    int nvar_list;
    /* Prefix of the optimizer's own variables (the step counter); NULL: the
     * kind's name ("SGD", "Momentum", "Adam", "AdamW", "RMSprop"). */
    const char *name;
} kiln_optimizer;

/* Fills o with kind's defaults and the given learning rate. */
KILN_API void kiln_optimizer_init(kiln_optimizer *o, kiln_optimizer_kind kind,
                                  double learning_rate);

/* Adds to g one training step of opt on loss (a float value; its sum is
 * minimized): the gradients (kiln_gradients), optional clipping by global
 * norm, and for each trained variable the update, written with Assign.
 * State lives in new variables of g, zero-initialized: slots named
 * "<var>/momentum", "<var>/adam_m", "<var>/adam_v", "<var>/rms" and, for
 * Adam and AdamW, an i64 step counter "<name>/step" (a "_1", "_2", ...
 * suffix is added when a name is taken). Every update reads only values
 * computed before any Assign of the step, so all variables move from the
 * same old values.
 *
 * Returns the train op ("<name>/train"): run it as a target of
 * kiln_session_run to take one step. It is an f32 vector holding the
 * first element of every updated variable, slot and counter (a node that
 * depends on every Assign of the step; its value is for debugging). Open
 * the session after calling this: a session does not see nodes added
 * after it was created.
 * On error returns an invalid value and sets status (bad settings, a loss
 * that is not float, no variable to train, errors of kiln_gradients);
 * nodes already added stay in the graph, unused. */
KILN_API kiln_value kiln_minimize(kiln_graph *g, kiln_value loss, const kiln_optimizer *opt,
                                  kiln_status *status);

/* Initializers: new tensors (caller frees with kiln_tensor_free), or NULL
 * with status set for a bad dtype, rank, dim or parameter, or when out of
 * memory. Random ones need a float dtype and are reproducible: the same
 * seed gives the same bits on every machine (a counter-based splitmix64
 * generator, one stream per element; normals by Marsaglia's polar method
 * with a logarithm computed from exact IEEE operations, not libm).
 *
 * Fans, for glorot and he: rank 0: 1 and 1; rank 1: dims[0] and dims[0];
 * rank 2: [in, out] as kiln_matmul(x, w) uses w: fan_in = dims[0],
 * fan_out = dims[1] (note: the transpose of PyTorch's Linear weight);
 * rank >= 3, convolution weights [out, in / groups, kh, kw, ...]:
 * fan_in = dims[1] * receptive, fan_out = dims[0] * receptive, where
 * receptive is the product of dims[2..]. kiln_init_fans returns KILN_OK or
 * an error code and writes both fans. */
KILN_API int kiln_init_fans(int rank, const int64_t *dims, int64_t *fan_in, int64_t *fan_out,
                            kiln_status *status);
/* zeros and ones: any dtype. */
KILN_API kiln_tensor *kiln_init_zeros(kiln_dtype dt, int rank, const int64_t *dims,
                                      kiln_status *status);
KILN_API kiln_tensor *kiln_init_ones(kiln_dtype dt, int rank, const int64_t *dims,
                                     kiln_status *status);
/* Uniform in [lo, hi) (lo < hi) as stored in dt. */
KILN_API kiln_tensor *kiln_init_uniform(kiln_dtype dt, int rank, const int64_t *dims, double lo,
                                        double hi, uint64_t seed, kiln_status *status);
/* Normal(mean, std), std >= 0. */
KILN_API kiln_tensor *kiln_init_normal(kiln_dtype dt, int rank, const int64_t *dims, double mean,
                                       double std, uint64_t seed, kiln_status *status);
/* Normal(mean, std) with draws outside mean +- 2 std drawn again. */
KILN_API kiln_tensor *kiln_init_truncated_normal(kiln_dtype dt, int rank, const int64_t *dims,
                                                 double mean, double std, uint64_t seed,
                                                 kiln_status *status);
/* Glorot / Xavier: uniform in +-sqrt(6 / (fan_in + fan_out)), or normal
 * with std sqrt(2 / (fan_in + fan_out)). */
KILN_API kiln_tensor *kiln_init_glorot_uniform(kiln_dtype dt, int rank, const int64_t *dims,
                                               uint64_t seed, kiln_status *status);
KILN_API kiln_tensor *kiln_init_glorot_normal(kiln_dtype dt, int rank, const int64_t *dims,
                                              uint64_t seed, kiln_status *status);
/* He / Kaiming (for ReLU, fan_in mode): uniform in +-sqrt(6 / fan_in), or
 * normal with std sqrt(2 / fan_in). */
KILN_API kiln_tensor *kiln_init_he_uniform(kiln_dtype dt, int rank, const int64_t *dims,
                                           uint64_t seed, kiln_status *status);
KILN_API kiln_tensor *kiln_init_he_normal(kiln_dtype dt, int rank, const int64_t *dims,
                                          uint64_t seed, kiln_status *status);

/* Checkpoints: every variable of a session (on a graph, not a loaded
 * library), by node name, in kiln's checkpoint format (docs/training.md:
 * magic, version, count, per variable name, dtype, shape and data, CRC-32
 * of the whole). save takes a consistent copy of the variables and writes
 * it atomically: a temporary file in the same folder, flushed and synced,
 * renamed over path, then the folder synced, so path holds either the old
 * or the new checkpoint, never a mix. restore reads and checks the whole
 * file (checksum, format, and that its variables are exactly the session's,
 * with the same dtypes and shapes) before changing anything: on any error
 * the session's variables are unchanged and the message names the file and
 * the variable, with both types for a mismatch. Both return KILN_OK or an
 * error code also set in status, and may run while other threads run the
 * session: save copies under the shared lock (it waits for assigning runs);
 * restore validates first, then waits for every run in progress and
 * excludes runs while it copies. */
KILN_API int kiln_session_save_variables(kiln_session *s, const char *path, kiln_status *status);
KILN_API int kiln_session_restore_variables(kiln_session *s, const char *path,
                                            kiln_status *status);

/* Freezing for deployment: a new graph (caller frees) copying the nodes of
 * g that s sees, with every Variable replaced by a Constant (same name)
 * holding the session's current value, and every Assign dropped together
 * with every node that depends on one. When g declares outputs, the result
 * keeps only what they need (so gradients, optimizer state and placeholders
 * used only for training go); otherwise every node left. g must be the session's graph; a declared output that depends on
 * an Assign is an error. NULL with status set on error. g and s are not
 * changed. */
KILN_API kiln_graph *kiln_graph_freeze(const kiln_graph *g, kiln_session *s, kiln_status *status);

/* ------------------------------------------------------------------------ */
/* Training-mode layers: batch normalization, dropout, grouping targets      */
/* (frontend/train_layers.c; docs/training.md, "Batch normalization and      */
/*  dropout in training")                                                    */
/* ------------------------------------------------------------------------ */

/* A value that depends on every values[i] (each of non-zero size): an f32[n]
 * vector holding the first element of each, cast to f32. Run it as a target
 * to run all of them at once, e.g. the train op of kiln_minimize together
 * with the running-statistics update of kiln_batch_norm. Errors are graph
 * errors (an invalid or empty value, n < 1). */
KILN_API kiln_value kiln_group(kiln_graph *g, const kiln_value *values, int n);

typedef struct {
    int axis;        /* the channel axis; default 1 ([N, C] and NCHW); < 0 counts from the end */
    double momentum; /* running = momentum * running + (1 - momentum) * batch: the ONNX and
                        Keras convention, default 0.9 (PyTorch's momentum m is 1 - m here) */
    double epsilon;  /* added to the variance; default 1e-5 */
} kiln_batch_norm_options;

/* Fills the defaults: axis 1, momentum 0.9, epsilon 1e-5. */
KILN_API void kiln_batch_norm_options_init(kiln_batch_norm_options *o);

/* Batch normalization over every axis of x but the channel axis (C
 * channels): y = scale * (x - mean) / sqrt(var + epsilon) + bias. scale,
 * bias, running_mean and running_var are [C] values of x's float dtype;
 * opts may be NULL for the defaults.
 *
 * training != 0: mean and var are the batch's (biased variance), computed
 * from ordinary ops (ReduceMean, Sub, Mul, Rsqrt), so gradients flow to x,
 * scale and bias through them. x's shape must be static and hold more than
 * one value per channel. When update_out is not NULL, running_mean and
 * running_var must be Variables; *update_out receives a value that, run as
 * a target (alone or through kiln_group with the train op), assigns
 *   running_mean = momentum * running_mean + (1 - momentum) * mean
 *   running_var  = momentum * running_var  + (1 - momentum) * var * n/(n-1)
 * (n values per channel: the unbiased variance, as PyTorch keeps it).
 *
 * training == 0: mean and var are running_mean and running_var (the
 * BatchNormalization op for axis 1, which batch-norm folding knows);
 * *update_out, if given, is set to an invalid value.
 *
 * Build both from the same variables to train with one and evaluate (and
 * freeze) the other. Errors are graph errors naming the builder and the
 * types; an invalid value is returned. */
KILN_API kiln_value kiln_batch_norm(kiln_graph *g, kiln_value x, kiln_value scale, kiln_value bias,
                                    kiln_value running_mean, kiln_value running_var,
                                    const kiln_batch_norm_options *opts, int training,
                                    kiln_value *update_out);

/* Inverted dropout. training != 0: each element of x is kept with
 * probability 1 - rate and scaled by 1 / (1 - rate), or set to 0; the mask
 * comes from a RandomUniform node with the given seed, so it is new on
 * every run of a session and the same sequence of masks comes again in a
 * new session on the same graph (reference and compiled backends alike).
 * x must have a float dtype and a static shape; rate must be in [0, 1).
 * training == 0 (or rate 0): the identity (an Identity node). Errors are
 * graph errors; an invalid value is returned. */
KILN_API kiln_value kiln_dropout(kiln_graph *g, kiln_value x, double rate, uint64_t seed,
                                 int training);

/* ------------------------------------------------------------------------ */
/* Datasets: loading, splitting, standardizing, shuffling, batching          */
/* (frontend/dataset.c; docs/training.md, "Data")                            */
/* ------------------------------------------------------------------------ */

/* An in-memory dataset of n >= 1 examples: features, an f32 tensor
 * [n, ...] (one slice of the leading axis per example), and optional
 * targets [n, ...], f32 (regression) or i64 (class labels). The caller
 * frees it with kiln_dataset_free. Plain data: one thread at a time. */
typedef struct kiln_dataset kiln_dataset;

/* How to read a CSV file. Columns are counted from 0 here; a negative
 * column counts from the end (-1 is the last). */
typedef struct {
    char delimiter;   /* default ',' */
    int skip_lines;   /* lines skipped at the top, before the header (default 0) */
    int header;       /* nonzero: the next line holds column names and is skipped (default 0) */
    /* The feature columns, in this order; NULL (default): every column but
     * the target. */
    const int *feature_columns;
    int nfeature_columns;
    int target_column;       /* default -1, the last column */
    int no_target;           /* nonzero: no targets (default 0) */
    kiln_dtype target_dtype; /* KILN_F32 (default), or KILN_I64 for class labels: the
                                cells must then hold integers ("3" or "3.0") */
} kiln_csv_options;

/* Fills the defaults. */
KILN_API void kiln_csv_options_init(kiln_csv_options *o);

/* Reads a CSV file of numbers (gzip-compressed or not: a gzip file is
 * recognized by its magic and decompressed through zlib) into a new
 * dataset: features f32 [rows, nfeatures], targets [rows] of
 * o->target_dtype. opts may be NULL for the defaults. Cells are numbers as
 * strtod reads them, finite, with blanks around them allowed; lines that
 * are empty or blank are skipped; every data line must have as many cells
 * as the first one (only the chosen columns are parsed, the others may
 * hold anything). Errors (NULL returned, status set) name the file, the
 * line and the column, both counted from 1 as editors do:
 *   'data.csv', line 7, column 3: 'abc' is not a number
 *   'data.csv', line 9: 13 columns, but line 3 (the first data line) has 14 */
KILN_API kiln_dataset *kiln_dataset_read_csv(const char *path, const kiln_csv_options *opts,
                                             kiln_status *status);

/* Reads features and (y_path not NULL) targets from NumPy .npy files
 * (kiln_tensor_read_npy): x is [n, ...] of any numeric dtype, converted to
 * f32 (a rank-1 x is taken as [n, 1]); y is [n, ...], converted to i64
 * when integer or bool and to f32 when floating point. */
KILN_API kiln_dataset *kiln_dataset_read_npy(const char *x_path, const char *y_path,
                                             kiln_status *status);
/* The same from tensors in memory (copied; y may be NULL). */
KILN_API kiln_dataset *kiln_dataset_from_tensors(const kiln_tensor *x, const kiln_tensor *y,
                                                 kiln_status *status);
KILN_API void kiln_dataset_free(kiln_dataset *d);

/* The number of examples (0 for NULL). */
KILN_API int64_t kiln_dataset_count(const kiln_dataset *d);
/* The whole features and targets tensors (the targets NULL when there are
 * none), in the dataset's current order; owned by the dataset, valid until
 * it is changed or freed. */
KILN_API const kiln_tensor *kiln_dataset_features(const kiln_dataset *d);
KILN_API const kiln_tensor *kiln_dataset_targets(const kiln_dataset *d);

/* Splits d into two new datasets (the caller frees both): the examples are
 * put in the order kiln_dataset_shuffle(seed) would give, the first
 * ceil(test_fraction * n) go to *test and the others to *train. test_fraction
 * must be in (0, 1) and leave both parts at least one example. d is not
 * changed. Returns KILN_OK or an error code (both outputs NULL). */
KILN_API int kiln_dataset_split(const kiln_dataset *d, double test_fraction, uint64_t seed,
                                kiln_dataset **train, kiln_dataset **test,
                                kiln_status *status);

/* Standardizes the features: for every feature element, the mean and the
 * (population) standard deviation over train, in f64; a constant feature
 * gets scale 1. Then x = (x - mean) / scale in train and, when not NULL,
 * in test (fitted on train only, as a held-out set must be). When mean or
 * scale is not NULL it receives a new f32 tensor of one example's shape
 * (the caller frees it), to apply the same transform to new data. The
 * datasets must have the same example shape. On error nothing changes. */
KILN_API int kiln_dataset_standardize(kiln_dataset *train, kiln_dataset *test, kiln_tensor **mean,
                                      kiln_tensor **scale, kiln_status *status);

/* Reorders the examples in place (features and targets together) by a
 * Fisher-Yates shuffle driven by splitmix64 from seed, with unbiased
 * (rejection-sampled) indices: the same dataset and seed give the same
 * order on every machine. Shuffle with a different seed each epoch (seed +
 * epoch, say). Allocates nothing. */
KILN_API int kiln_dataset_shuffle(kiln_dataset *d, uint64_t seed, kiln_status *status);

/* Mini-batches. Batch i holds examples [i * batch_size, (i + 1) * batch_size)
 * in the current order; the last batch is partial when batch_size does not
 * divide n, and drop_last nonzero leaves it out (so that every batch has
 * the static shape of a training graph's placeholders). batch_count gives
 * the number of batches of one epoch (0 for a bad argument). batch writes
 * new tensors (the caller frees them) to *x, [m, ...] f32, and, when y is
 * not NULL, to *y (NULL when the dataset has no targets); on error both
 * are NULL and the status names the index and the count. */
KILN_API int64_t kiln_dataset_batch_count(const kiln_dataset *d, int64_t batch_size,
                                          int drop_last);
KILN_API int kiln_dataset_batch(const kiln_dataset *d, int64_t index, int64_t batch_size,
                                int drop_last, kiln_tensor **x, kiln_tensor **y,
                                kiln_status *status);

#ifdef __cplusplus
}
#endif

#endif /* KILN_H */
