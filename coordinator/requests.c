/* coordinator/engine: the request handlers (check-in, model request, the
 * four SecAgg+ stage messages) and the dispatch of a decoded request. Each
 * runs with the engine's lock held and answers through the outbox. See
 * engine_internal.h and docs/protocol.md. */
#include "coordinator/engine_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "core/secagg/kdf.h"

/* A CheckIn: registers (or checks) the identity key, then holds the request
 * until a round starts, or answers at once (opted out, stopped, already in
 * the open round, or RetryAfter when no context can be held). */
static void on_checkin(fedreci_coord *c, cctx *x, const fedreci_wire_env *env, uint32_t pipe,
                       outbox *ob)
{
    fedreci_wire_hdr h = fedreci_wire_header(env);
    const uint8_t *pk;
    uint64_t ver;
    int opted;
    if (c->cfg.role == FEDRECI_ROLE_AGGREGATOR) {
        fedreci_eng_reply_error(c, x, &h, FEDREC_ERR_PROTOCOL,
                                "this is an aggregator of SecAgg groups: check in at the master",
                                ob);
        return;
    }
    if (fedreci_wire_get_checkin(env, &pk, &ver, &opted)) {
        fedreci_eng_reply_error(c, x, &h, FEDREC_ERR_PROTOCOL, fedrec_errmsg(), ob);
        return;
    }
    crec *e = fedreci_eng_reg_find(c, h.client_id);
    if (e && sodium_memcmp(e->pk, pk, 32) != 0) {
        fedreci_eng_reply_error(c, x, &h, FEDREC_ERR_SIGNATURE,
                                "identity key differs from the one registered for this client", ob);
        return;
    }
    /* Freshness (docs/protocol.md "Replayed check-ins"): the signed
     * sent_unix_ms must be near this clock, after this process started,
     * and after the last check-in taken from this client; equal to it only
     * for a resend of the check-in that is waiting or was selected. */
    uint64_t sent = fedreci_wire_checkin_sent_ms(env), now = fedreci_eng_unix_ms();
    if (!sent || sent + FEDRECI_CHECKIN_SKEW_MS < now || sent > now + FEDRECI_CHECKIN_SKEW_MS ||
        sent < c->start_unix_ms) {
        char text[200];
        if (!sent)
            snprintf(text, sizeof text, "check-in without a time (sent_unix_ms)");
        else if (sent < c->start_unix_ms && sent + FEDRECI_CHECKIN_SKEW_MS >= now)
            snprintf(text, sizeof text,
                     "check-in made before the coordinator started (%llu < %llu ms): check in "
                     "again",
                     (unsigned long long)sent, (unsigned long long)c->start_unix_ms);
        else
            snprintf(text, sizeof text,
                     "check-in time %llu ms is %+.0f s from the coordinator's clock (window "
                     "+-%u s): check the device clock",
                     (unsigned long long)sent, ((double)sent - (double)now) / 1000.0,
                     FEDRECI_CHECKIN_SKEW_MS / 1000u);
        c->refused_checkins++;
        fedreci_eng_reply_error(c, x, &h, FEDREC_ERR_RANGE, text, ob);
        return;
    }
    if (e && sent <= e->checkin_ms) {
        int pending = e->wait_ctx >= 0 || (fedreci_eng_round_active(c) &&
                                           fedreci_find_u64(c->cur->ids, c->cur->n, e->id) >= 0);
        if (sent < e->checkin_ms || !pending) {
            c->refused_checkins++;
            fedreci_eng_reply_error(c, x, &h, FEDREC_ERR_DUPLICATE,
                                    "check-in not newer than the last one taken from this client "
                                    "(a replay)",
                                    ob);
            return;
        }
    }
    if (e && e->excluded_round) {
        char text[120];
        snprintf(text, sizeof text, "excluded: named a culprit in round %llu",
                 (unsigned long long)e->excluded_round);
        fedreci_eng_reply_error(c, x, &h, FEDREC_ERR_NOT_SELECTED, text, ob);
        return;
    }
    if (fedreci_eng_benched(c, e)) {
        /* docs/protocol.md "The graph seed": it withheld its contribution
           (or another step) in a round that aborted for that */
        char text[FEDRECI_BENCH_REASON_MAX + 80];
        snprintf(text, sizeof text, "benched until round %llu: %s (%u times)",
                 (unsigned long long)e->bench_until,
                 e->bench_why ? c->bench_why[e->bench_why] : "withheld a protocol step",
                 e->strikes);
        fedreci_eng_reply_error(c, x, &h, FEDREC_ERR_NOT_SELECTED, text, ob);
        return;
    }
    int fresh = !e;
    const char *why = NULL;
    if (fresh && !fedreci_eng_new_id_allowed(c, pipe, &why)) {
        fedreci_eng_reply_error(c, x, &h, FEDREC_ERR_BUSY, why, ob);
        return;
    }
    int attested_now = 0;
    if (c->cfg.attest && !(e && e->attested)) {
        /* the deployment's verifier vouches for the identity key, or the
           check-in is refused and nothing is registered (a Sybil) */
        const uint8_t *tok = NULL;
        size_t tl = 0;
        char awhy[160] = "";
        fedrec_err ae = fedreci_wire_get_attestation(env, &tok, &tl);
        if (ae)
            snprintf(awhy, sizeof awhy, "%s", fedrec_errmsg());
        else
            ae = c->cfg.attest(c->cfg.attest_arg, h.client_id, pk, tok, tl, awhy, sizeof awhy);
        if (ae) {
            char text[220];
            awhy[sizeof awhy - 1] = 0;
            snprintf(text, sizeof text, "identity key not attested: %s",
                     awhy[0] ? awhy : fedrec_strerror(ae));
            fedreci_eng_reply_error(c, x, &h, FEDREC_ERR_SIGNATURE, text, ob);
            return;
        }
        attested_now = 1;
    }
    if (!e && !(e = fedreci_eng_reg_insert(c, h.client_id))) {
        fedreci_eng_reply_error(c, x, &h, FEDREC_ERR_BUSY,
                                "registry full (out of memory, or every entry in use)", ob);
        return;
    }
    e->seen = ++c->seen_clock;
    if (attested_now)
        e->attested = 1;
    e->checkin_ms = sent;
    if (fresh) {
        memcpy(e->pk, pk, 32);
        e->opted_in = (uint8_t)opted;
    }
    if (fresh || e->opted_in != (uint8_t)opted) {
        e->opted_in = (uint8_t)opted;
        if (c->hooks.on_client_seen)
            c->hooks.on_client_seen(c->hooks.arg, e->id, e->pk, opted);
    }
    if (!opted || c->stopped) {
        if (e->wait_ctx >= 0) {
            fedreci_eng_unpark_drop(c, e->wait_ctx, ob);
            e->wait_ctx = -1;
            for (size_t i = 0; i < c->n_waiting; i++)
                if (c->waiting[i] == e->id) {
                    c->waiting[i] = c->waiting[--c->n_waiting];
                    break;
                }
        }
        fedreci_eng_checkin_reply(c, x, e->id,
                                  !opted ? FEDREC__V1__CHECK_IN_REPLY__STATUS__OPTED_OUT
                                         : FEDREC__V1__CHECK_IN_REPLY__STATUS__NO_ROUND,
                                  NULL, ob);
        return;
    }
    if (fedreci_eng_round_active(c) && fedreci_find_u64(c->cur->ids, c->cur->n, e->id) >= 0) {
        /* a resent check-in of a cohort member: same answer */
        fedreci_eng_checkin_reply(c, x, e->id, FEDREC__V1__CHECK_IN_REPLY__STATUS__SELECTED, c->cur,
                                  ob);
        return;
    }
    if (e->wait_ctx >= 0) {
        fedreci_eng_unpark_drop(c, e->wait_ctx, ob);
        e->wait_ctx = (int32_t)x->idx;
        fedreci_eng_park(c, x);
        return;
    }
    if (!fedreci_eng_can_park(c)) {
        fedreci_eng_reply_retry(c, x, &h, ob);
        return;
    }
    if (c->n_waiting == c->waiting_cap) {
        size_t nc = c->waiting_cap ? c->waiting_cap * 2 : 256;
        uint64_t *nw = realloc(c->waiting, nc * sizeof *nw);
        if (!nw) {
            fedreci_eng_reply_retry(c, x, &h, ob);
            return;
        }
        c->waiting = nw;
        c->waiting_cap = nc;
    }
    c->waiting[c->n_waiting++] = e->id;
    e->wait_ctx = (int32_t)x->idx;
    fedreci_eng_park(c, x);
    fedreci_log(FEDRECI_LOG_DEBUG, -1, "client %016llx checked in (%zu waiting)",
                (unsigned long long)e->id, c->n_waiting);
    if (!fedreci_eng_round_active(c)) {
        if (c->n_waiting == 1)
            fedreci_eng_set_deadline(c, now_ms() + c->cfg.checkin_window_ms);
        fedreci_eng_maybe_select(c, ob);
    }
}

