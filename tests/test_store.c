/* Tests of client/store: durability across kill -9, authentication of every
 * file, clear errors that leave the bytes alone, forget, recovery. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>

#include "client/store.h"
#include "client/store_codec.h"
#include "client/store_internal.h"
#include "harness.h"

static const uint8_t KEY_A[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
                                  17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
static const uint8_t KEY_B[32] = {32, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17,
                                  16, 15, 14, 13, 12, 11, 10, 9,  8,  7,  6,  5,  4,  3,  2,  1};

static fedreci_store *open_raw(const char *dir, const uint8_t *key)
{
    fedreci_store *s = NULL;
    fedrec_err e = fedreci_store_open(&s, dir, FEDRECI_KEY_RAW, key, 32, 0, 0);
    if (e)
        fail_msg("open %s: %s: %s", dir, fedrec_strerror(e), fedrec_errmsg());
    return s;
}

static void copy_file(const char *from, const char *to)
{
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    assert_non_null(a);
    assert_non_null(b);
    uint8_t buf[4096];
    size_t r;
    while ((r = fread(buf, 1, sizeof buf, a)) > 0)
        assert_int_equal(fwrite(buf, 1, r, b), r);
    fclose(a);
    fclose(b);
}

static off_t file_size(const char *p)
{
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    return st.st_size;
}

/* Opening with `key` must fail with `want`, the message must name `names`,
 * and the directory's bytes must be unchanged. */
static void expect_open_error(const char *dir, const uint8_t *key, fedrec_err want,
                              const char *names)
{
    uint8_t before[32], after[32];
    th_hash_dir(dir, before);
    fedreci_store *s = NULL;
    fedrec_err e = fedreci_store_open(&s, dir, FEDRECI_KEY_RAW, key, 32, 0, 0);
    assert_int_equal(e, want);
    assert_null(s);
    if (!strstr(fedrec_errmsg(), names))
        fail_msg("error message '%s' does not name '%s'", fedrec_errmsg(), names);
    th_hash_dir(dir, after);
    assert_memory_equal(before, after, 32);
}

static void test_roundtrip(void **state)
{
    char *dir = th_tmpdir("store");
    fedreci_store *s = open_raw(dir, KEY_A);
    assert_int_equal(fedreci_store_participation(s), 1);
    uint8_t pk[32];
    memcpy(pk, fedreci_store_identity_pk(s), 32);
    /* The identity key pair is a real Ed25519 pair. */
    uint8_t pk2[32];
    assert_int_equal(crypto_sign_ed25519_sk_to_pk(pk2, fedreci_store_identity_sk(s)), 0);
    assert_memory_equal(pk, pk2, 32);

    uint64_t seq = 0;
    assert_int_equal(fedreci_store_add_purchase(s, "85123A", 1291191960, 6, &seq), FEDREC_OK);
    assert_int_equal(seq, 1);
    assert_int_equal(fedreci_store_add_purchase(s, "71053", 1291191961, 2, &seq), FEDREC_OK);
    assert_int_equal(seq, 2);
    assert_int_equal(fedreci_store_set_participation(s, 0), FEDREC_OK);
    fedreci_ledger_rec l = {
        .time_ms = 1700000000123, .round = 7, .stage = 2, .bytes_sent = 467012, .clipped = 3};
    strcpy(l.what, "masked update");
    assert_int_equal(fedreci_store_add_ledger(s, &l), FEDREC_OK);
    float x[4] = {0.5f, -1.25f, 3.0f, 0.0f};
    assert_int_equal(fedreci_store_set_user_factors(s, x, 4), FEDREC_OK);
    float y[6] = {1, 2, 3, 4, 5, 6};
    float gram[4] = {35, 44, 44, 56};
    const char *codes[3] = {"A1", "B2", "C3"};
    assert_int_equal(fedreci_store_set_model(s, 42, 3, 2, y, gram, codes, NULL, 0), FEDREC_OK);
    /* a refused round (issue 14): goes to the log as a REC_LEDGER2 record */
    fedreci_ledger_rec rf = {
        .time_ms = 1700000000456, .round = 8, .kind = 1, .refusal = 1, .n = 3, .k = 2, .t = 2};
    strcpy(rf.what, "key advertisement");
    strcpy(rf.reason, "round 8 (n = 3, k = 2, t = 2): cohort n = 3 is below the app's floor 10");
    assert_int_equal(fedreci_store_add_ledger(s, &rf), FEDREC_OK);
    rf.kind = 2; /* not a kind: refused without a write */
    assert_int_equal(fedreci_store_add_ledger(s, &rf), FEDREC_ERR_INVALID);
    rf.kind = 1;
    /* Bad input is refused without a write. */
    assert_int_equal(fedreci_store_add_purchase(s, "", 1, 1, NULL), FEDREC_ERR_INVALID);
    assert_int_equal(fedreci_store_add_purchase(s, "A,B", 1, 1, NULL), FEDREC_ERR_INVALID);
    assert_int_equal(fedreci_store_add_purchase(s, "X", 1, 0, NULL), FEDREC_ERR_INVALID);
    assert_int_equal(
        fedreci_store_add_purchase(s, "0123456789012345678901234567890123", 1, 1, NULL),
        FEDREC_ERR_INVALID);
    assert_int_equal(fedreci_store_add_purchase(s, "22423", 1291191962, 1, &seq), FEDREC_OK);
    assert_int_equal(seq, 3);
    fedreci_store_close(s);

    /* A second open of a store that is open elsewhere is refused. */
    s = open_raw(dir, KEY_A);
    fedreci_store *s2 = NULL;
    assert_int_equal(fedreci_store_open(&s2, dir, FEDRECI_KEY_RAW, KEY_A, 32, 0, 0),
                     FEDREC_ERR_BUSY);
    assert_null(s2);
    size_t n = 0;
    const fedreci_store_purchase *p = fedreci_store_purchases(s, &n);
    assert_int_equal(n, 3);
    assert_string_equal(p[0].code, "85123A");
    assert_int_equal(p[0].time, 1291191960);
    assert_int_equal(p[0].quantity, 6);
    assert_string_equal(p[1].code, "71053");
    assert_string_equal(p[2].code, "22423");
    assert_int_equal(p[2].seq, 3);
    assert_int_equal(fedreci_store_participation(s), 0);
    assert_memory_equal(fedreci_store_identity_pk(s), pk, 32);
    const fedreci_ledger_rec *lr = fedreci_store_ledger(s, &n);
    assert_int_equal(n, 2);
    assert_int_equal(lr[0].time_ms, 1700000000123);
    assert_int_equal(lr[0].round, 7);
    assert_int_equal(lr[0].stage, 2);
    assert_int_equal(lr[0].bytes_sent, 467012);
    assert_int_equal(lr[0].clipped, 3);
    assert_string_equal(lr[0].what, "masked update");
    assert_int_equal(lr[0].kind, 0);
    assert_int_equal(lr[0].refusal, 0);
    assert_string_equal(lr[0].reason, "");
    /* the refusal, from the log, and again from a snapshot (state version 5) */
    for (int pass = 0; pass < 2; pass++) {
        lr = fedreci_store_ledger(s, &n);
        assert_int_equal(n, 2);
        assert_int_equal(lr[1].time_ms, 1700000000456);
        assert_int_equal(lr[1].round, 8);
        assert_int_equal(lr[1].kind, 1);
        assert_int_equal(lr[1].refusal, 1);
        assert_int_equal(lr[1].bytes_sent, 0);
        assert_int_equal(lr[1].n * 100 + lr[1].k * 10 + lr[1].t, 322);
        assert_string_equal(lr[1].what, "key advertisement");
        assert_string_equal(lr[1].reason, rf.reason);
        if (pass == 0) {
            assert_int_equal(fedreci_store_compact(s), FEDREC_OK);
            fedreci_store_close(s);
            s = open_raw(dir, KEY_A);
        }
    }
    uint32_t k = 0;
    const float *xr = fedreci_store_user_factors(s, &k);
    assert_int_equal(k, 4);
    assert_memory_equal(xr, x, sizeof x);
    const fedreci_store_model *m = fedreci_store_get_model(s);
    assert_non_null(m);
    assert_int_equal(m->version, 42);
    assert_int_equal(m->n_items, 3);
    assert_int_equal(m->k, 2);
    assert_memory_equal(m->y, y, sizeof y);
    assert_non_null(m->gram);
    assert_memory_equal(m->gram, gram, sizeof gram);
    assert_string_equal(m->codes[2], "C3");
    /* Sequence numbers continue after a reopen. */
    assert_int_equal(fedreci_store_add_purchase(s, "22423", 1291191999, 1, &seq), FEDREC_OK);
    assert_int_equal(seq, 4);
    fedreci_store_close(s);
    fedreci_store_close(NULL);
    th_rm_rf(dir);
    free(dir);
}

