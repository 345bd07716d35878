/* The shared test fixture: a coordinator engine with a world of test clients
 * (see harness_engine.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness_engine.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <nng/protocol/reqrep0/req.h>
#include <sodium.h>
#include <sqlite3.h>

#include "core/secagg/groups.h"

/* ---- a start model -------------------------------------------------------- */

void th_model_init(th_model *m, uint32_t n_items, uint32_t k, uint32_t mul, uint32_t mod,
                   float scale, const char *code_fmt)
{
    assert_true(n_items <= TH_MAX_ITEMS && (size_t)n_items * k <= TH_MAX_FACTORS);
    memset(m, 0, sizeof *m);
    m->n_items = n_items;
    m->k = k;
    for (uint32_t i = 0; i < n_items * k; i++)
        m->y[i] = (float)((int)((i * mul) % mod) - (int)(mod / 2)) * scale;
    m->has_codes = code_fmt != NULL;
    for (uint32_t i = 0; code_fmt && i < n_items; i++) {
        snprintf(m->code_buf[i], sizeof m->code_buf[i], code_fmt, (int)i);
        m->codes[i] = m->code_buf[i];
    }
}

fedreci_coord_model th_model_start(const th_model *m, int with_codes)
{
    fedreci_coord_model s = {
        1, m->n_items, m->k, m->y, with_codes && m->has_codes ? m->codes : NULL, NULL, 0};
    return s;
}

/* ---- a coordinator -------------------------------------------------------- */

void th_coord_config(fedreci_coord_config *cfg, const char **url_slot, const char *url)
{
    fedreci_coord_config_default(cfg);
    url_slot[0] = url;
    cfg->listen_urls = url_slot;
    cfg->n_listen = 1;
}

fedreci_coord *th_coord_start(const fedreci_coord_config *cfg, const fedreci_coord_hooks *hooks,
                              const fedreci_coord_model *m)
{
    fedreci_coord *c = NULL;
    if (fedreci_coord_create(&c, cfg, hooks, m))
        fail_msg("coordinator create: %s", fedrec_errmsg());
    if (fedreci_coord_start(c)) {
        fedreci_coord_destroy(c);
        fail_msg("coordinator start: %s", fedrec_errmsg());
    }
    return c;
}

uint64_t th_wait_client_bytes(fedreci_coord *c, uint64_t id, int update, uint64_t above)
{
    for (;;) {
        uint64_t upd = 0, tot = 0;
        fedrec_err e = fedreci_coord_client_bytes(c, id, &upd, &tot);
        if (e != FEDREC_ERR_NOT_FOUND) {
            assert_int_equal(e, FEDREC_OK);
            if ((update ? upd : tot) > above)
                return update ? upd : tot;
        }
        usleep(1000);
    }
}

/* ---- a world of test clients: the hooks ----------------------------------- */

void th_checksum(const float *y, size_t n, uint8_t out[32])
{
    crypto_generichash(out, 32, (const uint8_t *)y, n * sizeof *y, NULL, 0);
}

