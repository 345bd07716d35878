/* Tests for coordinator/db: schema, atomic commits, reopen, crash recovery,
 * catalog storage and the client registry. */
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>
#include <sqlite3.h>

#include "db.h"

static void temp_db_path(char *buf, size_t cap)
{
    static int counter;
    snprintf(buf, cap, "/tmp/fedrec_test_db_%d_%d.sqlite", (int)getpid(), counter++);
}

static void remove_db(const char *path)
{
    char p[512];
    unlink(path);
    snprintf(p, sizeof p, "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", path);
    unlink(p);
}

static fedreci_model make_model(uint32_t n, uint32_t k, float base)
{
    fedreci_model m = {0};
    m.n_items = n;
    m.k = k;
    m.y = malloc((size_t)n * k * sizeof(float));
    for (size_t i = 0; i < (size_t)n * k; i++)
        m.y[i] = base + (float)i * 0.25f;
    m.origin = FEDRECI_MODEL_INIT;
    return m;
}

static fedreci_round_record make_round(uint64_t id, fedreci_round_status status)
{
    fedreci_round_record r = {0};
    r.round_id = id;
    r.started_ms = 1000 * (int64_t)id;
    r.ended_ms = r.started_ms + 500;
    r.status = status;
    r.cohort = 8;
    r.survivors = 6;
    r.dropped[0] = 1;
    r.dropped[2] = 1;
    r.stage_ms[0] = 10;
    r.stage_ms[1] = 20;
    r.stage_ms[2] = 30;
    r.stage_ms[3] = 40;
    r.bytes_in = 12345;
    r.bytes_out = 67890;
    snprintf(r.metrics_json, sizeof r.metrics_json, "{\"loss\":%d}", (int)id);
    return r;
}

static int64_t query_i64(const char *path, const char *sql)
{
    sqlite3 *c;
    sqlite3_stmt *s;
    int64_t v = -1;
    assert_int_equal(sqlite3_open(path, &c), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(c, sql, -1, &s, NULL), SQLITE_OK);
    if (sqlite3_step(s) == SQLITE_ROW)
        v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(c);
    return v;
}

