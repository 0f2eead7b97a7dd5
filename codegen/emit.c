/* emit.c -- from a specialized graph and its memory plan to an LLVM module:
 * one function per kernel, an entry function that runs them in order, the
 * constants as globals, the kernel library linked in; then optimization and
 * object emission for the chosen CPU. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <llvm-c/Analysis.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassBuilder.h>

#include "cg_internal.h"

/* ---- helpers used by the lowerings ---- */

LLVMValueRef cg_i64(cg_ctx *c, int64_t v) { return LLVMConstInt(c->t_i64, (unsigned long long)v, 1); }
LLVMValueRef cg_i32(cg_ctx *c, int32_t v) { return LLVMConstInt(c->t_i32, (unsigned long long)(int64_t)v, 1); }

static LLVMValueRef const_global(cg_ctx *c, LLVMValueRef init, const char *name)
{
    LLVMValueRef gv = LLVMAddGlobal(c->mod, LLVMTypeOf(init), name);
    LLVMSetInitializer(gv, init);
    LLVMSetGlobalConstant(gv, 1);
    LLVMSetLinkage(gv, LLVMPrivateLinkage);
    LLVMSetUnnamedAddr(gv, 1);
    LLVMSetAlignment(gv, CG_ALIGN);
    return gv;
}

LLVMValueRef cg_const_i64s(cg_ctx *c, const int64_t *v, int n)
{
    LLVMValueRef el[IR_MAX_RANK * 4 + 8];
    LLVMValueRef *e = n <= (int)(sizeof el / sizeof el[0]) ? el : ir_malloc(sizeof(LLVMValueRef) * (size_t)n);
    if (!e) return NULL;
    for (int i = 0; i < n; i++) e[i] = cg_i64(c, v[i]);
    LLVMValueRef init = LLVMConstArray2(c->t_i64, e, (uint64_t)n);
    if (e != el) ir_free(e);
    return const_global(c, init, "ints");
}

LLVMValueRef cg_const_f64s(cg_ctx *c, const double *v, int n)
{
    LLVMValueRef el[IR_MAX_RANK * 4 + 8];
    LLVMValueRef *e = n <= (int)(sizeof el / sizeof el[0]) ? el : ir_malloc(sizeof(LLVMValueRef) * (size_t)n);
    if (!e) return NULL;
    for (int i = 0; i < n; i++) e[i] = LLVMConstReal(c->t_f64, v[i]);
    LLVMValueRef init = LLVMConstArray2(c->t_f64, e, (uint64_t)n);
    if (e != el) ir_free(e);
    return const_global(c, init, "floats");
}

LLVMValueRef cg_call_void(cg_ctx *c, const char *name, LLVMValueRef *args, int n)
{
    LLVMTypeRef params[32];
    for (int i = 0; i < n && i < 32; i++) params[i] = LLVMTypeOf(args[i]);
    LLVMTypeRef ft = LLVMFunctionType(c->t_void, params, (unsigned)n, 0);
    LLVMValueRef fn = LLVMGetNamedFunction(c->mod, name);
    if (!fn) fn = LLVMAddFunction(c->mod, name, ft);
    return LLVMBuildCall2(c->b, ft, fn, args, (unsigned)n, "");
}

void cg_loop_begin(cg_ctx *c, cg_loop *l, LLVMValueRef from, LLVMValueRef to, const char *name)
{
    LLVMValueRef fn = LLVMGetBasicBlockParent(LLVMGetInsertBlock(c->b));
    l->pre = LLVMGetInsertBlock(c->b);
    l->head = LLVMAppendBasicBlockInContext(c->ctx, fn, name);
    l->body = LLVMAppendBasicBlockInContext(c->ctx, fn, name);
    l->exit = LLVMAppendBasicBlockInContext(c->ctx, fn, name);
    LLVMBuildBr(c->b, l->head);
    LLVMPositionBuilderAtEnd(c->b, l->head);
    l->i = LLVMBuildPhi(c->b, c->t_i64, name);
    LLVMAddIncoming(l->i, &from, &l->pre, 1);
    LLVMValueRef more = LLVMBuildICmp(c->b, LLVMIntSLT, l->i, to, "");
    LLVMBuildCondBr(c->b, more, l->body, l->exit);
    LLVMPositionBuilderAtEnd(c->b, l->body);
}

void cg_loop_end(cg_ctx *c, cg_loop *l)
{
    LLVMValueRef next = LLVMBuildNSWAdd(c->b, l->i, cg_i64(c, 1), "");
    LLVMBasicBlockRef latch = LLVMGetInsertBlock(c->b);
    LLVMAddIncoming(l->i, &next, &latch, 1);
    LLVMBuildBr(c->b, l->head);
    LLVMPositionBuilderAtEnd(c->b, l->exit);
}

LLVMTypeRef cg_mem_type(cg_ctx *c, kiln_dtype dt)
{
    switch (dt) {
    case KILN_F32: return c->t_f32;
    case KILN_F64: return c->t_f64;
    case KILN_F16:
    case KILN_BF16:
    case KILN_I16:
    case KILN_U16: return c->t_i16;
    case KILN_I32:
    case KILN_U32: return c->t_i32;
    case KILN_I64:
    case KILN_U64: return c->t_i64;
    default: return c->t_i8;
    }
}

