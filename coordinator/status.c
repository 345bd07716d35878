#include "status.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/supplemental/http/http.h>

#include "core/err.h"
#include "core/json.h"

/* ---- stats ------------------------------------------------------------------ */

struct fedreci_stats {
    pthread_mutex_t lock;
    fedreci_stats_snapshot s; /* uptime_seconds unused here */
    struct timespec started;
    double started_unix; /* CLOCK_REALTIME at create */
};

static const char *const stage_names[FEDRECI_DB_STAGES] = {"advertise", "share_keys",
                                                           "masked_input", "unmask"};

const char *fedreci_stats_stage_name(unsigned stage)
{
    return stage < FEDRECI_DB_STAGES ? stage_names[stage] : "unknown";
}

fedrec_err fedreci_stats_create(fedreci_stats **out)
{
    fedreci_stats *st = calloc(1, sizeof *st);
    if (!st)
        return fedreci_error(FEDREC_ERR_NOMEM, "stats: out of memory");
    if (pthread_mutex_init(&st->lock, NULL) != 0) {
        free(st);
        return fedreci_error(FEDREC_ERR_NOMEM, "stats: cannot create a mutex");
    }
    snprintf(st->s.stage, sizeof st->s.stage, "idle");
    clock_gettime(CLOCK_MONOTONIC, &st->started);
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    st->started_unix = (double)wall.tv_sec + (double)wall.tv_nsec / 1e9;
    *out = st;
    return FEDREC_OK;
}

void fedreci_stats_destroy(fedreci_stats *st)
{
    if (!st)
        return;
    pthread_mutex_destroy(&st->lock);
    free(st);
}

void fedreci_stats_round_begin(fedreci_stats *st, uint64_t round_id)
{
    pthread_mutex_lock(&st->lock);
    st->s.has_round = 1;
    st->s.round_id = round_id;
    snprintf(st->s.stage, sizeof st->s.stage, "%s", stage_names[0]);
    pthread_mutex_unlock(&st->lock);
}

void fedreci_stats_stage_closed(fedreci_stats *st, uint64_t round_id, int stage)
{
    pthread_mutex_lock(&st->lock);
    if (st->s.has_round && st->s.round_id == round_id && stage >= 0 && stage < FEDRECI_DB_STAGES)
        snprintf(st->s.stage, sizeof st->s.stage, "%s",
                 stage + 1 < FEDRECI_DB_STAGES ? stage_names[stage + 1] : "commit");
    pthread_mutex_unlock(&st->lock);
}

/* The "reason" string of a round's metrics JSON into out (cap bytes; ""
 * when there is none). Reads the writer's own escaping back loosely: an
 * escaped character keeps its escape, which the page escapes again. */
static void metrics_reason(const char *json, char *out, size_t cap)
{
    out[0] = '\0';
    const char *p = strstr(json, "\"reason\":\"");
    if (!p || cap == 0)
        return;
    p += 10;
    size_t n = 0;
    while (*p && *p != '"' && n + 1 < cap) {
        if (*p == '\\' && p[1])
            out[n++] = *p++;
        if (n + 1 < cap)
            out[n++] = *p++;
    }
    out[n] = '\0';
}

/* Appends r to the history ring (lock held). */
static void history_push(fedreci_stats *st, const fedreci_round_record *r)
{
    fedreci_stats_round h;
    memset(&h, 0, sizeof h);
    h.round_id = r->round_id;
    h.completed = r->status == FEDRECI_ROUND_COMPLETED;
    h.started_ms = r->started_ms;
    h.ended_ms = r->ended_ms;
    h.cohort = r->cohort;
    h.survivors = r->survivors;
    memcpy(h.dropped, r->dropped, sizeof h.dropped);
    memcpy(h.stage_ms, r->stage_ms, sizeof h.stage_ms);
    h.model_version = h.completed ? r->model_version : 0;
    if (!h.completed)
        metrics_reason(r->metrics_json, h.reason, sizeof h.reason);
    if (st->s.n_history == FEDRECI_STATS_HISTORY) {
        memmove(&st->s.history[0], &st->s.history[1],
                (FEDRECI_STATS_HISTORY - 1) * sizeof st->s.history[0]);
        st->s.n_history--;
    }
    st->s.history[st->s.n_history++] = h;
}

void fedreci_stats_history_add(fedreci_stats *st, const fedreci_round_record *r)
{
    pthread_mutex_lock(&st->lock);
    history_push(st, r);
    pthread_mutex_unlock(&st->lock);
}

void fedreci_stats_set_info(fedreci_stats *st, const fedreci_stats_info *info)
{
    pthread_mutex_lock(&st->lock);
    st->s.info = *info;
    pthread_mutex_unlock(&st->lock);
}

void fedreci_stats_set_clients(fedreci_stats *st, uint32_t known, uint32_t waiting)
{
    pthread_mutex_lock(&st->lock);
    st->s.known_clients = known;
    st->s.waiting_clients = waiting;
    pthread_mutex_unlock(&st->lock);
}

void fedreci_stats_round_end(fedreci_stats *st, const fedreci_round_record *r)
{
    pthread_mutex_lock(&st->lock);
    st->s.has_round = 1;
    st->s.round_id = r->round_id;
    if (r->status == FEDRECI_ROUND_COMPLETED)
        st->s.rounds_completed++;
    else
        st->s.rounds_aborted++;
    st->s.last_participants = r->survivors;
    for (int i = 0; i < FEDRECI_DB_STAGES; i++) {
        st->s.dropouts[i] += r->dropped[i];
        if (r->stage_ms[i] > 0) {
            st->s.stage_seconds[i] += r->stage_ms[i] / 1000.0;
            st->s.stage_count[i]++;
        }
    }
    st->s.bytes_in += r->bytes_in;
    st->s.bytes_out += r->bytes_out;
    snprintf(st->s.stage, sizeof st->s.stage, "idle");
    history_push(st, r);
    pthread_mutex_unlock(&st->lock);
}

