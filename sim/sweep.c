/* `fedrec-sim sweep --grid 'cohort=250,500 neighbors=8,16 dropout=0,0.1'`:
 * one `fedrec-sim run` per point of the grid, each in its own folder under
 * --out, an index of them, and no finished run done twice. */
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "sim/results.h"
#include "sim/run.h"
#include "sim/sim.h"

#define MAX_PARAMS 8
#define MAX_VALUES 32
#define MAX_POINTS 1024

typedef struct grid {
    size_t n;
    char name[MAX_PARAMS][64];
    size_t n_values[MAX_PARAMS];
    char value[MAX_PARAMS][MAX_VALUES][64];
    size_t n_points;
} grid;

static const char *const cmd = "fedrec-sim sweep";

static void sweep_usage(FILE *f)
{
    fprintf(f, "usage: fedrec-sim sweep --grid SPEC --data FILE [--out DIR] [run options]\n"
               "Runs `fedrec-sim run` once per point of the grid, with the run options given\n"
               "here plus the point's values, each into DIR/NAME=VALUE_NAME=VALUE... (default\n"
               "DIR: sweep). SPEC is space-separated OPTION=V1,V2,... over run's options without\n"
               "the dashes, e.g. 'cohort=250,500 neighbors=8,16 dropout=0,0.1' (8 runs). Every\n"
               "point is checked before the first run starts. DIR/index.csv lists the runs and\n"
               "their values, status and final HR@10 / NDCG@10, rewritten after each run. A point\n"
               "whose folder already holds a finished run (summary.json, or seeds.json with\n"
               "--seeds) is not run again, so an interrupted sweep resumes where it stopped.\n"
               "`fedrec-sim compare DIR/*` puts the runs side by side.\n");
}

/* Parses "name=v1,v2 name=v3" (spec is copied). */
static int parse_grid(const char *spec, grid *g)
{
    char buf[4096];
    memset(g, 0, sizeof *g);
    if ((size_t)snprintf(buf, sizeof buf, "%s", spec) >= sizeof buf)
        return fprintf(stderr, "%s: --grid: too long\n", cmd), -1;
    g->n_points = 1;
    for (char *s1 = NULL, *t = strtok_r(buf, " \t\n", &s1); t; t = strtok_r(NULL, " \t\n", &s1)) {
        char *eq = strchr(t, '=');
        if (!eq || eq == t || !eq[1] || g->n == MAX_PARAMS || (size_t)(eq - t) >= 64)
            return fprintf(stderr, "%s: --grid: '%s' is not OPTION=V1,V2,... (at most %d)\n", cmd,
                           t, MAX_PARAMS),
                   -1;
        *eq = 0;
        size_t p = g->n++;
        snprintf(g->name[p], sizeof g->name[p], "%s", t[0] == '-' && t[1] == '-' ? t + 2 : t);
        /* a repeated option or value would run the same folder twice */
        for (size_t q = 0; q < p; q++)
            if (!strcmp(g->name[q], g->name[p]))
                return fprintf(stderr, "%s: --grid: %s given twice\n", cmd, g->name[p]), -1;
        for (char *s2 = NULL, *v = strtok_r(eq + 1, ",", &s2); v; v = strtok_r(NULL, ",", &s2)) {
            if (g->n_values[p] == MAX_VALUES || strlen(v) >= 64)
                return fprintf(stderr, "%s: --grid: %s: too many or too long values\n", cmd, t), -1;
            for (size_t j = 0; j < g->n_values[p]; j++)
                if (!strcmp(g->value[p][j], v))
                    return fprintf(stderr, "%s: --grid: %s: value '%s' given twice\n", cmd, t, v),
                           -1;
            snprintf(g->value[p][g->n_values[p]++], 64, "%s", v);
        }
        if (!g->n_values[p])
            return fprintf(stderr, "%s: --grid: %s has no value\n", cmd, t), -1;
        g->n_points *= g->n_values[p];
        if (g->n_points > MAX_POINTS)
            return fprintf(stderr, "%s: --grid: more than %d points\n", cmd, MAX_POINTS), -1;
    }
    if (!g->n)
        return fprintf(stderr, "%s: --grid: empty\n", cmd), -1;
    return 0;
}

