/* Purchase-log loading and cleaning; see dataset.h and docs/data.md. */
#include "core/dataset/dataset.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <csv.h>
#include <zlib.h>

#include "core/err.h"
#include "core/strmap.h"

#define FIELD_MAX 1024u          /* bytes of a mapped field, NUL included */
#define CSV_FIELD_CAP (1u << 20) /* libcsv's field buffer may not grow past this */
#define READ_CHUNK 65536u
#define MAX_HEADER_COLS 4096u

enum { F_USER, F_ITEM, F_TIME, F_QTY, F_PRICE, F_BASKET, F_DESC, F_RATING, F_COUNT };

static const char *const default_names[F_COUNT] = {
    "CustomerID", "StockCode", "InvoiceDate", "Quantity",
    "UnitPrice",  "InvoiceNo", "Description", "", /* no rating column unless one is named */
};
static const char *const field_roles[F_COUNT] = {
    "user", "item", "time", "quantity", "price", "basket", "description", "rating",
};

const char *const fedreci_dataset_default_non_product[] = {
    "POST",         /* postage */
    "DOT",          /* dotcom postage */
    "C2",           /* carriage */
    "M",            /* manual adjustment */
    "D",            /* discount */
    "S",            /* samples */
    "B",            /* adjust bad debt */
    "BANK CHARGES", /* bank charges */
    "AMAZONFEE",    /* marketplace fee */
    "CRUK",         /* charity commission */
    "gift_0001_*",  /* gift vouchers */
};
const size_t fedreci_dataset_default_non_product_count =
    sizeof fedreci_dataset_default_non_product / sizeof fedreci_dataset_default_non_product[0];

/* ---- the dataset ---------------------------------------------------------- */

struct fedreci_dataset {
    fedreci_dataset_report rep;
    double alpha, eps;
    fedreci_strmap cust, item, basket; /* interned strings, raw ids */
    char **item_desc;                  /* by raw item id, may be NULL */
    uint32_t cap_item_desc;            /* entries of item_desc (raw ids seen only on dropped
                                          rows may lie beyond it) */
    uint32_t n_users, n_items, n_baskets;
    const char **user_names; /* by dense id, borrowed from cust */
    const char **item_codes; /* by dense id */
    const char **item_descs; /* by dense id, never NULL */
    const char **basket_names;
    fedreci_dataset_event *events;
    uint64_t n_events;
    uint64_t *indptr;
    uint32_t *indices;
    float *conf;
    double *qty;
    uint32_t *nbaskets;
    uint64_t nnz;
};

void fedreci_dataset_options_default(fedreci_dataset_options *o)
{
    memset(o, 0, sizeof *o);
    o->alpha = 1.0;
    o->eps = 1.0;
    o->rating_threshold = 4.0;
    o->build_matrix = 1;
}

float fedreci_dataset_confidence(double q, double alpha, double eps)
{
    return (float)(1.0 + alpha * log1p(q / eps));
}

int fedreci_dataset_code_listed(const char *code, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *p = list[i];
        if (!p)
            continue;
        size_t pl = strlen(p);
        int prefix = pl > 0 && p[pl - 1] == '*';
        if (prefix)
            pl--;
        size_t j = 0;
        while (j < pl && code[j] && tolower((unsigned char)code[j]) == tolower((unsigned char)p[j]))
            j++;
        if (j == pl && (prefix || code[j] == '\0'))
            return 1;
    }
    return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's civil
 * calendar algorithm). */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int read_digits(const char **s, int n, int64_t *v)
{
    int64_t x = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*s)[i]))
            return -1;
        x = x * 10 + ((*s)[i] - '0');
    }
    *s += n;
    *v = x;
    return 0;
}

/* Reads 1 or 2 digits (the UCI layout's month, day and hour). */
static int read_1or2(const char **s, int64_t *v)
{
    if (!isdigit((unsigned char)**s))
        return -1;
    *v = *(*s)++ - '0';
    if (isdigit((unsigned char)**s))
        *v = *v * 10 + (*(*s)++ - '0');
    return 0;
}

/* The date part: ISO `YYYY-MM-DD` or UCI `M/D/YYYY`. */
static int parse_date(const char **p, int64_t *y, int64_t *mo, int64_t *d)
{
    const char *q = *p;
    while (isdigit((unsigned char)*q))
        q++;
    if (*q == '/') /* UCI: month first */
        return read_1or2(p, mo) || *(*p)++ != '/' || read_1or2(p, d) || *(*p)++ != '/' ||
                       read_digits(p, 4, y)
                   ? -1
                   : 0;
    return read_digits(p, 4, y) || *(*p)++ != '-' || read_digits(p, 2, mo) || *(*p)++ != '-' ||
                   read_digits(p, 2, d)
               ? -1
               : 0;
}

/* The time of day after the date: `H:MM` or `HH:MM`, optional `:SS`, optional
 * fraction (ignored), optional zone; *offset gets the zone's seconds east. */
