/* index.c -- ops that select, accumulate or place elements by index: TopK
 * (values and i64 indices of the k largest or smallest along an axis),
 * CumSum and CumProd (running sums and products along an axis), and the
 * ONNX element-wise gather/scatter family: GatherElements, ScatterElements,
 * ScatterND and OneHot. Indices are checked at run time: one outside its
 * dim is an error naming the index, never a read or write out of bounds.
 * Float data is accumulated in double and integers in int64 (wrapping), so
 * the compiled kernels (codegen/kernels/kk_index.c) agree exactly. */
#include <math.h>
#include <string.h>

#include "../ir.h"

/* Product of concrete dims[from..to) (kernels: shapes are concrete). */
static size_t span(const int64_t *dims, int from, int to)
{
    size_t p = 1;
    for (int i = from; i < to; i++) p *= (size_t)dims[i];
    return p;
}

static unsigned char *elem(void *base, size_t i, size_t esz)
{
    return (unsigned char *)base + i * esz;
}
static const unsigned char *celem(const void *base, size_t i, size_t esz)
{
    return (const unsigned char *)base + i * esz;
}

#define IDX_DTYPES (IR_DT_MASK(KILN_I32) | IR_DT_MASK(KILN_I64))

/* ---- TopK ---- */

static const ir_attrdef topk_attrs[] = {
    IR_ATTR_REQ("k", IR_ATTR_INT),
    IR_ATTR_I("axis", -1),
    IR_ATTR_I("largest", 1),
    IR_ATTR_I("sorted", 1),
};

static int infer_topk(ir_infer_ctx *cx)
{
    const ir_type *x = &cx->in[0];
    if (ir_infer_require_dtypes(cx, 0, IR_DT_NUMERIC)) return -1;
    if (x->rank == 0) return ir_infer_error(cx, "cannot take the top k of a scalar (rank 0)");
    int64_t axis = ir_node_int(cx->node, "axis"), k = ir_node_int(cx->node, "k");
    int a;
    if (!ir_norm_axis(axis, x->rank, &a))
        return ir_infer_error(cx, "axis %lld is out of range for rank %d", (long long)axis,
                              x->rank);
    if (k < 0) return ir_infer_error(cx, "k = %lld is negative", (long long)k);
    if (x->dims[a] >= 0 && k > x->dims[a])
        return ir_infer_error(cx, "k = %lld is larger than dim %d (size %lld)", (long long)k, a,
                              (long long)x->dims[a]);
    cx->out[0] = *x;
    cx->out[0].dims[a] = k;
    cx->out[1] = cx->out[0];
    cx->out[1].dtype = KILN_I64;
    return 0;
}

/* True when element i (value at index i of the line) goes before element j:
 * larger (smaller) first, NaN counting as larger than every number, and the
 * lower index first on ties. */
static bool topk_before(const kiln_tensor *x, size_t base, size_t stride, int64_t i, int64_t j,
                        bool largest)
{
    if (ir_dtype_is_float(x->dtype)) {
        double a = ir_load_f64(x->dtype, x->data, base + (size_t)i * stride);
        double b = ir_load_f64(x->dtype, x->data, base + (size_t)j * stride);
        bool na = a != a, nb = b != b;
        if (na || nb) {
            if (na && nb) return i < j;
            return largest ? na : nb;
        }
        if (a != b) return largest ? a > b : a < b;
        return i < j;
    }
    int64_t a = ir_int_order(x->dtype, ir_load_i64(x->dtype, x->data, base + (size_t)i * stride));
    int64_t b = ir_int_order(x->dtype, ir_load_i64(x->dtype, x->data, base + (size_t)j * stride));
    if (a != b) return largest ? a > b : a < b;
    return i < j;
}

