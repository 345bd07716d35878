/* fedrec-sim run: the outputs — rounds.csv (one row per round),
 * summary.json (the run), hr_ndcg.svg (the plot) and the table printed at
 * the end. */
#include <stdlib.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "core/err.h"
#include "core/json.h"
#include "sim/plot.h"
#include "core/mf/mf.h"
#include "sim/run.h"

fedrec_err fedreci_sim_make_dir(const char *dir)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf)
        return fedreci_error(FEDREC_ERR_INVALID, "sim: --out path too long");
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(buf, 0777);
            *p = '/';
        }
    if (mkdir(buf, 0777) != 0) {
        int err = errno;
        struct stat st;
        if (stat(buf, &st) != 0)
            return fedreci_error(FEDREC_ERR_IO, "%s: cannot create the directory: %s", dir,
                                 strerror(err));
        if (!S_ISDIR(st.st_mode))
            return fedreci_error(FEDREC_ERR_IO,
                                 "%s: cannot create the directory: a file of that name is there",
                                 dir);
    }
    return FEDREC_OK;
}

int fedreci_sim_same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return a && b && stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

fedrec_err fedreci_run_summarize(const fedreci_run_opts *o, const fedreci_run_round *recs,
                                 fedreci_run_summary *sm)
{
    uint64_t up = 0, down = 0, part = 0;
    sm->verified = o->secagg != FEDRECI_RUN_SECAGG_OFF && (!(o->dp_epsilon > 0) || sm->dp_engine);
    for (uint32_t i = 0; i < o->rounds; i++) {
        const fedreci_run_round *r = &recs[i];
        if (r->completed) {
            sm->rounds_completed++;
            if (r->verified == 1)
                sm->rounds_verified++;
            else
                sm->verified = 0;
        } else {
            sm->rounds_aborted++;
        }
        sm->dp_rounds_refused += r->dp_refused != 0;
        if (!sm->k && r->k) {
            sm->k = r->k;
            sm->t = r->t;
        }
        for (int st = 0; st < 4; st++)
            sm->dropped[st] += r->dropped[st];
        up += r->up_bytes;
        down += r->down_bytes;
        part += r->n_completed;
        sm->session_errors += r->session_errors;
        sm->groups += r->groups;
        sm->groups_failed += r->groups_failed;
    }
    if (!sm->rounds_completed)
        sm->verified = 0;
    sm->bytes_up = part ? (double)up / (double)part : 0.0;
    sm->bytes_down = part ? (double)down / (double)part : 0.0;
    /* the model at the end: the last evaluated round (the last round, or in a
       DP run the last one before the budget gate refused) */
    const fedreci_run_round *last = &recs[o->rounds - 1];
    for (uint32_t i = o->rounds; i-- > 0 && !recs[i].evaluated;)
        last = i ? &recs[i - 1] : &recs[0];
    sm->fed = last->m;
    sm->have_fed = last->evaluated;
    if (!sm->have_fed)
        return fedreci_error(FEDREC_ERR_INTERNAL, "sim: the last round was not evaluated");
    return FEDREC_OK;
}

static fedrec_err path_join(char *buf, size_t n, const char *dir, const char *file)
{
    if ((size_t)snprintf(buf, n, "%s/%s", dir, file) >= n)
        return fedreci_error(FEDREC_ERR_INVALID, "sim: output path %s/%s too long", dir, file);
    return FEDREC_OK;
}

