/* Tests for coordinator/link (issue 20): the master-aggregator messages
 * round-trip field for field; the decoders refuse, naming the field,
 * truncated bytes, a signature that does not verify, a protocol version
 * other than 2, a sum of the wrong length, an oversized message, and an
 * Assign whose members, keys, stages or model break the rules; a reply
 * is refused unless the master signed it for the request it answers (a
 * forged, misdirected, replayed, tampered or unsigned reply). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "coordinator/link.h"
#include "core/err.h"

static uint8_t PK[32], SK[64];
static uint8_t MPK[32], MSK[64]; /* the master's */

static int setup(void **state)
{
    (void)state;
    if (sodium_init() < 0)
        return -1;
    crypto_sign_seed_keypair(PK, SK, (const uint8_t *)"test link aggregator key 0000001");
    crypto_sign_seed_keypair(MPK, MSK, (const uint8_t *)"test link master key 00000000001");
    return 0;
}

static fedrec_err dec_req(nng_msg *m, uint32_t d, fedreci_link_req *q)
{
    fedrec_err e = fedreci_link_dec_request(nng_msg_body(m), nng_msg_len(m), 1u << 20, d, q);
    return e;
}

static void test_poll_and_result_round_trip(void **state)
{
    (void)state;
    nng_msg *m;
    uint8_t cpk[32];
    memset(cpk, 0x33, sizeof cpk);
    assert_int_equal(fedreci_link_enc_poll(&m, SK, 41, "tcp://10.1.2.3:7451", cpk, 9, 500),
                     FEDREC_OK);
    fedreci_link_req q;
    assert_int_equal(dec_req(m, 7, &q), FEDREC_OK);
    assert_true(q.is_poll);
    assert_memory_equal(q.agg_pk, PK, 32);
    assert_int_equal(q.seq, 41);
    assert_string_equal(q.url, "tcp://10.1.2.3:7451");
    assert_memory_equal(q.coord_pk, cpk, 32);
    assert_int_equal(q.model_version, 9);
    assert_int_equal(q.max_group, 500);
    fedreci_link_req_free(&q);
    /* one flipped byte anywhere in the request: the signature fails */
    uint8_t *b = nng_msg_body(m);
    b[nng_msg_len(m) / 2] ^= 0x01;
    fedrec_err e = dec_req(m, 7, &q);
    assert_true(e == FEDREC_ERR_SIGNATURE || e == FEDREC_ERR_FORMAT);
    /* truncated */
    nng_msg_chop(m, 10);
    assert_int_equal(dec_req(m, 7, &q), FEDREC_ERR_FORMAT);
    nng_msg_free(m);

    uint32_t sum[7] = {1, 0xfffffffeu, 3, 4, 5, 6, 2};
    fedreci_link_result r;
    memset(&r, 0, sizeof r);
    r.round_id = 12;
    r.group = 2;
    r.completed = 1;
    r.reason = "";
    r.survivors = 2;
    r.advertised = 3;
    r.shared = 3;
    r.unmasked = 2;
    r.dropped[1] = 1;
    r.stage_ms[2] = 77;
    r.bytes_in = 1000;
    r.sum = sum;
    r.d = 7;
    assert_int_equal(fedreci_link_enc_result(&m, SK, 42, &r), FEDREC_OK);
    assert_int_equal(dec_req(m, 7, &q), FEDREC_OK);
    assert_false(q.is_poll);
    assert_int_equal(q.result.round_id, 12);
    assert_int_equal(q.result.group, 2);
    assert_int_equal(q.result.survivors, 2);
    assert_int_equal(q.result.advertised, 3);
    assert_int_equal(q.result.dropped[1], 1);
    assert_int_equal(q.result.stage_ms[2], 77);
    assert_memory_equal(q.result.sum, sum, sizeof sum);
    fedreci_link_req_free(&q);
    /* the master expects 8 words: the sum is refused, naming its length */
    assert_int_equal(dec_req(m, 8, &q), FEDREC_ERR_FORMAT);
    assert_non_null(strstr(fedrec_errmsg(), "GroupResult.sum"));
    /* over the cap */
    assert_int_equal(fedreci_link_dec_request(nng_msg_body(m), nng_msg_len(m), 16, 7, &q),
                     FEDREC_ERR_TOO_BIG);
    nng_msg_free(m);
    /* a failed group names its withholders under the step that aborted it
       (seed, consistency, unmask): each list round-trips and the others
       stay empty; unsorted ones, any in a completed group, and lists of two
       steps at once are refused */
    static const char *const wname[3] = {"seed_withheld", "consistency_withheld",
                                         "unmask_withheld"};
    uint64_t wh[3] = {5, UINT64_C(0xfedcba9876543210), 9};
    uint64_t seq = 44;
    for (int k = 0; k < 3; k++) {
        r.completed = 0;
        r.reason = "stage 0 seed step";
        r.sum = NULL;
        memset(r.withheld, 0, sizeof r.withheld);
        memset(r.n_withheld, 0, sizeof r.n_withheld);
        r.withheld[k] = wh;
        r.n_withheld[k] = 2;
        assert_int_equal(fedreci_link_enc_result(&m, SK, seq++, &r), FEDREC_OK);
        assert_int_equal(dec_req(m, 7, &q), FEDREC_OK);
        assert_false(q.result.completed);
        for (int j = 0; j < 3; j++)
            assert_int_equal(q.result.n_withheld[j], j == k ? 2 : 0);
        assert_true(q.result.withheld[k][0] == 5 &&
                    q.result.withheld[k][1] == UINT64_C(0xfedcba9876543210));
        fedreci_link_req_free(&q);
        nng_msg_free(m);
        r.n_withheld[k] = 3; /* ..., 9: not ascending */
        assert_int_equal(fedreci_link_enc_result(&m, SK, seq++, &r), FEDREC_OK);
        assert_int_equal(dec_req(m, 7, &q), FEDREC_ERR_FORMAT);
        assert_non_null(strstr(fedrec_errmsg(), wname[k]));
        assert_non_null(strstr(fedrec_errmsg(), "not strictly ascending"));
        nng_msg_free(m);
        r.completed = 1;
        r.sum = sum;
        r.n_withheld[k] = 1;
        assert_int_equal(fedreci_link_enc_result(&m, SK, seq++, &r), FEDREC_OK);
        assert_int_equal(dec_req(m, 7, &q), FEDREC_ERR_FORMAT);
        assert_non_null(strstr(fedrec_errmsg(), wname[k]));
        assert_non_null(strstr(fedrec_errmsg(), "in a completed group"));
        nng_msg_free(m);
    }
    r.completed = 0;
    r.sum = NULL;
    r.withheld[0] = r.withheld[2] = wh;
    r.n_withheld[0] = r.n_withheld[2] = 1;
    r.n_withheld[1] = 0;
    assert_int_equal(fedreci_link_enc_result(&m, SK, seq++, &r), FEDREC_OK);
    assert_int_equal(dec_req(m, 7, &q), FEDREC_ERR_FORMAT);
    assert_non_null(strstr(fedrec_errmsg(), "more than one step"));
    nng_msg_free(m);
    memset(r.withheld, 0, sizeof r.withheld);
    memset(r.n_withheld, 0, sizeof r.n_withheld);
    /* a URL over 255 bytes is refused by the encoder */
    char url[300];
    memset(url, 'u', sizeof url - 1);
    url[sizeof url - 1] = 0;
    assert_int_equal(fedreci_link_enc_poll(&m, SK, 43, url, cpk, 9, 500), FEDREC_ERR_INVALID);
}

