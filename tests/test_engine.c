/* End-to-end tests of the coordinator engine (coordinator/engine.h) and the
 * client session driver (client/session.h) over nng inproc:// and tcp://:
 * rounds of SecAgg+ whose unmasked sums must equal, exactly, the plain sum of
 * the survivors' quantized inputs (the oracle), dropouts at every stage,
 * aborts below the threshold, duplicate and out-of-order messages, opt-out,
 * and the minimum cohort. No timed assertions: deadlines only decide who
 * counts as dropped. */
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

#define N_ITEMS 50
#define K 4
#define D (N_ITEMS * K + 1)
#define MAXC 16
#define MAXR 8

typedef struct tclient {
    uint64_t id;
    uint8_t pk[32], sk[64];
    uint64_t model_version;
    uint32_t q[MAXR][D]; /* quantized input per round index */
    int has_q[MAXR];
    uint64_t upload_bytes;
    int got_model;
} tclient;

typedef struct world {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    tclient cl[MAXC];
    int n;
    uint64_t first_round;
    /* per round (index = round_id - first_round) */
    int done[MAXR];
    fedreci_round_stats st[MAXR];
    uint32_t sum[MAXR][D];
    uint64_t surv[MAXR][MAXC];
    int commits;
    fedreci_coord *gone_to; /* sessions that drop out tell this engine */
} world;

static world W;

static void on_round_done(void *arg, const fedreci_round_stats *st)
{
    world *w = arg;
    pthread_mutex_lock(&w->mu);
    int r = (int)(st->round_id - w->first_round);
    if (r >= 0 && r < MAXR) {
        w->done[r] = 1;
        w->st[r] = *st;
        if (st->sum)
            memcpy(w->sum[r], st->sum, sizeof w->sum[r]);
        for (uint32_t i = 0; i < st->survivors && i < MAXC; i++)
            w->surv[r][i] = st->survivor_ids[i];
    }
    pthread_mutex_unlock(&w->mu);
}

static fedrec_err on_commit(void *arg, uint64_t round_id, uint64_t version, const float *y,
                            uint32_t n_items, uint32_t k)
{
    world *w = arg;
    (void)round_id;
    (void)version;
    (void)y;
    assert_int_equal(n_items, N_ITEMS);
    assert_int_equal(k, K);
    pthread_mutex_lock(&w->mu);
    w->commits++;
    pthread_mutex_unlock(&w->mu);
    return FEDREC_OK;
}

static tclient *client_of(uint64_t id)
{
    for (int i = 0; i < W.n; i++)
        if (W.cl[i].id == id)
            return &W.cl[i];
    return NULL;
}

/* Deterministic update: values in [-2, 2], some beyond the clip of 16 for
 * client 3 to exercise clipping. */
static fedrec_err compute_update(void *arg, const fedreci_wire_round *rd, float *x,
                                 uint32_t *weight)
{
    tclient *c = arg;
    for (uint32_t i = 0; i < rd->secagg.d - 1; i++)
        x[i] = (float)((int)((c->id * 31 + i * 7 + rd->secagg.round_id) % 201) - 100) / 50.0f;
    if (c->id == 3)
        x[0] = 100.0f;
    *weight = 1;
    return FEDREC_OK;
}

static void on_quantized(void *arg, uint64_t round_id, const uint32_t *q, uint32_t d)
{
    tclient *c = arg;
    int r = (int)(round_id - W.first_round);
    assert_int_equal(d, D);
    assert_true(r >= 0 && r < MAXR);
    pthread_mutex_lock(&W.mu);
    memcpy(c->q[r], q, sizeof c->q[r]);
    c->has_q[r] = 1;
    pthread_mutex_unlock(&W.mu);
}

static void on_upload(void *arg, uint64_t round_id, int stage, size_t bytes, const char *what,
                      uint32_t clipped)
{
    tclient *c = arg;
    (void)round_id;
    (void)what;
    pthread_mutex_lock(&W.mu);
    c->upload_bytes += bytes;
    pthread_cond_broadcast(&W.cv);
    pthread_mutex_unlock(&W.mu);
    if (stage == 2 && c->id == 3)
        assert_int_equal(clipped, 1);
}

static void on_model(void *arg, const fedreci_wire_model *m)
{
    tclient *c = arg;
    assert_int_equal(m->n_items, N_ITEMS);
    assert_int_equal(m->k, K);
    assert_non_null(m->gram);
    assert_int_equal(m->n_item_codes, N_ITEMS);
    c->got_model++;
}

