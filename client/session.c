/* client/session: asynchronous client protocol driver (see session.h). */
#include "client/session.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/tls/tls.h>
#include <sodium.h>

#include "core/dp/dpals.h"
#include "core/err.h"
#include "core/log.h"
#include "core/secagg/kdf.h"
#include "core/secagg/secmem.h"
#include "core/util.h"

enum step {
    S_CHECKIN = 0,
    S_MODEL,
    S_ADV,      /* SecAgg stage 0: advert */
    S_SEED,     /* stage 0, second message: the graph seed contribution */
    S_SHARE,    /* stage 1 */
    S_COMPLAIN, /* stage 1, second message: complaints about bad bundles (maybe none) */
    S_OPEN,     /* stage 1, third message (rounds with complaints): openings */
    S_MASKED,   /* stage 2 */
    S_CONSIST,  /* stage 3, first message: the consistency tags */
    S_UNMASK,   /* stage 3: the reveals */
    S_DONE
};

/* The SecAgg stage (0..3) a step's message belongs to, and whether it is
 * the first message of that stage (where the dropout test hook stops). */
static int step_stage(int step)
{
    static const int st[] = {-1, -1, 0, 0, 1, 1, 1, 2, 3, 3};
    return step >= 0 && step < S_DONE ? st[step] : -1;
}

static int step_first(int step)
{
    return step == S_ADV || step == S_SHARE || step == S_MASKED || step == S_CONSIST;
}
enum io { IO_IDLE = 0, IO_SEND, IO_RECV, IO_SLEEP };

struct fedreci_session {
    fedreci_session_config cfg;
    fedreci_session_hooks hooks;
    uint8_t *sk;     /* secure memory (core/secagg/secmem: recycled), 96 bytes: the identity
                        key (64), then mac_key */
    int has_mac_key; /* sk + 64 holds this round's MAC key (derived once per SecAgg client) */
    uint8_t pk[32];
    uint8_t seed[32];
    int has_seed;
    uint8_t checksum[32]; /* of the model the update is computed on */
    int has_checksum;
    int force_download; /* selected for the held version, checksum unknown */
    int withheld;       /* a refusal's withheld step (0: the step after the current one) */

    uint8_t *att; /* the attestation token sent with the check-in (cfg.attestation_len) */

    nng_socket sock;
    int own_sock;
    nng_ctx ctx;
    int ctx_open;
    nng_aio *aio;
    char *ca_file;   /* tls_ca_file, kept for an aggregator's tls+ URL */
    int check_names; /* tls_server_name was set: an aggregator's certificate
                        must carry its URL's host name */
    /* the coordinator's socket and context after a switch to an aggregator */
    nng_socket old_sock;
    int old_own_sock;
    nng_ctx old_ctx;
    int old_ctx_open;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    int started;

    /* the session's own clock (session.h; under mu, except the links) */
    fedreci_session *wd_prev, *wd_next; /* the watched sessions (under the clock's lock) */
    int wd_watched;                     /* on that list */
    uint64_t wd_give_up;     /* monotonic ms: after the cancel, publish the result then (0: no
                                cancel made) */
    uint64_t io_deadline;    /* monotonic ms: the current operation must end by then (0: none) */
    uint64_t round_deadline; /* monotonic ms: the round must end by then (0: not selected) */
    int wd_fired;            /* a deadline passed: the operation was cancelled */
    int abandoned;           /* the watchdog published wd_res: no hook runs after */
    int wd_step;             /* the step of the current operation */
    uint64_t wd_round_id;    /* the round selected for, and its stage deadline */
    uint32_t wd_stage_ms;
    char wd_why[200];
    fedreci_session_result wd_res;

    int step;
    int io;
    int selected;
    int after_model; /* outcome to report after a non-selected model download */
    uint32_t retries;
    fedreci_wire_round round;
    fedreci_secagg_client *sa;
    fedreci_secagg_advert advert;
    uint64_t *ids; /* the roster's member ids */
    size_t m;
    uint32_t attempt; /* the seed step attempt revealed for */
    uint8_t contribution[32];
    const fedreci_secagg_tag *tags;
    size_t n_tags;
    uint64_t *want; /* the neighbours whose endorsement signatures it asked for */
    size_t n_want;
    int asked; /* its Consistency was resent with want */
    const fedreci_secagg_ciphertext *cts;
    size_t n_cts;
    const fedreci_secagg_complaint *cpl; /* this client's complaints (owned by sa) */
    size_t n_cpl;
    const fedreci_secagg_opening *ops; /* its openings (owned by sa) */
    size_t n_ops;
    const uint32_t *masked;
    uint32_t clipped;
    const fedreci_secagg_reveal *reveals;
    size_t n_reveals;
    fedreci_dp_bounds dpb; /* the round's DP bounds (res.dp set) */
    fedreci_session_result res;
};

void fedreci_session_config_default(fedreci_session_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->opted_in = 1;
    cfg->timeout_ms = 120000;
    cfg->recv_max_bytes = 64u << 20;
    cfg->max_retries = 1000;
    cfg->dropout_stage = -1;
    cfg->max_seed_retries = FEDRECI_SECAGG_SEED_RETRIES_DEFAULT;
}

/* ---- ending -------------------------------------------------------------------- */

static const char *step_what(int step);

static void finish(fedreci_session *s, fedreci_session_outcome o, fedrec_err err, const char *fmt,
                   ...) __attribute__((format(printf, 4, 5)));

static void finish(fedreci_session *s, fedreci_session_outcome o, fedrec_err err, const char *fmt,
                   ...)
{
    pthread_mutex_lock(&s->mu);
    int abandoned = s->abandoned, fired = s->wd_fired && o == FEDRECI_SESSION_ERROR;
    pthread_mutex_unlock(&s->mu);
    if (abandoned) {
        /* the watchdog published the result already: on_done gets it now,
           on this thread (hooks stay serialized), and nothing else runs */
        if (s->step == S_DONE)
            return;
        s->step = S_DONE;
        s->io = IO_IDLE;
        fedreci_secagg_client_destroy(s->sa);
        s->sa = NULL;
        if (s->hooks.on_done) {
            pthread_mutex_lock(&s->mu);
            fedreci_session_result r = s->wd_res;
            pthread_mutex_unlock(&s->mu);
            s->hooks.on_done(s->hooks.arg, &r);
        }
        return;
    }
    if (fired) { /* the cancel the watchdog made: its reason */
        s->res.outcome = o;
        s->res.err = FEDREC_ERR_TIMEOUT;
        pthread_mutex_lock(&s->mu);
        snprintf(s->res.text, sizeof s->res.text, "%s", s->wd_why);
        pthread_mutex_unlock(&s->mu);
        fmt = NULL;
        err = FEDREC_ERR_TIMEOUT;
    }
    if (o == FEDRECI_SESSION_ERROR && s->res.refusal && s->selected) {
        /* the client leaves the round because of what the coordinator sent
           (or its floors): a refusal, for the ledger */
        int w = s->withheld > 0 ? s->withheld : s->step + 1;
        if (w < S_ADV)
            w = S_ADV;
        if (w > S_UNMASK) /* after the last message: nothing left to withhold */
            w = S_UNMASK;
        o = FEDRECI_SESSION_REFUSED;
        err = FEDREC_ERR_REFUSED;
        s->res.refused_stage = (uint32_t)step_stage(w);
        snprintf(s->res.refused_what, sizeof s->res.refused_what, "%s", step_what(w));
        s->res.n = s->round.secagg.n;
        s->res.k = s->round.secagg.k;
        s->res.t = s->round.secagg.t;
    }
    s->res.outcome = o;
    s->res.err = err;
    s->res.retries = s->retries;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(s->res.text, sizeof s->res.text, fmt, ap);
        va_end(ap);
    }
    if (o == FEDRECI_SESSION_REFUSED)
        fedreci_log(FEDRECI_LOG_WARN, (int64_t)s->round.secagg.round_id,
                    "client %016llx refuses (%s): %s", (unsigned long long)s->cfg.client_id,
                    s->res.refusal, s->res.text);
    s->step = S_DONE;
    s->io = IO_IDLE;
    fedreci_secagg_client_destroy(s->sa);
    s->sa = NULL;
    if (s->has_mac_key) {
        sodium_memzero(s->sk + FEDRECI_SECAGG_SIGN_SK_BYTES, 32);
        s->has_mac_key = 0;
    }
    if (s->hooks.on_done)
        s->hooks.on_done(s->hooks.arg, &s->res);
    pthread_mutex_lock(&s->mu);
    s->done = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void fail_local(fedreci_session *s, fedrec_err e, const char *what)
{
    if (!s->res.refusal)
        s->res.refusal = fedreci_secagg_client_refusal(s->sa);
    finish(s, FEDRECI_SESSION_ERROR, e, "%s: %s", what, fedrec_errmsg());
}