static char *query_text(const char *path, const char *sql)
{
    sqlite3 *c;
    sqlite3_stmt *s;
    char *v = NULL;
    assert_int_equal(sqlite3_open(path, &c), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(c, sql, -1, &s, NULL), SQLITE_OK);
    if (sqlite3_step(s) == SQLITE_ROW)
        v = strdup((const char *)sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
    sqlite3_close(c);
    return v;
}

static void test_schema_and_pragmas(void **state)
{
    (void)state;
    char path[256];
    temp_db_path(path, sizeof path);
    fedreci_db *db = NULL;
    assert_int_equal(fedreci_db_open(&db, path), FEDREC_OK);
    int ok = 0;
    char msg[128];
    assert_int_equal(fedreci_db_integrity_check(db, &ok, msg, sizeof msg), FEDREC_OK);
    assert_int_equal(ok, 1);
    assert_string_equal(msg, "ok");
    uint64_t v = 99;
    assert_int_equal(fedreci_db_latest_version(db, &v), FEDREC_OK);
    assert_int_equal(v, 0);
    fedreci_model m;
    assert_int_equal(fedreci_db_latest_model(db, &m), FEDREC_ERR_NOT_FOUND);
    uint64_t next = 0;
    assert_int_equal(fedreci_db_next_round_id(db, &next), FEDREC_OK);
    assert_int_equal(next, 1);
    fedreci_db_close(db);

    assert_int_equal(query_i64(path, "PRAGMA user_version"), FEDRECI_DB_SCHEMA_VERSION);
    char *mode = query_text(path, "PRAGMA journal_mode");
    assert_string_equal(mode, "wal");
    free(mode);
    assert_int_equal(query_i64(path, "SELECT count(*) FROM sqlite_schema WHERE type = 'table' "
                                     "AND name IN ('models', 'rounds', 'clients', 'items', "
                                     "'catalogs')"),
                     5);
    /* reopening an up-to-date database does not migrate again */
    assert_int_equal(fedreci_db_open(&db, path), FEDREC_OK);
    fedreci_db_close(db);
    fedreci_db_close(NULL);
    remove_db(path);
}

/* Turns the database at path into schema version 4 (before the bench
 * columns), as an older fedrec-coordinator made it. */
static void to_v4(const char *path)
{
    sqlite3 *c;
    assert_int_equal(sqlite3_open(path, &c), SQLITE_OK);
    assert_int_equal(sqlite3_exec(c,
                                  "ALTER TABLE clients DROP COLUMN bench_reason; ALTER TABLE "
                                  "clients DROP COLUMN benched_until; ALTER TABLE clients DROP "
                                  "COLUMN bench_strikes; PRAGMA user_version = 4",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(c);
}

/* A version 4 database with registered clients (one excluded) upgrades to
 * version 5 in place: its clients are kept, none benched; a bench recorded
 * then reads back after a reopen, and the database passes
 * PRAGMA integrity_check. */
static void test_upgrade_v4_bench(void **state)
{
    (void)state;
    char path[256];
    temp_db_path(path, sizeof path);
    fedreci_db *db = NULL;
    assert_int_equal(fedreci_db_open(&db, path), FEDREC_OK);
    uint8_t pk[32];
    memset(pk, 3, sizeof pk);
    uint64_t big = UINT64_C(0xfedcba9876543210);
    assert_int_equal(fedreci_db_client_seen(db, 7, pk, 1000), FEDREC_OK);
    assert_int_equal(fedreci_db_client_seen(db, big, pk, 1000), FEDREC_OK);
    assert_int_equal(fedreci_db_client_exclude(db, 7, 3), FEDREC_OK);
    fedreci_db_close(db);
    to_v4(path);
    assert_int_equal(query_i64(path, "PRAGMA user_version"), 4);
    assert_int_equal(query_i64(path,
                               "SELECT count(*) FROM pragma_table_info('clients') WHERE name LIKE "
                               "'bench%'"),
                     0);
    assert_int_equal(fedreci_db_open(&db, path), FEDREC_OK);
    assert_int_equal(FEDRECI_DB_SCHEMA_VERSION, 5);
    fedreci_client_record r;
    assert_int_equal(fedreci_db_client_get(db, 7, &r), FEDREC_OK);
    assert_int_equal(r.excluded_round, 3);
    assert_int_equal(r.bench_strikes, 0);
    assert_int_equal(r.benched_until, 0);
    assert_string_equal(r.bench_reason, "");
    /* a bench, and one on an id never registered */
    assert_int_equal(
        fedreci_db_client_bench(db, big, 2, 12, "withheld its graph seed contribution"), FEDREC_OK);
    assert_int_equal(fedreci_db_client_bench(db, 8, 1, 5, "x"), FEDREC_ERR_NOT_FOUND);
    /* a reason longer than what is read back is cut, not refused */
    char longer[300];
    memset(longer, 'a', sizeof longer - 1);
    longer[sizeof longer - 1] = 0;
    assert_int_equal(fedreci_db_client_bench(db, 7, 1, 4, longer), FEDREC_OK);
    fedreci_db_close(db);
    assert_int_equal(query_i64(path, "PRAGMA user_version"), 5);
    assert_int_equal(fedreci_db_open(&db, path), FEDREC_OK);
    assert_int_equal(fedreci_db_client_get(db, big, &r), FEDREC_OK);
    assert_true(r.client_id == big);
    assert_int_equal(r.bench_strikes, 2);
    assert_int_equal(r.benched_until, 12);
    assert_string_equal(r.bench_reason, "withheld its graph seed contribution");
    assert_int_equal(fedreci_db_client_get(db, 7, &r), FEDREC_OK);
    assert_int_equal(strlen(r.bench_reason), FEDRECI_DB_BENCH_REASON_MAX - 1);
    assert_int_equal(r.excluded_round, 3);
    /* lifting: benched_until 0 */
    assert_int_equal(fedreci_db_client_bench(db, big, 0, 0, ""), FEDREC_OK);
    assert_int_equal(fedreci_db_client_get(db, big, &r), FEDREC_OK);
    assert_int_equal(r.benched_until, 0);
    int ok = 0;
    char msg[128];
    assert_int_equal(fedreci_db_integrity_check(db, &ok, msg, sizeof msg), FEDREC_OK);
    assert_int_equal(ok, 1);
    fedreci_db_close(db);
    remove_db(path);
}

/* A version 3 database (issue 18's schema, with a logged round and a model)
 * upgrades to version 4 in place: its rows are kept and the
 * differential-privacy table appears; releases recorded there rebuild the
 * accountant in round order. */
static void test_upgrade_v3_dp(void **state)
{
    (void)state;
    char path[256];
    temp_db_path(path, sizeof path);
    fedreci_db *db = NULL;
    assert_int_equal(fedreci_db_open(&db, path), FEDREC_OK);
    fedreci_model init = make_model(5, 3, 1.0f);
    assert_int_equal(fedreci_db_commit_model(db, &init), FEDREC_OK);
    fedreci_round_record r = {0};
    r.round_id = 1;
    r.status = FEDRECI_ROUND_ABORTED;
    r.cohort = 4;
    assert_int_equal(fedreci_db_round_end(db, &r, NULL), FEDREC_OK);
    fedreci_db_close(db);
    fedreci_model_clear(&init);
    /* back to version 3: what an older fedrec-coordinator left behind */
    to_v4(path);
    sqlite3 *c;
    assert_int_equal(sqlite3_open(path, &c), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(c, "DROP TABLE dp_spent; PRAGMA user_version = 3", NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(c);
    assert_int_equal(query_i64(path, "PRAGMA user_version"), 3);
    assert_int_equal(fedreci_db_open(&db, path), FEDREC_OK);
    fedreci_db_close(db);
    assert_int_equal(query_i64(path, "PRAGMA user_version"), FEDRECI_DB_SCHEMA_VERSION);
    assert_int_equal(
        query_i64(path, "SELECT count(*) FROM rounds WHERE round_id = 1 AND cohort = 4"), 1);
    assert_int_equal(query_i64(path, "SELECT count(*) FROM models"), 1);
    assert_int_equal(query_i64(path, "SELECT count(*) FROM dp_spent"), 0);
    /* two releases, recorded out of order, compose like the accountant */
    assert_int_equal(fedreci_db_open(&db, path), FEDREC_OK);
    fedreci_dp_spend a = {3, 4e9, 8500, 8600, 2.7, 4.0, 1e-6};
    fedreci_dp_spend b = {2, 4e9, 8500, 8600, 2.7, 2.7, 1e-6};
    assert_int_equal(fedreci_db_dp_spend(db, &a), FEDREC_OK);
    assert_int_equal(fedreci_db_dp_spend(db, &b), FEDREC_OK);
    assert_int_equal(fedreci_db_dp_spend(db, &b), FEDREC_ERR_DUPLICATE);
    fedreci_dp_accountant acc, want;
    uint64_t n = 0;
    assert_int_equal(fedreci_db_dp_restore(db, &acc, &n), FEDREC_OK);
    assert_int_equal(n, 2);
    fedreci_dp_accountant_init(&want);
    fedreci_dp_event ev = {.mech = FEDRECI_DP_SKELLAM, .mu = 4e9, .l1 = 8500, .l2 = 8600};
    assert_int_equal(fedreci_dp_accountant_compose(&want, &ev, 2), FEDREC_OK);
    double e1 = 0, e2 = 0;
    assert_int_equal(fedreci_dp_accountant_epsilon(&acc, 1e-6, &e1, NULL), FEDREC_OK);
    assert_int_equal(fedreci_dp_accountant_epsilon(&want, 1e-6, &e2, NULL), FEDREC_OK);
    assert_true(e1 > 0 && fabs(e1 - e2) < 1e-12);
    fedreci_db_close(db);
    remove_db(path);
}

static void test_newer_schema_refused(void **state)
{
    (void)state;
    char path[256];
    temp_db_path(path, sizeof path);
    sqlite3 *c;
    assert_int_equal(sqlite3_open(path, &c), SQLITE_OK);
    assert_int_equal(sqlite3_exec(c, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(c);
    fedreci_db *db = NULL;
    assert_int_equal(fedreci_db_open(&db, path), FEDREC_ERR_UNSUPPORTED);
    assert_null(db);
    assert_non_null(strstr(fedrec_errmsg(), "99"));
    remove_db(path);
}

static void test_open_error_names_path(void **state)
{
    (void)state;
    fedreci_db *db = NULL;
    assert_int_equal(fedreci_db_open(&db, "/nonexistent-dir/x/y.sqlite"), FEDREC_ERR_DB);
    assert_non_null(strstr(fedrec_errmsg(), "/nonexistent-dir/x/y.sqlite"));
    assert_non_null(strstr(fedrec_errmsg(), "unable to open"));
}

static void test_round_commit_and_reopen(void **state)
{
    (void)state;
    char path[256];
    temp_db_path(path, sizeof path);
    fedreci_db *db;
    assert_int_equal(fedreci_db_open(&db, path), FEDREC_OK);

    fedreci_model init = make_model(5, 3, 1.0f);
    assert_int_equal(fedreci_db_commit_model(db, &init), FEDREC_OK);
    assert_int_equal(init.version, 1);

    /* round 1 completes: model version 2 */
    fedreci_round_record r1 = make_round(1, FEDRECI_ROUND_COMPLETED);
    assert_int_equal(fedreci_db_round_begin(db, &r1), FEDREC_OK);
    assert_int_equal(fedreci_db_round_begin(db, &r1), FEDREC_ERR_DUPLICATE);
    fedreci_model m2 = make_model(5, 3, 2.0f);
    assert_int_equal(fedreci_db_round_end(db, &r1, &m2), FEDREC_OK);
    assert_int_equal(m2.version, 2);
    assert_int_equal(r1.model_version, 2);

    /* round 2 aborts: no model */
    fedreci_round_record r2 = make_round(2, FEDRECI_ROUND_ABORTED);
    assert_int_equal(fedreci_db_round_begin(db, &r2), FEDREC_OK);
    assert_int_equal(fedreci_db_round_end(db, &r2, NULL), FEDREC_OK);
    /* inconsistent requests are refused */
    fedreci_round_record bad = make_round(3, FEDRECI_ROUND_COMPLETED);
    assert_int_equal(fedreci_db_round_end(db, &bad, NULL), FEDREC_ERR_INVALID);
    bad.status = FEDRECI_ROUND_ABORTED;
    assert_int_equal(fedreci_db_round_end(db, &bad, &m2), FEDREC_ERR_INVALID);
    fedreci_db_close(db);

    assert_int_equal(fedreci_db_open(&db, path), FEDREC_OK);
    fedreci_model got;
    assert_int_equal(fedreci_db_latest_model(db, &got), FEDREC_OK);
    assert_int_equal(got.version, 2);
    assert_int_equal(got.n_items, 5);
    assert_int_equal(got.k, 3);
    assert_int_equal(got.origin, FEDRECI_MODEL_ROUND);
    assert_memory_equal(got.y, m2.y, 15 * sizeof(float));
    assert_memory_equal(got.checksum, m2.checksum, 32);
    fedreci_model_clear(&got);
    assert_int_equal(fedreci_db_get_model(db, 1, &got), FEDREC_OK);
    assert_memory_equal(got.y, init.y, 15 * sizeof(float));
    assert_int_equal(got.origin, FEDRECI_MODEL_INIT);
    fedreci_model_clear(&got);
    assert_int_equal(fedreci_db_get_model(db, 7, &got), FEDREC_ERR_NOT_FOUND);

    fedreci_round_record rr;
    assert_int_equal(fedreci_db_get_round(db, 1, &rr), FEDREC_OK);
    assert_int_equal(rr.status, FEDRECI_ROUND_COMPLETED);
    assert_int_equal(rr.model_version, 2);
    assert_int_equal(rr.cohort, 8);
    assert_int_equal(rr.survivors, 6);
    assert_int_equal(rr.dropped[0], 1);
    assert_int_equal(rr.dropped[2], 1);
    assert_int_equal(rr.stage_ms[3], 40);
    assert_int_equal(rr.bytes_in, 12345);
    assert_int_equal(rr.bytes_out, 67890);
    assert_int_equal(rr.ended_ms, 1500);
    assert_string_equal(rr.metrics_json, "{\"loss\":1}");
    assert_int_equal(fedreci_db_get_round(db, 2, &rr), FEDREC_OK);
    assert_int_equal(rr.status, FEDRECI_ROUND_ABORTED);
    assert_int_equal(rr.model_version, 0);
    uint64_t c = 0, a = 0, run = 9;
    assert_int_equal(fedreci_db_round_counts(db, &c, &a, &run), FEDREC_OK);
    assert_int_equal(c, 1);
    assert_int_equal(a, 1);
    assert_int_equal(run, 0);
    uint64_t next;
    assert_int_equal(fedreci_db_next_round_id(db, &next), FEDREC_OK);
    assert_int_equal(next, 3);
    fedreci_db_close(db);

    free(init.y);
    free(m2.y);
    remove_db(path);
}

static void test_checksum_detects_corruption(void **state)
{
    (void)state;
    char path[256];
    temp_db_path(path, sizeof path);
    fedreci_db *db;
    assert_int_equal(fedreci_db_open(&db, path), FEDREC_OK);
    fedreci_model m = make_model(4, 2, 0.5f);
    assert_int_equal(fedreci_db_commit_model(db, &m), FEDREC_OK);
    fedreci_db_close(db);
    /* replace the stored checksum behind the database's back */
    sqlite3 *c;
    assert_int_equal(sqlite3_open(path, &c), SQLITE_OK);
    assert_int_equal(sqlite3_exec(c, "UPDATE models SET checksum = zeroblob(32) WHERE version = 1",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(c);
    assert_int_equal(fedreci_db_open(&db, path), FEDREC_OK);
    fedreci_model got;
    assert_int_equal(fedreci_db_latest_model(db, &got), FEDREC_ERR_CORRUPT);
    assert_non_null(strstr(fedrec_errmsg(), "checksum"));
    fedreci_db_close(db);
    free(m.y);
    remove_db(path);
}

/* The checksum is BLAKE2b-256 of the little-endian float32 bytes (the wire's
 * ModelReply definition): recompute it independently. */
static void test_checksum_definition(void **state)
{
    (void)state;
    float y[6] = {1.0f, -2.0f, 0.5f, 3.25f, 0.0f, -0.125f};
    uint8_t buf[24] = {0};
    for (int i = 0; i < 6; i++) {
        uint32_t w;
        memcpy(&w, &y[i], 4);
        for (int b = 0; b < 4; b++)
            buf[4 * i + b] = (uint8_t)(w >> (8 * b));
    }
    uint8_t want[32], got[32], other[32];
    crypto_generichash(want, 32, buf, sizeof buf, NULL, 0);
    fedreci_model_checksum(y, 3, 2, got);
    assert_memory_equal(got, want, 32);
    y[5] = 0.125f; /* one sign bit flipped */
    fedreci_model_checksum(y, 3, 2, other);
    assert_memory_not_equal(got, other, 32);
}

static void die_now(void *arg)
{
    (void)arg;
    raise(SIGKILL);
}

/* A child begins round 2, writes the new model and the round row inside the
 * commit transaction, and is SIGKILLed before COMMIT. The parent reopens:
 * the last committed model (version 2 from round 1) is served, round 2 is
 * logged as aborted by crash, the database is intact, and round 3 commits. */
static void test_crash_mid_round_loses_that_round_only(void **state)
{
    (void)state;
    char path[256];
    temp_db_path(path, sizeof path);
    fedreci_db *db;
    assert_int_equal(fedreci_db_open(&db, path), FEDREC_OK);
    fedreci_model m1 = make_model(6, 4, 1.0f);
    assert_int_equal(fedreci_db_commit_model(db, &m1), FEDREC_OK);
    fedreci_round_record r1 = make_round(1, FEDRECI_ROUND_COMPLETED);
    assert_int_equal(fedreci_db_round_begin(db, &r1), FEDREC_OK);
    fedreci_model m2 = make_model(6, 4, 2.0f);
    assert_int_equal(fedreci_db_round_end(db, &r1, &m2), FEDREC_OK);
    fedreci_db_close(db);

    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        fedreci_db *cdb;
        if (fedreci_db_open(&cdb, path) != FEDREC_OK)
            _exit(3);
        fedreci_round_record r2 = make_round(2, FEDRECI_ROUND_COMPLETED);
        if (fedreci_db_round_begin(cdb, &r2) != FEDREC_OK)
            _exit(4);
        fedreci_model m3 = make_model(6, 4, 3.0f);
        fedreci_db_set_precommit_hook(cdb, die_now, NULL);
        if (fedreci_db_round_end(cdb, &r2, &m3) != FEDREC_OK)
            _exit(6);
        _exit(5); /* not reached: the hook kills us before COMMIT */
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);

    assert_int_equal(fedreci_db_open(&db, path), FEDREC_OK);
    assert_int_equal(fedreci_db_recovered_rounds(db), 1);
    int ok = 0;
    char msg[128];
    assert_int_equal(fedreci_db_integrity_check(db, &ok, msg, sizeof msg), FEDREC_OK);
    assert_int_equal(ok, 1);
    fedreci_model got;
    assert_int_equal(fedreci_db_latest_model(db, &got), FEDREC_OK);
    assert_int_equal(got.version, 2);
    assert_memory_equal(got.y, m2.y, 24 * sizeof(float));
    fedreci_model_clear(&got);
    fedreci_round_record rr;
    assert_int_equal(fedreci_db_get_round(db, 2, &rr), FEDREC_OK);
    assert_int_equal(rr.status, FEDRECI_ROUND_ABORTED);
    assert_string_equal(rr.metrics_json, "{\"reason\":\"crash\"}");
    assert_int_equal(fedreci_db_get_round(db, 1, &rr), FEDREC_OK);
    assert_int_equal(rr.status, FEDRECI_ROUND_COMPLETED);

    /* the next round gets a fresh id and commits version 3 */
    uint64_t next;
    assert_int_equal(fedreci_db_next_round_id(db, &next), FEDREC_OK);
    assert_int_equal(next, 3);
    fedreci_round_record r3 = make_round(next, FEDRECI_ROUND_COMPLETED);
    assert_int_equal(fedreci_db_round_begin(db, &r3), FEDREC_OK);
    fedreci_model m3 = make_model(6, 4, 4.0f);
    assert_int_equal(fedreci_db_round_end(db, &r3, &m3), FEDREC_OK);
    assert_int_equal(m3.version, 3);
    fedreci_db_close(db);
    /* a second reopen recovers nothing */
    assert_int_equal(fedreci_db_open(&db, path), FEDREC_OK);
    assert_int_equal(fedreci_db_recovered_rounds(db), 0);
    fedreci_db_close(db);
    free(m1.y);
    free(m2.y);
    free(m3.y);
    remove_db(path);
}

static void test_catalog_store_and_model_atomic(void **state)
{
    (void)state;
    char path[256];
    temp_db_path(path, sizeof path);
    fedreci_db *db;
    assert_int_equal(fedreci_db_open(&db, path), FEDREC_OK);
    fedreci_catalog *c0;
    uint64_t id = 99;
    assert_int_equal(fedreci_db_load_catalog(db, &c0, &id), FEDREC_OK);
    assert_int_equal(id, 0);
    assert_int_equal(fedreci_catalog_size(c0), 0);
    fedreci_catalog_destroy(c0);

    fedreci_catalog *c;
    assert_int_equal(fedreci_catalog_create(&c), FEDREC_OK);
    assert_int_equal(fedreci_catalog_add(c, "A1", "apple", 1), FEDREC_OK);
    assert_int_equal(fedreci_catalog_add(c, "B2", "pear, green", 1), FEDREC_OK);
    fedreci_model m = make_model(2, 3, 0.0f);
    assert_int_equal(fedreci_db_store_catalog(db, c, "test", &m, &id), FEDREC_OK);
    assert_int_equal(id, 1);
    assert_int_equal(m.catalog_id, 1);
    assert_int_equal(m.version, 1);

    /* the second catalog retires A1 and adds C3: a model of the wrong size
     * makes the whole transaction fail, nothing stored */
    fedreci_catalog *c2;
    assert_int_equal(fedreci_catalog_create(&c2), FEDREC_OK);
    assert_int_equal(fedreci_catalog_add(c2, "A1", "apple", 0), FEDREC_OK);
    assert_int_equal(fedreci_catalog_add(c2, "B2", "pear", 1), FEDREC_OK);
    assert_int_equal(fedreci_catalog_add(c2, "C3", "plum", 1), FEDREC_OK);
    fedreci_model wrong = make_model(2, 3, 5.0f);
    wrong.origin = FEDRECI_MODEL_CATALOG;
    assert_int_equal(fedreci_db_store_catalog(db, c2, "test2", &wrong, &id), FEDREC_ERR_INVALID);
    uint64_t v;
    assert_int_equal(fedreci_db_latest_version(db, &v), FEDREC_OK);
    assert_int_equal(v, 1);
    fedreci_catalog *back;
    assert_int_equal(fedreci_db_load_catalog(db, &back, &id), FEDREC_OK);
    assert_int_equal(id, 1);
    assert_int_equal(fedreci_catalog_size(back), 2);
    fedreci_catalog_destroy(back);

    fedreci_model grown = make_model(3, 3, 0.0f);
    grown.origin = FEDRECI_MODEL_CATALOG;
    assert_int_equal(fedreci_db_store_catalog(db, c2, "test2", &grown, &id), FEDREC_OK);
    assert_int_equal(id, 2);
    assert_int_equal(grown.version, 2);
    assert_int_equal(fedreci_db_load_catalog(db, &back, &id), FEDREC_OK);
    assert_int_equal(id, 2);
    assert_int_equal(fedreci_catalog_size(back), 3);
    assert_int_equal(fedreci_catalog_n_active(back), 2);
    assert_string_equal(fedreci_catalog_at(back, 0)->code, "A1");
    assert_int_equal(fedreci_catalog_at(back, 0)->active, 0);
    assert_string_equal(fedreci_catalog_at(back, 1)->description, "pear");
    assert_string_equal(fedreci_catalog_at(back, 2)->code, "C3");
    fedreci_catalog_destroy(back);
    fedreci_db_close(db);
    assert_int_equal(query_i64(path, "SELECT retired_catalog FROM items WHERE code = 'A1'"), 2);
    assert_int_equal(query_i64(path, "SELECT added_catalog FROM items WHERE code = 'C3'"), 2);
    assert_int_equal(query_i64(path, "SELECT catalog_id FROM models WHERE version = 2"), 2);

    /* a catalog that moves a stored code to another row is refused */
    assert_int_equal(fedreci_db_open(&db, path), FEDREC_OK);
    fedreci_catalog *moved;
    assert_int_equal(fedreci_catalog_create(&moved), FEDREC_OK);
    assert_int_equal(fedreci_catalog_add(moved, "B2", "pear", 1), FEDREC_OK);
    assert_int_equal(fedreci_catalog_add(moved, "A1", "apple", 1), FEDREC_OK);
    assert_int_equal(fedreci_catalog_add(moved, "C3", "plum", 1), FEDREC_OK);
    assert_int_equal(fedreci_db_store_catalog(db, moved, "bad", NULL, &id), FEDREC_ERR_INVALID);
    assert_non_null(strstr(fedrec_errmsg(), "row 0"));
    fedreci_catalog_destroy(moved);
    fedreci_db_close(db);

    fedreci_catalog_destroy(c);
    fedreci_catalog_destroy(c2);
    free(m.y);
    free(wrong.y);
    free(grown.y);
    remove_db(path);
}

static void test_client_registry(void **state)
{
    (void)state;
    char path[256];
    temp_db_path(path, sizeof path);
    fedreci_db *db;
    assert_int_equal(fedreci_db_open(&db, path), FEDREC_OK);
    uint8_t pk[32], other[32];
    memset(pk, 7, sizeof pk);
    memset(other, 8, sizeof other);
    uint64_t big_id = UINT64_C(0xfedcba9876543210); /* above INT64_MAX */
    assert_int_equal(fedreci_db_client_seen(db, big_id, pk, 1000), FEDREC_OK);
    assert_int_equal(fedreci_db_client_seen(db, big_id, pk, 2000), FEDREC_OK);
    assert_int_equal(fedreci_db_client_seen(db, big_id, pk, 1500), FEDREC_OK);
    assert_int_equal(fedreci_db_client_seen(db, big_id, other, 3000), FEDREC_ERR_SIGNATURE);
    assert_int_equal(fedreci_db_client_seen(db, 5, other, 10), FEDREC_OK);
    fedreci_client_record r;
    assert_int_equal(fedreci_db_client_get(db, big_id, &r), FEDREC_OK);
    assert_true(r.client_id == big_id);
    assert_memory_equal(r.identity_pk, pk, 32);
    assert_int_equal(r.first_seen_ms, 1000);
    assert_int_equal(r.last_seen_ms, 2000);
    assert_int_equal(r.opted_out, 0);
    assert_int_equal(fedreci_db_client_set_opted_out(db, big_id, 1), FEDREC_OK);
    assert_int_equal(fedreci_db_client_get(db, big_id, &r), FEDREC_OK);
    assert_int_equal(r.opted_out, 1);
    assert_int_equal(fedreci_db_client_set_opted_out(db, 42, 1), FEDREC_ERR_NOT_FOUND);
    assert_int_equal(fedreci_db_client_get(db, 42, &r), FEDREC_ERR_NOT_FOUND);
    uint64_t n = 0;
    assert_int_equal(fedreci_db_client_count(db, &n), FEDREC_OK);
    assert_int_equal(n, 2);
    fedreci_db_close(db);
    remove_db(path);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schema_and_pragmas),
        cmocka_unit_test(test_newer_schema_refused),
        cmocka_unit_test(test_upgrade_v3_dp),
        cmocka_unit_test(test_upgrade_v4_bench),
        cmocka_unit_test(test_open_error_names_path),
        cmocka_unit_test(test_round_commit_and_reopen),
        cmocka_unit_test(test_checksum_detects_corruption),
        cmocka_unit_test(test_checksum_definition),
        cmocka_unit_test(test_crash_mid_round_loses_that_round_only),
        cmocka_unit_test(test_catalog_store_and_model_atomic),
        cmocka_unit_test(test_client_registry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
