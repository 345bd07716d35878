/*
 * SQLite persistence for the coordinator.
 *
 * Why WAL with synchronous=FULL and not NORMAL: in WAL mode NORMAL already
 * survives an application crash (kill -9, a segfault) - a committed
 * transaction is in the WAL file, which the OS holds - but not a power loss or
 * a kernel panic: the WAL is only fsync'ed at checkpoints, so the newest
 * commits can roll back. For the coordinator a commit is the end of a round,
 * a few per minute at most, and a lost commit means clients that already
 * downloaded version v+1 meet a server that reuses the number v+1 for a
 * different model. One fsync per round costs nothing measurable next to a
 * SecAgg round, so FULL: every COMMIT fsyncs the WAL before returning.
 */
#include "db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "core/err.h"
#include "db_internal.h"

static const char *const sql_text[S_COUNT] = {
    [S_LATEST_VERSION] = "SELECT coalesce(max(version), 0) FROM models",
    [S_MODEL_BY_VERSION] = "SELECT version, created_ms, n_items, k, y, checksum, catalog_id, "
                           "origin FROM models WHERE version = ?1",
    [S_MODEL_LATEST] = "SELECT version, created_ms, n_items, k, y, checksum, catalog_id, "
                       "origin FROM models ORDER BY version DESC LIMIT 1",
    [S_MODEL_INSERT] = "INSERT INTO models(version, created_ms, n_items, k, y, checksum, "
                       "catalog_id, origin) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [S_NEXT_ROUND] = "SELECT coalesce(max(round_id), 0) FROM rounds",
    [S_ROUND_INSERT] = "INSERT INTO rounds(round_id, started_ms, ended_ms, status, cohort, "
                       "survivors, dropped_advertise, dropped_share_keys, dropped_masked_input, "
                       "dropped_unmask, ms_advertise, ms_share_keys, ms_masked_input, "
                       "ms_unmask, bytes_in, bytes_out, metrics, model_version) VALUES "
                       "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, "
                       "?16, ?17, ?18)",
    [S_ROUND_UPDATE] = "UPDATE rounds SET started_ms = ?2, ended_ms = ?3, status = ?4, "
                       "cohort = ?5, survivors = ?6, dropped_advertise = ?7, "
                       "dropped_share_keys = ?8, dropped_masked_input = ?9, dropped_unmask = "
                       "?10, ms_advertise = ?11, ms_share_keys = ?12, ms_masked_input = ?13, "
                       "ms_unmask = ?14, bytes_in = ?15, bytes_out = ?16, metrics = ?17, "
                       "model_version = ?18 WHERE round_id = ?1",
    [S_ROUND_DETAILS] = "UPDATE rounds SET started_ms = ?2, ended_ms = ?3, cohort = ?5, "
                        "survivors = ?6, dropped_advertise = ?7, dropped_share_keys = ?8, "
                        "dropped_masked_input = ?9, dropped_unmask = ?10, ms_advertise = ?11, "
                        "ms_share_keys = ?12, ms_masked_input = ?13, ms_unmask = ?14, "
                        "bytes_in = ?15, bytes_out = ?16, metrics = ?17 WHERE round_id = ?1 "
                        "AND status = ?4",
    [S_ROUND_GET] = "SELECT round_id, started_ms, ended_ms, status, cohort, survivors, "
                    "dropped_advertise, dropped_share_keys, dropped_masked_input, "
                    "dropped_unmask, ms_advertise, ms_share_keys, ms_masked_input, ms_unmask, "
                    "bytes_in, bytes_out, metrics, model_version FROM rounds WHERE round_id = ?1",
    [S_ROUND_COUNTS] = "SELECT coalesce(sum(status = 'completed'), 0), "
                       "coalesce(sum(status = 'aborted'), 0), coalesce(sum(status = 'running'), "
                       "0) FROM rounds",
    [S_CATALOG_LATEST] = "SELECT coalesce(max(id), 0) FROM catalogs",
    [S_CATALOG_INSERT] = "INSERT INTO catalogs(id, created_ms, n_items, n_active, source) "
                         "VALUES (?1, ?2, ?3, ?4, ?5)",
    [S_ITEMS_ALL] = "SELECT row, code, description, active FROM items ORDER BY row",
    [S_ITEM_UPSERT] = "INSERT INTO items(row, code, description, active, added_catalog, "
                      "retired_catalog) VALUES (?1, ?2, ?3, ?4, ?5, CASE WHEN ?4 THEN NULL "
                      "ELSE ?5 END) ON CONFLICT(row) DO UPDATE SET description = "
                      "excluded.description, active = excluded.active, retired_catalog = CASE "
                      "WHEN excluded.active THEN NULL WHEN items.active THEN ?5 ELSE "
                      "items.retired_catalog END WHERE items.code = excluded.code",
    [S_CLIENT_GET] =
        "SELECT client_id, identity_pk, first_seen_ms, last_seen_ms, opted_out, "
        "excluded_round, bench_strikes, benched_until, bench_reason FROM clients WHERE "
        "client_id = ?1",
    [S_CLIENT_INSERT] = "INSERT INTO clients(client_id, identity_pk, first_seen_ms, "
                        "last_seen_ms, opted_out) VALUES (?1, ?2, ?3, ?3, 0)",
    [S_CLIENT_TOUCH] = "UPDATE clients SET last_seen_ms = max(last_seen_ms, ?2) WHERE "
                       "client_id = ?1",
    [S_CLIENT_OPT] = "UPDATE clients SET opted_out = ?2 WHERE client_id = ?1",
    [S_CLIENT_COUNT] = "SELECT count(*) FROM clients",
    [S_CLIENT_ALL] =
        "SELECT client_id, identity_pk, first_seen_ms, last_seen_ms, opted_out, "
        "excluded_round, bench_strikes, benched_until, bench_reason FROM clients ORDER BY "
        "client_id",
    [S_CLIENT_EXCLUDE] = "UPDATE clients SET excluded_round = ?2 WHERE client_id = ?1 AND "
                         "excluded_round = 0",
    [S_CLIENT_BENCH] = "UPDATE clients SET bench_strikes = ?2, benched_until = ?3, bench_reason = "
                       "?4 WHERE client_id = ?1",
};

