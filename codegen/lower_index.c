/* lower_index.c -- the index ops (ir/ops/index.c) as calls to the kernels
 * of codegen/kernels/kk_index.c with their shapes, strides and attributes
 * as constants:
 * - TopK, CumSum, CumProd: x viewed as [outer, n, inner] around the axis;
 *   the outer * inner lines are the work items;
 * - GatherElements, OneHot: output elements are the work items; indices
 *   are checked at run time (CG_ERR_INDEX);
 * - ScatterElements, ScatterND: one work item (updates apply in index
 *   order, so duplicates combine as in the reference);
 * - GridSample: output points (all channels of one point) are the work
 *   items.
 * Attribute meanings follow ir/ops/index.c. */
#include <string.h>

#include "cg_internal.h"
#include "kernels/kk.h"
#include "kernels/kk_index.h"

_Static_assert((int)KK_F32 == (int)KILN_F32 && (int)KK_I64 == (int)KILN_I64 &&
                   (int)KK_BOOL == (int)KILN_BOOL && (int)KK_I16 == (int)KILN_I16 &&
                   (int)KK_U64 == (int)KILN_U64,
               "kernel dtype codes are kiln_dtype values");
_Static_assert(KK_INDEX_MAX_DIMS >= IR_MAX_RANK, "index kernels take every rank");
_Static_assert((int)CG_ERR_INDEX == (int)KK_ERR_INDEX, "error codes agree");

/* Elements a chunk of work items should at least touch, so that small
 * kernels run on one thread. */
#define GRAIN_ELEMS 32768

static int64_t prod(const int64_t *d, int from, int to)
{
    int64_t p = 1;
    for (int i = from; i < to; i++) p *= d[i];
    return p;
}

static void set_work(cg_kernel *k, int64_t items, int64_t elems_per_item)
{
    if (elems_per_item < 1) elems_per_item = 1;
    k->work = items > 1 ? items : 1;
    k->grain = elems_per_item >= GRAIN_ELEMS ? 1 : GRAIN_ELEMS / elems_per_item;
}

static LLVMValueRef dtc(cg_ctx *c, kiln_dtype dt) { return cg_i64(c, (int64_t)dt); }

static int axis_of(cg_ctx *c, cg_kernel *k, int rank, int *a)
{
    if (!ir_norm_axis(ir_node_int(k->node, "axis"), rank, a))
        return cg_error(c, k, KILN_ERR_INTERNAL, "axis is out of range");
    return 0;
}

static int index_dtype(cg_ctx *c, cg_kernel *k, const ir_type *idx)
{
    if (idx->dtype != KILN_I32 && idx->dtype != KILN_I64)
        return cg_error(c, k, KILN_ERR_INTERNAL, "indices are %s, not i32 or i64",
                        kiln_dtype_name(idx->dtype));
    return 0;
}

static int reduction_code(cg_ctx *c, cg_kernel *k, int64_t *code)
{
    static const char *const names[] = {"none", "add", "mul", "max", "min"};
    const char *r = ir_node_string(k->node, "reduction");
    for (int i = 0; i < 5; i++)
        if (r && strcmp(r, names[i]) == 0) {
            *code = i;
            return 0;
        }
    return cg_error(c, k, KILN_ERR_INTERNAL, "unknown reduction '%s'", r ? r : "");
}

/* ---- TopK ---- */

int cg_lower_TopK(cg_ctx *c, cg_kernel *k)
{
    const ir_type *x = k->in[0].type;
    int a;
    if (axis_of(c, k, x->rank, &a)) return -1;
    int64_t n = x->dims[a], kk = ir_node_int(k->node, "k");
    int64_t outer = prod(x->dims, 0, a), inner = prod(x->dims, a + 1, x->rank);
    int64_t lines = kk > 0 ? outer * inner : 0;
    LLVMValueRef args[] = {k->out[0].ptr, k->out[1].ptr, k->in[0].ptr, dtc(c, x->dtype), cg_i64(c, n),
                           cg_i64(c, kk), cg_i64(c, inner > 0 ? inner : 1),
                           cg_i64(c, ir_node_int(k->node, "largest") != 0), cg_i64(c, lines),
                           k->begin, k->end};
    cg_call_void(c, "kk_topk", args, (int)(sizeof args / sizeof args[0]));
    set_work(k, lines, n * (kk > 0 ? kk : 1));
    return 0;
}

/* ---- CumSum, CumProd ---- */

