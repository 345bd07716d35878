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
    if (p->seed_retries > FEDRECI_SECAGG_SEED_RETRIES_CAP)
        return fedreci_error(FEDREC_ERR_INVALID,
                             "secagg params: seed_retries = %u, at most %u (each retry gives the "
                             "coordinator one more graph seed to choose from)",
                             p->seed_retries, FEDRECI_SECAGG_SEED_RETRIES_CAP);
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

/* ---- stochastic rounding kernels --------------------------------------------
 *
 * Both kernels compute, per entry, with the same IEEE double operations (so
 * their results are identical bit for bit; the tests check it):
 *   a = |x|; nan = x != x; clp = a > cf (cf: the largest float <= clip, so
 *   a > cf <=> a > clip for a float a, +-inf included);
 *   v = (double)xs * scale + (double)c * cscale, where xs = x unless clipped
 *   or NaN (then 0) and c = sign(x) if clipped (else 0): at most one of
 *   the two products is nonzero, so v is fl(x * scale) or fl(+-clip *
 *   scale) (also when a compiler contracts the sum into an FMA);
 *   f = floor(v) (|v| < 2^31 by the budget, so the int32 conversions are
 *   exact); frac = v - f (exact, in [0, 1));
 *   q = f + [2 r < T], T = trunc(frac * 2^17), r the entry's 16-bit word.
 * P(round up) = ceil(T / 2) / 2^16 = frac rounded half-up to the 2^-16
 * grid, so |E[q] - v| <= 2^-17 steps (see quantize.h). */

typedef struct qconst {
    float cf;      /* largest float <= clip */
    double scale;  /* p->scale */
    double cscale; /* clip * scale */
} qconst;

typedef struct qacc {
    uint32_t clipped;
    uint32_t nan; /* nonzero once a NaN was seen */
    float max_abs;
} qacc;

static qconst qconst_of(const fedreci_secagg_params *p)
{
    qconst k;
    k.cf = (float)p->clip;
    if ((double)k.cf > p->clip)
        k.cf = nextafterf(k.cf, 0.0f);
    k.scale = p->scale;
    k.cscale = p->clip * p->scale;
    return k;
}

static void kernel_scalar(const qconst *k, const float *x, const uint16_t *r, uint32_t *q, size_t n,
                          qacc *acc)
{
    uint32_t clipped = 0, nan = 0;
    float max_abs = acc->max_abs;
    for (size_t i = 0; i < n; i++) {
        float xf = x[i];
        float a = fabsf(xf);
        int is_nan = xf != xf;
        int clp = a > k->cf;
        nan |= (uint32_t)is_nan;
        clipped += (uint32_t)clp;
        max_abs = a > max_abs ? a : max_abs;
        float xs = clp || is_nan ? 0.0f : xf;
        float c = clp ? (signbit(xf) ? -1.0f : 1.0f) : 0.0f;
        double v = (double)xs * k->scale + (double)c * k->cscale;
        double f = (double)(int32_t)v;
        if (f > v)
            f -= 1.0;
        int32_t t = (int32_t)((v - f) * 131072.0);
        int32_t up = 2 * (int32_t)r[i] < t;
        q[i] = (uint32_t)((int32_t)f + up);
    }
    acc->clipped += clipped;
    acc->nan |= nan;
    acc->max_abs = max_abs;
}

#if defined(__SSE2__)
#include <emmintrin.h>

/* Two lanes of v (double) to floor(v) and T (int32 in the low 64 bits). */
static inline void floor_and_t(__m128d v, __m128i *fl, __m128i *t)
{
    const __m128d one = _mm_set1_pd(1.0), two17 = _mm_set1_pd(131072.0);
    __m128d f = _mm_cvtepi32_pd(_mm_cvttpd_epi32(v));
    f = _mm_sub_pd(f, _mm_and_pd(_mm_cmpgt_pd(f, v), one));
    *fl = _mm_cvttpd_epi32(f);
    *t = _mm_cvttpd_epi32(_mm_mul_pd(_mm_sub_pd(v, f), two17));
}

/* SSE2 (every x86-64): four entries per step, the tail by kernel_scalar.
 * GCC 12 at -O2 does not vectorize the scalar kernel (the NaN/clip selects
 * on floating-point values are not if-converted under -ftrapping-math), so
 * the same operations are written out here. */
