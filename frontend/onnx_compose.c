/* onnx_compose.c -- ONNX ops that kiln builds at import from several kiln
 * ops (or from its index ops): TopK, CumSum/CumProd, GatherElements, the
 * scatters and OneHot (ir/ops/index.c); Hardmax, Trilu, EyeLike, Swish and
 * SwiGLU; the losses NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss;
 * Attention and RotaryEmbedding; DepthToSpace/SpaceToDepth,
 * MeanVarianceNormalization, GroupNormalization, LRN and GatherND; and the
 * 8-bit QuantizeLinear/DequantizeLinear/DynamicQuantizeLinear; Resize. Each
 * follows the ONNX operator spec (and its reference implementation where
 * the spec leaves details open); most need static shapes. The op table is
 * in onnx_ops.c. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "onnx_internal.h"

/* ---- index ops: TopK, CumSum, gather/scatter by element, OneHot ---- */

ONNX_CONV(cv_topk)
{
    int64_t k;
    int nk = 1;
    if (cx->opset < 10) k = onnx_attr_int(n, "k", -1);
    else if (onnx_input_ints(cx, in, nin, 1, "k", &k, 1, &nk)) return cx->st->code;
    if (nk != 1 || k < 0)
        return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "k must be one non-negative integer");
    kiln_attrs *a = onnx_bag(cx);
    if (!a) return cx->st->code;
    kiln_attrs_int(a, "k", k);
    kiln_attrs_int(a, "axis", onnx_attr_int(n, "axis", -1));
    kiln_attrs_int(a, "largest", onnx_attr_int(n, "largest", 1));
    kiln_attrs_int(a, "sorted", onnx_attr_int(n, "sorted", 1));
    kiln_value both[2];
    onnx_op_n(cx, "TopK", in, 1, a, both, 2);
    kiln_attrs_free(a);
    for (int i = 0; i < nout && i < 2; i++) out[i] = both[i];
    return onnx_failed(cx) ? cx->st->code : KILN_OK;
}

ONNX_CONV(cv_cum)
{
    int64_t axis;
    int na;
    if (onnx_input_ints(cx, in, nin, 1, "axis", &axis, 1, &na)) return cx->st->code;
    if (na != 1) return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "axis must hold one integer");
    kiln_attrs *a = onnx_bag(cx);
    if (!a) return cx->st->code;
    kiln_attrs_int(a, "axis", axis);
    kiln_attrs_int(a, "exclusive", onnx_attr_int(n, "exclusive", 0));
    kiln_attrs_int(a, "reverse", onnx_attr_int(n, "reverse", 0));
    kiln_value r = onnx_op(cx, n->op_type, in, 1, a);
    kiln_attrs_free(a);
    return onnx_done(cx, out, r);
}

ONNX_CONV(cv_gather_elements)
{
    kiln_attrs *a = onnx_bag(cx);
    if (!a) return cx->st->code;
    kiln_attrs_int(a, "axis", onnx_attr_int(n, "axis", 0));
    kiln_value r = onnx_op(cx, "GatherElements", in, 2, a);
    kiln_attrs_free(a);
    return onnx_done(cx, out, r);
}

/* ScatterElements, Scatter (its older name) and ScatterND. */
ONNX_CONV(cv_scatter)
{
    bool nd = !strcmp(n->op_type, "ScatterND");
    char red[16];
    onnx_attr_string(n, "reduction", "none", red, sizeof red);
    kiln_attrs *a = onnx_bag(cx);
    if (!a) return cx->st->code;
    if (!nd) kiln_attrs_int(a, "axis", onnx_attr_int(n, "axis", 0));
    kiln_attrs_string(a, "reduction", red);
    kiln_value r = onnx_op(cx, nd ? "ScatterND" : "ScatterElements", in, 3, a);
    kiln_attrs_free(a);
    return onnx_done(cx, out, r);
}

ONNX_CONV(cv_onehot)
{
    double depth;
    if (!onnx_has(in, nin, 1))
        return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "input 1 (depth) is missing");
    if (onnx_input_scalar(cx, in, nin, 1, "depth", 0, &depth)) return cx->st->code;
    if (!(depth >= 1 && depth <= (double)INT32_MAX))
        return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "depth = %g; it must be at least 1",
                          depth);
    kiln_attrs *a = onnx_bag(cx);
    if (!a) return cx->st->code;
    kiln_attrs_int(a, "depth", (int64_t)depth);
    kiln_attrs_int(a, "axis", onnx_attr_int(n, "axis", -1));
    kiln_value args[2] = {in[0], in[2]};
    kiln_value r = onnx_op(cx, "OneHot", args, 2, a);
    kiln_attrs_free(a);
    return onnx_done(cx, out, r);
}

/* Hardmax: OneHot of the ArgMax (first maximum on ties, as ONNX). Before
 * opset 13 over the input flattened to 2-D at axis. */
ONNX_CONV(cv_hardmax)
{
    kiln_value x = in[0];
    const ir_type *t = onnx_type(cx, x);
    int64_t axis = onnx_attr_int(n, "axis", cx->opset < 13 ? 1 : -1);
    int ax;
    if (!ir_type_is_static(t))
        return onnx_error(cx, KILN_ERR_UNIMPLEMENTED, "Hardmax needs a static input shape");
    if (!ir_norm_axis(axis, t->rank, &ax))
        return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "axis %lld out of range for rank %d",
                          (long long)axis, t->rank);
    int64_t dims[IR_MAX_RANK];
    int rank = t->rank;
    memcpy(dims, t->dims, sizeof(int64_t) * (size_t)rank);
    if (cx->opset < 13) {
        int64_t d2[2] = {1, 1};
        for (int i = 0; i < rank; i++) d2[i >= ax] *= dims[i];
        x = onnx_reshape(cx, x, d2, 2);
        ax = 1;
    }
    const ir_type *tx = onnx_type(cx, x);
    if (!tx) return cx->st->code;
    int64_t depth = tx->dims[ax];
    kiln_attrs *a = onnx_bag(cx);
    if (!a) return cx->st->code;
    kiln_attrs_int(a, "axis", ax);
    kiln_attrs_int(a, "keepdims", 0);
    kiln_value idx = onnx_op(cx, "ArgMax", &x, 1, a);
    kiln_attrs_free(a);
    int64_t two = 2;
    kiln_tensor *vt = kiln_tensor_new(tx->dtype, 1, &two);
    if (!vt) return onnx_error(cx, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    ir_store_f64(tx->dtype, vt->data, 0, 0);
    ir_store_f64(tx->dtype, vt->data, 1, 1);
    kiln_value vals = onnx_const(cx, vt);
    kiln_tensor_free(vt);
    a = onnx_bag(cx);
    if (!a) return cx->st->code;
    kiln_attrs_int(a, "depth", depth > 0 ? depth : 1);
    kiln_attrs_int(a, "axis", ax);
    kiln_value r = onnx_op(cx, "OneHot", (kiln_value[]){idx, vals}, 2, a);
    kiln_attrs_free(a);
    if (cx->opset < 13) r = onnx_reshape(cx, r, dims, rank);
    return onnx_done(cx, out, r);
}

/* Trilu: Where(mask, x, 0) with a constant mask over the last two dims. */
ONNX_CONV(cv_trilu)
{
    kiln_value x = in[0];
    const ir_type *t = onnx_type(cx, x);
    int64_t k = 0;
    int nk = 1;
    if (onnx_has(in, nin, 1) && onnx_input_ints(cx, in, nin, 1, "k", &k, 1, &nk))
        return cx->st->code;
    if (nk != 1) return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "k must hold one integer");
    if (t->rank < 2) return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "input rank %d < 2", t->rank);
    int64_t md[2] = {t->dims[t->rank - 2], t->dims[t->rank - 1]};
    if (md[0] < 0 || md[1] < 0)
        return onnx_error(cx, KILN_ERR_UNIMPLEMENTED,
                          "Trilu needs static sizes of the last two dims");
    bool upper = onnx_attr_int(n, "upper", 1) != 0;
    kiln_tensor *m = kiln_tensor_new(KILN_BOOL, 2, md);
    if (!m) return onnx_error(cx, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    uint8_t *mb = m->data;
    for (int64_t i = 0; i < md[0]; i++)
        for (int64_t j = 0; j < md[1]; j++) mb[i * md[1] + j] = upper ? j - i >= k : j - i <= k;
    kiln_value mask = onnx_const(cx, m);
    kiln_tensor_free(m);
    kiln_value args[3] = {mask, x, onnx_scalar_like(cx, x, 0)};
    return onnx_done(cx, out, onnx_op(cx, "Where", args, 3, NULL));
}

