/*
 * core/dp/dpals: the contribution of one shopper to a differentially private
 * ALS item step, with an L2 norm bounded by a stated constant, and the
 * server's item step from the (noised) cohort sum. No I/O.
 *
 * Why this shape (docs/design.md, "Differential privacy"): noise grows with
 * the square root of the number of releases, so a few releases of ALS
 * sufficient statistics beat many gradient rounds; the per-item k x k
 * confidence matrices of exact implicit ALS are not released (their
 * sensitivity is too large), only one shared Gram sum and one k-vector per
 * item, which is the ALS item step for binary targets with unit confidence
 * (Hu, Koren & Volinsky 2008 with alpha = 0):
 *   y_i = (sum_u x_u x_u^T + lambda I)^-1 sum_u w_u p_ui x_u.
 *
 * One shopper's contribution v (d = n_items k + k (k + 1) / 2 floats):
 *   x = x_u min(1, 1 / |x_u|)               (clip to norm 1)
 *   w = min(1, R / sqrt(n_u))               (row normalisation: n_u bought
 *                                            items, binary targets)
 *   v[i k .. i k + k) = w x for each bought item i, 0 for the others;
 *   v[n_items k + tri(a, b)] = g x_a x_b (a = b) or g sqrt(2) x_a x_b (a < b),
 *   the upper triangle of g x x^T with the off-diagonal entries scaled so
 *   that its Euclidean norm is g |x x^T|_F = g |x|^2.
 * Then |v|^2 = w^2 n_u |x|^2 + g^2 |x|^4 <= R^2 + g^2: the L2 bound is
 * c = sqrt(R^2 + g^2) whatever the shopper bought (add/remove-one
 * sensitivity of the sum). Binary targets cap what one item can carry; the
 * normalisation spreads a heavy buyer's weight over its items.
 */
#ifndef FEDREC_CORE_DP_DPALS_H
#define FEDREC_CORE_DP_DPALS_H

#include <stddef.h>
#include <stdint.h>

#include "core/mf/mf.h"
#include "fedrec/fedrec.h"

typedef struct fedreci_dpals {
    uint32_t n_items;
    uint32_t k;         /* factors, 1..256 */
    double row_bound;   /* R > 0 */
    double gram_weight; /* g > 0 */
} fedreci_dpals;

/* d = n_items k + k (k + 1) / 2. */
size_t fedreci_dpals_dim(const fedreci_dpals *p);

/* c = sqrt(R^2 + g^2). */
double fedreci_dpals_l2_bound(const fedreci_dpals *p);

/* Writes the contribution v (d floats, all written) of the shopper with
 * factor vector xu (k floats) who bought u->items (strictly ascending,
 * < n_items; confidences ignored: targets are binary). Errors:
 * FEDREC_ERR_INVALID for bad parameters, a non-finite xu entry or an item
 * out of range (named). Thread-safe. */
FEDREC_NODISCARD fedrec_err fedreci_dpals_encode(const fedreci_dpals *p, const float *xu,
                                                 const fedreci_mf_user *u, float *v);

/* A client's whole contribution: solves its factor vector x_u from the
 * published item factors y (n_items x k) and their Gram matrix gram (k x
 * k) with ridge lambda on the device (fedreci_mf_solve_user, workspace w
 * for n_items x k), then fedreci_dpals_encode into v. x_u is wiped. Errors:
 * those of the two calls. Thread-safe given distinct workspaces. */
FEDREC_NODISCARD fedrec_err fedreci_dpals_client(const fedreci_dpals *p, fedreci_mf_step *w,
                                                 const float *y, const float *gram, float lambda,
                                                 const fedreci_mf_user *u, float *v);

/* The server's item step from sum (d doubles: the decoded sum of the
 * contributions, noise included, in input units): G = the Gram part / g
 * (symmetrised), b_i = the item rows, shrunk towards zero when noise_std > 0
 * (the positive-part James-Stein factor max(0, 1 - k noise_std^2 / |b_i|^2),
 * noise_std the noise's standard deviation per coordinate in input units:
 * post-processing, free under DP), then y_i = (G + lambda I)^-1 b_i. Writes
 * y (n_items x k floats). G's noise can make it indefinite: its negative
 * eigenvalues are set to 0 before lambda is added (a projection onto the
 * positive semidefinite cone, also post-processing; cyclic Jacobi
 * eigendecomposition in double). shrunk (may be NULL) gets
 * the number of rows shrunk to zero. Errors: FEDREC_ERR_INVALID (bad
 * parameter, non-finite sum entry), FEDREC_ERR_NOMEM. Thread-safe. */
FEDREC_NODISCARD fedrec_err fedreci_dpals_item_step(const fedreci_dpals *p, const double *sum,
                                                    double lambda, double noise_std, float *y,
                                                    uint32_t *shrunk);

#endif
