/* onnx_stateful.c -- the opset-27 sequence-model ops that carry a state
 * from call to call, composed at import from kiln ops: CausalConvWithState
 * (a depthwise causal 1-D convolution over the past state and the input)
 * and LinearAttention (the linear, gated, delta and gated-delta recurrent
 * updates of a per-head state matrix, unrolled over the static sequence
 * length). Both need static shapes. The op table is in onnx_ops.c. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "onnx_internal.h"

static kiln_value slice_last(onnx_ctx *cx, kiln_value x, int64_t axis, int64_t start, int64_t end)
{
    kiln_attrs *a = onnx_bag(cx);
    if (!a) return kiln_value_invalid();
    kiln_attrs_ints(a, "starts", &start, 1);
    kiln_attrs_ints(a, "ends", &end, 1);
    kiln_attrs_ints(a, "axes", &axis, 1);
    kiln_value r = onnx_op(cx, "Slice", &x, 1, a);
    kiln_attrs_free(a);
    return r;
}

static kiln_value concat_axis(onnx_ctx *cx, const kiln_value *v, int n, int64_t axis)
{
    if (n == 1) return v[0];
    kiln_attrs *a = onnx_bag(cx);
    if (!a) return kiln_value_invalid();
    kiln_attrs_int(a, "axis", axis);
    kiln_value r = onnx_op(cx, "Concat", v, n, a);
    kiln_attrs_free(a);
    return r;
}

static kiln_value zeros_of(onnx_ctx *cx, kiln_dtype dt, const int64_t *dims, int rank)
{
    kiln_tensor *t = kiln_tensor_new(dt, rank, dims);
    if (!t) {
        onnx_error(cx, KILN_ERR_OUT_OF_MEMORY, "out of memory");
        return kiln_value_invalid();
    }
    kiln_value v = onnx_const(cx, t);
    kiln_tensor_free(t);
    return v;
}

static bool all_static(onnx_ctx *cx, const kiln_value *in, int nin, const char *const *names)
{
    for (int i = 0; i < nin; i++) {
        if (!onnx_has(in, nin, i)) continue;
        const ir_type *t = onnx_type(cx, in[i]);
        if (ir_type_is_static(t)) continue;
        char s[96];
        ir_type_str(t, s, sizeof s);
        onnx_error(cx, KILN_ERR_UNIMPLEMENTED, "input %s is %s; static shapes are needed", names[i],
                   s);
        return false;
    }
    return true;
}

/* ---- CausalConvWithState ---- */

/* padded = Concat(past_state or zeros, input) along the sequence; output =
 * the depthwise convolution of padded with weight [C, 1, K] (+ bias), then
 * the activation (none, or silu/swish: x * sigmoid(x)); present_state =
 * the last K-1 steps of padded. */