/* A ModelRequest: "up to date", or the full model (limited per version). */
static void on_model_request(fedreci_coord *c, cctx *x, const fedreci_wire_env *env, crec *rec,
                             outbox *ob)
{
    fedreci_wire_hdr h = fedreci_wire_header(env);
    pmodel *m = c->model;
    if (env->model_request->have_version == m->version) {
        nng_msg *msg = NULL;
        if (fedreci_wire_enc_model_reply(&msg, &h, NULL, m->version))
            msg = NULL;
        fedreci_eng_reply(c, x, msg, ob);
        return;
    }
    /* A full reply is the largest message the coordinator sends: only a
     * checked-in client gets one, and at most max_msgs_per_round times per
     * model version (a phone that lost its copy retries a few times; a loop
     * asking for it again and again is refused). */
    if (!rec) {
        fedreci_eng_reply_error(c, x, &h, FEDREC_ERR_NOT_FOUND, "unknown client: check in first",
                                ob);
        return;
    }
    if (rec->dl_version != m->version) {
        rec->dl_version = m->version;
        rec->dls = 0;
    }
    if (++rec->dls > c->cfg.max_msgs_per_round) {
        fedreci_eng_reply_error(c, x, &h, FEDREC_ERR_BUSY,
                                "too many downloads of this model version", ob);
        return;
    }
    /* encoded outside the lock from a reference to this immutable version */
    fedreci_wire_model wm = {m->version,
                             m->n_items,
                             m->k,
                             m->y,
                             m->gram,
                             m->checksum,
                             (const char *const *)m->cat->codes,
                             m->cat->n_codes,
                             m->cat->retired,
                             m->cat->n_retired};
    atomic_fetch_add(&m->refs, 1);
    x->state = CX_SENDING;
    c->bytes_out += fedreci_wire_model_reply_size(&h, &wm);
    fedreci_eng_ob_push(ob, x, NULL, m, &h);
}

