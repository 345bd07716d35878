/* JSON output: string escaping and a small streaming writer (RFC 8259).
 *
 * Escaping: '"' and '\' get a backslash; every byte below 0x20 becomes
 * \u00XX (lower-case hex); every other byte, UTF-8 sequences included, is
 * copied unchanged (the input is not validated as UTF-8).
 *
 * The writer emits one JSON value, token by token, to a FILE * or to a
 * growable buffer with a byte cap. It places the commas and the ':' after a
 * key itself and tracks the nesting (at most FEDRECI_JSON_MAX_DEPTH open
 * objects and arrays). Errors are sticky: the first one (I/O error, buffer
 * over its cap, out of memory, a token where the grammar allows none) is
 * kept, every later call does nothing, and fedreci_json_finish returns it.
 * So a caller writes the whole value and checks once.
 *
 *     fedreci_json w;
 *     fedreci_json_init_buf(&w, 4096, FEDRECI_JSON_COMPACT);
 *     fedreci_json_obj_begin(&w);
 *     fedreci_json_key(&w, "round");
 *     fedreci_json_u64(&w, 7);
 *     fedreci_json_obj_end(&w);
 *     char *text; size_t len;
 *     if (fedreci_json_finish(&w, &text, &len) == FEDREC_OK) ... free(text);
 *
 * gives {"round":7}. Thread-safety: a writer belongs to one thread at a
 * time; the escaping functions are reentrant. */
#ifndef FEDREC_CORE_JSON_H
#define FEDREC_CORE_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "fedrec/fedrec.h"

/* Writes s (NUL-terminated; NULL counts as "") escaped, without quotes, into
 * dst (cap bytes, NUL-terminated when cap > 0) and returns the length of the
 * whole escaped text, as snprintf does: a result >= cap means dst holds a
 * truncated prefix that never ends inside an escape. This function can't
 * fail. */
size_t fedreci_json_escape(char *dst, size_t cap, const char *s);

/* Writes s as a quoted, escaped JSON string to f. NULL prints as "".
 * Returns 0, or EOF on a write error (errno from stdio). */
int fedreci_json_fputs(FILE *f, const char *s);

#define FEDRECI_JSON_MAX_DEPTH 32

/* Separators: compact {"a":1,"b":2} or spaced {"a": 1, "b": 2}. */
typedef enum fedreci_json_style {
    FEDRECI_JSON_COMPACT = 0,
    FEDRECI_JSON_SPACED = 1,
} fedreci_json_style;

/* The writer's state. Fields are private; the struct is public only so that
 * callers can keep a writer on the stack. */
typedef struct fedreci_json {
    FILE *f;              /* sink, or NULL for the buffer */
    char *buf;            /* buffer sink: len bytes + NUL, capacity cap */
    size_t len, cap, max; /* max: the most bytes the text may have */
    fedrec_err err;       /* first error, FEDREC_OK if none */
    fedreci_json_style style;
    uint32_t depth;                        /* open containers */
    uint8_t kind[FEDRECI_JSON_MAX_DEPTH];  /* '{' or '[' per open level */
    uint8_t count[FEDRECI_JSON_MAX_DEPTH]; /* 1 once the level has an element */
    int after_key;                         /* a key was written, its value is due */
    int done;                              /* the top-level value is complete */
    int too_deep;                          /* the error is the nesting limit */
    int fixed;                             /* buf is the caller's, cap bytes, never grown */
    const char *brk;                       /* pending line break: "\n" + this indent */
} fedreci_json;

/* Starts a writer on f (not closed by the writer). This function can't
 * fail. */
void fedreci_json_init_file(fedreci_json *w, FILE *f, fedreci_json_style style);

/* Starts a writer on a buffer that grows as needed up to max_bytes of text
 * (the NUL not counted); past that the writer fails with
 * FEDREC_ERR_TOO_BIG. Nothing is allocated until the first token. This
 * function can't fail. */
void fedreci_json_init_buf(fedreci_json *w, size_t max_bytes, fedreci_json_style style);

/* Starts a writer on the caller's buffer buf of cap bytes: at most cap - 1
 * bytes of text and a NUL (buf is "" from the start, and again after an
 * error); more fails with FEDREC_ERR_TOO_BIG. Nothing is allocated. This
 * function can't fail. */
void fedreci_json_init_mem(fedreci_json *w, char *buf, size_t cap, fedreci_json_style style);

/* Containers. An object's members are fedreci_json_key followed by one
 * value. Closing a container that is not the innermost open one, or an
 * object whose last key has no value, fails with FEDREC_ERR_INTERNAL. */
void fedreci_json_obj_begin(fedreci_json *w);
void fedreci_json_obj_end(fedreci_json *w);
void fedreci_json_arr_begin(fedreci_json *w);
void fedreci_json_arr_end(fedreci_json *w);

/* The key of the next member of the innermost (object) container. */
void fedreci_json_key(fedreci_json *w, const char *key);

/* Values. A string NULL is written as "". */
void fedreci_json_str(fedreci_json *w, const char *s);
void fedreci_json_u64(fedreci_json *w, uint64_t v);
void fedreci_json_i64(fedreci_json *w, int64_t v);
void fedreci_json_bool(fedreci_json *w, int v);
void fedreci_json_null(fedreci_json *w);

/* A double formatted with fmt, a printf conversion for exactly one double
 * ("%g", "%.6g", "%.4f", "%.0f", ...; the caller states the format so that
 * outputs stay stable). A NaN or an infinity is written as null, since JSON
 * has no such numbers. */
void fedreci_json_double(fedreci_json *w, const char *fmt, double v);

/* Member shorthands: fedreci_json_key followed by the value. */
void fedreci_json_kstr(fedreci_json *w, const char *key, const char *s);
void fedreci_json_ku64(fedreci_json *w, const char *key, uint64_t v);
void fedreci_json_ki64(fedreci_json *w, const char *key, int64_t v);
void fedreci_json_kbool(fedreci_json *w, const char *key, int v);
void fedreci_json_kdouble(fedreci_json *w, const char *key, const char *fmt, double v);

/* Puts a line break before the next token (member, element or closing
 * bracket): after its comma if it has one, "\n" then `indent` replace the
 * style's space. `indent` must stay valid until that token is written.
 * For layouts people read; it changes no value. */
void fedreci_json_newline(fedreci_json *w, const char *indent);

/* Ends the writer and returns its first error: FEDREC_ERR_IO (write error
 * on the FILE), FEDREC_ERR_TOO_BIG (over max_bytes), FEDREC_ERR_NOMEM,
 * FEDREC_ERR_INTERNAL (misuse, e.g. unclosed containers). For a buffer
 * writer on success, *text (when text is non-NULL) receives the
 * NUL-terminated text, which the caller frees with free(), and *len (when
 * non-NULL) its length; on error, or when text is NULL, the buffer is
 * freed. Error details go to fedrec_errmsg(). The writer may then be
 * initialized again. A FILE writer leaves *text and *len alone (the FILE is
 * not flushed or closed); a memory writer (init_mem) sets *len and leaves
 * *text alone (the text is in the caller's buffer). */
FEDREC_NODISCARD fedrec_err fedreci_json_finish(fedreci_json *w, char **text, size_t *len);

#endif
