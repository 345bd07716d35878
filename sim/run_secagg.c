/*
 * `fedrec-sim run`: federated training of the implicit-feedback MF model with
 * SecAgg+ on a purchase log, every training customer a client.
 *
 * The coordinator is the daemon's round engine (coordinator/engine.h) and
 * every customer runs the client library's session driver
 * (client/session.h), in one process, connected over nng inproc:// or
 * tcp://127.0.0.1. Each client keeps one REQ socket for the whole run and
 * runs one session per round on it: it checks in, downloads the model when
 * selected, computes its update with core/mf's client step on its own
 * training purchases and the Y it downloaded, and goes through the four
 * SecAgg stages. A client chosen to drop out stops at its stage (the
 * session's dropout hook) and the simulator closes its socket at once, so
 * the engine counts it as dropped without waiting for a deadline; so does a
 * client whose session fails (e.g. it holds shares from fewer than t
 * neighbours) or ends in any way other than completed or not selected. Its
 * socket is reopened at the next round.
 *
 * Determinism: the engine draws each cohort from all clients (every client
 * checks in every round) with a generator seeded by (seed, round); the
 * simulator derives each client's dropout and stochastic-rounding seed from
 * (seed, round, client) and its identity key from (seed, client). The masks
 * (fresh randomness) cancel exactly, so the unmasked sum, the model and the
 * metrics are the same on every run with the same options.
 *
 * The oracle: every client hands the simulator its quantized input (the
 * session's on_quantized hook); the simulator adds them in the clear mod
 * 2^32 and compares the engine's unmasked ring sum with it, word for word,
 * after every completed round.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <sodium.h>

#include "client/session.h"
#include "coordinator/engine.h"
#include "core/dp/dpals.h"
#include "core/err.h"
#include "core/mf/mf.h"
#include "sim/run.h"

/* ---- the simulation ------------------------------------------------------------------------ */

typedef struct sim sim;

typedef struct sclient {
    sim *S;
    uint64_t id;
    uint32_t user;
    uint8_t *sk; /* 64 bytes in S->keys (secure memory) */
    nng_socket sock;
    int sock_open;
    uint64_t held_version;
    uint8_t held_sum[32]; /* checksum of the held model (bound into the advert) */
    int drop_stage;       /* this round: -1 stays, else the stage it vanishes at */
    fedreci_session *sess;
    fedreci_session_result res;
} sclient;

struct sim {
    const fedreci_run_opts *o;
    const fedreci_split *s;
    uint32_t n_items, k;
    size_t nk;
    sclient *cl;
    uint32_t n_cl;
    uint8_t *keys;
    char url[128];
    fedreci_coord *coord;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* the model the clients downloaded (one version per round) */
    int cache_valid;
    uint64_t cache_version;
    float *cache_y, *cache_gram;
    uint8_t cache_sum[FEDRECI_WIRE_CHECKSUM_BYTES];
    /* the client steps' workspaces (n_items x k each): a fixed set of one
       per core, made at setup, so that memory does not depend on how many
       nng threads happen to compute at once (a pool grown on demand grew
       by a workspace whenever the scheduler overlapped one more update) */
    fedreci_mf_step **pool;
    size_t n_pool, pool_cap;
    /* round progress */
    uint32_t n_done;
    uint32_t *reap;
    size_t n_reap;
    int round_ended;
    fedreci_run_round rec;
    /* differential privacy (--dp-epsilon): the rounds are DP-ALS releases */
    int dp;
    uint32_t d_round; /* words SecAgg masks: n_items k + 1 (+ k (k + 1) / 2 for the ALS
                         step), or D + 1 with DP */
    /* the oracle */
    uint32_t *oracle;
    uint64_t *oracle_ids;
    size_t n_oracle;
    /* the model after the round */
    float *y_new;
    uint64_t y_new_version;
    /* first error seen inside a hook */
    fedrec_err hook_err;
    char hook_msg[256];
};

static void hook_fail(sim *S, fedrec_err e, const char *what)
{
    if (!S->hook_err) {
        S->hook_err = e;
        snprintf(S->hook_msg, sizeof S->hook_msg, "%s: %s", what, fedrec_errmsg());
    }
}

/* -- client hooks (nng threads; one at a time per session) -- */

