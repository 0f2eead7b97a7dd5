/*
 * passes.h -- graph passes and the pass manager.
 *
 * A pass is `int pass_NAME(kiln_graph *g, pass_context *cx, bool *changed)`
 * in passes/NAME.c, registered by name in manager.c. It rewrites g in place
 * (adding nodes, redirecting uses with ir_replace_uses) and leaves it
 * compacted (ir_graph_compact), recording the node renumbering in the
 * context so callers can follow their nodes. It sets *changed when it
 * changed anything, and returns KILN_OK or an error code with cx->status
 * set. The graph's declared outputs are what must be kept: everything else
 * may be folded, merged or removed (placeholders and variables always stay).
 */
#ifndef KILN_PASSES_H
#define KILN_PASSES_H

#include <stdbool.h>
#include <stdio.h>

#include "../ir/ir.h"

typedef struct pass_context {
    kiln_status *status;
    bool verify;              /* run the verifier after every pass that changed the graph */
    const char *print_after;  /* print the graph after this pass ("all": every pass) */
    FILE *print_to;           /* where (default stderr) */
    bool time_passes;         /* print each pass's time to print_to */
    int64_t fold_limit;       /* constant folding: largest folded result, in bytes */
    const char *disabled;     /* comma-separated pass names to skip */
    /* Renumbering: remap[i] is the current index of the node that was node i
     * when the pipeline started (-1: removed). Kept up to date by passes. */
    int *remap;
    int remap_size;
} pass_context;

typedef int (*pass_fn)(kiln_graph *g, pass_context *cx, bool *changed);

typedef struct {
    const char *name;
    pass_fn fn;
    const char *doc;
} pass_def;

/* Fills defaults (verify on, fold limit 64 MiB). */
void pass_context_init(pass_context *cx, kiln_status *status);
void pass_context_clear(pass_context *cx);

/* The registered passes, and one by name (NULL if unknown). */
const pass_def *pass_list(int *count);
const pass_def *pass_find(const char *name);

/* The default pipeline for inference graphs, as a comma-separated list. */
const char *pass_default_pipeline(void);

/* Runs a comma-separated list of pass names over g. Unknown names are an
 * error listing the known passes. */
int pass_run_pipeline(kiln_graph *g, const char *pipeline, pass_context *cx);

/* Compacts g after a rewrite and folds the renumbering into cx->remap. */
int pass_compact(kiln_graph *g, pass_context *cx);

/* The passes. */
int pass_dce(kiln_graph *g, pass_context *cx, bool *changed);
int pass_cse(kiln_graph *g, pass_context *cx, bool *changed);
int pass_fuse(kiln_graph *g, pass_context *cx, bool *changed);

#endif
