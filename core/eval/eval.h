/*
 * core/eval: train/test splits of a purchase log, ranking metrics at K, and
 * the popularity baseline (docs/data.md gives the definitions in full).
 *
 * Splits (built from a loaded core/dataset):
 *  - leave-last-basket-out (default). A customer's last basket is the basket
 *    holding their latest row (ties on time: the larger basket id, i.e. the
 *    later invoice string). Customers with one basket stay in training only.
 *    For the others, the test set is the distinct items of the last basket
 *    that appear in none of their earlier baskets; if there is none, the
 *    customer stays in training only (counted). Otherwise every row of the
 *    last basket is removed from training (nothing of it leaks, re-bought
 *    items included) and the new items form the test set.
 *  - temporal: rows with time < split_time train, the rest are test rows; a
 *    customer's test set is the distinct items of their test rows that they
 *    did not buy in training. Customers with test rows but no training rows
 *    are cold-start (counted, not evaluated).
 *  - validation (any kind, fedreci_split_create_validation): leave-last-basket-out
 *    applied to the training rows of the split above, so tuning never sees
 *    the test rows: for last-basket splits each shopper's validation set is
 *    the new items of their second-to-last basket (the last one of their
 *    training rows). The test split is built the same way whether or not a
 *    validation split exists. Shoppers with no training row are not counted
 *    under any reason.
 * Both: test items with no buyer at all in training are removed (counted in
 * test_items_unseen): no model could rank them. A customer left with an
 * empty test set is not evaluated (users_only_unseen). A (customer, item)
 * never lands in both train and test.
 *
 * The training matrix has every dataset user as a row (a row may be empty)
 * and every dataset item as a column, with confidence recomputed from the
 * training quantities: c = 1 + alpha log(1 + q / eps), alpha and eps taken
 * from the dataset.
 *
 * Metrics for one test user with ranked list R (the first K entries count)
 * and test set T; hits are ranks r (1-based, r <= K) with R_r in T:
 *   HR@K        = 1 if any hit, else 0
 *   precision@K = hits / K        (K, even when fewer than K candidates)
 *   recall@K    = hits / |T|
 *   NDCG@K      = DCG / IDCG, DCG = sum over hits 1 / log2(r + 1),
 *                 IDCG = sum_{r=1..min(|T|,K)} 1 / log2(r + 1)
 *   AP@K        = (sum over hits of hits_up_to_r / r) / min(|T|, K); MAP = mean
 *   coverage    = distinct items in any user's top K / n_items
 * Each is averaged over the users added. Items the user bought in training
 * must be excluded by the ranking code (core/mf's top-K takes an exclude
 * list; fedreci_eval_popularity does it itself).
 *
 * Thread-safety: a split is immutable after creation and may be read from any
 * number of threads. An accumulator is used by one thread at a time.
 */
#ifndef FEDREC_CORE_EVAL_H
#define FEDREC_CORE_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include "core/dataset/dataset.h"
#include "core/mf/mf.h"
#include "fedrec/fedrec.h"

#define FEDRECI_EVAL_DEFAULT_K 10u

typedef enum fedreci_split_kind {
    FEDRECI_SPLIT_LAST_BASKET = 0,
    FEDRECI_SPLIT_TEMPORAL = 1,
} fedreci_split_kind;

typedef struct fedreci_split_options {
    fedreci_split_kind kind;
    int64_t split_time; /* temporal: first test second (unix seconds, UTC) */
} fedreci_split_options;

/* A split. Every array is owned by the split; read-only for callers. */
typedef struct fedreci_split {
    fedreci_mf_csr train; /* n_users x n_items, pointers into this split */
    uint32_t n_test_users;
    const uint32_t *test_users;  /* n_test_users dense user ids, ascending */
    const uint64_t *test_indptr; /* n_test_users + 1 */
    const uint32_t *test_items;  /* per test user ascending item ids */
    const uint32_t *item_buyers; /* n_items: distinct training buyers per item */
    /* counts */
    uint32_t users;               /* dataset users */
    uint32_t users_single_basket; /* last basket: one basket only, training only */
    uint32_t users_no_new_item;   /* last basket had no item new to them */
    uint32_t users_no_test_rows;  /* temporal: all rows before split_time */
    uint32_t users_cold;          /* temporal: test rows but no training rows */
    uint32_t users_only_unseen;   /* every test item was unseen in training */
    uint64_t train_rows;          /* event rows in training */
    uint64_t held_out_rows;       /* event rows removed from training */
    uint64_t train_interactions;  /* nnz of train */
    uint64_t test_interactions;   /* total test items kept */
    uint64_t test_items_unseen;   /* test items dropped: no buyer in training */
} fedreci_split;