ONNX_CONV(cv_swish)
{
    kiln_value x = in[0];
    double alpha = onnx_attr_float(n, "alpha", 1.0);
    kiln_value ax = alpha == 1.0 ? x : onnx_op2(cx, "Mul", x, onnx_scalar_like(cx, x, alpha));
    return onnx_done(cx, out, onnx_op2(cx, "Mul", x, onnx_op1(cx, "Sigmoid", ax)));
}

/* EyeLike: a constant of the (static) input shape. */
ONNX_CONV(cv_eyelike)
{
    const ir_type *t = onnx_type(cx, in[0]);
    if (t->rank != 2 || !ir_type_is_static(t))
        return onnx_error(cx, KILN_ERR_UNIMPLEMENTED, "EyeLike needs a static 2-D input");
    kiln_dtype dt = t->dtype;
    if (onnx_attr(n, "dtype")) {
        int ot = (int)onnx_attr_int(n, "dtype", 0);
        dt = onnx_dtype(ot);
        if (!dt)
            return onnx_error(cx, KILN_ERR_UNIMPLEMENTED, "dtype %s, which kiln does not support",
                              onnx_dtype_name(ot));
    }
    int64_t k = onnx_attr_int(n, "k", 0);
    kiln_tensor *e = kiln_tensor_new(dt, 2, t->dims);
    if (!e) return onnx_error(cx, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    for (int64_t i = 0; i < t->dims[0]; i++) {
        int64_t j = i + k;
        if (j >= 0 && j < t->dims[1]) ir_store_f64(dt, e->data, (size_t)(i * t->dims[1] + j), 1);
    }
    kiln_value v = onnx_const(cx, e);
    kiln_tensor_free(e);
    return onnx_done(cx, out, v);
}

/* ---- losses, composed: NegativeLogLikelihoodLoss, SoftmaxCrossEntropyLoss ---- */

static kiln_value op_int(onnx_ctx *cx, const char *op, const kiln_value *in, int nin,
                         const char *name, int64_t v)
{
    kiln_attrs *a = onnx_bag(cx);
    if (!a) return kiln_value_invalid();
    kiln_attrs_int(a, name, v);
    kiln_value r = onnx_op(cx, op, in, nin, a);
    kiln_attrs_free(a);
    return r;
}

/* The negative log-likelihood of log-probabilities x [N, C, d...] at
 * targets t [N, d...], weighted by w[target] (w may be invalid: 1), with
 * targets equal to ignore_index weighing 0; reduced by 'reduction' (mean:
 * divided by the total weight). */
static kiln_value nll_loss(onnx_ctx *cx, const Onnx__NodeProto *n, kiln_value x, kiln_value t,
                           kiln_value w)
{
    char red[16];
    onnx_attr_string(n, "reduction", "mean", red, sizeof red);
    if (strcmp(red, "none") && strcmp(red, "sum") && strcmp(red, "mean")) {
        onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "reduction '%s' is not none, sum or mean", red);
        return kiln_value_invalid();
    }
    const ir_type *tx = onnx_type(cx, x);
    if (!tx) return kiln_value_invalid();
    if (tx->rank < 2) {
        onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "the input must have rank >= 2 (N, C, ...)");
        return kiln_value_invalid();
    }
    kiln_dtype dt = tx->dtype;
    const Onnx__AttributeProto *ia = onnx_attr(n, "ignore_index");
    kiln_value mask = kiln_value_invalid();
    t = onnx_cast(cx, t, KILN_I64);
    if (ia) {
        mask = onnx_op2(cx, "Equal", t, onnx_scalar(cx, KILN_I64, (double)ia->i));
        kiln_value sel[3] = {mask, onnx_scalar(cx, KILN_I64, 0), t};
        t = onnx_op(cx, "Where", sel, 3, NULL);
    }
    int64_t one = 1;
    kiln_value ti = onnx_op_ints(cx, "Unsqueeze", t, "axes", &one, 1);
    kiln_value g = op_int(cx, "GatherElements", (kiln_value[]){x, ti}, 2, "axis", 1);
    g = onnx_op_ints(cx, "Squeeze", g, "axes", &one, 1);
    kiln_value wt = kiln_value_ok(w) ? op_int(cx, "Gather", (kiln_value[]){w, t}, 2, "axis", 0)
                                     : kiln_value_invalid();
    if (ia) {
        kiln_value sel[3] = {mask, onnx_scalar(cx, dt, 0),
                             kiln_value_ok(wt) ? wt : onnx_scalar(cx, dt, 1)};
        wt = onnx_op(cx, "Where", sel, 3, NULL);
    }
    kiln_value loss = onnx_op1(cx, "Neg", kiln_value_ok(wt) ? onnx_op2(cx, "Mul", g, wt) : g);
    if (!strcmp(red, "none")) return loss;
    kiln_value sum = onnx_reduce(cx, "ReduceSum", loss, NULL, 0, 0);
    if (!strcmp(red, "sum")) return sum;
    if (!kiln_value_ok(wt)) return onnx_reduce(cx, "ReduceMean", loss, NULL, 0, 0);
    return onnx_op2(cx, "Div", sum, onnx_reduce(cx, "ReduceSum", wt, NULL, 0, 0));
}

ONNX_CONV(cv_nllloss)
{
    kiln_value w = onnx_has(in, nin, 2) ? in[2] : kiln_value_invalid();
    return onnx_done(cx, out, nll_loss(cx, n, in[0], in[1], w));
}

ONNX_CONV(cv_sce_loss)
{
    kiln_value lp = op_int(cx, "LogSoftmax", in, 1, "axis", 1);
    kiln_value w = onnx_has(in, nin, 2) ? in[2] : kiln_value_invalid();
    out[0] = nll_loss(cx, n, lp, in[1], w);
    if (nout > 1) out[1] = lp;
    return onnx_failed(cx) ? cx->st->code : KILN_OK;
}

/* ---- Attention (opset 23), composed from MatMul, Softmax and masks ---- */

/* [B, S, H] -> [B, heads, S, H / heads]. */
static kiln_value to_heads(onnx_ctx *cx, kiln_value x, int64_t heads)
{
    const ir_type *t = onnx_type(cx, x);
    if (!t) return kiln_value_invalid();
    if (heads < 1 || t->dims[2] % heads) {
        onnx_error(cx, KILN_ERR_INVALID_ARGUMENT,
                   "hidden size %lld is not a multiple of %lld heads", (long long)t->dims[2],
                   (long long)heads);
        return kiln_value_invalid();
    }
    int64_t d[4] = {t->dims[0], t->dims[1], heads, t->dims[2] / heads}, perm[4] = {0, 2, 1, 3};
    return onnx_op_ints(cx, "Transpose", onnx_reshape(cx, x, d, 4), "perm", perm, 4);
}

/* [B, kvh, S, D] -> [B, kvh * r, S, D], each head repeated r times in place. */
static kiln_value repeat_heads(onnx_ctx *cx, kiln_value x, int64_t r)
{
    const ir_type *t = onnx_type(cx, x);
    if (!t || r == 1) return x;
    int64_t one = 2, e[5] = {t->dims[0], t->dims[1], r, t->dims[2], t->dims[3]};
    int64_t d[4] = {t->dims[0], t->dims[1] * r, t->dims[2], t->dims[3]};
    kiln_value u = onnx_op_ints(cx, "Unsqueeze", x, "axes", &one, 1);
    return onnx_reshape(cx, onnx_op_ints(cx, "Expand", u, "shape", e, 5), d, 4);
}

