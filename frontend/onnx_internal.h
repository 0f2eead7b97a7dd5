/* onnx_internal.h -- what the ONNX importer's files share: the import
 * context, the node-building helpers of onnx.c (with constant folding) and
 * the op table of onnx_ops.c. Not a public header. */
#ifndef KILN_ONNX_INTERNAL_H
#define KILN_ONNX_INTERNAL_H

#include "ir.h"
#include "onnx/onnx.pb-c.h"

/* The ONNX opsets this importer knows (ai.onnx domain). */
#define ONNX_MIN_OPSET 1
#define ONNX_MAX_OPSET 28
/* Limits on what a file may ask for: each one is checked before any
 * allocation it would size. */
#define ONNX_MAX_NODES 1000000
#define ONNX_MAX_NODE_IO 65536
/* Folded constants larger than this many bytes (and larger than their
 * inputs together) stay computed nodes. */
#define ONNX_FOLD_LIMIT ((size_t)1 << 20)
/* Control flow: how deeply subgraphs may nest, and how many nodes the
 * graph may reach while If branches, Scan and Loop bodies are inlined. */
#define ONNX_MAX_SUBGRAPH_DEPTH 16
#define ONNX_MAX_UNROLL_NODES 200000
/* ... and how many bytes of constants folding inside them may make. */
#define ONNX_MAX_UNROLL_BYTES ((size_t)1 << 30)

/* The name table of an enclosing graph while a subgraph is imported: a
 * subgraph node may use any value visible there. */
typedef struct onnx_scope {
    ir_strmap names;
    kiln_value *vals;
    int nvals, capvals;
    const Onnx__NodeProto *owner; /* the node whose subgraph is being imported */
    const struct onnx_scope *outer;
} onnx_scope;

typedef struct onnx_ctx {
    kiln_graph *g;
    const char *path;
    kiln_status *st; /* the first error, once set, is the import's result */
    int opset;       /* of the ai.onnx domain */
    bool fold;       /* constant folding at import (on) */
    const Onnx__NodeProto *node; /* the node being converted, for messages */
    /* ONNX value name -> index into vals (keys borrowed from the model). */
    ir_strmap names;
    kiln_value *vals;
    int nvals, capvals;
    /* Nodes that already carry an ONNX value's name. */
    unsigned char *claimed;
    int capclaimed;
    /* Enclosing graphs' name tables (innermost first) while a subgraph is
     * imported; NULL for the main graph. depth counts them. */
    const onnx_scope *outer;
    int depth;
    size_t unrolled_bytes; /* folded inside subgraphs so far */
    const char *dir; /* the model's directory, for external data */
} onnx_ctx;

/* Records an error that names the current node (its name, op type and
 * opset) and returns the code. The first error wins. */
int onnx_error(onnx_ctx *cx, int code, const char *fmt, ...) IR_PRINTF(3, 4);
/* True once an error is recorded. */
bool onnx_failed(const onnx_ctx *cx);

/* Adds a kiln node (op by name) with the given inputs and attributes
 * (attrs may be NULL; freed by the caller). When every input is a
 * Constant and the op is pure, the node is evaluated at once with its
 * reference kernel and Constants are added instead. Returns output 0, or
 * an invalid value after recording the error. `outs` (may be NULL) gets
 * nouts outputs. */
kiln_value onnx_op_n(onnx_ctx *cx, const char *op, const kiln_value *in, int nin,
                     const kiln_attrs *attrs, kiln_value *outs, int nouts);
kiln_value onnx_op(onnx_ctx *cx, const char *op, const kiln_value *in, int nin,
                   const kiln_attrs *attrs);
kiln_value onnx_op1(onnx_ctx *cx, const char *op, kiln_value a);
kiln_value onnx_op2(onnx_ctx *cx, const char *op, kiln_value a, kiln_value b);
/* A constant (the graph copies t) and a scalar constant of a dtype. */
kiln_value onnx_const(onnx_ctx *cx, const kiln_tensor *t);
kiln_value onnx_scalar(onnx_ctx *cx, kiln_dtype dt, double v);
kiln_value onnx_const_ints(onnx_ctx *cx, const int64_t *v, int n);

/* The tensor of a Constant node, or NULL when v is computed. */
const kiln_tensor *onnx_value_tensor(const onnx_ctx *cx, kiln_value v);
const ir_type *onnx_type(const onnx_ctx *cx, kiln_value v);

