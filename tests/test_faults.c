/* The fault matrix, in process: the coordinator engine (coordinator/engine.h)
 * and client sessions (client/session.h) over nng inproc://.
 *
 *  - dropouts of 0%, 10%, 30% and 50% of a cohort of 10 (classic SecAgg,
 *    threshold 6) at each SecAgg stage (advertise, share keys, masked input,
 *    unmask), through the sessions' dropout hook; the dropped clients are
 *    declared gone (fedreci_coord_client_gone) so no cell waits a deadline;
 *  - a client that stalls past the share-keys deadline, then sends: refused,
 *    counted as dropped, the round completes without it;
 *  - a client that disconnects while its request is held and reconnects on a
 *    new socket: its later requests in the same round are handled (the engine
 *    knows clients by id, not by connection) and its input is in the sum.
 *
 * Every cell asserts one of two outcomes: the round completed and the
 * unmasked sum equals, word for word, the sum in Z_2^32 of the survivors'
 * quantized inputs (the sessions' on_quantized hook is the oracle), or it
 * aborted cleanly (model version and bytes unchanged, nothing committed).
 * Either way the served model's BLAKE2b checksum equals that of the last
 * committed model (or the start model). The process-level cells (the real
 * daemon killed and restarted at each stage) are tests/faults_restart.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <pthread.h>
#include <sodium.h>

#include "client/session.h"
#include "coordinator/engine.h"
#include "core/log.h"
#include "proto/wire.h"

#define N_ITEMS 20
#define K 2
#define D (N_ITEMS * K + 1)
#define MAXC 12

typedef struct tclient {
    uint64_t id;
    uint8_t pk[32], sk[64];
    uint32_t q[D];
    int has_q;
    int stage2_sent;
} tclient;

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    tclient cl[MAXC];
    int n;
    int done;
    fedreci_round_stats st;
    uint32_t sum[D];
    int has_sum;
    uint64_t surv[MAXC];
    int commits;
    uint8_t committed[32]; /* checksum of the last committed model */
    fedreci_coord *gone_to;
} W;

static float y0[N_ITEMS * K];
static char codes_buf[N_ITEMS][8];
static const char *codes[N_ITEMS];

static void checksum(const float *y, size_t n, uint8_t out[32])
{
    crypto_generichash(out, 32, (const uint8_t *)y, n * sizeof *y, NULL, 0);
}

static void on_round_done(void *arg, const fedreci_round_stats *st)
{
    (void)arg;
    pthread_mutex_lock(&W.mu);
    W.done = 1;
    W.st = *st;
    W.st.params = NULL;
    W.st.cohort_ids = W.st.survivor_ids = NULL;
    W.st.sum = NULL;
    W.st.abort_reason = NULL;
    W.has_sum = st->sum != NULL;
    if (st->sum)
        memcpy(W.sum, st->sum, sizeof W.sum);
    for (uint32_t i = 0; i < st->survivors && i < MAXC; i++)
        W.surv[i] = st->survivor_ids[i];
    pthread_cond_broadcast(&W.cv);
    pthread_mutex_unlock(&W.mu);
}

static fedrec_err on_commit(void *arg, uint64_t round_id, uint64_t version, const float *y,
                            uint32_t n_items, uint32_t k)
{
    (void)arg;
    (void)round_id;
    (void)version;
    pthread_mutex_lock(&W.mu);
    W.commits++;
    checksum(y, (size_t)n_items * k, W.committed);
    pthread_mutex_unlock(&W.mu);
    return FEDREC_OK;
}

static tclient *client_of(uint64_t id)
{
    for (int i = 0; i < W.n; i++)
        if (W.cl[i].id == id)
            return &W.cl[i];
    return NULL;
}

static fedrec_err compute_update(void *arg, const fedreci_wire_round *rd, float *x,
                                 uint32_t *weight)
{
    tclient *c = arg;
    for (uint32_t i = 0; i < rd->secagg.d - 1; i++)
        x[i] = (float)((int)((c->id * 29 + i * 11) % 301) - 150) / 40.0f;
    *weight = 1;
    return FEDREC_OK;
}

