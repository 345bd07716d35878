/*
 * coordinator/db_internal.h: what the files of the coordinator's SQLite
 * persistence share (db.c: connection, schema, migrations, statement cache
 * and models; db_rounds.c: the round log; db_registry.c: catalog versions and
 * the client registry). Not an interface: db.h is.
 *
 * Thread-safety as db.h: one fedreci_db is used by one thread at a time.
 */
#ifndef FEDREC_COORDINATOR_DB_INTERNAL_H
#define FEDREC_COORDINATOR_DB_INTERNAL_H

#include <stdint.h>

#include <sqlite3.h>

#include "core/err.h"
#include "db.h"

/* The cached statements; their SQL is sql_text in db.c. */
enum {
    S_LATEST_VERSION,
    S_MODEL_BY_VERSION,
    S_MODEL_LATEST,
    S_MODEL_INSERT,
    S_NEXT_ROUND,
    S_ROUND_INSERT,
    S_ROUND_UPDATE,
    S_ROUND_DETAILS,
    S_ROUND_GET,
    S_ROUND_COUNTS,
    S_CATALOG_LATEST,
    S_CATALOG_INSERT,
    S_ITEMS_ALL,
    S_ITEM_UPSERT,
    S_CLIENT_GET,
    S_CLIENT_INSERT,
    S_CLIENT_TOUCH,
    S_CLIENT_OPT,
    S_CLIENT_COUNT,
    S_CLIENT_ALL,
    S_CLIENT_EXCLUDE,
    S_CLIENT_BENCH,
    S_COUNT
};

struct fedreci_db {
    sqlite3 *conn;
    char *path;
    sqlite3_stmt *stmts[S_COUNT];
    uint32_t recovered;
    void (*precommit)(void *);
    void *precommit_arg;
};

/* Sets and returns FEDREC_ERR_DB naming the database, `what` and SQLite's
 * message. */
fedrec_err fedreci_dbi_fail(fedreci_db *db, const char *what);
/* Runs SQL without results; errors as fedreci_dbi_fail. */
fedrec_err fedreci_dbi_exec(fedreci_db *db, const char *sql, const char *what);
/* The cached statement `id`, reset and unbound, or NULL with *err set. */
sqlite3_stmt *fedreci_dbi_stmt(fedreci_db *db, int id, fedrec_err *err);
/* Steps a statement expected to return no row, then resets it. */
fedrec_err fedreci_dbi_step_done(fedreci_db *db, sqlite3_stmt *s, const char *what);
/* Runs the one-row, one-integer query `id` into *out. */
fedrec_err fedreci_dbi_query_int(fedreci_db *db, int id, int64_t *out, const char *what);
/* BEGIN IMMEDIATE / COMMIT (after the precommit hook) / ROLLBACK if open. */
fedrec_err fedreci_dbi_begin(fedreci_db *db);
fedrec_err fedreci_dbi_commit(fedreci_db *db);
void fedreci_dbi_rollback(fedreci_db *db);
/* Inserts m as version latest + 1 inside the caller's transaction, recording
 * its origin; fills version, created_ms and checksum on success. */
fedrec_err fedreci_dbi_insert_model(fedreci_db *db, fedreci_model *m, const char *origin);

#endif
