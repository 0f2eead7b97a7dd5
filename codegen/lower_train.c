/* lower_train.c -- the backward ops of ir/ops/train.c (Conv2DFilterGrad,
 * MaxPool2DGrad, AveragePool2DGrad, MaxPool2DSelect, GatherGrad) as calls
 * to the kernels of codegen/kernels/kk_train.c. The geometry goes in a
 * constant array, so after inlining every size is a constant. Attribute
 * defaults and meanings follow the reference kernels. */
#include <string.h>

#include "cg_internal.h"
#include "kernels/kk_train.h"

/* Multiply-adds a chunk of work items should at least hold. */
#define GRAIN_OPS 65536

static int64_t grain_for(int64_t ops_per_item)
{
    if (ops_per_item < 1) ops_per_item = 1;
    return ops_per_item >= GRAIN_OPS ? 1 : GRAIN_OPS / ops_per_item;
}

static void read_ints(const ir_node *n, const char *name, int64_t *v, int cnt, int64_t def)
{
    int got = 0;
    const int64_t *a = ir_op_attr_index(ir_op_def(n->op), name) >= 0 ? ir_node_ints(n, name, &got) : NULL;
    for (int i = 0; i < cnt; i++) v[i] = got == cnt ? a[i] : def;
}

static int check_float(cg_ctx *c, cg_kernel *k)
{
    kiln_dtype dt = k->out[0].type->dtype;
    if (dt == KILN_F32 || dt == KILN_F64 || dt == KILN_F16 || dt == KILN_BF16) return 0;
    return cg_error(c, k, KILN_ERR_UNIMPLEMENTED, "the CPU backend compiles %s only for float dtypes",
                    ir_op_def(k->node->op)->name);
}

/* The geometry array of a node whose inputs are (x, dy): x the forward
 * input, dy the gradient of the forward output. */
static void geom(const cg_kernel *k, const ir_type *x, const ir_type *dy, int64_t *g)
{
    const ir_node *n = k->node;
    int64_t ks[2], st[2], dl[2], pd[4];
    read_ints(n, "kernel_shape", ks, 2, 1);
    read_ints(n, "strides", st, 2, 1);
    read_ints(n, "dilations", dl, 2, 1);
    read_ints(n, "pads", pd, 4, 0);
    const ir_opdef *def = ir_op_def(n->op);
    for (int i = 0; i < KTG_COUNT; i++) g[i] = 0;
    g[KTG_DT] = k->out[0].type->dtype;
    g[KTG_N] = x->dims[0];
    g[KTG_C] = x->dims[1];
    g[KTG_H] = x->dims[2];
    g[KTG_W] = x->dims[3];
    g[KTG_M] = dy->dims[1];
    g[KTG_OH] = dy->dims[2];
    g[KTG_OW] = dy->dims[3];
    g[KTG_KH] = ks[0];
    g[KTG_KW] = ks[1];
    g[KTG_G] = ir_op_attr_index(def, "group") >= 0 ? ir_node_int(n, "group") : 1;
    g[KTG_SH] = st[0];
    g[KTG_SW] = st[1];
    g[KTG_DH] = dl[0];
    g[KTG_DW] = dl[1];
    g[KTG_PT] = pd[0];
    g[KTG_PL] = pd[1];
    g[KTG_PB] = pd[2];
    g[KTG_PR] = pd[3];
    g[KTG_FLAG] = ir_op_attr_index(def, "count_include_pad") >= 0 &&
                  ir_node_int(n, "count_include_pad") == 1;
}

int cg_lower_Conv2DFilterGrad(cg_ctx *c, cg_kernel *k)
{
    if (check_float(c, k)) return -1;
    int64_t g[KTG_COUNT];
    geom(k, k->in[0].type, k->in[1].type, g);
    int64_t items = g[KTG_M] * (g[KTG_C] / g[KTG_G]);
    k->work = items > 0 ? items : 1;
    k->grain = grain_for(g[KTG_KH] * g[KTG_KW] * g[KTG_N] * g[KTG_OH] * g[KTG_OW]);
    if (items == 0) return 0;
    LLVMValueRef args[6] = {k->in[0].ptr, k->in[1].ptr, k->out[0].ptr, cg_const_i64s(c, g, KTG_COUNT),
                            k->begin, k->end};
    cg_call_void(c, "kk_conv2d_filter_grad", args, 6);
    return 0;
}

static int lower_pool_grad(cg_ctx *c, cg_kernel *k, bool is_max)
{
    if (check_float(c, k)) return -1;
    int64_t g[KTG_COUNT];
    geom(k, k->in[0].type, k->in[1].type, g);
    int64_t planes = g[KTG_N] * g[KTG_C];
    k->work = planes > 0 ? planes : 1;
    k->grain = grain_for(g[KTG_OH] * g[KTG_OW] * g[KTG_KH] * g[KTG_KW] + g[KTG_H] * g[KTG_W]);
    if (planes == 0) return 0;
    if (is_max) {
        LLVMValueRef args[6] = {k->in[0].ptr, k->in[1].ptr, k->out[0].ptr,
                                cg_const_i64s(c, g, KTG_COUNT), k->begin, k->end};
        cg_call_void(c, "kk_max_pool2d_grad", args, 6);
    } else {
        LLVMValueRef args[5] = {k->in[1].ptr, k->out[0].ptr, cg_const_i64s(c, g, KTG_COUNT), k->begin,
                                k->end};
        cg_call_void(c, "kk_avg_pool2d_grad", args, 5);
    }
    return 0;
}

int cg_lower_MaxPool2DGrad(cg_ctx *c, cg_kernel *k) { return lower_pool_grad(c, k, true); }

