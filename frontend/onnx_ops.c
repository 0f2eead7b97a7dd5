/* onnx_ops.c -- the ONNX op table: for each ONNX op type (ai.onnx domain),
 * the opsets it is supported in and a converter that adds the kiln nodes
 * computing it, following the ONNX operator spec's attribute defaults and
 * versioned semantics (inputs that became attributes in kiln must be
 * constants after folding). Ops kiln cannot express are listed with the
 * reason, for the import's one "unsupported ops" error. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "onnx_internal.h"

#define MAXV 64 /* the most values an int list input may hold here */

/* ---- attributes ---- */

const Onnx__AttributeProto *onnx_attr(const Onnx__NodeProto *n, const char *name)
{
    for (size_t i = 0; i < n->n_attribute; i++)
        if (strcmp(n->attribute[i]->name, name) == 0) return n->attribute[i];
    return NULL;
}

int64_t onnx_attr_int(const Onnx__NodeProto *n, const char *name, int64_t def)
{
    const Onnx__AttributeProto *a = onnx_attr(n, name);
    if (!a) return def;
    if (a->has_i) return a->i;
    if (a->has_f) return (int64_t)a->f;
    return def;
}

double onnx_attr_float(const Onnx__NodeProto *n, const char *name, double def)
{
    const Onnx__AttributeProto *a = onnx_attr(n, name);
    if (!a) return def;
    if (a->has_f) return a->f;
    if (a->has_i) return (double)a->i;
    return def;
}

const char *onnx_attr_string(const Onnx__NodeProto *n, const char *name, const char *def,
                             char *buf, size_t size)
{
    const Onnx__AttributeProto *a = onnx_attr(n, name);
    if (!a || !a->has_s) {
        snprintf(buf, size, "%s", def);
        return buf;
    }
    size_t len = a->s.len < size - 1 ? a->s.len : size - 1;
    if (len) memcpy(buf, a->s.data, len);
    buf[len] = 0;
    return buf;
}

const int64_t *onnx_attr_ints(const Onnx__NodeProto *n, const char *name, int *count)
{
    const Onnx__AttributeProto *a = onnx_attr(n, name);
    if (!a || (a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS && !a->n_ints)) {
        *count = -1;
        return NULL;
    }
    *count = a->n_ints > MAXV * 16 ? MAXV * 16 : (int)a->n_ints;
    return a->ints;
}

/* ---- helpers ---- */

bool onnx_has(const kiln_value *in, int nin, int i) { return i < nin && kiln_value_ok(in[i]); }

static const char *type_str(onnx_ctx *cx, kiln_value v, char *buf)
{
    return ir_type_str(onnx_type(cx, v), buf, IR_TYPE_STR_MAX);
}

/* The values of a constant integer input, into v (at most max). */
int onnx_input_ints(onnx_ctx *cx, const kiln_value *in, int nin, int i, const char *what,
                      int64_t *v, int max, int *n)
{
    *n = 0;
    if (!onnx_has(in, nin, i)) return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "input %d (%s) is missing", i, what);
    const kiln_tensor *t = onnx_value_tensor(cx, in[i]);
    if (!t) {
        char b[IR_TYPE_STR_MAX];
        return onnx_error(cx, KILN_ERR_UNIMPLEMENTED,
                          "input %d (%s, %s) must be a constant for kiln (it is computed at run "
                          "time; give static input shapes so it folds)",
                          i, what, type_str(cx, in[i], b));
    }
    if (!ir_dtype_is_int(t->dtype) || t->rank > 1 || t->size > (size_t)max)
        return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT,
                          "input %d (%s) must be an integer scalar or list of at most %d, got %s[%zu]",
                          i, what, max, kiln_dtype_name(t->dtype), t->size);
    for (size_t k = 0; k < t->size; k++) v[k] = ir_load_i64(t->dtype, t->data, k);
    *n = (int)t->size;
    return KILN_OK;
}

/* A constant scalar input as a double (def when omitted). */
int onnx_input_scalar(onnx_ctx *cx, const kiln_value *in, int nin, int i, const char *what,
                        double def, double *out)
{
    *out = def;
    if (!onnx_has(in, nin, i)) return KILN_OK;
    const kiln_tensor *t = onnx_value_tensor(cx, in[i]);
    if (!t)
        return onnx_error(cx, KILN_ERR_UNIMPLEMENTED, "input %d (%s) must be a constant for kiln", i,
                          what);
    if (t->size != 1)
        return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "input %d (%s) must hold one value, holds %zu",
                          i, what, t->size);
    *out = ir_load_f64(t->dtype, t->data, 0);
    return KILN_OK;
}

