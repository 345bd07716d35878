/* Internal error helpers: raise an error with a detailed, thread-local message. */
#ifndef FEDREC_CORE_ERR_H
#define FEDREC_CORE_ERR_H

#include "fedrec/fedrec.h"

/* Records a detailed message for fedrec_errmsg() and returns err, so callers
 * can write `return fedreci_error(FEDREC_ERR_PARSE, "%s:%zu: ...", ...);`.
 * The message is truncated to 512 bytes. Thread-safe (thread-local buffer). */
fedrec_err fedreci_error(fedrec_err err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Clears the calling thread's detailed message. */
void fedreci_error_clear(void);

#endif