/* Hands the phase-s message of env to the SecAgg+ server. */
static fedrec_err stage_add(fedreci_coord *c, rstate *r, const fedreci_wire_env *env, int s)
{
    fedrec_err e;
    uint64_t id = env->client_id;
    switch (s) {
    case PH_ADV: {
        fedreci_secagg_advert a;
        if ((e = fedreci_wire_get_advert(env, &a)))
            return e;
#ifdef FEDREC_CHEAT
        if (fedreci_cheat_any_binding()) /* the test build only (engine_internal.h) */
            fedreci_secagg_server_set_binding(r->srv, a.binding);
#endif
        e = fedreci_secagg_server_add_advert(r->srv, &a);
#ifdef FEDREC_CHEAT
        fedreci_secagg_server_set_binding(r->srv, r->binding);
#endif
        long mi = fedreci_find_u64(r->ids, r->n, id);
        int stashed = mi >= 0 && mi == r->adv_key_mi &&
                      !memcmp(r->adv_key_spk, a.s_pk, sizeof r->adv_key_spk);
        if (e) {
            sodium_memzero(r->adv_key, sizeof r->adv_key);
            r->adv_key_mi = -1;
            return e;
        }
        /* the key of its later messages' MACs, bound to the signed s_pk
           (derived when stage_auth authenticated this advert) */
        if (stashed) {
            memcpy(r->mem[mi].mac_key, r->adv_key, sizeof r->adv_key);
            r->mem[mi].has_key = 1;
        } else if (mi >= 0 &&
                   !fedreci_secagg_mac_key(r->mem[mi].mac_key, r->coord_sk, a.s_pk, r->id, id)) {
            r->mem[mi].has_key = 1;
        }
        sodium_memzero(r->adv_key, sizeof r->adv_key);
        r->adv_key_mi = -1;
        return FEDREC_OK;
    }
    case PH_SEED: {
        const uint8_t *contribution;
        uint32_t attempt = 0;
        if ((e = fedreci_wire_get_seed_reveal(env, &contribution)) ||
            (e = fedreci_wire_get_seed_attempt(env, &attempt)))
            return e;
        /* a contribution for another attempt of the seed step (a late one
           from before a retry) is not checked against this attempt's chain
           link: it would not open it, and its sender is no culprit */
        if (attempt != fedreci_secagg_server_seed_attempt(r->srv))
            return fedreci_error(FEDREC_ERR_STAGE,
                                 "seed contribution for attempt %u of the seed step; attempt %u "
                                 "is open",
                                 attempt, fedreci_secagg_server_seed_attempt(r->srv));
        return fedreci_secagg_server_add_reveal(r->srv, id, contribution);
    }
    case PH_CONSIST: {
        fedreci_secagg_tag *tags;
        size_t n, n_want, n_peers;
        const uint8_t *sig;
        const uint64_t *want, *peers;
        if ((e = fedreci_wire_get_endorse(env, &sig, &want, &n_want)) ||
            (e = fedreci_secagg_server_endorse_peers(r->srv, id, &peers, &n_peers)))
            return e;
#ifdef FEDREC_CHEAT
        uint64_t told[256];
        if (fedreci_cheat_endorse_peers(r->id, id, told, 256, &n_peers)) /* the test build */
            peers = told;
#endif
        if ((e = fedreci_wire_get_tags(env, id, peers, n_peers, &tags, &n)))
            return e;
#ifdef FEDREC_CHEAT
        if (fedreci_cheat_unverified_endorsements()) /* the test build only */
            e = fedreci_secagg_server_add_consistency_unverified(r->srv, id, tags, n, sig);
        else
#endif
            e = fedreci_secagg_server_add_consistency(r->srv, id, tags, n, sig);
        free(tags);
        return e;
    }
    case PH_COMPLAIN: {
        fedreci_secagg_complaint *cpl;
        size_t n;
        if ((e = fedreci_wire_get_complaints(env, r->p.n, &cpl, &n)))
            return e;
        e = fedreci_secagg_server_add_complaints(r->srv, id, cpl, n);
        free(cpl);
        return e;
    }
    case PH_OPEN: {
        fedreci_secagg_opening *op;
        size_t n;
        if ((e = fedreci_wire_get_openings(env, r->p.n, &op, &n)))
            return e;
        e = fedreci_secagg_server_add_openings(r->srv, id, op, n);
        sodium_memzero(op, n * sizeof *op);
        free(op);
        return e;
    }
    case PH_SHARE: {
        fedreci_secagg_ciphertext *cts;
        size_t n;
        if ((e = fedreci_wire_get_ciphertexts(env, r->p.n, &cts, &n)))
            return e;
        for (size_t i = 0; i < n; i++)
            if (cts[i].from != id) {
                free(cts);
                return fedreci_error(FEDREC_ERR_PROTOCOL,
                                     "ciphertext %zu claims sender %llu, not %llu", i,
                                     (unsigned long long)cts[i].from, (unsigned long long)id);
            }
        e = fedreci_secagg_server_add_shares(r->srv, id, cts, n);
        free(cts);
        return e;
    }
    case PH_MASKED: {
        const uint32_t *y;
        if ((e = fedreci_wire_get_masked(env, r->p.d, &y)))
            return e;
        return fedreci_secagg_server_add_masked_input(r->srv, id, y, r->p.d);
    }
    default: {
        fedreci_secagg_reveal *rv;
        size_t n;
        if ((e = fedreci_wire_get_reveals(env, r->p.n, &rv, &n)))
            return e;
        e = fedreci_secagg_server_add_unmask(r->srv, id, rv, n);
        sodium_memzero(rv, n * sizeof *rv);
        free(rv);
        return e;
    }
    }
}

