/* Shamir secret sharing over the ristretto255 scalar field (see shamir.h). */
#include "core/secagg/shamir.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/err.h"
#include "core/secagg/secmem.h"

#define SB FEDRECI_SCALAR_BYTES

void fedreci_scalar_from_u64(uint8_t s[SB], uint64_t v)
{
    memset(s, 0, SB);
    for (int i = 0; i < 8; i++)
        s[i] = (uint8_t)(v >> (8 * i));
}

int fedreci_scalar_is_canonical(const uint8_t s[SB])
{
    uint8_t wide[crypto_core_ristretto255_NONREDUCEDSCALARBYTES] = {0};
    uint8_t red[SB];
    memcpy(wide, s, SB);
    crypto_core_ristretto255_scalar_reduce(red, wide);
    int ok = sodium_memcmp(red, s, SB) == 0;
    sodium_memzero(wide, sizeof wide);
    sodium_memzero(red, sizeof red);
    return ok;
}

/* Indices must be nonzero and pairwise distinct. O(n log n) via a sorted copy. */
static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static fedrec_err check_indices(const uint32_t *xs, size_t n, const char *what)
{
    uint32_t *sorted = malloc((n ? n : 1) * sizeof *sorted);
    if (!sorted)
        return fedreci_error(FEDREC_ERR_NOMEM, "shamir: %zu indices", n);
    memcpy(sorted, xs, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, cmp_u32);
    fedrec_err e = FEDREC_OK;
    if (n && sorted[0] == 0)
        e = fedreci_error(FEDREC_ERR_INVALID, "shamir %s: share index 0 is not allowed", what);
    for (size_t i = 1; i < n && !e; i++)
        if (sorted[i] == sorted[i - 1])
            e = fedreci_error(FEDREC_ERR_INVALID, "shamir %s: share index %u repeated", what,
                              sorted[i]);
    free(sorted);
    return e;
}

fedrec_err fedreci_shamir_create(const uint8_t secret[SB], uint32_t t, const uint32_t *xs, size_t n,
                                 uint8_t *ys)
{
    if (t == 0 || t > n)
        return fedreci_error(FEDREC_ERR_INVALID,
                             "shamir create: threshold %u must be in 1..%zu (the share count)", t,
                             n);
    if (!fedreci_scalar_is_canonical(secret))
        return fedreci_error(FEDREC_ERR_INVALID, "shamir create: secret is not a canonical scalar");
    fedrec_err e = check_indices(xs, n, "create");
    if (e)
        return e;
    /* coef[0] = secret, coef[1..t-1] random; all wiped. */
    uint8_t *coef = fedreci_secmem_alloc((size_t)t * SB);
    if (!coef)
        return fedreci_error(FEDREC_ERR_NOMEM, "shamir create: %u coefficients", t);
    memcpy(coef, secret, SB);
    for (uint32_t j = 1; j < t; j++)
        crypto_core_ristretto255_scalar_random(coef + (size_t)j * SB);
    uint8_t x[SB], acc[SB];
    for (size_t i = 0; i < n; i++) {
        /* Horner: acc = (((c_{t-1} x + c_{t-2}) x + ...) x + c_0. */
        fedreci_scalar_from_u64(x, xs[i]);
        memcpy(acc, coef + (size_t)(t - 1) * SB, SB);
        for (uint32_t j = t - 1; j-- > 0;) {
            crypto_core_ristretto255_scalar_mul(acc, acc, x);
            crypto_core_ristretto255_scalar_add(acc, acc, coef + (size_t)j * SB);
        }
        memcpy(ys + i * SB, acc, SB);
    }
    sodium_memzero(acc, sizeof acc);
    fedreci_secmem_free(coef);
    return FEDREC_OK;
}

/* Multiplies the scalar acc by the signed integer product held in (mag, neg). */
static void mul_small(uint8_t acc[SB], uint64_t mag)
{
    uint8_t s[SB];
    fedreci_scalar_from_u64(s, mag);
    crypto_core_ristretto255_scalar_mul(acc, acc, s);
}

