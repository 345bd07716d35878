/* Renyi DP accounting: mechanisms, subsampling, composition, conversion (see accountant.h). */
#include "core/dp/accountant.h"

#include <math.h>
#include <string.h>

#include "core/err.h"

/* log(exp(a) + exp(b)), -inf aware. */
static double log_add(double a, double b)
{
    if (a == -INFINITY)
        return b;
    if (b == -INFINITY)
        return a;
    double m = a > b ? a : b;
    return m + log1p(exp(-fabs(a - b)));
}

/* log(exp(a) - exp(b)) for a >= b. */
static double log_sub(double a, double b)
{
    if (b == -INFINITY)
        return a;
    if (b >= a)
        return -INFINITY;
    return a + log1p(-exp(b - a));
}

/* log(n!) for integer n >= 0 (a sum below 16, Stirling's series above; no
 * lgamma: glibc's writes the global signgam). */
static double log_fact(double n)
{
    if (n < 16) {
        double s = 0;
        for (double i = 2; i <= n; i++)
            s += log(i);
        return s;
    }
    double x = n + 1.0, x2 = x * x;
    return (x - 0.5) * log(x) - x + 0.91893853320467274178 +
           (1.0 / 12.0 - (1.0 / 360.0 - (1.0 / 1260.0 - 1.0 / (1680.0 * x2)) / x2) / x2) / x;
}

static double log_binom(double n, double k)
{
    return log_fact(n) - log_fact(k) - log_fact(n - k);
}

/* log(erfc(x) / 2), accurate far into the upper tail (erfc underflows past
 * x ~ 26: then the asymptotic series). */
static double log_half_erfc(double x)
{
    if (x < 25)
        return log(0.5 * erfc(x));
    double x2 = x * x;
    return -x2 - log(x) - 0.5 * log(M_PI) - log(2.0) +
           log1p(-1.0 / (2 * x2) + 3.0 / (4 * x2 * x2) - 15.0 / (8 * x2 * x2 * x2));
}

static int is_integer(double a)
{
    return a == floor(a) && a < 1e9;
}

static const double default_orders[] = {1.25, 1.5, 1.75, 2, 2.25, 2.5, 3, 3.5, 4, 4.5};

void fedreci_dp_accountant_init(fedreci_dp_accountant *a)
{
    size_t n = 0;
    for (size_t i = 0; i < sizeof default_orders / sizeof default_orders[0]; i++)
        a->orders[n++] = default_orders[i];
    for (int o = 5; o <= 63; o++)
        a->orders[n++] = o;
    for (int o = 64; o <= 120; o += 8)
        a->orders[n++] = o;
    a->orders[n++] = 128;
    a->orders[n++] = 256;
    a->orders[n++] = 512;
    a->orders[n++] = 1024;
    a->n_orders = n;
    for (size_t i = 0; i < n; i++)
        a->rdp[i] = 0;
}

fedrec_err fedreci_dp_accountant_init_orders(fedreci_dp_accountant *a, const double *orders,
                                             size_t n)
{
    if (!a || !orders || n == 0 || n > FEDRECI_DP_MAX_ORDERS)
        return fedreci_error(FEDREC_ERR_INVALID, "dp accountant: %zu orders, need 1..%d", n,
                             FEDRECI_DP_MAX_ORDERS);
    for (size_t i = 0; i < n; i++)
        if (!isfinite(orders[i]) || !(orders[i] > 1))
            return fedreci_error(FEDREC_ERR_INVALID,
                                 "dp accountant: order %zu is %g, need finite > 1", i, orders[i]);
    a->n_orders = n;
    for (size_t i = 0; i < n; i++) {
        a->orders[i] = orders[i];
        a->rdp[i] = 0;
    }
    return FEDREC_OK;
}

/* log A_alpha of the sampled Gaussian, integer alpha (MTZ 2019, section 3.3):
 * A = sum_i C(alpha, i) (1-q)^(alpha-i) q^i exp((i^2 - i) / (2 z^2)). */
static double sgm_log_a_int(double q, double z, double alpha)
{
    double s = -INFINITY;
    for (double i = 0; i <= alpha; i++)
        s = log_add(s, log_binom(alpha, i) + i * log(q) + (alpha - i) * log1p(-q) +
                           (i * i - i) / (2 * z * z));
    return s;
}