fedrec_err fedreci_run_write_shoppers(const fedreci_run_opts *o, const fedreci_dataset *d,
                                      const fedreci_split *s, const double *per_user,
                                      const double *central_per_user)
{
    char path[4096];
    fedrec_err e = path_join(path, sizeof path, o->out, "shoppers.csv");
    if (e)
        return e;
    FILE *f = fopen(path, "w");
    if (!f)
        return fedreci_error(FEDREC_ERR_IO, "sim: cannot write %s", path);
    const uint32_t nt = s->n_test_users;
    fprintf(f, "user_index,user_id,hr_at_10,precision_at_10,recall_at_10,ndcg_at_10,map_at_10,"
               "centralized_hr_at_10,centralized_precision_at_10,centralized_recall_at_10,"
               "centralized_ndcg_at_10,centralized_map_at_10\n");
    for (uint32_t t = 0; t < nt; t++) {
        uint32_t u = s->test_users[t], nu = fedreci_dataset_n_users(d);
        char syn[32];
        /* --synth-scale: shopper u is copy u / nu of real shopper u % nu,
           named as `fedrec-sim synth` names it */
        if (u >= nu)
            snprintf(syn, sizeof syn, "%u", u + 1u);
        const char *id = u >= nu ? syn : fedreci_dataset_user_name(d, u);
        fprintf(f, "%u,", u);
        if (strpbrk(id, ",\"\r\n"))
            fprintf(f, "\"?\""); /* ids with CSV syntax are not expected; index is the key */
        else
            fputs(id, f);
        for (uint32_t m = 0; m < FEDRECI_METRIC_COUNT; m++)
            fprintf(f, ",%.6f", per_user[(size_t)m * nt + t]);
        for (uint32_t m = 0; m < FEDRECI_METRIC_COUNT; m++)
            fprintf(f, ",%.6f", central_per_user[(size_t)m * nt + t]);
        fputc('\n', f);
    }
    int bad = ferror(f);
    if (fclose(f) || bad)
        return fedreci_error(FEDREC_ERR_IO, "sim: writing %s failed", path);
    return FEDREC_OK;
}

/* The value of a boolean column: true, false, or empty when unknown (< 0). */
static const char *csv_bool(int v)
{
    return v < 0 ? "" : v ? "true" : "false";
}

fedrec_err fedreci_run_write_rounds_csv(const fedreci_run_opts *o, const fedreci_run_round *recs,
                                        const fedreci_run_summary *sm)
{
    char path[4096];
    fedrec_err e = path_join(path, sizeof path, o->out, "rounds.csv");
    if (e)
        return e;
    FILE *f = fopen(path, "w");
    if (!f)
        return fedreci_error(FEDREC_ERR_IO, "sim: cannot write %s", path);
    if (sm->prov)
        fedreci_sim_provenance_csv(f, sm->prov);
    fprintf(f, "round,completed,verified,cohort,survivors,dropped,dropped_advertise,"
               "dropped_share,dropped_masked,dropped_unmask,hr_at_10,ndcg_at_10,recall_at_10,"
               "precision_at_10,map_at_10,coverage_at_10,bytes_up,bytes_down,bytes_up_per_client,"
               "bytes_down_per_client,stage0_ms,stage1_ms,stage2_ms,stage3_ms,round_seconds,"
               "rss_kb,heap_kb,dp_epsilon_round,dp_epsilon_cumulative\n");
    for (uint32_t i = 0; i < o->rounds; i++) {
        const fedreci_run_round *r = &recs[i];
        uint32_t dr = r->dropped[0] + r->dropped[1] + r->dropped[2] + r->dropped[3];
        fprintf(f, "%u,%s,%s,%u,%u,%u,%u,%u,%u,%u,", i + 1, csv_bool(r->completed),
                csv_bool(r->verified), r->cohort, r->survivors, dr, r->dropped[0], r->dropped[1],
                r->dropped[2], r->dropped[3]);
        if (r->evaluated)
            fprintf(f, "%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,", r->m.hr_at_k, r->m.ndcg_at_k,
                    r->m.recall_at_k, r->m.precision_at_k, r->m.map_at_k, r->m.coverage);
        else
            fprintf(f, ",,,,,,");
        double n = r->n_completed ? (double)r->n_completed : 1.0;
        fprintf(f, "%llu,%llu,%.0f,%.0f,%.1f,%.1f,%.1f,%.1f,%.3f,%llu,%llu,",
                (unsigned long long)r->up_bytes, (unsigned long long)r->down_bytes,
                (double)r->up_bytes / n, (double)r->down_bytes / n, r->stage_ms[0], r->stage_ms[1],
                r->stage_ms[2], r->stage_ms[3], r->seconds, (unsigned long long)r->rss_kb,
                (unsigned long long)r->heap_kb);
        /* epsilon: empty without DP (no guarantee); a refused round spent nothing */
        if (o->dp_epsilon > 0)
            fprintf(f, "%.6f,%.6f\n", r->completed ? r->dp_eps_round : 0.0, r->dp_eps_cumulative);
        else
            fprintf(f, ",\n");
    }
    int bad = ferror(f);
    if (fclose(f) || bad)
        return fedreci_error(FEDREC_ERR_IO, "sim: writing %s failed", path);
    return FEDREC_OK;
}

