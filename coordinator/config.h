/*
 * coordinator/config: the daemon's configuration, from an INI file (inih)
 * and command-line flags; a flag overrides the same key from the file (for
 * the repeatable --listen, any --listen on the command line replaces the
 * file's list).
 *
 * Every key has one name, used both as a flag (--cohort 200, --cohort=200)
 * and as an INI key in a fixed section (`[round] cohort = 200`); the table
 * and the help text are in config.c and fedreci_config_usage prints them.
 *
 * Errors name where the bad value came from and the value itself:
 *   "coord.ini:7: [round] cohort: '12x' is not an integer"
 *   "--clip: '-1' must be a finite number > 0"
 * and cross-key checks name both keys ("min-cohort (50) exceeds cohort (20)").
 *
 * Ownership: a fedreci_config owns its strings. Thread-safety: read-only
 * after fedreci_config_parse returns.
 */
#ifndef FEDREC_COORDINATOR_CONFIG_H
#define FEDREC_COORDINATOR_CONFIG_H

#include <stdint.h>
#include <stdio.h>

#include "core/secagg/secagg.h"
#include "fedrec/fedrec.h"

#define FEDRECI_CONFIG_MAX_LISTEN 16

typedef struct fedreci_config {
    char *listen[FEDRECI_CONFIG_MAX_LISTEN]; /* nng URLs: tcp://, tls+tcp://, ipc://, inproc:// */
    uint32_t n_listen;
    char *db_path;           /* SQLite database file */
    char *http;              /* status server "http://HOST:PORT"; NULL = disabled */
    char *tls_cert;          /* PEM certificate (chain) for tls+tcp:// listeners */
    char *tls_key;           /* PEM private key for tls_cert */
    uint32_t require_tls;    /* 1: every tcp listener and the master link must be tls+tcp:// */
    char *catalog;           /* CSV catalog (code,description); NULL = keep the stored one */
    char *config_path;       /* the INI file read, NULL when none */
    uint32_t cohort;         /* clients invited per round */
    uint32_t min_cohort;     /* below this many checked-in clients no round runs */
    uint32_t deadline_ms[4]; /* per SecAgg stage: advertise, share, masked, unmask */
    uint32_t checkin_ms;     /* how long a round waits for check-ins */
    uint32_t neighbors;      /* SecAgg+ k, capped at n - 1; 0 = n - 1 (classic SecAgg) */
    uint32_t threshold;      /* Shamir t, k/2 < t <= k; 0 = ceil(2k/3) per round */
    uint32_t seed_retries;   /* graph seed step retries per round (0..8; default 3) */
    double clip;             /* gradient entries clipped to [-clip, clip] */
    double scale;            /* quantization scale */
    uint32_t factors;        /* k of the model (columns of Y) */
    char *step;              /* server step: "adam" (default) or "als" */
    char *selection;         /* cohort selection: "uniform" (default) or "reshuffle" */
    float lr;                /* Adam learning rate or the als step size */
    float beta1;             /* Adam first-moment decay or the als momentum, [0, 0.999] */
    double x_bound;          /* als: the bound on |x_u| in the x_u x_u^T block */
    float lambda;            /* L2 regularization */
    uint32_t n_train;        /* N in the server step's 2 (lambda / N) Y; see docs/design.md */
    uint64_t rounds;         /* rounds to run, 0 = forever */
    uint32_t abort_streak; /* aborts in a row that fail /healthz and start the backoff; 0 = never */
    uint32_t backoff_ms;   /* first wait after abort_streak aborts in a row */
    uint32_t backoff_max_ms;     /* cap of the doubling wait */
    uint64_t seed;               /* model initialization and new item rows */
    uint32_t max_connections;    /* open connections in total (0: no cap) */
    uint32_t max_conns_per_addr; /* open connections per IPv4 address / IPv6 /64 (0: no cap) */
    uint32_t new_ids_addr_burst; /* new-id check-ins per address: bucket size (0: no limit) */
    double new_ids_addr_rate;    /* ... refilled per second */
    uint32_t new_ids_burst;      /* new-id check-ins in total: bucket size (0: no limit) */
    double new_ids_rate;         /* ... refilled per second */
    uint32_t max_clients;        /* client ids held in memory (0: no bound) */
    uint32_t bench_max_rounds;   /* a withholder's bench at most (0: nobody is benched) */
    double dp_epsilon;           /* differential privacy budget (0: none) */
    double dp_delta;             /* its delta */
    uint32_t dp_rounds;          /* rounds the noise is calibrated for (0: rounds) */
    double dp_min_survivors;     /* fraction of the cohort a DP round needs */
    double dp_row_bound;         /* R of the DP-ALS contribution */
    double dp_gram_weight;       /* g */
    double dp_gram_floor;        /* phi: Gram eigenvalue floor, fraction of its trace */
    /* SecAgg groups (issue 20; section [groups]) */
    char *role;          /* "single" (default), "master" or "aggregator" */
    char *master;        /* aggregator: the master's aggregator URL */
    char *agg_listen;    /* master: URL aggregators dial */
    char *agg_keys;      /* master: allowed aggregator keys, comma-separated hex */
    char *identity_key;  /* master, aggregator: file with its Ed25519 seed (hex; made if
                            missing); the master signs its link replies with it */
    char *master_key;    /* aggregator: the master's Ed25519 public key (64 hex digits) */
    char *public_url;    /* aggregator: the URL members are told (default: first listen) */
    char *master_ca;     /* aggregator: CA file verifying a tls+tcp:// master */
    uint32_t group_size; /* master: members per group at most (lowered for min-cohort) */
    uint32_t min_groups; /* master: groups that must finish for a round to commit */
    uint32_t max_group;  /* aggregator: the largest group it takes */
    int log_level;       /* fedreci_log_level */
    int help;            /* --help was given */
    int version;         /* --version was given */
    int check_only;      /* --check-config was given */
} fedreci_config;