static int parse_clock(const char **p, int64_t *h, int64_t *mi, int64_t *se, int64_t *offset)
{
    if (read_1or2(p, h) || *(*p)++ != ':' || read_digits(p, 2, mi))
        return -1;
    if (**p == ':') {
        (*p)++;
        if (read_digits(p, 2, se))
            return -1;
        if (**p == '.' || **p == ',') {
            (*p)++;
            if (!isdigit((unsigned char)**p))
                return -1;
            while (isdigit((unsigned char)**p))
                (*p)++;
        }
    }
    if (**p == 'Z') {
        (*p)++;
    } else if (**p == '+' || **p == '-') {
        int64_t sign = *(*p)++ == '-' ? -1 : 1, oh, om = 0;
        if (read_digits(p, 2, &oh))
            return -1;
        if (**p == ':')
            (*p)++;
        if (isdigit((unsigned char)**p) && read_digits(p, 2, &om))
            return -1;
        if (oh > 23 || om > 59)
            return -1;
        *offset = sign * (oh * 3600 + om * 60);
    }
    return 0;
}

int fedreci_parse_time(const char *s, int64_t *out)
{
    if (!s || !*s)
        return -1;
    const char *p = s;
    int all_digits = 1;
    for (const char *q = s; *q; q++)
        if (!isdigit((unsigned char)*q) && !(q == s && *q == '-'))
            all_digits = 0;
    if (all_digits && strlen(s) > 8) {
        errno = 0;
        char *end;
        long long v = strtoll(s, &end, 10);
        if (errno || *end)
            return -1;
        *out = (int64_t)v;
        return 0;
    }
    int64_t y, mo, d, h = 0, mi = 0, se = 0, offset = 0;
    if (parse_date(&p, &y, &mo, &d))
        return -1;
    if (*p == ' ' || *p == 'T') {
        p++;
        if (parse_clock(&p, &h, &mi, &se, &offset))
            return -1;
    }
    if (*p)
        return -1;
    static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || se > 60)
        return -1;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo == 2 && d == 29 && !leap)
        return -1;
    *out = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - offset;
    return 0;
}

