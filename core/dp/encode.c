/* Randomized Hadamard rotation, conditional rounding, the no-wrap check (see encode.h). */
#include "core/dp/encode.h"

#include <math.h>
#include <string.h>

#include "core/err.h"

#define WRAP_P 0x1p-40 /* allowed probability of a wrap per round */

size_t fedreci_dp_pad_dim(size_t d)
{
    if (d == 0 || d > FEDRECI_DP_MAX_DIM)
        return 0;
    size_t D = 1;
    while (D < d)
        D <<= 1;
    return D;
}

void fedreci_dp_fwht(double *v, size_t n)
{
    for (size_t h = 1; h < n; h <<= 1) {
        for (size_t i = 0; i < n; i += 2 * h) {
            double *a = v + i, *b = v + i + h;
            for (size_t j = 0; j < h; j++) {
                double x = a[j], y = b[j];
                a[j] = x + y;
                b[j] = x - y;
            }
        }
    }
    double f = 1.0 / sqrt((double)n);
    for (size_t i = 0; i < n; i++)
        v[i] *= f;
}

/* v[i] = -v[i] where sign bit i is set (i < n). */
static void apply_signs(const uint8_t seed[FEDRECI_DP_SEED_BYTES], double *v, size_t n)
{
    fedreci_dp_rng r;
    fedreci_dp_rng_init(&r, seed, 0);
    for (size_t i = 0; i < n; i += 64) {
        uint64_t w = fedreci_dp_rng_u64(&r);
        size_t m = n - i < 64 ? n - i : 64;
        for (size_t j = 0; j < m; j++)
            if ((w >> j) & 1u)
                v[i + j] = -v[i + j];
    }
    fedreci_dp_rng_wipe(&r);
}

fedrec_err fedreci_dp_rotate(const uint8_t seed[FEDRECI_DP_SEED_BYTES], const float *x, size_t d,
                             double *out)
{
    size_t D = fedreci_dp_pad_dim(d);
    if (!D || !seed || !x || !out)
        return fedreci_error(FEDREC_ERR_INVALID,
                             "dp rotate: d = %zu (need 1..%u) or a NULL argument", d,
                             FEDRECI_DP_MAX_DIM);
    for (size_t i = 0; i < d; i++) {
        if (!isfinite(x[i]))
            return fedreci_error(FEDREC_ERR_INVALID, "dp rotate: entry %zu is %g, need finite", i,
                                 (double)x[i]);
        out[i] = x[i];
    }
    for (size_t i = d; i < D; i++)
        out[i] = 0;
    apply_signs(seed, out, D);
    fedreci_dp_fwht(out, D);
    return FEDREC_OK;
}

fedrec_err fedreci_dp_unrotate(const uint8_t seed[FEDRECI_DP_SEED_BYTES], double *v, size_t D,
                               float *x, size_t d)
{
    if (!seed || !v || !x || fedreci_dp_pad_dim(d) != D)
        return fedreci_error(FEDREC_ERR_INVALID,
                             "dp unrotate: D = %zu is not the padded length of d = %zu", D, d);
    fedreci_dp_fwht(v, D);
    apply_signs(seed, v, D);
    for (size_t i = 0; i < d; i++)
        x[i] = (float)v[i];
    return FEDREC_OK;
}

double fedreci_dp_rounded_l2_bound(double sc, size_t D, double beta)
{
    double sd = sqrt((double)D);
    double a = sc + sd;
    double b2 = sc * sc + (double)D / 4.0 + sqrt(2.0 * log(1.0 / beta)) * (sc + sd / 2.0);
    double b = sqrt(b2);
    return a < b ? a : b;
}

