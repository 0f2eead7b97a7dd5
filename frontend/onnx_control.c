/* onnx_control.c -- ONNX control flow (If, Scan, Loop) imported into kiln's
 * static graphs: an If whose condition folds to a constant becomes its
 * chosen branch, one decided at run time becomes both branches and a
 * Where; Scan and Loop are unrolled (their iteration counts are static),
 * each iteration an inlined copy of the body (onnx_import_subgraph). */
#include <stdio.h>
#include <string.h>

#include "onnx_internal.h"

#define MAXAX 64 /* the most scan inputs or outputs whose axes are listed */

static const Onnx__GraphProto *graph_attr(onnx_ctx *cx, const Onnx__NodeProto *n, const char *name)
{
    const Onnx__AttributeProto *a = onnx_attr(n, name);
    if (!a || !a->g) {
        onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "the graph attribute '%s' is missing", name);
        return NULL;
    }
    return a->g;
}

static bool same_type(const ir_type *a, const ir_type *b)
{
    if (a->dtype != b->dtype || a->rank != b->rank) return false;
    for (int i = 0; i < a->rank; i++)
        if (a->dims[i] != b->dims[i] || a->dims[i] < 0) return false;
    return true;
}

/* ---- If ---- */

/* Both branches, then out[k] = Where(cond, then[k], else[k]). */
static int if_select(onnx_ctx *cx, kiln_value cond, const Onnx__GraphProto *tg,
                     const Onnx__GraphProto *eg, kiln_value *out, int nout)
{
    const ir_type *ct = onnx_type(cx, cond);
    char b1[IR_TYPE_STR_MAX], b2[IR_TYPE_STR_MAX];
    if (ct->dtype != KILN_BOOL || ir_shape_numel(ct->rank, ct->dims) != 1)
        return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "the condition is %s; If takes one bool",
                          ir_type_str(ct, b1, sizeof b1));
    kiln_value *tv = ir_calloc((size_t)nout * 2 + 1, sizeof *tv);
    if (!tv) return onnx_error(cx, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    kiln_value *ev = tv + nout;
    int rc = onnx_import_subgraph(cx, tg, "then_branch", NULL, 0, tv, nout);
    if (!rc) rc = onnx_import_subgraph(cx, eg, "else_branch", NULL, 0, ev, nout);
    /* A [1] condition would broadcast the outputs to rank 1: make it []. */
    int64_t scalar_shape[1] = {0};
    kiln_value c = cond;
    if (!rc && ct->rank) c = onnx_reshape(cx, cond, scalar_shape, 0);
    for (int k = 0; k < nout && !rc; k++) {
        const ir_type *a = onnx_type(cx, tv[k]), *b = onnx_type(cx, ev[k]);
        if (!same_type(a, b)) {
            rc = onnx_error(cx, KILN_ERR_UNIMPLEMENTED,
                            "the condition is computed at run time and output %d differs between "
                            "the branches (then %s, else %s); kiln selects between branches only "
                            "when their outputs have the same static dtype and shape",
                            k, ir_type_str(a, b1, sizeof b1), ir_type_str(b, b2, sizeof b2));
            break;
        }
        kiln_value w[3] = {c, tv[k], ev[k]};
        out[k] = onnx_op(cx, "Where", w, 3, NULL);
        if (onnx_failed(cx)) rc = cx->st->code;
    }
    ir_free(tv);
    return rc;
}

ONNX_CONV(cv_if)
{
    const Onnx__GraphProto *tg = graph_attr(cx, n, "then_branch");
    const Onnx__GraphProto *eg = tg ? graph_attr(cx, n, "else_branch") : NULL;
    if (!eg) return cx->st->code;
    if (!onnx_has(in, nin, 0))
        return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "the condition is missing");
    const kiln_tensor *t = onnx_value_tensor(cx, in[0]);
    if (!t) return if_select(cx, in[0], tg, eg, out, nout);
    if (t->size != 1)
        return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT,
                          "the condition holds %zu values; If takes one", t->size);
    bool c = ir_load_f64(t->dtype, t->data, 0) != 0;
    return onnx_import_subgraph(cx, c ? tg : eg, c ? "then_branch" : "else_branch", NULL, 0, out,
                                nout);
}

/* ---- shared by Scan and Loop ---- */