LLVMTypeRef cg_compute_type(cg_ctx *c, kiln_dtype dt)
{
    switch (dt) {
    case KILN_F32:
    case KILN_F16:
    case KILN_BF16: return c->t_f32;
    case KILN_F64: return c->t_f64;
    case KILN_I16:
    case KILN_U16: return c->t_i16;
    case KILN_I32:
    case KILN_U32: return c->t_i32;
    case KILN_I64:
    case KILN_U64: return c->t_i64;
    default: return c->t_i8;
    }
}

LLVMValueRef cg_load_elem(cg_ctx *c, kiln_dtype dt, LLVMValueRef base, LLVMValueRef idx)
{
    LLVMTypeRef mt = cg_mem_type(c, dt);
    LLVMValueRef p = LLVMBuildGEP2(c->b, mt, base, &idx, 1, "");
    LLVMValueRef v = LLVMBuildLoad2(c->b, mt, p, "");
    if (dt == KILN_F16) return LLVMBuildFPExt(c->b, LLVMBuildBitCast(c->b, v, c->t_f16, ""), c->t_f32, "");
    if (dt == KILN_BF16) {
        /* bf16 is the top half of an f32 */
        LLVMValueRef w = LLVMBuildShl(c->b, LLVMBuildZExt(c->b, v, c->t_i32, ""), cg_i32(c, 16), "");
        return LLVMBuildBitCast(c->b, w, c->t_f32, "");
    }
    if (dt == KILN_BOOL) /* any non-zero byte reads as 1 */
        return LLVMBuildZExt(c->b, LLVMBuildICmp(c->b, LLVMIntNE, v, LLVMConstInt(c->t_i8, 0, 0), ""), c->t_i8, "");
    return v;
}

void cg_store_elem(cg_ctx *c, kiln_dtype dt, LLVMValueRef base, LLVMValueRef idx, LLVMValueRef v)
{
    LLVMTypeRef mt = cg_mem_type(c, dt);
    if (dt == KILN_F16) {
        v = LLVMBuildBitCast(c->b, LLVMBuildFPTrunc(c->b, v, c->t_f16, ""), c->t_i16, "");
    } else if (dt == KILN_BF16) {
        /* round to nearest even; NaN stays a quiet NaN */
        LLVMValueRef u = LLVMBuildBitCast(c->b, v, c->t_i32, "");
        LLVMValueRef lsb = LLVMBuildAnd(c->b, LLVMBuildLShr(c->b, u, cg_i32(c, 16), ""), cg_i32(c, 1), "");
        LLVMValueRef r = LLVMBuildAdd(c->b, u, LLVMBuildAdd(c->b, cg_i32(c, 0x7fff), lsb, ""), "");
        LLVMValueRef rounded = LLVMBuildTrunc(c->b, LLVMBuildLShr(c->b, r, cg_i32(c, 16), ""), c->t_i16, "");
        LLVMValueRef nan = LLVMBuildTrunc(c->b, LLVMBuildOr(c->b, LLVMBuildLShr(c->b, u, cg_i32(c, 16), ""), cg_i32(c, 0x40), ""), c->t_i16, "");
        LLVMValueRef isnan = LLVMBuildFCmp(c->b, LLVMRealUNO, v, v, "");
        v = LLVMBuildSelect(c->b, isnan, nan, rounded, "");
    }
    LLVMValueRef p = LLVMBuildGEP2(c->b, mt, base, &idx, 1, "");
    LLVMBuildStore(c->b, v, p);
}

static LLVMValueRef call_fn(cg_ctx *c, const char *name, LLVMTypeRef t, LLVMValueRef *args, int n)
{
    LLVMTypeRef params[2] = {t, t};
    LLVMTypeRef ft = LLVMFunctionType(t, params, (unsigned)n, 0);
    LLVMValueRef fn = LLVMGetNamedFunction(c->mod, name);
    if (!fn) fn = LLVMAddFunction(c->mod, name, ft);
    return LLVMBuildCall2(c->b, ft, fn, args, (unsigned)n, "");
}

/* fn is an intrinsic stem ("exp" -> llvm.exp.f32) or, prefixed with "libm:",
 * a C library function ("libm:tanh" -> tanhf / tanh). */
static LLVMValueRef math_call(cg_ctx *c, const char *fn, LLVMValueRef *args, int n)
{
    LLVMTypeRef t = LLVMTypeOf(args[0]);
    bool f32 = t == c->t_f32;
    char name[64];
    if (strncmp(fn, "libm:", 5) == 0) snprintf(name, sizeof name, "%s%s", fn + 5, f32 ? "f" : "");
    else snprintf(name, sizeof name, "llvm.%s.%s", fn, f32 ? "f32" : "f64");
    return call_fn(c, name, t, args, n);
}

LLVMValueRef cg_math1(cg_ctx *c, const char *fn, LLVMValueRef x) { return math_call(c, fn, &x, 1); }

