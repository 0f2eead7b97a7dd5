/* gpu_module.c -- the NVPTX side of the GPU code generator: the target
 * machine, the functions generated kernels call (math from CUDA's
 * libdevice, kiln's integer power), optimization and PTX printing.
 *
 * The expression evaluator shared with the CPU backend calls LLVM math
 * intrinsics (llvm.exp.f32) and C library functions (tanhf). NVPTX selects
 * some intrinsics itself (sqrt, fabs, floor, ceil, roundeven, minimum,
 * maximum); the others, and every library function, are renamed to
 * libdevice's __nv_ functions, whose bitcode is linked into the module.
 * libdevice asks __nvvm_reflect about the target; the nvvm-reflect pass
 * answers before optimization. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <llvm-c/Analysis.h>
#include <llvm-c/BitReader.h>
#include <llvm-c/Linker.h>
#include <llvm-c/Target.h>
#include <llvm-c/Transforms/PassBuilder.h>

#include "cg_gpu_internal.h"

static pthread_once_t nvptx_once = PTHREAD_ONCE_INIT;

static void init_nvptx(void)
{
    LLVMInitializeNVPTXTargetInfo();
    LLVMInitializeNVPTXTarget();
    LLVMInitializeNVPTXTargetMC();
    LLVMInitializeNVPTXAsmPrinter();
}

/* The PTX ISA version LLVM 19 should write for an sm (its default, 6.0,
 * is too old for sm_80 and newer). */
static int ptx_version(int sm)
{
    switch (sm) {
    case 80:
        return 70;
    case 86:
        return 71;
    case 87:
        return 74;
    case 89:
        return 78;
    case 90:
        return 78;
    default:
        return 0;
    }
}

LLVMTargetMachineRef cg_gpu_target_machine(int sm, int opt_level, kiln_status *status)
{
    int ptx = ptx_version(sm);
    if (!ptx) {
        ir_set_status(
            status, KILN_ERR_INVALID_ARGUMENT,
            "the CUDA backend cannot target sm_%d (known: sm_80, sm_86, sm_87, sm_89, sm_90)", sm);
        return NULL;
    }
    pthread_once(&nvptx_once, init_nvptx);
    const char *triple = "nvptx64-nvidia-cuda";
    LLVMTargetRef target;
    char *err = NULL;
    if (LLVMGetTargetFromTriple(triple, &target, &err)) {
        ir_set_status(status, KILN_ERR_UNIMPLEMENTED, "this LLVM has no NVPTX target: %s",
                      err ? err : "");
        LLVMDisposeMessage(err);
        return NULL;
    }
    char cpu[16], features[16];
    snprintf(cpu, sizeof cpu, "sm_%d", sm);
    snprintf(features, sizeof features, "+ptx%d", ptx);
    LLVMCodeGenOptLevel lvl = opt_level <= 0   ? LLVMCodeGenLevelNone
                              : opt_level == 1 ? LLVMCodeGenLevelLess
                              : opt_level == 2 ? LLVMCodeGenLevelDefault
                                               : LLVMCodeGenLevelAggressive;
    LLVMTargetMachineRef tm = LLVMCreateTargetMachine(target, triple, cpu, features, lvl,
                                                      LLVMRelocDefault, LLVMCodeModelDefault);
    if (!tm) ir_set_status(status, KILN_ERR_INTERNAL, "LLVM cannot target %s", cpu);
    return tm;
}

void cg_gpu_set_target(cg_ctx *c, LLVMTargetMachineRef tm)
{
    char *triple = LLVMGetTargetMachineTriple(tm);
    LLVMSetTarget(c->mod, triple);
    LLVMDisposeMessage(triple);
    LLVMTargetDataRef td = LLVMCreateTargetDataLayout(tm);
    char *layout = LLVMCopyStringRepOfTargetData(td);
    LLVMSetDataLayout(c->mod, layout);
    LLVMDisposeMessage(layout);
    LLVMDisposeTargetData(td);
}

const char *cg_gpu_libdevice_path(char *buf, size_t n)
{
    const char *env = getenv("KILN_LIBDEVICE");
    if (env && *env) return env;
    const char *home = getenv("CUDA_HOME");
    snprintf(buf, n, "%s/nvvm/libdevice/libdevice.10.bc", home && *home ? home : "/usr/local/cuda");
    return buf;
}

