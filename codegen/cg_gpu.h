/*
 * cg_gpu.h -- the GPU code generator's interface (gpu_emit.c, gpu_gemm.c,
 * gpu_module.c): one run signature of a graph compiled to a PTX module for
 * an NVIDIA GPU plus cuBLAS calls, and what the CUDA runtime
 * (runtime/cuda.c) needs to run them: the steps in order, per kernel its
 * entry name, launch shape and where each pointer parameter points, per
 * cuBLAS call its sizes, strides and operands. The runtime never sees
 * LLVM.
 *
 * What runs where (docs/gpu.md has the table):
 * - generated PTX: elementwise ops and fused elementwise groups (Where
 *   included), reductions and ArgMax/ArgMin, Softmax/LogSoftmax over any
 *   axis, the copies (Reshape, Flatten, Squeeze, Unsqueeze, Transpose,
 *   Expand, Slice, Tile), Concat, Split, Pad (constant, reflect, edge),
 *   Gather and GatherElements (indices checked into the error word),
 *   MaxPool2D and AveragePool2D (float), LayerNormalization, Assign (the
 *   variable's device slot), the epilogue of a MatMul/Gemm and Gemm's C;
 * - cuBLAS (CG_GPU_STEP_GEMM): MatMul and Gemm in f32, f64, f16, bf16;
 * - anything else: KILN_ERR_UNIMPLEMENTED naming the op (Conv2D,
 *   BatchNormalization, TopK, the scatters, random
 *   ops, the training kernels other than Assign, integer products, ...).
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

/* A matrix product run by cuBLAS (a library step), in the graph's
 * row-major terms: for each of `batch` matrices,
 *   C[m, n] = alpha * op(A)[m, k] op(B)[k, n]
 * where op transposes when trans_a / trans_b. A matrix's address is its
 * operand's (a, b, c: cg_gpu_param, as for kernels) plus the byte offset
 * *_at plus the element stride * the batch index; lda, ldb, ldc are the
 * stored row lengths in elements. The runtime calls it column-major, as
 * C^T = op(B)^T op(A)^T. dtype is f32, f64, f16 or bf16 (computed in f32,
 * f64 for f64). beta is always 0: Gemm's C is added by a generated kernel
 * that follows. */
typedef struct {
    char *label; /* "Op 'node'", for error messages */
    kiln_dtype dtype;
    cg_gpu_param a, b, c;
    size_t a_at, b_at, c_at;
    int64_t m, n, k, lda, ldb, ldc;
    bool trans_a, trans_b;
    int64_t batch, stride_a, stride_b, stride_c;
    double alpha;
} cg_gpu_gemm;

/* The program's steps, run in order on the run's stream. */
typedef enum {
    CG_GPU_STEP_KERNEL = 1, /* launch kernels[index] */
    CG_GPU_STEP_GEMM        /* call cuBLAS for gemms[index] */
} cg_gpu_step_kind;

typedef struct {
    cg_gpu_step_kind kind;
    int index;
} cg_gpu_step;

typedef struct {
    char *ptx; /* NUL-terminated PTX text */
    size_t ptx_size;
    int sm; /* compute capability it targets, e.g. 90 */
    int ninputs, noutputs, nvars;
    ir_type *input_types, *output_types;
    int *var_nodes;   /* per variable slot: its node in the source graph */
    bool writes_vars; /* an Assign kernel writes variable slots */
    size_t arena_size;
    int nkernels;
    cg_gpu_kernel *kernels; /* kernel i owns error word i */
    int ngemms;
    cg_gpu_gemm *gemms;
    int nsteps;
    cg_gpu_step *steps;
    /* Per fetched output: where its value is after the kernels ran
     * (CG_GPU_OUTPUT: produced in place). */
    cg_gpu_param *fetch;
} cg_gpu_program;

#define CG_GPU_DEFAULT_SM 90
#define CG_GPU_BLOCK 256
#define CG_GPU_MAX_PARAMS 72 /* a kernel's pointer parameters at most */

/* Compiles sig over g to PTX for sm_<sm> (80 or newer; 0 for the default)
 * and cuBLAS calls, for the ops listed at the top of this file; any other
 * op fails with KILN_ERR_UNIMPLEMENTED naming it. Math functions come from CUDA's libdevice
 * (KILN_LIBDEVICE, or $CUDA_HOME or /usr/local/cuda's nvvm/libdevice/libdevice.10.bc). Caller frees
 * with cg_gpu_program_free; NULL with status set on error. */
cg_gpu_program *cg_gpu_compile(const kiln_graph *g, const cg_signature *sig, const cg_options *opts,
                               int sm, kiln_status *status);
void cg_gpu_program_free(cg_gpu_program *p);
/* Sets status from a kernel's error word (CG_ERR_*). */
int cg_gpu_program_error(const cg_gpu_program *p, int kernel, int32_t code, kiln_status *status);

#endif
