/* matmul.c -- matrix products: MatMul (numpy matmul semantics, batch dims
 * broadcast, optional transposes) and Gemm (alpha * op(A) op(B) + beta * C).
 * Reference kernels accumulate floats in double and integers in int64
 * (wrapping), then store in the output dtype. */
#include <math.h>

#include "../ir.h"

#define MATMUL_DTYPES (IR_DT_FLOATS | IR_DT_MASK(KILN_I32) | IR_DT_MASK(KILN_I64))

/* An attribute that is a flag must be 0 or 1. */
static int check_flag(ir_infer_ctx *cx, const char *name)
{
    int64_t v = ir_node_int(cx->node, name);
    if (v != 0 && v != 1)
        return ir_infer_error(cx, "attribute '%s' must be 0 or 1, got %lld", name, (long long)v);
    return 0;
}

/* Symbolic-aware dim equality: unknown dims are checked at run time. */
static bool dims_may_agree(int64_t a, int64_t b) { return a < 0 || b < 0 || a == b; }

/* One operand of a product seen as a stack of matrices: rows x cols after
 * the optional transpose, and the element strides of a row and a column step
 * inside one stored matrix. A 1-D a is [1,K] and a 1-D b is [K,1]. */
typedef struct {
    int64_t rows, cols;
    int64_t row_stride, col_stride; /* in elements, within one matrix */
    int64_t size;                   /* elements of one stored matrix */
    int batch_rank;
    const int64_t *batch;
} mat_view;

static void view_operand(const ir_type *t, bool is_b, bool transpose, mat_view *v)
{
    if (t->rank == 1) {
        int64_t k = t->dims[0];
        v->rows = is_b ? k : 1;
        v->cols = is_b ? 1 : k;
        v->row_stride = is_b ? 1 : 0;
        v->col_stride = is_b ? 0 : 1;
        v->size = k;
        v->batch_rank = 0;
        v->batch = t->dims;
        return;
    }
    int64_t r = t->dims[t->rank - 2], c = t->dims[t->rank - 1];
    v->size = r * c;
    v->batch_rank = t->rank - 2;
    v->batch = t->dims;
    if (transpose) {
        v->rows = c;
        v->cols = r;
        v->row_stride = 1;
        v->col_stride = c;
    } else {
        v->rows = r;
        v->cols = c;
        v->row_stride = c;
        v->col_stride = 1;
    }
}

/* sum_q a[pa + q * sa] * b[pb + q * sb] for q < k: in double for floats,
 * in wrapping int64 (as uint64) for integers. */
static double dot_f64(const kiln_tensor *a, size_t pa, int64_t sa, const kiln_tensor *b, size_t pb,
                      int64_t sb, int64_t k)
{
    double acc = 0;
    for (int64_t q = 0; q < k; q++)
        acc += ir_load_f64(a->dtype, a->data, pa + (size_t)(q * sa)) *
               ir_load_f64(b->dtype, b->data, pb + (size_t)(q * sb));
    return acc;
}

static uint64_t dot_i64(const kiln_tensor *a, size_t pa, int64_t sa, const kiln_tensor *b,
                        size_t pb, int64_t sb, int64_t k)
{
    uint64_t acc = 0;
    for (int64_t q = 0; q < k; q++)
        acc += (uint64_t)ir_load_i64(a->dtype, a->data, pa + (size_t)(q * sa)) *
               (uint64_t)ir_load_i64(b->dtype, b->data, pb + (size_t)(q * sb));
    return acc;
}

/* ---- MatMul ---- */

static const ir_attrdef matmul_attrs[] = {
    IR_ATTR_I("transpose_a", 0),
    IR_ATTR_I("transpose_b", 0),
};

