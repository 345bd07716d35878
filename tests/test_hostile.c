/* The hostile-client suite (issue 13): the real `fedrec-coordinator` process
 * (SQLite in a temporary directory, tcp:// on a kernel-chosen port), three
 * honest clients (client/session.h, the library's own protocol driver) and
 * one scriptable hostile client that speaks the wire protocol itself
 * (core/secagg client state machine + proto/wire + its own signatures) and
 * deviates from it in one way per test:
 *
 *  - test_forged_ids: stage messages and a masked input sent under the other
 *    members' ids (unsigned, and signed with the hostile's own key), and a
 *    check-in under an id that is not derived from the key it carries;
 *  - test_junk_flood: 65 junk stage messages under every member's id;
 *  - test_replay_and_other_stage: the hostile's own signed messages of the
 *    previous round replayed (as sent, and with the round id rewritten),
 *    and a signed message for a stage that is not open;
 *  - test_wrong_unmask_shares: reveals that do not open the dealers'
 *    commitments;
 *  - test_huge_update: an unclipped update (a ring offset far beyond the
 *    cohort's clip budget);
 *  - test_forged_weight: a zero weight (and, second round, a weight of 7);
 *  - test_replayed_checkin: a captured check-in replayed (before and after
 *    a restart), and check-ins stamped outside the clock window;
 *  - test_seed_withheld, test_bad_reveal, test_reveal_as_other: the graph
 *    seed step (issue 14) with withheld contributions (one, then two
 *    hostile clients: named and benched), one that does not open its
 *    commitment, and contributions under other members' ids;
 *  - test_consistency_tags, test_consistency_garbage_and_silent,
 *    test_consistency_bad_signature: the consistency step with garbage,
 *    forged and replayed tags and messages, a garbling and a silent member
 *    (the round completes: the garbling member's signature counts), and a
 *    garbage endorsement signature with a silent member (aborted, both
 *    named, the next round exact); test_unmask_withheld: two members that
 *    endorse and withhold their reveals (named, benched, the next round
 *    exact).
 *
 * For each: the honest clients' round completes and the coordinator's round
 * log records the BLAKE2b-256 of the unmasked sum, which must equal that of
 * the oracle (the clients' quantized inputs added in the clear, from the
 * library's on_quantized hook and the hostile's own state machine); or the
 * round aborts, is never committed (the model version in the database does
 * not move), its row in the round log carries the reason (and the culprit
 * when one can be named), and the next round, without the culprit, completes
 * with the exact sum. The database passes PRAGMA integrity_check at the end.
 *
 * No timed assertions: deadlines only decide who counts as dropped. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
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

#include <cmocka.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <sodium.h>
#include <sqlite3.h>

#include "client/session.h"
#include "core/err.h"
#include "core/secagg/kdf.h"
#include "core/secagg/secagg.h"
#include "core/util.h"
#include "proto/wire.h"
#include "harness_engine.h"

extern char **environ;

#define N_ITEMS 12
#define K_FACTORS 2
#define D (N_ITEMS * K_FACTORS + 1)
#define N_HONEST 3

/* ---- the daemon as a process (tests/harness_engine.h th_daemon) ---------------- */

/* Waits (up to 60 s) for a log line with a and b; fails the test without. */
static void log_wait(const th_daemon *d, const char *a, const char *b)
{
    if (!th_log_wait(d, a, b, NULL)) {
        th_log_dump(d);
        fail_msg("no log line with '%s' '%s'", a, b ? b : "");
    }
}

/* The cohort size the next daemon_launch asks for (the tests with two
 * hostile clients raise it to 5). */
static const char *g_cohort = "4";
/* Further daemon arguments for the next daemon_launch (NULL-terminated
 * pairs; NULL: none): the seed retry tests set the neighbours and the
 * retries per round. */
static const char *const *g_more_args = NULL;

/* Starts the daemon; reuse: restart in d->dir (the same database). */
static void daemon_launch(th_daemon *d, int reuse)
{
    if (!reuse)
        th_daemon_init(d, "hostile");
    char cat[300];
    snprintf(cat, sizeof cat, "%s/catalog.csv", d->dir);
    FILE *f = fopen(cat, "w");
    assert_non_null(f);
    fprintf(f, "code,description\n");
    for (int i = 0; i < N_ITEMS; i++)
        fprintf(f, "P%03d,product %d\n", i, i);
    fclose(f);
    const char *args[] = {"--catalog",
                          cat,
                          "--factors",
                          "2",
                          "--seed",
                          "7",
                          "--cohort",
                          g_cohort,
                          "--min-cohort",
                          "3",
                          "--deadline-checkin",
                          "1500",
                          "--deadline-advertise",
                          "20000",
                          "--deadline-share",
                          "20000",
                          "--deadline-masked",
                          "20000",
                          "--deadline-unmask",
                          "20000",
                          "--log-level",
                          "debug",
                          "--http",
                          "http://127.0.0.1:0",
                          NULL,
                          NULL,
                          NULL,
                          NULL,
                          NULL,
                          NULL,
                          NULL};
    size_t na = 0;
    while (args[na])
        na++;
    for (size_t i = 0; g_more_args && g_more_args[i] && na + 1 < sizeof args / sizeof *args; i++)
        args[na++] = g_more_args[i];
    th_daemon_launch(d, "tcp://127.0.0.1:0", args, reuse ? "-2" : "");
}

/* The body of GET path from the daemon's status server (static buffer). */
static const char *http_get(const th_daemon *d, const char *path)
{
    int port = th_log_number_after(d, "status on http://127.0.0.1:0 (port ");
    assert_true(port > 0);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(0x7f000001);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    char req[128];
    snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
    assert_int_equal(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
    static char buf[65536];
    size_t n = 0;
    ssize_t got;
    while (n + 1 < sizeof buf && (got = recv(fd, buf + n, sizeof buf - 1 - n, 0)) > 0)
        n += (size_t)got;
    buf[n] = 0;
    close(fd);
    const char *body = strstr(buf, "\r\n\r\n");
    assert_non_null(body);
    return body + 4;
}

/* The bench figures: fedrec_clients_benched and fedrec_clients_benched_total
 * on /metrics must be `now` and `total`, and clients_benched on /status
 * `now`. */
static void expect_bench_figures(const th_daemon *d, unsigned now, unsigned total)
{
    char want[3][80];
    snprintf(want[0], sizeof want[0], "\nfedrec_clients_benched %u\n", now);
    snprintf(want[1], sizeof want[1], "\nfedrec_clients_benched_total %u\n", total);
    snprintf(want[2], sizeof want[2], "\"clients_benched\":%u,", now);
    for (int i = 0; i < 3; i++) {
        const char *body = http_get(d, i < 2 ? "/metrics" : "/status");
        if (!strstr(body, want[i]))
            fail_msg("want '%s' in:\n%s", want[i], body);
    }
}

/* Lifts client id's bench with the SQL docs/operations.md gives (the daemon
 * stopped): UPDATE clients ... WHERE client_id = 0x<id as logged>. */
static void sql_unbench(const th_daemon *d, uint64_t id)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(d->db, &db), SQLITE_OK);
    char sql[160];
    snprintf(sql, sizeof sql,
             "UPDATE clients SET bench_strikes = 0, benched_until = 0 WHERE client_id = "
             "0x%016llx",
             (unsigned long long)id);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_changes(db), 1);
    sqlite3_close(db);
}

/* The latest model version in the database. */
static uint64_t db_model_version(const th_daemon *d)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(d->db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    sqlite3_stmt *q = NULL;
    assert_int_equal(
        sqlite3_prepare_v2(db, "SELECT coalesce(max(version), 0) FROM models", -1, &q, NULL),
        SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    uint64_t v = (uint64_t)sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    sqlite3_close(db);
    return v;
}

/* clients.benched_until of client id (and its strikes into *strikes). */
static uint64_t db_bench(const th_daemon *d, uint64_t id, uint32_t *strikes)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(d->db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    sqlite3_stmt *q = NULL;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT benched_until, bench_strikes FROM clients "
                                        "WHERE client_id = ?1",
                                        -1, &q, NULL),
                     SQLITE_OK);
    sqlite3_bind_int64(q, 1, (sqlite3_int64)id);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    uint64_t v = (uint64_t)sqlite3_column_int64(q, 0);
    if (strikes)
        *strikes = (uint32_t)sqlite3_column_int64(q, 1);
    sqlite3_finalize(q);
    sqlite3_close(db);
    return v;
}

/* ---- the hostile client --------------------------------------------------------------- */

typedef struct hostile hostile;
struct hostile {
    uint64_t id;
    uint8_t pk[32], sk[64];
    nng_socket s;              /* its own connection */
    nng_socket side;           /* a second connection for forged messages */
    fedreci_wire_round round;  /* of the current round */
    fedreci_secagg_client *sa; /* its state machine */
    uint64_t members[8];       /* roster ids of the current round */
    size_t n_members;
    uint8_t digest[32]; /* the roster's seed digest */
    /* the consistency step: 0 honest tags; 1 garbage tags (random bytes,
       but the first is the tag it sent the same neighbour in its previous
       round, when it has one: a replay of the content under a fresh MAC)
       with its valid endorsement signature; 2 garbage tags and a garbage
       signature (its message is then refused and it is named a culprit) */
    int cons_mode;
    fedreci_secagg_tag old_tags[8]; /* its tags of the last round (honest ones) */
    size_t n_old_tags;
    uint64_t old_round;
    void (*before_cons)(struct hostile *h); /* run before its consistency message */
    void *arg;
    fedreci_secagg_ciphertext cts[8]; /* its share bundles (copies) */
    uint8_t ctb[8][256], cmb[8][FEDRECI_SECAGG_COMMIT_BYTES];
    size_t n_cts;
    uint32_t q[D];           /* what it put into the sum (the oracle) */
    int in_sum;              /* its masked input was accepted */
    size_t complained_about; /* complaints relayed against it (complaint step) */
    int excluded;            /* the complaint step excluded it */
    int refused_cons;        /* its consistency message was refused (cons_mode 2) */
    int no_reveal;           /* endorse, then send no reveals (h_unmask_send) */
    /* its signed messages of the round, as sent (for replay), by wire stage */
    uint8_t *sent[11];
    size_t sent_len[11];
};

static void h_init(hostile *h, const char *url)
{
    memset(h, 0, sizeof *h);
    crypto_sign_keypair(h->pk, h->sk);
    h->id = fedreci_secagg_id_from_pk(h->pk);
    for (int i = 0; i < 2; i++) {
        nng_socket *s = i ? &h->side : &h->s;
        assert_int_equal(nng_req0_open(s), 0);
        nng_socket_set_ms(*s, NNG_OPT_RECVTIMEO, 60000);
        nng_socket_set_ms(*s, NNG_OPT_REQ_RESENDTIME, (nng_duration)0x7fffffff);
        assert_int_equal(nng_dial(*s, url, NULL, 0), 0);
    }
}

static void h_free(hostile *h)
{
    fedreci_secagg_client_destroy(h->sa);
    h->sa = NULL;
    for (int i = 0; i < 11; i++)
        free(h->sent[i]);
    nng_close(h->s);
    nng_close(h->side);
}

/* Sends bytes on s, returns the decoded reply. */
static fedreci_wire_env *call_bytes(nng_socket s, const void *buf, size_t n)
{
    assert_int_equal(nng_send(s, (void *)buf, n, 0), 0);
    nng_msg *m = NULL;
    assert_int_equal(nng_recvmsg(s, &m, 0), 0);
    fedreci_wire_env *env = NULL;
    if (fedreci_wire_decode_msg(m, 64u << 20, &env))
        fail_msg("reply: %s", fedrec_errmsg());
    nng_msg_free(m);
    return env;
}

/* Signs m with sk (unless sk is NULL), keeps a copy in h->sent[stage] when
 * keep, sends it on s and returns the reply. */
static fedreci_wire_env *h_call(hostile *h, nng_socket s, nng_msg *m, const fedreci_wire_hdr *hd,
                                const uint8_t *sk, int keep)
{
    if (sk)
        assert_int_equal(fedreci_wire_sign(m, hd, sk), FEDREC_OK);
    if (keep) {
        free(h->sent[hd->stage]);
        h->sent_len[hd->stage] = nng_msg_len(m);
        h->sent[hd->stage] = malloc(nng_msg_len(m));
        assert_non_null(h->sent[hd->stage]);
        memcpy(h->sent[hd->stage], nng_msg_body(m), nng_msg_len(m));
    }
    fedreci_wire_env *env = call_bytes(s, nng_msg_body(m), nng_msg_len(m));
    nng_msg_free(m);
    return env;
}

static void expect_error(fedreci_wire_env *env, fedrec_err code, const char *what)
{
    assert_non_null(env);
    if (env->body_case != FEDREC__V1__ENVELOPE__BODY_ERROR || env->error->code != (uint32_t)code)
        fail_msg("%s: expected Error %s, got body %d (code %u: %s)", what, fedrec_strerror(code),
                 (int)env->body_case,
                 env->body_case == FEDREC__V1__ENVELOPE__BODY_ERROR ? env->error->code : 0,
                 env->body_case == FEDREC__V1__ENVELOPE__BODY_ERROR ? env->error->text : "");
    fedreci_wire_free(env);
}

/* Expects an Error reply: SIGNATURE (the message did not verify) or, for a
 * message of a stage that is not open yet, STAGE (refused before it is even
 * verified); either way nothing was counted. */
static void expect_refused(fedreci_wire_env *env, int stage_open, const char *what)
{
    expect_error(env, stage_open ? FEDREC_ERR_SIGNATURE : FEDREC_ERR_STAGE, what);
}

/* Checks in (signed) until selected: 1; refused with an Error: 0 and the
 * code in *refused. */