/* A constant of shape dims (rank n) of dtype dt: 0 where allowed, -inf
 * where j > i + offset (i, j: the last two coordinates). */
static kiln_value causal_bias(onnx_ctx *cx, kiln_dtype dt, int64_t q, int64_t kv, int64_t offset)
{
    int64_t d[2] = {q, kv};
    kiln_tensor *t = kiln_tensor_new(dt, 2, d);
    if (!t) {
        onnx_error(cx, KILN_ERR_OUT_OF_MEMORY, "out of memory");
        return kiln_value_invalid();
    }
    for (int64_t i = 0; i < q; i++)
        for (int64_t j = 0; j < kv; j++)
            ir_store_f64(dt, t->data, (size_t)(i * kv + j), j > i + offset ? -INFINITY : 0.0);
    kiln_value v = onnx_const(cx, t);
    kiln_tensor_free(t);
    return v;
}

static kiln_value iota(onnx_ctx *cx, int64_t n, int rank, int at)
{
    int64_t d[4] = {1, 1, 1, 1};
    d[at] = n;
    kiln_tensor *t = kiln_tensor_new(KILN_I64, rank, d);
    if (!t) {
        onnx_error(cx, KILN_ERR_OUT_OF_MEMORY, "out of memory");
        return kiln_value_invalid();
    }
    for (int64_t i = 0; i < n; i++) ((int64_t *)t->data)[i] = i;
    kiln_value v = onnx_const(cx, t);
    kiln_tensor_free(t);
    return v;
}

static kiln_value where3(onnx_ctx *cx, kiln_value c, kiln_value a, kiln_value b)
{
    kiln_value w[3] = {c, a, b};
    return onnx_op(cx, "Where", w, 3, NULL);
}

ONNX_CONV(cv_attention)
{
    kiln_value q = in[0], k = in[1], v = in[2];
    kiln_value mask = onnx_has(in, nin, 3) ? in[3] : kiln_value_invalid();
    kiln_value pk = onnx_has(in, nin, 4) ? in[4] : kiln_value_invalid();
    kiln_value pv = onnx_has(in, nin, 5) ? in[5] : kiln_value_invalid();
    kiln_value nonpad = onnx_has(in, nin, 6) ? in[6] : kiln_value_invalid();
    const ir_type *tq = onnx_type(cx, q);
    for (int i = 0; i < nin && i < 7; i++)
        if (onnx_has(in, nin, i) && !ir_type_is_static(onnx_type(cx, in[i])))
            return onnx_error(cx, KILN_ERR_UNIMPLEMENTED, "Attention needs static input shapes");
    if (tq->rank != 3 && tq->rank != 4)
        return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "Q has rank %d, not 3 or 4", tq->rank);
    kiln_dtype dt = tq->dtype;
    int in_rank = tq->rank;
    if (in_rank == 3) {
        int64_t qh = onnx_attr_int(n, "q_num_heads", 0), kvh = onnx_attr_int(n, "kv_num_heads", 0);
        q = to_heads(cx, q, qh);
        k = to_heads(cx, k, kvh);
        v = to_heads(cx, v, kvh);
        if (onnx_failed(cx)) return cx->st->code;
    }
    const ir_type *t4 = onnx_type(cx, q);
    int64_t batch = t4->dims[0], qheads = t4->dims[1], qlen = t4->dims[2], hs = t4->dims[3];
    double scale =
        onnx_attr(n, "scale") ? onnx_attr_float(n, "scale", 1.0) : 1.0 / sqrt((double)hs);
    int64_t past = 0;
    if (kiln_value_ok(pk)) {
        past = onnx_type(cx, pk)->dims[2];
        k = op_int(cx, "Concat", (kiln_value[]){pk, k}, 2, "axis", 2);
    }
    if (kiln_value_ok(pv)) v = op_int(cx, "Concat", (kiln_value[]){pv, v}, 2, "axis", 2);
    kiln_value present_k = k, present_v = v;
    if (onnx_failed(cx)) return cx->st->code;
    int64_t kvlen = onnx_type(cx, k)->dims[2], kheads = onnx_type(cx, k)->dims[1];
    bool causal = onnx_attr_int(n, "is_causal", 0) != 0;
    kiln_value ninf = onnx_scalar(cx, dt, -INFINITY), zero = onnx_scalar(cx, dt, 0);
    /* the additive bias */
    kiln_value bias = kiln_value_invalid();
    if (kiln_value_ok(mask)) {
        const ir_type *tm = onnx_type(cx, mask);
        bool is_bool = tm->dtype == KILN_BOOL;
        int64_t pad = kvlen - tm->dims[tm->rank - 1];
        if (pad > 0) {
            int64_t pads[2 * IR_MAX_RANK] = {0};
            pads[2 * tm->rank - 1] = pad;
            kiln_attrs *a = onnx_bag(cx);
            if (!a) return cx->st->code;
            kiln_attrs_ints(a, "pads", pads, 2 * tm->rank);
            kiln_attrs_string(a, "mode", "constant");
            kiln_attrs_float(a, "value", is_bool ? 0.0 : -INFINITY);
            mask = onnx_op(cx, "Pad", &mask, 1, a);
            kiln_attrs_free(a);
        }
        bias = is_bool ? where3(cx, mask, zero, ninf) : onnx_cast(cx, mask, dt);
    }
    if (causal && !(kiln_value_ok(nonpad) && !kiln_value_ok(pk))) {
        kiln_value c = causal_bias(cx, dt, qlen, kvlen, past);
        bias = kiln_value_ok(bias) ? onnx_op2(cx, "Add", bias, c) : c;
    } else if (causal) {
        /* per batch: j <= i + nonpad[b] - qlen */
        int64_t d3[3] = {batch, 1, 1}, d4[4] = {batch, 1, qlen, kvlen};
        kiln_value off =
            onnx_op2(cx, "Sub", onnx_reshape(cx, onnx_cast(cx, nonpad, KILN_I64), d3, 3),
                     onnx_scalar(cx, KILN_I64, (double)qlen));
        kiln_value allowed = onnx_op2(cx, "LessOrEqual", iota(cx, kvlen, 3, 2),
                                      onnx_op2(cx, "Add", iota(cx, qlen, 3, 1), off));
        kiln_value c = onnx_reshape(cx, where3(cx, allowed, zero, ninf), d4, 4);
        bias = kiln_value_ok(bias) ? onnx_op2(cx, "Add", bias, c) : c;
    }
    if (kiln_value_ok(nonpad)) {
        int64_t d4[4] = {batch, 1, 1, 1};
        kiln_value keep = onnx_op2(cx, "Less", iota(cx, kvlen, 4, 3),
                                   onnx_reshape(cx, onnx_cast(cx, nonpad, KILN_I64), d4, 4));
        kiln_value pm = where3(cx, keep, zero, ninf);
        bias = kiln_value_ok(bias) ? onnx_op2(cx, "Add", bias, pm) : pm;
    }
    if (onnx_failed(cx)) return cx->st->code;
    if (qheads != kheads) {
        if (kheads < 1 || qheads % kheads)
            return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "%lld query heads for %lld key heads",
                              (long long)qheads, (long long)kheads);
        k = repeat_heads(cx, k, qheads / kheads);
        v = repeat_heads(cx, v, qheads / kheads);
    }
    kiln_value s = onnx_scalar_like(cx, q, sqrt(scale));
    int64_t perm[4] = {0, 1, 3, 2};
    kiln_value qk =
        onnx_op2(cx, "MatMul", onnx_op2(cx, "Mul", q, s),
                 onnx_op_ints(cx, "Transpose", onnx_op2(cx, "Mul", k, s), "perm", perm, 4));
    double softcap = onnx_attr_float(n, "softcap", 0);
    if (softcap > 0) {
        kiln_value c = onnx_scalar_like(cx, qk, softcap);
        qk = onnx_op2(cx, "Mul", onnx_op1(cx, "Tanh", onnx_op2(cx, "Div", qk, c)), c);
    }
    kiln_value qkb = kiln_value_ok(bias) ? onnx_op2(cx, "Add", qk, bias) : qk;
    kiln_value sm = op_int(cx, "Softmax", &qkb, 1, "axis", -1);
    if (kiln_value_ok(bias)) {
        /* a row masked entirely attends to nothing: zeros, not NaNs */
        int64_t last = -1;
        kiln_value none =
            onnx_op2(cx, "Equal", onnx_reduce(cx, "ReduceMax", qkb, &last, 1, 1), ninf);
        sm = where3(cx, none, zero, sm);
    }
    kiln_value y = onnx_op2(cx, "MatMul", sm, v);
    if (in_rank == 3) {
        const ir_type *ty = onnx_type(cx, y);
        if (!ty) return cx->st->code;
        int64_t d3[3] = {batch, qlen, ty->dims[1] * ty->dims[3]}, p[4] = {0, 2, 1, 3};
        y = onnx_reshape(cx, onnx_op_ints(cx, "Transpose", y, "perm", p, 4), d3, 3);
    }
    out[0] = y;
    if (nout > 1) out[1] = present_k;
    if (nout > 2) out[2] = present_v;
    if (nout > 3) {
        int64_t mode = onnx_attr_int(n, "qk_matmul_output_mode", 0);
        out[3] = mode == 2 ? qkb : mode == 3 ? sm : qk;
    }
    return onnx_failed(cx) ? cx->st->code : KILN_OK;
}