/* Members of summary.json, one per line. */
static void kf(fedreci_json *w, const char *key, double v)
{
    fedreci_json_newline(w, "  ");
    fedreci_json_kdouble(w, key, "%.6f", v);
}

static void kg(fedreci_json *w, const char *key, double v)
{
    fedreci_json_newline(w, "  ");
    fedreci_json_kdouble(w, key, "%g", v);
}

static void ku(fedreci_json *w, const char *key, uint64_t v)
{
    fedreci_json_newline(w, "  ");
    fedreci_json_ku64(w, key, v);
}

static void ks(fedreci_json *w, const char *key, const char *v)
{
    fedreci_json_newline(w, "  ");
    fedreci_json_kstr(w, key, v);
}

static void kb(fedreci_json *w, const char *key, int v)
{
    fedreci_json_newline(w, "  ");
    fedreci_json_kbool(w, key, v);
}

/* The metrics and the baselines. */
static void summary_metrics(fedreci_json *w, const fedreci_run_summary *sm)
{
    const fedreci_metrics *m = &sm->fed, *c = &sm->base.centralized, *p = &sm->base.popularity;
    kf(w, "hr_at_10", m->hr_at_k);
    kf(w, "ndcg_at_10", m->ndcg_at_k);
    kf(w, "recall_at_10", m->recall_at_k);
    kf(w, "precision_at_10", m->precision_at_k);
    kf(w, "map_at_10", m->map_at_k);
    kf(w, "coverage_at_10", m->coverage);
    if (sm->have_ci) {
        kf(w, "hr_at_10_ci95_lo", sm->hr_ci.lo);
        kf(w, "hr_at_10_ci95_hi", sm->hr_ci.hi);
        kf(w, "ndcg_at_10_ci95_lo", sm->ndcg_ci.lo);
        kf(w, "ndcg_at_10_ci95_hi", sm->ndcg_ci.hi);
        ks(w, "ci95",
           "per-shopper percentile bootstrap of the test shoppers, 1000 resamples "
           "seeded by the run's seed (core/eval fedreci_eval_bootstrap)");
        kf(w, "paired_hr_at_10_diff", sm->paired_hr.diff.mean);
        kf(w, "paired_hr_at_10_diff_ci95_lo", sm->paired_hr.diff.lo);
        kf(w, "paired_hr_at_10_diff_ci95_hi", sm->paired_hr.diff.hi);
        kf(w, "paired_ratio_ci95_lo", sm->paired_hr.ratio.lo);
        kf(w, "paired_ratio_ci95_hi", sm->paired_hr.ratio.hi);
        kf(w, "paired_p_value", sm->paired_hr.p_value);
        ks(w, "paired",
           "federated minus centralized ALS HR@10 on the same test shoppers: paired "
           "bootstrap, 1000 resamples seeded by the run's seed, as fedrec-sim compare of this run "
           "(core/eval fedreci_eval_paired)");
    }
    kf(w, "centralized_hr_at_10", c->hr_at_k);
    kf(w, "centralized_ndcg_at_10", c->ndcg_at_k);
    kf(w, "centralized_recall_at_10", c->recall_at_k);
    kf(w, "popularity_hr_at_10", p->hr_at_k);
    kf(w, "popularity_ndcg_at_10", p->ndcg_at_k);
    kf(w, "popularity_recall_at_10", p->recall_at_k);
    kf(w, "ratio_to_centralized", c->hr_at_k > 0 ? m->hr_at_k / c->hr_at_k : 0.0);
}

