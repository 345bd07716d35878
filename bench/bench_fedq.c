/*
 * fedrec-bench fedq: federated model quality against centralized ALS, on the
 * VALIDATION split by default (core/eval's fedreci_split_create_validation),
 * for a list of server-optimizer settings over several seeds.
 *
 * The rounds are the plain-sum reference of the federated scheme
 * (fedreci_mf_fed_round, Ammad-ud-din et al. 2019): each round draws a cohort
 * of C training shoppers uniformly without replacement, drops each with
 * probability P (a vanished client), every survivor runs the client step on
 * the current Y, and the server applies Adam to the sum. This is the model
 * arithmetic of `fedrec-sim run` without SecAgg's transport, clipping and
 * quantization (docs/design.md section 8: clip 16 leaves the learning curve
 * unchanged), so it runs in seconds and settings can be compared over seeds.
 * The cohort stream is this suite's own (seeded splitmix64), not the
 * simulator's.
 *
 * Diagnostics (issue 16's third pass, docs/data.md): --loss compares the
 * training objective with centralized ALS's (the most sensitive measure of
 * how far the rounds are from the ALS solution: per-seed HR@10 ratios
 * spread by +-0.02), --bands splits the hits by the items' popularity, and
 * --precond runs the ALS step with per-item curvature terms that only this
 * bench can compute (what an extra upload would have to carry), down to the
 * exact item systems (--precond oracle with every shopper in every round is
 * centralized ALS: loss ratio 1.0000).
 *
 * For each setting and seed: centralized ALS (exact, the same factors and
 * lambda, 15 sweeps, that seed) with its own user factors, and the federated
 * model after R rounds with each shopper's factors solved from Y as the
 * device does; HR@10 of both on the split and their ratio. It prints a table
 * of ratios per seed with the mean and range; it asserts nothing.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "core/dataset/dataset.h"
#include "core/err.h"
#include "core/eval/eval.h"
#include "core/mf/mf.h"
#include "core/rng.h"
#include "fedrec/fedrec.h"
#include "bench_args.h"

#define FEDQ_MAX 16
#define FEDQ_DEFAULT_DATA "data/online-retail/online_retail.csv.gz"

/* Popularity bands of an item by its distinct training buyers (--bands). */
#define FEDQ_BANDS 5
static const uint32_t fedq_band_lo[FEDQ_BANDS] = {1, 10, 30, 100, 300};
static double fedq_band_hits[2][FEDQ_BANDS], fedq_band_slots[2][FEDQ_BANDS],
    fedq_band_tests[FEDQ_BANDS];
static int fedq_band_on = 0, fedq_band_who = 0;
static double fedq_last_ndcg; /* NDCG@10 of the last fedq_hr10 */

static uint32_t fedq_band(const fedreci_split *s, uint32_t item)
{
    uint32_t b = 0, n = s->item_buyers[item];
    while (b + 1 < FEDQ_BANDS && n >= fedq_band_lo[b + 1])
        b++;
    return b;
}

/* HR@10 on s: user factors from x (n_users x k) or, when x is NULL, solved
 * from y on each shopper's training row. With --bands, the hits, the top-10
 * slots and the test items per popularity band are added up for
 * fedq_band_who (0 federated, 1 centralized). */
static int fedq_hr10(const fedreci_split *s, const float *y, const float *x, uint32_t k,
                     float lambda, double *hr)
{
    const uint32_t n = s->train.n_cols;
    float *scores = malloc((size_t)n * sizeof *scores), *gram = malloc((size_t)k * k * 4);
    float *xu = malloc((size_t)k * sizeof *xu);
    fedreci_mf_step *w = NULL;
    fedreci_eval_acc *acc = NULL;
    fedrec_err e = scores && gram && xu ? FEDREC_OK : FEDREC_ERR_NOMEM;
    if (!e)
        e = fedreci_mf_step_create(&w, n, k);
    if (!e)
        e = fedreci_eval_acc_create(&acc, n, 10);
    if (!e)
        fedreci_mf_gram(y, n, k, gram);
    for (uint32_t t = 0; t < s->n_test_users && !e; t++) {
        uint32_t u = s->test_users[t], top[10], n_top, n_test;
        uint64_t lo = s->train.indptr[u], hi = s->train.indptr[u + 1];
        const float *xp = x ? x + (size_t)u * k : xu;
        if (!x) {
            fedreci_mf_user cu = {s->train.indices + lo, s->train.conf + lo, (uint32_t)(hi - lo)};
            e = fedreci_mf_solve_user(w, y, gram, n, k, lambda, &cu, xu);
        }
        if (!e)
            e = fedreci_mf_topk(y, n, k, xp, s->train.indices + lo, (size_t)(hi - lo), 10, scores,
                                top, NULL, &n_top);
        const uint32_t *test = fedreci_split_test(s, t, &n_test);
        if (!e)
            e = fedreci_eval_acc_add(acc, top, n_top, test, n_test);
        if (!e && fedq_band_on)
            for (uint32_t a = 0; a < n_top; a++) {
                uint32_t b = fedq_band(s, top[a]);
                fedq_band_slots[fedq_band_who][b] += 1;
                for (uint32_t q = 0; q < n_test; q++)
                    if (test[q] == top[a])
                        fedq_band_hits[fedq_band_who][b] += 1;
            }
        if (!e && fedq_band_on && fedq_band_who == 1)
            for (uint32_t q = 0; q < n_test; q++)
                fedq_band_tests[fedq_band(s, test[q])] += 1;
    }
    fedreci_metrics m;
    if (!e)
        e = fedreci_eval_acc_finish(acc, &m);
    if (!e)
        *hr = m.hr_at_k;
    if (!e)
        fedq_last_ndcg = m.ndcg_at_k;
    fedreci_eval_acc_destroy(acc);
    fedreci_mf_step_destroy(w);
    free(scores);
    free(gram);
    free(xu);
    return e ? -1 : 0;
}