/* The value index of parameter p at point k (the last parameter varies fastest). */
static size_t value_at(const grid *g, size_t k, size_t p)
{
    for (size_t q = g->n; q-- > p + 1;)
        k /= g->n_values[q];
    return k % g->n_values[p];
}

/* The folder name of point k: NAME=VALUE joined by '_', other bytes as '-'. */
static void point_name(const grid *g, size_t k, char *buf, size_t n)
{
    size_t len = 0;
    buf[0] = 0;
    for (size_t p = 0; p < g->n && len < n; p++) {
        int w = snprintf(buf + len, n - len, "%s%s=%s", p ? "_" : "", g->name[p],
                         g->value[p][value_at(g, k, p)]);
        if (w < 0)
            break;
        len += (size_t)w; /* a name cut at n - 1 bytes ends the loop */
    }
    for (char *c = buf; *c; c++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._=-", *c))
            *c = '-';
}

typedef struct sweep {
    grid g;
    const char *out;
    int base_argc;
    char **base; /* "run" and the run options given to sweep */
    char opt[MAX_PARAMS][160];
    char out_opt[4200];
    char folder[4096];
    char *argv[512];
} sweep;

/* The argv of `fedrec-sim run` for point k (in sw, valid until the next call). */
static int point_argv(sweep *sw, size_t k)
{
    int n = 0;
    for (int i = 0; i < sw->base_argc; i++)
        sw->argv[n++] = sw->base[i];
    for (size_t p = 0; p < sw->g.n; p++) {
        snprintf(sw->opt[p], sizeof sw->opt[p], "--%s=%s", sw->g.name[p],
                 sw->g.value[p][value_at(&sw->g, k, p)]);
        sw->argv[n++] = sw->opt[p];
    }
    char name[1024];
    point_name(&sw->g, k, name, sizeof name);
    snprintf(sw->folder, sizeof sw->folder, "%s/%s", sw->out, name);
    snprintf(sw->out_opt, sizeof sw->out_opt, "--out=%s", sw->folder);
    sw->argv[n++] = sw->out_opt;
    sw->argv[n] = NULL;
    return n;
}

/* A finished point: its summary.json, or with --seeds its seeds.json. */
static int point_finished(const char *folder)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/seeds.json", folder);
    FILE *f = fopen(path, "r");
    if (f)
        fclose(f);
    return f != NULL || fedreci_sim_run_finished(folder);
}

/* DIR/index.csv: one row per point. */
static fedrec_err write_index(sweep *sw, const int *status)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/index.csv", sw->out);
    FILE *f = fopen(path, "w");
    if (!f)
        return fedreci_error(FEDREC_ERR_IO, "%s: cannot write", path);
    fprintf(f, "run,folder");
    for (size_t p = 0; p < sw->g.n; p++)
        fprintf(f, ",%s", sw->g.name[p]);
    fprintf(f, ",status,hr_at_10,ndcg_at_10,ratio_to_centralized\n");
    fedreci_sim_result *r = malloc(sizeof *r);
    for (size_t k = 0; k < sw->g.n_points; k++) {
        point_argv(sw, k);
        const char *slash = strrchr(sw->folder, '/');
        fprintf(f, "%zu,%s", k + 1, slash ? slash + 1 : sw->folder);
        for (size_t p = 0; p < sw->g.n; p++)
            fprintf(f, ",%s", sw->g.value[p][value_at(&sw->g, k, p)]);
        snprintf(path, sizeof path, "%s/summary.json", sw->folder);
        int have = status[k] > 0 && r && fedreci_sim_result_read(path, r) == FEDREC_OK;
        if (!have)
            fedreci_error_clear();
        fprintf(f, ",%s", status[k] > 0 ? "finished" : status[k] < 0 ? "failed" : "pending");
        if (have)
            fprintf(f, ",%.6f,%.6f,%.6f\n", fedreci_sim_result_get(r, "hr_at_10"),
                    fedreci_sim_result_get(r, "ndcg_at_10"),
                    fedreci_sim_result_get(r, "ratio_to_centralized"));
        else
            fprintf(f, ",,,\n");
    }
    free(r);
    int bad = ferror(f);
    if (fclose(f) || bad)
        return fedreci_error(FEDREC_ERR_IO, "%s/index.csv: writing failed", sw->out);
    return FEDREC_OK;
}

