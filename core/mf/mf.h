/*
 * core/mf: implicit-feedback matrix factorization, the same math for the
 * client step, the coordinator's optimizer, the simulator and the centralized
 * baseline.
 *
 * Model: preference p_ui = 1 if shopper u bought item i, else 0; confidence
 * c_ui >= 1 (computed by core/dataset: 1 + alpha * log(1 + q / eps); 1 for
 * items not bought). Loss
 *   L = sum_u sum_i c_ui (p_ui - x_u^T y_i)^2 + lambda (sum_u |x_u|^2 + sum_i |y_i|^2).
 * Implements Hu, Koren & Volinsky, "Collaborative Filtering for Implicit
 * Feedback Datasets", ICDM 2008 (ALS with the Y^T Y trick), and the federated
 * scheme of Ammad-ud-din et al., "Federated Collaborative Filtering for
 * Privacy-Preserving Personalized Recommendation System", 2019.
 *
 * Shapes: item factors Y are n_items x k, user factors X are n_users x k,
 * both float32, row-major. Gram matrices are k x k, row-major, full (both
 * triangles filled).
 *
 * BLAS/LAPACK: OpenBLAS (ssyrk, sgemv, sger, sgemm) and LAPACK sposv, except
 * in a client-only build (FEDREC_HAVE_BLAS undefined), where the client step,
 * the Gram matrix and top-K scoring run on core/mf/linalg (portable C) and the
 * centralized ALS, the optimizer and the reference round are not built.
 * Thread-safety: functions are reentrant; an object (step workspace,
 * optimizer) may be used by one thread at a time.
 */
#ifndef FEDREC_CORE_MF_H
#define FEDREC_CORE_MF_H

#include <stddef.h>
#include <stdint.h>

#include "fedrec/fedrec.h"

/* One shopper's interactions: n distinct items (ascending indices), each with
 * its confidence c_ui (> 0; 1 + alpha log(1 + q/eps)). Borrowed pointers. */
typedef struct fedreci_mf_user {
    const uint32_t *items;
    const float *conf;
    uint32_t n;
} fedreci_mf_user;

/* A users x items interaction matrix in CSR form (rows = users, ascending
 * column indices per row). Borrowed pointers. */
typedef struct fedreci_mf_csr {
    uint32_t n_rows;
    uint32_t n_cols;
    const uint64_t *indptr; /* n_rows + 1 */
    const uint32_t *indices;
    const float *conf;
} fedreci_mf_csr;

/* ---- initialization and the Gram matrix ------------------------------------ */

/* Fills y (n x k) with N(0, std^2) from a seeded generator (deterministic for
 * the same seed on every platform): splitmix64 feeding Marsaglia's polar
 * method, with a logarithm built from IEEE basic operations only. The first
 * m values of a fill of n*k > m values are the fill of m values. Can't fail. */
void fedreci_mf_init(float *y, uint32_t n, uint32_t k, uint64_t seed, float std);

/* gram = Y^T Y (k x k, full), via ssyrk. n_items == 0 gives zeros. Can't fail. */
void fedreci_mf_gram(const float *y, uint32_t n_items, uint32_t k, float *gram);

/* ---- the client step (on the device) ---------------------------------------- */

typedef struct fedreci_mf_step fedreci_mf_step;

/* Workspace for client steps over a catalog of n_items with k factors: all
 * buffers are allocated once here and reused across rounds (memory
 * O(n_items * k)). Errors: FEDREC_ERR_INVALID, FEDREC_ERR_NOMEM. */
FEDREC_NODISCARD fedrec_err fedreci_mf_step_create(fedreci_mf_step **out, uint32_t n_items,
                                                   uint32_t k);
void fedreci_mf_step_destroy(fedreci_mf_step *w);

/* The linear algebra a step workspace runs on: portable C (core/mf/linalg,
 * what the client library uses: no BLAS on the device) or OpenBLAS + LAPACK
 * (the simulator's and the coordinator's many steps). Builds with BLAS
 * (the default) start every workspace on BLAS, client-only builds
 * (-DFEDREC_CLIENT_ONLY=ON) on the portable code, the only one they have.
 * The two agree up to float rounding (tests/test_linalg.c). */
