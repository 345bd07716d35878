/* Tests for core/eval: splits and metrics on hand-computed cases, and the
 * leave-last-basket-out figures and popularity baseline of the full log. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <math.h>

#include <cmocka.h>

#include "core/dataset/dataset.h"
#include "core/eval/baselines.h"
#include "core/eval/eval.h"
#include "core/rng.h"

static char tmpdir[256];

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/fedrec_test_eval_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- metrics for one user ------------------------------------------------- */

static void test_user_metrics_hand_computed(void **state)
{
    (void)state;
    fedreci_metrics m;
    /* ranked 5,3,7 (K = 3, the 4th entry is ignored), test {1,3}: one hit at rank 2 */
    const uint32_t ranked[] = {5, 3, 7, 1};
    const uint32_t test[] = {1, 3};
    assert_int_equal(fedreci_eval_user(ranked, 4, test, 2, 3, &m), FEDREC_OK);
    assert_float_equal(m.hr_at_k, 1.0, 1e-12);
    assert_float_equal(m.precision_at_k, 1.0 / 3.0, 1e-12);
    assert_float_equal(m.recall_at_k, 0.5, 1e-12);
    double idcg = 1.0 + 1.0 / log2(3.0);
    assert_float_equal(m.ndcg_at_k, (1.0 / log2(3.0)) / idcg, 1e-12);
    assert_float_equal(m.map_at_k, 0.5 / 2.0, 1e-12);

    /* K larger than the number of candidates: precision still divides by K,
     * IDCG over min(|T|, K) = 1 */
    const uint32_t few[] = {2, 4};
    const uint32_t t4[] = {4};
    assert_int_equal(fedreci_eval_user(few, 2, t4, 1, 10, &m), FEDREC_OK);
    assert_float_equal(m.hr_at_k, 1.0, 1e-12);
    assert_float_equal(m.precision_at_k, 0.1, 1e-12);
    assert_float_equal(m.recall_at_k, 1.0, 1e-12);
    assert_float_equal(m.ndcg_at_k, 1.0 / log2(3.0), 1e-12);
    assert_float_equal(m.map_at_k, 0.5, 1e-12);

    /* all hits at the top: everything is 1 */
    const uint32_t top[] = {4, 2, 9};
    const uint32_t t24[] = {2, 4};
    assert_int_equal(fedreci_eval_user(top, 3, t24, 2, 2, &m), FEDREC_OK);
    assert_float_equal(m.ndcg_at_k, 1.0, 1e-12);
    assert_float_equal(m.map_at_k, 1.0, 1e-12);
    assert_float_equal(m.precision_at_k, 1.0, 1e-12);

    /* no hit, and an empty ranked list */
    assert_int_equal(fedreci_eval_user(NULL, 0, t24, 2, 10, &m), FEDREC_OK);
    assert_float_equal(m.hr_at_k, 0.0, 1e-12);
    assert_float_equal(m.ndcg_at_k, 0.0, 1e-12);

    /* invalid: K = 0, empty or unsorted test set */
    const uint32_t unsorted[] = {4, 2};
    assert_int_equal(fedreci_eval_user(top, 3, t24, 2, 0, &m), FEDREC_ERR_INVALID);
    assert_int_equal(fedreci_eval_user(top, 3, t24, 0, 2, &m), FEDREC_ERR_INVALID);
    assert_int_equal(fedreci_eval_user(top, 3, unsorted, 2, 2, &m), FEDREC_ERR_INVALID);
}

static void test_accumulator(void **state)
{
    (void)state;
    fedreci_eval_acc *a = NULL;
    assert_int_equal(fedreci_eval_acc_create(&a, 10, 0), FEDREC_ERR_INVALID);
    assert_int_equal(fedreci_eval_acc_create(&a, 10, 2), FEDREC_OK);
    fedreci_metrics m;
    assert_int_equal(fedreci_eval_acc_finish(a, &m), FEDREC_ERR_EMPTY);
    const uint32_t r1[] = {1, 2, 3}, t1[] = {2};
    const uint32_t r2[] = {4, 1}, t2[] = {7, 8};
    const uint32_t dup[] = {5, 5}, out_of_range[] = {10};
    assert_int_equal(fedreci_eval_acc_add(a, dup, 2, t1, 1), FEDREC_ERR_INVALID);
    assert_int_equal(fedreci_eval_acc_add(a, out_of_range, 1, t1, 1), FEDREC_ERR_INVALID);
    assert_int_equal(fedreci_eval_acc_add(a, r1, 3, t1, 1), FEDREC_OK);
    assert_int_equal(fedreci_eval_acc_add(a, r2, 2, t2, 2), FEDREC_OK);
    assert_int_equal(fedreci_eval_acc_finish(a, &m), FEDREC_OK);
    assert_int_equal(m.users, 2);
    assert_int_equal(m.k, 2);
    assert_float_equal(m.hr_at_k, 0.5, 1e-12);
    assert_float_equal(m.precision_at_k, 0.25, 1e-12);
    assert_float_equal(m.recall_at_k, 0.5, 1e-12);
    assert_float_equal(m.ndcg_at_k, 0.5 * (1.0 / log2(3.0)), 1e-12);
    assert_float_equal(m.map_at_k, 0.25, 1e-12);
    /* top-2 lists {1,2} and {4,1}: items 1,2,4 of 10 */
    assert_int_equal(m.items_recommended, 3);
    assert_float_equal(m.coverage, 0.3, 1e-12);
    fedreci_eval_acc_destroy(a);
    fedreci_eval_acc_destroy(NULL);
}

