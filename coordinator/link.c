/* coordinator/link: the master-aggregator messages (see link.h). */
#include "link.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/err.h"

static const char SIG_LABEL[] = "fedrec.v1.agg";

static const char REPLY_LABEL[] = "fedrec.v2.agg-reply";

static ProtobufCBinaryData bin(const void *p, size_t len)
{
    ProtobufCBinaryData b;
    b.data = (uint8_t *)(uintptr_t)p;
    b.len = len;
    return b;
}

/* msg with the packed bytes of m (packed into a fresh nng message). */
static fedrec_err pack(nng_msg **out, const ProtobufCMessage *m)
{
    size_t len = protobuf_c_message_get_packed_size(m);
    if (nng_msg_alloc(out, len) != 0)
        return fedreci_error(FEDREC_ERR_NOMEM, "link: message of %zu bytes", len);
    protobuf_c_message_pack(m, nng_msg_body(*out));
    return FEDREC_OK;
}

static void sign_bytes(uint8_t sig[64], const uint8_t *req, size_t len, const uint8_t sk[64])
{
    /* Ed25519 (no prehash) over label || req */
    uint8_t *buf = malloc(sizeof SIG_LABEL - 1 + len);
    if (!buf) {
        memset(sig, 0, 64);
        return;
    }
    memcpy(buf, SIG_LABEL, sizeof SIG_LABEL - 1);
    memcpy(buf + sizeof SIG_LABEL - 1, req, len);
    crypto_sign_detached(sig, NULL, buf, sizeof SIG_LABEL - 1 + len, sk);
    free(buf);
}

static int verify_bytes(const uint8_t sig[64], const uint8_t *req, size_t len, const uint8_t pk[32])
{
    uint8_t *buf = malloc(sizeof SIG_LABEL - 1 + len);
    if (!buf)
        return -1;
    memcpy(buf, SIG_LABEL, sizeof SIG_LABEL - 1);
    memcpy(buf + sizeof SIG_LABEL - 1, req, len);
    int rv = crypto_sign_verify_detached(sig, buf, sizeof SIG_LABEL - 1 + len, pk);
    free(buf);
    return rv;
}

/* label || agg_pk || seq (LE) || rep, malloc'd (NULL: out of memory). */
static uint8_t *reply_bytes(const uint8_t agg_pk[32], uint64_t seq, const uint8_t *rep, size_t len,
                            size_t *n)
{
    size_t hl = sizeof REPLY_LABEL - 1;
    uint8_t *buf = malloc(hl + 40 + len);
    if (!buf)
        return NULL;
    memcpy(buf, REPLY_LABEL, hl);
    memcpy(buf + hl, agg_pk, 32);
    for (int i = 0; i < 8; i++)
        buf[hl + 32 + i] = (uint8_t)(seq >> (8 * i));
    if (len)
        memcpy(buf + hl + 40, rep, len);
    *n = hl + 40 + len;
    return buf;
}

fedrec_err fedreci_link_seal_reply(nng_msg **m, const uint8_t master_sk[64],
                                   const uint8_t agg_pk[32], uint64_t seq)
{
    nng_msg *in = *m;
    *m = NULL;
    size_t n = 0;
    uint8_t *buf = reply_bytes(agg_pk, seq, nng_msg_body(in), nng_msg_len(in), &n);
    if (!buf) {
        nng_msg_free(in);
        return fedreci_error(FEDREC_ERR_NOMEM, "link: reply of %zu bytes", nng_msg_len(in));
    }
    uint8_t sig[64];
    crypto_sign_detached(sig, NULL, buf, n, master_sk);
    free(buf);
    Fedrec__Groups__V1__AggSignedReply s = FEDREC__GROUPS__V1__AGG_SIGNED_REPLY__INIT;
    s.rep = bin(nng_msg_body(in), nng_msg_len(in));
    s.sig = bin(sig, 64);
    fedrec_err e = pack(m, &s.base);
    nng_msg_free(in);
    if (e)
        *m = NULL;
    return e;
}

