/*
 * core/secagg/graph: the SecAgg+ neighbour graph (Bell et al. CCS 2020,
 * section 3: a Harary graph H_{k,m} whose vertices are placed by a random
 * permutation of the m clients that advertised).
 *
 * Construction, identical on every party: the permutation pi of 0..m-1 is a
 * Fisher-Yates shuffle driven by ChaCha20 (prg.h) under the key
 * BLAKE2b(LABEL_GRAPH, graph_seed, round_id, m), with rejection sampling so
 * each swap index is uniform. Member pi[j] sits at ring position j. With
 * k' = min(k, m - 1):
 *   - k' = m - 1: the complete graph (classic SecAgg);
 *   - k' even: each member is joined to the k'/2 nearest positions each way;
 *   - k' odd, m even: as for k' - 1, plus the opposite position j + m/2;
 *   - k' odd, m odd (no k'-regular graph exists): as for k' + 1.
 * The graph is regular; its degree is fedreci_graph_degree().
 *
 * Members are indices 0..m-1 into the roster sorted by client id. Immutable
 * after build: concurrent readers are safe.
 */
#ifndef FEDREC_CORE_SECAGG_GRAPH_H
#define FEDREC_CORE_SECAGG_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "core/secagg/secagg.h"

typedef struct fedreci_graph {
    uint32_t m;      /* members */
    uint32_t degree; /* neighbours of every member */
    uint32_t half;   /* ring offsets 1..half on each side */
    int complete;    /* complete graph */
    int diameter;    /* plus the opposite position */
    uint32_t *pos;   /* pos[member] = ring position (NULL when complete) */
    uint32_t *at;    /* at[position] = member (NULL when complete) */
} fedreci_graph;

/* Builds the graph over m >= 2 members. Errors: FEDREC_ERR_INVALID (m < 2),
 * FEDREC_ERR_NOMEM. On error *g is left empty (safe to free). */
FEDREC_NODISCARD fedrec_err fedreci_graph_build(fedreci_graph *g, const fedreci_secagg_params *p,
                                                uint32_t m);

void fedreci_graph_free(fedreci_graph *g);

/* Writes the degree neighbours of member u, sorted ascending, to out. */
void fedreci_graph_neighbors(const fedreci_graph *g, uint32_t u, uint32_t *out);

/* 1 when u and v (u != v) are neighbours. O(1). */
int fedreci_graph_adjacent(const fedreci_graph *g, uint32_t u, uint32_t v);

#endif
