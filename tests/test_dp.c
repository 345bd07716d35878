/*
 * Tests for core/dp: the accountant against published reference values,
 * the Poisson and Skellam samplers against their definitions (moments,
 * chi-square, tails), the rotation (orthogonal, invertible), conditional
 * rounding, and the no-wrap check.
 *
 * Statistical margins: every sampler check runs at a fixed seed, so its
 * outcome is deterministic; the margins are 6 standard errors of the
 * statistic (a correct sampler lands outside with probability about 2e-9
 * per check), and chi-square statistics are held to df + 6 sqrt(2 df).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "core/dp/accountant.h"
#include "core/dp/dpals.h"
#include "core/dp/encode.h"
#include "core/dp/noise.h"
#include "core/dp/round.h"
#include "fedrec/fedrec.h"

static const uint8_t seed_a[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
static const uint8_t seed_b[32] = {42};

#define N_SAMPLES 200000

/* ---- accountant: reference values ----------------------------------------- */

/* Google dp_accounting, python/dp_accounting/dp_accounting/rdp/
 * rdp_privacy_accountant_test.py, test_compute_rdp_poisson_sampled_gaussian:
 * q = 0.01, noise multiplier 2.5, 50 steps; rtol 1e-4 there and here at the
 * integer orders. At the fractional orders dp_accounting sums the series'
 * absolute values (an upper bound); fedrec computes the exact value, which
 * must lie at or below the reference and within 4% of it (the exact value is
 * checked against the integral in the next test). */
static void test_sampled_gaussian_reference(void **state)
{
    (void)state;
    const double orders[] = {1.5, 2.5, 5, 50, 100};
    const double ref[] = {6.70579741e-04, 1.08548710e-03, 2.18075656e-03, 2.38460375e-02,
                          1.67416308e02};
    fedreci_dp_accountant a;
    assert_int_equal(fedreci_dp_accountant_init_orders(&a, orders, 5), FEDREC_OK);
    fedreci_dp_event ev = {
        .mech = FEDRECI_DP_GAUSSIAN, .z = 2.5, .sampling = FEDRECI_DP_POISSON, .q = 0.01};
    assert_int_equal(fedreci_dp_accountant_compose(&a, &ev, 50), FEDREC_OK);
    for (int i = 0; i < 5; i++) {
        if (orders[i] == floor(orders[i]))
            assert_true(fabs(a.rdp[i] - ref[i]) <= 1e-4 * ref[i]);
        else
            assert_true(a.rdp[i] <= ref[i] * (1 + 1e-4) && a.rdp[i] >= ref[i] * 0.96);
    }
}

/* The same mechanism against its definition: A_alpha = E_{x ~ N(0, z^2)}
 * [((1 - q) + q exp((2x - 1) / (2 z^2)))^alpha], integrated by the
 * trapezoid rule (step 1e-3 on [-40, 80]: the integrand is smooth, its
 * tails below 1e-60). Integer orders are exact sums (agree to 1e-9);
 * fractional orders too (the signed series is exact), to 1e-6. */
static void test_sampled_gaussian_integral(void **state)
{
    (void)state;
    const double q = 0.01, z = 2.5, orders[] = {1.5, 2, 2.5, 3, 4.75, 7};
    for (int k = 0; k < 6; k++) {
        double al = orders[k], h = 1e-3, s = 0;
        for (double x = -40; x <= 80; x += h) {
            double p = exp(-x * x / (2 * z * z)) / (sqrt(2 * M_PI) * z);
            s += p * pow((1 - q) + q * exp((2 * x - 1) / (2 * z * z)), al) * h;
        }
        double exact = log(s) / (al - 1), r;
        assert_int_equal(fedreci_dp_rdp_sampled_gaussian(q, z, al, &r), FEDREC_OK);
        assert_true(fabs(r - exact) <= 1e-6 * exact);
    }
}

/* dp_accounting's test_compute_epsilon_delta_pure_dp: orders 2..32, rdp 1.1
 * each, delta 1e-5 -> epsilon 1.32783806176 at order 32 (the improved
 * conversion). */
static void test_conversion_pure_reference(void **state)
{
    (void)state;
    double orders[31];
    for (int i = 0; i < 31; i++)
        orders[i] = 2 + i;
    fedreci_dp_accountant a;
    assert_int_equal(fedreci_dp_accountant_init_orders(&a, orders, 31), FEDREC_OK);
    for (int i = 0; i < 31; i++)
        a.rdp[i] = 1.1;
    double eps, order;
    assert_int_equal(fedreci_dp_accountant_epsilon(&a, 1e-5, &eps, &order), FEDREC_OK);
    assert_true(fabs(eps - 1.32783806176) < 1e-9);
    assert_true(order == 32);
}

/* dp_accounting's test_compute_epsilon_delta_gaussian: the Gaussian
 * mechanism with noise multiplier 4.530877117 is (1, 1e-6)-DP on the dense
 * order grid 1.000..99.999 step 0.001 (assertAlmostEqual: 7 places). The
 * grid is run in slices of FEDRECI_DP_MAX_ORDERS. */
static void test_conversion_gaussian_reference(void **state)
{
    (void)state;
    double best = INFINITY;
    fedreci_dp_event ev = {
        .mech = FEDRECI_DP_GAUSSIAN, .z = 4.530877117, .sampling = FEDRECI_DP_FULL};
    double orders[FEDRECI_DP_MAX_ORDERS];
    for (int i = 1001; i < 100000;) {
        size_t n = 0;
        while (n < FEDRECI_DP_MAX_ORDERS && i < 100000)
            orders[n++] = 0.001 * i++;
        fedreci_dp_accountant a;
        assert_int_equal(fedreci_dp_accountant_init_orders(&a, orders, n), FEDREC_OK);
        assert_int_equal(fedreci_dp_accountant_compose(&a, &ev, 1), FEDREC_OK);
        double eps;
        assert_int_equal(fedreci_dp_accountant_epsilon(&a, 1e-6, &eps, NULL), FEDREC_OK);
        if (eps < best)
            best = eps;
    }
    assert_true(fabs(best - 1.0) < 5e-7);
}

/* tensorflow/privacy, privacy/analysis/rdp_accountant_test.py,
 * test_check_composition: the sampled Gaussian (q = 1e-4, z = 0.4, 40,000
 * steps) then (q = 0.1, z = 2, 100 steps) on the orders below, classic
 * conversion at delta 1e-5: epsilon 8.509656 (5 places) at order 2.5. */
