/* lower.c -- the lowering table: op -> the function that emits its kernel.
 * Each op's lowering is `cg_lower_<Op>` in a codegen/lower_*.c file; ops
 * not lowered yet are listed in lower_todo.c. */
#include "cg_internal.h"

static const cg_lower_fn table[] = {
#define IR_OP(name, family) cg_lower_##name,
#include "ops/ops.def"
#undef IR_OP
};

_Static_assert(sizeof table / sizeof table[0] == IR_OP_COUNT, "lowering table and ir_op differ");

cg_lower_fn cg_lowering(ir_op op) { return (unsigned)op < IR_OP_COUNT ? table[op] : NULL; }
