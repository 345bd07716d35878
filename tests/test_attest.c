/* The attestation hook (issue 14, docs/threat-model.md "Sybils"): a
 * coordinator engine with an attestation verifier (fedreci_coord_config
 * attest) admits only check-ins whose identity key something vouches for.
 *
 * The verifier here is a test double of an attestation service: a token is
 * the Ed25519 signature of a test "attestation authority" over
 * "fedrec-test-attestation" || identity public key, and the verifier checks
 * it with the authority's public key (a real deployment would check a Play
 * Integrity or App Attest statement over the same key the same way, with
 * keys it already holds).
 *
 * Shoppers are client library handles (fedrec_client_set_attestation,
 * fedrec_client_sync over nng). Three attested shoppers and three Sybils
 * (no token; a token signed by another key; an attested shopper's token
 * copied to another identity key) sync at once: each Sybil is refused at
 * check-in with FEDREC_ERR_SIGNATURE naming the reason and is never
 * registered; the attested three form the cohort and complete the round.
 * The same engine without a verifier admits a shopper without a token (the
 * default, taken on first use). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "client/client_internal.h"
#include "core/err.h"
#include "harness_engine.h"

static const uint8_t KEY[FEDREC_STORE_KEY_BYTES] = {9, 9, 9};
static const char LABEL[] = "fedrec-test-attestation";

static uint8_t authority_pk[32], authority_sk[64];
static uint8_t rogue_pk[32], rogue_sk[64];
static int verifier_calls;

/* The token: sign(LABEL || identity_pk) by sk. */
static void make_token(const uint8_t identity_pk[32], const uint8_t *sk, uint8_t token[64])
{
    uint8_t msg[sizeof LABEL - 1 + 32];
    memcpy(msg, LABEL, sizeof LABEL - 1);
    memcpy(msg + sizeof LABEL - 1, identity_pk, 32);
    crypto_sign_detached(token, NULL, msg, sizeof msg, sk);
}

/* The verifier double (fedreci_coord_config.attest). */
static fedrec_err verify(void *arg, uint64_t client_id, const uint8_t identity_pk[32],
                         const uint8_t *token, size_t len, char *why, size_t why_cap)
{
    (void)arg;
    (void)client_id;
    verifier_calls++;
    if (!token || len != 64) {
        snprintf(why, why_cap, "no token of 64 bytes (got %zu)", len);
        return FEDREC_ERR_SIGNATURE;
    }
    uint8_t msg[sizeof LABEL - 1 + 32];
    memcpy(msg, LABEL, sizeof LABEL - 1);
    memcpy(msg + sizeof LABEL - 1, identity_pk, 32);
    if (crypto_sign_verify_detached(token, msg, sizeof msg, authority_pk) != 0) {
        snprintf(why, why_cap, "the token is not the authority's signature over this key");
        return FEDREC_ERR_SIGNATURE;
    }
    return FEDREC_OK;
}

/* Floors a test cohort of 3 meets. */
static const uint32_t FLOORS3[3] = {3, 2, 2};

static fedreci_coord *start(th_model *m, const char *url, const char **urls, int with_verifier,
                            uint32_t cohort)
{
    th_model_init(m, 12, 2, 37, 19, 0.02f, "C%03d");
    fedreci_coord_config cfg;
    th_coord_config(&cfg, urls, url);
    cfg.n_contexts = 32;
    cfg.cohort_size = cohort;
    cfg.min_cohort = cohort;
    for (int s = 0; s < 4; s++)
        cfg.stage_ms[s] = 30000;
    cfg.checkin_window_ms = 60000;
    cfg.max_rounds = 1;
    if (with_verifier)
        cfg.attest = verify;
    fedreci_coord_model sm = th_model_start(m, 1);
    return th_coord_start(&cfg, NULL, &sm);
}