static void test_composition_classic_reference(void **state)
{
    (void)state;
    const double orders[] = {1.25, 1.5, 1.75, 2.,  2.5, 3.,  4.,  5.,  6.,  7.,  8.,
                             10.,  12., 14.,  16., 20., 24., 28., 32., 64., 256.};
    fedreci_dp_accountant a;
    assert_int_equal(fedreci_dp_accountant_init_orders(&a, orders, 21), FEDREC_OK);
    fedreci_dp_event e1 = {
        .mech = FEDRECI_DP_GAUSSIAN, .z = 0.4, .sampling = FEDRECI_DP_POISSON, .q = 1e-4};
    fedreci_dp_event e2 = {
        .mech = FEDRECI_DP_GAUSSIAN, .z = 2, .sampling = FEDRECI_DP_POISSON, .q = 0.1};
    assert_int_equal(fedreci_dp_accountant_compose(&a, &e1, 40000), FEDREC_OK);
    assert_int_equal(fedreci_dp_accountant_compose(&a, &e2, 100), FEDREC_OK);
    double eps, order;
    assert_int_equal(fedreci_dp_epsilon_classic(&a, 1e-5, &eps, &order), FEDREC_OK);
    assert_true(fabs(eps - 8.509656) < 5e-6);
    assert_true(order == 2.5);
}

/* The Skellam bound (AKL 2021, Corollary 3.6) at a point computed by hand:
 * alpha 2, mu 100, L1 10, L2 5: 2*25/200 + min(135/40000, 30/200) = 0.253375.
 * It is never below the Gaussian of the same variance and tends to it. */
static void test_skellam_rdp(void **state)
{
    (void)state;
    assert_true(fabs(fedreci_dp_rdp_skellam(2, 100, 10, 5) - 0.253375) < 1e-12);
    assert_true(isinf(fedreci_dp_rdp_skellam(2.5, 100, 10, 5)));
    for (double mu = 10; mu < 1e9; mu *= 10) {
        double l2 = 30, l1 = 900;
        for (int al = 2; al < 100; al += 7) {
            double g = al * l2 * l2 / (2 * mu);
            double s = fedreci_dp_rdp_skellam(al, mu, l1, l2);
            assert_true(s >= g);
            if (mu >= 1e7)
                assert_true(s <= g * (1 + 1e-3));
        }
    }
}

/* Subsampling bounds: for the Gaussian, the general Poisson bound (Zhu &
 * Wang) is never below the exact sampled Gaussian RDP and never above the
 * unsampled one; without-replacement (Wang, Balle & Kasiviswanathan) grows
 * with gamma and is capped by the unsampled bound. */
static void test_subsampling_bounds(void **state)
{
    (void)state;
    for (double q = 0.001; q < 0.9; q *= 4) {
        for (int al = 2; al <= 64; al *= 2) {
            double exact;
            assert_int_equal(fedreci_dp_rdp_sampled_gaussian(q, 1.5, al, &exact), FEDREC_OK);
            /* a Skellam event with huge mu has the Gaussian's RDP: compare through it */
            double mu = 1e12, l2 = mu / 1.5 / 1.5;
            l2 = sqrt(mu) / 1.5;
            fedreci_dp_event sk = {.mech = FEDRECI_DP_SKELLAM,
                                   .mu = mu,
                                   .l1 = l2,
                                   .l2 = l2,
                                   .sampling = FEDRECI_DP_POISSON,
                                   .q = q};
            double general;
            assert_int_equal(fedreci_dp_event_rdp(&sk, al, &general), FEDREC_OK);
            assert_true(general >= exact * (1 - 1e-9));
            assert_true(general <= al / (2 * 1.5 * 1.5) * (1 + 1e-6));
        }
    }
    double prev = 0;
    for (double g = 0.01; g <= 1.0; g += 0.11) {
        fedreci_dp_event ev = {.mech = FEDRECI_DP_SKELLAM,
                               .mu = 1e4,
                               .l1 = 100,
                               .l2 = 10,
                               .sampling = FEDRECI_DP_WOR,
                               .q = g};
        double r;
        assert_int_equal(fedreci_dp_event_rdp(&ev, 8, &r), FEDREC_OK);
        assert_true(r >= prev);
        assert_true(r <= fedreci_dp_rdp_skellam(8, 1e4, 100, 10));
        prev = r;
    }
    assert_true(prev > 0);
}

static void test_composition_and_calibration(void **state)
{
    (void)state;
    fedreci_dp_accountant a, b;
    fedreci_dp_accountant_init(&a);
    fedreci_dp_accountant_init(&b);
    fedreci_dp_event ev = {
        .mech = FEDRECI_DP_SKELLAM, .mu = 5e6, .l1 = 1e5, .l2 = 1000, .sampling = FEDRECI_DP_FULL};
    assert_int_equal(fedreci_dp_accountant_compose(&a, &ev, 3), FEDREC_OK);
    for (int i = 0; i < 3; i++)
        assert_int_equal(fedreci_dp_accountant_compose(&b, &ev, 1), FEDREC_OK);
    for (size_t i = 0; i < a.n_orders; i++)
        assert_true(fabs(a.rdp[i] - b.rdp[i]) <= 1e-12 * fabs(a.rdp[i]) || isinf(a.rdp[i]));
    /* calibrate 3 releases to epsilon 2 at 1e-6: within 0.1% of the boundary */
    double mu, e_at, e_below;
    assert_int_equal(fedreci_dp_skellam_calibrate(&ev, 3, 2.0, 1e-6, NULL, &mu), FEDREC_OK);
    ev.mu = mu;
    fedreci_dp_accountant_init(&a);
    assert_int_equal(fedreci_dp_accountant_compose(&a, &ev, 3), FEDREC_OK);
    assert_int_equal(fedreci_dp_accountant_epsilon(&a, 1e-6, &e_at, NULL), FEDREC_OK);
    ev.mu = mu / 1.002;
    fedreci_dp_accountant_init(&a);
    assert_int_equal(fedreci_dp_accountant_compose(&a, &ev, 3), FEDREC_OK);
    assert_int_equal(fedreci_dp_accountant_epsilon(&a, 1e-6, &e_below, NULL), FEDREC_OK);
    assert_true(e_at <= 2.0);
    assert_true(e_below > 2.0);
    /* bad inputs are refused and named */
    assert_int_equal(fedreci_dp_accountant_epsilon(&a, 0, &e_at, NULL), FEDREC_ERR_INVALID);
    ev.mu = -1;
    assert_int_equal(fedreci_dp_accountant_compose(&a, &ev, 1), FEDREC_ERR_INVALID);
    assert_non_null(strstr(fedrec_errmsg(), "Skellam mu"));
}

/* A schedule of shares: all-ones is the equal calibration; (1, 3) puts three
 * times less noise variance on the second release and the two releases
 * together sit on the budget (within the 0.1% bisection); a share out of
 * range is refused and named. */