/* The writer of test_kill9_loses_nothing_acknowledged: appends C1, C2, ...
 * (codes mod 997) in its own process. */
struct kill9_writer {
    const char *dir;
    fedreci_store *s;
};

static int kill9_open(void *arg)
{
    struct kill9_writer *w = arg;
    return fedreci_store_open(&w->s, w->dir, FEDRECI_KEY_RAW, KEY_A, 32, 0, 0) != FEDREC_OK;
}

static int kill9_append(void *arg, uint64_t i)
{
    struct kill9_writer *w = arg;
    char code[32];
    snprintf(code, sizeof code, "C%u", (unsigned)(i % 997));
    uint64_t seq = 0;
    if (fedreci_store_add_purchase(w->s, code, 1300000000 + (int64_t)i, (uint32_t)(i % 7 + 1),
                                   &seq))
        return 1;
    return seq != i; /* the store's sequence number is the acknowledgement */
}

/* kill -9 in the middle of a stream of appends loses no acknowledged event. */
/* The differentially private rounds of the ledger (REC_DP): appended as log
 * events, then carried by a compacted snapshot (state version 4), every
 * field kept bit for bit; a refused round keeps its reason. */
static void test_dp_ledger_roundtrip(void **state)
{
    (void)state;
    char *dir = th_tmpdir("store-dp");
    fedreci_store *s = open_raw(dir, KEY_A);
    fedreci_dp_ledger_rec a = {.time_ms = 1700000000001,
                               .round = 3,
                               .min_survivors = 40,
                               .eps_round = 2.728004,
                               .eps_cumulative = 3.999927,
                               .delta = 1e-6,
                               .mu = 4.25e9,
                               .l1 = 8417.5,
                               .l2 = 8417.25,
                               .noise_var = 1.0625e8,
                               .l2_bound = 3.1622776601683795,
                               .scale = 2590.4,
                               .reason = ""};
    fedreci_dp_ledger_rec b = a;
    b.round = 4;
    b.refused = 1;
    b.eps_round = 0;
    snprintf(b.reason, sizeof b.reason, "noise too small for the claimed epsilon");
    assert_int_equal(fedreci_store_add_dp(s, &a), FEDREC_OK);
    assert_int_equal(fedreci_store_add_dp(s, &b), FEDREC_OK);
    b.refused = 2;
    assert_int_equal(fedreci_store_add_dp(s, &b), FEDREC_ERR_INVALID);
    b.refused = 1;
    fedreci_store_close(s);
    for (int pass = 0; pass < 2; pass++) {
        s = open_raw(dir, KEY_A); /* pass 0: from the log; pass 1: from the snapshot */
        size_t n = 0;
        const fedreci_dp_ledger_rec *r = fedreci_store_dp(s, &n);
        assert_int_equal(n, 2);
        assert_memory_equal(&r[0], &a, sizeof a);
        assert_memory_equal(&r[1], &b, sizeof b);
        if (pass == 0)
            assert_int_equal(fedreci_store_compact(s), FEDREC_OK);
        fedreci_store_close(s);
    }
    th_rm_rf(dir);
    free(dir);
}

