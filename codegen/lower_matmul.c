/* lower_matmul.c -- MatMul and Gemm as calls to kk_matmul (the kernel
 * library), with every shape and stride a constant so LLVM specializes the
 * blocked loops for the product's sizes. */
#include "cg_internal.h"

#define MATMUL_ROWS_PER_ITEM 32

typedef struct {
    int64_t m, n, k, a_rs, a_cs, b_rs, b_cs;
    int batch_rank;
    int64_t batch[IR_MAX_RANK], a_bs[IR_MAX_RANK], b_bs[IR_MAX_RANK];
    int64_t nbatch;
} mm_shape;

/* Matrix dims and strides of one operand: (rows, cols) of op(X), strides. */
static void operand(const ir_type *t, bool left, bool trans, int64_t *rows, int64_t *cols,
                    int64_t *rs, int64_t *cs)
{
    if (t->rank == 1) {
        /* a vector: a row on the left, a column on the right */
        int64_t len = t->dims[0];
        if (left) *rows = 1, *cols = len, *rs = 0, *cs = 1;
        else *rows = len, *cols = 1, *rs = 1, *cs = 0;
        return;
    }
    int64_t r = t->dims[t->rank - 2], c = t->dims[t->rank - 1];
    if (trans) *rows = c, *cols = r, *rs = 1, *cs = c;
    else *rows = r, *cols = c, *rs = c, *cs = 1;
}

/* Strides of an operand's batch dims, right-aligned to the output's batch
 * dims, 0 where broadcast. */
static void batch_strides(const ir_type *t, const mm_shape *s, int64_t *out)
{
    int own = t->rank >= 2 ? t->rank - 2 : 0;
    int64_t mat = t->rank >= 2 ? t->dims[t->rank - 2] * t->dims[t->rank - 1] : 0;
    int64_t st[IR_MAX_RANK], acc = mat;
    for (int d = own - 1; d >= 0; d--) {
        st[d] = acc;
        acc *= t->dims[d];
    }
    for (int d = 0; d < s->batch_rank; d++) {
        int j = d - (s->batch_rank - own);
        out[d] = j >= 0 && t->dims[j] != 1 ? st[j] : 0;
    }
}

static int emit_call(cg_ctx *c, cg_kernel *k, const mm_shape *s, LLVMValueRef aptr, LLVMValueRef bptr,
                     LLVMValueRef cptr, int64_t c_rs, int64_t c_cs, const int64_t *c_bs, double alpha,
                     double beta, LLVMValueRef epi)
{
    int64_t blocks = (s->m + MATMUL_ROWS_PER_ITEM - 1) / MATMUL_ROWS_PER_ITEM;
    k->work = s->nbatch * blocks;
    if (k->work < 1) k->work = 1;
    /* about a million multiply-adds per chunk */
    int64_t per_item = MATMUL_ROWS_PER_ITEM * (s->n ? s->n : 1) * (s->k ? s->k : 1);
    k->grain = per_item >= (1 << 20) ? 1 : (1 << 20) / per_item;
    if (s->nbatch * blocks == 0) return 0;
    int64_t zero[IR_MAX_RANK] = {0};
    int br = s->batch_rank;
    LLVMValueRef args[25] = {
        cg_i32(c, (int32_t)k->out[0].type->dtype),
        aptr, bptr, k->out[0].ptr,
        cptr ? cptr : LLVMConstNull(c->t_ptr),
        cg_i64(c, s->m), cg_i64(c, s->n), cg_i64(c, s->k),
        cg_i64(c, s->a_rs), cg_i64(c, s->a_cs), cg_i64(c, s->b_rs), cg_i64(c, s->b_cs),
        cg_i64(c, br),
        cg_const_i64s(c, br ? s->batch : zero, br ? br : 1),
        cg_const_i64s(c, br ? s->a_bs : zero, br ? br : 1),
        cg_const_i64s(c, br ? s->b_bs : zero, br ? br : 1),
        c_bs ? cg_const_i64s(c, br ? c_bs : zero, br ? br : 1) : LLVMConstNull(c->t_ptr),
        cg_i64(c, c_rs), cg_i64(c, c_cs),
        LLVMConstReal(c->t_f64, alpha), LLVMConstReal(c->t_f64, beta),
        epi ? epi : LLVMConstNull(c->t_ptr), epi ? k->args : LLVMConstNull(c->t_ptr),
        k->begin, k->end,
    };
    cg_call_void(c, "kk_matmul", args, 25);
    return 0;
}

