/* kk_lowp.c -- conversions to and from the storage dtypes (float8, float4,
 * int4, int2) for compiled Cast: the same code as the reference kernels
 * (ir/lowp.h), so both agree bit for bit. */
#include "kk.h"

#include "../../ir/lowp.h"

float kk_storage_to_f32(int32_t dt, uint8_t code);
uint8_t kk_storage_from_f64(int32_t dt, double v, int32_t saturate);

float kk_storage_to_f32(int32_t dt, uint8_t code) { return lowp_to_f32(dt, code); }

uint8_t kk_storage_from_f64(int32_t dt, double v, int32_t saturate)
{
    return lowp_from_f64(dt, v, saturate != 0);
}
