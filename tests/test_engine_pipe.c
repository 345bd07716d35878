/* The coordinator engine counts a client whose connection closed as dropped
 * at once (coordinator/transport.c, pipe_removed): a SecAgg+ round in which one
 * client vanishes at each stage in turn must finish long before the stage
 * deadlines (10 minutes here; the wait gives up after 2), with the right
 * dropout counts and an unmasked sum equal to the survivors' quantized
 * inputs; and a client that checked in and vanished before the cohort was
 * drawn is not drawn. */
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
#include <pthread.h>
#include <sodium.h>

#include "client/session.h"
#include "coordinator/engine.h"
#include "core/log.h"

#define N_ITEMS 20
#define K 3
#define D (N_ITEMS * K + 1)
#define NC 5
#define DEADLINE_MS 600000u

typedef struct pclient {
    uint64_t id;
    uint8_t pk[32], sk[64];
    uint32_t q[D];
    int has_q;
    int done;
    fedreci_session_result res;
    fedreci_session *sess;
} pclient;

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pclient cl[NC];
    int ended;
    fedreci_round_stats st;
    uint32_t sum[D];
    uint64_t cohort[NC];
} W;

static void on_round_done(void *arg, const fedreci_round_stats *st)
{
    (void)arg;
    pthread_mutex_lock(&W.mu);
    W.st = *st;
    if (st->sum)
        memcpy(W.sum, st->sum, sizeof W.sum);
    for (uint32_t i = 0; i < st->cohort && i < NC; i++)
        W.cohort[i] = st->cohort_ids[i];
    W.ended = 1;
    pthread_cond_broadcast(&W.cv);
    pthread_mutex_unlock(&W.mu);
}

static fedrec_err compute_update(void *arg, const fedreci_wire_round *rd, float *x,
                                 uint32_t *weight)
{
    pclient *c = arg;
    for (uint32_t i = 0; i < rd->secagg.d - 1; i++)
        x[i] = (float)((int)((c->id * 13 + i * 5) % 41) - 20) / 10.0f;
    *weight = 1;
    return FEDREC_OK;
}

static void on_quantized(void *arg, uint64_t round_id, const uint32_t *q, uint32_t d)
{
    pclient *c = arg;
    (void)round_id;
    assert_int_equal(d, D);
    pthread_mutex_lock(&W.mu);
    memcpy(c->q, q, sizeof c->q);
    c->has_q = 1;
    pthread_mutex_unlock(&W.mu);
}

static void on_done(void *arg, const fedreci_session_result *r)
{
    pclient *c = arg;
    pthread_mutex_lock(&W.mu);
    c->res = *r;
    c->done = 1;
    pthread_cond_broadcast(&W.cv);
    pthread_mutex_unlock(&W.mu);
}

static fedreci_coord *coord_new(const char *url, uint32_t cohort)
{
    static float y0[N_ITEMS * K];
    for (int i = 0; i < N_ITEMS * K; i++)
        y0[i] = (float)((i * 7) % 11 - 5) * 0.01f;
    fedreci_coord_config cfg;
    fedreci_coord_config_default(&cfg);
    const char *urls[1] = {url};
    cfg.listen_urls = urls;
    cfg.n_listen = 1;
    cfg.n_contexts = 32;
    cfg.cohort_size = cohort;
    cfg.min_cohort = 2;
    cfg.neighbors = 0; /* complete graph: k = n - 1 = 3, t = 2 */
    cfg.checkin_window_ms = DEADLINE_MS;
    for (int s = 0; s < 4; s++)
        cfg.stage_ms[s] = DEADLINE_MS;
    cfg.seed = 5;
    cfg.max_rounds = 1;
    cfg.opt.n_train = 4;
    fedreci_coord_hooks hooks = {NULL, on_round_done, NULL, NULL, NULL};
    fedreci_coord_model m = {1, N_ITEMS, K, y0, NULL, NULL, 0};
    fedreci_coord *c = NULL;
    if (fedreci_coord_create(&c, &cfg, &hooks, &m) || fedreci_coord_start(c))
        fail_msg("coordinator: %s", fedrec_errmsg());
    return c;
}

static void start_client(pclient *c, const char *url, int dropout_stage)
{
    fedreci_session_config sc;
    fedreci_session_config_default(&sc);
    sc.url = url;
    sc.client_id = c->id;
    sc.identity_sk = c->sk;
    sc.timeout_ms = DEADLINE_MS;
    sc.dropout_stage = dropout_stage;
    fedreci_session_hooks h = {c, NULL, compute_update, NULL, on_quantized, on_done};
    c->done = 0;
    c->has_q = 0;
    assert_int_equal(fedreci_session_create(&c->sess, &sc, &h), FEDREC_OK);
    assert_int_equal(fedreci_session_start(c->sess), FEDREC_OK);
}

