/* fedrec-sim: shared declarations of the simulator's subcommands and the
 * helpers they share (data options, model evaluation, baselines).
 *
 * Subcommands take the arguments after the program name (argv[0] is the
 * subcommand) and return the process exit status: 0 success, 1 failure
 * (message on stderr), 2 usage error. */
#ifndef FEDREC_SIM_SIM_H
#define FEDREC_SIM_SIM_H

#include <getopt.h>
#include <stdint.h>
#include <stdio.h>

#include "core/dataset/dataset.h"
#include "core/eval/eval.h"
#include "fedrec/fedrec.h"

/* `fedrec-sim describe --data FILE [--json] [--keep-non-products]
 * [--alpha A] [--eps E] [--strict] [--split-date YYYY-MM-DD]`: loads and
 * cleans a purchase log and prints the cleaning report, the dataset
 * statistics and the split's counts (leave-last-basket-out by default). */
int fedreci_sim_describe(int argc, char **argv);

/* `fedrec-sim baseline --data FILE [--seeds LIST] [--sweeps S] [--boot B]
 * [--threads T] [--only LIST] [--show-grid] [--json] ...`: popularity,
 * item-kNN, EASE and implicit ALS (exact and CG) on the split, each tuned on
 * the validation split and evaluated once on the test split at K = 10, 20,
 * 50 with bootstrap intervals (sim/baseline.c). */
int fedreci_sim_baseline(int argc, char **argv);

/* `fedrec-sim split --data FILE --export DIR`: the split as CSV (users,
 * items, train, test) and split.json. */
int fedreci_sim_split(int argc, char **argv);

/* `fedrec-sim sweep --grid SPEC [run options]`: one run per point of the
 * grid, resumable, with an index. */
int fedreci_sim_sweep(int argc, char **argv);

/* `fedrec-sim synth --data FILE --scale S --out FILE [--items-scale C]
 * [--band B] [--seed N]`: the log grown S-fold (sim/synth.h). */
int fedreci_sim_synth(int argc, char **argv);

/* `fedrec-sim run --data FILE ...` (also the default): federated training
 * with SecAgg+ over nng, one client session per training customer. */
int fedreci_sim_run(int argc, char **argv);

/* ---- option parsing shared by the subcommands ----------------------------- */

/* Every subcommand parses its options with getopt_long through
 * fedreci_sim_parse_opts, so `--opt value` and `--opt=value` both work, the
 * same messages name the same mistakes, and the data options mean the same
 * everywhere. Option codes of long-only options start at FEDRECI_SIM_OPT_BASE;
 * the data options use codes from FEDRECI_SIM_DATA_OPT_BASE on. */
#define FEDRECI_SIM_OPT_BASE 0x100
#define FEDRECI_SIM_DATA_OPT_BASE 0x1000

/* What selects and cleans the log and splits it. */
typedef struct fedreci_sim_data_opts {
    const char *data; /* --data FILE (required) */
    fedreci_dataset_options ds;
    const char *split;            /* --split lastbasket | date:YYYY-MM-DD (NULL: lastbasket),
                                     or validation[:date:YYYY-MM-DD] when validation_ok */
    int validation_ok;            /* the command evaluates on a validation split if asked */
    const char *non_product[256]; /* storage for --non-product lists */
    char non_product_buf[4096];   /* --non-product, split in place */
    char split_buf[64];           /* storage for --split-date */
    const char *format;           /* --format (NULL: online-retail) */
    const char *columns;          /* --columns as given (NULL: the preset's) */
    char columns_buf[1024];       /* --columns, split in place */
} fedreci_sim_data_opts;

/* Defaults: no file, the dataset defaults, leave-last-basket-out. */
void fedreci_sim_data_opts_default(fedreci_sim_data_opts *o);

/* The usage text of the data options (for --help). */
void fedreci_sim_data_usage(FILE *f);

/* Handles one option of a subcommand: code is the option's code in the
 * table, name its spelling ("--rounds"), arg its value (NULL for a flag).
 * Returns 0, or -1 after printing "cmd: --name 'arg': what is wrong". */
typedef int (*fedreci_sim_opt_fn)(void *ctx, int code, const char *name, const char *arg);

/* Parses argv[1..argc-1] (argv[0] is the subcommand) with getopt_long: the
 * options in `own` (terminated by a zero entry; at most 64) go to fn, the
 * data options (when data != NULL) to data, and -h/--help prints usage to
 * stdout. Positional arguments are refused. Returns 0 when every option was
 * accepted, 1 when help was printed, 2 on a usage error (message on
 * stderr). Not thread-safe (getopt's globals). */
int fedreci_sim_parse_opts(int argc, char **argv, const char *cmd, const struct option *own,
                           fedreci_sim_data_opts *data, fedreci_sim_opt_fn fn, void *ctx,
                           void (*usage)(FILE *));

/* Value parsers for option handlers (core/opt.h's, with the message
 * printed): each writes *out and returns 0 when v is a decimal integer (u32,
 * u64) or a finite number (double) within [lo, hi]; otherwise prints
 * "cmd: NAME: 'v' is not ..." to stderr and returns -1 without writing
 * *out. */
int fedreci_sim_arg_u32(const char *cmd, const char *name, const char *v, uint32_t lo, uint32_t hi,
                        uint32_t *out);