static void test_kill9_loses_nothing_acknowledged(void **state)
{
    char *dir = th_tmpdir("store");
    fedreci_store_close(open_raw(dir, KEY_A)); /* create before forking */
    /* 300 acknowledgements, then the writer is killed mid-stream */
    struct kill9_writer wr = {dir, NULL};
    uint64_t acked = th_kill9_writer(kill9_open, kill9_append, &wr, 300);

    fedreci_store *s = open_raw(dir, KEY_A);
    size_t n = 0;
    const fedreci_store_purchase *p = fedreci_store_purchases(s, &n);
    /* Every acknowledged event is there, in order, intact; at most the one
     * being appended when the signal hit may also be there. */
    assert_true(n >= acked);
    assert_true(n <= acked + 1);
    for (uint64_t i = 1; i <= n; i++) {
        char code[32];
        snprintf(code, sizeof code, "C%u", (unsigned)(i % 997));
        assert_int_equal(p[i - 1].seq, i);
        assert_string_equal(p[i - 1].code, code);
        assert_int_equal(p[i - 1].time, 1300000000 + (int64_t)i);
        assert_int_equal(p[i - 1].quantity, i % 7 + 1);
    }
    fedreci_store_close(s);
    th_rm_rf(dir);
    free(dir);
}

static void make_store_with_events(const char *dir, const uint8_t *key)
{
    fedreci_store *s = open_raw(dir, key);
    assert_int_equal(fedreci_store_add_purchase(s, "85123A", 1291191960, 6, NULL), FEDREC_OK);
    assert_int_equal(fedreci_store_add_purchase(s, "71053", 1291191961, 2, NULL), FEDREC_OK);
    fedreci_store_close(s);
    /* Leave events in the log too (not only in the snapshot). */
    s = open_raw(dir, key);
    assert_int_equal(fedreci_store_add_purchase(s, "22752", 1291191962, 1, NULL), FEDREC_OK);
    assert_int_equal(fedreci_store_add_purchase(s, "21730", 1291191963, 3, NULL), FEDREC_OK);
    fedreci_store_close(s);
}

static void test_wrong_key(void **state)
{
    char *dir = th_tmpdir("store");
    make_store_with_events(dir, KEY_A);
    expect_open_error(dir, KEY_B, FEDREC_ERR_BADKEY, "meta");
    /* A passphrase on a raw-key store is a key error too. */
    fedreci_store *s = NULL;
    assert_int_equal(
        fedreci_store_open(&s, dir, FEDRECI_KEY_PASSPHRASE, (const uint8_t *)"hunter2", 7, 0, 0),
        FEDREC_ERR_BADKEY);
    /* The right key still opens it, with everything there. */
    s = open_raw(dir, KEY_A);
    size_t n;
    fedreci_store_purchases(s, &n);
    assert_int_equal(n, 4);
    fedreci_store_close(s);
    th_rm_rf(dir);
    free(dir);
}

static void test_passphrase(void **state)
{
    char *dir = th_tmpdir("store");
    const char *pass = "correct horse battery staple";
    fedreci_store *s = NULL;
    assert_int_equal(fedreci_store_open(&s, dir, FEDRECI_KEY_PASSPHRASE, (const uint8_t *)pass,
                                        strlen(pass), crypto_pwhash_OPSLIMIT_MIN,
                                        crypto_pwhash_MEMLIMIT_MIN),
                     FEDREC_OK);
    assert_int_equal(fedreci_store_add_purchase(s, "85123A", 1291191960, 6, NULL), FEDREC_OK);
    fedreci_store_close(s);
    uint8_t before[32], after[32];
    th_hash_dir(dir, before);
    s = NULL;
    assert_int_equal(fedreci_store_open(&s, dir, FEDRECI_KEY_PASSPHRASE,
                                        (const uint8_t *)"wrong horse", 11, 0, 0),
                     FEDREC_ERR_BADKEY);
    assert_null(s);
    assert_int_equal(fedreci_store_open(&s, dir, FEDRECI_KEY_RAW, KEY_A, 32, 0, 0),
                     FEDREC_ERR_BADKEY);
    th_hash_dir(dir, after);
    assert_memory_equal(before, after, 32);
    /* The limits stored at creation are used, not the ones passed later. */
    assert_int_equal(fedreci_store_open(&s, dir, FEDRECI_KEY_PASSPHRASE, (const uint8_t *)pass,
                                        strlen(pass), 0, 0),
                     FEDREC_OK);
    size_t n;
    fedreci_store_purchases(s, &n);
    assert_int_equal(n, 1);
    fedreci_store_close(s);
    th_rm_rf(dir);
    free(dir);
}

