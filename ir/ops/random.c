/* random.c -- RandomUniform and RandomNormal, and the counter-based random
 * numbers they (and dropout) draw from. Every number is a pure function of
 * (seed, counter, index), so a run is reproducible and compiled backends can
 * generate the same numbers in any order, on any thread or device. */
#include <math.h>

#include "../ir.h"

/* ---- the generator ----
 *
 * ir_random_uniform(seed, counter, i) is, exactly (all arithmetic on
 * uint64_t, wrapping mod 2^64; G = 0x9e3779b97f4a7c15):
 *
 *   mix(z) = z ^= z >> 30; z *= 0xbf58476d1ce4e5b9;
 *            z ^= z >> 27; z *= 0x94d049bb133111eb;
 *            z ^= z >> 31; return z            (splitmix64's finalizer)
 *
 *   h = mix(seed + G)
 *   h = mix(h ^ mix(counter + 2 * G))
 *   h = mix(h ^ mix(i + 3 * G))
 *   return (double)(h >> 11) * 2^-53           (in [0, 1), 53 random bits)
 *
 * mix is a bijection of 64-bit words, so for a fixed (seed, counter) the
 * map i -> h is one too: a stream never repeats a word within 2^64 draws.
 * Each of the three inputs goes through a full avalanche round, so nearby
 * seeds, counters and indices give unrelated streams. */

#define RNG_GOLDEN 0x9e3779b97f4a7c15ull

static uint64_t rng_mix(uint64_t z)
{
    z ^= z >> 30;
    z *= 0xbf58476d1ce4e5b9ull;
    z ^= z >> 27;
    z *= 0x94d049bb133111ebull;
    z ^= z >> 31;
    return z;
}

double ir_random_uniform(uint64_t seed, uint64_t counter, uint64_t i)
{
    uint64_t h = rng_mix(seed + RNG_GOLDEN);
    h = rng_mix(h ^ rng_mix(counter + 2 * RNG_GOLDEN));
    h = rng_mix(h ^ rng_mix(i + 3 * RNG_GOLDEN));
    return (double)(h >> 11) * 0x1p-53;
}

/* ---- shared inference ---- */

static int infer_random(ir_infer_ctx *cx)
{
    kiln_dtype dt = (kiln_dtype)ir_node_int(cx->node, "dtype");
    if (!ir_dtype_is_float(dt))
        return ir_infer_error(cx, "dtype %s is not supported (supported: f32, f64, f16, bf16)",
                              kiln_dtype_name(dt));
    int n;
    const int64_t *dims = ir_node_ints(cx->node, "shape", &n);
    if (n > IR_MAX_RANK) return ir_infer_error(cx, "shape has rank %d; the maximum is %d", n, IR_MAX_RANK);
    ir_type *t = &cx->out[0];
    t->dtype = dt;
    t->rank = n;
    for (int i = 0; i < n; i++) {
        if (dims[i] < 0)
            return ir_infer_error(cx, "shape dim %d is %lld; dims must be >= 0", i, (long long)dims[i]);
        t->dims[i] = dims[i];
    }
    return 0;
}

/* ---- RandomUniform ---- */

static const ir_attrdef uniform_attrs[] = {
    IR_ATTR_DT("dtype", KILN_F32),
    IR_ATTR_REQ("shape", IR_ATTR_INTS),
    IR_ATTR_F("low", 0.0),
    IR_ATTR_F("high", 1.0),
    IR_ATTR_I("seed", 0),
};

static int infer_uniform(ir_infer_ctx *cx)
{
    double lo = ir_node_float(cx->node, "low"), hi = ir_node_float(cx->node, "high");
    if (!isfinite(lo) || !isfinite(hi) || !(lo < hi) || !isfinite(hi - lo))
        return ir_infer_error(cx, "low and high must be finite with low < high, got low=%g high=%g", lo, hi);
    return infer_random(cx);
}

/* The next value of a float dtype after element i of p, toward +inf (up)
 * or -inf, stepping the bit pattern (f32, f16 and bf16 share the sign and
 * magnitude layout; f64 uses nextafter). */
static double step_value(kiln_dtype dt, void *p, size_t i, bool up)
{
    double v = ir_load_f64(dt, p, i);
    if (dt == KILN_F64) return nextafter(v, up ? INFINITY : -INFINITY);
    if (dt == KILN_F32) return nextafterf((float)v, up ? INFINITY : -INFINITY);
    uint16_t b = ((uint16_t *)p)[i];
    if ((b & 0x7fff) == 0) b = up ? 0x0001 : 0x8001;         /* +-0 -> smallest subnormal */
    else if (((b & 0x8000) != 0) != up) b = (uint16_t)(b + 1); /* away from zero */
    else b = (uint16_t)(b - 1);                                  /* toward zero */
    uint16_t tmp = b;
    return ir_load_f64(dt, &tmp, 0);
}

