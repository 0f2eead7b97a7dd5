/*
 * cg_gpu_internal.h -- what the GPU code generator's files share
 * (gpu_emit.c builds the kernels, gpu_module.c targets NVPTX, resolves
 * math functions against libdevice, optimizes and prints PTX).
 */
#ifndef KILN_CG_GPU_INTERNAL_H
#define KILN_CG_GPU_INTERNAL_H

#include <llvm-c/TargetMachine.h>

#include "cg_gpu.h"
#include "cg_internal.h"

/* A target machine for nvptx64-nvidia-cuda and sm_<sm>; NULL with status
 * set when LLVM lacks the NVPTX target. */
LLVMTargetMachineRef cg_gpu_target_machine(int sm, int opt_level, kiln_status *status);
/* Gives c->mod tm's triple and data layout. */
void cg_gpu_set_target(cg_ctx *c, LLVMTargetMachineRef tm);
/* After the kernels are emitted: defines the helpers they call, links the
 * libdevice functions they use, internalizes everything but the kernels,
 * verifies and optimizes. */
int cg_gpu_finish_module(cg_ctx *c, const cg_options *o, LLVMTargetMachineRef tm,
                         kiln_status *status);
/* Prints c->mod as PTX into a new NUL-terminated string (caller frees
 * with ir_free). */
int cg_gpu_emit_ptx(cg_ctx *c, LLVMTargetMachineRef tm, char **ptx, size_t *size,
                    kiln_status *status);
/* The libdevice bitcode file to link: KILN_LIBDEVICE, else
 * $CUDA_HOME/nvvm/libdevice/libdevice.10.bc, else /usr/local/cuda's. */
const char *cg_gpu_libdevice_path(char *buf, size_t n);

#endif
