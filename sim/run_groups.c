/*
 * fedrec-sim run --group-size G: federated training with SecAgg groups
 * (core/secagg/groups.h), in process or over MPI ranks.
 *
 * Each round the master draws the cohort (a seeded draw from the training
 * customers), cuts it into groups (fedreci_groups_assign on the sorted
 * client ids) and every group runs one SecAgg+ round on the core state
 * machines (core/secagg/secagg.h): its server object and its members'
 * client objects, driven stage by stage in one thread with no transport.
 * The master adds the groups' unmasked sums exactly (int64, a failed group
 * dropped whole), reads the sum back at the common scale, takes the
 * optimizer step and publishes the model.
 *
 * Memory: a simulated shopper holds nothing between rounds but its rows of
 * the training matrix (its identity key and client id are derived from
 * (seed, shopper) when it is drawn; its factor vector is solved in the
 * round). The round buffers, O(d) each (the update, the quantized and the
 * masked input: fedreci_secagg_client_create_unbuffered and
 * masked_input_into, the step workspace, the group's sum and its oracle),
 * belong to the worker that runs a group, not to the clients: one set per
 * rank whatever the cohort. A group's clients hold only their keys and
 * shares (O(k) each) while their group runs.
 *
 * Ranks: launched by mpirun (Open MPI), rank 0 is the master and every rank
 * (rank 0 included) runs the groups g with g % R == rank, one after the
 * other. A rank sends each group's result (a header and the d-word ring
 * sum) to rank 0 with MPI_Send; rank 0 has posted the receives before it
 * runs its own groups, adds every result in group order
 * (fedreci_groups_round_add), commits and broadcasts the model and its Gram
 * matrix. Since every random choice is a function of (seed, round, group,
 * client) and the master sum is exact, the run (summary.json apart from the
 * wall time and the command line) is the same bit for bit for every rank
 * count, and the same as the single-process run.
 *
 * Oracle: each group adds its members' quantized inputs in the clear (the
 * worker holds them: it lent q) and compares them with the group's unmasked
 * sum, word for word; a round is verified when every group that counted
 * matched.
 *
 * Bytes per client are the payloads of the messages the protocol would
 * carry (adverts, share bundles with their commitments, the model and Gram
 * download, the masked input, the reveals), without framing.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "core/err.h"
#include "core/mf/mf.h"
#include "core/rng.h"
#include "core/secagg/groups.h"
#include "core/secagg/secagg.h"
#include "sim/run.h"

#ifdef FEDREC_HAVE_MPI
#include <mpi.h>
#endif

/* ---- ranks ------------------------------------------------------------------------------ */

static int mpi_on, mpi_rank, mpi_size = 1;

int fedreci_run_mpi_init(void)
{
#ifdef FEDREC_HAVE_MPI
    /* only under a launcher: a plain run never touches MPI */
    if (!getenv("OMPI_COMM_WORLD_SIZE") && !getenv("PMIX_RANK") && !getenv("PMI_RANK"))
        return 0;
    int prov = 0;
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &prov) != MPI_SUCCESS)
        return -1;
    mpi_on = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &mpi_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &mpi_size);
#endif
    return 0;
}

void fedreci_run_mpi_finalize(int failed)
{
#ifdef FEDREC_HAVE_MPI
    if (!mpi_on)
        return;
    if (failed && mpi_size > 1)
        MPI_Abort(MPI_COMM_WORLD, 1); /* the other ranks would wait for us forever */
    MPI_Finalize();
    mpi_on = 0;
#else
    (void)failed;
#endif
}

int fedreci_run_mpi_rank(void)
{
    return mpi_rank;
}

int fedreci_run_mpi_size(void)
{
    return mpi_size;
}

#ifdef FEDREC_HAVE_MPI
/* Waits for n requests without spinning: Open MPI's blocking calls poll
 * (a rank waiting for the others burns its core), so test, sleep and test
 * again, leaving the core to the ranks that compute. The sleep starts at
 * 50 us and doubles up to 1 ms while nothing completes (a rank can wait for
 * seconds while the others finish their groups: each test costs a few us of
 * CPU); a completed request brings it back to 50 us (the transfers that
 * follow need both sides to make progress). */
static double wait_wall, wait_cpu; /* this rank's time in wait_all */
static double thread_cpu(void);
static void wait_all(MPI_Request *reqs, int n)
{
    double t0 = fedreci_sim_now(), c0 = thread_cpu();
    int left = 0;
    for (int i = 0; i < n; i++)
        left += reqs[i] != MPI_REQUEST_NULL;
    long sleep_ns = 50000;
    int *idx = malloc((size_t)(n > 0 ? n : 1) * sizeof *idx);
    while (left > 0) {
        int done = 0, all = 0;
        if (!idx) { /* no room for the indices: test them all at once */
            if (MPI_Testall(n, reqs, &all, MPI_STATUSES_IGNORE) != MPI_SUCCESS || all)
                break;
        } else if (MPI_Testsome(n, reqs, &done, idx, MPI_STATUSES_IGNORE) != MPI_SUCCESS ||
                   done == MPI_UNDEFINED) {
            break;
        }
        left -= done;
        if (left <= 0)
            break;
        if (done > 0)
            sleep_ns = 50000;
        struct timespec ts = {0, sleep_ns};
        nanosleep(&ts, NULL);
        if (!done && sleep_ns < 1000000)
            sleep_ns *= 2;
    }
    free(idx);
    wait_wall += fedreci_sim_now() - t0;
    wait_cpu += thread_cpu() - c0;
}
#endif