/* kk_ipow (codegen/kernels/kk_common.c) for the device: integer power with
 * the reference's rules; a negative power of 0 reports CG_ERR_DIV_ZERO.
 * With u64 (kk_upow) every exponent is non-negative. */
static void define_ipow(cg_ctx *c, LLVMValueRef fn, bool u64)
{
    LLVMSetLinkage(fn, LLVMInternalLinkage);
    LLVMValueRef a = LLVMGetParam(fn, 0), b = LLVMGetParam(fn, 1), err = LLVMGetParam(fn, 2);
    LLVMBasicBlockRef entry = LLVMAppendBasicBlockInContext(c->ctx, fn, "entry");
    LLVMBasicBlockRef neg = LLVMAppendBasicBlockInContext(c->ctx, fn, "neg");
    LLVMBasicBlockRef zero = LLVMAppendBasicBlockInContext(c->ctx, fn, "zero");
    LLVMBasicBlockRef frac = LLVMAppendBasicBlockInContext(c->ctx, fn, "frac");
    LLVMBasicBlockRef head = LLVMAppendBasicBlockInContext(c->ctx, fn, "head");
    LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(c->ctx, fn, "body");
    LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(c->ctx, fn, "done");
    LLVMPositionBuilderAtEnd(c->b, entry);
    LLVMValueRef is_neg = u64 ? LLVMConstInt(c->t_i1, 0, 0) : LLVMBuildICmp(c->b, LLVMIntSLT, b, cg_i64(c, 0), "");
    LLVMBuildCondBr(c->b, is_neg, neg, head);
    LLVMPositionBuilderAtEnd(c->b, neg);
    LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntEQ, a, cg_i64(c, 0), ""), zero, frac);
    LLVMPositionBuilderAtEnd(c->b, zero);
    LLVMBuildStore(c->b, cg_i32(c, CG_ERR_DIV_ZERO), err);
    LLVMBuildRet(c->b, cg_i64(c, 0));
    LLVMPositionBuilderAtEnd(c->b, frac);
    /* a == 1 ? 1 : a == -1 ? (b odd ? -1 : 1) : 0 */
    LLVMValueRef odd =
        LLVMBuildICmp(c->b, LLVMIntNE, LLVMBuildAnd(c->b, b, cg_i64(c, 1), ""), cg_i64(c, 0), "");
    LLVMValueRef m1 = LLVMBuildSelect(c->b, odd, cg_i64(c, -1), cg_i64(c, 1), "");
    LLVMValueRef r = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntEQ, a, cg_i64(c, -1), ""), m1,
                                     cg_i64(c, 0), "");
    r = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntEQ, a, cg_i64(c, 1), ""), cg_i64(c, 1), r,
                        "");
    LLVMBuildRet(c->b, r);
    /* square and multiply */
    LLVMPositionBuilderAtEnd(c->b, head);
    LLVMValueRef acc = LLVMBuildPhi(c->b, c->t_i64, "acc");
    LLVMValueRef base = LLVMBuildPhi(c->b, c->t_i64, "base");
    LLVMValueRef e = LLVMBuildPhi(c->b, c->t_i64, "e");
    LLVMValueRef one = cg_i64(c, 1);
    LLVMAddIncoming(acc, &one, &entry, 1);
    LLVMAddIncoming(base, &a, &entry, 1);
    LLVMAddIncoming(e, &b, &entry, 1);
    LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntNE, e, cg_i64(c, 0), ""), body, done);
    LLVMPositionBuilderAtEnd(c->b, body);
    LLVMValueRef bit =
        LLVMBuildICmp(c->b, LLVMIntNE, LLVMBuildAnd(c->b, e, one, ""), cg_i64(c, 0), "");
    LLVMValueRef acc2 = LLVMBuildSelect(c->b, bit, LLVMBuildMul(c->b, acc, base, ""), acc, "");
    LLVMValueRef base2 = LLVMBuildMul(c->b, base, base, "");
    LLVMValueRef e2 = LLVMBuildLShr(c->b, e, one, "");
    LLVMBuildBr(c->b, head);
    LLVMAddIncoming(acc, &acc2, &body, 1);
    LLVMAddIncoming(base, &base2, &body, 1);
    LLVMAddIncoming(e, &e2, &body, 1);
    LLVMPositionBuilderAtEnd(c->b, done);
    LLVMBuildRet(c->b, acc);
}

