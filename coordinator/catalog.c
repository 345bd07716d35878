#include "catalog.h"

#include <csv.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/err.h"
#include "core/strmap.h"

/* Items in row order plus the index code -> row (codes interned in row
 * order, so a code's map index is its row). */
struct fedreci_catalog {
    fedreci_catalog_item *items;
    uint32_t n, cap;
    uint32_t n_active;
    fedreci_strmap rows;
};

fedrec_err fedreci_catalog_create(fedreci_catalog **out)
{
    fedreci_catalog *c = calloc(1, sizeof *c);
    if (!c)
        return fedreci_error(FEDREC_ERR_NOMEM, "catalog: out of memory");
    *out = c;
    return FEDREC_OK;
}

void fedreci_catalog_destroy(fedreci_catalog *c)
{
    if (!c)
        return;
    for (uint32_t i = 0; i < c->n; i++)
        free(c->items[i].description);
    free(c->items);
    fedreci_strmap_fini(&c->rows);
    free(c);
}

uint32_t fedreci_catalog_size(const fedreci_catalog *c)
{
    return c->n;
}

uint32_t fedreci_catalog_n_active(const fedreci_catalog *c)
{
    return c->n_active;
}

const fedreci_catalog_item *fedreci_catalog_at(const fedreci_catalog *c, uint32_t row)
{
    return row < c->n ? &c->items[row] : NULL;
}

fedrec_err fedreci_catalog_find(const fedreci_catalog *c, const char *code, uint32_t *row)
{
    if (fedreci_strmap_find(&c->rows, code, strlen(code), row))
        return FEDREC_OK;
    return fedreci_error(FEDREC_ERR_NOT_FOUND, "catalog: no product with code '%s'", code);
}

fedrec_err fedreci_catalog_add(fedreci_catalog *c, const char *code, const char *description,
                               int active)
{
    size_t code_len = code ? strlen(code) : 0;
    if (code_len == 0 || code_len > FEDRECI_CATALOG_MAX_CODE)
        return fedreci_error(FEDREC_ERR_INVALID,
                             "catalog: product code must be 1..%d bytes, got %zu",
                             FEDRECI_CATALOG_MAX_CODE, code_len);
    if (!description)
        description = "";
    if (strlen(description) > FEDRECI_CATALOG_MAX_DESCRIPTION)
        return fedreci_error(FEDREC_ERR_INVALID,
                             "catalog: description of '%s' is longer than %d bytes", code,
                             FEDRECI_CATALOG_MAX_DESCRIPTION);
    if (c->n >= FEDRECI_CATALOG_MAX_ITEMS)
        return fedreci_error(FEDREC_ERR_TOO_BIG, "catalog: more than %u products",
                             FEDRECI_CATALOG_MAX_ITEMS);
    uint32_t existing = 0;
    if (fedreci_strmap_find(&c->rows, code, code_len, &existing))
        return fedreci_error(FEDREC_ERR_DUPLICATE, "catalog: product code '%s' repeats row %u",
                             code, existing);
    if (c->n == c->cap) {
        uint32_t cap = c->cap ? c->cap * 2 : 64;
        fedreci_catalog_item *items = realloc(c->items, (size_t)cap * sizeof *items);
        if (!items)
            return fedreci_error(FEDREC_ERR_NOMEM, "catalog: out of memory");
        c->items = items;
        c->cap = cap;
    }
    char *desc_copy = strdup(description);
    if (!desc_copy)
        return fedreci_error(FEDREC_ERR_NOMEM, "catalog: out of memory");
    uint32_t row;
    fedrec_err e = fedreci_strmap_intern(&c->rows, code, code_len, &row, NULL);
    if (e) {
        free(desc_copy);
        return e == FEDREC_ERR_NOMEM ? fedreci_error(e, "catalog: out of memory") : e;
    }
    fedreci_catalog_item *it = &c->items[c->n];
    it->code = fedreci_strmap_key(&c->rows, row); /* owned by the map */
    it->description = desc_copy;
    it->row = c->n;
    it->active = active ? 1 : 0;
    c->n++;
    c->n_active += it->active;
    return FEDREC_OK;
}

/* ---- CSV ------------------------------------------------------------------ */

typedef struct csv_ctx {
    const char *path;
    size_t line;     /* physical line being fed to the parser, 1-based */
    size_t n_fields; /* fields of the current record */
    char code[FEDRECI_CATALOG_MAX_CODE + 1];
    char *description;
    int field_too_long;
    int header_checked;
    fedreci_catalog *cat;
    fedrec_err err; /* first error; later callbacks do nothing */
} csv_ctx;

static void csv_field(void *field, size_t len, void *data)
{
    csv_ctx *x = data;
    if (x->err)
        return;
    const char *s = field ? field : "";
    if (x->n_fields == 0) {
        if (len > FEDRECI_CATALOG_MAX_CODE)
            x->field_too_long = 1;
        else
            memcpy(x->code, s, len + 1);
    } else if (x->n_fields == 1) {
        if (len > FEDRECI_CATALOG_MAX_DESCRIPTION) {
            x->field_too_long = 2;
        } else {
            x->description = strndup(s, len);
            if (!x->description)
                x->err = fedreci_error(FEDREC_ERR_NOMEM, "%s: out of memory", x->path);
        }
    }
    x->n_fields++;
}

