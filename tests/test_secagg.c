/*
 * Tests for core/secagg: the SecAgg+ state machines end to end (exactness
 * under dropouts at every stage, aborts below the threshold), the client's
 * never-both-shares rule, stage/round/replay refusals, parameter checks,
 * quantization, the graph, and the mask generator against RFC 8439.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "core/secagg/graph.h"
#include "core/rng.h"
#include "core/secagg/kdf.h"
#include "core/secagg/prg.h"
#include "core/secagg/quantize.h"
#include "core/secagg/secagg.h"
#include "core/secagg/shamir.h"
#include "fedrec/fedrec.h"

/* ---- deterministic test randomness ------------------------------------------ */

/* splitmix64 (core/rng.h), one stream for the whole program */
static fedreci_rng rng = {0x9e3779b97f4a7c15ull};

static uint64_t rnd(void)
{
    return fedreci_rng_u64(&rng);
}

static uint32_t rnd_below(uint32_t n)
{
    return (uint32_t)fedreci_rng_below(&rng, n);
}

static double rnd_unit(void)
{
    return fedreci_rng_unit(&rng);
}

static fedreci_secagg_params make_params(uint32_t n, uint32_t k, uint32_t t, uint32_t d)
{
    fedreci_secagg_params p;
    memset(&p, 0, sizeof p);
    p.round_id = 7;
    p.n = n;
    p.k = k;
    p.t = t;
    p.d = d;
    p.clip = 4.0;
    p.scale = 1000.0;
    p.max_weight = 1;
    for (int i = 0; i < 32; i++)
        p.graph_seed[i] = (uint8_t)(i * 7 + 1);
    return p;
}

/* ---- a whole round, driven through the state machines -------------------------- */

enum { DROP_NONE = 0, DROP_ADVERT, DROP_SHARE, DROP_INPUT, DROP_UNMASK };

typedef struct round_sim {
    fedreci_secagg_params p;
    uint32_t n;
    uint64_t *ids;
    uint8_t (*pks)[32];
    uint8_t (*sks)[64];
    fedreci_secagg_client **c;
    fedreci_secagg_server *s;
    float *x; /* n x (d - 1) */
    uint32_t *w;
    int *drop;    /* DROP_* per client (index into ids) */
    int endorsed; /* the consistency step ran (sim_endorse) */
} round_sim;

static void sim_init(round_sim *r, const fedreci_secagg_params *p)
{
    memset(r, 0, sizeof *r);
    r->p = *p;
    r->n = p->n;
    r->ids = calloc(p->n, sizeof *r->ids);
    r->pks = calloc(p->n, sizeof *r->pks);
    r->sks = calloc(p->n, sizeof *r->sks);
    r->c = calloc(p->n, sizeof *r->c);
    r->x = calloc((size_t)p->n * (p->d - 1), sizeof *r->x);
    r->w = calloc(p->n, sizeof *r->w);
    r->drop = calloc(p->n, sizeof *r->drop);
    assert_non_null(r->drop);
    /* distinct, unsorted ids */
    for (uint32_t i = 0; i < p->n; i++)
        r->ids[i] = 1000003ull * (p->n - i) + (rnd() % 1000);
    for (uint32_t i = 0; i < p->n; i++) {
        crypto_sign_keypair(r->pks[i], r->sks[i]);
        uint8_t seed[32];
        for (int b = 0; b < 32; b++)
            seed[b] = (uint8_t)rnd();
        assert_int_equal(fedreci_secagg_client_create(&r->c[i], p, r->ids[i], r->sks[i], seed),
                         FEDREC_OK);
        for (uint32_t j = 0; j + 1 < p->d; j++)
            r->x[(size_t)i * (p->d - 1) + j] = (float)((rnd_unit() * 2 - 1) * p->clip * 1.2);
        r->w[i] = p->max_weight ? rnd_below(p->max_weight + 1) : 0;
    }
    assert_int_equal(fedreci_secagg_server_create(&r->s, p, r->ids, (const uint8_t(*)[32])r->pks),
                     FEDREC_OK);
}

static void sim_free(round_sim *r)
{
    for (uint32_t i = 0; i < r->n; i++)
        fedreci_secagg_client_destroy(r->c[i]);
    fedreci_secagg_server_destroy(r->s);
    free(r->ids);
    free(r->pks);
    free(r->sks);
    free(r->c);
    free(r->x);
    free(r->w);
    free(r->drop);
}

static long index_of(const round_sim *r, uint64_t id)
{
    for (uint32_t i = 0; i < r->n; i++)
        if (r->ids[i] == id)
            return i;
    return -1;
}

/* Stage 0 for every client, then close_advertise (must succeed): the
 * roster and its size out. */
static void sim_advertise(round_sim *r, const fedreci_secagg_advert **roster, size_t *m)
{
    for (uint32_t i = 0; i < r->n; i++) {
        fedreci_secagg_advert a;
        assert_int_equal(fedreci_secagg_client_advertise(r->c[i], &a), FEDREC_OK);
        assert_int_equal(fedreci_secagg_server_add_advert(r->s, &a), FEDREC_OK);
    }
    assert_int_equal(fedreci_secagg_server_close_advertise(r->s, roster, m), FEDREC_OK);
}

/* The graph seed step for every roster member: reveal, close_reveal; the
 * contributions (m x 32, roster order) in *contribs. */
static void sim_seed(round_sim *r, const fedreci_secagg_advert *roster, size_t m,
                     const uint8_t **contribs)
{
    uint64_t *ids = malloc(m * sizeof *ids);
    assert_non_null(ids);
    for (size_t j = 0; j < m; j++)
        ids[j] = roster[j].client_id;
    for (size_t j = 0; j < m; j++) {
        long i = -1;
        for (uint32_t x = 0; x < r->n; x++)
            if (r->ids[x] == ids[j])
                i = x;
        assert_true(i >= 0);
        uint8_t contribution[32];
        assert_int_equal(fedreci_secagg_client_reveal(r->c[i], ids, m,
                                                      fedreci_secagg_server_seed_digest(r->s),
                                                      contribution),
                         FEDREC_OK);
        assert_int_equal(fedreci_secagg_server_add_reveal(r->s, ids[j], contribution), FEDREC_OK);
    }
    free(ids);
    assert_int_equal(fedreci_secagg_server_close_reveal(r->s, contribs), FEDREC_OK);
}

/* The round's parameters with the graph seed the members derived. */
static fedreci_secagg_params sim_graph_params(const round_sim *r)
{
    fedreci_secagg_params p = r->p;
    const uint8_t *seed = fedreci_secagg_server_graph_seed(r->s);
    assert_non_null(seed);
    memcpy(p.graph_seed, seed, sizeof p.graph_seed);
    return p;
}

/* A deviating server's seed step: it relays the roster ro (m adverts, sorted,
 * any it likes) with the honest digest of their seed commitments, and every
 * client in it reveals; *contribs (m x 32, malloc'd) gets the contributions. */
static void deviant_seed(round_sim *r, const fedreci_secagg_advert *ro, size_t m,
                         uint8_t **contribs)
{
    uint64_t ids[64];
    uint8_t commits[64 * 32], digest[32];
    assert_true(m <= 64);
    for (size_t j = 0; j < m; j++) {
        ids[j] = ro[j].client_id;
        memcpy(commits + 32 * j, ro[j].seed_commit, 32);
    }
    fedreci_secagg_seed_digest(digest, r->p.round_id, 0, ids, commits, m);
    *contribs = malloc(m * 32);
    assert_non_null(*contribs);
    for (size_t j = 0; j < m; j++)
        assert_int_equal(fedreci_secagg_client_reveal(r->c[index_of(r, ids[j])], ids, m, digest,
                                                      *contribs + 32 * j),
                         FEDREC_OK);
}

/* Stages 0 and 1: returns the server's result of close_advertise or
 * close_share_keys (FEDREC_OK when stage 2 is open). roster/m out. */
static fedrec_err sim_setup(round_sim *r, const fedreci_secagg_advert **roster, size_t *m)
{
    for (uint32_t i = 0; i < r->n; i++) {
        fedreci_secagg_advert a;
        assert_int_equal(fedreci_secagg_client_advertise(r->c[i], &a), FEDREC_OK);
        if (r->drop[i] == DROP_ADVERT)
            continue;
        assert_int_equal(fedreci_secagg_server_add_advert(r->s, &a), FEDREC_OK);
    }
    fedrec_err e = fedreci_secagg_server_close_advertise(r->s, roster, m);
    if (e)
        return e;
    const uint8_t *contribs;
    sim_seed(r, *roster, *m, &contribs);
    for (uint32_t i = 0; i < r->n; i++) {
        if (r->drop[i] == DROP_ADVERT)
            continue;
        const fedreci_secagg_ciphertext *cts;
        size_t n_cts;
        assert_int_equal(
            fedreci_secagg_client_share_keys(r->c[i], *roster, *m, contribs, &cts, &n_cts),
            FEDREC_OK);
        if (r->drop[i] == DROP_SHARE)
            continue;
        assert_int_equal(fedreci_secagg_server_add_shares(r->s, r->ids[i], cts, n_cts), FEDREC_OK);
    }
    return fedreci_secagg_server_close_share_keys(r->s);
}

/* Stage 2 for one client; returns the client's result. */
static fedrec_err sim_input(round_sim *r, uint32_t i)
{
    const fedreci_secagg_ciphertext *in;
    size_t n_in;
    assert_int_equal(fedreci_secagg_server_shares_for(r->s, r->ids[i], &in, &n_in), FEDREC_OK);
    const uint32_t *y;
    fedrec_err e = fedreci_secagg_client_masked_input(
        r->c[i], in, n_in, r->x + (size_t)i * (r->p.d - 1), r->w[i], &y, NULL);
    if (e)
        return e;
    assert_int_equal(fedreci_secagg_server_add_masked_input(r->s, r->ids[i], y, r->p.d), FEDREC_OK);
    return FEDREC_OK;
}

/* The consistency step: every client named a survivor in sv that does not
 * drop at unmask endorses the set (sv, dr). Returns close_consistency's
 * result. */
static fedrec_err sim_endorse(round_sim *r, const uint64_t *sv, size_t ns, const uint64_t *dr,
                              size_t nd)
{
    for (size_t j = 0; j < ns; j++) {
        long i = index_of(r, sv[j]);
        assert_true(i >= 0);
        if (r->drop[i] == DROP_UNMASK)
            continue;
        const fedreci_secagg_tag *tg;
        size_t nt;
        assert_int_equal(fedreci_secagg_client_consistency(r->c[i], sv, ns, dr, nd, &tg, &nt),
                         FEDREC_OK);
        assert_int_equal(fedreci_secagg_server_add_consistency(
                             r->s, sv[j], tg, nt, fedreci_secagg_client_endorsement(r->c[i])),
                         FEDREC_OK);
    }
    r->endorsed = 1;
    return fedreci_secagg_server_close_consistency(r->s);
}

/* Stage 3 for one client (after sim_endorse): 1 when it revealed, 0 when it
 * refused because fewer than t neighbours endorsed its set. */
static int sim_unmask_try(round_sim *r, uint32_t i)
{
    const fedreci_secagg_tag *tg;
    size_t nt;
    assert_int_equal(fedreci_secagg_server_tags_for(r->s, r->ids[i], &tg, &nt), FEDREC_OK);
    const fedreci_secagg_reveal *rv;
    size_t n_rv;
    fedrec_err e = fedreci_secagg_client_unmask(r->c[i], tg, nt, &rv, &n_rv);
    if (e) {
        assert_int_equal(e, FEDREC_ERR_PROTOCOL);
        assert_string_equal(fedreci_secagg_client_refusal(r->c[i]), FEDRECI_REFUSE_CONSISTENCY);
        return 0;
    }
    assert_int_equal(fedreci_secagg_server_add_unmask(r->s, r->ids[i], rv, n_rv), FEDREC_OK);
    return 1;
}

/* The reveals of client i: the consistency step first (once, for every
 * survivor that does not drop at unmask), then its unmask with the tags
 * relayed to it. Returns the client's result. */
static fedrec_err sim_reveals(round_sim *r, uint32_t i, const uint64_t *sv, size_t ns,
                              const uint64_t *dr, size_t nd, const fedreci_secagg_reveal **rv,
                              size_t *n_rv)
{
    if (!r->endorsed)
        assert_int_equal(sim_endorse(r, sv, ns, dr, nd), FEDREC_OK);
    const fedreci_secagg_tag *tg;
    size_t nt;
    assert_int_equal(fedreci_secagg_server_tags_for(r->s, r->ids[i], &tg, &nt), FEDREC_OK);
    return fedreci_secagg_client_unmask(r->c[i], tg, nt, rv, n_rv);
}

/* Stage 3 for one client: the consistency step first (once, for every
 * survivor that does not drop at unmask), then its reveals. */
static void sim_unmask(round_sim *r, uint32_t i, const uint64_t *sv, size_t ns, const uint64_t *dr,
                       size_t nd)
{
    if (!r->endorsed)
        assert_int_equal(sim_endorse(r, sv, ns, dr, nd), FEDREC_OK);
    assert_int_equal(sim_unmask_try(r, i), 1);
}

/* ---- exactness under random dropouts ------------------------------------------ */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Runs one random round and checks the outcome against an independent
 * prediction made from the public graph (fedreci_secagg_neighbors). */
static int random_round(uint32_t n, uint32_t k, uint32_t t, uint32_t d, double pdrop[4])
{
    int outcome = 0; /* 0 exact sum, 1..4 aborted at close of stage 0..3 */
    fedreci_secagg_params p = make_params(n, k, t, d);
    p.round_id = rnd();
    p.max_weight = 3;
    round_sim r;
    sim_init(&r, &p);
    for (uint32_t i = 0; i < n; i++) {
        double u = rnd_unit();
        r.drop[i] = u < pdrop[0]                                    ? DROP_ADVERT
                    : u < pdrop[0] + pdrop[1]                       ? DROP_SHARE
                    : u < pdrop[0] + pdrop[1] + pdrop[2]            ? DROP_INPUT
                    : u < pdrop[0] + pdrop[1] + pdrop[2] + pdrop[3] ? DROP_UNMASK
                                                                    : DROP_NONE;
    }
    /* Prediction. Roster: the sorted ids of the advertisers. */
    uint64_t *roster_ids = malloc(n * sizeof *roster_ids);
    uint32_t m = 0;
    for (uint32_t i = 0; i < n; i++)
        if (r.drop[i] != DROP_ADVERT)
            roster_ids[m++] = r.ids[i];
    qsort(roster_ids, m, sizeof *roster_ids, cmp_u64);

    const fedreci_secagg_advert *roster;
    size_t m_out;
    fedrec_err e = sim_setup(&r, &roster, &m_out);
    uint32_t deg = 0;
    uint32_t *nb = malloc((size_t)(m ? m : 1) * n * sizeof *nb);
    if (m >= 2 && fedreci_secagg_server_graph_seed(r.s)) {
        /* the graph of the seed the members derived */
        fedreci_secagg_params pg = sim_graph_params(&r);
        for (uint32_t u = 0; u < m; u++)
            assert_int_equal(fedreci_secagg_neighbors(&pg, m, u, nb + (size_t)u * n, n, &deg),
                             FEDREC_OK);
    }
    if (m < t || m < 2 || deg < t) {
        outcome = 1;
        assert_int_equal(e, FEDREC_ERR_ABORTED);
        assert_int_equal(fedreci_secagg_server_stage(r.s), FEDRECI_SECAGG_ABORTED);
        goto done;
    }
    assert_int_equal(m_out, m);
    /* status per roster member: 0 none, 1 shared, 2 input, 3 unmasked */
    int *st = calloc(m, sizeof *st);
    uint32_t senders = 0;
    for (uint32_t u = 0; u < m; u++) {
        int dr = r.drop[index_of(&r, roster_ids[u])];
        st[u] = dr == DROP_SHARE ? 0 : 1;
        senders += st[u] != 0;
    }
    if (senders < t) {
        outcome = 2;
        assert_int_equal(e, FEDREC_ERR_ABORTED);
        free(st);
        goto done;
    }
    assert_int_equal(e, FEDREC_OK);
    /* Stage 2: a sender whose neighbours sent fewer than t bundles cannot
     * mask (the client refuses) and counts as dropped. */
    uint32_t *q_expect = calloc(d, sizeof *q_expect);
    uint32_t inputs = 0;
    for (uint32_t u = 0; u < m; u++) {
        if (!st[u])
            continue;
        uint32_t i = (uint32_t)index_of(&r, roster_ids[u]);
        uint32_t have = 0;
        for (uint32_t j = 0; j < deg; j++)
            have += st[nb[(size_t)u * n + j]] != 0;
        if (r.drop[i] == DROP_INPUT)
            continue;
        fedrec_err ei = sim_input(&r, i);
        if (have < t) {
            assert_int_equal(ei, FEDREC_ERR_PROTOCOL);
            continue;
        }
        assert_int_equal(ei, FEDREC_OK);
        st[u] = 2;
        inputs++;
        const uint32_t *q = fedreci_secagg_client_quantized_input(r.c[i]);
        assert_non_null(q);
        for (uint32_t j = 0; j < d; j++)
            q_expect[j] += q[j];
        assert_int_equal(q[d - 1], r.w[i]);
    }
    int feasible = inputs >= t;
    for (uint32_t u = 0; u < m && feasible; u++) {
        if (!st[u])
            continue;
        uint32_t c = 0;
        for (uint32_t j = 0; j < deg; j++)
            c += st[nb[(size_t)u * n + j]] == 2;
        feasible = c >= t;
    }
    const uint64_t *sv, *dr;
    size_t ns, nd;
    e = fedreci_secagg_server_close_masked_input(r.s, &sv, &ns, &dr, &nd);
    if (!feasible) {
        outcome = 3;
        assert_int_equal(e, FEDREC_ERR_ABORTED);
        goto done2;
    }
    assert_int_equal(e, FEDREC_OK);
    assert_int_equal(ns, inputs);
    /* the consistency step: the survivors that stay endorse the set; with
       fewer than t of them the round aborts; each reveals only with t
       endorsements from its neighbours */
    uint32_t stay = 0;
    for (uint32_t u = 0; u < m; u++)
        if (st[u] == 2 && r.drop[index_of(&r, roster_ids[u])] != DROP_UNMASK) {
            st[u] = 4; /* endorsed */
            stay++;
        }
    /* the coordinator knows who endorsed (signatures it verified), so who
       will reveal (an endorser with t endorsing neighbours: the tag, or the
       signature when the tag fails, counts) and whether every secret keeps
       t revealing holders; if not, it aborts the round now */
    int will = 1;
    for (uint32_t u = 0; u < m && will; u++) {
        if (!st[u])
            continue;
        uint32_t c = 0;
        for (uint32_t j = 0; j < deg; j++) {
            uint32_t v = nb[(size_t)u * n + j];
            uint32_t ev = 0;
            for (uint32_t q = 0; st[v] == 4 && q < deg; q++)
                ev += st[nb[(size_t)v * n + q]] == 4;
            c += st[v] == 4 && ev >= t;
        }
        will = c >= t;
    }
    e = sim_endorse(&r, sv, ns, dr, nd);
    if (stay < t || !will) {
        outcome = 4;
        assert_int_equal(e, FEDREC_ERR_ABORTED);
        assert_int_equal(fedreci_secagg_server_stage(r.s), FEDRECI_SECAGG_ABORTED);
        goto done2;
    }
    assert_int_equal(e, FEDREC_OK);
    for (uint32_t u = 0; u < m; u++) {
        if (st[u] != 4)
            continue;
        uint32_t c = 0;
        for (uint32_t j = 0; j < deg; j++)
            c += st[nb[(size_t)u * n + j]] >= 3; /* endorsed (3: and revealed) */
        uint32_t i = (uint32_t)index_of(&r, roster_ids[u]);
        assert_int_equal(sim_unmask_try(&r, i), c >= t);
        st[u] = c >= t ? 3 : 5; /* 5: endorsed, refused to reveal */
    }
    feasible = 1;
    for (uint32_t u = 0; u < m && feasible; u++) {
        if (!st[u])
            continue;
        uint32_t c = 0;
        for (uint32_t j = 0; j < deg; j++)
            c += st[nb[(size_t)u * n + j]] == 3;
        feasible = c >= t;
    }
    uint32_t *sum = calloc(d, sizeof *sum);
    e = fedreci_secagg_server_finish(r.s, sum, d);
    if (!feasible) {
        outcome = 4;
        assert_int_equal(e, FEDREC_ERR_ABORTED);
        assert_int_equal(fedreci_secagg_server_stage(r.s), FEDRECI_SECAGG_ABORTED);
    } else {
        assert_int_equal(e, FEDREC_OK);
        assert_memory_equal(sum, q_expect, (size_t)d * sizeof *sum);
        assert_int_equal(fedreci_secagg_server_stage(r.s), FEDRECI_SECAGG_DONE);
    }
    free(sum);
done2:
    free(q_expect);
    free(st);
done:
    free(nb);
    free(roster_ids);
    sim_free(&r);
    return outcome;
}

