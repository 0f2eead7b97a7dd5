/* train_layers.c -- layers whose training form differs from their inference
 * form: batch normalization (batch statistics plus Assigns of the running
 * statistics) and inverted dropout; and kiln_group, which joins several
 * targets into one. All are composed of ordinary ops, so they are
 * differentiated, optimized and compiled like the rest of the graph. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../ir/ir.h"

/* A copy of v's type (pointers into the graph move when nodes are added). */
static ir_type type_of(const kiln_graph *g, kiln_value v) { return *ir_value_type(g, v); }

/* The first element of x, as f32[1]. */
static kiln_value first_element(kiln_graph *g, kiln_value x)
{
    int64_t flat = -1, zero = 0, one = 1;
    kiln_value f = kiln_reshape(g, x, &flat, 1);
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_ints(a, "starts", &zero, 1);
    kiln_attrs_ints(a, "ends", &one, 1);
    kiln_value s = kiln_op(g, "Slice", &f, 1, a);
    kiln_attrs_free(a);
    return kiln_value_dtype(g, s) == KILN_F32 ? s : kiln_cast(g, s, KILN_F32);
}

kiln_value kiln_group(kiln_graph *g, const kiln_value *values, int n)
{
    if (!g) return kiln_value_invalid();
    if (g->error_code) return kiln_value_invalid();
    if (n < 1 || !values) {
        ir_graph_set_error(g, KILN_ERR_INVALID_ARGUMENT,
                           "kiln_group: needs at least one value (n = %d)", n);
        return kiln_value_invalid();
    }
    for (int i = 0; i < n; i++) {
        if (!ir_value_valid(g, values[i])) {
            ir_graph_set_error(g, KILN_ERR_INVALID_ARGUMENT,
                               "kiln_group: values[%d] is not a valid value", i);
            return kiln_value_invalid();
        }
        ir_type t = type_of(g, values[i]);
        if (ir_shape_numel(t.rank, t.dims) == 0) {
            char s[IR_TYPE_STR_MAX];
            ir_graph_set_error(g, KILN_ERR_INVALID_ARGUMENT,
                               "kiln_group: values[%d] (%s '%s') is %s, which has no element", i,
                               ir_op_def(g->nodes[values[i].node].op)->name,
                               g->nodes[values[i].node].name, ir_type_str(&t, s, sizeof s));
            return kiln_value_invalid();
        }
    }
    kiln_value *pieces = ir_malloc(sizeof(kiln_value) * (size_t)n);
    if (!pieces) {
        ir_graph_set_error(g, KILN_ERR_OUT_OF_MEMORY, "kiln_group: out of memory");
        return kiln_value_invalid();
    }
    for (int i = 0; i < n; i++) pieces[i] = first_element(g, values[i]);
    kiln_value r = kiln_concat(g, pieces, n, 0);
    ir_free(pieces);
    return r;
}

/* ---- Batch normalization ----------------------------------------------------- */

void kiln_batch_norm_options_init(kiln_batch_norm_options *o)
{
    if (!o) return;
    o->axis = 1;
    o->momentum = 0.9;
    o->epsilon = 1e-5;
}

