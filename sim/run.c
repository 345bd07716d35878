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
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <sodium.h>

#include "client/session.h"
#include "coordinator/engine.h"
#include "core/err.h"
#include "core/log.h"
#include "core/mf/mf.h"
#include "sim/sim.h"

#define MAX_FACTORS 256u

/* ---- options --------------------------------------------------------------------- */

enum { SECAGG_OFF = 0, SECAGG_PLUS = 1, SECAGG_FULL = 2 };
static const char *const secagg_names[] = {"off", "plus", "full"};
static const char *const stage_names[] = {"advertise", "share", "masked", "unmask"};

typedef struct run_opts {
    fedreci_sim_data_opts data;
    uint32_t rounds;
    uint32_t cohort;
    uint32_t neighbors;
    uint32_t threshold;
    uint32_t factors;
    uint32_t threads;
    uint32_t eval_every;
    uint32_t sweeps;
    uint32_t stage_timeout_s;
    double dropout;
    int dropout_stage; /* -1: spread over the four stages */
    int secagg;
    int tcp;
    double lambda;
    double lr;
    double clip;
    uint64_t seed;
    const char *out;
    int quiet;
} run_opts;

static void run_usage(FILE *f)
{
    fprintf(f, "usage: fedrec-sim [run] --data FILE [options]\n"
               "Federated training with secure aggregation: one client (the client library's\n"
               "session driver) per training customer and the coordinator's round engine, in one\n"
               "process over nng. Writes rounds.csv, summary.json and hr_ndcg.svg to --out.\n"
               "federation:\n"
               "  --rounds N            training rounds (default 40)\n"
               "  --cohort C            clients drawn per round (default 500; capped at the\n"
               "                        number of clients)\n"
               "  --dropout P           probability that a selected client vanishes mid-round\n"
               "                        (default 0.1)\n"
               "  --dropout-stage S     where it vanishes: advertise|share|masked|unmask, or\n"
               "                        spread (default: each dropped client picks one at random)\n"
               "  --secagg MODE         plus: SecAgg+ on a random k-regular graph (default);\n"
               "                        full: classic SecAgg, every pair masks (k = C - 1);\n"
               "                        off: plain-sum reference without transport or masking\n"
               "  --neighbors K         SecAgg+ neighbours per client (default 16)\n"
               "  --threshold T         Shamir threshold, K/2 < T <= K (default K/2 + 1)\n"
               "  --clip B              update entries are clipped to [-B, B] before\n"
               "                        quantization (default 16; small values hurt accuracy)\n"
               "  --transport T         inproc (default) or tcp (loopback, a free port)\n"
               "  --stage-timeout S     fallback deadline of a SecAgg stage for silent clients,\n"
               "                        seconds (default 120; vanished clients are detected\n"
               "                        at once)\n"
               "model:\n"
               "  --factors K           latent factors (default 32)\n"
               "  --lambda L            L2 regularization (default 0.1)\n"
               "  --lr R                server Adam learning rate (default 0.02)\n"
               "  --sweeps S            sweeps of the centralized ALS baseline (default 15)\n"
               "run:\n"
               "  --seed N              seed of the initial model, cohorts, dropouts, rounding\n"
               "                        (default 1); same seed, options and threads give the\n"
               "                        same summary.json apart from wall_seconds\n"
               "  --threads T           evaluation threads (default 2)\n"
               "  --eval-every N        evaluate the model every N rounds (default 1; the last\n"
               "                        round always)\n"
               "  --out DIR             output directory (default results)\n"
               "  --quiet               no per-round progress\n");
    fedreci_sim_data_usage(f);
}

static int parse_u32(const char *s, uint32_t lo, uint32_t hi, uint32_t *out)
{
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (!*s || *end || *s == '-' || v < lo || v > hi)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

static int parse_dbl(const char *s, double lo, double hi, double *out)
{
    char *end = NULL;
    double v = strtod(s, &end);
    if (!*s || *end || !(v >= lo) || !(v <= hi))
        return -1;
    *out = v;
    return 0;
}

/* Returns 0 ok, 1 help printed, 2 usage error. */
static int parse_opts(run_opts *o, int argc, char **argv)
{
    static const char *cmd = "fedrec-sim run";
    memset(o, 0, sizeof *o);
    fedreci_sim_data_opts_default(&o->data);
    o->rounds = 40;
    o->cohort = 500;
    o->neighbors = 16;
    o->factors = 32;
    o->threads = 2;
    o->eval_every = 1;
    o->sweeps = 15;
    o->stage_timeout_s = 120;
    o->dropout = 0.1;
    o->dropout_stage = -1;
    o->secagg = SECAGG_PLUS;
    o->lambda = 0.1;
    o->lr = 0.02;
    o->clip = 16;
    o->seed = 1;
    o->out = "results";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = fedreci_sim_data_opt(&o->data, argc, argv, &i, cmd);
        if (r < 0)
            return 2;
        if (r > 0)
            continue;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            run_usage(stdout);
            return 1;
        }
        if (!strcmp(a, "--quiet")) {
            o->quiet = 1;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "%s: unknown option or missing value: '%s'\n", cmd, a);
            run_usage(stderr);
            return 2;
        }
        const char *v = argv[++i];
        int bad = 0;
        if (!strcmp(a, "--rounds"))
            bad = parse_u32(v, 1, 1000000, &o->rounds);
        else if (!strcmp(a, "--cohort"))
            bad = parse_u32(v, 2, UINT32_MAX / 2, &o->cohort);
        else if (!strcmp(a, "--neighbors"))
            bad = parse_u32(v, 1, UINT32_MAX / 2, &o->neighbors);
        else if (!strcmp(a, "--threshold"))
            bad = parse_u32(v, 1, UINT32_MAX / 2, &o->threshold);
        else if (!strcmp(a, "--factors"))
            bad = parse_u32(v, 1, MAX_FACTORS, &o->factors);
        else if (!strcmp(a, "--threads"))
            bad = parse_u32(v, 1, 256, &o->threads);
        else if (!strcmp(a, "--eval-every"))
            bad = parse_u32(v, 1, 1000000, &o->eval_every);
        else if (!strcmp(a, "--sweeps"))
            bad = parse_u32(v, 1, 1000, &o->sweeps);
        else if (!strcmp(a, "--stage-timeout"))
            bad = parse_u32(v, 1, 86400, &o->stage_timeout_s);
        else if (!strcmp(a, "--seed")) {
            char *end = NULL;
            unsigned long long s = strtoull(v, &end, 10);
            bad = !*v || *end || *v == '-';
            o->seed = s;
        } else if (!strcmp(a, "--dropout"))
            bad = parse_dbl(v, 0.0, 1.0, &o->dropout);
        else if (!strcmp(a, "--lambda"))
            bad = parse_dbl(v, 1e-12, 1e6, &o->lambda);
        else if (!strcmp(a, "--lr"))
            bad = parse_dbl(v, 1e-9, 10.0, &o->lr);
        else if (!strcmp(a, "--clip"))
            bad = parse_dbl(v, 1e-6, 1e6, &o->clip);
        else if (!strcmp(a, "--out"))
            o->out = v;
        else if (!strcmp(a, "--dropout-stage")) {
            o->dropout_stage = -2;
            if (!strcmp(v, "spread"))
                o->dropout_stage = -1;
            for (int s = 0; s < 4; s++)
                if (!strcmp(v, stage_names[s]))
                    o->dropout_stage = s;
            bad = o->dropout_stage == -2;
        } else if (!strcmp(a, "--secagg")) {
            bad = 1;
            for (int s = 0; s < 3; s++)
                if (!strcmp(v, secagg_names[s])) {
                    o->secagg = s;
                    bad = 0;
                }
        } else if (!strcmp(a, "--transport")) {
            bad = strcmp(v, "inproc") && strcmp(v, "tcp");
            o->tcp = !strcmp(v, "tcp");
        } else {
            fprintf(stderr, "%s: unknown option '%s'\n", cmd, a);
            run_usage(stderr);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "%s: bad value '%s' for %s (see --help)\n", cmd, v, a);
            return 2;
        }
    }
    if (!o->data.data) {
        fprintf(stderr, "%s: --data FILE is required (see --help)\n", cmd);
        return 2;
    }
    return 0;
}

