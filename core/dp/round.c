/* The DP parameters of one federated round: plan, verify, encode, decode
 * (see round.h). */
#include "core/dp/round.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/dp/dpals.h"
#include "core/err.h"

#define SCALED_NORM 8192.0 /* s c: integer units of the L2 bound */

static size_t round_dim(uint32_t n_items, uint32_t k)
{
    fedreci_dpals a = {n_items, k, 1.0, 1.0};
    return fedreci_dpals_dim(&a);
}

fedreci_dp_config fedreci_dp_round_config(const fedreci_dp_round_params *p, uint32_t n,
                                          uint32_t n_items, uint32_t k)
{
    fedreci_dp_config c = {.n = n,
                           .min_survivors = p->min_survivors,
                           .l2_bound = p->l2_bound,
                           .scale = p->scale,
                           .beta = p->beta,
                           .noise_var = p->noise_var,
                           .dim = round_dim(n_items, k),
                           .ring_bits = 32};
    return c;
}

fedreci_dp_event fedreci_dp_round_event(const fedreci_dp_round_params *p,
                                        const fedreci_dp_bounds *b)
{
    fedreci_dp_event ev = {.mech = FEDRECI_DP_SKELLAM,
                           .mu = (double)p->min_survivors * p->noise_var,
                           .l1 = b->l1_sens,
                           .l2 = b->l2_sens,
                           .sampling = FEDRECI_DP_FULL};
    return ev;
}

static int pos(double x)
{
    return isfinite(x) && x > 0;
}

fedrec_err fedreci_dp_round_verify(const fedreci_dp_round_params *p, uint32_t n, uint32_t n_items,
                                   uint32_t k, fedreci_dp_bounds *bo, fedreci_dp_event *evo,
                                   double *epso)
{
    if (!p)
        return fedreci_error(FEDREC_ERR_INVALID, "dp round: no parameters");
    if (p->mechanism != FEDRECI_DP_ROUND_SKELLAM)
        return fedreci_error(FEDREC_ERR_INVALID,
                             "dp round: mechanism %u (only Skellam, %u, is known)", p->mechanism,
                             FEDRECI_DP_ROUND_SKELLAM);
    if (n_items == 0 || k == 0 || k > 256)
        return fedreci_error(FEDREC_ERR_INVALID, "dp round: model %u x %u", n_items, k);
    if (!pos(p->row_bound) || !pos(p->gram_weight) || !pos(p->lambda))
        return fedreci_error(FEDREC_ERR_INVALID,
                             "dp round: row bound R = %g, Gram weight g = %g, lambda = %g: each "
                             "must be finite and > 0",
                             p->row_bound, p->gram_weight, p->lambda);
    double c = sqrt(p->row_bound * p->row_bound + p->gram_weight * p->gram_weight);
    if (!(fabs(p->l2_bound - c) <= 1e-9 * c))
        return fedreci_error(FEDREC_ERR_INVALID,
                             "dp round: L2 bound c = %.17g is not sqrt(R^2 + g^2) = %.17g for "
                             "R = %g, g = %g",
                             p->l2_bound, c, p->row_bound, p->gram_weight);
    if (!pos(p->epsilon_round) || !(p->delta > 0 && p->delta < 1))
        return fedreci_error(FEDREC_ERR_INVALID,
                             "dp round: claimed epsilon %g at delta %g: need epsilon > 0, "
                             "0 < delta < 1",
                             p->epsilon_round, p->delta);
    if (!pos(p->noise_var))
        return fedreci_error(FEDREC_ERR_INVALID,
                             "dp round: per-client noise variance mu_c = %g: need > 0",
                             p->noise_var);
    fedreci_dp_config cfg = fedreci_dp_round_config(p, n, n_items, k);
    fedreci_dp_bounds b;
    fedrec_err e = fedreci_dp_check(&cfg, &b);
    if (e)
        return e;
    if (!(b.client_bound < FEDRECI_DP_ROUND_MAX_WORD))
        return fedreci_error(FEDREC_ERR_RANGE,
                             "dp round: a client's word could reach %.0f, beyond 2^24 (scale s = "
                             "%g, L2 bound c = %g, mu_c = %g)",
                             b.client_bound, p->scale, p->l2_bound, p->noise_var);
    fedreci_dp_event ev = fedreci_dp_round_event(p, &b);
    fedreci_dp_accountant a;
    fedreci_dp_accountant_init(&a);
    double eps = 0;
    if ((e = fedreci_dp_accountant_compose(&a, &ev, 1)) ||
        (e = fedreci_dp_accountant_epsilon(&a, p->delta, &eps, NULL)))
        return e;
    if (!(eps <= p->epsilon_round * (1 + 1e-6)))
        return fedreci_error(FEDREC_ERR_INVALID,
                             "dp round: the noise is too small for the claimed epsilon: mu_c = %g "
                             "per client for %u survivors gives epsilon %.6g per round at delta "
                             "%g, the coordinator claims %.6g",
                             p->noise_var, p->min_survivors, eps, p->delta, p->epsilon_round);
    if (bo)
        *bo = b;
    if (evo)
        *evo = ev;
    if (epso)
        *epso = eps;
    return FEDREC_OK;
}