static void on_done(void *arg, const fedreci_session_result *r)
{
    tclient *c = arg;
    if (r->outcome == FEDRECI_SESSION_DROPPED && W.gone_to)
        fedreci_coord_client_gone(W.gone_to, c->id);
}

static void world_init(int n, uint64_t first_round)
{
    memset(&W, 0, sizeof W);
    pthread_mutex_init(&W.mu, NULL);
    pthread_cond_init(&W.cv, NULL);
    W.n = n;
    W.first_round = first_round;
    for (int i = 0; i < n; i++) {
        crypto_sign_keypair(W.cl[i].pk, W.cl[i].sk);
        W.cl[i].id = fedreci_secagg_id_from_pk(W.cl[i].pk);
    }
}

static char codes_buf[N_ITEMS][8];
static const char *codes[N_ITEMS];
static float y0[N_ITEMS * K];

static fedreci_coord *coord_new(const char *url, uint32_t cohort, uint32_t neighbors,
                                uint32_t threshold, uint32_t stage_ms, uint32_t max_rounds)
{
    for (int i = 0; i < N_ITEMS; i++) {
        snprintf(codes_buf[i], sizeof codes_buf[i], "C%03d", i);
        codes[i] = codes_buf[i];
    }
    for (int i = 0; i < N_ITEMS * K; i++)
        y0[i] = (float)((i * 37) % 19 - 9) * 0.01f;
    fedreci_coord_config cfg;
    fedreci_coord_config_default(&cfg);
    const char *urls[1] = {url};
    cfg.listen_urls = urls;
    cfg.n_listen = 1;
    cfg.n_contexts = 64;
    cfg.cohort_size = cohort;
    cfg.min_cohort = 2;
    cfg.neighbors = neighbors;
    cfg.threshold = threshold;
    cfg.clip = 16;
    for (int s = 0; s < 4; s++)
        cfg.stage_ms[s] = stage_ms;
    cfg.checkin_window_ms = 60000;
    cfg.retry_after_ms = 50;
    cfg.seed = 99;
    cfg.first_round_id = W.first_round;
    cfg.max_rounds = max_rounds;
    cfg.opt.n_train = 12;
    fedreci_coord_hooks hooks = {&W, on_round_done, on_commit, NULL, NULL};
    fedreci_coord_model m = {1, N_ITEMS, K, y0, codes, NULL, 0};
    fedreci_coord *c = NULL;
    fedrec_err e = fedreci_coord_create(&c, &cfg, &hooks, &m);
    if (e)
        fail_msg("coord_create: %s", fedrec_errmsg());
    e = fedreci_coord_start(c);
    if (e)
        fail_msg("coord_start: %s", fedrec_errmsg());
    return c;
}

static fedreci_session *session_new(const char *url, tclient *c, int opted_in, int dropout)
{
    fedreci_session_config cfg;
    fedreci_session_config_default(&cfg);
    cfg.url = url;
    cfg.client_id = c->id;
    cfg.identity_sk = c->sk;
    cfg.model_version = c->model_version;
    cfg.opted_in = opted_in;
    cfg.fetch_model = 1;
    cfg.timeout_ms = 60000;
    cfg.dropout_stage = dropout;
    uint8_t seed[32] = {(uint8_t)c->id};
    cfg.rounding_seed = seed;
    fedreci_session_hooks h = {c, on_model, compute_update, on_upload, on_quantized, on_done};
    fedreci_session *s = NULL;
    fedrec_err e = fedreci_session_create(&s, &cfg, &h);
    if (e)
        fail_msg("session_create: %s", fedrec_errmsg());
    assert_int_equal(fedreci_session_start(s), FEDREC_OK);
    return s;
}

/* Runs one round with sessions for clients [0, n) (dropouts[i] per client or
 * NULL) and returns the outcomes. */
static void run_round(const char *url, int n, const int *dropouts, fedreci_session_result *res)
{
    fedreci_session *s[MAXC];
    for (int i = 0; i < n; i++)
        s[i] = session_new(url, &W.cl[i], 1, dropouts ? dropouts[i] : -1);
    for (int i = 0; i < n; i++) {
        assert_int_equal(fedreci_session_wait(s[i], -1, &res[i]), FEDREC_OK);
        if (res[i].model_version)
            W.cl[i].model_version = res[i].model_version;
        fedreci_session_destroy(s[i]);
    }
}