/* Splits sweep's own options (--grid, --out, --help) from the run options. */
static int sweep_args(int argc, char **argv, sweep *sw, const char **spec)
{
    sw->base[sw->base_argc++] = "run";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            sweep_usage(stdout);
            return 1;
        }
        const char **dst = !strncmp(a, "--grid", 6)  ? spec
                           : !strncmp(a, "--out", 5) ? &sw->out
                                                     : NULL;
        size_t l = dst == spec ? 6 : 5;
        if (dst && a[l] == '=') {
            *dst = a + l + 1;
        } else if (dst && !a[l]) {
            if (i + 1 >= argc)
                return fprintf(stderr, "%s: %s: missing value\n", cmd, a), 2;
            *dst = argv[++i];
        } else {
            sw->base[sw->base_argc++] = argv[i];
        }
    }
    if (!*spec)
        return fprintf(stderr, "%s: --grid SPEC is required (see --help)\n", cmd), 2;
    return parse_grid(*spec, &sw->g) ? 2 : 0;
}

int fedreci_sim_sweep(int argc, char **argv)
{
    sweep *sw = calloc(1, sizeof *sw);
    char **base = calloc((size_t)argc + 2, sizeof *base);
    int *status = calloc(MAX_POINTS, sizeof *status);
    const char *spec = NULL;
    if (!sw || !base || !status) {
        fprintf(stderr, "%s: out of memory\n", cmd);
        free(sw), free(base), free(status);
        return 1;
    }
    sw->base = base;
    sw->out = "sweep";
    int rc = sweep_args(argc, argv, sw, &spec);
    /* every point must parse before anything runs */
    for (size_t k = 0; !rc && k < sw->g.n_points; k++) {
        fedreci_run_opts o;
        int n = point_argv(sw, k);
        if (fedreci_run_opts_parse(&o, n, sw->argv)) {
            fprintf(stderr, "%s: point %zu (%s) is not a valid run (see fedrec-sim run --help)\n",
                    cmd, k + 1, sw->folder);
            rc = 2;
        }
    }
    fedrec_err e = FEDREC_OK;
    if (!rc && (e = fedreci_sim_make_dir(sw->out)))
        rc = 3;
    for (size_t k = 0; !rc && k < sw->g.n_points; k++)
        status[k] = point_argv(sw, k) && point_finished(sw->folder);
    if (!rc && (e = write_index(sw, status)))
        rc = 3;
    for (size_t k = 0; !rc && k < sw->g.n_points; k++) {
        int n = point_argv(sw, k);
        if (status[k]) {
            printf("%s: %zu/%zu %s: finished before, kept\n", cmd, k + 1, sw->g.n_points,
                   sw->folder);
            continue;
        }
        printf("%s: %zu/%zu %s\n", cmd, k + 1, sw->g.n_points, sw->folder);
        fflush(stdout);
        status[k] = fedreci_sim_run(n, sw->argv) == 0 ? 1 : -1;
        if ((e = write_index(sw, status)) || status[k] < 0)
            rc = 3;
    }
    if (e)
        fprintf(stderr, "%s: error: %s: %s\n", cmd, fedrec_strerror(e), fedrec_errmsg());
    if (!rc)
        printf("%s: %zu runs in %s, listed in %s/index.csv\n", cmd, sw->g.n_points, sw->out,
               sw->out);
    free(status);
    free(base);
    free(sw);
    return rc == 3 ? 1 : rc == 1 ? 0 : rc;
}
