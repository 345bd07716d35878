/* fedrec-sim: groups of runs, their statistics, and `fedrec-sim compare`. */
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "core/err.h"
#include "core/eval/eval.h"
#include "core/json.h"
#include "sim/compare.h"
#include "sim/plot.h"
#include "sim/sim.h"

const char *const fedreci_cmp_metrics[FEDRECI_CMP_N_METRICS] = {
    "hr_at_10",
    "ndcg_at_10",
    "recall_at_10",
    "precision_at_10",
    "map_at_10",
    "coverage_at_10",
    "ratio_to_centralized",
    "centralized_hr_at_10",
    "centralized_ndcg_at_10",
    "popularity_hr_at_10",
    "popularity_ndcg_at_10",
    "wall_seconds",
};

#define INTERVAL_NOTE                                                                              \
    "mean over the runs and its 95% Student t interval (t quantile with n - 1 degrees of "         \
    "freedom times sd / sqrt(n)): the spread across runs, e.g. seeds; empty with one run"

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static fedrec_err add_run(fedreci_cmp_group *g, const char *dir)
{
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/summary.json", dir) >= sizeof path)
        return fedreci_error(FEDREC_ERR_INVALID, "%s: path too long", dir);
    if (g->n_runs >= FEDRECI_CMP_MAX_RUNS)
        return fedreci_error(FEDREC_ERR_TOO_BIG, "%s: more than %d runs", dir,
                             FEDRECI_CMP_MAX_RUNS);
    fedreci_sim_result *r = malloc(sizeof *r);
    char *name = strdup(dir);
    fedrec_err e = r && name ? fedreci_sim_result_read(path, r)
                             : fedreci_error(FEDREC_ERR_NOMEM, "out of memory");
    if (!e) {
        for (int m = 0; m < FEDRECI_CMP_N_METRICS; m++)
            g->values[m][g->n_runs] = fedreci_sim_result_get(r, fedreci_cmp_metrics[m]);
        if (r->have_seed)
            g->seeds[g->n_seeds++] = r->seed;
        g->runs[g->n_runs++] = name;
        name = NULL;
    }
    free(name);
    free(r);
    return e;
}

fedrec_err fedreci_cmp_group_load(fedreci_cmp_group *g, const char *dir)
{
    memset(g, 0, sizeof *g);
    snprintf(g->name, sizeof g->name, "%s", dir);
    fedrec_err e = FEDREC_OK;
    if (fedreci_sim_run_finished(dir)) {
        e = add_run(g, dir);
    } else {
        DIR *dd = opendir(dir);
        if (!dd)
            return fedreci_error(FEDREC_ERR_IO, "%s: cannot open the folder: %s", dir,
                                 strerror(errno));
        char *subs[FEDRECI_CMP_MAX_RUNS];
        size_t n = 0;
        for (struct dirent *de; (de = readdir(dd)) && n < FEDRECI_CMP_MAX_RUNS && !e;) {
            char sub[4096];
            if (de->d_name[0] == '.' ||
                (size_t)snprintf(sub, sizeof sub, "%s/%s", dir, de->d_name) >= sizeof sub)
                continue;
            if (fedreci_sim_run_finished(sub) && !(subs[n] = strdup(sub)))
                e = fedreci_error(FEDREC_ERR_NOMEM, "out of memory");
            else if (fedreci_sim_run_finished(sub))
                n++;
        }
        closedir(dd);
        qsort(subs, n, sizeof *subs, cmp_str);
        for (size_t i = 0; i < n; i++) {
            if (!e)
                e = add_run(g, subs[i]);
            free(subs[i]);
        }
    }
    if (!e && g->n_runs == 0)
        e = fedreci_error(FEDREC_ERR_EMPTY,
                          "%s: no finished run (no summary.json here or in "
                          "its folders)",
                          dir);
    for (int m = 0; m < FEDRECI_CMP_N_METRICS && !e; m++)
        fedreci_sim_stat_of(g->values[m], g->n_runs, &g->stat[m]);
    if (!e)
        g->have_central =
            !fedreci_cmp_pair_columns(g, "hr_at_10", "centralized_hr_at_10", &g->central_hr) &&
            !fedreci_cmp_pair_columns(g, "ndcg_at_10", "centralized_ndcg_at_10", &g->central_ndcg);
    if (e)
        fedreci_cmp_group_free(g);
    return e;
}

