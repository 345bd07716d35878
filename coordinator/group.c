/* coordinator/engine: the aggregator role of SecAgg groups (issue 20). A
 * round starts when the aggregator module (aggregator.c) hands over the
 * group a master assigned (fedreci_coord_run_group); its stages run as in a
 * single coordinator (round.c); its checked sum goes out through
 * on_group_sum and the round ends with the master's verdict. See
 * engine_internal.h. */
#include "coordinator/engine_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/err.h"
#include "core/log.h"

fedrec_err fedreci_coord_publish_version(fedreci_coord *c, uint64_t version, const float *y)
{
    if (!c || !y || version == 0)
        return fedreci_error(FEDREC_ERR_INVALID, "coordinator: publish_version: version %llu",
                             (unsigned long long)version);
    pthread_mutex_lock(&c->mu);
    pmodel *nm = fedreci_eng_model_new(version, c->model->n_items, c->model->k, y, c->model->cat);
    if (nm) {
        pmodel *old = c->model;
        c->model = nm;
        fedreci_eng_model_unref(old);
    }
    pthread_mutex_unlock(&c->mu);
    return nm ? FEDREC_OK : fedreci_error(FEDREC_ERR_NOMEM, "coordinator: model version");
}

/* The checks of fedreci_coord_run_group that need no lock. */
static fedrec_err group_check(const fedreci_coord *c, const fedreci_coord_group *g)
{
    if (c->cfg.role != FEDRECI_ROLE_AGGREGATOR)
        return fedreci_error(FEDREC_ERR_INVALID, "coordinator: run_group: not an aggregator");
    if (!g->ids || !g->pks || !g->coord_sk)
        return fedreci_error(FEDREC_ERR_INVALID, "coordinator: run_group: NULL member lists");
    fedrec_err e = fedreci_secagg_params_check(&g->p);
    if (e)
        return e;
    if (g->p.n > c->cfg.cohort_size)
        return fedreci_error(FEDREC_ERR_INVALID,
                             "coordinator: group of %u members, this aggregator takes %u", g->p.n,
                             c->cfg.cohort_size);
    for (uint32_t i = 1; i < g->p.n; i++)
        if (g->ids[i] <= g->ids[i - 1])
            return fedreci_error(FEDREC_ERR_INVALID,
                                 "coordinator: group member ids not strictly ascending");
    for (int s = 0; s < 4; s++)
        if (g->stage_ms[s] == 0)
            return fedreci_error(FEDREC_ERR_INVALID, "coordinator: group stage %d deadline 0", s);
    return FEDREC_OK;
}

fedrec_err fedreci_coord_run_group(fedreci_coord *c, const fedreci_coord_group *g)
{
    if (!c || !g)
        return fedreci_error(FEDREC_ERR_INVALID, "coordinator: run_group: NULL argument");
    fedrec_err e = group_check(c, g);
    if (e)
        return e;
    uint32_t n = g->p.n;
    rstate *r = calloc(1, sizeof *r);
    if (r) {
        r->ids = malloc(n * sizeof *r->ids);
        r->mem = calloc(n, sizeof *r->mem);
        r->nbr = malloc(n * sizeof *r->nbr);
    }
    if (!r || !r->ids || !r->mem || !r->nbr) {
        fedreci_eng_round_free(r);
        return fedreci_error(FEDREC_ERR_NOMEM, "coordinator: group of %u", n);
    }
    memcpy(r->ids, g->ids, n * sizeof *r->ids);
    r->n = n;
    r->id = g->p.round_id;
    r->p = g->p;
    memcpy(r->coord_sk, g->coord_sk, sizeof r->coord_sk);
    r->adv_key_mi = -1;
    if (crypto_scalarmult_base(r->coord_pk, r->coord_sk) != 0)
        e = fedreci_error(FEDREC_ERR_CRYPTO, "coordinator: group key");
    for (uint32_t i = 0; i < n; i++)
        r->mem[i].park = -1;
    if (!e)
        e = fedreci_secagg_server_create(&r->srv, &r->p, r->ids, g->pks);
    pthread_mutex_lock(&c->mu);
    if (!e && fedreci_eng_round_active(c))
        e = fedreci_error(FEDREC_ERR_INVALID, "coordinator: run_group: round %llu still open",
                          (unsigned long long)c->cur->id);
    if (!e && (c->model->version != g->model_version ||
               (uint64_t)c->model->n_items * c->model->k + 1 != g->p.d))
        e = fedreci_error(FEDREC_ERR_INVALID,
                          "coordinator: run_group: model v%llu d %u, this engine serves v%llu "
                          "d %llu",
                          (unsigned long long)g->model_version, g->p.d,
                          (unsigned long long)c->model->version,
                          (unsigned long long)c->model->n_items * c->model->k + 1);
    /* the members with the identity keys the master vouches for (it checked
       their check-ins); a member's stage messages are verified with them */
    for (uint32_t i = 0; !e && i < n; i++) {
        crec *cr = fedreci_eng_reg_insert(c, r->ids[i]);
        if (!cr)
            e = fedreci_error(FEDREC_ERR_NOMEM, "coordinator: registry");
        else {
            memcpy(cr->pk, g->pks[i], 32);
            cr->opted_in = 1;
            cr->seen = ++c->seen_clock;
        }
    }
    if (e) {
        pthread_mutex_unlock(&c->mu);
        fedreci_eng_round_free(r);
        return e;
    }
    memcpy(c->cfg.stage_ms, g->stage_ms, sizeof c->cfg.stage_ms);
    fedreci_eng_bind_round(c, r); /* after the group's deadlines (stage_timeout_ms) */
    fedreci_eng_round_free(c->prev);
    c->prev = c->cur;
    c->cur = r;
    r->bytes_in0 = c->bytes_in;
    r->bytes_out0 = c->bytes_out;
    r->stage = 0;
    r->expected = n;
    r->t_stage = now_ms();
    r->version_after = c->model->version;
    fedreci_log(FEDRECI_LOG_INFO, (int64_t)r->id, "group start: %u members, k=%u t=%u d=%u, v%llu",
                n, r->p.k, r->p.t, r->p.d, (unsigned long long)g->model_version);
    fedreci_eng_set_deadline(c, r->t_stage + c->cfg.stage_ms[0]);
    pthread_mutex_unlock(&c->mu);
    return FEDREC_OK;
}

void fedreci_coord_group_verdict(fedreci_coord *c, uint64_t round_id, int completed,
                                 uint64_t model_version, const char *reason)
{
    outbox ob = {NULL, 0, 0};
    pthread_mutex_lock(&c->mu);
    rstate *r = c->cur;
    if (r && r->id == round_id && r->awaiting) {
        r->awaiting = 0;
        if (completed) {
            r->stage = ST_DONE;
            r->version_after = model_version;
            fedreci_eng_round_end(c, r, &ob);
        } else {
            char why[200];
            snprintf(why, sizeof why, "master: %s", reason && reason[0] ? reason : "not counted");
            fedreci_eng_round_abort(c, r, FEDREC_ERR_ABORTED, why, &ob);
        }
    }
    pthread_mutex_unlock(&c->mu);
    fedreci_eng_flush(c, &ob);
}