/* Wraps the request rq: packs it, signs it, packs the AggSigned. */
static fedrec_err enc_signed(nng_msg **out, Fedrec__Groups__V1__AggRequest *rq,
                             const uint8_t sk[64], uint64_t seq)
{
    uint8_t pk[32];
    crypto_sign_ed25519_sk_to_pk(pk, sk);
    rq->protocol_version = FEDRECI_LINK_VERSION;
    rq->agg_pk = bin(pk, 32);
    rq->seq = seq;
    size_t len = protobuf_c_message_get_packed_size(&rq->base);
    uint8_t *req = malloc(len ? len : 1);
    if (!req)
        return fedreci_error(FEDREC_ERR_NOMEM, "link: request of %zu bytes", len);
    protobuf_c_message_pack(&rq->base, req);
    uint8_t sig[64];
    sign_bytes(sig, req, len, sk);
    Fedrec__Groups__V1__AggSigned s = FEDREC__GROUPS__V1__AGG_SIGNED__INIT;
    s.req = bin(req, len);
    s.sig = bin(sig, 64);
    fedrec_err e = pack(out, &s.base);
    free(req);
    return e;
}

fedrec_err fedreci_link_enc_poll(nng_msg **out, const uint8_t sk[64], uint64_t seq, const char *url,
                                 const uint8_t coord_pk[32], uint64_t model_version,
                                 uint32_t max_group)
{
    if (!url || strlen(url) > FEDRECI_LINK_MAX_URL)
        return fedreci_error(FEDREC_ERR_INVALID, "link: aggregator URL missing or over %u bytes",
                             FEDRECI_LINK_MAX_URL);
    Fedrec__Groups__V1__Poll p = FEDREC__GROUPS__V1__POLL__INIT;
    p.url = (char *)(uintptr_t)url;
    p.coord_pk = bin(coord_pk, 32);
    p.model_version = model_version;
    p.max_group = max_group;
    Fedrec__Groups__V1__AggRequest rq = FEDREC__GROUPS__V1__AGG_REQUEST__INIT;
    rq.body_case = FEDREC__GROUPS__V1__AGG_REQUEST__BODY_POLL;
    rq.poll = &p;
    return enc_signed(out, &rq, sk, seq);
}

fedrec_err fedreci_link_enc_result(nng_msg **out, const uint8_t sk[64], uint64_t seq,
                                   const fedreci_link_result *r)
{
    Fedrec__Groups__V1__GroupResult g = FEDREC__GROUPS__V1__GROUP_RESULT__INIT;
    uint32_t dropped[4], stage[4];
    memcpy(dropped, r->dropped, sizeof dropped);
    memcpy(stage, r->stage_ms, sizeof stage);
    g.round_id = r->round_id;
    g.group = r->group;
    g.completed = r->completed ? 1 : 0;
    g.reason = (char *)(uintptr_t)(r->reason ? r->reason : "");
    g.survivors = r->survivors;
    g.advertised = r->advertised;
    g.shared = r->shared;
    g.unmasked = r->unmasked;
    g.n_dropped = 4;
    g.dropped = dropped;
    g.n_stage_ms = 4;
    g.stage_ms = stage;
    g.bytes_in = r->bytes_in;
    g.bytes_out = r->bytes_out;
    g.n_seed_withheld = r->n_withheld[FEDRECI_LINK_WITHHELD_SEED];
    g.seed_withheld = (uint64_t *)(uintptr_t)r->withheld[FEDRECI_LINK_WITHHELD_SEED];
    g.n_consistency_withheld = r->n_withheld[FEDRECI_LINK_WITHHELD_CONSISTENCY];
    g.consistency_withheld = (uint64_t *)(uintptr_t)r->withheld[FEDRECI_LINK_WITHHELD_CONSISTENCY];
    g.n_unmask_withheld = r->n_withheld[FEDRECI_LINK_WITHHELD_UNMASK];
    g.unmask_withheld = (uint64_t *)(uintptr_t)r->withheld[FEDRECI_LINK_WITHHELD_UNMASK];
    uint8_t *le = NULL;
    if (r->completed && r->sum) {
        le = malloc((size_t)r->d * 4 + 1);
        if (!le)
            return fedreci_error(FEDREC_ERR_NOMEM, "link: sum of %u words", r->d);
        for (uint32_t i = 0; i < r->d; i++) {
            uint32_t w = r->sum[i];
            le[4 * i] = (uint8_t)w;
            le[4 * i + 1] = (uint8_t)(w >> 8);
            le[4 * i + 2] = (uint8_t)(w >> 16);
            le[4 * i + 3] = (uint8_t)(w >> 24);
        }
        g.sum = bin(le, (size_t)r->d * 4);
    }
    Fedrec__Groups__V1__AggRequest rq = FEDREC__GROUPS__V1__AGG_REQUEST__INIT;
    rq.body_case = FEDREC__GROUPS__V1__AGG_REQUEST__BODY_RESULT;
    rq.result = &g;
    fedrec_err e = enc_signed(out, &rq, sk, seq);
    free(le);
    return e;
}