static void on_model(void *arg, const fedreci_wire_model *m)
{
    sclient *c = arg;
    sim *S = c->S;
    pthread_mutex_lock(&S->mu);
    if (!S->cache_valid || S->cache_version != m->version) {
        memcpy(S->cache_y, m->item_factors, S->nk * sizeof *S->cache_y);
        if (m->gram)
            memcpy(S->cache_gram, m->gram, (size_t)S->k * S->k * sizeof *S->cache_gram);
        else
            fedreci_mf_gram(S->cache_y, S->n_items, S->k, S->cache_gram);
        memcpy(S->cache_sum, m->checksum, sizeof S->cache_sum);
        S->cache_version = m->version;
        S->cache_valid = 1;
    } else if (memcmp(S->cache_sum, m->checksum, sizeof S->cache_sum) != 0) {
        hook_fail(S,
                  fedreci_error(FEDREC_ERR_PROTOCOL, "two models with version %llu differ",
                                (unsigned long long)m->version),
                  "model download");
    }
    c->held_version = m->version;
    memcpy(c->held_sum, m->checksum, sizeof c->held_sum);
    pthread_mutex_unlock(&S->mu);
}

static fedrec_err compute_update(void *arg, const fedreci_wire_round *rd, float *x,
                                 uint32_t *weight)
{
    sclient *c = arg;
    sim *S = c->S;
    fedreci_mf_step *w = NULL;
    fedrec_err e = FEDREC_OK;
    pthread_mutex_lock(&S->mu);
    if (!S->cache_valid || S->cache_version != rd->model_version || rd->n_items != S->n_items ||
        rd->k_factors != S->k) {
        e = fedreci_error(FEDREC_ERR_PROTOCOL,
                          "client %llu holds no model v%llu (%u x %u) for round %llu",
                          (unsigned long long)c->id, (unsigned long long)rd->model_version,
                          rd->n_items, rd->k_factors, (unsigned long long)rd->secagg.round_id);
    } else {
        /* the holders are computing, not waiting for nng: one comes back */
        while (!S->n_pool)
            pthread_cond_wait(&S->cv, &S->mu);
        w = S->pool[--S->n_pool];
    }
    pthread_mutex_unlock(&S->mu);
    if (e)
        return e;
    const fedreci_mf_csr *r = &S->s->train;
    uint64_t lo = r->indptr[c->user];
    fedreci_mf_user u = {r->indices + lo, r->conf + lo, (uint32_t)(r->indptr[c->user + 1] - lo)};
    if (rd->dp.mechanism) {
        /* the bounded DP-ALS contribution; the session noises it */
        fedreci_dpals a = {S->n_items, S->k, rd->dp.row_bound, rd->dp.gram_weight};
        e = fedreci_dpals_client(&a, w, S->cache_y, S->cache_gram, (float)rd->dp.lambda, &u, x);
    } else {
        /* the gradient, and for the ALS step the x_u x_u^T block beside it */
        int als = rd->step == FEDRECI_WIRE_STEP_ALS;
        size_t nk = (size_t)S->n_items * S->k;
        if ((uint64_t)rd->secagg.d !=
            (uint64_t)fedreci_mf_update_dim(S->n_items, S->k, als ? FEDRECI_OPT_ALS : 0) + 1)
            e = fedreci_error(FEDREC_ERR_PROTOCOL, "round %llu: d = %u does not fit step %u",
                              (unsigned long long)rd->secagg.round_id, rd->secagg.d, rd->step);
        float xu[FEDRECI_RUN_MAX_FACTORS];
        if (!e)
            e = fedreci_mf_client_step(w, S->cache_y, S->cache_gram, S->n_items, S->k,
                                       (float)S->o->lambda, &u, xu, x, NULL);
        if (!e && als)
            e = fedreci_mf_xx_block(xu, S->k, rd->x_bound,
                                    fedreci_mf_xx_weight(rd->secagg.clip, rd->x_bound), x + nk,
                                    NULL);
        sodium_memzero(xu, sizeof xu);
    }
    *weight = 1;
    pthread_mutex_lock(&S->mu);
    S->pool[S->n_pool++] = w;
    pthread_cond_broadcast(&S->cv);
    pthread_mutex_unlock(&S->mu);
    return e;
}