/* Checks the inputs of kiln_batch_norm; the channel axis in *axis_out. */
static bool bn_check(kiln_graph *g, kiln_value x, const kiln_value *params,
                     const kiln_batch_norm_options *o, int training, bool need_vars, int *axis_out)
{
    static const char *const names[] = {"scale", "bias", "running_mean", "running_var"};
    const char *what = "kiln_batch_norm";
    char s1[IR_TYPE_STR_MAX], s2[IR_TYPE_STR_MAX];
    if (!ir_value_valid(g, x)) {
        ir_graph_set_error(g, KILN_ERR_INVALID_ARGUMENT, "%s: x is not a valid value", what);
        return false;
    }
    for (int i = 0; i < 4; i++)
        if (!ir_value_valid(g, params[i])) {
            ir_graph_set_error(g, KILN_ERR_INVALID_ARGUMENT, "%s: %s is not a valid value", what,
                               names[i]);
            return false;
        }
    ir_type tx = type_of(g, x);
    if (!ir_dtype_is_float(tx.dtype) || tx.rank < 1) {
        ir_graph_set_error(g, KILN_ERR_INVALID_ARGUMENT,
                           "%s: x is %s; it must be floating point with rank >= 1", what,
                           ir_type_str(&tx, s1, sizeof s1));
        return false;
    }
    if (!(o->epsilon >= 0) || !isfinite(o->epsilon) || !(o->momentum >= 0 && o->momentum <= 1)) {
        ir_graph_set_error(g, KILN_ERR_INVALID_ARGUMENT,
                           "%s: epsilon %g must be finite and >= 0, momentum %g in [0, 1]", what,
                           o->epsilon, o->momentum);
        return false;
    }
    int axis = o->axis < 0 ? o->axis + tx.rank : o->axis;
    if (axis < 0 || axis >= tx.rank) {
        ir_graph_set_error(g, KILN_ERR_INVALID_ARGUMENT, "%s: axis %d is outside x %s", what,
                           o->axis, ir_type_str(&tx, s1, sizeof s1));
        return false;
    }
    int64_t c = tx.dims[axis];
    for (int i = 0; i < 4; i++) {
        ir_type tp = type_of(g, params[i]);
        if (tp.dtype != tx.dtype || tp.rank != 1 ||
            (c >= 0 && tp.dims[0] >= 0 && tp.dims[0] != c)) {
            ir_graph_set_error(
                g, KILN_ERR_INVALID_ARGUMENT,
                "%s: %s is %s; it must be a vector of x's dtype with one element per "
                "channel (x %s, channel axis %d)",
                what, names[i], ir_type_str(&tp, s2, sizeof s2), ir_type_str(&tx, s1, sizeof s1),
                axis);
            return false;
        }
    }
    if (training) {
        int64_t n = ir_shape_numel(tx.rank, tx.dims);
        if (!ir_type_is_static(&tx) || c < 1 || n / c < 2) {
            ir_graph_set_error(g, KILN_ERR_INVALID_ARGUMENT,
                               "%s: in training x %s must have a static shape and more than one "
                               "value per channel (channel axis %d)",
                               what, ir_type_str(&tx, s1, sizeof s1), axis);
            return false;
        }
    }
    if (need_vars)
        for (int i = 2; i < 4; i++)
            if (g->nodes[params[i].node].op != IR_OP_Variable) {
                ir_graph_set_error(g, KILN_ERR_INVALID_ARGUMENT,
                                   "%s: %s ('%s', %s) must be a Variable to be updated", what,
                                   names[i], g->nodes[params[i].node].name,
                                   ir_op_def(g->nodes[params[i].node].op)->name);
                return false;
            }
    *axis_out = axis;
    return true;
}

/* p [C] reshaped to broadcast along the channel axis of a rank-`rank` x. */
static kiln_value per_channel(kiln_graph *g, kiln_value p, int rank, int axis)
{
    int64_t dims[KILN_MAX_RANK];
    for (int i = 0; i < rank; i++) dims[i] = i == axis ? -1 : 1;
    return kiln_reshape(g, p, dims, rank);
}