/* An AggSigned of rq, correctly signed with SK. */
static nng_msg *signed_msg(Fedrec__Groups__V1__AggRequest *rq)
{
    size_t ql = protobuf_c_message_get_packed_size(&rq->base);
    uint8_t *buf = malloc(13 + ql);
    assert_non_null(buf);
    memcpy(buf, "fedrec.v1.agg", 13);
    protobuf_c_message_pack(&rq->base, buf + 13);
    uint8_t sig[64];
    crypto_sign_detached(sig, NULL, buf, 13 + ql, SK);
    Fedrec__Groups__V1__AggSigned s = FEDREC__GROUPS__V1__AGG_SIGNED__INIT;
    s.req.data = buf + 13;
    s.req.len = ql;
    s.sig.data = sig;
    s.sig.len = 64;
    nng_msg *m;
    assert_int_equal(nng_msg_alloc(&m, protobuf_c_message_get_packed_size(&s.base)), 0);
    protobuf_c_message_pack(&s.base, nng_msg_body(m));
    free(buf);
    return m;
}

static void test_request_refusals(void **state)
{
    (void)state;
    Fedrec__Groups__V1__Poll p = FEDREC__GROUPS__V1__POLL__INIT;
    uint8_t cpk[32] = {1};
    p.url = (char *)"tcp://a:1";
    p.coord_pk.data = cpk;
    p.coord_pk.len = 32;
    Fedrec__Groups__V1__AggRequest rq = FEDREC__GROUPS__V1__AGG_REQUEST__INIT;
    rq.protocol_version = 3;
    rq.agg_pk.data = PK;
    rq.agg_pk.len = 32;
    rq.seq = 1;
    rq.body_case = FEDREC__GROUPS__V1__AGG_REQUEST__BODY_POLL;
    rq.poll = &p;
    fedreci_link_req q;
    nng_msg *m = signed_msg(&rq);
    assert_int_equal(dec_req(m, 7, &q), FEDREC_ERR_UNSUPPORTED);
    nng_msg_free(m);
    /* an aggregator of link version 1 (it takes unsigned replies) */
    rq.protocol_version = 1;
    m = signed_msg(&rq);
    assert_int_equal(dec_req(m, 7, &q), FEDREC_ERR_UNSUPPORTED);
    assert_non_null(strstr(fedrec_errmsg(), "protocol_version 1 (2 expected)"));
    nng_msg_free(m);
    rq.protocol_version = FEDRECI_LINK_VERSION;
    m = signed_msg(&rq);
    assert_int_equal(dec_req(m, 7, &q), FEDREC_OK);
    fedreci_link_req_free(&q);
    nng_msg_free(m);
    p.coord_pk.len = 31;
    m = signed_msg(&rq);
    assert_int_equal(dec_req(m, 7, &q), FEDREC_ERR_FORMAT);
    assert_non_null(strstr(fedrec_errmsg(), "coord_pk"));
    nng_msg_free(m);
    p.coord_pk.len = 32;
    p.url = (char *)"";
    m = signed_msg(&rq);
    assert_int_equal(dec_req(m, 7, &q), FEDREC_ERR_FORMAT);
    assert_non_null(strstr(fedrec_errmsg(), "url"));
    nng_msg_free(m);
    rq.body_case = FEDREC__GROUPS__V1__AGG_REQUEST__BODY__NOT_SET;
    rq.poll = NULL;
    m = signed_msg(&rq);
    assert_int_equal(dec_req(m, 7, &q), FEDREC_ERR_FORMAT);
    nng_msg_free(m);
}