static void on_quantized(void *arg, uint64_t round_id, const uint32_t *q, uint32_t d)
{
    sclient *c = arg;
    sim *S = c->S;
    (void)round_id;
    pthread_mutex_lock(&S->mu);
    if (d == S->d_round && S->n_oracle < S->n_cl) {
        for (uint32_t i = 0; i < d; i++)
            S->oracle[i] += q[i]; /* mod 2^32 */
        S->oracle_ids[S->n_oracle++] = c->id;
    }
    pthread_mutex_unlock(&S->mu);
}

static void on_done(void *arg, const fedreci_session_result *r)
{
    sclient *c = arg;
    sim *S = c->S;
    pthread_mutex_lock(&S->mu);
    c->res = *r;
    S->n_done++;
    /* A client whose session did not end cleanly (dropped by the dropout
       hook, failed, aborted, opted out, no round) sends nothing more this
       round: close its connection at once, so that the engine counts it gone
       (pipe_removed) and the open stage closes as soon as every remaining
       client has answered instead of waiting for --stage-timeout. The
       socket is reopened at the next round. */
    if (r->outcome != FEDRECI_SESSION_COMPLETED && r->outcome != FEDRECI_SESSION_NOT_SELECTED)
        S->reap[S->n_reap++] = (uint32_t)(c - S->cl);
    pthread_cond_broadcast(&S->cv);
    pthread_mutex_unlock(&S->mu);
}

/* -- engine hooks (engine lock held) -- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void on_round_done(void *arg, const fedreci_round_stats *st)
{
    sim *S = arg;
    pthread_mutex_lock(&S->mu);
    fedreci_run_round *r = &S->rec;
    r->round_id = st->round_id;
    r->completed = st->completed;
    r->cohort = st->cohort;
    r->survivors = st->survivors;
    memcpy(r->dropped, st->dropped, sizeof r->dropped);
    memcpy(r->stage_ms, st->stage_ms, sizeof r->stage_ms);
    r->bytes_in = st->bytes_in;
    r->bytes_out = st->bytes_out;
    r->k = st->params ? st->params->k : 0;
    r->t = st->params ? st->params->t : 0;
    snprintf(r->reason, sizeof r->reason, "%s", st->abort_reason ? st->abort_reason : "");
    r->verified = -1;
    r->dp_eps_round = st->dp_eps_round;
    r->dp_eps_cumulative = st->dp_eps_cumulative;
    if (st->completed && st->sum && st->params) {
        qsort(S->oracle_ids, S->n_oracle, sizeof *S->oracle_ids, cmp_u64);
        int same = S->n_oracle == st->survivors &&
                   (st->survivors == 0 ||
                    !memcmp(S->oracle_ids, st->survivor_ids, st->survivors * sizeof(uint64_t))) &&
                   st->params->d == S->d_round &&
                   !memcmp(S->oracle, st->sum, (size_t)st->params->d * sizeof(uint32_t));
        r->verified = same;
    }
    S->round_ended = 1;
    pthread_cond_broadcast(&S->cv);
    pthread_mutex_unlock(&S->mu);
}

static fedrec_err on_model_committed(void *arg, uint64_t round_id, uint64_t version, const float *y,
                                     uint32_t n_items, uint32_t k)
{
    sim *S = arg;
    (void)round_id;
    if (n_items != S->n_items || k != S->k)
        return fedreci_error(FEDREC_ERR_INTERNAL, "sim: model shape %u x %u", n_items, k);
    pthread_mutex_lock(&S->mu);
    memcpy(S->y_new, y, S->nk * sizeof *y);
    S->y_new_version = version;
    pthread_mutex_unlock(&S->mu);
    return FEDREC_OK;
}

/* ---- transport ------------------------------------------------------------------------- */

static fedrec_err free_tcp_port(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return fedreci_error(FEDREC_ERR_TRANSPORT, "sim: socket(): cannot find a free port");
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
             getsockname(fd, (struct sockaddr *)&a, &len) == 0;
    close(fd);
    if (!ok)
        return fedreci_error(FEDREC_ERR_TRANSPORT, "sim: no free loopback port");
    *port = ntohs(a.sin_port);
    return FEDREC_OK;
}

static fedrec_err client_connect(sim *S, sclient *c)
{
    int rv;
    if ((rv = nng_req0_open(&c->sock)) != 0)
        return fedreci_error(FEDREC_ERR_TRANSPORT, "sim: REQ socket: %s", nng_strerror(rv));
    c->sock_open = 1;
    nng_socket_set_size(c->sock, NNG_OPT_RECVMAXSZ, (size_t)64 << 20);
    if ((rv = nng_dial(c->sock, S->url, NULL, 0)) != 0)
        return fedreci_error(FEDREC_ERR_TRANSPORT, "sim: client %llu: dial %s: %s",
                             (unsigned long long)c->id, S->url, nng_strerror(rv));
    return FEDREC_OK;
}

