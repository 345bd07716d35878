/* `fedrec-sim baseline`: the centralized baselines of a split, each tuned on
 * the validation split and evaluated once on the test split, with per-shopper
 * bootstrap confidence intervals and paired comparisons against ALS.
 *
 * Models: popularity; item-kNN (cosine, top neighbours per item); EASE
 * (Steck 2019); implicit ALS solved exactly (Hu, Koren & Volinsky 2008) and
 * by conjugate gradient (Takacs, Pilaszy & Tikk 2011), with the knobs of
 * Rendle et al. 2022 in the grid. Protocol: every grid point is fitted on the
 * validation split's training matrix and scored by HR@10 on its shoppers
 * (core/eval's fedreci_split_create_validation); the best point (the first on
 * ties) is refitted on the test split's training matrix and evaluated once. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "core/err.h"
#include "core/eval/baselines.h"
#include "core/mf/mf.h"
#include "core/json.h"
#include "sim/sim.h"

#define N_KS 3
static const uint32_t KS[N_KS] = {10, 20, 50};
#define TOP_MAX 50u
#define MAX_SEEDS 16

static const char *const METRIC_NAMES[FEDRECI_METRIC_COUNT] = {"hr", "precision", "recall", "ndcg",
                                                               "map"};

/* ---- the grids ---------------------------------------------------------------- */

static const uint32_t KNN_NEIGHBOURS[] = {20, 50, 100, 200, 0}; /* 0: all */
static const float KNN_SHRINK[] = {0.0f, 10.0f};
static const float EASE_LAMBDA[] = {50.0f, 100.0f, 200.0f, 500.0f, 1000.0f};

typedef struct als_point {
    uint32_t k;
    float lambda;
    float alpha0; /* unobserved weight */
    float nu;     /* regularization exponent */
} als_point;

/* Plain ALS over lambda and the factor count, then the Rendle et al. 2022
 * knobs: frequency-scaled regularization (nu = 1, lambda per unit of
 * n_r + alpha0 n_other) and a lighter weight on the unobserved pairs. */
static const als_point ALS_GRID[] = {
    {32, 0.1f, 1.0f, 0.0f},   {32, 1.0f, 1.0f, 0.0f},   {32, 10.0f, 1.0f, 0.0f},
    {64, 0.1f, 1.0f, 0.0f},   {64, 1.0f, 1.0f, 0.0f},   {64, 10.0f, 1.0f, 0.0f},
    {64, 1e-4f, 1.0f, 1.0f},  {64, 1e-3f, 1.0f, 1.0f},  {64, 1.0f, 0.5f, 0.0f},
    {64, 10.0f, 0.5f, 0.0f},  {64, 1e-3f, 0.5f, 1.0f},  {128, 1.0f, 1.0f, 0.0f},
    {128, 10.0f, 1.0f, 0.0f}, {128, 1e-3f, 1.0f, 1.0f},
};
#define N_ALS_GRID (sizeof ALS_GRID / sizeof ALS_GRID[0])

/* ---- scoring and evaluation -------------------------------------------------- */

typedef enum model_kind { M_POP = 0, M_KNN, M_EASE, M_ALS, M_ALS_CG, M_COUNT } model_kind;
static const char *const MODEL_NAMES[M_COUNT] = {"popularity", "item-kNN", "EASE", "ALS exact",
                                                 "ALS CG"};
static const char *const MODEL_KEYS[M_COUNT] = {"popularity", "itemknn", "ease", "als_exact",
                                                "als_cg"};

/* A fitted model: one of the score sources. */
typedef struct fitted {
    const float *pop; /* n_items: buyers (popularity) */
    const float *w;   /* n_items x n_items: item-to-item */
    const float *x;   /* n_users x k */
    const float *y;   /* n_items x k */
    uint32_t k;
} fitted;

