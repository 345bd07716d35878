/* coordinator/engine: the round engine over nng (see engine.h). This file
 * holds the engine's life cycle (configuration, create, start, stop,
 * destroy) and the public calls; the pieces are named in engine_internal.h. */
#include "coordinator/engine.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "coordinator/engine_internal.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"

void fedreci_coord_config_default(fedreci_coord_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->n_contexts = 256;
    cfg->cohort_size = 10;
    cfg->min_cohort = 2;
    cfg->checkin_window_ms = 2000;
    cfg->clip = 16;
    for (int s = 0; s < 4; s++)
        cfg->stage_ms[s] = 10000;
    cfg->retry_after_ms = 1000;
    cfg->send_timeout_ms = 10000;
    cfg->max_msgs_per_round = 64;
    cfg->first_round_id = 1;
    cfg->opt.kind = FEDRECI_OPT_ADAM;
    cfg->opt.lr = 0.01f;
    cfg->opt.beta1 = 0.9f;
    cfg->opt.beta2 = 0.999f;
    cfg->opt.eps = 1e-8f;
    cfg->opt.lambda = 0.1f;
    cfg->opt.n_train = 1;
    cfg->x_bound = 4;
    cfg->bench_max_rounds = FEDRECI_BENCH_MAX_ROUNDS_DEFAULT;
    cfg->seed_retries = FEDRECI_SECAGG_SEED_RETRIES_DEFAULT;
}

/* A model the engine can serve: rows, factors and a version, and a vector
 * of n_items * k + 1 words whose bytes fit a uint32_t. */
static fedrec_err check_model(const fedreci_coord_model *m)
{
    if (!m || m->n_items == 0 || m->k == 0 || m->version == 0 ||
        (uint64_t)m->n_items * m->k + 1 > UINT32_MAX / 4)
        return fedreci_error(FEDREC_ERR_INVALID, "coordinator: start model n_items=%u k=%u v%llu",
                             m ? m->n_items : 0, m ? m->k : 0,
                             (unsigned long long)(m ? m->version : 0));
    return FEDREC_OK;
}

static fedrec_err check_config(const fedreci_coord_config *cfg, const fedreci_coord_model *m)
{
    if (!cfg->listen_urls || cfg->n_listen == 0)
        return fedreci_error(FEDREC_ERR_INVALID, "coordinator: no listen URL");
    if (cfg->cohort_size < 2 || cfg->min_cohort < 2 || cfg->min_cohort > cfg->cohort_size)
        return fedreci_error(FEDREC_ERR_INVALID,
                             "coordinator: cohort_size=%u min_cohort=%u (need 2 <= min_cohort <= "
                             "cohort_size)",
                             cfg->cohort_size, cfg->min_cohort);
    if (cfg->n_contexts < 8)
        return fedreci_error(FEDREC_ERR_INVALID, "coordinator: n_contexts=%u, at least 8",
                             cfg->n_contexts);
    if (!(cfg->clip > 0) || !isfinite(cfg->clip) || cfg->scale < 0 || !isfinite(cfg->scale))
        return fedreci_error(FEDREC_ERR_INVALID, "coordinator: clip=%g scale=%g", cfg->clip,
                             cfg->scale);
    for (int s = 0; s < 4; s++)
        if (cfg->stage_ms[s] == 0)
            return fedreci_error(FEDREC_ERR_INVALID, "coordinator: stage %d deadline is 0 ms", s);
    if (cfg->role < FEDRECI_ROLE_SINGLE || cfg->role > FEDRECI_ROLE_AGGREGATOR)
        return fedreci_error(FEDREC_ERR_INVALID, "coordinator: role %d", cfg->role);
    if (cfg->role == FEDRECI_ROLE_MASTER &&
        (!cfg->agg_listen_url || !cfg->agg_keys || cfg->n_agg_keys == 0 || !cfg->agg_master_sk))
        return fedreci_error(FEDREC_ERR_INVALID,
                             "coordinator: the master role needs an aggregator URL, at least "
                             "one aggregator key and its own identity key (agg_master_sk)");
    if (cfg->opt.kind == FEDRECI_OPT_ALS) {
        if (cfg->dp.epsilon > 0 || cfg->role != FEDRECI_ROLE_SINGLE)
            return fedreci_error(FEDREC_ERR_INVALID,
                                 "coordinator: the ALS step (x_u x_u^T uploads) runs without "
                                 "differential privacy (a DP round releases the DP-ALS "
                                 "statistics and takes their own item step) and without SecAgg "
                                 "groups (the group link does not carry the block yet): set step "
                                 "= adam");
        if (!(fedreci_mf_xx_weight(cfg->clip, cfg->x_bound) > 0) || !m || m->k > 256)
            return fedreci_error(FEDREC_ERR_INVALID,
                                 "coordinator: the ALS step needs a finite x_bound > 0 (got %g, "
                                 "clip %g) and at most 256 factors (got %u)",
                                 cfg->x_bound, cfg->clip, m ? m->k : 0);
    }
    if (cfg->reshuffle && cfg->dp.epsilon > 0)
        return fedreci_error(FEDREC_ERR_INVALID,
                             "coordinator: cohort selection by reshuffling with differential "
                             "privacy: the accountant assumes each round samples the clients "
                             "independently; select uniformly (reshuffle = 0)");
    if (cfg->role == FEDRECI_ROLE_MASTER && cfg->group_size && cfg->group_size < cfg->min_cohort)
        return fedreci_error(FEDREC_ERR_INVALID,
                             "coordinator: group_size %u below min_cohort %u (no group is ever "
                             "smaller than the minimum cohort)",
                             cfg->group_size, cfg->min_cohort);
    return check_model(m);
}