static void assign_init(fedreci_link_assign *a, uint64_t *ids, uint8_t *pks, float *y)
{
    memset(a, 0, sizeof *a);
    a->round_id = 5;
    a->group = 1;
    a->n_groups = 3;
    a->p.round_id = 5;
    a->p.n = 4;
    a->p.k = 3;
    a->p.t = 2;
    a->p.d = 2 * 3 + 1;
    a->p.clip = 16;
    a->p.scale = 1024;
    a->p.max_weight = 1;
    a->p.graph_seed[3] = 7;
    a->model_version = 8;
    for (int i = 0; i < 4; i++)
        ids[i] = 100 + 10 * (uint64_t)i;
    a->ids = ids;
    for (int i = 0; i < 4 * 32; i++)
        pks[i] = (uint8_t)i;
    a->pks = pks;
    for (int s = 0; s < 4; s++)
        a->stage_ms[s] = 1000 + (uint32_t)s;
    a->has_model = 1;
    a->n_items = 2;
    a->k = 3;
    for (int i = 0; i < 6; i++)
        y[i] = (float)i - 2.5f;
    a->factors = (const uint8_t *)y; /* little-endian hosts (x86-64, ARM64) */
}

/* Seals reply m as the master does for request (PK, seq) and decodes it
 * as that aggregator would. */
