/* proto/wire: checked encode/decode of fedrec.v1 envelopes (see wire.h). */
#include "proto/wire.h"

#include <limits.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "core/err.h"
#include "core/mf/mf.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "fedrec's wire code uses little-endian vectors in place; port the conversions first"
#endif

/* ---- sizes ---------------------------------------------------------------- */

static size_t sat_add(size_t a, size_t b)
{
    size_t lim = SIZE_MAX / 2;
    return (a > lim - (b > lim ? lim : b)) ? lim : a + b;
}

static size_t sat_mul(size_t a, size_t b)
{
    size_t lim = SIZE_MAX / 2;
    if (a != 0 && b > lim / a)
        return lim;
    return a * b;
}

size_t fedreci_wire_cap(uint32_t n_items, uint32_t k, uint32_t max_cohort, size_t catalog_bytes)
{
    /* model reply: factors, gram, checksum, codes with their tags/lengths */
    size_t model = sat_mul(sat_mul(n_items, k), 4);
    model = sat_add(model, sat_mul(sat_mul(k, k), 4));
    model = sat_add(model, sat_add(catalog_bytes, sat_mul(n_items, 4)));
    model = sat_add(model, sat_mul(n_items, 5)); /* retired rows: one varint each */
    /* masked input: d words, with the ALS step's x_u x_u^T block */
    size_t masked = sat_mul(sat_add(sat_add(sat_mul(n_items, k), sat_mul(k, k)), 1), 4);
    /* a roster or seed relay with every advert (~260 bytes each, with its
       contribution) and an unmask request */
    size_t roster = sat_mul(max_cohort, 300);
    size_t unmask = sat_mul(max_cohort, 11);
    size_t big = model;
    if (masked > big)
        big = masked;
    if (roster > big)
        big = roster;
    if (unmask > big)
        big = unmask;
    return sat_add(big, 4096);
}

void fedreci_wire_checksum(const void *data, size_t len, uint8_t out[FEDRECI_WIRE_CHECKSUM_BYTES])
{
    crypto_generichash(out, FEDRECI_WIRE_CHECKSUM_BYTES, (const unsigned char *)data, len, NULL, 0);
}

static void put_u32(crypto_generichash_state *st, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    crypto_generichash_update(st, b, 4);
}

static void put_u64(crypto_generichash_state *st, uint64_t v)
{
    put_u32(st, (uint32_t)v);
    put_u32(st, (uint32_t)(v >> 32));
}

static void put_f64(crypto_generichash_state *st, double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    put_u64(st, u);
}

void fedreci_wire_binding(const fedreci_wire_round *r,
                          const uint8_t model_checksum[FEDRECI_WIRE_CHECKSUM_BYTES],
                          uint8_t out[32])
{
    static const char label[] = "fedrec.v2.binding";
    const fedreci_secagg_params *p = &r->secagg;
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, 32);
    crypto_generichash_update(&st, (const uint8_t *)label, sizeof label - 1);
    put_u64(&st, p->round_id);
    put_u32(&st, p->n);
    put_u32(&st, p->k);
    put_u32(&st, p->t);
    put_u32(&st, p->d);
    put_f64(&st, p->clip);
    put_f64(&st, p->scale);
    put_u32(&st, p->max_weight);
    crypto_generichash_update(&st, p->graph_seed, sizeof p->graph_seed);
    put_u64(&st, r->model_version);
    put_u32(&st, r->n_items);
    put_u32(&st, r->k_factors);
    put_u32(&st, r->stage_timeout_ms);
    crypto_generichash_update(&st, r->coord_pk, sizeof r->coord_pk);
    crypto_generichash_update(&st, model_checksum, FEDRECI_WIRE_CHECKSUM_BYTES);
    put_u32(&st, p->seed_retries);
    if (r->dp.mechanism) { /* differential privacy: every DpParams field */
        const fedreci_dp_round_params *q = &r->dp;
        put_u32(&st, q->mechanism);
        put_u32(&st, q->min_survivors);
        put_f64(&st, q->l2_bound);
        put_f64(&st, q->scale);
        put_f64(&st, q->noise_var);
        put_f64(&st, q->beta);
        put_f64(&st, q->row_bound);
        put_f64(&st, q->gram_weight);
        put_f64(&st, q->lambda);
        put_f64(&st, q->epsilon_round);
        put_f64(&st, q->delta);
        crypto_generichash_update(&st, q->rotation_seed, sizeof q->rotation_seed);
    }
    if (r->step) { /* the ALS step's upload: its layout and bound */
        put_u32(&st, r->step);
        put_f64(&st, r->x_bound);
    }
    crypto_generichash_final(&st, out, 32);
}

/* ---- decode ----------------------------------------------------------------- */

static fedrec_err want_len(const ProtobufCBinaryData *b, size_t len, const char *what)
{
    if (b->len != len)
        return fedreci_error(FEDREC_ERR_FORMAT, "wire: %s has %zu bytes, expected %zu", what,
                             b->len, len);
    return FEDREC_OK;
}

static fedrec_err check_sorted(const uint64_t *v, size_t n, const char *what)
{
    for (size_t i = 1; i < n; i++)
        if (v[i] <= v[i - 1])
            return fedreci_error(FEDREC_ERR_FORMAT, "wire: %s not strictly ascending at index %zu",
                                 what, i);
    return FEDREC_OK;
}

static int id_in(const uint64_t *v, size_t n, uint64_t id)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v[mid] == id)
            return 1;
        if (v[mid] < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

static fedrec_err check_cts(Fedrec__V1__Ciphertext **cts, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++) {
        if (!cts[i])
            return fedreci_error(FEDREC_ERR_FORMAT, "wire: %s[%zu] missing", what, i);
        if (cts[i]->data.len == 0 || cts[i]->data.len > FEDRECI_WIRE_MAX_CT_BYTES)
            return fedreci_error(FEDREC_ERR_FORMAT, "wire: %s[%zu] has %zu bytes (1..%u allowed)",
                                 what, i, cts[i]->data.len, FEDRECI_WIRE_MAX_CT_BYTES);
        if (cts[i]->commit.len != FEDRECI_SECAGG_COMMIT_BYTES)
            return fedreci_error(FEDREC_ERR_FORMAT,
                                 "wire: %s[%zu].commit has %zu bytes, expected %u", what, i,
                                 cts[i]->commit.len, FEDRECI_SECAGG_COMMIT_BYTES);
    }
    return FEDREC_OK;
}

/* A relayed advert (Roster, SeedRelay): every key, signature and digest at
 * its length; seed_commit of commit_len bytes (SeedRelay: none, the client
 * derives it from the relayed contribution). */
static fedrec_err check_advert(const Fedrec__V1__Advert *a, const char *what, size_t i,
                               size_t commit_len)
{
    fedrec_err r;
    if (!a)
        return fedreci_error(FEDREC_ERR_FORMAT, "wire: %s.adverts[%zu] missing", what, i);
    if ((r = want_len(&a->identity_pk, FEDRECI_SECAGG_SIGN_PK_BYTES, "Advert.identity_pk")) ||
        (r = want_len(&a->c_pk, FEDRECI_SECAGG_PK_BYTES, "Advert.c_pk")) ||
        (r = want_len(&a->s_pk, FEDRECI_SECAGG_PK_BYTES, "Advert.s_pk")) ||
        (r = want_len(&a->sig, FEDRECI_SECAGG_SIG_BYTES, "Advert.sig")) ||
        (r = want_len(&a->binding, 32, "Advert.binding")) ||
        (r = want_len(&a->seed_commit, commit_len, "Advert.seed_commit")))
        return r;
    return FEDREC_OK;
}

static fedrec_err check_tags(const ProtobufCBinaryData *t, const char *what)
{
    if (t->len % FEDRECI_SECAGG_TAG_BYTES != 0)
        return fedreci_error(FEDREC_ERR_FORMAT, "wire: %s has %zu bytes, not a multiple of %u",
                             what, t->len, FEDRECI_SECAGG_TAG_BYTES);
    return FEDREC_OK;
}

static fedrec_err check_complaints(Fedrec__V1__Complaint **c, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++) {
        if (!c[i])
            return fedreci_error(FEDREC_ERR_FORMAT, "wire: %s[%zu] missing", what, i);
        if (c[i]->bundle.len != 32 || c[i]->sig.len != FEDRECI_SECAGG_SIG_BYTES)
            return fedreci_error(FEDREC_ERR_FORMAT,
                                 "wire: %s[%zu] has a bundle hash of %zu bytes and a signature "
                                 "of %zu, expected 32 and %u",
                                 what, i, c[i]->bundle.len, c[i]->sig.len,
                                 FEDRECI_SECAGG_SIG_BYTES);
    }
    return FEDREC_OK;
}

static fedrec_err check_openings(Fedrec__V1__Opening **o, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++) {
        if (!o[i])
            return fedreci_error(FEDREC_ERR_FORMAT, "wire: %s[%zu] missing", what, i);
        if (o[i]->plain.len != sizeof((fedreci_secagg_opening *)0)->plain)
            return fedreci_error(FEDREC_ERR_FORMAT,
                                 "wire: %s[%zu].plain has %zu bytes, expected %zu", what, i,
                                 o[i]->plain.len, sizeof((fedreci_secagg_opening *)0)->plain);
    }
    return FEDREC_OK;
}

static fedrec_err check_params(const Fedrec__V1__RoundParams *p)
{
    fedrec_err e;
    if (!p)
        return fedreci_error(FEDREC_ERR_FORMAT, "wire: CheckInReply SELECTED without params");
    if ((e = want_len(&p->graph_seed, FEDRECI_SECAGG_SEED_BYTES, "RoundParams.graph_seed")) ||
        (e = want_len(&p->coord_pk, 32, "RoundParams.coord_pk")))
        return e;
    if (p->step > FEDRECI_WIRE_STEP_ALS)
        return fedreci_error(FEDREC_ERR_FORMAT, "wire: RoundParams.step %u is unknown (0 or 1)",
                             p->step);
    if (p->step == FEDRECI_WIRE_STEP_ALS) {
        if (p->dp)
            return fedreci_error(FEDREC_ERR_FORMAT,
                                 "wire: RoundParams with step 1 (ALS) and DpParams: a DP round "
                                 "uploads the DP-ALS statistics only");
        if (!(p->x_bound > 0) || !isfinite(p->x_bound) ||
            !(fedreci_mf_xx_weight(p->clip, p->x_bound) > 0))
            return fedreci_error(FEDREC_ERR_FORMAT,
                                 "wire: RoundParams.x_bound %g (clip %g) with step 1: need finite "
                                 "clip / x_bound^2 > 0",
                                 p->x_bound, p->clip);
        if (p->n_items == 0 || p->k_factors == 0 || p->k_factors > 256 ||
            (uint64_t)p->n_items * p->k_factors + FEDRECI_MF_XX_DIM(p->k_factors) + 1 !=
                (uint64_t)p->d)
            return fedreci_error(FEDREC_ERR_FORMAT,
                                 "wire: RoundParams with step 1 (ALS): d=%u does not equal "
                                 "n_items=%u * k=%u + k (k + 1) / 2 + 1 (k at most 256)",
                                 p->d, p->n_items, p->k_factors);
    } else if (p->dp) {
        if ((e = want_len(&p->dp->rotation_seed, FEDRECI_DP_SEED_BYTES, "DpParams.rotation_seed")))
            return e;
        uint64_t dim = (uint64_t)p->n_items * p->k_factors +
                       (uint64_t)p->k_factors * ((uint64_t)p->k_factors + 1) / 2;
        size_t D = p->n_items && p->k_factors && p->k_factors <= 256 && dim <= FEDRECI_DP_MAX_DIM
                       ? fedreci_dp_pad_dim((size_t)dim)
                       : 0;
        if (!D || (uint64_t)D + 1 != (uint64_t)p->d)
            return fedreci_error(FEDREC_ERR_FORMAT,
                                 "wire: RoundParams with DpParams: d=%u is not the padded DP "
                                 "dimension + 1 for n_items=%u, k=%u",
                                 p->d, p->n_items, p->k_factors);
    } else if (p->n_items == 0 || p->k_factors == 0 ||
               (uint64_t)p->n_items * p->k_factors + 1 != (uint64_t)p->d)
        return fedreci_error(FEDREC_ERR_FORMAT,
                             "wire: RoundParams d=%u does not equal n_items=%u * k=%u + 1", p->d,
                             p->n_items, p->k_factors);
    if (!isfinite(p->clip) || !isfinite(p->scale))
        return fedreci_error(FEDREC_ERR_FORMAT, "wire: RoundParams clip/scale not finite");
    return FEDREC_OK;
}

