/*
 * `fedrec-sim run`: federated training of the implicit-feedback MF model with
 * SecAgg+ on a purchase log, every training customer a client.
 *
 * The run: parse the options (run_opts.c), load and split the log, compute
 * the popularity and centralized ALS baselines, train for --rounds rounds
 * over the coordinator's engine (run_secagg.c) or as the plain-sum reference
 * (run_loop.c) while a background thread scores the model (run_eval.c),
 * then write rounds.csv, summary.json and the plot and print the table
 * (run_output.c). sim/run.h describes how the parts fit.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"
#include "core/mf/mf.h"
#include "sim/compare.h"
#include "sim/run.h"
#include "sim/synth.h"

static const char *const cmd = "fedrec-sim run";

/* What one run holds besides its options. */
typedef struct run_state {
    fedreci_dataset *d;
    fedreci_split *s;
    uint32_t *train_users;
    uint32_t n_train;
    const char **codes;
    float *y;                 /* the current model, n_items x factors */
    fedreci_run_round *recs;  /* one per round */
    double *per_user;         /* the last round's metrics per test shopper */
    double *central_per_user; /* the centralized ALS's metrics per test shopper */
    fedreci_run_summary sm;
    fedreci_sim_provenance prov;
} run_state;

static void state_free(run_state *r)
{
    free(r->per_user);
    free(r->central_per_user);
    free(r->codes);
    free(r->y);
    free(r->recs);
    free(r->train_users);
    fedreci_split_destroy(r->s);
    fedreci_dataset_destroy(r->d);
}

/* The output directory, the buffers, the training customers (the clients)
 * and the item codes; the option checks that need the data. */
static fedrec_err prepare(run_state *r, const fedreci_run_opts *o)
{
    const fedreci_mf_csr *tr = &r->s->train;
    fedrec_err e = fedreci_sim_make_dir(o->out);
    if (!e && !(e = fedreci_sim_provenance_init(&r->prov, o->data.data)))
        r->sm.prov = &r->prov;
    r->sm.split = o->data.split ? o->data.split : "lastbasket";
    r->sm.n_items = tr->n_cols;
    r->sm.test_users = r->s->n_test_users;
    r->train_users = malloc(((size_t)tr->n_rows + 1) * sizeof *r->train_users);
    r->recs = calloc(o->rounds, sizeof *r->recs);
    r->y = malloc((size_t)tr->n_cols * o->factors * sizeof *r->y);
    r->codes = calloc(tr->n_cols, sizeof *r->codes);
    r->per_user =
        calloc((size_t)FEDRECI_METRIC_COUNT * r->s->n_test_users + 1, sizeof *r->per_user);
    r->central_per_user =
        calloc((size_t)FEDRECI_METRIC_COUNT * r->s->n_test_users + 1, sizeof *r->per_user);
    if (!e &&
        (!r->train_users || !r->recs || !r->y || !r->codes || !r->per_user || !r->central_per_user))
        e = fedreci_error(FEDREC_ERR_NOMEM, "sim: buffers");
    if (!e) {
        for (uint32_t u = 0; u < tr->n_rows; u++)
            if (tr->indptr[u + 1] > tr->indptr[u])
                r->train_users[r->n_train++] = u;
        for (uint32_t i = 0; i < tr->n_cols; i++)
            r->codes[i] = fedreci_dataset_item_code(r->d, i);
        if (r->n_train < 2)
            e = fedreci_error(FEDREC_ERR_EMPTY, "sim: %u training customers; need 2", r->n_train);
    }
    r->sm.clients = r->n_train;
    r->sm.cohort = o->cohort < r->n_train ? o->cohort : r->n_train;
    if (!e)
        e = fedreci_run_opts_check(o, r->n_train);
    return e;
}

/* The popularity and centralized ALS baselines, with the progress lines. */
static fedrec_err baselines(run_state *r, const fedreci_run_opts *o)
{
    if (!o->quiet)
        printf("fedrec-sim: %s: %u clients, %u test customers, %u items; centralized "
               "baselines...\n",
               o->data.data, r->n_train, r->s->n_test_users, r->s->train.n_cols);
    fflush(stdout);
    fedrec_err e =
        fedreci_sim_compute_baselines(r->s, o->factors, (float)o->lambda, o->sweeps, o->threads,
                                      o->seed, &r->sm.base, r->central_per_user);
    if (!e && !o->quiet) {
        printf("fedrec-sim: popularity HR@10 %.4f, centralized ALS HR@10 %.4f; %u rounds of %u "
               "clients (%s)\n",
               r->sm.base.popularity.hr_at_k, r->sm.base.centralized.hr_at_k, o->rounds,
               r->sm.cohort,
               o->secagg == FEDRECI_RUN_SECAGG_OFF ? "plain sum"
               : o->tcp                            ? "tcp"
                                                   : "inproc");
        fflush(stdout);
    }
    return e;
}

/* The rounds, from the initial model (the same for every mode), with the
 * evaluator scoring in the background. */
