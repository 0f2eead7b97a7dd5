/* bitwise.c -- bitwise ops on integers (and bool): BitwiseAnd, BitwiseOr,
 * BitwiseXor and BitShift broadcast like the other binary elementwise ops;
 * BitwiseNot is unary. They act on the bits of the storage width, so the
 * reference kernels work on the uint64 view of each element and let the
 * store wrap it back to the dtype. They accept any dtype ir_dtype_is_int
 * names (BitShift: the unsigned ones), so new integer dtypes need no change
 * here. None is differentiable. */
#include <string.h>

#include "../ir.h"

static bool bitwise_dtype(kiln_dtype dt) { return ir_dtype_is_int(dt) || dt == KILN_BOOL; }
static bool shift_dtype(kiln_dtype dt) { return ir_dtype_is_int(dt) && !ir_dtype_is_signed(dt); }

/* Input i must satisfy ok(); the message says what the op takes. */
static int require(ir_infer_ctx *cx, int i, bool (*ok)(kiln_dtype), const char *what)
{
    if (ok(cx->in[i].dtype)) return 0;
    return ir_infer_error(cx, "input %d has dtype %s, which it does not support (it takes %s)", i,
                          kiln_dtype_name(cx->in[i].dtype), what);
}

static int infer_bitwise_binary(ir_infer_ctx *cx)
{
    if (require(cx, 0, bitwise_dtype, "integers or bool") || ir_infer_same_dtype(cx, 0, 1)) return -1;
    return ir_infer_broadcast(cx);
}

static int infer_bitwise_not(ir_infer_ctx *cx)
{
    if (require(cx, 0, bitwise_dtype, "integers or bool")) return -1;
    cx->out[0] = cx->in[0];
    return 0;
}

static int infer_bitshift(ir_infer_ctx *cx)
{
    const char *dir = ir_node_string(cx->node, "direction");
    if (!dir || (strcmp(dir, "LEFT") != 0 && strcmp(dir, "RIGHT") != 0))
        return ir_infer_error(cx, "direction must be \"LEFT\" or \"RIGHT\", got \"%s\"", dir ? dir : "(null)");
    if (require(cx, 0, shift_dtype, "unsigned integers") || ir_infer_same_dtype(cx, 0, 1)) return -1;
    return ir_infer_broadcast(cx);
}

enum { BIT_AND, BIT_OR, BIT_XOR, BIT_SHL, BIT_SHR };

/* The bits of x in a width of `bits` (zero above it). */
static uint64_t bits_of(int64_t x, unsigned bits)
{
    return bits >= 64 ? (uint64_t)x : (uint64_t)x & ((UINT64_C(1) << bits) - 1);
}

/* a op b on the storage width; shifts by >= the width give 0. */
static uint64_t bit_apply(int how, uint64_t a, uint64_t b, unsigned bits)
{
    switch (how) {
    case BIT_AND: return a & b;
    case BIT_OR: return a | b;
    case BIT_XOR: return a ^ b;
    case BIT_SHL: return b >= bits ? 0 : a << b;
    default: return b >= bits ? 0 : a >> b;
    }
}

static int run_bitwise(ir_kernel_ctx *kx, int how)
{
    const kiln_tensor *a = kx->in[0], *b = kx->in[1];
    kiln_tensor *y = kx->out[0];
    unsigned bits = (unsigned)kiln_dtype_size(a->dtype) * 8;
    ir_iter it;
    ir_iter_init(&it, y->rank, y->dims);
    for (int k = 0; k < 2; k++) {
        int64_t st[IR_MAX_RANK];
        ir_broadcast_strides(kx->in[k]->rank, kx->in[k]->dims, it.rank, st);
        ir_iter_add(&it, st);
    }
    for (size_t i = 0; i < y->size; i++, ir_iter_next(&it)) {
        uint64_t x = bits_of(ir_load_i64(a->dtype, a->data, (size_t)it.off[0]), bits);
        uint64_t z = bits_of(ir_load_i64(b->dtype, b->data, (size_t)it.off[1]), bits);
        ir_store_i64(y->dtype, y->data, i, (int64_t)bit_apply(how, x, z, bits));
    }
    return 0;
}

static int kernel_BitwiseAnd(ir_kernel_ctx *kx) { return run_bitwise(kx, BIT_AND); }
static int kernel_BitwiseOr(ir_kernel_ctx *kx) { return run_bitwise(kx, BIT_OR); }
static int kernel_BitwiseXor(ir_kernel_ctx *kx) { return run_bitwise(kx, BIT_XOR); }

static int kernel_BitShift(ir_kernel_ctx *kx)
{
    const char *dir = ir_node_string(kx->node, "direction");
    return run_bitwise(kx, dir && strcmp(dir, "LEFT") == 0 ? BIT_SHL : BIT_SHR);
}

static int kernel_BitwiseNot(ir_kernel_ctx *kx)
{
    const kiln_tensor *x = kx->in[0];
    kiln_tensor *y = kx->out[0];
    for (size_t i = 0; i < x->size; i++) {
        int64_t v = ir_load_i64(x->dtype, x->data, i);
        /* a bool's one bit flips; the store wraps the rest to the width */
        ir_store_i64(y->dtype, y->data, i, x->dtype == KILN_BOOL ? !v : (int64_t)~(uint64_t)v);
    }
    return 0;
}

#define BITWISE_OP(NAME, NIN, INFER, ATTRS, NATTRS, DOC)                                     \
    const ir_opdef ir_opdef_##NAME = {                                                     \
        .name = #NAME, .min_inputs = NIN, .max_inputs = NIN, .noutputs = 1,                  \
        .attrs = ATTRS, .nattrs = NATTRS,                                                    \
        .flags = IR_OPF_ELEMENTWISE | IR_OPF_NOT_DIFFERENTIABLE, .infer = INFER,             \
        .kernel = kernel_##NAME, .doc = DOC,                                                 \
    };

static const ir_attrdef bitshift_attrs[] = {IR_ATTR_REQ("direction", IR_ATTR_STRING)};

BITWISE_OP(BitwiseAnd, 2, infer_bitwise_binary, NULL, 0, "a & b on integers or bools (broadcasting).")
BITWISE_OP(BitwiseOr, 2, infer_bitwise_binary, NULL, 0, "Bitwise or of integers, logical or of bools (broadcasting).")
BITWISE_OP(BitwiseXor, 2, infer_bitwise_binary, NULL, 0, "a ^ b on integers or bools (broadcasting).")
BITWISE_OP(BitwiseNot, 1, infer_bitwise_not, NULL, 0, "~x on integers; logical not on bools.")
BITWISE_OP(BitShift, 2, infer_bitshift, bitshift_attrs, 1,
           "a << b (direction \"LEFT\") or a >> b (\"RIGHT\", logical) on unsigned integers "
           "(broadcasting); shifts by the bit width or more give 0.")