static int h_checkin(hostile *h, fedrec_err *refused)
{
    for (int tries = 0; tries < 200; tries++) {
        fedreci_wire_hdr hd = {h->id, 0, FEDRECI_WIRE_STAGE_CHECKIN};
        nng_msg *m = NULL;
        assert_int_equal(fedreci_wire_enc_checkin(&m, &hd, h->pk, 0, 1), FEDREC_OK);
        fedreci_wire_env *env = h_call(h, h->s, m, &hd, h->sk, 0);
        if (env->body_case == FEDREC__V1__ENVELOPE__BODY_ERROR) {
            *refused = (fedrec_err)env->error->code;
            fedreci_wire_free(env);
            return 0;
        }
        int ok = fedreci_wire_get_round(env, &h->round) == FEDREC_OK;
        fedreci_wire_free(env);
        if (ok)
            return 1;
        usleep(50000); /* not selected: try again */
    }
    fail_msg("hostile client never selected");
    return 0;
}

/* A signed check-in sent on h->s; its reply is taken by h_checkin_recv (two
 * hostile clients check in together). */
static void h_checkin_send(hostile *h)
{
    fedreci_wire_hdr hd = {h->id, 0, FEDRECI_WIRE_STAGE_CHECKIN};
    nng_msg *m = NULL;
    assert_int_equal(fedreci_wire_enc_checkin(&m, &hd, h->pk, 0, 1), FEDREC_OK);
    assert_int_equal(fedreci_wire_sign(m, &hd, h->sk), FEDREC_OK);
    assert_int_equal(nng_sendmsg(h->s, m, 0), 0);
}

/* The reply to h_checkin_send: 1 selected (h->round set); 0 an Error, its
 * code in *refused and its text in text[cap]; fails on anything else. */
static int h_checkin_recv(hostile *h, fedrec_err *refused, char *text, size_t cap)
{
    nng_msg *rm = NULL;
    assert_int_equal(nng_recvmsg(h->s, &rm, 0), 0);
    fedreci_wire_env *env = NULL;
    if (fedreci_wire_decode_msg(rm, 64u << 20, &env))
        fail_msg("check-in reply: %s", fedrec_errmsg());
    nng_msg_free(rm);
    if (env->body_case == FEDREC__V1__ENVELOPE__BODY_ERROR) {
        *refused = (fedrec_err)env->error->code;
        snprintf(text, cap, "%s", env->error->text ? env->error->text : "");
        fedreci_wire_free(env);
        return 0;
    }
    if (fedreci_wire_get_round(env, &h->round) != FEDREC_OK)
        fail_msg("hostile %016llx not selected: %s", (unsigned long long)h->id, fedrec_errmsg());
    fedreci_wire_free(env);
    return 1;
}

/* Goes away: closes its connection (the coordinator counts it dropped at
 * once) and opens a new one for its next check-in. */
static void h_reconnect(hostile *h, const char *url)
{
    nng_close(h->s);
    assert_int_equal(nng_req0_open(&h->s), 0);
    nng_socket_set_ms(h->s, NNG_OPT_RECVTIMEO, 60000);
    nng_socket_set_ms(h->s, NNG_OPT_REQ_RESENDTIME, (nng_duration)0x7fffffff);
    assert_int_equal(nng_dial(h->s, url, NULL, 0), 0);
}

/* The binding of the round (proto/wire.h fedreci_wire_binding): the model is
 * downloaded as a session does, for its checksum. */
static void h_binding(hostile *h, uint8_t binding[32])
{
    fedreci_wire_hdr hd = {h->id, h->round.secagg.round_id, FEDRECI_WIRE_STAGE_MODEL};
    nng_msg *m = NULL;
    assert_int_equal(fedreci_wire_enc_model_request(&m, &hd, 0), FEDREC_OK);
    fedreci_wire_env *env = h_call(h, h->s, m, &hd, h->sk, 0);
    fedreci_wire_model md;
    assert_int_equal(fedreci_wire_get_model(env, &md), FEDREC_OK);
    fedreci_wire_binding(&h->round, md.checksum, binding);
    fedreci_wire_free(env);
}

static void h_mac(hostile *h, nng_msg *m);

/* Stage 0: advertises (a fresh SecAgg client's advert, signed inside, MACed
 * under the round key its s_pk gives) and takes the roster (h->members,
 * h->digest); send and receive apart (h_advert_send, h_advert_recv) so that
 * two hostile clients can advertise together. */
static void h_advert_send(hostile *h)
{
    fedreci_secagg_client_destroy(h->sa);
    h->sa = NULL;
    assert_int_equal(fedreci_secagg_client_create(&h->sa, &h->round.secagg, h->id, h->sk, NULL),
                     FEDREC_OK);
    uint8_t binding[32];
    h_binding(h, binding);
    assert_int_equal(fedreci_secagg_client_set_binding(h->sa, binding), FEDREC_OK);
    fedreci_secagg_advert a;
    assert_int_equal(fedreci_secagg_client_advertise(h->sa, &a), FEDREC_OK);
    fedreci_wire_hdr hd = {h->id, h->round.secagg.round_id, FEDRECI_WIRE_STAGE_ADVERTISE};
    nng_msg *m = NULL;
    assert_int_equal(fedreci_wire_enc_advertise(&m, &hd, &a), FEDREC_OK);
    h_mac(h, m);
    free(h->sent[hd.stage]);
    h->sent_len[hd.stage] = nng_msg_len(m);
    h->sent[hd.stage] = malloc(nng_msg_len(m));
    assert_non_null(h->sent[hd.stage]);
    memcpy(h->sent[hd.stage], nng_msg_body(m), nng_msg_len(m));
    assert_int_equal(nng_sendmsg(h->s, m, 0), 0);
}

static void h_advert_recv(hostile *h)
{
    nng_msg *rm = NULL;
    assert_int_equal(nng_recvmsg(h->s, &rm, 0), 0);
    fedreci_wire_env *env = NULL;
    if (fedreci_wire_decode_msg(rm, 64u << 20, &env))
        fail_msg("roster: %s", fedrec_errmsg());
    nng_msg_free(rm);
    fedreci_secagg_advert *ro = NULL;
    size_t n = 0;
    const uint8_t *digest = NULL;
    if (fedreci_wire_get_roster(env, h->id, 2, 8, &ro, &n) ||
        fedreci_wire_get_seed_digest(env, &digest))
        fail_msg("hostile: roster: %s", fedrec_errmsg());
    h->n_members = n;
    for (size_t i = 0; i < n; i++)
        h->members[i] = ro[i].client_id;
    memcpy(h->digest, digest, 32);
    free(ro);
    fedreci_wire_free(env);
}

/* The graph seed step: a SeedReveal of contribution under id `as` (h->id:
 * its own), MACed with h's round key (mac) or signed with its identity key
 * (!mac), sent on s; returns the reply. */
static fedreci_wire_env *h_reveal_msg(hostile *h, nng_socket s, uint64_t as,
                                      const uint8_t contribution[FEDRECI_SECAGG_CONTRIB_BYTES],
                                      int mac, int keep)
{
    fedreci_wire_hdr hd = {as, h->round.secagg.round_id, FEDRECI_WIRE_STAGE_SEED};
    nng_msg *m = NULL;
    assert_int_equal(fedreci_wire_enc_seed_reveal(&m, &hd, contribution), FEDREC_OK);
    if (mac) {
        /* MACed under the round key, like the masked input */
        uint8_t key[32];
        assert_int_equal(fedreci_secagg_client_mac_key(h->sa, h->round.coord_pk, key), FEDREC_OK);
        assert_int_equal(fedreci_wire_mac(m, key), FEDREC_OK);
    }
    return h_call(h, s, m, &hd, mac ? NULL : h->sk, keep);
}

/* Its own contribution (the state machine's; once per round). */
static void h_contribution(hostile *h, uint8_t contribution[FEDRECI_SECAGG_CONTRIB_BYTES])
{
    assert_int_equal(
        fedreci_secagg_client_reveal(h->sa, h->members, h->n_members, h->digest, contribution),
        FEDREC_OK);
}

/* Takes the seed relay (a reply to its reveal), makes its share bundles. */
static void h_take_seed_relay(hostile *h, fedreci_wire_env *env)
{
    size_t n = h->n_members;
    fedreci_secagg_advert *ro = NULL;
    uint8_t *contribs = NULL, *missing = NULL;
    if (fedreci_wire_get_seed_relay(env, h->members, n, &contribs, &missing, &ro))
        fail_msg("hostile: seed relay: %s", fedrec_errmsg());
    const fedreci_secagg_ciphertext *cts;
    size_t n_cts;
    assert_int_equal(
        fedreci_secagg_client_share_keys_missing(h->sa, ro, n, contribs, missing, &cts, &n_cts),
        FEDREC_OK);
    free(contribs);
    free(missing);
    assert_true(n_cts <= 8);
    h->n_cts = n_cts;
    for (size_t i = 0; i < n_cts; i++) {
        assert_true(cts[i].len <= sizeof h->ctb[i]);
        memcpy(h->ctb[i], cts[i].bytes, cts[i].len);
        memcpy(h->cmb[i], cts[i].commit, FEDRECI_SECAGG_COMMIT_BYTES);
        h->cts[i] = cts[i];
        h->cts[i].bytes = h->ctb[i];
        h->cts[i].commit = h->cmb[i];
    }
    free(ro);
    fedreci_wire_free(env);
}

/* Stage 0 and the seed step, as the protocol says. */
static void h_advertise(hostile *h)
{
    h_advert_send(h);
    h_advert_recv(h);
    uint8_t contribution[FEDRECI_SECAGG_CONTRIB_BYTES];
    h_contribution(h, contribution);
    h_take_seed_relay(h, h_reveal_msg(h, h->s, h->id, contribution, 1, 1));
}

/* Makes the hostile a dealer whose shares do not rebuild the b it commits
 * to: every bundle's c_b (the same in all, as the coordinator requires) is
 * changed, its shares still open h_b / h_s, so receivers accept them. */
static void h_commit_other_b(hostile *h)
{
    for (size_t i = 0; i < h->n_cts; i++)
        h->cmb[i][64] ^= 1;
}

/* Stage 1: sends its bundles (MACed); returns the relay (caller frees). */
static fedreci_wire_env *h_share(hostile *h)
{
    fedreci_wire_hdr hd = {h->id, h->round.secagg.round_id, FEDRECI_WIRE_STAGE_SHARE_KEYS};
    nng_msg *m = NULL;
    assert_int_equal(fedreci_wire_enc_ciphertexts(&m, &hd, 0, h->cts, h->n_cts), FEDREC_OK);
    h_mac(h, m);
    fedreci_wire_env *env = h_call(h, h->s, m, &hd, NULL, 1);
    assert_int_equal(env->body_case, FEDREC__V1__ENVELOPE__BODY_SHARE_RELAY);
    return env;
}

/* MACs m under the hostile's round key (every message after its advert). */
static void h_mac(hostile *h, nng_msg *m)
{
    uint8_t key[32];
    assert_int_equal(fedreci_secagg_client_mac_key(h->sa, h->round.coord_pk, key), FEDREC_OK);
    assert_int_equal(fedreci_wire_mac(m, key), FEDREC_OK);
}

/* The complaint step (after the share relay, which it frees): checks and
 * keeps the bundles, sends its complaints (cpl / n_cpl when given: what a
 * lying client claims instead of its own), answers the complaints against
 * it (open = 0: it opens nothing), and applies the outcome. Returns the
 * final ComplaintRelay's error code (FEDREC_OK: it may mask now; the
 * Error's code when the coordinator refused a message). */
static fedrec_err h_complain_as(hostile *h, fedreci_wire_env *relay,
                                const fedreci_secagg_complaint *cpl, size_t n_cpl, int open)
{
    fedreci_secagg_ciphertext *in = NULL;
    size_t n_in = 0;
    assert_int_equal(fedreci_wire_get_ciphertexts(relay, 8, &in, &n_in), FEDREC_OK);
    fedreci_secagg_client_set_lenient(h->sa, 1);
    const fedreci_secagg_complaint *own;
    size_t n_own;
    assert_int_equal(fedreci_secagg_client_receive(h->sa, in, n_in, &own, &n_own), FEDREC_OK);
    free(in);
    fedreci_wire_free(relay);
    fedreci_wire_hdr hd = {h->id, h->round.secagg.round_id, FEDRECI_WIRE_STAGE_COMPLAINT};
    nng_msg *m = NULL;
    assert_int_equal(fedreci_wire_enc_complaints(&m, &hd, cpl ? cpl : own, cpl ? n_cpl : n_own),
                     FEDREC_OK);
    h_mac(h, m);
    fedreci_wire_env *env = h_call(h, h->s, m, &hd, NULL, 1);
    int final = 0;
    const uint64_t *ex = NULL;
    size_t n_ex = 0;
    if (env->body_case == FEDREC__V1__ENVELOPE__BODY_ERROR) {
        fedrec_err code = (fedrec_err)env->error->code;
        fedreci_wire_free(env);
        return code;
    }
    assert_int_equal(fedreci_wire_get_complaint_relay(env, &final, &ex, &n_ex), FEDREC_OK);
    if (!final) {
        fedreci_secagg_complaint *ag = NULL;
        size_t n_ag = 0;
        assert_int_equal(fedreci_wire_get_complaints(env, 8, &ag, &n_ag), FEDREC_OK);
        h->complained_about = n_ag;
        const fedreci_secagg_opening *op = NULL;
        size_t n_op = 0;
        assert_int_equal(fedreci_secagg_client_answer(h->sa, ag, n_ag, &op, &n_op), FEDREC_OK);
        free(ag);
        fedreci_wire_free(env);
        hd.stage = FEDRECI_WIRE_STAGE_OPENING;
        assert_int_equal(fedreci_wire_enc_openings(&m, &hd, op, open ? n_op : 0), FEDREC_OK);
        h_mac(h, m);
        env = h_call(h, h->s, m, &hd, NULL, 1);
        if (env->body_case == FEDREC__V1__ENVELOPE__BODY_ERROR) {
            fedrec_err code = (fedrec_err)env->error->code;
            fedreci_wire_free(env);
            return code;
        }
        assert_int_equal(fedreci_wire_get_complaint_relay(env, &final, &ex, &n_ex), FEDREC_OK);
        assert_true(final);
    }
    fedreci_secagg_opening *op = NULL;
    size_t n_op = 0;
    assert_int_equal(fedreci_wire_get_openings(env, 8, &op, &n_op), FEDREC_OK);
    fedrec_err e = fedreci_secagg_client_resolve(h->sa, ex, n_ex, op, n_op);
    h->excluded = fedreci_find_u64(ex, n_ex, h->id) >= 0;
    free(op);
    fedreci_wire_free(env);
    return h->excluded ? FEDREC_ERR_PROTOCOL : e;
}

