/* manager.c -- the pass registry and the pass manager: runs a named
 * pipeline, verifies after each pass that changed the graph, times passes,
 * and prints the graph after a named pass. */
#include <string.h>
#include <time.h>

#include "passes.h"

static const pass_def passes[] = {
    {"dce", pass_dce, "dead-code elimination: drops nodes no declared output needs"},
    {"fuse", pass_fuse, "fusion: groups elementwise trees, MatMul/Gemm/Conv2D with their elementwise epilogues, and reductions with their elementwise prologues, into single kernels"},
    {"cse", pass_cse, "common-subexpression elimination: merges nodes with the same op, inputs and attributes"},
    {"fold", pass_fold, "constant folding: evaluates nodes whose inputs are all constants (up to the fold limit)"},
    {"simplify", pass_simplify, "algebraic simplification: x+0, x*1, x/1, Neg(Neg x), Identity, no-op shape ops, chains"},
    {"fold_bn", pass_fold_bn, "inference folding: BatchNormalization and per-channel Mul/Add into Conv2D/MatMul/Gemm weights"},
    {"plan", pass_plan, "memory planning: arena offsets by liveness, elementwise outputs in place of dying inputs (runs last)"},
};

const pass_def *pass_list(int *count)
{
    *count = (int)(sizeof passes / sizeof passes[0]);
    return passes;
}

const pass_def *pass_find(const char *name)
{
    for (size_t i = 0; i < sizeof passes / sizeof passes[0]; i++)
        if (strcmp(passes[i].name, name) == 0) return &passes[i];
    return NULL;
}

/* The default pipelines, defined here and nowhere else.
 *
 * Inference: fold constants, simplify, fold batch norms into weights, fold
 * what that exposed, merge duplicates, drop the dead, fuse, plan memory. */
const char *pass_default_pipeline(void)
{
    return "fold,simplify,fold_bn,fold,cse,dce"
           ",fuse,plan";
}

/* Training (a graph that assigns variables: a training step): the same
 * without fold_bn, whose rewrite assumes inference-form batch norms with
 * fixed statistics, which a training graph updates. */
const char *pass_training_pipeline(void)
{
    return "fold,simplify,fold,cse,dce"
           ",fuse,plan";
}

void pass_context_init(pass_context *cx, kiln_status *status)
{
    memset(cx, 0, sizeof *cx);
    cx->status = status;
    cx->verify = true;
    cx->fold_limit = 64 << 20;
    cx->nfetched = -1;
}

void pass_context_clear(pass_context *cx)
{
    ir_free(cx->remap);
    cx->remap = NULL;
    cx->remap_size = 0;
}

int pass_compact(kiln_graph *g, pass_context *cx)
{
    int *r = ir_malloc(sizeof(int) * ((size_t)g->nnodes + 1));
    if (!r) return ir_set_status(cx->status, KILN_ERR_OUT_OF_MEMORY, "pass: out of memory");
    int rc = ir_graph_compact(g, r);
    if (rc) {
        ir_free(r);
        return ir_set_status(cx->status, rc, rc == KILN_ERR_INTERNAL ? "pass: the rewritten graph has a cycle (a pass bug)"
                                                                     : "pass: out of memory");
    }
    for (int i = 0; i < cx->remap_size; i++)
        if (cx->remap[i] >= 0) cx->remap[i] = r[cx->remap[i]];
    ir_free(r);
    return KILN_OK;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static bool disabled(const pass_context *cx, const char *name, size_t len)
{
    if (!cx->disabled) return false;
    for (const char *p = cx->disabled; *p;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == len && strncmp(p, name, n) == 0) return true;
        p += n + (e ? 1 : 0);
    }
    return false;
}