/* ---- one group's SecAgg round ------------------------------------------------------------ */

/* The header of a group's result, in 32-bit words before the d-word sum. */
enum {
    H_STATE, /* 1 completed, 2 failed */
    H_SURV,  /* survivors (sent a masked input) */
    H_DROP,  /* 4 words: vanished before each stage */
    H_VERIFIED = H_DROP + 4,
    H_ERRORS,    /* client calls that failed (the client then vanished) */
    H_COMPLETED, /* survivors that answered the unmask request */
    H_UP,        /* 2 words: payload bytes sent by the members */
    H_DOWN = H_UP + 2,
    H_K = H_DOWN + 2,
    H_T,
    H_WORDS = 16
};

/* The worker: the round buffers of whoever's round it runs. */
typedef struct gworker {
    fedreci_mf_step *step;
    float *x;         /* the client's update, nk floats */
    uint32_t *q;      /* the quantized input, d words (secure memory) */
    uint32_t *mk;     /* the masked input, d words */
    uint32_t *oracle; /* the group's clear sum, d words */
    /* the members of the group being run (room for the largest group) */
    uint32_t cap;
    uint64_t *ids;
    uint8_t (*pks)[32];
    uint8_t *sks; /* cap x 64, secure memory */
    fedreci_secagg_client **cl;
    int *drop;
} gworker;

/* Where a rank's training thread spent the rounds (seconds): wall and CPU
 * time running its groups, waiting for the other ranks (results, sends,
 * the model broadcast), rank 0's master step (adding the group sums, the
 * optimizer step, the Gram matrix), and the rest (drawing the cohort and
 * the groups: every rank does it). Printed per rank after the rounds. */
enum {
    T_GROUP_WALL,
    T_GROUP_CPU,
    T_WAIT_WALL,
    T_WAIT_CPU,
    T_MASTER_WALL,
    T_DRAW_WALL,
    T_DRAW_CPU,
    T_GROUPS_RUN,
    T_CLIENTS_RUN,
    T_N
};

typedef struct gsim {
    const fedreci_run_world *w;
    const fedreci_run_opts *o;
    uint32_t n_items, k;
    size_t nk, d;
    float *y, *gram;
    uint64_t *ids; /* client id per training customer, 0 until first drawn */
    gworker wk;
    double t[T_N]; /* this rank's time split (T_*) */
} gsim;

static void put64(uint32_t *h, uint64_t v)
{
    h[0] = (uint32_t)v;
    h[1] = (uint32_t)(v >> 32);
}

static uint64_t get64(const uint32_t *h)
{
    return (uint64_t)h[0] | (uint64_t)h[1] << 32;
}

/* The identity of training customer `user`: the same key as the engine
 * path (run_secagg.c) derives from (seed, user). */
static void identity(const fedreci_run_opts *o, uint32_t user, uint8_t pk[32], uint8_t sk[64])
{
    uint8_t seed[32];
    fedreci_run_derive32(o->seed, (uint64_t)user + 1u, 0, "fedrec-sim-identity", seed);
    crypto_sign_seed_keypair(pk, sk, seed);
    sodium_memzero(seed, sizeof seed);
}

static fedrec_err worker_init(gworker *wk, uint32_t n_items, uint32_t k, size_t d, uint32_t cap)
{
    size_t nk = (size_t)n_items * k;
    memset(wk, 0, sizeof *wk);
    wk->cap = cap;
    wk->x = malloc(nk * sizeof *wk->x);
    wk->q = sodium_malloc(d * sizeof *wk->q);
    wk->mk = malloc(d * sizeof *wk->mk);
    wk->oracle = malloc(d * sizeof *wk->oracle);
    wk->ids = calloc(cap, sizeof *wk->ids);
    wk->pks = calloc(cap, sizeof *wk->pks);
    wk->sks = sodium_malloc((size_t)cap * 64u);
    wk->cl = calloc(cap, sizeof *wk->cl);
    wk->drop = calloc(cap, sizeof *wk->drop);
    if (!wk->x || !wk->q || !wk->mk || !wk->oracle || !wk->ids || !wk->pks || !wk->sks || !wk->cl ||
        !wk->drop)
        return fedreci_error(FEDREC_ERR_NOMEM, "sim: a group worker (d = %zu, %u members)", d, cap);
    return fedreci_mf_step_create(&wk->step, n_items, k);
}