/* ---- more ops composed at import (static shapes) ---- */

static bool static_input(onnx_ctx *cx, kiln_value x, const char *op)
{
    const ir_type *t = onnx_type(cx, x);
    if (t && ir_type_is_static(t)) return true;
    onnx_error(cx, KILN_ERR_UNIMPLEMENTED, "%s needs a static input shape", op);
    return false;
}

/* DepthToSpace and SpaceToDepth: Reshape, Transpose, Reshape. */
ONNX_CONV(cv_depth_space)
{
    if (!static_input(cx, in[0], n->op_type)) return cx->st->code;
    const ir_type *t = onnx_type(cx, in[0]);
    int64_t b = onnx_attr_int(n, "blocksize", 0);
    if (t->rank != 4 || b < 1)
        return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "needs a 4-D input and blocksize >= 1");
    int64_t N = t->dims[0], C = t->dims[1], H = t->dims[2], W = t->dims[3];
    int64_t d6[6], perm[6], d4[4];
    if (!strcmp(n->op_type, "DepthToSpace")) {
        char mode[8];
        onnx_attr_string(n, "mode", "DCR", mode, sizeof mode);
        if (C % (b * b))
            return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT,
                              "channels not divisible by blocksize^2");
        int64_t c = C / (b * b);
        bool crd = !strcmp(mode, "CRD");
        int64_t dd[6] = {N, b, b, c, H, W}, dc[6] = {N, c, b, b, H, W};
        int64_t pd[6] = {0, 3, 4, 1, 5, 2}, pc[6] = {0, 1, 4, 2, 5, 3};
        int64_t o[4] = {N, c, H * b, W * b};
        memcpy(d6, crd ? dc : dd, sizeof d6);
        memcpy(perm, crd ? pc : pd, sizeof perm);
        memcpy(d4, o, sizeof d4);
    } else {
        if (H % b || W % b)
            return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT,
                              "spatial dims not divisible by blocksize");
        int64_t dd[6] = {N, C, H / b, b, W / b, b}, pd[6] = {0, 3, 5, 1, 2, 4};
        int64_t o[4] = {N, C * b * b, H / b, W / b};
        memcpy(d6, dd, sizeof d6);
        memcpy(perm, pd, sizeof perm);
        memcpy(d4, o, sizeof d4);
    }
    kiln_value x = onnx_op_ints(cx, "Transpose", onnx_reshape(cx, in[0], d6, 6), "perm", perm, 6);
    return onnx_done(cx, out, onnx_reshape(cx, x, d4, 4));
}

/* MeanVarianceNormalization: (x - mean) / (sqrt(mean(x^2) - mean^2) + 1e-9). */
ONNX_CONV(cv_mvn)
{
    int64_t axes[IR_MAX_RANK] = {0, 2, 3};
    int na = 3, c;
    const int64_t *a = onnx_attr_ints(n, "axes", &c);
    if (c > IR_MAX_RANK) return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "too many axes");
    if (c >= 0) {
        na = c;
        if (c) memcpy(axes, a, sizeof(int64_t) * (size_t)c);
    }
    kiln_value x = in[0];
    kiln_value mean = onnx_reduce(cx, "ReduceMean", x, axes, na, 1);
    kiln_value msq = onnx_reduce(cx, "ReduceMean", onnx_op2(cx, "Mul", x, x), axes, na, 1);
    kiln_value var = onnx_op2(cx, "Sub", msq, onnx_op2(cx, "Mul", mean, mean));
    kiln_value den = onnx_op2(cx, "Add", onnx_op1(cx, "Sqrt", var), onnx_scalar_like(cx, x, 1e-9));
    return onnx_done(cx, out, onnx_op2(cx, "Div", onnx_op2(cx, "Sub", x, mean), den));
}

/* GroupNormalization (opset 21: scale and bias per channel). */
ONNX_CONV(cv_groupnorm)
{
    if (!static_input(cx, in[0], "GroupNormalization")) return cx->st->code;
    const ir_type *t = onnx_type(cx, in[0]);
    int64_t g = onnx_attr_int(n, "num_groups", 0);
    if (t->rank < 2 || g < 1 || t->dims[1] % g)
        return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "num_groups must divide the channels");
    if (cx->opset < 21)
        return onnx_error(cx, KILN_ERR_UNIMPLEMENTED, "per-group scale (opset < 21)");
    kiln_dtype sd = onnx_stash_dtype(cx, n);
    if (!sd) return cx->st->code;
    int64_t d3[3] = {t->dims[0], g, -1}, ax = 2;
    kiln_value x = onnx_cast(cx, onnx_reshape(cx, in[0], d3, 3), sd);
    kiln_value mean = onnx_reduce(cx, "ReduceMean", x, &ax, 1, 1);
    kiln_value c = onnx_op2(cx, "Sub", x, mean);
    kiln_value var = onnx_reduce(cx, "ReduceMean", onnx_op2(cx, "Mul", c, c), &ax, 1, 1);
    double eps = onnx_attr_float(n, "epsilon", 1e-5);
    kiln_value inv =
        onnx_op1(cx, "Rsqrt", onnx_op2(cx, "Add", var, onnx_scalar_like(cx, var, eps)));
    kiln_value y =
        onnx_reshape(cx, onnx_cast(cx, onnx_op2(cx, "Mul", c, inv), t->dtype), t->dims, t->rank);
    int64_t cd[IR_MAX_RANK];
    cd[0] = -1;
    for (int i = 1; i < t->rank - 1; i++) cd[i] = 1;
    kiln_value sc = onnx_reshape(cx, in[1], cd, t->rank - 1),
               bi = onnx_reshape(cx, in[2], cd, t->rank - 1);
    return onnx_done(cx, out, onnx_op2(cx, "Add", onnx_op2(cx, "Mul", y, sc), bi));
}

/* LRN: the channel-window sums of squares by an average pool over
 * [C, H*W] that counts the (zero) pads. */