static int parse_number(const char *s, double *out)
{
    if (!*s)
        return -1;
    for (const char *q = s; *q; q++)
        if (!(isdigit((unsigned char)*q) || *q == '.' || *q == '-' || *q == '+' || *q == 'e' ||
              *q == 'E'))
            return -1;
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (errno == ERANGE || *end || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

/* ---- the loader ------------------------------------------------------------ */

typedef struct loader {
    const char *path;
    const fedreci_dataset_options *o;
    const char *const *np;
    size_t n_np;
    fedreci_dataset *d;
    fedrec_err err; /* first error; set inside callbacks, stops processing */
    uint64_t line;  /* records completed (1 = header) */
    int header_done;
    size_t n_cols;
    char **hdr;
    size_t n_hdr;
    int colmap[MAX_HEADER_COLS]; /* column index -> field, -1 unmapped */
    int has[F_COUNT];
    const char *names[F_COUNT];
    size_t col;
    char fld[F_COUNT][FIELD_MAX];
    size_t flen[F_COUNT];
    int toolong[F_COUNT];
    uint8_t *cust_kept;
    uint8_t *item_kept;
    uint32_t cap_cust_kept, cap_item_kept;
    uint32_t cap_desc;
    uint64_t cap_events;
    char keybuf[FIELD_MAX + 32];
} loader;

static fedrec_err grow_flags(uint8_t **a, uint32_t *cap, uint32_t need)
{
    if (need <= *cap)
        return FEDREC_OK;
    uint32_t nc = *cap ? *cap : 1024;
    while (nc < need)
        nc *= 2;
    uint8_t *p = realloc(*a, nc);
    if (!p)
        return fedreci_error(FEDREC_ERR_NOMEM, "out of memory");
    memset(p + *cap, 0, nc - *cap);
    *a = p;
    *cap = nc;
    return FEDREC_OK;
}

static void on_field(void *s, size_t len, void *data)
{
    loader *L = data;
    if (L->err)
        return;
    if (!L->header_done) {
        if (L->n_hdr >= MAX_HEADER_COLS) {
            L->err = fedreci_error(FEDREC_ERR_TOO_BIG, "%s:1: more than %u header columns", L->path,
                                   MAX_HEADER_COLS);
            return;
        }
        char **nh = realloc(L->hdr, (L->n_hdr + 1) * sizeof *nh);
        char *c = malloc(len + 1);
        if (nh)
            L->hdr = nh;
        if (!nh || !c) {
            free(c);
            L->err = fedreci_error(FEDREC_ERR_NOMEM, "out of memory reading the header");
            return;
        }
        if (len)
            memcpy(c, s, len);
        c[len] = '\0';
        L->hdr[L->n_hdr++] = c;
        return;
    }
    if (L->col < L->n_cols) {
        int f = L->colmap[L->col];
        if (f >= 0) {
            if (len >= FIELD_MAX) {
                L->toolong[f] = 1;
                len = 0;
            }
            if (len)
                memcpy(L->fld[f], s, len);
            L->fld[f][len] = '\0';
            L->flen[f] = len;
        }
    }
    L->col++;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        s[--n] = '\0';
    return s;
}

/* A name made only of decimal digits that is not itself a header name is a
 * 1-based column position: returns it (0 otherwise, or when out of range). */
static size_t column_position(loader *L, const char *name)
{
    size_t v = 0;
    for (const char *c = name; *c; c++) {
        if (!isdigit((unsigned char)*c) || v > MAX_HEADER_COLS)
            return 0;
        v = v * 10 + (size_t)(*c - '0');
    }
    for (size_t c = 0; c < L->n_cols; c++)
        if (!strcmp(trim(L->hdr[c]), name))
            return 0;
    return v >= 1 && v <= L->n_cols ? v : 0;
}

static void header_done(loader *L)
{
    L->header_done = 1;
    if (L->n_hdr == 0 || (L->n_hdr == 1 && L->hdr[0][0] == '\0')) {
        L->err = fedreci_error(FEDREC_ERR_EMPTY, "%s:1: empty header", L->path);
        return;
    }
    /* strip a UTF-8 byte order mark */
    char *h0 = L->hdr[0];
    if ((unsigned char)h0[0] == 0xEF && (unsigned char)h0[1] == 0xBB &&
        (unsigned char)h0[2] == 0xBF)
        memmove(h0, h0 + 3, strlen(h0 + 3) + 1);
    L->n_cols = L->n_hdr;
    for (size_t c = 0; c < L->n_cols; c++)
        L->colmap[c] = -1;
    const char *want[F_COUNT] = {
        L->o->columns.user,        L->o->columns.item,   L->o->columns.time,
        L->o->columns.quantity,    L->o->columns.price,  L->o->columns.basket,
        L->o->columns.description, L->o->columns.rating,
    };
    for (int f = 0; f < F_COUNT; f++) {
        int explicit_name = want[f] != NULL;
        const char *name = explicit_name ? want[f] : default_names[f];
        L->names[f] = name;
        if (!*name) {
            if (f <= F_TIME) {
                L->err = fedreci_error(FEDREC_ERR_INVALID, "the %s column may not be empty",
                                       field_roles[f]);
                return;
            }
            continue;
        }
        size_t pos = column_position(L, name);
        for (size_t c = 0; c < L->n_cols; c++) {
            if (pos ? c + 1 != pos : strcasecmp(trim(L->hdr[c]), name) != 0)
                continue;
            if (L->has[f]) {
                L->err = fedreci_error(FEDREC_ERR_FORMAT, "%s:1: column '%s' appears twice",
                                       L->path, name);
                return;
            }
            if (L->colmap[c] >= 0) {
                L->err =
                    fedreci_error(FEDREC_ERR_FORMAT, "%s:1: column '%s' mapped to both %s and %s",
                                  L->path, name, field_roles[L->colmap[c]], field_roles[f]);
                return;
            }
            L->colmap[c] = f;
            L->has[f] = 1;
        }
        if (!L->has[f] && (f <= F_TIME || explicit_name)) {
            if (name[strspn(name, "0123456789")] == '\0')
                /* a position (digits, no header named so) outside 1..n_cols */
                L->err = fedreci_error(FEDREC_ERR_FORMAT,
                                       "%s:1: column %s (%s): no such position, the header has "
                                       "%zu columns",
                                       L->path, name, field_roles[f], L->n_cols);
            else
                L->err = fedreci_error(FEDREC_ERR_FORMAT, "%s:1: missing required column '%s' (%s)",
                                       L->path, name, field_roles[f]);
            return;
        }
    }
}

/* Counts an unparsable row, or in strict mode raises the error. */
static void unparsable(loader *L, fedrec_err code, const char *fmt, const char *a, const char *b)
{
    if (L->o->strict) {
        char msg[FIELD_MAX + 128];
        snprintf(msg, sizeof msg, fmt, a ? a : "", b ? b : "");
        L->err = fedreci_error(code, "%s:%llu: %s", L->path, (unsigned long long)L->line, msg);
        return;
    }
    L->d->rep.dropped_unparsable++;
}

static void keep_row(loader *L, const char *cust, const char *item, const char *desc,
                     const char *basket, int64_t t, double q, double price)
{
    fedreci_dataset *d = L->d;
    fedreci_dataset_report *r = &d->rep;
    if (L->o->on_row) {
        fedreci_purchase p = {cust, item, desc, basket, t, q, price, L->line};
        fedrec_err e = L->o->on_row(L->o->on_row_ctx, &p);
        if (e) {
            L->err = e;
            return;
        }
    }
    if (r->rows_kept == 0 || t < r->time_min)
        r->time_min = t;
    if (r->rows_kept == 0 || t > r->time_max)
        r->time_max = t;
    r->rows_kept++;
    if (!L->o->build_matrix)
        return;
    uint32_t cu, it, bk;
    fedrec_err e = fedreci_strmap_intern(&d->cust, cust, strlen(cust), &cu, NULL);
    if (!e)
        e = fedreci_strmap_intern(&d->item, item, strlen(item), &it, NULL);
    if (!e) {
        const char *key = basket;
        if (!L->has[F_BASKET]) {
            snprintf(L->keybuf, sizeof L->keybuf, "%s@%lld", cust, (long long)t);
            key = L->keybuf;
        }
        e = fedreci_strmap_intern(&d->basket, key, strlen(key), &bk, NULL);
    }
    if (!e)
        e = grow_flags(&L->cust_kept, &L->cap_cust_kept, cu + 1);
    if (!e)
        e = grow_flags(&L->item_kept, &L->cap_item_kept, it + 1);
    if (!e && it >= L->cap_desc) {
        uint32_t nc = L->cap_desc ? L->cap_desc : 1024;
        while (nc <= it)
            nc *= 2;
        char **nd = realloc(d->item_desc, (size_t)nc * sizeof *nd);
        if (!nd) {
            e = fedreci_error(FEDREC_ERR_NOMEM, "out of memory");
        } else {
            memset(nd + L->cap_desc, 0, (size_t)(nc - L->cap_desc) * sizeof *nd);
            d->item_desc = nd;
            d->cap_item_desc = nc;
            L->cap_desc = nc;
        }
    }
    if (!e && !d->item_desc[it] && *desc) {
        d->item_desc[it] = strdup(desc);
        if (!d->item_desc[it])
            e = fedreci_error(FEDREC_ERR_NOMEM, "out of memory");
    }
    if (!e && d->n_events == L->cap_events) {
        uint64_t nc = L->cap_events ? L->cap_events * 2 : 4096;
        fedreci_dataset_event *ne = realloc(d->events, nc * sizeof *ne);
        if (!ne)
            e = fedreci_error(FEDREC_ERR_NOMEM, "out of memory storing purchases");
        else {
            d->events = ne;
            L->cap_events = nc;
        }
    }
    if (e) {
        L->err = e;
        return;
    }
    L->cust_kept[cu] = 1;
    L->item_kept[it] = 1;
    fedreci_dataset_event *ev = &d->events[d->n_events++];
    ev->time = t;
    ev->quantity = q;
    ev->user = cu;
    ev->item = it;
    ev->basket = bk;
}

static void on_row(loader *L)
{
    fedreci_dataset *d = L->d;
    fedreci_dataset_report *r = &d->rep;
    r->rows_read++;
    if (L->col != L->n_cols) {
        char a[32], b[32];
        snprintf(a, sizeof a, "%zu", L->col);
        snprintf(b, sizeof b, "%zu", L->n_cols);
        unparsable(L, FEDREC_ERR_PARSE, "%s fields where the header has %s", a, b);
        return;
    }
    for (int f = 0; f < F_COUNT; f++) {
        if (L->has[f] && L->toolong[f]) {
            unparsable(L, FEDREC_ERR_PARSE, "column %s: field longer than 1023 bytes%s",
                       L->names[f], "");
            return;
        }
    }
    char *cust = trim(L->fld[F_USER]);
    char *item = trim(L->fld[F_ITEM]);
    /* distinct raw values, before any cleaning rule */
    {
        uint32_t id;
        int is_new;
        fedrec_err e = FEDREC_OK;
        if (*cust && !(e = fedreci_strmap_intern(&d->cust, cust, strlen(cust), &id, &is_new)))
            r->raw_customers += (uint32_t)is_new;
        if (!e && *item && !(e = fedreci_strmap_intern(&d->item, item, strlen(item), &id, &is_new)))
            r->raw_items += (uint32_t)is_new;
        if (e) {
            L->err = e;
            return;
        }
    }
    if (!*item) {
        unparsable(L, FEDREC_ERR_PARSE, "column %s: empty item code%s", L->names[F_ITEM], "");
        return;
    }
    double q = 1.0, price = 0.0;
    int64_t t;
    char *qs = L->has[F_QTY] ? trim(L->fld[F_QTY]) : NULL;
    char *ps = L->has[F_PRICE] ? trim(L->fld[F_PRICE]) : NULL;
    char *ts = trim(L->fld[F_TIME]);
    if (qs && parse_number(qs, &q)) {
        unparsable(L, FEDREC_ERR_PARSE, "column %s: '%s' is not a number", L->names[F_QTY], qs);
        return;
    }
    double rating = 0.0;
    char *rs = L->has[F_RATING] ? trim(L->fld[F_RATING]) : NULL;
    if (rs && parse_number(rs, &rating)) {
        unparsable(L, FEDREC_ERR_PARSE, "column %s: '%s' is not a number", L->names[F_RATING], rs);
        return;
    }
    if (ps && parse_number(ps, &price)) {
        unparsable(L, FEDREC_ERR_PARSE, "column %s: '%s' is not a number", L->names[F_PRICE], ps);
        return;
    }
    if (fedreci_parse_time(ts, &t)) {
        unparsable(L, FEDREC_ERR_PARSE, "column %s: '%s' is not a time", L->names[F_TIME], ts);
        return;
    }
    const char *basket = L->has[F_BASKET] ? trim(L->fld[F_BASKET]) : "";
    const char *desc = L->has[F_DESC] ? trim(L->fld[F_DESC]) : "";
    if (!*cust) {
        r->dropped_no_customer++;
        return;
    }
    if (basket[0] == 'C') {
        r->dropped_cancelled++;
        return;
    }
    if (q <= 0) {
        r->dropped_quantity++;
        return;
    }
    if (L->has[F_PRICE] && price <= 0) {
        r->dropped_price++;
        return;
    }
    if (rs && rating < L->o->rating_threshold) {
        r->dropped_rating++;
        return;
    }
    if (fedreci_dataset_code_listed(item, L->np, L->n_np)) {
        r->dropped_non_product++;
        return;
    }
    if (L->o->only_customer && strcmp(cust, L->o->only_customer) != 0) {
        r->other_customer++;
        return;
    }
    keep_row(L, cust, item, desc, basket, t, q, price);
}

static void on_record(int c, void *data)
{
    (void)c;
    loader *L = data;
    if (L->err)
        return;
    L->line++;
    if (!L->header_done)
        header_done(L);
    else
        on_row(L);
    L->col = 0;
    for (int f = 0; f < F_COUNT; f++) {
        L->flen[f] = 0;
        L->toolong[f] = 0;
        L->fld[f][0] = '\0';
    }
}

/* ---- id assignment and the matrix --------------------------------------- */

static int all_digits(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s))
            return 0;
    return 1;
}