static void worker_free(gworker *wk)
{
    fedreci_mf_step_destroy(wk->step);
    free(wk->x);
    if (wk->q)
        sodium_free(wk->q);
    free(wk->mk);
    free(wk->oracle);
    free(wk->ids);
    free(wk->pks);
    if (wk->sks)
        sodium_free(wk->sks);
    free(wk->cl);
    free(wk->drop);
}

/* The group's SecAgg parameters: the engine's k and t rules for a group of
 * n, the round's common scale, a graph seed of (seed, round, group). */
static void group_params(const fedreci_run_opts *o, uint32_t ri, uint32_t g, uint32_t n, size_t d,
                         double scale, fedreci_secagg_params *p)
{
    memset(p, 0, sizeof *p);
    p->round_id = (uint64_t)ri + 1u;
    p->n = n;
    p->k = o->secagg == FEDRECI_RUN_SECAGG_FULL || o->neighbors >= n - 1 ? n - 1 : o->neighbors;
    uint32_t t = o->threshold ? o->threshold : p->k / 2 + 1;
    p->t = t > p->k ? p->k : t <= p->k / 2 ? p->k / 2 + 1 : t;
    p->d = (uint32_t)d;
    p->clip = o->clip;
    p->scale = scale;
    p->max_weight = 1;
    fedreci_run_derive32(o->seed, p->round_id, g, "fedrec-sim-group-graph", p->graph_seed);
}

static void drop_client(gworker *wk, uint32_t i)
{
    fedreci_secagg_client_destroy(wk->cl[i]);
    wk->cl[i] = NULL;
}

/* A client call failed: the client vanishes (like a session that fails). */
static void client_failed(gworker *wk, uint32_t i, uint32_t *h)
{
    h[H_ERRORS]++;
    drop_client(wk, i);
}

/* Runs group g of round ri: members users[0..n-1] (client ids ascending),
 * result header and sum into res (H_WORDS + d words). Only allocation
 * failures and failed model steps are errors; an aborted SecAgg round is a
 * failed group (res[H_STATE] = 2). */