void fedreci_cmp_group_free(fedreci_cmp_group *g)
{
    for (size_t i = 0; i < g->n_runs; i++)
        free(g->runs[i]);
    g->n_runs = 0;
}

static void paired_json(fedreci_json *w, const char *key, const fedreci_paired *p);

/* One group's members: runs and per-metric statistics. */
static void group_members(fedreci_json *w, const fedreci_cmp_group *g, const char *ind)
{
    fedreci_json_newline(w, ind);
    fedreci_json_kstr(w, "name", g->name);
    fedreci_json_newline(w, ind);
    fedreci_json_ku64(w, "n_runs", g->n_runs);
    fedreci_json_newline(w, ind);
    fedreci_json_key(w, "runs");
    fedreci_json_arr_begin(w);
    for (size_t i = 0; i < g->n_runs; i++)
        fedreci_json_str(w, g->runs[i]);
    fedreci_json_arr_end(w);
    for (int m = 0; m < FEDRECI_CMP_N_METRICS; m++) {
        const fedreci_sim_stat *st = &g->stat[m];
        fedreci_json_newline(w, ind);
        fedreci_json_key(w, fedreci_cmp_metrics[m]);
        fedreci_json_obj_begin(w);
        fedreci_json_kdouble(w, "mean", "%.6f", st->mean);
        fedreci_json_kdouble(w, "sd", "%.6f", st->sd);
        fedreci_json_kdouble(w, "ci95_lo", "%.6f", st->lo);
        fedreci_json_kdouble(w, "ci95_hi", "%.6f", st->hi);
        fedreci_json_ku64(w, "n", st->n);
        fedreci_json_key(w, "values");
        fedreci_json_arr_begin(w);
        for (size_t i = 0; i < g->n_runs; i++)
            fedreci_json_double(w, "%.6f", g->values[m][i]);
        fedreci_json_arr_end(w);
        fedreci_json_obj_end(w);
    }
    if (g->have_central) {
        fedreci_json_newline(w, ind);
        fedreci_json_key(w, "paired_vs_centralized");
        fedreci_json_obj_begin(w);
        paired_json(w, "hr_at_10", &g->central_hr);
        paired_json(w, "ndcg_at_10", &g->central_ndcg);
        fedreci_json_obj_end(w);
    }
}

static fedrec_err json_close(fedreci_json *w, FILE *f, const char *path)
{
    fedrec_err e = fedreci_json_finish(w, NULL, NULL);
    fputc('\n', f);
    int bad = ferror(f);
    if (fclose(f) || bad || e)
        return fedreci_error(FEDREC_ERR_IO, "%s: writing failed", path);
    return FEDREC_OK;
}

fedrec_err fedreci_cmp_group_json(const fedreci_cmp_group *g, const char *path, const char *what)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return fedreci_error(FEDREC_ERR_IO, "%s: cannot write", path);
    fedreci_json w;
    fedreci_json_init_file(&w, f, FEDRECI_JSON_SPACED);
    fedreci_json_obj_begin(&w);
    fedreci_json_newline(&w, "  ");
    fedreci_json_kstr(&w, "over", what);
    fedreci_json_newline(&w, "  ");
    fedreci_json_kstr(&w, "interval", INTERVAL_NOTE);
    group_members(&w, g, "  ");
    fedreci_json_newline(&w, "");
    fedreci_json_obj_end(&w);
    return json_close(&w, f, path);
}

/* ---- paired comparisons ------------------------------------------------------------ */

#define MAX_SHOPPERS 1000000

/* Each test shopper's values of columns col[0] and col[1] averaged over g's
 * runs (shoppers.csv), into hr and ndcg, with their user indexes; *n gets
 * the count. */
