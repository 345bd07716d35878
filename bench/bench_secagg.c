/*
 * fedrec-bench secagg: the cost of SecAgg+ (core/secagg) through the real
 * protocol path (the client and server state machines, no transport).
 *
 *   fedrec-bench secagg [--json] [--quick] [--full]
 *                       [--only client|server|classic|dp|checks|deviating|complaints]
 *                       [--dropout F]
 *
 * 1. Client masking (d = 130,241 words): the time of one client's
 *    masked_input call (decrypting its k share bundles, quantizing with
 *    stochastic rounding, adding k pairwise masks and the self mask) against
 *    the raw ChaCha20 keystream (crypto_stream_chacha20_ietf) of the same
 *    (k + 1) * 4 * d bytes, measured in the same run. Ratio = raw / masking
 *    (1.0 = masking at keystream speed). Median of 5 clients.
 * 2. Server unmasking (d = 130,241): server_finish (rebuild secrets, remove
 *    masks) plus the add_unmask calls, for n = 100, 500, 1000, with SecAgg+
 *    neighbours (k = 16, 20, 24: about 2 log2 n plus a margin, t = k/2 + 1)
 *    and the complete graph (k = n - 1, t = floor(n/2) + 1), at 0%, 10% and
 *    30% of the clients dropping before their masked input. Rounds are run for
 *    real (every client), and the sum is checked exact. Complete-graph cells
 *    at n >= 500 would need every client to share with and mask against
 *    every other (minutes of client simulation per cell): those cells are a
 *    MODEL, T = masks * d * t_word + key agreements * t_ka + secrets * t_rec,
 *    with t_word, t_ka and t_rec measured in this run, and the table shows
 *    the model next to the measurement for the cells that were run.
 *    --full runs those cells for real as well (about half an hour on one
 *    core, almost all of it client work; the server time is what is printed).
 *    Dropout sets: uniform random sets make SecAgg+ rounds with small k abort
 *    (some client keeps fewer than t surviving neighbours); the abort rate of
 *    uniform dropout is estimated (200 draws) and reported, and the timed
 *    round uses a random dropout set drawn among those that complete.
 * 3. Bonawitz et al. 2017 setting: 500 clients, 100,000 entries, complete
 *    graph, 30% dropout, run for real: per-client time (advertise + share
 *    keys + masked input + unmask) and server time, next to the published
 *    0.85 s and 143 s (Java, one core).
 * 4. Differential privacy on the client (core/dp), d = 117,121 inputs (the
 *    bundled log's 3,660 items x 32 factors + 1): the randomized Hadamard
 *    rotation (pad to 131,072, sign flips, fast Walsh-Hadamard transform),
 *    one try of conditional rounding, and Skellam noise (two Poisson
 *    variates per coordinate) at per-client variances from 1 (inversion
 *    sampler) to 1e6 (PTRS), against the same client's masking at k = 16
 *    (the k + 1 masks and the quantization, timed alone as in section 1)
 *    in the same run. Ratio = DP work / masking. Best of 3.
 *
 * 4. The checks against hostile clients (issue 13) at n = 500, k = 16,
 *    t = 9, d = 117,121: one real round (every client) for the round's
 *    compute, and each new check timed on its own in the same run: the
 *    Ed25519 signature of the check-in and the model request (BLAKE2b-256 of
 *    the message, one sign; the coordinator: one verify), the MAC of every
 *    later request (protocol version 7: advert, share keys, masked input,
 *    unmask; and, for comparison, the same round with the advert, share
 *    keys and unmask signed, as in protocol 6), the hash commitments to every share
 *    (made and checked by the clients, checked at unmask by the server, b and
 *    s^SK checked after reconstruction: they run inside the state machines,
 *    so the measured round includes them) and the range check of the sum.
 *    Prints each check's share of the round ("old path" = the round minus
 *    the checks) and the Feldman-commitment alternative costed from one
 *    measured ristretto255 scalar multiplication. --dropout F drops that
 *    fraction of the clients before their masked input in that round
 *    (default 0; at most 0.5); --json also prints the round's median client,
 *    its server time and n x median + server ("machines_s"), the figures
 *    bench/flower_compare.sh sets beside Flower's SecAgg+.
 *
 * 6. The protection against a deviating coordinator (issue 14) at n = 500,
 *    k = 16, t = 9, d = 117,121: one real round (every client, the sum
 *    exact) with the graph seed step and the consistency check inside the
 *    state machines, and each piece they added timed alone in the same run
 *    (CPU time of this thread): the seed commitments a client checks (one
 *    BLAKE2b per roster member, the digest and the seed), the consistency
 *    tags (a keyed BLAKE2b each, made and checked), the two extra signed
 *    requests per client (the coordinator verifies them), the coordinator's
 *    checks of the contributions. "Old path" = the round minus those pieces
 *    plus the six signed/MACed requests of issue 13. Also the bytes each
 *    piece adds per client and round, from real encoded messages (random
 *    64-bit ids), next to the same messages without them.
 *
 * 7. The complaint step (issue 13, bad share bundles) at n = 500, k = 16,
 *    t = 9, d = 117,121: two real rounds in the same run, one on the old
 *    path and one with the complaint step (nobody complaining), the pieces
 *    the step adds timed (resolve per client, the coordinator's state
 *    machine) and the two new messages encoded, MACed and decoded alone;
 *    the cost of one complaint when a bundle is bad; and the ristretto255
 *    key agreement a Chaum-Pedersen design would need beside X25519's.
 *
 * --quick: smaller runs (k in {8, 16}; n = 100 only; classic setting at
 * 100 clients) for CI smoke tests. --only runs one of the sections
 * (e.g. --only client to repeat the masking table quickly). Never asserts;
 * prints tables.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "core/dp/encode.h"
#include "core/dp/noise.h"
#include "core/rng.h"
#include "bench_args.h"
#include "core/secagg/graph.h"
#include "core/secagg/kdf.h"
#include "core/secagg/prg.h"
#include "core/secagg/quantize.h"
#include "core/secagg/secagg.h"
#include "core/secagg/shamir.h"
#include "proto/wire.h"

#define D_BENCH 130241u

static int json;
static int full; /* --full: run the complete-graph cells at n >= 500 too */

/* 1: now() reads this thread's CPU time instead of the wall clock (the
 * checks section: on a shared machine, CPU time is what a ratio of two
 * computations measured minutes apart can be compared in). */
static int cpu_clock;

/* --dropout F: the fraction of clients dropping before their masked input in
 * the checks section's round (default 0). */
static double checks_dropout;

