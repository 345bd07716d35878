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

/* The item bias (`fedrec-sim run --dp-item-bias a`, in process only): the
 * released model has K = k + 1 columns, the last one each item's bias
 * beta_i, and every shopper's vector has its last coordinate fixed at a in
 * (0, 1): score_ui = y_i[0..k) . x_u + a beta_i. In training the
 * contribution is built from x' = (x_u clipped to norm sqrt(1 - a^2), a),
 * so |x'| <= 1 and the L2 bound c is unchanged (fedreci_dpals_encode with
 * k = K); the item step then fits beta_i in the same noised sums as the
 * factors (the Gram sum's last row is a sum_u x_u and n a^2, the item row's
 * last entry a sum_u w_u: a weighted count of the item's buyers).
 *
 * fedreci_dpals_solve_biased solves the shopper's free coordinates x (K - 1
 * floats) on the device against y (n_items x K, row-major) and its Gram
 * matrix gram = Y^T Y (K x K floats, fedreci_mf_gram with K columns):
 *   min_x sum_i c_ui (p_ui - y_i[0..k) . x - a beta_i)^2 + lambda |x|^2
 * (p_ui = 1 and c_ui = u->conf for bought items, p = 0 and c = 1 for the
 * others), i.e. (G_kk + sum_{i in u} (c_ui - 1) y_i y_i^T + lambda I) x =
 *   sum_{i in u} (c_ui (1 - a beta_i) + a beta_i) y_i - a G_{k,K-1}.
 * work holds (K - 1) (K - 1) floats. With a = 0 it is fedreci_mf_solve_user
 * on the first K - 1 columns. Errors: FEDREC_ERR_INVALID (K < 2 or > 257, a
 * not in [0, 1), lambda not finite >= 0, an item out of range or not
 * ascending, a confidence not finite > 0), FEDREC_ERR_NUMERIC (the system
 * is not positive definite). Thread-safe given distinct work buffers. */
FEDREC_NODISCARD fedrec_err fedreci_dpals_solve_biased(const float *y, const float *gram,
                                                       uint32_t n_items, uint32_t K, double a,
                                                       double lambda, const fedreci_mf_user *u,
                                                       float *work, float *x);

/* x' = (x clipped to norm sqrt(1 - a^2), a) from the solved x (K - 1 floats)
 * into xb (K floats): the shopper's vector the contribution is built from. */
void fedreci_dpals_bias_vector(const float *x, uint32_t K, double a, float *xb);

/* The server's item step: what to do with the noise (all post-processing of
 * the released sum: free under DP). */
typedef struct fedreci_dpals_step {
    double lambda;     /* ridge added to every eigenvalue, finite >= 0 */
    double noise_std;  /* sigma: the noise's standard deviation per coordinate of the
                          sum, input units (0: a sum without noise) */
    int shrink;        /* 1: shrink every item row by the positive-part James-Stein
                          factor max(0, 1 - k sigma^2 / |b_i|^2) */
    double floor_frac; /* phi in [0, 1]: also floor the Gram sum's eigenvalues at
                          phi trace(G) (a regularizer of the directions few shoppers'
                          x_u point along; 0: the noise floor only) */
    int bias_apart;    /* 1 (k >= 2, with shrink): the last coordinate is an item bias's
                          (fedreci_dpals_solve_biased): the first k - 1 entries of b_i
                          are shrunk by max(0, 1 - (k - 1) sigma^2 / |b_i[0..k-1)|^2)
                          and the last by max(0, 1 - sigma^2 / b_i[k-1]^2), so that a
                          popular item's large count does not keep its noisy factors */
} fedreci_dpals_step;

/* The server's item step from sum (d doubles: the decoded sum of the
 * contributions, noise included, in input units): G = the Gram part / g
 * (symmetrised), b_i = the item rows (shrunk when o->shrink and sigma > 0),
 * then y_i = (floor(G) + lambda I)^-1 b_i, written to y (n_items x k
 * floats). floor(G) = V diag(max(e_j, f)) V^T from the eigendecomposition
 * G = V diag(e_j) V^T (cyclic Jacobi, double), with
 *   f = max(sqrt(2 k) sigma / g, phi max(0, trace G)).
 * Why sqrt(2 k) sigma / g: G's noise is a symmetric k x k matrix E with
 * independent entries of standard deviation sigma / g on the diagonal and
 * sigma / (g sqrt 2) off it (the triangle's off-diagonal entries carry
 * sqrt 2 x_a x_b), whose eigenvalues fill a semicircle of radius
 * 2 sqrt(k sigma^2 / (2 g^2)) = sqrt(2 k) sigma / g (Wigner; Bai & Yin
 * 1988 for the largest). By Weyl's inequality every eigenvalue of the true
 * Gram sum (>= 0) moved by at most |E|, so an eigenvalue below that radius
 * says nothing the noise could not have made; flooring it there keeps
 * (floor(G) + lambda I)^-1 from amplifying noise-made directions by up to
 * 1 / lambda (which made the clients' next float solve fail). With sigma =
 * 0 and phi = 0 negative eigenvalues go to 0 (the projection onto the
 * positive semidefinite cone). shrunk (may be NULL) gets the number of rows
 * shrunk to zero. Errors: FEDREC_ERR_INVALID (bad parameter, non-finite sum
 * entry), FEDREC_ERR_NOMEM. Thread-safe. */
FEDREC_NODISCARD fedrec_err fedreci_dpals_item_step(const fedreci_dpals *p, const double *sum,
                                                    const fedreci_dpals_step *o, float *y,
                                                    uint32_t *shrunk);

/* The eigenvalue floor f above for a noised Gram sum G (k x k, row-major,
 * symmetric; trace read from its diagonal). */
double fedreci_dpals_gram_floor(const fedreci_dpals *p, const double *G, double noise_std,
                                double floor_frac);

#endif