/* Ranks every shopper of s under model f and adds them to accs[0..N_KS). */
static fedrec_err evaluate(const fedreci_split *s, const fitted *f, fedreci_eval_acc **accs,
                           float *scores)
{
    const uint32_t n_items = s->train.n_cols;
    uint32_t top[TOP_MAX], n;
    fedrec_err e = FEDREC_OK;
    for (uint32_t t = 0; t < s->n_test_users && !e; t++) {
        uint32_t u = s->test_users[t], n_test;
        uint64_t lo = s->train.indptr[u], hi = s->train.indptr[u + 1];
        const uint32_t *bought = s->train.indices + lo;
        if (f->pop) {
            memcpy(scores, f->pop, (size_t)n_items * sizeof *scores);
        } else if (f->w) {
            fedreci_item_item_scores(f->w, n_items, bought, (uint32_t)(hi - lo), scores);
        } else {
            cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)n_items, (int)f->k, 1.0f, f->y, (int)f->k,
                        f->x + (size_t)u * f->k, 1, 0.0f, scores, 1);
        }
        e = fedreci_topk_scores(scores, n_items, bought, (size_t)(hi - lo), TOP_MAX, top, &n);
        const uint32_t *test = fedreci_split_test(s, t, &n_test);
        for (int ki = 0; ki < N_KS && !e; ki++)
            e = fedreci_eval_acc_add(accs[ki], top, n, test, n_test);
    }
    return e;
}

static void accs_destroy(fedreci_eval_acc **accs)
{
    for (int ki = 0; ki < N_KS; ki++) {
        fedreci_eval_acc_destroy(accs[ki]);
        accs[ki] = NULL;
    }
}

static fedrec_err accs_create(fedreci_eval_acc **accs, uint32_t n_items)
{
    for (int ki = 0; ki < N_KS; ki++) {
        fedrec_err e = fedreci_eval_acc_create(&accs[ki], n_items, KS[ki]);
        if (e) {
            accs_destroy(accs);
            return e;
        }
    }
    return FEDREC_OK;
}

/* HR@10 of model f on split s. */
static fedrec_err hr10(const fedreci_split *s, const fitted *f, float *scores, double *out)
{
    fedreci_eval_acc *accs[N_KS] = {NULL};
    fedrec_err e = accs_create(accs, s->train.n_cols);
    if (!e)
        e = evaluate(s, f, accs, scores);
    fedreci_metrics m;
    if (!e)
        e = fedreci_eval_acc_finish(accs[0], &m);
    if (!e)
        *out = m.hr_at_k;
    accs_destroy(accs);
    return e;
}

/* ---- fitting ---------------------------------------------------------------------- */

/* Work buffers sized for the larger of the two splits' shapes. */
typedef struct work {
    uint32_t threads;
    float *cooc;   /* n_items^2 */
    float *w;      /* n_items^2 */
    float *x, *y;  /* n_users x 128, n_items x 128 */
    float *pop;    /* n_items */
    float *scores; /* n_items */
} work;

static fedrec_err fit_knn(const fedreci_split *s, work *wk, uint32_t neighbours, float shrink,
                          int need_cooc, fitted *f)
{
    fedrec_err e = need_cooc ? fedreci_item_cooc(&s->train, wk->cooc) : FEDREC_OK;
    if (!e)
        e = fedreci_itemknn_weights(wk->cooc, s->train.n_cols, neighbours ? neighbours : UINT32_MAX,
                                    shrink, wk->w);
    *f = (fitted){NULL, wk->w, NULL, NULL, 0};
    return e;
}

static fedrec_err fit_ease(const fedreci_split *s, work *wk, float lambda, int need_cooc, fitted *f)
{
    fedrec_err e = need_cooc ? fedreci_item_cooc(&s->train, wk->cooc) : FEDREC_OK;
    if (!e) {
        /* the n^3 inverse is the one place where BLAS threads pay */
        int bt = openblas_get_num_threads();
        openblas_set_num_threads((int)wk->threads);
        e = fedreci_ease_weights(wk->cooc, s->train.n_cols, lambda, wk->w);
        openblas_set_num_threads(bt);
    }
    *f = (fitted){NULL, wk->w, NULL, NULL, 0};
    return e;
}

static fedrec_err fit_als(const fedreci_split *s, work *wk, const als_point *pt, int cg,
                          uint32_t sweeps, uint64_t seed, float *x, float *y, fitted *f)
{
    fedreci_als_params p = {pt->k, pt->lambda, sweeps, wk->threads, seed, 0.0f};
    fedreci_als_options o = {cg ? FEDRECI_ALS_CG : FEDRECI_ALS_CHOLESKY, 0, pt->alpha0, pt->nu};
    fedrec_err e = fedreci_als_train_opts(&s->train, &p, &o, x, y, NULL);
    *f = (fitted){NULL, NULL, x, y, pt->k};
    return e;
}