static double now(void)
{
    struct timespec ts;
    clock_gettime(cpu_clock ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static fedreci_rng rs = {0x243f6a8885a308d3ull};
static uint64_t rnd(void)
{
    return fedreci_rng_u64(&rs);
}

static fedreci_secagg_params params(uint32_t n, uint32_t k, uint32_t t, uint32_t d)
{
    fedreci_secagg_params p;
    memset(&p, 0, sizeof p);
    p.round_id = 1;
    p.n = n;
    p.k = k;
    p.t = t;
    p.d = d;
    p.clip = 16.0;
    p.scale = 1u << 16;
    p.max_weight = 1;
    randombytes_buf(p.graph_seed, sizeof p.graph_seed);
    return p;
}

/* ---- one round --------------------------------------------------------------- */

typedef struct round_result {
    int ok; /* completed with the exact sum */
    uint32_t survivors, dropped;
    size_t masks, kas;   /* masks removed by the server, key agreements */
    double client_mask;  /* median masked_input time (s) */
    double client_total; /* median advertise + share_keys + masked_input + unmask (s) */
    double server;       /* add_unmask (all) + finish (s) */
    double abort_rate;   /* of uniform dropout at this fraction */
    /* with bench_cpl: the complaint step (nobody complains) */
    double cpl_client; /* median resolve time (s) */
    double cpl_server; /* add_complaints (all) + close_complaints + openings_for (all) (s) */
} round_result;

/* run_round with the complaint step (receive, complaints, resolve, then
 * masked_input on the kept bundles) instead of masked_input on the relay. */
static int bench_cpl;

/* Marks drop[u] = 1 for about frac * m members so that every member keeps at
 * least t surviving neighbours; returns the number dropped. Also estimates
 * how often a uniform random set of that size would abort. */
static uint32_t choose_dropouts(const fedreci_graph *g, uint32_t t, double frac, uint8_t *drop,
                                double *abort_rate)
{
    uint32_t m = g->m, target = (uint32_t)lround(frac * m);
    uint32_t *nb = malloc((size_t)g->degree * sizeof *nb);
    uint32_t *order = malloc((size_t)m * sizeof *order);
    uint32_t *alive = malloc((size_t)m * sizeof *alive);
    int aborts = 0, draws = target ? 200 : 0;
    for (int dr = 0; dr < draws; dr++) {
        for (uint32_t i = 0; i < m; i++)
            order[i] = i;
        for (uint32_t i = m - 1; i > 0; i--) {
            uint32_t j = (uint32_t)(rnd() % (i + 1)), tmp = order[i];
            order[i] = order[j];
            order[j] = tmp;
        }
        memset(drop, 0, m);
        for (uint32_t i = 0; i < target; i++)
            drop[order[i]] = 1;
        int bad = 0;
        for (uint32_t u = 0; u < m && !bad; u++) {
            uint32_t c = 0;
            fedreci_graph_neighbors(g, u, nb);
            for (uint32_t j = 0; j < g->degree; j++)
                c += !drop[nb[j]];
            bad = c < t;
        }
        aborts += bad;
    }
    *abort_rate = draws ? (double)aborts / draws : 0.0;
    /* Constrained draw: drop members in random order while every member
     * keeps t surviving neighbours. */
    for (uint32_t i = 0; i < m; i++) {
        order[i] = i;
        fedreci_graph_neighbors(g, i, nb);
        alive[i] = g->degree;
    }
    for (uint32_t i = m - 1; i > 0; i--) {
        uint32_t j = (uint32_t)(rnd() % (i + 1)), tmp = order[i];
        order[i] = order[j];
        order[j] = tmp;
    }
    memset(drop, 0, m);
    uint32_t dropped = 0;
    for (uint32_t i = 0; i < m && dropped < target; i++) {
        uint32_t u = order[i];
        fedreci_graph_neighbors(g, u, nb);
        int okay = 1;
        for (uint32_t j = 0; j < g->degree && okay; j++)
            okay = alive[nb[j]] > t;
        if (!okay)
            continue;
        drop[u] = 1;
        dropped++;
        for (uint32_t j = 0; j < g->degree; j++)
            alive[nb[j]]--;
    }
    free(nb);
    free(order);
    free(alive);
    return dropped;
}

static int run_round(const fedreci_secagg_params *p, double frac, int timed_clients,
                     round_result *res)
{
    uint32_t n = p->n, d = p->d;
    memset(res, 0, sizeof *res);
    uint64_t *ids = malloc(n * sizeof *ids);
    uint8_t(*pks)[32] = malloc(n * sizeof *pks);
    uint8_t(*sks)[64] = malloc(n * sizeof *sks);
    fedreci_secagg_client **c = calloc(n, sizeof *c);
    float *x = malloc((size_t)(d - 1) * sizeof *x);
    uint32_t *expect = calloc(d, sizeof *expect), *sum = malloc(d * sizeof *sum);
    double *ctime = calloc(n, sizeof *ctime), *mtime = calloc(n, sizeof *mtime);
    uint8_t *drop = calloc(n, 1);
    fedreci_secagg_server *s = NULL;
    fedreci_graph g;
    memset(&g, 0, sizeof g);
    int rc = -1;
    for (uint32_t i = 0; i < n; i++) {
        ids[i] = 1000 + i; /* sorted: roster member i is client i */
        crypto_sign_keypair(pks[i], sks[i]);
        if (fedreci_secagg_client_create(&c[i], p, ids[i], sks[i], NULL))
            goto out;
    }
    for (uint32_t j = 0; j + 1 < d; j++)
        x[j] = (float)((double)(rnd() % 2001) / 1000.0 - 1.0);
    if (fedreci_secagg_server_create(&s, p, ids, (const uint8_t(*)[32])pks))
        goto out;
    for (uint32_t i = 0; i < n; i++) {
        fedreci_secagg_advert a;
        double t0 = now();
        if (fedreci_secagg_client_advertise(c[i], &a))
            goto out;
        ctime[i] += now() - t0;
        if (fedreci_secagg_server_add_advert(s, &a))
            goto out;
    }
    const fedreci_secagg_advert *roster;
    size_t m;
    if (fedreci_secagg_server_close_advertise(s, &roster, &m))
        goto out;
    const uint8_t *digest = fedreci_secagg_server_seed_digest(s), *contribs = NULL;
    for (uint32_t i = 0; i < n; i++) {
        uint8_t contribution[32];
        double t0 = now();
        if (fedreci_secagg_client_reveal(c[i], ids, m, digest, contribution))
            goto out;
        ctime[i] += now() - t0;
        if (fedreci_secagg_server_add_reveal(s, ids[i], contribution))
            goto out;
    }
    if (fedreci_secagg_server_close_reveal(s, &contribs))
        goto out;
    for (uint32_t i = 0; i < n; i++) {
        const fedreci_secagg_ciphertext *cts;
        size_t n_cts;
        double t0 = now();
        if (fedreci_secagg_client_share_keys(c[i], roster, m, contribs, &cts, &n_cts))
            goto out;
        ctime[i] += now() - t0;
        if (fedreci_secagg_server_add_shares(s, ids[i], cts, n_cts))
            goto out;
    }
    if (fedreci_secagg_server_close_share_keys(s))
        goto out;
    {
        fedreci_secagg_params pg = *p; /* the graph of the derived seed */
        memcpy(pg.graph_seed, fedreci_secagg_server_graph_seed(s), sizeof pg.graph_seed);
        if (fedreci_graph_build(&g, &pg, n))
            goto out;
    }
    res->dropped = choose_dropouts(&g, p->t, frac, drop, &res->abort_rate);
    int timed = 0;
    double *rtime = calloc(n, sizeof *rtime), *stime = calloc(n, sizeof *stime);
    if (!rtime || !stime) {
        free(rtime);
        free(stime);
        goto out;
    }
    if (bench_cpl) {
        /* the complaint step: every member checks and keeps its bundles and
           sends its (empty) complaints; the coordinator closes the step and
           relays the outcome, which each member applies */
        for (uint32_t i = 0; i < n; i++) {
            const fedreci_secagg_ciphertext *in;
            const fedreci_secagg_complaint *cp;
            size_t n_in, ncp;
            if (drop[i])
                continue;
            if (fedreci_secagg_server_shares_for(s, ids[i], &in, &n_in))
                goto cpl_out;
            double t0 = now();
            if (fedreci_secagg_client_receive(c[i], in, n_in, &cp, &ncp))
                goto cpl_out;
            double t1 = now();
            stime[i] = t1 - t0; /* part of the masking below */
            if (fedreci_secagg_server_add_complaints(s, ids[i], cp, ncp))
                goto cpl_out;
            res->cpl_server += now() - t1;
        }
        const uint64_t *ex;
        size_t nex;
        double t0 = now();
        if (fedreci_secagg_server_close_complaints(s, &ex, &nex))
            goto cpl_out;
        res->cpl_server += now() - t0;
        uint32_t nr = 0;
        for (uint32_t i = 0; i < n; i++) {
            const fedreci_secagg_opening *op;
            size_t nop;
            if (drop[i])
                continue;
            t0 = now();
            if (fedreci_secagg_server_openings_for(s, ids[i], &op, &nop))
                goto cpl_out;
            double t1 = now();
            res->cpl_server += t1 - t0;
            if (fedreci_secagg_client_resolve(c[i], ex, nex, op, nop))
                goto cpl_out;
            rtime[nr] = now() - t1;
            ctime[i] += rtime[nr++];
        }
        qsort(rtime, nr, sizeof *rtime, cmp_double);
        res->cpl_client = nr ? rtime[nr / 2] : 0;
    }
    if (0) {
    cpl_out:
        free(rtime);
        free(stime);
        goto out;
    }
    for (uint32_t i = 0; i < n; i++) {
        if (drop[i])
            continue;
        const fedreci_secagg_ciphertext *in;
        size_t n_in;
        const uint32_t *y;
        if (fedreci_secagg_server_shares_for(s, ids[i], &in, &n_in))
            goto cpl_out;
        double t0 = now();
        if (fedreci_secagg_client_masked_input(c[i], bench_cpl ? NULL : in, bench_cpl ? 0 : n_in, x,
                                               1, &y, NULL))
            goto cpl_out;
        mtime[timed] = now() - t0 + stime[i];
        ctime[i] += mtime[timed];
        timed++;
        if (fedreci_secagg_server_add_masked_input(s, ids[i], y, d))
            goto cpl_out;
        const uint32_t *q = fedreci_secagg_client_quantized_input(c[i]);
        for (uint32_t j = 0; j < d; j++)
            expect[j] += q[j];
    }
    (void)timed_clients;
    free(rtime);
    free(stime);
    const uint64_t *sv, *dv;
    size_t ns, nd;
    if (fedreci_secagg_server_close_masked_input(s, &sv, &ns, &dv, &nd))
        goto out;
    res->survivors = (uint32_t)ns;
    double server = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (drop[i])
            continue;
        const fedreci_secagg_tag *tg;
        size_t nt;
        double t0 = now();
        if (fedreci_secagg_client_consistency(c[i], sv, ns, dv, nd, &tg, &nt))
            goto out;
        double t1 = now();
        ctime[i] += t1 - t0;
        if (fedreci_secagg_server_add_consistency(s, ids[i], tg, nt,
                                                  fedreci_secagg_client_endorsement(c[i])))
            goto out;
        server += now() - t1;
    }
    {
        double t0 = now();
        if (fedreci_secagg_server_close_consistency(s))
            goto out;
        server += now() - t0;
    }
    for (uint32_t i = 0; i < n; i++) {
        if (drop[i])
            continue;
        const fedreci_secagg_reveal *r;
        size_t nr;
        const fedreci_secagg_tag *tg;
        size_t nt;
        double t0 = now();
        if (fedreci_secagg_server_tags_for(s, ids[i], &tg, &nt))
            goto out;
        server += now() - t0;
        t0 = now();
        if (fedreci_secagg_client_unmask(c[i], tg, nt, &r, &nr))
            goto out;
        double t1 = now();
        ctime[i] += t1 - t0;
        if (fedreci_secagg_server_add_unmask(s, ids[i], r, nr))
            goto out;
        server += now() - t1;
    }
    double t0 = now();
    if (fedreci_secagg_server_finish(s, sum, d))
        goto out;
    res->server = server + (now() - t0);
    res->ok = memcmp(sum, expect, (size_t)d * sizeof *sum) == 0;
    /* masks and key agreements the server did */
    res->masks = ns;
    for (uint32_t u = 0; u < n; u++) {
        if (!drop[u])
            continue;
        uint32_t *nb = malloc((size_t)g.degree * sizeof *nb);
        fedreci_graph_neighbors(&g, u, nb);
        for (uint32_t j = 0; j < g.degree; j++)
            res->masks += !drop[nb[j]], res->kas += !drop[nb[j]];
        free(nb);
    }
    qsort(mtime, (size_t)timed, sizeof *mtime, cmp_double);
    res->client_mask = mtime[timed / 2];
    double *ct = malloc(n * sizeof *ct);
    uint32_t nct = 0;
    for (uint32_t i = 0; i < n; i++)
        if (!drop[i])
            ct[nct++] = ctime[i];
    qsort(ct, nct, sizeof *ct, cmp_double);
    res->client_total = ct[nct / 2];
    free(ct);
    rc = 0;
out:
    if (rc)
        fprintf(stderr, "bench secagg: round failed: %s\n", fedrec_errmsg());
    for (uint32_t i = 0; i < n; i++)
        fedreci_secagg_client_destroy(c[i]);
    fedreci_secagg_server_destroy(s);
    fedreci_graph_free(&g);
    free(ids);
    free(pks);
    free(sks);
    free(c);
    free(x);
    free(expect);
    free(sum);
    free(ctime);
    free(mtime);
    free(drop);
    return rc;
}

/* ---- 1. client masking vs raw ChaCha20 ------------------------------------------ */

static double raw_chacha(size_t streams, size_t bytes)
{
    uint8_t *buf = malloc(bytes);
    uint8_t key[32], nonce[12] = {0};
    randombytes_buf(key, sizeof key);
    double best = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = now();
        for (size_t j = 0; j < streams; j++) {
            key[0] = (uint8_t)j;
            crypto_stream_chacha20_ietf(buf, bytes, nonce, key);
        }
        double t = now() - t0;
        if (t < best)
            best = t;
    }
    volatile uint8_t sink = buf[bytes / 2];
    (void)sink;
    free(buf);
    return best;
}