static void client_disconnect(sclient *c)
{
    fedreci_session_destroy(c->sess);
    c->sess = NULL;
    if (c->sock_open)
        nng_close(c->sock);
    c->sock_open = 0;
}

static void sim_free(sim *S)
{
    /* the clients first: a REQ socket whose peer is gone lingers on close */
    if (S->cl)
        for (uint32_t i = 0; i < S->n_cl; i++)
            client_disconnect(&S->cl[i]);
    if (S->coord) {
        fedreci_coord_destroy(S->coord);
        S->coord = NULL;
    }
    free(S->cl);
    if (S->keys)
        sodium_free(S->keys);
    for (size_t i = 0; i < S->n_pool; i++)
        fedreci_mf_step_destroy(S->pool[i]);
    free(S->pool);
    free(S->reap);
    free(S->oracle);
    free(S->oracle_ids);
    free(S->cache_y);
    free(S->cache_gram);
    free(S->y_new);
    pthread_cond_destroy(&S->cv);
    pthread_mutex_destroy(&S->mu);
}

/* The listening url: inproc, or a free loopback port (with the descriptor
 * limit raised for two descriptors per client: both ends are in this
 * process). */
static fedrec_err sim_url(sim *S)
{
    if (!S->o->tcp) {
        snprintf(S->url, sizeof S->url, "inproc://fedrec-sim-%ld", (long)getpid());
        return FEDREC_OK;
    }
    struct rlimit rl;
    rlim_t need = (rlim_t)S->n_cl * 2u + 256u;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < need) {
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > need ? need : rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < need)
            return fedreci_error(FEDREC_ERR_INVALID,
                                 "sim: --transport tcp needs %llu file descriptors for %u "
                                 "clients; the limit is %llu (ulimit -n)",
                                 (unsigned long long)need, S->n_cl,
                                 (unsigned long long)rl.rlim_cur);
    }
    int port = 0;
    fedrec_err e = free_tcp_port(&port);
    if (!e)
        snprintf(S->url, sizeof S->url, "tcp://127.0.0.1:%d", port);
    return e;
}

/* The coordinator's engine over the initial model y0, started. */
static fedrec_err sim_start_engine(sim *S, const float *y0, const char **codes)
{
    const fedreci_run_opts *o = S->o;
    const uint32_t n_train = S->n_cl;
    fedreci_coord_config cfg;
    fedreci_coord_config_default(&cfg);
    const char *urls[1] = {S->url};
    cfg.listen_urls = urls;
    cfg.n_listen = 1;
    cfg.n_contexts = n_train + n_train / 8 + 64;
    cfg.cohort_size = o->cohort < n_train ? o->cohort : n_train;
    cfg.min_cohort = 2;
    cfg.checkin_quorum = n_train; /* every client checks in: the draw sees them all */
    cfg.bench_max_rounds = 0;     /* its dropouts are honest; a benched client would never check
                                     in again, and its draw waits for all of them */
    cfg.checkin_window_ms = 1000u * (o->stage_timeout_s * 4u + 600u);
    cfg.neighbors = o->secagg == FEDRECI_RUN_SECAGG_FULL ? 0 : o->neighbors;
    /* 0: K/2 + 1, the simulator's documented default (the engine raises a
       threshold of 1 to k/2 + 1 per round); a deployment's coordinator
       defaults to ceil(2k/3), the clients' floor, but simulated sessions
       have no floors */
    cfg.threshold = o->threshold ? o->threshold : 1;
    cfg.clip = o->clip;
    for (int st = 0; st < 4; st++)
        cfg.stage_ms[st] = 1000u * o->stage_timeout_s;
    cfg.retry_after_ms = 100;
    cfg.send_timeout_ms = 60000;
    cfg.seed = o->seed;
    cfg.reshuffle = o->reshuffle;
    cfg.first_round_id = 1;
    cfg.max_rounds = o->rounds;
    cfg.opt.kind = S->dp ? FEDRECI_OPT_ADAM : (fedreci_opt_kind)o->step;
    cfg.x_bound = o->x_bound;
    cfg.opt.lr = (float)o->lr;
    cfg.opt.beta1 = (float)o->beta1;
    cfg.opt.lambda = (float)o->lambda;
    cfg.opt.n_train = n_train;
    if (S->dp) { /* --cohort clients a round (>= the clients: full participation) */
        cfg.dp.epsilon = o->dp_epsilon;
        cfg.dp.delta = o->dp_delta;
        cfg.dp.rounds = o->dp_releases;
        cfg.dp.min_survivors = o->dp_min_survivors;
        cfg.dp.row_bound = o->dp_row_bound;
        cfg.dp.gram_weight = o->dp_gram_weight;
        cfg.dp.gram_floor = o->dp_gram_floor;
        cfg.dp.lambda = o->lambda;
        cfg.dp.no_shrink = o->dp_no_shrink;
    }
    fedreci_coord_hooks hooks = {
        .arg = S, .on_round_done = on_round_done, .on_model_committed = on_model_committed};
    fedreci_coord_model m = {1, S->n_items, S->k, y0, codes, NULL, 0};
    fedrec_err e = fedreci_coord_create(&S->coord, &cfg, &hooks, &m);
    if (!e)
        e = fedreci_coord_start(S->coord);
    return e;
}

