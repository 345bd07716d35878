/*
 * core/dp/round: the differential-privacy parameters of one federated round
 * as the coordinator announces them (RoundParams.dp, proto/fedrec.proto),
 * the client's check of them, the client's encoding of its contribution
 * before masking, and the coordinator's decoding of the unmasked sum. It ties
 * together dpals.h (the bounded contribution), encode.h (rotation,
 * conditional rounding, the no-wrap check), noise.h (Skellam noise) and
 * accountant.h (epsilon). No I/O.
 *
 * The flow of a DP round (docs/privacy.md):
 *   coordinator: calibrates the per-client noise variance mu_c for
 *     min_survivors survivors, announces this struct with the round;
 *   client: fedreci_dp_round_verify (refuses parameters that could wrap the
 *     ring or whose noise is too small for the epsilon the coordinator
 *     claims; returns the release's accounting event for its own ledger),
 *     builds its contribution (fedreci_dpals_encode, |v| <= c), then
 *     fedreci_dp_round_encode: rotate, scale, round conditionally, add
 *     Sk(mu_c) per coordinate; the resulting integer words are what SecAgg
 *     masks (passed to the SecAgg client as floats at scale 1: exact, since
 *     every word is below 2^24 in absolute value, which verify checks);
 *   coordinator: unmasks the sum of the survivors' noised words (never one
 *     client's), fedreci_dp_round_decode (read back signed, divide by s,
 *     rotate back) and takes the ALS item step (fedreci_dpals_item_step).
 * Neighbouring rounds: one shopper's contribution present or replaced by
 * zero (add/remove-one). Accounting: every round counts as a release of the
 * whole mechanism (FULL sampling: no amplification is claimed from how the
 * cohort is drawn, which the clients cannot check).
 */
#ifndef FEDREC_CORE_DP_ROUND_H
#define FEDREC_CORE_DP_ROUND_H

#include <stddef.h>
#include <stdint.h>

#include "core/dp/accountant.h"
#include "core/dp/encode.h"
#include "core/dp/noise.h"
#include "fedrec/fedrec.h"

/* mechanism values (0: no differential privacy) */
#define FEDRECI_DP_ROUND_NONE 0u
#define FEDRECI_DP_ROUND_SKELLAM 1u

/* Largest |word| a client may send: SecAgg carries the words as floats at
 * scale 1, exact below 2^24. */
#define FEDRECI_DP_ROUND_MAX_WORD 16777216.0

/* One round's DP parameters (identical for every member of the round). */
typedef struct fedreci_dp_round_params {
    uint32_t mechanism;     /* FEDRECI_DP_ROUND_NONE or _SKELLAM */
    uint32_t min_survivors; /* m_min: the noise suffices for this many survivors; the
                               coordinator aborts a round with fewer before unmasking */
    double l2_bound;        /* c = sqrt(R^2 + g^2), input units */
    double scale;           /* s, integer units per input unit */
    double noise_var;       /* mu_c: Skellam variance each client adds per coordinate */
    double beta;            /* conditional rounding's retry probability */
    double row_bound;       /* R (dpals.h) */
    double gram_weight;     /* g (dpals.h) */
    double lambda;          /* ridge of the client's x_u solve and the item step */
    double epsilon_round;   /* the epsilon of this round alone at delta, as claimed */
    double delta;
    uint8_t rotation_seed[FEDRECI_DP_SEED_BYTES]; /* public, per round */
} fedreci_dp_round_params;

/* What the coordinator plans from: the budget and the model. */
typedef struct fedreci_dp_plan {
    double epsilon, delta;  /* the budget */
    uint32_t releases;      /* rounds the noise is calibrated for (>= 1) */
    uint32_t cohort;        /* the most clients a round invites (n) */
    uint32_t min_survivors; /* m_min, 1..cohort */
    uint32_t n_items, k;
    double row_bound, gram_weight, lambda; /* R, g (dpals.h), ridge */
} fedreci_dp_plan;