ONNX_CONV(cv_causal_conv)
{
    static const char *const names[4] = {"input", "weight", "bias", "past_state"};
    if (nin > 4) return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "%d inputs; at most 4", nin);
    if (!onnx_has(in, nin, 0) || !onnx_has(in, nin, 1))
        return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "input and weight are required");
    if (!all_static(cx, in, nin, names)) return cx->st->code;
    const ir_type *tx = onnx_type(cx, in[0]), *tw = onnx_type(cx, in[1]);
    char sx[96], sw[96];
    ir_type_str(tx, sx, sizeof sx);
    ir_type_str(tw, sw, sizeof sw);
    if (tx->rank != 3 || tw->rank != 3 || tw->dims[0] != tx->dims[1] || tw->dims[1] != 1 ||
        tw->dims[2] < 1 || tw->dtype != tx->dtype)
        return onnx_error(cx, KILN_ERR_UNIMPLEMENTED,
                          "input %s and weight %s: kiln takes input [N, C, L] with a depthwise "
                          "weight [C, 1, K] of the same dtype",
                          sx, sw);
    int64_t N = tx->dims[0], C = tx->dims[1], K = tw->dims[2];
    kiln_dtype dt = tx->dtype;
    char act[16];
    onnx_attr_string(n, "activation", "none", act, sizeof act);
    bool silu = !strcmp(act, "silu") || !strcmp(act, "swish");
    if (!silu && strcmp(act, "none"))
        return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT,
                          "activation '%s' is not none, silu or swish", act);
    int64_t ds[3] = {N, C, K - 1};
    kiln_value past;
    if (onnx_has(in, nin, 3)) {
        const ir_type *tp = onnx_type(cx, in[3]);
        if (tp->rank != 3 || tp->dims[0] != N || tp->dims[1] != C || tp->dims[2] != K - 1 ||
            tp->dtype != dt) {
            char sp[96];
            ir_type_str(tp, sp, sizeof sp);
            return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT,
                              "past_state is %s; expected %s[%lld,%lld,%lld]", sp,
                              kiln_dtype_name(dt), (long long)N, (long long)C, (long long)(K - 1));
        }
        past = in[3];
    } else {
        past = zeros_of(cx, dt, ds, 3);
    }
    if (onnx_has(in, nin, 2)) {
        const ir_type *tb = onnx_type(cx, in[2]);
        if (tb->rank != 1 || tb->dims[0] != C || tb->dtype != dt) {
            char sb[96];
            ir_type_str(tb, sb, sizeof sb);
            return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "bias is %s; expected %s[%lld]", sb,
                              kiln_dtype_name(dt), (long long)C);
        }
    }
    kiln_value padded = in[0];
    if (K > 1) padded = concat_axis(cx, (kiln_value[]){past, in[0]}, 2, 2);
    int64_t ax = 2;
    kiln_value x4 = onnx_op_ints(cx, "Unsqueeze", padded, "axes", &ax, 1);
    kiln_value w4 = onnx_op_ints(cx, "Unsqueeze", in[1], "axes", &ax, 1);
    kiln_attrs *a = onnx_bag(cx);
    if (!a) return cx->st->code;
    kiln_attrs_int(a, "group", C);
    kiln_value args[3] = {x4, w4, onnx_has(in, nin, 2) ? in[2] : kiln_value_invalid()};
    kiln_value y = onnx_op(cx, "Conv2D", args, onnx_has(in, nin, 2) ? 3 : 2, a);
    kiln_attrs_free(a);
    y = onnx_op_ints(cx, "Squeeze", y, "axes", &ax, 1);
    if (silu) {
        /* in f32 for the 16-bit types, as the spec's function body does */
        kiln_value yf = dt == KILN_F16 || dt == KILN_BF16 ? onnx_cast(cx, y, KILN_F32) : y;
        y = onnx_cast(cx, onnx_op2(cx, "Mul", yf, onnx_op1(cx, "Sigmoid", yf)), dt);
    }
    out[0] = y;
    if (nout > 1) {
        int64_t len = onnx_type(cx, padded)->dims[2];
        out[1] = K > 1 ? slice_last(cx, padded, 2, len - (K - 1), len) : zeros_of(cx, dt, ds, 3);
    }
    return onnx_failed(cx) ? cx->st->code : KILN_OK;
}

/* ---- LinearAttention ---- */

/* x[:, t] of x [B, T, ...], reshaped to dims. */
static kiln_value step_of(onnx_ctx *cx, kiln_value x, int64_t t, const int64_t *dims, int rank)
{
    return onnx_reshape(cx, slice_last(cx, x, 1, t, t + 1), dims, rank);
}

/* The per-head state S [B, Hkv, dk, dv] (f32) is updated at each step t by
 * the update rule, then read by the query:
 *   linear:      S = S + k v^T
 *   gated:       S = exp(decay) * S + k v^T
 *   delta:       S = S + k (beta * (v - S^T k))^T
 *   gated_delta: S = exp(decay) * S, then the delta update
 *   output_t = scale * q^T S (query head h reads kv head h / (Hq / Hkv)).
 * decay is per key dim ([B, T, Hkv*dk]) or per head ([B, T, Hkv]); beta
 * per head or one for all. Computed in f32, returned in the inputs' dtype. */
