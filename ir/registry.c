/* registry.c -- the op table, generated from ops/ops.def: one entry per op,
 * each defined in its family's file under ops/. */
#include <string.h>

#include "ir.h"

static const ir_opdef *const op_table[] = {
#define IR_OP(name, family) &ir_opdef_##name,
#include "ops/ops.def"
#undef IR_OP
};

_Static_assert(sizeof op_table / sizeof op_table[0] == IR_OP_COUNT,
               "op table and ir_op enum differ");

const ir_opdef *ir_op_def(ir_op op)
{
    if ((unsigned)op >= IR_OP_COUNT) return NULL;
    return op_table[op];
}

int ir_op_lookup(const char *name)
{
    if (!name) return -1;
    for (int i = 0; i < IR_OP_COUNT; i++)
        if (strcmp(op_table[i]->name, name) == 0) return i;
    return -1;
}

int ir_op_attr_index(const ir_opdef *def, const char *name)
{
    for (int i = 0; i < def->nattrs; i++)
        if (strcmp(def->attrs[i].name, name) == 0) return i;
    return -1;
}