/* x[idx] along axis, without that axis. */
static kiln_value take(onnx_ctx *cx, kiln_value x, int axis, int64_t idx)
{
    kiln_attrs *a = onnx_bag(cx);
    if (!a) return kiln_value_invalid();
    int64_t s = idx, e = idx + 1, ax = axis;
    kiln_attrs_ints(a, "starts", &s, 1);
    kiln_attrs_ints(a, "ends", &e, 1);
    kiln_attrs_ints(a, "axes", &ax, 1);
    kiln_value r = onnx_op(cx, "Slice", &x, 1, a);
    kiln_attrs_free(a);
    return onnx_op_ints(cx, "Squeeze", r, "axes", &ax, 1);
}

/* v[0..count) stacked along a new axis (negative: from the end), in
 * reverse order when `reverse`. */
static kiln_value stack(onnx_ctx *cx, const kiln_value *v, int count, int64_t axis, bool reverse)
{
    if (onnx_failed(cx)) return kiln_value_invalid();
    int r = onnx_type(cx, v[0])->rank;
    if (axis < -(r + 1) || axis > r) {
        onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "output axis %lld is out of range for rank %d",
                   (long long)axis, r + 1);
        return kiln_value_invalid();
    }
    if (axis < 0) axis += r + 1;
    kiln_value *u = ir_malloc(sizeof(kiln_value) * (size_t)count);
    if (!u) {
        onnx_error(cx, KILN_ERR_OUT_OF_MEMORY, "out of memory");
        return kiln_value_invalid();
    }
    for (int i = 0; i < count; i++)
        u[i] = onnx_op_ints(cx, "Unsqueeze", v[reverse ? count - 1 - i : i], "axes", &axis, 1);
    kiln_value res = u[0];
    if (count > 1 && !onnx_failed(cx)) {
        kiln_attrs *a = onnx_bag(cx);
        if (a) {
            kiln_attrs_int(a, "axis", axis);
            res = onnx_op(cx, "Concat", u, count, a);
            kiln_attrs_free(a);
        }
    }
    ir_free(u);
    return onnx_failed(cx) ? kiln_value_invalid() : res;
}

/* An int-list attribute of exactly `count` entries into v (def when the
 * attribute is absent). */
static int axes_attr(onnx_ctx *cx, const Onnx__NodeProto *n, const char *name, int count,
                     int64_t def, int64_t *v)
{
    int na;
    const int64_t *a = onnx_attr_ints(n, name, &na);
    if (na >= 0 && na != count)
        return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "'%s' has %d entries; %d expected", name,
                          na, count);
    for (int i = 0; i < count; i++) v[i] = na >= 0 ? a[i] : def;
    return KILN_OK;
}

/* ---- Scan ---- */

typedef struct {
    const Onnx__GraphProto *body;
    int nstate, nscan, nscan_out;
    int64_t in_axes[MAXAX], in_dirs[MAXAX], out_axes[MAXAX], out_dirs[MAXAX];
} scan_spec;

/* One scan over states[nstate] and scans[nscan] (opset 9 form): the final
 * states into out[0..nstate), the stacked scan outputs after them. */
