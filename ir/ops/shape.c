/* shape.c -- ops that move data without computing on it: Transpose,
 * Reshape, Flatten, Squeeze, Unsqueeze, Concat, Split, Expand and Tile
 * (Slice, Gather and Pad are in shape_index.c). Every dtype is supported:
 * kernels copy elements of kiln_dtype_size bytes. Inference propagates
 * symbolic dims (-1) and checks what is known; it runs again at execution
 * time with concrete shapes, which catches the rest. */
#include <stdio.h>
#include <string.h>

#include "../ir.h"

/* ---- shared helpers ---- */

/* True when the attribute was given (an empty list counts as given). */
static bool attr_given(const ir_node *n, const char *name)
{
    const ir_attr *a = ir_node_attr(n, name);
    return a && a->kind != IR_ATTR_NONE;
}

/* "[2,-1,3]": an attribute's list of dims, as given. */
static const char *ints_str(int n, const int64_t *v, char *buf, size_t size)
{
    size_t k = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < n && k < size; i++)
        k += (size_t)snprintf(buf + k, size - k, "%s%lld", i ? "," : "", (long long)v[i]);
    if (k < size) snprintf(buf + k, size - k, "]");
    return buf;
}
#define INTS_STR_MAX 192

/* Product of dims[from..to): -1 when a symbolic dim makes it unknown (a
 * zero dim makes it 0 regardless). Valid types never overflow here. */
static int64_t dims_product(const int64_t *dims, int from, int to)
{
    int64_t p = 1;
    bool symbolic = false;
    for (int i = from; i < to; i++) {
        if (dims[i] == 0) return 0;
        if (dims[i] < 0) symbolic = true;
        else p *= dims[i];
    }
    return symbolic ? -1 : p;
}

/* Product of concrete dims[from..to) (kernels: shapes are concrete). */
static size_t span(const int64_t *dims, int from, int to)
{
    size_t p = 1;
    for (int i = from; i < to; i++) p *= (size_t)dims[i];
    return p;
}

static unsigned char *elem(void *base, size_t i, size_t esz) { return (unsigned char *)base + i * esz; }
static const unsigned char *celem(const void *base, size_t i, size_t esz)
{
    return (const unsigned char *)base + i * esz;
}

/* y[i] = x[it.off[0]] over the output, walking it (operand 0 reads x). */
static void copy_strided(kiln_tensor *y, const kiln_tensor *x, ir_iter *it)
{
    size_t esz = kiln_dtype_size(y->dtype);
    for (size_t i = 0; i < y->size; i++, ir_iter_next(it))
        memcpy(elem(y->data, i, esz), celem(x->data, (size_t)it->off[0], esz), esz);
}

/* Reshape, Flatten, Squeeze, Unsqueeze: the bytes stay as they are. */
static int kernel_copy(ir_kernel_ctx *kx)
{
    size_t nb = kiln_tensor_nbytes(kx->in[0]);
    if (nb) memcpy(kx->out[0]->data, kx->in[0]->data, nb);
    return 0;
}

/* ---- Transpose ---- */

static const ir_attrdef transpose_attrs[] = {IR_ATTR_OPT("perm", IR_ATTR_INTS)};

/* The permutation in effect: perm, or the dims reversed when it is unset. */
static void transpose_perm(const ir_node *node, int rank, int *perm)
{
    int n;
    const int64_t *p = ir_node_ints(node, "perm", &n);
    for (int i = 0; i < rank; i++)
        perm[i] = attr_given(node, "perm") && n == rank ? (int)p[i] : rank - 1 - i;
}

