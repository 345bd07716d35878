/* Tests for proto/wire: every message round-trips; truncated, oversized,
 * random, malformed and wrong-length messages are refused with the right
 * error and never read out of bounds (run under ASan in CI). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "proto/wire.h"

#define CAP (1u << 24)

static fedreci_wire_hdr hdr(uint32_t stage)
{
    fedreci_wire_hdr h = {42, 7, stage};
    return h;
}

/* Decodes m (which it frees); returns the envelope or fails the test. */
static fedreci_wire_env *rt(nng_msg *m)
{
    fedreci_wire_env *e = NULL;
    fedrec_err r = fedreci_wire_decode_msg(m, CAP, &e);
    if (r)
        fail_msg("decode: %s: %s", fedrec_strerror(r), fedrec_errmsg());
    /* every strict prefix must be refused */
    const uint8_t *b = nng_msg_body(m);
    size_t len = nng_msg_len(m);
    for (size_t cut = 0; cut < len; cut += (len > 4096 ? len / 97 + 1 : 1)) {
        fedreci_wire_env *t = NULL;
        fedrec_err tr = fedreci_wire_decode(b, cut, CAP, &t);
        if (tr == FEDREC_OK)
            fail_msg("prefix of %zu/%zu bytes accepted", cut, len);
        assert_null(t);
    }
    /* one byte over the cap is refused before unpacking */
    fedreci_wire_env *t = NULL;
    assert_int_equal(fedreci_wire_decode(b, len, len - 1, &t), FEDREC_ERR_TOO_BIG);
    assert_null(t);
    nng_msg_free(m);
    fedreci_wire_hdr h = fedreci_wire_header(e);
    assert_int_equal(h.client_id, 42);
    assert_int_equal(h.round_id, 7);
    return e;
}

static void test_checkin(void **state)
{
    (void)state;
    uint8_t pk[32];
    for (int i = 0; i < 32; i++)
        pk[i] = (uint8_t)(i * 3);
    fedreci_wire_hdr h = hdr(FEDRECI_WIRE_STAGE_CHECKIN);
    nng_msg *m;
    uint64_t before = fedreci_wire_checkin_clock();
    assert_int_equal(fedreci_wire_enc_checkin(&m, &h, pk, 5, 1), FEDREC_OK);
    fedreci_wire_env *e = rt(m);
    const uint8_t *gpk;
    uint64_t ver;
    int opted;
    assert_int_equal(fedreci_wire_get_checkin(e, &gpk, &ver, &opted), FEDREC_OK);
    assert_memory_equal(gpk, pk, 32);
    assert_int_equal(ver, 5);
    assert_int_equal(opted, 1);
    /* stamped by the check-in clock: after the value read before, and every
       later reading is larger still (strictly increasing, even within 1 ms) */
    uint64_t sent = fedreci_wire_checkin_sent_ms(e);
    assert_true(sent > before);
    assert_true(sent > 1600000000000ull); /* ms since 1970, not seconds */
    assert_true(fedreci_wire_checkin_clock() > sent);
    assert_int_equal(fedreci_wire_checkin_sent_ms(NULL), 0);
    /* the wrong accessor is a protocol error */
    fedreci_wire_round w;
    assert_int_equal(fedreci_wire_get_round(e, &w), FEDREC_ERR_PROTOCOL);
    fedreci_wire_free(e);
}

