/* coordinator/engine: the round engine over nng (see engine.h). */
#include "coordinator/engine.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/supplemental/tls/tls.h>
#include <sodium.h>

#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "proto/wire.h"

/* ---- small helpers ---------------------------------------------------------- */

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static fedrec_err nng_fail(int rv, const char *what, const char *url)
{
    return fedreci_error(FEDREC_ERR_TRANSPORT, "coordinator: %s%s%s: %s", what, url ? " " : "",
                         url ? url : "", nng_strerror(rv));
}

/* ---- state ------------------------------------------------------------------- */

enum { CX_IDLE = 0, CX_RECV, CX_PARKED, CX_SENDING };

typedef struct cctx {
    fedreci_coord *c;
    nng_ctx ctx;
    nng_aio *aio;
    int state;
    uint32_t idx;
} cctx;

/* One registry entry (open-addressing table keyed by client id). */
typedef struct crec {
    uint64_t id;
    uint8_t used;
    uint8_t opted_in;
    uint8_t pk[32];
    int32_t wait_ctx; /* parked check-in, -1 none */
    uint64_t bytes_update, bytes_total;
    uint64_t msg_round;
    uint32_t msgs;
    uint32_t pipe;       /* nng pipe id of the connection of its last check-in (0: none) */
    uint64_t dl_version; /* the model version last downloaded in full */
    uint32_t dls;        /* full downloads of dl_version */
} crec;

/* An immutable published model version, shared by reference with encoders. */
typedef struct pmodel {
    atomic_int refs;
    uint64_t version;
    uint32_t n_items, k;
    float *y;
    float *gram;
    uint8_t checksum[FEDRECI_WIRE_CHECKSUM_BYTES];
} pmodel;

typedef struct member {
    uint8_t acc;  /* bit s: stage s message accepted */
    uint8_t gone; /* declared gone (fedreci_coord_client_gone) or its
                     connection closed (pipe_removed): sends nothing more */
    int32_t park; /* parked ctx, -1 none */
} member;

enum { ST_DONE = 4, ST_ABORTED = 5 };

typedef struct rstate {
    uint64_t id;
    int stage;   /* 0..3 open SecAgg stage, ST_DONE, ST_ABORTED */
    int reached; /* the last SecAgg stage opened (0..3); set when the round ends */
    fedreci_secagg_params p;
    fedreci_secagg_server *srv;
    uint32_t n;
    uint64_t *ids; /* cohort, sorted */
    member *mem;
    uint32_t count[4];
    uint32_t expected;
    uint32_t gone; /* declared-gone members still expected at the open stage */
    uint64_t *roster_ids;
    fedreci_secagg_advert *roster;
    size_t m;
    uint32_t *nbr; /* scratch for neighbour indices */
    uint64_t *surv, *drop;
    size_t ns, nd;
    uint64_t t_stage;
    double stage_ms[4];
    uint64_t bytes_in0, bytes_out0;
    double total_weight;
    uint64_t version_after;
    fedrec_err err;
    char reason[200];
} rstate;

typedef struct obent {
    cctx *x;
    nng_msg *msg;  /* reply; NULL: just receive again */
    pmodel *model; /* encode a model reply outside the lock */
    fedreci_wire_hdr hdr;
} obent;

typedef struct outbox {
    obent *v;
    size_t n, cap;
} outbox;

struct fedreci_coord {
    fedreci_coord_config cfg;
    char **urls;
    int *ports; /* bound TCP port of each listener (0: not TCP / not started) */
    fedreci_coord_hooks hooks;
    pthread_mutex_t mu;
    pthread_cond_t cv_done;
    pthread_cond_t cv_timer;
    pthread_t timer;
    int timer_started;
    int closing;
    atomic_int closing_flag;
    int stopped;
    int started;

    nng_socket sock;
    int sock_open;
    cctx *ctx;
    uint32_t n_ctx;
    uint32_t n_parked;
    uint32_t park_limit;
    size_t cap;

    crec *reg;
    size_t reg_cap, reg_n;

    uint64_t *waiting;
    size_t n_waiting, waiting_cap;

    pmodel *model;
    char **codes;
    size_t n_codes;
    uint32_t *retired; /* retired rows, ascending (fixed for the engine's lifetime) */
    size_t n_retired;
    fedreci_optimizer *opt;
    float *grad;
    uint32_t *sum;

    rstate *cur, *prev;
    uint64_t next_round_id;
    uint64_t deadline; /* 0: none */
    uint64_t rounds_run, rounds_completed, rounds_aborted;
    uint64_t bytes_in, bytes_out;
};

/* ---- outbox ------------------------------------------------------------------- */

static void ob_push(outbox *ob, cctx *x, nng_msg *msg, pmodel *model, const fedreci_wire_hdr *h)
{
    if (ob->n == ob->cap) {
        size_t nc = ob->cap ? ob->cap * 2 : 16;
        obent *nv = realloc(ob->v, nc * sizeof *nv);
        if (!nv) {
            /* cannot queue: drop the reply, the client times out and resends */
            if (msg)
                nng_msg_free(msg);
            if (model && atomic_fetch_sub(&model->refs, 1) == 1) {
                free(model->y);
                free(model->gram);
                free(model);
            }
            x->state = CX_IDLE;
            return;
        }
        ob->v = nv;
        ob->cap = nc;
    }
    obent e = {x, msg, model, {0, 0, 0}};
    if (h)
        e.hdr = *h;
    ob->v[ob->n++] = e;
}

static void model_unref(pmodel *m)
{
    if (m && atomic_fetch_sub(&m->refs, 1) == 1) {
        free(m->y);
        free(m->gram);
        free(m);
    }
}

static void flush(fedreci_coord *c, outbox *ob)
{
    for (size_t i = 0; i < ob->n; i++) {
        obent *e = &ob->v[i];
        cctx *x = e->x;
        if (e->model) {
            fedreci_wire_model wm = {e->model->version,
                                     e->model->n_items,
                                     e->model->k,
                                     e->model->y,
                                     e->model->gram,
                                     e->model->checksum,
                                     (const char *const *)c->codes,
                                     c->n_codes,
                                     c->retired,
                                     c->n_retired};
            if (fedreci_wire_enc_model_reply(&e->msg, &e->hdr, &wm, e->model->version))
                e->msg = NULL;
            model_unref(e->model);
        }
        if (atomic_load(&c->closing_flag)) {
            if (e->msg)
                nng_msg_free(e->msg);
            continue;
        }
        if (e->msg) {
            nng_aio_set_msg(x->aio, e->msg);
            nng_aio_set_timeout(x->aio, (nng_duration)c->cfg.send_timeout_ms);
            nng_ctx_send(x->ctx, x->aio);
        } else {
            nng_aio_set_timeout(x->aio, NNG_DURATION_INFINITE);
            nng_ctx_recv(x->ctx, x->aio);
        }
    }
    free(ob->v);
    ob->v = NULL;
    ob->n = ob->cap = 0;
}

/* Queues msg as the reply on ctx x (state -> SENDING). msg NULL (encoding
 * failed): the request is dropped and x receives again. */
static void reply(fedreci_coord *c, cctx *x, nng_msg *msg, outbox *ob)
{
    if (msg) {
        c->bytes_out += nng_msg_len(msg);
        x->state = CX_SENDING;
    } else {
        x->state = CX_RECV;
    }
    ob_push(ob, x, msg, NULL, NULL);
}

static void reply_error(fedreci_coord *c, cctx *x, const fedreci_wire_hdr *h, fedrec_err code,
                        const char *text, outbox *ob)
{
    nng_msg *m = NULL;
    fedreci_log(FEDRECI_LOG_WARN, h->round_id ? (int64_t)h->round_id : -1,
                "client %016llx stage %u: refused (%s): %s", (unsigned long long)h->client_id,
                h->stage, fedrec_strerror(code), text);
    if (fedreci_wire_enc_error(&m, h, code, text))
        m = NULL;
    reply(c, x, m, ob);
}

static void reply_retry(fedreci_coord *c, cctx *x, const fedreci_wire_hdr *h, outbox *ob)
{
    nng_msg *m = NULL;
    if (fedreci_wire_enc_retry(&m, h, c->cfg.retry_after_ms))
        m = NULL;
    reply(c, x, m, ob);
}

