/* coordinator/engine: resource limits on connections and new client ids.
 * Open connections are counted in total and per remote address (an IPv4
 * address, or the /64 of an IPv6 address: one subscriber's prefix), and a
 * connection over either cap is refused as it is added. Check-ins under ids
 * the registry does not hold take a token from a bucket of their address
 * and from a global one. Addresses are keyed by SipHash under a key drawn at
 * start, so nobody can aim collisions at a chosen address. See
 * engine_internal.h and docs/operations.md ("Limits"). */
#include "coordinator/engine_internal.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/log.h"

/* The address table is pruned (entries without connections and with a
 * full bucket dropped) when it reaches c->addr_prune_at rows: at least this
 * many, and twice what the last pruning kept (so pruning costs O(1) per
 * new address, amortized). */
#define ADDR_PRUNE_BASE 4096u

/* The key of a remote address; 0 with *ok = 0 for connections that are not
 * over IP (ipc://, inproc://), which count toward the total only. */
static uint64_t addr_key(const fedreci_coord *c, const nng_sockaddr *sa, int *ok)
{
    uint8_t buf[1 + 8];
    size_t n = 0;
    *ok = 1;
    if (sa->s_family == NNG_AF_INET) {
        buf[0] = 4;
        memcpy(buf + 1, &sa->s_in.sa_addr, 4);
        n = 5;
    } else if (sa->s_family == NNG_AF_INET6) {
        buf[0] = 6;
        memcpy(buf + 1, sa->s_in6.sa_addr, 8); /* the /64 */
        n = 9;
    } else {
        *ok = 0;
        return 0;
    }
    uint8_t h[crypto_shorthash_BYTES];
    crypto_shorthash(h, buf, n, c->addr_hash_key);
    uint64_t k;
    memcpy(&k, h, sizeof k);
    return k;
}

/* Refills bucket (tokens, t_ms) to now at rate per second, up to burst. */
static void refill(double *tokens, uint64_t *t_ms, uint64_t now, double rate, uint32_t burst)
{
    if (now > *t_ms) {
        *tokens += (double)(now - *t_ms) * rate / 1000.0;
        if (*tokens > burst)
            *tokens = burst;
        *t_ms = now;
    }
}

/* Drops the address rows with no connection and a full bucket (their state
 * is the initial one), rebuilding the index. Lock held. Nothing changes when
 * the new index cannot be built. */
static void addr_prune(fedreci_coord *c)
{
    uint64_t now = now_ms();
    fedreci_idmap idx = {0};
    size_t keep = 0;
    uint32_t *remap = malloc(c->n_addrs * sizeof *remap);
    if (!remap)
        return;
    for (size_t i = 0; i < c->n_addrs; i++) {
        addrent *a = &c->addrs[i];
        refill(&a->tokens, &a->t_ms, now, c->cfg.new_ids_addr_rate, c->cfg.new_ids_addr_burst);
        int full = !c->cfg.new_ids_addr_burst || a->tokens >= c->cfg.new_ids_addr_burst;
        if (a->conns == 0 && full) {
            remap[i] = UINT32_MAX;
            continue;
        }
        if (fedreci_idmap_put(&idx, a->key, (uint32_t)keep, NULL) != FEDREC_OK) {
            fedreci_idmap_fini(&idx);
            free(remap);
            return;
        }
        remap[i] = (uint32_t)keep++;
    }
    for (size_t i = 0; i < c->n_addrs; i++)
        if (remap[i] != UINT32_MAX)
            c->addrs[remap[i]] = c->addrs[i];
    size_t pos = 0;
    uint64_t pipe;
    uint32_t addr1;
    while (fedreci_idmap_next(&c->pipes, &pos, &pipe, &addr1))
        if (addr1)
            (void)fedreci_idmap_set(&c->pipes, pipe, remap[addr1 - 1] + 1);
    free(remap);
    fedreci_idmap_fini(&c->addr_index);
    c->addr_index = idx;
    c->n_addrs = keep;
    c->addr_prune_at = 2 * keep > ADDR_PRUNE_BASE ? 2 * keep : ADDR_PRUNE_BASE;
}

/* The row of address key, added when new; NULL when out of memory. */
static addrent *addr_get(fedreci_coord *c, uint64_t key, uint32_t *row)
{
    if (fedreci_idmap_find(&c->addr_index, key, row))
        return &c->addrs[*row];
    if (c->n_addrs >= (c->addr_prune_at ? c->addr_prune_at : ADDR_PRUNE_BASE))
        addr_prune(c);
    if (c->n_addrs == c->addrs_cap) {
        size_t nc = c->addrs_cap ? c->addrs_cap * 2 : 64;
        addrent *na = realloc(c->addrs, nc * sizeof *na);
        if (!na)
            return NULL;
        c->addrs = na;
        c->addrs_cap = nc;
    }
    if (fedreci_idmap_put(&c->addr_index, key, (uint32_t)c->n_addrs, NULL) != FEDREC_OK)
        return NULL;
    *row = (uint32_t)c->n_addrs;
    addrent *a = &c->addrs[c->n_addrs++];
    a->key = key;
    a->conns = 0;
    a->tokens = c->cfg.new_ids_addr_burst;
    a->t_ms = now_ms();
    return a;
}

/* ---- the entry points ------------------------------------------------------ */