static void test_checkin_reply(void **state)
{
    (void)state;
    fedreci_wire_round w;
    memset(&w, 0, sizeof w);
    w.secagg.round_id = 7;
    w.secagg.n = 10;
    w.secagg.k = 4;
    w.secagg.t = 3;
    w.secagg.d = 3 * 2 + 1;
    w.secagg.clip = 16;
    w.secagg.scale = 1000;
    w.secagg.max_weight = 1;
    memset(w.secagg.graph_seed, 0xab, 32);
    w.model_version = 3;
    w.n_items = 3;
    w.k_factors = 2;
    w.stage_timeout_ms = 5000;
    memset(w.coord_pk, 0x5c, sizeof w.coord_pk);
    fedreci_wire_hdr h = hdr(FEDRECI_WIRE_STAGE_CHECKIN);
    nng_msg *m;
    assert_int_equal(fedreci_wire_enc_checkin_reply(
                         &m, &h, FEDREC__V1__CHECK_IN_REPLY__STATUS__SELECTED, &w, 3, 0),
                     FEDREC_OK);
    fedreci_wire_env *e = rt(m);
    fedreci_wire_round g;
    assert_int_equal(fedreci_wire_get_round(e, &g), FEDREC_OK);
    assert_int_equal(g.secagg.round_id, 7);
    assert_int_equal(g.secagg.n, 10);
    assert_int_equal(g.secagg.k, 4);
    assert_int_equal(g.secagg.t, 3);
    assert_int_equal(g.secagg.d, 7);
    assert_true(g.secagg.clip == 16 && g.secagg.scale == 1000);
    assert_memory_equal(g.secagg.graph_seed, w.secagg.graph_seed, 32);
    assert_int_equal(g.n_items, 3);
    assert_int_equal(g.k_factors, 2);
    assert_int_equal(g.stage_timeout_ms, 5000);
    assert_memory_equal(g.coord_pk, w.coord_pk, 32);
    assert_string_equal(g.aggregator_url, ""); /* one coordinator: none */
    fedreci_wire_free(e);

    /* SecAgg groups (issue 20): the aggregator's URL travels with SELECTED */
    snprintf(w.aggregator_url, sizeof w.aggregator_url, "tcp://10.0.0.7:7411");
    assert_int_equal(fedreci_wire_enc_checkin_reply(
                         &m, &h, FEDREC__V1__CHECK_IN_REPLY__STATUS__SELECTED, &w, 3, 0),
                     FEDREC_OK);
    e = rt(m);
    assert_int_equal(fedreci_wire_get_round(e, &g), FEDREC_OK);
    assert_string_equal(g.aggregator_url, "tcp://10.0.0.7:7411");
    fedreci_wire_free(e);
    /* a URL longer than 255 bytes is refused by the accessor */
    {
        Fedrec__V1__Envelope env = FEDREC__V1__ENVELOPE__INIT;
        Fedrec__V1__CheckInReply cr = FEDREC__V1__CHECK_IN_REPLY__INIT;
        Fedrec__V1__RoundParams rp = FEDREC__V1__ROUND_PARAMS__INIT;
        uint8_t seed[32] = {0}, cpk[32] = {0};
        char longurl[300];
        memset(longurl, 'a', sizeof longurl - 1);
        longurl[sizeof longurl - 1] = 0;
        rp.n = 10;
        rp.neighbors = 4;
        rp.threshold = 3;
        rp.d = 7;
        rp.clip = 16;
        rp.scale = 1000;
        rp.n_items = 3;
        rp.k_factors = 2;
        rp.graph_seed.data = seed;
        rp.graph_seed.len = 32;
        rp.coord_pk.data = cpk;
        rp.coord_pk.len = 32;
        cr.status = FEDREC__V1__CHECK_IN_REPLY__STATUS__SELECTED;
        cr.params = &rp;
        cr.aggregator_url = longurl;
        env.protocol_version = 1;
        env.stage = FEDRECI_WIRE_STAGE_CHECKIN;
        env.round_id = 7;
        env.body_case = FEDREC__V1__ENVELOPE__BODY_CHECK_IN_REPLY;
        env.check_in_reply = &cr;
        fedreci_wire_round g2;
        assert_int_equal(fedreci_wire_get_round(&env, &g2), FEDREC_ERR_FORMAT);
        w.aggregator_url[0] = 0;
    }

    /* d inconsistent with n_items * k + 1 is refused at decode */
    w.secagg.d = 8;
    assert_int_equal(fedreci_wire_enc_checkin_reply(
                         &m, &h, FEDREC__V1__CHECK_IN_REPLY__STATUS__SELECTED, &w, 3, 0),
                     FEDREC_OK);
    e = NULL;
    assert_int_equal(fedreci_wire_decode_msg(m, CAP, &e), FEDREC_ERR_FORMAT);
    assert_null(e);
    nng_msg_free(m);
    /* threshold breaking t > k/2 is refused by the accessor */
    w.secagg.d = 7;
    w.secagg.t = 2;
    assert_int_equal(fedreci_wire_enc_checkin_reply(
                         &m, &h, FEDREC__V1__CHECK_IN_REPLY__STATUS__SELECTED, &w, 3, 0),
                     FEDREC_OK);
    e = rt(m);
    assert_int_equal(fedreci_wire_get_round(e, &g), FEDREC_ERR_FORMAT);
    fedreci_wire_free(e);
    /* NOT_SELECTED carries the retry time and no params */
    assert_int_equal(fedreci_wire_enc_checkin_reply(
                         &m, &h, FEDREC__V1__CHECK_IN_REPLY__STATUS__NOT_SELECTED, NULL, 9, 1234),
                     FEDREC_OK);
    e = rt(m);
    assert_int_equal(e->check_in_reply->retry_after_ms, 1234);
    assert_int_equal(e->check_in_reply->model_version, 9);
    assert_int_equal(fedreci_wire_get_round(e, &g), FEDREC_ERR_NOT_SELECTED);
    fedreci_wire_free(e);

    /* differential privacy: every DpParams field round-trips; d must then be
       the padded DP-ALS dimension + 1 (3 x 2 + 3 = 9 -> D = 16) */
    w.secagg.t = 3;
    w.secagg.d = 17;
    w.dp.mechanism = FEDRECI_DP_ROUND_SKELLAM;
    w.dp.min_survivors = 8;
    w.dp.l2_bound = sqrt(10.0);
    w.dp.scale = 2590.5;
    w.dp.noise_var = 12345.5;
    w.dp.beta = exp(-0.5);
    w.dp.row_bound = 3;
    w.dp.gram_weight = 1;
    w.dp.lambda = 0.1;
    w.dp.epsilon_round = 0.75;
    w.dp.delta = 1e-6;
    memset(w.dp.rotation_seed, 0x3d, sizeof w.dp.rotation_seed);
    assert_int_equal(fedreci_wire_enc_checkin_reply(
                         &m, &h, FEDREC__V1__CHECK_IN_REPLY__STATUS__SELECTED, &w, 3, 0),
                     FEDREC_OK);
    e = rt(m);
    assert_int_equal(fedreci_wire_get_round(e, &g), FEDREC_OK);
    assert_int_equal(g.secagg.d, 17);
    assert_memory_equal(&g.dp, &w.dp, sizeof g.dp);
    fedreci_wire_free(e);
    /* the DP parameters are bound into the advert's binding: a client told
       another noise (or no DP) signs another digest */
    uint8_t ck[FEDRECI_WIRE_CHECKSUM_BYTES] = {7}, b1[32], b2[32], b3[32];
    fedreci_wire_binding(&g, ck, b1);
    g.dp.noise_var *= 0.5;
    fedreci_wire_binding(&g, ck, b2);
    g.dp.mechanism = 0;
    fedreci_wire_binding(&g, ck, b3);
    assert_memory_not_equal(b1, b2, 32);
    assert_memory_not_equal(b1, b3, 32);
    assert_memory_not_equal(b2, b3, 32);
    /* with DpParams, d = n_items * k + 1 is refused at decode */
    w.secagg.d = 7;
    assert_int_equal(fedreci_wire_enc_checkin_reply(
                         &m, &h, FEDREC__V1__CHECK_IN_REPLY__STATUS__SELECTED, &w, 3, 0),
                     FEDREC_OK);
    e = NULL;
    assert_int_equal(fedreci_wire_decode_msg(m, CAP, &e), FEDREC_ERR_FORMAT);
    assert_null(e);
    nng_msg_free(m);

    /* the ALS step: d = 3 x 2 + 2 x 3 / 2 + 1 = 10; step and x_bound
       round-trip and are bound into the advert */
    memset(&w.dp, 0, sizeof w.dp);
    w.step = FEDRECI_WIRE_STEP_ALS;
    w.x_bound = 8;
    w.secagg.d = 10;
    assert_int_equal(fedreci_wire_enc_checkin_reply(
                         &m, &h, FEDREC__V1__CHECK_IN_REPLY__STATUS__SELECTED, &w, 3, 0),
                     FEDREC_OK);
    e = rt(m);
    assert_int_equal(fedreci_wire_get_round(e, &g), FEDREC_OK);
    assert_int_equal(g.step, FEDRECI_WIRE_STEP_ALS);
    assert_true(g.x_bound == 8);
    assert_int_equal(g.secagg.d, 10);
    fedreci_wire_free(e);
    fedreci_wire_binding(&g, ck, b1);
    g.x_bound = 4;
    fedreci_wire_binding(&g, ck, b2);
    g.step = FEDRECI_WIRE_STEP_GRADIENT;
    g.secagg.d = 7;
    fedreci_wire_binding(&g, ck, b3);
    assert_memory_not_equal(b1, b2, 32);
    assert_memory_not_equal(b1, b3, 32);
    assert_memory_not_equal(b2, b3, 32);
    /* refused at decode: a d without the block (or the block without the
       step), an unknown step, a bound that is not finite and > 0, and the
       step together with DP */
    struct {
        uint32_t step, d;
        double bound;
        int dp;
    } bad[] = {{FEDRECI_WIRE_STEP_ALS, 7, 8, 0},
               {FEDRECI_WIRE_STEP_GRADIENT, 10, 0, 0},
               {2, 10, 8, 0},
               {FEDRECI_WIRE_STEP_ALS, 10, 0, 0},
               {FEDRECI_WIRE_STEP_ALS, 10, NAN, 0},
               {FEDRECI_WIRE_STEP_ALS, 17, 8, 1}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        w.step = bad[i].step;
        w.secagg.d = bad[i].d;
        w.x_bound = bad[i].bound;
        w.dp.mechanism = bad[i].dp ? FEDRECI_DP_ROUND_SKELLAM : 0;
        assert_int_equal(fedreci_wire_enc_checkin_reply(
                             &m, &h, FEDREC__V1__CHECK_IN_REPLY__STATUS__SELECTED, &w, 3, 0),
                         FEDREC_OK);
        e = NULL;
        assert_int_equal(fedreci_wire_decode_msg(m, CAP, &e), FEDREC_ERR_FORMAT);
        assert_null(e);
        nng_msg_free(m);
    }
}

static void test_model(void **state)
{
    (void)state;
    enum { N = 5, K = 3 };
    float y[N * K], gram[K * K];
    for (int i = 0; i < N * K; i++)
        y[i] = (float)i * 0.25f - 1.0f;
    for (int i = 0; i < K * K; i++)
        gram[i] = (float)i;
    const char *codes[N] = {"85123A", "71053", "84406B", "84029G", "POST"};
    uint8_t sum[32];
    fedreci_wire_checksum(y, sizeof y, sum);
    const uint32_t retired[2] = {1, 4};
    fedreci_wire_model mo = {11, N, K, y, gram, sum, codes, N, retired, 2};
    fedreci_wire_hdr h = hdr(FEDRECI_WIRE_STAGE_MODEL);
    nng_msg *m;
    assert_int_equal(fedreci_wire_enc_model_request(&m, &h, 10), FEDREC_OK);
    fedreci_wire_env *e = rt(m);
    assert_int_equal(e->model_request->have_version, 10);
    fedreci_wire_free(e);

    assert_int_equal(fedreci_wire_enc_model_reply(&m, &h, &mo, 11), FEDREC_OK);
    e = rt(m);
    fedreci_wire_model g;
    assert_int_equal(fedreci_wire_get_model(e, &g), FEDREC_OK);
    assert_int_equal(g.version, 11);
    assert_int_equal(g.n_items, N);
    assert_int_equal(g.k, K);
    assert_memory_equal(g.item_factors, y, sizeof y);
    assert_memory_equal(g.gram, gram, sizeof gram);
    assert_int_equal(g.n_item_codes, N);
    assert_string_equal(g.item_codes[4], "POST");
    assert_int_equal(g.n_retired, 2);
    assert_int_equal(g.retired_rows[0], 1);
    assert_int_equal(g.retired_rows[1], 4);
    fedreci_wire_free(e);

    /* retired rows out of range, repeated or descending are refused */
    const uint32_t bad_rows[3][2] = {{1, 5}, {2, 2}, {3, 0}};
    for (int i = 0; i < 3; i++) {
        fedreci_wire_model mb = mo;
        mb.retired_rows = bad_rows[i];
        assert_int_equal(fedreci_wire_enc_model_reply(&m, &h, &mb, 11), FEDREC_OK);
        e = NULL;
        assert_int_equal(fedreci_wire_decode_msg(m, CAP, &e), FEDREC_ERR_FORMAT);
        assert_non_null(strstr(fedrec_errmsg(), "retired_rows"));
        assert_null(e);
        nng_msg_free(m);
    }
    /* more retired rows than items */
    const uint32_t many[6] = {0, 1, 2, 3, 4, 5};
    fedreci_wire_model mm = mo;
    mm.retired_rows = many;
    mm.n_retired = 6;
    assert_int_equal(fedreci_wire_enc_model_reply(&m, &h, &mm, 11), FEDREC_OK);
    e = NULL;
    assert_int_equal(fedreci_wire_decode_msg(m, CAP, &e), FEDREC_ERR_FORMAT);
    nng_msg_free(m);

    /* not modified */
    assert_int_equal(fedreci_wire_enc_model_reply(&m, &h, NULL, 11), FEDREC_OK);
    e = rt(m);
    assert_true(e->model_reply->not_modified);
    assert_int_equal(e->model_reply->version, 11);
    assert_int_equal(fedreci_wire_get_model(e, &g), FEDREC_ERR_PROTOCOL);
    fedreci_wire_free(e);

    /* a corrupted checksum is a crypto error */
    uint8_t bad[32];
    memcpy(bad, sum, 32);
    bad[0] ^= 1;
    mo.checksum = bad;
    assert_int_equal(fedreci_wire_enc_model_reply(&m, &h, &mo, 11), FEDREC_OK);
    e = NULL;
    assert_int_equal(fedreci_wire_decode_msg(m, CAP, &e), FEDREC_ERR_CRYPTO);
    nng_msg_free(m);
    /* factors of the wrong length: n_items says 6, the bytes hold 5 rows */
    Fedrec__V1__Envelope env = FEDREC__V1__ENVELOPE__INIT;
    Fedrec__V1__ModelReply mr = FEDREC__V1__MODEL_REPLY__INIT;
    env.protocol_version = FEDRECI_WIRE_PROTOCOL_VERSION;
    env.stage = FEDRECI_WIRE_STAGE_MODEL;
    env.body_case = FEDREC__V1__ENVELOPE__BODY_MODEL_REPLY;
    env.model_reply = &mr;
    mr.version = 11;
    mr.n_items = 6;
    mr.k = K;
    mr.item_factors.data = (uint8_t *)y;
    mr.item_factors.len = sizeof y;
    mr.checksum.data = sum;
    mr.checksum.len = 32;
    uint8_t buf[512];
    size_t len = fedrec__v1__envelope__pack(&env, buf);
    e = NULL;
    assert_int_equal(fedreci_wire_decode(buf, len, CAP, &e), FEDREC_ERR_FORMAT);
    assert_null(e);
    /* a gram of the wrong size */
    mr.n_items = N;
    mr.gram.data = (uint8_t *)gram;
    mr.gram.len = sizeof gram - 4;
    len = fedrec__v1__envelope__pack(&env, buf);
    assert_int_equal(fedreci_wire_decode(buf, len, CAP, &e), FEDREC_ERR_FORMAT);
    /* and the fixed message decodes */
    mr.gram.len = sizeof gram;
    len = fedrec__v1__envelope__pack(&env, buf);
    assert_int_equal(fedreci_wire_decode(buf, len, CAP, &e), FEDREC_OK);
    fedreci_wire_free(e);
}

