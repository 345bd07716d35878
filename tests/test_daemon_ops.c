/* Operations tests of the real `fedrec-coordinator` process (issue 6, "Must
 * show" 3-5): each test starts the daemon (SQLite in a temporary directory,
 * tcp:// or tls+tcp:// on a kernel-chosen port read back from its log, a
 * 50-item catalog, short deadlines) and talks to it over the network:
 *
 *  - test_hostile_input: random bytes, a truncated message, an oversized
 *    message, a wrong-length vector, an unknown round, a stage that is not
 *    open, an unknown stage number, a stage message from a client that never
 *    checked in, a check-in with another identity key, a key advertisement
 *    signed by a key the coordinator does not know, and a duplicate of an
 *    accepted advertisement. Each gets an Error reply with the expected code
 *    and a log line naming the reason, while a round with well-behaved
 *    clients is in progress; that round and a later one complete.
 *  - test_load: N clients (default 1000; FEDREC_LOAD_CLIENTS overrides, and
 *    FEDREC_LOAD_ITEMS the catalog size, default 50) check in at once from this process as sessions
 * on 4 shared REQ sockets, all selected into one SecAgg+ round (8 neighbours) that completes with
 * every one of them; none is refused, asked to retry or timed out. Prints the round's stage times
 * and the daemon's peak memory (VmHWM).
 *  - test_tls_round: a self-signed certificate made with the openssl CLI, the
 *    daemon on tls+tcp://, a round of 3 clients that verify it (a session,
 *    the public API with fedrec_client_set_tls, the fedrec-client CLI with
 *    --tls-ca); a client without the CA cannot get through.
 *  - test_retired_products: a restart with a catalog that drops two
 *    products; a shopper's app that syncs never gets them recommended.
 *  - test_sd_notify: under NOTIFY_SOCKET the daemon says READY=1 once it
 *    listens and STOPPING=1 on SIGTERM (systemd Type=notify).
 *
 * No timed assertions: deadlines only decide who counts as dropped. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <sodium.h>

#include "client/client_internal.h"
#include "client/session.h"
#include "core/err.h"
#include "core/log.h"
#include "proto/wire.h"
#include "harness_engine.h"

extern char **environ;

#define N_ITEMS 50
#define K_FACTORS 4
#define D (N_ITEMS * K_FACTORS + 1)

/* ---- the daemon as a process (tests/harness_engine.h th_daemon) ---------------- */

typedef th_daemon daemon_proc;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Catalog size of the next daemon start (test_load may raise it). */
static int g_items = N_ITEMS;

/* Products P000.. (g_items of them), without the codes listed in `without`
 * (NULL-terminated). */
static void write_catalog(const char *path, const char *const *without)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "code,description\n");
    for (int i = 0; i < g_items; i++) {
        char code[16];
        snprintf(code, sizeof code, "P%03d", i);
        int skip = 0;
        for (size_t j = 0; without && without[j]; j++)
            skip |= !strcmp(without[j], code);
        if (!skip)
            fprintf(f, "%s,product %d\n", code, i);
    }
    fclose(f);
}

/* Starts fedrec-coordinator with the common flags plus `extra` (NULL-
 * terminated) and waits for its listening line. scheme: "tcp" or "tls+tcp".
 * reuse: 1 = restart in d->dir (same database), the catalog without the
 * codes in `without`. */
static void daemon_launch(daemon_proc *d, const char *scheme, const char *const *extra, int reuse,
                          const char *const *without)
{
    if (!reuse)
        th_daemon_init(d, "ops");
    char cat[300], listen[64];
    snprintf(cat, sizeof cat, "%s/catalog.csv", d->dir);
    snprintf(listen, sizeof listen, "%s://127.0.0.1:0", scheme);
    write_catalog(cat, without);
    const char *argv[56];
    int n = 0;
    const char *common[] = {"--catalog", cat, "--factors", "4", "--seed", "7"};
    for (size_t i = 0; i < sizeof common / sizeof *common; i++)
        argv[n++] = common[i];
    for (size_t i = 0; extra && extra[i] && n < 54; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    th_daemon_launch(d, listen, argv, reuse ? "-2" : "");
}

static void daemon_start(daemon_proc *d, const char *scheme, const char *const *extra)
{
    daemon_launch(d, scheme, extra, 0, NULL);
}

/* Peak and current resident memory of the process in KiB (/proc/PID/status). */
static void daemon_mem(const daemon_proc *d, long *hwm_kb, long *rss_kb)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int)d->pid);
    char *s = th_slurp(path);
    *hwm_kb = *rss_kb = -1;
    char *p;
    if (s && (p = strstr(s, "VmHWM:")))
        *hwm_kb = atol(p + 6);
    if (s && (p = strstr(s, "VmRSS:")))
        *rss_kb = atol(p + 6);
    free(s);
}

/* SIGTERM, expects exit status 0; removes the directory unless keep. */
static void daemon_stop_keep(daemon_proc *d, int keep)
{
    th_daemon_stop(d, 0, keep);
}

static void daemon_stop(daemon_proc *d)
{
    daemon_stop_keep(d, 0);
}

/* ---- well-behaved clients: sessions ------------------------------------------------ */

/* A client told to hold blocks in compute_update until released
 * (test_hostile_input); it notes the round it holds in. */
