/* kk.h -- shared definitions of the kernel library (the C files of
 * codegen/kernels), which is compiled to LLVM bitcode with clang and linked into generated
 * modules. Kernel functions take their shapes as arguments; generated code
 * passes constants, and after inlining LLVM specializes the loops. Each
 * kernel that can be split across threads takes [begin, end) of its work
 * items last. Error reasons match CG_ERR_* in codegen/cg.h. */
#ifndef KK_H
#define KK_H

#include <stdint.h>

#include <stdbool.h>

enum { KK_ERR_DIV_ZERO = 1, KK_ERR_INDEX = 2, KK_ERR_EMPTY = 3 };

/* Dtype codes, the values of kiln_dtype. */
enum { KK_F32 = 1, KK_F64, KK_F16, KK_BF16, KK_I8, KK_U8, KK_I32, KK_I64, KK_BOOL, KK_I16, KK_U16, KK_U32, KK_U64 };

int64_t kk_ipow(int64_t a, int64_t b, int32_t *err);
int64_t kk_upow(int64_t a, int64_t b, int32_t *err);

#endif