static int infer_matmul(ir_infer_ctx *cx)
{
    if (check_flag(cx, "transpose_a") || check_flag(cx, "transpose_b")) return -1;
    if (ir_infer_require_dtypes(cx, 0, MATMUL_DTYPES) || ir_infer_same_dtype(cx, 0, 1)) return -1;
    const ir_type *a = &cx->in[0], *b = &cx->in[1];
    if (a->rank < 1 || b->rank < 1)
        return ir_infer_error(cx, "inputs must have rank >= 1 (a scalar is not a matrix)");
    mat_view va, vb;
    view_operand(a, false, ir_node_int(cx->node, "transpose_a") != 0, &va);
    view_operand(b, true, ir_node_int(cx->node, "transpose_b") != 0, &vb);
    if (!dims_may_agree(va.cols, vb.rows))
        return ir_infer_error(cx, "inner dimensions differ: %lld (a) vs %lld (b)",
                              (long long)va.cols, (long long)vb.rows);
    ir_type ba = {.dtype = a->dtype, .rank = va.batch_rank};
    ir_type bb = {.dtype = b->dtype, .rank = vb.batch_rank};
    for (int i = 0; i < va.batch_rank; i++) ba.dims[i] = va.batch[i];
    for (int i = 0; i < vb.batch_rank; i++) bb.dims[i] = vb.batch[i];
    ir_type out;
    if (!ir_broadcast(&ba, &bb, &out))
        return ir_infer_error(cx, "batch dimensions do not broadcast");
    out.dtype = a->dtype;
    if (a->rank >= 2) out.dims[out.rank++] = va.rows;
    if (b->rank >= 2) out.dims[out.rank++] = vb.cols;
    cx->out[0] = out;
    return 0;
}

/* y[batch, i, j] = sum_k a[i, k] * b[k, j] over broadcast batches. The
 * output's batch dims are those of ir_broadcast of the operands' batches. */
static int kernel_matmul(ir_kernel_ctx *kx)
{
    const kiln_tensor *a = kx->in[0], *b = kx->in[1];
    kiln_tensor *y = kx->out[0];
    ir_type ta, tb;
    ir_tensor_type(a, &ta);
    ir_tensor_type(b, &tb);
    mat_view va, vb;
    view_operand(&ta, false, ir_node_int(kx->node, "transpose_a") != 0, &va);
    view_operand(&tb, true, ir_node_int(kx->node, "transpose_b") != 0, &vb);
    int64_t m = va.rows, k = va.cols, n = vb.cols;
    int batch_rank = y->rank - (a->rank >= 2) - (b->rank >= 2);
    /* Batch strides in elements: each operand's matrices are contiguous. */
    int64_t sa[IR_MAX_RANK], sb[IR_MAX_RANK];
    ir_broadcast_strides(va.batch_rank, va.batch, batch_rank, sa);
    ir_broadcast_strides(vb.batch_rank, vb.batch, batch_rank, sb);
    for (int d = 0; d < batch_rank; d++) {
        sa[d] *= va.size;
        sb[d] *= vb.size;
    }
    ir_iter it;
    ir_iter_init(&it, batch_rank, y->dims);
    ir_iter_add(&it, sa);
    ir_iter_add(&it, sb);
    int64_t nbatch = 1;
    for (int d = 0; d < batch_rank; d++) nbatch *= y->dims[d];
    bool is_float = ir_dtype_is_float(y->dtype);
    size_t o = 0;
    for (int64_t bi = 0; bi < nbatch; bi++, ir_iter_next(&it)) {
        for (int64_t i = 0; i < m; i++) {
            for (int64_t j = 0; j < n; j++, o++) {
                size_t pa = (size_t)(it.off[0] + i * va.row_stride);
                size_t pb = (size_t)(it.off[1] + j * vb.col_stride);
                if (is_float)
                    ir_store_f64(y->dtype, y->data, o,
                                 dot_f64(a, pa, va.col_stride, b, pb, vb.row_stride, k));
                else
                    ir_store_i64(y->dtype, y->data, o,
                                 (int64_t)dot_i64(a, pa, va.col_stride, b, pb, vb.row_stride, k));
            }
        }
    }
    return 0;
}

const ir_opdef ir_opdef_MatMul = {
    .name = "MatMul", .min_inputs = 2, .max_inputs = 2, .noutputs = 1,
    .attrs = matmul_attrs, .nattrs = 2,
    .infer = infer_matmul, .kernel = kernel_matmul, .grad = ir_grad_MatMul,
    .doc = "a @ b, numpy matmul semantics; transpose_a/_b swap the last two dims of a/b first.",
};

/* ---- Gemm ---- */

static const ir_attrdef gemm_attrs[] = {
    IR_ATTR_F("alpha", 1.0),
    IR_ATTR_F("beta", 1.0),
    IR_ATTR_I("transA", 0),
    IR_ATTR_I("transB", 0),
};

/* Integer Gemm computes exactly in int64, so alpha and beta must be whole. */
static bool is_whole(double v) { return isfinite(v) && v == floor(v) && fabs(v) < 9.0e15; }