static void fill_advert(fedreci_secagg_advert *a, uint64_t id)
{
    memset(a, 0, sizeof *a);
    a->client_id = id;
    memset(a->identity_pk, (int)(id & 0xff), 32);
    memset(a->c_pk, (int)(id + 1), 32);
    memset(a->s_pk, (int)(id + 2), 32);
    memset(a->sig, (int)(id + 3), 64);
    memset(a->binding, (int)(id + 4), 32);
    memset(a->seed_commit, (int)(id + 5), 32);
}

static void test_advertise_roster(void **state)
{
    (void)state;
    fedreci_secagg_advert a;
    fill_advert(&a, 42);
    fedreci_wire_hdr h = hdr(FEDRECI_WIRE_STAGE_ADVERTISE);
    nng_msg *m;
    assert_int_equal(fedreci_wire_enc_advertise(&m, &h, &a), FEDREC_OK);
    fedreci_wire_env *e = rt(m);
    fedreci_secagg_advert g;
    assert_int_equal(fedreci_wire_get_advert(e, &g), FEDREC_OK);
    assert_int_equal(g.client_id, 42);
    assert_memory_equal(g.c_pk, a.c_pk, 32);
    assert_memory_equal(g.s_pk, a.s_pk, 32);
    assert_memory_equal(g.sig, a.sig, 64);
    assert_memory_equal(g.binding, a.binding, 32);
    assert_memory_equal(g.seed_commit, a.seed_commit, 32);
    fedreci_wire_free(e);

    /* roster of 5 members with 3 full adverts */
    uint64_t ids[5] = {3, 9, 42, 50, 77};
    fedreci_secagg_advert ad[3];
    fill_advert(&ad[0], 9);
    fill_advert(&ad[1], 42);
    fill_advert(&ad[2], 77);
    const fedreci_secagg_advert *ap[3] = {&ad[0], &ad[1], &ad[2]};
    uint8_t digest[32];
    memset(digest, 0xd1, sizeof digest);
    assert_int_equal(fedreci_wire_enc_roster(&m, &h, ids, 5, digest, ap, 3), FEDREC_OK);
    e = rt(m);
    const uint8_t *dg;
    assert_int_equal(fedreci_wire_get_seed_digest(e, &dg), FEDREC_OK);
    assert_memory_equal(dg, digest, 32);
    fedreci_secagg_advert *ro;
    size_t n;
    assert_int_equal(fedreci_wire_get_roster(e, 42, 2, 10, &ro, &n), FEDREC_OK);
    assert_int_equal(n, 5);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(ro[i].client_id, ids[i]);
    assert_memory_equal(&ro[1], &ad[0], sizeof ad[0]);
    assert_memory_equal(&ro[2], &ad[1], sizeof ad[1]);
    assert_memory_equal(&ro[4], &ad[2], sizeof ad[2]);
    uint8_t zero[32] = {0};
    assert_memory_equal(ro[0].c_pk, zero, 32);
    free(ro);
    /* size bounds and membership */
    assert_int_equal(fedreci_wire_get_roster(e, 42, 6, 10, &ro, &n), FEDREC_ERR_FORMAT);
    assert_int_equal(fedreci_wire_get_roster(e, 43, 2, 10, &ro, &n), FEDREC_ERR_PROTOCOL);
    fedreci_wire_free(e);

    /* unsorted member ids */
    uint64_t unsorted[3] = {9, 3, 42};
    assert_int_equal(fedreci_wire_enc_roster(&m, &h, unsorted, 3, digest, ap, 0), FEDREC_OK);
    e = NULL;
    assert_int_equal(fedreci_wire_decode_msg(m, CAP, &e), FEDREC_ERR_FORMAT);
    nng_msg_free(m);
    /* an advert for a non-member */
    assert_int_equal(fedreci_wire_enc_roster(&m, &h, ids, 2, digest, ap, 3), FEDREC_OK);
    assert_int_equal(fedreci_wire_decode_msg(m, CAP, &e), FEDREC_ERR_FORMAT);
    assert_null(e);
    nng_msg_free(m);
}

/* The seed step (SeedReveal, SeedRelay) and the consistency step
 * (Consistency, ConsistencyRelay): round trips and refusals. */