/* ---- the session's own clock ------------------------------------------------------ */

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint32_t fedreci_session_round_budget_ms(uint32_t stage_timeout_ms)
{
    uint64_t b = (uint64_t)(FEDRECI_SESSION_ROUND_PHASES + 1) * stage_timeout_ms + 5000u;
    return b > UINT32_MAX ? UINT32_MAX : (uint32_t)b;
}

/* The current operation (a request's send or receive, or a RetryAfter
 * pause of ms) must end within ms + FEDRECI_SESSION_GRACE_MS. */
static void io_begin(fedreci_session *s, uint32_t ms)
{
    pthread_mutex_lock(&s->mu);
    s->io_deadline = mono_ms() + ms + FEDRECI_SESSION_GRACE_MS;
    s->wd_step = s->step;
    pthread_mutex_unlock(&s->mu);
}

/* Whether the watchdog has ended the session (nothing more may be sent). */
static int wd_abandoned(fedreci_session *s)
{
    pthread_mutex_lock(&s->mu);
    int a = s->abandoned;
    pthread_mutex_unlock(&s->mu);
    return a;
}

/* One clock for every started session of the process: a thread that wakes
 * at the earliest deadline (at least once a second) and checks each watched
 * session. One thread per session, as before, cost a thread creation and a
 * stack for each of a simulation's thousands of sessions every round. The
 * thread runs while any session is watched and is started again by the next
 * one. Lock order: the clock's lock, then a session's mu. */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC */
    pthread_once_t once;
    fedreci_session *head;
    int running;
    fedreci_session *busy; /* cancelling its operation, the lock released */
} wdc = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_ONCE_INIT, NULL, 0, NULL};

static void wdc_init(void)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_destroy(&wdc.cv);
    pthread_cond_init(&wdc.cv, &ca);
    pthread_condattr_destroy(&ca);
}

/* s under its mu, at monotonic time now: 1 when a deadline passed and the
 * operation must be cancelled (s->wd_why says why), else 0; a cancel made
 * FEDRECI_SESSION_GRACE_MS ago without the result coming back publishes the
 * result here. *next is lowered to the next time s needs a look. */
static int wd_check(fedreci_session *s, uint64_t now, uint64_t *next)
{
    if (s->done)
        return 0;
    if (s->wd_fired) {
        if (now < s->wd_give_up) {
            *next = s->wd_give_up < *next ? s->wd_give_up : *next;
            return 0;
        }
        /* nng did not hand the operation back (or a hook still runs): the
           result is published here, and nothing after it */
        memset(&s->wd_res, 0, sizeof s->wd_res);
        s->wd_res.outcome = FEDRECI_SESSION_ERROR;
        s->wd_res.err = FEDREC_ERR_TIMEOUT;
        s->wd_res.round_id = s->wd_round_id;
        snprintf(s->wd_res.text, sizeof s->wd_res.text, "%s (not handed back after the cancel)",
                 s->wd_why);
        s->abandoned = 1;
        s->done = 1;
        pthread_cond_broadcast(&s->cv);
        return 0;
    }
    uint64_t until = UINT64_MAX;
    const char *which = NULL;
    if (s->io_deadline && s->io_deadline < until) {
        until = s->io_deadline;
        which = "request";
    }
    if (s->round_deadline && s->round_deadline < until) {
        until = s->round_deadline;
        which = "round";
    }
    if (!which || now < until) {
        *next = until < *next ? until : *next;
        return 0;
    }
    /* a deadline passed and nng has not ended the operation */
    if (which[0] == 'r')
        snprintf(s->wd_why, sizeof s->wd_why,
                 "round %llu: no result within %u ms of selection (the round's budget for "
                 "stage deadlines of %u ms), by the session's own clock: the %s was "
                 "not answered",
                 (unsigned long long)s->wd_round_id,
                 fedreci_session_round_budget_ms(s->wd_stage_ms), s->wd_stage_ms,
                 step_what(s->wd_step));
    else
        snprintf(s->wd_why, sizeof s->wd_why,
                 "the %s did not end within %u ms (timeout %u ms + %u ms), by the "
                 "session's own clock: the transport did not end it",
                 step_what(s->wd_step), s->cfg.timeout_ms + FEDRECI_SESSION_GRACE_MS,
                 s->cfg.timeout_ms, FEDRECI_SESSION_GRACE_MS);
    s->wd_fired = 1;
    s->wd_give_up = now + FEDRECI_SESSION_GRACE_MS;
    *next = s->wd_give_up < *next ? s->wd_give_up : *next;
    fedreci_log(FEDRECI_LOG_WARN, (int64_t)s->wd_round_id, "client %016llx: %s",
                (unsigned long long)s->cfg.client_id, s->wd_why);
    return 1;
}

static void *watchdog(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&wdc.mu);
    while (wdc.head) {
        uint64_t now = mono_ms(), next = now + 1000u;
        for (fedreci_session *s = wdc.head; s; s = s->wd_next) {
            pthread_mutex_lock(&s->mu);
            int cancel = wd_check(s, now, &next);
            pthread_mutex_unlock(&s->mu);
            if (cancel) {     /* aio_cb then ends the session with wd_why */
                wdc.busy = s; /* fedreci_session_destroy waits: s stays listed */
                pthread_mutex_unlock(&wdc.mu);
                nng_aio_cancel(s->aio);
                pthread_mutex_lock(&wdc.mu);
                wdc.busy = NULL;
                pthread_cond_broadcast(&wdc.cv);
            }
        }
        if (next > mono_ms() && wdc.head) {
            struct timespec ts;
            ts.tv_sec = (time_t)(next / 1000u);
            ts.tv_nsec = (long)(next % 1000u) * 1000000L;
            pthread_cond_timedwait(&wdc.cv, &wdc.mu, &ts);
        }
    }
    wdc.running = 0;
    pthread_mutex_unlock(&wdc.mu);
    return NULL;
}

/* Puts s under the clock, starting its thread when none runs. */
static fedrec_err wd_watch(fedreci_session *s)
{
    pthread_once(&wdc.once, wdc_init);
    pthread_mutex_lock(&wdc.mu);
    if (!wdc.running) {
        pthread_t t;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        int rv = pthread_create(&t, &at, watchdog, NULL);
        pthread_attr_destroy(&at);
        if (rv != 0) {
            pthread_mutex_unlock(&wdc.mu);
            return fedreci_error(FEDREC_ERR_NOMEM, "session: clock thread: %s", strerror(rv));
        }
        wdc.running = 1;
    }
    s->wd_prev = NULL;
    s->wd_next = wdc.head;
    if (wdc.head)
        wdc.head->wd_prev = s;
    wdc.head = s;
    s->wd_watched = 1;
    pthread_cond_broadcast(&wdc.cv);
    pthread_mutex_unlock(&wdc.mu);
    return FEDREC_OK;
}

/* Takes s off the clock; after it the clock thread never touches s. */
static void wd_unwatch(fedreci_session *s)
{
    pthread_mutex_lock(&wdc.mu);
    while (wdc.busy == s)
        pthread_cond_wait(&wdc.cv, &wdc.mu);
    if (s->wd_watched) {
        if (s->wd_prev)
            s->wd_prev->wd_next = s->wd_next;
        else
            wdc.head = s->wd_next;
        if (s->wd_next)
            s->wd_next->wd_prev = s->wd_prev;
        s->wd_watched = 0;
        pthread_cond_broadcast(&wdc.cv);
    }
    pthread_mutex_unlock(&wdc.mu);
}