typedef enum fedreci_mf_backend {
    FEDRECI_MF_PORTABLE = 0,
    FEDRECI_MF_BLAS = 1,
} fedreci_mf_backend;
#ifdef FEDREC_HAVE_BLAS
#define FEDRECI_MF_BACKEND_DEFAULT FEDRECI_MF_BLAS
#else
#define FEDRECI_MF_BACKEND_DEFAULT FEDRECI_MF_PORTABLE
#endif

/* Switches the workspace's backend. Errors: FEDREC_ERR_INVALID (NULL,
 * unknown backend), FEDREC_ERR_UNSUPPORTED (BLAS in a client-only build). */
FEDREC_NODISCARD fedrec_err fedreci_mf_step_set_backend(fedreci_mf_step *w,
                                                        fedreci_mf_backend backend);

/* Solves x_u exactly: x = (G + Y_u^T (C_u - I) Y_u + lambda I)^-1 Y_u^T C_u p_u
 * with G = Y^T Y (pass the published gram, or NULL to compute it here; the
 * result is the same bits either way when the gram came from fedreci_mf_gram).
 * x has k floats, written only on success. lambda must be finite and >= 0.
 * Errors: FEDREC_ERR_NUMERIC (sposv failed: not positive definite),
 * FEDREC_ERR_INVALID (item index out of range, indices not strictly
 * ascending, a confidence not finite and > 0, shape mismatch with the
 * workspace, negative lambda). */
FEDREC_NODISCARD fedrec_err fedreci_mf_solve_user(fedreci_mf_step *w, const float *y,
                                                  const float *gram, uint32_t n_items, uint32_t k,
                                                  float lambda, const fedreci_mf_user *u, float *x);

/* The full client step: solves x_u (written to x, k floats), then the dense
 * gradient of the shopper's loss term with respect to every item factor,
 * G_u = -2 e x_u^T with e_i = c_ui (p_ui - y_i^T x_u) (sgemv then sger),
 * written to grad (n_items x k, row-major), and the loss term
 * sum_i c_ui (p_ui - y_i^T x_u)^2 + lambda |x_u|^2 to *loss (optional). Dense on
 * purpose: a sparse upload would reveal the bought items. */
FEDREC_NODISCARD fedrec_err fedreci_mf_client_step(fedreci_mf_step *w, const float *y,
                                                   const float *gram, uint32_t n_items, uint32_t k,
                                                   float lambda, const fedreci_mf_user *u, float *x,
                                                   float *grad, double *loss);

/* ---- scoring ------------------------------------------------------------------ */

/* Top-K items by score y_i^T x over items not in `exclude` (sorted ascending,
 * n_exclude entries), by partial selection (not a full sort). Writes up to K
 * item indices and scores, best first, ties broken by lower index; *n_out
 * gets min(K, candidates). `scores_buf` is caller scratch of n_items floats
 * (it holds every item's score afterwards). Duplicates and indices >= n_items
 * in `exclude` are ignored; NaN scores rank last; scores_out may be NULL.
 * Cost O(n_items k + n_items log K).
 * Errors: FEDREC_ERR_INVALID (NULL argument, empty shape, unsorted exclude). */
FEDREC_NODISCARD fedrec_err fedreci_mf_topk(const float *y, uint32_t n_items, uint32_t k,
                                            const float *x, const uint32_t *exclude,
                                            size_t n_exclude, uint32_t K, float *scores_buf,
                                            uint32_t *items_out, float *scores_out,
                                            uint32_t *n_out);

/* The same selection over precomputed scores (n_items floats; e.g. an
 * item-to-item model's): the best K items not in `exclude` (sorted
 * ascending), best first, ties to the lower index, NaN last; *n_out gets
 * min(K, candidates). n_items may be 0. Cost O(n_items log K).
 * Errors: FEDREC_ERR_INVALID (NULL argument, unsorted exclude). */