static void test_exact_sum_no_dropout(void **state)
{
    (void)state;
    double none[4] = {0, 0, 0, 0};
    assert_int_equal(random_round(2, 1, 1, 5, none), 0);
    assert_int_equal(random_round(3, 2, 2, 17, none), 0);
    assert_int_equal(random_round(10, 9, 6, 300, none), 0);  /* classic SecAgg */
    assert_int_equal(random_round(40, 8, 5, 33, none), 0);   /* SecAgg+ */
    assert_int_equal(random_round(21, 5, 3, 4097, none), 0); /* odd k, odd m: k + 1 */
    assert_int_equal(random_round(20, 5, 3, 70, none), 0);   /* odd k, even m: diameters */
    assert_int_equal(random_round(300, 20, 11, 5, none), 0);
}

/* Unbuffered clients (every second one) mask into one pair of buffers
 * lent to each in turn; the server's sum is still exactly the sum of the
 * quantized inputs, which for them only the lent q held. */
static void test_unbuffered_clients(void **state)
{
    (void)state;
    fedreci_secagg_params p = make_params(12, 6, 4, 257);
    round_sim r;
    sim_init(&r, &p);
    for (uint32_t i = 1; i < r.n; i += 2) {
        uint8_t seed[32] = {(uint8_t)i};
        fedreci_secagg_client_destroy(r.c[i]);
        assert_int_equal(
            fedreci_secagg_client_create_unbuffered(&r.c[i], &p, r.ids[i], r.sks[i], seed),
            FEDREC_OK);
    }
    const fedreci_secagg_advert *roster;
    size_t m;
    assert_int_equal(sim_setup(&r, &roster, &m), FEDREC_OK);
    uint32_t *q = calloc(p.d, sizeof *q), *mk = calloc(p.d, sizeof *mk);
    uint32_t *oracle = calloc(p.d, sizeof *oracle), *sum = calloc(p.d, sizeof *sum);
    assert_non_null(sum);
    for (uint32_t i = 0; i < r.n; i++) {
        const fedreci_secagg_ciphertext *in;
        size_t n_in;
        const float *x = r.x + (size_t)i * (p.d - 1);
        assert_int_equal(fedreci_secagg_server_shares_for(r.s, r.ids[i], &in, &n_in), FEDREC_OK);
        const uint32_t *y = NULL, *qi = NULL;
        if (i % 2) {
            /* the client's own masked_input has nothing to write into */
            assert_int_equal(
                fedreci_secagg_client_masked_input(r.c[i], in, n_in, x, r.w[i], &y, NULL),
                FEDREC_ERR_INVALID);
            assert_int_equal(fedreci_secagg_client_stage(r.c[i]), FEDRECI_SECAGG_MASKED_INPUT);
            memset(q, 0xa5, p.d * sizeof *q);
            assert_int_equal(
                fedreci_secagg_client_masked_input_into(r.c[i], in, n_in, x, r.w[i], q, mk, NULL),
                FEDREC_OK);
            assert_null(fedreci_secagg_client_quantized_input(r.c[i]));
            y = mk;
            qi = q;
        } else {
            assert_int_equal(
                fedreci_secagg_client_masked_input(r.c[i], in, n_in, x, r.w[i], &y, NULL),
                FEDREC_OK);
            qi = fedreci_secagg_client_quantized_input(r.c[i]);
        }
        for (uint32_t j = 0; j < p.d; j++)
            oracle[j] += qi[j];
        assert_int_equal(fedreci_secagg_server_add_masked_input(r.s, r.ids[i], y, p.d), FEDREC_OK);
        if (i % 2)
            memset(mk, 0x5a, p.d * sizeof *mk); /* the client kept no pointer to it */
    }
    const uint64_t *sv, *dr;
    size_t ns, nd;
    assert_int_equal(fedreci_secagg_server_close_masked_input(r.s, &sv, &ns, &dr, &nd), FEDREC_OK);
    assert_int_equal(ns, r.n);
    for (uint32_t i = 0; i < r.n; i++)
        sim_unmask(&r, i, sv, ns, dr, nd);
    assert_int_equal(fedreci_secagg_server_finish(r.s, sum, p.d), FEDREC_OK);
    assert_memory_equal(sum, oracle, p.d * sizeof *sum);
    free(q);
    free(mk);
    free(oracle);
    free(sum);
    sim_free(&r);
}

static void test_exact_sum_random_dropouts(void **state)
{
    (void)state;
    int completed = 0, aborted = 0;
    for (int trial = 0; trial < 40; trial++) {
        uint32_t n = 2 + rnd_below(trial < 6 ? 299 : 80);
        uint32_t kmax = n - 1;
        if (n > 60 && kmax > 30)
            kmax = 30;
        uint32_t k = 1 + rnd_below(kmax);
        uint32_t t = k / 2 + 1 + rnd_below(k - k / 2);
        uint32_t d = n > 100 ? 2 + rnd_below(20) : 2 + rnd_below(400);
        double pd[4];
        double scale = rnd_unit() * 0.1;
        for (int s = 0; s < 4; s++)
            pd[s] = rnd_unit() * scale;
        fedreci_secagg_params p = make_params(n, k, t, d);
        assert_int_equal(fedreci_secagg_params_check(&p), FEDREC_OK);
        int o = random_round(n, k, t, d, pd);
        completed += o == 0;
        aborted += o != 0;
    }
    /* The fixed seed exercises both outcomes. */
    print_message("random rounds: %d exact, %d aborted\n", completed, aborted);
    assert_true(completed >= 20);
    assert_true(aborted >= 2);
}

/* Drop-at-each-stage cases with known outcomes. */
static void test_dropout_each_stage(void **state)
{
    (void)state;
    for (int stage = DROP_ADVERT; stage <= DROP_UNMASK; stage++) {
        fedreci_secagg_params p = make_params(12, 11, 7, 9);
        round_sim r;
        sim_init(&r, &p);
        r.drop[3] = stage;
        r.drop[8] = stage;
        const fedreci_secagg_advert *roster;
        size_t m;
        assert_int_equal(sim_setup(&r, &roster, &m), FEDREC_OK);
        uint32_t expect[9] = {0};
        for (uint32_t i = 0; i < r.n; i++) {
            if (r.drop[i] == DROP_ADVERT || r.drop[i] == DROP_SHARE || r.drop[i] == DROP_INPUT)
                continue;
            assert_int_equal(sim_input(&r, i), FEDREC_OK);
            const uint32_t *q = fedreci_secagg_client_quantized_input(r.c[i]);
            for (int j = 0; j < 9; j++)
                expect[j] += q[j];
        }
        const uint64_t *sv, *dr;
        size_t ns, nd;
        assert_int_equal(fedreci_secagg_server_close_masked_input(r.s, &sv, &ns, &dr, &nd),
                         FEDREC_OK);
        assert_int_equal(ns, stage <= DROP_INPUT ? 10 : 12);
        assert_int_equal(nd, stage == DROP_INPUT ? 2 : 0);
        for (uint32_t i = 0; i < r.n; i++)
            if (r.drop[i] == DROP_NONE)
                sim_unmask(&r, i, sv, ns, dr, nd);
        uint32_t sum[9];
        assert_int_equal(fedreci_secagg_server_finish(r.s, sum, 9), FEDREC_OK);
        assert_memory_equal(sum, expect, sizeof sum);
        sim_free(&r);
    }
}

/* Too many dropouts: every stage aborts cleanly with FEDREC_ERR_ABORTED. */
static void test_abort_below_threshold(void **state)
{
    (void)state;
    for (int stage = DROP_ADVERT; stage <= DROP_UNMASK; stage++) {
        fedreci_secagg_params p = make_params(8, 7, 5, 4);
        round_sim r;
        sim_init(&r, &p);
        for (int i = 0; i < 4; i++)
            r.drop[i] = stage; /* 4 of 8 left < t = 5 */
        const fedreci_secagg_advert *roster;
        size_t m;
        fedrec_err e = sim_setup(&r, &roster, &m);
        if (stage <= DROP_SHARE) {
            assert_int_equal(e, FEDREC_ERR_ABORTED);
            assert_int_equal(fedreci_secagg_server_stage(r.s), FEDRECI_SECAGG_ABORTED);
            sim_free(&r);
            continue;
        }
        assert_int_equal(e, FEDREC_OK);
        for (uint32_t i = 0; i < r.n; i++)
            if (r.drop[i] != DROP_INPUT)
                assert_int_equal(sim_input(&r, i), FEDREC_OK);
        const uint64_t *sv, *dr;
        size_t ns, nd;
        e = fedreci_secagg_server_close_masked_input(r.s, &sv, &ns, &dr, &nd);
        if (stage == DROP_INPUT) {
            assert_int_equal(e, FEDREC_ERR_ABORTED);
            sim_free(&r);
            continue;
        }
        assert_int_equal(e, FEDREC_OK);
        /* 4 survivors endorse, fewer than t: the consistency step aborts
           the round before anyone reveals */
        assert_int_equal(sim_endorse(&r, sv, ns, dr, nd), FEDREC_ERR_ABORTED);
        uint32_t sum[4] = {1, 2, 3, 4};
        assert_int_equal(fedreci_secagg_server_finish(r.s, sum, 4), FEDREC_ERR_STAGE);
        assert_int_equal(sum[0], 1); /* out-param untouched */
        assert_int_equal(fedreci_secagg_server_stage(r.s), FEDRECI_SECAGG_ABORTED);
        sim_free(&r);
    }
}

/* ---- the client never reveals both shares of one neighbour ---------------------- */

static void test_never_both_shares(void **state)
{
    (void)state;
    fedreci_secagg_params p = make_params(6, 5, 3, 3);
    round_sim r;
    sim_init(&r, &p);
    const fedreci_secagg_advert *roster;
    size_t m;
    assert_int_equal(sim_setup(&r, &roster, &m), FEDREC_OK);
    for (uint32_t i = 0; i < r.n; i++)
        if (i != 2)
            assert_int_equal(sim_input(&r, i), FEDREC_OK);
    const uint64_t *sv, *dr;
    size_t ns, nd;
    assert_int_equal(fedreci_secagg_server_close_masked_input(r.s, &sv, &ns, &dr, &nd), FEDREC_OK);
    assert_int_equal(nd, 1);
    assert_true(dr[0] == r.ids[2]);
    uint32_t asker = 0;
    fedreci_secagg_client *c = r.c[asker];

    /* Malformed requests are refused, and leave the client ready. */
    const fedreci_secagg_tag *tg;
    size_t nt;
    assert_null(fedreci_secagg_client_refusal(c));
    assert_int_equal(fedreci_secagg_client_consistency(c, sv, ns, sv, 1, &tg, &nt),
                     FEDREC_ERR_PROTOCOL); /* one id in both lists */
    assert_string_equal(fedreci_secagg_client_refusal(c), FEDRECI_REFUSE_UNMASK_BOTH);
    assert_int_equal(fedreci_secagg_client_consistency(c, sv, 2, dr, nd, &tg, &nt),
                     FEDREC_ERR_PROTOCOL); /* fewer than t survivors */
    assert_string_equal(fedreci_secagg_client_refusal(c), FEDRECI_REFUSE_UNMASK_BAD);
    uint64_t others[5];
    size_t no = 0;
    for (size_t i = 0; i < ns; i++)
        if (sv[i] != r.ids[asker])
            others[no++] = sv[i];
    assert_int_equal(fedreci_secagg_client_consistency(c, others, no, dr, nd, &tg, &nt),
                     FEDREC_ERR_PROTOCOL); /* the asked client is not a survivor */
    assert_int_equal(fedreci_secagg_client_stage(c), FEDRECI_SECAGG_CONSISTENCY);

    /* The honest request: one tag per neighbour named a survivor. */
    assert_int_equal(fedreci_secagg_client_consistency(c, sv, ns, dr, nd, &tg, &nt), FEDREC_OK);
    assert_int_equal(nt, 4);
    fedreci_secagg_tag first_tags[4];
    memcpy(first_tags, tg, sizeof first_tags);
    /* An identical repeat: the same tags. */
    assert_int_equal(fedreci_secagg_client_consistency(c, sv, ns, dr, nd, &tg, &nt), FEDREC_OK);
    assert_int_equal(nt, 4);
    assert_memory_equal(tg, first_tags, sizeof first_tags);
    /* A different request (claiming client 2 survived, or another dropped)
     * could reveal a second share of some neighbour: refused. */
    uint64_t all[6];
    memcpy(all, r.ids, sizeof all);
    qsort(all, 6, sizeof *all, cmp_u64);
    assert_int_equal(fedreci_secagg_client_consistency(c, all, 6, NULL, 0, &tg, &nt),
                     FEDREC_ERR_PROTOCOL);
    assert_string_equal(fedreci_secagg_client_refusal(c), FEDRECI_REFUSE_UNMASK_AGAIN);
    uint64_t other = 0, sv2[4], dr2[2];
    size_t n2 = 0, d2 = 0;
    for (size_t i = 0; i < 6 && !other; i++)
        if (all[i] != r.ids[asker] && all[i] != r.ids[2])
            other = all[i];
    for (size_t i = 0; i < 6; i++) {
        if (all[i] == r.ids[2] || all[i] == other)
            dr2[d2++] = all[i];
        else
            sv2[n2++] = all[i];
    }
    assert_int_equal(fedreci_secagg_client_consistency(c, sv2, n2, dr2, d2, &tg, &nt),
                     FEDREC_ERR_PROTOCOL);
    /* Without the neighbours' endorsements nothing is revealed. */
    const fedreci_secagg_reveal *rv;
    size_t n_rv;
    assert_int_equal(fedreci_secagg_client_unmask(c, NULL, 0, &rv, &n_rv), FEDREC_ERR_PROTOCOL);
    assert_string_equal(fedreci_secagg_client_refusal(c), FEDRECI_REFUSE_CONSISTENCY);
    assert_int_equal(fedreci_secagg_client_stage(c), FEDRECI_SECAGG_UNMASK);
    /* Everyone endorses (c repeats its identical answer), then c reveals b
       shares for survivors, the s^SK share for the dropped. */
    assert_int_equal(sim_endorse(&r, sv, ns, dr, nd), FEDREC_OK);
    const fedreci_secagg_tag *in;
    size_t n_in;
    assert_int_equal(fedreci_secagg_server_tags_for(r.s, r.ids[asker], &in, &n_in), FEDREC_OK);
    assert_int_equal(n_in, 4);
    assert_int_equal(fedreci_secagg_client_unmask(c, in, n_in, &rv, &n_rv), FEDREC_OK);
    assert_int_equal(n_rv, 5);
    fedreci_secagg_reveal first[5];
    memcpy(first, rv, sizeof first);
    for (size_t i = 0; i < n_rv; i++) {
        int is_dropped = rv[i].about == r.ids[2];
        assert_int_equal(rv[i].kind, is_dropped ? FEDRECI_SECAGG_SHARE_SK : FEDRECI_SECAGG_SHARE_B);
        for (size_t j = 0; j < i; j++)
            assert_true(rv[j].about != rv[i].about);
    }
    /* A repeat: the same answer. */
    assert_int_equal(fedreci_secagg_client_unmask(c, in, n_in, &rv, &n_rv), FEDREC_OK);
    assert_int_equal(n_rv, 5);
    assert_memory_equal(rv, first, sizeof first);
    /* The server refuses reveals of the wrong kind. */
    fedreci_secagg_reveal wrong = first[0];
    wrong.kind =
        wrong.kind == FEDRECI_SECAGG_SHARE_B ? FEDRECI_SECAGG_SHARE_SK : FEDRECI_SECAGG_SHARE_B;
    assert_int_equal(fedreci_secagg_server_add_unmask(r.s, r.ids[asker], &wrong, 1),
                     FEDREC_ERR_PROTOCOL);
    /* The round still completes exactly. */
    uint32_t expect[3] = {0};
    for (uint32_t i = 0; i < r.n; i++) {
        if (i == 2)
            continue;
        const uint32_t *q = fedreci_secagg_client_quantized_input(r.c[i]);
        for (int j = 0; j < 3; j++)
            expect[j] += q[j];
        if (i == asker)
            assert_int_equal(fedreci_secagg_server_add_unmask(r.s, r.ids[i], first, 5), FEDREC_OK);
        else
            sim_unmask(&r, i, sv, ns, dr, nd);
    }
    uint32_t sum[3];
    assert_int_equal(fedreci_secagg_server_finish(r.s, sum, 3), FEDREC_OK);
    assert_memory_equal(sum, expect, sizeof sum);
    sim_free(&r);
}

