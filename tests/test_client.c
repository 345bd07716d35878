/* Tests of the client API (include/fedrec/client.h): durability through
 * record, recommendations against hand-computed ALS solutions, the local
 * step's gradient, the ledger, consent, clear store errors and forget. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "client/client_internal.h"
#include "coordinator/engine.h"
#include "fedrec/client.h"
#include "harness_engine.h"

static const uint8_t KEY[32] = {7, 7, 7, 7, 7, 7, 7, 7, 1, 2, 3, 4, 5, 6, 7, 8,
                                9, 9, 9, 9, 9, 9, 9, 9, 8, 7, 6, 5, 4, 3, 2, 1};
static const uint8_t OTHER_KEY[32] = {42};

static fedrec_client *open_client(const char *dir)
{
    fedrec_client *c = NULL;
    fedrec_err e = fedrec_client_open(&c, dir, NULL, KEY);
    if (e)
        fail_msg("open %s: %s: %s", dir, fedrec_strerror(e), fedrec_errmsg());
    return c;
}

/* A 5-item, 2-factor model. */
static const float Y5[10] = {1.0f, 0.0f, 0.0f, 1.0f, 0.7f, 0.7f, -0.5f, 0.2f, 0.3f, -0.9f};
static const char *const CODES5[5] = {"A", "B", "C", "D", "E"};

/* Hand computation of x = (Y^T Y + sum_b (c_b - 1) y_b y_b^T + lambda I)^-1
 * sum_b c_b y_b for k = 2 (in double). */
static void solve2(const float *y, int n, const int *bought, const double *conf, int nb,
                   double lambda, double x[2])
{
    double a00 = lambda, a01 = 0, a11 = lambda, b0 = 0, b1 = 0;
    for (int i = 0; i < n; i++) {
        a00 += (double)y[2 * i] * y[2 * i];
        a01 += (double)y[2 * i] * y[2 * i + 1];
        a11 += (double)y[2 * i + 1] * y[2 * i + 1];
    }
    for (int j = 0; j < nb; j++) {
        const float *r = y + 2 * bought[j];
        a00 += (conf[j] - 1) * r[0] * r[0];
        a01 += (conf[j] - 1) * r[0] * r[1];
        a11 += (conf[j] - 1) * r[1] * r[1];
        b0 += conf[j] * r[0];
        b1 += conf[j] * r[1];
    }
    double det = a00 * a11 - a01 * a01;
    x[0] = (a11 * b0 - a01 * b1) / det;
    x[1] = (a00 * b1 - a01 * b0) / det;
}

static void test_recommend_known_answer(void **state)
{
    char *dir = th_tmpdir("client");
    fedrec_client *c = open_client(dir);
    fedrec_recommendation rec[8];
    uint32_t n = 0;
    assert_int_equal(fedrec_client_recommend(c, 3, rec, &n), FEDREC_ERR_EMPTY);
    assert_non_null(strstr(fedrec_errmsg(), "no model"));

    int stored = 0;
    assert_int_equal(fedreci_client_put_model(c, 3, 5, 2, Y5, NULL, CODES5, &stored), FEDREC_OK);
    assert_int_equal(stored, 1);
    /* Bought A twice (q = 2 + 1 = 3) and C once; Z is not in the catalog. */
    assert_int_equal(fedrec_client_record(c, "A", 1000, 2), FEDREC_OK);
    assert_int_equal(fedrec_client_record(c, "C", 1001, 1), FEDREC_OK);
    assert_int_equal(fedrec_client_record(c, "A", 1002, 1), FEDREC_OK);
    assert_int_equal(fedrec_client_record(c, "Z", 1003, 5), FEDREC_OK);

    int bought[2] = {0, 2};
    double conf[2] = {1 + log(1 + 3.0), 1 + log(1 + 1.0)};
    double x[2];
    solve2(Y5, 5, bought, conf, 2, 0.1, x);
    double sc[5];
    for (int i = 0; i < 5; i++)
        sc[i] = Y5[2 * i] * x[0] + Y5[2 * i + 1] * x[1];

    /* K larger than the candidates (5 items - 2 bought) returns all 3. */
    assert_int_equal(fedrec_client_recommend(c, 8, rec, &n), FEDREC_OK);
    assert_int_equal(n, 3);
    int seen[5] = {0};
    for (uint32_t i = 0; i < n; i++) {
        assert_string_not_equal(rec[i].item_code, "A");
        assert_string_not_equal(rec[i].item_code, "C");
        int row = rec[i].item_code[0] - 'A';
        assert_true(row >= 0 && row < 5);
        seen[row]++;
        assert_float_equal(rec[i].score, sc[row], 1e-4);
        if (i > 0)
            assert_true(rec[i - 1].score >= rec[i].score);
    }
    assert_int_equal(seen[1] + seen[3] + seen[4], 3);
    /* K = 1 is the best of them. */
    assert_int_equal(fedrec_client_recommend(c, 1, rec, &n), FEDREC_OK);
    assert_int_equal(n, 1);
    double best = fmax(sc[1], fmax(sc[3], sc[4]));
    assert_float_equal(rec[0].score, best, 1e-4);
    assert_int_equal(fedrec_client_recommend(c, 0, rec, &n), FEDREC_ERR_INVALID);

    /* An older model version is not stored; a duplicate code is refused. */
    assert_int_equal(fedreci_client_put_model(c, 2, 5, 2, Y5, NULL, CODES5, &stored), FEDREC_OK);
    assert_int_equal(stored, 0);
    const char *dup[5] = {"A", "B", "C", "B", "E"};
    assert_int_equal(fedreci_client_put_model(c, 9, 5, 2, Y5, NULL, dup, &stored),
                     FEDREC_ERR_INVALID);
    assert_non_null(strstr(fedrec_errmsg(), "'B'"));
    fedrec_client_info info = {.struct_size = sizeof info};
    assert_int_equal(fedrec_client_get_info(c, &info), FEDREC_OK);
    assert_int_equal(info.model_version, 3);
    assert_int_equal(info.model_items, 5);
    assert_int_equal(info.model_factors, 2);
    assert_int_equal(info.purchases, 4);
    fedrec_client_close(c);

    /* After a reopen the same model and purchases give the same answer. */
    c = open_client(dir);
    fedrec_recommendation again[8];
    assert_int_equal(fedrec_client_recommend(c, 8, again, &n), FEDREC_OK);
    assert_int_equal(n, 3);
    assert_int_equal(fedrec_client_recommend(c, 8, rec, &n), FEDREC_OK);
    assert_memory_equal(again, rec, 3 * sizeof rec[0]);
    /* Buying everything leaves no candidates. */
    assert_int_equal(fedrec_client_record(c, "B", 2000, 1), FEDREC_OK);
    assert_int_equal(fedrec_client_record(c, "D", 2000, 1), FEDREC_OK);
    assert_int_equal(fedrec_client_record(c, "E", 2000, 1), FEDREC_OK);
    assert_int_equal(fedrec_client_recommend(c, 8, rec, &n), FEDREC_OK);
    assert_int_equal(n, 0);
    fedrec_client_close(c);
    th_rm_rf(dir);
    free(dir);
}