static void test_seed_and_consistency(void **state)
{
    (void)state;
    /* a roster without a digest decodes, but has no seed digest */
    uint64_t ids[4] = {3, 9, 42, 77};
    fedreci_wire_hdr h = hdr(FEDRECI_WIRE_STAGE_ADVERTISE);
    nng_msg *m;
    assert_int_equal(fedreci_wire_enc_roster(&m, &h, ids, 4, NULL, NULL, 0), FEDREC_OK);
    fedreci_wire_env *e = rt(m);
    const uint8_t *b;
    assert_int_equal(fedreci_wire_get_seed_digest(e, &b), FEDREC_ERR_FORMAT);
    fedreci_wire_free(e);

    h = hdr(FEDRECI_WIRE_STAGE_SEED);
    uint8_t c32[32];
    memset(c32, 0x77, sizeof c32);
    assert_int_equal(fedreci_wire_enc_seed_reveal(&m, &h, c32), FEDREC_OK);
    e = rt(m);
    assert_int_equal(fedreci_wire_get_seed_reveal(e, &b), FEDREC_OK);
    assert_memory_equal(b, c32, FEDRECI_SECAGG_CONTRIB_BYTES);
    assert_int_equal(e->seed_reveal->contribution.len, FEDRECI_SECAGG_CONTRIB_BYTES);
    fedreci_wire_free(e);
    /* under another stage: refused */
    h.stage = FEDRECI_WIRE_STAGE_SHARE_KEYS;
    assert_int_equal(fedreci_wire_enc_seed_reveal(&m, &h, c32), FEDREC_OK);
    e = NULL;
    assert_int_equal(fedreci_wire_decode_msg(m, CAP, &e), FEDREC_ERR_FORMAT);
    nng_msg_free(m);

    /* a relay: 4 slots (3 contributions of 16 bytes and the commitment of
       member 9, which did not reveal), adverts of 9 and 77 */
    h = hdr(FEDRECI_WIRE_STAGE_SEED);
    uint8_t contribs[4 * 32] = {0};
    uint8_t miss[4] = {0, 1, 0, 0};
    for (size_t i = 0; i < sizeof contribs; i++)
        if (miss[i / 32] || i % 32 < FEDRECI_SECAGG_CONTRIB_BYTES)
            contribs[i] = (uint8_t)(i * 7 + 1);
    fedreci_secagg_advert ad[2];
    fill_advert(&ad[0], 9);
    fill_advert(&ad[1], 77);
    const fedreci_secagg_advert *ap[2] = {&ad[0], &ad[1]};
    assert_int_equal(fedreci_wire_enc_seed_relay(&m, &h, contribs, 4, miss, ap, 2), FEDREC_OK);
    e = rt(m);
    /* no framing per member: 16 bytes each in one field, the commitment
       apart, and no seed commitment in the adverts */
    assert_int_equal(e->seed_relay->contributions.len, 3 * FEDRECI_SECAGG_CONTRIB_BYTES);
    assert_int_equal(e->seed_relay->missing_commits.len, 32);
    assert_int_equal(e->seed_relay->adverts[0]->seed_commit.len, 0);
    uint8_t *cg = NULL, *mg = NULL;
    fedreci_secagg_advert *ro = NULL;
    assert_int_equal(fedreci_wire_get_seed_relay(e, ids, 4, &cg, &mg, &ro), FEDREC_OK);
    assert_memory_equal(cg, contribs, sizeof contribs);
    assert_memory_equal(mg, miss, sizeof miss);
    free(mg);
    memset(ad[0].seed_commit, 0, 32); /* not carried: the client derives it */
    memset(ad[1].seed_commit, 0, 32);
    assert_memory_equal(&ro[1], &ad[0], sizeof ad[0]);
    assert_memory_equal(&ro[3], &ad[1], sizeof ad[1]);
    assert_int_equal(ro[0].client_id, 3);
    uint8_t zero[32] = {0};
    assert_memory_equal(ro[0].c_pk, zero, 32);
    free(cg);
    free(ro);
    /* for a roster of another size, or one without an advertised member */
    assert_int_equal(fedreci_wire_get_seed_relay(e, ids, 3, &cg, &mg, &ro), FEDREC_ERR_FORMAT);
    uint64_t other[4] = {3, 10, 42, 77};
    assert_int_equal(fedreci_wire_get_seed_relay(e, other, 4, &cg, &mg, &ro), FEDREC_ERR_FORMAT);
    fedreci_wire_free(e);
    /* a missing index out of range */
    uint8_t miss5[5] = {0, 0, 0, 0, 1};
    uint64_t ids5[5] = {3, 9, 42, 77, 90};
    assert_int_equal(fedreci_wire_enc_seed_relay(&m, &h, contribs, 4, NULL, ap, 2), FEDREC_OK);
    nng_msg_free(m);
    uint8_t c5[5 * 32] = {0};
    assert_int_equal(fedreci_wire_enc_seed_relay(&m, &h, c5, 5, miss5, ap, 2), FEDREC_OK);
    e = rt(m);
    assert_int_equal(fedreci_wire_get_seed_relay(e, ids, 4, &cg, &mg, &ro), FEDREC_ERR_FORMAT);
    assert_int_equal(fedreci_wire_get_seed_relay(e, ids5, 5, &cg, &mg, &ro), FEDREC_OK);
    assert_int_equal(mg[4], 1);
    free(cg);
    free(mg);
    free(ro);
    fedreci_wire_free(e);

    /* tags */
    h = hdr(FEDRECI_WIRE_STAGE_CONSISTENCY);
    fedreci_secagg_tag t[3];
    for (int i = 0; i < 3; i++) {
        t[i].from = 42;
        t[i].to = ids[i];
        memset(t[i].tag, 0x30 + i, sizeof t[i].tag);
    }
    uint8_t esig[64];
    memset(esig, 0x5a, sizeof esig);
    fedreci_secagg_endorsement es[2] = {{ids[0], {1}}, {ids[2], {2}}};
    /* packed (protocol 6): one 16-byte slot per peer, ids implicit; the
       relay leaves a peer without a tag all zero */
    uint64_t peers[3] = {ids[0], ids[1], ids[2]};
    fedreci_secagg_tag rt2[2];
    for (int i = 0; i < 2; i++) {
        rt2[i].from = ids[i == 0 ? 0 : 2];
        rt2[i].to = 42;
        memset(rt2[i].tag, 0x40 + i, sizeof rt2[i].tag);
    }
    for (int relay = 0; relay < 2; relay++) {
        if (relay)
            assert_int_equal(fedreci_wire_enc_consistency_relay(&m, &h, peers, 3, rt2, 2, es, 2),
                             FEDREC_OK);
        else
            assert_int_equal(fedreci_wire_enc_consistency(&m, &h, peers, 3, t, 3, esig, ids, 2),
                             FEDREC_OK);
        e = rt(m);
        assert_int_equal(e->body_case, relay ? FEDREC__V1__ENVELOPE__BODY_CONSISTENCY_RELAY
                                             : FEDREC__V1__ENVELOPE__BODY_CONSISTENCY);
        fedreci_secagg_tag *g = NULL;
        size_t n = 0;
        assert_int_equal(fedreci_wire_get_tags(e, 42, peers, 3, &g, &n), FEDREC_OK);
        if (relay) {
            assert_int_equal(n, 2);
            assert_memory_equal(g, rt2, sizeof rt2);
            assert_int_equal(e->consistency_relay->tags.len, 3 * 16);
        } else {
            assert_int_equal(n, 3);
            assert_memory_equal(g, t, sizeof t);
            assert_int_equal(e->consistency->tags.len, 3 * 16);
        }
        free(g);
        /* slots for another number of peers than carried */
        assert_int_equal(fedreci_wire_get_tags(e, 42, peers, 2, &g, &n), FEDREC_ERR_FORMAT);
        const uint8_t *gs = NULL;
        const uint64_t *gw = NULL;
        size_t nw = 0;
        fedreci_secagg_endorsement *ge = NULL;
        if (relay) {
            assert_int_equal(fedreci_wire_get_endorse(e, &gs, &gw, &nw), FEDREC_ERR_PROTOCOL);
            assert_int_equal(fedreci_wire_get_endorsements(e, 8, &ge, &n), FEDREC_OK);
            assert_int_equal(n, 2);
            assert_memory_equal(ge, es, sizeof es);
            free(ge);
            assert_int_equal(fedreci_wire_get_endorsements(e, 1, &ge, &n), FEDREC_ERR_FORMAT);
        } else {
            assert_int_equal(fedreci_wire_get_endorse(e, &gs, &gw, &nw), FEDREC_OK);
            assert_memory_equal(gs, esig, sizeof esig);
            assert_int_equal(nw, 2);
            assert_memory_equal(gw, ids, 2 * sizeof *ids);
        }
        fedreci_wire_free(e);
    }
    assert_int_equal(fedreci_wire_enc_consistency(&m, &h, peers, 2, t, 3, esig, NULL, 0),
                     FEDREC_ERR_INVALID); /* t[2] is for no peer given */
    /* a tag of the wrong length */
    Fedrec__V1__Envelope env = FEDREC__V1__ENVELOPE__INIT;
    Fedrec__V1__Consistency co = FEDREC__V1__CONSISTENCY__INIT;
    co.tags.data = t[0].tag;
    co.tags.len = FEDRECI_SECAGG_TAG_BYTES - 1; /* packed tags: 16 bytes each */
    co.sig.data = esig;
    co.sig.len = sizeof esig;
    env.protocol_version = FEDRECI_WIRE_PROTOCOL_VERSION;
    env.stage = FEDRECI_WIRE_STAGE_CONSISTENCY;
    env.body_case = FEDREC__V1__ENVELOPE__BODY_CONSISTENCY;
    env.consistency = &co;
    uint8_t buf[256];
    size_t len = fedrec__v1__envelope__pack(&env, buf);
    e = NULL;
    assert_int_equal(fedreci_wire_decode(buf, len, CAP, &e), FEDREC_ERR_FORMAT);
    assert_null(e);
    /* the endorsement signature: 64 bytes or the message does not decode;
       the ids asked for: strictly ascending */
    co.tags.len = FEDRECI_SECAGG_TAG_BYTES;
    uint64_t wa[2] = {5, 9};
    const struct {
        size_t sig_len;
        uint64_t w1;
        fedrec_err want;
    } cons[] = {{64, 9, FEDREC_OK},
                {0, 9, FEDREC_ERR_FORMAT},
                {63, 9, FEDREC_ERR_FORMAT},
                {64, 5, FEDREC_ERR_FORMAT},
                {64, 4, FEDREC_ERR_FORMAT}};
    for (size_t i = 0; i < sizeof cons / sizeof cons[0]; i++) {
        co.sig.len = cons[i].sig_len;
        wa[1] = cons[i].w1;
        co.n_want = 2;
        co.want = wa;
        len = fedrec__v1__envelope__pack(&env, buf);
        e = NULL;
        assert_int_equal(fedreci_wire_decode(buf, len, CAP, &e), cons[i].want);
        fedreci_wire_free(e);
    }
    co.n_want = 0;
    /* a relayed signature of the wrong length */
    Fedrec__V1__ConsistencyRelay cr = FEDREC__V1__CONSISTENCY_RELAY__INIT;
    Fedrec__V1__Endorsement en = FEDREC__V1__ENDORSEMENT__INIT;
    Fedrec__V1__Endorsement *enp = &en;
    uint8_t sig65[65]; /* room for the longest one tried */
    memset(sig65, 0x5a, sizeof sig65);
    en.from = 3;
    en.sig.data = sig65;
    for (size_t l = 63; l <= 65; l++) {
        en.sig.len = l;
        cr.n_sigs = 1;
        cr.sigs = &enp;
        env.body_case = FEDREC__V1__ENVELOPE__BODY_CONSISTENCY_RELAY;
        env.consistency_relay = &cr;
        len = fedrec__v1__envelope__pack(&env, buf);
        e = NULL;
        assert_int_equal(fedreci_wire_decode(buf, len, CAP, &e),
                         l == 64 ? FEDREC_OK : FEDREC_ERR_FORMAT);
        fedreci_wire_free(e);
    }
    env.body_case = FEDREC__V1__ENVELOPE__BODY_CONSISTENCY;

    /* relays that do not decode: contributions not in 16-byte units,
       commitments that do not match the missing list, an advert with a
       seed commitment; the well-formed one as the control */
    Fedrec__V1__SeedRelay sr = FEDREC__V1__SEED_RELAY__INIT;
    uint32_t mi[1] = {2};
    sr.contributions.data = contribs;
    sr.missing_commits.data = contribs + 64;
    env.stage = FEDRECI_WIRE_STAGE_SEED;
    env.body_case = FEDREC__V1__ENVELOPE__BODY_SEED_RELAY;
    env.seed_relay = &sr;
    const struct {
        size_t contrib_len, n_missing, commit_len;
        fedrec_err want;
    } relays[] = {{48, 1, 32, FEDREC_OK},
                  {47, 1, 32, FEDREC_ERR_FORMAT},
                  {48, 1, 0, FEDREC_ERR_FORMAT},
                  {48, 0, 32, FEDREC_ERR_FORMAT},
                  {48, 1, 33, FEDREC_ERR_FORMAT}};
    for (size_t i = 0; i < sizeof relays / sizeof relays[0]; i++) {
        sr.contributions.len = relays[i].contrib_len;
        sr.n_missing = relays[i].n_missing;
        sr.missing = mi;
        sr.missing_commits.len = relays[i].commit_len;
        len = fedrec__v1__envelope__pack(&env, buf);
        e = NULL;
        assert_int_equal(fedreci_wire_decode(buf, len, CAP, &e), relays[i].want);
        if (relays[i].want == FEDREC_OK) {
            assert_int_equal(fedreci_wire_get_seed_relay(e, ids, 4, &cg, &mg, &ro), FEDREC_OK);
            assert_memory_equal(cg + 32 * 3, contribs + 32, FEDRECI_SECAGG_CONTRIB_BYTES);
            assert_memory_equal(cg + 32 * 2, contribs + 64, 32);
            free(cg);
            free(mg);
            free(ro);
            /* 3 contributions are 48 bytes: not enough for 5 members */
            assert_int_equal(fedreci_wire_get_seed_relay(e, ids5, 5, &cg, &mg, &ro),
                             FEDREC_ERR_FORMAT);
            fedreci_wire_free(e);
        } else {
            assert_null(e);
        }
    }
    {
        sr.contributions.len = 48;
        sr.missing_commits.len = 32;
        sr.n_missing = 1;
        Fedrec__V1__Advert av = FEDREC__V1__ADVERT__INIT, *avp = &av;
        av.client_id = 9;
        av.identity_pk.data = av.c_pk.data = av.s_pk.data = av.binding.data = contribs;
        av.seed_commit.data = av.sig.data = contribs;
        av.identity_pk.len = av.c_pk.len = av.s_pk.len = av.binding.len = 32;
        av.sig.len = 64;
        av.seed_commit.len = 32;
        sr.n_adverts = 1;
        sr.adverts = &avp;
        uint8_t big[512];
        len = fedrec__v1__envelope__pack(&env, big);
        e = NULL;
        assert_int_equal(fedreci_wire_decode(big, len, CAP, &e), FEDREC_ERR_FORMAT);
        av.seed_commit.len = 0;
        len = fedrec__v1__envelope__pack(&env, big);
        assert_int_equal(fedreci_wire_decode(big, len, CAP, &e), FEDREC_OK);
        fedreci_wire_free(e);
    }
}

