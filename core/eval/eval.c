/* Splits, ranking metrics and the popularity baseline; see eval.h. */
#include "core/eval/eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/rng.h"

/* The public struct first, so a fedreci_split * is also a split_impl *. */
typedef struct split_impl {
    fedreci_split pub;
    uint64_t *indptr;
    uint32_t *indices;
    float *conf;
    uint32_t *tusers;
    uint64_t *tindptr;
    uint32_t *titems;
    uint32_t *buyers;
} split_impl;

void fedreci_split_destroy(fedreci_split *s)
{
    if (!s)
        return;
    split_impl *p = (split_impl *)s;
    free(p->indptr);
    free(p->indices);
    free(p->conf);
    free(p->tusers);
    free(p->tindptr);
    free(p->titems);
    free(p->buyers);
    free(p);
}

fedrec_err fedreci_split_adopt(fedreci_split **out, uint32_t n_users, uint32_t n_items,
                               uint64_t *indptr, uint32_t *indices, float *conf,
                               uint32_t n_test_users, uint32_t *test_users, uint64_t *test_indptr,
                               uint32_t *test_items, const fedreci_split *counts)
{
    split_impl *p = calloc(1, sizeof *p);
    uint32_t *buyers = calloc(n_items ? n_items : 1, sizeof *buyers);
    if (!p || !buyers) {
        free(p);
        free(buyers);
        free(indptr);
        free(indices);
        free(conf);
        free(test_users);
        free(test_indptr);
        free(test_items);
        return fedreci_error(FEDREC_ERR_NOMEM, "split of %u users", n_users);
    }
    if (counts)
        p->pub = *counts;
    p->indptr = indptr;
    p->indices = indices;
    p->conf = conf;
    p->tusers = test_users;
    p->tindptr = test_indptr;
    p->titems = test_items;
    p->buyers = buyers;
    for (uint64_t j = 0; j < indptr[n_users]; j++)
        if (indices[j] < n_items)
            buyers[indices[j]]++;
    fedreci_split *s = &p->pub;
    s->train.n_rows = n_users;
    s->train.n_cols = n_items;
    s->train.indptr = indptr;
    s->train.indices = indices;
    s->train.conf = conf;
    s->n_test_users = n_test_users;
    s->test_users = test_users;
    s->test_indptr = test_indptr;
    s->test_items = test_items;
    s->item_buyers = buyers;
    s->train_interactions = indptr[n_users];
    s->test_interactions = test_indptr[n_test_users];
    *out = s;
    return FEDREC_OK;
}

static int cmp_u32_asc(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

fedrec_err fedreci_split_sample_test(fedreci_split *s, uint32_t n, uint64_t seed)
{
    split_impl *p = (split_impl *)s;
    const uint32_t nt = s->n_test_users;
    if (n == 0 || n >= nt)
        return FEDREC_OK;
    uint32_t *pick = malloc((size_t)nt * sizeof *pick);
    if (!pick)
        return fedreci_error(FEDREC_ERR_NOMEM, "test sample of %u", n);
    for (uint32_t i = 0; i < nt; i++)
        pick[i] = i;
    fedreci_rng g = fedreci_rng_seeded(fedreci_rng_mix(seed ^ 0x74657374ull));
    for (uint32_t i = 0; i < n; i++) {
        uint32_t j = i + (uint32_t)fedreci_rng_below(&g, nt - i), t = pick[i];
        pick[i] = pick[j];
        pick[j] = t;
    }
    qsort(pick, n, sizeof *pick, cmp_u32_asc);
    /* compact in place: pick is ascending, so every move goes left */
    uint64_t k = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t t = pick[i];
        uint64_t lo = p->tindptr[t], hi = p->tindptr[t + 1];
        p->tusers[i] = p->tusers[t];
        memmove(p->titems + k, p->titems + lo, (size_t)(hi - lo) * sizeof *p->titems);
        p->tindptr[i] = k;
        k += hi - lo;
    }
    p->tindptr[n] = k;
    free(pick);
    s->n_test_users = n;
    s->test_interactions = k;
    return FEDREC_OK;
}

