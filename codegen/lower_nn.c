/* lower_nn.c -- Softmax, LogSoftmax, BatchNormalization (inference),
 * LayerNormalization, RandomUniform and RandomNormal as calls to the
 * kernels of codegen/kernels/kk_nn.c. Shapes are static here, so each
 * input is coalesced at compile time into the few sizes its kernel takes
 * (constants after inlining):
 * - Softmax/LogSoftmax: [outer, n, inner] around the axis; rows (inner 1)
 *   or tiles of contiguous columns are the work items;
 * - BatchNormalization: [N * C planes, spatial]; planes are the work items,
 *   each folding its channel's parameters into one multiply-add;
 * - LayerNormalization: [outer rows, n normalized elements]; rows are the
 *   work items; the normalized block x.shape[axis:] is coalesced together
 *   with the broadcast strides of scale and bias;
 * - RandomUniform/RandomNormal: elements (pairs for Box-Muller), each a pure
 *   function of (seed, run counter, index), so any split gives the
 *   reference's numbers.
 * Attribute meanings follow ir/ops/nn.c and ir/ops/random.c. */
#include <stdio.h>

#include "cg_internal.h"
#include "kernels/kk.h"
#include "kernels/kk_nn.h"

_Static_assert((int)KK_F32 == (int)KILN_F32 && (int)KK_F64 == (int)KILN_F64 &&
                   (int)KK_F16 == (int)KILN_F16 && (int)KK_BF16 == (int)KILN_BF16,
               "kernel dtype codes are kiln_dtype values");
_Static_assert(KK_NN_MAX_DIMS >= IR_MAX_RANK, "a normalized block has at most rank dims");


/* Elements a chunk of work items should at least touch, so that small
 * kernels run on one thread. */
#define GRAIN_ELEMS 32768
/* Tiled softmax aims at this many work items at least (for the pool). */
#define MIN_ITEMS 64

static int64_t grain_for(int64_t elems_per_item)
{
    if (elems_per_item < 1) elems_per_item = 1;
    return elems_per_item >= GRAIN_ELEMS ? 1 : GRAIN_ELEMS / elems_per_item;
}

static int64_t prod(const int64_t *d, int from, int to)
{
    int64_t p = 1;
    for (int i = from; i < to; i++) p *= d[i];
    return p;
}

/* The kernel-name suffix of a float dtype, or NULL after reporting. */
static const char *float_suffix(cg_ctx *c, cg_kernel *k, kiln_dtype dt)
{
    switch (dt) {
    case KILN_F32: return "f32";
    case KILN_F64: return "f64";
    case KILN_F16: return "f16";
    case KILN_BF16: return "bf16";
    default:
        cg_error(c, k, KILN_ERR_UNIMPLEMENTED, "the CPU backend compiles %s only for float dtypes, not %s",
                 ir_op_def(k->node->op)->name, kiln_dtype_name(dt));
        return NULL;
    }
}

static void call(cg_ctx *c, const char *stem, const char *sfx, LLVMValueRef *args, int n)
{
    char name[48];
    snprintf(name, sizeof name, "%s_%s", stem, sfx);
    cg_call_void(c, name, args, n);
}

static LLVMValueRef f64c(cg_ctx *c, double v) { return LLVMConstReal(c->t_f64, v); }

/* ---- Softmax, LogSoftmax ---- */

static int lower_softmax(cg_ctx *c, cg_kernel *k, int log_form)
{
    const ir_type *x = k->in[0].type;
    const char *sfx = float_suffix(c, k, x->dtype);
    if (!sfx) return -1;
    int ax;
    if (!ir_norm_axis(ir_node_int(k->node, "axis"), x->rank, &ax))
        return cg_error(c, k, KILN_ERR_INTERNAL, "invalid axis");
    int64_t outer = prod(x->dims, 0, ax), n = x->dims[ax], inner = prod(x->dims, ax + 1, x->rank);
    if (outer * n * inner == 0) return 0; /* nothing to write */
    int64_t tile = 1, ntiles = 1, nwork = outer;
    if (inner > 1) {
        int64_t t = KK_NN_TILE;
        while (t > 32 && outer * ((inner + t - 1) / t) < MIN_ITEMS) t /= 2;
        tile = inner <= t ? inner : t;
        ntiles = (inner + tile - 1) / tile;
        nwork = outer * ntiles;
    }
    LLVMValueRef args[] = {k->in[0].ptr, k->out[0].ptr, cg_i64(c, log_form), cg_i64(c, n),
                           cg_i64(c, inner),  cg_i64(c, tile),  cg_i64(c, ntiles), k->begin, k->end};
    call(c, "kk_softmax", sfx, args, (int)(sizeof args / sizeof args[0]));
    k->work = nwork;
    k->grain = grain_for(tile * n);
    return 0;
}

int cg_lower_Softmax(cg_ctx *c, cg_kernel *k) { return lower_softmax(c, k, 0); }
int cg_lower_LogSoftmax(cg_ctx *c, cg_kernel *k) { return lower_softmax(c, k, 1); }

/* ---- BatchNormalization ---- */

int cg_lower_BatchNormalization(cg_ctx *c, cg_kernel *k)
{
    const ir_type *x = k->in[0].type;
    const char *sfx = float_suffix(c, k, x->dtype);
    if (!sfx) return -1;
    if (ir_node_int(k->node, "training_mode") != 0)
        return cg_error(c, k, KILN_ERR_UNIMPLEMENTED, "training mode is not supported");
    int64_t planes = prod(x->dims, 0, 2), inner = prod(x->dims, 2, x->rank);
    if (planes * inner == 0) return 0;
    LLVMValueRef args[] = {k->in[0].ptr, k->in[1].ptr, k->in[2].ptr, k->in[3].ptr, k->in[4].ptr,
                           k->out[0].ptr, f64c(c, ir_node_float(k->node, "epsilon")),
                           cg_i64(c, x->dims[1]), cg_i64(c, inner), k->begin, k->end};
    call(c, "kk_batchnorm", sfx, args, (int)(sizeof args / sizeof args[0]));
    k->work = planes;
    k->grain = grain_for(inner);
    return 0;
}

