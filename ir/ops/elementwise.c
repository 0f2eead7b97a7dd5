/* elementwise.c -- elementwise ops: binary arithmetic with numpy
 * broadcasting, unary math and activations, comparisons, logic, Where and
 * Clip. Reference kernels compute floats in double and integers in int64
 * (wrapping to the storage width), then store in the output dtype. */
#include <math.h>
#include <string.h>

#include "../ir.h"

/* ---- shared broadcasting loops ---- */

typedef double (*f2_fn)(double, double);
/* Integers as ir_load_i64 reads them; dt tells u64 (whose order and
 * division are unsigned) apart. -1: undefined (e.g. / 0). */
typedef int (*i2_fn)(int64_t, int64_t, kiln_dtype dt, int64_t *);

/* Walks the output of a broadcasting op with n inputs, calling back with
 * the inputs' element offsets. */
#define BCAST_SETUP(kx, it)                                                             \
    ir_iter it;                                                                         \
    ir_iter_init(&it, (kx)->out[0]->rank, (kx)->out[0]->dims);                          \
    for (int k_ = 0; k_ < (kx)->ninputs; k_++) {                                        \
        int64_t st_[IR_MAX_RANK];                                                       \
        ir_broadcast_strides((kx)->in[k_]->rank, (kx)->in[k_]->dims, it.rank, st_);     \
        ir_iter_add(&it, st_);                                                          \
    }

static int run_binary(ir_kernel_ctx *kx, f2_fn f, i2_fn fi)
{
    const kiln_tensor *a = kx->in[0], *b = kx->in[1];
    kiln_tensor *y = kx->out[0];
    BCAST_SETUP(kx, it);
    bool is_float = ir_dtype_is_float(a->dtype);
    for (size_t i = 0; i < y->size; i++, ir_iter_next(&it)) {
        if (is_float) {
            double r = f(ir_load_f64(a->dtype, a->data, (size_t)it.off[0]),
                         ir_load_f64(b->dtype, b->data, (size_t)it.off[1]));
            ir_store_f64(y->dtype, y->data, i, r);
        } else {
            int64_t r;
            if (fi(ir_load_i64(a->dtype, a->data, (size_t)it.off[0]),
                   ir_load_i64(b->dtype, b->data, (size_t)it.off[1]), a->dtype, &r) < 0)
                return ir_kernel_error(kx, KILN_ERR_INVALID_ARGUMENT,
                                       "integer division by zero at output element %zu", i);
            ir_store_i64(y->dtype, y->data, i, r);
        }
    }
    return 0;
}

static int infer_binary_numeric(ir_infer_ctx *cx)
{
    if (ir_infer_require_dtypes(cx, 0, IR_DT_NUMERIC) || ir_infer_same_dtype(cx, 0, 1)) return -1;
    return ir_infer_broadcast(cx);
}

/* Integer arithmetic wraps like the hardware: compute in uint64. */
static int64_t wrap(uint64_t v) { return (int64_t)v; }

static double add_f(double a, double b) { return a + b; }
static int add_i(int64_t a, int64_t b, kiln_dtype dt, int64_t *r) { (void)dt; *r = wrap((uint64_t)a + (uint64_t)b); return 0; }
static double sub_f(double a, double b) { return a - b; }
static int sub_i(int64_t a, int64_t b, kiln_dtype dt, int64_t *r) { (void)dt; *r = wrap((uint64_t)a - (uint64_t)b); return 0; }
static double mul_f(double a, double b) { return a * b; }
static int mul_i(int64_t a, int64_t b, kiln_dtype dt, int64_t *r) { (void)dt; *r = wrap((uint64_t)a * (uint64_t)b); return 0; }
static double div_f(double a, double b) { return a / b; }
static int div_i(int64_t a, int64_t b, kiln_dtype dt, int64_t *r)
{
    if (b == 0) return -1;
    if (dt == KILN_U64) {
        *r = wrap((uint64_t)a / (uint64_t)b);
        return 0;
    }
    *r = (a == INT64_MIN && b == -1) ? INT64_MIN : a / b; /* truncates toward zero */
    return 0;
}
static double pow_f(double a, double b) { return pow(a, b); }
static int pow_i(int64_t a, int64_t b, kiln_dtype dt, int64_t *r)
{
    if (b < 0 && dt != KILN_U64) {
        /* Integer results of a negative power: only |a| == 1 is non-zero. */
        if (a == 0) return -1;
        *r = a == 1 ? 1 : a == -1 ? ((b & 1) ? -1 : 1) : 0;
        return 0;
    }
    uint64_t acc = 1, base = (uint64_t)a;
    for (uint64_t e = (uint64_t)b; e; e >>= 1) {
        if (e & 1) acc *= base;
        base *= base;
    }
    *r = wrap(acc);
    return 0;
}
/* numpy's maximum/minimum propagate NaN. */
static double max_f(double a, double b) { return (a != a || b != b) ? NAN : (a > b ? a : b); }
static int max_i(int64_t a, int64_t b, kiln_dtype dt, int64_t *r)
{
    *r = ir_int_order(dt, a) > ir_int_order(dt, b) ? a : b;
    return 0;
}
static double min_f(double a, double b) { return (a != a || b != b) ? NAN : (a < b ? a : b); }
static int min_i(int64_t a, int64_t b, kiln_dtype dt, int64_t *r)
{
    *r = ir_int_order(dt, a) < ir_int_order(dt, b) ? a : b;
    return 0;
}