typedef struct hold {
    pthread_mutex_t *mu;
    pthread_cond_t *cv;
    int *held, *released;
    uint64_t round_id;
    uint32_t d;
} hold;

static fedrec_err g_update(th_gclient *g, const fedreci_wire_round *r, float *x, uint32_t *w)
{
    for (uint32_t i = 0; i + 1 < r->secagg.d; i++)
        x[i] = (float)((int)((i + g->id) % 13) - 6) * 0.01f;
    *w = 1;
    hold *h = g->arg;
    if (h) {
        pthread_mutex_lock(h->mu);
        h->round_id = r->secagg.round_id;
        h->d = r->secagg.d;
        *h->held = 1;
        pthread_cond_broadcast(h->cv);
        while (!*h->released)
            pthread_cond_wait(h->cv, h->mu);
        pthread_mutex_unlock(h->mu);
    }
    return FEDREC_OK;
}

/* The identity keys of the clients this process plays, by id: raw requests
 * are signed with the key of the id in their header (docs/protocol.md
 * "Authentication"). Written before any thread starts, read-only after. */
#define MAX_KEYS 64
static struct {
    uint64_t id;
    const uint8_t *sk;
} g_keys[MAX_KEYS];
static int g_n_keys;

static void key_add(uint64_t id, const uint8_t *sk)
{
    if (g_n_keys < MAX_KEYS) {
        g_keys[g_n_keys].id = id;
        g_keys[g_n_keys++].sk = sk;
    }
}

/* Signs m with the key of its header's client when known (0), else leaves
 * it unsigned; the advert and the stage messages after it are never signed
 * (they are MACed under the member's round key, which only its session
 * holds).
 * Thread-safe; no assertions. */
static int sign_by_id(nng_msg *m)
{
    fedreci_wire_env *e = NULL;
    if (fedreci_wire_decode_msg(m, 1u << 24, &e))
        return 0;
    fedreci_wire_hdr h = fedreci_wire_header(e);
    int masked = e->stage >= FEDRECI_WIRE_STAGE_ADVERTISE;
    fedreci_wire_free(e);
    for (int i = 0; i < g_n_keys && !masked; i++)
        if (g_keys[i].id == h.client_id)
            return fedreci_wire_sign(m, &h, g_keys[i].sk) != FEDREC_OK;
    return 0;
}

static void g_init(th_gclient *g)
{
    th_gclient_init(g, 0);
    g->update = g_update;
    key_add(g->id, g->sk);
}

/* Creates and starts g's session on url (own socket) or on sock. */
static void g_start(th_gclient *g, const char *url, const nng_socket *sock, const char *ca,
                    uint32_t timeout_ms)
{
    fedreci_session_config sc;
    th_gclient_config(g, &sc, url, timeout_ms);
    sc.socket = sock;
    sc.tls_ca_file = ca;
    sc.tls_server_name = ca ? "localhost" : NULL;
    th_gclient_start_with(g, &sc);
}

/* ---- raw requests --------------------------------------------------------------------- */

static void raw_open(nng_socket *s, const char *url)
{
    assert_int_equal(nng_req0_open(s), 0);
    nng_socket_set_ms(*s, NNG_OPT_RECVTIMEO, 60000);
    nng_socket_set_ms(*s, NNG_OPT_REQ_RESENDTIME, (nng_duration)0x7fffffff);
    assert_int_equal(nng_dial(*s, url, NULL, 0), 0);
}

/* Sends buf, returns the decoded reply. */
static fedreci_wire_env *raw_call_bytes(nng_socket s, const void *buf, size_t n)
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

static fedreci_wire_env *raw_call(nng_socket s, nng_msg *m)
{
    if (sign_by_id(m))
        fail_msg("cannot sign a request");
    fedreci_wire_env *env =
        raw_call_bytes(s, nng_msg_body(m), nng_msg_len(m)); /* copies; m freed below */
    nng_msg_free(m);
    return env;
}

/* Expects an Error reply with `code`. */
static void expect_error(fedreci_wire_env *env, fedrec_err code, const char *what)
{
    assert_non_null(env);
    if (env->body_case != FEDREC__V1__ENVELOPE__BODY_ERROR || env->error->code != (uint32_t)code)
        fail_msg("%s: expected Error %s, got body %d (code %u)", what, fedrec_strerror(code),
                 (int)env->body_case,
                 env->body_case == FEDREC__V1__ENVELOPE__BODY_ERROR ? env->error->code : 0);
    fedreci_wire_free(env);
}

/* ---- hostile input ------------------------------------------------------------------- */

typedef struct hostile {
    const char *url;
    const daemon_proc *d;
    uint64_t id;
    uint8_t pk[32], sk[64];
    int bad_sig;     /* 1: sign the advertisement with another key; 0: send it twice */
    int ok;          /* the thread saw what it expected */
    nng_socket sock; /* left open (closed by the test once the round is over): a
                        closed connection would make the coordinator drop the
                        member at once instead of at the stage deadline */
} hostile;

