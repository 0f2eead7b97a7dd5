/* rt_jit.h -- the JIT loader and the compiled-program backend of sessions. */
#ifndef KILN_RT_JIT_H
#define KILN_RT_JIT_H

#include "../codegen/cg.h"
#include "runtime.h"

typedef struct rt_jit rt_jit;
rt_jit *rt_jit_new(kiln_status *st);
void rt_jit_free(rt_jit *j);
/* Adds p's object to the JIT and sets p->entry. */
int rt_jit_load(rt_jit *j, cg_program *p, kiln_status *st);

#endif