/* The libdevice name for a declared function, or "" when NVPTX selects it
 * itself. */
static void device_name(const char *name, char *out, size_t n)
{
    static const char *const native[] = {"sqrt",    "fabs",     "floor",  "ceil",   "roundeven",
                                         "minimum", "maximum",  "fptosi", "memcpy", "memset",
                                         "nvvm",    "lifetime", "fma",    "fmuladd"};
    out[0] = 0;
    if (strncmp(name, "llvm.", 5) == 0) {
        const char *stem = name + 5, *dot = strchr(stem, '.');
        size_t len = dot ? (size_t)(dot - stem) : strlen(stem);
        for (size_t i = 0; i < sizeof native / sizeof native[0]; i++)
            if (strlen(native[i]) == len && strncmp(stem, native[i], len) == 0) return;
        bool f32 = dot && strcmp(dot, ".f32") == 0;
        snprintf(out, n, "__nv_%.*s%s", (int)len, stem, f32 ? "f" : "");
        return;
    }
    if (strncmp(name, "__nv_", 5) == 0) return;
    snprintf(out, n, "__nv_%s", name);
}

static int link_libdevice(cg_ctx *c, kiln_status *status, const char *why)
{
    char buf[1024];
    const char *path = cg_gpu_libdevice_path(buf, sizeof buf);
    LLVMMemoryBufferRef mb = NULL;
    char *err = NULL;
    if (LLVMCreateMemoryBufferWithContentsOfFile(path, &mb, &err)) {
        int rc = ir_set_status(status, KILN_ERR_IO,
                               "the CUDA backend needs libdevice for %s: cannot read %s (%s); set "
                               "KILN_LIBDEVICE or CUDA_HOME",
                               why, path, err ? err : "");
        LLVMDisposeMessage(err);
        return rc;
    }
    LLVMModuleRef ld = NULL;
    if (LLVMParseBitcodeInContext2(c->ctx, mb, &ld)) {
        LLVMDisposeMemoryBuffer(mb);
        return ir_set_status(status, KILN_ERR_IO, "%s is not LLVM bitcode", path);
    }
    LLVMDisposeMemoryBuffer(mb);
    LLVMSetTarget(ld, LLVMGetTarget(c->mod));
    LLVMSetDataLayout(ld, LLVMGetDataLayoutStr(c->mod));
    if (LLVMLinkModules2(c->mod, ld))
        return ir_set_status(status, KILN_ERR_INTERNAL, "cannot link %s", path);
    return KILN_OK;
}

static bool is_kernel_name(const char *nm) { return strncmp(nm, "kiln_kernel_", 12) == 0; }