static void on_quantized(void *arg, uint64_t round_id, const uint32_t *q, uint32_t d)
{
    tclient *c = arg;
    (void)round_id;
    assert_int_equal(d, D);
    pthread_mutex_lock(&W.mu);
    memcpy(c->q, q, sizeof c->q);
    c->has_q = 1;
    pthread_mutex_unlock(&W.mu);
}

static void on_upload(void *arg, uint64_t round_id, int stage, size_t bytes, const char *what,
                      uint32_t clipped)
{
    tclient *c = arg;
    (void)round_id;
    (void)bytes;
    (void)what;
    (void)clipped;
    pthread_mutex_lock(&W.mu);
    if (stage == 2)
        c->stage2_sent = 1;
    pthread_cond_broadcast(&W.cv);
    pthread_mutex_unlock(&W.mu);
}

static void on_done(void *arg, const fedreci_session_result *r)
{
    tclient *c = arg;
    if (r->outcome == FEDRECI_SESSION_DROPPED && W.gone_to)
        fedreci_coord_client_gone(W.gone_to, c->id);
}

static void world_init(int n)
{
    memset(&W, 0, sizeof W);
    pthread_mutex_init(&W.mu, NULL);
    pthread_cond_init(&W.cv, NULL);
    W.n = n;
    for (int i = 0; i < n; i++) {
        crypto_sign_keypair(W.cl[i].pk, W.cl[i].sk);
        W.cl[i].id = fedreci_secagg_id_from_pk(W.cl[i].pk);
    }
    for (int i = 0; i < N_ITEMS; i++) {
        snprintf(codes_buf[i], sizeof codes_buf[i], "I%02d", i);
        codes[i] = codes_buf[i];
    }
    for (int i = 0; i < N_ITEMS * K; i++)
        y0[i] = (float)((i * 13) % 17 - 8) * 0.01f;
    checksum(y0, N_ITEMS * K, W.committed);
}

static fedreci_coord *coord_new(const char *url, uint32_t cohort, uint32_t threshold,
                                uint32_t stage_ms, uint32_t unmask_ms)
{
    fedreci_coord_config cfg;
    fedreci_coord_config_default(&cfg);
    const char *urls[1] = {url};
    cfg.listen_urls = urls;
    cfg.n_listen = 1;
    cfg.n_contexts = 64;
    cfg.cohort_size = cohort;
    cfg.min_cohort = 2;
    cfg.threshold = threshold;
    cfg.clip = 16;
    for (int s = 0; s < 3; s++)
        cfg.stage_ms[s] = stage_ms;
    cfg.stage_ms[3] = unmask_ms;
    cfg.checkin_window_ms = 600000;
    cfg.retry_after_ms = 20;
    cfg.seed = 5;
    cfg.max_rounds = 1;
    cfg.opt.n_train = 20;
    fedreci_coord_hooks hooks = {NULL, on_round_done, on_commit, NULL, NULL};
    fedreci_coord_model m = {1, N_ITEMS, K, y0, codes, NULL, 0};
    fedreci_coord *c = NULL;
    if (fedreci_coord_create(&c, &cfg, &hooks, &m))
        fail_msg("coord_create: %s", fedrec_errmsg());
    if (fedreci_coord_start(c))
        fail_msg("coord_start: %s", fedrec_errmsg());
    return c;
}

static fedreci_session *session_new(const char *url, tclient *c, int dropout)
{
    fedreci_session_config cfg;
    fedreci_session_config_default(&cfg);
    cfg.url = url;
    cfg.client_id = c->id;
    cfg.identity_sk = c->sk;
    cfg.model_version = 1;
    cfg.timeout_ms = 120000;
    cfg.dropout_stage = dropout;
    uint8_t seed[32] = {(uint8_t)c->id, 7};
    cfg.rounding_seed = seed;
    fedreci_session_hooks h = {c, NULL, compute_update, on_upload, on_quantized, on_done};
    fedreci_session *s = NULL;
    if (fedreci_session_create(&s, &cfg, &h))
        fail_msg("session_create: %s", fedrec_errmsg());
    assert_int_equal(fedreci_session_start(s), FEDREC_OK);
    return s;
}

/* The model the engine serves has the checksum of the last commit (or of the
 * start model), and the version says how many rounds committed. */
