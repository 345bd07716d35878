/*
 * fedrec-coordinator: the retailer's daemon. Reads the configuration, opens
 * the database, serves the last committed model (or a fresh one for the
 * catalog), runs the round engine (engine.h) with hooks that persist every
 * committed model and round (persist.h), serves the status page, /healthz,
 * /status and /metrics (status.h), reloads the catalog and the TLS
 * certificate on SIGHUP, and on SIGTERM/SIGINT stops accepting, aborts the
 * current round and closes the database. Nothing polls: rounds are followed
 * through the engine's hooks, health and gauges are computed when the
 * status server is asked, and the main thread sleeps until a signal.
 * See docs/operations.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>
#include <systemd/sd-daemon.h>

#include <fcntl.h>

#include "aggregator.h"
#include "bootstrap.h"
#include "catalog_cmd.h"
#include "config.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/util.h"
#include "db.h"
#include "engine.h"
#include "persist.h"
#include "pidlock.h"
#include "status.h"

typedef struct daemon_ctx {
    const fedreci_config *cfg;
    fedreci_persist *persist;
    fedreci_coord *coord;
    fedreci_stats *stats;
    atomic_int write_failed;   /* the last database write from a hook failed */
    atomic_uint abort_streak;  /* rounds aborted in a row (from on_round_done) */
    atomic_ullong model_bytes; /* size of one model version (free-space check) */
    pthread_mutex_t health_mu; /* health below, checked from hooks and handlers */
    char health[200];          /* the problem /healthz reports, "" = healthy */
    int health_kind;           /* its kind (health_check), what a log line follows */
    uint64_t first_round;      /* at start: the first round this run runs */
    uint32_t restored_benched; /* at start: clients restored still benched */
} daemon_ctx;

static void health_update(daemon_ctx *d);

static fedrec_err hook_model(void *arg, uint64_t round_id, uint64_t version, const float *y,
                             uint32_t n_items, uint32_t k)
{
    daemon_ctx *d = arg;
    fedrec_err e = fedreci_persist_model(d->persist, round_id, version, y, n_items, k);
    atomic_store(&d->write_failed, e != FEDREC_OK);
    return e;
}

static fedrec_err hook_dp(void *arg, uint64_t round_id, const fedreci_dp_event *ev,
                          double eps_round, double eps_cumulative, double delta)
{
    daemon_ctx *d = arg;
    fedrec_err e =
        fedreci_persist_dp_spent(d->persist, round_id, ev, eps_round, eps_cumulative, delta);
    atomic_store(&d->write_failed, e != FEDREC_OK);
    return e;
}

/* "key": [the first 8 of ids[n] as 16 hex digits each] into w. */
static void json_ids(fedreci_json *w, const char *key, const uint64_t *ids, uint32_t n)
{
    fedreci_json_key(w, key);
    fedreci_json_arr_begin(w);
    for (uint32_t i = 0; i < n && i < 8; i++) {
        char id[17];
        snprintf(id, sizeof id, "%016llx", (unsigned long long)ids[i]);
        fedreci_json_str(w, id);
    }
    fedreci_json_arr_end(w);
}

/* The round's metrics as a JSON object in out (cap bytes). An abort reason
 * (the engine's own short text) is cut to 255 bytes, and halved again until
 * the object fits. */
static void round_metrics(const fedreci_round_stats *st, char *out, size_t cap)
{
    const char *why = st->abort_reason ? st->abort_reason : "";
    int keep = (int)strnlen(why, 255);
    for (;;) {
        char cut[256];
        snprintf(cut, sizeof cut, "%.*s", keep, why);
        fedreci_json w;
        fedreci_json_init_mem(&w, out, cap, FEDRECI_JSON_COMPACT);
        fedreci_json_obj_begin(&w);
        fedreci_json_ku64(&w, "advertised", st->advertised);
        fedreci_json_ku64(&w, "shared", st->shared);
        fedreci_json_ku64(&w, "unmasked", st->unmasked);
        fedreci_json_kdouble(&w, "total_weight", "%.0f", st->total_weight);
        if (!st->completed)
            fedreci_json_kstr(&w, "reason", cut);
        if (st->dp) {
            fedreci_json_kbool(&w, "dp_spent", st->dp_charged);
            fedreci_json_kdouble(&w, "dp_epsilon_round", "%.6f",
                                 st->dp_charged ? st->dp_eps_round : 0.0);
            fedreci_json_kdouble(&w, "dp_epsilon_cumulative", "%.6f", st->dp_eps_cumulative);
        }
        /* the BLAKE2b-256 of the unmasked ring sum (d words, little-endian)
           lets an auditor check a round's sum against the clients' inputs */
        if (st->completed && st->sum && st->params) {
            uint8_t h[32];
            char hex[65];
            crypto_generichash(h, sizeof h, (const uint8_t *)st->sum,
                               (size_t)st->params->d * sizeof *st->sum, NULL, 0);
            sodium_bin2hex(hex, sizeof hex, h, sizeof h);
            fedreci_json_kstr(&w, "sum_b2b", hex);
        }
        /* SecAgg groups: the master sum is d int64 words (little-endian in
           the hash input, as on every platform fedrec supports) */
        if (st->groups) {
            fedreci_json_ku64(&w, "groups", st->groups);
            fedreci_json_ku64(&w, "groups_counted", st->groups_done);
        }
        if (st->completed && st->sum64 && st->params) {
            crypto_generichash_state hs;
            uint8_t h[32];
            char hex[65];
            crypto_generichash_init(&hs, NULL, 0, sizeof h);
            for (uint32_t i = 0; i < st->params->d; i++) {
                uint8_t le[8];
                uint64_t v = (uint64_t)st->sum64[i];
                for (int b = 0; b < 8; b++)
                    le[b] = (uint8_t)(v >> (8 * b));
                crypto_generichash_update(&hs, le, sizeof le);
            }
            crypto_generichash_final(&hs, h, sizeof h);
            sodium_bin2hex(hex, sizeof hex, h, sizeof h);
            fedreci_json_kstr(&w, "sum64_b2b", hex);
        }
        if (st->n_culprits)
            json_ids(&w, "culprits", st->culprit_ids, st->n_culprits);
        if (st->seed_attempts > 1) {
            fedreci_json_ku64(&w, "seed_attempts", st->seed_attempts);
            json_ids(&w, "seed_dropped", st->seed_dropped_ids, st->n_seed_dropped);
        }
        /* each step's withholders under its own key (a master round's
           groups may have aborted at different steps), 8 at most each */
        static const char *const wkey[3] = {"seed_withheld", "consistency_withheld",
                                            "unmask_withheld"};
        for (int k = 0; k < 3; k++) {
            uint32_t shown = 0;
            for (uint32_t i = 0; i < st->n_withheld && shown < 8; i++) {
                int step = st->withheld_steps ? st->withheld_steps[i] : st->withheld_step;
                if (step != k)
                    continue;
                if (shown++ == 0) {
                    fedreci_json_key(&w, wkey[k]);
                    fedreci_json_arr_begin(&w);
                }
                char id[17];
                snprintf(id, sizeof id, "%016llx", (unsigned long long)st->withheld_ids[i]);
                fedreci_json_str(&w, id);
            }
            if (shown)
                fedreci_json_arr_end(&w);
        }
        fedreci_json_obj_end(&w);
        if (fedreci_json_finish(&w, NULL, NULL) == FEDREC_OK || keep == 0)
            return;
        keep /= 2;
    }
}