static fedrec_err train(run_state *r, const fedreci_run_opts *o, double t_start)
{
    fedreci_mf_init(r->y, r->s->train.n_cols, o->factors, o->seed, 0.01f);
    fedreci_run_evaluator *ev = NULL;
    fedreci_run_world w = {o, r->s, r->train_users, r->n_train, r->codes};
    if (fedreci_run_mpi_rank() != 0) /* an MPI rank other than the master: groups only */
        return fedreci_run_groups(&w, r->y, r->recs, NULL);
    fedrec_err e = fedreci_run_evaluator_create(&ev, o, r->s, t_start, r->per_user);
    if (e)
        return e;
    if (o->group_size) {
        e = fedreci_run_groups(&w, r->y, r->recs, ev);
    } else if (o->dp_epsilon > 0 &&
               (o->dp_noise_aggregate || o->secagg == FEDRECI_RUN_SECAGG_OFF)) {
        r->sm.dp = 1; /* in process (sim/dp.h) */
        r->sm.cohort = r->n_train;
        e = fedreci_run_dp(&w, r->y, r->recs, &r->sm.dp_info, r->per_user);
    } else if (o->dp_epsilon > 0) {
        r->sm.dp = 1; /* over the engine: each client noises before masking */
        r->sm.dp_engine = 1;
        if (!o->quiet)
            printf("fedrec-sim: differential privacy: (%g, %g) over %u rounds, Skellam noise "
                   "added by every client before masking, through the coordinator's engine\n",
                   o->dp_epsilon, o->dp_delta, o->dp_releases);
        e = fedreci_run_secagg(&w, r->y, r->recs, ev);
        if (!e)
            e = fedreci_run_dp_info(&w, r->recs, &r->sm.dp_info);
    } else if (o->secagg != FEDRECI_RUN_SECAGG_OFF)
        e = fedreci_run_secagg(&w, r->y, r->recs, ev);
    else
        e = fedreci_run_plain(&w, r->y, r->recs, ev);
    fedrec_err ee = fedreci_run_evaluator_finish(ev);
    fedreci_run_evaluator_destroy(ev);
    if (isatty(STDOUT_FILENO) && !o->quiet)
        printf("\n");
    return e ? e : ee;
}

/* The per-shopper percentile bootstrap intervals of the final HR@10 and
 * NDCG@10 (core/eval, 1000 resamples seeded by --seed). */
static fedrec_err shopper_cis(run_state *r, const fedreci_run_opts *o)
{
    const uint32_t nt = r->s->n_test_users;
    fedrec_err e = fedreci_eval_bootstrap(r->per_user + (size_t)FEDRECI_METRIC_HR * nt, nt, 1000,
                                          o->seed, 0.95, &r->sm.hr_ci);
    if (!e)
        e = fedreci_eval_bootstrap(r->per_user + (size_t)FEDRECI_METRIC_NDCG * nt, nt, 1000,
                                   o->seed, 0.95, &r->sm.ndcg_ci);
    /* federated against centralized ALS on the same shoppers */
    if (!e)
        e = fedreci_eval_paired(r->per_user + (size_t)FEDRECI_METRIC_HR * nt,
                                r->central_per_user + (size_t)FEDRECI_METRIC_HR * nt, nt, 1000,
                                fedreci_sim_boot_seed(&o->seed, 1), 0.95, &r->sm.paired_hr);
    r->sm.have_ci = !e;
    return e;
}

/* One run with o's seed into o->out. */
static fedrec_err run_one(const fedreci_run_opts *o)
{
    double t_start = fedreci_sim_now();
    run_state r;
    memset(&r, 0, sizeof r);
    if (fedreci_sim_load(&o->data, cmd, &r.d, &r.s))
        return FEDREC_ERR_INVALID; /* the message is out */
    fedrec_err e = FEDREC_OK;
    if (o->synth_scale > 1) { /* the grown population, in memory */
        fedreci_split *grown = NULL;
        e = fedreci_sim_synth_split(r.d, r.s, o->synth_scale, 8, 1, &grown);
        fedreci_split_destroy(r.s);
        r.s = grown;
        if (!e && !o->quiet && fedreci_run_mpi_rank() == 0)
            printf("fedrec-sim: --synth-scale %u: %u shoppers, %llu training pairs, %u test "
                   "shoppers\n",
                   o->synth_scale, r.s->train.n_rows, (unsigned long long)r.s->train_interactions,
                   r.s->n_test_users);
    }
    if (!e && o->eval_sample)
        e = fedreci_split_sample_test(r.s, o->eval_sample, o->seed);
    if (!e)
        e = prepare(&r, o);
    if (!e && fedreci_run_mpi_rank() != 0) {
        /* an MPI rank other than the master: its share of the groups, no
           baselines, evaluation or outputs */
        e = train(&r, o, t_start);
        if (e)
            fprintf(stderr, "%s: rank %d: error: %s: %s\n", cmd, fedreci_run_mpi_rank(),
                    fedrec_strerror(e), fedrec_errmsg());
        state_free(&r);
        return e;
    }
    if (!e)
        e = baselines(&r, o);
    if (!e)
        e = train(&r, o, t_start);
    if (!e)
        e = fedreci_run_summarize(o, r.recs, &r.sm);
    if (!e)
        e = shopper_cis(&r, o);
    r.sm.wall = fedreci_sim_now() - t_start;
    if (!e)
        e = fedreci_run_write_rounds_csv(o, r.recs, &r.sm);
    if (!e)
        e = fedreci_run_write_shoppers(o, r.d, r.s, r.per_user, r.central_per_user);
    if (!e)
        e = fedreci_run_write_summary(o, &r.sm);
    if (!e) {
        fedreci_run_write_plot(o, r.recs, &r.sm);
        fedreci_run_print_table(o, &r.sm);
    }
    if (e)
        fprintf(stderr, "%s: error: %s: %s\n", cmd, fedrec_strerror(e), fedrec_errmsg());
    state_free(&r);
    return e;
}

