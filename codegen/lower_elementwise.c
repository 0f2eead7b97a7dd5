/* lower_elementwise.c -- elementwise ops as generated loops. The output's
 * dims are coalesced where every operand is contiguous (or broadcast) across
 * them; the kernel then walks rows of the innermost coalesced dim in chunks,
 * so same-shape ops become one flat, vectorizable loop and broadcast operands
 * get stride 0. Values are computed in f32 (f16, bf16, f32), f64 or the
 * integer type itself, as cg_compute_type says. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cg_internal.h"

#define EW_CHUNK 16384

typedef struct {
    int rank;
    int64_t dims[IR_MAX_RANK];
    int64_t strides[CG_MAX_LEAVES][IR_MAX_RANK];
} ew_layout;

/* Coalesces the dims of `out` where every operand (types[0..n)) reads
 * contiguously or broadcasts across them. */
static void layout(const ir_type *out, const ir_type *const *types, int n, ew_layout *L)
{
    int64_t st[CG_MAX_LEAVES][IR_MAX_RANK];
    for (int i = 0; i < n; i++) ir_broadcast_strides(types[i]->rank, types[i]->dims, out->rank, st[i]);
    memset(L, 0, sizeof *L);
    for (int d = 0; d < out->rank; d++) {
        if (out->dims[d] == 1) continue; /* size-1 dims never matter */
        if (L->rank > 0) {
            int last = L->rank - 1;
            /* the outer coalesced dim's stride must be this dim's stride times its size */
            bool merge = true;
            for (int i = 0; i < n && merge; i++) merge = L->strides[i][last] == st[i][d] * out->dims[d];
            if (merge) {
                L->dims[last] *= out->dims[d];
                for (int i = 0; i < n; i++) L->strides[i][last] = st[i][d];
                continue;
            }
        }
        L->dims[L->rank] = out->dims[d];
        for (int i = 0; i < n; i++) L->strides[i][L->rank] = st[i][d];
        L->rank++;
    }
    if (L->rank == 0) {
        L->rank = 1;
        L->dims[0] = 1;
        for (int i = 0; i < n; i++) L->strides[i][0] = 0;
    }
}

/* bool and u8/u16/u32/u64: zero-extended, compared and divided unsigned */
static bool is_unsigned(kiln_dtype dt) { return !ir_dtype_is_signed(dt); }

static LLVMValueRef fconst(cg_ctx *c, LLVMTypeRef t, double v) { return LLVMConstReal(t, v); }

/* Integer division with the reference semantics: truncation toward zero,
 * MIN / -1 wraps, division by zero reports CG_ERR_DIV_ZERO. */
static LLVMValueRef int_div(cg_ctx *c, LLVMValueRef err, kiln_dtype dt, LLVMValueRef a, LLVMValueRef b)
{
    LLVMTypeRef t = LLVMTypeOf(a);
    LLVMValueRef zero = LLVMConstInt(t, 0, 0);
    LLVMValueRef is0 = LLVMBuildICmp(c->b, LLVMIntEQ, b, zero, "");
    LLVMValueRef fn = LLVMGetBasicBlockParent(LLVMGetInsertBlock(c->b));
    LLVMBasicBlockRef bad = LLVMAppendBasicBlockInContext(c->ctx, fn, "divzero");
    LLVMBasicBlockRef ok = LLVMAppendBasicBlockInContext(c->ctx, fn, "divok");
    LLVMBuildCondBr(c->b, is0, bad, ok);
    LLVMPositionBuilderAtEnd(c->b, bad);
    LLVMBuildStore(c->b, cg_i32(c, CG_ERR_DIV_ZERO), err);
    LLVMBuildBr(c->b, ok);
    LLVMPositionBuilderAtEnd(c->b, ok);
    if (is_unsigned(dt)) {
        LLVMValueRef safe = LLVMBuildSelect(c->b, is0, LLVMConstInt(t, 1, 0), b, "");
        return LLVMBuildUDiv(c->b, a, safe, "");
    }
    LLVMValueRef m1 = LLVMBuildICmp(c->b, LLVMIntEQ, b, LLVMConstAllOnes(t), "");
    LLVMValueRef safe = LLVMBuildSelect(c->b, LLVMBuildOr(c->b, is0, m1, ""), LLVMConstInt(t, 1, 0), b, "");
    LLVMValueRef q = LLVMBuildSDiv(c->b, a, safe, "");
    return LLVMBuildSelect(c->b, m1, LLVMBuildSub(c->b, zero, a, ""), q, "");
}

static LLVMValueRef int_pow(cg_ctx *c, LLVMValueRef err, kiln_dtype dt, LLVMValueRef a, LLVMValueRef b)
{
    LLVMTypeRef t = LLVMTypeOf(a);
    bool u = is_unsigned(dt);
    LLVMValueRef a64 = u ? LLVMBuildZExt(c->b, a, c->t_i64, "") : LLVMBuildSExt(c->b, a, c->t_i64, "");
    LLVMValueRef b64 = u ? LLVMBuildZExt(c->b, b, c->t_i64, "") : LLVMBuildSExt(c->b, b, c->t_i64, "");
    if (t == c->t_i64) {
        a64 = a;
        b64 = b;
    }
    /* u64 exponents above INT64_MAX are exponents, not negative powers */
    const char *name = dt == KILN_U64 ? "kk_upow" : "kk_ipow";
    LLVMTypeRef params[3] = {c->t_i64, c->t_i64, c->t_ptr};
    LLVMTypeRef ft = LLVMFunctionType(c->t_i64, params, 3, 0);
    LLVMValueRef fn = LLVMGetNamedFunction(c->mod, name);
    if (!fn) fn = LLVMAddFunction(c->mod, name, ft);
    LLVMValueRef args[3] = {a64, b64, err};
    LLVMValueRef r = LLVMBuildCall2(c->b, ft, fn, args, 3, "");
    return t == c->t_i64 ? r : LLVMBuildTrunc(c->b, r, t, "");
}

