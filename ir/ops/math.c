/* math.c -- elementwise math ops beyond the arithmetic of elementwise.c:
 * rounding (Floor, Ceil, Round), Sign, the trigonometric and hyperbolic
 * functions and their inverses, the IsNaN/IsInf tests and Mod. Reference
 * kernels compute floats in double and integers in int64, then store in the
 * output dtype, like elementwise.c. */
#include <math.h>
#include <string.h>

#include "../ir.h"

/* ---- unary float (and Sign: numeric) ---- */

typedef double (*f1_fn)(double x);
typedef int64_t (*i1_fn)(int64_t x, kiln_dtype dt); /* x as ir_load_i64 reads it */

typedef struct {
    f1_fn f;
    i1_fn fi; /* NULL: floats only */
} math_unary;

static int run_unary(ir_kernel_ctx *kx, const math_unary *u)
{
    const kiln_tensor *x = kx->in[0];
    kiln_tensor *y = kx->out[0];
    if (ir_dtype_is_float(x->dtype)) {
        for (size_t i = 0; i < x->size; i++)
            ir_store_f64(y->dtype, y->data, i, u->f(ir_load_f64(x->dtype, x->data, i)));
    } else {
        for (size_t i = 0; i < x->size; i++)
            ir_store_i64(y->dtype, y->data, i, u->fi(ir_load_i64(x->dtype, x->data, i), x->dtype));
    }
    return 0;
}

static int infer_float(ir_infer_ctx *cx)
{
    if (ir_infer_require_float(cx, 0)) return -1;
    cx->out[0] = cx->in[0];
    return 0;
}

static int infer_numeric(ir_infer_ctx *cx)
{
    if (ir_infer_require_dtypes(cx, 0, IR_DT_NUMERIC)) return -1;
    cx->out[0] = cx->in[0];
    return 0;
}

/* Round half to even: nearbyint in the default rounding mode. */
static double round_even(double x) { return nearbyint(x); }
/* numpy's sign: NaN stays NaN, both zeros give +0. */
static double sign_f(double x) { return x > 0 ? 1.0 : x < 0 ? -1.0 : x == 0 ? 0.0 : x; }
static int64_t sign_i(int64_t x, kiln_dtype dt) { return dt == KILN_U64 ? x != 0 : (x > 0) - (x < 0); }

/* FLAGS: extra flags (rounding and Sign are flagged not differentiable:
 * their gradient is zero wherever it exists); GRAD: the gradient rule. */
#define MATH_UNARY(NAME, INFER, F, I, FLAGS, GRAD, DOC)                                      \
    static const math_unary impl_##NAME = {F, I};                                           \
    static int kernel_##NAME(ir_kernel_ctx *kx) { return run_unary(kx, &impl_##NAME); }     \
    const ir_opdef ir_opdef_##NAME = {                                                     \
        .name = #NAME, .min_inputs = 1, .max_inputs = 1, .noutputs = 1,                      \
        .flags = IR_OPF_ELEMENTWISE | (FLAGS), .infer = INFER, .kernel = kernel_##NAME,      \
        .grad = GRAD, .doc = DOC,                                                            \
    };

MATH_UNARY(Floor, infer_float, floor, NULL, IR_OPF_NOT_DIFFERENTIABLE, NULL, "Largest integer <= x.")
MATH_UNARY(Ceil, infer_float, ceil, NULL, IR_OPF_NOT_DIFFERENTIABLE, NULL, "Smallest integer >= x.")
MATH_UNARY(Round, infer_float, round_even, NULL, IR_OPF_NOT_DIFFERENTIABLE, NULL, "Nearest integer, halves to even.")
MATH_UNARY(Sign, infer_numeric, sign_f, sign_i, IR_OPF_NOT_DIFFERENTIABLE, NULL, "-1, 0 or 1 by the sign of x (NaN stays NaN).")
MATH_UNARY(Sin, infer_float, sin, NULL, 0, ir_grad_Sin, "Sine.")
MATH_UNARY(Cos, infer_float, cos, NULL, 0, ir_grad_Cos, "Cosine.")
MATH_UNARY(Tan, infer_float, tan, NULL, 0, ir_grad_Tan, "Tangent.")
MATH_UNARY(Asin, infer_float, asin, NULL, 0, ir_grad_Asin, "Inverse sine (NaN outside [-1, 1]).")
MATH_UNARY(Acos, infer_float, acos, NULL, 0, ir_grad_Acos, "Inverse cosine (NaN outside [-1, 1]).")
MATH_UNARY(Atan, infer_float, atan, NULL, 0, ir_grad_Atan, "Inverse tangent.")
MATH_UNARY(Sinh, infer_float, sinh, NULL, 0, ir_grad_Sinh, "Hyperbolic sine.")
MATH_UNARY(Cosh, infer_float, cosh, NULL, 0, ir_grad_Cosh, "Hyperbolic cosine.")
MATH_UNARY(Asinh, infer_float, asinh, NULL, 0, ir_grad_Asinh, "Inverse hyperbolic sine.")
MATH_UNARY(Acosh, infer_float, acosh, NULL, 0, ir_grad_Acosh, "Inverse hyperbolic cosine (NaN below 1).")
MATH_UNARY(Atanh, infer_float, atanh, NULL, 0, ir_grad_Atanh, "Inverse hyperbolic tangent (NaN outside [-1, 1]).")

/* ---- IsNaN, IsInf: float -> bool ---- */

static int infer_float_test(ir_infer_ctx *cx)
{
    if (ir_infer_require_float(cx, 0)) return -1;
    cx->out[0] = cx->in[0];
    cx->out[0].dtype = KILN_BOOL;
    return 0;
}