/* The federation: rounds, cohort, SecAgg, dropouts, bytes, the oracle. */
static void summary_federation(fedreci_json *w, const fedreci_run_opts *o,
                               const fedreci_run_summary *sm)
{
    ku(w, "rounds", o->rounds);
    ku(w, "rounds_completed", sm->rounds_completed);
    ku(w, "rounds_aborted", sm->rounds_aborted);
    ku(w, "clients", sm->clients);
    ku(w, "cohort", sm->cohort);
    ks(w, "secagg", fedreci_run_secagg_names[o->secagg]);
    ku(w, "neighbors", sm->k);
    ku(w, "threshold", sm->t);
    kg(w, "dropout", o->dropout);
    ks(w, "dropout_stage",
       o->dropout_stage < 0 ? "spread" : fedreci_run_stage_names[o->dropout_stage]);
    ku(w, "dropped_advertise", sm->dropped[0]);
    ku(w, "dropped_share", sm->dropped[1]);
    ku(w, "dropped_masked", sm->dropped[2]);
    ku(w, "dropped_unmask", sm->dropped[3]);
    fedreci_json_newline(w, "  ");
    fedreci_json_kdouble(w, "bytes_up_per_client", "%.0f", sm->bytes_up);
    fedreci_json_newline(w, "  ");
    fedreci_json_kdouble(w, "bytes_down_per_client", "%.0f", sm->bytes_down);
    kb(w, "secagg_verified", sm->verified);
    ku(w, "secagg_rounds_verified", sm->rounds_verified);
    if (sm->dp && !sm->dp_engine)
        ks(w, "secagg_note",
           "DP run in process: the clients' noised words are summed in process (no SecAgg "
           "session), nothing to verify");
    else if (o->secagg == FEDRECI_RUN_SECAGG_OFF)
        ks(w, "secagg_note",
           "--secagg off: plain-sum reference (core/mf fedreci_mf_fed_round), no "
           "transport, no masking, nothing to verify");
    else if (sm->rounds_completed == 0)
        ks(w, "secagg_note",
           "no round completed: no unmasked sum to check against the oracle, so "
           "secagg_verified is false");
    ku(w, "session_errors", sm->session_errors);
    ks(w, "transport",
       o->secagg == FEDRECI_RUN_SECAGG_OFF ? "none"
       : o->group_size                     ? "groups"
       : o->tcp                            ? "tcp"
                                           : "inproc");
    if (o->group_size) {
        ku(w, "group_size", o->group_size);
        ku(w, "groups", sm->groups);
        ku(w, "groups_failed", sm->groups_failed);
    }
}

/* Differential privacy: "none", or the guarantee and its parameters. */
/* A member with its own number format, on its own line. */
static void kd(fedreci_json *w, const char *key, const char *fmt, double v)
{
    fedreci_json_newline(w, "  ");
    fedreci_json_kdouble(w, key, fmt, v);
}

static void summary_dp(fedreci_json *w, const fedreci_run_opts *o, const fedreci_run_summary *sm)
{
    if (!sm->dp) {
        ks(w, "differential_privacy", "none");
        return;
    }
    const fedreci_sim_dp_info *q = &sm->dp_info;
    ks(w, "differential_privacy", "skellam");
    kg(w, "dp_epsilon_budget", o->dp_epsilon);
    kg(w, "dp_delta", o->dp_delta);
    kd(w, "dp_epsilon_spent", "%.6f", q->eps_spent);
    kg(w, "dp_rdp_order", q->eps_order);
    ku(w, "dp_releases_calibrated", o->dp_releases);
    ku(w, "dp_rounds_refused", sm->dp_rounds_refused);
    ks(w, "dp_neighbouring", "add/remove one shopper; every shopper in every round");
    kd(w, "dp_l2_bound", "%.6f", q->l2_bound);
    kg(w, "dp_row_bound", o->dp_row_bound);
    kg(w, "dp_gram_weight", o->dp_gram_weight);
    kd(w, "dp_scale", "%.6f", q->scale);
    kd(w, "dp_l2_sensitivity", "%.3f", q->l2_sens);
    kd(w, "dp_l1_sensitivity", "%.3f", q->l1_sens);
    kd(w, "dp_noise_variance", "%.6g", q->mu);
    kd(w, "dp_noise_variance_per_client", "%.6g", q->mu_client);
    kd(w, "dp_noise_std", "%.6f", q->noise_std);
    ku(w, "dp_min_survivors", q->m_min);
    ku(w, "dp_dim", q->d);
    ku(w, "dp_padded_dim", q->D);
    ks(w, "dp_noise", o->dp_noise_aggregate ? "aggregate" : "client");
}

