/* gpu_emit.c -- from a specialized graph and its memory plan to a PTX
 * module for NVIDIA GPUs through LLVM's NVPTX target, plus the cuBLAS
 * calls of its products (gpu_gemm.c). Each kernel of the plan becomes one
 * `.entry` whose parameters are its operands' device pointers and its
 * error word:
 * - elementwise ops and fused elementwise groups: one thread per output
 *   element in a grid-stride loop, the expression from lower_elementwise.c;
 * - reductions (ReduceSum/Mean/Max/Min/Prod, any axes, with a fused
 *   prologue): one block per output element, each thread accumulating a
 *   strided share, then a tree in shared memory;
 * - ArgMax/ArgMin: the same, over (value, index) pairs;
 * - Softmax/LogSoftmax over any axis: one block per row, three passes
 *   (max, sum of exponentials, write) with the same block tree;
 *   LayerNormalization the same way (mean, variance, write);
 * - data movement (Reshape, Flatten, Squeeze, Unsqueeze, Transpose,
 *   Expand, Slice, Tile, Concat, Split, Pad, Gather, GatherElements) and
 *   MaxPool2D/AveragePool2D, Assign: one thread per output element, its
 *   source computed from the constant shapes;
 * - MatMul and Gemm: cuBLAS calls (a library step), unfused from their
 *   epilogue, which stays a generated elementwise kernel; Gemm's C is a
 *   kernel after the call.
 * Constants become device globals of the module. Math functions are
 * CUDA's libdevice, linked in (gpu_module.c). Everything else is
 * KILN_ERR_UNIMPLEMENTED for now (docs/gpu.md). */
#include <stdio.h>
#include <string.h>

#include <llvm-c/Analysis.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassBuilder.h>

#include "cg_gpu.h"
#include "cg_gpu_internal.h"

#define GPU_MAX_GRID 4096      /* elementwise blocks; the loop strides over the rest */
#define GPU_MAX_ROWS (1 << 20) /* reduction blocks */

/* ---- NVPTX helpers ---- */

static LLVMValueRef sreg(cg_ctx *c, const char *which)
{
    char name[64];
    snprintf(name, sizeof name, "llvm.nvvm.read.ptx.sreg.%s", which);
    LLVMTypeRef ft = LLVMFunctionType(c->t_i32, NULL, 0, 0);
    LLVMValueRef fn = LLVMGetNamedFunction(c->mod, name);
    if (!fn) fn = LLVMAddFunction(c->mod, name, ft);
    return LLVMBuildZExt(c->b, LLVMBuildCall2(c->b, ft, fn, NULL, 0, ""), c->t_i64, which);
}

static void barrier(cg_ctx *c)
{
    LLVMTypeRef ft = LLVMFunctionType(c->t_void, NULL, 0, 0);
    LLVMValueRef fn = LLVMGetNamedFunction(c->mod, "llvm.nvvm.barrier0");
    if (!fn) fn = LLVMAddFunction(c->mod, "llvm.nvvm.barrier0", ft);
    LLVMBuildCall2(c->b, ft, fn, NULL, 0, "");
}

static void annotate(cg_ctx *c, LLVMValueRef fn, const char *key, int value)
{
    LLVMMetadataRef md[3] = {LLVMValueAsMetadata(fn),
                             LLVMMDStringInContext2(c->ctx, key, strlen(key)),
                             LLVMValueAsMetadata(cg_i32(c, value))};
    LLVMAddNamedMetadataOperand(c->mod, "nvvm.annotations",
                                LLVMMetadataAsValue(c->ctx, LLVMMDNodeInContext2(c->ctx, md, 3)));
}

/* for (i = from; i < to; i += step), i64 */
typedef struct {
    LLVMBasicBlockRef head, body, exit;
    LLVMValueRef i, step;
} gpu_loop;

static void loop_begin(cg_ctx *c, gpu_loop *l, LLVMValueRef from, LLVMValueRef to,
                       LLVMValueRef step, const char *name)
{
    LLVMValueRef fn = LLVMGetBasicBlockParent(LLVMGetInsertBlock(c->b));
    LLVMBasicBlockRef pre = LLVMGetInsertBlock(c->b);
    l->head = LLVMAppendBasicBlockInContext(c->ctx, fn, name);
    l->body = LLVMAppendBasicBlockInContext(c->ctx, fn, name);
    l->exit = LLVMAppendBasicBlockInContext(c->ctx, fn, name);
    l->step = step;
    LLVMBuildBr(c->b, l->head);
    LLVMPositionBuilderAtEnd(c->b, l->head);
    l->i = LLVMBuildPhi(c->b, c->t_i64, name);
    LLVMAddIncoming(l->i, &from, &pre, 1);
    LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, l->i, to, ""), l->body, l->exit);
    LLVMPositionBuilderAtEnd(c->b, l->body);
}

static void loop_end(cg_ctx *c, gpu_loop *l)
{
    LLVMValueRef next = LLVMBuildNSWAdd(c->b, l->i, l->step, "");
    LLVMBasicBlockRef latch = LLVMGetInsertBlock(c->b);
    LLVMAddIncoming(l->i, &next, &latch, 1);
    LLVMBuildBr(c->b, l->head);
    LLVMPositionBuilderAtEnd(c->b, l->exit);
}

/* A running value carried through a loop: an alloca (mem2reg makes it a
 * register). */
static LLVMValueRef var_new(cg_ctx *c, LLVMTypeRef t, LLVMValueRef init)
{
    LLVMBasicBlockRef cur = LLVMGetInsertBlock(c->b);
    LLVMValueRef fn = LLVMGetBasicBlockParent(cur);
    LLVMBasicBlockRef entry = LLVMGetEntryBasicBlock(fn);
    LLVMValueRef first = LLVMGetFirstInstruction(entry);
    if (first)
        LLVMPositionBuilderBefore(c->b, first);
    else
        LLVMPositionBuilderAtEnd(c->b, entry);
    LLVMValueRef v = LLVMBuildAlloca(c->b, t, "acc");
    LLVMPositionBuilderAtEnd(c->b, cur);
    LLVMBuildStore(c->b, init, v);
    return v;
}

/* ---- combining values: the reductions' operators ---- */

typedef enum { RED_SUM, RED_PROD, RED_MAX, RED_MIN } red_op;

static bool is_unsigned_dt(kiln_dtype dt) { return !ir_dtype_is_signed(dt); }

static LLVMValueRef combine(cg_ctx *c, red_op op, kiln_dtype dt, LLVMValueRef a, LLVMValueRef b)
{
    bool fl = ir_dtype_is_float(dt), u = is_unsigned_dt(dt);
    switch (op) {
    case RED_SUM:
        return fl ? LLVMBuildFAdd(c->b, a, b, "") : LLVMBuildAdd(c->b, a, b, "");
    case RED_PROD:
        return fl ? LLVMBuildFMul(c->b, a, b, "") : LLVMBuildMul(c->b, a, b, "");
    case RED_MAX:
        if (fl) return cg_math2(c, "maximum", a, b);
        return LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, u ? LLVMIntUGT : LLVMIntSGT, a, b, ""), a,
                               b, "");
    case RED_MIN:
        if (fl) return cg_math2(c, "minimum", a, b);
        return LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, u ? LLVMIntULT : LLVMIntSLT, a, b, ""), a,
                               b, "");
    }
    return a;
}

static LLVMValueRef identity(cg_ctx *c, red_op op, kiln_dtype dt)
{
    LLVMTypeRef t = cg_compute_type(c, dt);
    bool fl = ir_dtype_is_float(dt), u = is_unsigned_dt(dt);
    unsigned bits = fl ? 0 : LLVMGetIntTypeWidth(t);
    switch (op) {
    case RED_SUM:
        return fl ? LLVMConstReal(t, 0) : LLVMConstInt(t, 0, 0);
    case RED_PROD:
        return fl ? LLVMConstReal(t, 1) : LLVMConstInt(t, 1, 0);
    case RED_MAX:
        if (fl) return LLVMConstReal(t, -__builtin_inf());
        return u ? LLVMConstInt(t, 0, 0) : LLVMConstInt(t, 1ull << (bits - 1), 0); /* the minimum */
    case RED_MIN:
        if (fl) return LLVMConstReal(t, __builtin_inf());
        return u ? LLVMConstAllOnes(t) : LLVMConstInt(t, (1ull << (bits - 1)) - 1, 0);
    }
    return NULL;
}

/* Combines v across the block with a tree in shared memory; every thread
 * gets the result. The block must have exactly CG_GPU_BLOCK threads (the
 * kernel's recorded launch shape), and every one must reach this. */
static LLVMValueRef block_reduce(cg_ctx *c, LLVMValueRef smem, red_op op, kiln_dtype dt,
                                 LLVMValueRef tid, LLVMValueRef v)
{
    LLVMTypeRef t = LLVMTypeOf(v);
    LLVMValueRef fn = LLVMGetBasicBlockParent(LLVMGetInsertBlock(c->b));
    LLVMValueRef zero = cg_i64(c, 0);
    LLVMValueRef idx[2] = {zero, tid};
    LLVMValueRef mine = LLVMBuildGEP2(c->b, LLVMArrayType2(t, CG_GPU_BLOCK), smem, idx, 2, "");
    LLVMBuildStore(c->b, v, mine);
    barrier(c);
    for (int s = CG_GPU_BLOCK / 2; s > 0; s /= 2) {
        LLVMBasicBlockRef add = LLVMAppendBasicBlockInContext(c->ctx, fn, "tree");
        LLVMBasicBlockRef next = LLVMAppendBasicBlockInContext(c->ctx, fn, "tree_next");
        LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntULT, tid, cg_i64(c, s), ""), add, next);
        LLVMPositionBuilderAtEnd(c->b, add);
        LLVMValueRef oidx[2] = {zero, LLVMBuildAdd(c->b, tid, cg_i64(c, s), "")};
        LLVMValueRef other =
            LLVMBuildGEP2(c->b, LLVMArrayType2(t, CG_GPU_BLOCK), smem, oidx, 2, "");
        LLVMValueRef r = combine(c, op, dt, LLVMBuildLoad2(c->b, t, mine, ""),
                                 LLVMBuildLoad2(c->b, t, other, ""));
        LLVMBuildStore(c->b, r, mine);
        LLVMBuildBr(c->b, next);
        LLVMPositionBuilderAtEnd(c->b, next);
        barrier(c);
    }
    LLVMValueRef idx0[2] = {zero, zero};
    LLVMValueRef r = LLVMBuildLoad2(
        c->b, t, LLVMBuildGEP2(c->b, LLVMArrayType2(t, CG_GPU_BLOCK), smem, idx0, 2, ""), "");
    barrier(c); /* the buffer is reused by the next reduction */
    return r;
}

