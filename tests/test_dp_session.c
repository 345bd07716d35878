/*
 * A coordinator that lies about differential privacy, against the client
 * library's own session driver (client/session.h) over nng inproc://: a
 * scripted coordinator answers the check-in with a SELECTED round whose
 * DpParams (core/dp/round.h)
 *  - claim half the epsilon the noise supports (noise too small for the
 *    claimed epsilon),
 *  - or keep honest noise but give SecAgg a clip below the largest noised
 *    word (which would cut the noise),
 *  - or ask for more survivors than the cohort has.
 * Each time the session must end with FEDRECI_SESSION_ERROR, dp_refused = 1
 * and a reason, having sent no SecAgg message at all (update_bytes_sent 0,
 * no on_upload call, the coordinator receives nothing after the check-in).
 * Control: the same round with honest parameters is accepted (the session
 * goes on to its next request).
 */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <sodium.h>

#include "client/session.h"
#include "core/dp/round.h"
#include "core/err.h"
#include "core/secagg/secagg.h"
#include "proto/wire.h"

enum { N_ITEMS = 20, K = 2, COHORT = 10 };

typedef struct fake {
    nng_socket sock;
    fedreci_wire_round round;
    int n_recv;      /* requests received */
    int second_body; /* body case of the request after the check-in (0: none) */
} fake;

/* Answers the check-in with the round; any later request gets an Error
 * (ending the session) after its body case is noted. */
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
        f->n_recv++;
        fedreci_wire_hdr h = {e->client_id, f->round.secagg.round_id, FEDRECI_WIRE_STAGE_CHECKIN};
        nng_msg *r = NULL;
        if (f->n_recv == 1) {
            if (fedreci_wire_enc_checkin_reply(&r, &h, FEDREC__V1__CHECK_IN_REPLY__STATUS__SELECTED,
                                               &f->round, f->round.model_version, 0))
                r = NULL;
        } else {
            f->second_body = (int)e->body_case;
            if (fedreci_wire_enc_error(&r, &h, FEDREC_ERR_ABORTED, "test: stop here"))
                r = NULL;
        }
        fedreci_wire_free(e);
        if (r && nng_sendmsg(f->sock, r, 0) != 0)
            nng_msg_free(r);
    }
}

static fedrec_err no_update(void *arg, const fedreci_wire_round *round, float *x, uint32_t *w)
{
    (void)arg;
    (void)round;
    (void)x;
    (void)w;
    return fedreci_error(FEDREC_ERR_INTERNAL, "test: compute_update must not run");
}

static int uploads;
static void on_upload(void *arg, uint64_t round_id, int stage, size_t bytes, const char *what,
                      uint32_t clipped)
{
    (void)arg;
    (void)round_id;
    (void)stage;
    (void)bytes;
    (void)what;
    (void)clipped;
    uploads++;
}

/* An honest DP round for COHORT clients on an N_ITEMS x K model. */
static fedreci_wire_round honest_round(void)
{
    fedreci_wire_round w;
    memset(&w, 0, sizeof w);
    fedreci_dp_plan pl = {.epsilon = 2,
                          .delta = 1e-6,
                          .releases = 2,
                          .cohort = COHORT,
                          .min_survivors = 8,
                          .n_items = N_ITEMS,
                          .k = K,
                          .row_bound = 3,
                          .gram_weight = 1,
                          .lambda = 0.1};
    assert_int_equal(fedreci_dp_round_plan(&pl, NULL, &w.dp), FEDREC_OK);
    memset(w.dp.rotation_seed, 0x5a, sizeof w.dp.rotation_seed);
    fedreci_dp_bounds b;
    assert_int_equal(fedreci_dp_round_verify(&w.dp, COHORT, N_ITEMS, K, &b, NULL, NULL), FEDREC_OK);
    w.secagg.round_id = 9;
    w.secagg.n = COHORT;
    w.secagg.k = COHORT - 1;
    w.secagg.t = COHORT / 2 + 1;
    w.secagg.d = (uint32_t)b.D + 1;
    w.secagg.clip = ceil(b.client_bound);
    w.secagg.scale = 1;
    w.secagg.max_weight = 1;
    memset(w.secagg.graph_seed, 0x11, sizeof w.secagg.graph_seed);
    w.model_version = 1;
    w.n_items = N_ITEMS;
    w.k_factors = K;
    w.stage_timeout_ms = 5000;
    randombytes_buf(w.coord_pk, sizeof w.coord_pk);
    return w;
}