static int checkin_selected(nng_socket s, hostile *h, fedreci_wire_round *round, uint64_t *rid)
{
    nng_msg *m = NULL;
    fedreci_wire_hdr hd = {h->id, 0, FEDRECI_WIRE_STAGE_CHECKIN};
    if (fedreci_wire_enc_checkin(&m, &hd, h->pk, 0, 1))
        return 0;
    fedreci_wire_env *env = raw_call(s, m);
    int ok = fedreci_wire_get_round(env, round) == FEDREC_OK;
    *rid = env->round_id;
    round->secagg.round_id = env->round_id;
    fedreci_wire_free(env);
    return ok;
}

/* The round's binding (proto/wire.h fedreci_wire_binding): the model is
 * downloaded, as a session does, for its checksum. 0 on failure. */
static int round_binding(nng_socket s, const hostile *h, const fedreci_wire_round *round,
                         uint64_t rid, uint8_t binding[32])
{
    nng_msg *m = NULL;
    fedreci_wire_hdr hd = {h->id, rid, FEDRECI_WIRE_STAGE_MODEL};
    if (fedreci_wire_enc_model_request(&m, &hd, 0))
        return 0;
    fedreci_wire_env *env = raw_call(s, m);
    fedreci_wire_model md;
    int ok = fedreci_wire_get_model(env, &md) == FEDREC_OK;
    if (ok)
        fedreci_wire_binding(round, md.checksum, binding);
    fedreci_wire_free(env);
    return ok;
}

static void *hostile_main(void *arg)
{
    hostile *h = arg;
    nng_socket s;
    raw_open(&s, h->url);
    h->sock = s;
    fedreci_wire_round round;
    uint64_t rid = 0;
    if (!checkin_selected(s, h, &round, &rid))
        return NULL;
    fedreci_wire_hdr hd = {h->id, rid, FEDRECI_WIRE_STAGE_ADVERTISE};
    fedreci_secagg_advert adv;
    fedreci_secagg_client *sa = NULL;
    uint8_t other_pk[32], other_sk[64], mac[32];
    crypto_sign_keypair(other_pk, other_sk);
    /* A real SecAgg client makes the advertisement; with bad_sig it holds a
     * key pair the coordinator has never seen. */
    uint8_t binding[32];
    if (!round_binding(s, h, &round, rid, binding) ||
        fedreci_secagg_client_create(&sa, &round.secagg, h->id, h->bad_sig ? other_sk : h->sk,
                                     NULL) ||
        fedreci_secagg_client_set_binding(sa, binding) ||
        fedreci_secagg_client_advertise(sa, &adv) ||
        fedreci_secagg_client_mac_key(sa, round.coord_pk, mac)) {
        fedreci_secagg_client_destroy(sa);
        return NULL;
    }
    fedreci_secagg_client_destroy(sa);
    nng_msg *m = NULL;
    if (h->bad_sig) {
        /* MACed under the round key its own s_pk gives: refused for the
           advert's signature */
        if (!fedreci_wire_enc_advertise(&m, &hd, &adv) && !fedreci_wire_mac(m, mac)) {
            fedreci_wire_env *env = raw_call(s, m);
            h->ok = env->body_case == FEDREC__V1__ENVELOPE__BODY_ERROR &&
                    env->error->code == FEDREC_ERR_SIGNATURE;
            fedreci_wire_free(env);
        }
        return NULL;
    }
    /* the same advertisement twice, on two contexts: the first is held, the
     * second is a duplicate while the first is held; only the second is
     * answered (the roster, when stage 0 closes) */
    nng_ctx c1, c2;
    nng_aio *a1 = NULL, *a2 = NULL;
    nng_msg *m2 = NULL;
    if (nng_ctx_open(&c1, s) || nng_ctx_open(&c2, s) || nng_aio_alloc(&a1, NULL, NULL) ||
        nng_aio_alloc(&a2, NULL, NULL) || fedreci_wire_enc_advertise(&m, &hd, &adv) ||
        fedreci_wire_mac(m, mac) || nng_msg_dup(&m2, m)) {
        if (m)
            nng_msg_free(m);
        nng_aio_free(a1);
        nng_aio_free(a2);
        return NULL;
    }
    nng_aio_set_msg(a1, m);
    nng_ctx_send(c1, a1);
    nng_aio_wait(a1);
    nng_ctx_recv(c1, a1);
    char idhex[17];
    snprintf(idhex, sizeof idhex, "%016llx", (unsigned long long)h->id);
    if (th_log_wait(h->d, idhex, "stage 0 accepted", NULL)) {
        nng_aio_set_msg(a2, m2);
        nng_ctx_send(c2, a2);
        nng_aio_wait(a2);
        nng_ctx_recv(c2, a2);
        nng_aio_wait(a2);
        if (nng_aio_result(a2) == 0) {
            nng_msg *r = nng_aio_get_msg(a2);
            fedreci_wire_env *env = NULL;
            if (fedreci_wire_decode_msg(r, 64u << 20, &env) == FEDREC_OK)
                h->ok = env->body_case == FEDREC__V1__ENVELOPE__BODY_ROSTER;
            fedreci_wire_free(env);
            nng_msg_free(r);
        }
    }
    nng_aio_stop(a1);
    nng_aio_free(a1);
    nng_aio_free(a2);
    return NULL;
}

