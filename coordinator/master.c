/* coordinator/engine: the master role of SecAgg groups (issue 20). The
 * master keeps check-ins, cohort selection, the model and its commits
 * (round.c); each round's cohort is split into groups
 * (core/secagg/groups.h), one per ready aggregator, and the groups' checked
 * sums are added into the master sum.
 *
 * The aggregator link: a REP socket of its own on agg_listen_url, served by
 * one blocking thread per allowed aggregator key plus two (an aggregator
 * holds at most one request at a time: a REQ socket). A request is
 * verified (coordinator/link.h: signature by the key it names) and must
 * name an allowed key with a sequence number above the last one accepted
 * from that key (a replayed request is refused). A Poll is held until the
 * aggregator is assigned a group or POLL_HOLD_MS pass (Idle); a
 * GroupResult is held until the round is decided (Verdict). A link that
 * closes (the aggregator died) fails its pending group at once. Everything
 * here runs under the engine's lock (c->mu) except the socket calls. See
 * engine_internal.h and docs/protocol.md "Master and aggregators". */
#include "coordinator/engine_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/protocol/reqrep0/rep.h>
#include <nng/supplemental/tls/tls.h>
#include <sodium.h>

#include "coordinator/link.h"
#include "core/err.h"
#include "core/log.h"
#include "core/secagg/groups.h"
#include "core/util.h"

#define POLL_HOLD_MS 1000u  /* a poll is answered Idle after this long */
#define READY_GRACE_MS 5000 /* an aggregator between two polls still counts as ready */

/* One allowed aggregator key and what the master knows of it. */
typedef struct aggent {
    char url[FEDRECI_LINK_MAX_URL + 1];
    uint8_t coord_pk[32]; /* the key its next group's members MAC to */
    int has_key;          /* coord_pk announced and not used yet */
    uint64_t seq;         /* the last sequence number accepted */
    uint64_t model_version;
    uint32_t max_group;
    uint32_t pipe; /* the connection of its last request */
    int alive;     /* seen, link not closed */
    uint64_t seen_ms;
    int polling; /* a poll of it is held now */
    /* its group in the current round (busy while the round is open) */
    uint64_t round_id;
    uint32_t group;
    int busy, delivered;
    fedreci_coord_agg_status st;
} aggent;

/* One group of a master round. */
typedef struct mgroup {
    uint32_t agg;    /* index into master.agg */
    uint32_t off, n; /* members: mround.gids[off .. off + n) */
    fedreci_secagg_params p;
    uint8_t coord_pk[32];
    int reported;
    uint32_t survivors, advertised, shared, unmasked;
} mgroup;

struct mround {
    uint32_t n_groups;
    mgroup *g;
    uint32_t *group_of; /* per cohort index (r->ids order) */
    uint64_t *gids;     /* member ids grouped: group 0's, then group 1's, ... */
    fedreci_groups_round *sum;
    int decided, completed;
    char reason[200];
    uint64_t version_after;
    uint8_t *wstep; /* per r->withheld entry: its FEDRECI_LINK_WITHHELD_* step */
};

struct master {
    nng_socket sock;
    int sock_open;
    int port;
    uint8_t (*keys)[32];
    uint8_t *sk; /* sodium_malloc, 64: signs every reply */
    aggent *agg; /* n_keys, by key index */
    size_t n_keys;
    pthread_t *thr;
    size_t n_thr, n_started;
    pthread_cond_t cv; /* broadcast on assignment, verdict, close */
    int closing;
    /* Held by a link thread while it starts an nng operation on the socket
     * (ctx open, recv, send) and by fedreci_eng_master_close across
     * nng_close: nng 1.5.2 panics (pthread_mutex_lock: EINVAL) when
     * nng_ctx_send runs while nng_close tears the socket down
     * (nanomsg/nng#2110), seen in test_groups_bench. */
    pthread_mutex_t gate;
    int gate_closed; /* under gate: the socket is closed, start nothing */
    char *url;       /* agg_listen_url */
    nng_listener listener;
    int listening; /* listener started (a tls+ one takes a reloaded certificate) */
    size_t d;      /* the model's n_items x k + 1 (fixed for the engine) */
    uint64_t refused;
    uint32_t groups, groups_done, groups_failed; /* of the current or last round */
};

static fedrec_err nng_fail(int rv, const char *what)
{
    return fedreci_error(FEDREC_ERR_TRANSPORT, "coordinator: aggregator link: %s: %s", what,
                         nng_strerror(rv));
}

/* ---- rounds --------------------------------------------------------------- */

void fedreci_eng_master_round_free(struct mround *g)
{
    if (!g)
        return;
    fedreci_groups_round_destroy(g->sum);
    free(g->g);
    free(g->group_of);
    free(g->gids);
    free(g->wstep);
    free(g);
}

/* Whether aggregator a may get a group now. */
static int agg_ready(const aggent *a, uint64_t now)
{
    return a->alive && !a->busy && a->has_key && now < a->seen_ms + READY_GRACE_MS;
}

static uint32_t count_ready(const struct master *m)
{
    uint64_t now = now_ms();
    uint32_t n = 0;
    for (size_t i = 0; i < m->n_keys; i++)
        n += agg_ready(&m->agg[i], now) != 0;
    return n;
}

static uint32_t min_groups_of(const fedreci_coord *c, uint32_t n_groups)
{
    uint32_t mg = c->cfg.min_groups ? c->cfg.min_groups : 1;
    return mg > n_groups ? n_groups : mg;
}

