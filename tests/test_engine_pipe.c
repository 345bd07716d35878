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
#include "harness_engine.h"

#define N_ITEMS 20
#define K 3
#define D (N_ITEMS * K + 1)
#define NC 5
#define DEADLINE_MS 600000u

static th_world W;
static th_model M;

static fedrec_err compute_update(void *arg, const fedreci_wire_round *rd, float *x,
                                 uint32_t *weight)
{
    th_client *c = arg;
    for (uint32_t i = 0; i < rd->secagg.d - 1; i++)
        x[i] = (float)((int)((c->id * 13 + i * 5) % 41) - 20) / 10.0f;
    *weight = 1;
    return FEDREC_OK;
}

static fedreci_coord *coord_new(const char *url, uint32_t cohort)
{
    fedreci_coord_config cfg;
    const char *urls[1];
    th_coord_config(&cfg, urls, url);
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
    fedreci_coord_hooks hooks = th_world_hooks(&W);
    fedreci_coord_model m = th_model_start(&M, 0);
    return th_coord_start(&cfg, &hooks, &m);
}

static void start_client(th_client *c, const char *url, int dropout_stage)
{
    fedreci_session_config sc;
    th_session_config(&sc, url, c);
    sc.timeout_ms = DEADLINE_MS;
    sc.dropout_stage = dropout_stage;
    c->has_q[0] = 0;
    c->sess = th_session_start(c, &sc);
}

static void world_init(void)
{
    th_model_init(&M, N_ITEMS, K, 7, 11, 0.01f, NULL);
    th_world_init(&W, &M, NC, 1, compute_update);
}

/* Destroys (closing its socket) the session of client `i` once it ended. */
static void destroy_when_done(int i)
{
    th_wait_done(&W.cl[i]);
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
        assert_int_equal(W.round[0].done, 1);
        assert_int_equal(W.round[0].st.completed, 1);
        assert_int_equal(W.round[0].st.cohort, 4);
        for (int s = 0; s < 4; s++)
            assert_int_equal(W.round[0].st.dropped[s], s == stage ? 1u : 0u);
        assert_int_equal(W.round[0].st.survivors, stage == 3 ? 4u : 3u);
        uint32_t oracle[D];
        memset(oracle, 0, sizeof oracle);
        for (int i = 0; i < 4; i++) {
            int survivor = i != 1 || stage == 3;
            assert_int_equal(W.cl[i].has_q[0], survivor);
            if (survivor)
                for (int j = 0; j < D; j++)
                    oracle[j] += W.cl[i].q[0][j];
            if (i != 1)
                assert_int_equal(W.cl[i].res.outcome, FEDRECI_SESSION_COMPLETED);
        }
        assert_memory_equal(oracle, W.round[0].sum, sizeof oracle);
        assert_int_equal(oracle[D - 1], W.round[0].st.survivors); /* the weights */
        th_check_oracle(&W, 0); /* the same, by the recorded survivor ids */
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
    assert_int_equal(W.round[0].st.completed, 1);
    assert_int_equal(W.round[0].st.cohort, 3);
    /* the cohort is clients 0..2 (ids are BLAKE2b of their keys, sorted) */
    for (int i = 0; i < 3; i++) {
        int found = 0;
        for (int j = 0; j < 3; j++)
            found += W.round[0].cohort[j] == W.cl[i].id;
        assert_int_equal(found, 1);
    }
    th_check_oracle(&W, 0);
    fedreci_coord_destroy(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vanish_at_each_stage),
        cmocka_unit_test(test_vanish_while_waiting),
    };
    return TH_RUN(tests);
}
