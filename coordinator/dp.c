/* coordinator/engine: differential privacy (engine.h fedreci_coord_dp): the
 * plan, the budget gate, the charge of a release and the DP-ALS item step
 * from the unmasked noised sum. See engine_internal.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "coordinator/engine_internal.h"
#include "core/dp/dpals.h"
#include "core/err.h"
#include "core/log.h"

fedrec_err fedreci_eng_dp_setup(fedreci_coord *c)
{
    const fedreci_coord_dp *d = &c->cfg.dp;
    engdp *s = &c->dp;
    if (!(d->epsilon > 0))
        return FEDREC_OK;
    if (!(d->min_survivors > 0 && d->min_survivors <= 1))
        return fedreci_error(FEDREC_ERR_INVALID,
                             "coordinator: dp min_survivors %g, need a fraction in (0, 1]",
                             d->min_survivors);
    uint32_t m_min = (uint32_t)ceil(d->min_survivors * c->cfg.cohort_size - 1e-9);
    if (m_min < 2)
        m_min = 2;
    if (m_min > c->cfg.cohort_size)
        m_min = c->cfg.cohort_size;
    fedreci_dp_plan pl = {.epsilon = d->epsilon,
                          .delta = d->delta,
                          .releases = d->rounds ? d->rounds : 1,
                          .cohort = c->cfg.cohort_size,
                          .min_survivors = m_min,
                          .n_items = c->model->n_items,
                          .k = c->model->k,
                          .row_bound = d->row_bound > 0 ? d->row_bound : 3.0,
                          .gram_weight = d->gram_weight > 0 ? d->gram_weight : 1.0,
                          .lambda = d->lambda > 0 ? d->lambda : 0.1};
    if (d->spent.n_orders)
        s->acc = d->spent;
    else
        fedreci_dp_accountant_init(&s->acc);
    s->rounds = d->spent_rounds;
    double spent = 0;
    fedrec_err e = FEDREC_OK;
    if (s->rounds && (e = fedreci_dp_accountant_epsilon(&s->acc, d->delta, &spent, NULL)))
        return e;
    s->spent = spent;
    /* after a restart, the rounds left share what is left of the budget;
       with none left (or nothing left to share) the noise is planned as if
       fresh and the gate refuses the next round */
    uint32_t left = pl.releases > s->rounds ? pl.releases - (uint32_t)s->rounds : 0;
    e = FEDREC_ERR_RANGE;
    if (left && s->rounds) {
        fedreci_dp_plan rest = pl;
        rest.releases = left;
        e = fedreci_dp_round_plan(&rest, &s->acc, &s->p);
    }
    if (e == FEDREC_ERR_RANGE)
        e = fedreci_dp_round_plan(&pl, NULL, &s->p);
    if (e)
        return e;
    fedreci_dp_config dc = fedreci_dp_round_config(&s->p, c->cfg.cohort_size, pl.n_items, pl.k);
    fedreci_dp_bounds b;
    if ((e = fedreci_dp_check(&dc, &b)))
        return e;
    s->ev = fedreci_dp_round_event(&s->p, &b);
    s->dim = dc.dim;
    s->D = b.D;
    s->dec = malloc(s->dim * sizeof *s->dec);
    uint32_t *sum = realloc(c->sum, (s->D + 1) * sizeof *c->sum);
    if (sum)
        c->sum = sum;
    if (!s->dec || !sum)
        return fedreci_error(FEDREC_ERR_NOMEM, "coordinator: dp buffers for D = %zu", s->D);
    if (c->cfg.min_cohort < m_min)
        c->cfg.min_cohort = m_min;
    if (c->cfg.checkin_quorum < m_min)
        c->cfg.checkin_quorum = m_min;
    size_t need = (s->D + 1) * 4 + 4096;
    if (!c->cfg.recv_max_bytes && c->cap < need)
        c->cap = need;
    s->on = 1;
    fedreci_log(FEDRECI_LOG_INFO, -1,
                "differential privacy: budget epsilon %g at delta %g over %u rounds (spent %.4f "
                "in %llu), Skellam noise for %u survivors: mu_c %.6g per client, epsilon %.4f "
                "per round, noise std %.4g per coordinate of the sum (input units), L2 bound "
                "%.4g",
                d->epsilon, d->delta, pl.releases, s->spent, (unsigned long long)s->rounds, m_min,
                s->p.noise_var, s->p.epsilon_round,
                sqrt((double)m_min * s->p.noise_var) / s->p.scale, s->p.l2_bound);
    return FEDREC_OK;
}