/* ---- splits on a hand-built log ------------------------------------------ */

/* Items V W X Y Z get ids 0..4; customers 1..6 get ids 0..5.
 *  1: basket 2001 {X, Y x2}, then 2002 {Y, Z, Z (duplicate row)}
 *  2: one basket {X, Y, Z}
 *  3: {X} then {X} again: no new item
 *  4: {Y} then {W}, and nobody else buys W: only unseen test items
 *  5: {X}, then two baskets at the same time: 2009 {V} and 2010 {Y, Z};
 *     the later invoice (2010) is the last basket
 *  6: one basket {X}, after the temporal cut (cold start there) */
static const char *const LOG =
    "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
    "2001,X,x,1,2011-01-01 10:00:00,1,1,UK\n"
    "2001,Y,y,2,2011-01-01 10:00:00,1,1,UK\n"
    "2002,Y,y,1,2011-01-02 10:00:00,1,1,UK\n"
    "2002,Z,z,1,2011-01-02 10:00:00,1,1,UK\n"
    "2002,Z,z,2,2011-01-02 10:00:00,1,1,UK\n"
    "2003,X,x,1,2011-01-01 11:00:00,1,2,UK\n"
    "2003,Y,y,1,2011-01-01 11:00:00,1,2,UK\n"
    "2003,Z,z,1,2011-01-01 11:00:00,1,2,UK\n"
    "2004,X,x,1,2011-01-01 12:00:00,1,3,UK\n"
    "2005,X,x,1,2011-01-03 12:00:00,1,3,UK\n"
    "2006,Y,y,1,2011-01-01 13:00:00,1,4,UK\n"
    "2007,W,w,1,2011-01-04 13:00:00,1,4,UK\n"
    "2008,X,x,1,2011-01-01 14:00:00,1,5,UK\n"
    "2010,Y,y,1,2011-01-05 14:00:00,1,5,UK\n"
    "2010,Z,z,1,2011-01-05 14:00:00,1,5,UK\n"
    "2009,V,v,1,2011-01-05 14:00:00,1,5,UK\n"
    "2011,X,x,1,2011-01-06 15:00:00,1,6,UK\n";

enum { V, W, X, Y, Z };

static fedreci_dataset *load_log(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/log.csv", tmpdir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(LOG, f);
    assert_int_equal(fclose(f), 0);
    fedreci_dataset *d = NULL;
    assert_int_equal(fedreci_dataset_load(&d, path, NULL, NULL), FEDREC_OK);
    assert_int_equal(fedreci_dataset_n_items(d), 5);
    assert_int_equal(fedreci_dataset_n_users(d), 6);
    return d;
}

static int row_has(const fedreci_mf_csr *m, uint32_t u, uint32_t item)
{
    for (uint64_t k = m->indptr[u]; k < m->indptr[u + 1]; k++)
        if (m->indices[k] == item)
            return 1;
    return 0;
}

