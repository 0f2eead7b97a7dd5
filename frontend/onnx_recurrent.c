/* onnx_recurrent.c -- the ONNX recurrent ops RNN, GRU and LSTM (opsets
 * 7..), imported by unrolling them over the static sequence length into
 * kiln's MatMul, Slice, elementwise ops and Concat. Each step follows the
 * equations of the ONNX operator spec; sequence_lens is honoured by
 * masking with Where (a finished sequence keeps its state and writes zeros
 * to Y). The op table is in onnx_ops.c. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "onnx_internal.h"

enum { RNN_PLAIN, RNN_GRU, RNN_LSTM };

/* ---- activation functions (the spec's list, names case-insensitive) ---- */

typedef struct {
    const char *name;
    int nparams;        /* 0: none, 1: alpha, 2: alpha and beta */
    double alpha, beta; /* defaults */
} rnn_actdef;

static const rnn_actdef rnn_acts[] = {
    {"Relu", 0, 0, 0},           {"Tanh", 0, 0, 0},
    {"Sigmoid", 0, 0, 0},        {"Affine", 2, 1.0, 0.0},
    {"LeakyRelu", 1, 0.01, 0},   {"ThresholdedRelu", 1, 1.0, 0},
    {"ScaledTanh", 2, 1.0, 1.0}, {"HardSigmoid", 2, 0.2, 0.5},
    {"Elu", 1, 1.0, 0},          {"Softsign", 0, 0, 0},
    {"Softplus", 0, 0, 0},
};

typedef struct {
    const rnn_actdef *def;
    double alpha, beta;
} rnn_act;

static const rnn_actdef *find_act(const char *s, size_t len)
{
    for (size_t i = 0; i < sizeof rnn_acts / sizeof rnn_acts[0]; i++) {
        const char *nm = rnn_acts[i].name;
        if (strlen(nm) != len) continue;
        size_t k = 0;
        while (k < len && tolower((unsigned char)nm[k]) == tolower((unsigned char)s[k])) k++;
        if (k == len) return &rnn_acts[i];
    }
    return NULL;
}

static kiln_value apply_act(onnx_ctx *cx, const rnn_act *f, kiln_value x)
{
    const char *nm = f->def->name;
    if (!strcmp(nm, "Relu") || !strcmp(nm, "Tanh") || !strcmp(nm, "Sigmoid") ||
        !strcmp(nm, "Softplus"))
        return onnx_op1(cx, nm, x);
    if (!strcmp(nm, "LeakyRelu") || !strcmp(nm, "Elu")) {
        kiln_attrs *a = onnx_bag(cx);
        if (!a) return kiln_value_invalid();
        kiln_attrs_float(a, "alpha", f->alpha);
        kiln_value r = onnx_op(cx, nm, &x, 1, a);
        kiln_attrs_free(a);
        return r;
    }
    if (!strcmp(nm, "Affine"))
        return onnx_op2(cx, "Add", onnx_op2(cx, "Mul", x, onnx_scalar_like(cx, x, f->alpha)),
                        onnx_scalar_like(cx, x, f->beta));
    if (!strcmp(nm, "ThresholdedRelu")) {
        kiln_value w[3] = {onnx_op2(cx, "Greater", x, onnx_scalar_like(cx, x, f->alpha)), x,
                           onnx_scalar_like(cx, x, 0)};
        return onnx_op(cx, "Where", w, 3, NULL);
    }
    if (!strcmp(nm, "ScaledTanh"))
        return onnx_op2(
            cx, "Mul",
            onnx_op1(cx, "Tanh", onnx_op2(cx, "Mul", x, onnx_scalar_like(cx, x, f->beta))),
            onnx_scalar_like(cx, x, f->alpha));
    if (!strcmp(nm, "HardSigmoid"))
        return onnx_clip(cx,
                         onnx_op2(cx, "Add",
                                  onnx_op2(cx, "Mul", x, onnx_scalar_like(cx, x, f->alpha)),
                                  onnx_scalar_like(cx, x, f->beta)),
                         0.0, 1.0);
    /* Softsign */
    return onnx_op2(cx, "Div", x,
                    onnx_op2(cx, "Add", onnx_op1(cx, "Abs", x), onnx_scalar_like(cx, x, 1.0)));
}