/* Cast to or from a storage dtype: the byte of 'to', or the f32 value of a
 * storage input. */
static LLVMValueRef cast_storage(cg_ctx *c, const ir_node *n, kiln_dtype from, kiln_dtype to, LLVMValueRef a)
{
    LLVMTypeRef t = LLVMTypeOf(a);
    if (ir_dtype_is_storage(from)) {
        LLVMTypeRef params[2] = {c->t_i32, c->t_i8};
        LLVMTypeRef ft = LLVMFunctionType(c->t_f32, params, 2, 0);
        LLVMValueRef fn = LLVMGetNamedFunction(c->mod, "kk_storage_to_f32");
        if (!fn) fn = LLVMAddFunction(c->mod, "kk_storage_to_f32", ft);
        LLVMValueRef args[2] = {cg_i32(c, (int)from), a};
        a = LLVMBuildCall2(c->b, ft, fn, args, 2, "");
        t = c->t_f32;
        if (!ir_dtype_is_storage(to)) return a;
    }
    if (!ir_dtype_is_float(from) && !ir_dtype_is_storage(from) && !ir_dtype_is_storage_float(to)) {
        /* integer to int4/int2: the low bits, sign-extended for i4/i2 */
        unsigned bits = to == KILN_I4 || to == KILN_U4 ? 4 : 2;
        LLVMValueRef lo = t == c->t_i8 ? a : LLVMBuildTrunc(c->b, a, c->t_i8, "");
        if (to == KILN_U4 || to == KILN_U2) return LLVMBuildAnd(c->b, lo, LLVMConstInt(c->t_i8, (1u << bits) - 1, 0), "");
        LLVMValueRef sh = LLVMConstInt(c->t_i8, 8 - bits, 0);
        return LLVMBuildAShr(c->b, LLVMBuildShl(c->b, lo, sh, ""), sh, "");
    }
    /* to float8/float4 (or from a float to int4/int2): through double */
    LLVMValueRef v;
    if (t == c->t_f64) v = a;
    else if (t == c->t_f32) v = LLVMBuildFPExt(c->b, a, c->t_f64, "");
    else v = is_unsigned(from) ? LLVMBuildUIToFP(c->b, a, c->t_f64, "") : LLVMBuildSIToFP(c->b, a, c->t_f64, "");
    LLVMTypeRef params[3] = {c->t_i32, c->t_f64, c->t_i32};
    LLVMTypeRef ft = LLVMFunctionType(c->t_i8, params, 3, 0);
    LLVMValueRef fn = LLVMGetNamedFunction(c->mod, "kk_storage_from_f64");
    if (!fn) fn = LLVMAddFunction(c->mod, "kk_storage_from_f64", ft);
    LLVMValueRef args[3] = {cg_i32(c, (int)to), v, cg_i32(c, ir_node_int(n, "saturate") != 0)};
    return LLVMBuildCall2(c->b, ft, fn, args, 3, "");
}

/* The value of one output element from its operands' values (in their
 * compute types). Returns NULL for an op this file does not lower. */