static int can_park(const fedreci_coord *c)
{
    return c->n_parked < c->park_limit;
}

static void park(fedreci_coord *c, cctx *x)
{
    x->state = CX_PARKED;
    c->n_parked++;
}

static cctx *unpark(fedreci_coord *c, int32_t idx)
{
    cctx *x = &c->ctx[idx];
    c->n_parked--;
    return x;
}

/* Drops a superseded parked request: the ctx receives again. */
static void unpark_drop(fedreci_coord *c, int32_t idx, outbox *ob)
{
    cctx *x = unpark(c, idx);
    reply(c, x, NULL, ob);
}

/* ---- registry --------------------------------------------------------------------- */

static uint64_t hash64(uint64_t x)
{
    uint64_t s = x;
    return splitmix64(&s);
}

static crec *reg_find(fedreci_coord *c, uint64_t id)
{
    if (!c->reg_cap)
        return NULL;
    size_t mask = c->reg_cap - 1;
    for (size_t i = hash64(id) & mask;; i = (i + 1) & mask) {
        if (!c->reg[i].used)
            return NULL;
        if (c->reg[i].id == id)
            return &c->reg[i];
    }
}

static crec *reg_insert(fedreci_coord *c, uint64_t id)
{
    crec *r = reg_find(c, id);
    if (r)
        return r;
    if ((c->reg_n + 1) * 2 > c->reg_cap) {
        size_t nc = c->reg_cap ? c->reg_cap * 2 : 1024;
        crec *nr = calloc(nc, sizeof *nr);
        if (!nr)
            return NULL;
        for (size_t i = 0; i < c->reg_cap; i++) {
            if (!c->reg[i].used)
                continue;
            size_t j = hash64(c->reg[i].id) & (nc - 1);
            while (nr[j].used)
                j = (j + 1) & (nc - 1);
            nr[j] = c->reg[i];
        }
        free(c->reg);
        c->reg = nr;
        c->reg_cap = nc;
    }
    size_t mask = c->reg_cap - 1;
    size_t i = hash64(id) & mask;
    while (c->reg[i].used)
        i = (i + 1) & mask;
    crec *e = &c->reg[i];
    memset(e, 0, sizeof *e);
    e->used = 1;
    e->id = id;
    e->wait_ctx = -1;
    c->reg_n++;
    return e;
}

/* ---- rounds --------------------------------------------------------------------------- */

static void round_free(rstate *r)
{
    if (!r)
        return;
    fedreci_secagg_server_destroy(r->srv);
    free(r->ids);
    free(r->mem);
    free(r->roster_ids);
    free(r->roster);
    free(r->nbr);
    free(r->surv);
    free(r->drop);
    free(r);
}

static void set_deadline(fedreci_coord *c, uint64_t when)
{
    c->deadline = when;
    pthread_cond_signal(&c->cv_timer);
}

static void derive_params(const fedreci_coord *c, uint32_t n, uint64_t round_id,
                          fedreci_secagg_params *p)
{
    memset(p, 0, sizeof *p);
    p->round_id = round_id;
    p->n = n;
    p->k = (c->cfg.neighbors == 0 || c->cfg.neighbors >= n - 1) ? n - 1 : c->cfg.neighbors;
    uint32_t t = c->cfg.threshold ? c->cfg.threshold : p->k / 2 + 1;
    if (t > p->k)
        t = p->k;
    if (t <= p->k / 2)
        t = p->k / 2 + 1;
    p->t = t;
    p->d = c->model->n_items * c->model->k + 1;
    p->clip = c->cfg.clip;
    p->scale = c->cfg.scale > 0 ? c->cfg.scale : floor(1073741824.0 / ((double)n * c->cfg.clip));
    p->max_weight = 1;
    uint8_t in[8 + 8 + 16] = "fedrec-graph-v1";
    for (int i = 0; i < 8; i++) {
        in[16 + i] = (uint8_t)(c->cfg.seed >> (8 * i));
        in[24 + i] = (uint8_t)(round_id >> (8 * i));
    }
    crypto_generichash(p->graph_seed, sizeof p->graph_seed, in, sizeof in, NULL, 0);
}

static uint32_t max_stage_ms(const fedreci_coord *c)
{
    uint32_t m = 0;
    for (int s = 0; s < 4; s++)
        if (c->cfg.stage_ms[s] > m)
            m = c->cfg.stage_ms[s];
    return m;
}

static fedreci_wire_round wire_round(const fedreci_coord *c, const rstate *r)
{
    fedreci_wire_round w;
    w.secagg = r->p;
    w.model_version = c->model->version;
    w.n_items = c->model->n_items;
    w.k_factors = c->model->k;
    w.stage_timeout_ms = max_stage_ms(c);
    return w;
}

static void checkin_reply(fedreci_coord *c, cctx *x, uint64_t client, int status, const rstate *r,
                          outbox *ob)
{
    fedreci_wire_hdr h = {client, r ? r->id : 0, FEDRECI_WIRE_STAGE_CHECKIN};
    fedreci_wire_round w;
    if (r)
        w = wire_round(c, r);
    nng_msg *m = NULL;
    if (fedreci_wire_enc_checkin_reply(&m, &h, status, r ? &w : NULL, c->model->version,
                                       c->cfg.retry_after_ms))
        m = NULL;
    reply(c, x, m, ob);
}

/* Answers every held check-in with `status` and empties the waiting list. */
static void release_waiting(fedreci_coord *c, int status, outbox *ob)
{
    for (size_t i = 0; i < c->n_waiting; i++) {
        crec *e = reg_find(c, c->waiting[i]);
        if (e && e->wait_ctx >= 0) {
            cctx *x = unpark(c, e->wait_ctx);
            e->wait_ctx = -1;
            checkin_reply(c, x, e->id, status, NULL, ob);
        }
    }
    c->n_waiting = 0;
}

static void round_result_msg(const fedreci_coord *c, const rstate *r, uint64_t client, nng_msg **m)
{
    fedreci_wire_hdr h = {client, r->id, FEDRECI_WIRE_STAGE_UNMASK};
    if (fedreci_wire_enc_round_result(m, &h, r->stage == ST_DONE, r->version_after, (uint32_t)r->ns,
                                      r->reason))
        *m = NULL;
    (void)c;
}

static void reply_parked_results(fedreci_coord *c, rstate *r, outbox *ob)
{
    for (uint32_t i = 0; i < r->n; i++) {
        if (r->mem[i].park < 0)
            continue;
        cctx *x = unpark(c, r->mem[i].park);
        r->mem[i].park = -1;
        nng_msg *m = NULL;
        round_result_msg(c, r, r->ids[i], &m);
        reply(c, x, m, ob);
    }
}

static void maybe_select(fedreci_coord *c, outbox *ob);

