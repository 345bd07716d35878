/* libFuzzer harness for coordinator/link: the master-aggregator messages
 * of SecAgg groups (issue 20) through the decoders the master and the
 * aggregator run on bytes from the network.
 *
 * Input layout: the first byte selects the mode.
 *   0: the rest is an AggSigned request as received by the master
 *      (fedreci_link_dec_request with d = 7): almost every mutation fails
 *      its signature, so this mode fuzzes the outer parsing;
 *   1: the rest is an AggRequest; the harness names its own key in it and
 *      signs it (so the body checks behind the signature are fuzzed too);
 *   2: the rest is an AggSignedReply as received by an aggregator
 *      (fedreci_link_dec_reply with the harness's master key, its own
 *      aggregator key and sequence number 1): almost every mutation fails
 *      the signature, so this mode fuzzes the outer parsing;
 *   3 and above: the rest is an AggReply; the harness seals it with its
 *      master key for that request (fedreci_link_seal_reply) and decodes
 *      it (Assign's parameter, member, key, stage and model checks).
 * Properties checked (abort on violation): a decode either fails or yields
 * structures whose documented invariants hold (sum of d words; seed
 * withholders only in a failed group, strictly ascending; Assign
 * members strictly ascending with n x 32 key bytes; model factors of
 * n_items x k x 4 bytes, d = n_items x k + 1). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "coordinator/link.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define D 7

static void check_request(const fedreci_link_req *q)
{
    if (!q->is_poll && q->result.completed) {
        if (q->result.d != D || !q->result.sum)
            abort();
        volatile uint32_t s = 0;
        for (uint32_t i = 0; i < D; i++)
            s += q->result.sum[i];
        (void)s;
    }
    if (q->is_poll && (!q->url || strlen(q->url) > FEDRECI_LINK_MAX_URL))
        abort();
    /* withholders (seed, consistency, unmask): only in a failed group, one
       step's list at most, strictly ascending */
    int lists = 0;
    for (int k = 0; !q->is_poll && k < 3; k++) {
        if (!q->result.n_withheld[k])
            continue;
        lists++;
        if (q->result.completed || !q->result.withheld[k])
            abort();
        for (size_t i = 1; i < q->result.n_withheld[k]; i++)
            if (q->result.withheld[k][i] <= q->result.withheld[k][i - 1])
                abort();
    }
    if (lists > 1)
        abort();
}

static void check_reply(const fedreci_link_reply *r)
{
    if (r->msg->body_case != FEDREC__GROUPS__V1__AGG_REPLY__BODY_ASSIGN)
        return;
    const fedreci_link_assign *a = &r->assign;
    for (uint32_t i = 1; i < a->p.n; i++)
        if (a->ids[i] <= a->ids[i - 1])
            abort();
    volatile uint8_t x = 0;
    for (size_t i = 0; i < (size_t)a->p.n * 32; i++)
        x ^= a->pks[i];
    if (a->has_model) {
        if ((uint64_t)a->n_items * a->k + 1 != a->p.d)
            abort();
        for (size_t i = 0; i < (size_t)a->n_items * a->k * 4; i++)
            x ^= a->factors[i];
        for (size_t i = 0; i < a->n_codes; i++)
            x ^= (uint8_t)strlen(a->codes[i]);
    }
    (void)x;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int init;
    static uint8_t pk[32], sk[64], mpk[32], msk[64];
    if (!init) {
        if (sodium_init() < 0)
            abort();
        crypto_sign_seed_keypair(pk, sk, (const uint8_t *)"fedrec fuzz link aggregator key1");
        crypto_sign_seed_keypair(mpk, msk, (const uint8_t *)"fedrec fuzz link master key 0001");
        init = 1;
    }
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    data++;
    size--;
    if (mode == 0) {
        fedreci_link_req q;
        if (fedreci_link_dec_request(data, size, 1u << 20, D, &q) == FEDREC_OK) {
            check_request(&q);
            fedreci_link_req_free(&q);
        }
    } else if (mode == 1) {
        Fedrec__Groups__V1__AggRequest *rq =
            fedrec__groups__v1__agg_request__unpack(NULL, size, data);
        if (!rq)
            return 0;
        /* the unpacked message owns its buffers: the key is put back before
           the free */
        ProtobufCBinaryData keep = rq->agg_pk;
        rq->agg_pk.data = pk;
        rq->agg_pk.len = 32;
        size_t ql = protobuf_c_message_get_packed_size(&rq->base);
        uint8_t *buf = malloc(13 + ql);
        if (buf) {
            memcpy(buf, "fedrec.v1.agg", 13);
            protobuf_c_message_pack(&rq->base, buf + 13);
            uint8_t sig[64];
            crypto_sign_detached(sig, NULL, buf, 13 + ql, sk);
            Fedrec__Groups__V1__AggSigned s = FEDREC__GROUPS__V1__AGG_SIGNED__INIT;
            s.req.data = buf + 13;
            s.req.len = ql;
            s.sig.data = sig;
            s.sig.len = 64;
            size_t sl = protobuf_c_message_get_packed_size(&s.base);
            uint8_t *out = malloc(sl ? sl : 1);
            if (out) {
                protobuf_c_message_pack(&s.base, out);
                fedreci_link_req q;
                if (fedreci_link_dec_request(out, sl, 1u << 20, D, &q) == FEDREC_OK) {
                    check_request(&q);
                    fedreci_link_req_free(&q);
                }
                free(out);
            }
            free(buf);
        }
        rq->agg_pk = keep;
        fedrec__groups__v1__agg_request__free_unpacked(rq, NULL);
    } else if (mode == 2) {
        fedreci_link_reply r;
        if (fedreci_link_dec_reply(data, size, 1u << 20, mpk, pk, 1, &r) == FEDREC_OK) {
            check_reply(&r);
            fedreci_link_reply_free(&r);
        }
    } else {
        nng_msg *m = NULL;
        if (nng_msg_alloc(&m, size) != 0)
            return 0;
        if (size)
            memcpy(nng_msg_body(m), data, size);
        if (fedreci_link_seal_reply(&m, msk, pk, 1) != FEDREC_OK)
            return 0;
        fedreci_link_reply r;
        if (fedreci_link_dec_reply(nng_msg_body(m), nng_msg_len(m), 1u << 21, mpk, pk, 1, &r) ==
            FEDREC_OK) {
            check_reply(&r);
            fedreci_link_reply_free(&r);
        }
        nng_msg_free(m);
    }
    return 0;
}
