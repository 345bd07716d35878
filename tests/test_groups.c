/*
 * Tests for core/secagg/groups (issue 20): the assignment of a cohort to
 * SecAgg groups (a balanced partition, never below the minimum group,
 * deterministic in (seed, round, cohort)), the master's exact int64 sum of
 * group sums past the 32-bit range, whole-group dropping, and, end to end
 * through the real SecAgg+ state machines, that G groups and one instance
 * over the same cohort at the same scale read back bit-identical sums.
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

#include "core/rng.h"
#include "core/secagg/groups.h"
#include "core/secagg/quantize.h"
#include "core/secagg/secagg.h"
#include "fedrec/fedrec.h"

static int setup(void **state)
{
    (void)state;
    return sodium_init() < 0 ? -1 : 0;
}

/* n strictly ascending ids with random gaps. */
static void make_ids(uint64_t *ids, uint32_t n, uint64_t seed)
{
    fedreci_rng r = fedreci_rng_seeded(seed);
    uint64_t v = 0;
    for (uint32_t i = 0; i < n; i++) {
        v += 1 + fedreci_rng_below(&r, 1000000);
        ids[i] = v;
    }
}

static void test_count(void **state)
{
    (void)state;
    /* 10,000 shoppers in groups of 500: 20 groups */
    assert_int_equal(fedreci_groups_count(10000, 500, 100, 0), 20);
    /* capped by the aggregators available */
    assert_int_equal(fedreci_groups_count(10000, 500, 100, 7), 7);
    /* 1,100 in groups of at most 500: three (367, 367, 366) */
    assert_int_equal(fedreci_groups_count(1100, 500, 100, 0), 3);
    /* ... but never one below the minimum: 1,100 with a minimum of 400 */
    assert_int_equal(fedreci_groups_count(1100, 500, 400, 0), 2);
    /* fewer groups when one would fall below the minimum */
    assert_int_equal(fedreci_groups_count(30, 5, 8, 0), 3);
    assert_int_equal(fedreci_groups_count(15, 5, 8, 0), 1);
    /* below the minimum: no round at all */
    assert_int_equal(fedreci_groups_count(7, 5, 8, 0), 0);
    /* group_size 0: one group */
    assert_int_equal(fedreci_groups_count(300, 0, 2, 0), 1);
    /* sizes: the first n % G groups have one more */
    assert_int_equal(fedreci_groups_size(10, 3, 0), 4);
    assert_int_equal(fedreci_groups_size(10, 3, 1), 3);
    assert_int_equal(fedreci_groups_size(10, 3, 2), 3);
    assert_int_equal(fedreci_groups_size(10, 3, 3), 0);
    assert_int_equal(fedreci_groups_size(10, 0, 0), 0);
    /* the common scale is the one-instance default for the largest group */
    assert_true(fedreci_groups_scale(500, 16) == floor(1073741824.0 / (500.0 * 16)));
    assert_true(fedreci_groups_scale(0, 16) == 0);
    assert_true(fedreci_groups_scale(500, -1) == 0);
}

static void test_assign_partition(void **state)
{
    (void)state;
    enum { N = 1003, G = 7 };
    uint64_t ids[N];
    uint32_t gof[N], gof2[N];
    make_ids(ids, N, 5);
    assert_int_equal(fedreci_groups_assign(ids, N, G, 100, 42, 9, gof), FEDREC_OK);
    uint32_t cnt[G] = {0};
    for (uint32_t i = 0; i < N; i++) {
        assert_true(gof[i] < G);
        cnt[gof[i]]++;
    }
    /* 1003 = 7 * 143 + 2: groups 0 and 1 have 144, the others 143 */
    for (uint32_t g = 0; g < G; g++) {
        assert_int_equal(cnt[g], g < 2 ? 144 : 143);
        assert_int_equal(cnt[g], fedreci_groups_size(N, G, g));
        uint64_t m[200];
        assert_int_equal(fedreci_groups_members(ids, gof, N, g, m, 200), cnt[g]);
        for (uint32_t i = 1; i < cnt[g]; i++)
            assert_true(m[i] > m[i - 1]);
    }
    /* deterministic: the same inputs give the same groups */
    assert_int_equal(fedreci_groups_assign(ids, N, G, 100, 42, 9, gof2), FEDREC_OK);
    assert_memory_equal(gof, gof2, sizeof gof);
    /* another round or seed gives another grouping (a different shuffle of
       1003 positions; equal only with probability ~ 1/7^1003) */
    assert_int_equal(fedreci_groups_assign(ids, N, G, 100, 42, 10, gof2), FEDREC_OK);
    assert_memory_not_equal(gof, gof2, sizeof gof);
    assert_int_equal(fedreci_groups_assign(ids, N, G, 100, 43, 9, gof2), FEDREC_OK);
    assert_memory_not_equal(gof, gof2, sizeof gof);
    /* the groups are not the sorted ids cut in blocks: the members of group
       0 are spread over the cohort (its first member is not ids[0] or its
       143 members are not ids[0..143]) */
    uint32_t first_block = 0;
    for (uint32_t i = 0; i < 144; i++)
        first_block += gof[i] == 0;
    assert_true(first_block < 144);
}

