/* lower_reduce.c -- ReduceSum, ReduceMean, ReduceMax, ReduceMin, ReduceProd,
 * ArgMax and ArgMin as calls to the kernels of codegen/kernels/kk_reduce.c.
 *
 * At compile time the input shape is coalesced: size-1 dims go, and
 * neighbouring dims of the same kind (reduced or kept) merge, so e.g.
 * reducing axes {1, 2} of [A, B, C, D] is [A] kept, [B*C] reduced, [D]
 * kept. What is left alternates kept and reduced dims; they go to the
 * kernel as constant arrays of sizes and strides, and the innermost one
 * picks the loop structure:
 * - reduced innermost ("row mode"): a work item is one output element,
 *   which reduces contiguous rows (vectorized across a row);
 * - kept innermost ("column mode"): a work item is a tile of contiguous
 *   output elements, which accumulate whole input rows (vectorized across
 *   the tile). Long kept rows are cut into several tiles so that a
 *   reduction to few rows is still split across threads.
 * A reduction to a single element (all axes) is one work item, on one
 * thread. Float sums, means and products accumulate in double (see
 * kk_reduce.h), so long f32 sums stay as accurate as the reference's.
 * Attribute meanings (axes unset or empty = all, negative axes, keepdims,
 * select_last_index) follow ir/ops/reduce.c, the reference kernels.
 * An empty reduced axis is known here, since shapes are static: Max and
 * Min fill their output with the identity (-inf / +inf, the lowest /
 * highest integer), ArgMax/ArgMin just report CG_ERR_EMPTY. */
#include <math.h>
#include <stdio.h>

#include "cg_internal.h"
#include "kernels/kk_reduce.h"

_Static_assert(KK_RED_MAX_DIMS >= IR_MAX_RANK, "a coalesced shape has at most rank dims of a kind");

/* Elements a chunk of work items should at least touch, so that small
 * reductions run on one thread. */
#define GRAIN_ELEMS 32768
/* Column mode narrows its tiles (down to 64 elements) until there are this
 * many work items for the thread pool. Wide tiles read whole cache lines
 * and pages of each input row, which the hardware prefetcher follows. */
#define MIN_ITEMS 16

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

static int64_t grain_for(int64_t elems_per_item)
{
    elems_per_item = max64(elems_per_item, 1);
    return elems_per_item >= GRAIN_ELEMS ? 1 : GRAIN_ELEMS / elems_per_item;
}

static const char *dtype_suffix(kiln_dtype dt)
{
    switch (dt) {
    case KILN_F32: return "f32";
    case KILN_F64: return "f64";
    case KILN_F16: return "f16";
    case KILN_BF16: return "bf16";
    case KILN_I8: return "i8";
    case KILN_U8: return "u8";
    case KILN_I32: return "i32";
    case KILN_I64: return "i64";
    case KILN_I16: return "i16";
    case KILN_U16: return "u16";
    case KILN_U32: return "u32";
    case KILN_U64: return "u64";
    default: return NULL;
    }
}

/* The width of the tiles a column-mode work item accumulates: whole rows
 * of `row` elements when there are enough rows, else pieces (multiples of
 * 16, at least 64) so that rows * tiles reaches MIN_ITEMS. */
static int64_t tile_width(int64_t rows, int64_t row)
{
    int64_t t = KK_RED_TILE;
    while (t > 64 && rows * ((row + t - 1) / t) < MIN_ITEMS) t /= 2;
    return row <= t ? row : t;
}

/* Stores an empty-axis error for the kernel (Max/Min/Arg* of nothing). */
static int report_empty(cg_ctx *c, cg_kernel *k)
{
    LLVMBuildStore(c->b, cg_i32(c, CG_ERR_EMPTY), k->err);
    k->work = 1;
    k->grain = 1;
    return 0;
}

/* Max/Min over an empty axis (ONNX opset 18+): every output element is
 * the identity, the lowest value of the dtype (-inf) for Max and the
 * highest (+inf) for Min. One work item writes them all. */
static int fill_extreme(cg_ctx *c, cg_kernel *k, kiln_dtype dt, int64_t nout, bool highest)
{
    LLVMTypeRef t = cg_compute_type(c, dt);
    LLVMValueRef v;
    if (ir_dtype_is_float(dt)) {
        v = LLVMConstReal(t, highest ? INFINITY : -INFINITY);
    } else {
        unsigned bits = LLVMGetIntTypeWidth(t);
        uint64_t sign = UINT64_C(1) << (bits - 1);
        if (ir_dtype_is_signed(dt)) v = LLVMConstInt(t, highest ? sign - 1 : sign, 0);
        else v = highest ? LLVMConstAllOnes(t) : LLVMConstInt(t, 0, 0);
    }
    k->work = 1;
    k->grain = 1;
    if (nout == 0) return 0;
    cg_loop l;
    cg_loop_begin(c, &l, cg_i64(c, 0), cg_i64(c, nout), "fill");
    cg_store_elem(c, dt, k->out[0].ptr, l.i, v);
    cg_loop_end(c, &l);
    return 0;
}