static LLVMValueRef compute(cg_ctx *c, const ir_node *n, kiln_dtype dt, kiln_dtype out_dt, LLVMValueRef err,
                            LLVMValueRef *x)
{
    bool fl = ir_dtype_is_float(dt);
    LLVMTypeRef t = LLVMTypeOf(x[0]);
    LLVMValueRef a = x[0], b = n->ninputs > 1 ? x[1] : NULL;
    switch (n->op) {
    case IR_OP_Identity: return a;
    case IR_OP_Add: return fl ? LLVMBuildFAdd(c->b, a, b, "") : LLVMBuildAdd(c->b, a, b, "");
    case IR_OP_Sub: return fl ? LLVMBuildFSub(c->b, a, b, "") : LLVMBuildSub(c->b, a, b, "");
    case IR_OP_Mul: return fl ? LLVMBuildFMul(c->b, a, b, "") : LLVMBuildMul(c->b, a, b, "");
    case IR_OP_Div: return fl ? LLVMBuildFDiv(c->b, a, b, "") : int_div(c, err, dt, a, b);
    case IR_OP_Pow: return fl ? cg_math2(c, "pow", a, b) : int_pow(c, err, dt, a, b);
    case IR_OP_Maximum:
        if (fl) return cg_math2(c, "maximum", a, b);
        return LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, is_unsigned(dt) ? LLVMIntUGT : LLVMIntSGT, a, b, ""), a, b, "");
    case IR_OP_Minimum:
        if (fl) return cg_math2(c, "minimum", a, b);
        return LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, is_unsigned(dt) ? LLVMIntULT : LLVMIntSLT, a, b, ""), a, b, "");
    case IR_OP_Neg: return fl ? LLVMBuildFNeg(c->b, a, "") : LLVMBuildSub(c->b, LLVMConstInt(t, 0, 0), a, "");
    case IR_OP_Abs:
        if (fl) return cg_math1(c, "fabs", a);
        if (is_unsigned(dt)) return a;
        return LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, a, LLVMConstInt(t, 0, 0), ""),
                               LLVMBuildSub(c->b, LLVMConstInt(t, 0, 0), a, ""), a, "");
    case IR_OP_Exp: return cg_math1(c, "exp", a);
    case IR_OP_Log: return cg_math1(c, "log", a);
    case IR_OP_Sqrt: return cg_math1(c, "sqrt", a);
    case IR_OP_Rsqrt: return LLVMBuildFDiv(c->b, fconst(c, t, 1), cg_math1(c, "sqrt", a), "");
    case IR_OP_Reciprocal: return LLVMBuildFDiv(c->b, fconst(c, t, 1), a, "");
    case IR_OP_Tanh: return cg_math1(c, "libm:tanh", a);
    case IR_OP_Erf: return cg_math1(c, "libm:erf", a);
    case IR_OP_Sigmoid: {
        LLVMValueRef e = cg_math1(c, "exp", LLVMBuildFNeg(c->b, a, ""));
        return LLVMBuildFDiv(c->b, fconst(c, t, 1), LLVMBuildFAdd(c->b, fconst(c, t, 1), e, ""), "");
    }
    case IR_OP_Relu:
        if (fl) /* x < 0 ? 0 : x, so NaN passes through */
            return LLVMBuildSelect(c->b, LLVMBuildFCmp(c->b, LLVMRealOLT, a, fconst(c, t, 0), ""), fconst(c, t, 0), a, "");
        return LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntSGT, a, LLVMConstInt(t, 0, 0), ""), a, LLVMConstInt(t, 0, 0), "");
    case IR_OP_LeakyRelu:
        return LLVMBuildSelect(c->b, LLVMBuildFCmp(c->b, LLVMRealOGE, a, fconst(c, t, 0), ""), a,
                               LLVMBuildFMul(c->b, a, fconst(c, t, ir_node_float(n, "alpha")), ""), "");
    case IR_OP_Elu:
        return LLVMBuildSelect(c->b, LLVMBuildFCmp(c->b, LLVMRealOGE, a, fconst(c, t, 0), ""), a,
                               LLVMBuildFMul(c->b, cg_math1(c, "libm:expm1", a), fconst(c, t, ir_node_float(n, "alpha")), ""), "");
    case IR_OP_Gelu: {
        const char *approx = ir_node_string(n, "approximate");
        LLVMValueRef half_x = LLVMBuildFMul(c->b, a, fconst(c, t, 0.5), "");
        LLVMValueRef inner;
        if (approx && strcmp(approx, "tanh") == 0) {
            LLVMValueRef x3 = LLVMBuildFMul(c->b, LLVMBuildFMul(c->b, a, a, ""), a, "");
            LLVMValueRef s = LLVMBuildFAdd(c->b, a, LLVMBuildFMul(c->b, x3, fconst(c, t, 0.044715), ""), "");
            inner = cg_math1(c, "libm:tanh", LLVMBuildFMul(c->b, s, fconst(c, t, sqrt(2.0 / M_PI)), ""));
            return LLVMBuildFMul(c->b, half_x, LLVMBuildFAdd(c->b, fconst(c, t, 1), inner, ""), "");
        }
        /* 0.5 x erfc(-x / sqrt 2): no cancellation for negative x */
        inner = cg_math1(c, "libm:erfc", LLVMBuildFMul(c->b, a, fconst(c, t, -M_SQRT1_2), ""));
        return LLVMBuildFMul(c->b, half_x, inner, "");
    }
    case IR_OP_Softplus: {
        /* max(x, 0) + log1p(exp(-|x|)) */
        LLVMValueRef e = cg_math1(c, "exp", LLVMBuildFNeg(c->b, cg_math1(c, "fabs", a), ""));
        LLVMValueRef pos = LLVMBuildSelect(c->b, LLVMBuildFCmp(c->b, LLVMRealOGT, a, fconst(c, t, 0), ""), a, fconst(c, t, 0), "");
        return LLVMBuildFAdd(c->b, pos, cg_math1(c, "libm:log1p", e), "");
    }
    case IR_OP_Clip: {
        double lo = ir_node_float(n, "min"), hi = ir_node_float(n, "max");
        if (fl) {
            LLVMValueRef r = LLVMBuildSelect(c->b, LLVMBuildFCmp(c->b, LLVMRealOGT, a, fconst(c, t, hi), ""), fconst(c, t, hi), a, "");
            return LLVMBuildSelect(c->b, LLVMBuildFCmp(c->b, LLVMRealOLT, a, fconst(c, t, lo), ""), fconst(c, t, lo), r, "");
        }
        if (dt == KILN_U64) { /* as the reference: bounds saturate to [0, 2^64 - 1] */
            if (hi < 0) return cg_i64(c, hi <= -9.2e18 ? INT64_MIN : (int64_t)floor(hi));
            uint64_t lou = lo <= 0 ? 0 : lo >= 1.8446744073709552e19 ? UINT64_MAX : (uint64_t)ceil(lo);
            uint64_t hiu = hi >= 1.8446744073709552e19 ? UINT64_MAX : (uint64_t)floor(hi);
            LLVMValueRef hv = LLVMConstInt(t, hiu, 0), lv = LLVMConstInt(t, lou, 0);
            LLVMValueRef r = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntUGT, a, hv, ""), hv, a, "");
            return LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntULT, a, lv, ""), lv, r, "");
        }
        /* integer bounds round inward; compare in i64 */
        int64_t loi = lo <= -9.2e18 ? INT64_MIN : (int64_t)ceil(lo);
        int64_t hii = hi >= 9.2e18 ? INT64_MAX : (int64_t)floor(hi);
        LLVMValueRef w = t == c->t_i64 ? a : is_unsigned(dt) ? LLVMBuildZExt(c->b, a, c->t_i64, "") : LLVMBuildSExt(c->b, a, c->t_i64, "");
        LLVMValueRef r = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntSGT, w, cg_i64(c, hii), ""), cg_i64(c, hii), w, "");
        r = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, w, cg_i64(c, loi), ""), cg_i64(c, loi), r, "");
        return t == c->t_i64 ? r : LLVMBuildTrunc(c->b, r, t, "");
    }
    case IR_OP_Equal:
    case IR_OP_Less:
    case IR_OP_Greater:
    case IR_OP_LessOrEqual:
    case IR_OP_GreaterOrEqual: {
        LLVMValueRef r;
        int op = n->op;
        if (fl) {
            LLVMRealPredicate pr = op == IR_OP_Equal ? LLVMRealOEQ : op == IR_OP_Less ? LLVMRealOLT
                                   : op == IR_OP_Greater ? LLVMRealOGT : op == IR_OP_LessOrEqual ? LLVMRealOLE : LLVMRealOGE;
            r = LLVMBuildFCmp(c->b, pr, a, b, "");
        } else {
            bool u = is_unsigned(dt);
            LLVMIntPredicate pr = op == IR_OP_Equal ? LLVMIntEQ
                                  : op == IR_OP_Less ? (u ? LLVMIntULT : LLVMIntSLT)
                                  : op == IR_OP_Greater ? (u ? LLVMIntUGT : LLVMIntSGT)
                                  : op == IR_OP_LessOrEqual ? (u ? LLVMIntULE : LLVMIntSLE)
                                                            : (u ? LLVMIntUGE : LLVMIntSGE);
            r = LLVMBuildICmp(c->b, pr, a, b, "");
        }
        return LLVMBuildZExt(c->b, r, c->t_i8, "");
    }
    case IR_OP_And: return LLVMBuildAnd(c->b, a, b, "");
    case IR_OP_Or: return LLVMBuildOr(c->b, a, b, "");
    case IR_OP_Xor: return LLVMBuildXor(c->b, a, b, "");
    case IR_OP_Not: return LLVMBuildXor(c->b, a, LLVMConstInt(c->t_i8, 1, 0), "");
    case IR_OP_Where:
        return LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntNE, a, LLVMConstInt(c->t_i8, 0, 0), ""), x[1], x[2], "");
    case IR_OP_Cast: {
        kiln_dtype to = out_dt;
        LLVMTypeRef tt = cg_compute_type(c, to);
        if (ir_dtype_is_storage(to) || ir_dtype_is_storage(dt)) {
            /* storage dtypes convert in the kernel library (kk_lowp.c);
             * from one, the value continues as an f32 */
            LLVMValueRef r = cast_storage(c, n, dt, to, a);
            if (ir_dtype_is_storage(to) || !r) return r;
            a = r;
            t = c->t_f32;
            fl = true;
        }
        if (fl) {
            if (ir_dtype_is_float(to)) {
                if (t == tt) return a;
                return t == c->t_f64 ? LLVMBuildFPTrunc(c->b, a, tt, "") : LLVMBuildFPExt(c->b, a, tt, "");
            }
            if (to == KILN_BOOL) return LLVMBuildZExt(c->b, LLVMBuildFCmp(c->b, LLVMRealUNE, a, fconst(c, t, 0), ""), c->t_i8, "");
            /* truncate toward zero saturating to int64 (NaN -> 0), then wrap */
            char name[48];
            snprintf(name, sizeof name, "llvm.fptosi.sat.i64.%s", t == c->t_f32 ? "f32" : "f64");
            LLVMTypeRef ft = LLVMFunctionType(c->t_i64, &t, 1, 0);
            LLVMValueRef fn = LLVMGetNamedFunction(c->mod, name);
            if (!fn) fn = LLVMAddFunction(c->mod, name, ft);
            LLVMValueRef r = LLVMBuildCall2(c->b, ft, fn, &a, 1, "");
            if (to == KILN_U64) { /* [2^63, 2^64) converts unsigned; beyond saturates */
                snprintf(name, sizeof name, "llvm.fptoui.sat.i64.%s", t == c->t_f32 ? "f32" : "f64");
                LLVMValueRef ufn = LLVMGetNamedFunction(c->mod, name);
                if (!ufn) ufn = LLVMAddFunction(c->mod, name, ft);
                LLVMValueRef ur = LLVMBuildCall2(c->b, ft, ufn, &a, 1, "");
                LLVMValueRef big = LLVMBuildFCmp(c->b, LLVMRealOGE, a, fconst(c, t, 9223372036854775808.0), "");
                r = LLVMBuildSelect(c->b, big, ur, r, "");
            }
            return tt == c->t_i64 ? r : LLVMBuildTrunc(c->b, r, tt, "");
        }
        bool u = is_unsigned(dt);
        if (ir_dtype_is_float(to)) return u ? LLVMBuildUIToFP(c->b, a, tt, "") : LLVMBuildSIToFP(c->b, a, tt, "");
        if (to == KILN_BOOL) return LLVMBuildZExt(c->b, LLVMBuildICmp(c->b, LLVMIntNE, a, LLVMConstInt(t, 0, 0), ""), c->t_i8, "");
        unsigned from_bits = LLVMGetIntTypeWidth(t), to_bits = LLVMGetIntTypeWidth(tt);
        if (from_bits == to_bits) return a;
        if (from_bits > to_bits) return LLVMBuildTrunc(c->b, a, tt, "");
        return u ? LLVMBuildZExt(c->b, a, tt, "") : LLVMBuildSExt(c->b, a, tt, "");
    }
    case IR_OP_Floor: return cg_math1(c, "floor", a);
    case IR_OP_Ceil: return cg_math1(c, "ceil", a);
    case IR_OP_Round: return cg_math1(c, "roundeven", a);
    case IR_OP_Sign: {
        if (fl) { /* numpy's sign: NaN stays NaN, both zeros give +0 */
            LLVMValueRef r = LLVMBuildSelect(c->b, LLVMBuildFCmp(c->b, LLVMRealOEQ, a, fconst(c, t, 0), ""), fconst(c, t, 0), a, "");
            r = LLVMBuildSelect(c->b, LLVMBuildFCmp(c->b, LLVMRealOLT, a, fconst(c, t, 0), ""), fconst(c, t, -1), r, "");
            return LLVMBuildSelect(c->b, LLVMBuildFCmp(c->b, LLVMRealOGT, a, fconst(c, t, 0), ""), fconst(c, t, 1), r, "");
        }
        LLVMValueRef zero = LLVMConstInt(t, 0, 0);
        LLVMValueRef pos = LLVMBuildZExt(c->b, LLVMBuildICmp(c->b, LLVMIntNE, a, zero, ""), t, "");
        if (is_unsigned(dt)) return pos;
        return LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, a, zero, ""), LLVMConstAllOnes(t), pos, "");
    }
    case IR_OP_Sin: return cg_math1(c, "libm:sin", a);
    case IR_OP_Cos: return cg_math1(c, "libm:cos", a);
    case IR_OP_Tan: return cg_math1(c, "libm:tan", a);
    case IR_OP_Asin: return cg_math1(c, "libm:asin", a);
    case IR_OP_Acos: return cg_math1(c, "libm:acos", a);
    case IR_OP_Atan: return cg_math1(c, "libm:atan", a);
    case IR_OP_Sinh: return cg_math1(c, "libm:sinh", a);
    case IR_OP_Cosh: return cg_math1(c, "libm:cosh", a);
    case IR_OP_Asinh: return cg_math1(c, "libm:asinh", a);
    case IR_OP_Acosh: return cg_math1(c, "libm:acosh", a);
    case IR_OP_Atanh: return cg_math1(c, "libm:atanh", a);
    case IR_OP_IsNaN: return LLVMBuildZExt(c->b, LLVMBuildFCmp(c->b, LLVMRealUNO, a, a, ""), c->t_i8, "");
    case IR_OP_IsInf: {
        bool pos = ir_node_int(n, "detect_positive") != 0, neg = ir_node_int(n, "detect_negative") != 0;
        LLVMValueRef r = LLVMConstInt(c->t_i1, 0, 0);
        if (pos) r = LLVMBuildOr(c->b, r, LLVMBuildFCmp(c->b, LLVMRealOEQ, a, fconst(c, t, INFINITY), ""), "");
        if (neg) r = LLVMBuildOr(c->b, r, LLVMBuildFCmp(c->b, LLVMRealOEQ, a, fconst(c, t, -INFINITY), ""), "");
        return LLVMBuildZExt(c->b, r, c->t_i8, "");
    }
    case IR_OP_Mod: {
        if (fl) return LLVMBuildFRem(c->b, a, b, ""); /* C fmod; inference requires fmod = 1 */
        /* a - trunc(a / b) * b, with Div's checks (b == 0 is an error, MIN / -1 wraps) */
        LLVMValueRef r = LLVMBuildSub(c->b, a, LLVMBuildMul(c->b, int_div(c, err, dt, a, b), b, ""), "");
        if (is_unsigned(dt) || ir_node_int(n, "fmod")) return r;
        /* Python's rule: a non-zero remainder takes the divisor's sign */
        LLVMValueRef zero = LLVMConstInt(t, 0, 0);
        LLVMValueRef fix = LLVMBuildAnd(c->b, LLVMBuildICmp(c->b, LLVMIntNE, r, zero, ""),
                                        LLVMBuildICmp(c->b, LLVMIntSLT, LLVMBuildXor(c->b, r, b, ""), zero, ""), "");
        return LLVMBuildSelect(c->b, fix, LLVMBuildAdd(c->b, r, b, ""), r, "");
    }
    case IR_OP_BitwiseAnd: return LLVMBuildAnd(c->b, a, b, "");
    case IR_OP_BitwiseOr: return LLVMBuildOr(c->b, a, b, "");
    case IR_OP_BitwiseXor: return LLVMBuildXor(c->b, a, b, "");
    case IR_OP_BitwiseNot: /* a bool is 0 or 1 in its i8: flip only that bit */
        return LLVMBuildXor(c->b, a, dt == KILN_BOOL ? LLVMConstInt(t, 1, 0) : LLVMConstAllOnes(t), "");
    case IR_OP_BitShift: {
        /* unsigned shifts; an amount >= the width gives 0 (LLVM's shl/lshr
         * would give poison), so shift by 0 there and select 0 */
        const char *dir = ir_node_string(n, "direction");
        LLVMValueRef zero = LLVMConstInt(t, 0, 0);
        LLVMValueRef in_range = LLVMBuildICmp(c->b, LLVMIntULT, b, LLVMConstInt(t, LLVMGetIntTypeWidth(t), 0), "");
        LLVMValueRef amt = LLVMBuildSelect(c->b, in_range, b, zero, "");
        LLVMValueRef r = dir && strcmp(dir, "LEFT") == 0 ? LLVMBuildShl(c->b, a, amt, "") : LLVMBuildLShr(c->b, a, amt, "");
        return LLVMBuildSelect(c->b, in_range, r, zero, "");
    }
    default: return NULL;
    }
}

