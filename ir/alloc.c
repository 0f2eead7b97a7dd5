/* alloc.c -- the one allocator of the library, with a test mode that fails
 * the n-th allocation so that every error path can be exercised. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"

static long fail_after = -1;
static bool failed;
static atomic_long live;

void ir_alloc_fail_after(long n)
{
    fail_after = n;
    failed = false;
}

long ir_alloc_live_blocks(void) { return atomic_load(&live); }
bool ir_alloc_failed(void) { return failed; }

static bool should_fail(void)
{
    if (fail_after < 0) return false;
    if (fail_after == 0) {
        failed = true;
        return true;
    }
    fail_after--;
    return false;
}

void *ir_malloc(size_t n)
{
    if (should_fail()) return NULL;
    void *p = malloc(n ? n : 1);
    if (p) atomic_fetch_add(&live, 1);
    return p;
}

void *ir_calloc(size_t count, size_t size)
{
    if (should_fail()) return NULL;
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (p) atomic_fetch_add(&live, 1);
    return p;
}

void *ir_realloc(void *p, size_t n)
{
    if (should_fail()) return NULL;
    void *q = realloc(p, n ? n : 1);
    if (q && !p) atomic_fetch_add(&live, 1);
    return q;
}

void ir_free(void *p)
{
    if (!p) return;
    atomic_fetch_sub(&live, 1);
    free(p);
}

void *ir_malloc_aligned(size_t n)
{
    if (should_fail()) return NULL;
    /* aligned_alloc needs a size that is a multiple of the alignment. */
    size_t rounded = (n + IR_ALIGN - 1) / IR_ALIGN * IR_ALIGN;
    if (rounded < n) return NULL;
    void *p = aligned_alloc(IR_ALIGN, rounded ? rounded : IR_ALIGN);
    if (p) atomic_fetch_add(&live, 1);
    return p;
}

void ir_free_aligned(void *p) { ir_free(p); }

char *ir_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = ir_malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

char *ir_vasprintf(const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) return NULL;
    char *s = ir_malloc((size_t)n + 1);
    if (s) vsnprintf(s, (size_t)n + 1, fmt, ap);
    return s;
}

char *ir_asprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = ir_vasprintf(fmt, ap);
    va_end(ap);
    return s;
}

/* ---- ir_buf ---- */

static bool buf_reserve(ir_buf *b, size_t extra)
{
    if (b->oom) return false;
    if (b->len + extra + 1 <= b->cap) return true;
    size_t cap = b->cap ? b->cap * 2 : 256;
    while (cap < b->len + extra + 1) cap *= 2;
    char *d = ir_realloc(b->data, cap);
    if (!d) {
        b->oom = true;
        return false;
    }
    b->data = d;
    b->cap = cap;
    return true;
}

void ir_buf_puts(ir_buf *b, const char *s)
{
    size_t n = strlen(s);
    if (!buf_reserve(b, n)) return;
    memcpy(b->data + b->len, s, n + 1);
    b->len += n;
}

void ir_buf_printf(ir_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n >= 0 && buf_reserve(b, (size_t)n)) {
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
        b->len += (size_t)n;
    }
    va_end(ap);
}

char *ir_buf_take(ir_buf *b)
{
    char *s = NULL;
    if (!b->oom) {
        if (!b->data) buf_reserve(b, 0);
        if (!b->oom) {
            s = b->data;
            s[b->len] = 0;
            b->data = NULL;
        }
    }
    ir_buf_free(b);
    return s;
}

void ir_buf_free(ir_buf *b)
{
    ir_free(b->data);
    memset(b, 0, sizeof *b);
}