/* The local step's update is the dense gradient -2 e x^T of the shopper's
 * loss term, e_i = c_i (p_i - y_i^T x). */
/* Retired products (the coordinator sends their rows with the model) are
 * never recommended; the list survives a reopen; a newer model without
 * retired rows brings them back; bad lists are refused. */
static void test_recommend_skips_retired(void **state)
{
    (void)state;
    char *dir = th_tmpdir("client");
    fedrec_client *c = open_client(dir);
    /* bought A and C: candidates B, D, E. First the scores without retirement. */
    assert_int_equal(fedreci_client_put_model(c, 1, 5, 2, Y5, NULL, CODES5, NULL), FEDREC_OK);
    assert_int_equal(fedrec_client_record(c, "A", 1000, 3), FEDREC_OK);
    assert_int_equal(fedrec_client_record(c, "C", 1001, 1), FEDREC_OK);
    fedrec_recommendation all[5], rec[5];
    uint32_t n = 0, n_all = 0;
    assert_int_equal(fedrec_client_recommend(c, 5, all, &n_all), FEDREC_OK);
    assert_int_equal(n_all, 3);
    /* version 2 retires B and E (rows 1, 4) and C (row 2, also bought) */
    const uint32_t retired[3] = {1, 2, 4};
    int stored = 0;
    assert_int_equal(
        fedreci_client_put_model_retired(c, 2, 5, 2, Y5, NULL, CODES5, retired, 3, &stored),
        FEDREC_OK);
    assert_int_equal(stored, 1);
    for (int reopen = 0; reopen < 2; reopen++) {
        assert_int_equal(fedrec_client_recommend(c, 5, rec, &n), FEDREC_OK);
        assert_int_equal(n, 1);
        assert_string_equal(rec[0].item_code, "D");
        /* the same score D had before: retirement only filters */
        for (uint32_t i = 0; i < n_all; i++)
            if (!strcmp(all[i].item_code, "D"))
                assert_float_equal(rec[0].score, all[i].score, 1e-6);
        fedrec_client_close(c);
        c = open_client(dir);
    }
    /* refused: unsorted, repeated, out of range; the stored model stays */
    const uint32_t unsorted[2] = {4, 1}, repeated[2] = {1, 1}, outside[1] = {5};
    assert_int_equal(
        fedreci_client_put_model_retired(c, 3, 5, 2, Y5, NULL, CODES5, unsorted, 2, NULL),
        FEDREC_ERR_INVALID);
    assert_int_equal(
        fedreci_client_put_model_retired(c, 3, 5, 2, Y5, NULL, CODES5, repeated, 2, NULL),
        FEDREC_ERR_INVALID);
    assert_int_equal(
        fedreci_client_put_model_retired(c, 3, 5, 2, Y5, NULL, CODES5, outside, 1, NULL),
        FEDREC_ERR_INVALID);
    fedrec_client_info info = {.struct_size = sizeof info};
    assert_int_equal(fedrec_client_get_info(c, &info), FEDREC_OK);
    assert_int_equal(info.model_version, 2);
    /* version 3 reactivates them all */
    assert_int_equal(fedreci_client_put_model(c, 3, 5, 2, Y5, NULL, CODES5, NULL), FEDREC_OK);
    assert_int_equal(fedrec_client_recommend(c, 5, rec, &n), FEDREC_OK);
    assert_int_equal(n, 3);
    assert_memory_equal(rec, all, 3 * sizeof rec[0]);
    fedrec_client_close(c);
    th_rm_rf(dir);
    free(dir);
}

static void test_local_update_gradient(void **state)
{
    char *dir = th_tmpdir("client");
    fedrec_client *c = open_client(dir);
    float upd[10];
    uint32_t w = 0;
    assert_int_equal(fedreci_client_local_update(c, upd, 10, &w, NULL), FEDREC_ERR_EMPTY);
    assert_int_equal(fedreci_client_put_model(c, 1, 5, 2, Y5, NULL, CODES5, NULL), FEDREC_OK);
    assert_int_equal(fedrec_client_record(c, "D", 1000, 4), FEDREC_OK);
    assert_int_equal(fedreci_client_local_update(c, upd, 9, &w, NULL), FEDREC_ERR_INVALID);
    double loss = -1;
    assert_int_equal(fedreci_client_local_update(c, upd, 10, &w, &loss), FEDREC_OK);
    assert_int_equal(w, 1);
    int bought[1] = {3};
    double conf[1] = {1 + log(5.0)};
    double x[2];
    solve2(Y5, 5, bought, conf, 1, 0.1, x);
    double want_loss = 0.1 * (x[0] * x[0] + x[1] * x[1]);
    for (int i = 0; i < 5; i++) {
        double p = i == 3 ? 1 : 0, ci = i == 3 ? conf[0] : 1;
        double r = Y5[2 * i] * x[0] + Y5[2 * i + 1] * x[1];
        double e = ci * (p - r);
        want_loss += ci * (p - r) * (p - r);
        assert_float_equal(upd[2 * i], -2 * e * x[0], 1e-4);
        assert_float_equal(upd[2 * i + 1], -2 * e * x[1], 1e-4);
    }
    assert_float_equal(loss, want_loss, 1e-4);
    fedrec_client_close(c);
    th_rm_rf(dir);
    free(dir);
}