static int infer_gemm(ir_infer_ctx *cx)
{
    if (check_flag(cx, "transA") || check_flag(cx, "transB")) return -1;
    if (ir_infer_require_dtypes(cx, 0, MATMUL_DTYPES) ||
        ir_infer_same_dtype(cx, 0, cx->ninputs - 1))
        return -1;
    const ir_type *a = &cx->in[0], *b = &cx->in[1];
    if (a->rank != 2 || b->rank != 2)
        return ir_infer_error(cx, "A and B must have rank 2, got ranks %d and %d", a->rank,
                              b->rank);
    if (!ir_dtype_is_float(a->dtype)) {
        double alpha = ir_node_float(cx->node, "alpha"), beta = ir_node_float(cx->node, "beta");
        if (!is_whole(alpha) || !is_whole(beta))
            return ir_infer_error(cx, "integer Gemm needs whole-number alpha and beta, got %g, %g",
                                  alpha, beta);
    }
    mat_view va, vb;
    view_operand(a, false, ir_node_int(cx->node, "transA") != 0, &va);
    view_operand(b, true, ir_node_int(cx->node, "transB") != 0, &vb);
    if (!dims_may_agree(va.cols, vb.rows))
        return ir_infer_error(cx, "inner dimensions differ: %lld (A) vs %lld (B)",
                              (long long)va.cols, (long long)vb.rows);
    ir_type out = {.dtype = a->dtype, .rank = 2, .dims = {va.rows, vb.cols}};
    if (cx->ninputs == 3) {
        /* C broadcasts one way to [M, N]: each of its dims (right-aligned)
         * is 1 or the result's. */
        const ir_type *c = &cx->in[2];
        if (c->rank > 2)
            return ir_infer_error(cx, "C has rank %d; it must broadcast to [M, N]", c->rank);
        for (int i = 0; i < c->rank; i++) {
            int64_t cd = c->dims[i], od = out.dims[2 - c->rank + i];
            if (cd != 1 && !dims_may_agree(cd, od))
                return ir_infer_error(cx, "C does not broadcast to the result [%lld,%lld]",
                                      (long long)out.dims[0], (long long)out.dims[1]);
        }
    }
    cx->out[0] = out;
    return 0;
}

static int kernel_gemm(ir_kernel_ctx *kx)
{
    const kiln_tensor *a = kx->in[0], *b = kx->in[1];
    const kiln_tensor *c = kx->ninputs == 3 ? kx->in[2] : NULL;
    kiln_tensor *y = kx->out[0];
    ir_type ta, tb;
    ir_tensor_type(a, &ta);
    ir_tensor_type(b, &tb);
    mat_view va, vb;
    view_operand(&ta, false, ir_node_int(kx->node, "transA") != 0, &va);
    view_operand(&tb, true, ir_node_int(kx->node, "transB") != 0, &vb);
    int64_t m = va.rows, k = va.cols, n = vb.cols;
    double alpha = ir_node_float(kx->node, "alpha"), beta = ir_node_float(kx->node, "beta");
    int64_t sc[2] = {0, 0};
    if (c) ir_broadcast_strides(c->rank, c->dims, 2, sc);
    bool is_float = ir_dtype_is_float(y->dtype);
    for (int64_t i = 0; i < m; i++) {
        for (int64_t j = 0; j < n; j++) {
            size_t o = (size_t)(i * n + j);
            size_t pa = (size_t)(i * va.row_stride), pb = (size_t)(j * vb.col_stride);
            size_t pc = (size_t)(i * sc[0] + j * sc[1]);
            if (is_float) {
                double r = alpha * dot_f64(a, pa, va.col_stride, b, pb, vb.row_stride, k);
                if (c) r += beta * ir_load_f64(c->dtype, c->data, pc);
                ir_store_f64(y->dtype, y->data, o, r);
            } else {
                /* alpha and beta are whole (checked by inference): exact in int64 */
                uint64_t r = (uint64_t)(int64_t)alpha *
                             dot_i64(a, pa, va.col_stride, b, pb, vb.row_stride, k);
                if (c) r += (uint64_t)(int64_t)beta * (uint64_t)ir_load_i64(c->dtype, c->data, pc);
                ir_store_i64(y->dtype, y->data, o, (int64_t)r);
            }
        }
    }
    return 0;
}

const ir_opdef ir_opdef_Gemm = {
    .name = "Gemm", .min_inputs = 2, .max_inputs = 3, .noutputs = 1,
    .attrs = gemm_attrs, .nattrs = 4,
    .infer = infer_gemm, .kernel = kernel_gemm, .grad = ir_grad_Gemm,
    .doc = "Gemm(A, B, [C]): alpha * op(A) @ op(B) + beta * C; 2-D A, B; C broadcasts to [M, N].",
};