typedef struct fedq_cfg {
    uint32_t rounds, cohort, k;
    double dropout, lambda;
    int als_step;  /* 1: the ALS step (core/mf), 2: the Y^T Y prototype */
    int precond;   /* > 0: fedq_var_round's mode (research) */
    int reshuffle; /* cohorts by random reshuffling (each client once per epoch) */
    double init_std;
    double x_bound;      /* the ALS step's bound on |x_u| in the block */
    double lr_final;     /* > 0: the step size decays geometrically to it (schedule below) */
    uint32_t decay_from; /* the round (0-based) the decay starts at */
    uint32_t avg_last;   /* > 0: the model is the mean of the last avg_last rounds' Y */
    uint32_t plan_n;     /* > 0: --cohort-plan: plan_size[j] for plan_rounds[j] rounds */
    uint32_t plan_size[FEDQ_MAX], plan_rounds[FEDQ_MAX];
} fedq_cfg;

/* Prototype (--step gram): the ALS step of core/mf (fedreci_optimizer_step_xx)
 * with Y^T Y / N in place of the cohort's mean x_u x_u^T, which needs no
 * upload (at a stationary point of the loss with the same lambda on X and
 * Y, X^T X = Y^T Y), but far from it (the initial Y is tiny) the steps are
 * far too long: measured 0.80 of centralized. */
static int fedq_als_round(fedreci_mf_step *w, const fedreci_mf_csr *r, const uint32_t *users,
                          uint32_t m, uint32_t k, double lambda, uint32_t n_train, double lr,
                          double beta1, uint32_t t, float *y, float *grad, float *sum, double *mom,
                          double *gs, int gram_pre)
{
    const uint32_t n = r->n_cols;
    const size_t nk = (size_t)n * k;
    float gram[4096], x[256];
    double a[256 * 256];
    fedreci_mf_gram(y, n, k, gram);
    memset(sum, 0, nk * sizeof *sum);
    memset(gs, 0, (size_t)k * k * sizeof *gs);
    for (uint32_t j = 0; j < m; j++) {
        uint32_t u = users[j];
        uint64_t lo = r->indptr[u];
        fedreci_mf_user cu = {r->indices + lo, r->conf + lo, (uint32_t)(r->indptr[u + 1] - lo)};
        if (fedreci_mf_client_step(w, y, gram, n, k, (float)lambda, &cu, x, grad, NULL))
            return -1;
        cblas_saxpy((int)nk, 1.0f, grad, 1, sum, 1);
        for (uint32_t p = 0; p < k; p++)
            for (uint32_t q = 0; q < k; q++)
                gs[p * k + q] += (double)x[p] * x[q];
    }
    const double reg = lambda / n_train;
    for (uint32_t p = 0; p < k; p++)
        for (uint32_t q = 0; q < k; q++)
            a[p * k + q] = (gram_pre ? (double)gram[p * k + q] / n_train : gs[p * k + q] / m) +
                           (p == q ? reg : 0.0);
    /* Cholesky a = L L^T in place (lower) */
    for (uint32_t p = 0; p < k; p++) {
        for (uint32_t q = 0; q <= p; q++) {
            double v = a[p * k + q];
            for (uint32_t z = 0; z < q; z++)
                v -= a[p * k + z] * a[q * k + z];
            if (p == q) {
                if (!(v > 0))
                    return -1;
                a[p * k + p] = sqrt(v);
            } else {
                a[p * k + q] = v / a[q * k + q];
            }
        }
    }
    const double c1 = 1.0 - pow(beta1, (double)t);
    for (uint32_t i = 0; i < n; i++) {
        double b[256];
        for (uint32_t p = 0; p < k; p++)
            b[p] = 0.5 * ((double)sum[(size_t)i * k + p] / m + 2.0 * reg * y[(size_t)i * k + p]);
        for (uint32_t p = 0; p < k; p++) { /* L z = b */
            double v = b[p];
            for (uint32_t z = 0; z < p; z++)
                v -= a[p * k + z] * b[z];
            b[p] = v / a[p * k + p];
        }
        for (uint32_t p = k; p-- > 0;) { /* L^T d = z */
            double v = b[p];
            for (uint32_t z = p + 1; z < k; z++)
                v -= a[z * k + p] * b[z];
            b[p] = v / a[p * k + p];
        }
        for (uint32_t p = 0; p < k; p++) {
            size_t j = (size_t)i * k + p;
            mom[j] = beta1 * mom[j] + (1.0 - beta1) * b[p];
            y[j] = (float)(y[j] - lr * mom[j] / c1);
        }
    }
    return 0;
}