/* Authenticates a stage message of member mi of r: its advert by its
 * signature under the registered identity key, every message after it (the
 * seed contribution, the share keys, the complaints and openings, the
 * masked input, the consistency tags, the unmask shares: protocol version
 * 7) by its MAC under the member's round key, which only the member and the
 * coordinator hold. Nothing is counted or stored before this passes. */
static fedrec_err stage_auth(rstate *r, long mi, const crec *rec, const fedreci_wire_env *env,
                             const uint8_t *buf, size_t len)
{
    if (env->stage == FEDRECI_WIRE_STAGE_ADVERTISE && !r->mem[mi].has_key) {
        /* its first advert: the advert's own signature under the registered
           identity key (the one its neighbours check too), then the MAC of
           the whole envelope under the round key its signed s_pk gives */
        fedreci_secagg_advert a;
        fedrec_err e = fedreci_wire_get_advert(env, &a);
        if (e)
            return e;
        if (r->srv) {
            e = fedreci_secagg_server_verify_advert(r->srv, &a);
        } else {
            uint8_t msg[FEDRECI_ADVERT_MSG_BYTES];
            fedreci_secagg_advert_msg(msg, r->id, a.client_id, a.c_pk, a.s_pk, a.binding,
                                      a.seed_commit);
            if (crypto_sign_verify_detached(a.sig, msg, sizeof msg, rec->pk) != 0)
                e = fedreci_error(FEDREC_ERR_SIGNATURE,
                                  "advert from client %016llx does not verify under its "
                                  "registered identity key for round %llu",
                                  (unsigned long long)a.client_id, (unsigned long long)r->id);
        }
        uint8_t k[32];
        if (!e && !(e = fedreci_secagg_mac_key(k, r->coord_sk, a.s_pk, r->id, a.client_id))) {
            e = fedreci_wire_verify_mac(buf, len, env, k);
            if (!e) {
                memcpy(r->adv_key, k, sizeof k);
                memcpy(r->adv_key_spk, a.s_pk, sizeof r->adv_key_spk);
                r->adv_key_mi = mi;
            }
            sodium_memzero(k, sizeof k);
        }
        return e;
    }
    if (!r->mem[mi].has_key)
        return fedreci_error(FEDREC_ERR_SIGNATURE,
                             "stage %u message from client %016llx, which has no round key (no "
                             "accepted advert)",
                             env->stage, (unsigned long long)env->client_id);
    return fedreci_wire_verify_mac(buf, len, env, r->mem[mi].mac_key);
}