/* ---- expressions: one node, or the members of a fused kernel ---- */

typedef struct {
    const kiln_graph *g;
    int nmembers;
    const int *members;     /* node indices, the root last */
    int root;               /* node index of the root */
    int head;               /* member whose value is the output's current contents, or -1 */
    int nleaves;
    const kiln_value *leaves;
    const ir_type *leaf_type[CG_MAX_LEAVES];
    bool leaf_used[CG_MAX_LEAVES];
    int single; /* members[] of a single node */
} ew_expr;

static void expr_init(ew_expr *e, const cg_kernel *k, int head)
{
    memset(e, 0, sizeof *e);
    e->g = k->graph;
    e->head = head;
    if (k->group) {
        e->nmembers = k->group->nmembers;
        e->members = k->group->members;
        e->nleaves = k->group->nleaves;
        e->leaves = k->group->leaves;
        e->root = e->members[e->nmembers - 1];
    } else {
        /* a single node: the node is the only member, its inputs the leaves */
        e->root = (int)(k->node - e->g->nodes);
        e->single = e->root;
        e->nmembers = 1;
        e->members = &e->single;
        e->nleaves = k->node->ninputs;
        e->leaves = k->node->inputs;
    }
    for (int i = 0; i < e->nleaves; i++) e->leaf_type[i] = ir_value_type(e->g, e->leaves[i]);
    /* the head's own inputs are not read by the expression */
    for (int m = 0; m < e->nmembers; m++) {
        if (e->members[m] == head) continue;
        const ir_node *n = &e->g->nodes[e->members[m]];
        for (int t = 0; t < n->ninputs; t++)
            for (int i = 0; i < e->nleaves; i++)
                if (e->leaves[i].node == n->inputs[t].node && e->leaves[i].index == n->inputs[t].index) e->leaf_used[i] = true;
    }
}

