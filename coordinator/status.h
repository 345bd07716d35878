/*
 * coordinator/status: the daemon's live counters and the HTTP status server.
 *
 * fedreci_stats is a thread-safe record (one mutex) that the round engine's
 * hooks update and the HTTP handlers read. fedreci_status serves, over nng's
 * HTTP server (nng/supplemental/http/http.h):
 *   GET /         the status page (text/html; fedreci_stats_format_html)
 *   GET /healthz  200 "ok\n", or 503 "unhealthy: PROBLEM\n" while a problem
 *                 is set (fedreci_stats_set_health)
 *   GET /status   application/json: {"round":..,"stage":..,"model_version":..,
 *                 "connected_clients":..,"known_clients":..,"rounds_completed":..,
 *                 "rounds_aborted":..,"uptime_seconds":..}
 *                 ("round" is null when no round has begun)
 *   GET /metrics  Prometheus text exposition format 0.0.4:
 *                 fedrec_rounds_completed_total, fedrec_rounds_aborted_total
 *                 (counters), fedrec_round_participants (gauge: survivors of
 *                 the last finished round), fedrec_dropouts_total{stage=...}
 *                 (counter), fedrec_stage_duration_seconds{stage=...} (summary:
 *                 _sum and _count over finished rounds),
 *                 fedrec_bytes_received_total, fedrec_bytes_sent_total
 *                 (counters), fedrec_model_version, fedrec_connected_clients
 *                 (known clients on a connection open now), fedrec_known_clients
 *                 (registered), fedrec_current_round (gauges);
 *                 fedrec_rounds_total{outcome="completed"|"aborted"} (counter),
 *                 fedrec_build_info{version=...} 1, and the standard process
 *                 metrics process_resident_memory_bytes,
 *                 process_open_fds, process_start_time_seconds (gauges).
 * Stage label values: advertise, share_keys, masked_input, unmask.
 *
 * Thread-safety: every fedreci_stats function may be called from any thread;
 * the HTTP handlers run on nng's threads.
 */
#ifndef FEDREC_COORDINATOR_STATUS_H
#define FEDREC_COORDINATOR_STATUS_H

#include <stddef.h>
#include <stdint.h>

#include "db.h"
#include "engine.h"
#include "fedrec/fedrec.h"

#define FEDRECI_STATUS_STAGE_NAME 24

typedef struct fedreci_stats fedreci_stats;

/* A consistent copy of the counters. */
/* The engine's resource-limit figures (fedreci_coord_status), shown on
 * /metrics as fedrec_connections_open, fedrec_connections_refused_total
 * {reason="per_address"|"total"}, fedrec_checkins_refused_total
 * {reason="new_ids_per_address"|"new_ids_global"}, fedrec_registry_clients
 * fedrec_registry_evicted_total, fedrec_clients_benched and
 * fedrec_clients_benched_total (and clients_benched on /status). */
typedef struct fedreci_stats_limits {
    uint32_t connections;
    uint64_t refused_per_address, refused_total;
    uint64_t new_ids_refused_addr, new_ids_refused;
    uint32_t registry_clients;
    uint64_t evicted;
    uint32_t benched; /* clients benched now */
    uint64_t benches; /* benches handed out since start */
} fedreci_stats_limits;

/* One finished round as the status page lists it. */
typedef struct fedreci_stats_round {
    uint64_t round_id;
    int completed;                        /* 1 completed, 0 aborted */
    int64_t started_ms, ended_ms;         /* Unix ms */
    uint32_t cohort, survivors;           /* invited; masked inputs summed */
    uint32_t dropped[FEDRECI_DB_STAGES];  /* lost per stage */
    uint32_t stage_ms[FEDRECI_DB_STAGES]; /* wall time per stage */
    uint64_t model_version;               /* committed (completed), else 0 */
    char reason[96];                      /* why it aborted ("" when completed) */
} fedreci_stats_round;

/* Rounds kept for the status page (the chart; the table shows the last 12). */
#define FEDRECI_STATS_HISTORY 48

/* The settings the status page shows (fedreci_stats_set_info). */
typedef struct fedreci_stats_info {
    uint64_t catalog_id;     /* catalog version in the database */
    uint32_t catalog_items;  /* rows (active and retired) */
    uint32_t catalog_active; /* recommendable products */
    uint32_t factors;        /* k of the item factors */
    uint32_t cohort, min_cohort;
    uint32_t neighbors; /* SecAgg+ k; 0 = classic SecAgg (every other member) */
    uint32_t threshold; /* Shamir t; 0 = ceil(2k/3) per round */
    double clip, scale;
    int plaintext; /* 1: some listener is plaintext tcp:// */
    char db[256];  /* database path */
} fedreci_stats_info;
/* Differential privacy (fedreci_coord_status), shown on /status
 * ("differential_privacy": "skellam" or "none", and the dp_* keys) and on
 * /metrics (fedrec_dp_enabled, fedrec_dp_epsilon_budget, fedrec_dp_delta,
 * fedrec_dp_epsilon_spent, fedrec_dp_epsilon_per_round,
 * fedrec_dp_rounds_spent_total, fedrec_dp_noise_std,
 * fedrec_dp_budget_exhausted). */
