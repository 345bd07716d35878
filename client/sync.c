/* fedrec_client_sync: the blocking public sync over client/session's
 * asynchronous round driver. The handle's lock is not held while the session
 * runs; the hooks (on nng threads) take it briefly through the internal
 * entry points, so record and recommend stay responsive during a round. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>
#include <sodium.h>

#include "client/client_internal.h"
#include "client/session.h"
#include "core/dp/dpals.h"
#include "core/err.h"

typedef struct sync_ctx {
    fedrec_client *c;
    /* the round's DP parameters, kept by compute_update for the ledger */
    int dp;
    uint64_t dp_round;
    uint32_t dp_n, dp_items, dp_k;
    fedreci_dp_round_params dp_params;
    int dp_recorded;
    fedrec_err hook_err; /* first failure inside a hook (model store, ledger) */
    char hook_msg[256];
    int model_updated;
    uint64_t upload_round; /* the round of the last upload (0: nothing uploaded) */
    int upload_stage;
} sync_ctx;

static void note_hook_error(sync_ctx *s, fedrec_err e)
{
    if (!s->hook_err) {
        s->hook_err = e;
        snprintf(s->hook_msg, sizeof s->hook_msg, "%s", fedrec_errmsg());
    }
}

static void on_model(void *arg, const fedreci_wire_model *m)
{
    sync_ctx *s = arg;
    const char **codes = NULL;
    char(*names)[16] = NULL;
    if (m->item_codes && m->n_item_codes == m->n_items) {
        codes = (const char **)m->item_codes;
    } else {
        /* No catalog in the reply: rows are named by their index. */
        names = malloc((size_t)m->n_items * sizeof *names);
        codes = calloc(m->n_items ? m->n_items : 1, sizeof *codes);
        if (!names || !codes) {
            free(names);
            free(codes);
            note_hook_error(s, fedreci_error(FEDREC_ERR_NOMEM, "out of memory for the catalog"));
            return;
        }
        for (uint32_t i = 0; i < m->n_items; i++) {
            snprintf(names[i], sizeof names[i], "%u", i);
            codes[i] = names[i];
        }
    }
    int stored = 0;
    fedrec_err e = fedreci_client_put_model_retired(
        s->c, m->version, m->n_items, m->k, m->item_factors, m->gram, (const char *const *)codes,
        m->retired_rows, (uint32_t)m->n_retired, &stored);
    if (names) {
        free(names);
        free(codes);
    }
    if (e)
        note_hook_error(s, e);
    else if (stored)
        s->model_updated = 1;
}

static fedrec_err compute_update(void *arg, const fedreci_wire_round *round, float *x,
                                 uint32_t *weight)
{
    sync_ctx *s = arg;
    fedrec_client_info info = {.struct_size = sizeof info};
    fedrec_err e = fedrec_client_get_info(s->c, &info);
    if (e)
        return e;
    /* Train only on the very model the round is about. */
    if (info.model_version != round->model_version || info.model_items != round->n_items ||
        info.model_factors != round->k_factors)
        return fedreci_error(FEDREC_ERR_PROTOCOL,
                             "round %llu is for model version %llu (%u x %u), the store holds "
                             "version %llu (%u x %u)",
                             (unsigned long long)round->secagg.round_id,
                             (unsigned long long)round->model_version, round->n_items,
                             round->k_factors, (unsigned long long)info.model_version,
                             info.model_items, info.model_factors);
    if (round->dp.mechanism) {
        /* the bounded DP-ALS contribution; the session noises it before
           masking (client/session.h) */
        s->dp = 1;
        s->dp_round = round->secagg.round_id;
        s->dp_n = round->secagg.n;
        s->dp_items = round->n_items;
        s->dp_k = round->k_factors;
        s->dp_params = round->dp;
        fedreci_dpals a = {round->n_items, round->k_factors, round->dp.row_bound,
                           round->dp.gram_weight};
        *weight = 1;
        return fedreci_client_dp_contribution(s->c, &round->dp, x, fedreci_dpals_dim(&a));
    }
    /* the gradient, and for the ALS step the x_u x_u^T block beside it: a d
       that does not match what the round asks for is refused */
    int als = round->step == FEDRECI_WIRE_STEP_ALS;
    size_t want = fedreci_mf_update_dim(round->n_items, round->k_factors,
                                        als ? FEDRECI_OPT_ALS : FEDRECI_OPT_ADAM);
    if (round->step > FEDRECI_WIRE_STEP_ALS || !want || (uint64_t)round->secagg.d != want + 1)
        return fedreci_error(FEDREC_ERR_PROTOCOL,
                             "round %llu: d = %u for step %u, expected %zu (%u items x %u "
                             "factors%s) + 1",
                             (unsigned long long)round->secagg.round_id, round->secagg.d,
                             round->step, want, round->n_items, round->k_factors,
                             als ? " and the x_u x_u^T block" : "");
    if (als)
        return fedreci_client_local_update_xx(
            s->c, x, (size_t)round->n_items * round->k_factors, round->x_bound,
            fedreci_mf_xx_weight(round->secagg.clip, round->x_bound), weight, NULL);
    return fedreci_client_local_update(s->c, x, (size_t)round->secagg.d - 1, weight, NULL);
}