static void test_assign_mixes_evenly(void **state)
{
    (void)state;
    /* over many rounds, each client lands in each of 4 groups about a
       quarter of the time: counts of a fair draw (2000 rounds, p = 1/4:
       mean 500, sd 19.4) stay within 6 sd for every client and group */
    enum { N = 40, G = 4, R = 2000 };
    uint64_t ids[N];
    uint32_t gof[N];
    uint32_t hits[N][G];
    memset(hits, 0, sizeof hits);
    make_ids(ids, N, 77);
    for (uint64_t r = 1; r <= R; r++) {
        assert_int_equal(fedreci_groups_assign(ids, N, G, 10, 1234, r, gof), FEDREC_OK);
        for (uint32_t i = 0; i < N; i++)
            hits[i][gof[i]]++;
    }
    for (uint32_t i = 0; i < N; i++)
        for (uint32_t g = 0; g < G; g++)
            assert_true(hits[i][g] > 500 - 6 * 20 && hits[i][g] < 500 + 6 * 20);
}

static void test_assign_refusals(void **state)
{
    (void)state;
    uint64_t ids[10];
    uint32_t gof[10];
    make_ids(ids, 10, 3);
    for (uint32_t i = 0; i < 10; i++)
        gof[i] = 777;
    /* 10 in 3 groups leaves a group of 3 < 4 */
    assert_int_equal(fedreci_groups_assign(ids, 10, 3, 4, 1, 1, gof), FEDREC_ERR_INVALID);
    assert_int_equal(fedreci_groups_assign(ids, 10, 0, 2, 1, 1, gof), FEDREC_ERR_INVALID);
    assert_int_equal(fedreci_groups_assign(ids, 10, 2, 1, 1, 1, gof), FEDREC_ERR_INVALID);
    assert_int_equal(fedreci_groups_assign(NULL, 10, 2, 2, 1, 1, gof), FEDREC_ERR_INVALID);
    uint64_t t = ids[4];
    ids[4] = ids[5];
    ids[5] = t; /* not ascending */
    assert_int_equal(fedreci_groups_assign(ids, 10, 2, 2, 1, 1, gof), FEDREC_ERR_INVALID);
    ids[5] = ids[4]; /* a duplicate */
    assert_int_equal(fedreci_groups_assign(ids, 10, 2, 2, 1, 1, gof), FEDREC_ERR_INVALID);
    for (uint32_t i = 0; i < 10; i++)
        assert_int_equal(gof[i], 777); /* nothing written */
    /* exactly at the minimum: 10 in 2 groups of 5 */
    make_ids(ids, 10, 3);
    assert_int_equal(fedreci_groups_assign(ids, 10, 2, 5, 1, 1, gof), FEDREC_OK);
    assert_int_equal(fedreci_groups_members(ids, gof, 10, 0, NULL, 0), 5);
}

static fedreci_secagg_params sum_params(uint32_t d, double clip, double scale)
{
    fedreci_secagg_params p;
    memset(&p, 0, sizeof p);
    p.d = d;
    p.clip = clip;
    p.scale = scale;
    p.max_weight = 1;
    return p;
}

/* The ring word of an int32 value (two's complement). */
static uint32_t ring(int64_t v)
{
    return (uint32_t)(uint64_t)v;
}