kiln_attrs *onnx_bag(onnx_ctx *cx)
{
    kiln_attrs *a = kiln_attrs_new();
    if (!a) onnx_error(cx, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    return a;
}

/* op with one int-list attribute. */
kiln_value onnx_op_ints(onnx_ctx *cx, const char *op, kiln_value x, const char *name,
                          const int64_t *v, int n)
{
    kiln_attrs *a = onnx_bag(cx);
    if (!a) return kiln_value_invalid();
    kiln_attrs_ints(a, name, v, n);
    kiln_value r = onnx_op(cx, op, &x, 1, a);
    kiln_attrs_free(a);
    return r;
}

kiln_value onnx_reshape(onnx_ctx *cx, kiln_value x, const int64_t *dims, int n)
{
    return onnx_op_ints(cx, "Reshape", x, "shape", dims, n);
}

kiln_value onnx_cast(onnx_ctx *cx, kiln_value x, kiln_dtype to)
{
    if (!kiln_value_ok(x) || onnx_type(cx, x)->dtype == to) return x;
    kiln_attrs *a = onnx_bag(cx);
    if (!a) return kiln_value_invalid();
    kiln_attrs_dtype(a, "to", to);
    kiln_value r = onnx_op(cx, "Cast", &x, 1, a);
    kiln_attrs_free(a);
    return r;
}

kiln_value onnx_scalar_like(onnx_ctx *cx, kiln_value x, double v)
{
    if (!kiln_value_ok(x)) return x;
    return onnx_scalar(cx, onnx_type(cx, x)->dtype, v);
}

kiln_value onnx_reduce(onnx_ctx *cx, const char *op, kiln_value x, const int64_t *axes, int n,
                         int keepdims)
{
    kiln_attrs *a = onnx_bag(cx);
    if (!a) return kiln_value_invalid();
    if (n > 0) kiln_attrs_ints(a, "axes", axes, n);
    kiln_attrs_int(a, "keepdims", keepdims);
    kiln_value r = onnx_op(cx, op, &x, 1, a);
    kiln_attrs_free(a);
    return r;
}

int onnx_done(onnx_ctx *cx, kiln_value *out, kiln_value v)
{
    out[0] = v;
    return onnx_failed(cx) ? cx->st->code : KILN_OK;
}

/* Pre-opset-7 broadcasting: with broadcast=1 and an axis, B's dims line up
 * with A's starting at axis. */
static kiln_value legacy_broadcast(onnx_ctx *cx, const Onnx__NodeProto *n, kiln_value a,
                                   kiln_value b)
{
    if (cx->opset >= 7 || !onnx_attr_int(n, "broadcast", 0) || !onnx_attr(n, "axis")) return b;
    const ir_type *ta = onnx_type(cx, a), *tb = onnx_type(cx, b);
    int axis = (int)onnx_attr_int(n, "axis", 0);
    if (axis < 0) axis += ta->rank;
    int trail = ta->rank - axis - tb->rank;
    if (trail <= 0) return b;
    int64_t dims[IR_MAX_RANK];
    int r = 0;
    for (int i = 0; i < tb->rank; i++) dims[r++] = tb->dims[i] < 0 ? -1 : tb->dims[i];
    for (int i = 0; i < trail && r < IR_MAX_RANK; i++) dims[r++] = 1;
    return onnx_reshape(cx, b, dims, r);
}

/* ---- converters ---- */

#define CONV(name)                                                                               \
    static int name(onnx_ctx *cx, const Onnx__NodeProto *n, const kiln_value *in, int nin,      \
                    kiln_value *out, int nout)
#define UNUSED_ARGS (void)n, (void)in, (void)nin, (void)out, (void)nout

/* The kiln op a plain ONNX op maps to (same inputs, no attributes). */
static const char *simple_kiln_op(const char *t)
{
    static const char *const map[][2] = {
        {"Add", "Add"},       {"Sub", "Sub"},         {"Mul", "Mul"},
        {"Div", "Div"},       {"Neg", "Neg"},         {"Abs", "Abs"},
        {"Exp", "Exp"},       {"Log", "Log"},         {"Sqrt", "Sqrt"},
        {"Reciprocal", "Reciprocal"}, {"Tanh", "Tanh"}, {"Sigmoid", "Sigmoid"},
        {"Relu", "Relu"},     {"Erf", "Erf"},         {"Softplus", "Softplus"},
        {"Equal", "Equal"},   {"Less", "Less"},       {"Greater", "Greater"},
        {"LessOrEqual", "LessOrEqual"}, {"GreaterOrEqual", "GreaterOrEqual"},
        {"Not", "Not"},       {"And", "And"},         {"Or", "Or"},
        {"Xor", "Xor"},       {"Where", "Where"},     {"Identity", "Identity"},
        {"MatMul", "MatMul"},
        {"Floor", "Floor"},   {"Ceil", "Ceil"},       {"Round", "Round"},
        {"Sign", "Sign"},     {"IsNaN", "IsNaN"},
        {"Sin", "Sin"},       {"Cos", "Cos"},         {"Tan", "Tan"},
    {"Asin", "Asin"},     {"Acos", "Acos"},       {"Atan", "Atan"},
        {"Sinh", "Sinh"},     {"Cosh", "Cosh"},       {"Asinh", "Asinh"},
        {"Acosh", "Acosh"},   {"Atanh", "Atanh"}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(map[i][0], t) == 0) return map[i][1];
    return NULL;
}

CONV(cv_simple)
{
    const char *op = simple_kiln_op(n->op_type);
    kiln_value args[3];
    int k = nin < 3 ? nin : 3;
    for (int i = 0; i < k; i++) args[i] = in[i];
    if (k == 2) args[1] = legacy_broadcast(cx, n, args[0], args[1]);
    return onnx_done(cx, out, onnx_op(cx, op, args, k, NULL));
}

CONV(cv_pow)
{
    kiln_value e = onnx_cast(cx, in[1], onnx_type(cx, in[0])->dtype);
    e = legacy_broadcast(cx, n, in[0], e);
    return onnx_done(cx, out, onnx_op2(cx, "Pow", in[0], e));
}

CONV(cv_alpha)
{
    /* LeakyRelu and Elu: one float attribute 'alpha'. */
    bool leaky = strcmp(n->op_type, "LeakyRelu") == 0;
    kiln_attrs *a = onnx_bag(cx);
    if (!a) return cx->st->code;
    kiln_attrs_float(a, "alpha", onnx_attr_float(n, "alpha", leaky ? 0.01 : 1.0));
    kiln_value r = onnx_op(cx, leaky ? "LeakyRelu" : "Elu", in, 1, a);
    kiln_attrs_free(a);
    return onnx_done(cx, out, r);
}

CONV(cv_gelu)
{
    char buf[16];
    kiln_attrs *a = onnx_bag(cx);
    if (!a) return cx->st->code;
    kiln_attrs_string(a, "approximate", onnx_attr_string(n, "approximate", "none", buf, sizeof buf));
    kiln_value r = onnx_op(cx, "Gelu", in, 1, a);
    kiln_attrs_free(a);
    return onnx_done(cx, out, r);
}

kiln_value onnx_clip(onnx_ctx *cx, kiln_value x, double lo, double hi)
{
    kiln_attrs *a = onnx_bag(cx);
    if (!a) return kiln_value_invalid();
    kiln_attrs_float(a, "min", lo);
    kiln_attrs_float(a, "max", hi);
    kiln_value r = onnx_op(cx, "Clip", &x, 1, a);
    kiln_attrs_free(a);
    return r;
}

CONV(cv_clip)
{
    double lo = -INFINITY, hi = INFINITY;
    if (cx->opset < 11) {
        lo = onnx_attr_float(n, "min", -INFINITY);
        hi = onnx_attr_float(n, "max", INFINITY);
    } else if (onnx_input_scalar(cx, in, nin, 1, "min", -INFINITY, &lo) ||
               onnx_input_scalar(cx, in, nin, 2, "max", INFINITY, &hi)) {
        return cx->st->code;
    }
    return onnx_done(cx, out, onnx_clip(cx, in[0], lo, hi));
}

CONV(cv_hardsigmoid)
{
    double alpha = onnx_attr_float(n, "alpha", 0.2), beta = onnx_attr_float(n, "beta", 0.5);
    kiln_value x = in[0];
    kiln_value y = onnx_op2(cx, "Add", onnx_op2(cx, "Mul", x, onnx_scalar_like(cx, x, alpha)),
                            onnx_scalar_like(cx, x, beta));
    return onnx_done(cx, out, onnx_clip(cx, y, 0, 1));
}

CONV(cv_hardswish)
{
    kiln_value x = in[0];
    kiln_value y = onnx_op2(cx, "Add", onnx_op2(cx, "Mul", x, onnx_scalar_like(cx, x, 1.0 / 6)),
                            onnx_scalar_like(cx, x, 0.5));
    return onnx_done(cx, out, onnx_op2(cx, "Mul", x, onnx_clip(cx, y, 0, 1)));
}

CONV(cv_selu)
{
    double alpha = onnx_attr_float(n, "alpha", 1.67326319217681884765625);
    double gamma = onnx_attr_float(n, "gamma", 1.05070102214813232421875);
    kiln_attrs *a = onnx_bag(cx);
    if (!a) return cx->st->code;
    kiln_attrs_float(a, "alpha", alpha);
    kiln_value e = onnx_op(cx, "Elu", in, 1, a);
    kiln_attrs_free(a);
    return onnx_done(cx, out, onnx_op2(cx, "Mul", e, onnx_scalar_like(cx, in[0], gamma)));
}

CONV(cv_celu)
{
    double alpha = onnx_attr_float(n, "alpha", 1.0);
    kiln_value x = in[0];
    kiln_value pos = onnx_op2(cx, "Maximum", x, onnx_scalar_like(cx, x, 0));
    kiln_value e = onnx_op1(cx, "Exp", onnx_op2(cx, "Div", x, onnx_scalar_like(cx, x, alpha)));
    kiln_value neg = onnx_op2(cx, "Mul", onnx_scalar_like(cx, x, alpha),
                              onnx_op2(cx, "Sub", e, onnx_scalar_like(cx, x, 1)));
    neg = onnx_op2(cx, "Minimum", neg, onnx_scalar_like(cx, x, 0));
    return onnx_done(cx, out, onnx_op2(cx, "Add", pos, neg));
}

CONV(cv_prelu)
{
    kiln_value x = in[0], s = in[1];
    const ir_type *tx = onnx_type(cx, x), *ts = onnx_type(cx, s);
    /* A per-channel slope [C] of an [N,C,...] input (as older exporters
     * write it) applies along axis 1. */
    if (ts->rank == 1 && tx->rank > 2 && ts->dims[0] > 1 && ts->dims[0] == tx->dims[1] &&
        tx->dims[tx->rank - 1] != ts->dims[0]) {
        int64_t d[IR_MAX_RANK];
        d[0] = ts->dims[0];
        for (int i = 1; i < tx->rank - 1; i++) d[i] = 1;
        s = onnx_reshape(cx, s, d, tx->rank - 1);
    }
    kiln_value neg = onnx_op2(cx, "Less", x, onnx_scalar_like(cx, x, 0));
    kiln_value args[3] = {neg, onnx_op2(cx, "Mul", x, s), x};
    return onnx_done(cx, out, onnx_op(cx, "Where", args, 3, NULL));
}

CONV(cv_mish)
{
    kiln_value x = in[0];
    return onnx_done(cx, out, onnx_op2(cx, "Mul", x, onnx_op1(cx, "Tanh", onnx_op1(cx, "Softplus", x))));
}

CONV(cv_softsign)
{
    kiln_value x = in[0];
    kiln_value d = onnx_op2(cx, "Add", onnx_op1(cx, "Abs", x), onnx_scalar_like(cx, x, 1));
    return onnx_done(cx, out, onnx_op2(cx, "Div", x, d));
}

CONV(cv_thresholded_relu)
{
    kiln_value x = in[0];
    double alpha = onnx_attr_float(n, "alpha", 1.0);
    kiln_value args[3] = {onnx_op2(cx, "Greater", x, onnx_scalar_like(cx, x, alpha)), x,
                          onnx_scalar_like(cx, x, 0)};
    return onnx_done(cx, out, onnx_op(cx, "Where", args, 3, NULL));
}

CONV(cv_shrink)
{
    kiln_value x = in[0];
    double bias = onnx_attr_float(n, "bias", 0), lambd = onnx_attr_float(n, "lambd", 0.5);
    kiln_value zero = onnx_scalar_like(cx, x, 0);
    kiln_value hi[3] = {onnx_op2(cx, "Greater", x, onnx_scalar_like(cx, x, lambd)),
                        onnx_op2(cx, "Sub", x, onnx_scalar_like(cx, x, bias)), zero};
    kiln_value lo[3] = {onnx_op2(cx, "Less", x, onnx_scalar_like(cx, x, -lambd)),
                        onnx_op2(cx, "Add", x, onnx_scalar_like(cx, x, bias)),
                        onnx_op(cx, "Where", hi, 3, NULL)};
    return onnx_done(cx, out, onnx_op(cx, "Where", lo, 3, NULL));
}

CONV(cv_isinf)
{
    kiln_attrs *a = onnx_bag(cx);
    if (!a) return cx->st->code;
    kiln_attrs_int(a, "detect_positive", onnx_attr_int(n, "detect_positive", 1) != 0);
    kiln_attrs_int(a, "detect_negative", onnx_attr_int(n, "detect_negative", 1) != 0);
    kiln_value r = onnx_op(cx, "IsInf", in, 1, a);
    kiln_attrs_free(a);
    return onnx_done(cx, out, r);
}

CONV(cv_mod)
{
    /* fmod = 0 on floats is rejected by the Mod op's inference, as the
     * spec requires */
    kiln_attrs *a = onnx_bag(cx);
    if (!a) return cx->st->code;
    kiln_attrs_int(a, "fmod", onnx_attr_int(n, "fmod", 0));
    kiln_value r = onnx_op(cx, "Mod", in, 2, a);
    kiln_attrs_free(a);
    return onnx_done(cx, out, r);
}

CONV(cv_bitwise)
{
    /* BitwiseAnd/Or/Xor/Not keep their names; BitShift carries its
     * direction ("LEFT" or "RIGHT", checked by the op's inference). */
    if (strcmp(n->op_type, "BitShift") != 0)
        return onnx_done(cx, out, onnx_op(cx, n->op_type, in, nin < 2 ? nin : 2, NULL));
    char dir[16];
    kiln_attrs *a = onnx_bag(cx);
    if (!a) return cx->st->code;
    kiln_attrs_string(a, "direction", onnx_attr_string(n, "direction", "", dir, sizeof dir));
    kiln_value r = onnx_op(cx, "BitShift", in, nin < 2 ? nin : 2, a);
    kiln_attrs_free(a);
    return onnx_done(cx, out, r);
}

CONV(cv_variadic)
{
    /* Sum, Mean, Max, Min over any number of inputs (broadcasting). */
    const char *t = n->op_type;
    const char *op = !strcmp(t, "Max") ? "Maximum" : !strcmp(t, "Min") ? "Minimum" : "Add";
    if (nin < 1 || !onnx_has(in, nin, 0))
        return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "needs at least one input");
    kiln_value acc = in[0];
    if (nin == 1) acc = onnx_op1(cx, "Identity", acc);
    for (int i = 1; i < nin; i++) acc = onnx_op2(cx, op, acc, in[i]);
    if (!strcmp(t, "Mean")) acc = onnx_op2(cx, "Div", acc, onnx_scalar_like(cx, in[0], nin));
    return onnx_done(cx, out, acc);
}

CONV(cv_cast)
{
    kiln_dtype to;
    if (!strcmp(n->op_type, "CastLike")) {
        to = onnx_type(cx, in[1])->dtype;
    } else {
        int t = (int)onnx_attr_int(n, "to", 0);
        to = onnx_dtype(t);
        if (!to)
            return onnx_error(cx, KILN_ERR_UNIMPLEMENTED, "cast to %s, which kiln does not support",
                              onnx_dtype_name(t));
    }
    /* opset 19+: saturate (float8 overflow); opset 25: round_mode (E8M0) */
    int64_t saturate = onnx_attr_int(n, "saturate", 1);
    char rm[16];
    const char *round_mode = onnx_attr_string(n, "round_mode", "up", rm, sizeof rm);
    if (to == KILN_F8E8M0 && strcmp(round_mode, "up"))
        return onnx_error(cx, KILN_ERR_UNIMPLEMENTED, "round_mode '%s' to FLOAT8E8M0 (kiln rounds up only)",
                          round_mode);
    kiln_attrs *a = onnx_bag(cx);
    if (!a) return cx->st->code;
    kiln_attrs_dtype(a, "to", to);
    if (!saturate) kiln_attrs_int(a, "saturate", 0);
    kiln_value r = onnx_op(cx, "Cast", in, 1, a);
    kiln_attrs_free(a);
    return onnx_done(cx, out, r);
}

CONV(cv_dropout)
{
    double ratio = 0;
    bool training = false;
    if (cx->opset >= 12) {
        double tm = 0;
        if (onnx_input_scalar(cx, in, nin, 1, "ratio", 0.5, &ratio) ||
            onnx_input_scalar(cx, in, nin, 2, "training_mode", 0, &tm))
            return cx->st->code;
        training = tm != 0;
    }
    if (training && ratio > 0)
        return onnx_error(cx, KILN_ERR_UNIMPLEMENTED, "training-mode dropout is not supported");
    out[0] = onnx_op1(cx, "Identity", in[0]);
    if (nout > 1) {
        const ir_type *t = onnx_type(cx, in[0]);
        if (!ir_type_is_static(t))
            return onnx_error(cx, KILN_ERR_UNIMPLEMENTED, "the mask output needs a static input shape");
        kiln_value one = onnx_scalar(cx, KILN_BOOL, 1);
        out[1] = onnx_op_ints(cx, "Expand", one, "shape", t->dims, t->rank);
    }
    return onnx_failed(cx) ? cx->st->code : KILN_OK;
}