int fedreci_eng_master_can_select(fedreci_coord *c, size_t n_waiting, int window_closed)
{
    struct master *m = c->master;
    uint32_t n = n_waiting < c->cfg.cohort_size ? (uint32_t)n_waiting : c->cfg.cohort_size;
    uint32_t gs = c->cfg.group_size ? c->cfg.group_size : c->cfg.cohort_size;
    uint32_t want = fedreci_groups_count(n, gs, c->cfg.min_cohort, 0);
    uint32_t ready = count_ready(m);
    if (want == 0 || ready == 0)
        return 0;
    if (ready >= want)
        return 1;
    if (!window_closed)
        return 0;
    uint32_t g = fedreci_groups_count(n, gs, c->cfg.min_cohort, ready);
    return g >= (c->cfg.min_groups ? c->cfg.min_groups : 1);
}

/* Group g's parameters: the one-instance rules for its size, the round's
 * common scale and a graph seed of its own. */
static void group_params(const fedreci_coord *c, uint64_t rid, uint32_t g, uint32_t n, double scale,
                         fedreci_secagg_params *p)
{
    fedreci_eng_derive_params(c, n, rid, p, NULL);
    p->scale = scale;
    uint8_t in[32 + 4] = {0};
    memcpy(in, p->graph_seed, 32);
    for (int i = 0; i < 4; i++)
        in[32 + i] = (uint8_t)(g >> (8 * i));
    crypto_generichash(p->graph_seed, sizeof p->graph_seed, in, sizeof in, NULL, 0);
}

uint64_t fedreci_eng_group_worst_ms(const uint32_t stage_ms[4])
{
    uint64_t t = 0;
    for (int ph = 0; ph < N_PH; ph++)
        t += stage_ms[fedreci_eng_phase_stage(ph)];
    return t;
}

uint32_t fedreci_eng_master_round_ms(const uint32_t stage_ms[4])
{
    uint64_t t = fedreci_eng_group_worst_ms(stage_ms) + FEDRECI_MASTER_SLACK_MS;
    return t > UINT32_MAX ? UINT32_MAX : (uint32_t)t;
}

fedrec_err fedreci_eng_master_plan(fedreci_coord *c, rstate *r)
{
    struct master *m = c->master;
    uint64_t now = now_ms();
    uint32_t *ready = malloc((m->n_keys ? m->n_keys : 1) * sizeof *ready);
    struct mround *mr = calloc(1, sizeof *mr);
    if (!ready || !mr) {
        free(ready);
        free(mr);
        return fedreci_error(FEDREC_ERR_NOMEM, "master: round plan");
    }
    uint32_t n_ready = 0;
    for (size_t i = 0; i < m->n_keys; i++)
        if (agg_ready(&m->agg[i], now))
            ready[n_ready++] = (uint32_t)i;
    uint32_t gs = c->cfg.group_size ? c->cfg.group_size : c->cfg.cohort_size;
    uint32_t G = fedreci_groups_count(r->n, gs, c->cfg.min_cohort, n_ready);
    fedrec_err e = FEDREC_OK;
    if (G == 0 || G < (c->cfg.min_groups ? c->cfg.min_groups : 1))
        e = fedreci_error(FEDREC_ERR_ABORTED,
                          "master: %u aggregators ready for a cohort of %u (groups of about %u, "
                          "at least %u needed)",
                          n_ready, r->n, gs, c->cfg.min_groups ? c->cfg.min_groups : 1);
    if (!e) {
        mr->n_groups = G;
        mr->g = calloc(G, sizeof *mr->g);
        mr->group_of = malloc(r->n * sizeof *mr->group_of);
        mr->gids = malloc(r->n * sizeof *mr->gids);
        if (!mr->g || !mr->group_of || !mr->gids)
            e = fedreci_error(FEDREC_ERR_NOMEM, "master: groups of %u", r->n);
    }
    if (!e)
        e = fedreci_groups_assign(r->ids, r->n, G, c->cfg.min_cohort, c->cfg.seed, r->id,
                                  mr->group_of);
    double scale = 0;
    if (!e) {
        uint32_t n_max = fedreci_groups_size(r->n, G, 0);
        scale = c->cfg.scale > 0 ? c->cfg.scale : fedreci_groups_scale(n_max, c->cfg.clip);
        uint32_t off = 0;
        for (uint32_t g = 0; g < G && !e; g++) {
            mgroup *gp = &mr->g[g];
            gp->off = off;
            gp->n =
                fedreci_groups_members(r->ids, mr->group_of, r->n, g, mr->gids + off, r->n - off);
            off += gp->n;
            gp->agg = ready[g];
            group_params(c, r->id, g, gp->n, scale, &gp->p);
            e = fedreci_secagg_params_check(&gp->p);
            memcpy(gp->coord_pk, m->agg[ready[g]].coord_pk, 32);
        }
        if (!e)
            e = fedreci_groups_round_create(&mr->sum, &mr->g[0].p, G, min_groups_of(c, G),
                                            fedreci_groups_size(r->n, G, 0));
    }
    free(ready);
    if (e) {
        fedreci_log(FEDRECI_LOG_WARN, (int64_t)r->id, "no round: %s", fedrec_errmsg());
        fedreci_eng_master_round_free(mr);
        return e;
    }
    for (uint32_t g = 0; g < G; g++) {
        aggent *a = &m->agg[mr->g[g].agg];
        a->busy = 1;
        a->delivered = 0;
        a->has_key = 0; /* used: its next poll brings a fresh one */
        a->round_id = r->id;
        a->group = g;
        a->st.last_round = r->id;
        a->st.last_group = g;
        a->st.last_members = mr->g[g].n;
        a->st.last_survivors = 0;
        a->st.groups_run++;
        a->st.state = 2;
    }
    r->grp = mr;
    m->groups = G;
    m->groups_done = m->groups_failed = 0;
    uint32_t round_ms =
        c->cfg.round_ms ? c->cfg.round_ms : fedreci_eng_master_round_ms(c->cfg.stage_ms);
    fedreci_log(FEDRECI_LOG_INFO, (int64_t)r->id,
                "groups: %u of %u to %u (scale %.0f, at least %u must finish, deadline %u ms)", G,
                fedreci_groups_size(r->n, G, 0), fedreci_groups_size(r->n, G, G - 1), scale,
                min_groups_of(c, G), round_ms);
    fedreci_eng_set_deadline(c, now + round_ms);
    pthread_cond_broadcast(&m->cv);
    return FEDREC_OK;
}