fedrec_err fedreci_dp_round(fedreci_dp_rng *r, const double *v, size_t D, double bound,
                            unsigned max_tries, int64_t *out, unsigned *tries)
{
    for (size_t i = 0; i < D; i++)
        if (!isfinite(v[i]) || fabs(v[i]) >= 0x1p52)
            return fedreci_error(FEDREC_ERR_INVALID,
                                 "dp rounding: entry %zu is %g, need finite with |v| < 2^52", i,
                                 v[i]);
    double b2 = bound * bound;
    for (unsigned t = 1; t <= max_tries; t++) {
        double norm2 = 0;
        for (size_t i = 0; i < D; i++) {
            double f = floor(v[i]);
            double q = f + (fedreci_dp_rng_uniform(r) < v[i] - f ? 1.0 : 0.0);
            out[i] = (int64_t)q;
            norm2 += q * q;
        }
        if (norm2 <= b2) {
            if (tries)
                *tries = t;
            return FEDREC_OK;
        }
    }
    return fedreci_error(FEDREC_ERR_RANGE,
                         "dp rounding: no rounding of %u tries had L2 norm <= %g (the input "
                         "exceeds its stated L2 bound?)",
                         max_tries, bound);
}

fedrec_err fedreci_dp_check(const fedreci_dp_config *c, fedreci_dp_bounds *out)
{
    if (!c)
        return fedreci_error(FEDREC_ERR_INVALID, "dp config: NULL");
    if (c->n < 1)
        return fedreci_error(FEDREC_ERR_INVALID, "dp config: clients n = %u, need >= 1", c->n);
    if (c->min_survivors < 1 || c->min_survivors > c->n)
        return fedreci_error(FEDREC_ERR_INVALID, "dp config: min_survivors = %u, need 1..n = %u",
                             c->min_survivors, c->n);
    if (!isfinite(c->l2_bound) || !(c->l2_bound > 0))
        return fedreci_error(FEDREC_ERR_INVALID, "dp config: L2 bound c = %g, need finite > 0",
                             c->l2_bound);
    if (!isfinite(c->scale) || !(c->scale > 0))
        return fedreci_error(FEDREC_ERR_INVALID, "dp config: scale s = %g, need finite > 0",
                             c->scale);
    if (!(c->beta > 0) || !(c->beta < 1))
        return fedreci_error(FEDREC_ERR_INVALID, "dp config: beta = %g, need 0 < beta < 1",
                             c->beta);
    if (!(c->noise_var >= 0) || !(c->noise_var <= 0x1p41))
        return fedreci_error(FEDREC_ERR_INVALID,
                             "dp config: per-client noise variance mu_c = %g, need 0..2^41",
                             c->noise_var);
    size_t D = fedreci_dp_pad_dim(c->dim);
    if (!D)
        return fedreci_error(FEDREC_ERR_INVALID, "dp config: dimension d = %zu, need 1..%u", c->dim,
                             FEDRECI_DP_MAX_DIM);
    if (c->ring_bits < 8 || c->ring_bits > 32)
        return fedreci_error(FEDREC_ERR_INVALID, "dp config: ring bits b = %u, need 8..32",
                             c->ring_bits);
    double B = fedreci_dp_rounded_l2_bound(c->scale * c->l2_bound, D, c->beta);
    double half = ldexp(1.0, (int)c->ring_bits - 1);
    double t = fedreci_dp_skellam_tail((double)c->n * c->noise_var, WRAP_P / (double)D);
    double t1 = fedreci_dp_skellam_tail(c->noise_var, WRAP_P / ((double)D * (double)c->n));
    double sum_bound = (double)c->n * ceil(B) + t;
    if (!(t >= 0) || !(t1 >= 0) || !(sum_bound < half))
        return fedreci_error(FEDREC_ERR_RANGE,
                             "dp config: the noised sum could wrap: n * B + t = %u * %.0f + %.0f "
                             "= %.0f must be < 2^%u (clients n = %u, L2 bound c = %g, scale s = "
                             "%g, rounded L2 bound B = %.1f, per-client noise variance mu_c = %g, "
                             "t = the 2^-40 tail of the sum's noise, padded dimension D = %zu, "
                             "ring bits b = %u): lower s, c, mu_c or n, or raise b",
                             c->n, ceil(B), t, sum_bound, c->ring_bits - 1, c->n, c->l2_bound,
                             c->scale, B, c->noise_var, D, c->ring_bits);
    if (out) {
        out->D = D;
        out->l2_sens = B;
        out->l1_sens = B * B < sqrt((double)D) * B ? B * B : sqrt((double)D) * B;
        out->noise_min = (double)c->min_survivors * c->noise_var;
        out->sum_bound = sum_bound;
        out->client_bound = ceil(B) + t1;
    }
    return FEDREC_OK;
}
