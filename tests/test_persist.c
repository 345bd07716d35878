/* Tests for coordinator/persist: the engine-hook glue writes the model and
 * its round atomically, fills the counts in afterwards, and updates stats. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "core/log.h"
#include "persist.h"

static void remove_db(const char *path)
{
    char p[512];
    unlink(path);
    snprintf(p, sizeof p, "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", path);
    unlink(p);
}

static void test_hook_sequence(void **state)
{
    (void)state;
    char path[256];
    snprintf(path, sizeof path, "/tmp/fedrec_test_persist_%d.sqlite", (int)getpid());
    remove_db(path);
    fedreci_log_set_level(FEDRECI_LOG_ERROR);
    fedreci_db *db;
    assert_int_equal(fedreci_db_open(&db, path), FEDREC_OK);
    float y0[6] = {0};
    fedreci_model m0 = {.n_items = 3, .k = 2, .y = y0, .origin = FEDRECI_MODEL_INIT};
    assert_int_equal(fedreci_db_commit_model(db, &m0), FEDREC_OK);
    fedreci_stats *st;
    assert_int_equal(fedreci_stats_create(&st), FEDREC_OK);
    fedreci_persist *p;
    assert_int_equal(fedreci_persist_create(&p, db, st, 0), FEDREC_OK);

    /* round 1 completes: model version 2, then its statistics */
    fedreci_round_begin b1 = {.round_id = 1, .cohort = 8, .waiting = 9, .model_version = 1};
    assert_int_equal(fedreci_persist_round_begin(p, &b1), FEDREC_OK);
    /* a round id is begun once: again, or an older one, is refused */
    assert_int_equal(fedreci_persist_round_begin(p, &b1), FEDREC_ERR_DUPLICATE);
    fedreci_round_record rr;
    assert_int_equal(fedreci_db_get_round(db, 1, &rr), FEDREC_OK);
    assert_int_equal(rr.status, FEDRECI_ROUND_RUNNING);
    assert_int_equal(rr.cohort, 8);
    float y1[6] = {1, 2, 3, 4, 5, 6};
    assert_int_equal(fedreci_persist_model(p, 1, 2, y1, 3, 2), FEDREC_OK);
    assert_int_equal(fedreci_db_get_round(db, 1, &rr), FEDREC_OK);
    assert_int_equal(rr.status, FEDRECI_ROUND_COMPLETED);
    assert_int_equal(rr.model_version, 2);
    fedreci_round_record done = {.round_id = 1,
                                 .status = FEDRECI_ROUND_COMPLETED,
                                 .cohort = 8,
                                 .survivors = 6,
                                 .dropped = {0, 1, 1, 0},
                                 .stage_ms = {5, 6, 7, 8},
                                 .bytes_in = 100,
                                 .bytes_out = 200};
    assert_int_equal(fedreci_persist_round(p, &done), FEDREC_OK);
    assert_int_equal(fedreci_db_get_round(db, 1, &rr), FEDREC_OK);
    assert_int_equal(rr.status, FEDRECI_ROUND_COMPLETED);
    assert_int_equal(rr.model_version, 2);
    assert_int_equal(rr.survivors, 6);
    assert_int_equal(rr.dropped[2], 1);
    assert_int_equal(rr.stage_ms[3], 8);
    assert_int_equal(rr.bytes_out, 200);

    /* a version that is not above the latest is refused, nothing written */
    assert_int_equal(fedreci_persist_model(p, 2, 2, y1, 3, 2), FEDREC_ERR_INVALID);
    assert_int_equal(fedreci_db_get_round(db, 2, &rr), FEDREC_ERR_NOT_FOUND);

    /* round 2 aborts */
    fedreci_round_begin b2 = {.round_id = 2, .cohort = 8, .waiting = 8, .model_version = 2};
    assert_int_equal(fedreci_persist_round_begin(p, &b2), FEDREC_OK);
    fedreci_round_record ab = {.round_id = 2,
                               .status = FEDRECI_ROUND_ABORTED,
                               .cohort = 8,
                               .survivors = 1,
                               .dropped = {7, 0, 0, 0},
                               .stage_ms = {9, 0, 0, 0}};
    snprintf(ab.metrics_json, sizeof ab.metrics_json, "{\"reason\":\"too few adverts\"}");
    assert_int_equal(fedreci_persist_round(p, &ab), FEDREC_OK);
    assert_int_equal(fedreci_db_get_round(db, 2, &rr), FEDREC_OK);
    assert_int_equal(rr.status, FEDRECI_ROUND_ABORTED);
    assert_int_equal(rr.dropped[0], 7);
    assert_string_equal(rr.metrics_json, "{\"reason\":\"too few adverts\"}");

    fedreci_stats_snapshot s;
    fedreci_stats_snapshot_get(st, &s);
    assert_int_equal(s.rounds_completed, 1);
    assert_int_equal(s.rounds_aborted, 1);
    assert_int_equal(s.model_version, 2);
    assert_int_equal(s.dropouts[0], 7);
    assert_int_equal(s.dropouts[1], 1);
    assert_int_equal(s.bytes_in, 100);

    /* clients: registration and opt-out */
    uint8_t pk[32];
    memset(pk, 3, sizeof pk);
    assert_int_equal(fedreci_persist_client(p, 77, pk, 1), FEDREC_OK);
    assert_int_equal(fedreci_persist_client(p, 77, pk, 0), FEDREC_OK);
    fedreci_client_record c;
    assert_int_equal(fedreci_db_client_get(db, 77, &c), FEDREC_OK);
    assert_int_equal(c.opted_out, 1);
    pk[0] = 9;
    assert_int_equal(fedreci_persist_client(p, 77, pk, 1), FEDREC_ERR_SIGNATURE);

    fedreci_model latest;
    assert_int_equal(fedreci_db_latest_model(db, &latest), FEDREC_OK);
    assert_int_equal(latest.version, 2);
    assert_memory_equal(latest.y, y1, sizeof y1);
    fedreci_model_clear(&latest);
    fedreci_persist_destroy(p);
    fedreci_persist_destroy(NULL);
    fedreci_stats_destroy(st);
    fedreci_db_close(db);
    remove_db(path);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hook_sequence),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