void fedreci_link_req_free(fedreci_link_req *r)
{
    if (!r)
        return;
    if (r->req)
        fedrec__groups__v1__agg_request__free_unpacked(r->req, NULL);
    if (r->signed_msg)
        fedrec__groups__v1__agg_signed__free_unpacked(r->signed_msg, NULL);
    free(r->sum_words);
    memset(r, 0, sizeof *r);
}

static fedrec_err bad(const char *what)
{
    return fedreci_error(FEDREC_ERR_FORMAT, "link: %s", what);
}

fedrec_err fedreci_link_dec_request(const uint8_t *buf, size_t len, size_t cap, uint32_t d,
                                    fedreci_link_req *out)
{
    memset(out, 0, sizeof *out);
    if (len > cap)
        return fedreci_error(FEDREC_ERR_TOO_BIG, "link: request of %zu bytes, cap %zu", len, cap);
    out->signed_msg = fedrec__groups__v1__agg_signed__unpack(NULL, len, buf);
    if (!out->signed_msg)
        return bad("AggSigned does not parse");
    if (out->signed_msg->sig.len != 64) {
        fedreci_link_req_free(out);
        return bad("AggSigned.sig is not 64 bytes");
    }
    const ProtobufCBinaryData *rb = &out->signed_msg->req;
    out->req = fedrec__groups__v1__agg_request__unpack(NULL, rb->len, rb->data);
    fedrec_err e = FEDREC_OK;
    const Fedrec__Groups__V1__AggRequest *q = out->req;
    if (!q)
        e = bad("AggRequest does not parse");
    else if (q->protocol_version != FEDRECI_LINK_VERSION)
        e = fedreci_error(FEDREC_ERR_UNSUPPORTED, "link: protocol_version %u (%u expected)",
                          q->protocol_version, FEDRECI_LINK_VERSION);
    else if (q->agg_pk.len != 32)
        e = bad("AggRequest.agg_pk is not 32 bytes");
    else if (verify_bytes(out->signed_msg->sig.data, rb->data, rb->len, q->agg_pk.data) != 0)
        e = fedreci_error(FEDREC_ERR_SIGNATURE,
                          "link: the request's signature does not verify with the key it names");
    if (e) {
        fedreci_link_req_free(out);
        return e;
    }
    memcpy(out->agg_pk, q->agg_pk.data, 32);
    out->seq = q->seq;
    if (q->body_case == FEDREC__GROUPS__V1__AGG_REQUEST__BODY_POLL && q->poll) {
        const Fedrec__Groups__V1__Poll *p = q->poll;
        out->is_poll = 1;
        if (p->coord_pk.len != 32)
            e = bad("Poll.coord_pk is not 32 bytes");
        else if (!p->url || !p->url[0] || strlen(p->url) > FEDRECI_LINK_MAX_URL)
            e = bad("Poll.url is empty or over 255 bytes");
        if (!e) {
            out->url = p->url;
            memcpy(out->coord_pk, p->coord_pk.data, 32);
            out->model_version = p->model_version;
            out->max_group = p->max_group;
        }
    } else if (q->body_case == FEDREC__GROUPS__V1__AGG_REQUEST__BODY_RESULT && q->result) {
        const Fedrec__Groups__V1__GroupResult *g = q->result;
        fedreci_link_result *r = &out->result;
        if (g->n_dropped != 4 || g->n_stage_ms != 4)
            e = bad("GroupResult.dropped and stage_ms need 4 entries");
        else if (g->completed && g->sum.len != (size_t)d * 4)
            e = fedreci_error(FEDREC_ERR_FORMAT, "link: GroupResult.sum of %zu bytes, %zu expected",
                              g->sum.len, (size_t)d * 4);
        const uint64_t *wl[3] = {g->seed_withheld, g->consistency_withheld, g->unmask_withheld};
        size_t nw[3] = {g->n_seed_withheld, g->n_consistency_withheld, g->n_unmask_withheld};
        static const char *const wname[3] = {"seed_withheld", "consistency_withheld",
                                             "unmask_withheld"};
        int lists = 0;
        for (int k = 0; k < 3 && !e; k++) {
            lists += nw[k] != 0;
            if (g->completed && nw[k])
                e = fedreci_error(FEDREC_ERR_FORMAT, "link: GroupResult.%s in a completed group",
                                  wname[k]);
            for (size_t i = 1; !e && i < nw[k]; i++)
                if (wl[k][i] <= wl[k][i - 1])
                    e = fedreci_error(FEDREC_ERR_FORMAT,
                                      "link: GroupResult.%s is not strictly ascending", wname[k]);
        }
        if (!e && lists > 1)
            e = bad("GroupResult names withholders of more than one step");
        if (!e && g->completed) {
            out->sum_words = malloc((size_t)d * sizeof *out->sum_words);
            if (!out->sum_words)
                e = fedreci_error(FEDREC_ERR_NOMEM, "link: sum of %u words", d);
            for (uint32_t i = 0; !e && i < d; i++) {
                const uint8_t *b = g->sum.data + 4 * (size_t)i;
                out->sum_words[i] = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
                                    (uint32_t)b[3] << 24;
            }
        }
        if (!e) {
            r->round_id = g->round_id;
            r->group = g->group;
            r->completed = g->completed;
            r->reason = g->reason ? g->reason : "";
            r->survivors = g->survivors;
            r->advertised = g->advertised;
            r->shared = g->shared;
            r->unmasked = g->unmasked;
            memcpy(r->dropped, g->dropped, sizeof r->dropped);
            memcpy(r->stage_ms, g->stage_ms, sizeof r->stage_ms);
            r->bytes_in = g->bytes_in;
            r->bytes_out = g->bytes_out;
            r->sum = out->sum_words;
            r->d = g->completed ? d : 0;
            for (int k = 0; k < 3; k++) {
                r->withheld[k] = nw[k] ? wl[k] : NULL;
                r->n_withheld[k] = nw[k];
            }
        }
    } else {
        e = bad("AggRequest has no body");
    }
    if (e)
        fedreci_link_req_free(out);
    return e;
}