/* Cholesky a = L L^T in place (k x k, lower); -1 when not positive definite. */
static int fedq_chol(double *a, uint32_t k)
{
    for (uint32_t p = 0; p < k; p++)
        for (uint32_t q = 0; q <= p; q++) {
            double v = a[p * k + q];
            for (uint32_t z = 0; z < q; z++)
                v -= a[p * k + z] * a[q * k + z];
            if (p == q) {
                if (!(v > 0))
                    return -1;
                a[p * k + p] = sqrt(v);
            } else {
                a[p * k + q] = v / a[q * k + q];
            }
        }
    return 0;
}

static void fedq_chol_solve(const double *a, uint32_t k, double *b)
{
    for (uint32_t p = 0; p < k; p++) {
        double v = b[p];
        for (uint32_t z = 0; z < p; z++)
            v -= a[p * k + z] * b[z];
        b[p] = v / a[p * k + p];
    }
    for (uint32_t p = k; p-- > 0;) {
        double v = b[p];
        for (uint32_t z = p + 1; z < k; z++)
            v -= a[z * k + p] * b[z];
        b[p] = v / a[p * k + p];
    }
}

/* Research (--precond): the ALS step with a per-item curvature term added
 * to the cohort's mean x_u x_u^T, computed here from the cohort's data (what
 * an extra upload would carry): A_i = sum over the cohort's buyers of i of
 * (c_ui - 1) x_u x_u^T, and
 *   1 oracle: S_i = S + A_i / m (the exact ALS item system of the cohort)
 *   2 diag:   S_i = S + diag(A_i) / m                  (k words per item)
 *   3 trace:  S_i = S + (tr A_i / tr S0) S0 / m        (one word per item)
 *   4 iso:    S_i = S + (tr A_i / k) I / m             (one word per item)
 *   5 none:   S_i = S  (core/mf's step, unclipped x; a check)
 *   6 ratio:  S_i = S, and the buyers' part of the gradient, R_i = g_i / 2 -
 *             S0 y_i (a sum over the cohort's buyers of i), is scaled by
 *             p_i m / n_i: n_i the cohort's buyers of i, p_i the fraction of
 *             buyers among all the clients of the rounds so far (a ratio
 *             estimator; one count per item in the upload)
 * with S = S0 + lambda / N, S0 the cohort's mean x_u x_u^T. The direction
 * is S_i^-1 g_i / 2, with momentum and bias correction as core/mf's. */
typedef struct fedq_var {
    int mode;
    double *a;  /* n x k x k (oracle), n x k (diag) or n (trace, iso) */
    double *s0; /* k x k */
    double *si; /* k x k */
    double *mom;
    double *cnt, *cnt_all, m_all; /* ratio: this cohort's buyers, all rounds' buyers, clients */
    uint32_t t;
} fedq_var;

static int fedq_var_round(fedreci_mf_step *w, const fedreci_mf_csr *r, const uint32_t *users,
                          uint32_t m, uint32_t k, double lambda, uint32_t n_train, double lr,
                          double beta1, fedq_var *v, float *y, float *grad, float *sum)
{
    const uint32_t n = r->n_cols;
    const size_t nk = (size_t)n * k, kk = (size_t)k * k;
    const size_t per = v->mode == 1 ? kk : v->mode == 2 ? k : 1;
    float gram[4096], x[256];
    fedreci_mf_gram(y, n, k, gram);
    memset(sum, 0, nk * sizeof *sum);
    memset(v->s0, 0, kk * sizeof *v->s0);
    if (v->mode != 6)
        memset(v->a, 0, (size_t)n * per * sizeof *v->a);
    for (uint32_t j = 0; j < m; j++) {
        uint32_t u = users[j];
        uint64_t lo = r->indptr[u];
        fedreci_mf_user cu = {r->indices + lo, r->conf + lo, (uint32_t)(r->indptr[u + 1] - lo)};
        if (fedreci_mf_client_step(w, y, gram, n, k, (float)lambda, &cu, x, grad, NULL))
            return -1;
        cblas_saxpy((int)nk, 1.0f, grad, 1, sum, 1);
        for (uint32_t p = 0; p < k; p++)
            for (uint32_t q = 0; q < k; q++)
                v->s0[p * k + q] += (double)x[p] * x[q];
        double xx = 0;
        for (uint32_t p = 0; p < k; p++)
            xx += (double)x[p] * x[p];
        if (v->mode == 6) {
            for (uint32_t z = 0; z < cu.n; z++)
                v->cnt[cu.items[z]] += 1;
            continue;
        }
        for (uint32_t z = 0; z < cu.n; z++) {
            double c1 = (double)cu.conf[z] - 1.0;
            double *a = v->a + (size_t)cu.items[z] * per;
            if (v->mode == 1)
                for (uint32_t p = 0; p < k; p++)
                    for (uint32_t q = 0; q < k; q++)
                        a[p * k + q] += c1 * x[p] * x[q];
            else if (v->mode == 2)
                for (uint32_t p = 0; p < k; p++)
                    a[p] += c1 * x[p] * x[p];
            else
                a[0] += c1 * xx;
        }
    }
    const double reg = lambda / n_train;
    if (v->mode == 6) {
        v->m_all += m;
        for (uint32_t i = 0; i < n; i++) {
            v->cnt_all[i] += v->cnt[i];
            double nc = v->cnt[i];
            if (nc <= 0)
                continue;
            double f = v->cnt_all[i] / v->m_all * m / nc;
            for (uint32_t p = 0; p < k; p++) {
                double sy = 0;
                for (uint32_t q = 0; q < k; q++)
                    sy += v->s0[p * k + q] * y[(size_t)i * k + q];
                size_t j = (size_t)i * k + p;
                double ri = 0.5 * sum[j] - sy;
                sum[j] = (float)(2.0 * (sy + f * ri));
            }
        }
        memset(v->cnt, 0, n * sizeof *v->cnt);
    }
    double tr0 = 0;
    for (uint32_t p = 0; p < k; p++)
        tr0 += v->s0[p * k + p] / m;
    v->t++;
    const double c1 = 1.0 - pow(beta1, (double)v->t);
    for (uint32_t i = 0; i < n; i++) {
        const double *a = v->a + (size_t)i * per;
        for (size_t e = 0; e < kk; e++)
            v->si[e] = v->s0[e] / m;
        for (uint32_t p = 0; p < k; p++) {
            v->si[p * k + p] += reg;
            if (v->mode == 2)
                v->si[p * k + p] += a[p] / m;
            if (v->mode == 4)
                v->si[p * k + p] += a[0] / k / m;
        }
        if (v->mode == 1)
            for (size_t e = 0; e < kk; e++)
                v->si[e] += a[e] / m;
        if (v->mode == 3 && tr0 > 0)
            for (size_t e = 0; e < kk; e++)
                v->si[e] += a[0] / m / tr0 * v->s0[e] / m;
        if (fedq_chol(v->si, k))
            return -1;
        double b[256];
        for (uint32_t p = 0; p < k; p++)
            b[p] = 0.5 * ((double)sum[(size_t)i * k + p] / m + 2.0 * reg * y[(size_t)i * k + p]);
        fedq_chol_solve(v->si, k, b);
        for (uint32_t p = 0; p < k; p++) {
            size_t j = (size_t)i * k + p;
            v->mom[j] = beta1 * v->mom[j] + (1.0 - beta1) * b[p];
            y[j] = (float)(y[j] - lr * v->mom[j] / c1);
        }
    }
    return 0;
}

