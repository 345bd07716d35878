/* coordinator/aggregator: the aggregator process's link loop (see
 * aggregator.h). */
#include "coordinator/aggregator.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/tls/tls.h>
#include <sodium.h>

#include "coordinator/link.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"

enum { G_IDLE = 0, G_RUNNING, G_SUM, G_FAILED };

struct fedreci_aggregator {
    fedreci_aggregator_config cfg; /* pointers below are our copies */
    char *master_url, *ca_file, *public_url, *cert, *key;
    char **listen;
    uint8_t *sk; /* sodium_malloc, 64 */
    uint8_t pk[32], master_pk[32];

    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thr;
    int started, stop;

    nng_socket sock;
    int sock_open;
    nng_aio *aio;

    fedreci_coord *eng;
    pthread_mutex_t eng_mu; /* guards eng for status readers (never taken by hooks) */
    uint32_t n_items, k;
    uint64_t model_version;
    uint64_t seq;

    /* the open group (hooks write, the loop reads; under mu) */
    int gstate;
    uint64_t g_round;
    uint32_t *sum; /* d words */
    uint32_t d;
    fedreci_link_result res;
    char reason[200];
    uint64_t *withheld; /* a group that aborted for a withheld step: who withheld (sorted) */
    size_t n_withheld;
    int withheld_step; /* which step: FEDRECI_LINK_WITHHELD_* */

    fedreci_aggregator_status st;
};

void fedreci_aggregator_config_default(fedreci_aggregator_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->max_group = 1000;
    cfg->link_timeout_ms = 600000;
    cfg->retry_after_ms = 50;
}

static char *dup_or_null(const char *s, int *fail)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *fail = 1;
    return d;
}