static void on_round_done(void *arg, const fedreci_round_stats *st)
{
    th_world *w = arg;
    pthread_mutex_lock(&w->mu);
    uint64_t r = st->round_id - w->first_round;
    if (st->round_id >= w->first_round && r < TH_MAXR) {
        th_round *rec = &w->round[r];
        rec->done = 1;
        rec->st = *st;
        rec->params = *st->params;
        rec->st.params = &rec->params;
        for (uint32_t i = 0; i < st->cohort && i < TH_MAXC; i++)
            rec->cohort[i] = st->cohort_ids[i];
        rec->st.cohort_ids = rec->cohort;
        for (uint32_t i = 0; i < st->survivors && i < TH_MAXC; i++)
            rec->surv[i] = st->survivor_ids[i];
        rec->st.survivor_ids = rec->surv;
        rec->has_sum = st->sum != NULL;
        if (st->sum)
            memcpy(rec->sum, st->sum, (size_t)w->d * sizeof *rec->sum);
        rec->st.sum = st->sum ? rec->sum : NULL;
        snprintf(rec->reason, sizeof rec->reason, "%s", st->abort_reason ? st->abort_reason : "");
        rec->st.abort_reason = rec->reason;
    }
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static fedrec_err on_commit(void *arg, uint64_t round_id, uint64_t version, const float *y,
                            uint32_t n_items, uint32_t k)
{
    th_world *w = arg;
    (void)round_id;
    (void)version;
    pthread_mutex_lock(&w->mu);
    w->commits++;
    if (n_items != w->model->n_items || k != w->model->k)
        w->bad_commits++;
    th_checksum(y, (size_t)n_items * k, w->committed);
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return FEDREC_OK;
}

static void on_model(void *arg, const fedreci_wire_model *m)
{
    th_client *c = arg;
    th_world *w = c->w;
    pthread_mutex_lock(&w->mu);
    c->got_model++;
    c->sum_version = m->version;
    memcpy(c->model_sum, m->checksum, sizeof c->model_sum);
    if (m->n_items != w->model->n_items || m->k != w->model->k || !m->gram ||
        m->n_item_codes != (w->model->has_codes ? w->model->n_items : 0))
        w->bad_models++;
    pthread_mutex_unlock(&w->mu);
}

static fedrec_err compute_update(void *arg, const fedreci_wire_round *rd, float *x,
                                 uint32_t *weight)
{
    th_client *c = arg;
    return c->w->compute_update(arg, rd, x, weight);
}

void th_record_quantized(th_client *c, uint64_t round_id, const uint32_t *q, uint32_t d)
{
    th_world *w = c->w;
    uint64_t r = round_id - w->first_round;
    pthread_mutex_lock(&w->mu);
    if (d == w->d && round_id >= w->first_round && r < TH_MAXR) {
        memcpy(c->q[r], q, (size_t)d * sizeof *q);
        c->has_q[r] = 1;
    } else {
        w->bad_inputs++;
    }
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static void on_quantized(void *arg, uint64_t round_id, const uint32_t *q, uint32_t d)
{
    th_record_quantized(arg, round_id, q, d);
}

static void on_upload(void *arg, uint64_t round_id, int stage, size_t bytes, const char *what,
                      uint32_t clipped)
{
    th_client *c = arg;
    th_world *w = c->w;
    (void)what;
    uint64_t r = round_id - w->first_round;
    pthread_mutex_lock(&w->mu);
    c->upload_bytes += bytes;
    c->stages_sent |= 1u << stage;
    if (stage == 2 && round_id >= w->first_round && r < TH_MAXR) {
        if (!c->masked_uploads[r] || clipped < c->clipped_min[r])
            c->clipped_min[r] = clipped;
        if (!c->masked_uploads[r] || clipped > c->clipped_max[r])
            c->clipped_max[r] = clipped;
        c->masked_uploads[r]++;
    }
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static void on_done(void *arg, const fedreci_session_result *r)
{
    th_client *c = arg;
    th_world *w = c->w;
    if (r->outcome == FEDRECI_SESSION_DROPPED && w->gone_to)
        fedreci_coord_client_gone(w->gone_to, c->id);
    pthread_mutex_lock(&w->mu);
    c->res = *r;
    c->done = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* ---- a world of test clients ---------------------------------------------- */

void th_world_init(th_world *w, const th_model *m, int n, uint64_t first_round,
                   fedrec_err (*update)(void *, const fedreci_wire_round *, float *, uint32_t *))
{
    assert_true(n >= 0 && n <= TH_MAXC);
    assert_true((size_t)m->n_items * m->k + 1 <= TH_MAXD);
    memset(w, 0, sizeof *w);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->model = m;
    w->d = m->n_items * m->k + 1;
    w->n = n;
    w->first_round = first_round;
    w->compute_update = update;
    for (int i = 0; i < n; i++) {
        w->cl[i].w = w;
        crypto_sign_keypair(w->cl[i].pk, w->cl[i].sk);
        w->cl[i].id = fedreci_secagg_id_from_pk(w->cl[i].pk);
    }
    th_checksum(m->y, (size_t)m->n_items * m->k, w->committed);
}

fedreci_coord_hooks th_world_hooks(th_world *w)
{
    fedreci_coord_hooks h = {
        .arg = w, .on_round_done = on_round_done, .on_model_committed = on_commit};
    return h;
}

th_client *th_client_of(th_world *w, uint64_t id)
{
    for (int i = 0; i < w->n; i++)
        if (w->cl[i].id == id)
            return &w->cl[i];
    return NULL;
}

void th_session_config(fedreci_session_config *cfg, const char *url, const th_client *c)
{
    fedreci_session_config_default(cfg);
    cfg->url = url;
    cfg->client_id = c->id;
    cfg->identity_sk = c->sk;
    cfg->model_version = c->model_version;
    /* the checksum of the model it holds, when it downloaded that one (a
       test that only sets model_version makes the session download it) */
    if (c->model_version && c->sum_version == c->model_version)
        cfg->model_checksum = c->model_sum;
}

fedreci_session *th_session_start(th_client *c, const fedreci_session_config *cfg)
{
    fedreci_session_hooks h = {c, on_model, compute_update, on_upload, on_quantized, on_done};
    fedreci_session *s = NULL;
    pthread_mutex_lock(&c->w->mu);
    c->done = 0;
    pthread_mutex_unlock(&c->w->mu);
    if (fedreci_session_create(&s, cfg, &h))
        fail_msg("session create: %s", fedrec_errmsg());
    assert_int_equal(fedreci_session_start(s), FEDREC_OK);
    return s;
}

void th_sessions_finish(fedreci_session **s, int n, fedreci_session_result *res)
{
    for (int i = 0; i < n; i++) {
        fedreci_session_result r;
        assert_int_equal(fedreci_session_wait(s[i], -1, &r), FEDREC_OK);
        if (res)
            res[i] = r;
        fedreci_session_destroy(s[i]);
        s[i] = NULL;
    }
}

void th_wait_done(th_client *c)
{
    pthread_mutex_lock(&c->w->mu);
    while (!c->done)
        pthread_cond_wait(&c->w->cv, &c->w->mu);
    pthread_mutex_unlock(&c->w->mu);
}

void th_check_world(const th_world *w)
{
    assert_int_equal(w->bad_commits, 0);
    assert_int_equal(w->bad_models, 0);
    assert_int_equal(w->bad_inputs, 0);
}

void th_check_oracle(th_world *w, int r)
{
    assert_true(r >= 0 && r < TH_MAXR);
    const th_round *rec = &w->round[r];
    assert_true(rec->done);
    assert_true(rec->st.completed);
    assert_true(rec->has_sum);
    uint32_t plain[TH_MAXD] = {0};
    for (uint32_t i = 0; i < rec->st.survivors; i++) {
        assert_true(i < TH_MAXC);
        th_client *c = th_client_of(w, rec->surv[i]);
        assert_non_null(c);
        assert_true(c->has_q[r]);
        for (uint32_t j = 0; j < w->d; j++)
            plain[j] += c->q[r][j];
    }
    assert_memory_equal(plain, rec->sum, (size_t)w->d * sizeof *plain);
    /* the weight coordinate counts the survivors (weight 1 each) */
    assert_int_equal(plain[w->d - 1], rec->st.survivors);
    th_check_world(w);
}

/* ---- a hand-driven client on a raw REQ socket ----------------------------- */

void th_raw_open(th_raw *r, const char *url, int timeout_ms)
{
    memset(r, 0, sizeof *r);
    assert_int_equal(nng_req0_open(&r->sock), 0);
    assert_int_equal(nng_dial(r->sock, url, NULL, 0), 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(nng_ctx_open(&r->ctx[i], r->sock), 0);
        nng_ctx_set_ms(r->ctx[i], NNG_OPT_REQ_RESENDTIME, 0x7fffffff);
        assert_int_equal(nng_aio_alloc(&r->aio[i], NULL, NULL), 0);
        nng_aio_set_timeout(r->aio[i], timeout_ms);
    }
}

void th_raw_close(th_raw *r)
{
    for (int i = 0; i < 2; i++) {
        nng_aio_stop(r->aio[i]);
        nng_aio_free(r->aio[i]);
    }
    nng_close(r->sock);
}

void th_raw_keys(th_raw *r, const uint8_t *sk, const uint8_t *mac)
{
    r->sk = sk;
    r->has_mac = mac != NULL;
    if (mac)
        memcpy(r->mac, mac, sizeof r->mac);
}

/* Signs m with r's identity key, or MACs it when it is the advert or a stage
 * message after it and r has the round's MAC key (docs/protocol.md "Authentication"); a message
 * that does not decode, or a raw client without keys, sends m as it is. */
static void raw_auth(const th_raw *r, nng_msg *m)
{
    fedreci_wire_env *e = NULL;
    if (!r->sk || fedreci_wire_decode_msg(m, 1u << 24, &e))
        return;
    fedreci_wire_hdr h = fedreci_wire_header(e);
    /* the advert and every stage message after it (protocol version 7) */
    int masked = e->stage >= FEDRECI_WIRE_STAGE_ADVERTISE;
    fedreci_wire_free(e);
    if (masked && r->has_mac)
        assert_int_equal(fedreci_wire_mac(m, r->mac), FEDREC_OK);
    else
        assert_int_equal(fedreci_wire_sign(m, &h, r->sk), FEDREC_OK);
}

void th_raw_send(th_raw *r, int i, nng_msg *m)
{
    raw_auth(r, m);
    nng_aio_set_msg(r->aio[i], m);
    nng_ctx_send(r->ctx[i], r->aio[i]);
    nng_aio_wait(r->aio[i]);
    assert_int_equal(nng_aio_result(r->aio[i]), 0);
    nng_ctx_recv(r->ctx[i], r->aio[i]);
}

fedreci_wire_env *th_raw_wait(th_raw *r, int i)
{
    nng_aio_wait(r->aio[i]);
    assert_int_equal(nng_aio_result(r->aio[i]), 0);
    nng_msg *m = nng_aio_get_msg(r->aio[i]);
    fedreci_wire_env *e = NULL;
    assert_int_equal(fedreci_wire_decode_msg(m, 1u << 24, &e), FEDREC_OK);
    nng_msg_free(m);
    return e;
}

fedreci_wire_env *th_raw_req(th_raw *r, nng_msg *m)
{
    th_raw_send(r, 0, m);
    return th_raw_wait(r, 0);
}

void th_raw_abandon(th_raw *r, int i)
{
    nng_aio_cancel(r->aio[i]);
    nng_aio_wait(r->aio[i]);
    if (nng_aio_result(r->aio[i]) == 0)
        nng_msg_free(nng_aio_get_msg(r->aio[i]));
}

void th_expect_error(fedreci_wire_env *e, fedrec_err code)
{
    assert_int_equal(e->body_case, FEDREC__V1__ENVELOPE__BODY_ERROR);
    assert_int_equal(e->error->code, code);
    fedreci_wire_free(e);
}

/* ---- a hand-driven SecAgg+ client ----------------------------------------- */

void th_hand_init(th_hand *h, th_client *me, const fedreci_wire_round *rd, uint8_t seed0)
{
    memset(h, 0, sizeof *h);
    h->me = me;
    h->rd = *rd;
    uint8_t seed[32] = {seed0};
    assert_int_equal(fedreci_secagg_client_create(&h->sa, &rd->secagg, me->id, me->sk, seed),
                     FEDREC_OK);
    /* the round trains on the last committed model (or the start model) */
    uint8_t binding[32];
    fedreci_wire_binding(rd, me->w->committed, binding);
    assert_int_equal(fedreci_secagg_client_set_binding(h->sa, binding), FEDREC_OK);
    assert_int_equal(fedreci_secagg_client_advertise(h->sa, &h->adv), FEDREC_OK);
    assert_int_equal(fedreci_secagg_client_mac_key(h->sa, rd->coord_pk, h->mac), FEDREC_OK);
}

void th_hand_destroy(th_hand *h)
{
    fedreci_secagg_client_destroy(h->sa);
    h->sa = NULL;
}

nng_msg *th_hand_msg(const th_hand *h, int stage)
{
    fedreci_wire_hdr hs = {h->me->id, h->rd.secagg.round_id, (uint32_t)stage};
    nng_msg *m = NULL;
    fedrec_err e = FEDREC_ERR_INVALID;
    switch (stage) {
    case FEDRECI_WIRE_STAGE_ADVERTISE:
        e = fedreci_wire_enc_advertise(&m, &hs, &h->adv);
        break;
    case FEDRECI_WIRE_STAGE_SEED:
        assert_true(h->n_ids > 0);
        e = fedreci_wire_enc_seed_reveal(&m, &hs, h->contribution);
        break;
    case FEDRECI_WIRE_STAGE_CONSISTENCY:
        assert_non_null(h->tags);
        {
            const uint64_t *peers = NULL;
            size_t n_peers = 0;
            e = fedreci_secagg_client_endorse_peers(h->sa, &peers, &n_peers);
            if (!e)
                e = fedreci_wire_enc_consistency(&m, &hs, peers, n_peers, h->tags, h->ntags,
                                                 fedreci_secagg_client_endorsement(h->sa), NULL, 0);
        }
        break;
    case FEDRECI_WIRE_STAGE_SHARE_KEYS:
        assert_non_null(h->cts);
        e = fedreci_wire_enc_ciphertexts(&m, &hs, 0, h->cts, h->ncts);
        break;
    case FEDRECI_WIRE_STAGE_COMPLAINT:
        e = fedreci_wire_enc_complaints(&m, &hs, h->cpl, h->ncpl);
        break;
    case FEDRECI_WIRE_STAGE_OPENING:
        e = fedreci_wire_enc_openings(&m, &hs, h->ops, h->nops);
        break;
    case FEDRECI_WIRE_STAGE_MASKED_INPUT:
        assert_non_null(h->masked);
        e = fedreci_wire_enc_masked(&m, &hs, h->masked, h->rd.secagg.d);
        break;
    case FEDRECI_WIRE_STAGE_UNMASK:
        assert_non_null(h->rv);
        e = fedreci_wire_enc_unmask(&m, &hs, h->rv, h->nrv);
        break;
    default:
        fail_msg("th_hand_msg: stage %d", stage);
    }
    assert_int_equal(e, FEDREC_OK);
    return m;
}

void th_hand_roster(th_hand *h, fedreci_wire_env *e, size_t members)
{
    fedreci_secagg_advert *ro;
    size_t nro;
    assert_int_equal(fedreci_wire_get_roster(e, h->me->id, 2, h->rd.secagg.n, &ro, &nro),
                     FEDREC_OK);
    const uint8_t *digest;
    assert_int_equal(fedreci_wire_get_seed_digest(e, &digest), FEDREC_OK);
    assert_int_equal(nro, members);
    assert_true(nro <= sizeof h->ids / sizeof h->ids[0]);
    for (size_t i = 0; i < nro; i++)
        h->ids[i] = ro[i].client_id;
    h->n_ids = nro;
    assert_int_equal(fedreci_secagg_client_reveal(h->sa, h->ids, nro, digest, h->contribution),
                     FEDREC_OK);
    fedreci_wire_free(e);
    free(ro);
}

void th_hand_seed(th_hand *h, fedreci_wire_env *e)
{
    fedreci_secagg_advert *ro;
    uint8_t *contribs, *missing;
    assert_int_equal(fedreci_wire_get_seed_relay(e, h->ids, h->n_ids, &contribs, &missing, &ro),
                     FEDREC_OK);
    fedreci_wire_free(e);
    assert_int_equal(fedreci_secagg_client_share_keys_missing(h->sa, ro, h->n_ids, contribs,
                                                              missing, &h->cts, &h->ncts),
                     FEDREC_OK);
    free(ro);
    free(contribs);
    free(missing);
}

void th_hand_relay(th_hand *h, fedreci_wire_env *e, size_t n_in)
{
    fedreci_secagg_ciphertext *in;
    size_t nin;
    assert_int_equal(fedreci_wire_get_ciphertexts(e, h->rd.secagg.n, &in, &nin), FEDREC_OK);
    assert_int_equal(nin, n_in);
    fedreci_secagg_client_set_lenient(h->sa, 1);
    assert_int_equal(fedreci_secagg_client_receive(h->sa, in, nin, &h->cpl, &h->ncpl), FEDREC_OK);
    free(in);
    fedreci_wire_free(e); /* the ciphertexts pointed into it */
}

void th_hand_outcome(th_hand *h, fedreci_wire_env *e)
{
    int final = 0;
    const uint64_t *ex;
    size_t n_ex;
    assert_int_equal(fedreci_wire_get_complaint_relay(e, &final, &ex, &n_ex), FEDREC_OK);
    assert_true(final);
    fedreci_secagg_opening *op;
    size_t n_op;
    assert_int_equal(fedreci_wire_get_openings(e, h->rd.secagg.n, &op, &n_op), FEDREC_OK);
    assert_int_equal(fedreci_secagg_client_resolve(h->sa, ex, n_ex, op, n_op), FEDREC_OK);
    free(op);
    fedreci_wire_free(e);
    float x[TH_MAXD];
    uint32_t wgt;
    assert_true(h->rd.secagg.d <= TH_MAXD);
    assert_int_equal(h->me->w->compute_update(h->me, &h->rd, x, &wgt), FEDREC_OK);
    assert_int_equal(fedreci_secagg_client_masked_input(h->sa, NULL, 0, x, wgt, &h->masked, NULL),
                     FEDREC_OK);
    th_record_quantized(h->me, h->rd.secagg.round_id, fedreci_secagg_client_quantized_input(h->sa),
                        h->rd.secagg.d);
}

void th_hand_unmask(th_hand *h, fedreci_wire_env *e, size_t n_surv, size_t n_drop)
{
    const uint64_t *sv, *dr;
    size_t ns, nd;
    assert_int_equal(fedreci_wire_get_unmask_request(e, &sv, &ns, &dr, &nd), FEDREC_OK);
    assert_int_equal(ns, n_surv);
    assert_int_equal(nd, n_drop);
    assert_int_equal(fedreci_secagg_client_consistency(h->sa, sv, ns, dr, nd, &h->tags, &h->ntags),
                     FEDREC_OK);
    fedreci_wire_free(e);
}

void th_hand_tags(th_hand *h, fedreci_wire_env *e)
{
    fedreci_secagg_tag *tags;
    size_t n;
    const uint64_t *peers = NULL;
    size_t n_peers = 0;
    assert_int_equal(fedreci_secagg_client_endorse_peers(h->sa, &peers, &n_peers), FEDREC_OK);
    assert_int_equal(fedreci_wire_get_tags(e, h->adv.client_id, peers, n_peers, &tags, &n),
                     FEDREC_OK);
    fedreci_wire_free(e);
    assert_int_equal(fedreci_secagg_client_unmask(h->sa, tags, n, &h->rv, &h->nrv), FEDREC_OK);
    free(tags);
}

/* ---- the daemon as a process ---------------------------------------------- */

/* Daemons started and not yet stopped (th_daemon_teardown kills them). */
#define TH_MAX_LIVE 4
static pid_t th_live[TH_MAX_LIVE];

static void live_set(pid_t old, pid_t pid)
{
    for (int i = 0; i < TH_MAX_LIVE; i++)
        if (th_live[i] == old) {
            th_live[i] = pid;
            return;
        }
}

int th_daemon_teardown(void **state)
{
    (void)state;
    for (int i = 0; i < TH_MAX_LIVE; i++)
        if (th_live[i] > 0) {
            kill(th_live[i], SIGKILL);
            waitpid(th_live[i], NULL, 0);
            th_live[i] = 0;
        }
    return 0;
}

void th_daemon_init(th_daemon *d, const char *tag)
{
    memset(d, 0, sizeof *d);
    snprintf(d->dir, sizeof d->dir, "/tmp/fedrec-%s-XXXXXX", tag);
    assert_non_null(mkdtemp(d->dir));
    snprintf(d->db, sizeof d->db, "%s/state.sqlite", d->dir);
}

int th_log_count(const th_daemon *d, const char *a, const char *b, const char *c)
{
    char *s = th_slurp(d->log);
    int n = 0;
    for (char *line = s ? strtok(s, "\n") : NULL; line; line = strtok(NULL, "\n"))
        if (strstr(line, a) && (!b || strstr(line, b)) && (!c || strstr(line, c)))
            n++;
    free(s);
    return n;
}

int th_log_wait(const th_daemon *d, const char *a, const char *b, const char *c)
{
    for (int i = 0; i < 3000; i++) {
        if (th_log_count(d, a, b, c) > 0)
            return 1;
        usleep(20000);
    }
    fprintf(stderr, "no log line with '%s' '%s' '%s' in %s\n", a, b ? b : "", c ? c : "", d->log);
    return 0;
}

void th_log_dump(const th_daemon *d)
{
    char *s = th_slurp(d->log);
    if (s) {
        size_t n = strlen(s);
        fprintf(stderr, "---- %s (last 8000 bytes)\n%s\n", d->log, s + (n > 8000 ? n - 8000 : 0));
    }
    free(s);
}

int th_log_number_after(const th_daemon *d, const char *needle)
{
    for (int i = 0; i < 3000; i++) {
        char *s = th_slurp(d->log);
        char *p = s ? strstr(s, needle) : NULL;
        if (p) {
            int v = atoi(p + strlen(needle));
            free(s);
            return v;
        }
        free(s);
        usleep(20000);
    }
    th_log_dump(d);
    fail_msg("no log line with '%s'", needle);
    return 0;
}

void th_daemon_launch(th_daemon *d, const char *listen, const char *const *args,
                      const char *log_suffix)
{
    snprintf(d->log, sizeof d->log, "%s/coordinator%s.log", d->dir, log_suffix ? log_suffix : "");
    const char *argv[64];
    int n = 0;
    argv[n++] = FEDREC_BIN_DIR "/coordinator/fedrec-coordinator";
    argv[n++] = "--db";
    argv[n++] = d->db;
    argv[n++] = "--listen";
    argv[n++] = listen;
    for (size_t i = 0; args && args[i]; i++) {
        assert_true(n < 62);
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    d->pid = th_spawn(argv[0], argv, NULL, d->log, 0600);
    assert_true(d->pid > 0);
    live_set(0, d->pid);
    char needle[128];
    snprintf(needle, sizeof needle, "listening on %s (port ", listen);
    d->port = th_log_number_after(d, needle);
    assert_true(d->port > 0);
    const char *host = strstr(listen, "://");
    assert_non_null(host);
    snprintf(d->url, sizeof d->url, "%.*s://127.0.0.1:%d", (int)(host - listen), listen, d->port);
}

void th_daemon_stop(th_daemon *d, int check_db, int keep)
{
    int st = 0;
    kill(d->pid, SIGTERM);
    assert_int_equal(waitpid(d->pid, &st, 0), d->pid);
    live_set(d->pid, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        th_log_dump(d);
        fail_msg("coordinator exit status %d", st);
    }
    if (check_db) {
        sqlite3 *db = NULL;
        assert_int_equal(sqlite3_open_v2(d->db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
        sqlite3_stmt *q = NULL;
        assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &q, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(q), SQLITE_ROW);
        assert_string_equal((const char *)sqlite3_column_text(q, 0), "ok");
        sqlite3_finalize(q);
        sqlite3_close(db);
    }
    if (keep)
        return;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d->dir);
    assert_int_equal(system(cmd), 0);
}

char *th_daemon_round_row(const th_daemon *d, uint64_t r, char status[16])
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(d->db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    sqlite3_stmt *q = NULL;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT status, coalesce(metrics, '') FROM rounds "
                                        "WHERE round_id = ?",
                                        -1, &q, NULL),
                     SQLITE_OK);
    sqlite3_bind_int64(q, 1, (sqlite3_int64)r);
    char *json = NULL;
    status[0] = 0;
    if (sqlite3_step(q) == SQLITE_ROW) {
        snprintf(status, 16, "%s", (const char *)sqlite3_column_text(q, 0));
        json = strdup((const char *)sqlite3_column_text(q, 1));
    }
    sqlite3_finalize(q);
    sqlite3_close(db);
    if (!json) {
        th_log_dump(d);
        fail_msg("round %llu has no row in the round log", (unsigned long long)r);
    }
    return json;
}

/* ---- an honest client over the network ------------------------------------ */

fedrec_err th_gclient_pattern(th_gclient *g, const fedreci_wire_round *r, float *x, uint32_t *w)
{
    for (uint32_t i = 0; i + 1 < r->secagg.d; i++)
        x[i] = (float)((int)((i * 7 + g->id) % 29) - 14) * 0.37f;
    *w = r->secagg.max_weight;
    return FEDREC_OK;
}

static fedrec_err g_update(void *arg, const fedreci_wire_round *r, float *x, uint32_t *w)
{
    th_gclient *g = arg;
    return g->update ? g->update(g, r, x, w) : th_gclient_pattern(g, r, x, w);
}

static void g_quantized(void *arg, uint64_t round_id, const uint32_t *q, uint32_t d)
{
    th_gclient *g = arg;
    if (g->q && d <= g->q_cap) {
        memcpy(g->q, q, (size_t)d * sizeof *q);
        g->d = d;
        g->q_round = round_id;
    }
}

void th_gclient_init(th_gclient *g, uint32_t q_cap)
{
    memset(g, 0, sizeof *g);
    crypto_sign_keypair(g->pk, g->sk);
    g->id = fedreci_secagg_id_from_pk(g->pk);
    if (q_cap) {
        g->q = calloc(q_cap, sizeof *g->q);
        assert_non_null(g->q);
        g->q_cap = q_cap;
    }
}

void th_gclient_free(th_gclient *g)
{
    free(g->q);
    g->q = NULL;
    g->q_cap = 0;
}

void th_gclient_config(const th_gclient *g, fedreci_session_config *sc, const char *url,
                       uint32_t timeout_ms)
{
    fedreci_session_config_default(sc);
    sc->url = url;
    sc->client_id = g->id;
    sc->identity_sk = g->sk;
    sc->model_version = g->version;
    sc->timeout_ms = timeout_ms;
}

void th_gclient_start_with(th_gclient *g, const fedreci_session_config *sc)
{
    fedreci_session_hooks h;
    memset(&h, 0, sizeof h);
    h.arg = g;
    h.compute_update = g_update;
    h.on_quantized = g_quantized;
    g->d = 0;
    if (fedreci_session_create(&g->s, sc, &h) || fedreci_session_start(g->s))
        fail_msg("session %016llx: %s", (unsigned long long)g->id, fedrec_errmsg());
}

void th_gclient_start(th_gclient *g, const char *url, uint32_t timeout_ms)
{
    fedreci_session_config sc;
    th_gclient_config(g, &sc, url, timeout_ms);
    th_gclient_start_with(g, &sc);
}

void th_gclient_finish(th_gclient *g)
{
    assert_int_equal(fedreci_session_wait(g->s, -1, &g->res), FEDREC_OK);
    fedreci_session_destroy(g->s);
    g->s = NULL;
    if (g->res.model_version)
        g->version = g->res.model_version;
}

/* ---- shoppers: client library handles (the public API) -------------------- */

void th_shopper_open(th_shopper *s, const char *tag, const char *url, const uint8_t key[32],
                     const uint32_t *floors, const char *code)
{
    memset(s, 0, sizeof *s);
    s->dir = th_tmpdir(tag);
    fedrec_client_options o;
    fedrec_client_options_init(&o);
    o.key = key;
    o.coordinator_url = url;
    if (floors) {
        o.min_cohort = floors[0];
        o.min_neighbors = floors[1];
        o.min_threshold = floors[2];
    }
    if (fedrec_client_open_with(&s->c, s->dir, &o))
        fail_msg("%s: %s", s->dir, fedrec_errmsg());
    assert_int_equal(fedrec_client_record(s->c, code, 100, 2), FEDREC_OK);
    fedrec_client_info info = {.struct_size = sizeof info};
    assert_int_equal(fedrec_client_get_info(s->c, &info), FEDREC_OK);
    s->id = info.client_id;
    memcpy(s->pk, info.identity_pk, sizeof s->pk);
}

void th_shopper_close(th_shopper *s)
{
    assert_int_equal(fedrec_client_forget(s->c), FEDREC_OK);
    s->c = NULL;
    free(s->dir);
    s->dir = NULL;
}

typedef struct shopper_job {
    th_shopper *s;
    uint32_t deadline_ms;
} shopper_job;

static void *shopper_sync(void *arg)
{
    shopper_job *j = arg;
    th_shopper *s = j->s;
    memset(&s->res, 0, sizeof s->res);
    s->res.struct_size = sizeof s->res;
    s->err = fedrec_client_sync(s->c, j->deadline_ms, &s->res);
    snprintf(s->msg, sizeof s->msg, "%s", fedrec_errmsg());
    return NULL;
}

void th_shoppers_sync(th_shopper *s, int n, uint32_t deadline_ms)
{
    pthread_t *th = calloc((size_t)n, sizeof *th);
    shopper_job *job = calloc((size_t)n, sizeof *job);
    assert_true(th && job);
    for (int i = 0; i < n; i++) {
        job[i].s = &s[i];
        job[i].deadline_ms = deadline_ms;
        assert_int_equal(pthread_create(&th[i], NULL, shopper_sync, &job[i]), 0);
    }
    for (int i = 0; i < n; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    free(th);
    free(job);
}

/* ---- SecAgg groups ---------------------------------------------------------- */

void th_agg_key(uint8_t base, int i, uint8_t pk[32], uint8_t sk[64])
{
    uint8_t seed[32];
    memset(seed, base + i, sizeof seed);
    crypto_sign_seed_keypair(pk, sk, seed);
}

void th_wait_aggregators(fedreci_coord *master, uint32_t n)
{
    for (int t = 0; t < 3000; t++) {
        fedreci_coord_status cs;
        fedreci_coord_get_status(master, &cs);
        if (cs.aggregators_ready >= n)
            return;
        struct timespec ts = {0, 20000000};
        nanosleep(&ts, NULL);
    }
    fail_msg("fewer than %u aggregators ready after 60 s", n);
}

void th_wait_flag(pthread_mutex_t *mu, pthread_cond_t *cv, const int *flag, int seconds,
                  const char *what)
{
    pthread_mutex_lock(mu);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += seconds;
    while (!*flag)
        if (pthread_cond_timedwait(cv, mu, &ts) == ETIMEDOUT)
            break;
    int done = *flag;
    pthread_mutex_unlock(mu);
    if (!done)
        fail_msg("%s: not after %d s", what, seconds);
}

static const uint64_t *pg_ids; /* cmp_pg's context (the test's thread only) */

static int cmp_pg(const void *a, const void *b)
{
    uint64_t x = pg_ids[*(const int *)a], y = pg_ids[*(const int *)b];
    return x < y ? -1 : x > y;
}

void th_predict_groups(const uint64_t *ids, int n, uint32_t n_groups, uint32_t min_cohort,
                       uint64_t seed, uint64_t round_id, int *group)
{
    assert_true(n > 0 && n <= 4096);
    int *idx = malloc((size_t)n * sizeof *idx);
    uint64_t *sorted = malloc((size_t)n * sizeof *sorted);
    uint32_t *gof = malloc((size_t)n * sizeof *gof);
    assert_true(idx && sorted && gof);
    for (int i = 0; i < n; i++)
        idx[i] = i;
    pg_ids = ids;
    qsort(idx, (size_t)n, sizeof idx[0], cmp_pg);
    for (int i = 0; i < n; i++)
        sorted[i] = ids[idx[i]];
    assert_int_equal(
        fedreci_groups_assign(sorted, (uint32_t)n, n_groups, min_cohort, seed, round_id, gof),
        FEDREC_OK);
    for (int i = 0; i < n; i++)
        group[idx[i]] = (int)gof[i];
    free(idx);
    free(sorted);
    free(gof);
}

void th_check_sum64(int round_no, const int64_t *got, uint32_t d, int n, const int *in,
                    const uint32_t *(*q_of)(int i, void *ctx), void *ctx)
{
    int64_t *want = calloc(d, sizeof *want);
    assert_non_null(want);
    int64_t count = 0;
    for (int i = 0; i < n; i++) {
        if (!in[i])
            continue;
        const uint32_t *q = q_of(i, ctx);
        if (!q)
            fail_msg("round %d: client %d has no quantized input", round_no, i);
        count++;
        for (uint32_t w = 0; w + 1 < d; w++)
            want[w] += (int64_t)(int32_t)q[w];
        want[d - 1] += q[d - 1];
    }
    assert_true(want[d - 1] == count);
    for (uint32_t w = 0; w < d; w++)
        if (want[w] != got[w])
            fail_msg("round %d word %u: master sum %lld, inputs add to %lld", round_no, w,
                     (long long)got[w], (long long)want[w]);
    free(want);
}