static int kernel_topk(ir_kernel_ctx *kx)
{
    const kiln_tensor *x = kx->in[0];
    kiln_tensor *y = kx->out[0], *yi = kx->out[1];
    int a;
    ir_norm_axis(ir_node_int(kx->node, "axis"), x->rank, &a);
    int64_t k = ir_node_int(kx->node, "k"), n = x->dims[a];
    bool largest = ir_node_int(kx->node, "largest") != 0;
    size_t outer = span(x->dims, 0, a), inner = span(x->dims, a + 1, x->rank);
    if (k == 0 || outer == 0 || inner == 0) return 0;
    int64_t *best = ir_malloc(sizeof(int64_t) * (size_t)k);
    if (!best) return ir_kernel_error(kx, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    size_t esz = kiln_dtype_size(x->dtype);
    for (size_t o = 0; o < outer; o++)
        for (size_t in = 0; in < inner; in++) {
            size_t base = o * (size_t)n * inner + in;
            /* insertion into the sorted list of the best k so far */
            int64_t cnt = 0;
            for (int64_t i = 0; i < n; i++) {
                if (cnt == k && !topk_before(x, base, inner, i, best[k - 1], largest)) continue;
                int64_t p = cnt < k ? cnt++ : k - 1;
                while (p > 0 && topk_before(x, base, inner, i, best[p - 1], largest)) {
                    best[p] = best[p - 1];
                    p--;
                }
                best[p] = i;
            }
            size_t ybase = o * (size_t)k * inner + in;
            for (int64_t j = 0; j < k; j++) {
                size_t at = ybase + (size_t)j * inner;
                memcpy(elem(y->data, at, esz), celem(x->data, base + (size_t)best[j] * inner, esz),
                       esz);
                ((int64_t *)yi->data)[at] = best[j];
            }
        }
    ir_free(best);
    return 0;
}

const ir_opdef ir_opdef_TopK = {
    .name = "TopK", .min_inputs = 1, .max_inputs = 1, .noutputs = 2,
    .attrs = topk_attrs, .nattrs = 4,
    .infer = infer_topk, .kernel = kernel_topk, .grad = ir_grad_TopK,
    .doc = "The k largest (or smallest) values along axis and their i64 indices, best first "
           "(ties: lower index first; NaN counts as largest).",
};

/* ---- CumSum, CumProd ---- */

static const ir_attrdef cum_attrs[] = {
    IR_ATTR_REQ("axis", IR_ATTR_INT),
    IR_ATTR_I("exclusive", 0),
    IR_ATTR_I("reverse", 0),
};

static int infer_cum(ir_infer_ctx *cx)
{
    const ir_type *x = &cx->in[0];
    if (ir_infer_require_dtypes(cx, 0, IR_DT_NUMERIC)) return -1;
    int64_t axis = ir_node_int(cx->node, "axis");
    int a;
    if (x->rank == 0) return ir_infer_error(cx, "needs an input of rank >= 1, not a scalar");
    if (!ir_norm_axis(axis, x->rank, &a))
        return ir_infer_error(cx, "axis %lld is out of range for rank %d", (long long)axis,
                              x->rank);
    cx->out[0] = *x;
    return 0;
}

static int kernel_cum(ir_kernel_ctx *kx, bool prod)
{
    const kiln_tensor *x = kx->in[0];
    kiln_tensor *y = kx->out[0];
    int a;
    ir_norm_axis(ir_node_int(kx->node, "axis"), x->rank, &a);
    bool excl = ir_node_int(kx->node, "exclusive") != 0,
         rev = ir_node_int(kx->node, "reverse") != 0;
    int64_t n = x->dims[a];
    size_t outer = span(x->dims, 0, a), inner = span(x->dims, a + 1, x->rank);
    bool fl = ir_dtype_is_float(x->dtype);
    for (size_t o = 0; o < outer; o++)
        for (size_t in = 0; in < inner; in++) {
            double fa = prod ? 1 : 0;
            uint64_t ia = prod ? 1 : 0;
            for (int64_t s = 0; s < n; s++) {
                int64_t i = rev ? n - 1 - s : s;
                size_t at = (o * (size_t)n + (size_t)i) * inner + in;
                if (fl) {
                    double v = ir_load_f64(x->dtype, x->data, at);
                    if (excl) ir_store_f64(y->dtype, y->data, at, fa);
                    fa = prod ? fa * v : fa + v;
                    if (!excl) ir_store_f64(y->dtype, y->data, at, fa);
                } else {
                    uint64_t v = (uint64_t)ir_load_i64(x->dtype, x->data, at);
                    if (excl) ir_store_i64(y->dtype, y->data, at, (int64_t)ia);
                    ia = prod ? ia * v : ia + v;
                    if (!excl) ir_store_i64(y->dtype, y->data, at, (int64_t)ia);
                }
            }
        }
    return 0;
}

static int kernel_cumsum(ir_kernel_ctx *kx) { return kernel_cum(kx, false); }
static int kernel_cumprod(ir_kernel_ctx *kx) { return kernel_cum(kx, true); }

const ir_opdef ir_opdef_CumSum = {
    .name = "CumSum", .min_inputs = 1, .max_inputs = 1, .noutputs = 1,
    .attrs = cum_attrs, .nattrs = 3,
    .infer = infer_cum, .kernel = kernel_cumsum, .grad = ir_grad_CumSum,
    .doc = "Running sum along axis (exclusive: without the element itself; reverse: from the end).",
};

const ir_opdef ir_opdef_CumProd = {
    .name = "CumProd", .min_inputs = 1, .max_inputs = 1, .noutputs = 1,
    .attrs = cum_attrs, .nattrs = 3,
    .infer = infer_cum, .kernel = kernel_cumprod, .grad = ir_grad_CumProd,
    .doc = "Running product along axis (exclusive: without the element itself; reverse: from the end).",
};

/* ---- GatherElements, ScatterElements ---- */

static const ir_attrdef gather_el_attrs[] = {IR_ATTR_I("axis", 0)};
static const ir_attrdef scatter_el_attrs[] = {IR_ATTR_I("axis", 0), IR_ATTR_S("reduction", "none")};
static const ir_attrdef scatter_nd_attrs[] = {IR_ATTR_S("reduction", "none")};

enum { RED_NONE, RED_ADD, RED_MUL, RED_MAX, RED_MIN, RED_BAD };

static int reduction_kind(const char *s)
{
    static const char *const names[] = {"none", "add", "mul", "max", "min"};
    for (int i = 0; i < RED_BAD; i++)
        if (s && strcmp(s, names[i]) == 0) return i;
    return RED_BAD;
}

/* Checks data (input 0) against indices (input 1) for GatherElements and
 * ScatterElements: same rank, indices no larger than data off the axis. */
static int check_elements(ir_infer_ctx *cx, int *axis)
{
    const ir_type *x = &cx->in[0], *idx = &cx->in[1];
    if (ir_infer_require_dtypes(cx, 1, IDX_DTYPES)) return -1;
    if (x->rank == 0) return ir_infer_error(cx, "data must have rank >= 1, not be a scalar");
    int64_t axis_attr = ir_node_int(cx->node, "axis");
    if (!ir_norm_axis(axis_attr, x->rank, axis))
        return ir_infer_error(cx, "axis %lld is out of range for rank %d", (long long)axis_attr,
                              x->rank);
    if (idx->rank != x->rank)
        return ir_infer_error(cx, "indices have rank %d; data has rank %d (they must be equal)",
                              idx->rank, x->rank);
    for (int d = 0; d < x->rank; d++)
        if (d != *axis && x->dims[d] >= 0 && idx->dims[d] > x->dims[d])
            return ir_infer_error(
                cx, "indices dim %d (size %lld) is larger than data dim %d (size %lld)", d,
                (long long)idx->dims[d], d, (long long)x->dims[d]);
    return 0;
}

static int infer_gather_elements(ir_infer_ctx *cx)
{
    int a;
    if (check_elements(cx, &a)) return -1;
    cx->out[0] = cx->in[1];
    cx->out[0].dtype = cx->in[0].dtype;
    return 0;
}

/* The index at element j of idx, normalized for a dim of size dim; an
 * error naming it when it is out of range. */
static int load_index(ir_kernel_ctx *kx, const kiln_tensor *idx, size_t j, int axis, int64_t dim,
                      int64_t *out)
{
    int64_t v = ir_load_i64(idx->dtype, idx->data, j);
    if (v < -dim || v >= dim)
        return ir_kernel_error(kx, KILN_ERR_INVALID_ARGUMENT,
                               "index %lld (element %zu of the indices) is out of range for dim %d "
                               "of size %lld",
                               (long long)v, j, axis, (long long)dim);
    *out = v < 0 ? v + dim : v;
    return 0;
}

/* For element j of idx (walked by it), the element of data it addresses. */
static int element_target(ir_kernel_ctx *kx, const kiln_tensor *x, const kiln_tensor *idx,
                          const ir_iter *it, size_t j, int a, const int64_t *xs, size_t *at)
{
    int64_t v;
    if (load_index(kx, idx, j, a, x->dims[a], &v)) return -1;
    int64_t off = 0;
    for (int d = 0; d < x->rank; d++) off += (d == a ? v : it->idx[d]) * xs[d];
    *at = (size_t)off;
    return 0;
}

static int kernel_gather_elements(ir_kernel_ctx *kx)
{
    const kiln_tensor *x = kx->in[0], *idx = kx->in[1];
    kiln_tensor *y = kx->out[0];
    int a;
    ir_norm_axis(ir_node_int(kx->node, "axis"), x->rank, &a);
    int64_t xs[IR_MAX_RANK];
    ir_shape_strides(x->rank, x->dims, xs);
    size_t esz = kiln_dtype_size(x->dtype);
    ir_iter it;
    ir_iter_init(&it, idx->rank, idx->dims);
    for (size_t j = 0; j < idx->size; j++, ir_iter_next(&it)) {
        size_t at;
        if (element_target(kx, x, idx, &it, j, a, xs, &at)) return -1;
        memcpy(elem(y->data, j, esz), celem(x->data, at, esz), esz);
    }
    return 0;
}

const ir_opdef ir_opdef_GatherElements = {
    .name = "GatherElements", .min_inputs = 2, .max_inputs = 2, .noutputs = 1,
    .attrs = gather_el_attrs, .nattrs = 1,
    .infer = infer_gather_elements, .kernel = kernel_gather_elements, .grad = ir_grad_GatherElements,
    .doc = "GatherElements(data, indices): y[p] = data[p with p[axis] = indices[p]]; y has indices' shape.",
};

/* Combines update u into the element at of y (dtype of y) by the reduction. */
static void reduce_into(kiln_tensor *y, size_t at, const kiln_tensor *u, size_t j, int red)
{
    size_t esz = kiln_dtype_size(y->dtype);
    if (red == RED_NONE) {
        memcpy(elem(y->data, at, esz), celem(u->data, j, esz), esz);
        return;
    }
    if (ir_dtype_is_float(y->dtype)) {
        double a = ir_load_f64(y->dtype, y->data, at), b = ir_load_f64(u->dtype, u->data, j);
        double r = red == RED_ADD   ? a + b
                   : red == RED_MUL ? a * b
                   : red == RED_MAX ? (a >= b || a != a ? a : b)
                                    : (a <= b || a != a ? a : b);
        ir_store_f64(y->dtype, y->data, at, r);
    } else {
        int64_t a = ir_load_i64(y->dtype, y->data, at), b = ir_load_i64(u->dtype, u->data, j);
        int64_t r = red == RED_ADD   ? (int64_t)((uint64_t)a + (uint64_t)b)
                    : red == RED_MUL ? (int64_t)((uint64_t)a * (uint64_t)b)
                    : red == RED_MAX ? (ir_int_order(y->dtype, a) > ir_int_order(y->dtype, b) ? a : b)
                                     : (ir_int_order(y->dtype, a) < ir_int_order(y->dtype, b) ? a : b);
        ir_store_i64(y->dtype, y->data, at, r);
    }
}

static int check_reduction(ir_infer_ctx *cx)
{
    const char *r = ir_node_string(cx->node, "reduction");
    if (reduction_kind(r) == RED_BAD)
        return ir_infer_error(cx, "reduction '%s' is not one of none, add, mul, max, min",
                              r ? r : "");
    return 0;
}

static int infer_scatter_elements(ir_infer_ctx *cx)
{
    int a;
    if (check_elements(cx, &a) || check_reduction(cx)) return -1;
    const ir_type *idx = &cx->in[1], *u = &cx->in[2];
    if (u->dtype != cx->in[0].dtype)
        return ir_infer_error(cx, "updates are %s; data is %s (they must match)",
                              kiln_dtype_name(u->dtype), kiln_dtype_name(cx->in[0].dtype));
    bool same = u->rank == idx->rank;
    for (int d = 0; same && d < u->rank; d++)
        if (u->dims[d] >= 0 && idx->dims[d] >= 0 && u->dims[d] != idx->dims[d]) same = false;
    if (!same) return ir_infer_error(cx, "updates and indices must have the same shape");
    cx->out[0] = cx->in[0];
    return 0;
}

static int kernel_scatter_elements(ir_kernel_ctx *kx)
{
    const kiln_tensor *x = kx->in[0], *idx = kx->in[1], *u = kx->in[2];
    kiln_tensor *y = kx->out[0];
    int a;
    ir_norm_axis(ir_node_int(kx->node, "axis"), x->rank, &a);
    int red = reduction_kind(ir_node_string(kx->node, "reduction"));
    int64_t xs[IR_MAX_RANK];
    ir_shape_strides(x->rank, x->dims, xs);
    size_t nb = kiln_tensor_nbytes(x);
    if (nb) memcpy(y->data, x->data, nb);
    ir_iter it;
    ir_iter_init(&it, idx->rank, idx->dims);
    for (size_t j = 0; j < idx->size; j++, ir_iter_next(&it)) {
        size_t at;
        if (element_target(kx, x, idx, &it, j, a, xs, &at)) return -1;
        reduce_into(y, at, u, j, red);
    }
    return 0;
}

const ir_opdef ir_opdef_ScatterElements = {
    .name = "ScatterElements", .min_inputs = 3, .max_inputs = 3, .noutputs = 1,
    .attrs = scatter_el_attrs, .nattrs = 2,
    .infer = infer_scatter_elements, .kernel = kernel_scatter_elements, .grad = ir_grad_ScatterElements,
    .doc = "ScatterElements(data, indices, updates): a copy of data with y[p with p[axis] = "
           "indices[p]] = updates[p] (or combined by reduction add/mul/max/min), in index order.",
};

/* ---- ScatterND ---- */

static int infer_scatter_nd(ir_infer_ctx *cx)
{
    const ir_type *x = &cx->in[0], *idx = &cx->in[1], *u = &cx->in[2];
    if (check_reduction(cx) || ir_infer_require_dtypes(cx, 1, IDX_DTYPES)) return -1;
    if (u->dtype != x->dtype)
        return ir_infer_error(cx, "updates are %s; data is %s (they must match)",
                              kiln_dtype_name(u->dtype), kiln_dtype_name(x->dtype));
    if (x->rank == 0) return ir_infer_error(cx, "data must have rank >= 1, not be a scalar");
    if (idx->rank == 0) return ir_infer_error(cx, "indices must have rank >= 1, not be a scalar");
    int64_t m = idx->dims[idx->rank - 1];
    if (m < 0) return ir_infer_error(cx, "the last dim of indices must be known");
    if (m < 1 || m > x->rank)
        return ir_infer_error(
            cx, "the last dim of indices is %lld; it must be in [1, %d] (data's rank)",
            (long long)m, x->rank);
    int want = idx->rank - 1 + x->rank - (int)m;
    bool ok = u->rank == want;
    for (int d = 0; ok && d < want; d++) {
        int64_t e = d < idx->rank - 1 ? idx->dims[d] : x->dims[(int)m + d - (idx->rank - 1)];
        if (e >= 0 && u->dims[d] >= 0 && e != u->dims[d]) ok = false;
    }
    if (!ok)
        return ir_infer_error(cx, "updates must have shape indices.shape[:-1] + data.shape[%lld:]",
                              (long long)m);
    cx->out[0] = *x;
    return 0;
}

static int kernel_scatter_nd(ir_kernel_ctx *kx)
{
    const kiln_tensor *x = kx->in[0], *idx = kx->in[1], *u = kx->in[2];
    kiln_tensor *y = kx->out[0];
    int red = reduction_kind(ir_node_string(kx->node, "reduction"));
    int m = (int)idx->dims[idx->rank - 1];
    size_t nb = kiln_tensor_nbytes(x);
    if (nb) memcpy(y->data, x->data, nb);
    int64_t xs[IR_MAX_RANK];
    ir_shape_strides(x->rank, x->dims, xs);
    size_t slice = span(x->dims, m, x->rank), nidx = m ? idx->size / (size_t)m : 0;
    for (size_t t = 0; t < nidx; t++) {
        int64_t off = 0;
        for (int d = 0; d < m; d++) {
            int64_t v;
            if (load_index(kx, idx, t * (size_t)m + (size_t)d, d, x->dims[d], &v)) return -1;
            off += v * xs[d];
        }
        for (size_t e = 0; e < slice; e++) reduce_into(y, (size_t)off + e, u, t * slice + e, red);
    }
    return 0;
}

const ir_opdef ir_opdef_ScatterND = {
    .name = "ScatterND", .min_inputs = 3, .max_inputs = 3, .noutputs = 1,
    .attrs = scatter_nd_attrs, .nattrs = 1,
    .infer = infer_scatter_nd, .kernel = kernel_scatter_nd, .grad = ir_grad_ScatterND,
    .doc = "ScatterND(data, indices, updates): a copy of data where each index tuple (indices' last "
           "dim) gets its slice of updates (or combined by reduction add/mul/max/min), in order.",
};

/* ---- OneHot ---- */

static const ir_attrdef onehot_attrs[] = {IR_ATTR_REQ("depth", IR_ATTR_INT), IR_ATTR_I("axis", -1)};

static int infer_onehot(ir_infer_ctx *cx)
{
    const ir_type *idx = &cx->in[0], *v = &cx->in[1];
    if (ir_infer_require_dtypes(cx, 0, IR_DT_NUMERIC)) return -1;
    int64_t depth = ir_node_int(cx->node, "depth"), axis = ir_node_int(cx->node, "axis");
    if (depth < 1)
        return ir_infer_error(cx, "depth = %lld; it must be at least 1", (long long)depth);
    if (idx->rank >= IR_MAX_RANK)
        return ir_infer_error(cx, "the output would have rank %d, above the maximum %d",
                              idx->rank + 1, IR_MAX_RANK);
    if (ir_shape_numel(v->rank, v->dims) >= 0 && ir_shape_numel(v->rank, v->dims) != 2)
        return ir_infer_error(cx, "values must hold two elements [off, on]");
    int a;
    if (!ir_norm_axis(axis, idx->rank + 1, &a))
        return ir_infer_error(cx, "axis %lld is out of range for the output rank %d",
                              (long long)axis, idx->rank + 1);
    ir_type *y = &cx->out[0];
    y->dtype = v->dtype;
    y->rank = idx->rank + 1;
    for (int d = 0, k = 0; d < y->rank; d++) y->dims[d] = d == a ? depth : idx->dims[k++];
    return 0;
}

static int kernel_onehot(ir_kernel_ctx *kx)
{
    const kiln_tensor *idx = kx->in[0], *v = kx->in[1];
    kiln_tensor *y = kx->out[0];
    if (v->size != 2)
        return ir_kernel_error(kx, KILN_ERR_INVALID_ARGUMENT, "values hold %zu elements, not 2",
                               v->size);
    int a;
    ir_norm_axis(ir_node_int(kx->node, "axis"), y->rank, &a);
    int64_t depth = y->dims[a];
    size_t outer = span(y->dims, 0, a), inner = span(y->dims, a + 1, y->rank);
    size_t esz = kiln_dtype_size(y->dtype);
    for (size_t o = 0; o < outer; o++)
        for (int64_t c = 0; c < depth; c++)
            for (size_t in = 0; in < inner; in++) {
                int64_t k = ir_load_i64(idx->dtype, idx->data, o * inner + in);
                if (k < 0) k += depth;
                size_t at = (o * (size_t)depth + (size_t)c) * inner + in;
                memcpy(elem(y->data, at, esz), celem(v->data, k == c ? 1 : 0, esz), esz);
            }
    return 0;
}

const ir_opdef ir_opdef_OneHot = {
    .name = "OneHot", .min_inputs = 2, .max_inputs = 2, .noutputs = 1,
    .attrs = onehot_attrs, .nattrs = 2,
    .infer = infer_onehot, .kernel = kernel_onehot, .grad = ir_grad_OneHot,
    .doc = "OneHot(indices, values): a new axis of size depth holding values[1] where it equals the "
           "index (negative: from the end) and values[0] elsewhere (also for indices out of range).",
};

/* ---- GridSample ---- */

/* GridSample(X, grid): X is [N, C, D1..Dk], grid [N, O1..Ok, k] holding
 * normalized coordinates in [-1, 1], the last spatial dim first (x, y, z);
 * Y is [N, C, O1..Ok]. Each output point is interpolated from X by the
 * separable taps of each spatial dim (1 for nearest, 2 for linear, 4 for
 * cubic with a = -0.75); taps outside X read 0 (zeros), the nearest edge
 * (border) or the mirrored element (reflection). Sums are in double, over
 * the taps with dim 0 outermost, so the compiled kernel (kk_grid_sample)
 * agrees bit for bit. Its gradient is GridSampleGrad (ir/ops/train.c). */

static const ir_attrdef grid_sample_attrs[] = {
    IR_ATTR_S("mode", "linear"),
    IR_ATTR_S("padding_mode", "zeros"),
    IR_ATTR_I("align_corners", 0),
};

/* Mode and padding codes; the same numbers are passed to kk_grid_sample. */
enum { GS_LINEAR, GS_NEAREST, GS_CUBIC, GS_MODE_BAD };
enum { GS_ZEROS, GS_BORDER, GS_REFLECTION, GS_PAD_BAD };

static int gs_code(const char *s, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (s && strcmp(s, names[i]) == 0) return i;
    return n;
}

static const char *const gs_modes[] = {"linear", "nearest", "cubic"};
static const char *const gs_pads[] = {"zeros", "border", "reflection"};

static int infer_grid_sample(ir_infer_ctx *cx)
{
    const ir_type *x = &cx->in[0], *g = &cx->in[1];
    if (ir_infer_require_dtypes(cx, 0, IR_DT_FLOATS) ||
        ir_infer_require_dtypes(cx, 1, IR_DT_FLOATS))
        return -1;
    const char *mode = ir_node_string(cx->node, "mode"),
               *pad = ir_node_string(cx->node, "padding_mode");
    if (gs_code(mode, gs_modes, 3) == GS_MODE_BAD)
        return ir_infer_error(cx, "mode '%s' is not one of linear, nearest, cubic",
                              mode ? mode : "");
    if (gs_code(pad, gs_pads, 3) == GS_PAD_BAD)
        return ir_infer_error(cx, "padding_mode '%s' is not one of zeros, border, reflection",
                              pad ? pad : "");
    if (x->rank < 3)
        return ir_infer_error(cx, "X must have rank >= 3 ([N, C, spatial...]), not %d", x->rank);
    int k = x->rank - 2;
    if (g->rank != x->rank)
        return ir_infer_error(cx, "grid has rank %d; it must be %d ([N, spatial..., %d])", g->rank,
                              x->rank, k);
    if (g->dims[g->rank - 1] >= 0 && g->dims[g->rank - 1] != k)
        return ir_infer_error(cx, "grid's last dim is %lld; it must be %d (X's spatial rank)",
                              (long long)g->dims[g->rank - 1], k);
    if (x->dims[0] >= 0 && g->dims[0] >= 0 && x->dims[0] != g->dims[0])
        return ir_infer_error(cx, "grid's batch %lld differs from X's batch %lld",
                              (long long)g->dims[0], (long long)x->dims[0]);
    ir_type *y = &cx->out[0];
    y->dtype = x->dtype;
    y->rank = x->rank;
    y->dims[0] = x->dims[0] >= 0 ? x->dims[0] : g->dims[0];
    y->dims[1] = x->dims[1];
    for (int d = 0; d < k; d++) y->dims[2 + d] = g->dims[1 + d];
    return 0;
}

/* x mirrored into [lo, hi] (ONNX's reflection; repeated for far points). */
static double gs_reflect(double x, double lo, double hi)
{
    double rng = hi - lo;
    if (!(rng > 0)) return lo;
    if (x < lo) {
        double dx = lo - x, n = floor(dx / rng), r = dx - n * rng;
        return n - 2 * floor(n / 2) == 0 ? lo + r : hi - r;
    }
    if (x > hi) {
        double dx = x - hi, n = floor(dx / rng), r = dx - n * rng;
        return n - 2 * floor(n / 2) == 0 ? hi - r : lo + r;
    }
    return x;
}

/* The taps of one spatial dim of size len for normalized coordinate g:
 * idx[t] (-1: reads 0) and w[t]; returns the tap count. */
static int gs_taps(double g, int64_t len, int mode, int pad, bool align, int64_t *idx, double *w)
{
    double x = align ? (g + 1) / 2 * (double)(len - 1) : ((g + 1) * (double)len - 1) / 2;
    double lo = align ? 0 : -0.5, hi = align ? (double)(len - 1) : (double)len - 0.5;
    int n = mode == GS_NEAREST ? 1 : mode == GS_LINEAR ? 2 : 4;
    if (mode == GS_NEAREST) x = nearbyint(x);
    if (x != x) x = pad == GS_ZEROS ? -10 : 0;
    if (x < lo || x > hi) {
        if (pad == GS_BORDER) x = x < 0 ? 0 : x > (double)(len - 1) ? (double)(len - 1) : x;
        else if (pad == GS_REFLECTION) x = isinf(x) ? lo : gs_reflect(x, lo, hi);
        else if (x < -4 || x > (double)len + 4) { /* every tap is outside: reads 0 */
            for (int t = 0; t < n; t++) idx[t] = -1, w[t] = 0;
            return n;
        }
    }
    double f = floor(x), t = x - f;
    int64_t i0 = (int64_t)f;
    if (mode == GS_NEAREST) {
        i0 = (int64_t)x; /* truncation, as ONNX */
        w[0] = 1;
    } else if (mode == GS_LINEAR) {
        w[0] = 1 - t;
        w[1] = t;
    } else {
        const double a = -0.75;
        double t1 = t + 1, t2 = 1 - t, t3 = 2 - t;
        w[0] = ((a * t1 - 5 * a) * t1 + 8 * a) * t1 - 4 * a;
        w[1] = ((a + 2) * t - (a + 3)) * t * t + 1;
        w[2] = ((a + 2) * t2 - (a + 3)) * t2 * t2 + 1;
        w[3] = ((a * t3 - 5 * a) * t3 + 8 * a) * t3 - 4 * a;
        i0 -= 1;
    }
    for (int s = 0; s < n; s++) {
        int64_t i = i0 + s;
        if (i < 0 || i >= len) {
            if (pad == GS_ZEROS) i = -1;
            else if (pad == GS_BORDER) i = i < 0 ? 0 : len - 1;
            else {
                i = (int64_t)gs_reflect((double)i, lo, hi);
                i = i < 0 ? 0 : i >= len ? len - 1 : i;
            }
        }
        idx[s] = i;
    }
    return n;
}

static int kernel_grid_sample(ir_kernel_ctx *kx)
{
    const kiln_tensor *x = kx->in[0], *g = kx->in[1];
    kiln_tensor *y = kx->out[0];
    int mode = gs_code(ir_node_string(kx->node, "mode"), gs_modes, 3);
    int pad = gs_code(ir_node_string(kx->node, "padding_mode"), gs_pads, 3);
    bool align = ir_node_int(kx->node, "align_corners") != 0;
    int k = x->rank - 2;
    int64_t nb = x->dims[0], ch = x->dims[1];
    size_t vol = span(x->dims, 2, x->rank), pts = span(y->dims, 2, y->rank);
    int64_t st[IR_MAX_RANK], idx[IR_MAX_RANK][4];
    double w[IR_MAX_RANK][4];
    int nt[IR_MAX_RANK];
    ir_shape_strides(k, x->dims + 2, st);
    for (int64_t n = 0; n < nb; n++)
        for (size_t p = 0; p < pts; p++) {
            for (int j = 0; j < k; j++) {
                int d = k - 1 - j;
                double gv = ir_load_f64(g->dtype, g->data, ((size_t)n * pts + p) * (size_t)k + (size_t)j);
                nt[d] = gs_taps(gv, x->dims[2 + d], mode, pad, align, idx[d], w[d]);
            }
            for (int64_t c = 0; c < ch; c++) {
                size_t xbase = ((size_t)n * (size_t)ch + (size_t)c) * vol;
                int sel[IR_MAX_RANK] = {0};
                double sum = 0;
                for (;;) {
                    double wt = 1;
                    int64_t off = 0;
                    bool inside = true;
                    for (int d = 0; d < k; d++) {
                        wt *= w[d][sel[d]];
                        if (idx[d][sel[d]] < 0) inside = false;
                        off += idx[d][sel[d]] * st[d];
                    }
                    if (inside) sum += wt * ir_load_f64(x->dtype, x->data, xbase + (size_t)off);
                    int d = k - 1;
                    while (d >= 0 && ++sel[d] == nt[d]) sel[d--] = 0;
                    if (d < 0) break;
                }
                ir_store_f64(y->dtype, y->data, ((size_t)n * (size_t)ch + (size_t)c) * pts + p, sum);
            }
        }
    return 0;
}

const ir_opdef ir_opdef_GridSample = {
    .name = "GridSample", .min_inputs = 2, .max_inputs = 2, .noutputs = 1,
    .attrs = grid_sample_attrs, .nattrs = 3,
    .infer = infer_grid_sample, .kernel = kernel_grid_sample, .grad = ir_grad_GridSample,
    .doc = "GridSample(X, grid): samples X [N, C, spatial...] at grid's normalized coordinates "
           "[N, out..., k] (last spatial dim first); mode linear/nearest/cubic, padding_mode "
           "zeros/border/reflection, align_corners.",
};