/* The oracle: the unmasked sum equals the survivors' quantized inputs summed
 * in Z_2^32, word for word. */
static void check_oracle(int r)
{
    const fedreci_round_stats *st = &W.st[r];
    assert_true(st->completed);
    uint32_t *plain = calloc(D, sizeof *plain);
    for (uint32_t i = 0; i < st->survivors; i++) {
        tclient *c = client_of(W.surv[r][i]);
        assert_non_null(c);
        assert_true(c->has_q[r]);
        for (int j = 0; j < D; j++)
            plain[j] += c->q[r][j];
    }
    assert_memory_equal(plain, W.sum[r], sizeof W.sum[r]);
    /* the weight coordinate counts the survivors */
    assert_int_equal(plain[D - 1], st->survivors);
    free(plain);
}

static void test_three_rounds_inproc(void **state)
{
    (void)state;
    const char *url = "inproc://fedrec-engine-3r";
    world_init(12, 10);
    fedreci_coord *c = coord_new(url, 12, 6, 0, 20000, 3);
    for (int r = 0; r < 3; r++) {
        fedreci_session_result res[MAXC];
        run_round(url, 12, NULL, res);
        for (int i = 0; i < 12; i++) {
            if (res[i].outcome != FEDRECI_SESSION_COMPLETED)
                fail_msg("round %d client %d: outcome %d: %s", r, i, res[i].outcome, res[i].text);
            assert_int_equal(res[i].round_id, 10 + r);
            assert_int_equal(res[i].model_version, 1 + r);  /* trained on */
            assert_int_equal(res[i].latest_version, 2 + r); /* produced */
        }
        assert_true(W.done[r]);
        assert_int_equal(W.st[r].cohort, 12);
        assert_int_equal(W.st[r].survivors, 12);
        assert_int_equal(W.st[r].params->k, 6);
        assert_int_equal(W.st[r].params->t, 4);
        check_oracle(r);
        /* the ledger's byte counts equal what the coordinator received */
        for (int i = 0; i < 12; i++) {
            uint64_t upd, tot;
            assert_int_equal(fedreci_coord_client_bytes(c, W.cl[i].id, &upd, &tot), FEDREC_OK);
            assert_int_equal(upd, W.cl[i].upload_bytes);
            assert_true(tot > upd);
        }
    }
    /* the model was downloaded once per version by each client */
    for (int i = 0; i < 12; i++)
        assert_int_equal(W.cl[i].got_model, 3);
    assert_int_equal(fedreci_coord_wait(c, -1), FEDREC_OK);
    fedreci_coord_status st;
    fedreci_coord_get_status(c, &st);
    assert_int_equal(st.model_version, 4);
    assert_int_equal(st.rounds_completed, 3);
    assert_int_equal(W.commits, 3);
    /* the model changed from the start model */
    float *y = malloc(sizeof y0);
    uint64_t v;
    assert_int_equal(fedreci_coord_get_model(c, y, N_ITEMS * K, &v), FEDREC_OK);
    assert_int_equal(v, 4);
    assert_memory_not_equal(y, y0, sizeof y0);
    assert_int_equal(fedreci_coord_get_model(c, y, 3, &v), FEDREC_ERR_RANGE);
    free(y);
    /* after the last round, check-ins are told there is no further round */
    fedreci_session_result r1;
    fedreci_session *s = session_new(url, &W.cl[0], 1, -1);
    assert_int_equal(fedreci_session_wait(s, -1, &r1), FEDREC_OK);
    assert_int_equal(r1.outcome, FEDRECI_SESSION_NO_ROUND);
    fedreci_session_destroy(s);
    fedreci_coord_destroy(c);
}

static void test_tcp_round(void **state)
{
    (void)state;
    /* port 0: the kernel picks a free one (a fixed port can collide with
       another test's ephemeral ports) */
    world_init(6, 1);
    fedreci_coord *c = coord_new("tcp://127.0.0.1:0", 6, 0, 0, 20000, 1);
    int port = fedreci_coord_port(c, 0);
    assert_true(port > 0);
    assert_int_equal(fedreci_coord_port(c, 1), 0);
    char url[64];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", port);
    fedreci_session_result res[MAXC];
    run_round(url, 6, NULL, res);
    for (int i = 0; i < 6; i++)
        assert_int_equal(res[i].outcome, FEDRECI_SESSION_COMPLETED);
    assert_int_equal(W.st[0].params->k, 5); /* classic SecAgg: complete graph */
    check_oracle(0);
    fedreci_coord_destroy(c);
}