static fedrec_err run_group(gsim *G, uint32_t ri, uint32_t g, const uint32_t *users, uint32_t n,
                            double scale, uint32_t *res)
{
    const fedreci_run_opts *o = G->o;
    const fedreci_mf_csr *r = &G->w->s->train;
    gworker *wk = &G->wk;
    uint32_t *h = res, *sum = res + H_WORDS;
    memset(h, 0, H_WORDS * sizeof *h);
    h[H_STATE] = 2;
    fedreci_secagg_params p;
    group_params(o, ri, g, n, G->d, scale, &p);
    h[H_K] = p.k;
    h[H_T] = p.t;
    uint64_t up = 0, down = 0;
    const uint64_t advert_bytes = 8 + 32 + 32 + 64,
                   bundle_bytes = 104 + FEDRECI_SECAGG_COMMIT_BYTES;
    for (uint32_t i = 0; i < n; i++) {
        identity(o, users[i], wk->pks[i], wk->sks + (size_t)i * 64u);
        wk->ids[i] = fedreci_secagg_id_from_pk(wk->pks[i]);
        wk->drop[i] = fedreci_run_dropout_of(o, ri, wk->ids[i]);
        wk->cl[i] = NULL;
    }
    fedreci_secagg_server *srv = NULL;
    fedrec_err e = fedreci_secagg_server_create(&srv, &p, wk->ids, (const uint8_t(*)[32])wk->pks);
    if (e)
        goto out;
    /* stage 0: advertise */
    for (uint32_t i = 0; i < n && !e; i++) {
        if (wk->drop[i] == 0) {
            h[H_DROP + 0]++;
            continue;
        }
        uint8_t rseed[32];
        fedreci_run_derive32(o->seed, ri, wk->ids[i], "fedrec-sim-rounding", rseed);
        e = fedreci_secagg_client_create_unbuffered(&wk->cl[i], &p, wk->ids[i],
                                                    wk->sks + (size_t)i * 64u, rseed);
        sodium_memzero(rseed, sizeof rseed);
        if (e)
            goto out; /* out of memory */
        fedreci_secagg_advert a;
        if (fedreci_secagg_client_advertise(wk->cl[i], &a) ||
            fedreci_secagg_server_add_advert(srv, &a)) {
            client_failed(wk, i, h);
            continue;
        }
        up += advert_bytes;
    }
    const fedreci_secagg_advert *roster = NULL;
    size_t m = 0;
    if (fedreci_secagg_server_close_advertise(srv, &roster, &m))
        goto aborted;
    /* stage 0, the graph seed step: every member reveals its contribution */
    {
        uint64_t *rids = malloc((m ? m : 1) * sizeof *rids);
        if (!rids) {
            e = fedreci_error(FEDREC_ERR_NOMEM, "groups: roster of %zu", m);
            goto out;
        }
        for (size_t j = 0; j < m; j++)
            rids[j] = roster[j].client_id;
        const uint8_t *digest = fedreci_secagg_server_seed_digest(srv);
        for (uint32_t i = 0; i < n; i++) {
            if (!wk->cl[i])
                continue;
            uint8_t contribution[32];
            if (fedreci_secagg_client_reveal(wk->cl[i], rids, m, digest, contribution) ||
                fedreci_secagg_server_add_reveal(srv, wk->ids[i], contribution)) {
                client_failed(wk, i, h);
                continue;
            }
            up += 32;
        }
        free(rids);
    }
    const uint8_t *contribs = NULL;
    if (fedreci_secagg_server_close_reveal(srv, &contribs))
        goto aborted;
    const uint8_t *missing = fedreci_secagg_server_seed_missing(srv);
    /* stage 1: share keys */
    for (uint32_t i = 0; i < n; i++) {
        if (!wk->cl[i])
            continue;
        const fedreci_secagg_ciphertext *cts;
        size_t n_cts;
        down += m * (advert_bytes + 32);
        if (fedreci_secagg_client_share_keys_missing(wk->cl[i], roster, m, contribs, missing, &cts,
                                                     &n_cts)) {
            client_failed(wk, i, h);
            continue;
        }
        if (wk->drop[i] == 1) {
            h[H_DROP + 1]++;
            drop_client(wk, i);
            continue;
        }
        if (fedreci_secagg_server_add_shares(srv, wk->ids[i], cts, n_cts)) {
            client_failed(wk, i, h);
            continue;
        }
        up += n_cts * bundle_bytes;
    }
    if (fedreci_secagg_server_close_share_keys(srv))
        goto aborted;
    /* stage 2: the model step and the masked input, in the worker's buffers */
    memset(wk->oracle, 0, G->d * sizeof *wk->oracle);
    for (uint32_t i = 0; i < n && !e; i++) {
        if (!wk->cl[i])
            continue;
        if (wk->drop[i] == 2) {
            h[H_DROP + 2]++;
            drop_client(wk, i);
            continue;
        }
        const fedreci_secagg_ciphertext *in;
        size_t n_in;
        if (fedreci_secagg_server_shares_for(srv, wk->ids[i], &in, &n_in)) {
            client_failed(wk, i, h);
            continue;
        }
        down += n_in * bundle_bytes + (G->nk + (size_t)G->k * G->k) * sizeof(float);
        uint32_t u = users[i];
        uint64_t lo = r->indptr[u];
        fedreci_mf_user mu = {r->indices + lo, r->conf + lo, (uint32_t)(r->indptr[u + 1] - lo)};
        float xu[FEDRECI_RUN_MAX_FACTORS];
        e = fedreci_mf_client_step(wk->step, G->y, G->gram, G->n_items, G->k, (float)o->lambda, &mu,
                                   xu, wk->x, NULL);
        sodium_memzero(xu, sizeof xu);
        if (e)
            goto out;
        if (fedreci_secagg_client_masked_input_into(wk->cl[i], in, n_in, wk->x, 1, wk->q, wk->mk,
                                                    NULL)) {
            client_failed(wk, i, h);
            continue;
        }
        if (fedreci_secagg_server_add_masked_input(srv, wk->ids[i], wk->mk, G->d)) {
            client_failed(wk, i, h);
            continue;
        }
        for (size_t j = 0; j < G->d; j++)
            wk->oracle[j] += wk->q[j]; /* mod 2^32 */
        up += G->d * sizeof(uint32_t);
    }
    sodium_memzero(wk->q, G->d * sizeof *wk->q);
    const uint64_t *sv, *dr;
    size_t ns, nd;
    if (fedreci_secagg_server_close_masked_input(srv, &sv, &ns, &dr, &nd))
        goto aborted;
    h[H_SURV] = (uint32_t)ns;
    /* stage 3, the consistency step: each survivor endorses the set */
    for (uint32_t i = 0; i < n; i++) {
        if (!wk->cl[i])
            continue;
        if (wk->drop[i] == 3) {
            h[H_DROP + 3]++;
            drop_client(wk, i);
            continue;
        }
        const fedreci_secagg_tag *tg;
        size_t nt;
        down += (ns + nd) * sizeof(uint64_t);
        if (fedreci_secagg_client_consistency(wk->cl[i], sv, ns, dr, nd, &tg, &nt) ||
            fedreci_secagg_server_add_consistency(srv, wk->ids[i], tg, nt,
                                                  fedreci_secagg_client_endorsement(wk->cl[i]))) {
            client_failed(wk, i, h);
            continue;
        }
        up += nt * sizeof(fedreci_secagg_tag) + FEDRECI_SECAGG_SIG_BYTES;
    }
    if (fedreci_secagg_server_close_consistency(srv))
        goto aborted;
    /* stage 3: unmask, with the endorsements relayed */
    for (uint32_t i = 0; i < n; i++) {
        if (!wk->cl[i])
            continue;
        const fedreci_secagg_reveal *rv;
        size_t n_rv;
        const fedreci_secagg_tag *tg;
        size_t nt;
        if (fedreci_secagg_server_tags_for(srv, wk->ids[i], &tg, &nt)) {
            client_failed(wk, i, h);
            continue;
        }
        down += nt * sizeof(fedreci_secagg_tag);
        if (fedreci_secagg_client_unmask(wk->cl[i], tg, nt, &rv, &n_rv) ||
            fedreci_secagg_server_add_unmask(srv, wk->ids[i], rv, n_rv)) {
            client_failed(wk, i, h);
            continue;
        }
        up += n_rv * sizeof(fedreci_secagg_reveal);
        h[H_COMPLETED]++;
    }
    if (fedreci_secagg_server_finish(srv, sum, G->d))
        goto aborted;
    h[H_STATE] = 1;
    h[H_VERIFIED] = memcmp(sum, wk->oracle, G->d * sizeof *sum) == 0;
    put64(h + H_UP, up);
    put64(h + H_DOWN, down);
    goto out;
aborted:
    fedreci_error_clear();
    h[H_STATE] = 2;
out:
    for (uint32_t i = 0; i < n; i++)
        if (wk->cl[i])
            drop_client(wk, i);
    sodium_memzero(wk->sks, (size_t)n * 64u);
    fedreci_secagg_server_destroy(srv);
    return e;
}

