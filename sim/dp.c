/* The differentially private training pipeline of fedrec-sim (see dp.h). */
#include "sim/dp.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/dp/dpals.h"
#include "core/dp/encode.h"
#include "core/dp/noise.h"
#include "core/err.h"
#include "core/mf/mf.h"
#include "sim/sim.h"

#define SCALED_NORM 8192.0 /* s c: integer units of the L2 bound */

/* A 32-byte seed from (seed, release, client, label) by BLAKE2b. */
static void derive(uint64_t seed, uint64_t release, uint64_t client, const char *label,
                   uint8_t out[32])
{
    uint8_t in[24];
    for (int i = 0; i < 8; i++) {
        in[i] = (uint8_t)(seed >> (8 * i));
        in[8 + i] = (uint8_t)(release >> (8 * i));
        in[16 + i] = (uint8_t)(client >> (8 * i));
    }
    crypto_generichash(out, 32, in, sizeof in, (const uint8_t *)label, strlen(label));
}

typedef struct job {
    const fedreci_split *s;
    const uint32_t *users;
    uint32_t lo, hi;
    const fedreci_sim_dp_cfg *cfg;
    const fedreci_dpals *p;
    const float *y, *gram;
    const uint8_t *rot_seed;
    uint32_t release;
    double scale, bound, mu_client;
    size_t d, D;
    int64_t *sum; /* D, this thread's partial sum */
    uint32_t survivors;
    fedrec_err err;
    char msg[256];
} job;

static void *worker(void *arg)
{
    job *j = arg;
    const fedreci_sim_dp_cfg *cfg = j->cfg;
    uint32_t k = cfg->k, n_items = j->p->n_items;
    fedreci_mf_step *w = NULL;
    float *v = malloc(j->d * sizeof *v), *work = malloc((size_t)k * k * sizeof *work);
    double *rot = malloc(j->D * sizeof *rot);
    int64_t *q = malloc(j->D * sizeof *q);
    fedrec_err e = fedreci_mf_step_create(&w, n_items, k);
    if (!e && (!v || !rot || !q || !work))
        e = fedreci_error(FEDREC_ERR_NOMEM, "dp worker buffers");
    const fedreci_mf_csr *r = &j->s->train;
    for (uint32_t i = j->lo; !e && i < j->hi; i++) {
        uint32_t user = j->users[i];
        uint8_t cs[32];
        derive(cfg->seed, j->release, user, "fedrec-sim dp client", cs);
        fedreci_dp_rng rng;
        fedreci_dp_rng_init(&rng, cs, 0);
        sodium_memzero(cs, sizeof cs);
        int drop = cfg->dropout > 0 && fedreci_dp_rng_uniform(&rng) < cfg->dropout;
        uint64_t lo = r->indptr[user];
        fedreci_mf_user u = {r->indices + lo, r->conf + lo, (uint32_t)(r->indptr[user + 1] - lo)};
        float xu[257];
        if (cfg->item_bias > 0)
            e = fedreci_dpals_solve_biased(j->y, j->gram, n_items, k + 1, cfg->item_bias,
                                           cfg->lambda, &u, work, xu);
        else
            e = fedreci_mf_solve_user(w, j->y, j->gram, n_items, k, (float)cfg->lambda, &u, xu);
        if (!e && cfg->normalize) {
            double n2 = 0;
            for (uint32_t t = 0; t < k; t++)
                n2 += (double)xu[t] * xu[t];
            for (uint32_t t = 0; n2 > 0 && t < k; t++)
                xu[t] = (float)(xu[t] / sqrt(n2));
        }
        if (!e && cfg->item_bias > 0) { /* (x clipped to sqrt(1 - a^2), a): core/dp/dpals.h */
            float xb[257];
            fedreci_dpals_bias_vector(xu, k + 1, cfg->item_bias, xb);
            memcpy(xu, xb, sizeof xb);
            sodium_memzero(xb, sizeof xb);
        }
        if (!e)
            e = fedreci_dpals_encode(j->p, xu, &u, v);
        if (!e)
            e = fedreci_dp_rotate(j->rot_seed, v, j->d, rot);
        if (!e) {
            for (size_t t = 0; t < j->D; t++)
                rot[t] *= j->scale;
            e = fedreci_dp_round(&rng, rot, j->D, j->bound, 1000, q, NULL);
        }
        if (!e && !cfg->noise_aggregate)
            e = fedreci_dp_skellam_fill(&rng, j->mu_client, q, j->D);
        fedreci_dp_rng_wipe(&rng);
        sodium_memzero(xu, sizeof xu);
        if (!e && !drop) {
            for (size_t t = 0; t < j->D; t++)
                j->sum[t] += q[t];
            j->survivors++;
        }
        if (e)
            snprintf(j->msg, sizeof j->msg, "client %u: %s", user, fedrec_errmsg());
    }
    j->err = e;
    fedreci_mf_step_destroy(w);
    free(v);
    free(work);
    free(rot);
    free(q);
    return NULL;
}