static void kernel_sse2(const qconst *k, const float *x, const uint16_t *r, uint32_t *q, size_t n,
                        qacc *acc)
{
    const __m128 absmask = _mm_castsi128_ps(_mm_set1_epi32(0x7fffffff));
    const __m128 signmask = _mm_castsi128_ps(_mm_set1_epi32((int)0x80000000u));
    const __m128 cf = _mm_set1_ps(k->cf), onef = _mm_set1_ps(1.0f);
    const __m128d scale = _mm_set1_pd(k->scale), cscale = _mm_set1_pd(k->cscale);
    const __m128i zero = _mm_setzero_si128();
    __m128i clipped = zero, nan = zero;
    __m128 max_abs = _mm_set1_ps(acc->max_abs);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        __m128 xf = _mm_loadu_ps(x + i);
        __m128 a = _mm_and_ps(xf, absmask);
        __m128 is_nan = _mm_cmpunord_ps(xf, xf);
        __m128 clp = _mm_cmpgt_ps(a, cf); /* false for NaN */
        nan = _mm_or_si128(nan, _mm_castps_si128(is_nan));
        clipped = _mm_sub_epi32(clipped, _mm_castps_si128(clp));
        max_abs = _mm_max_ps(a, max_abs); /* a NaN a keeps max_abs */
        __m128 xs = _mm_andnot_ps(_mm_or_ps(clp, is_nan), xf);
        __m128 c = _mm_and_ps(clp, _mm_or_ps(_mm_and_ps(xf, signmask), onef));
        __m128d v_lo =
            _mm_add_pd(_mm_mul_pd(_mm_cvtps_pd(xs), scale), _mm_mul_pd(_mm_cvtps_pd(c), cscale));
        __m128d v_hi = _mm_add_pd(_mm_mul_pd(_mm_cvtps_pd(_mm_movehl_ps(xs, xs)), scale),
                                  _mm_mul_pd(_mm_cvtps_pd(_mm_movehl_ps(c, c)), cscale));
        __m128i fl_lo, fl_hi, t_lo, t_hi;
        floor_and_t(v_lo, &fl_lo, &t_lo);
        floor_and_t(v_hi, &fl_hi, &t_hi);
        __m128i fl = _mm_unpacklo_epi64(fl_lo, fl_hi), t = _mm_unpacklo_epi64(t_lo, t_hi);
        __m128i r2 =
            _mm_unpacklo_epi16(_mm_loadl_epi64((const __m128i *)(const void *)(r + i)), zero);
        r2 = _mm_add_epi32(r2, r2);
        __m128i up = _mm_cmplt_epi32(r2, t); /* all ones = -1 where rounding up */
        _mm_storeu_si128((__m128i *)(void *)(q + i), _mm_sub_epi32(fl, up));
    }
    uint32_t cl[4], na[4];
    float mx[4];
    _mm_storeu_si128((__m128i *)(void *)cl, clipped);
    _mm_storeu_si128((__m128i *)(void *)na, nan);
    _mm_storeu_ps(mx, max_abs);
    acc->clipped += cl[0] + cl[1] + cl[2] + cl[3];
    acc->nan |= na[0] | na[1] | na[2] | na[3];
    for (int j = 0; j < 4; j++)
        acc->max_abs = mx[j] > acc->max_abs ? mx[j] : acc->max_abs;
    kernel_scalar(k, x + i, r + i, q + i, n - i, acc);
}
#endif

/* 16-bit rounding words per keystream call (8 KiB on the stack). */
#define RWORDS 4096

