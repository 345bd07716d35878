/*
 * core/dataset: purchase logs (CSV or gzip'd CSV) loaded, cleaned and turned
 * into a users x items implicit-feedback matrix.
 *
 * Input: RFC 4180 CSV (parsed with libcsv), plain or gzip-compressed (zlib
 * gzread reads both transparently), streamed in 64 KiB chunks: memory is
 * proportional to the kept rows and the distinct ids, not to the file.
 * The first record is the header. Default layout: UCI Online Retail
 * `InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country`;
 * any other log works through fedreci_dataset_columns (columns are matched by
 * header name, case-insensitively; order and extra columns do not matter).
 *
 * Cleaning (docs/data.md): each data row is checked against these rules in
 * this order and counted under the first one that drops it:
 *   1. unparsable   wrong column count, a mapped field too long (> 1023 bytes),
 *                   an empty item code, or a quantity / price / time that does
 *                   not parse
 *                   (with `strict`, the first one is an error instead);
 *   2. no_customer  empty customer field;
 *   3. cancelled    basket (invoice) starting with 'C';
 *   4. quantity     quantity <= 0 (returns are never purchases);
 *   5. price        price <= 0;
 *   6. rating       rating below rating_threshold (only with a rating column);
 *   7. non_product  item code in the non-product list (see below).
 * Rows that pass every rule are "kept"; with `only_customer` set, kept rows of
 * other customers are then counted in `other_customer` and discarded.
 *
 * Ids: customers are given dense ids 0..n_users-1 in this order: customer ids
 * made only of decimal digits first, by numeric value, then any others by
 * byte-wise string order. Items get dense ids 0..n_items-1 by byte-wise order
 * of their code (strcmp). Only customers and items of kept rows get ids.
 *
 * Interactions: duplicate (customer, item) rows are merged: their quantities
 * are summed (q) and their distinct baskets counted. Confidence
 *   c = 1 + alpha * log(1 + q / eps)
 * (Hu, Koren & Volinsky, ICDM 2008). The result is exposed as a CSR matrix
 * directly usable as core/mf's fedreci_mf_csr.
 *
 * Baskets: a basket is an invoice (the basket column). When the log has no
 * basket column, each distinct (customer, time) is one basket.
 *
 * Times are unix seconds (UTC). Accepted forms: ISO 8601 `YYYY-MM-DD`,
 * `YYYY-MM-DD HH:MM`, `YYYY-MM-DD HH:MM:SS` (or `T` between date and time),
 * optionally with fractional seconds (ignored) and a zone `Z`, `+HH:MM`,
 * `-HH:MM`, `+HHMM` or `+HH` (converted to UTC; without one the time is
 * read as UTC); the UCI Online Retail spreadsheet layout `M/D/YYYY H:MM`
 * (also with `:SS`, or the date alone; month first); or an integer of at
 * least 9 digits (already unix seconds).
 *
 * Line numbers in messages count CSV records (line 1 is the header); they equal
 * physical lines unless a quoted field contains a line break.
 *
 * Thread-safety: a loaded dataset is immutable; any number of threads may
 * read it concurrently. Loading is reentrant.
 */
#ifndef FEDREC_CORE_DATASET_H
#define FEDREC_CORE_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "core/mf/mf.h"
#include "fedrec/fedrec.h"

/* Column mapping by header name, or by 1-based position: a name made only of
 * digits that is not itself a header name ("3") is the third column. NULL means "the UCI default"
 * for that field (CustomerID, StockCode, InvoiceDate, Quantity, UnitPrice, InvoiceNo, Description);
 * "" for an optional field means "the log has no such column". user, item and time are required: a
 * missing one is FEDREC_ERR_FORMAT. Without a quantity column every row counts as quantity 1;
 * without a price column the price rule is skipped; without a basket column the cancellation rule
 * is skipped and baskets are (customer, time). */
typedef struct fedreci_dataset_columns {
    const char *user;
    const char *item;
    const char *time;
    const char *quantity;
    const char *price;
    const char *basket;
    const char *description;
    /* An explicit rating (e.g. MovieLens stars): NULL or "" for none. A
     * rating is never a quantity: a row whose rating is below the options'
     * rating_threshold is dropped (rule 6, dropped_rating); a row at or above
     * it is one purchase (quantity 1 unless a quantity column is mapped too). */
    const char *rating;
} fedreci_dataset_columns;

/* One kept purchase row as handed to the row callback. Strings are
 * NUL-terminated and valid only during the callback. */