static void test_calibration_shares(void **state)
{
    (void)state;
    fedreci_dp_event ev = {
        .mech = FEDRECI_DP_SKELLAM, .l1 = 1e5, .l2 = 1000, .sampling = FEDRECI_DP_FULL};
    const double ones[2] = {1, 1}, sh[2] = {1, 3}, bad[2] = {1, 0};
    double mu_eq, mu_ones, mu;
    assert_int_equal(fedreci_dp_skellam_calibrate(&ev, 2, 4.0, 1e-6, NULL, &mu_eq), FEDREC_OK);
    assert_int_equal(fedreci_dp_skellam_calibrate_shares(&ev, ones, 2, 4.0, 1e-6, NULL, &mu_ones),
                     FEDREC_OK);
    assert_true(mu_ones == mu_eq);
    assert_int_equal(fedreci_dp_skellam_calibrate_shares(&ev, sh, 2, 4.0, 1e-6, NULL, &mu),
                     FEDREC_OK);
    /* the first release is noisier, the second less noisy than in the equal split */
    assert_true(mu > mu_eq && mu / 3 < mu_eq);
    double e_at, e_below;
    for (int pass = 0; pass < 2; pass++) {
        double m = pass ? mu / 1.002 : mu;
        fedreci_dp_accountant a;
        fedreci_dp_accountant_init(&a);
        ev.mu = m;
        assert_int_equal(fedreci_dp_accountant_compose(&a, &ev, 1), FEDREC_OK);
        ev.mu = m / 3;
        assert_int_equal(fedreci_dp_accountant_compose(&a, &ev, 1), FEDREC_OK);
        assert_int_equal(fedreci_dp_accountant_epsilon(&a, 1e-6, pass ? &e_below : &e_at, NULL),
                         FEDREC_OK);
    }
    assert_true(e_at <= 4.0);
    assert_true(e_below > 4.0);
    /* the Gaussian part of the bound: a release's RDP is in the ratio of its share */
    ev.mu = mu / 3;
    double r1 = fedreci_dp_rdp_skellam(8, mu, ev.l1, ev.l2),
           r2 = fedreci_dp_rdp_skellam(8, mu / 3, ev.l1, ev.l2);
    assert_true(r2 / r1 > 2.99 && r2 / r1 < 3.01);
    assert_int_equal(fedreci_dp_skellam_calibrate_shares(&ev, bad, 2, 4.0, 1e-6, NULL, &mu),
                     FEDREC_ERR_INVALID);
    assert_non_null(strstr(fedrec_errmsg(), "share of release 2"));
}

/* ---- samplers -------------------------------------------------------------- */

/* Holds the sample mean and variance of xs to 6 standard errors of the
 * definition's mean m, variance v and fourth central moment m4. */
static void check_moments(const double *xs, size_t n, double m, double v, double m4)
{
    double s = 0, s2 = 0;
    for (size_t i = 0; i < n; i++)
        s += xs[i];
    double mean = s / (double)n;
    for (size_t i = 0; i < n; i++)
        s2 += (xs[i] - mean) * (xs[i] - mean);
    double var = s2 / (double)(n - 1);
    assert_true(fabs(mean - m) <= 6 * sqrt(v / (double)n));
    assert_true(fabs(var - v) <= 6 * sqrt((m4 - v * v) / (double)n));
}

/* Chi-square of the counts against pmf (pmf[k] for k in [lo, lo + nk)), with
 * cells of expectation < 5 pooled, held to df + 6 sqrt(2 df). */
static void check_chi2(const int64_t *xs, size_t n, int64_t lo, const double *pmf, size_t nk)
{
    double *cnt = calloc(nk, sizeof *cnt);
    assert_non_null(cnt);
    double outside = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t k = xs[i] - lo;
        if (k < 0 || k >= (int64_t)nk)
            outside++;
        else
            cnt[k]++;
    }
    double chi = 0, pooled_o = outside, pooled_e = 0, mass = 0;
    int df = -1;
    for (size_t k = 0; k < nk; k++) {
        mass += pmf[k];
        double e = pmf[k] * (double)n;
        if (e < 5) {
            pooled_o += cnt[k];
            pooled_e += e;
        } else {
            chi += (cnt[k] - e) * (cnt[k] - e) / e;
            df++;
        }
    }
    pooled_e += (1 - mass) * (double)n;
    if (pooled_e > 0) {
        chi += (pooled_o - pooled_e) * (pooled_o - pooled_e) / pooled_e;
        df++;
    }
    free(cnt);
    assert_true(df >= 3);
    assert_true(chi <= df + 6 * sqrt(2.0 * df));
}

static void poisson_pmf(double lambda, double *pmf, size_t nk)
{
    for (size_t k = 0; k < nk; k++)
        pmf[k] = exp(-lambda + (double)k * log(lambda) - lgamma((double)k + 1));
}

static void test_poisson_sampler(void **state)
{
    (void)state;
    const double lambdas[] = {0.3, 4, 9.99, 10, 37.5, 1000, 1e6};
    int64_t *k = malloc(N_SAMPLES * sizeof *k);
    double *x = malloc(N_SAMPLES * sizeof *x);
    assert_non_null(k);
    assert_non_null(x);
    for (size_t j = 0; j < sizeof lambdas / sizeof lambdas[0]; j++) {
        double l = lambdas[j];
        fedreci_dp_rng r;
        fedreci_dp_rng_init(&r, seed_a, j);
        for (size_t i = 0; i < N_SAMPLES; i++) {
            k[i] = fedreci_dp_poisson(&r, l);
            assert_true(k[i] >= 0);
            x[i] = (double)k[i];
        }
        fedreci_dp_rng_wipe(&r);
        /* Poisson: mean = variance = lambda, fourth central moment lambda + 3 lambda^2 */
        check_moments(x, N_SAMPLES, l, l, l + 3 * l * l);
        if (l < 100) {
            double pmf[200];
            poisson_pmf(l, pmf, 200);
            check_chi2(k, N_SAMPLES, 0, pmf, 200);
        }
    }
    fedreci_dp_rng r;
    fedreci_dp_rng_init(&r, seed_a, 99);
    assert_int_equal(fedreci_dp_poisson(&r, -1), -1);
    assert_int_equal(fedreci_dp_poisson(&r, NAN), -1);
    assert_int_equal(fedreci_dp_poisson(&r, 0), 0);
    free(k);
    free(x);
}

/* Skellam pmf on [-K, K] by convolving the two Poisson(mu / 2) pmfs. */
static void skellam_pmf(double mu, double *pmf, int K)
{
    int M = 4 * K + 400;
    double *p = malloc((size_t)M * sizeof *p);
    assert_non_null(p);
    poisson_pmf(mu / 2, p, (size_t)M);
    for (int k = -K; k <= K; k++) {
        double s = 0;
        for (int j = 0; j < M; j++) {
            int a = j + k;
            if (a >= 0 && a < M)
                s += p[a] * p[j];
        }
        pmf[k + K] = s;
    }
    free(p);
}

