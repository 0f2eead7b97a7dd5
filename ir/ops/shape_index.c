/* shape_index.c -- data movement by index arithmetic: Slice (ONNX/numpy
 * semantics with clamping and negative steps), Gather (indices checked at
 * run time) and Pad (constant, reflect, edge; negative pads crop). The rest
 * of the shape family is in shape.c. Every dtype is supported: kernels copy
 * elements of kiln_dtype_size bytes. */
#include <string.h>

#include "../ir.h"

static bool attr_given(const ir_node *n, const char *name)
{
    const ir_attr *a = ir_node_attr(n, name);
    return a && a->kind != IR_ATTR_NONE;
}

static unsigned char *elem(void *base, size_t i, size_t esz) { return (unsigned char *)base + i * esz; }
static const unsigned char *celem(const void *base, size_t i, size_t esz)
{
    return (const unsigned char *)base + i * esz;
}

/* ---- Slice ---- */

static const ir_attrdef slice_attrs[] = {
    IR_ATTR_REQ("starts", IR_ATTR_INTS),
    IR_ATTR_REQ("ends", IR_ATTR_INTS),
    IR_ATTR_OPT("axes", IR_ATTR_INTS),
    IR_ATTR_OPT("steps", IR_ATTR_INTS),
};

/* Where the slice starts, its step and its length along each dim (start 0,
 * step 1, the whole dim where not sliced; length -1 for a symbolic dim). */
typedef struct {
    int64_t start[IR_MAX_RANK], step[IR_MAX_RANK], len[IR_MAX_RANK];
} slice_plan;

static int64_t clamp64(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : v > hi ? hi : v; }

/* ONNX Slice for one dim of concrete size dim: negative starts and ends
 * count from the end, then clamp to [0, dim] for positive steps and to
 * [0, dim-1] / [-1, dim-1] for negative ones. */
static void slice_dim(int64_t dim, int64_t s, int64_t e, int64_t step, int64_t *start, int64_t *len)
{
    *start = 0;
    *len = 0;
    if (dim == 0) return;
    if (s < 0) s += dim;
    if (e < 0) e += dim;
    if (step > 0) {
        s = clamp64(s, 0, dim);
        e = clamp64(e, 0, dim);
        if (e > s) *len = (e - s - 1) / step + 1;
    } else {
        s = clamp64(s, 0, dim - 1);
        e = clamp64(e, -1, dim - 1);
        uint64_t astep = (uint64_t)0 - (uint64_t)step; /* |step|, INT64_MIN included */
        if (s > e) *len = (int64_t)((uint64_t)(s - e - 1) / astep + 1);
    }
    *start = s;
}

/* Checks the attributes against x (errors through cx when it is not NULL)
 * and fills the plan. Returns 0 or -1. */
static int slice_plan_make(ir_infer_ctx *cx, const ir_node *node, const ir_type *x, slice_plan *p)
{
#define SLICE_FAIL(...) return cx ? ir_infer_error(cx, __VA_ARGS__) : -1
    int n, ne, na, ns;
    const int64_t *starts = ir_node_ints(node, "starts", &n);
    const int64_t *ends = ir_node_ints(node, "ends", &ne);
    const int64_t *axes = ir_node_ints(node, "axes", &na);
    const int64_t *steps = ir_node_ints(node, "steps", &ns);
    bool have_axes = attr_given(node, "axes"), have_steps = attr_given(node, "steps");
    if (ne != n) SLICE_FAIL("starts has %d entries but ends has %d", n, ne);
    if (have_axes && na != n) SLICE_FAIL("axes has %d entries but starts has %d", na, n);
    if (have_steps && ns != n) SLICE_FAIL("steps has %d entries but starts has %d", ns, n);
    if (!have_axes && n > x->rank)
        SLICE_FAIL("starts has %d entries but the input has rank %d", n, x->rank);
    for (int d = 0; d < x->rank; d++) {
        p->start[d] = 0;
        p->step[d] = 1;
        p->len[d] = x->dims[d];
    }
    bool seen[IR_MAX_RANK] = {false};
    for (int i = 0; i < n; i++) {
        int a = i;
        if (have_axes && !ir_norm_axis(axes[i], x->rank, &a))
            SLICE_FAIL("axes[%d] = %lld is out of range for rank %d", i, (long long)axes[i], x->rank);
        if (seen[a]) SLICE_FAIL("axes lists axis %d twice", a);
        seen[a] = true;
        int64_t step = have_steps ? steps[i] : 1;
        if (step == 0) SLICE_FAIL("steps[%d] is 0", i);
        p->step[a] = step;
        if (x->dims[a] < 0) p->len[a] = -1;
        else slice_dim(x->dims[a], starts[i], ends[i], step, &p->start[a], &p->len[a]);
    }
    return 0;
#undef SLICE_FAIL
}

int ir_slice_geometry(const ir_node *node, const ir_type *x, int64_t *start, int64_t *step, int64_t *len)
{
    slice_plan p;
    if (slice_plan_make(NULL, node, x, &p)) return -1;
    for (int d = 0; d < x->rank; d++) {
        start[d] = p.start[d];
        step[d] = p.step[d];
        len[d] = p.len[d];
    }
    return 0;
}