fedrec_err fedreci_dp_round_plan(const fedreci_dp_plan *pl, const fedreci_dp_accountant *spent,
                                 fedreci_dp_round_params *out)
{
    if (!pl || !out)
        return fedreci_error(FEDREC_ERR_INVALID, "dp plan: NULL");
    if (!pos(pl->epsilon) || !(pl->delta > 0 && pl->delta < 1) || pl->releases < 1)
        return fedreci_error(FEDREC_ERR_INVALID,
                             "dp plan: budget epsilon %g at delta %g over %u rounds: need "
                             "epsilon > 0, 0 < delta < 1, rounds >= 1",
                             pl->epsilon, pl->delta, pl->releases);
    if (pl->min_survivors < 1 || pl->min_survivors > pl->cohort)
        return fedreci_error(FEDREC_ERR_INVALID,
                             "dp plan: minimum survivors %u, need 1..cohort (%u)",
                             pl->min_survivors, pl->cohort);
    if (!pos(pl->row_bound) || !pos(pl->gram_weight) || !pos(pl->lambda))
        return fedreci_error(FEDREC_ERR_INVALID,
                             "dp plan: row bound R = %g, Gram weight g = %g, lambda = %g: each "
                             "must be finite and > 0",
                             pl->row_bound, pl->gram_weight, pl->lambda);
    fedreci_dp_round_params p;
    memset(&p, 0, sizeof p);
    p.mechanism = FEDRECI_DP_ROUND_SKELLAM;
    p.min_survivors = pl->min_survivors;
    p.row_bound = pl->row_bound;
    p.gram_weight = pl->gram_weight;
    p.lambda = pl->lambda;
    p.l2_bound = sqrt(pl->row_bound * pl->row_bound + pl->gram_weight * pl->gram_weight);
    p.scale = SCALED_NORM / p.l2_bound;
    p.beta = exp(-0.5);
    p.delta = pl->delta;
    fedreci_dp_config cfg = fedreci_dp_round_config(&p, pl->cohort, pl->n_items, pl->k);
    fedreci_dp_bounds b;
    fedrec_err e = fedreci_dp_check(&cfg, &b); /* the signal alone (mu_c = 0) */
    if (e)
        return e;
    fedreci_dp_event ev = fedreci_dp_round_event(&p, &b);
    double mu = 0;
    e = fedreci_dp_skellam_calibrate(&ev, pl->releases, pl->epsilon, pl->delta, spent, &mu);
    if (e)
        return e;
    p.noise_var = mu / pl->min_survivors;
    ev.mu = (double)pl->min_survivors * p.noise_var;
    fedreci_dp_accountant a;
    fedreci_dp_accountant_init(&a);
    if ((e = fedreci_dp_accountant_compose(&a, &ev, 1)) ||
        (e = fedreci_dp_accountant_epsilon(&a, pl->delta, &p.epsilon_round, NULL)))
        return e;
    e = fedreci_dp_round_verify(&p, pl->cohort, pl->n_items, pl->k, NULL, NULL, NULL);
    if (e)
        return e;
    *out = p;
    return FEDREC_OK;
}

