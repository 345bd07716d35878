/* coordinator/engine: the round state machine. Check-ins wait; a cohort is
 * drawn when the quorum waits or the check-in window closes; the four SecAgg+
 * stages (advertise, share keys, masked input, unmask) each close at their
 * deadline or once every member still expected has answered; the unmasked
 * sum is committed as the next model version. See engine_internal.h. */
#include "coordinator/engine_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/err.h"
#include "core/log.h"
#include "core/rng.h"
#include "core/util.h"

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

void fedreci_eng_round_free(rstate *r)
{
    if (!r)
        return;
    fedreci_secagg_server_destroy(r->srv);
    free(r->ids);
    if (r->mem)
        sodium_memzero(r->mem, r->n * sizeof *r->mem); /* MAC keys */
    free(r->mem);
    free(r->culprits);
    fedreci_eng_master_round_free(r->grp);
    sodium_memzero(r->coord_sk, sizeof r->coord_sk);
    sodium_memzero(r->adv_key, sizeof r->adv_key);
    free(r->roster_ids);
    free(r->roster);
    free(r->contribs);
    free(r->missing);
    free(r->seed_dropped);
    free(r->withheld);
    free(r->nbr);
    free(r->surv);
    free(r->excl);
    free(r->drop);
    free(r);
}

void fedreci_eng_set_deadline(fedreci_coord *c, uint64_t when)
{
    if (when && when < c->hold_until && !fedreci_eng_round_active(c))
        when = c->hold_until;
    c->deadline = when;
    pthread_cond_signal(&c->cv_timer);
}

uint32_t fedreci_coord_default_threshold(uint32_t k)
{
    uint32_t t = (2 * k + 2) / 3;
    if (t <= k / 2)
        t = k / 2 + 1;
    return t > k ? k : t;
}

void fedreci_eng_derive_params(const fedreci_coord *c, uint32_t n, uint64_t round_id,
                               fedreci_secagg_params *p, fedreci_dp_round_params *dp)
{
    memset(p, 0, sizeof *p);
    p->round_id = round_id;
    p->n = n;
    p->k = (c->cfg.neighbors == 0 || c->cfg.neighbors >= n - 1) ? n - 1 : c->cfg.neighbors;
    uint32_t t = c->cfg.threshold ? c->cfg.threshold : fedreci_coord_default_threshold(p->k);
    if (t > p->k)
        t = p->k;
    if (t <= p->k / 2)
        t = p->k / 2 + 1;
    p->t = t;
    p->d = (uint32_t)fedreci_mf_update_dim(c->model->n_items, c->model->k, c->cfg.opt.kind) + 1;
    p->clip = c->cfg.clip;
    p->scale = c->cfg.scale > 0 ? c->cfg.scale : floor(1073741824.0 / ((double)n * c->cfg.clip));
    p->max_weight = 1;
    p->seed_retries = c->cfg.seed_retries;
    uint8_t in[8 + 8 + 16] = "fedrec-graph-v1";
    for (int i = 0; i < 8; i++) {
        in[16 + i] = (uint8_t)(c->cfg.seed >> (8 * i));
        in[24 + i] = (uint8_t)(round_id >> (8 * i));
    }
    crypto_generichash(p->graph_seed, sizeof p->graph_seed, in, sizeof in, NULL, 0);
    if (dp)
        memset(dp, 0, sizeof *dp);
    if (c->dp.on) {
        fedreci_dp_round_params scratch;
        fedreci_eng_dp_params(c, n, round_id, p, dp ? dp : &scratch);
    }
}

static uint32_t max_stage_ms(const fedreci_coord *c)
{
    uint32_t m = 0;
    for (int s = 0; s < 4; s++)
        if (c->cfg.stage_ms[s] > m)
            m = c->cfg.stage_ms[s];
    return m;
}

static fedreci_wire_round wire_round(const fedreci_coord *c, const rstate *r)
{
    fedreci_wire_round w;
    memset(&w, 0, sizeof w);
    w.secagg = r->p;
    w.model_version = c->model->version;
    w.n_items = c->model->n_items;
    w.k_factors = c->model->k;
    w.stage_timeout_ms = max_stage_ms(c);
#ifdef FEDREC_CHEAT
    w.secagg.seed_retries = fedreci_cheat_announced_retries(w.secagg.seed_retries);
#endif
    memcpy(w.coord_pk, r->coord_pk, sizeof w.coord_pk);
    w.dp = r->dp;
    if (c->cfg.opt.kind == FEDRECI_OPT_ALS && !r->dp.mechanism) {
        w.step = FEDRECI_WIRE_STEP_ALS;
        w.x_bound = c->cfg.x_bound;
    }
    return w;
}

void fedreci_eng_bind_round(const fedreci_coord *c, rstate *r)
{
    fedreci_wire_round w = wire_round(c, r);
    fedreci_wire_binding(&w, c->model->checksum, r->binding);
    if (r->srv)
        fedreci_secagg_server_set_binding(r->srv, r->binding);
}

void fedreci_eng_checkin_reply(fedreci_coord *c, cctx *x, uint64_t client, int status,
                               const rstate *r, outbox *ob)
{
    fedreci_wire_hdr h = {client, r ? r->id : 0, FEDRECI_WIRE_STAGE_CHECKIN};
    fedreci_wire_round w;
    if (r && r->grp)
        fedreci_eng_master_wire_round(c, r, client, &w);
    else if (r)
        w = wire_round(c, r);
    nng_msg *m = NULL;
    if (fedreci_wire_enc_checkin_reply(&m, &h, status, r ? &w : NULL, c->model->version,
                                       c->cfg.retry_after_ms))
        m = NULL;
    fedreci_eng_reply(c, x, m, ob);
}

/* Answers every held check-in with `status` and empties the waiting list. */
void fedreci_eng_release_waiting(fedreci_coord *c, int status, outbox *ob)
{
    for (size_t i = 0; i < c->n_waiting; i++) {
        crec *e = fedreci_eng_reg_find(c, c->waiting[i]);
        if (e && e->wait_ctx >= 0) {
            cctx *x = fedreci_eng_unpark(c, e->wait_ctx);
            e->wait_ctx = -1;
            fedreci_eng_checkin_reply(c, x, e->id, status, NULL, ob);
        }
    }
    c->n_waiting = 0;
}

void fedreci_eng_round_result_msg(const fedreci_coord *c, const rstate *r, uint64_t client,
                                  nng_msg **m)
{
    fedreci_wire_hdr h = {client, r->id, FEDRECI_WIRE_STAGE_UNMASK};
    if (fedreci_wire_enc_round_result(m, &h, r->stage == ST_DONE, r->version_after, (uint32_t)r->ns,
                                      r->reason))
        *m = NULL;
    (void)c;
}

static void reply_parked_results(fedreci_coord *c, rstate *r, outbox *ob)
{
    for (uint32_t i = 0; i < r->n; i++) {
        if (r->mem[i].park < 0)
            continue;
        cctx *x = fedreci_eng_unpark(c, r->mem[i].park);
        r->mem[i].park = -1;
        nng_msg *m = NULL;
        fedreci_eng_round_result_msg(c, r, r->ids[i], &m);
        fedreci_eng_reply(c, x, m, ob);
    }
}