/* ---- out-of-order, replayed and wrong-round messages --------------------------- */

/* Model and parameter binding: every advert signs the digest of the model and
 * parameters its client received. The server refuses an advert with another
 * binding; a client refuses a roster in which a neighbour's advert carries
 * another (a crafted model sent to one shopper, Pasquini et al. CCS 2022),
 * before dealing any share, and names the refusal. */
static void test_binding_mismatch(void **state)
{
    (void)state;
    fedreci_secagg_params p = make_params(5, 4, 3, 9);
    round_sim r;
    sim_init(&r, &p);
    uint8_t good[32], crafted[32];
    memset(good, 0x5a, sizeof good);
    memcpy(crafted, good, sizeof crafted);
    crafted[31] ^= 1; /* client 0 was given another model */
    fedreci_secagg_server_set_binding(r.s, good);
    fedreci_secagg_advert adv[5];
    for (uint32_t i = 0; i < r.n; i++) {
        assert_int_equal(fedreci_secagg_client_set_binding(r.c[i], i == 0 ? crafted : good),
                         FEDREC_OK);
        assert_int_equal(fedreci_secagg_client_advertise(r.c[i], &adv[i]), FEDREC_OK);
        assert_memory_equal(adv[i].binding, i == 0 ? crafted : good, 32);
        /* after advertise the binding cannot change */
        assert_int_equal(fedreci_secagg_client_set_binding(r.c[i], good), FEDREC_ERR_STAGE);
    }
    /* an honest server refuses the advert that binds another model */
    assert_int_equal(fedreci_secagg_server_add_advert(r.s, &adv[0]), FEDREC_ERR_PROTOCOL);
    for (uint32_t i = 1; i < r.n; i++)
        assert_int_equal(fedreci_secagg_server_add_advert(r.s, &adv[i]), FEDREC_OK);
    /* the binding is signed: changing it breaks the advert's signature */
    fedreci_secagg_advert forged = adv[0];
    memcpy(forged.binding, good, 32);
    assert_int_equal(fedreci_secagg_server_add_advert(r.s, &forged), FEDREC_ERR_SIGNATURE);

    /* a deviating server relays client 0's advert anyway: in the complete
       graph every other client has it as a neighbour and refuses */
    fedreci_secagg_advert ro[5];
    for (uint32_t i = 0; i < r.n; i++) {
        ro[i] = adv[i];
        memcpy(ro[i].identity_pk, r.pks[i], 32);
    }
    for (uint32_t i = 0; i < r.n; i++)
        for (uint32_t j = i + 1; j < r.n; j++)
            if (ro[j].client_id < ro[i].client_id) {
                fedreci_secagg_advert t = ro[i];
                ro[i] = ro[j];
                ro[j] = t;
            }
    uint8_t *contribs;
    deviant_seed(&r, ro, r.n, &contribs);
    for (uint32_t i = 1; i < r.n; i++) {
        const fedreci_secagg_ciphertext *cts = NULL;
        size_t n_cts = 0;
        assert_int_equal(fedreci_secagg_client_share_keys(r.c[i], ro, r.n, contribs, &cts, &n_cts),
                         FEDREC_ERR_PROTOCOL);
        assert_string_equal(fedreci_secagg_client_refusal(r.c[i]), FEDRECI_REFUSE_BINDING);
        assert_null(cts); /* no share dealt */
        assert_int_equal(fedreci_secagg_client_stage(r.c[i]), FEDRECI_SECAGG_SHARE_KEYS);
    }
    /* client 0 sees every neighbour with another binding than its own */
    const fedreci_secagg_ciphertext *cts = NULL;
    size_t n_cts = 0;
    assert_int_equal(fedreci_secagg_client_share_keys(r.c[0], ro, r.n, contribs, &cts, &n_cts),
                     FEDREC_ERR_PROTOCOL);
    assert_string_equal(fedreci_secagg_client_refusal(r.c[0]), FEDRECI_REFUSE_BINDING);
    free(contribs);
    sim_free(&r);
}

/* The consistency check against a coordinator that tells different clients
 * different survivor sets (Bonawitz et al. 2017, section 6). Classic SecAgg,
 * n = 6, k = 5, t = 3, no colluder: the coordinator names client 0 a
 * survivor to everyone (to get its self-mask seed b_0) and each other client
 * w a survivor only in w's own set with one more (so that the mask keys of
 * all of 0's neighbours are revealed by t holders each). Without the check
 * that is enough to unmask client 0 with no colluding client (b_0 from 5
 * holders, each s_v from 3); with it, every client holds endorsements of its
 * set from fewer than t neighbours, refuses, and reveals nothing. */
static void test_consistency_split(void **state)
{
    (void)state;
    fedreci_secagg_params p = make_params(6, 5, 3, 5);
    round_sim r;
    sim_init(&r, &p);
    const fedreci_secagg_advert *roster;
    size_t m;
    assert_int_equal(sim_setup(&r, &roster, &m), FEDREC_OK);
    for (uint32_t i = 0; i < r.n; i++)
        assert_int_equal(sim_input(&r, i), FEDREC_OK);
    const uint64_t *sv, *dr;
    size_t ns, nd;
    assert_int_equal(fedreci_secagg_server_close_masked_input(r.s, &sv, &ns, &dr, &nd), FEDREC_OK);
    assert_int_equal(ns, 6);
    uint64_t all[6];
    memcpy(all, sv, sizeof all);
    /* the target: all[0]; the others all[1..5], in a ring */
    fedreci_secagg_tag tags[6][5];
    size_t n_tags[6];
    fedreci_secagg_endorsement es[6]; /* every member's signature over its own set */
    for (int w = 1; w <= 5; w++) {
        int x = w % 5 + 1; /* the one other survivor in w's set */
        uint64_t s3[3] = {all[0], all[w], all[x]}, d3[3];
        size_t nd3 = 0;
        qsort(s3, 3, sizeof *s3, cmp_u64);
        for (int v = 1; v <= 5; v++)
            if (v != w && v != x)
                d3[nd3++] = all[v];
        long ci = index_of(&r, all[w]);
        const fedreci_secagg_tag *tg;
        assert_int_equal(
            fedreci_secagg_client_consistency(r.c[ci], s3, 3, d3, nd3, &tg, &n_tags[w]), FEDREC_OK);
        assert_int_equal(n_tags[w], 2); /* to the two other survivors it was told of */
        memcpy(tags[w], tg, n_tags[w] * sizeof *tg);
        es[w].from = all[w];
        memcpy(es[w].sig, fedreci_secagg_client_endorsement(r.c[ci]), sizeof es[w].sig);
    }
    {
        long ci = index_of(&r, all[0]);
        const fedreci_secagg_tag *tg;
        assert_int_equal(
            fedreci_secagg_client_consistency(r.c[ci], all, 6, NULL, 0, &tg, &n_tags[0]),
            FEDREC_OK);
        assert_int_equal(n_tags[0], 5);
        memcpy(tags[0], tg, n_tags[0] * sizeof *tg);
        es[0].from = all[0];
        memcpy(es[0].sig, fedreci_secagg_client_endorsement(r.c[ci]), sizeof es[0].sig);
    }
    /* the coordinator relays every tag addressed to each client (it cannot
       make others: the tags are keyed with the members' pair keys), plus a
       forged one, and every member's endorsement signature (each over the
       signer's own set: it cannot make others either) */
    size_t revealed = 0;
    for (int to = 0; to < 6; to++) {
        fedreci_secagg_tag in[32];
        size_t n_in = 0;
        for (int from = 0; from < 6; from++)
            for (size_t j = 0; j < n_tags[from]; j++)
                if (tags[from][j].to == all[to])
                    in[n_in++] = tags[from][j];
        in[n_in] = in[0];
        in[n_in].tag[0] ^= 1;
        n_in++;
        long ci = index_of(&r, all[to]);
        const fedreci_secagg_reveal *rv = NULL;
        size_t n_rv = 0;
        assert_int_equal(
            fedreci_secagg_client_unmask_endorsed(r.c[ci], in, n_in, es, 6, &rv, &n_rv),
            FEDREC_ERR_PROTOCOL);
        assert_string_equal(fedreci_secagg_client_refusal(r.c[ci]), FEDRECI_REFUSE_CONSISTENCY);
        assert_null(rv);
        revealed += n_rv;
        assert_int_equal(fedreci_secagg_client_stage(r.c[ci]), FEDRECI_SECAGG_UNMASK);
    }
    assert_int_equal(revealed, 0);
    sim_free(&r);

    /* The same clients told one set: t endorsements each, all reveal, and
       the sum is exact (the check costs nothing to an honest round). */
    sim_init(&r, &p);
    assert_int_equal(sim_setup(&r, &roster, &m), FEDREC_OK);
    uint32_t want[5] = {0};
    for (uint32_t i = 0; i < r.n; i++) {
        assert_int_equal(sim_input(&r, i), FEDREC_OK);
        const uint32_t *q = fedreci_secagg_client_quantized_input(r.c[i]);
        for (int j = 0; j < 5; j++)
            want[j] += q[j];
    }
    assert_int_equal(fedreci_secagg_server_close_masked_input(r.s, &sv, &ns, &dr, &nd), FEDREC_OK);
    for (uint32_t i = 0; i < r.n; i++)
        sim_unmask(&r, i, sv, ns, dr, nd);
    uint32_t sum[5];
    assert_int_equal(fedreci_secagg_server_finish(r.s, sum, 5), FEDREC_OK);
    assert_memory_equal(sum, want, sizeof sum);
    sim_free(&r);
}

/* The graph seed: derived from every member's contribution, which it
 * committed to in its signed advert before the roster was fixed; the
 * coordinator's digest of the commitments comes before any contribution. A
 * coordinator that relays another contribution for a member (its own choice,
 * made after seeing the others) is caught by every client: the digest no
 * longer opens (seed_mismatch); a member missing from the reveals aborts the
 * round; and two rounds with the same members get unrelated graphs. */
static void test_graph_seed(void **state)
{
    (void)state;
    fedreci_secagg_params p = make_params(8, 4, 3, 3);
    round_sim r;
    sim_init(&r, &p);
    const fedreci_secagg_advert *roster;
    size_t m;
    sim_advertise(&r, &roster, &m);
    assert_null(fedreci_secagg_server_graph_seed(r.s)); /* not before the reveals */
    uint64_t ids[8];
    for (size_t j = 0; j < m; j++)
        ids[j] = roster[j].client_id;
    const uint8_t *digest = fedreci_secagg_server_seed_digest(r.s);
    assert_non_null(digest);
    uint8_t contribs[8 * 32];
    for (size_t j = 0; j < m; j++) {
        uint8_t c[32] = {0}; /* a slot: 16 bytes of contribution, then zeros */
        assert_int_equal(fedreci_secagg_client_reveal(r.c[index_of(&r, ids[j])], ids, m, digest, c),
                         FEDREC_OK);
        memcpy(contribs + 32 * j, c, 32);
        if (j + 1 < m) /* the last member does not reveal yet */
            assert_int_equal(fedreci_secagg_server_add_reveal(r.s, ids[j], c), FEDREC_OK);
    }
    /* a contribution substituted for one member (say the coordinator's own
       client's, chosen after seeing the others): every client refuses */
    uint8_t ground[8 * 32];
    memcpy(ground, contribs, sizeof ground);
    ground[3 * 32 + 7] ^= 0x5a;
    for (size_t j = 0; j < m; j++) {
        const fedreci_secagg_ciphertext *cts = NULL;
        size_t n_cts = 0;
        uint32_t i = (uint32_t)index_of(&r, ids[j]);
        assert_int_equal(fedreci_secagg_client_share_keys(r.c[i], roster, m, ground, &cts, &n_cts),
                         FEDREC_ERR_PROTOCOL);
        assert_string_equal(fedreci_secagg_client_refusal(r.c[i]), FEDRECI_REFUSE_SEED);
        assert_null(cts);
    }
    /* members that never reveal (protocol version 8: none may be missing
       from an attempt): without a retry left, one silent member aborts the
       round (and so do two); a relay that says a member did not reveal is
       refused by every client */
    for (int n_silent = 1; n_silent <= 2; n_silent++) {
        round_sim r2;
        sim_init(&r2, &p);
        const fedreci_secagg_advert *ro2;
        size_t m2;
        sim_advertise(&r2, &ro2, &m2);
        uint64_t id2[8];
        uint8_t values[8 * 32], miss2[8] = {0};
        for (size_t j = 0; j < m2; j++)
            id2[j] = ro2[j].client_id;
        for (size_t j = 0; j < m2; j++) {
            uint8_t c[32] = {0};
            assert_int_equal(fedreci_secagg_client_reveal(r2.c[index_of(&r2, id2[j])], id2, m2,
                                                          fedreci_secagg_server_seed_digest(r2.s),
                                                          c),
                             FEDREC_OK);
            memcpy(values + 32 * j, c, 32);
            if (j >= (size_t)n_silent) /* the first n_silent stay silent */
                assert_int_equal(fedreci_secagg_server_add_reveal(r2.s, id2[j], c), FEDREC_OK);
            if (j == 0 && n_silent == 1) {
                /* a contribution that does not open its member's commitment:
                   refused, and its sender is named a culprit, so that its
                   right one is refused too (it stays out) */
                c[0] ^= 1;
                assert_int_equal(fedreci_secagg_server_add_reveal(r2.s, id2[j], c),
                                 FEDREC_ERR_PROTOCOL);
                c[0] ^= 1;
                assert_int_equal(fedreci_secagg_server_add_reveal(r2.s, id2[j], c),
                                 FEDREC_ERR_PROTOCOL);
                const uint64_t *cul = NULL;
                assert_int_equal(fedreci_secagg_server_culprits(r2.s, &cul), 1);
                assert_true(cul[0] == id2[0]);
            }
        }
        /* a relay naming member 0 missing (its commitment standing in) */
        memcpy(values, ro2[0].seed_commit, 32);
        miss2[0] = 1;
        for (size_t j = 1; j < m2; j++) {
            const fedreci_secagg_ciphertext *cts = NULL;
            size_t n_cts = 0;
            uint32_t i = (uint32_t)index_of(&r2, id2[j]);
            assert_int_equal(fedreci_secagg_client_share_keys_missing(r2.c[i], ro2, m2, values,
                                                                      miss2, &cts, &n_cts),
                             FEDREC_ERR_PROTOCOL);
            assert_string_equal(fedreci_secagg_client_refusal(r2.c[i]), FEDRECI_REFUSE_SEED);
            assert_null(cts);
        }
        const uint8_t *cg2;
        assert_int_equal(fedreci_secagg_server_close_reveal(r2.s, &cg2), FEDREC_ERR_ABORTED);
        assert_int_equal(fedreci_secagg_server_stage(r2.s), FEDRECI_SECAGG_ABORTED);
        sim_free(&r2);
    }
    /* the honest reveals: everyone derives the server's seed and graph */
    assert_int_equal(fedreci_secagg_server_add_reveal(r.s, ids[m - 1], contribs + 32 * (m - 1)),
                     FEDREC_OK);
    const uint8_t *cg;
    assert_int_equal(fedreci_secagg_server_close_reveal(r.s, &cg), FEDREC_OK);
    assert_memory_equal(cg, contribs, sizeof contribs);
    uint8_t seed1[32];
    memcpy(seed1, fedreci_secagg_server_graph_seed(r.s), 32);
    assert_memory_not_equal(seed1, p.graph_seed, 32); /* not the configured one */
    for (size_t j = 0; j < m; j++) {
        const fedreci_secagg_ciphertext *cts;
        size_t n_cts;
        uint32_t i = (uint32_t)index_of(&r, ids[j]);
        assert_int_equal(fedreci_secagg_client_share_keys(r.c[i], roster, m, cg, &cts, &n_cts),
                         FEDREC_OK);
        assert_memory_equal(fedreci_secagg_client_graph_seed(r.c[i]), seed1, 32);
        assert_int_equal(fedreci_secagg_server_add_shares(r.s, ids[j], cts, n_cts), FEDREC_OK);
    }
    sim_free(&r);
    /* another round with the same parameters: fresh contributions, another
       seed */
    sim_init(&r, &p);
    assert_int_equal(sim_setup(&r, &roster, &m), FEDREC_OK);
    assert_memory_not_equal(fedreci_secagg_server_graph_seed(r.s), seed1, 32);
    sim_free(&r);
}

/* Seed step retries (protocol version 8; docs/protocol.md "Honest dropouts
 * at the seed step"). Cohort 8, R = 2: two members advertise and never
 * reveal, one reveals a contribution that does not open its commitment (a
 * culprit). The server re-runs the step without the three: a new roster, a
 * new digest, and each member that remains reveals its next chain link,
 * which links back to its attempt-0 contribution (so it opens the signed
 * commitment) and which the coordinator could not know from it. Everyone
 * derives the server's seed and deals shares; the culprit stays named, the
 * two silent ones are listed as dropped. A second retry is allowed (one
 * more member silent), a third (beyond R) aborts the round at the server
 * and is refused by the client (seed_retry_limit); so is a retry that
 * skips an attempt, keeps every member or adds one. */
