/* JSON escaping and writer; see json.h. */
#include "core/json.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

/* The escape of byte c into e (at most 7 bytes with the NUL); returns its
 * length, 0 when c is copied as it is. */
static size_t escape_byte(unsigned char c, char e[8])
{
    static const char hex[] = "0123456789abcdef";
    if (c == '"' || c == '\\') {
        e[0] = '\\';
        e[1] = (char)c;
        e[2] = '\0';
        return 2;
    }
    if (c < 0x20) {
        memcpy(e, "\\u00", 4);
        e[4] = hex[c >> 4];
        e[5] = hex[c & 15];
        e[6] = '\0';
        return 6;
    }
    return 0;
}

size_t fedreci_json_escape(char *dst, size_t cap, const char *s)
{
    size_t n = 0; /* length of the whole escaped text so far */
    int full = 0; /* dst stopped taking bytes */
    if (cap > 0)
        dst[0] = '\0';
    for (; s && *s; s++) {
        char e[8];
        size_t k = escape_byte((unsigned char)*s, e);
        const char *src = k ? e : s;
        if (!k)
            k = 1;
        if (!full && n + k < cap)
            memcpy(dst + n, src, k);
        else
            full = 1;
        if (!full)
            dst[n + k] = '\0';
        n += k;
    }
    return n;
}

int fedreci_json_fputs(FILE *f, const char *s)
{
    if (fputc('"', f) == EOF)
        return EOF;
    for (; s && *s; s++) {
        char e[8];
        if (escape_byte((unsigned char)*s, e) ? fputs(e, f) == EOF : fputc(*s, f) == EOF)
            return EOF;
    }
    return fputc('"', f) == EOF ? EOF : 0;
}

/* ---- the writer ---------------------------------------------------------------- */

static void init(fedreci_json *w, FILE *f, size_t max, fedreci_json_style style)
{
    memset(w, 0, sizeof *w);
    w->f = f;
    w->max = max;
    w->style = style;
}

void fedreci_json_init_file(fedreci_json *w, FILE *f, fedreci_json_style style)
{
    init(w, f, 0, style);
}

void fedreci_json_init_buf(fedreci_json *w, size_t max_bytes, fedreci_json_style style)
{
    init(w, NULL, max_bytes, style);
}

void fedreci_json_init_mem(fedreci_json *w, char *buf, size_t cap, fedreci_json_style style)
{
    init(w, NULL, cap ? cap - 1 : 0, style);
    w->fixed = 1;
    w->buf = cap ? buf : NULL;
    w->cap = cap;
    if (cap)
        buf[0] = '\0';
}

static void fail(fedreci_json *w, fedrec_err e)
{
    if (!w->err)
        w->err = e;
}

/* Appends n bytes to the sink. */
static void emit(fedreci_json *w, const char *p, size_t n)
{
    if (w->err || n == 0)
        return;
    if (w->f) {
        if (fwrite(p, 1, n, w->f) != n)
            fail(w, FEDREC_ERR_IO);
        return;
    }
    if (n > w->max - w->len) {
        fail(w, FEDREC_ERR_TOO_BIG);
        return;
    }
    if (!w->fixed && w->len + n + 1 > w->cap) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap < w->len + n + 1)
            cap = cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2;
        char *b = realloc(w->buf, cap);
        if (!b) {
            fail(w, FEDREC_ERR_NOMEM);
            return;
        }
        w->buf = b;
        w->cap = cap;
    }
    memcpy(w->buf + w->len, p, n);
    w->len += n;
    w->buf[w->len] = '\0';
}

static void emits(fedreci_json *w, const char *s)
{
    emit(w, s, strlen(s));
}

/* Writes what goes before a value, key or closing bracket: the comma after
 * a previous element (when `element`), then the pending line break or, after
 * a comma in the spaced style, a space. */
static void separate(fedreci_json *w, int element)
{
    int comma = element && w->depth > 0 && w->count[w->depth - 1];
    if (comma)
        emit(w, ",", 1);
    if (w->brk) {
        emit(w, "\n", 1);
        emits(w, w->brk);
        w->brk = NULL;
    } else if (comma && w->style == FEDRECI_JSON_SPACED) {
        emit(w, " ", 1);
    }
}

/* Checks that a value may come now and writes its separator. */
static int value_start(fedreci_json *w)
{
    if (w->err)
        return 0;
    if (w->done || (w->depth > 0 && w->kind[w->depth - 1] == '{' && !w->after_key)) {
        fail(w, FEDREC_ERR_INTERNAL);
        return 0;
    }
    if (w->after_key)
        w->after_key = 0;
    else
        separate(w, 1);
    return 1;
}

/* Bookkeeping after a complete value. */
static void value_end(fedreci_json *w)
{
    if (w->depth == 0)
        w->done = 1;
    else
        w->count[w->depth - 1] = 1;
}

static void open_container(fedreci_json *w, char kind)
{
    if (!value_start(w))
        return;
    if (w->depth == FEDRECI_JSON_MAX_DEPTH) {
        w->too_deep = 1;
        fail(w, FEDREC_ERR_TOO_BIG);
        return;
    }
    w->kind[w->depth] = (uint8_t)kind;
    w->count[w->depth] = 0;
    w->depth++;
    emit(w, &kind, 1);
}