void fedreci_stats_set_stage(fedreci_stats *st, const char *stage)
{
    pthread_mutex_lock(&st->lock);
    snprintf(st->s.stage, sizeof st->s.stage, "%s", stage ? stage : "");
    pthread_mutex_unlock(&st->lock);
}

void fedreci_stats_set_groups(fedreci_stats *st, const fedreci_stats_groups *g)
{
    pthread_mutex_lock(&st->lock);
    st->s.groups = *g;
    pthread_mutex_unlock(&st->lock);
}

void fedreci_stats_set_limits(fedreci_stats *st, const fedreci_stats_limits *l)
{
    pthread_mutex_lock(&st->lock);
    st->s.limits = *l;
    pthread_mutex_unlock(&st->lock);
}

void fedreci_stats_set_dp(fedreci_stats *st, const fedreci_stats_dp *dp)
{
    pthread_mutex_lock(&st->lock);
    st->s.dp = *dp;
    pthread_mutex_unlock(&st->lock);
}

void fedreci_stats_set_model_version(fedreci_stats *st, uint64_t version)
{
    pthread_mutex_lock(&st->lock);
    st->s.model_version = version;
    pthread_mutex_unlock(&st->lock);
}

void fedreci_stats_set_health(fedreci_stats *st, const char *problem)
{
    pthread_mutex_lock(&st->lock);
    snprintf(st->s.problem, sizeof st->s.problem, "%s", problem ? problem : "");
    pthread_mutex_unlock(&st->lock);
}

void fedreci_stats_set_connected(fedreci_stats *st, uint32_t n)
{
    pthread_mutex_lock(&st->lock);
    st->s.connected_clients = n;
    pthread_mutex_unlock(&st->lock);
}

void fedreci_stats_add_bytes(fedreci_stats *st, uint64_t in, uint64_t out)
{
    pthread_mutex_lock(&st->lock);
    st->s.bytes_in += in;
    st->s.bytes_out += out;
    pthread_mutex_unlock(&st->lock);
}

/* Resident set size in bytes from /proc/self/statm (its second field, in
 * pages), -1 when unavailable. */
static int64_t resident_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return -1;
    unsigned long long size, resident;
    int n = fscanf(f, "%llu %llu", &size, &resident);
    fclose(f);
    long page = sysconf(_SC_PAGESIZE);
    return n == 2 && page > 0 ? (int64_t)(resident * (unsigned long long)page) : -1;
}

/* Open descriptors: the entries of /proc/self/fd, less the one opendir
 * holds; -1 when unavailable. */
static int64_t open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int64_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n > 0 ? n - 1 : 0;
}

void fedreci_stats_snapshot_get(fedreci_stats *st, fedreci_stats_snapshot *out)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    pthread_mutex_lock(&st->lock);
    *out = st->s;
    pthread_mutex_unlock(&st->lock);
    out->uptime_seconds = (double)(now.tv_sec - st->started.tv_sec) +
                          (double)(now.tv_nsec - st->started.tv_nsec) / 1e9;
    out->resident_bytes = resident_bytes();
    out->open_fds = open_fds();
    out->start_time_seconds = st->started_unix;
}

/* ---- rendering ------------------------------------------------------------------ */

typedef struct out_buf {
    char *p;
    size_t cap, len;
    int overflow;
} out_buf;

__attribute__((format(printf, 2, 3))) static void put(out_buf *b, const char *fmt, ...)
{
    if (b->overflow)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= b->cap - b->len)
        b->overflow = 1;
    else
        b->len += (size_t)n;
}

static fedrec_err finish(out_buf *b, const char *what, size_t *len)
{
    if (b->overflow)
        return fedreci_error(FEDREC_ERR_TOO_BIG, "%s does not fit in %zu bytes", what, b->cap);
    *len = b->len;
    return FEDREC_OK;
}