static LLVMValueRef shared_buffer(cg_ctx *c, LLVMTypeRef t, const char *what)
{
    char name[48];
    snprintf(name, sizeof name, "kiln_smem%s_%d", what, c->kernel_index);
    LLVMTypeRef at = LLVMArrayType2(t, CG_GPU_BLOCK);
    LLVMValueRef gv = LLVMAddGlobalInAddressSpace(c->mod, at, name, 3);
    LLVMSetInitializer(gv, LLVMGetUndef(at));
    LLVMSetLinkage(gv, LLVMInternalLinkage);
    LLVMSetAlignment(gv, 8);
    return gv;
}

/* ---- kernels ---- */

typedef struct {
    cg_kernel k;
    const ir_node *root;
    bool prologue; /* a fused group: the root reads its prologue's value */
    unsigned grid, block;
} gpu_kernel;

/* The value the root reads at element off of its (first) input. */
static LLVMValueRef root_input(cg_ctx *c, gpu_kernel *gk, LLVMValueRef off)
{
    if (gk->prologue) return cg_emit_expr_at(c, &gk->k, true, off);
    return cg_load_elem(c, gk->k.in[0].type->dtype, gk->k.in[0].ptr, off);
}

static unsigned clamp_grid(int64_t blocks, int64_t max)
{
    if (blocks < 1) return 1;
    return (unsigned)(blocks < max ? blocks : max);
}

static int lower_elementwise(cg_ctx *c, gpu_kernel *gk)
{
    cg_kernel *k = &gk->k;
    const ir_type *out = k->out[0].type;
    /* Cast to or from a storage dtype calls the CPU kernel library */
    for (int m = 0; m < (k->group ? k->group->nmembers : 1); m++) {
        const ir_node *mn = k->group ? &k->graph->nodes[k->group->members[m]] : k->node;
        if (mn->op != IR_OP_Cast) continue;
        kiln_dtype from = ir_value_type(k->graph, mn->inputs[0])->dtype, to = mn->outputs[0].dtype;
        if (ir_dtype_is_storage(from) || ir_dtype_is_storage(to))
            return cg_error(c, k, KILN_ERR_UNIMPLEMENTED,
                            "the CUDA backend cannot Cast %s to %s yet", kiln_dtype_name(from),
                            kiln_dtype_name(to));
    }
    int64_t n = ir_shape_numel(out->rank, out->dims);
    gk->block = CG_GPU_BLOCK;
    gk->grid = clamp_grid((n + CG_GPU_BLOCK - 1) / CG_GPU_BLOCK, GPU_MAX_GRID);
    LLVMValueRef first = LLVMBuildAdd(
        c->b, LLVMBuildMul(c->b, sreg(c, "ctaid.x"), sreg(c, "ntid.x"), ""), sreg(c, "tid.x"), "");
    LLVMValueRef step = LLVMBuildMul(c->b, sreg(c, "nctaid.x"), sreg(c, "ntid.x"), "");
    gpu_loop l;
    loop_begin(c, &l, first, cg_i64(c, n), step, "i");
    LLVMValueRef v = cg_emit_expr_at(c, k, false, l.i);
    if (!v) {
        /* the first member the expression evaluator does not know */
        const ir_node *bad = k->node;
        int nm = k->group ? k->group->nmembers : 1;
        for (int m = 0; m < nm; m++) {
            const ir_node *mn = k->group ? &k->graph->nodes[k->group->members[m]] : k->node;
            if (!(ir_op_def(mn->op)->flags & IR_OPF_ELEMENTWISE) || mn->op == IR_OP_Assign) {
                bad = mn;
                break;
            }
        }
        return cg_error(c, k, KILN_ERR_UNIMPLEMENTED, "the CUDA backend cannot compile %s yet",
                        ir_op_def(bad->op)->name);
    }
    cg_store_elem(c, out->dtype, k->out[0].ptr, l.i, v);
    loop_end(c, &l);
    return 0;
}

static int reduce_kind(ir_op op, red_op *r)
{
    switch (op) {
    case IR_OP_ReduceSum:
    case IR_OP_ReduceMean:
        *r = RED_SUM;
        return 0;
    case IR_OP_ReduceProd:
        *r = RED_PROD;
        return 0;
    case IR_OP_ReduceMax:
        *r = RED_MAX;
        return 0;
    case IR_OP_ReduceMin:
        *r = RED_MIN;
        return 0;
    default:
        return -1;
    }
}

/* offset = sum over dims d of ((i / inner_d) % dims_d) * strides_d */
static LLVMValueRef decompose(cg_ctx *c, LLVMValueRef i, int n, const int64_t *dims,
                              const int64_t *strides)
{
    LLVMValueRef off = cg_i64(c, 0), rem = i;
    for (int d = n - 1; d >= 0; d--) {
        LLVMValueRef at = d ? LLVMBuildURem(c->b, rem, cg_i64(c, dims[d]), "") : rem;
        if (d) rem = LLVMBuildUDiv(c->b, rem, cg_i64(c, dims[d]), "");
        if (strides[d])
            off = LLVMBuildAdd(c->b, off, LLVMBuildMul(c->b, at, cg_i64(c, strides[d]), ""), "");
    }
    return off;
}

static int lower_reduce(cg_ctx *c, gpu_kernel *gk)
{
    cg_kernel *k = &gk->k;
    const ir_node *n = gk->root;
    red_op op = RED_SUM;
    reduce_kind(n->op, &op);
    const ir_type *x = ir_value_type(k->graph, n->inputs[0]);
    const ir_type *out = k->out[0].type;
    bool reduced[IR_MAX_RANK] = {false};
    int na = 0;
    const int64_t *axes = ir_node_ints(n, "axes", &na);
    for (int d = 0; d < x->rank; d++) reduced[d] = !axes || na == 0;
    for (int i = 0; axes && i < na; i++) {
        int ax;
        if (!ir_norm_axis(axes[i], x->rank, &ax))
            return cg_error(c, k, KILN_ERR_INTERNAL, "invalid axes");
        reduced[ax] = true;
    }
    /* kept dims and reduced dims, each with its input strides */
    int64_t kdims[IR_MAX_RANK], kstr[IR_MAX_RANK], rdims[IR_MAX_RANK], rstr[IR_MAX_RANK];
    int nk = 0, nr = 0;
    int64_t stride = 1, nout = 1, nred = 1;
    int64_t st[IR_MAX_RANK];
    for (int d = x->rank - 1; d >= 0; d--) {
        st[d] = stride;
        stride *= x->dims[d];
    }
    for (int d = 0; d < x->rank; d++) {
        if (reduced[d]) {
            rdims[nr] = x->dims[d];
            rstr[nr++] = st[d];
            nred *= x->dims[d];
        } else {
            kdims[nk] = x->dims[d];
            kstr[nk++] = st[d];
            nout *= x->dims[d];
        }
    }
    kiln_dtype dt = x->dtype;
    LLVMTypeRef t = cg_compute_type(c, dt);
    gk->block = CG_GPU_BLOCK;
    gk->grid = clamp_grid(nout, GPU_MAX_ROWS);
    /* an empty axis (nred == 0) leaves each output at the identity: -inf
     * (the lowest integer) for Max, +inf for Min, as ONNX opset 18 wants */
    LLVMValueRef smem = shared_buffer(c, t, "");
    LLVMValueRef tid = sreg(c, "tid.x"), ntid = sreg(c, "ntid.x");
    gpu_loop rows;
    loop_begin(c, &rows, sreg(c, "ctaid.x"), cg_i64(c, nout), sreg(c, "nctaid.x"), "row");
    LLVMValueRef base = decompose(c, rows.i, nk, kdims, kstr);
    LLVMValueRef acc = var_new(c, t, identity(c, op, dt));
    gpu_loop r;
    loop_begin(c, &r, tid, cg_i64(c, nred), ntid, "r");
    LLVMValueRef off = LLVMBuildAdd(c->b, base, decompose(c, r.i, nr, rdims, rstr), "");
    LLVMValueRef v = root_input(c, gk, off);
    if (!v)
        return cg_error(c, k, KILN_ERR_UNIMPLEMENTED,
                        "the CUDA backend cannot compile this fused prologue yet");
    LLVMBuildStore(c->b, combine(c, op, dt, LLVMBuildLoad2(c->b, t, acc, ""), v), acc);
    loop_end(c, &r);
    LLVMValueRef total = block_reduce(c, smem, op, dt, tid, LLVMBuildLoad2(c->b, t, acc, ""));
    if (n->op == IR_OP_ReduceMean) {
        if (ir_dtype_is_float(dt))
            total = LLVMBuildFDiv(c->b, total, LLVMConstReal(t, (double)nred), "");
        else
            total =
                nred ? LLVMBuildSDiv(c->b, total, LLVMConstInt(t, (unsigned long long)nred, 1), "")
                     : total;
    }
    LLVMValueRef fn = LLVMGetBasicBlockParent(LLVMGetInsertBlock(c->b));
    LLVMBasicBlockRef st0 = LLVMAppendBasicBlockInContext(c->ctx, fn, "store");
    LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(c->ctx, fn, "stored");
    LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntEQ, tid, cg_i64(c, 0), ""), st0, done);
    LLVMPositionBuilderAtEnd(c->b, st0);
    if (cg_compute_type(c, out->dtype) != t)
        return cg_error(c, k, KILN_ERR_UNIMPLEMENTED,
                        "the CUDA backend cannot reduce into another dtype yet");
    cg_store_elem(c, out->dtype, k->out[0].ptr, rows.i, total);
    LLVMBuildBr(c->b, done);
    LLVMPositionBuilderAtEnd(c->b, done);
    loop_end(c, &rows);
    return 0;
}

/* ArgMax/ArgMin: is (vb, ib) a better candidate than (va, ia)? The order
 * of the reference kernel, made symmetric so a tree can use it: an index
 * < 0 (no element) always loses; NaN beats any number; a larger (ArgMax)
 * or smaller (ArgMin) value wins; ties go to the first index, or with
 * select_last_index to the last. */
static LLVMValueRef arg_better(cg_ctx *c, bool is_max, bool last, kiln_dtype dt, LLVMValueRef va,
                               LLVMValueRef ia, LLVMValueRef vb, LLVMValueRef ib)
{
    LLVMValueRef zero = cg_i64(c, 0);
    LLVMValueRef t = LLVMConstInt(c->t_i1, 1, 0), f = LLVMConstInt(c->t_i1, 0, 0);
    LLVMValueRef idx_pref = LLVMBuildICmp(c->b, last ? LLVMIntSGT : LLVMIntSLT, ib, ia, "");
    LLVMValueRef r;
    if (ir_dtype_is_float(dt)) {
        LLVMValueRef wins = LLVMBuildFCmp(c->b, is_max ? LLVMRealOGT : LLVMRealOLT, vb, va, "");
        LLVMValueRef tie = LLVMBuildFCmp(c->b, LLVMRealOEQ, vb, va, "");
        r = LLVMBuildOr(c->b, wins, LLVMBuildAnd(c->b, tie, idx_pref, ""), "");
        LLVMValueRef an = LLVMBuildFCmp(c->b, LLVMRealUNO, va, va, "");
        LLVMValueRef bn = LLVMBuildFCmp(c->b, LLVMRealUNO, vb, vb, "");
        r = LLVMBuildSelect(c->b, bn, LLVMBuildSelect(c->b, an, idx_pref, t, ""),
                            LLVMBuildSelect(c->b, an, f, r, ""), "");
    } else {
        bool u = is_unsigned_dt(dt);
        LLVMIntPredicate gt =
            is_max ? (u ? LLVMIntUGT : LLVMIntSGT) : (u ? LLVMIntULT : LLVMIntSLT);
        LLVMValueRef wins = LLVMBuildICmp(c->b, gt, vb, va, "");
        LLVMValueRef tie = LLVMBuildICmp(c->b, LLVMIntEQ, vb, va, "");
        r = LLVMBuildOr(c->b, wins, LLVMBuildAnd(c->b, tie, idx_pref, ""), "");
    }
    LLVMValueRef a_empty = LLVMBuildICmp(c->b, LLVMIntSLT, ia, zero, "");
    LLVMValueRef b_empty = LLVMBuildICmp(c->b, LLVMIntSLT, ib, zero, "");
    return LLVMBuildSelect(c->b, b_empty, f, LLVMBuildSelect(c->b, a_empty, t, r, ""), "");
}