/* ---- seeded derivations -------------------------------------------------------------- */

static uint64_t mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t hash3(uint64_t seed, uint64_t a, uint64_t b, uint64_t label)
{
    return mix64(mix64(mix64(seed ^ label) ^ a) ^ b);
}

/* Uniform in [0, 1). */
static double unit(uint64_t h)
{
    return (double)(h >> 11) * (1.0 / 9007199254740992.0);
}

/* 32 bytes from (seed, a, b) under a label, with BLAKE2b. */
static void derive32(uint64_t seed, uint64_t a, uint64_t b, const char *label, uint8_t out[32])
{
    uint8_t in[24];
    for (int i = 0; i < 8; i++) {
        in[i] = (uint8_t)(seed >> (8 * i));
        in[8 + i] = (uint8_t)(a >> (8 * i));
        in[16 + i] = (uint8_t)(b >> (8 * i));
    }
    crypto_generichash(out, 32, in, sizeof in, (const uint8_t *)label, strlen(label));
}

/* -1: stays; 0..3: vanishes before sending that SecAgg stage's message. */
static int dropout_of(const run_opts *o, uint32_t round_index, uint64_t client)
{
    if (o->dropout <= 0.0)
        return -1;
    uint64_t h = hash3(o->seed, round_index, client, 0x64726f70u);
    if (!(unit(h) < o->dropout))
        return -1;
    if (o->dropout_stage >= 0)
        return o->dropout_stage;
    return (int)(hash3(o->seed, round_index, client, 0x73746167u) % 4u);
}

/* ---- per-round records ------------------------------------------------------------------ */

typedef struct round_rec {
    uint64_t round_id;
    int completed;
    uint32_t cohort;
    uint32_t survivors;
    uint32_t dropped[4];
    uint32_t k, t;
    double stage_ms[4];
    uint64_t bytes_in, bytes_out;  /* at the coordinator during the round */
    int verified;                  /* 1 matched the oracle, 0 mismatch, -1 not checked */
    uint64_t up_bytes, down_bytes; /* summed over the clients that completed */
    uint32_t n_completed;
    uint32_t session_errors;
    double seconds;
    uint64_t rss_kb; /* the process's resident memory at the end of the round */
    int evaluated;
    fedreci_metrics m;
    char reason[160];
} round_rec;

/* Resident set size of this process in KiB (VmRSS), 0 where /proc is not
 * available. Recorded per round so a long run shows whether memory stays
 * flat. */
static uint64_t rss_kb_now(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return 0;
    char line[256];
    unsigned long long kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %llu kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

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
    int drop_stage; /* this round: -1 stays, else the stage it vanishes at */
    fedreci_session *sess;
    fedreci_session_result res;
} sclient;

struct sim {
    const run_opts *o;
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
    fedreci_mf_step **pool;
    size_t n_pool, pool_cap;
    /* round progress */
    uint32_t n_done;
    uint32_t *reap;
    size_t n_reap;
    int round_ended;
    round_rec rec;
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
        rd->k_factors != S->k)
        e = fedreci_error(FEDREC_ERR_PROTOCOL,
                          "client %llu holds no model v%llu (%u x %u) for round %llu",
                          (unsigned long long)c->id, (unsigned long long)rd->model_version,
                          rd->n_items, rd->k_factors, (unsigned long long)rd->secagg.round_id);
    else if (S->n_pool)
        w = S->pool[--S->n_pool];
    pthread_mutex_unlock(&S->mu);
    if (!e && !w)
        e = fedreci_mf_step_create(&w, S->n_items, S->k);
    if (e)
        return e;
    const fedreci_mf_csr *r = &S->s->train;
    uint64_t lo = r->indptr[c->user];
    fedreci_mf_user u = {r->indices + lo, r->conf + lo, (uint32_t)(r->indptr[c->user + 1] - lo)};
    float xu[MAX_FACTORS];
    e = fedreci_mf_client_step(w, S->cache_y, S->cache_gram, S->n_items, S->k, (float)S->o->lambda,
                               &u, xu, x, NULL);
    sodium_memzero(xu, sizeof xu);
    *weight = 1;
    pthread_mutex_lock(&S->mu);
    if (S->n_pool < S->pool_cap)
        S->pool[S->n_pool++] = w;
    else
        fedreci_mf_step_destroy(w);
    pthread_mutex_unlock(&S->mu);
    return e;
}