static void hook_round(void *arg, const fedreci_round_stats *st)
{
    daemon_ctx *d = arg;
    fedreci_round_record r = {0};
    r.round_id = st->round_id;
    r.status = st->completed ? FEDRECI_ROUND_COMPLETED : FEDRECI_ROUND_ABORTED;
    r.cohort = st->cohort;
    r.survivors = st->survivors;
    for (int i = 0; i < FEDRECI_DB_STAGES; i++) {
        r.dropped[i] = st->dropped[i];
        r.stage_ms[i] = st->stage_ms[i] > 0 ? (uint32_t)(st->stage_ms[i] + 0.5) : 0;
    }
    r.bytes_in = st->bytes_in;
    r.bytes_out = st->bytes_out;
    r.model_version = st->completed ? st->model_version : 0;
    round_metrics(st, r.metrics_json, sizeof r.metrics_json);
    if (st->completed)
        atomic_store(&d->abort_streak, 0);
    else
        atomic_fetch_add(&d->abort_streak, 1);
    /* logged by persist on failure; the hook has no way to report it */
    atomic_store(&d->write_failed, fedreci_persist_round(d->persist, &r) != FEDREC_OK);
    health_update(d);
}

/* The engine is about to start a round: its running row and its line first
 * (a failure cancels the round, see engine.h). */
static fedrec_err hook_round_start(void *arg, const fedreci_round_begin *b)
{
    daemon_ctx *d = arg;
    fedrec_err e = fedreci_persist_round_begin(d->persist, b);
    atomic_store(&d->write_failed, e != FEDREC_OK);
    if (e)
        health_update(d);
    return e;
}

static void hook_stage_closed(void *arg, uint64_t round_id, int stage, uint32_t n_in,
                              uint32_t n_expected, double ms)
{
    daemon_ctx *d = arg;
    (void)n_in;
    (void)n_expected;
    (void)ms; /* the engine logs the stage's line */
    fedreci_stats_stage_closed(d->stats, round_id, stage);
}

static void hook_client(void *arg, uint64_t client_id, const uint8_t identity_pk[32], int opted_in)
{
    daemon_ctx *d = arg;
    if (fedreci_persist_client(d->persist, client_id, identity_pk, opted_in) != FEDREC_OK)
        return; /* logged by persist */
}

static void hook_excluded(void *arg, uint64_t client_id, uint64_t round_id)
{
    daemon_ctx *d = arg;
    if (fedreci_persist_exclude(d->persist, client_id, round_id) != FEDREC_OK)
        return; /* logged by persist */
}

static void hook_benched(void *arg, uint64_t client_id, uint64_t round_id, uint32_t strikes,
                         uint64_t benched_until, const char *reason)
{
    daemon_ctx *d = arg;
    if (fedreci_persist_bench(d->persist, client_id, round_id, strikes, benched_until, reason) !=
        FEDREC_OK)
        return; /* logged by persist */
}

static fedrec_err restore_client(void *arg, const fedreci_client_record *c)
{
    daemon_ctx *d = arg;
    fedrec_err e = fedreci_coord_register(d->coord, c->client_id, c->identity_pk, !c->opted_out);
    if (!e && c->excluded_round)
        e = fedreci_coord_exclude(d->coord, c->client_id, c->excluded_round);
    if (!e && (c->bench_strikes || c->benched_until))
        e = fedreci_coord_bench(d->coord, c->client_id, c->bench_strikes, c->benched_until,
                                c->bench_reason);
    if (!e && c->benched_until >= d->first_round && !c->excluded_round)
        d->restored_benched++;
    return e;
}

/* Why the daemon is unhealthy, into why (cap bytes), or "" when healthy:
 * the last database write failed (returns 1), the database's filesystem has
 * less room than a model version needs (twice its size, for the version and
 * its WAL copy, plus 1 MiB; 2), or abort_streak rounds aborted in a row (3);
 * 0 when healthy. */
static int health_check(const fedreci_config *cfg, daemon_ctx *d, char *why, size_t cap)
{
    why[0] = '\0';
    uint64_t model_bytes = atomic_load(&d->model_bytes);
    unsigned streak = atomic_load(&d->abort_streak);
    if (atomic_load(&d->write_failed)) {
        snprintf(why, cap, "database %s: the last write failed (see the log)", cfg->db_path);
        return 1;
    }
    struct statvfs fs;
    uint64_t need = 2 * model_bytes + (1u << 20);
    if (statvfs(cfg->db_path, &fs) == 0) {
        uint64_t avail = (uint64_t)fs.f_bavail * fs.f_frsize;
        if (avail < need) {
            snprintf(why, cap,
                     "database %s: %llu bytes free on its filesystem, a model version needs %llu",
                     cfg->db_path, (unsigned long long)avail, (unsigned long long)need);
            return 2;
        }
    }
    if (cfg->abort_streak && streak >= cfg->abort_streak) {
        snprintf(why, cap, "%u rounds aborted in a row (abort-streak %u)", streak,
                 cfg->abort_streak);
        return 3;
    }
    return 0;
}