static int member_index(const ew_expr *e, int node)
{
    for (int m = 0; m < e->nmembers; m++)
        if (e->members[m] == node) return m;
    return -1;
}

/* Rounds a value to its dtype's precision: a fused kernel keeps f16 and
 * bf16 intermediates in f32 registers, but must give what the unfused
 * nodes would, which store them. */
static LLVMValueRef round_to(cg_ctx *c, kiln_dtype dt, LLVMValueRef v)
{
    if (dt == KILN_F16) return LLVMBuildFPExt(c->b, LLVMBuildFPTrunc(c->b, v, c->t_f16, ""), c->t_f32, "");
    if (dt == KILN_BF16) {
        /* round the f32 to its top 16 bits, ties to even; NaN stays NaN */
        LLVMValueRef u = LLVMBuildBitCast(c->b, v, c->t_i32, "");
        LLVMValueRef lsb = LLVMBuildAnd(c->b, LLVMBuildLShr(c->b, u, cg_i32(c, 16), ""), cg_i32(c, 1), "");
        LLVMValueRef r = LLVMBuildAdd(c->b, u, LLVMBuildAdd(c->b, cg_i32(c, 0x7fff), lsb, ""), "");
        r = LLVMBuildAnd(c->b, r, cg_i32(c, (int32_t)0xffff0000u), "");
        LLVMValueRef isnan = LLVMBuildFCmp(c->b, LLVMRealUNO, v, v, "");
        return LLVMBuildSelect(c->b, isnan, v, LLVMBuildBitCast(c->b, r, c->t_f32, ""), "");
    }
    return v;
}