static void round_end(fedreci_coord *c, rstate *r, outbox *ob)
{
    int completed = r->stage == ST_DONE;
    fedreci_round_stats st;
    memset(&st, 0, sizeof st);
    st.round_id = r->id;
    st.completed = completed;
    st.abort_err = completed ? FEDREC_OK : r->err;
    st.abort_reason = r->reason;
    st.cohort = r->n;
    st.advertised = r->count[0];
    st.shared = r->count[1];
    st.survivors = (uint32_t)r->ns;
    st.unmasked = r->count[3];
    st.dropped[0] = r->n - r->count[0];
    st.dropped[1] = r->count[0] - r->count[1];
    st.dropped[2] = r->count[1] >= r->count[2] ? r->count[1] - r->count[2] : 0;
    st.dropped[3] = r->count[2] >= r->count[3] ? r->count[2] - r->count[3] : 0;
    /* a round that aborted at stage s never opened the later ones: nobody
     * dropped there (the round log would otherwise blame every client that
     * answered stage s for "dropping" at s + 1) */
    for (int s = completed ? 4 : r->reached + 1; s < 4; s++)
        st.dropped[s] = 0;
    memcpy(st.stage_ms, r->stage_ms, sizeof st.stage_ms);
    st.bytes_in = c->bytes_in - r->bytes_in0;
    st.bytes_out = c->bytes_out - r->bytes_out0;
    st.model_version = r->version_after;
    st.total_weight = r->total_weight;
    st.params = &r->p;
    st.cohort_ids = r->ids;
    st.survivor_ids = r->surv;
    st.sum = completed ? c->sum : NULL;
    if (completed)
        fedreci_log(FEDRECI_LOG_INFO, (int64_t)r->id,
                    "round done: cohort %u, survivors %u, dropped %u/%u/%u/%u, model v%llu", r->n,
                    (unsigned)r->ns, st.dropped[0], st.dropped[1], st.dropped[2], st.dropped[3],
                    (unsigned long long)r->version_after);
    else
        fedreci_log(FEDRECI_LOG_WARN, (int64_t)r->id, "round aborted: %s", r->reason);
    if (c->hooks.on_round_done)
        c->hooks.on_round_done(c->hooks.arg, &st);
    reply_parked_results(c, r, ob);
    fedreci_secagg_server_destroy(r->srv);
    r->srv = NULL;
    c->rounds_run++;
    if (completed)
        c->rounds_completed++;
    else
        c->rounds_aborted++;
    c->deadline = 0;
    if (c->cfg.max_rounds && c->rounds_run >= c->cfg.max_rounds) {
        c->stopped = 1;
        release_waiting(c, FEDREC__V1__CHECK_IN_REPLY__STATUS__NO_ROUND, ob);
        fedreci_log(FEDRECI_LOG_INFO, (int64_t)r->id, "ran %llu rounds; stopping",
                    (unsigned long long)c->rounds_run);
    }
    pthread_cond_broadcast(&c->cv_done);
    if (!c->stopped) {
        maybe_select(c, ob);
        if ((!c->cur || c->cur->stage >= ST_DONE) && c->n_waiting > 0)
            set_deadline(c, now_ms() + c->cfg.checkin_window_ms);
    }
}

static void round_abort(fedreci_coord *c, rstate *r, fedrec_err err, const char *why, outbox *ob)
{
    if (r->stage < 4) {
        r->stage_ms[r->stage] = (double)(now_ms() - r->t_stage);
        r->reached = r->stage;
    }
    r->stage = ST_ABORTED;
    r->err = err;
    r->version_after = c->model->version;
    snprintf(r->reason, sizeof r->reason, "%s", why);
    round_end(c, r, ob);
}

/* Commits the unmasked sum: dequantize, optimizer step, new model version. */
static fedrec_err commit_model(fedreci_coord *c, rstate *r)
{
    uint32_t weight = 0;
    fedreci_secagg_dequantize(&r->p, c->sum, c->grad, &weight);
    r->total_weight = weight;
    pmodel *old = c->model;
    size_t n = (size_t)old->n_items * old->k;
    pmodel *nm = calloc(1, sizeof *nm);
    float *y = nm ? malloc(n * sizeof *y) : NULL;
    float *gram = y ? malloc((size_t)old->k * old->k * sizeof *gram) : NULL;
    if (!gram) {
        free(y);
        free(nm);
        return fedreci_error(FEDREC_ERR_NOMEM, "coordinator: model copy of %zu floats", n);
    }
    memcpy(y, old->y, n * sizeof *y);
    int applied = 0;
    fedrec_err e = fedreci_optimizer_step(c->opt, y, c->grad, (double)weight, &applied);
    if (!e && !applied) {
        free(y);
        free(gram);
        free(nm);
        r->version_after = old->version;
        return FEDREC_OK;
    }
    if (!e && c->hooks.on_model_committed)
        e = c->hooks.on_model_committed(c->hooks.arg, r->id, old->version + 1, y, old->n_items,
                                        old->k);
    if (e) {
        free(y);
        free(gram);
        free(nm);
        return e;
    }
    fedreci_mf_gram(y, old->n_items, old->k, gram);
    atomic_init(&nm->refs, 1);
    nm->version = old->version + 1;
    nm->n_items = old->n_items;
    nm->k = old->k;
    nm->y = y;
    nm->gram = gram;
    fedreci_wire_checksum(y, n * sizeof *y, nm->checksum);
    c->model = nm;
    model_unref(old);
    r->version_after = nm->version;
    return FEDREC_OK;
}

static nng_msg *roster_msg(fedreci_coord *c, rstate *r, uint64_t client)
{
    long mi = fedreci_find_u64(r->roster_ids, r->m, client);
    if (mi < 0)
        return NULL;
    const fedreci_secagg_advert **ap = NULL;
    nng_msg *m = NULL;
    uint32_t nn = 0;
    fedreci_wire_hdr h = {client, r->id, FEDRECI_WIRE_STAGE_ADVERTISE};
    if (fedreci_secagg_neighbors(&r->p, (uint32_t)r->m, (uint32_t)mi, r->nbr, r->p.n, &nn))
        return NULL;
    ap = malloc(((size_t)nn + 1) * sizeof *ap);
    if (!ap)
        return NULL;
    ap[0] = &r->roster[mi];
    for (uint32_t i = 0; i < nn; i++)
        ap[i + 1] = &r->roster[r->nbr[i]];
    if (fedreci_wire_enc_roster(&m, &h, r->roster_ids, r->m, ap, (size_t)nn + 1))
        m = NULL;
    free(ap);
    return m;
}

static nng_msg *relay_msg(fedreci_coord *c, rstate *r, uint64_t client)
{
    const fedreci_secagg_ciphertext *cts;
    size_t n;
    nng_msg *m = NULL;
    fedreci_wire_hdr h = {client, r->id, FEDRECI_WIRE_STAGE_SHARE_KEYS};
    (void)c;
    if (!r->srv || fedreci_secagg_server_shares_for(r->srv, client, &cts, &n))
        return NULL;
    if (fedreci_wire_enc_ciphertexts(&m, &h, 1, cts, n))
        return NULL;
    return m;
}

static nng_msg *unmask_req_msg(rstate *r, uint64_t client)
{
    nng_msg *m = NULL;
    fedreci_wire_hdr h = {client, r->id, FEDRECI_WIRE_STAGE_MASKED_INPUT};
    if (fedreci_wire_enc_unmask_request(&m, &h, r->surv, r->ns, r->drop, r->nd))
        return NULL;
    return m;
}

/* The reply to an accepted stage-s message once stage s has closed. */
static nng_msg *stage_answer(fedreci_coord *c, rstate *r, uint64_t client, int s)
{
    nng_msg *m = NULL;
    if (r->stage >= ST_DONE) {
        round_result_msg(c, r, client, &m);
        return m;
    }
    switch (s) {
    case 0:
        return roster_msg(c, r, client);
    case 1:
        return relay_msg(c, r, client);
    case 2:
        return unmask_req_msg(r, client);
    default:
        return NULL;
    }
}

/* Whether member i is expected to send the message of stage s. */
static int expected_at(const rstate *r, uint32_t i, int s)
{
    return s == 0 || (r->mem[i].acc & (1u << (s - 1)));
}

static void recount_gone(rstate *r)
{
    r->gone = 0;
    for (uint32_t i = 0; i < r->n; i++)
        if (r->mem[i].gone && expected_at(r, i, r->stage) && !(r->mem[i].acc & (1u << r->stage)))
            r->gone++;
}