/* Checks the health now and shows it on /healthz. A change of its kind is
 * logged once (WARN unhealthy: ..., INFO healthy again); a problem that only
 * changes its figures (the free bytes of a filling disk, a longer abort
 * streak) is not logged again. Called after every round and before every
 * answer of the status server. */
static void health_update(daemon_ctx *d)
{
    char why[200];
    int kind = health_check(d->cfg, d, why, sizeof why);
    pthread_mutex_lock(&d->health_mu);
    if (kind != d->health_kind) {
        if (kind)
            fedreci_log(FEDRECI_LOG_WARN, -1, "unhealthy: %s", why);
        else
            fedreci_log(FEDRECI_LOG_INFO, -1, "healthy again");
        d->health_kind = kind;
    }
    if (strcmp(why, d->health) != 0) {
        snprintf(d->health, sizeof d->health, "%s", why);
        fedreci_stats_set_health(d->stats, why);
    }
    pthread_mutex_unlock(&d->health_mu);
}

/* The master's groups and aggregators into the metrics (nothing for a
 * single coordinator). */
static void groups_stats(const fedreci_config *cfg, fedreci_coord *c,
                         const fedreci_coord_status *cs, fedreci_stats *stats)
{
    if (fedreci_config_role(cfg) != FEDRECI_ROLE_MASTER)
        return;
    fedreci_stats_groups *g = calloc(1, sizeof *g); /* large: not on the stack */
    if (!g)
        return;
    g->role = 1;
    g->aggregators_ready = cs->aggregators_ready;
    g->groups = cs->groups;
    g->groups_done = cs->groups_done;
    g->groups_failed = cs->groups_failed;
    g->agg_refused = cs->agg_refused;
    g->n_aggs = fedreci_coord_aggregators(c, g->aggs, FEDRECI_STATS_MAX_AGGS);
    if (g->n_aggs > FEDRECI_STATS_MAX_AGGS)
        g->n_aggs = FEDRECI_STATS_MAX_AGGS;
    fedreci_stats_set_groups(stats, g);
    free(g);
}

/* The status server asks: the engine's live figures into the stats, and the
 * health. (Runs on nng's HTTP thread, never inside an engine hook.) */
static void status_refresh(void *arg, fedreci_stats *stats)
{
    daemon_ctx *d = arg;
    fedreci_coord_status cs;
    fedreci_coord_get_status(d->coord, &cs);
    fedreci_stats_set_connected(stats, cs.clients_connected);
    fedreci_stats_set_clients(stats, (uint32_t)fedreci_persist_clients(d->persist),
                              cs.clients_waiting);
    fedreci_stats_limits lim = {cs.connections,          cs.refused_per_address, cs.refused_total,
                                cs.new_ids_refused_addr, cs.new_ids_refused,     cs.clients_known,
                                cs.clients_evicted,      cs.clients_benched,     cs.benches};
    fedreci_stats_set_limits(stats, &lim);
    fedreci_stats_dp sdp = {
        cs.dp,           cs.dp_epsilon, cs.dp_delta,         cs.dp_spent,     cs.dp_eps_round,
        cs.dp_noise_std, cs.dp_rounds,  cs.dp_min_survivors, cs.dp_exhausted, ""};
    snprintf(sdp.refusal, sizeof sdp.refusal, "%s", cs.dp_refusal);
    fedreci_stats_set_dp(stats, &sdp);
    groups_stats(d->cfg, d->coord, &cs, stats);
    health_update(d);
}

static int fail(const char *what)
{
    fedreci_log(FEDRECI_LOG_ERROR, -1, "%s: %s", what, fedrec_errmsg());
    return 1;
}

/* The write end of the signal pipe (-1 before it exists). */
static volatile int signal_fd = -1;

/* SIGTERM, SIGINT and SIGHUP (and SIGUSR1, raised when the engine has run
 * its last round) are written as one byte to a pipe that the main thread
 * sleeps on (a "self-pipe"): whichever thread the kernel picks runs this
 * handler - nng's threads block these signals, but threads that libraries
 * start before main (OpenBLAS's pool) keep the default mask - and the main
 * thread wakes at once. Async-signal-safe: write(2) only. */
static void on_signal(int sig)
{
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    if (signal_fd >= 0 && write(signal_fd, &b, 1) < 0) {
        /* the pipe is full: signals already wait to be read */
    }
    errno = saved;
}

/* The line that says the daemon serves: version, every listener with the
 * port the kernel bound, the status server. */
static void log_ready(const fedreci_config *cfg, const fedreci_coord *c, const fedreci_status *http)
{
    char line[900] = "";
    size_t len = 0;
    for (uint32_t i = 0; i < cfg->n_listen && len < sizeof line; i++) {
        int port = fedreci_coord_port(c, i);
        int n = port > 0 ? snprintf(line + len, sizeof line - len, "%s%s (port %d)", i ? ", " : "",
                                    cfg->listen[i], port)
                         : snprintf(line + len, sizeof line - len, "%s%s", i ? ", " : "",
                                    cfg->listen[i]);
        if (n > 0)
            len += (size_t)n;
    }
    if (http)
        fedreci_log(FEDRECI_LOG_INFO, -1,
                    "fedrec-coordinator %s ready: clients on %s; status server %s (port %u)",
                    fedrec_version(), line, cfg->http, fedreci_status_port(http));
    else
        fedreci_log(FEDRECI_LOG_INFO, -1,
                    "fedrec-coordinator %s ready: clients on %s; no status server",
                    fedrec_version(), line);
}

/* --check-config: the checks of a start that need no database or network
 * (fedreci_config_check has passed), then the effective configuration on
 * stdout. Exit status 0, or 2 with the problem on stderr. */
static int check_config(const fedreci_config *cfg)
{
    if (cfg->catalog && access(cfg->catalog, R_OK) != 0) {
        fprintf(stderr,
                "fedrec-coordinator: configuration invalid: catalog: '%s': cannot read: %s\n",
                cfg->catalog, strerror(errno));
        return 2;
    }
    char line[2048];
    size_t need = fedreci_config_format(cfg, line, sizeof line);
    printf("fedrec-coordinator: configuration ok%s%s\n%s%s\n", cfg->config_path ? ": " : "",
           cfg->config_path ? cfg->config_path : "", line, need >= sizeof line ? "..." : "");
    return 0;
}