/* The state, the clients' identity keys (from (seed, client)), the engine
 * and one connected REQ socket per client. On failure the caller still runs
 * sim_free. */
static fedrec_err sim_setup(sim *S, const fedreci_run_world *w, const float *y0)
{
    const uint32_t n_train = w->n_train;
    memset(S, 0, sizeof *S);
    pthread_mutex_init(&S->mu, NULL);
    pthread_cond_init(&S->cv, NULL);
    S->o = w->o;
    S->s = w->s;
    S->n_items = w->s->train.n_cols;
    S->k = w->o->factors;
    S->nk = (size_t)S->n_items * S->k;
    S->n_cl = n_train;
    S->dp = w->o->dp_epsilon > 0;
    S->d_round =
        (uint32_t)fedreci_mf_update_dim(S->n_items, S->k, (fedreci_opt_kind)w->o->step) + 1;
    if (S->dp) {
        fedreci_dpals a = {S->n_items, S->k, 1, 1};
        size_t D = fedreci_dp_pad_dim(fedreci_dpals_dim(&a));
        if (!D || D >= UINT32_MAX / 4)
            return fedreci_error(FEDREC_ERR_INVALID, "sim: DP dimension of %u x %u too large",
                                 S->n_items, S->k);
        S->d_round = (uint32_t)D + 1;
    }
    S->cl = calloc(n_train, sizeof *S->cl);
    S->keys = sodium_malloc((size_t)n_train * 64u);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    S->pool_cap = ncpu < 1 ? 1 : ncpu > 64 ? 64 : (size_t)ncpu;
    S->pool = calloc(S->pool_cap, sizeof *S->pool);
    S->reap = calloc(n_train, sizeof *S->reap);
    S->oracle = calloc(S->d_round, sizeof *S->oracle);
    S->oracle_ids = calloc(n_train, sizeof *S->oracle_ids);
    S->cache_y = malloc(S->nk * sizeof *S->cache_y);
    S->cache_gram = malloc((size_t)S->k * S->k * sizeof *S->cache_gram);
    S->y_new = malloc(S->nk * sizeof *S->y_new);
    if (!S->cl || !S->keys || !S->pool || !S->reap || !S->oracle || !S->oracle_ids || !S->cache_y ||
        !S->cache_gram || !S->y_new)
        return fedreci_error(FEDREC_ERR_NOMEM, "sim: state for %u clients", n_train);
    fedrec_err e = FEDREC_OK;
    while (!e && S->n_pool < S->pool_cap)
        if (!(e = fedreci_mf_step_create(&S->pool[S->n_pool], S->n_items, S->k)))
            S->n_pool++;
    if (!e)
        e = sim_url(S);
    for (uint32_t i = 0; i < n_train && !e; i++) {
        sclient *c = &S->cl[i];
        c->S = S;
        c->user = w->train_users[i];
        c->sk = S->keys + (size_t)i * 64u;
        uint8_t seed[32], pk[32];
        fedreci_run_derive32(S->o->seed, (uint64_t)w->train_users[i] + 1u, 0, "fedrec-sim-identity",
                             seed);
        crypto_sign_seed_keypair(pk, c->sk, seed);
        sodium_memzero(seed, sizeof seed);
        c->id = fedreci_secagg_id_from_pk(pk); /* ids are self-certifying */
    }
    if (!e)
        e = sim_start_engine(S, y0, w->codes);
    for (uint32_t i = 0; i < n_train && !e; i++)
        e = client_connect(S, &S->cl[i]);
    return e;
}