ONNX_CONV(cv_lrn)
{
    if (!static_input(cx, in[0], "LRN")) return cx->st->code;
    const ir_type *t = onnx_type(cx, in[0]);
    int64_t size = onnx_attr_int(n, "size", 0);
    if (t->rank < 3 || size < 1)
        return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "needs rank >= 3 and size >= 1");
    double alpha = onnx_attr_float(n, "alpha", 1e-4), beta = onnx_attr_float(n, "beta", 0.75);
    double bias = onnx_attr_float(n, "bias", 1.0);
    kiln_value x = in[0];
    int64_t d4[4] = {t->dims[0], 1, t->dims[1], ir_shape_numel(t->rank - 2, t->dims + 2)};
    kiln_value sq = onnx_reshape(cx, onnx_op2(cx, "Mul", x, x), d4, 4);
    kiln_attrs *a = onnx_bag(cx);
    if (!a) return cx->st->code;
    int64_t k[2] = {size, 1}, st[2] = {1, 1};
    int64_t pads[4] = {(size - 1) / 2, 0, size - 1 - (size - 1) / 2, 0};
    kiln_attrs_ints(a, "kernel_shape", k, 2);
    kiln_attrs_ints(a, "strides", st, 2);
    kiln_attrs_ints(a, "pads", pads, 4);
    kiln_attrs_int(a, "count_include_pad", 1);
    kiln_value avg = onnx_op(cx, "AveragePool2D", &sq, 1, a);
    kiln_attrs_free(a);
    /* alpha / size * sum = alpha * average */
    kiln_value mean = onnx_reshape(cx, avg, t->dims, t->rank);
    kiln_value base = onnx_op2(cx, "Add", onnx_scalar_like(cx, x, bias),
                               onnx_op2(cx, "Mul", mean, onnx_scalar_like(cx, x, alpha)));
    return onnx_done(
        cx, out, onnx_op2(cx, "Div", x, onnx_op2(cx, "Pow", base, onnx_scalar_like(cx, x, beta))));
}

/* GatherND (batch_dims 0 or 1): the index tuples flattened to one index
 * into data reshaped to [rows, rest...], then Gather (which checks the
 * range at run time). */
ONNX_CONV(cv_gathernd)
{
    if (!static_input(cx, in[0], "GatherND") || !static_input(cx, in[1], "GatherND"))
        return cx->st->code;
    const ir_type *td = onnx_type(cx, in[0]), *ti = onnx_type(cx, in[1]);
    int64_t b = onnx_attr_int(n, "batch_dims", 0);
    if (ti->rank < 1)
        return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "indices must have rank >= 1");
    int64_t m = ti->dims[ti->rank - 1];
    if (b < 0 || b > 1 || m < 1 || b + m > td->rank || (b && ti->rank < 2) ||
        (b && ti->dims[0] != td->dims[0]))
        return onnx_error(cx, KILN_ERR_UNIMPLEMENTED,
                          "batch_dims %lld with these shapes is not supported", (long long)b);
    int64_t dims[IR_MAX_RANK], st[IR_MAX_RANK], rows = 1;
    for (int64_t j = m - 1; j >= 0; j--) {
        dims[j] = td->dims[b + j];
        st[j] = rows;
        rows *= dims[j];
    }
    kiln_value idx = onnx_cast(cx, in[1], KILN_I64);
    kiln_value dv = onnx_const_ints(cx, dims, (int)m), sv = onnx_const_ints(cx, st, (int)m);
    kiln_value neg =
        onnx_cast(cx, onnx_op2(cx, "Less", idx, onnx_scalar(cx, KILN_I64, 0)), KILN_I64);
    idx = onnx_op2(cx, "Add", idx, onnx_op2(cx, "Mul", neg, dv));
    int64_t last = -1;
    kiln_value flat = onnx_reduce(cx, "ReduceSum", onnx_op2(cx, "Mul", idx, sv), &last, 1, 0);
    int64_t dd[IR_MAX_RANK];
    int r = 0;
    dd[r++] = rows * (b ? td->dims[0] : 1);
    for (int i = (int)(b + m); i < td->rank; i++) dd[r++] = td->dims[i];
    if (b) {
        int64_t bd[IR_MAX_RANK];
        bd[0] = td->dims[0];
        for (int i = 1; i < ti->rank - 1; i++) bd[i] = 1;
        kiln_value bi = onnx_reshape(cx, iota(cx, td->dims[0], 1, 0), bd, ti->rank - 1);
        flat = onnx_op2(cx, "Add", flat,
                        onnx_op2(cx, "Mul", bi, onnx_scalar(cx, KILN_I64, (double)rows)));
    }
    kiln_value data = onnx_reshape(cx, in[0], dd, r);
    return onnx_done(cx, out, op_int(cx, "Gather", (kiln_value[]){data, flat}, 2, "axis", 0));
}

ONNX_CONV(cv_swiglu)
{
    kiln_value a = in[0];
    double alpha = onnx_attr_float(n, "alpha", 1.0);
    kiln_value ax = alpha == 1.0 ? a : onnx_op2(cx, "Mul", a, onnx_scalar_like(cx, a, alpha));
    kiln_value gate = onnx_op2(cx, "Mul", a, onnx_op1(cx, "Sigmoid", ax));
    return onnx_done(cx, out, onnx_op2(cx, "Mul", gate, in[1]));
}

/* ---- QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear (8-bit) ---- */

/* A scale or zero point p, shaped to broadcast against x (type tx):
 * per tensor as it is, per axis [d] -> [d, 1, ...], blocked (block_size >
 * 0) each element repeated block_size times along axis. */
static kiln_value quant_param(onnx_ctx *cx, kiln_value p, const ir_type *tx, int axis,
                              int64_t block)
{
    const ir_type *tp = onnx_type(cx, p);
    if (!tp) return kiln_value_invalid();
    int64_t numel = ir_shape_numel(tp->rank, tp->dims);
    if (tp->rank == 0 || (numel == 1 && block == 0)) return p;
    if (axis < 0) {
        onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "axis is out of range for rank %d", tx->rank);
        return kiln_value_invalid();
    }
    if (block == 0) {
        int64_t d[IR_MAX_RANK];
        int r = 0;
        d[r++] = tp->dims[0];
        for (int i = axis + 1; i < tx->rank; i++) d[r++] = 1;
        return onnx_reshape(cx, p, d, r);
    }
    if (tp->rank != tx->rank || !ir_type_is_static(tp)) {
        onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "a blocked scale must have the input's rank");
        return kiln_value_invalid();
    }
    int64_t ax1 = axis + 1, e[IR_MAX_RANK + 1], d[IR_MAX_RANK];
    for (int i = 0, k = 0; i <= tp->rank; i++) e[i] = i == ax1 ? block : tp->dims[k++];
    for (int i = 0; i < tp->rank; i++) d[i] = i == axis ? tp->dims[i] * block : tp->dims[i];
    kiln_value u = onnx_op_ints(cx, "Unsqueeze", p, "axes", &ax1, 1);
    kiln_value r =
        onnx_reshape(cx, onnx_op_ints(cx, "Expand", u, "shape", e, tp->rank + 1), d, tp->rank);
    if (d[axis] != tx->dims[axis]) {
        int64_t st = 0, en = tx->dims[axis], ax = axis;
        kiln_attrs *a = onnx_bag(cx);
        if (!a) return kiln_value_invalid();
        kiln_attrs_ints(a, "starts", &st, 1);
        kiln_attrs_ints(a, "ends", &en, 1);
        kiln_attrs_ints(a, "axes", &ax, 1);
        r = onnx_op(cx, "Slice", &r, 1, a);
        kiln_attrs_free(a);
    }
    return r;
}

static int quant_axis(onnx_ctx *cx, const Onnx__NodeProto *n, const ir_type *tx, int *axis)
{
    int64_t ax = onnx_attr_int(n, "axis", 1);
    if (tx->rank == 0) {
        *axis = 0;
        return KILN_OK;
    }
    /* checked where a per-axis or blocked parameter needs it */
    if (!ir_norm_axis(ax, tx->rank, axis)) *axis = -1;
    return KILN_OK;
}