static void test_last_basket_split(void **state)
{
    (void)state;
    fedreci_dataset *d = load_log();
    fedreci_split *s = NULL;
    assert_int_equal(fedreci_split_create(&s, d, NULL), FEDREC_OK);
    fedreci_dataset_destroy(d); /* the split does not borrow from the dataset */

    assert_int_equal(s->users, 6);
    assert_int_equal(s->users_single_basket, 2);
    assert_int_equal(s->users_no_new_item, 1);
    assert_int_equal(s->users_only_unseen, 1);
    assert_int_equal(s->test_items_unseen, 1);
    assert_int_equal(s->n_test_users, 2);
    assert_int_equal(s->train_rows, 11);
    assert_int_equal(s->held_out_rows, 6);
    assert_int_equal(s->train_interactions, 10);
    assert_int_equal(s->test_interactions, 3);

    uint32_t n;
    const uint32_t *t = fedreci_split_test(s, 0, &n);
    assert_int_equal(s->test_users[0], 0);
    assert_int_equal(n, 1);
    assert_int_equal(t[0], Z);
    t = fedreci_split_test(s, 1, &n);
    assert_int_equal(s->test_users[1], 4);
    assert_int_equal(n, 2);
    assert_int_equal(t[0], Y);
    assert_int_equal(t[1], Z);

    /* customer 1: the last basket is out of training entirely: Y keeps only
     * its first-basket quantity, and the duplicated Z rows are test only */
    const fedreci_mf_csr *m = &s->train;
    assert_int_equal(m->n_rows, 6);
    assert_int_equal(m->n_cols, 5);
    assert_int_equal(m->indptr[1] - m->indptr[0], 2);
    assert_int_equal(m->indices[0], X);
    assert_int_equal(m->indices[1], Y);
    assert_float_equal(m->conf[0], 1.0 + log(2.0), 1e-6);
    assert_float_equal(m->conf[1], 1.0 + log(3.0), 1e-6);
    assert_false(row_has(m, 0, Z));
    /* customer 3 (no new item) keeps both baskets: X quantity 2 */
    assert_int_equal(m->indptr[3] - m->indptr[2], 1);
    assert_float_equal(m->conf[m->indptr[2]], 1.0 + log(3.0), 1e-6);
    /* customer 4's W is held out and nobody else bought it */
    assert_false(row_has(m, 3, W));
    assert_int_equal(s->item_buyers[W], 0);
    assert_int_equal(s->item_buyers[X], 5);
    assert_int_equal(s->item_buyers[Y], 3);
    assert_int_equal(s->item_buyers[V], 1);
    assert_int_equal(s->item_buyers[Z], 1);
    /* no (customer, item) in both train and test */
    for (uint32_t i = 0; i < s->n_test_users; i++) {
        t = fedreci_split_test(s, i, &n);
        for (uint32_t k = 0; k < n; k++)
            assert_false(row_has(m, s->test_users[i], t[k]));
    }

    /* popularity: order X(5) Y(3) V(1) Z(1) W(0), bought items removed.
     * K = 2: customer 1 gets [V, Z] (hit at 2), customer 5 gets [Y, Z] */
    fedreci_metrics pm;
    assert_int_equal(fedreci_eval_popularity(s, 2, &pm), FEDREC_OK);
    double n2 = 1.0 / log2(3.0);
    assert_int_equal(pm.users, 2);
    assert_float_equal(pm.hr_at_k, 1.0, 1e-12);
    assert_float_equal(pm.precision_at_k, 0.75, 1e-12);
    assert_float_equal(pm.recall_at_k, 1.0, 1e-12);
    assert_float_equal(pm.ndcg_at_k, (n2 + 1.0) / 2.0, 1e-12);
    assert_float_equal(pm.map_at_k, 0.75, 1e-12);
    assert_float_equal(pm.coverage, 0.6, 1e-12);
    /* K = 10, more than the candidates: [V, Z, W] and [Y, Z, W] */
    assert_int_equal(fedreci_eval_popularity(s, 10, &pm), FEDREC_OK);
    assert_float_equal(pm.precision_at_k, 0.15, 1e-12);
    assert_float_equal(pm.ndcg_at_k, (n2 + 1.0) / 2.0, 1e-12);
    assert_float_equal(pm.map_at_k, 0.75, 1e-12);
    assert_float_equal(pm.coverage, 0.8, 1e-12);
    assert_int_equal(fedreci_eval_popularity(s, 0, &pm), FEDREC_ERR_INVALID);
    fedreci_split_destroy(s);
    fedreci_split_destroy(NULL);
}

static void test_temporal_split(void **state)
{
    (void)state;
    fedreci_dataset *d = load_log();
    fedreci_split_options o = {FEDRECI_SPLIT_TEMPORAL, 0};
    assert_int_equal(fedreci_parse_time("2011-01-02 00:00:00", &o.split_time), 0);
    fedreci_split *s = NULL;
    assert_int_equal(fedreci_split_create(&s, d, &o), FEDREC_OK);
    assert_int_equal(s->users_no_test_rows, 1); /* customer 2 */
    assert_int_equal(s->users_cold, 1);         /* customer 6 */
    assert_int_equal(s->users_no_new_item, 1);  /* customer 3 */
    assert_int_equal(s->users_only_unseen, 1);  /* customer 4: W */
    assert_int_equal(s->test_items_unseen, 2);  /* W and customer 5's V */
    assert_int_equal(s->n_test_users, 2);
    uint32_t n;
    const uint32_t *t = fedreci_split_test(s, 0, &n);
    assert_int_equal(s->test_users[0], 0);
    assert_int_equal(n, 1);
    assert_int_equal(t[0], Z);
    t = fedreci_split_test(s, 1, &n);
    assert_int_equal(s->test_users[1], 4);
    assert_int_equal(n, 2);
    assert_int_equal(t[0], Y);
    assert_int_equal(t[1], Z);
    /* the cold customer has an empty training row */
    assert_int_equal(s->train.indptr[6] - s->train.indptr[5], 0);
    assert_int_equal(s->train_rows + s->held_out_rows, 17);
    fedreci_split_destroy(s);

    o.kind = (fedreci_split_kind)7;
    assert_int_equal(fedreci_split_create(&s, d, &o), FEDREC_ERR_INVALID);
    fedreci_dataset_destroy(d);
}