static fedrec_err seal_dec(nng_msg *m, uint64_t seq, fedreci_link_reply *r)
{
    assert_int_equal(fedreci_link_seal_reply(&m, MSK, PK, seq), FEDREC_OK);
    fedrec_err e =
        fedreci_link_dec_reply(nng_msg_body(m), nng_msg_len(m), 1u << 20, MPK, PK, seq, r);
    nng_msg_free(m);
    return e;
}

static fedrec_err dec_assign(const fedreci_link_assign *a, fedreci_link_reply *r)
{
    nng_msg *m;
    assert_int_equal(fedreci_link_enc_assign(&m, a), FEDREC_OK);
    return seal_dec(m, 77, r);
}

static void test_assign(void **state)
{
    (void)state;
    uint64_t ids[4];
    uint8_t pks[4 * 32];
    float y[6];
    fedreci_link_assign a;
    assign_init(&a, ids, pks, y);
    fedreci_link_reply r;
    assert_int_equal(dec_assign(&a, &r), FEDREC_OK);
    const fedreci_link_assign *g = &r.assign;
    assert_int_equal(g->round_id, 5);
    assert_int_equal(g->group, 1);
    assert_int_equal(g->n_groups, 3);
    assert_int_equal(g->p.n, 4);
    assert_int_equal(g->p.k, 3);
    assert_int_equal(g->p.t, 2);
    assert_int_equal(g->p.d, 7);
    assert_true(g->p.clip == 16 && g->p.scale == 1024);
    assert_memory_equal(g->p.graph_seed, a.p.graph_seed, 32);
    assert_memory_equal(g->ids, ids, sizeof ids);
    assert_memory_equal(g->pks, pks, sizeof pks);
    assert_memory_equal(g->stage_ms, a.stage_ms, sizeof a.stage_ms);
    assert_true(g->has_model);
    assert_memory_equal(g->factors, y, sizeof y);
    fedreci_link_reply_free(&r);
    /* members not ascending */
    ids[2] = 105;
    assert_int_equal(dec_assign(&a, &r), FEDREC_ERR_FORMAT);
    assert_non_null(strstr(fedrec_errmsg(), "member_ids"));
    ids[2] = 120;
    /* group index not below the number of groups */
    a.group = 3;
    assert_int_equal(dec_assign(&a, &r), FEDREC_ERR_FORMAT);
    a.group = 1;
    /* parameters that break the SecAgg rules (t <= k / 2) */
    a.p.t = 1;
    assert_int_equal(dec_assign(&a, &r), FEDREC_ERR_FORMAT);
    assert_non_null(strstr(fedrec_errmsg(), "Assign parameters"));
    a.p.t = 2;
    /* a zero stage deadline */
    a.stage_ms[2] = 0;
    assert_int_equal(dec_assign(&a, &r), FEDREC_ERR_FORMAT);
    a.stage_ms[2] = 1002;
    /* a model whose shape is not d */
    a.k = 2;
    assert_int_equal(dec_assign(&a, &r), FEDREC_ERR_FORMAT);
    assert_non_null(strstr(fedrec_errmsg(), "n_items x k + 1"));
    a.k = 3;
    /* retired rows not below n_items */
    uint32_t retired[1] = {2};
    a.retired = retired;
    a.n_retired = 1;
    assert_int_equal(dec_assign(&a, &r), FEDREC_ERR_FORMAT);
    retired[0] = 1;
    assert_int_equal(dec_assign(&a, &r), FEDREC_OK);
    fedreci_link_reply_free(&r);
    /* a verdict and an error decode; garbage does not */
    nng_msg *m;
    assert_int_equal(fedreci_link_enc_verdict(&m, 5, 1, 0, 9, "late"), FEDREC_OK);
    assert_int_equal(seal_dec(m, 78, &r), FEDREC_OK);
    assert_int_equal(r.msg->body_case, FEDREC__GROUPS__V1__AGG_REPLY__BODY_VERDICT);
    assert_true(r.msg->verdict->completed && !r.msg->verdict->counted);
    assert_int_equal(r.msg->verdict->model_version, 9);
    assert_string_equal(r.msg->verdict->reason, "late");
    fedreci_link_reply_free(&r);
    uint8_t junk[5] = {0xff, 0xff, 0xff, 0xff, 0xff};
    assert_int_equal(fedreci_link_dec_reply(junk, sizeof junk, 1u << 20, MPK, PK, 1, &r),
                     FEDREC_ERR_FORMAT);
}