static int check_dtype(cg_ctx *c, cg_kernel *k, const ir_type *x, const char **sfx)
{
    *sfx = dtype_suffix(x->dtype);
    if (*sfx) return 0;
    return cg_error(c, k, KILN_ERR_UNIMPLEMENTED, "the CPU backend cannot compile %s for %s",
                    ir_op_def(k->node->op)->name, kiln_dtype_name(x->dtype));
}

/* ---- ReduceSum, ReduceMean, ReduceMax, ReduceMin, ReduceProd ---- */

/* The input as alternating kept / reduced dims, outermost first. */
typedef struct {
    int n;
    int64_t dims[IR_MAX_RANK], strides[IR_MAX_RANK];
    bool red[IR_MAX_RANK];
} red_shape;

static void coalesce(const ir_type *x, const bool *reduced, red_shape *s)
{
    s->n = 0;
    for (int d = 0; d < x->rank; d++) {
        if (x->dims[d] == 1) continue;
        if (s->n > 0 && s->red[s->n - 1] == reduced[d]) {
            s->dims[s->n - 1] *= x->dims[d];
            continue;
        }
        s->dims[s->n] = x->dims[d];
        s->red[s->n] = reduced[d];
        s->n++;
    }
    if (s->n == 0) { /* a single element */
        s->dims[0] = 1;
        s->red[0] = false;
        s->n = 1;
    }
    int64_t st = 1;
    for (int d = s->n - 1; d >= 0; d--) {
        s->strides[d] = st;
        st *= s->dims[d];
    }
}

/* The reduction k->node of x, read from k->in[0] or, with a prologue
 * function, computed by it run by run. */