/* The round a stage message is for (the current or the previous one), with
 * the sender's index in its cohort in *mi, once the message is authenticated
 * and within the per-round message limit of the sender (which counts
 * authenticated messages only: junk under a member's id costs it nothing).
 * NULL when the message is refused (answered here). */
static rstate *stage_round(fedreci_coord *c, cctx *x, const fedreci_wire_env *env,
                           const uint8_t *buf, size_t len, crec *rec, long *mi, outbox *ob)
{
    fedreci_wire_hdr hdr = fedreci_wire_header(env);
    const fedreci_wire_hdr *h = &hdr;
    char text[160];
    rstate *r = NULL;
    if (c->cur && c->cur->id == h->round_id)
        r = c->cur;
    else if (c->prev && c->prev->id == h->round_id)
        r = c->prev;
    if (!r) {
        snprintf(text, sizeof text, "round %llu is not the current round (%llu)",
                 (unsigned long long)h->round_id, (unsigned long long)(c->cur ? c->cur->id : 0));
        fedreci_eng_reply_error(c, x, h, FEDREC_ERR_ROUND, text, ob);
        return NULL;
    }
    if (r->grp) {
        snprintf(text, sizeof text,
                 "round %llu runs at the aggregators of its groups (CheckInReply.aggregator_url)",
                 (unsigned long long)r->id);
        fedreci_eng_reply_error(c, x, h, FEDREC_ERR_PROTOCOL, text, ob);
        return NULL;
    }
    *mi = fedreci_find_u64(r->ids, r->n, h->client_id);
    if (*mi < 0) {
        fedreci_eng_reply_error(c, x, h, FEDREC_ERR_NOT_SELECTED,
                                "client is not in this round's cohort", ob);
        return NULL;
    }
    /* a stage that is not open yet: refused before anything is verified or
       counted (it changes nothing either way) */
    int s = fedreci_eng_phase_of_wire(h->stage);
    if (r->stage < ST_DONE && s > r->stage) {
        snprintf(text, sizeof text, "stage %d%s is not open (open: stage %d%s)",
                 fedreci_eng_phase_stage(s), fedreci_eng_phase_step(s),
                 fedreci_eng_phase_stage(r->stage), fedreci_eng_phase_step(r->stage));
        fedreci_eng_reply_error(c, x, h, FEDREC_ERR_STAGE, text, ob);
        return NULL;
    }
    fedrec_err e = stage_auth(r, *mi, rec, env, buf, len);
    if (e) {
        fedreci_eng_reply_error(c, x, h, e, fedrec_errmsg(), ob);
        return NULL;
    }
    rec->bytes_total += len;
    rec->bytes_update += len;
    {
        if (rec->msg_round != r->id) {
            rec->msg_round = r->id;
            rec->msgs = 0;
        }
        if (++rec->msgs > c->cfg.max_msgs_per_round) {
            fedreci_eng_reply_error(c, x, h, FEDREC_ERR_BUSY, "too many messages in this round",
                                    ob);
            return NULL;
        }
    }
    return r;
}

