/* lower_conv.c -- Conv2D, ConvTranspose2D, MaxPool2D, AveragePool2D and
 * GlobalAveragePool as calls to the kernels of codegen/kernels/kk_conv.c.
 * The whole geometry goes in a constant array, so after inlining every
 * size, stride, pad and dilation is a constant and LLVM specializes the
 * loops. The attribute defaults and meanings follow ir/ops/conv.c and
 * ir/ops/pool.c (the reference kernels). */
#include <stdio.h>

#include "cg_internal.h"
#include "kernels/kk_conv.h"

_Static_assert((int)KK_F32 == (int)KILN_F32 && (int)KK_F64 == (int)KILN_F64 &&
                   (int)KK_F16 == (int)KILN_F16 && (int)KK_BF16 == (int)KILN_BF16,
               "kernel dtype codes are kiln_dtype values");

/* Multiply-adds (or loads) a chunk of work items should at least hold, so
 * that small kernels run on one thread. */
#define GRAIN_OPS 65536

static int64_t grain_for(int64_t ops_per_item)
{
    if (ops_per_item < 1) ops_per_item = 1;
    return ops_per_item >= GRAIN_OPS ? 1 : GRAIN_OPS / ops_per_item;
}

/* INTS attribute `name` into v (n values), or def in each when unset. */
static void read_ints(const ir_node *n, const char *name, int64_t *v, int cnt, int64_t def)
{
    int got;
    const int64_t *a = ir_node_ints(n, name, &got);
    for (int i = 0; i < cnt; i++) v[i] = got == cnt ? a[i] : def;
}

static int check_float(cg_ctx *c, cg_kernel *k)
{
    kiln_dtype dt = k->out[0].type->dtype;
    if (dt == KILN_F32 || dt == KILN_F64 || dt == KILN_F16 || dt == KILN_BF16) return 0;
    return cg_error(c, k, KILN_ERR_UNIMPLEMENTED,
                    "the CPU backend compiles %s only for float dtypes",
                    ir_op_def(k->node->op)->name);
}

static size_t type_size(const ir_type *t)
{
    size_t s = 1;
    for (int i = 0; i < t->rank; i++) s *= (size_t)t->dims[i];
    return s;
}

/* The geometry shared by both convolutions (the shapes from the operand
 * types, the attributes as the reference reads them). */
static void conv_geom(const cg_kernel *k, int64_t *g)
{
    const ir_type *x = k->in[0].type, *w = k->in[1].type, *y = k->out[0].type;
    int64_t st[2], dl[2], pd[4];
    read_ints(k->node, "strides", st, 2, 1);
    read_ints(k->node, "dilations", dl, 2, 1);
    read_ints(k->node, "pads", pd, 4, 0);
    for (int i = 0; i < KKG_COUNT; i++) g[i] = 0;
    g[KKG_DT] = y->dtype;
    g[KKG_N] = x->dims[0];
    g[KKG_C] = x->dims[1];
    g[KKG_H] = x->dims[2];
    g[KKG_W] = x->dims[3];
    g[KKG_M] = y->dims[1];
    g[KKG_KH] = w->dims[2];
    g[KKG_KW] = w->dims[3];
    g[KKG_OH] = y->dims[2];
    g[KKG_OW] = y->dims[3];
    g[KKG_G] = ir_node_int(k->node, "group");
    g[KKG_SH] = st[0];
    g[KKG_SW] = st[1];
    g[KKG_DH] = dl[0];
    g[KKG_DW] = dl[1];
    g[KKG_PT] = pd[0];
    g[KKG_PL] = pd[1];
    g[KKG_PB] = pd[2];
    g[KKG_PR] = pd[3];
    g[KKG_BIAS] = k->ninputs > 2;
}

