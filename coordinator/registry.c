/* coordinator/engine: the client registry, the known clients in arrival
 * order in a growable array and an id map (core/idmap.h) from client id to
 * row. With max_clients set, the ids checked in least recently are
 * forgotten when the registry is full (evict below). See engine_internal.h. */
#include "coordinator/engine_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/idmap.h"
#include "core/log.h"
#include "core/util.h"

crec *fedreci_eng_reg_find(fedreci_coord *c, uint64_t id)
{
    uint32_t row;
    return fedreci_idmap_find(&c->reg_index, id, &row) ? &c->reg[row] : NULL;
}

/* Whether entry e may be forgotten: not waiting, not in the current or
 * previous cohort (the round still looks its members up), not excluded (a
 * culprit stays refused), not benched (its strikes are kept). */
static int evictable(const fedreci_coord *c, const crec *e)
{
    if (e->wait_ctx >= 0 || e->excluded_round || fedreci_eng_benched(c, e))
        return 0;
    for (int i = 0; i < 2; i++) {
        const rstate *r = i ? c->prev : c->cur;
        if (r && r->ids && fedreci_find_u64(r->ids, r->n, e->id) >= 0)
            return 0;
    }
    return 1;
}

typedef struct seen_row {
    uint64_t seen;
    uint32_t row;
} seen_row;

static int cmp_seen(const void *a, const void *b)
{
    const seen_row *x = a, *y = b;
    if (x->seen != y->seen)
        return x->seen < y->seen ? -1 : 1;
    return x->row < y->row ? -1 : x->row > y->row;
}

/* Forgets the max_clients/16 (at least 1) evictable entries seen least
 * recently, keeping the others in order, and rebuilds the index. 1 when at
 * least one entry went; 0 when none can go or memory ran out (nothing
 * changed then). */
static int evict(fedreci_coord *c)
{
    size_t want = c->cfg.max_clients / 16 ? c->cfg.max_clients / 16 : 1;
    seen_row *v = malloc(c->reg_n * sizeof *v);
    uint8_t *gone = calloc(c->reg_n ? c->reg_n : 1, 1);
    fedreci_idmap idx = {0};
    size_t nv = 0, keep = 0;
    int ok = v && gone;
    for (size_t i = 0; ok && i < c->reg_n; i++)
        if (evictable(c, &c->reg[i]))
            v[nv++] = (seen_row){c->reg[i].seen, (uint32_t)i};
    ok = ok && nv > 0;
    if (ok) {
        qsort(v, nv, sizeof *v, cmp_seen);
        if (want > nv)
            want = nv;
        for (size_t i = 0; i < want; i++)
            gone[v[i].row] = 1;
        for (size_t i = 0; ok && i < c->reg_n; i++)
            if (!gone[i])
                ok = fedreci_idmap_put(&idx, c->reg[i].id, (uint32_t)keep++, NULL) == FEDREC_OK;
    }
    if (ok) {
        keep = 0;
        for (size_t i = 0; i < c->reg_n; i++)
            if (!gone[i])
                c->reg[keep++] = c->reg[i];
            else
                fedreci_eng_bind_pipe(c, &c->reg[i], 0); /* no longer a known client */
        c->reg_n = keep;
        fedreci_idmap_fini(&c->reg_index);
        c->reg_index = idx;
        c->clients_evicted += want;
        fedreci_log(FEDRECI_LOG_INFO, -1,
                    "registry full (%u ids): forgot the %zu seen least recently",
                    c->cfg.max_clients, want);
    } else {
        fedreci_idmap_fini(&idx);
    }
    free(v);
    free(gone);
    return ok;
}

crec *fedreci_eng_reg_insert(fedreci_coord *c, uint64_t id)
{
    crec *r = fedreci_eng_reg_find(c, id);
    if (r)
        return r;
    if (c->cfg.max_clients && c->reg_n >= c->cfg.max_clients && !evict(c))
        return NULL;
    if (c->reg_n == c->reg_cap) {
        size_t nc = c->reg_cap ? c->reg_cap * 2 : 1024;
        crec *nr = nc <= FEDRECI_IDMAP_MAX_INDEX ? realloc(c->reg, nc * sizeof *nr) : NULL;
        if (!nr)
            return NULL;
        c->reg = nr;
        c->reg_cap = nc;
    }
    if (fedreci_idmap_put(&c->reg_index, id, (uint32_t)c->reg_n, NULL) != FEDREC_OK)
        return NULL;
    crec *e = &c->reg[c->reg_n++];
    memset(e, 0, sizeof *e);
    e->id = id;
    e->wait_ctx = -1;
    return e;
}

void fedreci_eng_reg_free(fedreci_coord *c)
{
    free(c->benched);
    c->benched = NULL;
    c->n_benched = c->benched_cap = 0;
    free(c->reg);
    c->reg = NULL;
    c->reg_cap = c->reg_n = 0;
    fedreci_idmap_fini(&c->reg_index);
}