static int infer_transpose(ir_infer_ctx *cx)
{
    const ir_type *x = &cx->in[0];
    if (attr_given(cx->node, "perm")) {
        int n;
        const int64_t *p = ir_node_ints(cx->node, "perm", &n);
        if (n != x->rank)
            return ir_infer_error(cx, "perm has %d entries; the input has rank %d", n, x->rank);
        bool seen[IR_MAX_RANK] = {false};
        for (int i = 0; i < n; i++) {
            if (p[i] < 0 || p[i] >= x->rank)
                return ir_infer_error(cx, "perm[%d] = %lld is out of range [0, %d)", i,
                                      (long long)p[i], x->rank);
            if (seen[p[i]])
                return ir_infer_error(cx, "perm lists axis %lld twice: not a permutation of 0..%d",
                                      (long long)p[i], x->rank - 1);
            seen[p[i]] = true;
        }
    }
    int perm[IR_MAX_RANK];
    transpose_perm(cx->node, x->rank, perm);
    ir_type *y = &cx->out[0];
    *y = *x;
    for (int i = 0; i < x->rank; i++) y->dims[i] = x->dims[perm[i]];
    return 0;
}

static int kernel_transpose(ir_kernel_ctx *kx)
{
    const kiln_tensor *x = kx->in[0];
    kiln_tensor *y = kx->out[0];
    int perm[IR_MAX_RANK];
    int64_t xs[IR_MAX_RANK], st[IR_MAX_RANK];
    transpose_perm(kx->node, x->rank, perm);
    ir_shape_strides(x->rank, x->dims, xs);
    for (int i = 0; i < x->rank; i++) st[i] = xs[perm[i]];
    ir_iter it;
    ir_iter_init(&it, y->rank, y->dims);
    ir_iter_add(&it, st);
    copy_strided(y, x, &it);
    return 0;
}

const ir_opdef ir_opdef_Transpose = {
    .name = "Transpose", .min_inputs = 1, .max_inputs = 1, .noutputs = 1,
    .attrs = transpose_attrs, .nattrs = 1,
    .infer = infer_transpose, .kernel = kernel_transpose, .grad = ir_grad_Transpose,
    .doc = "Permutes the dims: output dim i is input dim perm[i] (perm unset: reversed).",
};

/* ---- Reshape ---- */

static const ir_attrdef reshape_attrs[] = {IR_ATTR_REQ("shape", IR_ATTR_INTS)};

static int infer_reshape(ir_infer_ctx *cx)
{
    const ir_type *x = &cx->in[0];
    int n;
    const int64_t *s = ir_node_ints(cx->node, "shape", &n);
    char sb[INTS_STR_MAX], xb[IR_TYPE_STR_MAX];
    if (n > IR_MAX_RANK)
        return ir_infer_error(cx, "shape %s has %d dims; the maximum rank is %d",
                              ints_str(n, s, sb, sizeof sb), n, IR_MAX_RANK);
    ir_type *y = &cx->out[0];
    y->dtype = x->dtype;
    y->rank = n;
    int infer_at = -1;
    int64_t known_out = 1; /* product of the output dims that are known */
    for (int i = 0; i < n; i++) {
        if (s[i] == -1) {
            if (infer_at >= 0)
                return ir_infer_error(cx, "shape %s has more than one -1 (at %d and %d)",
                                      ints_str(n, s, sb, sizeof sb), infer_at, i);
            infer_at = i;
            y->dims[i] = -1;
            continue;
        }
        if (s[i] < -1)
            return ir_infer_error(cx,
                                  "shape[%d] = %lld; entries are > 0, 0 (copy the input dim) or "
                                  "-1 (inferred)",
                                  i, (long long)s[i]);
        if (s[i] == 0 && i >= x->rank)
            return ir_infer_error(cx, "shape[%d] = 0 copies input dim %d, but the input has rank %d",
                                  i, i, x->rank);
        y->dims[i] = s[i] == 0 ? x->dims[i] : s[i];
        if (y->dims[i] < 0) continue;
        if (y->dims[i] != 0 && known_out > INT64_MAX / y->dims[i])
            return ir_infer_error(cx, "shape %s has more elements than fit in 64 bits",
                                  ints_str(n, s, sb, sizeof sb));
        known_out *= y->dims[i];
    }
    /* Symbolic input dims cancel when each is copied by a 0 at its own
     * position; otherwise the element count is unknown until run time. */
    int64_t known_in = 1;
    for (int d = 0; d < x->rank; d++) {
        if (x->dims[d] >= 0) known_in *= x->dims[d];
        else if (!(d < n && s[d] == 0)) return 0;
    }
    bool symbolic = !ir_type_is_static(x);
    const char *what = symbolic ? "known elements" : "elements";
    if (infer_at >= 0) {
        if (known_out == 0)
            return ir_infer_error(cx, "cannot infer the -1 in shape %s: the other dims hold 0 elements",
                                  ints_str(n, s, sb, sizeof sb));
        if (known_in % known_out != 0)
            return ir_infer_error(cx, "cannot reshape %s (%lld %s) into %s: %lld is not a multiple of %lld",
                                  ir_type_str(x, xb, sizeof xb), (long long)known_in, what,
                                  ints_str(n, s, sb, sizeof sb), (long long)known_in,
                                  (long long)known_out);
        y->dims[infer_at] = known_in / known_out;
    } else if (known_in != known_out) {
        return ir_infer_error(cx, "cannot reshape %s (%lld %s) into %s (%lld %s)",
                              ir_type_str(x, xb, sizeof xb), (long long)known_in, what,
                              ints_str(n, s, sb, sizeof sb), (long long)known_out, what);
    }
    return 0;
}

