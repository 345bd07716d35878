/* The SecAgg+ neighbour graph (see graph.h). */
#include "core/secagg/graph.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/err.h"
#include "core/secagg/kdf.h"
#include "core/secagg/prg.h"

#define WORDS 1024 /* keystream words drawn at a time */

typedef struct rng {
    uint8_t key[32];
    uint8_t nonce[FEDRECI_PRG_NONCE_BYTES];
    uint32_t buf[WORDS];
    size_t used;
    uint32_t counter;
} rng;

static uint32_t rng_next(rng *r)
{
    if (r->used == WORDS) {
        fedreci_prg_words(r->key, r->nonce, r->counter, r->buf, WORDS);
        r->counter += WORDS * 4 / 64;
        r->used = 0;
    }
    return r->buf[r->used++];
}

/* Uniform in 0..bound-1 (bound >= 1) by rejection. */
static uint32_t rng_below(rng *r, uint32_t bound)
{
    uint32_t limit = UINT32_MAX - (uint32_t)(((uint64_t)UINT32_MAX + 1) % bound);
    for (;;) {
        uint32_t x = rng_next(r);
        if (x <= limit)
            return x % bound;
    }
}

void fedreci_graph_free(fedreci_graph *g)
{
    if (!g)
        return;
    free(g->pos);
    free(g->at);
    memset(g, 0, sizeof *g);
}

fedrec_err fedreci_graph_build(fedreci_graph *g, const fedreci_secagg_params *p, uint32_t m)
{
    memset(g, 0, sizeof *g);
    if (m < 2)
        return fedreci_error(FEDREC_ERR_INVALID, "secagg graph: %u members, need at least 2", m);
    uint32_t k = p->k < m - 1 ? p->k : m - 1;
    g->m = m;
    if (k >= m - 1) {
        g->complete = 1;
        g->degree = m - 1;
        return FEDREC_OK;
    }
    if (k % 2 == 0) {
        g->half = k / 2;
    } else if (m % 2 == 0) {
        g->half = (k - 1) / 2;
        g->diameter = 1;
    } else {
        g->half = (k + 1) / 2;
    }
    g->degree = 2 * g->half + (uint32_t)g->diameter;
    if (g->degree >= m - 1) { /* k + 1 reached m - 1: complete after all */
        g->complete = 1;
        g->degree = m - 1;
        g->half = 0;
        g->diameter = 0;
        return FEDREC_OK;
    }
    g->pos = malloc((size_t)m * sizeof *g->pos);
    g->at = malloc((size_t)m * sizeof *g->at);
    if (!g->pos || !g->at) {
        fedreci_graph_free(g);
        return fedreci_error(FEDREC_ERR_NOMEM, "secagg graph: %u members", m);
    }
    rng r;
    fedreci_secagg_kdf(r.key, FEDRECI_LABEL_GRAPH, p->graph_seed, sizeof p->graph_seed, NULL, 0,
                       p->round_id, m);
    fedreci_prg_nonce(r.nonce, p->round_id, FEDRECI_PRG_GRAPH);
    r.used = WORDS;
    r.counter = 0;
    for (uint32_t i = 0; i < m; i++)
        g->at[i] = i;
    for (uint32_t i = m - 1; i > 0; i--) {
        uint32_t j = rng_below(&r, i + 1);
        uint32_t tmp = g->at[i];
        g->at[i] = g->at[j];
        g->at[j] = tmp;
    }
    for (uint32_t i = 0; i < m; i++)
        g->pos[g->at[i]] = i;
    return FEDREC_OK;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

void fedreci_graph_neighbors(const fedreci_graph *g, uint32_t u, uint32_t *out)
{
    if (g->complete) {
        uint32_t n = 0;
        for (uint32_t v = 0; v < g->m; v++)
            if (v != u)
                out[n++] = v;
        return;
    }
    uint32_t m = g->m, j = g->pos[u], n = 0;
    for (uint32_t o = 1; o <= g->half; o++) {
        out[n++] = g->at[(j + o) % m];
        out[n++] = g->at[(j + m - o) % m];
    }
    if (g->diameter)
        out[n++] = g->at[(j + m / 2) % m];
    qsort(out, n, sizeof *out, cmp_u32);
}

int fedreci_graph_adjacent(const fedreci_graph *g, uint32_t u, uint32_t v)
{
    if (u == v || u >= g->m || v >= g->m)
        return 0;
    if (g->complete)
        return 1;
    uint32_t m = g->m;
    uint32_t diff = (g->pos[v] + m - g->pos[u]) % m;
    uint32_t dist = diff < m - diff ? diff : m - diff;
    return dist <= g->half || (g->diameter && diff == m / 2);
}

fedrec_err fedreci_secagg_neighbors(const fedreci_secagg_params *p, uint32_t m, uint32_t member,
                                    uint32_t *out, uint32_t cap, uint32_t *n_out)
{
    if (!p || !n_out || (cap && !out))
        return fedreci_error(FEDREC_ERR_INVALID, "secagg neighbors: NULL argument");
    if (member >= m)
        return fedreci_error(FEDREC_ERR_INVALID, "secagg neighbors: member %u of %u", member, m);
    fedreci_graph g;
    fedrec_err e = fedreci_graph_build(&g, p, m);
    if (e)
        return e;
    uint32_t *all = malloc((size_t)g.degree * sizeof *all);
    if (!all) {
        fedreci_graph_free(&g);
        return fedreci_error(FEDREC_ERR_NOMEM, "secagg neighbors: %u entries", g.degree);
    }
    fedreci_graph_neighbors(&g, member, all);
    uint32_t n = g.degree < cap ? g.degree : cap;
    memcpy(out, all, (size_t)n * sizeof *out);
    *n_out = n;
    free(all);
    fedreci_graph_free(&g);
    return FEDREC_OK;
}