/* Builds a split of d. opts NULL means leave-last-basket-out. The split does
 * not borrow from d (it may outlive it).
 * Errors: FEDREC_ERR_INVALID (unknown kind, NULL), FEDREC_ERR_NOMEM. */
FEDREC_NODISCARD fedrec_err fedreci_split_create(fedreci_split **out, const fedreci_dataset *d,
                                                 const fedreci_split_options *opts);
/* Builds the validation split of the split that fedreci_split_create(d, opts)
 * gives: leave-last-basket-out on that split's training rows only (see the
 * top of this file), so hyper-parameters can be tuned without touching the
 * test rows. Same ownership and errors as fedreci_split_create. */
FEDREC_NODISCARD fedrec_err fedreci_split_create_validation(fedreci_split **out,
                                                            const fedreci_dataset *d,
                                                            const fedreci_split_options *opts);
/* NULL is a no-op. */
void fedreci_split_destroy(fedreci_split *s);

/* A split from arrays built elsewhere (the simulator's in-memory synthetic
 * population, sim/synth.h): the training matrix (n_users + 1 offsets, then
 * ascending item ids and confidences per row), the test users (ascending)
 * with their offsets (n_test_users + 1) and ascending items. Takes
 * ownership of the six malloc'd arrays (fedreci_split_destroy frees them;
 * so does a failure here). The counts (users, train_rows, ...) are copied
 * from *counts when it is not NULL (its pointer members are not used);
 * train_interactions, test_interactions and item_buyers are computed.
 * Errors: FEDREC_ERR_NOMEM. */
FEDREC_NODISCARD fedrec_err fedreci_split_adopt(fedreci_split **out, uint32_t n_users,
                                                uint32_t n_items, uint64_t *indptr,
                                                uint32_t *indices, float *conf,
                                                uint32_t n_test_users, uint32_t *test_users,
                                                uint64_t *test_indptr, uint32_t *test_items,
                                                const fedreci_split *counts);

/* Keeps a seeded uniform sample of n of the split's test users (ascending,
 * with their items; the training matrix is untouched), for evaluations that
 * would otherwise dominate a long simulation. n == 0 or n >= n_test_users
 * keeps them all. The counts other than n_test_users and test_interactions
 * still describe the whole split. Errors: FEDREC_ERR_NOMEM (s unchanged). */
FEDREC_NODISCARD fedrec_err fedreci_split_sample_test(fedreci_split *s, uint32_t n, uint64_t seed);

/* Test user number t (0 <= t < n_test_users): their items (borrowed) and count. */
const uint32_t *fedreci_split_test(const fedreci_split *s, uint32_t t, uint32_t *n);

/* Averaged metrics at K. */
typedef struct fedreci_metrics {
    uint32_t k;
    uint32_t users; /* test users averaged over */
    double hr_at_k;
    double precision_at_k;
    double recall_at_k;
    double ndcg_at_k;
    double map_at_k;
    double coverage;            /* distinct recommended items / n_items */
    uint32_t items_recommended; /* distinct items in any top K */
} fedreci_metrics;

/* One user's metrics (users = 1, coverage 0). ranked: n_ranked distinct item
 * ids, best first (only the first K count); test: n_test > 0 ascending
 * distinct item ids. Errors: FEDREC_ERR_INVALID (K == 0, n_test == 0, test
 * not ascending). */
FEDREC_NODISCARD fedrec_err fedreci_eval_user(const uint32_t *ranked, uint32_t n_ranked,
                                              const uint32_t *test, uint32_t n_test, uint32_t K,
                                              fedreci_metrics *out);

typedef struct fedreci_eval_acc fedreci_eval_acc;

/* An accumulator over a catalog of n_items (for coverage) at K.
 * Errors: FEDREC_ERR_INVALID (K == 0 or n_items == 0), FEDREC_ERR_NOMEM. */
FEDREC_NODISCARD fedrec_err fedreci_eval_acc_create(fedreci_eval_acc **out, uint32_t n_items,
                                                    uint32_t K);
void fedreci_eval_acc_destroy(fedreci_eval_acc *a);

/* Adds one user. Errors: FEDREC_ERR_INVALID (as fedreci_eval_user, an item id
 * >= n_items, or a ranked item repeated within the first K); nothing is added
 * on error. */
FEDREC_NODISCARD fedrec_err fedreci_eval_acc_add(fedreci_eval_acc *a, const uint32_t *ranked,
                                                 uint32_t n_ranked, const uint32_t *test,
                                                 uint32_t n_test);