LLVMValueRef cg_math2(cg_ctx *c, const char *fn, LLVMValueRef x, LLVMValueRef y)
{
    LLVMValueRef a[2] = {x, y};
    return math_call(c, fn, a, 2);
}

LLVMValueRef cg_run_counter(cg_ctx *c, cg_kernel *k)
{
    LLVMValueRef scaled = LLVMBuildMul(c->b, k->run, cg_i64(c, (int64_t)0x9e3779b97f4a7c15ull), "");
    return LLVMBuildAdd(c->b, scaled, cg_i64(c, k->src_node), "counter");
}

int cg_error(cg_ctx *c, const cg_kernel *k, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = ir_vasprintf(fmt, ap);
    va_end(ap);
    ir_set_status(c->status, code, "%s '%s': %s", ir_op_def(k->node->op)->name, k->node->name,
                  msg ? msg : "cannot compile");
    ir_free(msg);
    return -1;
}

/* ---- target machines ---- */

static pthread_once_t llvm_once = PTHREAD_ONCE_INIT;

static void init_llvm(void)
{
    LLVMInitializeNativeTarget();
    LLVMInitializeNativeAsmPrinter();
}

static LLVMTargetMachineRef make_target_machine(const cg_options *o, kiln_status *status)
{
    pthread_once(&llvm_once, init_llvm);
    char *triple = LLVMGetDefaultTargetTriple();
    LLVMTargetRef target;
    char *err = NULL;
    if (LLVMGetTargetFromTriple(triple, &target, &err)) {
        ir_set_status(status, KILN_ERR_INTERNAL, "LLVM has no target for %s: %s", triple, err ? err : "");
        LLVMDisposeMessage(err);
        LLVMDisposeMessage(triple);
        return NULL;
    }
    bool native = !o->cpu || strcmp(o->cpu, "native") == 0;
    char *host_cpu = native ? LLVMGetHostCPUName() : NULL;
    char *host_features = native && !o->features ? LLVMGetHostCPUFeatures() : NULL;
    LLVMCodeGenOptLevel lvl = o->opt_level <= 0 ? LLVMCodeGenLevelNone
                              : o->opt_level == 1 ? LLVMCodeGenLevelLess
                              : o->opt_level == 2 ? LLVMCodeGenLevelDefault
                                                  : LLVMCodeGenLevelAggressive;
    LLVMTargetMachineRef tm = LLVMCreateTargetMachine(
        target, triple, native ? host_cpu : o->cpu,
        o->features ? o->features : (host_features ? host_features : ""), lvl, LLVMRelocPIC,
        LLVMCodeModelDefault);
    if (!tm) ir_set_status(status, KILN_ERR_INVALID_ARGUMENT, "LLVM cannot target CPU '%s'", o->cpu ? o->cpu : "native");
    LLVMDisposeMessage(triple);
    if (host_cpu) LLVMDisposeMessage(host_cpu);
    if (host_features) LLVMDisposeMessage(host_features);
    return tm;
}

/* ---- the module ---- */

static LLVMValueRef value_ptr(cg_ctx *c, const cg_plan *p, LLVMValueRef *consts, int v,
                              LLVMValueRef inputs, LLVMValueRef outputs, LLVMValueRef vars,
                              LLVMValueRef arena)
{
    const cg_loc *l = &p->loc[v];
    LLVMValueRef idx;
    switch (l->kind) {
    case CG_LOC_INPUT:
    case CG_LOC_OUTPUT:
    case CG_LOC_VAR: {
        LLVMValueRef arr = l->kind == CG_LOC_INPUT ? inputs : l->kind == CG_LOC_OUTPUT ? outputs : vars;
        idx = cg_i64(c, l->index);
        LLVMValueRef slot = LLVMBuildGEP2(c->b, c->t_ptr, arr, &idx, 1, "");
        LLVMValueRef ptr = LLVMBuildLoad2(c->b, c->t_ptr, slot, "");
        return ptr;
    }
    case CG_LOC_CONST: return consts[l->index];
    case CG_LOC_ARENA:
        idx = cg_i64(c, (int64_t)l->offset);
        return LLVMBuildGEP2(c->b, c->t_i8, arena, &idx, 1, "");
    default: return LLVMConstNull(c->t_ptr);
    }
}

/* The operands of kernel kidx: for a fused kernel its group's leaves, for a
 * single node its inputs; then the root's outputs. */