/* ---- sending ------------------------------------------------------------------------ */

static const char *step_what(int step)
{
    static const char *const w[] = {"check-in",
                                    "model request",
                                    "key advertisement",
                                    "graph seed contribution",
                                    "encrypted key shares",
                                    "complaints",
                                    "openings",
                                    "masked update",
                                    "consistency tags",
                                    "unmask shares"};
    return step >= 0 && step < S_DONE ? w[step] : "?";
}

/* Encodes and signs the request of the current step (again, for a resend).
 * The check-in and the model request carry the identity key's signature over
 * their round, stage, sender and bytes; the advert (signed inside with the
 * identity key) and every later request a MAC under the round key bound to
 * the signed advert (docs/protocol.md "Authentication"). */
static fedrec_err build(fedreci_session *s, nng_msg **m)
{
    fedreci_wire_hdr h = {s->cfg.client_id, s->selected ? s->round.secagg.round_id : 0, 0};
    fedrec_err e;
    switch (s->step) {
    case S_CHECKIN:
        h.stage = FEDRECI_WIRE_STAGE_CHECKIN;
        h.round_id = 0;
        e = fedreci_wire_enc_checkin_attested(m, &h, s->pk, s->res.model_version, s->cfg.opted_in,
                                              s->att, s->cfg.attestation_len);
        break;
    case S_MODEL:
        h.stage = FEDRECI_WIRE_STAGE_MODEL;
        e = fedreci_wire_enc_model_request(m, &h, s->force_download ? 0 : s->res.model_version);
        break;
    case S_ADV:
        h.stage = FEDRECI_WIRE_STAGE_ADVERTISE;
        e = fedreci_wire_enc_advertise(m, &h, &s->advert);
        break;
    case S_SEED:
        h.stage = FEDRECI_WIRE_STAGE_SEED;
        e = fedreci_wire_enc_seed_reveal_attempt(m, &h, s->attempt, s->contribution);
        break;
    case S_SHARE:
        h.stage = FEDRECI_WIRE_STAGE_SHARE_KEYS;
        e = fedreci_wire_enc_ciphertexts(m, &h, 0, s->cts, s->n_cts);
        break;
    case S_COMPLAIN:
        h.stage = FEDRECI_WIRE_STAGE_COMPLAINT;
        e = fedreci_wire_enc_complaints(m, &h, s->cpl, s->n_cpl);
        break;
    case S_OPEN:
        h.stage = FEDRECI_WIRE_STAGE_OPENING;
        e = fedreci_wire_enc_openings(m, &h, s->ops, s->n_ops);
        break;
    case S_CONSIST:
        h.stage = FEDRECI_WIRE_STAGE_CONSISTENCY;
        {
            const uint64_t *peers = NULL;
            size_t n_peers = 0;
            e = fedreci_secagg_client_endorse_peers(s->sa, &peers, &n_peers);
            if (!e)
                e = fedreci_wire_enc_consistency(m, &h, peers, n_peers, s->tags, s->n_tags,
                                                 fedreci_secagg_client_endorsement(s->sa), s->want,
                                                 s->n_want);
        }
        break;
    case S_MASKED:
        h.stage = FEDRECI_WIRE_STAGE_MASKED_INPUT;
        e = fedreci_wire_enc_masked(m, &h, s->masked, s->round.secagg.d);
        break;
    case S_UNMASK:
        h.stage = FEDRECI_WIRE_STAGE_UNMASK;
        e = fedreci_wire_enc_unmask(m, &h, s->reveals, s->n_reveals);
        break;
    default:
        return fedreci_error(FEDREC_ERR_INTERNAL, "session: nothing to send");
    }
    if (!e && s->step >= S_ADV) {
        /* the advert (its own signature inside) and every message after
           it: a MAC under the round key bound to the signed advert (cheaper
           than hashing 4 d bytes for a signature, and than verifying a
           signature); only the coordinator checks them, and it holds the key
           too (protocol version 7) */
        uint8_t *key = s->sk + FEDRECI_SECAGG_SIGN_SK_BYTES;
        if (!s->has_mac_key) /* an X25519: once per round, not per message */
            e = fedreci_secagg_client_mac_key(s->sa, s->round.coord_pk, key);
        if (!e) {
            s->has_mac_key = 1;
            e = fedreci_wire_mac(*m, key);
        }
    } else if (!e) {
        e = fedreci_wire_sign(*m, &h, s->sk);
    }
    if (e && *m) {
        nng_msg_free(*m);
        *m = NULL;
    }
    return e;
}

static void send_step(fedreci_session *s)
{
    int secagg_stage = step_stage(s->step); /* 0..3 for the SecAgg steps */
    if (s->step >= S_ADV && step_first(s->step) && s->cfg.dropout_stage == secagg_stage) {
        finish(s, FEDRECI_SESSION_DROPPED, FEDREC_OK, "dropped out before stage %d", secagg_stage);
        return;
    }
    if (s->step == S_SEED && s->cfg.withhold_seed > 0 &&
        (uint32_t)(s->cfg.withhold_seed - 1) == s->attempt) {
        finish(s, FEDRECI_SESSION_DROPPED, FEDREC_OK, "withheld the graph seed contribution");
        return;
    }
    if (s->step == S_UNMASK && s->cfg.dropout_stage == 4) {
        finish(s, FEDRECI_SESSION_DROPPED, FEDREC_OK, "dropped out before its unmask shares");
        return;
    }
    nng_msg *m = NULL;
    fedrec_err e = build(s, &m);
    if (e) {
        fail_local(s, e, "encoding the request");
        return;
    }
    size_t len = nng_msg_len(m);
    s->res.bytes_sent += len;
    if (s->step == S_MASKED && s->res.dp)
        s->res.dp_sent = 1; /* the noised input is out: the round counts */
    if (s->step >= S_ADV) {
        s->res.update_bytes_sent += len;
        if (s->hooks.on_upload)
            s->hooks.on_upload(s->hooks.arg, s->round.secagg.round_id, secagg_stage, len,
                               step_what(s->step), s->step == S_MASKED ? s->clipped : 0);
    }
    if (wd_abandoned(s)) {
        nng_msg_free(m);
        finish(s, FEDRECI_SESSION_ERROR, FEDREC_ERR_TIMEOUT, NULL);
        return;
    }
    s->io = IO_SEND;
    io_begin(s, s->cfg.timeout_ms);
    nng_aio_set_msg(s->aio, m);
    nng_aio_set_timeout(s->aio, (nng_duration)s->cfg.timeout_ms);
    nng_ctx_send(s->ctx, s->aio);
}

static fedrec_err switch_to_aggregator(fedreci_session *s, const char *url);

/* ---- the steps ---------------------------------------------------------------------- */

/* The round's announced n, k, t against the configured floors (0 when
 * they hold; else the session is refused and 1). */
static int below_floors(fedreci_session *s)
{
    const fedreci_secagg_params *p = &s->round.secagg;
    const fedreci_session_config *f = &s->cfg;
    char why[160] = "";
    if (f->min_cohort && p->n < f->min_cohort)
        snprintf(why, sizeof why, "cohort n = %u is below the app's floor %u", p->n, f->min_cohort);
    else if (f->min_neighbors && p->k < f->min_neighbors)
        snprintf(why, sizeof why, "neighbours k = %u are below the app's floor %u", p->k,
                 f->min_neighbors);
    else if (f->min_threshold && p->t < f->min_threshold)
        snprintf(why, sizeof why, "threshold t = %u is below the app's floor %u", p->t,
                 f->min_threshold);
    else if (f->min_threshold_fraction > 0 &&
             (double)p->t + 1e-9 < f->min_threshold_fraction * (double)p->k)
        snprintf(why, sizeof why, "threshold t = %u is below %.3g x k = %.2f (k = %u)", p->t,
                 f->min_threshold_fraction, f->min_threshold_fraction * (double)p->k, p->k);
    else if (p->seed_retries > f->max_seed_retries)
        snprintf(why, sizeof why,
                 "seed step retries %u exceed the app's bound %u (each gives the coordinator "
                 "another graph seed to choose from)",
                 p->seed_retries, f->max_seed_retries);
    if (!why[0])
        return 0;
    s->res.refusal = FEDRECI_REFUSE_FLOORS;
    s->withheld = S_ADV;
    finish(s, FEDRECI_SESSION_ERROR, FEDREC_ERR_PROTOCOL, "round %llu (n = %u, k = %u, t = %u): %s",
           (unsigned long long)p->round_id, p->n, p->k, p->t, why);
    return 1;
}