/* The two parts of masked_input timed alone on the same data: the k + 1
 * masks added into the output (prg.h) and the quantization (which draws its
 * own rounding keystream: 16 bits, 2(d - 1) bytes). Best of 3. masked_input
 * does both slice by slice in one sweep (client.c). */
static void parts(uint32_t k, double *masks_s, double *quant_s)
{
    fedreci_secagg_params p = params(k + 1, k, k / 2 + 1, D_BENCH);
    uint8_t *keys = malloc((size_t)(k + 1) * 32);
    int8_t *signs = malloc(k + 1);
    uint32_t *out = calloc(D_BENCH, sizeof *out);
    float *x = malloc(D_BENCH * sizeof *x);
    randombytes_buf(keys, (size_t)(k + 1) * 32);
    for (uint32_t i = 0; i <= k; i++)
        signs[i] = (i & 1) ? -1 : 1;
    for (uint32_t i = 0; i < D_BENCH; i++)
        x[i] = (float)((double)(rnd() % 2001) / 1000.0 - 1.0);
    uint8_t nonce[12];
    fedreci_prg_nonce(nonce, 1, FEDRECI_PRG_PAIR_MASK);
    *masks_s = *quant_s = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = now();
        fedreci_prg_add(keys, signs, k + 1, nonce, 0, out, D_BENCH);
        double t1 = now();
        if (fedreci_secagg_quantize(&p, x, 1, keys, out, NULL) != FEDREC_OK)
            break;
        double t2 = now();
        *masks_s = t1 - t0 < *masks_s ? t1 - t0 : *masks_s;
        *quant_s = t2 - t1 < *quant_s ? t2 - t1 : *quant_s;
    }
    free(keys);
    free(signs);
    free(out);
    free(x);
}

/* The fixed cryptographic work of one simulated SecAgg+ client-round in
 * the simulator's throughput setting (docs/scale.md: d = 117,121, k = 16,
 * groups of 500), each primitive timed alone in this thread's CPU time
 * (best of 3) times its count per client-round: the floor under the
 * client-rounds per CPU second that fedrec-sim --group-size prints. Counts:
 * the client's k pair masks and self mask and the server's self-mask
 * removal (d words each, added in place: prg.h); 2 X25519 key pairs
 * (advertise) and 2k agreements (share keys); k advert signatures checked
 * by the client and 1 by the server, 1 signed; m = 500 seed commitments
 * recomputed by each client (the roster's digest); the identity key the
 * simulator derives from (seed, shopper). Dropouts add k mask streams on
 * the server per client dropped after sharing its keys (not counted). */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void bench_floor(void)
{
    const uint32_t d = 117121, k = 16, m = 500;
    uint8_t keys[17 * 32], nonce[12], pk[32], sk[64], x_sk[32], x_pk[32], out[32], seed[32];
    int8_t signs[17];
    uint8_t msg[256] = {1};
    uint32_t *acc = calloc(d, sizeof *acc);
    if (!acc)
        return;
    randombytes_buf(keys, sizeof keys);
    randombytes_buf(seed, sizeof seed);
    for (int i = 0; i < 17; i++)
        signs[i] = (i & 1) ? -1 : 1;
    fedreci_prg_nonce(nonce, 1, FEDRECI_PRG_PAIR_MASK);
    crypto_sign_keypair(pk, sk);
    randombytes_buf(x_sk, sizeof x_sk);
    if (crypto_scalarmult_base(x_pk, x_sk) != 0) {
        free(acc);
        return;
    }
    uint8_t sig[64];
    crypto_sign_detached(sig, NULL, msg, sizeof msg, sk);
    double t[6];
    for (int i = 0; i < 6; i++)
        t[i] = 1e30;
    volatile int sink = 0;
    for (int rep = 0; rep < 3; rep++) {
        double c0 = cpu_now();
        fedreci_prg_add(keys, signs, k + 1, nonce, 0, acc, d);
        double c1 = cpu_now();
        for (int i = 0; i < 200; i++)
            sink += crypto_scalarmult(out, x_sk, x_pk);
        double c2 = cpu_now();
        for (int i = 0; i < 200; i++)
            sink += crypto_sign_verify_detached(sig, msg, sizeof msg, pk);
        double c3 = cpu_now();
        for (int i = 0; i < 200; i++)
            sink += crypto_sign_detached(sig, NULL, msg, sizeof msg, sk);
        double c4 = cpu_now();
        for (uint32_t i = 0; i < m; i++)
            fedreci_secagg_seed_commit(out, 1, i, seed);
        double c5 = cpu_now();
        for (int i = 0; i < 200; i++)
            sink += crypto_sign_seed_keypair(pk, sk, seed);
        double c6 = cpu_now();
        double one[6] = {(c1 - c0) / (k + 1), (c2 - c1) / 200, (c3 - c2) / 200,
                         (c4 - c3) / 200,     (c5 - c4) / m,   (c6 - c5) / 200};
        for (int i = 0; i < 6; i++)
            t[i] = one[i] < t[i] ? one[i] : t[i];
    }
    (void)sink;
    free(acc);
    const char *names[] = {"mask stream, d words added in place (ChaCha20-IETF)",
                           "X25519 (key pair or agreement)",
                           "Ed25519 signature check",
                           "Ed25519 signature",
                           "seed commitment (BLAKE2b)",
                           "identity key from a seed (simulator)"};
    const double counts[] = {(double)k + 2, 2.0 * k + 2, (double)k + 1, 1, m, 1};
    double all = 0;
    printf("\nThe fixed cryptography of one client-round at d = %u, k = %u, groups of %u "
           "(fedrec-sim --group-size), each primitive timed alone (CPU, best of 3):\n",
           d, k, m);
    printf("| primitive | us each | per client-round | ms per client-round |\n|---|---|---|---|\n");
    for (int i = 0; i < 6; i++) {
        printf("| %s | %.1f | %.0f | %.3f |\n", names[i], t[i] * 1e6, counts[i],
               t[i] * counts[i] * 1e3);
        all += t[i] * counts[i];
    }
    printf("| all (the floor: no quantization, client step, copies or dropouts) |  |  | %.3f "
           "ms = at most %.0f client-rounds per CPU second |\n",
           all * 1e3, 1.0 / all);
}

static void bench_client(int quick)
{
    uint32_t ks[] = {8, 16, 32, 64};
    size_t nk = quick ? 2 : 4;
    if (!json) {
        printf("\nClient masking, d = %u words (%.0f KB): one masked_input call (decrypt k share "
               "bundles, quantize, k pairwise masks + self mask) vs raw ChaCha20 keystream of "
               "(k + 1) * 4d bytes\n",
               D_BENCH, D_BENCH * 4 / 1000.0);
        printf("| k  | masked_input (ms) | raw ChaCha20 (ms) | ratio raw/masked_input | "
               "k+1 masks alone (ms) | ratio raw/masks | quantize alone (ms) | raw GB/s |\n");
        printf("|----|-------------------|-------------------|------------------------|------------"
               "----------|-----------------|---------------------|----------|\n");
    }
    for (size_t i = 0; i < nk; i++) {
        uint32_t k = ks[i];
        fedreci_secagg_params p = params(k + 1, k, k / 2 + 1, D_BENCH);
        round_result r;
        if (run_round(&p, 0.0, 5, &r))
            return;
        double raw = raw_chacha(k + 1, (size_t)4 * D_BENCH);
        double gbs = (double)(k + 1) * 4 * D_BENCH / raw / 1e9;
        double ms, qs;
        parts(k, &ms, &qs);
        if (json)
            printf("{\"bench\":\"secagg_client_mask\",\"d\":%u,\"k\":%u,\"mask_s\":%.6f,"
                   "\"raw_chacha_s\":%.6f,\"ratio\":%.3f,\"masks_only_s\":%.6f,"
                   "\"quantize_s\":%.6f,\"exact\":%s}\n",
                   D_BENCH, k, r.client_mask, raw, raw / r.client_mask, ms, qs,
                   r.ok ? "true" : "false");
        else
            printf("| %-2u | %17.2f | %17.2f | %22.2f | %20.2f | %15.2f | %19.2f | %8.2f |\n", k,
                   r.client_mask * 1e3, raw * 1e3, raw / r.client_mask, ms * 1e3, raw / ms,
                   qs * 1e3, gbs);
    }
    if (!json)
        bench_floor();
}

/* ---- 4. differential privacy on the client ------------------------------------ */

#define D_DP 117121u

static void bench_dp(int quick)
{
    size_t D = fedreci_dp_pad_dim(D_DP);
    fedreci_dp_rng r;
    memset(&r, 0, sizeof r);
    float *x = malloc(D_DP * sizeof *x);
    double *v = malloc(D * sizeof *v);
    int64_t *q = malloc(D * sizeof *q);
    if (!x || !v || !q)
        goto out;
    for (uint32_t i = 0; i < D_DP; i++)
        x[i] = (float)((double)(rnd() % 2001) / 1000.0 - 1.0) * 0.003f;
    uint8_t seed[32];
    randombytes_buf(seed, sizeof seed);
    double masks_s, quant_s;
    parts(16, &masks_s, &quant_s);
    double mask_total = masks_s + quant_s;
    double rot = 1e30, rnd_s = 1e30;
    fedreci_dp_rng_init(&r, seed, 1);
    for (int rep = 0; rep < 3; rep++) {
        double t0 = now();
        if (fedreci_dp_rotate(seed, x, D_DP, v) != FEDREC_OK)
            goto out;
        double t1 = now();
        for (size_t i = 0; i < D; i++)
            v[i] *= 1000.0;
        double t2 = now();
        if (fedreci_dp_round(&r, v, D, 1e30, 1, q, NULL) != FEDREC_OK)
            goto out;
        double t3 = now();
        rot = t1 - t0 < rot ? t1 - t0 : rot;
        rnd_s = t3 - t2 < rnd_s ? t3 - t2 : rnd_s;
    }
    if (!json) {
        printf("\nDifferential privacy on the client, d = %u inputs (padded to D = %zu): "
               "rotation + conditional rounding + Skellam noise vs masking at k = 16 "
               "(k + 1 masks %.2f ms + quantize %.2f ms = %.2f ms, same run)\n",
               D_DP, D, masks_s * 1e3, quant_s * 1e3, mask_total * 1e3);
        printf("| per-client noise variance mu_c | rotate (ms) | round (ms) | noise (ms) | "
               "DP total (ms) | DP / masking |\n");
        printf("|--------------------------------|-------------|------------|------------|------"
               "---------|--------------|\n");
    }
    const double mus[] = {1, 100, 1e4, 1e6};
    size_t nm = quick ? 2 : 4;
    for (size_t m = 0; m < nm; m++) {
        double ns = 1e30;
        for (int rep = 0; rep < 3; rep++) {
            memset(q, 0, D * sizeof *q);
            double t0 = now();
            if (fedreci_dp_skellam_fill(&r, mus[m], q, D) != FEDREC_OK)
                goto out;
            double t1 = now();
            ns = t1 - t0 < ns ? t1 - t0 : ns;
        }
        double tot = rot + rnd_s + ns;
        if (json)
            printf("{\"bench\":\"secagg_client_dp\",\"d\":%u,\"D\":%zu,\"mu_c\":%g,"
                   "\"rotate_s\":%.6f,\"round_s\":%.6f,\"noise_s\":%.6f,\"masking_s\":%.6f,"
                   "\"ratio\":%.3f}\n",
                   D_DP, D, mus[m], rot, rnd_s, ns, mask_total, tot / mask_total);
        else
            printf("| %30g | %11.2f | %10.2f | %10.2f | %13.2f | %12.2f |\n", mus[m], rot * 1e3,
                   rnd_s * 1e3, ns * 1e3, tot * 1e3, tot / mask_total);
    }
out:
    fedreci_dp_rng_wipe(&r);
    free(x);
    free(v);
    free(q);
}