/* Emits the value of the root at one element: leaf values come from
 * leaf_val (NULL for unused leaves), the head's from head_val. */
static LLVMValueRef expr_eval(cg_ctx *c, const ew_expr *e, LLVMValueRef *leaf_val, LLVMValueRef head_val, LLVMValueRef err)
{
    LLVMValueRef val[64];
    for (int m = 0; m < e->nmembers; m++) {
        const ir_node *n = &e->g->nodes[e->members[m]];
        if (e->members[m] == e->head) {
            val[m] = head_val;
            continue;
        }
        LLVMValueRef x[8];
        for (int t = 0; t < n->ninputs && t < 8; t++) {
            int src = member_index(e, n->inputs[t].node);
            if (src >= 0) {
                x[t] = val[src];
                continue;
            }
            for (int i = 0; i < e->nleaves; i++)
                if (e->leaves[i].node == n->inputs[t].node && e->leaves[i].index == n->inputs[t].index) x[t] = leaf_val[i];
        }
        kiln_dtype in_dt = ir_value_type(e->g, n->inputs[0])->dtype;
        kiln_dtype out_dt = n->outputs[0].dtype;
        /* Where's dtype is its second input's */
        val[m] = compute(c, n, n->op == IR_OP_Where ? ir_value_type(e->g, n->inputs[1])->dtype : in_dt, out_dt, err, x);
        if (!val[m]) return NULL;
        if (m != e->nmembers - 1) val[m] = round_to(c, out_dt, val[m]);
    }
    return val[e->nmembers - 1];
}

/* Emits, at the builder, the loop over output elements [from, to) of the
 * coalesced layout L for rows starting at `row` ... : computes and stores
 * the root for output offsets out_base + j. */
static int emit_row(cg_ctx *c, const ew_expr *e, const ew_layout *L, const cg_operand *leaf_ops, LLVMValueRef out_ptr,
                    LLVMValueRef out_shift, const ir_type *out_type, LLVMValueRef row, LLVMValueRef from,
                    LLVMValueRef to, LLVMValueRef err)
{
    int r = L->rank;
    int64_t inner = L->dims[r - 1];
    LLVMValueRef base[CG_MAX_LEAVES];
    for (int i = 0; i < e->nleaves; i++) base[i] = cg_i64(c, 0);
    LLVMValueRef rem = row;
    for (int d = r - 2; d >= 0; d--) {
        LLVMValueRef idx = LLVMBuildSRem(c->b, rem, cg_i64(c, L->dims[d]), "");
        rem = LLVMBuildSDiv(c->b, rem, cg_i64(c, L->dims[d]), "");
        for (int i = 0; i < e->nleaves; i++)
            if (e->leaf_used[i] && L->strides[i][d])
                base[i] = LLVMBuildAdd(c->b, base[i], LLVMBuildMul(c->b, idx, cg_i64(c, L->strides[i][d]), ""), "");
    }
    LLVMValueRef out_base = LLVMBuildMul(c->b, row, cg_i64(c, inner), "");
    cg_loop j;
    cg_loop_begin(c, &j, from, to, "j");
    LLVMValueRef x[CG_MAX_LEAVES] = {0};
    for (int i = 0; i < e->nleaves; i++) {
        if (!e->leaf_used[i]) continue;
        int64_t st = L->strides[i][r - 1];
        LLVMValueRef off = st == 0 ? base[i] : LLVMBuildAdd(c->b, base[i], st == 1 ? j.i : LLVMBuildMul(c->b, j.i, cg_i64(c, st), ""), "");
        x[i] = cg_load_elem(c, e->leaf_type[i]->dtype, leaf_ops[i].ptr, off);
    }
    LLVMValueRef at = LLVMBuildAdd(c->b, out_base, j.i, "");
    if (out_shift) at = LLVMBuildSub(c->b, at, out_shift, "");
    LLVMValueRef head = e->head >= 0 ? cg_load_elem(c, out_type->dtype, out_ptr, at) : NULL;
    LLVMValueRef y = expr_eval(c, e, x, head, err);
    if (!y) return -1;
    cg_store_elem(c, out_type->dtype, out_ptr, at, y);
    cg_loop_end(c, &j);
    return 0;
}