static fedrec_err quantize_slice(const fedreci_secagg_params *p, const float *x,
                                 const uint8_t key[32], size_t off, size_t len, uint32_t *q,
                                 fedreci_secagg_quant_stats *stats, int vector)
{
    if (off % 32)
        return fedreci_error(FEDREC_ERR_INVALID,
                             "secagg quantize: slice offset %zu is not a multiple of 32", off);
    if (off > (size_t)p->d - 1 || len > (size_t)p->d - 1 - off)
        return fedreci_error(FEDREC_ERR_INVALID,
                             "secagg quantize: slice [%zu, %zu) outside the %u inputs", off,
                             off + len, p->d - 1);
    uint8_t nonce[FEDRECI_PRG_NONCE_BYTES];
    fedreci_prg_nonce(nonce, p->round_id, FEDRECI_PRG_ROUNDING);
    uint16_t r[RWORDS];
    qconst k = qconst_of(p);
    qacc acc = {stats->clipped, 0, stats->max_abs};
    fedrec_err e = FEDREC_OK;
    for (size_t o = 0; o < len && !e; o += RWORDS) {
        size_t m = len - o < RWORDS ? len - o : RWORDS;
        /* entry i uses keystream bytes 2i, 2i + 1 (64-byte block i / 32) */
        fedreci_prg_stream(key, nonce, (uint32_t)((off + o) / 32), (uint8_t *)r, 2 * m);
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
        for (size_t i = 0; i < m; i++) {
            const uint8_t *b = (const uint8_t *)&r[i];
            r[i] = (uint16_t)(b[0] | b[1] << 8);
        }
#endif
#if defined(__SSE2__)
        if (vector)
            kernel_sse2(&k, x + off + o, r, q + off + o, m, &acc);
        else
#endif
            kernel_scalar(&k, x + off + o, r, q + off + o, m, &acc);
        if (acc.nan) {
            size_t i = off + o;
            while (!isnan(x[i]))
                i++;
            e = fedreci_error(FEDREC_ERR_INVALID, "secagg: input entry %zu is NaN", i);
        }
    }
    sodium_memzero(r, sizeof r);
    if (e)
        return e;
    stats->clipped = acc.clipped;
    stats->max_abs = acc.max_abs;
    return FEDREC_OK;
}

fedrec_err fedreci_secagg_quantize_slice(const fedreci_secagg_params *p, const float *x,
                                         const uint8_t key[32], size_t off, size_t len, uint32_t *q,
                                         fedreci_secagg_quant_stats *stats)
{
    return quantize_slice(p, x, key, off, len, q, stats, 1);
}

fedrec_err fedreci_secagg_quantize_slice_scalar(const fedreci_secagg_params *p, const float *x,
                                                const uint8_t key[32], size_t off, size_t len,
                                                uint32_t *q, fedreci_secagg_quant_stats *stats)
{
    return quantize_slice(p, x, key, off, len, q, stats, 0);
}

fedrec_err fedreci_secagg_quantize(const fedreci_secagg_params *p, const float *x, uint32_t weight,
                                   const uint8_t key[32], uint32_t *q,
                                   fedreci_secagg_quant_stats *stats)
{
    if (weight > p->max_weight)
        return fedreci_error(FEDREC_ERR_INVALID, "secagg: weight %u exceeds max_weight %u", weight,
                             p->max_weight);
    size_t n = (size_t)p->d - 1;
    fedreci_secagg_quant_stats st = {0, 0.0f};
    fedrec_err e = fedreci_secagg_quantize_slice(p, x, key, 0, n, q, &st);
    if (e)
        return e;
    q[n] = weight;
    if (stats)
        *stats = st;
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

fedrec_err fedreci_secagg_check_sum(const fedreci_secagg_params *p, const uint32_t *sum,
                                    uint32_t n_survivors, uint32_t expect_weight)
{
    if (!p || !sum || p->d < 1)
        return fedreci_error(FEDREC_ERR_INVALID, "secagg check_sum: NULL argument");
    size_t n_x = (size_t)p->d - 1;
    if (sum[n_x] != expect_weight)
        return fedreci_error(FEDREC_ERR_ABORTED,
                             "secagg: unmasked total weight %u, expected %u for %u survivors "
                             "(a survivor sent a forged weight or a wrong share)",
                             sum[n_x], expect_weight, n_survivors);
    int64_t lim = (int64_t)n_survivors * (int64_t)ceil(p->clip * p->scale);
    for (size_t i = 0; i < n_x; i++) {
        int64_t v = (int32_t)sum[i];
        if (v > lim || v < -lim)
            return fedreci_error(FEDREC_ERR_ABORTED,
                                 "secagg: unmasked sum coordinate %zu is %lld, outside the "
                                 "+-%lld that %u clipped inputs can reach (an unclipped input "
                                 "or a wrong share)",
                                 i, (long long)v, (long long)lim, n_survivors);
    }
    return FEDREC_OK;
}