void fedreci_eng_master_unplan(fedreci_coord *c, rstate *r)
{
    struct master *m = c->master;
    struct mround *mr = r->grp;
    for (uint32_t g = 0; mr && g < mr->n_groups; g++) {
        aggent *a = &m->agg[mr->g[g].agg];
        if (a->busy && a->round_id == r->id && !a->delivered) {
            a->busy = 0;
            a->has_key = 1; /* never sent: the aggregator still holds it */
            a->st.groups_run--;
            a->st.state = a->alive ? 1 : 0;
        }
    }
}

void fedreci_eng_master_wire_round(const fedreci_coord *c, const rstate *r, uint64_t client,
                                   fedreci_wire_round *w)
{
    const struct mround *mr = r->grp;
    memset(w, 0, sizeof *w);
    long i = fedreci_find_u64(r->ids, r->n, client);
    const mgroup *gp = &mr->g[i >= 0 ? mr->group_of[i] : 0];
    w->secagg = gp->p;
    w->model_version = c->model->version;
    w->n_items = c->model->n_items;
    w->k_factors = c->model->k;
    uint32_t mx = 0;
    for (int s = 0; s < 4; s++)
        mx = c->cfg.stage_ms[s] > mx ? c->cfg.stage_ms[s] : mx;
    w->stage_timeout_ms = mx;
    memcpy(w->coord_pk, gp->coord_pk, sizeof w->coord_pk);
    snprintf(w->aggregator_url, sizeof w->aggregator_url, "%s", c->master->agg[gp->agg].url);
}

/* The round's counts from its groups (for the round log). */
static void tally(rstate *r)
{
    struct mround *mr = r->grp;
    memset(r->count, 0, sizeof r->count);
    r->ns = 0;
    for (uint32_t g = 0; g < mr->n_groups; g++) {
        const mgroup *gp = &mr->g[g];
        if (!gp->reported)
            continue;
        r->count[0] += gp->advertised;
        r->count[1] += gp->shared;
        r->count[2] += gp->survivors;
        r->count[3] += gp->unmasked;
        if (fedreci_groups_round_state(mr->sum, g) == FEDRECI_GROUP_DONE)
            r->ns += gp->survivors;
    }
}

void fedreci_eng_master_round_ended(fedreci_coord *c, rstate *r)
{
    struct master *m = c->master;
    struct mround *mr = r->grp;
    if (!m || !mr || mr->decided)
        return;
    mr->decided = 1;
    mr->completed = r->stage == ST_DONE;
    mr->version_after = r->version_after;
    if (!mr->completed)
        snprintf(mr->reason, sizeof mr->reason, "%s", r->reason);
    uint32_t done = 0;
    fedreci_groups_round_counts(mr->sum, &done, NULL, NULL, NULL);
    m->groups_done = mr->completed ? done : 0;
    m->groups_failed = mr->n_groups - m->groups_done;
    for (uint32_t g = 0; g < mr->n_groups; g++) {
        aggent *a = &m->agg[mr->g[g].agg];
        int counted = mr->completed && fedreci_groups_round_state(mr->sum, g) == FEDRECI_GROUP_DONE;
        a->st.groups_counted += counted;
        a->st.groups_failed += !counted;
        if (a->busy && a->round_id == r->id) {
            a->busy = 0;
            a->st.state = a->alive ? 1 : 0;
        }
    }
    pthread_cond_broadcast(&m->cv);
}

/* Decides master round r with verdict v (COMMIT or ABORT): commits the
 * master sum or aborts; either way the round ends (round_end reports it to
 * fedreci_eng_master_round_ended). */