fedrec_err fedreci_aggregator_create(fedreci_aggregator **out, const fedreci_aggregator_config *cfg)
{
    if (!out || !cfg || !cfg->master_url || !cfg->listen_urls || cfg->n_listen == 0 ||
        !cfg->identity_sk || !cfg->master_pk)
        return fedreci_error(FEDREC_ERR_INVALID, "aggregator: needs a master URL, a listen URL, "
                                                 "an identity key and the master's key");
    if (cfg->max_group < 2)
        return fedreci_error(FEDREC_ERR_INVALID, "aggregator: max_group %u, at least 2",
                             cfg->max_group);
    const char *pub = cfg->public_url ? cfg->public_url : cfg->listen_urls[0];
    if (strlen(pub) > FEDRECI_LINK_MAX_URL)
        return fedreci_error(FEDREC_ERR_INVALID, "aggregator: public URL over %u bytes",
                             FEDRECI_LINK_MAX_URL);
    size_t pl = strlen(pub);
    if (pl >= 2 && strcmp(pub + pl - 2, ":0") == 0)
        return fedreci_error(FEDREC_ERR_INVALID,
                             "aggregator: members would be told '%s' (port 0: the port is chosen "
                             "only when the first group starts); set a fixed port",
                             pub);
    fedreci_aggregator *a = calloc(1, sizeof *a);
    if (!a)
        return fedreci_error(FEDREC_ERR_NOMEM, "aggregator");
    a->cfg = *cfg;
    if (!a->cfg.link_timeout_ms)
        a->cfg.link_timeout_ms = 600000;
    if (!a->cfg.retry_after_ms)
        a->cfg.retry_after_ms = 50;
    pthread_mutex_init(&a->mu, NULL);
    pthread_mutex_init(&a->eng_mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    int fail = 0;
    a->master_url = dup_or_null(cfg->master_url, &fail);
    a->ca_file = dup_or_null(cfg->master_tls_ca_file, &fail);
    a->public_url = dup_or_null(pub, &fail);
    a->cert = dup_or_null(cfg->tls_cert_file, &fail);
    a->key = dup_or_null(cfg->tls_key_file, &fail);
    a->listen = calloc(cfg->n_listen, sizeof *a->listen);
    for (size_t i = 0; a->listen && i < cfg->n_listen; i++)
        a->listen[i] = dup_or_null(cfg->listen_urls[i], &fail);
    a->sk = sodium_malloc(64);
    if (fail || !a->listen || !a->sk) {
        fedreci_aggregator_destroy(a);
        return fedreci_error(FEDREC_ERR_NOMEM, "aggregator");
    }
    memcpy(a->sk, cfg->identity_sk, 64);
    crypto_sign_ed25519_sk_to_pk(a->pk, a->sk);
    memcpy(a->master_pk, cfg->master_pk, 32);
    a->cfg.master_pk = NULL;
    a->cfg.identity_sk = NULL;
    /* sequence numbers start at the wall clock in microseconds, so they
       keep rising across restarts (the master refuses a number it has
       seen) */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    a->seq = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
    *out = a;
    return FEDREC_OK;
}

/* ---- engine hooks (engine lock held: copy and signal only) ----------------- */

static void hook_group_sum(void *arg, const fedreci_round_stats *st)
{
    fedreci_aggregator *a = arg;
    pthread_mutex_lock(&a->mu);
    if (a->gstate == G_RUNNING && st->round_id == a->g_round && st->sum && st->params &&
        st->params->d == a->d) {
        memcpy(a->sum, st->sum, (size_t)a->d * sizeof *a->sum);
        a->res.completed = 1;
        a->res.survivors = st->survivors;
        a->res.advertised = st->advertised;
        a->res.shared = st->shared;
        a->res.unmasked = st->unmasked;
        for (int s = 0; s < 4; s++) {
            a->res.dropped[s] = st->dropped[s];
            a->res.stage_ms[s] = st->stage_ms[s] > 0 ? (uint32_t)(st->stage_ms[s] + 0.5) : 0;
        }
        a->res.bytes_in = st->bytes_in;
        a->res.bytes_out = st->bytes_out;
        a->gstate = G_SUM;
        pthread_cond_broadcast(&a->cv);
    }
    pthread_mutex_unlock(&a->mu);
}

static void hook_round_done(void *arg, const fedreci_round_stats *st)
{
    fedreci_aggregator *a = arg;
    pthread_mutex_lock(&a->mu);
    if (a->gstate == G_RUNNING && st->round_id == a->g_round && !st->completed) {
        a->res.completed = 0;
        a->res.survivors = st->survivors;
        a->res.advertised = st->advertised;
        a->res.shared = st->shared;
        a->res.unmasked = st->unmasked;
        for (int s = 0; s < 4; s++)
            a->res.dropped[s] = st->dropped[s];
        snprintf(a->reason, sizeof a->reason, "%s", st->abort_reason ? st->abort_reason : "");
        /* the master benches them (it holds the registry and the check-ins);
           out of memory: they are not named, nothing else changes */
        free(a->withheld);
        a->n_withheld = 0;
        a->withheld = st->n_withheld ? malloc(st->n_withheld * sizeof *a->withheld) : NULL;
        if (a->withheld) {
            memcpy(a->withheld, st->withheld_ids, st->n_withheld * sizeof *a->withheld);
            a->n_withheld = st->n_withheld;
        }
        /* the engine's withheld_step: 0 seed, 1 consistency, 2 unmask */
        a->withheld_step = st->withheld_step == 2   ? FEDRECI_LINK_WITHHELD_UNMASK
                           : st->withheld_step == 1 ? FEDRECI_LINK_WITHHELD_CONSISTENCY
                                                    : FEDRECI_LINK_WITHHELD_SEED;
        a->gstate = G_FAILED;
        pthread_cond_broadcast(&a->cv);
    }
    pthread_mutex_unlock(&a->mu);
}

/* ---- the link ---------------------------------------------------------------- */

static fedrec_err open_link(fedreci_aggregator *a)
{
    int rv;
    if ((rv = nng_req0_open(&a->sock)) != 0)
        return fedreci_error(FEDREC_ERR_TRANSPORT, "aggregator: REQ socket: %s", nng_strerror(rv));
    a->sock_open = 1;
    nng_socket_set_size(a->sock, NNG_OPT_RECVMAXSZ, (size_t)1 << 30);
    nng_socket_set_ms(a->sock, NNG_OPT_REQ_RESENDTIME, (nng_duration)0x7fffffff);
    nng_dialer d;
    if ((rv = nng_dialer_create(&d, a->sock, a->master_url)) != 0)
        return fedreci_error(FEDREC_ERR_TRANSPORT, "aggregator: dial %s: %s", a->master_url,
                             nng_strerror(rv));
    if (strncmp(a->master_url, "tls+", 4) == 0) {
        /* the master's certificate must chain to master-ca and carry the
           URL's host name (nng checks a name only when one is set) */
        nng_tls_config *tc = NULL;
        nng_url *u = NULL;
        if ((rv = nng_url_parse(&u, a->master_url)) == 0 &&
            (rv = nng_tls_config_alloc(&tc, NNG_TLS_MODE_CLIENT)) == 0) {
            if (a->ca_file) {
                rv = nng_tls_config_ca_file(tc, a->ca_file);
                if (!rv)
                    rv = nng_tls_config_auth_mode(tc, NNG_TLS_AUTH_MODE_REQUIRED);
            }
            if (!rv)
                rv = nng_tls_config_server_name(tc, u->u_hostname);
            if (!rv)
                rv = nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, tc);
            nng_tls_config_free(tc);
        }
        if (u)
            nng_url_free(u);
        if (rv)
            return fedreci_error(FEDREC_ERR_TRANSPORT, "aggregator: TLS for %s: %s", a->master_url,
                                 nng_strerror(rv));
    }
    if ((rv = nng_dialer_start(d, NNG_FLAG_NONBLOCK)) != 0)
        return fedreci_error(FEDREC_ERR_TRANSPORT, "aggregator: dial %s: %s", a->master_url,
                             nng_strerror(rv));
    if ((rv = nng_aio_alloc(&a->aio, NULL, NULL)) != 0)
        return fedreci_error(FEDREC_ERR_NOMEM, "aggregator: aio");
    return FEDREC_OK;
}

