/* kernels.c -- the kernel library (the C files of codegen/kernels), compiled to LLVM
 * bitcode by clang at build time and embedded here, is linked into every
 * generated module. Its functions lose their build-time CPU attributes so
 * they are compiled for the module's target, and become internal there, so
 * the inliner specializes them at their (constant-argument) call sites and
 * drops what a module does not use. */
#include <string.h>

#include <llvm-c/BitReader.h>
#include <llvm-c/Linker.h>

#include "cg_internal.h"

#ifndef KILN_KERNELS_BC
#error "KILN_KERNELS_BC must name the kernel library's bitcode file"
#endif

__asm__(".section .rodata\n"
        ".balign 16\n"
        ".globl cg_kernels_bc_start\n"
        ".hidden cg_kernels_bc_start\n"
        "cg_kernels_bc_start:\n"
        ".incbin \"" KILN_KERNELS_BC "\"\n"
        ".globl cg_kernels_bc_end\n"
        ".hidden cg_kernels_bc_end\n"
        "cg_kernels_bc_end:\n"
        ".byte 0\n"
        ".previous\n");

extern const char cg_kernels_bc_start[], cg_kernels_bc_end[];

int cg_link_kernel_library(cg_ctx *c)
{
    size_t size = (size_t)(cg_kernels_bc_end - cg_kernels_bc_start);
    LLVMMemoryBufferRef buf = LLVMCreateMemoryBufferWithMemoryRange(cg_kernels_bc_start, size, "kiln-kernels", 0);
    LLVMModuleRef lib = NULL;
    if (!buf || LLVMParseBitcodeInContext2(c->ctx, buf, &lib)) {
        if (buf) LLVMDisposeMemoryBuffer(buf);
        return ir_set_status(c->status, KILN_ERR_INTERNAL, "the embedded kernel library does not parse");
    }
    LLVMDisposeMemoryBuffer(buf);
    LLVMSetTarget(lib, LLVMGetTarget(c->mod));
    LLVMSetDataLayout(lib, LLVMGetDataLayoutStr(c->mod));
    for (LLVMValueRef f = LLVMGetFirstFunction(lib); f; f = LLVMGetNextFunction(f)) {
        LLVMRemoveStringAttributeAtIndex(f, LLVMAttributeFunctionIndex, "target-cpu", 10);
        LLVMRemoveStringAttributeAtIndex(f, LLVMAttributeFunctionIndex, "target-features", 15);
        LLVMRemoveStringAttributeAtIndex(f, LLVMAttributeFunctionIndex, "tune-cpu", 8);
    }
    if (LLVMLinkModules2(c->mod, lib))
        return ir_set_status(c->status, KILN_ERR_INTERNAL, "linking the kernel library failed");
    return KILN_OK;
}