/* The training loss sum_u sum_i c_ui (p_ui - x_u^T y_i)^2 + lambda (sum |x_u|^2 +
 * sum |y_i|^2) with every x_u solved from y (--loss). */
static int fedq_loss(const fedreci_mf_csr *r, const float *y, uint32_t k, double lambda,
                     double *out)
{
    const uint32_t n = r->n_cols;
    float *grad = malloc((size_t)n * k * 4), gram[4096], x[256];
    fedreci_mf_step *w = NULL;
    if (!grad || fedreci_mf_step_create(&w, n, k)) {
        free(grad);
        return -1;
    }
    fedreci_mf_gram(y, n, k, gram);
    double total = 0;
    int rc = 0;
    for (uint32_t u = 0; u < r->n_rows && !rc; u++) {
        uint64_t lo = r->indptr[u];
        fedreci_mf_user cu = {r->indices + lo, r->conf + lo, (uint32_t)(r->indptr[u + 1] - lo)};
        double l = 0;
        if (cu.n == 0)
            continue;
        rc = fedreci_mf_client_step(w, y, gram, n, k, (float)lambda, &cu, x, grad, &l) ? -1 : 0;
        total += l;
    }
    for (size_t j = 0; j < (size_t)n * k; j++)
        total += lambda * (double)y[j] * y[j];
    *out = total;
    fedreci_mf_step_destroy(w);
    free(grad);
    return rc;
}

static int fedq_loss_on = 0;
static double fedq_loss_fed, fedq_loss_central;