static void on_upload(void *arg, uint64_t round_id, int stage, size_t bytes, const char *what,
                      uint32_t clipped)
{
    sync_ctx *s = arg;
    s->upload_round = round_id;
    s->upload_stage = stage;
    fedrec_err e =
        fedreci_client_ledger_add(s->c, 0, round_id, (uint32_t)stage, bytes, what, clipped);
    /* the noised input is going out: the round counts against this
       shopper's budget, computed here from the parameters it verified */
    if (!e && stage == 2 && s->dp && !s->dp_recorded && round_id == s->dp_round) {
        fedreci_dp_event ev;
        double eps = 0;
        e = fedreci_dp_round_verify(&s->dp_params, s->dp_n, s->dp_items, s->dp_k, NULL, &ev, &eps);
        if (!e)
            e = fedreci_client_dp_record(s->c, round_id, &s->dp_params, &ev, eps, 0, NULL);
        s->dp_recorded = !e;
    }
    if (e)
        note_hook_error(s, e);
}

static fedrec_err outcome_err(const fedreci_session_result *r)
{
    switch (r->outcome) {
    case FEDRECI_SESSION_COMPLETED:
        return FEDREC_OK;
    case FEDRECI_SESSION_ABORTED:
    case FEDRECI_SESSION_DROPPED:
        return r->err ? r->err : FEDREC_ERR_ABORTED;
    case FEDRECI_SESSION_NOT_SELECTED:
    case FEDRECI_SESSION_NO_ROUND:
        return FEDREC_ERR_NOT_SELECTED;
    case FEDRECI_SESSION_OPTED_OUT:
        return FEDREC_ERR_OPTED_OUT;
    case FEDRECI_SESSION_REFUSED:
        return FEDREC_ERR_REFUSED;
    default:
        return r->err ? r->err : FEDREC_ERR_INTERNAL;
    }
}

/* ---- fail fast: one connection attempt before the round driver ------------- */

/* The round driver dials in the background and retries, so an unreachable
 * coordinator or a refused certificate would only show as a timeout at the
 * deadline. Before it starts, sync opens one stream to the coordinator, lets
 * TLS finish its handshake and reads the peer's 8-byte SP header (the first
 * bytes an nng peer sends), then closes it. Errors say what failed. */

/* Longest wait for that first connection, even under a longer deadline. */
#define PROBE_MAX_MS 10000

/* One attempt: 0 when the peer answered with an SP header, else nng's error;
 * *stage names where it stopped ("connect", "TLS handshake", "read"). */
static int probe_once(const char *url, const char *ca, const char *name, int verify, uint32_t ms,
                      const char **stage)
{
    nng_stream_dialer *d = NULL;
    nng_aio *aio = NULL;
    nng_stream *st = NULL;
    nng_tls_config *tc = NULL;
    uint8_t hdr[8];
    *stage = "connect";
    int rv = nng_stream_dialer_alloc(&d, url);
    if (rv == 0 && strncmp(url, "tls+", 4) == 0) {
        if ((rv = nng_tls_config_alloc(&tc, NNG_TLS_MODE_CLIENT)) == 0) {
            if (!verify)
                rv = nng_tls_config_auth_mode(tc, NNG_TLS_AUTH_MODE_NONE);
            else if (ca && (rv = nng_tls_config_ca_file(tc, ca)) == 0)
                rv = nng_tls_config_auth_mode(tc, NNG_TLS_AUTH_MODE_REQUIRED);
            if (rv == 0 && name)
                rv = nng_tls_config_server_name(tc, name);
            if (rv == 0)
                rv = nng_stream_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, tc);
        }
    }
    if (rv == 0)
        rv = nng_aio_alloc(&aio, NULL, NULL);
    if (rv == 0) {
        nng_aio_set_timeout(aio, (nng_duration)ms);
        nng_stream_dialer_dial(d, aio);
        nng_aio_wait(aio);
        rv = nng_aio_result(aio);
    }
    if (rv == 0) {
        st = nng_aio_get_output(aio, 0);
        /* TLS: the handshake runs before the first bytes can be read. */
        *stage = strncmp(url, "tls+", 4) == 0 ? "TLS handshake" : "read";
        nng_iov iov = {.iov_buf = hdr, .iov_len = sizeof hdr};
        nng_aio_set_iov(aio, 1, &iov);
        nng_aio_set_timeout(aio, (nng_duration)ms);
        nng_stream_recv(st, aio);
        nng_aio_wait(aio);
        rv = nng_aio_result(aio);
        if (rv == 0 && (nng_aio_count(aio) < 1 || hdr[0] != 0 || hdr[1] != 'S'))
            rv = NNG_EPROTO;
    }
    if (st) {
        nng_stream_close(st);
        nng_stream_free(st);
    }
    nng_aio_free(aio);
    nng_stream_dialer_free(d);
    if (tc)
        nng_tls_config_free(tc);
    return rv;
}