typedef struct fedreci_stats_dp {
    int on;
    double epsilon, delta, spent, eps_round, noise_std;
    uint64_t rounds;
    uint32_t min_survivors;
    int exhausted;
    char refusal[240];
} fedreci_stats_dp;

/* SecAgg groups (issue 20). role 0: a single coordinator (nothing shown);
 * 1: a master, with its aggregators; 2: an aggregator. On /status as
 * "groups": {...} and "aggregators": [...]; on /metrics as
 * fedrec_groups{state="assigned"|"counted"|"failed"} and
 * fedrec_aggregators_ready (gauges, the current or last round),
 * fedrec_aggregator_requests_refused_total (counter), and per aggregator
 * (label aggregator="first 16 hex digits of its key"):
 * fedrec_aggregator_up, fedrec_aggregator_last_survivors (gauges) and
 * fedrec_aggregator_groups_total{outcome="counted"|"failed"} (counter); an
 * aggregator shows fedrec_master_connected (gauge),
 * fedrec_aggregator_groups_total{outcome="run"|"completed"|"counted"|
 * "failed"} and fedrec_master_replies_refused_total (counters). */
#define FEDRECI_STATS_MAX_AGGS 64
typedef struct fedreci_stats_groups {
    int role;
    /* master */
    uint32_t aggregators_ready, groups, groups_done, groups_failed;
    uint64_t agg_refused;
    size_t n_aggs;
    fedreci_coord_agg_status aggs[FEDRECI_STATS_MAX_AGGS];
    /* aggregator */
    int master_connected;
    uint64_t agg_groups_run, agg_groups_completed, agg_groups_counted, agg_groups_failed;
    uint64_t replies_refused; /* master replies refused (not signed by the master for the
                                 request: forged, misdirected or replayed) */
    uint64_t last_round;
    uint32_t last_members, last_survivors;
} fedreci_stats_groups;

typedef struct fedreci_stats_snapshot {
    int has_round;                         /* a round has begun since start */
    uint64_t round_id;                     /* current (or last) round */
    char stage[FEDRECI_STATUS_STAGE_NAME]; /* "idle", "checkin", "advertise", ... */
    uint64_t model_version;                /* served model version */
    uint32_t connected_clients;            /* known clients on a connection open now */
    uint32_t known_clients;                /* clients registered (ever checked in) */
    uint32_t waiting_clients;              /* check-ins held for the next cohort */
    uint64_t rounds_completed;
    uint64_t rounds_aborted;
    uint32_t last_participants;              /* survivors of the last finished round */
    uint64_t dropouts[FEDRECI_DB_STAGES];    /* totals per stage */
    double stage_seconds[FEDRECI_DB_STAGES]; /* summed stage durations, seconds */
    uint64_t stage_count[FEDRECI_DB_STAGES]; /* rounds that contributed a duration */
    uint64_t bytes_in;
    uint64_t bytes_out;
    double uptime_seconds;
    fedreci_stats_limits limits; /* resource limits: gauges and refusal counters */
    fedreci_stats_dp dp;         /* differential privacy */
    fedreci_stats_groups groups; /* SecAgg groups (role 0: none) */
    char problem[200];           /* why /healthz fails; "" = healthy */
    /* the process, read by fedreci_stats_snapshot_get (-1 when unknown) */
    int64_t resident_bytes;    /* resident set size (/proc/self/statm) */
    int64_t open_fds;          /* open file descriptors (/proc/self/fd) */
    double start_time_seconds; /* when fedreci_stats_create ran, Unix seconds */
    fedreci_stats_info info;   /* settings (fedreci_stats_set_info) */
    /* the last n_history finished rounds, oldest first */
    fedreci_stats_round history[FEDRECI_STATS_HISTORY];
    uint32_t n_history;
} fedreci_stats_snapshot;

/* Names of the stages as used in labels: "advertise", "share_keys",
 * "masked_input", "unmask". stage < FEDRECI_DB_STAGES. */
const char *fedreci_stats_stage_name(unsigned stage);

/* Errors: FEDREC_ERR_NOMEM. */
FEDREC_NODISCARD fedrec_err fedreci_stats_create(fedreci_stats **out);
void fedreci_stats_destroy(fedreci_stats *st);

