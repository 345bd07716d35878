/* fedrec-sim: reading runs back (summary.json and rounds.csv as fedrec-sim
 * run writes them) and the statistics across runs, for `run --seeds`,
 * `sweep` and `compare`. */
#ifndef FEDREC_SIM_RESULTS_H
#define FEDREC_SIM_RESULTS_H

#include <stddef.h>
#include <stdint.h>

#include "fedrec/fedrec.h"

#define FEDRECI_RESULT_MAX_KEYS 128

/* The numeric top-level members of one summary.json (true/false as 1/0;
 * strings are skipped), and the run's seed exactly (a double holds only
 * 53 bits). */
typedef struct fedreci_sim_result {
    size_t n;
    char key[FEDRECI_RESULT_MAX_KEYS][48];
    double value[FEDRECI_RESULT_MAX_KEYS];
    int have_seed; /* 1: the member "seed" was an integer, in seed */
    uint64_t seed;
} fedreci_sim_result;

/* Reads path, a summary.json written by fedrec-sim run (one member per
 * line). FEDREC_ERR_IO when it cannot be opened, FEDREC_ERR_FORMAT naming
 * path:line when a line is not a member or the object is not closed (a run
 * interrupted while writing it). */
FEDREC_NODISCARD fedrec_err fedreci_sim_result_read(const char *path, fedreci_sim_result *r);

/* The value of key, or NaN when r has no such numeric member. */
double fedreci_sim_result_get(const fedreci_sim_result *r, const char *key);

/* 1 when dir holds a finished run: a summary.json that reads back. */
int fedreci_sim_run_finished(const char *dir);

/* The column `name` of path, a rounds.csv written by fedrec-sim run
 * (provenance lines skipped), one value per row: out[i] for row i < cap,
 * NaN for an empty cell; *n gets the number of rows (which may exceed cap).
 * FEDREC_ERR_IO, or FEDREC_ERR_FORMAT when there is no such column. */
FEDREC_NODISCARD fedrec_err fedreci_sim_rounds_column(const char *path, const char *name,
                                                      double *out, size_t cap, size_t *n);

/* Mean, sample standard deviation and the two-sided 95% Student t interval
 * of the mean of v[0..n) (n >= 2; with n == 1 sd and the interval are NaN).
 * NaN values are skipped (*used gets how many were not). */
typedef struct fedreci_sim_stat {
    double mean, sd, lo, hi;
    size_t n;
} fedreci_sim_stat;

void fedreci_sim_stat_of(const double *v, size_t n, fedreci_sim_stat *out);

/* The 0.975 quantile of Student's t with df degrees of freedom (df >= 1):
 * exact to 3 decimals from a table up to 30, a Cornish-Fisher expansion
 * beyond (error below 1e-3). */
double fedreci_sim_t975(size_t df);

/* The seed of the paired bootstrap against centralized ALS (core/eval
 * fedreci_eval_paired) for the runs whose seeds are seeds[0..n): the run's
 * own seed for one run, so that `run` (its table and summary.json) and
 * `compare` of that run print the same interval; for several runs (run
 * --seeds, compare of a folder of runs, two groups paired)
 * fedreci_rng_mix(n + the sum of fedreci_rng_mix(seed)), so the same runs
 * give the same interval in any order. n == 0 (no run's seed known): 1. */
uint64_t fedreci_sim_boot_seed(const uint64_t *seeds, size_t n);

#endif