/* What on_round_done reports about the ended round r. */
static void round_stats(const fedreci_coord *c, const rstate *r, fedreci_round_stats *out)
{
    int completed = r->stage == ST_DONE;
    fedreci_round_stats st;
    memset(&st, 0, sizeof st);
    st.round_id = r->id;
    st.completed = completed;
    st.abort_err = completed ? FEDREC_OK : r->err;
    st.abort_reason = r->reason;
    st.cohort = r->n;
    const uint32_t *cn = r->count;
    st.advertised = cn[PH_ADV];
    st.shared = cn[PH_SHARE];
    st.survivors = (uint32_t)r->ns;
    st.unmasked = cn[PH_UNMASK];
    st.dropped[0] = r->n - cn[PH_ADV];
    st.dropped[1] = cn[PH_ADV] >= cn[PH_SHARE] ? cn[PH_ADV] - cn[PH_SHARE] : 0;
    st.dropped[2] = cn[PH_SHARE] >= cn[PH_MASKED] ? cn[PH_SHARE] - cn[PH_MASKED] : 0;
    /* stage 3: survivors silent at the consistency step, and, once the
       reveals were asked for, those that endorsed but did not reveal */
    uint32_t stage3_in = completed || r->reached_ph >= PH_UNMASK ? cn[PH_UNMASK] : cn[PH_CONSIST];
    st.dropped[3] = cn[PH_MASKED] >= stage3_in ? cn[PH_MASKED] - stage3_in : 0;
    /* a round that aborted at stage s never opened the later ones: nobody
     * dropped there (the round log would otherwise blame every client that
     * answered stage s for "dropping" at s + 1) */
    for (int s = completed ? 4 : r->reached + 1; s < 4; s++)
        st.dropped[s] = 0;
    memcpy(st.stage_ms, r->stage_ms, sizeof st.stage_ms);
    st.bytes_in = c->bytes_in - r->bytes_in0;
    st.bytes_out = c->bytes_out - r->bytes_out0;
    st.model_version = r->version_after;
    st.total_weight = r->total_weight;
    st.params = &r->p;
    st.cohort_ids = r->ids;
    st.survivor_ids = r->surv;
    st.sum = completed ? c->sum : NULL;
    st.culprit_ids = r->culprits;
    st.n_culprits = r->n_culprits;
    st.withheld_ids = r->withheld;
    st.n_withheld = r->n_withheld;
    st.withheld_step = r->withheld_step;
    st.seed_attempts = r->seed_attempt + 1;
    st.seed_dropped_ids = r->seed_dropped;
    st.n_seed_dropped = r->n_seed_dropped;
    st.dp = c->dp.on;
    if (c->dp.on) {
        st.dp_charged = r->dp_charged;
        st.dp_event = c->dp.ev;
        st.dp_eps_round = c->dp.p.epsilon_round;
        st.dp_eps_cumulative = r->dp_charged ? r->dp_eps_cumulative : c->dp.spent;
    }
    if (r->grp)
        fedreci_eng_master_stats(r, &st);
    *out = st;
}

/* The round r ended (committed or aborted): report it, answer its held
 * requests with the result, stop after max_rounds, else start the next
 * round or the check-in window. */
/* The clients the SecAgg+ server caught cheating in r: kept in r (for the
 * round log) and excluded from later rounds. */
static void collect_culprits(fedreci_coord *c, rstate *r, outbox *ob)
{
    const uint64_t *ids = NULL;
    size_t n = r->srv ? fedreci_secagg_server_culprits(r->srv, &ids) : 0;
    if (!n)
        return;
    uint64_t *v = malloc(n * sizeof *v);
    if (!v)
        return;
    memcpy(v, ids, n * sizeof *v);
    free(r->culprits);
    r->culprits = v;
    r->n_culprits = (uint32_t)n;
    for (size_t i = 0; i < n; i++) {
        fedreci_log(FEDRECI_LOG_WARN, (int64_t)r->id,
                    "client %016llx named a culprit (a seed contribution or a share that does "
                    "not open its commitment, an endorsement signature that does not verify, "
                    "or shares that rebuild another secret than committed)",
                    (unsigned long long)v[i]);
        fedreci_eng_exclude(c, fedreci_eng_reg_find(c, v[i]), r->id, 1, ob);
    }
}

void fedreci_eng_round_end(fedreci_coord *c, rstate *r, outbox *ob)
{
    int completed = r->stage == ST_DONE;
    if (r->grp)
        fedreci_eng_master_round_ended(c, r);
    collect_culprits(c, r, ob);
    fedreci_round_stats st;
    round_stats(c, r, &st);
    /* one line per event: with on_round_done the hook's owner logs the
       round (the daemon's round log line); the engine's line is debug */
    int hooked = c->hooks.on_round_done != NULL;
    if (completed)
        fedreci_log(hooked ? FEDRECI_LOG_DEBUG : FEDRECI_LOG_INFO, (int64_t)r->id,
                    "round done: cohort %u, survivors %u, dropped %u/%u/%u/%u, model v%llu", r->n,
                    (unsigned)r->ns, st.dropped[0], st.dropped[1], st.dropped[2], st.dropped[3],
                    (unsigned long long)r->version_after);
    else
        fedreci_log(hooked ? FEDRECI_LOG_DEBUG : FEDRECI_LOG_WARN, (int64_t)r->id,
                    "round aborted: %s", r->reason);
    if (c->hooks.on_round_done)
        c->hooks.on_round_done(c->hooks.arg, &st);
    reply_parked_results(c, r, ob);
    fedreci_secagg_server_destroy(r->srv);
    r->srv = NULL;
    c->rounds_run++;
    if (completed) {
        c->rounds_completed++;
        c->abort_streak = 0;
        c->hold_until = 0;
    } else {
        c->rounds_aborted++;
        c->abort_streak++;
        if (c->cfg.backoff_after && c->abort_streak >= c->cfg.backoff_after) {
            uint32_t extra = c->abort_streak - c->cfg.backoff_after;
            uint64_t wait = c->cfg.backoff_ms;
            for (uint32_t i = 0; i < extra && wait < c->cfg.backoff_max_ms; i++)
                wait *= 2;
            if (wait > c->cfg.backoff_max_ms)
                wait = c->cfg.backoff_max_ms;
            c->hold_until = now_ms() + wait;
            fedreci_log(FEDRECI_LOG_WARN, (int64_t)r->id,
                        "%u rounds aborted in a row: the next round starts in %llu ms at the "
                        "earliest",
                        c->abort_streak, (unsigned long long)wait);
        }
    }
    c->deadline = 0;
    if (c->cfg.max_rounds && c->rounds_run >= c->cfg.max_rounds) {
        c->stopped = 1;
        fedreci_eng_release_waiting(c, FEDREC__V1__CHECK_IN_REPLY__STATUS__NO_ROUND, ob);
        fedreci_log(FEDRECI_LOG_INFO, (int64_t)r->id, "ran %llu rounds; stopping",
                    (unsigned long long)c->rounds_run);
    }
    pthread_cond_broadcast(&c->cv_done);
    if (!c->stopped) {
        fedreci_eng_maybe_select(c, ob);
        if ((!c->cur || c->cur->stage >= ST_DONE) && c->n_waiting > 0)
            fedreci_eng_set_deadline(c, now_ms() + c->cfg.checkin_window_ms);
    }
}