CONV(cv_constant)
{
    const Onnx__AttributeProto *a;
    kiln_tensor *t = NULL;
    if ((a = onnx_attr(n, "value")) && a->t) {
        if (onnx_tensor_from_proto(a->t, NULL, "value", &t, cx->st)) {
            char *m = ir_strdup(cx->st->message ? cx->st->message : "");
            int code = cx->st->code;
            cx->st->code = KILN_OK;
            onnx_error(cx, code, "%s", m ? m : "out of memory");
            ir_free(m);
            return cx->st->code;
        }
    } else if ((a = onnx_attr(n, "value_float"))) {
        float f = a->f;
        t = kiln_tensor_from_data(KILN_F32, 0, NULL, &f);
    } else if ((a = onnx_attr(n, "value_int"))) {
        int64_t i = a->i;
        t = kiln_tensor_from_data(KILN_I64, 0, NULL, &i);
    } else if ((a = onnx_attr(n, "value_floats"))) {
        int64_t d = (int64_t)a->n_floats;
        t = kiln_tensor_from_data(KILN_F32, 1, &d, a->floats);
    } else if ((a = onnx_attr(n, "value_ints"))) {
        int64_t d = (int64_t)a->n_ints;
        t = kiln_tensor_from_data(KILN_I64, 1, &d, a->ints);
    } else {
        return onnx_error(cx, KILN_ERR_UNIMPLEMENTED,
                          "only tensor, float(s) and int(s) constants are supported (not sparse or "
                          "string values)");
    }
    if (!t) return onnx_error(cx, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    kiln_value v = onnx_const(cx, t);
    kiln_tensor_free(t);
    return onnx_done(cx, out, v);
}

CONV(cv_constant_of_shape)
{
    int64_t shape[IR_MAX_RANK];
    int r;
    if (onnx_input_ints(cx, in, nin, 0, "shape", shape, IR_MAX_RANK, &r)) return cx->st->code;
    kiln_tensor *t = NULL;
    const Onnx__AttributeProto *a = onnx_attr(n, "value");
    if (a && a->t) {
        if (onnx_tensor_from_proto(a->t, NULL, "value", &t, cx->st)) {
            int code = cx->st->code;
            cx->st->code = KILN_OK;
            return onnx_error(cx, code, "bad 'value' attribute");
        }
        if (t->size != 1) {
            kiln_tensor_free(t);
            return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "'value' must hold one element");
        }
        t->rank = 0;
    } else {
        t = kiln_tensor_new(KILN_F32, 0, NULL);
        if (!t) return onnx_error(cx, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    }
    for (int i = 0; i < r; i++)
        if (shape[i] < 0) {
            kiln_tensor_free(t);
            return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "shape dim %d is %lld", i, (long long)shape[i]);
        }
    kiln_value c = onnx_const(cx, t);
    kiln_tensor_free(t);
    return onnx_done(cx, out, r ? onnx_op_ints(cx, "Expand", c, "shape", shape, r) : c);
}

CONV(cv_shape)
{
    const ir_type *t = onnx_type(cx, in[0]);
    int64_t start = cx->opset >= 15 ? onnx_attr_int(n, "start", 0) : 0;
    int64_t end = cx->opset >= 15 ? onnx_attr_int(n, "end", t->rank) : t->rank;
    if (start < 0) start += t->rank;
    if (end < 0) end += t->rank;
    if (start < 0) start = 0;
    if (end > t->rank) end = t->rank;
    if (end < start) end = start;
    for (int64_t i = start; i < end; i++)
        if (t->dims[i] < 0) {
            char b[IR_TYPE_STR_MAX];
            return onnx_error(cx, KILN_ERR_UNIMPLEMENTED,
                              "the shape of %s is not known at import; kiln needs static shapes "
                              "here (kiln_import_options.input_shapes)",
                              type_str(cx, in[0], b));
        }
    return onnx_done(cx, out, onnx_const_ints(cx, t->dims + start, (int)(end - start)));
}

CONV(cv_size)
{
    const ir_type *t = onnx_type(cx, in[0]);
    int64_t numel = ir_shape_numel(t->rank, t->dims);
    if (numel < 0) {
        char b[IR_TYPE_STR_MAX];
        return onnx_error(cx, KILN_ERR_UNIMPLEMENTED, "the size of %s is not known at import",
                          type_str(cx, in[0], b));
    }
    return onnx_done(cx, out, onnx_scalar(cx, KILN_I64, (double)numel));
}

CONV(cv_range)
{
    const kiln_tensor *ts[3];
    for (int i = 0; i < 3; i++) {
        ts[i] = onnx_has(in, nin, i) ? onnx_value_tensor(cx, in[i]) : NULL;
        if (!ts[i] || ts[i]->size != 1)
            return onnx_error(cx, KILN_ERR_UNIMPLEMENTED,
                              "start, limit and delta must be constant scalars for kiln");
    }
    kiln_dtype dt = ts[0]->dtype;
    double st = ir_load_f64(dt, ts[0]->data, 0), lim = ir_load_f64(ts[1]->dtype, ts[1]->data, 0),
           d = ir_load_f64(ts[2]->dtype, ts[2]->data, 0);
    if (d == 0) return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "delta is 0");
    double cnt = ceil((lim - st) / d);
    if (!(cnt >= 0)) cnt = 0;
    if (cnt > (double)(ONNX_FOLD_LIMIT * 16))
        return onnx_error(cx, KILN_ERR_UNIMPLEMENTED, "a range of %.0f elements is too large", cnt);
    int64_t len = (int64_t)cnt;
    kiln_tensor *t = kiln_tensor_new(dt, 1, &len);
    if (!t) return onnx_error(cx, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    if (ir_dtype_is_int(dt)) {
        int64_t s = ir_load_i64(dt, ts[0]->data, 0), dd = ir_load_i64(ts[2]->dtype, ts[2]->data, 0);
        for (int64_t i = 0; i < len; i++) ir_store_i64(dt, t->data, (size_t)i, s + i * dd);
    } else {
        /* ONNX computes start + i * delta in the tensor's type. */
        for (int64_t i = 0; i < len; i++) {
            if (dt == KILN_F32) ((float *)t->data)[i] = (float)st + (float)i * (float)d;
            else ir_store_f64(dt, t->data, (size_t)i, st + (double)i * d);
        }
    }
    kiln_value v = onnx_const(cx, t);
    kiln_tensor_free(t);
    return onnx_done(cx, out, v);
}

CONV(cv_gemm)
{
    kiln_attrs *a = onnx_bag(cx);
    if (!a) return cx->st->code;
    kiln_attrs_float(a, "alpha", onnx_attr_float(n, "alpha", 1.0));
    kiln_attrs_float(a, "beta", onnx_attr_float(n, "beta", 1.0));
    kiln_attrs_int(a, "transA", onnx_attr_int(n, "transA", 0));
    kiln_attrs_int(a, "transB", onnx_attr_int(n, "transB", 0));
    kiln_value r = onnx_op(cx, "Gemm", in, onnx_has(in, nin, 2) ? 3 : 2, a);
    kiln_attrs_free(a);
    return onnx_done(cx, out, r);
}

CONV(cv_transpose)
{
    int np;
    const int64_t *perm = onnx_attr_ints(n, "perm", &np);
    if (np < 0) return onnx_done(cx, out, onnx_op1(cx, "Transpose", in[0]));
    return onnx_done(cx, out, onnx_op_ints(cx, "Transpose", in[0], "perm", perm, np));
}

CONV(cv_reshape)
{
    int64_t shape[IR_MAX_RANK];
    int r;
    if (cx->opset < 5) {
        const int64_t *s = onnx_attr_ints(n, "shape", &r);
        if (r < 0 || r > IR_MAX_RANK)
            return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "bad or missing 'shape' attribute");
        memcpy(shape, s, sizeof(int64_t) * (size_t)r);
    } else if (onnx_input_ints(cx, in, nin, 1, "shape", shape, IR_MAX_RANK, &r)) {
        return cx->st->code;
    }
    if (onnx_attr_int(n, "allowzero", 0))
        for (int i = 0; i < r; i++)
            if (shape[i] == 0) {
                const ir_type *t = onnx_type(cx, in[0]);
                if (ir_shape_numel(t->rank, t->dims) != 0)
                    return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT,
                                      "allowzero with a 0 dim needs an empty input");
                return onnx_error(cx, KILN_ERR_UNIMPLEMENTED, "allowzero=1 with a 0 in the shape");
            }
    return onnx_done(cx, out, onnx_reshape(cx, in[0], shape, r));
}

CONV(cv_flatten)
{
    kiln_attrs *a = onnx_bag(cx);
    if (!a) return cx->st->code;
    kiln_attrs_int(a, "axis", onnx_attr_int(n, "axis", 1));
    kiln_value r = onnx_op(cx, "Flatten", in, 1, a);
    kiln_attrs_free(a);
    return onnx_done(cx, out, r);
}

/* axes: an attribute before `input_opset`, input 1 from it on. *n = -1
 * when absent. */
static int axes_arg(onnx_ctx *cx, const Onnx__NodeProto *n, const kiln_value *in, int nin,
                    int input_opset, int64_t *axes, int *na)
{
    if (cx->opset < input_opset) {
        const int64_t *a = onnx_attr_ints(n, "axes", na);
        if (*na > MAXV) return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "too many axes");
        if (*na > 0) memcpy(axes, a, sizeof(int64_t) * (size_t)*na);
        return KILN_OK;
    }
    if (!onnx_has(in, nin, 1)) {
        *na = -1;
        return KILN_OK;
    }
    return onnx_input_ints(cx, in, nin, 1, "axes", axes, MAXV, na);
}

CONV(cv_squeeze)
{
    int64_t axes[MAXV];
    int na;
    if (axes_arg(cx, n, in, nin, 13, axes, &na)) return cx->st->code;
    if (na <= 0) return onnx_done(cx, out, onnx_op1(cx, "Squeeze", in[0]));
    return onnx_done(cx, out, onnx_op_ints(cx, "Squeeze", in[0], "axes", axes, na));
}

CONV(cv_unsqueeze)
{
    int64_t axes[MAXV];
    int na;
    if (axes_arg(cx, n, in, nin, 13, axes, &na)) return cx->st->code;
    if (na < 0) return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "axes are missing");
    return onnx_done(cx, out, onnx_op_ints(cx, "Unsqueeze", in[0], "axes", axes, na));
}

CONV(cv_concat)
{
    kiln_attrs *a = onnx_bag(cx);
    if (!a) return cx->st->code;
    kiln_attrs_int(a, "axis", onnx_attr_int(n, "axis", cx->opset < 4 ? 1 : 0));
    kiln_value r = onnx_op(cx, "Concat", in, nin, a);
    kiln_attrs_free(a);
    return onnx_done(cx, out, r);
}

