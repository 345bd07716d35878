/* libFuzzer harness for the SecAgg server state machine (core/secagg) fed
 * arbitrary decoded messages, the way the coordinator engine feeds it: a
 * cohort of four (ids 1..4, classic SecAgg, t = 2, d = 5). Clients 1..3 are
 * honest (real core/secagg clients); every message of client 4, and any
 * number of extra messages claiming any sender (1..4, or 99 who is not in
 * the cohort), come from the input and pass through fedreci_wire_decode and
 * the same accessors as in the engine.
 *
 * Input: a sequence of chunks, each a 2-byte little-endian length L, then L
 * bytes: [sender index][an Envelope]. A chunk with L = 0 ends the current
 * stage (0 advertise, the seed step, 1 share keys, the complaints, the
 * openings, 2 masked input, the consistency step, 3 unmask); at each stage the honest clients'
 * messages go first, then the input's.
 *
 * libsodium's randombytes is replaced by a ChaCha20 stream restarted for
 * every input, so every run of an input is the same run.
 *
 * Checked: nothing crashes or leaks; a roster member's seed contribution
 * refused as not opening its commitment names it a culprit; if no message
 * from the input was
 * accepted, the round completes and the sum is exactly the honest clients'
 * quantized inputs; whenever the round completes, a client the server
 * names as a survivor did send an accepted masked input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "proto/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* ---- deterministic randombytes ------------------------------------------ */

static uint8_t rng_key[32];
static uint64_t rng_ctr;

static void rng_buf(void *const buf, const size_t n)
{
    uint8_t nonce[8];
    memcpy(nonce, &rng_ctr, 8);
    rng_ctr++;
    crypto_stream_chacha20(buf, n, nonce, rng_key);
}

static uint32_t rng_random(void)
{
    uint32_t v;
    rng_buf(&v, sizeof v);
    return v;
}

static const char *rng_name(void)
{
    return "fedrec-fuzz-deterministic";
}

static struct randombytes_implementation rng_impl = {rng_name, rng_random, NULL,
                                                     NULL,     rng_buf,    NULL};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    randombytes_set_implementation(&rng_impl);
    if (sodium_init() < 0)
        abort();
    return 0;
}

/* ---- the round -------------------------------------------------------------- */

#define N 4
#define DW 5

static const uint64_t IDS[N] = {1, 2, 3, 4};

typedef struct reader {
    const uint8_t *p;
    size_t n, off;
} reader;

