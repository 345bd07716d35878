/* End-to-end tests of the coordinator engine (coordinator/engine.h) and the
 * client session driver (client/session.h) over nng inproc:// and tcp://:
 * rounds of SecAgg+ whose unmasked sums must equal, exactly, the plain sum of
 * the survivors' quantized inputs (the oracle), dropouts at every stage,
 * aborts below the threshold, duplicate and out-of-order messages, opt-out,
 * and the minimum cohort. No timed assertions: deadlines only decide who
 * counts as dropped. The fixture (clients, hooks, oracle, raw client) is
 * tests/harness.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <nng/nng.h>
#include <pthread.h>
#include <sodium.h>

#include "client/session.h"
#include "coordinator/engine.h"
#include "core/log.h"
#include "harness_engine.h"
#include "proto/wire.h"

#define N_ITEMS 50
#define K 4
#define D (N_ITEMS * K + 1)
#define MAXC TH_MAXC

static th_world W;
static th_model M;

/* Deterministic update: values in [-2, 2], one beyond the clip of 16 for
 * the client at index 2 to exercise clipping. */
static fedrec_err compute_update(void *arg, const fedreci_wire_round *rd, float *x,
                                 uint32_t *weight)
{
    th_client *c = arg;
    for (uint32_t i = 0; i < rd->secagg.d - 1; i++)
        x[i] = (float)((int)((c->id * 31 + i * 7 + rd->secagg.round_id) % 201) - 100) / 50.0f;
    if (c == &W.cl[2])
        x[0] = 100.0f;
    *weight = 1;
    return FEDREC_OK;
}

static void world_init(int n, uint64_t first_round)
{
    th_model_init(&M, N_ITEMS, K, 37, 19, 0.01f, "C%03d");
    th_world_init(&W, &M, n, first_round, compute_update);
}

/* The masked inputs of the client at index 2 report its one clipped value,
 * the others none; every download and commit had the model's shape. */
static void check_clients(void)
{
    for (int i = 0; i < W.n; i++)
        for (int r = 0; r < TH_MAXR; r++)
            if (W.cl[i].masked_uploads[r]) {
                assert_int_equal(W.cl[i].clipped_min[r], i == 2);
                assert_int_equal(W.cl[i].clipped_max[r], i == 2);
            }
    th_check_world(&W);
}

/* backoff_after of the next coord_new (test_backoff_after_abort) */
static uint32_t g_backoff_after;

static fedreci_coord *coord_new(const char *url, uint32_t cohort, uint32_t neighbors,
                                uint32_t threshold, uint32_t stage_ms, uint32_t max_rounds)
{
    fedreci_coord_config cfg;
    const char *urls[1];
    th_coord_config(&cfg, urls, url);
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
    cfg.backoff_after = g_backoff_after;
    cfg.backoff_ms = 3600000;
    cfg.backoff_max_ms = 7200000;
    fedreci_coord_hooks hooks = th_world_hooks(&W);
    fedreci_coord_model m = th_model_start(&M, 1);
    return th_coord_start(&cfg, &hooks, &m);
}

static fedreci_session *session_new(const char *url, th_client *c, int opted_in, int dropout)
{
    fedreci_session_config cfg;
    th_session_config(&cfg, url, c);
    cfg.opted_in = opted_in;
    cfg.fetch_model = 1;
    cfg.timeout_ms = 60000;
    cfg.dropout_stage = dropout;
    uint8_t seed[32] = {(uint8_t)c->id};
    cfg.rounding_seed = seed;
    return th_session_start(c, &cfg);
}

/* Runs one round with sessions for clients [0, n) (dropouts[i] per client or
 * NULL) and returns the outcomes. */
static void run_round(const char *url, int n, const int *dropouts, fedreci_session_result *res)
{
    fedreci_session *s[MAXC];
    for (int i = 0; i < n; i++)
        s[i] = session_new(url, &W.cl[i], 1, dropouts ? dropouts[i] : -1);
    th_sessions_finish(s, n, res);
    for (int i = 0; i < n; i++)
        if (res[i].model_version)
            W.cl[i].model_version = res[i].model_version;
    check_clients();
}