static void test_sybils_refused(void **state)
{
    (void)state;
    crypto_sign_keypair(authority_pk, authority_sk);
    crypto_sign_keypair(rogue_pk, rogue_sk);
    verifier_calls = 0;
    static th_model m;
    const char *url = "inproc://fedrec-test-attest";
    const char *urls[1];
    fedreci_coord *coord = start(&m, url, urls, 1, 3);
    th_shopper s[6];
    uint8_t tok[6][64];
    for (int i = 0; i < 6; i++)
        th_shopper_open(&s[i], "attest", url, KEY, FLOORS3, m.codes[i]);
    for (int i = 0; i < 3; i++) { /* attested */
        make_token(s[i].pk, authority_sk, tok[i]);
        assert_int_equal(fedrec_client_set_attestation(s[i].c, tok[i], 64), FEDREC_OK);
    }
    /* s[3]: no token; s[4]: signed by another key; s[5]: s[0]'s token */
    make_token(s[4].pk, rogue_sk, tok[4]);
    assert_int_equal(fedrec_client_set_attestation(s[4].c, tok[4], 64), FEDREC_OK);
    assert_int_equal(fedrec_client_set_attestation(s[5].c, tok[0], 64), FEDREC_OK);
    assert_int_equal(fedrec_client_set_attestation(s[5].c, NULL, 1), FEDREC_ERR_INVALID);
    th_shoppers_sync(s, 6, 60000);
    assert_int_equal(fedreci_coord_wait(coord, 60000), FEDREC_OK);
    static const char *const why[3] = {"no token of 64 bytes (got 0)",
                                       "not the authority's signature",
                                       "not the authority's signature"};
    for (int i = 0; i < 6; i++) {
        uint64_t upd = 0, tot = 0;
        fedrec_err be = fedreci_coord_client_bytes(coord, s[i].id, &upd, &tot);
        if (i < 3) {
            if (s[i].err)
                fail_msg("attested shopper %d: %s: %s", i, fedrec_strerror(s[i].err), s[i].msg);
            assert_int_equal(s[i].res.round_outcome, FEDREC_OK);
            assert_int_equal(s[i].res.took_part, 1);
            assert_int_equal(be, FEDREC_OK);
            assert_true(upd > 0);
        } else {
            assert_int_equal(s[i].err, FEDREC_ERR_SIGNATURE);
            if (!strstr(s[i].msg, "identity key not attested") || !strstr(s[i].msg, why[i - 3]))
                fail_msg("Sybil %d: %s", i, s[i].msg);
            assert_int_equal(be, FEDREC_ERR_NOT_FOUND); /* never registered */
        }
    }
    fedreci_coord_status st;
    fedreci_coord_get_status(coord, &st);
    assert_int_equal(st.rounds_completed, 1);
    assert_int_equal(st.clients_known, 3);
    assert_true(verifier_calls >= 6);
    fedreci_coord_destroy(coord);
    for (int i = 0; i < 6; i++)
        th_shopper_close(&s[i]);
}

/* Without a verifier (the default) a key is taken on first use: a shopper
 * without a token is admitted: three of them complete a round. */
static void test_no_verifier_admits(void **state)
{
    (void)state;
    static th_model m;
    const char *url = "inproc://fedrec-test-attest-none";
    const char *urls[1];
    fedreci_coord *coord = start(&m, url, urls, 0, 3);
    th_shopper s[3];
    for (int i = 0; i < 3; i++)
        th_shopper_open(&s[i], "attest", url, KEY, FLOORS3, m.codes[i]);
    th_shoppers_sync(s, 3, 60000);
    for (int i = 0; i < 3; i++) {
        if (s[i].err)
            fail_msg("shopper %d: %s: %s", i, fedrec_strerror(s[i].err), s[i].msg);
        assert_int_equal(s[i].res.round_outcome, FEDREC_OK);
    }
    fedreci_coord_destroy(coord);
    for (int i = 0; i < 3; i++)
        th_shopper_close(&s[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sybils_refused),
        cmocka_unit_test(test_no_verifier_admits),
    };
    return TH_RUN(tests);
}