static int kernel_isnan(ir_kernel_ctx *kx)
{
    const kiln_tensor *x = kx->in[0];
    uint8_t *y = kx->out[0]->data;
    for (size_t i = 0; i < x->size; i++) y[i] = (uint8_t)isnan(ir_load_f64(x->dtype, x->data, i));
    return 0;
}

static int kernel_isinf(ir_kernel_ctx *kx)
{
    const kiln_tensor *x = kx->in[0];
    uint8_t *y = kx->out[0]->data;
    bool pos = ir_node_int(kx->node, "detect_positive") != 0;
    bool neg = ir_node_int(kx->node, "detect_negative") != 0;
    for (size_t i = 0; i < x->size; i++) {
        double v = ir_load_f64(x->dtype, x->data, i);
        y[i] = (uint8_t)((pos && v == INFINITY) || (neg && v == -INFINITY));
    }
    return 0;
}

static const ir_attrdef isinf_attrs[] = {IR_ATTR_I("detect_positive", 1), IR_ATTR_I("detect_negative", 1)};

const ir_opdef ir_opdef_IsNaN = {
    .name = "IsNaN", .min_inputs = 1, .max_inputs = 1, .noutputs = 1,
    .flags = IR_OPF_ELEMENTWISE | IR_OPF_NOT_DIFFERENTIABLE, .infer = infer_float_test,
    .kernel = kernel_isnan, .doc = "x is NaN -> bool.",
};

const ir_opdef ir_opdef_IsInf = {
    .name = "IsInf", .min_inputs = 1, .max_inputs = 1, .noutputs = 1,
    .attrs = isinf_attrs, .nattrs = 2,
    .flags = IR_OPF_ELEMENTWISE | IR_OPF_NOT_DIFFERENTIABLE, .infer = infer_float_test,
    .kernel = kernel_isinf,
    .doc = "x is +inf (if detect_positive) or -inf (if detect_negative) -> bool.",
};

/* ---- Mod (numpy broadcasting) ---- */

static int infer_mod(ir_infer_ctx *cx)
{
    if (ir_infer_require_dtypes(cx, 0, IR_DT_NUMERIC) || ir_infer_same_dtype(cx, 0, 1)) return -1;
    int64_t fm = ir_node_int(cx->node, "fmod");
    if (fm != 0 && fm != 1) return ir_infer_error(cx, "fmod must be 0 or 1, got %lld", (long long)fm);
    if (fm == 0 && ir_dtype_is_float(cx->in[0].dtype))
        return ir_infer_error(cx, "fmod must be 1 for %s inputs", kiln_dtype_name(cx->in[0].dtype));
    return ir_infer_broadcast(cx);
}

/* The remainder of a / b (b != 0): truncated (C) with fmod, else with the
 * sign of the divisor (Python). */
static int64_t int_mod(int64_t a, int64_t b, bool c_fmod)
{
    int64_t r = b == -1 ? 0 : a % b; /* INT64_MIN % -1 is undefined in C */
    if (!c_fmod && r != 0 && ((r < 0) != (b < 0))) r += b;
    return r;
}

static int kernel_mod(ir_kernel_ctx *kx)
{
    const kiln_tensor *a = kx->in[0], *b = kx->in[1];
    kiln_tensor *y = kx->out[0];
    ir_iter it;
    ir_iter_init(&it, y->rank, y->dims);
    for (int k = 0; k < 2; k++) {
        int64_t st[IR_MAX_RANK];
        ir_broadcast_strides(kx->in[k]->rank, kx->in[k]->dims, it.rank, st);
        ir_iter_add(&it, st);
    }
    bool c_fmod = ir_node_int(kx->node, "fmod") != 0;
    bool is_float = ir_dtype_is_float(a->dtype);
    for (size_t i = 0; i < y->size; i++, ir_iter_next(&it)) {
        if (is_float) {
            double r = fmod(ir_load_f64(a->dtype, a->data, (size_t)it.off[0]),
                            ir_load_f64(b->dtype, b->data, (size_t)it.off[1]));
            ir_store_f64(y->dtype, y->data, i, r);
            continue;
        }
        int64_t bv = ir_load_i64(b->dtype, b->data, (size_t)it.off[1]);
        if (bv == 0)
            return ir_kernel_error(kx, KILN_ERR_INVALID_ARGUMENT,
                                   "integer division by zero (modulo) at output element %zu", i);
        int64_t av = ir_load_i64(a->dtype, a->data, (size_t)it.off[0]);
        /* u64: unsigned remainder (fmod or not, both signs are +) */
        int64_t r = a->dtype == KILN_U64 ? (int64_t)((uint64_t)av % (uint64_t)bv) : int_mod(av, bv, c_fmod);
        ir_store_i64(y->dtype, y->data, i, r);
    }
    return 0;
}

static const ir_attrdef mod_attrs[] = {IR_ATTR_I("fmod", 0)};

const ir_opdef ir_opdef_Mod = {
    .name = "Mod", .min_inputs = 2, .max_inputs = 2, .noutputs = 1,
    .attrs = mod_attrs, .nattrs = 1, .flags = IR_OPF_ELEMENTWISE, .infer = infer_mod,
    .kernel = kernel_mod, .grad = ir_grad_Mod,
    .doc = "a mod b (broadcasting): integers take the divisor's sign (fmod = 0) or the "
           "dividend's (fmod = 1, C fmod); floats need fmod = 1; integer mod 0 is an error.",
};