/* Customer order: all-digit ids by numeric value (any length), then others
 * by strcmp; equal numbers with different leading zeros by strcmp. */
static int cmp_customer(const char *a, const char *b)
{
    int da = all_digits(a), db = all_digits(b);
    if (da != db)
        return da ? -1 : 1;
    if (da) {
        const char *sa = a, *sb = b;
        while (*sa == '0' && sa[1])
            sa++;
        while (*sb == '0' && sb[1])
            sb++;
        size_t la = strlen(sa), lb = strlen(sb);
        if (la != lb)
            return la < lb ? -1 : 1;
        int c = strcmp(sa, sb);
        if (c)
            return c;
    }
    return strcmp(a, b);
}

static int qcmp_customer(const void *a, const void *b)
{
    return cmp_customer(*(const char *const *)a, *(const char *const *)b);
}

static int qcmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int qcmp_event(const void *pa, const void *pb)
{
    const fedreci_dataset_event *a = pa, *b = pb;
    if (a->user != b->user)
        return a->user < b->user ? -1 : 1;
    if (a->time != b->time)
        return a->time < b->time ? -1 : 1;
    if (a->basket != b->basket)
        return a->basket < b->basket ? -1 : 1;
    if (a->item != b->item)
        return a->item < b->item ? -1 : 1;
    return 0;
}

