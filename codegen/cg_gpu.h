/*
 * cg_gpu.h -- the GPU code generator's interface (gpu_emit.c, gpu_math.c):
 * one run signature of a graph compiled to a PTX module for an NVIDIA GPU,
 * plus what the CUDA runtime (runtime/cuda.c) needs to launch it: per
 * kernel its entry name, launch shape and where each pointer parameter
 * points. The runtime never sees LLVM.
 */
#ifndef KILN_CG_GPU_H
#define KILN_CG_GPU_H

#include "cg.h"

/* Where a kernel's pointer parameter points, on the device. */
typedef enum {
    CG_GPU_INPUT = 1, /* fed input `index` */
    CG_GPU_OUTPUT,    /* fetched output `index` */
    CG_GPU_VAR,       /* variable slot `index` */
    CG_GPU_ARENA,     /* the arena + offset */
    CG_GPU_ERROR,     /* the error word of kernel `index` (int32) */
    CG_GPU_GLOBAL     /* the module global named kiln_const_<index> */
} cg_gpu_where;

typedef struct {
    cg_gpu_where where;
    int index;
    size_t offset;
    size_t bytes; /* bytes of the value (0 for the error word) */
} cg_gpu_param;

typedef struct {
    char name[32]; /* the .entry in the PTX */
    char *label;   /* "Op 'node'", for error messages */
    unsigned grid, block;
    int nparams;
    cg_gpu_param *params; /* pointer parameters, in order */
} cg_gpu_kernel;

typedef struct {
    char *ptx; /* NUL-terminated PTX text */
    size_t ptx_size;
    int sm; /* compute capability it targets, e.g. 90 */
    int ninputs, noutputs, nvars;
    ir_type *input_types, *output_types;
    int *var_nodes; /* per variable slot: its node in the source graph */
    size_t arena_size;
    int nkernels;
    cg_gpu_kernel *kernels;
    /* Per fetched output: where its value is after the kernels ran
     * (CG_GPU_OUTPUT: produced in place). */
    cg_gpu_param *fetch;
} cg_gpu_program;

#define CG_GPU_DEFAULT_SM 90
#define CG_GPU_BLOCK 256
#define CG_GPU_MAX_PARAMS 72 /* a kernel's pointer parameters at most */

/* Compiles sig over g to PTX for sm_<sm> (80 or newer; 0 for the default).
 * Kernels that are elementwise ops or fused elementwise groups (any fan-in,
 * broadcasting), reductions (ReduceSum/Mean/Max/Min/Prod over any axes,
 * with a fused elementwise prologue), ArgMax/ArgMin, Softmax/LogSoftmax over the last
 * axis and the copies (Reshape, Flatten, Squeeze, Unsqueeze, Transpose,
 * Expand) are generated; any other op fails with KILN_ERR_UNIMPLEMENTED
 * naming it. Math functions come from CUDA's libdevice (KILN_LIBDEVICE, or
 * $CUDA_HOME or /usr/local/cuda's nvvm/libdevice/libdevice.10.bc).
 * Caller frees with cg_gpu_program_free; NULL with status set on error. */
cg_gpu_program *cg_gpu_compile(const kiln_graph *g, const cg_signature *sig, const cg_options *opts,
                               int sm, kiln_status *status);
void cg_gpu_program_free(cg_gpu_program *p);
/* Sets status from a kernel's error word (CG_ERR_*). */
int cg_gpu_program_error(const cg_gpu_program *p, int kernel, int32_t code, kiln_status *status);

#endif