static fedrec_err nomem(void)
{
    return fedreci_error(FEDREC_ERR_NOMEM, "coordinator: allocating the engine");
}

/* The engine's copy of cfg with the defaults of its zero fields, the hooks,
 * the lock and the condition variables. Cannot fail. */
static void init_state(fedreci_coord *c, const fedreci_coord_config *cfg,
                       const fedreci_coord_hooks *hooks)
{
    c->cfg = *cfg;
    if (!c->cfg.checkin_quorum || c->cfg.checkin_quorum > c->cfg.cohort_size)
        c->cfg.checkin_quorum = c->cfg.checkin_quorum ? c->cfg.checkin_quorum : cfg->cohort_size;
    if (!c->cfg.retry_after_ms)
        c->cfg.retry_after_ms = 1000;
    if (!c->cfg.send_timeout_ms)
        c->cfg.send_timeout_ms = 10000;
    if (!c->cfg.max_msgs_per_round)
        c->cfg.max_msgs_per_round = 64;
    if (!c->cfg.first_round_id)
        c->cfg.first_round_id = 1;
    c->cfg.listen_urls = NULL;
    c->cfg.tls_cert_file = NULL;
    c->cfg.tls_key_file = NULL;
    c->cfg.agg_keys = NULL; /* all three copied by master.c */
    c->cfg.agg_listen_url = NULL;
    c->cfg.agg_master_sk = NULL;
    if (hooks)
        c->hooks = *hooks;
    c->next_round_id = c->cfg.first_round_id;
    c->global_tokens = c->cfg.new_ids_burst;
    c->global_t_ms = now_ms();
    randombytes_buf(c->addr_hash_key, sizeof c->addr_hash_key);
    c->start_unix_ms = fedreci_eng_unix_ms();
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv_done, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cv_timer, &ca);
    pthread_condattr_destroy(&ca);
    atomic_init(&c->closing_flag, 0);
}

/* Copies of the listen URLs and the TLS file names (they outlive create). */
static fedrec_err copy_urls(fedreci_coord *c, const fedreci_coord_config *cfg)
{
    c->urls = calloc(cfg->n_listen + 2, sizeof *c->urls);
    c->ports = calloc(cfg->n_listen, sizeof *c->ports);
    c->listeners = calloc(cfg->n_listen ? cfg->n_listen : 1, sizeof *c->listeners);
    if (!c->urls || !c->ports || !c->listeners)
        return nomem();
    for (size_t i = 0; i < cfg->n_listen; i++)
        if (!(c->urls[i] = strdup(cfg->listen_urls[i])))
            return nomem();
    if (cfg->tls_cert_file && !(c->urls[cfg->n_listen] = strdup(cfg->tls_cert_file)))
        return nomem();
    if (cfg->tls_key_file && !(c->urls[cfg->n_listen + 1] = strdup(cfg->tls_key_file)))
        return nomem();
    return FEDREC_OK;
}

/* The start model as the first published version (its factors, or seeded
 * ones), and the round buffers of its size. */