static void on_quantized(void *arg, uint64_t round_id, const uint32_t *q, uint32_t d)
{
    sclient *c = arg;
    sim *S = c->S;
    (void)round_id;
    pthread_mutex_lock(&S->mu);
    if (d == S->nk + 1 && S->n_oracle < S->n_cl) {
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

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static void on_round_done(void *arg, const fedreci_round_stats *st)
{
    sim *S = arg;
    pthread_mutex_lock(&S->mu);
    round_rec *r = &S->rec;
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
    if (st->completed && st->sum && st->params) {
        qsort(S->oracle_ids, S->n_oracle, sizeof *S->oracle_ids, cmp_u64);
        int same = S->n_oracle == st->survivors &&
                   (st->survivors == 0 ||
                    !memcmp(S->oracle_ids, st->survivor_ids, st->survivors * sizeof(uint64_t))) &&
                   st->params->d == S->nk + 1 &&
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

/* ---- evaluation in the background -------------------------------------------------------- */

typedef struct evaluator {
    pthread_t tid;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int busy, quit;
    float *y;     /* the job's model copy */
    round_rec *r; /* where the metrics go */
    uint32_t index;
    const run_opts *o;
    const fedreci_split *s;
    uint32_t k;
    double t0;
    uint32_t n_rounds;
    int tty;
    fedrec_err err;
    char msg[256];
} evaluator;

static void progress(evaluator *ev, uint32_t index, const round_rec *r)
{
    if (ev->o->quiet)
        return;
    double el = fedreci_sim_now() - ev->t0;
    double left = el / (index + 1) * (ev->n_rounds - index - 1);
    uint32_t dropped = r->dropped[0] + r->dropped[1] + r->dropped[2] + r->dropped[3];
    if (ev->tty) {
        printf("\rround %u/%u  HR@10 %.4f  NDCG@10 %.4f  survivors %u/%u  elapsed %.0f s  "
               "left %.0f s   ",
               index + 1, ev->n_rounds, r->m.hr_at_k, r->m.ndcg_at_k, r->survivors, r->cohort, el,
               left);
    } else {
        printf("round %u/%u: HR@10 %.4f NDCG@10 %.4f recall@10 %.4f, cohort %u, survivors %u, "
               "dropped %u, %s, elapsed %.1f s, left %.0f s\n",
               index + 1, ev->n_rounds, r->m.hr_at_k, r->m.ndcg_at_k, r->m.recall_at_k, r->cohort,
               r->survivors, dropped,
               r->completed ? (r->verified == 1   ? "sum verified"
                               : r->verified == 0 ? "SUM MISMATCH"
                                                  : "completed")
                            : "aborted",
               el, left);
    }
    fflush(stdout);
}

static void *eval_main(void *arg)
{
    evaluator *ev = arg;
    pthread_mutex_lock(&ev->mu);
    for (;;) {
        while (!ev->busy && !ev->quit)
            pthread_cond_wait(&ev->cv, &ev->mu);
        if (!ev->busy)
            break;
        pthread_mutex_unlock(&ev->mu);
        fedreci_metrics m;
        fedrec_err e = fedreci_sim_evaluate(ev->s, ev->y, NULL, ev->k, (float)ev->o->lambda,
                                            ev->o->threads, &m);
        pthread_mutex_lock(&ev->mu);
        if (e && !ev->err) {
            ev->err = e;
            snprintf(ev->msg, sizeof ev->msg, "%s", fedrec_errmsg());
        }
        if (!e) {
            ev->r->m = m;
            ev->r->evaluated = 1;
            progress(ev, ev->index, ev->r);
        }
        ev->busy = 0;
        pthread_cond_broadcast(&ev->cv);
    }
    pthread_mutex_unlock(&ev->mu);
    return NULL;
}

/* Waits for the running job, then (y != NULL) starts one on a copy of y. */
static void eval_post(evaluator *ev, const float *y, size_t nk, round_rec *r, uint32_t index)
{
    pthread_mutex_lock(&ev->mu);
    while (ev->busy)
        pthread_cond_wait(&ev->cv, &ev->mu);
    if (y) {
        memcpy(ev->y, y, nk * sizeof *y);
        ev->r = r;
        ev->index = index;
        ev->busy = 1;
        pthread_cond_broadcast(&ev->cv);
    }
    pthread_mutex_unlock(&ev->mu);
}

/* ---- the round loops ------------------------------------------------------------------------- */

/* Runs every round over the engine. y holds the current model (updated). */
static fedrec_err run_secagg(sim *S, round_rec *recs, float *y, evaluator *ev)
{
    const run_opts *o = S->o;
    fedrec_err e = FEDREC_OK;
    for (uint32_t ri = 0; ri < o->rounds && !e; ri++) {
        double t0 = fedreci_sim_now();
        pthread_mutex_lock(&S->mu);
        S->n_done = 0;
        S->n_reap = 0;
        S->round_ended = 0;
        memset(&S->rec, 0, sizeof S->rec);
        memset(S->oracle, 0, (S->nk + 1) * sizeof *S->oracle);
        S->n_oracle = 0;
        pthread_mutex_unlock(&S->mu);
        uint32_t started = 0;
        for (uint32_t i = 0; i < S->n_cl && !e; i++) {
            sclient *c = &S->cl[i];
            if (!c->sock_open && (e = client_connect(S, c)))
                break;
            uint8_t rseed[32];
            derive32(o->seed, ri, c->id, "fedrec-sim-rounding", rseed);
            fedreci_session_config sc;
            fedreci_session_config_default(&sc);
            sc.socket = &c->sock;
            sc.client_id = c->id;
            sc.identity_sk = c->sk;
            sc.model_version = c->held_version;
            sc.timeout_ms = 1000u * (o->stage_timeout_s * 4u + 600u);
            sc.dropout_stage = c->drop_stage = dropout_of(o, ri, c->id);
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
                started++;
        }
        if (e) /* the held check-ins are answered NO_ROUND, the sessions end */
            fedreci_coord_stop(S->coord);
        /* wait for every session and the round's end; close the sockets of
           the clients that vanish as soon as they do */
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
            /* every session ended but the engine has not closed the round:
               only its deadlines can still end it */
            if (fedreci_sim_now() - t0 > 4.0 * o->stage_timeout_s + 60.0) {
                e = fedreci_error(FEDREC_ERR_TIMEOUT,
                                  "round %u: every client is done but the round did not end",
                                  ri + 1);
                break;
            }
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 1;
            pthread_cond_timedwait(&S->cv, &S->mu, &ts);
        }
        round_rec rec = S->rec;
        pthread_mutex_unlock(&S->mu);
        /* who vanished where: the sessions know (the engine's per-stage counts
           of an aborted round also count the members of stages never reached) */
        memset(rec.dropped, 0, sizeof rec.dropped);
        for (uint32_t i = 0; i < S->n_cl; i++) {
            sclient *c = &S->cl[i];
            fedreci_session_destroy(c->sess);
            c->sess = NULL;
            if (c->res.round_id == 0)
                continue;
            if (c->res.outcome == FEDRECI_SESSION_COMPLETED) {
                rec.up_bytes += c->res.bytes_sent;
                rec.down_bytes += c->res.bytes_received;
                rec.n_completed++;
            } else if (c->res.outcome == FEDRECI_SESSION_DROPPED && c->drop_stage >= 0) {
                rec.dropped[c->drop_stage]++;
            } else if (c->res.outcome == FEDRECI_SESSION_ERROR) {
                if (!rec.session_errors)
                    fprintf(stderr, "fedrec-sim: round %llu: client %llu: %s: %s\n",
                            (unsigned long long)c->res.round_id, (unsigned long long)c->id,
                            fedrec_strerror(c->res.err), c->res.text);
                rec.session_errors++;
            }
        }
        if (e)
            break;
        if (S->hook_err) {
            e = fedreci_error(S->hook_err, "%s", S->hook_msg);
            break;
        }
        if (rec.completed) {
            pthread_mutex_lock(&S->mu);
            memcpy(y, S->y_new, S->nk * sizeof *y);
            pthread_mutex_unlock(&S->mu);
        }
        rec.seconds = fedreci_sim_now() - t0;
        rec.rss_kb = rss_kb_now();
        recs[ri] = rec;
        if ((ri + 1) % o->eval_every == 0 || ri + 1 == o->rounds)
            eval_post(ev, y, S->nk, &recs[ri], ri);
    }
    return e;
}

/* The plain-sum reference: core/mf's federated round, same cohort size,
 * dropout and optimizer, no transport and no masking. */
static fedrec_err run_plain(const run_opts *o, const fedreci_split *s, uint32_t n_train,
                            const uint32_t *train_users, uint32_t k, round_rec *recs, float *y,
                            evaluator *ev)
{
    const fedreci_mf_csr *r = &s->train;
    size_t nk = (size_t)r->n_cols * k;
    uint32_t cohort = o->cohort < n_train ? o->cohort : n_train;
    fedreci_mf_step *w = NULL;
    fedreci_optimizer *opt = NULL;
    float *grad = malloc(nk * sizeof *grad);
    float *sum = malloc(nk * sizeof *sum);
    uint32_t *pick = malloc((size_t)n_train * sizeof *pick);
    uint32_t *users = malloc((size_t)n_train * sizeof *users);
    fedreci_opt_params op = {FEDRECI_OPT_ADAM, (float)o->lr, 0.9f, 0.999f, 1e-8f,
                             (float)o->lambda, n_train};
    fedrec_err e = grad && sum && pick && users ? FEDREC_OK : FEDREC_ERR_NOMEM;
    if (!e)
        e = fedreci_mf_step_create(&w, r->n_cols, k);
    if (!e)
        e = fedreci_optimizer_create(&opt, &op, r->n_cols, k);
    for (uint32_t ri = 0; ri < o->rounds && !e; ri++) {
        double t0 = fedreci_sim_now();
        memcpy(pick, train_users, (size_t)n_train * sizeof *pick);
        uint64_t st = hash3(o->seed, ri, 0, 0x636f686fu);
        for (uint32_t i = 0; i < cohort; i++) {
            uint32_t j = i + (uint32_t)(mix64(st + i) % (n_train - i));
            uint32_t t = pick[i];
            pick[i] = pick[j];
            pick[j] = t;
        }
        round_rec rec;
        memset(&rec, 0, sizeof rec);
        rec.round_id = ri + 1;
        rec.cohort = cohort;
        rec.verified = -1;
        uint32_t n = 0;
        for (uint32_t i = 0; i < cohort; i++) {
            int d = dropout_of(o, ri, (uint64_t)pick[i] + 1);
            if (d >= 0)
                rec.dropped[d]++;
            else
                users[n++] = pick[i];
        }
        qsort(users, n, sizeof *users, cmp_u32);
        rec.survivors = n;
        if (n == 0) {
            snprintf(rec.reason, sizeof rec.reason, "no survivor");
        } else {
            uint32_t part = 0;
            e = fedreci_mf_fed_round(w, opt, r, users, n, k, (float)o->lambda, y, grad, sum, &part,
                                     NULL);
            rec.completed = !e;
            rec.n_completed = part;
            rec.up_bytes = (uint64_t)part * (nk + 1) * 4u;
            rec.down_bytes = rec.up_bytes;
        }
        rec.seconds = fedreci_sim_now() - t0;
        rec.rss_kb = rss_kb_now();
        recs[ri] = rec;
        if (!e && ((ri + 1) % o->eval_every == 0 || ri + 1 == o->rounds))
            eval_post(ev, y, nk, &recs[ri], ri);
    }
    fedreci_optimizer_destroy(opt);
    fedreci_mf_step_destroy(w);
    free(users);
    free(pick);
    free(sum);
    free(grad);
    return e;
}

/* ---- outputs ------------------------------------------------------------------------------ */

typedef struct summary {
    fedreci_metrics fed;
    int have_fed;
    fedreci_sim_baselines base;
    uint32_t clients, cohort, k, t, test_users, n_items, rounds_aborted, rounds_verified;
    uint32_t rounds_completed, session_errors;
    uint64_t dropped[4];
    double bytes_up, bytes_down, wall;
    int verified;
    const char *split;
} summary;

static fedrec_err path_join(char *buf, size_t n, const char *dir, const char *file)
{
    if ((size_t)snprintf(buf, n, "%s/%s", dir, file) >= n)
        return fedreci_error(FEDREC_ERR_INVALID, "sim: output path %s/%s too long", dir, file);
    return FEDREC_OK;
}

static fedrec_err write_rounds_csv(const run_opts *o, const round_rec *recs)
{
    char path[4096];
    fedrec_err e = path_join(path, sizeof path, o->out, "rounds.csv");
    if (e)
        return e;
    FILE *f = fopen(path, "w");
    if (!f)
        return fedreci_error(FEDREC_ERR_IO, "sim: cannot write %s", path);
    fprintf(f,
            "round,round_id,completed,verified,cohort,survivors,dropped,dropped_advertise,"
            "dropped_share,dropped_masked,dropped_unmask,hr_at_10,ndcg_at_10,recall_at_10,"
            "precision_at_10,map_at_10,coverage,bytes_up,bytes_down,bytes_up_per_client,"
            "bytes_down_per_client,stage0_ms,stage1_ms,stage2_ms,stage3_ms,round_seconds,rss_kb\n");
    for (uint32_t i = 0; i < o->rounds; i++) {
        const round_rec *r = &recs[i];
        uint32_t dr = r->dropped[0] + r->dropped[1] + r->dropped[2] + r->dropped[3];
        fprintf(f, "%u,%llu,%d,%s,%u,%u,%u,%u,%u,%u,%u,", i + 1, (unsigned long long)r->round_id,
                r->completed,
                r->verified == 1   ? "true"
                : r->verified == 0 ? "false"
                                   : "",
                r->cohort, r->survivors, dr, r->dropped[0], r->dropped[1], r->dropped[2],
                r->dropped[3]);
        if (r->evaluated)
            fprintf(f, "%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,", r->m.hr_at_k, r->m.ndcg_at_k,
                    r->m.recall_at_k, r->m.precision_at_k, r->m.map_at_k, r->m.coverage);
        else
            fprintf(f, ",,,,,,");
        double n = r->n_completed ? (double)r->n_completed : 1.0;
        fprintf(f, "%llu,%llu,%.0f,%.0f,%.1f,%.1f,%.1f,%.1f,%.3f,%llu\n",
                (unsigned long long)r->up_bytes, (unsigned long long)r->down_bytes,
                (double)r->up_bytes / n, (double)r->down_bytes / n, r->stage_ms[0], r->stage_ms[1],
                r->stage_ms[2], r->stage_ms[3], r->seconds, (unsigned long long)r->rss_kb);
    }
    int bad = ferror(f);
    if (fclose(f) || bad)
        return fedreci_error(FEDREC_ERR_IO, "sim: writing %s failed", path);
    return FEDREC_OK;
}

static fedrec_err write_summary(const run_opts *o, const summary *sm)
{
    char path[4096];
    fedrec_err e = path_join(path, sizeof path, o->out, "summary.json");
    if (e)
        return e;
    FILE *f = fopen(path, "w");
    if (!f)
        return fedreci_error(FEDREC_ERR_IO, "sim: cannot write %s", path);
    const fedreci_metrics *m = &sm->fed, *c = &sm->base.centralized, *p = &sm->base.popularity;
    double ratio = c->hr_at_k > 0 ? m->hr_at_k / c->hr_at_k : 0.0;
    fprintf(f, "{\n  \"hr_at_10\": %.6f,\n  \"ndcg_at_10\": %.6f,\n  \"recall_at_10\": %.6f,\n",
            m->hr_at_k, m->ndcg_at_k, m->recall_at_k);
    fprintf(f,
            "  \"precision_at_10\": %.6f,\n  \"map_at_10\": %.6f,\n  \"coverage_at_10\": %.6f,\n",
            m->precision_at_k, m->map_at_k, m->coverage);
    fprintf(f,
            "  \"centralized_hr_at_10\": %.6f,\n  \"centralized_ndcg_at_10\": %.6f,\n"
            "  \"centralized_recall_at_10\": %.6f,\n",
            c->hr_at_k, c->ndcg_at_k, c->recall_at_k);
    fprintf(f,
            "  \"popularity_hr_at_10\": %.6f,\n  \"popularity_ndcg_at_10\": %.6f,\n"
            "  \"popularity_recall_at_10\": %.6f,\n",
            p->hr_at_k, p->ndcg_at_k, p->recall_at_k);
    fprintf(f, "  \"ratio_to_centralized\": %.6f,\n", ratio);
    fprintf(f, "  \"rounds\": %u,\n  \"rounds_completed\": %u,\n  \"rounds_aborted\": %u,\n",
            o->rounds, sm->rounds_completed, sm->rounds_aborted);
    fprintf(f, "  \"clients\": %u,\n  \"cohort\": %u,\n  \"secagg\": \"%s\",\n", sm->clients,
            sm->cohort, secagg_names[o->secagg]);
    fprintf(f, "  \"neighbors\": %u,\n  \"threshold\": %u,\n  \"dropout\": %g,\n", sm->k, sm->t,
            o->dropout);
    fprintf(f, "  \"dropout_stage\": \"%s\",\n",
            o->dropout_stage < 0 ? "spread" : stage_names[o->dropout_stage]);
    fprintf(f,
            "  \"dropped_advertise\": %llu,\n  \"dropped_share\": %llu,\n"
            "  \"dropped_masked\": %llu,\n  \"dropped_unmask\": %llu,\n",
            (unsigned long long)sm->dropped[0], (unsigned long long)sm->dropped[1],
            (unsigned long long)sm->dropped[2], (unsigned long long)sm->dropped[3]);
    fprintf(f, "  \"bytes_up_per_client\": %.0f,\n  \"bytes_down_per_client\": %.0f,\n",
            sm->bytes_up, sm->bytes_down);
    fprintf(f, "  \"secagg_verified\": %s,\n", sm->verified ? "true" : "false");
    fprintf(f, "  \"secagg_rounds_verified\": %u,\n", sm->rounds_verified);
    if (o->secagg == SECAGG_OFF)
        fprintf(f, "  \"secagg_note\": \"--secagg off: plain-sum reference (core/mf "
                   "fedreci_mf_fed_round), no transport, no masking, nothing to verify\",\n");
    else if (sm->rounds_completed == 0)
        fprintf(f, "  \"secagg_note\": \"no round completed: no unmasked sum to check against "
                   "the oracle, so secagg_verified is false\",\n");
    fprintf(f, "  \"session_errors\": %u,\n", sm->session_errors);
    fprintf(f, "  \"transport\": \"%s\",\n",
            o->secagg == SECAGG_OFF ? "none"
            : o->tcp                ? "tcp"
                                    : "inproc");
    fprintf(f, "  \"factors\": %u,\n  \"alpha\": %g,\n  \"lambda\": %g,\n  \"lr\": %g,\n",
            o->factors, o->data.ds.alpha, o->lambda, o->lr);
    fprintf(f, "  \"clip\": %g,\n  \"seed\": %llu,\n  \"threads\": %u,\n  \"als_sweeps\": %u,\n",
            o->clip, (unsigned long long)o->seed, o->threads, o->sweeps);
    fprintf(f, "  \"items\": %u,\n  \"test_users\": %u,\n  \"split\": ", sm->n_items,
            sm->test_users);
    fedreci_sim_json_str(f, sm->split);
    fprintf(f, ",\n  \"data\": ");
    fedreci_sim_json_str(f, o->data.data);
    fprintf(f, ",\n  \"wall_seconds\": %.1f\n}\n", sm->wall);
    int bad = ferror(f);
    if (fclose(f) || bad)
        return fedreci_error(FEDREC_ERR_IO, "sim: writing %s failed", path);
    return FEDREC_OK;
}

/* hr_ndcg.svg with gnuplot (a warning, not an error, when gnuplot is missing). */
static void write_plot(const run_opts *o, const round_rec *recs, const summary *sm)
{
    char path[4096];
    if (path_join(path, sizeof path, o->out, "hr_ndcg.svg"))
        return;
    FILE *g = popen("gnuplot 2>/dev/null", "w");
    if (!g) {
        fprintf(stderr, "fedrec-sim: gnuplot not available; no plot\n");
        return;
    }
    const fedreci_metrics *c = &sm->base.centralized, *p = &sm->base.popularity;
    fprintf(g, "$d << EOD\n");
    for (uint32_t i = 0; i < o->rounds; i++)
        if (recs[i].evaluated)
            fprintf(g, "%u %.6f %.6f\n", i + 1, recs[i].m.hr_at_k, recs[i].m.ndcg_at_k);
    fprintf(g, "EOD\n");
    fprintf(g, "set terminal svg size 860,500 dynamic noenhanced font 'sans,12' "
               "background rgb 'white'\n");
    fprintf(g, "set output '%s'\n", path);
    if (o->secagg == SECAGG_OFF)
        fprintf(g,
                "set title 'fedrec-sim: %u clients, plain sum (no SecAgg), cohort %u, "
                "dropout %g'\n",
                sm->clients, sm->cohort, o->dropout);
    else
        fprintf(g, "set title 'fedrec-sim: %u clients, %s k=%u t=%u, cohort %u, dropout %g'\n",
                sm->clients, o->secagg == SECAGG_FULL ? "SecAgg" : "SecAgg+", sm->k, sm->t,
                sm->cohort, o->dropout);
    fprintf(g,
            "set xlabel 'round'\nset ylabel 'metric at 10 (test customers)'\n"
            "set key outside right center\nset grid\nset yrange [0:*]\n"
            "set xrange [0:%u]\n",
            o->rounds);
    /* the baselines as two-point lines across the rounds */
    fprintf(g, "$b << EOD\n0 %.6f %.6f %.6f %.6f\n%u %.6f %.6f %.6f %.6f\nEOD\n", c->hr_at_k,
            c->ndcg_at_k, p->hr_at_k, p->ndcg_at_k, o->rounds, c->hr_at_k, c->ndcg_at_k, p->hr_at_k,
            p->ndcg_at_k);
    fprintf(g, "plot $d using 1:2 with lines lw 2 lc rgb '#1f77b4' title 'HR@10 federated', \\\n"
               "  $d using 1:3 with lines lw 2 lc rgb '#d62728' title 'NDCG@10 federated', \\\n"
               "  $b using 1:2 with lines dt 2 lc rgb '#1f77b4' title 'HR@10 centralized ALS', \\\n"
               "  $b using 1:3 with lines dt 2 lc rgb '#d62728' title 'NDCG@10 centralized ALS', "
               "\\\n"
               "  $b using 1:4 with lines dt 3 lc rgb '#7f7f7f' title 'HR@10 popularity', \\\n"
               "  $b using 1:5 with lines dt 3 lc rgb '#8c564b' title 'NDCG@10 popularity'\n");
    if (pclose(g) != 0)
        fprintf(stderr, "fedrec-sim: gnuplot failed; %s may be missing\n", path);
}

static void print_row(const char *name, const fedreci_metrics *m)
{
    printf("%-34s %7.4f %8.4f %10.4f %13.4f\n", name, m->hr_at_k, m->ndcg_at_k, m->recall_at_k,
           m->precision_at_k);
}

static void print_table(const run_opts *o, const summary *sm)
{
    const fedreci_metrics *c = &sm->base.centralized;
    char name[80];
    printf("\n%-34s %7s %8s %10s %13s\n", "model (test customers, K = 10)", "HR@10", "NDCG@10",
           "recall@10", "precision@10");
    print_row("popularity", &sm->base.popularity);
    snprintf(name, sizeof name, "centralized ALS, %u factors", o->factors);
    print_row(name, c);
    snprintf(name, sizeof name, "federated, %s, round %u",
             o->secagg == SECAGG_OFF    ? "plain sum"
             : o->secagg == SECAGG_FULL ? "SecAgg"
                                        : "SecAgg+",
             o->rounds);
    print_row(name, &sm->fed);
    printf("%-34s %7.3f\n\n", "ratio to centralized (HR@10)",
           c->hr_at_k > 0 ? sm->fed.hr_at_k / c->hr_at_k : 0.0);
    printf("%-34s %u (%u test customers), %u items\n", "clients (training customers)", sm->clients,
           sm->test_users, sm->n_items);
    if (o->secagg == SECAGG_OFF)
        printf("%-34s off: plain-sum reference, cohort %u\n", "secure aggregation", sm->cohort);
    else
        printf("%-34s %s, cohort %u, k = %u neighbours, threshold t = %u\n", "secure aggregation",
               o->secagg == SECAGG_FULL ? "SecAgg" : "SecAgg+", sm->cohort, sm->k, sm->t);
    printf("%-34s %g at %s: %llu / %llu / %llu / %llu (advertise/share/masked/unmask)\n", "dropout",
           o->dropout, o->dropout_stage < 0 ? "every stage" : stage_names[o->dropout_stage],
           (unsigned long long)sm->dropped[0], (unsigned long long)sm->dropped[1],
           (unsigned long long)sm->dropped[2], (unsigned long long)sm->dropped[3]);
    printf("%-34s %u / %u\n", "rounds completed / aborted", sm->rounds_completed,
           sm->rounds_aborted);
    if (o->secagg == SECAGG_OFF)
        printf("%-34s n/a (no masking)\n", "unmasked sum == oracle sum");
    else if (sm->rounds_completed == 0)
        printf("%-34s n/a (no completed round)\n", "unmasked sum == oracle sum");
    else
        printf("%-34s %s (%u of %u completed rounds)\n", "unmasked sum == oracle sum",
               sm->verified ? "yes" : "NO", sm->rounds_verified, sm->rounds_completed);
    printf("%-34s %.1f KiB up, %.1f KiB down\n", "per client and round", sm->bytes_up / 1024.0,
           sm->bytes_down / 1024.0);
    printf("%-34s Adam lr %g, lambda %g, alpha %g, clip %g, seed %llu\n", "training", o->lr,
           o->lambda, o->data.ds.alpha, o->clip, (unsigned long long)o->seed);
    printf("%-34s %.1f s (%s)\n", "wall time", sm->wall,
           o->secagg == SECAGG_OFF ? "no transport"
           : o->tcp                ? "tcp://127.0.0.1"
                                   : "inproc://");
    printf("%-34s %s/rounds.csv, %s/summary.json, %s/hr_ndcg.svg\n", "outputs", o->out, o->out,
           o->out);
}

/* ---- the command ----------------------------------------------------------------------------- */

static fedrec_err make_dir(const char *dir)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf)
        return fedreci_error(FEDREC_ERR_INVALID, "sim: --out path too long");
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(buf, 0777);
            *p = '/';
        }
    if (mkdir(buf, 0777) != 0) {
        struct stat st;
        if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode))
            return fedreci_error(FEDREC_ERR_IO, "sim: cannot create the directory %s", dir);
    }
    return FEDREC_OK;
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

