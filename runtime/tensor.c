/* tensor.c -- kiln_tensor: a dense row-major array with 64-byte aligned
 * data. */
#include <string.h>

#include "ir.h"

static kiln_tensor *tensor_alloc(kiln_dtype dt, int rank, const int64_t *dims)
{
    if (!ir_dtype_valid((int)dt) || rank < 0 || rank > IR_MAX_RANK || (rank > 0 && !dims))
        return NULL;
    for (int i = 0; i < rank; i++)
        if (dims[i] < 0) return NULL;
    int64_t n = ir_shape_numel(rank, dims);
    size_t esz = kiln_dtype_size(dt);
    if (n < 0 || (uint64_t)n > SIZE_MAX / esz / 2) return NULL;
    kiln_tensor *t = ir_calloc(1, sizeof *t);
    if (!t) return NULL;
    t->dtype = dt;
    t->rank = rank;
    if (rank) memcpy(t->dims, dims, sizeof(int64_t) * (size_t)rank);
    t->size = (size_t)n;
    t->data = ir_malloc_aligned(t->size * esz);
    if (!t->data) {
        ir_free(t);
        return NULL;
    }
    return t;
}

kiln_tensor *kiln_tensor_new(kiln_dtype dt, int rank, const int64_t *dims)
{
    kiln_tensor *t = tensor_alloc(dt, rank, dims);
    if (t) memset(t->data, 0, t->size * kiln_dtype_size(dt));
    return t;
}

kiln_tensor *kiln_tensor_from_data(kiln_dtype dt, int rank, const int64_t *dims, const void *data)
{
    kiln_tensor *t = tensor_alloc(dt, rank, dims);
    if (!t) return NULL;
    size_t nb = t->size * kiln_dtype_size(dt);
    if (nb && !data) {
        kiln_tensor_free(t);
        return NULL;
    }
    if (nb) memcpy(t->data, data, nb);
    return t;
}

kiln_tensor *kiln_tensor_copy(const kiln_tensor *t)
{
    if (!t) return NULL;
    return kiln_tensor_from_data(t->dtype, t->rank, t->dims, t->data);
}

kiln_tensor *ir_tensor_new_type(const ir_type *t)
{
    return kiln_tensor_new(t->dtype, t->rank, t->dims);
}

void ir_tensor_type(const kiln_tensor *x, ir_type *t)
{
    memset(t, 0, sizeof *t);
    t->dtype = x->dtype;
    t->rank = x->rank;
    memcpy(t->dims, x->dims, sizeof(int64_t) * (size_t)x->rank);
}

void kiln_tensor_free(kiln_tensor *t)
{
    if (!t) return;
    if (!t->borrowed) ir_free_aligned(t->data);
    ir_free(t);
}

void *kiln_tensor_data(kiln_tensor *t) { return t ? t->data : NULL; }
const void *kiln_tensor_const_data(const kiln_tensor *t) { return t ? t->data : NULL; }
kiln_dtype kiln_tensor_dtype(const kiln_tensor *t) { return t ? t->dtype : (kiln_dtype)0; }
int kiln_tensor_rank(const kiln_tensor *t) { return t ? t->rank : -1; }
const int64_t *kiln_tensor_dims(const kiln_tensor *t) { return t ? t->dims : NULL; }
size_t kiln_tensor_size(const kiln_tensor *t) { return t ? t->size : 0; }
size_t kiln_tensor_nbytes(const kiln_tensor *t) { return t ? t->size * kiln_dtype_size(t->dtype) : 0; }