typedef struct pair_tmp {
    uint32_t item, basket;
    double q;
} pair_tmp;

static int qcmp_pair(const void *pa, const void *pb)
{
    const pair_tmp *a = pa, *b = pb;
    if (a->item != b->item)
        return a->item < b->item ? -1 : 1;
    if (a->basket != b->basket)
        return a->basket < b->basket ? -1 : 1;
    return 0;
}

/* Builds the sorted name array of the ids flagged in `kept` (every id when all)
 * and the raw -> dense map (UINT32_MAX when not kept). */
static fedrec_err dense_ids(const fedreci_strmap *t, int all, const uint8_t *kept,
                            uint32_t cap_kept, int (*cmp)(const void *, const void *),
                            const char ***names_out, uint32_t *n_out, uint32_t **map_out)
{
    uint32_t n = 0, n_keys = fedreci_strmap_size(t);
    for (uint32_t i = 0; i < n_keys; i++)
        n += all || (i < cap_kept && kept[i]);
    const char **names = malloc((size_t)(n ? n : 1) * sizeof *names);
    uint32_t *map = malloc((size_t)(n_keys ? n_keys : 1) * sizeof *map);
    if (!names || !map) {
        free(names);
        free(map);
        return fedreci_error(FEDREC_ERR_NOMEM, "out of memory assigning ids");
    }
    uint32_t j = 0;
    for (uint32_t i = 0; i < n_keys; i++) {
        map[i] = UINT32_MAX;
        if (all || (i < cap_kept && kept[i]))
            names[j++] = fedreci_strmap_key(t, i);
    }
    qsort(names, n, sizeof *names, cmp);
    /* map raw -> dense: look each kept key up by binary search */
    for (uint32_t i = 0; i < n_keys; i++) {
        if (!all && !(i < cap_kept && kept[i]))
            continue;
        const char *key = fedreci_strmap_key(t, i);
        const char **hit = bsearch(&key, names, n, sizeof *names, cmp);
        map[i] = (uint32_t)(hit - names);
    }
    *names_out = names;
    *n_out = n;
    *map_out = map;
    return FEDREC_OK;
}