static void test_skellam_sampler(void **state)
{
    (void)state;
    const double mus[] = {1, 3, 50, 1e4, 1e8};
    int64_t *k = malloc(N_SAMPLES * sizeof *k);
    double *x = malloc(N_SAMPLES * sizeof *x);
    assert_non_null(k);
    assert_non_null(x);
    for (size_t j = 0; j < sizeof mus / sizeof mus[0]; j++) {
        double mu = mus[j];
        fedreci_dp_rng r;
        fedreci_dp_rng_init(&r, seed_b, j);
        for (size_t i = 0; i < N_SAMPLES; i++) {
            k[i] = fedreci_dp_skellam(&r, mu);
            x[i] = (double)k[i];
        }
        fedreci_dp_rng_wipe(&r);
        /* Sk(mu): mean 0, variance mu, every even cumulant mu: m4 = mu + 3 mu^2 */
        check_moments(x, N_SAMPLES, 0, mu, mu + 3 * mu * mu);
        if (mu <= 50) {
            int K = 60;
            double pmf[121];
            skellam_pmf(mu, pmf, K);
            check_chi2(k, N_SAMPLES, -K, pmf, 121);
            /* tail: P(|X| >= 3 sqrt(mu)) against the pmf, 6 standard errors */
            int t = (int)ceil(3 * sqrt(mu));
            double p = 0, cnt = 0;
            for (int v = -K; v <= K; v++)
                if (abs(v) >= t)
                    p += pmf[v + K];
            for (size_t i = 0; i < N_SAMPLES; i++)
                if (llabs(k[i]) >= t)
                    cnt++;
            double se = sqrt(p * (1 - p) / N_SAMPLES);
            assert_true(fabs(cnt / N_SAMPLES - p) <= 6 * se);
            /* the Chernoff tail used by the no-wrap check is a true bound */
            for (double pp = 1e-2; pp > 1e-9; pp /= 10) {
                double tb = fedreci_dp_skellam_tail(mu, pp);
                double tail = 0;
                for (int v = -K; v <= K; v++)
                    if (fabs((double)v) >= tb)
                        tail += pmf[v + K];
                assert_true(tail <= pp);
            }
        }
    }
    free(k);
    free(x);
    int64_t acc[4] = {0};
    fedreci_dp_rng r;
    fedreci_dp_rng_init(&r, seed_b, 7);
    assert_int_equal(fedreci_dp_skellam_fill(&r, -2, acc, 4), FEDREC_ERR_INVALID);
    assert_non_null(strstr(fedrec_errmsg(), "mu = -2"));
    fedreci_dp_rng_wipe(&r);
}

/* The same seed gives the same stream; another stream id another. */
static void test_rng_reproducible(void **state)
{
    (void)state;
    fedreci_dp_rng a, b, c;
    fedreci_dp_rng_init(&a, seed_a, 1);
    fedreci_dp_rng_init(&b, seed_a, 1);
    fedreci_dp_rng_init(&c, seed_a, 2);
    int same = 1, diff = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = fedreci_dp_rng_u64(&a), y = fedreci_dp_rng_u64(&b), z = fedreci_dp_rng_u64(&c);
        same &= x == y;
        diff += x != z;
    }
    assert_true(same);
    assert_true(diff > 990);
    /* the first word is the ChaCha20 keystream of the seed (nonce LE64(1), block 0) */
    uint8_t nonce[8] = {1}, ks[8];
    crypto_stream_chacha20(ks, 8, nonce, seed_a);
    fedreci_dp_rng_init(&a, seed_a, 1);
    uint64_t w = fedreci_dp_rng_u64(&a), v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | ks[i];
    assert_true(w == v);
}

/* ---- rotation, rounding, no-wrap ------------------------------------------ */

static void test_rotation_orthogonal(void **state)
{
    (void)state;
    size_t d = 1000, D = fedreci_dp_pad_dim(d);
    assert_int_equal(D, 1024);
    float *x = malloc(d * sizeof *x), *y = malloc(d * sizeof *y);
    double *v = malloc(D * sizeof *v), *w = malloc(D * sizeof *w);
    assert_non_null(x);
    assert_non_null(y);
    assert_non_null(v);
    assert_non_null(w);
    fedreci_dp_rng r;
    fedreci_dp_rng_init(&r, seed_b, 3);
    double n2 = 0;
    for (size_t i = 0; i < d; i++) {
        x[i] = (float)(fedreci_dp_rng_uniform(&r) - 0.5);
        n2 += (double)x[i] * x[i];
    }
    fedreci_dp_rng_wipe(&r);
    assert_int_equal(fedreci_dp_rotate(seed_a, x, d, v), FEDREC_OK);
    double m2 = 0;
    for (size_t i = 0; i < D; i++)
        m2 += v[i] * v[i];
    assert_true(fabs(m2 - n2) <= 1e-12 * n2);
    /* a different seed rotates differently */
    assert_int_equal(fedreci_dp_rotate(seed_b, x, d, w), FEDREC_OK);
    size_t differ = 0;
    for (size_t i = 0; i < D; i++)
        differ += fabs(v[i] - w[i]) > 1e-9;
    assert_true(differ > D / 2);
    /* inverse recovers x */
    assert_int_equal(fedreci_dp_unrotate(seed_a, v, D, y, d), FEDREC_OK);
    for (size_t i = 0; i < d; i++)
        assert_true(fabs(y[i] - x[i]) <= 1e-6);
    /* one coordinate's mass is spread evenly: |out_i| = |x_0| / sqrt(D) */
    memset(x, 0, d * sizeof *x);
    x[17] = 3.0f;
    assert_int_equal(fedreci_dp_rotate(seed_a, x, d, v), FEDREC_OK);
    for (size_t i = 0; i < D; i++)
        assert_true(fabs(fabs(v[i]) - 3.0 / 32.0) < 1e-12);
    x[5] = NAN;
    assert_int_equal(fedreci_dp_rotate(seed_a, x, d, v), FEDREC_ERR_INVALID);
    free(x);
    free(y);
    free(v);
    free(w);
}

static void test_conditional_rounding(void **state)
{
    (void)state;
    size_t D = 256;
    double v[256], mean[256] = {0};
    int64_t q[256];
    double sc = 0;
    for (size_t i = 0; i < D; i++) {
        v[i] = 3.0 * sin((double)i) + 0.37;
        sc += v[i] * v[i];
    }
    sc = sqrt(sc);
    double B = fedreci_dp_rounded_l2_bound(sc, D, exp(-0.5));
    assert_true(B >= sc);
    fedreci_dp_rng r;
    fedreci_dp_rng_init(&r, seed_a, 11);
    int T = 4000;
    for (int t = 0; t < T; t++) {
        unsigned tries;
        assert_int_equal(fedreci_dp_round(&r, v, D, B, 100, q, &tries), FEDREC_OK);
        double n2 = 0;
        for (size_t i = 0; i < D; i++) {
            assert_true(q[i] == (int64_t)floor(v[i]) || q[i] == (int64_t)floor(v[i]) + 1);
            n2 += (double)q[i] * q[i];
            mean[i] += (double)q[i];
        }
        assert_true(sqrt(n2) <= B);
    }
    /* nearly unbiased: the conditioning removes at most beta of the mass;
     * 6 standard errors (<= 0.5 / sqrt(T)) plus that shift, bounded by
     * beta / (1 - beta) for a [0, 1] variable. */
    double beta = exp(-0.5);
    for (size_t i = 0; i < D; i++)
        assert_true(fabs(mean[i] / T - v[i]) <= 6 * 0.5 / sqrt((double)T) + beta / (1 - beta));
    /* a bound below the norm cannot be met */
    assert_int_equal(fedreci_dp_round(&r, v, D, sc * 0.5, 5, q, NULL), FEDREC_ERR_RANGE);
    fedreci_dp_rng_wipe(&r);
}