ONNX_CONV(cv_dequantize)
{
    const ir_type *tx = onnx_type(cx, in[0]), *ts = onnx_type(cx, in[1]);
    int axis;
    if (quant_axis(cx, n, tx, &axis)) return cx->st->code;
    int64_t block = onnx_attr_int(n, "block_size", 0);
    kiln_dtype od = ts->dtype;
    if (onnx_attr(n, "output_dtype") && onnx_attr_int(n, "output_dtype", 0)) {
        int ot = (int)onnx_attr_int(n, "output_dtype", 0);
        if (!(od = onnx_dtype(ot)))
            return onnx_error(cx, KILN_ERR_UNIMPLEMENTED, "output_dtype %s", onnx_dtype_name(ot));
    }
    kiln_value x = onnx_cast(cx, in[0], KILN_F32);
    if (onnx_has(in, nin, 2)) /* widened first: storage dtypes only reshape */
        x = onnx_op2(cx, "Sub", x, quant_param(cx, onnx_cast(cx, in[2], KILN_F32), tx, axis, block));
    kiln_value s = onnx_cast(cx, quant_param(cx, in[1], tx, axis, block), KILN_F32);
    return onnx_done(cx, out, onnx_cast(cx, onnx_op2(cx, "Mul", x, s), od));
}

/* MatMulInteger: (A - a_zero_point) x (B - b_zero_point) in i32, exact for
 * 8-bit inputs. A's zero point is a scalar or one per row ([M], or
 * [..., M, 1]); B's a scalar or one per column ([N], or [..., 1, N]). */
ONNX_CONV(cv_matmul_integer)
{
    kiln_value a = onnx_cast(cx, in[0], KILN_I32), b = onnx_cast(cx, in[1], KILN_I32);
    if (onnx_has(in, nin, 2)) {
        const ir_type *ta = onnx_type(cx, in[0]), *tz = onnx_type(cx, in[2]);
        if (!ta || !tz) return cx->st->code;
        kiln_value z = onnx_cast(cx, in[2], KILN_I32);
        if (tz->rank == 1 && tz->dims[0] != 1) {
            if (ta->rank < 2)
                return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT,
                                  "a per-row a_zero_point needs A of rank >= 2, A has rank %d", ta->rank);
            z = onnx_reshape(cx, z, (int64_t[]){tz->dims[0], 1}, 2);
        }
        a = onnx_op2(cx, "Sub", a, z);
    }
    if (onnx_has(in, nin, 3)) b = onnx_op2(cx, "Sub", b, onnx_cast(cx, in[3], KILN_I32));
    return onnx_done(cx, out, onnx_op2(cx, "MatMul", a, b));
}

/* The integer range quantization to od saturates to; false if none. */
static bool quant_int_range(kiln_dtype od, double *lo, double *hi)
{
    switch (od) {
    case KILN_U8: *lo = 0, *hi = 255; return true;
    case KILN_I8: *lo = -128, *hi = 127; return true;
    case KILN_U16: *lo = 0, *hi = 65535; return true;
    case KILN_I16: *lo = -32768, *hi = 32767; return true;
    case KILN_U4: *lo = 0, *hi = 15; return true;
    case KILN_I4: *lo = -8, *hi = 7; return true;
    case KILN_U2: *lo = 0, *hi = 3; return true;
    case KILN_I2: *lo = -2, *hi = 1; return true;
    default: return false;
    }
}

/* round(x / scale) + zero point, saturated to the integer range of od
 * (8 or 16 bits: exact in f32). */
static kiln_value quantize(onnx_ctx *cx, kiln_value x, kiln_value s, kiln_value zp, kiln_dtype od)
{
    kiln_value q = onnx_op1(
        cx, "Round", onnx_op2(cx, "Div", onnx_cast(cx, x, KILN_F32), onnx_cast(cx, s, KILN_F32)));
    if (kiln_value_ok(zp)) q = onnx_op2(cx, "Add", q, onnx_cast(cx, zp, KILN_F32));
    double lo = 0, hi = 255;
    quant_int_range(od, &lo, &hi);
    return onnx_cast(cx, onnx_clip(cx, q, lo, hi), od);
}

ONNX_CONV(cv_quantize)
{
    const ir_type *tx = onnx_type(cx, in[0]);
    int axis;
    if (quant_axis(cx, n, tx, &axis)) return cx->st->code;
    int64_t block = onnx_attr_int(n, "block_size", 0);
    int ot = onnx_has(in, nin, 2) ? 0 : (int)onnx_attr_int(n, "output_dtype", 0);
    kiln_dtype od = onnx_has(in, nin, 2) ? onnx_type(cx, in[2])->dtype
                    : ot                 ? onnx_dtype(ot)
                                         : KILN_U8;
    double qlo, qhi;
    if (od && ir_dtype_is_storage_float(od)) {
        /* float8/float4: x / scale + zero point, rounded by the Cast
         * (saturating unless saturate=0) */
        kiln_value zp = onnx_has(in, nin, 2)
                            ? quant_param(cx, onnx_cast(cx, in[2], KILN_F32), tx, axis, block)
                            : kiln_value_invalid();
        kiln_value s = onnx_cast(cx, quant_param(cx, in[1], tx, axis, block), KILN_F32);
        kiln_value q = onnx_op2(cx, "Div", onnx_cast(cx, in[0], KILN_F32), s);
        if (kiln_value_ok(zp)) q = onnx_op2(cx, "Add", q, zp);
        kiln_attrs *a = onnx_bag(cx);
        if (!a) return cx->st->code;
        kiln_attrs_dtype(a, "to", od);
        if (!onnx_attr_int(n, "saturate", 1)) kiln_attrs_int(a, "saturate", 0);
        kiln_value r = onnx_op(cx, "Cast", &q, 1, a);
        kiln_attrs_free(a);
        return onnx_done(cx, out, r);
    }
    if (!quant_int_range(od, &qlo, &qhi))
        return onnx_error(cx, KILN_ERR_UNIMPLEMENTED,
                          "quantization to %s is not supported (8- and 16-bit integers only)",
                          od ? kiln_dtype_name(od) : onnx_dtype_name(ot));
    /* (a storage-dtype zero point is widened before it is reshaped) */
    kiln_value zp = !onnx_has(in, nin, 2) ? kiln_value_invalid()
                    : ir_dtype_is_storage(od) ? quant_param(cx, onnx_cast(cx, in[2], KILN_F32), tx, axis, block)
                                              : quant_param(cx, in[2], tx, axis, block);
    kiln_value s = quant_param(cx, in[1], tx, axis, block);
    return onnx_done(cx, out, quantize(cx, in[0], s, zp, od));
}

ONNX_CONV(cv_dynamic_quantize)
{
    kiln_value x = onnx_cast(cx, in[0], KILN_F32);
    kiln_value zero = onnx_scalar(cx, KILN_F32, 0);
    kiln_value hi = onnx_op2(cx, "Maximum", onnx_reduce(cx, "ReduceMax", x, NULL, 0, 0), zero);
    kiln_value lo = onnx_op2(cx, "Minimum", onnx_reduce(cx, "ReduceMin", x, NULL, 0, 0), zero);
    kiln_value scale =
        onnx_op2(cx, "Div", onnx_op2(cx, "Sub", hi, lo), onnx_scalar(cx, KILN_F32, 255));
    kiln_value zpf = onnx_op1(
        cx, "Round", onnx_clip(cx, onnx_op1(cx, "Neg", onnx_op2(cx, "Div", lo, scale)), 0, 255));
    out[0] = quantize(cx, x, scale, zpf, KILN_U8);
    if (nout > 1) out[1] = scale;
    if (nout > 2) out[2] = onnx_cast(cx, zpf, KILN_U8);
    return onnx_failed(cx) ? cx->st->code : KILN_OK;
}

/* x[start:end:step] along one axis. */
static kiln_value slice1(onnx_ctx *cx, kiln_value x, int64_t axis, int64_t start, int64_t end,
                         int64_t step)
{
    kiln_attrs *a = onnx_bag(cx);
    if (!a) return kiln_value_invalid();
    kiln_attrs_ints(a, "starts", &start, 1);
    kiln_attrs_ints(a, "ends", &end, 1);
    kiln_attrs_ints(a, "axes", &axis, 1);
    kiln_attrs_ints(a, "steps", &step, 1);
    kiln_value r = onnx_op(cx, "Slice", &x, 1, a);
    kiln_attrs_free(a);
    return r;
}