#define BINARY_OP(NAME, F, I, DOC)                                                   \
    static int kernel_##NAME(ir_kernel_ctx *kx) { return run_binary(kx, F, I); }     \
    const ir_opdef ir_opdef_##NAME = {                                              \
        .name = #NAME, .min_inputs = 2, .max_inputs = 2, .noutputs = 1,               \
        .flags = IR_OPF_ELEMENTWISE, .infer = infer_binary_numeric,                   \
        .kernel = kernel_##NAME, .grad = ir_grad_##NAME, .doc = DOC,                  \
    };

BINARY_OP(Add, add_f, add_i, "a + b (broadcasting).")
BINARY_OP(Sub, sub_f, sub_i, "a - b (broadcasting).")
BINARY_OP(Mul, mul_f, mul_i, "a * b (broadcasting).")
BINARY_OP(Div, div_f, div_i, "a / b (broadcasting); integers truncate toward zero, / 0 is an error.")
BINARY_OP(Pow, pow_f, pow_i, "a ** b (broadcasting).")
BINARY_OP(Maximum, max_f, max_i, "Elementwise maximum (broadcasting; NaN propagates).")
BINARY_OP(Minimum, min_f, min_i, "Elementwise minimum (broadcasting; NaN propagates).")

/* ---- unary ---- */

typedef struct {
    double (*f)(double x, const ir_node *n);
    int64_t (*fi)(int64_t x, kiln_dtype dt, const ir_node *n); /* NULL: floats only */
} unary_impl;

static int run_unary(ir_kernel_ctx *kx, const unary_impl *u)
{
    const kiln_tensor *x = kx->in[0];
    kiln_tensor *y = kx->out[0];
    if (ir_dtype_is_float(x->dtype)) {
        for (size_t i = 0; i < x->size; i++)
            ir_store_f64(y->dtype, y->data, i, u->f(ir_load_f64(x->dtype, x->data, i), kx->node));
    } else {
        for (size_t i = 0; i < x->size; i++)
            ir_store_i64(y->dtype, y->data, i, u->fi(ir_load_i64(x->dtype, x->data, i), x->dtype, kx->node));
    }
    return 0;
}

static int infer_unary_float(ir_infer_ctx *cx)
{
    if (ir_infer_require_float(cx, 0)) return -1;
    cx->out[0] = cx->in[0];
    return 0;
}

static int infer_unary_numeric(ir_infer_ctx *cx)
{
    if (ir_infer_require_dtypes(cx, 0, IR_DT_NUMERIC)) return -1;
    cx->out[0] = cx->in[0];
    return 0;
}

static int infer_unary_signed(ir_infer_ctx *cx)
{
    if (ir_infer_require_dtypes(cx, 0, IR_DT_NUMERIC & ~IR_DT_UNSIGNED)) return -1;
    cx->out[0] = cx->in[0];
    return 0;
}