/* Schema version 1. Each later version appends a migration step; the steps
 * run in order inside one transaction and end by setting user_version. */
static const char schema_v1[] =
    "CREATE TABLE catalogs("
    "  id INTEGER PRIMARY KEY,"
    "  created_ms INTEGER NOT NULL,"
    "  n_items INTEGER NOT NULL CHECK (n_items >= 0),"
    "  n_active INTEGER NOT NULL CHECK (n_active >= 0),"
    "  source TEXT NOT NULL DEFAULT '');"
    "CREATE TABLE items("
    "  row INTEGER PRIMARY KEY CHECK (row >= 0),"
    "  code TEXT NOT NULL UNIQUE,"
    "  description TEXT NOT NULL DEFAULT '',"
    "  active INTEGER NOT NULL CHECK (active IN (0, 1)),"
    "  added_catalog INTEGER NOT NULL REFERENCES catalogs(id),"
    "  retired_catalog INTEGER REFERENCES catalogs(id));"
    "CREATE TABLE models("
    "  version INTEGER PRIMARY KEY CHECK (version >= 1),"
    "  created_ms INTEGER NOT NULL,"
    "  n_items INTEGER NOT NULL CHECK (n_items >= 1),"
    "  k INTEGER NOT NULL CHECK (k >= 1),"
    "  y BLOB NOT NULL CHECK (length(y) = 4 * n_items * k),"
    "  checksum BLOB NOT NULL CHECK (length(checksum) = 32),"
    "  catalog_id INTEGER REFERENCES catalogs(id),"
    "  origin TEXT NOT NULL CHECK (origin IN ('init', 'round', 'catalog')));"
    "CREATE TABLE rounds("
    "  round_id INTEGER PRIMARY KEY,"
    "  started_ms INTEGER NOT NULL,"
    "  ended_ms INTEGER,"
    "  status TEXT NOT NULL CHECK (status IN ('running', 'completed', 'aborted')),"
    "  cohort INTEGER NOT NULL DEFAULT 0,"
    "  survivors INTEGER NOT NULL DEFAULT 0,"
    "  dropped_advertise INTEGER NOT NULL DEFAULT 0,"
    "  dropped_share_keys INTEGER NOT NULL DEFAULT 0,"
    "  dropped_masked_input INTEGER NOT NULL DEFAULT 0,"
    "  dropped_unmask INTEGER NOT NULL DEFAULT 0,"
    "  ms_advertise INTEGER NOT NULL DEFAULT 0,"
    "  ms_share_keys INTEGER NOT NULL DEFAULT 0,"
    "  ms_masked_input INTEGER NOT NULL DEFAULT 0,"
    "  ms_unmask INTEGER NOT NULL DEFAULT 0,"
    "  bytes_in INTEGER NOT NULL DEFAULT 0,"
    "  bytes_out INTEGER NOT NULL DEFAULT 0,"
    "  metrics TEXT NOT NULL DEFAULT '{}',"
    "  model_version INTEGER REFERENCES models(version),"
    "  CHECK ((status = 'completed') = (model_version IS NOT NULL)));"
    "CREATE INDEX rounds_by_status ON rounds(status);"
    "CREATE TABLE clients("
    "  client_id INTEGER PRIMARY KEY,"
    "  identity_pk BLOB NOT NULL CHECK (length(identity_pk) = 32),"
    "  first_seen_ms INTEGER NOT NULL,"
    "  last_seen_ms INTEGER NOT NULL,"
    "  opted_out INTEGER NOT NULL DEFAULT 0 CHECK (opted_out IN (0, 1)));";