static void test_ledger_and_consent_survive_reopen(void **state)
{
    char *dir = th_tmpdir("client");
    fedrec_client *c = open_client(dir);
    int in = -1;
    assert_int_equal(fedrec_client_get_participation(c, &in), FEDREC_OK);
    assert_int_equal(in, 1);
    size_t n = 99;
    assert_int_equal(fedrec_client_ledger_count(c, &n), FEDREC_OK);
    assert_int_equal(n, 0);
    assert_int_equal(fedreci_client_ledger_add(c, 1700000000001, 5, 0, 180,
                                               "signed key "
                                               "advertisement",
                                               0),
                     FEDREC_OK);
    assert_int_equal(fedreci_client_ledger_add(c, 1700000000002, 5, 2, 468042,
                                               "masked model update (117001 words)", 12),
                     FEDREC_OK);
    assert_int_equal(fedrec_client_set_participation(c, 0), FEDREC_OK);
    fedrec_client_close(c);

    c = open_client(dir);
    assert_int_equal(fedrec_client_get_participation(c, &in), FEDREC_OK);
    assert_int_equal(in, 0);
    assert_int_equal(fedrec_client_ledger_count(c, &n), FEDREC_OK);
    assert_int_equal(n, 2);
    fedrec_ledger_entry e = {.struct_size = sizeof e};
    assert_int_equal(fedrec_client_ledger_get(c, 1, &e), FEDREC_OK);
    assert_int_equal(e.time_unix_ms, 1700000000002);
    assert_int_equal(e.round_id, 5);
    assert_int_equal(e.stage, 2);
    assert_int_equal(e.bytes_sent, 468042);
    assert_int_equal(e.clipped, 12);
    assert_string_equal(e.what, "masked model update (117001 words)");
    assert_int_equal(fedrec_client_ledger_get(c, 0, &e), FEDREC_OK);
    assert_int_equal(e.bytes_sent, 180);
    assert_int_equal(fedrec_client_ledger_get(c, 2, &e), FEDREC_ERR_RANGE);
    assert_int_equal(fedrec_client_set_participation(c, 1), FEDREC_OK);
    fedrec_client_info info = {.struct_size = sizeof info};
    assert_int_equal(fedrec_client_get_info(c, &info), FEDREC_OK);
    assert_int_equal(info.opted_in, 1);
    assert_int_equal(info.ledger_entries, 2);
    assert_int_equal(info.client_id, fedreci_client_id_from_pk(info.identity_pk));
    fedrec_client_close(c);
    th_rm_rf(dir);
    free(dir);
}

/* The writer of test_kill9_record: records SKU1, SKU2, ... in its own
 * process. */
struct kill9_writer {
    const char *dir;
    fedrec_client *c;
};

static int kill9_open(void *arg)
{
    struct kill9_writer *w = arg;
    return fedrec_client_open(&w->c, w->dir, NULL, KEY) != FEDREC_OK;
}

static int kill9_record(void *arg, uint64_t i)
{
    struct kill9_writer *w = arg;
    char code[32];
    snprintf(code, sizeof code, "SKU%u", (unsigned)i);
    return fedrec_client_record(w->c, code, 1600000000 + (int64_t)i, 1 + i % 3) != FEDREC_OK;
}

static void test_kill9_record(void **state)
{
    char *dir = th_tmpdir("client");
    fedrec_client_close(open_client(dir));
    struct kill9_writer wr = {dir, NULL};
    uint32_t acked = (uint32_t)th_kill9_writer(kill9_open, kill9_record, &wr, 200);
    fedrec_client *c = open_client(dir);
    fedrec_client_info info = {.struct_size = sizeof info};
    assert_int_equal(fedrec_client_get_info(c, &info), FEDREC_OK);
    assert_true(info.purchases >= acked);
    assert_true(info.purchases <= (uint64_t)acked + 1);
    /* Every acknowledged item is "bought": a catalog of exactly those items
     * then leaves nothing to recommend. */
    char **codes = calloc(acked, sizeof *codes);
    float *y = calloc((size_t)acked * 2, sizeof *y);
    assert_non_null(codes);
    assert_non_null(y);
    for (uint32_t i = 0; i < acked; i++) {
        codes[i] = malloc(16);
        snprintf(codes[i], 16, "SKU%u", i + 1);
        y[2 * i] = 0.01f * (float)(i % 10);
        y[2 * i + 1] = 0.5f;
    }
    assert_int_equal(
        fedreci_client_put_model(c, 1, acked, 2, y, NULL, (const char *const *)codes, NULL),
        FEDREC_OK);
    fedrec_recommendation rec[4];
    uint32_t n = 99;
    assert_int_equal(fedrec_client_recommend(c, 4, rec, &n), FEDREC_OK);
    assert_int_equal(n, 0);
    for (uint32_t i = 0; i < acked; i++)
        free(codes[i]);
    free(codes);
    free(y);
    fedrec_client_close(c);
    th_rm_rf(dir);
    free(dir);
}

/* A log that lost committed events is refused naming how many, the bytes
 * left alone; fedrec_client_recover keeps the rest and the store opens. */
static void test_lost_events_and_recover(void **state)
{
    char *dir = th_tmpdir("client");
    char log[4096];
    snprintf(log, sizeof log, "%s/log", dir);
    fedrec_client *c = open_client(dir);
    struct stat st;
    off_t after3 = 0;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(fedrec_client_record(c, "85123A", 1291191960 + i, 1), FEDREC_OK);
        if (i == 2) {
            assert_int_equal(stat(log, &st), 0);
            after3 = st.st_size;
        }
    }
    fedrec_client_close(c);
    assert_int_equal(truncate(log, after3), 0);
    uint8_t before[32], after[32];
    th_hash_dir(dir, before);
    c = NULL;
    assert_int_equal(fedrec_client_open(&c, dir, NULL, KEY), FEDREC_ERR_LOST_EVENTS);
    assert_null(c);
    assert_non_null(strstr(fedrec_errmsg(), "2 committed events are missing"));
    th_hash_dir(dir, after);
    assert_memory_equal(before, after, 32);
    /* Wrong key: refused, nothing written. */
    uint64_t lost = 99;
    assert_int_equal(fedrec_client_recover(dir, OTHER_KEY, &lost), FEDREC_ERR_BADKEY);
    assert_int_equal(lost, 99);
    th_hash_dir(dir, after);
    assert_memory_equal(before, after, 32);
    assert_int_equal(fedrec_client_recover(dir, KEY, &lost), FEDREC_OK);
    assert_int_equal(lost, 2);
    c = open_client(dir);
    fedrec_client_info in = {.struct_size = sizeof in};
    assert_int_equal(fedrec_client_get_info(c, &in), FEDREC_OK);
    assert_int_equal(in.purchases, 3);
    fedrec_client_close(c);
    /* A healthy store: nothing lost, nothing written. */
    th_hash_dir(dir, before);
    assert_int_equal(fedrec_client_recover(dir, KEY, &lost), FEDREC_OK);
    assert_int_equal(lost, 0);
    th_hash_dir(dir, after);
    assert_memory_equal(before, after, 32);
    /* No store there: recovery does not make one. */
    char none[4096];
    snprintf(none, sizeof none, "%s/none", dir);
    assert_int_equal(fedrec_client_recover(none, KEY, &lost), FEDREC_ERR_NOT_FOUND);
    assert_int_equal(access(none, F_OK), -1);
    th_rm_rf(dir);
    free(dir);
}