static void begin_round(fedreci_session *s)
{
    /* the app's floors, before any SecAgg message (the model download
       before it carries nothing of the shopper's) */
    if (below_floors(s))
        return;
    /* parameters under which the sum could wrap (the overflow budget) or
       that break the other SecAgg rules: refused, for the ledger, before
       any SecAgg message */
    fedrec_err e = fedreci_secagg_params_check(&s->round.secagg);
    if (e) {
        const fedreci_secagg_params *p = &s->round.secagg;
        s->res.refusal = FEDRECI_REFUSE_PARAMS_INVALID;
        s->withheld = S_ADV;
        finish(s, FEDRECI_SESSION_ERROR, FEDREC_ERR_PROTOCOL,
               "round %llu (n = %u, k = %u, t = %u): %s", (unsigned long long)p->round_id, p->n,
               p->k, p->t, fedrec_errmsg());
        return;
    }
    s->has_mac_key = 0; /* keyed by the new client's s_sk */
    e = fedreci_secagg_client_create(&s->sa, &s->round.secagg, s->cfg.client_id, s->sk,
                                     s->has_seed ? s->seed : NULL);
    if (e) {
        fail_local(s, e, "starting the SecAgg client");
        return;
    }
    /* a bad bundle from one neighbour does not make this client drop out
       (secagg.h fedreci_secagg_client_set_lenient) */
    fedreci_secagg_client_set_lenient(s->sa, 1);
    /* bind the model it trains on and every round parameter into the signed
       advert: a neighbour given anything else is refused (binding_mismatch) */
    uint8_t binding[32];
    fedreci_wire_binding(&s->round, s->checksum, binding);
    e = fedreci_secagg_client_set_binding(s->sa, binding);
    if (e || (e = fedreci_secagg_client_advertise(s->sa, &s->advert))) {
        fail_local(s, e, "advertising keys");
        return;
    }
    s->step = S_ADV;
    send_step(s);
}

/* The round's DP parameters, checked before anything is uploaded
 * (core/dp/round.h fedreci_dp_round_verify): the no-wrap check, the claimed
 * epsilon against the noise, and SecAgg carrying the noised words
 * unchanged (scale 1, a clip no client word reaches: a smaller clip would
 * cut the noise). 0 when refused (the session has finished). */
static int dp_accept(fedreci_session *s)
{
    const fedreci_wire_round *w = &s->round;
    double eps = 0;
    fedrec_err e = fedreci_dp_round_verify(&w->dp, w->secagg.n, w->n_items, w->k_factors, &s->dpb,
                                           &s->res.dp_event, &eps);
    if (!e && (w->secagg.scale != 1.0 || !(w->secagg.clip >= s->dpb.client_bound) ||
               (uint64_t)s->dpb.D + 1 != w->secagg.d))
        e = fedreci_error(FEDREC_ERR_INVALID,
                          "dp round: SecAgg scale %g and clip %g would alter the noised words "
                          "(need scale 1 and clip >= %.0f, d = %zu + 1)",
                          w->secagg.scale, w->secagg.clip, s->dpb.client_bound, s->dpb.D);
    if (e) {
        s->res.dp_refused = 1;
        s->res.dp_params = w->dp;
        finish(s, FEDRECI_SESSION_ERROR, e,
               "refusing the round's differential-privacy parameters: %s", fedrec_errmsg());
        return 0;
    }
    s->res.dp = 1;
    s->res.dp_params = w->dp;
    s->res.dp_epsilon_round = eps;
    return 1;
}

static void on_checkin_reply(fedreci_session *s, const fedreci_wire_env *env)
{
    const Fedrec__V1__CheckInReply *r = env->check_in_reply;
    uint64_t held = s->res.model_version;
    s->res.latest_version = r->model_version;
    switch (r->status) {
    case FEDREC__V1__CHECK_IN_REPLY__STATUS__SELECTED: {
        fedrec_err e = fedreci_wire_get_round(env, &s->round);
        if (e) {
            fail_local(s, e, "round parameters");
            return;
        }
        s->selected = 1;
        s->res.round_id = s->round.secagg.round_id;
        pthread_mutex_lock(&s->mu);
        s->round_deadline = mono_ms() + fedreci_session_round_budget_ms(s->round.stage_timeout_ms);
        s->wd_round_id = s->round.secagg.round_id;
        s->wd_stage_ms = s->round.stage_timeout_ms;
        pthread_mutex_unlock(&s->mu);
        if (!s->cfg.opted_in) {
            finish(s, FEDRECI_SESSION_ERROR, FEDREC_ERR_PROTOCOL,
                   "selected although opted out; refusing to upload");
            return;
        }
        if (s->round.dp.mechanism && !dp_accept(s))
            return;
        if (s->round.aggregator_url[0] && (e = switch_to_aggregator(s, s->round.aggregator_url))) {
            fail_local(s, e, "dialing the group's aggregator");
            return;
        }
        if (held != s->round.model_version || !s->has_checksum) {
            /* the model bytes are bound into the advert: download them when
               their checksum is not known */
            s->force_download = held == s->round.model_version;
            s->step = S_MODEL;
            send_step(s);
        } else {
            begin_round(s);
        }
        return;
    }
    case FEDREC__V1__CHECK_IN_REPLY__STATUS__NOT_SELECTED:
    case FEDREC__V1__CHECK_IN_REPLY__STATUS__OPTED_OUT: {
        s->res.retry_after_ms = r->retry_after_ms;
        fedreci_session_outcome o = r->status == FEDREC__V1__CHECK_IN_REPLY__STATUS__OPTED_OUT
                                        ? FEDRECI_SESSION_OPTED_OUT
                                        : FEDRECI_SESSION_NOT_SELECTED;
        if (s->cfg.fetch_model && r->model_version != held) {
            s->after_model = (int)o;
            s->step = S_MODEL;
            send_step(s);
            return;
        }
        finish(s, o, FEDREC_OK, NULL);
        return;
    }
    default:
        s->res.retry_after_ms = r->retry_after_ms;
        finish(s, FEDRECI_SESSION_NO_ROUND, FEDREC_OK, "the coordinator runs no further round");
        return;
    }
}

static void on_model_reply(fedreci_session *s, const fedreci_wire_env *env)
{
    const Fedrec__V1__ModelReply *r = env->model_reply;
    if (!r->not_modified) {
        fedreci_wire_model m;
        fedrec_err e = fedreci_wire_get_model(env, &m);
        if (e) {
            fail_local(s, e, "model");
            return;
        }
        if (s->selected && (m.n_items != s->round.n_items || m.k != s->round.k_factors ||
                            m.version != s->round.model_version)) {
            s->res.refusal = FEDRECI_REFUSE_PARAMS;
            finish(s, FEDRECI_SESSION_ERROR, FEDREC_ERR_PROTOCOL,
                   "model v%llu (%u x %u) does not match round v%llu (%u x %u)",
                   (unsigned long long)m.version, m.n_items, m.k,
                   (unsigned long long)s->round.model_version, s->round.n_items,
                   s->round.k_factors);
            return;
        }
        if (s->hooks.on_model)
            s->hooks.on_model(s->hooks.arg, &m);
        memcpy(s->checksum, m.checksum, sizeof s->checksum);
        s->has_checksum = 1;
        s->res.model_version = m.version;
        if (m.version > s->res.latest_version)
            s->res.latest_version = m.version;
    } else if (s->selected && (r->version != s->round.model_version || !s->has_checksum)) {
        s->res.refusal = FEDRECI_REFUSE_PARAMS;
        finish(s, FEDRECI_SESSION_ERROR, FEDREC_ERR_PROTOCOL,
               "coordinator says v%llu is current, round uses v%llu",
               (unsigned long long)r->version, (unsigned long long)s->round.model_version);
        return;
    }
    if (s->selected)
        begin_round(s);
    else
        finish(s, (fedreci_session_outcome)s->after_model, FEDREC_OK, NULL);
}