static fedrec_err shopper_means_of(const fedreci_cmp_group *g, const char *const col[2], double *hr,
                                   double *ndcg, double *ids, size_t *n)
{
    static double v[MAX_SHOPPERS], u[MAX_SHOPPERS];
    *n = 0;
    for (size_t r = 0; r < g->n_runs; r++) {
        char path[4096];
        size_t rows = 0, rows2 = 0;
        snprintf(path, sizeof path, "%s/shoppers.csv", g->runs[r]);
        fedrec_err e = fedreci_sim_rounds_column(path, "user_index", u, MAX_SHOPPERS, &rows);
        if (!e && r == 0)
            memcpy(ids, u, rows * sizeof *u);
        if (!e &&
            (rows > MAX_SHOPPERS || (r > 0 && (rows != *n || memcmp(ids, u, rows * sizeof *u)))))
            e = fedreci_error(FEDREC_ERR_INVALID, "%s: other test shoppers than %s", path,
                              g->runs[0]);
        for (int m = 0; m < 2 && !e; m++) {
            double *dst = m ? ndcg : hr;
            e = fedreci_sim_rounds_column(path, col[m], v, MAX_SHOPPERS, &rows2);
            for (size_t i = 0; !e && i < rows; i++)
                dst[i] = (r ? dst[i] : 0.0) + v[i] / (double)g->n_runs;
        }
        if (e)
            return e;
        *n = rows;
    }
    return FEDREC_OK;
}

/* Each test shopper's HR@10 and NDCG@10 averaged over g's runs. */
static fedrec_err shopper_means(const fedreci_cmp_group *g, double *hr, double *ndcg, double *ids,
                                size_t *n)
{
    static const char *const cols[2] = {"hr_at_10", "ndcg_at_10"};
    return shopper_means_of(g, cols, hr, ndcg, ids, n);
}

fedrec_err fedreci_cmp_pair_columns(const fedreci_cmp_group *g, const char *col_a,
                                    const char *col_b, fedreci_paired *out)
{
    double *buf = malloc((size_t)MAX_SHOPPERS * 3 * sizeof *buf);
    if (!buf)
        return fedreci_error(FEDREC_ERR_NOMEM, "out of memory");
    const char *const cols[2] = {col_a, col_b};
    size_t n = 0;
    fedrec_err e = shopper_means_of(g, cols, buf, buf + MAX_SHOPPERS, buf + 2 * MAX_SHOPPERS, &n);
    if (!e)
        e = fedreci_eval_paired(buf, buf + MAX_SHOPPERS, n, 1000,
                                fedreci_sim_boot_seed(g->seeds, g->n_seeds), 0.95, out);
    free(buf);
    return e;
}

/* Fills g[i].paired_* for i >= 1 against g[0]; a group that cannot be paired
 * is left with have_paired 0 (and a note on stderr). */
static void pair_groups(fedreci_cmp_group *g, size_t n)
{
    double *buf = n > 1 ? malloc((size_t)MAX_SHOPPERS * 6 * sizeof *buf) : NULL;
    if (!buf)
        return;
    double *h0 = buf, *d0 = h0 + MAX_SHOPPERS, *i0 = d0 + MAX_SHOPPERS;
    double *h1 = i0 + MAX_SHOPPERS, *d1 = h1 + MAX_SHOPPERS, *i1 = d1 + MAX_SHOPPERS;
    size_t n0 = 0, n1 = 0;
    fedrec_err e = shopper_means(&g[0], h0, d0, i0, &n0);
    for (size_t k = 1; k < n && !e; k++) {
        fedrec_err ek = shopper_means(&g[k], h1, d1, i1, &n1);
        if (!ek && (n1 != n0 || memcmp(i0, i1, n0 * sizeof *i0)))
            ek = fedreci_error(FEDREC_ERR_INVALID, "other test shoppers than %s", g[0].name);
        /* seeded by both groups' runs: the same pair of groups, the same interval */
        uint64_t seeds[2 * FEDRECI_CMP_MAX_RUNS];
        memcpy(seeds, g[0].seeds, g[0].n_seeds * sizeof *seeds);
        memcpy(seeds + g[0].n_seeds, g[k].seeds, g[k].n_seeds * sizeof *seeds);
        uint64_t seed = fedreci_sim_boot_seed(seeds, g[0].n_seeds + g[k].n_seeds);
        if (!ek)
            ek = fedreci_eval_paired(h1, h0, n0, 1000, seed, 0.95, &g[k].paired_hr);
        if (!ek)
            ek = fedreci_eval_paired(d1, d0, n0, 1000, seed, 0.95, &g[k].paired_ndcg);
        g[k].have_paired = !ek;
        if (ek)
            fprintf(stderr, "fedrec-sim compare: %s: no paired comparison: %s\n", g[k].name,
                    fedrec_errmsg());
    }
    if (e)
        fprintf(stderr, "fedrec-sim compare: %s: no paired comparisons: %s\n", g[0].name,
                fedrec_errmsg());
    free(buf);
}