/* ---- LayerNormalization ---- */

/* The normalized block x.shape[axis:] (nr dims) with the broadcast strides
 * of scale and bias, coalesced: size-1 dims go, and a dim merges into its
 * inner neighbour when both strides continue it (broadcast runs merge
 * too). Outermost first; at least one dim. */
static int coalesce_block(int nr, const int64_t *dims, const int64_t *ss, const int64_t *bs,
                          int64_t *od, int64_t *os, int64_t *ob)
{
    int64_t rd[IR_MAX_RANK], rs[IR_MAX_RANK], rb[IR_MAX_RANK];
    int m = 0;
    for (int d = nr - 1; d >= 0; d--) {
        if (dims[d] == 1) continue;
        if (m > 0 && ss[d] == rs[m - 1] * rd[m - 1] && bs[d] == rb[m - 1] * rd[m - 1]) {
            rd[m - 1] *= dims[d];
            continue;
        }
        rd[m] = dims[d];
        rs[m] = ss[d];
        rb[m] = bs[d];
        m++;
    }
    if (m == 0) {
        rd[0] = 1;
        rs[0] = rb[0] = 0;
        m = 1;
    }
    for (int i = 0; i < m; i++) {
        od[i] = rd[m - 1 - i];
        os[i] = rs[m - 1 - i];
        ob[i] = rb[m - 1 - i];
    }
    return m;
}

int cg_lower_LayerNormalization(cg_ctx *c, cg_kernel *k)
{
    const ir_type *x = k->in[0].type, *scale = k->in[1].type;
    const ir_type *bias = k->ninputs > 2 ? k->in[2].type : NULL;
    const char *sfx = float_suffix(c, k, x->dtype);
    if (!sfx) return -1;
    int ax;
    if (!ir_norm_axis(ir_node_int(k->node, "axis"), x->rank, &ax))
        return cg_error(c, k, KILN_ERR_INTERNAL, "invalid axis");
    int nr = x->rank - ax;
    int64_t outer = prod(x->dims, 0, ax), n = prod(x->dims, ax, x->rank);
    if (outer * n == 0) return 0;
    int64_t ss[IR_MAX_RANK], bs[IR_MAX_RANK] = {0};
    ir_broadcast_strides(scale->rank, scale->dims, nr, ss);
    if (bias) ir_broadcast_strides(bias->rank, bias->dims, nr, bs);
    int64_t od[IR_MAX_RANK], os[IR_MAX_RANK], ob[IR_MAX_RANK];
    int nd = coalesce_block(nr, x->dims + ax, ss, bs, od, os, ob);
    LLVMValueRef dv = cg_const_i64s(c, od, nd), sv = cg_const_i64s(c, os, nd), bv = cg_const_i64s(c, ob, nd);
    if (!dv || !sv || !bv) return cg_error(c, k, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    LLVMValueRef args[] = {k->in[0].ptr, k->in[1].ptr, bias ? k->in[2].ptr : LLVMConstNull(c->t_ptr),
                           k->out[0].ptr, f64c(c, ir_node_float(k->node, "epsilon")), cg_i64(c, n),
                           cg_i64(c, nd), dv, sv, bv, k->begin, k->end};
    call(c, "kk_layernorm", sfx, args, (int)(sizeof args / sizeof args[0]));
    k->work = outer;
    k->grain = grain_for(3 * n); /* three passes over a row */
    return 0;
}

/* ---- RandomUniform, RandomNormal ---- */

static LLVMValueRef run_counter(cg_ctx *c, cg_kernel *k) { return cg_run_counter(c, k); }

static int lower_random(cg_ctx *c, cg_kernel *k, bool normal)
{
    const ir_type *y = k->out[0].type;
    if (!float_suffix(c, k, y->dtype)) return -1;
    int64_t size = prod(y->dims, 0, y->rank);
    if (size == 0) return 0;
    LLVMValueRef counter = run_counter(c, k);
    if (!counter) return cg_error(c, k, KILN_ERR_INTERNAL, "no run counter for the random op");
    int64_t seed = ir_node_int(k->node, "seed");
    if (normal) {
        LLVMValueRef args[] = {k->out[0].ptr, cg_i64(c, y->dtype), f64c(c, ir_node_float(k->node, "mean")),
                               f64c(c, ir_node_float(k->node, "scale")), cg_i64(c, seed), counter,
                               cg_i64(c, size), k->begin, k->end};
        cg_call_void(c, "kk_random_normal", args, (int)(sizeof args / sizeof args[0]));
        k->work = (size + 1) / 2;
        k->grain = 1024;
    } else {
        LLVMValueRef args[] = {k->out[0].ptr, cg_i64(c, y->dtype), f64c(c, ir_node_float(k->node, "low")),
                               f64c(c, ir_node_float(k->node, "high")), cg_i64(c, seed), counter,
                               k->begin, k->end};
        cg_call_void(c, "kk_random_uniform", args, (int)(sizeof args / sizeof args[0]));
        k->work = size;
        k->grain = 8192;
    }
    return 0;
}

int cg_lower_RandomUniform(cg_ctx *c, cg_kernel *k) { return lower_random(c, k, false); }
int cg_lower_RandomNormal(cg_ctx *c, cg_kernel *k) { return lower_random(c, k, true); }