static void close_stage(fedreci_coord *c, rstate *r, outbox *ob)
{
    int s = r->stage;
    uint64_t t = now_ms();
    r->stage_ms[s] = (double)(t - r->t_stage);
    fedrec_err e = FEDREC_OK;
    switch (s) {
    case 0: {
        const fedreci_secagg_advert *ro;
        size_t m;
        e = fedreci_secagg_server_close_advertise(r->srv, &ro, &m);
        if (e)
            break;
        r->roster = malloc(m * sizeof *r->roster);
        r->roster_ids = malloc(m * sizeof *r->roster_ids);
        if (!r->roster || !r->roster_ids) {
            e = fedreci_error(FEDREC_ERR_NOMEM, "coordinator: roster of %zu", m);
            break;
        }
        memcpy(r->roster, ro, m * sizeof *ro);
        for (size_t i = 0; i < m; i++)
            r->roster_ids[i] = ro[i].client_id;
        r->m = m;
        r->expected = (uint32_t)m;
        break;
    }
    case 1:
        e = fedreci_secagg_server_close_share_keys(r->srv);
        r->expected = r->count[1];
        break;
    case 2: {
        const uint64_t *sv, *dr;
        size_t ns, nd;
        e = fedreci_secagg_server_close_masked_input(r->srv, &sv, &ns, &dr, &nd);
        if (e)
            break;
        r->surv = malloc((ns ? ns : 1) * sizeof *sv);
        r->drop = malloc((nd ? nd : 1) * sizeof *dr);
        if (!r->surv || !r->drop) {
            e = fedreci_error(FEDREC_ERR_NOMEM, "coordinator: survivor lists");
            break;
        }
        memcpy(r->surv, sv, ns * sizeof *sv);
        memcpy(r->drop, dr, nd * sizeof *dr);
        r->ns = ns;
        r->nd = nd;
        r->expected = (uint32_t)ns;
        break;
    }
    case 3:
        e = fedreci_secagg_server_finish(r->srv, c->sum, r->p.d);
        if (!e)
            e = commit_model(c, r);
        break;
    default:
        return;
    }
    if (e) {
        char why[200];
        snprintf(why, sizeof why, "stage %d: %s", s, fedrec_errmsg());
        round_abort(c, r, e, why, ob);
        return;
    }
    fedreci_log(FEDRECI_LOG_INFO, (int64_t)r->id, "stage %d closed: %u of %u in, %.0f ms", s,
                r->count[s],
                s == 0   ? r->n
                : s == 1 ? (uint32_t)r->m
                         : r->count[s - 1],
                r->stage_ms[s]);
    if (s == 3) {
        r->stage = ST_DONE;
        round_end(c, r, ob);
        return;
    }
    /* answer the held requests of stage s with stage s+1's input */
    for (uint32_t i = 0; i < r->n; i++) {
        if (r->mem[i].park < 0)
            continue;
        cctx *x = unpark(c, r->mem[i].park);
        r->mem[i].park = -1;
        nng_msg *m = stage_answer(c, r, r->ids[i], s);
        reply(c, x, m, ob);
    }
    r->stage = s + 1;
    r->t_stage = t;
    recount_gone(r);
    if (r->expected <= r->gone) {
        close_stage(c, r, ob);
        return;
    }
    set_deadline(c, t + c->cfg.stage_ms[s + 1]);
}

static void select_cohort(fedreci_coord *c, outbox *ob)
{
    size_t nw = c->n_waiting;
    uint32_t n = nw < c->cfg.cohort_size ? (uint32_t)nw : c->cfg.cohort_size;
    uint64_t rid = c->next_round_id;
    rstate *r = calloc(1, sizeof *r);
    fedrec_err e = FEDREC_OK;
    if (!r)
        goto nomem;
    r->id = rid;
    r->ids = malloc(nw * sizeof *r->ids);
    r->mem = malloc(n * sizeof *r->mem);
    r->nbr = malloc(n * sizeof *r->nbr);
    uint8_t(*pks)[FEDRECI_SECAGG_SIGN_PK_BYTES] = malloc(n * sizeof *pks);
    if (!r->ids || !r->mem || !r->nbr || !pks) {
        free(pks);
        goto nomem;
    }
    /* seeded choice among the waiting clients, sorted first for determinism */
    memcpy(r->ids, c->waiting, nw * sizeof *r->ids);
    qsort(r->ids, nw, sizeof *r->ids, cmp_u64);
    uint64_t s = c->cfg.seed ^ (rid * 0xd1b54a32d192ed03ull);
    for (uint32_t i = 0; i < n; i++) {
        size_t j = i + (size_t)(splitmix64(&s) % (nw - i));
        uint64_t tmp = r->ids[i];
        r->ids[i] = r->ids[j];
        r->ids[j] = tmp;
    }
    r->n = n;
    qsort(r->ids, n, sizeof *r->ids, cmp_u64);
    for (uint32_t i = 0; i < n; i++) {
        r->mem[i].acc = 0;
        r->mem[i].gone = 0;
        r->mem[i].park = -1;
        crec *cr = reg_find(c, r->ids[i]);
        memcpy(pks[i], cr->pk, sizeof pks[i]);
    }
    derive_params(c, n, rid, &r->p);
    e = fedreci_secagg_params_check(&r->p);
    if (!e)
        e = fedreci_secagg_server_create(&r->srv, &r->p, r->ids, (const uint8_t(*)[32])pks);
    free(pks);
    if (e) {
        fedreci_log(FEDRECI_LOG_ERROR, (int64_t)rid, "cannot start round with %u clients: %s", n,
                    fedrec_errmsg());
        round_free(r);
        release_waiting(c, FEDREC__V1__CHECK_IN_REPLY__STATUS__NOT_SELECTED, ob);
        return;
    }
    c->next_round_id++;
    round_free(c->prev);
    c->prev = c->cur;
    c->cur = r;
    r->bytes_in0 = c->bytes_in;
    r->bytes_out0 = c->bytes_out;
    r->stage = 0;
    r->expected = n;
    r->t_stage = now_ms();
    r->version_after = c->model->version;
    for (size_t i = 0; i < c->n_waiting; i++) {
        crec *cr = reg_find(c, c->waiting[i]);
        if (!cr || cr->wait_ctx < 0)
            continue;
        cctx *x = unpark(c, cr->wait_ctx);
        cr->wait_ctx = -1;
        int sel = fedreci_find_u64(r->ids, n, cr->id) >= 0;
        checkin_reply(c, x, cr->id,
                      sel ? FEDREC__V1__CHECK_IN_REPLY__STATUS__SELECTED
                          : FEDREC__V1__CHECK_IN_REPLY__STATUS__NOT_SELECTED,
                      sel ? r : NULL, ob);
    }
    c->n_waiting = 0;
    fedreci_log(FEDRECI_LOG_INFO, (int64_t)rid,
                "round start: cohort %u of %zu waiting, k=%u t=%u d=%u, model v%llu", n, nw, r->p.k,
                r->p.t, r->p.d, (unsigned long long)c->model->version);
    set_deadline(c, r->t_stage + c->cfg.stage_ms[0]);
    return;
nomem:
    fedreci_log(FEDRECI_LOG_ERROR, (int64_t)rid, "out of memory selecting a cohort");
    round_free(r);
    release_waiting(c, FEDREC__V1__CHECK_IN_REPLY__STATUS__NOT_SELECTED, ob);
}

static int round_active(const fedreci_coord *c)
{
    return c->cur && c->cur->stage < ST_DONE;
}

static void maybe_select(fedreci_coord *c, outbox *ob)
{
    if (c->stopped || round_active(c))
        return;
    uint32_t quorum = c->cfg.checkin_quorum;
    if (c->n_waiting >= quorum && c->n_waiting >= c->cfg.min_cohort)
        select_cohort(c, ob);
}

/* The current deadline passed (timer thread, lock held). */
static void on_deadline(fedreci_coord *c, outbox *ob)
{
    if (round_active(c)) {
        close_stage(c, c->cur, ob);
        return;
    }
    if (c->stopped)
        return;
    if (c->n_waiting >= c->cfg.min_cohort) {
        select_cohort(c, ob);
    } else if (c->n_waiting > 0) {
        fedreci_log(FEDRECI_LOG_INFO, -1,
                    "check-in window closed with %zu clients, below the minimum cohort %u; "
                    "no round",
                    c->n_waiting, c->cfg.min_cohort);
        release_waiting(c, FEDREC__V1__CHECK_IN_REPLY__STATUS__NOT_SELECTED, ob);
    }
}

/* ---- request handlers (lock held) ---------------------------------------------------- */