/* The activations of all directions (nper each) into acts: the node's
 * `activations` (one list for all directions, or one per direction) with
 * alphas and betas consumed in order by the functions that take them;
 * the op's defaults where absent. */
static int parse_acts(onnx_ctx *cx, const Onnx__NodeProto *n, int kind, int ndir, rnn_act *acts)
{
    static const char *const defaults[3][3] = {
        {"Tanh", NULL, NULL}, {"Sigmoid", "Tanh", NULL}, {"Sigmoid", "Tanh", "Tanh"}};
    int nper = kind + 1, total = nper * ndir;
    const Onnx__AttributeProto *an = onnx_attr(n, "activations");
    const Onnx__AttributeProto *aa = onnx_attr(n, "activation_alpha");
    const Onnx__AttributeProto *ab = onnx_attr(n, "activation_beta");
    int given = an ? (int)an->n_strings : 0;
    if (given && given != nper && given != total)
        return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT,
                          "%d activations given; %s with %d direction(s) takes %d", given,
                          n->op_type, ndir, total);
    size_t ia = 0, ib = 0;
    for (int k = 0; k < total; k++) {
        const rnn_actdef *d;
        if (given) {
            const ProtobufCBinaryData *s = &an->strings[k % given];
            d = find_act((const char *)s->data, s->len);
            if (!d)
                return onnx_error(cx, KILN_ERR_UNIMPLEMENTED, "activation '%.*s' is not supported",
                                  (int)(s->len > 64 ? 64 : s->len), (const char *)s->data);
        } else {
            d = find_act(defaults[kind][k % nper], strlen(defaults[kind][k % nper]));
        }
        acts[k].def = d;
        acts[k].alpha = d->alpha;
        acts[k].beta = d->beta;
        if (d->nparams >= 1 && aa && ia < aa->n_floats) acts[k].alpha = aa->floats[ia++];
        if (d->nparams >= 2 && ab && ib < ab->n_floats) acts[k].beta = ab->floats[ib++];
    }
    return KILN_OK;
}

/* ---- small graph helpers ---- */

/* x[start:end] along one axis. */
static kiln_value slice_axis(onnx_ctx *cx, kiln_value x, int64_t axis, int64_t start, int64_t end)
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

/* x[i] along axis 0 of a static x: rank one less. */
static kiln_value pick(onnx_ctx *cx, kiln_value x, int64_t i)
{
    const ir_type *t = onnx_type(cx, x);
    int64_t dims[IR_MAX_RANK];
    int rank = t->rank > 0 ? t->rank - 1 : 0;
    for (int k = 0; k < rank; k++) dims[k] = t->dims[k + 1];
    return onnx_reshape(cx, slice_axis(cx, x, 0, i, i + 1), dims, rank);
}

static kiln_value transpose(onnx_ctx *cx, kiln_value x, const int64_t *perm, int n)
{
    return onnx_op_ints(cx, "Transpose", x, "perm", perm, n);
}

static kiln_value concat(onnx_ctx *cx, const kiln_value *v, int n, int64_t axis)
{
    if (n == 1) return v[0];
    kiln_attrs *a = onnx_bag(cx);
    if (!a) return kiln_value_invalid();
    kiln_attrs_int(a, "axis", axis);
    kiln_value r = onnx_op(cx, "Concat", v, n, a);
    kiln_attrs_free(a);
    return r;
}

static kiln_value zeros(onnx_ctx *cx, kiln_dtype dt, int64_t d0, int64_t d1)
{
    int64_t d[2] = {d0, d1};
    kiln_tensor *t = kiln_tensor_new(dt, 2, d);
    if (!t) {
        onnx_error(cx, KILN_ERR_OUT_OF_MEMORY, "out of memory");
        return kiln_value_invalid();
    }
    kiln_value v = onnx_const(cx, t);
    kiln_tensor_free(t);
    return v;
}

/* ---- the recurrence ---- */

typedef struct {
    int kind;
    kiln_dtype dt;
    int64_t seq, batch, hidden;
    bool clip, input_forget, lbr;
    double clipv;
    const rnn_act *f; /* this direction's activations */
    kiln_value xwb;   /* X W^T + Wb: [seq, batch, G*hidden] */
    kiln_value rt;    /* R^T: [hidden, G*hidden] */
    kiln_value rb;    /* Rb: [G*hidden] or invalid */
    kiln_value p;     /* peepholes [3*hidden] or invalid */
    kiln_value lens;  /* sequence lengths [batch, 1] i64, or invalid: all full */
} rnn_dir;