int cg_kernel_group(const cg_spec *s, const cg_plan *p, int kidx, cg_group *gr)
{
    const kiln_graph *g = s->g;
    int root = p->kernels[kidx];
    memset(gr, 0, sizeof *gr);
    if (!g->kernel_of || g->kernel_of[root] != root) {
        gr->nmembers = 1;
        gr->members[0] = root;
        const ir_node *n = &g->nodes[root];
        if (n->ninputs > CG_MAX_LEAVES) return -1;
        for (int k = 0; k < n->ninputs; k++) gr->leaves[gr->nleaves++] = n->inputs[k];
        return 0;
    }
    for (int i = 0; i <= root; i++) {
        if (g->kernel_of[i] != root) continue;
        if (gr->nmembers == (int)(sizeof gr->members / sizeof gr->members[0])) return -1;
        gr->members[gr->nmembers++] = i;
    }
    for (int m = 0; m < gr->nmembers; m++) {
        const ir_node *n = &g->nodes[gr->members[m]];
        for (int k = 0; k < n->ninputs; k++) {
            kiln_value v = n->inputs[k];
            if (g->kernel_of[v.node] == root) continue;
            bool dup = false;
            for (int j = 0; j < gr->nleaves && !dup; j++) dup = gr->leaves[j].node == v.node && gr->leaves[j].index == v.index;
            if (dup) continue;
            if (gr->nleaves == CG_MAX_LEAVES) return -1;
            gr->leaves[gr->nleaves++] = v;
        }
    }
    return 0;
}

static int emit_kernel(cg_ctx *c, const cg_spec *s, const cg_plan *p, int kidx, const cg_group *gr,
                       int64_t *work, int64_t *grain, LLVMValueRef *fn_out)
{
    const ir_node *n = &s->g->nodes[p->kernels[kidx]];
    bool fused = gr->nmembers > 1, product = false, conv = false;
    for (int m = 0; fused && m < gr->nmembers; m++) {
        ir_op op = s->g->nodes[gr->members[m]].op;
        product |= op == IR_OP_MatMul || op == IR_OP_Gemm;
        conv |= op == IR_OP_Conv2D;
    }
    /* a group rooted at a reduction: the members before it are its prologue */
    bool reduction = fused && !(ir_op_def(n->op)->flags & IR_OPF_ELEMENTWISE);
    cg_lower_fn lower = !fused        ? cg_lowering(n->op)
                        : product     ? cg_lower_matmul_group
                        : conv        ? cg_lower_conv_group
                        : reduction   ? cg_lower_reduce_group
                                      : cg_lower_group;
    LLVMTypeRef params[3] = {c->t_ptr, c->t_i64, c->t_i64};
    LLVMTypeRef ft = LLVMFunctionType(c->t_void, params, 3, 0);
    char name[64];
    snprintf(name, sizeof name, "kiln_kernel_%d", kidx);
    LLVMValueRef fn = LLVMAddFunction(c->mod, name, ft);
    LLVMSetLinkage(fn, LLVMInternalLinkage);
    LLVMPositionBuilderAtEnd(c->b, LLVMAppendBasicBlockInContext(c->ctx, fn, "entry"));
    LLVMValueRef args = LLVMGetParam(fn, 0);
    cg_operand ops[CG_MAX_LEAVES + 64];
    int nin = gr->nleaves, nops = nin + n->noutputs;
    if (nops >= (int)(sizeof ops / sizeof ops[0]))
        return ir_set_status(c->status, KILN_ERR_UNIMPLEMENTED, "%s '%s': too many operands", ir_op_def(n->op)->name, n->name);
    for (int i = 0; i <= nops; i++) {
        LLVMValueRef idx = cg_i64(c, i);
        LLVMValueRef slot = LLVMBuildGEP2(c->b, c->t_ptr, args, &idx, 1, "");
        ops[i].ptr = LLVMBuildLoad2(c->b, c->t_ptr, slot, "");
        ops[i].type = i < nin ? ir_value_type(s->g, gr->leaves[i]) : i < nops ? &n->outputs[i - nin] : NULL;
    }
    /* the slot after the error slot points at the run index */
    LLVMValueRef ridx = cg_i64(c, nops + 1);
    LLVMValueRef run_ptr = LLVMBuildLoad2(c->b, c->t_ptr, LLVMBuildGEP2(c->b, c->t_ptr, args, &ridx, 1, ""), "");
    LLVMValueRef run = LLVMBuildLoad2(c->b, c->t_i64, run_ptr, "run");
    cg_kernel k = {.node = n, .ninputs = nin, .noutputs = n->noutputs, .in = ops,
                   .out = ops + nin, .begin = LLVMGetParam(fn, 1), .end = LLVMGetParam(fn, 2),
                   .err = ops[nops].ptr, .work = 1, .grain = 1, .group = fused ? gr : NULL,
                   .graph = s->g, .args = args, .run = run,
                   .src_node = s->src_node ? s->src_node[p->kernels[kidx]] : -1};
    c->kernel_index = kidx;
    if (lower(c, &k) != 0) return c->status && c->status->code ? c->status->code : KILN_ERR_INTERNAL;
    LLVMBuildRetVoid(c->b);
    *work = k.work > 0 ? k.work : 1;
    *grain = k.grain > 0 ? k.grain : 1;
    *fn_out = fn;
    return KILN_OK;
}

