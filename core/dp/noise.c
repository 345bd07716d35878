/* The ChaCha20 keystream reader and the Poisson / Skellam samplers (see noise.h). */
#include "core/dp/noise.h"

#include <math.h>
#include <string.h>

#include <sodium.h>

#include "core/err.h"

#define POISSON_MAX 1099511627776.0 /* 2^40 */

static void refill(fedreci_dp_rng *r)
{
    memset(r->buf, 0, sizeof r->buf);
    crypto_stream_chacha20_xor_ic(r->buf, r->buf, sizeof r->buf, r->nonce, r->block, r->key);
    r->block += sizeof r->buf / 64;
    r->pos = 0;
}

void fedreci_dp_rng_init(fedreci_dp_rng *r, const uint8_t seed[FEDRECI_DP_SEED_BYTES],
                         uint64_t stream)
{
    memcpy(r->key, seed, FEDRECI_DP_SEED_BYTES);
    for (int i = 0; i < 8; i++)
        r->nonce[i] = (uint8_t)(stream >> (8 * i));
    r->block = 0;
    refill(r);
}

void fedreci_dp_rng_wipe(fedreci_dp_rng *r)
{
    if (r)
        sodium_memzero(r, sizeof *r);
}

uint64_t fedreci_dp_rng_u64(fedreci_dp_rng *r)
{
    if (r->pos + 8 > sizeof r->buf)
        refill(r);
    uint64_t w = 0;
    for (int i = 7; i >= 0; i--)
        w = (w << 8) | r->buf[r->pos + (size_t)i];
    r->pos += 8;
    return w;
}

double fedreci_dp_rng_uniform(fedreci_dp_rng *r)
{
    return ((double)(fedreci_dp_rng_u64(r) >> 11) + 0.5) * 0x1p-53;
}

/* log(k!) without lgamma (glibc's lgamma writes the global signgam, a data
 * race between threads): a direct sum for k < 16, else the Stirling series
 * for log Gamma(k + 1) to the 1/x^7 term (|error| < 1e-16 for x >= 17). */
static double log_factorial(int64_t k)
{
    if (k < 16) {
        double s = 0;
        for (int64_t i = 2; i <= k; i++)
            s += log((double)i);
        return s;
    }
    double x = (double)k + 1.0, x2 = x * x;
    return (x - 0.5) * log(x) - x + 0.91893853320467274178 /* log(2 pi) / 2 */ +
           (1.0 / 12.0 - (1.0 / 360.0 - (1.0 / 1260.0 - 1.0 / (1680.0 * x2)) / x2) / x2) / x;
}

/* Inversion by sequential search (lambda < 10): the k with
 * F(k - 1) < u <= F(k). The pmf is summed in double; if rounding leaves the
 * cumulative sum short of u far in the tail (k > 200, probability below
 * 1e-150 for lambda < 10), the draw is repeated. */
static int64_t poisson_small(fedreci_dp_rng *r, double lambda)
{
    double e = exp(-lambda);
    for (;;) {
        double u = fedreci_dp_rng_uniform(r), p = e, s = e;
        int64_t k = 0;
        while (u > s && k < 200) {
            k++;
            p *= lambda / (double)k;
            s += p;
        }
        if (u <= s)
            return k;
    }
}

/* PTRS: transformed rejection with squeeze (Hormann 1993, algorithm PTRS),
 * for lambda >= 10. Constants are the paper's. */
static int64_t poisson_ptrs(fedreci_dp_rng *r, double lambda)
{
    double slam = sqrt(lambda), loglam = log(lambda);
    double b = 0.931 + 2.53 * slam;
    double a = -0.059 + 0.02483 * b;
    double inv_alpha = 1.1239 + 1.1328 / (b - 3.4);
    double v_r = 0.9277 - 3.6224 / (b - 2.0);
    for (;;) {
        double u = fedreci_dp_rng_uniform(r) - 0.5;
        double v = fedreci_dp_rng_uniform(r);
        double us = 0.5 - fabs(u);
        double kf = floor((2.0 * a / us + b) * u + lambda + 0.43);
        if (us >= 0.07 && v <= v_r)
            return (int64_t)kf;
        if (kf < 0 || (us < 0.013 && v > us))
            continue;
        int64_t k = (int64_t)kf;
        if (log(v) + log(inv_alpha) - log(a / (us * us) + b) <=
            -lambda + kf * loglam - log_factorial(k))
            return k;
    }
}

int64_t fedreci_dp_poisson(fedreci_dp_rng *r, double lambda)
{
    if (!(lambda >= 0) || !(lambda <= POISSON_MAX))
        return -1;
    if (lambda == 0)
        return 0;
    return lambda < 10 ? poisson_small(r, lambda) : poisson_ptrs(r, lambda);
}

int64_t fedreci_dp_skellam(fedreci_dp_rng *r, double mu)
{
    if (!(mu >= 0) || !(mu <= 2 * POISSON_MAX) || mu == 0)
        return 0;
    return fedreci_dp_poisson(r, mu / 2) - fedreci_dp_poisson(r, mu / 2);
}

fedrec_err fedreci_dp_skellam_fill(fedreci_dp_rng *r, double mu, int64_t *out, size_t n)
{
    if (!(mu >= 0) || !(mu <= 2 * POISSON_MAX))
        return fedreci_error(FEDREC_ERR_INVALID,
                             "dp noise: Skellam variance mu = %g, need a finite value in [0, 2^41]",
                             mu);
    if (mu == 0)
        return FEDREC_OK;
    for (size_t i = 0; i < n; i++)
        out[i] += fedreci_dp_skellam(r, mu);
    return FEDREC_OK;
}

/* mu * h(t / mu), the Chernoff exponent of P(Sk(mu) >= t). */
static double chernoff_exponent(double mu, double t)
{
    double u = t / mu;
    return mu * (u * asinh(u) - sqrt(1.0 + u * u) + 1.0);
}

double fedreci_dp_skellam_tail(double mu, double p)
{
    if (!(mu >= 0) || !isfinite(mu) || !(p > 0) || !(p < 1))
        return -1;
    if (mu == 0)
        return 0;
    double target = log(2.0 / p);
    double lo = 0, hi = 1;
    while (chernoff_exponent(mu, hi) < target)
        hi *= 2;
    for (int i = 0; i < 200 && hi - lo > 0.5; i++) {
        double mid = 0.5 * (lo + hi);
        if (chernoff_exponent(mu, mid) < target)
            lo = mid;
        else
            hi = mid;
    }
    return ceil(hi);
}