/* log A_alpha for fractional alpha (MTZ 2019, section 3.3): split the
 * integral at z0, where q exp((2x - 1) / (2 z^2)) = 1 - q, and expand the
 * binomial on each side. The generalized binomial coefficients change sign
 * past alpha: positive and negative terms are summed apart and subtracted
 * once (A >= 1 and the negative terms are the small tail, so there is no
 * harmful cancellation). This is the exact A (tests/test_dp.c integrates
 * it); Google's dp_accounting sums the terms' absolute values instead, an
 * upper bound (3% higher at q = 0.01, z = 2.5, alpha = 1.5). */
static double sgm_log_a_frac(double q, double z, double alpha)
{
    double pos = -INFINITY, neg = -INFINITY, last0 = -INFINITY, last1 = -INFINITY;
    double z0 = z * z * log(1 / q - 1) + 0.5;
    double lq = log(q), l1q = log1p(-q), s2 = sqrt(2.0) * z;
    double lc = 0; /* log |C(alpha, i)| */
    int sign = 1;
    for (int i = 0; i < 100000; i++) {
        double j = alpha - i;
        double t0 = lc + i * lq + j * l1q + (i * (double)i - i) / (2 * z * z) +
                    log_half_erfc((i - z0) / s2);
        double t1 =
            lc + j * lq + i * l1q + (j * j - j) / (2 * z * z) + log_half_erfc((z0 - j) / s2);
        if (sign > 0)
            pos = log_add(pos, log_add(t0, t1));
        else
            neg = log_add(neg, log_add(t0, t1));
        if (i > alpha && t0 < last0 && t1 < last1 && (t0 > t1 ? t0 : t1) < pos - 36)
            break;
        last0 = t0;
        last1 = t1;
        /* C(alpha, i + 1) = C(alpha, i) (alpha - i) / (i + 1) */
        double f = (alpha - i) / (i + 1.0);
        if (f < 0)
            sign = -sign;
        lc += log(fabs(f));
    }
    return log_sub(pos, neg);
}

fedrec_err fedreci_dp_rdp_sampled_gaussian(double q, double z, double alpha, double *out)
{
    if (!(q >= 0 && q <= 1) || !(z > 0) || !isfinite(z) || !(alpha > 1) || !out)
        return fedreci_error(FEDREC_ERR_INVALID,
                             "dp accountant: sampled Gaussian q = %g (need 0..1), z = %g (need "
                             "> 0), alpha = %g (need > 1)",
                             q, z, alpha);
    if (q == 0) {
        *out = 0;
        return FEDREC_OK;
    }
    if (q == 1 || isinf(alpha)) {
        *out = q == 1 ? alpha / (2 * z * z) : INFINITY;
        return FEDREC_OK;
    }
    double la = is_integer(alpha) ? sgm_log_a_int(q, z, alpha) : sgm_log_a_frac(q, z, alpha);
    *out = la / (alpha - 1);
    return FEDREC_OK;
}

double fedreci_dp_rdp_skellam(double alpha, double mu, double l1, double l2)
{
    if (!is_integer(alpha) || !(mu > 0))
        return INFINITY;
    double g = alpha * l2 * l2 / (2 * mu);
    double a = ((2 * alpha - 1) * l2 * l2 + 6 * l1) / (4 * mu * mu);
    double b = 3 * l1 / (2 * mu);
    return g + (a < b ? a : b);
}

/* The mechanism's own RDP at order alpha. */
static double base_rdp(const fedreci_dp_event *ev, double alpha)
{
    if (ev->mech == FEDRECI_DP_GAUSSIAN)
        return alpha / (2 * ev->z * ev->z);
    return fedreci_dp_rdp_skellam(alpha, ev->mu, ev->l1, ev->l2);
}

/* Zhu & Wang 2019, Theorem 6 (Poisson subsampling, any mechanism), integer alpha. */
static double poisson_general(const fedreci_dp_event *ev, double q, double alpha)
{
    double lq = log(q), l1q = log1p(-q);
    double s = (alpha - 1) * l1q + log1p((alpha - 1) * q);
    s = log_add(s, log_binom(alpha, 2) + 2 * lq + (alpha - 2) * l1q + base_rdp(ev, 2));
    for (double l = 3; l <= alpha; l++)
        s = log_add(s, log(3.0) + log_binom(alpha, l) + l * lq + (alpha - l) * l1q +
                           (l - 1) * base_rdp(ev, l));
    return s / (alpha - 1);
}