static int scan_unroll(onnx_ctx *cx, const scan_spec *sp, const kiln_value *states,
                       const kiln_value *scans, kiln_value *out)
{
    int64_t len = -1;
    int axes[MAXAX];
    for (int j = 0; j < sp->nscan; j++) {
        const ir_type *t = onnx_type(cx, scans[j]);
        int64_t ax = sp->in_axes[j];
        char b[IR_TYPE_STR_MAX];
        if (ax < -t->rank || ax >= t->rank)
            return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT,
                              "scan input %d (%s): axis %lld is out of range", j,
                              ir_type_str(t, b, sizeof b), (long long)ax);
        axes[j] = (int)(ax < 0 ? ax + t->rank : ax);
        int64_t d = t->dims[axes[j]];
        if (d < 0)
            return onnx_error(cx, KILN_ERR_UNIMPLEMENTED,
                              "scan input %d (%s): the scanned axis %d has no static length; kiln "
                              "unrolls Scan",
                              j, ir_type_str(t, b, sizeof b), axes[j]);
        if (len >= 0 && d != len)
            return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT,
                              "scan input %d (%s) has %lld steps along axis %d; the first has %lld",
                              j, ir_type_str(t, b, sizeof b), (long long)d, axes[j],
                              (long long)len);
        len = d;
    }
    if (len <= 0)
        return onnx_error(cx, KILN_ERR_UNIMPLEMENTED, "a scan of %lld steps is not supported",
                          (long long)len);
    if ((int64_t)sp->body->n_node * len > ONNX_MAX_UNROLL_NODES)
        return onnx_error(cx, KILN_ERR_UNIMPLEMENTED,
                          "unrolling %lld steps of a %zu-node body exceeds the limit of %d nodes",
                          (long long)len, sp->body->n_node, ONNX_MAX_UNROLL_NODES);
    int nb_in = sp->nstate + sp->nscan, nb_out = sp->nstate + sp->nscan_out;
    size_t nper = (size_t)sp->nscan_out * (size_t)len;
    kiln_value *bin = ir_malloc(sizeof(kiln_value) * ((size_t)nb_in + (size_t)nb_out + nper + 1));
    if (!bin) return onnx_error(cx, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    kiln_value *bout = bin + nb_in, *per = bout + nb_out; /* per[k * len + t] */
    int rc = KILN_OK;
    for (int s = 0; s < sp->nstate; s++) bin[s] = states[s];
    for (int64_t t = 0; t < len && !rc; t++) {
        for (int j = 0; j < sp->nscan; j++)
            bin[sp->nstate + j] = take(cx, scans[j], axes[j], sp->in_dirs[j] ? len - 1 - t : t);
        if (onnx_failed(cx)) {
            rc = cx->st->code;
            break;
        }
        rc = onnx_import_subgraph(cx, sp->body, "body", bin, nb_in, bout, nb_out);
        for (int s = 0; s < sp->nstate && !rc; s++) bin[s] = bout[s];
        for (int k = 0; k < sp->nscan_out && !rc; k++)
            per[(size_t)k * (size_t)len + (size_t)t] = bout[sp->nstate + k];
    }
    for (int s = 0; s < sp->nstate && !rc; s++) out[s] = bin[s];
    for (int k = 0; k < sp->nscan_out && !rc; k++) {
        out[sp->nstate + k] = stack(cx, per + (size_t)k * (size_t)len, (int)len, sp->out_axes[k],
                                    sp->out_dirs[k] != 0);
        if (onnx_failed(cx)) rc = cx->st->code;
    }
    ir_free(bin);
    return rc;
}

/* Opset 8: a leading batch axis on every state and scan input, and
 * sequence_lens (which must be absent or the full length). Each batch
 * entry is scanned on its own and the results are stacked. */
static int scan_batched(onnx_ctx *cx, const scan_spec *sp, const kiln_value *in, int nin,
                        kiln_value *out, int nout)
{
    const kiln_value *st = in + 1, *sc = in + 1 + sp->nstate;
    int64_t batch = -1;
    char b[IR_TYPE_STR_MAX];
    for (int i = 0; i < sp->nstate + sp->nscan; i++) {
        const ir_type *t = onnx_type(cx, st[i]);
        if (t->rank < 1 || t->dims[0] < 0 || (batch >= 0 && t->dims[0] != batch))
            return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT,
                              "input %d (%s) has no static batch axis of the common length", i + 1,
                              ir_type_str(t, b, sizeof b));
        batch = t->dims[0];
    }
    if (batch <= 0)
        return onnx_error(cx, KILN_ERR_UNIMPLEMENTED, "an empty batch is not supported");
    if (onnx_has(in, nin, 0)) {
        const kiln_tensor *lens = onnx_value_tensor(cx, in[0]);
        const ir_type *t0 = onnx_type(cx, sc[0]);
        int64_t full = t0->rank > 1 ? t0->dims[1] : -1;
        bool ok = lens != NULL && ir_dtype_is_int(lens->dtype);
        for (size_t i = 0; ok && i < lens->size; i++)
            ok = ir_load_i64(lens->dtype, lens->data, i) == full;
        if (!ok)
            return onnx_error(cx, KILN_ERR_UNIMPLEMENTED,
                              "sequence_lens must be a constant equal to the full sequence length "
                              "(%lld) for kiln",
                              (long long)full);
    }
    size_t nb = (size_t)batch;
    int nio = sp->nstate + sp->nscan;
    kiln_value *buf = ir_malloc(sizeof(kiln_value) * ((size_t)nio + (size_t)nout * (nb + 1) + 1));
    if (!buf) return onnx_error(cx, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    kiln_value *one = buf + nio, *res = one + nout; /* res[k * batch + i] */
    int rc = KILN_OK;
    for (int64_t i = 0; i < batch && !rc; i++) {
        for (int j = 0; j < nio; j++) buf[j] = take(cx, st[j], 0, i);
        if (onnx_failed(cx)) {
            rc = cx->st->code;
            break;
        }
        rc = scan_unroll(cx, sp, buf, buf + sp->nstate, one);
        for (int k = 0; k < nout && !rc; k++) res[(size_t)k * nb + (size_t)i] = one[k];
    }
    for (int k = 0; k < nout && !rc; k++) {
        out[k] = stack(cx, res + (size_t)k * nb, (int)batch, 0, false);
        if (onnx_failed(cx)) rc = cx->st->code;
    }
    ir_free(buf);
    return rc;
}

