/* `fedrec-sim baseline`: popularity and centralized implicit ALS on a split. */
#include <stdlib.h>
#include <string.h>

#include "sim/sim.h"

static void baseline_usage(FILE *f)
{
    fprintf(f, "usage: fedrec-sim baseline --data FILE [--factors K] [--lambda L] [--sweeps S]\n"
               "                           [--seed N] [--threads T] [--json] [data options]\n"
               "Popularity (items ranked by distinct training buyers) and centralized implicit\n"
               "ALS (Hu, Koren & Volinsky 2008; all training data in one place) on the split,\n"
               "each test customer ranked over the items they did not buy in training, at K = 10.\n"
               "  --factors K     latent factors (default 32)\n"
               "  --lambda L      L2 regularization (default 0.1)\n"
               "  --sweeps S      ALS sweeps (default 15)\n"
               "  --seed N        initialization seed (default 1)\n"
               "  --threads T     worker threads (default 2); results do not depend on it\n"
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

static void print_row(const char *name, const fedreci_metrics *m)
{
    printf("%-28s %7.4f %8.4f %9.4f %12.4f %7.4f %9.4f\n", name, m->hr_at_k, m->ndcg_at_k,
           m->recall_at_k, m->precision_at_k, m->map_at_k, m->coverage);
}

int fedreci_sim_baseline(int argc, char **argv)
{
    static const char *cmd = "fedrec-sim baseline";
    fedreci_sim_data_opts dopt;
    fedreci_sim_data_opts_default(&dopt);
    uint32_t k = 32, sweeps = 15, threads = 2, seed = 1;
    double lambda = 0.1;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = fedreci_sim_data_opt(&dopt, argc, argv, &i, cmd);
        if (r < 0)
            return 2;
        if (r > 0)
            continue;
        int has = i + 1 < argc;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            baseline_usage(stdout);
            return 0;
        } else if (!strcmp(a, "--json")) {
            json = 1;
        } else if (!strcmp(a, "--factors") && has && !parse_u32(argv[i + 1], 1, 1024, &k)) {
            i++;
        } else if (!strcmp(a, "--sweeps") && has && !parse_u32(argv[i + 1], 1, 1000, &sweeps)) {
            i++;
        } else if (!strcmp(a, "--threads") && has && !parse_u32(argv[i + 1], 1, 256, &threads)) {
            i++;
        } else if (!strcmp(a, "--seed") && has && !parse_u32(argv[i + 1], 0, UINT32_MAX, &seed)) {
            i++;
        } else if (!strcmp(a, "--lambda") && has) {
            char *end = NULL;
            lambda = strtod(argv[++i], &end);
            if (!*argv[i] || *end || !(lambda > 0.0)) {
                fprintf(stderr, "%s: --lambda '%s' must be a number > 0\n", cmd, argv[i]);
                return 2;
            }
        } else {
            fprintf(stderr, "%s: unknown option or bad value '%s'%s%s\n", cmd, a, has ? " " : "",
                    has ? argv[i + 1] : "");
            baseline_usage(stderr);
            return 2;
        }
    }
    fedreci_dataset *d = NULL;
    fedreci_split *s = NULL;
    if (fedreci_sim_load(&dopt, cmd, &d, &s))
        return dopt.data ? 1 : 2;
    fedreci_sim_baselines b;
    fedrec_err e = fedreci_sim_compute_baselines(s, k, (float)lambda, sweeps, threads, seed, &b);
    if (e) {
        fprintf(stderr, "%s: error: %s: %s\n", cmd, fedrec_strerror(e), fedrec_errmsg());
        fedreci_split_destroy(s);
        fedreci_dataset_destroy(d);
        return 1;
    }
    const fedreci_metrics *p = &b.popularity, *c = &b.centralized;
    if (json) {
        printf("{\"data\": ");
        fedreci_sim_json_str(stdout, dopt.data);
        printf(", \"split\": \"%s\", \"test_users\": %u, \"train_users\": %u,\n"
               " \"items\": %u, \"factors\": %u, \"alpha\": %g, \"lambda\": %g, \"sweeps\": %u,\n"
               " \"k\": 10,\n"
               " \"popularity_hr_at_10\": %.6f, \"popularity_ndcg_at_10\": %.6f,\n"
               " \"popularity_recall_at_10\": %.6f, \"popularity_precision_at_10\": %.6f,\n"
               " \"popularity_map_at_10\": %.6f, \"popularity_coverage\": %.6f,\n"
               " \"centralized_hr_at_10\": %.6f, \"centralized_ndcg_at_10\": %.6f,\n"
               " \"centralized_recall_at_10\": %.6f, \"centralized_precision_at_10\": %.6f,\n"
               " \"centralized_map_at_10\": %.6f, \"centralized_coverage\": %.6f,\n"
               " \"als_seconds\": %.3f}\n",
               dopt.split ? dopt.split : "lastbasket", p->users, s->train.n_rows, s->train.n_cols,
               k, dopt.ds.alpha, lambda, sweeps, p->hr_at_k, p->ndcg_at_k, p->recall_at_k,
               p->precision_at_k, p->map_at_k, p->coverage, c->hr_at_k, c->ndcg_at_k,
               c->recall_at_k, c->precision_at_k, c->map_at_k, c->coverage, b.als_seconds);
    } else {
        printf("purchase log  %s\n", dopt.data);
        printf("split         %s: %u test customers, %u users x %u items in training\n",
               dopt.split ? dopt.split : "lastbasket", p->users, s->train.n_rows, s->train.n_cols);
        printf("ALS           %u factors, alpha %g, lambda %g, %u sweeps (%.1f s)\n\n", k,
               dopt.ds.alpha, lambda, sweeps, b.als_seconds);
        printf("%-28s %7s %8s %9s %12s %7s %9s\n", "model (at K = 10)", "HR", "NDCG", "recall",
               "precision", "MAP", "coverage");
        print_row("popularity", p);
        char name[64];
        snprintf(name, sizeof name, "centralized ALS, %u factors", k);
        print_row(name, c);
    }
    fedreci_split_destroy(s);
    fedreci_dataset_destroy(d);
    return 0;
}