CONV(cv_split)
{
    int64_t split[MAXV];
    int ns = -1;
    if (cx->opset < 13) {
        const int64_t *s = onnx_attr_ints(n, "split", &ns);
        if (ns > MAXV) return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "too many splits");
        if (ns > 0) memcpy(split, s, sizeof(int64_t) * (size_t)ns);
        if (ns < 0 && onnx_has(in, nin, 1) && onnx_input_ints(cx, in, nin, 1, "split", split, MAXV, &ns))
            return cx->st->code;
    } else if (onnx_has(in, nin, 1) && onnx_input_ints(cx, in, nin, 1, "split", split, MAXV, &ns)) {
        return cx->st->code;
    }
    if (nout > 8 && ns <= 0)
        return onnx_error(cx, KILN_ERR_UNIMPLEMENTED, "%d outputs", nout);
    kiln_attrs *a = onnx_bag(cx);
    if (!a) return cx->st->code;
    kiln_attrs_int(a, "axis", onnx_attr_int(n, "axis", 0));
    if (ns > 0) kiln_attrs_ints(a, "split", split, ns);
    else kiln_attrs_int(a, "num_outputs", onnx_attr_int(n, "num_outputs", nout));
    onnx_op_n(cx, "Split", in, 1, a, out, nout);
    kiln_attrs_free(a);
    return onnx_failed(cx) ? cx->st->code : KILN_OK;
}

CONV(cv_slice)
{
    int64_t st[MAXV], en[MAXV], ax[MAXV], sp[MAXV];
    int ns, ne, na = -1, nsp = -1;
    if (cx->opset < 10) {
        const int64_t *p;
        p = onnx_attr_ints(n, "starts", &ns);
        if (ns < 0 || ns > MAXV) return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "bad 'starts'");
        memcpy(st, p, sizeof(int64_t) * (size_t)ns);
        p = onnx_attr_ints(n, "ends", &ne);
        if (ne < 0 || ne > MAXV) return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "bad 'ends'");
        memcpy(en, p, sizeof(int64_t) * (size_t)ne);
        p = onnx_attr_ints(n, "axes", &na);
        if (na > MAXV) return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "bad 'axes'");
        if (na > 0) memcpy(ax, p, sizeof(int64_t) * (size_t)na);
    } else {
        if (onnx_input_ints(cx, in, nin, 1, "starts", st, MAXV, &ns) ||
            onnx_input_ints(cx, in, nin, 2, "ends", en, MAXV, &ne))
            return cx->st->code;
        if (onnx_has(in, nin, 3) && onnx_input_ints(cx, in, nin, 3, "axes", ax, MAXV, &na)) return cx->st->code;
        if (onnx_has(in, nin, 4) && onnx_input_ints(cx, in, nin, 4, "steps", sp, MAXV, &nsp)) return cx->st->code;
    }
    kiln_attrs *a = onnx_bag(cx);
    if (!a) return cx->st->code;
    kiln_attrs_ints(a, "starts", st, ns);
    kiln_attrs_ints(a, "ends", en, ne);
    if (na >= 0) kiln_attrs_ints(a, "axes", ax, na);
    if (nsp >= 0) kiln_attrs_ints(a, "steps", sp, nsp);
    kiln_value r = onnx_op(cx, "Slice", in, 1, a);
    kiln_attrs_free(a);
    return onnx_done(cx, out, r);
}

CONV(cv_gather)
{
    kiln_attrs *a = onnx_bag(cx);
    if (!a) return cx->st->code;
    kiln_attrs_int(a, "axis", onnx_attr_int(n, "axis", 0));
    kiln_value r = onnx_op(cx, "Gather", in, 2, a);
    kiln_attrs_free(a);
    return onnx_done(cx, out, r);
}

CONV(cv_pad)
{
    int64_t pads[2 * IR_MAX_RANK], axes[IR_MAX_RANK];
    int np, na = -1;
    double value = 0;
    char mode[16];
    onnx_attr_string(n, "mode", "constant", mode, sizeof mode);
    if (cx->opset < 11) {
        const int64_t *p = onnx_attr_ints(n, cx->opset < 2 ? "paddings" : "pads", &np);
        if (np < 0 || np > 2 * IR_MAX_RANK)
            return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "bad or missing 'pads'");
        memcpy(pads, p, sizeof(int64_t) * (size_t)np);
        value = onnx_attr_float(n, "value", 0);
    } else {
        if (onnx_input_ints(cx, in, nin, 1, "pads", pads, 2 * IR_MAX_RANK, &np) ||
            onnx_input_scalar(cx, in, nin, 2, "constant_value", 0, &value))
            return cx->st->code;
        if (onnx_has(in, nin, 3) && onnx_input_ints(cx, in, nin, 3, "axes", axes, IR_MAX_RANK, &na))
            return cx->st->code;
    }
    if (strcmp(mode, "constant") && strcmp(mode, "reflect") && strcmp(mode, "edge"))
        return onnx_error(cx, KILN_ERR_UNIMPLEMENTED, "pad mode '%s' is not supported", mode);
    int rank = onnx_type(cx, in[0])->rank;
    if (na >= 0) {
        /* Pads for the listed axes only: spread over every axis. */
        if (np != 2 * na) return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "%d pads for %d axes", np, na);
        int64_t full[2 * IR_MAX_RANK] = {0};
        for (int i = 0; i < na; i++) {
            int ax;
            if (!ir_norm_axis(axes[i], rank, &ax))
                return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "axis %lld out of range", (long long)axes[i]);
            full[ax] = pads[i];
            full[rank + ax] = pads[na + i];
        }
        memcpy(pads, full, sizeof full);
        np = 2 * rank;
    }
    kiln_attrs *a = onnx_bag(cx);
    if (!a) return cx->st->code;
    kiln_attrs_ints(a, "pads", pads, np);
    kiln_attrs_string(a, "mode", mode);
    kiln_attrs_float(a, "value", value);
    kiln_value r = onnx_op(cx, "Pad", in, 1, a);
    kiln_attrs_free(a);
    return onnx_done(cx, out, r);
}

CONV(cv_expand)
{
    int64_t shape[IR_MAX_RANK];
    int r;
    if (onnx_input_ints(cx, in, nin, 1, "shape", shape, IR_MAX_RANK, &r)) return cx->st->code;
    return onnx_done(cx, out, onnx_op_ints(cx, "Expand", in[0], "shape", shape, r));
}

CONV(cv_tile)
{
    int64_t rep[IR_MAX_RANK];
    int r;
    if (onnx_input_ints(cx, in, nin, 1, "repeats", rep, IR_MAX_RANK, &r)) return cx->st->code;
    return onnx_done(cx, out, onnx_op_ints(cx, "Tile", in[0], "repeats", rep, r));
}

CONV(cv_reduce)
{
    const char *t = n->op_type;
    int input_opset = !strcmp(t, "ReduceSum") ? 13 : 18;
    int64_t axes[MAXV];
    int na;
    if (axes_arg(cx, n, in, nin, input_opset, axes, &na)) return cx->st->code;
    int keep = (int)onnx_attr_int(n, "keepdims", 1);
    kiln_value x = in[0];
    if (na <= 0 && cx->opset >= input_opset && onnx_attr_int(n, "noop_with_empty_axes", 0))
        return onnx_done(cx, out, onnx_op1(cx, "Identity", x));
    if (na < 0) na = 0;
    kiln_value r;
    if (!strcmp(t, "ReduceL1")) r = onnx_reduce(cx, "ReduceSum", onnx_op1(cx, "Abs", x), axes, na, keep);
    else if (!strcmp(t, "ReduceL2"))
        r = onnx_op1(cx, "Sqrt", onnx_reduce(cx, "ReduceSum", onnx_op2(cx, "Mul", x, x), axes, na, keep));
    else if (!strcmp(t, "ReduceSumSquare")) r = onnx_reduce(cx, "ReduceSum", onnx_op2(cx, "Mul", x, x), axes, na, keep);
    else if (!strcmp(t, "ReduceLogSum")) r = onnx_op1(cx, "Log", onnx_reduce(cx, "ReduceSum", x, axes, na, keep));
    else if (!strcmp(t, "ReduceLogSumExp")) {
        kiln_value m = onnx_reduce(cx, "ReduceMax", x, axes, na, 1);
        kiln_value s = onnx_reduce(cx, "ReduceSum", onnx_op1(cx, "Exp", onnx_op2(cx, "Sub", x, m)), axes, na, keep);
        kiln_value mm = keep ? m : onnx_reduce(cx, "ReduceMax", x, axes, na, 0);
        r = onnx_op2(cx, "Add", onnx_op1(cx, "Log", s), mm);
    } else r = onnx_reduce(cx, t, x, axes, na, keep);
    return onnx_done(cx, out, r);
}

CONV(cv_arg)
{
    kiln_attrs *a = onnx_bag(cx);
    if (!a) return cx->st->code;
    kiln_attrs_int(a, "axis", onnx_attr_int(n, "axis", 0));
    kiln_attrs_int(a, "keepdims", onnx_attr_int(n, "keepdims", 1));
    kiln_attrs_int(a, "select_last_index", onnx_attr_int(n, "select_last_index", 0));
    kiln_value r = onnx_op(cx, n->op_type, in, 1, a);
    kiln_attrs_free(a);
    return onnx_done(cx, out, r);
}

CONV(cv_softmax)
{
    const char *op = n->op_type; /* Softmax or LogSoftmax */
    const ir_type *t = onnx_type(cx, in[0]);
    int64_t axis = onnx_attr_int(n, "axis", cx->opset < 13 ? 1 : -1);
    kiln_attrs *a = onnx_bag(cx);
    if (!a) return cx->st->code;
    kiln_value r;
    int ax;
    if (!ir_norm_axis(axis, t->rank, &ax) && !(t->rank == 0 && (axis == 0 || axis == -1))) {
        kiln_attrs_free(a);
        return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "axis %lld out of range for rank %d",
                          (long long)axis, t->rank);
    }
    if (cx->opset >= 13 || ax == t->rank - 1 || t->rank == 0) {
        kiln_attrs_int(a, "axis", t->rank == 0 ? -1 : ax);
        r = onnx_op(cx, op, in, 1, a);
    } else {
        /* Before opset 13: over the input flattened to 2-D at axis. */
        if (!ir_type_is_static(t)) {
            kiln_attrs_free(a);
            return onnx_error(cx, KILN_ERR_UNIMPLEMENTED, "needs a static input shape (opset < 13)");
        }
        kiln_value f = onnx_op(cx, "Flatten", in, 1, NULL);
        kiln_attrs_free(a);
        a = onnx_bag(cx);
        if (!a) return cx->st->code;
        kiln_attrs_int(a, "axis", 1);
        kiln_value s;
        if (ax == 0) {
            int64_t d[2] = {1, -1};
            s = onnx_op(cx, op, (kiln_value[]){onnx_reshape(cx, in[0], d, 2)}, 1, a);
        } else {
            kiln_attrs *fa = onnx_bag(cx);
            if (!fa) {
                kiln_attrs_free(a);
                return cx->st->code;
            }
            kiln_attrs_int(fa, "axis", ax);
            f = onnx_op(cx, "Flatten", in, 1, fa);
            kiln_attrs_free(fa);
            s = onnx_op(cx, op, &f, 1, a);
        }
        r = onnx_reshape(cx, s, t->dims, t->rank);
    }
    kiln_attrs_free(a);
    return onnx_done(cx, out, r);
}