const ir_opdef ir_opdef_Reshape = {
    .name = "Reshape", .min_inputs = 1, .max_inputs = 1, .noutputs = 1,
    .attrs = reshape_attrs, .nattrs = 1,
    .infer = infer_reshape, .kernel = kernel_copy, .grad = ir_grad_Reshape,
    .doc = "Same elements, new shape; a 0 copies the input dim there, one -1 is inferred.",
};

/* ---- Flatten ---- */

static const ir_attrdef flatten_attrs[] = {IR_ATTR_I("axis", 1)};

static int infer_flatten(ir_infer_ctx *cx)
{
    const ir_type *x = &cx->in[0];
    int64_t axis = ir_node_int(cx->node, "axis");
    if (axis < -x->rank || axis > x->rank)
        return ir_infer_error(cx, "axis %lld is out of range [%d, %d]", (long long)axis, -x->rank,
                              x->rank);
    int a = (int)(axis < 0 ? axis + x->rank : axis);
    ir_type *y = &cx->out[0];
    y->dtype = x->dtype;
    y->rank = 2;
    y->dims[0] = dims_product(x->dims, 0, a);
    y->dims[1] = dims_product(x->dims, a, x->rank);
    return 0;
}

const ir_opdef ir_opdef_Flatten = {
    .name = "Flatten", .min_inputs = 1, .max_inputs = 1, .noutputs = 1,
    .attrs = flatten_attrs, .nattrs = 1,
    .infer = infer_flatten, .kernel = kernel_copy, .grad = ir_grad_Flatten,
    .doc = "To 2-D: [prod(dims[:axis]), prod(dims[axis:])]; axis in [-rank, rank].",
};

/* ---- Squeeze ---- */

static const ir_attrdef squeeze_attrs[] = {IR_ATTR_OPT("axes", IR_ATTR_INTS)};

/* With no axes (unset or empty) every dim of size 1 goes. That needs every
 * dim known: whether a symbolic dim would be dropped depends on the fed
 * shape, so the output rank would too, and a compiled program (which sees
 * concrete shapes) and the graph would disagree. Such a Squeeze must name
 * its axes. */