/* Version 2 (issue 13): a client named a culprit in a round is excluded
 * from later rounds; 0 = never. */
static const char schema_v2[] =
    "ALTER TABLE clients ADD COLUMN excluded_round INTEGER NOT NULL DEFAULT 0;";

/* Version 3 (issue 18): the digest of each catalog file at its last merge,
 * so an unchanged file is not merged again (and cannot revert a catalog
 * update made from another file). */
static const char schema_v3[] = "CREATE TABLE catalog_files("
                                "  source TEXT PRIMARY KEY,"
                                "  digest BLOB NOT NULL CHECK (length(digest) = 32),"
                                "  merged_ms INTEGER NOT NULL,"
                                "  catalog_id INTEGER NOT NULL);";
/* Version 4 (issue 15): the differential-privacy releases spent, one row per
 * charged round (coordinator/db_dp.c); the accountant is rebuilt from them
 * at start. */
static const char schema_v4[] =
    "CREATE TABLE dp_spent("
    "  round_id INTEGER PRIMARY KEY,"
    "  spent_ms INTEGER NOT NULL,"
    "  mechanism TEXT NOT NULL CHECK (mechanism IN ('skellam')),"
    "  mu REAL NOT NULL CHECK (mu > 0),"
    "  l1 REAL NOT NULL CHECK (l1 > 0),"
    "  l2 REAL NOT NULL CHECK (l2 > 0),"
    "  epsilon_round REAL NOT NULL CHECK (epsilon_round >= 0),"
    "  epsilon_cumulative REAL NOT NULL CHECK (epsilon_cumulative >= 0),"
    "  delta REAL NOT NULL CHECK (delta > 0 AND delta < 1));";

/* Version 5 (issue 13): members benched for withholding a protocol step
 * (coordinator/registry.c fedreci_eng_bench): how often (bench_strikes),
 * the last round they are not drawn into (benched_until, 0: never benched)
 * and why (the last reason), restored at start so a restart does not
 * forget them. */
static const char schema_v5[] =
    "ALTER TABLE clients ADD COLUMN bench_strikes INTEGER NOT NULL DEFAULT 0"
    "  CHECK (bench_strikes >= 0);"
    "ALTER TABLE clients ADD COLUMN benched_until INTEGER NOT NULL DEFAULT 0"
    "  CHECK (benched_until >= 0);"
    "ALTER TABLE clients ADD COLUMN bench_reason TEXT NOT NULL DEFAULT '';";