CONV(cv_batchnorm)
{
    if (onnx_attr_int(n, "training_mode", 0) || nout > 1)
        return onnx_error(cx, KILN_ERR_UNIMPLEMENTED, "training-mode batch normalization (more than one output) is not supported");
    if (nin < 5) return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "needs 5 inputs, has %d", nin);
    kiln_attrs *a = onnx_bag(cx);
    if (!a) return cx->st->code;
    kiln_attrs_float(a, "epsilon", onnx_attr_float(n, "epsilon", 1e-5));
    kiln_value r = onnx_op(cx, "BatchNormalization", in, 5, a);
    kiln_attrs_free(a);
    return onnx_done(cx, out, r);
}

/* The dtype statistics are computed in (stash_type, default float). */
kiln_dtype onnx_stash_dtype(onnx_ctx *cx, const Onnx__NodeProto *n)
{
    int st = (int)onnx_attr_int(n, "stash_type", 1);
    kiln_dtype dt = onnx_dtype(st);
    if (!dt) onnx_error(cx, KILN_ERR_UNIMPLEMENTED, "stash_type %s is not supported", onnx_dtype_name(st));
    return dt;
}

/* Axes [a, rank) for a normalization over x's dims from axis on. */
static int norm_axes(onnx_ctx *cx, const Onnx__NodeProto *n, const ir_type *t, int64_t *axes)
{
    int64_t axis = onnx_attr_int(n, "axis", -1);
    int a;
    if (!ir_norm_axis(axis, t->rank, &a)) {
        onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "axis %lld out of range for rank %d", (long long)axis,
                   t->rank);
        return -1;
    }
    for (int i = a; i < t->rank; i++) axes[i - a] = i;
    return t->rank - a;
}

CONV(cv_layernorm)
{
    kiln_attrs *a = onnx_bag(cx);
    if (!a) return cx->st->code;
    kiln_attrs_int(a, "axis", onnx_attr_int(n, "axis", -1));
    kiln_attrs_float(a, "epsilon", onnx_attr_float(n, "epsilon", 1e-5));
    out[0] = onnx_op(cx, "LayerNormalization", in, onnx_has(in, nin, 2) ? 3 : 2, a);
    kiln_attrs_free(a);
    if (nout > 1 && !onnx_failed(cx)) {
        /* Mean and InvStdDev (keepdims shape, stash dtype), composed. */
        int64_t axes[IR_MAX_RANK];
        int na = norm_axes(cx, n, onnx_type(cx, in[0]), axes);
        kiln_dtype sd = onnx_stash_dtype(cx, n);
        if (na < 0 || !sd) return cx->st->code;
        kiln_value x = onnx_cast(cx, in[0], sd);
        kiln_value mean = onnx_reduce(cx, "ReduceMean", x, axes, na, 1);
        kiln_value c = onnx_op2(cx, "Sub", x, mean);
        kiln_value var = onnx_reduce(cx, "ReduceMean", onnx_op2(cx, "Mul", c, c), axes, na, 1);
        double eps = onnx_attr_float(n, "epsilon", 1e-5);
        out[1] = mean;
        if (nout > 2) out[2] = onnx_op1(cx, "Rsqrt", onnx_op2(cx, "Add", var, onnx_scalar_like(cx, var, eps)));
    }
    return onnx_failed(cx) ? cx->st->code : KILN_OK;
}

/* RMSNormalization: x / sqrt(mean(x^2 over axis..) + epsilon) * scale. */
CONV(cv_rmsnorm)
{
    int64_t axes[IR_MAX_RANK];
    const ir_type *t = onnx_type(cx, in[0]);
    int na = norm_axes(cx, n, t, axes);
    kiln_dtype sd = onnx_stash_dtype(cx, n);
    if (na < 0 || !sd) return cx->st->code;
    kiln_dtype dt = t->dtype;
    kiln_value x = onnx_cast(cx, in[0], sd);
    kiln_value ms = onnx_reduce(cx, "ReduceMean", onnx_op2(cx, "Mul", x, x), axes, na, 1);
    double eps = onnx_attr_float(n, "epsilon", 1e-5);
    kiln_value inv = onnx_op1(cx, "Rsqrt", onnx_op2(cx, "Add", ms, onnx_scalar_like(cx, ms, eps)));
    kiln_value y = onnx_cast(cx, onnx_op2(cx, "Mul", x, inv), dt);
    return onnx_done(cx, out, onnx_op2(cx, "Mul", y, in[1]));
}

CONV(cv_instancenorm)
{
    kiln_value x = in[0];
    const ir_type *t = onnx_type(cx, x);
    if (t->rank < 3) return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "input rank %d < 3", t->rank);
    int64_t axes[IR_MAX_RANK], d[IR_MAX_RANK];
    int na = 0;
    for (int i = 2; i < t->rank; i++) axes[na++] = i;
    double eps = onnx_attr_float(n, "epsilon", 1e-5);
    kiln_value mean = onnx_reduce(cx, "ReduceMean", x, axes, na, 1);
    kiln_value c = onnx_op2(cx, "Sub", x, mean);
    kiln_value var = onnx_reduce(cx, "ReduceMean", onnx_op2(cx, "Mul", c, c), axes, na, 1);
    kiln_value inv = onnx_op1(cx, "Rsqrt", onnx_op2(cx, "Add", var, onnx_scalar_like(cx, x, eps)));
    d[0] = -1;
    for (int i = 1; i < t->rank - 1; i++) d[i] = 1;
    kiln_value scale = onnx_reshape(cx, in[1], d, t->rank - 1), bias = onnx_reshape(cx, in[2], d, t->rank - 1);
    kiln_value y = onnx_op2(cx, "Add", onnx_op2(cx, "Mul", onnx_op2(cx, "Mul", c, inv), scale), bias);
    return onnx_done(cx, out, y);
}

CONV(cv_lpnorm)
{
    kiln_value x = in[0];
    int64_t axis = onnx_attr_int(n, "axis", -1), p = onnx_attr_int(n, "p", 2);
    kiln_value norm;
    if (p == 1) norm = onnx_reduce(cx, "ReduceSum", onnx_op1(cx, "Abs", x), &axis, 1, 1);
    else if (p == 2) norm = onnx_op1(cx, "Sqrt", onnx_reduce(cx, "ReduceSum", onnx_op2(cx, "Mul", x, x), &axis, 1, 1));
    else return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "p must be 1 or 2, is %lld", (long long)p);
    /* A zero norm (all zeros) leaves the zeros as they are. */
    kiln_value w[3] = {onnx_op2(cx, "Equal", norm, onnx_scalar_like(cx, x, 0)), onnx_scalar_like(cx, x, 1), norm};
    return onnx_done(cx, out, onnx_op2(cx, "Div", x, onnx_op(cx, "Where", w, 3, NULL)));
}

/* ---- convolution and pooling (1-D lowered to 2-D; 3-D and dilated average
 * pools by frontend/onnx_window.c) ---- */

/* Reads kernel_shape, strides, dilations, pads and auto_pad for a window
 * op over input type t. */
static int window(onnx_ctx *cx, const Onnx__NodeProto *n, const ir_type *t, const int64_t *kernel,
                  onnx_win *w, bool transposed)
{
    w->sp = t->rank - 2;
    char b[IR_TYPE_STR_MAX];
    if (w->sp < 1 || w->sp > 3)
        return onnx_error(cx, KILN_ERR_UNIMPLEMENTED,
                          "%d-D input %s: kiln supports 1-D, 2-D and 3-D windows", w->sp,
                          ir_type_str(t, b, sizeof b));
    if (w->sp == 3 && !ir_type_is_static(t))
        return onnx_error(cx, KILN_ERR_UNIMPLEMENTED, "3-D input %s: 3-D windows need static shapes",
                          ir_type_str(t, b, sizeof b));
    int c;
    const int64_t *v;
    for (int i = 0; i < 3; i++) w->k[i] = w->s[i] = w->d[i] = 1;
    memset(w->pads, 0, sizeof w->pads);
    v = onnx_attr_ints(n, "kernel_shape", &c);
    if (c == w->sp) memcpy(w->k, v, sizeof(int64_t) * (size_t)c);
    else if (kernel) memcpy(w->k, kernel, sizeof(int64_t) * (size_t)w->sp);
    else return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "kernel_shape is missing or has the wrong length");
    v = onnx_attr_ints(n, "strides", &c);
    if (c == w->sp) memcpy(w->s, v, sizeof(int64_t) * (size_t)c);
    v = onnx_attr_ints(n, "dilations", &c);
    if (c == w->sp) memcpy(w->d, v, sizeof(int64_t) * (size_t)c);
    v = onnx_attr_ints(n, "pads", &c);
    if (c == 2 * w->sp) memcpy(w->pads, v, sizeof(int64_t) * (size_t)c);
    char ap[32];
    onnx_attr_string(n, "auto_pad", "NOTSET", ap, sizeof ap);
    if (!*ap) strcpy(ap, "NOTSET");
    if (!strcmp(ap, "VALID")) {
        memset(w->pads, 0, sizeof w->pads);
    } else if (!strcmp(ap, "SAME_UPPER") || !strcmp(ap, "SAME_LOWER")) {
        for (int i = 0; i < w->sp; i++) {
            int64_t in = t->dims[2 + i];
            if (in < 0) return onnx_error(cx, KILN_ERR_UNIMPLEMENTED, "auto_pad needs static spatial dims");
            int64_t total;
            if (transposed) {
                int64_t outd = in * w->s[i];
                total = w->s[i] * (in - 1) + (w->k[i] - 1) * w->d[i] + 1 - outd;
            } else {
                int64_t outd = (in + w->s[i] - 1) / w->s[i];
                total = (outd - 1) * w->s[i] + (w->k[i] - 1) * w->d[i] + 1 - in;
            }
            if (total < 0) total = 0;
            bool upper = !strcmp(ap, "SAME_UPPER");
            w->pads[i] = upper ? total / 2 : total - total / 2;
            w->pads[w->sp + i] = total - w->pads[i];
        }
    } else if (strcmp(ap, "NOTSET")) {
        return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "auto_pad '%s' is not valid", ap);
    }
    return KILN_OK;
}

/* Window attributes in kiln's 2-D form (1-D and 2-D windows). */
static void win_attrs(kiln_attrs *a, const onnx_win *w, bool kernel, bool dil)
{
    int64_t k[2], s[2], d[2], p[4];
    if (w->sp == 1) {
        k[0] = 1, k[1] = w->k[0], s[0] = 1, s[1] = w->s[0], d[0] = 1, d[1] = w->d[0];
        p[0] = 0, p[1] = w->pads[0], p[2] = 0, p[3] = w->pads[1];
    } else {
        memcpy(k, w->k, sizeof k), memcpy(s, w->s, sizeof s), memcpy(d, w->d, sizeof d);
        memcpy(p, w->pads, sizeof p);
    }
    if (kernel) kiln_attrs_ints(a, "kernel_shape", k, 2);
    kiln_attrs_ints(a, "strides", s, 2);
    kiln_attrs_ints(a, "pads", p, 4);
    if (dil) kiln_attrs_ints(a, "dilations", d, 2);
}

