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
/* NULL is a no-op. */
void fedreci_split_destroy(fedreci_split *s);

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

/* Writes the averages so far (the accumulator may keep being used).
 * Errors: FEDREC_ERR_EMPTY (no user added). */
FEDREC_NODISCARD fedrec_err fedreci_eval_acc_finish(const fedreci_eval_acc *a,
                                                    fedreci_metrics *out);

/* Popularity baseline on s: items ranked by distinct training buyers
 * (descending, ties by lower item id), each test user's training items
 * removed, top K. Errors: FEDREC_ERR_INVALID, FEDREC_ERR_EMPTY (no test
 * user), FEDREC_ERR_NOMEM. */
FEDREC_NODISCARD fedrec_err fedreci_eval_popularity(const fedreci_split *s, uint32_t K,
                                                    fedreci_metrics *out);

#endif /* FEDREC_CORE_EVAL_H */