static void fit_pop(const fedreci_split *s, work *wk, fitted *f)
{
    for (uint32_t i = 0; i < s->train.n_cols; i++)
        wk->pop[i] = (float)s->item_buyers[i];
    *f = (fitted){wk->pop, NULL, NULL, NULL, 0};
}

/* ---- one model's test result ---------------------------------------------------- */

typedef struct result {
    int done;
    char params[200];
    double val_hr;                         /* HR@10 on validation at the chosen point */
    uint32_t n;                            /* test shoppers */
    double *v[N_KS][FEDRECI_METRIC_COUNT]; /* per shopper, averaged over seeds */
    fedreci_ci ci[N_KS][FEDRECI_METRIC_COUNT];
    double coverage[N_KS];
    double seed_min_hr, seed_max_hr; /* HR@10 over the seeds (ALS) */
    uint32_t n_seeds;
    double seconds; /* fit time on the test split's training matrix, first seed */
} result;

static void result_free(result *r)
{
    for (int ki = 0; ki < N_KS; ki++)
        for (uint32_t m = 0; m < FEDRECI_METRIC_COUNT; m++)
            free(r->v[ki][m]);
}

/* Adds the accumulators' per-shopper values (weight 1 / n_seeds) into r. */
static fedrec_err result_add(result *r, fedreci_eval_acc **accs, uint32_t n_seeds)
{
    for (int ki = 0; ki < N_KS; ki++) {
        fedreci_metrics m;
        fedrec_err e = fedreci_eval_acc_finish(accs[ki], &m);
        if (e)
            return e;
        r->coverage[ki] += m.coverage / n_seeds;
        if (ki == 0) {
            r->seed_min_hr = r->n_seeds ? fmin(r->seed_min_hr, m.hr_at_k) : m.hr_at_k;
            r->seed_max_hr = r->n_seeds ? fmax(r->seed_max_hr, m.hr_at_k) : m.hr_at_k;
        }
        for (uint32_t mi = 0; mi < FEDRECI_METRIC_COUNT; mi++) {
            const double *v;
            uint32_t n;
            e = fedreci_eval_acc_values(accs[ki], (fedreci_metric_id)mi, &v, &n);
            if (e)
                return e;
            if (!r->v[ki][mi]) {
                r->v[ki][mi] = calloc(n ? n : 1, sizeof(double));
                if (!r->v[ki][mi])
                    return fedreci_error(FEDREC_ERR_NOMEM, "baseline: out of memory");
                r->n = n;
            }
            for (uint32_t j = 0; j < n; j++)
                r->v[ki][mi][j] += v[j] / n_seeds;
        }
    }
    r->n_seeds++;
    return FEDREC_OK;
}

static fedrec_err result_cis(result *r, uint32_t boot, uint64_t seed)
{
    for (int ki = 0; ki < N_KS; ki++)
        for (uint32_t mi = 0; mi < FEDRECI_METRIC_COUNT; mi++) {
            fedrec_err e =
                fedreci_eval_bootstrap(r->v[ki][mi], r->n, boot, seed, 0.95, &r->ci[ki][mi]);
            if (e)
                return e;
        }
    r->done = 1;
    return FEDREC_OK;
}

/* ---- the command ------------------------------------------------------------------ */

static void baseline_usage(FILE *f)
{
    fprintf(f, "usage: fedrec-sim baseline --data FILE [--seeds LIST] [--sweeps S] [--boot B]\n"
               "                           [--threads T] [--only LIST] [--show-grid] [--json]\n"
               "                           [data options]\n"
               "Centralized baselines on the split: popularity, item-kNN, EASE, implicit ALS\n"
               "(exact and conjugate-gradient solvers). Every hyper-parameter is chosen on the\n"
               "validation split (each shopper's last basket among their training rows) by\n"
               "HR@10 over a small grid; the chosen model is refitted on the training rows and\n"
               "evaluated once on the test split, ranking the items each shopper did not buy\n"
               "in training, at K = 10, 20 and 50, with 95%% per-shopper bootstrap intervals\n"
               "and a paired comparison of each model with exact ALS.\n"
               "  --seeds LIST    ALS initialization seeds on the test split, e.g. 1,2,3\n"
               "                  (default 1; per-shopper metrics averaged over them; tuning\n"
               "                  uses the first)\n"
               "  --sweeps S      ALS sweeps (default 15)\n"
               "  --boot B        bootstrap resamples (default 1000)\n"
               "  --threads T     worker threads (default 2); results do not depend on it\n"
               "  --only LIST     models to run, of pop,knn,ease,als,cg (default all; cg\n"
               "                  reuses the ALS grid's choice, so it needs als)\n"
               "  --show-grid     print every grid point's validation HR@10 on stderr\n"
               "  --json          print one JSON object\n");
    fedreci_sim_data_usage(f);
}