static void test_store_errors_leave_bytes(void **state)
{
    char *dir = th_tmpdir("client");
    fedrec_client *c = open_client(dir);
    assert_int_equal(fedrec_client_record(c, "85123A", 1, 1), FEDREC_OK);
    fedrec_client_close(c);
    uint8_t before[32], after[32];
    th_hash_dir(dir, before);

    /* wrong key */
    c = NULL;
    assert_int_equal(fedrec_client_open(&c, dir, NULL, OTHER_KEY), FEDREC_ERR_BADKEY);
    assert_null(c);
    assert_non_null(strstr(fedrec_errmsg(), dir));
    assert_int_equal(fedrec_client_open_passphrase(&c, dir, NULL, "pw", 2), FEDREC_ERR_BADKEY);
    th_hash_dir(dir, after);
    assert_memory_equal(before, after, 32);

    /* truncated snapshot */
    char snap[4096], keep[4096];
    snprintf(snap, sizeof snap, "%s/snapshot", dir);
    snprintf(keep, sizeof keep, "%s.keep", dir);
    assert_int_equal(rename(snap, keep), 0);
    {
        FILE *a = fopen(keep, "rb"), *b = fopen(snap, "wb");
        uint8_t buf[64];
        assert_int_equal(fread(buf, 1, sizeof buf, a), sizeof buf);
        assert_int_equal(fwrite(buf, 1, sizeof buf, b), sizeof buf);
        fclose(a);
        fclose(b);
    }
    th_hash_dir(dir, before);
    assert_int_equal(fedrec_client_open(&c, dir, NULL, KEY), FEDREC_ERR_CORRUPT);
    assert_non_null(strstr(fedrec_errmsg(), "snapshot"));
    th_hash_dir(dir, after);
    assert_memory_equal(before, after, 32);
    assert_int_equal(rename(keep, snap), 0);

    /* another client's store file in place of ours */
    char *other = th_tmpdir("client");
    fedrec_client *o = open_client(other);
    assert_int_equal(fedrec_client_record(o, "22423", 2, 1), FEDREC_OK);
    fedrec_client_close(o);
    char osnap[4096];
    snprintf(osnap, sizeof osnap, "%s/snapshot", other);
    assert_int_equal(rename(snap, keep), 0);
    assert_int_equal(rename(osnap, snap), 0);
    th_hash_dir(dir, before);
    assert_int_equal(fedrec_client_open(&c, dir, NULL, KEY), FEDREC_ERR_CORRUPT);
    assert_non_null(strstr(fedrec_errmsg(), "another store"));
    th_hash_dir(dir, after);
    assert_memory_equal(before, after, 32);
    assert_int_equal(rename(keep, snap), 0);
    th_rm_rf(other);
    free(other);

    /* still intact */
    c = open_client(dir);
    fedrec_client_info info = {.struct_size = sizeof info};
    assert_int_equal(fedrec_client_get_info(c, &info), FEDREC_OK);
    assert_int_equal(info.purchases, 1);
    /* bad arguments */
    assert_int_equal(fedrec_client_record(c, "", 1, 1), FEDREC_ERR_INVALID);
    assert_int_equal(fedrec_client_record(c, "X", 1, 0), FEDREC_ERR_INVALID);
    assert_int_equal(fedrec_client_record(NULL, "X", 1, 1), FEDREC_ERR_INVALID);
    fedrec_client_close(c);
    fedrec_client_close(NULL);
    th_rm_rf(dir);
    free(dir);
}

static void test_forget(void **state)
{
    char *dir = th_tmpdir("client");
    fedrec_client *c = open_client(dir);
    assert_int_equal(fedrec_client_record(c, "A", 1, 1), FEDREC_OK);
    assert_int_equal(fedreci_client_put_model(c, 1, 5, 2, Y5, NULL, CODES5, NULL), FEDREC_OK);
    assert_int_equal(fedreci_client_ledger_add(c, 0, 1, 2, 100, "masked model update", 0),
                     FEDREC_OK);
    fedrec_client_info info = {.struct_size = sizeof info};
    assert_int_equal(fedrec_client_get_info(c, &info), FEDREC_OK);
    assert_int_equal(fedrec_client_forget(c), FEDREC_OK);
    struct stat st;
    assert_int_equal(stat(dir, &st), -1);
    assert_int_equal(errno, ENOENT);
    /* Opening again makes a new, empty store with a new identity. */
    c = open_client(dir);
    fedrec_client_info fresh = {.struct_size = sizeof fresh};
    assert_int_equal(fedrec_client_get_info(c, &fresh), FEDREC_OK);
    assert_int_equal(fresh.purchases, 0);
    assert_int_equal(fresh.model_version, 0);
    assert_int_equal(fresh.ledger_entries, 0);
    assert_memory_not_equal(fresh.identity_pk, info.identity_pk, 32);
    assert_int_equal(fedrec_client_forget(c), FEDREC_OK);
    assert_int_equal(stat(dir, &st), -1);
    free(dir);
}

/* must_exist: a read-only open of a path with no store (never made, or
 * forgotten) fails with NOT_FOUND and creates nothing; an existing store
 * opens as usual. */
