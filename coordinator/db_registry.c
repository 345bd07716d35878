/*
 * coordinator/db_registry.c: catalog versions and the client registry
 * (identity keys, opt-out, exclusion of culprits). See db.h.
 */
#include "db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "core/err.h"
#include "db_internal.h"

fedrec_err fedreci_db_load_catalog(fedreci_db *db, fedreci_catalog **out, uint64_t *catalog_id)
{
    int64_t id = 0;
    fedrec_err e = fedreci_dbi_query_int(db, S_CATALOG_LATEST, &id, "read catalog id");
    if (e)
        return e;
    fedreci_catalog *c;
    e = fedreci_catalog_create(&c);
    if (e)
        return e;
    sqlite3_stmt *s = fedreci_dbi_stmt(db, S_ITEMS_ALL, &e);
    int rc = SQLITE_DONE;
    while (s && !e && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        int64_t row = sqlite3_column_int64(s, 0);
        if (row != (int64_t)fedreci_catalog_size(c)) {
            e = fedreci_error(FEDREC_ERR_CORRUPT, "%s: items: row %lld follows row %u", db->path,
                              (long long)row, fedreci_catalog_size(c));
            break;
        }
        e = fedreci_catalog_add(c, (const char *)sqlite3_column_text(s, 1),
                                (const char *)sqlite3_column_text(s, 2), sqlite3_column_int(s, 3));
        if (e) {
            char why[600];
            snprintf(why, sizeof why, "%s", fedrec_errmsg());
            e = fedreci_error(FEDREC_ERR_CORRUPT, "%s: items row %lld: %s", db->path,
                              (long long)row, why);
        }
    }
    if (s && !e && rc != SQLITE_DONE)
        e = fedreci_dbi_fail(db, "read items");
    if (s)
        sqlite3_reset(s);
    if (e) {
        fedreci_catalog_destroy(c);
        return e;
    }
    *out = c;
    *catalog_id = (uint64_t)id;
    return FEDREC_OK;
}

fedrec_err fedreci_db_store_catalog(fedreci_db *db, const fedreci_catalog *c, const char *source,
                                    fedreci_model *m, uint64_t *catalog_id)
{
    fedreci_catalog *stored;
    uint64_t old_id;
    fedrec_err e = fedreci_dbi_begin(db);
    if (e)
        return e;
    e = fedreci_db_load_catalog(db, &stored, &old_id);
    if (e) {
        fedreci_dbi_rollback(db);
        return e;
    }
    uint32_t n_stored = fedreci_catalog_size(stored);
    if (n_stored > fedreci_catalog_size(c))
        e = fedreci_error(FEDREC_ERR_INVALID,
                          "%s: new catalog has %u rows, fewer than the %u stored", db->path,
                          fedreci_catalog_size(c), n_stored);
    for (uint32_t r = 0; r < n_stored && !e; r++)
        if (strcmp(fedreci_catalog_at(stored, r)->code, fedreci_catalog_at(c, r)->code) != 0)
            e = fedreci_error(
                FEDREC_ERR_INVALID, "%s: new catalog puts '%s' on row %u, which holds '%s'",
                db->path, fedreci_catalog_at(c, r)->code, r, fedreci_catalog_at(stored, r)->code);
    fedreci_catalog_destroy(stored);
    uint64_t id = old_id + 1;
    sqlite3_stmt *s = e ? NULL : fedreci_dbi_stmt(db, S_CATALOG_INSERT, &e);
    if (s) {
        sqlite3_bind_int64(s, 1, (sqlite3_int64)id);
        sqlite3_bind_int64(s, 2, fedreci_db_now_ms());
        sqlite3_bind_int64(s, 3, fedreci_catalog_size(c));
        sqlite3_bind_int64(s, 4, fedreci_catalog_n_active(c));
        sqlite3_bind_text(s, 5, source ? source : "", -1, SQLITE_TRANSIENT);
        e = fedreci_dbi_step_done(db, s, "insert catalog");
    }
    for (uint32_t r = 0; r < fedreci_catalog_size(c) && !e; r++) {
        const fedreci_catalog_item *it = fedreci_catalog_at(c, r);
        s = fedreci_dbi_stmt(db, S_ITEM_UPSERT, &e);
        if (!s)
            break;
        sqlite3_bind_int64(s, 1, r);
        sqlite3_bind_text(s, 2, it->code, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 3, it->description, -1, SQLITE_STATIC);
        sqlite3_bind_int(s, 4, it->active);
        sqlite3_bind_int64(s, 5, (sqlite3_int64)id);
        e = fedreci_dbi_step_done(db, s, "store item");
        sqlite3_clear_bindings(s);
    }
    fedreci_model tmp = {0};
    if (!e && m) {
        tmp = *m;
        tmp.catalog_id = id;
        if (tmp.n_items != fedreci_catalog_size(c))
            e = fedreci_error(FEDREC_ERR_INVALID, "%s: model has %u rows, catalog %u", db->path,
                              tmp.n_items, fedreci_catalog_size(c));
        else
            e = fedreci_dbi_insert_model(db, &tmp, fedreci_model_origin_name(tmp.origin));
    }
    if (!e)
        e = fedreci_dbi_commit(db);
    if (e) {
        fedreci_dbi_rollback(db);
        return e;
    }
    if (m)
        *m = tmp;
    if (catalog_id)
        *catalog_id = id;
    return FEDREC_OK;
}