static int infer_slice(ir_infer_ctx *cx)
{
    slice_plan p;
    if (slice_plan_make(cx, cx->node, &cx->in[0], &p)) return -1;
    cx->out[0] = cx->in[0];
    memcpy(cx->out[0].dims, p.len, sizeof(int64_t) * (size_t)cx->in[0].rank);
    return 0;
}

static int kernel_slice(ir_kernel_ctx *kx)
{
    const kiln_tensor *x = kx->in[0];
    kiln_tensor *y = kx->out[0];
    ir_type xt;
    ir_tensor_type(x, &xt);
    slice_plan p;
    if (slice_plan_make(NULL, kx->node, &xt, &p))
        return ir_kernel_error(kx, KILN_ERR_INTERNAL, "attributes rejected at run time");
    int64_t xs[IR_MAX_RANK], st[IR_MAX_RANK], base = 0;
    ir_shape_strides(x->rank, x->dims, xs);
    for (int d = 0; d < x->rank; d++) {
        base += p.start[d] * xs[d];
        /* With one element along d the step is never taken (and may be huge). */
        st[d] = p.len[d] > 1 ? p.step[d] * xs[d] : 0;
    }
    ir_iter it;
    ir_iter_init(&it, y->rank, y->dims);
    ir_iter_add(&it, st);
    size_t esz = kiln_dtype_size(y->dtype);
    for (size_t i = 0; i < y->size; i++, ir_iter_next(&it))
        memcpy(elem(y->data, i, esz), celem(x->data, (size_t)(base + it.off[0]), esz), esz);
    return 0;
}

const ir_opdef ir_opdef_Slice = {
    .name = "Slice", .min_inputs = 1, .max_inputs = 1, .noutputs = 1,
    .attrs = slice_attrs, .nattrs = 4,
    .infer = infer_slice, .kernel = kernel_slice, .grad = ir_grad_Slice,
    .doc = "x[starts:ends:steps] along axes (ONNX clamping; negative indices and steps allowed).",
};

/* ---- Gather ---- */

static const ir_attrdef gather_attrs[] = {IR_ATTR_I("axis", 0)};

static int infer_gather(ir_infer_ctx *cx)
{
    const ir_type *x = &cx->in[0], *idx = &cx->in[1];
    if (x->rank == 0) return ir_infer_error(cx, "cannot gather from a scalar (rank 0)");
    if (ir_infer_require_dtypes(cx, 1, IR_DT_MASK(KILN_I32) | IR_DT_MASK(KILN_I64))) return -1;
    int64_t axis = ir_node_int(cx->node, "axis");
    int a;
    if (!ir_norm_axis(axis, x->rank, &a))
        return ir_infer_error(cx, "axis %lld is out of range for rank %d", (long long)axis, x->rank);
    int rank = x->rank - 1 + idx->rank;
    if (rank > IR_MAX_RANK)
        return ir_infer_error(cx, "the output would have rank %d, above the maximum %d", rank,
                              IR_MAX_RANK);
    ir_type *y = &cx->out[0];
    y->dtype = x->dtype;
    y->rank = 0;
    for (int d = 0; d < a; d++) y->dims[y->rank++] = x->dims[d];
    for (int d = 0; d < idx->rank; d++) y->dims[y->rank++] = idx->dims[d];
    for (int d = a + 1; d < x->rank; d++) y->dims[y->rank++] = x->dims[d];
    return 0;
}

static int kernel_gather(ir_kernel_ctx *kx)
{
    const kiln_tensor *x = kx->in[0], *idx = kx->in[1];
    kiln_tensor *y = kx->out[0];
    int a;
    ir_norm_axis(ir_node_int(kx->node, "axis"), x->rank, &a);
    int64_t dim = x->dims[a];
    /* Every index is checked, even when the output is empty. */
    for (size_t j = 0; j < idx->size; j++) {
        int64_t v = ir_load_i64(idx->dtype, idx->data, j);
        if (v < -dim || v >= dim)
            return ir_kernel_error(kx, KILN_ERR_INVALID_ARGUMENT,
                                   "index %lld (element %zu of the indices) is out of range for "
                                   "dim %d of size %lld",
                                   (long long)v, j, a, (long long)dim);
    }
    size_t esz = kiln_dtype_size(x->dtype), outer = 1, inner = 1;
    for (int d = 0; d < a; d++) outer *= (size_t)x->dims[d];
    for (int d = a + 1; d < x->rank; d++) inner *= (size_t)x->dims[d];
    if (inner == 0) return 0;
    size_t k = 0;
    for (size_t o = 0; o < outer; o++)
        for (size_t j = 0; j < idx->size; j++, k++) {
            int64_t v = ir_load_i64(idx->dtype, idx->data, j);
            if (v < 0) v += dim;
            memcpy(elem(y->data, k * inner, esz),
                   celem(x->data, (o * (size_t)dim + (size_t)v) * inner, esz), inner * esz);
        }
    return 0;
}