static void test_no_wrap_check(void **state)
{
    (void)state;
    /* the simulator's shape: 4,334 clients, d = 117,648 words, c = sqrt(10) */
    fedreci_dp_config c = {.n = 4334,
                           .min_survivors = 3900,
                           .l2_bound = sqrt(10.0),
                           .scale = 1000,
                           .beta = exp(-0.5),
                           .noise_var = 1e5,
                           .dim = 117648,
                           .ring_bits = 32};
    fedreci_dp_bounds b;
    assert_int_equal(fedreci_dp_check(&c, &b), FEDREC_OK);
    assert_int_equal(b.D, 131072);
    assert_true(b.sum_bound < 2147483648.0);
    assert_true(b.l2_sens >= 1000 * sqrt(10.0));
    assert_true(fabs(b.noise_min - 3900 * 1e5) < 1);
    /* brute force: n clients at the signal bound plus the noise tail fit */
    assert_true(4334.0 * ceil(b.l2_sens) + fedreci_dp_skellam_tail(4334 * 1e5, 0x1p-40 / 131072) <
                2147483648.0);
    /* the boundary: n sqrt(10) s + t reaches 2^31 near s = 156,680 (t, the
     * noise tail, is about 2e5): s = 1.5e5 fits, 1.6e5 could wrap and is
     * refused, naming the parameters */
    c.scale = 1.5e5;
    assert_int_equal(fedreci_dp_check(&c, &b), FEDREC_OK);
    c.scale = 1.6e5;
    assert_int_equal(fedreci_dp_check(&c, &b), FEDREC_ERR_RANGE);
    const char *m = fedrec_errmsg();
    assert_non_null(strstr(m, "could wrap"));
    assert_non_null(strstr(m, "clients n = 4334"));
    assert_non_null(strstr(m, "scale s = 160000"));
    assert_non_null(strstr(m, "ring bits b = 32"));
    /* signal and noise together: at s = 1e5 the signal bound is 1.37e9 and
     * the tail of 4,334 clients' noise at mu_c = 2e12 is about 9e8; each
     * fits alone, the sum could wrap */
    c.scale = 1e5;
    assert_int_equal(fedreci_dp_check(&c, &b), FEDREC_OK);
    c.scale = 1000;
    c.noise_var = 2e12;
    assert_int_equal(fedreci_dp_check(&c, &b), FEDREC_OK);
    c.scale = 1e5;
    assert_int_equal(fedreci_dp_check(&c, &b), FEDREC_ERR_RANGE);
    c.scale = 1000;
    /* and a small ring */
    c.noise_var = 1e5;
    c.ring_bits = 16;
    assert_int_equal(fedreci_dp_check(&c, &b), FEDREC_ERR_RANGE);
    c.ring_bits = 32;
    c.min_survivors = 5000;
    assert_int_equal(fedreci_dp_check(&c, &b), FEDREC_ERR_INVALID);
    assert_non_null(strstr(fedrec_errmsg(), "min_survivors"));
}

/* ---- the DP-ALS contribution and item step ---------------------------------- */

/* |v| <= sqrt(R^2 + g^2) for every shopper, whatever x_u and the basket. */
static void test_dpals_bound(void **state)
{
    (void)state;
    fedreci_dpals p = {.n_items = 300, .k = 8, .row_bound = 3, .gram_weight = 1};
    size_t d = fedreci_dpals_dim(&p);
    assert_int_equal(d, 300 * 8 + 36);
    float *v = malloc(d * sizeof *v);
    uint32_t items[300];
    assert_non_null(v);
    fedreci_dp_rng r;
    fedreci_dp_rng_init(&r, seed_a, 21);
    double worst = 0;
    for (int t = 0; t < 200; t++) {
        uint32_t n = (uint32_t)(fedreci_dp_rng_u64(&r) % 301);
        for (uint32_t i = 0; i < n; i++)
            items[i] = i;
        float xu[8];
        double scale = pow(10.0, 2 * fedreci_dp_rng_uniform(&r) - 1);
        for (int j = 0; j < 8; j++)
            xu[j] = (float)(scale * (fedreci_dp_rng_uniform(&r) - 0.5));
        fedreci_mf_user u = {items, NULL, n};
        assert_int_equal(fedreci_dpals_encode(&p, xu, &u, v), FEDREC_OK);
        double n2 = 0;
        for (size_t i = 0; i < d; i++)
            n2 += (double)v[i] * v[i];
        if (sqrt(n2) > worst)
            worst = sqrt(n2);
        assert_true(sqrt(n2) <= fedreci_dpals_l2_bound(&p));
    }
    /* the bound is tight: a shopper with >= 9 items and |x_u| >= 1 reaches it */
    assert_true(worst > 0.999 * sqrt(10.0));
    items[0] = 5;
    items[1] = 5;
    fedreci_mf_user bad = {items, NULL, 2};
    float xu[8] = {1};
    assert_int_equal(fedreci_dpals_encode(&p, xu, &bad, v), FEDREC_ERR_INVALID);
    fedreci_dp_rng_wipe(&r);
    free(v);
}

/* The biased solve (core/dp/dpals.h) returns the minimiser of
 *   sum_i c_ui (p_ui - y_i[0..k) . x - a beta_i)^2 + lambda |x|^2
 * over all items: the objective's gradient, summed here item by item in
 * double, vanishes at its x; with a = 0 it is fedreci_mf_solve_user on the
 * first k columns. The bias vector (x clipped to sqrt(1 - a^2), a) has norm
 * at most 1 and keeps a short x. */