/* The startup line: version, pid and the effective configuration. */
static void log_starting(const fedreci_config *cfg)
{
    char line[900];
    size_t need = fedreci_config_format(cfg, line, sizeof line);
    fedreci_log(FEDRECI_LOG_INFO, -1, "fedrec-coordinator %s starting (pid %ld): %s%s",
                fedrec_version(), (long)getpid(), line, need >= sizeof line ? "..." : "");
}

/* The engine's configuration from the daemon's (everything but the values
 * read from the database: first round id and n_train). */
static void engine_config(const fedreci_config *cfg, fedreci_coord_config *cc)
{
    fedreci_coord_config_default(cc);
    cc->listen_urls = (const char *const *)cfg->listen;
    cc->n_listen = cfg->n_listen;
    cc->tls_cert_file = cfg->tls_cert;
    cc->tls_key_file = cfg->tls_key;
    cc->cohort_size = cfg->cohort;
    cc->min_cohort = cfg->min_cohort;
    cc->checkin_quorum = cfg->cohort;
    /* Enough contexts to hold every member's long poll (engine.h). */
    if ((uint64_t)cfg->cohort + cfg->cohort / 8 + 64 > cc->n_contexts)
        cc->n_contexts = cfg->cohort + cfg->cohort / 8 + 64;
    cc->checkin_window_ms = cfg->checkin_ms;
    cc->neighbors = cfg->neighbors;
    cc->threshold = cfg->threshold;
    cc->seed_retries = cfg->seed_retries;
    cc->clip = cfg->clip;
    cc->scale = cfg->scale;
    for (int i = 0; i < 4; i++)
        cc->stage_ms[i] = cfg->deadline_ms[i];
    cc->seed = cfg->seed;
    cc->backoff_after = cfg->abort_streak;
    cc->backoff_ms = cfg->backoff_ms;
    cc->backoff_max_ms = cfg->backoff_max_ms;
    cc->max_rounds = cfg->rounds > UINT32_MAX ? UINT32_MAX : (uint32_t)cfg->rounds;
    cc->max_connections = cfg->max_connections;
    cc->max_conns_per_addr = cfg->max_conns_per_addr;
    cc->new_ids_addr_burst = cfg->new_ids_addr_burst;
    cc->new_ids_addr_rate = cfg->new_ids_addr_rate;
    cc->new_ids_burst = cfg->new_ids_burst;
    cc->new_ids_rate = cfg->new_ids_rate;
    cc->max_clients = cfg->max_clients;
    cc->bench_max_rounds = cfg->bench_max_rounds;
    cc->opt.kind = fedreci_config_step(cfg) == FEDRECI_OPT_ALS ? FEDRECI_OPT_ALS : FEDRECI_OPT_ADAM;
    cc->reshuffle = fedreci_config_reshuffle(cfg) == 1;
    cc->x_bound = cfg->x_bound;
    cc->opt.lr = cfg->lr;
    cc->opt.beta1 = cfg->beta1;
    cc->opt.lambda = cfg->lambda;
    if (cfg->dp_epsilon > 0) {
        cc->dp.epsilon = cfg->dp_epsilon;
        cc->dp.delta = cfg->dp_delta;
        cc->dp.rounds = cfg->dp_rounds             ? cfg->dp_rounds
                        : cfg->rounds > UINT32_MAX ? UINT32_MAX
                                                   : (uint32_t)cfg->rounds;
        cc->dp.min_survivors = cfg->dp_min_survivors;
        cc->dp.row_bound = cfg->dp_row_bound;
        cc->dp.gram_weight = cfg->dp_gram_weight;
        cc->dp.gram_floor = cfg->dp_gram_floor;
        cc->dp.lambda = cfg->lambda;
    }
    cc->role = fedreci_config_role(cfg);
    if (cc->role == FEDRECI_ROLE_MASTER) {
        cc->agg_listen_url = cfg->agg_listen;
        cc->group_size = cfg->group_size;
        cc->min_groups = cfg->min_groups;
    }
}

/* Waits for the engine's last round (--rounds) and wakes the main thread
 * (SIGUSR1 through the signal pipe). */
static void *last_round_watch(void *arg)
{
    daemon_ctx *d = arg;
    if (fedreci_coord_wait(d->coord, -1) == FEDREC_OK) {
        /* a spent privacy budget stops the rounds, not the daemon: models
           and /status stay served until SIGTERM */
        fedreci_coord_status cs;
        fedreci_coord_get_status(d->coord, &cs);
        if (!cs.dp_exhausted)
            on_signal(SIGUSR1);
    }
    return NULL;
}

static void reload(daemon_ctx *d);

/* Serves until SIGTERM/SIGINT or the engine's last round (--rounds),
 * reloading on SIGHUP; sleeps on the signal pipe (read end fd) meanwhile. */
static void serve(daemon_ctx *d, int fd)
{
    for (;;) {
        unsigned char b;
        ssize_t n = read(fd, &b, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fedreci_log(FEDRECI_LOG_ERROR, -1, "signal pipe: %s: stopping",
                        n < 0 ? strerror(errno) : "closed");
            break;
        }
        int sig = b;
        if (sig == SIGHUP) {
            reload(d);
            continue;
        }
        sd_notify(0, "STOPPING=1");
        if (sig == SIGUSR1) {
            fedreci_coord_status cs;
            fedreci_coord_get_status(d->coord, &cs);
            fedreci_log(FEDRECI_LOG_INFO, -1, "%llu round(s) run: stopping",
                        (unsigned long long)(cs.rounds_completed + cs.rounds_aborted));
        } else {
            fedreci_log(FEDRECI_LOG_INFO, -1, "%s: stopping",
                        sig == SIGTERM ? "SIGTERM" : "SIGINT");
        }
        break;
    }
}

/* The catalog code of every model row (pointers into boot's catalog), or
 * NULL (logged) when out of memory. The caller frees the array. */
static const char **item_codes(const fedreci_bootstrap *boot)
{
    const char **codes = calloc(boot->model.n_items ? boot->model.n_items : 1, sizeof *codes);
    if (!codes) {
        fedreci_log(FEDRECI_LOG_ERROR, -1, "out of memory");
        return NULL;
    }
    for (uint32_t i = 0; i < boot->model.n_items; i++)
        codes[i] = fedreci_catalog_at(boot->catalog, i)->code;
    return codes;
}