static const char *const migrations[FEDRECI_DB_SCHEMA_VERSION] = {schema_v1, schema_v2, schema_v3,
                                                                  schema_v4, schema_v5};

int64_t fedreci_db_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

fedrec_err fedreci_dbi_fail(fedreci_db *db, const char *what)
{
    return fedreci_error(FEDREC_ERR_DB, "%s: %s: %s (SQLite error %d)", db->path, what,
                         sqlite3_errmsg(db->conn), sqlite3_extended_errcode(db->conn));
}

fedrec_err fedreci_dbi_exec(fedreci_db *db, const char *sql, const char *what)
{
    char *msg = NULL;
    if (sqlite3_exec(db->conn, sql, NULL, NULL, &msg) != SQLITE_OK) {
        fedrec_err e = fedreci_error(FEDREC_ERR_DB, "%s: %s: %s", db->path, what,
                                     msg ? msg : sqlite3_errmsg(db->conn));
        sqlite3_free(msg);
        return e;
    }
    return FEDREC_OK;
}

/* The cached statement `id`, reset and unbound, or NULL with the error set. */
sqlite3_stmt *fedreci_dbi_stmt(fedreci_db *db, int id, fedrec_err *err)
{
    sqlite3_stmt *s = db->stmts[id];
    if (!s) {
        if (sqlite3_prepare_v3(db->conn, sql_text[id], -1, SQLITE_PREPARE_PERSISTENT, &s, NULL) !=
            SQLITE_OK) {
            *err = fedreci_dbi_fail(db, "prepare");
            return NULL;
        }
        db->stmts[id] = s;
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return s;
}

/* Steps a statement expected to return no row. */
fedrec_err fedreci_dbi_step_done(fedreci_db *db, sqlite3_stmt *s, const char *what)
{
    int rc = sqlite3_step(s);
    fedrec_err e = rc == SQLITE_DONE ? FEDREC_OK : fedreci_dbi_fail(db, what);
    sqlite3_reset(s);
    return e;
}

/* Runs a one-row, one-integer query. */
fedrec_err fedreci_dbi_query_int(fedreci_db *db, int id, int64_t *out, const char *what)
{
    fedrec_err e = FEDREC_OK;
    sqlite3_stmt *s = fedreci_dbi_stmt(db, id, &e);
    if (!s)
        return e;
    if (sqlite3_step(s) != SQLITE_ROW) {
        e = fedreci_dbi_fail(db, what);
    } else {
        *out = sqlite3_column_int64(s, 0);
    }
    sqlite3_reset(s);
    return e;
}

fedrec_err fedreci_dbi_begin(fedreci_db *db)
{
    /* IMMEDIATE takes the write lock now, so a concurrent writer fails here
     * (after the busy timeout) rather than half-way through. */
    return fedreci_dbi_exec(db, "BEGIN IMMEDIATE", "begin transaction");
}

fedrec_err fedreci_dbi_commit(fedreci_db *db)
{
    if (db->precommit)
        db->precommit(db->precommit_arg);
    return fedreci_dbi_exec(db, "COMMIT", "commit");
}

void fedreci_dbi_rollback(fedreci_db *db)
{
    if (!sqlite3_get_autocommit(db->conn))
        sqlite3_exec(db->conn, "ROLLBACK", NULL, NULL, NULL);
}

static fedrec_err migrate(fedreci_db *db)
{
    int64_t version = 0;
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db->conn, "PRAGMA user_version", -1, &s, NULL) != SQLITE_OK)
        return fedreci_dbi_fail(db, "read user_version");
    if (sqlite3_step(s) == SQLITE_ROW)
        version = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    if (version > FEDRECI_DB_SCHEMA_VERSION)
        return fedreci_error(FEDREC_ERR_UNSUPPORTED,
                             "%s: schema version %lld is newer than this build's %d", db->path,
                             (long long)version, FEDRECI_DB_SCHEMA_VERSION);
    if (version == FEDRECI_DB_SCHEMA_VERSION)
        return FEDREC_OK;
    fedrec_err e = fedreci_dbi_begin(db);
    if (e)
        return e;
    for (int64_t v = version; v < FEDRECI_DB_SCHEMA_VERSION && !e; v++)
        e = fedreci_dbi_exec(db, migrations[v], "migrate schema");
    if (!e) {
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA user_version = %d", FEDRECI_DB_SCHEMA_VERSION);
        e = fedreci_dbi_exec(db, sql, "set user_version");
    }
    if (!e)
        e = fedreci_dbi_exec(db, "COMMIT", "commit migration");
    if (e)
        fedreci_dbi_rollback(db);
    return e;
}