fedrec_err fedreci_stats_format_status(const fedreci_stats_snapshot *s, char *buf, size_t cap,
                                       size_t *len)
{
    fedreci_json w; /* compact JSON and a newline, in buf */
    fedreci_json_init_mem(&w, buf, cap > 0 ? cap - 1 : 0, FEDRECI_JSON_COMPACT);
    fedreci_json_obj_begin(&w);
    fedreci_json_key(&w, "round");
    if (s->has_round)
        fedreci_json_u64(&w, s->round_id);
    else
        fedreci_json_null(&w);
    fedreci_json_kstr(&w, "stage", s->stage);
    fedreci_json_ku64(&w, "model_version", s->model_version);
    fedreci_json_ku64(&w, "connected_clients", s->connected_clients);
    fedreci_json_ku64(&w, "known_clients", s->known_clients);
    fedreci_json_ku64(&w, "rounds_completed", s->rounds_completed);
    fedreci_json_ku64(&w, "rounds_aborted", s->rounds_aborted);
    fedreci_json_ku64(&w, "clients_benched", s->limits.benched);
    fedreci_json_kdouble(&w, "uptime_seconds", "%.3f", s->uptime_seconds);
    fedreci_json_kstr(&w, "differential_privacy", s->dp.on ? "skellam" : "none");
    if (s->dp.on) {
        fedreci_json_kdouble(&w, "dp_epsilon_budget", "%.6g", s->dp.epsilon);
        fedreci_json_kdouble(&w, "dp_delta", "%.6g", s->dp.delta);
        fedreci_json_kdouble(&w, "dp_epsilon_spent", "%.6f", s->dp.spent);
        fedreci_json_kdouble(&w, "dp_epsilon_per_round", "%.6f", s->dp.eps_round);
        fedreci_json_ku64(&w, "dp_rounds_spent", s->dp.rounds);
        fedreci_json_ku64(&w, "dp_min_survivors", s->dp.min_survivors);
        fedreci_json_kdouble(&w, "dp_noise_std", "%.6g", s->dp.noise_std);
        fedreci_json_kbool(&w, "dp_budget_exhausted", s->dp.exhausted);
        if (s->dp.refusal[0])
            fedreci_json_kstr(&w, "dp_refusal", s->dp.refusal);
    }
    const fedreci_stats_groups *g = &s->groups;
    if (g->role == 1) {
        fedreci_json_kstr(&w, "role", "master");
        fedreci_json_key(&w, "groups");
        fedreci_json_obj_begin(&w);
        fedreci_json_ku64(&w, "assigned", g->groups);
        fedreci_json_ku64(&w, "counted", g->groups_done);
        fedreci_json_ku64(&w, "failed", g->groups_failed);
        fedreci_json_ku64(&w, "aggregators_ready", g->aggregators_ready);
        fedreci_json_ku64(&w, "requests_refused", g->agg_refused);
        fedreci_json_obj_end(&w);
        fedreci_json_key(&w, "aggregators");
        fedreci_json_arr_begin(&w);
        for (size_t i = 0; i < g->n_aggs && i < FEDRECI_STATS_MAX_AGGS; i++) {
            const fedreci_coord_agg_status *a = &g->aggs[i];
            static const char *const states[] = {"gone", "ready", "running"};
            fedreci_json_obj_begin(&w);
            fedreci_json_kstr(&w, "key", a->key);
            fedreci_json_kstr(&w, "url", a->url);
            fedreci_json_kstr(&w, "state", a->state >= 0 && a->state < 3 ? states[a->state] : "?");
            fedreci_json_ku64(&w, "last_round", a->last_round);
            fedreci_json_ku64(&w, "last_group", a->last_group);
            fedreci_json_ku64(&w, "last_members", a->last_members);
            fedreci_json_ku64(&w, "last_survivors", a->last_survivors);
            fedreci_json_ku64(&w, "groups_run", a->groups_run);
            fedreci_json_ku64(&w, "groups_counted", a->groups_counted);
            fedreci_json_ku64(&w, "groups_failed", a->groups_failed);
            fedreci_json_obj_end(&w);
        }
        fedreci_json_arr_end(&w);
    } else if (g->role == 2) {
        fedreci_json_kstr(&w, "role", "aggregator");
        fedreci_json_key(&w, "groups");
        fedreci_json_obj_begin(&w);
        fedreci_json_kbool(&w, "master_connected", g->master_connected);
        fedreci_json_ku64(&w, "run", g->agg_groups_run);
        fedreci_json_ku64(&w, "completed", g->agg_groups_completed);
        fedreci_json_ku64(&w, "counted", g->agg_groups_counted);
        fedreci_json_ku64(&w, "failed", g->agg_groups_failed);
        fedreci_json_ku64(&w, "replies_refused", g->replies_refused);
        fedreci_json_ku64(&w, "last_round", g->last_round);
        fedreci_json_ku64(&w, "last_members", g->last_members);
        fedreci_json_ku64(&w, "last_survivors", g->last_survivors);
        fedreci_json_obj_end(&w);
    }
    fedreci_json_obj_end(&w);
    size_t n = 0;
    if (fedreci_json_finish(&w, NULL, &n) != FEDREC_OK)
        return fedreci_error(FEDREC_ERR_TOO_BIG, "status JSON does not fit in %zu bytes", cap);
    buf[n] = '\n'; /* room: the writer had cap - 1 bytes */
    buf[n + 1] = '\0';
    *len = n + 1;
    return FEDREC_OK;
}

