/* lower_shape.c -- the data-movement ops: each becomes one call of a kernel
 * of codegen/kernels/kk_shape.c with its shapes, strides and attributes as
 * constants. Reshape, Flatten, Squeeze and Unsqueeze copy their bytes.
 * Transpose, Slice, Expand and Tile are strided copies over the output,
 * whose dims are coalesced first (size-1 dims dropped, neighbours merged
 * where the input walks them as one), so e.g. a transpose that keeps the
 * last dims in order copies whole rows. Concat and Split copy byte runs;
 * Gather checks its indices at run time; Pad fills, reflects or repeats. */
#include <string.h>

#include "cg_internal.h"

#define SH_MAX_DIMS 16      /* KK_SHAPE_MAX_DIMS */
#define SH_CHUNK_BYTES 32768 /* bytes a thread should copy at least */

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

static int64_t esize(const cg_operand *o) { return (int64_t)kiln_dtype_size(o->type->dtype); }

static int64_t numel(const ir_type *t)
{
    int64_t n = 1;
    for (int d = 0; d < t->rank; d++) n *= t->dims[d];
    return n;
}

static void row_strides(int rank, const int64_t *dims, int64_t *st)
{
    int64_t s = 1;
    for (int d = rank - 1; d >= 0; d--) {
        st[d] = s;
        s *= dims[d];
    }
}

/* Work over `items` items of `bytes` each: chunks of at least
 * SH_CHUNK_BYTES, so small copies run on one thread. */
static void set_work(cg_kernel *k, int64_t items, int64_t bytes)
{
    k->work = max64(items, 1);
    k->grain = max64(1, SH_CHUNK_BYTES / max64(bytes, 1));
}

/* ---- strided copies ---- */

/* An output walked as a contiguous array of `dims`, reading the input at
 * element base + sum idx[d] * st[d]. */
typedef struct {
    int rank;
    int64_t dims[SH_MAX_DIMS], st[SH_MAX_DIMS];
    int64_t base;
    bool empty;
} sh_view;

/* Drops size-1 dims and merges a dim into the one before it when the input
 * steps over the pair as over one dim. */
static void coalesce(sh_view *v)
{
    int r = 0;
    v->empty = false;
    for (int d = 0; d < v->rank; d++) {
        if (v->dims[d] == 0) v->empty = true;
        if (v->dims[d] == 1) continue;
        if (r > 0 && v->st[r - 1] == v->st[d] * v->dims[d]) {
            v->dims[r - 1] *= v->dims[d];
            v->st[r - 1] = v->st[d];
            continue;
        }
        v->dims[r] = v->dims[d];
        v->st[r] = v->st[d];
        r++;
    }
    if (r == 0) {
        v->dims[0] = 1;
        v->st[0] = 0;
        r = 1;
    }
    v->rank = r;
}

/* A long innermost dim with few rows is cut in two, so that it can be
 * split across threads. */
static void split_long_rows(sh_view *v)
{
    int64_t n0 = v->dims[v->rank - 1], rows = 1;
    for (int d = 0; d < v->rank - 1; d++) rows *= v->dims[d];
    if (v->rank >= SH_MAX_DIMS || rows >= 64 || n0 < 65536) return;
    for (int64_t b = 16384; b >= 1024; b--) {
        if (n0 % b) continue;
        int r = v->rank;
        v->dims[r - 1] = n0 / b;
        v->dims[r] = b;
        v->st[r] = v->st[r - 1];
        v->st[r - 1] *= b;
        v->rank = r + 1;
        return;
    }
}

