/* coordinator/engine: the nng transport. One REP0 socket on every listen URL
 * (tls+ listeners with the certificate and key read at start), n_contexts
 * contexts driven by aio callbacks (no thread per client), the watch on
 * closed connections (pipes), and the one timer thread that sleeps until the
 * current deadline. See engine_internal.h. */
#include "coordinator/engine_internal.h"

#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/protocol/reqrep0/rep.h>
#include <nng/supplemental/tls/tls.h>
#include <sodium.h>

#include "core/err.h"
#include "core/log.h"

static fedrec_err nng_fail(int rv, const char *what, const char *url)
{
    return fedreci_error(FEDREC_ERR_TRANSPORT, "coordinator: %s%s%s: %s", what, url ? " " : "",
                         url ? url : "", nng_strerror(rv));
}

/* nng: a pipe (connection) was removed. Clients whose check-in came over it
 * are gone: a held check-in is released, a cohort member is counted as
 * dropped now instead of at the stage deadline. (With several clients
 * sharing one connection, all of them are gone.) */
static void pipe_removed(nng_pipe p, nng_pipe_ev ev, void *arg)
{
    fedreci_coord *c = arg;
    uint32_t id = (uint32_t)nng_pipe_id(p);
    outbox ob = {NULL, 0, 0};
    (void)ev;
    if (atomic_load(&c->closing_flag) || id == 0)
        return;
    pthread_mutex_lock(&c->mu);
    int trim = fedreci_eng_conn_gone(c, id);
    if (!c->closing) {
        for (size_t i = 0; i < c->n_waiting;) {
            crec *e = fedreci_eng_reg_find(c, c->waiting[i]);
            if (e && e->pipe == id && e->wait_ctx >= 0) {
                fedreci_eng_unpark_drop(c, e->wait_ctx, &ob);
                e->wait_ctx = -1;
                c->waiting[i] = c->waiting[--c->n_waiting];
            } else {
                i++;
            }
        }
        rstate *r = c->cur;
        for (uint32_t i = 0; r && c->cur == r && fedreci_eng_round_active(c) && i < r->n; i++) {
            if (r->mem[i].gone)
                continue;
            crec *e = fedreci_eng_reg_find(c, r->ids[i]);
            if (e && e->pipe == id)
                fedreci_eng_member_gone(c, r, i, &ob);
        }
    }
    pthread_mutex_unlock(&c->mu);
    fedreci_eng_flush(c, &ob);
#ifdef __GLIBC__
    if (trim)
        malloc_trim(0);
#else
    (void)trim;
#endif
}

/* nng: a pipe (connection) is about to be added: refused (closed) when it
 * exceeds the total or the per-address connection cap (limits.c). */
static void pipe_adding(nng_pipe p, nng_pipe_ev ev, void *arg)
{
    fedreci_coord *c = arg;
    (void)ev;
    if (atomic_load(&c->closing_flag))
        return;
    if (!fedreci_eng_conn_admit(c, p))
        nng_pipe_close(p);
}

/* nng: an aio of context x completed (a reply was sent or a request
 * arrived). */
static void ctx_cb(void *arg)
{
    cctx *x = arg;
    fedreci_coord *c = x->c;
    int rv = nng_aio_result(x->aio);
    outbox ob = {NULL, 0, 0};
    if (x->state == CX_SENDING) {
        if (rv != 0) {
            nng_msg *m = nng_aio_get_msg(x->aio);
            if (m)
                nng_msg_free(m);
        }
        if (atomic_load(&c->closing_flag)) {
            x->state = CX_IDLE;
            return;
        }
        x->state = CX_RECV;
        nng_aio_set_timeout(x->aio, NNG_DURATION_INFINITE);
        nng_ctx_recv(x->ctx, x->aio);
        return;
    }
    if (rv != 0) {
        if (rv == NNG_ECLOSED || atomic_load(&c->closing_flag)) {
            x->state = CX_IDLE;
            return;
        }
        nng_aio_set_timeout(x->aio, NNG_DURATION_INFINITE);
        nng_ctx_recv(x->ctx, x->aio);
        return;
    }
    nng_msg *msg = nng_aio_get_msg(x->aio);
    if (!msg && !atomic_load(&c->closing_flag)) {
        /* success without a message (nanomsg/nng#1620): receive again */
        nng_aio_set_timeout(x->aio, NNG_DURATION_INFINITE);
        nng_ctx_recv(x->ctx, x->aio);
        return;
    }
    if (atomic_load(&c->closing_flag)) {
        if (msg)
            nng_msg_free(msg);
        x->state = CX_IDLE;
        return;
    }
    fedreci_eng_handle(c, x, msg, &ob);
    fedreci_eng_flush(c, &ob);
}