/* Moves (v, i) into the running pair at (pv, pi) when it is better. */
static void arg_take(cg_ctx *c, bool is_max, bool last, kiln_dtype dt, LLVMTypeRef t,
                     LLVMValueRef pv, LLVMValueRef pi, LLVMValueRef v, LLVMValueRef i)
{
    LLVMValueRef cv = LLVMBuildLoad2(c->b, t, pv, ""), ci = LLVMBuildLoad2(c->b, c->t_i64, pi, "");
    LLVMValueRef take = arg_better(c, is_max, last, dt, cv, ci, v, i);
    LLVMBuildStore(c->b, LLVMBuildSelect(c->b, take, v, cv, ""), pv);
    LLVMBuildStore(c->b, LLVMBuildSelect(c->b, take, i, ci, ""), pi);
}

/* ArgMax, ArgMin along one axis: one block per output element, as the
 * reductions, carrying (value, index) pairs through two shared arrays. */
static int lower_arg(cg_ctx *c, gpu_kernel *gk)
{
    cg_kernel *k = &gk->k;
    const ir_node *n = gk->root;
    const ir_type *x = ir_value_type(k->graph, n->inputs[0]);
    bool is_max = n->op == IR_OP_ArgMax, last = ir_node_int(n, "select_last_index") != 0;
    int ax;
    if (!ir_norm_axis(ir_node_int(n, "axis"), x->rank, &ax))
        return cg_error(c, k, KILN_ERR_INTERNAL, "invalid axis");
    int64_t kdims[IR_MAX_RANK], kstr[IR_MAX_RANK], st[IR_MAX_RANK] = {0}, stride = 1, nout = 1;
    int nk = 0;
    for (int d = x->rank - 1; d >= 0; d--) {
        st[d] = stride;
        stride *= x->dims[d];
    }
    for (int d = 0; d < x->rank; d++) {
        if (d == ax) continue;
        kdims[nk] = x->dims[d];
        kstr[nk++] = st[d];
        nout *= x->dims[d];
    }
    int64_t len = x->dims[ax], step = st[ax];
    gk->block = CG_GPU_BLOCK;
    gk->grid = clamp_grid(nout, GPU_MAX_ROWS);
    if (len == 0) {
        LLVMBuildStore(c->b, cg_i32(c, CG_ERR_EMPTY), k->err);
        gk->grid = gk->block = 1;
        return 0;
    }
    kiln_dtype dt = x->dtype;
    LLVMTypeRef t = cg_compute_type(c, dt);
    LLVMValueRef sv = shared_buffer(c, t, "v"), si = shared_buffer(c, c->t_i64, "i");
    LLVMTypeRef at = LLVMArrayType2(t, CG_GPU_BLOCK), ai = LLVMArrayType2(c->t_i64, CG_GPU_BLOCK);
    LLVMValueRef tid = sreg(c, "tid.x"), ntid = sreg(c, "ntid.x"), zero = cg_i64(c, 0);
    LLVMValueRef fn = LLVMGetBasicBlockParent(LLVMGetInsertBlock(c->b));
    gpu_loop rows;
    loop_begin(c, &rows, sreg(c, "ctaid.x"), cg_i64(c, nout), sreg(c, "nctaid.x"), "row");
    LLVMValueRef base = decompose(c, rows.i, nk, kdims, kstr);
    LLVMValueRef bv = var_new(c, t, LLVMConstNull(t)), bi = var_new(c, c->t_i64, cg_i64(c, -1));
    gpu_loop r;
    loop_begin(c, &r, tid, cg_i64(c, len), ntid, "r");
    LLVMValueRef v = root_input(
        c, gk, LLVMBuildAdd(c->b, base, LLVMBuildMul(c->b, r.i, cg_i64(c, step), ""), ""));
    if (!v)
        return cg_error(c, k, KILN_ERR_UNIMPLEMENTED,
                        "the CUDA backend cannot compile this fused prologue yet");
    arg_take(c, is_max, last, dt, t, bv, bi, v, r.i);
    loop_end(c, &r);
    /* the block tree over (value, index) pairs */
    LLVMValueRef mine[2] = {zero, tid};
    LLVMValueRef mv = LLVMBuildGEP2(c->b, at, sv, mine, 2, ""),
                 mi = LLVMBuildGEP2(c->b, ai, si, mine, 2, "");
    LLVMBuildStore(c->b, LLVMBuildLoad2(c->b, t, bv, ""), mv);
    LLVMBuildStore(c->b, LLVMBuildLoad2(c->b, c->t_i64, bi, ""), mi);
    barrier(c);
    for (int s = CG_GPU_BLOCK / 2; s > 0; s /= 2) {
        LLVMBasicBlockRef add = LLVMAppendBasicBlockInContext(c->ctx, fn, "tree");
        LLVMBasicBlockRef next = LLVMAppendBasicBlockInContext(c->ctx, fn, "tree_next");
        LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntULT, tid, cg_i64(c, s), ""), add, next);
        LLVMPositionBuilderAtEnd(c->b, add);
        LLVMValueRef other[2] = {zero, LLVMBuildAdd(c->b, tid, cg_i64(c, s), "")};
        LLVMValueRef ov = LLVMBuildLoad2(c->b, t, LLVMBuildGEP2(c->b, at, sv, other, 2, ""), "");
        LLVMValueRef oi =
            LLVMBuildLoad2(c->b, c->t_i64, LLVMBuildGEP2(c->b, ai, si, other, 2, ""), "");
        arg_take(c, is_max, last, dt, t, mv, mi, ov, oi);
        LLVMBuildBr(c->b, next);
        LLVMPositionBuilderAtEnd(c->b, next);
        barrier(c);
    }
    LLVMBasicBlockRef st0 = LLVMAppendBasicBlockInContext(c->ctx, fn, "store");
    LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(c->ctx, fn, "stored");
    LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntEQ, tid, zero, ""), st0, done);
    LLVMPositionBuilderAtEnd(c->b, st0);
    LLVMValueRef first[2] = {zero, zero};
    LLVMValueRef best =
        LLVMBuildLoad2(c->b, c->t_i64, LLVMBuildGEP2(c->b, ai, si, first, 2, ""), "");
    cg_store_elem(c, k->out[0].type->dtype, k->out[0].ptr, rows.i, best);
    LLVMBuildBr(c->b, done);
    LLVMPositionBuilderAtEnd(c->b, done);
    barrier(c); /* the arrays are reused by the next row */
    loop_end(c, &rows);
    return 0;
}

static int lower_softmax(cg_ctx *c, gpu_kernel *gk)
{
    cg_kernel *k = &gk->k;
    const ir_node *n = gk->root;
    const ir_type *x = ir_value_type(k->graph, n->inputs[0]);
    int ax;
    if (!ir_norm_axis(ir_node_int(n, "axis"), x->rank, &ax))
        return cg_error(c, k, KILN_ERR_INTERNAL, "invalid axis");
    if (!ir_dtype_is_float(x->dtype))
        return cg_error(c, k, KILN_ERR_UNIMPLEMENTED, "the CUDA backend cannot compile %s of %s",
                        ir_op_def(n->op)->name, kiln_dtype_name(x->dtype));
    /* rows are the (outer, inner) pairs around the axis; a row's elements
     * lie `inner` apart */
    int64_t len = x->rank ? x->dims[ax] : 1, inner = 1;
    for (int d = ax + 1; d < x->rank; d++) inner *= x->dims[d];
    int64_t nrows = len ? ir_shape_numel(x->rank, x->dims) / len : 0;
    kiln_dtype dt = x->dtype;
    LLVMTypeRef t = cg_compute_type(c, dt);
    gk->block = CG_GPU_BLOCK;
    gk->grid = clamp_grid(nrows, GPU_MAX_ROWS);
    LLVMValueRef smem = shared_buffer(c, t, "");
    LLVMValueRef tid = sreg(c, "tid.x"), ntid = sreg(c, "ntid.x");
    gpu_loop rows;
    loop_begin(c, &rows, sreg(c, "ctaid.x"), cg_i64(c, nrows), sreg(c, "nctaid.x"), "row");
    LLVMValueRef base =
        inner == 1
            ? LLVMBuildMul(c->b, rows.i, cg_i64(c, len), "")
            : LLVMBuildAdd(c->b,
                           LLVMBuildMul(c->b, LLVMBuildUDiv(c->b, rows.i, cg_i64(c, inner), ""),
                                        cg_i64(c, len * inner), ""),
                           LLVMBuildURem(c->b, rows.i, cg_i64(c, inner), ""), "");
    LLVMValueRef cinner = cg_i64(c, inner);
    /* pass 1: the row's maximum */
    LLVMValueRef acc = var_new(c, t, identity(c, RED_MAX, dt));
    gpu_loop j;
    loop_begin(c, &j, tid, cg_i64(c, len), ntid, "j");
    LLVMValueRef v =
        root_input(c, gk, LLVMBuildAdd(c->b, base, LLVMBuildMul(c->b, j.i, cinner, ""), ""));
    if (!v)
        return cg_error(c, k, KILN_ERR_UNIMPLEMENTED,
                        "the CUDA backend cannot compile this fused prologue yet");
    LLVMBuildStore(c->b, combine(c, RED_MAX, dt, LLVMBuildLoad2(c->b, t, acc, ""), v), acc);
    loop_end(c, &j);
    LLVMValueRef m = block_reduce(c, smem, RED_MAX, dt, tid, LLVMBuildLoad2(c->b, t, acc, ""));
    /* pass 2: the sum of exp(x - max) */
    LLVMValueRef sum = var_new(c, t, LLVMConstReal(t, 0));
    loop_begin(c, &j, tid, cg_i64(c, len), ntid, "j");
    v = root_input(c, gk, LLVMBuildAdd(c->b, base, LLVMBuildMul(c->b, j.i, cinner, ""), ""));
    LLVMValueRef e = cg_math1(c, "exp", LLVMBuildFSub(c->b, v, m, ""));
    LLVMBuildStore(c->b, LLVMBuildFAdd(c->b, LLVMBuildLoad2(c->b, t, sum, ""), e, ""), sum);
    loop_end(c, &j);
    LLVMValueRef s = block_reduce(c, smem, RED_SUM, dt, tid, LLVMBuildLoad2(c->b, t, sum, ""));
    /* pass 3: the outputs */
    LLVMValueRef logs = n->op == IR_OP_LogSoftmax ? cg_math1(c, "log", s) : NULL;
    loop_begin(c, &j, tid, cg_i64(c, len), ntid, "j");
    LLVMValueRef at = LLVMBuildAdd(c->b, base, LLVMBuildMul(c->b, j.i, cinner, ""), "");
    v = LLVMBuildFSub(c->b, root_input(c, gk, at), m, "");
    LLVMValueRef y =
        logs ? LLVMBuildFSub(c->b, v, logs, "") : LLVMBuildFDiv(c->b, cg_math1(c, "exp", v), s, "");
    cg_store_elem(c, k->out[0].type->dtype, k->out[0].ptr, at, y);
    loop_end(c, &j);
    loop_end(c, &rows);
    return 0;
}