static void on_checkin(fedreci_coord *c, cctx *x, const fedreci_wire_env *env, outbox *ob)
{
    fedreci_wire_hdr h = fedreci_wire_header(env);
    const uint8_t *pk;
    uint64_t ver;
    int opted;
    if (fedreci_wire_get_checkin(env, &pk, &ver, &opted)) {
        reply_error(c, x, &h, FEDREC_ERR_PROTOCOL, fedrec_errmsg(), ob);
        return;
    }
    crec *e = reg_find(c, h.client_id);
    if (e && sodium_memcmp(e->pk, pk, 32) != 0) {
        reply_error(c, x, &h, FEDREC_ERR_SIGNATURE,
                    "identity key differs from the one registered for this client", ob);
        return;
    }
    int fresh = !e;
    if (!e && !(e = reg_insert(c, h.client_id))) {
        reply_error(c, x, &h, FEDREC_ERR_BUSY, "registry full (out of memory)", ob);
        return;
    }
    if (fresh) {
        memcpy(e->pk, pk, 32);
        e->opted_in = (uint8_t)opted;
    }
    if (fresh || e->opted_in != (uint8_t)opted) {
        e->opted_in = (uint8_t)opted;
        if (c->hooks.on_client_seen)
            c->hooks.on_client_seen(c->hooks.arg, e->id, e->pk, opted);
    }
    if (!opted || c->stopped) {
        if (e->wait_ctx >= 0) {
            unpark_drop(c, e->wait_ctx, ob);
            e->wait_ctx = -1;
            for (size_t i = 0; i < c->n_waiting; i++)
                if (c->waiting[i] == e->id) {
                    c->waiting[i] = c->waiting[--c->n_waiting];
                    break;
                }
        }
        checkin_reply(c, x, e->id,
                      !opted ? FEDREC__V1__CHECK_IN_REPLY__STATUS__OPTED_OUT
                             : FEDREC__V1__CHECK_IN_REPLY__STATUS__NO_ROUND,
                      NULL, ob);
        return;
    }
    if (round_active(c) && fedreci_find_u64(c->cur->ids, c->cur->n, e->id) >= 0) {
        /* a resent check-in of a cohort member: same answer */
        checkin_reply(c, x, e->id, FEDREC__V1__CHECK_IN_REPLY__STATUS__SELECTED, c->cur, ob);
        return;
    }
    if (e->wait_ctx >= 0) {
        unpark_drop(c, e->wait_ctx, ob);
        e->wait_ctx = (int32_t)x->idx;
        park(c, x);
        return;
    }
    if (!can_park(c)) {
        reply_retry(c, x, &h, ob);
        return;
    }
    if (c->n_waiting == c->waiting_cap) {
        size_t nc = c->waiting_cap ? c->waiting_cap * 2 : 256;
        uint64_t *nw = realloc(c->waiting, nc * sizeof *nw);
        if (!nw) {
            reply_retry(c, x, &h, ob);
            return;
        }
        c->waiting = nw;
        c->waiting_cap = nc;
    }
    c->waiting[c->n_waiting++] = e->id;
    e->wait_ctx = (int32_t)x->idx;
    park(c, x);
    fedreci_log(FEDRECI_LOG_DEBUG, -1, "client %016llx checked in (%zu waiting)",
                (unsigned long long)e->id, c->n_waiting);
    if (!round_active(c)) {
        if (c->n_waiting == 1)
            set_deadline(c, now_ms() + c->cfg.checkin_window_ms);
        maybe_select(c, ob);
    }
}

static void on_model_request(fedreci_coord *c, cctx *x, const fedreci_wire_env *env, crec *rec,
                             outbox *ob)
{
    fedreci_wire_hdr h = fedreci_wire_header(env);
    pmodel *m = c->model;
    if (env->model_request->have_version == m->version) {
        nng_msg *msg = NULL;
        if (fedreci_wire_enc_model_reply(&msg, &h, NULL, m->version))
            msg = NULL;
        reply(c, x, msg, ob);
        return;
    }
    /* A full reply is the largest message the coordinator sends: only a
     * checked-in client gets one, and at most max_msgs_per_round times per
     * model version (a phone that lost its copy retries a few times; a loop
     * asking for it again and again is refused). */
    if (!rec) {
        reply_error(c, x, &h, FEDREC_ERR_NOT_FOUND, "unknown client: check in first", ob);
        return;
    }
    if (rec->dl_version != m->version) {
        rec->dl_version = m->version;
        rec->dls = 0;
    }
    if (++rec->dls > c->cfg.max_msgs_per_round) {
        reply_error(c, x, &h, FEDREC_ERR_BUSY, "too many downloads of this model version", ob);
        return;
    }
    /* encoded outside the lock from a reference to this immutable version */
    fedreci_wire_model wm = {m->version,
                             m->n_items,
                             m->k,
                             m->y,
                             m->gram,
                             m->checksum,
                             (const char *const *)c->codes,
                             c->n_codes,
                             c->retired,
                             c->n_retired};
    atomic_fetch_add(&m->refs, 1);
    x->state = CX_SENDING;
    c->bytes_out += fedreci_wire_model_reply_size(&h, &wm);
    ob_push(ob, x, NULL, m, &h);
}

static fedrec_err stage_add(fedreci_coord *c, rstate *r, const fedreci_wire_env *env, int s)
{
    fedrec_err e;
    uint64_t id = env->client_id;
    switch (s) {
    case 0: {
        fedreci_secagg_advert a;
        if ((e = fedreci_wire_get_advert(env, &a)))
            return e;
        return fedreci_secagg_server_add_advert(r->srv, &a);
    }
    case 1: {
        fedreci_secagg_ciphertext *cts;
        size_t n;
        if ((e = fedreci_wire_get_ciphertexts(env, r->p.n, &cts, &n)))
            return e;
        for (size_t i = 0; i < n; i++)
            if (cts[i].from != id) {
                free(cts);
                return fedreci_error(FEDREC_ERR_PROTOCOL,
                                     "ciphertext %zu claims sender %llu, not %llu", i,
                                     (unsigned long long)cts[i].from, (unsigned long long)id);
            }
        e = fedreci_secagg_server_add_shares(r->srv, id, cts, n);
        free(cts);
        return e;
    }
    case 2: {
        const uint32_t *y;
        if ((e = fedreci_wire_get_masked(env, r->p.d, &y)))
            return e;
        return fedreci_secagg_server_add_masked_input(r->srv, id, y, r->p.d);
    }
    default: {
        fedreci_secagg_reveal *rv;
        size_t n;
        if ((e = fedreci_wire_get_reveals(env, r->p.n, &rv, &n)))
            return e;
        e = fedreci_secagg_server_add_unmask(r->srv, id, rv, n);
        sodium_memzero(rv, n * sizeof *rv);
        free(rv);
        return e;
    }
    }
}

static void on_stage(fedreci_coord *c, cctx *x, const fedreci_wire_env *env, int s, crec *rec,
                     outbox *ob)
{
    fedreci_wire_hdr h = fedreci_wire_header(env);
    char text[160];
    rstate *r = NULL;
    if (c->cur && c->cur->id == h.round_id)
        r = c->cur;
    else if (c->prev && c->prev->id == h.round_id)
        r = c->prev;
    if (!r) {
        snprintf(text, sizeof text, "round %llu is not the current round (%llu)",
                 (unsigned long long)h.round_id, (unsigned long long)(c->cur ? c->cur->id : 0));
        reply_error(c, x, &h, FEDREC_ERR_ROUND, text, ob);
        return;
    }
    long mi = fedreci_find_u64(r->ids, r->n, h.client_id);
    if (mi < 0) {
        reply_error(c, x, &h, FEDREC_ERR_NOT_SELECTED, "client is not in this round's cohort", ob);
        return;
    }
    if (rec) {
        if (rec->msg_round != r->id) {
            rec->msg_round = r->id;
            rec->msgs = 0;
        }
        if (++rec->msgs > c->cfg.max_msgs_per_round) {
            reply_error(c, x, &h, FEDREC_ERR_BUSY, "too many messages in this round", ob);
            return;
        }
    }
    member *mb = &r->mem[mi];
    if (r->stage >= ST_DONE) {
        nng_msg *m = NULL;
        round_result_msg(c, r, h.client_id, &m);
        reply(c, x, m, ob);
        return;
    }
    if (s > r->stage) {
        snprintf(text, sizeof text, "stage %d is not open (open: %d)", s, r->stage);
        reply_error(c, x, &h, FEDREC_ERR_STAGE, text, ob);
        return;
    }
    /* A member counted gone because its connection closed, that speaks again
     * before the round ends, is back: a phone may reconnect mid-round. The
     * open stage waits for it again unless it already answered there; a
     * stage that closed without it stays closed. (Its new connection is not
     * watched: if that one is lost too, the stage deadline applies.) */
    if (mb->gone) {
        if (expected_at(r, (uint32_t)mi, r->stage) && !(mb->acc & (1u << r->stage)) && r->gone)
            r->gone--;
        mb->gone = 0;
        fedreci_log(FEDRECI_LOG_INFO, (int64_t)r->id,
                    "client %016llx is back after its connection closed (stage %d)",
                    (unsigned long long)h.client_id, r->stage);
    }
    if (s < r->stage) {
        if (mb->acc & (1u << s)) {
            reply(c, x, stage_answer(c, r, h.client_id, s), ob);
        } else {
            snprintf(text, sizeof text, "stage %d closed before this message; counted as dropped",
                     s);
            reply_error(c, x, &h, FEDREC_ERR_STAGE, text, ob);
        }
        return;
    }
    if (!(mb->acc & (1u << s))) {
        fedrec_err e = stage_add(c, r, env, s);
        if (e) {
            reply_error(c, x, &h, e, fedrec_errmsg(), ob);
            return;
        }
        mb->acc |= (uint8_t)(1u << s);
        r->count[s]++;
        if (mb->gone && r->gone)
            r->gone--;
        fedreci_log(FEDRECI_LOG_DEBUG, (int64_t)r->id,
                    "client %016llx stage %d accepted (%u of %u)", (unsigned long long)h.client_id,
                    s, r->count[s], r->expected);
    } else if (mb->park >= 0) {
        /* A second request for the stage while the first is still held: a
         * REQ client never does that (a RetryAfter resend comes after the
         * first was answered). Counted once; the newer request is held. */
        fedreci_log(FEDRECI_LOG_INFO, (int64_t)r->id,
                    "client %016llx stage %d: duplicate of an accepted message while the first "
                    "is held; counted once",
                    (unsigned long long)h.client_id, s);
    }
    /* hold the request until the stage closes; a resend replaces the held one */
    if (mb->park >= 0) {
        unpark_drop(c, mb->park, ob);
        mb->park = -1;
    }
    if (can_park(c)) {
        mb->park = (int32_t)x->idx;
        park(c, x);
    } else {
        reply_retry(c, x, &h, ob);
    }
    if (r->count[s] + r->gone >= r->expected)
        close_stage(c, r, ob);
}