/* The complaint step's messages: round trips, and every length and order
 * rule of the decoder. */
static void test_complaints(void **state)
{
    (void)state;
    fedreci_secagg_complaint k[2];
    fedreci_secagg_opening o[2];
    for (int i = 0; i < 2; i++) {
        k[i].from = 42;
        k[i].dealer = 100 + (uint64_t)i;
        memset(k[i].bundle, 0x10 + i, sizeof k[i].bundle);
        memset(k[i].sig, 0x20 + i, sizeof k[i].sig);
        o[i].dealer = 42;
        o[i].to = 200 + (uint64_t)i;
        memset(o[i].plain, 0x40 + i, sizeof o[i].plain);
    }
    uint64_t ex[2] = {7, 9};
    nng_msg *m = NULL;
    fedreci_wire_hdr h = hdr(FEDRECI_WIRE_STAGE_COMPLAINT);
    assert_int_equal(fedreci_wire_enc_complaints(&m, &h, k, 2), FEDREC_OK);
    fedreci_wire_env *e = rt(m);
    assert_int_equal(e->body_case, FEDREC__V1__ENVELOPE__BODY_COMPLAINTS);
    fedreci_secagg_complaint *gk = NULL;
    size_t n = 0;
    assert_int_equal(fedreci_wire_get_complaints(e, 8, &gk, &n), FEDREC_OK);
    assert_int_equal(n, 2);
    assert_memory_equal(gk, k, sizeof k);
    free(gk);
    assert_int_equal(fedreci_wire_get_complaints(e, 1, &gk, &n), FEDREC_ERR_FORMAT); /* cap */
    fedreci_wire_free(e);
    h = hdr(FEDRECI_WIRE_STAGE_OPENING);
    assert_int_equal(fedreci_wire_enc_openings(&m, &h, o, 2), FEDREC_OK);
    e = rt(m);
    fedreci_secagg_opening *go = NULL;
    assert_int_equal(fedreci_wire_get_openings(e, 8, &go, &n), FEDREC_OK);
    assert_int_equal(n, 2);
    assert_memory_equal(go, o, sizeof o);
    free(go);
    fedreci_wire_free(e);
    /* the relay, at both stages; not final with the complaints, final with
       the exclusions and openings */
    for (int st = 0; st < 2; st++) {
        h = hdr(st ? FEDRECI_WIRE_STAGE_OPENING : FEDRECI_WIRE_STAGE_COMPLAINT);
        assert_int_equal(fedreci_wire_enc_complaint_relay(&m, &h, k, 2, 0, NULL, 0, NULL, 0),
                         FEDREC_OK);
        e = rt(m);
        int final = 1;
        const uint64_t *gx;
        size_t nx;
        assert_int_equal(fedreci_wire_get_complaint_relay(e, &final, &gx, &nx), FEDREC_OK);
        assert_int_equal(final, 0);
        assert_int_equal(nx, 0);
        assert_int_equal(fedreci_wire_get_complaints(e, 8, &gk, &n), FEDREC_OK);
        assert_int_equal(n, 2);
        assert_memory_equal(gk, k, sizeof k);
        free(gk);
        fedreci_wire_free(e);
        assert_int_equal(fedreci_wire_enc_complaint_relay(&m, &h, NULL, 0, 1, ex, 2, o, 1),
                         FEDREC_OK);
        e = rt(m);
        assert_int_equal(fedreci_wire_get_complaint_relay(e, &final, &gx, &nx), FEDREC_OK);
        assert_int_equal(final, 1);
        assert_int_equal(nx, 2);
        assert_memory_equal(gx, ex, sizeof ex);
        assert_int_equal(fedreci_wire_get_openings(e, 8, &go, &n), FEDREC_OK);
        assert_int_equal(n, 1);
        assert_memory_equal(go, o, sizeof o[0]);
        free(go);
        fedreci_wire_free(e);
    }
    /* refused by decode: a bundle hash, a signature or a plaintext of the
       wrong length, an unsorted exclusion list, a relay at another stage */
    for (int bad = 0; bad < 5; bad++) {
        Fedrec__V1__Envelope env = FEDREC__V1__ENVELOPE__INIT;
        Fedrec__V1__Complaints cs = FEDREC__V1__COMPLAINTS__INIT;
        Fedrec__V1__Openings os = FEDREC__V1__OPENINGS__INIT;
        Fedrec__V1__ComplaintRelay cr = FEDREC__V1__COMPLAINT_RELAY__INIT;
        Fedrec__V1__Complaint c1 = FEDREC__V1__COMPLAINT__INIT;
        Fedrec__V1__Opening o1 = FEDREC__V1__OPENING__INIT;
        Fedrec__V1__Complaint *cp = &c1;
        Fedrec__V1__Opening *op = &o1;
        c1.bundle.data = k[0].bundle;
        c1.bundle.len = bad == 0 ? 31 : 32;
        c1.sig.data = k[0].sig;
        c1.sig.len = bad == 1 ? 63 : 64;
        o1.plain.data = o[0].plain;
        o1.plain.len = 127;
        uint64_t unsorted[2] = {9, 7};
        env.protocol_version = FEDRECI_WIRE_PROTOCOL_VERSION;
        env.stage = FEDRECI_WIRE_STAGE_COMPLAINT;
        if (bad < 2) {
            cs.n_complaints = 1;
            cs.complaints = &cp;
            env.body_case = FEDREC__V1__ENVELOPE__BODY_COMPLAINTS;
            env.complaints = &cs;
        } else if (bad == 2) {
            os.n_openings = 1;
            os.openings = &op;
            env.stage = FEDRECI_WIRE_STAGE_OPENING;
            env.body_case = FEDREC__V1__ENVELOPE__BODY_OPENINGS;
            env.openings = &os;
        } else {
            cr.final = 1;
            cr.n_excluded = 2;
            cr.excluded = bad == 3 ? unsorted : ex;
            env.stage = bad == 3 ? FEDRECI_WIRE_STAGE_COMPLAINT : FEDRECI_WIRE_STAGE_MASKED_INPUT;
            env.body_case = FEDREC__V1__ENVELOPE__BODY_COMPLAINT_RELAY;
            env.complaint_relay = &cr;
        }
        uint8_t buf[512];
        size_t len = fedrec__v1__envelope__pack(&env, buf);
        e = NULL;
        assert_int_equal(fedreci_wire_decode(buf, len, CAP, &e), FEDREC_ERR_FORMAT);
        assert_null(e);
    }
}