static void test_hostile_input(void **state)
{
    (void)state;
    daemon_proc d;
    const char *extra[] = {"--threshold", /* t = 3 of k = 5, as in the comment below */
                           "3",
                           "--cohort",
                           "6",
                           "--min-cohort",
                           "4", /* a fixed t = 3 needs k >= 3 in every round */
                           "--deadline-checkin",
                           "20000",
                           "--deadline-advertise",
                           "1500",
                           "--deadline-share",
                           "1500",
                           "--deadline-masked",
                           "20000",
                           "--deadline-unmask",
                           "20000",
                           "--log-level",
                           "debug",
                           NULL};
    daemon_start(&d, "tcp", extra);

    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
    int held = 0, released = 0;
    th_gclient g[6];
    for (int i = 0; i < 6; i++)
        g_init(&g[i]);
    hold hd = {&mu, &cv, &held, &released, 0, 0};
    g[0].arg = &hd;
    hostile h1 = {d.url, &d, 0x2001, {0}, {0}, 1, 0, NNG_SOCKET_INITIALIZER};
    hostile h2 = {d.url, &d, 0x2002, {0}, {0}, 0, 0, NNG_SOCKET_INITIALIZER};
    crypto_sign_keypair(h1.pk, h1.sk);
    crypto_sign_keypair(h2.pk, h2.sk);
    h1.id = fedreci_secagg_id_from_pk(h1.pk); /* ids are self-certifying */
    h2.id = fedreci_secagg_id_from_pk(h2.pk);
    key_add(h1.id, h1.sk);
    key_add(h2.id, h2.sk);

    /* round 1: 4 good clients + 2 hostile members (quorum 6; k = 5, t = 3:
     * the 4 that share keys give each other 3 shares each, enough) */
    pthread_t t1, t2;
    assert_int_equal(pthread_create(&t1, NULL, hostile_main, &h1), 0);
    assert_int_equal(pthread_create(&t2, NULL, hostile_main, &h2), 0);
    for (int i = 0; i < 4; i++)
        g_start(&g[i], d.url, NULL, NULL, 60000);

    /* stage 2 is open and g[0] has not sent its masked input: while it waits,
     * send the hostile messages from another socket */
    pthread_mutex_lock(&mu);
    for (int i = 0; i < 60 && !held; i++) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&cv, &mu, &ts);
    }
    int was_held = held;
    pthread_mutex_unlock(&mu);
    if (!was_held) {
        th_log_dump(&d);
        fail_msg("the round never reached the masked-input stage");
    }
    uint64_t rid = hd.round_id;
    uint32_t d_words = hd.d;
    assert_int_equal(d_words, D);
    nng_socket s;
    raw_open(&s, d.url);
    nng_msg *m = NULL;
    uint8_t junk[512];

    /* random bytes (fixed, so the test is reproducible) */
    static const uint8_t junk_seed[randombytes_SEEDBYTES] = {42};
    randombytes_buf_deterministic(junk, sizeof junk, junk_seed);
    expect_error(raw_call_bytes(s, junk, sizeof junk), FEDREC_ERR_FORMAT, "random bytes");
    /* a truncated check-in */
    fedreci_wire_hdr hc = {0x3001, 0, FEDRECI_WIRE_STAGE_CHECKIN};
    assert_int_equal(fedreci_wire_enc_checkin(&m, &hc, h1.pk, 0, 1), FEDREC_OK);
    expect_error(raw_call_bytes(s, nng_msg_body(m), nng_msg_len(m) - 10), FEDREC_ERR_FORMAT,
                 "truncated");
    nng_msg_free(m);
    /* oversized: over the engine's cap (fedreci_wire_cap of this deployment),
     * under the transport's (twice that) */
    size_t code_bytes = (size_t)N_ITEMS * (4 + 3);
    size_t cap = fedreci_wire_cap(N_ITEMS, K_FACTORS, 6, code_bytes);
    size_t big_n = cap + 1000;
    uint8_t *big = malloc(big_n);
    assert_non_null(big);
    randombytes_buf(big, big_n);
    expect_error(raw_call_bytes(s, big, big_n), FEDREC_ERR_TOO_BIG, "oversized");
    free(big);
    /* a masked input (of the wrong length) for g[0] in stage 2 from another
       socket: without g[0]'s round MAC key it is not even looked at */
    uint32_t *y = calloc(D + 1, sizeof *y);
    assert_non_null(y);
    fedreci_wire_hdr hm = {g[0].id, rid, FEDRECI_WIRE_STAGE_MASKED_INPUT};
    assert_int_equal(fedreci_wire_enc_masked(&m, &hm, y, D - 1), FEDREC_OK);
    expect_error(raw_call(s, m), FEDREC_ERR_SIGNATURE, "masked input without its MAC");
    /* an unknown round */
    fedreci_wire_hdr hr = {g[1].id, rid + 1000, FEDRECI_WIRE_STAGE_MASKED_INPUT};
    assert_int_equal(fedreci_wire_enc_masked(&m, &hr, y, D), FEDREC_OK);
    expect_error(raw_call(s, m), FEDREC_ERR_ROUND, "unknown round");
    free(y);
    /* a stage that is not open (unmask during masked input) */
    fedreci_wire_hdr hu = {g[1].id, rid, FEDRECI_WIRE_STAGE_UNMASK};
    assert_int_equal(fedreci_wire_enc_unmask(&m, &hu, NULL, 0), FEDREC_OK);
    expect_error(raw_call(s, m), FEDREC_ERR_STAGE, "stage not open");
    /* an unknown stage number */
    fedreci_wire_hdr h9 = {g[1].id, rid, 9};
    assert_int_equal(fedreci_wire_enc_model_request(&m, &h9, 0), FEDREC_OK);
    expect_error(raw_call(s, m), FEDREC_ERR_FORMAT, "unknown stage");
    /* a stage message from a client that never checked in */
    fedreci_secagg_advert adv;
    memset(&adv, 0x11, sizeof adv);
    adv.client_id = 0x3002;
    fedreci_wire_hdr hn = {0x3002, rid, FEDRECI_WIRE_STAGE_ADVERTISE};
    assert_int_equal(fedreci_wire_enc_advertise(&m, &hn, &adv), FEDREC_OK);
    expect_error(raw_call(s, m), FEDREC_ERR_NOT_FOUND, "unknown client");
    /* a check-in for a known client with another identity key */
    fedreci_wire_hdr hk = {g[1].id, 0, FEDRECI_WIRE_STAGE_CHECKIN};
    assert_int_equal(fedreci_wire_enc_checkin(&m, &hk, h1.pk, 0, 1), FEDREC_OK);
    expect_error(raw_call(s, m), FEDREC_ERR_SIGNATURE, "identity key");
    nng_close(s);

    pthread_mutex_lock(&mu);
    released = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < 4; i++) {
        th_gclient_finish(&g[i]);
        if (g[i].res.outcome != FEDRECI_SESSION_COMPLETED) {
            th_log_dump(&d);
            fail_msg("client %d: outcome %d: %s", i, g[i].res.outcome, g[i].res.text);
        }
    }
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    nng_close(h1.sock);
    nng_close(h2.sock);
    assert_true(h1.ok); /* refused with FEDREC_ERR_SIGNATURE */
    assert_true(h2.ok); /* the duplicate got the roster */

    /* the log names each refusal and its reason */
    char id0[32], id1[32], idh1[32], idh2[32];
    snprintf(id0, sizeof id0, "client %016llx", (unsigned long long)g[0].id);
    snprintf(id1, sizeof id1, "client %016llx", (unsigned long long)g[1].id);
    snprintf(idh1, sizeof idh1, "client %016llx", (unsigned long long)h1.id);
    snprintf(idh2, sizeof idh2, "client %016llx", (unsigned long long)h2.id);
    /* undecodable messages have no trustworthy header: logged as client 0 */
    int n_format =
        th_log_count(&d, "client 0000000000000000 stage 0: refused (malformed data)", NULL, NULL);
    if (n_format != 3 ||
        th_log_count(&d, "refused (input exceeds its size limit)", "over the cap", NULL) != 1) {
        th_log_dump(&d);
        fail_msg("random/truncated/oversized not logged (%d)", n_format);
    }
    assert_int_equal(th_log_count(&d, id0, "stage 5: refused (signature did not verify)", "MAC"),
                     1);
    assert_int_equal(
        th_log_count(&d, id1, "refused (message for the wrong round)", "is not the current"), 1);
    assert_int_equal(
        th_log_count(&d, id1, "stage 6: refused (message for the wrong stage)", "not open"), 1);
    assert_int_equal(th_log_count(&d, "client 0000000000000000 stage 0: refused (malformed data)",
                                  "sent with stage 9", NULL),
                     1);
    assert_int_equal(th_log_count(&d, "client 0000000000003002 stage 3: refused (not found)",
                                  "check in first", NULL),
                     1);
    assert_int_equal(th_log_count(&d, id1, "refused (signature did not verify)", "identity key"),
                     1);
    assert_int_equal(th_log_count(&d, idh1, "stage 3: refused (signature did not verify)", NULL),
                     1);
    assert_int_equal(th_log_count(&d, idh2, "stage 0: duplicate of an accepted message", NULL), 1);
    assert_int_equal(th_log_count(&d, idh2, "stage 0 accepted (", NULL), 1); /* counted once */
    /* h1 never advertised (refused), h2 advertised but shared no keys */
    assert_int_equal(
        th_log_count(&d, "[round 1] round completed: cohort 6, survivors 4, dropped 1/1/0/0", NULL,
                     NULL),
        1);

    /* a later round with well-behaved clients completes as well */
    for (int i = 0; i < 6; i++) {
        g[i].arg = NULL;
        g_start(&g[i], d.url, NULL, NULL, 60000);
    }
    for (int i = 0; i < 6; i++) {
        th_gclient_finish(&g[i]);
        assert_int_equal(g[i].res.outcome, FEDRECI_SESSION_COMPLETED);
    }
    assert_true(th_log_wait(&d, "[round 2] round completed: cohort 6, survivors 6", NULL, NULL));
    daemon_stop(&d);
}

