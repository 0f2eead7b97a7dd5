/* status.c -- kiln_status: an error code and a message. */
#include <stdio.h>
#include <stdlib.h>

#include "ir.h"

kiln_status *kiln_status_new(void) { return ir_calloc(1, sizeof(kiln_status)); }

void kiln_status_free(kiln_status *s)
{
    if (!s) return;
    ir_free(s->message);
    ir_free(s);
}

int kiln_status_code(const kiln_status *s) { return s ? s->code : KILN_OK; }

const char *kiln_status_message(const kiln_status *s)
{
    if (!s || s->code == KILN_OK) return "";
    return s->message ? s->message : kiln_status_code_name(s->code);
}

const char *kiln_status_code_name(int code)
{
    switch (code) {
    case KILN_OK: return "OK";
    case KILN_ERR_INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case KILN_ERR_NOT_FOUND: return "NOT_FOUND";
    case KILN_ERR_UNIMPLEMENTED: return "UNIMPLEMENTED";
    case KILN_ERR_OUT_OF_MEMORY: return "OUT_OF_MEMORY";
    case KILN_ERR_INTERNAL: return "INTERNAL";
    case KILN_ERR_IO: return "IO";
    case KILN_ERR_FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    default: return "UNKNOWN";
    }
}

void ir_status_ok(kiln_status *s)
{
    if (!s) return;
    s->code = KILN_OK;
    ir_free(s->message);
    s->message = NULL;
}

int ir_set_status(kiln_status *s, int code, const char *fmt, ...)
{
    if (!s) return code;
    ir_free(s->message);
    s->code = code;
    va_list ap;
    va_start(ap, fmt);
    /* When out of memory the message is lost but the code stays. */
    s->message = ir_vasprintf(fmt, ap);
    va_end(ap);
    return code;
}

void kiln_free(void *p) { ir_free(p); }