static void test_seed_retry(void **state)
{
    (void)state;
    fedreci_secagg_params p = make_params(8, 4, 3, 3);
    p.seed_retries = 2;
    round_sim r;
    sim_init(&r, &p);
    const fedreci_secagg_advert *roster;
    size_t m;
    sim_advertise(&r, &roster, &m);
    assert_int_equal(m, 8);
    fedreci_secagg_advert ro[8];
    memcpy(ro, roster, sizeof ro);
    uint64_t ids[8];
    for (size_t j = 0; j < m; j++)
        ids[j] = ro[j].client_id;
    /* retry_seed is for a step with missing members only */
    const uint64_t *nid;
    size_t nm;
    uint8_t d0[32], c0[8][16];
    memcpy(d0, fedreci_secagg_server_seed_digest(r.s), 32);
    for (size_t j = 0; j < m; j++) {
        assert_int_equal(fedreci_secagg_client_reveal(r.c[index_of(&r, ids[j])], ids, m, d0, c0[j]),
                         FEDREC_OK);
        if (j == 2) { /* the culprit */
            uint8_t bad[16];
            memcpy(bad, c0[j], 16);
            bad[0] ^= 1;
            assert_int_equal(fedreci_secagg_server_add_reveal(r.s, ids[j], bad),
                             FEDREC_ERR_PROTOCOL);
        } else if (j != 0 && j != 5) { /* 0 and 5 stay silent */
            assert_int_equal(fedreci_secagg_server_add_reveal(r.s, ids[j], c0[j]), FEDREC_OK);
        }
    }
    assert_int_equal(fedreci_secagg_server_retry_seed(r.s, &nid, &nm), FEDREC_OK);
    assert_int_equal(nm, 5);
    assert_int_equal(fedreci_secagg_server_seed_attempt(r.s), 1);
    uint64_t ids1[5];
    memcpy(ids1, nid, sizeof ids1);
    for (size_t j = 0, k = 0; j < m; j++)
        if (j != 0 && j != 2 && j != 5)
            assert_true(ids1[k++] == ids[j]);
    const uint64_t *dl;
    assert_int_equal(fedreci_secagg_server_seed_dropped(r.s, &dl), 2);
    assert_true(dl[0] == (ids[0] < ids[5] ? ids[0] : ids[5]));
    const uint64_t *cul;
    assert_int_equal(fedreci_secagg_server_culprits(r.s, &cul), 1);
    assert_true(cul[0] == ids[2]);
    uint8_t d1[32];
    memcpy(d1, fedreci_secagg_server_seed_digest(r.s), 32);
    assert_memory_not_equal(d1, d0, 32);
    /* a client refuses a retry that skips an attempt, keeps every member,
       or lists one that was not in the previous attempt; nothing changes */
    uint32_t i1 = (uint32_t)index_of(&r, ids1[0]);
    uint8_t cx[16];
    assert_int_equal(fedreci_secagg_client_reveal_attempt(r.c[i1], 2, ids1, 5, d1, cx),
                     FEDREC_ERR_PROTOCOL);
    assert_string_equal(fedreci_secagg_client_refusal(r.c[i1]), FEDRECI_REFUSE_SEED_RETRY);
    assert_int_equal(fedreci_secagg_client_reveal_attempt(r.c[i1], 1, ids, 8, d1, cx),
                     FEDREC_ERR_PROTOCOL);
    uint64_t alien[5];
    memcpy(alien, ids1, sizeof alien);
    alien[4] = ids1[4] + 1;
    assert_int_equal(fedreci_secagg_client_reveal_attempt(r.c[i1], 1, alien, 5, d1, cx),
                     FEDREC_ERR_PROTOCOL);
    assert_string_equal(fedreci_secagg_client_refusal(r.c[i1]), FEDRECI_REFUSE_SEED_RETRY);
    assert_int_equal(fedreci_secagg_client_seed_attempt(r.c[i1]), 0);
    /* attempt 1: every remaining member reveals its next link; one more
       stays silent (ids1[3]) */
    uint8_t c1[5][16];
    for (size_t k = 0; k < 5; k++) {
        uint32_t i = (uint32_t)index_of(&r, ids1[k]);
        assert_int_equal(fedreci_secagg_client_reveal_attempt(r.c[i], 1, ids1, 5, d1, c1[k]),
                         FEDREC_OK);
        assert_int_equal(fedreci_secagg_client_seed_attempt(r.c[i]), 1);
        uint8_t back[16];
        fedreci_secagg_seed_link(back, p.round_id, ids1[k], 1, c1[k]);
        long j0 = -1;
        for (size_t j = 0; j < m; j++)
            if (ids[j] == ids1[k])
                j0 = (long)j;
        assert_memory_equal(back, c0[j0], 16); /* it chains to attempt 0's */
        assert_memory_not_equal(c1[k], c0[j0], 16);
        /* attempt 0's contribution does not open attempt 1's link: the
           engine refuses a late one by its attempt number before this */
        if (k != 3)
            assert_int_equal(fedreci_secagg_server_add_reveal(r.s, ids1[k], c1[k]), FEDREC_OK);
    }
    assert_int_equal(fedreci_secagg_server_retry_seed(r.s, &nid, &nm), FEDREC_OK);
    assert_int_equal(nm, 4);
    uint64_t ids2[4];
    memcpy(ids2, nid, sizeof ids2);
    uint8_t d2[32];
    memcpy(d2, fedreci_secagg_server_seed_digest(r.s), 32);
    assert_int_equal(fedreci_secagg_server_seed_dropped(r.s, &dl), 3);
    /* attempt 2 (the last R = 2 allows): everyone reveals, the seed is
       derived and the clients agree with the server */
    uint8_t slots[4 * 32];
    memset(slots, 0, sizeof slots);
    for (size_t k = 0; k < 4; k++) {
        uint32_t i = (uint32_t)index_of(&r, ids2[k]);
        assert_int_equal(
            fedreci_secagg_client_reveal_attempt(r.c[i], 2, ids2, 4, d2, slots + 32 * k),
            FEDREC_OK);
        assert_int_equal(fedreci_secagg_server_add_reveal(r.s, ids2[k], slots + 32 * k), FEDREC_OK);
    }
    const uint8_t *cg;
    assert_int_equal(fedreci_secagg_server_close_reveal(r.s, &cg), FEDREC_OK);
    assert_memory_equal(cg, slots, sizeof slots);
    fedreci_secagg_advert ro2[4];
    for (size_t k = 0; k < 4; k++)
        for (size_t j = 0; j < m; j++)
            if (ro[j].client_id == ids2[k])
                ro2[k] = ro[j];
    for (size_t k = 0; k < 4; k++) {
        const fedreci_secagg_ciphertext *cts;
        size_t n_cts;
        uint32_t i = (uint32_t)index_of(&r, ids2[k]);
        assert_int_equal(fedreci_secagg_client_share_keys(r.c[i], ro2, 4, cg, &cts, &n_cts),
                         FEDREC_OK);
        assert_memory_equal(fedreci_secagg_client_graph_seed(r.c[i]),
                            fedreci_secagg_server_graph_seed(r.s), 32);
        assert_int_equal(fedreci_secagg_server_add_shares(r.s, ids2[k], cts, n_cts), FEDREC_OK);
    }
    assert_int_equal(fedreci_secagg_server_close_share_keys(r.s), FEDREC_OK);
    /* a client that already used its R = 2 retries refuses a third one */
    {
        round_sim q;
        sim_init(&q, &p);
        uint32_t i = 0;
        fedreci_secagg_advert a;
        assert_int_equal(fedreci_secagg_client_advertise(q.c[i], &a), FEDREC_OK);
        uint64_t qi[8];
        memcpy(qi, q.ids, sizeof qi);
        qsort(qi, 8, sizeof *qi, cmp_u64);
        uint8_t dg[32] = {1}, cc[16];
        size_t mm = 8;
        assert_int_equal(fedreci_secagg_client_reveal(q.c[i], qi, mm, dg, cc), FEDREC_OK);
        for (uint32_t at = 1; at <= 3; at++) {
            /* leave out the first member other than this client */
            size_t w = 0;
            int dropped = 0;
            for (size_t j = 0; j < mm; j++) {
                if (!dropped && qi[j] != q.ids[i]) {
                    dropped = 1;
                    continue;
                }
                qi[w++] = qi[j];
            }
            mm = w;
            fedrec_err e = fedreci_secagg_client_reveal_attempt(q.c[i], at, qi, mm, dg, cc);
            if (at <= 2) {
                assert_int_equal(e, FEDREC_OK);
            } else {
                assert_int_equal(e, FEDREC_ERR_PROTOCOL);
                assert_string_equal(fedreci_secagg_client_refusal(q.c[i]),
                                    FEDRECI_REFUSE_SEED_RETRY);
                assert_int_equal(fedreci_secagg_client_seed_attempt(q.c[i]), 2);
            }
        }
        sim_free(&q);
    }
    sim_free(&r);
    /* the server: no retry beyond R (a member silent in attempt R aborts) */
    p.seed_retries = 0;
    sim_init(&r, &p);
    sim_advertise(&r, &roster, &m);
    assert_int_equal(fedreci_secagg_server_retry_seed(r.s, &nid, &nm), FEDREC_ERR_ABORTED);
    assert_int_equal(fedreci_secagg_server_stage(r.s), FEDRECI_SECAGG_ABORTED);
    sim_free(&r);
    /* and more retries than the cap are refused as parameters */
    p.seed_retries = FEDRECI_SECAGG_SEED_RETRIES_CAP + 1;
    assert_int_equal(fedreci_secagg_params_check(&p), FEDREC_ERR_INVALID);
}

static void test_refusals_leave_state_unchanged(void **state)
{
    (void)state;
    fedreci_secagg_params p = make_params(5, 4, 3, 6);
    round_sim r;
    sim_init(&r, &p);
    fedreci_secagg_server *s = r.s;
    const fedreci_secagg_ciphertext *cts;
    size_t n_cts;
    const uint32_t *y;
    uint32_t zeros[6] = {0};
    float x[5] = {0};

    /* Out of order, client side. */
    uint8_t no_contribs[2 * 32] = {0};
    assert_int_equal(fedreci_secagg_client_share_keys(r.c[0], NULL, 0, no_contribs, &cts, &n_cts),
                     FEDREC_ERR_INVALID);
    fedreci_secagg_advert dummy[2];
    memset(dummy, 0, sizeof dummy);
    assert_int_equal(fedreci_secagg_client_share_keys(r.c[0], dummy, 2, no_contribs, &cts, &n_cts),
                     FEDREC_ERR_STAGE);
    assert_int_equal(fedreci_secagg_client_masked_input(r.c[0], NULL, 0, x, 0, &y, NULL),
                     FEDREC_ERR_STAGE);
    /* Out of order, server side. */
    assert_int_equal(fedreci_secagg_server_add_shares(s, r.ids[0], NULL, 0), FEDREC_ERR_STAGE);
    assert_int_equal(fedreci_secagg_server_add_masked_input(s, r.ids[0], zeros, 6),
                     FEDREC_ERR_STAGE);
    assert_int_equal(fedreci_secagg_server_close_share_keys(s), FEDREC_ERR_STAGE);

    /* Adverts: a wrong-round one, a forged one and a replay are refused. */
    fedreci_secagg_params other = p;
    other.round_id = p.round_id + 1;
    fedreci_secagg_client *stranger;
    assert_int_equal(fedreci_secagg_client_create(&stranger, &other, r.ids[0], r.sks[0], NULL),
                     FEDREC_OK);
    fedreci_secagg_advert a_other;
    assert_int_equal(fedreci_secagg_client_advertise(stranger, &a_other), FEDREC_OK);
    assert_int_equal(fedreci_secagg_server_add_advert(s, &a_other), FEDREC_ERR_SIGNATURE);
    fedreci_secagg_client_destroy(stranger);
    fedreci_secagg_advert adv[5];
    for (int i = 0; i < 5; i++)
        assert_int_equal(fedreci_secagg_client_advertise(r.c[i], &adv[i]), FEDREC_OK);
    assert_int_equal(fedreci_secagg_client_advertise(r.c[0], &adv[0]), FEDREC_ERR_STAGE);
    fedreci_secagg_advert forged = adv[1];
    forged.s_pk[0] ^= 1;
    assert_int_equal(fedreci_secagg_server_add_advert(s, &forged), FEDREC_ERR_SIGNATURE);
    fedreci_secagg_advert unknown = adv[1];
    unknown.client_id = 424242;
    assert_int_equal(fedreci_secagg_server_add_advert(s, &unknown), FEDREC_ERR_PROTOCOL);
    /* verify_advert (the coordinator's check before it counts a message):
       the same refusals; an advert it verified is not verified twice, but
       any other bytes are: a field or the signature changed after it, or
       another member's advert, are refused by add_advert */
    assert_int_equal(fedreci_secagg_server_verify_advert(s, &forged), FEDREC_ERR_SIGNATURE);
    assert_int_equal(fedreci_secagg_server_verify_advert(s, &unknown), FEDREC_ERR_PROTOCOL);
    assert_int_equal(fedreci_secagg_server_verify_advert(s, &a_other), FEDREC_ERR_SIGNATURE);
    assert_int_equal(fedreci_secagg_server_verify_advert(s, NULL), FEDREC_ERR_INVALID);
    assert_int_equal(fedreci_secagg_server_verify_advert(s, &adv[1]), FEDREC_OK);
    assert_int_equal(fedreci_secagg_server_add_advert(s, &forged), FEDREC_ERR_SIGNATURE);
    assert_int_equal(fedreci_secagg_server_verify_advert(s, &adv[1]), FEDREC_OK);
    fedreci_secagg_advert resigned = adv[1];
    resigned.sig[7] ^= 0x04;
    assert_int_equal(fedreci_secagg_server_add_advert(s, &resigned), FEDREC_ERR_SIGNATURE);
    assert_int_equal(fedreci_secagg_server_verify_advert(s, &adv[1]), FEDREC_OK);
    fedreci_secagg_advert as_other = adv[1];
    as_other.client_id = r.ids[3];
    assert_int_equal(fedreci_secagg_server_add_advert(s, &as_other), FEDREC_ERR_SIGNATURE);
    assert_int_equal(fedreci_secagg_server_verify_advert(s, &adv[1]), FEDREC_OK);
    for (int i = 0; i < 5; i++)
        assert_int_equal(fedreci_secagg_server_add_advert(s, &adv[i]), FEDREC_OK);
    assert_int_equal(fedreci_secagg_server_add_advert(s, &adv[2]), FEDREC_ERR_DUPLICATE);
    const fedreci_secagg_advert *roster;
    size_t m;
    assert_int_equal(fedreci_secagg_server_close_advertise(s, &roster, &m), FEDREC_OK);
    assert_int_equal(m, 5);
    assert_int_equal(fedreci_secagg_server_add_advert(s, &adv[2]), FEDREC_ERR_STAGE);

    /* A roster with a bad neighbour signature is refused, and the client
     * still accepts the genuine roster afterwards. */
    const uint8_t *contribs;
    sim_seed(&r, roster, m, &contribs);
    fedreci_secagg_advert bad[5];
    memcpy(bad, roster, sizeof bad);
    for (int i = 0; i < 5; i++)
        if (bad[i].client_id != r.ids[0])
            bad[i].sig[5] ^= 0x10;
    assert_int_equal(fedreci_secagg_client_share_keys(r.c[0], bad, 5, contribs, &cts, &n_cts),
                     FEDREC_ERR_SIGNATURE);
    assert_string_equal(fedreci_secagg_client_refusal(r.c[0]), FEDRECI_REFUSE_ADVERT_SIG);
    assert_int_equal(fedreci_secagg_client_stage(r.c[0]), FEDRECI_SECAGG_SHARE_KEYS);
    /* altered contributions do not open the digest: refused, seed_mismatch */
    uint8_t altered[5 * 32];
    memcpy(altered, contribs, sizeof altered);
    altered[4 * 32 + FEDRECI_SECAGG_CONTRIB_BYTES - 1] ^= 1; /* the fifth one's last byte */
    assert_int_equal(fedreci_secagg_client_share_keys(r.c[0], roster, m, altered, &cts, &n_cts),
                     FEDREC_ERR_PROTOCOL);
    assert_string_equal(fedreci_secagg_client_refusal(r.c[0]), FEDRECI_REFUSE_SEED);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(
            fedreci_secagg_client_share_keys(r.c[i], roster, m, contribs, &cts, &n_cts), FEDREC_OK);
        if (i == 1) {
            /* a bundle claiming another sender */
            fedreci_secagg_ciphertext twisted[4];
            memcpy(twisted, cts, sizeof twisted);
            twisted[0].from = r.ids[0];
            assert_int_equal(fedreci_secagg_server_add_shares(s, r.ids[1], twisted, 4),
                             FEDREC_ERR_PROTOCOL);
        }
        assert_int_equal(fedreci_secagg_server_add_shares(s, r.ids[i], cts, n_cts), FEDREC_OK);
        assert_int_equal(fedreci_secagg_server_add_shares(s, r.ids[i], cts, n_cts),
                         FEDREC_ERR_DUPLICATE);
    }
    assert_int_equal(fedreci_secagg_server_add_masked_input(s, r.ids[0], zeros, 6),
                     FEDREC_ERR_STAGE);
    assert_int_equal(fedreci_secagg_server_close_share_keys(s), FEDREC_OK);

    /* Stage 2: tampered, misaddressed and wrong-round bundles are refused. */
    const fedreci_secagg_ciphertext *in;
    size_t n_in;
    assert_int_equal(fedreci_secagg_server_shares_for(s, r.ids[0], &in, &n_in), FEDREC_OK);
    assert_int_equal(n_in, 4);
    fedreci_secagg_ciphertext copy[4];
    uint8_t bytes[4][FEDRECI_SHARE_CT_BYTES];
    for (int i = 0; i < 4; i++) {
        copy[i] = in[i];
        memcpy(bytes[i], in[i].bytes, FEDRECI_SHARE_CT_BYTES);
        copy[i].bytes = bytes[i];
    }
    bytes[2][40] ^= 1;
    float x0[5] = {1, 2, 3, -1, 0.5f};
    assert_int_equal(fedreci_secagg_client_masked_input(r.c[0], copy, 4, x0, 1, &y, NULL),
                     FEDREC_ERR_CRYPTO);
    bytes[2][40] ^= 1;
    copy[1].to = r.ids[3];
    assert_int_equal(fedreci_secagg_client_masked_input(r.c[0], copy, 4, x0, 1, &y, NULL),
                     FEDREC_ERR_PROTOCOL);
    copy[1].to = r.ids[0];
    /* two neighbours' bundles with their senders swapped: the AEAD key and
     * associated data name (round, sender, receiver), so neither opens */
    {
        uint64_t f1 = copy[1].from;
        copy[1].from = copy[2].from;
        copy[2].from = f1;
        assert_int_equal(fedreci_secagg_client_masked_input(r.c[0], copy, 4, x0, 1, &y, NULL),
                         FEDREC_ERR_CRYPTO);
        copy[2].from = copy[1].from;
        copy[1].from = f1;
    }
    copy[3] = copy[2]; /* replayed bundle */
    assert_int_equal(fedreci_secagg_client_masked_input(r.c[0], copy, 4, x0, 1, &y, NULL),
                     FEDREC_ERR_DUPLICATE);
    /* A bundle from the same sender in another round fails authentication. */
    {
        round_sim r2;
        fedreci_secagg_params p2 = p;
        p2.round_id = p.round_id + 1;
        sim_init(&r2, &p2);
        memcpy(r2.ids, r.ids, 5 * sizeof *r.ids);
        /* rebuild r2 with r's ids so the AD names the same sender/receiver */
        for (int i = 0; i < 5; i++) {
            fedreci_secagg_client_destroy(r2.c[i]);
            assert_int_equal(fedreci_secagg_client_create(&r2.c[i], &p2, r.ids[i], r2.sks[i], NULL),
                             FEDREC_OK);
        }
        fedreci_secagg_server_destroy(r2.s);
        assert_int_equal(
            fedreci_secagg_server_create(&r2.s, &p2, r2.ids, (const uint8_t(*)[32])r2.pks),
            FEDREC_OK);
        const fedreci_secagg_advert *ro2;
        size_t m2;
        assert_int_equal(sim_setup(&r2, &ro2, &m2), FEDREC_OK);
        const fedreci_secagg_ciphertext *in2;
        size_t n2;
        assert_int_equal(fedreci_secagg_server_shares_for(r2.s, r.ids[0], &in2, &n2), FEDREC_OK);
        fedreci_secagg_ciphertext mix[4];
        memcpy(mix, copy, sizeof mix);
        memcpy(&mix[3], &copy[2], sizeof mix[3]);
        for (size_t i = 0; i < n2; i++)
            if (in2[i].from == in[3].from)
                mix[3] = in2[i];
        assert_int_equal(mix[3].from, in[3].from);
        assert_int_equal(fedreci_secagg_client_masked_input(r.c[0], mix, 4, x0, 1, &y, NULL),
                         FEDREC_ERR_CRYPTO);
        sim_free(&r2);
    }
    float xnan[5] = {1, NAN, 0, 0, 0};
    assert_int_equal(fedreci_secagg_client_masked_input(r.c[0], in, 4, xnan, 1, &y, NULL),
                     FEDREC_ERR_INVALID);
    assert_int_equal(fedreci_secagg_client_masked_input(r.c[0], in, 4, x0, 2, &y, NULL),
                     FEDREC_ERR_INVALID); /* weight above max_weight */
    assert_int_equal(fedreci_secagg_client_stage(r.c[0]), FEDRECI_SECAGG_MASKED_INPUT);

    /* Now everyone masks; replays and wrong lengths are refused. */
    for (uint32_t i = 0; i < 5; i++) {
        memcpy(r.x + (size_t)i * 5, x0, sizeof x0);
        r.w[i] = 1;
        assert_int_equal(sim_input(&r, i), FEDREC_OK);
    }
    assert_int_equal(fedreci_secagg_client_masked_input(r.c[0], in, 4, x0, 1, &y, NULL),
                     FEDREC_ERR_STAGE);
    assert_int_equal(fedreci_secagg_server_add_masked_input(s, r.ids[1], zeros, 6),
                     FEDREC_ERR_DUPLICATE);
    assert_int_equal(fedreci_secagg_server_add_masked_input(s, 99, zeros, 6), FEDREC_ERR_PROTOCOL);
    const uint64_t *sv, *dr;
    size_t ns, nd;
    assert_int_equal(fedreci_secagg_server_close_masked_input(s, &sv, &ns, &dr, &nd), FEDREC_OK);
    assert_int_equal(fedreci_secagg_server_add_masked_input(s, r.ids[1], zeros, 6),
                     FEDREC_ERR_STAGE);
    uint32_t sum[6];
    for (uint32_t i = 0; i < 5; i++) {
        const fedreci_secagg_reveal *rv;
        size_t nrv;
        assert_int_equal(sim_reveals(&r, i, sv, ns, dr, nd, &rv, &nrv), FEDREC_OK);
        assert_int_equal(fedreci_secagg_server_add_unmask(s, r.ids[i], rv, nrv), FEDREC_OK);
        assert_int_equal(fedreci_secagg_server_add_unmask(s, r.ids[i], rv, nrv),
                         FEDREC_ERR_DUPLICATE);
    }
    assert_int_equal(fedreci_secagg_server_finish(s, sum, 6), FEDREC_OK);
    /* Every client sent the same x0 and weight 1: the sum is 5 * q(x0). */
    float out[5];
    uint32_t tw;
    fedreci_secagg_dequantize(&p, sum, out, &tw);
    assert_int_equal(tw, 5);
    for (int j = 0; j < 5; j++)
        assert_true(fabs(out[j] - 5 * x0[j]) <= 5.0 / p.scale + 1e-6);
    assert_int_equal(fedreci_secagg_server_finish(s, sum, 6), FEDREC_ERR_STAGE);
    sim_free(&r);
}

