/*
 * coordinator/db_rounds.c: the round log (one row per round: started,
 * completed, aborted with its reason and culprits, or skipped). See db.h.
 */
#include "db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "core/err.h"
#include "db_internal.h"

static const char *status_name(fedreci_round_status s)
{
    return s == FEDRECI_ROUND_COMPLETED ? "completed"
           : s == FEDRECI_ROUND_ABORTED ? "aborted"
                                        : "running";
}

fedrec_err fedreci_db_next_round_id(fedreci_db *db, uint64_t *round_id)
{
    int64_t v = 0;
    fedrec_err e = fedreci_dbi_query_int(db, S_NEXT_ROUND, &v, "read last round id");
    if (!e)
        *round_id = (uint64_t)v + 1;
    return e;
}

static void bind_round(sqlite3_stmt *s, const fedreci_round_record *r)
{
    sqlite3_bind_int64(s, 1, (sqlite3_int64)r->round_id);
    sqlite3_bind_int64(s, 2, r->started_ms);
    if (r->status == FEDRECI_ROUND_RUNNING)
        sqlite3_bind_null(s, 3);
    else
        sqlite3_bind_int64(s, 3, r->ended_ms);
    sqlite3_bind_text(s, 4, status_name(r->status), -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 5, r->cohort);
    sqlite3_bind_int64(s, 6, r->survivors);
    for (int i = 0; i < FEDRECI_DB_STAGES; i++) {
        sqlite3_bind_int64(s, 7 + i, r->dropped[i]);
        sqlite3_bind_int64(s, 11 + i, r->stage_ms[i]);
    }
    sqlite3_bind_int64(s, 15, (sqlite3_int64)r->bytes_in);
    sqlite3_bind_int64(s, 16, (sqlite3_int64)r->bytes_out);
    sqlite3_bind_text(s, 17, r->metrics_json[0] ? r->metrics_json : "{}", -1, SQLITE_TRANSIENT);
    if (r->model_version)
        sqlite3_bind_int64(s, 18, (sqlite3_int64)r->model_version);
    else
        sqlite3_bind_null(s, 18);
}

fedrec_err fedreci_db_round_begin(fedreci_db *db, const fedreci_round_record *r)
{
    fedreci_round_record run = *r;
    run.status = FEDRECI_ROUND_RUNNING;
    run.model_version = 0;
    fedrec_err e = FEDREC_OK;
    sqlite3_stmt *s = fedreci_dbi_stmt(db, S_ROUND_INSERT, &e);
    if (!s)
        return e;
    bind_round(s, &run);
    int rc = sqlite3_step(s);
    if (rc != SQLITE_DONE) {
        if (sqlite3_extended_errcode(db->conn) == SQLITE_CONSTRAINT_PRIMARYKEY)
            e = fedreci_error(FEDREC_ERR_DUPLICATE, "%s: round %llu is already logged", db->path,
                              (unsigned long long)r->round_id);
        else
            e = fedreci_dbi_fail(db, "log round start");
    }
    sqlite3_reset(s);
    return e;
}

fedrec_err fedreci_db_round_end(fedreci_db *db, fedreci_round_record *r, fedreci_model *m)
{
    if ((r->status == FEDRECI_ROUND_COMPLETED) != (m != NULL) || r->status == FEDRECI_ROUND_RUNNING)
        return fedreci_error(FEDREC_ERR_INVALID,
                             "%s: round %llu: a completed round needs a model, an aborted one "
                             "none",
                             db->path, (unsigned long long)r->round_id);
    fedrec_err e = fedreci_dbi_begin(db);
    if (e)
        return e;
    fedreci_model tmp = {0};
    fedreci_round_record rec = *r;
    if (m) {
        tmp = *m;
        tmp.origin = FEDRECI_MODEL_ROUND;
        e = fedreci_dbi_insert_model(db, &tmp, "round");
        rec.model_version = tmp.version;
    } else {
        rec.model_version = 0;
    }
    sqlite3_stmt *s = e ? NULL : fedreci_dbi_stmt(db, S_ROUND_UPDATE, &e);
    if (s) {
        bind_round(s, &rec);
        e = fedreci_dbi_step_done(db, s, "log round end");
        if (!e && sqlite3_changes(db->conn) == 0) {
            s = fedreci_dbi_stmt(db, S_ROUND_INSERT, &e);
            if (s) {
                bind_round(s, &rec);
                e = fedreci_dbi_step_done(db, s, "log round");
            }
        }
    }
    if (!e)
        e = fedreci_dbi_commit(db);
    if (e) {
        fedreci_dbi_rollback(db);
        return e;
    }
    if (m)
        *m = tmp;
    *r = rec;
    return FEDREC_OK;
}