static void test_ciphertexts(void **state)
{
    (void)state;
    uint8_t b1[100], b2[3];
    memset(b1, 1, sizeof b1);
    memset(b2, 2, sizeof b2);
    uint8_t cm1[FEDRECI_SECAGG_COMMIT_BYTES], cm2[FEDRECI_SECAGG_COMMIT_BYTES];
    memset(cm1, 5, sizeof cm1);
    memset(cm2, 6, sizeof cm2);
    fedreci_secagg_ciphertext cts[2] = {{42, 9, b1, sizeof b1, cm1}, {42, 77, b2, sizeof b2, cm2}};
    fedreci_wire_hdr h = hdr(FEDRECI_WIRE_STAGE_SHARE_KEYS);
    for (int relay = 0; relay < 2; relay++) {
        nng_msg *m;
        assert_int_equal(fedreci_wire_enc_ciphertexts(&m, &h, relay, cts, 2), FEDREC_OK);
        fedreci_wire_env *e = rt(m);
        assert_int_equal(e->body_case, relay ? FEDREC__V1__ENVELOPE__BODY_SHARE_RELAY
                                             : FEDREC__V1__ENVELOPE__BODY_SHARE_KEYS);
        fedreci_secagg_ciphertext *g;
        size_t n;
        assert_int_equal(fedreci_wire_get_ciphertexts(e, 5, &g, &n), FEDREC_OK);
        assert_int_equal(n, 2);
        assert_int_equal(g[1].from, 42);
        assert_int_equal(g[1].to, 77);
        assert_int_equal(g[0].len, 100);
        assert_memory_equal(g[0].bytes, b1, 100);
        assert_memory_equal(g[1].bytes, b2, 3);
        assert_memory_equal(g[0].commit, cm1, sizeof cm1);
        assert_memory_equal(g[1].commit, cm2, sizeof cm2);
        free(g);
        assert_int_equal(fedreci_wire_get_ciphertexts(e, 1, &g, &n), FEDREC_ERR_FORMAT);
        fedreci_wire_free(e);
    }
    /* an empty and an oversized ciphertext are refused */
    static uint8_t big[FEDRECI_WIRE_MAX_CT_BYTES + 1];
    fedreci_secagg_ciphertext badc[2] = {{42, 9, b1, 0, cm1}, {42, 9, big, sizeof big, cm1}};
    for (int i = 0; i < 2; i++) {
        nng_msg *m;
        fedreci_wire_env *e = NULL;
        assert_int_equal(fedreci_wire_enc_ciphertexts(&m, &h, 0, &badc[i], 1), FEDREC_OK);
        assert_int_equal(fedreci_wire_decode_msg(m, CAP, &e), FEDREC_ERR_FORMAT);
        nng_msg_free(m);
    }
}

static void test_masked(void **state)
{
    (void)state;
    enum { D = 1001 };
    uint32_t *y = malloc(D * sizeof *y);
    assert_non_null(y);
    for (uint32_t i = 0; i < D; i++)
        y[i] = i * 2654435761u;
    fedreci_wire_hdr h = hdr(FEDRECI_WIRE_STAGE_MASKED_INPUT);
    nng_msg *m;
    assert_int_equal(fedreci_wire_enc_masked(&m, &h, y, D), FEDREC_OK);
    fedreci_wire_env *e = rt(m);
    const uint32_t *g;
    assert_int_equal(fedreci_wire_get_masked(e, D, &g), FEDREC_OK);
    assert_memory_equal(g, y, D * 4);
    /* wrong-length vector for the round's d */
    assert_int_equal(fedreci_wire_get_masked(e, D + 1, &g), FEDREC_ERR_FORMAT);
    assert_int_equal(fedreci_wire_get_masked(e, D - 1, &g), FEDREC_ERR_FORMAT);
    fedreci_wire_free(e);
    /* a byte length that is not whole words */
    Fedrec__V1__Envelope env = FEDREC__V1__ENVELOPE__INIT;
    Fedrec__V1__MaskedInput mi = FEDREC__V1__MASKED_INPUT__INIT;
    env.protocol_version = FEDRECI_WIRE_PROTOCOL_VERSION;
    env.stage = FEDRECI_WIRE_STAGE_MASKED_INPUT;
    env.body_case = FEDREC__V1__ENVELOPE__BODY_MASKED_INPUT;
    env.masked_input = &mi;
    mi.y.data = (uint8_t *)y;
    mi.y.len = 4 * D - 1;
    uint8_t *buf = malloc(4 * D + 64);
    size_t len = fedrec__v1__envelope__pack(&env, buf);
    e = NULL;
    assert_int_equal(fedreci_wire_decode(buf, len, CAP, &e), FEDREC_ERR_FORMAT);
    assert_null(e);
    free(buf);
    free(y);
}