static int lower_cum(cg_ctx *c, cg_kernel *k, int is_prod)
{
    const ir_type *x = k->in[0].type;
    int a;
    if (axis_of(c, k, x->rank, &a)) return -1;
    int64_t n = x->dims[a], outer = prod(x->dims, 0, a), inner = prod(x->dims, a + 1, x->rank);
    int64_t lines = n > 0 ? outer * inner : 0;
    LLVMValueRef args[] = {k->out[0].ptr, k->in[0].ptr, dtc(c, x->dtype), cg_i64(c, n),
                           cg_i64(c, inner > 0 ? inner : 1), cg_i64(c, is_prod),
                           cg_i64(c, ir_node_int(k->node, "exclusive") != 0),
                           cg_i64(c, ir_node_int(k->node, "reverse") != 0), cg_i64(c, lines),
                           k->begin, k->end};
    cg_call_void(c, "kk_cum", args, (int)(sizeof args / sizeof args[0]));
    set_work(k, lines, n);
    return 0;
}

int cg_lower_CumSum(cg_ctx *c, cg_kernel *k) { return lower_cum(c, k, 0); }
int cg_lower_CumProd(cg_ctx *c, cg_kernel *k) { return lower_cum(c, k, 1); }

/* ---- GatherElements, ScatterElements ---- */