/* Decodes m's bytes as aggregator agg_pk expecting the answer to request
 * seq, verified with master key mpk. */
static fedrec_err dec_as(nng_msg *m, const uint8_t *mpk, const uint8_t *agg_pk, uint64_t seq)
{
    fedreci_link_reply r;
    fedrec_err e =
        fedreci_link_dec_reply(nng_msg_body(m), nng_msg_len(m), 1u << 20, mpk, agg_pk, seq, &r);
    if (!e)
        fedreci_link_reply_free(&r);
    return e;
}

static void test_reply_signature(void **state)
{
    (void)state;
    uint8_t opk[32], osk[64]; /* another party's key (a fake master) */
    crypto_sign_seed_keypair(opk, osk, (const uint8_t *)"test link not the master 0000001");
    uint8_t apk2[32], ask2[64]; /* another aggregator */
    crypto_sign_seed_keypair(apk2, ask2, (const uint8_t *)"test link aggregator key 0000002");
    nng_msg *m;
    assert_int_equal(fedreci_link_enc_verdict(&m, 5, 1, 1, 9, ""), FEDREC_OK);
    nng_msg *plain;
    assert_int_equal(nng_msg_dup(&plain, m), 0);
    assert_int_equal(fedreci_link_seal_reply(&m, MSK, PK, 1000), FEDREC_OK);
    /* the answer to request 1000 of PK, verified with the master's key */
    assert_int_equal(dec_as(m, MPK, PK, 1000), FEDREC_OK);
    /* a replay: the same bytes as the answer to a later request */
    assert_int_equal(dec_as(m, MPK, PK, 1001), FEDREC_ERR_SIGNATURE);
    assert_non_null(strstr(fedrec_errmsg(), "replay"));
    /* meant for another aggregator */
    assert_int_equal(dec_as(m, MPK, apk2, 1000), FEDREC_ERR_SIGNATURE);
    /* an aggregator configured with another master key */
    assert_int_equal(dec_as(m, opk, PK, 1000), FEDREC_ERR_SIGNATURE);
    /* one flipped byte in the reply it carries */
    uint8_t *b = nng_msg_body(m);
    b[4] ^= 0x01;
    fedrec_err e = dec_as(m, MPK, PK, 1000);
    assert_true(e == FEDREC_ERR_SIGNATURE || e == FEDREC_ERR_FORMAT);
    b[4] ^= 0x01;
    assert_int_equal(dec_as(m, MPK, PK, 1000), FEDREC_OK);
    nng_msg_free(m);
    /* made by someone without the master's key */
    assert_int_equal(nng_msg_dup(&m, plain), 0);
    assert_int_equal(fedreci_link_seal_reply(&m, osk, PK, 1000), FEDREC_OK);
    assert_int_equal(dec_as(m, MPK, PK, 1000), FEDREC_ERR_SIGNATURE);
    nng_msg_free(m);
    /* an unsigned AggReply (a master of link version 1) */
    assert_int_equal(dec_as(plain, MPK, PK, 1000), FEDREC_ERR_FORMAT);
    assert_non_null(strstr(fedrec_errmsg(), "unsigned reply"));
    nng_msg_free(plain);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_poll_and_result_round_trip),
        cmocka_unit_test(test_request_refusals),
        cmocka_unit_test(test_assign),
        cmocka_unit_test(test_reply_signature),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
