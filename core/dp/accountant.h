/*
 * core/dp/accountant: Renyi differential privacy (Mironov, "Renyi
 * Differential Privacy", CSF 2017) of the mechanisms fedrec runs, subsampled
 * as the cohort is drawn, composed over rounds, converted to (epsilon,
 * delta). No I/O, no allocation, no global state: thread-safe per object.
 *
 * Mechanisms (RDP of one release at order alpha):
 *  - Gaussian with noise multiplier z (noise std / L2 sensitivity):
 *    alpha / (2 z^2).
 *  - Skellam (Agarwal, Kairouz & Liu, NeurIPS 2021, Theorem 3.5 /
 *    Corollary 3.6), integer alpha > 1, total noise variance mu and integer
 *    L1 / L2 sensitivities D1, D2 (integer units):
 *    alpha D2^2 / (2 mu) + min(((2 alpha - 1) D2^2 + 6 D1) / (4 mu^2),
 *                              3 D1 / (2 mu)).
 *    Non-integer orders get +inf (the bound is stated for integers).
 * Sampling (how the round's cohort is drawn):
 *  - FULL: every client, every round (q = 1): the mechanism's own RDP;
 *    add/remove-one neighbouring.
 *  - POISSON with rate q, add/remove-one: for the Gaussian the exact RDP of
 *    the sampled Gaussian mechanism (Mironov, Talwar & Zhang 2019, "Renyi
 *    Differential Privacy of the Sampled Gaussian Mechanism", section 3.3:
 *    the finite sum for integer alpha, the two erfc series with signed
 *    generalized binomial coefficients for fractional alpha: the exact
 *    value); for Skellam the general upper bound of Zhu & Wang 2019
 *    ("Poisson Subsampled Renyi Differential Privacy", ICML, Theorem 6),
 *    integer alpha.
 *  - WOR: a fixed-size cohort of m out of N drawn without replacement
 *    (gamma = m / N), replace-one neighbouring (the caller states the
 *    sensitivities of replacing one client, twice the add/remove ones for a
 *    sum): Wang, Balle & Kasiviswanathan 2019 ("Subsampled Renyi
 *    Differential Privacy and Analytical Moments Accountant", AISTATS,
 *    Theorem 9) with epsilon(inf) = inf, integer alpha:
 *    1/(alpha-1) log(1 + gamma^2 C(alpha,2) min(4 (e^eps(2) - 1), 2 e^eps(2))
 *                   + 2 sum_{j=3..alpha} gamma^j C(alpha,j) e^((j-1) eps(j))).
 *    Each subsampled bound is capped by the unsampled one.
 * Composition: RDP adds over releases (Mironov 2017, Proposition 1).
 * Conversion: the improved conversion (Canonne, Kamath & Steinke 2020, "The
 * Discrete Gaussian for Differential Privacy", Proposition 12; Balle et al.
 * 2020, "Hypothesis Testing Interpretations and Renyi Differential Privacy",
 * Theorem 21), the one Google's dp_accounting uses:
 *   epsilon = min over alpha of  rdp(alpha) + log1p(-1/alpha)
 *                                - (log delta + log alpha) / (alpha - 1),
 * floored at 0; fedreci_dp_epsilon_classic gives Mironov 2017's
 *   rdp(alpha) + log(1/delta) / (alpha - 1) for comparison.
 */
#ifndef FEDREC_CORE_DP_ACCOUNTANT_H
#define FEDREC_CORE_DP_ACCOUNTANT_H

#include <stddef.h>
#include <stdint.h>

#include "fedrec/fedrec.h"

#define FEDRECI_DP_MAX_ORDERS 160

typedef enum fedreci_dp_mech {
    FEDRECI_DP_GAUSSIAN = 1,
    FEDRECI_DP_SKELLAM = 2,
} fedreci_dp_mech;

typedef enum fedreci_dp_sampling {
    FEDRECI_DP_FULL = 0,
    FEDRECI_DP_POISSON = 1,
    FEDRECI_DP_WOR = 2,
} fedreci_dp_sampling;

/* One release. Gaussian: z. Skellam: mu, l1, l2. q: the sampling rate
 * (POISSON) or m / N (WOR); ignored for FULL. */
typedef struct fedreci_dp_event {
    fedreci_dp_mech mech;
    double z;      /* Gaussian noise multiplier (std / L2 sensitivity) */
    double mu;     /* Skellam: variance of the summed noise (integer units) */
    double l1, l2; /* Skellam: L1 and L2 sensitivity (integer units) */
    fedreci_dp_sampling sampling;
    double q;
} fedreci_dp_event;