static kiln_value unsq2(onnx_ctx *cx, kiln_value x)
{
    int64_t ax = 2;
    return onnx_op_ints(cx, "Unsqueeze", x, "axes", &ax, 1);
}

static kiln_value sq2(onnx_ctx *cx, kiln_value x)
{
    int64_t ax = 2;
    return onnx_op_ints(cx, "Squeeze", x, "axes", &ax, 1);
}

CONV(cv_conv)
{
    bool tr = !strcmp(n->op_type, "ConvTranspose");
    const ir_type *t = onnx_type(cx, in[0]), *tw = onnx_type(cx, in[1]);
    onnx_win w;
    if (tw->rank != t->rank) return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "weight rank differs from input rank");
    if (window(cx, n, t, tw->dims + 2, &w, tr)) return cx->st->code;
    if (w.sp == 3 && !tr) return onnx_done(cx, out, onnx_conv3d(cx, n, in, nin, &w));
    int64_t outpad[3] = {0, 0, 0};
    int c;
    const int64_t *v = onnx_attr_ints(n, "output_padding", &c);
    if (tr && c == w.sp) memcpy(outpad, v, sizeof(int64_t) * (size_t)c);
    v = onnx_attr_ints(n, "output_shape", &c);
    if (tr && c == w.sp) {
        char ap[32];
        onnx_attr_string(n, "auto_pad", "NOTSET", ap, sizeof ap);
        for (int i = 0; i < w.sp; i++) {
            int64_t in_d = t->dims[2 + i];
            if (in_d < 0) return onnx_error(cx, KILN_ERR_UNIMPLEMENTED, "output_shape needs static input dims");
            int64_t total = w.s[i] * (in_d - 1) + outpad[i] + (w.k[i] - 1) * w.d[i] + 1 - v[i];
            if (total < 0) {
                /* The output is larger than the window covers: extra output padding. */
                outpad[i] += -total;
                total = 0;
            }
            if (!strcmp(ap, "SAME_UPPER")) {
                w.pads[i] = total / 2;
                w.pads[w.sp + i] = total - total / 2;
            } else {
                w.pads[i] = total - total / 2;
                w.pads[w.sp + i] = total / 2;
            }
        }
    }
    if (w.sp == 3) return onnx_done(cx, out, onnx_conv_transpose3d(cx, n, in, nin, &w, outpad));
    kiln_value x = in[0], wt = in[1];
    if (w.sp == 1) {
        x = unsq2(cx, x);
        wt = unsq2(cx, wt);
    }
    kiln_attrs *a = onnx_bag(cx);
    if (!a) return cx->st->code;
    win_attrs(a, &w, false, true);
    kiln_attrs_int(a, "group", onnx_attr_int(n, "group", 1));
    if (tr) {
        int64_t op2[2] = {0, outpad[0]};
        kiln_attrs_ints(a, "output_padding", w.sp == 1 ? op2 : outpad, 2);
    }
    kiln_value args[3] = {x, wt, onnx_has(in, nin, 2) ? in[2] : kiln_value_invalid()};
    kiln_value r = onnx_op(cx, tr ? "ConvTranspose2D" : "Conv2D", args, onnx_has(in, nin, 2) ? 3 : 2, a);
    kiln_attrs_free(a);
    if (w.sp == 1) r = sq2(cx, r);
    return onnx_done(cx, out, r);
}

CONV(cv_pool)
{
    bool max = !strcmp(n->op_type, "MaxPool");
    if (max && nout > 1 && *n->output[1])
        return onnx_error(cx, KILN_ERR_UNIMPLEMENTED, "the Indices output is not supported");
    const ir_type *t = onnx_type(cx, in[0]);
    onnx_win w;
    if (window(cx, n, t, NULL, &w, false)) return cx->st->code;
    if (max && onnx_attr_int(n, "storage_order", 0))
        return onnx_error(cx, KILN_ERR_UNIMPLEMENTED, "storage_order=1 is not supported");
    if (!max && (w.d[0] != 1 || w.d[1] != 1 || w.d[2] != 1)) {
        if (!ir_type_is_static(t))
            return onnx_error(cx, KILN_ERR_UNIMPLEMENTED, "dilated average pooling needs static shapes");
        return onnx_done(cx, out,
                         onnx_window_sum(cx, in[0], &w, onnx_attr_int(n, "ceil_mode", 0) != 0,
                                    onnx_attr_int(n, "count_include_pad", 0) ? 2 : 1));
    }
    if (w.sp == 3)
        return onnx_done(cx, out,
                         onnx_pool3d(cx, max ? "MaxPool2D" : "AveragePool2D", in[0], &w,
                                onnx_attr_int(n, "ceil_mode", 0),
                                onnx_attr_int(n, "count_include_pad", 0)));
    kiln_value x = w.sp == 1 ? unsq2(cx, in[0]) : in[0];
    kiln_attrs *a = onnx_bag(cx);
    if (!a) return cx->st->code;
    win_attrs(a, &w, true, max);
    kiln_attrs_int(a, "ceil_mode", onnx_attr_int(n, "ceil_mode", 0));
    if (!max) kiln_attrs_int(a, "count_include_pad", onnx_attr_int(n, "count_include_pad", 0));
    kiln_value r = onnx_op(cx, max ? "MaxPool2D" : "AveragePool2D", &x, 1, a);
    kiln_attrs_free(a);
    if (w.sp == 1) r = sq2(cx, r);
    return onnx_done(cx, out, r);
}

CONV(cv_global_pool)
{
    const ir_type *t = onnx_type(cx, in[0]);
    int64_t axes[IR_MAX_RANK];
    int na = 0;
    for (int i = 2; i < t->rank; i++) axes[na++] = i;
    if (na == 0) return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "input rank %d < 3", t->rank);
    bool max = !strcmp(n->op_type, "GlobalMaxPool");
    return onnx_done(cx, out, onnx_reduce(cx, max ? "ReduceMax" : "ReduceMean", in[0], axes, na, 1));
}

/* ---- Einsum: one or two operands, no ellipsis or repeated letters ---- */

static int parse_term(const char *s, size_t len, char *out)
{
    int n = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == ' ') continue;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) || n >= IR_MAX_RANK) return -1;
        for (int k = 0; k < n; k++)
            if (out[k] == c) return -1;
        out[n++] = c;
    }
    out[n] = 0;
    return n;
}

static int find_letter(const char *s, char c)
{
    const char *p = strchr(s, c);
    return p ? (int)(p - s) : -1;
}

/* Reduces letters of x (term t) not in keep, and transposes the rest into
 * the order of `order`. */
static kiln_value einsum_prep(onnx_ctx *cx, kiln_value x, char *t, const char *keep1,
                              const char *keep2)
{
    int64_t axes[IR_MAX_RANK];
    int na = 0;
    char rest[IR_MAX_RANK + 1];
    int nr = 0;
    for (int i = 0; t[i]; i++) {
        if (find_letter(keep1, t[i]) < 0 && find_letter(keep2, t[i]) < 0) axes[na++] = i;
        else rest[nr++] = t[i];
    }
    rest[nr] = 0;
    if (na) x = onnx_reduce(cx, "ReduceSum", x, axes, na, 0);
    strcpy(t, rest);
    return x;
}

static kiln_value permute(onnx_ctx *cx, kiln_value x, const char *from, const char *to)
{
    int64_t perm[IR_MAX_RANK];
    int n = (int)strlen(to);
    bool id = true;
    for (int i = 0; i < n; i++) {
        perm[i] = find_letter(from, to[i]);
        if (perm[i] != i) id = false;
    }
    return id ? x : onnx_op_ints(cx, "Transpose", x, "perm", perm, n);
}

CONV(cv_einsum)
{
    char eq[128];
    onnx_attr_string(n, "equation", "", eq, sizeof eq);
    char *arrow = strstr(eq, "->");
    char terms[2][IR_MAX_RANK + 1], outt[IR_MAX_RANK + 1];
    if (!arrow || strchr(eq, '.') || nin < 1 || nin > 2)
        return onnx_error(cx, KILN_ERR_UNIMPLEMENTED,
                          "equation '%s': kiln supports 1- and 2-operand equations with an explicit "
                          "output and no ellipsis or repeated letters",
                          eq);
    char *comma = strchr(eq, ',');
    if ((nin == 2) != (comma != NULL && comma < arrow))
        return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "equation '%s' does not match %d inputs", eq, nin);
    size_t l0 = (size_t)((nin == 2 ? comma : arrow) - eq);
    int r0 = parse_term(eq, l0, terms[0]);
    int r1 = nin == 2 ? parse_term(comma + 1, (size_t)(arrow - comma - 1), terms[1]) : 0;
    int ro = parse_term(arrow + 2, strlen(arrow + 2), outt);
    if (r0 < 0 || r1 < 0 || ro < 0)
        return onnx_error(cx, KILN_ERR_UNIMPLEMENTED, "equation '%s' uses an unsupported form", eq);
    for (int i = 0; i < nin; i++)
        if ((int)strlen(terms[i]) != onnx_type(cx, in[i])->rank)
            return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "term %d of '%s' does not match the input's rank", i, eq);
    if (nin == 1) {
        kiln_value x = einsum_prep(cx, in[0], terms[0], outt, "");
        return onnx_done(cx, out, permute(cx, x, terms[0], outt));
    }
    kiln_value a = einsum_prep(cx, in[0], terms[0], outt, terms[1]);
    kiln_value b = einsum_prep(cx, in[1], terms[1], outt, terms[0]);
    /* batch: in both and the output; contracted: in both only; left/right: one side. */
    char batch[9] = "", con[9] = "", left[9] = "", right[9] = "";
    int nb = 0, nc = 0, nl = 0, nr = 0;
    for (int i = 0; terms[0][i]; i++) {
        char c = terms[0][i];
        bool inb = find_letter(terms[1], c) >= 0, ino = find_letter(outt, c) >= 0;
        if (inb && ino) batch[nb++] = c;
        else if (inb) con[nc++] = c;
        else left[nl++] = c;
    }
    for (int i = 0; terms[1][i]; i++)
        if (find_letter(terms[0], terms[1][i]) < 0) right[nr++] = terms[1][i];
    batch[nb] = con[nc] = left[nl] = right[nr] = 0;
    const ir_type *ta = onnx_type(cx, a), *tb = onnx_type(cx, b);
    if (!ir_type_is_static(ta) || !ir_type_is_static(tb))
        return onnx_error(cx, KILN_ERR_UNIMPLEMENTED, "Einsum needs static input shapes");
    int64_t B = 1, L = 1, K = 1, R = 1, od[IR_MAX_RANK];
    int no = 0;
    for (int i = 0; i < nb; i++) od[no++] = ta->dims[find_letter(terms[0], batch[i])], B *= od[no - 1];
    for (int i = 0; i < nl; i++) od[no++] = ta->dims[find_letter(terms[0], left[i])], L *= od[no - 1];
    for (int i = 0; i < nr; i++) od[no++] = tb->dims[find_letter(terms[1], right[i])], R *= od[no - 1];
    for (int i = 0; i < nc; i++) K *= ta->dims[find_letter(terms[0], con[i])];
    char pa[3 * IR_MAX_RANK + 1], pb[3 * IR_MAX_RANK + 1], po[3 * IR_MAX_RANK + 1];
    snprintf(pa, sizeof pa, "%s%s%s", batch, left, con);
    snprintf(pb, sizeof pb, "%s%s%s", batch, con, right);
    snprintf(po, sizeof po, "%s%s%s", batch, left, right);
    if (strlen(po) > IR_MAX_RANK) return onnx_error(cx, KILN_ERR_UNIMPLEMENTED, "rank too large");
    int64_t s3a[3] = {B, L, K}, s3b[3] = {B, K, R};
    a = onnx_reshape(cx, permute(cx, a, terms[0], pa), s3a, 3);
    b = onnx_reshape(cx, permute(cx, b, terms[1], pb), s3b, 3);
    kiln_value m = onnx_reshape(cx, onnx_op2(cx, "MatMul", a, b), od, no);
    return onnx_done(cx, out, permute(cx, m, po, outt));
}