ONNX_CONV(cv_linear_attention)
{
    static const char *const names[6] = {"query", "key", "value", "past_state", "decay", "beta"};
    if (nin > 6) return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "%d inputs; at most 6", nin);
    for (int i = 0; i < 3; i++)
        if (!onnx_has(in, nin, i))
            return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "input %s is missing", names[i]);
    if (!all_static(cx, in, nin, names)) return cx->st->code;
    char rule[16];
    onnx_attr_string(n, "update_rule", "gated_delta", rule, sizeof rule);
    bool gated = !strcmp(rule, "gated") || !strcmp(rule, "gated_delta");
    bool delta = !strcmp(rule, "delta") || !strcmp(rule, "gated_delta");
    if (!gated && !delta && strcmp(rule, "linear"))
        return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT,
                          "update_rule '%s' is not linear, gated, delta or gated_delta", rule);
    if (gated && !onnx_has(in, nin, 4))
        return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "update_rule '%s' needs decay", rule);
    if (delta && !onnx_has(in, nin, 5))
        return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "update_rule '%s' needs beta", rule);
    const ir_type *tq = onnx_type(cx, in[0]), *tk = onnx_type(cx, in[1]),
                  *tv = onnx_type(cx, in[2]);
    int64_t hq = onnx_attr_int(n, "q_num_heads", 0), hkv = onnx_attr_int(n, "kv_num_heads", 0);
    char sq[96], sk[96], sv[96];
    ir_type_str(tq, sq, sizeof sq);
    ir_type_str(tk, sk, sizeof sk);
    ir_type_str(tv, sv, sizeof sv);
    if (tq->rank != 3 || tk->rank != 3 || tv->rank != 3 || hq < 1 || hkv < 1 || hq % hkv ||
        tq->dims[2] % hq || tk->dims[2] % hkv || tv->dims[2] % hkv ||
        tk->dims[2] / hkv != tq->dims[2] / hq || tk->dims[0] != tq->dims[0] ||
        tv->dims[0] != tq->dims[0] || tk->dims[1] != tq->dims[1] || tv->dims[1] != tq->dims[1] ||
        tk->dtype != tq->dtype || tv->dtype != tq->dtype)
        return onnx_error(cx, KILN_ERR_UNIMPLEMENTED,
                          "query %s, key %s, value %s with q_num_heads %lld, kv_num_heads %lld: "
                          "kiln takes 3-D [batch, seq, heads*dim] inputs of one dtype whose "
                          "head counts divide",
                          sq, sk, sv, (long long)hq, (long long)hkv);
    kiln_dtype dt = tq->dtype;
    if (dt != KILN_F32 && dt != KILN_F64 && dt != KILN_F16 && dt != KILN_BF16)
        return onnx_error(cx, KILN_ERR_UNIMPLEMENTED, "query has dtype %s; a float type is needed",
                          kiln_dtype_name(dt));
    int64_t B = tq->dims[0], T = tq->dims[1], dk = tq->dims[2] / hq, dv = tv->dims[2] / hkv;
    if (T < 1 || T > 65536)
        return onnx_error(cx, KILN_ERR_UNIMPLEMENTED,
                          "sequence length %lld: kiln unrolls 1 to 65536 steps", (long long)T);
    double scale = onnx_attr(n, "scale") ? onnx_attr_float(n, "scale", 0) : 0;
    if (scale == 0) scale = 1.0 / sqrt((double)dk);
    int64_t dd = 0, hb = 0;
    if (gated) {
        const ir_type *t = onnx_type(cx, in[4]);
        int64_t last = t->rank == 3 ? t->dims[2] : 0;
        dd = last == hkv ? 1 : last == hkv * dk ? dk : 0;
        if (!dd || t->dims[0] != B || t->dims[1] != T) {
            char s[96];
            ir_type_str(t, s, sizeof s);
            return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT,
                              "decay is %s; expected [%lld,%lld,%lld] or [%lld,%lld,%lld]", s,
                              (long long)B, (long long)T, (long long)hkv, (long long)B,
                              (long long)T, (long long)(hkv * dk));
        }
    }
    if (delta) {
        const ir_type *t = onnx_type(cx, in[5]);
        int64_t last = t->rank == 3 ? t->dims[2] : 0;
        hb = last == hkv || last == 1 ? last : 0;
        if (!hb || t->dims[0] != B || t->dims[1] != T) {
            char s[96];
            ir_type_str(t, s, sizeof s);
            return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT,
                              "beta is %s; expected [%lld,%lld,%lld] or [%lld,%lld,1]", s,
                              (long long)B, (long long)T, (long long)hkv, (long long)B,
                              (long long)T);
        }
    }
    int64_t ds[4] = {B, hkv, dk, dv};
    kiln_value S;
    if (onnx_has(in, nin, 3)) {
        const ir_type *t = onnx_type(cx, in[3]);
        bool ok = t->rank == 4;
        for (int i = 0; ok && i < 4; i++) ok = t->dims[i] == ds[i];
        if (!ok) {
            char s[96];
            ir_type_str(t, s, sizeof s);
            return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT,
                              "past_state is %s; expected [%lld,%lld,%lld,%lld]", s, (long long)B,
                              (long long)hkv, (long long)dk, (long long)dv);
        }
        S = onnx_cast(cx, in[3], KILN_F32);
    } else {
        S = zeros_of(cx, KILN_F32, ds, 4);
    }
    kiln_value q = onnx_cast(cx, in[0], KILN_F32), k = onnx_cast(cx, in[1], KILN_F32),
               v = onnx_cast(cx, in[2], KILN_F32);
    kiln_value g =
        gated ? onnx_op1(cx, "Exp", onnx_cast(cx, in[4], KILN_F32)) : kiln_value_invalid();
    kiln_value beta = delta ? onnx_cast(cx, in[5], KILN_F32) : kiln_value_invalid();
    kiln_value sc = onnx_scalar(cx, KILN_F32, scale);
    kiln_value *outs = ir_malloc(sizeof(kiln_value) * (size_t)T);
    if (!outs) return onnx_error(cx, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    int64_t dkcol[4] = {B, hkv, dk, 1}, dvrow[4] = {B, hkv, 1, dv}, dqrow[4] = {B, hq, 1, dk},
            dg[4] = {B, hkv, dd, 1}, dkrow[4] = {B, hkv, 1, dk}, db[4] = {B, hb, 1, 1},
            d5[5] = {B, hkv, 1, dk, dv}, de[5] = {B, hkv, hq / hkv, dk, dv},
            dsq[4] = {B, hq, dk, dv}, dout[3] = {B, 1, hq * dv};
    for (int64_t t = 0; t < T && !onnx_failed(cx); t++) {
        kiln_value kcol = step_of(cx, k, t, dkcol, 4), vrow = step_of(cx, v, t, dvrow, 4);
        if (gated) S = onnx_op2(cx, "Mul", S, step_of(cx, g, t, dg, 4));
        if (delta) {
            /* what the state holds for k, replaced by a beta-weighted step to v */
            kiln_value krow = onnx_reshape(cx, kcol, dkrow, 4);
            kiln_value got = onnx_op2(cx, "MatMul", krow, S);
            vrow = onnx_op2(cx, "Mul", step_of(cx, beta, t, db, 4), onnx_op2(cx, "Sub", vrow, got));
        }
        S = onnx_op2(cx, "Add", S, onnx_op2(cx, "MatMul", kcol, vrow));
        kiln_value sr = S;
        if (hq != hkv)
            sr = onnx_reshape(
                cx, onnx_op_ints(cx, "Expand", onnx_reshape(cx, S, d5, 5), "shape", de, 5), dsq, 4);
        kiln_value o = onnx_op2(cx, "MatMul", step_of(cx, q, t, dqrow, 4), sr);
        outs[t] = onnx_reshape(cx, onnx_op2(cx, "Mul", o, sc), dout, 3);
    }
    kiln_value y = onnx_failed(cx) ? kiln_value_invalid() : concat_axis(cx, outs, (int)T, 1);
    ir_free(outs);
    if (onnx_failed(cx)) return cx->st->code;
    out[0] = onnx_cast(cx, y, dt);
    if (nout > 1) out[1] = onnx_cast(cx, S, dt);
    return onnx_failed(cx) ? cx->st->code : KILN_OK;
}