/* CPU seconds of the calling thread (the rank's training thread: the
 * evaluator runs on another). */
static double thread_cpu(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
        return 0;
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- the master ----------------------------------------------------------------------------- */

typedef struct pick {
    uint64_t id;
    uint32_t user;
} pick;

static int cmp_pick(const void *a, const void *b)
{
    const pick *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* The cohort of round ri: a seeded partial Fisher-Yates draw of `cohort`
 * training customers, sorted by client id. perm: n_train scratch. */
static void draw_cohort(gsim *G, uint32_t ri, uint32_t cohort, uint32_t *perm, pick *out)
{
    const uint32_t n = G->w->n_train;
    memcpy(perm, G->w->train_users, (size_t)n * sizeof *perm);
    uint64_t st = fedreci_rng_mix(fedreci_rng_mix(G->o->seed ^ 0x67726f7570636f68ull) ^ ri);
    for (uint32_t i = 0; i < cohort; i++) {
        uint32_t j = i + (uint32_t)(fedreci_rng_mix(st + i) % (n - i));
        uint32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    for (uint32_t i = 0; i < cohort; i++) {
        uint32_t u = perm[i];
        if (!G->ids[u]) {
            uint8_t pk[32], sk[64];
            identity(G->o, u, pk, sk);
            sodium_memzero(sk, sizeof sk);
            G->ids[u] = fedreci_secagg_id_from_pk(pk);
        }
        out[i].id = G->ids[u];
        out[i].user = u;
    }
    qsort(out, cohort, sizeof *out, cmp_pick);
}

/* Adds one group's header into the round's record. */
static void tally(fedreci_run_round *rec, const uint32_t *h)
{
    for (int s = 0; s < 4; s++)
        rec->dropped[s] += h[H_DROP + s];
    rec->session_errors += h[H_ERRORS];
    if (!rec->k && h[H_K]) {
        rec->k = h[H_K];
        rec->t = h[H_T];
    }
    if (h[H_STATE] == 1) {
        rec->survivors += h[H_SURV];
        rec->n_completed += h[H_COMPLETED];
        rec->up_bytes += get64(h + H_UP);
        rec->down_bytes += get64(h + H_DOWN);
    }
}

typedef struct round_io {
    uint32_t n_groups;
    uint32_t *res;  /* this rank's result buffer, H_WORDS + d */
    uint32_t *recv; /* rank 0: the other ranks' results, n_groups x (H_WORDS + d) */
} round_io;

/* One round on every rank; rank 0 commits into y and fills rec. */
static fedrec_err groups_round(gsim *G, fedreci_optimizer *opt, float *grad, uint32_t ri,
                               uint32_t cohort, uint32_t *perm, pick *cpick, uint64_t *cids,
                               uint32_t *cusers, uint32_t *group_of, fedreci_run_round *rec,
                               uint32_t *res_buf, uint32_t **recv_buf)
{
    const fedreci_run_opts *o = G->o;
    const size_t rw = H_WORDS + G->d;
    memset(rec, 0, sizeof *rec);
    rec->round_id = (uint64_t)ri + 1u;
    rec->cohort = cohort;
    rec->verified = -1;
    double td = fedreci_sim_now(), cd = thread_cpu();
    draw_cohort(G, ri, cohort, perm, cpick);
    for (uint32_t i = 0; i < cohort; i++)
        cids[i] = cpick[i].id;
    uint32_t n_groups = fedreci_groups_count(cohort, o->group_size, 2, 0);
    fedrec_err e = n_groups ? fedreci_groups_assign(cids, cohort, n_groups, 2, o->seed,
                                                    rec->round_id, group_of)
                            : fedreci_error(FEDREC_ERR_INVALID, "cohort of %u: no group", cohort);
    if (e)
        return e;
    uint32_t nmax = fedreci_groups_size(cohort, n_groups, 0);
    double scale = fedreci_groups_scale(nmax, o->clip);
    fedreci_secagg_params common;
    group_params(o, ri, 0, nmax, G->d, scale, &common);
    fedreci_groups_round *gr = NULL;
    if (mpi_rank == 0)
        e = fedreci_groups_round_create(&gr, &common, n_groups, (n_groups + 1) / 2, nmax);
    G->t[T_DRAW_WALL] += fedreci_sim_now() - td;
    G->t[T_DRAW_CPU] += thread_cpu() - cd;
    if (e)
        return e;
#ifdef FEDREC_HAVE_MPI
    MPI_Request *reqs = NULL;
    if (mpi_on && mpi_size > 1 && mpi_rank == 0) {
        uint32_t *rb = realloc(*recv_buf, (size_t)n_groups * rw * sizeof *rb);
        reqs = calloc(n_groups, sizeof *reqs);
        if (!rb || !reqs) {
            free(reqs);
            fedreci_groups_round_destroy(gr);
            if (rb)
                *recv_buf = rb;
            return fedreci_error(FEDREC_ERR_NOMEM, "sim: receive buffers for %u groups", n_groups);
        }
        *recv_buf = rb;
        for (uint32_t g = 0; g < n_groups; g++) {
            reqs[g] = MPI_REQUEST_NULL;
            if ((int)(g % (uint32_t)mpi_size) != 0)
                MPI_Irecv(rb + (size_t)g * rw, (int)rw, MPI_UINT32_T, (int)(g % (uint32_t)mpi_size),
                          (int)g, MPI_COMM_WORLD, &reqs[g]);
        }
    }
    /* the other ranks send each group's result as soon as it is ready and
       go on with the next group, one buffer per group of theirs */
    uint32_t n_mine = 0, k_mine = 0;
    for (uint32_t g = (uint32_t)mpi_rank; g < n_groups; g += (uint32_t)mpi_size)
        n_mine++;
    MPI_Request *sreqs = NULL;
    if (mpi_on && mpi_rank != 0 && n_mine) {
        uint32_t *sb = realloc(*recv_buf, (size_t)n_mine * rw * sizeof *sb);
        sreqs = calloc(n_mine, sizeof *sreqs);
        if (!sb || !sreqs) {
            free(sreqs);
            if (sb)
                *recv_buf = sb;
            return fedreci_error(FEDREC_ERR_NOMEM, "sim: send buffers for %u groups", n_mine);
        }
        *recv_buf = sb;
        for (uint32_t k = 0; k < n_mine; k++)
            sreqs[k] = MPI_REQUEST_NULL;
    }
#else
    (void)recv_buf;
    (void)rw;
#endif
    for (uint32_t g = (uint32_t)mpi_rank; g < n_groups && !e; g += (uint32_t)mpi_size) {
        uint32_t n = 0;
        for (uint32_t i = 0; i < cohort; i++)
            if (group_of[i] == g)
                cusers[n++] = cpick[i].user;
#ifdef FEDREC_HAVE_MPI
        if (sreqs)
            res_buf = *recv_buf + (size_t)k_mine * rw;
#endif
        double tg = fedreci_sim_now(), cg = thread_cpu();
        e = run_group(G, ri, g, cusers, n, scale, res_buf);
        G->t[T_GROUP_WALL] += fedreci_sim_now() - tg;
        G->t[T_GROUP_CPU] += thread_cpu() - cg;
        G->t[T_GROUPS_RUN] += 1;
        G->t[T_CLIENTS_RUN] += n;
        if (e)
            break;
        double tm = fedreci_sim_now();
        if (mpi_rank == 0) {
            tally(rec, res_buf);
            if (res_buf[H_STATE] == 1 &&
                !fedreci_groups_round_add(gr, g, res_buf + H_WORDS, G->d, res_buf[H_SURV])) {
                if (!res_buf[H_VERIFIED])
                    rec->verified = 0;
            } else {
                fedreci_error_clear();
                fedreci_groups_round_fail(gr, g);
            }
            G->t[T_MASTER_WALL] += fedreci_sim_now() - tm;
        }
#ifdef FEDREC_HAVE_MPI
        else if (sreqs) {
            MPI_Isend(res_buf, (int)rw, MPI_UINT32_T, 0, (int)g, MPI_COMM_WORLD, &sreqs[k_mine++]);
        }
#endif
    }
#ifdef FEDREC_HAVE_MPI
    if (sreqs) {
        if (!e)
            wait_all(sreqs, (int)k_mine);
        free(sreqs);
    }
#endif
#ifdef FEDREC_HAVE_MPI
    if (reqs) {
        wait_all(reqs, (int)n_groups);
        free(reqs);
        double tm = fedreci_sim_now();
        for (uint32_t g = 0; g < n_groups && !e; g++) {
            if (g % (uint32_t)mpi_size == 0)
                continue;
            const uint32_t *h = *recv_buf + (size_t)g * rw;
            tally(rec, h);
            if (h[H_STATE] == 1 && !fedreci_groups_round_add(gr, g, h + H_WORDS, G->d, h[H_SURV])) {
                if (!h[H_VERIFIED])
                    rec->verified = 0;
            } else {
                fedreci_error_clear();
                fedreci_groups_round_fail(gr, g);
            }
        }
        G->t[T_MASTER_WALL] += fedreci_sim_now() - tm;
    }
#endif
    double tm = fedreci_sim_now();
    if (!e && mpi_rank == 0) {
        uint32_t done = 0, failed = 0;
        uint64_t weight = 0;
        fedreci_groups_round_counts(gr, &done, &failed, NULL, &weight);
        rec->groups = n_groups;
        rec->groups_failed = failed;
        if (fedreci_groups_round_decide(gr, 1) == FEDRECI_GROUPS_COMMIT) {
            fedreci_groups_round_dequantize(gr, grad);
            int applied = 0;
            e = fedreci_optimizer_step(opt, G->y, grad, (double)weight, &applied);
            rec->completed = !e && applied;
            if (!e && !applied)
                snprintf(rec->reason, sizeof rec->reason, "total weight 0: no update");
        } else {
            snprintf(rec->reason, sizeof rec->reason, "%u of %u groups failed", failed, n_groups);
        }
        if (rec->completed && rec->verified != 0)
            rec->verified = 1;
        if (!rec->completed)
            rec->verified = -1;
        if (rec->completed && failed)
            snprintf(rec->reason, sizeof rec->reason, "%u of %u groups failed, dropped whole",
                     failed, n_groups);
        if (!e)
            fedreci_mf_gram(G->y, G->n_items, G->k, G->gram);
    }
    G->t[T_MASTER_WALL] += fedreci_sim_now() - tm;
    fedreci_groups_round_destroy(gr);
    return e;
}

/* Rank 0 sends the model after a round and its Gram matrix to every rank. */
static void publish(gsim *G)
{
#ifdef FEDREC_HAVE_MPI
    if (mpi_on && mpi_size > 1) {
        MPI_Request req[2];
        MPI_Ibcast(G->y, (int)G->nk, MPI_FLOAT, 0, MPI_COMM_WORLD, &req[0]);
        MPI_Ibcast(G->gram, (int)(G->k * G->k), MPI_FLOAT, 0, MPI_COMM_WORLD, &req[1]);
        wait_all(req, 2);
    }
#else
    (void)G;
#endif
}

/* One line per rank: where its training thread spent the rounds (T_*),
 * and the utilization (CPU in groups over the wall time of the rounds). */
static void print_split(const double *split, double t_train)
{
    for (int r = 0; r < mpi_size; r++) {
        const double *t = split + (size_t)r * (T_N + 2);
        double cpu = t[T_N + 1];
        printf("fedrec-sim: rank %d: %.0f groups (%.0f clients): groups %.1f s wall, %.1f s CPU "
               "(%.1f client-rounds per CPU second); waiting %.2f s wall, %.2f s CPU; master "
               "%.2f s; cohort draw %.2f s wall, %.2f s CPU; training thread %.1f s CPU of %.1f s "
               "(groups' CPU %.1f%% of the wall time)\n",
               r, t[T_GROUPS_RUN], t[T_CLIENTS_RUN], t[T_GROUP_WALL], t[T_GROUP_CPU],
               t[T_GROUP_CPU] > 0 ? t[T_CLIENTS_RUN] / t[T_GROUP_CPU] : 0.0, t[T_WAIT_WALL],
               t[T_WAIT_CPU], t[T_MASTER_WALL], t[T_DRAW_WALL], t[T_DRAW_CPU], cpu, t_train,
               t_train > 0 ? 100.0 * t[T_GROUP_CPU] / t_train : 0.0);
    }
}

fedrec_err fedreci_run_groups(const fedreci_run_world *w, float *y, fedreci_run_round *recs,
                              fedreci_run_evaluator *ev)
{
    const fedreci_run_opts *o = w->o;
    gsim G;
    memset(&G, 0, sizeof G);
    G.w = w;
    G.o = o;
    G.n_items = w->s->train.n_cols;
    G.k = o->factors;
    G.nk = (size_t)G.n_items * G.k;
    G.d = G.nk + 1;
    G.y = y;
    uint32_t cohort = o->cohort < w->n_train ? o->cohort : w->n_train;
    uint32_t n_groups = fedreci_groups_count(cohort, o->group_size, 2, 0);
    uint32_t cap = n_groups ? fedreci_groups_size(cohort, n_groups, 0) : cohort;
    G.gram = malloc((size_t)G.k * G.k * sizeof *G.gram);
    G.ids = calloc(w->n_train ? (size_t)w->s->train.n_rows : 1, sizeof *G.ids);
    uint32_t *perm = malloc((size_t)w->n_train * sizeof *perm);
    pick *cpick = malloc((size_t)cohort * sizeof *cpick);
    uint64_t *cids = malloc((size_t)cohort * sizeof *cids);
    uint32_t *cusers = malloc((size_t)cohort * sizeof *cusers);
    uint32_t *group_of = malloc((size_t)cohort * sizeof *group_of);
    uint32_t *res = malloc((H_WORDS + G.d) * sizeof *res);
    float *grad = mpi_rank == 0 ? malloc(G.nk * sizeof *grad) : NULL;
    uint32_t *recv = NULL;
    fedreci_optimizer *opt = NULL;
    fedrec_err e = FEDREC_OK;
    if (!G.gram || !G.ids || !perm || !cpick || !cids || !cusers || !group_of || !res ||
        (mpi_rank == 0 && !grad))
        e = fedreci_error(FEDREC_ERR_NOMEM, "sim: group state for %u clients", w->n_train);
    if (!e)
        e = worker_init(&G.wk, G.n_items, G.k, G.d, cap);
    fedreci_opt_params op = {FEDRECI_OPT_ADAM, (float)o->lr, (float)o->beta1, 0.999f, 1e-8f,
                             (float)o->lambda, w->n_train};
    if (!e && mpi_rank == 0)
        e = fedreci_optimizer_create(&opt, &op, G.n_items, G.k);
    if (!e)
        fedreci_mf_gram(y, G.n_items, G.k, G.gram);
    double t_train = 0, cpu0 = thread_cpu();
    uint64_t client_rounds = 0;
    /* an error on any rank ends the loop there; fedreci_sim_run then aborts
       the job (fedreci_run_mpi_finalize), so no rank waits for it */
    for (uint32_t ri = 0; ri < o->rounds && !e; ri++) {
        double t0 = fedreci_sim_now();
        fedreci_run_round rec;
        e = groups_round(&G, opt, grad, ri, cohort, perm, cpick, cids, cusers, group_of, &rec, res,
                         &recv);
        if (e)
            break;
        publish(&G);
        rec.seconds = fedreci_sim_now() - t0;
        t_train += rec.seconds;
        client_rounds += cohort;
        rec.rss_kb = fedreci_run_rss_kb();
        rec.heap_kb = fedreci_run_heap_kb();
        if (mpi_rank == 0 && !o->quiet) {
            printf("fedrec-sim: round %u/%u: %u clients in %u groups (%u failed), survivors %u, "
                   "%s, %.1f s, RSS %.0f MiB\n",
                   ri + 1, o->rounds, rec.cohort, rec.groups, rec.groups_failed, rec.survivors,
                   !rec.completed      ? "aborted"
                   : rec.verified == 1 ? "sum verified"
                                       : "SUM MISMATCH",
                   rec.seconds, rec.rss_kb / 1024.0);
            fflush(stdout);
        }
        if (mpi_rank == 0) {
            recs[ri] = rec;
            if (ev && ((ri + 1) % o->eval_every == 0 || ri + 1 == o->rounds))
                fedreci_run_evaluator_post(ev, y, G.nk, &recs[ri], ri);
        }
    }
    double cpu = thread_cpu() - cpu0; /* this rank's training thread */
#ifdef FEDREC_HAVE_MPI
    G.t[T_WAIT_WALL] = wait_wall;
    G.t[T_WAIT_CPU] = wait_cpu;
#endif
    /* every rank's split, on rank 0 (row r = rank r; up to 64 ranks) */
    static double split[64 * (T_N + 2)];
    double mine[T_N + 2];
    memcpy(mine, G.t, sizeof G.t);
    mine[T_N] = t_train;
    mine[T_N + 1] = cpu;
    memcpy(split, mine, sizeof mine);
#ifdef FEDREC_HAVE_MPI
    if (!e && mpi_on && mpi_size > 1) {
        double all = 0;
        MPI_Reduce(&cpu, &all, 1, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
        cpu = all;
        if (mpi_size <= 64)
            MPI_Gather(mine, T_N + 2, MPI_DOUBLE, split, T_N + 2, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    }
#endif
    if (!e && mpi_rank == 0 && !o->quiet && t_train > 0) {
        printf("fedrec-sim: groups: %u rounds of %u clients in %u groups on %d rank%s: "
               "%.1f s training (evaluation excluded), %.1f client-rounds/s, %.1f per rank; "
               "%.1f CPU s, %.1f client-rounds per CPU second\n",
               o->rounds, cohort, n_groups, mpi_size, mpi_size > 1 ? "s" : "", t_train,
               (double)client_rounds / t_train, (double)client_rounds / t_train / mpi_size, cpu,
               cpu > 0 ? (double)client_rounds / cpu : 0.0);
        if (mpi_size <= 64)
            print_split(split, t_train);
        fflush(stdout);
    }
    fedreci_optimizer_destroy(opt);
    worker_free(&G.wk);
    free(recv);
    free(grad);
    free(res);
    free(group_of);
    free(cusers);
    free(cids);
    free(cpick);
    free(perm);
    free(G.ids);
    free(G.gram);
    return e;
}