/* LayerNormalization over dims [axis, rank): one block per row (as
 * Softmax), three passes: the mean, the variance (of x - mean, as the
 * reference), then (x - mean) / sqrt(var + epsilon) * scale + bias with
 * scale and bias read broadcast over the normalized dims. Accumulates in
 * the compute type. */
static int lower_layernorm(cg_ctx *c, gpu_kernel *gk)
{
    cg_kernel *k = &gk->k;
    const ir_node *n = gk->root;
    const ir_type *x = k->in[0].type, *sc = k->in[1].type;
    const ir_type *bi = k->ninputs > 2 ? k->in[2].type : NULL;
    int ax;
    if (!ir_norm_axis(ir_node_int(n, "axis"), x->rank, &ax))
        return cg_error(c, k, KILN_ERR_INTERNAL, "invalid axis");
    int nr = x->rank - ax;
    int64_t len = ir_shape_numel(nr, x->dims + ax);
    int64_t nrows = len ? ir_shape_numel(x->rank, x->dims) / len : 0;
    int64_t sst[IR_MAX_RANK], bst[IR_MAX_RANK];
    ir_broadcast_strides(sc->rank, sc->dims, nr, sst);
    if (bi) ir_broadcast_strides(bi->rank, bi->dims, nr, bst);
    kiln_dtype dt = x->dtype;
    LLVMTypeRef t = cg_compute_type(c, dt);
    gk->block = CG_GPU_BLOCK;
    gk->grid = clamp_grid(nrows, GPU_MAX_ROWS);
    LLVMValueRef smem = shared_buffer(c, t, "");
    LLVMValueRef tid = sreg(c, "tid.x"), ntid = sreg(c, "ntid.x");
    gpu_loop rows, j;
    loop_begin(c, &rows, sreg(c, "ctaid.x"), cg_i64(c, nrows), sreg(c, "nctaid.x"), "row");
    LLVMValueRef base = LLVMBuildMul(c->b, rows.i, cg_i64(c, len), "");
    LLVMValueRef cnt = LLVMConstReal(t, (double)len);
    /* pass 1: the mean */
    LLVMValueRef acc = var_new(c, t, LLVMConstReal(t, 0));
    loop_begin(c, &j, tid, cg_i64(c, len), ntid, "j");
    LLVMValueRef v = cg_load_elem(c, dt, k->in[0].ptr, LLVMBuildAdd(c->b, base, j.i, ""));
    LLVMBuildStore(c->b, LLVMBuildFAdd(c->b, LLVMBuildLoad2(c->b, t, acc, ""), v, ""), acc);
    loop_end(c, &j);
    LLVMValueRef mean = LLVMBuildFDiv(
        c->b, block_reduce(c, smem, RED_SUM, dt, tid, LLVMBuildLoad2(c->b, t, acc, "")), cnt, "");
    /* pass 2: the variance */
    LLVMValueRef acc2 = var_new(c, t, LLVMConstReal(t, 0));
    loop_begin(c, &j, tid, cg_i64(c, len), ntid, "j");
    v = LLVMBuildFSub(c->b, cg_load_elem(c, dt, k->in[0].ptr, LLVMBuildAdd(c->b, base, j.i, "")),
                      mean, "");
    LLVMBuildStore(
        c->b,
        LLVMBuildFAdd(c->b, LLVMBuildLoad2(c->b, t, acc2, ""), LLVMBuildFMul(c->b, v, v, ""), ""),
        acc2);
    loop_end(c, &j);
    LLVMValueRef var = LLVMBuildFDiv(
        c->b, block_reduce(c, smem, RED_SUM, dt, tid, LLVMBuildLoad2(c->b, t, acc2, "")), cnt, "");
    LLVMValueRef inv = LLVMBuildFDiv(
        c->b, LLVMConstReal(t, 1),
        cg_math1(c, "sqrt",
                 LLVMBuildFAdd(c->b, var, LLVMConstReal(t, ir_node_float(n, "epsilon")), "")),
        "");
    /* pass 3: the outputs */
    loop_begin(c, &j, tid, cg_i64(c, len), ntid, "j");
    LLVMValueRef at = LLVMBuildAdd(c->b, base, j.i, "");
    v = LLVMBuildFMul(c->b, LLVMBuildFSub(c->b, cg_load_elem(c, dt, k->in[0].ptr, at), mean, ""),
                      inv, "");
    v = LLVMBuildFMul(
        c->b, v, cg_load_elem(c, sc->dtype, k->in[1].ptr, decompose(c, j.i, nr, x->dims + ax, sst)),
        "");
    if (bi)
        v = LLVMBuildFAdd(
            c->b, v,
            cg_load_elem(c, bi->dtype, k->in[2].ptr, decompose(c, j.i, nr, x->dims + ax, bst)), "");
    cg_store_elem(c, k->out[0].type->dtype, k->out[0].ptr, at, v);
    loop_end(c, &j);
    loop_end(c, &rows);
    return 0;
}

static bool is_copy_op(ir_op op)
{
    return op == IR_OP_Reshape || op == IR_OP_Flatten || op == IR_OP_Squeeze ||
           op == IR_OP_Unsqueeze || op == IR_OP_Transpose || op == IR_OP_Expand ||
           op == IR_OP_Slice || op == IR_OP_Tile;
}

/* Elements are moved as raw bits: an integer of the dtype's size. */
static LLVMTypeRef bits_type(cg_ctx *c, kiln_dtype dt)
{
    return LLVMIntTypeInContext(c->ctx, 8 * (unsigned)kiln_dtype_size(dt));
}

/* Starts the grid-stride loop of a kernel with one thread per element of
 * n: records the launch shape, returns the element index. */
static LLVMValueRef element_loop(cg_ctx *c, gpu_kernel *gk, gpu_loop *l, int64_t n)
{
    gk->block = CG_GPU_BLOCK;
    gk->grid = clamp_grid((n + CG_GPU_BLOCK - 1) / CG_GPU_BLOCK, GPU_MAX_GRID);
    LLVMValueRef first = LLVMBuildAdd(
        c->b, LLVMBuildMul(c->b, sreg(c, "ctaid.x"), sreg(c, "ntid.x"), ""), sreg(c, "tid.x"), "");
    LLVMValueRef step = LLVMBuildMul(c->b, sreg(c, "nctaid.x"), sreg(c, "ntid.x"), "");
    loop_begin(c, l, first, cg_i64(c, n), step, "i");
    return l->i;
}

/* Data movement: out[i] = x[base + offset(i)]. Reshape, Flatten, Squeeze
 * and Unsqueeze keep the elements in order; Transpose, Expand, Slice and
 * Tile read x through a strided view (permuted, zero for broadcast,
 * scaled by the steps, or [repeat, dim] pairs with the repeat at stride
 * 0). Elements are moved as raw bits. */
static int lower_copy(cg_ctx *c, gpu_kernel *gk)
{
    cg_kernel *k = &gk->k;
    const ir_node *n = gk->root;
    const ir_type *x = k->in[0].type, *y = k->out[0].type;
    int64_t xs[IR_MAX_RANK], dims[2 * IR_MAX_RANK], st[2 * IR_MAX_RANK], base = 0;
    ir_shape_strides(x->rank, x->dims, xs);
    int rank = y->rank;
    memcpy(dims, y->dims, sizeof(int64_t) * (size_t)rank);
    if (n->op == IR_OP_Transpose) {
        int np = 0;
        const int64_t *perm = ir_node_ints(n, "perm", &np);
        bool given = perm && np == x->rank;
        for (int i = 0; i < rank; i++) {
            int64_t a = given ? perm[i] : rank - 1 - i;
            if (a < 0 || a >= x->rank)
                return cg_error(c, k, KILN_ERR_INTERNAL, "perm is not a permutation");
            st[i] = xs[a];
        }
    } else if (n->op == IR_OP_Expand) {
        for (int d = 0; d < rank; d++) {
            int j = d - (rank - x->rank);
            st[d] = j < 0 || x->dims[j] == 1 ? 0 : xs[j];
        }
    } else if (n->op == IR_OP_Slice) {
        int64_t start[IR_MAX_RANK], step[IR_MAX_RANK], len[IR_MAX_RANK];
        if (ir_slice_geometry(n, x, start, step, len))
            return cg_error(c, k, KILN_ERR_INTERNAL, "inconsistent attributes");
        for (int d = 0; d < rank; d++) {
            /* with one element along d the step is never taken (and may be huge) */
            st[d] = len[d] > 1 ? step[d] * xs[d] : 0;
            base += len[d] > 0 ? start[d] * xs[d] : 0;
        }
    } else if (n->op == IR_OP_Tile) {
        rank = 2 * x->rank;
        for (int d = 0; d < x->rank; d++) {
            dims[2 * d] = x->dims[d] ? y->dims[d] / x->dims[d] : 0;
            st[2 * d] = 0;
            dims[2 * d + 1] = x->dims[d];
            st[2 * d + 1] = xs[d];
        }
    } else {
        rank = 1;
        dims[0] = ir_shape_numel(y->rank, y->dims);
        st[0] = 1;
    }
    int64_t total = ir_shape_numel(y->rank, y->dims);
    LLVMTypeRef mt = bits_type(c, y->dtype);
    gpu_loop l;
    element_loop(c, gk, &l, total);
    LLVMValueRef off = LLVMBuildAdd(c->b, decompose(c, l.i, rank, dims, st), cg_i64(c, base), "");
    LLVMValueRef v =
        LLVMBuildLoad2(c->b, mt, LLVMBuildGEP2(c->b, mt, k->in[0].ptr, &off, 1, ""), "");
    LLVMBuildStore(c->b, v, LLVMBuildGEP2(c->b, mt, k->out[0].ptr, &l.i, 1, ""));
    loop_end(c, &l);
    return 0;
}