static void test_log_with_nothing_kept(void **state)
{
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "%s/dropped.csv", tmpdir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs("InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
          "C1,X,x,-1,2011-01-01 10:00:00,1,1,UK\n"
          "2,POST,x,1,2011-01-01 10:00:00,1,1,UK\n",
          f);
    assert_int_equal(fclose(f), 0);
    fedreci_dataset *d = NULL;
    fedreci_dataset_report r;
    assert_int_equal(fedreci_dataset_load(&d, path, NULL, &r), FEDREC_OK);
    assert_int_equal(r.rows_kept, 0);
    assert_int_equal(fedreci_dataset_n_users(d), 0);
    uint32_t id;
    assert_int_equal(fedreci_dataset_item_find(d, "X", &id), FEDREC_ERR_NOT_FOUND);
    assert_int_equal(fedreci_dataset_user_find(d, "1", &id), FEDREC_ERR_NOT_FOUND);
    fedreci_split *s = NULL;
    assert_int_equal(fedreci_split_create(&s, d, NULL), FEDREC_OK);
    assert_int_equal(s->n_test_users, 0);
    fedreci_metrics m;
    assert_int_equal(fedreci_eval_popularity(s, 10, &m), FEDREC_ERR_EMPTY);
    fedreci_split_destroy(s);
    fedreci_dataset_destroy(d);
}

/* Validation split: customers 1..4 (A..D), items V W X Y Z as above.
 *  A: {X} {Y} {Z}      test {Z}; validation {Y} (training {X})
 *  B: {X,Y} {Z,V} {W}  test W is unseen; validation {Z,V}, both unseen there
 *  C: {Y} {X}          test {X}; validation: one basket left
 *  D: {X} {Y,Z} {X,V}  test {V}; validation {Y,Z}, Z unseen there */
static const char *const VLOG =
    "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
    "3001,X,x,1,2011-01-01 10:00:00,1,1,UK\n"
    "3002,Y,y,1,2011-01-02 10:00:00,1,1,UK\n"
    "3003,Z,z,1,2011-01-03 10:00:00,1,1,UK\n"
    "3004,X,x,1,2011-01-01 10:00:00,1,2,UK\n"
    "3004,Y,y,1,2011-01-01 10:00:00,1,2,UK\n"
    "3005,Z,z,1,2011-01-02 10:00:00,1,2,UK\n"
    "3005,V,v,1,2011-01-02 10:00:00,1,2,UK\n"
    "3006,W,w,1,2011-01-03 10:00:00,1,2,UK\n"
    "3007,Y,y,1,2011-01-01 10:00:00,1,3,UK\n"
    "3008,X,x,1,2011-01-02 10:00:00,1,3,UK\n"
    "3009,X,x,1,2011-01-01 10:00:00,1,4,UK\n"
    "3010,Y,y,1,2011-01-02 10:00:00,1,4,UK\n"
    "3010,Z,z,1,2011-01-02 10:00:00,1,4,UK\n"
    "3011,X,x,1,2011-01-03 10:00:00,1,4,UK\n"
    "3011,V,v,1,2011-01-03 10:00:00,1,4,UK\n";

static void test_validation_split(void **state)
{
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "%s/vlog.csv", tmpdir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(VLOG, f);
    assert_int_equal(fclose(f), 0);
    fedreci_dataset *d = NULL;
    assert_int_equal(fedreci_dataset_load(&d, path, NULL, NULL), FEDREC_OK);
    fedreci_split *t = NULL, *v = NULL;
    assert_int_equal(fedreci_split_create(&t, d, NULL), FEDREC_OK);
    assert_int_equal(fedreci_split_create_validation(&v, d, NULL), FEDREC_OK);

    /* the test split: A {Z}, C {X}, D {V}; B's W is unseen */
    assert_int_equal(t->n_test_users, 3);
    assert_int_equal(t->test_users[0], 0);
    assert_int_equal(t->test_users[1], 2);
    assert_int_equal(t->test_users[2], 3);
    assert_int_equal(t->users_only_unseen, 1);

    /* the validation split, from the test split's training rows only */
    assert_int_equal(v->users, 4);
    assert_int_equal(v->n_test_users, 2);
    assert_int_equal(v->users_single_basket, 1); /* C */
    assert_int_equal(v->users_only_unseen, 1);   /* B */
    assert_int_equal(v->test_items_unseen, 3);   /* B's Z and V, D's Z */
    assert_int_equal(v->train_rows, 5);
    assert_int_equal(v->held_out_rows, 5);
    assert_int_equal(v->train_interactions, 5);
    uint32_t n;
    const uint32_t *ti = fedreci_split_test(v, 0, &n);
    assert_int_equal(v->test_users[0], 0);
    assert_int_equal(n, 1);
    assert_int_equal(ti[0], Y);
    ti = fedreci_split_test(v, 1, &n);
    assert_int_equal(v->test_users[1], 3);
    assert_int_equal(n, 1);
    assert_int_equal(ti[0], Y);
    /* validation training rows: A {X}, B {X, Y}, C {Y}, D {X} */
    const fedreci_mf_csr *m = &v->train;
    assert_int_equal(m->indptr[1] - m->indptr[0], 1);
    assert_true(row_has(m, 0, X));
    assert_int_equal(m->indptr[2] - m->indptr[1], 2);
    assert_true(row_has(m, 2, Y));
    assert_int_equal(m->indptr[4] - m->indptr[3], 1);
    assert_true(row_has(m, 3, X));
    /* nothing of a test row is in the validation split, as training or target */
    for (uint32_t i = 0; i < t->n_test_users; i++) {
        const uint32_t *tt = fedreci_split_test(t, i, &n);
        for (uint32_t k = 0; k < n; k++)
            assert_false(row_has(m, t->test_users[i], tt[k]));
    }
    assert_int_equal(v->item_buyers[X], 3);
    assert_int_equal(v->item_buyers[Y], 2);
    assert_int_equal(v->item_buyers[Z], 0);
    fedreci_split_destroy(t);
    fedreci_split_destroy(v);
    assert_int_equal(fedreci_split_create_validation(NULL, d, NULL), FEDREC_ERR_INVALID);
    fedreci_dataset_destroy(d);
}