/* Parses argv (argv[0] is the program name) and the INI file named by
 * --config, then applies defaults for what neither gave. It does not run
 * the cross-key checks: call fedreci_config_check.
 * Errors: FEDREC_ERR_INVALID (unknown flag or key, missing value),
 * FEDREC_ERR_PARSE / FEDREC_ERR_RANGE (bad value), FEDREC_ERR_IO (INI file
 * unreadable), FEDREC_ERR_NOMEM. *out is written only on success. */
FEDREC_NODISCARD fedrec_err fedreci_config_parse(fedreci_config **out, int argc, char *const *argv);

/* Cross-key validation before the daemon starts: min-cohort <= cohort,
 * neighbors < cohort, the SecAgg parameters through
 * fedreci_secagg_params_check for a round of `cohort` clients (overflow
 * budget) and of `min-cohort` clients (threshold against the capped k), the
 * listen URL schemes (only tls+tcp://, ipc:// and inproc:// with
 * require-tls), both-or-neither of tls-cert/tls-key and readable TLS
 * files when a tls+tcp:// listener is configured, the http scheme,
 * dp-epsilon and dp-delta together, and dp-rounds (or rounds) with them.
 * Errors: FEDREC_ERR_INVALID, FEDREC_ERR_RANGE, FEDREC_ERR_IO, or what
 * fedreci_secagg_params_check returns (its message included). */
FEDREC_NODISCARD fedrec_err fedreci_config_check(const fedreci_config *c);

/* The SecAgg parameters of a round of n clients with vectors of d words:
 * k = min(neighbors, n - 1) (n - 1 when neighbors is 0), t = threshold or
 * ceil(2k/3) (fedreci_coord_default_threshold) when 0, clip, scale, max_weight 1; round_id and
 * graph_seed zero (the engine sets them). */
void fedreci_config_secagg_params(const fedreci_config *c, uint32_t n, uint32_t d,
                                  fedreci_secagg_params *p);

/* The effective configuration as one line of "key=value" pairs separated by
 * single spaces, in the order of --help (listen repeated per URL, unset
 * strings as "key=" ), into buf (cap bytes, always terminated; cut short
 * when too small). The configuration holds no secrets (tls-key is a path),
 * so the line can be logged. Returns the length the whole line needs. */
size_t fedreci_config_format(const fedreci_config *c, char *buf, size_t cap);

/* The server step named by c->step: FEDRECI_OPT_ADAM or FEDRECI_OPT_ALS
 * (core/mf/mf.h), or -1 when it names neither. */
int fedreci_config_step(const fedreci_config *c);

/* 1 when c->selection is "reshuffle", 0 when it is "uniform" or unset, -1
 * when it names neither. */
int fedreci_config_reshuffle(const fedreci_config *c);

/* The role named by c->role: FEDRECI_ROLE_SINGLE, _MASTER or _AGGREGATOR
 * (engine.h), or -1 when it names none. */
int fedreci_config_role(const fedreci_config *c);

/* Parses the master's aggregator-keys (comma-separated, 64 hex digits each,
 * spaces allowed) into *keys (malloc'd, *n of them). Errors:
 * FEDREC_ERR_PARSE naming the bad entry, FEDREC_ERR_NOMEM. */
FEDREC_NODISCARD fedrec_err fedreci_config_agg_keys(const fedreci_config *c, uint8_t (**keys)[32],
                                                    size_t *n);

/* Parses the aggregator's master-key (64 hex digits, surrounding spaces
 * allowed) into pk. Errors: FEDREC_ERR_INVALID when it is not set,
 * FEDREC_ERR_PARSE when it is not 64 hex digits. */
FEDREC_NODISCARD fedrec_err fedreci_config_master_key(const fedreci_config *c, uint8_t pk[32]);

/* Prints the flags, their INI section/key, default and meaning. */
void fedreci_config_usage(FILE *f, const char *prog);

/* NULL is a no-op. */
void fedreci_config_destroy(fedreci_config *c);

#endif /* FEDREC_COORDINATOR_CONFIG_H */
