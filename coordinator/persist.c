#include "persist.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"

struct fedreci_persist {
    pthread_mutex_t lock;
    fedreci_db *db;
    fedreci_stats *stats;
    uint64_t catalog_id;
    uint64_t n_clients; /* registered in the database */
    uint64_t last_seen_round;
    int64_t seen_ms; /* when last_seen_round was first seen */
};

fedrec_err fedreci_persist_create(fedreci_persist **out, fedreci_db *db, fedreci_stats *stats,
                                  uint64_t catalog_id)
{
    fedreci_persist *p = calloc(1, sizeof *p);
    if (!p)
        return fedreci_error(FEDREC_ERR_NOMEM, "persist: out of memory");
    if (pthread_mutex_init(&p->lock, NULL) != 0) {
        free(p);
        return fedreci_error(FEDREC_ERR_NOMEM, "persist: cannot create a mutex");
    }
    p->db = db;
    p->stats = stats;
    p->catalog_id = catalog_id;
    fedrec_err e = fedreci_db_client_count(db, &p->n_clients);
    if (e) {
        pthread_mutex_destroy(&p->lock);
        free(p);
        return e;
    }
    *out = p;
    return FEDREC_OK;
}

void fedreci_persist_destroy(fedreci_persist *p)
{
    if (!p)
        return;
    pthread_mutex_destroy(&p->lock);
    free(p);
}

fedrec_err fedreci_persist_round_begin(fedreci_persist *p, const fedreci_round_begin *b)
{
    pthread_mutex_lock(&p->lock);
    if (b->round_id <= p->last_seen_round) {
        pthread_mutex_unlock(&p->lock);
        fedrec_err e = fedreci_error(FEDREC_ERR_DUPLICATE, "round %llu: already begun",
                                     (unsigned long long)b->round_id);
        fedreci_log(FEDRECI_LOG_ERROR, (int64_t)b->round_id, "cannot log round start: %s",
                    fedrec_errmsg());
        return e;
    }
    fedreci_round_record r = {0};
    r.round_id = b->round_id;
    r.started_ms = fedreci_db_now_ms();
    r.status = FEDRECI_ROUND_RUNNING;
    r.cohort = b->cohort;
    fedrec_err e = fedreci_db_round_begin(p->db, &r);
    if (!e) {
        p->last_seen_round = b->round_id;
        p->seen_ms = r.started_ms;
    }
    pthread_mutex_unlock(&p->lock);
    if (e) {
        fedreci_log(FEDRECI_LOG_ERROR, (int64_t)b->round_id, "cannot log round start: %s",
                    fedrec_errmsg());
        return e;
    }
    fedreci_log(FEDRECI_LOG_INFO, (int64_t)b->round_id,
                "round started: cohort %u of %u waiting, k=%u t=%u d=%u, model v%llu", b->cohort,
                b->waiting, b->params ? b->params->k : 0, b->params ? b->params->t : 0,
                b->params ? b->params->d : 0, (unsigned long long)b->model_version);
    if (p->stats)
        fedreci_stats_round_begin(p->stats, b->round_id);
    return FEDREC_OK;
}

fedrec_err fedreci_persist_model(fedreci_persist *p, uint64_t round_id, uint64_t version,
                                 const float *y, uint32_t n_items, uint32_t k)
{
    pthread_mutex_lock(&p->lock);
    fedreci_round_record r = {0};
    r.round_id = round_id;
    r.started_ms = round_id == p->last_seen_round ? p->seen_ms : fedreci_db_now_ms();
    r.ended_ms = fedreci_db_now_ms();
    r.status = FEDRECI_ROUND_COMPLETED;
    fedreci_model m = {0};
    m.version = version;
    m.n_items = n_items;
    m.k = k;
    m.y = (float *)y; /* read only: round_end encodes it, never frees it */
    m.catalog_id = p->catalog_id;
    m.origin = FEDRECI_MODEL_ROUND;
    fedrec_err e = fedreci_db_round_end(p->db, &r, &m);
    pthread_mutex_unlock(&p->lock);
    if (e) {
        fedreci_log(FEDRECI_LOG_ERROR, (int64_t)round_id, "cannot commit model version %llu: %s",
                    (unsigned long long)version, fedrec_errmsg());
        return e;
    }
    if (p->stats)
        fedreci_stats_set_model_version(p->stats, version);
    fedreci_log(FEDRECI_LOG_INFO, (int64_t)round_id, "model version %llu committed (%u x %u)",
                (unsigned long long)version, n_items, k);
    return FEDREC_OK;
}