/* The model's settings, the data and the provenance. */
static void summary_settings(fedreci_json *w, const fedreci_run_opts *o,
                             const fedreci_run_summary *sm)
{
    ku(w, "factors", o->factors);
    kg(w, "alpha", o->data.ds.alpha);
    kg(w, "lambda", o->lambda);
    ks(w, "step", o->dp_epsilon > 0 ? "dp-als" : o->step == FEDRECI_OPT_ALS ? "als" : "adam");
    kg(w, "lr", o->lr);
    kg(w, "beta1", o->beta1);
    if (o->step == FEDRECI_OPT_ALS)
        kg(w, "x_bound", o->x_bound);
    ks(w, "selection", o->reshuffle ? "reshuffle" : "uniform");
    kg(w, "clip", o->clip);
    ku(w, "seed", o->seed);
    ku(w, "threads", o->threads);
    ku(w, "als_sweeps", o->sweeps);
    ku(w, "items", sm->n_items);
    ku(w, "test_users", sm->test_users);
    ks(w, "split", sm->split);
    ks(w, "data", o->data.data);
    ks(w, "format", o->data.format ? o->data.format : "online-retail");
    ks(w, "columns", o->data.columns ? o->data.columns : "");
    if (o->data.ds.columns.rating && *o->data.ds.columns.rating)
        kg(w, "rating_threshold", o->data.ds.rating_threshold);
    if (sm->prov) {
        const fedreci_sim_provenance *p = sm->prov;
        ks(w, "fedrec_version", p->version);
        ks(w, "git_commit", p->commit);
        ks(w, "command_line", p->command_line);
        ks(w, "input_sha256", p->input_sha256);
        ks(w, "started_utc", p->started_utc);
        ku(w, "machine_cores", p->cores > 0 ? (uint64_t)p->cores : 0);
        ks(w, "machine", p->machine);
    }
    fedreci_json_newline(w, "  ");
    fedreci_json_kdouble(w, "wall_seconds", "%.1f", sm->wall);
}

fedrec_err fedreci_run_write_summary(const fedreci_run_opts *o, const fedreci_run_summary *sm)
{
    char path[4096];
    fedrec_err e = path_join(path, sizeof path, o->out, "summary.json");
    if (e)
        return e;
    FILE *f = fopen(path, "w");
    if (!f)
        return fedreci_error(FEDREC_ERR_IO, "sim: cannot write %s", path);
    fedreci_json w;
    fedreci_json_init_file(&w, f, FEDRECI_JSON_SPACED);
    fedreci_json_obj_begin(&w);
    summary_metrics(&w, sm);
    summary_federation(&w, o, sm);
    summary_dp(&w, o, sm);
    summary_settings(&w, o, sm);
    fedreci_json_newline(&w, "");
    fedreci_json_obj_end(&w);
    e = fedreci_json_finish(&w, NULL, NULL);
    fputc('\n', f);
    int bad = ferror(f);
    if (fclose(f) || bad || e)
        return fedreci_error(FEDREC_ERR_IO, "sim: writing %s failed", path);
    return FEDREC_OK;
}

/* hr_ndcg.svg: HR@10 and NDCG@10 by round in two panels, the baselines as
 * labelled reference lines (sim/plot.c writes the SVG itself). */