/* Checks the database's integrity (logged if damaged) and closes it; NULL is
 * a no-op. */
static void close_db(fedreci_db *db)
{
    if (!db)
        return;
    int ok = 0;
    char msg[128] = "";
    if (fedreci_db_integrity_check(db, &ok, msg, sizeof msg) == FEDREC_OK && !ok)
        fedreci_log(FEDRECI_LOG_ERROR, -1, "database integrity_check: %s", msg);
    fedreci_db_close(db);
    fedreci_log(FEDRECI_LOG_INFO, -1, "database closed");
}

/* The engine's start or replacement model from a bootstrap result: codes
 * and retired rows are allocated into *codes / *retired (free both). */
static fedrec_err coord_model(const fedreci_bootstrap *boot, const char ***codes,
                              uint32_t **retired, size_t *n_retired, fedreci_coord_model *out)
{
    *codes = item_codes(boot);
    if (!*codes)
        return fedreci_error(FEDREC_ERR_NOMEM, "item codes: out of memory");
    fedrec_err e = fedreci_catalog_retired_rows(boot->catalog, retired, n_retired);
    if (e)
        return e;
    fedreci_coord_model m = {.version = boot->model.version,
                             .n_items = boot->model.n_items,
                             .k = boot->model.k,
                             .item_factors = boot->model.y,
                             .item_codes = *codes,
                             .retired_rows = *retired,
                             .n_retired = *n_retired};
    *out = m;
    return FEDREC_OK;
}

/* The settings the status page shows, for the catalog of boot. */
static void stats_info(const fedreci_config *cfg, const fedreci_bootstrap *boot,
                       fedreci_stats *stats)
{
    fedreci_stats_info in;
    memset(&in, 0, sizeof in);
    in.catalog_id = boot->catalog_id;
    in.catalog_items = fedreci_catalog_size(boot->catalog);
    in.catalog_active = fedreci_catalog_n_active(boot->catalog);
    in.factors = boot->model.k;
    in.cohort = cfg->cohort;
    in.min_cohort = cfg->min_cohort;
    in.neighbors = cfg->neighbors;
    in.threshold = cfg->threshold;
    in.clip = cfg->clip;
    in.scale = cfg->scale;
    for (uint32_t i = 0; i < cfg->n_listen; i++)
        in.plaintext |= strncmp(cfg->listen[i], "tcp://", 6) == 0;
    snprintf(in.db, sizeof in.db, "%s", cfg->db_path);
    fedreci_stats_set_info(stats, &in);
}

/* The last FEDRECI_STATS_HISTORY rounds of the round log into the status
 * page's history (oldest first); next is the id the next round gets. */
static void load_history(fedreci_db *db, uint64_t next, fedreci_stats *stats)
{
    uint64_t first = next > FEDRECI_STATS_HISTORY ? next - FEDRECI_STATS_HISTORY : 1;
    for (uint64_t id = first; id < next; id++) {
        fedreci_round_record r;
        if (fedreci_db_get_round(db, id, &r) == FEDREC_OK && r.status != FEDRECI_ROUND_RUNNING)
            fedreci_stats_history_add(stats, &r);
    }
}

/* SIGHUP: the TLS certificate and key files are read again (new
 * connections get them; open ones are kept), and the catalog file, when one
 * is configured, is merged between two rounds: a changed catalog commits a
 * grown model version that the engine serves from then on. Nothing is
 * dropped: connections, held check-ins and the client registry stay. */
static void reload(daemon_ctx *d)
{
    const fedreci_config *cfg = d->cfg;
    sd_notify(0, "RELOADING=1");
    fedreci_log(FEDRECI_LOG_INFO, -1, "SIGHUP: reloading%s%s%s",
                cfg->tls_cert ? " the TLS certificate" : "",
                cfg->tls_cert && cfg->catalog ? " and" : "",
                cfg->catalog ? " the catalog"
                             : (cfg->tls_cert ? ""
                                              : " nothing (no catalog file "
                                                "or TLS certificate set)"));
    if (cfg->tls_cert && fedreci_coord_reload_tls(d->coord))
        fedreci_log(FEDRECI_LOG_ERROR, -1, "SIGHUP: TLS certificate not reloaded: %s",
                    fedrec_errmsg());
    if (cfg->catalog) {
        /* between rounds: the new version must follow the one the last
           round committed, and a round's vector length is fixed */
        int limit = 1000;
        for (int i = 0; i < 4; i++)
            limit += (int)(cfg->deadline_ms[i] > 600000 ? 600000 : cfg->deadline_ms[i]);
        fedreci_bootstrap boot = {0};
        const char **codes = NULL;
        uint32_t *retired = NULL;
        size_t n_retired = 0;
        fedreci_coord_model m;
        if (fedreci_coord_hold(d->coord, limit)) {
            fedreci_log(FEDRECI_LOG_ERROR, -1, "SIGHUP: catalog not reloaded: %s", fedrec_errmsg());
        } else if (fedreci_persist_catalog_reload(d->persist, cfg->catalog, cfg->factors, cfg->seed,
                                                  &boot)) {
            fedreci_log(FEDRECI_LOG_ERROR, -1, "SIGHUP: catalog %s not reloaded: %s", cfg->catalog,
                        fedrec_errmsg());
        } else if (boot.file_unchanged) {
            fedreci_log(FEDRECI_LOG_INFO, -1,
                        "SIGHUP: catalog %s unchanged since its last merge: not merged again "
                        "(catalog %llu)",
                        cfg->catalog, (unsigned long long)boot.catalog_id);
        } else if (!boot.committed) {
            fedreci_log(FEDRECI_LOG_INFO, -1, "SIGHUP: catalog %s: no change (catalog %llu)",
                        cfg->catalog, (unsigned long long)boot.catalog_id);
        } else if (coord_model(&boot, &codes, &retired, &n_retired, &m) ||
                   fedreci_coord_set_model(d->coord, &m)) {
            /* committed but not served: the next start serves it */
            fedreci_log(FEDRECI_LOG_ERROR, -1,
                        "SIGHUP: model version %llu committed but not served: %s (restart to "
                        "serve it)",
                        (unsigned long long)boot.model.version, fedrec_errmsg());
        } else {
            fedreci_log(FEDRECI_LOG_INFO, -1,
                        "committed model version %llu (%u items, %u active, k = %u); catalog "
                        "%llu: +%u new, %u retired, %u reactivated",
                        (unsigned long long)boot.model.version, boot.model.n_items,
                        fedreci_catalog_n_active(boot.catalog), boot.model.k,
                        (unsigned long long)boot.catalog_id, boot.diff.added, boot.diff.retired,
                        boot.diff.reactivated);
            fedreci_stats_set_model_version(d->stats, boot.model.version);
            atomic_store(&d->model_bytes,
                         (unsigned long long)boot.model.n_items * boot.model.k * sizeof(float));
            stats_info(cfg, &boot, d->stats);
        }
        fedreci_coord_release(d->coord);
        free(codes);
        free(retired);
        fedreci_bootstrap_clear(&boot);
    }
    sd_notify(0, "READY=1");
}

