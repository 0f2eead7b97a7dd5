/* kk_common.c -- small helpers that generated code calls: compiled to LLVM
 * bitcode at build time, linked into every module and inlined there. */
#include <stdint.h>

#include "kk.h"

/* Integer power with the reference semantics: wraps; a negative exponent
 * gives 0 except for |a| == 1; 0 to a negative power is a division by
 * zero. */
int64_t kk_ipow(int64_t a, int64_t b, int32_t *err)
{
    if (b < 0) {
        if (a == 0) {
            *err = KK_ERR_DIV_ZERO;
            return 0;
        }
        return a == 1 ? 1 : a == -1 ? ((b & 1) ? -1 : 1) : 0;
    }
    uint64_t acc = 1, base = (uint64_t)a;
    for (uint64_t e = (uint64_t)b; e; e >>= 1) {
        if (e & 1) acc *= base;
        base *= base;
    }
    return (int64_t)acc;
}

/* a ** b for u64: every exponent is non-negative. */
int64_t kk_upow(int64_t a, int64_t b, int32_t *err)
{
    (void)err;
    uint64_t acc = 1, base = (uint64_t)a;
    for (uint64_t e = (uint64_t)b; e; e >>= 1) {
        if (e & 1) acc *= base;
        base *= base;
    }
    return (int64_t)acc;
}