static void test_truncated_and_damaged(void **state)
{
    char *dir = th_tmpdir("store");
    make_store_with_events(dir, KEY_A);
    uint8_t orig[32];
    th_hash_dir(dir, orig);
    char save[4096];
    snprintf(save, sizeof save, "%s.snapshot", dir);
    copy_file(th_path(dir, "snapshot"), save);
    off_t sz = file_size(th_path(dir, "snapshot"));

    /* Truncated snapshot: the final message is missing. */
    assert_int_equal(truncate(th_path(dir, "snapshot"), sz - 1), 0);
    expect_open_error(dir, KEY_A, FEDREC_ERR_CORRUPT, "snapshot");
    assert_int_equal(truncate(th_path(dir, "snapshot"), sz / 2), 0);
    expect_open_error(dir, KEY_A, FEDREC_ERR_CORRUPT, "snapshot");
    assert_int_equal(truncate(th_path(dir, "snapshot"), 0), 0);
    expect_open_error(dir, KEY_A, FEDREC_ERR_CORRUPT, "snapshot");

    /* One flipped bit inside the ciphertext. */
    copy_file(save, th_path(dir, "snapshot"));
    int fd = open(th_path(dir, "snapshot"), O_RDWR);
    uint8_t b;
    assert_int_equal(pread(fd, &b, 1, sz - 20), 1);
    b ^= 0x10;
    assert_int_equal(pwrite(fd, &b, 1, sz - 20), 1);
    close(fd);
    expect_open_error(dir, KEY_A, FEDREC_ERR_CORRUPT, "snapshot");

    /* A damaged header checksum in meta. */
    copy_file(save, th_path(dir, "snapshot"));
    snprintf(save, sizeof save, "%s.meta", dir);
    copy_file(th_path(dir, "meta"), save);
    fd = open(th_path(dir, "meta"), O_RDWR);
    assert_int_equal(pread(fd, &b, 1, 50), 1);
    b ^= 1;
    assert_int_equal(pwrite(fd, &b, 1, 50), 1);
    close(fd);
    expect_open_error(dir, KEY_A, FEDREC_ERR_CORRUPT, "meta");
    copy_file(save, th_path(dir, "meta"));
    unlink(save);
    snprintf(save, sizeof save, "%s.snapshot", dir);
    unlink(save);

    /* Back to the original bytes: it opens and nothing was lost. */
    uint8_t now[32];
    th_hash_dir(dir, now);
    assert_memory_equal(now, orig, 32);
    fedreci_store *s = open_raw(dir, KEY_A);
    size_t n;
    fedreci_store_purchases(s, &n);
    assert_int_equal(n, 4);
    /* Events in the log: a flipped bit in a complete frame is corruption. */
    assert_int_equal(fedreci_store_add_purchase(s, "A", 1, 1, NULL), FEDREC_OK);
    assert_int_equal(fedreci_store_add_purchase(s, "B", 2, 1, NULL), FEDREC_OK);
    fedreci_store_close(s);
    off_t lsz = file_size(th_path(dir, "log"));
    fd = open(th_path(dir, "log"), O_RDWR);
    /* The log header (prefix, stream header, two counter slots) is 104
     * bytes; byte 114 is inside the first frame's ciphertext. */
    assert_int_equal(pread(fd, &b, 1, 104 + 10), 1);
    b ^= 0x80;
    assert_int_equal(pwrite(fd, &b, 1, 104 + 10), 1);
    close(fd);
    assert_true(lsz > 114);
    expect_open_error(dir, KEY_A, FEDREC_ERR_CORRUPT, "log");
    th_rm_rf(dir);
    free(dir);
}

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    assert_true(n >= 0);
    assert_int_equal(fseek(f, 0, SEEK_SET), 0);
    uint8_t *b = malloc((size_t)n + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

static void spill(const char *path, const uint8_t *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, n, f), n);
    fclose(f);
}

/* A torn last frame is an append that never returned: a crash inside the
 * write of event 6 leaves the log of 5 committed events (its counter says 5)
 * followed by part of frame 6. It opens with the 5, and the next event
 * starts a new generation that holds them. */
static void test_torn_tail_recovers(void **state)
{
    char *dir = th_tmpdir("store");
    fedreci_store *s = open_raw(dir, KEY_A);
    for (int i = 0; i < 5; i++)
        assert_int_equal(fedreci_store_add_purchase(s, "85123A", 1000 + i, 1, NULL), FEDREC_OK);
    size_t n5 = 0, n6 = 0;
    uint8_t *log5 = slurp(th_path(dir, "log"), &n5);
    assert_int_equal(fedreci_store_add_purchase(s, "85123A", 1005, 1, NULL), FEDREC_OK);
    fedreci_store_close(s);
    uint8_t *log6 = slurp(th_path(dir, "log"), &n6);
    assert_true(n6 > n5 + 7);
    /* log5's bytes (counter 5), then all but the last 7 bytes of frame 6. */
    uint8_t *torn = malloc(n6);
    assert_non_null(torn);
    memcpy(torn, log5, n5);
    memcpy(torn + n5, log6 + n5, n6 - n5 - 7);
    spill(th_path(dir, "log"), torn, n6 - 7);
    s = open_raw(dir, KEY_A);
    assert_int_equal(fedreci_store_lost(s), 0);
    size_t n;
    const fedreci_store_purchase *p = fedreci_store_purchases(s, &n);
    assert_int_equal(n, 5);
    assert_int_equal(p[4].time, 1004);
    assert_int_equal(fedreci_store_add_purchase(s, "X", 2000, 1, NULL), FEDREC_OK);
    fedreci_store_close(s);
    s = open_raw(dir, KEY_A);
    p = fedreci_store_purchases(s, &n);
    assert_int_equal(n, 6);
    assert_string_equal(p[5].code, "X");
    fedreci_store_close(s);
    /* A zero-filled tail (power loss after the size grew) is torn too. */
    int fd = open(th_path(dir, "log"), O_WRONLY | O_APPEND);
    uint8_t zeros[100] = {0};
    assert_int_equal(write(fd, zeros, sizeof zeros), (ssize_t)sizeof zeros);
    close(fd);
    s = open_raw(dir, KEY_A);
    p = fedreci_store_purchases(s, &n);
    assert_int_equal(n, 6);
    assert_string_equal(p[5].code, "X");
    assert_int_equal(fedreci_store_add_purchase(s, "Y", 2001, 1, NULL), FEDREC_OK);
    fedreci_store_close(s);
    s = open_raw(dir, KEY_A);
    p = fedreci_store_purchases(s, &n);
    assert_int_equal(n, 7);
    assert_string_equal(p[6].code, "Y");
    fedreci_store_close(s);
    free(torn);
    free(log5);
    free(log6);
    th_rm_rf(dir);
    free(dir);
}