/* The Ed25519 key of a master or an aggregator from its identity-key file
 * (64 hex digits: the seed), made (mode 0600) when the file does not exist;
 * its public key is logged with what to do with it (tell). sk: 64 bytes. */
static int identity_key(const char *path, uint8_t sk[64], const char *role, const char *tell)
{
    uint8_t seed[32], pk[32];
    char hex[65];
    int fd = open(path, O_RDONLY);
    if (fd < 0 && errno == ENOENT) {
        randombytes_buf(seed, sizeof seed);
        sodium_bin2hex(hex, sizeof hex, seed, sizeof seed);
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
        if (fd < 0 || write(fd, hex, 64) != 64 || write(fd, "\n", 1) != 1 || fsync(fd) != 0) {
            fedreci_log(FEDRECI_LOG_ERROR, -1, "identity-key %s: cannot create: %s", path,
                        strerror(errno));
            if (fd >= 0)
                close(fd);
            sodium_memzero(seed, sizeof seed);
            sodium_memzero(hex, sizeof hex);
            return -1;
        }
        close(fd);
        fedreci_log(FEDRECI_LOG_INFO, -1, "identity-key %s: created", path);
    } else if (fd < 0) {
        fedreci_log(FEDRECI_LOG_ERROR, -1, "identity-key %s: %s", path, strerror(errno));
        return -1;
    } else {
        ssize_t n = read(fd, hex, 64);
        close(fd);
        size_t got = 0;
        if (n != 64 || sodium_hex2bin(seed, sizeof seed, hex, 64, NULL, &got, NULL) != 0 ||
            got != 32) {
            fedreci_log(FEDRECI_LOG_ERROR, -1,
                        "identity-key %s: not 64 hex digits (an Ed25519 seed)", path);
            sodium_memzero(hex, sizeof hex);
            return -1;
        }
    }
    crypto_sign_seed_keypair(pk, sk, seed);
    sodium_memzero(seed, sizeof seed);
    sodium_memzero(hex, sizeof hex);
    sodium_bin2hex(hex, sizeof hex, pk, sizeof pk);
    fedreci_log(FEDRECI_LOG_INFO, -1, "%s identity key %s (%s)", role, hex, tell);
    return 0;
}