static fedrec_err check_model(const Fedrec__V1__ModelReply *r)
{
    fedrec_err e;
    if (r->not_modified)
        return FEDREC_OK;
    if (r->n_items == 0 || r->k == 0)
        return fedreci_error(FEDREC_ERR_FORMAT, "wire: ModelReply n_items=%u k=%u", r->n_items,
                             r->k);
    uint64_t want = (uint64_t)r->n_items * r->k * 4u;
    if ((uint64_t)r->item_factors.len != want)
        return fedreci_error(FEDREC_ERR_FORMAT,
                             "wire: ModelReply item_factors has %zu bytes, expected %llu "
                             "(n_items=%u x k=%u float32)",
                             r->item_factors.len, (unsigned long long)want, r->n_items, r->k);
    if (r->gram.len != 0 && (uint64_t)r->gram.len != (uint64_t)r->k * r->k * 4u)
        return fedreci_error(FEDREC_ERR_FORMAT, "wire: ModelReply gram has %zu bytes, k=%u",
                             r->gram.len, r->k);
    if ((e = want_len(&r->checksum, FEDRECI_WIRE_CHECKSUM_BYTES, "ModelReply.checksum")))
        return e;
    if (r->n_item_codes != 0 && r->n_item_codes != r->n_items)
        return fedreci_error(FEDREC_ERR_FORMAT, "wire: ModelReply has %zu item codes for %u items",
                             r->n_item_codes, r->n_items);
    for (size_t i = 0; i < r->n_item_codes; i++)
        if (!r->item_codes[i] || strlen(r->item_codes[i]) > FEDRECI_WIRE_MAX_CODE_BYTES)
            return fedreci_error(FEDREC_ERR_FORMAT, "wire: ModelReply item code %zu too long", i);
    if (r->n_retired_rows > r->n_items)
        return fedreci_error(FEDREC_ERR_FORMAT,
                             "wire: ModelReply has %zu retired rows for %u items",
                             r->n_retired_rows, r->n_items);
    for (size_t i = 0; i < r->n_retired_rows; i++)
        if (r->retired_rows[i] >= r->n_items ||
            (i > 0 && r->retired_rows[i] <= r->retired_rows[i - 1]))
            return fedreci_error(FEDREC_ERR_FORMAT,
                                 "wire: ModelReply retired_rows[%zu] = %u: not strictly "
                                 "ascending below n_items = %u",
                                 i, r->retired_rows[i], r->n_items);
    uint8_t sum[FEDRECI_WIRE_CHECKSUM_BYTES];
    fedreci_wire_checksum(r->item_factors.data, r->item_factors.len, sum);
    if (sodium_memcmp(sum, r->checksum.data, sizeof sum) != 0)
        return fedreci_error(FEDREC_ERR_CRYPTO,
                             "wire: ModelReply version %llu: item_factors checksum mismatch",
                             (unsigned long long)r->version);
    return FEDREC_OK;
}

/* The stage a body belongs to (0: any). */
static uint32_t body_stage(Fedrec__V1__Envelope__BodyCase c)
{
    switch (c) {
    case FEDREC__V1__ENVELOPE__BODY_CHECK_IN:
    case FEDREC__V1__ENVELOPE__BODY_CHECK_IN_REPLY:
        return FEDRECI_WIRE_STAGE_CHECKIN;
    case FEDREC__V1__ENVELOPE__BODY_MODEL_REQUEST:
    case FEDREC__V1__ENVELOPE__BODY_MODEL_REPLY:
        return FEDRECI_WIRE_STAGE_MODEL;
    case FEDREC__V1__ENVELOPE__BODY_ADVERTISE_KEYS:
    case FEDREC__V1__ENVELOPE__BODY_ROSTER:
        return FEDRECI_WIRE_STAGE_ADVERTISE;
    case FEDREC__V1__ENVELOPE__BODY_SHARE_KEYS:
    case FEDREC__V1__ENVELOPE__BODY_SHARE_RELAY:
        return FEDRECI_WIRE_STAGE_SHARE_KEYS;
    case FEDREC__V1__ENVELOPE__BODY_MASKED_INPUT:
    case FEDREC__V1__ENVELOPE__BODY_UNMASK_REQUEST:
        return FEDRECI_WIRE_STAGE_MASKED_INPUT;
    case FEDREC__V1__ENVELOPE__BODY_UNMASK:
    case FEDREC__V1__ENVELOPE__BODY_ROUND_RESULT:
        return FEDRECI_WIRE_STAGE_UNMASK;
    case FEDREC__V1__ENVELOPE__BODY_SEED_REVEAL:
    case FEDREC__V1__ENVELOPE__BODY_SEED_RELAY:
        return FEDRECI_WIRE_STAGE_SEED;
    case FEDREC__V1__ENVELOPE__BODY_CONSISTENCY:
    case FEDREC__V1__ENVELOPE__BODY_CONSISTENCY_RELAY:
        return FEDRECI_WIRE_STAGE_CONSISTENCY;
    case FEDREC__V1__ENVELOPE__BODY_COMPLAINTS:
    case FEDREC__V1__ENVELOPE__BODY_COMPLAINT_RELAY: /* also the reply at stage 10 */
        return FEDRECI_WIRE_STAGE_COMPLAINT;
    case FEDREC__V1__ENVELOPE__BODY_OPENINGS:
        return FEDRECI_WIRE_STAGE_OPENING;
    default:
        return 0;
    }
}

static fedrec_err check_body(const fedreci_wire_env *e)
{
    fedrec_err r;
    switch (e->body_case) {
    case FEDREC__V1__ENVELOPE__BODY_CHECK_IN:
        return want_len(&e->check_in->identity_pk, FEDRECI_SECAGG_SIGN_PK_BYTES,
                        "CheckIn.identity_pk");
    case FEDREC__V1__ENVELOPE__BODY_CHECK_IN_REPLY:
        if ((int)e->check_in_reply->status < 0 || (int)e->check_in_reply->status > 3)
            return fedreci_error(FEDREC_ERR_FORMAT, "wire: CheckInReply status %d unknown",
                                 (int)e->check_in_reply->status);
        if (e->check_in_reply->status == FEDREC__V1__CHECK_IN_REPLY__STATUS__SELECTED)
            return check_params(e->check_in_reply->params);
        return FEDREC_OK;
    case FEDREC__V1__ENVELOPE__BODY_MODEL_REQUEST:
        return FEDREC_OK;
    case FEDREC__V1__ENVELOPE__BODY_MODEL_REPLY:
        return check_model(e->model_reply);
    case FEDREC__V1__ENVELOPE__BODY_ADVERTISE_KEYS: {
        const Fedrec__V1__AdvertiseKeys *a = e->advertise_keys;
        if ((r = want_len(&a->c_pk, FEDRECI_SECAGG_PK_BYTES, "AdvertiseKeys.c_pk")) ||
            (r = want_len(&a->s_pk, FEDRECI_SECAGG_PK_BYTES, "AdvertiseKeys.s_pk")) ||
            (r = want_len(&a->sig, FEDRECI_SECAGG_SIG_BYTES, "AdvertiseKeys.sig")) ||
            (r = want_len(&a->binding, 32, "AdvertiseKeys.binding")) ||
            (r = want_len(&a->seed_commit, 32, "AdvertiseKeys.seed_commit")))
            return r;
        return FEDREC_OK;
    }
    case FEDREC__V1__ENVELOPE__BODY_ROSTER: {
        const Fedrec__V1__Roster *ro = e->roster;
        if ((r = check_sorted(ro->member_ids, ro->n_member_ids, "Roster.member_ids")))
            return r;
        if (ro->seed_digest.len != 0 && ro->seed_digest.len != 32)
            return fedreci_error(FEDREC_ERR_FORMAT, "wire: Roster.seed_digest has %zu bytes",
                                 ro->seed_digest.len);
        for (size_t i = 0; i < ro->n_adverts; i++) {
            const Fedrec__V1__Advert *a = ro->adverts[i];
            if ((r = check_advert(a, "Roster", i, 32)))
                return r;
            if (!id_in(ro->member_ids, ro->n_member_ids, a->client_id))
                return fedreci_error(FEDREC_ERR_FORMAT,
                                     "wire: Roster advert for client %llu who is not a member",
                                     (unsigned long long)a->client_id);
        }
        return FEDREC_OK;
    }
    case FEDREC__V1__ENVELOPE__BODY_SEED_REVEAL:
        return want_len(&e->seed_reveal->contribution, FEDRECI_SECAGG_CONTRIB_BYTES,
                        "SeedReveal.contribution");
    case FEDREC__V1__ENVELOPE__BODY_SEED_RELAY: {
        const Fedrec__V1__SeedRelay *sr = e->seed_relay;
        if (sr->contributions.len % FEDRECI_SECAGG_CONTRIB_BYTES != 0)
            return fedreci_error(FEDREC_ERR_FORMAT,
                                 "wire: SeedRelay.contributions has %zu bytes, not a multiple "
                                 "of %d",
                                 sr->contributions.len, FEDRECI_SECAGG_CONTRIB_BYTES);
        if (sr->missing_commits.len / 32 != sr->n_missing || sr->missing_commits.len % 32 != 0)
            return fedreci_error(FEDREC_ERR_FORMAT,
                                 "wire: SeedRelay.missing_commits has %zu bytes for %zu missing "
                                 "members (32 each)",
                                 sr->missing_commits.len, sr->n_missing);
        for (size_t i = 0; i < sr->n_adverts; i++)
            if ((r = check_advert(sr->adverts[i], "SeedRelay", i, 0)))
                return r;
        return FEDREC_OK;
    }
    case FEDREC__V1__ENVELOPE__BODY_CONSISTENCY: {
        const Fedrec__V1__Consistency *co = e->consistency;
        if ((r = want_len(&co->sig, FEDRECI_SECAGG_SIG_BYTES, "Consistency.sig")))
            return r;
        for (size_t i = 1; i < co->n_want; i++)
            if (co->want[i] <= co->want[i - 1])
                return fedreci_error(FEDREC_ERR_FORMAT,
                                     "wire: Consistency.want is not strictly ascending at %zu", i);
        return check_tags(&co->tags, "Consistency.tags");
    }
    case FEDREC__V1__ENVELOPE__BODY_CONSISTENCY_RELAY: {
        const Fedrec__V1__ConsistencyRelay *cr = e->consistency_relay;
        for (size_t i = 0; i < cr->n_sigs; i++) {
            if (!cr->sigs[i])
                return fedreci_error(FEDREC_ERR_FORMAT, "wire: ConsistencyRelay.sigs[%zu] missing",
                                     i);
            if ((r = want_len(&cr->sigs[i]->sig, FEDRECI_SECAGG_SIG_BYTES,
                              "ConsistencyRelay.sigs.sig")))
                return r;
        }
        return check_tags(&cr->tags, "ConsistencyRelay.tags");
    }
    case FEDREC__V1__ENVELOPE__BODY_COMPLAINTS:
        return check_complaints(e->complaints->complaints, e->complaints->n_complaints,
                                "Complaints.complaints");
    case FEDREC__V1__ENVELOPE__BODY_OPENINGS:
        return check_openings(e->openings->openings, e->openings->n_openings, "Openings.openings");
    case FEDREC__V1__ENVELOPE__BODY_COMPLAINT_RELAY: {
        const Fedrec__V1__ComplaintRelay *cr = e->complaint_relay;
        if ((r = check_complaints(cr->against, cr->n_against, "ComplaintRelay.against")) ||
            (r = check_openings(cr->openings, cr->n_openings, "ComplaintRelay.openings")) ||
            (r = check_sorted(cr->excluded, cr->n_excluded, "ComplaintRelay.excluded")))
            return r;
        return FEDREC_OK;
    }
    case FEDREC__V1__ENVELOPE__BODY_SHARE_KEYS:
        return check_cts(e->share_keys->cts, e->share_keys->n_cts, "ShareKeys.cts");
    case FEDREC__V1__ENVELOPE__BODY_SHARE_RELAY:
        return check_cts(e->share_relay->cts, e->share_relay->n_cts, "ShareRelay.cts");
    case FEDREC__V1__ENVELOPE__BODY_MASKED_INPUT:
        if (e->masked_input->y.len == 0 || e->masked_input->y.len % 4 != 0)
            return fedreci_error(FEDREC_ERR_FORMAT,
                                 "wire: MaskedInput.y has %zu bytes, not a whole number of words",
                                 e->masked_input->y.len);
        return FEDREC_OK;
    case FEDREC__V1__ENVELOPE__BODY_UNMASK_REQUEST: {
        const Fedrec__V1__UnmaskRequest *u = e->unmask_request;
        if ((r = check_sorted(u->survivors, u->n_survivors, "UnmaskRequest.survivors")) ||
            (r = check_sorted(u->dropped, u->n_dropped, "UnmaskRequest.dropped")))
            return r;
        /* a client named both survivor and dropped is refused by the client
           state machine, with its own refusal name (unmask_both_sets) */
        return FEDREC_OK;
    }
    case FEDREC__V1__ENVELOPE__BODY_UNMASK:
        for (size_t i = 0; i < e->unmask->n_reveals; i++) {
            const Fedrec__V1__Reveal *v = e->unmask->reveals[i];
            if (!v)
                return fedreci_error(FEDREC_ERR_FORMAT, "wire: Unmask.reveals[%zu] missing", i);
            if (v->kind > 1)
                return fedreci_error(FEDREC_ERR_FORMAT, "wire: Unmask.reveals[%zu].kind=%u", i,
                                     v->kind);
            if ((r = want_len(&v->share, FEDRECI_SECAGG_SHARE_BYTES, "Unmask.reveals.share")) ||
                (r = want_len(&v->opening, 32, "Unmask.reveals.opening")))
                return r;
        }
        return FEDREC_OK;
    case FEDREC__V1__ENVELOPE__BODY_ROUND_RESULT:
    case FEDREC__V1__ENVELOPE__BODY_ACK:
    case FEDREC__V1__ENVELOPE__BODY_ERROR:
    case FEDREC__V1__ENVELOPE__BODY_RETRY_AFTER:
        return FEDREC_OK;
    default:
        return fedreci_error(FEDREC_ERR_FORMAT, "wire: envelope without a body");
    }
}