static void test_open_must_exist(void **state)
{
    char *dir = th_tmpdir("client");
    fedrec_client_options o;
    fedrec_client_options_init(&o);
    o.key = KEY;
    o.must_exist = 1;
    fedrec_client *c = NULL;
    struct stat st;
    /* an empty directory: refused, still empty */
    assert_int_equal(fedrec_client_open_with(&c, dir, &o), FEDREC_ERR_NOT_FOUND);
    assert_non_null(strstr(fedrec_errmsg(), "no store here"));
    assert_null(c);
    DIR *d = opendir(dir);
    assert_non_null(d);
    int entries = 0;
    for (struct dirent *de; (de = readdir(d));)
        entries += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
    closedir(d);
    assert_int_equal(entries, 0);
    /* a store: opens, with what was recorded */
    c = open_client(dir);
    assert_int_equal(fedrec_client_record(c, "A", 1, 1), FEDREC_OK);
    fedrec_client_close(c);
    c = NULL;
    assert_int_equal(fedrec_client_open_with(&c, dir, &o), FEDREC_OK);
    fedrec_client_info info = {.struct_size = sizeof info};
    assert_int_equal(fedrec_client_get_info(c, &info), FEDREC_OK);
    assert_int_equal(info.purchases, 1);
    /* forgotten: no directory, and a must_exist open makes none */
    assert_int_equal(fedrec_client_forget(c), FEDREC_OK);
    c = NULL;
    assert_int_equal(fedrec_client_open_with(&c, dir, &o), FEDREC_ERR_NOT_FOUND);
    assert_non_null(strstr(fedrec_errmsg(), "no such directory"));
    assert_null(c);
    assert_int_equal(stat(dir, &st), -1);
    assert_int_equal(errno, ENOENT);
    /* the same through a passphrase */
    fedrec_client_options_init(&o);
    o.passphrase = "correct horse";
    o.passphrase_len = strlen(o.passphrase);
    o.must_exist = 1;
    assert_int_equal(fedrec_client_open_with(&c, dir, &o), FEDREC_ERR_NOT_FOUND);
    assert_int_equal(stat(dir, &st), -1);
    o.must_exist = 2;
    assert_int_equal(fedrec_client_open_with(&c, dir, &o), FEDREC_ERR_INVALID);
    assert_non_null(strstr(fedrec_errmsg(), "must_exist is 2"));
    assert_int_equal(stat(dir, &st), -1);
    free(dir);
}

struct rec_thread {
    fedrec_client *c;
    int id;
};

static void *record_many(void *arg)
{
    struct rec_thread *t = arg;
    for (int i = 0; i < 100; i++) {
        char code[16];
        snprintf(code, sizeof code, "T%d-%d", t->id, i);
        if (fedrec_client_record(t->c, code, i, 1) != FEDREC_OK)
            return (void *)1;
    }
    return NULL;
}

/* One handle from several threads at once: nothing lost, nothing torn. */
static void test_threads_share_a_handle(void **state)
{
    char *dir = th_tmpdir("client");
    fedrec_client *c = open_client(dir);
    pthread_t th[3];
    struct rec_thread a[3];
    for (int i = 0; i < 3; i++) {
        a[i].c = c;
        a[i].id = i;
        assert_int_equal(pthread_create(&th[i], NULL, record_many, &a[i]), 0);
    }
    for (int i = 0; i < 3; i++) {
        void *r;
        assert_int_equal(pthread_join(th[i], &r), 0);
        assert_null(r);
    }
    fedrec_client_close(c);
    c = open_client(dir);
    fedrec_client_info info = {.struct_size = sizeof info};
    assert_int_equal(fedrec_client_get_info(c, &info), FEDREC_OK);
    assert_int_equal(info.purchases, 300);
    fedrec_client_close(c);
    th_rm_rf(dir);
    free(dir);
}

/* ---- sync against the coordinator engine, in process over inproc:// ------- */

#define SYNC_ITEMS 12
#define SYNC_K 4
#define SYNC_CLIENTS 4

struct sync_thread {
    fedrec_client *c;
    fedrec_err err;
    fedrec_sync_result res;
    char msg[512];
};

static void *sync_one(void *arg)
{
    struct sync_thread *t = arg;
    t->res.struct_size = sizeof t->res;
    t->err = fedrec_client_sync(t->c, 60000, &t->res);
    snprintf(t->msg, sizeof t->msg, "%s", fedrec_errmsg());
    return NULL;
}

/* Opens the client of dir for url with round floors a cohort of 3 meets
 * (n >= 3, k >= 2, t >= 2, t >= k/2): a test deployment's, set by the app. */
static fedrec_err open_low_floors(fedrec_client **c, const char *dir, const char *url)
{
    fedrec_client_options o;
    fedrec_client_options_init(&o);
    o.key = KEY;
    o.coordinator_url = url;
    o.min_cohort = 3;
    o.min_neighbors = 2;
    o.min_threshold = 2;
    o.min_threshold_fraction = 0.5;
    return fedrec_client_open_with(c, dir, &o);
}

/* The round floors (issue 14): a coordinator running a round of cohort 3
 * (k = 2, t = 2) is refused by clients with the library's default floors
 * (n >= 10, k >= 8, t >= 6, t >= 2k/3) before they send anything secret:
 * sync returns FEDREC_OK with round_outcome FEDREC_ERR_REFUSED, the model is
 * still downloaded, the coordinator received zero update bytes from each,
 * the round aborts for want of adverts, and each client's ledger holds one
 * refusal naming the round, the reason, what was withheld and the round's
 * parameters. A client whose app lowered only the cohort floor is refused
 * on the next floor it fails (the neighbours). */