static void check_model(fedreci_coord *c, uint64_t want_version)
{
    float y[N_ITEMS * K];
    uint64_t v = 0;
    assert_int_equal(fedreci_coord_get_model(c, y, N_ITEMS * K, &v), FEDREC_OK);
    assert_int_equal(v, want_version);
    uint8_t sum[32];
    checksum(y, N_ITEMS * K, sum);
    assert_memory_equal(sum, W.committed, 32);
    if (want_version == 1)
        assert_memory_equal(y, y0, sizeof y);
    else
        assert_memory_not_equal(y, y0, sizeof y);
}

/* The oracle: the unmasked sum is the survivors' quantized inputs summed in
 * Z_2^32, and the weight coordinate counts them. */
static void check_oracle(void)
{
    assert_true(W.st.completed);
    assert_true(W.has_sum);
    uint32_t plain[D] = {0};
    for (uint32_t i = 0; i < W.st.survivors; i++) {
        tclient *c = client_of(W.surv[i]);
        assert_non_null(c);
        assert_true(c->has_q);
        for (int j = 0; j < D; j++)
            plain[j] += c->q[j];
    }
    assert_memory_equal(plain, W.sum, sizeof plain);
    assert_int_equal(plain[D - 1], W.st.survivors);
}

/* ---- the dropout matrix ------------------------------------------------------------ */

#define COHORT 10
#define THRESH 6

static void dropout_cell(int rate, int stage)
{
    char url[64];
    snprintf(url, sizeof url, "inproc://fedrec-faults-%d-%d", rate, stage);
    world_init(COHORT);
    fedreci_coord *c = coord_new(url, COHORT, THRESH, 600000, 600000);
    W.gone_to = c;
    int m = COHORT * rate / 100;
    int drops[COHORT];
    for (int i = 0; i < COHORT; i++)
        drops[i] = -1;
    for (int j = 0; j < m; j++)
        drops[(j * 7 + stage) % COHORT] = stage; /* 7 is prime to 10: distinct */
    fedreci_session *s[COHORT];
    for (int i = 0; i < COHORT; i++)
        s[i] = session_new(url, &W.cl[i], drops[i]);
    fedreci_session_result res[COHORT];
    for (int i = 0; i < COHORT; i++) {
        assert_int_equal(fedreci_session_wait(s[i], -1, &res[i]), FEDREC_OK);
        fedreci_session_destroy(s[i]);
    }
    assert_int_equal(fedreci_coord_wait(c, -1), FEDREC_OK);
    assert_true(W.done);
    int alive = COHORT - m;
    int completes = alive >= THRESH;
    print_message("    dropout %2d%% at stage %d: %s (advertised %u, shared %u, survivors %u, "
                  "unmasked %u)\n",
                  rate, stage, W.st.completed ? "completed, exact sum" : "aborted cleanly",
                  W.st.advertised, W.st.shared, W.st.survivors, W.st.unmasked);
    assert_int_equal(W.st.completed, completes);
    assert_int_equal(W.st.cohort, COHORT);
    assert_int_equal(W.st.dropped[stage], (uint32_t)m);
    for (int t = 0; t < 4; t++)
        if (t != stage)
            assert_int_equal(W.st.dropped[t], 0);
    for (int i = 0; i < COHORT; i++) {
        fedreci_session_outcome want = drops[i] >= 0 ? FEDRECI_SESSION_DROPPED
                                       : completes   ? FEDRECI_SESSION_COMPLETED
                                                     : FEDRECI_SESSION_ABORTED;
        if (res[i].outcome != want)
            fail_msg("client %d: outcome %d (%s), want %d", i, res[i].outcome, res[i].text, want);
    }
    if (completes) {
        /* survivors are those that sent a masked input: a stage-3 dropout
         * still counts (its input is in the sum, its b is rebuilt) */
        assert_int_equal(W.st.survivors, stage == 3 ? COHORT : alive);
        assert_int_equal(W.st.unmasked, alive);
        check_oracle();
        assert_int_equal(W.commits, 1);
        check_model(c, 2);
    } else {
        assert_false(W.has_sum);
        assert_int_equal(W.st.model_version, 1);
        assert_int_equal(W.commits, 0);
        check_model(c, 1);
    }
    W.gone_to = NULL;
    fedreci_coord_destroy(c);
}