static void emit_conv_call(cg_ctx *c, cg_kernel *k, const char *fn, const int64_t *g,
                           LLVMValueRef epi, LLVMValueRef ctx)
{
    if (epi) {
        char name[64];
        snprintf(name, sizeof name, "%s_epi", fn);
        LLVMValueRef args[9] = {
            k->in[0].ptr, k->in[1].ptr, k->ninputs > 2 ? k->in[2].ptr : LLVMConstNull(c->t_ptr),
            k->out[0].ptr, cg_const_i64s(c, g, KKG_COUNT), epi, ctx, k->begin, k->end,
        };
        cg_call_void(c, name, args, 9);
        return;
    }
    LLVMValueRef args[7] = {
        k->in[0].ptr, k->in[1].ptr, k->ninputs > 2 ? k->in[2].ptr : LLVMConstNull(c->t_ptr),
        k->out[0].ptr, cg_const_i64s(c, g, KKG_COUNT), k->begin, k->end,
    };
    cg_call_void(c, fn, args, 7);
}

static int lower_conv2d(cg_ctx *c, cg_kernel *k, LLVMValueRef epi, LLVMValueRef ctx);

int cg_lower_Conv2D(cg_ctx *c, cg_kernel *k) { return lower_conv2d(c, k, NULL, NULL); }

/* A Conv2D head with an elementwise epilogue (passes/fuse.c): the
 * convolution writes the group's output and the epilogue rewrites each run
 * of it as soon as a work item has finished it. */
int cg_lower_conv_group(cg_ctx *c, cg_kernel *k)
{
    const cg_group *gr = k->group;
    int head = -1;
    for (int m = 0; m < gr->nmembers && head < 0; m++)
        if (k->graph->nodes[gr->members[m]].op == IR_OP_Conv2D) head = gr->members[m];
    if (head < 0) return cg_error(c, k, KILN_ERR_INTERNAL, "fused convolution without a convolution");
    const ir_node *n = &k->graph->nodes[head];
    cg_operand ops[4];
    for (int t = 0; t < n->ninputs && t < 3; t++) {
        ops[t].ptr = NULL;
        ops[t].type = ir_value_type(k->graph, n->inputs[t]);
        for (int i = 0; i < gr->nleaves; i++)
            if (gr->leaves[i].node == n->inputs[t].node && gr->leaves[i].index == n->inputs[t].index) ops[t].ptr = k->in[i].ptr;
        if (!ops[t].ptr) return cg_error(c, k, KILN_ERR_INTERNAL, "fused convolution without its operands");
    }
    ops[3] = k->out[0];
    LLVMValueRef epi = cg_emit_epilogue(c, k, head);
    if (!epi) return cg_error(c, k, KILN_ERR_INTERNAL, "cannot emit the epilogue");
    cg_kernel hk = *k;
    hk.node = n;
    hk.group = NULL;
    hk.ninputs = n->ninputs;
    hk.in = ops;
    hk.out = &ops[3];
    int rc = lower_conv2d(c, &hk, epi, k->args);
    k->work = hk.work;
    k->grain = hk.grain;
    return rc;
}

static int lower_conv2d(cg_ctx *c, cg_kernel *k, LLVMValueRef epi, LLVMValueRef ctx)
{
    if (check_float(c, k)) return -1;
    int64_t g[KKG_COUNT];
    conv_geom(k, g);
    k->work = 1;
    if (type_size(k->out[0].type) == 0) return 0; /* nothing to compute */
    const int64_t G = g[KKG_G], Cg = g[KKG_C] / G, Mg = g[KKG_M] / G;
    const int64_t nmb = (Mg + KK_CONV_MB - 1) / KK_CONV_MB, taps = Cg * g[KKG_KH] * g[KKG_KW];
    bool gemm = g[KKG_KH] == 1 && g[KKG_KW] == 1 && g[KKG_SH] == 1 && g[KKG_SW] == 1 &&
                !g[KKG_PT] && !g[KKG_PL] && !g[KKG_PB] && !g[KKG_PR];
    if (gemm) {
        int64_t P = g[KKG_H] * g[KKG_W], npc = (P + KK_CONV_PIX - 1) / KK_CONV_PIX;
        k->work = g[KKG_N] * G * nmb * npc;
        k->grain = grain_for(KK_CONV_MB * (P < KK_CONV_PIX ? P : KK_CONV_PIX) * (Cg ? Cg : 1));
        emit_conv_call(c, k, "kk_conv2d_1x1", g, epi, ctx);
    } else {
        k->work = g[KKG_N] * G * nmb * g[KKG_OH];
        k->grain = grain_for(KK_CONV_MB * g[KKG_OW] * (taps ? taps : 1));
        emit_conv_call(c, k, "kk_conv2d", g, epi, ctx);
    }
    return 0;
}