fedrec_err fedreci_dp_round_encode(const fedreci_dp_round_params *p, const fedreci_dp_bounds *b,
                                   fedreci_dp_rng *rng, const float *v, size_t dim, float *words)
{
    size_t D = b->D;
    if (fedreci_dp_pad_dim(dim) != D)
        return fedreci_error(FEDREC_ERR_INVALID,
                             "dp encode: contribution of %zu floats does not pad to D = %zu", dim,
                             D);
    double n2 = 0;
    for (size_t i = 0; i < dim; i++) {
        if (!isfinite(v[i]))
            return fedreci_error(FEDREC_ERR_INVALID, "dp encode: contribution entry %zu is %g", i,
                                 (double)v[i]);
        n2 += (double)v[i] * v[i];
    }
    double *rot = malloc(D * sizeof *rot);
    int64_t *q = malloc(D * sizeof *q);
    float *vc = malloc(dim * sizeof *vc);
    fedrec_err e = FEDREC_OK;
    if (!rot || !q || !vc)
        e = fedreci_error(FEDREC_ERR_NOMEM, "dp encode: buffers for D = %zu", D);
    if (!e) {
        /* the client enforces its own bound: a contribution over c (float
           rounding of one at c) is scaled onto it */
        double f = n2 > p->l2_bound * p->l2_bound ? p->l2_bound / sqrt(n2) * (1 - 1e-7) : 1.0;
        for (size_t i = 0; i < dim; i++)
            vc[i] = (float)(v[i] * f);
        e = fedreci_dp_rotate(p->rotation_seed, vc, dim, rot);
    }
    if (!e) {
        for (size_t i = 0; i < D; i++)
            rot[i] *= p->scale;
        e = fedreci_dp_round(rng, rot, D, b->l2_sens, 1000, q, NULL);
    }
    if (!e)
        e = fedreci_dp_skellam_fill(rng, p->noise_var, q, D);
    for (size_t i = 0; !e && i < D; i++) {
        if (!((double)llabs(q[i]) < FEDRECI_DP_ROUND_MAX_WORD))
            e = fedreci_error(FEDREC_ERR_RANGE, "dp encode: word %zu is %lld, beyond 2^24", i,
                              (long long)q[i]);
        else
            words[i] = (float)q[i];
    }
    if (rot)
        sodium_memzero(rot, D * sizeof *rot);
    if (q)
        sodium_memzero(q, D * sizeof *q);
    if (vc)
        sodium_memzero(vc, dim * sizeof *vc);
    free(rot);
    free(q);
    free(vc);
    return e;
}

fedrec_err fedreci_dp_round_decode(const fedreci_dp_round_params *p, const uint32_t *sum, size_t D,
                                   double *out, size_t dim)
{
    if (!p || !sum || !out || fedreci_dp_pad_dim(dim) != D || !pos(p->scale))
        return fedreci_error(FEDREC_ERR_INVALID, "dp decode: sum of %zu words for %zu values", D,
                             dim);
    double *v = malloc(D * sizeof *v);
    float *x = malloc(dim * sizeof *x);
    fedrec_err e = FEDREC_OK;
    if (!v || !x)
        e = fedreci_error(FEDREC_ERR_NOMEM, "dp decode: buffers for D = %zu", D);
    if (!e) {
        for (size_t i = 0; i < D; i++)
            v[i] = (double)(int32_t)sum[i] / p->scale;
        e = fedreci_dp_unrotate(p->rotation_seed, v, D, x, dim);
    }
    for (size_t i = 0; !e && i < dim; i++)
        out[i] = x[i];
    free(v);
    free(x);
    return e;
}