static void finalize(fedreci_coord *c, rstate *r, fedreci_groups_verdict v, outbox *ob)
{
    struct mround *mr = r->grp;
    uint32_t done = 0;
    uint64_t surv = 0, weight = 0;
    char why[200];
    tally(r);
    fedreci_groups_round_counts(mr->sum, &done, NULL, &surv, &weight);
    fedrec_err e = FEDREC_OK;
    if (v == FEDRECI_GROUPS_COMMIT) {
        fedreci_groups_round_dequantize(mr->sum, c->grad);
        e = fedreci_eng_commit(c, r, c->grad, (uint32_t)weight);
        if (e)
            snprintf(why, sizeof why, "commit: %s", fedrec_errmsg());
    } else {
        snprintf(why, sizeof why, "%u of %u groups finished, %u needed", done, mr->n_groups,
                 min_groups_of(c, mr->n_groups));
        e = FEDREC_ERR_ABORTED;
    }
    if (!e) {
        r->stage = ST_DONE;
        fedreci_log(FEDRECI_LOG_INFO, (int64_t)r->id,
                    "groups: %u of %u counted, %llu survivors, total weight %llu", done,
                    mr->n_groups, (unsigned long long)surv, (unsigned long long)weight);
        fedreci_eng_round_end(c, r, ob);
    } else {
        fedreci_eng_round_abort(c, r, e, why, ob);
    }
}

/* Group g of r failed (logged with why); decides r when it can be. */
static void group_failed(fedreci_coord *c, rstate *r, uint32_t g, const char *why, outbox *ob)
{
    struct mround *mr = r->grp;
    if (fedreci_groups_round_fail(mr->sum, g) != FEDRECI_GROUP_FAILED)
        return;
    fedreci_log(FEDRECI_LOG_WARN, (int64_t)r->id, "group %u dropped: %s", g, why);
    fedreci_groups_verdict v = fedreci_groups_round_decide(mr->sum, 0);
    if (v != FEDRECI_GROUPS_WAIT && !mr->decided)
        finalize(c, r, v, ob);
}

void fedreci_eng_master_deadline(fedreci_coord *c, rstate *r, outbox *ob)
{
    struct mround *mr = r->grp;
    if (mr->decided)
        return;
    for (uint32_t g = 0; g < mr->n_groups; g++)
        if (fedreci_groups_round_state(mr->sum, g) == FEDRECI_GROUP_PENDING) {
            fedreci_groups_round_fail(mr->sum, g);
            fedreci_log(FEDRECI_LOG_WARN, (int64_t)r->id,
                        "group %u dropped: no result by the round's deadline", g);
        }
    finalize(c, r, fedreci_groups_round_decide(mr->sum, 1), ob);
}

void fedreci_eng_master_stats(const rstate *r, fedreci_round_stats *st)
{
    const struct mround *mr = r->grp;
    uint32_t done = 0;
    fedreci_groups_round_counts(mr->sum, &done, NULL, NULL, NULL);
    st->groups = mr->n_groups;
    st->groups_done = mr->completed ? done : 0;
    st->sum64 = mr->completed ? fedreci_groups_round_sum(mr->sum) : NULL;
    st->sum = NULL;
    st->survivor_ids = NULL;
    st->params = &mr->g[0].p;
    st->withheld_steps = mr->wstep;
}

void fedreci_eng_master_status(const fedreci_coord *c, fedreci_coord_status *st)
{
    const struct master *m = c->master;
    if (!m)
        return;
    st->aggregators_ready = count_ready(m);
    for (size_t i = 0; i < m->n_keys; i++)
        st->aggregators_known += m->agg[i].st.groups_run > 0 || m->agg[i].alive;
    st->groups = m->groups;
    st->groups_done = m->groups_done;
    st->groups_failed = m->groups_failed;
    st->agg_refused = m->refused;
}

size_t fedreci_coord_aggregators(fedreci_coord *c, fedreci_coord_agg_status *out, size_t cap)
{
    if (!c || !c->master)
        return 0;
    pthread_mutex_lock(&c->mu);
    struct master *m = c->master;
    size_t n = 0;
    for (size_t i = 0; i < m->n_keys; i++) {
        const aggent *a = &m->agg[i];
        if (!a->alive && !a->st.groups_run && !a->seq)
            continue;
        if (out && n < cap) {
            out[n] = a->st;
            out[n].state = a->alive ? (a->busy ? 2 : 1) : 0;
        }
        n++;
    }
    pthread_mutex_unlock(&c->mu);
    return n;
}

int fedreci_coord_agg_port(const fedreci_coord *c)
{
    return c && c->master ? c->master->port : 0;
}

/* ---- the link --------------------------------------------------------------- */

static nng_msg *err_reply(struct master *m, fedrec_err code, const char *text, int refused)
{
    nng_msg *out = NULL;
    if (refused) {
        m->refused++;
        fedreci_log(FEDRECI_LOG_WARN, -1, "aggregator link: refused: %s", text);
    }
    if (fedreci_link_enc_error(&out, code, text))
        out = NULL;
    return out;
}