/* The roster of the seed step's first attempt (retry 0: the reply to the
 * advert) or of a retry (the reply to a SeedReveal): the member ids and the
 * coordinator's digest of their seed commitments; this client reveals its
 * contribution for the attempt. */
static void take_roster(fedreci_session *s, const fedreci_wire_env *env, int retry)
{
    fedreci_secagg_advert *ro = NULL;
    size_t m = 0;
    const uint8_t *digest = NULL;
    uint32_t attempt = 0;
    fedrec_err e = fedreci_wire_get_roster(env, s->cfg.client_id, s->round.secagg.t,
                                           retry ? s->m : s->round.secagg.n, &ro, &m);
    if (e)
        fedreci_secagg_client_note_refusal(
            s->sa, e == FEDREC_ERR_PROTOCOL ? FEDRECI_REFUSE_ROSTER_SELF : FEDRECI_REFUSE_ROSTER);
    if (!e && ((e = fedreci_wire_get_seed_digest(env, &digest)) ||
               (retry && (e = fedreci_wire_get_seed_attempt(env, &attempt)))))
        fedreci_secagg_client_note_refusal(s->sa, FEDRECI_REFUSE_ROSTER);
    uint64_t *ids = e ? NULL : malloc(m * sizeof *ids);
    if (!e && !ids)
        e = fedreci_error(FEDREC_ERR_NOMEM, "session: roster of %zu", m);
    for (size_t i = 0; !e && i < m; i++)
        ids[i] = ro[i].client_id;
    free(ro);
    if (!e)
        e = fedreci_secagg_client_reveal_attempt(s->sa, attempt, ids, m, digest, s->contribution);
    if (e) {
        free(ids);
        if (retry)
            s->withheld = S_SEED; /* what it does not send: the next contribution */
        fail_local(s, e, retry ? "seed step retry" : "roster");
        return;
    }
    free(s->ids);
    s->ids = ids;
    s->m = m;
    s->attempt = attempt;
    if (retry)
        s->res.seed_attempts = attempt + 1;
    s->step = S_SEED;
    send_step(s);
}

static void on_roster(fedreci_session *s, const fedreci_wire_env *env)
{
    take_roster(s, env, 0);
}

/* A retry of the seed step (a Roster in reply to the SeedReveal): the
 * members that remain and the digest of the next attempt; this client
 * reveals the next link of its contribution chain, or refuses a retry
 * beyond the round's seed_retries (seed_retry_limit). */
static void on_seed_retry(fedreci_session *s, const fedreci_wire_env *env)
{
    take_roster(s, env, 1);
}

/* The contributions of every member and the adverts of the neighbours in
 * the graph they seed: deal the shares. */
static void on_seed_relay(fedreci_session *s, const fedreci_wire_env *env)
{
    fedreci_secagg_advert *ro = NULL;
    uint8_t *contribs = NULL, *missing = NULL;
    fedrec_err e = fedreci_wire_get_seed_relay(env, s->ids, s->m, &contribs, &missing, &ro);
    if (e)
        fedreci_secagg_client_note_refusal(s->sa, FEDRECI_REFUSE_SEED);
    /* ids are self-certifying: every advert the roster carries must list an
       identity key whose id is the member's (a coordinator or a client
       cannot put another key under a member's id) */
    for (size_t i = 0; !e && i < s->m; i++) {
        static const uint8_t zero[FEDRECI_SECAGG_SIGN_PK_BYTES];
        if (sodium_memcmp(ro[i].identity_pk, zero, sizeof zero) == 0)
            continue; /* a member the relay carries no advert for */
        if (fedreci_secagg_id_from_pk(ro[i].identity_pk) != ro[i].client_id) {
            fedreci_secagg_client_note_refusal(s->sa, FEDRECI_REFUSE_ADVERT_ID);
            e = fedreci_error(FEDREC_ERR_SIGNATURE,
                              "session: roster entry %zu lists client %016llx with an identity "
                              "key whose id is %016llx",
                              i, (unsigned long long)ro[i].client_id,
                              (unsigned long long)fedreci_secagg_id_from_pk(ro[i].identity_pk));
        }
    }
    if (!e)
        e = fedreci_secagg_client_share_keys_missing(s->sa, ro, s->m, contribs, missing, &s->cts,
                                                     &s->n_cts);
    free(ro);
    free(contribs);
    free(missing);
    if (e) {
        fail_local(s, e, "roster");
        return;
    }
    s->step = S_SHARE;
    send_step(s);
}

/* The DP encoding of contribution v (dv floats) into words (D floats):
 * rounding and noise from the rounding seed (stream 1) when one is
 * configured, else from fresh randombytes_buf. */
static fedrec_err dp_encode(fedreci_session *s, const float *v, size_t dv, float *words)
{
    uint8_t seed[FEDRECI_DP_SEED_BYTES];
    if (s->has_seed)
        memcpy(seed, s->seed, sizeof seed);
    else
        randombytes_buf(seed, sizeof seed);
    fedreci_dp_rng rng;
    fedreci_dp_rng_init(&rng, seed, 1);
    sodium_memzero(seed, sizeof seed);
    fedrec_err e = fedreci_dp_round_encode(&s->round.dp, &s->dpb, &rng, v, dv, words);
    fedreci_dp_rng_wipe(&rng);
    return e;
}

/* The share relay: the bundles are checked and kept, and a complaint is
 * sent about each bad one (an empty message when all are good). */
static void on_relay(fedreci_session *s, const fedreci_wire_env *env)
{
    fedreci_secagg_ciphertext *cts = NULL;
    size_t n = 0;
    fedrec_err e = fedreci_wire_get_ciphertexts(env, s->round.secagg.n, &cts, &n);
    if (e) {
        fail_local(s, e, "share relay");
        return;
    }
    if (s->cfg.dropout_stage == 2) {
        free(cts);
        finish(s, FEDRECI_SESSION_DROPPED, FEDREC_OK, "dropped out before stage 2");
        return;
    }
    e = fedreci_secagg_client_receive(s->sa, cts, n, &s->cpl, &s->n_cpl);
    free(cts);
    if (e) {
        s->withheld = S_MASKED; /* what a refused relay keeps back: the update */
        fail_local(s, e, "share relay");
        return;
    }
    s->step = S_COMPLAIN;
    send_step(s);
}

/* The masked update, once the complaint step's outcome is applied. */
static void send_masked(fedreci_session *s)
{
    fedrec_err e = FEDREC_OK;
    size_t dx = (size_t)s->round.secagg.d - 1;
    fedreci_dpals dpa = {s->round.n_items, s->round.k_factors, s->round.dp.row_bound,
                         s->round.dp.gram_weight};
    size_t dv = s->res.dp ? fedreci_dpals_dim(&dpa) : dx; /* what the hook fills */
    float *x = calloc(dv, sizeof *x);
    float *words = s->res.dp ? calloc(dx, sizeof *words) : NULL;
    uint32_t weight = 0;
    if (!x || (s->res.dp && !words)) {
        free(x);
        free(words);
        finish(s, FEDRECI_SESSION_ERROR, FEDREC_ERR_NOMEM, "update of %zu floats", dx);
        return;
    }
    if (!s->hooks.compute_update)
        e = fedreci_error(FEDREC_ERR_INVALID, "session: no compute_update hook");
    else
        e = s->hooks.compute_update(s->hooks.arg, &s->round, x, &weight);
    if (!e && s->res.dp)
        e = dp_encode(s, x, dv, words);
    fedreci_secagg_quant_stats qs = {0, 0};
    if (!e)
        e = fedreci_secagg_client_masked_input(s->sa, NULL, 0, s->res.dp ? words : x, weight,
                                               &s->masked, &qs);
    if (!e && s->res.dp && qs.clipped)
        e = fedreci_error(FEDREC_ERR_RANGE, "dp: %u noised words reached the SecAgg clip",
                          qs.clipped);
    sodium_memzero(x, dv * sizeof *x);
    free(x);
    if (words) {
        sodium_memzero(words, dx * sizeof *words);
        free(words);
    }
    if (e) {
        fail_local(s, e, "masking the update");
        return;
    }
    s->clipped = qs.clipped;
    if (s->hooks.on_quantized)
        s->hooks.on_quantized(s->hooks.arg, s->round.secagg.round_id,
                              fedreci_secagg_client_quantized_input(s->sa), s->round.secagg.d);
    s->step = S_MASKED;
    send_step(s);
}