/* Ahead-of-time programs carry their variables' initial values. */
static void emit_variable_globals(cg_ctx *c, const cg_spec *s, const char *entry_name)
{
    for (int i = 0; i < s->g->nnodes; i++) {
        if (s->var_slot[i] < 0) continue;
        const kiln_tensor *t = ir_node_tensor(&s->g->nodes[i], "value");
        char name[300];
        snprintf(name, sizeof name, "%s_var_%d", entry_name, s->var_slot[i]);
        LLVMValueRef init = LLVMConstStringInContext(c->ctx, t->data, (unsigned)kiln_tensor_nbytes(t), 1);
        LLVMValueRef gv = LLVMAddGlobal(c->mod, LLVMTypeOf(init), name);
        LLVMSetInitializer(gv, init);
        LLVMSetAlignment(gv, CG_ALIGN);
        LLVMSetVisibility(gv, LLVMHiddenVisibility);
    }
}

static int emit_module(cg_ctx *c, const cg_spec *s, const cg_plan *p, const char *entry_name)
{
    const kiln_graph *g = s->g;
    int rc = KILN_OK;
    LLVMValueRef *consts = ir_calloc((size_t)g->nnodes + 1, sizeof(LLVMValueRef));
    LLVMValueRef *kfn = ir_calloc((size_t)p->nkernels + 1, sizeof(LLVMValueRef));
    cg_group *groups = NULL;
    int64_t *work = ir_calloc((size_t)p->nkernels + 1, sizeof(int64_t));
    int64_t *grain = ir_calloc((size_t)p->nkernels + 1, sizeof(int64_t));
    if (!consts || !kfn || !work || !grain) {
        rc = ir_set_status(c->status, KILN_ERR_OUT_OF_MEMORY, "compile: out of memory");
        goto done;
    }
    for (int i = 0; i < g->nnodes; i++) {
        if (g->nodes[i].op != IR_OP_Constant) continue;
        const kiln_tensor *t = ir_node_tensor(&g->nodes[i], "value");
        LLVMValueRef init = LLVMConstStringInContext(c->ctx, t->data, (unsigned)kiln_tensor_nbytes(t), 1);
        consts[i] = const_global(c, init, "const");
    }
    groups = ir_calloc((size_t)p->nkernels + 1, sizeof(cg_group));
    if (!groups) {
        rc = ir_set_status(c->status, KILN_ERR_OUT_OF_MEMORY, "compile: out of memory");
        goto done;
    }
    for (int k = 0; k < p->nkernels; k++) {
        if (cg_kernel_group(s, p, k, &groups[k])) {
            const ir_node *n = &g->nodes[p->kernels[k]];
            rc = ir_set_status(c->status, KILN_ERR_UNIMPLEMENTED, "%s '%s': too many operands or fused nodes",
                               ir_op_def(n->op)->name, n->name);
            goto done;
        }
        if ((rc = emit_kernel(c, s, p, k, &groups[k], &work[k], &grain[k], &kfn[k]))) goto done;
    }

    /* The entry function. */
    LLVMTypeRef params[5] = {c->t_ptr, c->t_ptr, c->t_ptr, c->t_ptr, c->t_ptr};
    LLVMTypeRef ft = LLVMFunctionType(c->t_i32, params, 5, 0);
    LLVMValueRef entry = LLVMAddFunction(c->mod, entry_name, ft);
    LLVMPositionBuilderAtEnd(c->b, LLVMAppendBasicBlockInContext(c->ctx, entry, "entry"));
    LLVMValueRef inputs = LLVMGetParam(entry, 0), outputs = LLVMGetParam(entry, 1);
    LLVMValueRef vars = LLVMGetParam(entry, 2), arena = LLVMGetParam(entry, 3), rt = LLVMGetParam(entry, 4);
    LLVMValueRef err = LLVMBuildAlloca(c->b, c->t_i32, "err");
    LLVMBuildStore(c->b, cg_i32(c, 0), err);
    LLVMValueRef run_slot = LLVMBuildAlloca(c->b, c->t_i64, "run");
    LLVMValueRef has_rt = LLVMBuildICmp(c->b, LLVMIntNE, rt, LLVMConstNull(c->t_ptr), "");
    {
        /* run = rt ? rt->run : 0 (cg_rt is {ptr, ptr, i64}) */
        LLVMBasicBlockRef yes = LLVMAppendBasicBlockInContext(c->ctx, entry, "rt");
        LLVMBasicBlockRef join = LLVMAppendBasicBlockInContext(c->ctx, entry, "rtjoin");
        LLVMBuildStore(c->b, cg_i64(c, 0), run_slot);
        LLVMBuildCondBr(c->b, has_rt, yes, join);
        LLVMPositionBuilderAtEnd(c->b, yes);
        LLVMValueRef two = cg_i64(c, 2);
        LLVMValueRef field = LLVMBuildGEP2(c->b, c->t_ptr, rt, &two, 1, "");
        LLVMBuildStore(c->b, LLVMBuildLoad2(c->b, c->t_i64, field, ""), run_slot);
        LLVMBuildBr(c->b, join);
        LLVMPositionBuilderAtEnd(c->b, join);
    }
    LLVMTypeRef kparams[3] = {c->t_ptr, c->t_i64, c->t_i64};
    LLVMTypeRef kft = LLVMFunctionType(c->t_void, kparams, 3, 0);
    LLVMTypeRef pf_params[5] = {c->t_ptr, c->t_ptr, c->t_ptr, c->t_i64, c->t_i64};
    LLVMTypeRef pft = LLVMFunctionType(c->t_void, pf_params, 5, 0);
    for (int k = 0; k < p->nkernels; k++) {
        const ir_node *n = &g->nodes[p->kernels[k]];
        const cg_group *gr = &groups[k];
        int nin = gr->nleaves, nops = nin + n->noutputs;
        LLVMTypeRef at = LLVMArrayType2(c->t_ptr, (uint64_t)nops + 2);
        LLVMValueRef args = LLVMBuildAlloca(c->b, at, "args");
        {
            LLVMValueRef idx = cg_i64(c, nops + 1);
            LLVMBuildStore(c->b, run_slot, LLVMBuildGEP2(c->b, c->t_ptr, args, &idx, 1, ""));
        }
        for (int i = 0; i <= nops; i++) {
            LLVMValueRef ptr;
            if (i < nin)
                ptr = value_ptr(c, p, consts, p->base[gr->leaves[i].node] + gr->leaves[i].index, inputs, outputs, vars, arena);
            else if (i < nops)
                ptr = value_ptr(c, p, consts, p->base[p->kernels[k]] + (i - nin), inputs, outputs, vars, arena);
            else
                ptr = err;
            LLVMValueRef idx = cg_i64(c, i);
            LLVMBuildStore(c->b, ptr, LLVMBuildGEP2(c->b, c->t_ptr, args, &idx, 1, ""));
        }
        if (work[k] > 1) {
            /* rt ? rt->parallel_for(rt->pool, kernel, args, work, grain) : kernel(args, 0, work) */
            LLVMBasicBlockRef par = LLVMAppendBasicBlockInContext(c->ctx, entry, "par");
            LLVMBasicBlockRef ser = LLVMAppendBasicBlockInContext(c->ctx, entry, "ser");
            LLVMBasicBlockRef join = LLVMAppendBasicBlockInContext(c->ctx, entry, "join");
            LLVMBuildCondBr(c->b, has_rt, par, ser);
            LLVMPositionBuilderAtEnd(c->b, par);
            LLVMValueRef pf = LLVMBuildLoad2(c->b, c->t_ptr, rt, "pf");
            LLVMValueRef one = cg_i64(c, 1);
            LLVMValueRef pool = LLVMBuildLoad2(c->b, c->t_ptr, LLVMBuildGEP2(c->b, c->t_ptr, rt, &one, 1, ""), "pool");
            LLVMValueRef pargs[5] = {pool, kfn[k], args, cg_i64(c, work[k]), cg_i64(c, grain[k])};
            LLVMBuildCall2(c->b, pft, pf, pargs, 5, "");
            LLVMBuildBr(c->b, join);
            LLVMPositionBuilderAtEnd(c->b, ser);
            LLVMValueRef sargs[3] = {args, cg_i64(c, 0), cg_i64(c, work[k])};
            LLVMBuildCall2(c->b, kft, kfn[k], sargs, 3, "");
            LLVMBuildBr(c->b, join);
            LLVMPositionBuilderAtEnd(c->b, join);
        } else {
            LLVMValueRef sargs[3] = {args, cg_i64(c, 0), cg_i64(c, 1)};
            LLVMBuildCall2(c->b, kft, kfn[k], sargs, 3, "");
        }
        /* Stop at the first kernel that reports an error. */
        LLVMValueRef e = LLVMBuildLoad2(c->b, c->t_i32, err, "");
        LLVMBasicBlockRef fail = LLVMAppendBasicBlockInContext(c->ctx, entry, "fail");
        LLVMBasicBlockRef next = LLVMAppendBasicBlockInContext(c->ctx, entry, "next");
        LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntNE, e, cg_i32(c, 0), ""), fail, next);
        LLVMPositionBuilderAtEnd(c->b, fail);
        LLVMBuildRet(c->b, LLVMBuildOr(c->b, e, cg_i32(c, (k + 1) << 8), ""));
        LLVMPositionBuilderAtEnd(c->b, next);
    }
    /* Fetches that are not produced in place are copied. */
    for (int i = 0; i < s->noutputs; i++) {
        if (p->copy_src[i] < 0) continue;
        int v = p->copy_src[i];
        LLVMValueRef src = value_ptr(c, p, consts, v, inputs, outputs, vars, arena);
        LLVMValueRef idx = cg_i64(c, i);
        LLVMValueRef dst = LLVMBuildLoad2(c->b, c->t_ptr, LLVMBuildGEP2(c->b, c->t_ptr, outputs, &idx, 1, ""), "");
        LLVMBuildMemCpy(c->b, dst, 1, src, 1, cg_i64(c, (int64_t)p->loc[v].bytes));
    }
    LLVMBuildRet(c->b, cg_i32(c, 0));