int cg_gpu_finish_module(cg_ctx *c, const cg_options *o, LLVMTargetMachineRef tm,
                         kiln_status *status)
{
    /* Resolve the declarations the kernels call. */
    int nfn = 0;
    for (LLVMValueRef f = LLVMGetFirstFunction(c->mod); f; f = LLVMGetNextFunction(f)) nfn++;
    LLVMValueRef *fns = ir_calloc((size_t)nfn + 1, sizeof(LLVMValueRef));
    if (!fns) return ir_set_status(status, KILN_ERR_OUT_OF_MEMORY, "compile: out of memory");
    nfn = 0;
    for (LLVMValueRef f = LLVMGetFirstFunction(c->mod); f; f = LLVMGetNextFunction(f))
        fns[nfn++] = f;
    const char *first_math = NULL;
    char first_buf[64] = "";
    for (int i = 0; i < nfn; i++) {
        LLVMValueRef f = fns[i];
        if (!LLVMIsDeclaration(f)) continue;
        size_t len;
        const char *nm = LLVMGetValueName2(f, &len);
        if (strcmp(nm, "kk_ipow") == 0 || strcmp(nm, "kk_upow") == 0) {
            define_ipow(c, f, strcmp(nm, "kk_upow") == 0);
            continue;
        }
        char dn[96];
        device_name(nm, dn, sizeof dn);
        if (!dn[0]) continue;
        if (!first_math) {
            snprintf(first_buf, sizeof first_buf, "%s", nm);
            first_math = first_buf;
        }
        LLVMTypeRef ft = LLVMGlobalGetValueType(f);
        LLVMValueRef nf = LLVMGetNamedFunction(c->mod, dn);
        if (!nf) nf = LLVMAddFunction(c->mod, dn, ft);
        LLVMReplaceAllUsesWith(f, nf);
        LLVMDeleteFunction(f);
    }
    ir_free(fns);
    if (first_math && link_libdevice(c, status, first_math))
        return status ? status->code : KILN_ERR_IO;
    /* Everything but the kernels and the constants is internal, so unused
     * libdevice code goes; a declaration left is a function the device
     * cannot call. */
    for (LLVMValueRef f = LLVMGetFirstFunction(c->mod); f; f = LLVMGetNextFunction(f)) {
        size_t len;
        const char *nm = LLVMGetValueName2(f, &len);
        if (LLVMIsDeclaration(f)) {
            if (strncmp(nm, "llvm.", 5) != 0 && strcmp(nm, "__nvvm_reflect") != 0)
                return ir_set_status(
                    status, KILN_ERR_UNIMPLEMENTED,
                    "the CUDA backend has no device version of '%s' (not in libdevice)", nm);
            continue;
        }
        if (!is_kernel_name(nm)) LLVMSetLinkage(f, LLVMInternalLinkage);
    }
    for (LLVMValueRef gv = LLVMGetFirstGlobal(c->mod); gv; gv = LLVMGetNextGlobal(gv)) {
        size_t len;
        const char *nm = LLVMGetValueName2(gv, &len);
        if (strncmp(nm, "kiln_const_", 11) != 0 && !LLVMIsDeclaration(gv))
            LLVMSetLinkage(gv, LLVMInternalLinkage);
    }
    char *msg = NULL;
    if (LLVMVerifyModule(c->mod, LLVMReturnStatusAction, &msg)) {
        int rc = ir_set_status(status, KILN_ERR_INTERNAL,
                               "generated GPU LLVM IR is invalid: %.2000s", msg ? msg : "");
        LLVMDisposeMessage(msg);
        return rc;
    }
    LLVMDisposeMessage(msg);
    int lvl = o->opt_level < 0 ? 0 : o->opt_level > 3 ? 3 : o->opt_level;
    char passes[96];
    if (lvl == 0)
        snprintf(passes, sizeof passes, "function(nvvm-reflect,simplifycfg),globaldce");
    else
        snprintf(passes, sizeof passes, "function(nvvm-reflect),default<O%d>", lvl);
    LLVMPassBuilderOptionsRef po = LLVMCreatePassBuilderOptions();
    LLVMErrorRef e = LLVMRunPasses(c->mod, passes, tm, po);
    LLVMDisposePassBuilderOptions(po);
    if (e) {
        char *em = LLVMGetErrorMessage(e);
        int rc = ir_set_status(status, KILN_ERR_INTERNAL,
                               "LLVM optimization of the GPU module failed: %s", em);
        LLVMDisposeErrorMessage(em);
        return rc;
    }
    return KILN_OK;
}

int cg_gpu_emit_ptx(cg_ctx *c, LLVMTargetMachineRef tm, char **ptx, size_t *size,
                    kiln_status *status)
{
    char *err = NULL;
    LLVMMemoryBufferRef buf = NULL;
    if (LLVMTargetMachineEmitToMemoryBuffer(tm, c->mod, LLVMAssemblyFile, &err, &buf)) {
        int rc = ir_set_status(status, KILN_ERR_INTERNAL, "LLVM PTX generation failed: %s",
                               err ? err : "");
        LLVMDisposeMessage(err);
        return rc;
    }
    size_t n = LLVMGetBufferSize(buf);
    char *s = ir_malloc(n + 1);
    if (!s) {
        LLVMDisposeMemoryBuffer(buf);
        return ir_set_status(status, KILN_ERR_OUT_OF_MEMORY, "compile: out of memory");
    }
    memcpy(s, LLVMGetBufferStart(buf), n);
    s[n] = 0;
    LLVMDisposeMemoryBuffer(buf);
    *ptx = s;
    *size = n;
    return KILN_OK;
}