static int run(const fedreci_config *cfg)
{
    int rc = 1;
    fedreci_pidlock *lock = NULL;
    fedreci_db *db = NULL;
    fedreci_bootstrap boot = {0};
    fedreci_stats *stats = NULL;
    fedreci_status *http = NULL;
    daemon_ctx d;
    memset(&d, 0, sizeof d);
    d.cfg = cfg;
    pthread_mutex_init(&d.health_mu, NULL);
    const char **codes = NULL;
    uint32_t *retired = NULL; /* retired catalog rows, sent with the model */
    size_t n_retired = 0;
    int pipefd[2] = {-1, -1};
    pthread_t watch;
    int watching = 0;
    static const int sigs_taken[] = {SIGTERM, SIGINT, SIGHUP, SIGUSR1};
    uint8_t(*agg_keys)[32] = NULL; /* master: the allowed aggregators */
    uint8_t master_sk[64];         /* master: signs its link replies */
    sodium_memzero(master_sk, sizeof master_sk);
    sigset_t sigs;
    sigemptyset(&sigs);
    for (size_t i = 0; i < sizeof sigs_taken / sizeof *sigs_taken; i++)
        sigaddset(&sigs, sigs_taken[i]);

    log_starting(cfg);
    /* one daemon per database: a second one would commit model versions
     * behind the first one's back (docs/operations.md, "One instance") */
    if (fedreci_pidlock_acquire(&lock, cfg->db_path)) {
        fail("refusing to start");
        goto out;
    }
    if (pipe(pipefd) != 0 || fcntl(pipefd[0], F_SETFD, FD_CLOEXEC) != 0 ||
        fcntl(pipefd[1], F_SETFD, FD_CLOEXEC) != 0 || fcntl(pipefd[1], F_SETFL, O_NONBLOCK) != 0) {
        fedreci_log(FEDRECI_LOG_ERROR, -1, "signal pipe: %s", strerror(errno));
        goto out;
    }
    signal_fd = pipefd[1];
    if (fedreci_db_open(&db, cfg->db_path)) {
        fail("database");
        goto out;
    }
    if (fedreci_db_recovered_rounds(db))
        fedreci_log(FEDRECI_LOG_WARN, -1, "%u round(s) interrupted by a crash marked aborted",
                    fedreci_db_recovered_rounds(db));
    if (fedreci_bootstrap_run(db, cfg->catalog, cfg->factors, cfg->seed, &boot)) {
        fail("catalog/model");
        goto out;
    }
    if (boot.file_unchanged)
        fedreci_log(FEDRECI_LOG_INFO, -1,
                    "catalog %s unchanged since its last merge: not merged again (a catalog "
                    "update made since from another file stays)",
                    cfg->catalog);
    fedreci_log(FEDRECI_LOG_INFO, -1,
                "%s model version %llu (%u items, %u active, k = %u); catalog %llu: +%u new, "
                "%u retired, %u reactivated",
                boot.committed ? "committed" : "serving", (unsigned long long)boot.model.version,
                boot.model.n_items, fedreci_catalog_n_active(boot.catalog), boot.model.k,
                (unsigned long long)boot.catalog_id, boot.diff.added, boot.diff.retired,
                boot.diff.reactivated);
    if (fedreci_stats_create(&stats) ||
        fedreci_persist_create(&d.persist, db, stats, boot.catalog_id)) {
        fail("startup");
        goto out;
    }
    d.stats = stats;
    fedreci_stats_set_model_version(stats, boot.model.version);
    atomic_store(&d.model_bytes,
                 (unsigned long long)boot.model.n_items * boot.model.k * sizeof(float));
    stats_info(cfg, &boot, stats);

    /* the engine's configuration from ours */
    fedreci_coord_config cc;
    engine_config(cfg, &cc);
    uint64_t n_clients = 0;
    if (fedreci_db_next_round_id(db, &cc.first_round_id) ||
        fedreci_db_client_count(db, &n_clients)) {
        fail("database");
        goto out;
    }
    load_history(db, cc.first_round_id, stats);
    uint64_t dp_spent_rounds = 0;
    fedreci_dp_accountant dp_spent;
    if (fedreci_db_dp_restore(db, &dp_spent, &dp_spent_rounds)) {
        fail("database");
        goto out;
    }
    if (cfg->dp_epsilon > 0) {
        cc.dp.spent = dp_spent;
        cc.dp.spent_rounds = dp_spent_rounds;
    } else {
        fedreci_log(FEDRECI_LOG_INFO, -1, "no differential privacy (dp-epsilon not set)%s",
                    dp_spent_rounds ? "; the database records earlier differentially private rounds"
                                    : "");
    }
    cc.opt.n_train = cfg->n_train
                         ? cfg->n_train
                         : (n_clients > cc.cohort_size ? (uint32_t)n_clients : cc.cohort_size);
    fedreci_coord_model start;
    if (coord_model(&boot, &codes, &retired, &n_retired, &start)) {
        fail("catalog");
        goto out;
    }
    fedreci_coord_hooks hooks = {.arg = &d,
                                 .on_round_done = hook_round,
                                 .on_model_committed = hook_model,
                                 .on_client_seen = hook_client,
                                 .on_client_excluded = hook_excluded,
                                 .on_client_benched = hook_benched,
                                 .on_round_start = hook_round_start,
                                 .on_stage_closed = hook_stage_closed,
                                 .on_dp_spent = hook_dp};
    /* The signals are handled through the signal pipe (on_signal), by this
     * thread: block them before nng starts its threads, which inherit the
     * mask, and unblock them here once everything is started. */
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    if (cc.role == FEDRECI_ROLE_MASTER) {
        if (fedreci_config_agg_keys(cfg, &agg_keys, &cc.n_agg_keys)) {
            fail("aggregator-keys");
            goto out;
        }
        cc.agg_keys = (const uint8_t(*)[32])agg_keys;
        if (identity_key(cfg->identity_key, master_sk, "master",
                         "give it to the aggregators as master-key"))
            goto out;
        cc.agg_master_sk = master_sk;
    }
    if (fedreci_coord_create(&d.coord, &cc, &hooks, &start)) {
        fail("engine");
        goto out;
    }
    d.first_round = cc.first_round_id;
    if (fedreci_db_client_each(db, restore_client, &d)) {
        fail("client registry");
        goto out;
    }
    if (d.restored_benched)
        fedreci_log(FEDRECI_LOG_INFO, -1,
                    "restored %u benched clients (withheld a step of an aborted round; refused "
                    "until their round)",
                    d.restored_benched);
    if (cfg->http) {
        if (fedreci_status_open(&http, cfg->http, stats)) {
            fail("status server");
            goto out;
        }
        fedreci_status_set_refresh(http, status_refresh, &d);
        fedreci_log(FEDRECI_LOG_INFO, -1, "status on %s (port %u)", cfg->http,
                    fedreci_status_port(http));
    }
    if (fedreci_coord_start(d.coord)) {
        fail("listen");
        goto out;
    }
    if (pthread_create(&watch, NULL, last_round_watch, &d) != 0) {
        fedreci_log(FEDRECI_LOG_ERROR, -1, "cannot start a thread");
        goto out;
    }
    watching = 1;
    log_ready(cfg, d.coord, http);
    /* systemd Type=notify: serving now (a no-op without NOTIFY_SOCKET) */
    sd_notifyf(0, "READY=1\nSTATUS=serving model version %llu",
               (unsigned long long)boot.model.version);
    pthread_sigmask(SIG_UNBLOCK, &sigs, NULL);

    serve(&d, pipefd[0]);
    rc = 0;
out:
    pthread_sigmask(SIG_BLOCK, &sigs, NULL); /* a second signal is ignored */
    if (d.coord)
        fedreci_coord_stop(d.coord); /* aborts the current round through the hooks */
    if (watching)
        pthread_join(watch, NULL); /* stop woke it */
    fedreci_coord_destroy(d.coord);
    fedreci_status_close(http);
    fedreci_persist_destroy(d.persist);
    fedreci_stats_destroy(stats);
    free(codes);
    free(retired);
    free(agg_keys);
    sodium_memzero(master_sk, sizeof master_sk);
    fedreci_bootstrap_clear(&boot);
    close_db(db);
    fedreci_pidlock_release(lock);
    signal_fd = -1;
    for (int i = 0; i < 2; i++)
        if (pipefd[i] >= 0)
            close(pipefd[i]);
    pthread_mutex_destroy(&d.health_mu);
    return rc;
}

/* role = aggregator: no database; runs groups for the master until
 * SIGTERM/SIGINT. */