static void test_dropout_matrix(void **state)
{
    (void)state;
    static const int rates[4] = {0, 10, 30, 50};
    for (int stage = 0; stage < 4; stage++)
        for (int r = 0; r < 4; r++)
            dropout_cell(rates[r], stage);
}

/* ---- a hand-driven client on raw REQ sockets ---------------------------------------- */

typedef struct raw {
    nng_socket sock;
    nng_ctx ctx;
    nng_aio *aio;
} raw;

static void raw_open(raw *r, const char *url)
{
    assert_int_equal(nng_req0_open(&r->sock), 0);
    assert_int_equal(nng_dial(r->sock, url, NULL, 0), 0);
    assert_int_equal(nng_ctx_open(&r->ctx, r->sock), 0);
    nng_ctx_set_ms(r->ctx, NNG_OPT_REQ_RESENDTIME, 0x7fffffff);
    assert_int_equal(nng_aio_alloc(&r->aio, NULL, NULL), 0);
    nng_aio_set_timeout(r->aio, 120000);
}

static void raw_close(raw *r)
{
    nng_aio_stop(r->aio);
    nng_aio_free(r->aio);
    nng_close(r->sock);
}

/* The hand-driven client's keys: requests are signed with g_raw_sk, the
 * masked input MACed with g_raw_mac once set (docs/protocol.md
 * "Authentication"); a message that does not decode is sent as it is. */
static const uint8_t *g_raw_sk;
static uint8_t g_raw_mac[32];
static int g_has_mac;

static void raw_auth(nng_msg *m)
{
    fedreci_wire_env *e = NULL;
    if (!g_raw_sk || fedreci_wire_decode_msg(m, 1u << 24, &e))
        return;
    fedreci_wire_hdr h = fedreci_wire_header(e);
    int masked = e->body_case == FEDREC__V1__ENVELOPE__BODY_MASKED_INPUT;
    fedreci_wire_free(e);
    if (masked && g_has_mac)
        assert_int_equal(fedreci_wire_mac(m, g_raw_mac), FEDREC_OK);
    else
        assert_int_equal(fedreci_wire_sign(m, &h, g_raw_sk), FEDREC_OK);
}

static void raw_send(raw *r, nng_msg *m)
{
    raw_auth(m);
    nng_aio_set_msg(r->aio, m);
    nng_ctx_send(r->ctx, r->aio);
    nng_aio_wait(r->aio);
    assert_int_equal(nng_aio_result(r->aio), 0);
    nng_ctx_recv(r->ctx, r->aio);
}

static fedreci_wire_env *raw_wait(raw *r)
{
    nng_aio_wait(r->aio);
    assert_int_equal(nng_aio_result(r->aio), 0);
    nng_msg *m = nng_aio_get_msg(r->aio);
    fedreci_wire_env *e = NULL;
    assert_int_equal(fedreci_wire_decode_msg(m, 1u << 24, &e), FEDREC_OK);
    nng_msg_free(m);
    return e;
}

static fedreci_wire_env *raw_req(raw *r, nng_msg *m)
{
    raw_send(r, m);
    return raw_wait(r);
}

/* Checks in on r while the sessions for clients [0, n_sessions) join; returns
 * the round parameters. */
static void manual_checkin(raw *r, tclient *me, const char *url, fedreci_session **s,
                           int n_sessions, const int *drops, fedreci_wire_round *rd)
{
    nng_msg *m;
    fedreci_wire_hdr h = {me->id, 0, FEDRECI_WIRE_STAGE_CHECKIN};
    assert_int_equal(fedreci_wire_enc_checkin(&m, &h, me->pk, 1, 1), FEDREC_OK);
    raw_send(r, m);
    for (int i = 0; i < n_sessions; i++)
        s[i] = session_new(url, &W.cl[i], drops ? drops[i] : -1);
    fedreci_wire_env *e = raw_wait(r);
    assert_int_equal(fedreci_wire_get_round(e, rd), FEDREC_OK);
    fedreci_wire_free(e);
}

static void wait_sessions(fedreci_session **s, int n, fedreci_session_outcome want)
{
    for (int i = 0; i < n; i++) {
        fedreci_session_result res;
        assert_int_equal(fedreci_session_wait(s[i], -1, &res), FEDREC_OK);
        if (res.outcome != want)
            fail_msg("session %d: outcome %d (%s)", i, res.outcome, res.text);
        fedreci_session_destroy(s[i]);
    }
}