fedrec_err fedreci_shamir_lagrange(const uint32_t *xs, uint32_t t, uint8_t *lambdas)
{
    if (t == 0)
        return fedreci_error(FEDREC_ERR_INVALID, "shamir: threshold 0");
    fedrec_err e = check_indices(xs, t, "recover");
    if (e)
        return e;
    /* lambda_i = P / (x_i * D_i) with P = prod x_j and D_i = prod_{j != i}
     * (x_j - x_i). Integer factors are multiplied natively while the product
     * stays below 2^64 and folded into the scalar only then. */
    uint8_t *den = malloc((size_t)t * SB);
    uint8_t *inv = malloc((size_t)t * SB);
    uint8_t *pre = malloc((size_t)t * SB);
    if (!den || !inv || !pre) {
        free(den);
        free(inv);
        free(pre);
        return fedreci_error(FEDREC_ERR_NOMEM, "shamir: %u Lagrange coefficients", t);
    }
    uint8_t p[SB];
    uint64_t mag = 1;
    fedreci_scalar_from_u64(p, 1);
    for (uint32_t j = 0; j < t; j++) {
        if (mag > UINT64_MAX / xs[j]) {
            mul_small(p, mag);
            mag = 1;
        }
        mag *= xs[j];
    }
    mul_small(p, mag);
    for (uint32_t i = 0; i < t; i++) {
        uint8_t *di = den + (size_t)i * SB;
        int neg = 0;
        fedreci_scalar_from_u64(di, 1);
        mag = xs[i]; /* fold x_i into the denominator too */
        for (uint32_t j = 0; j < t; j++) {
            if (j == i)
                continue;
            uint64_t diff;
            if (xs[j] > xs[i]) {
                diff = xs[j] - xs[i];
            } else {
                diff = xs[i] - xs[j];
                neg ^= 1;
            }
            if (mag > UINT64_MAX / diff) {
                mul_small(di, mag);
                mag = 1;
            }
            mag *= diff;
        }
        mul_small(di, mag);
        if (neg)
            crypto_core_ristretto255_scalar_negate(di, di);
    }
    /* Batch inversion: pre[i] = den[0] * ... * den[i]; one inversion. */
    memcpy(pre, den, SB);
    for (uint32_t i = 1; i < t; i++)
        crypto_core_ristretto255_scalar_mul(pre + (size_t)i * SB, pre + (size_t)(i - 1) * SB,
                                            den + (size_t)i * SB);
    uint8_t run[SB];
    /* All factors are nonzero mod l (distinct indices < 2^32 << l), so the
     * inversion cannot fail. */
    if (crypto_core_ristretto255_scalar_invert(run, pre + (size_t)(t - 1) * SB) != 0) {
        free(den);
        free(inv);
        free(pre);
        return fedreci_error(FEDREC_ERR_INTERNAL, "shamir: zero denominator");
    }
    for (uint32_t i = t; i-- > 0;) {
        uint8_t *ii = inv + (size_t)i * SB;
        if (i == 0) {
            memcpy(ii, run, SB);
        } else {
            crypto_core_ristretto255_scalar_mul(ii, run, pre + (size_t)(i - 1) * SB);
            crypto_core_ristretto255_scalar_mul(run, run, den + (size_t)i * SB);
        }
        crypto_core_ristretto255_scalar_mul(lambdas + (size_t)i * SB, ii, p);
    }
    free(den);
    free(inv);
    free(pre);
    return FEDREC_OK;
}

void fedreci_shamir_combine(const uint8_t *lambdas, const uint8_t *ys, uint32_t t,
                            uint8_t secret[SB])
{
    uint8_t acc[SB] = {0}, term[SB];
    for (uint32_t i = 0; i < t; i++) {
        crypto_core_ristretto255_scalar_mul(term, lambdas + (size_t)i * SB, ys + (size_t)i * SB);
        crypto_core_ristretto255_scalar_add(acc, acc, term);
    }
    memcpy(secret, acc, SB);
    sodium_memzero(acc, sizeof acc);
    sodium_memzero(term, sizeof term);
}

fedrec_err fedreci_shamir_recover(const uint32_t *xs, const uint8_t *ys, size_t n, uint32_t t,
                                  uint8_t secret[SB])
{
    if (t == 0 || n < t)
        return fedreci_error(FEDREC_ERR_INVALID,
                             "shamir recover: threshold %u needs 1..%zu (the share count)", t, n);
    uint8_t *lambdas = malloc((size_t)t * SB);
    if (!lambdas)
        return fedreci_error(FEDREC_ERR_NOMEM, "shamir recover: %u coefficients", t);
    fedrec_err e = fedreci_shamir_lagrange(xs, t, lambdas);
    if (!e)
        fedreci_shamir_combine(lambdas, ys, t, secret);
    free(lambdas);
    return e;
}