/* ---- bootstrap confidence intervals ------------------------------------------ */

static int ref_cmp(const void *pa, const void *pb)
{
    double a = *(const double *)pa, b = *(const double *)pb;
    return a < b ? -1 : a > b;
}

static void test_bootstrap_known_cases(void **state)
{
    (void)state;
    fedreci_ci ci;
    /* a constant vector: every resample has the same mean */
    double c[100];
    for (int j = 0; j < 100; j++)
        c[j] = 0.25;
    assert_int_equal(fedreci_eval_bootstrap(c, 100, 200, 7, 0.95, &ci), FEDREC_OK);
    assert_true(ci.mean == 0.25 && ci.lo == 0.25 && ci.hi == 0.25);

    /* 0/1 with mean 0.3, n = 20,000: the normal approximation gives
     * 0.3 -+ 1.96 sqrt(0.3 * 0.7 / n) = 0.3 -+ 0.00635. With B = 2,000 the
     * Monte Carlo error of a 2.5% quantile is about 0.0002; allow 0.001. */
    enum { N = 20000 };
    double *v = malloc(N * sizeof *v);
    assert_non_null(v);
    for (int j = 0; j < N; j++)
        v[j] = (j % 10) < 3;
    assert_int_equal(fedreci_eval_bootstrap(v, N, 2000, 1, 0.95, &ci), FEDREC_OK);
    double half = 1.959964 * sqrt(0.3 * 0.7 / N);
    assert_float_equal(ci.mean, 0.3, 1e-12);
    assert_float_equal(ci.lo, 0.3 - half, 1e-3);
    assert_float_equal(ci.hi, 0.3 + half, 1e-3);
    free(v);

    /* fixed seed: recompute the documented procedure here */
    const double w[5] = {0.0, 1.0, 0.5, 0.25, 2.0};
    enum { B = 7 };
    double means[B];
    fedreci_rng st = fedreci_rng_seeded(42); /* splitmix64, checked in test_util */
    for (int r = 0; r < B; r++) {
        double sum = 0;
        for (int j = 0; j < 5; j++)
            sum += w[fedreci_rng_u64(&st) % 5];
        means[r] = sum / 5;
    }
    qsort(means, B, sizeof *means, ref_cmp);
    /* level 0.5: quantiles 0.25 and 0.75 at positions 1.5 and 4.5 of 0..6 */
    double want_lo = (means[1] + means[2]) / 2, want_hi = (means[4] + means[5]) / 2;
    assert_int_equal(fedreci_eval_bootstrap(w, 5, B, 42, 0.5, &ci), FEDREC_OK);
    assert_float_equal(ci.mean, 0.75, 1e-15);
    assert_float_equal(ci.lo, want_lo, 1e-15);
    assert_float_equal(ci.hi, want_hi, 1e-15);
    fedreci_ci again;
    assert_int_equal(fedreci_eval_bootstrap(w, 5, B, 42, 0.5, &again), FEDREC_OK);
    assert_true(again.lo == ci.lo && again.hi == ci.hi);

    /* invalid input */
    assert_int_equal(fedreci_eval_bootstrap(w, 0, B, 42, 0.95, &ci), FEDREC_ERR_INVALID);
    assert_int_equal(fedreci_eval_bootstrap(w, 5, 1, 42, 0.95, &ci), FEDREC_ERR_INVALID);
    assert_int_equal(fedreci_eval_bootstrap(w, 5, B, 42, 1.0, &ci), FEDREC_ERR_INVALID);
    const double bad[2] = {0.0, NAN};
    assert_int_equal(fedreci_eval_bootstrap(bad, 2, B, 42, 0.95, &ci), FEDREC_ERR_INVALID);
}