static fedrec_err build_matrix(fedreci_dataset *d, loader *L)
{
    uint32_t *umap = NULL, *imap = NULL, *bmap = NULL;
    pair_tmp *tmp = NULL;
    fedrec_err e = dense_ids(&d->cust, 0, L->cust_kept, L->cap_cust_kept, qcmp_customer,
                             &d->user_names, &d->n_users, &umap);
    if (!e)
        e = dense_ids(&d->item, 0, L->item_kept, L->cap_item_kept, qcmp_str, &d->item_codes,
                      &d->n_items, &imap);
    if (!e)
        e = dense_ids(&d->basket, 1, NULL, 0, qcmp_str, &d->basket_names, &d->n_baskets, &bmap);
    if (e)
        goto out;
    d->item_descs = malloc((size_t)(d->n_items ? d->n_items : 1) * sizeof *d->item_descs);
    d->indptr = calloc((size_t)d->n_users + 1, sizeof *d->indptr);
    uint64_t cap = d->n_events ? d->n_events : 1;
    d->indices = malloc(cap * sizeof *d->indices);
    d->conf = malloc(cap * sizeof *d->conf);
    d->qty = malloc(cap * sizeof *d->qty);
    d->nbaskets = malloc(cap * sizeof *d->nbaskets);
    if (!d->item_descs || !d->indptr || !d->indices || !d->conf || !d->qty || !d->nbaskets) {
        e = fedreci_error(FEDREC_ERR_NOMEM, "out of memory building the matrix");
        goto out;
    }
    for (uint32_t i = 0; i < fedreci_strmap_size(&d->item); i++)
        if (imap[i] != UINT32_MAX)
            d->item_descs[imap[i]] = (i < L->cap_desc && d->item_desc[i]) ? d->item_desc[i] : "";
    for (uint64_t k = 0; k < d->n_events; k++) {
        fedreci_dataset_event *ev = &d->events[k];
        ev->user = umap[ev->user];
        ev->item = imap[ev->item];
        ev->basket = bmap[ev->basket];
    }
    if (d->n_events)
        qsort(d->events, d->n_events, sizeof *d->events, qcmp_event);
    tmp = malloc(cap * sizeof *tmp);
    if (!tmp) {
        e = fedreci_error(FEDREC_ERR_NOMEM, "out of memory building the matrix");
        goto out;
    }
    uint64_t nnz = 0, a = 0;
    for (uint32_t u = 0; u < d->n_users; u++) {
        uint64_t b = a;
        while (b < d->n_events && d->events[b].user == u)
            b++;
        size_t m = (size_t)(b - a);
        for (size_t k = 0; k < m; k++) {
            tmp[k].item = d->events[a + k].item;
            tmp[k].basket = d->events[a + k].basket;
            tmp[k].q = d->events[a + k].quantity;
        }
        qsort(tmp, m, sizeof *tmp, qcmp_pair);
        for (size_t k = 0; k < m;) {
            size_t k2 = k;
            double q = 0;
            uint32_t nb = 0;
            while (k2 < m && tmp[k2].item == tmp[k].item) {
                q += tmp[k2].q;
                if (k2 == k || tmp[k2].basket != tmp[k2 - 1].basket)
                    nb++;
                k2++;
            }
            d->indices[nnz] = tmp[k].item;
            d->qty[nnz] = q;
            d->nbaskets[nnz] = nb;
            d->conf[nnz] = fedreci_dataset_confidence(q, d->alpha, d->eps);
            nnz++;
            k = k2;
        }
        d->indptr[u + 1] = nnz;
        a = b;
    }
    d->nnz = nnz;
    d->rep.customers = d->n_users;
    d->rep.items = d->n_items;
    d->rep.interactions = nnz;
    d->rep.baskets = d->n_baskets;
out:
    free(umap);
    free(imap);
    free(bmap);
    free(tmp);
    return e;
}

void fedreci_dataset_destroy(fedreci_dataset *d)
{
    if (!d)
        return;
    if (d->item_desc)
        for (uint32_t i = 0; i < d->cap_item_desc && i < fedreci_strmap_size(&d->item); i++)
            free(d->item_desc[i]);
    free(d->item_desc);
    fedreci_strmap_fini(&d->cust);
    fedreci_strmap_fini(&d->item);
    fedreci_strmap_fini(&d->basket);
    free(d->user_names);
    free(d->item_codes);
    free(d->item_descs);
    free(d->basket_names);
    free(d->events);
    free(d->indptr);
    free(d->indices);
    free(d->conf);
    free(d->qty);
    free(d->nbaskets);
    free(d);
}

