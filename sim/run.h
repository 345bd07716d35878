/* fedrec-sim run: the internal interface between the parts of the `run`
 * command.
 *
 *   run.c          fedreci_sim_run: load, prepare, baselines, the loop, outputs
 *   run_opts.c     the options: defaults, parsing (getopt_long), validation
 *   run_loop.c     seeded derivations and the plain-sum reference loop
 *   run_secagg.c   the federation over the coordinator's engine (SecAgg/SecAgg+)
 *   run_eval.c     the background evaluator and the progress line
 *   run_output.c   rounds.csv, summary.json, the plot and the printed table
 *
 * Nothing here is thread-safe unless a function says so. */
#ifndef FEDREC_SIM_RUN_H
#define FEDREC_SIM_RUN_H

#include <stdint.h>
#include <stdio.h>

#include "sim/dp.h"
#include "sim/sim.h"

#define FEDRECI_RUN_MAX_FACTORS 256u
#define FEDRECI_RUN_MAX_SEEDS 64

enum { FEDRECI_RUN_SECAGG_OFF = 0, FEDRECI_RUN_SECAGG_PLUS = 1, FEDRECI_RUN_SECAGG_FULL = 2 };

/* "off", "plus", "full" by the enum above. */
extern const char *const fedreci_run_secagg_names[3];
/* "advertise", "share", "masked", "unmask": the four SecAgg stages. */
extern const char *const fedreci_run_stage_names[4];

/* ---- options (run_opts.c) ------------------------------------------------------- */

typedef struct fedreci_run_opts {
    fedreci_sim_data_opts data;
    uint32_t rounds;
    uint32_t cohort;
    uint32_t neighbors;
    uint32_t threshold; /* 0: the engine's default K/2 + 1 */
    uint32_t factors;
    uint32_t threads;
    uint32_t eval_every;
    uint32_t sweeps;
    uint32_t stage_timeout_s;
    double dropout;
    int dropout_stage; /* -1: spread over the four stages */
    int secagg;        /* FEDRECI_RUN_SECAGG_* */
    int tcp;
    double lambda;
    int step;       /* the server step of rounds without DP: FEDRECI_OPT_ADAM or
                       FEDRECI_OPT_ALS (core/mf/mf.h) */
    int step_given; /* --step was given */
    double lr;      /* Adam's learning rate or the ALS step size */
    double beta1;   /* Adam's beta1 or the ALS step's momentum */
    double x_bound; /* ALS step: the bound B on |x_u| of the x_u x_u^T block */
    int reshuffle;  /* --selection: 1 reshuffle (each client once per epoch), 0 uniform;
                       -1 until parsed: the default (reshuffle with --step als) */
    double clip;
    uint64_t seed;
    uint64_t seeds[FEDRECI_RUN_MAX_SEEDS]; /* --seeds: one run per seed */
    uint32_t n_seeds;                      /* 0: one run with --seed */
    const char *out;
    int quiet;
    /* differential privacy (sim/dp.h); dp_epsilon == 0: none */
    double dp_epsilon, dp_delta;
    uint32_t dp_releases;
    double dp_row_bound, dp_gram_weight, dp_gram_floor, dp_min_survivors;
    int dp_noise_aggregate, dp_no_shrink, dp_normalize;
    double dp_item_bias;  /* --dp-item-bias: 0 (none) or the fixed coordinate a in (0, 1) */
    double dp_shares[64]; /* --dp-shares: release r gets noise variance mu / share r */
    uint32_t n_dp_shares; /* 0: equal shares */
    uint32_t group_size;  /* --group-size: 0 one SecAgg round over the engine (run_secagg.c),
                             else SecAgg groups (run_groups.c) */
    uint32_t eval_sample; /* --eval-sample: 0 every test shopper, else a sample of that many */
    uint32_t synth_scale; /* --synth-scale: 0/1 the log as loaded, else grown (sim/synth.h) */
} fedreci_run_opts;

/* The --help text of `fedrec-sim run`. */
void fedreci_run_usage(FILE *f);

/* Fills o with the defaults and parses argv[1..argc-1] over them. Returns 0,
 * 1 when --help was printed, 2 on a usage error (message on stderr). The
 * strings in o point into argv. */
int fedreci_run_opts_parse(fedreci_run_opts *o, int argc, char **argv);

/* The checks that need the data: with `clients` training customers, the
 * --threshold (when given) must lie in (k/2, k] for the neighbour count k the
 * engine will use. Returns FEDREC_ERR_INVALID with a message otherwise. */
FEDREC_NODISCARD fedrec_err fedreci_run_opts_check(const fedreci_run_opts *o, uint32_t clients);

/* ---- per-round records ------------------------------------------------------------ */