static fedrec_err publish_start_model(fedreci_coord *c, const fedreci_coord_model *start)
{
    uint32_t n_items = start->n_items, k = start->k;
    size_t n = (size_t)n_items * k;
    pmodel *pm = calloc(1, sizeof *pm);
    if (!pm)
        return nomem();
    atomic_init(&pm->refs, 1);
    c->model = pm;
    pm->version = start->version;
    pm->n_items = n_items;
    pm->k = k;
    pm->y = malloc(n * sizeof *pm->y);
    pm->gram = malloc((size_t)k * k * sizeof *pm->gram);
    /* room for the ALS step's x_u x_u^T block too */
    c->grad = malloc((n + FEDRECI_MF_XX_DIM(k)) * sizeof *c->grad);
    c->sum = malloc((n + FEDRECI_MF_XX_DIM(k) + 1) * sizeof *c->sum);
    if (!pm->y || !pm->gram || !c->grad || !c->sum)
        return nomem();
    if (start->item_factors)
        memcpy(pm->y, start->item_factors, n * sizeof *pm->y);
    else
        fedreci_mf_init(pm->y, n_items, k, c->cfg.seed, 0.01f);
    fedreci_mf_gram(pm->y, n_items, k, pm->gram);
    fedreci_wire_checksum(pm->y, n * sizeof *pm->y, pm->checksum);
    return FEDREC_OK;
}

/* The catalog of model m as a new pcat (one reference): copies of the item
 * codes (sent with every full model; *code_bytes gets their encoded size)
 * and of the retired rows, checked strictly ascending below n_items. */
static fedrec_err make_cat(const fedreci_coord_model *m, pcat **out, size_t *code_bytes)
{
    *code_bytes = 0;
    uint32_t n_items = m->n_items;
    if (m->n_retired && (!m->retired_rows || m->n_retired > n_items))
        return fedreci_error(FEDREC_ERR_INVALID, "coordinator: %zu retired rows for %u items",
                             m->n_retired, n_items);
    for (size_t i = 0; i < m->n_retired; i++)
        if (m->retired_rows[i] >= n_items ||
            (i > 0 && m->retired_rows[i] <= m->retired_rows[i - 1]))
            return fedreci_error(FEDREC_ERR_INVALID,
                                 "coordinator: retired row %zu (%u) not ascending below %u", i,
                                 m->retired_rows[i], n_items);
    pcat *cat = calloc(1, sizeof *cat);
    if (!cat)
        return nomem();
    atomic_init(&cat->refs, 1);
    fedrec_err e = FEDREC_OK;
    if (m->item_codes) {
        cat->codes = calloc(n_items ? n_items : 1, sizeof *cat->codes);
        if (!cat->codes)
            e = nomem();
        else
            cat->n_codes = n_items; /* unref frees the ones copied so far */
        for (uint32_t i = 0; !e && i < n_items; i++) {
            const char *s = m->item_codes[i] ? m->item_codes[i] : "";
            if (strlen(s) > FEDRECI_WIRE_MAX_CODE_BYTES)
                e = fedreci_error(FEDREC_ERR_INVALID,
                                  "coordinator: item code %u longer than %u bytes", i,
                                  FEDRECI_WIRE_MAX_CODE_BYTES);
            else if (!(cat->codes[i] = strdup(s)))
                e = nomem();
            else
                *code_bytes += strlen(s) + 3;
        }
    }
    if (!e && m->n_retired) {
        cat->retired = malloc(m->n_retired * sizeof *cat->retired);
        if (!cat->retired)
            e = nomem();
        else {
            memcpy(cat->retired, m->retired_rows, m->n_retired * sizeof *cat->retired);
            cat->n_retired = m->n_retired;
        }
    }
    if (e) {
        fedreci_eng_cat_unref(cat);
        return e;
    }
    *out = cat;
    return FEDREC_OK;
}

/* The request size cap, the optimizer, and the check that the largest cohort
 * fits the SecAgg+ overflow budget. */
