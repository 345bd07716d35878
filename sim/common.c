/* fedrec-sim: data options, model evaluation and baselines shared by the
 * subcommands. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/dp/dpals.h"
#include "core/err.h"
#include "core/json.h"
#include "core/mf/mf.h"
#include "sim/sim.h"

double fedreci_sim_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

fedrec_err fedreci_sim_load(const fedreci_sim_data_opts *o, const char *cmd, fedreci_dataset **dp,
                            fedreci_split **sp)
{
    if (!o->data) {
        fprintf(stderr, "%s: --data FILE is required\n", cmd);
        return FEDREC_ERR_INVALID;
    }
    fedreci_split_options so = {FEDRECI_SPLIT_LAST_BASKET, 0};
    /* validation[:SPEC]: the validation split of SPEC's training rows (for
       tuning; the test rows are never read) */
    const char *spec = o->split;
    int validation = 0;
    if (spec && !strncmp(spec, "validation", 10) && (spec[10] == 0 || spec[10] == ':')) {
        validation = 1;
        spec = spec[10] ? spec + 11 : NULL;
    }
    if (spec && !strncmp(spec, "date:", 5)) {
        so.kind = FEDRECI_SPLIT_TEMPORAL;
        if (fedreci_parse_time(spec + 5, &so.split_time)) {
            fprintf(stderr, "%s: --split '%s': '%s' is not a date\n", cmd, o->split, spec + 5);
            return FEDREC_ERR_INVALID;
        }
    } else if (spec && strcmp(spec, "lastbasket")) {
        fprintf(stderr,
                "%s: --split '%s': expected lastbasket, date:YYYY-MM-DD, validation or "
                "validation:date:YYYY-MM-DD\n",
                cmd, o->split);
        return FEDREC_ERR_INVALID;
    }
    fedreci_dataset *d = NULL;
    fedreci_split *s = NULL;
    fedrec_err e = fedreci_dataset_load(&d, o->data, &o->ds, NULL);
    if (!e)
        e = validation ? fedreci_split_create_validation(&s, d, &so)
                       : fedreci_split_create(&s, d, &so);
    if (!e && s->n_test_users == 0)
        e = fedreci_error(FEDREC_ERR_EMPTY, "%s: the split has no test customer", o->data);
    if (e) {
        fprintf(stderr, "%s: error: %s: %s\n", cmd, fedrec_strerror(e), fedrec_errmsg());
        fedreci_split_destroy(s);
        fedreci_dataset_destroy(d);
        return e;
    }
    *dp = d;
    *sp = s;
    return FEDREC_OK;
}

/* ---- evaluation ---------------------------------------------------------------- */

#define EVAL_K FEDRECI_EVAL_DEFAULT_K

typedef struct eval_job {
    const fedreci_split *s;
    const float *y;
    const float *x;
    const float *gram;
    uint32_t k;
    double bias; /* > 0: y's last column holds item biases, x_u's last coordinate is bias */
    float lambda;
    uint32_t lo, hi;  /* test-user range */
    uint32_t *ranked; /* n_test_users x EVAL_K */
    uint32_t *n_ranked;
    fedrec_err err;
    char msg[256];
} eval_job;

static void *eval_worker(void *arg)
{
    eval_job *j = arg;
    const fedreci_split *s = j->s;
    const uint32_t n_items = s->train.n_cols, k = j->k;
    fedreci_mf_step *w = NULL;
    float *scores = malloc((size_t)n_items * sizeof *scores);
    float *xu = malloc((size_t)k * sizeof *xu);
    float *work = j->bias > 0 ? malloc((size_t)k * k * sizeof *work) : NULL;
    fedrec_err e = scores && xu && (work || !(j->bias > 0)) ? FEDREC_OK : FEDREC_ERR_NOMEM;
    if (!e && !j->x && !(j->bias > 0))
        e = fedreci_mf_step_create(&w, n_items, k);
    for (uint32_t t = j->lo; t < j->hi && !e; t++) {
        uint32_t u = s->test_users[t];
        uint64_t lo = s->train.indptr[u], hi = s->train.indptr[u + 1];
        const uint32_t *items = s->train.indices + lo;
        const float *x;
        if (j->x) {
            x = j->x + (size_t)u * k;
        } else if (j->bias > 0) {
            fedreci_mf_user cu = {items, s->train.conf + lo, (uint32_t)(hi - lo)};
            e = fedreci_dpals_solve_biased(j->y, j->gram, n_items, k, j->bias, j->lambda, &cu, work,
                                           xu);
            xu[k - 1] = (float)j->bias;
            x = xu;
        } else {
            fedreci_mf_user cu = {items, s->train.conf + lo, (uint32_t)(hi - lo)};
            e = fedreci_mf_solve_user(w, j->y, j->gram, n_items, k, j->lambda, &cu, xu);
            x = xu;
        }
        if (!e)
            e = fedreci_mf_topk(j->y, n_items, k, x, items, (size_t)(hi - lo), EVAL_K, scores,
                                j->ranked + (size_t)t * EVAL_K, NULL, &j->n_ranked[t]);
    }
    if (e)
        snprintf(j->msg, sizeof j->msg, "%s", fedrec_errmsg());
    j->err = e;
    fedreci_mf_step_destroy(w);
    free(scores);
    free(xu);
    free(work);
    return NULL;
}

fedrec_err fedreci_sim_evaluate(const fedreci_split *s, const float *y, const float *x, uint32_t k,
                                float lambda, uint32_t threads, fedreci_metrics *out)
{
    return fedreci_sim_evaluate_users(s, y, x, k, lambda, threads, out, NULL);
}

