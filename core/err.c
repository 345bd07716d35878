#include "core/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char errmsg_buf[512];

const char *fedrec_strerror(fedrec_err err)
{
    switch (err) {
    case FEDREC_OK:
        return "success";
    case FEDREC_ERR_INVALID:
        return "invalid argument";
    case FEDREC_ERR_NOMEM:
        return "out of memory";
    case FEDREC_ERR_IO:
        return "input/output error";
    case FEDREC_ERR_PARSE:
        return "parse error";
    case FEDREC_ERR_FORMAT:
        return "malformed data";
    case FEDREC_ERR_NOT_FOUND:
        return "not found";
    case FEDREC_ERR_RANGE:
        return "value out of range";
    case FEDREC_ERR_CRYPTO:
        return "cryptographic operation failed";
    case FEDREC_ERR_PROTOCOL:
        return "protocol violation";
    case FEDREC_ERR_STAGE:
        return "message for the wrong stage";
    case FEDREC_ERR_ROUND:
        return "message for the wrong round";
    case FEDREC_ERR_ABORTED:
        return "round aborted";
    case FEDREC_ERR_TIMEOUT:
        return "timed out";
    case FEDREC_ERR_CLOSED:
        return "closed";
    case FEDREC_ERR_TRANSPORT:
        return "transport error";
    case FEDREC_ERR_DB:
        return "database error";
    case FEDREC_ERR_BADKEY:
        return "wrong key or data not authentic";
    case FEDREC_ERR_CORRUPT:
        return "corrupted or truncated data";
    case FEDREC_ERR_OPTED_OUT:
        return "opted out of training";
    case FEDREC_ERR_NOT_SELECTED:
        return "not selected for this round";
    case FEDREC_ERR_NUMERIC:
        return "numerical failure";
    case FEDREC_ERR_TOO_BIG:
        return "input exceeds its size limit";
    case FEDREC_ERR_DUPLICATE:
        return "duplicate";
    case FEDREC_ERR_BUSY:
        return "busy, try again later";
    case FEDREC_ERR_UNSUPPORTED:
        return "not supported";
    case FEDREC_ERR_SIGNATURE:
        return "signature did not verify";
    case FEDREC_ERR_INTERNAL:
        return "internal error";
    case FEDREC_ERR_EMPTY:
        return "no data";
    case FEDREC_ERR_LOST_EVENTS:
        return "committed events are missing";
    case FEDREC_ERR_REFUSED:
        return "round refused by the client";
    }
    return "unknown error";
}

const char *fedrec_errmsg(void)
{
    return errmsg_buf;
}

fedrec_err fedreci_error(fedrec_err err, const char *fmt, ...)
{
    /* Format into a scratch buffer first: callers may pass fedrec_errmsg()
     * itself as an argument to add context to an inner error. */
    char tmp[sizeof errmsg_buf];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    memcpy(errmsg_buf, tmp, sizeof tmp);
    return err;
}

void fedreci_error_clear(void)
{
    errmsg_buf[0] = '\0';
}