static int run_aggregator(const fedreci_config *cfg)
{
    int rc = 1;
    uint8_t sk[64];
    fedreci_aggregator *agg = NULL;
    fedreci_stats *stats = NULL;
    fedreci_status *http = NULL;
    int pipefd[2] = {-1, -1};
    log_starting(cfg);
    if (identity_key(cfg->identity_key, sk, "aggregator",
                     "list it in the master's aggregator-keys"))
        return 1;
    uint8_t master_pk[32];
    if (fedreci_config_master_key(cfg, master_pk)) {
        fail("master-key");
        sodium_memzero(sk, sizeof sk);
        return 1;
    }
    fedreci_aggregator_config ac;
    fedreci_aggregator_config_default(&ac);
    ac.master_url = cfg->master;
    ac.master_tls_ca_file = cfg->master_ca;
    ac.listen_urls = (const char *const *)cfg->listen;
    ac.n_listen = cfg->n_listen;
    ac.public_url = cfg->public_url;
    ac.tls_cert_file = cfg->tls_cert;
    ac.tls_key_file = cfg->tls_key;
    ac.identity_sk = sk;
    ac.master_pk = master_pk;
    ac.max_group = cfg->max_group;
    ac.max_connections = cfg->max_connections;
    ac.max_conns_per_addr = cfg->max_conns_per_addr;
    /* SIGTERM/SIGINT arrive through the signal pipe (on_signal) */
    if (pipe(pipefd) != 0 || fcntl(pipefd[0], F_SETFD, FD_CLOEXEC) != 0 ||
        fcntl(pipefd[1], F_SETFD, FD_CLOEXEC) != 0 || fcntl(pipefd[1], F_SETFL, O_NONBLOCK) != 0) {
        fedreci_log(FEDRECI_LOG_ERROR, -1, "signal pipe: %s", strerror(errno));
        goto out;
    }
    signal_fd = pipefd[1];
    if (fedreci_aggregator_create(&agg, &ac)) {
        fail("aggregator");
        goto out;
    }
    if (fedreci_stats_create(&stats)) {
        fail("startup");
        goto out;
    }
    if (cfg->http && fedreci_status_open(&http, cfg->http, stats)) {
        fail("status server");
        goto out;
    }
    if (fedreci_aggregator_start(agg)) {
        fail("aggregator");
        goto out;
    }
    if (http)
        fedreci_log(FEDRECI_LOG_INFO, -1, "status on %s (port %u)", cfg->http,
                    (unsigned)fedreci_status_port(http));
    fedreci_log(FEDRECI_LOG_INFO, -1, "fedrec-coordinator %s ready as an aggregator of %s%s%s",
                fedrec_version(), cfg->master, http ? "; status server " : "",
                http ? cfg->http : "");
    sd_notify(0, "READY=1\nSTATUS=aggregator");
    for (;;) {
        /* the figures every 200 ms; a signal byte ends the wait at once */
        struct pollfd pf = {pipefd[0], POLLIN, 0};
        if (poll(&pf, 1, 200) > 0) {
            unsigned char b = 0;
            if (read(pipefd[0], &b, 1) == 1 && (b == SIGTERM || b == SIGINT)) {
                sd_notify(0, "STOPPING=1");
                fedreci_log(FEDRECI_LOG_INFO, -1, "%s: stopping",
                            b == SIGTERM ? "SIGTERM" : "SIGINT");
                break;
            }
        }
        fedreci_aggregator_status as;
        fedreci_aggregator_get_status(agg, &as);
        static fedreci_stats_groups g;
        memset(&g, 0, sizeof g);
        g.role = 2;
        g.master_connected = as.connected;
        g.agg_groups_run = as.groups_run;
        g.agg_groups_completed = as.groups_completed;
        g.agg_groups_counted = as.groups_counted;
        g.agg_groups_failed = as.groups_failed;
        g.replies_refused = as.replies_refused;
        g.last_round = as.last_round;
        g.last_members = as.last_members;
        g.last_survivors = as.last_survivors;
        fedreci_stats_set_groups(stats, &g);
        fedreci_stats_set_model_version(stats, as.model_version);
        fedreci_stats_set_stage(stats, as.engine.round_id && as.engine.stage >= 0
                                           ? fedreci_stats_stage_name((unsigned)as.engine.stage)
                                           : "idle");
        fedreci_stats_set_connected(stats, as.engine.connections);
        fedreci_stats_set_health(stats, as.connected ? NULL : "master not reachable");
    }
    rc = 0;
out:
    fedreci_aggregator_destroy(agg);
    fedreci_status_close(http);
    fedreci_stats_destroy(stats);
    signal_fd = -1;
    for (int i = 0; i < 2; i++)
        if (pipefd[i] >= 0)
            close(pipefd[i]);
    sodium_memzero(sk, sizeof sk);
    return rc;
}

/* Whether --check-config is among the arguments (for the wording of a parse
 * error, which leaves no configuration to ask). */
static int check_flag(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--check-config") == 0)
            return 1;
    return 0;
}

int main(int argc, char **argv)
{
    /* fedrec-coordinator catalog ...: makes a catalog file (catalog_cmd.h) */
    if (argc > 1 && strcmp(argv[1], "catalog") == 0)
        return fedreci_catalog_cmd(argc - 1, argv + 1);
    /* every client-round allocates and frees 0.5 MB buffers (the model
       reply, the masked input): keep freed heap for them (core/util.h);
       the engine hands it back on a timer (engine_internal.h) */
    fedreci_heap_keep_freed();
    fedreci_config *cfg = NULL;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    if (fedreci_config_parse(&cfg, argc, argv)) {
        fprintf(stderr, "fedrec-coordinator: %s%s\n",
                check_flag(argc, argv) ? "configuration invalid: " : "", fedrec_errmsg());
        return 2;
    }
    if (cfg->help) {
        fedreci_config_usage(stdout, "fedrec-coordinator");
        fedreci_config_destroy(cfg);
        return 0;
    }
    if (cfg->version) {
        printf("fedrec-coordinator %s\n", fedrec_version());
        fedreci_config_destroy(cfg);
        return 0;
    }
    if (fedreci_config_check(cfg)) {
        fprintf(stderr, "fedrec-coordinator: %s%s\n",
                cfg->check_only ? "configuration invalid: " : "", fedrec_errmsg());
        fedreci_config_destroy(cfg);
        return 2;
    }
    if (cfg->check_only) {
        int rc = check_config(cfg);
        fedreci_config_destroy(cfg);
        return rc;
    }
    fedreci_log_set_level((fedreci_log_level)cfg->log_level);
    if (sodium_init() < 0) {
        fedreci_log(FEDRECI_LOG_ERROR, -1, "libsodium failed to initialize");
        fedreci_config_destroy(cfg);
        return 1;
    }
    int rc = fedreci_config_role(cfg) == FEDRECI_ROLE_AGGREGATOR ? run_aggregator(cfg) : run(cfg);
    fedreci_config_destroy(cfg);
    return rc;
}
