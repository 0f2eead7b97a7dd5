/* kk.h -- shared definitions of the kernel library (the C files of
 * codegen/kernels), which is compiled to LLVM bitcode with clang and linked into generated
 * modules. Kernel functions take their shapes as arguments; generated code
 * passes constants, and after inlining LLVM specializes the loops. Each
 * kernel that can be split across threads takes [begin, end) of its work
 * items last. Error reasons match CG_ERR_* in codegen/cg.h. */
#ifndef KK_H
#define KK_H

#include <stdint.h>

enum { KK_ERR_DIV_ZERO = 1, KK_ERR_INDEX = 2, KK_ERR_EMPTY = 3 };

int64_t kk_ipow(int64_t a, int64_t b, int32_t *err);

#endif