static double neg_f(double x, const ir_node *n) { (void)n; return -x; }
static int64_t neg_i(int64_t x, kiln_dtype dt, const ir_node *n) { (void)n; (void)dt; return wrap(0u - (uint64_t)x); }
static double abs_f(double x, const ir_node *n) { (void)n; return fabs(x); }
static int64_t abs_i(int64_t x, kiln_dtype dt, const ir_node *n) { (void)n; return x < 0 && dt != KILN_U64 ? wrap(0u - (uint64_t)x) : x; }
static double exp_f(double x, const ir_node *n) { (void)n; return exp(x); }
static double log_f(double x, const ir_node *n) { (void)n; return log(x); }
static double sqrt_f(double x, const ir_node *n) { (void)n; return sqrt(x); }
static double rsqrt_f(double x, const ir_node *n) { (void)n; return 1.0 / sqrt(x); }
static double recip_f(double x, const ir_node *n) { (void)n; return 1.0 / x; }
static double tanh_f(double x, const ir_node *n) { (void)n; return tanh(x); }
static double sigmoid_f(double x, const ir_node *n)
{
    (void)n;
    if (x >= 0) return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return e / (1.0 + e);
}
static double relu_f(double x, const ir_node *n) { (void)n; return x > 0 ? x : (x != x ? x : 0.0); }
static int64_t relu_i(int64_t x, kiln_dtype dt, const ir_node *n) { (void)n; (void)dt; return x > 0 ? x : 0; }
static double leaky_f(double x, const ir_node *n) { return x >= 0 ? x : x * ir_node_float(n, "alpha"); }
static double elu_f(double x, const ir_node *n) { return x >= 0 ? x : ir_node_float(n, "alpha") * expm1(x); }
static double gelu_f(double x, const ir_node *n)
{
    const char *approx = ir_node_string(n, "approximate");
    if (approx && strcmp(approx, "tanh") == 0) {
        double c = sqrt(2.0 / M_PI);
        return 0.5 * x * (1.0 + tanh(c * (x + 0.044715 * x * x * x)));
    }
    /* 0.5 x (1 + erf(x / sqrt 2)) written with erfc: no cancellation for
     * negative x. */
    return 0.5 * x * erfc(-x / M_SQRT2);
}
static double erf_f(double x, const ir_node *n) { (void)n; return erf(x); }
static double softplus_f(double x, const ir_node *n)
{
    (void)n;
    return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x));
}
static double clip_f(double x, const ir_node *n)
{
    double lo = ir_node_float(n, "min"), hi = ir_node_float(n, "max");
    if (x != x) return x;
    return x < lo ? lo : x > hi ? hi : x;
}
static int64_t clip_i(int64_t x, kiln_dtype dt, const ir_node *n)
{
    double lo = ir_node_float(n, "min"), hi = ir_node_float(n, "max");
    if (dt == KILN_U64) {
        /* the same inward rounding, saturating to [0, 2^64 - 1] */
        uint64_t lou = lo <= 0 ? 0 : lo >= 1.8446744073709552e19 ? UINT64_MAX : (uint64_t)ceil(lo);
        uint64_t hiu = hi < 0 ? 0 : hi >= 1.8446744073709552e19 ? UINT64_MAX : (uint64_t)floor(hi);
        uint64_t u = (uint64_t)x;
        if (hi < 0) /* every value is above the bound (as u8 does: it then wraps) */
            return hi <= -9.2233720368547758e18 ? INT64_MIN : (int64_t)floor(hi);
        return wrap(u < lou ? lou : u > hiu ? hiu : u);
    }
    /* Bounds round inward to integers (saturating to int64, so a huge bound
     * never overflows the conversion); infinite bounds do not clip. */
    int64_t loi = lo <= -9.2233720368547758e18 ? INT64_MIN : lo >= 9.2233720368547758e18 ? INT64_MAX : (int64_t)ceil(lo);
    int64_t hii = hi >= 9.2233720368547758e18 ? INT64_MAX : hi <= -9.2233720368547758e18 ? INT64_MIN : (int64_t)floor(hi);
    return x < loi ? loi : x > hii ? hii : x;
}

static int infer_gelu(ir_infer_ctx *cx)
{
    const char *approx = ir_node_string(cx->node, "approximate");
    if (!approx || (strcmp(approx, "none") != 0 && strcmp(approx, "tanh") != 0))
        return ir_infer_error(cx, "approximate must be \"none\" or \"tanh\", got \"%s\"",
                              approx ? approx : "(null)");
    return infer_unary_float(cx);
}

static int infer_clip(ir_infer_ctx *cx)
{
    double lo = ir_node_float(cx->node, "min"), hi = ir_node_float(cx->node, "max");
    if (lo != lo || hi != hi || lo > hi)
        return ir_infer_error(cx, "min must be <= max (and neither NaN), got min=%g max=%g", lo, hi);
    return infer_unary_numeric(cx);
}

#define UNARY_OP(NAME, INFER, F, I, ATTRS, NATTRS, DOC)                                      \
    static const unary_impl impl_##NAME = {F, I};                                            \
    static int kernel_##NAME(ir_kernel_ctx *kx) { return run_unary(kx, &impl_##NAME); }      \
    const ir_opdef ir_opdef_##NAME = {                                                      \
        .name = #NAME, .min_inputs = 1, .max_inputs = 1, .noutputs = 1,                       \
        .attrs = ATTRS, .nattrs = NATTRS, .flags = IR_OPF_ELEMENTWISE, .infer = INFER,        \
        .kernel = kernel_##NAME, .grad = ir_grad_##NAME, .doc = DOC,                          \
    };