static fedrec_err setup_rounds(fedreci_coord *c, size_t code_bytes)
{
    uint32_t n_items = c->model->n_items, k = c->model->k;
    c->cap = c->cfg.recv_max_bytes ? c->cfg.recv_max_bytes
                                   : fedreci_wire_cap(n_items, k, c->cfg.cohort_size, code_bytes);
    fedrec_err e = fedreci_optimizer_create(&c->opt, &c->cfg.opt, n_items, k);
    if (!e)
        e = fedreci_eng_dp_setup(c);
    if (e)
        return e;
    /* the largest SecAgg instance: the cohort, or a master's largest group
       (the overflow budget holds per group; the master adds in int64) */
    uint32_t n = c->cfg.cohort_size;
    if (c->cfg.role == FEDRECI_ROLE_MASTER && c->cfg.group_size && c->cfg.group_size < n)
        n = c->cfg.group_size;
    fedreci_secagg_params p;
    fedreci_eng_derive_params(c, n, c->next_round_id, &p, NULL);
    return fedreci_secagg_params_check(&p);
}

fedrec_err fedreci_coord_create(fedreci_coord **out, const fedreci_coord_config *cfg,
                                const fedreci_coord_hooks *hooks, const fedreci_coord_model *start)
{
    if (!out || !cfg)
        return fedreci_error(FEDREC_ERR_INVALID, "coordinator: NULL argument");
    fedrec_err e = check_config(cfg, start);
    if (e)
        return e;
    fedreci_coord *c = calloc(1, sizeof *c);
    if (!c)
        return fedreci_error(FEDREC_ERR_NOMEM, "coordinator: engine");
    init_state(c, cfg, hooks);
    size_t code_bytes = 0;
    e = copy_urls(c, cfg);
    if (!e)
        e = publish_start_model(c, start);
    if (!e)
        e = make_cat(start, &c->model->cat, &code_bytes);
    if (!e)
        e = setup_rounds(c, code_bytes);
    if (!e)
        e = fedreci_eng_transport_open(c);
    if (!e && c->cfg.role == FEDRECI_ROLE_MASTER) {
        c->cfg.agg_keys = cfg->agg_keys; /* copied by master_open */
        c->cfg.agg_listen_url = cfg->agg_listen_url;
        c->cfg.agg_master_sk = cfg->agg_master_sk;
        e = fedreci_eng_master_open(c);
        c->cfg.agg_keys = NULL;
        c->cfg.agg_listen_url = NULL;
        c->cfg.agg_master_sk = NULL;
    }
    if (e)
        fedreci_coord_destroy(c); /* unwinds whatever was made */
    else
        *out = c;
    return e;
}

fedrec_err fedreci_coord_register(fedreci_coord *c, uint64_t client_id,
                                  const uint8_t identity_pk[32], int opted_in)
{
    pthread_mutex_lock(&c->mu);
    crec *e = fedreci_eng_reg_insert(c, client_id);
    if (e) {
        memcpy(e->pk, identity_pk, 32);
        e->opted_in = opted_in ? 1 : 0;
    }
    pthread_mutex_unlock(&c->mu);
    return e ? FEDREC_OK : fedreci_error(FEDREC_ERR_NOMEM, "coordinator: registry");
}

fedrec_err fedreci_coord_exclude(fedreci_coord *c, uint64_t client_id, uint64_t round_id)
{
    pthread_mutex_lock(&c->mu);
    crec *e = fedreci_eng_reg_find(c, client_id);
    if (e)
        fedreci_eng_exclude(c, e, round_id, 0, NULL);
    pthread_mutex_unlock(&c->mu);
    return e ? FEDREC_OK
             : fedreci_error(FEDREC_ERR_NOT_FOUND,
                             "coordinator: exclude: client %016llx is not "
                             "registered",
                             (unsigned long long)client_id);
}

fedrec_err fedreci_coord_bench(fedreci_coord *c, uint64_t client_id, uint32_t strikes,
                               uint64_t benched_until, const char *reason)
{
    pthread_mutex_lock(&c->mu);
    crec *e = fedreci_eng_reg_find(c, client_id);
    if (e) {
        e->strikes = strikes > 255 ? 255 : (uint8_t)strikes;
        e->bench_until = benched_until;
        e->bench_why = fedreci_eng_bench_reason(c, reason);
        if (fedreci_eng_benched(c, e))
            fedreci_eng_benched_add(c, client_id);
    }
    pthread_mutex_unlock(&c->mu);
    return e ? FEDREC_OK
             : fedreci_error(FEDREC_ERR_NOT_FOUND,
                             "coordinator: bench: client %016llx is not registered",
                             (unsigned long long)client_id);
}

