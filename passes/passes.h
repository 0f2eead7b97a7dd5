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
    int64_t fold_limit;       /* constant folding: largest folded result, in bytes (<= 0: no limit) */
    const char *disabled;     /* comma-separated pass names to skip */
    int nfetched;             /* plan: the first nfetched declared outputs are fetched (-1: all) */
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

/* The default pipelines, as comma-separated lists: for inference graphs,
 * and for training graphs (graphs that assign variables). */
const char *pass_default_pipeline(void);
const char *pass_training_pipeline(void);

/* Memory planning (plan.c): records on g (g->mem_plan) where each value
 * lives when g runs; the first nfetched declared outputs (-1: all) are the
 * fetched values. A graph whose shapes are not all static gets no plan
 * (g->mem_plan NULL) and no error. */
int pass_plan_memory(kiln_graph *g, int nfetched, kiln_status *status);
#define PASS_PLAN_ALIGN 64 /* arena offsets are multiples of this */

/* Runs a comma-separated list of pass names over g. Unknown names are an
 * error listing the known passes. */
int pass_run_pipeline(kiln_graph *g, const char *pipeline, pass_context *cx);

/* Compacts g after a rewrite and folds the renumbering into cx->remap. */
int pass_compact(kiln_graph *g, pass_context *cx);

/* Forward substitution, for passes that walk the graph once in node order
 * and replace values (fold, simplify, fold_bn). Outputs of the nodes present
 * at pass_rewrite_begin can be replaced by other values: earlier ones, or
 * nodes the pass adds at the end. When the walk reaches a node,
 * pass_rewrite_inputs points its inputs at their replacements, so rewrites
 * chain (a folded node's users see the new constant). pass_rewrite_finish
 * redirects the remaining uses and the declared outputs, compacts, and gives
 * each surviving new node that replaced a node's output 0 the old node's
 * name. Every function returns KILN_OK or an error with cx->status set. On
 * an error the graph computes what it did before the pass: the original
 * inputs and outputs are restored (new nodes may stay at the end, unused). */
typedef struct {
    int nnodes;       /* nodes when begun: only their outputs are replaced */
    int *base;        /* node i's outputs are slots base[i] .. base[i+1]-1 */
    kiln_value *to;   /* each slot's replacement (the value itself when none) */
    const char **rename_from, **rename_to; /* new node's name -> the old name */
    int nrename, caprename;
    kiln_value *saved; /* the inputs of the original nodes, then the declared outputs */
    bool changed;
} pass_rewrite;

int pass_rewrite_begin(pass_rewrite *rw, const kiln_graph *g, pass_context *cx);
void pass_rewrite_inputs(const pass_rewrite *rw, kiln_graph *g, int node);
/* The current replacement of v (v itself when none). */
kiln_value pass_rewrite_value(const pass_rewrite *rw, kiln_value v);
/* Replaces every use of old (an output of a node present at begin) by repl. */
int pass_rewrite_replace(pass_rewrite *rw, kiln_graph *g, kiln_value old, kiln_value repl,
                         pass_context *cx);
/* After compaction, new node `node` is to take `name` (a name in g's arena,
 * of a node present at begin) if that node is gone by then. */
int pass_rewrite_name(pass_rewrite *rw, const kiln_graph *g, int node, const char *name, pass_context *cx);
/* Finishes (see above) and frees rw; sets *changed when anything was replaced. */
int pass_rewrite_finish(pass_rewrite *rw, kiln_graph *g, pass_context *cx, bool *changed);
/* On an error in the walk: restores the original inputs, drops the nodes
 * the pass added if it can, and frees rw; cx->status keeps the error. */
void pass_rewrite_stop(pass_rewrite *rw, kiln_graph *g, pass_context *cx);
/* Frees rw without touching the graph. */
void pass_rewrite_free(pass_rewrite *rw);

/* Adds a Constant node holding a copy of t and stores its index in *node;
 * `what` names the node it is made for, in the error message. */
int pass_add_constant(kiln_graph *g, const kiln_tensor *t, const char *what, pass_context *cx,
                      int *node);
/* Adds an auto-named node (ir_graph_add_node) and stores its index in
 * *node; on failure the graph's error is copied into cx->status. */
int pass_add_node(kiln_graph *g, ir_op op, const kiln_value *inputs, int ninputs,
                  const kiln_attrs *attrs, pass_context *cx, int *node);

/* The passes. */
int pass_dce(kiln_graph *g, pass_context *cx, bool *changed);
int pass_cse(kiln_graph *g, pass_context *cx, bool *changed);
int pass_fuse(kiln_graph *g, pass_context *cx, bool *changed);
int pass_fold(kiln_graph *g, pass_context *cx, bool *changed);
int pass_simplify(kiln_graph *g, pass_context *cx, bool *changed);
int pass_fold_bn(kiln_graph *g, pass_context *cx, bool *changed);
int pass_plan(kiln_graph *g, pass_context *cx, bool *changed);

#endif