const ir_opdef ir_opdef_Gather = {
    .name = "Gather", .min_inputs = 2, .max_inputs = 2, .noutputs = 1,
    .attrs = gather_attrs, .nattrs = 1,
    .infer = infer_gather, .kernel = kernel_gather, .grad = ir_grad_Gather,
    .doc = "Gather(data, indices): takes entries of data along axis (i32/i64 indices, negative from the end).",
};

/* ---- Pad ---- */

enum { PAD_CONSTANT, PAD_REFLECT, PAD_EDGE };

static const ir_attrdef pad_attrs[] = {
    IR_ATTR_REQ("pads", IR_ATTR_INTS),
    IR_ATTR_S("mode", "constant"),
    IR_ATTR_F("value", 0.0),
};

static int pad_mode(const ir_node *node)
{
    const char *m = ir_node_string(node, "mode");
    if (!m) return -1;
    if (strcmp(m, "constant") == 0) return PAD_CONSTANT;
    if (strcmp(m, "reflect") == 0) return PAD_REFLECT;
    if (strcmp(m, "edge") == 0) return PAD_EDGE;
    return -1;
}

static bool add_ok(int64_t a, int64_t b, int64_t *r)
{
    if ((b > 0 && a > INT64_MAX - b) || (b < 0 && a < INT64_MIN - b)) return false;
    *r = a + b;
    return true;
}

/* Pads are checked against the input's own dims: a crop on one side does
 * not shrink what reflect or edge padding on the other side reads. */
static int infer_pad(ir_infer_ctx *cx)
{
    const ir_type *x = &cx->in[0];
    int mode = pad_mode(cx->node);
    if (mode < 0) {
        const char *m = ir_node_string(cx->node, "mode");
        return ir_infer_error(cx, "mode '%s' is not one of constant, reflect, edge", m ? m : "");
    }
    int n;
    const int64_t *pads = ir_node_ints(cx->node, "pads", &n);
    if (n != 2 * x->rank)
        return ir_infer_error(cx, "pads has %d entries; it needs 2 * rank = %d", n, 2 * x->rank);
    ir_type *y = &cx->out[0];
    *y = *x;
    for (int d = 0; d < x->rank; d++) {
        int64_t b = pads[d], e = pads[d + x->rank], dim = x->dims[d], r;
        if (dim < 0) {
            y->dims[d] = -1;
            continue;
        }
        if (!add_ok(dim, b, &r) || !add_ok(r, e, &r))
            return ir_infer_error(cx, "pads %lld and %lld on axis %d overflow", (long long)b,
                                  (long long)e, d);
        if (r < 0)
            return ir_infer_error(cx, "pads %lld and %lld crop more than the %lld elements of axis %d",
                                  (long long)b, (long long)e, (long long)dim, d);
        if (mode == PAD_REFLECT && ((b > 0 && b >= dim) || (e > 0 && e >= dim)))
            return ir_infer_error(cx,
                                  "reflect padding of axis %d needs pads smaller than its size "
                                  "%lld, got %lld and %lld",
                                  d, (long long)dim, (long long)b, (long long)e);
        if (mode == PAD_EDGE && (b > 0 || e > 0) && dim == 0)
            return ir_infer_error(cx, "edge padding of axis %d needs a non-empty dim", d);
        y->dims[d] = r;
    }
    return 0;
}

static int kernel_pad(ir_kernel_ctx *kx)
{
    const kiln_tensor *x = kx->in[0];
    kiln_tensor *y = kx->out[0];
    int mode = pad_mode(kx->node), n;
    const int64_t *pads = ir_node_ints(kx->node, "pads", &n);
    size_t esz = kiln_dtype_size(y->dtype);
    unsigned char fill[16] = {0};
    ir_store_f64(y->dtype, fill, 0, ir_node_float(kx->node, "value"));
    int64_t xs[IR_MAX_RANK];
    ir_shape_strides(x->rank, x->dims, xs);
    ir_iter it;
    ir_iter_init(&it, y->rank, y->dims);
    for (size_t i = 0; i < y->size; i++, ir_iter_next(&it)) {
        int64_t off = 0;
        bool inside = true;
        for (int d = 0; d < y->rank && inside; d++) {
            int64_t c = it.idx[d] - pads[d], dim = x->dims[d];
            if (c < 0 || c >= dim) {
                if (mode == PAD_CONSTANT) inside = false;
                else if (mode == PAD_EDGE) c = c < 0 ? 0 : dim - 1;
                else c = c < 0 ? -c : 2 * (dim - 1) - c;
            }
            off += c * xs[d];
        }
        memcpy(elem(y->data, i, esz), inside ? celem(x->data, (size_t)off, esz) : fill, esz);
    }
    return 0;
}

const ir_opdef ir_opdef_Pad = {
    .name = "Pad", .min_inputs = 1, .max_inputs = 1, .noutputs = 1,
    .attrs = pad_attrs, .nattrs = 3,
    .infer = infer_pad, .kernel = kernel_pad, .grad = ir_grad_Pad,
    .doc = "Pads (or, negative, crops) each dim: pads = [begins..., ends...]; mode constant, reflect or edge.",
};