/* A client that stalls past the share-keys deadline (1 s) and then sends:
 * its late ShareKeys is refused with "counted as dropped", a masked input
 * after that is refused too, and the round completes without it. To keep the
 * round open while the late messages arrive (no timing assumptions), session
 * 0 stops before unmasking and the unmask stage has a ten-minute deadline;
 * it is declared gone once the late messages were answered. */
static void test_stall_past_deadline(void **state)
{
    (void)state;
    const char *url = "inproc://fedrec-faults-stall";
    world_init(6);
    fedreci_coord *c = coord_new(url, 6, 3, 1000, 600000);
    tclient *me = &W.cl[5];
    g_raw_sk = me->sk;
    g_has_mac = 0;
    raw r;
    raw_open(&r, url);
    fedreci_session *s[5];
    fedreci_wire_round rd;
    nng_msg *m;
    {
        fedreci_wire_hdr h = {me->id, 0, FEDRECI_WIRE_STAGE_CHECKIN};
        assert_int_equal(fedreci_wire_enc_checkin(&m, &h, me->pk, 1, 1), FEDREC_OK);
        raw_send(&r, m);
        for (int i = 0; i < 5; i++)
            s[i] = session_new(url, &W.cl[i], i == 0 ? 3 : -1);
        fedreci_wire_env *e = raw_wait(&r);
        assert_int_equal(fedreci_wire_get_round(e, &rd), FEDREC_OK);
        fedreci_wire_free(e);
    }
    uint64_t rid = rd.secagg.round_id;
    fedreci_secagg_client *sa;
    uint8_t seed[32] = {4};
    assert_int_equal(fedreci_secagg_client_create(&sa, &rd.secagg, me->id, me->sk, seed),
                     FEDREC_OK);
    fedreci_secagg_advert adv;
    assert_int_equal(fedreci_secagg_client_advertise(sa, &adv), FEDREC_OK);
    assert_int_equal(fedreci_secagg_client_mac_key(sa, rd.coord_pk, g_raw_mac), FEDREC_OK);
    g_has_mac = 1;
    fedreci_wire_hdr hs = {me->id, rid, FEDRECI_WIRE_STAGE_ADVERTISE};
    assert_int_equal(fedreci_wire_enc_advertise(&m, &hs, &adv), FEDREC_OK);
    fedreci_wire_env *e = raw_req(&r, m);
    fedreci_secagg_advert *ro;
    size_t nro;
    assert_int_equal(fedreci_wire_get_roster(e, me->id, 2, 6, &ro, &nro), FEDREC_OK);
    fedreci_wire_free(e);
    const fedreci_secagg_ciphertext *cts;
    size_t ncts;
    assert_int_equal(fedreci_secagg_client_share_keys(sa, ro, nro, &cts, &ncts), FEDREC_OK);
    free(ro);
    /* stall: hold the shares until the others have sent their masked inputs,
     * which they do only after the share-keys stage closed at its deadline */
    pthread_mutex_lock(&W.mu);
    for (;;) {
        int all = 1;
        for (int i = 0; i < 5; i++)
            all &= W.cl[i].stage2_sent;
        if (all)
            break;
        pthread_cond_wait(&W.cv, &W.mu);
    }
    pthread_mutex_unlock(&W.mu);
    hs.stage = FEDRECI_WIRE_STAGE_SHARE_KEYS;
    assert_int_equal(fedreci_wire_enc_ciphertexts(&m, &hs, 0, cts, ncts), FEDREC_OK);
    e = raw_req(&r, m);
    assert_int_equal(e->body_case, FEDREC__V1__ENVELOPE__BODY_ERROR);
    assert_int_equal(e->error->code, FEDREC_ERR_STAGE);
    assert_non_null(strstr(e->error->text, "counted as dropped"));
    fedreci_wire_free(e);
    /* nor can it slip a masked input in afterwards */
    uint32_t zeros[D] = {0};
    hs.stage = FEDRECI_WIRE_STAGE_MASKED_INPUT;
    assert_int_equal(fedreci_wire_enc_masked(&m, &hs, zeros, D), FEDREC_OK);
    e = raw_req(&r, m);
    assert_int_equal(e->body_case, FEDREC__V1__ENVELOPE__BODY_ERROR);
    fedreci_wire_free(e);
    fedreci_secagg_client_destroy(sa);
    /* let the unmask stage close without session 0 */
    fedreci_session_result res;
    assert_int_equal(fedreci_session_wait(s[0], -1, &res), FEDREC_OK);
    assert_int_equal(res.outcome, FEDRECI_SESSION_DROPPED);
    fedreci_session_destroy(s[0]);
    fedreci_coord_client_gone(c, W.cl[0].id);
    wait_sessions(s + 1, 4, FEDRECI_SESSION_COMPLETED);
    assert_int_equal(fedreci_coord_wait(c, -1), FEDREC_OK);
    assert_int_equal(W.st.advertised, 6);
    assert_int_equal(W.st.shared, 5);
    assert_int_equal(W.st.dropped[1], 1);
    assert_int_equal(W.st.survivors, 5);
    assert_int_equal(W.st.unmasked, 4);
    assert_int_equal(W.st.dropped[3], 1);
    check_oracle();
    for (uint32_t i = 0; i < W.st.survivors; i++)
        assert_int_not_equal(W.surv[i], me->id);
    check_model(c, 2);
    raw_close(&r);
    fedreci_coord_destroy(c);
}