fedrec_err fedreci_db_round_details(fedreci_db *db, const fedreci_round_record *r)
{
    fedrec_err e = FEDREC_OK;
    sqlite3_stmt *s = fedreci_dbi_stmt(db, S_ROUND_DETAILS, &e);
    if (!s)
        return e;
    fedreci_round_record rec = *r;
    rec.model_version = 0;
    bind_round(s, &rec);
    e = fedreci_dbi_step_done(db, s, "update round details");
    if (!e && sqlite3_changes(db->conn) == 0)
        e = fedreci_error(FEDREC_ERR_NOT_FOUND, "%s: no %s round %llu to update", db->path,
                          status_name(r->status), (unsigned long long)r->round_id);
    return e;
}

fedrec_err fedreci_db_get_round(fedreci_db *db, uint64_t round_id, fedreci_round_record *out)
{
    fedrec_err e = FEDREC_OK;
    sqlite3_stmt *s = fedreci_dbi_stmt(db, S_ROUND_GET, &e);
    if (!s)
        return e;
    sqlite3_bind_int64(s, 1, (sqlite3_int64)round_id);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        fedreci_round_record r = {0};
        r.round_id = (uint64_t)sqlite3_column_int64(s, 0);
        r.started_ms = sqlite3_column_int64(s, 1);
        r.ended_ms = sqlite3_column_int64(s, 2);
        const char *st = (const char *)sqlite3_column_text(s, 3);
        r.status = st && strcmp(st, "completed") == 0 ? FEDRECI_ROUND_COMPLETED
                   : st && strcmp(st, "aborted") == 0 ? FEDRECI_ROUND_ABORTED
                                                      : FEDRECI_ROUND_RUNNING;
        r.cohort = (uint32_t)sqlite3_column_int64(s, 4);
        r.survivors = (uint32_t)sqlite3_column_int64(s, 5);
        for (int i = 0; i < FEDRECI_DB_STAGES; i++) {
            r.dropped[i] = (uint32_t)sqlite3_column_int64(s, 6 + i);
            r.stage_ms[i] = (uint32_t)sqlite3_column_int64(s, 10 + i);
        }
        r.bytes_in = (uint64_t)sqlite3_column_int64(s, 14);
        r.bytes_out = (uint64_t)sqlite3_column_int64(s, 15);
        const char *mj = (const char *)sqlite3_column_text(s, 16);
        snprintf(r.metrics_json, sizeof r.metrics_json, "%s", mj ? mj : "");
        r.model_version = (uint64_t)sqlite3_column_int64(s, 17);
        *out = r;
    } else if (rc == SQLITE_DONE) {
        e = fedreci_error(FEDREC_ERR_NOT_FOUND, "%s: no round %llu", db->path,
                          (unsigned long long)round_id);
    } else {
        e = fedreci_dbi_fail(db, "read round");
    }
    sqlite3_reset(s);
    return e;
}

fedrec_err fedreci_db_round_counts(fedreci_db *db, uint64_t *completed, uint64_t *aborted,
                                   uint64_t *running)
{
    fedrec_err e = FEDREC_OK;
    sqlite3_stmt *s = fedreci_dbi_stmt(db, S_ROUND_COUNTS, &e);
    if (!s)
        return e;
    if (sqlite3_step(s) != SQLITE_ROW) {
        e = fedreci_dbi_fail(db, "count rounds");
    } else {
        if (completed)
            *completed = (uint64_t)sqlite3_column_int64(s, 0);
        if (aborted)
            *aborted = (uint64_t)sqlite3_column_int64(s, 1);
        if (running)
            *running = (uint64_t)sqlite3_column_int64(s, 2);
    }
    sqlite3_reset(s);
    return e;
}

/* ---- catalog -------------------------------------------------------------------- */