static void test_master_sum_past_32_bits(void **state)
{
    (void)state;
    /* groups of 4 clients with ceil(clip * scale) = 2^29 - 1: a group sum
       reaches 4 * (2^29 - 1) = 2^31 - 4, the most one instance can hold;
       three such groups add to 3 * (2^31 - 4), which no 32-bit word holds */
    const int64_t q = (1 << 29) - 1;
    fedreci_secagg_params p = sum_params(4, 1.0, (double)q);
    fedreci_groups_round *gr;
    assert_int_equal(fedreci_groups_round_create(&gr, &p, 3, 3, 4), FEDREC_OK);
    uint32_t s[4];
    for (uint32_t g = 0; g < 3; g++) {
        s[0] = ring(4 * q);                 /* every member at +clip */
        s[1] = ring(-4 * q);                /* every member at -clip */
        s[2] = ring((int64_t)g * 1000 - 7); /* small, of both signs */
        s[3] = 4;                           /* weight: 4 survivors */
        assert_int_equal(fedreci_groups_round_decide(gr, 0), FEDRECI_GROUPS_WAIT);
        assert_int_equal(fedreci_groups_round_add(gr, g, s, 4, 4), FEDREC_OK);
    }
    const int64_t *acc = fedreci_groups_round_sum(gr);
    assert_true(acc[0] == 3 * 4 * q);
    assert_true(acc[0] == 6442450932LL); /* = 3 * (2^31 - 4) */
    assert_true(acc[1] == -3 * 4 * q);
    assert_true(acc[2] == 0 + 1000 + 2000 - 21);
    assert_true(acc[3] == 12);
    uint32_t done, failed;
    uint64_t surv, weight;
    fedreci_groups_round_counts(gr, &done, &failed, &surv, &weight);
    assert_int_equal(done, 3);
    assert_int_equal(failed, 0);
    assert_int_equal(surv, 12);
    assert_int_equal(weight, 12);
    assert_int_equal(fedreci_groups_round_decide(gr, 0), FEDRECI_GROUPS_COMMIT);
    float out[3];
    fedreci_groups_round_dequantize(gr, out);
    assert_true(out[0] == (float)(6442450932.0 / (double)q)); /* 12.0000000x */
    assert_true(out[0] > 11.99f && out[0] < 12.01f);
    assert_true(out[1] == -out[0]);
    fedreci_groups_round_destroy(gr);
}

static void test_failed_group_dropped_whole(void **state)
{
    (void)state;
    fedreci_secagg_params p = sum_params(3, 2.0, 100.0); /* each |q| <= 200 */
    fedreci_groups_round *gr;
    assert_int_equal(fedreci_groups_round_create(&gr, &p, 4, 2, 10), FEDREC_OK);
    uint32_t a[3] = {ring(150), ring(-30), 3};
    uint32_t b[3] = {ring(-400), ring(5), 2};
    assert_int_equal(fedreci_groups_round_add(gr, 0, a, 3, 3), FEDREC_OK);
    /* group 1's aggregator dies: the group is dropped */
    assert_int_equal(fedreci_groups_round_fail(gr, 1), FEDRECI_GROUP_FAILED);
    /* its late result is refused and changes nothing */
    assert_int_equal(fedreci_groups_round_add(gr, 1, b, 3, 2), FEDREC_ERR_DUPLICATE);
    /* group 2 sends a sum no 2 clipped inputs can make (|-401| > 2 * 200):
       refused whole, marked failed, nothing added */
    uint32_t bad[3] = {ring(-401), ring(5), 2};
    assert_int_equal(fedreci_groups_round_add(gr, 2, bad, 3, 2), FEDREC_ERR_ABORTED);
    assert_int_equal(fedreci_groups_round_state(gr, 2), FEDRECI_GROUP_FAILED);
    /* a forged weight is refused the same way */
    uint32_t forged[3] = {ring(1), ring(1), 5};
    assert_int_equal(fedreci_groups_round_add(gr, 3, forged, 3, 2), FEDREC_ERR_ABORTED);
    const int64_t *acc = fedreci_groups_round_sum(gr);
    assert_true(acc[0] == 150 && acc[1] == -30 && acc[2] == 3);
    /* one group in, none pending, two needed: abort */
    assert_int_equal(fedreci_groups_round_decide(gr, 0), FEDRECI_GROUPS_ABORT);
    /* a DONE group stays done when its aggregator dies afterwards */
    assert_int_equal(fedreci_groups_round_fail(gr, 0), FEDRECI_GROUP_DONE);
    /* a duplicate of a counted group changes nothing */
    assert_int_equal(fedreci_groups_round_add(gr, 0, a, 3, 3), FEDREC_ERR_DUPLICATE);
    assert_true(acc[0] == 150);
    /* bad arguments */
    assert_int_equal(fedreci_groups_round_add(gr, 4, a, 3, 3), FEDREC_ERR_INVALID);
    assert_int_equal(fedreci_groups_round_add(gr, 0, a, 2, 3), FEDREC_ERR_INVALID);
    fedreci_groups_round_destroy(gr);

    /* 3 groups, 2 needed: with one in and one failed, wait for the third;
       at the deadline (final) commit is impossible, with two in it commits
       from exactly their sum */
    assert_int_equal(fedreci_groups_round_create(&gr, &p, 3, 2, 10), FEDREC_OK);
    assert_int_equal(fedreci_groups_round_add(gr, 0, a, 3, 3), FEDREC_OK);
    fedreci_groups_round_fail(gr, 1);
    assert_int_equal(fedreci_groups_round_decide(gr, 0), FEDRECI_GROUPS_WAIT);
    assert_int_equal(fedreci_groups_round_decide(gr, 1), FEDRECI_GROUPS_ABORT);
    uint32_t c[3] = {ring(-100), ring(40), 1};
    assert_int_equal(fedreci_groups_round_add(gr, 2, c, 3, 1), FEDREC_OK);
    assert_int_equal(fedreci_groups_round_decide(gr, 0), FEDRECI_GROUPS_COMMIT);
    acc = fedreci_groups_round_sum(gr);
    assert_true(acc[0] == 50 && acc[1] == 10 && acc[2] == 4);
    fedreci_groups_round_destroy(gr);
}