static void test_dpals_solve_biased(void **state)
{
    (void)state;
    enum { NI = 40, KB = 6, KF = 5 };
    float y[NI * KB], yk[NI * KF], gram[KB * KB], gk[KF * KF], work[KF * KF], x[KF], x0[KF];
    fedreci_dp_rng r;
    fedreci_dp_rng_init(&r, seed_b, 77);
    for (int i = 0; i < NI * KB; i++)
        y[i] = (float)(fedreci_dp_rng_uniform(&r) - 0.5);
    for (int i = 0; i < NI; i++)
        for (int j = 0; j < KF; j++)
            yk[i * KF + j] = y[i * KB + j];
    fedreci_mf_gram(y, NI, KB, gram);
    fedreci_mf_gram(yk, NI, KF, gk);
    uint32_t items[7] = {1, 4, 9, 10, 22, 31, 39};
    float conf[7] = {1, 2.5f, 1, 4, 1.5f, 1, 7};
    fedreci_mf_user u = {items, conf, 7};
    const double a = 0.4, lambda = 0.1;
    assert_int_equal(fedreci_dpals_solve_biased(y, gram, NI, KB, a, lambda, &u, work, x),
                     FEDREC_OK);
    double grad[KF] = {0}, xmax = 0;
    for (int i = 0; i < NI; i++) {
        double c = 1, p = 0;
        for (int t = 0; t < 7; t++)
            if (items[t] == (uint32_t)i)
                c = conf[t], p = 1;
        double pred = a * y[i * KB + KF];
        for (int j = 0; j < KF; j++)
            pred += (double)y[i * KB + j] * x[j];
        for (int j = 0; j < KF; j++)
            grad[j] += c * (pred - p) * y[i * KB + j];
    }
    for (int j = 0; j < KF; j++) {
        grad[j] += lambda * x[j];
        xmax = fmax(xmax, fabs(x[j]));
        assert_true(fabs(grad[j]) < 1e-4);
    }
    assert_true(xmax > 0.05); /* not the trivial answer */
    /* the bias moves the solution: a = 0 differs, and equals the plain solve */
    fedreci_mf_step *w = NULL;
    assert_int_equal(fedreci_mf_step_create(&w, NI, KF), FEDREC_OK);
    assert_int_equal(fedreci_mf_solve_user(w, yk, gk, NI, KF, (float)lambda, &u, x0), FEDREC_OK);
    float xa0[KF];
    assert_int_equal(fedreci_dpals_solve_biased(y, gram, NI, KB, 0, lambda, &u, work, xa0),
                     FEDREC_OK);
    double moved = 0;
    for (int j = 0; j < KF; j++) {
        assert_true(fabs(xa0[j] - x0[j]) < 1e-4 * (1 + fabs(x0[j])));
        moved = fmax(moved, fabs(x[j] - x0[j]));
    }
    assert_true(moved > 1e-3);
    fedreci_mf_step_destroy(w);
    /* bad input, named */
    assert_int_equal(fedreci_dpals_solve_biased(y, gram, NI, KB, 1.0, lambda, &u, work, x),
                     FEDREC_ERR_INVALID);
    assert_int_equal(fedreci_dpals_solve_biased(y, gram, NI, 1, a, lambda, &u, work, x),
                     FEDREC_ERR_INVALID);
    uint32_t unsorted[2] = {4, 1};
    fedreci_mf_user bad = {unsorted, conf, 2};
    assert_int_equal(fedreci_dpals_solve_biased(y, gram, NI, KB, a, lambda, &bad, work, x),
                     FEDREC_ERR_INVALID);
    uint32_t far[1] = {NI};
    fedreci_mf_user out = {far, conf, 1};
    assert_int_equal(fedreci_dpals_solve_biased(y, gram, NI, KB, a, lambda, &out, work, x),
                     FEDREC_ERR_INVALID);
    /* the contribution's vector */
    float xl[KF] = {2, 0, 0, 0, 0}, xs[KF] = {0.1f, 0.2f, 0, 0, 0}, xb[KB];
    fedreci_dpals_bias_vector(xl, KB, 0.6, xb);
    assert_true(fabs(xb[0] - 0.8) < 1e-6 && xb[1] == 0 && fabs(xb[KF] - 0.6) < 1e-7);
    fedreci_dpals_bias_vector(xs, KB, 0.6, xb);
    assert_true(xb[0] == xs[0] && xb[1] == xs[1] && fabs(xb[KF] - 0.6) < 1e-7);
    fedreci_dp_rng_wipe(&r);
}

/* Solves (A + lambda I) y = b for a small SPD A by Gaussian elimination. */
static void solve_small(const double *A, double lambda, const double *b, double *y, int k)
{
    double m[8][9];
    for (int i = 0; i < k; i++) {
        for (int j = 0; j < k; j++)
            m[i][j] = A[i * k + j] + (i == j ? lambda : 0);
        m[i][k] = b[i];
    }
    for (int c = 0; c < k; c++)
        for (int r = c + 1; r < k; r++) {
            double f = m[r][c] / m[c][c];
            for (int j = c; j <= k; j++)
                m[r][j] -= f * m[c][j];
        }
    for (int i = k - 1; i >= 0; i--) {
        double s = m[i][k];
        for (int j = i + 1; j < k; j++)
            s -= m[i][j] * y[j];
        y[i] = s / m[i][i];
    }
}

/* Without noise the item step is the ALS item step on the clipped factors
 * and normalised binary rows, computed here directly. With shrinkage, a row
 * whose squared norm is below k sigma^2 becomes 0. */
static void test_dpals_item_step(void **state)
{
    (void)state;
    enum { NI = 40, K = 6, NU = 60 };
    fedreci_dpals p = {.n_items = NI, .k = K, .row_bound = 2, .gram_weight = 0.5};
    size_t d = fedreci_dpals_dim(&p);
    double *sum = calloc(d, sizeof *sum), G[K * K] = {0}, B[NI][K] = {{0}};
    float *v = malloc(d * sizeof *v), *y = malloc(NI * K * sizeof *y);
    assert_non_null(sum);
    assert_non_null(v);
    assert_non_null(y);
    fedreci_dp_rng r;
    fedreci_dp_rng_init(&r, seed_b, 22);
    for (int u = 0; u < NU; u++) {
        uint32_t items[NI], n = 0;
        for (uint32_t i = 0; i < NI; i++)
            if (fedreci_dp_rng_uniform(&r) < 0.2)
                items[n++] = i;
        float xu[K];
        double x[K], n2 = 0;
        for (int j = 0; j < K; j++) {
            xu[j] = (float)(2 * (fedreci_dp_rng_uniform(&r) - 0.5));
            n2 += (double)xu[j] * xu[j];
        }
        for (int j = 0; j < K; j++)
            x[j] = xu[j] * (n2 > 1 ? 1 / sqrt(n2) : 1);
        fedreci_mf_user us = {items, NULL, n};
        assert_int_equal(fedreci_dpals_encode(&p, xu, &us, v), FEDREC_OK);
        for (size_t i = 0; i < d; i++)
            sum[i] += v[i];
        double w = n ? fmin(1, 2 / sqrt((double)n)) : 0;
        for (int a = 0; a < K; a++)
            for (int b = 0; b < K; b++)
                G[a * K + b] += x[a] * x[b];
        for (uint32_t t = 0; t < n; t++)
            for (int j = 0; j < K; j++)
                B[items[t]][j] += w * x[j];
    }
    fedreci_dpals_step st = {.lambda = 0.1, .noise_std = 0, .shrink = 1, .floor_frac = 0};
    assert_int_equal(fedreci_dpals_item_step(&p, sum, &st, y, NULL), FEDREC_OK);
    for (int i = 0; i < NI; i++) {
        double ref[K];
        solve_small(G, 0.1, B[i], ref, K);
        for (int j = 0; j < K; j++)
            assert_true(fabs(y[i * K + j] - ref[j]) <= 1e-4 * (1 + fabs(ref[j])));
    }
    /* shrinkage: sigma so large that every row is below k sigma^2 */
    uint32_t shrunk;
    st.noise_std = 1e3;
    assert_int_equal(fedreci_dpals_item_step(&p, sum, &st, y, &shrunk), FEDREC_OK);
    assert_int_equal(shrunk, NI);
    for (int i = 0; i < NI * K; i++)
        assert_true(y[i] == 0);
    st.noise_std = 0;
    st.floor_frac = 1.5;
    assert_int_equal(fedreci_dpals_item_step(&p, sum, &st, y, NULL), FEDREC_ERR_INVALID);
    st.floor_frac = 0;
    sum[3] = NAN;
    assert_int_equal(fedreci_dpals_item_step(&p, sum, &st, y, NULL), FEDREC_ERR_INVALID);
    fedreci_dp_rng_wipe(&r);
    free(sum);
    free(v);
    free(y);
}