/* LpPool: (sum over the window of |x|^p)^(1/p), the sum as an average
 * pool counting the (zero) pads, times the window size. */
CONV(cv_lppool)
{
    const ir_type *t = onnx_type(cx, in[0]);
    onnx_win w;
    if (window(cx, n, t, NULL, &w, false)) return cx->st->code;
    bool dilated = w.d[0] != 1 || w.d[1] != 1 || w.d[2] != 1;
    if (dilated && !ir_type_is_static(t))
        return onnx_error(cx, KILN_ERR_UNIMPLEMENTED, "dilated LpPool needs static shapes");
    int64_t p = onnx_attr_int(n, "p", 2);
    kiln_value x = in[0];
    kiln_value ap = p == 2   ? onnx_op2(cx, "Mul", x, x)
                    : p == 1 ? onnx_op1(cx, "Abs", x)
                             : onnx_op2(cx, "Pow", onnx_op1(cx, "Abs", x), onnx_scalar_like(cx, x, (double)p));
    kiln_value r;
    int64_t wsize = 1;
    if (dilated) {
        r = onnx_window_sum(cx, ap, &w, onnx_attr_int(n, "ceil_mode", 0) != 0, 0);
    } else if (w.sp == 3) {
        r = onnx_pool3d(cx, "AveragePool2D", ap, &w, onnx_attr_int(n, "ceil_mode", 0), 1);
    } else {
        if (w.sp == 1) ap = unsq2(cx, ap);
        kiln_attrs *a = onnx_bag(cx);
        if (!a) return cx->st->code;
        win_attrs(a, &w, true, false);
        kiln_attrs_int(a, "ceil_mode", onnx_attr_int(n, "ceil_mode", 0));
        kiln_attrs_int(a, "count_include_pad", 1);
        r = onnx_op(cx, "AveragePool2D", &ap, 1, a);
        kiln_attrs_free(a);
        if (w.sp == 1) r = sq2(cx, r);
    }
    for (int i = 0; i < w.sp && !dilated; i++) wsize *= w.k[i];
    if (wsize != 1) r = onnx_op2(cx, "Mul", r, onnx_scalar_like(cx, x, (double)wsize));
    if (p == 2) r = onnx_op1(cx, "Sqrt", r);
    else if (p != 1) r = onnx_op2(cx, "Pow", r, onnx_scalar_like(cx, x, 1.0 / (double)p));
    return onnx_done(cx, out, r);
}

/* ---- the table ---- */

typedef struct {
    const char *name;
    int since, until; /* opsets supported: [since, until] */
    onnx_convert_fn fn;
    const char *kiln; /* kiln ops used, for the docs */
} onnx_opentry;