done:
    ir_free(groups);
    ir_free(consts);
    ir_free(kfn);
    ir_free(work);
    ir_free(grain);
    return rc;
}

void cg_ctx_init(cg_ctx *c, kiln_status *status)
{
    memset(c, 0, sizeof *c);
    c->ctx = LLVMContextCreate();
    c->mod = LLVMModuleCreateWithNameInContext("kiln", c->ctx);
    c->b = LLVMCreateBuilderInContext(c->ctx);
    c->t_void = LLVMVoidTypeInContext(c->ctx);
    c->t_i1 = LLVMInt1TypeInContext(c->ctx);
    c->t_i8 = LLVMInt8TypeInContext(c->ctx);
    c->t_i16 = LLVMInt16TypeInContext(c->ctx);
    c->t_i32 = LLVMInt32TypeInContext(c->ctx);
    c->t_i64 = LLVMInt64TypeInContext(c->ctx);
    c->t_f16 = LLVMHalfTypeInContext(c->ctx);
    c->t_f32 = LLVMFloatTypeInContext(c->ctx);
    c->t_f64 = LLVMDoubleTypeInContext(c->ctx);
    c->t_ptr = LLVMPointerTypeInContext(c->ctx, 0);
    c->status = status;
}

void cg_ctx_dispose(cg_ctx *c)
{
    if (c->b) LLVMDisposeBuilder(c->b);
    if (c->mod) LLVMDisposeModule(c->mod);
    if (c->ctx) LLVMContextDispose(c->ctx);
    memset(c, 0, sizeof *c);
}