/* A body pointer is NULL only when the message is malformed; protobuf-c sets
 * the oneof case only with a parsed submessage, but check anyway. */
static int body_present(const fedreci_wire_env *e)
{
    return e->body_case == FEDREC__V1__ENVELOPE__BODY__NOT_SET || e->check_in != NULL;
}

fedrec_err fedreci_wire_decode(const uint8_t *buf, size_t len, size_t cap, fedreci_wire_env **out)
{
    if (!out || (!buf && len))
        return fedreci_error(FEDREC_ERR_INVALID, "wire: decode: NULL argument");
    if (len > cap)
        return fedreci_error(FEDREC_ERR_TOO_BIG, "wire: message of %zu bytes over the cap of %zu",
                             len, cap);
    if (len == 0)
        return fedreci_error(FEDREC_ERR_FORMAT, "wire: empty message");
    fedreci_wire_env *e = fedrec__v1__envelope__unpack(NULL, len, buf);
    if (!e)
        return fedreci_error(FEDREC_ERR_FORMAT,
                             "wire: %zu bytes are not a valid Envelope (truncated or malformed)",
                             len);
    fedrec_err r = FEDREC_OK;
    if (e->protocol_version != FEDRECI_WIRE_PROTOCOL_VERSION)
        r = fedreci_error(FEDREC_ERR_UNSUPPORTED, "wire: protocol version %u, expected %u",
                          e->protocol_version, FEDRECI_WIRE_PROTOCOL_VERSION);
    else if (e->sig.len != 0 && e->sig.len != FEDRECI_WIRE_SIG_BYTES)
        r = fedreci_error(FEDREC_ERR_FORMAT, "wire: Envelope.sig has %zu bytes, expected %u",
                          e->sig.len, FEDRECI_WIRE_SIG_BYTES);
    else if (e->mac.len != 0 && e->mac.len != FEDRECI_WIRE_MAC_BYTES)
        r = fedreci_error(FEDREC_ERR_FORMAT, "wire: Envelope.mac has %zu bytes, expected %u",
                          e->mac.len, FEDRECI_WIRE_MAC_BYTES);
    else if (!body_present(e))
        r = fedreci_error(FEDREC_ERR_FORMAT, "wire: body case %d without a body",
                          (int)e->body_case);
    else if (body_stage(e->body_case) != 0 && body_stage(e->body_case) != e->stage &&
             !(e->body_case == FEDREC__V1__ENVELOPE__BODY_COMPLAINT_RELAY &&
               e->stage == FEDRECI_WIRE_STAGE_OPENING) &&
             /* a seed step retry: the reply to a SeedReveal (version 8) */
             !(e->body_case == FEDREC__V1__ENVELOPE__BODY_ROSTER &&
               e->stage == FEDRECI_WIRE_STAGE_SEED))
        r = fedreci_error(FEDREC_ERR_FORMAT, "wire: body %d sent with stage %u, expected %u",
                          (int)e->body_case, e->stage, body_stage(e->body_case));
    else
        r = check_body(e);
    if (r) {
        fedrec__v1__envelope__free_unpacked(e, NULL);
        return r;
    }
    *out = e;
    return FEDREC_OK;
}

fedrec_err fedreci_wire_decode_msg(nng_msg *m, size_t cap, fedreci_wire_env **out)
{
    if (!m)
        return fedreci_error(FEDREC_ERR_INVALID, "wire: decode: NULL message");
    return fedreci_wire_decode((const uint8_t *)nng_msg_body(m), nng_msg_len(m), cap, out);
}

void fedreci_wire_free(fedreci_wire_env *e)
{
    if (e)
        fedrec__v1__envelope__free_unpacked(e, NULL);
}

fedreci_wire_hdr fedreci_wire_header(const fedreci_wire_env *e)
{
    fedreci_wire_hdr h = {e->client_id, e->round_id, e->stage};
    return h;
}

/* ---- accessors ------------------------------------------------------------- */

static fedrec_err want_body(const fedreci_wire_env *e, Fedrec__V1__Envelope__BodyCase c,
                            const char *name)
{
    if (!e || e->body_case != c)
        return fedreci_error(FEDREC_ERR_PROTOCOL, "wire: expected a %s message (got body %d)", name,
                             e ? (int)e->body_case : -1);
    return FEDREC_OK;
}

fedrec_err fedreci_wire_get_checkin(const fedreci_wire_env *e, const uint8_t **identity_pk,
                                    uint64_t *model_version, int *opted_in)
{
    fedrec_err r = want_body(e, FEDREC__V1__ENVELOPE__BODY_CHECK_IN, "CheckIn");
    if (r)
        return r;
    *identity_pk = e->check_in->identity_pk.data;
    *model_version = e->check_in->model_version;
    *opted_in = e->check_in->opted_in ? 1 : 0;
    return FEDREC_OK;
}

fedrec_err fedreci_wire_get_attestation(const fedreci_wire_env *e, const uint8_t **token,
                                        size_t *len)
{
    fedrec_err r = want_body(e, FEDREC__V1__ENVELOPE__BODY_CHECK_IN, "CheckIn");
    if (r)
        return r;
    if (e->check_in->attestation.len > FEDRECI_WIRE_ATTEST_MAX)
        return fedreci_error(FEDREC_ERR_FORMAT,
                             "wire: CheckIn attestation of %zu bytes, at most %d",
                             e->check_in->attestation.len, FEDRECI_WIRE_ATTEST_MAX);
    *token = e->check_in->attestation.len ? e->check_in->attestation.data : NULL;
    *len = e->check_in->attestation.len;
    return FEDREC_OK;
}

uint64_t fedreci_wire_checkin_sent_ms(const fedreci_wire_env *e)
{
    return e && e->body_case == FEDREC__V1__ENVELOPE__BODY_CHECK_IN ? e->check_in->sent_unix_ms : 0;
}

fedrec_err fedreci_wire_get_round(const fedreci_wire_env *e, fedreci_wire_round *out)
{
    fedrec_err r = want_body(e, FEDREC__V1__ENVELOPE__BODY_CHECK_IN_REPLY, "CheckInReply");
    if (r)
        return r;
    if (e->check_in_reply->status != FEDREC__V1__CHECK_IN_REPLY__STATUS__SELECTED)
        return fedreci_error(FEDREC_ERR_NOT_SELECTED, "wire: CheckInReply is not SELECTED");
    const Fedrec__V1__RoundParams *p = e->check_in_reply->params;
    fedreci_wire_round w;
    memset(&w, 0, sizeof w);
    w.secagg.round_id = e->round_id;
    w.secagg.n = p->n;
    w.secagg.k = p->neighbors;
    w.secagg.t = p->threshold;
    w.secagg.d = p->d;
    w.secagg.clip = p->clip;
    w.secagg.scale = p->scale;
    w.secagg.max_weight = p->max_weight;
    w.secagg.seed_retries = p->seed_retries;
    memcpy(w.secagg.graph_seed, p->graph_seed.data, FEDRECI_SECAGG_SEED_BYTES);
    w.model_version = p->model_version;
    w.n_items = p->n_items;
    w.k_factors = p->k_factors;
    w.stage_timeout_ms = p->stage_timeout_ms;
    memcpy(w.coord_pk, p->coord_pk.data, sizeof w.coord_pk);
    w.step = p->step;
    w.x_bound = p->step ? p->x_bound : 0;
    if (p->dp) {
        const Fedrec__V1__DpParams *q = p->dp;
        w.dp.mechanism = q->mechanism ? q->mechanism : UINT32_MAX; /* 0 on the wire: unknown */
        w.dp.min_survivors = q->min_survivors;
        w.dp.l2_bound = q->l2_bound;
        w.dp.scale = q->scale;
        w.dp.noise_var = q->noise_var;
        w.dp.beta = q->beta;
        w.dp.row_bound = q->row_bound;
        w.dp.gram_weight = q->gram_weight;
        w.dp.lambda = q->lambda;
        w.dp.epsilon_round = q->epsilon_round;
        w.dp.delta = q->delta;
        memcpy(w.dp.rotation_seed, q->rotation_seed.data, FEDRECI_DP_SEED_BYTES);
    }
    const char *au = e->check_in_reply->aggregator_url;
    if (au && au[0]) {
        size_t ul = strnlen(au, FEDRECI_WIRE_MAX_URL_BYTES + 1);
        if (ul > FEDRECI_WIRE_MAX_URL_BYTES)
            return fedreci_error(FEDREC_ERR_FORMAT,
                                 "wire: CheckInReply aggregator_url longer than %u bytes",
                                 FEDRECI_WIRE_MAX_URL_BYTES);
        memcpy(w.aggregator_url, au, ul + 1);
    }
    /* structural rules; secagg_client_create checks the overflow budget */
    if (w.secagg.n < 2 || w.secagg.k < 1 || w.secagg.k > w.secagg.n - 1 ||
        w.secagg.t <= w.secagg.k / 2 || w.secagg.t > w.secagg.k || w.secagg.clip <= 0 ||
        w.secagg.scale <= 0)
        return fedreci_error(FEDREC_ERR_FORMAT,
                             "wire: RoundParams n=%u k=%u t=%u clip=%g scale=%g break the SecAgg "
                             "parameter rules",
                             w.secagg.n, w.secagg.k, w.secagg.t, w.secagg.clip, w.secagg.scale);
    *out = w;
    return FEDREC_OK;
}

