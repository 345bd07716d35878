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

/* ---- the x_u x_u^T block of an ALS-step upload -------------------------------- */

/* Entries of the block: k (k + 1) / 2, the upper triangle of a k x k matrix. */
#define FEDRECI_MF_XX_DIM(k) ((size_t)(k) * ((size_t)(k) + 1) / 2)

/* The weight g a client multiplies its block by, from the round's clip bound
 * (every uploaded entry is clipped to [-clip, clip]) and the bound B on
 * |x_u|: g = clip / B^2, so that no entry of the block reaches the clip
 * (see fedreci_mf_xx_block). 0 when clip or B is not finite and > 0. */
double fedreci_mf_xx_weight(double clip, double bound);

/* The block a client uploads beside its gradient when the server takes the
 * ALS-like step (FEDRECI_OPT_ALS, docs/design.md section 2):
 *   x^ = x min(1, B / |x|)            (x clipped to Euclidean norm B)
 *   out[t(a, b)] = g' x^_a x^_b        for a == b
 *   out[t(a, b)] = g' sqrt(2) x^_a x^_b for a < b
 * for rows a = 0..k-1 and b = a..k-1 in that order (t counts up from 0), with
 * g' = g (1 - 2^-20) (so float rounding never lifts an entry past g B^2).
 * The off-diagonal scaling makes the block's Euclidean norm g' |x^ x^^T|_F =
 * g' |x^|^2 <= g B^2, and every entry has magnitude <= g B^2 (the same
 * layout as core/dp/dpals.h's Gram part). x has k floats (1 <= k <= 256),
 * out k (k + 1) / 2. *clipped (optional) gets 1 when |x| > B, else 0.
 * Errors: FEDREC_ERR_INVALID (NULL, k out of range, B or g not finite and
 * > 0, a non-finite x entry, named); out is untouched then. Thread-safe. */
FEDREC_NODISCARD fedrec_err fedreci_mf_xx_block(const float *x, uint32_t k, double bound,
                                                double weight, float *out, int *clipped);

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
    FEDRECI_OPT_ALS = 2, /* preconditioned by the cohort's sum of x_u x_u^T (below) */
} fedreci_opt_kind;

typedef struct fedreci_opt_params {
    fedreci_opt_kind kind;
    float lr;         /* learning rate (ALS: step size), > 0 */
    float beta1;      /* Adam, default 0.9; ALS: momentum, [0, 1) */
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

/* The same step with the cohort's sum of x_u x_u^T blocks beside the
 * gradient sum: xx_sum holds k (k + 1) / 2 floats, the sum of the clients'
 * fedreci_mf_xx_block outputs, each made with weight xx_weight (> 0). For
 * Adam and SGD xx_sum is ignored (may be NULL) and this is
 * fedreci_optimizer_step. For FEDRECI_OPT_ALS (kind 2) the step is
 *   S = (the block sum, diagonal / xx_weight, off-diagonal /
 *        (sqrt(2) xx_weight), symmetrised) / weight + (lambda / n_train) I
 *   g_i = grad_sum_i / weight + 2 (lambda / n_train) y_i      (as Adam's)
 *   d_i = S^-1 g_i / 2                                        (Cholesky, double)
 *   m_i = beta1 m_i + (1 - beta1) d_i,  y_i -= lr m_i / (1 - beta1^t)
 * with t the row's step count (bias correction as Adam's first moment).
 * d_i is the Newton step on the cohort's mean loss for unit confidences
 * (Hu, Koren & Volinsky's ALS item update, with the cohort's x_u in place
 * of all users'), so lr 1 without momentum would jump to the cohort's ALS
 * solution; a smaller lr with momentum averages over cohorts.
 * Errors: those of fedreci_optimizer_step; FEDREC_ERR_INVALID for ALS
 * without xx_sum or with xx_weight not finite and > 0; FEDREC_ERR_NUMERIC
 * for a non-finite xx_sum entry or S not positive definite (lambda = 0 and
 * a rank-deficient sum); y and the state are unchanged on every error. */
FEDREC_NODISCARD fedrec_err fedreci_optimizer_step_xx(fedreci_optimizer *o, float *y,
                                                      const float *grad_sum, const float *xx_sum,
                                                      double xx_weight, double weight,
                                                      int *applied);

/* Sets the learning rate (Adam, SGD) or step size (ALS) of the following
 * steps, for a schedule over rounds; the moments are kept. lr must be finite
 * and > 0. Errors: FEDREC_ERR_INVALID (NULL, bad lr; nothing changed). */
FEDREC_NODISCARD fedrec_err fedreci_optimizer_set_lr(fedreci_optimizer *o, float lr);

/* The kind of step o takes (o not NULL). Can't fail. */
fedreci_opt_kind fedreci_optimizer_kind(const fedreci_optimizer *o);

/* The length of one client's update vector (before SecAgg's weight word)
 * for the server step `kind`: n_items k, plus k (k + 1) / 2 for
 * FEDRECI_OPT_ALS. 0 when the product overflows size_t. Can't fail. */
size_t fedreci_mf_update_dim(uint32_t n_items, uint32_t k, fedreci_opt_kind kind);

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

/* fedreci_mf_fed_round for any server step: when o takes the ALS step
 * (FEDRECI_OPT_ALS), each participant also makes its x_u x_u^T block
 * (fedreci_mf_xx_block with bound xx_bound, > 0, and weight 1) beside its
 * gradient, grad and sum hold fedreci_mf_update_dim(r->n_cols, k, kind)
 * floats each, and the step is fedreci_optimizer_step_xx on the sums (k at
 * most 256). For Adam and SGD xx_bound is ignored and this is
 * fedreci_mf_fed_round, which refuses an ALS optimizer. Errors: as
 * fedreci_mf_fed_round; FEDREC_ERR_INVALID for a bad bound or k. */
FEDREC_NODISCARD fedrec_err fedreci_mf_fed_round_xx(fedreci_mf_step *w, fedreci_optimizer *o,
                                                    const fedreci_mf_csr *r, const uint32_t *users,
                                                    uint32_t n_users, uint32_t k, float lambda,
                                                    double xx_bound, float *y, float *grad,
                                                    float *sum, uint32_t *participants,
                                                    double *loss);

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