/* RotaryEmbedding (opset 23): rotates the first rotary_embedding_dim
 * features of each head by the cached cos/sin of its position. */
ONNX_CONV(cv_rotary)
{
    if (!static_input(cx, in[0], "RotaryEmbedding")) return cx->st->code;
    const ir_type *t = onnx_type(cx, in[0]);
    int64_t perm[4] = {0, 2, 1, 3};
    kiln_value x;
    if (t->rank == 4) {
        x = onnx_op_ints(cx, "Transpose", in[0], "perm", perm, 4);
    } else if (t->rank == 3) {
        int64_t nh = onnx_attr_int(n, "num_heads", 0);
        if (nh < 1 || t->dims[2] % nh)
            return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT,
                              "num_heads must divide the hidden size");
        int64_t d[4] = {t->dims[0], t->dims[1], nh, t->dims[2] / nh};
        x = onnx_reshape(cx, in[0], d, 4);
    } else {
        return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "input rank %d is not 3 or 4", t->rank);
    }
    const ir_type *tx = onnx_type(cx, x);
    if (!tx) return cx->st->code;
    int64_t hs = tx->dims[3], rd = onnx_attr_int(n, "rotary_embedding_dim", 0);
    if (rd <= 0) rd = hs;
    if (rd > hs || rd % 2)
        return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT,
                          "rotary_embedding_dim %lld for head size %lld", (long long)rd,
                          (long long)hs);
    bool inter = onnx_attr_int(n, "interleaved", 0) != 0;
    kiln_value rot = rd < hs ? slice1(cx, x, 3, 0, rd, 1) : x;
    kiln_value cs = in[1], sn = in[2];
    if (onnx_has(in, nin, 3)) {
        cs = op_int(cx, "Gather", (kiln_value[]){cs, in[3]}, 2, "axis", 0);
        sn = op_int(cx, "Gather", (kiln_value[]){sn, in[3]}, 2, "axis", 0);
    }
    int64_t two = 2, four = 4;
    cs = onnx_op_ints(cx, "Unsqueeze", cs, "axes", &two, 1);
    sn = onnx_op_ints(cx, "Unsqueeze", sn, "axes", &two, 1);
    kiln_value x1 = inter ? slice1(cx, rot, 3, 0, rd, 2) : slice1(cx, rot, 3, 0, rd / 2, 1);
    kiln_value x2 = inter ? slice1(cx, rot, 3, 1, rd, 2) : slice1(cx, rot, 3, rd / 2, rd, 1);
    kiln_value re = onnx_op2(cx, "Sub", onnx_op2(cx, "Mul", cs, x1), onnx_op2(cx, "Mul", sn, x2));
    kiln_value im = onnx_op2(cx, "Add", onnx_op2(cx, "Mul", sn, x1), onnx_op2(cx, "Mul", cs, x2));
    kiln_value y;
    if (inter) {
        kiln_value pair[2] = {onnx_op_ints(cx, "Unsqueeze", re, "axes", &four, 1),
                              onnx_op_ints(cx, "Unsqueeze", im, "axes", &four, 1)};
        int64_t d[4] = {tx->dims[0], tx->dims[1], tx->dims[2], rd};
        y = onnx_reshape(cx, op_int(cx, "Concat", pair, 2, "axis", 4), d, 4);
    } else {
        y = op_int(cx, "Concat", (kiln_value[]){re, im}, 2, "axis", 3);
    }
    if (rd < hs)
        y = op_int(cx, "Concat", (kiln_value[]){y, slice1(cx, x, 3, rd, hs, 1)}, 2, "axis", 3);
    y = t->rank == 4 ? onnx_op_ints(cx, "Transpose", y, "perm", perm, 4)
                     : onnx_reshape(cx, y, t->dims, t->rank);
    return onnx_done(cx, out, y);
}

/* ---- Resize (opset 11+), composed: per resized axis, a Gather of each
 * interpolation tap with constant indices, weighted by constant weights ---- */

#define RESIZE_TAPS 4

/* Where output coordinate x of an axis reads the input (ONNX
 * coordinate_transformation_mode). As in the reference, the output length
 * in the formulas is in * s before rounding down. */
static double resize_coord(const char *mode, double x, double s, int64_t in, double r0, double r1)
{
    double len = s * (double)in, last = (double)(in - 1);
    if (!strcmp(mode, "asymmetric")) return x / s;
    if (!strcmp(mode, "align_corners")) return len == 1 ? 0 : x * last / (len - 1);
    if (!strcmp(mode, "pytorch_half_pixel")) return len > 1 ? (x + 0.5) / s - 0.5 : 0;
    if (!strcmp(mode, "tf_crop_and_resize"))
        return len == 1 ? 0.5 * (r0 + r1) * last : r0 * last + x * (r1 - r0) * last / (len - 1);
    if (!strcmp(mode, "half_pixel_symmetric")) {
        double adj = floor(len) / len, center = (double)in / 2;
        return center * (1 - adj) + (x + 0.5) / s - 0.5;
    }
    return (x + 0.5) / s - 0.5; /* half_pixel */
}

static int64_t resize_nearest(const char *mode, double x)
{
    double f = floor(x);
    if (!strcmp(mode, "floor")) return (int64_t)f;
    if (!strcmp(mode, "ceil")) return (int64_t)ceil(x);
    if (x - f == 0.5) return (int64_t)(!strcmp(mode, "round_prefer_ceil") ? f + 1 : f);
    return (int64_t)round(x);
}

/* The taps of one output position: input indices (clamped, as the
 * reference's edge padding) and weights. Returns the tap count. */
static int resize_taps(const char *mode, const char *nearest, double a, bool exclude, double x,
                       int64_t in, int64_t *idx, double *w)
{
    if (!strcmp(mode, "nearest")) {
        int64_t i = resize_nearest(nearest, x);
        idx[0] = i < 0 ? 0 : i >= in ? in - 1 : i;
        w[0] = 1;
        return 1;
    }
    double f = floor(x), r = x - f;
    int n = !strcmp(mode, "linear") ? 2 : 4;
    int64_t first = (int64_t)f - (n == 4 ? 1 : 0);
    if (n == 2) {
        w[0] = 1 - r;
        w[1] = r;
    } else {
        double t[4] = {1 + r, r, 1 - r, 2 - r};
        for (int k = 0; k < 4; k++) {
            double d = t[k];
            w[k] = d <= 1 ? ((a + 2) * d - (a + 3)) * d * d + 1
                          : ((a * d - 5 * a) * d + 8 * a) * d - 4 * a;
        }
    }
    double sum = 0;
    for (int k = 0; k < n; k++) {
        int64_t i = first + k;
        if (exclude && (i < 0 || i >= in)) w[k] = 0;
        sum += w[k];
        idx[k] = i < 0 ? 0 : i >= in ? in - 1 : i;
    }
    if (exclude && sum != 0)
        for (int k = 0; k < n; k++) w[k] /= sum;
    return n;
}

typedef struct {
    char mode[16], coord[24], nearest[24];
    double a, extrapolation;
    bool exclude;
} resize_opts;