static int parse_u32(const char *s, uint32_t lo, uint32_t hi, uint32_t *out)
{
    char *end = NULL;
    unsigned long v = strtoul(s, &end, 10);
    if (!*s || *end || *s == '-' || v < lo || v > hi)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

static int parse_seeds(const char *s, uint64_t *seeds, uint32_t *n)
{
    char buf[256];
    if (strlen(s) >= sizeof buf)
        return -1;
    strcpy(buf, s);
    *n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        uint32_t v;
        if (*n >= MAX_SEEDS || parse_u32(tok, 0, UINT32_MAX, &v))
            return -1;
        seeds[(*n)++] = v;
    }
    return *n ? 0 : -1;
}

typedef struct run_ctx {
    const fedreci_split *test, *val;
    work wk;
    uint32_t sweeps, boot, n_seeds;
    uint64_t seeds[MAX_SEEDS];
    int show_grid;
    result res[M_COUNT];
    als_point als_choice;
} run_ctx;

static void grid_line(const run_ctx *c, const char *model, const char *params, double hr)
{
    if (c->show_grid)
        fprintf(stderr, "validation  %-10s %-40s HR@10 %.4f\n", model, params, hr);
}

static void als_params_str(char *buf, size_t cap, const als_point *p)
{
    snprintf(buf, cap, "factors %u, lambda %g, alpha0 %g, nu %g", p->k, (double)p->lambda,
             (double)p->alpha0, (double)p->nu);
}

/* Fits on the test split's training rows, evaluates on its shoppers over
 * the seeds (one pass for deterministic models). */
static fedrec_err run_test(run_ctx *c, model_kind m, const void *choice)
{
    const fedreci_split *s = c->test;
    result *r = &c->res[m];
    uint32_t passes = (m == M_ALS || m == M_ALS_CG) ? c->n_seeds : 1;
    fedrec_err e = FEDREC_OK;
    for (uint32_t p = 0; p < passes && !e; p++) {
        fedreci_eval_acc *accs[N_KS] = {NULL};
        fitted f;
        double t0 = fedreci_sim_now();
        switch (m) {
        case M_POP:
            fit_pop(s, &c->wk, &f);
            break;
        case M_KNN: {
            const float *kc = choice;
            e = fit_knn(s, &c->wk, (uint32_t)kc[0], kc[1], 1, &f);
            break;
        }
        case M_EASE:
            e = fit_ease(s, &c->wk, *(const float *)choice, 1, &f);
            break;
        default:
            e = fit_als(s, &c->wk, choice, m == M_ALS_CG, c->sweeps, c->seeds[p], c->wk.x, c->wk.y,
                        &f);
            break;
        }
        if (p == 0)
            r->seconds = fedreci_sim_now() - t0;
        if (!e)
            e = accs_create(accs, s->train.n_cols);
        if (!e)
            e = evaluate(s, &f, accs, c->wk.scores);
        if (!e)
            e = result_add(r, accs, passes);
        accs_destroy(accs);
    }
    if (!e)
        e = result_cis(r, c->boot, 1);
    return e;
}

