/* fedrec-sim: several runs side by side — the statistics of a group of runs
 * (the seeds of `run --seeds`, or any folders given to `compare`), their
 * table, CSV, JSON and SVG. */
#ifndef FEDREC_SIM_COMPARE_H
#define FEDREC_SIM_COMPARE_H

#include <stddef.h>
#include <stdio.h>

#include "core/eval/eval.h"
#include "fedrec/fedrec.h"
#include "sim/results.h"

/* The metrics summarized across runs (summary.json keys). */
#define FEDRECI_CMP_N_METRICS 12
extern const char *const fedreci_cmp_metrics[FEDRECI_CMP_N_METRICS];

#define FEDRECI_CMP_MAX_RUNS 256

/* A group of finished runs: their folders and the statistics of each metric
 * across them (95% Student t interval of the mean, see results.h). */
typedef struct fedreci_cmp_group {
    char name[256]; /* as given on the command line, or the folder */
    size_t n_runs;
    char *runs[FEDRECI_CMP_MAX_RUNS]; /* run folders (owned) */
    double values[FEDRECI_CMP_N_METRICS][FEDRECI_CMP_MAX_RUNS];
    fedreci_sim_stat stat[FEDRECI_CMP_N_METRICS];
    /* paired with the first group on the same test shoppers (their HR@10
       and NDCG@10 averaged over each group's runs, from shoppers.csv):
       core/eval's paired bootstrap, 1000 resamples seeded from both groups'
       seeds (fedreci_sim_boot_seed); have_paired 0 when a run
       has no shoppers.csv or the shoppers differ */
    int have_paired;
    fedreci_paired paired_hr, paired_ndcg;
    /* the runs' seeds (summary.json "seed"; n_seeds < n_runs when a run has
       none), which seed the paired bootstraps (fedreci_sim_boot_seed) */
    size_t n_seeds;
    uint64_t seeds[FEDRECI_CMP_MAX_RUNS];
    /* the group's federated model against its centralized ALS on the same
       shoppers (shoppers.csv's hr_at_10 - centralized_hr_at_10 and the same
       for NDCG@10, each averaged over the runs first): have_central 0 when
       a run's shoppers.csv lacks the centralized columns */
    int have_central;
    fedreci_paired central_hr, central_ndcg;
} fedreci_cmp_group;

/* Fills g from dir: the run in dir when dir/summary.json exists, else every
 * finished run in the folders directly under dir (sorted by name), and the
 * paired comparison with centralized ALS when the runs have it. Fails
 * with FEDREC_ERR_EMPTY naming dir when it holds no finished run. */
FEDREC_NODISCARD fedrec_err fedreci_cmp_group_load(fedreci_cmp_group *g, const char *dir);

/* Paired bootstrap (core/eval fedreci_eval_paired, 1000 resamples, seeded
 * by fedreci_sim_boot_seed of g's runs' seeds, 95%) of two columns of the runs' shoppers.csv, each
 * shopper's value averaged over g's runs first: col_a - col_b on the same shoppers (e.g. "hr_at_10"
 * against "centralized_hr_at_10"). Errors: FEDREC_ERR_IO or FEDREC_ERR_FORMAT for a missing file or
 * column, FEDREC_ERR_INVALID when the runs' shoppers differ, FEDREC_ERR_NOMEM. */
FEDREC_NODISCARD fedrec_err fedreci_cmp_pair_columns(const fedreci_cmp_group *g, const char *col_a,
                                                     const char *col_b, fedreci_paired *out);

/* Frees the run names of g. */
void fedreci_cmp_group_free(fedreci_cmp_group *g);

/* Writes the statistics of one group as JSON (the file `path`), with the
 * runs' folders and their values; `what` says what the runs differ in (e.g.
 * "seeds"). */
FEDREC_NODISCARD fedrec_err fedreci_cmp_group_json(const fedreci_cmp_group *g, const char *path,
                                                   const char *what);

/* Writes g[0..n) as CSV: name,n_runs,metric,mean,sd,ci95_lo,ci95_hi, one
 * row per group and metric (sd and the interval empty with one run). */
FEDREC_NODISCARD fedrec_err fedreci_cmp_write_csv(const fedreci_cmp_group *g, size_t n,
                                                  const char *path);

/* `fedrec-sim compare DIR... [--out DIR]`. */
int fedreci_sim_compare(int argc, char **argv);

#endif