void fedreci_eng_round_abort(fedreci_coord *c, rstate *r, fedrec_err err, const char *why,
                             outbox *ob)
{
    if (r->stage < N_PH) {
        r->stage_ms[fedreci_eng_phase_stage(r->stage)] += (double)(now_ms() - r->t_stage);
        r->reached = fedreci_eng_phase_stage(r->stage);
        r->reached_ph = r->stage;
    }
    r->stage = ST_ABORTED;
    r->err = err;
    r->version_after = c->model->version;
    snprintf(r->reason, sizeof r->reason, "%s", why);
    fedreci_eng_round_end(c, r, ob);
}

pmodel *fedreci_eng_model_new(uint64_t version, uint32_t n_items, uint32_t k, const float *y,
                              pcat *cat)
{
    size_t n = (size_t)n_items * k;
    pmodel *nm = calloc(1, sizeof *nm);
    float *yc = nm ? malloc(n * sizeof *yc) : NULL;
    float *gram = yc ? malloc((size_t)k * k * sizeof *gram) : NULL;
    if (!gram) {
        free(yc);
        free(nm);
        return NULL;
    }
    memcpy(yc, y, n * sizeof *yc);
    fedreci_mf_gram(yc, n_items, k, gram);
    atomic_init(&nm->refs, 1);
    nm->version = version;
    nm->n_items = n_items;
    nm->k = k;
    nm->y = yc;
    nm->gram = gram;
    nm->cat = cat; /* one more reference */
    atomic_fetch_add(&cat->refs, 1);
    fedreci_wire_checksum(yc, n * sizeof *yc, nm->checksum);
    return nm;
}

fedrec_err fedreci_eng_commit(fedreci_coord *c, rstate *r, const float *grad, uint32_t weight)
{
    r->total_weight = weight;
    pmodel *old = c->model;
    size_t n = (size_t)old->n_items * old->k;
    pmodel *nm = calloc(1, sizeof *nm);
    float *y = nm ? malloc(n * sizeof *y) : NULL;
    float *gram = y ? malloc((size_t)old->k * old->k * sizeof *gram) : NULL;
    if (!gram) {
        free(y);
        free(nm);
        return fedreci_error(FEDREC_ERR_NOMEM, "coordinator: model copy of %zu floats", n);
    }
    memcpy(y, old->y, n * sizeof *y);
    int applied = 0;
    fedrec_err e = FEDREC_OK;
    if (c->dp.on) {
        e = fedreci_eng_dp_commit(c, r, y);
        applied = weight > 0;
    } else {
        size_t nk = (size_t)old->n_items * old->k;
        e = fedreci_optimizer_step_xx(c->opt, y, grad, grad + nk,
                                      fedreci_mf_xx_weight(c->cfg.clip, c->cfg.x_bound),
                                      (double)weight, &applied);
    }
    if (!e && !applied) {
        /* nothing to apply (zero total weight): an aborted round with its
           reason, so that the round log has its row */
        free(y);
        free(gram);
        free(nm);
        r->version_after = old->version;
        return fedreci_error(FEDREC_ERR_ABORTED, "total weight %u: no update to apply", weight);
    }
    if (!e && c->hooks.on_model_committed)
        e = c->hooks.on_model_committed(c->hooks.arg, r->id, old->version + 1, y, old->n_items,
                                        old->k);
    if (e) {
        free(y);
        free(gram);
        free(nm);
        return e;
    }
    fedreci_mf_gram(y, old->n_items, old->k, gram);
    atomic_init(&nm->refs, 1);
    nm->version = old->version + 1;
    nm->n_items = old->n_items;
    nm->k = old->k;
    nm->y = y;
    nm->gram = gram;
    nm->cat = old->cat; /* same catalog: one more reference */
    atomic_fetch_add(&nm->cat->refs, 1);
    fedreci_wire_checksum(y, n * sizeof *y, nm->checksum);
    c->model = nm;
    fedreci_eng_model_unref(old);
    r->version_after = nm->version;
    return FEDREC_OK;
}

/* Commits the unmasked sum: dequantize, optimizer step, new model version. */
static fedrec_err commit_model(fedreci_coord *c, rstate *r)
{
    uint32_t weight = 0;
    if (c->dp.on)
        weight = c->sum[r->p.d - 1];
    else
        fedreci_secagg_dequantize(&r->p, c->sum, c->grad, &weight);
    return fedreci_eng_commit(c, r, c->grad, weight);
}

/* The roster: every member's id and the digest of their seed commitments
 * (the neighbours are known only once the seed is); after a seed step
 * retry, the reply to a SeedReveal (stage SEED, the attempt's number). */
static nng_msg *roster_msg(fedreci_coord *c, rstate *r, uint64_t client)
{
    nng_msg *m = NULL;
    fedreci_wire_hdr h = {client, r->id,
                          r->seed_attempt ? FEDRECI_WIRE_STAGE_SEED : FEDRECI_WIRE_STAGE_ADVERTISE};
    (void)c;
    if (fedreci_find_u64(r->roster_ids, r->m, client) < 0)
        return NULL;
    if (fedreci_wire_enc_roster_attempt(&m, &h, r->seed_attempt, r->roster_ids, r->m, r->digest,
                                        NULL, 0))
        m = NULL;
    return m;
}

/* Every member's contribution and the adverts of the client and its
 * neighbours in the graph seeded from them. */
static nng_msg *seed_relay_msg(fedreci_coord *c, rstate *r, uint64_t client)
{
    long mi = fedreci_find_u64(r->roster_ids, r->m, client);
    if (mi < 0 || !r->contribs)
        return NULL;
    const fedreci_secagg_advert **ap = NULL;
    nng_msg *m = NULL;
    uint32_t nn = 0;
    fedreci_wire_hdr h = {client, r->id, FEDRECI_WIRE_STAGE_SEED};
    (void)c;
    if (fedreci_secagg_neighbors(&r->p, (uint32_t)r->m, (uint32_t)mi, r->nbr, r->p.n, &nn))
        return NULL;
    ap = malloc(((size_t)nn + 1) * sizeof *ap);
    if (!ap)
        return NULL;
    ap[0] = &r->roster[mi];
    for (uint32_t i = 0; i < nn; i++)
        ap[i + 1] = &r->roster[r->nbr[i]];
    if (fedreci_wire_enc_seed_relay(&m, &h, r->contribs, r->m, r->missing, ap, (size_t)nn + 1))
        m = NULL;
    free(ap);
    return m;
}

nng_msg *fedreci_eng_tags_msg(rstate *r, uint64_t client, const uint64_t *want, size_t n_want)
{
    const fedreci_secagg_tag *tags;
    const fedreci_secagg_endorsement *sigs = NULL;
    const uint64_t *peers;
    size_t n, ns = 0, n_peers;
    nng_msg *m = NULL;
    fedreci_wire_hdr h = {client, r->id, FEDRECI_WIRE_STAGE_CONSISTENCY};
    if (!r->srv || fedreci_secagg_server_tags_for(r->srv, client, &tags, &n))
        return NULL;
    if (n_want && fedreci_secagg_server_endorsements_for(r->srv, client, want, n_want, &sigs, &ns))
        return NULL;
    if (fedreci_secagg_server_endorse_peers(r->srv, client, &peers, &n_peers))
        return NULL;
#ifdef FEDREC_CHEAT
    uint64_t told[256];
    if (fedreci_cheat_endorse_peers(r->id, client, told, 256, &n_peers)) { /* the test build */
        /* only the tags from the peers of the set the client was told */
        peers = told;
        fedreci_secagg_tag *keep = malloc((n ? n : 1) * sizeof *keep);
        size_t nk = 0;
        for (size_t i = 0; keep && i < n; i++)
            if (fedreci_find_u64(told, n_peers, tags[i].from) >= 0)
                keep[nk++] = tags[i];
        if (!keep || fedreci_wire_enc_consistency_relay(&m, &h, peers, n_peers, keep, nk, sigs, ns))
            m = NULL;
        free(keep);
        return m;
    }
#endif
    if (fedreci_wire_enc_consistency_relay(&m, &h, peers, n_peers, tags, n, sigs, ns))
        return NULL;
    return m;
}