static void test_round_create_refusals(void **state)
{
    (void)state;
    fedreci_groups_round *gr = (fedreci_groups_round *)&gr;
    fedreci_secagg_params p = sum_params(3, 16.0, 1024.0);
    assert_int_equal(fedreci_groups_round_create(&gr, &p, 0, 1, 10), FEDREC_ERR_INVALID);
    assert_null(gr);
    assert_int_equal(fedreci_groups_round_create(&gr, &p, 3, 0, 10), FEDREC_ERR_INVALID);
    assert_int_equal(fedreci_groups_round_create(&gr, &p, 3, 4, 10), FEDREC_ERR_INVALID);
    /* per-group budget: 131072 * 16 * 1024 = 2^31 */
    assert_int_equal(fedreci_groups_round_create(&gr, &p, 3, 2, 131072), FEDREC_ERR_INVALID);
    assert_int_equal(fedreci_groups_round_create(&gr, &p, 3, 2, 131071), FEDREC_OK);
    fedreci_groups_round_destroy(gr);
    p.scale = NAN;
    assert_int_equal(fedreci_groups_round_create(&gr, &p, 3, 2, 10), FEDREC_ERR_INVALID);
    p = sum_params(1, 16.0, 1024.0);
    assert_int_equal(fedreci_groups_round_create(&gr, &p, 3, 2, 10), FEDREC_ERR_INVALID);
}

/* ---- end to end through the SecAgg+ state machines -------------------------- */

/* One SecAgg+ round of the n clients ids[] (sorted) with params p; clients
 * in `drop` (by index, may be NULL) drop after sharing keys. x: the inputs
 * of the whole cohort, row ix[i] for member i. Writes the unmasked sum. */