/* ---- 2. server unmasking ---------------------------------------------------------- */

typedef struct model {
    double t_word; /* s per mask word (many keys, chunked) */
    double t_ka;   /* s per X25519 + derivation */
    double t_rec1; /* s per secret per share (Lagrange + combine) */
} model;

static model calibrate(void)
{
    model M;
    enum { KEYS = 32 };
    uint8_t *keys = malloc(KEYS * 32);
    int8_t signs[KEYS];
    randombytes_buf(keys, KEYS * 32);
    for (int i = 0; i < KEYS; i++)
        signs[i] = (i & 1) ? 1 : -1;
    uint32_t *acc = calloc(D_BENCH, sizeof *acc);
    uint8_t nonce[12];
    fedreci_prg_nonce(nonce, 1, FEDRECI_PRG_PAIR_MASK);
    double t0 = now();
    fedreci_prg_add(keys, signs, KEYS, nonce, 0, acc, D_BENCH);
    M.t_word = (now() - t0) / ((double)KEYS * D_BENCH);
    uint8_t sk[32], pk[32], out[32];
    randombytes_buf(sk, 32);
    crypto_scalarmult_base(pk, sk);
    t0 = now();
    for (int i = 0; i < 200; i++)
        if (fedreci_secagg_ka(out, sk, pk) == FEDREC_OK)
            fedreci_secagg_pair_derive(out, FEDRECI_LABEL_PAIR, out, 1, 2, 3);
    M.t_ka = (now() - t0) / 200;
    /* per share: 2 multiplications (Lagrange from the shared reference set)
     * + 1 multiplication and 1 addition (combine) */
    enum { T = 500 };
    uint8_t *lam = malloc(T * 32), *ys = malloc(T * 32), secret[32];
    for (int i = 0; i < T; i++) {
        crypto_core_ristretto255_scalar_random(lam + i * 32);
        crypto_core_ristretto255_scalar_random(ys + i * 32);
    }
    t0 = now();
    fedreci_shamir_combine(lam, ys, T, secret);
    fedreci_shamir_combine(lam, ys, T, secret);
    M.t_rec1 = (now() - t0) / T;
    free(keys);
    free(acc);
    free(lam);
    free(ys);
    return M;
}

static double model_time(const model *M, uint32_t n, uint32_t k, uint32_t t, double frac)
{
    double dropped = round(frac * n), surv = n - dropped;
    double keep = (double)k * (surv - 1) / (n - 1); /* surviving neighbours per dropped client */
    double masks = surv + dropped * keep;
    return masks * D_BENCH * M->t_word + dropped * keep * M->t_ka + (double)n * t * M->t_rec1;
}

static void bench_server(int quick)
{
    uint32_t ns[] = {100, 500, 1000}, kplus[] = {16, 20, 24};
    double fr[] = {0.0, 0.1, 0.3};
    model M = calibrate();
    if (!json) {
        printf("\nServer unmasking, d = %u: add_unmask (all survivors) + finish (rebuild b of "
               "survivors and s^SK of dropped, remove masks)\n",
               D_BENCH);
        printf("model constants measured in this run: %.3f ns/mask word (%.2f GB/s), %.1f us "
               "per key agreement, %.0f ns per share in a rebuild\n",
               M.t_word * 1e9, 4 / M.t_word / 1e9, M.t_ka * 1e6, M.t_rec1 * 1e9);
        printf("| n    | graph       | k   | t   | drop | survivors | masks  | server (s) | "
               "model (s) | how      | exact | uniform-dropout abort rate |\n");
        printf("|------|-------------|-----|-----|------|-----------|--------|------------|-------"
               "----|----------|-------|----------------------------|\n");
    }
    for (size_t a = 0; a < (quick ? 1u : 3u); a++) {
        for (int complete = 0; complete < 2; complete++) {
            uint32_t n = ns[a];
            uint32_t k = complete ? n - 1 : kplus[a];
            uint32_t t = k / 2 + 1;
            for (size_t f = 0; f < 3; f++) {
                double pred = model_time(&M, n, k, t, fr[f]);
                round_result r;
                memset(&r, 0, sizeof r);
                int measured = full || !(complete && n >= 500);
                if (measured) {
                    fedreci_secagg_params p = params(n, k, t, D_BENCH);
                    if (run_round(&p, fr[f], 1, &r))
                        return;
                }
                if (json)
                    printf("{\"bench\":\"secagg_server_unmask\",\"d\":%u,\"n\":%u,\"k\":%u,"
                           "\"t\":%u,\"dropout\":%.2f,\"measured\":%s,\"server_s\":%.4f,"
                           "\"model_s\":%.4f,\"masks\":%zu,\"exact\":%s,\"abort_rate\":%.3f}\n",
                           D_BENCH, n, k, t, fr[f], measured ? "true" : "false",
                           measured ? r.server : pred, pred, r.masks,
                           measured ? (r.ok ? "true" : "false") : "null", r.abort_rate);
                else if (measured)
                    printf("| %-4u | %-11s | %-3u | %-3u | %3.0f%% | %9u | %6zu | %10.3f | "
                           "%9.3f | measured | %-5s | %26.2f |\n",
                           n, complete ? "complete" : "SecAgg+", k, t, fr[f] * 100, r.survivors,
                           r.masks, r.server, pred, r.ok ? "yes" : "NO", r.abort_rate);
                else
                    printf("| %-4u | %-11s | %-3u | %-3u | %3.0f%% | %9.0f | %6.0f | %10s | "
                           "%9.3f | model    | -     | %26s |\n",
                           n, "complete", k, t, fr[f] * 100, n - round(fr[f] * n),
                           (n - round(fr[f] * n)) +
                               round(fr[f] * n) * (double)k * (n - round(fr[f] * n) - 1) / (n - 1),
                           "-", pred, "-");
            }
        }
    }
}

/* ---- 3. Bonawitz et al. 2017 --------------------------------------------------------- */

static void bench_classic(int quick)
{
    uint32_t n = quick ? 100 : 500, d = quick ? 10000 : 100000;
    fedreci_secagg_params p = params(n, n - 1, n / 2 + 1, d);
    round_result r;
    if (run_round(&p, 0.3, 1, &r))
        return;
    if (json) {
        printf("{\"bench\":\"secagg_classic\",\"n\":%u,\"d\":%u,\"dropout\":0.3,\"client_s\":%.4f,"
               "\"client_mask_s\":%.4f,\"server_s\":%.3f,\"exact\":%s,\"paper_client_s\":0.85,"
               "\"paper_server_s\":143}\n",
               n, d, r.client_total, r.client_mask, r.server, r.ok ? "true" : "false");
        return;
    }
    printf("\nClassic SecAgg (Bonawitz et al. CCS 2017 setting): %u clients, %u entries, complete "
           "graph, t = %u, 30%% dropout (%u survivors), run for real%s\n",
           n, d, p.t, r.survivors, quick ? " (--quick: reduced setting)" : "");
    printf("| quantity                                  | fedrec  | Bonawitz et al. 2017 (Java, 1 "
           "core) | ratio |\n");
    printf("|-------------------------------------------|---------|----------------------------"
           "--------|-------|\n");
    printf("| per client, all stages (s, median)        | %7.3f | %34.2f | %5.1fx |\n",
           r.client_total, 0.85, 0.85 / r.client_total);
    printf("|   of which masked_input (s)               | %7.3f | %34s |       |\n", r.client_mask,
           "-");
    printf("| server, unmask at 30%% dropout (s)         | %7.3f | %34.0f | %5.1fx |\n", r.server,
           143.0, 143.0 / r.server);
    printf("| sum exact                                 | %7s | %34s |       |\n",
           r.ok ? "yes" : "NO", "-");
}

/* ---- 4. the checks of issue 13 ---------------------------------------------------- */

/* The consistency step's endorsement (protocol version 6): one Ed25519
 * signature per client over its survivor set, verified once by the
 * coordinator (CPU time each; reps of each). */
static void endorse_costs(double *sign, double *verify)
{
    uint8_t pk[32], sk[64], req[32], msg[FEDRECI_ENDORSE_MSG_BYTES], sig[64];
    crypto_sign_keypair(pk, sk);
    randombytes_buf(req, sizeof req);
    fedreci_secagg_endorse_msg(msg, 7, 9, req);
    volatile int sink = 0;
    double t0 = now();
    for (int i = 0; i < 500; i++) {
        crypto_sign_detached(sig, NULL, msg, sizeof msg, sk);
        msg[sizeof msg - 1] ^= sig[0];
    }
    *sign = (now() - t0) / 500;
    crypto_sign_detached(sig, NULL, msg, sizeof msg, sk);
    t0 = now();
    for (int i = 0; i < 500; i++)
        sink += crypto_sign_verify_detached(sig, msg, sizeof msg, pk);
    *verify = (now() - t0) / 500;
    (void)sink;
}