/* Wang, Balle & Kasiviswanathan 2019, Theorem 9 with eps(inf) = inf, integer alpha. */
static double wor_general(const fedreci_dp_event *ev, double g, double alpha)
{
    double lg = log(g), e2 = base_rdp(ev, 2);
    /* min(4 (e^e2 - 1), 2 e^e2) in log space */
    double m4 = log(4.0) + log_sub(e2, 0), m2 = log(2.0) + e2;
    double s = 0; /* log 1 */
    s = log_add(s, 2 * lg + log_binom(alpha, 2) + (m4 < m2 ? m4 : m2));
    for (double j = 3; j <= alpha; j++)
        s = log_add(s, log(2.0) + j * lg + log_binom(alpha, j) + (j - 1) * base_rdp(ev, j));
    return s / (alpha - 1);
}

fedrec_err fedreci_dp_event_rdp(const fedreci_dp_event *ev, double alpha, double *out)
{
    if (!ev || !out || !(alpha > 1))
        return fedreci_error(FEDREC_ERR_INVALID, "dp accountant: order %g, need > 1", alpha);
    if (ev->mech == FEDRECI_DP_GAUSSIAN) {
        if (!(ev->z > 0) || !isfinite(ev->z))
            return fedreci_error(FEDREC_ERR_INVALID,
                                 "dp accountant: Gaussian noise multiplier z = %g, need > 0",
                                 ev->z);
    } else if (ev->mech == FEDRECI_DP_SKELLAM) {
        if (!(ev->mu > 0) || !isfinite(ev->mu) || !(ev->l2 > 0) || !isfinite(ev->l2) ||
            !(ev->l1 > 0) || !isfinite(ev->l1))
            return fedreci_error(FEDREC_ERR_INVALID,
                                 "dp accountant: Skellam mu = %g, L1 = %g, L2 = %g, need all "
                                 "finite > 0",
                                 ev->mu, ev->l1, ev->l2);
    } else {
        return fedreci_error(FEDREC_ERR_INVALID, "dp accountant: unknown mechanism %d",
                             (int)ev->mech);
    }
    if (ev->sampling != FEDRECI_DP_FULL && !(ev->q >= 0 && ev->q <= 1))
        return fedreci_error(FEDREC_ERR_INVALID, "dp accountant: sampling rate q = %g, need 0..1",
                             ev->q);
    double base = base_rdp(ev, alpha);
    switch (ev->sampling) {
    case FEDRECI_DP_FULL:
        *out = base;
        return FEDREC_OK;
    case FEDRECI_DP_POISSON:
        if (ev->q == 0) {
            *out = 0;
            return FEDREC_OK;
        }
        if (ev->q == 1) {
            *out = base;
            return FEDREC_OK;
        }
        if (ev->mech == FEDRECI_DP_GAUSSIAN)
            return fedreci_dp_rdp_sampled_gaussian(ev->q, ev->z, alpha, out);
        if (!is_integer(alpha)) {
            *out = INFINITY;
            return FEDREC_OK;
        }
        {
            double s = poisson_general(ev, ev->q, alpha);
            *out = s < base ? s : base;
        }
        return FEDREC_OK;
    case FEDRECI_DP_WOR:
        if (ev->q == 0) {
            *out = 0;
            return FEDREC_OK;
        }
        if (!is_integer(alpha)) {
            *out = base;
            return FEDREC_OK;
        }
        {
            double s = wor_general(ev, ev->q, alpha);
            *out = s < base ? s : base;
        }
        return FEDREC_OK;
    }
    return fedreci_error(FEDREC_ERR_INVALID, "dp accountant: unknown sampling %d",
                         (int)ev->sampling);
}

fedrec_err fedreci_dp_accountant_compose(fedreci_dp_accountant *a, const fedreci_dp_event *ev,
                                         uint64_t count)
{
    double r[FEDRECI_DP_MAX_ORDERS];
    for (size_t i = 0; i < a->n_orders; i++) {
        fedrec_err e = fedreci_dp_event_rdp(ev, a->orders[i], &r[i]);
        if (e)
            return e;
    }
    for (size_t i = 0; i < a->n_orders; i++)
        a->rdp[i] += (r[i] == 0 || count == 0) ? 0 : (double)count * r[i];
    return FEDREC_OK;
}

