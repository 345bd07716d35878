/*
 * core/dp/noise: the randomness and the discrete noise of distributed
 * differential privacy. No I/O, no global state.
 *
 * Mechanism: the Skellam mechanism (Agarwal, Kairouz & Liu, "The Skellam
 * Mechanism for Differentially Private Federated Learning", NeurIPS 2021).
 * Each client adds, to every integer coordinate of its (rotated, rounded)
 * contribution, Sk(mu_c) = P1 - P2 with P1, P2 independent Poisson(mu_c / 2)
 * (variance mu_c). Why Skellam rather than the distributed discrete Gaussian
 * (Kairouz, Liu & Steinke, ICML 2021): a sum of independent Skellam variables
 * is exactly Skellam (variances add), so the noise in the sum of any m
 * survivors is exactly Sk(m * mu_c) and the guarantee for a round with m
 * survivors is the single-party Skellam bound at variance m * mu_c, with no
 * extra term for the sum of discrete Gaussians not being a discrete Gaussian
 * (KLS 2021, Theorem 1's tau term). Dropouts are then one inequality: noise
 * is calibrated for the smallest survivor count the round accepts.
 * The sampler is also simple and exact given uniform variates: Poisson
 * variates by inversion (mean < 10) or by Hormann's transformed rejection
 * PTRS (Hormann 1993, "The transformed rejection method for generating
 * Poisson random variables", Insurance: Mathematics and Economics 12),
 * instead of the big-rational Bernoulli(exp(-gamma)) chains of the exact
 * discrete Gaussian sampler (Canonne, Kamath & Steinke 2020).
 *
 * Randomness: all of it is the ChaCha20 keystream (libsodium,
 * crypto_stream_chacha20_xor_ic: 256-bit key, 64-bit nonce, 64-bit block
 * counter) of a 32-byte seed. A client draws the seed with randombytes_buf;
 * tests pass a fixed seed and get the same numbers on every platform.
 * Uniform variates are 53-bit: u = (w >> 11 + 1/2) * 2^-53 in (0, 1), w the
 * next little-endian uint64 of the keystream.
 */
#ifndef FEDREC_CORE_DP_NOISE_H
#define FEDREC_CORE_DP_NOISE_H

#include <stddef.h>
#include <stdint.h>

#include "fedrec/fedrec.h"

#define FEDRECI_DP_SEED_BYTES 32
#define FEDRECI_DP_RNG_BUF 512

/* A keystream reader. Plain struct, owned by the caller (stack is fine);
 * holds key material: call fedreci_dp_rng_wipe when done. One rng per
 * thread (not thread-safe). */
typedef struct fedreci_dp_rng {
    uint8_t key[FEDRECI_DP_SEED_BYTES];
    uint8_t nonce[8];
    uint64_t block; /* next 64-byte block of the keystream */
    size_t pos;     /* bytes of buf already used */
    uint8_t buf[FEDRECI_DP_RNG_BUF];
} fedreci_dp_rng;

/* Starts the keystream of seed (32 bytes) under stream id `stream` (the
 * 64-bit nonce, little-endian: different streams of one seed are
 * independent). Cannot fail. */
void fedreci_dp_rng_init(fedreci_dp_rng *r, const uint8_t seed[FEDRECI_DP_SEED_BYTES],
                         uint64_t stream);

/* Wipes the key and the buffer (sodium_memzero). NULL is a no-op. */
void fedreci_dp_rng_wipe(fedreci_dp_rng *r);

/* The next 64 bits of the keystream (little-endian). */
uint64_t fedreci_dp_rng_u64(fedreci_dp_rng *r);

/* A uniform double in the open interval (0, 1) (53 random bits). */
double fedreci_dp_rng_uniform(fedreci_dp_rng *r);

/* A Poisson(lambda) variate, lambda in [0, 2^40] (finite). Inversion by
 * sequential search for lambda < 10, PTRS (Hormann 1993) otherwise; exact
 * up to double rounding of the uniforms and of log-factorials (Stirling
 * series, relative error < 1e-15). Returns -1 for a lambda out of range
 * (NaN, negative, > 2^40): callers check it. */
int64_t fedreci_dp_poisson(fedreci_dp_rng *r, double lambda);

/* A symmetric Skellam variate of variance mu: Poisson(mu/2) - Poisson(mu/2).
 * mu in [0, 2^41]; a mu out of range yields 0 and is the caller's to
 * refuse first (fedreci_dp_skellam_fill checks it). */
int64_t fedreci_dp_skellam(fedreci_dp_rng *r, double mu);

/* out[i] += Sk(mu) for i < n (int64 accumulators, independent variates).
 * Errors: FEDREC_ERR_INVALID for mu not finite, negative or above 2^41 (out
 * untouched). */
FEDREC_NODISCARD fedrec_err fedreci_dp_skellam_fill(fedreci_dp_rng *r, double mu, int64_t *out,
                                                    size_t n);

/* A tail bound for Sk(mu): the smallest integer t found such that
 * P(|Sk(mu)| >= t) <= p, from the Chernoff bound
 * P(Sk(mu) >= t) <= exp(-mu * h(t / mu)), h(u) = u asinh(u) - sqrt(1 + u^2) + 1
 * (the moment generating function of Sk(mu) is exp(mu (cosh s - 1))),
 * doubled for two sides. p in (0, 1). Returns 0 for mu = 0; -1 for bad
 * arguments. */
double fedreci_dp_skellam_tail(double mu, double p);

#endif