static void test_dropout_each_stage(void **state)
{
    (void)state;
    const char *url = "inproc://fedrec-engine-drop";
    world_init(12, 1);
    /* deadlines decide who is dropped: short enough to keep the test quick */
    fedreci_coord *c = coord_new(url, 12, 0, 6, 1500, 1);
    int drops[MAXC];
    for (int i = 0; i < 12; i++)
        drops[i] = -1;
    drops[1] = 0; /* never advertises */
    drops[4] = 1; /* never shares keys */
    drops[6] = 2; /* never sends its masked input */
    drops[9] = 3; /* sends its masked input, never unmasks */
    fedreci_session_result res[MAXC];
    run_round(url, 12, drops, res);
    assert_true(W.done[0]);
    const fedreci_round_stats *st = &W.st[0];
    assert_int_equal(st->cohort, 12);
    assert_int_equal(st->advertised, 11);
    assert_int_equal(st->shared, 10);
    assert_int_equal(st->survivors, 9);
    assert_int_equal(st->unmasked, 8);
    for (int s = 0; s < 4; s++)
        assert_int_equal(st->dropped[s], 1);
    check_oracle(0);
    for (int i = 0; i < 12; i++) {
        if (drops[i] >= 0) {
            assert_int_equal(res[i].outcome, FEDRECI_SESSION_DROPPED);
        } else if (res[i].outcome != FEDRECI_SESSION_COMPLETED) {
            fail_msg("client %d: outcome %d: %s", i, res[i].outcome, res[i].text);
        }
    }
    /* the survivor whose masked input counted is in the sum */
    int found = 0;
    for (uint32_t i = 0; i < st->survivors; i++)
        found |= W.surv[0][i] == W.cl[9].id;
    assert_true(found);
    fedreci_coord_destroy(c);
}

/* The simulator's shortcut: dropouts declared gone close the stages without
 * waiting for the (here ten-minute) deadlines; the sums stay exact. */
static void test_dropout_declared(void **state)
{
    (void)state;
    const char *url = "inproc://fedrec-engine-gone";
    world_init(12, 1);
    fedreci_coord *c = coord_new(url, 12, 8, 0, 600000, 1);
    W.gone_to = c;
    int drops[MAXC];
    for (int i = 0; i < 12; i++)
        drops[i] = i % 4 == 1 ? (i / 4) : -1; /* clients 1, 5, 9 drop at stages 0, 1, 2 */
    fedreci_session_result res[MAXC];
    run_round(url, 12, drops, res);
    const fedreci_round_stats *st = &W.st[0];
    assert_true(st->completed);
    assert_int_equal(st->advertised, 11);
    assert_int_equal(st->shared, 10);
    assert_int_equal(st->survivors, 9);
    assert_int_equal(st->unmasked, 9);
    check_oracle(0);
    W.gone_to = NULL;
    fedreci_coord_destroy(c);
}

static void test_abort_below_threshold(void **state)
{
    (void)state;
    const char *url = "inproc://fedrec-engine-abort";
    world_init(6, 1);
    fedreci_coord *c = coord_new(url, 6, 0, 5, 1500, 1);
    int drops[MAXC] = {-1, 2, -1, 2, -1, -1};
    fedreci_session_result res[MAXC];
    run_round(url, 6, drops, res);
    assert_true(W.done[0]);
    assert_false(W.st[0].completed);
    assert_int_equal(W.st[0].abort_err, FEDREC_ERR_ABORTED);
    assert_null(W.st[0].sum);
    assert_int_equal(W.st[0].model_version, 1);
    for (int i = 0; i < 6; i++)
        assert_int_equal(res[i].outcome,
                         drops[i] >= 0 ? FEDRECI_SESSION_DROPPED : FEDRECI_SESSION_ABORTED);
    fedreci_coord_status cs;
    fedreci_coord_get_status(c, &cs);
    assert_int_equal(cs.model_version, 1);
    assert_int_equal(cs.rounds_aborted, 1);
    assert_int_equal(W.commits, 0);
    fedreci_coord_destroy(c);
}

/* ---- a hand-driven client on a raw REQ socket -------------------------------------- */

typedef struct raw {
    nng_socket sock;
    nng_ctx ctx[2];
    nng_aio *aio[2];
} raw;