const uint32_t *fedreci_split_test(const fedreci_split *s, uint32_t t, uint32_t *n)
{
    if (t >= s->n_test_users) {
        *n = 0;
        return NULL;
    }
    *n = (uint32_t)(s->test_indptr[t + 1] - s->test_indptr[t]);
    return s->test_items + s->test_indptr[t];
}

typedef struct item_q {
    uint32_t item;
    double q;
} item_q;

static int cmp_item_q(const void *pa, const void *pb)
{
    const item_q *a = pa, *b = pb;
    return a->item < b->item ? -1 : a->item > b->item;
}

static int cmp_u32(const void *pa, const void *pb)
{
    uint32_t a = *(const uint32_t *)pa, b = *(const uint32_t *)pb;
    return a < b ? -1 : a > b;
}

/* Builds the split of the events ev[0..n_ev) (sorted by user, time, basket,
 * item) into the zeroed split p. When train_mark is non-NULL, train_mark[j]
 * is set to 1 for every training row j and 0 for the others. */
static fedrec_err build_split(split_impl *p, const fedreci_dataset_event *ev, uint64_t n_ev,
                              uint32_t n_users, uint32_t n_items, uint64_t n_baskets, double alpha,
                              double eps, fedreci_split_kind kind, int64_t cut, uint8_t *train_mark)
{
    uint32_t *bstamp = calloc(n_baskets ? n_baskets : 1, sizeof *bstamp);
    uint32_t *istamp = calloc(n_items ? n_items : 1, sizeof *istamp);
    item_q *tmp = malloc((n_ev ? n_ev : 1) * sizeof *tmp);
    uint32_t *cand = malloc((n_ev ? n_ev : 1) * sizeof *cand);
    fedrec_err e = FEDREC_OK;
    if (!bstamp || !istamp || !tmp || !cand)
        goto nomem;
    p->indptr = calloc((size_t)n_users + 1, sizeof *p->indptr);
    p->indices = malloc((n_ev ? n_ev : 1) * sizeof *p->indices);
    p->conf = malloc((n_ev ? n_ev : 1) * sizeof *p->conf);
    p->tusers = malloc((size_t)(n_users ? n_users : 1) * sizeof *p->tusers);
    p->tindptr = calloc((size_t)n_users + 1, sizeof *p->tindptr);
    p->titems = malloc((n_ev ? n_ev : 1) * sizeof *p->titems);
    p->buyers = calloc(n_items ? n_items : 1, sizeof *p->buyers);
    if (!p->indptr || !p->indices || !p->conf || !p->tusers || !p->tindptr || !p->titems ||
        !p->buyers)
        goto nomem;
    fedreci_split *s = &p->pub;
    s->users = n_users;

    uint64_t nnz = 0, ntest = 0, a = 0;
    uint32_t nt = 0;
    for (uint32_t u = 0; u < n_users; u++) {
        uint64_t b = a;
        while (b < n_ev && ev[b].user == u)
            b++;
        /* decide which rows train and which items are test candidates */
        uint32_t stamp = u + 1;
        size_t n_cand = 0;
        int held_basket = 0;
        uint32_t last = 0;
        if (a == b) {
            /* no rows (possible in a validation split): nothing to decide */
        } else if (kind == FEDRECI_SPLIT_LAST_BASKET) {
            uint32_t nb = 0;
            for (uint64_t k = a; k < b; k++)
                if (bstamp[ev[k].basket] != stamp) {
                    bstamp[ev[k].basket] = stamp;
                    nb++;
                }
            if (nb < 2) {
                s->users_single_basket++;
            } else {
                last = ev[b - 1].basket; /* rows sorted by (time, basket, item) */
                for (uint64_t k = a; k < b; k++)
                    if (ev[k].basket != last)
                        istamp[ev[k].item] = stamp;
                for (uint64_t k = a; k < b; k++)
                    if (ev[k].basket == last && istamp[ev[k].item] != stamp) {
                        istamp[ev[k].item] = stamp; /* each new item once */
                        cand[n_cand++] = ev[k].item;
                    }
                if (n_cand == 0)
                    s->users_no_new_item++;
                else
                    held_basket = 1;
            }
        } else {
            int any_train = 0, any_test = 0;
            for (uint64_t k = a; k < b; k++) {
                if (ev[k].time < cut) {
                    istamp[ev[k].item] = stamp;
                    any_train = 1;
                } else {
                    any_test = 1;
                }
            }
            if (!any_test) {
                s->users_no_test_rows++;
            } else if (!any_train) {
                s->users_cold++;
            } else {
                for (uint64_t k = a; k < b; k++)
                    if (ev[k].time >= cut && istamp[ev[k].item] != stamp) {
                        istamp[ev[k].item] = stamp;
                        cand[n_cand++] = ev[k].item;
                    }
                if (n_cand == 0)
                    s->users_no_new_item++;
            }
        }
        /* training rows of u, merged per item */
        size_t m = 0;
        for (uint64_t k = a; k < b; k++) {
            int is_train = kind == FEDRECI_SPLIT_LAST_BASKET
                               ? !(held_basket && ev[k].basket == last)
                               : ev[k].time < cut;
            if (train_mark)
                train_mark[k] = (uint8_t)is_train;
            if (is_train) {
                tmp[m].item = ev[k].item;
                tmp[m].q = ev[k].quantity;
                m++;
            } else {
                s->held_out_rows++;
            }
        }
        s->train_rows += m;
        qsort(tmp, m, sizeof *tmp, cmp_item_q);
        for (size_t k = 0; k < m;) {
            size_t k2 = k;
            double q = 0;
            while (k2 < m && tmp[k2].item == tmp[k].item)
                q += tmp[k2++].q;
            p->indices[nnz] = tmp[k].item;
            p->conf[nnz] = fedreci_dataset_confidence(q, alpha, eps);
            p->buyers[tmp[k].item]++;
            nnz++;
            k = k2;
        }
        p->indptr[u + 1] = nnz;
        if (n_cand) {
            qsort(cand, n_cand, sizeof *cand, cmp_u32);
            p->tusers[nt] = u;
            memcpy(p->titems + ntest, cand, n_cand * sizeof *cand);
            ntest += n_cand;
            p->tindptr[++nt] = ntest;
        }
        a = b;
    }
    /* drop test items nobody bought in training */
    uint64_t w = 0;
    uint32_t wt = 0;
    uint64_t next = 0; /* original start of user t's items (tindptr is rewritten in place) */
    for (uint32_t t = 0; t < nt; t++) {
        uint64_t start = w, from = next, to = p->tindptr[t + 1];
        next = to;
        for (uint64_t k = from; k < to; k++) {
            if (p->buyers[p->titems[k]] == 0)
                s->test_items_unseen++;
            else
                p->titems[w++] = p->titems[k];
        }
        if (w == start) {
            s->users_only_unseen++;
            continue;
        }
        p->tusers[wt] = p->tusers[t];
        p->tindptr[++wt] = w;
    }
    s->train.n_rows = n_users;
    s->train.n_cols = n_items;
    s->train.indptr = p->indptr;
    s->train.indices = p->indices;
    s->train.conf = p->conf;
    s->n_test_users = wt;
    s->test_users = p->tusers;
    s->test_indptr = p->tindptr;
    s->test_items = p->titems;
    s->item_buyers = p->buyers;
    s->train_interactions = nnz;
    s->test_interactions = w;
    goto done;
nomem:
    e = fedreci_error(FEDREC_ERR_NOMEM, "out of memory building a split");
done:
    free(bstamp);
    free(istamp);
    free(tmp);
    free(cand);
    return e;
}