kiln_value kiln_batch_norm(kiln_graph *g, kiln_value x, kiln_value scale, kiln_value bias,
                           kiln_value running_mean, kiln_value running_var,
                           const kiln_batch_norm_options *opts, int training,
                           kiln_value *update_out)
{
    if (update_out) *update_out = kiln_value_invalid();
    if (!g || g->error_code) return kiln_value_invalid();
    kiln_batch_norm_options o;
    kiln_batch_norm_options_init(&o);
    if (opts) o = *opts;
    const kiln_value params[4] = {scale, bias, running_mean, running_var};
    int axis;
    if (!bn_check(g, x, params, &o, training, training && update_out, &axis))
        return kiln_value_invalid();
    ir_type tx = type_of(g, x);
    kiln_dtype dt = tx.dtype;
    int rank = tx.rank;

    if (!training) {
        if (axis == 1 && rank >= 2) {
            kiln_value in[5] = {x, scale, bias, running_mean, running_var};
            kiln_attrs *a = kiln_attrs_new();
            kiln_attrs_float(a, "epsilon", o.epsilon);
            kiln_attrs_float(a, "momentum", o.momentum);
            kiln_value y = kiln_op(g, "BatchNormalization", in, 5, a);
            kiln_attrs_free(a);
            return y;
        }
        kiln_value inv = kiln_rsqrt(g, kiln_add(g, running_var, kiln_scalar(g, dt, o.epsilon)));
        kiln_value k = per_channel(g, kiln_mul(g, scale, inv), rank, axis);
        kiln_value d = kiln_sub(g, x, per_channel(g, running_mean, rank, axis));
        return kiln_add(g, kiln_mul(g, d, k), per_channel(g, bias, rank, axis));
    }

    int64_t axes[KILN_MAX_RANK];
    int nax = 0;
    for (int i = 0; i < rank; i++)
        if (i != axis) axes[nax++] = i;
    int64_t c = tx.dims[axis];
    int64_t n = ir_shape_numel(rank, tx.dims) / c;
    /* mean and biased var with keepdims, so they broadcast against x. */
    kiln_value mean = kiln_reduce_mean(g, x, axes, nax, 1);
    kiln_value d = kiln_sub(g, x, mean);
    kiln_value var = kiln_reduce_mean(g, kiln_mul(g, d, d), axes, nax, 1);
    kiln_value inv = kiln_rsqrt(g, kiln_add(g, var, kiln_scalar(g, dt, o.epsilon)));
    kiln_value y = kiln_add(g, kiln_mul(g, kiln_mul(g, d, inv), per_channel(g, scale, rank, axis)),
                            per_channel(g, bias, rank, axis));
    if (update_out && !g->error_code) {
        kiln_value m = kiln_scalar(g, dt, o.momentum), m1 = kiln_scalar(g, dt, 1.0 - o.momentum);
        kiln_value mean_c = kiln_reshape(g, mean, &c, 1);
        kiln_value var_c = kiln_mul(g, kiln_reshape(g, var, &c, 1),
                                    kiln_scalar(g, dt, (double)n / (double)(n - 1)));
        kiln_value rm = kiln_add(g, kiln_mul(g, m, running_mean), kiln_mul(g, m1, mean_c));
        kiln_value rv = kiln_add(g, kiln_mul(g, m, running_var), kiln_mul(g, m1, var_c));
        kiln_value assigns[2] = {kiln_assign(g, running_mean, rm), kiln_assign(g, running_var, rv)};
        kiln_value up = kiln_group(g, assigns, 2);
        if (g->error_code) return kiln_value_invalid();
        *update_out = up;
    }
    return g->error_code ? kiln_value_invalid() : y;
}

/* ---- Dropout ----------------------------------------------------------------- */

kiln_value kiln_dropout(kiln_graph *g, kiln_value x, double rate, uint64_t seed, int training)
{
    const char *what = "kiln_dropout";
    if (!g || g->error_code) return kiln_value_invalid();
    if (!ir_value_valid(g, x)) {
        ir_graph_set_error(g, KILN_ERR_INVALID_ARGUMENT, "%s: x is not a valid value", what);
        return kiln_value_invalid();
    }
    ir_type tx = type_of(g, x);
    char s[IR_TYPE_STR_MAX];
    if (!ir_dtype_is_float(tx.dtype)) {
        ir_graph_set_error(g, KILN_ERR_INVALID_ARGUMENT, "%s: x is %s; it must be floating point",
                           what, ir_type_str(&tx, s, sizeof s));
        return kiln_value_invalid();
    }
    if (!(rate >= 0 && rate < 1)) {
        ir_graph_set_error(g, KILN_ERR_INVALID_ARGUMENT, "%s: rate is %g; it must be in [0, 1)",
                           what, rate);
        return kiln_value_invalid();
    }
    if (!training || rate == 0) return kiln_identity(g, x);
    if (!ir_type_is_static(&tx)) {
        ir_graph_set_error(g, KILN_ERR_UNIMPLEMENTED,
                           "%s: in training x %s must have a static shape (the mask's)", what,
                           ir_type_str(&tx, s, sizeof s));
        return kiln_value_invalid();
    }
    /* The mask is drawn in f32 (f64 for f64 x), so that a 16-bit x still
     * gets keep probabilities finer than its own precision. */
    kiln_dtype udt = tx.dtype == KILN_F64 ? KILN_F64 : KILN_F32;
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_dtype(a, "dtype", udt);
    kiln_attrs_ints(a, "shape", tx.dims, tx.rank);
    kiln_attrs_int(a, "seed", (int64_t)seed);
    kiln_value u = kiln_op(g, "RandomUniform", NULL, 0, a);
    kiln_attrs_free(a);
    /* u < 1 - rate has probability 1 - rate for u uniform in [0, 1). */
    kiln_value keep = kiln_less(g, u, kiln_scalar(g, udt, 1.0 - rate));
    kiln_value mask =
        kiln_mul(g, kiln_cast(g, keep, tx.dtype), kiln_scalar(g, tx.dtype, 1.0 / (1.0 - rate)));
    kiln_value y = kiln_mul(g, x, mask);
    return g->error_code ? kiln_value_invalid() : y;
}