static const onnx_opentry op_table[] = {
    {"Abs", 1, 99, cv_simple, "Abs"},
    {"Acos", 7, 99, cv_simple, "Acos"},
    {"Acosh", 9, 99, cv_simple, "Acosh"},
    {"Add", 1, 99, cv_simple, "Add"},
    {"AffineGrid", 20, 99, onnx_cv_affine_grid, "Constant, Transpose, MatMul, Reshape"},
    {"And", 1, 99, cv_simple, "And"},
    {"ArgMax", 1, 99, cv_arg, "ArgMax"},
    {"ArgMin", 1, 99, cv_arg, "ArgMin"},
    {"Asin", 7, 99, cv_simple, "Asin"},
    {"Asinh", 9, 99, cv_simple, "Asinh"},
    {"Atan", 7, 99, cv_simple, "Atan"},
    {"Atanh", 9, 99, cv_simple, "Atanh"},
    {"Attention", 23, 99, onnx_cv_attention, "MatMul, Softmax, Transpose, Reshape, masks (static shapes)"},
    {"AveragePool", 1, 99, cv_pool, "AveragePool2D (1-D, 2-D; 3-D as two 2-D)"},
    {"BatchNormalization", 1, 99, cv_batchnorm, "BatchNormalization (inference)"},
    {"BitShift", 11, 99, cv_bitwise, "BitShift"},
    {"BitwiseAnd", 18, 99, cv_bitwise, "BitwiseAnd"},
    {"BitwiseNot", 18, 99, cv_bitwise, "BitwiseNot"},
    {"BitwiseOr", 18, 99, cv_bitwise, "BitwiseOr"},
    {"BitwiseXor", 18, 99, cv_bitwise, "BitwiseXor"},
    {"BlackmanWindow", 17, 99, onnx_cv_window, "Constant (size constant)"},
    {"Cast", 1, 99, cv_cast, "Cast"},
    {"CastLike", 15, 99, cv_cast, "Cast"},
    {"CausalConvWithState", 27, 99, onnx_cv_causal_conv, "Concat, Conv2D (depthwise), Sigmoid, Mul, Slice (static shapes)"},
    {"Ceil", 1, 99, cv_simple, "Ceil"},
    {"Celu", 12, 99, cv_celu, "Maximum, Minimum, Exp, arithmetic"},
    {"CenterCropPad", 18, 99, onnx_cv_center_crop_pad, "Pad (crops as negative pads)"},
    {"Clip", 1, 99, cv_clip, "Clip (min/max constant)"},
    {"Col2Im", 18, 99, onnx_cv_col2im, "ConvTranspose2D (2-D images)"},
    {"Concat", 1, 99, cv_concat, "Concat"},
    {"Constant", 1, 99, cv_constant, "Constant"},
    {"ConstantOfShape", 9, 99, cv_constant_of_shape, "Constant, Expand"},
    {"Conv", 1, 99, cv_conv, "Conv2D (1-D, 2-D; 3-D as a sum of 2-D)"},
    {"ConvTranspose", 1, 99, cv_conv, "ConvTranspose2D (1-D, 2-D; 3-D as two 2-D)"},
    {"Cos", 7, 99, cv_simple, "Cos"},
    {"Cosh", 9, 99, cv_simple, "Cosh"},
    {"CumProd", 26, 99, onnx_cv_cum, "CumProd"},
    {"CumSum", 11, 99, onnx_cv_cum, "CumSum (axis constant)"},
    {"DepthToSpace", 1, 99, onnx_cv_depth_space, "Reshape, Transpose"},
    {"DequantizeLinear", 10, 99, onnx_cv_dequantize, "Cast, Sub, Mul"},
    {"DFT", 17, 99, onnx_cv_dft, "MatMul with constant cos/sin matrices, Transpose, Slice, Concat (static sizes)"},
    {"Div", 1, 99, cv_simple, "Div"},
    {"Dropout", 1, 99, cv_dropout, "Identity (inference)"},
    {"DynamicQuantizeLinear", 11, 99, onnx_cv_dynamic_quantize, "ReduceMax, ReduceMin, Round, Clip, Cast"},
    {"Einsum", 12, 99, cv_einsum, "Transpose, Reshape, MatMul, ReduceSum"},
    {"Elu", 1, 99, cv_alpha, "Elu"},
    {"Equal", 1, 99, cv_simple, "Equal"},
    {"Erf", 9, 99, cv_simple, "Erf"},
    {"Exp", 1, 99, cv_simple, "Exp"},
    {"Expand", 8, 99, cv_expand, "Expand (shape constant)"},
    {"EyeLike", 9, 99, onnx_cv_eyelike, "Constant (static shapes)"},
    {"Flatten", 1, 99, cv_flatten, "Flatten"},
    {"Floor", 1, 99, cv_simple, "Floor"},
    {"GRU", 7, 99, onnx_cv_gru, "unrolled: MatMul, Slice, Sigmoid/Tanh, arithmetic, Where, Concat (static shapes)"},
    {"Gather", 1, 99, cv_gather, "Gather"},
    {"GatherElements", 11, 99, onnx_cv_gather_elements, "GatherElements"},
    {"GatherND", 11, 99, onnx_cv_gathernd, "ReduceSum, Gather (batch_dims 0, 1)"},
    {"Gelu", 20, 99, cv_gelu, "Gelu"},
    {"Gemm", 1, 99, cv_gemm, "Gemm"},
    {"GlobalAveragePool", 1, 99, cv_global_pool, "ReduceMean"},
    {"GlobalMaxPool", 1, 99, cv_global_pool, "ReduceMax"},
    {"Greater", 1, 99, cv_simple, "Greater"},
    {"GreaterOrEqual", 12, 99, cv_simple, "GreaterOrEqual"},
    {"GridSample", 16, 99, onnx_cv_grid_sample, "GridSample"},
    {"GroupNormalization", 21, 99, onnx_cv_groupnorm, "ReduceMean, Rsqrt, arithmetic"},
    {"HammingWindow", 17, 99, onnx_cv_window, "Constant (size constant)"},
    {"HannWindow", 17, 99, onnx_cv_window, "Constant (size constant)"},
    {"HardSigmoid", 1, 99, cv_hardsigmoid, "Mul, Add, Clip"},
    {"HardSwish", 14, 99, cv_hardswish, "Mul, Add, Clip"},
    {"Hardmax", 1, 99, onnx_cv_hardmax, "ArgMax, OneHot"},
    {"Identity", 1, 99, cv_simple, "Identity"},
    {"If", 1, 99, onnx_cv_if, "the chosen branch inlined (condition constant), or both branches and Where"},
    {"InstanceNormalization", 1, 99, cv_instancenorm, "ReduceMean, Rsqrt, arithmetic"},
    {"IsInf", 10, 99, cv_isinf, "IsInf"},
    {"IsNaN", 9, 99, cv_simple, "IsNaN"},
    {"LRN", 1, 99, onnx_cv_lrn, "AveragePool2D, Pow, arithmetic"},
    {"LSTM", 7, 99, onnx_cv_lstm, "unrolled: MatMul, Slice, Sigmoid/Tanh, arithmetic, Where, Concat (static shapes)"},
    {"LayerNormalization", 17, 99, cv_layernorm, "LayerNormalization (Mean, InvStdDev: ReduceMean, Rsqrt)"},
    {"LeakyRelu", 1, 99, cv_alpha, "LeakyRelu"},
    {"Less", 1, 99, cv_simple, "Less"},
    {"LessOrEqual", 12, 99, cv_simple, "LessOrEqual"},
    {"LinearAttention", 27, 99, onnx_cv_linear_attention, "unrolled: MatMul, Exp, arithmetic, Expand, Concat (static shapes)"},
    {"Log", 1, 99, cv_simple, "Log"},
    {"LogSoftmax", 1, 99, cv_softmax, "LogSoftmax"},
    {"Loop", 1, 99, onnx_cv_loop, "the body unrolled (trip count and condition constant), Concat"},
    {"LpNormalization", 1, 99, cv_lpnorm, "ReduceSum, Sqrt, Div"},
    {"LpPool", 1, 99, cv_lppool, "AveragePool2D, Pow (1-D, 2-D, 3-D)"},
    {"MatMul", 1, 99, cv_simple, "MatMul"},
    {"MatMulInteger", 10, 99, onnx_cv_matmul_integer, "Cast, Sub, MatMul (i32)"},
    {"Max", 1, 99, cv_variadic, "Maximum"},
    {"MaxPool", 1, 99, cv_pool, "MaxPool2D (1-D, 2-D; 3-D as two 2-D)"},
    {"Mean", 1, 99, cv_variadic, "Add, Div"},
    {"MeanVarianceNormalization", 9, 99, onnx_cv_mvn, "ReduceMean, Sqrt, arithmetic"},
    {"MelWeightMatrix", 17, 99, onnx_cv_mel_weight_matrix, "Constant (inputs constant)"},
    {"Min", 1, 99, cv_variadic, "Minimum"},
    {"Mish", 18, 99, cv_mish, "Softplus, Tanh, Mul"},
    {"Mod", 10, 99, cv_mod, "Mod"},
    {"Mul", 1, 99, cv_simple, "Mul"},
    {"Neg", 1, 99, cv_simple, "Neg"},
    {"NegativeLogLikelihoodLoss", 12, 99, onnx_cv_nllloss, "GatherElements, Gather, Where, arithmetic, ReduceSum"},
    {"Not", 1, 99, cv_simple, "Not"},
    {"OneHot", 9, 99, onnx_cv_onehot, "OneHot (depth constant)"},
    {"Or", 1, 99, cv_simple, "Or"},
    {"PRelu", 1, 99, cv_prelu, "Less, Mul, Where"},
    {"Pad", 1, 99, cv_pad, "Pad (pads constant)"},
    {"Pow", 1, 99, cv_pow, "Pow"},
    {"QuantizeLinear", 10, 99, onnx_cv_quantize, "Div, Round, Add, Clip, Cast (8/16-bit, 4/2-bit ints, float8/float4)"},
    {"RMSNormalization", 23, 99, cv_rmsnorm, "ReduceMean, Rsqrt, Mul"},
    {"RNN", 7, 99, onnx_cv_rnn, "unrolled: MatMul, Slice, Tanh, arithmetic, Where, Concat (static shapes)"},
    {"Range", 11, 99, cv_range, "Constant (folded)"},
    {"Reciprocal", 1, 99, cv_simple, "Reciprocal"},
    {"ReduceL1", 1, 99, cv_reduce, "Abs, ReduceSum"},
    {"ReduceL2", 1, 99, cv_reduce, "Mul, ReduceSum, Sqrt"},
    {"ReduceLogSum", 1, 99, cv_reduce, "ReduceSum, Log"},
    {"ReduceLogSumExp", 1, 99, cv_reduce, "ReduceMax, Exp, ReduceSum, Log"},
    {"ReduceMax", 1, 99, cv_reduce, "ReduceMax"},
    {"ReduceMean", 1, 99, cv_reduce, "ReduceMean"},
    {"ReduceMin", 1, 99, cv_reduce, "ReduceMin"},
    {"ReduceProd", 1, 99, cv_reduce, "ReduceProd"},
    {"ReduceSum", 1, 99, cv_reduce, "ReduceSum"},
    {"ReduceSumSquare", 1, 99, cv_reduce, "Mul, ReduceSum"},
    {"Relu", 1, 99, cv_simple, "Relu"},
    {"Reshape", 1, 99, cv_reshape, "Reshape (shape constant)"},
    {"Resize", 11, 99, onnx_cv_resize, "Gather, Mul, Add per axis (scales/sizes constant; no antialias)"},
    {"RotaryEmbedding", 23, 99, onnx_cv_rotary, "Gather, Slice, arithmetic, Concat"},
    {"Round", 11, 99, cv_simple, "Round"},
    {"Scan", 8, 99, onnx_cv_scan, "the body unrolled over the scan axis; Slice, Squeeze, Concat"},
    {"Scatter", 9, 10, onnx_cv_scatter, "ScatterElements"},
    {"ScatterElements", 11, 99, onnx_cv_scatter, "ScatterElements"},
    {"ScatterND", 11, 99, onnx_cv_scatter, "ScatterND"},
    {"Selu", 1, 99, cv_selu, "Elu, Mul"},
    {"Shape", 1, 99, cv_shape, "Constant (static shapes)"},
    {"Shrink", 9, 99, cv_shrink, "Where, comparisons"},
    {"Sigmoid", 1, 99, cv_simple, "Sigmoid"},
    {"Sign", 9, 99, cv_simple, "Sign"},
    {"Sin", 7, 99, cv_simple, "Sin"},
    {"Sinh", 9, 99, cv_simple, "Sinh"},
    {"Size", 1, 99, cv_size, "Constant (static shapes)"},
    {"Slice", 1, 99, cv_slice, "Slice (starts/ends/axes/steps constant)"},
    {"Softmax", 1, 99, cv_softmax, "Softmax"},
    {"SoftmaxCrossEntropyLoss", 12, 99, onnx_cv_sce_loss, "LogSoftmax, GatherElements, Gather, Where, arithmetic, ReduceSum"},
    {"Softplus", 1, 99, cv_simple, "Softplus"},
    {"Softsign", 1, 99, cv_softsign, "Abs, Add, Div"},
    {"SpaceToDepth", 1, 99, onnx_cv_depth_space, "Reshape, Transpose"},
    {"Split", 1, 99, cv_split, "Split (split constant)"},
    {"Sqrt", 1, 99, cv_simple, "Sqrt"},
    {"Squeeze", 1, 99, cv_squeeze, "Squeeze (axes constant)"},
    {"STFT", 17, 99, onnx_cv_stft, "Gather (constant frame indices), Mul, MatMul with constant cos/sin matrices"},
    {"Sub", 1, 99, cv_simple, "Sub"},
    {"Sum", 1, 99, cv_variadic, "Add"},
    {"SwiGLU", 28, 99, onnx_cv_swiglu, "Sigmoid, Mul"},
    {"Swish", 24, 99, onnx_cv_swish, "Sigmoid, Mul"},
    {"Tan", 7, 99, cv_simple, "Tan"},
    {"Tanh", 1, 99, cv_simple, "Tanh"},
    {"ThresholdedRelu", 10, 99, cv_thresholded_relu, "Greater, Where"},
    {"Tile", 6, 99, cv_tile, "Tile (repeats constant)"},
    {"TopK", 1, 99, onnx_cv_topk, "TopK (k constant)"},
    {"Transpose", 1, 99, cv_transpose, "Transpose"},
    {"Trilu", 14, 99, onnx_cv_trilu, "Where (constant mask)"},
    {"Unsqueeze", 1, 99, cv_unsqueeze, "Unsqueeze (axes constant)"},
    {"Where", 9, 99, cv_simple, "Where"},
    {"Xor", 1, 99, cv_simple, "Xor"},
};

/* Known ONNX ops kiln cannot import yet, with the reason. */
static const char *const unsupported[][2] = {
    {"Upsample", "deprecated Resize form (opsets 7-9), not supported"},
    {"ConvInteger", "quantization is not supported yet"},
    {"QLinearMatMul", "quantization is not supported yet"},
    {"QLinearConv", "quantization is not supported yet"},
    {"NonZero", "data-dependent output shapes are not supported"},
    {"Unique", "data-dependent output shapes are not supported"},
    {"Compress", "data-dependent output shapes are not supported"},
    {"NonMaxSuppression", "data-dependent output shapes are not supported"},
    {"SequenceAt", "sequence types are not supported"},
    {"SequenceConstruct", "sequence types are not supported"},
    {"SequenceEmpty", "sequence types are not supported"},
    {"SequenceErase", "sequence types are not supported"},
    {"SequenceInsert", "sequence types are not supported"},
    {"SequenceLength", "sequence types are not supported"},
    {"SequenceMap", "sequence types are not supported"},
    {"SplitToSequence", "sequence types are not supported"},
    {"ConcatFromSequence", "sequence types are not supported"},
    {"Optional", "optional types are not supported"},
    {"OptionalHasElement", "optional types are not supported"},
    {"OptionalGetElement", "optional types are not supported"},
    {"StringNormalizer", "string tensors are not supported"},
    {"StringConcat", "string tensors are not supported"},
    {"StringSplit", "string tensors are not supported"},
    {"RegexFullMatch", "string tensors are not supported"},
    {"TfIdfVectorizer", "string tensors are not supported"},
    {"Gradient", "training-only op"},
    {"Momentum", "training-only op"},
    {"Adagrad", "training-only op"},
    {"Adam", "training-only op"},
    {"RandomUniformLike", "random ops are not compared by value"},
    {"RandomNormalLike", "random ops are not compared by value"},
    {"RandomUniform", "random ops are not compared by value"},
    {"RandomNormal", "random ops are not compared by value"},
    {"Bernoulli", "random ops are not compared by value"},
    {"Multinomial", "random ops are not compared by value"},
};

onnx_convert_fn onnx_find_op(const char *domain, const char *op_type, int opset, const char **why)
{
    *why = NULL;
    if (*domain && strcmp(domain, "ai.onnx") != 0) {
        *why = "only the ai.onnx domain is supported";
        return NULL;
    }
    for (size_t i = 0; i < sizeof op_table / sizeof op_table[0]; i++) {
        const onnx_opentry *e = &op_table[i];
        if (strcmp(e->name, op_type) != 0) continue;
        if (opset < e->since || opset > e->until) {
            *why = "not defined at this opset";
            return NULL;
        }
        return e->fn;
    }
    for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++)
        if (strcmp(unsupported[i][0], op_type) == 0) {
            *why = unsupported[i][1];
            return NULL;
        }
    *why = "no kiln equivalent yet";
    return NULL;
}

void onnx_op_table(ir_buf *b)
{
    ir_buf_puts(b, "| ONNX op | opsets | kiln ops |\n|---|---|---|\n");
    for (size_t i = 0; i < sizeof op_table / sizeof op_table[0]; i++)
        ir_buf_printf(b, "| %s | %d-%d | %s |\n", op_table[i].name, op_table[i].since,
                      op_table[i].until < ONNX_MAX_OPSET ? op_table[i].until : ONNX_MAX_OPSET,
                      op_table[i].kiln);
    ir_buf_puts(b, "\nNot supported yet:\n\n| ONNX op | why |\n|---|---|\n");
    for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++)
        ir_buf_printf(b, "| %s | %s |\n", unsupported[i][0], unsupported[i][1]);
}