/* ONNX TensorProto -> kiln tensor (dtype, dims, data from raw_data, the
 * typed fields or external data relative to `dir`, which may be NULL to
 * refuse external data). `what` names the tensor in messages. Returns
 * KILN_OK or an error code with status set. */
int onnx_tensor_from_proto(const Onnx__TensorProto *tp, const char *dir, const char *what,
                           kiln_tensor **out, kiln_status *st);
/* ONNX TensorProto.DataType -> kiln dtype, or 0 when kiln has none. */
kiln_dtype onnx_dtype(int onnx_type);
const char *onnx_dtype_name(int onnx_type);
/* A ProtobufCAllocator over ir_malloc; `failed` tells OOM from bad input. */
typedef struct {
    ProtobufCAllocator base;
    bool failed;
} onnx_allocator;
void onnx_allocator_init(onnx_allocator *a);
/* Reads a whole file (at most max_bytes) into an ir_malloc'd buffer. */
int onnx_read_file(const char *path, size_t max_bytes, uint8_t **buf, size_t *len,
                   kiln_status *st);
/* Reads a serialized TensorProto file (as the ONNX test data sets hold)
 * into a new tensor. */
kiln_tensor *onnx_read_tensor_file(const char *path, kiln_status *st);

/* Imports the subgraph gp of the current node inline: its inputs are
 * bound to in[0..nin) (nin must equal its input count), its initializers
 * become constants, its nodes are converted (they may use any value of
 * the enclosing graphs), and out[0..nout) gets its outputs (nout must
 * equal its output count). `what` names the subgraph in messages. Returns
 * 0 or the import's error code. */
int onnx_import_subgraph(onnx_ctx *cx, const Onnx__GraphProto *gp, const char *what,
                         const kiln_value *in, int nin, kiln_value *out, int nout);

/* ---- the op table (onnx_ops.c) ---- */

/* Converts one ONNX node: `in` holds its inputs (an invalid value for an
 * omitted optional input), out receives nout values. Returns 0 or an error
 * code after onnx_error. */
typedef int (*onnx_convert_fn)(onnx_ctx *cx, const Onnx__NodeProto *n, const kiln_value *in,
                               int nin, kiln_value *out, int nout);

/* The converter for an op type at an opset, or NULL when unsupported. The
 * reason (static string) says why, when known. */
onnx_convert_fn onnx_find_op(const char *domain, const char *op_type, int opset,
                             const char **why);
/* Writes the supported-op table (markdown) to b, for docs/onnx.md. */
void onnx_op_table(ir_buf *b);

/* Attribute lookups on an ONNX node. */
const Onnx__AttributeProto *onnx_attr(const Onnx__NodeProto *n, const char *name);
int64_t onnx_attr_int(const Onnx__NodeProto *n, const char *name, int64_t def);
double onnx_attr_float(const Onnx__NodeProto *n, const char *name, double def);
/* A string attribute (def when absent) copied into buf; returns buf. */
const char *onnx_attr_string(const Onnx__NodeProto *n, const char *name, const char *def,
                             char *buf, size_t size);
/* The ints of an attribute; *count = -1 when absent. */
const int64_t *onnx_attr_ints(const Onnx__NodeProto *n, const char *name, int *count);


/* ---- converter helpers (onnx_ops.c), shared with onnx_compose.c ---- */

/* Input i is given (an omitted optional input is an invalid value). */
bool onnx_has(const kiln_value *in, int nin, int i);
/* The values of constant integer input i (at most max) into v; an error
 * naming the input (`what`) when it is computed at run time. */
int onnx_input_ints(onnx_ctx *cx, const kiln_value *in, int nin, int i, const char *what,
                    int64_t *v, int max, int *n);
/* A constant scalar input as a double (def when omitted). */
int onnx_input_scalar(onnx_ctx *cx, const kiln_value *in, int nin, int i, const char *what,
                      double def, double *out);
/* A new attribute bag (NULL after recording out of memory). */
kiln_attrs *onnx_bag(onnx_ctx *cx);
/* op with one int-list attribute; Reshape; Cast (x itself when of dtype
 * `to`); a scalar of x's dtype; a reduction (n = 0: every axis); Clip. */
kiln_value onnx_op_ints(onnx_ctx *cx, const char *op, kiln_value x, const char *name,
                        const int64_t *v, int n);