static void h_complain(hostile *h, fedreci_wire_env *relay)
{
    assert_int_equal(h_complain_as(h, relay, NULL, 0, 1), FEDREC_OK);
}

/* Stage 2: masks x (zeros) with weight w, adds `offset` to word `at` of the
 * masked vector (an unclipped input), sends it; returns the reply. relay:
 * the share relay (the complaint step runs first), or NULL when the
 * complaint step already ran (h_complain). */
static fedreci_wire_env *h_masked(hostile *h, fedreci_wire_env *relay, uint32_t w, size_t at,
                                  uint32_t offset)
{
    if (relay)
        h_complain(h, relay);
    float x[D - 1];
    for (int i = 0; i < D - 1; i++)
        x[i] = (float)(i % 5) * 0.25f - 0.5f;
    const uint32_t *y0;
    assert_int_equal(fedreci_secagg_client_masked_input(h->sa, NULL, 0, x, w, &y0, NULL),
                     FEDREC_OK);
    memcpy(h->q, fedreci_secagg_client_quantized_input(h->sa), sizeof h->q);
    uint32_t y[D];
    memcpy(y, y0, sizeof y);
    y[at] += offset;
    h->q[at] += offset;
    fedreci_wire_hdr hd = {h->id, h->round.secagg.round_id, FEDRECI_WIRE_STAGE_MASKED_INPUT};
    nng_msg *m = NULL;
    assert_int_equal(fedreci_wire_enc_masked(&m, &hd, y, D), FEDREC_OK);
    /* the bulk message is authenticated by a MAC under the round key */
    h_mac(h, m);
    fedreci_wire_env *env = h_call(h, h->s, m, &hd, NULL, 1);
    h->in_sum = env->body_case == FEDREC__V1__ENVELOPE__BODY_UNMASK_REQUEST;
    if (env->body_case == FEDREC__V1__ENVELOPE__BODY_ERROR)
        fail_msg("hostile masked input refused: %s", env->error->text);
    return env;
}

/* Stage 3: answers the unmask request (the consistency step, then its
 * reveals; flip: corrupt every share), sending the reveals without waiting
 * for the reply (h_reply takes it). */
static void h_unmask_send(hostile *h, fedreci_wire_env *req, int flip)
{
    const uint64_t *sv, *dr;
    size_t ns, nd;
    assert_int_equal(fedreci_wire_get_unmask_request(req, &sv, &ns, &dr, &nd), FEDREC_OK);
    const fedreci_secagg_tag *tags;
    size_t n_tags;
    assert_int_equal(fedreci_secagg_client_consistency(h->sa, sv, ns, dr, nd, &tags, &n_tags),
                     FEDREC_OK);
    fedreci_wire_free(req);
    /* the consistency step: its tags out, its neighbours' in */
    assert_true(n_tags <= 8);
    fedreci_secagg_tag mine[8];
    memcpy(mine, tags, n_tags * sizeof *tags);
    if (h->before_cons)
        h->before_cons(h);
    if (h->cons_mode == 1) {
        for (size_t i = 0; i < n_tags; i++)
            randombytes_buf(mine[i].tag, sizeof mine[i].tag);
        for (size_t j = 0; n_tags && j < h->n_old_tags; j++)
            if (h->old_tags[j].to == mine[0].to)
                memcpy(mine[0].tag, h->old_tags[j].tag, sizeof mine[0].tag);
    } else {
        memcpy(h->old_tags, tags, n_tags * sizeof *tags);
        h->n_old_tags = n_tags;
        h->old_round = h->round.secagg.round_id;
    }
    fedreci_wire_hdr hc = {h->id, h->round.secagg.round_id, FEDRECI_WIRE_STAGE_CONSISTENCY};
    nng_msg *mc = NULL;
    uint8_t sig[64];
    memcpy(sig, fedreci_secagg_client_endorsement(h->sa), sizeof sig);
    if (h->cons_mode == 2)
        randombytes_buf(sig, sizeof sig);
    const uint64_t *peers = NULL;
    size_t n_peers = 0;
    assert_int_equal(fedreci_secagg_client_endorse_peers(h->sa, &peers, &n_peers), FEDREC_OK);
    assert_int_equal(
        fedreci_wire_enc_consistency(&mc, &hc, peers, n_peers, mine, n_tags, sig, NULL, 0),
        FEDREC_OK);
    {
        uint8_t key[32];
        assert_int_equal(fedreci_secagg_client_mac_key(h->sa, h->round.coord_pk, key), FEDREC_OK);
        assert_int_equal(fedreci_wire_mac(mc, key), FEDREC_OK);
    }
    fedreci_wire_env *rel = h_call(h, h->s, mc, &hc, NULL, 1);
    if (h->cons_mode == 2) {
        /* refused: it is named a culprit; its own honest message afterwards
           is refused too, and nothing of it is relayed */
        expect_error(rel, FEDREC_ERR_SIGNATURE, "an endorsement signature that does not verify");
        assert_int_equal(fedreci_wire_enc_consistency(&mc, &hc, peers, n_peers, tags, n_tags,
                                                      fedreci_secagg_client_endorsement(h->sa),
                                                      NULL, 0),
                         FEDREC_OK);
        h_mac(h, mc);
        /* refused (a culprit), or answered with the aborted round's result
           when the step closed first (it stopped waiting for the culprit) */
        fedreci_wire_env *again = h_call(h, h->s, mc, &hc, NULL, 0);
        if (again->body_case == FEDREC__V1__ENVELOPE__BODY_ROUND_RESULT) {
            assert_false(again->round_result->completed);
            fedreci_wire_free(again);
        } else {
            expect_error(again, FEDREC_ERR_PROTOCOL, "a culprit's valid endorsement afterwards");
        }
        h->refused_cons = 1;
        return;
    }
    fedreci_secagg_tag *in = NULL;
    size_t n_in = 0;
    if (fedreci_wire_get_tags(rel, h->id, peers, n_peers, &in, &n_in))
        fail_msg("hostile: consistency relay: %s", fedrec_errmsg());
    fedreci_wire_free(rel);
    const fedreci_secagg_reveal *rv;
    size_t n_rv;
    assert_int_equal(fedreci_secagg_client_unmask(h->sa, in, n_in, &rv, &n_rv), FEDREC_OK);
    free(in);
    if (h->no_reveal)
        return; /* endorsed the set; withholds its reveals */
    fedreci_secagg_reveal r[8];
    assert_true(n_rv <= 8);
    memcpy(r, rv, n_rv * sizeof *r);
    for (size_t i = 0; flip && i < n_rv; i++)
        r[i].share[0] ^= 1; /* still a canonical scalar, no longer the dealt share */
    fedreci_wire_hdr hd = {h->id, h->round.secagg.round_id, FEDRECI_WIRE_STAGE_UNMASK};
    nng_msg *m = NULL;
    assert_int_equal(fedreci_wire_enc_unmask(&m, &hd, r, n_rv), FEDREC_OK);
    h_mac(h, m);
    free(h->sent[hd.stage]);
    h->sent_len[hd.stage] = nng_msg_len(m);
    h->sent[hd.stage] = malloc(nng_msg_len(m));
    assert_non_null(h->sent[hd.stage]);
    memcpy(h->sent[hd.stage], nng_msg_body(m), nng_msg_len(m));
    assert_int_equal(nng_sendmsg(h->s, m, 0), 0);
}

/* The reply to the request last sent on h->s. */
static fedreci_wire_env *h_reply(hostile *h)
{
    nng_msg *rm = NULL;
    assert_int_equal(nng_recvmsg(h->s, &rm, 0), 0);
    fedreci_wire_env *env = NULL;
    if (fedreci_wire_decode_msg(rm, 64u << 20, &env))
        fail_msg("reply: %s", fedrec_errmsg());
    nng_msg_free(rm);
    return env;
}

/* h_unmask_send, then the reply (RoundResult or Error). */
static fedreci_wire_env *h_unmask(hostile *h, fedreci_wire_env *req, int flip)
{
    h_unmask_send(h, req, flip);
    return h_reply(h);
}

/* A whole honest round for the hostile client (it must have been selected). */
static void h_honest_round(hostile *h)
{
    h_advertise(h);
    fedreci_wire_env *r = h_unmask(h, h_masked(h, h_share(h), 1, 0, 0), 0);
    assert_int_equal(r->body_case, FEDREC__V1__ENVELOPE__BODY_ROUND_RESULT);
    fedreci_wire_free(r);
}

/* ---- one round with three honest clients ------------------------------------------ */

typedef struct world {
    th_daemon d;
    th_gclient g[N_HONEST];
    hostile h;
    uint64_t round; /* the round the cohort is in (from the hostile's check-in) */
} world;

/* The daemon with cohort size `cohort` and the further arguments `more`
 * (NULL-terminated, or NULL), three honest clients, one hostile. */
static void world_start_with(world *w, const char *cohort, const char *const *more)
{
    g_cohort = cohort;
    g_more_args = more;
    daemon_launch(&w->d, 0);
    for (int i = 0; i < N_HONEST; i++)
        th_gclient_init(&w->g[i], D);
    h_init(&w->h, w->d.url);
}

static void world_start_cohort(world *w, const char *cohort)
{
    world_start_with(w, cohort, NULL);
}

static void world_start(world *w)
{
    world_start_cohort(w, "4");
}

static void world_free(world *w)
{
    h_free(&w->h);
    for (int i = 0; i < N_HONEST; i++)
        th_gclient_free(&w->g[i]);
}

static void honest_start(world *w)
{
    for (int i = 0; i < N_HONEST; i++)
        th_gclient_start(&w->g[i], w->d.url, 60000);
}

/* Waits for the honest sessions; all must end with `want`. */
static void honest_finish(world *w, fedreci_session_outcome want)
{
    for (int i = 0; i < N_HONEST; i++) {
        th_gclient_finish(&w->g[i]);
        if (w->g[i].res.outcome != want) {
            th_log_dump(&w->d);
            fail_msg("honest client %d: outcome %d (%s), want %d", i, w->g[i].res.outcome,
                     w->g[i].res.text, want);
        }
    }
}

/* BLAKE2b-256 hex of the oracle: the honest clients' quantized inputs (and
 * the hostile's, when in_sum) added in Z_2^32. */
static void oracle_hex(const world *w, int with_hostile, char hex[65])
{
    uint32_t sum[D] = {0};
    for (int i = 0; i < N_HONEST; i++) {
        assert_int_equal(w->g[i].d, D);
        for (int j = 0; j < D; j++)
            sum[j] += w->g[i].q[j];
    }
    for (int j = 0; with_hostile && j < D; j++)
        sum[j] += w->h.q[j];
    uint8_t b[32];
    crypto_generichash(b, 32, (const uint8_t *)sum, sizeof sum, NULL, 0);
    sodium_bin2hex(hex, 65, b, 32);
}

/* The round's row: completed with the oracle's sum, or aborted with a
 * reason containing `why` and (culprit != 0) naming the culprit. */
static void expect_completed(world *w, uint64_t r, int with_hostile)
{
    char line[64];
    snprintf(line, sizeof line, "[round %llu] round completed", (unsigned long long)r);
    log_wait(&w->d, line, NULL);
    char st[16];
    char *json = th_daemon_round_row(&w->d, r, st);
    char hex[65], want[100];
    oracle_hex(w, with_hostile, hex);
    snprintf(want, sizeof want, "\"sum_b2b\":\"%s\"", hex);
    if (strcmp(st, "completed") || !strstr(json, want)) {
        th_log_dump(&w->d);
        fail_msg("round %llu: status %s, metrics %s; want the oracle's %s", (unsigned long long)r,
                 st, json, want);
    }
    free(json);
}

static void expect_aborted(world *w, uint64_t r, const char *why, uint64_t culprit,
                           uint64_t version_before)
{
    char line[64];
    snprintf(line, sizeof line, "[round %llu] round aborted", (unsigned long long)r);
    log_wait(&w->d, line, NULL);
    char st[16];
    char *json = th_daemon_round_row(&w->d, r, st);
    char cul[40];
    snprintf(cul, sizeof cul, "\"%016llx\"", (unsigned long long)culprit);
    if (strcmp(st, "aborted") || !strstr(json, why) || (culprit && !strstr(json, cul))) {
        th_log_dump(&w->d);
        fail_msg("round %llu: status %s, metrics %s; want aborted, '%s', culprit %s",
                 (unsigned long long)r, st, json, why, culprit ? cul : "-");
    }
    free(json);
    /* never committed */
    assert_int_equal(db_model_version(&w->d), version_before);
}

/* The next round with the honest clients only (the culprit, if any, is
 * refused at check-in): completes with their exact sum. */
static void honest_round_without(world *w, uint64_t r, int culprit_refused)
{
    if (culprit_refused) {
        fedrec_err code = FEDREC_OK;
        assert_int_equal(h_checkin(&w->h, &code), 0);
        assert_int_equal(code, FEDREC_ERR_NOT_SELECTED);
    }
    honest_start(w);
    honest_finish(w, FEDRECI_SESSION_COMPLETED);
    expect_completed(w, r, 0);
}