static void test_unmask(void **state)
{
    (void)state;
    uint64_t surv[3] = {1, 5, 9}, drop[2] = {2, 7};
    fedreci_wire_hdr h = hdr(FEDRECI_WIRE_STAGE_MASKED_INPUT);
    nng_msg *m;
    assert_int_equal(fedreci_wire_enc_unmask_request(&m, &h, surv, 3, drop, 2), FEDREC_OK);
    fedreci_wire_env *e = rt(m);
    const uint64_t *s, *d;
    size_t ns, nd;
    assert_int_equal(fedreci_wire_get_unmask_request(e, &s, &ns, &d, &nd), FEDREC_OK);
    assert_int_equal(ns, 3);
    assert_int_equal(nd, 2);
    assert_memory_equal(s, surv, sizeof surv);
    assert_memory_equal(d, drop, sizeof drop);
    fedreci_wire_free(e);
    /* a client both survivor and dropped decodes (the client state machine
       refuses it with refusal unmask_both_sets: test_secagg) */
    uint64_t drop2[2] = {2, 5};
    assert_int_equal(fedreci_wire_enc_unmask_request(&m, &h, surv, 3, drop2, 2), FEDREC_OK);
    e = rt(m);
    assert_int_equal(fedreci_wire_get_unmask_request(e, &s, &ns, &d, &nd), FEDREC_OK);
    assert_int_equal(nd, 2);
    assert_int_equal(d[1], 5);
    fedreci_wire_free(e);

    fedreci_secagg_reveal rv[2];
    memset(rv, 0, sizeof rv);
    rv[0].about = 5;
    rv[0].kind = FEDRECI_SECAGG_SHARE_B;
    memset(rv[0].share, 0x11, 32);
    rv[1].about = 7;
    rv[1].kind = FEDRECI_SECAGG_SHARE_SK;
    memset(rv[1].share, 0x22, 32);
    memset(rv[0].opening, 0x33, 32);
    memset(rv[1].opening, 0x44, 32);
    h.stage = FEDRECI_WIRE_STAGE_UNMASK;
    assert_int_equal(fedreci_wire_enc_unmask(&m, &h, rv, 2), FEDREC_OK);
    e = rt(m);
    fedreci_secagg_reveal *g;
    size_t n;
    assert_int_equal(fedreci_wire_get_reveals(e, 10, &g, &n), FEDREC_OK);
    assert_int_equal(n, 2);
    assert_memory_equal(g, rv, sizeof rv);
    free(g);
    assert_int_equal(fedreci_wire_get_reveals(e, 1, &g, &n), FEDREC_ERR_FORMAT);
    fedreci_wire_free(e);
    /* unknown share kind */
    rv[1].kind = 2;
    assert_int_equal(fedreci_wire_enc_unmask(&m, &h, rv, 2), FEDREC_OK);
    assert_int_equal(fedreci_wire_decode_msg(m, CAP, &e), FEDREC_ERR_FORMAT);
    nng_msg_free(m);
}

/* Signs m (a copy of its bytes is kept in buf/len) and decodes it. */
static fedreci_wire_env *signed_rt(nng_msg *m, const fedreci_wire_hdr *h, const uint8_t sk[64],
                                   uint8_t **buf, size_t *len)
{
    assert_int_equal(fedreci_wire_sign(m, h, sk), FEDREC_OK);
    /* a second signature is refused and changes nothing */
    size_t before = nng_msg_len(m);
    assert_int_equal(fedreci_wire_sign(m, h, sk), FEDREC_ERR_INVALID);
    assert_int_equal(nng_msg_len(m), before);
    *len = nng_msg_len(m);
    *buf = malloc(*len);
    assert_non_null(*buf);
    memcpy(*buf, nng_msg_body(m), *len);
    fedreci_wire_env *e = NULL;
    assert_int_equal(fedreci_wire_decode_msg(m, CAP, &e), FEDREC_OK);
    nng_msg_free(m);
    return e;
}

static void test_signatures(void **state)
{
    (void)state;
    uint8_t pk[32], sk[64], pk2[32], sk2[64];
    crypto_sign_keypair(pk, sk);
    crypto_sign_keypair(pk2, sk2);
    enum { D = 257 };
    uint32_t y[D];
    for (int i = 0; i < D; i++)
        y[i] = (uint32_t)i * 2654435761u;
    fedreci_wire_hdr h = {fedreci_secagg_id_from_pk(pk), 12, FEDRECI_WIRE_STAGE_MASKED_INPUT};
    nng_msg *m;
    uint8_t *buf;
    size_t len;
    assert_int_equal(fedreci_wire_enc_masked(&m, &h, y, D), FEDREC_OK);
    size_t unsigned_len = nng_msg_len(m);
    fedreci_wire_env *e = signed_rt(m, &h, sk, &buf, &len);
    assert_int_equal(len, unsigned_len + FEDRECI_WIRE_SIG_SUFFIX);
    assert_int_equal(e->sig.len, 64);
    assert_int_equal(fedreci_wire_verify(buf, len, e, pk), FEDREC_OK);
    /* another key */
    assert_int_equal(fedreci_wire_verify(buf, len, e, pk2), FEDREC_ERR_SIGNATURE);
    fedreci_wire_free(e);
    /* one word of the payload changed: still a valid envelope, no longer verifies */
    buf[len / 2] ^= 1;
    e = NULL;
    assert_int_equal(fedreci_wire_decode(buf, len, CAP, &e), FEDREC_OK);
    assert_int_equal(fedreci_wire_verify(buf, len, e, pk), FEDREC_ERR_SIGNATURE);
    fedreci_wire_free(e);
    free(buf);

    /* the same payload for another round or stage, with the signature of the
       original moved over: refused (round and stage are signed) */
    uint8_t *sig_src;
    size_t sig_len;
    assert_int_equal(fedreci_wire_enc_masked(&m, &h, y, D), FEDREC_OK);
    e = signed_rt(m, &h, sk, &sig_src, &sig_len);
    fedreci_wire_free(e);
    fedreci_wire_hdr h2 = h;
    h2.round_id = 13;
    assert_int_equal(fedreci_wire_enc_masked(&m, &h2, y, D), FEDREC_OK);
    assert_int_equal(
        nng_msg_append(m, sig_src + sig_len - FEDRECI_WIRE_SIG_SUFFIX, FEDRECI_WIRE_SIG_SUFFIX), 0);
    len = nng_msg_len(m);
    buf = malloc(len);
    assert_non_null(buf);
    memcpy(buf, nng_msg_body(m), len);
    e = NULL;
    assert_int_equal(fedreci_wire_decode_msg(m, CAP, &e), FEDREC_OK);
    nng_msg_free(m);
    assert_int_equal(e->round_id, 13);
    assert_int_equal(fedreci_wire_verify(buf, len, e, pk), FEDREC_ERR_SIGNATURE);
    fedreci_wire_free(e);
    free(buf);
    free(sig_src);

    /* an unsigned request */
    assert_int_equal(fedreci_wire_enc_model_request(&m, &h, 3), FEDREC_OK);
    len = nng_msg_len(m);
    buf = malloc(len);
    assert_non_null(buf);
    memcpy(buf, nng_msg_body(m), len);
    h.stage = FEDRECI_WIRE_STAGE_MODEL;
    e = NULL;
    assert_int_equal(fedreci_wire_decode(buf, len, CAP, &e), FEDREC_ERR_FORMAT); /* stage 5 */
    free(buf);
    nng_msg_free(m);
    assert_int_equal(fedreci_wire_enc_model_request(&m, &h, 3), FEDREC_OK);
    len = nng_msg_len(m);
    buf = malloc(len);
    assert_non_null(buf);
    memcpy(buf, nng_msg_body(m), len);
    nng_msg_free(m);
    assert_int_equal(fedreci_wire_decode(buf, len, CAP, &e), FEDREC_OK);
    assert_int_equal(fedreci_wire_verify(buf, len, e, pk), FEDREC_ERR_SIGNATURE);
    fedreci_wire_free(e);
    free(buf);

    /* a signature field of the wrong length is a format error; a signature
       followed by another field is not "last" and is refused */
    assert_int_equal(fedreci_wire_enc_model_request(&m, &h, 3), FEDREC_OK);
    static const uint8_t short_sig[5] = {0xA2, 0x06, 0x02, 1, 2};
    assert_int_equal(nng_msg_append(m, short_sig, sizeof short_sig), 0);
    e = NULL;
    assert_int_equal(fedreci_wire_decode_msg(m, CAP, &e), FEDREC_ERR_FORMAT);
    nng_msg_free(m);
    assert_int_equal(fedreci_wire_enc_model_request(&m, &h, 3), FEDREC_OK);
    assert_int_equal(fedreci_wire_sign(m, &h, sk), FEDREC_OK);
    static const uint8_t trailer[2] = {0x18, 0x05}; /* round_id = 5 after the signature */
    assert_int_equal(nng_msg_append(m, trailer, sizeof trailer), 0);
    len = nng_msg_len(m);
    buf = malloc(len);
    assert_non_null(buf);
    memcpy(buf, nng_msg_body(m), len);
    nng_msg_free(m);
    assert_int_equal(fedreci_wire_decode(buf, len, CAP, &e), FEDREC_OK);
    assert_int_equal(fedreci_wire_verify(buf, len, e, pk), FEDREC_ERR_SIGNATURE);
    fedreci_wire_free(e);
    free(buf);
    /* the masked input's MAC under the round key */
    uint8_t key[32], key2[32];
    randombytes_buf(key, sizeof key);
    randombytes_buf(key2, sizeof key2);
    h.stage = FEDRECI_WIRE_STAGE_MASKED_INPUT;
    assert_int_equal(fedreci_wire_enc_masked(&m, &h, y, D), FEDREC_OK);
    assert_int_equal(fedreci_wire_mac(m, key), FEDREC_OK);
    assert_int_equal(fedreci_wire_mac(m, key), FEDREC_ERR_INVALID);
    assert_int_equal(fedreci_wire_sign(m, &h, sk), FEDREC_ERR_INVALID);
    len = nng_msg_len(m);
    buf = malloc(len);
    assert_non_null(buf);
    memcpy(buf, nng_msg_body(m), len);
    nng_msg_free(m);
    e = NULL;
    assert_int_equal(fedreci_wire_decode(buf, len, CAP, &e), FEDREC_OK);
    assert_int_equal(e->mac.len, FEDRECI_WIRE_MAC_BYTES);
    assert_int_equal(fedreci_wire_verify_mac(buf, len, e, key), FEDREC_OK);
    assert_int_equal(fedreci_wire_verify_mac(buf, len, e, key2), FEDREC_ERR_SIGNATURE);
    assert_int_equal(fedreci_wire_verify(buf, len, e, pk), FEDREC_ERR_SIGNATURE);
    fedreci_wire_free(e);
    buf[len / 3] ^= 4; /* a payload word */
    assert_int_equal(fedreci_wire_decode(buf, len, CAP, &e), FEDREC_OK);
    assert_int_equal(fedreci_wire_verify_mac(buf, len, e, key), FEDREC_ERR_SIGNATURE);
    fedreci_wire_free(e);
    free(buf);
    /* ids are the first 8 bytes of BLAKE2b(pk), little-endian */
    uint8_t hh[32];
    crypto_generichash(hh, 32, pk, 32, NULL, 0);
    uint64_t want = 0;
    for (int i = 7; i >= 0; i--)
        want = (want << 8) | hh[i];
    assert_int_equal(fedreci_secagg_id_from_pk(pk), want);
}