/* Sends m (request seq) and waits for the reply, decoded into *rep once
 * its signature verifies with the master's key for this request. A reply
 * that does not is refused: logged, counted, nothing in it used. */
static fedrec_err exchange(fedreci_aggregator *a, nng_msg *m, uint64_t seq, fedreci_link_reply *rep)
{
    nng_aio_set_msg(a->aio, m);
    nng_aio_set_timeout(a->aio, (nng_duration)a->cfg.link_timeout_ms);
    nng_send_aio(a->sock, a->aio);
    nng_aio_wait(a->aio);
    int rv = nng_aio_result(a->aio);
    if (rv != 0) {
        nng_msg_free(m);
        return fedreci_error(FEDREC_ERR_TRANSPORT, "aggregator: send to master: %s",
                             nng_strerror(rv));
    }
    nng_aio_set_timeout(a->aio, (nng_duration)a->cfg.link_timeout_ms);
    nng_recv_aio(a->sock, a->aio);
    nng_aio_wait(a->aio);
    rv = nng_aio_result(a->aio);
    if (rv != 0)
        return fedreci_error(FEDREC_ERR_TRANSPORT, "aggregator: master reply: %s",
                             nng_strerror(rv));
    nng_msg *r = nng_aio_get_msg(a->aio);
    if (!r) /* success without a message (nanomsg/nng#1620) */
        return fedreci_error(FEDREC_ERR_TRANSPORT, "aggregator: master reply: no message");
    fedrec_err e = fedreci_link_dec_reply(nng_msg_body(r), nng_msg_len(r), (size_t)1 << 30,
                                          a->master_pk, a->pk, seq, rep);
    nng_msg_free(r);
    pthread_mutex_lock(&a->mu);
    a->st.connected = e == FEDREC_OK;
    if (e == FEDREC_ERR_SIGNATURE || e == FEDREC_ERR_FORMAT || e == FEDREC_ERR_TOO_BIG)
        a->st.replies_refused++;
    pthread_mutex_unlock(&a->mu);
    if (e == FEDREC_ERR_SIGNATURE || e == FEDREC_ERR_FORMAT || e == FEDREC_ERR_TOO_BIG)
        fedreci_log(FEDRECI_LOG_WARN, -1, "aggregator: refused a reply on the master link: %s",
                    fedrec_errmsg());
    return e;
}

/* The engine for the model in as (created or re-created when the shape
 * changed; the published version updated). */