/* A member counted gone because its connection closed, that speaks again
 * before the round ends, is back: a phone may reconnect mid-round. The
 * open stage waits for it again unless it already answered there; a
 * stage that closed without it stays closed. (Its new connection is not
 * watched: if that one is lost too, the stage deadline applies.) */
static void member_back(rstate *r, uint32_t mi, uint64_t client)
{
    member *mb = &r->mem[mi];
    if (!mb->gone)
        return;
    if (fedreci_eng_expected_at(r, mi, r->stage) && !(mb->acc & (1u << r->stage)) && r->gone)
        r->gone--;
    mb->gone = 0;
    fedreci_log(FEDRECI_LOG_INFO, (int64_t)r->id,
                "client %016llx is back after its connection closed (stage %d%s)",
                (unsigned long long)client, fedreci_eng_phase_stage(r->stage),
                fedreci_eng_phase_step(r->stage));
}

/* A message for the open stage s of r from member mi: accepted once (a
 * resend is counted once), held until the stage closes, and the stage closes
 * when it was the last one expected. */
static void stage_accept(fedreci_coord *c, cctx *x, const fedreci_wire_env *env, rstate *r,
                         uint32_t mi, int s, outbox *ob)
{
    fedreci_wire_hdr h = fedreci_wire_header(env);
    member *mb = &r->mem[mi];
    if (!(mb->acc & (1u << s))) {
        fedrec_err e = stage_add(c, r, env, s);
        if (e) {
            fedreci_eng_reply_error(c, x, &h, e, fedrec_errmsg(), ob);
            /* a reveal (of a share, or of its seed contribution) that does
               not open its commitment names its sender: it sends nothing
               more that counts, so the stage stops waiting for it */
            const uint64_t *cul = NULL;
            size_t nc = fedreci_secagg_server_culprits(r->srv, &cul);
            /* a complaint or an opening that excluded its sender (the
               server consumed the message): the step stops waiting too */
            int out =
                (s == PH_COMPLAIN || s == PH_OPEN) &&
                (e == FEDREC_ERR_CRYPTO || e == FEDREC_ERR_SIGNATURE || e == FEDREC_ERR_DUPLICATE);
            if (out || fedreci_find_u64(cul, nc, h.client_id) >= 0)
                fedreci_eng_member_gone(c, r, mi, ob);
            return;
        }
        mb->acc |= (uint8_t)(1u << s);
        r->count[s]++;
        if (mb->gone && r->gone)
            r->gone--;
        fedreci_log(FEDRECI_LOG_DEBUG, (int64_t)r->id,
                    "client %016llx stage %d%s accepted (%u of %u)",
                    (unsigned long long)h.client_id, fedreci_eng_phase_stage(s),
                    fedreci_eng_phase_step(s), r->count[s], r->expected);
    } else if (mb->park >= 0) {
        /* A second request for the stage while the first is still held: a
         * REQ client never does that (a RetryAfter resend comes after the
         * first was answered). Counted once; the newer request is held. */
        fedreci_log(FEDRECI_LOG_INFO, (int64_t)r->id,
                    "client %016llx stage %d%s: duplicate of an accepted message while the first "
                    "is held; counted once",
                    (unsigned long long)h.client_id, fedreci_eng_phase_stage(s),
                    fedreci_eng_phase_step(s));
    }
    /* hold the request until the stage closes; a resend replaces the held one */
    if (mb->park >= 0) {
        fedreci_eng_unpark_drop(c, mb->park, ob);
        mb->park = -1;
    }
    if (fedreci_eng_can_park(c)) {
        mb->park = (int32_t)x->idx;
        fedreci_eng_park(c, x);
    } else {
        fedreci_eng_reply_retry(c, x, &h, ob);
    }
    if (r->count[s] + r->gone >= r->expected)
        fedreci_eng_close_stage(c, r, ob);
}

/* A phase-s message (PH_*: AdvertiseKeys, SeedReveal, ShareKeys,
 * Complaints, Openings, MaskedInput, Consistency, Unmask) of a registered
 * client. */
