/* init.c -- initializers: new tensors filled with constants or seeded
 * random values. The generator is counter-based (splitmix64 over seed,
 * element index and draw number) and normals use Marsaglia's polar method
 * with a logarithm computed here from +, -, *, / only, so that a seed
 * gives the same bits on every IEEE-754 machine, whatever its libm. */
#include <math.h>
#include <string.h>

#include "../ir/ir.h"

static uint64_t mix64(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Draw k of element i's stream, as a double in [0, 1). */
static double uniform01(uint64_t seed, uint64_t i, uint64_t k)
{
    uint64_t z = mix64(mix64(mix64(seed) ^ i) + k);
    return (double)(z >> 11) * 0x1.0p-53;
}

/* log(x) for x > 0 (finite), from frexp and the atanh series: exact
 * arithmetic only, so every machine computes the same bits. */
static double det_log(double x)
{
    int e;
    double m = frexp(x, &e); /* x = m 2^e, m in [0.5, 1) */
    if (m < 0.70710678118654752) {
        m *= 2;
        e--;
    }
    /* m in [0.707, 1.414): t = (m - 1) / (m + 1), |t| < 0.172 */
    double t = (m - 1) / (m + 1), t2 = t * t, term = t, sum = 0;
    for (int k = 1; k < 40; k += 2) {
        sum += term / k;
        term *= t2;
    }
    return 2 * sum + e * 0.69314718055994530942;
}

/* A standard normal draw for element i (polar method; draws 2j, 2j + 1 of
 * the stream for attempt j). *k counts the draws used. */
static double std_normal(uint64_t seed, uint64_t i, uint64_t *k)
{
    for (;;) {
        double u = 2 * uniform01(seed, i, (*k)++) - 1;
        double v = 2 * uniform01(seed, i, (*k)++) - 1;
        double s = u * u + v * v;
        if (s > 0 && s < 1) return u * sqrt(-2 * det_log(s) / s);
    }
}

/* Checks the arguments and makes the (zero-filled) tensor. */
static kiln_tensor *new_tensor(const char *what, kiln_dtype dt, int rank, const int64_t *dims,
                               bool random, kiln_status *st)
{
    if (!ir_dtype_valid((int)dt)) {
        ir_set_status(st, KILN_ERR_INVALID_ARGUMENT, "%s: bad dtype %d", what, (int)dt);
        return NULL;
    }
    if (random && !ir_dtype_is_float(dt)) {
        ir_set_status(st, KILN_ERR_INVALID_ARGUMENT, "%s: dtype %s; random initializers need f32, "
                      "f64, f16 or bf16", what, kiln_dtype_name(dt));
        return NULL;
    }
    if (rank < 0 || rank > KILN_MAX_RANK || (rank > 0 && !dims)) {
        ir_set_status(st, KILN_ERR_INVALID_ARGUMENT, "%s: bad rank %d (dims %s)", what, rank,
                      dims ? "given" : "NULL");
        return NULL;
    }
    for (int i = 0; i < rank; i++)
        if (dims[i] < 0) {
            ir_set_status(st, KILN_ERR_INVALID_ARGUMENT, "%s: dim %d is %lld; dims must be >= 0",
                          what, i, (long long)dims[i]);
            return NULL;
        }
    if (ir_shape_numel(rank, dims) < 0) {
        ir_set_status(st, KILN_ERR_INVALID_ARGUMENT, "%s: the shape's size overflows", what);
        return NULL;
    }
    kiln_tensor *t = kiln_tensor_new(dt, rank, dims);
    if (!t) ir_set_status(st, KILN_ERR_OUT_OF_MEMORY, "%s: out of memory", what);
    else ir_status_ok(st);
    return t;
}

int kiln_init_fans(int rank, const int64_t *dims, int64_t *fan_in, int64_t *fan_out,
                   kiln_status *st)
{
    if (rank < 0 || rank > KILN_MAX_RANK || (rank > 0 && !dims) || !fan_in || !fan_out)
        return ir_set_status(st, KILN_ERR_INVALID_ARGUMENT,
                             "kiln_init_fans: bad rank %d, or dims or an output is NULL", rank);
    for (int i = 0; i < rank; i++)
        if (dims[i] < 0)
            return ir_set_status(st, KILN_ERR_INVALID_ARGUMENT,
                                 "kiln_init_fans: dim %d is %lld; dims must be >= 0", i,
                                 (long long)dims[i]);
    if (ir_shape_numel(rank, dims) < 0)
        return ir_set_status(st, KILN_ERR_INVALID_ARGUMENT, "kiln_init_fans: the size overflows");
    if (rank == 0) {
        *fan_in = *fan_out = 1;
    } else if (rank == 1) {
        *fan_in = *fan_out = dims[0];
    } else if (rank == 2) {
        *fan_in = dims[0];
        *fan_out = dims[1];
    } else {
        int64_t receptive = ir_shape_numel(rank - 2, dims + 2);
        *fan_in = dims[1] * receptive;
        *fan_out = dims[0] * receptive;
    }
    ir_status_ok(st);
    return KILN_OK;
}

static kiln_tensor *fill_const(const char *what, kiln_dtype dt, int rank, const int64_t *dims,
                               double v, kiln_status *st)
{
    kiln_tensor *t = new_tensor(what, dt, rank, dims, false, st);
    for (size_t i = 0; t && v != 0 && i < t->size; i++) ir_store_f64(dt, t->data, i, v);
    return t;
}

kiln_tensor *kiln_init_zeros(kiln_dtype dt, int rank, const int64_t *dims, kiln_status *st)
{
    return fill_const("kiln_init_zeros", dt, rank, dims, 0, st);
}

kiln_tensor *kiln_init_ones(kiln_dtype dt, int rank, const int64_t *dims, kiln_status *st)
{
    return fill_const("kiln_init_ones", dt, rank, dims, 1, st);
}

static kiln_tensor *fill_uniform(const char *what, kiln_dtype dt, int rank, const int64_t *dims,
                                 double lo, double hi, uint64_t seed, kiln_status *st)
{
    if (!(lo < hi) || !isfinite(lo) || !isfinite(hi)) {
        ir_set_status(st, KILN_ERR_INVALID_ARGUMENT, "%s: the range [%g, %g) must be finite with "
                      "lo < hi", what, lo, hi);
        return NULL;
    }
    kiln_tensor *t = new_tensor(what, dt, rank, dims, true, st);
    for (size_t i = 0; t && i < t->size; i++) {
        /* Redraw the rare value that rounds up to hi in a narrow dtype (a
         * range narrower than the dtype's spacing keeps lo). */
        double v = lo;
        for (uint64_t k = 0; k < 64; k++) {
            double u = lo + (hi - lo) * uniform01(seed, i, k);
            ir_store_f64(dt, t->data, i, u);
            double stored = ir_load_f64(dt, t->data, i);
            if (stored >= lo && stored < hi) {
                v = u;
                break;
            }
        }
        ir_store_f64(dt, t->data, i, v);
    }
    return t;
}

kiln_tensor *kiln_init_uniform(kiln_dtype dt, int rank, const int64_t *dims, double lo, double hi,
                               uint64_t seed, kiln_status *st)
{
    return fill_uniform("kiln_init_uniform", dt, rank, dims, lo, hi, seed, st);
}

static kiln_tensor *fill_normal(const char *what, kiln_dtype dt, int rank, const int64_t *dims,
                                double mean, double std, bool truncated, uint64_t seed,
                                kiln_status *st)
{
    if (!isfinite(mean) || !(std >= 0) || !isfinite(std)) {
        ir_set_status(st, KILN_ERR_INVALID_ARGUMENT, "%s: mean %g and std %g must be finite, "
                      "std >= 0", what, mean, std);
        return NULL;
    }
    kiln_tensor *t = new_tensor(what, dt, rank, dims, true, st);
    for (size_t i = 0; t && i < t->size; i++) {
        uint64_t k = 0;
        double z = std_normal(seed, i, &k);
        while (truncated && fabs(z) > 2) z = std_normal(seed, i, &k);
        ir_store_f64(dt, t->data, i, mean + std * z);
    }
    return t;
}

kiln_tensor *kiln_init_normal(kiln_dtype dt, int rank, const int64_t *dims, double mean, double std,
                              uint64_t seed, kiln_status *st)
{
    return fill_normal("kiln_init_normal", dt, rank, dims, mean, std, false, seed, st);
}

kiln_tensor *kiln_init_truncated_normal(kiln_dtype dt, int rank, const int64_t *dims, double mean,
                                        double std, uint64_t seed, kiln_status *st)
{
    return fill_normal("kiln_init_truncated_normal", dt, rank, dims, mean, std, true, seed, st);
}

/* The scale of a variance-scaling initializer: sqrt(k / fan). */
static kiln_tensor *scaled(const char *what, kiln_dtype dt, int rank, const int64_t *dims,
                           bool glorot, bool uniform, uint64_t seed, kiln_status *st)
{
    int64_t fan_in, fan_out;
    if (kiln_init_fans(rank, dims, &fan_in, &fan_out, st) != KILN_OK) return NULL;
    double fan = glorot ? (double)(fan_in + fan_out) : (double)fan_in;
    if (fan <= 0) fan = 1; /* an empty tensor: nothing to draw */
    /* glorot: var = 2 / (fan_in + fan_out); he: var = 2 / fan_in. A
     * uniform in +-a has variance a^2 / 3. */
    double var = 2.0 / fan;
    if (uniform) {
        double a = sqrt(3 * var);
        return fill_uniform(what, dt, rank, dims, -a, a, seed, st);
    }
    return fill_normal(what, dt, rank, dims, 0, sqrt(var), false, seed, st);
}

kiln_tensor *kiln_init_glorot_uniform(kiln_dtype dt, int rank, const int64_t *dims, uint64_t seed,
                                      kiln_status *st)
{
    return scaled("kiln_init_glorot_uniform", dt, rank, dims, true, true, seed, st);
}

kiln_tensor *kiln_init_glorot_normal(kiln_dtype dt, int rank, const int64_t *dims, uint64_t seed,
                                     kiln_status *st)
{
    return scaled("kiln_init_glorot_normal", dt, rank, dims, true, false, seed, st);
}

kiln_tensor *kiln_init_he_uniform(kiln_dtype dt, int rank, const int64_t *dims, uint64_t seed,
                                  kiln_status *st)
{
    return scaled("kiln_init_he_uniform", dt, rank, dims, false, true, seed, st);
}

kiln_tensor *kiln_init_he_normal(kiln_dtype dt, int rank, const int64_t *dims, uint64_t seed,
                                 kiln_status *st)
{
    return scaled("kiln_init_he_normal", dt, rank, dims, false, false, seed, st);
}