static nng_msg *relay_msg(fedreci_coord *c, rstate *r, uint64_t client)
{
    const fedreci_secagg_ciphertext *cts;
    size_t n;
    nng_msg *m = NULL;
    fedreci_wire_hdr h = {client, r->id, FEDRECI_WIRE_STAGE_SHARE_KEYS};
    (void)c;
    if (!r->srv || fedreci_secagg_server_shares_for(r->srv, client, &cts, &n))
        return NULL;
    if (fedreci_wire_enc_ciphertexts(&m, &h, 1, cts, n))
        return NULL;
    return m;
}

/* The complaint step's reply: the complaints against the client (not final,
 * phase PH_COMPLAIN of a round with complaints), or the members excluded
 * and the openings addressed to it (final). */
static nng_msg *complaint_relay_msg(rstate *r, uint64_t client, int s)
{
    nng_msg *m = NULL;
    fedreci_wire_hdr h = {client, r->id,
                          s == PH_OPEN ? FEDRECI_WIRE_STAGE_OPENING : FEDRECI_WIRE_STAGE_COMPLAINT};
    if (!r->srv)
        return NULL;
    if (!r->cpl_final) {
        const fedreci_secagg_complaint *ag;
        size_t n;
        if (fedreci_secagg_server_complaints_against(r->srv, client, &ag, &n) ||
            fedreci_wire_enc_complaint_relay(&m, &h, ag, n, 0, NULL, 0, NULL, 0))
            return NULL;
        return m;
    }
    const fedreci_secagg_opening *op;
    size_t n;
    if (fedreci_secagg_server_openings_for(r->srv, client, &op, &n) ||
        fedreci_wire_enc_complaint_relay(&m, &h, NULL, 0, 1, r->excl, r->n_excl, op, n))
        return NULL;
    return m;
}

static nng_msg *unmask_req_msg(rstate *r, uint64_t client)
{
    nng_msg *m = NULL;
    fedreci_wire_hdr h = {client, r->id, FEDRECI_WIRE_STAGE_MASKED_INPUT};
    if (fedreci_wire_enc_unmask_request(&m, &h, r->surv, r->ns, r->drop, r->nd))
        return NULL;
    return m;
}

/* The reply to an accepted stage-s message once stage s has closed. */
nng_msg *fedreci_eng_stage_answer(fedreci_coord *c, rstate *r, uint64_t client, int s)
{
    nng_msg *m = NULL;
    if (r->stage >= ST_DONE) {
        fedreci_eng_round_result_msg(c, r, client, &m);
        return m;
    }
    switch (s) {
    case PH_ADV:
        return roster_msg(c, r, client);
    case PH_SEED:
        /* the seed step still open: a retry's roster (a resend of the
           revealed attempt's message after the retry started) */
        return r->contribs ? seed_relay_msg(c, r, client) : roster_msg(c, r, client);
    case PH_SHARE:
        return relay_msg(c, r, client);
    case PH_COMPLAIN:
    case PH_OPEN:
        return complaint_relay_msg(r, client, s);
    case PH_MASKED:
        return unmask_req_msg(r, client);
    case PH_CONSIST:
        return fedreci_eng_tags_msg(r, client, NULL, 0);
    default:
        return NULL;
    }
}

/* Whether member i is expected to send the message of stage s. */
int fedreci_eng_expected_at(const rstate *r, uint32_t i, int s)
{
    return s == 0 || (r->mem[i].acc & (1u << (s - 1)));
}

static void recount_gone(rstate *r)
{
    r->gone = 0;
    for (uint32_t i = 0; i < r->n; i++)
        if (r->mem[i].gone && fedreci_eng_expected_at(r, i, r->stage) &&
            !(r->mem[i].acc & (1u << r->stage)))
            r->gone++;
}

/* Stage 0 closes: the roster of the clients whose adverts were accepted. */
static fedrec_err close_advertise(rstate *r)
{
    const fedreci_secagg_advert *ro;
    size_t m;
    fedrec_err e = fedreci_secagg_server_close_advertise(r->srv, &ro, &m);
    if (e)
        return e;
    r->roster = malloc(m * sizeof *r->roster);
    r->roster_ids = malloc(m * sizeof *r->roster_ids);
    if (!r->roster || !r->roster_ids)
        return fedreci_error(FEDREC_ERR_NOMEM, "coordinator: roster of %zu", m);
    memcpy(r->roster, ro, m * sizeof *ro);
    for (size_t i = 0; i < m; i++)
        r->roster_ids[i] = ro[i].client_id;
    r->m = m;
    memcpy(r->digest, fedreci_secagg_server_seed_digest(r->srv), sizeof r->digest);
    r->expected = (uint32_t)m;
    return FEDREC_OK;
}

/* The seed phase closes: every member revealed (else the round aborts); the
 * graph seed is derived from the contributions. */
static fedrec_err close_seed(rstate *r)
{
    const uint8_t *contribs;
    fedrec_err e = fedreci_secagg_server_close_reveal(r->srv, &contribs);
    if (e)
        return e;
    r->contribs = malloc(r->m * 32);
    r->missing = malloc(r->m);
    if (!r->contribs || !r->missing)
        return fedreci_error(FEDREC_ERR_NOMEM, "coordinator: %zu seed contributions", r->m);
    memcpy(r->contribs, contribs, r->m * 32);
    memcpy(r->missing, fedreci_secagg_server_seed_missing(r->srv), r->m);
    memcpy(r->p.graph_seed, fedreci_secagg_server_graph_seed(r->srv), sizeof r->p.graph_seed);
    r->expected = r->count[PH_SEED];
    return FEDREC_OK;
}

/* Stage 1 closes: the shares are ready to relay. */
static fedrec_err close_share_keys(rstate *r)
{
    fedrec_err e = fedreci_secagg_server_close_share_keys(r->srv);
    r->expected = r->count[PH_SHARE];
    return e;
}

/* The complaint step's outcome: the excluded members; they are expected at
 * no later phase. */
static fedrec_err finish_complaints(rstate *r)
{
    const uint64_t *ex;
    size_t n;
    fedrec_err e = fedreci_secagg_server_close_complaints(r->srv, &ex, &n);
    if (e)
        return e;
    r->excl = malloc((n ? n : 1) * sizeof *ex);
    if (!r->excl)
        return fedreci_error(FEDREC_ERR_NOMEM, "coordinator: exclusion list of %zu", n);
    memcpy(r->excl, ex, n * sizeof *ex);
    r->n_excl = n;
    r->cpl_final = 1;
    for (size_t i = 0; i < n; i++)
        fedreci_log(FEDRECI_LOG_WARN, (int64_t)r->id,
                    "client %016llx excluded from the round by the complaint step",
                    (unsigned long long)ex[i]);
    return FEDREC_OK;
}

/* The complaint phase closes: without complaints the step's outcome is
 * final now (the opening phase then closes at once); otherwise every member
 * that took part answers the complaints against it (none: an empty message). */