static void paired_json(fedreci_json *w, const char *key, const fedreci_paired *p)
{
    fedreci_json_key(w, key);
    fedreci_json_obj_begin(w);
    fedreci_json_kdouble(w, "diff", "%.6f", p->diff.mean);
    fedreci_json_kdouble(w, "diff_ci95_lo", "%.6f", p->diff.lo);
    fedreci_json_kdouble(w, "diff_ci95_hi", "%.6f", p->diff.hi);
    fedreci_json_kdouble(w, "ratio", "%.6f", p->ratio.mean);
    fedreci_json_kdouble(w, "ratio_ci95_lo", "%.6f", p->ratio.lo);
    fedreci_json_kdouble(w, "ratio_ci95_hi", "%.6f", p->ratio.hi);
    fedreci_json_kdouble(w, "p_value", "%.6f", p->p_value);
    fedreci_json_ku64(w, "shoppers", p->n);
    fedreci_json_obj_end(w);
}

/* ---- fedrec-sim compare ----------------------------------------------------------- */

static void compare_usage(FILE *f)
{
    fprintf(f, "usage: fedrec-sim compare DIR... [--out DIR]\n"
               "Compares finished runs of fedrec-sim run: each DIR is one run (it holds\n"
               "summary.json) or a folder of runs (the seed-* folders of run --seeds, or any\n"
               "folders holding summary.json), summarized together. Prints a table of the\n"
               "mean of each metric with its 95%% Student t interval across the DIR's runs\n"
               "(no interval for a single run) and writes compare.csv, compare.json and\n"
               "compare.svg (HR@10 and NDCG@10 by round, the mean over each DIR's runs).\n"
               "  --out DIR   where the three files go (default compare)\n");
}

enum { OPT_OUT = FEDRECI_SIM_OPT_BASE };

static int compare_opt(void *ctx, int code, const char *name, const char *v)
{
    (void)code;
    (void)name;
    *(const char **)ctx = v;
    return 0;
}

static void cell(char *buf, size_t n, const fedreci_sim_stat *st)
{
    if (st->n >= 2)
        snprintf(buf, n, "%.4f [%.4f, %.4f]", st->mean, st->lo, st->hi);
    else
        snprintf(buf, n, "%.4f", st->mean);
}

static void print_compare(const fedreci_cmp_group *g, size_t n)
{
    printf("%-28s %4s  %-26s %-26s %-26s\n", "runs", "n", "HR@10 [95% CI]", "NDCG@10 [95% CI]",
           "ratio to centralized");
    for (size_t i = 0; i < n; i++) {
        char a[64], b[64], c[64];
        cell(a, sizeof a, &g[i].stat[0]);
        cell(b, sizeof b, &g[i].stat[1]);
        cell(c, sizeof c, &g[i].stat[6]);
        printf("%-28s %4zu  %-26s %-26s %-26s\n", g[i].name, g[i].n_runs, a, b, c);
    }
    for (size_t i = 0; i < n; i++) {
        const fedreci_paired *h = &g[i].central_hr;
        if (g[i].have_central)
            printf("%s: federated - centralized ALS, same %u shoppers (paired bootstrap): HR@10 "
                   "%+.4f [%+.4f, %+.4f], ratio %.3f [%.3f, %.3f], p %.3f\n",
                   g[i].name, h->n, h->diff.mean, h->diff.lo, h->diff.hi, h->ratio.mean,
                   h->ratio.lo, h->ratio.hi, h->p_value);
    }
    for (size_t i = 1; i < n; i++) {
        const fedreci_paired *h = &g[i].paired_hr, *d = &g[i].paired_ndcg;
        if (g[i].have_paired)
            printf("%s - %s, same %u shoppers (paired bootstrap): HR@10 %+.4f [%+.4f, %+.4f] "
                   "p %.3f; NDCG@10 %+.4f [%+.4f, %+.4f] p %.3f\n",
                   g[i].name, g[0].name, h->n, h->diff.mean, h->diff.lo, h->diff.hi, h->p_value,
                   d->diff.mean, d->diff.lo, d->diff.hi, d->p_value);
    }
}