static void test_sync_refuses_below_floors(void **state)
{
    (void)state;
    const char *url = "inproc://fedrec-test-client-floors";
    static th_model model;
    th_model_init(&model, SYNC_ITEMS, SYNC_K, 37, 19, 0.02f, "C%03d");
    fedreci_coord_config cfg;
    const char *urls[1];
    th_coord_config(&cfg, urls, url);
    cfg.n_contexts = 32;
    cfg.cohort_size = 3;
    cfg.min_cohort = 3;
    for (int s = 0; s < 4; s++)
        cfg.stage_ms[s] = 30000;
    cfg.checkin_window_ms = 60000;
    cfg.seed = 5;
    cfg.max_rounds = 1;
    fedreci_coord_model m = th_model_start(&model, 1);
    fedreci_coord *coord = th_coord_start(&cfg, NULL, &m);
    th_shopper t[3];
    static const uint32_t cohort_only[3] = {3, 0, 0};
    for (int i = 0; i < 3; i++)
        th_shopper_open(&t[i], "client", url, KEY, i < 2 ? NULL : cohort_only, model.codes[i]);
    th_shoppers_sync(t, 3, 60000);
    assert_int_equal(fedreci_coord_wait(coord, 60000), FEDREC_OK);
    fedreci_coord_status st;
    fedreci_coord_get_status(coord, &st);
    assert_int_equal(st.rounds_completed, 0);
    assert_int_equal(st.rounds_aborted, 1);
    for (int i = 0; i < 3; i++) {
        if (t[i].err)
            fail_msg("client %d sync: %s: %s", i, fedrec_strerror(t[i].err), t[i].msg);
        assert_int_equal(t[i].res.round_outcome, FEDREC_ERR_REFUSED);
        assert_int_equal(t[i].res.took_part, 0);
        assert_true(t[i].res.model_updated);
        fedrec_client_info info = {.struct_size = sizeof info};
        assert_int_equal(fedrec_client_get_info(t[i].c, &info), FEDREC_OK);
        uint64_t upd = 99, tot = 0;
        assert_int_equal(fedreci_coord_client_bytes(coord, info.client_id, &upd, &tot), FEDREC_OK);
        assert_int_equal(upd, 0);
        size_t n = 0;
        assert_int_equal(fedrec_client_ledger_count(t[i].c, &n), FEDREC_OK);
        assert_int_equal(n, 1);
        fedrec_ledger_entry e = {.struct_size = sizeof e};
        assert_int_equal(fedrec_client_ledger_get(t[i].c, 0, &e), FEDREC_OK);
        assert_int_equal(e.kind, FEDREC_LEDGER_REFUSAL);
        assert_int_equal(e.refusal, FEDREC_REFUSAL_BELOW_FLOORS);
        assert_string_equal(fedrec_refusal_name(e.refusal), "below_floors");
        assert_int_equal(e.round_id, t[i].res.round_id);
        assert_int_equal(e.stage, 0);
        assert_int_equal(e.bytes_sent, 0);
        assert_string_equal(e.what, "key advertisement");
        assert_int_equal(e.cohort, 3);
        assert_int_equal(e.neighbors, 2);
        assert_int_equal(e.threshold, 2);
        assert_non_null(strstr(e.reason, i < 2 ? "cohort n = 3 is below the app's floor 10"
                                               : "neighbours k = 2 are below the app's floor 8"));
        /* an app built against the first layout reads the first fields only */
        struct {
            fedrec_ledger_entry e;
        } old;
        memset(&old, 0xAB, sizeof old);
        old.e.struct_size = (uint32_t)offsetof(fedrec_ledger_entry, kind);
        assert_int_equal(fedrec_client_ledger_get(t[i].c, 0, &old.e), FEDREC_OK);
        assert_int_equal(old.e.round_id, e.round_id);
        assert_int_equal(old.e.kind, 0xABABABABu);
    }
    fedreci_coord_destroy(coord);
    for (int i = 0; i < 3; i++)
        th_shopper_close(&t[i]);
}

/* Three opted-in clients and one opted-out client sync with a coordinator
 * running one round of cohort 3: the opted-in ones take part and their
 * ledgers add up to exactly the update bytes the coordinator received from
 * each; the opted-out one puts zero update bytes on the wire, records no
 * ledger entry, and still gets the model. */