fedrec_err fedreci_coord_start(fedreci_coord *c)
{
    if (c->started)
        return fedreci_error(FEDREC_ERR_INVALID, "coordinator: already started");
    fedrec_err e = fedreci_eng_transport_start(c);
    if (!e && c->master)
        e = fedreci_eng_master_start(c);
    return e;
}

fedrec_err fedreci_coord_wait(fedreci_coord *c, int timeout_ms)
{
    fedrec_err e = FEDREC_OK;
    pthread_mutex_lock(&c->mu);
    struct timespec ts;
    if (timeout_ms >= 0)
        fedreci_deadline_after_ms(&ts, timeout_ms);
    while (!c->stopped) {
        if (timeout_ms < 0) {
            pthread_cond_wait(&c->cv_done, &c->mu);
        } else if (pthread_cond_timedwait(&c->cv_done, &c->mu, &ts) == ETIMEDOUT) {
            if (!c->stopped)
                e = fedreci_error(FEDREC_ERR_TIMEOUT, "coordinator: %d ms passed", timeout_ms);
            break;
        }
    }
    pthread_mutex_unlock(&c->mu);
    return e;
}

void fedreci_coord_stop(fedreci_coord *c)
{
    if (!c)
        return;
    outbox ob = {NULL, 0, 0};
    pthread_mutex_lock(&c->mu);
    if (!c->stopped) {
        c->stopped = 1;
        fedreci_log(FEDRECI_LOG_INFO, c->cur ? (int64_t)c->cur->id : -1, "stopping");
    }
    if (fedreci_eng_round_active(c))
        fedreci_eng_round_abort(c, c->cur, FEDREC_ERR_CLOSED, "the coordinator is shutting down",
                                &ob);
    fedreci_eng_release_waiting(c, FEDREC__V1__CHECK_IN_REPLY__STATUS__NO_ROUND, &ob);
    c->deadline = 0;
    pthread_cond_broadcast(&c->cv_done);
    pthread_mutex_unlock(&c->mu);
    fedreci_eng_flush(c, &ob);
}