/* Concat and Split: the whole tensor viewed as [outer, row] around the
 * axis, piece j as [outer, chunk_j] at column at_j of each row. One
 * grid-stride loop per piece over the piece's elements (coalesced on both
 * sides); Concat copies piece -> whole, Split whole -> piece. */
static int lower_pieces(cg_ctx *c, gpu_kernel *gk)
{
    cg_kernel *k = &gk->k;
    bool concat = gk->root->op == IR_OP_Concat;
    const cg_operand *whole = concat ? &k->out[0] : &k->in[0];
    const cg_operand *pieces = concat ? k->in : k->out;
    int npieces = concat ? k->ninputs : k->noutputs;
    const ir_type *t = whole->type;
    int a;
    if (!ir_norm_axis(ir_node_int(gk->root, "axis"), t->rank, &a))
        return cg_error(c, k, KILN_ERR_INTERNAL, "axis is out of range");
    int64_t outer = 1, inner = 1, row = 0, most = 0;
    for (int d = 0; d < a; d++) outer *= t->dims[d];
    for (int d = a + 1; d < t->rank; d++) inner *= t->dims[d];
    for (int j = 0; j < npieces; j++) {
        int64_t n = outer * pieces[j].type->dims[a] * inner;
        row += pieces[j].type->dims[a] * inner;
        if (n > most) most = n;
    }
    LLVMTypeRef mt = bits_type(c, t->dtype);
    int64_t at = 0;
    gk->block = CG_GPU_BLOCK;
    gk->grid = clamp_grid((most + CG_GPU_BLOCK - 1) / CG_GPU_BLOCK, GPU_MAX_GRID);
    for (int j = 0; j < npieces; j++) {
        int64_t chunk = pieces[j].type->dims[a] * inner;
        if (chunk == 0 || outer == 0) continue;
        if (LLVMIsNull(pieces[j].ptr)) { /* an output of Split nothing uses */
            at += chunk;
            continue;
        }
        gpu_loop l;
        unsigned grid = gk->grid;
        element_loop(c, gk, &l, outer * chunk);
        gk->grid = grid;
        LLVMValueRef o = LLVMBuildUDiv(c->b, l.i, cg_i64(c, chunk), "");
        LLVMValueRef r = LLVMBuildURem(c->b, l.i, cg_i64(c, chunk), "");
        LLVMValueRef w = LLVMBuildAdd(c->b, LLVMBuildMul(c->b, o, cg_i64(c, row), ""),
                                      LLVMBuildAdd(c->b, r, cg_i64(c, at), ""), "");
        LLVMValueRef src = concat ? LLVMBuildGEP2(c->b, mt, pieces[j].ptr, &l.i, 1, "")
                                  : LLVMBuildGEP2(c->b, mt, whole->ptr, &w, 1, "");
        LLVMValueRef dst = concat ? LLVMBuildGEP2(c->b, mt, whole->ptr, &w, 1, "")
                                  : LLVMBuildGEP2(c->b, mt, pieces[j].ptr, &l.i, 1, "");
        LLVMBuildStore(c->b, LLVMBuildLoad2(c->b, mt, src, ""), dst);
        loop_end(c, &l);
        at += chunk;
    }
    return 0;
}

/* An index of dtype idt at element j of idx, sign-extended to i64. */
static LLVMValueRef load_index(cg_ctx *c, kiln_dtype idt, LLVMValueRef idx, LLVMValueRef j)
{
    LLVMTypeRef it = bits_type(c, idt);
    LLVMValueRef v = LLVMBuildLoad2(c->b, it, LLVMBuildGEP2(c->b, it, idx, &j, 1, ""), "");
    return it == c->t_i64 ? v : LLVMBuildSExt(c->b, v, c->t_i64, "");
}

/* Checks v against [-dim, dim): outside, stores CG_ERR_INDEX in the error
 * word and continues at `skip`; inside, returns v normalized to [0, dim). */
static LLVMValueRef check_index(cg_ctx *c, cg_kernel *k, LLVMValueRef v, int64_t dim,
                                LLVMBasicBlockRef skip)
{
    LLVMValueRef fn = LLVMGetBasicBlockParent(LLVMGetInsertBlock(c->b));
    LLVMBasicBlockRef bad = LLVMAppendBasicBlockInContext(c->ctx, fn, "bad_index");
    LLVMBasicBlockRef ok = LLVMAppendBasicBlockInContext(c->ctx, fn, "index_ok");
    LLVMValueRef out = LLVMBuildOr(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, v, cg_i64(c, -dim), ""),
                                   LLVMBuildICmp(c->b, LLVMIntSGE, v, cg_i64(c, dim), ""), "");
    LLVMBuildCondBr(c->b, out, bad, ok);
    LLVMPositionBuilderAtEnd(c->b, bad);
    LLVMBuildStore(c->b, cg_i32(c, CG_ERR_INDEX), k->err);
    LLVMBuildBr(c->b, skip);
    LLVMPositionBuilderAtEnd(c->b, ok);
    LLVMValueRef neg = LLVMBuildICmp(c->b, LLVMIntSLT, v, cg_i64(c, 0), "");
    return LLVMBuildSelect(c->b, neg, LLVMBuildAdd(c->b, v, cg_i64(c, dim), ""), v, "");
}

/* Gather along axis a: x viewed as [outer, dim, inner], the output as
 * [outer, nidx, inner]. One thread per output element; an index outside
 * [-dim, dim) sets the error word (as the reference, which names it).
 * With nothing to copy every index is still checked. */
static int lower_gather(cg_ctx *c, gpu_kernel *gk)
{
    cg_kernel *k = &gk->k;
    const ir_type *x = k->in[0].type, *it = k->in[1].type;
    int a;
    if (!ir_norm_axis(ir_node_int(gk->root, "axis"), x->rank, &a))
        return cg_error(c, k, KILN_ERR_INTERNAL, "axis is out of range");
    if (it->dtype != KILN_I32 && it->dtype != KILN_I64)
        return cg_error(c, k, KILN_ERR_UNIMPLEMENTED,
                        "the CUDA backend cannot compile Gather with %s indices yet",
                        kiln_dtype_name(it->dtype));
    int64_t outer = 1, inner = 1, dim = x->dims[a], nidx = ir_shape_numel(it->rank, it->dims);
    for (int d = 0; d < a; d++) outer *= x->dims[d];
    for (int d = a + 1; d < x->rank; d++) inner *= x->dims[d];
    LLVMTypeRef mt = bits_type(c, x->dtype);
    LLVMValueRef fn = LLVMGetBasicBlockParent(LLVMGetInsertBlock(c->b));
    gpu_loop l;
    if (outer == 0 || inner == 0) {
        element_loop(c, gk, &l, nidx);
        LLVMBasicBlockRef next = LLVMAppendBasicBlockInContext(c->ctx, fn, "next");
        check_index(c, k, load_index(c, it->dtype, k->in[1].ptr, l.i), dim, next);
        LLVMBuildBr(c->b, next);
        LLVMPositionBuilderAtEnd(c->b, next);
        loop_end(c, &l);
        return 0;
    }
    element_loop(c, gk, &l, outer * nidx * inner);
    LLVMBasicBlockRef next = LLVMAppendBasicBlockInContext(c->ctx, fn, "next");
    LLVMValueRef in_i = LLVMBuildURem(c->b, l.i, cg_i64(c, inner), "");
    LLVMValueRef t = LLVMBuildUDiv(c->b, l.i, cg_i64(c, inner), "");
    LLVMValueRef j = LLVMBuildURem(c->b, t, cg_i64(c, nidx), "");
    LLVMValueRef o = LLVMBuildUDiv(c->b, t, cg_i64(c, nidx), "");
    LLVMValueRef v = check_index(c, k, load_index(c, it->dtype, k->in[1].ptr, j), dim, next);
    LLVMValueRef src = LLVMBuildAdd(
        c->b,
        LLVMBuildMul(c->b, LLVMBuildAdd(c->b, LLVMBuildMul(c->b, o, cg_i64(c, dim), ""), v, ""),
                     cg_i64(c, inner), ""),
        in_i, "");
    LLVMValueRef e =
        LLVMBuildLoad2(c->b, mt, LLVMBuildGEP2(c->b, mt, k->in[0].ptr, &src, 1, ""), "");
    LLVMBuildStore(c->b, e, LLVMBuildGEP2(c->b, mt, k->out[0].ptr, &l.i, 1, ""));
    LLVMBuildBr(c->b, next);
    LLVMPositionBuilderAtEnd(c->b, next);
    loop_end(c, &l);
    return 0;
}

/* GatherElements: out[i] = x[the coordinates of i in the indices' shape,
 * with coordinate a replaced by indices[i]]. One thread per element. */
static int lower_gather_elements(cg_ctx *c, gpu_kernel *gk)
{
    cg_kernel *k = &gk->k;
    const ir_type *x = k->in[0].type, *it = k->in[1].type;
    int a;
    if (!ir_norm_axis(ir_node_int(gk->root, "axis"), x->rank, &a))
        return cg_error(c, k, KILN_ERR_INTERNAL, "axis is out of range");
    if (it->dtype != KILN_I32 && it->dtype != KILN_I64)
        return cg_error(c, k, KILN_ERR_UNIMPLEMENTED,
                        "the CUDA backend cannot compile GatherElements with %s indices yet",
                        kiln_dtype_name(it->dtype));
    int64_t xs[IR_MAX_RANK], st[IR_MAX_RANK];
    ir_shape_strides(x->rank, x->dims, xs);
    for (int d = 0; d < x->rank; d++) st[d] = d == a ? 0 : xs[d];
    LLVMTypeRef mt = bits_type(c, x->dtype);
    LLVMValueRef fn = LLVMGetBasicBlockParent(LLVMGetInsertBlock(c->b));
    gpu_loop l;
    element_loop(c, gk, &l, ir_shape_numel(it->rank, it->dims));
    LLVMBasicBlockRef next = LLVMAppendBasicBlockInContext(c->ctx, fn, "next");
    LLVMValueRef base = decompose(c, l.i, it->rank, it->dims, st);
    LLVMValueRef v =
        check_index(c, k, load_index(c, it->dtype, k->in[1].ptr, l.i), x->dims[a], next);
    LLVMValueRef src = LLVMBuildAdd(c->b, base, LLVMBuildMul(c->b, v, cg_i64(c, xs[a]), ""), "");
    LLVMValueRef e =
        LLVMBuildLoad2(c->b, mt, LLVMBuildGEP2(c->b, mt, k->in[0].ptr, &src, 1, ""), "");
    LLVMBuildStore(c->b, e, LLVMBuildGEP2(c->b, mt, k->out[0].ptr, &l.i, 1, ""));
    LLVMBuildBr(c->b, next);
    LLVMPositionBuilderAtEnd(c->b, next);
    loop_end(c, &l);
    return 0;
}

/* Pad: one thread per output element. Along each dim the output
 * coordinate i reads input coordinate i - pads_begin inside the input,
 * else by the mode (reflect: once about the edge, edge: the edge itself);
 * a constant pad anywhere stores the fill value (converted as the
 * reference converts it). */