static kiln_value clipped(onnx_ctx *cx, const rnn_dir *r, kiln_value x)
{
    return r->clip ? onnx_clip(cx, x, -r->clipv, r->clipv) : x;
}

static kiln_value gate(onnx_ctx *cx, kiln_value x, int64_t g, int64_t h)
{
    return slice_axis(cx, x, -1, g * h, (g + 1) * h);
}

static kiln_value add_opt(onnx_ctx *cx, kiln_value a, kiln_value b)
{
    return kiln_value_ok(b) ? onnx_op2(cx, "Add", a, b) : a;
}

/* One step at time t: updates *h (and *c for LSTM) and returns Y[t]. */
static kiln_value rnn_step(onnx_ctx *cx, const rnn_dir *r, int64_t t, kiln_value *h, kiln_value *c)
{
    int64_t H = r->hidden;
    kiln_value x = pick(cx, r->xwb, t);
    kiln_value hn, cn = kiln_value_invalid();
    if (r->kind == RNN_PLAIN) {
        kiln_value a =
            add_opt(cx, onnx_op2(cx, "Add", x, onnx_op2(cx, "MatMul", *h, r->rt)), r->rb);
        hn = apply_act(cx, &r->f[0], clipped(cx, r, a));
    } else if (r->kind == RNN_LSTM) {
        kiln_value a =
            add_opt(cx, onnx_op2(cx, "Add", x, onnx_op2(cx, "MatMul", *h, r->rt)), r->rb);
        /* gate order i, o, f, c; peepholes i, o, f */
        kiln_value gi = gate(cx, a, 0, H), go = gate(cx, a, 1, H), gf = gate(cx, a, 2, H),
                   gc = gate(cx, a, 3, H);
        if (kiln_value_ok(r->p)) {
            gi = onnx_op2(cx, "Add", gi, onnx_op2(cx, "Mul", gate(cx, r->p, 0, H), *c));
            gf = onnx_op2(cx, "Add", gf, onnx_op2(cx, "Mul", gate(cx, r->p, 2, H), *c));
        }
        kiln_value i = apply_act(cx, &r->f[0], clipped(cx, r, gi));
        kiln_value f = r->input_forget ? onnx_op2(cx, "Sub", onnx_scalar_like(cx, i, 1.0), i)
                                       : apply_act(cx, &r->f[0], clipped(cx, r, gf));
        kiln_value cc = apply_act(cx, &r->f[1], clipped(cx, r, gc));
        cn = onnx_op2(cx, "Add", onnx_op2(cx, "Mul", f, *c), onnx_op2(cx, "Mul", i, cc));
        if (kiln_value_ok(r->p))
            go = onnx_op2(cx, "Add", go, onnx_op2(cx, "Mul", gate(cx, r->p, 1, H), cn));
        kiln_value o = apply_act(cx, &r->f[0], clipped(cx, r, go));
        hn = onnx_op2(cx, "Mul", o, apply_act(cx, &r->f[2], cn));
    } else {
        /* GRU, gate order z, r, h */
        kiln_value rzr = slice_axis(cx, r->rt, 1, 0, 2 * H),
                   rh = slice_axis(cx, r->rt, 1, 2 * H, 3 * H);
        kiln_value bzr = kiln_value_invalid(), bh = kiln_value_invalid();
        if (kiln_value_ok(r->rb)) {
            bzr = slice_axis(cx, r->rb, 0, 0, 2 * H);
            bh = slice_axis(cx, r->rb, 0, 2 * H, 3 * H);
        }
        kiln_value hzr = add_opt(cx, onnx_op2(cx, "MatMul", *h, rzr), bzr);
        kiln_value z =
            apply_act(cx, &r->f[0],
                      clipped(cx, r, onnx_op2(cx, "Add", gate(cx, x, 0, H), gate(cx, hzr, 0, H))));
        kiln_value rg =
            apply_act(cx, &r->f[0],
                      clipped(cx, r, onnx_op2(cx, "Add", gate(cx, x, 1, H), gate(cx, hzr, 1, H))));
        kiln_value hh;
        if (r->lbr)
            hh = onnx_op2(cx, "Mul", rg, add_opt(cx, onnx_op2(cx, "MatMul", *h, rh), bh));
        else
            hh = add_opt(cx, onnx_op2(cx, "MatMul", onnx_op2(cx, "Mul", rg, *h), rh), bh);
        kiln_value ht =
            apply_act(cx, &r->f[1], clipped(cx, r, onnx_op2(cx, "Add", gate(cx, x, 2, H), hh)));
        /* (1 - z) * ht + z * h = ht + z * (h - ht) */
        hn = onnx_op2(cx, "Add", ht, onnx_op2(cx, "Mul", z, onnx_op2(cx, "Sub", *h, ht)));
    }
    kiln_value y = hn;
    if (kiln_value_ok(r->lens)) {
        /* steps at or past a sequence's length keep its state, write zeros */
        int64_t tt = t;
        kiln_value live = onnx_op2(cx, "Less", onnx_const_ints(cx, &tt, 1), r->lens);
        kiln_value w[3] = {live, hn, *h};
        hn = onnx_op(cx, "Where", w, 3, NULL);
        if (kiln_value_ok(cn)) {
            kiln_value wc[3] = {live, cn, *c};
            cn = onnx_op(cx, "Where", wc, 3, NULL);
        }
        kiln_value wy[3] = {live, y, onnx_scalar_like(cx, y, 0)};
        y = onnx_op(cx, "Where", wy, 3, NULL);
    }
    *h = hn;
    if (kiln_value_ok(cn)) *c = cn;
    return y;
}