int cg_lower_ConvTranspose2D(cg_ctx *c, cg_kernel *k)
{
    if (check_float(c, k)) return -1;
    int64_t g[KKG_COUNT];
    conv_geom(k, g);
    k->work = 1;
    if (type_size(k->out[0].type) == 0) return 0;
    const int64_t Cg = g[KKG_C] / g[KKG_G];
    k->work = g[KKG_N] * g[KKG_M] * g[KKG_OH];
    /* each output row gathers about Cg * KH * KW * W / (SH * SW) products */
    k->grain = grain_for(Cg * g[KKG_KW] * g[KKG_W] * (g[KKG_KH] / g[KKG_SH] + 1) + g[KKG_OW]);
    emit_conv_call(c, k, "kk_conv_transpose2d", g, NULL, NULL);
    return 0;
}

static int lower_pool(cg_ctx *c, cg_kernel *k, bool is_max)
{
    if (check_float(c, k)) return -1;
    const ir_type *x = k->in[0].type, *y = k->out[0].type;
    int64_t g[KKG_COUNT] = {0}, ks[2], st[2], dl[2] = {1, 1}, pd[4];
    read_ints(k->node, "kernel_shape", ks, 2, 1);
    read_ints(k->node, "strides", st, 2, 1);
    read_ints(k->node, "pads", pd, 4, 0);
    if (is_max) read_ints(k->node, "dilations", dl, 2, 1);
    g[KKG_DT] = y->dtype;
    g[KKG_N] = x->dims[0];
    g[KKG_C] = g[KKG_M] = x->dims[1];
    g[KKG_H] = x->dims[2];
    g[KKG_W] = x->dims[3];
    g[KKG_KH] = ks[0];
    g[KKG_KW] = ks[1];
    g[KKG_OH] = y->dims[2];
    g[KKG_OW] = y->dims[3];
    g[KKG_G] = 1;
    g[KKG_SH] = st[0];
    g[KKG_SW] = st[1];
    g[KKG_DH] = dl[0];
    g[KKG_DW] = dl[1];
    g[KKG_PT] = pd[0];
    g[KKG_PL] = pd[1];
    g[KKG_PB] = pd[2];
    g[KKG_PR] = pd[3];
    g[KKG_FLAG] = !is_max && ir_node_int(k->node, "count_include_pad") == 1;
    k->work = 1;
    if (type_size(y) == 0) return 0;
    k->work = g[KKG_N] * g[KKG_C] * g[KKG_OH];
    k->grain = grain_for(g[KKG_OW] * ks[0] * ks[1]);
    LLVMValueRef args[5] = {k->in[0].ptr, k->out[0].ptr, cg_const_i64s(c, g, KKG_COUNT), k->begin,
                            k->end};
    cg_call_void(c, is_max ? "kk_max_pool2d" : "kk_avg_pool2d", args, 5);
    return 0;
}

int cg_lower_MaxPool2D(cg_ctx *c, cg_kernel *k) { return lower_pool(c, k, true); }
int cg_lower_AveragePool2D(cg_ctx *c, cg_kernel *k) { return lower_pool(c, k, false); }

int cg_lower_GlobalAveragePool(cg_ctx *c, cg_kernel *k)
{
    if (check_float(c, k)) return -1;
    const ir_type *x = k->in[0].type;
    int64_t planes = x->dims[0] * x->dims[1], plane = x->dims[2] * x->dims[3];
    k->work = planes > 0 ? planes : 1;
    k->grain = grain_for(plane);
    if (planes == 0) return 0;
    LLVMValueRef args[6] = {k->in[0].ptr, k->out[0].ptr, cg_i64(c, x->dtype), cg_i64(c, plane),
                            k->begin, k->end};
    cg_call_void(c, "kk_global_avg_pool", args, 6);
    return 0;
}