/* Stage messages under member `victim`'s id: unauthenticated, signed with
 * the hostile's own identity key, and MACed with the hostile's own round
 * key. All are refused: as unauthenticated when their stage is open
 * (open = 1), as early otherwise. */
static void forge_as(hostile *h, uint64_t victim, uint32_t stage, int open, const char *what)
{
    uint64_t r = h->round.secagg.round_id;
    for (int how = 0; how < 3; how++) {
        int signed_ = how == 1;
        fedreci_wire_hdr hd = {victim, r, stage};
        nng_msg *m = NULL;
        if (stage == FEDRECI_WIRE_STAGE_SHARE_KEYS) {
            fedreci_secagg_ciphertext c[8];
            for (size_t i = 0; i < h->n_cts; i++) {
                c[i] = h->cts[i];
                c[i].from = victim;
            }
            assert_int_equal(fedreci_wire_enc_ciphertexts(&m, &hd, 0, c, h->n_cts), FEDREC_OK);
        } else if (stage == FEDRECI_WIRE_STAGE_MASKED_INPUT) {
            uint32_t y[D];
            for (int i = 0; i < D; i++)
                y[i] = 0x40000000u + (uint32_t)i;
            assert_int_equal(fedreci_wire_enc_masked(&m, &hd, y, D), FEDREC_OK);
        } else {
            assert_int_equal(fedreci_wire_enc_unmask(&m, &hd, NULL, 0), FEDREC_OK);
        }
        if (how == 2)
            h_mac(h, m);
        expect_refused(h_call(h, h->side, m, &hd, signed_ ? h->sk : NULL, 0), open, what);
    }
}

/* Rows 2 and 5 of the table: stage messages and masked inputs under
 * other members' ids; and a check-in whose id is not its key's. */
static void test_forged_ids(void **state)
{
    (void)state;
    world w;
    world_start(&w);
    /* a check-in under another id than its key's is refused (and one under
       an honest client's id with the hostile's key) */
    {
        fedreci_wire_hdr hd = {w.h.id ^ 1, 0, FEDRECI_WIRE_STAGE_CHECKIN};
        nng_msg *m = NULL;
        assert_int_equal(fedreci_wire_enc_checkin(&m, &hd, w.h.pk, 0, 1), FEDREC_OK);
        expect_error(h_call(&w.h, w.h.side, m, &hd, w.h.sk, 0), FEDREC_ERR_SIGNATURE,
                     "check-in under an id that is not the key's");
        hd.client_id = w.g[0].id;
        assert_int_equal(fedreci_wire_enc_checkin(&m, &hd, w.h.pk, 0, 1), FEDREC_OK);
        expect_error(h_call(&w.h, w.h.side, m, &hd, w.h.sk, 0), FEDREC_ERR_SIGNATURE,
                     "check-in under an honest client's id");
        /* its own id, but unsigned: no proof of possession */
        hd.client_id = w.h.id;
        assert_int_equal(fedreci_wire_enc_checkin(&m, &hd, w.h.pk, 0, 1), FEDREC_OK);
        expect_error(h_call(&w.h, w.h.side, m, &hd, NULL, 0), FEDREC_ERR_SIGNATURE,
                     "unsigned check-in");
    }
    fedrec_err code;
    honest_start(&w);
    assert_int_equal(h_checkin(&w.h, &code), 1);
    uint64_t r = w.h.round.secagg.round_id;
    /* its own advert, whose signature inside verifies, with an envelope that
       does not: signed with its identity key instead of MACed (protocol 6),
       MACed under a key of its own choosing, or not authenticated: refused,
       and its real advert after them is taken */
    for (int how = 0; how < 3; how++) {
        assert_int_equal(
            fedreci_secagg_client_create(&w.h.sa, &w.h.round.secagg, w.h.id, w.h.sk, NULL),
            FEDREC_OK);
        uint8_t binding[32];
        h_binding(&w.h, binding);
        assert_int_equal(fedreci_secagg_client_set_binding(w.h.sa, binding), FEDREC_OK);
        fedreci_secagg_advert a;
        assert_int_equal(fedreci_secagg_client_advertise(w.h.sa, &a), FEDREC_OK);
        fedreci_secagg_client_destroy(w.h.sa);
        w.h.sa = NULL;
        fedreci_wire_hdr hd = {w.h.id, r, FEDRECI_WIRE_STAGE_ADVERTISE};
        nng_msg *m = NULL;
        assert_int_equal(fedreci_wire_enc_advertise(&m, &hd, &a), FEDREC_OK);
        if (how == 1) {
            uint8_t key[32];
            randombytes_buf(key, sizeof key);
            assert_int_equal(fedreci_wire_mac(m, key), FEDREC_OK);
        }
        expect_error(h_call(&w.h, w.h.side, m, &hd, how == 0 ? w.h.sk : NULL, 0),
                     FEDREC_ERR_SIGNATURE, "advert without its round key's MAC");
    }
    h_advertise(&w.h);
    /* stage 1 is open (it waits for the hostile's bundles) */
    for (size_t i = 0; i < w.h.n_members; i++)
        if (w.h.members[i] != w.h.id) {
            forge_as(&w.h, w.h.members[i], FEDRECI_WIRE_STAGE_SHARE_KEYS, 1, "forged share keys");
            forge_as(&w.h, w.h.members[i], FEDRECI_WIRE_STAGE_UNMASK, 0, "forged unmask");
        }
    h_complain(&w.h, h_share(&w.h));
    /* stage 2 is open (it waits for the hostile's masked input) */
    for (size_t i = 0; i < w.h.n_members; i++)
        if (w.h.members[i] != w.h.id)
            forge_as(&w.h, w.h.members[i], FEDRECI_WIRE_STAGE_MASKED_INPUT, 1,
                     "forged masked input");
    fedreci_wire_env *res = h_unmask(&w.h, h_masked(&w.h, NULL, 1, 0, 0), 0);
    assert_int_equal(res->body_case, FEDREC__V1__ENVELOPE__BODY_ROUND_RESULT);
    assert_true(res->round_result->completed);
    fedreci_wire_free(res);
    honest_finish(&w, FEDRECI_SESSION_COMPLETED);
    expect_completed(&w, r, 1);
    assert_true(th_log_count(&w.d, "refused (signature did not verify)", NULL, NULL) >= 3 * 4 + 3);
    world_free(&w);
    th_daemon_stop(&w.d, 1, 0);
}

/* Row 3: 65 junk messages under every member's id cost the members nothing. */
static void test_junk_flood(void **state)
{
    (void)state;
    world w;
    world_start(&w);
    fedrec_err code;
    honest_start(&w);
    assert_int_equal(h_checkin(&w.h, &code), 1);
    uint64_t r = w.h.round.secagg.round_id;
    h_advertise(&w.h);
    for (size_t i = 0; i < w.h.n_members; i++)
        for (int k = 0; k < 65; k++) {
            /* the open stage (share keys), where a counted message would
               lock the member out, and now and then a later stage */
            uint32_t st = FEDRECI_WIRE_STAGE_SHARE_KEYS + (uint32_t)(k % 8 == 7) * (1 + k % 2);
            fedreci_wire_hdr hd = {w.h.members[i], r, st};
            nng_msg *m = NULL;
            if (st == FEDRECI_WIRE_STAGE_MASKED_INPUT) {
                uint32_t y[D] = {0};
                assert_int_equal(fedreci_wire_enc_masked(&m, &hd, y, D), FEDREC_OK);
            } else if (st == FEDRECI_WIRE_STAGE_UNMASK) {
                assert_int_equal(fedreci_wire_enc_unmask(&m, &hd, NULL, 0), FEDREC_OK);
            } else {
                assert_int_equal(fedreci_wire_enc_ciphertexts(&m, &hd, 0, NULL, 0), FEDREC_OK);
            }
            /* junk signature bytes */
            uint8_t junk[FEDRECI_WIRE_SIG_SUFFIX] = {0xA2, 0x06, 0x40};
            randombytes_buf(junk + 3, 64);
            assert_int_equal(nng_msg_append(m, junk, sizeof junk), 0);
            expect_refused(h_call(&w.h, w.h.side, m, &hd, NULL, 0),
                           st == FEDRECI_WIRE_STAGE_SHARE_KEYS, "junk");
        }
    fedreci_wire_env *res = h_unmask(&w.h, h_masked(&w.h, h_share(&w.h), 1, 0, 0), 0);
    assert_int_equal(res->body_case, FEDREC__V1__ENVELOPE__BODY_ROUND_RESULT);
    fedreci_wire_free(res);
    honest_finish(&w, FEDRECI_SESSION_COMPLETED);
    expect_completed(&w, r, 1);
    assert_int_equal(th_log_count(&w.d, "too many messages", NULL, NULL), 0);
    world_free(&w);
    th_daemon_stop(&w.d, 1, 0);
}

/* Replayed messages of the previous round, and a message for a stage that is
 * not open: refused, no state change; the round completes exactly. */
static void test_replay_and_other_stage(void **state)
{
    (void)state;
    world w;
    world_start(&w);
    fedrec_err code;
    honest_start(&w);
    assert_int_equal(h_checkin(&w.h, &code), 1);
    uint64_t r1 = w.h.round.secagg.round_id;
    h_honest_round(&w.h);
    honest_finish(&w, FEDRECI_SESSION_COMPLETED);
    expect_completed(&w, r1, 1);
    uint8_t *old[11];
    size_t old_len[11];
    for (int s = 0; s < 11; s++) {
        old[s] = w.h.sent[s];
        old_len[s] = w.h.sent_len[s];
        w.h.sent[s] = NULL;
    }
    /* round 2 */
    honest_start(&w);
    assert_int_equal(h_checkin(&w.h, &code), 1);
    uint64_t r2 = w.h.round.secagg.round_id;
    assert_true(r2 > r1);
    h_advertise(&w.h);
    /* stage 1 open: replay round 1's signed advert and share keys as sent:
       they belong to round 1 (answered from its record, nothing counted) */
    for (int s = FEDRECI_WIRE_STAGE_ADVERTISE; s <= FEDRECI_WIRE_STAGE_COMPLAINT; s++) {
        fedreci_wire_env *e = call_bytes(w.h.side, old[s], old_len[s]);
        assert_int_equal(e->round_id, r1);
        fedreci_wire_free(e);
    }
    /* the same bytes with the round id rewritten to round 2: the signature
       covers the round, so they do not verify */
    for (int s = FEDRECI_WIRE_STAGE_ADVERTISE; s <= FEDRECI_WIRE_STAGE_COMPLAINT; s++) {
        fedreci_wire_env *e = NULL;
        assert_int_equal(fedreci_wire_decode(old[s], old_len[s], 64u << 20, &e), FEDREC_OK);
        e->round_id = r2;
        /* the old signature (or, for the masked input, the old MAC) moved
           over: it is the last field of the old bytes */
        size_t tail = e->mac.len ? FEDRECI_WIRE_MAC_SUFFIX : FEDRECI_WIRE_SIG_SUFFIX;
        ProtobufCBinaryData sig = e->sig, mac = e->mac;
        e->sig.len = 0;
        e->mac.len = 0;
        size_t n = fedrec__v1__envelope__get_packed_size(e);
        uint8_t *b = malloc(n + tail);
        assert_non_null(b);
        fedrec__v1__envelope__pack(e, b);
        memcpy(b + n, old[s] + old_len[s] - tail, tail);
        e->sig = sig;
        e->mac = mac;
        fedreci_wire_free(e);
        /* open: stage 1 and the phases before it (the seed step) */
        expect_refused(call_bytes(w.h.side, b, n + tail),
                       s <= FEDRECI_WIRE_STAGE_SHARE_KEYS || s == FEDRECI_WIRE_STAGE_SEED,
                       "previous round's message under the new round id");
        free(b);
    }
    /* a signed message for a stage that is not open (unmask during stage 1) */
    {
        fedreci_wire_hdr hd = {w.h.id, r2, FEDRECI_WIRE_STAGE_UNMASK};
        nng_msg *m = NULL;
        assert_int_equal(fedreci_wire_enc_unmask(&m, &hd, NULL, 0), FEDREC_OK);
        expect_error(h_call(&w.h, w.h.side, m, &hd, w.h.sk, 0), FEDREC_ERR_STAGE,
                     "a stage that is not open");
        /* a body for another stage than the envelope's */
        uint32_t y[D] = {0};
        hd.stage = FEDRECI_WIRE_STAGE_SHARE_KEYS;
        assert_int_equal(fedreci_wire_enc_masked(&m, &hd, y, D), FEDREC_OK);
        expect_error(h_call(&w.h, w.h.side, m, &hd, w.h.sk, 0), FEDREC_ERR_FORMAT,
                     "a body for another stage");
    }
    fedreci_wire_env *res = h_unmask(&w.h, h_masked(&w.h, h_share(&w.h), 1, 0, 0), 0);
    assert_int_equal(res->body_case, FEDREC__V1__ENVELOPE__BODY_ROUND_RESULT);
    fedreci_wire_free(res);
    honest_finish(&w, FEDRECI_SESSION_COMPLETED);
    expect_completed(&w, r2, 1);
    for (int s = 0; s < 11; s++)
        free(old[s]);
    world_free(&w);
    th_daemon_stop(&w.d, 1, 0);
}

/* Row 4: wrong unmask shares. Each reveal is checked against the dealer's
 * commitment: the hostile's are discarded and it is named; the honest
 * holders' shares rebuild every secret, so the round completes with the
 * exact sum (its own masked input included), and it is refused afterwards. */
