/*
 * core/secagg/shamir: Shamir secret sharing (Shamir, "How to share a secret",
 * CACM 1979) over the ristretto255 scalar field Z_l, l = 2^252 +
 * 27742317777372353535851937790883648493, with libsodium's
 * crypto_core_ristretto255_scalar_{add,mul,invert,negate,random,reduce}.
 *
 * A secret is one canonical scalar (32 bytes little-endian, < l). A share is
 * the pair (x, y): x a nonzero 32-bit index (in SecAgg the holder's 1-based
 * roster position), y = f(x) as a 32-byte scalar, f a random polynomial of
 * degree t - 1 with f(0) = secret. Any t shares rebuild the secret (Lagrange
 * interpolation at 0); t - 1 shares are independent of it.
 *
 * Thread-safe (no state). Secrets, coefficients and shares are the caller's
 * (sodium_malloc) memory; the internal temporaries are wiped.
 */
#ifndef FEDREC_CORE_SECAGG_SHAMIR_H
#define FEDREC_CORE_SECAGG_SHAMIR_H

#include <stddef.h>
#include <stdint.h>

#include "fedrec/fedrec.h"

#define FEDRECI_SCALAR_BYTES 32

/* Splits `secret` (canonical scalar) into n shares with threshold t:
 * ys[i * 32 .. i * 32 + 31] = f(xs[i]). xs: n distinct nonzero indices.
 * Errors (FEDREC_ERR_INVALID, nothing written): t == 0, t > n, a zero or
 * repeated index, a non-canonical secret. FEDREC_ERR_NOMEM. */
FEDREC_NODISCARD fedrec_err fedreci_shamir_create(const uint8_t secret[FEDRECI_SCALAR_BYTES],
                                                  uint32_t t, const uint32_t *xs, size_t n,
                                                  uint8_t *ys);

/* Rebuilds the secret from the first t of n shares (xs[i], ys[i * 32...]).
 * Errors (FEDREC_ERR_INVALID, secret untouched): t == 0, n < t, a zero or
 * repeated index among the first t. FEDREC_ERR_NOMEM. With fewer than t
 * genuine shares the result is an unrelated scalar: the caller must count. */
FEDREC_NODISCARD fedrec_err fedreci_shamir_recover(const uint32_t *xs, const uint8_t *ys, size_t n,
                                                   uint32_t t,
                                                   uint8_t secret[FEDRECI_SCALAR_BYTES]);

/* Lagrange coefficients at 0 for the t distinct nonzero indices xs:
 * lambda_i = prod_{j != i} x_j / (x_j - x_i), written to lambdas (t x 32).
 * Costs about t^2 / 3 scalar multiplications (differences are multiplied in
 * 64-bit integers three at a time while they fit) and one inversion.
 * Errors: FEDREC_ERR_INVALID (t == 0, zero or repeated index), NOMEM. */
FEDREC_NODISCARD fedrec_err fedreci_shamir_lagrange(const uint32_t *xs, uint32_t t,
                                                    uint8_t *lambdas);

/* secret = sum_i lambdas[i] * ys[i] over t shares. Cannot fail. */
void fedreci_shamir_combine(const uint8_t *lambdas, const uint8_t *ys, uint32_t t,
                            uint8_t secret[FEDRECI_SCALAR_BYTES]);

/* The scalar encoding of a small nonnegative integer. */
void fedreci_scalar_from_u64(uint8_t s[FEDRECI_SCALAR_BYTES], uint64_t v);

/* 1 when s is a canonical scalar (< l), else 0. */
int fedreci_scalar_is_canonical(const uint8_t s[FEDRECI_SCALAR_BYTES]);

#endif