static const ir_attrdef leaky_attrs[] = {IR_ATTR_F("alpha", 0.01)};
static const ir_attrdef elu_attrs[] = {IR_ATTR_F("alpha", 1.0)};
static const ir_attrdef gelu_attrs[] = {IR_ATTR_S("approximate", "none")};
static const ir_attrdef clip_attrs[] = {IR_ATTR_F("min", -INFINITY), IR_ATTR_F("max", INFINITY)};

UNARY_OP(Neg, infer_unary_signed, neg_f, neg_i, NULL, 0, "-x.")
UNARY_OP(Abs, infer_unary_numeric, abs_f, abs_i, NULL, 0, "|x|.")
UNARY_OP(Exp, infer_unary_float, exp_f, NULL, NULL, 0, "e ** x.")
UNARY_OP(Log, infer_unary_float, log_f, NULL, NULL, 0, "Natural logarithm.")
UNARY_OP(Sqrt, infer_unary_float, sqrt_f, NULL, NULL, 0, "Square root.")
UNARY_OP(Rsqrt, infer_unary_float, rsqrt_f, NULL, NULL, 0, "1 / sqrt(x).")
UNARY_OP(Reciprocal, infer_unary_float, recip_f, NULL, NULL, 0, "1 / x.")
UNARY_OP(Tanh, infer_unary_float, tanh_f, NULL, NULL, 0, "Hyperbolic tangent.")
UNARY_OP(Sigmoid, infer_unary_float, sigmoid_f, NULL, NULL, 0, "1 / (1 + e ** -x).")
UNARY_OP(Relu, infer_unary_signed, relu_f, relu_i, NULL, 0, "max(x, 0).")
UNARY_OP(LeakyRelu, infer_unary_float, leaky_f, NULL, leaky_attrs, 1, "x if x >= 0 else alpha * x.")
UNARY_OP(Elu, infer_unary_float, elu_f, NULL, elu_attrs, 1, "x if x >= 0 else alpha * (e ** x - 1).")
UNARY_OP(Gelu, infer_gelu, gelu_f, NULL, gelu_attrs, 1,
         "x * Phi(x); approximate = \"tanh\" for the tanh form.")
UNARY_OP(Erf, infer_unary_float, erf_f, NULL, NULL, 0, "The error function.")
UNARY_OP(Softplus, infer_unary_float, softplus_f, NULL, NULL, 0, "log(1 + e ** x), computed stably.")
UNARY_OP(Clip, infer_clip, clip_f, clip_i, clip_attrs, 2, "min(max(x, min), max).")

/* ---- comparisons and logic ---- */

static int infer_compare(ir_infer_ctx *cx)
{
    if (ir_infer_require_dtypes(cx, 0, IR_DT_NUMERIC) || ir_infer_same_dtype(cx, 0, 1)) return -1;
    if (ir_infer_broadcast(cx)) return -1;
    cx->out[0].dtype = KILN_BOOL;
    return 0;
}

static int infer_equal(ir_infer_ctx *cx)
{
    if (ir_infer_same_dtype(cx, 0, 1) || ir_infer_broadcast(cx)) return -1;
    cx->out[0].dtype = KILN_BOOL;
    return 0;
}

static int infer_logic(ir_infer_ctx *cx)
{
    for (int i = 0; i < cx->ninputs; i++)
        if (ir_infer_require_dtypes(cx, i, IR_DT_MASK(KILN_BOOL))) return -1;
    return ir_infer_broadcast(cx);
}

enum { CMP_EQ, CMP_LT, CMP_GT, CMP_LE, CMP_GE, LOG_AND, LOG_OR, LOG_XOR };