static fedrec_err recover_running(fedreci_db *db)
{
    fedrec_err e = fedreci_dbi_exec(db,
                                    "UPDATE rounds SET status = 'aborted', metrics = "
                                    "'{\"reason\":\"crash\"}' WHERE status = 'running'",
                                    "recover rounds left running");
    if (!e)
        db->recovered = (uint32_t)sqlite3_changes(db->conn);
    return e;
}

fedrec_err fedreci_db_open(fedreci_db **out, const char *path)
{
    fedreci_db *db = calloc(1, sizeof *db);
    if (!db || !(db->path = strdup(path))) {
        free(db);
        return fedreci_error(FEDREC_ERR_NOMEM, "%s: out of memory", path);
    }
    int rc = sqlite3_open_v2(
        path, &db->conn, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    fedrec_err e = FEDREC_OK;
    if (rc != SQLITE_OK) {
        e = db->conn ? fedreci_dbi_fail(db, "open")
                     : fedreci_error(FEDREC_ERR_NOMEM, "%s: out of memory", path);
    }
    if (!e)
        sqlite3_extended_result_codes(db->conn, 1);
    if (!e)
        sqlite3_busy_timeout(db->conn, 5000);
    if (!e) {
        /* journal_mode answers with the mode in force: a read-only medium or
         * an in-memory database can refuse WAL, which we do not accept. */
        sqlite3_stmt *s;
        if (sqlite3_prepare_v2(db->conn, "PRAGMA journal_mode = WAL", -1, &s, NULL) != SQLITE_OK)
            e = fedreci_dbi_fail(db, "set journal_mode=WAL");
        else {
            if (sqlite3_step(s) != SQLITE_ROW)
                e = fedreci_dbi_fail(db, "set journal_mode=WAL");
            else if (strcmp((const char *)sqlite3_column_text(s, 0), "wal") != 0)
                e = fedreci_error(FEDREC_ERR_DB, "%s: journal_mode is '%s', WAL is required", path,
                                  (const char *)sqlite3_column_text(s, 0));
            sqlite3_finalize(s);
        }
    }
    if (!e)
        e = fedreci_dbi_exec(db, "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON",
                             "set synchronous/foreign_keys");
    if (!e)
        e = migrate(db);
    if (!e)
        e = recover_running(db);
    if (e) {
        fedreci_db_close(db);
        return e;
    }
    *out = db;
    return FEDREC_OK;
}

void fedreci_db_close(fedreci_db *db)
{
    if (!db)
        return;
    for (int i = 0; i < S_COUNT; i++)
        sqlite3_finalize(db->stmts[i]);
    if (db->conn)
        sqlite3_close(db->conn);
    free(db->path);
    free(db);
}

uint32_t fedreci_db_recovered_rounds(const fedreci_db *db)
{
    return db->recovered;
}

void fedreci_db_set_precommit_hook(fedreci_db *db, void (*hook)(void *), void *arg)
{
    db->precommit = hook;
    db->precommit_arg = arg;
}

fedrec_err fedreci_db_integrity_check(fedreci_db *db, int *ok, char *msg, size_t cap)
{
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db->conn, "PRAGMA integrity_check", -1, &s, NULL) != SQLITE_OK)
        return fedreci_dbi_fail(db, "integrity_check");
    int rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) {
        fedrec_err e = fedreci_dbi_fail(db, "integrity_check");
        sqlite3_finalize(s);
        return e;
    }
    const char *answer = (const char *)sqlite3_column_text(s, 0);
    int good = answer && strcmp(answer, "ok") == 0;
    if (msg && cap)
        snprintf(msg, cap, "%s", answer ? answer : "");
    sqlite3_finalize(s);
    *ok = good;
    return FEDREC_OK;
}