static fedrec_err convert(const fedreci_dp_accountant *a, double delta, int improved, double *eps,
                          double *order)
{
    if (!a || !eps || !(delta > 0 && delta < 1))
        return fedreci_error(FEDREC_ERR_INVALID, "dp accountant: delta = %g, need 0 < delta < 1",
                             delta);
    double best = INFINITY, best_o = NAN;
    for (size_t i = 0; i < a->n_orders; i++) {
        double al = a->orders[i], r = a->rdp[i];
        if (!(r < INFINITY))
            continue;
        double e = improved ? r + log1p(-1 / al) - (log(delta) + log(al)) / (al - 1)
                            : r + log(1 / delta) / (al - 1);
        if (e < best) {
            best = e;
            best_o = al;
        }
    }
    *eps = best < 0 ? 0 : best;
    if (order)
        *order = best_o;
    return FEDREC_OK;
}

fedrec_err fedreci_dp_accountant_epsilon(const fedreci_dp_accountant *a, double delta, double *eps,
                                         double *order)
{
    return convert(a, delta, 1, eps, order);
}

fedrec_err fedreci_dp_epsilon_classic(const fedreci_dp_accountant *a, double delta, double *eps,
                                      double *order)
{
    return convert(a, delta, 0, eps, order);
}

/* epsilon after `releases` of ev at variance mu / shares[r] (mu when shares
 * is NULL) on top of spent (or a fresh default grid). */
static fedrec_err eps_at(const fedreci_dp_event *ev, double mu, const double *shares,
                         uint64_t releases, double delta, const fedreci_dp_accountant *spent,
                         double *eps)
{
    fedreci_dp_accountant a;
    if (spent)
        a = *spent;
    else
        fedreci_dp_accountant_init(&a);
    fedreci_dp_event e = *ev;
    e.mu = mu;
    fedrec_err err = FEDREC_OK;
    if (!shares)
        err = fedreci_dp_accountant_compose(&a, &e, releases);
    for (uint64_t r = 0; shares && !err && r < releases; r++) {
        e.mu = mu / shares[r];
        err = fedreci_dp_accountant_compose(&a, &e, 1);
    }
    if (err)
        return err;
    return fedreci_dp_accountant_epsilon(&a, delta, eps, NULL);
}

fedrec_err fedreci_dp_skellam_calibrate(const fedreci_dp_event *ev, uint64_t releases,
                                        double epsilon, double delta,
                                        const fedreci_dp_accountant *spent, double *mu)
{
    return fedreci_dp_skellam_calibrate_shares(ev, NULL, releases, epsilon, delta, spent, mu);
}

fedrec_err fedreci_dp_skellam_calibrate_shares(const fedreci_dp_event *ev, const double *shares,
                                               uint64_t releases, double epsilon, double delta,
                                               const fedreci_dp_accountant *spent, double *mu)
{
    if (!ev || !mu || ev->mech != FEDRECI_DP_SKELLAM || releases == 0 || !(epsilon > 0) ||
        !isfinite(epsilon) || !(delta > 0 && delta < 1) || !(ev->l2 > 0) || !isfinite(ev->l2))
        return fedreci_error(FEDREC_ERR_INVALID,
                             "dp calibrate: need a Skellam event with L2 > 0, releases >= 1, "
                             "epsilon > 0 (got %g), 0 < delta < 1 (got %g)",
                             epsilon, delta);
    for (uint64_t r = 0; shares && r < releases; r++)
        if (!(shares[r] > 0 && shares[r] <= 1e6))
            return fedreci_error(FEDREC_ERR_INVALID,
                                 "dp calibrate: the share of release %llu is %g, need 0 < share "
                                 "<= 1e6",
                                 (unsigned long long)r + 1, shares[r]);
    double lo = 1e-6 * ev->l2 * ev->l2, hi = 1e12 * ev->l2 * ev->l2, e;
    fedrec_err err = eps_at(ev, hi, shares, releases, delta, spent, &e);
    if (err)
        return err;
    if (e > epsilon)
        return fedreci_error(FEDREC_ERR_RANGE,
                             "dp calibrate: epsilon %g at delta %g is out of reach (%g even at "
                             "mu = %g): the budget is spent",
                             epsilon, delta, e, hi);
    while (hi / lo > 1.001) {
        double mid = sqrt(lo * hi);
        err = eps_at(ev, mid, shares, releases, delta, spent, &e);
        if (err)
            return err;
        if (e <= epsilon)
            hi = mid;
        else
            lo = mid;
    }
    *mu = hi;
    return FEDREC_OK;
}