static fedrec_err tune_and_test(run_ctx *c, model_kind m)
{
    const fedreci_split *v = c->val;
    result *r = &c->res[m];
    fitted f;
    double best = -1, hr = 0;
    fedrec_err e = FEDREC_OK;
    char buf[160];
    if (m == M_POP) {
        fit_pop(v, &c->wk, &f);
        e = hr10(v, &f, c->wk.scores, &best);
        snprintf(r->params, sizeof r->params, "(none)");
        r->val_hr = best;
        return e ? e : run_test(c, m, NULL);
    }
    if (m == M_KNN) {
        float choice[2] = {0, 0};
        int first = 1;
        for (size_t a = 0; a < sizeof KNN_NEIGHBOURS / sizeof *KNN_NEIGHBOURS && !e; a++)
            for (size_t b = 0; b < sizeof KNN_SHRINK / sizeof *KNN_SHRINK && !e; b++) {
                e = fit_knn(v, &c->wk, KNN_NEIGHBOURS[a], KNN_SHRINK[b], first, &f);
                first = 0;
                if (!e)
                    e = hr10(v, &f, c->wk.scores, &hr);
                if (KNN_NEIGHBOURS[a])
                    snprintf(buf, sizeof buf, "neighbours %u, shrink %g", KNN_NEIGHBOURS[a],
                             (double)KNN_SHRINK[b]);
                else
                    snprintf(buf, sizeof buf, "neighbours all, shrink %g", (double)KNN_SHRINK[b]);
                grid_line(c, "item-kNN", buf, hr);
                if (!e && hr > best) {
                    best = hr;
                    choice[0] = (float)KNN_NEIGHBOURS[a];
                    choice[1] = KNN_SHRINK[b];
                    snprintf(r->params, sizeof r->params, "%s", buf);
                }
            }
        r->val_hr = best;
        return e ? e : run_test(c, m, choice);
    }
    if (m == M_EASE) {
        float choice = 0;
        for (size_t a = 0; a < sizeof EASE_LAMBDA / sizeof *EASE_LAMBDA && !e; a++) {
            e = fit_ease(v, &c->wk, EASE_LAMBDA[a], a == 0, &f);
            if (!e)
                e = hr10(v, &f, c->wk.scores, &hr);
            snprintf(buf, sizeof buf, "lambda %g", (double)EASE_LAMBDA[a]);
            grid_line(c, "EASE", buf, hr);
            if (!e && hr > best) {
                best = hr;
                choice = EASE_LAMBDA[a];
                snprintf(r->params, sizeof r->params, "%s", buf);
            }
        }
        r->val_hr = best;
        return e ? e : run_test(c, m, &choice);
    }
    if (m == M_ALS) {
        for (size_t a = 0; a < N_ALS_GRID && !e; a++) {
            e = fit_als(v, &c->wk, &ALS_GRID[a], 0, c->sweeps, c->seeds[0], c->wk.x, c->wk.y, &f);
            if (!e)
                e = hr10(v, &f, c->wk.scores, &hr);
            als_params_str(buf, sizeof buf, &ALS_GRID[a]);
            grid_line(c, "ALS exact", buf, hr);
            if (!e && hr > best) {
                best = hr;
                c->als_choice = ALS_GRID[a];
                snprintf(r->params, sizeof r->params, "%s", buf);
            }
        }
        r->val_hr = best;
        return e ? e : run_test(c, m, &c->als_choice);
    }
    /* CG: the exact solver's choice, so the two differ only in the solver */
    e = fit_als(v, &c->wk, &c->als_choice, 1, c->sweeps, c->seeds[0], c->wk.x, c->wk.y, &f);
    if (!e)
        e = hr10(v, &f, c->wk.scores, &r->val_hr);
    als_params_str(buf, sizeof buf, &c->als_choice);
    snprintf(r->params, sizeof r->params, "%s, 3 CG steps", buf);
    return e ? e : run_test(c, m, &c->als_choice);
}

static int parse_only(const char *s, int *want)
{
    char buf[128];
    static const char *const names[M_COUNT] = {"pop", "knn", "ease", "als", "cg"};
    if (strlen(s) >= sizeof buf)
        return -1;
    strcpy(buf, s);
    for (int m = 0; m < M_COUNT; m++)
        want[m] = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        int found = 0;
        for (int m = 0; m < M_COUNT; m++)
            if (!strcmp(tok, names[m]))
                want[m] = found = 1;
        if (!found)
            return -1;
    }
    return want[M_ALS_CG] && !want[M_ALS] ? -1 : 0;
}

static void print_ci(const fedreci_ci *c)
{
    printf(" %.4f [%.4f, %.4f]", c->mean, c->lo, c->hi);
}

static void json_ci(const char *key, const fedreci_ci *c)
{
    printf("\"%s\": {\"mean\": %.6f, \"lo\": %.6f, \"hi\": %.6f}", key, c->mean, c->lo, c->hi);
}

static fedrec_err paired_hr(const run_ctx *c, model_kind m, int ki, fedreci_paired *p)
{
    const result *a = &c->res[m], *b = &c->res[M_ALS];
    return fedreci_eval_paired(a->v[ki][FEDRECI_METRIC_HR], b->v[ki][FEDRECI_METRIC_HR], a->n,
                               c->boot, 2, 0.95, p);
}

