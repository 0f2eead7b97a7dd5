/* shape.c -- types, shapes, strides and numpy broadcasting: the one
 * implementation of each that the rest of kiln uses. */
#include <stdio.h>
#include <string.h>

#include "ir.h"

int64_t ir_shape_numel(int rank, const int64_t *dims)
{
    int64_t n = 1;
    bool symbolic = false;
    for (int i = 0; i < rank; i++) {
        if (dims[i] < 0) {
            symbolic = true;
            continue;
        }
        if (dims[i] != 0 && n > INT64_MAX / dims[i]) return -2;
        n *= dims[i];
    }
    return symbolic ? -1 : n;
}

bool ir_type_is_static(const ir_type *t)
{
    for (int i = 0; i < t->rank; i++)
        if (t->dims[i] < 0) return false;
    return true;
}

bool ir_type_equal(const ir_type *a, const ir_type *b)
{
    if (a->dtype != b->dtype || a->rank != b->rank) return false;
    for (int i = 0; i < a->rank; i++)
        if (a->dims[i] != b->dims[i]) return false;
    return true;
}

char *ir_type_str(const ir_type *t, char *buf, size_t n)
{
    size_t k = (size_t)snprintf(buf, n, "%s[", kiln_dtype_name(t->dtype));
    for (int i = 0; i < t->rank && k < n; i++) {
        if (t->dims[i] < 0)
            k += (size_t)snprintf(buf + k, n - k, "%s?", i ? "," : "");
        else
            k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? "," : "", (long long)t->dims[i]);
    }
    if (k < n) snprintf(buf + k, n - k, "]");
    return buf;
}

void ir_shape_strides(int rank, const int64_t *dims, int64_t *strides)
{
    int64_t s = 1;
    for (int i = rank - 1; i >= 0; i--) {
        strides[i] = s;
        s *= dims[i];
    }
}

bool ir_broadcast(const ir_type *a, const ir_type *b, ir_type *out)
{
    int rank = a->rank > b->rank ? a->rank : b->rank;
    ir_type r = {.dtype = a->dtype, .rank = rank};
    for (int i = 0; i < rank; i++) {
        int ia = i - (rank - a->rank), ib = i - (rank - b->rank);
        int64_t da = ia >= 0 ? a->dims[ia] : 1;
        int64_t db = ib >= 0 ? b->dims[ib] : 1;
        int64_t d;
        if (da == db) d = da;
        else if (da == 1) d = db;
        else if (db == 1) d = da;
        else if (da < 0) d = db; /* symbolic vs n: n (checked at run time) */
        else if (db < 0) d = da;
        else return false;
        r.dims[i] = d;
    }
    *out = r;
    return true;
}

bool ir_norm_axis(int64_t axis, int rank, int *out)
{
    if (axis < -rank || axis >= rank) return false;
    *out = (int)(axis < 0 ? axis + rank : axis);
    return true;
}

void ir_broadcast_strides(int rank, const int64_t *dims, int out_rank, int64_t *strides)
{
    int64_t own[IR_MAX_RANK];
    ir_shape_strides(rank, dims, own);
    for (int i = 0; i < out_rank; i++) {
        int j = i - (out_rank - rank);
        strides[i] = (j >= 0 && dims[j] != 1) ? own[j] : 0;
    }
}

void ir_iter_init(ir_iter *it, int rank, const int64_t *dims)
{
    memset(it, 0, sizeof *it);
    it->rank = rank;
    memcpy(it->dims, dims, sizeof(int64_t) * (size_t)rank);
}

int ir_iter_add(ir_iter *it, const int64_t *strides)
{
    int k = it->n++;
    memcpy(it->strides[k], strides, sizeof(int64_t) * (size_t)it->rank);
    return k;
}