static fedrec_err ensure_engine(fedreci_aggregator *a, const fedreci_link_assign *as)
{
    size_t nw = (size_t)as->n_items * as->k;
    float *y = malloc((nw ? nw : 1) * sizeof *y);
    if (!y)
        return fedreci_error(FEDREC_ERR_NOMEM, "aggregator: model of %zu floats", nw);
    for (size_t i = 0; i < nw; i++) {
        const uint8_t *b = as->factors + 4 * i;
        uint32_t w =
            (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
        memcpy(&y[i], &w, 4);
    }
    fedrec_err e = FEDREC_OK;
    if (a->eng && (a->n_items != as->n_items || a->k != as->k)) {
        pthread_mutex_lock(&a->eng_mu);
        fedreci_coord_destroy(a->eng);
        a->eng = NULL;
        pthread_mutex_unlock(&a->eng_mu);
    }
    if (!a->eng) {
        fedreci_coord_config cc;
        fedreci_coord_config_default(&cc);
        cc.role = FEDRECI_ROLE_AGGREGATOR;
        cc.listen_urls = (const char *const *)a->listen;
        cc.n_listen = a->cfg.n_listen;
        cc.tls_cert_file = a->cert;
        cc.tls_key_file = a->key;
        cc.cohort_size = a->cfg.max_group;
        cc.checkin_quorum = a->cfg.max_group;
        cc.n_contexts = a->cfg.max_group + a->cfg.max_group / 8 + 64;
        cc.retry_after_ms = a->cfg.retry_after_ms;
        cc.max_connections = a->cfg.max_connections;
        cc.max_conns_per_addr = a->cfg.max_conns_per_addr;
        cc.max_clients = 4 * a->cfg.max_group > 1024 ? 4 * a->cfg.max_group : 1024;
        cc.scale = 1; /* unused: every group brings its parameters */
        fedreci_coord_hooks h = {
            .arg = a, .on_round_done = hook_round_done, .on_group_sum = hook_group_sum};
        fedreci_coord_model m = {.version = as->model_version,
                                 .n_items = as->n_items,
                                 .k = as->k,
                                 .item_factors = y,
                                 .item_codes = as->n_codes ? as->codes : NULL,
                                 .retired_rows = as->retired,
                                 .n_retired = as->n_retired};
        fedreci_coord *eng = NULL;
        e = fedreci_coord_create(&eng, &cc, &h, &m);
        if (!e && (e = fedreci_coord_start(eng))) {
            fedreci_coord_destroy(eng);
            eng = NULL;
        }
        pthread_mutex_lock(&a->eng_mu);
        a->eng = eng;
        pthread_mutex_unlock(&a->eng_mu);
        if (!e) {
            a->n_items = as->n_items;
            a->k = as->k;
        }
    } else {
        e = fedreci_coord_publish_version(a->eng, as->model_version, y);
    }
    free(y);
    if (!e) {
        pthread_mutex_lock(&a->mu);
        a->model_version = as->model_version;
        a->st.model_version = as->model_version;
        pthread_mutex_unlock(&a->mu);
    }
    return e;
}

/* Runs the assigned group to its sum (or failure); the result to send is
 * left in a->res. */
static void run_group(fedreci_aggregator *a, const fedreci_link_assign *as,
                      const uint8_t coord_sk[32])
{
    fedrec_err e = FEDREC_OK;
    pthread_mutex_lock(&a->mu);
    a->st.groups_run++;
    a->st.last_round = as->round_id;
    a->st.last_members = as->p.n;
    a->st.last_survivors = 0;
    memset(&a->res, 0, sizeof a->res);
    a->res.round_id = as->round_id;
    a->res.group = as->group;
    a->reason[0] = 0;
    free(a->withheld);
    a->withheld = NULL;
    a->n_withheld = 0;
    a->gstate = G_RUNNING;
    a->g_round = as->round_id;
    if (a->d != as->p.d) {
        free(a->sum);
        a->sum = malloc((size_t)as->p.d * sizeof *a->sum);
        a->d = a->sum ? as->p.d : 0;
        if (!a->sum)
            e = fedreci_error(FEDREC_ERR_NOMEM, "aggregator: sum of %u words", as->p.d);
    }
    pthread_mutex_unlock(&a->mu);
    if (!e && as->has_model)
        e = ensure_engine(a, as);
    else if (!e && (!a->eng || a->model_version != as->model_version))
        e = fedreci_error(FEDREC_ERR_PROTOCOL,
                          "aggregator: the master sent no model and v%llu is not held",
                          (unsigned long long)as->model_version);
    if (!e) {
        fedreci_coord_group g;
        memset(&g, 0, sizeof g);
        g.p = as->p;
        g.ids = as->ids;
        g.pks = (const uint8_t(*)[32])as->pks;
        g.model_version = as->model_version;
        memcpy(g.stage_ms, as->stage_ms, sizeof g.stage_ms);
        g.coord_sk = coord_sk;
        e = fedreci_coord_run_group(a->eng, &g);
    }
    pthread_mutex_lock(&a->mu);
    if (e) {
        a->gstate = G_FAILED;
        snprintf(a->reason, sizeof a->reason, "aggregator: %s", fedrec_errmsg());
    }
    while (a->gstate == G_RUNNING && !a->stop)
        pthread_cond_wait(&a->cv, &a->mu);
    if (a->gstate == G_RUNNING) { /* stopping */
        a->gstate = G_FAILED;
        snprintf(a->reason, sizeof a->reason, "aggregator stopping");
    }
    a->res.reason = a->reason;
    a->res.sum = a->gstate == G_SUM ? a->sum : NULL;
    a->res.d = a->d;
    memset(a->res.withheld, 0, sizeof a->res.withheld);
    memset(a->res.n_withheld, 0, sizeof a->res.n_withheld);
    if (a->gstate != G_SUM && a->n_withheld) { /* under the step that aborted the group */
        a->res.withheld[a->withheld_step] = a->withheld;
        a->res.n_withheld[a->withheld_step] = a->n_withheld;
    }
    a->st.last_survivors = a->res.survivors;
    a->st.groups_completed += a->gstate == G_SUM;
    pthread_mutex_unlock(&a->mu);
}

static int stopping(fedreci_aggregator *a)
{
    pthread_mutex_lock(&a->mu);
    int s = a->stop;
    pthread_mutex_unlock(&a->mu);
    return s;
}

/* Sends the group's result; returns the verdict to pass to the engine. */
static void report(fedreci_aggregator *a, uint64_t round_id)
{
    nng_msg *m = NULL;
    int completed = 0;
    uint64_t version = 0;
    char why[200] = "master unreachable";
    fedreci_link_reply rep;
    fedrec_err e = FEDREC_OK;
    /* a refused reply is no verdict: the result is sent again (the master
       answers a repeated result with the round's verdict) */
    for (int attempt = 0; attempt < 3; attempt++) {
        uint64_t seq = ++a->seq;
        e = fedreci_link_enc_result(&m, a->sk, seq, &a->res);
        if (!e)
            e = exchange(a, m, seq, &rep);
        if ((e != FEDREC_ERR_SIGNATURE && e != FEDREC_ERR_FORMAT) || stopping(a))
            break;
    }
    if (!e) {
        const Fedrec__Groups__V1__AggReply *r = rep.msg;
        if (r->body_case == FEDREC__GROUPS__V1__AGG_REPLY__BODY_VERDICT) {
            completed = r->verdict->completed && r->verdict->counted;
            version = r->verdict->model_version;
            snprintf(why, sizeof why, "%s",
                     r->verdict->reason && r->verdict->reason[0]
                         ? r->verdict->reason
                         : (r->verdict->completed ? "this group was not counted" : "aborted"));
        } else if (r->body_case == FEDREC__GROUPS__V1__AGG_REPLY__BODY_ERROR) {
            snprintf(why, sizeof why, "master refused the result: %s",
                     r->error->text ? r->error->text : "");
        }
        fedreci_link_reply_free(&rep);
    } else if (e == FEDREC_ERR_SIGNATURE || e == FEDREC_ERR_FORMAT) {
        snprintf(why, sizeof why, "no verdict signed by the master: %s", fedrec_errmsg());
    } else {
        snprintf(why, sizeof why, "master unreachable: %s", fedrec_errmsg());
    }
    fedreci_log(completed ? FEDRECI_LOG_INFO : FEDRECI_LOG_WARN, (int64_t)round_id, "group %s (%s)",
                completed ? "counted" : "not counted", completed ? "" : why);
    pthread_mutex_lock(&a->mu);
    a->st.groups_counted += completed != 0;
    a->st.groups_failed += completed == 0;
    a->gstate = G_IDLE;
    pthread_mutex_unlock(&a->mu);
    if (a->eng)
        fedreci_coord_group_verdict(a->eng, round_id, completed, version, why);
}

static void pause_ms(fedreci_aggregator *a, int ms)
{
    struct timespec ts;
    fedreci_deadline_after_ms(&ts, ms);
    pthread_mutex_lock(&a->mu);
    if (!a->stop)
        pthread_cond_timedwait(&a->cv, &a->mu, &ts);
    pthread_mutex_unlock(&a->mu);
}

static void *link_loop(void *arg)
{
    fedreci_aggregator *a = arg;
    uint8_t coord_sk[32], coord_pk[32];
    randombytes_buf(coord_sk, sizeof coord_sk);
    crypto_scalarmult_base(coord_pk, coord_sk);
    while (!stopping(a)) {
        nng_msg *m = NULL;
        fedreci_link_reply rep;
        uint64_t seq = ++a->seq;
        fedrec_err e = fedreci_link_enc_poll(&m, a->sk, seq, a->public_url, coord_pk,
                                             a->model_version, a->cfg.max_group);
        if (!e)
            e = exchange(a, m, seq, &rep);
        if (e) {
            fedreci_log(FEDRECI_LOG_DEBUG, -1, "aggregator: %s", fedrec_errmsg());
            pause_ms(a, 500);
            continue;
        }
        switch (rep.msg->body_case) {
        case FEDREC__GROUPS__V1__AGG_REPLY__BODY_ASSIGN: {
            uint64_t rid = rep.assign.round_id;
            fedreci_log(FEDRECI_LOG_INFO, (int64_t)rid, "group %u of %u assigned: %u members",
                        rep.assign.group, rep.assign.n_groups, rep.assign.p.n);
            run_group(a, &rep.assign, coord_sk);
            fedreci_link_reply_free(&rep);
            /* the key is used: the next poll announces a fresh one */
            randombytes_buf(coord_sk, sizeof coord_sk);
            crypto_scalarmult_base(coord_pk, coord_sk);
            report(a, rid);
            break;
        }
        case FEDREC__GROUPS__V1__AGG_REPLY__BODY_ERROR:
            fedreci_log(FEDRECI_LOG_WARN, -1, "aggregator: the master refused: %s",
                        rep.msg->error->text ? rep.msg->error->text : "");
            fedreci_link_reply_free(&rep);
            pause_ms(a, 1000);
            break;
        default: /* Idle, or a stale verdict: poll again */
            fedreci_link_reply_free(&rep);
            break;
        }
    }
    sodium_memzero(coord_sk, sizeof coord_sk);
    return NULL;
}

fedrec_err fedreci_aggregator_start(fedreci_aggregator *a)
{
    if (a->started)
        return fedreci_error(FEDREC_ERR_INVALID, "aggregator: already started");
    fedrec_err e = open_link(a);
    if (e)
        return e;
    if (pthread_create(&a->thr, NULL, link_loop, a) != 0)
        return fedreci_error(FEDREC_ERR_NOMEM, "aggregator: thread");
    a->started = 1;
    fedreci_log(FEDRECI_LOG_INFO, -1, "aggregator: master %s, clients told %s, groups up to %u",
                a->master_url, a->public_url, a->cfg.max_group);
    return FEDREC_OK;
}

void fedreci_aggregator_stop(fedreci_aggregator *a)
{
    if (!a)
        return;
    pthread_mutex_lock(&a->mu);
    a->stop = 1;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
    /* closing the link socket ends the exchange in flight and every later
       one (NNG_ECLOSED); the loop then sees stop */
    if (a->sock_open) {
        nng_close(a->sock);
        a->sock_open = 0;
    }
    if (a->started) {
        pthread_join(a->thr, NULL);
        a->started = 0;
    }
}

void fedreci_aggregator_destroy(fedreci_aggregator *a)
{
    if (!a)
        return;
    fedreci_aggregator_stop(a);
    fedreci_coord_destroy(a->eng);
    if (a->sock_open)
        nng_close(a->sock);
    if (a->aio)
        nng_aio_free(a->aio);
    free(a->master_url);
    free(a->ca_file);
    free(a->public_url);
    free(a->cert);
    free(a->key);
    if (a->listen)
        for (size_t i = 0; i < a->cfg.n_listen; i++)
            free(a->listen[i]);
    free(a->listen);
    if (a->sk)
        sodium_free(a->sk);
    free(a->sum);
    free(a->withheld);
    pthread_cond_destroy(&a->cv);
    pthread_mutex_destroy(&a->eng_mu);
    pthread_mutex_destroy(&a->mu);
    free(a);
}

void fedreci_aggregator_get_status(fedreci_aggregator *a, fedreci_aggregator_status *st)
{
    pthread_mutex_lock(&a->mu);
    *st = a->st;
    pthread_mutex_unlock(&a->mu);
    memset(&st->engine, 0, sizeof st->engine);
    pthread_mutex_lock(&a->eng_mu);
    if (a->eng)
        fedreci_coord_get_status(a->eng, &st->engine);
    pthread_mutex_unlock(&a->eng_mu);
}

int fedreci_aggregator_port(fedreci_aggregator *a, size_t i)
{
    pthread_mutex_lock(&a->eng_mu);
    int p = a->eng ? fedreci_coord_port(a->eng, i) : 0;
    pthread_mutex_unlock(&a->eng_mu);
    return p;
}
