/* lower_todo.c -- ops the CPU backend does not compile yet: each reports
 * UNIMPLEMENTED with its name. (Sources have no kernel: the memory plan
 * binds them.) */
#include "cg_internal.h"

#define TODO(name) \
    int cg_lower_##name(cg_ctx *c, cg_kernel *k) { return cg_error(c, k, KILN_ERR_UNIMPLEMENTED, "the CPU backend cannot compile " #name " yet"); }

TODO(Placeholder)
TODO(Constant)
TODO(Variable)