static void on_stage(fedreci_coord *c, cctx *x, const fedreci_wire_env *env, const uint8_t *buf,
                     size_t len, int s, crec *rec, outbox *ob)
{
    fedreci_wire_hdr h = fedreci_wire_header(env);
    char text[160];
    long mi = -1;
    rstate *r = stage_round(c, x, env, buf, len, rec, &mi, ob);
    if (!r)
        return;
    if (r->stage >= ST_DONE) {
        nng_msg *m = NULL;
        fedreci_eng_round_result_msg(c, r, h.client_id, &m);
        fedreci_eng_reply(c, x, m, ob);
        return;
    }
    if (s > r->stage) {
        snprintf(text, sizeof text, "stage %d%s is not open (open: stage %d%s)",
                 fedreci_eng_phase_stage(s), fedreci_eng_phase_step(s),
                 fedreci_eng_phase_stage(r->stage), fedreci_eng_phase_step(r->stage));
        fedreci_eng_reply_error(c, x, &h, FEDREC_ERR_STAGE, text, ob);
        return;
    }
    /* a member named a culprit in this round sends nothing more that counts:
       it is not "back", so the open stage does not wait for it again */
    const uint64_t *cul = NULL;
    size_t nc = r->srv ? fedreci_secagg_server_culprits(r->srv, &cul) : 0;
    if (fedreci_find_u64(cul, nc, h.client_id) >= 0) {
        fedreci_eng_reply_error(c, x, &h, FEDREC_ERR_PROTOCOL,
                                "named a culprit in this round: nothing more is accepted", ob);
        return;
    }
    member_back(r, (uint32_t)mi, h.client_id);
    if (s < r->stage) {
        const uint8_t *sig;
        const uint64_t *want = NULL;
        size_t n_want = 0;
        if ((r->mem[mi].acc & (1u << s)) && s == PH_CONSIST &&
            fedreci_wire_get_endorse(env, &sig, &want, &n_want) == FEDREC_OK && n_want) {
            /* a resend after the relay asking for the endorsement
               signatures of the neighbours whose tags did not verify */
            fedreci_eng_reply(c, x, fedreci_eng_tags_msg(r, h.client_id, want, n_want), ob);
        } else if (r->mem[mi].acc & (1u << s)) {
            fedreci_eng_reply(c, x, fedreci_eng_stage_answer(c, r, h.client_id, s), ob);
        } else {
            snprintf(text, sizeof text, "stage %d%s closed before this message; counted as dropped",
                     fedreci_eng_phase_stage(s), fedreci_eng_phase_step(s));
            fedreci_eng_reply_error(c, x, &h, FEDREC_ERR_STAGE, text, ob);
        }
        return;
    }
    stage_accept(c, x, env, r, (uint32_t)mi, s, ob);
}

/* Proof that a check-in or a model request comes from the holder of the
 * client's identity key: a check-in carries the key (its id must be derived
 * from it: self-certifying ids) and is signed with it; a model request is
 * signed with the registered key. Stage messages are authenticated in
 * stage_round (they need the round). Nothing changes before this passes. */
static fedrec_err request_auth(const fedreci_wire_env *env, const uint8_t *buf, size_t len,
                               const crec *rec)
{
    if (env->body_case == FEDREC__V1__ENVELOPE__BODY_CHECK_IN) {
        const uint8_t *pk = env->check_in->identity_pk.data;
        uint64_t want = fedreci_secagg_id_from_pk(pk);
        if (want != env->client_id)
            return fedreci_error(FEDREC_ERR_SIGNATURE,
                                 "check-in as client %016llx with an identity key whose id is "
                                 "%016llx (ids are BLAKE2b of the key)",
                                 (unsigned long long)env->client_id, (unsigned long long)want);
        return fedreci_wire_verify(buf, len, env, pk);
    }
    if (!rec)
        return fedreci_error(FEDREC_ERR_NOT_FOUND, "unknown client: check in first");
    if (env->body_case == FEDREC__V1__ENVELOPE__BODY_MODEL_REQUEST)
        return fedreci_wire_verify(buf, len, env, rec->pk);
    return FEDREC_OK;
}

