/* fedrec-sim run --dp-epsilon E --dp-delta D: the rounds of the in-process
 * differentially private pipeline (sim/dp.h, --dp-noise aggregate or
 * --secagg off) as the run's round records, and the DP constants of a run
 * over the engine (core/dp/round.h, the same plan the engine makes). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dp/round.h"
#include "core/err.h"
#include "sim/run.h"

fedrec_err fedreci_run_dp(const fedreci_run_world *w, float *y, fedreci_run_round *recs,
                          fedreci_sim_dp_info *info, double *per_user)
{
    const fedreci_run_opts *o = w->o;
    fedreci_sim_dp_release *rel = calloc(o->rounds, sizeof *rel);
    if (!rel)
        return fedreci_error(FEDREC_ERR_NOMEM, "sim: %u DP round records", o->rounds);
    fedreci_sim_dp_cfg c = {
        .epsilon = o->dp_epsilon,
        .delta = o->dp_delta,
        .releases = o->dp_releases,
        .shares = o->n_dp_shares ? o->dp_shares : NULL,
        .rounds = o->rounds,
        .k = o->factors,
        .lambda = o->lambda,
        .row_bound = o->dp_row_bound,
        .gram_weight = o->dp_gram_weight,
        .gram_floor = o->dp_gram_floor,
        .min_survivors = o->dp_min_survivors,
        .dropout = o->dropout,
        .noise_aggregate = o->dp_noise_aggregate,
        .shrink = !o->dp_no_shrink,
        .normalize = o->dp_normalize,
        .item_bias = o->dp_item_bias,
        .threads = o->threads,
        .seed = o->seed,
        .per_user = per_user,
    };
    if (!o->quiet)
        printf("fedrec-sim: differential privacy: (%g, %g) over %u rounds, Skellam noise added by "
               "every client before masking\n",
               o->dp_epsilon, o->dp_delta, o->dp_releases);
    fedrec_err e = fedreci_sim_dp_train(w->s, w->train_users, w->n_train, &c, y, rel, info);
    for (uint32_t i = 0; !e && i < o->rounds; i++) {
        fedreci_run_round *r = &recs[i];
        const fedreci_sim_dp_release *d = &rel[i];
        r->round_id = i + 1;
        r->completed = d->completed;
        r->cohort = w->n_train;
        r->survivors = d->survivors;
        r->verified = -1;
        r->seconds = d->seconds;
        r->evaluated = d->evaluated;
        r->m = d->m;
        r->dp_eps_round = d->eps_release;
        r->dp_eps_cumulative = d->eps_cumulative;
        r->dp_refused = d->refused;
        snprintf(r->reason, sizeof r->reason, "%s", d->reason);
        if (d->reason[0])
            printf("fedrec-sim: %s\n", d->reason);
        else if (d->completed && !o->quiet)
            printf("round %u/%u: HR@10 %.4f NDCG@10 %.4f, survivors %u of %u, epsilon %.4f "
                   "(this round %.4f), %.1f s\n",
                   i + 1, o->rounds, d->m.hr_at_k, d->m.ndcg_at_k, d->survivors, w->n_train,
                   d->eps_cumulative, d->eps_release, d->seconds);
        if (d->refused) {
            for (uint32_t j = i + 1; j < o->rounds; j++) {
                recs[j].round_id = j + 1;
                recs[j].cohort = w->n_train;
                recs[j].verified = -1;
                recs[j].dp_refused = 1;
                recs[j].dp_eps_cumulative = d->eps_cumulative;
                snprintf(recs[j].reason, sizeof recs[j].reason, "not started: the budget is spent");
            }
            break;
        }
    }
    fflush(stdout);
    free(rel);
    return e;
}

fedrec_err fedreci_run_dp_info(const fedreci_run_world *w, const fedreci_run_round *recs,
                               fedreci_sim_dp_info *info)
{
    const fedreci_run_opts *o = w->o;
    uint32_t n = o->cohort < w->n_train ? o->cohort : w->n_train; /* the engine's cohort */
    uint32_t m_min = (uint32_t)ceil(o->dp_min_survivors * n - 1e-9);
    if (m_min < 2)
        m_min = 2;
    if (m_min > n)
        m_min = n;
    fedreci_dp_plan pl = {.epsilon = o->dp_epsilon,
                          .delta = o->dp_delta,
                          .releases = o->dp_releases,
                          .cohort = n,
                          .min_survivors = m_min,
                          .n_items = w->s->train.n_cols,
                          .k = o->factors,
                          .row_bound = o->dp_row_bound,
                          .gram_weight = o->dp_gram_weight,
                          .lambda = o->lambda};
    fedreci_dp_round_params p;
    fedreci_dp_bounds b;
    fedrec_err e = fedreci_dp_round_plan(&pl, NULL, &p);
    if (!e)
        e = fedreci_dp_round_verify(&p, n, pl.n_items, pl.k, &b, NULL, NULL);
    if (e)
        return e;
    memset(info, 0, sizeof *info);
    info->scale = p.scale;
    info->l2_bound = p.l2_bound;
    info->l2_sens = b.l2_sens;
    info->l1_sens = b.l1_sens;
    info->mu = m_min * p.noise_var;
    info->mu_client = p.noise_var;
    info->noise_std = sqrt(info->mu) / p.scale;
    info->m_min = m_min;
    info->d = fedreci_dp_round_config(&p, n, pl.n_items, pl.k).dim;
    info->D = b.D;
    for (uint32_t i = 0; i < o->rounds; i++)
        if (recs[i].completed || recs[i].dp_refused)
            info->eps_spent = recs[i].dp_eps_cumulative;
    return FEDREC_OK;
}