/* The complaint step's reply: the complaints against this client (it opens
 * what it can check, then waits for the outcome), or the outcome: the
 * members excluded from the round and the openings of the bundles this
 * client complained about. */
static void on_complaint_relay(fedreci_session *s, const fedreci_wire_env *env)
{
    int final = 0;
    const uint64_t *ex = NULL;
    size_t n_ex = 0;
    fedrec_err e = fedreci_wire_get_complaint_relay(env, &final, &ex, &n_ex);
    if (!e && !final && s->step == S_COMPLAIN) {
        fedreci_secagg_complaint *ag = NULL;
        size_t n_ag = 0;
        e = fedreci_wire_get_complaints(env, s->round.secagg.n, &ag, &n_ag);
        if (!e)
            e = fedreci_secagg_client_answer(s->sa, ag, n_ag, &s->ops, &s->n_ops);
        free(ag);
        if (e) {
            fail_local(s, e, "complaints");
            return;
        }
        s->step = S_OPEN;
        send_step(s);
        return;
    }
    if (!e && !final) {
        fedreci_secagg_client_note_refusal(s->sa, FEDRECI_REFUSE_MALFORMED);
        e = fedreci_error(FEDREC_ERR_PROTOCOL, "session: a second round of complaints");
    }
    fedreci_secagg_opening *op = NULL;
    size_t n_op = 0;
    if (!e)
        e = fedreci_wire_get_openings(env, s->round.secagg.n, &op, &n_op);
    if (!e)
        e = fedreci_secagg_client_resolve(s->sa, ex, n_ex, op, n_op);
    if (op) {
        sodium_memzero(op, n_op * sizeof *op);
        free(op);
    }
    if (e) {
        fail_local(s, e, "complaint step");
        return;
    }
    send_masked(s);
}

static void on_unmask_request(fedreci_session *s, const fedreci_wire_env *env)
{
    const uint64_t *sv, *dr;
    size_t ns, nd;
    fedrec_err e = fedreci_wire_get_unmask_request(env, &sv, &ns, &dr, &nd);
    if (!e)
        e = fedreci_secagg_client_consistency(s->sa, sv, ns, dr, nd, &s->tags, &s->n_tags);
    if (e) {
        fail_local(s, e, "unmask request");
        return;
    }
    s->asked = 0;
    s->n_want = 0;
    s->step = S_CONSIST;
    send_step(s);
}

/* The endorsements of the neighbours: reveal only with t of them. When the
 * tags alone fall short, the Consistency is sent once more asking for the
 * signatures of the neighbours whose tags did not verify (the hostile path
 * only: a neighbour with garbage tags but a valid signature still counts). */
static void on_consistency_relay(fedreci_session *s, const fedreci_wire_env *env)
{
    fedreci_secagg_tag *tags = NULL;
    fedreci_secagg_endorsement *sigs = NULL;
    size_t n = 0, ns = 0;
    const uint64_t *peers = NULL;
    size_t n_peers = 0;
    fedrec_err e = fedreci_secagg_client_endorse_peers(s->sa, &peers, &n_peers);
    if (!e)
        e = fedreci_wire_get_tags(env, s->cfg.client_id, peers, n_peers, &tags, &n);
    if (!e)
        e = fedreci_wire_get_endorsements(env, s->round.secagg.n, &sigs, &ns);
    if (e)
        fedreci_secagg_client_note_refusal(s->sa, FEDRECI_REFUSE_CONSISTENCY);
    if (!e && !s->asked) {
        size_t cap = s->round.secagg.n;
        free(s->want);
        s->n_want = 0;
        s->want = malloc((cap ? cap : 1) * sizeof *s->want);
        if (!s->want)
            e = fedreci_error(FEDREC_ERR_NOMEM, "session: %zu ids", cap);
        if (!e)
            e = fedreci_secagg_client_endorse_missing(s->sa, tags, n, s->want, cap, &s->n_want);
        if (!e && s->n_want) {
            free(tags);
            free(sigs);
            s->asked = 1;
            send_step(s);
            return;
        }
    }
    if (!e)
        e = fedreci_secagg_client_unmask_endorsed(s->sa, tags, n, sigs, ns, &s->reveals,
                                                  &s->n_reveals);
    free(tags);
    free(sigs);
    if (e) {
        fail_local(s, e, "consistency check");
        return;
    }
    s->step = S_UNMASK;
    send_step(s);
}

static void on_reply(fedreci_session *s, const fedreci_wire_env *env)
{
    if (env->client_id != s->cfg.client_id) {
        s->res.refusal = FEDRECI_REFUSE_PROTOCOL; /* a refusal once selected */
        finish(s, FEDRECI_SESSION_ERROR, FEDREC_ERR_PROTOCOL, "reply for client %016llx",
               (unsigned long long)env->client_id);
        return;
    }
    switch (env->body_case) {
    case FEDREC__V1__ENVELOPE__BODY_ERROR:
        finish(s, FEDRECI_SESSION_ERROR,
               env->error->code ? (fedrec_err)env->error->code : FEDREC_ERR_PROTOCOL,
               "coordinator: %s", env->error->text ? env->error->text : "");
        return;
    case FEDREC__V1__ENVELOPE__BODY_RETRY_AFTER:
        if (++s->retries > s->cfg.max_retries) {
            finish(s, FEDRECI_SESSION_ERROR, FEDREC_ERR_BUSY, "coordinator busy after %u retries",
                   s->retries - 1);
            return;
        }
        s->io = IO_SLEEP;
        io_begin(s, env->retry_after->ms);
        nng_sleep_aio((nng_duration)env->retry_after->ms, s->aio);
        return;
    case FEDREC__V1__ENVELOPE__BODY_ROUND_RESULT:
        if (s->step < S_ADV || env->round_id != s->round.secagg.round_id)
            break;
        s->res.latest_version = env->round_result->model_version;
        if (s->step == S_UNMASK && env->round_result->completed)
            finish(s, FEDRECI_SESSION_COMPLETED, FEDREC_OK, NULL);
        else
            finish(s, FEDRECI_SESSION_ABORTED, FEDREC_ERR_ABORTED, "round aborted: %s",
                   env->round_result->reason ? env->round_result->reason : "");
        return;
    default:
        break;
    }
    if (s->step >= S_ADV && env->round_id != s->round.secagg.round_id) {
        s->res.refusal = FEDRECI_REFUSE_STALE;
        finish(s, FEDRECI_SESSION_ERROR, FEDREC_ERR_ROUND, "reply for round %llu, expected %llu",
               (unsigned long long)env->round_id, (unsigned long long)s->round.secagg.round_id);
        return;
    }
    Fedrec__V1__Envelope__BodyCase want[] = {
        FEDREC__V1__ENVELOPE__BODY_CHECK_IN_REPLY,
        FEDREC__V1__ENVELOPE__BODY_MODEL_REPLY,
        FEDREC__V1__ENVELOPE__BODY_ROSTER,
        FEDREC__V1__ENVELOPE__BODY_SEED_RELAY,
        FEDREC__V1__ENVELOPE__BODY_SHARE_RELAY,
        FEDREC__V1__ENVELOPE__BODY_COMPLAINT_RELAY,
        FEDREC__V1__ENVELOPE__BODY_COMPLAINT_RELAY,
        FEDREC__V1__ENVELOPE__BODY_UNMASK_REQUEST,
        FEDREC__V1__ENVELOPE__BODY_CONSISTENCY_RELAY,
        FEDREC__V1__ENVELOPE__BODY_ROUND_RESULT,
    };
    int seed_retry = s->step == S_SEED && env->body_case == FEDREC__V1__ENVELOPE__BODY_ROSTER;
    if (s->step >= S_DONE || (env->body_case != want[s->step] && !seed_retry)) {
        if (s->step >= S_ADV)
            s->res.refusal = FEDRECI_REFUSE_MALFORMED;
        finish(s, FEDRECI_SESSION_ERROR, FEDREC_ERR_PROTOCOL,
               "unexpected reply (body %d) to the %s", (int)env->body_case, step_what(s->step));
        return;
    }
    switch (s->step) {
    case S_CHECKIN:
        on_checkin_reply(s, env);
        break;
    case S_MODEL:
        on_model_reply(s, env);
        break;
    case S_ADV:
        on_roster(s, env);
        break;
    case S_SEED:
        if (seed_retry)
            on_seed_retry(s, env);
        else
            on_seed_relay(s, env);
        break;
    case S_SHARE:
        on_relay(s, env);
        break;
    case S_COMPLAIN:
    case S_OPEN:
        on_complaint_relay(s, env);
        break;
    case S_MASKED:
        on_unmask_request(s, env);
        break;
    case S_CONSIST:
        on_consistency_relay(s, env);
        break;
    default:
        break;
    }
}