/* The timer thread: sleeps until the current deadline or a pending heap
 * hand-back (fedreci_eng_conn_gone), then acts on it. */
static void *timer_main(void *arg)
{
    fedreci_coord *c = arg;
    pthread_mutex_lock(&c->mu);
    while (!c->closing) {
        uint64_t now = now_ms();
        uint64_t trim_at = c->trim_pending ? c->last_trim_ms + FEDRECI_TRIM_INTERVAL_MS : 0;
        if (trim_at && now >= trim_at) {
            c->trim_pending = 0;
            c->last_trim_ms = now;
            pthread_mutex_unlock(&c->mu);
#ifdef __GLIBC__
            malloc_trim(0);
#endif
            pthread_mutex_lock(&c->mu);
            continue;
        }
        if (c->deadline && now >= c->deadline) {
            outbox ob = {NULL, 0, 0};
            c->deadline = 0;
            fedreci_eng_on_deadline(c, &ob);
            pthread_mutex_unlock(&c->mu);
            fedreci_eng_flush(c, &ob);
            pthread_mutex_lock(&c->mu);
            continue;
        }
        uint64_t when = c->deadline;
        if (trim_at && (!when || trim_at < when))
            when = trim_at;
        if (!when) {
            pthread_cond_wait(&c->cv_timer, &c->mu);
        } else {
            struct timespec ts;
            ts.tv_sec = (time_t)(when / 1000u);
            ts.tv_nsec = (long)(when % 1000u) * 1000000L;
            pthread_cond_timedwait(&c->cv_timer, &c->mu, &ts);
        }
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* The contents of a PEM file (at most 1 MiB), NUL-terminated, or NULL with
 * *err set. */
static char *read_file(const char *path, fedrec_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        *err = fedreci_error(FEDREC_ERR_IO, "coordinator: %s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
        if (n + 1 == cap) {
            if (cap > (1u << 20)) {
                free(buf);
                buf = NULL;
                break;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (!buf) {
        *err = fedreci_error(FEDREC_ERR_IO, "coordinator: %s: unreadable or over 1 MiB", path);
        return NULL;
    }
    buf[n] = 0;
    return buf;
}

/* The certificate and key of a tls+ listener l, read from the files named at
 * create (the key is wiped after use). */
fedrec_err fedreci_eng_listener_tls(fedreci_coord *c, nng_listener l, const char *url)
{
    const char *certf = c->urls[c->cfg.n_listen], *keyf = c->urls[c->cfg.n_listen + 1];
    if (!certf || !keyf)
        return fedreci_error(FEDREC_ERR_INVALID,
                             "coordinator: %s needs a certificate and a key file", url);
    int rv = 0;
    fedrec_err e = FEDREC_OK;
    char *cert = read_file(certf, &e);
    char *key = cert ? read_file(keyf, &e) : NULL;
    nng_tls_config *tc = NULL;
    if (key && (rv = nng_tls_config_alloc(&tc, NNG_TLS_MODE_SERVER)) == 0 &&
        (rv = nng_tls_config_own_cert(tc, cert, key, NULL)) == 0)
        rv = nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, tc);
    if (key) {
        sodium_memzero(key, strlen(key));
        free(key);
    }
    free(cert);
    if (tc)
        nng_tls_config_free(tc);
    if (!e && rv != 0)
        e = nng_fail(rv, "TLS configuration for", url);
    return e;
}

/* Starts a listener on url (tls+: with the certificate and key); *bound_port
 * gets the bound TCP port (the kernel's choice for port 0). */
static fedrec_err start_listener(fedreci_coord *c, const char *url, int *bound_port,
                                 nng_listener *out)
{
    nng_listener l;
    int rv;
    if ((rv = nng_listener_create(&l, c->sock, url)) != 0)
        return nng_fail(rv, "listening on", url);
    if (strncmp(url, "tls+", 4) == 0) {
        fedrec_err e = fedreci_eng_listener_tls(c, l, url);
        if (e) {
            nng_listener_close(l);
            return e;
        }
    }
    if ((rv = nng_listener_start(l, 0)) != 0) {
        nng_listener_close(l);
        return nng_fail(rv, "listening on", url);
    }
    *out = l;
    /* With port 0 the kernel picks one: log the bound port so operators
     * (and tests) can find it. */
    int port = 0;
    if (nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port) == 0) {
        *bound_port = port;
        fedreci_log(FEDRECI_LOG_INFO, -1, "listening on %s (port %d)", url, port);
    } else
        fedreci_log(FEDRECI_LOG_INFO, -1, "listening on %s", url);
    return FEDREC_OK;
}

fedrec_err fedreci_eng_transport_reload_tls(fedreci_coord *c, int *n_reloaded)
{
    /* a listener takes a new configuration while it runs (nng's TLS stream
       listener swaps it under its lock): connections accepted from now on
       use the new certificate, open ones keep their session */
    fedrec_err e = FEDREC_OK;
    for (size_t i = 0; i < c->cfg.n_listen && !e; i++)
        if (strncmp(c->urls[i], "tls+", 4) == 0) {
            e = fedreci_eng_listener_tls(c, c->listeners[i], c->urls[i]);
            *n_reloaded += !e;
        }
    return e;
}

fedrec_err fedreci_eng_transport_open(fedreci_coord *c)
{
    int rv;
    if ((rv = nng_rep0_open(&c->sock)) != 0)
        return nng_fail(rv, "opening the REP socket", NULL);
    c->sock_open = 1;
    /* The transport's cap is twice the engine's: a message just over the
     * engine's cap still arrives and is refused with a logged reason and an
     * Error reply; beyond twice the cap nng drops the connection unread
     * (without telling the engine), so nothing larger is ever buffered. */
    size_t ceiling = c->cap > SIZE_MAX / 2 ? SIZE_MAX : 2 * c->cap;
    nng_socket_set_size(c->sock, NNG_OPT_RECVMAXSZ, ceiling);
    fedreci_log(FEDRECI_LOG_INFO, -1,
                "receive cap %zu bytes per request (a connection announcing more than %zu bytes "
                "is closed unread)",
                c->cap, ceiling);
    if ((rv = nng_pipe_notify(c->sock, NNG_PIPE_EV_REM_POST, pipe_removed, c)) != 0 ||
        (rv = nng_pipe_notify(c->sock, NNG_PIPE_EV_ADD_PRE, pipe_adding, c)) != 0)
        return nng_fail(rv, "pipe notification", NULL);
    c->n_ctx = c->cfg.n_contexts;
    c->park_limit = c->n_ctx - (c->n_ctx / 16 > 4 ? c->n_ctx / 16 : 4);
    if (c->cfg.checkin_quorum > c->park_limit) {
        uint32_t need = c->cfg.checkin_quorum + c->cfg.checkin_quorum / 15 + 5;
        return fedreci_error(FEDREC_ERR_INVALID,
                             "coordinator: checkin_quorum %u cannot be held by %u contexts "
                             "(n_contexts must be at least %u)",
                             c->cfg.checkin_quorum, c->cfg.n_contexts, need);
    }
    c->ctx = calloc(c->n_ctx, sizeof *c->ctx);
    if (!c->ctx)
        return fedreci_error(FEDREC_ERR_NOMEM, "coordinator: allocating the engine");
    for (uint32_t i = 0; i < c->n_ctx; i++) {
        cctx *x = &c->ctx[i];
        x->c = c;
        x->idx = i;
        if ((rv = nng_aio_alloc(&x->aio, ctx_cb, x)) != 0 ||
            (rv = nng_ctx_open(&x->ctx, c->sock)) != 0)
            return nng_fail(rv, "opening a context", NULL);
    }
    return FEDREC_OK;
}

fedrec_err fedreci_eng_transport_start(fedreci_coord *c)
{
    for (size_t i = 0; i < c->cfg.n_listen; i++) {
        fedrec_err e = start_listener(c, c->urls[i], &c->ports[i], &c->listeners[i]);
        if (e)
            return e;
    }
    if (pthread_create(&c->timer, NULL, timer_main, c) != 0)
        return fedreci_error(FEDREC_ERR_NOMEM, "coordinator: timer thread");
    c->timer_started = 1;
    c->started = 1;
    for (uint32_t i = 0; i < c->n_ctx; i++) {
        c->ctx[i].state = CX_RECV;
        nng_aio_set_timeout(c->ctx[i].aio, NNG_DURATION_INFINITE);
        nng_ctx_recv(c->ctx[i].ctx, c->ctx[i].aio);
    }
    return FEDREC_OK;
}

void fedreci_eng_transport_close(fedreci_coord *c)
{
    pthread_mutex_lock(&c->mu);
    c->closing = 1;
    atomic_store(&c->closing_flag, 1);
    pthread_cond_signal(&c->cv_timer);
    pthread_mutex_unlock(&c->mu);
    if (c->timer_started)
        pthread_join(c->timer, NULL);
    if (c->sock_open)
        nng_close(c->sock);
    if (c->ctx) {
        for (uint32_t i = 0; i < c->n_ctx; i++)
            if (c->ctx[i].aio)
                nng_aio_stop(c->ctx[i].aio);
        for (uint32_t i = 0; i < c->n_ctx; i++)
            if (c->ctx[i].aio)
                nng_aio_free(c->ctx[i].aio);
        free(c->ctx);
    }
}