void fedreci_eng_exclude(fedreci_coord *c, crec *e, uint64_t round_id, int report, outbox *ob)
{
    if (!e || e->excluded_round)
        return;
    e->excluded_round = round_id ? round_id : 1;
    if (e->wait_ctx >= 0 && ob) {
        cctx *x = fedreci_eng_unpark(c, e->wait_ctx);
        e->wait_ctx = -1;
        for (size_t i = 0; i < c->n_waiting; i++)
            if (c->waiting[i] == e->id) {
                c->waiting[i] = c->waiting[--c->n_waiting];
                break;
            }
        fedreci_wire_hdr h = {e->id, 0, FEDRECI_WIRE_STAGE_CHECKIN};
        fedreci_eng_reply_error(c, x, &h, FEDREC_ERR_NOT_SELECTED,
                                "excluded: named a culprit in an earlier round", ob);
    }
    if (report && c->hooks.on_client_excluded)
        c->hooks.on_client_excluded(c->hooks.arg, e->id, e->excluded_round);
}

int fedreci_eng_benched(const fedreci_coord *c, const crec *e)
{
    return e && e->bench_until && e->bench_until >= c->next_round_id;
}

void fedreci_eng_benched_add(fedreci_coord *c, uint64_t id)
{
    for (size_t i = 0; i < c->n_benched; i++)
        if (c->benched[i] == id)
            return;
    if (c->n_benched == c->benched_cap) {
        size_t nc = c->benched_cap ? 2 * c->benched_cap : 16;
        uint64_t *nb = realloc(c->benched, nc * sizeof *nb);
        if (!nb)
            return;
        c->benched = nb;
        c->benched_cap = nc;
    }
    c->benched[c->n_benched++] = id;
}

uint32_t fedreci_eng_benched_count(fedreci_coord *c)
{
    size_t keep = 0;
    for (size_t i = 0; i < c->n_benched; i++) {
        const crec *e = fedreci_eng_reg_find(c, c->benched[i]);
        if (e && fedreci_eng_benched(c, e) && !e->excluded_round)
            c->benched[keep++] = c->benched[i];
    }
    c->n_benched = keep;
    return (uint32_t)keep;
}

uint8_t fedreci_eng_bench_reason(fedreci_coord *c, const char *reason)
{
    if (!reason || !reason[0])
        return 0;
    if (c->n_bench_why == 0)
        c->n_bench_why = 1; /* slot 0: "" */
    for (uint32_t i = 1; i < c->n_bench_why; i++)
        if (strncmp(c->bench_why[i], reason, FEDRECI_BENCH_REASON_MAX - 1) == 0)
            return (uint8_t)i;
    if (c->n_bench_why >= FEDRECI_BENCH_REASONS)
        return 0;
    snprintf(c->bench_why[c->n_bench_why], FEDRECI_BENCH_REASON_MAX, "%s", reason);
    return (uint8_t)c->n_bench_why++;
}

void fedreci_eng_bench(fedreci_coord *c, crec *e, uint64_t round_id, const char *reason, outbox *ob)
{
    if (!e || c->cfg.bench_max_rounds == 0 || c->cfg.role == FEDRECI_ROLE_AGGREGATOR)
        return; /* an aggregator reports them to its master, which benches */
    if (e->strikes < 255)
        e->strikes++;
    uint64_t rounds = 1;
    for (uint32_t i = 1; i < e->strikes && rounds < c->cfg.bench_max_rounds; i++)
        rounds *= 2;
    if (rounds > c->cfg.bench_max_rounds)
        rounds = c->cfg.bench_max_rounds;
    e->bench_until = round_id + rounds;
    e->bench_why = fedreci_eng_bench_reason(c, reason);
    c->benches++;
    fedreci_eng_benched_add(c, e->id);
    const char *why = reason && reason[0] ? reason : "withheld a protocol step";
    fedreci_log(FEDRECI_LOG_WARN, (int64_t)round_id,
                "client %016llx %s (%u times): benched, not drawn before round %llu",
                (unsigned long long)e->id, why, e->strikes,
                (unsigned long long)(e->bench_until + 1));
    if (c->hooks.on_client_benched)
        c->hooks.on_client_benched(c->hooks.arg, e->id, round_id, e->strikes, e->bench_until, why);
    if (e->wait_ctx >= 0 && ob) {
        cctx *x = fedreci_eng_unpark(c, e->wait_ctx);
        e->wait_ctx = -1;
        for (size_t i = 0; i < c->n_waiting; i++)
            if (c->waiting[i] == e->id) {
                c->waiting[i] = c->waiting[--c->n_waiting];
                break;
            }
        char text[FEDRECI_BENCH_REASON_MAX + 32];
        snprintf(text, sizeof text, "benched: %s", why);
        fedreci_wire_hdr h = {e->id, 0, FEDRECI_WIRE_STAGE_CHECKIN};
        fedreci_eng_reply_error(c, x, &h, FEDREC_ERR_NOT_SELECTED, text, ob);
    }
}