fedrec_err fedreci_stats_format_metrics(const fedreci_stats_snapshot *s, char *buf, size_t cap,
                                        size_t *len)
{
    out_buf b = {buf, cap, 0, cap == 0};
    if (!b.overflow)
        buf[0] = '\0';
    put(&b,
        "# HELP fedrec_build_info The running fedrec version (always 1).\n"
        "# TYPE fedrec_build_info gauge\n"
        "fedrec_build_info{version=\"%s\"} 1\n",
        fedrec_version());
    put(&b,
        "# HELP fedrec_rounds_total Finished rounds by outcome.\n"
        "# TYPE fedrec_rounds_total counter\n"
        "fedrec_rounds_total{outcome=\"completed\"} %llu\n"
        "fedrec_rounds_total{outcome=\"aborted\"} %llu\n",
        (unsigned long long)s->rounds_completed, (unsigned long long)s->rounds_aborted);
    if (s->resident_bytes >= 0)
        put(&b,
            "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
            "# TYPE process_resident_memory_bytes gauge\n"
            "process_resident_memory_bytes %lld\n",
            (long long)s->resident_bytes);
    if (s->open_fds >= 0)
        put(&b,
            "# HELP process_open_fds Number of open file descriptors.\n"
            "# TYPE process_open_fds gauge\n"
            "process_open_fds %lld\n",
            (long long)s->open_fds);
    put(&b,
        "# HELP process_start_time_seconds Start time of the process since the Unix epoch in "
        "seconds.\n"
        "# TYPE process_start_time_seconds gauge\n"
        "process_start_time_seconds %.3f\n",
        s->start_time_seconds);
    put(&b,
        "# HELP fedrec_rounds_completed_total Rounds that committed a new model version.\n"
        "# TYPE fedrec_rounds_completed_total counter\n"
        "fedrec_rounds_completed_total %llu\n",
        (unsigned long long)s->rounds_completed);
    put(&b,
        "# HELP fedrec_rounds_aborted_total Rounds that ended without a new model version.\n"
        "# TYPE fedrec_rounds_aborted_total counter\n"
        "fedrec_rounds_aborted_total %llu\n",
        (unsigned long long)s->rounds_aborted);
    put(&b,
        "# HELP fedrec_round_participants Clients whose masked input was summed in the last "
        "finished round.\n"
        "# TYPE fedrec_round_participants gauge\n"
        "fedrec_round_participants %u\n",
        s->last_participants);
    put(&b, "# HELP fedrec_dropouts_total Clients lost, by the stage they were lost in.\n"
            "# TYPE fedrec_dropouts_total counter\n");
    for (int i = 0; i < FEDRECI_DB_STAGES; i++)
        put(&b, "fedrec_dropouts_total{stage=\"%s\"} %llu\n", stage_names[i],
            (unsigned long long)s->dropouts[i]);
    put(&b, "# HELP fedrec_stage_duration_seconds Wall time of each SecAgg stage over finished "
            "rounds.\n"
            "# TYPE fedrec_stage_duration_seconds summary\n");
    for (int i = 0; i < FEDRECI_DB_STAGES; i++)
        put(&b,
            "fedrec_stage_duration_seconds_sum{stage=\"%s\"} %.3f\n"
            "fedrec_stage_duration_seconds_count{stage=\"%s\"} %llu\n",
            stage_names[i], s->stage_seconds[i], stage_names[i],
            (unsigned long long)s->stage_count[i]);
    put(&b,
        "# HELP fedrec_bytes_received_total Request bytes received from clients.\n"
        "# TYPE fedrec_bytes_received_total counter\n"
        "fedrec_bytes_received_total %llu\n"
        "# HELP fedrec_bytes_sent_total Reply bytes sent to clients.\n"
        "# TYPE fedrec_bytes_sent_total counter\n"
        "fedrec_bytes_sent_total %llu\n",
        (unsigned long long)s->bytes_in, (unsigned long long)s->bytes_out);
    put(&b,
        "# HELP fedrec_model_version The model version being served.\n"
        "# TYPE fedrec_model_version gauge\n"
        "fedrec_model_version %llu\n"
        "# HELP fedrec_connected_clients Known clients whose connection is open now.\n"
        "# TYPE fedrec_connected_clients gauge\n"
        "fedrec_connected_clients %u\n"
        "# HELP fedrec_known_clients Clients registered (every id that ever checked in).\n"
        "# TYPE fedrec_known_clients gauge\n"
        "fedrec_known_clients %u\n"
        "# HELP fedrec_current_round The current or last round id (0 before the first).\n"
        "# TYPE fedrec_current_round gauge\n"
        "fedrec_current_round %llu\n",
        (unsigned long long)s->model_version, s->connected_clients, s->known_clients,
        (unsigned long long)(s->has_round ? s->round_id : 0));
    const fedreci_stats_limits *l = &s->limits;
    put(&b,
        "# HELP fedrec_connections_open Client connections open now.\n"
        "# TYPE fedrec_connections_open gauge\n"
        "fedrec_connections_open %u\n"
        "# HELP fedrec_connections_refused_total Connections closed as they opened, by the cap "
        "they exceeded.\n"
        "# TYPE fedrec_connections_refused_total counter\n"
        "fedrec_connections_refused_total{reason=\"per_address\"} %llu\n"
        "fedrec_connections_refused_total{reason=\"total\"} %llu\n",
        l->connections, (unsigned long long)l->refused_per_address,
        (unsigned long long)l->refused_total);
    put(&b,
        "# HELP fedrec_checkins_refused_total Check-ins under new ids refused by a rate limit.\n"
        "# TYPE fedrec_checkins_refused_total counter\n"
        "fedrec_checkins_refused_total{reason=\"new_ids_per_address\"} %llu\n"
        "fedrec_checkins_refused_total{reason=\"new_ids_global\"} %llu\n"
        "# HELP fedrec_registry_clients Client ids the coordinator holds in memory.\n"
        "# TYPE fedrec_registry_clients gauge\n"
        "fedrec_registry_clients %u\n"
        "# HELP fedrec_registry_evicted_total Client ids forgotten by the registry bound.\n"
        "# TYPE fedrec_registry_evicted_total counter\n"
        "fedrec_registry_evicted_total %llu\n",
        (unsigned long long)l->new_ids_refused_addr, (unsigned long long)l->new_ids_refused,
        l->registry_clients, (unsigned long long)l->evicted);
    put(&b,
        "# HELP fedrec_clients_benched Clients benched now: they withheld a step of a round "
        "that aborted for it and are not drawn into the next round.\n"
        "# TYPE fedrec_clients_benched gauge\n"
        "fedrec_clients_benched %u\n"
        "# HELP fedrec_clients_benched_total Benches handed out since the daemon started.\n"
        "# TYPE fedrec_clients_benched_total counter\n"
        "fedrec_clients_benched_total %llu\n",
        l->benched, (unsigned long long)l->benches);
    const fedreci_stats_dp *dp = &s->dp;
    put(&b,
        "# HELP fedrec_dp_enabled 1 when rounds run with differential privacy (Skellam), 0 "
        "without.\n"
        "# TYPE fedrec_dp_enabled gauge\n"
        "fedrec_dp_enabled %d\n",
        dp->on ? 1 : 0);
    if (dp->on)
        put(&b,
            "# HELP fedrec_dp_epsilon_budget The privacy budget epsilon per shopper.\n"
            "# TYPE fedrec_dp_epsilon_budget gauge\n"
            "fedrec_dp_epsilon_budget %.6g\n"
            "# HELP fedrec_dp_delta The delta of the budget.\n"
            "# TYPE fedrec_dp_delta gauge\n"
            "fedrec_dp_delta %.6g\n"
            "# HELP fedrec_dp_epsilon_spent Epsilon spent so far (Renyi DP accountant, at "
            "fedrec_dp_delta).\n"
            "# TYPE fedrec_dp_epsilon_spent gauge\n"
            "fedrec_dp_epsilon_spent %.6f\n"
            "# HELP fedrec_dp_epsilon_per_round Epsilon of one round alone.\n"
            "# TYPE fedrec_dp_epsilon_per_round gauge\n"
            "fedrec_dp_epsilon_per_round %.6f\n"
            "# HELP fedrec_dp_rounds_spent_total Rounds whose release was spent.\n"
            "# TYPE fedrec_dp_rounds_spent_total counter\n"
            "fedrec_dp_rounds_spent_total %llu\n"
            "# HELP fedrec_dp_noise_std Noise standard deviation per coordinate of the sum at "
            "the survivor floor, input units.\n"
            "# TYPE fedrec_dp_noise_std gauge\n"
            "fedrec_dp_noise_std %.6g\n"
            "# HELP fedrec_dp_budget_exhausted 1 once the budget gate refused a round.\n"
            "# TYPE fedrec_dp_budget_exhausted gauge\n"
            "fedrec_dp_budget_exhausted %d\n",
            dp->epsilon, dp->delta, dp->spent, dp->eps_round, (unsigned long long)dp->rounds,
            dp->noise_std, dp->exhausted ? 1 : 0);
    const fedreci_stats_groups *g = &s->groups;
    if (g->role == 1) {
        put(&b,
            "# HELP fedrec_groups SecAgg groups of the current or last round, by state.\n"
            "# TYPE fedrec_groups gauge\n"
            "fedrec_groups{state=\"assigned\"} %u\n"
            "fedrec_groups{state=\"counted\"} %u\n"
            "fedrec_groups{state=\"failed\"} %u\n"
            "# HELP fedrec_aggregators_ready Aggregators waiting for a group.\n"
            "# TYPE fedrec_aggregators_ready gauge\n"
            "fedrec_aggregators_ready %u\n"
            "# HELP fedrec_aggregator_requests_refused_total Aggregator link requests refused "
            "(signature, unknown key, replayed sequence number, not its group).\n"
            "# TYPE fedrec_aggregator_requests_refused_total counter\n"
            "fedrec_aggregator_requests_refused_total %llu\n",
            g->groups, g->groups_done, g->groups_failed, g->aggregators_ready,
            (unsigned long long)g->agg_refused);
        put(&b, "# HELP fedrec_aggregator_up 1 while the aggregator's link is open.\n"
                "# TYPE fedrec_aggregator_up gauge\n");
        for (size_t i = 0; i < g->n_aggs && i < FEDRECI_STATS_MAX_AGGS; i++)
            put(&b, "fedrec_aggregator_up{aggregator=\"%s\"} %d\n", g->aggs[i].key,
                g->aggs[i].state != 0);
        put(&b, "# HELP fedrec_aggregator_last_survivors Survivors of the aggregator's last "
                "group.\n"
                "# TYPE fedrec_aggregator_last_survivors gauge\n");
        for (size_t i = 0; i < g->n_aggs && i < FEDRECI_STATS_MAX_AGGS; i++)
            put(&b, "fedrec_aggregator_last_survivors{aggregator=\"%s\"} %u\n", g->aggs[i].key,
                g->aggs[i].last_survivors);
        put(&b, "# HELP fedrec_aggregator_groups_total Groups assigned to the aggregator, by "
                "outcome.\n"
                "# TYPE fedrec_aggregator_groups_total counter\n");
        for (size_t i = 0; i < g->n_aggs && i < FEDRECI_STATS_MAX_AGGS; i++)
            put(&b,
                "fedrec_aggregator_groups_total{aggregator=\"%s\",outcome=\"counted\"} %llu\n"
                "fedrec_aggregator_groups_total{aggregator=\"%s\",outcome=\"failed\"} %llu\n",
                g->aggs[i].key, (unsigned long long)g->aggs[i].groups_counted, g->aggs[i].key,
                (unsigned long long)g->aggs[i].groups_failed);
    } else if (g->role == 2) {
        put(&b,
            "# HELP fedrec_master_connected 1 when the last request to the master got a reply.\n"
            "# TYPE fedrec_master_connected gauge\n"
            "fedrec_master_connected %d\n"
            "# HELP fedrec_aggregator_groups_total Groups this aggregator ran, by outcome.\n"
            "# TYPE fedrec_aggregator_groups_total counter\n"
            "fedrec_aggregator_groups_total{outcome=\"run\"} %llu\n"
            "fedrec_aggregator_groups_total{outcome=\"completed\"} %llu\n"
            "fedrec_aggregator_groups_total{outcome=\"counted\"} %llu\n"
            "fedrec_aggregator_groups_total{outcome=\"failed\"} %llu\n"
            "# HELP fedrec_master_replies_refused_total Replies on the master link refused: not "
            "signed by the master for the request they answer (forged, misdirected or "
            "replayed).\n"
            "# TYPE fedrec_master_replies_refused_total counter\n"
            "fedrec_master_replies_refused_total %llu\n",
            g->master_connected, (unsigned long long)g->agg_groups_run,
            (unsigned long long)g->agg_groups_completed, (unsigned long long)g->agg_groups_counted,
            (unsigned long long)g->agg_groups_failed, (unsigned long long)g->replies_refused);
    }
    return finish(&b, "metrics", len);
}