/* ---- load ------------------------------------------------------------------------------ */

static void test_load(void **state)
{
    (void)state;
    uint32_t n = 1000;
    const char *env = getenv("FEDREC_LOAD_CLIENTS");
    if (env && atoi(env) >= 2)
        n = (uint32_t)atoi(env);
    env = getenv("FEDREC_LOAD_ITEMS");
    g_items = env && atoi(env) >= 1 && atoi(env) <= 100000 ? atoi(env) : N_ITEMS;
    char cohort[16];
    snprintf(cohort, sizeof cohort, "%u", n);
    daemon_proc d;
    const char *extra[] = {"--cohort", cohort, "--min-cohort", cohort, "--neighbors", "8",
                           "--deadline-checkin", "300000", "--deadline-advertise", "300000",
                           "--deadline-share", "300000", "--deadline-masked", "300000",
                           "--deadline-unmask", "300000", "--log-level", "info",
                           /* every client is new and comes from 127.0.0.1 */
                           "--new-ids-per-address-burst", "0", "--new-ids-burst", "0", NULL};
    daemon_start(&d, "tcp", extra);
    int d_words = g_items * K_FACTORS + 1;
    g_items = N_ITEMS;
    long hwm0, rss0;
    daemon_mem(&d, &hwm0, &rss0);

    enum { N_SOCK = 4 };
    nng_socket socks[N_SOCK];
    for (int i = 0; i < N_SOCK; i++) {
        raw_open(&socks[i], d.url);
        nng_socket_set_size(socks[i], NNG_OPT_RECVMAXSZ, 64u << 20);
    }
    th_gclient *g = calloc(n, sizeof *g);
    assert_non_null(g);
    for (uint32_t i = 0; i < n; i++)
        g_init(&g[i]);
    double t0 = now_s();
    for (uint32_t i = 0; i < n; i++)
        g_start(&g[i], NULL, &socks[i % N_SOCK], NULL, 300000);
    uint32_t completed = 0, retried = 0;
    for (uint32_t i = 0; i < n; i++) {
        th_gclient_finish(&g[i]);
        completed += g[i].res.outcome == FEDRECI_SESSION_COMPLETED;
        retried += g[i].res.retries > 0;
        if (g[i].res.outcome != FEDRECI_SESSION_COMPLETED)
            fprintf(stderr, "client %u: outcome %d err %d: %s\n", i, g[i].res.outcome, g[i].res.err,
                    g[i].res.text);
    }
    double wall = now_s() - t0;
    long hwm, rss;
    daemon_mem(&d, &hwm, &rss);
    char line[96];
    snprintf(line, sizeof line, "round completed: cohort %u, survivors %u, dropped 0/0/0/0", n, n);
    if (completed != n || retried != 0 || !th_log_wait(&d, "[round 1]", line, NULL)) {
        th_log_dump(&d);
        fail_msg("%u of %u completed, %u asked to retry", completed, n, retried);
    }
    assert_int_equal(th_log_count(&d, "refused", NULL, NULL), 0);
    char *s = th_slurp(d.log);
    char *p = strstr(s, "round completed: cohort");
    char stages[64] = "?";
    if (p && (p = strstr(p, "stages ")))
        sscanf(p + 7, "%63[0-9/]", stages);
    free(s);
    printf("| clients | REQ sockets | d | wall s (check-in to result) | stages adv/share/masked/"
           "unmask ms | daemon VmHWM MiB | VmRSS before MiB |\n"
           "|---|---|---|---|---|---|---|\n"
           "| %u | %d | %d | %.2f | %s | %.1f | %.1f |\n",
           n, N_SOCK, d_words, wall, stages, hwm / 1024.0, rss0 / 1024.0);
    for (int i = 0; i < N_SOCK; i++)
        nng_close(socks[i]);
    free(g);
    daemon_stop(&d);
}