static int lower_pad(cg_ctx *c, gpu_kernel *gk)
{
    cg_kernel *k = &gk->k;
    const ir_node *n = gk->root;
    const ir_type *x = k->in[0].type, *y = k->out[0].type;
    const char *m = ir_node_string(n, "mode");
    int mode = !m                           ? -1
               : strcmp(m, "constant") == 0 ? 0
               : strcmp(m, "reflect") == 0  ? 1
               : strcmp(m, "edge") == 0     ? 2
                                            : -1;
    int np;
    const int64_t *pads = ir_node_ints(n, "pads", &np);
    if (mode < 0 || np != 2 * x->rank) return cg_error(c, k, KILN_ERR_INTERNAL, "bad mode or pads");
    unsigned char fb[8] = {0};
    ir_store_f64(x->dtype, fb, 0, ir_node_float(n, "value"));
    uint64_t fill = 0;
    memcpy(&fill, fb, sizeof fill); /* little-endian: the low bytes are the element */
    int64_t xs[IR_MAX_RANK];
    ir_shape_strides(x->rank, x->dims, xs);
    LLVMTypeRef mt = bits_type(c, x->dtype);
    LLVMValueRef fn = LLVMGetBasicBlockParent(LLVMGetInsertBlock(c->b));
    gpu_loop l;
    element_loop(c, gk, &l, ir_shape_numel(y->rank, y->dims));
    LLVMValueRef off = cg_i64(c, 0), rem = l.i, inside = LLVMConstInt(c->t_i1, 1, 0);
    for (int d = y->rank - 1; d >= 0; d--) {
        LLVMValueRef i = d ? LLVMBuildURem(c->b, rem, cg_i64(c, y->dims[d]), "") : rem;
        if (d) rem = LLVMBuildUDiv(c->b, rem, cg_i64(c, y->dims[d]), "");
        int64_t xn = x->dims[d];
        LLVMValueRef s = LLVMBuildSub(c->b, i, cg_i64(c, pads[d]), "");
        LLVMValueRef lo = LLVMBuildICmp(c->b, LLVMIntSLT, s, cg_i64(c, 0), "");
        LLVMValueRef hi = LLVMBuildICmp(c->b, LLVMIntSGE, s, cg_i64(c, xn), "");
        if (mode == 0) {
            inside = LLVMBuildAnd(c->b, inside,
                                  LLVMBuildNot(c->b, LLVMBuildOr(c->b, lo, hi, ""), ""), "");
        } else if (mode == 1) {
            LLVMValueRef r = LLVMBuildSub(c->b, cg_i64(c, 2 * (xn - 1)), s, "");
            s = LLVMBuildSelect(c->b, lo, LLVMBuildNeg(c->b, s, ""),
                                LLVMBuildSelect(c->b, hi, r, s, ""), "");
        } else {
            s = LLVMBuildSelect(c->b, lo, cg_i64(c, 0),
                                LLVMBuildSelect(c->b, hi, cg_i64(c, xn - 1), s, ""), "");
        }
        off = LLVMBuildAdd(c->b, off, LLVMBuildMul(c->b, s, cg_i64(c, xs[d]), ""), "");
    }
    LLVMBasicBlockRef read = LLVMAppendBasicBlockInContext(c->ctx, fn, "read");
    LLVMBasicBlockRef put = LLVMAppendBasicBlockInContext(c->ctx, fn, "put");
    LLVMBasicBlockRef from = LLVMGetInsertBlock(c->b);
    LLVMBuildCondBr(c->b, inside, read, put);
    LLVMPositionBuilderAtEnd(c->b, read);
    LLVMValueRef e =
        LLVMBuildLoad2(c->b, mt, LLVMBuildGEP2(c->b, mt, k->in[0].ptr, &off, 1, ""), "");
    LLVMBuildBr(c->b, put);
    LLVMPositionBuilderAtEnd(c->b, put);
    LLVMValueRef v = LLVMBuildPhi(c->b, mt, "");
    LLVMValueRef fv = LLVMConstInt(mt, fill, 0);
    LLVMAddIncoming(v, &fv, &from, 1);
    LLVMAddIncoming(v, &e, &read, 1);
    LLVMBuildStore(c->b, v, LLVMBuildGEP2(c->b, mt, k->out[0].ptr, &l.i, 1, ""));
    loop_end(c, &l);
    return 0;
}

/* MaxPool2D / AveragePool2D over NCHW: one thread per output element
 * walking its window, as the reference (NaN propagates through the max;
 * the average divides by the positions inside the input, or with
 * count_include_pad by those inside the explicit pads). Accumulates in
 * the compute type. */
static int lower_pool(cg_ctx *c, gpu_kernel *gk)
{
    cg_kernel *k = &gk->k;
    const ir_node *n = gk->root;
    bool is_max = n->op == IR_OP_MaxPool2D;
    const ir_type *x = k->in[0].type, *y = k->out[0].type;
    if (!ir_dtype_is_float(x->dtype) || x->rank != 4)
        return cg_error(c, k, KILN_ERR_UNIMPLEMENTED,
                        "the CUDA backend cannot compile %s of %s rank %d yet",
                        ir_op_def(n->op)->name, kiln_dtype_name(x->dtype), x->rank);
    int cnt;
    int64_t kern[2], stride[2] = {1, 1}, dil[2] = {1, 1}, pad[4] = {0, 0, 0, 0};
    const int64_t *v = ir_node_ints(n, "kernel_shape", &cnt);
    if (!v || cnt != 2) return cg_error(c, k, KILN_ERR_INTERNAL, "bad kernel_shape");
    kern[0] = v[0];
    kern[1] = v[1];
    v = ir_node_ints(n, "strides", &cnt);
    for (int i = 0; v && cnt == 2 && i < 2; i++) stride[i] = v[i];
    v = ir_node_ints(n, "pads", &cnt);
    for (int i = 0; v && cnt == 4 && i < 4; i++) pad[i] = v[i];
    if (is_max) {
        v = ir_node_ints(n, "dilations", &cnt);
        for (int i = 0; v && cnt == 2 && i < 2; i++) dil[i] = v[i];
    }
    bool include_pad = !is_max && ir_node_int(n, "count_include_pad") == 1;
    int64_t H = x->dims[2], W = x->dims[3], OH = y->dims[2], OW = y->dims[3];
    kiln_dtype dt = x->dtype;
    LLVMTypeRef t = cg_compute_type(c, dt);
    gpu_loop l;
    element_loop(c, gk, &l, ir_shape_numel(y->rank, y->dims));
    LLVMValueRef ow = LLVMBuildURem(c->b, l.i, cg_i64(c, OW), "");
    LLVMValueRef r = LLVMBuildUDiv(c->b, l.i, cg_i64(c, OW), "");
    LLVMValueRef oh = LLVMBuildURem(c->b, r, cg_i64(c, OH), "");
    LLVMValueRef plane =
        LLVMBuildMul(c->b, LLVMBuildUDiv(c->b, r, cg_i64(c, OH), ""), cg_i64(c, H * W), "");
    LLVMValueRef h0 =
        LLVMBuildSub(c->b, LLVMBuildMul(c->b, oh, cg_i64(c, stride[0]), ""), cg_i64(c, pad[0]), "");
    LLVMValueRef w0 =
        LLVMBuildSub(c->b, LLVMBuildMul(c->b, ow, cg_i64(c, stride[1]), ""), cg_i64(c, pad[1]), "");
    LLVMValueRef acc =
        var_new(c, t, is_max ? LLVMConstReal(t, -__builtin_inf()) : LLVMConstReal(t, 0));
    LLVMValueRef valid = var_new(c, c->t_i64, cg_i64(c, 0));
    LLVMValueRef fn = LLVMGetBasicBlockParent(LLVMGetInsertBlock(c->b));
    gpu_loop lh, lw;
    loop_begin(c, &lh, cg_i64(c, 0), cg_i64(c, kern[0]), cg_i64(c, 1), "kh");
    LLVMValueRef ih = LLVMBuildAdd(c->b, h0, LLVMBuildMul(c->b, lh.i, cg_i64(c, dil[0]), ""), "");
    loop_begin(c, &lw, cg_i64(c, 0), cg_i64(c, kern[1]), cg_i64(c, 1), "kw");
    LLVMValueRef iw = LLVMBuildAdd(c->b, w0, LLVMBuildMul(c->b, lw.i, cg_i64(c, dil[1]), ""), "");
    /* unsigned compares: a negative coordinate is outside too */
    LLVMValueRef in = LLVMBuildAnd(c->b, LLVMBuildICmp(c->b, LLVMIntULT, ih, cg_i64(c, H), ""),
                                   LLVMBuildICmp(c->b, LLVMIntULT, iw, cg_i64(c, W), ""), "");
    LLVMBasicBlockRef take = LLVMAppendBasicBlockInContext(c->ctx, fn, "take");
    LLVMBasicBlockRef skip = LLVMAppendBasicBlockInContext(c->ctx, fn, "skip");
    LLVMBuildCondBr(c->b, in, take, skip);
    LLVMPositionBuilderAtEnd(c->b, take);
    LLVMValueRef at = LLVMBuildAdd(
        c->b, plane, LLVMBuildAdd(c->b, LLVMBuildMul(c->b, ih, cg_i64(c, W), ""), iw, ""), "");
    LLVMValueRef e = cg_load_elem(c, dt, k->in[0].ptr, at);
    LLVMValueRef cur = LLVMBuildLoad2(c->b, t, acc, "");
    LLVMValueRef nv;
    if (is_max) {
        /* a NaN is taken and then stays (nothing compares greater) */
        LLVMValueRef better = LLVMBuildOr(c->b, LLVMBuildFCmp(c->b, LLVMRealUNO, e, e, ""),
                                          LLVMBuildFCmp(c->b, LLVMRealOGT, e, cur, ""), "");
        nv = LLVMBuildSelect(c->b, better, e, cur, "");
    } else {
        nv = LLVMBuildFAdd(c->b, cur, e, "");
    }
    LLVMBuildStore(c->b, nv, acc);
    LLVMBuildStore(c->b,
                   LLVMBuildAdd(c->b, LLVMBuildLoad2(c->b, c->t_i64, valid, ""), cg_i64(c, 1), ""),
                   valid);
    LLVMBuildBr(c->b, skip);
    LLVMPositionBuilderAtEnd(c->b, skip);
    loop_end(c, &lw);
    loop_end(c, &lh);
    LLVMValueRef res = LLVMBuildLoad2(c->b, t, acc, "");
    if (!is_max) {
        LLVMValueRef div = LLVMBuildLoad2(c->b, c->t_i64, valid, "");
        if (include_pad) {
            LLVMValueRef h1 = LLVMBuildAdd(c->b, h0, cg_i64(c, kern[0]), "");
            LLVMValueRef w1 = LLVMBuildAdd(c->b, w0, cg_i64(c, kern[1]), "");
            LLVMValueRef hm = cg_i64(c, H + pad[2]), wm = cg_i64(c, W + pad[3]);
            h1 = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntSGT, h1, hm, ""), hm, h1, "");
            w1 = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntSGT, w1, wm, ""), wm, w1, "");
            div = LLVMBuildMul(c->b, LLVMBuildSub(c->b, h1, h0, ""), LLVMBuildSub(c->b, w1, w0, ""),
                               "");
        }
        res = LLVMBuildFDiv(c->b, res, LLVMBuildSIToFP(c->b, div, t, ""), "");
    }
    cg_store_elem(c, y->dtype, k->out[0].ptr, l.i, res);
    loop_end(c, &l);
    return 0;
}