static int infer_squeeze(ir_infer_ctx *cx)
{
    const ir_type *x = &cx->in[0];
    int n;
    const int64_t *axes = ir_node_ints(cx->node, "axes", &n);
    bool drop[IR_MAX_RANK] = {false};
    for (int i = 0; i < n; i++) {
        int a;
        if (!ir_norm_axis(axes[i], x->rank, &a))
            return ir_infer_error(cx, "axes[%d] = %lld is out of range for rank %d", i,
                                  (long long)axes[i], x->rank);
        if (drop[a]) return ir_infer_error(cx, "axes lists axis %d twice", a);
        if (x->dims[a] >= 0 && x->dims[a] != 1)
            return ir_infer_error(cx, "cannot squeeze axis %d: its size is %lld, not 1", a,
                                  (long long)x->dims[a]);
        drop[a] = true;
    }
    if (n == 0) {
        for (int d = 0; d < x->rank; d++)
            if (x->dims[d] < 0)
                return ir_infer_error(cx, "without axes, every dim must be known, but dim %d is "
                                          "symbolic: list the axes to squeeze", d);
        for (int d = 0; d < x->rank; d++) drop[d] = x->dims[d] == 1;
    }
    ir_type *y = &cx->out[0];
    y->dtype = x->dtype;
    y->rank = 0;
    for (int d = 0; d < x->rank; d++)
        if (!drop[d]) y->dims[y->rank++] = x->dims[d];
    return 0;
}

const ir_opdef ir_opdef_Squeeze = {
    .name = "Squeeze", .min_inputs = 1, .max_inputs = 1, .noutputs = 1,
    .attrs = squeeze_attrs, .nattrs = 1,
    .infer = infer_squeeze, .kernel = kernel_copy, .grad = ir_grad_Squeeze,
    .doc = "Removes size-1 dims: those in axes, or (axes unset or empty, all dims known) every dim of 1.",
};

/* ---- Unsqueeze ---- */

static const ir_attrdef unsqueeze_attrs[] = {IR_ATTR_REQ("axes", IR_ATTR_INTS)};

static int infer_unsqueeze(ir_infer_ctx *cx)
{
    const ir_type *x = &cx->in[0];
    int n;
    const int64_t *axes = ir_node_ints(cx->node, "axes", &n);
    if (n > IR_MAX_RANK - x->rank)
        return ir_infer_error(cx, "inserting %d dims would make rank %d, above the maximum %d", n,
                              x->rank + n, IR_MAX_RANK);
    int rank = x->rank + n;
    bool insert[IR_MAX_RANK] = {false};
    for (int i = 0; i < n; i++) {
        int a;
        if (!ir_norm_axis(axes[i], rank, &a))
            return ir_infer_error(cx, "axes[%d] = %lld is out of range for the output rank %d", i,
                                  (long long)axes[i], rank);
        if (insert[a]) return ir_infer_error(cx, "axes lists output axis %d twice", a);
        insert[a] = true;
    }
    ir_type *y = &cx->out[0];
    y->dtype = x->dtype;
    y->rank = rank;
    for (int d = 0, k = 0; d < rank; d++) y->dims[d] = insert[d] ? 1 : x->dims[k++];
    return 0;
}

const ir_opdef ir_opdef_Unsqueeze = {
    .name = "Unsqueeze", .min_inputs = 1, .max_inputs = 1, .noutputs = 1,
    .attrs = unsqueeze_attrs, .nattrs = 1,
    .infer = infer_unsqueeze, .kernel = kernel_copy, .grad = ir_grad_Unsqueeze,
    .doc = "Inserts size-1 dims at axes, indexed in the output's dims.",
};

/* ---- Concat ---- */

static const ir_attrdef concat_attrs[] = {IR_ATTR_I("axis", 0)};