/* ---- TLS ------------------------------------------------------------------------------- */

/* A shopper's app (public API) syncing in a thread. */
typedef struct api_sync {
    const char *store, *url, *ca;
    uint8_t key[32];
    fedrec_err err;
    fedrec_sync_result res;
} api_sync;

static void *api_sync_main(void *arg)
{
    api_sync *a = arg;
    fedrec_client *c = NULL;
    a->res.struct_size = sizeof a->res;
    fedrec_client_options o; /* floors a test cohort of 3 meets */
    fedrec_client_options_init(&o);
    o.key = a->key;
    o.coordinator_url = a->url;
    o.min_cohort = 3;
    o.min_neighbors = 2;
    o.min_threshold = 2;
    a->err = fedrec_client_open_with(&c, a->store, &o);
    if (!a->err)
        a->err = fedrec_client_record(c, "P001", 1000, 2);
    if (!a->err)
        a->err = fedrec_client_set_tls(c, a->ca, "localhost");
    if (!a->err)
        a->err = fedrec_client_sync(c, 60000, &a->res);
    fedrec_client_close(c);
    return NULL;
}

/* Runs `fedrec-client sync` over TLS with the store at `store` (raw key hex
 * in the environment); returns its pid. */
static pid_t spawn_cli_sync(const char *store, const char *url, const char *ca, const char *hex,
                            const char *out)
{
    const char *argv[] = {FEDREC_BIN_DIR "/client/cli/fedrec-client",
                          "sync",
                          "--coordinator",
                          url,
                          "--tls-ca",
                          ca,
                          "--tls-server-name",
                          "localhost",
                          "--deadline-ms",
                          "60000",
                          "--min-cohort",
                          "3",
                          "--min-neighbors",
                          "2",
                          "--min-threshold",
                          "2",
                          "--store",
                          store,
                          NULL};
    char env_key[100];
    snprintf(env_key, sizeof env_key, "FEDREC_STORE_KEY=%s", hex);
    const char *envp[] = {env_key, NULL};
    pid_t pid = th_spawn(argv[0], argv, envp, out, 0600);
    assert_true(pid > 0);
    return pid;
}