static fedrec_err split_create(fedreci_split **out, const fedreci_dataset *d,
                               const fedreci_split_options *opts, int validation)
{
    if (!out || !d)
        return fedreci_error(FEDREC_ERR_INVALID, "split: NULL argument");
    fedreci_split_kind kind = opts ? opts->kind : FEDRECI_SPLIT_LAST_BASKET;
    if (kind != FEDRECI_SPLIT_LAST_BASKET && kind != FEDRECI_SPLIT_TEMPORAL)
        return fedreci_error(FEDREC_ERR_INVALID, "split: unknown kind %d", (int)kind);
    int64_t cut = opts ? opts->split_time : 0;
    uint64_t n_ev;
    const fedreci_dataset_event *ev = fedreci_dataset_events(d, &n_ev);
    uint32_t n_users = fedreci_dataset_n_users(d), n_items = fedreci_dataset_n_items(d);
    uint64_t n_baskets = fedreci_dataset_n_baskets(d);
    double alpha = fedreci_dataset_alpha(d), eps = fedreci_dataset_eps(d);

    split_impl *p = calloc(1, sizeof *p), *base = NULL;
    uint8_t *mark = NULL;
    fedreci_dataset_event *kept = NULL;
    fedrec_err e = FEDREC_OK;
    if (!p)
        goto nomem;
    if (!validation) {
        e = build_split(p, ev, n_ev, n_users, n_items, n_baskets, alpha, eps, kind, cut, NULL);
    } else {
        /* The test split's training rows, then leave-last-basket-out on them. */
        base = calloc(1, sizeof *base);
        mark = malloc(n_ev ? n_ev : 1);
        if (!base || !mark)
            goto nomem;
        e = build_split(base, ev, n_ev, n_users, n_items, n_baskets, alpha, eps, kind, cut, mark);
        if (e)
            goto done;
        uint64_t m = 0;
        for (uint64_t j = 0; j < n_ev; j++)
            m += mark[j];
        kept = malloc((m ? m : 1) * sizeof *kept);
        if (!kept)
            goto nomem;
        m = 0;
        for (uint64_t j = 0; j < n_ev; j++)
            if (mark[j])
                kept[m++] = ev[j];
        e = build_split(p, kept, m, n_users, n_items, n_baskets, alpha, eps,
                        FEDRECI_SPLIT_LAST_BASKET, 0, NULL);
    }
    if (!e) {
        *out = &p->pub;
        p = NULL;
    }
    goto done;
nomem:
    e = fedreci_error(FEDREC_ERR_NOMEM, "out of memory building a split");
done:
    fedreci_split_destroy(p ? &p->pub : NULL);
    fedreci_split_destroy(base ? &base->pub : NULL);
    free(mark);
    free(kept);
    return e;
}