/* The Assign for aggregator a of round r (lock held). */
static nng_msg *assign_msg(fedreci_coord *c, rstate *r, aggent *a)
{
    const struct mround *mr = r->grp;
    const mgroup *gp = &mr->g[a->group];
    uint8_t(*pks)[32] = malloc((size_t)gp->n * 32);
    nng_msg *out = NULL;
    if (!pks)
        return NULL;
    for (uint32_t i = 0; i < gp->n; i++) {
        crec *cr = fedreci_eng_reg_find(c, mr->gids[gp->off + i]);
        if (cr)
            memcpy(pks[i], cr->pk, 32);
        else
            memset(pks[i], 0, 32);
    }
    fedreci_link_assign as;
    memset(&as, 0, sizeof as);
    as.round_id = r->id;
    as.group = a->group;
    as.n_groups = mr->n_groups;
    as.p = gp->p;
    as.model_version = c->model->version;
    as.ids = mr->gids + gp->off;
    as.pks = (const uint8_t *)pks;
    memcpy(as.stage_ms, c->cfg.stage_ms, sizeof as.stage_ms);
    uint8_t *le = NULL;
    if (a->model_version != c->model->version) {
        size_t nw = (size_t)c->model->n_items * c->model->k;
        le = malloc(nw * 4);
        if (!le) {
            free(pks);
            return NULL;
        }
        for (size_t i = 0; i < nw; i++) {
            uint32_t w;
            memcpy(&w, &c->model->y[i], 4);
            le[4 * i] = (uint8_t)w;
            le[4 * i + 1] = (uint8_t)(w >> 8);
            le[4 * i + 2] = (uint8_t)(w >> 16);
            le[4 * i + 3] = (uint8_t)(w >> 24);
        }
        as.has_model = 1;
        as.n_items = c->model->n_items;
        as.k = c->model->k;
        as.factors = le;
        const pcat *cat = c->model->cat;
        as.codes = (const char *const *)cat->codes;
        as.n_codes = cat->codes ? cat->n_codes : 0;
        as.retired = cat->retired;
        as.n_retired = cat->n_retired;
    }
    if (fedreci_link_enc_assign(&out, &as))
        out = NULL;
    free(le);
    free(pks);
    return out;
}

/* A Poll from aggregator a (lock held; may wait on the master's cv). */
static nng_msg *on_poll(fedreci_coord *c, aggent *a, const fedreci_link_req *q)
{
    struct master *m = c->master;
    if (!(a->busy && !a->delivered)) {
        /* a pending assignment was made with the key it announced before */
        snprintf(a->url, sizeof a->url, "%s", q->url);
        snprintf(a->st.url, sizeof a->st.url, "%s", q->url);
        memcpy(a->coord_pk, q->coord_pk, 32);
        a->has_key = 1;
    }
    a->model_version = q->model_version;
    a->max_group = q->max_group;
    uint64_t until = now_ms() + POLL_HOLD_MS;
    for (;;) {
        rstate *r = c->cur;
        if (a->busy && !a->delivered && r && r->id == a->round_id && r->grp &&
            fedreci_eng_round_active(c)) {
            nng_msg *out = assign_msg(c, r, a);
            if (out) {
                a->delivered = 1;
                a->model_version = c->model->version;
            }
            return out;
        }
        if (m->closing || c->stopped)
            return err_reply(m, FEDREC_ERR_CLOSED, "the master is stopping", 0);
        if (!a->busy) {
            /* a newly ready aggregator may let a waiting cohort start */
            outbox ob = {NULL, 0, 0};
            fedreci_eng_maybe_select(c, &ob);
            if (ob.n) {
                pthread_mutex_unlock(&c->mu);
                fedreci_eng_flush(c, &ob);
                pthread_mutex_lock(&c->mu);
                continue;
            }
        }
        uint64_t now = now_ms();
        if (now >= until)
            break;
        a->polling = 1;
        struct timespec ts;
        ts.tv_sec = (time_t)(until / 1000u);
        ts.tv_nsec = (long)(until % 1000u) * 1000000L;
        pthread_cond_timedwait(&m->cv, &c->mu, &ts);
        a->polling = 0;
        a->seen_ms = now_ms();
    }
    nng_msg *out = NULL;
    if (fedreci_link_enc_idle(&out, 0))
        out = NULL;
    return out;
}