static int lower_reduce_of(cg_ctx *c, cg_kernel *k, int op, const ir_type *x, LLVMValueRef pro)
{
    const char *sfx;
    if (check_dtype(c, k, x, &sfx)) return -1;
    bool reduced[IR_MAX_RANK];
    int naxes;
    const int64_t *axes = ir_node_ints(k->node, "axes", &naxes);
    for (int d = 0; d < x->rank; d++) reduced[d] = naxes == 0;
    for (int i = 0; i < naxes; i++) {
        int ax;
        if (!ir_norm_axis(axes[i], x->rank, &ax))
            return cg_error(c, k, KILN_ERR_INTERNAL, "axis %lld is out of range for rank %d",
                            (long long)axes[i], x->rank);
        reduced[ax] = true;
    }
    int64_t count = 1, nout = 1;
    for (int d = 0; d < x->rank; d++) {
        if (reduced[d]) count *= x->dims[d];
        else nout *= x->dims[d];
    }
    if (count == 0 && (op == KK_RED_MAX || op == KK_RED_MIN)) return fill_extreme(c, k, x->dtype, nout, op == KK_RED_MIN);
    if (nout == 0) return 0; /* nothing to write */

    red_shape s;
    coalesce(x, reduced, &s);
    int64_t kd[IR_MAX_RANK], ks[IR_MAX_RANK], rd[IR_MAX_RANK], rs[IR_MAX_RANK];
    int nk = 0, nr = 0;
    const int row_mode = s.red[s.n - 1];
    const int64_t len = s.dims[s.n - 1]; /* the innermost dim, contiguous */
    for (int d = 0; d < s.n - 1; d++) {
        if (s.red[d]) {
            rd[nr] = s.dims[d];
            rs[nr++] = s.strides[d];
        } else {
            kd[nk] = s.dims[d];
            ks[nk++] = s.strides[d];
        }
    }
    int64_t npos = 1; /* reduced positions besides the innermost dim */
    for (int i = 0; i < nr; i++) npos *= rd[i];
    int64_t tile = 1, ntiles = 1, nwork, per_item;
    if (row_mode) {
        nwork = nout;
        per_item = count;
    } else {
        int64_t rows = nout / len;
        tile = tile_width(rows, len);
        ntiles = (len + tile - 1) / tile;
        nwork = rows * ntiles;
        per_item = tile * count;
    }
    /* Keep array arguments valid pointers even when empty. */
    if (nk == 0) kd[0] = ks[0] = 1;
    if (nr == 0) rd[0] = rs[0] = 1;
    LLVMValueRef kdv = cg_const_i64s(c, kd, nk > 0 ? nk : 1), ksv = cg_const_i64s(c, ks, nk > 0 ? nk : 1);
    LLVMValueRef rdv = cg_const_i64s(c, rd, nr > 0 ? nr : 1), rsv = cg_const_i64s(c, rs, nr > 0 ? nr : 1);
    if (!kdv || !ksv || !rdv || !rsv) return cg_error(c, k, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    char name[32];
    snprintf(name, sizeof name, pro ? "kk_reduce_pro_%s" : "kk_reduce_%s", sfx);
    LLVMValueRef args[] = {pro ? pro : k->in[0].ptr, k->out[0].ptr, cg_i64(c, op), cg_i64(c, row_mode),
                           cg_i64(c, nk), kdv, ksv, cg_i64(c, nr), rdv, rsv, cg_i64(c, npos),
                           cg_i64(c, len), cg_i64(c, tile), cg_i64(c, ntiles), cg_i64(c, count),
                           cg_i64(c, nwork), k->begin, k->end};
    if (pro) {
        LLVMValueRef pargs[sizeof args / sizeof args[0] + 1];
        pargs[0] = pro;
        pargs[1] = k->args;
        for (size_t i = 1; i < sizeof args / sizeof args[0]; i++) pargs[i + 1] = args[i];
        cg_call_void(c, name, pargs, (int)(sizeof pargs / sizeof pargs[0]));
    } else {
        cg_call_void(c, name, args, (int)(sizeof args / sizeof args[0]));
    }
    k->work = max64(nwork, 1);
    k->grain = grain_for(per_item);
    return 0;
}

static int lower_reduce(cg_ctx *c, cg_kernel *k, int op) { return lower_reduce_of(c, k, op, k->in[0].type, NULL); }

/* A reduction whose input is a fused elementwise expression: the kernel
 * reads the input through the prologue, a run of at most KK_RED_TILE
 * elements at a time, so the expression's result never reaches memory. */
int cg_lower_reduce_group(cg_ctx *c, cg_kernel *k)
{
    static const int ops[] = {[IR_OP_ReduceSum] = KK_RED_SUM + 1, [IR_OP_ReduceMean] = KK_RED_MEAN + 1,
                              [IR_OP_ReduceMax] = KK_RED_MAX + 1, [IR_OP_ReduceMin] = KK_RED_MIN + 1,
                              [IR_OP_ReduceProd] = KK_RED_PROD + 1};
    const ir_node *n = k->node;
    int op = (size_t)n->op < sizeof ops / sizeof ops[0] ? ops[n->op] - 1 : -1;
    if (op < 0) return cg_error(c, k, KILN_ERR_INTERNAL, "not a reduction with a prologue");
    LLVMValueRef pro = cg_emit_prologue(c, k);
    if (!pro) return cg_error(c, k, KILN_ERR_INTERNAL, "cannot emit the prologue");
    return lower_reduce_of(c, k, op, ir_value_type(k->graph, n->inputs[0]), pro);
}

int cg_lower_ReduceSum(cg_ctx *c, cg_kernel *k) { return lower_reduce(c, k, KK_RED_SUM); }
int cg_lower_ReduceMean(cg_ctx *c, cg_kernel *k) { return lower_reduce(c, k, KK_RED_MEAN); }
int cg_lower_ReduceMax(cg_ctx *c, cg_kernel *k) { return lower_reduce(c, k, KK_RED_MAX); }
int cg_lower_ReduceMin(cg_ctx *c, cg_kernel *k) { return lower_reduce(c, k, KK_RED_MIN); }
int cg_lower_ReduceProd(cg_ctx *c, cg_kernel *k) { return lower_reduce(c, k, KK_RED_PROD); }

/* ---- ArgMax, ArgMin ---- */

static int lower_arg(cg_ctx *c, cg_kernel *k, bool is_max)
{
    const char *sfx;
    if (check_dtype(c, k, k->in[0].type, &sfx)) return -1;
    const ir_type *x = k->in[0].type;
    int ax;
    if (!ir_norm_axis(ir_node_int(k->node, "axis"), x->rank, &ax))
        return cg_error(c, k, KILN_ERR_INTERNAL, "invalid axis");
    int64_t outer = 1, inner = 1, len = x->dims[ax];
    for (int d = 0; d < ax; d++) outer *= x->dims[d];
    for (int d = ax + 1; d < x->rank; d++) inner *= x->dims[d];
    if (len == 0) return report_empty(c, k);
    if (outer * inner == 0) return 0;
    int64_t tile = 1, ntiles = 1, nwork = outer;
    if (inner > 1) {
        tile = tile_width(outer, inner);
        ntiles = (inner + tile - 1) / tile;
        nwork = outer * ntiles;
    }
    char name[32];
    snprintf(name, sizeof name, "kk_arg_%s", sfx);
    LLVMValueRef args[] = {k->in[0].ptr, k->out[0].ptr, cg_i64(c, is_max),
                           cg_i64(c, ir_node_int(k->node, "select_last_index") != 0),
                           cg_i64(c, outer), cg_i64(c, len), cg_i64(c, inner), cg_i64(c, tile),
                           cg_i64(c, ntiles), k->begin, k->end};
    cg_call_void(c, name, args, (int)(sizeof args / sizeof args[0]));
    k->work = max64(nwork, 1);
    k->grain = grain_for(tile * len);
    return 0;
}

int cg_lower_ArgMax(cg_ctx *c, cg_kernel *k) { return lower_arg(c, k, true); }
int cg_lower_ArgMin(cg_ctx *c, cg_kernel *k) { return lower_arg(c, k, false); }