/* Stores v in element i of a float output, kept inside [lo, hi) although
 * rounding to a narrow dtype may have reached hi (or fallen below lo): such
 * a value is replaced by its neighbour inside the interval. */
static void store_in_range(kiln_dtype dt, void *p, size_t i, double v, double lo, double hi)
{
    ir_store_f64(dt, p, i, v);
    double r = ir_load_f64(dt, p, i);
    if (r >= hi) ir_store_f64(dt, p, i, step_value(dt, p, i, false));
    else if (r < lo) ir_store_f64(dt, p, i, step_value(dt, p, i, true));
}

static int kernel_uniform(ir_kernel_ctx *kx)
{
    kiln_tensor *y = kx->out[0];
    double lo = ir_node_float(kx->node, "low"), hi = ir_node_float(kx->node, "high");
    uint64_t seed = (uint64_t)ir_node_int(kx->node, "seed");
    for (size_t i = 0; i < y->size; i++) {
        double u = ir_random_uniform(seed, kx->run_counter, i);
        store_in_range(y->dtype, y->data, i, lo + (hi - lo) * u, lo, hi);
    }
    return 0;
}

const ir_opdef ir_opdef_RandomUniform = {
    .name = "RandomUniform", .min_inputs = 0, .max_inputs = 0, .noutputs = 1,
    .attrs = uniform_attrs, .nattrs = 5, .flags = IR_OPF_RANDOM | IR_OPF_NOT_DIFFERENTIABLE,
    .infer = infer_uniform, .kernel = kernel_uniform,
    .doc = "Uniform samples in [low, high) of 'dtype' and 'shape'; new values each run, reproducible by 'seed'.",
};

/* ---- RandomNormal ---- */

static const ir_attrdef normal_attrs[] = {
    IR_ATTR_DT("dtype", KILN_F32),
    IR_ATTR_REQ("shape", IR_ATTR_INTS),
    IR_ATTR_F("mean", 0.0),
    IR_ATTR_F("scale", 1.0),
    IR_ATTR_I("seed", 0),
};

static int infer_normal(ir_infer_ctx *cx)
{
    double mean = ir_node_float(cx->node, "mean"), scale = ir_node_float(cx->node, "scale");
    if (!isfinite(mean) || !isfinite(scale) || scale < 0)
        return ir_infer_error(cx, "mean must be finite and scale finite and >= 0, got mean=%g scale=%g",
                              mean, scale);
    return infer_random(cx);
}

/* Box-Muller: elements 2k and 2k+1 come from uniforms 2k and 2k+1 of the
 * stream, u1 and u2: r = sqrt(-2 log(1 - u1)) (1 - u1 is in (0, 1], so the
 * log is finite), z0 = r cos(2 pi u2), z1 = r sin(2 pi u2). */
static int kernel_normal(ir_kernel_ctx *kx)
{
    kiln_tensor *y = kx->out[0];
    double mean = ir_node_float(kx->node, "mean"), scale = ir_node_float(kx->node, "scale");
    uint64_t seed = (uint64_t)ir_node_int(kx->node, "seed");
    for (size_t i = 0; i < y->size; i += 2) {
        double u1 = ir_random_uniform(seed, kx->run_counter, i);
        double u2 = ir_random_uniform(seed, kx->run_counter, i + 1);
        double r = sqrt(-2.0 * log(1.0 - u1)), t = 2.0 * M_PI * u2;
        ir_store_f64(y->dtype, y->data, i, mean + scale * r * cos(t));
        if (i + 1 < y->size) ir_store_f64(y->dtype, y->data, i + 1, mean + scale * r * sin(t));
    }
    return 0;
}

const ir_opdef ir_opdef_RandomNormal = {
    .name = "RandomNormal", .min_inputs = 0, .max_inputs = 0, .noutputs = 1,
    .attrs = normal_attrs, .nattrs = 5, .flags = IR_OPF_RANDOM | IR_OPF_NOT_DIFFERENTIABLE,
    .infer = infer_normal, .kernel = kernel_normal,
    .doc = "Normal samples (mean, scale) of 'dtype' and 'shape'; new values each run, reproducible by 'seed'.",
};