static int run_compare(ir_kernel_ctx *kx, int how)
{
    const kiln_tensor *a = kx->in[0], *b = kx->in[1];
    kiln_tensor *y = kx->out[0];
    uint8_t *out = y->data;
    BCAST_SETUP(kx, it);
    bool is_float = ir_dtype_is_float(a->dtype);
    for (size_t i = 0; i < y->size; i++, ir_iter_next(&it)) {
        int c;
        if (is_float) {
            double x = ir_load_f64(a->dtype, a->data, (size_t)it.off[0]);
            double z = ir_load_f64(b->dtype, b->data, (size_t)it.off[1]);
            c = how == CMP_EQ ? x == z : how == CMP_LT ? x < z : how == CMP_GT ? x > z
              : how == CMP_LE ? x <= z : x >= z;
        } else {
            int64_t x = ir_int_order(a->dtype, ir_load_i64(a->dtype, a->data, (size_t)it.off[0]));
            int64_t z = ir_int_order(b->dtype, ir_load_i64(b->dtype, b->data, (size_t)it.off[1]));
            switch (how) {
            case CMP_EQ: c = x == z; break;
            case CMP_LT: c = x < z; break;
            case CMP_GT: c = x > z; break;
            case CMP_LE: c = x <= z; break;
            case CMP_GE: c = x >= z; break;
            case LOG_AND: c = x && z; break;
            case LOG_OR: c = x || z; break;
            default: c = (x != 0) != (z != 0); break;
            }
        }
        out[i] = (uint8_t)c;
    }
    return 0;
}

#define COMPARE_OP(NAME, INFER, HOW, DOC)                                                   \
    static int kernel_##NAME(ir_kernel_ctx *kx) { return run_compare(kx, HOW); }            \
    const ir_opdef ir_opdef_##NAME = {                                                     \
        .name = #NAME, .min_inputs = 2, .max_inputs = 2, .noutputs = 1,                      \
        .flags = IR_OPF_ELEMENTWISE | IR_OPF_NOT_DIFFERENTIABLE, .infer = INFER,             \
        .kernel = kernel_##NAME, .doc = DOC,                                                 \
    };

COMPARE_OP(Equal, infer_equal, CMP_EQ, "a == b (broadcasting) -> bool.")
COMPARE_OP(Less, infer_compare, CMP_LT, "a < b (broadcasting) -> bool.")
COMPARE_OP(Greater, infer_compare, CMP_GT, "a > b (broadcasting) -> bool.")
COMPARE_OP(LessOrEqual, infer_compare, CMP_LE, "a <= b (broadcasting) -> bool.")
COMPARE_OP(GreaterOrEqual, infer_compare, CMP_GE, "a >= b (broadcasting) -> bool.")
COMPARE_OP(And, infer_logic, LOG_AND, "Logical and of bools (broadcasting).")
COMPARE_OP(Or, infer_logic, LOG_OR, "Logical or of bools (broadcasting).")
COMPARE_OP(Xor, infer_logic, LOG_XOR, "Logical xor of bools (broadcasting).")

static int kernel_not(ir_kernel_ctx *kx)
{
    const uint8_t *x = kx->in[0]->data;
    uint8_t *y = kx->out[0]->data;
    for (size_t i = 0; i < kx->in[0]->size; i++) y[i] = !x[i];
    return 0;
}

const ir_opdef ir_opdef_Not = {
    .name = "Not", .min_inputs = 1, .max_inputs = 1, .noutputs = 1,
    .flags = IR_OPF_ELEMENTWISE | IR_OPF_NOT_DIFFERENTIABLE, .infer = infer_logic,
    .kernel = kernel_not, .doc = "Logical not of a bool.",
};

/* ---- Where ---- */

static int infer_where(ir_infer_ctx *cx)
{
    if (ir_infer_require_dtypes(cx, 0, IR_DT_MASK(KILN_BOOL)) || ir_infer_same_dtype(cx, 1, 2))
        return -1;
    if (ir_infer_broadcast(cx)) return -1;
    cx->out[0].dtype = cx->in[1].dtype;
    return 0;
}

static int kernel_where(ir_kernel_ctx *kx)
{
    const kiln_tensor *c = kx->in[0], *a = kx->in[1], *b = kx->in[2];
    kiln_tensor *y = kx->out[0];
    size_t esz = kiln_dtype_size(y->dtype);
    BCAST_SETUP(kx, it);
    const uint8_t *cd = c->data;
    for (size_t i = 0; i < y->size; i++, ir_iter_next(&it)) {
        const unsigned char *src = cd[it.off[0]] ? (const unsigned char *)a->data + (size_t)it.off[1] * esz
                                                 : (const unsigned char *)b->data + (size_t)it.off[2] * esz;
        memcpy((unsigned char *)y->data + i * esz, src, esz);
    }
    return 0;
}

const ir_opdef ir_opdef_Where = {
    .name = "Where", .min_inputs = 3, .max_inputs = 3, .noutputs = 1,
    .flags = IR_OPF_ELEMENTWISE, .infer = infer_where, .kernel = kernel_where, .grad = ir_grad_Where,
    .doc = "Where(cond, a, b): a where cond else b (broadcasting all three).",
};