static void print_table(const run_ctx *c, const fedreci_sim_data_opts *dopt)
{
    const fedreci_split *s = c->test;
    printf("purchase log  %s\n", dopt->data);
    printf("split         %s: %u test shoppers; validation: %u shoppers\n",
           dopt->split ? dopt->split : "lastbasket", s->n_test_users, c->val->n_test_users);
    printf("protocol      grid on validation by HR@10, refit on training rows, test once;\n"
           "              95%% per-shopper bootstrap intervals (%u resamples); ALS seeds",
           c->boot);
    for (uint32_t j = 0; j < c->n_seeds; j++)
        printf("%s%llu", j ? "," : " ", (unsigned long long)c->seeds[j]);
    printf(", %u sweeps\n\n", c->sweeps);
    printf("%-12s %s\n", "model", "chosen on validation (validation HR@10)");
    for (int m = 0; m < M_COUNT; m++)
        if (c->res[m].done)
            printf("%-12s %s (%.4f)\n", MODEL_NAMES[m], c->res[m].params, c->res[m].val_hr);
    for (int ki = 0; ki < N_KS; ki++) {
        printf("\ntest, K = %-2u %-24s %-24s %-24s %-24s %-24s %s\n", KS[ki], "HR", "NDCG",
               "recall", "precision", "MAP", "coverage");
        for (int m = 0; m < M_COUNT; m++) {
            const result *r = &c->res[m];
            if (!r->done)
                continue;
            printf("%-12s", MODEL_NAMES[m]);
            static const int order[5] = {FEDRECI_METRIC_HR, FEDRECI_METRIC_NDCG,
                                         FEDRECI_METRIC_RECALL, FEDRECI_METRIC_PRECISION,
                                         FEDRECI_METRIC_MAP};
            for (int j = 0; j < 5; j++)
                print_ci(&r->ci[ki][order[j]]);
            printf(" %.4f\n", r->coverage[ki]);
        }
    }
    if (c->res[M_ALS].done) {
        printf("\npaired against ALS exact on the same shoppers (HR@10): difference [95%% CI], "
               "ratio [95%% CI], p\n");
        for (int m = 0; m < M_COUNT; m++) {
            fedreci_paired p;
            if (m == M_ALS || !c->res[m].done || paired_hr(c, (model_kind)m, 0, &p))
                continue;
            printf("%-12s %+.4f [%+.4f, %+.4f]   %.3f [%.3f, %.3f]   p = %.4f\n", MODEL_NAMES[m],
                   p.diff.mean, p.diff.lo, p.diff.hi, p.ratio.mean, p.ratio.lo, p.ratio.hi,
                   p.p_value);
        }
        if (c->n_seeds > 1)
            printf("\nALS HR@10 over the seeds: exact [%.4f, %.4f]", c->res[M_ALS].seed_min_hr,
                   c->res[M_ALS].seed_max_hr);
        if (c->n_seeds > 1 && c->res[M_ALS_CG].done)
            printf(", CG [%.4f, %.4f]", c->res[M_ALS_CG].seed_min_hr, c->res[M_ALS_CG].seed_max_hr);
        if (c->n_seeds > 1)
            printf("\n");
    }
}