int fedreci_sim_arg_u64(const char *cmd, const char *name, const char *v, uint64_t *out);
int fedreci_sim_arg_double(const char *cmd, const char *name, const char *v, double lo, double hi,
                           double *out);

/* Loads, cleans and splits. On failure prints "cmd: error: message" to stderr
 * and returns the error; *d and *s are written only on success. */
FEDREC_NODISCARD fedrec_err fedreci_sim_load(const fedreci_sim_data_opts *o, const char *cmd,
                                             fedreci_dataset **d, fedreci_split **s);

/* ---- evaluation --------------------------------------------------------------- */

/* Evaluates item factors y (n_items x k) on the split's test customers at
 * K = 10. With x == NULL each test customer solves their own factors on the
 * device (fedreci_mf_solve_user with the current y and its gram, on their
 * training row), as the federated clients do; otherwise x (n_users x k)
 * holds the factors of every user (the centralized model). Ranking: top 10 of
 * y x_u excluding the customer's training items (fedreci_mf_topk). Runs on
 * `threads` threads (0 means 1); the result does not depend on the count
 * (the ranked lists are added to the accumulator in test-user order). */
FEDREC_NODISCARD fedrec_err fedreci_sim_evaluate(const fedreci_split *s, const float *y,
                                                 const float *x, uint32_t k, float lambda,
                                                 uint32_t threads, fedreci_metrics *out);

/* fedreci_sim_evaluate_users of a model with an item bias (bias > 0; 0 is
 * fedreci_sim_evaluate_users with x = NULL): y is n_items x k with the items' biases in its last
 * column, each test customer solves the other k - 1 coordinates with the
 * last fixed at bias (fedreci_dpals_solve_biased, core/dp/dpals.h) and is
 * ranked by y (x_u, bias). */
FEDREC_NODISCARD fedrec_err fedreci_sim_evaluate_biased(const fedreci_split *s, const float *y,
                                                        uint32_t k, double bias, float lambda,
                                                        uint32_t threads, fedreci_metrics *out,
                                                        double *per_user);

/* fedreci_sim_evaluate, and when per_user is non-NULL (FEDRECI_METRIC_COUNT x
 * n_test_users doubles, metric-major: per_user[m * n_test_users + t]) each
 * test user's value of every metric (fedreci_metric_id order: HR, precision,
 * recall, NDCG, MAP), in test-user order. */
FEDREC_NODISCARD fedrec_err fedreci_sim_evaluate_users(const fedreci_split *s, const float *y,
                                                       const float *x, uint32_t k, float lambda,
                                                       uint32_t threads, fedreci_metrics *out,
                                                       double *per_user);

/* The two baselines of a split, computed the same way by `baseline` and
 * `run`: popularity and centralized ALS (fedreci_als_train on the training
 * matrix, seed fixed by `seed`). central_per_user (may be NULL;
 * FEDRECI_METRIC_COUNT x n_test_users doubles, metric-major as in
 * fedreci_sim_evaluate_users) gets each test shopper's centralized ALS
 * metrics. */
typedef struct fedreci_sim_baselines {
    fedreci_metrics popularity;
    fedreci_metrics centralized;
    double als_seconds; /* wall time of the ALS training */
} fedreci_sim_baselines;

FEDREC_NODISCARD fedrec_err fedreci_sim_compute_baselines(const fedreci_split *s, uint32_t k,
                                                          float lambda, uint32_t sweeps,
                                                          uint32_t threads, uint64_t seed,
                                                          fedreci_sim_baselines *out,
                                                          double *central_per_user);

/* ---- provenance ---------------------------------------------------------------- */

/* Where a run's outputs come from, written into summary.json (provenance_*
 * keys) and as `#` comment lines at the top of rounds.csv. */
typedef struct fedreci_sim_provenance {
    const char *version;     /* fedrec_version() */
    const char *commit;      /* git commit at configure time, "unknown" outside git */
    char command_line[4096]; /* the whole command, each argument shell-quoted when needed */
    char input_sha256[65];   /* hex SHA-256 of the input file's bytes (as stored, gzip'd or not) */
    char started_utc[32];    /* ISO 8601, e.g. 2026-12-01T21:17:00Z */
    long cores;              /* online processors */
    char machine[160];       /* uname: system, release, hardware */
} fedreci_sim_provenance;

/* Remembers the process's argv (from main) for the provenance. */
void fedreci_sim_set_command_line(int argc, char **argv);

/* Fills p for a run starting now on the file `data` (hashed with libsodium's
 * crypto_hash_sha256, streaming). Fails with FEDREC_ERR_IO naming the file
 * when it cannot be read. */
FEDREC_NODISCARD fedrec_err fedreci_sim_provenance_init(fedreci_sim_provenance *p,
                                                        const char *data);

/* Writes p as "# key: value" lines (values on one line; control bytes of
 * the command line are shown as '?'). */
void fedreci_sim_provenance_csv(FILE *f, const fedreci_sim_provenance *p);

/* Creates dir and its parents (mode 0777 before umask); an existing
 * directory is fine. FEDREC_ERR_IO naming dir otherwise. */
FEDREC_NODISCARD fedrec_err fedreci_sim_make_dir(const char *dir);

/* 1 when paths a and b both exist and name the same file (device and inode,
 * so links and other spellings count), else 0. */
int fedreci_sim_same_file(const char *a, const char *b);

/* Monotonic seconds. */
double fedreci_sim_now(void);

#endif