static int emit_strided_copy(cg_ctx *c, cg_kernel *k, sh_view *v)
{
    coalesce(v);
    if (!v->empty) split_long_rows(v);
    int64_t esz = esize(&k->out[0]), rows = 1;
    for (int d = 0; d < v->rank - 1; d++) rows *= v->dims[d];
    if (v->empty) rows = 0;
    LLVMValueRef dims = cg_const_i64s(c, v->dims, v->rank), st = cg_const_i64s(c, v->st, v->rank);
    if (!dims || !st) return cg_error(c, k, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    LLVMValueRef args[] = {k->out[0].ptr, k->in[0].ptr, cg_i64(c, esz), cg_i64(c, v->rank), dims, st,
                           cg_i64(c, v->base), cg_i64(c, rows), k->begin, k->end};
    cg_call_void(c, "kk_copy_strided", args, (int)(sizeof args / sizeof args[0]));
    set_work(k, rows, v->dims[v->rank - 1] * esz);
    return 0;
}

static bool attr_given(const ir_node *n, const char *name)
{
    const ir_attr *a = ir_node_attr(n, name);
    return a && a->kind != IR_ATTR_NONE;
}

int cg_lower_Transpose(cg_ctx *c, cg_kernel *k)
{
    const ir_type *x = k->in[0].type;
    int np;
    const int64_t *p = ir_node_ints(k->node, "perm", &np);
    bool given = attr_given(k->node, "perm") && np == x->rank;
    int64_t xs[IR_MAX_RANK];
    row_strides(x->rank, x->dims, xs);
    sh_view v = {.rank = x->rank};
    for (int i = 0; i < x->rank; i++) {
        int a = given ? (int)p[i] : x->rank - 1 - i;
        if (a < 0 || a >= x->rank) return cg_error(c, k, KILN_ERR_INTERNAL, "perm is not a permutation");
        v.dims[i] = x->dims[a];
        v.st[i] = xs[a];
    }
    return emit_strided_copy(c, k, &v);
}

/* Slice: starts and ends count from the end when negative, then clamp to
 * [0, dim] for a positive step and to [0, dim-1] / [-1, dim-1] for a
 * negative one (ONNX). */
static void slice_axis(int64_t dim, int64_t s, int64_t e, int64_t step, int64_t *start, int64_t *len)
{
    *start = 0;
    *len = 0;
    if (dim == 0) return;
    if (s < 0) s += dim;
    if (e < 0) e += dim;
    if (step > 0) {
        s = s < 0 ? 0 : s > dim ? dim : s;
        e = e < 0 ? 0 : e > dim ? dim : e;
        if (e > s) *len = (e - s - 1) / step + 1;
    } else {
        s = s < 0 ? 0 : s > dim - 1 ? dim - 1 : s;
        e = e < -1 ? -1 : e > dim - 1 ? dim - 1 : e;
        uint64_t astep = (uint64_t)0 - (uint64_t)step;
        if (s > e) *len = (int64_t)((uint64_t)(s - e - 1) / astep + 1);
    }
    *start = s;
}

int cg_lower_Slice(cg_ctx *c, cg_kernel *k)
{
    const ir_type *x = k->in[0].type;
    int n, ne, na, ns;
    const int64_t *starts = ir_node_ints(k->node, "starts", &n);
    const int64_t *ends = ir_node_ints(k->node, "ends", &ne);
    const int64_t *axes = ir_node_ints(k->node, "axes", &na);
    const int64_t *steps = ir_node_ints(k->node, "steps", &ns);
    bool have_axes = attr_given(k->node, "axes"), have_steps = attr_given(k->node, "steps");
    if (ne != n || (have_axes && na != n) || (have_steps && ns != n) || (!have_axes && n > x->rank))
        return cg_error(c, k, KILN_ERR_INTERNAL, "inconsistent attributes");
    int64_t xs[IR_MAX_RANK], start[IR_MAX_RANK], step[IR_MAX_RANK], len[IR_MAX_RANK];
    row_strides(x->rank, x->dims, xs);
    for (int d = 0; d < x->rank; d++) {
        start[d] = 0;
        step[d] = 1;
        len[d] = x->dims[d];
    }
    for (int i = 0; i < n; i++) {
        int a = i;
        if (have_axes && !ir_norm_axis(axes[i], x->rank, &a))
            return cg_error(c, k, KILN_ERR_INTERNAL, "axes[%d] is out of range", i);
        step[a] = have_steps ? steps[i] : 1;
        if (step[a] == 0) return cg_error(c, k, KILN_ERR_INTERNAL, "steps[%d] is 0", i);
        slice_axis(x->dims[a], starts[i], ends[i], step[a], &start[a], &len[a]);
    }
    sh_view v = {.rank = x->rank};
    for (int d = 0; d < x->rank; d++) {
        v.dims[d] = len[d];
        /* with one element along d the step is never taken (and may be huge) */
        v.st[d] = len[d] > 1 ? step[d] * xs[d] : 0;
        v.base += start[d] * xs[d];
    }
    return emit_strided_copy(c, k, &v);
}

int cg_lower_Expand(cg_ctx *c, cg_kernel *k)
{
    const ir_type *x = k->in[0].type, *y = k->out[0].type;
    int64_t xs[IR_MAX_RANK];
    row_strides(x->rank, x->dims, xs);
    sh_view v = {.rank = y->rank};
    for (int d = 0; d < y->rank; d++) {
        int j = d - (y->rank - x->rank);
        v.dims[d] = y->dims[d];
        v.st[d] = j < 0 || x->dims[j] == 1 ? 0 : xs[j];
    }
    return emit_strided_copy(c, k, &v);
}

/* Tile: output dim d of size r * n is walked as [r, n] with the repeat
 * reading stride 0. */
int cg_lower_Tile(cg_ctx *c, cg_kernel *k)
{
    const ir_type *x = k->in[0].type, *y = k->out[0].type;
    int64_t xs[IR_MAX_RANK];
    row_strides(x->rank, x->dims, xs);
    sh_view v = {.rank = 2 * x->rank};
    for (int d = 0; d < x->rank; d++) {
        v.dims[2 * d] = x->dims[d] ? y->dims[d] / x->dims[d] : 0;
        v.st[2 * d] = 0;
        v.dims[2 * d + 1] = x->dims[d];
        v.st[2 * d + 1] = xs[d];
    }
    return emit_strided_copy(c, k, &v);
}

/* ---- copies of the whole buffer ---- */

static int lower_copy(cg_ctx *c, cg_kernel *k)
{
    int64_t bytes = numel(k->out[0].type) * esize(&k->out[0]);
    if (bytes > 0) LLVMBuildMemCpy(c->b, k->out[0].ptr, 1, k->in[0].ptr, 1, cg_i64(c, bytes));
    k->work = 1;
    k->grain = 1;
    return 0;
}

int cg_lower_Reshape(cg_ctx *c, cg_kernel *k) { return lower_copy(c, k); }
int cg_lower_Flatten(cg_ctx *c, cg_kernel *k) { return lower_copy(c, k); }
int cg_lower_Squeeze(cg_ctx *c, cg_kernel *k) { return lower_copy(c, k); }
int cg_lower_Unsqueeze(cg_ctx *c, cg_kernel *k) { return lower_copy(c, k); }

/* ---- Concat and Split ---- */

/* The pieces of a Concat (its inputs) or Split (its outputs) along axis a
 * of the whole tensor t: an array of their pointers in the kernel's frame,
 * and the call. */
static int lower_pieces(cg_ctx *c, cg_kernel *k, const char *fn, const ir_type *t,
                        const cg_operand *whole, const cg_operand *pieces, int npieces)
{
    int a;
    if (!ir_norm_axis(ir_node_int(k->node, "axis"), t->rank, &a))
        return cg_error(c, k, KILN_ERR_INTERNAL, "axis is out of range");
    int64_t esz = (int64_t)kiln_dtype_size(t->dtype), outer = 1, inner = esz;
    for (int d = 0; d < a; d++) outer *= t->dims[d];
    for (int d = a + 1; d < t->rank; d++) inner *= t->dims[d];
    int64_t chunk[64], row = 0;
    if (npieces > 64) return cg_error(c, k, KILN_ERR_UNIMPLEMENTED, "more than 64 pieces");
    for (int i = 0; i < npieces; i++) {
        chunk[i] = pieces[i].type->dims[a] * inner;
        row += chunk[i];
    }
    if (row == 0) outer = 0;
    /* Few long rows are cut into blocks, so that threads can share them. */
    int64_t blk = row, nblk = 1;
    if (outer > 0 && outer < 64 && row >= 4 * SH_CHUNK_BYTES) {
        nblk = (row + SH_CHUNK_BYTES - 1) / SH_CHUNK_BYTES;
        blk = (row + nblk - 1) / nblk;
    }
    LLVMTypeRef at = LLVMArrayType2(c->t_ptr, (uint64_t)npieces);
    LLVMValueRef arr = LLVMBuildAlloca(c->b, at, "pieces");
    for (int i = 0; i < npieces; i++) {
        LLVMValueRef idx = cg_i64(c, i);
        LLVMBuildStore(c->b, pieces[i].ptr, LLVMBuildGEP2(c->b, c->t_ptr, arr, &idx, 1, ""));
    }
    LLVMValueRef chunks = cg_const_i64s(c, chunk, npieces);
    if (!chunks) return cg_error(c, k, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    LLVMValueRef args[] = {whole->ptr, arr, chunks, cg_i64(c, npieces), cg_i64(c, row), cg_i64(c, blk),
                           cg_i64(c, nblk), cg_i64(c, outer), k->begin, k->end};
    cg_call_void(c, fn, args, (int)(sizeof args / sizeof args[0]));
    set_work(k, outer * nblk, blk);
    return 0;
}

int cg_lower_Concat(cg_ctx *c, cg_kernel *k)
{
    return lower_pieces(c, k, "kk_concat", k->out[0].type, &k->out[0], k->in, k->ninputs);
}

int cg_lower_Split(cg_ctx *c, cg_kernel *k)
{
    return lower_pieces(c, k, "kk_split", k->in[0].type, &k->in[0], k->out, k->noutputs);
}

/* ---- Gather ---- */

int cg_lower_Gather(cg_ctx *c, cg_kernel *k)
{
    const ir_type *x = k->in[0].type, *idx = k->in[1].type;
    int a;
    if (!ir_norm_axis(ir_node_int(k->node, "axis"), x->rank, &a))
        return cg_error(c, k, KILN_ERR_INTERNAL, "axis is out of range");
    if (idx->dtype != KILN_I32 && idx->dtype != KILN_I64)
        return cg_error(c, k, KILN_ERR_INTERNAL, "indices are %s, not i32 or i64", kiln_dtype_name(idx->dtype));
    int64_t outer = 1, inner = esize(&k->in[0]), nidx = numel(idx);
    for (int d = 0; d < a; d++) outer *= x->dims[d];
    for (int d = a + 1; d < x->rank; d++) inner *= x->dims[d];
    LLVMValueRef args[] = {k->out[0].ptr, k->in[0].ptr, k->in[1].ptr, cg_i64(c, idx->dtype == KILN_I64),
                           cg_i64(c, outer), cg_i64(c, x->dims[a]), cg_i64(c, nidx), cg_i64(c, inner),
                           k->err, k->begin, k->end};
    cg_call_void(c, "kk_gather", args, (int)(sizeof args / sizeof args[0]));
    if (outer == 0 || inner == 0) set_work(k, 1, 1);
    else set_work(k, outer * nidx, inner);
    return 0;
}

/* ---- Pad ---- */

int cg_lower_Pad(cg_ctx *c, cg_kernel *k)
{
    const ir_type *x = k->in[0].type, *y = k->out[0].type;
    const char *m = ir_node_string(k->node, "mode");
    int mode = !m ? -1 : strcmp(m, "constant") == 0 ? 0 : strcmp(m, "reflect") == 0 ? 1 : strcmp(m, "edge") == 0 ? 2 : -1;
    int np;
    const int64_t *pads = ir_node_ints(k->node, "pads", &np);
    if (mode < 0 || np != 2 * x->rank) return cg_error(c, k, KILN_ERR_INTERNAL, "bad mode or pads");
    /* The fill value's bytes, converted as the reference converts it. */
    unsigned char fb[8] = {0};
    ir_store_f64(x->dtype, fb, 0, ir_node_float(k->node, "value"));
    int64_t fill = 0;
    memcpy(&fill, fb, sizeof fill);
    /* Unpadded neighbours merge; unpadded size-1 dims go. */
    int64_t yd[IR_MAX_RANK], xd[IR_MAX_RANK], pb[IR_MAX_RANK], xs[IR_MAX_RANK];
    bool plain[IR_MAX_RANK];
    int r = 0;
    bool empty = false;
    for (int d = 0; d < x->rank; d++) {
        bool unpadded = pads[d] == 0 && pads[d + x->rank] == 0;
        if (y->dims[d] == 0) empty = true;
        if (unpadded && x->dims[d] == 1) continue;
        if (unpadded && r > 0 && plain[r - 1]) {
            yd[r - 1] *= y->dims[d];
            xd[r - 1] *= x->dims[d];
            continue;
        }
        yd[r] = y->dims[d];
        xd[r] = x->dims[d];
        pb[r] = pads[d];
        plain[r] = unpadded;
        r++;
    }
    if (r == 0) {
        yd[0] = xd[0] = 1;
        pb[0] = 0;
        r = 1;
    }
    row_strides(r, xd, xs);
    int64_t rows = 1, esz = esize(&k->out[0]);
    for (int d = 0; d < r - 1; d++) rows *= yd[d];
    if (empty) rows = 0;
    LLVMValueRef cy = cg_const_i64s(c, yd, r), cx = cg_const_i64s(c, xd, r);
    LLVMValueRef cs = cg_const_i64s(c, xs, r), cp = cg_const_i64s(c, pb, r);
    if (!cy || !cx || !cs || !cp) return cg_error(c, k, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    LLVMValueRef args[] = {k->out[0].ptr, k->in[0].ptr, cg_i64(c, esz), cg_i64(c, r), cy, cx, cs, cp,
                           cg_i64(c, mode), cg_i64(c, fill), cg_i64(c, rows), k->begin, k->end};
    cg_call_void(c, "kk_pad", args, (int)(sizeof args / sizeof args[0]));
    set_work(k, rows, yd[r - 1] * esz);
    return 0;
}