int fedreci_eng_dp_gate(fedreci_coord *c, uint64_t rid, outbox *ob)
{
    engdp *s = &c->dp;
    if (!s->on)
        return 1;
    if (!s->exhausted) {
        fedreci_dp_accountant trial = s->acc;
        double after = INFINITY;
        if (!fedreci_dp_accountant_compose(&trial, &s->ev, 1) &&
            !fedreci_dp_accountant_epsilon(&trial, c->cfg.dp.delta, &after, NULL) &&
            after <= c->cfg.dp.epsilon * (1 + 1e-9))
            return 1;
        snprintf(s->refusal, sizeof s->refusal,
                 "round %llu refused before it started: it would bring epsilon to %.4f, over the "
                 "budget %.4f at delta %g (spent so far: %.4f in %llu rounds)",
                 (unsigned long long)rid, after, c->cfg.dp.epsilon, c->cfg.dp.delta, s->spent,
                 (unsigned long long)s->rounds);
        fedreci_log(FEDRECI_LOG_WARN, (int64_t)rid, "%s; no further rounds", s->refusal);
        s->exhausted = 1;
    }
    c->stopped = 1;
    fedreci_eng_release_waiting(c, FEDREC__V1__CHECK_IN_REPLY__STATUS__NO_ROUND, ob);
    pthread_cond_broadcast(&c->cv_done);
    return 0;
}

void fedreci_eng_dp_params(const fedreci_coord *c, uint32_t n, uint64_t rid,
                           fedreci_secagg_params *p, fedreci_dp_round_params *dp)
{
    const engdp *s = &c->dp;
    *dp = s->p;
    uint8_t in[8 + 8 + 24] = "fedrec-dp-rotation-v1";
    for (int i = 0; i < 8; i++) {
        in[24 + i] = (uint8_t)(c->cfg.seed >> (8 * i));
        in[32 + i] = (uint8_t)(rid >> (8 * i));
    }
    crypto_generichash(dp->rotation_seed, sizeof dp->rotation_seed, in, sizeof in, NULL, 0);
    fedreci_dp_config dc = fedreci_dp_round_config(dp, n, c->model->n_items, c->model->k);
    fedreci_dp_bounds b;
    double bound = FEDRECI_DP_ROUND_MAX_WORD - 1;
    if (n >= dp->min_survivors && !fedreci_dp_check(&dc, &b) && b.client_bound < bound)
        bound = ceil(b.client_bound);
    p->d = (uint32_t)s->D + 1;
    p->scale = 1.0;
    p->clip = bound;
}

fedrec_err fedreci_eng_dp_charge(fedreci_coord *c, rstate *r)
{
    engdp *s = &c->dp;
    if (r->ns < r->dp.min_survivors)
        return fedreci_error(FEDREC_ERR_ABORTED,
                             "%zu survivors, fewer than the %u the noise is calibrated for "
                             "(nothing unmasked, nothing spent)",
                             r->ns, r->dp.min_survivors);
    fedreci_dp_accountant trial = s->acc;
    double spent = 0;
    fedrec_err e = fedreci_dp_accountant_compose(&trial, &s->ev, 1);
    if (!e)
        e = fedreci_dp_accountant_epsilon(&trial, c->cfg.dp.delta, &spent, NULL);
    if (e)
        return e;
    /* write-ahead: the release is on disk before anything is unmasked */
    if (c->hooks.on_dp_spent &&
        (e = c->hooks.on_dp_spent(c->hooks.arg, r->id, &s->ev, s->p.epsilon_round, spent,
                                  c->cfg.dp.delta)))
        return fedreci_error(FEDREC_ERR_ABORTED,
                             "cannot record the differential-privacy release (nothing "
                             "unmasked, nothing spent): %s",
                             fedrec_errmsg());
    s->acc = trial;
    s->spent = spent;
    s->rounds++;
    r->dp_charged = 1;
    r->dp_eps_cumulative = s->spent;
    fedreci_log(FEDRECI_LOG_INFO, (int64_t)r->id,
                "differential privacy: %zu survivors; this round costs epsilon %.4f, spent %.4f of "
                "%g",
                r->ns, s->p.epsilon_round, s->spent, c->cfg.dp.epsilon);
    return FEDREC_OK;
}

fedrec_err fedreci_eng_dp_commit(fedreci_coord *c, rstate *r, float *y)
{
    engdp *s = &c->dp;
    fedrec_err e = fedreci_dp_round_decode(&r->dp, c->sum, s->D, s->dec, s->dim);
    if (e)
        return e;
    fedreci_dpals a = {c->model->n_items, c->model->k, r->dp.row_bound, r->dp.gram_weight};
    double sd = sqrt((double)r->ns * r->dp.noise_var) / r->dp.scale;
    uint32_t shrunk = 0;
    fedreci_dpals_step st = {.lambda = r->dp.lambda,
                             .noise_std = sd,
                             .shrink = !c->cfg.dp.no_shrink,
                             .floor_frac = c->cfg.dp.gram_floor};
    e = fedreci_dpals_item_step(&a, s->dec, &st, y, &shrunk);
    if (!e)
        fedreci_log(FEDRECI_LOG_INFO, (int64_t)r->id,
                    "differential privacy: item step from the noised sum of %zu (noise std %.4g), "
                    "%u of %u rows shrunk to zero",
                    r->ns, sd, shrunk, c->model->n_items);
    return e;
}

void fedreci_eng_dp_free(fedreci_coord *c)
{
    free(c->dp.dec);
    c->dp.dec = NULL;
}