static void close_container(fedreci_json *w, char kind)
{
    if (w->err)
        return;
    if (w->depth == 0 || w->kind[w->depth - 1] != (uint8_t)kind || w->after_key) {
        fail(w, FEDREC_ERR_INTERNAL);
        return;
    }
    separate(w, 0);
    w->depth--;
    char close = kind == '{' ? '}' : ']';
    emit(w, &close, 1);
    value_end(w);
}

void fedreci_json_obj_begin(fedreci_json *w)
{
    open_container(w, '{');
}

void fedreci_json_obj_end(fedreci_json *w)
{
    close_container(w, '{');
}

void fedreci_json_arr_begin(fedreci_json *w)
{
    open_container(w, '[');
}

void fedreci_json_arr_end(fedreci_json *w)
{
    close_container(w, '[');
}

/* Writes s quoted and escaped. */
static void quoted(fedreci_json *w, const char *s)
{
    emit(w, "\"", 1);
    const char *run = s; /* bytes copied as they are, not yet written */
    for (; s && *s; s++) {
        char e[8];
        size_t k = escape_byte((unsigned char)*s, e);
        if (k) {
            emit(w, run, (size_t)(s - run));
            emit(w, e, k);
            run = s + 1;
        }
    }
    if (run)
        emit(w, run, (size_t)(s - run));
    emit(w, "\"", 1);
}

void fedreci_json_key(fedreci_json *w, const char *key)
{
    if (w->err)
        return;
    if (w->depth == 0 || w->kind[w->depth - 1] != '{' || w->after_key) {
        fail(w, FEDREC_ERR_INTERNAL);
        return;
    }
    separate(w, 1);
    quoted(w, key);
    emits(w, w->style == FEDRECI_JSON_SPACED ? ": " : ":");
    w->after_key = 1;
}

void fedreci_json_str(fedreci_json *w, const char *s)
{
    if (!value_start(w))
        return;
    quoted(w, s);
    value_end(w);
}

/* Writes one preformatted scalar token. */
static void scalar(fedreci_json *w, const char *text)
{
    if (!value_start(w))
        return;
    emits(w, text);
    value_end(w);
}

void fedreci_json_u64(fedreci_json *w, uint64_t v)
{
    char t[24];
    snprintf(t, sizeof t, "%llu", (unsigned long long)v);
    scalar(w, t);
}

void fedreci_json_i64(fedreci_json *w, int64_t v)
{
    char t[24];
    snprintf(t, sizeof t, "%lld", (long long)v);
    scalar(w, t);
}

void fedreci_json_bool(fedreci_json *w, int v)
{
    scalar(w, v ? "true" : "false");
}

void fedreci_json_null(fedreci_json *w)
{
    scalar(w, "null");
}

void fedreci_json_double(fedreci_json *w, const char *fmt, double v)
{
    if (!isfinite(v)) {
        scalar(w, "null");
        return;
    }
    char t[512]; /* "%.0f" of DBL_MAX has 309 digits */
    int n = snprintf(t, sizeof t, fmt, v);
    if (n < 0 || (size_t)n >= sizeof t) {
        fail(w, FEDREC_ERR_INTERNAL);
        return;
    }
    scalar(w, t);
}

void fedreci_json_kstr(fedreci_json *w, const char *key, const char *s)
{
    fedreci_json_key(w, key);
    fedreci_json_str(w, s);
}

void fedreci_json_ku64(fedreci_json *w, const char *key, uint64_t v)
{
    fedreci_json_key(w, key);
    fedreci_json_u64(w, v);
}

void fedreci_json_ki64(fedreci_json *w, const char *key, int64_t v)
{
    fedreci_json_key(w, key);
    fedreci_json_i64(w, v);
}

void fedreci_json_kbool(fedreci_json *w, const char *key, int v)
{
    fedreci_json_key(w, key);
    fedreci_json_bool(w, v);
}

void fedreci_json_kdouble(fedreci_json *w, const char *key, const char *fmt, double v)
{
    fedreci_json_key(w, key);
    fedreci_json_double(w, fmt, v);
}

void fedreci_json_newline(fedreci_json *w, const char *indent)
{
    w->brk = indent ? indent : "";
}

fedrec_err fedreci_json_finish(fedreci_json *w, char **text, size_t *len)
{
    fedrec_err e = w->err;
    if (!e && (w->depth > 0 || w->after_key))
        e = FEDREC_ERR_INTERNAL;
    if (e) {
        if (w->fixed && w->buf)
            w->buf[0] = '\0';
        else
            free(w->buf);
        w->buf = NULL;
        switch (e) {
        case FEDREC_ERR_IO:
            return fedreci_error(e, "JSON output: write error");
        case FEDREC_ERR_TOO_BIG:
            return w->too_deep ? fedreci_error(e, "JSON output: nested deeper than %d",
                                               FEDRECI_JSON_MAX_DEPTH)
                               : fedreci_error(e, "JSON output: longer than %zu bytes", w->max);
        case FEDREC_ERR_NOMEM:
            return fedreci_error(e, "JSON output: out of memory");
        default:
            return fedreci_error(e, "JSON output: token out of place or container left open");
        }
    }
    if (w->fixed) {
        if (len)
            *len = w->len;
        w->buf = NULL;
    } else if (!w->f) {
        if (text) {
            if (!w->buf && !(w->buf = calloc(1, 1)))
                return fedreci_error(FEDREC_ERR_NOMEM, "JSON output: out of memory");
            *text = w->buf;
        } else {
            free(w->buf);
        }
        if (len)
            *len = w->len;
        w->buf = NULL;
    }
    return FEDREC_OK;
}