/* ---- clients ------------------------------------------------------------------- */

/* Columns 6..8 of S_CLIENT_GET / S_CLIENT_ALL: the bench. */
static void read_bench(sqlite3_stmt *s, fedreci_client_record *c)
{
    int64_t strikes = sqlite3_column_int64(s, 6);
    c->bench_strikes = strikes > UINT32_MAX ? UINT32_MAX : (uint32_t)strikes;
    c->benched_until = (uint64_t)sqlite3_column_int64(s, 7);
    const char *why = (const char *)sqlite3_column_text(s, 8);
    snprintf(c->bench_reason, sizeof c->bench_reason, "%s", why ? why : "");
}

fedrec_err fedreci_db_client_get(fedreci_db *db, uint64_t client_id, fedreci_client_record *out)
{
    fedrec_err e = FEDREC_OK;
    sqlite3_stmt *s = fedreci_dbi_stmt(db, S_CLIENT_GET, &e);
    if (!s)
        return e;
    sqlite3_bind_int64(s, 1, (sqlite3_int64)client_id);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        fedreci_client_record c = {0};
        c.client_id = (uint64_t)sqlite3_column_int64(s, 0);
        if (sqlite3_column_bytes(s, 1) == 32)
            memcpy(c.identity_pk, sqlite3_column_blob(s, 1), 32);
        c.first_seen_ms = sqlite3_column_int64(s, 2);
        c.last_seen_ms = sqlite3_column_int64(s, 3);
        c.opted_out = sqlite3_column_int(s, 4);
        c.excluded_round = (uint64_t)sqlite3_column_int64(s, 5);
        read_bench(s, &c);
        *out = c;
    } else if (rc == SQLITE_DONE) {
        e = fedreci_error(FEDREC_ERR_NOT_FOUND, "%s: no client %llu", db->path,
                          (unsigned long long)client_id);
    } else {
        e = fedreci_dbi_fail(db, "read client");
    }
    sqlite3_reset(s);
    return e;
}

fedrec_err fedreci_db_client_seen(fedreci_db *db, uint64_t client_id, const uint8_t identity_pk[32],
                                  int64_t now_ms)
{
    fedreci_client_record known;
    fedrec_err e = fedreci_db_client_get(db, client_id, &known);
    if (e == FEDREC_OK) {
        if (memcmp(known.identity_pk, identity_pk, 32) != 0)
            return fedreci_error(FEDREC_ERR_SIGNATURE,
                                 "client %llu presents an identity key other than the one "
                                 "registered",
                                 (unsigned long long)client_id);
        sqlite3_stmt *s = fedreci_dbi_stmt(db, S_CLIENT_TOUCH, &e);
        if (!s)
            return e;
        sqlite3_bind_int64(s, 1, (sqlite3_int64)client_id);
        sqlite3_bind_int64(s, 2, now_ms);
        return fedreci_dbi_step_done(db, s, "update client last_seen");
    }
    if (e != FEDREC_ERR_NOT_FOUND)
        return e;
    fedreci_error_clear();
    e = FEDREC_OK;
    sqlite3_stmt *s = fedreci_dbi_stmt(db, S_CLIENT_INSERT, &e);
    if (!s)
        return e;
    sqlite3_bind_int64(s, 1, (sqlite3_int64)client_id);
    sqlite3_bind_blob(s, 2, identity_pk, 32, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, now_ms);
    e = fedreci_dbi_step_done(db, s, "register client");
    sqlite3_clear_bindings(s);
    return e;
}

fedrec_err fedreci_db_client_set_opted_out(fedreci_db *db, uint64_t client_id, int opted_out)
{
    fedrec_err e = FEDREC_OK;
    sqlite3_stmt *s = fedreci_dbi_stmt(db, S_CLIENT_OPT, &e);
    if (!s)
        return e;
    sqlite3_bind_int64(s, 1, (sqlite3_int64)client_id);
    sqlite3_bind_int(s, 2, opted_out ? 1 : 0);
    e = fedreci_dbi_step_done(db, s, "set opted_out");
    if (!e && sqlite3_changes(db->conn) == 0)
        e = fedreci_error(FEDREC_ERR_NOT_FOUND, "%s: no client %llu", db->path,
                          (unsigned long long)client_id);
    return e;
}

fedrec_err fedreci_db_client_exclude(fedreci_db *db, uint64_t client_id, uint64_t round_id)
{
    fedreci_client_record c;
    fedrec_err e = fedreci_db_client_get(db, client_id, &c);
    if (e || c.excluded_round)
        return e;
    sqlite3_stmt *s = fedreci_dbi_stmt(db, S_CLIENT_EXCLUDE, &e);
    if (!s)
        return e;
    sqlite3_bind_int64(s, 1, (sqlite3_int64)client_id);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)(round_id ? round_id : 1));
    return fedreci_dbi_step_done(db, s, "exclude client");
}