void fedreci_coord_destroy(fedreci_coord *c)
{
    if (!c)
        return;
    if (c->started)
        fedreci_coord_stop(c);
    fedreci_eng_master_close(c);
    fedreci_eng_transport_close(c);
    fedreci_eng_round_free(c->cur);
    fedreci_eng_round_free(c->prev);
    fedreci_eng_reg_free(c);
    fedreci_eng_limits_free(c);
    free(c->waiting);
    free(c->epoch);
    fedreci_eng_model_unref(c->model);
    fedreci_optimizer_destroy(c->opt);
    free(c->grad);
    free(c->sum);
    fedreci_eng_dp_free(c);
    if (c->urls) {
        for (size_t i = 0; i < c->cfg.n_listen + 2; i++)
            free(c->urls[i]);
        free(c->urls);
    }
    free(c->ports);
    free(c->listeners);
    pthread_cond_destroy(&c->cv_timer);
    pthread_cond_destroy(&c->cv_done);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

void fedreci_coord_get_status(fedreci_coord *c, fedreci_coord_status *st)
{
    pthread_mutex_lock(&c->mu);
    memset(st, 0, sizeof *st);
    st->round_id = c->cur ? c->cur->id : 0;
    st->stage = fedreci_eng_round_active(c) ? fedreci_eng_phase_stage(c->cur->stage) : -1;
    st->model_version = c->model->version;
    st->rounds_completed = c->rounds_completed;
    st->rounds_aborted = c->rounds_aborted;
    st->clients_known = (uint32_t)c->reg_n;
    st->clients_connected = c->clients_connected;
    st->clients_waiting = (uint32_t)c->n_waiting;
    st->abort_streak = c->abort_streak;
    uint64_t now = now_ms();
    st->backoff_ms_left = c->hold_until > now ? c->hold_until - now : 0;
    st->bytes_in = c->bytes_in;
    st->bytes_out = c->bytes_out;
    st->stopped = c->stopped;
    st->connections = c->conns_open;
    st->refused_per_address = c->refused_conn_addr;
    st->refused_total = c->refused_conn_total;
    st->new_ids_refused_addr = c->refused_new_addr;
    st->new_ids_refused = c->refused_new_global;
    st->clients_evicted = c->clients_evicted;
    st->clients_benched = fedreci_eng_benched_count(c);
    st->benches = c->benches;
    st->checkins_refused_stale = c->refused_checkins;
    if (c->dp.on) {
        st->dp = 1;
        st->dp_epsilon = c->cfg.dp.epsilon;
        st->dp_delta = c->cfg.dp.delta;
        st->dp_spent = c->dp.spent;
        st->dp_eps_round = c->dp.p.epsilon_round;
        st->dp_rounds = c->dp.rounds;
        st->dp_min_survivors = c->dp.p.min_survivors;
        st->dp_noise_std = sqrt((double)c->dp.p.min_survivors * c->dp.p.noise_var) / c->dp.p.scale;
        st->dp_exhausted = c->dp.exhausted;
        snprintf(st->dp_refusal, sizeof st->dp_refusal, "%s", c->dp.refusal);
    }
    fedreci_eng_master_status(c, st);
    pthread_mutex_unlock(&c->mu);
}

fedrec_err fedreci_coord_get_model(fedreci_coord *c, float *y, size_t cap, uint64_t *version)
{
    fedrec_err e = FEDREC_OK;
    pthread_mutex_lock(&c->mu);
    size_t n = (size_t)c->model->n_items * c->model->k;
    if (cap < n) {
        e = fedreci_error(FEDREC_ERR_RANGE, "coordinator: model needs %zu floats, room for %zu", n,
                          cap);
    } else {
        memcpy(y, c->model->y, n * sizeof *y);
        *version = c->model->version;
    }
    pthread_mutex_unlock(&c->mu);
    return e;
}

void fedreci_coord_client_gone(fedreci_coord *c, uint64_t client_id)
{
    outbox ob = {NULL, 0, 0};
    pthread_mutex_lock(&c->mu);
    if (fedreci_eng_round_active(c)) {
        rstate *r = c->cur;
        long i = fedreci_find_u64(r->ids, r->n, client_id);
        if (i >= 0)
            fedreci_eng_member_gone(c, r, (uint32_t)i, &ob);
    }
    pthread_mutex_unlock(&c->mu);
    fedreci_eng_flush(c, &ob);
}

fedrec_err fedreci_coord_client_bytes(fedreci_coord *c, uint64_t client_id, uint64_t *update,
                                      uint64_t *total)
{
    fedrec_err e = FEDREC_OK;
    pthread_mutex_lock(&c->mu);
    crec *r = fedreci_eng_reg_find(c, client_id);
    if (!r) {
        e = fedreci_error(FEDREC_ERR_NOT_FOUND, "coordinator: client %llu unknown",
                          (unsigned long long)client_id);
    } else {
        *update = r->bytes_update;
        *total = r->bytes_total;
    }
    pthread_mutex_unlock(&c->mu);
    return e;
}

int fedreci_coord_port(const fedreci_coord *c, size_t i)
{
    return c && c->started && c->ports && i < c->cfg.n_listen ? c->ports[i] : 0;
}

fedrec_err fedreci_coord_hold(fedreci_coord *c, int timeout_ms)
{
    fedrec_err e = FEDREC_OK;
    struct timespec ts;
    if (timeout_ms >= 0)
        fedreci_deadline_after_ms(&ts, timeout_ms);
    pthread_mutex_lock(&c->mu);
    c->held = 1;
    while (fedreci_eng_round_active(c) && !c->stopped) {
        if (timeout_ms < 0) {
            pthread_cond_wait(&c->cv_done, &c->mu);
        } else if (pthread_cond_timedwait(&c->cv_done, &c->mu, &ts) == ETIMEDOUT) {
            if (fedreci_eng_round_active(c))
                e = fedreci_error(FEDREC_ERR_TIMEOUT,
                                  "coordinator: round %llu still open after %d ms",
                                  (unsigned long long)c->cur->id, timeout_ms);
            break;
        }
    }
    pthread_mutex_unlock(&c->mu);
    return e;
}

void fedreci_coord_release(fedreci_coord *c)
{
    outbox ob = {NULL, 0, 0};
    pthread_mutex_lock(&c->mu);
    if (c->held) {
        c->held = 0;
        if (!c->stopped) {
            fedreci_eng_maybe_select(c, &ob);
            if (!fedreci_eng_round_active(c) && c->n_waiting > 0)
                fedreci_eng_set_deadline(c, now_ms() + c->cfg.checkin_window_ms);
        }
    }
    pthread_mutex_unlock(&c->mu);
    fedreci_eng_flush(c, &ob);
}

fedrec_err fedreci_coord_set_model(fedreci_coord *c, const fedreci_coord_model *m)
{
    pthread_mutex_lock(&c->mu);
    pmodel *old = c->model;
    fedrec_err e = FEDREC_OK;
    if (!c->held || fedreci_eng_round_active(c))
        e = fedreci_error(FEDREC_ERR_BUSY, "coordinator: set_model needs a hold and no open round");
    else if (!m || m->k != old->k || m->n_items < old->n_items || m->version <= old->version ||
             check_model(m) != FEDREC_OK)
        e = fedreci_error(FEDREC_ERR_INVALID,
                          "coordinator: model v%llu (%u x %u) cannot replace v%llu (%u x %u): "
                          "same k, as many rows or more and a higher version needed",
                          (unsigned long long)(m ? m->version : 0), m ? m->n_items : 0,
                          m ? m->k : 0, (unsigned long long)old->version, old->n_items, old->k);
    size_t n = m ? (size_t)m->n_items * m->k : 0, code_bytes = 0;
    pmodel *pm = NULL;
    pcat *cat = NULL;
    float *grad = NULL;
    uint32_t *sum = NULL;
    if (!e) {
        pm = calloc(1, sizeof *pm);
        grad = malloc((n + FEDRECI_MF_XX_DIM(m->k)) * sizeof *grad);
        sum = malloc((n + FEDRECI_MF_XX_DIM(m->k) + 1) * sizeof *sum);
        if (pm) {
            pm->y = malloc(n * sizeof *pm->y);
            pm->gram = malloc((size_t)m->k * m->k * sizeof *pm->gram);
        }
        if (!pm || !pm->y || !pm->gram || !grad || !sum)
            e = nomem();
    }
    if (!e)
        e = make_cat(m, &cat, &code_bytes);
    if (!e && m->n_items > old->n_items)
        e = fedreci_optimizer_grow(c->opt, m->n_items);
    if (e) {
        if (pm) {
            free(pm->y);
            free(pm->gram);
            free(pm);
        }
        free(grad);
        free(sum);
        pthread_mutex_unlock(&c->mu);
        return e;
    }
    atomic_init(&pm->refs, 1);
    pm->version = m->version;
    pm->n_items = m->n_items;
    pm->k = m->k;
    if (m->item_factors)
        memcpy(pm->y, m->item_factors, n * sizeof *pm->y);
    else
        fedreci_mf_init(pm->y, m->n_items, m->k, c->cfg.seed, 0.01f);
    fedreci_mf_gram(pm->y, m->n_items, m->k, pm->gram);
    fedreci_wire_checksum(pm->y, n * sizeof *pm->y, pm->checksum);
    pm->cat = cat;
    free(c->grad);
    free(c->sum);
    c->grad = grad;
    c->sum = sum;
    c->model = pm;
    fedreci_eng_model_unref(old);
    if (!c->cfg.recv_max_bytes) {
        /* new connections get the new ceiling; open ones keep twice the old
           cap, which a catalog up to twice the size still fits */
        c->cap = fedreci_wire_cap(pm->n_items, pm->k, c->cfg.cohort_size, code_bytes);
        size_t ceiling = c->cap > SIZE_MAX / 2 ? SIZE_MAX : 2 * c->cap;
        nng_socket_set_size(c->sock, NNG_OPT_RECVMAXSZ, ceiling);
    }
    fedreci_log(FEDRECI_LOG_INFO, -1, "serving model version %llu (%u x %u, %zu retired rows)",
                (unsigned long long)pm->version, pm->n_items, pm->k, cat->n_retired);
    pthread_mutex_unlock(&c->mu);
    return FEDREC_OK;
}

fedrec_err fedreci_coord_reload_tls(fedreci_coord *c)
{
    if (!c->started)
        return fedreci_error(FEDREC_ERR_INVALID, "coordinator: not started");
    int n = 0;
    fedrec_err e = fedreci_eng_transport_reload_tls(c, &n);
    if (!e && c->master)
        e = fedreci_eng_master_reload_tls(c, &n);
    if (!e && n)
        fedreci_log(FEDRECI_LOG_INFO, -1, "TLS certificate %s reloaded on %d listener(s)",
                    c->urls[c->cfg.n_listen], n);
    return e;
}