FEDREC_NODISCARD fedrec_err fedreci_topk_scores(const float *scores, uint32_t n_items,
                                                const uint32_t *exclude, size_t n_exclude,
                                                uint32_t K, uint32_t *items_out, uint32_t *n_out);

/* ---- the server optimizer (coordinator) ------------------------------------ */

typedef enum fedreci_opt_kind {
    FEDRECI_OPT_ADAM = 0,
    FEDRECI_OPT_SGD = 1,
} fedreci_opt_kind;

typedef struct fedreci_opt_params {
    fedreci_opt_kind kind;
    float lr;         /* learning rate, > 0 */
    float beta1;      /* Adam, default 0.9 */
    float beta2;      /* Adam, default 0.999 */
    float eps;        /* Adam, default 1e-8 */
    float lambda;     /* regularization */
    uint32_t n_train; /* N: number of training shoppers (regularization share) */
} fedreci_opt_params;

typedef struct fedreci_optimizer fedreci_optimizer;

FEDREC_NODISCARD fedrec_err fedreci_optimizer_create(fedreci_optimizer **out,
                                                     const fedreci_opt_params *p, uint32_t n_items,
                                                     uint32_t k);
void fedreci_optimizer_destroy(fedreci_optimizer *o);

/* One step on y (n_items x k) from a cohort's aggregated gradient:
 * g = grad_sum / weight + 2 (lambda / n_train) Y, then Adam or SGD.
 * weight is the cohort's total participant weight; weight == 0 skips the step
 * and leaves y unchanged (*applied = 0), never NaN. Adam (Kingma & Ba 2015)
 * uses bias correction with a step count kept per row, so rows added by
 * fedreci_optimizer_grow start with a correct first step. applied may be NULL.
 * Errors: FEDREC_ERR_INVALID (NULL, weight negative or not finite),
 * FEDREC_ERR_NUMERIC (a non-finite entry in grad_sum or y; nothing changed). */
FEDREC_NODISCARD fedrec_err fedreci_optimizer_step(fedreci_optimizer *o, float *y,
                                                   const float *grad_sum, double weight,
                                                   int *applied);

/* Grows the optimizer state to new_n_items rows (new products; existing rows
 * and their moments kept, new moments zero). The caller grows y itself (e.g.
 * fedreci_mf_init for the new rows). Errors: FEDREC_ERR_INVALID (shrinking),
 * FEDREC_ERR_NOMEM (the optimizer is left as it was). */
FEDREC_NODISCARD fedrec_err fedreci_optimizer_grow(fedreci_optimizer *o, uint32_t new_n_items);

/* ---- one federated round without secure aggregation (reference) ---------------- */

/* One round of the federated scheme with the plain sum in place of secure
 * aggregation (the reference the SecAgg runs are compared with): every user
 * in `users` (row ids of r; NULL means every row of r with at least one item)
 * runs fedreci_mf_client_step with the current y and its gram (computed once
 * here), the dense gradients are summed in row order into `sum`, and the
 * optimizer takes one step with weight = the number of participants.
 * w is a step workspace for (r->n_cols, k); o an optimizer for the same
 * shape; y is n_cols x k and updated in place; grad and sum are caller
 * scratch of n_cols x k floats each (sum holds the aggregate afterwards).
 * *participants (optional) gets the count, *loss (optional) the sum of the
 * participants' loss terms at the start of the round.
 * Errors: those of fedreci_mf_client_step and fedreci_optimizer_step (y is
 * unchanged when a client step fails). */
FEDREC_NODISCARD fedrec_err fedreci_mf_fed_round(fedreci_mf_step *w, fedreci_optimizer *o,
                                                 const fedreci_mf_csr *r, const uint32_t *users,
                                                 uint32_t n_users, uint32_t k, float lambda,
                                                 float *y, float *grad, float *sum,
                                                 uint32_t *participants, double *loss);

/* ---- centralized ALS (the baseline) ----------------------------------------- */