fedrec_err fedreci_wire_get_model(const fedreci_wire_env *e, fedreci_wire_model *out)
{
    fedrec_err r = want_body(e, FEDREC__V1__ENVELOPE__BODY_MODEL_REPLY, "ModelReply");
    if (r)
        return r;
    const Fedrec__V1__ModelReply *m = e->model_reply;
    if (m->not_modified)
        return fedreci_error(FEDREC_ERR_PROTOCOL, "wire: ModelReply is 'not modified'");
    fedreci_wire_model w;
    w.version = m->version;
    w.n_items = m->n_items;
    w.k = m->k;
    w.item_factors = (const float *)(const void *)m->item_factors.data;
    w.gram = m->gram.len ? (const float *)(const void *)m->gram.data : NULL;
    w.checksum = m->checksum.data;
    w.item_codes = (const char *const *)m->item_codes;
    w.n_item_codes = m->n_item_codes;
    w.retired_rows = m->n_retired_rows ? m->retired_rows : NULL;
    w.n_retired = m->n_retired_rows;
    *out = w;
    return FEDREC_OK;
}

fedrec_err fedreci_wire_get_advert(const fedreci_wire_env *e, fedreci_secagg_advert *out)
{
    fedrec_err r = want_body(e, FEDREC__V1__ENVELOPE__BODY_ADVERTISE_KEYS, "AdvertiseKeys");
    if (r)
        return r;
    fedreci_secagg_advert a;
    memset(&a, 0, sizeof a);
    a.client_id = e->client_id;
    memcpy(a.c_pk, e->advertise_keys->c_pk.data, sizeof a.c_pk);
    memcpy(a.s_pk, e->advertise_keys->s_pk.data, sizeof a.s_pk);
    memcpy(a.sig, e->advertise_keys->sig.data, sizeof a.sig);
    memcpy(a.binding, e->advertise_keys->binding.data, sizeof a.binding);
    memcpy(a.seed_commit, e->advertise_keys->seed_commit.data, sizeof a.seed_commit);
    *out = a;
    return FEDREC_OK;
}

fedrec_err fedreci_wire_get_roster(const fedreci_wire_env *e, uint64_t self, size_t min_m,
                                   size_t max_m, fedreci_secagg_advert **out, size_t *m)
{
    fedrec_err r = want_body(e, FEDREC__V1__ENVELOPE__BODY_ROSTER, "Roster");
    if (r)
        return r;
    const Fedrec__V1__Roster *ro = e->roster;
    size_t n = ro->n_member_ids;
    if (n < min_m || n > max_m)
        return fedreci_error(FEDREC_ERR_FORMAT, "wire: Roster has %zu members, expected %zu..%zu",
                             n, min_m, max_m);
    if (!id_in(ro->member_ids, n, self))
        return fedreci_error(FEDREC_ERR_PROTOCOL, "wire: Roster does not contain client %llu",
                             (unsigned long long)self);
    fedreci_secagg_advert *v = calloc(n, sizeof *v);
    if (!v)
        return fedreci_error(FEDREC_ERR_NOMEM, "wire: roster of %zu members", n);
    for (size_t i = 0; i < n; i++)
        v[i].client_id = ro->member_ids[i];
    for (size_t i = 0; i < ro->n_adverts; i++) {
        const Fedrec__V1__Advert *a = ro->adverts[i];
        /* binary search for the slot (decode checked membership) */
        size_t lo = 0, hi = n;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (ro->member_ids[mid] < a->client_id)
                lo = mid + 1;
            else
                hi = mid;
        }
        fedreci_secagg_advert *s = &v[lo];
        memcpy(s->identity_pk, a->identity_pk.data, sizeof s->identity_pk);
        memcpy(s->c_pk, a->c_pk.data, sizeof s->c_pk);
        memcpy(s->s_pk, a->s_pk.data, sizeof s->s_pk);
        memcpy(s->sig, a->sig.data, sizeof s->sig);
        memcpy(s->binding, a->binding.data, sizeof s->binding);
        memcpy(s->seed_commit, a->seed_commit.data, sizeof s->seed_commit);
    }
    *out = v;
    *m = n;
    return FEDREC_OK;
}

fedrec_err fedreci_wire_get_seed_digest(const fedreci_wire_env *e, const uint8_t **digest)
{
    fedrec_err r = want_body(e, FEDREC__V1__ENVELOPE__BODY_ROSTER, "Roster");
    if (r)
        return r;
    if (e->roster->seed_digest.len != 32)
        return fedreci_error(FEDREC_ERR_FORMAT, "wire: Roster without a seed digest");
    *digest = e->roster->seed_digest.data;
    return FEDREC_OK;
}

fedrec_err fedreci_wire_get_seed_attempt(const fedreci_wire_env *e, uint32_t *attempt)
{
    if (!e || !attempt)
        return fedreci_error(FEDREC_ERR_INVALID, "wire: get_seed_attempt: NULL argument");
    if (e->body_case == FEDREC__V1__ENVELOPE__BODY_ROSTER && e->roster)
        *attempt = e->roster->attempt;
    else if (e->body_case == FEDREC__V1__ENVELOPE__BODY_SEED_REVEAL && e->seed_reveal)
        *attempt = e->seed_reveal->attempt;
    else
        return fedreci_error(FEDREC_ERR_FORMAT,
                             "wire: a seed step attempt asked of body %d (Roster or SeedReveal "
                             "expected)",
                             (int)e->body_case);
    return FEDREC_OK;
}

fedrec_err fedreci_wire_get_seed_reveal(const fedreci_wire_env *e, const uint8_t **contribution)
{
    fedrec_err r = want_body(e, FEDREC__V1__ENVELOPE__BODY_SEED_REVEAL, "SeedReveal");
    if (r)
        return r;
    *contribution = e->seed_reveal->contribution.data;
    return FEDREC_OK;
}

fedrec_err fedreci_wire_get_seed_relay(const fedreci_wire_env *e, const uint64_t *ids, size_t m,
                                       uint8_t **contribs, uint8_t **missing,
                                       fedreci_secagg_advert **adverts)
{
    fedrec_err r = want_body(e, FEDREC__V1__ENVELOPE__BODY_SEED_RELAY, "SeedRelay");
    if (r)
        return r;
    const Fedrec__V1__SeedRelay *sr = e->seed_relay;
    enum { CB = FEDRECI_SECAGG_CONTRIB_BYTES, SLOT = FEDRECI_SECAGG_SEED_SLOT_BYTES };
    if (sr->n_missing > m || sr->contributions.len != CB * (m - sr->n_missing))
        return fedreci_error(FEDREC_ERR_FORMAT,
                             "wire: SeedRelay has %zu contribution bytes and %zu members "
                             "missing for a roster of %zu (%d bytes per member that revealed)",
                             sr->contributions.len, sr->n_missing, m, CB);
    for (size_t i = 0; i < sr->n_adverts; i++)
        if (!id_in(ids, m, sr->adverts[i]->client_id))
            return fedreci_error(FEDREC_ERR_FORMAT,
                                 "wire: SeedRelay advert for client %llu who is not a member",
                                 (unsigned long long)sr->adverts[i]->client_id);
    for (size_t i = 0; i < sr->n_missing; i++)
        if (sr->missing[i] >= m || (i > 0 && sr->missing[i] <= sr->missing[i - 1]))
            return fedreci_error(FEDREC_ERR_FORMAT,
                                 "wire: SeedRelay.missing[%zu] = %u: not strictly ascending "
                                 "below %zu",
                                 i, sr->missing[i], m);
    uint8_t *c = calloc(m ? m : 1, SLOT);
    uint8_t *mi = calloc(m ? m : 1, 1);
    fedreci_secagg_advert *v = calloc(m ? m : 1, sizeof *v);
    if (!c || !mi || !v) {
        free(c);
        free(mi);
        free(v);
        return fedreci_error(FEDREC_ERR_NOMEM, "wire: seed relay of %zu members", m);
    }
    for (size_t i = 0; i < sr->n_missing; i++) {
        mi[sr->missing[i]] = 1;
        memcpy(c + SLOT * sr->missing[i], sr->missing_commits.data + 32 * i, 32);
    }
    for (size_t i = 0, k = 0; i < m; i++) {
        if (!mi[i])
            memcpy(c + SLOT * i, sr->contributions.data + CB * k++, CB);
        v[i].client_id = ids[i];
    }
    for (size_t i = 0; i < sr->n_adverts; i++) {
        const Fedrec__V1__Advert *a = sr->adverts[i];
        size_t lo = 0, hi = m;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (ids[mid] < a->client_id)
                lo = mid + 1;
            else
                hi = mid;
        }
        fedreci_secagg_advert *s = &v[lo];
        memcpy(s->identity_pk, a->identity_pk.data, sizeof s->identity_pk);
        memcpy(s->c_pk, a->c_pk.data, sizeof s->c_pk);
        memcpy(s->s_pk, a->s_pk.data, sizeof s->s_pk);
        memcpy(s->sig, a->sig.data, sizeof s->sig);
        memcpy(s->binding, a->binding.data, sizeof s->binding);
        /* seed_commit stays zero: the client derives it (decode checked
           that none was sent) */
    }
    *contribs = c;
    *missing = mi;
    *adverts = v;
    return FEDREC_OK;
}

fedrec_err fedreci_wire_get_tags(const fedreci_wire_env *e, uint64_t self, const uint64_t *peers,
                                 size_t n_peers, fedreci_secagg_tag **out, size_t *n)
{
    const ProtobufCBinaryData *t;
    int relay;
    if (e && e->body_case == FEDREC__V1__ENVELOPE__BODY_CONSISTENCY) {
        t = &e->consistency->tags;
        relay = 0;
    } else if (e && e->body_case == FEDREC__V1__ENVELOPE__BODY_CONSISTENCY_RELAY) {
        t = &e->consistency_relay->tags;
        relay = 1;
    } else {
        return want_body(e, FEDREC__V1__ENVELOPE__BODY_CONSISTENCY, "Consistency/Relay");
    }
    if ((n_peers && !peers) || !out || !n)
        return fedreci_error(FEDREC_ERR_INVALID, "wire: get_tags: NULL argument");
    if (t->len != n_peers * FEDRECI_SECAGG_TAG_BYTES)
        return fedreci_error(FEDREC_ERR_FORMAT,
                             "wire: %s carries %zu tag bytes, expected %zu (16 for each of %zu "
                             "neighbours named survivors)",
                             relay ? "ConsistencyRelay" : "Consistency", t->len,
                             n_peers * FEDRECI_SECAGG_TAG_BYTES, n_peers);
    fedreci_secagg_tag *v = calloc(n_peers ? n_peers : 1, sizeof *v);
    if (!v)
        return fedreci_error(FEDREC_ERR_NOMEM, "wire: %zu consistency tags", n_peers);
    size_t k = 0;
    for (size_t i = 0; i < n_peers; i++) {
        const uint8_t *slot = t->data + i * FEDRECI_SECAGG_TAG_BYTES;
        if (sodium_is_zero(slot, FEDRECI_SECAGG_TAG_BYTES))
            continue;
        v[k].from = relay ? peers[i] : self;
        v[k].to = relay ? self : peers[i];
        memcpy(v[k].tag, slot, FEDRECI_SECAGG_TAG_BYTES);
        k++;
    }
    *out = v;
    *n = k;
    return FEDREC_OK;
}

fedrec_err fedreci_wire_get_endorse(const fedreci_wire_env *e, const uint8_t **sig,
                                    const uint64_t **want, size_t *n_want)
{
    fedrec_err r = want_body(e, FEDREC__V1__ENVELOPE__BODY_CONSISTENCY, "Consistency");
    if (r)
        return r;
    *sig = e->consistency->sig.data;
    *want = e->consistency->want;
    *n_want = e->consistency->n_want;
    return FEDREC_OK;
}

fedrec_err fedreci_wire_get_endorsements(const fedreci_wire_env *e, size_t max_n,
                                         fedreci_secagg_endorsement **out, size_t *n)
{
    fedrec_err r = want_body(e, FEDREC__V1__ENVELOPE__BODY_CONSISTENCY_RELAY, "ConsistencyRelay");
    if (r)
        return r;
    size_t ns = e->consistency_relay->n_sigs;
    if (ns > max_n)
        return fedreci_error(FEDREC_ERR_FORMAT,
                             "wire: %zu endorsement signatures, at most %zu expected", ns, max_n);
    fedreci_secagg_endorsement *v = calloc(ns ? ns : 1, sizeof *v);
    if (!v)
        return fedreci_error(FEDREC_ERR_NOMEM, "wire: %zu endorsement signatures", ns);
    for (size_t i = 0; i < ns; i++) {
        v[i].from = e->consistency_relay->sigs[i]->from;
        memcpy(v[i].sig, e->consistency_relay->sigs[i]->sig.data, FEDRECI_SECAGG_SIG_BYTES);
    }
    *out = v;
    *n = ns;
    return FEDREC_OK;
}