/* Builds, links, checks and optimizes the module for sig; on success c holds
 * it and *tm the target machine. */
static int build_module(cg_ctx *c, const kiln_graph *g, const cg_signature *sig, const cg_options *o,
                        LLVMTargetMachineRef *tm, cg_spec *spec, cg_plan *plan, kiln_status *status)
{
    int rc;
    if ((rc = cg_specialize(g, sig, spec, status))) return rc;
    if ((rc = cg_optimize(spec, o, status))) return rc;
    if ((rc = cg_plan_memory(spec, plan, status))) return rc;
    cg_ctx_init(c, status);
    *tm = make_target_machine(o, status);
    if (!*tm) return status ? status->code : KILN_ERR_INTERNAL;
    char *triple = LLVMGetTargetMachineTriple(*tm);
    LLVMSetTarget(c->mod, triple);
    LLVMDisposeMessage(triple);
    LLVMTargetDataRef td = LLVMCreateTargetDataLayout(*tm);
    char *layout = LLVMCopyStringRepOfTargetData(td);
    LLVMSetDataLayout(c->mod, layout);
    LLVMDisposeMessage(layout);
    LLVMDisposeTargetData(td);
    c->g = spec->g;
    if ((rc = cg_link_kernel_library(c))) return rc;
    if ((rc = emit_module(c, spec, plan, o->entry_name))) return rc;
    if (o->aot) emit_variable_globals(c, spec, o->entry_name);
    /* Everything but the entry is internal, so unused library code goes. */
    for (LLVMValueRef f = LLVMGetFirstFunction(c->mod); f; f = LLVMGetNextFunction(f)) {
        if (LLVMIsDeclaration(f)) continue;
        size_t len;
        const char *nm = LLVMGetValueName2(f, &len);
        if (strcmp(nm, o->entry_name) != 0) LLVMSetLinkage(f, LLVMInternalLinkage);
        else if (o->aot) LLVMSetVisibility(f, LLVMHiddenVisibility);
    }
    char *msg = NULL;
    if (LLVMVerifyModule(c->mod, LLVMReturnStatusAction, &msg)) {
        rc = ir_set_status(status, KILN_ERR_INTERNAL, "generated LLVM IR is invalid: %.2000s", msg ? msg : "");
        LLVMDisposeMessage(msg);
        return rc;
    }
    LLVMDisposeMessage(msg);
    char passes[32];
    snprintf(passes, sizeof passes, "default<O%d>", o->opt_level < 0 ? 0 : o->opt_level > 3 ? 3 : o->opt_level);
    LLVMPassBuilderOptionsRef po = LLVMCreatePassBuilderOptions();
    LLVMErrorRef e = LLVMRunPasses(c->mod, passes, *tm, po);
    LLVMDisposePassBuilderOptions(po);
    if (e) {
        char *em = LLVMGetErrorMessage(e);
        rc = ir_set_status(status, KILN_ERR_INTERNAL, "LLVM optimization failed: %s", em);
        LLVMDisposeErrorMessage(em);
        return rc;
    }
    return KILN_OK;
}

static void default_options(cg_options *o, const cg_options *given)
{
    if (given) *o = *given;
    else memset(o, 0, sizeof *o);
    if (!given) o->opt_level = 2;
    if (!o->entry_name) o->entry_name = "kiln_entry";
}