static void run_secagg(const fedreci_secagg_params *p, const uint64_t *ids, uint32_t n,
                       const uint32_t *ix, uint8_t (*pks)[32], uint8_t (*sks)[64], const float *x,
                       const int *drop, uint32_t *sum)
{
    fedreci_secagg_client **c = calloc(n, sizeof *c);
    uint8_t(*mpk)[32] = calloc(n, sizeof *mpk);
    assert_non_null(c);
    assert_non_null(mpk);
    for (uint32_t i = 0; i < n; i++)
        memcpy(mpk[i], pks[ix[i]], 32);
    fedreci_secagg_server *s;
    assert_int_equal(fedreci_secagg_server_create(&s, p, ids, (const uint8_t(*)[32])mpk),
                     FEDREC_OK);
    for (uint32_t i = 0; i < n; i++) {
        /* the rounding seed belongs to the client, not to its group: the
           same client quantizes the same way in either arrangement */
        uint8_t seed[32] = {(uint8_t)ix[i], (uint8_t)(ix[i] >> 8), 1};
        assert_int_equal(fedreci_secagg_client_create(&c[i], p, ids[i], sks[ix[i]], seed),
                         FEDREC_OK);
        fedreci_secagg_advert a;
        assert_int_equal(fedreci_secagg_client_advertise(c[i], &a), FEDREC_OK);
        assert_int_equal(fedreci_secagg_server_add_advert(s, &a), FEDREC_OK);
    }
    const fedreci_secagg_advert *ro;
    size_t m;
    assert_int_equal(fedreci_secagg_server_close_advertise(s, &ro, &m), FEDREC_OK);
    /* the graph seed step */
    uint64_t *rids = malloc(m * sizeof *rids);
    assert_non_null(rids);
    for (size_t j = 0; j < m; j++)
        rids[j] = ro[j].client_id;
    for (uint32_t i = 0; i < n; i++) {
        uint8_t contribution[32];
        assert_int_equal(fedreci_secagg_client_reveal(
                             c[i], rids, m, fedreci_secagg_server_seed_digest(s), contribution),
                         FEDREC_OK);
        assert_int_equal(fedreci_secagg_server_add_reveal(s, ids[i], contribution), FEDREC_OK);
    }
    free(rids);
    const uint8_t *contribs;
    assert_int_equal(fedreci_secagg_server_close_reveal(s, &contribs), FEDREC_OK);
    for (uint32_t i = 0; i < n; i++) {
        const fedreci_secagg_ciphertext *cts;
        size_t nc;
        assert_int_equal(fedreci_secagg_client_share_keys(c[i], ro, m, contribs, &cts, &nc),
                         FEDREC_OK);
        assert_int_equal(fedreci_secagg_server_add_shares(s, ids[i], cts, nc), FEDREC_OK);
    }
    assert_int_equal(fedreci_secagg_server_close_share_keys(s), FEDREC_OK);
    for (uint32_t i = 0; i < n; i++) {
        if (drop && drop[ix[i]])
            continue;
        const fedreci_secagg_ciphertext *in;
        size_t nin;
        const uint32_t *y;
        assert_int_equal(fedreci_secagg_server_shares_for(s, ids[i], &in, &nin), FEDREC_OK);
        assert_int_equal(fedreci_secagg_client_masked_input(
                             c[i], in, nin, x + (size_t)ix[i] * (p->d - 1), 1, &y, NULL),
                         FEDREC_OK);
        assert_int_equal(fedreci_secagg_server_add_masked_input(s, ids[i], y, p->d), FEDREC_OK);
    }
    const uint64_t *sv, *dr;
    size_t ns, nd;
    assert_int_equal(fedreci_secagg_server_close_masked_input(s, &sv, &ns, &dr, &nd), FEDREC_OK);
    for (uint32_t i = 0; i < n; i++) {
        if (drop && drop[ix[i]])
            continue;
        const fedreci_secagg_tag *tg;
        size_t nt;
        assert_int_equal(fedreci_secagg_client_consistency(c[i], sv, ns, dr, nd, &tg, &nt),
                         FEDREC_OK);
        assert_int_equal(fedreci_secagg_server_add_consistency(
                             s, ids[i], tg, nt, fedreci_secagg_client_endorsement(c[i])),
                         FEDREC_OK);
    }
    assert_int_equal(fedreci_secagg_server_close_consistency(s), FEDREC_OK);
    for (uint32_t i = 0; i < n; i++) {
        if (drop && drop[ix[i]])
            continue;
        const fedreci_secagg_reveal *rv;
        size_t nrv;
        const fedreci_secagg_tag *tg;
        size_t nt;
        assert_int_equal(fedreci_secagg_server_tags_for(s, ids[i], &tg, &nt), FEDREC_OK);
        assert_int_equal(fedreci_secagg_client_unmask(c[i], tg, nt, &rv, &nrv), FEDREC_OK);
        assert_int_equal(fedreci_secagg_server_add_unmask(s, ids[i], rv, nrv), FEDREC_OK);
    }
    assert_int_equal(fedreci_secagg_server_finish(s, sum, p->d), FEDREC_OK);
    for (uint32_t i = 0; i < n; i++)
        fedreci_secagg_client_destroy(c[i]);
    fedreci_secagg_server_destroy(s);
    free(c);
    free(mpk);
}