static void world_init(void)
{
    memset(&W, 0, sizeof W);
    pthread_mutex_init(&W.mu, NULL);
    pthread_cond_init(&W.cv, NULL);
    for (int i = 0; i < NC; i++) {
        crypto_sign_keypair(W.cl[i].pk, W.cl[i].sk);
        W.cl[i].id = fedreci_secagg_id_from_pk(W.cl[i].pk);
    }
}

/* Destroys (closing its socket) the session of client `i` once it ended. */
static void destroy_when_done(int i)
{
    pthread_mutex_lock(&W.mu);
    while (!W.cl[i].done)
        pthread_cond_wait(&W.cv, &W.mu);
    pthread_mutex_unlock(&W.mu);
    fedreci_session_destroy(W.cl[i].sess);
    W.cl[i].sess = NULL;
}

static void test_vanish_at_each_stage(void **state)
{
    (void)state;
    for (int stage = 0; stage < 4; stage++) {
        char url[64];
        snprintf(url, sizeof url, "inproc://engine-pipe-%d", stage);
        world_init();
        fedreci_coord *c = coord_new(url, 4);
        for (int i = 0; i < 4; i++)
            start_client(&W.cl[i], url, i == 1 ? stage : -1);
        destroy_when_done(1); /* vanishes: its socket closes now */
        assert_int_equal(W.cl[1].res.outcome, FEDRECI_SESSION_DROPPED);
        /* with the stage deadlines at 10 minutes, only the pipe notification
           can end this round within the wait */
        assert_int_equal(fedreci_coord_wait(c, 120000), FEDREC_OK);
        for (int i = 0; i < 4; i++)
            if (i != 1)
                destroy_when_done(i);
        assert_int_equal(W.ended, 1);
        assert_int_equal(W.st.completed, 1);
        assert_int_equal(W.st.cohort, 4);
        for (int s = 0; s < 4; s++)
            assert_int_equal(W.st.dropped[s], s == stage ? 1u : 0u);
        assert_int_equal(W.st.survivors, stage == 3 ? 4u : 3u);
        uint32_t oracle[D];
        memset(oracle, 0, sizeof oracle);
        for (int i = 0; i < 4; i++) {
            int survivor = i != 1 || stage == 3;
            assert_int_equal(W.cl[i].has_q, survivor);
            if (survivor)
                for (int j = 0; j < D; j++)
                    oracle[j] += W.cl[i].q[j];
            if (i != 1)
                assert_int_equal(W.cl[i].res.outcome, FEDRECI_SESSION_COMPLETED);
        }
        assert_memory_equal(oracle, W.sum, sizeof oracle);
        assert_int_equal(oracle[D - 1], W.st.survivors); /* the weights */
        fedreci_coord_destroy(c);
    }
}

static void test_vanish_while_waiting(void **state)
{
    (void)state;
    const char *url = "inproc://engine-pipe-wait";
    world_init();
    fedreci_coord *c = coord_new(url, 3);
    /* client 5 checks in, is held for the cohort draw, and vanishes */
    start_client(&W.cl[4], url, -1);
    fedreci_coord_status st;
    int polls = 0;
    do {
        usleep(1000);
        fedreci_coord_get_status(c, &st);
    } while (st.clients_waiting < 1 && ++polls < 120000);
    assert_int_equal(st.clients_waiting, 1);
    fedreci_session_destroy(W.cl[4].sess);
    W.cl[4].sess = NULL;
    polls = 0;
    do {
        usleep(1000);
        fedreci_coord_get_status(c, &st);
    } while (st.clients_waiting > 0 && ++polls < 120000);
    assert_int_equal(st.clients_waiting, 0); /* released when its connection closed */
    for (int i = 0; i < 3; i++)
        start_client(&W.cl[i], url, -1);
    assert_int_equal(fedreci_coord_wait(c, 120000), FEDREC_OK);
    for (int i = 0; i < 3; i++)
        destroy_when_done(i);
    assert_int_equal(W.st.completed, 1);
    assert_int_equal(W.st.cohort, 3);
    /* the cohort is clients 0..2 (ids are BLAKE2b of their keys, sorted) */
    for (int i = 0; i < 3; i++) {
        int found = 0;
        for (int j = 0; j < 3; j++)
            found += W.cohort[j] == W.cl[i].id;
        assert_int_equal(found, 1);
    }
    fedreci_coord_destroy(c);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    fedreci_log_set_level(FEDRECI_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vanish_at_each_stage),
        cmocka_unit_test(test_vanish_while_waiting),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