/* Next chunk of the current stage: 1 with *sender, *env set; 0 at the end. */
static int next_chunk(reader *r, uint64_t *sender, fedreci_wire_env **env)
{
    for (;;) {
        if (r->n - r->off < 2)
            return 0;
        size_t len = (size_t)r->p[r->off] | (size_t)r->p[r->off + 1] << 8;
        r->off += 2;
        if (len == 0)
            return 0;
        if (len > r->n - r->off)
            len = r->n - r->off;
        const uint8_t *c = r->p + r->off;
        r->off += len;
        if (len < 1)
            continue;
        uint8_t s = c[0] % 5;
        *sender = s < N ? IDS[s] : 99;
        if (fedreci_wire_decode(c + 1, len - 1, 1u << 16, env) == FEDREC_OK)
            return 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    memset(rng_key, 0x42, sizeof rng_key);
    rng_ctr = 0;
    reader rd = {data, size, 0};
    fedreci_secagg_params p;
    memset(&p, 0, sizeof p);
    p.round_id = 7;
    p.n = N;
    p.k = N - 1;
    p.t = 2;
    p.d = DW;
    p.clip = 4;
    p.scale = 1024;
    p.max_weight = 1;
    p.seed_retries = 1; /* a missing contribution is retried once (protocol version 8) */
    uint8_t pk[N][32], sk[N][64];
    for (int i = 0; i < N; i++) {
        uint8_t seed[32] = {(uint8_t)IDS[i]};
        crypto_sign_seed_keypair(pk[i], sk[i], seed);
    }
    fedreci_secagg_server *srv = NULL;
    fedreci_secagg_client *cl[3] = {NULL, NULL, NULL};
    if (fedreci_secagg_server_create(&srv, &p, IDS, (const uint8_t(*)[32])pk) != FEDREC_OK)
        abort();
    int accepted = 0, alive[3] = {1, 1, 1};
    int masked_ok[N + 1] = {0};
    uint64_t sender;
    fedreci_wire_env *env;
    uint32_t honest_sum[DW] = {0};

    /* stage 0 */
    for (int i = 0; i < 3; i++) {
        fedreci_secagg_advert a;
        if (fedreci_secagg_client_create(&cl[i], &p, IDS[i], sk[i], NULL) ||
            fedreci_secagg_client_advertise(cl[i], &a) || fedreci_secagg_server_add_advert(srv, &a))
            abort();
    }
    while (next_chunk(&rd, &sender, &env)) {
        fedreci_secagg_advert a;
        if (fedreci_wire_get_advert(env, &a) == FEDREC_OK) {
            a.client_id = sender;
            accepted += fedreci_secagg_server_add_advert(srv, &a) == FEDREC_OK;
        }
        fedreci_wire_free(env);
    }
    const fedreci_secagg_advert *roster;
    size_t m;
    if (fedreci_secagg_server_close_advertise(srv, &roster, &m) != FEDREC_OK)
        goto out;

    /* the seed step */
    uint64_t rids[N];
    for (size_t i = 0; i < m && i < N; i++)
        rids[i] = roster[i].client_id;
    for (int i = 0; i < 3; i++) {
        uint8_t contribution[32];
        if (fedreci_secagg_client_reveal(cl[i], rids, m, fedreci_secagg_server_seed_digest(srv),
                                         contribution) != FEDREC_OK ||
            fedreci_secagg_server_add_reveal(srv, IDS[i], contribution) != FEDREC_OK)
            abort(); /* the roster is the honest clients' and the input's advert */
    }
    while (next_chunk(&rd, &sender, &env)) {
        const uint8_t *contribution;
        if (fedreci_wire_get_seed_reveal(env, &contribution) == FEDREC_OK) {
            fedrec_err re = fedreci_secagg_server_add_reveal(srv, sender, contribution);
            accepted += re == FEDREC_OK;
            /* a roster member's contribution refused as not opening its
               commitment names it a culprit */
            const uint64_t *cul = NULL;
            size_t nc = fedreci_secagg_server_culprits(srv, &cul);
            int named = 0;
            for (size_t i = 0; i < nc; i++)
                named |= cul[i] == sender;
            int member = 0;
            for (size_t i = 0; i < m && i < N; i++)
                member |= rids[i] == sender;
            if (re == FEDREC_ERR_PROTOCOL && member && !named)
                abort();
        }
        fedreci_wire_free(env);
    }
    /* client 4 missed the reveal (or was refused): the seed step is
       retried among the three honest clients (they must be able to) */
    const uint64_t *rids1;
    size_t m1;
    fedrec_err re = fedreci_secagg_server_retry_seed(srv, &rids1, &m1);
    if (re == FEDREC_OK) {
        if (m1 != 3 || fedreci_secagg_server_seed_attempt(srv) != 1)
            abort();
        for (int i = 0; i < 3; i++) {
            uint8_t contribution[32];
            if (fedreci_secagg_client_reveal_attempt(cl[i], 1, rids1, m1,
                                                     fedreci_secagg_server_seed_digest(srv),
                                                     contribution) != FEDREC_OK ||
                fedreci_secagg_server_add_reveal(srv, IDS[i], contribution) != FEDREC_OK)
                abort();
        }
        m = m1; /* roster points into srv: the three that remain */
    } else if (re != FEDREC_ERR_STAGE) {
        abort(); /* every member revealed: STAGE, nothing changed */
    }
    const uint8_t *contribs;
    if (fedreci_secagg_server_close_reveal(srv, &contribs) != FEDREC_OK)
        goto out;

    /* stage 1 */
    for (int i = 0; i < 3; i++) {
        const fedreci_secagg_ciphertext *cts;
        size_t n;
        if (fedreci_secagg_client_share_keys(cl[i], roster, m, contribs, &cts, &n) != FEDREC_OK ||
            fedreci_secagg_server_add_shares(srv, IDS[i], cts, n) != FEDREC_OK) {
            if (!accepted)
                abort();
            alive[i] = 0;
        }
    }
    while (next_chunk(&rd, &sender, &env)) {
        fedreci_secagg_ciphertext *cts;
        size_t n;
        if (fedreci_wire_get_ciphertexts(env, N, &cts, &n) == FEDREC_OK) {
            accepted += fedreci_secagg_server_add_shares(srv, sender, cts, n) == FEDREC_OK;
            free(cts);
        }
        fedreci_wire_free(env);
    }
    if (fedreci_secagg_server_close_share_keys(srv) != FEDREC_OK)
        goto out;

    /* the complaint step: the honest clients complain about bad bundles
       (lenient, as the session), the input's complaints, then the openings */
    for (int i = 0; i < 3; i++) {
        if (!alive[i])
            continue;
        const fedreci_secagg_ciphertext *in;
        const fedreci_secagg_complaint *cp = NULL;
        size_t n, ncp = 0;
        fedreci_secagg_client_set_lenient(cl[i], 1);
        if (fedreci_secagg_server_shares_for(srv, IDS[i], &in, &n) != FEDREC_OK ||
            fedreci_secagg_client_receive(cl[i], in, n, &cp, &ncp) != FEDREC_OK ||
            fedreci_secagg_server_add_complaints(srv, IDS[i], cp, ncp) != FEDREC_OK) {
            if (!accepted)
                abort();
            alive[i] = 0;
        }
        /* an honest client complains only when the input sent it garbage */
        if (ncp && !accepted)
            abort();
    }
    while (next_chunk(&rd, &sender, &env)) {
        fedreci_secagg_complaint *cp;
        size_t n;
        if (fedreci_wire_get_complaints(env, N, &cp, &n) == FEDREC_OK) {
            accepted += fedreci_secagg_server_add_complaints(srv, sender, cp, n) == FEDREC_OK;
            free(cp);
        }
        fedreci_wire_free(env);
    }
    for (int i = 0; i < 3 && fedreci_secagg_server_n_complaints(srv); i++) {
        if (!alive[i])
            continue;
        const fedreci_secagg_complaint *ag;
        const fedreci_secagg_opening *op;
        size_t nag, nop;
        if (fedreci_secagg_server_complaints_against(srv, IDS[i], &ag, &nag) != FEDREC_OK ||
            fedreci_secagg_client_answer(cl[i], ag, nag, &op, &nop) != FEDREC_OK ||
            fedreci_secagg_server_add_openings(srv, IDS[i], op, nop) != FEDREC_OK)
            abort(); /* an honest dealer's openings always open its commitments */
    }
    while (next_chunk(&rd, &sender, &env)) {
        fedreci_secagg_opening *op;
        size_t n;
        if (fedreci_wire_get_openings(env, N, &op, &n) == FEDREC_OK) {
            accepted += fedreci_secagg_server_add_openings(srv, sender, op, n) == FEDREC_OK;
            free(op);
        }
        fedreci_wire_free(env);
    }
    const uint64_t *ex;
    size_t nex;
    if (fedreci_secagg_server_close_complaints(srv, &ex, &nex) != FEDREC_OK)
        goto out;
    for (size_t i = 0; i < nex; i++)
        if (ex[i] < 4 && !accepted)
            abort(); /* an honest client is excluded only by the input's doing */
    for (int i = 0; i < 3; i++) {
        const fedreci_secagg_opening *op;
        size_t nop;
        if (!alive[i])
            continue;
        if (fedreci_secagg_server_openings_for(srv, IDS[i], &op, &nop) != FEDREC_OK ||
            fedreci_secagg_client_resolve(cl[i], ex, nex, op, nop) != FEDREC_OK) {
            if (!accepted)
                abort();
            alive[i] = 0;
        }
    }

    /* stage 2 */
    for (int i = 0; i < 3; i++) {
        if (!alive[i])
            continue;
        const fedreci_secagg_ciphertext *in;
        size_t n;
        const uint32_t *y;
        float x[DW - 1];
        for (int j = 0; j < DW - 1; j++)
            x[j] = (float)(i + 1) * 0.25f - (float)j;
        (void)in;
        (void)n;
        if (fedreci_secagg_client_masked_input(cl[i], NULL, 0, x, 1, &y, NULL) != FEDREC_OK ||
            fedreci_secagg_server_add_masked_input(srv, IDS[i], y, DW) != FEDREC_OK) {
            if (!accepted)
                abort();
            alive[i] = 0;
            continue;
        }
        masked_ok[i] = 1;
        const uint32_t *q = fedreci_secagg_client_quantized_input(cl[i]);
        for (int j = 0; j < DW; j++)
            honest_sum[j] += q[j];
    }
    while (next_chunk(&rd, &sender, &env)) {
        const uint32_t *y;
        if (fedreci_wire_get_masked(env, DW, &y) == FEDREC_OK &&
            fedreci_secagg_server_add_masked_input(srv, sender, y, DW) == FEDREC_OK) {
            accepted++;
            masked_ok[sender < N + 1 ? sender - 1 : N] = 1;
        }
        fedreci_wire_free(env);
    }
    const uint64_t *sv, *dr;
    size_t ns, nd;
    if (fedreci_secagg_server_close_masked_input(srv, &sv, &ns, &dr, &nd) != FEDREC_OK)
        goto out;
    for (size_t i = 0; i < ns; i++)
        if (sv[i] < 1 || sv[i] > N || !masked_ok[sv[i] - 1])
            abort();

    /* the consistency step */
    for (int i = 0; i < 3; i++) {
        if (!alive[i])
            continue;
        const fedreci_secagg_tag *tg;
        size_t n;
        if (fedreci_secagg_client_consistency(cl[i], sv, ns, dr, nd, &tg, &n) != FEDREC_OK ||
            fedreci_secagg_server_add_consistency(
                srv, IDS[i], tg, n, fedreci_secagg_client_endorsement(cl[i])) != FEDREC_OK) {
            if (!accepted)
                abort();
            alive[i] = 0;
        }
    }
    while (next_chunk(&rd, &sender, &env)) {
        fedreci_secagg_tag *tg;
        size_t n;
        const uint8_t *sig;
        const uint64_t *want, *peers;
        size_t n_want, n_peers;
        if (fedreci_wire_get_endorse(env, &sig, &want, &n_want) == FEDREC_OK &&
            fedreci_secagg_server_endorse_peers(srv, sender, &peers, &n_peers) == FEDREC_OK &&
            fedreci_wire_get_tags(env, sender, peers, n_peers, &tg, &n) == FEDREC_OK) {
            accepted += fedreci_secagg_server_add_consistency(srv, sender, tg, n, sig) == FEDREC_OK;
            free(tg);
        }
        fedreci_wire_free(env);
    }
    if (fedreci_secagg_server_close_consistency(srv) != FEDREC_OK)
        goto out;
    /* the endorsement signatures each member may ask for, fuzzed ids */
    for (int i = 0; i < 3; i++) {
        uint64_t want[4] = {IDS[(i + 1) % 3], IDS[(i + 2) % 3], (uint64_t)i * 977, IDS[i]};
        const fedreci_secagg_endorsement *es;
        size_t ne;
        if (fedreci_secagg_server_endorsements_for(srv, IDS[i], want, 4, &es, &ne) != FEDREC_OK)
            abort();
        for (size_t j = 0; j < ne; j++)
            if (es[j].from == want[2] || es[j].from == IDS[i])
                abort(); /* only neighbours that endorsed */
    }

    /* stage 3 */
    for (int i = 0; i < 3; i++) {
        if (!alive[i])
            continue;
        const fedreci_secagg_reveal *rv;
        size_t n;
        const fedreci_secagg_tag *tg;
        size_t nt;
        if (fedreci_secagg_server_tags_for(srv, IDS[i], &tg, &nt) != FEDREC_OK ||
            fedreci_secagg_client_unmask(cl[i], tg, nt, &rv, &n) != FEDREC_OK ||
            fedreci_secagg_server_add_unmask(srv, IDS[i], rv, n) != FEDREC_OK) {
            if (!accepted)
                abort();
        }
    }
    while (next_chunk(&rd, &sender, &env)) {
        fedreci_secagg_reveal *rv;
        size_t n;
        if (fedreci_wire_get_reveals(env, N, &rv, &n) == FEDREC_OK) {
            accepted += fedreci_secagg_server_add_unmask(srv, sender, rv, n) == FEDREC_OK;
            free(rv);
        }
        fedreci_wire_free(env);
    }
    uint32_t sum[DW];
    fedrec_err e = fedreci_secagg_server_finish(srv, sum, DW);
    if (!accepted && (e != FEDREC_OK || memcmp(sum, honest_sum, sizeof sum) != 0))
        abort();
out:
    if (!accepted && fedreci_secagg_server_stage(srv) == FEDRECI_SECAGG_ABORTED)
        abort(); /* three honest clients of four, t = 2: the round must complete */
    for (int i = 0; i < 3; i++)
        fedreci_secagg_client_destroy(cl[i]);
    fedreci_secagg_server_destroy(srv);
    sodium_memzero(sk, sizeof sk);
    return 0;
}