int cg_lower_MaxPool2DSelect(cg_ctx *c, cg_kernel *k)
{
    if (check_float(c, k)) return -1;
    int64_t g[KTG_COUNT];
    geom(k, k->in[0].type, k->out[0].type, g);
    int64_t planes = g[KTG_N] * g[KTG_C];
    k->work = planes > 0 ? planes : 1;
    k->grain = grain_for(g[KTG_OH] * g[KTG_OW] * g[KTG_KH] * g[KTG_KW]);
    if (planes == 0) return 0;
    LLVMValueRef args[6] = {k->in[0].ptr, k->in[1].ptr, k->out[0].ptr, cg_const_i64s(c, g, KTG_COUNT),
                            k->begin, k->end};
    cg_call_void(c, "kk_max_pool2d_select", args, 6);
    return 0;
}
int cg_lower_AveragePool2DGrad(cg_ctx *c, cg_kernel *k) { return lower_pool_grad(c, k, false); }

int cg_lower_GatherGrad(cg_ctx *c, cg_kernel *k)
{
    if (check_float(c, k)) return -1;
    const ir_type *idx = k->in[1].type, *dx = k->out[0].type;
    int a;
    if (!ir_norm_axis(ir_node_int(k->node, "axis"), dx->rank, &a))
        return cg_error(c, k, KILN_ERR_INTERNAL, "axis is out of range");
    if (idx->dtype != KILN_I32 && idx->dtype != KILN_I64)
        return cg_error(c, k, KILN_ERR_INTERNAL, "indices are %s, not i32 or i64",
                        kiln_dtype_name(idx->dtype));
    int64_t outer = 1, inner = 1, nidx = 1;
    for (int d = 0; d < a; d++) outer *= dx->dims[d];
    for (int d = a + 1; d < dx->rank; d++) inner *= dx->dims[d];
    for (int d = 0; d < idx->rank; d++) nidx *= idx->dims[d];
    k->work = outer > 0 ? outer : 1;
    k->grain = grain_for((dx->dims[a] + nidx) * inner);
    LLVMValueRef args[] = {k->in[0].ptr, k->in[1].ptr, cg_i64(c, idx->dtype == KILN_I64), k->out[0].ptr,
                           cg_i64(c, dx->dtype), cg_i64(c, outer), cg_i64(c, dx->dims[a]),
                           cg_i64(c, nidx), cg_i64(c, inner), k->err, k->begin, k->end};
    cg_call_void(c, "kk_gather_grad", args, (int)(sizeof args / sizeof args[0]));
    return 0;
}

int cg_lower_CumProdGrad(cg_ctx *c, cg_kernel *k)
{
    if (check_float(c, k)) return -1;
    const ir_type *x = k->in[0].type;
    int a;
    if (!ir_norm_axis(ir_node_int(k->node, "axis"), x->rank, &a))
        return cg_error(c, k, KILN_ERR_INTERNAL, "axis is out of range");
    int64_t outer = 1, inner = 1, n = x->dims[a];
    for (int d = 0; d < a; d++) outer *= x->dims[d];
    for (int d = a + 1; d < x->rank; d++) inner *= x->dims[d];
    int64_t lines = outer * inner;
    k->work = lines > 0 ? lines : 1;
    k->grain = grain_for(4 * n);
    if (lines == 0 || n == 0) return 0;
    LLVMValueRef args[] = {k->in[0].ptr, k->in[1].ptr, k->out[0].ptr, cg_i64(c, x->dtype), cg_i64(c, n),
                           cg_i64(c, inner), cg_i64(c, ir_node_int(k->node, "exclusive") != 0),
                           cg_i64(c, ir_node_int(k->node, "reverse") != 0), k->begin, k->end};
    cg_call_void(c, "kk_cumprod_grad", args, (int)(sizeof args / sizeof args[0]));
    return 0;
}

static int gs_code(const char *s, const char *a, const char *b, const char *c)
{
    if (!s) return -1;
    return strcmp(s, a) == 0 ? 0 : strcmp(s, b) == 0 ? 1 : strcmp(s, c) == 0 ? 2 : -1;
}

int cg_lower_GridSampleGrad(cg_ctx *c, cg_kernel *k)
{
    if (check_float(c, k)) return -1;
    const ir_type *x = k->in[0].type, *g = k->in[1].type, *dy = k->in[2].type;
    int mode = gs_code(ir_node_string(k->node, "mode"), "linear", "nearest", "cubic");
    int pad = gs_code(ir_node_string(k->node, "padding_mode"), "zeros", "border", "reflection");
    int kd = x->rank - 2;
    if (mode < 0 || pad < 0 || kd < 1 || kd > 8)
        return cg_error(c, k, KILN_ERR_INTERNAL, "invalid GridSampleGrad attributes or rank %d", x->rank);
    int64_t points = 1;
    for (int d = 2; d < dy->rank; d++) points *= dy->dims[d];
    k->work = x->dims[0] > 0 ? x->dims[0] : 1;
    k->grain = 1;
    if (x->dims[0] == 0) return 0;
    LLVMValueRef args[] = {k->in[0].ptr,  k->in[1].ptr, cg_i64(c, g->dtype), k->in[2].ptr, k->out[0].ptr,
                           k->out[1].ptr, cg_i64(c, x->dtype), cg_i64(c, kd), cg_const_i64s(c, x->dims + 2, kd),
                           cg_i64(c, x->dims[1]), cg_i64(c, points), cg_i64(c, mode), cg_i64(c, pad),
                           cg_i64(c, ir_node_int(k->node, "align_corners") != 0), k->begin, k->end};
    cg_call_void(c, "kk_grid_sample_grad", args, (int)(sizeof args / sizeof args[0]));
    return 0;
}