static int infer_concat(ir_infer_ctx *cx)
{
    const ir_type *x0 = &cx->in[0];
    if (ir_infer_same_dtype(cx, 0, cx->ninputs - 1)) return -1;
    if (x0->rank == 0) return ir_infer_error(cx, "cannot concatenate scalars (rank 0)");
    int64_t axis = ir_node_int(cx->node, "axis");
    int a;
    if (!ir_norm_axis(axis, x0->rank, &a))
        return ir_infer_error(cx, "axis %lld is out of range for rank %d", (long long)axis, x0->rank);
    ir_type *y = &cx->out[0];
    *y = *x0;
    for (int i = 1; i < cx->ninputs; i++) {
        const ir_type *xi = &cx->in[i];
        if (xi->rank != x0->rank)
            return ir_infer_error(cx, "input %d has rank %d, input 0 has rank %d", i, xi->rank,
                                  x0->rank);
        for (int d = 0; d < x0->rank; d++) {
            if (d == a || xi->dims[d] < 0) continue;
            if (y->dims[d] >= 0 && y->dims[d] != xi->dims[d])
                return ir_infer_error(cx,
                                      "input %d has size %lld in dim %d where an earlier input has "
                                      "%lld; only axis %d may differ",
                                      i, (long long)xi->dims[d], d, (long long)y->dims[d], a);
            y->dims[d] = xi->dims[d];
        }
    }
    int64_t total = 0;
    for (int i = 0; i < cx->ninputs; i++) {
        int64_t d = cx->in[i].dims[a];
        if (d < 0) {
            total = -1;
            break;
        }
        if (total > INT64_MAX - d) return ir_infer_error(cx, "the concatenated dim overflows");
        total += d;
    }
    y->dims[a] = total;
    return 0;
}

static int kernel_concat(ir_kernel_ctx *kx)
{
    kiln_tensor *y = kx->out[0];
    int a;
    ir_norm_axis(ir_node_int(kx->node, "axis"), y->rank, &a);
    size_t esz = kiln_dtype_size(y->dtype);
    size_t outer = span(y->dims, 0, a), inner = span(y->dims, a + 1, y->rank);
    size_t row = (size_t)y->dims[a] * inner, off = 0;
    for (int i = 0; i < kx->ninputs; i++) {
        const kiln_tensor *x = kx->in[i];
        size_t chunk = (size_t)x->dims[a] * inner;
        if (chunk == 0) continue;
        for (size_t o = 0; o < outer; o++)
            memcpy(elem(y->data, o * row + off, esz), celem(x->data, o * chunk, esz), chunk * esz);
        off += chunk;
    }
    return 0;
}

const ir_opdef ir_opdef_Concat = {
    .name = "Concat", .min_inputs = 1, .max_inputs = -1, .noutputs = 1,
    .attrs = concat_attrs, .nattrs = 1,
    .infer = infer_concat, .kernel = kernel_concat, .grad = ir_grad_Concat,
    .doc = "Joins its inputs along axis; all other dims must agree.",
};

/* ---- Split ---- */

#define SPLIT_MAX_OUTPUTS 4096

static const ir_attrdef split_attrs[] = {
    IR_ATTR_I("axis", 0),
    IR_ATTR_OPT("split", IR_ATTR_INTS),
    IR_ATTR_I("num_outputs", 0),
};