/* A noised Gram sum that is not positive definite: G = Q diag(10, 1, -3) Q^T
 * (Q a Householder reflection). With noise sigma = 1 and g = 0.5 the floor
 * is sqrt(2k) sigma / g = sqrt(6) / 0.5; the item step must equal the ALS
 * step on Q diag(10, f, f) Q^T, computed here directly; without noise the
 * negative eigenvalue goes to 0 (diag(10, 1, 0)); with a floor fraction of
 * 1 the floor is the trace, 8. */
static void test_dpals_gram_floor(void **state)
{
    (void)state;
    enum { NI = 4, K = 3 };
    fedreci_dpals p = {.n_items = NI, .k = K, .row_bound = 1, .gram_weight = 0.5};
    size_t d = fedreci_dpals_dim(&p);
    double sum[NI * K + K * (K + 1) / 2], Q[K * K], G[K * K];
    const double vh[K] = {1, 2, 2}, ev[K] = {10, 1, -3};
    assert_int_equal(d, sizeof sum / sizeof sum[0]);
    for (int a = 0; a < K; a++)
        for (int b = 0; b < K; b++)
            Q[a * K + b] = (a == b) - 2.0 / 9 * vh[a] * vh[b];
    for (int a = 0; a < K; a++)
        for (int b = 0; b < K; b++) {
            G[a * K + b] = 0;
            for (int j = 0; j < K; j++)
                G[a * K + b] += Q[a * K + j] * ev[j] * Q[b * K + j];
        }
    for (int i = 0; i < NI * K; i++)
        sum[i] = 0.25 * (i % 5) - 0.5;
    size_t t = NI * K;
    for (int a = 0; a < K; a++)
        for (int b = a; b < K; b++)
            sum[t++] = a == b ? 0.5 * G[a * K + a] : 0.5 * sqrt(2.0) * G[a * K + b];
    double fl = sqrt(6.0) / 0.5;
    assert_true(fabs(fedreci_dpals_gram_floor(&p, G, 1, 0) - fl) < 1e-12);
    assert_true(fabs(fedreci_dpals_gram_floor(&p, G, 1, 1) - 8) < 1e-12);
    const struct {
        double sigma, phi, e1, e2;
    } cases[] = {{1, 0, fl, fl}, {0, 0, 1, 0}, {1, 1, 8, 8}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        double F[K * K], want[K] = {10, cases[c].e1, cases[c].e2};
        for (int a = 0; a < K; a++)
            for (int b = 0; b < K; b++) {
                F[a * K + b] = 0;
                for (int j = 0; j < K; j++)
                    F[a * K + b] += Q[a * K + j] * want[j] * Q[b * K + j];
            }
        float y[NI * K];
        fedreci_dpals_step st = {
            .lambda = 0.1, .noise_std = cases[c].sigma, .shrink = 0, .floor_frac = cases[c].phi};
        assert_int_equal(fedreci_dpals_item_step(&p, sum, &st, y, NULL), FEDREC_OK);
        for (int i = 0; i < NI; i++) {
            double ref[K];
            solve_small(F, 0.1, sum + i * K, ref, K);
            for (int j = 0; j < K; j++)
                assert_true(fabs(y[i * K + j] - ref[j]) <= 1e-5 * (1 + fabs(ref[j])));
        }
    }
}

/* ---- one round's parameters (core/dp/round.h) ------------------------------- */

/* The plan meets the budget, the client's check recomputes the claimed
 * epsilon, and refuses parameters whose noise is too small for it, an L2
 * bound that is not the contribution's, and a cohort whose sum could wrap. */