/* Runs one session against a fake coordinator serving round w. */
static void run_against(const fedreci_wire_round *w, fedreci_session_result *res, fake *f)
{
    static int seq;
    char url[64];
    snprintf(url, sizeof url, "inproc://dp-liar-%d", seq++);
    memset(f, 0, sizeof *f);
    f->round = *w;
    assert_int_equal(nng_rep0_open(&f->sock), 0);
    assert_int_equal(nng_listen(f->sock, url, NULL, 0), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, serve, f), 0);
    uint8_t pk[32], sk[64];
    crypto_sign_keypair(pk, sk);
    fedreci_session_config cfg;
    fedreci_session_config_default(&cfg);
    cfg.url = url;
    cfg.client_id = fedreci_secagg_id_from_pk(pk);
    cfg.identity_sk = sk;
    cfg.model_version = 1;
    cfg.timeout_ms = 10000;
    fedreci_session_hooks hooks = {.compute_update = no_update, .on_upload = on_upload};
    uploads = 0;
    assert_int_equal(fedreci_session_run(&cfg, &hooks, res), FEDREC_OK);
    nng_close(f->sock);
    pthread_join(th, NULL);
    sodium_memzero(sk, sizeof sk);
}

static void expect_refused(const fedreci_wire_round *w, const char *why)
{
    fedreci_session_result res;
    fake f;
    run_against(w, &res, &f);
    assert_int_equal(res.outcome, FEDRECI_SESSION_ERROR);
    assert_int_equal(res.dp_refused, 1);
    assert_int_equal(res.dp_sent, 0);
    assert_int_equal(res.update_bytes_sent, 0);
    assert_int_equal(uploads, 0);
    assert_int_equal(f.n_recv, 1); /* nothing after the check-in */
    if (!strstr(res.text, why))
        fail_msg("refusal '%s' does not say '%s'", res.text, why);
}

static void test_liar_refused(void **state)
{
    (void)state;
    fedreci_wire_round w = honest_round();
    w.dp.epsilon_round *= 0.5; /* claims half the epsilon the noise gives */
    expect_refused(&w, "too small for the claimed epsilon");
    w = honest_round();
    w.dp.noise_var *= 0.25; /* a quarter of the noise for the same claim */
    expect_refused(&w, "too small for the claimed epsilon");
    w = honest_round();
    w.secagg.clip = 100; /* SecAgg would clip the noised words */
    expect_refused(&w, "would alter the noised words");
    w = honest_round();
    w.dp.min_survivors = COHORT + 1; /* noise for more survivors than invited */
    expect_refused(&w, "min_survivors");
}

/* Control: the honest round is accepted; the session's next request (the
 * model, whose checksum it must know for the binding) reaches the fake. */
static void test_honest_accepted(void **state)
{
    (void)state;
    fedreci_wire_round w = honest_round();
    fedreci_session_result res;
    fake f;
    run_against(&w, &res, &f);
    assert_int_equal(res.dp_refused, 0);
    assert_int_equal(res.dp, 1);
    assert_int_equal(f.n_recv, 2);
    assert_true(f.second_body != 0);
    assert_true(fabs(res.dp_epsilon_round - w.dp.epsilon_round) < 1e-9);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_liar_refused),
        cmocka_unit_test(test_honest_accepted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