static void test_small_replies(void **state)
{
    (void)state;
    fedreci_wire_hdr h = hdr(FEDRECI_WIRE_STAGE_UNMASK);
    nng_msg *m;
    assert_int_equal(fedreci_wire_enc_round_result(&m, &h, 1, 12, 9, NULL), FEDREC_OK);
    fedreci_wire_env *e = rt(m);
    assert_true(e->round_result->completed);
    assert_int_equal(e->round_result->model_version, 12);
    assert_int_equal(e->round_result->survivors, 9);
    fedreci_wire_free(e);
    assert_int_equal(fedreci_wire_enc_error(&m, &h, FEDREC_ERR_STAGE, "stage 5 is closed"),
                     FEDREC_OK);
    e = rt(m);
    assert_int_equal(e->error->code, FEDREC_ERR_STAGE);
    assert_string_equal(e->error->text, "stage 5 is closed");
    fedreci_wire_free(e);
    assert_int_equal(fedreci_wire_enc_retry(&m, &h, 250), FEDREC_OK);
    e = rt(m);
    assert_int_equal(e->retry_after->ms, 250);
    fedreci_wire_free(e);
}

static void test_envelope_rules(void **state)
{
    (void)state;
    uint8_t buf[256];
    Fedrec__V1__Envelope env = FEDREC__V1__ENVELOPE__INIT;
    Fedrec__V1__CheckIn ci = FEDREC__V1__CHECK_IN__INIT;
    uint8_t pk[32] = {1};
    ci.identity_pk.data = pk;
    ci.identity_pk.len = 32;
    env.protocol_version = FEDRECI_WIRE_PROTOCOL_VERSION;
    env.stage = FEDRECI_WIRE_STAGE_CHECKIN;
    env.body_case = FEDREC__V1__ENVELOPE__BODY_CHECK_IN;
    env.check_in = &ci;
    fedreci_wire_env *e = NULL;
    size_t len = fedrec__v1__envelope__pack(&env, buf);
    assert_int_equal(fedreci_wire_decode(buf, len, CAP, &e), FEDREC_OK);
    fedreci_wire_free(e);
    e = NULL;
    /* another protocol version */
    env.protocol_version = FEDRECI_WIRE_PROTOCOL_VERSION + 1;
    len = fedrec__v1__envelope__pack(&env, buf);
    assert_int_equal(fedreci_wire_decode(buf, len, CAP, &e), FEDREC_ERR_UNSUPPORTED);
    /* the previous version (version 1 had no model binding in the advert) */
    env.protocol_version = FEDRECI_WIRE_PROTOCOL_VERSION - 1;
    len = fedrec__v1__envelope__pack(&env, buf);
    assert_int_equal(fedreci_wire_decode(buf, len, CAP, &e), FEDREC_ERR_UNSUPPORTED);
    /* a body sent under another stage */
    env.protocol_version = FEDRECI_WIRE_PROTOCOL_VERSION;
    env.stage = FEDRECI_WIRE_STAGE_MASKED_INPUT;
    len = fedrec__v1__envelope__pack(&env, buf);
    assert_int_equal(fedreci_wire_decode(buf, len, CAP, &e), FEDREC_ERR_FORMAT);
    /* a short identity key */
    env.stage = FEDRECI_WIRE_STAGE_CHECKIN;
    ci.identity_pk.len = 31;
    len = fedrec__v1__envelope__pack(&env, buf);
    assert_int_equal(fedreci_wire_decode(buf, len, CAP, &e), FEDREC_ERR_FORMAT);
    /* no body */
    env.body_case = FEDREC__V1__ENVELOPE__BODY__NOT_SET;
    len = fedrec__v1__envelope__pack(&env, buf);
    assert_int_equal(fedreci_wire_decode(buf, len, CAP, &e), FEDREC_ERR_FORMAT);
    /* empty input and NULL */
    assert_int_equal(fedreci_wire_decode(buf, 0, CAP, &e), FEDREC_ERR_FORMAT);
    assert_int_equal(fedreci_wire_decode(NULL, 5, CAP, &e), FEDREC_ERR_INVALID);
    assert_null(e);
}

static void test_random_bytes(void **state)
{
    (void)state;
    /* deterministic pseudo-random buffers, some with a valid-looking start */
    uint8_t seed[randombytes_SEEDBYTES] = {7};
    uint8_t *buf = malloc(4096);
    assert_non_null(buf);
    for (int i = 0; i < 2000; i++) {
        seed[1] = (uint8_t)i;
        seed[2] = (uint8_t)(i >> 8);
        size_t len = 1 + (size_t)(i * 37) % 4096;
        randombytes_buf_deterministic(buf, len, seed);
        if (i % 2) {
            buf[0] = 0x08; /* protocol_version = the current one */
            if (len > 1)
                buf[1] = (uint8_t)FEDRECI_WIRE_PROTOCOL_VERSION;
        }
        fedreci_wire_env *e = NULL;
        fedrec_err r = fedreci_wire_decode(buf, len, CAP, &e);
        assert_int_not_equal(r, FEDREC_OK);
        assert_null(e);
    }
    free(buf);
}

static void test_cap(void **state)
{
    (void)state;
    /* the cap covers a masked input and a model reply of the deployment */
    size_t cap = fedreci_wire_cap(3665, 32, 4338, 3665 * 12);
    assert_true(cap >= (3665u * 32 + 1) * 4 + 16);
    assert_true(cap >= 3665u * 32 * 4 + 32 * 32 * 4 + 3665 * 12);
    assert_true(cap < 4u * 1024 * 1024);
    /* saturation instead of overflow */
    assert_true(fedreci_wire_cap(UINT32_MAX, UINT32_MAX, UINT32_MAX, SIZE_MAX) <= SIZE_MAX / 2);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checkin),
        cmocka_unit_test(test_checkin_reply),
        cmocka_unit_test(test_model),
        cmocka_unit_test(test_advertise_roster),
        cmocka_unit_test(test_seed_and_consistency),
        cmocka_unit_test(test_complaints),
        cmocka_unit_test(test_ciphertexts),
        cmocka_unit_test(test_masked),
        cmocka_unit_test(test_unmask),
        cmocka_unit_test(test_signatures),
        cmocka_unit_test(test_small_replies),
        cmocka_unit_test(test_envelope_rules),
        cmocka_unit_test(test_random_bytes),
        cmocka_unit_test(test_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
