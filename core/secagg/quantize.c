/* Round parameters and quantization (see quantize.h and secagg.h). */
#include "core/secagg/quantize.h"

#include <math.h>
#include <string.h>

#include <sodium.h>

#include "core/err.h"
#include "core/secagg/prg.h"

#define TWO31 2147483648.0

fedrec_err fedreci_secagg_params_check(const fedreci_secagg_params *p)
{
    if (!p)
        return fedreci_error(FEDREC_ERR_INVALID, "secagg params: NULL");
    if (p->n < 2 || p->n > FEDRECI_SECAGG_MAX_N)
        return fedreci_error(FEDREC_ERR_INVALID, "secagg params: cohort n = %u, need 2..%u", p->n,
                             FEDRECI_SECAGG_MAX_N);
    if (p->k < 1 || p->k > p->n - 1)
        return fedreci_error(FEDREC_ERR_INVALID,
                             "secagg params: neighbours k = %u, need 1..n-1 = %u (n = %u)", p->k,
                             p->n - 1, p->n);
    if (2ull * p->t <= p->k || p->t > p->k)
        return fedreci_error(FEDREC_ERR_INVALID,
                             "secagg params: threshold t = %u, need k/2 < t <= k (k = %u)", p->t,
                             p->k);
    if (p->d < 2 || p->d > FEDRECI_SECAGG_MAX_D)
        return fedreci_error(FEDREC_ERR_INVALID,
                             "secagg params: vector length d = %u, need 2..%u (inputs + weight)",
                             p->d, FEDRECI_SECAGG_MAX_D);
    if (!isfinite(p->clip) || !(p->clip > 0))
        return fedreci_error(FEDREC_ERR_INVALID,
                             "secagg params: clip = %g, need a finite value > 0", p->clip);
    if (!isfinite(p->scale) || !(p->scale > 0))
        return fedreci_error(FEDREC_ERR_INVALID,
                             "secagg params: scale = %g, need a finite value > 0", p->scale);
    /* |q| <= ceil(clip * scale) after stochastic rounding: the budget uses the
     * ceiling, so the sum of n extreme inputs never wraps. */
    double per = ceil(p->clip * p->scale);
    if (!isfinite(per) || (double)p->n * per >= TWO31)
        return fedreci_error(FEDREC_ERR_RANGE,
                             "secagg params: overflow budget: n * ceil(clip * scale) = %u * "
                             "ceil(%g * %g) = %.0f must be < 2^31",
                             p->n, p->clip, p->scale, (double)p->n * per);
    if ((double)p->n * (double)p->max_weight >= TWO31)
        return fedreci_error(FEDREC_ERR_RANGE,
                             "secagg params: overflow budget: n * max_weight = %u * %u must be "
                             "< 2^31",
                             p->n, p->max_weight);
    return FEDREC_OK;
}

fedrec_err fedreci_secagg_quantize(const fedreci_secagg_params *p, const float *x, uint32_t weight,
                                   const uint8_t key[32], uint32_t *q,
                                   fedreci_secagg_quant_stats *stats)
{
    if (weight > p->max_weight)
        return fedreci_error(FEDREC_ERR_INVALID, "secagg: weight %u exceeds max_weight %u", weight,
                             p->max_weight);
    size_t n = (size_t)p->d - 1;
    uint8_t nonce[FEDRECI_PRG_NONCE_BYTES];
    fedreci_prg_nonce(nonce, p->round_id, FEDRECI_PRG_ROUNDING);
    uint32_t u[1024];
    const size_t U = sizeof u / sizeof u[0];
    uint32_t clipped = 0;
    float max_abs = 0.0f;
    const double clip = p->clip, scale = p->scale;
    fedrec_err e = FEDREC_OK;
    int nan_seen = 0;

    for (size_t off = 0; off < n && !e; off += U) {
        size_t len = n - off < U ? n - off : U;
        fedreci_prg_words(key, nonce, (uint32_t)(off / 16), u, len);
        for (size_t i = 0; i < len; i++) {
            /* branch-free so the loop vectorizes; NaN is reported below */
            float xf = x[off + i];
            int is_nan = xf != xf;
            nan_seen |= is_nan;
            float a = fabsf(xf);
            max_abs = a > max_abs ? a : max_abs;
            double v = is_nan ? 0.0 : (double)xf;
            clipped += (v > clip) | (v < -clip);
            v = v > clip ? clip : v < -clip ? -clip : v;
            v *= scale;
            /* floor without a libm call (|v| < 2^30 by the budget), and the
             * comparison u < frac * 2^32 done in signed 32-bit, so the loop
             * vectorizes with plain SSE2 */
            int32_t fl = (int32_t)v;
            fl -= (double)fl > v;
            double thr = (v - (double)fl) * 4294967296.0 - 2147483648.0;
            int32_t us = (int32_t)(u[i] ^ 0x80000000u);
            q[off + i] = (uint32_t)(fl + ((double)us < thr));
        }
        if (nan_seen) {
            size_t i = 0;
            while (!isnan(x[off + i]))
                i++;
            e = fedreci_error(FEDREC_ERR_INVALID, "secagg: input entry %zu is NaN", off + i);
        }
    }
    sodium_memzero(u, sizeof u);
    if (e)
        return e;
    q[n] = weight;
    if (stats) {
        stats->clipped = clipped;
        stats->max_abs = max_abs;
    }
    return FEDREC_OK;
}

void fedreci_secagg_dequantize(const fedreci_secagg_params *p, const uint32_t *sum, float *out,
                               uint32_t *total_weight)
{
    size_t n = (size_t)p->d - 1;
    for (size_t i = 0; i < n; i++) {
        /* two's complement read without implementation-defined conversion */
        int64_t v = sum[i] >= 0x80000000u ? (int64_t)sum[i] - 4294967296LL : (int64_t)sum[i];
        out[i] = (float)((double)v / p->scale);
    }
    if (total_weight)
        *total_weight = sum[n];
}
