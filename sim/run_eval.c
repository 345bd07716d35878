/* fedrec-sim run: the background evaluator. The round loop hands it a copy
 * of the model after every --eval-every round and goes on with the next
 * round while the test customers are scored (fedreci_sim_evaluate on
 * --threads threads); it prints the progress line when a score is ready. One
 * job at a time: posting waits for the previous job. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"
#include "sim/run.h"

struct fedreci_run_evaluator {
    pthread_t tid;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int busy, quit;
    float *y;             /* the job's model copy */
    fedreci_run_round *r; /* where the metrics go */
    uint32_t index;
    const fedreci_run_opts *o;
    const fedreci_split *s;
    uint32_t k;
    double t0;
    uint32_t n_rounds;
    int tty;
    double *last_per_user; /* borrowed: the last round's per-shopper values, or NULL */
    fedrec_err err;
    char msg[256];
};

static void progress(fedreci_run_evaluator *ev, uint32_t index, const fedreci_run_round *r)
{
    if (ev->o->quiet)
        return;
    double el = fedreci_sim_now() - ev->t0;
    double left = el / (index + 1) * (ev->n_rounds - index - 1);
    uint32_t dropped = r->dropped[0] + r->dropped[1] + r->dropped[2] + r->dropped[3];
    if (ev->tty) {
        printf("\rround %u/%u  HR@10 %.4f  NDCG@10 %.4f  survivors %u/%u  elapsed %.0f s  "
               "left %.0f s   ",
               index + 1, ev->n_rounds, r->m.hr_at_k, r->m.ndcg_at_k, r->survivors, r->cohort, el,
               left);
    } else {
        printf("round %u/%u: HR@10 %.4f NDCG@10 %.4f recall@10 %.4f, cohort %u, survivors %u, "
               "dropped %u, %s, elapsed %.1f s, left %.0f s\n",
               index + 1, ev->n_rounds, r->m.hr_at_k, r->m.ndcg_at_k, r->m.recall_at_k, r->cohort,
               r->survivors, dropped,
               r->completed ? (r->verified == 1   ? "sum verified"
                               : r->verified == 0 ? "SUM MISMATCH"
                                                  : "completed")
                            : "aborted",
               el, left);
    }
    fflush(stdout);
}

static void *eval_main(void *arg)
{
    fedreci_run_evaluator *ev = arg;
    pthread_mutex_lock(&ev->mu);
    for (;;) {
        while (!ev->busy && !ev->quit)
            pthread_cond_wait(&ev->cv, &ev->mu);
        if (!ev->busy)
            break;
        pthread_mutex_unlock(&ev->mu);
        fedreci_metrics m;
        double *pu = ev->index + 1 == ev->n_rounds ? ev->last_per_user : NULL;
        fedrec_err e = fedreci_sim_evaluate_users(ev->s, ev->y, NULL, ev->k, (float)ev->o->lambda,
                                                  ev->o->threads, &m, pu);
        pthread_mutex_lock(&ev->mu);
        if (e && !ev->err) {
            ev->err = e;
            snprintf(ev->msg, sizeof ev->msg, "%s", fedrec_errmsg());
        }
        if (!e) {
            ev->r->m = m;
            ev->r->evaluated = 1;
            progress(ev, ev->index, ev->r);
        }
        ev->busy = 0;
        pthread_cond_broadcast(&ev->cv);
    }
    pthread_mutex_unlock(&ev->mu);
    return NULL;
}

fedrec_err fedreci_run_evaluator_create(fedreci_run_evaluator **evp, const fedreci_run_opts *o,
                                        const fedreci_split *s, double t0, double *last_per_user)
{
    fedreci_run_evaluator *ev = calloc(1, sizeof *ev);
    if (!ev)
        return fedreci_error(FEDREC_ERR_NOMEM, "sim: evaluator");
    pthread_mutex_init(&ev->mu, NULL);
    pthread_cond_init(&ev->cv, NULL);
    ev->o = o;
    ev->s = s;
    ev->k = o->factors;
    ev->t0 = t0;
    ev->n_rounds = o->rounds;
    ev->tty = isatty(STDOUT_FILENO);
    ev->last_per_user = last_per_user;
    ev->y = malloc((size_t)s->train.n_cols * o->factors * sizeof *ev->y);
    if (!ev->y) {
        fedreci_run_evaluator_destroy(ev);
        return fedreci_error(FEDREC_ERR_NOMEM, "sim: evaluator model copy");
    }
    if (pthread_create(&ev->tid, NULL, eval_main, ev) != 0) {
        fedreci_run_evaluator_destroy(ev);
        return fedreci_error(FEDREC_ERR_NOMEM, "sim: evaluation thread");
    }
    ev->started = 1;
    *evp = ev;
    return FEDREC_OK;
}

void fedreci_run_evaluator_post(fedreci_run_evaluator *ev, const float *y, size_t nk,
                                fedreci_run_round *r, uint32_t index)
{
    pthread_mutex_lock(&ev->mu);
    while (ev->busy)
        pthread_cond_wait(&ev->cv, &ev->mu);
    if (y) {
        memcpy(ev->y, y, nk * sizeof *y);
        ev->r = r;
        ev->index = index;
        ev->busy = 1;
        pthread_cond_broadcast(&ev->cv);
    }
    pthread_mutex_unlock(&ev->mu);
}

fedrec_err fedreci_run_evaluator_finish(fedreci_run_evaluator *ev)
{
    if (!ev->started)
        return FEDREC_OK;
    fedreci_run_evaluator_post(ev, NULL, 0, NULL, 0);
    pthread_mutex_lock(&ev->mu);
    ev->quit = 1;
    pthread_cond_broadcast(&ev->cv);
    pthread_mutex_unlock(&ev->mu);
    pthread_join(ev->tid, NULL);
    ev->started = 0;
    if (ev->err)
        return fedreci_error(ev->err, "evaluation: %s", ev->msg);
    return FEDREC_OK;
}

void fedreci_run_evaluator_destroy(fedreci_run_evaluator *ev)
{
    if (!ev)
        return;
    if (fedreci_run_evaluator_finish(ev))
        fedreci_error_clear();
    pthread_cond_destroy(&ev->cv);
    pthread_mutex_destroy(&ev->mu);
    free(ev->y);
    free(ev);
}