static fedrec_err sim_setup(sim *S, const run_opts *o, const fedreci_split *s,
                            const uint32_t *train_users, uint32_t n_train, const float *y0,
                            const char **codes)
{
    memset(S, 0, sizeof *S);
    pthread_mutex_init(&S->mu, NULL);
    pthread_cond_init(&S->cv, NULL);
    S->o = o;
    S->s = s;
    S->n_items = s->train.n_cols;
    S->k = o->factors;
    S->nk = (size_t)S->n_items * S->k;
    S->n_cl = n_train;
    S->cl = calloc(n_train, sizeof *S->cl);
    S->keys = sodium_malloc((size_t)n_train * 64u);
    S->pool_cap = 64;
    S->pool = calloc(S->pool_cap, sizeof *S->pool);
    S->reap = calloc(n_train, sizeof *S->reap);
    S->oracle = calloc(S->nk + 1, sizeof *S->oracle);
    S->oracle_ids = calloc(n_train, sizeof *S->oracle_ids);
    S->cache_y = malloc(S->nk * sizeof *S->cache_y);
    S->cache_gram = malloc((size_t)S->k * S->k * sizeof *S->cache_gram);
    S->y_new = malloc(S->nk * sizeof *S->y_new);
    if (!S->cl || !S->keys || !S->pool || !S->reap || !S->oracle || !S->oracle_ids || !S->cache_y ||
        !S->cache_gram || !S->y_new)
        return fedreci_error(FEDREC_ERR_NOMEM, "sim: state for %u clients", n_train);
    if (o->tcp) {
        /* two descriptors per client (both ends are in this process) */
        struct rlimit rl;
        rlim_t need = (rlim_t)n_train * 2u + 256u;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < need) {
            rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > need ? need : rl.rlim_max;
            setrlimit(RLIMIT_NOFILE, &rl);
            if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < need)
                return fedreci_error(FEDREC_ERR_INVALID,
                                     "sim: --transport tcp needs %llu file descriptors for %u "
                                     "clients; the limit is %llu (ulimit -n)",
                                     (unsigned long long)need, n_train,
                                     (unsigned long long)rl.rlim_cur);
        }
        int port = 0;
        fedrec_err e = free_tcp_port(&port);
        if (e)
            return e;
        snprintf(S->url, sizeof S->url, "tcp://127.0.0.1:%d", port);
    } else {
        snprintf(S->url, sizeof S->url, "inproc://fedrec-sim-%ld", (long)getpid());
    }
    for (uint32_t i = 0; i < n_train; i++) {
        sclient *c = &S->cl[i];
        c->S = S;
        c->user = train_users[i];
        c->sk = S->keys + (size_t)i * 64u;
        uint8_t seed[32], pk[32];
        derive32(o->seed, (uint64_t)train_users[i] + 1u, 0, "fedrec-sim-identity", seed);
        crypto_sign_seed_keypair(pk, c->sk, seed);
        sodium_memzero(seed, sizeof seed);
        c->id = fedreci_secagg_id_from_pk(pk); /* ids are self-certifying */
    }

    fedreci_coord_config cfg;
    fedreci_coord_config_default(&cfg);
    const char *urls[1] = {S->url};
    cfg.listen_urls = urls;
    cfg.n_listen = 1;
    cfg.n_contexts = n_train + n_train / 8 + 64;
    cfg.cohort_size = o->cohort < n_train ? o->cohort : n_train;
    cfg.min_cohort = 2;
    cfg.checkin_quorum = n_train; /* every client checks in: the draw sees them all */
    cfg.checkin_window_ms = 1000u * (o->stage_timeout_s * 4u + 600u);
    cfg.neighbors = o->secagg == SECAGG_FULL ? 0 : o->neighbors;
    cfg.threshold = o->threshold;
    cfg.clip = o->clip;
    for (int st = 0; st < 4; st++)
        cfg.stage_ms[st] = 1000u * o->stage_timeout_s;
    cfg.retry_after_ms = 100;
    cfg.send_timeout_ms = 60000;
    cfg.seed = o->seed;
    cfg.first_round_id = 1;
    cfg.max_rounds = o->rounds;
    cfg.opt.kind = FEDRECI_OPT_ADAM;
    cfg.opt.lr = (float)o->lr;
    cfg.opt.lambda = (float)o->lambda;
    cfg.opt.n_train = n_train;
    fedreci_coord_hooks hooks = {S, on_round_done, on_model_committed, NULL, NULL};
    fedreci_coord_model m = {1, S->n_items, S->k, y0, codes, NULL, 0};
    fedrec_err e = fedreci_coord_create(&S->coord, &cfg, &hooks, &m);
    if (!e)
        e = fedreci_coord_start(S->coord);
    for (uint32_t i = 0; i < n_train && !e; i++)
        e = client_connect(S, &S->cl[i]);
    return e;
}