fedrec_err fedreci_split_create(fedreci_split **out, const fedreci_dataset *d,
                                const fedreci_split_options *opts)
{
    return split_create(out, d, opts, 0);
}

fedrec_err fedreci_split_create_validation(fedreci_split **out, const fedreci_dataset *d,
                                           const fedreci_split_options *opts)
{
    return split_create(out, d, opts, 1);
}

/* ---- metrics ------------------------------------------------------------------ */

static int in_sorted(const uint32_t *v, uint32_t n, uint32_t x)
{
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (v[mid] == x)
            return 1;
        if (v[mid] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

static fedrec_err check_test(const uint32_t *test, uint32_t n_test, uint32_t K)
{
    if (K == 0)
        return fedreci_error(FEDREC_ERR_INVALID, "metrics: K must be > 0");
    if (n_test == 0 || !test)
        return fedreci_error(FEDREC_ERR_INVALID, "metrics: empty test set");
    for (uint32_t i = 1; i < n_test; i++)
        if (test[i] <= test[i - 1])
            return fedreci_error(FEDREC_ERR_INVALID,
                                 "metrics: test items must be ascending and distinct");
    return FEDREC_OK;
}

static void user_metrics(const uint32_t *ranked, uint32_t n_ranked, const uint32_t *test,
                         uint32_t n_test, uint32_t K, double *hr, double *prec, double *rec,
                         double *ndcg, double *ap)
{
    uint32_t n = n_ranked < K ? n_ranked : K;
    uint32_t hits = 0;
    double dcg = 0, sum_prec = 0;
    for (uint32_t r = 0; r < n; r++) {
        if (!in_sorted(test, n_test, ranked[r]))
            continue;
        hits++;
        dcg += 1.0 / log2((double)r + 2.0);
        sum_prec += (double)hits / (double)(r + 1);
    }
    uint32_t ideal = n_test < K ? n_test : K;
    double idcg = 0;
    for (uint32_t r = 0; r < ideal; r++)
        idcg += 1.0 / log2((double)r + 2.0);
    *hr = hits > 0;
    *prec = (double)hits / K;
    *rec = (double)hits / n_test;
    *ndcg = dcg / idcg;
    *ap = sum_prec / ideal;
}

fedrec_err fedreci_eval_user(const uint32_t *ranked, uint32_t n_ranked, const uint32_t *test,
                             uint32_t n_test, uint32_t K, fedreci_metrics *out)
{
    fedrec_err e = check_test(test, n_test, K);
    if (e)
        return e;
    if (!out || (n_ranked && !ranked))
        return fedreci_error(FEDREC_ERR_INVALID, "metrics: NULL argument");
    fedreci_metrics m = {0};
    m.k = K;
    m.users = 1;
    user_metrics(ranked, n_ranked, test, n_test, K, &m.hr_at_k, &m.precision_at_k, &m.recall_at_k,
                 &m.ndcg_at_k, &m.map_at_k);
    *out = m;
    return FEDREC_OK;
}

struct fedreci_eval_acc {
    uint32_t n_items, K;
    uint32_t users;
    double hr, prec, rec, ndcg, ap;
    uint8_t *recommended; /* n_items flags */
    uint32_t n_recommended;
    uint32_t *seen; /* n_items stamps for the duplicate check */
    uint32_t stamp;
    double *values[FEDRECI_METRIC_COUNT]; /* per user, in the order added */
    uint32_t cap;                         /* users the value arrays hold */
};

fedrec_err fedreci_eval_acc_create(fedreci_eval_acc **out, uint32_t n_items, uint32_t K)
{
    if (!out || K == 0 || n_items == 0)
        return fedreci_error(FEDREC_ERR_INVALID, "metrics: need K > 0 and n_items > 0");
    fedreci_eval_acc *a = calloc(1, sizeof *a);
    if (a) {
        a->recommended = calloc(n_items, 1);
        a->seen = calloc(n_items, sizeof *a->seen);
    }
    if (!a || !a->recommended || !a->seen) {
        fedreci_eval_acc_destroy(a);
        return fedreci_error(FEDREC_ERR_NOMEM, "out of memory for a metrics accumulator");
    }
    a->n_items = n_items;
    a->K = K;
    *out = a;
    return FEDREC_OK;
}

void fedreci_eval_acc_destroy(fedreci_eval_acc *a)
{
    if (!a)
        return;
    free(a->recommended);
    free(a->seen);
    for (uint32_t m = 0; m < FEDRECI_METRIC_COUNT; m++)
        free(a->values[m]);
    free(a);
}

fedrec_err fedreci_eval_acc_add(fedreci_eval_acc *a, const uint32_t *ranked, uint32_t n_ranked,
                                const uint32_t *test, uint32_t n_test)
{
    if (!a || (n_ranked && !ranked))
        return fedreci_error(FEDREC_ERR_INVALID, "metrics: NULL argument");
    fedrec_err e = check_test(test, n_test, a->K);
    if (e)
        return e;
    if (test[n_test - 1] >= a->n_items)
        return fedreci_error(FEDREC_ERR_INVALID, "metrics: test item %u >= n_items %u",
                             test[n_test - 1], a->n_items);
    uint32_t n = n_ranked < a->K ? n_ranked : a->K;
    if (++a->stamp == 0) { /* wrapped: reset the stamps */
        memset(a->seen, 0, (size_t)a->n_items * sizeof *a->seen);
        a->stamp = 1;
    }
    for (uint32_t r = 0; r < n; r++) {
        if (ranked[r] >= a->n_items)
            return fedreci_error(FEDREC_ERR_INVALID, "metrics: ranked item %u >= n_items %u",
                                 ranked[r], a->n_items);
        if (a->seen[ranked[r]] == a->stamp)
            return fedreci_error(FEDREC_ERR_INVALID, "metrics: item %u ranked twice", ranked[r]);
        a->seen[ranked[r]] = a->stamp;
    }
    if (a->users == a->cap) {
        uint32_t cap = a->cap ? a->cap * 2 : 256;
        if (cap <= a->cap)
            return fedreci_error(FEDREC_ERR_TOO_BIG, "metrics: too many users");
        for (uint32_t m = 0; m < FEDRECI_METRIC_COUNT; m++) {
            double *v = realloc(a->values[m], (size_t)cap * sizeof *v);
            if (!v)
                return fedreci_error(FEDREC_ERR_NOMEM, "out of memory for per-user metrics");
            a->values[m] = v;
        }
        a->cap = cap;
    }
    double hr, prec, rec, ndcg, ap;
    user_metrics(ranked, n_ranked, test, n_test, a->K, &hr, &prec, &rec, &ndcg, &ap);
    a->values[FEDRECI_METRIC_HR][a->users] = hr;
    a->values[FEDRECI_METRIC_PRECISION][a->users] = prec;
    a->values[FEDRECI_METRIC_RECALL][a->users] = rec;
    a->values[FEDRECI_METRIC_NDCG][a->users] = ndcg;
    a->values[FEDRECI_METRIC_MAP][a->users] = ap;
    a->hr += hr;
    a->prec += prec;
    a->rec += rec;
    a->ndcg += ndcg;
    a->ap += ap;
    a->users++;
    for (uint32_t r = 0; r < n; r++)
        if (!a->recommended[ranked[r]]) {
            a->recommended[ranked[r]] = 1;
            a->n_recommended++;
        }
    return FEDREC_OK;
}

fedrec_err fedreci_eval_acc_finish(const fedreci_eval_acc *a, fedreci_metrics *out)
{
    if (!a || !out)
        return fedreci_error(FEDREC_ERR_INVALID, "metrics: NULL argument");
    if (a->users == 0)
        return fedreci_error(FEDREC_ERR_EMPTY, "metrics: no test user was added");
    fedreci_metrics m = {0};
    double n = a->users;
    m.k = a->K;
    m.users = a->users;
    m.hr_at_k = a->hr / n;
    m.precision_at_k = a->prec / n;
    m.recall_at_k = a->rec / n;
    m.ndcg_at_k = a->ndcg / n;
    m.map_at_k = a->ap / n;
    m.items_recommended = a->n_recommended;
    m.coverage = (double)a->n_recommended / a->n_items;
    *out = m;
    return FEDREC_OK;
}

fedrec_err fedreci_eval_acc_values(const fedreci_eval_acc *a, fedreci_metric_id m,
                                   const double **values, uint32_t *n)
{
    if (!a || !values || !n || (unsigned)m >= FEDRECI_METRIC_COUNT)
        return fedreci_error(FEDREC_ERR_INVALID, "metrics: NULL argument or unknown metric %d",
                             (int)m);
    *values = a->values[m];
    *n = a->users;
    return FEDREC_OK;
}

/* ---- bootstrap ------------------------------------------------------------------ */

static int cmp_double(const void *pa, const void *pb)
{
    double a = *(const double *)pa, b = *(const double *)pb;
    return a < b ? -1 : a > b;
}

/* Type-7 quantile of sorted v[0..n). */
static double quantile(const double *v, uint32_t n, double q)
{
    double h = q * (double)(n - 1);
    uint32_t lo = (uint32_t)floor(h);
    if (lo >= n - 1)
        return v[n - 1];
    return v[lo] + (h - lo) * (v[lo + 1] - v[lo]);
}

static fedrec_err boot_check(const double *a, const double *b, size_t n, uint32_t B, double level,
                             const void *out)
{
    if (!a || !out || n == 0 || B < 2 || !(level > 0.0 && level < 1.0))
        return fedreci_error(FEDREC_ERR_INVALID,
                             "bootstrap: need values, n >= 1, B >= 2 and level in (0, 1)");
    for (size_t j = 0; j < n; j++)
        if (!isfinite(a[j]) || (b && !isfinite(b[j])))
            return fedreci_error(FEDREC_ERR_INVALID, "bootstrap: value %zu is not finite", j);
    return FEDREC_OK;
}

/* B resampled means of a (and of b, same indices, when b is non-NULL). */
static void resample(const double *a, const double *b, size_t n, uint32_t B, uint64_t seed,
                     double *ma, double *mb)
{
    fedreci_rng st = fedreci_rng_seeded(seed); /* splitmix64 */
    for (uint32_t r = 0; r < B; r++) {
        double sa = 0.0, sb = 0.0;
        for (size_t j = 0; j < n; j++) {
            size_t i = (size_t)fedreci_rng_below(&st, n);
            sa += a[i];
            if (b)
                sb += b[i];
        }
        ma[r] = sa / (double)n;
        if (b)
            mb[r] = sb / (double)n;
    }
}

static double mean_of(const double *v, size_t n)
{
    double s = 0.0;
    for (size_t j = 0; j < n; j++)
        s += v[j];
    return s / (double)n;
}

static void percentile_ci(double *v, uint32_t B, double level, double mean, fedreci_ci *out)
{
    qsort(v, B, sizeof *v, cmp_double);
    out->mean = mean;
    out->lo = quantile(v, B, (1.0 - level) / 2.0);
    out->hi = quantile(v, B, (1.0 + level) / 2.0);
}

fedrec_err fedreci_eval_bootstrap(const double *v, size_t n, uint32_t B, uint64_t seed,
                                  double level, fedreci_ci *out)
{
    fedrec_err e = boot_check(v, NULL, n, B, level, out);
    if (e)
        return e;
    double *m = malloc((size_t)B * sizeof *m);
    if (!m)
        return fedreci_error(FEDREC_ERR_NOMEM, "bootstrap: out of memory for %u resamples", B);
    resample(v, NULL, n, B, seed, m, NULL);
    fedreci_ci ci;
    percentile_ci(m, B, level, mean_of(v, n), &ci);
    free(m);
    *out = ci;
    return FEDREC_OK;
}

fedrec_err fedreci_eval_paired(const double *a, const double *b, size_t n, uint32_t B,
                               uint64_t seed, double level, fedreci_paired *out)
{
    fedrec_err e = boot_check(a, b, n, B, level, out);
    if (e)
        return e;
    if (!b)
        return fedreci_error(FEDREC_ERR_INVALID, "bootstrap: NULL second model");
    if (n > UINT32_MAX)
        return fedreci_error(FEDREC_ERR_INVALID, "bootstrap: %zu shoppers is too many", n);
    double *ma = malloc((size_t)B * sizeof *ma), *mb = malloc((size_t)B * sizeof *mb);
    if (!ma || !mb) {
        free(ma);
        free(mb);
        return fedreci_error(FEDREC_ERR_NOMEM, "bootstrap: out of memory for %u resamples", B);
    }
    resample(a, b, n, B, seed, ma, mb);
    fedreci_paired p;
    memset(&p, 0, sizeof p);
    p.n = (uint32_t)n;
    p.mean_a = mean_of(a, n);
    p.mean_b = mean_of(b, n);
    double d = 0.0;
    for (size_t j = 0; j < n; j++)
        d += a[j] - b[j];
    d /= (double)n;
    uint32_t extreme = 0;
    for (uint32_t r = 0; r < B; r++) {
        double dr = ma[r] - mb[r];
        if (fabs(dr - d) >= fabs(d))
            extreme++;
        ma[r] = mb[r] != 0.0 ? ma[r] / mb[r] : NAN; /* ratio, before dr is overwritten */
        mb[r] = dr;
    }
    p.p_value = (1.0 + extreme) / (1.0 + B);
    percentile_ci(mb, B, level, d, &p.diff);
    if (p.mean_b != 0.0) {
        /* NaN ratios (a resample whose mean_b is 0) sort last under cmp_double's
         * order only by accident; count them out explicitly. */
        uint32_t w = 0;
        for (uint32_t r = 0; r < B; r++)
            if (!isnan(ma[r]))
                ma[w++] = ma[r];
        if (w >= 2) {
            percentile_ci(ma, w, level, p.mean_a / p.mean_b, &p.ratio);
        } else {
            p.ratio.mean = p.mean_a / p.mean_b;
            p.ratio.lo = p.ratio.hi = NAN;
        }
    } else {
        p.ratio.mean = p.ratio.lo = p.ratio.hi = NAN;
    }
    free(ma);
    free(mb);
    *out = p;
    return FEDREC_OK;
}

/* ---- popularity baseline ---------------------------------------------------- */

typedef struct pop_item {
    uint32_t buyers, item;
} pop_item;

static int cmp_pop_item(const void *pa, const void *pb)
{
    const pop_item *a = pa, *b = pb;
    if (a->buyers != b->buyers)
        return a->buyers > b->buyers ? -1 : 1;
    return a->item < b->item ? -1 : a->item > b->item;
}

fedrec_err fedreci_eval_popularity(const fedreci_split *s, uint32_t K, fedreci_metrics *out)
{
    if (!s || !out || K == 0)
        return fedreci_error(FEDREC_ERR_INVALID, "popularity: NULL argument or K == 0");
    if (s->n_test_users == 0)
        return fedreci_error(FEDREC_ERR_EMPTY, "popularity: the split has no test user");
    uint32_t n_items = s->train.n_cols;
    pop_item *order = malloc((size_t)n_items * sizeof *order);
    uint32_t *top = malloc((size_t)K * sizeof *top);
    fedreci_eval_acc *acc = NULL;
    fedrec_err e = FEDREC_OK;
    if (!order || !top) {
        e = fedreci_error(FEDREC_ERR_NOMEM, "out of memory for the popularity baseline");
        goto out;
    }
    e = fedreci_eval_acc_create(&acc, n_items, K);
    if (e)
        goto out;
    for (uint32_t i = 0; i < n_items; i++) {
        order[i].buyers = s->item_buyers[i];
        order[i].item = i;
    }
    qsort(order, n_items, sizeof *order, cmp_pop_item);
    for (uint32_t t = 0; t < s->n_test_users && !e; t++) {
        uint32_t u = s->test_users[t];
        const uint32_t *bought = s->train.indices + s->train.indptr[u];
        uint32_t n_bought = (uint32_t)(s->train.indptr[u + 1] - s->train.indptr[u]);
        uint32_t n = 0;
        for (uint32_t r = 0; r < n_items && n < K; r++)
            if (!in_sorted(bought, n_bought, order[r].item))
                top[n++] = order[r].item;
        uint32_t n_test;
        const uint32_t *test = fedreci_split_test(s, t, &n_test);
        e = fedreci_eval_acc_add(acc, top, n, test, n_test);
    }
    if (!e)
        e = fedreci_eval_acc_finish(acc, out);
out:
    fedreci_eval_acc_destroy(acc);
    free(order);
    free(top);
    return e;
}