int pass_run_pipeline(kiln_graph *g, const char *pipeline, pass_context *cx)
{
    if (!cx->remap) {
        cx->remap = ir_malloc(sizeof(int) * ((size_t)g->nnodes + 1));
        if (!cx->remap) return ir_set_status(cx->status, KILN_ERR_OUT_OF_MEMORY, "pass: out of memory");
        cx->remap_size = g->nnodes;
        for (int i = 0; i < g->nnodes; i++) cx->remap[i] = i;
    }
    FILE *out = cx->print_to ? cx->print_to : stderr;
    for (const char *p = pipeline; p && *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        char name[64];
        if (len == 0 || len >= sizeof name) {
            p += len + (e ? 1 : 0);
            continue;
        }
        memcpy(name, p, len);
        name[len] = 0;
        p += len + (e ? 1 : 0);
        const pass_def *d = pass_find(name);
        if (!d) {
            ir_buf b = {0};
            int n;
            const pass_def *all = pass_list(&n);
            for (int i = 0; i < n; i++) ir_buf_printf(&b, "%s%s", i ? ", " : "", all[i].name);
            char *list = ir_buf_take(&b);
            int rc = ir_set_status(cx->status, KILN_ERR_NOT_FOUND, "unknown pass '%s' (passes: %s)", name, list ? list : "?");
            ir_free(list);
            return rc;
        }
        if (disabled(cx, name, len)) continue;
        bool changed = false;
        double t0 = now();
        int rc = d->fn(g, cx, &changed);
        double dt = now() - t0;
        if (rc) return rc;
        /* the memory plan describes the graph as the plan pass left it */
        if (changed && d->fn != pass_plan) g->mem_plan = NULL;
        if (cx->time_passes) fprintf(out, "pass %-10s %8.3f ms%s\n", name, dt * 1e3, changed ? "  (changed)" : "");
        if (changed && cx->verify && (rc = ir_verify(g, cx->status))) {
            /* keep the verifier's message, say which pass broke it */
            char *msg = ir_strdup(kiln_status_message(cx->status));
            rc = ir_set_status(cx->status, KILN_ERR_INTERNAL, "after pass '%s': %s", name, msg ? msg : "");
            ir_free(msg);
            return rc;
        }
        if (cx->print_after && (strcmp(cx->print_after, "all") == 0 || strcmp(cx->print_after, name) == 0)) {
            char *text = ir_graph_text(g);
            fprintf(out, "# after %s\n%s", name, text ? text : "(out of memory)\n");
            ir_free(text);
        }
    }
    return KILN_OK;
}

/* ---- Forward substitution for single-walk rewrites (see passes.h) ---- */

int pass_rewrite_begin(pass_rewrite *rw, const kiln_graph *g, pass_context *cx)
{
    memset(rw, 0, sizeof *rw);
    int nn = g->nnodes, slots = 0, nin = g->noutputs;
    rw->nnodes = nn;
    for (int i = 0; i < nn; i++) {
        slots += g->nodes[i].noutputs;
        nin += g->nodes[i].ninputs;
    }
    rw->base = ir_malloc(sizeof(int) * ((size_t)nn + 1));
    rw->to = ir_malloc(sizeof(kiln_value) * ((size_t)slots + 1));
    rw->saved = ir_malloc(sizeof(kiln_value) * ((size_t)nin + 1));
    if (!rw->base || !rw->to || !rw->saved) {
        pass_rewrite_free(rw);
        return ir_set_status(cx->status, KILN_ERR_OUT_OF_MEMORY, "pass: out of memory");
    }
    slots = nin = 0;
    for (int i = 0; i < nn; i++) {
        const ir_node *n = &g->nodes[i];
        rw->base[i] = slots;
        for (int k = 0; k < n->noutputs; k++) rw->to[slots++] = (kiln_value){i, k};
        for (int k = 0; k < n->ninputs; k++) rw->saved[nin++] = n->inputs[k];
    }
    rw->base[nn] = slots;
    for (int k = 0; k < g->noutputs; k++) rw->saved[nin++] = g->outputs[k];
    return KILN_OK;
}

/* Puts back the inputs and outputs saved at begin: the graph is then the
 * original plus the added nodes, which use only earlier nodes. */
static void rewrite_restore(const pass_rewrite *rw, kiln_graph *g)
{
    int nin = 0;
    for (int i = 0; i < rw->nnodes; i++) {
        ir_node *n = &g->nodes[i];
        for (int k = 0; k < n->ninputs; k++) n->inputs[k] = rw->saved[nin++];
    }
    for (int k = 0; k < g->noutputs; k++) g->outputs[k] = rw->saved[nin++];
}

kiln_value pass_rewrite_value(const pass_rewrite *rw, kiln_value v)
{
    if (v.node < 0 || v.node >= rw->nnodes) return v;
    return rw->to[rw->base[v.node] + v.index];
}

void pass_rewrite_inputs(const pass_rewrite *rw, kiln_graph *g, int node)
{
    ir_node *n = &g->nodes[node];
    for (int k = 0; k < n->ninputs; k++) n->inputs[k] = pass_rewrite_value(rw, n->inputs[k]);
}

int pass_rewrite_replace(pass_rewrite *rw, kiln_graph *g, kiln_value old, kiln_value repl,
                         pass_context *cx)
{
    if (old.node < 0 || old.node >= rw->nnodes)
        return ir_set_status(cx->status, KILN_ERR_INTERNAL, "pass: replacing node %d, which the pass added (a pass bug)",
                             (int)old.node);
    /* Replacements are final when made: repl is already substituted, so
     * following it again is not needed. */
    repl = pass_rewrite_value(rw, repl);
    rw->to[rw->base[old.node] + old.index] = repl;
    rw->changed = true;
    if (repl.node < rw->nnodes || repl.index != 0 || old.index != 0) return KILN_OK;
    return pass_rewrite_name(rw, g, repl.node, g->nodes[old.node].name, cx);
}