static void csv_row(int term, void *data)
{
    csv_ctx *x = data;
    (void)term;
    if (!x->err) {
        if (x->n_fields != 2) {
            x->err = fedreci_error(FEDREC_ERR_FORMAT,
                                   "%s:%zu: expected 2 columns (code,description), got %zu",
                                   x->path, x->line, x->n_fields);
        } else if (x->field_too_long == 1) {
            x->err = fedreci_error(FEDREC_ERR_FORMAT, "%s:%zu: column code: longer than %d bytes",
                                   x->path, x->line, FEDRECI_CATALOG_MAX_CODE);
        } else if (x->field_too_long == 2) {
            x->err =
                fedreci_error(FEDREC_ERR_FORMAT, "%s:%zu: column description: longer than %d bytes",
                              x->path, x->line, FEDRECI_CATALOG_MAX_DESCRIPTION);
        } else if (!x->header_checked && strcasecmp(x->code, "code") == 0 &&
                   strcasecmp(x->description, "description") == 0) {
            /* the optional header line */
        } else if (x->code[0] == '\0') {
            x->err = fedreci_error(FEDREC_ERR_FORMAT, "%s:%zu: column code: empty product code",
                                   x->path, x->line);
        } else {
            uint32_t prev;
            if (fedreci_catalog_find(x->cat, x->code, &prev) == FEDREC_OK) {
                x->err = fedreci_error(FEDREC_ERR_DUPLICATE,
                                       "%s:%zu: column code: '%s' repeats an earlier line", x->path,
                                       x->line, x->code);
            } else {
                fedrec_err e = fedreci_catalog_add(x->cat, x->code, x->description, 1);
                if (e) {
                    char why[600];
                    snprintf(why, sizeof why, "%s", fedrec_errmsg());
                    x->err = fedreci_error(e, "%s:%zu: %s", x->path, x->line, why);
                }
            }
        }
    }
    x->header_checked = 1;
    free(x->description);
    x->description = NULL;
    x->n_fields = 0;
    x->field_too_long = 0;
    x->code[0] = '\0';
}

fedrec_err fedreci_catalog_read_csv(fedreci_catalog **out, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return fedreci_error(FEDREC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    csv_ctx x = {.path = path};
    fedrec_err e = fedreci_catalog_create(&x.cat);
    if (e) {
        fclose(f);
        return e;
    }
    struct csv_parser p;
    if (csv_init(&p, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL) != 0) {
        fclose(f);
        fedreci_catalog_destroy(x.cat);
        return fedreci_error(FEDREC_ERR_NOMEM, "%s: out of memory", path);
    }
    char *line = NULL;
    size_t line_cap = 0;
    ssize_t len;
    while (!x.err && (len = getline(&line, &line_cap, f)) >= 0) {
        x.line++;
        if (csv_parse(&p, line, (size_t)len, csv_field, csv_row, &x) != (size_t)len && !x.err)
            x.err = fedreci_error(FEDREC_ERR_FORMAT, "%s:%zu: %s", path, x.line,
                                  csv_strerror(csv_error(&p)));
    }
    if (!x.err && ferror(f))
        x.err = fedreci_error(FEDREC_ERR_IO, "%s: read error: %s", path, strerror(errno));
    if (!x.err && csv_fini(&p, csv_field, csv_row, &x) != 0 && !x.err)
        x.err = fedreci_error(FEDREC_ERR_FORMAT, "%s:%zu: %s", path, x.line,
                              csv_strerror(csv_error(&p)));
    if (!x.err && x.cat->n == 0)
        x.err = fedreci_error(FEDREC_ERR_EMPTY, "%s: no products", path);
    free(x.description);
    free(line);
    csv_free(&p);
    fclose(f);
    if (x.err) {
        fedreci_catalog_destroy(x.cat);
        return x.err;
    }
    *out = x.cat;
    return FEDREC_OK;
}

/* ---- merge ------------------------------------------------------------------ */

fedrec_err fedreci_catalog_merge(const fedreci_catalog *old, const fedreci_catalog *incoming,
                                 fedreci_catalog **out, fedreci_catalog_diff *diff)
{
    fedreci_catalog_diff d = {0};
    fedreci_catalog *m = NULL;
    fedrec_err e = fedreci_catalog_create(&m);
    if (e)
        return e;
    uint32_t n_old = old ? old->n : 0;
    for (uint32_t r = 0; r < n_old && !e; r++) {
        const fedreci_catalog_item *it = &old->items[r];
        uint32_t in_row = 0;
        int present = fedreci_catalog_find(incoming, it->code, &in_row) == FEDREC_OK;
        const char *desc = it->description;
        if (present) {
            desc = incoming->items[in_row].description;
            if (strcmp(desc, it->description) != 0)
                d.renamed++;
            if (!it->active)
                d.reactivated++;
        } else if (it->active) {
            d.retired++;
        }
        e = fedreci_catalog_add(m, it->code, desc, present);
    }
    for (uint32_t r = 0; r < incoming->n && !e; r++) {
        const fedreci_catalog_item *it = &incoming->items[r];
        uint32_t old_row = 0;
        if (old && fedreci_catalog_find(old, it->code, &old_row) == FEDREC_OK)
            continue;
        e = fedreci_catalog_add(m, it->code, it->description, 1);
        d.added++;
    }
    if (e) {
        fedreci_catalog_destroy(m);
        return e;
    }
    fedreci_error_clear();
    if (diff)
        *diff = d;
    *out = m;
    return FEDREC_OK;
}

fedrec_err fedreci_catalog_retired_rows(const fedreci_catalog *c, uint32_t **rows, size_t *n)
{
    size_t count = c->n - c->n_active;
    uint32_t *r = NULL;
    if (count) {
        r = malloc(count * sizeof *r);
        if (!r)
            return fedreci_error(FEDREC_ERR_NOMEM, "catalog: out of memory");
        size_t j = 0;
        for (uint32_t i = 0; i < c->n; i++)
            if (!c->items[i].active)
                r[j++] = i;
    }
    *rows = r;
    *n = count;
    return FEDREC_OK;
}