/* ---- the status page ---------------------------------------------------------- */

/* Appends text HTML-escaped (& < > " ' as character references). */
static void put_esc(out_buf *b, const char *text)
{
    for (const char *p = text; *p && !b->overflow; p++) {
        switch (*p) {
        case '&':
            put(b, "&amp;");
            break;
        case '<':
            put(b, "&lt;");
            break;
        case '>':
            put(b, "&gt;");
            break;
        case '"':
            put(b, "&quot;");
            break;
        case '\'':
            put(b, "&#39;");
            break;
        default:
            put(b, "%c", *p);
        }
    }
}

/* Unix ms as "YYYY-MM-DD HH:MM:SS" UTC into out (at least 20 bytes). */
static void utc_text(int64_t ms, char *out, size_t cap)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (ms <= 0 || !gmtime_r(&t, &tm) || strftime(out, cap, "%Y-%m-%d %H:%M:%S", &tm) == 0)
        snprintf(out, cap, "-");
}

static const char page_css[] =
    "body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:68em;padding:1em 1.5em;"
    "color:#1d2329;background:#fbfbfa}"
    "h1{font-size:1.5em;margin:.2em 0 .6em}h1 small{color:#68727d;font-weight:normal}"
    "h2{font-size:1.1em;margin:1.4em 0 .4em;border-bottom:1px solid #d5d9dd}"
    "dl{display:grid;grid-template-columns:max-content auto;gap:.15em 1.2em;margin:0}"
    "dt{color:#4d5863}dd{margin:0}"
    ".health{padding:.6em .9em;border-radius:4px;font-weight:600}"
    ".ok{background:#dff3e4;color:#18502a}.bad{background:#fbe0de;color:#7a1b13}"
    "table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}"
    "th,td{padding:.25em .6em;border-bottom:1px solid #e4e7ea;text-align:right}"
    "th:first-child,td:first-child,td.o,th.o{text-align:left}"
    "td.aborted{color:#a1261b}svg{width:100%;height:auto;max-width:52em}"
    ".c{fill:#c9d6e3}.s{fill:#2f6f9f}.a{fill:#d9867e}.ax{stroke:#68727d;stroke-width:1}"
    "svg text{font-size:11px;fill:#4d5863}.legend span{display:inline-block;width:.9em;"
    "height:.9em;margin:0 .3em 0 1em;vertical-align:-.1em}"
    "footer{margin-top:2em;color:#68727d;font-size:.9em}";