static int infer_split(ir_infer_ctx *cx)
{
    const ir_type *x = &cx->in[0];
    if (x->rank == 0) return ir_infer_error(cx, "cannot split a scalar (rank 0)");
    int64_t axis = ir_node_int(cx->node, "axis");
    int a;
    if (!ir_norm_axis(axis, x->rank, &a))
        return ir_infer_error(cx, "axis %lld is out of range for rank %d", (long long)axis, x->rank);
    int n;
    const int64_t *split = ir_node_ints(cx->node, "split", &n);
    bool have_split = attr_given(cx->node, "split");
    int64_t num = ir_node_int(cx->node, "num_outputs");
    int64_t dim = x->dims[a];
    char sb[INTS_STR_MAX];
    if (have_split && num != 0)
        return ir_infer_error(cx, "give either 'split' or 'num_outputs', not both");
    if (!have_split && num == 0)
        return ir_infer_error(cx, "needs 'split' (the piece sizes) or 'num_outputs'");
    if (have_split) {
        if (n == 0) return ir_infer_error(cx, "'split' is empty");
        if (n > SPLIT_MAX_OUTPUTS)
            return ir_infer_error(cx, "'split' has %d pieces; at most %d are supported", n,
                                  SPLIT_MAX_OUTPUTS);
        int64_t sum = 0;
        for (int i = 0; i < n; i++) {
            if (split[i] < 0)
                return ir_infer_error(cx, "split[%d] = %lld is negative", i, (long long)split[i]);
            if (sum > INT64_MAX - split[i]) return ir_infer_error(cx, "'split' sum overflows");
            sum += split[i];
        }
        if (dim >= 0 && sum != dim)
            return ir_infer_error(cx, "split %s sums to %lld, but dim %d has size %lld",
                                  ints_str(n, split, sb, sizeof sb), (long long)sum, a,
                                  (long long)dim);
    } else {
        if (num < 1 || num > SPLIT_MAX_OUTPUTS)
            return ir_infer_error(cx, "num_outputs = %lld is out of range [1, %d]", (long long)num,
                                  SPLIT_MAX_OUTPUTS);
        n = (int)num;
    }
    /* num_outputs: pieces of ceil(dim / n), the last one smaller (ONNX 18). */
    int64_t piece = 0, last = 0;
    if (!have_split && dim >= 0) {
        piece = dim / n + (dim % n != 0);
        if (n > 1 && piece > dim / (n - 1))
            return ir_infer_error(cx,
                                  "num_outputs = %d cannot split dim %d of size %lld: %d pieces "
                                  "of ceil(%lld/%d) = %lld are more than it holds",
                                  n, a, (long long)dim, n - 1, (long long)dim, n, (long long)piece);
        last = dim - piece * (n - 1);
    }
    if (ir_infer_set_noutputs(cx, n) < 0) return -1;
    for (int k = 0; k < n; k++) {
        cx->out[k] = *x;
        cx->out[k].dims[a] = have_split ? split[k] : dim < 0 ? -1 : k == n - 1 ? last : piece;
    }
    return 0;
}

static int kernel_split(ir_kernel_ctx *kx)
{
    const kiln_tensor *x = kx->in[0];
    int a;
    ir_norm_axis(ir_node_int(kx->node, "axis"), x->rank, &a);
    size_t esz = kiln_dtype_size(x->dtype);
    size_t outer = span(x->dims, 0, a), inner = span(x->dims, a + 1, x->rank);
    size_t row = (size_t)x->dims[a] * inner, off = 0;
    for (int k = 0; k < kx->noutputs; k++) {
        kiln_tensor *y = kx->out[k];
        size_t chunk = (size_t)y->dims[a] * inner;
        if (chunk == 0) continue;
        for (size_t o = 0; o < outer; o++)
            memcpy(elem(y->data, o * chunk, esz), celem(x->data, o * row + off, esz), chunk * esz);
        off += chunk;
    }
    return 0;
}

const ir_opdef ir_opdef_Split = {
    .name = "Split", .min_inputs = 1, .max_inputs = 1, .noutputs = -1,
    .attrs = split_attrs, .nattrs = 3,
    .infer = infer_split, .kernel = kernel_split, .grad = ir_grad_Split,
    .doc = "Cuts along axis into pieces of sizes 'split', or 'num_outputs' pieces of ceil(dim/n).",
};

/* ---- Expand ---- */

static const ir_attrdef expand_attrs[] = {IR_ATTR_REQ("shape", IR_ATTR_INTS)};