/* The metrics the accumulator keeps per user (coverage is a set, not a mean). */
typedef enum fedreci_metric_id {
    FEDRECI_METRIC_HR = 0,
    FEDRECI_METRIC_PRECISION = 1,
    FEDRECI_METRIC_RECALL = 2,
    FEDRECI_METRIC_NDCG = 3,
    FEDRECI_METRIC_MAP = 4,
} fedreci_metric_id;
#define FEDRECI_METRIC_COUNT 5u

/* The values of metric `m` of every user added so far, in the order added
 * (the accumulator owns them; valid until the next add or destroy); *n gets
 * the count. Errors: FEDREC_ERR_INVALID (NULL or unknown metric). */
FEDREC_NODISCARD fedrec_err fedreci_eval_acc_values(const fedreci_eval_acc *a, fedreci_metric_id m,
                                                    const double **values, uint32_t *n);

/* Writes the averages so far (the accumulator may keep being used).
 * Errors: FEDREC_ERR_EMPTY (no user added). */
FEDREC_NODISCARD fedrec_err fedreci_eval_acc_finish(const fedreci_eval_acc *a,
                                                    fedreci_metrics *out);

/* ---- uncertainty: per-shopper bootstrap ------------------------------------ */

/* A mean and its confidence interval [lo, hi]. */
typedef struct fedreci_ci {
    double mean;
    double lo, hi;
} fedreci_ci;

/* Percentile bootstrap confidence interval of the mean of v[0..n) (Efron &
 * Tibshirani 1993, ch. 13), resampling shoppers: B resamples of n indices
 * drawn with replacement, each mean computed in double; lo and hi are the
 * (1 - level)/2 and (1 + level)/2 quantiles of the B means, by linear
 * interpolation between order statistics at position q (B - 1) (0-based;
 * Hyndman & Fan type 7). The indices come from splitmix64 seeded with `seed`
 * (state = seed; each draw adds 0x9e3779b97f4a7c15 and mixes), index =
 * draw mod n, n draws per resample, resamples in order: the same inputs give
 * the same bits on every platform. out->mean is the plain mean of v.
 * level in (0, 1), e.g. 0.95; B >= 2; n >= 1. Cost O(B n) time, O(B) memory.
 * Errors: FEDREC_ERR_INVALID (NULL, n == 0, B < 2, level out of range, a
 * value not finite), FEDREC_ERR_NOMEM. */
FEDREC_NODISCARD fedrec_err fedreci_eval_bootstrap(const double *v, size_t n, uint32_t B,
                                                   uint64_t seed, double level, fedreci_ci *out);

/* A paired comparison of two models on the same shoppers. */
typedef struct fedreci_paired {
    uint32_t n;       /* shoppers */
    double mean_a;    /* mean of a */
    double mean_b;    /* mean of b */
    fedreci_ci diff;  /* mean(a) - mean(b) with its percentile CI */
    fedreci_ci ratio; /* mean(a) / mean(b) with its percentile CI (NaN if mean(b) == 0) */
    double p_value;   /* two-sided, H0: equal means */
} fedreci_paired;

/* Paired bootstrap of a[0..n) against b[0..n) (a[j] and b[j] are the same
 * shopper's metric under models A and B): each resample draws n shopper
 * indices exactly as fedreci_eval_bootstrap does (same seed, same indices)
 * and takes d* = mean(a*) - mean(b*) and r* = mean(a*) / mean(b*); the CIs
 * are their percentiles as above. p_value = (1 + #{b: |d*_b - d| >= |d|}) /
 * (B + 1), d the observed difference: the bootstrap test of H0 "mean
 * difference 0" with the resampled differences shifted to the null
 * (Efron & Tibshirani 1993, section 16.4). A model compared with itself gives
 * diff 0 with a zero-width CI, ratio 1 and p_value 1.
 * Errors: as fedreci_eval_bootstrap. */
FEDREC_NODISCARD fedrec_err fedreci_eval_paired(const double *a, const double *b, size_t n,
                                                uint32_t B, uint64_t seed, double level,
                                                fedreci_paired *out);

/* Popularity baseline on s: items ranked by distinct training buyers
 * (descending, ties by lower item id), each test user's training items
 * removed, top K. Errors: FEDREC_ERR_INVALID, FEDREC_ERR_EMPTY (no test
 * user), FEDREC_ERR_NOMEM. */
FEDREC_NODISCARD fedrec_err fedreci_eval_popularity(const fedreci_split *s, uint32_t K,
                                                    fedreci_metrics *out);

#endif /* FEDREC_CORE_EVAL_H */