static int cmp_id(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* What a member withheld, by FEDRECI_LINK_WITHHELD_* (the bench reasons a
 * single coordinator gives: round.c bench_withheld, bench_non_endorsers). */
static const char *const withheld_what[3] = {"withheld its graph seed contribution",
                                             "sent no endorsement of the survivor set",
                                             "endorsed the survivor set but sent no reveals"};

typedef struct wentry {
    uint64_t id; /* first: cmp_id orders entries by it */
    uint8_t step;
} wentry;

/* Group g of round r failed at a step some of its members withheld (its
 * graph seed step, its consistency step or its unmask stage), and its
 * aggregator names them under that step: each that is a member of g is
 * benched here, where the registry and the check-ins are (as a single
 * coordinator's bench_withheld and bench_non_endorsers do), with that
 * step's reason, and named in the round's log under that step
 * (seed_withheld, consistency_withheld, unmask_withheld: r->withheld with
 * the step of each in mr->wstep, sorted by id); an id that is not a member
 * is ignored and logged. Lock held. */
static void bench_group_withheld(fedreci_coord *c, rstate *r, uint32_t g,
                                 const fedreci_link_result *res, outbox *ob)
{
    struct mround *mr = r->grp;
    const mgroup *gp = &mr->g[g];
    const uint64_t *mem = mr->gids + gp->off;
    size_t add = 0;
    for (int k = 0; k < 3; k++)
        add += res->n_withheld[k] < gp->n ? res->n_withheld[k] : gp->n;
    /* out of memory: they are benched but not named */
    wentry *all = malloc((r->n_withheld + add + 1) * sizeof *all);
    size_t n_all = 0;
    for (size_t i = 0; all && i < r->n_withheld; i++) {
        all[n_all].id = r->withheld[i];
        all[n_all++].step = mr->wstep ? mr->wstep[i] : 0;
    }
    for (int k = 0; k < 3; k++) {
        size_t n = res->n_withheld[k] < gp->n ? res->n_withheld[k] : gp->n;
        for (size_t i = 0; i < n; i++) {
            uint64_t id = res->withheld[k][i];
            size_t j = 0;
            while (j < gp->n && mem[j] != id)
                j++;
            if (j == gp->n) {
                fedreci_log(FEDRECI_LOG_WARN, (int64_t)r->id,
                            "group %u: its aggregator names %016llx, not a member, as one that %s: "
                            "ignored",
                            g, (unsigned long long)id, withheld_what[k]);
                continue;
            }
            if (all) {
                all[n_all].id = id;
                all[n_all++].step = (uint8_t)k;
            }
            fedreci_eng_bench(c, fedreci_eng_reg_find(c, id), r->id, withheld_what[k], ob);
        }
    }
    if (!all)
        return;
    qsort(all, n_all, sizeof *all, cmp_id);
    uint64_t *w = malloc((n_all + 1) * sizeof *w);
    uint8_t *st = malloc(n_all + 1);
    if (w && st) {
        for (size_t i = 0; i < n_all; i++) {
            w[i] = all[i].id;
            st[i] = all[i].step;
        }
        free(r->withheld);
        free(mr->wstep);
        r->withheld = w;
        r->n_withheld = (uint32_t)n_all;
        mr->wstep = st;
    } else {
        free(w);
        free(st);
    }
    free(all);
}

/* A GroupResult from aggregator a (lock held; waits for the round's
 * decision). */
static nng_msg *on_result(fedreci_coord *c, aggent *a, const fedreci_link_req *q)
{
    struct master *m = c->master;
    const fedreci_link_result *res = &q->result;
    rstate *r = NULL;
    if (c->cur && c->cur->id == res->round_id)
        r = c->cur;
    else if (c->prev && c->prev->id == res->round_id)
        r = c->prev;
    char text[200];
    if (!r || !r->grp || res->group >= r->grp->n_groups ||
        &m->agg[r->grp->g[res->group].agg] != a) {
        snprintf(text, sizeof text,
                 "result for round %llu group %u, not a group of this aggregator",
                 (unsigned long long)res->round_id, res->group);
        return err_reply(m, FEDREC_ERR_PROTOCOL, text, 1);
    }
    struct mround *mr = r->grp;
    mgroup *gp = &mr->g[res->group];
    outbox ob = {NULL, 0, 0};
    if (!gp->reported && !mr->decided) {
        gp->reported = 1;
        gp->survivors = res->survivors;
        gp->advertised = res->advertised;
        gp->shared = res->shared;
        gp->unmasked = res->unmasked;
        a->st.last_survivors = res->survivors;
        if (!res->completed) {
            if (res->n_withheld[0] || res->n_withheld[1] || res->n_withheld[2])
                bench_group_withheld(c, r, res->group, res, &ob);
            snprintf(text, sizeof text, "its aggregator reports: %s", res->reason);
            group_failed(c, r, res->group, text, &ob);
        } else if (res->survivors > gp->n) {
            group_failed(c, r, res->group, "more survivors than members", &ob);
        } else if (fedreci_groups_round_add(mr->sum, res->group, res->sum, res->d,
                                            res->survivors) != FEDREC_OK) {
            /* the check failed (the group is marked failed): dropped whole */
            snprintf(text, sizeof text, "%s", fedrec_errmsg());
            group_failed(c, r, res->group, text, &ob);
        } else {
            fedreci_log(FEDRECI_LOG_INFO, (int64_t)r->id, "group %u in: %u survivors of %u members",
                        res->group, res->survivors, gp->n);
            fedreci_groups_verdict v = fedreci_groups_round_decide(mr->sum, 0);
            if (v != FEDRECI_GROUPS_WAIT)
                finalize(c, r, v, &ob);
        }
    }
    if (ob.n) {
        pthread_mutex_unlock(&c->mu);
        fedreci_eng_flush(c, &ob);
        pthread_mutex_lock(&c->mu);
    }
    /* wait for the decision; r is looked up again after every wake (a
       round is freed two rounds later) */
    uint64_t rid = res->round_id;
    for (;;) {
        r = c->cur && c->cur->id == rid ? c->cur : c->prev && c->prev->id == rid ? c->prev : NULL;
        if (!r || !r->grp || m->closing)
            return err_reply(m, FEDREC_ERR_CLOSED, "the round ended without a verdict", 0);
        mr = r->grp;
        if (mr->decided)
            break;
        pthread_cond_wait(&m->cv, &c->mu);
    }
    int counted =
        mr->completed && fedreci_groups_round_state(mr->sum, res->group) == FEDRECI_GROUP_DONE;
    nng_msg *out = NULL;
    if (fedreci_link_enc_verdict(&out, r->id, mr->completed, counted, mr->version_after,
                                 mr->completed ? (counted ? "" : "this group was not counted")
                                               : mr->reason))
        out = NULL;
    return out;
}

/* One request on the link (takes the lock); the reply is unsigned, the
 * request's key and sequence number (zeros when it does not decode) are
 * left in agg_pk and *seq for the seal. */
static nng_msg *handle_link(fedreci_coord *c, nng_msg *msg, uint8_t agg_pk[32], uint64_t *seq)
{
    struct master *m = c->master;
    uint32_t pipe = (uint32_t)nng_pipe_id(nng_msg_get_pipe(msg));
    size_t d = m->d;
    fedreci_link_req q;
    fedrec_err e = fedreci_link_dec_request(nng_msg_body(msg), nng_msg_len(msg),
                                            4 * d + (64u << 10), (uint32_t)d, &q);
    memset(agg_pk, 0, 32);
    *seq = 0;
    if (!e) {
        memcpy(agg_pk, q.agg_pk, 32);
        *seq = q.seq;
    }
    pthread_mutex_lock(&c->mu);
    nng_msg *out = NULL;
    if (e) {
        out = err_reply(m, e, fedrec_errmsg(), 1);
        pthread_mutex_unlock(&c->mu);
        return out;
    }
    size_t i = 0;
    while (i < m->n_keys && sodium_memcmp(m->keys[i], q.agg_pk, 32) != 0)
        i++;
    if (i == m->n_keys) {
        out = err_reply(m, FEDREC_ERR_SIGNATURE, "aggregator key not in the master's list", 1);
    } else if (q.seq <= m->agg[i].seq) {
        char text[120];
        snprintf(text, sizeof text, "aggregator %s: sequence number %llu not above %llu (replay?)",
                 m->agg[i].st.key, (unsigned long long)q.seq, (unsigned long long)m->agg[i].seq);
        out = err_reply(m, FEDREC_ERR_SIGNATURE, text, 1);
    } else {
        aggent *a = &m->agg[i];
        a->seq = q.seq;
        a->pipe = pipe;
        if (!a->alive)
            fedreci_log(FEDRECI_LOG_INFO, -1, "aggregator %s at %s is up", a->st.key,
                        q.is_poll ? q.url : "?");
        a->alive = 1;
        a->seen_ms = now_ms();
        if (a->st.state == 0)
            a->st.state = a->busy ? 2 : 1;
        out = q.is_poll ? on_poll(c, a, &q) : on_result(c, a, &q);
    }
    pthread_mutex_unlock(&c->mu);
    fedreci_link_req_free(&q);
    return out;
}

static void *link_main(void *arg)
{
    fedreci_coord *c = arg;
    struct master *m = c->master;
    nng_ctx ctx;
    nng_aio *aio = NULL;
    if (nng_aio_alloc(&aio, NULL, NULL) != 0)
        return NULL;
    pthread_mutex_lock(&m->gate);
    if (m->gate_closed || nng_ctx_open(&ctx, m->sock) != 0) {
        pthread_mutex_unlock(&m->gate);
        nng_aio_free(aio);
        return NULL;
    }
    pthread_mutex_unlock(&m->gate);
    for (;;) {
        pthread_mutex_lock(&m->gate);
        if (m->gate_closed) {
            pthread_mutex_unlock(&m->gate);
            break;
        }
        nng_ctx_recv(ctx, aio);
        pthread_mutex_unlock(&m->gate);
        nng_aio_wait(aio);
        int rv = nng_aio_result(aio);
        if (rv == NNG_ECLOSED)
            break;
        if (rv != 0)
            continue;
        nng_msg *msg = nng_aio_get_msg(aio);
        if (!msg) /* success without a message (nanomsg/nng#1620) */
            continue;
        uint8_t agg_pk[32];
        uint64_t seq;
        nng_msg *out = handle_link(c, msg, agg_pk, &seq);
        nng_msg_free(msg);
        if (out && fedreci_link_seal_reply(&out, m->sk, agg_pk, seq))
            out = NULL;
        if (!out)
            continue; /* the aggregator times out and asks again */
        pthread_mutex_lock(&m->gate);
        if (m->gate_closed) {
            pthread_mutex_unlock(&m->gate);
            nng_msg_free(out);
            break;
        }
        nng_aio_set_msg(aio, out);
        nng_ctx_send(ctx, aio);
        pthread_mutex_unlock(&m->gate);
        nng_aio_wait(aio);
        if (nng_aio_result(aio) != 0)
            nng_msg_free(out);
    }
    nng_aio_free(aio);
    /* the context went with the socket when it was closed */
    pthread_mutex_lock(&m->gate);
    if (!m->gate_closed)
        nng_ctx_close(ctx);
    pthread_mutex_unlock(&m->gate);
    return NULL;
}

/* nng: a link connection closed. An aggregator whose last request came
 * over it is gone: its pending group fails now. */
static void link_pipe_gone(nng_pipe p, nng_pipe_ev ev, void *arg)
{
    fedreci_coord *c = arg;
    uint32_t id = (uint32_t)nng_pipe_id(p);
    outbox ob = {NULL, 0, 0};
    (void)ev;
    if (atomic_load(&c->closing_flag))
        return;
    pthread_mutex_lock(&c->mu);
    struct master *m = c->master;
    for (size_t i = 0; m && !m->closing && i < m->n_keys; i++) {
        aggent *a = &m->agg[i];
        if (!a->alive || a->pipe != id)
            continue;
        a->alive = 0;
        a->st.state = 0;
        fedreci_log(FEDRECI_LOG_WARN, -1, "aggregator %s: link closed", a->st.key);
        rstate *r = c->cur;
        if (a->busy && r && r->id == a->round_id && r->grp && fedreci_eng_round_active(c))
            group_failed(c, r, a->group, "its aggregator's link closed", &ob);
    }
    pthread_mutex_unlock(&c->mu);
    fedreci_eng_flush(c, &ob);
}

fedrec_err fedreci_eng_master_open(fedreci_coord *c)
{
    if (!c->cfg.agg_listen_url || !c->cfg.agg_keys || c->cfg.n_agg_keys == 0 ||
        !c->cfg.agg_master_sk)
        return fedreci_error(FEDREC_ERR_INVALID,
                             "coordinator: the master role needs an aggregator URL, at least "
                             "one aggregator key and its own identity key");
    if (c->cfg.round_ms && c->cfg.round_ms < fedreci_eng_master_round_ms(c->cfg.stage_ms))
        return fedreci_error(FEDREC_ERR_INVALID,
                             "coordinator: master round deadline %u ms is shorter than an "
                             "aggregator's longest legal group (%llu ms) + %u ms: a group still "
                             "finishing a legal round would be dropped",
                             c->cfg.round_ms,
                             (unsigned long long)fedreci_eng_group_worst_ms(c->cfg.stage_ms),
                             FEDRECI_MASTER_SLACK_MS);
    struct master *m = calloc(1, sizeof *m);
    if (!m)
        return fedreci_error(FEDREC_ERR_NOMEM, "master");
    c->master = m;
    pthread_cond_init(&m->cv, NULL);
    pthread_mutex_init(&m->gate, NULL);
    m->n_keys = c->cfg.n_agg_keys;
    m->url = strdup(c->cfg.agg_listen_url);
    m->keys = malloc(m->n_keys * sizeof *m->keys);
    m->agg = calloc(m->n_keys, sizeof *m->agg);
    m->n_thr = m->n_keys + 2;
    m->thr = calloc(m->n_thr, sizeof *m->thr);
    m->sk = sodium_malloc(64);
    if (!m->keys || !m->agg || !m->thr || !m->url || !m->sk)
        return fedreci_error(FEDREC_ERR_NOMEM, "master");
    memcpy(m->sk, c->cfg.agg_master_sk, 64);
    memcpy(m->keys, c->cfg.agg_keys, m->n_keys * sizeof *m->keys);
    for (size_t i = 0; i < m->n_keys; i++)
        sodium_bin2hex(m->agg[i].st.key, sizeof m->agg[i].st.key, m->keys[i], 8);
    int rv;
    if ((rv = nng_rep0_open(&m->sock)) != 0)
        return nng_fail(rv, "REP socket");
    m->sock_open = 1;
    size_t d = (size_t)c->model->n_items * c->model->k + 1;
    m->d = d;
    nng_socket_set_size(m->sock, NNG_OPT_RECVMAXSZ, 2 * (4 * d + (64u << 10)));
    if ((rv = nng_pipe_notify(m->sock, NNG_PIPE_EV_REM_POST, link_pipe_gone, c)) != 0)
        return nng_fail(rv, "pipe notification");
    return FEDREC_OK;
}

fedrec_err fedreci_eng_master_start(fedreci_coord *c)
{
    struct master *m = c->master;
    nng_listener l;
    int rv;
    const char *url = m->url;
    if ((rv = nng_listener_create(&l, m->sock, url)) != 0)
        return nng_fail(rv, url);
    if (strncmp(url, "tls+", 4) == 0) {
        /* the engine's certificate and key (nng_tls_config_cert_key_file
           wants both in one file and a password: not these two files) */
        fedrec_err e = fedreci_eng_listener_tls(c, l, url);
        if (e)
            return e;
    }
    if ((rv = nng_listener_start(l, 0)) != 0)
        return nng_fail(rv, url);
    m->listener = l;
    m->listening = 1;
    int port = 0;
    if (nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port) == 0)
        m->port = port;
    fedreci_log(FEDRECI_LOG_INFO, -1, "aggregators on %s (port %d), %zu keys allowed", url, m->port,
                m->n_keys);
    for (size_t i = 0; i < m->n_thr; i++) {
        if (pthread_create(&m->thr[i], NULL, link_main, c) != 0)
            return fedreci_error(FEDREC_ERR_NOMEM, "master: link thread");
        m->n_started++;
    }
    return FEDREC_OK;
}