/* Assign(var, value): one thread per element copies value into the
 * variable's device slot and into the output. */
static int lower_assign(cg_ctx *c, gpu_kernel *gk)
{
    cg_kernel *k = &gk->k;
    const ir_type *t = k->in[1].type;
    LLVMTypeRef mt = bits_type(c, t->dtype);
    gpu_loop l;
    element_loop(c, gk, &l, ir_shape_numel(t->rank, t->dims));
    LLVMValueRef v =
        LLVMBuildLoad2(c->b, mt, LLVMBuildGEP2(c->b, mt, k->in[1].ptr, &l.i, 1, ""), "");
    LLVMBuildStore(c->b, v, LLVMBuildGEP2(c->b, mt, k->in[0].ptr, &l.i, 1, ""));
    if (!LLVMIsNull(k->out[0].ptr)) /* run as a target only: no output */
        LLVMBuildStore(c->b, v, LLVMBuildGEP2(c->b, mt, k->out[0].ptr, &l.i, 1, ""));
    loop_end(c, &l);
    return 0;
}

/* What kind of GPU kernel a plan kernel is; 0 when the CUDA backend has no
 * lowering for it yet (status set). */
static int classify(cg_ctx *c, const kiln_graph *g, const cg_group *gr, const ir_node *root,
                    cg_kernel *k, int (**lower)(cg_ctx *, gpu_kernel *))
{
    bool all_ew = true;
    const ir_node *other = NULL;
    for (int m = 0; m < gr->nmembers; m++) {
        const ir_node *mn = &g->nodes[gr->members[m]];
        bool ew = (ir_op_def(mn->op)->flags & IR_OPF_ELEMENTWISE) && mn->op != IR_OP_Assign;
        if (!ew) {
            all_ew = false;
            if (mn != root || !other) other = mn;
        }
    }
    red_op r;
    if (all_ew)
        *lower = lower_elementwise;
    else if (other == root && reduce_kind(root->op, &r) == 0)
        *lower = lower_reduce;
    else if (other == root && (root->op == IR_OP_Softmax || root->op == IR_OP_LogSoftmax))
        *lower = lower_softmax;
    else if (other == root && (root->op == IR_OP_ArgMax || root->op == IR_OP_ArgMin))
        *lower = lower_arg;
    else if (gr->nmembers == 1 && is_copy_op(root->op))
        *lower = lower_copy;
    else if (gr->nmembers == 1 && (root->op == IR_OP_Concat || root->op == IR_OP_Split))
        *lower = lower_pieces;
    else if (gr->nmembers == 1 && root->op == IR_OP_Gather)
        *lower = lower_gather;
    else if (gr->nmembers == 1 && root->op == IR_OP_GatherElements)
        *lower = lower_gather_elements;
    else if (gr->nmembers == 1 && root->op == IR_OP_Pad)
        *lower = lower_pad;
    else if (gr->nmembers == 1 && (root->op == IR_OP_MaxPool2D || root->op == IR_OP_AveragePool2D))
        *lower = lower_pool;
    else if (gr->nmembers == 1 && root->op == IR_OP_Assign)
        *lower = lower_assign;
    else if (gr->nmembers == 1 && root->op == IR_OP_LayerNormalization)
        *lower = lower_layernorm;
    else {
        const ir_node *bad = other ? other : root;
        k->node = bad;
        return cg_error(c, k, KILN_ERR_UNIMPLEMENTED, "the CUDA backend cannot compile %s yet",
                        ir_op_def(bad->op)->name);
    }
    return 0;
}

/* ---- the module ---- */

static cg_gpu_param param_of(const cg_plan *p, int v)
{
    const cg_loc *l = &p->loc[v];
    cg_gpu_param q = {.index = l->index, .offset = l->offset, .bytes = l->bytes};
    switch (l->kind) {
    case CG_LOC_INPUT:
        q.where = CG_GPU_INPUT;
        break;
    case CG_LOC_OUTPUT:
        q.where = CG_GPU_OUTPUT;
        break;
    case CG_LOC_VAR:
        q.where = CG_GPU_VAR;
        break;
    case CG_LOC_CONST:
        q.where = CG_GPU_GLOBAL;
        break;
    case CG_LOC_ARENA:
        q.where = CG_GPU_ARENA;
        break;
    default:
        q.where = 0;
        break; /* not materialized: NULL */
    }
    return q;
}

/* Gemm's C after cuBLAS wrote alpha * op(A) op(B) into the output:
 * out[i] += beta * C[i broadcast], one thread per element. */
static int lower_gemm_bias(cg_ctx *c, gpu_kernel *gk)
{
    cg_kernel *k = &gk->k;
    const ir_type *y = k->out[0].type, *ct = k->in[2].type;
    int64_t st[2] = {0, 0};
    ir_broadcast_strides(ct->rank, ct->dims, 2, st);
    LLVMTypeRef t = cg_compute_type(c, y->dtype);
    gpu_loop l;
    element_loop(c, gk, &l, ir_shape_numel(y->rank, y->dims));
    LLVMValueRef at = decompose(c, l.i, 2, y->dims, st);
    LLVMValueRef cv = cg_load_elem(c, ct->dtype, k->in[2].ptr, at);
    LLVMValueRef prod = cg_load_elem(c, y->dtype, k->out[0].ptr, l.i);
    double beta = ir_node_float(gk->root, "beta");
    LLVMValueRef v =
        LLVMBuildFAdd(c->b, prod, LLVMBuildFMul(c->b, LLVMConstReal(t, beta), cv, ""), "");
    cg_store_elem(c, y->dtype, k->out[0].ptr, l.i, v);
    loop_end(c, &l);
    return 0;
}

/* Emits plan kernel kidx as PTX kernel `ord` of the program (its entry
 * name and error word); with gemm_bias, the kernel adding Gemm's C. */
static int emit_kernel(cg_ctx *c, const cg_spec *s, const cg_plan *p, LLVMValueRef *consts,
                       int kidx, int ord, bool gemm_bias, cg_gpu_kernel *out)
{
    const kiln_graph *g = s->g;
    const ir_node *root = &g->nodes[p->kernels[kidx]];
    cg_group gr;
    if (cg_kernel_group(s, p, kidx, &gr))
        return ir_set_status(c->status, KILN_ERR_UNIMPLEMENTED,
                             "%s '%s': too many operands or fused nodes", ir_op_def(root->op)->name,
                             root->name);
    bool fused = gr.nmembers > 1;
    int nin = gr.nleaves, nops = nin + root->noutputs;
    cg_operand ops[CG_MAX_LEAVES + 8];
    int vals[CG_MAX_LEAVES + 8];
    if (nops > CG_MAX_LEAVES + 4 || nops + 1 > CG_GPU_MAX_PARAMS)
        return ir_set_status(c->status, KILN_ERR_UNIMPLEMENTED, "%s '%s': too many operands",
                             ir_op_def(root->op)->name, root->name);
    for (int i = 0; i < nops; i++) {
        vals[i] = i < nin ? p->base[gr.leaves[i].node] + gr.leaves[i].index
                          : p->base[p->kernels[kidx]] + (i - nin);
        ops[i].type = i < nin ? ir_value_type(g, gr.leaves[i]) : &root->outputs[i - nin];
    }
    /* parameters: every operand not in a module global, then the error word */
    out->params = ir_calloc((size_t)nops + 2, sizeof(cg_gpu_param));
    if (!out->params)
        return ir_set_status(c->status, KILN_ERR_OUT_OF_MEMORY, "compile: out of memory");
    LLVMTypeRef ptypes[CG_MAX_LEAVES + 8];
    int np = 0;
    for (int i = 0; i < nops; i++) {
        if (p->loc[vals[i]].kind == CG_LOC_CONST) continue;
        out->params[np] = param_of(p, vals[i]);
        ptypes[np++] = c->t_ptr;
    }
    out->params[np] = (cg_gpu_param){.where = CG_GPU_ERROR, .index = ord};
    ptypes[np++] = c->t_ptr;
    out->nparams = np;
    snprintf(out->name, sizeof out->name, "kiln_kernel_%d", ord);
    LLVMValueRef fn =
        LLVMAddFunction(c->mod, out->name, LLVMFunctionType(c->t_void, ptypes, (unsigned)np, 0));
    LLVMPositionBuilderAtEnd(c->b, LLVMAppendBasicBlockInContext(c->ctx, fn, "entry"));
    int pi = 0;
    for (int i = 0; i < nops; i++) {
        const cg_loc *l = &p->loc[vals[i]];
        if (l->kind == CG_LOC_CONST)
            ops[i].ptr = LLVMConstAddrSpaceCast(consts[l->index], c->t_ptr);
        else if (l->kind == CG_LOC_NONE) /* an unused output: a null the lowering skips */
            ops[i].ptr = LLVMConstNull(c->t_ptr), pi++;
        else
            ops[i].ptr = LLVMGetParam(fn, (unsigned)pi++);
    }
    gpu_kernel gk = {.root = root};
    gk.k = (cg_kernel){.node = root,
                       .ninputs = nin,
                       .noutputs = root->noutputs,
                       .in = ops,
                       .out = ops + nin,
                       .err = LLVMGetParam(fn, (unsigned)(np - 1)),
                       .work = 1,
                       .grain = 1,
                       .group = fused ? &gr : NULL,
                       .graph = g,
                       .run = cg_i64(c, 0),
                       .src_node = s->src_node ? s->src_node[p->kernels[kidx]] : -1};
    c->kernel_index = ord;
    int (*lower)(cg_ctx *, gpu_kernel *) = gemm_bias ? lower_gemm_bias : NULL;
    if (!lower && classify(c, g, &gr, root, &gk.k, &lower))
        return c->status ? c->status->code : KILN_ERR_UNIMPLEMENTED;
    gk.prologue = fused && lower != lower_elementwise && lower != lower_copy;
    if (gk.prologue && (root->inputs[0].node != gr.members[gr.nmembers - 2] || root->ninputs != 1))
        return cg_error(c, &gk.k, KILN_ERR_UNIMPLEMENTED,
                        "the CUDA backend cannot compile this fused group yet");
    if (lower(c, &gk)) return c->status && c->status->code ? c->status->code : KILN_ERR_INTERNAL;
    LLVMBuildRetVoid(c->b);
    annotate(c, fn, "kernel", 1);
    annotate(c, fn, "maxntidx", (int)gk.block);
    out->grid = gk.grid;
    out->block = gk.block;
    out->label = ir_asprintf("%s '%s'", ir_op_def(root->op)->name, root->name);
    if (!out->label)
        return ir_set_status(c->status, KILN_ERR_OUT_OF_MEMORY, "compile: out of memory");
    return KILN_OK;
}