/* The participation chart: per round, the cohort (light bar) and the
 * survivors (dark bar; an aborted round's bar is red). */
static void put_chart(out_buf *b, const fedreci_stats_snapshot *s)
{
    const int w = 720, h = 200, left = 40, bottom = 24, top = 10;
    uint32_t ymax = 1;
    for (uint32_t i = 0; i < s->n_history; i++)
        if (s->history[i].cohort > ymax)
            ymax = s->history[i].cohort;
    put(b,
        "<svg id=\"participation\" viewBox=\"0 0 %d %d\" role=\"img\" "
        "aria-label=\"clients per round\" xmlns=\"http://www.w3.org/2000/svg\">",
        w, h);
    int ph = h - bottom - top, pw = w - left - 10;
    put(b, "<line class=\"ax\" x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>", left, top, left,
        h - bottom);
    put(b, "<line class=\"ax\" x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>", left, h - bottom, w - 10,
        h - bottom);
    put(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%u</text>", left - 4, top + 8, ymax);
    put(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">0</text>", left - 4, h - bottom);
    if (s->n_history == 0) {
        put(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">no round yet</text>", left + pw / 2,
            top + ph / 2);
    }
    /* at least 12 slots wide, so a few rounds do not make huge bars */
    uint32_t slots = s->n_history > 12 ? FEDRECI_STATS_HISTORY : 12;
    double slot = (double)pw / slots;
    for (uint32_t i = 0; i < s->n_history; i++) {
        const fedreci_stats_round *r = &s->history[i];
        double x = left + 2 + slot * i, bw = slot * 0.8;
        double hc = (double)ph * r->cohort / ymax, hs = (double)ph * r->survivors / ymax;
        put(b,
            "<g><title>round %llu: %u invited, %u survivors (%s)</title>"
            "<rect class=\"c\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/>"
            "<rect class=\"%s\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/></g>",
            (unsigned long long)r->round_id, r->cohort, r->survivors,
            r->completed ? "completed" : "aborted", x, top + ph - hc, bw, hc,
            r->completed ? "s" : "a", x, top + ph - hs, bw, hs);
    }
    /* round ids under the bars: each one while they fit, else the first and
       the last */
    for (uint32_t i = 0; i < s->n_history; i++) {
        if (s->n_history > 12 && i != 0 && i + 1 != s->n_history)
            continue;
        put(b, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"%s\">%s%llu</text>",
            s->n_history > 12 && i + 1 == s->n_history ? left + 2 + slot * (i + 0.8)
            : s->n_history > 12                        ? (double)left + 2
                                                       : left + 2 + slot * (i + 0.4),
            h - 6, s->n_history > 12 ? (i ? "end" : "start") : "middle",
            s->n_history > 12 ? "round " : "", (unsigned long long)s->history[i].round_id);
    }
    put(b, "</svg>");
    put(b, "<p class=\"legend\"><span class=\"c\" style=\"background:#c9d6e3\"></span>invited"
           "<span style=\"background:#2f6f9f\"></span>survivors (completed)"
           "<span style=\"background:#d9867e\"></span>survivors (aborted)</p>");
}

/* The last rounds, newest first. */
static void put_rounds(out_buf *b, const fedreci_stats_snapshot *s)
{
    if (s->n_history == 0) {
        put(b, "<p>No round has finished yet.</p>");
        return;
    }
    put(b, "<table id=\"rounds\"><thead><tr><th>round</th><th class=\"o\">outcome</th>"
           "<th>started (UTC)</th><th>duration</th><th>cohort</th><th>survivors</th>"
           "<th>dropped adv/share/masked/unmask</th><th>model version</th></tr></thead><tbody>");
    uint32_t shown = 0;
    for (uint32_t i = s->n_history; i-- > 0 && shown < 12; shown++) {
        const fedreci_stats_round *r = &s->history[i];
        char when[32];
        utc_text(r->started_ms, when, sizeof when);
        double secs = r->ended_ms > r->started_ms ? (r->ended_ms - r->started_ms) / 1000.0 : 0;
        put(b, "<tr><td>%llu</td><td class=\"o%s\">%s", (unsigned long long)r->round_id,
            r->completed ? "" : " aborted", r->completed ? "completed" : "aborted");
        if (!r->completed && r->reason[0]) {
            put(b, ": ");
            put_esc(b, r->reason);
        }
        put(b, "</td><td>%s</td>", when);
        if (secs < 1)
            put(b, "<td>%.0f ms</td>", secs * 1000);
        else
            put(b, "<td>%.1f s</td>", secs);
        put(b, "<td>%u</td><td>%u</td><td>%u/%u/%u/%u</td>", r->cohort, r->survivors, r->dropped[0],
            r->dropped[1], r->dropped[2], r->dropped[3]);
        if (r->completed)
            put(b, "<td>%llu</td></tr>", (unsigned long long)r->model_version);
        else
            put(b, "<td>-</td></tr>");
    }
    put(b, "</tbody></table>");
}

fedrec_err fedreci_stats_format_html(const fedreci_stats_snapshot *s, char *buf, size_t cap,
                                     size_t *len)
{
    out_buf b = {buf, cap, 0, cap == 0};
    if (!b.overflow)
        buf[0] = '\0';
    const fedreci_stats_info *in = &s->info;
    put(&b,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
        "<title>fedrec-coordinator status</title><style>%s</style></head><body>",
        page_css);
    put(&b, "<h1>fedrec-coordinator <small>");
    put_esc(&b, fedrec_version());
    put(&b, "</small></h1>");

    put(&b, "<h2>Health</h2>");
    if (s->problem[0]) {
        put(&b, "<p id=\"health\" class=\"health bad\">Unhealthy: ");
        put_esc(&b, s->problem);
        put(&b, "</p>");
    } else {
        put(&b, "<p id=\"health\" class=\"health ok\">Healthy</p>");
    }

    put(&b, "<h2>Now</h2><dl id=\"now\">");
    if (s->has_round)
        put(&b, "<dt>Round</dt><dd>%llu, stage %s</dd>", (unsigned long long)s->round_id, s->stage);
    else
        put(&b, "<dt>Round</dt><dd>none yet</dd>");
    put(&b,
        "<dt>Model version</dt><dd>%llu</dd>"
        "<dt>Clients</dt><dd>%u connected, %u known, %u waiting for a round</dd>"
        "<dt>Rounds since start</dt><dd>%llu completed, %llu aborted</dd>"
        "<dt>Up</dt><dd>%.0f s</dd>",
        (unsigned long long)s->model_version, s->connected_clients, s->known_clients,
        s->waiting_clients, (unsigned long long)s->rounds_completed,
        (unsigned long long)s->rounds_aborted, s->uptime_seconds);
    put(&b, "</dl>");

    put(&b, "<h2>Participation</h2>");
    put_chart(&b, s);

    put(&b, "<h2>Last rounds</h2>");
    put_rounds(&b, s);

    put(&b, "<h2>Privacy</h2><dl id=\"privacy\">");
    if (in->neighbors)
        put(&b, "<dt>Secure aggregation</dt><dd>SecAgg+ with %u neighbours per client",
            in->neighbors);
    else
        put(&b, "<dt>Secure aggregation</dt><dd>SecAgg (every other cohort member)");
    if (in->threshold)
        put(&b, ", threshold %u</dd>", in->threshold);
    else
        put(&b, ", threshold ceil(2k/3) of the k neighbours in each round</dd>");
    put(&b,
        "<dt>Cohort</dt><dd>%u clients invited, at least %u</dd>"
        "<dt>Input bound</dt><dd>clip %g, quantization scale %g</dd>",
        in->cohort, in->min_cohort, in->clip, in->scale);
    const fedreci_stats_dp *dp = &s->dp;
    if (dp->on) {
        put(&b,
            "<dt>Differential privacy</dt><dd>Skellam noise in the secure sum (std %.4g per "
            "coordinate); budget &#949; = %g, &#948; = %g; &#949; spent %.4f over %llu round%s "
            "(%.4f per round); rounds need at least %u survivors",
            dp->noise_std, dp->epsilon, dp->delta, dp->spent, (unsigned long long)dp->rounds,
            dp->rounds == 1 ? "" : "s", dp->eps_round, dp->min_survivors);
        if (dp->exhausted)
            put(&b, "; <strong>budget exhausted: no further round</strong>");
        if (dp->refusal[0]) {
            put(&b, "; ");
            put_esc(&b, dp->refusal);
        }
        put(&b, "</dd>");
    } else {
        put(&b, "<dt>Differential privacy</dt><dd>no differential privacy: the model update is "
                "the exact sum of the cohort's clipped updates</dd>");
    }
    put(&b, "<dt>Transport</dt><dd>%s</dd></dl>",
        in->plaintext ? "a plaintext tcp:// listener is open" : "TLS or local sockets only");

    put(&b,
        "<h2>Catalog</h2><dl id=\"catalog\"><dt>Catalog version</dt><dd>%llu</dd>"
        "<dt>Products</dt><dd>%u (%u active, %u retired)</dd><dt>Factors</dt><dd>%u</dd>"
        "<dt>Database</dt><dd>",
        (unsigned long long)in->catalog_id, in->catalog_items, in->catalog_active,
        in->catalog_items -
            (in->catalog_active <= in->catalog_items ? in->catalog_active : in->catalog_items),
        in->factors);
    put_esc(&b, in->db);
    put(&b, "</dd></dl>");
    put(&b, "<footer>Machine-readable: <a href=\"/status\">/status</a>, "
            "<a href=\"/metrics\">/metrics</a>, <a href=\"/healthz\">/healthz</a>.</footer>"
            "</body></html>\n");
    return finish(&b, "status page", len);
}

/* ---- HTTP server ------------------------------------------------------------------ */

#define STATUS_BODY_CAP 65536
#define PAGE_BODY_CAP (128 * 1024)

struct fedreci_status {
    nng_http_server *server;
    int started;
    uint16_t port;
    fedreci_stats *stats;
    void (*refresh)(void *arg, fedreci_stats *st);
    void *refresh_arg;
};

typedef enum page { PAGE_HEALTHZ, PAGE_STATUS, PAGE_METRICS, PAGE_HTML } page;

typedef struct page_ctx {
    fedreci_status *owner;
    page which;
} page_ctx;

static void reply(nng_aio *aio, uint16_t code, const char *type, const char *body, size_t len)
{
    nng_http_res *res;
    int rv = nng_http_res_alloc(&res);
    if (rv != 0) {
        nng_aio_finish(aio, rv);
        return;
    }
    if ((rv = nng_http_res_set_status(res, code)) != 0 ||
        (rv = nng_http_res_set_header(res, "Content-Type", type)) != 0 ||
        (rv = nng_http_res_set_header(res, "Cache-Control", "no-store")) != 0 ||
        /* the page needs nothing from elsewhere, and runs no script */
        (rv = nng_http_res_set_header(res, "Content-Security-Policy",
                                      "default-src 'none'; style-src 'unsafe-inline'")) != 0 ||
        (rv = nng_http_res_set_header(res, "X-Content-Type-Options", "nosniff")) != 0 ||
        (rv = nng_http_res_copy_data(res, body, len)) != 0) {
        nng_http_res_free(res);
        nng_aio_finish(aio, rv);
        return;
    }
    nng_aio_set_output(aio, 0, res);
    nng_aio_finish(aio, 0);
}

static void handle(nng_aio *aio)
{
    nng_http_handler *h = nng_aio_get_input(aio, 1);
    page_ctx *pc = nng_http_handler_get_data(h);
    if (pc->owner->refresh)
        pc->owner->refresh(pc->owner->refresh_arg, pc->owner->stats);
    /* on the heap: the snapshot carries the round history and up to 64
       aggregators, the body their metrics */
    fedreci_stats_snapshot *snap = malloc(sizeof *snap);
    char *body = snap ? malloc(STATUS_BODY_CAP) : NULL;
    if (!body) {
        free(snap);
        reply(aio, NNG_HTTP_STATUS_INTERNAL_SERVER_ERROR, "text/plain; charset=utf-8",
              "out of memory\n", 14);
        return;
    }
    fedreci_stats_snapshot_get(pc->owner->stats, snap);
    if (pc->which == PAGE_HTML) {
        char *html = malloc(PAGE_BODY_CAP);
        size_t len = 0;
        if (!html || fedreci_stats_format_html(snap, html, PAGE_BODY_CAP, &len))
            reply(aio, NNG_HTTP_STATUS_INTERNAL_SERVER_ERROR, "text/plain; charset=utf-8",
                  "internal error\n", 15);
        else
            reply(aio, NNG_HTTP_STATUS_OK, "text/html; charset=utf-8", html, len);
        free(html);
        free(body);
        free(snap);
        return;
    }
    if (pc->which == PAGE_HEALTHZ) {
        if (!snap->problem[0]) {
            reply(aio, NNG_HTTP_STATUS_OK, "text/plain; charset=utf-8", "ok\n", 3);
        } else {
            char msg[256];
            int n = snprintf(msg, sizeof msg, "unhealthy: %s\n", snap->problem);
            reply(aio, NNG_HTTP_STATUS_SERVICE_UNAVAILABLE, "text/plain; charset=utf-8", msg,
                  n > 0 && (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1);
        }
        free(body);
        free(snap);
        return;
    }
    size_t len = 0;
    fedrec_err e = pc->which == PAGE_STATUS
                       ? fedreci_stats_format_status(snap, body, STATUS_BODY_CAP, &len)
                       : fedreci_stats_format_metrics(snap, body, STATUS_BODY_CAP, &len);
    if (e)
        reply(aio, NNG_HTTP_STATUS_INTERNAL_SERVER_ERROR, "text/plain; charset=utf-8",
              "internal error\n", 15);
    else
        reply(aio, NNG_HTTP_STATUS_OK,
              pc->which == PAGE_STATUS ? "application/json"
                                       : "text/plain; version=0.0.4; charset=utf-8",
              body, len);
    free(body);
    free(snap);
}

static void free_page_ctx(void *p)
{
    free(p);
}

fedrec_err fedreci_status_open(fedreci_status **out, const char *url, fedreci_stats *st)
{
    if (!url || strncmp(url, "http://", 7) != 0)
        return fedreci_error(FEDREC_ERR_INVALID,
                             "status server: address '%s' must be http://HOST:PORT",
                             url ? url : "(null)");
    nng_url *u;
    int rv = nng_url_parse(&u, url);
    if (rv != 0)
        return fedreci_error(FEDREC_ERR_INVALID, "status server: cannot parse '%s': %s", url,
                             nng_strerror(rv));
    fedreci_status *s = calloc(1, sizeof *s);
    if (!s) {
        nng_url_free(u);
        return fedreci_error(FEDREC_ERR_NOMEM, "status server: out of memory");
    }
    s->stats = st;
    rv = nng_http_server_hold(&s->server, u);
    nng_url_free(u);
    if (rv != 0) {
        free(s);
        return fedreci_error(FEDREC_ERR_TRANSPORT, "status server %s: %s", url, nng_strerror(rv));
    }
    static const char *const paths[4] = {"/healthz", "/status", "/metrics", "/"};
    fedrec_err e = FEDREC_OK;
    for (int i = 0; i < 4 && !e; i++) {
        page_ctx *pc = malloc(sizeof *pc);
        nng_http_handler *h = NULL;
        if (!pc) {
            e = fedreci_error(FEDREC_ERR_NOMEM, "status server: out of memory");
            break;
        }
        pc->owner = s;
        pc->which = (page)i;
        if ((rv = nng_http_handler_alloc(&h, paths[i], handle)) != 0) {
            free(pc);
        } else if ((rv = nng_http_handler_set_data(h, pc, free_page_ctx)) != 0) {
            free(pc);
            nng_http_handler_free(h);
        } else if ((rv = nng_http_server_add_handler(s->server, h)) != 0) {
            nng_http_handler_free(h); /* frees pc through the data destructor */
        }
        if (rv != 0)
            e = fedreci_error(FEDREC_ERR_TRANSPORT, "status server %s: handler %s: %s", url,
                              paths[i], nng_strerror(rv));
    }
    if (!e && (rv = nng_http_server_start(s->server)) != 0)
        e = fedreci_error(FEDREC_ERR_TRANSPORT, "status server %s: cannot listen: %s", url,
                          nng_strerror(rv));
    if (!e) {
        s->started = 1;
        nng_sockaddr sa;
        if ((rv = nng_http_server_get_addr(s->server, &sa)) != 0)
            e = fedreci_error(FEDREC_ERR_TRANSPORT, "status server %s: address: %s", url,
                              nng_strerror(rv));
        else if (sa.s_family == NNG_AF_INET)
            s->port = ntohs(sa.s_in.sa_port);
        else if (sa.s_family == NNG_AF_INET6)
            s->port = ntohs(sa.s_in6.sa_port);
    }
    if (e) {
        fedreci_status_close(s);
        return e;
    }
    *out = s;
    return FEDREC_OK;
}

void fedreci_status_set_refresh(fedreci_status *s, void (*fn)(void *arg, fedreci_stats *st),
                                void *arg)
{
    s->refresh = fn;
    s->refresh_arg = arg;
}

uint16_t fedreci_status_port(const fedreci_status *s)
{
    return s->port;
}

void fedreci_status_close(fedreci_status *s)
{
    if (!s)
        return;
    if (s->started)
        nng_http_server_stop(s->server);
    /* release drops the handlers (and their data) with the last hold */
    nng_http_server_release(s->server);
    free(s);
}