/* Checks the coordinator can be reached before the round driver starts.
 * Transports the stream API cannot dial (inproc://) are not probed.
 * Errors: FEDREC_ERR_TRANSPORT (refused, unreachable, TLS verification,
 * naming the check that failed), FEDREC_ERR_TIMEOUT (the deadline, when it
 * is the shorter wait). */
static fedrec_err probe(const char *url, const char *ca, const char *name, uint32_t deadline_ms)
{
    uint32_t ms = deadline_ms < PROBE_MAX_MS ? deadline_ms : PROBE_MAX_MS;
    const char *stage = "connect", *st2;
    int rv = probe_once(url, ca, name, 1, ms, &stage);
    if (rv == 0 || rv == NNG_ENOTSUP)
        return FEDREC_OK;
    if (rv == NNG_ETIMEDOUT && ms == deadline_ms)
        return fedreci_error(FEDREC_ERR_TIMEOUT, "sync with %s: no %s within the %u ms deadline",
                             url, stage, deadline_ms);
    int tls = strncmp(url, "tls+", 4) == 0;
    if (tls && (rv == NNG_EPEERAUTH || rv == NNG_ECRYPTO)) {
        /* Which check failed? Retry without each check in turn: with no
         * verification at all (a handshake problem if that fails too),
         * then with the CA but without the name. */
        int plain = probe_once(url, NULL, NULL, 0, ms, &st2);
        if (plain != 0)
            return fedreci_error(FEDREC_ERR_TRANSPORT,
                                 "sync with %s: TLS handshake failed: %s (not a certificate "
                                 "check: it fails without verification too)",
                                 url, nng_strerror(plain));
        if (!ca)
            return fedreci_error(FEDREC_ERR_TRANSPORT,
                                 "sync with %s: TLS certificate verification failed: no CA file "
                                 "was given (fedrec_client_set_tls)",
                                 url);
        if (name && probe_once(url, ca, NULL, 1, ms, &st2) == 0)
            return fedreci_error(FEDREC_ERR_TRANSPORT,
                                 "sync with %s: TLS hostname check failed: the coordinator's "
                                 "certificate chains to %s but does not name '%s'",
                                 url, ca, name);
        return fedreci_error(FEDREC_ERR_TRANSPORT,
                             "sync with %s: TLS certificate verification failed: the "
                             "coordinator's certificate does not chain to the CA in %s (or is "
                             "expired or not yet valid)",
                             url, ca);
    }
    if (tls && strcmp(stage, "connect") != 0)
        return fedreci_error(FEDREC_ERR_TRANSPORT, "sync with %s: TLS handshake failed: %s", url,
                             nng_strerror(rv));
    return fedreci_error(FEDREC_ERR_TRANSPORT,
                         "sync with %s: cannot reach the coordinator (%s: %s)", url, stage,
                         nng_strerror(rv));
}