fedrec_err fedreci_link_enc_idle(nng_msg **out, uint32_t retry_after_ms)
{
    Fedrec__Groups__V1__Idle i = FEDREC__GROUPS__V1__IDLE__INIT;
    i.retry_after_ms = retry_after_ms;
    Fedrec__Groups__V1__AggReply r = FEDREC__GROUPS__V1__AGG_REPLY__INIT;
    r.body_case = FEDREC__GROUPS__V1__AGG_REPLY__BODY_IDLE;
    r.idle = &i;
    return pack(out, &r.base);
}

fedrec_err fedreci_link_enc_assign(nng_msg **out, const fedreci_link_assign *a)
{
    Fedrec__Groups__V1__Assign m = FEDREC__GROUPS__V1__ASSIGN__INIT;
    Fedrec__Groups__V1__Model mo = FEDREC__GROUPS__V1__MODEL__INIT;
    uint32_t stage[4];
    memcpy(stage, a->stage_ms, sizeof stage);
    m.round_id = a->round_id;
    m.group = a->group;
    m.n_groups = a->n_groups;
    m.n = a->p.n;
    m.neighbors = a->p.k;
    m.threshold = a->p.t;
    m.d = a->p.d;
    m.clip = a->p.clip;
    m.scale = a->p.scale;
    m.max_weight = a->p.max_weight;
    m.seed_retries = a->p.seed_retries;
    m.graph_seed = bin(a->p.graph_seed, 32);
    m.model_version = a->model_version;
    m.n_member_ids = a->p.n;
    m.member_ids = (uint64_t *)(uintptr_t)a->ids;
    m.member_pks = bin(a->pks, (size_t)a->p.n * 32);
    m.n_stage_ms = 4;
    m.stage_ms = stage;
    if (a->has_model) {
        mo.version = a->model_version;
        mo.n_items = a->n_items;
        mo.k = a->k;
        mo.item_factors = bin(a->factors, (size_t)a->n_items * a->k * 4);
        mo.n_item_codes = a->n_codes;
        mo.item_codes = (char **)(uintptr_t)a->codes;
        mo.n_retired_rows = a->n_retired;
        mo.retired_rows = (uint32_t *)(uintptr_t)a->retired;
        m.model = &mo;
    }
    Fedrec__Groups__V1__AggReply r = FEDREC__GROUPS__V1__AGG_REPLY__INIT;
    r.body_case = FEDREC__GROUPS__V1__AGG_REPLY__BODY_ASSIGN;
    r.assign = &m;
    return pack(out, &r.base);
}