/* ---- the converter ---- */

static bool want(const Onnx__NodeProto *n, int nout, int k)
{
    return k < nout && k < (int)n->n_output && *n->output[k];
}

/* Checks that input i (if given) is static of the expected shape. */
static int check_shape(onnx_ctx *cx, const kiln_value *in, int nin, int i, const char *what,
                       kiln_dtype dt, const int64_t *dims, int rank)
{
    if (!onnx_has(in, nin, i)) return KILN_OK;
    const ir_type *t = onnx_type(cx, in[i]);
    bool ok = t->rank == rank && (dt == 0 || t->dtype == dt);
    for (int k = 0; ok && k < rank; k++) ok = t->dims[k] == dims[k];
    if (ok) return KILN_OK;
    char want_s[96], got_s[96];
    int p = 0;
    for (int k = 0; k < rank && p < 80; k++)
        p += snprintf(want_s + p, sizeof want_s - (size_t)p, "%s%lld", k ? "," : "",
                      (long long)dims[k]);
    if (!rank) want_s[0] = 0;
    ir_type_str(t, got_s, sizeof got_s);
    return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "input %s is %s; expected %s[%s]", what, got_s,
                      dt ? kiln_dtype_name(dt) : "", want_s);
}

static int cv_recurrent(onnx_ctx *cx, const Onnx__NodeProto *n, const kiln_value *in, int nin,
                        kiln_value *out, int nout, int kind)
{
    static const char *const names[8] = {"X",         "W",         "R", "B", "sequence_lens",
                                         "initial_h", "initial_c", "P"};
    int ngates = kind == RNN_PLAIN ? 1 : kind == RNN_GRU ? 3 : 4;
    int maxin = kind == RNN_LSTM ? 8 : 6;
    if (nin > maxin)
        return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "%d inputs; %s takes at most %d", nin,
                          n->op_type, maxin);
    for (int i = 0; i < 3; i++)
        if (!onnx_has(in, nin, i))
            return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "input %s is missing", names[i]);
    for (int i = 0; i < nin; i++) {
        if (!onnx_has(in, nin, i)) continue;
        const ir_type *t = onnx_type(cx, in[i]);
        if (!ir_type_is_static(t)) {
            char s[96];
            ir_type_str(t, s, sizeof s);
            return onnx_error(cx, KILN_ERR_UNIMPLEMENTED,
                              "input %s is %s; recurrent ops are unrolled and need static shapes",
                              names[i], s);
        }
    }
    const ir_type *tx = onnx_type(cx, in[0]);
    kiln_dtype dt = tx->dtype;
    if (dt != KILN_F32 && dt != KILN_F64 && dt != KILN_F16 && dt != KILN_BF16)
        return onnx_error(cx, KILN_ERR_UNIMPLEMENTED, "X has dtype %s; %s needs a float type",
                          kiln_dtype_name(dt), n->op_type);
    if (tx->rank != 3)
        return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "X has rank %d, not 3", tx->rank);
    int64_t layout = cx->opset >= 14 ? onnx_attr_int(n, "layout", 0) : 0;
    if (layout != 0 && layout != 1)
        return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "layout %lld is not 0 or 1",
                          (long long)layout);
    char dir[16];
    onnx_attr_string(n, "direction", "forward", dir, sizeof dir);
    int ndir = !strcmp(dir, "bidirectional") ? 2 : 1;
    bool reverse = !strcmp(dir, "reverse");
    if (ndir == 1 && !reverse && strcmp(dir, "forward"))
        return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT,
                          "direction '%s' is not forward, reverse "
                          "or bidirectional",
                          dir);
    const int64_t perm3[3] = {1, 0, 2};
    kiln_value x = layout ? transpose(cx, in[0], perm3, 3) : in[0];
    int64_t S = tx->dims[layout ? 1 : 0], Bt = tx->dims[layout ? 0 : 1], I = tx->dims[2];
    const ir_type *tr = onnx_type(cx, in[2]);
    int64_t H = onnx_attr_int(n, "hidden_size", tr->rank == 3 ? tr->dims[2] : 0);
    if (H < 1 || H > ((int64_t)1 << 30))
        return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "hidden_size %lld is not positive",
                          (long long)H);
    if (S < 1)
        return onnx_error(cx, KILN_ERR_UNIMPLEMENTED, "sequence length %lld: nothing to unroll",
                          (long long)S);
    if (S > 65536)
        return onnx_error(cx, KILN_ERR_UNIMPLEMENTED,
                          "sequence length %lld is too long to unroll (at most 65536)",
                          (long long)S);
    int64_t G = ngates * H;
    {
        int64_t dw[3] = {ndir, G, I}, dr[3] = {ndir, G, H}, db[2] = {ndir, 2 * G}, dl[1] = {Bt},
                dh[3] = {ndir, Bt, H}, dp[2] = {ndir, 3 * H};
        if (layout) dh[0] = Bt, dh[1] = ndir;
        if (check_shape(cx, in, nin, 1, "W", dt, dw, 3) ||
            check_shape(cx, in, nin, 2, "R", dt, dr, 3) ||
            check_shape(cx, in, nin, 3, "B", dt, db, 2) ||
            check_shape(cx, in, nin, 4, "sequence_lens", 0, dl, 1) ||
            check_shape(cx, in, nin, 5, "initial_h", dt, dh, 3) ||
            (kind == RNN_LSTM && (check_shape(cx, in, nin, 6, "initial_c", dt, dh, 3) ||
                                  check_shape(cx, in, nin, 7, "P", dt, dp, 2))))
            return cx->st->code;
    }
    rnn_act acts[6];
    if (parse_acts(cx, n, kind, ndir, acts)) return cx->st->code;

    /* sequence lengths: masking unless known to be all full */
    kiln_value lens = kiln_value_invalid();
    if (onnx_has(in, nin, 4)) {
        const ir_type *tl = onnx_type(cx, in[4]);
        if (tl->dtype != KILN_I32 && tl->dtype != KILN_I64)
            return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT,
                              "sequence_lens has dtype %s, not int32", kiln_dtype_name(tl->dtype));
        const kiln_tensor *lt = onnx_value_tensor(cx, in[4]);
        bool full = lt != NULL;
        for (int64_t b = 0; lt && b < Bt; b++) {
            int64_t v = (int64_t)ir_load_f64(lt->dtype, lt->data, (size_t)b);
            if (v < 0 || v > S)
                return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT,
                                  "sequence_lens[%lld] = %lld is outside [0, %lld]", (long long)b,
                                  (long long)v, (long long)S);
            if (v != S) full = false;
        }
        if (!full) {
            int64_t d2[2] = {Bt, 1};
            lens = onnx_reshape(cx, onnx_cast(cx, in[4], KILN_I64), d2, 2);
        }
    }
    rnn_dir r = {.kind = kind, .dt = dt, .seq = S, .batch = Bt, .hidden = H, .lens = lens};
    r.clip = onnx_attr(n, "clip") != NULL;
    r.clipv = onnx_attr_float(n, "clip", 0);
    if (r.clip && !(r.clipv >= 0))
        return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "clip %g is negative", r.clipv);
    r.input_forget = kind == RNN_LSTM && onnx_attr_int(n, "input_forget", 0) != 0;
    r.lbr = kind == RNN_GRU && onnx_attr_int(n, "linear_before_reset", 0) != 0;

    kiln_value h0 = onnx_has(in, nin, 5) ? (layout ? transpose(cx, in[5], perm3, 3) : in[5])
                                         : kiln_value_invalid();
    kiln_value c0 = kind == RNN_LSTM && onnx_has(in, nin, 6)
                        ? (layout ? transpose(cx, in[6], perm3, 3) : in[6])
                        : kiln_value_invalid();
    kiln_value *ys = ir_malloc(sizeof(kiln_value) * (size_t)S);
    if (!ys) return onnx_error(cx, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    kiln_value ydir[2], hdir[2], cdir[2];
    const int64_t t2[2] = {1, 0};
    bool wy = want(n, nout, 0);
    for (int d = 0; d < ndir && !onnx_failed(cx); d++) {
        r.f = &acts[d * (kind + 1)];
        kiln_value wt = transpose(cx, pick(cx, in[1], d), t2, 2);
        r.rt = transpose(cx, pick(cx, in[2], d), t2, 2);
        r.xwb = onnx_op2(cx, "MatMul", x, wt);
        r.rb = kiln_value_invalid();
        if (onnx_has(in, nin, 3)) {
            kiln_value bd = pick(cx, in[3], d);
            r.xwb = onnx_op2(cx, "Add", r.xwb, slice_axis(cx, bd, 0, 0, G));
            r.rb = slice_axis(cx, bd, 0, G, 2 * G);
        }
        r.p = kind == RNN_LSTM && onnx_has(in, nin, 7) ? pick(cx, in[7], d) : kiln_value_invalid();
        kiln_value h = kiln_value_ok(h0) ? pick(cx, h0, d) : zeros(cx, dt, Bt, H);
        kiln_value c = kind != RNN_LSTM    ? kiln_value_invalid()
                       : kiln_value_ok(c0) ? pick(cx, c0, d)
                                           : zeros(cx, dt, Bt, H);
        bool back = reverse || d == 1;
        for (int64_t k = 0; k < S && !onnx_failed(cx); k++) {
            int64_t t = back ? S - 1 - k : k;
            int64_t d4[4] = {1, 1, Bt, H};
            kiln_value y = rnn_step(cx, &r, t, &h, &c);
            if (wy) ys[t] = onnx_reshape(cx, y, d4, 4);
        }
        if (wy && !onnx_failed(cx)) ydir[d] = concat(cx, ys, (int)S, 0);
        int64_t d3[3] = {1, Bt, H};
        hdir[d] = onnx_reshape(cx, h, d3, 3);
        if (kind == RNN_LSTM) cdir[d] = onnx_reshape(cx, c, d3, 3);
    }
    ir_free(ys);
    if (onnx_failed(cx)) return cx->st->code;
    if (wy) {
        kiln_value y = concat(cx, ydir, ndir, 1); /* [S, D, B, H] */
        const int64_t p4[4] = {2, 0, 1, 3};
        out[0] = layout ? transpose(cx, y, p4, 4) : y;
    }
    if (want(n, nout, 1)) {
        kiln_value yh = concat(cx, hdir, ndir, 0);
        out[1] = layout ? transpose(cx, yh, perm3, 3) : yh;
    }
    if (kind == RNN_LSTM && want(n, nout, 2)) {
        kiln_value yc = concat(cx, cdir, ndir, 0);
        out[2] = layout ? transpose(cx, yc, perm3, 3) : yc;
    }
    return onnx_failed(cx) ? cx->st->code : KILN_OK;
}

ONNX_CONV(cv_rnn) { return cv_recurrent(cx, n, in, nin, out, nout, RNN_PLAIN); }
ONNX_CONV(cv_gru) { return cv_recurrent(cx, n, in, nin, out, nout, RNN_GRU); }
ONNX_CONV(cv_lstm) { return cv_recurrent(cx, n, in, nin, out, nout, RNN_LSTM); }