static void test_groups_equal_one_instance(void **state)
{
    (void)state;
    enum { N = 36, G = 3, DX = 40, D = DX + 1 };
    uint64_t ids[N];
    uint8_t pks[N][32], sks[N][64];
    float x[N * DX];
    int drop[N] = {0};
    fedreci_rng r = fedreci_rng_seeded(11);
    for (uint32_t i = 0; i < N; i++) {
        crypto_sign_keypair(pks[i], sks[i]);
        ids[i] = 0;
    }
    make_ids(ids, N, 8);
    for (uint32_t i = 0; i < N * DX; i++)
        x[i] = (float)(fedreci_rng_unit(&r) * 40 - 20); /* some beyond the clip */
    drop[5] = drop[17] = drop[30] = 1;                  /* dropouts at stage 2 */
    /* a scale at which one instance over the whole cohort fits its budget
       too (the groups alone could use 3 times as much) */
    double clip = 16.0, scale = fedreci_groups_scale(N, clip);
    fedreci_secagg_params p1;
    memset(&p1, 0, sizeof p1);
    p1.round_id = 4;
    p1.n = N;
    p1.k = 8; /* t = 5 holders remain for any secret after 3 dropouts */
    p1.t = 5;
    p1.d = D;
    p1.clip = clip;
    p1.scale = scale;
    p1.max_weight = 1;
    p1.graph_seed[0] = 1;
    assert_int_equal(fedreci_secagg_params_check(&p1), FEDREC_OK);
    uint32_t ix[N], one[D];
    for (uint32_t i = 0; i < N; i++)
        ix[i] = i;
    run_secagg(&p1, ids, N, ix, pks, sks, x, drop, one);
    /* G groups, each its own instance, added by the master */
    uint32_t gof[N];
    assert_int_equal(fedreci_groups_assign(ids, N, G, 8, 99, 4, gof), FEDREC_OK);
    fedreci_groups_round *gr;
    assert_int_equal(fedreci_groups_round_create(&gr, &p1, G, G, N / G), FEDREC_OK);
    for (uint32_t g = 0; g < G; g++) {
        uint64_t gids[N];
        uint32_t gix[N], ng = 0, surv = 0;
        for (uint32_t i = 0; i < N; i++)
            if (gof[i] == g) {
                gids[ng] = ids[i];
                gix[ng++] = i;
                surv += !drop[i];
            }
        fedreci_secagg_params pg = p1;
        pg.n = ng;
        pg.graph_seed[1] = (uint8_t)g;
        assert_int_equal(fedreci_secagg_params_check(&pg), FEDREC_OK);
        uint32_t gs[D];
        run_secagg(&pg, gids, ng, gix, pks, sks, x, drop, gs);
        assert_int_equal(fedreci_groups_round_add(gr, g, gs, D, surv), FEDREC_OK);
    }
    assert_int_equal(fedreci_groups_round_decide(gr, 0), FEDRECI_GROUPS_COMMIT);
    const int64_t *acc = fedreci_groups_round_sum(gr);
    for (uint32_t i = 0; i < DX; i++)
        assert_true(acc[i] == (int64_t)(int32_t)one[i]);
    assert_true(acc[DX] == N - 3);
    assert_int_equal(one[DX], N - 3);
    float fo[DX], fg[DX];
    uint32_t w1;
    fedreci_secagg_dequantize(&p1, one, fo, &w1);
    fedreci_groups_round_dequantize(gr, fg);
    assert_memory_equal(fo, fg, sizeof fo); /* bit for bit */
    fedreci_groups_round_destroy(gr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_count),
        cmocka_unit_test(test_assign_partition),
        cmocka_unit_test(test_assign_mixes_evenly),
        cmocka_unit_test(test_assign_refusals),
        cmocka_unit_test(test_master_sum_past_32_bits),
        cmocka_unit_test(test_failed_group_dropped_whole),
        cmocka_unit_test(test_round_create_refusals),
        cmocka_unit_test(test_groups_equal_one_instance),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
