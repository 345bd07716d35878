/* fedrec-sim: the differentially private training pipeline (sim/dp.c), used
 * by `fedrec-sim run --dp-epsilon E --dp-delta D`.
 *
 * Every training customer is a client in every release (full
 * participation: the accountant's FULL sampling, add/remove-one
 * neighbours). One release:
 *   1. each client solves x_u from the published Y (core/mf, on the device),
 *      builds its bounded contribution (core/dp/dpals.h: |v| <= c =
 *      sqrt(R^2 + g^2)), rotates it (randomized Hadamard, the release's
 *      public seed), scales by s, rounds conditionally (|.| <= B) and adds
 *      Skellam noise of variance mu_c = mu / m_min per coordinate
 *      (core/dp/encode.h, noise.h): the only thing it would mask and send;
 *   2. a client drops with probability --dropout; the release is aborted
 *      (nothing unmasked, nothing spent) when fewer than m_min survive;
 *   3. the sum of the survivors' words mod 2^32 (what SecAgg unmasks; the
 *      SecAgg exactness itself is tested in test_secagg and by the
 *      simulator's oracle in non-DP runs) is read back signed, rotated back
 *      and divided by s; the server takes the ALS item step from it
 *      (core/dp/dpals.h, with shrinkage).
 * mu is calibrated (core/dp/accountant.h) so that `releases` releases cost
 * epsilon at delta with noise for m_min survivors; a release that would
 * cross the budget is refused before it starts.
 *
 * noise_aggregate: a simulation shortcut for long experiments: instead of
 * every client sampling Sk(mu_c), the sum gets one Sk(m mu_c) per
 * coordinate, m the survivors; by the closure of Skellam variables under
 * summation the released sum has exactly the same distribution. */
#ifndef FEDREC_SIM_DP_H
#define FEDREC_SIM_DP_H

#include <stdint.h>

#include "core/dp/accountant.h"
#include "core/eval/eval.h"
#include "fedrec/fedrec.h"

typedef struct fedreci_sim_dp_cfg {
    double epsilon, delta; /* the budget */
    uint32_t releases;     /* releases the noise is calibrated for */
    const double *shares;  /* NULL (equal) or `releases` shares: release r gets total noise
                              variance mu / shares[r] (fedreci_dp_skellam_calibrate_shares);
                              releases beyond the schedule get the last share */
    uint32_t rounds;       /* releases attempted (> releases: the gate refuses) */
    uint32_t k;            /* factors */
    double lambda;         /* user solve and item step */
    double row_bound;      /* R */
    double gram_weight;    /* g */
    double gram_floor;     /* phi: the item step floors the Gram sum's eigenvalues at
                              max(its noise's, phi trace) (core/dp/dpals.h) */
    double min_survivors;  /* fraction of clients a release needs (m_min) */
    double dropout;        /* per-client dropout probability per release */
    int noise_aggregate;   /* 1: one Sk(m mu_c) on the sum (see above) */
    int shrink;            /* 1: shrink noisy rows */
    int normalize;         /* 1: scale x_u to unit norm before encoding (else clip to 1) */
    double item_bias;      /* a: 0, or in (0, 1): the model gets a bias column and every
                              shopper's vector a last coordinate fixed at a (core/dp/dpals.h,
                              fedreci_dpals_solve_biased) */
    uint32_t threads;
    uint64_t seed;
    double *per_user; /* NULL, or FEDRECI_METRIC_COUNT x test users (metric-major, as
                         fedreci_sim_evaluate_users): every evaluated release writes its
                         shoppers' metrics, so it ends with the last one's */
} fedreci_sim_dp_cfg;

typedef struct fedreci_sim_dp_release {
    int completed; /* 0: refused by the gate or aborted */
    int refused;   /* 1: the budget gate refused it */
    uint32_t survivors;
    double eps_release;    /* epsilon of this release alone */
    double noise_std;      /* its noise std per coordinate for m_min survivors (input units) */
    double eps_cumulative; /* epsilon spent after it */
    double seconds;
    uint32_t rows_shrunk;
    int evaluated;     /* m holds the model's metrics after the round */
    fedreci_metrics m; /* completed or aborted (model unchanged) rounds */
    char reason[200];
} fedreci_sim_dp_release;

/* Derived constants, for the outputs. */
typedef struct fedreci_sim_dp_info {
    double scale;    /* s */
    double l2_bound; /* c */
    double l2_sens;  /* B */
    double l1_sens;
    double mu;        /* total Skellam variance for m_min survivors (share 1) */
    double mu_client; /* mu / m_min */
    double noise_std; /* sqrt(mu) / s, input units (release r: divided by sqrt(share r)) */
    uint32_t m_min;
    size_t d, D;
    double eps_spent;
    double eps_order; /* RDP order of the final conversion */
} fedreci_sim_dp_info;

/* Runs cfg->rounds releases on split s's n_train training users (ascending
 * dense ids) from y (n_items x k, updated in place); rel[0..rounds-1] get
 * the releases, info the constants. Stops at the first refused release
 * (rel[i].refused = 1, reason says what was spent); that is not an error.
 * Errors: the first failure (message set). */
FEDREC_NODISCARD fedrec_err fedreci_sim_dp_train(const fedreci_split *s,
                                                 const uint32_t *train_users, uint32_t n_train,
                                                 const fedreci_sim_dp_cfg *cfg, float *y,
                                                 fedreci_sim_dp_release *rel,
                                                 fedreci_sim_dp_info *info);

#endif