/* --seeds: one run per seed in out/seed-N (a finished one is kept), then the
 * statistics across them in out/seeds.json and out/seeds.csv. */
static fedrec_err run_seeds(const fedreci_run_opts *o)
{
    char dirs[FEDRECI_RUN_MAX_SEEDS][4096], path[4200];
    fedrec_err e = fedreci_sim_make_dir(o->out);
    for (uint32_t i = 0; i < o->n_seeds && !e; i++) {
        fedreci_run_opts oi = *o;
        oi.seed = o->seeds[i];
        oi.n_seeds = 0;
        if ((size_t)snprintf(dirs[i], sizeof dirs[i], "%s/seed-%llu", o->out,
                             (unsigned long long)oi.seed) >= sizeof dirs[i])
            return fedreci_error(FEDREC_ERR_INVALID, "%s: path too long", o->out);
        oi.out = dirs[i];
        if (fedreci_sim_run_finished(dirs[i])) {
            printf("fedrec-sim: seed %llu: %s holds a finished run, kept\n",
                   (unsigned long long)oi.seed, dirs[i]);
            continue;
        }
        printf("fedrec-sim: seed %llu (%u of %u) into %s\n", (unsigned long long)oi.seed, i + 1,
               o->n_seeds, dirs[i]);
        fflush(stdout);
        if ((e = run_one(&oi)))
            return e; /* run_one printed it */
    }
    fedreci_cmp_group *g = e ? NULL : calloc(1, sizeof *g);
    if (!e && !g)
        e = fedreci_error(FEDREC_ERR_NOMEM, "out of memory");
    if (!e)
        e = fedreci_cmp_group_load(g, o->out);
    snprintf(path, sizeof path, "%s/seeds.json", o->out);
    if (!e)
        e = fedreci_cmp_group_json(g, path, "seeds");
    snprintf(path, sizeof path, "%s/seeds.csv", o->out);
    if (!e)
        e = fedreci_cmp_write_csv(g, 1, path);
    if (!e) {
        printf("\n%-24s %-8s %-9s %-22s (%zu seeds)\n", "metric", "mean", "sd", "95% t interval",
               g->n_runs);
        for (int m = 0; m < FEDRECI_CMP_N_METRICS - 1; m++)
            printf("%-24s %-8.4f %-9.4f [%.4f, %.4f]\n", fedreci_cmp_metrics[m], g->stat[m].mean,
                   g->stat[m].sd, g->stat[m].lo, g->stat[m].hi);
        if (g->have_central) {
            const fedreci_paired *h = &g->central_hr;
            printf("%-24s %+.4f [%+.4f, %+.4f] HR@10, ratio %.3f [%.3f, %.3f], p %.3f\n"
                   "%-24s (each shopper's HR@10 averaged over the seeds; paired bootstrap, %u "
                   "shoppers)\n",
                   "federated - centralized", h->diff.mean, h->diff.lo, h->diff.hi, h->ratio.mean,
                   h->ratio.lo, h->ratio.hi, h->p_value, "", h->n);
        }
        printf("%-24s %s/seeds.json, %s\n", "outputs", o->out, path);
    }
    if (e)
        fprintf(stderr, "%s: error: %s: %s\n", cmd, fedrec_strerror(e), fedrec_errmsg());
    if (g)
        fedreci_cmp_group_free(g);
    free(g);
    return e;
}

int fedreci_sim_run(int argc, char **argv)
{
    fedreci_run_opts o;
    int rc = fedreci_run_opts_parse(&o, argc, argv);
    if (rc)
        return rc == 1 ? 0 : 2;
    if (fedreci_run_mpi_init()) {
        fprintf(stderr, "%s: MPI_Init failed\n", cmd);
        return 1;
    }
    if (fedreci_run_mpi_size() > 1 && (!o.group_size || o.n_seeds)) {
        if (fedreci_run_mpi_rank() == 0)
            fprintf(stderr,
                    "%s: under mpirun with %d ranks: needs --group-size (and one "
                    "--seed)\n",
                    cmd, fedreci_run_mpi_size());
        fedreci_run_mpi_finalize(0);
        return 2;
    }
    fedrec_err e = o.n_seeds ? run_seeds(&o) : run_one(&o);
    fedreci_run_mpi_finalize(e != FEDREC_OK);
    return e ? 1 : 0;
}