/* Appends a step; the arrays grow by doubling. */
static int add_step(cg_gpu_program *p, int *cap, cg_gpu_step_kind kind, int index)
{
    if (p->nsteps == *cap) {
        int n = *cap ? 2 * *cap : 16;
        cg_gpu_step *s = ir_realloc(p->steps, sizeof(cg_gpu_step) * (size_t)n);
        if (!s) return -1;
        p->steps = s;
        *cap = n;
    }
    p->steps[p->nsteps++] = (cg_gpu_step){kind, index};
    return 0;
}

/* MatMul or Gemm (plan kernel kidx, not fused) as cuBLAS calls, then for
 * Gemm's C a generated kernel. */
static int emit_product(cg_ctx *c, const cg_spec *s, const cg_plan *pl, LLVMValueRef *consts,
                        int kidx, cg_gpu_program *p, int *step_cap)
{
    const kiln_graph *g = s->g;
    const ir_node *n = &g->nodes[pl->kernels[kidx]];
    enum { MAX_CALLS = 4096 };
    cg_gpu_gemm *calls = ir_calloc(MAX_CALLS, sizeof *calls);
    if (!calls) return ir_set_status(c->status, KILN_ERR_OUT_OF_MEMORY, "compile: out of memory");
    int count = 0, rc = cg_gpu_plan_gemm(g, n, calls, MAX_CALLS, &count, c->status);
    if (rc) goto done;
    cg_gpu_gemm *all = ir_realloc(p->gemms, sizeof(cg_gpu_gemm) * (size_t)(p->ngemms + count + 1));
    if (!all) goto oom;
    p->gemms = all;
    cg_gpu_param a = param_of(pl, pl->base[n->inputs[0].node] + n->inputs[0].index);
    cg_gpu_param b = param_of(pl, pl->base[n->inputs[1].node] + n->inputs[1].index);
    cg_gpu_param y = param_of(pl, pl->base[pl->kernels[kidx]]);
    for (int i = 0; i < count; i++) {
        cg_gpu_gemm *q = &p->gemms[p->ngemms];
        *q = calls[i];
        q->a = a;
        q->b = b;
        q->c = y;
        q->label = ir_asprintf("%s '%s'", ir_op_def(n->op)->name, n->name);
        if (!q->label) goto oom;
        p->ngemms++;
        if (add_step(p, step_cap, CG_GPU_STEP_GEMM, p->ngemms - 1)) goto oom;
    }
    if (n->op == IR_OP_Gemm && n->ninputs == 3) {
        rc = emit_kernel(c, s, pl, consts, kidx, p->nkernels, true, &p->kernels[p->nkernels]);
        p->nkernels++;
        if (rc) goto done;
        if (add_step(p, step_cap, CG_GPU_STEP_KERNEL, p->nkernels - 1)) goto oom;
    }
    rc = KILN_OK;
    goto done;
oom:
    rc = ir_set_status(c->status, KILN_ERR_OUT_OF_MEMORY, "compile: out of memory");
done:
    ir_free(calls);
    return rc;
}

/* cuBLAS computes the products alone: a MatMul or Gemm fused as the head
 * of an elementwise epilogue becomes its own kernel again, and the
 * epilogue a generated elementwise kernel reading its result. */
static void unfuse_products(kiln_graph *g)
{
    for (int i = 0; g->kernel_of && i < g->nnodes; i++) {
        ir_op op = g->nodes[i].op;
        if ((op == IR_OP_MatMul || op == IR_OP_Gemm) && g->kernel_of[i] >= 0 &&
            g->kernel_of[i] != i) {
            g->kernel_of[i] = i;
            g->mem_plan = NULL; /* its result needs memory now: plan again (arena-owned) */
        }
    }
}

static bool is_product(const ir_node *n) { return n->op == IR_OP_MatMul || n->op == IR_OP_Gemm; }

static int emit_constants(cg_ctx *c, const kiln_graph *g, LLVMValueRef *consts)
{
    for (int i = 0; i < g->nnodes; i++) {
        if (g->nodes[i].op != IR_OP_Constant) continue;
        const kiln_tensor *t = ir_node_tensor(&g->nodes[i], "value");
        LLVMValueRef init =
            LLVMConstStringInContext(c->ctx, t->data, (unsigned)kiln_tensor_nbytes(t), 1);
        char name[48];
        snprintf(name, sizeof name, "kiln_const_%d", i);
        LLVMValueRef gv = LLVMAddGlobalInAddressSpace(c->mod, LLVMTypeOf(init), name, 1);
        LLVMSetInitializer(gv, init);
        LLVMSetGlobalConstant(gv, 1);
        LLVMSetAlignment(gv, CG_ALIGN);
        consts[i] = gv;
    }
    return KILN_OK;
}

static void opts_default(cg_options *o, const cg_options *given)
{
    if (given)
        *o = *given;
    else
        memset(o, 0, sizeof *o);
    if (!given) o->opt_level = 2;
}

cg_gpu_program *cg_gpu_compile(const kiln_graph *g, const cg_signature *sig, const cg_options *opts,
                               int sm, kiln_status *status)
{
    cg_options o;
    opts_default(&o, opts);
    if (sm == 0) sm = CG_GPU_DEFAULT_SM;
    if (sm < 80 || sm > 120) {
        ir_set_status(status, KILN_ERR_INVALID_ARGUMENT,
                      "the CUDA backend targets sm_80 and newer, not sm_%d", sm);
        return NULL;
    }
    cg_ctx c;
    memset(&c, 0, sizeof c);
    cg_spec spec;
    cg_plan plan;
    memset(&spec, 0, sizeof spec);
    memset(&plan, 0, sizeof plan);
    LLVMTargetMachineRef tm = NULL;
    LLVMValueRef *consts = NULL;
    cg_gpu_program *p = ir_calloc(1, sizeof *p);
    if (!p) {
        ir_set_status(status, KILN_ERR_OUT_OF_MEMORY, "compile: out of memory");
        return NULL;
    }
    p->sm = sm;
    if (cg_specialize(g, sig, &spec, status) || cg_optimize(&spec, &o, status)) goto fail;
    unfuse_products(spec.g);
    if (cg_plan_memory(&spec, &plan, status)) goto fail;
    cg_ctx_init(&c, status);
    if (!(tm = cg_gpu_target_machine(sm, o.opt_level, status))) goto fail;
    cg_gpu_set_target(&c, tm);
    consts = ir_calloc((size_t)spec.g->nnodes + 1, sizeof(LLVMValueRef));
    p->kernels = ir_calloc((size_t)plan.nkernels + 1, sizeof(cg_gpu_kernel));
    p->fetch = ir_calloc((size_t)spec.noutputs + 1, sizeof(cg_gpu_param));
    p->input_types = ir_calloc((size_t)spec.ninputs + 1, sizeof(ir_type));
    p->output_types = ir_calloc((size_t)spec.noutputs + 1, sizeof(ir_type));
    p->var_nodes = ir_calloc((size_t)spec.nvars + 1, sizeof(int));
    if (!consts || !p->kernels || !p->fetch || !p->input_types || !p->output_types || !p->var_nodes)
        goto oom;
    c.g = spec.g;
    emit_constants(&c, spec.g, consts);
    int step_cap = 0;
    for (int k = 0; k < plan.nkernels; k++) {
        const ir_node *root = &spec.g->nodes[plan.kernels[k]];
        if (is_product(root) && (!spec.g->kernel_of || spec.g->kernel_of[plan.kernels[k]] < 0 ||
                                 spec.g->kernel_of[plan.kernels[k]] == plan.kernels[k])) {
            if (emit_product(&c, &spec, &plan, consts, k, p, &step_cap)) goto fail;
            continue;
        }
        int ord = p->nkernels++;
        if (emit_kernel(&c, &spec, &plan, consts, k, ord, false, &p->kernels[ord])) goto fail;
        if (add_step(p, &step_cap, CG_GPU_STEP_KERNEL, ord)) goto oom;
        if (root->op == IR_OP_Assign) p->writes_vars = true;
    }
    if (cg_gpu_finish_module(&c, &o, tm, status)) goto fail;
    if (cg_gpu_emit_ptx(&c, tm, &p->ptx, &p->ptx_size, status)) goto fail;
    p->ninputs = spec.ninputs;
    p->noutputs = spec.noutputs;
    p->nvars = spec.nvars;
    for (int i = 0; i < spec.ninputs; i++) p->input_types[i] = sig->input_types[i];
    for (int i = 0; i < spec.noutputs; i++) {
        p->output_types[i] = *ir_value_type(spec.g, spec.outputs[i]);
        p->fetch[i] = plan.copy_src[i] < 0 ? (cg_gpu_param){.where = CG_GPU_OUTPUT, .index = i}
                                           : param_of(&plan, plan.copy_src[i]);
        if (p->fetch[i].where == 0) {
            ir_set_status(status, KILN_ERR_INTERNAL,
                          "compile: fetch %d has no place in the memory plan", i);
            goto fail;
        }
    }
    for (int i = 0; i < spec.nvars; i++) p->var_nodes[i] = spec.var_src[i];
    p->arena_size = plan.arena_size;
    ir_status_ok(status);
    goto done;
oom:
    ir_set_status(status, KILN_ERR_OUT_OF_MEMORY, "compile: out of memory");
fail:
    cg_gpu_program_free(p);
    p = NULL;
done:
    ir_free(consts);
    if (tm) LLVMDisposeTargetMachine(tm);
    cg_ctx_dispose(&c);
    cg_plan_free(&plan);
    cg_spec_free(&spec);
    return p;
}

void cg_gpu_program_free(cg_gpu_program *p)
{
    if (!p) return;
    for (int k = 0; p->kernels && k < p->nkernels; k++) {
        ir_free(p->kernels[k].label);
        ir_free(p->kernels[k].params);
    }
    ir_free(p->kernels);
    for (int i = 0; p->gemms && i < p->ngemms; i++) ir_free(p->gemms[i].label);
    ir_free(p->gemms);
    ir_free(p->steps);
    ir_free(p->fetch);
    ir_free(p->ptx);
    ir_free(p->input_types);
    ir_free(p->output_types);
    ir_free(p->var_nodes);
    ir_free(p);
}

int cg_gpu_program_error(const cg_gpu_program *p, int kernel, int32_t code, kiln_status *status)
{
    const char *what = code == CG_ERR_DIV_ZERO ? "integer division by zero"
                       : code == CG_ERR_INDEX  ? "an index is out of range"
                       : code == CG_ERR_EMPTY  ? "cannot reduce an empty axis"
                                               : "failed";
    const char *label = kernel >= 0 && kernel < p->nkernels && p->kernels[kernel].label
                            ? p->kernels[kernel].label
                            : "kernel";
    return ir_set_status(status, KILN_ERR_INVALID_ARGUMENT, "%s (on the GPU): %s", label, what);
}