static void bench_checks(int quick)
{
    const uint32_t n = quick ? 100 : 500, k = 16, t = 9, d = quick ? 20001 : 117121;
    fedreci_secagg_params p = params(n, k, t, d);
    round_result r;
    cpu_clock = 1;
    if (run_round(&p, checks_dropout, 1, &r) || !r.ok) {
        printf("checks: the reference round failed\n");
        cpu_clock = 0;
        return;
    }
    /* request signatures: one masked input of d words and a small request */
    uint8_t pk[32], sk[64];
    crypto_sign_keypair(pk, sk);
    uint32_t *y = calloc(d, sizeof *y);
    if (!y) {
        cpu_clock = 0;
        return;
    }
    fedreci_wire_hdr hm = {fedreci_secagg_id_from_pk(pk), 7, FEDRECI_WIRE_STAGE_MASKED_INPUT};
    fedreci_wire_hdr hs = {hm.client_id, 7, FEDRECI_WIRE_STAGE_MODEL};
    nng_msg *m = NULL, *ms = NULL;
    if (fedreci_wire_enc_masked(&m, &hm, y, d) || fedreci_wire_enc_model_request(&ms, &hs, 3)) {
        free(y);
        cpu_clock = 0;
        return;
    }
    /* a real ShareKeys message of k bundles (MACed since protocol version 7,
       signed before) */
    uint8_t ctb[16][FEDRECI_SHARE_CT_BYTES], cmb[16][FEDRECI_SECAGG_COMMIT_BYTES];
    fedreci_secagg_ciphertext cts[16];
    randombytes_buf(ctb, sizeof ctb);
    randombytes_buf(cmb, sizeof cmb);
    for (uint32_t j = 0; j < k && j < 16; j++)
        cts[j] = (fedreci_secagg_ciphertext){hm.client_id, j + 1, ctb[j], sizeof ctb[j], cmb[j]};
    fedreci_wire_hdr hk = {hm.client_id, 7, FEDRECI_WIRE_STAGE_SHARE_KEYS};
    nng_msg *mk_ = NULL;
    if (fedreci_wire_enc_ciphertexts(&mk_, &hk, 0, cts, k < 16 ? k : 16)) {
        nng_msg_free(m);
        nng_msg_free(ms);
        free(y);
        cpu_clock = 0;
        return;
    }
    size_t mlen = nng_msg_len(m), slen = nng_msg_len(ms), klen = nng_msg_len(mk_);
    volatile int sink = 0;
    uint8_t mk[32];
    randombytes_buf(mk, sizeof mk);
    double t0 = now();
    for (int i = 0; i < 20; i++) {
        sink += (int)fedreci_wire_sign(m, &hm, sk);
        (void)nng_msg_chop(m, FEDRECI_WIRE_SIG_SUFFIX);
    }
    double sign_big = (now() - t0) / 20; /* what a signature would cost (not used) */
    t0 = now();
    for (int i = 0; i < 20; i++) {
        sink += (int)fedreci_wire_mac(m, mk);
        (void)nng_msg_chop(m, FEDRECI_WIRE_MAC_SUFFIX);
    }
    double mac_big = (now() - t0) / 20;
    uint8_t ksk[32], kpk[32], kk[32];
    randombytes_buf(ksk, sizeof ksk);
    crypto_scalarmult_base(kpk, ksk);
    t0 = now();
    for (int i = 0; i < 200; i++)
        sink += (int)fedreci_secagg_mac_key(kk, ksk, kpk, 7, 9);
    double mac_key = (now() - t0) / 200;
    t0 = now();
    for (int i = 0; i < 500; i++) {
        sink += (int)fedreci_wire_sign(ms, &hs, sk);
        (void)nng_msg_chop(ms, FEDRECI_WIRE_SIG_SUFFIX);
    }
    double sign_small = (now() - t0) / 500;
    /* the share keys and a small request (the unmask shares): MACed */
    t0 = now();
    for (int i = 0; i < 500; i++) {
        sink += (int)fedreci_wire_mac(mk_, mk);
        (void)nng_msg_chop(mk_, FEDRECI_WIRE_MAC_SUFFIX);
    }
    double mac_share = (now() - t0) / 500;
    t0 = now();
    for (int i = 0; i < 500; i++) {
        sink += (int)fedreci_wire_mac(ms, mk);
        (void)nng_msg_chop(ms, FEDRECI_WIRE_MAC_SUFFIX);
    }
    double mac_small = (now() - t0) / 500;
    /* what signing the share keys cost before protocol version 7 */
    t0 = now();
    for (int i = 0; i < 200; i++) {
        sink += (int)fedreci_wire_sign(mk_, &hk, sk);
        (void)nng_msg_chop(mk_, FEDRECI_WIRE_SIG_SUFFIX);
    }
    double sign_share = (now() - t0) / 200;
    fedreci_wire_env *em = NULL, *es = NULL, *ek = NULL;
    double verify_big = 0, verify_small = 0, vmac_share = 0, vmac_small = 0, verify_share = 0;
    if (!fedreci_wire_mac(m, mk) && !fedreci_wire_sign(ms, &hs, sk) &&
        !fedreci_wire_decode_msg(m, (size_t)-1 / 2, &em) &&
        !fedreci_wire_decode_msg(ms, 1 << 20, &es)) {
        t0 = now();
        for (int i = 0; i < 20; i++)
            sink += (int)fedreci_wire_verify_mac(nng_msg_body(m), nng_msg_len(m), em, mk);
        verify_big = (now() - t0) / 20;
        t0 = now();
        for (int i = 0; i < 500; i++)
            sink += (int)fedreci_wire_verify(nng_msg_body(ms), nng_msg_len(ms), es, pk);
        verify_small = (now() - t0) / 500;
    }
    fedreci_wire_free(es);
    es = NULL;
    (void)nng_msg_chop(ms, FEDRECI_WIRE_SIG_SUFFIX);
    if (!fedreci_wire_mac(ms, mk) && !fedreci_wire_decode_msg(ms, 1 << 20, &es)) {
        t0 = now();
        for (int i = 0; i < 500; i++)
            sink += (int)fedreci_wire_verify_mac(nng_msg_body(ms), nng_msg_len(ms), es, mk);
        vmac_small = (now() - t0) / 500;
    }
    if (!fedreci_wire_sign(mk_, &hk, sk) && !fedreci_wire_decode_msg(mk_, 1 << 20, &ek)) {
        t0 = now();
        for (int i = 0; i < 200; i++)
            sink += (int)fedreci_wire_verify(nng_msg_body(mk_), nng_msg_len(mk_), ek, pk);
        verify_share = (now() - t0) / 200;
    }
    fedreci_wire_free(ek);
    ek = NULL;
    (void)nng_msg_chop(mk_, FEDRECI_WIRE_SIG_SUFFIX);
    if (!fedreci_wire_mac(mk_, mk) && !fedreci_wire_decode_msg(mk_, 1 << 20, &ek)) {
        t0 = now();
        for (int i = 0; i < 500; i++)
            sink += (int)fedreci_wire_verify_mac(nng_msg_body(mk_), nng_msg_len(mk_), ek, mk);
        vmac_share = (now() - t0) / 500;
    }
    fedreci_wire_free(em);
    fedreci_wire_free(es);
    fedreci_wire_free(ek);
    nng_msg_free(m);
    nng_msg_free(ms);
    nng_msg_free(mk_);
    /* one hash commitment; the range check of the sum; one scalar mult */
    uint8_t share[32] = {1}, opening[32] = {2}, h[32];
    t0 = now();
    for (int i = 0; i < 20000; i++) {
        fedreci_secagg_share_commit(h, 7, 1, 2, 0, share, opening);
        share[1] ^= h[0];
    }
    double commit = (now() - t0) / 20000;
    for (uint32_t i = 0; i < d; i++)
        y[i] = (uint32_t)(i % 3);
    y[d - 1] = n;
    t0 = now();
    for (int i = 0; i < 20; i++)
        sink += (int)fedreci_secagg_check_sum(&p, y, n, n);
    double range = (now() - t0) / 20;
    uint8_t sc[32], pt[32], out[32];
    crypto_core_ristretto255_scalar_random(sc);
    crypto_scalarmult_ristretto255_base(pt, sc);
    t0 = now();
    for (int i = 0; i < 2000; i++)
        sink += crypto_scalarmult_ristretto255(out, sc, pt);
    double smul = (now() - t0) / 2000;
    free(y);
    (void)sink;
    double e_sign = 0, e_verify = 0;
    endorse_costs(&e_sign, &e_verify);
    cpu_clock = 0;

    /* per round: 2 signed requests per client (check-in, model request)
       and 4 MACed (advert, share keys, masked input, unmask shares: protocol
       version 7; the advert's own signature, which the neighbours check
       too, is in the state machines; the SeedReveal, Consistency,
       Complaints and Openings MACs are counted with issue 14's pieces), the
       coordinator verifies each; each client makes 2k commitments and
       checks 2k, the server checks k reveals per survivor and one b
       commitment per survivor */
    double c_sign = 2 * sign_small + mac_share + 2 * mac_small + mac_big + mac_key;
    double s_verify = 2 * verify_small + vmac_share + 2 * vmac_small + verify_big + mac_key;
    /* the same with the advert, share keys and unmask shares signed
       (protocol 6) */
    double c_sign6 = 4 * sign_small + sign_share + mac_big + mac_key;
    double s_verify6 = 4 * verify_small + verify_share + verify_big + mac_key;
    double c_commit = 4.0 * k * commit, s_commit = (double)(k + 1) * commit;
    double round_meas = n * r.client_total + r.server; /* includes the commitments and the
                                                          endorsements */
    double endorse = e_sign + e_verify; /* per client: it signs, the coordinator verifies */
    double old = round_meas - n * (c_commit + s_commit + endorse);
    double checks = n * (c_sign + c_commit + s_verify + s_commit + endorse) + range;
    double checks6 = n * (c_sign6 + c_commit + s_verify6 + s_commit + endorse) + range;
    double feldman = n * (2.0 * k * t + 2.0 * t) * smul; /* verify 2k shares (t mults each) */
    if (json) {
        printf("{\"bench\":\"secagg_checks\",\"n\":%u,\"k\":%u,\"t\":%u,\"d\":%u,"
               "\"round_s\":%.4f,\"old_path_s\":%.4f,\"checks_s\":%.4f,\"growth\":%.4f,"
               "\"mac_masked_s\":%.6f,\"verify_masked_s\":%.6f,\"sign_small_s\":%.7f,"
               "\"verify_small_s\":%.7f,\"commit_s\":%.8f,\"range_check_s\":%.6f,"
               "\"scalarmult_s\":%.7f,\"feldman_s\":%.4f,\"dropout\":%.2f,\"survivors\":%u,"
               "\"client_median_s\":%.6f,\"server_s\":%.6f,\"machines_s\":%.4f,"
               "\"endorse_sign_s\":%.7f,\"endorse_verify_s\":%.7f,\"mac_share_s\":%.7f,"
               "\"mac_small_s\":%.7f,\"checks_v6_s\":%.4f,\"growth_v6\":%.4f,\"exact\":true}\n",
               n, k, t, d, round_meas + n * (c_sign + s_verify) + range, old, checks, checks / old,
               mac_big, verify_big, sign_small, verify_small, commit, range, smul, feldman,
               checks_dropout, r.survivors, r.client_total, r.server, round_meas, e_sign, e_verify,
               mac_share, mac_small, checks6, checks6 / old);
        return;
    }
    printf("\nChecks against hostile clients (issue 13): n = %u, k = %u, t = %u, d = %u, one real "
           "round (sum exact, %u of %u clients dropped before their masked input) and each check "
           "timed alone, same run, in CPU time of this thread%s\n",
           n, k, t, d, r.dropped, n, quick ? " (--quick: reduced)" : "");
    printf("| item                                              | per round (s) | share of old "
           "path |\n");
    printf("|---------------------------------------------------|---------------|--------------"
           "-----|\n");
    printf("| old path: n x client (all stages) + server unmask | %13.3f | %17s |\n", old, "100%");
    printf("| clients sign 2 requests, MAC 4: advert and unmask (%.1f us each), share keys (%zu "
           "B: %.1f us), masked input (%zu B: %.3f ms) | %7.3f | %8.2f%% |\n",
           mac_small * 1e6, klen + FEDRECI_WIRE_MAC_SUFFIX, mac_share * 1e6,
           mlen + FEDRECI_WIRE_MAC_SUFFIX, mac_big * 1e3, n * c_sign, 100 * n * c_sign / old);
    printf("| coordinator verifies them (advert and unmask %.1f us each, share keys %.1f us, "
           "masked input %.3f ms) | %7.3f | %8.2f%% |\n",
           vmac_small * 1e6, vmac_share * 1e6, verify_big * 1e3, n * s_verify,
           100 * n * s_verify / old);
    printf("| share commitments: clients make + check 4k         | %13.4f | %16.2f%% |\n",
           n * c_commit, 100 * n * c_commit / old);
    printf("| share commitments: server checks k + 1 per client  | %13.4f | %16.2f%% |\n",
           n * s_commit, 100 * n * s_commit / old);
    printf("| consistency endorsement: each client signs its set (%.1f us), the coordinator "
           "verifies it (%.1f us) | %7.4f | %8.2f%% |\n",
           e_sign * 1e6, e_verify * 1e6, n * endorse, 100 * n * endorse / old);
    printf("| range + weight check of the sum (d words)          | %13.5f | %16.3f%% |\n", range,
           100 * range / old);
    printf("| all checks                                        | %13.3f | %16.2f%% |\n", checks,
           100 * checks / old);
    printf("| (protocol 6) all checks with the advert, share keys and unmask shares signed "
           "(%.1f + %.1f us for the share keys) | %7.3f | %8.2f%% |\n",
           sign_share * 1e6, verify_share * 1e6, checks6, 100 * checks6 / old);
    printf("| (alternative) Feldman: 2kt + 2t scalar mults/client (%.1f us each) | %7.3f | "
           "%8.0f%% |\n",
           smul * 1e6, feldman, 100 * feldman / old);
    printf("small request: %zu B signed in %.1f us, verified in %.1f us; a signature of the "
           "masked input instead of its MAC would cost %.3f ms per client (BLAKE2b of %zu B) "
           "on each side; MAC key: %.1f us per client on each side\n",
           slen + FEDRECI_WIRE_SIG_SUFFIX, sign_small * 1e6, verify_small * 1e6, sign_big * 1e3,
           mlen, mac_key * 1e6);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Encoded size of an nng message, freed. */
static size_t msg_size(nng_msg *m)
{
    size_t n = m ? nng_msg_len(m) : 0;
    if (m)
        nng_msg_free(m);
    return n;
}

/* The bytes issue 14 adds per client and round, from real encoded
 * messages (random 64-bit ids) for a roster of n and k neighbours: the seed
 * step (the advert's commitment, SeedReveal, the roster's digest and the
 * SeedRelay in place of the old roster's adverts) and the consistency
 * check (Consistency up, ConsistencyRelay down). */
typedef struct wire_bytes {
    size_t seed, consist;
    size_t adv_added, reveal, roster_old, roster_new, relay, tags, tags_relay;
} wire_bytes;

static wire_bytes added_bytes(uint32_t n, uint32_t k, const uint8_t digest[32],
                              const uint8_t sk[64], const uint8_t mk[32])
{
    wire_bytes w;
    memset(&w, 0, sizeof w);
    size_t m_ids = n, na = k + 1;
    uint64_t *rid = malloc(m_ids * sizeof *rid);
    fedreci_secagg_advert *adv = calloc(na, sizeof *adv);
    const fedreci_secagg_advert **ap = calloc(na, sizeof *ap);
    uint8_t *slots = malloc(m_ids * FEDRECI_SECAGG_SEED_SLOT_BYTES);
    fedreci_secagg_tag tg[64];
    if (rid && adv && ap && slots && k <= 64) {
        randombytes_buf(slots, m_ids * FEDRECI_SECAGG_SEED_SLOT_BYTES);
        for (size_t i = 0; i < m_ids; i++)
            rid[i] = rnd() | (1ull << 63);
        qsort(rid, m_ids, sizeof *rid, cmp_u64);
        for (size_t i = 0; i < na; i++) {
            randombytes_buf(&adv[i], sizeof adv[i]);
            adv[i].client_id = rid[i];
            ap[i] = &adv[i];
        }
        fedreci_wire_hdr h = {rid[0], 7, FEDRECI_WIRE_STAGE_ADVERTISE};
        nng_msg *x = NULL;
        size_t adv_new = 0;
        /* the advert as sent, MACed since protocol version 7 (the seed
           commitment, 34 bytes, is the addition) */
        if (!fedreci_wire_enc_advertise(&x, &h, &adv[0]) && !fedreci_wire_mac(x, mk))
            adv_new = msg_size(x);
        w.adv_added = adv_new ? 34 : 0;
        /* before: the roster carried the member ids and k + 1 adverts
           without seed commitments (34 bytes less each) */
        if (!fedreci_wire_enc_roster(&x, &h, rid, m_ids, NULL, ap, na))
            w.roster_old = msg_size(x) - 34 * na;
        if (!fedreci_wire_enc_roster(&x, &h, rid, m_ids, digest, NULL, 0))
            w.roster_new = msg_size(x);
        h.stage = FEDRECI_WIRE_STAGE_SEED;
        if (!fedreci_wire_enc_seed_relay(&x, &h, slots, m_ids, NULL, ap, na))
            w.relay = msg_size(x);
        if (!fedreci_wire_enc_seed_reveal(&x, &h, slots) && !fedreci_wire_mac(x, mk))
            w.reveal = msg_size(x);
        h.stage = FEDRECI_WIRE_STAGE_CONSISTENCY;
        for (uint32_t j = 0; j < k; j++) {
            tg[j].from = rid[0];
            tg[j].to = rid[j + 1];
            randombytes_buf(tg[j].tag, sizeof tg[j].tag);
        }
        uint8_t esig[64];
        randombytes_buf(esig, sizeof esig);
        if (!fedreci_wire_enc_consistency(&x, &h, rid + 1, k, tg, k, esig, NULL, 0) &&
            !fedreci_wire_mac(x, mk))
            w.tags = msg_size(x);
        for (uint32_t j = 0; j < k; j++) {
            tg[j].from = rid[j + 1];
            tg[j].to = rid[0];
        }
        if (!fedreci_wire_enc_consistency_relay(&x, &h, rid + 1, k, tg, k, NULL, 0))
            w.tags_relay = msg_size(x);
        w.seed = w.adv_added + w.reveal + w.roster_new + w.relay - w.roster_old;
        w.consist = w.tags + w.tags_relay;
    }
    free(rid);
    free(adv);
    free(ap);
    free(slots);
    return w;
}

static void bench_deviating(int quick)
{
    const uint32_t n = quick ? 100 : 500, k = 16, t = 9, d = quick ? 20001 : 117121;
    fedreci_secagg_params p = params(n, k, t, d);
    round_result r;
    cpu_clock = 1;
    if (run_round(&p, 0.0, 1, &r) || !r.ok) {
        printf("deviating: the reference round failed\n");
        cpu_clock = 0;
        return;
    }
    volatile int sink = 0;
    /* the pieces, each alone */
    uint64_t *ids = malloc(n * sizeof *ids);
    uint8_t *buf = malloc((size_t)n * 32), *commits = malloc((size_t)n * 32);
    if (!ids || !buf || !commits) {
        free(ids);
        free(buf);
        free(commits);
        cpu_clock = 0;
        return;
    }
    for (uint32_t i = 0; i < n; i++)
        ids[i] = rnd();
    randombytes_buf(buf, (size_t)n * 32);
    uint8_t digest[32], seed[32], tag[16], key[32], req[32];
    randombytes_buf(key, sizeof key);
    /* a client's seed check: m commitments, the digest, the seed */
    int reps = quick ? 20 : 5;
    double t0 = now();
    for (int rep = 0; rep < reps; rep++) {
        for (uint32_t i = 0; i < n; i++)
            fedreci_secagg_seed_commit(commits + 32 * i, 7, ids[i], buf + 32 * i);
        fedreci_secagg_seed_digest(digest, 7, 0, ids, commits, n);
        fedreci_secagg_graph_seed(seed, digest, buf, NULL, n);
        sink += seed[0];
    }
    double seed_client = (now() - t0) / reps;
    /* the coordinator: one commitment per member (add_reveal), the digest
       and the seed: the same work once per round */
    double seed_server = seed_client;
    /* the consistency step: the survivor set hash (n ids) twice... once per
       client, k tags made and at most k checked, k pair keys derived */
    t0 = now();
    for (int rep = 0; rep < reps * 20; rep++) {
        fedreci_secagg_request_hash(req, 7, ids, n, NULL, 0);
        sink += req[0];
    }
    double reqhash = (now() - t0) / (reps * 20);
    t0 = now();
    for (int rep = 0; rep < 20000; rep++) {
        fedreci_secagg_consistency_tag(tag, key, 7, 1, 2, req);
        req[0] ^= tag[0];
    }
    double one_tag = (now() - t0) / 20000;
    uint8_t ka[32];
    randombytes_buf(ka, sizeof ka);
    t0 = now();
    for (int rep = 0; rep < 20000; rep++) {
        fedreci_secagg_pair_derive(key, FEDRECI_LABEL_CONSIST, ka, 7, 1, 2);
        ka[0] ^= key[0];
    }
    double one_key = (now() - t0) / 20000;
    double consist_client = reqhash + 2.0 * k * one_tag + k * one_key;
    /* two more requests per client (the seed contribution, the tags), MACed
       under the round key and verified by the coordinator; a signature and
       its verification are timed too (the alternative not built) */
    uint8_t pk[32], sk[64];
    crypto_sign_keypair(pk, sk);
    fedreci_secagg_tag tg[16];
    for (uint32_t j = 0; j < k; j++) {
        tg[j].from = ids[0];
        tg[j].to = ids[j + 1];
        randombytes_buf(tg[j].tag, sizeof tg[j].tag);
    }
    fedreci_wire_hdr hs = {fedreci_secagg_id_from_pk(pk), 7, FEDRECI_WIRE_STAGE_CONSISTENCY};
    nng_msg *m = NULL;
    double sign2 = 0, verify2 = 0, sigsign = 0, sigverify = 0;
    uint8_t mk2[32];
    randombytes_buf(mk2, sizeof mk2);
    uint8_t esig[64];
    randombytes_buf(esig, sizeof esig);
    if (!fedreci_wire_enc_consistency(&m, &hs, ids + 1, k, tg, k, esig, NULL, 0)) {
        t0 = now();
        for (int i = 0; i < 500; i++) {
            sink += (int)fedreci_wire_mac(m, mk2);
            (void)nng_msg_chop(m, FEDRECI_WIRE_MAC_SUFFIX);
        }
        sign2 = 2 * (now() - t0) / 500;
        t0 = now();
        for (int i = 0; i < 500; i++) {
            sink += (int)fedreci_wire_sign(m, &hs, sk);
            (void)nng_msg_chop(m, FEDRECI_WIRE_SIG_SUFFIX);
        }
        sigsign = 2 * (now() - t0) / 500;
        fedreci_wire_env *e = NULL;
        if (!fedreci_wire_mac(m, mk2) && !fedreci_wire_decode_msg(m, 1 << 20, &e)) {
            t0 = now();
            for (int i = 0; i < 500; i++)
                sink += (int)fedreci_wire_verify_mac(nng_msg_body(m), nng_msg_len(m), e, mk2);
            verify2 = 2 * (now() - t0) / 500;
        }
        fedreci_wire_free(e);
        e = NULL;
        (void)nng_msg_chop(m, FEDRECI_WIRE_MAC_SUFFIX);
        if (!fedreci_wire_sign(m, &hs, sk) && !fedreci_wire_decode_msg(m, 1 << 20, &e)) {
            t0 = now();
            for (int i = 0; i < 500; i++)
                sink += (int)fedreci_wire_verify(nng_msg_body(m), nng_msg_len(m), e, pk);
            sigverify = 2 * (now() - t0) / 500;
        }
        fedreci_wire_free(e);
        nng_msg_free(m);
    }
    /* the six requests of issue 13 (five signatures, one MAC) and their
       verification, to count the old path as the deployed round */
    double old_requests = 0;
    {
        uint32_t *y = calloc(d, sizeof *y);
        fedreci_wire_hdr hm = {hs.client_id, 7, FEDRECI_WIRE_STAGE_MASKED_INPUT};
        nng_msg *mm = NULL;
        uint8_t mk[32];
        randombytes_buf(mk, sizeof mk);
        if (y && !fedreci_wire_enc_masked(&mm, &hm, y, d)) {
            t0 = now();
            for (int i = 0; i < 10; i++) {
                sink += (int)fedreci_wire_mac(mm, mk);
                (void)nng_msg_chop(mm, FEDRECI_WIRE_MAC_SUFFIX);
            }
            double mac = (now() - t0) / 10;
            old_requests = 5 * (sigsign / 2 + sigverify / 2) + 2 * mac;
            nng_msg_free(mm);
        }
        free(y);
    }
    cpu_clock = 0;

    /* per round */
    /* the round also holds the endorsement signatures of the consistency
       step (protocol version 6), counted with issue 13's checks
       (--only checks), not here */
    double e_sign = 0, e_verify = 0;
    cpu_clock = 1;
    endorse_costs(&e_sign, &e_verify);
    cpu_clock = 0;
    double round_meas = n * r.client_total + r.server - n * (e_sign + e_verify);
    double in_machine = n * (seed_client + consist_client) + seed_server;
    double old = round_meas - in_machine + n * old_requests;
    double added = in_machine + n * (sign2 + verify2);

    /* bytes per client: the same messages with and without the additions,
       at this n and at n = 100 */
    wire_bytes wb = added_bytes(n, k, digest, sk, mk2);
    wire_bytes w100 = added_bytes(100, k, digest, sk, mk2);
    size_t seed_bytes = wb.seed, consist_bytes = wb.consist;
    free(ids);
    free(buf);
    free(commits);
    (void)sink;
    if (json) {
        printf("{\"bench\":\"secagg_deviating\",\"n\":%u,\"k\":%u,\"t\":%u,\"d\":%u,"
               "\"old_path_s\":%.4f,\"added_s\":%.5f,\"growth\":%.5f,"
               "\"seed_client_s\":%.7f,\"seed_server_s\":%.7f,\"consistency_client_s\":%.7f,"
               "\"two_requests_sign_s\":%.7f,\"two_requests_verify_s\":%.7f,"
               "\"seed_bytes\":%zu,\"consistency_bytes\":%zu,\"exact\":true}\n",
               n, k, t, d, old, added, added / old, seed_client, seed_server, consist_client, sign2,
               verify2, seed_bytes, consist_bytes);
        return;
    }
    printf("\nDeviating coordinator (issue 14): n = %u, k = %u, t = %u, d = %u, one real round "
           "(sum exact) with the seed step and the consistency check, each piece timed alone, "
           "same run, CPU time of this thread%s\n",
           n, k, t, d, quick ? " (--quick: reduced)" : "");
    printf("| item | per round (s) | share of old path |\n|---|---|---|\n");
    printf("| old path: n x client + server, with the six requests of issue 13 | %.3f | 100%% |\n",
           old);
    printf("| seed: each client checks %u commitments, the digest, the seed (%.3f ms) | %.4f | "
           "%.2f%% |\n",
           n, seed_client * 1e3, n * seed_client, 100 * n * seed_client / old);
    printf("| seed: the coordinator, once per round | %.5f | %.3f%% |\n", seed_server,
           100 * seed_server / old);
    printf("| consistency: each client hashes the set, derives %u keys, makes and checks %u "
           "tags (%.1f us) | %.4f | %.2f%% |\n",
           k, 2 * k, consist_client * 1e6, n * consist_client, 100 * n * consist_client / old);
    printf("| two more requests per client, MACed (%.1f us) | %.4f | %.2f%% |\n", sign2 * 1e6,
           n * sign2, 100 * n * sign2 / old);
    printf("| the coordinator verifies their MACs (%.1f us) | %.4f | %.2f%% |\n", verify2 * 1e6,
           n * verify2, 100 * n * verify2 / old);
    printf("| **all added** | **%.4f** | **%.2f%%** |\n", added, 100 * added / old);
    printf("| (not built) the two requests signed and verified instead (%.1f + %.1f us) | %.4f | "
           "%.2f%% |\n",
           sigsign * 1e6, sigverify * 1e6, n * (sigsign + sigverify),
           100 * n * (sigsign + sigverify) / old);
    printf("\nBytes per client and round that issue 14 adds (real encoded messages, k = %u)\n", k);
    printf("| n | seed step | of it: SeedRelay + roster (old roster) | SeedReveal | consistency "
           "(up + down) | total | goal 2,048 B |\n|---|---|---|---|---|---|---|\n");
    const wire_bytes *rows[2] = {&w100, &wb};
    const uint32_t ns[2] = {100, n};
    for (int i = n == 100 ? 1 : 0; i < 2; i++)
        printf("| %u | %zu | %zu + %zu (%zu) | %zu | %zu (%zu + %zu) | %zu | %s |\n", ns[i],
               rows[i]->seed, rows[i]->relay, rows[i]->roster_new, rows[i]->roster_old,
               rows[i]->reveal, rows[i]->consist, rows[i]->tags, rows[i]->tags_relay,
               rows[i]->seed + rows[i]->consist,
               rows[i]->seed + rows[i]->consist <= 2048 ? "met" : "over");
    printf("(the relay: %d bytes per member that revealed, back to back, the roster's order; "
           "every client needs every contribution to check it against the digest)\n",
           FEDRECI_SECAGG_CONTRIB_BYTES);
}

/* ---- 7. the complaint step (issue 13: bad share bundles) ----------------------- */

static void bench_complaints(int quick)
{
    const uint32_t n = quick ? 100 : 500, k = 16, t = 9, d = quick ? 20001 : 117121;
    fedreci_secagg_params p = params(n, k, t, d);
    round_result old_r, new_r;
    cpu_clock = 1;
    bench_cpl = 0;
    int bad = run_round(&p, 0.0, 1, &old_r) || !old_r.ok;
    bench_cpl = 1;
    bad = bad || run_round(&p, 0.0, 1, &new_r) || !new_r.ok;
    bench_cpl = 0;
    if (bad) {
        printf("complaints: a reference round failed\n");
        cpu_clock = 0;
        return;
    }
    volatile int sink = 0;
    /* the two messages every member sends and gets in a round without
       complaints: an empty Complaints request (MACed) and the final
       ComplaintRelay with no exclusions and no openings */
    uint8_t mk[32];
    randombytes_buf(mk, sizeof mk);
    fedreci_wire_hdr hc = {rnd() | 1, 7, FEDRECI_WIRE_STAGE_COMPLAINT};
    double c_wire = 0, s_wire = 0;
    const int reps = 2000;
    double t0 = now();
    for (int i = 0; i < reps; i++) {
        nng_msg *m = NULL;
        if (!fedreci_wire_enc_complaints(&m, &hc, NULL, 0)) {
            sink += (int)fedreci_wire_mac(m, mk);
            nng_msg_free(m);
        }
    }
    c_wire += (now() - t0) / reps;
    nng_msg *req = NULL, *rep = NULL;
    if (fedreci_wire_enc_complaints(&req, &hc, NULL, 0) || fedreci_wire_mac(req, mk) ||
        fedreci_wire_enc_complaint_relay(&rep, &hc, NULL, 0, 1, NULL, 0, NULL, 0)) {
        printf("complaints: encoding failed\n");
        cpu_clock = 0;
        return;
    }
    t0 = now();
    for (int i = 0; i < reps; i++) {
        fedreci_wire_env *e = NULL;
        if (!fedreci_wire_decode_msg(req, 1 << 20, &e)) {
            sink += (int)fedreci_wire_verify_mac(nng_msg_body(req), nng_msg_len(req), e, mk);
            fedreci_secagg_complaint *cp = NULL;
            size_t ncp = 0;
            if (!fedreci_wire_get_complaints(e, n, &cp, &ncp))
                free(cp);
            fedreci_wire_free(e);
        }
        nng_msg *m = NULL;
        if (!fedreci_wire_enc_complaint_relay(&m, &hc, NULL, 0, 1, NULL, 0, NULL, 0))
            nng_msg_free(m);
    }
    s_wire += (now() - t0) / reps;
    t0 = now();
    for (int i = 0; i < reps; i++) {
        fedreci_wire_env *e = NULL;
        if (!fedreci_wire_decode_msg(rep, 1 << 20, &e)) {
            int fin;
            const uint64_t *ex;
            size_t nex;
            sink += (int)fedreci_wire_get_complaint_relay(e, &fin, &ex, &nex);
            fedreci_secagg_opening *op = NULL;
            size_t nop = 0;
            if (!fedreci_wire_get_openings(e, n, &op, &nop))
                free(op);
            fedreci_wire_free(e);
        }
    }
    c_wire += (now() - t0) / reps;
    size_t b_req = nng_msg_len(req), b_rep = nng_msg_len(rep);
    nng_msg_free(req);
    nng_msg_free(rep);
    /* one complaint (only when a bundle is bad): the complainer signs it,
       the coordinator and the dealer each hash the bundle and verify the
       signature, the dealer's opening is checked against two commitments
       by the coordinator and the complainer */
    uint8_t pk[32], sk[64], ct[FEDRECI_SHARE_CT_BYTES], cm[FEDRECI_SECAGG_COMMIT_BYTES], h[32],
        sig[64], msg[FEDRECI_COMPLAINT_MSG_BYTES], sh[32], op[32];
    crypto_sign_keypair(pk, sk);
    randombytes_buf(ct, sizeof ct);
    randombytes_buf(cm, sizeof cm);
    randombytes_buf(sh, sizeof sh);
    randombytes_buf(op, sizeof op);
    t0 = now();
    for (int i = 0; i < 500; i++) {
        fedreci_secagg_bundle_hash(h, 7, 1, 2, ct, cm);
        fedreci_secagg_complaint_msg(msg, 7, 2, 1, h);
        sink += crypto_sign_detached(sig, NULL, msg, sizeof msg, sk);
    }
    double per_sign = (now() - t0) / 500;
    t0 = now();
    for (int i = 0; i < 500; i++) {
        fedreci_secagg_bundle_hash(h, 7, 1, 2, ct, cm);
        fedreci_secagg_complaint_msg(msg, 7, 2, 1, h);
        sink += crypto_sign_verify_detached(sig, msg, sizeof msg, pk);
    }
    double per_verify = (now() - t0) / 500;
    t0 = now();
    for (int i = 0; i < 2000; i++) {
        fedreci_secagg_share_commit(h, 7, 1, 2, 0, sh, op);
        fedreci_secagg_share_commit(h, 7, 1, 2, 1, sh, op);
        sh[0] ^= h[0];
    }
    double per_open = (now() - t0) / 2000;
    double per_complaint = per_sign + 2 * per_verify + 2 * per_open;
    /* the alternative not built: the share key agreement in ristretto255 (a
       Chaum-Pedersen proof needs it) instead of X25519 */
    uint8_t xs[32], xp[32], rs_[32], rp[32], out[32];
    randombytes_buf(xs, sizeof xs);
    crypto_core_ristretto255_scalar_random(rs_);
    sink += crypto_scalarmult_base(xp, xs) + crypto_scalarmult_ristretto255_base(rp, rs_);
    t0 = now();
    for (int i = 0; i < 2000; i++) {
        sink += crypto_scalarmult(out, xs, xp);
        xs[0] ^= out[0];
    }
    double ka_x25519 = (now() - t0) / 2000;
    t0 = now();
    for (int i = 0; i < 2000; i++) {
        sink += crypto_scalarmult_ristretto255(out, rs_, rp);
        rs_[0] ^= (uint8_t)(out[0] & 1);
    }
    double ka_rist = (now() - t0) / 2000;
    cpu_clock = 0;
    (void)sink;

    double old = n * old_r.client_total + old_r.server;
    double added = n * (new_r.cpl_client + c_wire + s_wire) + new_r.cpl_server;
    if (json) {
        printf("{\"bench\":\"secagg_complaints\",\"n\":%u,\"k\":%u,\"t\":%u,\"d\":%u,"
               "\"old_path_s\":%.4f,\"added_s\":%.6f,\"growth\":%.6f,"
               "\"resolve_client_s\":%.8f,\"wire_client_s\":%.8f,\"wire_server_s\":%.8f,"
               "\"state_server_s\":%.6f,\"mask_old_s\":%.6f,\"mask_new_s\":%.6f,"
               "\"per_complaint_s\":%.7f,\"ka_x25519_s\":%.7f,\"ka_ristretto255_s\":%.7f,"
               "\"complaints_bytes\":%zu,\"relay_bytes\":%zu,"
               "\"exact\":true}\n",
               n, k, t, d, old, added, added / old, new_r.cpl_client, c_wire, s_wire,
               new_r.cpl_server, old_r.client_mask, new_r.client_mask, per_complaint, ka_x25519,
               ka_rist, b_req, b_rep);
        return;
    }
    printf("\nComplaint step (issue 13, bad share bundles): n = %u, k = %u, t = %u, d = %u, two "
           "real rounds (sums exact), one without and one with the complaint step, nobody "
           "complaining; CPU time of this thread%s\n",
           n, k, t, d, quick ? " (--quick: reduced)" : "");
    printf("| item | per round (s) | share of old path |\n|---|---|---|\n");
    printf("| old path: n x client + server (round without the step) | %.3f | 100%% |\n", old);
    printf("| each member applies the outcome (resolve, %.2f us) | %.5f | %.3f%% |\n",
           new_r.cpl_client * 1e6, n * new_r.cpl_client, 100 * n * new_r.cpl_client / old);
    printf("| each member encodes and MACs its empty Complaints, decodes the relay (%.2f us) | "
           "%.5f | %.3f%% |\n",
           c_wire * 1e6, n * c_wire, 100 * n * c_wire / old);
    printf("| the coordinator decodes and verifies them, encodes the relays (%.2f us each) | "
           "%.5f | %.3f%% |\n",
           s_wire * 1e6, n * s_wire, 100 * n * s_wire / old);
    printf("| the coordinator's state machine: add_complaints, close, openings_for | %.5f | "
           "%.3f%% |\n",
           new_r.cpl_server, 100 * new_r.cpl_server / old);
    printf("| **all added** | **%.5f** | **%.3f%%** |\n", added, 100 * added / old);
    printf("masking (median per client, same two rounds): masked_input on the relay %.3f ms, "
           "receive + masked_input on the kept bundles %.3f ms (the bundles are decrypted once "
           "either way)\n",
           old_r.client_mask * 1e3, new_r.client_mask * 1e3);
    printf("per complaint (only when a bundle is bad): the complainer signs (%.1f us), the "
           "coordinator and the dealer verify (%.1f us each), the opening is checked twice "
           "(%.2f us each): %.1f us in all\n",
           per_sign * 1e6, per_verify * 1e6, per_open * 1e6, per_complaint * 1e6);
    printf("(not built) share key agreement in ristretto255 instead of X25519: %.1f us against "
           "%.1f us, k = %u per member: %.4f s per round, %.2f%% of the old path\n",
           ka_rist * 1e6, ka_x25519 * 1e6, k, n * k * (ka_rist - ka_x25519),
           100 * n * k * (ka_rist - ka_x25519) / old);
    printf("bytes per member and round without complaints: Complaints %zu B up (its MAC included), "
           "ComplaintRelay %zu B down\n",
           b_req, b_rep);
}

int fedrec_bench_secagg(int argc, char **argv)
{
    int quick = 0;
    const char *only = NULL;
    static const struct option lo[] = {
        {"json", no_argument, NULL, 'j'},
        {"quick", no_argument, NULL, 'q'},
        {"full", no_argument, NULL, 'f'},
        {"only", required_argument, NULL, 'o'},
        {"dropout", required_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static const char *const usage =
        "usage: fedrec-bench secagg [--json] [--quick] [--full] "
        "[--only client|server|classic|dp|checks|deviating|complaints] "
        "[--dropout F]\n";
    fedreci_opt_reset();
    int c;
    while ((c = getopt_long(argc, argv, ":", lo, NULL)) != -1) {
        if (c == 'j') {
            json = 1;
        } else if (c == 'q') {
            quick = 1;
        } else if (c == 'f') {
            full = 1;
        } else if (c == 'd') {
            if (fedreci_opt_double("--dropout", optarg, 0.0, 0.5, &checks_dropout))
                return bench_usage_error("secagg");
        } else if (c == 'o' && (!strcmp(optarg, "client") || !strcmp(optarg, "server") ||
                                !strcmp(optarg, "classic") || !strcmp(optarg, "dp") ||
                                !strcmp(optarg, "checks") || !strcmp(optarg, "deviating") ||
                                !strcmp(optarg, "complaints"))) {
            only = optarg;
        } else if (c == 'o') {
            fprintf(stderr,
                    "fedrec-bench secagg: --only: '%s' is not client, server, classic, dp, "
                    "checks, deviating or complaints\n",
                    optarg);
            return 2;
        } else if (c == 'h') {
            printf("%s", usage);
            return 0;
        } else {
            fputs(usage, stderr);
            return bench_getopt_error("secagg", c, argc, argv, lo);
        }
    }
    if (optind < argc)
        return bench_getopt_error("secagg", -1, argc, argv, lo);
    if (sodium_init() < 0)
        return 1;
    if (!json)
        printf("fedrec-bench secagg%s: SecAgg+ through the real client/server state machines, "
               "one thread\n",
               quick ? " --quick" : "");
    if (!only || !strcmp(only, "client"))
        bench_client(quick);
    if (!only || !strcmp(only, "server"))
        bench_server(quick);
    if (!only || !strcmp(only, "classic"))
        bench_classic(quick);
    if (!only || !strcmp(only, "dp"))
        bench_dp(quick);
    if (!only || !strcmp(only, "checks"))
        bench_checks(quick);
    if (!only || !strcmp(only, "deviating"))
        bench_deviating(quick);
    if (!only || !strcmp(only, "complaints"))
        bench_complaints(quick);
    return 0;
}