static void test_tls_round(void **state)
{
    (void)state;
    char dir[] = "/tmp/fedrec-tls-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char cert[128], key[128], cmd[1024];
    snprintf(cert, sizeof cert, "%s/cert.pem", dir);
    snprintf(key, sizeof key, "%s/key.pem", dir);
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
             "-subj /CN=localhost -addext subjectAltName=DNS:localhost -keyout '%s' -out '%s' "
             ">/dev/null 2>&1",
             key, cert);
    assert_int_equal(system(cmd), 0);
    daemon_proc d;
    const char *extra[] = {"--tls-cert",
                           cert,
                           "--tls-key",
                           key,
                           "--cohort",
                           "3",
                           "--min-cohort",
                           "3",
                           "--deadline-advertise",
                           "20000",
                           "--deadline-share",
                           "20000",
                           "--deadline-masked",
                           "20000",
                           "--deadline-unmask",
                           "20000",
                           NULL};
    daemon_start(&d, "tls+tcp", extra);

    /* without the CA the server's certificate does not verify: no reply */
    th_gclient bad;
    g_init(&bad);
    g_start(&bad, d.url, NULL, NULL, 1500);
    th_gclient_finish(&bad);
    assert_int_equal(bad.res.outcome, FEDRECI_SESSION_ERROR);
    assert_int_equal(bad.res.err, FEDREC_ERR_TIMEOUT);

    /* the round: a session, the public API in a thread, the CLI as a process */
    char store_api[160], store_cli[160], cli_out[160];
    snprintf(store_api, sizeof store_api, "%s/api", dir);
    snprintf(store_cli, sizeof store_cli, "%s/cli", dir);
    snprintf(cli_out, sizeof cli_out, "%s/cli.out", dir);
    api_sync a = {store_api, d.url, cert, {0}, FEDREC_OK, {0}};
    randombytes_buf(a.key, sizeof a.key);
    uint8_t cli_key[32];
    char hex[65];
    randombytes_buf(cli_key, sizeof cli_key);
    sodium_bin2hex(hex, sizeof hex, cli_key, sizeof cli_key);
    fedrec_client *c = NULL;
    assert_int_equal(fedrec_client_open(&c, store_cli, NULL, cli_key), FEDREC_OK);
    assert_int_equal(fedrec_client_record(c, "P002", 1000, 1), FEDREC_OK);
    fedrec_client_close(c);

    th_gclient g;
    g_init(&g);
    g_start(&g, d.url, NULL, cert, 60000);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, api_sync_main, &a), 0);
    pid_t cli = spawn_cli_sync(store_cli, d.url, cert, hex, cli_out);
    th_gclient_finish(&g);
    pthread_join(t, NULL);
    int st = 0;
    assert_int_equal(waitpid(cli, &st, 0), cli);
    char *out = th_slurp(cli_out);
    if (g.res.outcome != FEDRECI_SESSION_COMPLETED || a.err || !WIFEXITED(st) ||
        WEXITSTATUS(st) != 0) {
        th_log_dump(&d);
        fail_msg("TLS round: session %d (%s), API %s (%s), CLI status %d: %s", g.res.outcome,
                 g.res.text, fedrec_strerror(a.err), fedrec_errmsg(), st, out ? out : "");
    }
    assert_int_equal(g.res.latest_version, 2);
    assert_int_equal(a.res.round_outcome, FEDREC_OK);
    assert_true(a.res.took_part);
    assert_non_null(strstr(out, "round 1: took part; the round completed"));
    free(out);
    assert_true(th_log_wait(&d, "[round 1] round completed: cohort 3, survivors 3", NULL, NULL));
    assert_int_equal(th_log_count(&d, "client 0000000000004000", NULL, NULL), 0);

    /* the public API refuses a CA file that does not exist, naming it */
    assert_int_equal(fedrec_client_open(&c, store_cli, d.url, cli_key), FEDREC_OK);
    assert_int_equal(fedrec_client_set_tls(c, "/nonexistent/ca.pem", NULL), FEDREC_ERR_IO);
    assert_non_null(strstr(fedrec_errmsg(), "/nonexistent/ca.pem"));

    /* a TLS failure is a transport error naming the check that failed, at
     * once, not a timeout at the deadline: a CA that did not sign the
     * coordinator's certificate, then the right CA with the wrong name */
    char other[160], other_key[160];
    snprintf(other, sizeof other, "%s/other.pem", dir);
    snprintf(other_key, sizeof other_key, "%s/other-key.pem", dir);
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
             "-subj /CN=localhost -addext subjectAltName=DNS:localhost -keyout '%s' -out '%s' "
             ">/dev/null 2>&1",
             other_key, other);
    assert_int_equal(system(cmd), 0);
    fedrec_sync_result sr = {.struct_size = sizeof sr};
    assert_int_equal(fedrec_client_set_tls(c, other, "localhost"), FEDREC_OK);
    assert_int_equal(fedrec_client_sync(c, 30000, &sr), FEDREC_ERR_TRANSPORT);
    assert_non_null(strstr(fedrec_errmsg(), "TLS certificate verification failed"));
    assert_non_null(strstr(fedrec_errmsg(), other));
    assert_int_equal(fedrec_client_set_tls(c, cert, "shop.example"), FEDREC_OK);
    assert_int_equal(fedrec_client_sync(c, 30000, &sr), FEDREC_ERR_TRANSPORT);
    assert_non_null(strstr(fedrec_errmsg(), "TLS hostname check failed"));
    assert_non_null(strstr(fedrec_errmsg(), "'shop.example'"));
    fedrec_client_close(c);
    daemon_stop(&d);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* ---- retired products ----------------------------------------------------------------- */

