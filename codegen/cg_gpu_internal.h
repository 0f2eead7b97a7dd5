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

/* The cuBLAS calls that compute MatMul or Gemm node n of g (its product
 * alone: alpha * op(A) op(B), beta 0): up to max descriptors in out,
 * their number in *count (0 for an empty result). Operands (a, b, c) and
 * labels are left to the caller. KILN_ERR_UNIMPLEMENTED for what cuBLAS
 * cannot take (integer dtypes, sizes past int, too many calls). */
int cg_gpu_plan_gemm(const kiln_graph *g, const ir_node *n, cg_gpu_gemm *out, int max, int *count,
                     kiln_status *status);

#endif