fedrec_err fedreci_persist_round(fedreci_persist *p, const fedreci_round_record *r)
{
    if (r->status != FEDRECI_ROUND_COMPLETED && r->status != FEDRECI_ROUND_ABORTED)
        return fedreci_error(FEDREC_ERR_INVALID, "round %llu: not ended",
                             (unsigned long long)r->round_id);
    pthread_mutex_lock(&p->lock);
    fedreci_round_record rec = *r;
    if (rec.started_ms == 0)
        rec.started_ms = rec.round_id == p->last_seen_round ? p->seen_ms : fedreci_db_now_ms();
    if (rec.ended_ms == 0)
        rec.ended_ms = fedreci_db_now_ms();
    fedrec_err e;
    if (rec.status == FEDRECI_ROUND_COMPLETED) {
        e = fedreci_db_round_details(p->db, &rec);
    } else {
        rec.model_version = 0;
        e = fedreci_db_round_end(p->db, &rec, NULL);
    }
    pthread_mutex_unlock(&p->lock);
    if (p->stats)
        fedreci_stats_round_end(p->stats, &rec);
    fedreci_log(rec.status == FEDRECI_ROUND_COMPLETED ? FEDRECI_LOG_INFO : FEDRECI_LOG_WARN,
                (int64_t)rec.round_id,
                "round %s: cohort %u, survivors %u, dropped %u/%u/%u/%u, stages "
                "%u/%u/%u/%u ms, %llu bytes in, %llu bytes out%s%s",
                rec.status == FEDRECI_ROUND_COMPLETED ? "completed" : "aborted", rec.cohort,
                rec.survivors, rec.dropped[0], rec.dropped[1], rec.dropped[2], rec.dropped[3],
                rec.stage_ms[0], rec.stage_ms[1], rec.stage_ms[2], rec.stage_ms[3],
                (unsigned long long)rec.bytes_in, (unsigned long long)rec.bytes_out,
                rec.metrics_json[0] ? ", " : "", rec.metrics_json);
    if (e)
        fedreci_log(FEDRECI_LOG_ERROR, (int64_t)rec.round_id, "cannot log round: %s",
                    fedrec_errmsg());
    return e;
}

fedrec_err fedreci_persist_client(fedreci_persist *p, uint64_t client_id,
                                  const uint8_t identity_pk[32], int opted_in)
{
    pthread_mutex_lock(&p->lock);
    fedreci_client_record known;
    int fresh = fedreci_db_client_get(p->db, client_id, &known) == FEDREC_ERR_NOT_FOUND;
    fedrec_err e = fedreci_db_client_seen(p->db, client_id, identity_pk, fedreci_db_now_ms());
    if (!e && fresh)
        p->n_clients++;
    if (!e)
        e = fedreci_db_client_set_opted_out(p->db, client_id, !opted_in);
    pthread_mutex_unlock(&p->lock);
    if (e)
        fedreci_log(FEDRECI_LOG_WARN, -1, "client %llu: %s", (unsigned long long)client_id,
                    fedrec_errmsg());
    else
        fedreci_log(FEDRECI_LOG_DEBUG, -1, "client %llu seen (%s)", (unsigned long long)client_id,
                    opted_in ? "opted in" : "opted out");
    return e;
}

fedrec_err fedreci_persist_exclude(fedreci_persist *p, uint64_t client_id, uint64_t round_id)
{
    pthread_mutex_lock(&p->lock);
    fedrec_err e = fedreci_db_client_exclude(p->db, client_id, round_id);
    pthread_mutex_unlock(&p->lock);
    if (e)
        fedreci_log(FEDRECI_LOG_ERROR, (int64_t)round_id, "cannot exclude client %016llx: %s",
                    (unsigned long long)client_id, fedrec_errmsg());
    else
        fedreci_log(FEDRECI_LOG_WARN, (int64_t)round_id,
                    "client %016llx named a culprit: excluded from later rounds",
                    (unsigned long long)client_id);
    return e;
}

fedrec_err fedreci_persist_bench(fedreci_persist *p, uint64_t client_id, uint64_t round_id,
                                 uint32_t strikes, uint64_t benched_until, const char *reason)
{
    pthread_mutex_lock(&p->lock);
    fedrec_err e = fedreci_db_client_bench(p->db, client_id, strikes, benched_until, reason);
    pthread_mutex_unlock(&p->lock);
    if (e)
        fedreci_log(FEDRECI_LOG_ERROR, (int64_t)round_id, "cannot record the bench of %016llx: %s",
                    (unsigned long long)client_id, fedrec_errmsg());
    return e;
}

uint64_t fedreci_persist_clients(fedreci_persist *p)
{
    pthread_mutex_lock(&p->lock);
    uint64_t n = p->n_clients;
    pthread_mutex_unlock(&p->lock);
    return n;
}

fedrec_err fedreci_persist_catalog_reload(fedreci_persist *p, const char *path, uint32_t factors,
                                          uint64_t seed, fedreci_bootstrap *out)
{
    pthread_mutex_lock(&p->lock);
    fedrec_err e = fedreci_bootstrap_run(p->db, path, factors, seed, out);
    if (!e)
        p->catalog_id = out->catalog_id;
    pthread_mutex_unlock(&p->lock);
    return e;
}

fedrec_err fedreci_persist_dp_spent(fedreci_persist *p, uint64_t round_id,
                                    const fedreci_dp_event *ev, double eps_round,
                                    double eps_cumulative, double delta)
{
    fedreci_dp_spend r = {round_id, ev->mu, ev->l1, ev->l2, eps_round, eps_cumulative, delta};
    pthread_mutex_lock(&p->lock);
    fedrec_err e = fedreci_db_dp_spend(p->db, &r);
    pthread_mutex_unlock(&p->lock);
    if (e)
        fedreci_log(FEDRECI_LOG_ERROR, (int64_t)round_id,
                    "cannot record the differential-privacy release: %s", fedrec_errmsg());
    else
        fedreci_log(FEDRECI_LOG_INFO, (int64_t)round_id,
                    "differential privacy: release recorded, epsilon %.4f this round, %.4f spent "
                    "at delta %g",
                    eps_round, eps_cumulative, delta);
    return e;
}
