/* manager.c -- the pass registry and the pass manager: runs a named
 * pipeline, verifies after each pass that changed the graph, times passes,
 * and prints the graph after a named pass. */
#include <string.h>
#include <time.h>

#include "passes.h"

static const pass_def passes[] = {
    {"dce", pass_dce, "dead-code elimination: drops nodes no declared output needs"},
    {"fuse", pass_fuse, "fusion: groups elementwise trees, and MatMul/Gemm with their elementwise epilogues, into single kernels"},
    {"cse", pass_cse, "common-subexpression elimination: merges nodes with the same op, inputs and attributes"},
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

const char *pass_default_pipeline(void) { return "dce,cse,dce,fuse"; }

void pass_context_init(pass_context *cx, kiln_status *status)
{
    memset(cx, 0, sizeof *cx);
    cx->status = status;
    cx->verify = true;
    cx->fold_limit = 64 << 20;
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
