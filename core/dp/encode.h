/*
 * core/dp/encode: the client-side encoding of the distributed discrete
 * Gaussian and Skellam papers (Kairouz, Liu & Steinke, "The Distributed
 * Discrete Gaussian Mechanism for Federated Learning with Secure
 * Aggregation", ICML 2021, Algorithm 1; Agarwal, Kairouz & Liu, NeurIPS 2021,
 * Algorithm 1), and the check that the noised sum cannot wrap the ring.
 *
 * A client with x (d floats, ||x||_2 <= c, c the stated L2 bound) sends
 *   z = round_cond(s * H D pad(x)) + Sk(mu_c)^D     (D = next power of 2 >= d)
 * where pad appends zeros to length D, D is a diagonal of random signs from
 * a public per-round seed, H the Walsh-Hadamard matrix scaled by 1/sqrt(D)
 * (so H D is orthogonal: norms are kept, and one client's mass is spread
 * over all coordinates, which keeps every coordinate small), s the scale
 * (integer units per input unit), round_cond the conditional randomized
 * rounding: unbiased stochastic rounding of every coordinate, repeated until
 * the rounded vector's L2 norm is at most
 *   B = min(s c + sqrt(D),
 *           sqrt((s c)^2 + D / 4 + sqrt(2 ln(1 / beta)) (s c + sqrt(D) / 2)))
 * (KLS 2021, Theorem 2 / Lemma; one try succeeds with probability >= 1 - beta),
 * so the integer vector's L2 norm is at most B with certainty: B is the L2
 * sensitivity of the sum, min(B^2, sqrt(D) B) its L1 sensitivity (an integer
 * vector has |v_i| <= v_i^2), both in integer units.
 * The server decodes sum z / s by the inverse rotation D H^T (applied to the
 * sum: rotation is linear).
 *
 * No-wrap check (fedreci_dp_check): the sum of m <= n clients lives in
 * Z_{2^b}, read back as signed. Signal: every coordinate of a rounded vector
 * is at most B in absolute value, so the signal of the sum is at most n B.
 * Noise: the sum's noise is Sk(m mu_c), m <= n; with the Chernoff tail t of
 * Sk(n mu_c) at probability p / D per coordinate, the noised sum stays in
 * (-2^(b-1), 2^(b-1)) with probability >= 1 - p. A configuration is refused
 * unless n B + t < 2^(b-1) with p = 2^-40 per round. A wrap would be an
 * accuracy failure, never a privacy one (reduction mod 2^b is
 * post-processing of the noised sum).
 * fedrec's SecAgg also clips each client's words: per-client signal plus the
 * tail of one client's noise at p / (n D) must stay within the SecAgg clip,
 * which fedreci_dp_check reports as client_bound.
 */
#ifndef FEDREC_CORE_DP_ENCODE_H
#define FEDREC_CORE_DP_ENCODE_H

#include <stddef.h>
#include <stdint.h>

#include "core/dp/noise.h"
#include "fedrec/fedrec.h"

/* Largest rotated dimension accepted (2^28 words). */
#define FEDRECI_DP_MAX_DIM (1u << 28)

/* The smallest power of two >= d (d >= 1); 0 if d > FEDRECI_DP_MAX_DIM. */
size_t fedreci_dp_pad_dim(size_t d);

/* out[0..D-1] = H D_signs pad(x) (D = fedreci_dp_pad_dim(d), H the
 * orthonormal Walsh-Hadamard transform, signs the bits of the ChaCha20
 * keystream of seed under stream 0: sign i is bit i % 64 of word i / 64,
 * 1 meaning -1). x: d floats; out: D doubles (caller-owned, not aliasing x).
 * ||out||_2 = ||x||_2 up to rounding. Errors: FEDREC_ERR_INVALID for d = 0,
 * d too large, or a non-finite entry (named). Thread-safe. O(D log D). */
FEDREC_NODISCARD fedrec_err fedreci_dp_rotate(const uint8_t seed[FEDRECI_DP_SEED_BYTES],
                                              const float *x, size_t d, double *out);

/* The inverse: x[0..d-1] = first d entries of D_signs H^T v (v: D doubles,
 * overwritten: the transform runs in place). Thread-safe. */
FEDREC_NODISCARD fedrec_err fedreci_dp_unrotate(const uint8_t seed[FEDRECI_DP_SEED_BYTES],
                                                double *v, size_t D, float *x, size_t d);

/* In-place orthonormal fast Walsh-Hadamard transform of v (n a power of 2):
 * its own inverse. */
void fedreci_dp_fwht(double *v, size_t n);

/* B, the bound of conditional rounding (see above) for a scaled L2 norm
 * sc = s * c >= 0, dimension D, retry probability beta in (0, 1). */
double fedreci_dp_rounded_l2_bound(double sc, size_t D, double beta);

/* Conditional randomized rounding: out[i] = floor(v[i]) + [u_i < frac(v[i])]
 * with fresh uniforms from r, repeated until sum out[i]^2 <= bound^2, at most
 * max_tries times. tries (may be NULL) gets the number of tries. Errors:
 * FEDREC_ERR_INVALID for a non-finite v[i] or |v[i]| >= 2^52;
 * FEDREC_ERR_RANGE if no try met the bound (out undefined). */
FEDREC_NODISCARD fedrec_err fedreci_dp_round(fedreci_dp_rng *r, const double *v, size_t D,
                                             double bound, unsigned max_tries, int64_t *out,
                                             unsigned *tries);

/* One round's encoding parameters. */
typedef struct fedreci_dp_config {
    uint32_t n;             /* most clients whose inputs are summed (the cohort) */
    uint32_t min_survivors; /* fewest survivors the round accepts; noise is for them */
    double l2_bound;        /* c: L2 bound of one client's input (input units) */
    double scale;           /* s: integer units per input unit */
    double beta;            /* conditional rounding's retry probability, e.g. exp(-0.5) */
    double noise_var;       /* mu_c: Skellam variance each client adds per coordinate */
    size_t dim;             /* d: input length before padding */
    unsigned ring_bits;     /* b: ring Z_{2^b}, 8..32 */
} fedreci_dp_config;

/* Derived quantities of a checked configuration (integer units). */
typedef struct fedreci_dp_bounds {
    size_t D;            /* padded dimension */
    double l2_sens;      /* B: L2 norm bound of one rounded vector */
    double l1_sens;      /* min(B^2, sqrt(D) B) */
    double noise_min;    /* min_survivors * mu_c: variance of the sum's noise, worst case */
    double sum_bound;    /* n B + t: bound on |coordinate of the noised sum| w.p. 1 - 2^-40 */
    double client_bound; /* B + t_1: one client's |word| bound w.p. 1 - 2^-40 / n */
} fedreci_dp_bounds;

/* Checks cfg and fills out (may be NULL). Errors: FEDREC_ERR_INVALID for a
 * parameter out of its domain (named, with its value); FEDREC_ERR_RANGE for
 * a configuration whose noised sum could wrap 2^(b-1), the message naming
 * n, c, s, mu_c, D, b and the bound it broke. Thread-safe. */
FEDREC_NODISCARD fedrec_err fedreci_dp_check(const fedreci_dp_config *cfg, fedreci_dp_bounds *out);

#endif