static void expr_layout(const ew_expr *e, const ir_type *out, ew_layout *L)
{
    /* unused leaves (a head's inputs) take part as broadcast scalars */
    static const ir_type scalar = {.dtype = KILN_F32, .rank = 0};
    const ir_type *types[CG_MAX_LEAVES];
    for (int i = 0; i < e->nleaves; i++) types[i] = e->leaf_used[i] ? e->leaf_type[i] : &scalar;
    layout(out, types, e->nleaves, L);
}

static int lower_expr(cg_ctx *c, cg_kernel *k)
{
    ew_expr e;
    expr_init(&e, k, -1);
    const ir_type *out = k->out[0].type;
    ew_layout L;
    expr_layout(&e, out, &L);
    int r = L.rank;
    int64_t inner = L.dims[r - 1];
    int64_t rows = 1;
    for (int d = 0; d < r - 1; d++) rows *= L.dims[d];
    int64_t chunk = inner < EW_CHUNK ? (inner > 0 ? inner : 1) : EW_CHUNK;
    int64_t nchunks = (inner + chunk - 1) / chunk;
    if (rows == 0 || inner == 0) {
        k->work = 1; /* nothing to do */
        return 0;
    }
    k->work = rows * nchunks;
    k->grain = 32768 / chunk > 0 ? 32768 / chunk : 1;
    cg_loop w;
    cg_loop_begin(c, &w, k->begin, k->end, "w");
    LLVMValueRef row = LLVMBuildSDiv(c->b, w.i, cg_i64(c, nchunks), "");
    LLVMValueRef ch = LLVMBuildSRem(c->b, w.i, cg_i64(c, nchunks), "");
    LLVMValueRef from = LLVMBuildMul(c->b, ch, cg_i64(c, chunk), "");
    LLVMValueRef to = LLVMBuildAdd(c->b, from, cg_i64(c, chunk), "");
    to = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, to, cg_i64(c, inner), ""), to, cg_i64(c, inner), "");
    if (emit_row(c, &e, &L, k->in, k->out[0].ptr, NULL, out, row, from, to, k->err))
        return cg_error(c, k, KILN_ERR_INTERNAL, "no elementwise lowering");
    cg_loop_end(c, &w);
    return 0;
}

static int lower_elementwise(cg_ctx *c, cg_kernel *k) { return lower_expr(c, k); }

int cg_lower_group(cg_ctx *c, cg_kernel *k) { return lower_expr(c, k); }

/* Emits a function that evaluates expression e over elements [off, off +
 * cnt) of a contiguous tensor of type out: `void epi(ptr args, i64 off,
 * i64 cnt)` writing into the kernel's output (prologue false), or `void
 * pro(ptr args, i64 off, i64 cnt, ptr dst)` writing element off + j to
 * dst[j] (prologue true). args is the kernel's operand array. */
static LLVMValueRef emit_piecewise(cg_ctx *c, ew_expr *e_in, const ir_type *out, bool prologue, const char *what)
{
    ew_expr e = *e_in;
    if (e.members == &e_in->single) e.members = &e.single;
    ew_layout L;
    expr_layout(&e, out, &L);
    int r = L.rank;
    int64_t inner = L.dims[r - 1];
    LLVMBasicBlockRef saved = LLVMGetInsertBlock(c->b);
    LLVMTypeRef params[4] = {c->t_ptr, c->t_i64, c->t_i64, c->t_ptr};
    LLVMTypeRef ft = LLVMFunctionType(c->t_void, params, prologue ? 4 : 3, 0);
    char name[64];
    snprintf(name, sizeof name, "kiln_%s_%d", what, c->kernel_index);
    LLVMValueRef fn = LLVMAddFunction(c->mod, name, ft);
    LLVMSetLinkage(fn, LLVMInternalLinkage);
    LLVMPositionBuilderAtEnd(c->b, LLVMAppendBasicBlockInContext(c->ctx, fn, "entry"));
    LLVMValueRef args = LLVMGetParam(fn, 0), off = LLVMGetParam(fn, 1), cnt = LLVMGetParam(fn, 2);
    /* the operands, as the kernel has them: leaves, outputs, error slot */
    cg_operand ops[CG_MAX_LEAVES + 2];
    for (int i = 0; i <= e.nleaves + 1; i++) {
        LLVMValueRef idx = cg_i64(c, i);
        ops[i].ptr = LLVMBuildLoad2(c->b, c->t_ptr, LLVMBuildGEP2(c->b, c->t_ptr, args, &idx, 1, ""), "");
        ops[i].type = NULL;
    }
    LLVMValueRef out_ptr = prologue ? LLVMGetParam(fn, 3) : ops[e.nleaves].ptr, err = ops[e.nleaves + 1].ptr;
    LLVMValueRef shift = prologue ? off : NULL;
    /* walk [off, off + cnt) as pieces of rows of the innermost dim */
    LLVMValueRef end = LLVMBuildAdd(c->b, off, cnt, "");
    LLVMBasicBlockRef pre = LLVMGetInsertBlock(c->b);
    LLVMBasicBlockRef head_bb = LLVMAppendBasicBlockInContext(c->ctx, fn, "piece");
    LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(c->ctx, fn, "body");
    LLVMBasicBlockRef exit = LLVMAppendBasicBlockInContext(c->ctx, fn, "exit");
    LLVMBuildBr(c->b, head_bb);
    LLVMPositionBuilderAtEnd(c->b, head_bb);
    LLVMValueRef f = LLVMBuildPhi(c->b, c->t_i64, "f");
    LLVMAddIncoming(f, &off, &pre, 1);
    LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, f, end, ""), body, exit);
    LLVMPositionBuilderAtEnd(c->b, body);
    LLVMValueRef row = LLVMBuildSDiv(c->b, f, cg_i64(c, inner), "");
    LLVMValueRef col = LLVMBuildSRem(c->b, f, cg_i64(c, inner), "");
    LLVMValueRef row_end = LLVMBuildMul(c->b, LLVMBuildAdd(c->b, row, cg_i64(c, 1), ""), cg_i64(c, inner), "");
    LLVMValueRef stop = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, row_end, end, ""), row_end, end, "");
    LLVMValueRef to = LLVMBuildAdd(c->b, col, LLVMBuildSub(c->b, stop, f, ""), "");
    if (emit_row(c, &e, &L, ops, out_ptr, shift, out, row, col, to, err)) return NULL;
    LLVMBasicBlockRef latch = LLVMGetInsertBlock(c->b);
    LLVMAddIncoming(f, &stop, &latch, 1);
    LLVMBuildBr(c->b, head_bb);
    LLVMPositionBuilderAtEnd(c->b, exit);
    LLVMBuildRetVoid(c->b);
    LLVMPositionBuilderAtEnd(c->b, saved);
    return fn;
}