fedrec_err fedreci_wire_get_complaints(const fedreci_wire_env *e, size_t max_n,
                                       fedreci_secagg_complaint **out, size_t *n)
{
    Fedrec__V1__Complaint **c;
    size_t nc;
    if (e && e->body_case == FEDREC__V1__ENVELOPE__BODY_COMPLAINTS) {
        c = e->complaints->complaints;
        nc = e->complaints->n_complaints;
    } else if (e && e->body_case == FEDREC__V1__ENVELOPE__BODY_COMPLAINT_RELAY) {
        c = e->complaint_relay->against;
        nc = e->complaint_relay->n_against;
    } else {
        return want_body(e, FEDREC__V1__ENVELOPE__BODY_COMPLAINTS, "Complaints/ComplaintRelay");
    }
    if (nc > max_n)
        return fedreci_error(FEDREC_ERR_FORMAT, "wire: %zu complaints, at most %zu expected", nc,
                             max_n);
    fedreci_secagg_complaint *v = calloc(nc ? nc : 1, sizeof *v);
    if (!v)
        return fedreci_error(FEDREC_ERR_NOMEM, "wire: %zu complaints", nc);
    for (size_t i = 0; i < nc; i++) {
        v[i].from = c[i]->from;
        v[i].dealer = c[i]->dealer;
        memcpy(v[i].bundle, c[i]->bundle.data, 32);
        memcpy(v[i].sig, c[i]->sig.data, FEDRECI_SECAGG_SIG_BYTES);
    }
    *out = v;
    *n = nc;
    return FEDREC_OK;
}

fedrec_err fedreci_wire_get_openings(const fedreci_wire_env *e, size_t max_n,
                                     fedreci_secagg_opening **out, size_t *n)
{
    Fedrec__V1__Opening **o;
    size_t no;
    if (e && e->body_case == FEDREC__V1__ENVELOPE__BODY_OPENINGS) {
        o = e->openings->openings;
        no = e->openings->n_openings;
    } else if (e && e->body_case == FEDREC__V1__ENVELOPE__BODY_COMPLAINT_RELAY) {
        o = e->complaint_relay->openings;
        no = e->complaint_relay->n_openings;
    } else {
        return want_body(e, FEDREC__V1__ENVELOPE__BODY_OPENINGS, "Openings/ComplaintRelay");
    }
    if (no > max_n)
        return fedreci_error(FEDREC_ERR_FORMAT, "wire: %zu openings, at most %zu expected", no,
                             max_n);
    fedreci_secagg_opening *v = calloc(no ? no : 1, sizeof *v);
    if (!v)
        return fedreci_error(FEDREC_ERR_NOMEM, "wire: %zu openings", no);
    for (size_t i = 0; i < no; i++) {
        v[i].dealer = o[i]->dealer;
        v[i].to = o[i]->to;
        memcpy(v[i].plain, o[i]->plain.data, sizeof v[i].plain);
    }
    *out = v;
    *n = no;
    return FEDREC_OK;
}

fedrec_err fedreci_wire_get_complaint_relay(const fedreci_wire_env *e, int *final,
                                            const uint64_t **excluded, size_t *n_excluded)
{
    if (!e || e->body_case != FEDREC__V1__ENVELOPE__BODY_COMPLAINT_RELAY)
        return want_body(e, FEDREC__V1__ENVELOPE__BODY_COMPLAINT_RELAY, "ComplaintRelay");
    *final = e->complaint_relay->final ? 1 : 0;
    *excluded = e->complaint_relay->excluded;
    *n_excluded = e->complaint_relay->n_excluded;
    return FEDREC_OK;
}

fedrec_err fedreci_wire_get_ciphertexts(const fedreci_wire_env *e, size_t max_n,
                                        fedreci_secagg_ciphertext **out, size_t *n)
{
    Fedrec__V1__Ciphertext **cts;
    size_t nc;
    if (e && e->body_case == FEDREC__V1__ENVELOPE__BODY_SHARE_KEYS) {
        cts = e->share_keys->cts;
        nc = e->share_keys->n_cts;
    } else if (e && e->body_case == FEDREC__V1__ENVELOPE__BODY_SHARE_RELAY) {
        cts = e->share_relay->cts;
        nc = e->share_relay->n_cts;
    } else {
        return want_body(e, FEDREC__V1__ENVELOPE__BODY_SHARE_KEYS, "ShareKeys/ShareRelay");
    }
    if (nc > max_n)
        return fedreci_error(FEDREC_ERR_FORMAT, "wire: %zu ciphertexts, at most %zu expected", nc,
                             max_n);
    fedreci_secagg_ciphertext *v = calloc(nc ? nc : 1, sizeof *v);
    if (!v)
        return fedreci_error(FEDREC_ERR_NOMEM, "wire: %zu ciphertexts", nc);
    for (size_t i = 0; i < nc; i++) {
        v[i].from = cts[i]->from;
        v[i].to = cts[i]->to;
        v[i].bytes = cts[i]->data.data;
        v[i].len = cts[i]->data.len;
        v[i].commit = cts[i]->commit.data;
    }
    *out = v;
    *n = nc;
    return FEDREC_OK;
}

fedrec_err fedreci_wire_get_masked(const fedreci_wire_env *e, uint32_t d, const uint32_t **y)
{
    fedrec_err r = want_body(e, FEDREC__V1__ENVELOPE__BODY_MASKED_INPUT, "MaskedInput");
    if (r)
        return r;
    if (e->masked_input->y.len != (size_t)d * 4u)
        return fedreci_error(FEDREC_ERR_FORMAT,
                             "wire: MaskedInput from client %llu has %zu words, the round's d "
                             "is %u",
                             (unsigned long long)e->client_id, e->masked_input->y.len / 4, d);
    /* protobuf-c mallocs bytes fields, so the data is aligned for uint32 */
    *y = (const uint32_t *)(const void *)e->masked_input->y.data;
    return FEDREC_OK;
}

fedrec_err fedreci_wire_get_unmask_request(const fedreci_wire_env *e, const uint64_t **survivors,
                                           size_t *n_survivors, const uint64_t **dropped,
                                           size_t *n_dropped)
{
    fedrec_err r = want_body(e, FEDREC__V1__ENVELOPE__BODY_UNMASK_REQUEST, "UnmaskRequest");
    if (r)
        return r;
    *survivors = e->unmask_request->survivors;
    *n_survivors = e->unmask_request->n_survivors;
    *dropped = e->unmask_request->dropped;
    *n_dropped = e->unmask_request->n_dropped;
    return FEDREC_OK;
}

fedrec_err fedreci_wire_get_reveals(const fedreci_wire_env *e, size_t max_n,
                                    fedreci_secagg_reveal **out, size_t *n)
{
    fedrec_err r = want_body(e, FEDREC__V1__ENVELOPE__BODY_UNMASK, "Unmask");
    if (r)
        return r;
    size_t nr = e->unmask->n_reveals;
    if (nr > max_n)
        return fedreci_error(FEDREC_ERR_FORMAT, "wire: %zu reveals, at most %zu expected", nr,
                             max_n);
    fedreci_secagg_reveal *v = calloc(nr ? nr : 1, sizeof *v);
    if (!v)
        return fedreci_error(FEDREC_ERR_NOMEM, "wire: %zu reveals", nr);
    for (size_t i = 0; i < nr; i++) {
        v[i].about = e->unmask->reveals[i]->about;
        v[i].kind = (uint8_t)e->unmask->reveals[i]->kind;
        memcpy(v[i].share, e->unmask->reveals[i]->share.data, FEDRECI_SECAGG_SHARE_BYTES);
        memcpy(v[i].opening, e->unmask->reveals[i]->opening.data, 32);
    }
    *out = v;
    *n = nr;
    return FEDREC_OK;
}

/* ---- authentication ------------------------------------------------------------ */

#define ENV_LABEL "fedrec.v1.envelope"
#define ENV_MSG_BYTES (sizeof ENV_LABEL - 1 + 4 + 8 + 4 + 8 + 32)

static void put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* The signed message: label, header, BLAKE2b-256 of the bytes before sig. */
static void env_msg(uint8_t out[ENV_MSG_BYTES], uint32_t version, uint64_t round, uint32_t stage,
                    uint64_t client, const uint8_t *body, size_t len)
{
    uint8_t *p = out;
    memcpy(p, ENV_LABEL, sizeof ENV_LABEL - 1);
    p += sizeof ENV_LABEL - 1;
    put_le(p, version, 4);
    put_le(p + 4, round, 8);
    put_le(p + 12, stage, 4);
    put_le(p + 16, client, 8);
    crypto_generichash(p + 24, 32, body, len, NULL, 0);
}

/* Envelope field 100, wire type 2 (length-delimited): varint 802, then 64. */
static const uint8_t sig_tag[3] = {0xA2, 0x06, FEDRECI_WIRE_SIG_BYTES};

/* Envelope field 101, wire type 2: varint 810, then 40. */
static const uint8_t mac_tag[3] = {0xAA, 0x06, FEDRECI_WIRE_MAC_BYTES};

static int ends_authenticated(const uint8_t *body, size_t len)
{
    return (len >= FEDRECI_WIRE_SIG_SUFFIX &&
            memcmp(body + len - FEDRECI_WIRE_SIG_SUFFIX, sig_tag, sizeof sig_tag) == 0) ||
           (len >= FEDRECI_WIRE_MAC_SUFFIX &&
            memcmp(body + len - FEDRECI_WIRE_MAC_SUFFIX, mac_tag, sizeof mac_tag) == 0);
}

fedrec_err fedreci_wire_sign(nng_msg *m, const fedreci_wire_hdr *h, const uint8_t identity_sk[64])
{
    if (!m || !h || !identity_sk)
        return fedreci_error(FEDREC_ERR_INVALID, "wire: sign: NULL argument");
    const uint8_t *body = (const uint8_t *)nng_msg_body(m);
    size_t len = nng_msg_len(m);
    if (ends_authenticated(body, len))
        return fedreci_error(FEDREC_ERR_INVALID,
                             "wire: sign: the message (client %llu, stage %u) is already signed",
                             (unsigned long long)h->client_id, h->stage);
    uint8_t msg[ENV_MSG_BYTES], sig[FEDRECI_WIRE_SIG_BYTES];
    env_msg(msg, FEDRECI_WIRE_PROTOCOL_VERSION, h->round_id, h->stage, h->client_id, body, len);
    crypto_sign_detached(sig, NULL, msg, sizeof msg, identity_sk);
    if (nng_msg_append(m, sig_tag, sizeof sig_tag) != 0)
        return fedreci_error(FEDREC_ERR_NOMEM, "wire: sign: appending the signature");
    if (nng_msg_append(m, sig, sizeof sig) != 0) {
        (void)nng_msg_chop(m, sizeof sig_tag);
        return fedreci_error(FEDREC_ERR_NOMEM, "wire: sign: appending the signature");
    }
    return FEDREC_OK;
}

fedrec_err fedreci_wire_verify(const uint8_t *buf, size_t len, const fedreci_wire_env *e,
                               const uint8_t identity_pk[32])
{
    if (!buf || !e || !identity_pk)
        return fedreci_error(FEDREC_ERR_INVALID, "wire: verify: NULL argument");
    if (e->sig.len != FEDRECI_WIRE_SIG_BYTES || e->mac.len != 0)
        return fedreci_error(FEDREC_ERR_SIGNATURE,
                             "wire: message from client %llu (round %llu, stage %u) is not signed",
                             (unsigned long long)e->client_id, (unsigned long long)e->round_id,
                             e->stage);
    if (len < FEDRECI_WIRE_SIG_SUFFIX ||
        memcmp(buf + len - FEDRECI_WIRE_SIG_SUFFIX, sig_tag, sizeof sig_tag) != 0 ||
        memcmp(buf + len - FEDRECI_WIRE_SIG_BYTES, e->sig.data, FEDRECI_WIRE_SIG_BYTES) != 0)
        return fedreci_error(FEDREC_ERR_SIGNATURE,
                             "wire: message from client %llu (round %llu, stage %u): the "
                             "signature is not the last field",
                             (unsigned long long)e->client_id, (unsigned long long)e->round_id,
                             e->stage);
    uint8_t msg[ENV_MSG_BYTES];
    env_msg(msg, e->protocol_version, e->round_id, e->stage, e->client_id, buf,
            len - FEDRECI_WIRE_SIG_SUFFIX);
    if (crypto_sign_verify_detached(e->sig.data, msg, sizeof msg, identity_pk) != 0)
        return fedreci_error(FEDREC_ERR_SIGNATURE,
                             "wire: message from client %llu (round %llu, stage %u) does not "
                             "verify under its identity key",
                             (unsigned long long)e->client_id, (unsigned long long)e->round_id,
                             e->stage);
    return FEDREC_OK;
}