/* ---- parameters --------------------------------------------------------------- */

static void test_params_rejected(void **state)
{
    (void)state;
    fedreci_secagg_params p = make_params(10, 6, 4, 8);
    assert_int_equal(fedreci_secagg_params_check(&p), FEDREC_OK);
    double bad_clip[] = {0.0, -1.0, NAN, INFINITY, -INFINITY};
    for (size_t i = 0; i < sizeof bad_clip / sizeof *bad_clip; i++) {
        fedreci_secagg_params q = p;
        q.clip = bad_clip[i];
        assert_int_equal(fedreci_secagg_params_check(&q), FEDREC_ERR_INVALID);
        assert_non_null(strstr(fedrec_errmsg(), "clip"));
        q = p;
        q.scale = bad_clip[i];
        assert_int_equal(fedreci_secagg_params_check(&q), FEDREC_ERR_INVALID);
    }
    uint32_t bad_t[] = {0, 1, 2, 3, 7, 100};
    for (size_t i = 0; i < sizeof bad_t / sizeof *bad_t; i++) {
        fedreci_secagg_params q = p;
        q.t = bad_t[i];
        assert_int_equal(fedreci_secagg_params_check(&q), FEDREC_ERR_INVALID);
        assert_non_null(strstr(fedrec_errmsg(), "threshold"));
    }
    fedreci_secagg_params q = p;
    q.k = 10; /* > n - 1 */
    q.t = 6;
    assert_int_equal(fedreci_secagg_params_check(&q), FEDREC_ERR_INVALID);
    q = p;
    q.n = 1;
    assert_int_equal(fedreci_secagg_params_check(&q), FEDREC_ERR_INVALID);
    q = p;
    q.d = 1;
    assert_int_equal(fedreci_secagg_params_check(&q), FEDREC_ERR_INVALID);
    /* Overflow budget: n * ceil(clip * scale) must stay below 2^31. */
    q = p;
    q.n = 4;
    q.k = 3;
    q.t = 2;
    q.clip = 1.0;
    q.scale = 536870912.0; /* 2^29: 4 * 2^29 = 2^31 */
    assert_int_equal(fedreci_secagg_params_check(&q), FEDREC_ERR_RANGE);
    assert_non_null(strstr(fedrec_errmsg(), "overflow budget"));
    q.scale = 536870911.0;
    assert_int_equal(fedreci_secagg_params_check(&q), FEDREC_OK);
    q.scale = 536870910.5; /* ceil() keeps the rounded-up extreme in budget */
    assert_int_equal(fedreci_secagg_params_check(&q), FEDREC_OK);
    q.scale = 536870911.25;
    assert_int_equal(fedreci_secagg_params_check(&q), FEDREC_ERR_RANGE);
    q = p;
    q.max_weight = 1u << 30; /* 10 * 2^30 >= 2^31 */
    assert_int_equal(fedreci_secagg_params_check(&q), FEDREC_ERR_RANGE);
    /* The state machines refuse bad parameters too. */
    q = p;
    q.clip = NAN;
    fedreci_secagg_client *c = NULL;
    uint8_t pk[32], sk[64];
    crypto_sign_keypair(pk, sk);
    assert_int_equal(fedreci_secagg_client_create(&c, &q, 1, sk, NULL), FEDREC_ERR_INVALID);
    assert_null(c);
    /* Duplicate ids in the cohort. */
    uint64_t ids[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 3};
    uint8_t pks[10][32];
    memset(pks, 0, sizeof pks);
    fedreci_secagg_server *s = NULL;
    assert_int_equal(fedreci_secagg_server_create(&s, &p, ids, (const uint8_t(*)[32])pks),
                     FEDREC_ERR_INVALID);
    assert_null(s);
    assert_non_null(strstr(fedrec_errmsg(), "twice"));
    fedreci_secagg_client_destroy(NULL);
    fedreci_secagg_server_destroy(NULL);
}

/* Four clients each at the edge of the budget still sum exactly. */
static void test_budget_edge_sums_exactly(void **state)
{
    (void)state;
    fedreci_secagg_params p = make_params(4, 3, 2, 4);
    p.clip = 1.0;
    p.scale = 536870911.0; /* 4 * (2^29 - 1) = 2^31 - 4 */
    p.max_weight = 536870911u;
    assert_int_equal(fedreci_secagg_params_check(&p), FEDREC_OK);
    round_sim r;
    sim_init(&r, &p);
    for (uint32_t i = 0; i < 4; i++) {
        float *x = r.x + (size_t)i * 3;
        x[0] = 1.0f;  /* +max */
        x[1] = -1.0f; /* -max */
        x[2] = 50.0f; /* clipped to +max */
        r.w[i] = p.max_weight;
    }
    const fedreci_secagg_advert *roster;
    size_t m;
    assert_int_equal(sim_setup(&r, &roster, &m), FEDREC_OK);
    for (uint32_t i = 0; i < 4; i++)
        assert_int_equal(sim_input(&r, i), FEDREC_OK);
    const uint64_t *sv, *dr;
    size_t ns, nd;
    assert_int_equal(fedreci_secagg_server_close_masked_input(r.s, &sv, &ns, &dr, &nd), FEDREC_OK);
    for (uint32_t i = 0; i < 4; i++)
        sim_unmask(&r, i, sv, ns, dr, nd);
    uint32_t sum[4];
    assert_int_equal(fedreci_secagg_server_finish(r.s, sum, 4), FEDREC_OK);
    assert_int_equal(sum[0], 2147483644u);               /* 2^31 - 4 */
    assert_int_equal(sum[1], (uint32_t)(-2147483644LL)); /* -(2^31 - 4) */
    assert_int_equal(sum[2], 2147483644u);
    assert_int_equal(sum[3], 2147483644u); /* weights */
    float out[3];
    uint32_t tw;
    fedreci_secagg_dequantize(&p, sum, out, &tw);
    assert_true(fabsf(out[0] - 4.0f) < 1e-6f);
    assert_true(fabsf(out[1] + 4.0f) < 1e-6f);
    assert_int_equal(tw, 2147483644u);
    sim_free(&r);
}

/* ---- quantization ------------------------------------------------------------- */

static void test_clip_counts(void **state)
{
    (void)state;
    /* One client, inputs 10 and 20 with clip 8: 8 + 8 = 16, two clipped. */
    fedreci_secagg_params p = make_params(2, 1, 1, 3);
    p.clip = 8.0;
    p.scale = 1.0;
    float x[2] = {10.0f, 20.0f};
    uint32_t q[3];
    uint8_t key[32] = {1};
    fedreci_secagg_quant_stats st;
    assert_int_equal(fedreci_secagg_quantize(&p, x, 1, key, q, &st), FEDREC_OK);
    assert_int_equal(q[0], 8);
    assert_int_equal(q[1], 8);
    assert_int_equal(q[0] + q[1], 16);
    assert_int_equal(q[2], 1);
    assert_int_equal(st.clipped, 2);
    assert_true(st.max_abs == 20.0f);
    float y[2] = {-10.0f, -INFINITY};
    assert_int_equal(fedreci_secagg_quantize(&p, y, 0, key, q, &st), FEDREC_OK);
    assert_int_equal((int32_t)q[0], -8);
    assert_int_equal((int32_t)q[1], -8);
    assert_int_equal(st.clipped, 2);

    /* Through a round: two clients send 10 and 20 with clip 8, the
     * coordinator reads 16, and each reports one clipped value. */
    p = make_params(2, 1, 1, 2);
    p.clip = 8.0;
    p.scale = 1.0;
    round_sim r;
    sim_init(&r, &p);
    r.x[0] = 10.0f;
    r.x[1] = 20.0f;
    const fedreci_secagg_advert *roster;
    size_t m;
    assert_int_equal(sim_setup(&r, &roster, &m), FEDREC_OK);
    uint32_t clipped = 0;
    for (uint32_t i = 0; i < 2; i++) {
        const fedreci_secagg_ciphertext *in;
        size_t n_in;
        const uint32_t *y2;
        assert_int_equal(fedreci_secagg_server_shares_for(r.s, r.ids[i], &in, &n_in), FEDREC_OK);
        assert_int_equal(fedreci_secagg_client_masked_input(r.c[i], in, n_in, &r.x[i], 1, &y2, &st),
                         FEDREC_OK);
        clipped += st.clipped;
        assert_int_equal(fedreci_secagg_server_add_masked_input(r.s, r.ids[i], y2, 2), FEDREC_OK);
    }
    assert_int_equal(clipped, 2);
    const uint64_t *sv, *dr;
    size_t ns, nd;
    assert_int_equal(fedreci_secagg_server_close_masked_input(r.s, &sv, &ns, &dr, &nd), FEDREC_OK);
    for (uint32_t i = 0; i < 2; i++)
        sim_unmask(&r, i, sv, ns, dr, nd);
    uint32_t sum[2];
    assert_int_equal(fedreci_secagg_server_finish(r.s, sum, 2), FEDREC_OK);
    float out[1];
    uint32_t tw;
    fedreci_secagg_dequantize(&p, sum, out, &tw);
    assert_true(out[0] == 16.0f);
    assert_int_equal(tw, 2);
    sim_free(&r);
}

static void test_stochastic_rounding_unbiased(void **state)
{
    (void)state;
    /* 0.3 at scale 1 rounds to 0 or 1; the mean over many entries is 0.3
     * (standard error 0.0014 at 100,000 entries: 0.01 is 7 sigma). */
    enum { N = 100000 };
    fedreci_secagg_params p = make_params(2, 1, 1, N + 1);
    p.clip = 10;
    p.scale = 1;
    float *x = malloc(N * sizeof *x);
    uint32_t *q = malloc((N + 1) * sizeof *q);
    for (int i = 0; i < N; i++)
        x[i] = (i % 2) ? 0.3f : -2.75f;
    uint8_t key[32] = {9, 9, 9};
    assert_int_equal(fedreci_secagg_quantize(&p, x, 0, key, q, NULL), FEDREC_OK);
    double s_pos = 0, s_neg = 0;
    for (int i = 0; i < N; i++) {
        int32_t v = (int32_t)q[i];
        if (i % 2) {
            assert_true(v == 0 || v == 1);
            s_pos += v;
        } else {
            assert_true(v == -3 || v == -2);
            s_neg += v;
        }
    }
    assert_true(fabs(s_pos / (N / 2) - 0.3) < 0.01);
    assert_true(fabs(s_neg / (N / 2) + 2.75) < 0.01);
    /* Exactly representable values are never perturbed. */
    x[0] = 2.0f;
    x[1] = -1.5f;
    p.scale = 2;
    assert_int_equal(fedreci_secagg_quantize(&p, x, 0, key, q, NULL), FEDREC_OK);
    assert_int_equal((int32_t)q[0], 4);
    assert_int_equal((int32_t)q[1], -3);
    free(x);
    free(q);
}

/* The rounding rule of quantize.h recomputed independently: clip in double,
 * libm floor, the 16-bit words read straight from libsodium's ChaCha20-IETF
 * keystream (nonce LE32(ROUNDING = 3) || LE64(round)). */
static void reference_quantize(const fedreci_secagg_params *p, const float *x, size_t n,
                               const uint8_t key[32], int32_t *q, uint32_t *clipped, float *max_abs)
{
    uint8_t nonce[12] = {3, 0, 0, 0};
    for (int i = 0; i < 8; i++)
        nonce[4 + i] = (uint8_t)(p->round_id >> (8 * i));
    uint8_t *zero = calloc(2 * n + 1, 1), *ks = malloc(2 * n + 1);
    crypto_stream_chacha20_ietf_xor_ic(ks, zero, 2 * n, nonce, 0, key);
    *clipped = 0;
    *max_abs = 0;
    for (size_t i = 0; i < n; i++) {
        double xv = x[i];
        if (fabsf(x[i]) > *max_abs)
            *max_abs = fabsf(x[i]);
        if (xv > p->clip || xv < -p->clip) {
            ++*clipped;
            xv = xv > 0 ? p->clip : -p->clip;
        }
        double v = xv * p->scale, f = floor(v);
        uint32_t r = (uint32_t)ks[2 * i] | (uint32_t)ks[2 * i + 1] << 8;
        int32_t t = (int32_t)((v - f) * 131072.0);
        q[i] = (int32_t)f + (2 * (int32_t)r < t);
    }
    free(zero);
    free(ks);
}