/* A client that disconnects while its ShareKeys request is held (long poll)
 * and reconnects on a new socket: the resent ShareKeys is answered with the
 * relay (counted once), and it completes the round on the new connection.
 * Defined behaviour: the engine identifies a client by its id (and its
 * identity key at check-in), not by its connection; a held request on a
 * dead connection is dropped when the stage closes or a resend replaces it.
 * Session 4 stops before sharing keys and is declared gone only after the
 * resend was handled, so the share-keys stage closes after it: the relay
 * then goes to the new connection. (Closing it while a reply is in flight
 * toward the old connection would hit a message leak inside nng 1.5.2's
 * inproc pipe close, which is not fedrec's to fix.) */
static void test_disconnect_reconnect(void **state)
{
    (void)state;
    const char *url = "inproc://fedrec-faults-reconnect";
    world_init(6);
    fedreci_coord *c = coord_new(url, 6, 3, 600000, 600000);
    tclient *me = &W.cl[5];
    g_raw_sk = me->sk;
    g_has_mac = 0;
    raw a, b;
    raw_open(&a, url);
    fedreci_session *s[5];
    fedreci_wire_round rd;
    static const int drops[5] = {-1, -1, -1, -1, 1};
    manual_checkin(&a, me, url, s, 5, drops, &rd);
    uint64_t rid = rd.secagg.round_id;
    fedreci_secagg_client *sa;
    uint8_t seed[32] = {5};
    assert_int_equal(fedreci_secagg_client_create(&sa, &rd.secagg, me->id, me->sk, seed),
                     FEDREC_OK);
    fedreci_secagg_advert adv;
    assert_int_equal(fedreci_secagg_client_advertise(sa, &adv), FEDREC_OK);
    assert_int_equal(fedreci_secagg_client_mac_key(sa, rd.coord_pk, g_raw_mac), FEDREC_OK);
    g_has_mac = 1;
    nng_msg *m;
    fedreci_wire_hdr hs = {me->id, rid, FEDRECI_WIRE_STAGE_ADVERTISE};
    assert_int_equal(fedreci_wire_enc_advertise(&m, &hs, &adv), FEDREC_OK);
    fedreci_wire_env *e = raw_req(&a, m);
    fedreci_secagg_advert *ro;
    size_t nro;
    assert_int_equal(fedreci_wire_get_roster(e, me->id, 2, 6, &ro, &nro), FEDREC_OK);
    fedreci_wire_free(e);
    assert_int_equal(nro, 6);
    const fedreci_secagg_ciphertext *cts;
    size_t ncts;
    assert_int_equal(fedreci_secagg_client_share_keys(sa, ro, nro, &cts, &ncts), FEDREC_OK);
    free(ro);
    /* send ShareKeys on a and drop the connection while it is held */
    hs.stage = FEDRECI_WIRE_STAGE_SHARE_KEYS;
    assert_int_equal(fedreci_wire_enc_ciphertexts(&m, &hs, 0, cts, ncts), FEDREC_OK);
    uint64_t upd0, tot0, upd, tot;
    assert_int_equal(fedreci_coord_client_bytes(c, me->id, &upd0, &tot0), FEDREC_OK);
    raw_send(&a, m);
    /* the engine holds it (handled: the update byte count moved), then the
     * connection goes away; polls, no timing assumption */
    do {
        usleep(1000);
        assert_int_equal(fedreci_coord_client_bytes(c, me->id, &upd, &tot), FEDREC_OK);
    } while (upd == upd0);
    raw_close(&a);

    /* reconnect: a replayed advert is answered with the same roster */
    raw_open(&b, url);
    hs.stage = FEDRECI_WIRE_STAGE_ADVERTISE;
    assert_int_equal(fedreci_wire_enc_advertise(&m, &hs, &adv), FEDREC_OK);
    e = raw_req(&b, m);
    assert_int_equal(e->body_case, FEDREC__V1__ENVELOPE__BODY_ROSTER);
    assert_int_equal(e->roster->n_member_ids, 6);
    fedreci_wire_free(e);
    hs.stage = FEDRECI_WIRE_STAGE_SHARE_KEYS;
    assert_int_equal(fedreci_wire_enc_ciphertexts(&m, &hs, 0, cts, ncts), FEDREC_OK);
    assert_int_equal(fedreci_coord_client_bytes(c, me->id, &upd0, &tot0), FEDREC_OK);
    raw_send(&b, m);
    do {
        usleep(1000);
        assert_int_equal(fedreci_coord_client_bytes(c, me->id, &upd, &tot), FEDREC_OK);
    } while (upd == upd0);
    /* session 4 has stopped before sharing; now the stage may close */
    fedreci_session_result res4;
    assert_int_equal(fedreci_session_wait(s[4], -1, &res4), FEDREC_OK);
    assert_int_equal(res4.outcome, FEDRECI_SESSION_DROPPED);
    fedreci_session_destroy(s[4]);
    fedreci_coord_client_gone(c, W.cl[4].id);
    e = raw_wait(&b);
    fedreci_secagg_ciphertext *in;
    size_t nin;
    assert_int_equal(fedreci_wire_get_ciphertexts(e, 6, &in, &nin), FEDREC_OK);
    assert_int_equal(nin, 4);
    float x[D - 1];
    uint32_t wgt;
    assert_int_equal(compute_update(me, &rd, x, &wgt), FEDREC_OK);
    const uint32_t *masked;
    assert_int_equal(fedreci_secagg_client_masked_input(sa, in, nin, x, wgt, &masked, NULL),
                     FEDREC_OK);
    free(in);
    fedreci_wire_free(e);
    on_quantized(me, rid, fedreci_secagg_client_quantized_input(sa), D);
    hs.stage = FEDRECI_WIRE_STAGE_MASKED_INPUT;
    assert_int_equal(fedreci_wire_enc_masked(&m, &hs, masked, D), FEDREC_OK);
    e = raw_req(&b, m);
    const uint64_t *sv, *dr;
    size_t ns, nd;
    assert_int_equal(fedreci_wire_get_unmask_request(e, &sv, &ns, &dr, &nd), FEDREC_OK);
    assert_int_equal(ns, 5);
    assert_int_equal(nd, 0); /* session 4 never shared: not a dropped sharer */
    const fedreci_secagg_reveal *rv;
    size_t nrv;
    assert_int_equal(fedreci_secagg_client_unmask(sa, sv, ns, dr, nd, &rv, &nrv), FEDREC_OK);
    fedreci_wire_free(e);
    hs.stage = FEDRECI_WIRE_STAGE_UNMASK;
    assert_int_equal(fedreci_wire_enc_unmask(&m, &hs, rv, nrv), FEDREC_OK);
    e = raw_req(&b, m);
    assert_int_equal(e->body_case, FEDREC__V1__ENVELOPE__BODY_ROUND_RESULT);
    assert_true(e->round_result->completed);
    assert_int_equal(e->round_result->model_version, 2);
    fedreci_wire_free(e);
    fedreci_secagg_client_destroy(sa);
    wait_sessions(s, 4, FEDRECI_SESSION_COMPLETED);
    assert_int_equal(fedreci_coord_wait(c, -1), FEDREC_OK);
    assert_int_equal(W.st.shared, 5); /* the resent shares counted once */
    assert_int_equal(W.st.dropped[1], 1);
    assert_int_equal(W.st.survivors, 5);
    check_oracle();
    check_model(c, 2);
    raw_close(&b);
    fedreci_coord_destroy(c);
}