/* A log that lost committed events (cut at a frame boundary, or in the
 * middle) is refused with the number missing, leaving the bytes alone; the
 * app can keep what is left. */
static void test_lost_tail_is_an_error(void **state)
{
    char *dir = th_tmpdir("store");
    fedreci_store *s = open_raw(dir, KEY_A);
    off_t end[11];
    end[0] = file_size(th_path(dir, "log"));
    for (int i = 1; i <= 10; i++) {
        assert_int_equal(fedreci_store_add_purchase(s, "85123A", 1000 + i, 1, NULL), FEDREC_OK);
        end[i] = file_size(th_path(dir, "log"));
    }
    fedreci_store_close(s);
    char save[4096];
    snprintf(save, sizeof save, "%s.log", dir);
    copy_file(th_path(dir, "log"), save);

    /* Cut at the boundary after event 8: 2 committed events are missing. */
    assert_int_equal(truncate(th_path(dir, "log"), end[8]), 0);
    expect_open_error(dir, KEY_A, FEDREC_ERR_LOST_EVENTS, "log: 2 committed events are missing");
    assert_non_null(strstr(fedrec_errmsg(), "holds 8 of the 10"));
    /* Cut in the middle of frame 4 ("a log cut in half"): 7 are missing,
     * not a torn write. */
    copy_file(save, th_path(dir, "log"));
    assert_int_equal(truncate(th_path(dir, "log"), end[3] + (end[4] - end[3]) / 2), 0);
    expect_open_error(dir, KEY_A, FEDREC_ERR_LOST_EVENTS, "log: 7 committed events are missing");
    /* Every event cut: 10 missing. */
    assert_int_equal(truncate(th_path(dir, "log"), end[0]), 0);
    expect_open_error(dir, KEY_A, FEDREC_ERR_LOST_EVENTS, "10 committed events are missing");

    /* Keeping what is left: the 8 events before the cut. */
    copy_file(save, th_path(dir, "log"));
    assert_int_equal(truncate(th_path(dir, "log"), end[8]), 0);
    uint8_t before[32], after[32];
    th_hash_dir(dir, before);
    s = NULL;
    assert_int_equal(fedreci_store_open_flags(&s, dir, FEDRECI_KEY_RAW, KEY_A, 32, 0, 0,
                                              FEDRECI_OPEN_KEEP_PARTIAL),
                     FEDREC_OK);
    assert_int_equal(fedreci_store_lost(s), 2);
    size_t n;
    const fedreci_store_purchase *p = fedreci_store_purchases(s, &n);
    assert_int_equal(n, 8);
    assert_int_equal(p[7].time, 1008);
    th_hash_dir(dir, after);
    assert_memory_equal(before, after, 32); /* still nothing written */
    /* The next update makes the loss permanent (a new generation). */
    uint64_t seq = 0;
    assert_int_equal(fedreci_store_add_purchase(s, "X", 2000, 1, &seq), FEDREC_OK);
    assert_int_equal(seq, 9);
    fedreci_store_close(s);
    s = open_raw(dir, KEY_A);
    assert_int_equal(fedreci_store_lost(s), 0);
    p = fedreci_store_purchases(s, &n);
    assert_int_equal(n, 9);
    assert_string_equal(p[8].code, "X");
    fedreci_store_close(s);
    unlink(save);
    th_rm_rf(dir);
    free(dir);
}

typedef struct file_stamp {
    struct timespec mtime, ctime;
    off_t size;
} file_stamp;

static void stamp(const char *dir, file_stamp st[3])
{
    static const char *const names[3] = {"meta", "snapshot", "log"};
    for (int i = 0; i < 3; i++) {
        struct stat sb;
        assert_int_equal(stat(th_path(dir, names[i]), &sb), 0);
        st[i].mtime = sb.st_mtim;
        st[i].ctime = sb.st_ctim;
        st[i].size = sb.st_size;
    }
}

static void assert_stamps_equal(const file_stamp *a, const file_stamp *b)
{
    for (int i = 0; i < 3; i++) {
        assert_int_equal(a[i].mtime.tv_sec, b[i].mtime.tv_sec);
        assert_int_equal(a[i].mtime.tv_nsec, b[i].mtime.tv_nsec);
        assert_int_equal(a[i].ctime.tv_sec, b[i].ctime.tv_sec);
        assert_int_equal(a[i].ctime.tv_nsec, b[i].ctime.tv_nsec);
        assert_int_equal(a[i].size, b[i].size);
    }
}

/* Opening, reading and closing a store writes nothing: same bytes, same
 * modification and change times. An event then goes into the same log (the
 * snapshot is not rewritten) and everything reads back. */