static void test_paired_comparison(void **state)
{
    (void)state;
    enum { N = 500 };
    double a[N], b[N];
    for (int j = 0; j < N; j++) {
        a[j] = (j * 37 % 11) / 10.0;
        b[j] = a[j] - 0.125; /* exactly representable shift */
    }
    fedreci_paired p;
    /* a model against itself: difference exactly 0, ratio 1, p = 1 */
    assert_int_equal(fedreci_eval_paired(a, a, N, 300, 3, 0.95, &p), FEDREC_OK);
    assert_int_equal(p.n, N);
    assert_true(p.diff.mean == 0.0 && p.diff.lo == 0.0 && p.diff.hi == 0.0);
    assert_float_equal(p.ratio.mean, 1.0, 1e-15);
    assert_float_equal(p.ratio.lo, 1.0, 1e-15);
    assert_float_equal(p.ratio.hi, 1.0, 1e-15);
    assert_float_equal(p.p_value, 1.0, 1e-15);
    /* a constant shift: every resample differs by 0.125; p = 1 / (B + 1) */
    assert_int_equal(fedreci_eval_paired(a, b, N, 300, 3, 0.95, &p), FEDREC_OK);
    assert_float_equal(p.diff.mean, 0.125, 1e-12);
    assert_float_equal(p.diff.lo, 0.125, 1e-12);
    assert_float_equal(p.diff.hi, 0.125, 1e-12);
    assert_float_equal(p.p_value, 1.0 / 301.0, 1e-15);
    assert_float_equal(p.ratio.mean, p.mean_a / p.mean_b, 1e-12);
    assert_true(p.ratio.lo <= p.ratio.mean && p.ratio.mean <= p.ratio.hi);
    /* the paired resamples use the same indices as the one-sample bootstrap */
    fedreci_ci ca;
    assert_int_equal(fedreci_eval_bootstrap(a, N, 300, 3, 0.95, &ca), FEDREC_OK);
    assert_float_equal(p.mean_a, ca.mean, 1e-15);
    /* ratio m / (m - 0.125) falls with m: its CI ends come from the other end */
    assert_float_equal(p.ratio.lo, ca.hi / (ca.hi - 0.125), 1e-4);
    assert_float_equal(p.ratio.hi, ca.lo / (ca.lo - 0.125), 1e-4);
    assert_int_equal(fedreci_eval_paired(a, NULL, N, 300, 3, 0.95, &p), FEDREC_ERR_INVALID);
}

static void test_accumulator_values(void **state)
{
    (void)state;
    fedreci_eval_acc *a = NULL;
    assert_int_equal(fedreci_eval_acc_create(&a, 10, 2), FEDREC_OK);
    const uint32_t r1[] = {1, 2, 3}, t1[] = {2};
    const uint32_t r2[] = {4, 1}, t2[] = {7, 8};
    /* 300 users: the value arrays grow past their first allocation */
    for (int j = 0; j < 150; j++) {
        assert_int_equal(fedreci_eval_acc_add(a, r1, 3, t1, 1), FEDREC_OK);
        assert_int_equal(fedreci_eval_acc_add(a, r2, 2, t2, 2), FEDREC_OK);
    }
    const double *v;
    uint32_t n;
    assert_int_equal(fedreci_eval_acc_values(a, FEDRECI_METRIC_HR, &v, &n), FEDREC_OK);
    assert_int_equal(n, 300);
    for (uint32_t j = 0; j < n; j++)
        assert_true(v[j] == (j % 2 == 0 ? 1.0 : 0.0));
    assert_int_equal(fedreci_eval_acc_values(a, FEDRECI_METRIC_NDCG, &v, &n), FEDREC_OK);
    assert_float_equal(v[298], 1.0 / log2(3.0), 1e-15);
    assert_int_equal(fedreci_eval_acc_values(a, FEDRECI_METRIC_PRECISION, &v, &n), FEDREC_OK);
    assert_float_equal(v[0], 0.5, 1e-15);
    assert_int_equal(fedreci_eval_acc_values(a, (fedreci_metric_id)5, &v, &n), FEDREC_ERR_INVALID);
    fedreci_eval_acc_destroy(a);
}

/* ---- item-to-item baselines ------------------------------------------------------ */

/* 6 shoppers x 4 items (binary; the confidences must not matter). */
static const uint64_t TINY_INDPTR[7] = {0, 2, 5, 8, 10, 11, 15};
static const uint32_t TINY_INDICES[15] = {0, 1, 0, 1, 2, 1, 2, 3, 0, 3, 2, 0, 1, 2, 3};
static const float TINY_CONF[15] = {1, 2, 3, 1, 1, 5, 1, 1, 2, 1, 1, 1, 1, 1, 4};