int pass_rewrite_name(pass_rewrite *rw, const kiln_graph *g, int node, const char *name, pass_context *cx)
{
    /* a new node replacing another new one inherits that one's name-to-be */
    for (int r = rw->nrename - 1; r >= 0; r--)
        if (rw->rename_from[r] == name) {
            name = rw->rename_to[r];
            break;
        }
    if (rw->nrename == rw->caprename) {
        int cap = rw->caprename ? rw->caprename * 2 : 16;
        const char **from = ir_realloc(rw->rename_from, sizeof(char *) * (size_t)cap);
        if (from) rw->rename_from = from;
        const char **to = from ? ir_realloc(rw->rename_to, sizeof(char *) * (size_t)cap) : NULL;
        if (!to) return ir_set_status(cx->status, KILN_ERR_OUT_OF_MEMORY, "pass: out of memory");
        rw->rename_to = to;
        rw->caprename = cap;
    }
    /* Names live in the graph's arena, so both pointers outlive compaction. */
    rw->rename_from[rw->nrename] = g->nodes[node].name;
    rw->rename_to[rw->nrename++] = name;
    return KILN_OK;
}

void pass_rewrite_free(pass_rewrite *rw)
{
    ir_free(rw->base);
    ir_free(rw->to);
    ir_free(rw->rename_from);
    ir_free(rw->rename_to);
    ir_free(rw->saved);
    memset(rw, 0, sizeof *rw);
}

void pass_rewrite_stop(pass_rewrite *rw, kiln_graph *g, pass_context *cx)
{
    if (rw->saved) {
        rewrite_restore(rw, g);
        if (g->nnodes > rw->nnodes) {
            /* drop what the pass added, if memory allows; the status keeps
             * the error that stopped the pass */
            pass_context quiet = *cx;
            quiet.status = NULL;
            (void)pass_compact(g, &quiet); /* shares cx->remap */
        }
    }
    pass_rewrite_free(rw);
}

int pass_rewrite_finish(pass_rewrite *rw, kiln_graph *g, pass_context *cx, bool *changed)
{
    *changed = rw->changed;
    if (!rw->changed) {
        pass_rewrite_free(rw);
        return KILN_OK;
    }
    for (int i = 0; i < rw->nnodes; i++) pass_rewrite_inputs(rw, g, i);
    for (int k = 0; k < g->noutputs; k++) g->outputs[k] = pass_rewrite_value(rw, g->outputs[k]);
    int rc = pass_compact(g, cx);
    if (rc) {
        /* compaction leaves the graph as it was: undo the redirection */
        rewrite_restore(rw, g);
        *changed = false;
    }
    for (int r = 0; rc == KILN_OK && r < rw->nrename; r++) {
        /* the replaced node is gone unless something else still uses it */
        int idx = ir_strmap_get(&g->names, rw->rename_from[r]);
        if (idx < 0 || ir_strmap_get(&g->names, rw->rename_to[r]) >= 0) continue;
        if (!ir_strmap_put(&g->names, rw->rename_to[r], idx))
            rc = ir_set_status(cx->status, KILN_ERR_OUT_OF_MEMORY, "pass: out of memory");
        else {
            ir_strmap_del(&g->names, rw->rename_from[r]);
            g->nodes[idx].name = (char *)rw->rename_to[r];
        }
    }
    pass_rewrite_free(rw);
    return rc;
}

int pass_add_node(kiln_graph *g, ir_op op, const kiln_value *inputs, int ninputs,
                  const kiln_attrs *attrs, pass_context *cx, int *node)
{
    bool had_error = g->error || g->error_code;
    *node = ir_graph_add_node(g, op, NULL, inputs, ninputs, attrs);
    if (*node >= 0) return KILN_OK;
    int rc = ir_set_status(cx->status, g->error_code ? g->error_code : KILN_ERR_INTERNAL, "%s",
                           kiln_graph_error(g) ? kiln_graph_error(g) : "pass: adding a node failed");
    if (!had_error) {
        /* the pass reports its failure; it does not poison the caller's graph */
        ir_free(g->error);
        g->error = NULL;
        g->error_code = 0;
    }
    return rc;
}

int pass_add_constant(kiln_graph *g, const kiln_tensor *t, const char *what, pass_context *cx,
                      int *node)
{
    *node = -1;
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_tensor(a, "value", t);
    if (!a || a->oom) {
        kiln_attrs_free(a);
        return ir_set_status(cx->status, KILN_ERR_OUT_OF_MEMORY, "%s: out of memory", what);
    }
    int rc = pass_add_node(g, IR_OP_Constant, NULL, 0, a, cx, node);
    kiln_attrs_free(a);
    return rc;
}