fedrec_err fedreci_wire_mac(nng_msg *m, const uint8_t key[32])
{
    if (!m || !key)
        return fedreci_error(FEDREC_ERR_INVALID, "wire: mac: NULL argument");
    const uint8_t *body = (const uint8_t *)nng_msg_body(m);
    size_t len = nng_msg_len(m);
    if (ends_authenticated(body, len))
        return fedreci_error(FEDREC_ERR_INVALID, "wire: mac: the message is already authenticated");
    uint8_t field[FEDRECI_WIRE_MAC_SUFFIX];
    memcpy(field, mac_tag, sizeof mac_tag);
    uint8_t *nonce = field + 3, *tag = field + 3 + 24;
    randombytes_buf(nonce, 24);
    uint8_t none[1];
    crypto_aead_xchacha20poly1305_ietf_encrypt_detached(none, tag, NULL, none, 0, body, len, NULL,
                                                        nonce, key);
    if (nng_msg_append(m, field, sizeof field) != 0)
        return fedreci_error(FEDREC_ERR_NOMEM, "wire: mac: appending the tag");
    return FEDREC_OK;
}

fedrec_err fedreci_wire_verify_mac(const uint8_t *buf, size_t len, const fedreci_wire_env *e,
                                   const uint8_t key[32])
{
    if (!buf || !e || !key)
        return fedreci_error(FEDREC_ERR_INVALID, "wire: verify_mac: NULL argument");
    if (e->mac.len != FEDRECI_WIRE_MAC_BYTES || e->sig.len != 0 || len < FEDRECI_WIRE_MAC_SUFFIX ||
        memcmp(buf + len - FEDRECI_WIRE_MAC_SUFFIX, mac_tag, sizeof mac_tag) != 0 ||
        memcmp(buf + len - FEDRECI_WIRE_MAC_BYTES, e->mac.data, FEDRECI_WIRE_MAC_BYTES) != 0)
        return fedreci_error(FEDREC_ERR_SIGNATURE,
                             "wire: message from client %llu (round %llu, stage %u) does not "
                             "end with its MAC",
                             (unsigned long long)e->client_id, (unsigned long long)e->round_id,
                             e->stage);
    const uint8_t *nonce = buf + len - FEDRECI_WIRE_MAC_BYTES, *tag = nonce + 24;
    uint8_t none[1] = {0};
    if (crypto_aead_xchacha20poly1305_ietf_decrypt_detached(
            none, NULL, none, 0, tag, buf, len - FEDRECI_WIRE_MAC_SUFFIX, nonce, key) != 0)
        return fedreci_error(FEDREC_ERR_SIGNATURE,
                             "wire: message from client %llu (round %llu, stage %u): MAC does "
                             "not verify under its round key",
                             (unsigned long long)e->client_id, (unsigned long long)e->round_id,
                             e->stage);
    return FEDREC_OK;
}

/* ---- encode ------------------------------------------------------------------ */

static void hdr_fill(fedreci_wire_env *e, const fedreci_wire_hdr *h)
{
    e->protocol_version = FEDRECI_WIRE_PROTOCOL_VERSION;
    e->client_id = h->client_id;
    e->round_id = h->round_id;
    e->stage = h->stage;
}

/* The message is allocated with room for the longer authentication field
 * after it: nng_msg_alloc leaves 32 spare bytes at the end, fewer than a
 * signature or a MAC takes, and appending past the capacity makes nng
 * allocate a new body and copy the whole message (a 0.5 MB masked input
 * copied again for its 43-byte MAC). */
#define AUTH_ROOM                                                                                  \
    (FEDRECI_WIRE_SIG_SUFFIX > FEDRECI_WIRE_MAC_SUFFIX ? FEDRECI_WIRE_SIG_SUFFIX                   \
                                                       : FEDRECI_WIRE_MAC_SUFFIX)

static fedrec_err pack(const fedreci_wire_env *e, nng_msg **out)
{
    size_t len = fedrec__v1__envelope__get_packed_size(e);
    nng_msg *m;
    if (len > SIZE_MAX / 2 || nng_msg_alloc(&m, len + AUTH_ROOM) != 0)
        return fedreci_error(FEDREC_ERR_NOMEM, "wire: message of %zu bytes", len);
    (void)nng_msg_chop(m, AUTH_ROOM); /* the capacity stays */
    size_t got = fedrec__v1__envelope__pack(e, (uint8_t *)nng_msg_body(m));
    if (got != len) {
        nng_msg_free(m);
        return fedreci_error(FEDREC_ERR_INTERNAL, "wire: packed %zu of %zu bytes", got, len);
    }
    *out = m;
    return FEDREC_OK;
}

static ProtobufCBinaryData bin(const void *p, size_t len)
{
    ProtobufCBinaryData b;
    b.data = (uint8_t *)(uintptr_t)p;
    b.len = len;
    return b;
}

uint64_t fedreci_wire_checkin_clock(void)
{
    static _Atomic uint64_t last;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    uint64_t prev = atomic_load(&last), next;
    do {
        next = now > prev ? now : prev + 1;
    } while (!atomic_compare_exchange_weak(&last, &prev, next));
    return next;
}

static fedrec_err enc_checkin(nng_msg **out, const fedreci_wire_hdr *h,
                              const uint8_t identity_pk[32], uint64_t model_version, int opted_in,
                              const uint8_t *token, size_t token_len, uint64_t sent_unix_ms)
{
    if (token_len > FEDRECI_WIRE_ATTEST_MAX || (token_len && !token))
        return fedreci_error(FEDREC_ERR_INVALID,
                             "wire: attestation token of %zu bytes (at most %d)", token_len,
                             FEDRECI_WIRE_ATTEST_MAX);
    fedreci_wire_env e = FEDREC__V1__ENVELOPE__INIT;
    Fedrec__V1__CheckIn c = FEDREC__V1__CHECK_IN__INIT;
    hdr_fill(&e, h);
    c.identity_pk = bin(identity_pk, FEDRECI_SECAGG_SIGN_PK_BYTES);
    c.model_version = model_version;
    c.opted_in = opted_in ? 1 : 0;
    if (token_len)
        c.attestation = bin(token, token_len);
    c.sent_unix_ms = sent_unix_ms;
    e.body_case = FEDREC__V1__ENVELOPE__BODY_CHECK_IN;
    e.check_in = &c;
    return pack(&e, out);
}

fedrec_err fedreci_wire_enc_checkin_at(nng_msg **out, const fedreci_wire_hdr *h,
                                       const uint8_t identity_pk[32], uint64_t model_version,
                                       int opted_in, uint64_t sent_unix_ms)
{
    return enc_checkin(out, h, identity_pk, model_version, opted_in, NULL, 0, sent_unix_ms);
}

fedrec_err fedreci_wire_enc_checkin_attested(nng_msg **out, const fedreci_wire_hdr *h,
                                             const uint8_t identity_pk[32], uint64_t model_version,
                                             int opted_in, const uint8_t *token, size_t token_len)
{
    return enc_checkin(out, h, identity_pk, model_version, opted_in, token, token_len,
                       fedreci_wire_checkin_clock());
}

fedrec_err fedreci_wire_enc_checkin(nng_msg **out, const fedreci_wire_hdr *h,
                                    const uint8_t identity_pk[32], uint64_t model_version,
                                    int opted_in)
{
    return fedreci_wire_enc_checkin_attested(out, h, identity_pk, model_version, opted_in, NULL, 0);
}

fedrec_err fedreci_wire_enc_checkin_reply(nng_msg **out, const fedreci_wire_hdr *h, int status,
                                          const fedreci_wire_round *round, uint64_t model_version,
                                          uint32_t retry_after_ms)
{
    fedreci_wire_env e = FEDREC__V1__ENVELOPE__INIT;
    Fedrec__V1__CheckInReply c = FEDREC__V1__CHECK_IN_REPLY__INIT;
    Fedrec__V1__RoundParams p = FEDREC__V1__ROUND_PARAMS__INIT;
    Fedrec__V1__DpParams dp = FEDREC__V1__DP_PARAMS__INIT;
    hdr_fill(&e, h);
    c.status = (Fedrec__V1__CheckInReply__Status)status;
    c.model_version = model_version;
    c.retry_after_ms = retry_after_ms;
    if (status == FEDREC__V1__CHECK_IN_REPLY__STATUS__SELECTED) {
        if (!round)
            return fedreci_error(FEDREC_ERR_INVALID, "wire: SELECTED reply without params");
        p.n = round->secagg.n;
        p.neighbors = round->secagg.k;
        p.threshold = round->secagg.t;
        p.d = round->secagg.d;
        p.clip = round->secagg.clip;
        p.scale = round->secagg.scale;
        p.max_weight = round->secagg.max_weight;
        p.seed_retries = round->secagg.seed_retries;
        p.graph_seed = bin(round->secagg.graph_seed, FEDRECI_SECAGG_SEED_BYTES);
        p.model_version = round->model_version;
        p.n_items = round->n_items;
        p.k_factors = round->k_factors;
        p.stage_timeout_ms = round->stage_timeout_ms;
        p.coord_pk = bin(round->coord_pk, sizeof round->coord_pk);
        p.step = round->step;
        p.x_bound = round->step ? round->x_bound : 0;
        if (round->dp.mechanism) {
            dp.mechanism = round->dp.mechanism;
            dp.min_survivors = round->dp.min_survivors;
            dp.l2_bound = round->dp.l2_bound;
            dp.scale = round->dp.scale;
            dp.noise_var = round->dp.noise_var;
            dp.beta = round->dp.beta;
            dp.row_bound = round->dp.row_bound;
            dp.gram_weight = round->dp.gram_weight;
            dp.lambda = round->dp.lambda;
            dp.epsilon_round = round->dp.epsilon_round;
            dp.delta = round->dp.delta;
            dp.rotation_seed = bin(round->dp.rotation_seed, FEDRECI_DP_SEED_BYTES);
            p.dp = &dp;
        }
        c.params = &p;
        if (round->aggregator_url[0]) {
            if (strnlen(round->aggregator_url, sizeof round->aggregator_url) >
                FEDRECI_WIRE_MAX_URL_BYTES)
                return fedreci_error(FEDREC_ERR_INVALID, "wire: aggregator URL too long");
            c.aggregator_url = (char *)round->aggregator_url;
        }
    }
    e.body_case = FEDREC__V1__ENVELOPE__BODY_CHECK_IN_REPLY;
    e.check_in_reply = &c;
    return pack(&e, out);
}

fedrec_err fedreci_wire_enc_model_request(nng_msg **out, const fedreci_wire_hdr *h,
                                          uint64_t have_version)
{
    fedreci_wire_env e = FEDREC__V1__ENVELOPE__INIT;
    Fedrec__V1__ModelRequest c = FEDREC__V1__MODEL_REQUEST__INIT;
    hdr_fill(&e, h);
    c.have_version = have_version;
    e.body_case = FEDREC__V1__ENVELOPE__BODY_MODEL_REQUEST;
    e.model_request = &c;
    return pack(&e, out);
}