LLVMValueRef cg_emit_epilogue(cg_ctx *c, cg_kernel *k, int head)
{
    ew_expr e;
    expr_init(&e, k, head);
    return emit_piecewise(c, &e, k->out[0].type, false, "epilogue");
}

LLVMValueRef cg_emit_prologue(cg_ctx *c, cg_kernel *k)
{
    ew_expr e;
    expr_init(&e, k, -1);
    if (e.nmembers < 2) return NULL;
    /* the members but the consumer (the root, last) */
    e.nmembers--;
    e.root = e.members[e.nmembers - 1];
    const ir_type *out = &e.g->nodes[e.root].outputs[0];
    return emit_piecewise(c, &e, out, true, "prologue");
}

/* The GPU backend's entry (gpu_emit.c): the value of the kernel's
 * expression at flat element idx of its result -- the root's output, or
 * with prologue the value a reduction group's root reads -- loading the
 * leaves from k->in; a prologue's value is rounded to its dtype. NULL when
 * a member has no elementwise lowering. */
LLVMValueRef cg_emit_expr_at(cg_ctx *c, const cg_kernel *k, bool prologue, LLVMValueRef idx)
{
    ew_expr e;
    expr_init(&e, k, -1);
    if (prologue) {
        if (e.nmembers < 2) return NULL;
        e.nmembers--;
        e.root = e.members[e.nmembers - 1];
    }
    const ir_type *out = prologue ? &e.g->nodes[e.root].outputs[0] : k->out[0].type;
    ew_layout L;
    expr_layout(&e, out, &L);
    LLVMValueRef off[CG_MAX_LEAVES], x[CG_MAX_LEAVES] = {0}, rem = idx;
    for (int i = 0; i < e.nleaves; i++) off[i] = cg_i64(c, 0);
    for (int d = L.rank - 1; d >= 0; d--) {
        LLVMValueRef at = d ? LLVMBuildURem(c->b, rem, cg_i64(c, L.dims[d]), "") : rem;
        if (d) rem = LLVMBuildUDiv(c->b, rem, cg_i64(c, L.dims[d]), "");
        for (int i = 0; i < e.nleaves; i++)
            if (e.leaf_used[i] && L.strides[i][d])
                off[i] = LLVMBuildAdd(c->b, off[i], LLVMBuildMul(c->b, at, cg_i64(c, L.strides[i][d]), ""), "");
    }
    for (int i = 0; i < e.nleaves; i++)
        if (e.leaf_used[i]) x[i] = cg_load_elem(c, e.leaf_type[i]->dtype, k->in[i].ptr, off[i]);
    LLVMValueRef v = expr_eval(c, &e, x, NULL, k->err);
    /* a prologue's value is what the CPU's prologue buffer would hold */
    return v && prologue ? round_to(c, out->dtype, v) : v;
}

/* Assign(var, value): copies value into the variable and into the output. */
static int lower_assign(cg_ctx *c, cg_kernel *k)
{
    int64_t bytes = ir_shape_numel(k->in[1].type->rank, k->in[1].type->dims) * (int64_t)kiln_dtype_size(k->in[1].type->dtype);
    LLVMBuildMemCpy(c->b, k->in[0].ptr, 1, k->in[1].ptr, 1, cg_i64(c, bytes));
    LLVMBuildMemCpy(c->b, k->out[0].ptr, 1, k->in[1].ptr, 1, cg_i64(c, bytes));
    k->work = 1;
    return 0;
}

#define EW(name) int cg_lower_##name(cg_ctx *c, cg_kernel *k) { return lower_elementwise(c, k); }
EW(Identity) EW(Cast)
EW(Add) EW(Sub) EW(Mul) EW(Div) EW(Pow) EW(Maximum) EW(Minimum)
EW(Neg) EW(Abs) EW(Exp) EW(Log) EW(Sqrt) EW(Rsqrt) EW(Reciprocal) EW(Tanh) EW(Sigmoid)
EW(Relu) EW(LeakyRelu) EW(Elu) EW(Gelu) EW(Erf) EW(Softplus) EW(Clip)
EW(Equal) EW(Less) EW(Greater) EW(LessOrEqual) EW(GreaterOrEqual)
EW(Not) EW(And) EW(Or) EW(Xor) EW(Where)
EW(Floor) EW(Ceil) EW(Round) EW(Sign) EW(Sin) EW(Cos) EW(Tan) EW(Asin) EW(Acos) EW(Atan)
EW(Sinh) EW(Cosh) EW(Asinh) EW(Acosh) EW(Atanh) EW(IsNaN) EW(IsInf) EW(Mod)
EW(BitwiseAnd) EW(BitwiseOr) EW(BitwiseXor) EW(BitwiseNot) EW(BitShift)

int cg_lower_Assign(cg_ctx *c, cg_kernel *k) { return lower_assign(c, k); }
