/*
 * coordinator/bootstrap: what the daemon serves when it starts - the item
 * catalog and the model, from the database and the configured catalog file.
 *
 * On start:
 *   1. the stored catalog and the last committed model are loaded;
 *   2. if a catalog file is given it is merged into the stored catalog
 *      (fedreci_catalog_merge: rows never move, new products appended,
 *      missing ones retired) - unless the file's BLAKE2b-256 digest equals
 *      the one recorded at that file's last merge (file_unchanged): a file
 *      that did not change since is not merged again, so it cannot revert
 *      a catalog update made from another file since. Every merge records
 *      the file's digest (fedreci_db_catalog_file_merged);
 *   3. if there is no model yet, a fresh one is drawn N(0, 0.01^2) for the
 *      catalog (origin "init"); if the catalog changed, the item factors are
 *      grown for the new rows (trained rows kept bit for bit, new rows
 *      N(0, 0.01^2)) and committed as a new version (origin "catalog"), in
 *      the same transaction as the new catalog, so clients holding the old
 *      version download the new catalog (with its retired flags) with it;
 *   4. otherwise the last committed model is served unchanged.
 *
 * Errors: FEDREC_ERR_EMPTY (no catalog stored and none given),
 * FEDREC_ERR_INVALID (--factors differs from the stored model's k),
 * FEDREC_ERR_CORRUPT (stored model and catalog disagree on the rows), and
 * whatever the catalog reader and the database return.
 * Thread-safety: call once, at startup, from one thread.
 */
#ifndef FEDREC_COORDINATOR_BOOTSTRAP_H
#define FEDREC_COORDINATOR_BOOTSTRAP_H

#include <stdint.h>

#include "catalog.h"
#include "db.h"
#include "model.h"

typedef struct fedreci_bootstrap {
    fedreci_catalog *catalog;  /* owned: the catalog being served */
    uint64_t catalog_id;       /* its id in the database */
    fedreci_model model;       /* owned: the model being served */
    fedreci_catalog_diff diff; /* what the catalog file changed */
    int committed;             /* 1 when a new version was committed at start */
    int file_unchanged;        /* 1: the catalog file has the digest recorded at its
                                  last merge and was not merged again */
} fedreci_bootstrap;

/* catalog_path may be NULL (keep the stored catalog). factors: k of a fresh
 * model and the k the stored model must have. seed: initialization of fresh
 * and new rows (mixed with the catalog id so growths differ). */
FEDREC_NODISCARD fedrec_err fedreci_bootstrap_run(fedreci_db *db, const char *catalog_path,
                                                  uint32_t factors, uint64_t seed,
                                                  fedreci_bootstrap *out);

/* Frees the catalog and the model. NULL is a no-op. */
void fedreci_bootstrap_clear(fedreci_bootstrap *b);

#endif /* FEDREC_COORDINATOR_BOOTSTRAP_H */
