#include "bootstrap.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/err.h"

/* BLAKE2b-256 of the file at path. Errors: FEDREC_ERR_IO naming it. */
static fedrec_err file_digest(const char *path, uint8_t out[32])
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return fedreci_error(FEDREC_ERR_IO, "catalog %s: %s", path, strerror(errno));
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, 32);
    unsigned char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        crypto_generichash_update(&st, buf, n);
    int bad = ferror(f);
    fclose(f);
    if (bad)
        return fedreci_error(FEDREC_ERR_IO, "catalog %s: read error", path);
    crypto_generichash_final(&st, out, 32);
    return FEDREC_OK;
}

void fedreci_bootstrap_clear(fedreci_bootstrap *b)
{
    if (!b)
        return;
    fedreci_catalog_destroy(b->catalog);
    fedreci_model_clear(&b->model);
    memset(b, 0, sizeof *b);
}

fedrec_err fedreci_bootstrap_run(fedreci_db *db, const char *catalog_path, uint32_t factors,
                                 uint64_t seed, fedreci_bootstrap *out)
{
    fedreci_bootstrap b = {0};
    fedreci_catalog *stored = NULL, *incoming = NULL;
    uint64_t stored_id = 0;
    int have_model = 0;
    fedrec_err e = fedreci_db_load_catalog(db, &stored, &stored_id);
    if (e)
        return e;
    e = fedreci_db_latest_model(db, &b.model);
    if (e == FEDREC_OK)
        have_model = 1;
    else if (e == FEDREC_ERR_NOT_FOUND)
        e = FEDREC_OK;
    if (!e && have_model && b.model.k != factors)
        e = fedreci_error(FEDREC_ERR_INVALID,
                          "factors: %u differs from k = %u of the stored model version %llu "
                          "(a model cannot change its number of factors)",
                          factors, b.model.k, (unsigned long long)b.model.version);
    if (!e && have_model && b.model.n_items != fedreci_catalog_size(stored))
        e = fedreci_error(
            FEDREC_ERR_CORRUPT, "stored model version %llu has %u item rows, the stored catalog %u",
            (unsigned long long)b.model.version, b.model.n_items, fedreci_catalog_size(stored));
    int changed = 0;
    uint8_t digest[32];
    if (!e && catalog_path)
        e = file_digest(catalog_path, digest);
    if (!e && catalog_path && have_model) {
        uint8_t last[32];
        uint64_t last_id = 0;
        fedrec_err g = fedreci_db_catalog_file_get(db, catalog_path, last, &last_id);
        if (g == FEDREC_OK && sodium_memcmp(last, digest, 32) == 0) {
            b.file_unchanged = 1;
            catalog_path = NULL; /* served as stored */
        } else if (g != FEDREC_ERR_NOT_FOUND && g != FEDREC_OK) {
            e = g;
        }
    }
    const char *merged = catalog_path;
    if (!e && catalog_path) {
        e = fedreci_catalog_read_csv(&incoming, catalog_path);
        if (!e)
            e = fedreci_catalog_merge(stored, incoming, &b.catalog, &b.diff);
        if (!e)
            changed = stored_id == 0 || b.diff.added || b.diff.retired || b.diff.reactivated ||
                      b.diff.renamed;
    } else if (!e) {
        if (fedreci_catalog_size(stored) == 0)
            e = fedreci_error(FEDREC_ERR_EMPTY,
                              "no item catalog in the database yet: give --catalog FILE on the "
                              "first start");
        b.catalog = stored;
        stored = NULL;
    }
    if (!e && (changed || !have_model)) {
        fedreci_model m = {0};
        uint32_t old_n = have_model ? b.model.n_items : 0;
        m.n_items = fedreci_catalog_size(b.catalog);
        m.k = factors;
        m.origin = have_model ? FEDRECI_MODEL_CATALOG : FEDRECI_MODEL_INIT;
        uint64_t row_seed = seed ^ (UINT64_C(0x9E3779B97F4A7C15) * (stored_id + 1));
        e = fedreci_catalog_grow_factors(have_model ? b.model.y : NULL, old_n, factors, m.n_items,
                                         have_model ? row_seed : seed, FEDRECI_CATALOG_INIT_STD,
                                         &m.y);
        if (!e) {
            e = fedreci_db_store_catalog(db, b.catalog, catalog_path ? catalog_path : "", &m,
                                         &b.catalog_id);
            if (e) {
                free(m.y);
            } else {
                fedreci_model_clear(&b.model);
                b.model = m;
                b.committed = 1;
            }
        }
    } else if (!e) {
        b.catalog_id = stored_id;
    }
    if (!e && merged)
        e = fedreci_db_catalog_file_merged(db, merged, digest, b.catalog_id);
    fedreci_catalog_destroy(stored);
    fedreci_catalog_destroy(incoming);
    if (e) {
        fedreci_bootstrap_clear(&b);
        return e;
    }
    *out = b;
    return FEDREC_OK;
}