/* ---- one round ---------------------------------------------------------------------------- */

/* Clears the round's shared state before the sessions start. */
static void round_reset(sim *S)
{
    pthread_mutex_lock(&S->mu);
    S->n_done = 0;
    S->n_reap = 0;
    S->round_ended = 0;
    memset(&S->rec, 0, sizeof S->rec);
    memset(S->oracle, 0, (size_t)S->d_round * sizeof *S->oracle);
    S->n_oracle = 0;
    pthread_mutex_unlock(&S->mu);
}

/* Starts one session per client for round index ri (reconnecting the
 * clients whose socket was closed); *started counts the sessions running. */
static fedrec_err start_sessions(sim *S, uint32_t ri, uint32_t *started)
{
    const fedreci_run_opts *o = S->o;
    fedrec_err e = FEDREC_OK;
    *started = 0;
    for (uint32_t i = 0; i < S->n_cl && !e; i++) {
        sclient *c = &S->cl[i];
        if (!c->sock_open && (e = client_connect(S, c)))
            break;
        uint8_t rseed[32];
        fedreci_run_derive32(o->seed, ri, c->id, "fedrec-sim-rounding", rseed);
        fedreci_session_config sc;
        fedreci_session_config_default(&sc);
        sc.socket = &c->sock;
        sc.client_id = c->id;
        sc.identity_sk = c->sk;
        sc.model_version = c->held_version;
        sc.model_checksum = c->held_version ? c->held_sum : NULL;
        sc.timeout_ms = 1000u * (o->stage_timeout_s * 4u + 600u);
        sc.dropout_stage = c->drop_stage = fedreci_run_dropout_of(o, ri, c->id);
        sc.rounding_seed = rseed;
        fedreci_session_hooks h = {c, on_model, compute_update, NULL, on_quantized, on_done};
        memset(&c->res, 0, sizeof c->res);
        e = fedreci_session_create(&c->sess, &sc, &h);
        sodium_memzero(rseed, sizeof rseed);
        if (!e && (e = fedreci_session_start(c->sess))) {
            fedreci_session_destroy(c->sess);
            c->sess = NULL;
        }
        if (!e)
            (*started)++;
    }
    return e;
}

/* Waits for every started session and the round's end (or only the
 * sessions when e is set), closing the sockets of the clients that vanish as
 * soon as they do. Returns e, or a timeout when every session ended but the
 * engine never closed the round. *rec gets the engine's record. */
static fedrec_err wait_round(sim *S, uint32_t ri, uint32_t started, double t0, fedrec_err e,
                             fedreci_run_round *rec)
{
    pthread_mutex_lock(&S->mu);
    for (;;) {
        if (S->n_reap) {
            size_t n = S->n_reap;
            uint32_t reap[64];
            if (n > 64)
                n = 64;
            memcpy(reap, S->reap + S->n_reap - n, n * sizeof *reap);
            S->n_reap -= n;
            pthread_mutex_unlock(&S->mu);
            for (size_t j = 0; j < n; j++)
                client_disconnect(&S->cl[reap[j]]);
            pthread_mutex_lock(&S->mu);
            continue;
        }
        if (S->n_done >= started && (S->round_ended || e))
            break;
        if (S->n_done < started) {
            pthread_cond_wait(&S->cv, &S->mu);
            continue;
        }
        /* every session ended but no round ran: the DP budget gate may
           have refused it (the engine then runs no further round) */
        if (S->dp) {
            fedreci_coord_status cs;
            pthread_mutex_unlock(&S->mu); /* the engine's lock comes first */
            fedreci_coord_get_status(S->coord, &cs);
            pthread_mutex_lock(&S->mu);
            if (cs.dp_exhausted) {
                S->rec.round_id = ri + 1;
                S->rec.verified = -1;
                S->rec.dp_refused = 1;
                S->rec.dp_eps_round = cs.dp_eps_round;
                S->rec.dp_eps_cumulative = cs.dp_spent;
                snprintf(S->rec.reason, sizeof S->rec.reason, "%s", cs.dp_refusal);
                break;
            }
        }
        /* every session ended but the engine has not closed the round:
           only its deadlines can still end it */
        if (fedreci_sim_now() - t0 > 4.0 * S->o->stage_timeout_s + 60.0) {
            e = fedreci_error(FEDREC_ERR_TIMEOUT,
                              "round %u: every client is done but the round did not end", ri + 1);
            break;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&S->cv, &S->mu, &ts);
    }
    *rec = S->rec;
    pthread_mutex_unlock(&S->mu);
    return e;
}