cg_program *cg_compile(const kiln_graph *g, const cg_signature *sig, const cg_options *opts,
                       kiln_status *status)
{
    cg_options o;
    default_options(&o, opts);
    cg_ctx c;
    memset(&c, 0, sizeof c);
    cg_spec spec;
    cg_plan plan;
    memset(&spec, 0, sizeof spec);
    memset(&plan, 0, sizeof plan);
    LLVMTargetMachineRef tm = NULL;
    cg_program *p = NULL;
    if (build_module(&c, g, sig, &o, &tm, &spec, &plan, status)) goto done;

    char *err = NULL;
    LLVMMemoryBufferRef obj = NULL;
    if (LLVMTargetMachineEmitToMemoryBuffer(tm, c.mod, LLVMObjectFile, &err, &obj)) {
        ir_set_status(status, KILN_ERR_INTERNAL, "LLVM code generation failed: %s", err ? err : "");
        LLVMDisposeMessage(err);
        goto done;
    }
    p = ir_calloc(1, sizeof *p);
    if (!p) goto oom_obj;
    p->object_size = LLVMGetBufferSize(obj);
    p->object = ir_malloc(p->object_size);
    p->entry_name = ir_strdup(o.entry_name);
    p->ninputs = spec.ninputs;
    p->noutputs = spec.noutputs;
    p->nvars = spec.nvars;
    p->input_types = ir_calloc((size_t)spec.ninputs + 1, sizeof(ir_type));
    p->output_types = ir_calloc((size_t)spec.noutputs + 1, sizeof(ir_type));
    p->var_nodes = ir_calloc((size_t)spec.nvars + 1, sizeof(int));
    p->nkernels = plan.nkernels;
    p->kernel_names = ir_calloc((size_t)plan.nkernels + 1, sizeof(char *));
    if (!p->object || !p->entry_name || !p->input_types || !p->output_types || !p->var_nodes || !p->kernel_names)
        goto oom_obj;
    memcpy(p->object, LLVMGetBufferStart(obj), p->object_size);
    LLVMDisposeMemoryBuffer(obj);
    obj = NULL;
    for (int i = 0; i < spec.ninputs; i++) p->input_types[i] = sig->input_types[i];
    for (int i = 0; i < spec.noutputs; i++) p->output_types[i] = *ir_value_type(spec.g, spec.outputs[i]);
    for (int i = 0; i < spec.nvars; i++) p->var_nodes[i] = spec.var_src[i];
    for (int k = 0; k < plan.nkernels; k++) {
        const ir_node *n = &spec.g->nodes[plan.kernels[k]];
        p->kernel_names[k] = ir_asprintf("%s '%s'", ir_op_def(n->op)->name, n->name);
        if (!p->kernel_names[k]) goto oom_obj;
        if (n->op == IR_OP_Assign) p->writes_vars = true;
    }
    p->arena_size = plan.arena_size;
    ir_status_ok(status);
    goto done;
oom_obj:
    if (obj) LLVMDisposeMemoryBuffer(obj);
    cg_program_free(p);
    p = NULL;
    ir_set_status(status, KILN_ERR_OUT_OF_MEMORY, "compile: out of memory");
done:
    if (tm) LLVMDisposeTargetMachine(tm);
    cg_ctx_dispose(&c);
    cg_plan_free(&plan);
    cg_spec_free(&spec);
    return p;
}

int cg_emit_llvm_ir(const kiln_graph *g, const cg_signature *sig, const cg_options *opts,
                    const char *path, kiln_status *status)
{
    cg_options o;
    default_options(&o, opts);
    cg_ctx c;
    memset(&c, 0, sizeof c);
    cg_spec spec;
    cg_plan plan;
    memset(&spec, 0, sizeof spec);
    memset(&plan, 0, sizeof plan);
    LLVMTargetMachineRef tm = NULL;
    int rc = build_module(&c, g, sig, &o, &tm, &spec, &plan, status);
    if (!rc) {
        char *err = NULL;
        if (LLVMPrintModuleToFile(c.mod, path, &err)) {
            rc = ir_set_status(status, KILN_ERR_IO, "cannot write %s: %s", path, err ? err : "");
            LLVMDisposeMessage(err);
        }
    }
    if (tm) LLVMDisposeTargetMachine(tm);
    cg_ctx_dispose(&c);
    cg_plan_free(&plan);
    cg_spec_free(&spec);
    return rc;
}

void cg_program_free(cg_program *p)
{
    if (!p) return;
    ir_free(p->object);
    ir_free(p->entry_name);
    ir_free(p->input_types);
    ir_free(p->output_types);
    ir_free(p->var_nodes);
    for (int k = 0; p->kernel_names && k < p->nkernels; k++) ir_free(p->kernel_names[k]);
    ir_free(p->kernel_names);
    ir_free(p);
}

int cg_program_error(const cg_program *p, int32_t code, kiln_status *status)
{
    int k = (code >> 8) - 1, reason = code & 0xff;
    const char *what = reason == CG_ERR_DIV_ZERO ? "integer division by zero"
                       : reason == CG_ERR_INDEX  ? "an index is out of range"
                       : reason == CG_ERR_EMPTY  ? "cannot reduce an empty axis"
                                                 : "failed";
    const char *kernel = k >= 0 && k < p->nkernels ? p->kernel_names[k] : "kernel";
    return ir_set_status(status, KILN_ERR_INVALID_ARGUMENT, "%s: %s", kernel, what);
}