/* ---- models ------------------------------------------------------------------ */

static fedrec_err read_model(fedreci_db *db, sqlite3_stmt *s, fedreci_model *out)
{
    fedreci_model m = {0};
    m.version = (uint64_t)sqlite3_column_int64(s, 0);
    m.created_ms = sqlite3_column_int64(s, 1);
    int64_t n_items = sqlite3_column_int64(s, 2), k = sqlite3_column_int64(s, 3);
    if (n_items < 1 || k < 1 || n_items > UINT32_MAX || k > UINT32_MAX)
        return fedreci_error(FEDREC_ERR_CORRUPT, "%s: model version %llu: bad shape %lld x %lld",
                             db->path, (unsigned long long)m.version, (long long)n_items,
                             (long long)k);
    m.n_items = (uint32_t)n_items;
    m.k = (uint32_t)k;
    const void *blob = sqlite3_column_blob(s, 4);
    size_t words = (size_t)m.n_items * m.k;
    if ((size_t)sqlite3_column_bytes(s, 4) != words * 4 || !blob)
        return fedreci_error(
            FEDREC_ERR_CORRUPT, "%s: model version %llu: %d bytes of factors for %u x %u", db->path,
            (unsigned long long)m.version, sqlite3_column_bytes(s, 4), m.n_items, m.k);
    if (sqlite3_column_bytes(s, 5) != FEDRECI_MODEL_CHECKSUM_BYTES)
        return fedreci_error(FEDREC_ERR_CORRUPT, "%s: model version %llu: bad checksum length",
                             db->path, (unsigned long long)m.version);
    memcpy(m.checksum, sqlite3_column_blob(s, 5), FEDRECI_MODEL_CHECKSUM_BYTES);
    m.catalog_id = (uint64_t)sqlite3_column_int64(s, 6);
    const char *origin = (const char *)sqlite3_column_text(s, 7);
    m.origin = !origin                          ? FEDRECI_MODEL_INIT
               : strcmp(origin, "round") == 0   ? FEDRECI_MODEL_ROUND
               : strcmp(origin, "catalog") == 0 ? FEDRECI_MODEL_CATALOG
                                                : FEDRECI_MODEL_INIT;
    m.y = malloc(words * sizeof(float));
    if (!m.y)
        return fedreci_error(FEDREC_ERR_NOMEM, "%s: out of memory loading model %u x %u", db->path,
                             m.n_items, m.k);
    fedreci_model_decode_y(blob, words, m.y);
    uint8_t sum[FEDRECI_MODEL_CHECKSUM_BYTES];
    fedreci_model_checksum(m.y, m.n_items, m.k, sum);
    if (memcmp(sum, m.checksum, sizeof sum) != 0) {
        free(m.y);
        return fedreci_error(FEDREC_ERR_CORRUPT, "%s: model version %llu: checksum mismatch",
                             db->path, (unsigned long long)m.version);
    }
    *out = m;
    return FEDREC_OK;
}

static fedrec_err load_model(fedreci_db *db, int id, uint64_t version, fedreci_model *out)
{
    fedrec_err e = FEDREC_OK;
    sqlite3_stmt *s = fedreci_dbi_stmt(db, id, &e);
    if (!s)
        return e;
    if (id == S_MODEL_BY_VERSION)
        sqlite3_bind_int64(s, 1, (sqlite3_int64)version);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        e = read_model(db, s, out);
    else if (rc == SQLITE_DONE)
        e = id == S_MODEL_LATEST
                ? fedreci_error(FEDREC_ERR_NOT_FOUND, "%s: no model committed yet", db->path)
                : fedreci_error(FEDREC_ERR_NOT_FOUND, "%s: no model version %llu", db->path,
                                (unsigned long long)version);
    else
        e = fedreci_dbi_fail(db, "read model");
    sqlite3_reset(s);
    return e;
}