static void print_json(const run_ctx *c, const fedreci_sim_data_opts *dopt)
{
    const fedreci_split *s = c->test;
    const result *pop = &c->res[M_POP], *als = &c->res[M_ALS];
    printf("{\"data\": ");
    fedreci_json_fputs(stdout, dopt->data);
    printf(", \"split\": \"%s\", \"test_users\": %u, \"validation_users\": %u, "
           "\"train_users\": %u,\n \"items\": %u, \"alpha\": %g, \"sweeps\": %u, "
           "\"boot\": %u, \"k\": 10,\n",
           dopt->split ? dopt->split : "lastbasket", s->n_test_users, c->val->n_test_users,
           s->train.n_rows, s->train.n_cols, dopt->ds.alpha, c->sweeps, c->boot);
    if (pop->done)
        printf(" \"popularity_hr_at_10\": %.6f, \"popularity_ndcg_at_10\": %.6f,\n"
               " \"popularity_recall_at_10\": %.6f, \"popularity_precision_at_10\": %.6f,\n"
               " \"popularity_map_at_10\": %.6f, \"popularity_coverage\": %.6f,\n",
               pop->ci[0][FEDRECI_METRIC_HR].mean, pop->ci[0][FEDRECI_METRIC_NDCG].mean,
               pop->ci[0][FEDRECI_METRIC_RECALL].mean, pop->ci[0][FEDRECI_METRIC_PRECISION].mean,
               pop->ci[0][FEDRECI_METRIC_MAP].mean, pop->coverage[0]);
    if (als->done)
        printf(" \"factors\": %u, \"lambda\": %g,\n"
               " \"centralized_hr_at_10\": %.6f, \"centralized_ndcg_at_10\": %.6f,\n"
               " \"centralized_recall_at_10\": %.6f, \"centralized_precision_at_10\": %.6f,\n"
               " \"centralized_map_at_10\": %.6f, \"centralized_coverage\": %.6f,\n"
               " \"als_seconds\": %.3f,\n",
               c->als_choice.k, (double)c->als_choice.lambda, als->ci[0][FEDRECI_METRIC_HR].mean,
               als->ci[0][FEDRECI_METRIC_NDCG].mean, als->ci[0][FEDRECI_METRIC_RECALL].mean,
               als->ci[0][FEDRECI_METRIC_PRECISION].mean, als->ci[0][FEDRECI_METRIC_MAP].mean,
               als->coverage[0], als->seconds);
    printf(" \"models\": [");
    int first = 1;
    for (int m = 0; m < M_COUNT; m++) {
        const result *r = &c->res[m];
        if (!r->done)
            continue;
        printf("%s\n  {\"model\": \"%s\", \"params\": ", first ? "" : ",", MODEL_KEYS[m]);
        fedreci_json_fputs(stdout, r->params);
        printf(", \"validation_hr_at_10\": %.6f, \"fit_seconds\": %.3f, \"seeds\": %u", r->val_hr,
               r->seconds, r->n_seeds);
        if (m == M_ALS || m == M_ALS_CG)
            printf(", \"seed_min_hr_at_10\": %.6f, \"seed_max_hr_at_10\": %.6f", r->seed_min_hr,
                   r->seed_max_hr);
        for (int ki = 0; ki < N_KS; ki++) {
            for (uint32_t mi = 0; mi < FEDRECI_METRIC_COUNT; mi++) {
                char key[48];
                snprintf(key, sizeof key, "%s_at_%u", METRIC_NAMES[mi], KS[ki]);
                printf(",\n   ");
                json_ci(key, &r->ci[ki][mi]);
            }
            printf(",\n   \"coverage_at_%u\": %.6f", KS[ki], r->coverage[ki]);
        }
        fedreci_paired p;
        if (als->done && m != M_ALS && !paired_hr(c, (model_kind)m, 0, &p)) {
            printf(",\n   \"vs_als_exact_hr_at_10\": {\"diff\": %.6f, \"diff_lo\": %.6f, "
                   "\"diff_hi\": %.6f, \"ratio\": %.6f, \"ratio_lo\": %.6f, \"ratio_hi\": %.6f, "
                   "\"p\": %.6f}",
                   p.diff.mean, p.diff.lo, p.diff.hi, p.ratio.mean, p.ratio.lo, p.ratio.hi,
                   p.p_value);
        }
        printf("}");
        first = 0;
    }
    printf("]}\n");
}

enum {
    OPT_JSON = FEDRECI_SIM_OPT_BASE,
    OPT_SHOW_GRID,
    OPT_SWEEPS,
    OPT_BOOT,
    OPT_THREADS,
    OPT_SEEDS,
    OPT_ONLY,
};

static const struct option baseline_options[] = {
    {"json", no_argument, NULL, OPT_JSON},
    {"show-grid", no_argument, NULL, OPT_SHOW_GRID},
    {"sweeps", required_argument, NULL, OPT_SWEEPS},
    {"boot", required_argument, NULL, OPT_BOOT},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"seeds", required_argument, NULL, OPT_SEEDS},
    {"only", required_argument, NULL, OPT_ONLY},
    {NULL, 0, NULL, 0},
};

static const char *const cmd = "fedrec-sim baseline";

typedef struct baseline_args {
    run_ctx *c;
    int *want;
    int *json;
} baseline_args;

