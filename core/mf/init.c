/*
 * Seeded initialization of factor matrices and the Gram matrix Y^T Y.
 *
 * The normal generator is platform-deterministic: splitmix64 (Steele, Lea &
 * Flood, "Fast splittable pseudorandom number generators", OOPSLA 2014) feeds
 * Marsaglia's polar method, whose logarithm is computed here from frexp and a
 * fixed atanh series. Only IEEE-754 basic operations and sqrt (both correctly
 * rounded) are used, so the same seed gives the same bits on every platform
 * with IEEE double arithmetic and no fused multiply-add contraction (GCC
 * does not contract under -std=c11; for Clang the pragma below turns it off).
 */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif
#include <math.h>
#include <string.h>

#ifdef FEDREC_HAVE_BLAS
#include <cblas.h>
#else
#include "core/mf/linalg.h"
#endif

#include "core/mf/mf.h"
#include "core/mf/mf_internal.h"
#include "core/rng.h"

/* Uniform on [-1, 1) with 53 random bits (2u is exact, so this is
 * (x >> 11) 2^-52 - 1 for the draw x). */
static double uniform_pm1(fedreci_rng *r)
{
    return 2.0 * fedreci_rng_unit(r) - 1.0;
}

/* Natural logarithm of x > 0 (finite, normal) from basic operations only:
 * x = m 2^e with m in [sqrt(1/2), sqrt(2)), ln m = 2 atanh(t), t = (m-1)/(m+1),
 * |t| <= 0.1716, summed to t^25 (truncation error below 1e-19). */
static double det_log(double x)
{
    int e;
    double m = frexp(x, &e);
    if (m < 0.70710678118654752440) {
        m *= 2.0;
        e -= 1;
    }
    double t = (m - 1.0) / (m + 1.0);
    double t2 = t * t;
    double p = 1.0 / 25.0;
    for (int j = 23; j >= 1; j -= 2)
        p = p * t2 + 1.0 / (double)j;
    return (double)e * 0.69314718055994530942 + 2.0 * t * p;
}

void fedreci_mf_init(float *y, uint32_t n, uint32_t k, uint64_t seed, float std)
{
    fedreci_rng s = fedreci_rng_seeded(seed);
    size_t total = (size_t)n * k;
    size_t i = 0;
    while (i < total) {
        double v1, v2, q;
        do {
            v1 = uniform_pm1(&s);
            v2 = uniform_pm1(&s);
            q = v1 * v1 + v2 * v2;
        } while (q >= 1.0 || q == 0.0);
        double f = sqrt(-2.0 * det_log(q) / q);
        y[i++] = (float)((double)std * v1 * f);
        if (i < total)
            y[i++] = (float)((double)std * v2 * f);
    }
}

void fedreci_mf_gram(const float *y, uint32_t n_items, uint32_t k, float *gram)
{
    if (k == 0)
        return;
    if (n_items == 0) {
        memset(gram, 0, (size_t)k * k * sizeof *gram);
        return;
    }
    /* Row-major upper triangle of Y^T Y, then mirrored into the lower one. */
#ifdef FEDREC_HAVE_BLAS
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)k, (int)n_items, 1.0f, y, (int)k, 0.0f,
                gram, (int)k);
#else
    fedreci_la_syrk_upper(k, n_items, y, 0.0f, gram);
#endif
    for (uint32_t r = 1; r < k; r++)
        for (uint32_t c = 0; c < r; c++)
            gram[(size_t)r * k + c] = gram[(size_t)c * k + r];
}
