/*
 * core/eval/baselines.h: item-to-item baselines fitted on a training matrix
 * (users x items, fedreci_mf_csr), scored by summing rows of an
 * n_items x n_items weight matrix W over the items a shopper bought:
 *   score_u(j) = sum_{i bought by u} W[i][j].
 *
 * Both start from the item co-occurrence matrix of the binarized training
 * matrix X (x_ui = 1 when u bought i, whatever the quantity): G = X^T X,
 * G[i][j] = number of shoppers who bought both i and j.
 *  - EASE (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data",
 *    WWW 2019): W = B = I - P diag(1 / diag(P)), P = (G + lambda I)^-1, i.e.
 *    B[i][j] = -P[i][j] / P[j][j] off the diagonal and 0 on it: for each item
 *    j the ridge regression of column j of X on the other columns.
 *  - item-kNN (Sarwar et al. 2001; Deshpande & Karypis 2004): cosine
 *    similarity S[i][j] = G[i][j] / (sqrt(G[i][i] G[j][j]) + shrink), i != j
 *    (0 when either item has no buyer), pruned per column: for each candidate
 *    item j only its `neighbours` most similar items i keep their weight
 *    (ties to the lower i).
 * Matrices are row-major float32, n_items x n_items (54 MB at 3,660 items).
 * Thread-safety: reentrant; no shared state.
 */
#ifndef FEDREC_CORE_EVAL_BASELINES_H
#define FEDREC_CORE_EVAL_BASELINES_H

#include <stddef.h>
#include <stdint.h>

#include "core/mf/mf.h"
#include "fedrec/fedrec.h"

/* g (r->n_cols x r->n_cols, caller-allocated) = X^T X of the binarized r,
 * by pairs within each row: O(sum_u n_u^2). Counts are exact below 2^24.
 * Errors: FEDREC_ERR_INVALID (NULL, empty shape, an index out of range, more
 * than 65,535 items). */
FEDREC_NODISCARD fedrec_err fedreci_item_cooc(const fedreci_mf_csr *r, float *g);

/* EASE weights from a co-occurrence matrix g (n x n, symmetric, as
 * fedreci_item_cooc gives) into b (n x n, caller-allocated; may not alias g):
 * Cholesky factorization and inverse with LAPACK spotrf/spotri in float32
 * (about n^3 flops; OpenBLAS's own thread count applies). lambda > 0.
 * Errors: FEDREC_ERR_INVALID (NULL, n == 0, lambda not finite and > 0),
 * FEDREC_ERR_NUMERIC (G + lambda I not positive definite in float32). */
FEDREC_NODISCARD fedrec_err fedreci_ease_weights(const float *g, uint32_t n, float lambda,
                                                 float *b);

/* Item-kNN weights from g (n x n) into w (n x n, caller-allocated, may not
 * alias g): cosine with shrink >= 0, each column keeping its `neighbours`
 * largest entries (neighbours >= n - 1 keeps all). O(n^2 log neighbours).
 * Errors: FEDREC_ERR_INVALID (NULL, n == 0, neighbours == 0, shrink not
 * finite and >= 0), FEDREC_ERR_NOMEM. */
FEDREC_NODISCARD fedrec_err fedreci_itemknn_weights(const float *g, uint32_t n, uint32_t neighbours,
                                                    float shrink, float *w);

/* Scores of one shopper: scores[j] = sum over items[0..n_bought) of
 * w[items[t]][j] (n_items floats, overwritten). Items must be < n_items (not
 * checked: the caller passes a checked training row). Can't fail. */
void fedreci_item_item_scores(const float *w, uint32_t n_items, const uint32_t *items,
                              uint32_t n_bought, float *scores);

#endif /* FEDREC_CORE_EVAL_BASELINES_H */