fedrec_err fedreci_cmp_write_csv(const fedreci_cmp_group *g, size_t n, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return fedreci_error(FEDREC_ERR_IO, "%s: cannot write", path);
    fprintf(f, "name,n_runs,metric,mean,sd,ci95_lo,ci95_hi\n");
    for (size_t i = 0; i < n; i++)
        for (int m = 0; m < FEDRECI_CMP_N_METRICS; m++) {
            const fedreci_sim_stat *st = &g[i].stat[m];
            fputc('"', f);
            for (const char *c = g[i].name; *c; c++)
                fprintf(f, *c == '"' ? "\"\"" : "%c", *c);
            fprintf(f, "\",%zu,%s,%.6f,", g[i].n_runs, fedreci_cmp_metrics[m], st->mean);
            if (st->n >= 2)
                fprintf(f, "%.6f,%.6f,%.6f\n", st->sd, st->lo, st->hi);
            else
                fprintf(f, ",,\n");
        }
    int bad = ferror(f);
    if (fclose(f) || bad)
        return fedreci_error(FEDREC_ERR_IO, "%s: writing failed", path);
    return FEDREC_OK;
}

static fedrec_err write_compare_json(const fedreci_cmp_group *g, size_t n, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return fedreci_error(FEDREC_ERR_IO, "%s: cannot write", path);
    fedreci_json w;
    fedreci_json_init_file(&w, f, FEDRECI_JSON_SPACED);
    fedreci_json_obj_begin(&w);
    fedreci_json_newline(&w, "  ");
    fedreci_json_kstr(&w, "interval", INTERVAL_NOTE);
    fedreci_json_newline(&w, "  ");
    fedreci_json_key(&w, "groups");
    fedreci_json_arr_begin(&w);
    for (size_t i = 0; i < n; i++) {
        fedreci_json_newline(&w, "    ");
        fedreci_json_obj_begin(&w);
        group_members(&w, &g[i], "      ");
        if (g[i].have_paired) {
            fedreci_json_newline(&w, "      ");
            fedreci_json_key(&w, "paired_vs_first");
            fedreci_json_obj_begin(&w);
            paired_json(&w, "hr_at_10", &g[i].paired_hr);
            paired_json(&w, "ndcg_at_10", &g[i].paired_ndcg);
            fedreci_json_obj_end(&w);
        }
        fedreci_json_newline(&w, "    ");
        fedreci_json_obj_end(&w);
    }
    fedreci_json_newline(&w, "  ");
    fedreci_json_arr_end(&w);
    fedreci_json_newline(&w, "");
    fedreci_json_obj_end(&w);
    return json_close(&w, f, path);
}

#define MAX_ROUNDS 100000

/* The mean over g's runs of a rounds.csv column, by round (NaN where no run
 * has a value); *n gets the longest run's round count. */
static fedrec_err mean_curve(const fedreci_cmp_group *g, const char *col, double *sum, size_t *n)
{
    static double v[MAX_ROUNDS];
    static unsigned cnt[MAX_ROUNDS];
    memset(cnt, 0, sizeof cnt);
    memset(sum, 0, MAX_ROUNDS * sizeof *sum);
    *n = 0;
    for (size_t r = 0; r < g->n_runs; r++) {
        char path[4096];
        size_t rows = 0;
        snprintf(path, sizeof path, "%s/rounds.csv", g->runs[r]);
        fedrec_err e = fedreci_sim_rounds_column(path, col, v, MAX_ROUNDS, &rows);
        if (e)
            return e;
        if (rows > MAX_ROUNDS)
            rows = MAX_ROUNDS;
        for (size_t i = 0; i < rows; i++)
            if (!isnan(v[i])) {
                sum[i] += v[i];
                cnt[i]++;
            }
        if (rows > *n)
            *n = rows;
    }
    for (size_t i = 0; i < *n; i++)
        sum[i] = cnt[i] ? sum[i] / cnt[i] : NAN;
    return FEDREC_OK;
}

static const char *const colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd",
                                     "#ff7f0e", "#8c564b", "#e377c2", "#17becf"};