static void handle(fedreci_coord *c, cctx *x, nng_msg *msg, outbox *ob)
{
    size_t len = nng_msg_len(msg);
    uint32_t pipe = (uint32_t)nng_pipe_id(nng_msg_get_pipe(msg));
    fedreci_wire_env *env = NULL;
    fedrec_err e = fedreci_wire_decode_msg(msg, c->cap, &env);
    nng_msg_free(msg);
    pthread_mutex_lock(&c->mu);
    c->bytes_in += len;
    if (e) {
        fedreci_wire_hdr h = {0, 0, 0};
        reply_error(c, x, &h, e, fedrec_errmsg(), ob);
        pthread_mutex_unlock(&c->mu);
        return;
    }
    crec *rec = reg_find(c, env->client_id);
    if (rec) {
        rec->bytes_total += len;
        if (env->stage >= FEDRECI_WIRE_STAGE_ADVERTISE)
            rec->bytes_update += len;
    }
    switch (env->body_case) {
    case FEDREC__V1__ENVELOPE__BODY_CHECK_IN:
        on_checkin(c, x, env, ob);
        if (!rec && (rec = reg_find(c, env->client_id)))
            rec->bytes_total += len;
        /* the connection that checked in carries the client's round; its
           closing counts the client as dropped at once (pipe_removed) */
        if (rec && env->check_in->identity_pk.len == 32 &&
            sodium_memcmp(rec->pk, env->check_in->identity_pk.data, 32) == 0)
            rec->pipe = pipe;
        break;
    case FEDREC__V1__ENVELOPE__BODY_MODEL_REQUEST:
        on_model_request(c, x, env, rec, ob);
        break;
    case FEDREC__V1__ENVELOPE__BODY_ADVERTISE_KEYS:
    case FEDREC__V1__ENVELOPE__BODY_SHARE_KEYS:
    case FEDREC__V1__ENVELOPE__BODY_MASKED_INPUT:
    case FEDREC__V1__ENVELOPE__BODY_UNMASK:
        if (!rec) {
            fedreci_wire_hdr h = fedreci_wire_header(env);
            reply_error(c, x, &h, FEDREC_ERR_NOT_FOUND, "unknown client: check in first", ob);
            break;
        }
        on_stage(c, x, env, (int)env->stage - 3, rec, ob);
        break;
    default: {
        fedreci_wire_hdr h = fedreci_wire_header(env);
        reply_error(c, x, &h, FEDREC_ERR_PROTOCOL, "not a request message", ob);
    }
    }
    pthread_mutex_unlock(&c->mu);
    fedreci_wire_free(env);
}

/* Member i of the open round r will send nothing more: the open stage (and
 * each later one) stops waiting for it and closes as soon as every other
 * expected client has answered. Lock held. */
static void member_gone(fedreci_coord *c, rstate *r, uint32_t i, outbox *ob)
{
    if (r->mem[i].gone)
        return;
    r->mem[i].gone = 1;
    if (expected_at(r, i, r->stage) && !(r->mem[i].acc & (1u << r->stage)))
        r->gone++;
    if (r->count[r->stage] + r->gone >= r->expected)
        close_stage(c, r, ob);
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
    if (!c->closing) {
        for (size_t i = 0; i < c->n_waiting;) {
            crec *e = reg_find(c, c->waiting[i]);
            if (e && e->pipe == id && e->wait_ctx >= 0) {
                unpark_drop(c, e->wait_ctx, &ob);
                e->wait_ctx = -1;
                c->waiting[i] = c->waiting[--c->n_waiting];
            } else {
                i++;
            }
        }
        rstate *r = c->cur;
        for (uint32_t i = 0; r && c->cur == r && round_active(c) && i < r->n; i++) {
            if (r->mem[i].gone)
                continue;
            crec *e = reg_find(c, r->ids[i]);
            if (e && e->pipe == id)
                member_gone(c, r, i, &ob);
        }
    }
    pthread_mutex_unlock(&c->mu);
    flush(c, &ob);
}

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
    if (atomic_load(&c->closing_flag)) {
        nng_msg_free(msg);
        x->state = CX_IDLE;
        return;
    }
    handle(c, x, msg, &ob);
    flush(c, &ob);
}