/* Per-client limits: a full model download needs a check-in, and a client
 * gets at most max_msgs_per_round (here 4) full copies of one version; a
 * "not modified" answer is always given. Stage messages are capped per round
 * the same way (test_engine covers duplicates; here the cap itself). */
static void test_per_client_limits(void **state)
{
    (void)state;
    const char *url = "inproc://fedrec-faults-limits";
    world_init(2);
    fedreci_coord_config cfg;
    fedreci_coord_config_default(&cfg);
    const char *urls[1] = {url};
    cfg.listen_urls = urls;
    cfg.n_listen = 1;
    cfg.n_contexts = 16;
    cfg.cohort_size = 2;
    cfg.checkin_window_ms = 600000;
    cfg.max_msgs_per_round = 4;
    cfg.opt.n_train = 2;
    fedreci_coord_model mdl = {1, N_ITEMS, K, y0, codes, NULL, 0};
    fedreci_coord *c;
    assert_int_equal(fedreci_coord_create(&c, &cfg, NULL, &mdl), FEDREC_OK);
    assert_int_equal(fedreci_coord_start(c), FEDREC_OK);
    raw r;
    raw_open(&r, url);
    tclient *me = &W.cl[0];
    g_raw_sk = me->sk;
    g_has_mac = 0;
    nng_msg *m;
    fedreci_wire_hdr h = {me->id, 0, FEDRECI_WIRE_STAGE_MODEL};
    /* before checking in: refused */
    assert_int_equal(fedreci_wire_enc_model_request(&m, &h, 0), FEDREC_OK);
    fedreci_wire_env *e = raw_req(&r, m);
    assert_int_equal(e->body_case, FEDREC__V1__ENVELOPE__BODY_ERROR);
    assert_int_equal(e->error->code, FEDREC_ERR_NOT_FOUND);
    fedreci_wire_free(e);
    /* check in as opted out (answered at once, registers the client) */
    h.stage = FEDRECI_WIRE_STAGE_CHECKIN;
    assert_int_equal(fedreci_wire_enc_checkin(&m, &h, me->pk, 0, 0), FEDREC_OK);
    e = raw_req(&r, m);
    assert_int_equal(e->body_case, FEDREC__V1__ENVELOPE__BODY_CHECK_IN_REPLY);
    fedreci_wire_free(e);
    h.stage = FEDRECI_WIRE_STAGE_MODEL;
    for (int i = 0; i < 6; i++) {
        assert_int_equal(fedreci_wire_enc_model_request(&m, &h, 0), FEDREC_OK);
        e = raw_req(&r, m);
        if (i < 4) {
            fedreci_wire_model wm;
            assert_int_equal(fedreci_wire_get_model(e, &wm), FEDREC_OK);
            assert_int_equal(wm.version, 1);
        } else {
            assert_int_equal(e->body_case, FEDREC__V1__ENVELOPE__BODY_ERROR);
            assert_int_equal(e->error->code, FEDREC_ERR_BUSY);
        }
        fedreci_wire_free(e);
    }
    /* "not modified" costs nothing and is not limited */
    assert_int_equal(fedreci_wire_enc_model_request(&m, &h, 1), FEDREC_OK);
    e = raw_req(&r, m);
    assert_int_equal(e->body_case, FEDREC__V1__ENVELOPE__BODY_MODEL_REPLY);
    assert_true(e->model_reply->not_modified);
    fedreci_wire_free(e);
    raw_close(&r);
    fedreci_coord_destroy(c);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    fedreci_log_set_level(FEDRECI_LOG_ERROR);
    if (getenv("FEDREC_TEST_FILTER"))
        cmocka_set_test_filter(getenv("FEDREC_TEST_FILTER"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dropout_matrix),
        cmocka_unit_test(test_stall_past_deadline),
        cmocka_unit_test(test_disconnect_reconnect),
        cmocka_unit_test(test_per_client_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
