/* print.c -- the stable text form of a graph (one line per node) and its
 * Graphviz DOT form. The text form is what pass tests compare:
 *   %7 = Conv2D(%3, %5) {strides=[1,1]} : f32[1,64,56,56]
 * Values of output k > 0 print as %N.k. Attributes print in schema order;
 * attributes equal to their default are left out. */
#include <math.h>
#include <string.h>

#include "ir.h"

static void print_value(ir_buf *b, kiln_value v)
{
    if (v.index == 0) ir_buf_printf(b, "%%%d", (int)v.node);
    else ir_buf_printf(b, "%%%d.%d", (int)v.node, (int)v.index);
}

static void print_double(ir_buf *b, double v)
{
    if (isinf(v)) ir_buf_puts(b, v < 0 ? "-inf" : "inf");
    else if (isnan(v)) ir_buf_puts(b, "nan");
    else ir_buf_printf(b, "%.9g", v);
}

static bool attr_is_default(const ir_attrdef *ad, const ir_attr *a)
{
    if (ad->required) return false;
    switch (a->kind) {
    case IR_ATTR_NONE: return true;
    case IR_ATTR_INT:
    case IR_ATTR_DTYPE: return a->u.i == ad->def_i;
    case IR_ATTR_FLOAT: return a->u.f == ad->def_f || (isnan(a->u.f) && isnan(ad->def_f));
    case IR_ATTR_STRING: return ad->def_s && strcmp(ad->def_s, a->u.s) == 0;
    default: return false;
    }
}

static void print_attr(ir_buf *b, const ir_attr *a)
{
    switch (a->kind) {
    case IR_ATTR_NONE: ir_buf_puts(b, "none"); break;
    case IR_ATTR_INT: ir_buf_printf(b, "%lld", (long long)a->u.i); break;
    case IR_ATTR_DTYPE: ir_buf_puts(b, kiln_dtype_name((kiln_dtype)a->u.i)); break;
    case IR_ATTR_FLOAT: print_double(b, a->u.f); break;
    case IR_ATTR_STRING: ir_buf_printf(b, "\"%s\"", a->u.s); break;
    case IR_ATTR_INTS:
        ir_buf_puts(b, "[");
        for (int i = 0; i < a->n; i++) ir_buf_printf(b, "%s%lld", i ? "," : "", (long long)a->u.ints[i]);
        ir_buf_puts(b, "]");
        break;
    case IR_ATTR_FLOATS:
        ir_buf_puts(b, "[");
        for (int i = 0; i < a->n; i++) {
            if (i) ir_buf_puts(b, ",");
            print_double(b, a->u.floats[i]);
        }
        ir_buf_puts(b, "]");
        break;
    case IR_ATTR_TENSOR: {
        ir_type t;
        char s[IR_TYPE_STR_MAX];
        ir_tensor_type(a->u.t, &t);
        ir_buf_printf(b, "<%s", ir_type_str(&t, s, sizeof s));
        /* Small tensors print their values so tests can read them. */
        if (a->u.t->size > 0 && a->u.t->size <= 8) {
            ir_buf_puts(b, " ");
            for (size_t i = 0; i < a->u.t->size; i++) {
                if (i) ir_buf_puts(b, ",");
                if (ir_dtype_is_float(t.dtype)) print_double(b, ir_load_f64(t.dtype, a->u.t->data, i));
                else if (t.dtype == KILN_U64) ir_buf_printf(b, "%llu", (unsigned long long)ir_load_i64(t.dtype, a->u.t->data, i));
                else ir_buf_printf(b, "%lld", (long long)ir_load_i64(t.dtype, a->u.t->data, i));
            }
        }
        ir_buf_puts(b, ">");
        break;
    }
    }
}