/* Random inputs with the awkward values mixed in: +-inf, +-0, denormals, the
 * clip bound and its float neighbours, exact multiples of 1/scale and
 * half-steps. */
static void awkward_inputs(float *x, size_t n, double clip, double scale)
{
    float cf = (float)clip;
    const float special[] = {INFINITY,
                             -INFINITY,
                             0.0f,
                             -0.0f,
                             1e-40f,
                             -1e-40f,
                             cf,
                             -cf,
                             nextafterf(cf, INFINITY),
                             nextafterf(cf, 0.0f),
                             -nextafterf(cf, INFINITY),
                             (float)(3.0 / scale),
                             (float)(-2.5 / scale),
                             (float)(7.5 / scale)};
    const size_t ns = sizeof special / sizeof special[0];
    for (size_t i = 0; i < n; i++) {
        if (rnd() % 4 == 0)
            x[i] = special[rnd() % ns];
        else
            x[i] = (float)((rnd_unit() * 2 - 1) * clip * 1.3);
    }
}

/* The SSE2 kernel, the portable kernel and the independent reference agree
 * bit for bit (values and stats) on every length, for several clip/scale
 * pairs; quantizing slice by slice gives the same words as the whole call. */
static void test_quantize_kernels_agree(void **state)
{
    (void)state;
    const struct {
        double clip, scale;
    } cs[] = {{4.0, 1000.0}, {16.0, 65536.0}, {1.0, 536870911.0},
              {0.1, 3.7},    {1e-3, 1e6},     {8.0, 1.0}};
    const size_t lens[] = {1, 3, 4, 5, 31, 4095, 4096, 4097, 9000};
    uint8_t key[32];
    for (int i = 0; i < 32; i++)
        key[i] = (uint8_t)(i * 13 + 5);
    enum { NMAX = 9000 };
    float *x = malloc(NMAX * sizeof *x);
    uint32_t *qv = malloc((NMAX + 1) * sizeof *qv), *qs = malloc((NMAX + 1) * sizeof *qs);
    int32_t *qr = malloc(NMAX * sizeof *qr);
    for (size_t c = 0; c < sizeof cs / sizeof cs[0]; c++) {
        for (size_t l = 0; l < sizeof lens / sizeof lens[0]; l++) {
            size_t n = lens[l];
            fedreci_secagg_params p = make_params(2, 1, 1, (uint32_t)n + 1);
            p.clip = cs[c].clip;
            p.scale = cs[c].scale;
            p.round_id = 1000 + c;
            assert_int_equal(fedreci_secagg_params_check(&p), FEDREC_OK);
            awkward_inputs(x, n, p.clip, p.scale);
            fedreci_secagg_quant_stats sv, ss = {0, 0.0f};
            assert_int_equal(fedreci_secagg_quantize(&p, x, 1, key, qv, &sv), FEDREC_OK);
            assert_int_equal(fedreci_secagg_quantize_slice_scalar(&p, x, key, 0, n, qs, &ss),
                             FEDREC_OK);
            uint32_t rclipped;
            float rmax;
            reference_quantize(&p, x, n, key, qr, &rclipped, &rmax);
            for (size_t i = 0; i < n; i++) {
                if (qv[i] != qs[i] || (int32_t)qv[i] != qr[i])
                    fail_msg("clip %g scale %g n %zu entry %zu (x = %a): sse %d scalar %d "
                             "reference %d",
                             p.clip, p.scale, n, i, (double)x[i], (int32_t)qv[i], (int32_t)qs[i],
                             qr[i]);
            }
            assert_int_equal(qv[n], 1);
            assert_int_equal(sv.clipped, rclipped);
            assert_int_equal(ss.clipped, rclipped);
            assert_true(sv.max_abs == rmax && ss.max_abs == rmax);
            /* slices at random multiples of 32 */
            memset(qs, 0xa5, n * sizeof *qs);
            fedreci_secagg_quant_stats sl = {0, 0.0f};
            for (size_t off = 0; off < n;) {
                size_t len = 32 * (1 + rnd_below(200));
                if (len > n - off)
                    len = n - off;
                assert_int_equal(fedreci_secagg_quantize_slice(&p, x, key, off, len, qs, &sl),
                                 FEDREC_OK);
                off += len;
            }
            assert_memory_equal(qs, qv, n * sizeof *qs);
            assert_int_equal(sl.clipped, rclipped);
            assert_true(sl.max_abs == rmax);
        }
    }
    /* Slices must start on a rounding block and stay inside the input. */
    fedreci_secagg_params p = make_params(2, 1, 1, 101);
    fedreci_secagg_quant_stats st = {0, 0.0f};
    assert_int_equal(fedreci_secagg_quantize_slice(&p, x, key, 16, 8, qs, &st), FEDREC_ERR_INVALID);
    assert_int_equal(fedreci_secagg_quantize_slice(&p, x, key, 64, 37, qs, &st),
                     FEDREC_ERR_INVALID);
    assert_int_equal(fedreci_secagg_quantize_slice(&p, x, key, 64, 36, qs, &st), FEDREC_OK);
    free(x);
    free(qv);
    free(qs);
    free(qr);
}

/* 16 random bits per entry: P(round up) is frac(v) rounded half-up to the
 * 2^-16 grid, so the bias of one entry is at most 2^-17 of a step. The
 * worst cases happen exactly as documented, the bound holds on every grid
 * cell, and the mean error over many entries is zero within its noise. */
static void test_rounding_bias_bound(void **state)
{
    (void)state;
    enum { N = 1 << 20 };
    fedreci_secagg_params p = make_params(2, 1, 1, N + 1);
    p.clip = 8.0;
    p.scale = 1.0;
    float *x = malloc(N * sizeof *x);
    uint32_t *q = malloc((N + 1) * sizeof *q);
    uint8_t key[32] = {42};
    /* frac = 2^-18, below half a grid step: never rounds up (bias -2^-18). */
    for (int i = 0; i < N; i++)
        x[i] = 1.0f + 0x1p-18f;
    assert_int_equal(fedreci_secagg_quantize(&p, x, 0, key, q, NULL), FEDREC_OK);
    for (int i = 0; i < N; i++)
        assert_int_equal(q[i], 1);
    /* frac = 1 - 2^-17, in the top half-step: always rounds up (bias +2^-17);
     * -1 - 2^-18 has frac 1 - 2^-18: always up to -1. */
    for (int i = 0; i < N; i++)
        x[i] = (i & 1) ? 2.0f - 0x1p-17f : -1.0f - 0x1p-18f;
    assert_int_equal(fedreci_secagg_quantize(&p, x, 0, key, q, NULL), FEDREC_OK);
    for (int i = 0; i < N; i++)
        assert_int_equal((int32_t)q[i], (i & 1) ? 2 : -1);
    /* frac = 2^-16 exactly on the grid: rounds up iff r = 0 (P = 2^-16), so
     * about 16 of 2^20 entries round up. */
    for (int i = 0; i < N; i++)
        x[i] = 5.0f + 0x1p-16f;
    assert_int_equal(fedreci_secagg_quantize(&p, x, 0, key, q, NULL), FEDREC_OK);
    int ups = 0;
    for (int i = 0; i < N; i++) {
        assert_true(q[i] == 5 || q[i] == 6);
        ups += q[i] == 6;
    }
    assert_true(ups >= 1 && ups <= 60); /* Poisson(16): outside is < 1e-12 */
    /* The rule's probability ceil(T / 2) / 2^16, T = floor(frac * 2^17),
     * against both ends of every cell [T, T + 1) / 2^17. */
    for (uint32_t t = 0; t < 131072; t++) {
        double prob = (double)((t + 1) / 2) / 65536.0;
        assert_true(fabs(prob - t / 131072.0) <= 0x1p-17);
        assert_true(fabs(prob - (t + 1) / 131072.0) <= 0x1p-17);
    }
    /* Mean error over 2^20 random entries: each error has variance <= 1/4,
     * so the standard error is <= 2^-11; 0.003 is 6 of them. */
    p.scale = 1000.0;
    for (int i = 0; i < N; i++)
        x[i] = (float)(rnd_unit() * 6 - 3);
    assert_int_equal(fedreci_secagg_quantize(&p, x, 0, key, q, NULL), FEDREC_OK);
    double err = 0;
    for (int i = 0; i < N; i++)
        err += (int32_t)q[i] - (double)x[i] * 1000.0;
    assert_true(fabs(err / N) < 0.003);
    /* Seeded: the same key gives the same words, another key other words. */
    uint32_t *q2 = malloc((N + 1) * sizeof *q2);
    assert_int_equal(fedreci_secagg_quantize(&p, x, 0, key, q2, NULL), FEDREC_OK);
    assert_memory_equal(q, q2, (N + 1) * sizeof *q);
    key[31] ^= 0x80;
    assert_int_equal(fedreci_secagg_quantize(&p, x, 0, key, q2, NULL), FEDREC_OK);
    assert_true(memcmp(q, q2, (N + 1) * sizeof *q) != 0);
    free(x);
    free(q);
    free(q2);
}

/* NaN is refused wherever it sits (SSE2 body, scalar tail, a later rounding
 * block), naming its index; stats are left untouched. */
static void test_quantize_nan_refused(void **state)
{
    (void)state;
    enum { N = 9001 };
    fedreci_secagg_params p = make_params(2, 1, 1, N + 1);
    float *x = calloc(N, sizeof *x);
    uint32_t *q = malloc((N + 1) * sizeof *q);
    uint8_t key[32] = {7};
    const size_t at[] = {0, 5, 4095, 4096, 5000, N - 1};
    for (size_t a = 0; a < sizeof at / sizeof at[0]; a++) {
        for (int i = 0; i < N; i++)
            x[i] = 0.5f;
        x[at[a]] = NAN;
        if ((a & 1) && at[a] + 1 < N)
            x[at[a] + 1 + (N - 2 - at[a]) / 2] = -NAN; /* a later NaN is not the one named */
        fedreci_secagg_quant_stats st = {12345, 6.0f};
        assert_int_equal(fedreci_secagg_quantize(&p, x, 0, key, q, &st), FEDREC_ERR_INVALID);
        char want[64];
        snprintf(want, sizeof want, "entry %zu is NaN", at[a]);
        if (!strstr(fedrec_errmsg(), want))
            fail_msg("NaN at %zu: message '%s'", at[a], fedrec_errmsg());
        assert_int_equal(st.clipped, 12345);
        assert_true(st.max_abs == 6.0f);
        assert_int_equal(fedreci_secagg_quantize_slice_scalar(&p, x, key, 0, N, q, &st),
                         FEDREC_ERR_INVALID);
        assert_non_null(strstr(fedrec_errmsg(), want));
    }
    free(x);
    free(q);
}

/* masked_input quantizes and masks slice by slice: over several slices (and
 * a last slice holding only the weight) the round is exact, every q is
 * within one step of the clipped input, and a NaN in a late slice is
 * refused without leaving the stage. */
static void test_masked_input_slices(void **state)
{
    (void)state;
    const uint32_t ds[] = {2 * 4096 + 1, 3 * 4096 + 77};
    for (size_t di = 0; di < 2; di++) {
        fedreci_secagg_params p = make_params(4, 3, 2, ds[di]);
        uint32_t n_x = p.d - 1;
        round_sim r;
        sim_init(&r, &p);
        const fedreci_secagg_advert *roster;
        size_t m;
        assert_int_equal(sim_setup(&r, &roster, &m), FEDREC_OK);
        /* client 0 first sends a NaN in its last input slice */
        float *xbad = malloc(n_x * sizeof *xbad);
        memcpy(xbad, r.x, n_x * sizeof *xbad);
        xbad[n_x - 3] = NAN;
        const fedreci_secagg_ciphertext *in;
        size_t n_in;
        const uint32_t *y;
        assert_int_equal(fedreci_secagg_server_shares_for(r.s, r.ids[0], &in, &n_in), FEDREC_OK);
        assert_int_equal(
            fedreci_secagg_client_masked_input(r.c[0], in, n_in, xbad, r.w[0], &y, NULL),
            FEDREC_ERR_INVALID);
        assert_int_equal(fedreci_secagg_client_stage(r.c[0]), FEDRECI_SECAGG_MASKED_INPUT);
        free(xbad);
        uint32_t *expect = calloc(p.d, sizeof *expect);
        for (uint32_t i = 0; i < 4; i++) {
            assert_int_equal(sim_input(&r, i), FEDREC_OK);
            const uint32_t *q = fedreci_secagg_client_quantized_input(r.c[i]);
            assert_non_null(q);
            for (uint32_t j = 0; j < n_x; j++) {
                double xv = r.x[(size_t)i * n_x + j];
                xv = xv > p.clip ? p.clip : xv < -p.clip ? -p.clip : xv;
                double dq = (int32_t)q[j] - xv * p.scale;
                if (!(dq > -1.0 && dq < 1.0))
                    fail_msg("client %u entry %u: q %d for x %g", i, j, (int32_t)q[j], xv);
                expect[j] += q[j];
            }
            assert_int_equal(q[n_x], r.w[i]);
            expect[n_x] += q[n_x];
        }
        const uint64_t *sv, *dr;
        size_t ns, nd;
        assert_int_equal(fedreci_secagg_server_close_masked_input(r.s, &sv, &ns, &dr, &nd),
                         FEDREC_OK);
        for (uint32_t i = 0; i < 4; i++)
            sim_unmask(&r, i, sv, ns, dr, nd);
        uint32_t *sum = malloc(p.d * sizeof *sum);
        assert_int_equal(fedreci_secagg_server_finish(r.s, sum, p.d), FEDREC_OK);
        assert_memory_equal(sum, expect, p.d * sizeof *sum);
        free(sum);
        free(expect);
        sim_free(&r);
    }
}

/* A round whose weights are all zero: the caller sees total weight 0 and
 * finite values (it skips the update; nothing divides by the weight here). */
static void test_all_zero_weights(void **state)
{
    (void)state;
    fedreci_secagg_params p = make_params(3, 2, 2, 4);
    round_sim r;
    sim_init(&r, &p);
    for (int i = 0; i < 3; i++)
        r.w[i] = 0;
    const fedreci_secagg_advert *roster;
    size_t m;
    assert_int_equal(sim_setup(&r, &roster, &m), FEDREC_OK);
    for (uint32_t i = 0; i < 3; i++)
        assert_int_equal(sim_input(&r, i), FEDREC_OK);
    const uint64_t *sv, *dr;
    size_t ns, nd;
    assert_int_equal(fedreci_secagg_server_close_masked_input(r.s, &sv, &ns, &dr, &nd), FEDREC_OK);
    for (uint32_t i = 0; i < 3; i++)
        sim_unmask(&r, i, sv, ns, dr, nd);
    uint32_t sum[4];
    assert_int_equal(fedreci_secagg_server_finish(r.s, sum, 4), FEDREC_OK);
    float out[3];
    uint32_t tw = 77;
    fedreci_secagg_dequantize(&p, sum, out, &tw);
    assert_int_equal(tw, 0);
    for (int j = 0; j < 3; j++)
        assert_true(isfinite(out[j]));
    sim_free(&r);
}

/* ---- mask generator --------------------------------------------------------------- */

static size_t hex_decode(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = 0;
    while (hex[0] && hex[1] && n < cap) {
        unsigned v;
        assert_int_equal(sscanf(hex, "%2x", &v), 1);
        out[n++] = (uint8_t)v;
        hex += 2;
    }
    return n;
}

/* Reads "name = hex" from the vector file. */
static size_t vector(const char *name, uint8_t *out, size_t cap)
{
    FILE *f = fopen(FEDREC_VECTORS_DIR "/chacha20_rfc8439.txt", "r");
    assert_non_null(f);
    char line[1024];
    size_t n = 0;
    int found = 0;
    while (fgets(line, sizeof line, f)) {
        size_t l = strlen(name);
        if (!strncmp(line, name, l) && !strncmp(line + l, " = ", 3)) {
            line[strcspn(line, "\r\n")] = 0;
            n = hex_decode(line + l + 3, out, cap);
            found = 1;
        }
    }
    fclose(f);
    assert_true(found);
    return n;
}

/* The RFC nonce bytes as (round, purpose): nonce = LE32(purpose) || LE64(round). */
static void nonce_to_round(const uint8_t nonce[12], uint64_t *round, uint32_t *purpose)
{
    *purpose = 0;
    *round = 0;
    for (int i = 0; i < 4; i++)
        *purpose |= (uint32_t)nonce[i] << (8 * i);
    for (int i = 0; i < 8; i++)
        *round |= (uint64_t)nonce[4 + i] << (8 * i);
}

static void words_to_bytes(const uint32_t *w, size_t n, uint8_t *out)
{
    for (size_t i = 0; i < n; i++)
        for (int b = 0; b < 4; b++)
            out[4 * i + b] = (uint8_t)(w[i] >> (8 * b));
}

static void test_prg_rfc8439_vectors(void **state)
{
    (void)state;
    uint8_t key[32], nonce[12], ctr[4], expect[256], got[256];
    /* 2.3.2: the serialized block at counter 1 = mask words 16..31 of a mask
     * generated from counter 0 with the nonce the (round, purpose) gives. */
    assert_int_equal(vector("block.key", key, 32), 32);
    assert_int_equal(vector("block.nonce", nonce, 12), 12);
    assert_int_equal(vector("block.counter", ctr, 4), 1);
    assert_int_equal(ctr[0], 1);
    assert_int_equal(vector("block.keystream", expect, 64), 64);
    uint64_t round;
    uint32_t purpose;
    nonce_to_round(nonce, &round, &purpose);
    uint8_t n2[12];
    fedreci_prg_nonce(n2, round, purpose);
    assert_memory_equal(n2, nonce, 12);
    uint32_t w[48];
    memset(w, 0, sizeof w);
    int8_t plus = 1, minus = -1;
    fedreci_prg_add(key, &plus, 1, n2, 0, w, 32);
    words_to_bytes(w + 16, 16, got);
    assert_memory_equal(got, expect, 64);
    /* The same block through the counter argument, and subtracted. */
    fedreci_prg_words(key, n2, 1, w, 16);
    words_to_bytes(w, 16, got);
    assert_memory_equal(got, expect, 64);
    fedreci_prg_add(key, &minus, 1, n2, 1, w, 16);
    for (int i = 0; i < 16; i++)
        assert_int_equal(w[i], 0);

    /* 2.4.2: keystream from counter 1 XOR plaintext = ciphertext. */
    uint8_t pt[128], ctx[128];
    assert_int_equal(vector("cipher.key", key, 32), 32);
    assert_int_equal(vector("cipher.nonce", nonce, 12), 12);
    assert_int_equal(vector("cipher.counter", ctr, 4), 1);
    assert_int_equal(ctr[0], 1);
    size_t len = vector("cipher.plaintext", pt, sizeof pt);
    assert_int_equal(len, 114);
    assert_int_equal(vector("cipher.ciphertext", ctx, sizeof ctx), 114);
    nonce_to_round(nonce, &round, &purpose);
    fedreci_prg_nonce(n2, round, purpose);
    fedreci_prg_words(key, n2, 0, w, 16 + 29);
    words_to_bytes(w + 16, 29, got);
    for (size_t i = 0; i < len; i++)
        assert_int_equal(got[i] ^ pt[i], ctx[i]);
}