typedef struct fedreci_run_round {
    uint64_t round_id;
    int completed;
    uint32_t cohort;
    uint32_t survivors;
    uint32_t dropped[4];
    uint32_t k, t;
    double stage_ms[4];
    uint64_t bytes_in, bytes_out;  /* at the coordinator during the round */
    int verified;                  /* 1 matched the oracle, 0 mismatch, -1 not checked */
    uint64_t up_bytes, down_bytes; /* summed over the clients that completed */
    uint32_t n_completed;
    uint32_t session_errors;
    double seconds;
    uint64_t rss_kb;  /* the process's resident memory at the end of the round */
    uint64_t heap_kb; /* bytes allocated with malloc and not freed then (all arenas) */
    int evaluated;
    fedreci_metrics m;
    double dp_eps_round;            /* DP runs: epsilon of this round's release alone */
    double dp_eps_cumulative;       /* DP runs: epsilon spent after this round */
    int dp_refused;                 /* DP runs: the budget gate refused the round */
    uint32_t groups, groups_failed; /* --group-size runs: SecAgg groups, those dropped whole */
    char reason[240];
} fedreci_run_round;

/* The run as a whole, from the rounds and the baselines. */
typedef struct fedreci_run_summary {
    fedreci_metrics fed;
    int have_fed;
    fedreci_sim_baselines base;
    uint32_t clients, cohort, k, t, test_users, n_items, rounds_aborted, rounds_verified;
    uint32_t rounds_completed, session_errors;
    uint64_t dropped[4];
    double bytes_up, bytes_down, wall;
    int verified;
    const char *split;
    const fedreci_sim_provenance *prov; /* NULL: none written */
    int have_ci;                        /* the per-shopper bootstrap intervals below */
    fedreci_ci hr_ci, ndcg_ci;          /* 95%, 1000 resamples of the test shoppers */
    fedreci_paired paired_hr; /* federated - centralized HR@10 on the same shoppers (have_ci) */
    int dp;                   /* a DP run: dp_info holds its constants */
    int dp_engine;            /* ... over the engine (else in process) */
    fedreci_sim_dp_info dp_info;
    uint32_t dp_rounds_refused;
    uint64_t groups, groups_failed; /* --group-size runs: over all rounds */
} fedreci_run_summary;

/* ---- the background evaluator (run_eval.c) ---------------------------------------- */

typedef struct fedreci_run_evaluator fedreci_run_evaluator;

/* Starts the evaluation thread for models of n_items x o->factors on split s;
 * t0 (fedreci_sim_now) is the start of the run for the progress line. When
 * last_per_user is non-NULL (FEDRECI_METRIC_COUNT x n_test_users doubles,
 * borrowed), the evaluation of the last round (index rounds - 1) also writes
 * every test shopper's metrics there (fedreci_sim_evaluate_users). */
FEDREC_NODISCARD fedrec_err fedreci_run_evaluator_create(fedreci_run_evaluator **ev,
                                                         const fedreci_run_opts *o,
                                                         const fedreci_split *s, double t0,
                                                         double *last_per_user);

/* Waits for the running evaluation, then starts one on a copy of y (nk
 * floats); its metrics go to r->m (and r->evaluated = 1) and the progress
 * line reports round index + 1. r must stay valid until the next post or
 * fedreci_run_evaluator_finish. */
void fedreci_run_evaluator_post(fedreci_run_evaluator *ev, const float *y, size_t nk,
                                fedreci_run_round *r, uint32_t index);

/* Waits for the running evaluation and stops the thread. Returns the first
 * evaluation error (with its message), FEDREC_OK otherwise. */
FEDREC_NODISCARD fedrec_err fedreci_run_evaluator_finish(fedreci_run_evaluator *ev);

/* Stops the thread if it still runs and frees ev. NULL is a no-op. */
void fedreci_run_evaluator_destroy(fedreci_run_evaluator *ev);

/* ---- the round loops (run_loop.c, run_secagg.c) ---------------------------------- */

/* What both loops train on: the split, its training customers (the
 * clients, in ascending order) and the item codes (names the model's rows). */
typedef struct fedreci_run_world {
    const fedreci_run_opts *o;
    const fedreci_split *s;
    const uint32_t *train_users;
    uint32_t n_train;
    const char **codes;
} fedreci_run_world;

/* Runs o->rounds rounds of the plain-sum reference (core/mf's federated
 * round: same cohort size, dropout and optimizer; no transport, no masking)
 * starting from y (n_items x factors, updated in place); recs[0..rounds-1]
 * get the rounds; every --eval-every round is posted to ev. */
FEDREC_NODISCARD fedrec_err fedreci_run_plain(const fedreci_run_world *w, float *y,
                                              fedreci_run_round *recs, fedreci_run_evaluator *ev);

/* Runs o->rounds rounds over the coordinator's engine with one client
 * session per training customer (see run_secagg.c), same contract as
 * fedreci_run_plain. Sets up and tears down the engine and the clients. */
/* Runs o->rounds rounds of the differentially private pipeline (sim/dp.h)
 * from y; recs as above (every completed round evaluated; a round refused
 * by the budget gate ends the run, its reason printed); info gets the
 * constants; per_user (as fedreci_sim_evaluate_users') the last evaluated
 * round's per-shopper metrics. */