static int infer_expand(ir_infer_ctx *cx)
{
    const ir_type *x = &cx->in[0];
    int n;
    const int64_t *s = ir_node_ints(cx->node, "shape", &n);
    char sb[INTS_STR_MAX];
    if (n > IR_MAX_RANK)
        return ir_infer_error(cx, "shape %s has %d dims; the maximum rank is %d",
                              ints_str(n, s, sb, sizeof sb), n, IR_MAX_RANK);
    ir_type t = {.dtype = x->dtype, .rank = n};
    for (int i = 0; i < n; i++) {
        if (s[i] < 0)
            return ir_infer_error(cx, "shape[%d] = %lld is negative", i, (long long)s[i]);
        t.dims[i] = s[i];
    }
    if (!ir_broadcast(x, &t, &cx->out[0]))
        return ir_infer_error(cx, "the input does not broadcast with shape %s",
                              ints_str(n, s, sb, sizeof sb));
    cx->out[0].dtype = x->dtype;
    return 0;
}

static int kernel_expand(ir_kernel_ctx *kx)
{
    const kiln_tensor *x = kx->in[0];
    kiln_tensor *y = kx->out[0];
    int64_t st[IR_MAX_RANK];
    ir_broadcast_strides(x->rank, x->dims, y->rank, st);
    ir_iter it;
    ir_iter_init(&it, y->rank, y->dims);
    ir_iter_add(&it, st);
    copy_strided(y, x, &it);
    return 0;
}

const ir_opdef ir_opdef_Expand = {
    .name = "Expand", .min_inputs = 1, .max_inputs = 1, .noutputs = 1,
    .attrs = expand_attrs, .nattrs = 1,
    .infer = infer_expand, .kernel = kernel_expand, .grad = ir_grad_Expand,
    .doc = "Broadcasts x to broadcast(x.shape, shape) (numpy rules; a 1 in shape keeps x's dim).",
};

/* ---- Tile ---- */

static const ir_attrdef tile_attrs[] = {IR_ATTR_REQ("repeats", IR_ATTR_INTS)};

static int infer_tile(ir_infer_ctx *cx)
{
    const ir_type *x = &cx->in[0];
    int n;
    const int64_t *r = ir_node_ints(cx->node, "repeats", &n);
    if (n != x->rank)
        return ir_infer_error(cx, "repeats has %d entries; the input has rank %d", n, x->rank);
    ir_type *y = &cx->out[0];
    *y = *x;
    for (int d = 0; d < n; d++) {
        if (r[d] < 0)
            return ir_infer_error(cx, "repeats[%d] = %lld is negative", d, (long long)r[d]);
        if (r[d] == 0) y->dims[d] = 0;
        else if (x->dims[d] < 0) y->dims[d] = -1;
        else if (x->dims[d] > INT64_MAX / r[d])
            return ir_infer_error(cx, "dim %d times %lld repeats overflows", d, (long long)r[d]);
        else y->dims[d] = x->dims[d] * r[d];
    }
    return 0;
}

static int kernel_tile(ir_kernel_ctx *kx)
{
    const kiln_tensor *x = kx->in[0];
    kiln_tensor *y = kx->out[0];
    size_t esz = kiln_dtype_size(y->dtype);
    int64_t xs[IR_MAX_RANK];
    ir_shape_strides(x->rank, x->dims, xs);
    ir_iter it;
    ir_iter_init(&it, y->rank, y->dims);
    /* A non-empty output has non-empty input dims, so the % is safe. */
    for (size_t i = 0; i < y->size; i++, ir_iter_next(&it)) {
        int64_t off = 0;
        for (int d = 0; d < y->rank; d++) off += (it.idx[d] % x->dims[d]) * xs[d];
        memcpy(elem(y->data, i, esz), celem(x->data, (size_t)off, esz), esz);
    }
    return 0;
}

const ir_opdef ir_opdef_Tile = {
    .name = "Tile", .min_inputs = 1, .max_inputs = 1, .noutputs = 1,
    .attrs = tile_attrs, .nattrs = 1,
    .infer = infer_tile, .kernel = kernel_tile, .grad = ir_grad_Tile,
    .doc = "Repeats x repeats[d] times along each dim d (one repeat count per dim, >= 0).",
};