int fedreci_sim_run(int argc, char **argv)
{
    static const char *cmd = "fedrec-sim run";
    run_opts o;
    int rc = parse_opts(&o, argc, argv);
    if (rc)
        return rc == 1 ? 0 : 2;
    double t_start = fedreci_sim_now();
    fedreci_dataset *d = NULL;
    fedreci_split *s = NULL;
    if (fedreci_sim_load(&o.data, cmd, &d, &s))
        return 1;
    fedrec_err e = make_dir(o.out);
    summary sm;
    memset(&sm, 0, sizeof sm);
    sm.split = o.data.split ? o.data.split : "lastbasket";
    sm.n_items = s->train.n_cols;
    sm.test_users = s->n_test_users;
    const fedreci_mf_csr *tr = &s->train;
    uint32_t *train_users = malloc(((size_t)tr->n_rows + 1) * sizeof *train_users);
    uint32_t n_train = 0;
    round_rec *recs = calloc(o.rounds, sizeof *recs);
    size_t nk = (size_t)tr->n_cols * o.factors;
    float *y = malloc(nk * sizeof *y);
    const char **codes = calloc(tr->n_cols, sizeof *codes);
    evaluator ev;
    memset(&ev, 0, sizeof ev);
    ev.y = malloc(nk * sizeof *ev.y);
    if (!e && (!train_users || !recs || !y || !codes || !ev.y))
        e = fedreci_error(FEDREC_ERR_NOMEM, "sim: buffers");
    if (!e) {
        for (uint32_t u = 0; u < tr->n_rows; u++)
            if (tr->indptr[u + 1] > tr->indptr[u])
                train_users[n_train++] = u;
        for (uint32_t i = 0; i < tr->n_cols; i++)
            codes[i] = fedreci_dataset_item_code(d, i);
        if (n_train < 2)
            e = fedreci_error(FEDREC_ERR_EMPTY, "sim: %u training customers; need 2", n_train);
    }
    sm.clients = n_train;
    sm.cohort = o.cohort < n_train ? o.cohort : n_train;
    if (!e && o.secagg != SECAGG_OFF && o.threshold) {
        /* the engine would clamp a threshold outside (k/2, k]: refuse it instead */
        uint32_t kk =
            o.secagg == SECAGG_FULL || o.neighbors >= sm.cohort - 1 ? sm.cohort - 1 : o.neighbors;
        if (o.threshold <= kk / 2 || o.threshold > kk) {
            e = fedreci_error(FEDREC_ERR_INVALID,
                              "--threshold %u with k = %u neighbours: the threshold must be in "
                              "(k/2, k], i.e. %u..%u",
                              o.threshold, kk, kk / 2 + 1, kk);
        }
    }
    if (!e && !o.quiet)
        printf("fedrec-sim: %s: %u clients, %u test customers, %u items; centralized "
               "baselines...\n",
               o.data.data, n_train, s->n_test_users, tr->n_cols);
    fflush(stdout);
    if (!e)
        e = fedreci_sim_compute_baselines(s, o.factors, (float)o.lambda, o.sweeps, o.threads,
                                          o.seed, &sm.base);
    if (!e && !o.quiet) {
        printf("fedrec-sim: popularity HR@10 %.4f, centralized ALS HR@10 %.4f; %u rounds of %u "
               "clients (%s)\n",
               sm.base.popularity.hr_at_k, sm.base.centralized.hr_at_k, o.rounds, sm.cohort,
               o.secagg == SECAGG_OFF ? "plain sum"
               : o.tcp                ? "tcp"
                                      : "inproc");
        fflush(stdout);
    }
    /* the initial model, the same for every mode */
    if (!e)
        fedreci_mf_init(y, tr->n_cols, o.factors, o.seed, 0.01f);

    pthread_mutex_init(&ev.mu, NULL);
    pthread_cond_init(&ev.cv, NULL);
    ev.o = &o;
    ev.s = s;
    ev.k = o.factors;
    ev.t0 = t_start;
    ev.n_rounds = o.rounds;
    ev.tty = isatty(STDOUT_FILENO);
    if (!e) {
        if (pthread_create(&ev.tid, NULL, eval_main, &ev) == 0)
            ev.started = 1;
        else
            e = fedreci_error(FEDREC_ERR_NOMEM, "sim: evaluation thread");
    }
    sim S;
    int have_sim = 0;
    if (!e && o.secagg != SECAGG_OFF) {
        have_sim = 1;
        e = sim_setup(&S, &o, s, train_users, n_train, y, codes);
        if (!e)
            e = run_secagg(&S, recs, y, &ev);
    } else if (!e) {
        e = run_plain(&o, s, n_train, train_users, o.factors, recs, y, &ev);
    }
    if (ev.started) {
        eval_post(&ev, NULL, 0, NULL, 0);
        pthread_mutex_lock(&ev.mu);
        ev.quit = 1;
        pthread_cond_broadcast(&ev.cv);
        pthread_mutex_unlock(&ev.mu);
        pthread_join(ev.tid, NULL);
        if (!e && ev.err)
            e = fedreci_error(ev.err, "evaluation: %s", ev.msg);
    }
    if (have_sim)
        sim_free(&S);
    if (ev.tty && !o.quiet)
        printf("\n");
    if (!e) {
        sm.verified = o.secagg != SECAGG_OFF;
        uint64_t up = 0, down = 0, part = 0;
        for (uint32_t i = 0; i < o.rounds; i++) {
            const round_rec *r = &recs[i];
            if (r->completed) {
                sm.rounds_completed++;
                if (r->verified == 1)
                    sm.rounds_verified++;
                else
                    sm.verified = 0;
            } else {
                sm.rounds_aborted++;
            }
            if (!sm.k && r->k) {
                sm.k = r->k;
                sm.t = r->t;
            }
            for (int st = 0; st < 4; st++)
                sm.dropped[st] += r->dropped[st];
            up += r->up_bytes;
            down += r->down_bytes;
            part += r->n_completed;
            sm.session_errors += r->session_errors;
        }
        if (!sm.rounds_completed)
            sm.verified = 0;
        sm.bytes_up = part ? (double)up / (double)part : 0.0;
        sm.bytes_down = part ? (double)down / (double)part : 0.0;
        const round_rec *last = &recs[o.rounds - 1];
        sm.fed = last->m;
        sm.have_fed = last->evaluated;
        if (!sm.have_fed)
            e = fedreci_error(FEDREC_ERR_INTERNAL, "sim: the last round was not evaluated");
    }
    sm.wall = fedreci_sim_now() - t_start;
    if (!e)
        e = write_rounds_csv(&o, recs);
    if (!e)
        e = write_summary(&o, &sm);
    if (!e) {
        write_plot(&o, recs, &sm);
        print_table(&o, &sm);
    }
    if (e)
        fprintf(stderr, "%s: error: %s: %s\n", cmd, fedrec_strerror(e), fedrec_errmsg());
    pthread_cond_destroy(&ev.cv);
    pthread_mutex_destroy(&ev.mu);
    free(ev.y);
    free(codes);
    free(y);
    free(recs);
    free(train_users);
    fedreci_split_destroy(s);
    fedreci_dataset_destroy(d);
    return e ? 1 : 0;
}