fedrec_err fedreci_db_latest_model(fedreci_db *db, fedreci_model *out)
{
    return load_model(db, S_MODEL_LATEST, 0, out);
}

fedrec_err fedreci_db_get_model(fedreci_db *db, uint64_t version, fedreci_model *out)
{
    return load_model(db, S_MODEL_BY_VERSION, version, out);
}

fedrec_err fedreci_db_latest_version(fedreci_db *db, uint64_t *version)
{
    int64_t v = 0;
    fedrec_err e = fedreci_dbi_query_int(db, S_LATEST_VERSION, &v, "read latest version");
    if (!e)
        *version = (uint64_t)v;
    return e;
}

/* Inserts m as version latest + 1 inside the caller's transaction; fills
 * version, created_ms, checksum on success. */
fedrec_err fedreci_dbi_insert_model(fedreci_db *db, fedreci_model *m, const char *origin)
{
    if (!m->y || m->n_items == 0 || m->k == 0)
        return fedreci_error(FEDREC_ERR_INVALID, "%s: commit model: empty model", db->path);
    size_t words = (size_t)m->n_items * m->k;
    if (words > (size_t)INT32_MAX / 4)
        return fedreci_error(FEDREC_ERR_TOO_BIG, "%s: commit model: %u x %u exceeds a blob",
                             db->path, m->n_items, m->k);
    uint64_t latest;
    fedrec_err e = fedreci_db_latest_version(db, &latest);
    if (e)
        return e;
    if (m->version && m->version <= latest)
        return fedreci_error(FEDREC_ERR_INVALID,
                             "%s: commit model: version %llu is not above the latest %llu",
                             db->path, (unsigned long long)m->version, (unsigned long long)latest);
    uint64_t version = m->version ? m->version : latest + 1;
    uint8_t *blob = malloc(words * 4);
    if (!blob)
        return fedreci_error(FEDREC_ERR_NOMEM, "%s: out of memory", db->path);
    fedreci_model_encode_y(m->y, words, blob);
    uint8_t sum[FEDRECI_MODEL_CHECKSUM_BYTES];
    fedreci_model_checksum(m->y, m->n_items, m->k, sum);
    int64_t now = fedreci_db_now_ms();
    sqlite3_stmt *s = fedreci_dbi_stmt(db, S_MODEL_INSERT, &e);
    if (s) {
        sqlite3_bind_int64(s, 1, (sqlite3_int64)version);
        sqlite3_bind_int64(s, 2, now);
        sqlite3_bind_int64(s, 3, m->n_items);
        sqlite3_bind_int64(s, 4, m->k);
        sqlite3_bind_blob64(s, 5, blob, words * 4, SQLITE_STATIC);
        sqlite3_bind_blob(s, 6, sum, sizeof sum, SQLITE_STATIC);
        if (m->catalog_id)
            sqlite3_bind_int64(s, 7, (sqlite3_int64)m->catalog_id);
        else
            sqlite3_bind_null(s, 7);
        sqlite3_bind_text(s, 8, origin, -1, SQLITE_STATIC);
        e = fedreci_dbi_step_done(db, s, "insert model");
        sqlite3_clear_bindings(s);
    }
    free(blob);
    if (!e) {
        m->version = version;
        m->created_ms = now;
        memcpy(m->checksum, sum, sizeof sum);
    }
    return e;
}

fedrec_err fedreci_db_commit_model(fedreci_db *db, fedreci_model *m)
{
    fedrec_err e = fedreci_dbi_begin(db);
    if (e)
        return e;
    fedreci_model tmp = *m;
    e = fedreci_dbi_insert_model(db, &tmp, fedreci_model_origin_name(m->origin));
    if (!e)
        e = fedreci_dbi_commit(db);
    if (e) {
        fedreci_dbi_rollback(db);
        return e;
    }
    *m = tmp;
    return FEDREC_OK;
}

/* ---- rounds -------------------------------------------------------------------- */