FEDREC_NODISCARD fedrec_err fedreci_run_dp(const fedreci_run_world *w, float *y,
                                           fedreci_run_round *recs, fedreci_sim_dp_info *info,
                                           double *per_user);

/* The DP constants of a run over the engine (--dp-epsilon with client
 * noise): the same plan the engine makes (core/dp/round.h), and the epsilon
 * spent after the last round of recs. */
FEDREC_NODISCARD fedrec_err fedreci_run_dp_info(const fedreci_run_world *w,
                                                const fedreci_run_round *recs,
                                                fedreci_sim_dp_info *info);

FEDREC_NODISCARD fedrec_err fedreci_run_secagg(const fedreci_run_world *w, float *y,
                                               fedreci_run_round *recs, fedreci_run_evaluator *ev);

/* Runs o->rounds rounds with SecAgg groups (run_groups.c: --group-size),
 * same contract as fedreci_run_plain; under MPI every rank calls it (ev
 * NULL on ranks other than 0: only rank 0 fills recs; y is the model on
 * every rank). */
FEDREC_NODISCARD fedrec_err fedreci_run_groups(const fedreci_run_world *w, float *y,
                                               fedreci_run_round *recs, fedreci_run_evaluator *ev);

/* MPI (run_groups.c; builds without FEDREC_HAVE_MPI have one rank). init:
 * initializes MPI when the process was started by a launcher (mpirun sets
 * OMPI_COMM_WORLD_SIZE / PMIX_RANK), else does nothing; 0, or -1 when
 * MPI_Init failed. finalize: MPI_Finalize, or MPI_Abort of the whole job
 * when failed is set and there are other ranks (they would wait forever).
 * rank/size: this process's rank and the number of ranks (0 and 1 without
 * MPI). Call them from the main thread. */
int fedreci_run_mpi_init(void);
void fedreci_run_mpi_finalize(int failed);
int fedreci_run_mpi_rank(void);
int fedreci_run_mpi_size(void);

/* -1 when the client stays in round round_index, else the SecAgg stage
 * (0..3) before whose message it vanishes: from (seed, round, client). */
int fedreci_run_dropout_of(const fedreci_run_opts *o, uint32_t round_index, uint64_t client);

/* 32 bytes from (seed, a, b) under a label, with BLAKE2b. */
void fedreci_run_derive32(uint64_t seed, uint64_t a, uint64_t b, const char *label,
                          uint8_t out[32]);

/* Resident set size of this process in KiB (VmRSS), 0 where /proc is not
 * available. It includes memory the allocator keeps after free (and how much
 * it keeps depends on which thread freed what), so it is no measure of
 * leaks: see fedreci_run_heap_kb. */
uint64_t fedreci_run_rss_kb(void);

/* The live heap in KiB: what malloc has handed out and not yet had back,
 * over every arena, plus the chunks it mmapped (glibc's mallinfo2 uordblks +
 * hblkhd). Grows with every leaked allocation and not with fragmentation or
 * memory the allocator keeps for reuse. Thread-safe (takes the arena locks). */
uint64_t fedreci_run_heap_kb(void);

/* ---- outputs (run_output.c) ---------------------------------------------------------- */

/* Adds up the rounds into sm (completed/aborted/verified counts, dropouts,
 * bytes per participating client, the last round's metrics). Fails when the
 * last round was not evaluated. */
FEDREC_NODISCARD fedrec_err fedreci_run_summarize(const fedreci_run_opts *o,
                                                  const fedreci_run_round *recs,
                                                  fedreci_run_summary *sm);

/* o->out/rounds.csv: the provenance as `#` lines, a header, one row per
 * round (README.md, "Outputs", describes the columns). */
FEDREC_NODISCARD fedrec_err fedreci_run_write_rounds_csv(const fedreci_run_opts *o,
                                                         const fedreci_run_round *recs,
                                                         const fedreci_run_summary *sm);

/* o->out/shoppers.csv: each test shopper's final metrics (per_user as
 * fedreci_sim_evaluate_users writes it) and the centralized ALS's
 * (central_per_user, the same layout; columns centralized_*), for paired
 * comparisons. */
FEDREC_NODISCARD fedrec_err fedreci_run_write_shoppers(const fedreci_run_opts *o,
                                                       const fedreci_dataset *d,
                                                       const fedreci_split *s,
                                                       const double *per_user,
                                                       const double *central_per_user);

/* o->out/summary.json: one member per line (README.md, "Outputs"). */
FEDREC_NODISCARD fedrec_err fedreci_run_write_summary(const fedreci_run_opts *o,
                                                      const fedreci_run_summary *sm);

/* o->out/hr_ndcg.svg (a warning on stderr, not an error, when it fails). */
void fedreci_run_write_plot(const fedreci_run_opts *o, const fedreci_run_round *recs,
                            const fedreci_run_summary *sm);

/* The final table on stdout. */
void fedreci_run_print_table(const fedreci_run_opts *o, const fedreci_run_summary *sm);

#endif