int fedreci_eng_conn_admit(fedreci_coord *c, nng_pipe p)
{
    nng_sockaddr sa;
    int ip = 0;
    uint64_t key = 0;
    uint32_t id = (uint32_t)nng_pipe_id(p);
    if (nng_pipe_get_addr(p, NNG_OPT_REMADDR, &sa) == 0)
        key = addr_key(c, &sa, &ip);
    pthread_mutex_lock(&c->mu);
    int ok = 1;
    uint32_t row = 0;
    addrent *a = NULL;
    if (c->cfg.max_connections && c->conns_open >= c->cfg.max_connections) {
        c->refused_conn_total++;
        ok = 0;
    } else if (ip && !(a = addr_get(c, key, &row))) {
        ok = 0; /* out of memory: refused rather than uncounted */
    } else if (a && c->cfg.max_conns_per_addr && a->conns >= c->cfg.max_conns_per_addr) {
        c->refused_conn_addr++;
        ok = 0;
    } else if (fedreci_idmap_put(&c->pipes, id, a ? row + 1 : 0, NULL) != FEDREC_OK) {
        ok = 0;
    } else {
        c->conns_open++;
        if (a)
            a->conns++;
    }
    uint64_t n_addr = c->refused_conn_addr, n_total = c->refused_conn_total;
    pthread_mutex_unlock(&c->mu);
    if (!ok)
        fedreci_log(FEDRECI_LOG_DEBUG, -1,
                    "connection refused (%llu over the per-address cap, %llu over the total cap "
                    "so far)",
                    (unsigned long long)n_addr, (unsigned long long)n_total);
    return ok;
}

int fedreci_eng_conn_gone(fedreci_coord *c, uint32_t pipe)
{
    uint32_t addr1;
    if (!fedreci_idmap_find(&c->pipes, pipe, &addr1))
        return 0;
    if (addr1 && c->addrs[addr1 - 1].conns)
        c->addrs[addr1 - 1].conns--;
    fedreci_idmap_del(&c->pipes, pipe);
    if (c->conns_open)
        c->conns_open--;
    uint32_t n = 0;
    if (fedreci_idmap_find(&c->pipe_clients, pipe, &n)) {
        c->clients_connected -= n <= c->clients_connected ? n : c->clients_connected;
        fedreci_idmap_del(&c->pipe_clients, pipe);
    }
    /* nng frees a connection's buffers as it closes; hand the freed heap
       back to the system now and then (every 32 closes, and when the last
       one goes) */
    if (++c->closed_since_trim >= 32 || c->conns_open == 0) {
        c->closed_since_trim = 0;
        uint64_t now = now_ms();
        if (!c->last_trim_ms || now - c->last_trim_ms >= FEDRECI_TRIM_INTERVAL_MS) {
            c->last_trim_ms = now;
            c->trim_pending = 0;
            return 1;
        }
        if (!c->trim_pending) { /* later, by the timer thread */
            c->trim_pending = 1;
            pthread_cond_signal(&c->cv_timer);
        }
    }
    return 0;
}

void fedreci_eng_bind_pipe(fedreci_coord *c, crec *e, uint32_t pipe)
{
    uint32_t n = 0, unused;
    if (e->pipe == pipe)
        return;
    if (e->pipe && fedreci_idmap_find(&c->pipe_clients, e->pipe, &n)) {
        if (n > 1)
            (void)fedreci_idmap_set(&c->pipe_clients, e->pipe, n - 1);
        else
            fedreci_idmap_del(&c->pipe_clients, e->pipe);
        if (c->clients_connected)
            c->clients_connected--;
    }
    e->pipe = pipe;
    if (!pipe || !fedreci_idmap_find(&c->pipes, pipe, &unused))
        return; /* closed already (or never admitted): not connected */
    if (fedreci_idmap_find(&c->pipe_clients, pipe, &n)) {
        (void)fedreci_idmap_set(&c->pipe_clients, pipe, n + 1);
        c->clients_connected++;
    } else if (fedreci_idmap_put(&c->pipe_clients, pipe, 1, NULL) == FEDREC_OK) {
        c->clients_connected++;
    }
}

int fedreci_eng_new_id_allowed(fedreci_coord *c, uint32_t pipe, const char **why)
{
    uint64_t now = now_ms();
    uint32_t addr1 = 0;
    (void)fedreci_idmap_find(&c->pipes, pipe, &addr1);
    addrent *a = addr1 ? &c->addrs[addr1 - 1] : NULL;
    if (a && c->cfg.new_ids_addr_burst) {
        refill(&a->tokens, &a->t_ms, now, c->cfg.new_ids_addr_rate, c->cfg.new_ids_addr_burst);
        if (a->tokens < 1) {
            c->refused_new_addr++;
            *why = "too many new client ids from this address: retry later";
            return 0;
        }
    }
    if (c->cfg.new_ids_burst) {
        refill(&c->global_tokens, &c->global_t_ms, now, c->cfg.new_ids_rate, c->cfg.new_ids_burst);
        if (c->global_tokens < 1) {
            c->refused_new_global++;
            *why = "too many new client ids: retry later";
            return 0;
        }
        c->global_tokens -= 1;
    }
    if (a && c->cfg.new_ids_addr_burst)
        a->tokens -= 1;
    return 1;
}

void fedreci_eng_limits_free(fedreci_coord *c)
{
    free(c->addrs);
    c->addrs = NULL;
    c->n_addrs = c->addrs_cap = 0;
    fedreci_idmap_fini(&c->addr_index);
    fedreci_idmap_fini(&c->pipes);
    fedreci_idmap_fini(&c->pipe_clients);
}