static void test_prg_chunks_and_high_bits(void **state)
{
    (void)state;
    /* A long mask equals the concatenation of per-block generation, across
     * the 16 KiB chunk boundary, and accumulates with signs. */
    enum { D = 3 * FEDRECI_PRG_CHUNK_BYTES / 4 + 37 };
    uint32_t *a = calloc(D, sizeof *a), *b = calloc(D, sizeof *b);
    uint8_t key[64];
    for (int i = 0; i < 64; i++)
        key[i] = (uint8_t)(i * 13 + 5);
    uint8_t nonce[12];
    fedreci_prg_nonce(nonce, 12345, FEDRECI_PRG_PAIR_MASK);
    fedreci_prg_words(key, nonce, 0, a, D);
    uint8_t ref[64];
    for (uint32_t blk = 0; blk < (D + 15) / 16; blk++) {
        crypto_stream_chacha20_ietf_xor_ic(ref, (const uint8_t[64]){0}, 64, nonce, blk, key);
        for (uint32_t i = 0; i < 16 && blk * 16 + i < D; i++) {
            uint32_t v = (uint32_t)ref[4 * i] | (uint32_t)ref[4 * i + 1] << 8 |
                         (uint32_t)ref[4 * i + 2] << 16 | (uint32_t)ref[4 * i + 3] << 24;
            assert_int_equal(a[blk * 16 + i], v);
        }
    }
    int8_t signs[2] = {1, -1};
    memset(b, 0, D * sizeof *b);
    fedreci_prg_add(key, signs, 2, nonce, 0, b, D); /* key0 - key1 */
    uint32_t *c1 = calloc(D, sizeof *c1);
    fedreci_prg_words(key + 32, nonce, 0, c1, D);
    for (size_t i = 0; i < D; i++)
        assert_int_equal(b[i], a[i] - c1[i]);
    /* Keys differing only in their top bit (byte 31, bit 7) or in byte 16
     * give unrelated masks: the full 256-bit key is used. */
    uint8_t k2[32];
    memcpy(k2, key, 32);
    k2[31] ^= 0x80;
    fedreci_prg_words(k2, nonce, 0, b, D);
    size_t same = 0;
    for (size_t i = 0; i < D; i++)
        same += a[i] == b[i];
    assert_true(same < 4);
    memcpy(k2, key, 32);
    k2[16] ^= 0x01;
    fedreci_prg_words(k2, nonce, 0, b, D);
    same = 0;
    for (size_t i = 0; i < D; i++)
        same += a[i] == b[i];
    assert_true(same < 4);
    /* Another purpose or round gives another mask. */
    uint8_t n3[12];
    fedreci_prg_nonce(n3, 12346, FEDRECI_PRG_PAIR_MASK);
    fedreci_prg_words(key, n3, 0, b, 64);
    assert_memory_not_equal(a, b, 64 * sizeof *a);
    fedreci_prg_nonce(n3, 12345, FEDRECI_PRG_SELF_MASK);
    fedreci_prg_words(key, n3, 0, b, 64);
    assert_memory_not_equal(a, b, 64 * sizeof *a);
    free(a);
    free(b);
    free(c1);
}

/* ---- key agreement ------------------------------------------------------------ */

static void test_ka_rejects_small_order(void **state)
{
    (void)state;
    assert_int_equal(fedreci_secagg_sodium_ready(), FEDREC_OK);
    uint8_t sk[32], pk[32], shared[32], peer_sk[32], peer_pk[32], s2[32];
    randombytes_buf(sk, 32);
    randombytes_buf(peer_sk, 32);
    crypto_scalarmult_base(pk, sk);
    crypto_scalarmult_base(peer_pk, peer_sk);
    assert_int_equal(fedreci_secagg_ka(shared, sk, peer_pk), FEDREC_OK);
    assert_int_equal(fedreci_secagg_ka(s2, peer_sk, pk), FEDREC_OK);
    assert_memory_equal(shared, s2, 32);
    uint8_t zero_pk[32] = {0}; /* the identity: small order */
    assert_int_equal(fedreci_secagg_ka(shared, sk, zero_pk), FEDREC_ERR_CRYPTO);
    uint8_t one_pk[32] = {1};
    assert_int_equal(fedreci_secagg_ka(shared, sk, one_pk), FEDREC_ERR_CRYPTO);
    for (int i = 0; i < 32; i++)
        assert_int_equal(shared[i], 0);
}

/* ---- neighbour graph ---------------------------------------------------------- */

static void test_graph_properties(void **state)
{
    (void)state;
    struct {
        uint32_t m, k, deg;
    } cases[] = {{10, 4, 4}, {10, 5, 5}, {11, 5, 6}, {50, 8, 8},   {9, 8, 8},
                 {9, 20, 8}, {7, 5, 6},  {2, 1, 1},  {300, 24, 24}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        uint32_t m = cases[c].m;
        fedreci_secagg_params p = make_params(m < 2 ? 2 : (m > cases[c].k ? m : cases[c].k + 1),
                                              cases[c].k, cases[c].k / 2 + 1, 4);
        fedreci_graph g;
        assert_int_equal(fedreci_graph_build(&g, &p, m), FEDREC_OK);
        assert_int_equal(g.degree, cases[c].deg);
        uint32_t *nb = malloc((size_t)m * m * sizeof *nb);
        for (uint32_t u = 0; u < m; u++) {
            uint32_t cnt;
            assert_int_equal(fedreci_secagg_neighbors(&p, m, u, nb + (size_t)u * m, m, &cnt),
                             FEDREC_OK);
            assert_int_equal(cnt, g.degree);
            for (uint32_t j = 0; j < cnt; j++) {
                uint32_t v = nb[(size_t)u * m + j];
                assert_true(v != u && v < m);
                if (j)
                    assert_true(v > nb[(size_t)u * m + j - 1]); /* sorted, distinct */
                assert_true(fedreci_graph_adjacent(&g, u, v));
            }
        }
        /* symmetric */
        for (uint32_t u = 0; u < m; u++)
            for (uint32_t j = 0; j < g.degree; j++) {
                uint32_t v = nb[(size_t)u * m + j], found = 0;
                for (uint32_t i = 0; i < g.degree; i++)
                    found |= nb[(size_t)v * m + i] == u;
                assert_true(found);
            }
        free(nb);
        fedreci_graph_free(&g);
    }
    /* Another seed gives another graph; the same seed the same one. */
    fedreci_secagg_params p = make_params(100, 8, 5, 4);
    uint32_t a[8], b[8], n1, n2;
    int differs = 0;
    for (uint32_t u = 0; u < 100; u++) {
        assert_int_equal(fedreci_secagg_neighbors(&p, 100, u, a, 8, &n1), FEDREC_OK);
        assert_int_equal(fedreci_secagg_neighbors(&p, 100, u, b, 8, &n2), FEDREC_OK);
        assert_memory_equal(a, b, sizeof a);
        fedreci_secagg_params q = p;
        q.graph_seed[31] ^= 0x80;
        assert_int_equal(fedreci_secagg_neighbors(&q, 100, u, b, 8, &n2), FEDREC_OK);
        differs |= memcmp(a, b, sizeof a) != 0;
    }
    assert_true(differs);
    assert_int_equal(fedreci_secagg_neighbors(&p, 100, 100, a, 8, &n1), FEDREC_ERR_INVALID);
}

/* ---- checked reconstruction (issue 13) ------------------------------------------ */

/* Advertise and share keys for every client; `tamper` (optional) edits the
 * bundles of client `who` (a writable copy) before the server sees them. */
static void setup_tampered(round_sim *r, uint32_t who,
                           void (*tamper)(fedreci_secagg_ciphertext *, uint8_t *, size_t))
{
    const fedreci_secagg_advert *roster;
    size_t m;
    sim_advertise(r, &roster, &m);
    const uint8_t *contribs;
    sim_seed(r, roster, m, &contribs);
    for (uint32_t i = 0; i < r->n; i++) {
        const fedreci_secagg_ciphertext *cts;
        size_t n_cts;
        assert_int_equal(
            fedreci_secagg_client_share_keys(r->c[i], roster, m, contribs, &cts, &n_cts),
            FEDREC_OK);
        fedreci_secagg_ciphertext cp[16];
        uint8_t cm[16][FEDRECI_SECAGG_COMMIT_BYTES];
        assert_true(n_cts <= 16);
        for (size_t j = 0; j < n_cts; j++) {
            cp[j] = cts[j];
            memcpy(cm[j], cts[j].commit, sizeof cm[j]);
            cp[j].commit = cm[j];
        }
        if (tamper && i == who)
            tamper(cp, &cm[0][0], n_cts);
        assert_int_equal(fedreci_secagg_server_add_shares(r->s, r->ids[i], cp, n_cts), FEDREC_OK);
    }
    assert_int_equal(fedreci_secagg_server_close_share_keys(r->s), FEDREC_OK);
}

/* a dealer that commits to another b than the one it shared */
static void tamper_cb(fedreci_secagg_ciphertext *cts, uint8_t *cm, size_t n)
{
    (void)cts;
    for (size_t j = 0; j < n; j++)
        cm[j * FEDRECI_SECAGG_COMMIT_BYTES + 64] ^= 1;
}

/* a dealer whose commitment to one share does not match the share */
static void tamper_hb(fedreci_secagg_ciphertext *cts, uint8_t *cm, size_t n)
{
    (void)cts;
    (void)n;
    cm[3] ^= 1;
}

static void test_checked_reconstruction(void **state)
{
    (void)state;
    const uint32_t d = 40;
    /* 1. a survivor reveals a wrong share: its reveals are refused, it is
     *    named, and the sum is still exact from the other holders */
    {
        fedreci_secagg_params p = make_params(6, 5, 3, d);
        round_sim r;
        sim_init(&r, &p);
        setup_tampered(&r, 0, NULL);
        uint32_t *want = calloc(d, sizeof *want);
        for (uint32_t i = 0; i < r.n; i++) {
            assert_int_equal(sim_input(&r, i), FEDREC_OK);
            const uint32_t *q = fedreci_secagg_client_quantized_input(r.c[i]);
            for (uint32_t j = 0; j < d; j++)
                want[j] += q[j];
        }
        const uint64_t *sv, *dr;
        size_t ns, nd;
        assert_int_equal(fedreci_secagg_server_close_masked_input(r.s, &sv, &ns, &dr, &nd),
                         FEDREC_OK);
        for (uint32_t i = 0; i < r.n; i++) {
            const fedreci_secagg_reveal *rv;
            size_t n_rv;
            assert_int_equal(sim_reveals(&r, i, sv, ns, dr, nd, &rv, &n_rv), FEDREC_OK);
            if (i != 1) {
                assert_int_equal(fedreci_secagg_server_add_unmask(r.s, r.ids[i], rv, n_rv),
                                 FEDREC_OK);
                continue;
            }
            fedreci_secagg_reveal bad[16];
            memcpy(bad, rv, n_rv * sizeof *rv);
            bad[n_rv - 1].share[0] ^= 1; /* still a canonical scalar */
            assert_int_equal(fedreci_secagg_server_add_unmask(r.s, r.ids[i], bad, n_rv),
                             FEDREC_ERR_CRYPTO);
            /* named, and its correct reveals are refused from now on too */
            assert_int_equal(fedreci_secagg_server_add_unmask(r.s, r.ids[i], rv, n_rv),
                             FEDREC_ERR_PROTOCOL);
        }
        const uint64_t *cul;
        assert_int_equal(fedreci_secagg_server_culprits(r.s, &cul), 1);
        assert_int_equal(cul[0], r.ids[1]);
        uint32_t *sum = calloc(d, sizeof *sum);
        assert_int_equal(fedreci_secagg_server_finish(r.s, sum, d), FEDREC_OK);
        assert_memory_equal(sum, want, d * sizeof *sum);
        free(sum);
        free(want);
        sim_free(&r);
    }
    /* 2. a dealer that committed to another b: the rebuilt b does not open
     *    the commitment although every share did; the round aborts naming it */
    {
        fedreci_secagg_params p = make_params(6, 5, 3, d);
        round_sim r;
        sim_init(&r, &p);
        setup_tampered(&r, 2, tamper_cb);
        for (uint32_t i = 0; i < r.n; i++)
            assert_int_equal(sim_input(&r, i), FEDREC_OK);
        const uint64_t *sv, *dr;
        size_t ns, nd;
        assert_int_equal(fedreci_secagg_server_close_masked_input(r.s, &sv, &ns, &dr, &nd),
                         FEDREC_OK);
        for (uint32_t i = 0; i < r.n; i++)
            sim_unmask(&r, i, sv, ns, dr, nd);
        uint32_t *sum = calloc(d, sizeof *sum);
        assert_int_equal(fedreci_secagg_server_finish(r.s, sum, d), FEDREC_ERR_ABORTED);
        const uint64_t *cul;
        assert_int_equal(fedreci_secagg_server_culprits(r.s, &cul), 1);
        assert_int_equal(cul[0], r.ids[2]);
        free(sum);
        sim_free(&r);
    }
    /* 3. a bundle that does not open its commitment is refused by its
     *    receiver (the bundle from client 4 to its first neighbour) */
    {
        fedreci_secagg_params p = make_params(6, 5, 3, d);
        round_sim r;
        sim_init(&r, &p);
        setup_tampered(&r, 4, tamper_hb);
        int refused = 0;
        for (uint32_t i = 0; i < r.n; i++) {
            const fedreci_secagg_ciphertext *in;
            size_t n_in;
            assert_int_equal(fedreci_secagg_server_shares_for(r.s, r.ids[i], &in, &n_in),
                             FEDREC_OK);
            const uint32_t *y;
            fedrec_err e = fedreci_secagg_client_masked_input(
                r.c[i], in, n_in, r.x + (size_t)i * (d - 1), r.w[i], &y, NULL);
            if (e) {
                assert_int_equal(e, FEDREC_ERR_CRYPTO);
                assert_non_null(strstr(fedrec_errmsg(), "commitments"));
                refused++;
            }
        }
        assert_int_equal(refused, 1);
        sim_free(&r);
    }
}

/* a dealer whose bundles to its first n_garbage neighbours are garbage */
static size_t n_garbage;
/* what the dealer really made before the garbage (complaint tests) */
static uint8_t garbage_orig[8][FEDRECI_SHARE_CT_BYTES];
static uint8_t garbage_cm[8][FEDRECI_SECAGG_COMMIT_BYTES];
static uint64_t garbage_to[8];
static void tamper_garbage(fedreci_secagg_ciphertext *cts, uint8_t *cm, size_t n)
{
    static uint8_t buf[8][FEDRECI_SHARE_CT_BYTES];
    (void)cm;
    for (size_t j = 0; j < n && j < n_garbage && j < 8; j++) {
        memcpy(garbage_orig[j], cts[j].bytes, FEDRECI_SHARE_CT_BYTES);
        memcpy(garbage_cm[j], cts[j].commit, FEDRECI_SECAGG_COMMIT_BYTES);
        garbage_to[j] = cts[j].to;
        memcpy(buf[j], cts[j].bytes, FEDRECI_SHARE_CT_BYTES);
        buf[j][40] ^= 1;
        cts[j].bytes = buf[j];
    }
}

/* Lenient clients (what the session uses): a garbage bundle is ignored by
 * its receiver, which still masks with the sender; the round completes with
 * the exact sum while the sender's secrets keep t good holders, and aborts
 * when they do not. */
static void test_lenient_bundles(void **state)
{
    (void)state;
    const uint32_t d = 30;
    for (int all = 0; all < 2; all++) {
        fedreci_secagg_params p = make_params(6, 5, 3, d);
        round_sim r;
        sim_init(&r, &p);
        for (uint32_t i = 0; i < r.n; i++)
            fedreci_secagg_client_set_lenient(r.c[i], 1);
        n_garbage = all ? 5 : 1; /* k - t = 2: five bad bundles leave too few holders */
        setup_tampered(&r, 3, tamper_garbage);
        uint32_t *want = calloc(d, sizeof *want);
        uint32_t bad = 0;
        for (uint32_t i = 0; i < r.n; i++) {
            assert_int_equal(sim_input(&r, i), FEDREC_OK);
            bad += fedreci_secagg_client_bad_bundles(r.c[i]);
            const uint32_t *q = fedreci_secagg_client_quantized_input(r.c[i]);
            for (uint32_t j = 0; j < d; j++)
                want[j] += q[j];
        }
        assert_int_equal(bad, n_garbage);
        const uint64_t *sv, *dr;
        size_t ns, nd;
        assert_int_equal(fedreci_secagg_server_close_masked_input(r.s, &sv, &ns, &dr, &nd),
                         FEDREC_OK);
        for (uint32_t i = 0; i < r.n; i++)
            sim_unmask(&r, i, sv, ns, dr, nd);
        uint32_t *sum = calloc(d, sizeof *sum);
        if (!all) {
            assert_int_equal(fedreci_secagg_server_finish(r.s, sum, d), FEDREC_OK);
            assert_memory_equal(sum, want, d * sizeof *sum);
        } else {
            assert_int_equal(fedreci_secagg_server_finish(r.s, sum, d), FEDREC_ERR_ABORTED);
        }
        free(sum);
        free(want);
        sim_free(&r);
    }
}