typedef struct fedreci_als_params {
    uint32_t k; /* factors */
    float lambda;
    uint32_t sweeps;  /* one sweep = solve all X, then all Y */
    uint32_t threads; /* worker threads (0 means 1, at most 256); results identical
                         for the same count (in fact for any count) */
    uint64_t seed;    /* initialization */
    float init_std;   /* default 0.01 (0 means the default) */
} fedreci_als_params;

/* Trains X (n_rows x k) and Y (n_cols x k) on R, both preallocated by the
 * caller. objective (optional, `sweeps` doubles) gets the loss after each
 * sweep. Deterministic for the same seed and thread count. Outputs are written
 * only on success. Memory: a transposed copy of R plus working copies of X and
 * Y. OpenBLAS is switched to one thread for the duration (a process-wide
 * setting, restored on return), so do not run two trainings concurrently with
 * other multi-threaded BLAS work that relies on that setting.
 * Errors: FEDREC_ERR_INVALID (malformed CSR, bad parameters),
 * FEDREC_ERR_NUMERIC (a system not positive definite: lambda = 0),
 * FEDREC_ERR_NOMEM. */
FEDREC_NODISCARD fedrec_err fedreci_als_train(const fedreci_mf_csr *r, const fedreci_als_params *p,
                                              float *x, float *y, double *objective);

/* Solver of the ALS row systems. */
typedef enum fedreci_als_solver {
    FEDRECI_ALS_CHOLESKY = 0, /* exact: ssyrk correction + LAPACK sposv */
    FEDRECI_ALS_CG = 1,       /* conjugate gradient, warm-started */
} fedreci_als_solver;

/* Options beyond fedreci_als_params; all-zero (or NULL) is fedreci_als_train.
 *
 * solver FEDRECI_ALS_CG: Takacs, Pilaszy & Tikk, "Applications of the
 * conjugate gradient method for implicit feedback collaborative filtering",
 * RecSys 2011: each row system is not solved exactly but improved by
 * `cg_steps` conjugate-gradient iterations started from the row's current
 * factors (the previous sweep's solution, or the initialization in the first
 * sweep). Per row and iteration the cost is one product with the system
 * matrix, O(k^2 + n_row k) instead of the O(n_row k^2 + k^3) of the exact
 * solve; with cg_steps >= k the solve is exact up to rounding.
 *
 * unobserved_weight (alpha0) and reg_exponent (nu): the knobs of Rendle,
 * Zhang & Koren, "Revisiting the Performance of iALS on Item Recommendation
 * Benchmarks", RecSys 2022. The loss becomes
 *   sum over observed c_ui (1 - x_u^T y_i)^2 + alpha0 sum over unobserved (x_u^T y_i)^2
 *   + sum_u lambda_u |x_u|^2 + sum_i lambda_i |y_i|^2,
 *   lambda_u = lambda (n_u + alpha0 n_items)^nu, lambda_i = lambda (n_i + alpha0 n_users)^nu,
 * with n_u, n_i the row's and column's nonzeros (frequency-scaled
 * regularization for nu > 0; nu = 0 is the plain lambda). Each row solves
 *   (alpha0 G + sum_j (c_j - alpha0) f_j f_j^T + lambda_r I) x = sum_j c_j f_j. */
typedef struct fedreci_als_options {
    fedreci_als_solver solver;
    uint32_t cg_steps;       /* CG iterations per row and half-sweep (0 means 3; at most 4096) */
    float unobserved_weight; /* alpha0 > 0 (0 means 1) */
    float reg_exponent;      /* nu in [0, 2] */
} fedreci_als_options;

/* fedreci_als_train with options o (NULL means all defaults: then the result
 * is bit-identical to fedreci_als_train). The objective reported is the loss
 * above. The CG solver is deterministic in the same way as the exact one.
 * Errors: those of fedreci_als_train; FEDREC_ERR_INVALID for an unknown
 * solver or options out of range. */
FEDREC_NODISCARD fedrec_err fedreci_als_train_opts(const fedreci_mf_csr *r,
                                                   const fedreci_als_params *p,
                                                   const fedreci_als_options *o, float *x, float *y,
                                                   double *objective);

#endif /* FEDREC_CORE_MF_H */