fedrec_err fedrec_client_sync(fedrec_client *c, uint32_t deadline_ms, fedrec_sync_result *result)
{
    if (!c)
        return fedreci_error(FEDREC_ERR_INVALID, "fedrec_client_sync: NULL client");
    if (result && fedreci_check_struct_size(result->struct_size, FEDRECI_SYNC_RESULT_V1_SIZE,
                                            "fedrec_client_sync", "result"))
        return FEDREC_ERR_INVALID;
    const char *url = fedreci_client_url(c);
    if (!url || !*url)
        return fedreci_error(FEDREC_ERR_INVALID,
                             "fedrec_client_sync: the client was opened without a coordinator "
                             "URL");
    if (deadline_ms == 0)
        return fedreci_error(FEDREC_ERR_INVALID, "fedrec_client_sync: deadline_ms is 0");
    fedrec_err err = fedreci_client_sync_begin(c);
    if (err)
        return err;
    fedrec_client_info info = {.struct_size = sizeof info};
    uint8_t *sk = sodium_malloc(64);
    fedreci_session *sess = NULL;
    sync_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.c = c;
    fedreci_session_result r;
    memset(&r, 0, sizeof r);
    if (!sk) {
        err = fedreci_error(FEDREC_ERR_NOMEM, "out of memory");
        goto out;
    }
    err = fedrec_client_get_info(c, &info);
    if (!err)
        err = fedreci_client_identity_sk(c, sk);
    if (err)
        goto out;
    fedreci_session_config cfg;
    fedreci_session_config_default(&cfg);
    cfg.url = url;
    fedreci_client_tls(c, &cfg.tls_ca_file, &cfg.tls_server_name);
    err = probe(url, cfg.tls_ca_file, cfg.tls_server_name, deadline_ms);
    if (err)
        goto out;
    cfg.client_id = info.client_id;
    cfg.identity_sk = sk;
    cfg.model_version = info.model_version;
    /* the held model's checksum, bound into the signed advert */
    uint8_t held_sum[32];
    uint64_t held_version = 0;
    if (info.model_version &&
        fedreci_client_model_checksum(c, &held_version, held_sum) == FEDREC_OK &&
        held_version == info.model_version)
        cfg.model_checksum = held_sum;
    cfg.opted_in = info.opted_in;
    cfg.fetch_model = 1;
    cfg.timeout_ms = deadline_ms;
    fedreci_client_floors(c, &cfg.min_cohort, &cfg.min_neighbors, &cfg.min_threshold,
                          &cfg.min_threshold_fraction);
    cfg.max_seed_retries = fedreci_client_seed_retry_bound(c);
    fedreci_client_attestation(c, &cfg.attestation, &cfg.attestation_len);
    fedreci_session_hooks hooks;
    memset(&hooks, 0, sizeof hooks);
    hooks.arg = &ctx;
    hooks.on_model = on_model;
    hooks.compute_update = compute_update;
    hooks.on_upload = on_upload;
    err = fedreci_session_create(&sess, &cfg, &hooks);
    if (!err)
        err = fedreci_session_start(sess);
    if (!err)
        err = fedreci_session_wait(sess,
                                   (int)(deadline_ms > 0x7fffffffu ? 0x7fffffff : deadline_ms), &r);
    fedreci_session_destroy(sess); /* cancels what is still in flight */
    sess = NULL;
    if (err == FEDREC_ERR_TIMEOUT && !ctx.upload_round)
        err = fedreci_error(FEDREC_ERR_TIMEOUT,
                            "sync with %s: no result within %u ms: no round took this client "
                            "in by then (a round starts once min-cohort clients are checked in "
                            "at the coordinator)",
                            url, deadline_ms);
    else if (err == FEDREC_ERR_TIMEOUT)
        err =
            fedreci_error(FEDREC_ERR_TIMEOUT,
                          "sync with %s: no result within %u ms (round %llu, last upload at "
                          "stage %d)",
                          url, deadline_ms, (unsigned long long)ctx.upload_round, ctx.upload_stage);
    if (err)
        goto out;
    if (r.outcome == FEDRECI_SESSION_REFUSED) {
        /* the shopper's ledger says which round was refused, why, and what
           was withheld */
        uint32_t code = fedreci_refusal_code(r.refusal);
        char reason[sizeof r.text + 64]; /* truncated to FEDREC_LEDGER_REASON_MAX when stored */
        if (code == FEDREC_REFUSAL_PROTOCOL && r.refusal && strcmp(r.refusal, "protocol_violation"))
            snprintf(reason, sizeof reason, "%s: %s", r.refusal, r.text); /* a newer name */
        else
            snprintf(reason, sizeof reason, "%s", r.text);
        err = fedreci_client_ledger_refusal(c, r.round_id, r.refused_stage, r.refused_what, code,
                                            reason, r.n, r.k, r.t);
        if (err)
            goto out;
    }
    if (ctx.hook_err) {
        err = fedreci_error(ctx.hook_err, "sync with %s: %s", url, ctx.hook_msg);
        goto out;
    }
    if (r.dp_refused) { /* recorded: the shopper sees what it refused and why */
        fedrec_err le = fedreci_client_dp_record(c, r.round_id, &r.dp_params, NULL, 0, 1, r.text);
        if (le) {
            err = le;
            goto out;
        }
    }
    if (r.outcome == FEDRECI_SESSION_ERROR) {
        err = fedreci_error(r.err ? r.err : FEDREC_ERR_INTERNAL, "sync with %s: %s", url, r.text);
        goto out;
    }
    if (result) {
        fedrec_client_info now = {.struct_size = sizeof now};
        err = fedrec_client_get_info(c, &now);
        if (err)
            goto out;
        fedrec_sync_result full = {.struct_size = sizeof full};
        memset(&full, 0, sizeof full);
        full.struct_size = sizeof full;
        full.model_version = now.model_version;
        full.model_updated = ctx.model_updated;
        full.took_part = r.update_bytes_sent > 0;
        full.round_id = r.round_id;
        full.round_outcome = outcome_err(&r);
        fedreci_copy_out(result, &full, sizeof full);
    }
out:
    sodium_free(sk);
    fedreci_client_sync_end(c);
    return err;
}