/* One federated training of R rounds; HR@10 into *hr. */
static int fedq_train(const fedreci_split *s, const fedq_cfg *c, double lr, double beta1,
                      uint64_t seed, double *hr)
{
    const fedreci_mf_csr *r = &s->train;
    const uint32_t n = r->n_cols, k = c->k;
    uint32_t *pool = malloc((size_t)r->n_rows * sizeof *pool), np = 0;
    uint32_t *cohort = malloc((size_t)r->n_rows * sizeof *cohort);
    size_t dim = fedreci_mf_update_dim(n, k, FEDRECI_OPT_ALS);
    float *y = malloc((size_t)n * k * 4), *grad = malloc(dim * 4);
    float *sum = malloc(dim * 4);
    double *mom = calloc((size_t)n * k, sizeof *mom), *gs = malloc((size_t)k * k * sizeof *gs);
    fedreci_optimizer *o = NULL;
    fedreci_mf_step *w = NULL;
    double *avg = NULL;
    fedq_var var = {0};
    int rc = -1;
    if (!pool || !cohort || !y || !grad || !sum || !mom || !gs || k > 64)
        goto out;
    for (uint32_t u = 0; u < r->n_rows; u++)
        if (r->indptr[u + 1] > r->indptr[u])
            pool[np++] = u;
    fedreci_opt_params op = {c->als_step == 1 ? FEDRECI_OPT_ALS : FEDRECI_OPT_ADAM,
                             (float)lr,
                             (float)beta1,
                             0.999f,
                             1e-8f,
                             (float)c->lambda,
                             np};
    if (np == 0 || fedreci_optimizer_create(&o, &op, n, k) || fedreci_mf_step_create(&w, n, k))
        goto out;
    if (c->precond) {
        size_t per = c->precond == 1 ? (size_t)k * k : c->precond == 2 ? k : 1;
        var.mode = c->precond;
        var.a = malloc((size_t)n * per * sizeof *var.a);
        var.s0 = malloc((size_t)k * k * sizeof *var.s0);
        var.si = malloc((size_t)k * k * sizeof *var.si);
        var.mom = calloc((size_t)n * k, sizeof *var.mom);
        var.cnt = calloc(n, sizeof *var.cnt);
        var.cnt_all = calloc(n, sizeof *var.cnt_all);
        if (!var.a || !var.s0 || !var.si || !var.mom || !var.cnt || !var.cnt_all)
            goto out;
    }
    fedreci_mf_init(y, n, k, seed, (float)c->init_std);
    fedreci_rng st = fedreci_rng_seeded(seed * 0x2545f4914f6cdd1dULL + 1);
    uint32_t cursor = np; /* --reshuffle: the next client of the epoch's order */
    for (uint32_t t = 0; t < c->rounds; t++) {
        uint32_t want = c->cohort;
        for (uint32_t j = 0, at = 0; j < c->plan_n; at += c->plan_rounds[j], j++)
            if (t >= at)
                want = c->plan_size[j];
        uint32_t size = want < np ? want : np, m = 0;
        if (c->reshuffle) {
            /* random reshuffling: each client once per epoch (a pass over the
               pool in a random order); an epoch's tail is topped up from the
               next epoch's permutation, drawn among the clients not taken */
            for (uint32_t j = 0; j < size; j++) {
                if (cursor == np) { /* new epoch: shuffle the rest behind this round's */
                    uint32_t taken = j;
                    /* move this round's picks (pool[np - taken .. np)) to the front */
                    for (uint32_t q = 0; q < taken; q++) {
                        uint32_t tmp = pool[q];
                        pool[q] = pool[np - taken + q];
                        pool[np - taken + q] = tmp;
                    }
                    for (uint32_t q = taken; q < np; q++) {
                        uint32_t pick = q + (uint32_t)fedreci_rng_below(&st, np - q);
                        uint32_t tmp = pool[q];
                        pool[q] = pool[pick];
                        pool[pick] = tmp;
                    }
                    cursor = taken;
                }
                uint32_t u = pool[cursor++];
                if (fedreci_rng_unit(&st) >= c->dropout)
                    cohort[m++] = u;
            }
        } else
            for (uint32_t j = 0; j < size; j++) { /* partial Fisher-Yates, then dropout */
                uint32_t pick = j + (uint32_t)fedreci_rng_below(&st, np - j);
                uint32_t tmp = pool[j];
                pool[j] = pool[pick];
                pool[pick] = tmp;
                if (fedreci_rng_unit(&st) >= c->dropout)
                    cohort[m++] = pool[j];
            }
        if (c->lr_final > 0 && c->rounds > 1 && t >= c->decay_from) {
            double f = (double)(t - c->decay_from) / (double)(c->rounds - 1 - c->decay_from);
            if (fedreci_optimizer_set_lr(o, (float)(lr * pow(c->lr_final / lr, f))))
                goto out;
        }
        if (m > 0 && c->precond) {
            if (fedq_var_round(w, r, cohort, m, k, c->lambda, np, lr, beta1, &var, y, grad, sum))
                goto out;
        } else if (m > 0 && c->als_step < 2 &&
                   fedreci_mf_fed_round_xx(w, o, r, cohort, m, k, (float)c->lambda, c->x_bound, y,
                                           grad, sum, NULL, NULL))
            goto out;
        if (m > 0 && c->als_step == 2 &&
            fedq_als_round(w, r, cohort, m, k, c->lambda, np, lr, beta1, t + 1, y, grad, sum, mom,
                           gs, c->als_step == 2))
            goto out;
        if (c->avg_last && t + c->avg_last >= c->rounds) {
            if (!avg && !(avg = calloc((size_t)n * k, sizeof *avg)))
                goto out;
            for (size_t j = 0; j < (size_t)n * k; j++)
                avg[j] += (double)y[j] / c->avg_last;
        }
    }
    if (avg)
        for (size_t j = 0; j < (size_t)n * k; j++)
            y[j] = (float)avg[j];
    rc = fedq_hr10(s, y, NULL, k, (float)c->lambda, hr);
    if (!rc && fedq_loss_on) {
        double l = 0;
        rc = fedq_loss(r, y, k, c->lambda, &l);
        fedq_loss_fed += l;
    }
out:
    free(var.a);
    free(var.s0);
    free(var.si);
    free(var.mom);
    free(var.cnt);
    free(var.cnt_all);
    fedreci_optimizer_destroy(o);
    fedreci_mf_step_destroy(w);
    free(pool);
    free(cohort);
    free(y);
    free(grad);
    free(sum);
    free(mom);
    free(gs);
    free(avg);
    return rc;
}

static int fedq_central(const fedreci_split *s, const fedq_cfg *c, uint64_t seed, double *hr)
{
    const fedreci_mf_csr *r = &s->train;
    float *x = malloc((size_t)r->n_rows * c->k * 4), *y = malloc((size_t)r->n_cols * c->k * 4);
    fedreci_als_params p = {c->k, (float)c->lambda, 15, 2, seed, 0.01f};
    int rc = -1;
    if (x && y && fedreci_als_train(r, &p, x, y, NULL) == FEDREC_OK) {
        fedq_band_who = 1;
        rc = fedq_hr10(s, y, x, c->k, (float)c->lambda, hr);
        fedq_band_who = 0;
        double l = 0;
        if (!rc && fedq_loss_on && !(rc = fedq_loss(r, y, c->k, c->lambda, &l)))
            fedq_loss_central += l;
    }
    free(x);
    free(y);
    return rc;
}