void fedreci_run_write_plot(const fedreci_run_opts *o, const fedreci_run_round *recs,
                            const fedreci_run_summary *sm)
{
    char path[4096], title[512], label[64];
    if (path_join(path, sizeof path, o->out, "hr_ndcg.svg"))
        return;
    double *x = malloc(((size_t)o->rounds + 1) * 3 * sizeof *x);
    if (!x) {
        fprintf(stderr, "fedrec-sim: out of memory for the plot; no %s\n", path);
        return;
    }
    double *hr = x + o->rounds + 1, *ndcg = hr + o->rounds + 1;
    size_t n = 0; /* the evaluated rounds, joined by the line */
    for (uint32_t i = 0; i < o->rounds; i++)
        if (recs[i].evaluated) {
            x[n] = i + 1;
            hr[n] = recs[i].m.hr_at_k;
            ndcg[n++] = recs[i].m.ndcg_at_k;
        }
    const char *base = strrchr(o->data.data, '/') ? strrchr(o->data.data, '/') + 1 : o->data.data;
    const char *mode = o->secagg == FEDRECI_RUN_SECAGG_OFF    ? "plain sum"
                       : o->secagg == FEDRECI_RUN_SECAGG_FULL ? "SecAgg"
                                                              : "SecAgg+";
    if (o->secagg == FEDRECI_RUN_SECAGG_OFF)
        snprintf(title, sizeof title,
                 "%s, seed %llu: %u clients, plain sum (no SecAgg), cohort %u, "
                 "dropout %g",
                 base, (unsigned long long)o->seed, sm->clients, sm->cohort, o->dropout);
    else
        snprintf(title, sizeof title,
                 "%s, seed %llu: %u clients, %s k=%u t=%u, cohort %u, dropout %g", base,
                 (unsigned long long)o->seed, sm->clients, mode, sm->k, sm->t, sm->cohort,
                 o->dropout);
    snprintf(label, sizeof label, "federated (%s)", mode);
    const fedreci_metrics *c = &sm->base.centralized, *p = &sm->base.popularity;
    fedreci_plot_series s_hr = {label, x, hr, n, "#1f77b4", FEDRECI_PLOT_SOLID};
    fedreci_plot_series s_ndcg = {label, x, ndcg, n, "#d62728", FEDRECI_PLOT_SOLID};
    fedreci_plot_level l_hr[2] = {{"centralized ALS", c->hr_at_k, "#2ca02c"},
                                  {"popularity", p->hr_at_k, "#7f7f7f"}};
    fedreci_plot_level l_ndcg[2] = {{"centralized ALS", c->ndcg_at_k, "#2ca02c"},
                                    {"popularity", p->ndcg_at_k, "#7f7f7f"}};
    fedreci_plot_panel panels[2] = {{"HR@10 (test customers)", &s_hr, 1, l_hr, 2},
                                    {"NDCG@10 (test customers)", &s_ndcg, 1, l_ndcg, 2}};
    if (fedreci_plot_svg(path, title, "round", 0.0, o->rounds > 1 ? o->rounds : 2, panels, 2))
        fprintf(stderr, "fedrec-sim: warning: %s\n", fedrec_errmsg());
    free(x);
}

static void print_row(const char *name, const fedreci_metrics *m)
{
    printf("%-34s %7.4f %8.4f %10.4f %13.4f\n", name, m->hr_at_k, m->ndcg_at_k, m->recall_at_k,
           m->precision_at_k);
}