static fedrec_err close_complain(rstate *r)
{
    if (fedreci_secagg_server_n_complaints(r->srv) == 0) {
        r->expected = 0;
        return finish_complaints(r);
    }
    r->expected = r->count[PH_COMPLAIN];
    return FEDREC_OK;
}

/* The opening phase closes: the exclusions are final; the members that took
 * part and are not excluded are the ones expected to mask. */
static fedrec_err close_open(rstate *r)
{
    int skipped = r->cpl_final; /* nobody complained: nobody was asked to open */
    fedrec_err e = skipped ? FEDREC_OK : finish_complaints(r);
    if (e)
        return e;
    uint32_t n = 0;
    for (uint32_t i = 0; i < r->n; i++) {
        member *mb = &r->mem[i];
        int in =
            (mb->acc & (1u << PH_COMPLAIN)) && fedreci_find_u64(r->excl, r->n_excl, r->ids[i]) < 0;
        if (skipped && in)
            mb->acc |= (uint8_t)(1u << PH_OPEN);
        if (!in)
            mb->acc &= (uint8_t) ~((1u << PH_COMPLAIN) | (1u << PH_OPEN));
        n += (mb->acc & (1u << PH_OPEN)) != 0;
    }
    if (skipped)
        r->count[PH_OPEN] = n;
    r->expected = n;
    return FEDREC_OK;
}

/* Stage 2 closes: the survivors (masked input accepted) and the dropped. */
static fedrec_err close_masked_input(fedreci_coord *c, rstate *r)
{
    const uint64_t *sv, *dr;
    size_t ns, nd;
    fedrec_err e = fedreci_secagg_server_close_masked_input(r->srv, &sv, &ns, &dr, &nd);
    if (e)
        return e;
    r->surv = malloc((ns ? ns : 1) * sizeof *sv);
    r->drop = malloc((nd ? nd : 1) * sizeof *dr);
    if (!r->surv || !r->drop)
        return fedreci_error(FEDREC_ERR_NOMEM, "coordinator: survivor lists");
    memcpy(r->surv, sv, ns * sizeof *sv);
    memcpy(r->drop, dr, nd * sizeof *dr);
    r->ns = ns;
    r->nd = nd;
    r->expected = (uint32_t)ns;
    return r->dp.mechanism ? fedreci_eng_dp_charge(c, r) : FEDREC_OK;
}

/* The consistency phase closes: the tags are ready to relay. */
static fedrec_err close_consistency(rstate *r)
{
    fedrec_err e = fedreci_secagg_server_close_consistency(r->srv);
    r->expected = r->count[PH_CONSIST];
    return e;
}

/* Stage 3 closes: the sum is unmasked (and committed by close_stage). */
static fedrec_err close_unmask(fedreci_coord *c, rstate *r)
{
    fedrec_err e = fedreci_secagg_server_finish(r->srv, c->sum, r->p.d);
    /* never build a model from a sum honest clipped inputs cannot produce:
       every honest client sends max_weight, and each |q| <= ceil(clip scale) */
    if (!e)
        e = fedreci_secagg_check_sum(&r->p, c->sum, (uint32_t)r->ns,
                                     (uint32_t)r->ns * r->p.max_weight);
    if (!e && c->cfg.role == FEDRECI_ROLE_AGGREGATOR) {
        /* the group's checked sum goes to the master; the round ends with
           its verdict (fedreci_coord_group_verdict) */
        r->awaiting = 1;
        r->total_weight = (double)c->sum[r->p.d - 1];
    }
    return e;
}

/* Phase s (before PH_UNMASK) closed at time t: its held requests get phase
 * s+1's input and phase s+1 opens, closing at once when nobody it expects is
 * left. Its deadline is its SecAgg stage's. */
static void open_next_stage(fedreci_coord *c, rstate *r, int s, uint64_t t, outbox *ob)
{
    for (uint32_t i = 0; i < r->n; i++) {
        if (r->mem[i].park < 0)
            continue;
        cctx *x = fedreci_eng_unpark(c, r->mem[i].park);
        r->mem[i].park = -1;
        nng_msg *m = fedreci_eng_stage_answer(c, r, r->ids[i], s);
        fedreci_eng_reply(c, x, m, ob);
    }
    r->stage = s + 1;
    r->t_stage = t;
    recount_gone(r);
    if (r->expected <= r->gone) {
        fedreci_eng_close_stage(c, r, ob);
        return;
    }
    fedreci_eng_set_deadline(c, t + c->cfg.stage_ms[fedreci_eng_phase_stage(s + 1)]);
}

/* The seed step aborted r (members missed the reveal in its last attempt,
 * with no retry left): each member of that attempt whose contribution was
 * not accepted, other than a culprit (excluded anyway), is named in
 * r->withheld and benched (fedreci_eng_bench). The members left out by
 * earlier attempts are not (r->seed_dropped names them): most are honest
 * phones that lost a connection, and benching them would bench three to
 * ten times as many honest phones on a lossy network (docs/protocol.md
 * "Honest dropouts at the seed step"); the price is that R + 1 colluding
 * phones that take turns at withholding spread the strikes over
 * themselves. A withheld contribution cannot be told from a phone that
 * went away, so the bench is temporary but doubles with every repeat; a
 * member that misses a reveal in a round that then completes is never
 * benched. */
static void bench_withheld(fedreci_coord *c, rstate *r, outbox *ob)
{
    const uint64_t *cul = NULL;
    size_t nc = r->srv ? fedreci_secagg_server_culprits(r->srv, &cul) : 0;
    free(r->withheld);
    r->n_withheld = 0;
    r->withheld = malloc((r->m ? r->m : 1) * sizeof *r->withheld);
    for (size_t i = 0; i < r->m; i++) {
        uint64_t id = r->roster_ids[i];
        long mi = fedreci_find_u64(r->ids, r->n, id);
        if (mi < 0 || (r->mem[mi].acc & (1u << PH_SEED)) || fedreci_find_u64(cul, nc, id) >= 0)
            continue;
        if (r->withheld)
            r->withheld[r->n_withheld++] = id; /* roster order: sorted */
        fedreci_eng_bench(c, fedreci_eng_reg_find(c, id), r->id,
                          "withheld its graph seed contribution", ob);
    }
}

/* The seed step's deadline passed (or every member still expected is gone)
 * with members that did not reveal: re-run the step without them
 * (fedreci_secagg_server_retry_seed: a new roster and digest, every member
 * that remains reveals the next link of its chain). Their held SeedReveals
 * get the new roster; the ones left out are no longer expected (counted as
 * dropped before sharing keys) and are not benched. FEDREC_OK: the step is
 * open again; FEDREC_ERR_ABORTED (no retry left, too few members) and other
 * errors: the caller aborts the round. */