static fedrec_err fedq_list(const char *flag, const char *text, double lo, double hi, double *out,
                            uint32_t *n)
{
    char buf[256];
    if (strlen(text) >= sizeof buf)
        return fedreci_error(FEDREC_ERR_INVALID, "%s: list too long", flag);
    strcpy(buf, text);
    uint32_t m = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        if (m >= FEDQ_MAX)
            return fedreci_error(FEDREC_ERR_INVALID, "%s: at most %d values", flag, FEDQ_MAX);
        fedrec_err e = fedreci_opt_double(flag, tok, lo, hi, &out[m]);
        if (e)
            return e;
        m++;
    }
    if (m == 0)
        return fedreci_error(FEDREC_ERR_INVALID, "%s: empty list", flag);
    *n = m;
    return FEDREC_OK;
}

static void fedq_usage(FILE *f)
{
    fprintf(f, "usage: fedrec-bench fedq [--data FILE] [--split-date YYYY-MM-DD] [--test]\n"
               "                         [--seeds N] [--rounds R] [--cohort C] [--dropout P]\n"
               "                         [--factors K] [--lr LIST] [--beta1 LIST]\n"
               "                         [--step adam|als|gram] [--x-bound B] [--init-std S]\n"
               "Federated (plain-sum rounds, Adam on the server) against centralized ALS,\n"
               "HR@10 ratio per seed, on the validation split unless --test. LIST is\n"
               "comma-separated; every (lr, beta1) pair is run.\n"
               "  --data FILE        purchase log (default " FEDQ_DEFAULT_DATA ")\n"
               "  --split-date D     the date split's validation split (default last basket)\n"
               "  --test             evaluate on the test split instead (touch it once)\n"
               "  --seeds N          seeds 1..N (default 3)\n"
               "  --rounds R         rounds (default 40)   --cohort C   shoppers per round (500)\n"
               "  --dropout P        vanish probability (0.1)   --factors K  (32), lambda 0.1\n"
               "  --lr LIST          Adam learning rates (default 0.02,0.03)\n"
               "  --beta1 LIST       Adam beta1 (default 0.9,0); beta2 0.999, eps 1e-8\n"
               "  --step als         instead of Adam, the ALS step of fedrec-sim --step als\n"
               "                     (core/mf: the cohort's sums of gradients and of\n"
               "                     x_u x_u^T): lr is its step size, beta1 its momentum;\n"
               "                     gram: the same with Y^T Y / N for the x_u x_u^T sum\n"
               "  --x-bound B        the ALS step's bound on |x_u| in the block (default 8)\n"
               "  --init-std S       standard deviation of the initial Y (default 0.01)\n"
               "  --lr-final F       step size decays geometrically from lr to F over the\n"
               "                     rounds from --decay-from R0 (0-based, default 0) on\n"
               "  --avg-last A       the model evaluated is the mean of the last A rounds' Y\n"
               "  --reshuffle        cohorts by random reshuffling (each shopper at most once\n"
               "                     per epoch: fedrec-sim --selection reshuffle)\n"
               "  --cohort-plan P    cohort sizes over the rounds, e.g. 500:6,1000:4,2000:4\n"
               "                     (6 rounds of 500, ...; sets --rounds to the total)\n"
               "  --precond M        research: the ALS step with a per-item curvature term\n"
               "                     computed here from the cohort's data: oracle (the exact\n"
               "                     item system), diag, trace (one word per item), iso,\n"
               "                     none (core/mf's step), ratio (buyer-count ratio estimator)\n"
               "  --loss             also the training loss of each setting against\n"
               "                     centralized ALS (x_u solved from the final Y), and the\n"
               "                     NDCG@10 ratio\n"
               "  --bands            hits and top-10 slots by the items' training buyers\n");
}

