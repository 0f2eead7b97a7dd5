/* jit.c -- loads compiled programs' object files into the process with
 * LLVM's ORC LLJIT and finds their entry functions. One JIT per session;
 * symbols the code needs from the process (libm, memcpy) resolve through
 * the process's own symbol table. */
#include <stdio.h>

#include <llvm-c/Core.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <llvm-c/Target.h>

#include "rt_jit.h"

struct rt_jit {
    LLVMOrcLLJITRef jit;
    LLVMOrcJITDylibRef dylib;
};

static pthread_once_t jit_once = PTHREAD_ONCE_INIT;

static void init_targets(void)
{
    LLVMInitializeNativeTarget();
    LLVMInitializeNativeAsmPrinter();
}

static int llvm_error(kiln_status *st, const char *what, LLVMErrorRef e)
{
    char *m = LLVMGetErrorMessage(e);
    int rc = ir_set_status(st, KILN_ERR_INTERNAL, "%s: %s", what, m);
    LLVMDisposeErrorMessage(m);
    return rc;
}

rt_jit *rt_jit_new(kiln_status *st)
{
    pthread_once(&jit_once, init_targets);
    rt_jit *j = ir_calloc(1, sizeof *j);
    if (!j) {
        ir_set_status(st, KILN_ERR_OUT_OF_MEMORY, "JIT: out of memory");
        return NULL;
    }
    LLVMErrorRef e = LLVMOrcCreateLLJIT(&j->jit, NULL);
    if (e) {
        llvm_error(st, "cannot create the LLVM JIT", e);
        ir_free(j);
        return NULL;
    }
    j->dylib = LLVMOrcLLJITGetMainJITDylib(j->jit);
    LLVMOrcDefinitionGeneratorRef gen = NULL;
    e = LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(&gen, LLVMOrcLLJITGetGlobalPrefix(j->jit), NULL, NULL);
    if (e) {
        llvm_error(st, "JIT: cannot search the process's symbols", e);
        rt_jit_free(j);
        return NULL;
    }
    LLVMOrcJITDylibAddGenerator(j->dylib, gen);
    return j;
}

void rt_jit_free(rt_jit *j)
{
    if (!j) return;
    if (j->jit) {
        LLVMErrorRef e = LLVMOrcDisposeLLJIT(j->jit);
        if (e) LLVMConsumeError(e);
    }
    ir_free(j);
}

int rt_jit_load(rt_jit *j, cg_program *p, kiln_status *st)
{
    LLVMMemoryBufferRef buf = LLVMCreateMemoryBufferWithMemoryRangeCopy(p->object, p->object_size, p->entry_name);
    if (!buf) return ir_set_status(st, KILN_ERR_OUT_OF_MEMORY, "JIT: out of memory");
    LLVMErrorRef e = LLVMOrcLLJITAddObjectFile(j->jit, j->dylib, buf);
    if (e) return llvm_error(st, "JIT: cannot add the compiled code", e);
    LLVMOrcExecutorAddress addr = 0;
    e = LLVMOrcLLJITLookup(j->jit, &addr, p->entry_name);
    if (e) return llvm_error(st, "JIT: cannot link the compiled code", e);
    p->entry = (cg_entry_fn)(uintptr_t)addr;
    return KILN_OK;
}