static fedrec_err retry_seed(fedreci_coord *c, rstate *r, uint64_t t, outbox *ob)
{
    const uint64_t *ids;
    size_t m;
    size_t m_old = r->m;
    fedrec_err e = fedreci_secagg_server_retry_seed(r->srv, &ids, &m);
    if (e)
        return e;
    uint64_t *drop = realloc(r->seed_dropped, (r->n_seed_dropped + m_old) * sizeof *drop);
    if (!drop)
        return fedreci_error(FEDREC_ERR_NOMEM, "coordinator: seed retry of %zu", m_old);
    r->seed_dropped = drop;
    const uint64_t *cul = NULL;
    size_t nc = fedreci_secagg_server_culprits(r->srv, &cul);
    char who[120] = "";
    size_t wo = 0, n_out = 0;
    for (size_t i = 0; i < m_old; i++) {
        uint64_t id = r->roster_ids[i];
        if (fedreci_find_u64(ids, m, id) >= 0)
            continue;
        long mi = fedreci_find_u64(r->ids, r->n, id);
        if (mi >= 0) /* no longer expected at the seed step (nor later) */
            r->mem[mi].acc &= (uint8_t) ~(1u << PH_ADV);
        if (fedreci_find_u64(cul, nc, id) < 0)
            drop[r->n_seed_dropped++] = id;
        if (wo + 20 < sizeof who)
            wo += (size_t)snprintf(who + wo, sizeof who - wo, "%s%016llx", n_out ? " " : "",
                                   (unsigned long long)id);
        n_out++;
    }
    qsort(r->seed_dropped, r->n_seed_dropped, sizeof *r->seed_dropped, cmp_u64);
    /* the roster that remains, in the server's order (a subset of r's) */
    for (size_t i = 0, k = 0; i < m_old && k < m; i++)
        if (r->roster_ids[i] == ids[k]) {
            r->roster[k] = r->roster[i];
            r->roster_ids[k] = r->roster_ids[i];
            k++;
        }
    r->m = m;
    r->seed_attempt = fedreci_secagg_server_seed_attempt(r->srv);
    memcpy(r->digest, fedreci_secagg_server_seed_digest(r->srv), sizeof r->digest);
    for (uint32_t i = 0; i < r->n; i++)
        r->mem[i].acc &= (uint8_t) ~(1u << PH_SEED);
    r->count[PH_SEED] = 0;
    r->expected = (uint32_t)m;
    fedreci_log(FEDRECI_LOG_WARN, (int64_t)r->id,
                "seed step attempt %u: %zu of %zu members did not reveal their graph seed "
                "contribution (%s); retrying without them (attempt %u of at most %u)",
                r->seed_attempt - 1, n_out, m_old, who, r->seed_attempt + 1, r->p.seed_retries + 1);
    /* the held reveals get the new roster; the step opens again */
    for (uint32_t i = 0; i < r->n; i++) {
        if (r->mem[i].park < 0)
            continue;
        cctx *x = fedreci_eng_unpark(c, r->mem[i].park);
        r->mem[i].park = -1;
        nng_msg *msg = roster_msg(c, r, r->ids[i]);
        if (msg) {
            fedreci_eng_reply(c, x, msg, ob);
        } else { /* left out (its reveal was refused or came too late) */
            fedreci_wire_hdr h = {r->ids[i], r->id, FEDRECI_WIRE_STAGE_SEED};
            fedreci_eng_reply_error(c, x, &h, FEDREC_ERR_STAGE,
                                    "left out of the round by a seed step retry", ob);
        }
    }
    r->t_stage = t;
    recount_gone(r);
    if (r->expected <= r->gone) {
        fedreci_eng_close_stage(c, r, ob);
        return FEDREC_OK;
    }
    fedreci_eng_set_deadline(c, t + c->cfg.stage_ms[fedreci_eng_phase_stage(PH_SEED)]);
    return FEDREC_OK;
}

/* The consistency step aborted r (some secret would lack t revealing
 * holders, or fewer than t survivors endorsed; unmask = 0), or the unmask
 * stage did for want of shares (unmask = 1): the survivors that sent no
 * endorsement, or those counted on to reveal that sent no reveals (culprits
 * aside: they are excluded anyway), are named in r->withheld and benched as
 * a withheld seed contribution is. A silent member cannot be told from a
 * phone that went away, so the bench is temporary; a member whose
 * endorsement signature fails is a culprit instead. */
static void bench_non_endorsers(fedreci_coord *c, rstate *r, outbox *ob, int unmask)
{
    const uint64_t *ids = NULL;
    size_t n = !r->srv  ? 0
               : unmask ? fedreci_secagg_server_reveal_withheld(r->srv, &ids)
                        : fedreci_secagg_server_non_endorsers(r->srv, &ids);
    free(r->withheld);
    r->n_withheld = 0;
    r->withheld_step = unmask ? 2 : 1;
    r->withheld = malloc((n ? n : 1) * sizeof *r->withheld);
    for (size_t i = 0; i < n; i++) {
        if (r->withheld)
            r->withheld[r->n_withheld++] = ids[i];
        fedreci_log(FEDRECI_LOG_WARN, (int64_t)r->id, "client %016llx %s: benched",
                    (unsigned long long)ids[i],
                    unmask ? "endorsed the survivor set but sent no reveals"
                           : "sent no endorsement of the survivor set");
        fedreci_eng_bench(c, fedreci_eng_reg_find(c, ids[i]), r->id,
                          unmask ? "endorsed the survivor set but sent no reveals"
                                 : "sent no endorsement of the survivor set",
                          ob);
    }
}

void fedreci_eng_close_stage(fedreci_coord *c, rstate *r, outbox *ob)
{
    if (r->awaiting || r->grp)
        return; /* waits for the master's verdict / runs at aggregators */
    int s = r->stage;
    uint64_t t = now_ms();
    if (s < 0 || s >= N_PH)
        return;
    r->stage_ms[fedreci_eng_phase_stage(s)] += (double)(t - r->t_stage);
    fedrec_err e = FEDREC_OK;
    switch (s) {
    case PH_ADV:
        e = close_advertise(r);
        break;
    case PH_SEED:
#ifdef FEDREC_CHEAT
    {
        uint64_t victim = 0; /* the test build claims a member missing (engine_internal.h) */
        if (r->srv &&
            fedreci_cheat_seed_grind(r->id, r->seed_attempt, r->roster_ids, r->m, &victim) &&
            fedreci_secagg_server_seed_forget(r->srv, victim) == FEDREC_OK) {
            long vi = fedreci_find_u64(r->ids, r->n, victim);
            if (vi >= 0 && (r->mem[vi].acc & (1u << PH_SEED))) {
                r->mem[vi].acc &= (uint8_t) ~(1u << PH_SEED);
                r->count[PH_SEED]--;
            }
        }
    }
#endif
        if (r->srv && fedreci_secagg_server_stage(r->srv) == FEDRECI_SECAGG_SEED &&
            r->count[PH_SEED] < r->m) {
            /* members missed the reveal: re-run the seed step without them
               (or abort when no retry is left) */
            e = retry_seed(c, r, t, ob);
            if (!e)
                return;
            break;
        }
        e = close_seed(r);
        break;
    case PH_SHARE:
        e = close_share_keys(r);
        break;
    case PH_COMPLAIN:
        e = close_complain(r);
        break;
    case PH_OPEN:
        e = close_open(r);
        break;
    case PH_MASKED:
        e = close_masked_input(c, r);
        break;
    case PH_CONSIST:
        e = close_consistency(r);
        break;
    default:
        e = close_unmask(c, r);
        break;
    }
    if (e) {
        char why[200];
        snprintf(why, sizeof why, "stage %d%s: %s", fedreci_eng_phase_stage(s),
                 fedreci_eng_phase_step(s), fedrec_errmsg());
        if (s == PH_SEED && e == FEDREC_ERR_ABORTED)
            bench_withheld(c, r, ob);
        if ((s == PH_CONSIST || s == PH_UNMASK) && e == FEDREC_ERR_ABORTED)
            bench_non_endorsers(c, r, ob, s == PH_UNMASK);
        fedreci_eng_round_abort(c, r, e, why, ob);
        return;
    }
    uint32_t expected = s == PH_ADV ? r->n : s == PH_SEED ? (uint32_t)r->m : r->count[s - 1];
    int stage = fedreci_eng_phase_stage(s);
    fedreci_log(FEDRECI_LOG_INFO, (int64_t)r->id, "stage %d%s closed: %u of %u in, %.0f ms", stage,
                fedreci_eng_phase_step(s), r->count[s], expected, (double)(t - r->t_stage));
    /* the hook reports the four stages: each when its last step closed */
    if (c->hooks.on_stage_closed && s != PH_ADV && s != PH_CONSIST && s != PH_COMPLAIN &&
        s != PH_OPEN)
        c->hooks.on_stage_closed(c->hooks.arg, r->id, stage, r->count[s], expected,
                                 r->stage_ms[stage]);
    if (s == PH_UNMASK && r->awaiting) {
        fedreci_round_stats st;
        r->reached = 3;
        round_stats(c, r, &st);
        st.completed = 1;
        st.sum = c->sum;
        st.model_version = c->model->version;
        c->deadline = 0;
        if (c->hooks.on_group_sum)
            c->hooks.on_group_sum(c->hooks.arg, &st);
        return;
    }
    if (s == PH_UNMASK) {
        /* the stage's line and hook come before the commit's */
        e = commit_model(c, r);
        if (e) {
            char why[200];
            snprintf(why, sizeof why, "stage 3: %s", fedrec_errmsg());
            fedreci_eng_round_abort(c, r, e, why, ob);
            return;
        }
        r->stage = ST_DONE;
        fedreci_eng_round_end(c, r, ob);
        return;
    }
    open_next_stage(c, r, s, t, ob);
}