int fedrec_bench_fedq(int argc, char **argv)
{
    const char *path = FEDQ_DEFAULT_DATA, *date = NULL;
    int test = 0;
    uint32_t seeds = 3, n_lr = 2, n_b1 = 2;
    double lrs[FEDQ_MAX] = {0.02, 0.03}, b1s[FEDQ_MAX] = {0.9, 0.0};
    fedq_cfg c = {40, 500, 32, 0.1, 0.1, 0, 0, 0, 0.01, 8, 0, 0, 0, 0, {0}, {0}};
    enum {
        O_DATA = 0x100,
        O_DATE,
        O_TEST,
        O_SEEDS,
        O_ROUNDS,
        O_COHORT,
        O_DROPOUT,
        O_FACTORS,
        O_LR,
        O_BETA1,
        O_STEP,
        O_INIT,
        O_XBOUND,
        O_LRFINAL,
        O_DECAYFROM,
        O_AVGLAST,
        O_PRECOND,
        O_BANDS,
        O_LOSS,
        O_PLAN,
        O_RESHUFFLE
    };
    static const struct option longopts[] = {
        {"data", required_argument, NULL, O_DATA},
        {"split-date", required_argument, NULL, O_DATE},
        {"test", no_argument, NULL, O_TEST},
        {"seeds", required_argument, NULL, O_SEEDS},
        {"rounds", required_argument, NULL, O_ROUNDS},
        {"cohort", required_argument, NULL, O_COHORT},
        {"dropout", required_argument, NULL, O_DROPOUT},
        {"factors", required_argument, NULL, O_FACTORS},
        {"lr", required_argument, NULL, O_LR},
        {"beta1", required_argument, NULL, O_BETA1},
        {"step", required_argument, NULL, O_STEP},
        {"init-std", required_argument, NULL, O_INIT},
        {"x-bound", required_argument, NULL, O_XBOUND},
        {"lr-final", required_argument, NULL, O_LRFINAL},
        {"decay-from", required_argument, NULL, O_DECAYFROM},
        {"avg-last", required_argument, NULL, O_AVGLAST},
        {"precond", required_argument, NULL, O_PRECOND},
        {"bands", no_argument, NULL, O_BANDS},
        {"loss", no_argument, NULL, O_LOSS},
        {"cohort-plan", required_argument, NULL, O_PLAN},
        {"reshuffle", no_argument, NULL, O_RESHUFFLE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    fedreci_opt_reset();
    int opt;
    while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        fedrec_err e = FEDREC_OK;
        switch (opt) {
        case 'h':
            fedq_usage(stdout);
            return 0;
        case O_DATA:
            path = optarg;
            break;
        case O_DATE:
            date = optarg;
            break;
        case O_TEST:
            test = 1;
            break;
        case O_INIT:
            e = fedreci_opt_double("--init-std", optarg, 1e-6, 10.0, &c.init_std);
            break;
        case O_STEP:
            if (!strcmp(optarg, "adam") || !strcmp(optarg, "als") || !strcmp(optarg, "gram"))
                c.als_step = !strcmp(optarg, "als") ? 1 : !strcmp(optarg, "gram") ? 2 : 0;
            else
                e = fedreci_error(FEDREC_ERR_INVALID, "--step '%s': expected adam, als or gram",
                                  optarg);
            break;
        case O_XBOUND:
            e = fedreci_opt_double("--x-bound", optarg, 1e-3, 1e6, &c.x_bound);
            break;
        case O_LRFINAL:
            e = fedreci_opt_double_above("--lr-final", optarg, 0.0, 10.0, &c.lr_final);
            break;
        case O_DECAYFROM:
            e = fedreci_opt_u32("--decay-from", optarg, 0, 100000, &c.decay_from);
            break;
        case O_AVGLAST:
            e = fedreci_opt_u32("--avg-last", optarg, 1, 100000, &c.avg_last);
            break;
        case O_PRECOND: {
            static const char *const names[] = {"oracle", "diag", "trace", "iso", "none", "ratio"};
            c.precond = 0;
            for (int q = 0; q < 6; q++)
                if (!strcmp(optarg, names[q]))
                    c.precond = q + 1;
            if (!c.precond)
                e = fedreci_error(FEDREC_ERR_INVALID,
                                  "--precond '%s': expected oracle, diag, trace, iso or none",
                                  optarg);
            break;
        }
        case O_PLAN: {
            char buf[256];
            snprintf(buf, sizeof buf, "%s", optarg);
            c.plan_n = 0;
            c.rounds = 0;
            for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok && !e;
                 tok = strtok_r(NULL, ",", &save)) {
                unsigned sz = 0, rr = 0;
                if (c.plan_n >= FEDQ_MAX || sscanf(tok, "%u:%u", &sz, &rr) != 2 || !sz || !rr)
                    e = fedreci_error(FEDREC_ERR_INVALID,
                                      "--cohort-plan: '%s' is not COHORT:ROUNDS", tok);
                else {
                    c.plan_size[c.plan_n] = sz;
                    c.plan_rounds[c.plan_n++] = rr;
                    c.rounds += rr;
                }
            }
            break;
        }
        case O_RESHUFFLE:
            c.reshuffle = 1;
            break;
        case O_BANDS:
            fedq_band_on = 1;
            break;
        case O_LOSS:
            fedq_loss_on = 1;
            break;
        case O_SEEDS:
            e = fedreci_opt_u32("--seeds", optarg, 1, 100, &seeds);
            break;
        case O_ROUNDS:
            e = fedreci_opt_u32("--rounds", optarg, 1, 100000, &c.rounds);
            break;
        case O_COHORT:
            e = fedreci_opt_u32("--cohort", optarg, 1, 1000000, &c.cohort);
            break;
        case O_DROPOUT:
            e = fedreci_opt_double("--dropout", optarg, 0.0, 0.99, &c.dropout);
            break;
        case O_FACTORS:
            e = fedreci_opt_u32("--factors", optarg, 1, 256, &c.k);
            break;
        case O_LR:
            e = fedq_list("--lr", optarg, 1e-6, 10.0, lrs, &n_lr);
            break;
        case O_BETA1:
            e = fedq_list("--beta1", optarg, 0.0, 0.999, b1s, &n_b1);
            break;
        default:
            fedq_usage(stderr);
            return bench_getopt_error("fedq", opt, argc, argv, longopts);
        }
        if (e) {
            fedq_usage(stderr);
            return bench_usage_error("fedq");
        }
    }
    if (c.lr_final > 0 && c.decay_from + 1 >= c.rounds) {
        fprintf(stderr, "fedrec-bench fedq: --decay-from %u must be below --rounds %u - 1\n",
                c.decay_from, c.rounds);
        return 2;
    }
    if (optind < argc) {
        fedq_usage(stderr);
        return bench_getopt_error("fedq", -1, argc, argv, longopts);
    }
    fedreci_split_options so = {FEDRECI_SPLIT_LAST_BASKET, 0};
    if (date) {
        so.kind = FEDRECI_SPLIT_TEMPORAL;
        if (fedreci_parse_time(date, &so.split_time)) {
            fprintf(stderr, "fedrec-bench fedq: --split-date '%s' is not a date\n", date);
            return 2;
        }
    }
    fedreci_dataset *d = NULL;
    fedreci_split *s = NULL;
    if (fedreci_dataset_load(&d, path, NULL, NULL) ||
        (test ? fedreci_split_create(&s, d, &so) : fedreci_split_create_validation(&s, d, &so))) {
        fprintf(stderr, "fedrec-bench fedq: %s: %s\n", path, fedrec_errmsg());
        fedreci_dataset_destroy(d);
        return 1;
    }
    openblas_set_num_threads(1);
    printf("data: %s, %s split%s%s, %u shoppers evaluated\n", path, test ? "test" : "validation",
           date ? " of date:" : " of lastbasket", date ? date : "", s->n_test_users);
    printf("federated: %u rounds, cohort %u, dropout %g, %u factors, lambda %g, init N(0, 0.01^2)\n"
           "centralized: exact ALS, same factors and lambda, 15 sweeps; seeds 1..%u\n\n",
           c.rounds, c.cohort, c.dropout, c.k, c.lambda, seeds);
    double *central = calloc(seeds, sizeof *central);
    int rc = central ? 0 : 1;
    double *central_ndcg = calloc(seeds, sizeof *central_ndcg);
    if (!central_ndcg)
        rc = 1;
    for (uint32_t sd = 1; sd <= seeds && !rc; sd++) {
        rc = fedq_central(s, &c, sd, &central[sd - 1]);
        central_ndcg[sd - 1] = fedq_last_ndcg;
    }
    if (!rc) {
        printf("%-22s", "centralized HR@10");
        for (uint32_t sd = 0; sd < seeds; sd++)
            printf(" %7.4f", central[sd]);
        printf("\n%-22s", "ratio fed / central");
        for (uint32_t sd = 1; sd <= seeds; sd++)
            printf(" %7s", "");
        printf(" %7s %7s %7s\n", "mean", "min", "max");
    }
    for (uint32_t a = 0; a < n_lr && !rc; a++)
        for (uint32_t b = 0; b < n_b1 && !rc; b++) {
            char name[64];
            snprintf(name, sizeof name, "lr %g, beta1 %g", lrs[a], b1s[b]);
            printf("%-22s", name);
            double mean = 0, lo = 1e9, hi = -1e9, lsum = 0, nsum = 0;
            for (uint32_t sd = 1; sd <= seeds && !rc; sd++) {
                double hr = 0;
                double l0 = fedq_loss_fed;
                rc = fedq_train(s, &c, lrs[a], b1s[b], sd, &hr);
                lsum += fedq_loss_fed - l0;
                nsum += fedq_last_ndcg / central_ndcg[sd - 1] / seeds;
                double ratio = hr / central[sd - 1];
                printf(" %7.4f", ratio);
                fflush(stdout);
                mean += ratio / seeds;
                lo = fmin(lo, ratio);
                hi = fmax(hi, ratio);
            }
            if (!rc && fedq_loss_on)
                printf(" %7.4f %7.4f %7.4f  NDCG@10 ratio %.4f, loss ratio %.4f\n", mean, lo, hi,
                       nsum, lsum / fedq_loss_central);
            else if (!rc)
                printf(" %7.4f %7.4f %7.4f\n", mean, lo, hi);
        }
    if (!rc && fedq_loss_on)
        printf("training loss, mean over seeds and settings: federated %.1f, centralized %.1f, "
               "ratio %.4f\n",
               fedq_loss_fed / (seeds * n_lr * n_b1), fedq_loss_central / seeds,
               (fedq_loss_fed / (n_lr * n_b1)) / fedq_loss_central);
    if (!rc && fedq_band_on) {
        printf("popularity band (training buyers): test items, top-10 hits fed / central, "
               "top-10 slots fed / central (summed over seeds and settings)\n");
        for (int b = 0; b < FEDQ_BANDS; b++)
            printf("  >= %3u buyers: %6.0f tests, hits %7.0f / %7.0f (ratio %.3f), slots %8.0f / "
                   "%8.0f\n",
                   fedq_band_lo[b], fedq_band_tests[b] / seeds,
                   fedq_band_hits[0][b] / (n_lr * n_b1), fedq_band_hits[1][b],
                   fedq_band_hits[0][b] / (n_lr * n_b1) / fmax(1, fedq_band_hits[1][b]),
                   fedq_band_slots[0][b] / (n_lr * n_b1), fedq_band_slots[1][b]);
    }
    if (rc)
        fprintf(stderr, "fedrec-bench fedq: %s\n", fedrec_errmsg());
    free(central);
    free(central_ndcg);
    fedreci_split_destroy(s);
    fedreci_dataset_destroy(d);
    return rc ? 1 : 0;
}
