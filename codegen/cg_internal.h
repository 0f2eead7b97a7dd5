/*
 * cg_internal.h -- what the code generator's files share: the specialized
 * graph, the memory plan, the LLVM emission context and the lowering table.
 */
#ifndef KILN_CG_INTERNAL_H
#define KILN_CG_INTERNAL_H

#include <llvm-c/Core.h>

#include "cg.h"

/* ---- Specialization (specialize.c) ------------------------------------------
 * A copy of what one signature needs, as a fully static graph: fed values
 * become placeholders of the fed types (in input order), everything else is
 * re-inferred with concrete shapes. */
typedef struct {
    kiln_graph *g;          /* the specialized graph (owned) */
    int ninputs;            /* placeholders 0..ninputs-1 of g are the inputs */
    int *input_nodes;       /* per input: its placeholder node in g */
    int noutputs;
    kiln_value *outputs;    /* per fetch: its value in g */
    int ntargets;
    int *targets;           /* per target: its node in g */
    int nvars;
    int *var_src;           /* per variable slot: its node in the source graph */
    int *var_node;          /* per variable slot: its node in g */
    int *var_slot;          /* per node of g: its variable slot, or -1 */
    int *src_node;          /* per node of g: its node in the source graph, or -1 */
} cg_spec;

int cg_specialize(const kiln_graph *src, const cg_signature *sig, cg_spec *out,
                  kiln_status *status);
/* Runs the graph passes the options ask for over s->g and follows the
 * renumbering of its inputs, outputs, targets and variables. */
int cg_optimize(cg_spec *s, const cg_options *o, kiln_status *status);
void cg_spec_free(cg_spec *s);

/* ---- Memory plan (plan.c) --------------------------------------------------- */
typedef enum {
    CG_LOC_NONE = 0, /* not materialized (unused) */
    CG_LOC_INPUT,    /* inputs[index] */
    CG_LOC_OUTPUT,   /* outputs[index] */
    CG_LOC_VAR,      /* variables[index] */
    CG_LOC_CONST,    /* a constant global of the module */
    CG_LOC_ARENA     /* arena + offset */
} cg_loc_kind;

typedef struct {
    cg_loc_kind kind;
    int index;
    size_t offset;
    size_t bytes;
} cg_loc;

typedef struct {
    int nvalues;
    int *base;    /* per node of the specialized graph: index of its output 0 */
    cg_loc *loc;  /* per value */
    int nkernels;
    int *kernels; /* nodes that run, in order */
    /* Fetches that need a copy at the end: output i copies value copy_src[i]
     * (-1: produced in place). */
    int *copy_src;
    size_t arena_size;
} cg_plan;

int cg_plan_memory(const cg_spec *s, cg_plan *p, kiln_status *status);
void cg_plan_free(cg_plan *p);

/* ---- Emission (emit.c) ------------------------------------------------------ */
typedef struct cg_ctx {
    LLVMContextRef ctx;
    LLVMModuleRef mod;
    LLVMBuilderRef b;
    LLVMTypeRef t_void, t_i1, t_i8, t_i16, t_i32, t_i64, t_f16, t_f32, t_f64, t_ptr;
    const kiln_graph *g;
    int kernel_index;
    kiln_status *status;
} cg_ctx;

/* A new LLVM context, module and builder with the types filled in, and
 * their disposal (emit.c; gpu_emit.c uses them too). */
void cg_ctx_init(cg_ctx *c, kiln_status *status);
void cg_ctx_dispose(cg_ctx *c);

typedef struct {
    LLVMValueRef ptr;
    const ir_type *type;
} cg_operand;

/* A fused kernel (passes/fuse.c): its member nodes in order (the root
 * last) and the values from outside it that they read (its leaves). */
#define CG_MAX_LEAVES 64
typedef struct {
    int nmembers;
    int members[64];
    int nleaves;
    kiln_value leaves[CG_MAX_LEAVES];
} cg_group;

/* One kernel being lowered. The builder is positioned in the body of
 *   void kernel(ptr args, i64 begin, i64 end)
 * with the operands' pointers loaded. A lowering emits code for work items
 * [begin, end) of `work` items (it sets work, >= 1, and grain) and leaves the
 * builder in the block where the kernel returns. */
typedef struct cg_kernel {
    const ir_node *node;
    int ninputs, noutputs;
    cg_operand *in, *out;
    LLVMValueRef begin, end;
    LLVMValueRef err; /* i32* : store an error reason (CG_ERR_*) here */
    int64_t work, grain;
    /* A fused kernel: in[] are its leaves, out[] the root's outputs. NULL
     * for a single node, whose in[] are its inputs. */
    const cg_group *group;
    const kiln_graph *graph;
    LLVMValueRef args; /* the kernel's operand array (for epilogue callbacks) */
    LLVMValueRef run;  /* i64: the run index (see cg_rt.run) */
    int64_t src_node;  /* the kernel's node in the source graph (-1: none) */
} cg_kernel;