static int in_epoch(const fedreci_coord *c, uint64_t id)
{
    return c->n_epoch && bsearch(&id, c->epoch, c->n_epoch, sizeof id, cmp_u64) != NULL;
}

/* The cohort of round r: n of the nw waiting clients, drawn with a generator
 * seeded by (seed, round id) from the waiting clients sorted by id (so the
 * same inputs give the same cohort), then sorted. With cfg.reshuffle the
 * waiting clients not drawn yet in the current epoch come first and are
 * drawn first; if fewer than n of them wait, all are taken, r->new_epoch is
 * set and the rest is drawn from the others (epoch_commit records the
 * cohort once the round starts). r->ids has room for nw. */
static void draw_cohort(const fedreci_coord *c, rstate *r, size_t nw, uint32_t n)
{
    memcpy(r->ids, c->waiting, nw * sizeof *r->ids);
    qsort(r->ids, nw, sizeof *r->ids, cmp_u64);
    size_t fresh = nw;
    r->new_epoch = 0;
    if (c->cfg.reshuffle) {
        /* partition (deterministic for the same inputs): the clients not
           in the epoch first */
        fresh = 0;
        for (size_t i = 0; i < nw; i++)
            if (!in_epoch(c, r->ids[i])) {
                uint64_t tmp = r->ids[fresh];
                r->ids[fresh++] = r->ids[i];
                r->ids[i] = tmp;
            }
        if (fresh < n)
            r->new_epoch = 1;
    }
    fedreci_rng s = fedreci_rng_seeded(c->cfg.seed ^ (r->id * 0xd1b54a32d192ed03ull));
    for (uint32_t i = 0; i < n; i++) {
        /* draw from the fresh clients while there are any, then from all */
        size_t lo = i, hi = i < fresh ? fresh : nw;
        size_t j = lo + (size_t)fedreci_rng_below(&s, hi - lo);
        uint64_t tmp = r->ids[i];
        r->ids[i] = r->ids[j];
        r->ids[j] = tmp;
    }
    r->n = n;
    qsort(r->ids, n, sizeof *r->ids, cmp_u64);
}

/* cfg.reshuffle: the started round r's cohort joins the epoch (a new epoch
 * holds this cohort only). Out of memory: the epoch restarts empty (logged). */
static void epoch_commit(fedreci_coord *c, const rstate *r)
{
    if (!c->cfg.reshuffle)
        return;
    size_t keep = r->new_epoch ? 0 : c->n_epoch;
    uint64_t *e = malloc((keep + r->n) * sizeof *e);
    if (!e) {
        fedreci_log(FEDRECI_LOG_WARN, (int64_t)r->id,
                    "out of memory recording the cohort's epoch: a new epoch starts");
        free(c->epoch);
        c->epoch = NULL;
        c->n_epoch = 0;
        return;
    }
    size_t a = 0, b = 0, o = 0; /* merge two sorted lists (disjoint: the cohort was fresh) */
    while (a < keep || b < r->n) {
        if (b == r->n || (a < keep && c->epoch[a] < r->ids[b]))
            e[o++] = c->epoch[a++];
        else if (a < keep && c->epoch[a] == r->ids[b])
            e[o++] = c->epoch[a++], b++;
        else
            e[o++] = r->ids[b++];
    }
    free(c->epoch);
    c->epoch = e;
    c->n_epoch = o;
}

/* Round rid with n members drawn from the nw waiting clients, and its SecAgg+
 * server. NULL (logged) when out of memory or when the server cannot be
 * made. */
static rstate *round_new(fedreci_coord *c, uint64_t rid, size_t nw, uint32_t n)
{
    rstate *r = calloc(1, sizeof *r);
    uint8_t(*pks)[FEDRECI_SECAGG_SIGN_PK_BYTES] = NULL;
    fedrec_err e = FEDREC_OK;
    if (r) {
        r->id = rid;
        r->ids = malloc(nw * sizeof *r->ids);
        r->mem = malloc(n * sizeof *r->mem);
        r->nbr = malloc(n * sizeof *r->nbr);
        pks = malloc(n * sizeof *pks);
    }
    if (!r || !r->ids || !r->mem || !r->nbr || !pks) {
        fedreci_log(FEDRECI_LOG_ERROR, (int64_t)rid, "out of memory selecting a cohort");
        e = FEDREC_ERR_NOMEM;
    } else {
        draw_cohort(c, r, nw, n);
        /* the round's key: with each member's signed s_pk it keys the MAC
           of the member's masked input (proto/wire.h fedreci_wire_mac) */
        randombytes_buf(r->coord_sk, sizeof r->coord_sk);
        if (crypto_scalarmult_base(r->coord_pk, r->coord_sk) != 0)
            e = FEDREC_ERR_CRYPTO;
        r->adv_key_mi = -1;
        for (uint32_t i = 0; i < n; i++) {
            memset(&r->mem[i], 0, sizeof r->mem[i]);
            r->mem[i].acc = 0;
            r->mem[i].gone = 0;
            r->mem[i].park = -1;
            crec *cr = fedreci_eng_reg_find(c, r->ids[i]);
            memcpy(pks[i], cr->pk, sizeof pks[i]);
        }
        fedreci_eng_derive_params(c, n, rid, &r->p, &r->dp);
        if (c->cfg.role == FEDRECI_ROLE_MASTER) {
            r->id = rid; /* groups and their parameters: fedreci_eng_master_plan */
        } else {
            if (!e)
                e = fedreci_secagg_params_check(&r->p);
            if (!e) {
                /* what every member's advert must bind: these parameters and
                   the model the round trains on */
                fedreci_wire_round w = wire_round(c, r);
                fedreci_wire_binding(&w, c->model->checksum, r->binding);
            }
            if (!e)
                e = fedreci_secagg_server_create(&r->srv, &r->p, r->ids, (const uint8_t(*)[32])pks);
            if (!e)
                fedreci_secagg_server_set_binding(r->srv, r->binding);
        }
        if (e)
            fedreci_log(FEDRECI_LOG_ERROR, (int64_t)rid, "cannot start round with %u clients: %s",
                        n, fedrec_errmsg());
    }
    free(pks);
    if (e) {
        fedreci_eng_round_free(r);
        r = NULL;
    }
    return r;
}