static void fill_model_reply(fedreci_wire_env *e, Fedrec__V1__ModelReply *c,
                             const fedreci_wire_hdr *h, const fedreci_wire_model *model,
                             uint64_t version)
{
    hdr_fill(e, h);
    c->version = version;
    if (!model) {
        c->not_modified = 1;
    } else {
        size_t n = (size_t)model->n_items * model->k;
        c->version = model->version;
        c->n_items = model->n_items;
        c->k = model->k;
        c->item_factors = bin(model->item_factors, n * 4u);
        if (model->gram)
            c->gram = bin(model->gram, (size_t)model->k * model->k * 4u);
        c->checksum = bin(model->checksum, FEDRECI_WIRE_CHECKSUM_BYTES);
        c->n_item_codes = model->n_item_codes;
        c->item_codes = (char **)(uintptr_t)model->item_codes;
        c->n_retired_rows = model->n_retired;
        c->retired_rows = (uint32_t *)(uintptr_t)model->retired_rows;
    }
    e->body_case = FEDREC__V1__ENVELOPE__BODY_MODEL_REPLY;
    e->model_reply = c;
}

size_t fedreci_wire_model_reply_size(const fedreci_wire_hdr *h, const fedreci_wire_model *model)
{
    fedreci_wire_env e = FEDREC__V1__ENVELOPE__INIT;
    Fedrec__V1__ModelReply c = FEDREC__V1__MODEL_REPLY__INIT;
    fill_model_reply(&e, &c, h, model, model ? model->version : 0);
    return fedrec__v1__envelope__get_packed_size(&e);
}

fedrec_err fedreci_wire_enc_model_reply(nng_msg **out, const fedreci_wire_hdr *h,
                                        const fedreci_wire_model *model, uint64_t version)
{
    fedreci_wire_env e = FEDREC__V1__ENVELOPE__INIT;
    Fedrec__V1__ModelReply c = FEDREC__V1__MODEL_REPLY__INIT;
    fill_model_reply(&e, &c, h, model, version);
    return pack(&e, out);
}

fedrec_err fedreci_wire_enc_advertise(nng_msg **out, const fedreci_wire_hdr *h,
                                      const fedreci_secagg_advert *a)
{
    fedreci_wire_env e = FEDREC__V1__ENVELOPE__INIT;
    Fedrec__V1__AdvertiseKeys c = FEDREC__V1__ADVERTISE_KEYS__INIT;
    hdr_fill(&e, h);
    c.c_pk = bin(a->c_pk, sizeof a->c_pk);
    c.s_pk = bin(a->s_pk, sizeof a->s_pk);
    c.sig = bin(a->sig, sizeof a->sig);
    c.binding = bin(a->binding, sizeof a->binding);
    c.seed_commit = bin(a->seed_commit, sizeof a->seed_commit);
    e.body_case = FEDREC__V1__ENVELOPE__BODY_ADVERTISE_KEYS;
    e.advertise_keys = &c;
    return pack(&e, out);
}

/* Fills av[i] / ap[i] from adverts[i]; the byte fields point into adverts. */
static void fill_adverts(Fedrec__V1__Advert *av, Fedrec__V1__Advert **ap,
                         const fedreci_secagg_advert *const *adverts, size_t na, int with_commit)
{
    for (size_t i = 0; i < na; i++) {
        Fedrec__V1__Advert init = FEDREC__V1__ADVERT__INIT;
        av[i] = init;
        av[i].client_id = adverts[i]->client_id;
        av[i].identity_pk = bin(adverts[i]->identity_pk, FEDRECI_SECAGG_SIGN_PK_BYTES);
        av[i].c_pk = bin(adverts[i]->c_pk, FEDRECI_SECAGG_PK_BYTES);
        av[i].s_pk = bin(adverts[i]->s_pk, FEDRECI_SECAGG_PK_BYTES);
        av[i].sig = bin(adverts[i]->sig, FEDRECI_SECAGG_SIG_BYTES);
        av[i].binding = bin(adverts[i]->binding, 32);
        if (with_commit)
            av[i].seed_commit = bin(adverts[i]->seed_commit, 32);
        ap[i] = &av[i];
    }
}

fedrec_err fedreci_wire_enc_roster(nng_msg **out, const fedreci_wire_hdr *h,
                                   const uint64_t *member_ids, size_t m, const uint8_t *seed_digest,
                                   const fedreci_secagg_advert *const *adverts, size_t na)
{
    return fedreci_wire_enc_roster_attempt(out, h, 0, member_ids, m, seed_digest, adverts, na);
}

fedrec_err fedreci_wire_enc_roster_attempt(nng_msg **out, const fedreci_wire_hdr *h,
                                           uint32_t attempt, const uint64_t *member_ids, size_t m,
                                           const uint8_t *seed_digest,
                                           const fedreci_secagg_advert *const *adverts, size_t na)
{
    fedreci_wire_env e = FEDREC__V1__ENVELOPE__INIT;
    Fedrec__V1__Roster c = FEDREC__V1__ROSTER__INIT;
    Fedrec__V1__Advert *av = calloc(na ? na : 1, sizeof *av);
    Fedrec__V1__Advert **ap = calloc(na ? na : 1, sizeof *ap);
    fedrec_err r;
    if (!av || !ap) {
        r = fedreci_error(FEDREC_ERR_NOMEM, "wire: roster of %zu adverts", na);
        goto done;
    }
    hdr_fill(&e, h);
    fill_adverts(av, ap, adverts, na, 1);
    c.n_member_ids = m;
    c.member_ids = (uint64_t *)(uintptr_t)member_ids;
    c.n_adverts = na;
    c.adverts = ap;
    if (seed_digest)
        c.seed_digest = bin(seed_digest, 32);
    c.attempt = attempt;
    e.body_case = FEDREC__V1__ENVELOPE__BODY_ROSTER;
    e.roster = &c;
    r = pack(&e, out);
done:
    free(av);
    free(ap);
    return r;
}

fedrec_err fedreci_wire_enc_seed_reveal(nng_msg **out, const fedreci_wire_hdr *h,
                                        const uint8_t contribution[16])
{
    return fedreci_wire_enc_seed_reveal_attempt(out, h, 0, contribution);
}

fedrec_err fedreci_wire_enc_seed_reveal_attempt(nng_msg **out, const fedreci_wire_hdr *h,
                                                uint32_t attempt, const uint8_t contribution[16])
{
    fedreci_wire_env e = FEDREC__V1__ENVELOPE__INIT;
    Fedrec__V1__SeedReveal c = FEDREC__V1__SEED_REVEAL__INIT;
    hdr_fill(&e, h);
    c.contribution = bin(contribution, FEDRECI_SECAGG_CONTRIB_BYTES);
    c.attempt = attempt;
    e.body_case = FEDREC__V1__ENVELOPE__BODY_SEED_REVEAL;
    e.seed_reveal = &c;
    return pack(&e, out);
}

fedrec_err fedreci_wire_enc_seed_relay(nng_msg **out, const fedreci_wire_hdr *h,
                                       const uint8_t *contribs, size_t m, const uint8_t *missing,
                                       const fedreci_secagg_advert *const *adverts, size_t na)
{
    enum { CB = FEDRECI_SECAGG_CONTRIB_BYTES, SLOT = FEDRECI_SECAGG_SEED_SLOT_BYTES };
    fedreci_wire_env e = FEDREC__V1__ENVELOPE__INIT;
    Fedrec__V1__SeedRelay c = FEDREC__V1__SEED_RELAY__INIT;
    size_t nm = 0;
    for (size_t i = 0; missing && i < m; i++)
        nm += missing[i] != 0;
    uint32_t *mv = calloc(nm ? nm : 1, sizeof *mv);
    uint8_t *cv = malloc((m - nm) * CB + 1);
    uint8_t *mc = malloc(nm * 32 + 1);
    Fedrec__V1__Advert *av = calloc(na ? na : 1, sizeof *av);
    Fedrec__V1__Advert **ap = calloc(na ? na : 1, sizeof *ap);
    fedrec_err r;
    if (!cv || !mc || !av || !ap || !mv) {
        r = fedreci_error(FEDREC_ERR_NOMEM, "wire: seed relay of %zu members", m);
        goto done;
    }
    hdr_fill(&e, h);
    /* no framing per member: the revealed contributions back to back, the
       missing members' commitments apart */
    for (size_t i = 0, k = 0, q = 0; i < m; i++) {
        if (missing && missing[i]) {
            memcpy(mc + 32 * q, contribs + SLOT * i, 32);
            mv[q++] = (uint32_t)i;
        } else {
            memcpy(cv + CB * k++, contribs + SLOT * i, CB);
        }
    }
    c.n_missing = nm;
    c.missing = mv;
    c.contributions = bin(cv, (m - nm) * CB);
    c.missing_commits = bin(mc, nm * 32);
    fill_adverts(av, ap, adverts, na, 0);
    c.n_adverts = na;
    c.adverts = ap;
    e.body_case = FEDREC__V1__ENVELOPE__BODY_SEED_RELAY;
    e.seed_relay = &c;
    r = pack(&e, out);
done:
    free(cv);
    free(mc);
    free(mv);
    free(av);
    free(ap);
    return r;
}

/* The consistency step's two messages: relay = 0 Consistency (tags, sig,
 * want), relay = 1 ConsistencyRelay (tags, sigs); the tags packed in the
 * order of peers (all zero for a peer without one). */
static fedrec_err enc_consistency(nng_msg **out, const fedreci_wire_hdr *h, int relay,
                                  const uint64_t *peers, size_t n_peers,
                                  const fedreci_secagg_tag *tags, size_t n, const uint8_t *sig,
                                  const uint64_t *want, size_t n_want,
                                  const fedreci_secagg_endorsement *sigs, size_t n_sigs)
{
    fedreci_wire_env e = FEDREC__V1__ENVELOPE__INIT;
    Fedrec__V1__Consistency c = FEDREC__V1__CONSISTENCY__INIT;
    Fedrec__V1__ConsistencyRelay cr = FEDREC__V1__CONSISTENCY_RELAY__INIT;
    uint8_t *packed = calloc(n_peers ? n_peers : 1, FEDRECI_SECAGG_TAG_BYTES);
    Fedrec__V1__Endorsement *ev = calloc(n_sigs ? n_sigs : 1, sizeof *ev);
    Fedrec__V1__Endorsement **ep = calloc(n_sigs ? n_sigs : 1, sizeof *ep);
    fedrec_err r;
    if (!packed || !ev || !ep) {
        r = fedreci_error(FEDREC_ERR_NOMEM, "wire: %zu consistency tags", n_peers);
        goto done;
    }
    hdr_fill(&e, h);
    for (size_t i = 0; i < n; i++) {
        uint64_t peer = relay ? tags[i].from : tags[i].to;
        size_t s = 0;
        while (s < n_peers && peers[s] != peer)
            s++;
        if (s == n_peers) {
            r = fedreci_error(FEDREC_ERR_INVALID,
                              "wire: consistency tag %zu (from %llu to %llu) for no neighbour "
                              "named survivor",
                              i, (unsigned long long)tags[i].from, (unsigned long long)tags[i].to);
            goto done;
        }
        memcpy(packed + s * FEDRECI_SECAGG_TAG_BYTES, tags[i].tag, FEDRECI_SECAGG_TAG_BYTES);
    }
    for (size_t i = 0; i < n_sigs; i++) {
        Fedrec__V1__Endorsement init = FEDREC__V1__ENDORSEMENT__INIT;
        ev[i] = init;
        ev[i].from = sigs[i].from;
        ev[i].sig = bin(sigs[i].sig, FEDRECI_SECAGG_SIG_BYTES);
        ep[i] = &ev[i];
    }
    if (relay) {
        cr.tags = bin(packed, n_peers * FEDRECI_SECAGG_TAG_BYTES);
        cr.n_sigs = n_sigs;
        cr.sigs = ep;
        e.body_case = FEDREC__V1__ENVELOPE__BODY_CONSISTENCY_RELAY;
        e.consistency_relay = &cr;
    } else {
        c.tags = bin(packed, n_peers * FEDRECI_SECAGG_TAG_BYTES);
        c.sig = bin(sig, FEDRECI_SECAGG_SIG_BYTES);
        c.n_want = n_want;
        c.want = (uint64_t *)want;
        e.body_case = FEDREC__V1__ENVELOPE__BODY_CONSISTENCY;
        e.consistency = &c;
    }
    r = pack(&e, out);
done:
    free(packed);
    free(ev);
    free(ep);
    return r;
}