static void test_sync_round_ledger_and_opt_out(void **state)
{
    const char *url = "inproc://fedrec-test-client-sync";
    static th_model model;
    th_model_init(&model, SYNC_ITEMS, SYNC_K, 37, 19, 0.02f, "C%03d");
    const char *const *codes = model.codes;
    fedreci_coord_config cfg;
    const char *urls[1];
    th_coord_config(&cfg, urls, url);
    cfg.n_contexts = 32;
    cfg.cohort_size = 3;
    cfg.min_cohort = 2;
    cfg.clip = 16;
    for (int s = 0; s < 4; s++)
        cfg.stage_ms[s] = 30000;
    cfg.checkin_window_ms = 60000;
    cfg.retry_after_ms = 50;
    cfg.seed = 5;
    cfg.max_rounds = 1;
    cfg.opt.n_train = 3;
    fedreci_coord_model m = th_model_start(&model, 1);
    fedreci_coord *coord = th_coord_start(&cfg, NULL, &m);

    char *dirs[SYNC_CLIENTS];
    struct sync_thread t[SYNC_CLIENTS];
    pthread_t th[SYNC_CLIENTS];
    for (int i = 0; i < SYNC_CLIENTS; i++) {
        dirs[i] = th_tmpdir("client");
        memset(&t[i], 0, sizeof t[i]);
        assert_int_equal(open_low_floors(&t[i].c, dirs[i], url), FEDREC_OK);
        assert_int_equal(fedrec_client_record(t[i].c, codes[i], 100, 2), FEDREC_OK);
        assert_int_equal(fedrec_client_record(t[i].c, codes[i + 4], 101, 1), FEDREC_OK);
        assert_int_equal(fedrec_client_record(t[i].c, "NOT-IN-CATALOG", 102, 1), FEDREC_OK);
    }
    assert_int_equal(fedrec_client_set_participation(t[3].c, 0), FEDREC_OK);
    for (int i = 0; i < SYNC_CLIENTS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, sync_one, &t[i]), 0);
    for (int i = 0; i < SYNC_CLIENTS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    assert_int_equal(fedreci_coord_wait(coord, 60000), FEDREC_OK);

    for (int i = 0; i < SYNC_CLIENTS; i++) {
        if (t[i].err)
            fail_msg("client %d sync: %s: %s", i, fedrec_strerror(t[i].err), t[i].msg);
        fedrec_client_info info = {.struct_size = sizeof info};
        assert_int_equal(fedrec_client_get_info(t[i].c, &info), FEDREC_OK);
        assert_true(t[i].res.model_updated);
        assert_true(info.model_version >= 1);
        assert_int_equal(info.model_items, SYNC_ITEMS);
        uint64_t upd = 99, tot = 0;
        assert_int_equal(fedreci_coord_client_bytes(coord, info.client_id, &upd, &tot), FEDREC_OK);
        size_t n = 0;
        assert_int_equal(fedrec_client_ledger_count(t[i].c, &n), FEDREC_OK);
        if (i == 3) {
            /* opted out: nothing of an update reached the coordinator */
            assert_int_equal(t[i].res.round_outcome, FEDREC_ERR_OPTED_OUT);
            assert_int_equal(t[i].res.took_part, 0);
            assert_int_equal(upd, 0);
            assert_int_equal(n, 0);
            assert_true(tot > 0); /* it did check in and download */
        } else {
            assert_int_equal(t[i].res.round_outcome, FEDREC_OK);
            assert_int_equal(t[i].res.took_part, 1);
            assert_true(t[i].res.round_id >= 1);
            /* one entry per upload, in stage order (stage 0: the advert and
             * the graph seed contribution; stage 1: the shares and the
             * (empty) complaints; stage 3: the consistency tags and the
             * unmask shares), adding up to exactly what the coordinator
             * received */
            static const uint32_t stage_of[7] = {0, 0, 1, 1, 2, 3, 3};
            assert_int_equal(n, 7);
            uint64_t sum = 0;
            for (size_t j = 0; j < n; j++) {
                fedrec_ledger_entry e = {.struct_size = sizeof e};
                assert_int_equal(fedrec_client_ledger_get(t[i].c, j, &e), FEDREC_OK);
                assert_int_equal(e.stage, stage_of[j]);
                assert_int_equal(e.round_id, t[i].res.round_id);
                assert_true(e.bytes_sent > 0);
                assert_true(e.time_unix_ms > 1600000000000);
                assert_true(e.what[0] != '\0');
                assert_int_equal(e.kind, FEDREC_LEDGER_UPLOAD);
                assert_int_equal(e.refusal, FEDREC_REFUSAL_NONE);
                assert_string_equal(e.reason, "");
                sum += e.bytes_sent;
            }
            assert_int_equal(sum, upd);
            /* the masked update carries d = 12 x 4 + 1 words */
            fedrec_ledger_entry e2 = {.struct_size = sizeof e2};
            assert_int_equal(fedrec_client_ledger_get(t[i].c, 4, &e2), FEDREC_OK);
            assert_true(e2.bytes_sent >= (SYNC_ITEMS * SYNC_K + 1) * 4);
        }
        /* every client can recommend on the device now */
        fedrec_recommendation rec[SYNC_ITEMS];
        uint32_t nr = 0;
        assert_int_equal(fedrec_client_recommend(t[i].c, SYNC_ITEMS, rec, &nr), FEDREC_OK);
        assert_int_equal(nr, SYNC_ITEMS - 2);
        for (uint32_t j = 0; j < nr; j++) {
            assert_string_not_equal(rec[j].item_code, codes[i]);
            assert_string_not_equal(rec[j].item_code, codes[i + 4]);
        }
    }
    fedreci_coord_status st;
    fedreci_coord_get_status(coord, &st);
    assert_int_equal(st.rounds_completed, 1);
    fedreci_coord_destroy(coord);

    /* The ledger survives a reopen. */
    fedrec_client_close(t[0].c);
    assert_int_equal(open_low_floors(&t[0].c, dirs[0], url), FEDREC_OK);
    size_t n = 0;
    assert_int_equal(fedrec_client_ledger_count(t[0].c, &n), FEDREC_OK);
    assert_int_equal(n, 7);
    for (int i = 0; i < SYNC_CLIENTS; i++) {
        assert_int_equal(fedrec_client_forget(t[i].c), FEDREC_OK);
        free(dirs[i]);
    }
}

static void test_sync_arguments(void **state)
{
    char *dir = th_tmpdir("client");
    fedrec_client *c = open_client(dir); /* no coordinator URL */
    fedrec_sync_result r = {.struct_size = sizeof r};
    assert_int_equal(fedrec_client_sync(c, 1000, &r), FEDREC_ERR_INVALID);
    assert_non_null(strstr(fedrec_errmsg(), "URL"));
    fedrec_client_close(c);
    assert_int_equal(fedrec_client_open(&c, dir, "inproc://fedrec-test-nobody", KEY), FEDREC_OK);
    assert_int_equal(fedrec_client_sync(c, 0, &r), FEDREC_ERR_INVALID);
    /* Nobody listening: a clear error within the deadline, nothing uploaded. */
    fedrec_err e = fedrec_client_sync(c, 300, &r);
    assert_true(e == FEDREC_ERR_TRANSPORT || e == FEDREC_ERR_TIMEOUT);
    size_t n = 9;
    assert_int_equal(fedrec_client_ledger_count(c, &n), FEDREC_OK);
    assert_int_equal(n, 0);
    fedrec_client_close(c);
    th_rm_rf(dir);
    free(dir);
}

/* Fail fast: a refused port is FEDREC_ERR_TRANSPORT naming the URL and the
 * reason, returned long before the 30 s deadline (the round driver alone
 * would retry until the deadline and report a timeout). */
static void test_sync_unreachable_fails_fast(void **state)
{
    (void)state;
    /* A port that was just free: bound, then closed, so connect is refused. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    char url[64];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%u", (unsigned)ntohs(a.sin_port));

    char *dir = th_tmpdir("client");
    fedrec_client *c = NULL;
    assert_int_equal(fedrec_client_open(&c, dir, url, KEY), FEDREC_OK);
    fedrec_sync_result sr = {.struct_size = sizeof sr};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(fedrec_client_sync(c, 30000, &sr), FEDREC_ERR_TRANSPORT);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_non_null(strstr(fedrec_errmsg(), url));
    assert_non_null(strstr(fedrec_errmsg(), "cannot reach the coordinator"));
    assert_non_null(strstr(fedrec_errmsg(), "refused"));
    /* Not the deadline: the call did not wait for it. */
    assert_true(t1.tv_sec - t0.tv_sec < 15);
    size_t n = 1;
    assert_int_equal(fedrec_client_ledger_count(c, &n), FEDREC_OK);
    assert_int_equal(n, 0);
    fedrec_client_close(c);
    th_rm_rf(dir);
    free(dir);
}