/* The daemon restarts with a catalog that no longer lists P001 and P003:
 * they are retired (rows kept), a new model version is committed, and a
 * shopper's app that syncs (public API, over tcp) never gets them
 * recommended, though their rows are still in the model it holds. */
static void test_retired_products(void **state)
{
    (void)state;
    daemon_proc d;
    const char *extra[] = {"--cohort", "3", "--min-cohort", "3", "--deadline-checkin", "300", NULL};
    daemon_start(&d, "tcp", extra);
    daemon_stop_keep(&d, 1);
    const char *const gone[] = {"P001", "P003", NULL};
    daemon_launch(&d, "tcp", extra, 1, gone);
    assert_int_equal(
        th_log_count(&d, "committed model version 2 (50 items, 48 active", "2 retired", NULL), 1);

    char store[320];
    snprintf(store, sizeof store, "%s/shopper", d.dir);
    uint8_t key[32];
    randombytes_buf(key, sizeof key);
    fedrec_client *c = NULL;
    assert_int_equal(fedrec_client_open(&c, store, d.url, key), FEDREC_OK);
    assert_int_equal(fedrec_client_record(c, "P000", 1000, 2), FEDREC_OK);
    assert_int_equal(fedrec_client_record(c, "P007", 1001, 1), FEDREC_OK);
    fedrec_sync_result res = {.struct_size = sizeof res};
    assert_int_equal(fedrec_client_sync(c, 30000, &res), FEDREC_OK);
    assert_int_equal(res.model_version, 2);
    assert_true(res.model_updated);
    assert_int_equal(res.round_outcome, FEDREC_ERR_NOT_SELECTED); /* alone: below min-cohort */
    fedrec_recommendation rec[N_ITEMS];
    uint32_t n = 0;
    assert_int_equal(fedrec_client_recommend(c, N_ITEMS, rec, &n), FEDREC_OK);
    assert_int_equal(n, N_ITEMS - 2 - 2); /* every item but the 2 bought and the 2 retired */
    for (uint32_t i = 0; i < n; i++) {
        assert_string_not_equal(rec[i].item_code, "P001");
        assert_string_not_equal(rec[i].item_code, "P003");
        assert_string_not_equal(rec[i].item_code, "P000");
    }
    fedrec_client_info info = {.struct_size = sizeof info};
    assert_int_equal(fedrec_client_get_info(c, &info), FEDREC_OK);
    assert_int_equal(info.model_items, N_ITEMS); /* the retired rows are still there */
    fedrec_client_close(c);
    daemon_stop(&d);
}

/* ---- systemd readiness --------------------------------------------------------- */

/* One datagram from the notify socket, as text (a 60 s guard against a hang,
 * not a timing assertion). */
static void notify_recv(int fd, char *buf, size_t cap)
{
    ssize_t n = recv(fd, buf, cap - 1, 0);
    if (n < 0)
        fail_msg("no sd_notify message: %s", strerror(errno));
    buf[n] = '\0';
}

/* With NOTIFY_SOCKET set, as systemd does for Type=notify, the daemon sends
 * READY=1 once it listens and STOPPING=1 on SIGTERM. */
static void test_sd_notify(void **state)
{
    (void)state;
    char dir[64] = "/tmp/fedrec-notify-XXXXXX";
    assert_non_null(mkdtemp(dir));
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s/notify", dir);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    struct timeval guard = {.tv_sec = 60};
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &guard, sizeof guard), 0);
    assert_int_equal(setenv("NOTIFY_SOCKET", sa.sun_path, 1), 0);
    daemon_proc d;
    daemon_start(&d, "tcp", NULL);
    unsetenv("NOTIFY_SOCKET");
    char msg[256];
    notify_recv(fd, msg, sizeof msg);
    assert_non_null(strstr(msg, "READY=1\n"));
    assert_non_null(strstr(msg, "STATUS=serving model version 1"));
    daemon_stop(&d);
    notify_recv(fd, msg, sizeof msg);
    assert_string_equal(msg, "STOPPING=1");
    close(fd);
    unlink(sa.sun_path);
    rmdir(dir);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    signal(SIGPIPE, SIG_IGN);
    fedreci_log_set_level(FEDRECI_LOG_ERROR);
    if (getenv("FEDREC_TEST_FILTER"))
        cmocka_set_test_filter(getenv("FEDREC_TEST_FILTER"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_hostile_input, th_daemon_teardown),
        cmocka_unit_test_teardown(test_load, th_daemon_teardown),
        cmocka_unit_test_teardown(test_tls_round, th_daemon_teardown),
        cmocka_unit_test_teardown(test_retired_products, th_daemon_teardown),
        cmocka_unit_test_teardown(test_sd_notify, th_daemon_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