static void test_wrong_unmask_shares(void **state)
{
    (void)state;
    world w;
    world_start(&w);
    fedrec_err code;
    honest_start(&w);
    assert_int_equal(h_checkin(&w.h, &code), 1);
    uint64_t r = w.h.round.secagg.round_id;
    h_advertise(&w.h);
    fedreci_wire_env *res = h_unmask(&w.h, h_masked(&w.h, h_share(&w.h), 1, 0, 0), 1);
    expect_error(res, FEDREC_ERR_CRYPTO, "wrong unmask shares");
    honest_finish(&w, FEDRECI_SESSION_COMPLETED);
    expect_completed(&w, r, 1);
    char st[16], cul[40];
    char *json = th_daemon_round_row(&w.d, r, st);
    snprintf(cul, sizeof cul, "\"culprits\":[\"%016llx\"]", (unsigned long long)w.h.id);
    if (!strstr(json, cul))
        fail_msg("round %llu metrics %s do not name %s", (unsigned long long)r, json, cul);
    free(json);
    honest_round_without(&w, r + 1, 1);
    world_free(&w);
    th_daemon_stop(&w.d, 1, 0);
}

/* Row 6: an unclipped update. The unmasked sum leaves the range clipped
 * inputs can reach: the round aborts, nothing is committed; the next round
 * (the hostile plays honestly) completes exactly. */
static void test_huge_update(void **state)
{
    (void)state;
    world w;
    world_start(&w);
    fedrec_err code;
    uint64_t v0 = db_model_version(&w.d);
    honest_start(&w);
    assert_int_equal(h_checkin(&w.h, &code), 1);
    uint64_t r = w.h.round.secagg.round_id;
    h_advertise(&w.h);
    fedreci_wire_env *res = h_unmask(&w.h, h_masked(&w.h, h_share(&w.h), 1, 3, 0x20000000u), 0);
    assert_int_equal(res->body_case, FEDREC__V1__ENVELOPE__BODY_ROUND_RESULT);
    assert_false(res->round_result->completed);
    fedreci_wire_free(res);
    honest_finish(&w, FEDRECI_SESSION_ABORTED);
    expect_aborted(&w, r, "outside the", 0, v0);
    honest_start(&w);
    assert_int_equal(h_checkin(&w.h, &code), 1);
    h_honest_round(&w.h);
    honest_finish(&w, FEDRECI_SESSION_COMPLETED);
    expect_completed(&w, w.h.round.secagg.round_id, 1);
    world_free(&w);
    th_daemon_stop(&w.d, 1, 0);
}

/* Row 7: a forged weight (0, then 7 in another round). The total weight
 * must equal the survivors' count: the rounds abort with the reason in the
 * round log; nothing is committed. */
static void test_forged_weight(void **state)
{
    (void)state;
    world w;
    world_start(&w);
    fedrec_err code;
    uint64_t v0 = db_model_version(&w.d);
    for (int k = 0; k < 2; k++) {
        honest_start(&w);
        assert_int_equal(h_checkin(&w.h, &code), 1);
        uint64_t r = w.h.round.secagg.round_id;
        h_advertise(&w.h);
        /* weight 0 through the state machine; 7 as an offset on the weight word */
        fedreci_wire_env *res =
            h_unmask(&w.h, h_masked(&w.h, h_share(&w.h), k == 0 ? 0 : 1, D - 1, k == 0 ? 0 : 6), 0);
        assert_int_equal(res->body_case, FEDREC__V1__ENVELOPE__BODY_ROUND_RESULT);
        assert_false(res->round_result->completed);
        fedreci_wire_free(res);
        honest_finish(&w, FEDRECI_SESSION_ABORTED);
        expect_aborted(&w, r, "total weight", 0, v0);
    }
    world_free(&w);
    th_daemon_stop(&w.d, 1, 0);
}

/* Row 1 of the table: one garbage share bundle. Its receiver
 * complains (a signed complaint naming the bundle it got); the hostile
 * cannot open a bundle whose plaintext it never made, so the complaint step
 * excludes it before anyone masks: the honest clients' round completes with
 * exactly their sum, and the hostile's masked input is refused. */
static void test_garbage_bundle(void **state)
{
    (void)state;
    world w;
    world_start(&w);
    fedrec_err code;
    honest_start(&w);
    assert_int_equal(h_checkin(&w.h, &code), 1);
    uint64_t r = w.h.round.secagg.round_id;
    h_advertise(&w.h);
    randombytes_buf(w.h.ctb[0], w.h.cts[0].len); /* garbage to its first neighbour */
    assert_int_equal(h_complain_as(&w.h, h_share(&w.h), NULL, 0, 1), FEDREC_ERR_PROTOCOL);
    assert_int_equal(w.h.complained_about, 1);
    assert_true(w.h.excluded);
    honest_finish(&w, FEDRECI_SESSION_COMPLETED);
    expect_completed(&w, r, 0);
    log_wait(&w.d, "excluded from the round by the complaint step", NULL);
    world_free(&w);
    th_daemon_stop(&w.d, 1, 0);
}

/* Garbage share bundles to every neighbour (before complaints, this left
 * fewer than t holders of its secrets and the round aborted at unmask with
 * nobody named). Every honest neighbour complains, the hostile is excluded,
 * and the honest round completes with exactly their sum; the model is
 * committed from it (the database's version moves by one). */
static void test_garbage_to_all(void **state)
{
    (void)state;
    world w;
    world_start(&w);
    fedrec_err code;
    uint64_t v0 = db_model_version(&w.d);
    honest_start(&w);
    assert_int_equal(h_checkin(&w.h, &code), 1);
    uint64_t r = w.h.round.secagg.round_id;
    h_advertise(&w.h);
    for (size_t i = 0; i < w.h.n_cts; i++)
        randombytes_buf(w.h.ctb[i], w.h.cts[i].len);
    assert_int_equal(h_complain_as(&w.h, h_share(&w.h), NULL, 0, 1), FEDREC_ERR_PROTOCOL);
    assert_int_equal(w.h.complained_about, w.h.n_cts);
    assert_true(w.h.excluded);
    /* its masked input is refused: it is out of the round (or, when the
       honest members already finished the round without it, answered with
       the round's result; either way the oracle below has no share of it) */
    {
        fedreci_wire_hdr hd = {w.h.id, r, FEDRECI_WIRE_STAGE_MASKED_INPUT};
        uint32_t y[D] = {0};
        nng_msg *m = NULL;
        assert_int_equal(fedreci_wire_enc_masked(&m, &hd, y, D), FEDREC_OK);
        h_mac(&w.h, m);
        fedreci_wire_env *env = h_call(&w.h, w.h.s, m, &hd, NULL, 0);
        assert_true(env->body_case == FEDREC__V1__ENVELOPE__BODY_ERROR ||
                    env->body_case == FEDREC__V1__ENVELOPE__BODY_ROUND_RESULT);
        /* refused as excluded (PROTOCOL) while stage 2 is open, as late
           (STAGE) once it closed without it */
        if (env->body_case == FEDREC__V1__ENVELOPE__BODY_ERROR)
            assert_true(env->error->code == FEDREC_ERR_PROTOCOL ||
                        env->error->code == FEDREC_ERR_STAGE);
        fedreci_wire_free(env);
    }
    honest_finish(&w, FEDRECI_SESSION_COMPLETED);
    expect_completed(&w, r, 0);
    assert_int_equal(db_model_version(&w.d), v0 + 1);
    world_free(&w);
    th_daemon_stop(&w.d, 1, 0);
}

/* A complaint by the hostile about the bundle its first dealer (an honest
 * client) sent it: forged = 1 names bytes that dealer never sent (the
 * coordinator holds the bundle the dealer signed and compares); forged = 0
 * names the good bundle it did receive. */
static fedreci_secagg_complaint h_false_complaint(hostile *h, const fedreci_wire_env *relay,
                                                  int forged)
{
    fedreci_secagg_ciphertext *in = NULL;
    size_t n_in = 0;
    assert_int_equal(fedreci_wire_get_ciphertexts(relay, 8, &in, &n_in), FEDREC_OK);
    assert_true(n_in > 0);
    fedreci_secagg_complaint f;
    memset(&f, 0, sizeof f);
    f.from = h->id;
    f.dealer = in[0].from;
    if (forged)
        randombytes_buf(f.bundle, sizeof f.bundle);
    else
        fedreci_secagg_bundle_hash(f.bundle, h->round.secagg.round_id, f.dealer, h->id, in[0].bytes,
                                   in[0].commit);
    uint8_t msg[FEDRECI_COMPLAINT_MSG_BYTES];
    fedreci_secagg_complaint_msg(msg, h->round.secagg.round_id, h->id, f.dealer, f.bundle);
    assert_int_equal(crypto_sign_detached(f.sig, NULL, msg, sizeof msg, h->sk), 0);
    free(in);
    return f;
}

/* A false complaint against an honest dealer about bytes it never sent: the
 * coordinator compares with the bundle the dealer sent and excludes the
 * complainer; the honest round completes with exactly their sum. */
static void test_false_complaint(void **state)
{
    (void)state;
    world w;
    world_start(&w);
    fedrec_err code;
    honest_start(&w);
    assert_int_equal(h_checkin(&w.h, &code), 1);
    uint64_t r = w.h.round.secagg.round_id;
    h_advertise(&w.h);
    fedreci_wire_env *relay = h_share(&w.h);
    fedreci_secagg_complaint f = h_false_complaint(&w.h, relay, 1);
    assert_int_equal(h_complain_as(&w.h, relay, &f, 1, 1), FEDREC_ERR_CRYPTO);
    honest_finish(&w, FEDRECI_SESSION_COMPLETED);
    expect_completed(&w, r, 0);
    log_wait(&w.d, "excluded from the round by the complaint step", NULL);
    world_free(&w);
    th_daemon_stop(&w.d, 1, 0);
}

/* A false complaint about the good bundle it did receive: the honest dealer
 * (a real client session) checks it names its bundle and is signed by its
 * neighbour, opens the plaintext (which the complainer had already), and
 * the round completes with everybody's exact sum, the hostile's included. */
static void test_false_complaint_real_bundle(void **state)
{
    (void)state;
    world w;
    world_start(&w);
    fedrec_err code;
    honest_start(&w);
    assert_int_equal(h_checkin(&w.h, &code), 1);
    uint64_t r = w.h.round.secagg.round_id;
    h_advertise(&w.h);
    fedreci_wire_env *relay = h_share(&w.h);
    fedreci_secagg_complaint f = h_false_complaint(&w.h, relay, 0);
    assert_int_equal(h_complain_as(&w.h, relay, &f, 1, 1), FEDREC_OK);
    assert_false(w.h.excluded);
    fedreci_wire_env *res = h_unmask(&w.h, h_masked(&w.h, NULL, 1, 0, 0), 0);
    assert_int_equal(res->body_case, FEDREC__V1__ENVELOPE__BODY_ROUND_RESULT);
    assert_true(res->round_result->completed);
    fedreci_wire_free(res);
    honest_finish(&w, FEDRECI_SESSION_COMPLETED);
    expect_completed(&w, r, 1);
    world_free(&w);
    th_daemon_stop(&w.d, 1, 0);
}

/* A dealer whose shares rebuild another b than the one it committed to: the
 * round aborts naming it (the mask cannot be removed), nothing is
 * committed; it is refused afterwards, also after the coordinator restarts
 * (the exclusion is in the database), and the honest clients complete. */
static void test_inconsistent_dealer(void **state)
{
    (void)state;
    world w;
    world_start(&w);
    fedrec_err code;
    uint64_t v0 = db_model_version(&w.d);
    honest_start(&w);
    assert_int_equal(h_checkin(&w.h, &code), 1);
    uint64_t r = w.h.round.secagg.round_id;
    h_advertise(&w.h);
    h_commit_other_b(&w.h);
    fedreci_wire_env *res = h_unmask(&w.h, h_masked(&w.h, h_share(&w.h), 1, 0, 0), 0);
    assert_int_equal(res->body_case, FEDREC__V1__ENVELOPE__BODY_ROUND_RESULT);
    assert_false(res->round_result->completed);
    fedreci_wire_free(res);
    honest_finish(&w, FEDRECI_SESSION_ABORTED);
    expect_aborted(&w, r, "committed b", w.h.id, v0);
    /* restart on the same database: the exclusion is remembered */
    h_free(&w.h);
    hostile keep = w.h;
    th_daemon_stop(&w.d, 1, 1);
    daemon_launch(&w.d, 1);
    h_init(&w.h, w.d.url);
    memcpy(w.h.pk, keep.pk, sizeof w.h.pk);
    memcpy(w.h.sk, keep.sk, sizeof w.h.sk);
    w.h.id = keep.id;
    fedreci_wire_hdr hd = {w.h.id, 0, FEDRECI_WIRE_STAGE_CHECKIN};
    nng_msg *m = NULL;
    assert_int_equal(fedreci_wire_enc_checkin(&m, &hd, w.h.pk, 0, 1), FEDREC_OK);
    expect_error(h_call(&w.h, w.h.s, m, &hd, w.h.sk, 0), FEDREC_ERR_NOT_SELECTED,
                 "a culprit after a restart");
    honest_start(&w);
    honest_finish(&w, FEDRECI_SESSION_COMPLETED);
    expect_completed(&w, r + 1, 0);
    world_free(&w);
    th_daemon_stop(&w.d, 1, 0);
}

/* clients.opted_out of id in the database (-1: no row). */
static int db_opted_out(const th_daemon *d, uint64_t id)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(d->db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    sqlite3_stmt *q = NULL;
    assert_int_equal(
        sqlite3_prepare_v2(db, "SELECT opted_out FROM clients WHERE client_id = ?", -1, &q, NULL),
        SQLITE_OK);
    sqlite3_bind_int64(q, 1, (sqlite3_int64)id);
    int v = sqlite3_step(q) == SQLITE_ROW ? sqlite3_column_int(q, 0) : -1;
    sqlite3_finalize(q);
    sqlite3_close(db);
    return v;
}