fedrec_err fedreci_wire_enc_consistency(nng_msg **out, const fedreci_wire_hdr *h,
                                        const uint64_t *peers, size_t n_peers,
                                        const fedreci_secagg_tag *tags, size_t n,
                                        const uint8_t sig[64], const uint64_t *want, size_t n_want)
{
    if (!sig || (n_want && !want) || (n && !tags) || (n_peers && !peers))
        return fedreci_error(FEDREC_ERR_INVALID, "wire: Consistency: NULL argument");
    return enc_consistency(out, h, 0, peers, n_peers, tags, n, sig, want, n_want, NULL, 0);
}

fedrec_err fedreci_wire_enc_consistency_relay(nng_msg **out, const fedreci_wire_hdr *h,
                                              const uint64_t *peers, size_t n_peers,
                                              const fedreci_secagg_tag *tags, size_t n,
                                              const fedreci_secagg_endorsement *sigs, size_t n_sigs)
{
    if ((n && !tags) || (n_sigs && !sigs) || (n_peers && !peers))
        return fedreci_error(FEDREC_ERR_INVALID, "wire: ConsistencyRelay: NULL argument");
    return enc_consistency(out, h, 1, peers, n_peers, tags, n, NULL, NULL, 0, sigs, n_sigs);
}

/* Fills n protobuf complaints (cv, pointers in cp) from cpl. */
static void fill_complaints(Fedrec__V1__Complaint *cv, Fedrec__V1__Complaint **cp,
                            const fedreci_secagg_complaint *cpl, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        Fedrec__V1__Complaint init = FEDREC__V1__COMPLAINT__INIT;
        cv[i] = init;
        cv[i].from = cpl[i].from;
        cv[i].dealer = cpl[i].dealer;
        cv[i].bundle = bin(cpl[i].bundle, 32);
        cv[i].sig = bin(cpl[i].sig, FEDRECI_SECAGG_SIG_BYTES);
        cp[i] = &cv[i];
    }
}

static void fill_openings(Fedrec__V1__Opening *ov, Fedrec__V1__Opening **op,
                          const fedreci_secagg_opening *o, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        Fedrec__V1__Opening init = FEDREC__V1__OPENING__INIT;
        ov[i] = init;
        ov[i].dealer = o[i].dealer;
        ov[i].to = o[i].to;
        ov[i].plain = bin(o[i].plain, sizeof o[i].plain);
        op[i] = &ov[i];
    }
}

fedrec_err fedreci_wire_enc_complaints(nng_msg **out, const fedreci_wire_hdr *h,
                                       const fedreci_secagg_complaint *cpl, size_t n)
{
    return fedreci_wire_enc_complaint_relay(out, h, cpl, n, -1, NULL, 0, NULL, 0);
}

fedrec_err fedreci_wire_enc_openings(nng_msg **out, const fedreci_wire_hdr *h,
                                     const fedreci_secagg_opening *op, size_t n)
{
    return fedreci_wire_enc_complaint_relay(out, h, NULL, 0, -2, NULL, 0, op, n);
}

/* final -1: Complaints (against), -2: Openings (op), 0 / 1: ComplaintRelay. */
fedrec_err fedreci_wire_enc_complaint_relay(nng_msg **out, const fedreci_wire_hdr *h,
                                            const fedreci_secagg_complaint *against,
                                            size_t n_against, int final, const uint64_t *excluded,
                                            size_t n_excluded, const fedreci_secagg_opening *op,
                                            size_t n_op)
{
    fedreci_wire_env e = FEDREC__V1__ENVELOPE__INIT;
    Fedrec__V1__Complaints cs = FEDREC__V1__COMPLAINTS__INIT;
    Fedrec__V1__Openings os = FEDREC__V1__OPENINGS__INIT;
    Fedrec__V1__ComplaintRelay cr = FEDREC__V1__COMPLAINT_RELAY__INIT;
    Fedrec__V1__Complaint *cv = calloc(n_against ? n_against : 1, sizeof *cv);
    Fedrec__V1__Complaint **cp = calloc(n_against ? n_against : 1, sizeof *cp);
    Fedrec__V1__Opening *ov = calloc(n_op ? n_op : 1, sizeof *ov);
    Fedrec__V1__Opening **opp = calloc(n_op ? n_op : 1, sizeof *opp);
    fedrec_err r;
    if (!cv || !cp || !ov || !opp) {
        r = fedreci_error(FEDREC_ERR_NOMEM, "wire: %zu complaints, %zu openings", n_against, n_op);
        goto done;
    }
    hdr_fill(&e, h);
    fill_complaints(cv, cp, against, n_against);
    fill_openings(ov, opp, op, n_op);
    if (final == -1) {
        cs.n_complaints = n_against;
        cs.complaints = cp;
        e.body_case = FEDREC__V1__ENVELOPE__BODY_COMPLAINTS;
        e.complaints = &cs;
    } else if (final == -2) {
        os.n_openings = n_op;
        os.openings = opp;
        e.body_case = FEDREC__V1__ENVELOPE__BODY_OPENINGS;
        e.openings = &os;
    } else {
        cr.n_against = n_against;
        cr.against = cp;
        cr.final = final ? 1 : 0;
        cr.n_excluded = n_excluded;
        cr.excluded = (uint64_t *)excluded;
        cr.n_openings = n_op;
        cr.openings = opp;
        e.body_case = FEDREC__V1__ENVELOPE__BODY_COMPLAINT_RELAY;
        e.complaint_relay = &cr;
    }
    r = pack(&e, out);
done:
    free(cv);
    free(cp);
    free(ov);
    free(opp);
    return r;
}

fedrec_err fedreci_wire_enc_ciphertexts(nng_msg **out, const fedreci_wire_hdr *h, int relay,
                                        const fedreci_secagg_ciphertext *cts, size_t n)
{
    fedreci_wire_env e = FEDREC__V1__ENVELOPE__INIT;
    Fedrec__V1__ShareKeys sk = FEDREC__V1__SHARE_KEYS__INIT;
    Fedrec__V1__ShareRelay sr = FEDREC__V1__SHARE_RELAY__INIT;
    Fedrec__V1__Ciphertext *cv = calloc(n ? n : 1, sizeof *cv);
    Fedrec__V1__Ciphertext **cp = calloc(n ? n : 1, sizeof *cp);
    fedrec_err r;
    if (!cv || !cp) {
        r = fedreci_error(FEDREC_ERR_NOMEM, "wire: %zu ciphertexts", n);
        goto done;
    }
    hdr_fill(&e, h);
    for (size_t i = 0; i < n; i++) {
        Fedrec__V1__Ciphertext init = FEDREC__V1__CIPHERTEXT__INIT;
        cv[i] = init;
        cv[i].from = cts[i].from;
        cv[i].to = cts[i].to;
        cv[i].data = bin(cts[i].bytes, cts[i].len);
        if (!cts[i].commit) {
            r = fedreci_error(FEDREC_ERR_INVALID, "wire: ciphertext %zu without commitments", i);
            goto done;
        }
        cv[i].commit = bin(cts[i].commit, FEDRECI_SECAGG_COMMIT_BYTES);
        cp[i] = &cv[i];
    }
    if (relay) {
        sr.n_cts = n;
        sr.cts = cp;
        e.body_case = FEDREC__V1__ENVELOPE__BODY_SHARE_RELAY;
        e.share_relay = &sr;
    } else {
        sk.n_cts = n;
        sk.cts = cp;
        e.body_case = FEDREC__V1__ENVELOPE__BODY_SHARE_KEYS;
        e.share_keys = &sk;
    }
    r = pack(&e, out);
done:
    free(cv);
    free(cp);
    return r;
}

fedrec_err fedreci_wire_enc_masked(nng_msg **out, const fedreci_wire_hdr *h, const uint32_t *y,
                                   size_t d)
{
    fedreci_wire_env e = FEDREC__V1__ENVELOPE__INIT;
    Fedrec__V1__MaskedInput c = FEDREC__V1__MASKED_INPUT__INIT;
    hdr_fill(&e, h);
    c.y = bin(y, d * 4u);
    e.body_case = FEDREC__V1__ENVELOPE__BODY_MASKED_INPUT;
    e.masked_input = &c;
    return pack(&e, out);
}

fedrec_err fedreci_wire_enc_unmask_request(nng_msg **out, const fedreci_wire_hdr *h,
                                           const uint64_t *survivors, size_t ns,
                                           const uint64_t *dropped, size_t nd)
{
    fedreci_wire_env e = FEDREC__V1__ENVELOPE__INIT;
    Fedrec__V1__UnmaskRequest c = FEDREC__V1__UNMASK_REQUEST__INIT;
    hdr_fill(&e, h);
    c.n_survivors = ns;
    c.survivors = (uint64_t *)(uintptr_t)survivors;
    c.n_dropped = nd;
    c.dropped = (uint64_t *)(uintptr_t)dropped;
    e.body_case = FEDREC__V1__ENVELOPE__BODY_UNMASK_REQUEST;
    e.unmask_request = &c;
    return pack(&e, out);
}

fedrec_err fedreci_wire_enc_unmask(nng_msg **out, const fedreci_wire_hdr *h,
                                   const fedreci_secagg_reveal *rv, size_t n)
{
    fedreci_wire_env e = FEDREC__V1__ENVELOPE__INIT;
    Fedrec__V1__Unmask c = FEDREC__V1__UNMASK__INIT;
    Fedrec__V1__Reveal *v = calloc(n ? n : 1, sizeof *v);
    Fedrec__V1__Reveal **p = calloc(n ? n : 1, sizeof *p);
    fedrec_err r;
    if (!v || !p) {
        r = fedreci_error(FEDREC_ERR_NOMEM, "wire: %zu reveals", n);
        goto done;
    }
    hdr_fill(&e, h);
    for (size_t i = 0; i < n; i++) {
        Fedrec__V1__Reveal init = FEDREC__V1__REVEAL__INIT;
        v[i] = init;
        v[i].about = rv[i].about;
        v[i].kind = rv[i].kind;
        v[i].share = bin(rv[i].share, FEDRECI_SECAGG_SHARE_BYTES);
        v[i].opening = bin(rv[i].opening, sizeof rv[i].opening);
        p[i] = &v[i];
    }
    c.n_reveals = n;
    c.reveals = p;
    e.body_case = FEDREC__V1__ENVELOPE__BODY_UNMASK;
    e.unmask = &c;
    r = pack(&e, out);
done:
    free(v);
    free(p);
    return r;
}

fedrec_err fedreci_wire_enc_round_result(nng_msg **out, const fedreci_wire_hdr *h, int completed,
                                         uint64_t model_version, uint32_t survivors,
                                         const char *reason)
{
    fedreci_wire_env e = FEDREC__V1__ENVELOPE__INIT;
    Fedrec__V1__RoundResult c = FEDREC__V1__ROUND_RESULT__INIT;
    hdr_fill(&e, h);
    c.completed = completed ? 1 : 0;
    c.model_version = model_version;
    c.survivors = survivors;
    c.reason = (char *)(uintptr_t)(reason ? reason : "");
    e.body_case = FEDREC__V1__ENVELOPE__BODY_ROUND_RESULT;
    e.round_result = &c;
    return pack(&e, out);
}

fedrec_err fedreci_wire_enc_error(nng_msg **out, const fedreci_wire_hdr *h, fedrec_err code,
                                  const char *text)
{
    fedreci_wire_env e = FEDREC__V1__ENVELOPE__INIT;
    Fedrec__V1__Error c = FEDREC__V1__ERROR__INIT;
    hdr_fill(&e, h);
    c.code = (uint32_t)code;
    c.text = (char *)(uintptr_t)(text ? text : "");
    e.body_case = FEDREC__V1__ENVELOPE__BODY_ERROR;
    e.error = &c;
    return pack(&e, out);
}

fedrec_err fedreci_wire_enc_retry(nng_msg **out, const fedreci_wire_hdr *h, uint32_t ms)
{
    fedreci_wire_env e = FEDREC__V1__ENVELOPE__INIT;
    Fedrec__V1__RetryAfter c = FEDREC__V1__RETRY_AFTER__INIT;
    hdr_fill(&e, h);
    c.ms = ms;
    e.body_case = FEDREC__V1__ENVELOPE__BODY_RETRY_AFTER;
    e.retry_after = &c;
    return pack(&e, out);
}