/* Resizes axis d of x from in to out elements (scale s, roi [r0, r1]). */
static kiln_value resize_axis(onnx_ctx *cx, kiln_value x, int d, int64_t in, int64_t out, double s,
                              double r0, double r1, const resize_opts *o)
{
    const ir_type *t = onnx_type(cx, x);
    kiln_dtype dt = t->dtype;
    int64_t one = out;
    kiln_tensor *it[RESIZE_TAPS] = {0}, *wt[RESIZE_TAPS] = {0}, *mt = NULL;
    int n = 0;
    bool tf = !strcmp(o->coord, "tf_crop_and_resize"), any_outside = false;
    kiln_value r = kiln_value_invalid();
    int64_t wd[IR_MAX_RANK];
    for (int i = 0; i < t->rank; i++) wd[i] = i == d ? out : 1;
    mt = kiln_tensor_new(KILN_BOOL, t->rank, wd);
    for (int k = 0; k < RESIZE_TAPS; k++) {
        it[k] = kiln_tensor_new(KILN_I64, 1, &one);
        wt[k] = kiln_tensor_new(dt, t->rank, wd);
        if (!it[k] || !wt[k]) goto oom;
    }
    if (!mt) goto oom;
    for (int64_t j = 0; j < out; j++) {
        double xo = resize_coord(o->coord, (double)j, s, in, r0, r1);
        int64_t idx[RESIZE_TAPS];
        double w[RESIZE_TAPS];
        n = resize_taps(o->mode, o->nearest, o->a, o->exclude, xo, in, idx, w);
        bool outside = tf && (xo < 0 || xo > (double)(in - 1));
        ((uint8_t *)mt->data)[j] = outside;
        any_outside |= outside;
        for (int k = 0; k < n; k++) {
            ((int64_t *)it[k]->data)[j] = idx[k];
            ir_store_f64(dt, wt[k]->data, (size_t)j, w[k]);
        }
    }
    for (int k = 0; k < n; k++) {
        kiln_value g = op_int(cx, "Gather", (kiln_value[]){x, onnx_const(cx, it[k])}, 2, "axis", d);
        if (n > 1) g = onnx_op2(cx, "Mul", g, onnx_const(cx, wt[k]));
        r = k == 0 ? g : onnx_op2(cx, "Add", r, g);
    }
    if (any_outside) {
        kiln_value sel[3] = {onnx_const(cx, mt), onnx_scalar_like(cx, r, o->extrapolation), r};
        r = onnx_op(cx, "Where", sel, 3, NULL);
    }
    goto done;
oom:
    onnx_error(cx, KILN_ERR_OUT_OF_MEMORY, "out of memory");
done:
    for (int k = 0; k < RESIZE_TAPS; k++) {
        kiln_tensor_free(it[k]);
        kiln_tensor_free(wt[k]);
    }
    kiln_tensor_free(mt);
    return r;
}

ONNX_CONV(cv_resize)
{
    if (cx->opset < 11)
        return onnx_error(cx, KILN_ERR_UNIMPLEMENTED, "Resize before opset 11 is not supported");
    if (!static_input(cx, in[0], "Resize")) return cx->st->code;
    const ir_type *t = onnx_type(cx, in[0]);
    int rank = t->rank;
    resize_opts o;
    onnx_attr_string(n, "mode", "nearest", o.mode, sizeof o.mode);
    onnx_attr_string(n, "coordinate_transformation_mode", "half_pixel", o.coord, sizeof o.coord);
    onnx_attr_string(n, "nearest_mode", "round_prefer_floor", o.nearest, sizeof o.nearest);
    o.a = onnx_attr_float(n, "cubic_coeff_a", -0.75);
    o.exclude = onnx_attr_int(n, "exclude_outside", 0) != 0;
    o.extrapolation = onnx_attr_float(n, "extrapolation_value", 0);
    char policy[16];
    onnx_attr_string(n, "keep_aspect_ratio_policy", "stretch", policy, sizeof policy);
    if (strcmp(o.mode, "nearest") && strcmp(o.mode, "linear") && strcmp(o.mode, "cubic"))
        return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "mode '%s' is not nearest, linear or cubic", o.mode);
    if (onnx_attr_int(n, "antialias", 0) && strcmp(o.mode, "nearest"))
        return onnx_error(cx, KILN_ERR_UNIMPLEMENTED, "antialiased Resize is not supported");
    /* the resized axes */
    int64_t axes[IR_MAX_RANK];
    int na = rank, c;
    const int64_t *av = onnx_attr_ints(n, "axes", &c);
    if (c > rank) return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "more axes than dims");
    if (c > 0) {
        na = c;
        for (int i = 0; i < c; i++) {
            int ax;
            if (!ir_norm_axis(av[i], rank, &ax))
                return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "axis %lld out of range", (long long)av[i]);
            axes[i] = ax;
        }
    } else {
        for (int i = 0; i < rank; i++) axes[i] = i;
    }
    /* roi, scales or sizes (constants) */
    double roi[2 * IR_MAX_RANK], scale[IR_MAX_RANK];
    int64_t outd[IR_MAX_RANK];
    for (int i = 0; i < na; i++) roi[i] = 0, roi[na + i] = 1;
    const kiln_tensor *tr = onnx_has(in, nin, 1) ? onnx_value_tensor(cx, in[1]) : NULL;
    const kiln_tensor *ts = onnx_has(in, nin, 2) ? onnx_value_tensor(cx, in[2]) : NULL;
    const kiln_tensor *tz = onnx_has(in, nin, 3) ? onnx_value_tensor(cx, in[3]) : NULL;
    bool want_roi = !strcmp(o.coord, "tf_crop_and_resize") && onnx_has(in, nin, 1);
    if ((want_roi && !tr) || (onnx_has(in, nin, 2) && !ts) || (onnx_has(in, nin, 3) && !tz))
        return onnx_error(cx, KILN_ERR_UNIMPLEMENTED,
                          "roi, scales and sizes must be constants for kiln (they are computed at "
                          "run time)");
    if (ts && ts->size == 0) ts = NULL;
    if (!ts == !tz) return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "give exactly one of scales and sizes");
    if (want_roi) {
        if (tr->size != (size_t)(2 * na)) return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "roi has %zu values for %d axes", tr->size, na);
        for (int i = 0; i < 2 * na; i++) roi[i] = ir_load_f64(tr->dtype, tr->data, (size_t)i);
    }
    const kiln_tensor *tv = ts ? ts : tz;
    if (tv->size != (size_t)na)
        return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "%s has %zu values for %d axes", ts ? "scales" : "sizes", tv->size, na);
    if (ts) {
        for (int i = 0; i < na; i++) {
            scale[i] = ir_load_f64(ts->dtype, ts->data, (size_t)i);
            if (!(scale[i] > 0)) return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "scale %g is not positive", scale[i]);
            outd[i] = (int64_t)floor((double)t->dims[axes[i]] * scale[i]);
        }
    } else {
        double keep = 0;
        bool fixed = strcmp(policy, "stretch") != 0;
        for (int i = 0; i < na; i++) {
            double q = (double)ir_load_i64(tz->dtype, tz->data, (size_t)i) / (double)t->dims[axes[i]];
            if (i == 0 || (!strcmp(policy, "not_larger") ? q < keep : q > keep)) keep = q;
        }
        for (int i = 0; i < na; i++) {
            int64_t sz = ir_load_i64(tz->dtype, tz->data, (size_t)i);
            scale[i] = fixed ? keep : (double)sz / (double)t->dims[axes[i]];
            outd[i] = fixed ? (int64_t)floor(keep * (double)t->dims[axes[i]] + 0.5) : sz;
        }
    }
    kiln_value x = in[0];
    bool changed = false;
    /* innermost axis first, as the reference's recursion interpolates */
    int order[IR_MAX_RANK];
    for (int i = 0; i < na; i++) order[i] = i;
    for (int i = 0; i < na; i++)
        for (int j = i + 1; j < na; j++)
            if (axes[order[j]] > axes[order[i]]) {
                int tmp = order[i];
                order[i] = order[j];
                order[j] = tmp;
            }
    for (int k = 0; k < na; k++) {
        int i = order[k];
        int64_t inl = t->dims[axes[i]];
        if (outd[i] < 0) return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "negative output size");
        if (outd[i] == inl && scale[i] == 1.0 && strcmp(o.coord, "tf_crop_and_resize")) continue;
        if (outd[i] < 1) return onnx_error(cx, KILN_ERR_UNIMPLEMENTED, "an empty output axis");
        x = resize_axis(cx, x, (int)axes[i], inl, outd[i], scale[i], roi[i], roi[na + i], &o);
        changed = true;
        if (onnx_failed(cx)) return cx->st->code;
    }
    return onnx_done(cx, out, changed ? x : onnx_op1(cx, "Identity", x));
}