/* A signed check-in of h (opted_in) stamped sent_ms (0: now), as bytes. */
static uint8_t *checkin_bytes(const hostile *h, int opted_in, uint64_t sent_ms, size_t *n)
{
    fedreci_wire_hdr hd = {h->id, 0, FEDRECI_WIRE_STAGE_CHECKIN};
    nng_msg *m = NULL;
    assert_int_equal(fedreci_wire_enc_checkin_at(&m, &hd, h->pk, 0, opted_in,
                                                 sent_ms ? sent_ms : fedreci_wire_checkin_clock()),
                     FEDREC_OK);
    assert_int_equal(fedreci_wire_sign(m, &hd, h->sk), FEDREC_OK);
    *n = nng_msg_len(m);
    uint8_t *b = malloc(*n);
    assert_non_null(b);
    memcpy(b, nng_msg_body(m), *n);
    nng_msg_free(m);
    return b;
}

/* A captured check-in replayed (docs/protocol.md "Replayed check-ins"). The
 * victim (the hostile's identity, behaving) checks in opted in, then opts
 * out; an attacker on the network replays the captured opted-in check-in
 * from another connection: refused (DUPLICATE), the victim stays opted out
 * in the registry and the database, and the next round's cohort is the
 * three honest clients only (a replay taken would have put the victim back
 * in the waiting list and drawn it into the cohort as a dropout). A
 * check-in signed by the victim's key but stamped an hour ago or an hour
 * ahead is refused (RANGE); after a restart, a check-in made before it
 * (captured in flight) is refused, and the victim's next check-in is
 * taken. */
static void test_replayed_checkin(void **state)
{
    (void)state;
    world w;
    world_start(&w);
    size_t n_in, n_out;
    uint8_t *in = checkin_bytes(&w.h, 1, 0, &n_in);
    /* taken (alone, below the minimum cohort: answered at the deadline) */
    fedreci_wire_env *e = call_bytes(w.h.s, in, n_in);
    assert_int_equal(e->body_case, FEDREC__V1__ENVELOPE__BODY_CHECK_IN_REPLY);
    fedreci_wire_free(e);
    assert_int_equal(db_opted_out(&w.d, w.h.id), 0);
    uint8_t *out = checkin_bytes(&w.h, 0, 0, &n_out);
    e = call_bytes(w.h.s, out, n_out);
    assert_int_equal(e->body_case, FEDREC__V1__ENVELOPE__BODY_CHECK_IN_REPLY);
    assert_int_equal(e->check_in_reply->status, FEDREC__V1__CHECK_IN_REPLY__STATUS__OPTED_OUT);
    fedreci_wire_free(e);
    assert_int_equal(db_opted_out(&w.d, w.h.id), 1);

    /* the replays, from the attacker's connection */
    expect_error(call_bytes(w.h.side, in, n_in), FEDREC_ERR_DUPLICATE, "the opted-in check-in");
    expect_error(call_bytes(w.h.side, out, n_out), FEDREC_ERR_DUPLICATE, "the opt-out itself");
    assert_int_equal(db_opted_out(&w.d, w.h.id), 1);
    uint64_t now = fedreci_wire_checkin_clock();
    size_t n_old, n_new;
    uint8_t *old = checkin_bytes(&w.h, 1, now - 3600000, &n_old);
    uint8_t *ahead = checkin_bytes(&w.h, 1, now + 3600000, &n_new);
    fedreci_wire_env *er = call_bytes(w.h.side, old, n_old);
    expect_error(er, FEDREC_ERR_RANGE, "an hour old");
    er = call_bytes(w.h.side, ahead, n_new);
    expect_error(er, FEDREC_ERR_RANGE, "an hour ahead");
    assert_int_equal(db_opted_out(&w.d, w.h.id), 1);

    /* the next round: the three honest clients, the victim not drawn */
    honest_start(&w);
    honest_finish(&w, FEDRECI_SESSION_COMPLETED);
    expect_completed(&w, 1, 0);
    assert_int_equal(
        th_log_count(&w.d, "[round 1] round completed: cohort 3, survivors 3", NULL, NULL), 1);

    /* a check-in made (and captured) before a restart, replayed after it */
    size_t n_pre;
    uint8_t *pre = checkin_bytes(&w.h, 1, 0, &n_pre);
    hostile keep = w.h;
    nng_close(w.h.s);
    nng_close(w.h.side);
    th_daemon_stop(&w.d, 1, 1);
    daemon_launch(&w.d, 1);
    for (int i = 0; i < 2; i++) {
        nng_socket *sk = i ? &w.h.side : &w.h.s;
        assert_int_equal(nng_req0_open(sk), 0);
        nng_socket_set_ms(*sk, NNG_OPT_RECVTIMEO, 60000);
        nng_socket_set_ms(*sk, NNG_OPT_REQ_RESENDTIME, (nng_duration)0x7fffffff);
        assert_int_equal(nng_dial(*sk, w.d.url, NULL, 0), 0);
    }
    assert_int_equal(w.h.id, keep.id);
    expect_error(call_bytes(w.h.side, pre, n_pre), FEDREC_ERR_RANGE,
                 "a check-in made before the restart");
    assert_int_equal(db_opted_out(&w.d, w.h.id), 1);
    /* the victim's own next check-in (opting in again) is taken */
    size_t n_again;
    uint8_t *again = checkin_bytes(&w.h, 1, 0, &n_again);
    e = call_bytes(w.h.s, again, n_again);
    assert_int_equal(e->body_case, FEDREC__V1__ENVELOPE__BODY_CHECK_IN_REPLY);
    fedreci_wire_free(e);
    assert_int_equal(db_opted_out(&w.d, w.h.id), 0);
    free(in), free(out), free(old), free(ahead), free(pre), free(again);
    world_free(&w); /* the hostile and the honest clients' buffers */
    th_daemon_stop(&w.d, 1, 0);
}

/* ---- the steps issue 14 added: the graph seed and the consistency check ------------- */

/* The round row of r must name `ids` (n, sorted) under "key". */
static void expect_named(world *w, uint64_t r, const char *key, const uint64_t *ids, size_t n)
{
    char st[16], want[200];
    char *json = th_daemon_round_row(&w->d, r, st);
    size_t o = (size_t)snprintf(want, sizeof want, "\"%s\":[", key);
    for (size_t i = 0; i < n; i++)
        o += (size_t)snprintf(want + o, sizeof want - o, "%s\"%016llx\"", i ? "," : "",
                              (unsigned long long)ids[i]);
    snprintf(want + o, sizeof want - o, "]");
    if (!strstr(json, want)) {
        th_log_dump(&w->d);
        fail_msg("round %llu metrics %s do not hold %s", (unsigned long long)r, json, want);
    }
    free(json);
}

/* Two hostile clients check in together; both must be drawn into one round. */
static uint64_t pair_checkin(hostile *a, hostile *b)
{
    fedrec_err code = FEDREC_OK;
    char text[200];
    h_checkin_send(a);
    h_checkin_send(b);
    if (!h_checkin_recv(a, &code, text, sizeof text) ||
        !h_checkin_recv(b, &code, text, sizeof text))
        fail_msg("hostile check-in refused: %s", text);
    assert_int_equal(a->round.secagg.round_id, b->round.secagg.round_id);
    return a->round.secagg.round_id;
}

/* Both check in and must be refused as benched until round `until`. */
static void pair_benched(hostile *a, hostile *b, uint64_t until)
{
    char want[64];
    snprintf(want, sizeof want, "benched until round %llu", (unsigned long long)until);
    hostile *p[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        fedrec_err code = FEDREC_OK;
        char text[200] = "";
        h_checkin_send(p[i]);
        assert_int_equal(h_checkin_recv(p[i], &code, text, sizeof text), 0);
        assert_int_equal(code, FEDREC_ERR_NOT_SELECTED);
        if (!strstr(text, want))
            fail_msg("check-in refused with '%s', want '%s'", text, want);
    }
}

/* One member that advertises and then goes away without revealing its
 * graph seed contribution is left out by a retry of the seed step (the
 * default 3 retries): the honest clients' round completes with their exact
 * sum, the round log says so ("seed_attempts":2), and nobody is benched. */
static void test_seed_one_withheld(void **state)
{
    (void)state;
    world w;
    world_start(&w);
    fedrec_err code;
    honest_start(&w);
    assert_int_equal(h_checkin(&w.h, &code), 1);
    uint64_t r = w.h.round.secagg.round_id;
    h_advert_send(&w.h);
    h_advert_recv(&w.h);
    h_reconnect(&w.h, w.d.url);
    honest_finish(&w, FEDRECI_SESSION_COMPLETED);
    expect_completed(&w, r, 0);
    expect_named(&w, r, "seed_dropped", &w.h.id, 1);
    for (int i = 0; i < N_HONEST; i++)
        assert_int_equal(w.g[i].res.seed_attempts, 2);
    assert_int_equal(th_log_count(&w.d, "withheld its graph seed", NULL, NULL), 0);
    world_free(&w);
    th_daemon_stop(&w.d, 1, 0);
}

/* Withheld graph seed contributions (docs/protocol.md "The graph seed"),
 * with seed step retries off (--seed-retries 0, test_seed_retry has them
 * on). Two members that advertise and then go away without revealing abort
 * the round (more than FEDRECI_SECAGG_SEED_MISSING_MAX = 0 missing and no
 * retry left), which is never committed; both are named in the round log
 * ("seed_withheld") and benched: refused at the next check-in, the next
 * round completes exactly without them. The bench is kept in the database:
 * the daemon is restarted after the first one and still refuses both until
 * their round. Doing it again (after the restart) doubles the bench (two
 * rounds: the strikes were kept too). Cohort 5: three honest clients and
 * two hostile ones. */
static void test_seed_withheld(void **state)
{
    (void)state;
    world w;
    static const char *const no_retry[] = {"--seed-retries", "0", NULL};
    world_start_with(&w, "5", no_retry);
    hostile h2;
    h_init(&h2, w.d.url);
    uint64_t r = 0;
    /* two withholders, twice */
    uint64_t hid[2] = {w.h.id < h2.id ? w.h.id : h2.id, w.h.id < h2.id ? h2.id : w.h.id};
    for (int k = 0; k < 2; k++) {
        uint64_t vb = db_model_version(&w.d);
        honest_start(&w);
        r = pair_checkin(&w.h, &h2);
        h_advert_send(&w.h);
        h_advert_send(&h2);
        h_advert_recv(&w.h);
        h_advert_recv(&h2);
        h_reconnect(&w.h, w.d.url);
        h_reconnect(&h2, w.d.url);
        honest_finish(&w, FEDRECI_SESSION_ABORTED);
        expect_aborted(&w, r, "revealed their graph seed contribution", 0, vb);
        expect_named(&w, r, "seed_withheld", hid, 2);
        /* benched: 1 round the first time, 2 the second */
        pair_benched(&w.h, &h2, r + (k == 0 ? 1 : 2));
        if (k == 0) {
            /* the bench is in the database and survives a restart: still
               refused until round r + 1 after it, and the strikes stay (the
               second bench, after the restart, is 2 rounds, not 1) */
            for (int i = 0; i < 2; i++)
                assert_int_equal(db_bench(&w.d, hid[i], NULL), r + 1);
            expect_bench_figures(&w.d, 2, 2);
            th_daemon_stop(&w.d, 1, 1);
            daemon_launch(&w.d, 1);
            h_reconnect(&w.h, w.d.url);
            h_reconnect(&h2, w.d.url);
            log_wait(&w.d, "restored 2 benched clients", NULL);
            expect_bench_figures(&w.d, 2, 0); /* the total counts since the start */
            pair_benched(&w.h, &h2, r + 1);
        } else {
            expect_bench_figures(&w.d, 2, 2);
        }
        honest_round_without(&w, r + 1, 0);
    }
    uint32_t strikes = 0;
    assert_int_equal(db_bench(&w.d, hid[0], &strikes), r + 2);
    assert_int_equal(strikes, 2);
    /* an operator lifts one bench (docs/operations.md: the SQL, daemon
       stopped): that client is drawn into round r + 2 and completes it with
       the honest clients; the other is still refused until then */
    th_daemon_stop(&w.d, 1, 1);
    sql_unbench(&w.d, w.h.id);
    daemon_launch(&w.d, 1);
    h_reconnect(&w.h, w.d.url);
    h_reconnect(&h2, w.d.url);
    expect_bench_figures(&w.d, 1, 0);
    {
        fedrec_err code = FEDREC_OK;
        char text[200] = "";
        h_checkin_send(&h2);
        assert_int_equal(h_checkin_recv(&h2, &code, text, sizeof text), 0);
        assert_int_equal(code, FEDREC_ERR_NOT_SELECTED);
        assert_non_null(strstr(text, "benched until round"));
        honest_start(&w);
        assert_int_equal(h_checkin(&w.h, &code), 1);
        assert_int_equal(w.h.round.secagg.round_id, r + 2);
        h_honest_round(&w.h);
        honest_finish(&w, FEDRECI_SESSION_COMPLETED);
        expect_completed(&w, r + 2, 1);
    }
    h_free(&h2);
    world_free(&w);
    th_daemon_stop(&w.d, 1, 0);
}

/* Sends its SeedReveal of `attempt` (MACed) on h->s without waiting. */
static void h_reveal_send(hostile *h, uint32_t attempt,
                          const uint8_t contribution[FEDRECI_SECAGG_CONTRIB_BYTES])
{
    fedreci_wire_hdr hd = {h->id, h->round.secagg.round_id, FEDRECI_WIRE_STAGE_SEED};
    nng_msg *m = NULL;
    assert_int_equal(fedreci_wire_enc_seed_reveal_attempt(&m, &hd, attempt, contribution),
                     FEDREC_OK);
    uint8_t key[32];
    assert_int_equal(fedreci_secagg_client_mac_key(h->sa, h->round.coord_pk, key), FEDREC_OK);
    assert_int_equal(fedreci_wire_mac(m, key), FEDREC_OK);
    assert_int_equal(nng_sendmsg(h->s, m, 0), 0);
}