static void raw_open(raw *r, const char *url)
{
    assert_int_equal(nng_req0_open(&r->sock), 0);
    assert_int_equal(nng_dial(r->sock, url, NULL, 0), 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(nng_ctx_open(&r->ctx[i], r->sock), 0);
        nng_ctx_set_ms(r->ctx[i], NNG_OPT_REQ_RESENDTIME, 0x7fffffff);
        assert_int_equal(nng_aio_alloc(&r->aio[i], NULL, NULL), 0);
        nng_aio_set_timeout(r->aio[i], 60000);
    }
}

static void raw_close(raw *r)
{
    for (int i = 0; i < 2; i++) {
        nng_aio_stop(r->aio[i]);
        nng_aio_free(r->aio[i]);
    }
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

/* Sends m on context i and starts waiting for the reply. */
static void raw_send(raw *r, int i, nng_msg *m)
{
    raw_auth(m);
    nng_aio_set_msg(r->aio[i], m);
    nng_ctx_send(r->ctx[i], r->aio[i]);
    nng_aio_wait(r->aio[i]);
    assert_int_equal(nng_aio_result(r->aio[i]), 0);
    nng_ctx_recv(r->ctx[i], r->aio[i]);
}

static fedreci_wire_env *raw_wait(raw *r, int i)
{
    nng_aio_wait(r->aio[i]);
    assert_int_equal(nng_aio_result(r->aio[i]), 0);
    nng_msg *m = nng_aio_get_msg(r->aio[i]);
    fedreci_wire_env *e = NULL;
    assert_int_equal(fedreci_wire_decode_msg(m, 1u << 24, &e), FEDREC_OK);
    nng_msg_free(m);
    return e;
}

/* Abandons the request on context i; a reply that already arrived is freed. */
static void raw_abandon(raw *r, int i)
{
    nng_aio_cancel(r->aio[i]);
    nng_aio_wait(r->aio[i]);
    if (nng_aio_result(r->aio[i]) == 0)
        nng_msg_free(nng_aio_get_msg(r->aio[i]));
}

static fedreci_wire_env *raw_req(raw *r, nng_msg *m)
{
    raw_send(r, 0, m);
    return raw_wait(r, 0);
}

static void expect_error(fedreci_wire_env *e, fedrec_err code)
{
    assert_int_equal(e->body_case, FEDREC__V1__ENVELOPE__BODY_ERROR);
    assert_int_equal(e->error->code, code);
    fedreci_wire_free(e);
}

/* Waits until the engine has handled a message from `id` that raised its
 * byte count above *seen (the first request sent on context 1 must be
 * handled before the second goes out on context 0, or their order on the
 * engine's side is up to the scheduler). Polls; no timing assertion. */
static void wait_handled(fedreci_coord *c, uint64_t id, uint64_t *seen)
{
    for (;;) {
        uint64_t upd = 0, tot = 0;
        if (fedreci_coord_client_bytes(c, id, &upd, &tot) == FEDREC_OK && tot > *seen) {
            *seen = tot;
            return;
        }
        usleep(1000);
    }
}

static void test_hand_driven_duplicates(void **state)
{
    (void)state;
    const char *url = "inproc://fedrec-engine-dup";
    world_init(5, 1);
    /* client index 4 is hand driven; 0..3 are sessions */
    fedreci_coord *c = coord_new(url, 5, 0, 0, 20000, 1);
    tclient *me = &W.cl[4];
    raw r;
    raw_open(&r, url);
    g_raw_sk = me->sk;
    g_has_mac = 0;
    nng_msg *m;

    /* garbage and a truncated message are refused; the coordinator keeps serving */
    uint8_t junk[64];
    for (int i = 0; i < 64; i++)
        junk[i] = (uint8_t)(i * 13 + 5);
    assert_int_equal(nng_msg_alloc(&m, sizeof junk), 0);
    memcpy(nng_msg_body(m), junk, sizeof junk);
    expect_error(raw_req(&r, m), FEDREC_ERR_FORMAT);
    fedreci_wire_hdr h = {me->id, 0, FEDRECI_WIRE_STAGE_CHECKIN};
    assert_int_equal(fedreci_wire_enc_checkin(&m, &h, me->pk, 0, 1), FEDREC_OK);
    nng_msg_chop(m, 3);
    expect_error(raw_req(&r, m), FEDREC_ERR_FORMAT);
    /* a stage message before checking in */
    fedreci_secagg_advert fake;
    memset(&fake, 1, sizeof fake);
    h.stage = FEDRECI_WIRE_STAGE_ADVERTISE;
    h.round_id = 1;
    assert_int_equal(fedreci_wire_enc_advertise(&m, &h, &fake), FEDREC_OK);
    expect_error(raw_req(&r, m), FEDREC_ERR_NOT_FOUND);

    /* check in twice (the second replaces the first) while the sessions join */
    h.stage = FEDRECI_WIRE_STAGE_CHECKIN;
    h.round_id = 0;
    assert_int_equal(fedreci_wire_enc_checkin(&m, &h, me->pk, 1, 1), FEDREC_OK);
    raw_send(&r, 1, m);
    uint64_t seen = 0;
    wait_handled(c, me->id, &seen);
    assert_int_equal(fedreci_wire_enc_checkin(&m, &h, me->pk, 1, 1), FEDREC_OK);
    raw_send(&r, 0, m);
    fedreci_session *s[4];
    for (int i = 0; i < 4; i++) {
        W.cl[i].model_version = 1;
        s[i] = session_new(url, &W.cl[i], 1, -1);
    }
    fedreci_wire_env *e = raw_wait(&r, 0);
    raw_abandon(&r, 1); /* the superseded request is not answered */
    fedreci_wire_round rd;
    assert_int_equal(fedreci_wire_get_round(e, &rd), FEDREC_OK);
    fedreci_wire_free(e);
    assert_int_equal(rd.secagg.n, 5); /* counted once: five distinct clients */
    uint64_t rid = rd.secagg.round_id;

    /* wrong round, wrong stage: refused, nothing changes */
    fedreci_secagg_client *sa;
    uint8_t seed[32] = {4};
    assert_int_equal(fedreci_secagg_client_create(&sa, &rd.secagg, me->id, me->sk, seed),
                     FEDREC_OK);
    fedreci_secagg_advert adv;
    assert_int_equal(fedreci_secagg_client_advertise(sa, &adv), FEDREC_OK);
    assert_int_equal(fedreci_secagg_client_mac_key(sa, rd.coord_pk, g_raw_mac), FEDREC_OK);
    g_has_mac = 1;
    fedreci_wire_hdr hs = {me->id, rid + 7, FEDRECI_WIRE_STAGE_ADVERTISE};
    assert_int_equal(fedreci_wire_enc_advertise(&m, &hs, &adv), FEDREC_OK);
    expect_error(raw_req(&r, m), FEDREC_ERR_ROUND);
    uint32_t zeros[D] = {0};
    hs.round_id = rid;
    hs.stage = FEDRECI_WIRE_STAGE_MASKED_INPUT;
    assert_int_equal(fedreci_wire_enc_masked(&m, &hs, zeros, D), FEDREC_OK);
    expect_error(raw_req(&r, m), FEDREC_ERR_STAGE);

    /* advertise twice concurrently: counted once, the newer request answered */
    hs.stage = FEDRECI_WIRE_STAGE_ADVERTISE;
    assert_int_equal(fedreci_wire_enc_advertise(&m, &hs, &adv), FEDREC_OK);
    {
        uint64_t upd;
        assert_int_equal(fedreci_coord_client_bytes(c, me->id, &upd, &seen), FEDREC_OK);
    }
    raw_send(&r, 1, m);
    wait_handled(c, me->id, &seen);
    assert_int_equal(fedreci_wire_enc_advertise(&m, &hs, &adv), FEDREC_OK);
    raw_send(&r, 0, m);
    e = raw_wait(&r, 0);
    raw_abandon(&r, 1);
    fedreci_secagg_advert *ro;
    size_t nro;
    assert_int_equal(fedreci_wire_get_roster(e, me->id, 2, 5, &ro, &nro), FEDREC_OK);
    assert_int_equal(nro, 5);
    fedreci_wire_free(e);
    /* a replay after the stage closed gets the same roster again */
    assert_int_equal(fedreci_wire_enc_advertise(&m, &hs, &adv), FEDREC_OK);
    e = raw_req(&r, m);
    assert_int_equal(e->body_case, FEDREC__V1__ENVELOPE__BODY_ROSTER);
    assert_int_equal(e->roster->n_member_ids, 5);
    fedreci_wire_free(e);

    const fedreci_secagg_ciphertext *cts;
    size_t ncts;
    assert_int_equal(fedreci_secagg_client_share_keys(sa, ro, nro, &cts, &ncts), FEDREC_OK);
    free(ro);
    hs.stage = FEDRECI_WIRE_STAGE_SHARE_KEYS;
    assert_int_equal(fedreci_wire_enc_ciphertexts(&m, &hs, 0, cts, ncts), FEDREC_OK);
    e = raw_req(&r, m);
    fedreci_secagg_ciphertext *in;
    size_t nin;
    assert_int_equal(fedreci_wire_get_ciphertexts(e, 5, &in, &nin), FEDREC_OK);
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
    /* a masked input of the wrong length is refused, the right one accepted */
    hs.stage = FEDRECI_WIRE_STAGE_MASKED_INPUT;
    assert_int_equal(fedreci_wire_enc_masked(&m, &hs, masked, D - 1), FEDREC_OK);
    expect_error(raw_req(&r, m), FEDREC_ERR_FORMAT);
    assert_int_equal(fedreci_wire_enc_masked(&m, &hs, masked, D), FEDREC_OK);
    e = raw_req(&r, m);
    assert_int_equal(e->body_case, FEDREC__V1__ENVELOPE__BODY_UNMASK_REQUEST);
    fedreci_wire_free(e);
    /* replay the masked input: answered again, added once (checked by the oracle) */
    assert_int_equal(fedreci_wire_enc_masked(&m, &hs, masked, D), FEDREC_OK);
    e = raw_req(&r, m);
    const uint64_t *sv, *dr;
    size_t ns, nd;
    assert_int_equal(fedreci_wire_get_unmask_request(e, &sv, &ns, &dr, &nd), FEDREC_OK);
    assert_int_equal(ns, 5);
    assert_int_equal(nd, 0);
    const fedreci_secagg_reveal *rv;
    size_t nrv;
    assert_int_equal(fedreci_secagg_client_unmask(sa, sv, ns, dr, nd, &rv, &nrv), FEDREC_OK);
    fedreci_wire_free(e);
    hs.stage = FEDRECI_WIRE_STAGE_UNMASK;
    assert_int_equal(fedreci_wire_enc_unmask(&m, &hs, rv, nrv), FEDREC_OK);
    e = raw_req(&r, m);
    assert_int_equal(e->body_case, FEDREC__V1__ENVELOPE__BODY_ROUND_RESULT);
    assert_true(e->round_result->completed);
    assert_int_equal(e->round_result->model_version, 2);
    fedreci_wire_free(e);
    fedreci_secagg_client_destroy(sa);

    for (int i = 0; i < 4; i++) {
        fedreci_session_result res;
        assert_int_equal(fedreci_session_wait(s[i], -1, &res), FEDREC_OK);
        assert_int_equal(res.outcome, FEDRECI_SESSION_COMPLETED);
        fedreci_session_destroy(s[i]);
    }
    assert_int_equal(W.st[0].advertised, 5);
    assert_int_equal(W.st[0].survivors, 5);
    check_oracle(0);
    raw_close(&r);
    fedreci_coord_destroy(c);
}

static void test_opted_out(void **state)
{
    (void)state;
    const char *url = "inproc://fedrec-engine-optout";
    world_init(5, 1);
    fedreci_coord *c = coord_new(url, 4, 0, 0, 20000, 1);
    fedreci_session *s[5];
    for (int i = 0; i < 5; i++)
        s[i] = session_new(url, &W.cl[i], i != 2, -1);
    fedreci_session_result res[5];
    for (int i = 0; i < 5; i++) {
        assert_int_equal(fedreci_session_wait(s[i], -1, &res[i]), FEDREC_OK);
        fedreci_session_destroy(s[i]);
    }
    assert_int_equal(res[2].outcome, FEDRECI_SESSION_OPTED_OUT);
    assert_int_equal(res[2].update_bytes_sent, 0);
    assert_true(res[2].bytes_sent > 0);
    assert_int_equal(W.cl[2].got_model, 1); /* it may still download the model */
    assert_false(W.cl[2].has_q[0]);
    uint64_t upd, tot;
    assert_int_equal(fedreci_coord_client_bytes(c, W.cl[2].id, &upd, &tot), FEDREC_OK);
    assert_int_equal(upd, 0);
    assert_int_equal(tot, res[2].bytes_sent);
    for (int i = 0; i < 5; i++)
        if (i != 2)
            assert_int_equal(res[i].outcome, FEDRECI_SESSION_COMPLETED);
    assert_int_equal(W.st[0].cohort, 4);
    check_oracle(0);
    fedreci_coord_destroy(c);
}

static void test_min_cohort(void **state)
{
    (void)state;
    const char *url = "inproc://fedrec-engine-min";
    world_init(2, 1);
    fedreci_coord_config cfg;
    fedreci_coord_config_default(&cfg);
    const char *urls[1] = {url};
    cfg.listen_urls = urls;
    cfg.n_listen = 1;
    cfg.n_contexts = 16;
    cfg.cohort_size = 5;
    cfg.min_cohort = 3;
    cfg.checkin_window_ms = 200;
    cfg.opt.n_train = 5;
    fedreci_coord_model mdl = {1, N_ITEMS, K, y0, NULL, NULL, 0};
    fedreci_coord *c;
    assert_int_equal(fedreci_coord_create(&c, &cfg, NULL, &mdl), FEDREC_OK);
    assert_int_equal(fedreci_coord_start(c), FEDREC_OK);
    fedreci_session *s[2];
    for (int i = 0; i < 2; i++) {
        W.cl[i].model_version = 1;
        s[i] = session_new(url, &W.cl[i], 1, -1);
    }
    for (int i = 0; i < 2; i++) {
        fedreci_session_result res;
        assert_int_equal(fedreci_session_wait(s[i], -1, &res), FEDREC_OK);
        assert_int_equal(res.outcome, FEDRECI_SESSION_NOT_SELECTED);
        assert_true(res.retry_after_ms > 0);
        assert_int_equal(res.update_bytes_sent, 0);
        fedreci_session_destroy(s[i]);
    }
    fedreci_coord_status st;
    fedreci_coord_get_status(c, &st);
    assert_int_equal(st.rounds_completed + st.rounds_aborted, 0);
    assert_int_equal(st.clients_known, 2);
    fedreci_coord_destroy(c);

    /* configurations that cannot work are refused up front */
    cfg.min_cohort = 6;
    assert_int_equal(fedreci_coord_create(&c, &cfg, NULL, &mdl), FEDREC_ERR_INVALID);
    cfg.min_cohort = 2;
    cfg.cohort_size = 20; /* 20 held check-ins do not fit 16 contexts */
    assert_int_equal(fedreci_coord_create(&c, &cfg, NULL, &mdl), FEDREC_ERR_INVALID);
    cfg.cohort_size = 5;
    cfg.scale = 1e9; /* n * clip * scale over 2^31 */
    assert_int_not_equal(fedreci_coord_create(&c, &cfg, NULL, &mdl), FEDREC_OK);
}

static void test_stop_aborts_round(void **state)
{
    (void)state;
    const char *url = "inproc://fedrec-engine-stop";
    world_init(3, 1);
    fedreci_coord *c = coord_new(url, 3, 0, 0, 60000, 0);
    /* two of three advertise; the third never does, so the round hangs in stage 0 */
    int drops[3] = {-1, -1, 0};
    fedreci_session *s[3];
    for (int i = 0; i < 3; i++)
        s[i] = session_new(url, &W.cl[i], 1, drops[i]);
    fedreci_session_result res;
    assert_int_equal(fedreci_session_wait(s[2], -1, &res), FEDREC_OK);
    assert_int_equal(res.outcome, FEDRECI_SESSION_DROPPED);
    /* wait until both advertisements went out (signalled by on_upload) */
    pthread_mutex_lock(&W.mu);
    while (W.cl[0].upload_bytes == 0 || W.cl[1].upload_bytes == 0)
        pthread_cond_wait(&W.cv, &W.mu);
    pthread_mutex_unlock(&W.mu);
    fedreci_coord_stop(c);
    assert_int_equal(fedreci_coord_wait(c, -1), FEDREC_OK);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(fedreci_session_wait(s[i], -1, &res), FEDREC_OK);
        assert_int_equal(res.outcome, FEDRECI_SESSION_ABORTED);
    }
    for (int i = 0; i < 3; i++)
        fedreci_session_destroy(s[i]);
    assert_false(W.st[0].completed);
    assert_int_equal(W.st[0].abort_err, FEDREC_ERR_CLOSED);
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
        cmocka_unit_test(test_three_rounds_inproc),
        cmocka_unit_test(test_tcp_round),
        cmocka_unit_test(test_dropout_each_stage),
        cmocka_unit_test(test_dropout_declared),
        cmocka_unit_test(test_abort_below_threshold),
        cmocka_unit_test(test_hand_driven_duplicates),
        cmocka_unit_test(test_opted_out),
        cmocka_unit_test(test_min_cohort),
        cmocka_unit_test(test_stop_aborts_round),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