fedrec_err fedreci_link_enc_verdict(nng_msg **out, uint64_t round_id, int completed, int counted,
                                    uint64_t model_version, const char *reason)
{
    Fedrec__Groups__V1__Verdict v = FEDREC__GROUPS__V1__VERDICT__INIT;
    v.round_id = round_id;
    v.completed = completed ? 1 : 0;
    v.counted = counted ? 1 : 0;
    v.model_version = model_version;
    v.reason = (char *)(uintptr_t)(reason ? reason : "");
    Fedrec__Groups__V1__AggReply r = FEDREC__GROUPS__V1__AGG_REPLY__INIT;
    r.body_case = FEDREC__GROUPS__V1__AGG_REPLY__BODY_VERDICT;
    r.verdict = &v;
    return pack(out, &r.base);
}

fedrec_err fedreci_link_enc_error(nng_msg **out, fedrec_err code, const char *text)
{
    Fedrec__Groups__V1__AggError x = FEDREC__GROUPS__V1__AGG_ERROR__INIT;
    x.code = (uint32_t)code;
    x.text = (char *)(uintptr_t)(text ? text : "");
    Fedrec__Groups__V1__AggReply r = FEDREC__GROUPS__V1__AGG_REPLY__INIT;
    r.body_case = FEDREC__GROUPS__V1__AGG_REPLY__BODY_ERROR;
    r.error = &x;
    return pack(out, &r.base);
}

void fedreci_link_reply_free(fedreci_link_reply *r)
{
    if (!r)
        return;
    if (r->msg)
        fedrec__groups__v1__agg_reply__free_unpacked(r->msg, NULL);
    if (r->signed_msg)
        fedrec__groups__v1__agg_signed_reply__free_unpacked(r->signed_msg, NULL);
    memset(r, 0, sizeof *r);
}

/* The checks of an Assign (link.h) and its decoded form. */
static fedrec_err check_assign(const Fedrec__Groups__V1__Assign *m, fedreci_link_assign *a)
{
    memset(a, 0, sizeof *a);
    a->round_id = m->round_id;
    a->group = m->group;
    a->n_groups = m->n_groups;
    a->p.round_id = m->round_id;
    a->p.n = m->n;
    a->p.k = m->neighbors;
    a->p.t = m->threshold;
    a->p.d = m->d;
    a->p.clip = m->clip;
    a->p.scale = m->scale;
    a->p.max_weight = m->max_weight;
    a->p.seed_retries = m->seed_retries;
    if (m->graph_seed.len != 32)
        return bad("Assign.graph_seed is not 32 bytes");
    memcpy(a->p.graph_seed, m->graph_seed.data, 32);
    if (fedreci_secagg_params_check(&a->p))
        return fedreci_error(FEDREC_ERR_FORMAT, "link: Assign parameters: %s", fedrec_errmsg());
    if (m->group >= m->n_groups)
        return bad("Assign.group is not below n_groups");
    if (m->n_member_ids != m->n)
        return fedreci_error(FEDREC_ERR_FORMAT, "link: Assign lists %zu members, n = %u",
                             m->n_member_ids, m->n);
    for (size_t i = 1; i < m->n_member_ids; i++)
        if (m->member_ids[i] <= m->member_ids[i - 1])
            return bad("Assign.member_ids not strictly ascending");
    if (m->member_pks.len != (size_t)m->n * 32)
        return bad("Assign.member_pks is not n x 32 bytes");
    if (m->n_stage_ms != 4)
        return bad("Assign.stage_ms needs 4 entries");
    for (int s = 0; s < 4; s++)
        if (m->stage_ms[s] == 0)
            return bad("Assign.stage_ms has a zero deadline");
    a->model_version = m->model_version;
    a->ids = m->member_ids;
    a->pks = m->member_pks.data;
    memcpy(a->stage_ms, m->stage_ms, sizeof a->stage_ms);
    if (m->model) {
        const Fedrec__Groups__V1__Model *mo = m->model;
        if (mo->version != m->model_version)
            return bad("Assign.model.version is not the round's model version");
        if (mo->n_items == 0 || mo->k == 0 || (uint64_t)mo->n_items * mo->k + 1 != m->d)
            return bad("Assign.model n_items x k + 1 is not d");
        if (mo->item_factors.len != (size_t)mo->n_items * mo->k * 4)
            return bad("Assign.model.item_factors is not n_items x k x 4 bytes");
        if (mo->n_item_codes != 0 && mo->n_item_codes != mo->n_items)
            return bad("Assign.model.item_codes is not n_items codes");
        for (size_t i = 0; i < mo->n_item_codes; i++)
            if (!mo->item_codes[i] || strlen(mo->item_codes[i]) > 256)
                return bad("Assign.model.item_codes has a code over 256 bytes");
        for (size_t i = 0; i < mo->n_retired_rows; i++)
            if (mo->retired_rows[i] >= mo->n_items ||
                (i && mo->retired_rows[i] <= mo->retired_rows[i - 1]))
                return bad("Assign.model.retired_rows not strictly ascending below n_items");
        a->has_model = 1;
        a->n_items = mo->n_items;
        a->k = mo->k;
        a->factors = mo->item_factors.data;
        a->codes = (const char *const *)mo->item_codes;
        a->n_codes = mo->n_item_codes;
        a->retired = mo->retired_rows;
        a->n_retired = mo->n_retired_rows;
    }
    return FEDREC_OK;
}