static void aio_cb(void *arg)
{
    fedreci_session *s = arg;
    int rv = nng_aio_result(s->aio);
    if (wd_abandoned(s)) {
        if ((s->io == IO_RECV && rv == 0) || (s->io == IO_SEND && rv != 0)) {
            nng_msg *m = nng_aio_get_msg(s->aio);
            if (m)
                nng_msg_free(m);
        }
        finish(s, FEDRECI_SESSION_ERROR, FEDREC_ERR_TIMEOUT, NULL);
        return;
    }
    switch (s->io) {
    case IO_SEND:
        if (rv != 0) {
            nng_msg *m = nng_aio_get_msg(s->aio);
            if (m)
                nng_msg_free(m);
            finish(s, FEDRECI_SESSION_ERROR,
                   rv == NNG_ETIMEDOUT ? FEDREC_ERR_TIMEOUT : FEDREC_ERR_TRANSPORT,
                   "sending the %s: %s", step_what(s->step), nng_strerror(rv));
            return;
        }
        s->io = IO_RECV;
        io_begin(s, s->cfg.timeout_ms);
        nng_aio_set_timeout(s->aio, (nng_duration)s->cfg.timeout_ms);
        nng_ctx_recv(s->ctx, s->aio);
        return;
    case IO_RECV: {
        if (rv != 0) {
            finish(s, FEDRECI_SESSION_ERROR,
                   rv == NNG_ETIMEDOUT ? FEDREC_ERR_TIMEOUT : FEDREC_ERR_TRANSPORT,
                   "waiting for the reply to the %s: %s", step_what(s->step), nng_strerror(rv));
            return;
        }
        nng_msg *m = nng_aio_get_msg(s->aio);
        if (!m) {
            /* nng 1.5 can complete a REQ receive with success and no
               message when the connection dies under a timed receive
               (nanomsg/nng#1620): a transport failure, not a reply */
            finish(s, FEDRECI_SESSION_ERROR, FEDREC_ERR_TRANSPORT,
                   "waiting for the reply to the %s: the connection returned no message",
                   step_what(s->step));
            return;
        }
        s->res.bytes_received += nng_msg_len(m);
        fedreci_wire_env *env = NULL;
        fedrec_err e = fedreci_wire_decode_msg(m, s->cfg.recv_max_bytes, &env);
        nng_msg_free(m);
        if (e && s->step >= S_ADV && s->step < S_DONE)
            /* a roster with repeated or unsorted ids does not decode */
            s->res.refusal = s->step == S_ADV ? FEDRECI_REFUSE_ROSTER : FEDRECI_REFUSE_MALFORMED;
        if (e) {
            fail_local(s, e, "decoding the reply");
            return;
        }
        on_reply(s, env);
        fedreci_wire_free(env);
        return;
    }
    case IO_SLEEP:
        if (rv != 0 && rv != NNG_ETIMEDOUT) {
            finish(s, FEDRECI_SESSION_ERROR, FEDREC_ERR_CLOSED, "cancelled: %s", nng_strerror(rv));
            return;
        }
        send_step(s);
        return;
    default:
        return;
    }
}

/* ---- lifecycle -------------------------------------------------------------------------- */

/* A REQ socket dialing url (tls+: verified against ca_file, and against
 * server_name when set; without one nng checks no name). */
static fedrec_err dial(nng_socket *sock, const char *url, size_t recv_max, const char *ca_file,
                       const char *server_name)
{
    int rv;
    if ((rv = nng_req0_open(sock)) != 0)
        return fedreci_error(FEDREC_ERR_TRANSPORT, "session: REQ socket: %s", nng_strerror(rv));
    nng_socket_set_size(*sock, NNG_OPT_RECVMAXSZ, recv_max);
    nng_dialer d;
    if ((rv = nng_dialer_create(&d, *sock, url)) != 0) {
        nng_close(*sock);
        return fedreci_error(FEDREC_ERR_TRANSPORT, "session: dial %s: %s", url, nng_strerror(rv));
    }
    if (strncmp(url, "tls+", 4) == 0) {
        nng_tls_config *tc = NULL;
        if ((rv = nng_tls_config_alloc(&tc, NNG_TLS_MODE_CLIENT)) == 0) {
            if (ca_file) {
                rv = nng_tls_config_ca_file(tc, ca_file);
                if (!rv)
                    rv = nng_tls_config_auth_mode(tc, NNG_TLS_AUTH_MODE_REQUIRED);
            }
            if (!rv && server_name)
                rv = nng_tls_config_server_name(tc, server_name);
            if (!rv)
                rv = nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, tc);
            nng_tls_config_free(tc);
        }
        if (rv != 0) {
            nng_close(*sock);
            return fedreci_error(FEDREC_ERR_TRANSPORT, "session: TLS for %s: %s", url,
                                 nng_strerror(rv));
        }
    }
    if ((rv = nng_dialer_start(d, NNG_FLAG_NONBLOCK)) != 0) {
        nng_close(*sock);
        return fedreci_error(FEDREC_ERR_TRANSPORT, "session: dial %s: %s", url, nng_strerror(rv));
    }
    return FEDREC_OK;
}

/* A context on s->sock that never resends on its own (resends are ours,
 * after RetryAfter). NNG_DURATION_INFINITE, not merely a long resend time:
 * with it nng schedules no resend timer at all (nng's req0), while a finite
 * one puts every pending request in nng's single timer list, sorted by
 * deadline and inserted by walking it from the earliest: with 4,000
 * simulated clients waiting in one process each request walked them all
 * (16% of the demo's CPU time). */
