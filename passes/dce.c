/* dce.c -- dead-code elimination: drops every node the declared outputs do
 * not need (placeholders and variables stay). Compaction does the work. */
#include "passes.h"

int pass_dce(kiln_graph *g, pass_context *cx, bool *changed)
{
    int before = g->nnodes;
    int rc = pass_compact(g, cx);
    *changed = g->nnodes != before;
    return rc;
}
