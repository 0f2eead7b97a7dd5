/* opdoc.c -- prints docs/ops.md, the op table, from the op registry, so the
 * docs always list exactly the ops kiln has. `make docs` runs it. */
#include <math.h>
#include <stdio.h>

#include "ir.h"

static void print_default(const ir_attrdef *a)
{
    if (a->required) {
        printf("required");
        return;
    }
    switch (a->kind) {
    case IR_ATTR_INT: printf("%lld", (long long)a->def_i); break;
    case IR_ATTR_DTYPE: printf("%s", kiln_dtype_name((kiln_dtype)a->def_i)); break;
    case IR_ATTR_FLOAT:
        if (isinf(a->def_f)) printf("%sinf", a->def_f < 0 ? "-" : "");
        else printf("%g", a->def_f);
        break;
    case IR_ATTR_STRING: printf(a->def_s ? "\"%s\"" : "unset", a->def_s); break;
    default: printf("unset"); break;
    }
}

int main(void)
{
    printf("# Ops\n\n"
           "Generated from the op registry by `make docs` (tools/opdoc.c); do not edit.\n"
           "Every op has shape/type inference and a reference kernel. Attributes are\n"
           "given to `kiln_op` with `kiln_attrs_*`; an unset optional attribute takes\n"
           "the default shown.\n\n"
           "| op | inputs | outputs | attributes (kind = default) | what it does |\n"
           "|---|---|---|---|---|\n");
    for (int i = 0; i < IR_OP_COUNT; i++) {
        const ir_opdef *d = ir_op_def((ir_op)i);
        printf("| %s | ", d->name);
        if (d->max_inputs < 0) printf("%d or more", d->min_inputs);
        else if (d->min_inputs == d->max_inputs) printf("%d", d->min_inputs);
        else printf("%d to %d", d->min_inputs, d->max_inputs);
        printf(" | ");
        if (d->noutputs < 0) printf("varies");
        else printf("%d", d->noutputs);
        printf(" | ");
        for (int k = 0; k < d->nattrs; k++) {
            printf("%s`%s`: %s = ", k ? "<br>" : "", d->attrs[k].name,
                   ir_attr_kind_name(d->attrs[k].kind));
            print_default(&d->attrs[k]);
        }
        printf(" | %s |\n", d->doc ? d->doc : "");
    }
    return 0;
}