static fedrec_err open_ctx(fedreci_session *s)
{
    int rv;
    if ((rv = nng_ctx_open(&s->ctx, s->sock)) != 0)
        return fedreci_error(FEDREC_ERR_TRANSPORT, "session: context: %s", nng_strerror(rv));
    s->ctx_open = 1;
    nng_ctx_set_ms(s->ctx, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
    return FEDREC_OK;
}

static fedrec_err open_transport(fedreci_session *s, const fedreci_session_config *cfg)
{
    int rv;
    fedrec_err e;
    if (cfg->socket) {
        s->sock = *cfg->socket;
    } else {
        if ((e = dial(&s->sock, cfg->url, s->cfg.recv_max_bytes, cfg->tls_ca_file,
                      cfg->tls_server_name)))
            return e;
        s->own_sock = 1;
    }
    s->check_names = cfg->tls_server_name != NULL;
    if (cfg->tls_ca_file && !(s->ca_file = strdup(cfg->tls_ca_file)))
        return fedreci_error(FEDREC_ERR_NOMEM, "session: CA file name");
    if ((e = open_ctx(s)))
        return e;
    if ((rv = nng_aio_alloc(&s->aio, aio_cb, s)) != 0)
        return fedreci_error(FEDREC_ERR_NOMEM, "session: aio: %s", nng_strerror(rv));
    return FEDREC_OK;
}

/* SecAgg groups (issue 20): the round runs at the aggregator at url. The
 * rest of the round goes over a new socket dialing it; the socket and
 * context to the coordinator stay open, unused, until destroy (closing them
 * from inside their own callback could wait on it). */
static fedrec_err switch_to_aggregator(fedreci_session *s, const char *url)
{
    nng_socket ns;
    /* a session that checks the coordinator's name checks its aggregator's
       too: the host of the URL the master gave */
    nng_url *u = NULL;
    if (s->check_names && strncmp(url, "tls+", 4) == 0 && nng_url_parse(&u, url) != 0)
        return fedreci_error(FEDREC_ERR_PROTOCOL, "session: aggregator URL '%s' does not parse",
                             url);
    fedrec_err e = dial(&ns, url, s->cfg.recv_max_bytes, s->ca_file, u ? u->u_hostname : NULL);
    if (u)
        nng_url_free(u);
    if (e)
        return e;
    s->old_ctx = s->ctx;
    s->old_ctx_open = s->ctx_open;
    s->old_sock = s->sock;
    s->old_own_sock = s->own_sock;
    s->ctx_open = 0;
    s->sock = ns;
    s->own_sock = 1;
    return open_ctx(s);
}

fedrec_err fedreci_session_create(fedreci_session **out, const fedreci_session_config *cfg,
                                  const fedreci_session_hooks *hooks)
{
    if (!out || !cfg || !cfg->identity_sk || (!cfg->url && !cfg->socket))
        return fedreci_error(FEDREC_ERR_INVALID,
                             "session: config needs identity_sk and a url or a socket");
    if (cfg->dropout_stage < -1 || cfg->dropout_stage > 4)
        return fedreci_error(FEDREC_ERR_INVALID, "session: dropout_stage %d (-1..4)",
                             cfg->dropout_stage);
    if (cfg->attestation_len > FEDRECI_WIRE_ATTEST_MAX ||
        (cfg->attestation_len && !cfg->attestation))
        return fedreci_error(FEDREC_ERR_INVALID,
                             "session: attestation token of %zu bytes (at most %d)",
                             cfg->attestation_len, FEDRECI_WIRE_ATTEST_MAX);
    fedreci_session *s = calloc(1, sizeof *s);
    if (!s)
        return fedreci_error(FEDREC_ERR_NOMEM, "session");
    s->cfg = *cfg;
    if (!s->cfg.timeout_ms)
        s->cfg.timeout_ms = 120000;
    if (!s->cfg.recv_max_bytes)
        s->cfg.recv_max_bytes = 64u << 20;
    if (!s->cfg.max_retries)
        s->cfg.max_retries = 1000;
    s->cfg.url = NULL; /* not kept */
    s->cfg.socket = NULL;
    s->cfg.tls_ca_file = NULL;
    s->cfg.tls_server_name = NULL;
    s->cfg.identity_sk = NULL;
    s->cfg.rounding_seed = NULL;
    s->cfg.attestation = NULL;
    if (hooks)
        s->hooks = *hooks;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->res.model_version = cfg->model_version;
    if (fedreci_secagg_sodium_ready() == FEDREC_OK)
        s->sk = fedreci_secmem_alloc(FEDRECI_SECAGG_SIGN_SK_BYTES + 32);
    if (!s->sk) {
        fedreci_session_destroy(s);
        return fedreci_error(FEDREC_ERR_NOMEM, "session: secure memory");
    }
    memcpy(s->sk, cfg->identity_sk, FEDRECI_SECAGG_SIGN_SK_BYTES);
    crypto_sign_ed25519_sk_to_pk(s->pk, s->sk);
    if (fedreci_secagg_id_from_pk(s->pk) != cfg->client_id) {
        fedrec_err ie = fedreci_error(FEDREC_ERR_INVALID,
                                      "session: client id %016llx is not the id of its identity "
                                      "key (%016llx): ids are BLAKE2b(identity key)",
                                      (unsigned long long)cfg->client_id,
                                      (unsigned long long)fedreci_secagg_id_from_pk(s->pk));
        fedreci_session_destroy(s);
        return ie;
    }
    if (cfg->rounding_seed) {
        memcpy(s->seed, cfg->rounding_seed, sizeof s->seed);
        s->has_seed = 1;
    }
    if (cfg->model_checksum && cfg->model_version) {
        memcpy(s->checksum, cfg->model_checksum, sizeof s->checksum);
        s->has_checksum = 1;
    }
    s->cfg.model_checksum = NULL; /* not kept */

    if (cfg->attestation_len) {
        if (!(s->att = malloc(cfg->attestation_len))) {
            fedreci_session_destroy(s);
            return fedreci_error(FEDREC_ERR_NOMEM, "session: attestation token");
        }
        memcpy(s->att, cfg->attestation, cfg->attestation_len);
    }
    fedrec_err e = open_transport(s, cfg);
    if (e) {
        fedreci_session_destroy(s);
        return e;
    }
    *out = s;
    return FEDREC_OK;
}

fedrec_err fedreci_session_start(fedreci_session *s)
{
    if (s->started)
        return fedreci_error(FEDREC_ERR_INVALID, "session: already started");
    s->started = 1;
    s->step = S_CHECKIN;
    fedrec_err e = wd_watch(s);
    if (e)
        return e;
    send_step(s);
    return FEDREC_OK;
}

fedrec_err fedreci_session_wait(fedreci_session *s, int timeout_ms, fedreci_session_result *r)
{
    fedrec_err e = FEDREC_OK;
    struct timespec ts;
    if (timeout_ms >= 0)
        fedreci_deadline_after_ms(&ts, timeout_ms);
    pthread_mutex_lock(&s->mu);
    while (!s->done) {
        if (timeout_ms < 0) {
            pthread_cond_wait(&s->cv, &s->mu);
        } else if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) == ETIMEDOUT && !s->done) {
            e = fedreci_error(FEDREC_ERR_TIMEOUT, "session: not done after %d ms", timeout_ms);
            break;
        }
    }
    int abandoned = s->abandoned;
    pthread_mutex_unlock(&s->mu);
    if (!e && r)
        *r = abandoned ? s->wd_res : s->res;
    return e;
}

void fedreci_session_destroy(fedreci_session *s)
{
    if (!s)
        return;
    wd_unwatch(s);
    if (s->abandoned) {
        /* nng did not hand the operation back: closing its sockets first
           aborts whatever it still holds, then the aio is stopped */
        if (s->ctx_open)
            nng_ctx_close(s->ctx);
        if (s->old_ctx_open)
            nng_ctx_close(s->old_ctx);
        s->ctx_open = s->old_ctx_open = 0;
    }
    if (s->aio)
        nng_aio_stop(s->aio);
    if (s->ctx_open)
        nng_ctx_close(s->ctx);
    if (s->own_sock)
        nng_close(s->sock);
    if (s->old_ctx_open)
        nng_ctx_close(s->old_ctx);
    if (s->old_own_sock)
        nng_close(s->old_sock);
    if (s->aio)
        nng_aio_free(s->aio);
    free(s->ca_file);
    free(s->want);
    fedreci_secagg_client_destroy(s->sa);
    free(s->ids);
    fedreci_secmem_free(s->sk);
    sodium_memzero(s->seed, sizeof s->seed);
    free(s->att);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

fedrec_err fedreci_session_run(const fedreci_session_config *cfg,
                               const fedreci_session_hooks *hooks, fedreci_session_result *r)
{
    fedreci_session *s = NULL;
    fedrec_err e = fedreci_session_create(&s, cfg, hooks);
    if (e)
        return e;
    if (!(e = fedreci_session_start(s)))
        e = fedreci_session_wait(s, -1, r);
    fedreci_session_destroy(s);
    return e;
}
