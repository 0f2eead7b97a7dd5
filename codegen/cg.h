/*
 * cg.h -- the code generator's interface. The compiler turns one run
 * signature of a graph (which values are fed, with which shapes; which are
 * fetched; which targets run) into a compiled program: a specialized static
 * graph, a memory plan, and an object file whose entry function runs it.
 * The runtime only loads and runs programs; it never sees LLVM.
 */
#ifndef KILN_CG_H
#define KILN_CG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "../ir/ir.h"

/* ---- The ABI between generated code and the runtime ------------------------
 * Every compiled program exports one entry function:
 *
 *   int32_t entry(void *const *inputs, void *const *outputs,
 *                 void *const *variables, void *arena, const cg_rt *rt);
 *
 * inputs[i] / outputs[i] / variables[k] point at the data of fed input i,
 * fetched output i and variable slot k (shapes fixed by the signature);
 * arena is scratch of the planned size, CG_ALIGN-aligned; rt may be NULL
 * (everything runs on the calling thread). It returns 0, or an error code
 * that cg_program_error turns into a message. It keeps no state between
 * calls, so concurrent calls with separate arenas and outputs are safe. */
#define CG_ALIGN 64
#define CG_ABI_VERSION 1

/* A kernel body: computes work items [begin, end) of its kernel. */
typedef void (*cg_kernel_fn)(void *args, int64_t begin, int64_t end);

typedef struct cg_rt {
    /* Runs fn(args, b, e) over [0, n) split into chunks of at least `grain`
     * items, possibly on several threads, and returns when all are done. */
    void (*parallel_for)(void *pool, cg_kernel_fn fn, void *args, int64_t n, int64_t grain);
    void *pool;
    /* This run's index: random ops draw from stream (seed, run * C + node),
     * as the reference executor does. */
    uint64_t run;
} cg_rt;

typedef int32_t (*cg_entry_fn)(void *const *inputs, void *const *outputs,
                               void *const *variables, void *arena, const cg_rt *rt);
_Static_assert(sizeof(int64_t) * 8 == sizeof(int64_t[KILN_MAX_RANK]), "descriptions hold 8 dims");

/* Error codes returned by entry: (kernel index + 1) << 8 | reason. */
enum { CG_ERR_DIV_ZERO = 1, CG_ERR_INDEX = 2, CG_ERR_EMPTY = 3 };

/* The description table a compiled library exports (kiln_model_describe);
 * the generated header declares the same layout as kiln_model_desc. */
typedef struct {
    const char *name;
    int dtype;
    const char *dtype_name;
    int rank;
    int64_t dims[8];
    size_t size, bytes;
} cg_tensor_desc;

typedef struct {
    int abi_version;
    const char *name;
    int ninputs, noutputs, nvariables;
    const cg_tensor_desc *inputs, *outputs, *variables;
    void *const *variable_data;
    size_t arena_bytes, alignment;
    cg_entry_fn entry;
    const char *(*error)(int code);
} cg_model_desc;

/* ---- Compiling -------------------------------------------------------------- */

typedef struct {
    int opt_level;     /* 0..3 */
    const char *cpu;   /* NULL or "native": the host; else an LLVM CPU name */
    const char *features; /* NULL: the host's when cpu is native, else none */
    const char *entry_name; /* symbol of the entry function */
    /* Ahead-of-time: give the entry hidden visibility, and put each
     * variable's initial value in a writable global "<entry>_var_<k>". */
    int aot;
    /* Graph passes (passes/): a comma-separated pipeline; NULL = the default
     * pipeline when opt_level >= 1 (the training one for a graph that assigns
     * variables), none at 0; "" = none. */
    const char *pipeline;
    const char *print_after; /* print the graph after this pass ("all") */
    int time_passes;         /* print pass times */
    FILE *print_to;          /* where to print (NULL: stderr) */
    int64_t fold_limit;      /* constant folding's largest result in bytes (0: 64 MiB, < 0: no limit) */
} cg_options;

/* The signature a program is compiled for. */
typedef struct {
    int ninputs;
    const kiln_value *inputs;   /* fed values of the source graph */
    const ir_type *input_types; /* their concrete types */
    int noutputs;
    const kiln_value *outputs;
    int ntargets;
    const kiln_value *targets;
} cg_signature;

/* A compiled program: what the runtime needs to run it. */
typedef struct cg_program {
    int ninputs, noutputs, nvars;
    ir_type *input_types;  /* concrete */
    ir_type *output_types; /* concrete */
    int *var_nodes;        /* per variable slot: its node in the source graph */
    bool writes_vars;      /* runs an Assign: needs the variables exclusively */
    size_t arena_size;
    int nkernels;
    char **kernel_names;   /* per kernel: "Op 'node'" for error messages */
    /* The object file (ELF, in memory) holding the entry function. */
    void *object;
    size_t object_size;
    char *entry_name;
    /* Set by whoever loads the object (JIT or a loaded library). */
    cg_entry_fn entry;
} cg_program;

/* Compiles sig over g into a new program (caller frees with
 * cg_program_free). On error returns NULL and sets status. */
cg_program *cg_compile(const kiln_graph *g, const cg_signature *sig, const cg_options *opts,
                       kiln_status *status);
void cg_program_free(cg_program *p);
/* Sets status from an entry function's error code. */
int cg_program_error(const cg_program *p, int32_t code, kiln_status *status);

/* Writes the optimized LLVM IR of sig over g to path (for --emit-llvm). */
int cg_emit_llvm_ir(const kiln_graph *g, const cg_signature *sig, const cg_options *opts,
                    const char *path, kiln_status *status);

#endif