fedrec_err fedreci_eng_master_reload_tls(fedreci_coord *c, int *n_reloaded)
{
    struct master *m = c->master;
    if (!m || !m->listening || strncmp(m->url, "tls+", 4) != 0)
        return FEDREC_OK;
    fedrec_err e = fedreci_eng_listener_tls(c, m->listener, m->url);
    if (!e)
        (*n_reloaded)++;
    return e;
}

void fedreci_eng_master_close(fedreci_coord *c)
{
    struct master *m = c->master;
    if (!m)
        return;
    pthread_mutex_lock(&c->mu);
    m->closing = 1;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&c->mu);
    /* the link threads start nothing on the socket from here on, and none
     * is inside an nng call that starts one while it closes */
    pthread_mutex_lock(&m->gate);
    m->gate_closed = 1;
    if (m->sock_open)
        nng_close(m->sock);
    pthread_mutex_unlock(&m->gate);
    for (size_t i = 0; i < m->n_started; i++)
        pthread_join(m->thr[i], NULL);
    pthread_mutex_lock(&c->mu);
    c->master = NULL;
    pthread_mutex_unlock(&c->mu);
    pthread_cond_destroy(&m->cv);
    pthread_mutex_destroy(&m->gate);
    free(m->keys);
    if (m->sk)
        sodium_free(m->sk);
    free(m->agg);
    free(m->thr);
    free(m->url);
    free(m);
}
