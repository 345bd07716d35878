/* The client session's own clock (client/session.h; issue 20's hang of a
 * member whose aggregator was killed): a fake coordinator over nng that
 * stops answering.
 *
 *  - test_round_budget: the budget is (9 + 1) stage deadlines + 5 s and
 *    saturates.
 *  - test_hung_receive: the fake selects the client for a round with 100 ms
 *    stages and never answers the model request; the session's nng timeout
 *    is 60 s. The session ends by its own clock once the round's budget
 *    (6 s) has passed, long before nng's timeout, with FEDREC_ERR_TIMEOUT
 *    and a text naming the round, the budget and the unanswered request.
 *  - test_nng_timeout_first: a check-in never answered, timeout 1.5 s: nng's
 *    timeout ends it as before (the clock only backs it up).
 *  - test_hook_overruns: the fake answers the model, and the on_model hook
 *    blocks past the round's budget: the cancel finds nothing to cancel, so
 *    the clock publishes the result itself (fedreci_session_wait returns
 *    while the hook still runs); once the hook returns the session sends
 *    nothing more and on_done gets the same result, once.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <sodium.h>

#include "client/session.h"
#include "core/err.h"
#include "core/log.h"
#include "core/secagg/secagg.h"
#include "proto/wire.h"

enum { N_ITEMS = 2, K = 3 };

typedef struct fake {
    nng_socket sock;
    fedreci_wire_round round;
    int answer_checkin; /* 0: keep the check-in unanswered */
    int answer_model;   /* 0: keep the model request unanswered */
    int n_recv;         /* requests received */
    int n_after_model;  /* requests received after the model request */
    pthread_mutex_t mu;
} fake;

static void *serve(void *arg)
{
    fake *f = arg;
    for (;;) {
        nng_msg *m = NULL;
        if (nng_recvmsg(f->sock, &m, 0) != 0)
            return NULL;
        fedreci_wire_env *e = NULL;
        if (fedreci_wire_decode_msg(m, 1u << 20, &e) != FEDREC_OK) {
            nng_msg_free(m);
            continue;
        }
        nng_msg_free(m);
        pthread_mutex_lock(&f->mu);
        int n = ++f->n_recv;
        if (n > 2)
            f->n_after_model++;
        pthread_mutex_unlock(&f->mu);
        fedreci_wire_hdr h = {e->client_id, f->round.secagg.round_id, FEDRECI_WIRE_STAGE_CHECKIN};
        nng_msg *r = NULL;
        if (n == 1 && f->answer_checkin) {
            if (fedreci_wire_enc_checkin_reply(&r, &h, FEDREC__V1__CHECK_IN_REPLY__STATUS__SELECTED,
                                               &f->round, f->round.model_version, 0))
                r = NULL;
        } else if (n == 2 && f->answer_model) {
            static float y[N_ITEMS * K] = {0.5f, -0.25f, 1, 2, 3, 4};
            uint8_t sum[FEDRECI_WIRE_CHECKSUM_BYTES];
            fedreci_wire_checksum(y, sizeof y, sum);
            fedreci_wire_model md;
            memset(&md, 0, sizeof md);
            md.version = f->round.model_version;
            md.n_items = N_ITEMS;
            md.k = K;
            md.item_factors = y;
            md.checksum = sum;
            h.stage = FEDRECI_WIRE_STAGE_MODEL;
            if (fedreci_wire_enc_model_reply(&r, &h, &md, md.version))
                r = NULL;
        }
        fedreci_wire_free(e);
        /* a request left unanswered: the REP socket takes no other until
           it is answered, which is the point */
        if (r && nng_sendmsg(f->sock, r, 0) != 0)
            nng_msg_free(r);
    }
}