ONNX_CONV(cv_scan)
{
    scan_spec sp = {.body = graph_attr(cx, n, "body")};
    if (!sp.body) return cx->st->code;
    bool v8 = cx->opset < 9;
    int first = v8 ? 1 : 0;
    int64_t nscan = onnx_attr_int(n, "num_scan_inputs", -1);
    if (nscan < 1 || nscan > MAXAX || nscan > nin - first)
        return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT,
                          "num_scan_inputs is %lld with %d inputs (at most %d scan inputs)",
                          (long long)nscan, nin, MAXAX);
    sp.nscan = (int)nscan;
    sp.nstate = nin - first - sp.nscan;
    sp.nscan_out = nout - sp.nstate;
    if (sp.nscan_out < 0 || sp.nscan_out > MAXAX)
        return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT,
                          "%d outputs for %d state variables (at most %d scan outputs)", nout,
                          sp.nstate, MAXAX);
    for (int i = first; i < nin; i++)
        if (!onnx_has(in, nin, i))
            return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "input %d is missing", i);
    if (v8) {
        if (axes_attr(cx, n, "directions", sp.nscan, 0, sp.in_dirs)) return cx->st->code;
        memset(sp.in_axes, 0, sizeof sp.in_axes);
        memset(sp.out_axes, 0, sizeof sp.out_axes);
        memset(sp.out_dirs, 0, sizeof sp.out_dirs);
        return scan_batched(cx, &sp, in, nin, out, nout);
    }
    if (axes_attr(cx, n, "scan_input_axes", sp.nscan, 0, sp.in_axes) ||
        axes_attr(cx, n, "scan_input_directions", sp.nscan, 0, sp.in_dirs) ||
        axes_attr(cx, n, "scan_output_axes", sp.nscan_out, 0, sp.out_axes) ||
        axes_attr(cx, n, "scan_output_directions", sp.nscan_out, 0, sp.out_dirs))
        return cx->st->code;
    return scan_unroll(cx, &sp, in, in + sp.nstate, out);
}

/* ---- Loop ---- */

/* A constant scalar's truth, or -1 when v is computed at run time. */
static int const_truth(const onnx_ctx *cx, kiln_value v)
{
    const kiln_tensor *t = onnx_value_tensor(cx, v);
    if (!t || t->size != 1) return -1;
    return ir_load_f64(t->dtype, t->data, 0) != 0;
}

