/* gpu_gemm.c -- MatMul and Gemm on the GPU as cuBLAS calls: from a node's
 * operand types to the strided-batched products that compute it
 * (cg_gpu_gemm, run by runtime/cuda.c). numpy's batch broadcasting is a
 * single batch stride per operand when the broadcast allows it (a shared
 * weight matrix is stride 0); otherwise the leading batch dims become
 * separate calls. No LLVM here: the product's description only. */
#include <limits.h>
#include <string.h>

#include "cg_gpu_internal.h"

#define GEMM_MAX_CALLS 4096 /* separate calls one node may need */

/* Whether the batch dims [from, to) step through an operand with strides
 * st (in elements) as one sequence of equal steps; *step gets it. */
static bool one_stride(const int64_t *dims, const int64_t *st, int from, int to, int64_t *step)
{
    bool have = false;
    int64_t s = 0, run = 1;
    for (int d = to - 1; d >= from; d--) {
        if (dims[d] == 1) continue;
        if (!have) {
            s = st[d];
            have = true;
        } else if (st[d] != s * run) {
            return false;
        }
        run *= dims[d];
    }
    *step = s;
    return true;
}

static bool fits_int(int64_t v) { return v >= 0 && v <= INT_MAX; }

int cg_gpu_plan_gemm(const kiln_graph *g, const ir_node *n, cg_gpu_gemm *out, int max, int *count,
                     kiln_status *status)
{
    const char *op = ir_op_def(n->op)->name;
    const ir_type *a = ir_value_type(g, n->inputs[0]), *b = ir_value_type(g, n->inputs[1]);
    const ir_type *y = &n->outputs[0];
    *count = 0;
    kiln_dtype dt = y->dtype;
    if (dt != KILN_F32 && dt != KILN_F64 && dt != KILN_F16 && dt != KILN_BF16)
        return ir_set_status(status, KILN_ERR_UNIMPLEMENTED,
                             "%s '%s': the CUDA backend cannot compile %s of %s yet "
                             "(cuBLAS takes f32, f64, f16, bf16)",
                             op, n->name, op, kiln_dtype_name(dt));
    bool gemm = n->op == IR_OP_Gemm;
    bool ta = ir_node_int(n, gemm ? "transA" : "transpose_a") != 0;
    bool tb = ir_node_int(n, gemm ? "transB" : "transpose_b") != 0;
    cg_gpu_gemm t;
    memset(&t, 0, sizeof t);
    t.dtype = dt;
    t.alpha = gemm ? ir_node_float(n, "alpha") : 1.0;
    /* a 1-D a is [1, K]; a 1-D b is [K, 1] */
    int64_t ar = a->rank >= 2 ? a->dims[a->rank - 2] : 1, ac = a->dims[a->rank - 1];
    int64_t br = b->rank >= 2 ? b->dims[b->rank - 2] : b->dims[0],
            bc = b->rank >= 2 ? b->dims[b->rank - 1] : 1;
    t.trans_a = a->rank >= 2 && ta;
    t.trans_b = b->rank >= 2 && tb;
    t.m = t.trans_a ? ac : ar;
    t.k = t.trans_a ? ar : ac;
    t.n = t.trans_b ? br : bc;
    t.lda = ac;
    t.ldb = bc;
    t.ldc = t.n;
    int64_t kb = t.trans_b ? bc : br;
    if (kb != t.k)
        return ir_set_status(status, KILN_ERR_INTERNAL,
                             "%s '%s': inner dimensions differ (%lld vs %lld)", op, n->name,
                             (long long)t.k, (long long)kb);
    /* the output's batch dims and each operand's strides over them */
    int batch_rank = y->rank - (a->rank >= 2) - (b->rank >= 2);
    if (batch_rank < 0) batch_rank = 0;
    int64_t sa[IR_MAX_RANK], sb[IR_MAX_RANK], sc[IR_MAX_RANK];
    ir_broadcast_strides(a->rank >= 2 ? a->rank - 2 : 0, a->dims, batch_rank, sa);
    ir_broadcast_strides(b->rank >= 2 ? b->rank - 2 : 0, b->dims, batch_rank, sb);
    ir_shape_strides(batch_rank, y->dims, sc);
    int64_t ma = ar * ac, mb = br * bc, mc = t.m * t.n;
    for (int d = 0; d < batch_rank; d++) {
        sa[d] *= ma;
        sb[d] *= mb;
        sc[d] *= mc;
    }
    /* the shortest prefix of batch dims that must become separate calls */
    int split = 0;
    while (split < batch_rank && !(one_stride(y->dims, sa, split, batch_rank, &t.stride_a) &&
                                   one_stride(y->dims, sb, split, batch_rank, &t.stride_b) &&
                                   one_stride(y->dims, sc, split, batch_rank, &t.stride_c)))
        split++;
    if (split == batch_rank) t.stride_a = t.stride_b = t.stride_c = 0;
    t.batch = 1;
    for (int d = split; d < batch_rank; d++) t.batch *= y->dims[d];
    int64_t calls = 1;
    for (int d = 0; d < split; d++) calls *= y->dims[d];
    if (t.m == 0 || t.n == 0 || t.batch == 0) calls = 0; /* nothing to write */
    if (!fits_int(t.m) || !fits_int(t.n) || !fits_int(t.k) || !fits_int(t.lda) ||
        !fits_int(t.ldb) || !fits_int(t.batch) || calls > max || calls > GEMM_MAX_CALLS)
        return ir_set_status(status, KILN_ERR_UNIMPLEMENTED,
                             "%s '%s': the CUDA backend cannot compile %s yet for %lld x %lld x "
                             "%lld in %lld batches of %lld",
                             op, n->name, op, (long long)t.m, (long long)t.k, (long long)t.n,
                             (long long)calls, (long long)t.batch);
    size_t esz = kiln_dtype_size(dt);
    for (int64_t c = 0; c < calls; c++) {
        cg_gpu_gemm *o = &out[c];
        *o = t;
        int64_t rem = c, oa = 0, ob = 0, oc = 0;
        for (int d = split - 1; d >= 0; d--) {
            int64_t i = rem % y->dims[d];
            rem /= y->dims[d];
            oa += i * sa[d];
            ob += i * sb[d];
            oc += i * sc[d];
        }
        o->a_at = (size_t)oa * esz;
        o->b_at = (size_t)ob * esz;
        o->c_at = (size_t)oc * esz;
    }
    *count = (int)calls;
    return KILN_OK;
}