/* The counter a random op's stream uses in this run: run * C + its node in
 * the source graph, the same as the reference executor's. */
LLVMValueRef cg_run_counter(cg_ctx *c, cg_kernel *k);

/* Fused kernels (lower_elementwise.c, lower_matmul.c). */
int cg_lower_group(cg_ctx *c, cg_kernel *k);
int cg_lower_matmul_group(cg_ctx *c, cg_kernel *k);
int cg_lower_conv_group(cg_ctx *c, cg_kernel *k);
/* Emits `void epi(ptr args, i64 offset, i64 count)`: applies the group's
 * elementwise members to elements [offset, offset + count) of the root's
 * output, in place; `head` is the member whose value is the output's current
 * contents. Returns the function. */
LLVMValueRef cg_emit_epilogue(cg_ctx *c, cg_kernel *k, int head);
/* Emits `void pro(ptr args, i64 offset, i64 count, ptr dst)`: evaluates the
 * group's elementwise members except the root (the reduction consuming
 * them) at elements [offset, offset + count) of their result, into dst.
 * Returns the function, or NULL when the group has no such members. */
LLVMValueRef cg_emit_prologue(cg_ctx *c, cg_kernel *k);
/* The value of an elementwise kernel's expression (or with prologue, of a
 * reduction group's prologue) at flat element idx of its result, the
 * leaves loaded from k->in (lower_elementwise.c; used by gpu_emit.c).
 * NULL when some member has no elementwise lowering. */
LLVMValueRef cg_emit_expr_at(cg_ctx *c, const cg_kernel *k, bool prologue, LLVMValueRef idx);
/* Kernel kidx of a plan as a group: its members and leaves (emit.c). */
int cg_kernel_group(const cg_spec *s, const cg_plan *p, int kidx, cg_group *gr);
/* A reduction with a fused elementwise prologue (lower_reduce.c). */
int cg_lower_reduce_group(cg_ctx *c, cg_kernel *k);

typedef int (*cg_lower_fn)(cg_ctx *c, cg_kernel *k);

/* The lowering of each op, from lower_*.c (lower_todo.c for ops not yet
 * compiled). */
cg_lower_fn cg_lowering(ir_op op);
#define IR_OP(name, family) int cg_lower_##name(cg_ctx *c, cg_kernel *k);
#include "ops/ops.def"
#undef IR_OP

/* Emitting helpers. */
LLVMValueRef cg_i64(cg_ctx *c, int64_t v);
LLVMValueRef cg_i32(cg_ctx *c, int32_t v);
/* A pointer to a private constant array holding v. */
LLVMValueRef cg_const_i64s(cg_ctx *c, const int64_t *v, int n);
LLVMValueRef cg_const_f64s(cg_ctx *c, const double *v, int n);
/* Calls the library function `name` (declared on first use with i64/ptr/
 * double parameters as given by the argument values, returning void). */
LLVMValueRef cg_call_void(cg_ctx *c, const char *name, LLVMValueRef *args, int n);
/* A counted loop: for (i = from; i < to; i++). begin positions the builder
 * in the body; end closes it and positions the builder after it. */
typedef struct {
    LLVMBasicBlockRef head, body, exit;
    LLVMValueRef i, next_phi_src;
    LLVMBasicBlockRef pre;
} cg_loop;
void cg_loop_begin(cg_ctx *c, cg_loop *l, LLVMValueRef from, LLVMValueRef to, const char *name);
void cg_loop_end(cg_ctx *c, cg_loop *l);
/* Element type of a dtype in memory (i16 for f16/bf16, i8 for bool). */
LLVMTypeRef cg_mem_type(cg_ctx *c, kiln_dtype dt);
/* Type values are computed in: f32 for f16/bf16/f32, f64, the int types,
 * i8 (0/1) for bool. */
LLVMTypeRef cg_compute_type(cg_ctx *c, kiln_dtype dt);
/* Loads element idx of a buffer of dtype dt converted to its compute type,
 * and stores the reverse. */
LLVMValueRef cg_load_elem(cg_ctx *c, kiln_dtype dt, LLVMValueRef base, LLVMValueRef idx);
void cg_store_elem(cg_ctx *c, kiln_dtype dt, LLVMValueRef base, LLVMValueRef idx, LLVMValueRef v);
/* A call to an LLVM intrinsic or libm function on a float compute value. */
LLVMValueRef cg_math1(cg_ctx *c, const char *fn, LLVMValueRef x);
LLVMValueRef cg_math2(cg_ctx *c, const char *fn, LLVMValueRef x, LLVMValueRef y);
/* Records a lowering failure (UNIMPLEMENTED etc.) on the context. */
int cg_error(cg_ctx *c, const cg_kernel *k, int code, const char *fmt, ...) IR_PRINTF(4, 5);

/* ---- The kernel library (kernels.c): C kernels as embedded LLVM bitcode ----- */
/* Links the library into c->mod. */
int cg_link_kernel_library(cg_ctx *c);

#endif