ONNX_CONV(cv_loop)
{
    const Onnx__GraphProto *body = graph_attr(cx, n, "body");
    if (!body) return cx->st->code;
    int ncarry = nin > 2 ? nin - 2 : 0;
    int nscan_out = nout - ncarry;
    if (nscan_out < 0)
        return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "%d outputs for %d loop-carried values",
                          nout, ncarry);
    for (int i = 2; i < nin; i++)
        if (!onnx_has(in, nin, i))
            return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "input %d is missing", i);
    int64_t trips = -1; /* -1: no trip count */
    if (onnx_has(in, nin, 0)) {
        const kiln_tensor *m = onnx_value_tensor(cx, in[0]);
        if (!m)
            return onnx_error(cx, KILN_ERR_UNIMPLEMENTED,
                              "Loop with a data-dependent trip count: M must be a constant for "
                              "kiln, which unrolls loops (it is computed at run time; give static "
                              "input shapes or constant inputs so it folds)");
        if (m->size != 1 || !ir_dtype_is_int(m->dtype))
            return onnx_error(cx, KILN_ERR_INVALID_ARGUMENT, "M must be one integer, is %s[%zu]",
                              kiln_dtype_name(m->dtype), m->size);
        trips = ir_load_i64(m->dtype, m->data, 0);
        if (trips < 0) trips = 0;
    }
    kiln_value cond = onnx_has(in, nin, 1) ? in[1] : onnx_scalar(cx, KILN_BOOL, 1);
    int go = const_truth(cx, cond);
    if (go < 0)
        return onnx_error(cx, KILN_ERR_UNIMPLEMENTED,
                          "Loop with a data-dependent trip count: the condition must be a "
                          "constant for kiln, which unrolls loops (it is computed at run time)");
    int nb_in = 2 + ncarry, nb_out = 1 + ncarry + nscan_out;
    int64_t cap =
        body->n_node ? ONNX_MAX_UNROLL_NODES / (int64_t)body->n_node : ONNX_MAX_UNROLL_NODES;
    if (trips > cap)
        return onnx_error(
            cx, KILN_ERR_UNIMPLEMENTED,
            "unrolling %lld iterations of a %zu-node body exceeds the limit of %d nodes",
            (long long)trips, body->n_node, ONNX_MAX_UNROLL_NODES);
    size_t capper = 0;
    kiln_value *bin = ir_malloc(sizeof(kiln_value) * (size_t)(nb_in + nb_out));
    kiln_value *per = NULL; /* per[t * nscan_out + k] */
    if (!bin) return onnx_error(cx, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    kiln_value *bout = bin + nb_in;
    for (int i = 0; i < ncarry; i++) bin[2 + i] = in[2 + i];
    int rc = KILN_OK;
    int64_t t = 0;
    for (; go && (trips < 0 || t < trips); t++) {
        if (t >= cap) {
            rc = onnx_error(cx, KILN_ERR_UNIMPLEMENTED,
                            "unrolling the loop passed %lld iterations of a %zu-node body (the "
                            "limit is %d nodes)",
                            (long long)t, body->n_node, ONNX_MAX_UNROLL_NODES);
            break;
        }
        bin[0] = onnx_scalar(cx, KILN_I64, (double)t);
        bin[1] = cond;
        if (onnx_failed(cx)) {
            rc = cx->st->code;
            break;
        }
        if ((rc = onnx_import_subgraph(cx, body, "body", bin, nb_in, bout, nb_out))) break;
        cond = bout[0];
        go = const_truth(cx, cond);
        if (go < 0) {
            rc = onnx_error(cx, KILN_ERR_UNIMPLEMENTED,
                            "Loop with a data-dependent trip count: the body's condition output "
                            "must be a constant for kiln, which unrolls loops (it is computed at "
                            "run time)");
            break;
        }
        for (int i = 0; i < ncarry; i++) bin[2 + i] = bout[1 + i];
        if (nscan_out) {
            size_t need = (size_t)(t + 1) * (size_t)nscan_out;
            if (need > capper) {
                size_t nc = capper ? capper * 2 : (size_t)nscan_out * 16;
                while (nc < need) nc *= 2;
                kiln_value *np = ir_realloc(per, sizeof(kiln_value) * nc);
                if (!np) {
                    rc = onnx_error(cx, KILN_ERR_OUT_OF_MEMORY, "out of memory");
                    break;
                }
                per = np;
                capper = nc;
            }
            for (int k = 0; k < nscan_out; k++)
                per[(size_t)t * (size_t)nscan_out + (size_t)k] = bout[1 + ncarry + k];
        }
    }
    if (!rc && nscan_out && t == 0)
        rc = onnx_error(cx, KILN_ERR_UNIMPLEMENTED,
                        "the loop runs no iteration, so its scan outputs have no static shape");
    for (int i = 0; i < ncarry && !rc; i++) out[i] = bin[2 + i];
    kiln_value *col = NULL;
    if (!rc && nscan_out) {
        col = ir_malloc(sizeof(kiln_value) * (size_t)t);
        if (!col) rc = onnx_error(cx, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    }
    for (int k = 0; k < nscan_out && !rc; k++) {
        for (int64_t i = 0; i < t; i++) col[i] = per[(size_t)i * (size_t)nscan_out + (size_t)k];
        out[ncarry + k] = stack(cx, col, (int)t, 0, false);
        if (onnx_failed(cx)) rc = cx->st->code;
    }
    ir_free(col);
    ir_free(per);
    ir_free(bin);
    return rc;
}