fedrec_err fedreci_sim_dp_train(const fedreci_split *s, const uint32_t *train_users,
                                uint32_t n_train, const fedreci_sim_dp_cfg *cfg, float *y,
                                fedreci_sim_dp_release *rel, fedreci_sim_dp_info *info)
{
    uint32_t n_items = s->train.n_cols, k = cfg->k;
    /* with the item bias the model has K = k + 1 columns, the last the items' biases */
    uint32_t K = k + (cfg->item_bias > 0);
    if (!(cfg->item_bias >= 0 && cfg->item_bias < 1) || k > 256)
        return fedreci_error(FEDREC_ERR_INVALID,
                             "dp: item bias coordinate %g, need 0 (none) or in (0, 1); %u "
                             "factors, need at most 256",
                             cfg->item_bias, k);
    fedreci_dpals p = {n_items, K, cfg->row_bound, cfg->gram_weight};
    size_t d = fedreci_dpals_dim(&p), D = fedreci_dp_pad_dim(d);
    double c = fedreci_dpals_l2_bound(&p);
    double scale = SCALED_NORM / c;
    uint32_t m_min = (uint32_t)ceil(cfg->min_survivors * n_train);
    if (m_min < 1)
        m_min = 1;
    if (m_min > n_train)
        m_min = n_train;
    fedreci_dp_config dc = {.n = n_train,
                            .min_survivors = m_min,
                            .l2_bound = c,
                            .scale = scale,
                            .beta = exp(-0.5),
                            .noise_var = 0,
                            .dim = d,
                            .ring_bits = 32};
    fedreci_dp_bounds b;
    fedrec_err e = fedreci_dp_check(&dc, &b);
    if (e)
        return e;
    fedreci_dp_event ev = {
        .mech = FEDRECI_DP_SKELLAM, .l1 = b.l1_sens, .l2 = b.l2_sens, .sampling = FEDRECI_DP_FULL};
    /* release r has total variance mu / share(r) (the last share beyond the schedule) */
    double mu;
    e = fedreci_dp_skellam_calibrate_shares(&ev, cfg->shares, cfg->releases, cfg->epsilon,
                                            cfg->delta, NULL, &mu);
    if (e)
        return e;
    double share_min = 1;
    for (uint32_t r = 0; cfg->shares && r < cfg->releases; r++)
        share_min = r == 0 || cfg->shares[r] < share_min ? cfg->shares[r] : share_min;
    dc.noise_var = mu / share_min / m_min; /* the largest noise of the schedule */
    e = fedreci_dp_check(&dc, &b); /* with the noise: refuses a configuration that could wrap */
    if (e)
        return e;
    ev.mu = mu;
    memset(info, 0, sizeof *info);
    info->scale = scale;
    info->l2_bound = c;
    info->l2_sens = b.l2_sens;
    info->l1_sens = b.l1_sens;
    info->mu = mu;
    info->mu_client = mu / m_min;
    info->noise_std = sqrt(mu) / scale;
    info->m_min = m_min;
    info->d = d;
    info->D = D;

    uint32_t T = cfg->threads ? cfg->threads : 1;
    if (T > 64)
        T = 64;
    job *jobs = calloc(T, sizeof *jobs);
    pthread_t *th = calloc(T, sizeof *th);
    int64_t *sum = malloc(D * sizeof *sum);
    float *gram = malloc((size_t)K * K * sizeof *gram), *dec = malloc(d * sizeof *dec);
    float *yb = y; /* the model the releases train: y, or y with a bias column */
    if (K > k) {
        yb = malloc((size_t)n_items * K * sizeof *yb);
        for (uint32_t i = 0; yb && i < n_items; i++) {
            memcpy(yb + (size_t)i * K, y + (size_t)i * k, k * sizeof *yb);
            yb[(size_t)i * K + k] = 0;
        }
    }
    double *rot = malloc(D * sizeof *rot), *sumd = malloc(d * sizeof *sumd);
    for (uint32_t t = 0; jobs && t < T; t++)
        jobs[t].sum = malloc(D * sizeof(int64_t));
    int ok = jobs && th && sum && gram && dec && rot && sumd && yb;
    for (uint32_t t = 0; ok && t < T; t++)
        ok = jobs[t].sum != NULL;
    if (!ok)
        e = fedreci_error(FEDREC_ERR_NOMEM, "dp: buffers for D = %zu", D);
    fedreci_dp_accountant acc;
    fedreci_dp_accountant_init(&acc);
    uint32_t n_done = 0;
    for (uint32_t r = 0; !e && r < cfg->rounds; r++) {
        fedreci_sim_dp_release *R = &rel[r];
        memset(R, 0, sizeof *R);
        double t0 = fedreci_sim_now();
        /* the budget gate: refuse before anything is computed */
        double share = cfg->shares ? cfg->shares[r < cfg->releases ? r : cfg->releases - 1] : 1;
        double mu_r = mu / share;
        ev.mu = mu_r;
        R->noise_std = sqrt(mu_r) / scale;
        fedreci_dp_accountant trial = acc;
        double e_before, e_after, e_one;
        fedreci_dp_accountant one;
        fedreci_dp_accountant_init(&one);
        if ((e = fedreci_dp_accountant_epsilon(&acc, cfg->delta, &e_before, NULL)) ||
            (e = fedreci_dp_accountant_compose(&trial, &ev, 1)) ||
            (e = fedreci_dp_accountant_epsilon(&trial, cfg->delta, &e_after, NULL)) ||
            (e = fedreci_dp_accountant_compose(&one, &ev, 1)) ||
            (e = fedreci_dp_accountant_epsilon(&one, cfg->delta, &e_one, NULL)))
            break;
        if (n_done == 0)
            e_before = 0;
        R->eps_release = e_one;
        if (e_after > cfg->epsilon * (1 + 1e-9)) {
            R->refused = 1;
            R->eps_cumulative = e_before;
            snprintf(R->reason, sizeof R->reason,
                     "round %u refused before it started: it would bring epsilon to %.4f, over "
                     "the budget %.4f at delta %g (spent so far: %.4f in %u rounds)",
                     r + 1, e_after, cfg->epsilon, cfg->delta, e_before, n_done);
            break;
        }
        fedreci_mf_gram(yb, n_items, K, gram);
        uint8_t rot_seed[32];
        derive(cfg->seed, r, 0, "fedrec-sim dp rotation", rot_seed);
        uint32_t per = (n_train + T - 1) / T;
        for (uint32_t t = 0; t < T; t++) {
            job *j = &jobs[t];
            int64_t *ps = j->sum;
            memset(j, 0, sizeof *j);
            j->sum = ps;
            memset(ps, 0, D * sizeof *ps);
            j->s = s;
            j->users = train_users;
            j->lo = t * per < n_train ? t * per : n_train;
            j->hi = (t + 1) * per < n_train ? (t + 1) * per : n_train;
            j->cfg = cfg;
            j->p = &p;
            j->y = yb;
            j->gram = gram;
            j->rot_seed = rot_seed;
            j->release = r;
            j->scale = scale;
            j->bound = b.l2_sens;
            j->mu_client = mu_r / m_min;
            j->d = d;
            j->D = D;
        }
        for (uint32_t t = 1; t < T; t++)
            if (pthread_create(&th[t], NULL, worker, &jobs[t]))
                jobs[t].err = fedreci_error(FEDREC_ERR_INTERNAL, "dp: pthread_create");
        worker(&jobs[0]);
        for (uint32_t t = 1; t < T; t++)
            pthread_join(th[t], NULL);
        memset(sum, 0, D * sizeof *sum);
        uint32_t surv = 0;
        for (uint32_t t = 0; t < T; t++) {
            if (jobs[t].err && !e) {
                e = fedreci_error(jobs[t].err, "dp release %u: %s", r + 1, jobs[t].msg);
            }
            for (size_t i = 0; i < D; i++)
                sum[i] += jobs[t].sum[i];
            surv += jobs[t].survivors;
        }
        if (e)
            break;
        R->survivors = surv;
        if (surv < m_min) {
            snprintf(R->reason, sizeof R->reason,
                     "round %u aborted: %u survivors, fewer than the %u the noise is "
                     "calibrated for (nothing unmasked, nothing spent)",
                     r + 1, surv, m_min);
            R->eps_cumulative = e_before;
            /* the model is unchanged: score it, as the non-DP runs do */
            e = fedreci_sim_evaluate_biased(s, yb, K, cfg->item_bias, (float)cfg->lambda, T, &R->m,
                                            cfg->per_user);
            R->evaluated = !e;
            R->seconds = fedreci_sim_now() - t0;
            continue;
        }
        if (cfg->noise_aggregate) {
            fedreci_dp_rng rng;
            uint8_t ns[32];
            derive(cfg->seed, r, UINT64_MAX, "fedrec-sim dp aggregate noise", ns);
            fedreci_dp_rng_init(&rng, ns, 0);
            e = fedreci_dp_skellam_fill(&rng, (double)surv * (mu_r / m_min), sum, D);
            fedreci_dp_rng_wipe(&rng);
            if (e)
                break;
        }
        /* what SecAgg unmasks: the sum mod 2^32, read back signed */
        for (size_t i = 0; i < D; i++) {
            int32_t w = (int32_t)(uint32_t)(uint64_t)sum[i];
            if ((int64_t)w != sum[i]) {
                e = fedreci_error(FEDREC_ERR_RANGE,
                                  "dp release %u: coordinate %zu of the noised sum wrapped the "
                                  "ring (%lld)",
                                  r + 1, i, (long long)sum[i]);
                break;
            }
            rot[i] = (double)w / scale;
        }
        if (e)
            break;
        e = fedreci_dp_unrotate(rot_seed, rot, D, dec, d);
        sodium_memzero(rot_seed, sizeof rot_seed);
        if (e)
            break;
        for (size_t i = 0; i < d; i++)
            sumd[i] = dec[i];
        double sd = sqrt((double)surv * (mu_r / m_min)) / scale;
        fedreci_dpals_step st = {.lambda = cfg->lambda,
                                 .noise_std = sd,
                                 .shrink = cfg->shrink,
                                 .floor_frac = cfg->gram_floor,
                                 .bias_apart = cfg->item_bias > 0};
        e = fedreci_dpals_item_step(&p, sumd, &st, yb, &R->rows_shrunk);
        if (e)
            break;
        acc = trial;
        n_done++;
        R->completed = 1;
        R->eps_cumulative = e_after;
        e = fedreci_sim_evaluate_biased(s, yb, K, cfg->item_bias, (float)cfg->lambda, T, &R->m,
                                        cfg->per_user);
        R->evaluated = !e;
        R->seconds = fedreci_sim_now() - t0;
    }
    if (!e && n_done == 0)
        info->eps_spent = 0;
    else if (!e) {
        double order;
        e = fedreci_dp_accountant_epsilon(&acc, cfg->delta, &info->eps_spent, &order);
        info->eps_order = order;
    }
    if (yb && yb != y) { /* y keeps the factors; the biases were scored with them */
        for (uint32_t i = 0; i < n_items; i++)
            memcpy(y + (size_t)i * k, yb + (size_t)i * K, k * sizeof *y);
        free(yb);
    }
    for (uint32_t t = 0; jobs && t < T; t++)
        free(jobs[t].sum);
    free(jobs);
    free(th);
    free(sum);
    free(gram);
    free(dec);
    free(rot);
    free(sumd);
    return e;
}