static void *timer_main(void *arg)
{
    fedreci_coord *c = arg;
    pthread_mutex_lock(&c->mu);
    while (!c->closing) {
        uint64_t now = now_ms();
        if (c->deadline && now >= c->deadline) {
            outbox ob = {NULL, 0, 0};
            c->deadline = 0;
            on_deadline(c, &ob);
            pthread_mutex_unlock(&c->mu);
            flush(c, &ob);
            pthread_mutex_lock(&c->mu);
            continue;
        }
        if (!c->deadline) {
            pthread_cond_wait(&c->cv_timer, &c->mu);
        } else {
            struct timespec ts;
            uint64_t when = c->deadline;
            ts.tv_sec = (time_t)(when / 1000u);
            ts.tv_nsec = (long)(when % 1000u) * 1000000L;
            pthread_cond_timedwait(&c->cv_timer, &c->mu, &ts);
        }
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* ---- lifecycle ------------------------------------------------------------------ */

void fedreci_coord_config_default(fedreci_coord_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->n_contexts = 256;
    cfg->cohort_size = 10;
    cfg->min_cohort = 2;
    cfg->checkin_window_ms = 2000;
    cfg->clip = 16;
    for (int s = 0; s < 4; s++)
        cfg->stage_ms[s] = 10000;
    cfg->retry_after_ms = 1000;
    cfg->send_timeout_ms = 10000;
    cfg->max_msgs_per_round = 64;
    cfg->first_round_id = 1;
    cfg->opt.kind = FEDRECI_OPT_ADAM;
    cfg->opt.lr = 0.01f;
    cfg->opt.beta1 = 0.9f;
    cfg->opt.beta2 = 0.999f;
    cfg->opt.eps = 1e-8f;
    cfg->opt.lambda = 0.1f;
    cfg->opt.n_train = 1;
}

static fedrec_err check_config(const fedreci_coord_config *cfg, const fedreci_coord_model *m)
{
    if (!cfg->listen_urls || cfg->n_listen == 0)
        return fedreci_error(FEDREC_ERR_INVALID, "coordinator: no listen URL");
    if (cfg->cohort_size < 2 || cfg->min_cohort < 2 || cfg->min_cohort > cfg->cohort_size)
        return fedreci_error(FEDREC_ERR_INVALID,
                             "coordinator: cohort_size=%u min_cohort=%u (need 2 <= min_cohort <= "
                             "cohort_size)",
                             cfg->cohort_size, cfg->min_cohort);
    if (cfg->n_contexts < 8)
        return fedreci_error(FEDREC_ERR_INVALID, "coordinator: n_contexts=%u, at least 8",
                             cfg->n_contexts);
    if (!(cfg->clip > 0) || !isfinite(cfg->clip) || cfg->scale < 0 || !isfinite(cfg->scale))
        return fedreci_error(FEDREC_ERR_INVALID, "coordinator: clip=%g scale=%g", cfg->clip,
                             cfg->scale);
    for (int s = 0; s < 4; s++)
        if (cfg->stage_ms[s] == 0)
            return fedreci_error(FEDREC_ERR_INVALID, "coordinator: stage %d deadline is 0 ms", s);
    if (!m || m->n_items == 0 || m->k == 0 || m->version == 0 ||
        (uint64_t)m->n_items * m->k + 1 > UINT32_MAX / 4)
        return fedreci_error(FEDREC_ERR_INVALID, "coordinator: start model n_items=%u k=%u v%llu",
                             m ? m->n_items : 0, m ? m->k : 0,
                             (unsigned long long)(m ? m->version : 0));
    return FEDREC_OK;
}

fedrec_err fedreci_coord_create(fedreci_coord **out, const fedreci_coord_config *cfg,
                                const fedreci_coord_hooks *hooks, const fedreci_coord_model *start)
{
    if (!out || !cfg)
        return fedreci_error(FEDREC_ERR_INVALID, "coordinator: NULL argument");
    fedrec_err e = check_config(cfg, start);
    if (e)
        return e;
    fedreci_coord *c = calloc(1, sizeof *c);
    if (!c)
        return fedreci_error(FEDREC_ERR_NOMEM, "coordinator: engine");
    c->cfg = *cfg;
    if (!c->cfg.checkin_quorum || c->cfg.checkin_quorum > c->cfg.cohort_size)
        c->cfg.checkin_quorum = c->cfg.checkin_quorum ? c->cfg.checkin_quorum : cfg->cohort_size;
    if (!c->cfg.retry_after_ms)
        c->cfg.retry_after_ms = 1000;
    if (!c->cfg.send_timeout_ms)
        c->cfg.send_timeout_ms = 10000;
    if (!c->cfg.max_msgs_per_round)
        c->cfg.max_msgs_per_round = 64;
    if (!c->cfg.first_round_id)
        c->cfg.first_round_id = 1;
    c->cfg.listen_urls = NULL;
    c->cfg.tls_cert_file = NULL;
    c->cfg.tls_key_file = NULL;
    if (hooks)
        c->hooks = *hooks;
    c->next_round_id = c->cfg.first_round_id;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv_done, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cv_timer, &ca);
    pthread_condattr_destroy(&ca);
    atomic_init(&c->closing_flag, 0);

    /* copies of what outlives create */
    c->urls = calloc(cfg->n_listen + 2, sizeof *c->urls);
    c->ports = calloc(cfg->n_listen, sizeof *c->ports);
    if (!c->urls || !c->ports)
        goto nomem;
    for (size_t i = 0; i < cfg->n_listen; i++)
        if (!(c->urls[i] = strdup(cfg->listen_urls[i])))
            goto nomem;
    if (cfg->tls_cert_file && !(c->urls[cfg->n_listen] = strdup(cfg->tls_cert_file)))
        goto nomem;
    if (cfg->tls_key_file && !(c->urls[cfg->n_listen + 1] = strdup(cfg->tls_key_file)))
        goto nomem;

    uint32_t n_items = start->n_items, k = start->k;
    size_t n = (size_t)n_items * k;
    pmodel *pm = calloc(1, sizeof *pm);
    if (!pm)
        goto nomem;
    atomic_init(&pm->refs, 1);
    c->model = pm;
    pm->version = start->version;
    pm->n_items = n_items;
    pm->k = k;
    pm->y = malloc(n * sizeof *pm->y);
    pm->gram = malloc((size_t)k * k * sizeof *pm->gram);
    c->grad = malloc(n * sizeof *c->grad);
    c->sum = malloc((n + 1) * sizeof *c->sum);
    if (!pm->y || !pm->gram || !c->grad || !c->sum)
        goto nomem;
    if (start->item_factors)
        memcpy(pm->y, start->item_factors, n * sizeof *pm->y);
    else
        fedreci_mf_init(pm->y, n_items, k, cfg->seed, 0.01f);
    fedreci_mf_gram(pm->y, n_items, k, pm->gram);
    fedreci_wire_checksum(pm->y, n * sizeof *pm->y, pm->checksum);
    size_t code_bytes = 0;
    if (start->item_codes) {
        c->codes = calloc(n_items, sizeof *c->codes);
        if (!c->codes)
            goto nomem;
        for (uint32_t i = 0; i < n_items; i++) {
            const char *s = start->item_codes[i] ? start->item_codes[i] : "";
            if (strlen(s) > FEDRECI_WIRE_MAX_CODE_BYTES) {
                fedreci_coord_destroy(c);
                return fedreci_error(FEDREC_ERR_INVALID,
                                     "coordinator: item code %u longer than %u bytes", i,
                                     FEDRECI_WIRE_MAX_CODE_BYTES);
            }
            if (!(c->codes[i] = strdup(s)))
                goto nomem;
            code_bytes += strlen(s) + 3;
        }
        c->n_codes = n_items;
    }
    if (start->n_retired) {
        if (!start->retired_rows || start->n_retired > n_items) {
            fedreci_coord_destroy(c);
            return fedreci_error(FEDREC_ERR_INVALID, "coordinator: %zu retired rows for %u items",
                                 start->n_retired, n_items);
        }
        for (size_t i = 0; i < start->n_retired; i++)
            if (start->retired_rows[i] >= n_items ||
                (i > 0 && start->retired_rows[i] <= start->retired_rows[i - 1])) {
                fedreci_coord_destroy(c);
                return fedreci_error(FEDREC_ERR_INVALID,
                                     "coordinator: retired row %zu (%u) not ascending below %u", i,
                                     start->retired_rows[i], n_items);
            }
        c->retired = malloc(start->n_retired * sizeof *c->retired);
        if (!c->retired)
            goto nomem;
        memcpy(c->retired, start->retired_rows, start->n_retired * sizeof *c->retired);
        c->n_retired = start->n_retired;
    }
    c->cap = cfg->recv_max_bytes ? cfg->recv_max_bytes
                                 : fedreci_wire_cap(n_items, k, cfg->cohort_size, code_bytes);
    if ((e = fedreci_optimizer_create(&c->opt, &cfg->opt, n_items, k))) {
        fedreci_coord_destroy(c);
        return e;
    }
    /* the largest cohort must fit the overflow budget */
    {
        fedreci_secagg_params p;
        derive_params(c, cfg->cohort_size, c->next_round_id, &p);
        if ((e = fedreci_secagg_params_check(&p))) {
            fedreci_coord_destroy(c);
            return e;
        }
    }

    int rv;
    if ((rv = nng_rep0_open(&c->sock)) != 0) {
        fedreci_coord_destroy(c);
        return nng_fail(rv, "opening the REP socket", NULL);
    }
    c->sock_open = 1;
    /* The transport's cap is twice the engine's: a message just over the
     * engine's cap still arrives and is refused with a logged reason and an
     * Error reply; beyond twice the cap nng drops the connection unread
     * (without telling the engine), so nothing larger is ever buffered. */
    nng_socket_set_size(c->sock, NNG_OPT_RECVMAXSZ, c->cap > SIZE_MAX / 2 ? SIZE_MAX : 2 * c->cap);
    if ((rv = nng_pipe_notify(c->sock, NNG_PIPE_EV_REM_POST, pipe_removed, c)) != 0) {
        fedreci_coord_destroy(c);
        return nng_fail(rv, "pipe notification", NULL);
    }
    c->n_ctx = cfg->n_contexts;
    c->park_limit = c->n_ctx - (c->n_ctx / 16 > 4 ? c->n_ctx / 16 : 4);
    if (c->cfg.checkin_quorum > c->park_limit) {
        uint32_t need = c->cfg.checkin_quorum + c->cfg.checkin_quorum / 15 + 5;
        fedreci_coord_destroy(c);
        return fedreci_error(FEDREC_ERR_INVALID,
                             "coordinator: checkin_quorum %u cannot be held by %u contexts "
                             "(n_contexts must be at least %u)",
                             cfg->checkin_quorum ? cfg->checkin_quorum : cfg->cohort_size,
                             cfg->n_contexts, need);
    }
    c->ctx = calloc(c->n_ctx, sizeof *c->ctx);
    if (!c->ctx)
        goto nomem;
    for (uint32_t i = 0; i < c->n_ctx; i++) {
        cctx *x = &c->ctx[i];
        x->c = c;
        x->idx = i;
        if ((rv = nng_aio_alloc(&x->aio, ctx_cb, x)) != 0 ||
            (rv = nng_ctx_open(&x->ctx, c->sock)) != 0) {
            fedreci_coord_destroy(c);
            return nng_fail(rv, "opening a context", NULL);
        }
    }
    *out = c;
    return FEDREC_OK;
nomem:
    fedreci_coord_destroy(c);
    return fedreci_error(FEDREC_ERR_NOMEM, "coordinator: allocating the engine");
}

fedrec_err fedreci_coord_register(fedreci_coord *c, uint64_t client_id,
                                  const uint8_t identity_pk[32], int opted_in)
{
    pthread_mutex_lock(&c->mu);
    crec *e = reg_insert(c, client_id);
    if (e) {
        memcpy(e->pk, identity_pk, 32);
        e->opted_in = opted_in ? 1 : 0;
    }
    pthread_mutex_unlock(&c->mu);
    return e ? FEDREC_OK : fedreci_error(FEDREC_ERR_NOMEM, "coordinator: registry");
}

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

static fedrec_err start_listener(fedreci_coord *c, const char *url, int *bound_port)
{
    nng_listener l;
    int rv;
    if ((rv = nng_listener_create(&l, c->sock, url)) != 0)
        return nng_fail(rv, "listening on", url);
    if (strncmp(url, "tls+", 4) == 0) {
        const char *certf = c->urls[c->cfg.n_listen], *keyf = c->urls[c->cfg.n_listen + 1];
        if (!certf || !keyf) {
            nng_listener_close(l);
            return fedreci_error(FEDREC_ERR_INVALID,
                                 "coordinator: %s needs a certificate and a key file", url);
        }
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
        if (e) {
            nng_listener_close(l);
            return e;
        }
        if (rv != 0) {
            nng_listener_close(l);
            return nng_fail(rv, "TLS configuration for", url);
        }
    }
    if ((rv = nng_listener_start(l, 0)) != 0) {
        nng_listener_close(l);
        return nng_fail(rv, "listening on", url);
    }
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

fedrec_err fedreci_coord_start(fedreci_coord *c)
{
    if (c->started)
        return fedreci_error(FEDREC_ERR_INVALID, "coordinator: already started");
    for (size_t i = 0; i < c->cfg.n_listen; i++) {
        fedrec_err e = start_listener(c, c->urls[i], &c->ports[i]);
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

fedrec_err fedreci_coord_wait(fedreci_coord *c, int timeout_ms)
{
    fedrec_err e = FEDREC_OK;
    pthread_mutex_lock(&c->mu);
    struct timespec ts;
    if (timeout_ms >= 0)
        fedreci_deadline_after_ms(&ts, timeout_ms);
    while (!c->stopped) {
        if (timeout_ms < 0) {
            pthread_cond_wait(&c->cv_done, &c->mu);
        } else if (pthread_cond_timedwait(&c->cv_done, &c->mu, &ts) == ETIMEDOUT) {
            if (!c->stopped)
                e = fedreci_error(FEDREC_ERR_TIMEOUT, "coordinator: %d ms passed", timeout_ms);
            break;
        }
    }
    pthread_mutex_unlock(&c->mu);
    return e;
}

void fedreci_coord_stop(fedreci_coord *c)
{
    if (!c)
        return;
    outbox ob = {NULL, 0, 0};
    pthread_mutex_lock(&c->mu);
    if (!c->stopped) {
        c->stopped = 1;
        fedreci_log(FEDRECI_LOG_INFO, c->cur ? (int64_t)c->cur->id : -1, "stopping");
    }
    if (round_active(c))
        round_abort(c, c->cur, FEDREC_ERR_CLOSED, "the coordinator is shutting down", &ob);
    release_waiting(c, FEDREC__V1__CHECK_IN_REPLY__STATUS__NO_ROUND, &ob);
    c->deadline = 0;
    pthread_cond_broadcast(&c->cv_done);
    pthread_mutex_unlock(&c->mu);
    flush(c, &ob);
}

void fedreci_coord_destroy(fedreci_coord *c)
{
    if (!c)
        return;
    if (c->started)
        fedreci_coord_stop(c);
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
    round_free(c->cur);
    round_free(c->prev);
    free(c->reg);
    free(c->waiting);
    model_unref(c->model);
    if (c->codes)
        for (size_t i = 0; i < c->n_codes; i++)
            free(c->codes[i]);
    free(c->codes);
    free(c->retired);
    fedreci_optimizer_destroy(c->opt);
    free(c->grad);
    free(c->sum);
    if (c->urls) {
        for (size_t i = 0; i < c->cfg.n_listen + 2; i++)
            free(c->urls[i]);
        free(c->urls);
    }
    free(c->ports);
    pthread_cond_destroy(&c->cv_timer);
    pthread_cond_destroy(&c->cv_done);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

void fedreci_coord_get_status(fedreci_coord *c, fedreci_coord_status *st)
{
    pthread_mutex_lock(&c->mu);
    memset(st, 0, sizeof *st);
    st->round_id = c->cur ? c->cur->id : 0;
    st->stage = round_active(c) ? c->cur->stage : -1;
    st->model_version = c->model->version;
    st->rounds_completed = c->rounds_completed;
    st->rounds_aborted = c->rounds_aborted;
    st->clients_known = (uint32_t)c->reg_n;
    st->clients_waiting = (uint32_t)c->n_waiting;
    st->bytes_in = c->bytes_in;
    st->bytes_out = c->bytes_out;
    st->stopped = c->stopped;
    pthread_mutex_unlock(&c->mu);
}

fedrec_err fedreci_coord_get_model(fedreci_coord *c, float *y, size_t cap, uint64_t *version)
{
    fedrec_err e = FEDREC_OK;
    pthread_mutex_lock(&c->mu);
    size_t n = (size_t)c->model->n_items * c->model->k;
    if (cap < n) {
        e = fedreci_error(FEDREC_ERR_RANGE, "coordinator: model needs %zu floats, room for %zu", n,
                          cap);
    } else {
        memcpy(y, c->model->y, n * sizeof *y);
        *version = c->model->version;
    }
    pthread_mutex_unlock(&c->mu);
    return e;
}

void fedreci_coord_client_gone(fedreci_coord *c, uint64_t client_id)
{
    outbox ob = {NULL, 0, 0};
    pthread_mutex_lock(&c->mu);
    if (round_active(c)) {
        rstate *r = c->cur;
        long i = fedreci_find_u64(r->ids, r->n, client_id);
        if (i >= 0)
            member_gone(c, r, (uint32_t)i, &ob);
    }
    pthread_mutex_unlock(&c->mu);
    flush(c, &ob);
}

fedrec_err fedreci_coord_client_bytes(fedreci_coord *c, uint64_t client_id, uint64_t *update,
                                      uint64_t *total)
{
    fedrec_err e = FEDREC_OK;
    pthread_mutex_lock(&c->mu);
    crec *r = reg_find(c, client_id);
    if (!r) {
        e = fedreci_error(FEDREC_ERR_NOT_FOUND, "coordinator: client %llu unknown",
                          (unsigned long long)client_id);
    } else {
        *update = r->bytes_update;
        *total = r->bytes_total;
    }
    pthread_mutex_unlock(&c->mu);
    return e;
}

int fedreci_coord_port(const fedreci_coord *c, size_t i)
{
    return c && c->started && c->ports && i < c->cfg.n_listen ? c->ports[i] : 0;
}
