/*
 * coordinator/catalog: the retailer's item catalog, mapping product codes to
 * item rows of the model's item factors Y (n_items x k).
 *
 * Rows are append-only: a product keeps its row for the lifetime of the
 * deployment, so trained rows of Y are never moved. A product missing from a
 * newer catalog is *retired* (row kept, active = 0): it stays in Y so row
 * indices do not shift, but it is no longer recommended. How clients learn
 * it: the catalog (code and active flag per row) travels with every model
 * version; a client passes the retired rows as excluded items to top-K
 * (fedreci_catalog_retired_rows gives that list, sorted ascending, which is
 * the shape fedreci_mf_topk's `exclude` wants). A retired product that
 * reappears is reactivated on its old row.
 *
 * New products get new rows at the end; fedreci_catalog_grow_factors grows Y
 * for them with fresh N(0, 0.01^2) rows (core/mf fedreci_mf_init), keeping the
 * trained rows bit for bit.
 *
 * Ownership: a catalog owns its strings. Thread-safety: a catalog may be read
 * from several threads at once; mutation (merge builds a new catalog) is not
 * shared.
 */
#ifndef FEDREC_COORDINATOR_CATALOG_H
#define FEDREC_COORDINATOR_CATALOG_H

#include <stddef.h>
#include <stdint.h>

#include "fedrec/fedrec.h"

/* Limits that keep a hostile or broken catalog file from exhausting memory. */
#define FEDRECI_CATALOG_MAX_CODE 64          /* bytes of a product code */
#define FEDRECI_CATALOG_MAX_DESCRIPTION 1024 /* bytes of a description */
#define FEDRECI_CATALOG_MAX_ITEMS 10000000u  /* rows */

/* Initialization of new item rows (docs/design.md section 8: init N(0, 0.01)). */
#define FEDRECI_CATALOG_INIT_STD 0.01f

typedef struct fedreci_catalog_item {
    const char *code;  /* product code, unique, 1..FEDRECI_CATALOG_MAX_CODE bytes */
    char *description; /* may be "" */
    uint32_t row;      /* row of Y; equals the index in the catalog */
    uint8_t active;    /* 1 = recommendable, 0 = retired */
} fedreci_catalog_item;

typedef struct fedreci_catalog fedreci_catalog;

/* An empty catalog. Errors: FEDREC_ERR_NOMEM. */
FEDREC_NODISCARD fedrec_err fedreci_catalog_create(fedreci_catalog **out);

/* Frees the catalog and its strings. NULL is a no-op. */
void fedreci_catalog_destroy(fedreci_catalog *c);

/* Appends a product on the next row (n_items before the call). code and
 * description are copied. Errors: FEDREC_ERR_INVALID (empty or too long code,
 * too long description), FEDREC_ERR_DUPLICATE (code already present),
 * FEDREC_ERR_TOO_BIG (more than FEDRECI_CATALOG_MAX_ITEMS), FEDREC_ERR_NOMEM. */
FEDREC_NODISCARD fedrec_err fedreci_catalog_add(fedreci_catalog *c, const char *code,
                                                const char *description, int active);

/* Number of rows (active and retired). */
uint32_t fedreci_catalog_size(const fedreci_catalog *c);

/* Number of active rows. */
uint32_t fedreci_catalog_n_active(const fedreci_catalog *c);

/* The product on `row` (< size), borrowed until the catalog is destroyed. */
const fedreci_catalog_item *fedreci_catalog_at(const fedreci_catalog *c, uint32_t row);

/* The row of `code`. Errors: FEDREC_ERR_NOT_FOUND. O(1) expected (hash). */
FEDREC_NODISCARD fedrec_err fedreci_catalog_find(const fedreci_catalog *c, const char *code,
                                                 uint32_t *row);

/* Reads a catalog from a CSV file, RFC 4180 quoting, columns
 * `code,description` (an optional first line naming exactly those columns is
 * skipped). Rows are numbered in file order, all active.
 * Errors name the file and line: FEDREC_ERR_IO (cannot open/read),
 * FEDREC_ERR_FORMAT (wrong column count, empty code, malformed quoting),
 * FEDREC_ERR_DUPLICATE (a code repeats), FEDREC_ERR_EMPTY (no products),
 * FEDREC_ERR_TOO_BIG, FEDREC_ERR_NOMEM. */
FEDREC_NODISCARD fedrec_err fedreci_catalog_read_csv(fedreci_catalog **out, const char *path);

/* What a merge changed. */
typedef struct fedreci_catalog_diff {
    uint32_t added;       /* new products, appended rows */
    uint32_t retired;     /* active before, missing from the incoming catalog */
    uint32_t reactivated; /* retired before, present again */
    uint32_t renamed;     /* description changed */
} fedreci_catalog_diff;

/* Merges the stored catalog `old` (may be NULL: first run) with a freshly read
 * `incoming` one into a new catalog *out: every old row keeps its row index
 * and code (description taken from incoming when present); products present
 * in incoming are active; old products absent from incoming are retired;
 * incoming products unknown to old are appended in incoming's order.
 * *diff (optional) gets the counts. Neither input is modified.
 * Errors: FEDREC_ERR_NOMEM, FEDREC_ERR_TOO_BIG. */
FEDREC_NODISCARD fedrec_err fedreci_catalog_merge(const fedreci_catalog *old,
                                                  const fedreci_catalog *incoming,
                                                  fedreci_catalog **out,
                                                  fedreci_catalog_diff *diff);

/* The retired rows, ascending, in a malloc'd array (*rows, *n; *rows is NULL
 * when n == 0). Free with free(). Errors: FEDREC_ERR_NOMEM. */
FEDREC_NODISCARD fedrec_err fedreci_catalog_retired_rows(const fedreci_catalog *c, uint32_t **rows,
                                                         size_t *n);

/* Grows item factors y (old_n x k, row-major float32, may be NULL when
 * old_n == 0) to new_n >= old_n rows: *out (malloc'd, new_n x k) gets rows
 * [0, old_n) copied unchanged and rows [old_n, new_n) drawn N(0, std^2) by
 * fedreci_mf_init seeded with `seed` (deterministic). Free with free().
 * Errors: FEDREC_ERR_INVALID (new_n < old_n, k == 0, y NULL with old_n > 0),
 * FEDREC_ERR_TOO_BIG (size overflow), FEDREC_ERR_NOMEM. */
FEDREC_NODISCARD fedrec_err fedreci_catalog_grow_factors(const float *y, uint32_t old_n, uint32_t k,
                                                         uint32_t new_n, uint64_t seed, float std,
                                                         float **out);

#endif /* FEDREC_COORDINATOR_CATALOG_H */