static void test_open_writes_nothing(void **state)
{
    char *dir = th_tmpdir("store");
    make_store_with_events(dir, KEY_A);
    uint8_t h0[32], h1[32];
    file_stamp t0[3], t1[3];
    th_hash_dir(dir, h0);
    stamp(dir, t0);
    for (int round = 0; round < 2; round++) {
        fedreci_store *s = open_raw(dir, KEY_A);
        size_t n;
        fedreci_store_purchases(s, &n);
        assert_int_equal(n, 4);
        assert_int_equal(fedreci_store_participation(s), 1);
        fedreci_store_close(s);
    }
    th_hash_dir(dir, h1);
    stamp(dir, t1);
    assert_memory_equal(h0, h1, 32);
    assert_stamps_equal(t0, t1);

    /* Appending continues the log: the snapshot and meta keep their bytes. */
    size_t sn0, sn1;
    uint8_t *snap0 = slurp(th_path(dir, "snapshot"), &sn0);
    fedreci_store *s = open_raw(dir, KEY_A);
    assert_int_equal(fedreci_store_add_purchase(s, "22423", 1291191970, 4, NULL), FEDREC_OK);
    assert_int_equal(fedreci_store_set_participation(s, 0), FEDREC_OK);
    fedreci_store_close(s);
    uint8_t *snap1 = slurp(th_path(dir, "snapshot"), &sn1);
    assert_int_equal(sn0, sn1);
    assert_memory_equal(snap0, snap1, sn0);
    s = open_raw(dir, KEY_A);
    size_t n;
    const fedreci_store_purchase *p = fedreci_store_purchases(s, &n);
    assert_int_equal(n, 5);
    assert_string_equal(p[4].code, "22423");
    assert_int_equal(p[4].quantity, 4);
    assert_int_equal(p[4].seq, 5);
    assert_int_equal(fedreci_store_participation(s), 0);
    fedreci_store_close(s);
    free(snap0);
    free(snap1);
    th_rm_rf(dir);
    free(dir);
}

/* A store written by the previous format (log "FRLOG001", no counter; made
 * by fedrec-client import before this change, key 01 02 .. 20) opens
 * without being written, and its first update migrates it. */
static void test_format1_store_migrates(void **state)
{
    char *dir = th_tmpdir("store");
    static const char *const names[3] = {"meta", "snapshot", "log"};
    for (int i = 0; i < 3; i++) {
        char from[4096];
        snprintf(from, sizeof from, "%s/store_format1/%s", FEDREC_VECTORS_DIR, names[i]);
        copy_file(from, th_path(dir, names[i]));
    }
    uint8_t h0[32], h1[32];
    th_hash_dir(dir, h0);
    fedreci_store *s = open_raw(dir, KEY_A);
    size_t n;
    const fedreci_store_purchase *p = fedreci_store_purchases(s, &n);
    assert_int_equal(n, 3);
    assert_string_equal(p[0].code, "85123A");
    assert_int_equal(p[0].time, 1291191960);
    assert_int_equal(p[0].quantity, 6);
    assert_string_equal(p[1].code, "71053");
    assert_int_equal(p[1].quantity, 2);
    assert_string_equal(p[2].code, "22752");
    assert_int_equal(p[2].time, 1291192080);
    fedreci_store_close(s);
    th_hash_dir(dir, h1);
    assert_memory_equal(h0, h1, 32);
    /* The first update writes the new format. */
    s = open_raw(dir, KEY_A);
    assert_int_equal(fedreci_store_add_purchase(s, "21730", 1291192100, 1, NULL), FEDREC_OK);
    fedreci_store_close(s);
    size_t ln;
    uint8_t *log = slurp(th_path(dir, "log"), &ln);
    assert_true(ln > 8);
    assert_memory_equal(log, "FRLOG002", 8);
    free(log);
    s = open_raw(dir, KEY_A);
    p = fedreci_store_purchases(s, &n);
    assert_int_equal(n, 4);
    assert_string_equal(p[3].code, "21730");
    assert_int_equal(p[3].seq, 4);
    fedreci_store_close(s);
    th_rm_rf(dir);
    free(dir);
}

/* An empty in-memory store for the snapshot decoder (as fuzz_store_records
 * makes one); freed by free_bare. */
static fedreci_store *bare_store(void)
{
    fedreci_store *t = calloc(1, sizeof *t);
    assert_non_null(t);
    t->keys = sodium_malloc(sizeof *t->keys);
    assert_non_null(t->keys);
    sodium_memzero(t->keys, sizeof *t->keys);
    return t;
}

static void free_bare(fedreci_store *t)
{
    fedreci_store_state_free(t);
    sodium_free(t->keys);
    free(t);
}

/* The stored model's checksum (what a sync binds into its signed advert) is
 * computed once, when the model is written, and kept in the snapshot: a
 * reopen reads it (a snapshot plaintext whose checksum bytes were changed
 * decodes to the changed bytes: taken, never recomputed); a version 5
 * snapshot (no checksum) has it computed at open, and a new model replaces
 * it. fedrec-client sync used to hash the whole model at every sync. */
static void test_model_checksum_kept(void **state)
{
    (void)state;
    char *dir = th_tmpdir("store");
    fedreci_store *s = open_raw(dir, KEY_A);
    float y[6] = {1, 2, 3, 4, 5, 6}, y2[6] = {1, 2, 3, 4, 5, 7};
    const char *codes[3] = {"A1", "B2", "C3"};
    assert_int_equal(fedreci_store_set_model(s, 42, 3, 2, y, NULL, codes, NULL, 0), FEDREC_OK);
    uint8_t want[32], want2[32];
    crypto_generichash(want, 32, (const unsigned char *)y, sizeof y, NULL, 0);
    crypto_generichash(want2, 32, (const unsigned char *)y2, sizeof y2, NULL, 0);
    assert_memory_equal(fedreci_store_get_model(s)->checksum, want, 32);
    fedreci_store_close(s);
    s = open_raw(dir, KEY_A);
    assert_memory_equal(fedreci_store_get_model(s)->checksum, want, 32);
    /* the snapshot's plaintext ends with the model's retired rows (u32 0),
       its checksum and the DP rounds (u32 0) */
    fedreci_wbuf b = {0};
    fedreci_store_encode_state(s, &b);
    assert_false(b.oom);
    assert_true(b.len > 40);
    assert_int_equal(b.p[0], 6); /* state version 6, little-endian */
    assert_memory_equal(b.p + b.len - 36, want, 32);
    b.p[b.len - 36] ^= 0xff;
    fedreci_store *t = bare_store();
    assert_int_equal(fedreci_store_decode_state(t, b.p, b.len), FEDREC_OK);
    assert_int_equal(t->model->checksum[0], want[0] ^ 0xff);
    assert_memory_equal(t->model->checksum + 1, want + 1, 31);
    free_bare(t);
    /* the same state as version 5: no checksum bytes; computed */
    memmove(b.p + b.len - 36, b.p + b.len - 4, 4);
    b.p[0] = 5;
    t = bare_store();
    assert_int_equal(fedreci_store_decode_state(t, b.p, b.len - 32), FEDREC_OK);
    assert_memory_equal(t->model->checksum, want, 32);
    free_bare(t);
    fedreci_wb_free(&b);
    /* a new model: its own checksum, kept across a reopen */
    assert_int_equal(fedreci_store_set_model(s, 43, 3, 2, y2, NULL, codes, NULL, 0), FEDREC_OK);
    assert_memory_equal(fedreci_store_get_model(s)->checksum, want2, 32);
    fedreci_store_close(s);
    s = open_raw(dir, KEY_A);
    assert_memory_equal(fedreci_store_get_model(s)->checksum, want2, 32);
    fedreci_store_close(s);
    th_rm_rf(dir);
    free(dir);
}