/* MatMul node n with operand pointers a, b (and an epilogue). */
static int lower_matmul(cg_ctx *c, cg_kernel *k, const kiln_graph *g, const ir_node *n, LLVMValueRef a,
                        LLVMValueRef b, LLVMValueRef epi)
{
    const ir_type *ta = ir_value_type(g, n->inputs[0]), *tb = ir_value_type(g, n->inputs[1]), *ty = &n->outputs[0];
    bool trans_a = ir_node_int(n, "transpose_a") && ta->rank >= 2;
    bool trans_b = ir_node_int(n, "transpose_b") && tb->rank >= 2;
    mm_shape s = {0};
    int64_t kb;
    operand(ta, true, trans_a, &s.m, &s.k, &s.a_rs, &s.a_cs);
    operand(tb, false, trans_b, &kb, &s.n, &s.b_rs, &s.b_cs);
    if (kb != s.k) return cg_error(c, k, KILN_ERR_INTERNAL, "inner dims differ at compile time");
    s.batch_rank = ty->rank - (ta->rank >= 2) - (tb->rank >= 2);
    if (s.batch_rank < 0) s.batch_rank = 0;
    s.nbatch = 1;
    for (int d = 0; d < s.batch_rank; d++) {
        s.batch[d] = ty->dims[d];
        s.nbatch *= ty->dims[d];
    }
    batch_strides(ta, &s, s.a_bs);
    batch_strides(tb, &s, s.b_bs);
    return emit_call(c, k, &s, a, b, NULL, 0, 0, NULL, 1.0, 0.0, epi);
}

static int lower_gemm(cg_ctx *c, cg_kernel *k, const kiln_graph *g, const ir_node *n, LLVMValueRef a,
                      LLVMValueRef b, LLVMValueRef cptr, LLVMValueRef epi)
{
    const ir_type *ta = ir_value_type(g, n->inputs[0]), *tb = ir_value_type(g, n->inputs[1]);
    mm_shape s = {0};
    int64_t kb;
    operand(ta, true, ir_node_int(n, "transA") != 0, &s.m, &s.k, &s.a_rs, &s.a_cs);
    operand(tb, false, ir_node_int(n, "transB") != 0, &kb, &s.n, &s.b_rs, &s.b_cs);
    s.nbatch = 1;
    int64_t c_rs = 0, c_cs = 0;
    if (n->ninputs > 2) {
        const ir_type *tc = ir_value_type(g, n->inputs[2]);
        if (tc->rank >= 1 && tc->dims[tc->rank - 1] != 1) c_cs = 1;
        if (tc->rank == 2 && tc->dims[0] != 1) c_rs = tc->dims[1];
    }
    return emit_call(c, k, &s, a, b, cptr, c_rs, c_cs, NULL, ir_node_float(n, "alpha"), ir_node_float(n, "beta"), epi);
}

int cg_lower_MatMul(cg_ctx *c, cg_kernel *k)
{
    return lower_matmul(c, k, k->graph, k->node, k->in[0].ptr, k->in[1].ptr, NULL);
}

int cg_lower_Gemm(cg_ctx *c, cg_kernel *k)
{
    return lower_gemm(c, k, k->graph, k->node, k->in[0].ptr, k->in[1].ptr, k->ninputs > 2 ? k->in[2].ptr : NULL, NULL);
}

/* A MatMul or Gemm head with an elementwise epilogue: the product is written
 * into the root's output and the epilogue rewrites each finished block. */
int cg_lower_matmul_group(cg_ctx *c, cg_kernel *k)
{
    const kiln_graph *g = k->graph;
    const cg_group *gr = k->group;
    int head = -1;
    for (int m = 0; m < gr->nmembers && head < 0; m++)
        if (g->nodes[gr->members[m]].op == IR_OP_MatMul || g->nodes[gr->members[m]].op == IR_OP_Gemm) head = gr->members[m];
    if (head < 0) return cg_error(c, k, KILN_ERR_INTERNAL, "fused product without a product");
    const ir_node *n = &g->nodes[head];
    LLVMValueRef ptr[3] = {NULL, NULL, NULL};
    for (int t = 0; t < n->ninputs && t < 3; t++)
        for (int i = 0; i < gr->nleaves; i++)
            if (gr->leaves[i].node == n->inputs[t].node && gr->leaves[i].index == n->inputs[t].index) ptr[t] = k->in[i].ptr;
    if (!ptr[0] || !ptr[1]) return cg_error(c, k, KILN_ERR_INTERNAL, "fused product without its operands");
    LLVMValueRef epi = cg_emit_epilogue(c, k, head);
    if (!epi) return cg_error(c, k, KILN_ERR_INTERNAL, "cannot emit the epilogue");
    if (n->op == IR_OP_MatMul) return lower_matmul(c, k, g, n, ptr[0], ptr[1], epi);
    return lower_gemm(c, k, g, n, ptr[0], ptr[1], ptr[2], epi);
}
