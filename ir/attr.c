/* attr.c -- typed attributes: the public kiln_attrs bag and the copies kept
 * on nodes. */
#include <string.h>

#include "ir.h"

const char *ir_attr_kind_name(ir_attr_kind k)
{
    static const char *const names[] = {"none",   "int",    "float",  "string",
                                        "ints",   "floats", "tensor", "dtype"};
    return (unsigned)k < sizeof names / sizeof names[0] ? names[k] : "?";
}

void ir_attr_clear(ir_attr *a)
{
    switch (a->kind) {
    case IR_ATTR_STRING: ir_free(a->u.s); break;
    case IR_ATTR_INTS: ir_free(a->u.ints); break;
    case IR_ATTR_FLOATS: ir_free(a->u.floats); break;
    case IR_ATTR_TENSOR: kiln_tensor_free(a->u.t); break;
    default: break;
    }
    memset(a, 0, sizeof *a);
}

bool ir_attr_copy(ir_attr *dst, const ir_attr *src)
{
    ir_attr r = *src;
    switch (src->kind) {
    case IR_ATTR_STRING:
        r.u.s = ir_strdup(src->u.s);
        if (!r.u.s) return false;
        break;
    case IR_ATTR_INTS:
        r.u.ints = ir_malloc(sizeof(int64_t) * (size_t)(src->n ? src->n : 1));
        if (!r.u.ints) return false;
        if (src->n) memcpy(r.u.ints, src->u.ints, sizeof(int64_t) * (size_t)src->n);
        break;
    case IR_ATTR_FLOATS:
        r.u.floats = ir_malloc(sizeof(double) * (size_t)(src->n ? src->n : 1));
        if (!r.u.floats) return false;
        if (src->n) memcpy(r.u.floats, src->u.floats, sizeof(double) * (size_t)src->n);
        break;
    case IR_ATTR_TENSOR:
        r.u.t = kiln_tensor_copy(src->u.t);
        if (!r.u.t) return false;
        break;
    default: break;
    }
    *dst = r;
    return true;
}

bool ir_attr_equal(const ir_attr *a, const ir_attr *b)
{
    if (a->kind != b->kind) return false;
    switch (a->kind) {
    case IR_ATTR_NONE: return true;
    case IR_ATTR_INT:
    case IR_ATTR_DTYPE: return a->u.i == b->u.i;
    case IR_ATTR_FLOAT: return memcmp(&a->u.f, &b->u.f, sizeof(double)) == 0;
    case IR_ATTR_STRING: return strcmp(a->u.s, b->u.s) == 0;
    case IR_ATTR_INTS:
        return a->n == b->n && memcmp(a->u.ints, b->u.ints, sizeof(int64_t) * (size_t)a->n) == 0;
    case IR_ATTR_FLOATS:
        return a->n == b->n && memcmp(a->u.floats, b->u.floats, sizeof(double) * (size_t)a->n) == 0;
    case IR_ATTR_TENSOR: {
        const kiln_tensor *x = a->u.t, *y = b->u.t;
        if (x->dtype != y->dtype || x->rank != y->rank) return false;
        if (memcmp(x->dims, y->dims, sizeof(int64_t) * (size_t)x->rank)) return false;
        return memcmp(x->data, y->data, kiln_tensor_nbytes(x)) == 0;
    }
    }
    return false;
}

/* ---- the public bag ---- */

kiln_attrs *kiln_attrs_new(void) { return ir_calloc(1, sizeof(kiln_attrs)); }

void kiln_attrs_free(kiln_attrs *a)
{
    if (!a) return;
    for (int i = 0; i < a->n; i++) {
        ir_free(a->names[i]);
        ir_attr_clear(&a->vals[i]);
    }
    ir_free(a->names);
    ir_free(a->vals);
    ir_free(a);
}

/* Stores a copy of v under name, replacing an earlier value. */
static void attrs_set(kiln_attrs *a, const char *name, const ir_attr *v)
{
    if (!a) return;
    if (!name) {
        a->oom = true; /* reported by kiln_op as a bad attribute bag */
        return;
    }
    ir_attr copy;
    if (!ir_attr_copy(&copy, v)) {
        a->oom = true;
        return;
    }
    for (int i = 0; i < a->n; i++) {
        if (strcmp(a->names[i], name) == 0) {
            ir_attr_clear(&a->vals[i]);
            a->vals[i] = copy;
            return;
        }
    }
    if (a->n == a->cap) {
        int cap = a->cap ? a->cap * 2 : 8;
        char **names = ir_realloc(a->names, sizeof(char *) * (size_t)cap);
        if (names) a->names = names;
        ir_attr *vals = names ? ir_realloc(a->vals, sizeof(ir_attr) * (size_t)cap) : NULL;
        if (!vals) {
            ir_attr_clear(&copy);
            a->oom = true;
            return;
        }
        a->vals = vals;
        a->cap = cap;
    }
    char *nm = ir_strdup(name);
    if (!nm) {
        ir_attr_clear(&copy);
        a->oom = true;
        return;
    }
    a->names[a->n] = nm;
    a->vals[a->n] = copy;
    a->n++;
}

void kiln_attrs_int(kiln_attrs *a, const char *name, int64_t v)
{
    ir_attr x = {.kind = IR_ATTR_INT, .u.i = v};
    attrs_set(a, name, &x);
}

void kiln_attrs_float(kiln_attrs *a, const char *name, double v)
{
    ir_attr x = {.kind = IR_ATTR_FLOAT, .u.f = v};
    attrs_set(a, name, &x);
}

void kiln_attrs_string(kiln_attrs *a, const char *name, const char *v)
{
    if (!v) {
        if (a) a->oom = true;
        return;
    }
    ir_attr x = {.kind = IR_ATTR_STRING, .u.s = (char *)v};
    attrs_set(a, name, &x);
}

void kiln_attrs_ints(kiln_attrs *a, const char *name, const int64_t *v, int n)
{
    if (n < 0 || (n > 0 && !v)) {
        if (a) a->oom = true;
        return;
    }
    ir_attr x = {.kind = IR_ATTR_INTS, .n = n, .u.ints = (int64_t *)v};
    attrs_set(a, name, &x);
}

void kiln_attrs_floats(kiln_attrs *a, const char *name, const double *v, int n)
{
    if (n < 0 || (n > 0 && !v)) {
        if (a) a->oom = true;
        return;
    }
    ir_attr x = {.kind = IR_ATTR_FLOATS, .n = n, .u.floats = (double *)v};
    attrs_set(a, name, &x);
}

void kiln_attrs_tensor(kiln_attrs *a, const char *name, const kiln_tensor *v)
{
    if (!v) {
        if (a) a->oom = true;
        return;
    }
    ir_attr x = {.kind = IR_ATTR_TENSOR, .u.t = (kiln_tensor *)v};
    attrs_set(a, name, &x);
}

void kiln_attrs_dtype(kiln_attrs *a, const char *name, kiln_dtype v)
{
    ir_attr x = {.kind = IR_ATTR_DTYPE, .u.i = v};
    attrs_set(a, name, &x);
}