static void test_other_store(void **state)
{
    char *a = th_tmpdir("store"), *b = th_tmpdir("store");
    make_store_with_events(a, KEY_A);
    make_store_with_events(b, KEY_A); /* same app key, a different store */
    char save[4096];
    snprintf(save, sizeof save, "%s.keep", a);
    copy_file(th_path(a, "snapshot"), save);
    copy_file(th_path(b, "snapshot"), th_path(a, "snapshot"));
    expect_open_error(a, KEY_A, FEDREC_ERR_CORRUPT, "another store");
    copy_file(save, th_path(a, "snapshot"));
    copy_file(th_path(a, "log"), save);
    copy_file(th_path(b, "log"), th_path(a, "log"));
    expect_open_error(a, KEY_A, FEDREC_ERR_CORRUPT, "another store");
    copy_file(save, th_path(a, "log"));
    unlink(save);
    /* The whole of another client's store under a different key. */
    char *c = th_tmpdir("store");
    make_store_with_events(c, KEY_B);
    expect_open_error(c, KEY_A, FEDREC_ERR_BADKEY, "wrong key");
    fedreci_store_close(open_raw(a, KEY_A));
    th_rm_rf(a);
    th_rm_rf(b);
    th_rm_rf(c);
    free(a);
    free(b);
    free(c);
}

static void test_forget_leaves_nothing(void **state)
{
    char *dir = th_tmpdir("store");
    make_store_with_events(dir, KEY_A);
    fedreci_store *s = open_raw(dir, KEY_A);
    float y[4] = {1, 2, 3, 4};
    const char *codes[2] = {"A", "B"};
    assert_int_equal(fedreci_store_set_model(s, 1, 2, 2, y, NULL, codes, NULL, 0), FEDREC_OK);
    assert_int_equal(fedreci_store_forget(s), FEDREC_OK);
    struct stat st;
    assert_int_equal(stat(dir, &st), -1);
    assert_int_equal(errno, ENOENT);

    /* With an app file in the directory, only the store's files go. */
    assert_int_equal(mkdir(dir, 0700), 0);
    FILE *f = fopen(th_path(dir, "app-settings"), "w");
    assert_non_null(f);
    fputs("theme=dark\n", f);
    fclose(f);
    make_store_with_events(dir, KEY_A);
    s = open_raw(dir, KEY_A);
    assert_int_equal(fedreci_store_forget(s), FEDREC_OK);
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    int others = 0;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            others += strcmp(e->d_name, "app-settings") != 0 ? 100 : 1;
    closedir(d);
    assert_int_equal(others, 1);
    /* A new store can be made in its place, with a new identity. */
    s = open_raw(dir, KEY_A);
    size_t n;
    fedreci_store_purchases(s, &n);
    assert_int_equal(n, 0);
    fedreci_store_close(s);
    th_rm_rf(dir);
    free(dir);
}

static void test_compact_keeps_state(void **state)
{
    char *dir = th_tmpdir("store");
    fedreci_store *s = open_raw(dir, KEY_A);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(fedreci_store_add_purchase(s, "P", i, 1, NULL), FEDREC_OK);
        if (i == 4)
            assert_int_equal(fedreci_store_compact(s), FEDREC_OK);
    }
    fedreci_ledger_rec l = {.round = 1, .bytes_sent = 10};
    strcpy(l.what, "keys");
    assert_int_equal(fedreci_store_add_ledger(s, &l), FEDREC_OK);
    fedreci_store_close(s);
    s = open_raw(dir, KEY_A);
    size_t n;
    const fedreci_store_purchase *p = fedreci_store_purchases(s, &n);
    assert_int_equal(n, 10);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(p[i].seq, i + 1);
        assert_int_equal(p[i].time, (int64_t)i);
    }
    fedreci_store_ledger(s, &n);
    assert_int_equal(n, 1);
    fedreci_store_close(s);
    th_rm_rf(dir);
    free(dir);
}

/* Deleting the log rolls back every event since the last snapshot: refused,
 * naming the log, with the other files untouched; putting it back opens. */