/* compare.svg: HR@10 and NDCG@10 by round, one line per group. */
static fedrec_err write_compare_svg(const fedreci_cmp_group *g, size_t n, const char *path)
{
    size_t ng = n < 8 ? n : 8;
    double *buf = malloc((size_t)MAX_ROUNDS * (2 * ng + 1) * sizeof *buf);
    fedreci_plot_series hr[8], nd[8];
    if (!buf)
        return fedreci_error(FEDREC_ERR_NOMEM, "out of memory for the plot");
    double *x = buf;
    size_t longest = 1;
    fedrec_err e = FEDREC_OK;
    for (size_t i = 0; i < ng && !e; i++) {
        size_t nh = 0, nn = 0;
        double *yh = buf + MAX_ROUNDS * (1 + 2 * i), *yn = yh + MAX_ROUNDS;
        e = mean_curve(&g[i], "hr_at_10", yh, &nh);
        if (!e)
            e = mean_curve(&g[i], "ndcg_at_10", yn, &nn);
        hr[i] = (fedreci_plot_series){g[i].name, x, yh, nh, colors[i], FEDRECI_PLOT_SOLID};
        nd[i] = (fedreci_plot_series){g[i].name, x, yn, nn, colors[i], FEDRECI_PLOT_SOLID};
        if (nh > longest)
            longest = nh;
    }
    for (size_t i = 0; i < longest; i++)
        x[i] = (double)(i + 1);
    fedreci_plot_panel panels[2] = {{"HR@10 (mean over runs)", hr, ng, NULL, 0},
                                    {"NDCG@10 (mean over runs)", nd, ng, NULL, 0}};
    char title[256];
    snprintf(title, sizeof title, "fedrec-sim compare: %zu group%s of runs%s", n, n == 1 ? "" : "s",
             n > 8 ? " (first 8 plotted)" : "");
    if (!e)
        e = fedreci_plot_svg(path, title, "round", 0.0, (double)longest, panels, 2);
    free(buf);
    return e;
}

int fedreci_sim_compare(int argc, char **argv)
{
    static const char *const cmd = "fedrec-sim compare";
    static const struct option opts[] = {{"out", required_argument, NULL, OPT_OUT},
                                         {NULL, 0, NULL, 0}};
    const char *out = "compare";
    /* operands may come first: move the options to the front for the parser */
    char **args = calloc((size_t)argc + 1, sizeof *args);
    char **dirs = calloc((size_t)argc + 1, sizeof *dirs);
    fedreci_cmp_group *g = calloc((size_t)argc + 1, sizeof *g);
    int na = 0, nd = 0, rc = 0; /* rc: 1 help printed, 2 usage error, 3 failed */
    if (!args || !dirs || !g) {
        fprintf(stderr, "%s: out of memory\n", cmd);
        rc = 3;
    }
    for (int i = 0; !rc && i < argc; i++) {
        if (i > 0 && argv[i][0] != '-' && !(i > 1 && !strcmp(argv[i - 1], "--out")))
            dirs[nd++] = argv[i];
        else
            args[na++] = argv[i];
    }
    if (!rc)
        rc = fedreci_sim_parse_opts(na, args, cmd, opts, NULL, compare_opt, &out, compare_usage);
    if (!rc && nd == 0) {
        fprintf(stderr, "%s: no run folder given (see --help)\n", cmd);
        rc = 2;
    }
    int loaded = 0;
    fedrec_err e = FEDREC_OK;
    for (; !rc && !e && loaded < nd; loaded++)
        e = fedreci_cmp_group_load(&g[loaded], dirs[loaded]);
    if (e)
        loaded--;
    char path[4096];
    if (!rc && !e && !(e = fedreci_sim_make_dir(out))) {
        pair_groups(g, (size_t)nd);
        print_compare(g, (size_t)nd);
        snprintf(path, sizeof path, "%s/compare.csv", out);
        e = fedreci_cmp_write_csv(g, (size_t)nd, path);
        snprintf(path, sizeof path, "%s/compare.json", out);
        if (!e)
            e = write_compare_json(g, (size_t)nd, path);
        snprintf(path, sizeof path, "%s/compare.svg", out);
        if (!e)
            e = write_compare_svg(g, (size_t)nd, path);
        if (!e)
            printf("%-28s %s/compare.csv, %s/compare.json, %s/compare.svg\n", "outputs", out, out,
                   out);
    }
    if (e) {
        fprintf(stderr, "%s: error: %s: %s\n", cmd, fedrec_strerror(e), fedrec_errmsg());
        rc = 3;
    }
    for (int i = 0; i < loaded; i++)
        fedreci_cmp_group_free(&g[i]);
    free(g);
    free(dirs);
    free(args);
    return rc == 3 ? 1 : rc == 1 ? 0 : rc;
}