/* Round lifecycle, called from the engine hooks. round_begin sets the round
 * id and stage "advertise" (the first stage opens as the round starts);
 * stage_closed(s) the stage after s ("commit" after the unmask stage).
 * round_end adds the record's counts: completed or aborted, participants =
 * survivors, dropouts per stage, stage durations (a stage with stage_ms ==
 * 0 never opened and is not counted), and the round's bytes_in / bytes_out;
 * the stage becomes "idle", and the round joins the history (its abort
 * reason from the metrics JSON "reason" when there is one). */
void fedreci_stats_round_begin(fedreci_stats *st, uint64_t round_id);
void fedreci_stats_stage_closed(fedreci_stats *st, uint64_t round_id, int stage);
void fedreci_stats_round_end(fedreci_stats *st, const fedreci_round_record *r);

/* Adds a round read back from the database to the history only (at start,
 * oldest first; the counters are since start and do not change). */
void fedreci_stats_history_add(fedreci_stats *st, const fedreci_round_record *r);

/* The settings the status page shows (copied). */
void fedreci_stats_set_info(fedreci_stats *st, const fedreci_stats_info *info);
/* Clients registered in the database, and those waiting for a cohort. */
void fedreci_stats_set_clients(fedreci_stats *st, uint32_t known, uint32_t waiting);

/* The current stage name (copied, truncated to 23 bytes). */
void fedreci_stats_set_stage(fedreci_stats *st, const char *stage);
void fedreci_stats_set_model_version(fedreci_stats *st, uint64_t version);
void fedreci_stats_set_connected(fedreci_stats *st, uint32_t n);
/* What makes the daemon unhealthy (copied, cut to 199 bytes), or NULL / ""
 * when it is healthy again. */
void fedreci_stats_set_health(fedreci_stats *st, const char *problem);
/* Traffic outside the rounds' own accounting (e.g. model downloads). */
/* Replaces the resource-limit figures. */
void fedreci_stats_set_limits(fedreci_stats *st, const fedreci_stats_limits *l);
/* Replaces the SecAgg groups figures. */
void fedreci_stats_set_groups(fedreci_stats *st, const fedreci_stats_groups *g);
void fedreci_stats_add_bytes(fedreci_stats *st, uint64_t in, uint64_t out);
/* Replaces the differential-privacy figures. */
void fedreci_stats_set_dp(fedreci_stats *st, const fedreci_stats_dp *dp);

void fedreci_stats_snapshot_get(fedreci_stats *st, fedreci_stats_snapshot *out);

/* Renders the /status JSON or the /metrics text of a snapshot into buf (cap
 * bytes, NUL-terminated). Returns the length, or FEDREC_ERR_TOO_BIG when it
 * does not fit (*len untouched). */
FEDREC_NODISCARD fedrec_err fedreci_stats_format_status(const fedreci_stats_snapshot *s, char *buf,
                                                        size_t cap, size_t *len);
FEDREC_NODISCARD fedrec_err fedreci_stats_format_metrics(const fedreci_stats_snapshot *s, char *buf,
                                                         size_t cap, size_t *len);

/* Renders the status page (GET /): one HTML5 document with its CSS inline
 * and no script, font, image or other external resource; the participation
 * chart is inline SVG. Every string that comes from data (the health
 * problem, abort reasons, the database path, the version) is HTML-escaped.
 * Same contract as fedreci_stats_format_status (about 40 KB for a full
 * history). */
FEDREC_NODISCARD fedrec_err fedreci_stats_format_html(const fedreci_stats_snapshot *s, char *buf,
                                                      size_t cap, size_t *len);

/* ---- the HTTP server ------------------------------------------------------ */

typedef struct fedreci_status fedreci_status;

/* Starts serving st at url ("http://127.0.0.1:8080"; port 0 picks a free
 * port, see fedreci_status_port). st is borrowed and must outlive the
 * server. Errors: FEDREC_ERR_INVALID (bad URL, not http://),
 * FEDREC_ERR_TRANSPORT (cannot bind, with nng's message), FEDREC_ERR_NOMEM. */
FEDREC_NODISCARD fedrec_err fedreci_status_open(fedreci_status **out, const char *url,
                                                fedreci_stats *st);

/* fn(arg, st) runs on nng's thread before each answer to bring the live
 * figures of st up to date (the daemon asks the engine and checks its
 * health there). Set it before the first request can arrive, or not at
 * all (NULL: none). */
void fedreci_status_set_refresh(fedreci_status *s, void (*fn)(void *arg, fedreci_stats *st),
                                void *arg);

/* The TCP port the server listens on. */
uint16_t fedreci_status_port(const fedreci_status *s);

/* Stops the server (waits for running handlers) and frees it. NULL is a
 * no-op. */
void fedreci_status_close(fedreci_status *s);

#endif /* FEDREC_COORDINATOR_STATUS_H */