void fedreci_run_print_table(const fedreci_run_opts *o, const fedreci_run_summary *sm)
{
    const fedreci_metrics *c = &sm->base.centralized;
    char name[80];
    printf("\n%-34s %7s %8s %10s %13s\n", "model (test customers, K = 10)", "HR@10", "NDCG@10",
           "recall@10", "precision@10");
    print_row("popularity", &sm->base.popularity);
    snprintf(name, sizeof name, "centralized ALS, %u factors", o->factors);
    print_row(name, c);
    if (sm->dp)
        snprintf(name, sizeof name, "federated, DP (eps %g), round %u", o->dp_epsilon,
                 o->rounds - sm->dp_rounds_refused);
    else
        snprintf(name, sizeof name, "federated, %s, round %u",
                 o->secagg == FEDRECI_RUN_SECAGG_OFF    ? "plain sum"
                 : o->secagg == FEDRECI_RUN_SECAGG_FULL ? "SecAgg"
                                                        : "SecAgg+",
                 o->rounds);
    print_row(name, &sm->fed);
    printf("%-34s %7.3f", "ratio to centralized (HR@10)",
           c->hr_at_k > 0 ? sm->fed.hr_at_k / c->hr_at_k : 0.0);
    if (sm->have_ci)
        printf("  [%.3f, %.3f] paired, same %u shoppers, p %.3f", sm->paired_hr.ratio.lo,
               sm->paired_hr.ratio.hi, sm->paired_hr.n, sm->paired_hr.p_value);
    printf("\n\n");
    printf("%-34s %u (%u test customers), %u items\n", "clients (training customers)", sm->clients,
           sm->test_users, sm->n_items);
    if (sm->dp && !sm->dp_engine)
        printf("%-34s the DP pipeline: every client every round, its noised words summed in "
               "process (mod 2^32)\n",
               "secure aggregation");
    else if (o->secagg == FEDRECI_RUN_SECAGG_OFF)
        printf("%-34s off: plain-sum reference, cohort %u\n", "secure aggregation", sm->cohort);
    else
        printf("%-34s %s, cohort %u, k = %u neighbours, threshold t = %u\n", "secure aggregation",
               o->secagg == FEDRECI_RUN_SECAGG_FULL ? "SecAgg" : "SecAgg+", sm->cohort, sm->k,
               sm->t);
    printf("%-34s %g at %s: %llu / %llu / %llu / %llu (advertise/share/masked/unmask)\n", "dropout",
           o->dropout,
           o->dropout_stage < 0 ? "every stage" : fedreci_run_stage_names[o->dropout_stage],
           (unsigned long long)sm->dropped[0], (unsigned long long)sm->dropped[1],
           (unsigned long long)sm->dropped[2], (unsigned long long)sm->dropped[3]);
    printf("%-34s %u / %u\n", "rounds completed / aborted", sm->rounds_completed,
           sm->rounds_aborted);
    if (sm->dp) {
        const fedreci_sim_dp_info *q = &sm->dp_info;
        printf("%-34s Skellam, epsilon %.4f spent of %g at delta %g (%u rounds calibrated, %u "
               "refused)\n",
               "differential privacy", q->eps_spent, o->dp_epsilon, o->dp_delta, o->dp_releases,
               sm->dp_rounds_refused);
        printf("%-34s L2 bound %.4f, noise std %.4f per coordinate, noise for %u of %u "
               "survivors\n",
               "", q->l2_bound, q->noise_std, q->m_min, sm->dp_engine ? sm->cohort : sm->clients);
    } else {
        printf("%-34s none (no differential privacy)\n", "differential privacy");
    }
    if (sm->dp && !sm->dp_engine)
        printf("%-34s n/a (the DP pipeline sums the noised words in process)\n",
               "unmasked sum == oracle sum");
    else if (o->secagg == FEDRECI_RUN_SECAGG_OFF)
        printf("%-34s n/a (no masking)\n", "unmasked sum == oracle sum");
    else if (sm->rounds_completed == 0)
        printf("%-34s n/a (no completed round)\n", "unmasked sum == oracle sum");
    else
        printf("%-34s %s (%u of %u completed rounds)\n", "unmasked sum == oracle sum",
               sm->verified ? "yes" : "NO", sm->rounds_verified, sm->rounds_completed);
    if (sm->dp) {
        printf("%-34s ALS item step from the noised sums, lambda %g, alpha %g, row bound %g, "
               "Gram weight %g, seed %llu\n",
               "training", o->lambda, o->data.ds.alpha, o->dp_row_bound, o->dp_gram_weight,
               (unsigned long long)o->seed);
    } else {
        printf("%-34s %.1f KiB up, %.1f KiB down\n", "per client and round", sm->bytes_up / 1024.0,
               sm->bytes_down / 1024.0);
        if (o->step == FEDRECI_OPT_ALS)
            printf("%-34s ALS step %g, momentum %g, x bound %g, lambda %g, alpha %g, clip %g, "
                   "%s cohorts, seed %llu\n",
                   "training", o->lr, o->beta1, o->x_bound, o->lambda, o->data.ds.alpha, o->clip,
                   o->reshuffle ? "reshuffled" : "uniform", (unsigned long long)o->seed);
        else
            printf("%-34s Adam lr %g, beta1 %g, lambda %g, alpha %g, clip %g, %s cohorts, "
                   "seed %llu\n",
                   "training", o->lr, o->beta1, o->lambda, o->data.ds.alpha, o->clip,
                   o->reshuffle ? "reshuffled" : "uniform", (unsigned long long)o->seed);
    }
    printf("%-34s %.1f s (%s)\n", "wall time", sm->wall,
           sm->dp && !sm->dp_engine              ? "in process"
           : o->secagg == FEDRECI_RUN_SECAGG_OFF ? "no transport"
           : o->tcp                              ? "tcp://127.0.0.1"
                                                 : "inproc://");
    printf("%-34s %s/rounds.csv, %s/summary.json, %s/hr_ndcg.svg\n", "outputs", o->out, o->out,
           o->out);
}