/* The running RDP curve. Plain struct, caller-owned. */
typedef struct fedreci_dp_accountant {
    size_t n_orders;
    double orders[FEDRECI_DP_MAX_ORDERS];
    double rdp[FEDRECI_DP_MAX_ORDERS];
} fedreci_dp_accountant;

/* Resets to the default order grid: 1.25, 1.5, 1.75, 2, 2.25, 2.5, 3, 3.5,
 * 4, 4.5, 5..63, 128, 256, 512 (the grid of Google's dp_accounting), plus
 * 64..120 step 8 and 1024 for the integer-only bounds; rdp all 0. */
void fedreci_dp_accountant_init(fedreci_dp_accountant *a);

/* Resets to a custom grid (n <= FEDRECI_DP_MAX_ORDERS orders, each > 1 and
 * finite). Errors: FEDREC_ERR_INVALID (names the bad order). */
FEDREC_NODISCARD fedrec_err fedreci_dp_accountant_init_orders(fedreci_dp_accountant *a,
                                                              const double *orders, size_t n);

/* RDP of one release of ev at order alpha > 1, into *out (may be +inf).
 * Errors: FEDREC_ERR_INVALID for a bad parameter (named). */
FEDREC_NODISCARD fedrec_err fedreci_dp_event_rdp(const fedreci_dp_event *ev, double alpha,
                                                 double *out);

/* Adds count releases of ev to the curve. Errors as fedreci_dp_event_rdp
 * (the curve unchanged). */
FEDREC_NODISCARD fedrec_err fedreci_dp_accountant_compose(fedreci_dp_accountant *a,
                                                          const fedreci_dp_event *ev,
                                                          uint64_t count);

/* epsilon of the curve at delta in (0, 1) by the improved conversion, and
 * the order attaining it (order may be NULL). +inf when every order is
 * +inf. Errors: FEDREC_ERR_INVALID for delta out of range. */
FEDREC_NODISCARD fedrec_err fedreci_dp_accountant_epsilon(const fedreci_dp_accountant *a,
                                                          double delta, double *eps, double *order);

/* The same with the classic conversion (Mironov 2017, Proposition 3). */
FEDREC_NODISCARD fedrec_err fedreci_dp_epsilon_classic(const fedreci_dp_accountant *a, double delta,
                                                       double *eps, double *order);

/* RDP of the sampled Gaussian mechanism (Mironov, Talwar & Zhang 2019) at
 * rate q in [0, 1], noise multiplier z > 0, order alpha > 1 (integer or
 * not). Errors: FEDREC_ERR_INVALID. */
FEDREC_NODISCARD fedrec_err fedreci_dp_rdp_sampled_gaussian(double q, double z, double alpha,
                                                            double *out);

/* The Skellam bound above; +inf for a non-integer alpha. */
double fedreci_dp_rdp_skellam(double alpha, double mu, double l1, double l2);

/* Calibration: the smallest total Skellam variance mu (within 0.1%) such
 * that `releases` compositions of ev (ev->mu ignored) cost at most epsilon
 * at delta on the default grid plus `spent` (the curve already spent; may
 * be NULL). Errors: FEDREC_ERR_INVALID for bad arguments; FEDREC_ERR_RANGE
 * if no mu up to 1e12 * l2^2 reaches epsilon. */
FEDREC_NODISCARD fedrec_err fedreci_dp_skellam_calibrate(const fedreci_dp_event *ev,
                                                         uint64_t releases, double epsilon,
                                                         double delta,
                                                         const fedreci_dp_accountant *spent,
                                                         double *mu);

/* The same with a schedule: release r (0-based, r < releases) has total
 * variance mu / shares[r] (shares: `releases` values in (0, 1e6]; NULL: all
 * 1, fedreci_dp_skellam_calibrate). A larger share buys that release less
 * noise; for the Gaussian part of the bound the releases' RDP is in the
 * ratio of their shares. Errors: those of fedreci_dp_skellam_calibrate, and
 * FEDREC_ERR_INVALID for a share out of range (named). */
FEDREC_NODISCARD fedrec_err fedreci_dp_skellam_calibrate_shares(
    const fedreci_dp_event *ev, const double *shares, uint64_t releases, double epsilon,
    double delta, const fedreci_dp_accountant *spent, double *mu);

#endif