static void test_missing_log_refused(void **state)
{
    char *dir = th_tmpdir("store");
    make_store_with_events(dir, KEY_A); /* 2 events in the snapshot, 2 in the log */
    fedreci_store *s = open_raw(dir, KEY_A);
    assert_int_equal(fedreci_store_set_participation(s, 0), FEDREC_OK);
    assert_int_equal(fedreci_store_add_purchase(s, "22423", 1291191964, 4, NULL), FEDREC_OK);
    fedreci_store_close(s);
    char save[4096];
    snprintf(save, sizeof save, "%s.log", dir);
    copy_file(th_path(dir, "log"), save);
    assert_int_equal(unlink(th_path(dir, "log")), 0);
    expect_open_error(dir, KEY_A, FEDREC_ERR_CORRUPT, "/log: missing");
    /* Refused again: the failed open wrote nothing (no new log either). */
    expect_open_error(dir, KEY_A, FEDREC_ERR_CORRUPT, "/log: missing");
    struct stat st;
    assert_int_equal(stat(th_path(dir, "log"), &st), -1);
    copy_file(save, th_path(dir, "log"));
    unlink(save);
    s = open_raw(dir, KEY_A);
    size_t n;
    const fedreci_store_purchase *p = fedreci_store_purchases(s, &n);
    assert_int_equal(n, 5);
    assert_string_equal(p[4].code, "22423");
    assert_int_equal(fedreci_store_participation(s), 0);
    fedreci_store_close(s);

    /* A store just created and closed, with no event: its log is required
     * too (a later session's events would go there). */
    th_rm_rf(dir);
    fedreci_store_close(open_raw(dir, KEY_A));
    fedreci_store_close(open_raw(dir, KEY_A)); /* reopens */
    assert_int_equal(unlink(th_path(dir, "log")), 0);
    expect_open_error(dir, KEY_A, FEDREC_ERR_CORRUPT, "/log: missing");

    /* Just after an explicit compaction (the log holds no event yet). */
    th_rm_rf(dir);
    s = open_raw(dir, KEY_A);
    assert_int_equal(fedreci_store_add_purchase(s, "A", 1, 1, NULL), FEDREC_OK);
    assert_int_equal(fedreci_store_compact(s), FEDREC_OK);
    fedreci_store_close(s);
    s = open_raw(dir, KEY_A);
    fedreci_store_purchases(s, &n);
    assert_int_equal(n, 1);
    fedreci_store_close(s);
    assert_int_equal(unlink(th_path(dir, "log")), 0);
    expect_open_error(dir, KEY_A, FEDREC_ERR_CORRUPT, "/log: missing");
    th_rm_rf(dir);
    free(dir);
}

/* The crash points of a compaction, made real by failing the new log's
 * creation (a directory named log.tmp makes its open() fail): the new
 * snapshot is in place, the new log is not. */
static void test_compaction_crash_points_open(void **state)
{
    char *dir = th_tmpdir("store");
    /* Creation: meta, then the first snapshot, then (fails) the first log.
     * That snapshot does not require a log: nothing was ever recorded. */
    assert_int_equal(mkdir(th_path(dir, "log.tmp"), 0700), 0);
    fedreci_store *s = NULL;
    assert_int_equal(fedreci_store_open(&s, dir, FEDRECI_KEY_RAW, KEY_A, 32, 0, 0), FEDREC_ERR_IO);
    assert_null(s);
    struct stat st;
    assert_int_equal(stat(th_path(dir, "snapshot"), &st), 0);
    assert_int_equal(stat(th_path(dir, "log"), &st), -1);
    assert_int_equal(rmdir(th_path(dir, "log.tmp")), 0);
    s = open_raw(dir, KEY_A);
    size_t n;
    fedreci_store_purchases(s, &n);
    assert_int_equal(n, 0);
    assert_int_equal(fedreci_store_participation(s), 1);
    assert_int_equal(fedreci_store_add_purchase(s, "A", 1, 1, NULL), FEDREC_OK);
    fedreci_store_close(s);

    /* Later compactions: the new snapshot (generation g + 1) is in place and
     * the log is still generation g's, stale: every event is in the snapshot. */
    s = open_raw(dir, KEY_A);
    assert_int_equal(fedreci_store_add_purchase(s, "B", 2, 1, NULL), FEDREC_OK);
    assert_int_equal(mkdir(th_path(dir, "log.tmp"), 0700), 0);
    assert_int_equal(fedreci_store_compact(s), FEDREC_ERR_IO);
    fedreci_store_close(s);
    assert_int_equal(rmdir(th_path(dir, "log.tmp")), 0);
    /* Leftover temporary files (a crash before a rename) are ignored. */
    FILE *f = fopen(th_path(dir, "snapshot.tmp"), "wb");
    assert_non_null(f);
    fputs("half-written", f);
    fclose(f);
    f = fopen(th_path(dir, "log.tmp"), "wb");
    assert_non_null(f);
    fclose(f);
    s = open_raw(dir, KEY_A);
    const fedreci_store_purchase *p = fedreci_store_purchases(s, &n);
    assert_int_equal(n, 2);
    assert_string_equal(p[1].code, "B");
    fedreci_store_close(s);
    /* And that reopen required its log again. */
    assert_int_equal(unlink(th_path(dir, "log")), 0);
    expect_open_error(dir, KEY_A, FEDREC_ERR_CORRUPT, "/log: missing");
    th_rm_rf(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_dp_ledger_roundtrip),
        cmocka_unit_test(test_kill9_loses_nothing_acknowledged),
        cmocka_unit_test(test_wrong_key),
        cmocka_unit_test(test_passphrase),
        cmocka_unit_test(test_truncated_and_damaged),
        cmocka_unit_test(test_torn_tail_recovers),
        cmocka_unit_test(test_lost_tail_is_an_error),
        cmocka_unit_test(test_open_writes_nothing),
        cmocka_unit_test(test_format1_store_migrates),
        cmocka_unit_test(test_model_checksum_kept),
        cmocka_unit_test(test_other_store),
        cmocka_unit_test(test_forget_leaves_nothing),
        cmocka_unit_test(test_compact_keeps_state),
        cmocka_unit_test(test_missing_log_refused),
        cmocka_unit_test(test_compaction_crash_points_open),
    };
    return TH_RUN(tests);
}