static double tiny_x(uint32_t u, uint32_t i)
{
    for (uint64_t j = TINY_INDPTR[u]; j < TINY_INDPTR[u + 1]; j++)
        if (TINY_INDICES[j] == i)
            return 1.0;
    return 0.0;
}

/* Solves the n x n system a x = b in place (Gaussian elimination with
 * partial pivoting, double); b becomes x. */
static void gauss_solve(double *a, double *b, int n)
{
    for (int c = 0; c < n; c++) {
        int piv = c;
        for (int r = c + 1; r < n; r++)
            if (fabs(a[r * n + c]) > fabs(a[piv * n + c]))
                piv = r;
        for (int k = 0; k < n; k++) {
            double t = a[c * n + k];
            a[c * n + k] = a[piv * n + k];
            a[piv * n + k] = t;
        }
        double t = b[c];
        b[c] = b[piv];
        b[piv] = t;
        for (int r = 0; r < n; r++) {
            if (r == c)
                continue;
            double f = a[r * n + c] / a[c * n + c];
            for (int k = 0; k < n; k++)
                a[r * n + k] -= f * a[c * n + k];
            b[r] -= f * b[c];
        }
    }
    for (int c = 0; c < n; c++)
        b[c] /= a[c * n + c];
}

static void test_ease_matches_brute_force(void **state)
{
    (void)state;
    enum { U = 6, N = 4 };
    fedreci_mf_csr r = {U, N, TINY_INDPTR, TINY_INDICES, TINY_CONF};
    float g[N * N], b[N * N];
    assert_int_equal(fedreci_item_cooc(&r, g), FEDREC_OK);
    /* co-occurrence counts by hand: items 0 and 1 together for shoppers 0, 1, 5 */
    assert_float_equal(g[0 * N + 1], 3.0, 0);
    assert_float_equal(g[1 * N + 0], 3.0, 0);
    assert_float_equal(g[0 * N + 0], 4.0, 0);
    assert_float_equal(g[2 * N + 3], 2.0, 0);
    const double lambdas[2] = {0.5, 3.0};
    for (int l = 0; l < 2; l++) {
        assert_int_equal(fedreci_ease_weights(g, N, (float)lambdas[l], b), FEDREC_OK);
        /* Steck 2019 by definition: column j of B is the ridge regression
         * of item j's column of X on the other items' columns (no self-weight):
         * (X_-j^T X_-j + lambda I) beta = X_-j^T x_j, computed from X here. */
        for (int j = 0; j < N; j++) {
            double a[(N - 1) * (N - 1)], rhs[N - 1];
            int others[N - 1], m = 0;
            for (int i = 0; i < N; i++)
                if (i != j)
                    others[m++] = i;
            for (int p = 0; p < N - 1; p++) {
                rhs[p] = 0;
                for (int u = 0; u < U; u++)
                    rhs[p] += tiny_x(u, others[p]) * tiny_x(u, j);
                for (int q = 0; q < N - 1; q++) {
                    double v = p == q ? lambdas[l] : 0.0;
                    for (int u = 0; u < U; u++)
                        v += tiny_x(u, others[p]) * tiny_x(u, others[q]);
                    a[p * (N - 1) + q] = v;
                }
            }
            gauss_solve(a, rhs, N - 1);
            assert_float_equal(b[j * N + j], 0.0, 0);
            for (int p = 0; p < N - 1; p++)
                assert_float_equal(b[others[p] * N + j], rhs[p], 1e-5);
        }
    }
    assert_int_equal(fedreci_ease_weights(g, N, 0.0f, b), FEDREC_ERR_INVALID);
    /* lambda = 0 and a singular G: not positive definite */
    float sing[4] = {1, 1, 1, 1};
    assert_int_equal(fedreci_ease_weights(sing, 2, 1e-30f, b), FEDREC_ERR_NUMERIC);
}