kiln_value onnx_reshape(onnx_ctx *cx, kiln_value x, const int64_t *dims, int n);
kiln_value onnx_cast(onnx_ctx *cx, kiln_value x, kiln_dtype to);
kiln_value onnx_scalar_like(onnx_ctx *cx, kiln_value x, double v);
kiln_value onnx_reduce(onnx_ctx *cx, const char *op, kiln_value x, const int64_t *axes, int n,
                       int keepdims);
kiln_value onnx_clip(onnx_ctx *cx, kiln_value x, double lo, double hi);
/* out[0] = v; the import's error code, or KILN_OK. */
int onnx_done(onnx_ctx *cx, kiln_value *out, kiln_value v);
/* The dtype of a node's statistics (its stash_type, default float); 0
 * after recording an error. */
kiln_dtype onnx_stash_dtype(onnx_ctx *cx, const Onnx__NodeProto *n);

/* The converters of onnx_compose.c. */
#define ONNX_CONV(name)                                                                    \
    int onnx_##name(onnx_ctx *cx, const Onnx__NodeProto *n, const kiln_value *in, int nin, \
                    kiln_value *out, int nout)
ONNX_CONV(cv_topk);
ONNX_CONV(cv_cum);
ONNX_CONV(cv_gather_elements);
ONNX_CONV(cv_scatter);
ONNX_CONV(cv_onehot);
ONNX_CONV(cv_hardmax);
ONNX_CONV(cv_trilu);
ONNX_CONV(cv_swish);
ONNX_CONV(cv_swiglu);
ONNX_CONV(cv_eyelike);
ONNX_CONV(cv_nllloss);
ONNX_CONV(cv_sce_loss);
ONNX_CONV(cv_attention);
ONNX_CONV(cv_rotary);
ONNX_CONV(cv_depth_space);
ONNX_CONV(cv_mvn);
ONNX_CONV(cv_groupnorm);
ONNX_CONV(cv_lrn);
ONNX_CONV(cv_gathernd);
ONNX_CONV(cv_quantize);
ONNX_CONV(cv_dequantize);
ONNX_CONV(cv_matmul_integer);
ONNX_CONV(cv_dynamic_quantize);
ONNX_CONV(cv_resize);
/* onnx_signal.c */
ONNX_CONV(cv_window);
ONNX_CONV(cv_mel_weight_matrix);
ONNX_CONV(cv_dft);
ONNX_CONV(cv_stft);
/* onnx_recurrent.c */
ONNX_CONV(cv_rnn);
ONNX_CONV(cv_gru);
ONNX_CONV(cv_lstm);
/* onnx_stateful.c */
ONNX_CONV(cv_causal_conv);
ONNX_CONV(cv_linear_attention);
/* onnx_spatial.c */
ONNX_CONV(cv_grid_sample);
ONNX_CONV(cv_affine_grid);
ONNX_CONV(cv_center_crop_pad);
ONNX_CONV(cv_col2im);

/* Window attributes of a Conv, ConvTranspose or pooling node, read by
 * onnx_ops.c. */
typedef struct {
    int sp;                   /* spatial dims: 1, 2 or 3 */
    int64_t k[3], s[3], d[3]; /* kernel, strides, dilations */
    int64_t pads[6];          /* begin..., end... (ONNX order) */
} onnx_win;

/* The lowerings of onnx_window.c; each returns the output value, or an
 * invalid value after recording the error. op is "MaxPool2D" or
 * "AveragePool2D"; x must have a static shape. */
kiln_value onnx_pool3d(onnx_ctx *cx, const char *op, kiln_value x, const onnx_win *w,
                       int64_t ceil_mode, int64_t count_include_pad);
kiln_value onnx_conv3d(onnx_ctx *cx, const Onnx__NodeProto *n, const kiln_value *in, int nin,
                       const onnx_win *w);
kiln_value onnx_conv_transpose3d(onnx_ctx *cx, const Onnx__NodeProto *n, const kiln_value *in,
                                 int nin, const onnx_win *w, const int64_t *outpad);
/* Window sums (avg 0) or averages counting the taps inside the input
 * (avg 1) or inside input and pads (avg 2), for any dilation. */
kiln_value onnx_window_sum(onnx_ctx *cx, kiln_value x, const onnx_win *w, bool ceil_mode, int avg);
/* onnx_control.c */
ONNX_CONV(cv_if);
ONNX_CONV(cv_scan);
ONNX_CONV(cv_loop);

#endif