/* The oracle (harness.h) for round index r. */
static void check_oracle(int r)
{
    th_check_oracle(&W, r);
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
        assert_true(W.round[r].done);
        assert_int_equal(W.round[r].st.cohort, 12);
        assert_int_equal(W.round[r].st.survivors, 12);
        assert_int_equal(W.round[r].st.params->k, 6);
        assert_int_equal(W.round[r].st.params->t, 4);
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
    float *y = malloc(sizeof M.y[0] * N_ITEMS * K);
    uint64_t v;
    assert_int_equal(fedreci_coord_get_model(c, y, N_ITEMS * K, &v), FEDREC_OK);
    assert_int_equal(v, 4);
    assert_memory_not_equal(y, M.y, sizeof M.y[0] * N_ITEMS * K);
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
    assert_int_equal(W.round[0].st.params->k, 5); /* classic SecAgg: complete graph */
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
    assert_true(W.round[0].done);
    const fedreci_round_stats *st = &W.round[0].st;
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
        found |= W.round[0].surv[i] == W.cl[9].id;
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
    const fedreci_round_stats *st = &W.round[0].st;
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
    assert_true(W.round[0].done);
    assert_false(W.round[0].st.completed);
    assert_int_equal(W.round[0].st.abort_err, FEDREC_ERR_ABORTED);
    assert_null(W.round[0].st.sum);
    assert_int_equal(W.round[0].st.model_version, 1);
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

/* With backoff_after 1, an aborted round holds the next one back (an hour
 * here): six fresh check-ins, a full quorum that would start a round at
 * once, are held and no round starts; stopping releases them with NO_ROUND. */
static void test_backoff_after_abort(void **state)
{
    (void)state;
    const char *url = "inproc://fedrec-engine-backoff";
    world_init(6, 1);
    g_backoff_after = 1;
    fedreci_coord *c = coord_new(url, 6, 0, 5, 1500, 0);
    g_backoff_after = 0;
    int drops[MAXC] = {-1, 2, -1, 2, -1, -1};
    fedreci_session_result res[MAXC];
    run_round(url, 6, drops, res);
    assert_false(W.round[0].st.completed);
    fedreci_coord_status cs;
    fedreci_coord_get_status(c, &cs);
    assert_int_equal(cs.abort_streak, 1);
    assert_true(cs.backoff_ms_left > 0 && cs.backoff_ms_left <= 3600000);
    uint64_t rid = cs.round_id;
    fedreci_session *s[6];
    for (int i = 0; i < 6; i++)
        s[i] = session_new(url, &W.cl[i], 1, -1);
    /* wait until all six are held (the quorum: without the backoff the
     * sixth check-in would start a round and empty the waiting list) */
    for (;;) {
        fedreci_coord_get_status(c, &cs);
        if (cs.clients_waiting == 6)
            break;
        struct timespec ms10 = {0, 10 * 1000000L};
        nanosleep(&ms10, NULL);
    }
    assert_int_equal(cs.round_id, rid);
    assert_int_equal(cs.stage, -1);
    assert_int_equal(cs.rounds_aborted, 1);
    assert_int_equal(cs.rounds_completed, 0);
    fedreci_coord_stop(c);
    for (int i = 0; i < 6; i++) {
        fedreci_session_result r;
        assert_int_equal(fedreci_session_wait(s[i], -1, &r), FEDREC_OK);
        assert_int_equal(r.outcome, FEDRECI_SESSION_NO_ROUND);
        fedreci_session_destroy(s[i]);
    }
    fedreci_coord_get_status(c, &cs);
    assert_int_equal(cs.rounds_aborted, 1);
    assert_int_equal(cs.rounds_completed, 0);
    fedreci_coord_destroy(c);
}

static void test_hand_driven_duplicates(void **state)
{
    (void)state;
    const char *url = "inproc://fedrec-engine-dup";
    world_init(5, 1);
    /* client index 4 is hand driven; 0..3 are sessions */
    fedreci_coord *c = coord_new(url, 5, 0, 0, 20000, 1);
    th_client *me = &W.cl[4];
    th_raw r;
    th_raw_open(&r, url, 60000);
    th_raw_keys(&r, me->sk, NULL);
    nng_msg *m;

    /* garbage and a truncated message are refused; the coordinator keeps serving */
    uint8_t junk[64];
    for (int i = 0; i < 64; i++)
        junk[i] = (uint8_t)(i * 13 + 5);
    assert_int_equal(nng_msg_alloc(&m, sizeof junk), 0);
    memcpy(nng_msg_body(m), junk, sizeof junk);
    th_expect_error(th_raw_req(&r, m), FEDREC_ERR_FORMAT);
    fedreci_wire_hdr h = {me->id, 0, FEDRECI_WIRE_STAGE_CHECKIN};
    assert_int_equal(fedreci_wire_enc_checkin(&m, &h, me->pk, 0, 1), FEDREC_OK);
    nng_msg_chop(m, 3);
    th_expect_error(th_raw_req(&r, m), FEDREC_ERR_FORMAT);
    /* a stage message before checking in */
    fedreci_secagg_advert fake;
    memset(&fake, 1, sizeof fake);
    h.stage = FEDRECI_WIRE_STAGE_ADVERTISE;
    h.round_id = 1;
    assert_int_equal(fedreci_wire_enc_advertise(&m, &h, &fake), FEDREC_OK);
    th_expect_error(th_raw_req(&r, m), FEDREC_ERR_NOT_FOUND);

    /* check in twice (the second replaces the first) while the sessions join */
    h.stage = FEDRECI_WIRE_STAGE_CHECKIN;
    h.round_id = 0;
    assert_int_equal(fedreci_wire_enc_checkin(&m, &h, me->pk, 1, 1), FEDREC_OK);
    th_raw_send(&r, 1, m);
    uint64_t seen = th_wait_client_bytes(c, me->id, 0, 0);
    assert_int_equal(fedreci_wire_enc_checkin(&m, &h, me->pk, 1, 1), FEDREC_OK);
    th_raw_send(&r, 0, m);
    fedreci_session *s[4];
    for (int i = 0; i < 4; i++) {
        W.cl[i].model_version = 1;
        s[i] = session_new(url, &W.cl[i], 1, -1);
    }
    fedreci_wire_env *e = th_raw_wait(&r, 0);
    th_raw_abandon(&r, 1); /* the superseded request is not answered */
    fedreci_wire_round rd;
    assert_int_equal(fedreci_wire_get_round(e, &rd), FEDREC_OK);
    fedreci_wire_free(e);
    assert_int_equal(rd.secagg.n, 5); /* counted once: five distinct clients */
    uint64_t rid = rd.secagg.round_id;

    /* wrong round, wrong stage: refused, nothing changes */
    th_hand hd;
    th_hand_init(&hd, me, &rd, 4);
    th_raw_keys(&r, me->sk, hd.mac);
    fedreci_wire_hdr hs = {me->id, rid + 7, FEDRECI_WIRE_STAGE_ADVERTISE};
    assert_int_equal(fedreci_wire_enc_advertise(&m, &hs, &hd.adv), FEDREC_OK);
    th_expect_error(th_raw_req(&r, m), FEDREC_ERR_ROUND);
    uint32_t zeros[D] = {0};
    hs.round_id = rid;
    hs.stage = FEDRECI_WIRE_STAGE_MASKED_INPUT;
    assert_int_equal(fedreci_wire_enc_masked(&m, &hs, zeros, D), FEDREC_OK);
    th_expect_error(th_raw_req(&r, m), FEDREC_ERR_STAGE);

    /* advertise twice concurrently: counted once, the newer request answered */
    {
        uint64_t upd;
        assert_int_equal(fedreci_coord_client_bytes(c, me->id, &upd, &seen), FEDREC_OK);
    }
    th_raw_send(&r, 1, th_hand_msg(&hd, FEDRECI_WIRE_STAGE_ADVERTISE));
    seen = th_wait_client_bytes(c, me->id, 0, seen);
    th_raw_send(&r, 0, th_hand_msg(&hd, FEDRECI_WIRE_STAGE_ADVERTISE));
    e = th_raw_wait(&r, 0);
    th_raw_abandon(&r, 1);
    th_hand_roster(&hd, e, 5);
    /* a replay after the stage closed gets the same roster again */
    e = th_raw_req(&r, th_hand_msg(&hd, FEDRECI_WIRE_STAGE_ADVERTISE));
    assert_int_equal(e->body_case, FEDREC__V1__ENVELOPE__BODY_ROSTER);
    assert_int_equal(e->roster->n_member_ids, 5);
    fedreci_wire_free(e);
    th_hand_seed(&hd, th_raw_req(&r, th_hand_msg(&hd, FEDRECI_WIRE_STAGE_SEED)));

    th_hand_relay(&hd, th_raw_req(&r, th_hand_msg(&hd, FEDRECI_WIRE_STAGE_SHARE_KEYS)), 4);
    th_hand_outcome(&hd, th_raw_req(&r, th_hand_msg(&hd, FEDRECI_WIRE_STAGE_COMPLAINT)));
    /* a masked input of the wrong length is refused, the right one accepted */
    hs.stage = FEDRECI_WIRE_STAGE_MASKED_INPUT;
    assert_int_equal(fedreci_wire_enc_masked(&m, &hs, hd.masked, D - 1), FEDREC_OK);
    th_expect_error(th_raw_req(&r, m), FEDREC_ERR_FORMAT);
    e = th_raw_req(&r, th_hand_msg(&hd, FEDRECI_WIRE_STAGE_MASKED_INPUT));
    assert_int_equal(e->body_case, FEDREC__V1__ENVELOPE__BODY_UNMASK_REQUEST);
    fedreci_wire_free(e);
    /* replay the masked input: answered again, added once (checked by the oracle) */
    th_hand_unmask(&hd, th_raw_req(&r, th_hand_msg(&hd, FEDRECI_WIRE_STAGE_MASKED_INPUT)), 5, 0);
    th_hand_tags(&hd, th_raw_req(&r, th_hand_msg(&hd, FEDRECI_WIRE_STAGE_CONSISTENCY)));
    e = th_raw_req(&r, th_hand_msg(&hd, FEDRECI_WIRE_STAGE_UNMASK));
    assert_int_equal(e->body_case, FEDREC__V1__ENVELOPE__BODY_ROUND_RESULT);
    assert_true(e->round_result->completed);
    assert_int_equal(e->round_result->model_version, 2);
    fedreci_wire_free(e);
    th_hand_destroy(&hd);

    fedreci_session_result res[4];
    th_sessions_finish(s, 4, res);
    for (int i = 0; i < 4; i++)
        assert_int_equal(res[i].outcome, FEDRECI_SESSION_COMPLETED);
    assert_int_equal(W.round[0].st.advertised, 5);
    assert_int_equal(W.round[0].st.survivors, 5);
    check_oracle(0);
    check_clients();
    th_raw_close(&r);
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
    assert_int_equal(W.round[0].st.cohort, 4);
    check_oracle(0);
    check_clients();
    fedreci_coord_destroy(c);
}

static void test_min_cohort(void **state)
{
    (void)state;
    const char *url = "inproc://fedrec-engine-min";
    world_init(2, 1);
    fedreci_coord_config cfg;
    const char *urls[1];
    th_coord_config(&cfg, urls, url);
    cfg.n_contexts = 16;
    cfg.cohort_size = 5;
    cfg.min_cohort = 3;
    cfg.checkin_window_ms = 200;
    cfg.opt.n_train = 5;
    fedreci_coord_model mdl = th_model_start(&M, 0);
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
    check_clients();
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

/* Whether client id is in round r's cohort. */
static int in_cohort(int r, uint64_t id)
{
    for (uint32_t j = 0; j < W.round[r].st.cohort; j++)
        if (W.round[r].cohort[j] == id)
            return 1;
    return 0;
}

/* Cohort selection by random reshuffling (cfg.reshuffle): 12 clients check in
 * every round, 5 are drawn. Rounds 1 and 2 draw 10 different clients; round 3
 * takes the 2 not drawn yet and 3 others, which start a new epoch; round 4
 * draws none of round 3's. (A uniform draw with this seed breaks the first
 * rule: checked below, as the control.) */
static void reshuffle_rounds(int reshuffle, int *overlap12, int *missed3, int *overlap34)
{
    const char *url = reshuffle ? "inproc://fedrec-engine-resh" : "inproc://fedrec-engine-unif";
    world_init(12, 1);
    fedreci_coord_config cfg;
    const char *urls[1];
    th_coord_config(&cfg, urls, url);
    cfg.n_contexts = 64;
    cfg.cohort_size = 5;
    cfg.min_cohort = 2;
    cfg.checkin_quorum = 12;
    cfg.checkin_window_ms = 60000;
    cfg.neighbors = 0;
    cfg.clip = 16;
    cfg.seed = 7;
    cfg.max_rounds = 4;
    cfg.opt.n_train = 12;
    cfg.reshuffle = reshuffle;
    for (int st = 0; st < 4; st++)
        cfg.stage_ms[st] = 20000;
    fedreci_coord_hooks hooks = th_world_hooks(&W);
    fedreci_coord_model m = th_model_start(&M, 1);
    fedreci_coord *c = th_coord_start(&cfg, &hooks, &m);
    for (int r = 0; r < 4; r++) {
        fedreci_session_result res[MAXC];
        run_round(url, 12, NULL, res);
        int completed = 0;
        for (int i = 0; i < 12; i++) {
            int sel = in_cohort(r, W.cl[i].id);
            assert_int_equal(res[i].outcome,
                             sel ? FEDRECI_SESSION_COMPLETED : FEDRECI_SESSION_NOT_SELECTED);
            completed += sel;
        }
        assert_int_equal(completed, 5);
        check_oracle(r);
    }
    *overlap12 = *missed3 = *overlap34 = 0;
    for (int i = 0; i < 12; i++) {
        uint64_t id = W.cl[i].id;
        *overlap12 += in_cohort(0, id) && in_cohort(1, id);
        *missed3 += !in_cohort(0, id) && !in_cohort(1, id) && !in_cohort(2, id);
        *overlap34 += in_cohort(2, id) && in_cohort(3, id);
    }
    fedreci_coord_destroy(c);
}

static void test_reshuffle_epochs(void **state)
{
    (void)state;
    int o12, m3, o34;
    reshuffle_rounds(1, &o12, &m3, &o34);
    assert_int_equal(o12, 0); /* rounds 1 and 2: ten different clients */
    assert_int_equal(m3, 0);  /* round 3 took the two left of the epoch */
    assert_int_equal(o34, 0); /* round 4: none of the new epoch's first cohort */
    reshuffle_rounds(0, &o12, &m3, &o34);
    assert_true(o12 + m3 + o34 > 0); /* the control: uniform draws repeat clients */

    /* not with differential privacy (the accountant assumes independent draws) */
    fedreci_coord_config cfg;
    const char *urls[1];
    th_coord_config(&cfg, urls, "inproc://fedrec-engine-resh-dp");
    cfg.cohort_size = 5;
    cfg.opt.n_train = 12;
    cfg.reshuffle = 1;
    cfg.dp.epsilon = 1;
    cfg.dp.delta = 1e-5;
    fedreci_coord_model m = th_model_start(&M, 1);
    fedreci_coord *c = NULL;
    assert_int_equal(fedreci_coord_create(&c, &cfg, NULL, &m), FEDREC_ERR_INVALID);
    assert_non_null(strstr(fedrec_errmsg(), "reshuffl"));
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
    assert_false(W.round[0].st.completed);
    assert_int_equal(W.round[0].st.abort_err, FEDREC_ERR_CLOSED);
    check_clients();
    fedreci_coord_destroy(c);
}

/* fedreci_coord_set_model's contract: refused without a hold (BUSY), refused
 * for another k, fewer rows or a version not above the current one
 * (INVALID, the model unchanged); a grown model with a higher version is
 * served (get_model returns it) and the hold is released. */
static void test_set_model(void **state)
{
    (void)state;
    th_model small, grown;
    th_model_init(&small, 6, 2, 7, 11, 0.01f, "C%03d");
    th_model_init(&grown, 9, 2, 7, 11, 0.02f, "C%03d");
    fedreci_coord_config cfg;
    const char *url = NULL;
    th_coord_config(&cfg, &url, "inproc://set-model");
    cfg.cohort_size = 2;
    cfg.min_cohort = 2;
    fedreci_coord_model m0 = th_model_start(&small, 1);
    fedreci_coord *c = th_coord_start(&cfg, NULL, &m0);
    fedreci_coord_model m = th_model_start(&grown, 1);
    m.version = 2;
    assert_int_equal(fedreci_coord_set_model(c, &m), FEDREC_ERR_BUSY); /* not held */
    assert_int_equal(fedreci_coord_hold(c, 0), FEDREC_OK);             /* no round open */
    fedreci_coord_model bad = m;
    bad.k = 3;
    assert_int_equal(fedreci_coord_set_model(c, &bad), FEDREC_ERR_INVALID);
    bad = m0;
    bad.version = 2;
    bad.n_items = 5; /* fewer rows than served */
    assert_int_equal(fedreci_coord_set_model(c, &bad), FEDREC_ERR_INVALID);
    bad = m;
    bad.version = 1; /* not above the current version */
    assert_int_equal(fedreci_coord_set_model(c, &bad), FEDREC_ERR_INVALID);
    uint32_t retired[2] = {4, 3}; /* not ascending */
    bad = m;
    bad.retired_rows = retired;
    bad.n_retired = 2;
    assert_int_equal(fedreci_coord_set_model(c, &bad), FEDREC_ERR_INVALID);
    float y[32];
    uint64_t v = 0;
    assert_int_equal(fedreci_coord_get_model(c, y, 32, &v), FEDREC_OK);
    assert_int_equal(v, 1);
    assert_memory_equal(y, small.y, 12 * sizeof *y);
    assert_int_equal(fedreci_coord_set_model(c, &m), FEDREC_OK);
    assert_int_equal(fedreci_coord_get_model(c, y, 32, &v), FEDREC_OK);
    assert_int_equal(v, 2);
    assert_memory_equal(y, grown.y, 18 * sizeof *y);
    fedreci_coord_release(c);
    fedreci_coord_status st;
    fedreci_coord_get_status(c, &st);
    assert_int_equal(st.model_version, 2);
    fedreci_coord_destroy(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_three_rounds_inproc),
        cmocka_unit_test(test_tcp_round),
        cmocka_unit_test(test_dropout_each_stage),
        cmocka_unit_test(test_dropout_declared),
        cmocka_unit_test(test_abort_below_threshold),
        cmocka_unit_test(test_backoff_after_abort),
        cmocka_unit_test(test_hand_driven_duplicates),
        cmocka_unit_test(test_opted_out),
        cmocka_unit_test(test_min_cohort),
        cmocka_unit_test(test_reshuffle_epochs),
        cmocka_unit_test(test_stop_aborts_round),
        cmocka_unit_test(test_set_model),
    };
    return TH_RUN(tests);
}