static int baseline_opt(void *ctx, int code, const char *name, const char *v)
{
    baseline_args *a = ctx;
    run_ctx *c = a->c;
    switch (code) {
    case OPT_JSON:
        *a->json = 1;
        return 0;
    case OPT_SHOW_GRID:
        c->show_grid = 1;
        return 0;
    case OPT_SWEEPS:
        return fedreci_sim_arg_u32(cmd, name, v, 1, 1000, &c->sweeps);
    case OPT_BOOT:
        return fedreci_sim_arg_u32(cmd, name, v, 2, 1000000, &c->boot);
    case OPT_THREADS:
        return fedreci_sim_arg_u32(cmd, name, v, 1, 256, &c->wk.threads);
    case OPT_SEEDS:
        if (!parse_seeds(v, c->seeds, &c->n_seeds))
            return 0;
        fprintf(stderr, "%s: %s '%s': expected up to %d seeds, comma-separated\n", cmd, name, v,
                MAX_SEEDS);
        return -1;
    default: /* OPT_ONLY */
        if (!parse_only(v, a->want))
            return 0;
        fprintf(stderr, "%s: %s '%s': not a list of models (see --help)\n", cmd, name, v);
        return -1;
    }
}

int fedreci_sim_baseline(int argc, char **argv)
{
    fedreci_sim_data_opts dopt;
    fedreci_sim_data_opts_default(&dopt);
    run_ctx c;
    memset(&c, 0, sizeof c);
    c.sweeps = 15;
    c.boot = 1000;
    c.wk.threads = 2;
    c.seeds[0] = 1;
    c.n_seeds = 1;
    int json = 0, want[M_COUNT] = {1, 1, 1, 1, 1};
    baseline_args ba = {&c, want, &json};
    int rc = fedreci_sim_parse_opts(argc, argv, cmd, baseline_options, &dopt, baseline_opt, &ba,
                                    baseline_usage);
    if (rc)
        return rc == 1 ? 0 : 2;
    fedreci_dataset *d = NULL;
    fedreci_split *s = NULL, *v = NULL;
    if (fedreci_sim_load(&dopt, cmd, &d, &s))
        return dopt.data ? 1 : 2;
    fedreci_split_options so = {FEDRECI_SPLIT_LAST_BASKET, 0};
    if (dopt.split && !strncmp(dopt.split, "date:", 5)) {
        so.kind = FEDRECI_SPLIT_TEMPORAL;
        if (fedreci_parse_time(dopt.split + 5, &so.split_time))
            so.kind = FEDRECI_SPLIT_LAST_BASKET; /* fedreci_sim_load already refused it */
    }
    fedrec_err e = fedreci_split_create_validation(&v, d, &so);
    if (!e && v->n_test_users == 0)
        e = fedreci_error(FEDREC_ERR_EMPTY, "%s: the validation split has no shopper", dopt.data);
    const uint32_t n_items = s->train.n_cols, n_users = s->train.n_rows;
    const size_t nn = (size_t)n_items * n_items;
    if (!e) {
        c.test = s;
        c.val = v;
        int item_item = want[M_KNN] || want[M_EASE];
        c.wk.cooc = item_item ? malloc(nn * sizeof(float)) : NULL;
        c.wk.w = item_item ? malloc(nn * sizeof(float)) : NULL;
        c.wk.x = malloc((size_t)n_users * 128 * sizeof(float));
        c.wk.y = malloc((size_t)n_items * 128 * sizeof(float));
        c.wk.pop = malloc((size_t)n_items * sizeof(float));
        c.wk.scores = malloc((size_t)n_items * sizeof(float));
        if ((item_item && (!c.wk.cooc || !c.wk.w)) || !c.wk.x || !c.wk.y || !c.wk.pop ||
            !c.wk.scores)
            e = fedreci_error(FEDREC_ERR_NOMEM, "baseline: out of memory for %u items", n_items);
    }
    for (int m = 0; m < M_COUNT && !e; m++)
        if (want[m])
            e = tune_and_test(&c, (model_kind)m);
    if (!e) {
        if (json)
            print_json(&c, &dopt);
        else
            print_table(&c, &dopt);
    } else {
        fprintf(stderr, "%s: error: %s: %s\n", cmd, fedrec_strerror(e), fedrec_errmsg());
    }
    for (int m = 0; m < M_COUNT; m++)
        result_free(&c.res[m]);
    free(c.wk.cooc);
    free(c.wk.w);
    free(c.wk.x);
    free(c.wk.y);
    free(c.wk.pop);
    free(c.wk.scores);
    fedreci_split_destroy(v);
    fedreci_split_destroy(s);
    fedreci_dataset_destroy(d);
    return e ? 1 : 0;
}