static fedreci_wire_round round_of(uint32_t stage_ms)
{
    fedreci_wire_round w;
    memset(&w, 0, sizeof w);
    w.secagg.round_id = 9;
    w.secagg.n = 3;
    w.secagg.k = 2;
    w.secagg.t = 2;
    w.secagg.d = N_ITEMS * K + 1;
    w.secagg.clip = 16;
    w.secagg.scale = 1024;
    w.secagg.max_weight = 1;
    memset(w.secagg.graph_seed, 0x11, sizeof w.secagg.graph_seed);
    w.model_version = 1;
    w.n_items = N_ITEMS;
    w.k_factors = K;
    w.stage_timeout_ms = stage_ms;
    randombytes_buf(w.coord_pk, sizeof w.coord_pk);
    return w;
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* hooks */
static pthread_mutex_t hmu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hcv = PTHREAD_COND_INITIALIZER;
static int block_model, in_model, release_model, n_done;
static char done_text[256];

static void on_model(void *arg, const fedreci_wire_model *m)
{
    (void)arg;
    (void)m;
    pthread_mutex_lock(&hmu);
    if (block_model) {
        in_model = 1;
        pthread_cond_broadcast(&hcv);
        while (!release_model)
            pthread_cond_wait(&hcv, &hmu);
    }
    pthread_mutex_unlock(&hmu);
}

static void on_done(void *arg, const fedreci_session_result *r)
{
    (void)arg;
    pthread_mutex_lock(&hmu);
    n_done++;
    snprintf(done_text, sizeof done_text, "%s", r->text);
    pthread_mutex_unlock(&hmu);
}

static fedrec_err zero_update(void *arg, const fedreci_wire_round *rd, float *x, uint32_t *w)
{
    (void)arg;
    memset(x, 0, (size_t)(rd->secagg.d - 1) * sizeof *x);
    *w = 1;
    return FEDREC_OK;
}

typedef struct run {
    fake f;
    pthread_t thr;
    fedreci_session *s;
    uint8_t sk[64];
} run;

/* Starts the fake on a fresh inproc URL and a session against it. */
static void run_start(run *x, const char *url, uint32_t timeout_ms)
{
    pthread_mutex_init(&x->f.mu, NULL);
    assert_int_equal(nng_rep0_open(&x->f.sock), 0);
    assert_int_equal(nng_listen(x->f.sock, url, NULL, 0), 0);
    assert_int_equal(pthread_create(&x->thr, NULL, serve, &x->f), 0);
    uint8_t pk[32];
    crypto_sign_keypair(pk, x->sk);
    fedreci_session_config sc;
    fedreci_session_config_default(&sc);
    sc.url = url;
    sc.client_id = fedreci_secagg_id_from_pk(pk);
    sc.identity_sk = x->sk;
    sc.timeout_ms = timeout_ms;
    fedreci_session_hooks h = {
        .compute_update = zero_update, .on_model = on_model, .on_done = on_done};
    assert_int_equal(fedreci_session_create(&x->s, &sc, &h), FEDREC_OK);
    if (fedreci_session_start(x->s) != FEDREC_OK)
        fail_msg("start: %s", fedrec_errmsg());
}

static void run_end(run *x)
{
    fedreci_session_destroy(x->s);
    nng_close(x->f.sock);
    pthread_join(x->thr, NULL);
    pthread_mutex_destroy(&x->f.mu);
}

static void test_round_budget(void **state)
{
    (void)state;
    assert_int_equal(fedreci_session_round_budget_ms(100), 10 * 100 + 5000);
    assert_int_equal(fedreci_session_round_budget_ms(20000), 10 * 20000 + 5000);
    assert_int_equal(fedreci_session_round_budget_ms(UINT32_MAX), UINT32_MAX);
}

static void test_hung_receive(void **state)
{
    (void)state;
    static run x;
    memset(&x, 0, sizeof x);
    x.f.round = round_of(100);
    x.f.answer_checkin = 1;
    uint64_t t0 = mono_ms();
    run_start(&x, "inproc://clock-hung", 60000);
    fedreci_session_result r;
    /* no bound: the session's clock must end it */
    assert_int_equal(fedreci_session_wait(x.s, -1, &r), FEDREC_OK);
    uint64_t took = mono_ms() - t0;
    assert_int_equal(r.outcome, FEDRECI_SESSION_ERROR);
    assert_int_equal(r.err, FEDREC_ERR_TIMEOUT);
    assert_int_equal(r.round_id, 9);
    assert_non_null(strstr(r.text, "round 9: no result within 6000 ms of selection"));
    assert_non_null(strstr(r.text, "session's own clock"));
    assert_non_null(strstr(r.text, "model request was not answered"));
    /* not before the round's budget, and by the session's clock, not by
       nng's 60 s timeout */
    assert_true(took >= 6000);
    assert_true(took < 60000);
    pthread_mutex_lock(&x.f.mu);
    assert_int_equal(x.f.n_recv, 2); /* the check-in, the model request */
    pthread_mutex_unlock(&x.f.mu);
    pthread_mutex_lock(&hmu);
    assert_int_equal(n_done, 1); /* finished through the state machine: on_done ran */
    n_done = 0;
    pthread_mutex_unlock(&hmu);
    run_end(&x);
}

static void test_nng_timeout_first(void **state)
{
    (void)state;
    static run x;
    memset(&x, 0, sizeof x);
    x.f.round = round_of(100);
    run_start(&x, "inproc://clock-checkin", 1500);
    fedreci_session_result r;
    assert_int_equal(fedreci_session_wait(x.s, -1, &r), FEDREC_OK);
    assert_int_equal(r.outcome, FEDRECI_SESSION_ERROR);
    assert_int_equal(r.err, FEDREC_ERR_TIMEOUT);
    assert_non_null(strstr(r.text, "waiting for the reply to the check-in"));
    assert_null(strstr(r.text, "own clock"));
    pthread_mutex_lock(&hmu);
    n_done = 0;
    pthread_mutex_unlock(&hmu);
    run_end(&x);
}

static void test_hook_overruns(void **state)
{
    (void)state;
    static run x;
    memset(&x, 0, sizeof x);
    x.f.round = round_of(100);
    x.f.answer_checkin = 1;
    x.f.answer_model = 1;
    pthread_mutex_lock(&hmu);
    block_model = 1;
    in_model = release_model = n_done = 0;
    pthread_mutex_unlock(&hmu);
    run_start(&x, "inproc://clock-hook", 60000);
    fedreci_session_result r;
    assert_int_equal(fedreci_session_wait(x.s, -1, &r), FEDREC_OK);
    assert_int_equal(r.outcome, FEDRECI_SESSION_ERROR);
    assert_int_equal(r.err, FEDREC_ERR_TIMEOUT);
    assert_non_null(strstr(r.text, "round 9: no result within 6000 ms of selection"));
    assert_non_null(strstr(r.text, "not handed back after the cancel"));
    pthread_mutex_lock(&hmu);
    assert_int_equal(in_model, 1); /* the hook is still running */
    release_model = 1;
    pthread_cond_broadcast(&hcv);
    pthread_mutex_unlock(&hmu);
    run_end(&x); /* waits for the callback: it sends nothing more */
    pthread_mutex_lock(&hmu);
    assert_int_equal(n_done, 1);
    assert_string_equal(done_text, r.text);
    block_model = 0;
    pthread_mutex_unlock(&hmu);
    assert_int_equal(x.f.n_after_model, 0);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    fedreci_log_set_level(FEDRECI_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_budget),
        cmocka_unit_test(test_hung_receive),
        cmocka_unit_test(test_nng_timeout_first),
        cmocka_unit_test(test_hook_overruns),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