/* Copies the accumulator's per-user values into per_user (metric-major). */
static fedrec_err copy_per_user(const fedreci_eval_acc *acc, uint32_t nt, double *per_user)
{
    for (uint32_t m = 0; m < FEDRECI_METRIC_COUNT; m++) {
        const double *v;
        uint32_t n;
        fedrec_err e = fedreci_eval_acc_values(acc, (fedreci_metric_id)m, &v, &n);
        if (e)
            return e;
        if (n != nt)
            return fedreci_error(FEDREC_ERR_INTERNAL, "evaluation: %u values for %u users", n, nt);
        memcpy(per_user + (size_t)m * nt, v, (size_t)nt * sizeof *v);
    }
    return FEDREC_OK;
}

static fedrec_err evaluate(const fedreci_split *s, const float *y, const float *x, uint32_t k,
                           double bias, float lambda, uint32_t threads, fedreci_metrics *out,
                           double *per_user);

fedrec_err fedreci_sim_evaluate_users(const fedreci_split *s, const float *y, const float *x,
                                      uint32_t k, float lambda, uint32_t threads,
                                      fedreci_metrics *out, double *per_user)
{
    return evaluate(s, y, x, k, 0, lambda, threads, out, per_user);
}

fedrec_err fedreci_sim_evaluate_biased(const fedreci_split *s, const float *y, uint32_t k,
                                       double bias, float lambda, uint32_t threads,
                                       fedreci_metrics *out, double *per_user)
{
    if (bias > 0 && k < 2)
        return fedreci_error(FEDREC_ERR_INVALID, "evaluation: a bias column needs k >= 2");
    return evaluate(s, y, NULL, k, bias > 0 ? bias : 0, lambda, threads, out, per_user);
}

static fedrec_err evaluate(const fedreci_split *s, const float *y, const float *x, uint32_t k,
                           double bias, float lambda, uint32_t threads, fedreci_metrics *out,
                           double *per_user)
{
    const uint32_t nt = s->n_test_users, n_items = s->train.n_cols;
    if (threads == 0)
        threads = 1;
    if (threads > nt)
        threads = nt ? nt : 1;
    uint32_t *ranked = malloc(((size_t)nt * EVAL_K + 1) * sizeof *ranked);
    uint32_t *n_ranked = calloc((size_t)nt + 1, sizeof *n_ranked);
    float *gram = malloc((size_t)k * k * sizeof *gram);
    eval_job *jobs = calloc(threads, sizeof *jobs);
    pthread_t *tids = calloc(threads, sizeof *tids);
    char *started = calloc(threads, 1);
    fedreci_eval_acc *acc = NULL;
    fedrec_err e = FEDREC_ERR_NOMEM;
    if (!ranked || !n_ranked || !gram || !jobs || !tids || !started)
        goto out;
    e = fedreci_eval_acc_create(&acc, n_items, EVAL_K);
    if (e)
        goto out;
    fedreci_mf_gram(y, n_items, k, gram);
    for (uint32_t t = 0; t < threads; t++) {
        eval_job *j = &jobs[t];
        *j = (eval_job){s,
                        y,
                        x,
                        gram,
                        k,
                        bias,
                        lambda,
                        (uint32_t)((uint64_t)nt * t / threads),
                        (uint32_t)((uint64_t)nt * (t + 1) / threads),
                        ranked,
                        n_ranked,
                        FEDREC_OK,
                        ""};
        started[t] = t > 0 && pthread_create(&tids[t], NULL, eval_worker, j) == 0;
        if (t > 0 && !started[t])
            eval_worker(j);
    }
    eval_worker(&jobs[0]);
    for (uint32_t t = 1; t < threads; t++)
        if (started[t])
            pthread_join(tids[t], NULL);
    for (uint32_t t = 0; t < threads; t++)
        if (jobs[t].err) {
            e = fedreci_error(jobs[t].err, "%s", jobs[t].msg);
            goto out;
        }
    for (uint32_t t = 0; t < nt && !e; t++) {
        uint32_t n_test;
        const uint32_t *test = fedreci_split_test(s, t, &n_test);
        e = fedreci_eval_acc_add(acc, ranked + (size_t)t * EVAL_K, n_ranked[t], test, n_test);
    }
    if (!e)
        e = fedreci_eval_acc_finish(acc, out);
    if (!e && per_user)
        e = copy_per_user(acc, nt, per_user);
out:
    fedreci_eval_acc_destroy(acc);
    free(started);
    free(tids);
    free(jobs);
    free(gram);
    free(n_ranked);
    free(ranked);
    return e;
}

fedrec_err fedreci_sim_compute_baselines(const fedreci_split *s, uint32_t k, float lambda,
                                         uint32_t sweeps, uint32_t threads, uint64_t seed,
                                         fedreci_sim_baselines *out, double *central_per_user)
{
    fedreci_sim_baselines b;
    memset(&b, 0, sizeof b);
    fedrec_err e = fedreci_eval_popularity(s, EVAL_K, &b.popularity);
    if (e)
        return e;
    const fedreci_mf_csr *r = &s->train;
    float *x = malloc(((size_t)r->n_rows * k + 1) * sizeof *x);
    float *y = malloc(((size_t)r->n_cols * k + 1) * sizeof *y);
    if (!x || !y) {
        free(x);
        free(y);
        return fedreci_error(FEDREC_ERR_NOMEM, "baseline: out of memory for the ALS factors");
    }
    fedreci_als_params p = {k, lambda, sweeps, threads, seed, 0.0f};
    double t0 = fedreci_sim_now();
    e = fedreci_als_train(r, &p, x, y, NULL);
    b.als_seconds = fedreci_sim_now() - t0;
    if (!e)
        e = fedreci_sim_evaluate_users(s, y, x, k, lambda, threads, &b.centralized,
                                       central_per_user);
    free(x);
    free(y);
    if (!e)
        *out = b;
    return e;
}