void fedreci_eng_handle(fedreci_coord *c, cctx *x, nng_msg *msg, outbox *ob)
{
    size_t len = nng_msg_len(msg);
    uint32_t pipe = (uint32_t)nng_pipe_id(nng_msg_get_pipe(msg));
    fedreci_wire_env *env = NULL;
    fedrec_err e = fedreci_wire_decode_msg(msg, c->cap, &env);
#ifdef FEDREC_CHEAT
    if (!e) /* the cheating-coordinator test build only (engine_internal.h) */
        fedreci_cheat_on_request(env);
#endif
    const uint8_t *buf = (const uint8_t *)nng_msg_body(msg); /* kept for authentication */
    pthread_mutex_lock(&c->mu);
    c->bytes_in += len;
    if (e) {
        fedreci_wire_hdr h = {0, 0, 0};
        fedreci_eng_reply_error(c, x, &h, e, fedrec_errmsg(), ob);
        pthread_mutex_unlock(&c->mu);
        nng_msg_free(msg);
        return;
    }
    /* an aggregator hears of a group's members as the master tells them to
       come (their SELECTED reply and its Assign cross): a request for a
       round it has not started yet is answered RetryAfter (nothing is
       verified or changed) */
    if (c->cfg.role == FEDRECI_ROLE_AGGREGATOR &&
        env->body_case != FEDREC__V1__ENVELOPE__BODY_CHECK_IN &&
        env->round_id > (c->cur ? c->cur->id : 0)) {
        fedreci_wire_hdr h = fedreci_wire_header(env);
        fedreci_eng_reply_retry(c, x, &h, ob);
        pthread_mutex_unlock(&c->mu);
        nng_msg_free(msg);
        fedreci_wire_free(env);
        return;
    }
    crec *rec = fedreci_eng_reg_find(c, env->client_id);
    if (env->body_case == FEDREC__V1__ENVELOPE__BODY_CHECK_IN ||
        env->body_case == FEDREC__V1__ENVELOPE__BODY_MODEL_REQUEST) {
        if ((e = request_auth(env, buf, len, rec))) {
            fedreci_wire_hdr h = fedreci_wire_header(env);
            fedreci_eng_reply_error(c, x, &h, e, fedrec_errmsg(), ob);
            pthread_mutex_unlock(&c->mu);
            nng_msg_free(msg);
            fedreci_wire_free(env);
            return;
        }
    }
    /* a client's byte counters count its authenticated messages only (stage
       messages: in stage_round) */
    if (rec && env->stage < FEDRECI_WIRE_STAGE_ADVERTISE)
        rec->bytes_total += len;
    switch (env->body_case) {
    case FEDREC__V1__ENVELOPE__BODY_CHECK_IN:
        on_checkin(c, x, env, pipe, ob);
        if (!rec && (rec = fedreci_eng_reg_find(c, env->client_id)))
            rec->bytes_total += len;
        /* the connection that checked in carries the client's round; its
           closing counts the client as dropped at once (pipe_removed) */
        if (rec && env->check_in->identity_pk.len == 32 &&
            sodium_memcmp(rec->pk, env->check_in->identity_pk.data, 32) == 0)
            fedreci_eng_bind_pipe(c, rec, pipe);
        break;
    case FEDREC__V1__ENVELOPE__BODY_MODEL_REQUEST:
        on_model_request(c, x, env, rec, ob);
        break;
    case FEDREC__V1__ENVELOPE__BODY_ADVERTISE_KEYS:
    case FEDREC__V1__ENVELOPE__BODY_SEED_REVEAL:
    case FEDREC__V1__ENVELOPE__BODY_SHARE_KEYS:
    case FEDREC__V1__ENVELOPE__BODY_MASKED_INPUT:
    case FEDREC__V1__ENVELOPE__BODY_CONSISTENCY:
    case FEDREC__V1__ENVELOPE__BODY_COMPLAINTS:
    case FEDREC__V1__ENVELOPE__BODY_OPENINGS:
    case FEDREC__V1__ENVELOPE__BODY_UNMASK:
        if (!rec) {
            fedreci_wire_hdr h = fedreci_wire_header(env);
            fedreci_eng_reply_error(c, x, &h, FEDREC_ERR_NOT_FOUND,
                                    "unknown client: check in first", ob);
            break;
        }
        on_stage(c, x, env, buf, len, fedreci_eng_phase_of_wire(env->stage), rec, ob);
        break;
    default: {
        fedreci_wire_hdr h = fedreci_wire_header(env);
        fedreci_eng_reply_error(c, x, &h, FEDREC_ERR_PROTOCOL, "not a request message", ob);
    }
    }
    pthread_mutex_unlock(&c->mu);
    nng_msg_free(msg);
    fedreci_wire_free(env);
}