/* The round parameters for pl (rotation_seed zeroed: the caller sets one per
 * round): c = sqrt(R^2 + g^2), s = 8192 / c, beta = e^-0.5, mu_c = mu /
 * m_min with mu the smallest total variance (calibrated by the accountant)
 * such that `releases` more releases on top of `spent` (may be NULL) cost at
 * most epsilon at delta, epsilon_round the epsilon of one release alone; then
 * checked by fedreci_dp_round_verify for a cohort of pl->cohort. Errors:
 * FEDREC_ERR_INVALID (a parameter out of its domain, named), FEDREC_ERR_RANGE
 * (the budget cannot be reached, or the configuration could wrap the ring:
 * the message names the parameters). */
FEDREC_NODISCARD fedrec_err fedreci_dp_round_plan(const fedreci_dp_plan *pl,
                                                  const fedreci_dp_accountant *spent,
                                                  fedreci_dp_round_params *out);

/* The encoding configuration of p for a cohort of n clients and a model of
 * n_items x k (dim = fedreci_dpals_dim, ring 2^32). */
fedreci_dp_config fedreci_dp_round_config(const fedreci_dp_round_params *p, uint32_t n,
                                          uint32_t n_items, uint32_t k);

/* The accounting event of one release of p with bounds b (Skellam, total
 * variance min_survivors * mu_c, FULL sampling). */
fedreci_dp_event fedreci_dp_round_event(const fedreci_dp_round_params *p,
                                        const fedreci_dp_bounds *b);

/* What a client checks before it takes part (also what the coordinator
 * checks before it announces p): mechanism Skellam; c = sqrt(R^2 + g^2);
 * lambda, delta, epsilon_round finite and positive; min_survivors <= n; the
 * no-wrap check (fedreci_dp_check, whose message names the parameters);
 * every client word below 2^24; and that one release's epsilon at delta,
 * computed here from the noise, is at most epsilon_round (1e-6 relative
 * slack): noise too small for the claimed epsilon is refused. b, ev, eps
 * (each may be NULL) get the bounds, the event and the computed epsilon.
 * Errors: FEDREC_ERR_INVALID (a parameter out of its domain, or an epsilon
 * claim the noise does not support, named with both values),
 * FEDREC_ERR_RANGE (could wrap). Thread-safe. */
FEDREC_NODISCARD fedrec_err fedreci_dp_round_verify(const fedreci_dp_round_params *p, uint32_t n,
                                                    uint32_t n_items, uint32_t k,
                                                    fedreci_dp_bounds *b, fedreci_dp_event *ev,
                                                    double *eps);

/* The client's encoding of its contribution v (dim = fedreci_dpals_dim
 * floats, L2 norm <= c: a larger one is scaled down to c first) into
 * words (b->D floats, each an integer): rotate with p->rotation_seed, scale
 * by s, round conditionally to L2 <= B, add Sk(mu_c) to every coordinate.
 * rng supplies the rounding and the noise (seeded with randombytes_buf, or
 * a fixed seed in tests). b from fedreci_dp_round_verify. Errors:
 * FEDREC_ERR_INVALID (non-finite v), FEDREC_ERR_RANGE (a word beyond 2^24,
 * probability below 2^-40), FEDREC_ERR_NOMEM. Thread-safe given distinct
 * rngs. */
FEDREC_NODISCARD fedrec_err fedreci_dp_round_encode(const fedreci_dp_round_params *p,
                                                    const fedreci_dp_bounds *b, fedreci_dp_rng *rng,
                                                    const float *v, size_t dim, float *words);

/* The coordinator's decoding of the unmasked ring sum (D words, read back
 * as signed 32-bit values) into out (dim doubles, input units): divide by s,
 * rotate back. Errors: FEDREC_ERR_INVALID, FEDREC_ERR_NOMEM. */
FEDREC_NODISCARD fedrec_err fedreci_dp_round_decode(const fedreci_dp_round_params *p,
                                                    const uint32_t *sum, size_t D, double *out,
                                                    size_t dim);

#endif