static fedrec_err check_options(const fedreci_dataset_options *o)
{
    if (!(o->alpha >= 0) || !isfinite(o->alpha))
        return fedreci_error(FEDREC_ERR_INVALID, "alpha must be finite and >= 0");
    if (!(o->eps > 0) || !isfinite(o->eps))
        return fedreci_error(FEDREC_ERR_INVALID, "eps must be finite and > 0");
    if (!isfinite(o->rating_threshold))
        return fedreci_error(FEDREC_ERR_INVALID, "rating_threshold must be finite");
    if (o->non_product == NULL && o->n_non_product != 0)
        return fedreci_error(FEDREC_ERR_INVALID, "n_non_product > 0 with a NULL list");
    return FEDREC_OK;
}

fedrec_err fedreci_dataset_load(fedreci_dataset **out, const char *path,
                                const fedreci_dataset_options *opts, fedreci_dataset_report *report)
{
    if (!out || !path)
        return fedreci_error(FEDREC_ERR_INVALID, "dataset load: NULL argument");
    fedreci_dataset_options defaults;
    fedreci_dataset_options_default(&defaults);
    const fedreci_dataset_options *o = opts ? opts : &defaults;
    fedrec_err e = check_options(o);
    if (e)
        return e;

    loader *L = calloc(1, sizeof *L);
    fedreci_dataset *d = calloc(1, sizeof *d);
    unsigned char *buf = malloc(READ_CHUNK);
    struct csv_parser p;
    int csv_ok = 0;
    gzFile gz = NULL;
    if (!L || !d || !buf) {
        e = fedreci_error(FEDREC_ERR_NOMEM, "out of memory loading %s", path);
        goto fail;
    }
    d->alpha = o->alpha;
    d->eps = o->eps;
    L->path = path;
    L->o = o;
    L->d = d;
    L->np = o->non_product ? o->non_product : fedreci_dataset_default_non_product;
    L->n_np = o->non_product ? o->n_non_product : fedreci_dataset_default_non_product_count;

    gz = gzopen(path, "rb");
    if (!gz) {
        e = fedreci_error(FEDREC_ERR_IO, "%s: cannot open: %s", path,
                          errno ? strerror(errno) : "out of memory");
        goto fail;
    }
    gzbuffer(gz, 1u << 17);
    if (csv_init(&p, CSV_STRICT | CSV_STRICT_FINI) != 0) {
        e = fedreci_error(FEDREC_ERR_NOMEM, "out of memory initializing the CSV parser");
        goto fail;
    }
    csv_ok = 1;
    for (;;) {
        int n = gzread(gz, buf, READ_CHUNK);
        if (n < 0) {
            int zerr;
            const char *msg = gzerror(gz, &zerr);
            e = fedreci_error(FEDREC_ERR_IO, "%s: read failed: %s", path,
                              zerr == Z_ERRNO ? strerror(errno) : msg);
            goto fail;
        }
        /* A gzip stream that ends early is not the end of the log: zlib
         * returns the bytes up to the cut and flags Z_BUF_ERROR. */
        int zerr = Z_OK;
        (void)gzerror(gz, &zerr);
        if (zerr == Z_BUF_ERROR) {
            e = fedreci_error(FEDREC_ERR_CORRUPT,
                              "%s: truncated gzip file: the compressed data ends early "
                              "(after %lld bytes of text)",
                              path, (long long)gztell(gz));
            goto fail;
        }
        if (n == 0)
            break;
        size_t done = csv_parse(&p, buf, (size_t)n, on_field, on_record, L);
        if (L->err) {
            e = L->err;
            goto fail;
        }
        if (done != (size_t)n) {
            e = fedreci_error(FEDREC_ERR_FORMAT, "%s:%llu: malformed CSV: %s", path,
                              (unsigned long long)L->line + 1, csv_strerror(csv_error(&p)));
            goto fail;
        }
        if (csv_get_buffer_size(&p) > CSV_FIELD_CAP) {
            e = fedreci_error(FEDREC_ERR_TOO_BIG, "%s:%llu: a field is longer than %u bytes", path,
                              (unsigned long long)L->line + 1, CSV_FIELD_CAP);
            goto fail;
        }
    }
    if (csv_fini(&p, on_field, on_record, L) != 0 && !L->err) {
        e = fedreci_error(FEDREC_ERR_FORMAT, "%s:%llu: malformed CSV: %s", path,
                          (unsigned long long)L->line + 1, "unterminated quoted field");
        goto fail;
    }
    if (L->err) {
        e = L->err;
        goto fail;
    }
    if (!L->header_done) {
        e = fedreci_error(FEDREC_ERR_EMPTY, "%s: empty file (no header)", path);
        goto fail;
    }
    if (d->rep.rows_read == 0) {
        e = fedreci_error(FEDREC_ERR_EMPTY, "%s: header only, no data rows", path);
        goto fail;
    }
    if (o->build_matrix) {
        e = build_matrix(d, L);
        if (e)
            goto fail;
    } else {
        /* counting mode keeps no rows */
        free(d->events);
        d->events = NULL;
        d->n_events = 0;
    }
    if (report)
        *report = d->rep;
    *out = d;
    d = NULL;
    e = FEDREC_OK;
fail:
    if (csv_ok)
        csv_free(&p);
    if (gz)
        gzclose(gz);
    if (L) {
        for (size_t i = 0; i < L->n_hdr; i++)
            free(L->hdr[i]);
        free(L->hdr);
        free(L->cust_kept);
        free(L->item_kept);
    }
    free(L);
    free(buf);
    fedreci_dataset_destroy(d);
    return e;
}