fedrec_err fedreci_link_dec_reply(const uint8_t *buf, size_t len, size_t cap,
                                  const uint8_t master_pk[32], const uint8_t agg_pk[32],
                                  uint64_t seq, fedreci_link_reply *out)
{
    memset(out, 0, sizeof *out);
    if (len > cap)
        return fedreci_error(FEDREC_ERR_TOO_BIG, "link: reply of %zu bytes, cap %zu", len, cap);
    out->signed_msg = fedrec__groups__v1__agg_signed_reply__unpack(NULL, len, buf);
    if (!out->signed_msg)
        return bad("AggSignedReply does not parse");
    fedrec_err e = FEDREC_OK;
    const ProtobufCBinaryData *rb = &out->signed_msg->rep;
    if (out->signed_msg->sig.len != 64) {
        e = bad("AggSignedReply.sig is not 64 bytes (an unsigned reply: a master of link "
                "version 1, or not the master)");
    } else {
        size_t n = 0;
        uint8_t *b = reply_bytes(agg_pk, seq, rb->data, rb->len, &n);
        if (!b)
            e = fedreci_error(FEDREC_ERR_NOMEM, "link: reply of %zu bytes", rb->len);
        else if (crypto_sign_verify_detached(out->signed_msg->sig.data, b, n, master_pk) != 0)
            e = fedreci_error(FEDREC_ERR_SIGNATURE,
                              "link: the reply's signature does not verify with the master's key "
                              "for this aggregator's request %llu (not made by the master, made "
                              "for another aggregator, or a replay of an earlier reply)",
                              (unsigned long long)seq);
        free(b);
    }
    if (e) {
        fedreci_link_reply_free(out);
        return e;
    }
    out->msg = fedrec__groups__v1__agg_reply__unpack(NULL, rb->len, rb->data);
    if (!out->msg) {
        fedreci_link_reply_free(out);
        return bad("AggReply does not parse");
    }
    switch (out->msg->body_case) {
    case FEDREC__GROUPS__V1__AGG_REPLY__BODY_ASSIGN:
        e = out->msg->assign ? check_assign(out->msg->assign, &out->assign)
                             : bad("AggReply.assign missing");
        break;
    case FEDREC__GROUPS__V1__AGG_REPLY__BODY_IDLE:
    case FEDREC__GROUPS__V1__AGG_REPLY__BODY_VERDICT:
    case FEDREC__GROUPS__V1__AGG_REPLY__BODY_ERROR:
        break;
    default:
        e = bad("AggReply has no body");
    }
    if (e)
        fedreci_link_reply_free(out);
    return e;
}