/* The n hostile clients hs check in together; each must be selected. */
static void all_selected(hostile **hs, int n)
{
    for (int i = 0; i < n; i++)
        h_checkin_send(hs[i]);
    for (int i = 0; i < n; i++) {
        fedrec_err code = FEDREC_OK;
        char text[200];
        if (!h_checkin_recv(hs[i], &code, text, sizeof text))
            fail_msg("hostile %d refused: %s", i, text);
    }
}

/* Three hostile members against three honest clients (cohort 6, k = 2,
 * t = 2, the default 3 seed step retries): two advertise and go away
 * without revealing their graph seed contributions; the third reveals,
 * is sent the retry's roster (attempt 1, without the two) and then goes
 * away too. Each attempt's missing members are left out by a retry
 * instead of aborting the round: the honest clients reveal three times
 * (the session's seed_attempts), the round completes with their exact sum
 * (the oracle), its row says "seed_attempts":3 and names the three under
 * "seed_dropped", the log has a line per retry, and nobody is benched
 * (all three are selected again next round, which completes with the
 * first two playing honestly and the third going away once more). A late
 * reveal of attempt 0 after the retry is refused by its attempt number
 * and names nobody a culprit. */
static void test_seed_retry(void **state)
{
    (void)state;
    world w;
    static const char *const more[] = {"--neighbors", "2", NULL};
    world_start_with(&w, "6", more);
    hostile h2, h3;
    h_init(&h2, w.d.url);
    h_init(&h3, w.d.url);
    hostile *hs[3] = {&w.h, &h2, &h3};
    uint64_t vb = db_model_version(&w.d);
    honest_start(&w);
    all_selected(hs, 3);
    uint64_t r = w.h.round.secagg.round_id;
    assert_int_equal(h3.round.secagg.round_id, r);
    assert_int_equal(w.h.round.secagg.seed_retries, FEDRECI_SECAGG_SEED_RETRIES_DEFAULT);
    for (int i = 0; i < 3; i++)
        h_advert_send(hs[i]);
    for (int i = 0; i < 3; i++)
        h_advert_recv(hs[i]);
    assert_int_equal(h3.n_members, 6);
    /* h3 reveals attempt 0; the other two go away */
    uint8_t c0[FEDRECI_SECAGG_CONTRIB_BYTES];
    h_contribution(&h3, c0);
    h_reveal_send(&h3, 0, c0);
    h_reconnect(&w.h, w.d.url);
    h_reconnect(&h2, w.d.url);
    /* its reveal is answered with the retry: attempt 1, four members */
    fedreci_wire_env *env = h_reply(&h3);
    assert_int_equal(env->body_case, FEDREC__V1__ENVELOPE__BODY_ROSTER);
    uint32_t attempt = 0;
    assert_int_equal(fedreci_wire_get_seed_attempt(env, &attempt), FEDREC_OK);
    assert_int_equal(attempt, 1);
    fedreci_secagg_advert *ro = NULL;
    size_t m = 0;
    const uint8_t *digest = NULL;
    assert_int_equal(fedreci_wire_get_roster(env, h3.id, 2, 6, &ro, &m), FEDREC_OK);
    assert_int_equal(fedreci_wire_get_seed_digest(env, &digest), FEDREC_OK);
    assert_int_equal(m, 4);
    uint64_t ids1[4];
    for (size_t i = 0; i < m; i++) {
        ids1[i] = ro[i].client_id;
        assert_true(ids1[i] != w.h.id && ids1[i] != h2.id);
    }
    uint8_t c1[FEDRECI_SECAGG_CONTRIB_BYTES];
    assert_int_equal(fedreci_secagg_client_reveal_attempt(h3.sa, 1, ids1, m, digest, c1),
                     FEDREC_OK);
    free(ro);
    fedreci_wire_free(env);
    /* attempt 0's contribution again, now: refused by its attempt number
       (its sender is no culprit); then h3 goes away without revealing */
    h_reveal_send(&h3, 0, c0);
    expect_error(h_reply(&h3), FEDREC_ERR_STAGE, "a reveal of attempt 0 in attempt 1");
    h_reconnect(&h3, w.d.url);
    honest_finish(&w, FEDRECI_SESSION_COMPLETED);
    for (int i = 0; i < N_HONEST; i++)
        assert_int_equal(w.g[i].res.seed_attempts, 3);
    expect_completed(&w, r, 0);
    assert_true(db_model_version(&w.d) > vb);
    uint64_t dropped[3] = {w.h.id, h2.id, h3.id};
    for (int a = 0; a < 3; a++) /* sorted */
        for (int b = a + 1; b < 3; b++)
            if (dropped[b] < dropped[a]) {
                uint64_t t = dropped[a];
                dropped[a] = dropped[b];
                dropped[b] = t;
            }
    expect_named(&w, r, "seed_dropped", dropped, 3);
    {
        char st[16];
        char *json = th_daemon_round_row(&w.d, r, st);
        if (!strstr(json, "\"seed_attempts\":3"))
            fail_msg("round %llu metrics %s: want seed_attempts 3", (unsigned long long)r, json);
        if (strstr(json, "culprits") || strstr(json, "seed_withheld"))
            fail_msg("round %llu metrics %s: nobody is a culprit or withheld",
                     (unsigned long long)r, json);
        free(json);
    }
    char line[80];
    snprintf(line, sizeof line, "[round %llu] seed step attempt 0: 2 of 6 members",
             (unsigned long long)r);
    assert_int_equal(th_log_count(&w.d, line, NULL, NULL), 1);
    snprintf(line, sizeof line, "[round %llu] seed step attempt 1: 1 of 4 members",
             (unsigned long long)r);
    assert_int_equal(th_log_count(&w.d, line, NULL, NULL), 1);
    assert_int_equal(th_log_count(&w.d, "withheld its graph seed", NULL, NULL), 0);
    expect_bench_figures(&w.d, 0, 0);
    /* next round: none of the three is benched; two go away after their
       adverts again, the first plays the round through, the retry
       included (its input is in the oracle) */
    honest_start(&w);
    all_selected(hs, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(hs[i]->round.secagg.round_id, r + 1);
    for (int i = 0; i < 3; i++)
        h_advert_send(hs[i]);
    for (int i = 0; i < 3; i++)
        h_advert_recv(hs[i]);
    uint8_t ca[FEDRECI_SECAGG_CONTRIB_BYTES];
    h_contribution(&w.h, ca);
    h_reveal_send(&w.h, 0, ca);
    h_reconnect(&h2, w.d.url);
    h_reconnect(&h3, w.d.url);
    env = h_reply(&w.h);
    assert_int_equal(env->body_case, FEDREC__V1__ENVELOPE__BODY_ROSTER); /* the retry */
    assert_int_equal(fedreci_wire_get_seed_attempt(env, &attempt), FEDREC_OK);
    assert_int_equal(attempt, 1);
    assert_int_equal(fedreci_wire_get_roster(env, w.h.id, 2, 6, &ro, &m), FEDREC_OK);
    assert_int_equal(fedreci_wire_get_seed_digest(env, &digest), FEDREC_OK);
    assert_int_equal(m, 4);
    w.h.n_members = m;
    for (size_t j = 0; j < m; j++)
        w.h.members[j] = ro[j].client_id;
    free(ro);
    assert_int_equal(fedreci_secagg_client_reveal_attempt(w.h.sa, 1, w.h.members, m, digest, c1),
                     FEDREC_OK);
    fedreci_wire_free(env);
    h_reveal_send(&w.h, 1, c1);
    h_take_seed_relay(&w.h, h_reply(&w.h));
    fedreci_wire_env *res = h_unmask(&w.h, h_masked(&w.h, h_share(&w.h), 1, 0, 0), 0);
    assert_int_equal(res->body_case, FEDREC__V1__ENVELOPE__BODY_ROUND_RESULT);
    assert_true(res->round_result->completed);
    fedreci_wire_free(res);
    honest_finish(&w, FEDRECI_SESSION_COMPLETED);
    expect_completed(&w, r + 1, 1);
    uint64_t gone2[2] = {h2.id < h3.id ? h2.id : h3.id, h2.id < h3.id ? h3.id : h2.id};
    expect_named(&w, r + 1, "seed_dropped", gone2, 2);
    assert_int_equal(th_log_count(&w.d, "withheld its graph seed", NULL, NULL), 0);
    h_free(&h2);
    h_free(&h3);
    world_free(&w);
    th_daemon_stop(&w.d, 1, 0);
}

/* A seed contribution that does not open the commitment in its signed
 * advert: refused, and its sender named a culprit on the spot (its later,
 * correct contribution is refused too); it is left out of the seed, the
 * honest clients' round completes with their exact sum, the round log names
 * it, and it is refused afterwards. */
static void test_bad_reveal(void **state)
{
    (void)state;
    world w;
    world_start(&w);
    fedrec_err code;
    honest_start(&w);
    assert_int_equal(h_checkin(&w.h, &code), 1);
    uint64_t r = w.h.round.secagg.round_id;
    h_advert_send(&w.h);
    h_advert_recv(&w.h);
    uint8_t contribution[FEDRECI_SECAGG_CONTRIB_BYTES], bad[FEDRECI_SECAGG_CONTRIB_BYTES];
    h_contribution(&w.h, contribution);
    memcpy(bad, contribution, sizeof bad);
    bad[5] ^= 0x10;
    expect_error(h_reveal_msg(&w.h, w.h.s, w.h.id, bad, 1, 0), FEDREC_ERR_PROTOCOL,
                 "a contribution that does not open its commitment");
    /* refused as a culprit's; or, when the round (which stopped waiting for
       the culprit) already ended, answered with its result: not taken
       either way (on a slow build the honest clients can finish first) */
    fedreci_wire_env *again = h_reveal_msg(&w.h, w.h.s, w.h.id, contribution, 1, 0);
    if (again->body_case == FEDREC__V1__ENVELOPE__BODY_ROUND_RESULT)
        fedreci_wire_free(again);
    else
        expect_error(again, FEDREC_ERR_PROTOCOL, "the right contribution after a wrong one");
    honest_finish(&w, FEDRECI_SESSION_COMPLETED);
    expect_completed(&w, r, 0);
    expect_named(&w, r, "culprits", &w.h.id, 1);
    honest_round_without(&w, r + 1, 1);
    world_free(&w);
    th_daemon_stop(&w.d, 1, 0);
}

/* Seed contributions under the other members' ids (MACed with the
 * hostile's own round key, and signed with its identity key instead): they
 * do not verify and change nothing; each member's own contribution is taken
 * and the round (the hostile then playing honestly) completes exactly. */
static void test_reveal_as_other(void **state)
{
    (void)state;
    world w;
    world_start(&w);
    fedrec_err code;
    honest_start(&w);
    assert_int_equal(h_checkin(&w.h, &code), 1);
    uint64_t r = w.h.round.secagg.round_id;
    h_advert_send(&w.h);
    h_advert_recv(&w.h);
    uint8_t contribution[FEDRECI_SECAGG_CONTRIB_BYTES];
    h_contribution(&w.h, contribution);
    for (size_t i = 0; i < w.h.n_members; i++) {
        if (w.h.members[i] == w.h.id)
            continue;
        for (int mac = 0; mac < 2; mac++)
            expect_error(h_reveal_msg(&w.h, w.h.side, w.h.members[i], contribution, mac, 0),
                         FEDREC_ERR_SIGNATURE, "a contribution under another member's id");
    }
    /* its own, signed instead of MACed: not the seed step's authentication */
    expect_error(h_reveal_msg(&w.h, w.h.side, w.h.id, contribution, 0, 0), FEDREC_ERR_SIGNATURE,
                 "a signed (not MACed) contribution");
    h_take_seed_relay(&w.h, h_reveal_msg(&w.h, w.h.s, w.h.id, contribution, 1, 1));
    fedreci_wire_env *res = h_unmask(&w.h, h_masked(&w.h, h_share(&w.h), 1, 0, 0), 0);
    assert_int_equal(res->body_case, FEDREC__V1__ENVELOPE__BODY_ROUND_RESULT);
    assert_true(res->round_result->completed);
    fedreci_wire_free(res);
    honest_finish(&w, FEDRECI_SESSION_COMPLETED);
    expect_completed(&w, r, 1);
    world_free(&w);
    th_daemon_stop(&w.d, 1, 0);
}

/* Before its own consistency message in round 2: its round-1 message
 * replayed as sent (answered from round 1's record) and with the round id
 * rewritten (does not verify), consistency messages under each honest
 * member's id (MACed with its own key: do not verify), and one under its
 * own id with tags for one neighbour of its three (refused, nothing
 * counted). */
static void cons_attacks(hostile *h)
{
    const world *w = h->arg;
    uint64_t r1 = h->old_round, r2 = h->round.secagg.round_id;
    const uint8_t *old = h->sent[FEDRECI_WIRE_STAGE_CONSISTENCY];
    size_t old_len = h->sent_len[FEDRECI_WIRE_STAGE_CONSISTENCY];
    assert_non_null(old);
    fedreci_wire_env *e = call_bytes(h->side, old, old_len);
    assert_int_equal(e->round_id, r1);
    fedreci_wire_free(e);
    assert_int_equal(fedreci_wire_decode(old, old_len, 64u << 20, &e), FEDREC_OK);
    e->round_id = r2;
    e->mac.len = 0;
    size_t n = fedrec__v1__envelope__get_packed_size(e);
    uint8_t *b = malloc(n + FEDRECI_WIRE_MAC_SUFFIX);
    assert_non_null(b);
    fedrec__v1__envelope__pack(e, b);
    memcpy(b + n, old + old_len - FEDRECI_WIRE_MAC_SUFFIX, FEDRECI_WIRE_MAC_SUFFIX);
    fedreci_wire_free(e);
    expect_error(call_bytes(h->side, b, n + FEDRECI_WIRE_MAC_SUFFIX), FEDREC_ERR_SIGNATURE,
                 "round 1's consistency message under round 2's id");
    free(b);
    uint8_t key[32];
    assert_int_equal(fedreci_secagg_client_mac_key(h->sa, h->round.coord_pk, key), FEDREC_OK);
    for (int i = 0; i < N_HONEST; i++) {
        fedreci_secagg_tag t = {w->g[i].id, h->id, {0}};
        randombytes_buf(t.tag, sizeof t.tag);
        fedreci_wire_hdr hd = {w->g[i].id, r2, FEDRECI_WIRE_STAGE_CONSISTENCY};
        nng_msg *m = NULL;
        uint8_t junk[64];
        randombytes_buf(junk, sizeof junk);
        assert_int_equal(fedreci_wire_enc_consistency(&m, &hd, &t.to, 1, &t, 1, junk, NULL, 0),
                         FEDREC_OK);
        assert_int_equal(fedreci_wire_mac(m, key), FEDREC_OK);
        expect_error(h_call(h, h->side, m, &hd, NULL, 0), FEDREC_ERR_SIGNATURE,
                     "consistency tags under an honest member's id");
        /* its own id, tags for one neighbour of its three (ids are
           implicit: the packed tags must be one per neighbour named
           survivor) */
        t.from = h->id;
        t.to = w->g[i].id;
        hd.client_id = h->id;
        assert_int_equal(fedreci_wire_enc_consistency(&m, &hd, &t.to, 1, &t, 1,
                                                      fedreci_secagg_client_endorsement(h->sa),
                                                      NULL, 0),
                         FEDREC_OK);
        assert_int_equal(fedreci_wire_mac(m, key), FEDREC_OK);
        expect_error(h_call(h, h->side, m, &hd, NULL, 0), FEDREC_ERR_FORMAT,
                     "tags for one neighbour of three");
    }
}

/* Garbage and forged consistency tags, and the previous round's consistency
 * message replayed. The honest clients cannot be told another survivor set
 * by one member: each needs t = 2 endorsements of its 3 neighbours and gets
 * them from the two other honest clients; the hostile's garbage tags (one
 * of them its round-1 tag to that neighbour under a round-2 MAC) are not
 * counted. The round completes with the exact sum, the hostile's input
 * included (it reveals honestly). */
static void test_consistency_tags(void **state)
{
    (void)state;
    world w;
    world_start(&w);
    fedrec_err code;
    honest_start(&w);
    assert_int_equal(h_checkin(&w.h, &code), 1);
    uint64_t r1 = w.h.round.secagg.round_id;
    h_honest_round(&w.h);
    honest_finish(&w, FEDRECI_SESSION_COMPLETED);
    expect_completed(&w, r1, 1);
    /* round 2 */
    honest_start(&w);
    assert_int_equal(h_checkin(&w.h, &code), 1);
    uint64_t r2 = w.h.round.secagg.round_id;
    w.h.before_cons = cons_attacks;
    w.h.arg = &w;
    w.h.cons_mode = 1;
    h_advertise(&w.h);
    fedreci_wire_env *res = h_unmask(&w.h, h_masked(&w.h, h_share(&w.h), 1, 0, 0), 0);
    assert_int_equal(res->body_case, FEDREC__V1__ENVELOPE__BODY_ROUND_RESULT);
    assert_true(res->round_result->completed);
    fedreci_wire_free(res);
    honest_finish(&w, FEDRECI_SESSION_COMPLETED);
    expect_completed(&w, r2, 1);
    world_free(&w);
    th_daemon_stop(&w.d, 1, 0);
}

/* The round row of r: completed, with the oracle's sum plus the quantized
 * input of `extra` (a library client beside the world's). */
static void expect_completed_with(world *w, uint64_t r, int with_hostile, const th_gclient *extra)
{
    char line[64];
    snprintf(line, sizeof line, "[round %llu] round completed", (unsigned long long)r);
    log_wait(&w->d, line, NULL);
    uint32_t sum[D] = {0};
    for (int i = 0; i < N_HONEST; i++)
        for (int j = 0; j < D; j++)
            sum[j] += w->g[i].q[j];
    for (int j = 0; j < D; j++)
        sum[j] += (with_hostile ? w->h.q[j] : 0) + extra->q[j];
    uint8_t b[32];
    char hex[65], want[100], st[16];
    crypto_generichash(b, 32, (const uint8_t *)sum, sizeof sum, NULL, 0);
    sodium_bin2hex(hex, sizeof hex, b, 32);
    snprintf(want, sizeof want, "\"sum_b2b\":\"%s\"", hex);
    char *json = th_daemon_round_row(&w->d, r, st);
    if (strcmp(st, "completed") || !strstr(json, want)) {
        th_log_dump(&w->d);
        fail_msg("round %llu: status %s, metrics %s; want the oracle's %s", (unsigned long long)r,
                 st, json, want);
    }
    free(json);
}

/* The consistency step with two members that do not endorse by tag
 * (docs/threat-model.md): cohort 5 (k = 4, t = 3); one member (the hostile)
 * sends garbage tags and another (a library client with the dropout hook)
 * goes silent after its masked input. Each honest member then holds 2
 * valid tags of the 3 it needs, asks the coordinator for the signatures of
 * the other two neighbours, and gets the hostile's (verified by the
 * coordinator, and by the member against the hostile's identity key): 3
 * endorsements, it reveals. The round completes with the exact sum of all
 * five inputs (the silent member's masked input was in, and its b is
 * rebuilt by its four holders). Before protocol version 6 this aborted the
 * round with nobody named. */
static void test_consistency_garbage_and_silent(void **state)
{
    (void)state;
    world w;
    world_start_cohort(&w, "5");
    th_gclient quiet;
    th_gclient_init(&quiet, D);
    fedreci_session_config sc;
    th_gclient_config(&quiet, &sc, w.d.url, 60000);
    sc.dropout_stage = 3;
    fedrec_err code;
    honest_start(&w);
    th_gclient_start_with(&quiet, &sc);
    assert_int_equal(h_checkin(&w.h, &code), 1);
    uint64_t r = w.h.round.secagg.round_id;
    assert_int_equal(w.h.round.secagg.n, 5);
    assert_int_equal(w.h.round.secagg.t, 3);
    w.h.cons_mode = 1;
    h_advertise(&w.h);
    fedreci_wire_env *req = h_masked(&w.h, h_share(&w.h), 1, 0, 0);
    th_gclient_finish(&quiet);
    assert_int_equal(quiet.res.outcome, FEDRECI_SESSION_DROPPED);
    fedreci_wire_env *res = h_unmask(&w.h, req, 0);
    assert_int_equal(res->body_case, FEDREC__V1__ENVELOPE__BODY_ROUND_RESULT);
    assert_true(res->round_result->completed);
    fedreci_wire_free(res);
    honest_finish(&w, FEDRECI_SESSION_COMPLETED);
    expect_completed_with(&w, r, 1, &quiet);
    th_gclient_free(&quiet);
    world_free(&w);
    th_daemon_stop(&w.d, 1, 0);
}

/* The same two members, but the garbling one also sends a garbage
 * endorsement signature: the coordinator refuses its message and names it
 * a culprit on the spot (the message is MACed with its round key, so the
 * signature is its own), and its valid endorsement sent afterwards is
 * refused too. Now each honest member is endorsed by 2 of its neighbours,
 * fewer than t = 3: the coordinator sees that no secret can be rebuilt and
 * aborts the round at the consistency step, never committed, naming the
 * culprit ("culprits") and the silent member ("consistency_withheld",
 * benched for one round). The next round, without either, completes with
 * the honest clients' exact sum. */
static void test_consistency_bad_signature(void **state)
{
    (void)state;
    world w;
    world_start_cohort(&w, "5");
    th_gclient quiet;
    th_gclient_init(&quiet, D);
    fedreci_session_config sc;
    th_gclient_config(&quiet, &sc, w.d.url, 60000);
    sc.dropout_stage = 3;
    uint64_t v0 = db_model_version(&w.d);
    fedrec_err code;
    honest_start(&w);
    th_gclient_start_with(&quiet, &sc);
    assert_int_equal(h_checkin(&w.h, &code), 1);
    uint64_t r = w.h.round.secagg.round_id;
    w.h.cons_mode = 2;
    h_advertise(&w.h);
    fedreci_wire_env *req = h_masked(&w.h, h_share(&w.h), 1, 0, 0);
    th_gclient_finish(&quiet);
    assert_int_equal(quiet.res.outcome, FEDRECI_SESSION_DROPPED);
    h_unmask_send(&w.h, req, 0);
    assert_true(w.h.refused_cons);
    honest_finish(&w, FEDRECI_SESSION_ABORTED);
    expect_aborted(&w, r, "revealing holders", w.h.id, v0);
    expect_named(&w, r, "culprits", &w.h.id, 1);
    expect_named(&w, r, "consistency_withheld", &quiet.id, 1);
    /* the silent member is benched: its next check-in is refused */
    th_gclient_config(&quiet, &sc, w.d.url, 60000);
    th_gclient_start_with(&quiet, &sc);
    th_gclient_finish(&quiet);
    if (quiet.res.err != FEDREC_ERR_NOT_SELECTED || !strstr(quiet.res.text, "benched until round"))
        fail_msg("silent member's check-in: %s (%s)", fedrec_strerror(quiet.res.err),
                 quiet.res.text);
    honest_round_without(&w, r + 1, 1);
    th_gclient_free(&quiet);
    world_free(&w);
    th_daemon_stop(&w.d, 1, 0);
}

/* Two members that endorse the survivor set and then withhold their
 * reveals (the hostile, and a library client that stops before its unmask
 * shares), cohort 5 (k = 4, t = 3): every honest member's secret keeps 2
 * revealing holders of the 3 it needs, so the unmask stage aborts the
 * round, never committed. The coordinator had counted on both to reveal
 * (endorsed by t of their neighbours): it names them under
 * "unmask_withheld" and benches them for one round; the next round, without
 * them, completes with the honest clients' exact sum. Before, the round
 * aborted with nobody named. */
static void test_unmask_withheld(void **state)
{
    (void)state;
    world w;
    world_start_cohort(&w, "5");
    th_gclient quiet;
    th_gclient_init(&quiet, D);
    fedreci_session_config sc;
    th_gclient_config(&quiet, &sc, w.d.url, 60000);
    sc.dropout_stage = 4;
    uint64_t v0 = db_model_version(&w.d);
    fedrec_err code;
    honest_start(&w);
    th_gclient_start_with(&quiet, &sc);
    assert_int_equal(h_checkin(&w.h, &code), 1);
    uint64_t r = w.h.round.secagg.round_id;
    w.h.no_reveal = 1;
    h_advertise(&w.h);
    h_unmask_send(&w.h, h_masked(&w.h, h_share(&w.h), 1, 0, 0), 0);
    h_reconnect(&w.h, w.d.url); /* goes away without its reveals */
    th_gclient_finish(&quiet);
    assert_int_equal(quiet.res.outcome, FEDRECI_SESSION_DROPPED);
    honest_finish(&w, FEDRECI_SESSION_ABORTED);
    expect_aborted(&w, r, "fewer than t", 0, v0);
    uint64_t named[2] = {w.h.id < quiet.id ? w.h.id : quiet.id,
                         w.h.id < quiet.id ? quiet.id : w.h.id};
    expect_named(&w, r, "unmask_withheld", named, 2);
    /* benched for the next round */
    char text[200] = "";
    h_checkin_send(&w.h);
    assert_int_equal(h_checkin_recv(&w.h, &code, text, sizeof text), 0);
    assert_int_equal(code, FEDREC_ERR_NOT_SELECTED);
    assert_non_null(strstr(text, "benched until round"));
    honest_round_without(&w, r + 1, 0);
    th_gclient_free(&quiet);
    world_free(&w);
    th_daemon_stop(&w.d, 1, 0);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_forged_ids, th_daemon_teardown),
        cmocka_unit_test_teardown(test_junk_flood, th_daemon_teardown),
        cmocka_unit_test_teardown(test_replay_and_other_stage, th_daemon_teardown),
        cmocka_unit_test_teardown(test_wrong_unmask_shares, th_daemon_teardown),
        cmocka_unit_test_teardown(test_huge_update, th_daemon_teardown),
        cmocka_unit_test_teardown(test_forged_weight, th_daemon_teardown),
        cmocka_unit_test_teardown(test_inconsistent_dealer, th_daemon_teardown),
        cmocka_unit_test_teardown(test_garbage_bundle, th_daemon_teardown),
        cmocka_unit_test_teardown(test_garbage_to_all, th_daemon_teardown),
        cmocka_unit_test_teardown(test_false_complaint, th_daemon_teardown),
        cmocka_unit_test_teardown(test_false_complaint_real_bundle, th_daemon_teardown),
        cmocka_unit_test_teardown(test_replayed_checkin, th_daemon_teardown),
        cmocka_unit_test_teardown(test_seed_one_withheld, th_daemon_teardown),
        cmocka_unit_test_teardown(test_seed_withheld, th_daemon_teardown),
        cmocka_unit_test_teardown(test_seed_retry, th_daemon_teardown),
        cmocka_unit_test_teardown(test_bad_reveal, th_daemon_teardown),
        cmocka_unit_test_teardown(test_reveal_as_other, th_daemon_teardown),
        cmocka_unit_test_teardown(test_consistency_tags, th_daemon_teardown),
        cmocka_unit_test_teardown(test_consistency_garbage_and_silent, th_daemon_teardown),
        cmocka_unit_test_teardown(test_consistency_bad_signature, th_daemon_teardown),
        cmocka_unit_test_teardown(test_unmask_withheld, th_daemon_teardown),
    };
    return th_run(tests, sizeof tests / sizeof *tests); /* FEDREC_TEST_FILTER */
}