typedef struct fedreci_purchase {
    const char *customer;    /* customer id as written in the log */
    const char *item;        /* item (stock) code */
    const char *description; /* "" when the log has none */
    const char *basket;      /* invoice; "" when the log has no basket column */
    int64_t time;            /* unix seconds, UTC */
    double quantity;         /* > 0 */
    double price;            /* > 0, or 0 when the log has no price column */
    uint64_t line;           /* record number in the file (1 = header) */
} fedreci_purchase;

/* Called for every kept row (after only_customer filtering), in file order.
 * Return FEDREC_OK to continue; any other value stops the load, which then
 * returns that value (the callback should have set a message with
 * fedreci_error). */
typedef fedrec_err (*fedreci_purchase_fn)(void *ctx, const fedreci_purchase *p);

/* The default non-product codes (docs/data.md): postage, carriage, manual,
 * discount, samples, fees, bank charges, bad debt, gift vouchers. Entries
 * ending in '*' are prefixes. Matching is ASCII case-insensitive. */
extern const char *const fedreci_dataset_default_non_product[];
extern const size_t fedreci_dataset_default_non_product_count;

typedef struct fedreci_dataset_options {
    fedreci_dataset_columns columns; /* all NULL: UCI Online Retail */
    int strict;   /* first unparsable field is FEDREC_ERR_PARSE naming file:line:column */
    double alpha; /* confidence scale, >= 0 (default 1) */
    double eps;   /* confidence quantity unit, > 0 (default 1) */
    double rating_threshold; /* with a rating column: the least rating that counts as a
                                purchase (default 4) */
    /* Non-product list: NULL uses the default list; otherwise n_non_product
     * entries (may be 0 to keep every code). Same '*' prefix convention. */
    const char *const *non_product;
    size_t n_non_product;
    const char *only_customer; /* keep only this customer's rows (NULL: all) */
    int build_matrix;          /* 0: only count and call on_row (no ids, no CSR) */
    fedreci_purchase_fn on_row;
    void *on_row_ctx;
} fedreci_dataset_options;

/* Fills defaults: UCI columns, not strict, alpha 1, eps 1, default non-product
 * list, all customers, build_matrix 1, no callback. */
void fedreci_dataset_options_default(fedreci_dataset_options *o);

/* The cleaning report. rows_read = rows_kept + the sum of the dropped_* fields
 * + other_customer. */
typedef struct fedreci_dataset_report {
    uint64_t rows_read; /* data records (header excluded) */
    uint64_t dropped_unparsable;
    uint64_t dropped_no_customer;
    uint64_t dropped_cancelled;
    uint64_t dropped_quantity;
    uint64_t dropped_price;
    uint64_t dropped_rating; /* rating below rating_threshold */
    uint64_t dropped_non_product;
    uint64_t other_customer; /* kept rows discarded by only_customer */
    uint64_t rows_kept;
    /* distinct non-empty values over all rows with the right column count,
     * before any cleaning rule */
    uint32_t raw_customers;
    uint32_t raw_items;
    /* after cleaning (only with build_matrix; else 0) */
    uint32_t customers;
    uint32_t items;
    uint64_t interactions; /* distinct (customer, item) pairs */
    uint64_t baskets;      /* distinct baskets among kept rows */
    int64_t time_min;      /* over kept rows; 0 when none */
    int64_t time_max;
} fedreci_dataset_report;

/* One kept row after id assignment. Events are sorted by (user, time,
 * basket, item). */
typedef struct fedreci_dataset_event {
    int64_t time;    /* unix seconds */
    double quantity; /* > 0 */
    uint32_t user;   /* dense user id */
    uint32_t item;   /* dense item id */
    uint32_t basket; /* dense basket id: invoices in byte-wise string order */
} fedreci_dataset_event;

typedef struct fedreci_dataset fedreci_dataset;

/* Loads and cleans `path` (plain or gzip'd CSV). opts may be NULL (defaults).
 * On success *out owns the dataset (free with fedreci_dataset_destroy) and,
 * when report is non-NULL, *report gets the cleaning report (also available
 * from fedreci_dataset_report_get).
 * Errors: FEDREC_ERR_INVALID (bad options), FEDREC_ERR_IO (cannot open/read),
 * FEDREC_ERR_EMPTY (no header, or a header and no data rows),
 * FEDREC_ERR_FORMAT (malformed CSV quoting, missing required column, duplicate
 * header name), FEDREC_ERR_PARSE (strict mode: an unparsable field),
 * FEDREC_ERR_TOO_BIG (a field over 1 MiB, more than 2^32-2 ids),
 * FEDREC_ERR_NOMEM, or whatever on_row returned. Messages name file:line and
 * the column. */