/* Ends the round's sessions and adds up what they report: who vanished where
 * (the sessions know; the engine's per-stage counts of an aborted round also
 * count the members of stages never reached), bytes, session errors. */
static void tally_sessions(sim *S, fedreci_run_round *rec)
{
    memset(rec->dropped, 0, sizeof rec->dropped);
    for (uint32_t i = 0; i < S->n_cl; i++) {
        sclient *c = &S->cl[i];
        fedreci_session_destroy(c->sess);
        c->sess = NULL;
        if (c->res.round_id == 0)
            continue;
        if (c->res.outcome == FEDRECI_SESSION_COMPLETED) {
            rec->up_bytes += c->res.bytes_sent;
            rec->down_bytes += c->res.bytes_received;
            rec->n_completed++;
        } else if (c->res.outcome == FEDRECI_SESSION_DROPPED && c->drop_stage >= 0) {
            rec->dropped[c->drop_stage]++;
        } else if (c->res.outcome == FEDRECI_SESSION_ERROR) {
            if (!rec->session_errors)
                fprintf(stderr, "fedrec-sim: round %llu: client %llu: %s: %s\n",
                        (unsigned long long)c->res.round_id, (unsigned long long)c->id,
                        fedrec_strerror(c->res.err), c->res.text);
            rec->session_errors++;
        }
    }
}

/* Runs round index ri; on success *rec is its record and y the model after
 * it (unchanged when the round aborted). */
static fedrec_err run_round(sim *S, uint32_t ri, float *y, fedreci_run_round *rec)
{
    double t0 = fedreci_sim_now();
    uint32_t started = 0;
    round_reset(S);
    fedrec_err e = start_sessions(S, ri, &started);
    if (e) /* the held check-ins are answered NO_ROUND, the sessions end */
        fedreci_coord_stop(S->coord);
    e = wait_round(S, ri, started, t0, e, rec);
    tally_sessions(S, rec);
    if (e)
        return e;
    if (S->hook_err)
        return fedreci_error(S->hook_err, "%s", S->hook_msg);
    if (rec->completed) {
        pthread_mutex_lock(&S->mu);
        memcpy(y, S->y_new, S->nk * sizeof *y);
        pthread_mutex_unlock(&S->mu);
    }
    rec->seconds = fedreci_sim_now() - t0;
    rec->rss_kb = fedreci_run_rss_kb();
    rec->heap_kb = fedreci_run_heap_kb();
    return FEDREC_OK;
}

fedrec_err fedreci_run_secagg(const fedreci_run_world *w, float *y, fedreci_run_round *recs,
                              fedreci_run_evaluator *ev)
{
    const fedreci_run_opts *o = w->o;
    sim S;
    fedrec_err e = sim_setup(&S, w, y);
    for (uint32_t ri = 0; ri < o->rounds && !e; ri++) {
        e = run_round(&S, ri, y, &recs[ri]);
        if (!e && recs[ri].dp_refused) {
            printf("fedrec-sim: %s\n", recs[ri].reason);
            for (uint32_t j = ri + 1; j < o->rounds; j++) {
                recs[j].round_id = j + 1;
                recs[j].cohort = S.n_cl;
                recs[j].verified = -1;
                recs[j].dp_refused = 1;
                recs[j].dp_eps_cumulative = recs[ri].dp_eps_cumulative;
                snprintf(recs[j].reason, sizeof recs[j].reason, "not started: the budget is spent");
            }
            fedreci_run_evaluator_post(ev, y, S.nk, &recs[ri], ri); /* the final model */
            break;
        }
        if (!e && ((ri + 1) % o->eval_every == 0 || ri + 1 == o->rounds))
            fedreci_run_evaluator_post(ev, y, S.nk, &recs[ri], ri);
    }
    sim_free(&S);
    return e;
}