/* ABI: sizes as functions, growable structs with struct_size, options. */
static void test_abi_sizes_and_struct_size(void **state)
{
    (void)state;
    assert_int_equal(fedrec_client_store_key_bytes(), FEDREC_STORE_KEY_BYTES);
    assert_int_equal(fedrec_client_item_code_max(), FEDREC_ITEM_CODE_MAX);
    assert_int_equal(fedrec_client_ledger_what_max(), FEDREC_LEDGER_WHAT_MAX);
    assert_int_equal(fedrec_client_options_size(), sizeof(fedrec_client_options));
    assert_int_equal(fedrec_sync_result_size(), sizeof(fedrec_sync_result));
    assert_int_equal(fedrec_ledger_entry_size(), sizeof(fedrec_ledger_entry));
    assert_int_equal(fedrec_client_info_size(), sizeof(fedrec_client_info));
    assert_int_equal(fedrec_recommendation_size(), sizeof(fedrec_recommendation));

    char *dir = th_tmpdir("client");
    fedrec_client *c = NULL;
    assert_int_equal(fedrec_client_open(&c, dir, NULL, KEY), FEDREC_OK);
    assert_int_equal(fedrec_client_record(c, "A1", 1000, 2), FEDREC_OK);

    /* struct_size 0 (a caller that did not set it) is refused by name. */
    fedrec_client_info info;
    memset(&info, 0, sizeof info);
    assert_int_equal(fedrec_client_get_info(c, &info), FEDREC_ERR_INVALID);
    assert_non_null(strstr(fedrec_errmsg(), "info->struct_size is 0"));
    fedrec_ledger_entry le;
    memset(&le, 0, sizeof le);
    assert_int_equal(fedrec_client_ledger_get(c, 0, &le), FEDREC_ERR_INVALID);
    fedrec_sync_result sr;
    memset(&sr, 0, sizeof sr);
    assert_int_equal(fedrec_client_sync(c, 1000, &sr), FEDREC_ERR_INVALID);
    assert_non_null(strstr(fedrec_errmsg(), "result->struct_size is 0"));

    /* A caller built against a newer, larger struct: the library fills its
     * own fields, keeps the caller's struct_size and leaves the tail alone. */
    struct {
        fedrec_client_info info;
        uint8_t newer[16];
    } big;
    memset(&big, 0xAB, sizeof big);
    big.info.struct_size = sizeof big;
    assert_int_equal(fedrec_client_get_info(c, &big.info), FEDREC_OK);
    assert_int_equal(big.info.struct_size, sizeof big);
    assert_int_equal(big.info.purchases, 1);
    assert_int_equal(big.info.opted_in, 1);
    for (size_t i = 0; i < sizeof big.newer; i++)
        assert_int_equal(big.newer[i], 0xAB);
    fedrec_client_close(c);

    /* Options: exactly one of key and passphrase; unknown options refused. */
    fedrec_client_options o;
    memset(&o, 0x5A, sizeof o);
    fedrec_client_options_init(&o);
    assert_int_equal(o.struct_size, sizeof o);
    assert_null(o.key);
    assert_null(o.coordinator_url);
    assert_int_equal(fedrec_client_open_with(&c, dir, &o), FEDREC_ERR_INVALID);
    assert_non_null(strstr(fedrec_errmsg(), "exactly one of key and passphrase"));
    o.key = KEY;
    o.passphrase = "x";
    o.passphrase_len = 1;
    assert_int_equal(fedrec_client_open_with(&c, dir, &o), FEDREC_ERR_INVALID);
    o.passphrase = NULL;
    o.passphrase_len = 0;
    o.min_cohort = 1; /* a floor no round can be below: refused, named */
    assert_int_equal(fedrec_client_open_with(&c, dir, &o), FEDREC_ERR_INVALID);
    assert_non_null(strstr(fedrec_errmsg(), "min_cohort is 1"));
    o.min_cohort = 0;
    o.min_threshold_fraction = 0.4; /* t <= k/2 is never safe */
    assert_int_equal(fedrec_client_open_with(&c, dir, &o), FEDREC_ERR_INVALID);
    assert_non_null(strstr(fedrec_errmsg(), "min_threshold_fraction is 0.4"));
    o.min_threshold_fraction = 0;
    o.struct_size = 4;
    assert_int_equal(fedrec_client_open_with(&c, dir, &o), FEDREC_ERR_INVALID);
    struct {
        fedrec_client_options o;
        uint64_t newer;
    } bigo;
    memset(&bigo, 0, sizeof bigo);
    fedrec_client_options_init(&bigo.o);
    bigo.o.key = KEY;
    bigo.o.struct_size = sizeof bigo;
    bigo.newer = 1;
    assert_int_equal(fedrec_client_open_with(&c, dir, &bigo.o), FEDREC_ERR_UNSUPPORTED);
    bigo.newer = 0; /* zero: an option left at its default, accepted */
    bigo.o.coordinator_url = "tcp://127.0.0.1:1";
    bigo.o.tls_ca_file = "/nonexistent/ca.pem";
    assert_int_equal(fedrec_client_open_with(&c, dir, &bigo.o), FEDREC_ERR_IO);
    assert_non_null(strstr(fedrec_errmsg(), "/nonexistent/ca.pem"));
    bigo.o.tls_ca_file = NULL;
    c = NULL;
    assert_int_equal(fedrec_client_open_with(&c, dir, &bigo.o), FEDREC_OK);
    fedrec_client_info again = {.struct_size = sizeof again};
    assert_int_equal(fedrec_client_get_info(c, &again), FEDREC_OK);
    assert_int_equal(again.purchases, 1);
    fedrec_client_close(c);
    /* The wrong key through the options is the same BADKEY as open. */
    fedrec_client_options_init(&o);
    o.key = OTHER_KEY;
    assert_int_equal(fedrec_client_open_with(&c, dir, &o), FEDREC_ERR_BADKEY);
    th_rm_rf(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recommend_known_answer),
        cmocka_unit_test(test_recommend_skips_retired),
        cmocka_unit_test(test_local_update_gradient),
        cmocka_unit_test(test_ledger_and_consent_survive_reopen),
        cmocka_unit_test(test_kill9_record),
        cmocka_unit_test(test_store_errors_leave_bytes),
        cmocka_unit_test(test_lost_events_and_recover),
        cmocka_unit_test(test_forget),
        cmocka_unit_test(test_open_must_exist),
        cmocka_unit_test(test_threads_share_a_handle),
        cmocka_unit_test(test_sync_round_ledger_and_opt_out),
        cmocka_unit_test(test_sync_refuses_below_floors),
        cmocka_unit_test(test_sync_arguments),
        cmocka_unit_test(test_abi_sizes_and_struct_size),
        cmocka_unit_test(test_sync_unreachable_fails_fast),
    };
    return TH_RUN(tests);
}
