/*
 * coordinator/db_dp.c: the differential-privacy releases spent (table
 * dp_spent, schema version 3). See db.h.
 */
#include "db.h"

#include <math.h>

#include <sqlite3.h>

#include "core/err.h"
#include "db_internal.h"

fedrec_err fedreci_db_dp_spend(fedreci_db *db, const fedreci_dp_spend *r)
{
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(db->conn,
                           "INSERT INTO dp_spent(round_id, spent_ms, mechanism, mu, l1, l2, "
                           "epsilon_round, epsilon_cumulative, delta) "
                           "VALUES (?, ?, 'skellam', ?, ?, ?, ?, ?, ?)",
                           -1, &s, NULL) != SQLITE_OK)
        return fedreci_dbi_fail(db, "prepare dp_spent insert");
    sqlite3_bind_int64(s, 1, (sqlite3_int64)r->round_id);
    sqlite3_bind_int64(s, 2, fedreci_db_now_ms());
    sqlite3_bind_double(s, 3, r->mu);
    sqlite3_bind_double(s, 4, r->l1);
    sqlite3_bind_double(s, 5, r->l2);
    sqlite3_bind_double(s, 6, r->eps_round);
    sqlite3_bind_double(s, 7, r->eps_cumulative);
    sqlite3_bind_double(s, 8, r->delta);
    fedrec_err e = FEDREC_OK;
    if (sqlite3_step(s) != SQLITE_DONE) {
        if (sqlite3_extended_errcode(db->conn) == SQLITE_CONSTRAINT_PRIMARYKEY)
            e = fedreci_error(FEDREC_ERR_DUPLICATE, "%s: round %llu's release is already recorded",
                              db->path, (unsigned long long)r->round_id);
        else
            e = fedreci_dbi_fail(db, "record a differential-privacy release");
    }
    sqlite3_finalize(s);
    return e;
}

fedrec_err fedreci_db_dp_restore(fedreci_db *db, fedreci_dp_accountant *acc, uint64_t *n)
{
    sqlite3_stmt *s = NULL;
    fedreci_dp_accountant_init(acc);
    *n = 0;
    if (sqlite3_prepare_v2(db->conn, "SELECT round_id, mu, l1, l2 FROM dp_spent ORDER BY round_id",
                           -1, &s, NULL) != SQLITE_OK)
        return fedreci_dbi_fail(db, "prepare dp_spent read");
    fedrec_err e = FEDREC_OK;
    int rc;
    while (!e && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        fedreci_dp_event ev = {.mech = FEDRECI_DP_SKELLAM,
                               .mu = sqlite3_column_double(s, 1),
                               .l1 = sqlite3_column_double(s, 2),
                               .l2 = sqlite3_column_double(s, 3),
                               .sampling = FEDRECI_DP_FULL};
        if (fedreci_dp_accountant_compose(acc, &ev, 1))
            e = fedreci_error(FEDREC_ERR_CORRUPT,
                              "%s: dp_spent row of round %lld (mu %g, L1 %g, L2 %g): %s", db->path,
                              (long long)sqlite3_column_int64(s, 0), ev.mu, ev.l1, ev.l2,
                              fedrec_errmsg());
        else
            (*n)++;
    }
    if (!e && rc != SQLITE_DONE)
        e = fedreci_dbi_fail(db, "read dp_spent");
    sqlite3_finalize(s);
    return e;
}