fedrec_err fedreci_db_client_bench(fedreci_db *db, uint64_t client_id, uint32_t strikes,
                                   uint64_t benched_until, const char *reason)
{
    fedrec_err e = FEDREC_OK;
    sqlite3_stmt *s = fedreci_dbi_stmt(db, S_CLIENT_BENCH, &e);
    if (!s)
        return e;
    char why[FEDRECI_DB_BENCH_REASON_MAX];
    snprintf(why, sizeof why, "%s", reason ? reason : "");
    sqlite3_bind_int64(s, 1, (sqlite3_int64)client_id);
    sqlite3_bind_int64(s, 2, strikes);
    sqlite3_bind_int64(s, 3, (sqlite3_int64)benched_until);
    sqlite3_bind_text(s, 4, why, -1, SQLITE_TRANSIENT);
    e = fedreci_dbi_step_done(db, s, "bench client");
    if (!e && sqlite3_changes(db->conn) == 0)
        e = fedreci_error(FEDREC_ERR_NOT_FOUND, "%s: no client %llu", db->path,
                          (unsigned long long)client_id);
    return e;
}

fedrec_err fedreci_db_client_count(fedreci_db *db, uint64_t *n)
{
    int64_t v = 0;
    fedrec_err e = fedreci_dbi_query_int(db, S_CLIENT_COUNT, &v, "count clients");
    if (!e)
        *n = (uint64_t)v;
    return e;
}

fedrec_err fedreci_db_client_each(fedreci_db *db,
                                  fedrec_err (*fn)(void *arg, const fedreci_client_record *c),
                                  void *arg)
{
    fedrec_err e = FEDREC_OK;
    sqlite3_stmt *s = fedreci_dbi_stmt(db, S_CLIENT_ALL, &e);
    if (!s)
        return e;
    int rc;
    while (!e && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        fedreci_client_record c = {0};
        c.client_id = (uint64_t)sqlite3_column_int64(s, 0);
        if (sqlite3_column_bytes(s, 1) == 32)
            memcpy(c.identity_pk, sqlite3_column_blob(s, 1), 32);
        c.first_seen_ms = sqlite3_column_int64(s, 2);
        c.last_seen_ms = sqlite3_column_int64(s, 3);
        c.opted_out = sqlite3_column_int(s, 4);
        c.excluded_round = (uint64_t)sqlite3_column_int64(s, 5);
        read_bench(s, &c);
        e = fn(arg, &c);
    }
    if (!e && rc != SQLITE_DONE)
        e = fedreci_dbi_fail(db, "list clients");
    sqlite3_reset(s);
    return e;
}

/* catalog_files is read and written once per start or SIGHUP: plain
 * statements, not the cache. */
fedrec_err fedreci_db_catalog_file_get(fedreci_db *db, const char *source, uint8_t digest[32],
                                       uint64_t *catalog_id)
{
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(db->conn,
                           "SELECT digest, catalog_id FROM catalog_files WHERE source = ?1", -1, &s,
                           NULL) != SQLITE_OK)
        return fedreci_dbi_fail(db, "read catalog file digest");
    sqlite3_bind_text(s, 1, source, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    fedrec_err e = FEDREC_OK;
    if (rc == SQLITE_ROW && sqlite3_column_bytes(s, 0) == 32) {
        memcpy(digest, sqlite3_column_blob(s, 0), 32);
        *catalog_id = (uint64_t)sqlite3_column_int64(s, 1);
    } else if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
        e = fedreci_error(FEDREC_ERR_NOT_FOUND, "%s: catalog file %s never merged", db->path,
                          source);
    } else {
        e = fedreci_dbi_fail(db, "read catalog file digest");
    }
    sqlite3_finalize(s);
    return e;
}

fedrec_err fedreci_db_catalog_file_merged(fedreci_db *db, const char *source,
                                          const uint8_t digest[32], uint64_t catalog_id)
{
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(db->conn,
                           "INSERT INTO catalog_files(source, digest, merged_ms, catalog_id) "
                           "VALUES (?1, ?2, ?3, ?4) ON CONFLICT(source) DO UPDATE SET "
                           "digest = excluded.digest, merged_ms = excluded.merged_ms, "
                           "catalog_id = excluded.catalog_id",
                           -1, &s, NULL) != SQLITE_OK)
        return fedreci_dbi_fail(db, "record catalog file digest");
    sqlite3_bind_text(s, 1, source, -1, SQLITE_STATIC);
    sqlite3_bind_blob(s, 2, digest, 32, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, fedreci_db_now_ms());
    sqlite3_bind_int64(s, 4, (sqlite3_int64)catalog_id);
    fedrec_err e = sqlite3_step(s) == SQLITE_DONE
                       ? FEDREC_OK
                       : fedreci_dbi_fail(db, "record catalog file digest");
    sqlite3_finalize(s);
    return e;
}