static void test_round_plan_verify(void **state)
{
    (void)state;
    fedreci_dp_plan pl = {.epsilon = 2,
                          .delta = 1e-6,
                          .releases = 3,
                          .cohort = 50,
                          .min_survivors = 40,
                          .n_items = 100,
                          .k = 4,
                          .row_bound = 3,
                          .gram_weight = 1,
                          .lambda = 0.1};
    fedreci_dp_round_params p;
    assert_int_equal(fedreci_dp_round_plan(&pl, NULL, &p), FEDREC_OK);
    assert_true(fabs(p.l2_bound - sqrt(10.0)) < 1e-12);
    assert_true(fabs(p.scale * p.l2_bound - 8192) < 1e-9);
    fedreci_dp_bounds b;
    fedreci_dp_event ev;
    double eps = 0;
    assert_int_equal(fedreci_dp_round_verify(&p, 50, 100, 4, &b, &ev, &eps), FEDREC_OK);
    assert_true(fabs(eps - p.epsilon_round) < 1e-9);
    assert_true(fabs(ev.mu - 40 * p.noise_var) < 1e-6 * ev.mu);
    /* three releases cost the budget (calibrated to 0.1%), four exceed it */
    fedreci_dp_accountant a;
    fedreci_dp_accountant_init(&a);
    double e3 = 0, e4 = 0;
    assert_int_equal(fedreci_dp_accountant_compose(&a, &ev, 3), FEDREC_OK);
    assert_int_equal(fedreci_dp_accountant_epsilon(&a, 1e-6, &e3, NULL), FEDREC_OK);
    assert_int_equal(fedreci_dp_accountant_compose(&a, &ev, 1), FEDREC_OK);
    assert_int_equal(fedreci_dp_accountant_epsilon(&a, 1e-6, &e4, NULL), FEDREC_OK);
    assert_true(e3 <= 2.0 && e3 > 1.99);
    assert_true(e4 > 2.0);
    /* noise too small for the claim */
    fedreci_dp_round_params q = p;
    q.noise_var *= 0.8;
    assert_int_equal(fedreci_dp_round_verify(&q, 50, 100, 4, NULL, NULL, NULL), FEDREC_ERR_INVALID);
    assert_non_null(strstr(fedrec_errmsg(), "too small for the claimed epsilon"));
    q = p;
    q.epsilon_round *= 0.9; /* the same noise, a smaller claim */
    assert_int_equal(fedreci_dp_round_verify(&q, 50, 100, 4, NULL, NULL, NULL), FEDREC_ERR_INVALID);
    /* an L2 bound that is not sqrt(R^2 + g^2) */
    q = p;
    q.l2_bound = 1;
    assert_int_equal(fedreci_dp_round_verify(&q, 50, 100, 4, NULL, NULL, NULL), FEDREC_ERR_INVALID);
    assert_non_null(strstr(fedrec_errmsg(), "sqrt(R^2 + g^2)"));
    /* more survivors required than invited */
    assert_int_equal(fedreci_dp_round_verify(&p, 30, 100, 4, NULL, NULL, NULL), FEDREC_ERR_INVALID);
    /* a cohort whose noised sum could wrap 2^31: n B > 2^31 at n = 300,000 */
    assert_int_equal(fedreci_dp_round_verify(&p, 300000, 100, 4, NULL, NULL, NULL),
                     FEDREC_ERR_RANGE);
    assert_non_null(strstr(fedrec_errmsg(), "could wrap"));
    assert_non_null(strstr(fedrec_errmsg(), "clients n = 300000"));
    pl.cohort = 300000;
    pl.min_survivors = 250000;
    assert_int_equal(fedreci_dp_round_plan(&pl, NULL, &q), FEDREC_ERR_RANGE);
    assert_non_null(strstr(fedrec_errmsg(), "scale s = "));
    /* a spent budget cannot be planned for */
    pl.cohort = 50;
    pl.min_survivors = 40;
    assert_int_equal(fedreci_dp_round_plan(&pl, &a, &q), FEDREC_ERR_RANGE);
}

/* 30 clients encode bounded contributions; the sum of their words mod 2^32
 * (what SecAgg unmasks) decodes to the sum of the contributions plus noise
 * whose variance per coordinate is that of 30 clients' Skellam noise
 * (rotation is orthogonal: the decoded noise has the same variance). */
static void test_round_encode_decode(void **state)
{
    (void)state;
    enum { N = 30, NI = 100, K = 4 };
    fedreci_dp_plan pl = {.epsilon = 4,
                          .delta = 1e-6,
                          .releases = 1,
                          .cohort = N,
                          .min_survivors = 24,
                          .n_items = NI,
                          .k = K,
                          .row_bound = 3,
                          .gram_weight = 1,
                          .lambda = 0.1};
    fedreci_dp_round_params p;
    fedreci_dp_bounds b;
    assert_int_equal(fedreci_dp_round_plan(&pl, NULL, &p), FEDREC_OK);
    memcpy(p.rotation_seed, seed_b, sizeof p.rotation_seed);
    assert_int_equal(fedreci_dp_round_verify(&p, N, NI, K, &b, NULL, NULL), FEDREC_OK);
    fedreci_dpals a = {NI, K, 3, 1};
    size_t d = fedreci_dpals_dim(&a), D = b.D;
    float *v = malloc(d * sizeof *v), *words = malloc(D * sizeof *words);
    double *truth = calloc(d, sizeof *truth), *dec = malloc(d * sizeof *dec);
    uint32_t *sum = calloc(D, sizeof *sum);
    assert_true(v && words && truth && dec && sum);
    fedreci_dp_rng r;
    fedreci_dp_rng_init(&r, seed_a, 77);
    for (int c = 0; c < N; c++) {
        float xu[K];
        uint32_t items[5];
        float conf[5] = {1, 1, 1, 1, 1};
        for (int t = 0; t < K; t++)
            xu[t] = (float)(fedreci_dp_rng_uniform(&r) - 0.5);
        for (int t = 0; t < 5; t++)
            items[t] = (uint32_t)(t * 20 + (c % 20));
        fedreci_mf_user u = {items, conf, 5};
        assert_int_equal(fedreci_dpals_encode(&a, xu, &u, v), FEDREC_OK);
        for (size_t i = 0; i < d; i++)
            truth[i] += v[i];
        assert_int_equal(fedreci_dp_round_encode(&p, &b, &r, v, d, words), FEDREC_OK);
        for (size_t i = 0; i < D; i++) {
            assert_true(fabsf(words[i]) < (float)b.client_bound);
            assert_true(words[i] == floorf(words[i]));
            sum[i] += (uint32_t)(int32_t)words[i]; /* mod 2^32 */
        }
    }
    assert_int_equal(fedreci_dp_round_decode(&p, sum, D, dec, d), FEDREC_OK);
    double var = N * p.noise_var / (p.scale * p.scale), s1 = 0, s2 = 0;
    for (size_t i = 0; i < d; i++) {
        double err = dec[i] - truth[i];
        assert_true(fabs(err) < 6 * sqrt(var) + 1e-3);
        s1 += err;
        s2 += err * err;
    }
    double m = s1 / d, vhat = s2 / d - m * m;
    /* mean 0 and variance N mu_c / s^2 (plus rounding, < 1% here) within
     * 6 standard errors */
    assert_true(fabs(m) < 6 * sqrt(var / d));
    assert_true(vhat > var * (1 - 6 * sqrt(2.0 / d)) && vhat < var * (1.01 + 6 * sqrt(2.0 / d)));
    fedreci_dp_rng_wipe(&r);
    free(v);
    free(words);
    free(truth);
    free(dec);
    free(sum);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sampled_gaussian_reference),
        cmocka_unit_test(test_sampled_gaussian_integral),
        cmocka_unit_test(test_conversion_pure_reference),
        cmocka_unit_test(test_conversion_gaussian_reference),
        cmocka_unit_test(test_composition_classic_reference),
        cmocka_unit_test(test_skellam_rdp),
        cmocka_unit_test(test_subsampling_bounds),
        cmocka_unit_test(test_composition_and_calibration),
        cmocka_unit_test(test_calibration_shares),
        cmocka_unit_test(test_poisson_sampler),
        cmocka_unit_test(test_skellam_sampler),
        cmocka_unit_test(test_rng_reproducible),
        cmocka_unit_test(test_rotation_orthogonal),
        cmocka_unit_test(test_conditional_rounding),
        cmocka_unit_test(test_no_wrap_check),
        cmocka_unit_test(test_dpals_bound),
        cmocka_unit_test(test_dpals_item_step),
        cmocka_unit_test(test_dpals_gram_floor),
        cmocka_unit_test(test_dpals_solve_biased),
        cmocka_unit_test(test_round_plan_verify),
        cmocka_unit_test(test_round_encode_decode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