/* Answers every held check-in now that round r started: SELECTED with the
 * round's parameters, or NOT_SELECTED; the waiting list empties. */
static void answer_checkins(fedreci_coord *c, const rstate *r, outbox *ob)
{
    for (size_t i = 0; i < c->n_waiting; i++) {
        crec *cr = fedreci_eng_reg_find(c, c->waiting[i]);
        if (!cr || cr->wait_ctx < 0)
            continue;
        cctx *x = fedreci_eng_unpark(c, cr->wait_ctx);
        cr->wait_ctx = -1;
        int sel = fedreci_find_u64(r->ids, r->n, cr->id) >= 0;
        fedreci_eng_checkin_reply(c, x, cr->id,
                                  sel ? FEDREC__V1__CHECK_IN_REPLY__STATUS__SELECTED
                                      : FEDREC__V1__CHECK_IN_REPLY__STATUS__NOT_SELECTED,
                                  sel ? r : NULL, ob);
    }
    c->n_waiting = 0;
}

/* Starts the next round with a cohort of min(cohort_size, waiting); when it
 * cannot start, every waiting client is told NOT_SELECTED. */
static void select_cohort(fedreci_coord *c, outbox *ob)
{
    size_t nw = c->n_waiting;
    uint32_t n = nw < c->cfg.cohort_size ? (uint32_t)nw : c->cfg.cohort_size;
    uint64_t rid = c->next_round_id;
    if (!fedreci_eng_dp_gate(c, rid, ob))
        return;
    rstate *r = round_new(c, rid, nw, n);
    if (r && c->cfg.role == FEDRECI_ROLE_MASTER && fedreci_eng_master_plan(c, r) != FEDREC_OK) {
        fedreci_eng_round_free(r);
        r = NULL;
    }
    if (!r) {
        fedreci_eng_release_waiting(c, FEDREC__V1__CHECK_IN_REPLY__STATUS__NOT_SELECTED, ob);
        return;
    }
    if (c->hooks.on_round_start) {
        fedreci_round_begin b = {rid, n, (uint32_t)nw, c->model->version, &r->p};
        if (c->hooks.on_round_start(c->hooks.arg, &b) != FEDREC_OK) {
            /* nobody knows the id yet: it stays unused */
            fedreci_log(FEDRECI_LOG_WARN, (int64_t)rid,
                        "round not started (the round-start hook failed: %s); %zu waiting "
                        "clients told to retry",
                        fedrec_errmsg(), nw);
            if (r->grp)
                fedreci_eng_master_unplan(c, r);
            fedreci_eng_round_free(r);
            fedreci_eng_release_waiting(c, FEDREC__V1__CHECK_IN_REPLY__STATUS__NOT_SELECTED, ob);
            return;
        }
    }
    c->next_round_id++;
    epoch_commit(c, r);
    fedreci_eng_round_free(c->prev);
    c->prev = c->cur;
    c->cur = r;
    r->bytes_in0 = c->bytes_in;
    r->bytes_out0 = c->bytes_out;
    r->stage = 0;
    r->expected = n;
    r->t_stage = now_ms();
    r->version_after = c->model->version;
    answer_checkins(c, r, ob);
    fedreci_log(c->hooks.on_round_start ? FEDRECI_LOG_DEBUG : FEDRECI_LOG_INFO, (int64_t)rid,
                "round start: cohort %u of %zu waiting, k=%u t=%u d=%u, model v%llu", n, nw, r->p.k,
                r->p.t, r->p.d, (unsigned long long)c->model->version);
    if (!r->grp)
        fedreci_eng_set_deadline(c, r->t_stage + c->cfg.stage_ms[0]);
}

int fedreci_eng_round_active(const fedreci_coord *c)
{
    return c->cur && c->cur->stage < ST_DONE;
}

void fedreci_eng_maybe_select(fedreci_coord *c, outbox *ob)
{
    if (c->stopped || c->held || fedreci_eng_round_active(c) ||
        c->cfg.role == FEDRECI_ROLE_AGGREGATOR)
        return;
    uint32_t quorum = c->cfg.checkin_quorum;
    if (c->n_waiting < quorum || c->n_waiting < c->cfg.min_cohort)
        return;
    if (c->cfg.role == FEDRECI_ROLE_MASTER && !fedreci_eng_master_can_select(c, c->n_waiting, 0))
        return;
    if (now_ms() < c->hold_until) {
        /* backing off with a quorum waiting: the round starts when the
           backoff ends, not at the end of the check-in window */
        if (!c->deadline || c->deadline > c->hold_until)
            fedreci_eng_set_deadline(c, c->hold_until);
        return;
    }
    select_cohort(c, ob);
}

/* The current deadline passed (timer thread, lock held). */
void fedreci_eng_on_deadline(fedreci_coord *c, outbox *ob)
{
    if (fedreci_eng_round_active(c)) {
        if (c->cur->grp)
            fedreci_eng_master_deadline(c, c->cur, ob);
        else
            fedreci_eng_close_stage(c, c->cur, ob);
        return;
    }
    if (c->stopped || c->held) /* held: fedreci_coord_release sets the deadline again */
        return;
    if (now_ms() < c->hold_until) { /* backing off: keep the check-ins */
        fedreci_eng_set_deadline(c, c->hold_until);
        return;
    }
    if (c->n_waiting >= c->cfg.min_cohort && c->cfg.role == FEDRECI_ROLE_MASTER &&
        !fedreci_eng_master_can_select(c, c->n_waiting, 1)) {
        fedreci_log(FEDRECI_LOG_WARN, -1,
                    "check-in window closed with %zu clients but too few aggregators ready; "
                    "no round",
                    c->n_waiting);
        fedreci_eng_release_waiting(c, FEDREC__V1__CHECK_IN_REPLY__STATUS__NOT_SELECTED, ob);
    } else if (c->n_waiting >= c->cfg.min_cohort) {
        select_cohort(c, ob);
    } else if (c->n_waiting > 0) {
        fedreci_log(FEDRECI_LOG_INFO, -1,
                    "check-in window closed with %zu clients, below the minimum cohort %u; "
                    "no round",
                    c->n_waiting, c->cfg.min_cohort);
        fedreci_eng_release_waiting(c, FEDREC__V1__CHECK_IN_REPLY__STATUS__NOT_SELECTED, ob);
    }
}

/* Member i of the open round r will send nothing more: the open stage (and
 * each later one) stops waiting for it and closes as soon as every other
 * expected client has answered. Lock held. */
void fedreci_eng_member_gone(fedreci_coord *c, rstate *r, uint32_t i, outbox *ob)
{
    if (r->mem[i].gone || r->grp)
        return; /* a master round's members answer their aggregators */
    r->mem[i].gone = 1;
    if (fedreci_eng_expected_at(r, i, r->stage) && !(r->mem[i].acc & (1u << r->stage)))
        r->gone++;
    if (r->count[r->stage] + r->gone >= r->expected)
        fedreci_eng_close_stage(c, r, ob);
}