void ir_print_node(ir_buf *b, const kiln_graph *g, int node)
{
    const ir_node *n = &g->nodes[node];
    const ir_opdef *def = ir_op_def(n->op);
    ir_buf_printf(b, "%%%d", node);
    for (int k = 1; k < n->noutputs; k++) ir_buf_printf(b, ", %%%d.%d", node, k);
    ir_buf_printf(b, " = %s(", def->name);
    for (int i = 0; i < n->ninputs; i++) {
        if (i) ir_buf_puts(b, ", ");
        print_value(b, n->inputs[i]);
    }
    ir_buf_puts(b, ")");
    int shown = 0;
    for (int k = 0; k < def->nattrs; k++) {
        if (attr_is_default(&def->attrs[k], &n->attrs[k])) continue;
        ir_buf_puts(b, shown++ ? ", " : " {");
        ir_buf_printf(b, "%s=", def->attrs[k].name);
        print_attr(b, &n->attrs[k]);
    }
    if (shown) ir_buf_puts(b, "}");
    ir_buf_puts(b, " :");
    for (int k = 0; k < n->noutputs; k++) {
        char s[IR_TYPE_STR_MAX];
        ir_buf_printf(b, "%s %s", k ? "," : "", ir_type_str(&n->outputs[k], s, sizeof s));
    }
    ir_buf_printf(b, "  # %s", n->name);
    if (g->kernel_of && g->kernel_of[node] >= 0)
        ir_buf_printf(b, g->kernel_of[node] == node ? "  [kernel %%%d]" : "  [in kernel %%%d]", g->kernel_of[node]);
    const ir_mem_plan *p = g->mem_plan;
    if (!p || p->nnodes != g->nnodes) return;
    bool any = false;
    for (int k = 0; k < n->noutputs; k++) {
        int v = p->base[node] + k;
        if (p->kind[v] != IR_MEM_ARENA && p->kind[v] != IR_MEM_FETCH) continue;
        ir_buf_puts(b, any ? ", " : "  [");
        if (n->noutputs > 1) ir_buf_printf(b, "%d: ", k);
        if (p->kind[v] == IR_MEM_FETCH) {
            ir_buf_printf(b, "fetch %d", p->index[v]);
        } else {
            ir_buf_printf(b, "arena +%lld", (long long)p->offset[v]);
            if (p->alias[v] >= 0) {
                int a = p->alias[v], src = 0;
                while (src + 1 < g->nnodes && p->base[src + 1] <= a) src++;
                ir_buf_printf(b, " in place of %%%d", src);
                if (a - p->base[src]) ir_buf_printf(b, ".%d", a - p->base[src]);
            }
        }
        any = true;
    }
    if (any) ir_buf_puts(b, "]");
}

char *ir_graph_text(const kiln_graph *g)
{
    ir_buf b = {0};
    for (int i = 0; i < g->nnodes; i++) {
        ir_print_node(&b, g, i);
        ir_buf_puts(&b, "\n");
    }
    return ir_buf_take(&b);
}

static void dot_escape(ir_buf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') ir_buf_printf(b, "\\%c", *s);
        else ir_buf_printf(b, "%c", *s);
    }
}

char *ir_graph_dot(const kiln_graph *g)
{
    ir_buf b = {0};
    ir_buf_puts(&b, "digraph kiln {\n  rankdir=TB;\n  node [shape=box, fontname=\"monospace\"];\n");
    for (int i = 0; i < g->nnodes; i++) {
        const ir_node *n = &g->nodes[i];
        const ir_opdef *def = ir_op_def(n->op);
        char s[IR_TYPE_STR_MAX];
        const char *shape = def->flags & IR_OPF_SOURCE ? "ellipse" : "box";
        ir_buf_printf(&b, "  n%d [shape=%s, label=\"", i, shape);
        dot_escape(&b, n->name);
        ir_buf_printf(&b, "\\n%s\\n%s\"];\n", def->name,
                      n->noutputs ? ir_type_str(&n->outputs[0], s, sizeof s) : "");
        for (int k = 0; k < n->ninputs; k++) {
            kiln_value v = n->inputs[k];
            ir_buf_printf(&b, "  n%d -> n%d", (int)v.node, i);
            if (v.index) ir_buf_printf(&b, " [label=\"%d\"]", (int)v.index);
            ir_buf_puts(&b, ";\n");
        }
    }
    ir_buf_puts(&b, "}\n");
    return ir_buf_take(&b);
}