FEDREC_NODISCARD fedrec_err fedreci_dataset_load(fedreci_dataset **out, const char *path,
                                                 const fedreci_dataset_options *opts,
                                                 fedreci_dataset_report *report);

/* Frees everything; NULL is a no-op. */
void fedreci_dataset_destroy(fedreci_dataset *d);

const fedreci_dataset_report *fedreci_dataset_report_get(const fedreci_dataset *d);

uint32_t fedreci_dataset_n_users(const fedreci_dataset *d);
uint32_t fedreci_dataset_n_items(const fedreci_dataset *d);
uint64_t fedreci_dataset_n_interactions(const fedreci_dataset *d);
uint64_t fedreci_dataset_n_baskets(const fedreci_dataset *d);
double fedreci_dataset_alpha(const fedreci_dataset *d);
double fedreci_dataset_eps(const fedreci_dataset *d);

/* The users x items matrix (n_users rows, n_items columns, n_interactions
 * entries, ascending item ids per row, conf = confidence). Pointers borrowed
 * from d, valid until it is destroyed. */
fedreci_mf_csr fedreci_dataset_csr(const fedreci_dataset *d);
/* Per-interaction (aligned with the CSR entries): summed quantity, and number
 * of distinct baskets the item was bought in. Borrowed. */
const double *fedreci_dataset_quantity(const fedreci_dataset *d);
const uint32_t *fedreci_dataset_basket_count(const fedreci_dataset *d);
/* One user's row as a core/mf user view (borrowed). u must be < n_users. */
fedreci_mf_user fedreci_dataset_user(const fedreci_dataset *d, uint32_t u);

/* Kept rows after id assignment, sorted by (user, time, basket, item);
 * *n gets their count. Borrowed. */
const fedreci_dataset_event *fedreci_dataset_events(const fedreci_dataset *d, uint64_t *n);

/* Names (borrowed, never NULL for a valid id): the customer id string, the
 * item code, its description (the first non-empty one among kept rows, else
 * ""), and the basket (invoice) string. */
const char *fedreci_dataset_user_name(const fedreci_dataset *d, uint32_t u);
const char *fedreci_dataset_item_code(const fedreci_dataset *d, uint32_t i);
const char *fedreci_dataset_item_description(const fedreci_dataset *d, uint32_t i);
const char *fedreci_dataset_basket_name(const fedreci_dataset *d, uint32_t b);

/* Lookups by exact string (binary search, O(log n)).
 * Errors: FEDREC_ERR_NOT_FOUND, FEDREC_ERR_INVALID (NULL argument). */
FEDREC_NODISCARD fedrec_err fedreci_dataset_item_find(const fedreci_dataset *d, const char *code,
                                                      uint32_t *item);
FEDREC_NODISCARD fedrec_err fedreci_dataset_user_find(const fedreci_dataset *d,
                                                      const char *customer, uint32_t *user);

/* Confidence for a summed quantity: 1 + alpha * log(1 + q / eps). */
float fedreci_dataset_confidence(double q, double alpha, double eps);

/* Parses a time in any of the forms above into unix seconds (UTC).
 * Returns 0 on success, -1 when the text is not a valid time. */
int fedreci_parse_time(const char *s, int64_t *out);

/* --format presets: "online-retail" (the UCI defaults), "movielens"
 * (userId, movieId, timestamp, rating; no quantity, price, basket or
 * description) or "generic" (user, item, time, optional quantity; no price,
 * basket or description). Overwrites *c. FEDREC_ERR_INVALID naming the
 * format when it is none of these. */
FEDREC_NODISCARD fedrec_err fedreci_dataset_format(const char *name, fedreci_dataset_columns *c);

/* Parses a --columns spec "role=column,role=column,..." (roles user, item,
 * time, quantity, price, basket, description, rating; a column is a header
 * name or a 1-based position; an empty column, as in "price=", means the
 * log has none) into *c, over what *c holds already. The strings stored
 * point into spec, which is modified in place and must outlive *c.
 * FEDREC_ERR_INVALID naming the part that is wrong. */
FEDREC_NODISCARD fedrec_err fedreci_dataset_columns_parse(char *spec, fedreci_dataset_columns *c);

/* 1 when code is in the list (exact or '*' prefix, ASCII case-insensitive). */
int fedreci_dataset_code_listed(const char *code, const char *const *list, size_t n);

#endif /* FEDREC_CORE_DATASET_H */