/* ---- the complaint step ----------------------------------------------------------- */

enum {
    H_NONE = 0,       /* nobody misbehaves: the step costs one empty message each */
    H_GARBAGE_SILENT, /* garbage to every neighbour, answers nothing */
    H_GARBAGE_OPENS,  /* garbage to every neighbour, then opens the real shares */
    H_BAD_OPENING,    /* garbage to every neighbour, opens shares it never committed to */
    H_FALSE_FORGED,   /* complains about a bundle its neighbour never sent */
    H_FALSE_REAL,     /* complains about the good bundle it did receive */
    H_FALSE_BADSIG,   /* complains with a signature that does not verify */
};

/* One round with the complaint step, client `h` hostile as `mode` says, on
 * n = 8, k = 6, t = 4 (k - t = 2: garbage to all six neighbours leaves no
 * holder of h's secrets, which aborted the round before complaints). The
 * sum must be exactly the sum of the members that were not excluded
 * (computed from their quantized inputs), and only the expected members
 * excluded and named. */
static void complaint_round(uint32_t h, int mode)
{
    const uint32_t d = 30;
    fedreci_secagg_params p = make_params(8, 6, 4, d);
    p.round_id = 100 + (uint64_t)mode;
    round_sim r;
    sim_init(&r, &p);
    for (uint32_t i = 0; i < r.n; i++)
        fedreci_secagg_client_set_lenient(r.c[i], 1);
    int garbage = mode == H_GARBAGE_SILENT || mode == H_GARBAGE_OPENS || mode == H_BAD_OPENING;
    n_garbage = garbage ? 8 : 0;
    setup_tampered(&r, h, garbage ? tamper_garbage : NULL);
    /* the complaints */
    size_t bad_seen = 0;
    for (uint32_t i = 0; i < r.n; i++) {
        const fedreci_secagg_ciphertext *in;
        size_t n_in;
        assert_int_equal(fedreci_secagg_server_shares_for(r.s, r.ids[i], &in, &n_in), FEDREC_OK);
        const fedreci_secagg_complaint *cpl;
        size_t n_cpl;
        assert_int_equal(fedreci_secagg_client_receive(r.c[i], in, n_in, &cpl, &n_cpl), FEDREC_OK);
        if (i != h || mode < H_FALSE_FORGED) {
            for (size_t k = 0; k < n_cpl; k++) {
                assert_int_equal(cpl[k].dealer, r.ids[h]);
                assert_int_equal(cpl[k].from, r.ids[i]);
            }
            bad_seen += n_cpl;
            assert_int_equal(fedreci_secagg_server_add_complaints(r.s, r.ids[i], cpl, n_cpl),
                             FEDREC_OK);
            continue;
        }
        /* the liar: a complaint about its first dealer */
        fedreci_secagg_complaint f;
        memset(&f, 0, sizeof f);
        f.from = r.ids[i];
        f.dealer = in[0].from;
        if (mode == H_FALSE_FORGED)
            randombytes_buf(f.bundle, sizeof f.bundle);
        else
            fedreci_secagg_bundle_hash(f.bundle, p.round_id, f.dealer, f.from, in[0].bytes,
                                       in[0].commit);
        uint8_t msg[FEDRECI_COMPLAINT_MSG_BYTES];
        fedreci_secagg_complaint_msg(msg, p.round_id, f.from, f.dealer, f.bundle);
        assert_int_equal(crypto_sign_detached(f.sig, NULL, msg, sizeof msg, r.sks[i]), 0);
        if (mode == H_FALSE_BADSIG)
            f.sig[5] ^= 1;
        fedrec_err want = mode == H_FALSE_FORGED   ? FEDREC_ERR_CRYPTO
                          : mode == H_FALSE_BADSIG ? FEDREC_ERR_SIGNATURE
                                                   : FEDREC_OK;
        assert_int_equal(fedreci_secagg_server_add_complaints(r.s, r.ids[i], &f, 1), want);
    }
    uint32_t deg = r.n - 1 > 6 ? 6 : r.n - 1;
    assert_int_equal(bad_seen, garbage ? deg : 0);
    assert_int_equal(fedreci_secagg_server_n_complaints(r.s), garbage                ? deg
                                                              : mode == H_FALSE_REAL ? 1
                                                                                     : 0);
    /* no complaint accepted: no per-bundle state was made (it is allocated
       on the first accepted complaint), and nobody has one against it */
    if (!fedreci_secagg_server_n_complaints(r.s))
        for (uint32_t i = 0; i < r.n; i++) {
            const fedreci_secagg_complaint *ag = NULL;
            size_t n_ag = 1;
            assert_int_equal(fedreci_secagg_server_complaints_against(r.s, r.ids[i], &ag, &n_ag),
                             FEDREC_OK);
            assert_int_equal(n_ag, 0);
            assert_null(ag);
        }
    /* the answers */
    if (fedreci_secagg_server_n_complaints(r.s)) {
        for (uint32_t i = 0; i < r.n; i++) {
            const fedreci_secagg_complaint *ag;
            size_t n_ag;
            assert_int_equal(fedreci_secagg_server_complaints_against(r.s, r.ids[i], &ag, &n_ag),
                             FEDREC_OK);
            const fedreci_secagg_opening *op;
            size_t n_op;
            assert_int_equal(fedreci_secagg_client_answer(r.c[i], ag, n_ag, &op, &n_op), FEDREC_OK);
            if (i == h && garbage) {
                /* its state machine opens nothing: the complaints name the
                   garbage, not what it dealt */
                assert_int_equal(n_op, 0);
                if (mode == H_GARBAGE_SILENT)
                    continue;
                /* a hostile dealer that knows its plaintexts opens them
                   anyway: the same complaints about its real bundles */
                fedreci_secagg_complaint re[16];
                assert_true(n_ag <= 8);
                for (size_t k = 0; k < n_ag; k++) {
                    size_t j = 0;
                    while (j < 8 && garbage_to[j] != ag[k].from)
                        j++;
                    assert_true(j < 8);
                    re[k] = ag[k];
                    fedreci_secagg_bundle_hash(re[k].bundle, p.round_id, r.ids[h], ag[k].from,
                                               garbage_orig[j], garbage_cm[j]);
                    uint8_t msg[FEDRECI_COMPLAINT_MSG_BYTES];
                    fedreci_secagg_complaint_msg(msg, p.round_id, ag[k].from, r.ids[h],
                                                 re[k].bundle);
                    assert_int_equal(crypto_sign_detached(re[k].sig, NULL, msg, sizeof msg,
                                                          r.sks[index_of(&r, ag[k].from)]),
                                     0);
                }
                assert_int_equal(fedreci_secagg_client_answer(r.c[i], re, n_ag, &op, &n_op),
                                 FEDREC_OK);
            }
            assert_int_equal(n_op, n_ag); /* every relayed complaint is genuine here */
            if (i == h && mode == H_BAD_OPENING) {
                fedreci_secagg_opening bad[16];
                memcpy(bad, op, n_op * sizeof *op);
                bad[n_op - 1].plain[3] ^= 1;
                assert_int_equal(fedreci_secagg_server_add_openings(r.s, r.ids[i], bad, n_op),
                                 FEDREC_ERR_CRYPTO);
                continue;
            }
            assert_int_equal(fedreci_secagg_server_add_openings(r.s, r.ids[i], op, n_op),
                             FEDREC_OK);
        }
    }
    const uint64_t *ex;
    size_t n_ex;
    assert_int_equal(fedreci_secagg_server_close_complaints(r.s, &ex, &n_ex), FEDREC_OK);
    int h_out = mode == H_GARBAGE_SILENT || mode == H_BAD_OPENING || mode == H_FALSE_FORGED ||
                mode == H_FALSE_BADSIG;
    assert_int_equal(n_ex, h_out ? 1 : 0);
    if (h_out)
        assert_int_equal(ex[0], r.ids[h]);
    /* masked inputs: the excluded member's client refuses (it learns it
       was excluded) and the coordinator would refuse its input anyway */
    uint32_t *want = calloc(d, sizeof *want);
    for (uint32_t i = 0; i < r.n; i++) {
        const fedreci_secagg_opening *op;
        size_t n_op;
        assert_int_equal(fedreci_secagg_server_openings_for(r.s, r.ids[i], &op, &n_op), FEDREC_OK);
        if (!fedreci_secagg_server_n_complaints(r.s)) {
            assert_int_equal(n_op, 0);
            assert_null(op);
        }
        fedrec_err e = fedreci_secagg_client_resolve(r.c[i], ex, n_ex, op, n_op);
        const uint32_t *y;
        if (h_out && i == h) {
            assert_int_equal(e, FEDREC_ERR_PROTOCOL);
            assert_int_equal(fedreci_secagg_client_masked_input(
                                 r.c[i], NULL, 0, r.x + (size_t)i * (d - 1), r.w[i], &y, NULL),
                             FEDREC_OK);
            assert_int_equal(fedreci_secagg_server_add_masked_input(r.s, r.ids[i], y, d),
                             FEDREC_ERR_PROTOCOL);
            continue;
        }
        assert_int_equal(e, FEDREC_OK);
        assert_int_equal(fedreci_secagg_client_masked_input(
                             r.c[i], NULL, 0, r.x + (size_t)i * (d - 1), r.w[i], &y, NULL),
                         FEDREC_OK);
        assert_int_equal(fedreci_secagg_server_add_masked_input(r.s, r.ids[i], y, d), FEDREC_OK);
        const uint32_t *q = fedreci_secagg_client_quantized_input(r.c[i]);
        for (uint32_t j = 0; j < d; j++)
            want[j] += q[j];
    }
    const uint64_t *sv, *dr;
    size_t ns, nd;
    assert_int_equal(fedreci_secagg_server_close_masked_input(r.s, &sv, &ns, &dr, &nd), FEDREC_OK);
    assert_int_equal(ns, r.n - (h_out ? 1 : 0));
    assert_int_equal(nd, 0);
    for (size_t j = 0; j < ns; j++)
        sim_unmask(&r, (uint32_t)index_of(&r, sv[j]), sv, ns, dr, nd);
    uint32_t *sum = calloc(d, sizeof *sum);
    assert_int_equal(fedreci_secagg_server_finish(r.s, sum, d), FEDREC_OK);
    assert_memory_equal(sum, want, d * sizeof *sum);
    const uint64_t *cul;
    size_t n_cul = fedreci_secagg_server_culprits(r.s, &cul);
    int named = mode == H_BAD_OPENING || mode == H_FALSE_BADSIG;
    assert_int_equal(n_cul, named ? 1 : 0);
    if (named)
        assert_int_equal(cul[0], r.ids[h]);
    free(sum);
    free(want);
    sim_free(&r);
}

static void test_complaints(void **state)
{
    (void)state;
    for (int mode = H_NONE; mode <= H_FALSE_BADSIG; mode++)
        for (uint32_t h = 0; h < 8; h += 3)
            complaint_round(h, mode);
}

/* Without the complaint step, garbage to every neighbour aborts the round
 * (the reference for complaint_round's H_GARBAGE_SILENT). */
static void test_garbage_to_all_aborts_without_complaints(void **state)
{
    (void)state;
    const uint32_t d = 30;
    fedreci_secagg_params p = make_params(8, 6, 4, d);
    round_sim r;
    sim_init(&r, &p);
    for (uint32_t i = 0; i < r.n; i++)
        fedreci_secagg_client_set_lenient(r.c[i], 1);
    n_garbage = 8;
    setup_tampered(&r, 2, tamper_garbage);
    for (uint32_t i = 0; i < r.n; i++)
        assert_int_equal(sim_input(&r, i), FEDREC_OK);
    const uint64_t *sv, *dr;
    size_t ns, nd;
    assert_int_equal(fedreci_secagg_server_close_masked_input(r.s, &sv, &ns, &dr, &nd), FEDREC_OK);
    for (uint32_t i = 0; i < r.n; i++)
        sim_unmask(&r, i, sv, ns, dr, nd);
    uint32_t *sum = calloc(d, sizeof *sum);
    assert_int_equal(fedreci_secagg_server_finish(r.s, sum, d), FEDREC_ERR_ABORTED);
    free(sum);
    sim_free(&r);
}

/* A dealer opens nothing for a complaint the coordinator altered or forged:
 * one naming other bytes than the bundle it sent, one whose signature does
 * not verify, one from a non-neighbour or about another dealer. */
static void test_answer_refuses_forged_complaints(void **state)
{
    (void)state;
    const uint32_t d = 20;
    fedreci_secagg_params p = make_params(8, 6, 4, d);
    round_sim r;
    sim_init(&r, &p);
    setup_tampered(&r, 0, NULL);
    /* client 1's view of dealer 0... find a holder of 0's bundle */
    const fedreci_secagg_ciphertext *in = NULL;
    size_t n_in = 0;
    uint32_t holder = 0;
    for (uint32_t i = 1; i < r.n && !n_in; i++) {
        const fedreci_secagg_ciphertext *all;
        size_t n_all;
        assert_int_equal(fedreci_secagg_server_shares_for(r.s, r.ids[i], &all, &n_all), FEDREC_OK);
        for (size_t k = 0; k < n_all; k++)
            if (all[k].from == r.ids[0]) {
                in = &all[k];
                n_in = 1;
                holder = i;
            }
    }
    assert_int_equal(n_in, 1);
    fedreci_secagg_complaint f;
    f.from = r.ids[holder];
    f.dealer = r.ids[0];
    fedreci_secagg_bundle_hash(f.bundle, p.round_id, f.dealer, f.from, in->bytes, in->commit);
    uint8_t msg[FEDRECI_COMPLAINT_MSG_BYTES];
    fedreci_secagg_complaint_msg(msg, p.round_id, f.from, f.dealer, f.bundle);
    assert_int_equal(crypto_sign_detached(f.sig, NULL, msg, sizeof msg, r.sks[holder]), 0);
    const fedreci_secagg_opening *op;
    size_t n_op;
    /* the genuine complaint is opened, and the opening is the dealt bundle */
    assert_int_equal(fedreci_secagg_client_answer(r.c[0], &f, 1, &op, &n_op), FEDREC_OK);
    assert_int_equal(n_op, 1);
    assert_int_equal(op[0].to, f.from);
    /* every single-field change of it opens nothing */
    for (int field = 0; field < 4; field++) {
        fedreci_secagg_complaint g = f;
        if (field == 0)
            g.bundle[7] ^= 1;
        else if (field == 1)
            g.sig[9] ^= 1;
        else if (field == 2)
            g.from = r.ids[holder == 1 ? 2 : 1] == r.ids[0] ? 12345 : g.from ^ 1;
        else
            g.dealer ^= 1;
        assert_int_equal(fedreci_secagg_client_answer(r.c[0], &g, 1, &op, &n_op), FEDREC_OK);
        assert_int_equal(n_op, 0);
    }
    /* the same complaint signed by another member opens nothing either */
    uint32_t other = holder == 1 ? 2 : 1;
    assert_int_equal(crypto_sign_detached(f.sig, NULL, msg, sizeof msg, r.sks[other]), 0);
    assert_int_equal(fedreci_secagg_client_answer(r.c[0], &f, 1, &op, &n_op), FEDREC_OK);
    assert_int_equal(n_op, 0);
    sim_free(&r);
}

static void test_check_sum(void **state)
{
    (void)state;
    fedreci_secagg_params p = make_params(4, 3, 2, 5);
    p.clip = 1.5;
    p.scale = 10; /* each client |q| <= 15; 3 survivors: |sum| <= 45 */
    uint32_t sum[5] = {45, (uint32_t)-45, 0, 7, 3};
    assert_int_equal(fedreci_secagg_check_sum(&p, sum, 3, 3), FEDREC_OK);
    assert_int_equal(fedreci_secagg_check_sum(&p, sum, 3, 4), FEDREC_ERR_ABORTED);
    sum[1] = (uint32_t)-46;
    assert_int_equal(fedreci_secagg_check_sum(&p, sum, 3, 3), FEDREC_ERR_ABORTED);
    assert_non_null(strstr(fedrec_errmsg(), "coordinate 1 is -46"));
    sum[1] = 0;
    sum[0] = 46;
    assert_int_equal(fedreci_secagg_check_sum(&p, sum, 3, 3), FEDREC_ERR_ABORTED);
    /* with a fourth survivor the same value is in range */
    assert_int_equal(fedreci_secagg_check_sum(&p, sum, 4, 3), FEDREC_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_params_rejected),
        cmocka_unit_test(test_prg_rfc8439_vectors),
        cmocka_unit_test(test_prg_chunks_and_high_bits),
        cmocka_unit_test(test_ka_rejects_small_order),
        cmocka_unit_test(test_graph_properties),
        cmocka_unit_test(test_clip_counts),
        cmocka_unit_test(test_stochastic_rounding_unbiased),
        cmocka_unit_test(test_quantize_kernels_agree),
        cmocka_unit_test(test_rounding_bias_bound),
        cmocka_unit_test(test_quantize_nan_refused),
        cmocka_unit_test(test_masked_input_slices),
        cmocka_unit_test(test_all_zero_weights),
        cmocka_unit_test(test_budget_edge_sums_exactly),
        cmocka_unit_test(test_exact_sum_no_dropout),
        cmocka_unit_test(test_dropout_each_stage),
        cmocka_unit_test(test_abort_below_threshold),
        cmocka_unit_test(test_never_both_shares),
        cmocka_unit_test(test_refusals_leave_state_unchanged),
        cmocka_unit_test(test_binding_mismatch),
        cmocka_unit_test(test_consistency_split),
        cmocka_unit_test(test_graph_seed),
        cmocka_unit_test(test_seed_retry),
        cmocka_unit_test(test_exact_sum_random_dropouts),
        cmocka_unit_test(test_unbuffered_clients),
        cmocka_unit_test(test_checked_reconstruction),
        cmocka_unit_test(test_check_sum),
        cmocka_unit_test(test_lenient_bundles),
        cmocka_unit_test(test_complaints),
        cmocka_unit_test(test_garbage_to_all_aborts_without_complaints),
        cmocka_unit_test(test_answer_refuses_forged_complaints),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