/* The index shape and the data strides as constant arrays. */
static int element_consts(cg_ctx *c, cg_kernel *k, const ir_type *x, const ir_type *idx,
                          LLVMValueRef *idims, LLVMValueRef *xstrides)
{
    int64_t st[IR_MAX_RANK], s = 1;
    for (int d = x->rank - 1; d >= 0; d--) {
        st[d] = s;
        s *= x->dims[d];
    }
    *idims = cg_const_i64s(c, idx->dims, idx->rank);
    *xstrides = cg_const_i64s(c, st, x->rank);
    if (!*idims || !*xstrides) return cg_error(c, k, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    return 0;
}

int cg_lower_GatherElements(cg_ctx *c, cg_kernel *k)
{
    const ir_type *x = k->in[0].type, *idx = k->in[1].type;
    int a;
    LLVMValueRef idims, xst;
    if (axis_of(c, k, x->rank, &a) || index_dtype(c, k, idx) ||
        element_consts(c, k, x, idx, &idims, &xst))
        return -1;
    int64_t nidx = prod(idx->dims, 0, idx->rank);
    LLVMValueRef args[] = {k->out[0].ptr, k->in[0].ptr, k->in[1].ptr, cg_i64(c, idx->dtype == KILN_I64),
                           cg_i64(c, (int64_t)kiln_dtype_size(x->dtype)), cg_i64(c, x->rank), idims,
                           xst, cg_i64(c, a), cg_i64(c, x->dims[a]), cg_i64(c, nidx), k->err,
                           k->begin, k->end};
    cg_call_void(c, "kk_gather_elements", args, (int)(sizeof args / sizeof args[0]));
    set_work(k, nidx, 1);
    return 0;
}

int cg_lower_ScatterElements(cg_ctx *c, cg_kernel *k)
{
    const ir_type *x = k->in[0].type, *idx = k->in[1].type;
    int a;
    int64_t red;
    LLVMValueRef idims, xst;
    if (axis_of(c, k, x->rank, &a) || index_dtype(c, k, idx) || reduction_code(c, k, &red) ||
        element_consts(c, k, x, idx, &idims, &xst))
        return -1;
    int64_t esz = (int64_t)kiln_dtype_size(x->dtype);
    LLVMValueRef args[] = {k->out[0].ptr, k->in[0].ptr, k->in[1].ptr, cg_i64(c, idx->dtype == KILN_I64),
                           k->in[2].ptr, dtc(c, x->dtype), cg_i64(c, esz), cg_i64(c, x->rank), idims,
                           xst, cg_i64(c, a), cg_i64(c, x->dims[a]),
                           cg_i64(c, prod(idx->dims, 0, idx->rank)),
                           cg_i64(c, prod(x->dims, 0, x->rank) * esz), cg_i64(c, red), k->err,
                           k->begin, k->end};
    cg_call_void(c, "kk_scatter_elements", args, (int)(sizeof args / sizeof args[0]));
    set_work(k, 1, 1);
    return 0;
}

/* ---- ScatterND ---- */

int cg_lower_ScatterND(cg_ctx *c, cg_kernel *k)
{
    const ir_type *x = k->in[0].type, *idx = k->in[1].type;
    int64_t red;
    if (index_dtype(c, k, idx) || reduction_code(c, k, &red)) return -1;
    int64_t m = idx->dims[idx->rank - 1];
    if (m < 1 || m > x->rank) return cg_error(c, k, KILN_ERR_INTERNAL, "bad index tuple length");
    int64_t st[IR_MAX_RANK], s = 1;
    for (int d = x->rank - 1; d >= 0; d--) {
        st[d] = s;
        s *= x->dims[d];
    }
    LLVMValueRef xd = cg_const_i64s(c, x->dims, x->rank), xs = cg_const_i64s(c, st, x->rank);
    if (!xd || !xs) return cg_error(c, k, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    int64_t esz = (int64_t)kiln_dtype_size(x->dtype);
    int64_t slice = prod(x->dims, (int)m, x->rank), ntuples = prod(idx->dims, 0, idx->rank - 1);
    LLVMValueRef args[] = {k->out[0].ptr, k->in[0].ptr, k->in[1].ptr, cg_i64(c, idx->dtype == KILN_I64),
                           k->in[2].ptr, dtc(c, x->dtype), cg_i64(c, esz), cg_i64(c, m), xd, xs,
                           cg_i64(c, slice), cg_i64(c, ntuples), cg_i64(c, s * esz), cg_i64(c, red),
                           k->err, k->begin, k->end};
    cg_call_void(c, "kk_scatter_nd", args, (int)(sizeof args / sizeof args[0]));
    set_work(k, 1, 1);
    return 0;
}

/* ---- OneHot ---- */

int cg_lower_OneHot(cg_ctx *c, cg_kernel *k)
{
    const ir_type *y = k->out[0].type, *v = k->in[1].type;
    int a;
    if (axis_of(c, k, y->rank, &a)) return -1;
    if (prod(v->dims, 0, v->rank) != 2)
        return cg_error(c, k, KILN_ERR_INVALID_ARGUMENT, "values hold %lld elements, not 2",
                        (long long)prod(v->dims, 0, v->rank));
    int64_t depth = y->dims[a], inner = prod(y->dims, a + 1, y->rank), total = prod(y->dims, 0, y->rank);
    LLVMValueRef args[] = {k->out[0].ptr, k->in[0].ptr, dtc(c, k->in[0].type->dtype), k->in[1].ptr,
                           cg_i64(c, (int64_t)kiln_dtype_size(y->dtype)), cg_i64(c, depth),
                           cg_i64(c, inner > 0 ? inner : 1), cg_i64(c, total), k->begin, k->end};
    cg_call_void(c, "kk_onehot", args, (int)(sizeof args / sizeof args[0]));
    set_work(k, total, 1);
    return 0;
}

/* ---- GridSample ---- */

int cg_lower_GridSample(cg_ctx *c, cg_kernel *k)
{
    static const char *const modes[] = {"linear", "nearest", "cubic"};
    static const char *const pads[] = {"zeros", "border", "reflection"};
    const ir_type *x = k->in[0].type, *g = k->in[1].type, *y = k->out[0].type;
    const char *ms = ir_node_string(k->node, "mode"), *ps = ir_node_string(k->node, "padding_mode");
    int64_t mode = -1, pad = -1;
    for (int i = 0; i < 3; i++) {
        if (ms && strcmp(ms, modes[i]) == 0) mode = i;
        if (ps && strcmp(ps, pads[i]) == 0) pad = i;
    }
    if (mode < 0 || pad < 0 || x->rank < 3)
        return cg_error(c, k, KILN_ERR_INTERNAL, "unknown mode '%s' or padding_mode '%s'",
                        ms ? ms : "", ps ? ps : "");
    int nsp = x->rank - 2;
    LLVMValueRef sd = cg_const_i64s(c, x->dims + 2, nsp);
    if (!sd) return cg_error(c, k, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    int64_t points = prod(y->dims, 2, y->rank), batch = x->dims[0], chans = x->dims[1];
    LLVMValueRef args[] = {k->out[0].ptr, k->in[0].ptr, dtc(c, x->dtype), k->in[1].ptr,
                           dtc(c, g->dtype), cg_i64(c, nsp), sd, cg_i64(c, chans),
                           cg_i64(c, points), cg_i64(c, batch), cg_i64(c, mode), cg_i64(c, pad),
                           cg_i64(c, ir_node_int(k->node, "align_corners") != 0), k->begin, k->end};
    cg_call_void(c, "kk_grid_sample", args, (int)(sizeof args / sizeof args[0]));
    int64_t taps = mode == 1 ? 1 : mode == 0 ? 2 : 4, per = chans;
    for (int d = 0; d < nsp; d++) per *= taps;
    set_work(k, batch * points, per);
    return 0;
}