/* ---- accessors -------------------------------------------------------------- */

const fedreci_dataset_report *fedreci_dataset_report_get(const fedreci_dataset *d)
{
    return &d->rep;
}

uint32_t fedreci_dataset_n_users(const fedreci_dataset *d)
{
    return d->n_users;
}

uint32_t fedreci_dataset_n_items(const fedreci_dataset *d)
{
    return d->n_items;
}

uint64_t fedreci_dataset_n_interactions(const fedreci_dataset *d)
{
    return d->nnz;
}

uint64_t fedreci_dataset_n_baskets(const fedreci_dataset *d)
{
    return d->n_baskets;
}

double fedreci_dataset_alpha(const fedreci_dataset *d)
{
    return d->alpha;
}

double fedreci_dataset_eps(const fedreci_dataset *d)
{
    return d->eps;
}

fedreci_mf_csr fedreci_dataset_csr(const fedreci_dataset *d)
{
    fedreci_mf_csr m = {d->n_users, d->n_items, d->indptr, d->indices, d->conf};
    return m;
}

const double *fedreci_dataset_quantity(const fedreci_dataset *d)
{
    return d->qty;
}

const uint32_t *fedreci_dataset_basket_count(const fedreci_dataset *d)
{
    return d->nbaskets;
}

fedreci_mf_user fedreci_dataset_user(const fedreci_dataset *d, uint32_t u)
{
    fedreci_mf_user r = {NULL, NULL, 0};
    if (u < d->n_users) {
        r.items = d->indices + d->indptr[u];
        r.conf = d->conf + d->indptr[u];
        r.n = (uint32_t)(d->indptr[u + 1] - d->indptr[u]);
    }
    return r;
}

const fedreci_dataset_event *fedreci_dataset_events(const fedreci_dataset *d, uint64_t *n)
{
    if (n)
        *n = d->n_events;
    return d->events;
}

const char *fedreci_dataset_user_name(const fedreci_dataset *d, uint32_t u)
{
    return u < d->n_users ? d->user_names[u] : "";
}

const char *fedreci_dataset_item_code(const fedreci_dataset *d, uint32_t i)
{
    return i < d->n_items ? d->item_codes[i] : "";
}

const char *fedreci_dataset_item_description(const fedreci_dataset *d, uint32_t i)
{
    return i < d->n_items ? d->item_descs[i] : "";
}

const char *fedreci_dataset_basket_name(const fedreci_dataset *d, uint32_t b)
{
    return b < d->n_baskets ? d->basket_names[b] : "";
}

fedrec_err fedreci_dataset_item_find(const fedreci_dataset *d, const char *code, uint32_t *item)
{
    if (!d || !code || !item)
        return fedreci_error(FEDREC_ERR_INVALID, "item lookup: NULL argument");
    const char **hit = d->n_items == 0 ? NULL
                                       : bsearch(&code, d->item_codes, d->n_items,
                                                 sizeof *d->item_codes, qcmp_str);
    if (!hit)
        return fedreci_error(FEDREC_ERR_NOT_FOUND, "item '%s' is not in the catalog", code);
    *item = (uint32_t)(hit - d->item_codes);
    return FEDREC_OK;
}

fedrec_err fedreci_dataset_user_find(const fedreci_dataset *d, const char *customer, uint32_t *user)
{
    if (!d || !customer || !user)
        return fedreci_error(FEDREC_ERR_INVALID, "customer lookup: NULL argument");
    const char **hit = d->n_users == 0 ? NULL
                                       : bsearch(&customer, d->user_names, d->n_users,
                                                 sizeof *d->user_names, qcmp_customer);
    if (!hit)
        return fedreci_error(FEDREC_ERR_NOT_FOUND, "customer '%s' is not in the log", customer);
    *user = (uint32_t)(hit - d->user_names);
    return FEDREC_OK;
}