static void test_itemknn_hand_computed(void **state)
{
    (void)state;
    /* 3 shoppers {0,1}, {0,1,2}, {1,2}: G00 = 2, G11 = 3, G22 = 2, G01 = 2,
     * G02 = 1, G12 = 2; cosine S01 = S12 = 2 / sqrt(6), S02 = 1 / 2. */
    const uint64_t ip[4] = {0, 2, 5, 7};
    const uint32_t ix[7] = {0, 1, 0, 1, 2, 1, 2};
    const float cf[7] = {1, 1, 1, 1, 1, 1, 1};
    fedreci_mf_csr r = {3, 3, ip, ix, cf};
    float g[9], w[9];
    assert_int_equal(fedreci_item_cooc(&r, g), FEDREC_OK);
    const double s01 = 2.0 / sqrt(6.0), s02 = 0.5;
    /* every neighbour kept: the full cosine, zero diagonal */
    assert_int_equal(fedreci_itemknn_weights(g, 3, 10, 0.0f, w), FEDREC_OK);
    const double full[9] = {0, s01, s02, s01, 0, s01, s02, s01, 0};
    for (int j = 0; j < 9; j++)
        assert_float_equal(w[j], full[j], 1e-6);
    /* one neighbour per column: column 0 keeps item 1 (s01 > s02), column 1
     * has a tie between items 0 and 2 and keeps the lower, column 2 keeps 1 */
    assert_int_equal(fedreci_itemknn_weights(g, 3, 1, 0.0f, w), FEDREC_OK);
    const double one[9] = {0, s01, 0, s01, 0, s01, 0, 0, 0};
    for (int j = 0; j < 9; j++)
        assert_float_equal(w[j], one[j], 1e-6);
    /* shrink 1: S01 = 2 / (sqrt(6) + 1) */
    assert_int_equal(fedreci_itemknn_weights(g, 3, 2, 1.0f, w), FEDREC_OK);
    assert_float_equal(w[0 * 3 + 1], 2.0 / (sqrt(6.0) + 1.0), 1e-6);
    assert_float_equal(w[0 * 3 + 2], 1.0 / 3.0, 1e-6);
    /* scores of a shopper who bought item 0 under the 1-neighbour model,
     * then the top items with the bought one excluded: [1, 2] */
    assert_int_equal(fedreci_itemknn_weights(g, 3, 1, 0.0f, w), FEDREC_OK);
    float sc[3];
    const uint32_t bought[1] = {0};
    fedreci_item_item_scores(w, 3, bought, 1, sc);
    assert_float_equal(sc[0], 0.0, 0);
    assert_float_equal(sc[1], s01, 1e-6);
    assert_float_equal(sc[2], 0.0, 0);
    uint32_t top[3], n;
    assert_int_equal(fedreci_topk_scores(sc, 3, bought, 1, 3, top, &n), FEDREC_OK);
    assert_int_equal(n, 2);
    assert_int_equal(top[0], 1);
    assert_int_equal(top[1], 2);
    assert_int_equal(fedreci_itemknn_weights(g, 3, 0, 0.0f, w), FEDREC_ERR_INVALID);
}

/* ---- the full log ------------------------------------------------------------ */

static void full_log(int drop_non_product, uint32_t want_test_users, double want_hr,
                     double want_ndcg)
{
    fedreci_dataset_options o;
    fedreci_dataset_options_default(&o);
    static const char *const none[1] = {""};
    if (!drop_non_product) {
        o.non_product = none;
        o.n_non_product = 0;
    }
    fedreci_dataset *d = NULL;
    assert_int_equal(fedreci_dataset_load(&d, FEDREC_DATA_DIR "/online_retail.csv.gz", &o, NULL),
                     FEDREC_OK);
    fedreci_split *s = NULL;
    assert_int_equal(fedreci_split_create(&s, d, NULL), FEDREC_OK);
    assert_int_equal(s->n_test_users, want_test_users);
    fedreci_metrics m;
    assert_int_equal(fedreci_eval_popularity(s, FEDRECI_EVAL_DEFAULT_K, &m), FEDREC_OK);
    assert_int_equal(m.users, want_test_users);
    assert_float_equal(m.hr_at_k, want_hr, 5e-5);
    assert_float_equal(m.ndcg_at_k, want_ndcg, 5e-5);
    if (drop_non_product) {
        assert_int_equal(s->users_single_basket, 1505);
        assert_int_equal(s->users_no_new_item, 331);
        assert_int_equal(s->users_only_unseen, 3);
        assert_int_equal(s->test_items_unseen, 17);
        assert_int_equal(s->train_interactions, 228289);
        assert_int_equal(s->test_interactions, 37918);
        /* HR is a count over test users: 585 of 2,495 */
        assert_int_equal((int)lround(m.hr_at_k * m.users), 585);
    }
    fedreci_split_destroy(s);
    fedreci_dataset_destroy(d);
}

static void test_full_log_last_basket_popularity(void **state)
{
    (void)state;
    full_log(1, 2495, 0.23447, 0.03500);
}

static void test_full_log_keeping_non_products_matches_design(void **state)
{
    (void)state;
    /* docs/design.md section 8's 2,502 is this split before unseen test items are
     * skipped, with non-product codes kept; popularity 0.230 / 0.034 */
    full_log(0, 2499, 0.23049, 0.03438);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_user_metrics_hand_computed),
        cmocka_unit_test(test_accumulator),
        cmocka_unit_test(test_last_basket_split),
        cmocka_unit_test(test_temporal_split),
        cmocka_unit_test(test_log_with_nothing_kept),
        cmocka_unit_test(test_validation_split),
        cmocka_unit_test(test_bootstrap_known_cases),
        cmocka_unit_test(test_paired_comparison),
        cmocka_unit_test(test_accumulator_values),
        cmocka_unit_test(test_ease_matches_brute_force),
        cmocka_unit_test(test_itemknn_hand_computed),
        cmocka_unit_test(test_full_log_last_basket_popularity),
        cmocka_unit_test(test_full_log_keeping_non_products_matches_design),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
