/* graph_copy.c -- copying nodes between graphs (specialization, passes,
 * loaders): a node's attributes as a bag, and a node added again to
 * another graph, re-checked by inference. */
#include "ir.h"

kiln_attrs *ir_node_attr_bag(const ir_node *n)
{
    const ir_opdef *def = ir_op_def(n->op);
    kiln_attrs *a = kiln_attrs_new();
    if (!a) return NULL;
    for (int k = 0; k < def->nattrs; k++) {
        const ir_attr *v = &n->attrs[k];
        const char *name = def->attrs[k].name;
        switch (v->kind) {
        case IR_ATTR_NONE: break;
        case IR_ATTR_INT: kiln_attrs_int(a, name, v->u.i); break;
        case IR_ATTR_DTYPE: kiln_attrs_dtype(a, name, (kiln_dtype)v->u.i); break;
        case IR_ATTR_FLOAT: kiln_attrs_float(a, name, v->u.f); break;
        case IR_ATTR_STRING: kiln_attrs_string(a, name, v->u.s); break;
        case IR_ATTR_INTS: kiln_attrs_ints(a, name, v->u.ints, v->n); break;
        case IR_ATTR_FLOATS: kiln_attrs_floats(a, name, v->u.floats, v->n); break;
        case IR_ATTR_TENSOR: kiln_attrs_tensor(a, name, v->u.t); break;
        }
    }
    if (a->oom) {
        kiln_attrs_free(a);
        return NULL;
    }
    return a;
}

int ir_graph_copy_node(kiln_graph *dst, const kiln_graph *src, int node, const kiln_value *inputs,
                       const char *name)
{
    const ir_node *n = &src->nodes[node];
    kiln_attrs *a = ir_node_attr_bag(n);
    if (!a) {
        ir_graph_set_error(dst, KILN_ERR_OUT_OF_MEMORY, "%s '%s': out of memory",
                           ir_op_def(n->op)->name, n->name);
        return -1;
    }
    int r = ir_graph_add_node(dst, n->op, name ? name : n->name, inputs, n->ninputs, a);
    kiln_attrs_free(a);
    return r;
}
