/*
 * The client side of a SecAgg+ round (see secagg.h for the contract and
 * docs/design.md section 3 for the protocol).
 *
 * Every call checks its stage first and builds its results in temporaries;
 * the object changes only when the call succeeds, so a refused message leaves
 * the client exactly where it was.
 *
 * Secrets (identity key, rounding seed, the X25519 secret keys, the shared
 * scalars r_s and r_b, the derived seeds, AEAD and pair keys, the shares
 * received from neighbours, the quantized input and the reveals) live in
 * sodium_malloc memory (core/secagg/secmem.h) and are wiped on every path.
 */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/err.h"
#include "core/util.h"
#include "core/secagg/graph.h"
#include "core/secagg/kdf.h"
#include "core/secagg/prg.h"
#include "core/secagg/quantize.h"
#include "core/secagg/secagg.h"
#include "core/secagg/secmem.h"
#include "core/secagg/shamir.h"

#define SB FEDRECI_SCALAR_BYTES

typedef struct client_secrets {
    uint8_t identity_sk[FEDRECI_SECAGG_SIGN_SK_BYTES];
    uint8_t rounding[FEDRECI_SECAGG_SEED_BYTES]; /* stochastic rounding key */
    uint8_t r_s[SB];                             /* shared scalar behind s^SK */
    uint8_t s_sk[32];                            /* X25519 mask secret key */
    uint8_t c_sk[32];                            /* X25519 encryption secret key */
    uint8_t r_b[SB];                             /* shared scalar behind b */
    uint8_t b[32];                               /* self-mask PRG key */
} client_secrets;

struct fedreci_secagg_client {
    fedreci_secagg_params p;
    uint64_t id;
    fedreci_secagg_stage stage;
    client_secrets *sec;
    uint8_t identity_pk[FEDRECI_SECAGG_SIGN_PK_BYTES];
    uint8_t c_pk[32], s_pk[32];
    uint8_t binding[32]; /* fedreci_secagg_client_set_binding */
    const char *refusal; /* last FEDRECI_REFUSE_* (static string) or NULL */
    uint8_t contribution[FEDRECI_SECAGG_CONTRIB_BYTES]; /* the top of the graph seed
                                                           contribution chain: attempt
                                                           p.seed_retries's (kdf.h) */
    int fixed_contribution; /* derived from the rounding seed (simulations) */
    uint8_t seed_commit[32];

    /* after reveal */
    uint32_t attempt; /* the seed step attempt last revealed for */
    uint32_t m;
    uint64_t *roster_ids; /* m, sorted */
    uint8_t digest[32];   /* the coordinator's commitment to the roster's seed commitments */

    /* after share_keys */
    uint32_t me, deg;
    int seeded;         /* p.graph_seed is the derived seed */
    uint32_t *nbr;      /* deg member indices, sorted */
    uint64_t *nbr_ids;  /* deg ids, sorted (same order) */
    uint8_t *aead_keys; /* secure, deg x 32 */
    uint8_t *pair_keys; /* secure, deg x 32 */
    uint8_t *cons_keys; /* secure, deg x 32: consistency tag keys */
    uint8_t *ct_bytes;  /* deg x FEDRECI_SHARE_CT_BYTES */
    uint8_t *commits;   /* deg x FEDRECI_SECAGG_COMMIT_BYTES */
    fedreci_secagg_ciphertext *cts;
    uint8_t *nbr_idpk; /* deg x 32: the neighbours' identity keys (complaints) */
    uint8_t *dealt;    /* secure, deg x 128: the plaintext of each bundle dealt */

    /* complaint step */
    int received;                  /* receive ran: recv / have kept */
    int resolved;                  /* resolve ran */
    uint8_t *rcommit;              /* deg x COMMIT: commitments as received */
    fedreci_secagg_complaint *cpl; /* this client's complaints */
    size_t n_cpl;
    fedreci_secagg_opening *openings; /* secure, up to deg: what it opened */
    size_t n_openings;

    /* after masked_input */
    uint8_t *recv;    /* secure, deg x 128: b share || s^SK share || their openings */
    uint8_t *have;    /* deg: 0 no bundle, 1 its shares held, 2 bundle sent but bad
                         (lenient: masked with, its shares not held) */
    int lenient;      /* fedreci_secagg_client_set_lenient */
    uint32_t n_bad;   /* bad bundles ignored by the last masked_input */
    uint32_t *q;      /* secure, d words */
    uint32_t *masked; /* d words */

    /* after consistency */
    uint8_t req_hash[32];
    uint8_t *kind;            /* deg: 0 not named, 1 survivor (b share), 2 dropped (s^SK) */
    fedreci_secagg_tag *tags; /* up to deg, to the neighbours named survivors */
    size_t n_tags;
    uint8_t endorse_sig[FEDRECI_SECAGG_SIG_BYTES]; /* identity-key signature of the set */
    uint64_t *peer_ids; /* the neighbours named survivors, ascending (endorse_peers) */
    size_t n_peer_ids;

    /* after unmask */
    fedreci_secagg_reveal *reveals; /* secure, up to deg */
    size_t n_reveals;
};

static void *secure_alloc(size_t n)
{
    return fedreci_secmem_alloc(n);
}

static void secure_free(void *p)
{
    fedreci_secmem_free(p);
}

void fedreci_secagg_client_destroy(fedreci_secagg_client *c)
{
    if (!c)
        return;
    secure_free(c->sec);
    free(c->roster_ids);
    free(c->nbr);
    free(c->nbr_ids);
    secure_free(c->aead_keys);
    secure_free(c->pair_keys);
    secure_free(c->cons_keys);
    free(c->kind);
    free(c->tags);
    free(c->peer_ids);
    free(c->ct_bytes);
    free(c->commits);
    free(c->cts);
    free(c->nbr_idpk);
    secure_free(c->dealt);
    free(c->rcommit);
    free(c->cpl);
    secure_free(c->openings);
    secure_free(c->recv);
    free(c->have);
    secure_free(c->q);
    free(c->masked);
    secure_free(c->reveals);
    sodium_memzero(c, sizeof *c);
    free(c);
}

static fedrec_err client_create(fedreci_secagg_client **out, const fedreci_secagg_params *p,
                                uint64_t client_id,
                                const uint8_t identity_sk[FEDRECI_SECAGG_SIGN_SK_BYTES],
                                const uint8_t rounding_seed[FEDRECI_SECAGG_SEED_BYTES],
                                int buffered)
{
    if (!out || !identity_sk)
        return fedreci_error(FEDREC_ERR_INVALID, "secagg client create: NULL argument");
    fedrec_err e = fedreci_secagg_sodium_ready();
    if (e)
        return e;
    e = fedreci_secagg_params_check(p);
    if (e)
        return e;
    fedreci_secagg_client *c = calloc(1, sizeof *c);
    if (!c)
        return fedreci_error(FEDREC_ERR_NOMEM, "secagg client create");
    c->p = *p;
    c->id = client_id;
    c->stage = FEDRECI_SECAGG_ADVERTISE;
    c->sec = secure_alloc(sizeof *c->sec);
    if (buffered) {
        c->q = secure_alloc((size_t)p->d * sizeof *c->q);
        c->masked = malloc((size_t)p->d * sizeof *c->masked);
    }
    if (!c->sec || (buffered && (!c->q || !c->masked))) {
        fedreci_secagg_client_destroy(c);
        return fedreci_error(FEDREC_ERR_NOMEM, "secagg client create: d = %u words", p->d);
    }
    memset(c->sec, 0, sizeof *c->sec);
    /* Touch the output buffer now (q was filled when allocated), so the
     * page faults of first use fall on create, not on masked_input. */
    if (buffered)
        memset(c->masked, 0, (size_t)p->d * sizeof *c->masked);
    memcpy(c->sec->identity_sk, identity_sk, FEDRECI_SECAGG_SIGN_SK_BYTES);
    if (crypto_sign_ed25519_sk_to_pk(c->identity_pk, c->sec->identity_sk) != 0) {
        fedreci_secagg_client_destroy(c);
        return fedreci_error(FEDREC_ERR_CRYPTO, "secagg client create: bad identity key");
    }
    if (rounding_seed) {
        memcpy(c->sec->rounding, rounding_seed, FEDRECI_SECAGG_SEED_BYTES);
        /* a reproducible simulation also fixes the graph seed contribution
           (so the same run gets the same graph and the same byte counts) */
        uint8_t fixed[32];
        fedreci_secagg_kdf(fixed, FEDRECI_LABEL_SEED_COMMIT, rounding_seed, 32,
                           (const uint8_t *)"contribution", 12, p->round_id, client_id);
        memcpy(c->contribution, fixed, sizeof c->contribution);
        c->fixed_contribution = 1;
    } else {
        randombytes_buf(c->sec->rounding, FEDRECI_SECAGG_SEED_BYTES);
    }
    /* The rounding key is bound to the round and client. */
    fedreci_secagg_kdf(c->sec->rounding, FEDRECI_LABEL_ROUNDING, c->sec->rounding, 32, NULL, 0,
                       p->round_id, client_id);
    *out = c;
    return FEDREC_OK;
}

fedrec_err fedreci_secagg_client_create(fedreci_secagg_client **out, const fedreci_secagg_params *p,
                                        uint64_t client_id,
                                        const uint8_t identity_sk[FEDRECI_SECAGG_SIGN_SK_BYTES],
                                        const uint8_t rounding_seed[FEDRECI_SECAGG_SEED_BYTES])
{
    return client_create(out, p, client_id, identity_sk, rounding_seed, 1);
}

fedrec_err
fedreci_secagg_client_create_unbuffered(fedreci_secagg_client **out, const fedreci_secagg_params *p,
                                        uint64_t client_id,
                                        const uint8_t identity_sk[FEDRECI_SECAGG_SIGN_SK_BYTES],
                                        const uint8_t rounding_seed[FEDRECI_SECAGG_SEED_BYTES])
{
    return client_create(out, p, client_id, identity_sk, rounding_seed, 0);
}

fedreci_secagg_stage fedreci_secagg_client_stage(const fedreci_secagg_client *c)
{
    return c->stage;
}

static fedrec_err wrong_stage(const fedreci_secagg_client *c, const char *call)
{
    return fedreci_error(FEDREC_ERR_STAGE, "secagg client %llu: %s in stage %d",
                         (unsigned long long)c->id, call, (int)c->stage);
}

fedrec_err fedreci_secagg_client_set_binding(fedreci_secagg_client *c, const uint8_t binding[32])
{
    if (!c || !binding)
        return fedreci_error(FEDREC_ERR_INVALID, "secagg client set_binding: NULL argument");
    if (c->stage != FEDRECI_SECAGG_ADVERTISE)
        return wrong_stage(c, "set_binding");
    memcpy(c->binding, binding, 32);
    return FEDREC_OK;
}

const char *fedreci_secagg_client_refusal(const fedreci_secagg_client *c)
{
    return c ? c->refusal : NULL;
}

void fedreci_secagg_client_note_refusal(fedreci_secagg_client *c, const char *name)
{
    if (c)
        c->refusal = name;
}

/* Records refusal `name` and returns e (a refused call changes nothing else). */
static fedrec_err refuse(fedreci_secagg_client *c, const char *name, fedrec_err e)
{
    c->refusal = name;
    return e;
}

fedrec_err fedreci_secagg_client_advertise(fedreci_secagg_client *c, fedreci_secagg_advert *advert)
{
    if (!c || !advert)
        return fedreci_error(FEDREC_ERR_INVALID, "secagg client advertise: NULL argument");
    if (c->stage != FEDRECI_SECAGG_ADVERTISE)
        return wrong_stage(c, "advertise");
    client_secrets *s = c->sec;
    uint8_t c_pk[32], s_pk[32];
    crypto_core_ristretto255_scalar_random(s->r_s);
    fedreci_secagg_seed_from_scalar(s->s_sk, FEDRECI_LABEL_SK, s->r_s, c->p.round_id, c->id);
    randombytes_buf(s->c_sk, sizeof s->c_sk);
    if (crypto_scalarmult_base(s_pk, s->s_sk) != 0 || crypto_scalarmult_base(c_pk, s->c_sk) != 0)
        return fedreci_error(FEDREC_ERR_CRYPTO, "secagg client advertise: X25519 key pair");
    fedreci_secagg_advert a;
    memset(&a, 0, sizeof a);
    a.client_id = c->id;
    memcpy(a.identity_pk, c->identity_pk, sizeof a.identity_pk);
    memcpy(a.c_pk, c_pk, 32);
    memcpy(a.s_pk, s_pk, 32);
    memcpy(a.binding, c->binding, 32);
    /* the graph seed contribution: committed now, revealed once the roster
       and the coordinator's digest of all commitments are fixed */
    uint8_t contribution[FEDRECI_SECAGG_CONTRIB_BYTES], commit[32];
    if (c->fixed_contribution)
        memcpy(contribution, c->contribution, sizeof contribution);
    else
        randombytes_buf(contribution, sizeof contribution);
    /* the chain's top is attempt R's contribution; the commitment is to
       attempt 0's, R links down (kdf.h fedreci_secagg_seed_link) */
    fedreci_secagg_seed_commit_at(commit, c->p.round_id, c->id, c->p.seed_retries, contribution);
    memcpy(a.seed_commit, commit, 32);
    uint8_t msg[FEDRECI_ADVERT_MSG_BYTES];
    fedreci_secagg_advert_msg(msg, c->p.round_id, c->id, c_pk, s_pk, c->binding, commit);
    if (crypto_sign_detached(a.sig, NULL, msg, sizeof msg, s->identity_sk) != 0)
        return fedreci_error(FEDREC_ERR_CRYPTO, "secagg client advertise: signing failed");
    memcpy(c->c_pk, c_pk, 32);
    memcpy(c->s_pk, s_pk, 32);
    memcpy(c->contribution, contribution, sizeof c->contribution);
    memcpy(c->seed_commit, commit, 32);
    *advert = a;
    c->stage = FEDRECI_SECAGG_SEED;
    return FEDREC_OK;
}

/* This client's contribution for seed step attempt a: its chain's top
 * (attempt p.seed_retries) followed down (kdf.h fedreci_secagg_seed_link). */
static void contribution_at(const fedreci_secagg_client *c, uint32_t a, uint8_t out[16])
{
    memcpy(out, c->contribution, FEDRECI_SECAGG_CONTRIB_BYTES);
    for (uint32_t j = c->p.seed_retries; j > a; j--)
        fedreci_secagg_seed_link(out, c->p.round_id, c->id, j, out);
}

/* The roster of a seed step attempt: m ids, 2 <= m <= max_m, strictly
 * ascending, this client among them (refusals roster_invalid,
 * roster_missing_self); when prev, each one a member of the previous
 * attempt's roster (seed_retry_limit). On success the roster and the
 * digest are kept. */
static fedrec_err take_roster(fedreci_secagg_client *c, const uint64_t *member_ids, size_t m,
                              size_t max_m, int prev, const uint8_t digest[32])
{
    if (m < 2 || m > max_m)
        return refuse(c, prev && m >= c->m ? FEDRECI_REFUSE_SEED_RETRY : FEDRECI_REFUSE_ROSTER,
                      fedreci_error(FEDREC_ERR_PROTOCOL,
                                    "secagg client %llu: roster of %zu clients, need 2..%zu%s",
                                    (unsigned long long)c->id, m, max_m,
                                    prev ? " (a retry leaves members of the previous attempt out, "
                                           "it never admits anyone)"
                                         : ""));
    for (size_t i = 1; i < m; i++)
        if (member_ids[i] <= member_ids[i - 1])
            return refuse(c, FEDRECI_REFUSE_ROSTER,
                          fedreci_error(FEDREC_ERR_PROTOCOL,
                                        "secagg client %llu: roster not sorted by id or has a "
                                        "duplicate at entry %zu (id %llu)",
                                        (unsigned long long)c->id, i,
                                        (unsigned long long)member_ids[i]));
    if (fedreci_find_u64(member_ids, m, c->id) < 0)
        return refuse(c, FEDRECI_REFUSE_ROSTER_SELF,
                      fedreci_error(FEDREC_ERR_PROTOCOL,
                                    "secagg client %llu: the roster does not list this client",
                                    (unsigned long long)c->id));
    for (size_t i = 0; prev && i < m; i++)
        if (fedreci_find_u64(c->roster_ids, c->m, member_ids[i]) < 0)
            return refuse(c, FEDRECI_REFUSE_SEED_RETRY,
                          fedreci_error(FEDREC_ERR_PROTOCOL,
                                        "secagg client %llu: retry roster lists %llu, not a "
                                        "member of the previous attempt",
                                        (unsigned long long)c->id,
                                        (unsigned long long)member_ids[i]));
    uint64_t *ids = malloc(m * sizeof *ids);
    if (!ids)
        return fedreci_error(FEDREC_ERR_NOMEM, "secagg client reveal: roster of %zu", m);
    memcpy(ids, member_ids, m * sizeof *ids);
    free(c->roster_ids);
    c->roster_ids = ids;
    c->m = (uint32_t)m;
    memcpy(c->digest, digest, 32);
    return FEDREC_OK;
}

fedrec_err fedreci_secagg_client_reveal(fedreci_secagg_client *c, const uint64_t *member_ids,
                                        size_t m, const uint8_t digest[32],
                                        uint8_t contribution[16])
{
    if (!c || (m && !member_ids) || !digest || !contribution)
        return fedreci_error(FEDREC_ERR_INVALID, "secagg client reveal: NULL argument");
    if (c->stage != FEDRECI_SECAGG_SEED)
        return wrong_stage(c, "reveal");
    fedrec_err e = take_roster(c, member_ids, m, c->p.n, 0, digest);
    if (e)
        return e;
    contribution_at(c, 0, contribution);
    c->attempt = 0;
    c->stage = FEDRECI_SECAGG_SHARE_KEYS;
    return FEDREC_OK;
}

fedrec_err fedreci_secagg_client_reveal_attempt(fedreci_secagg_client *c, uint32_t attempt,
                                                const uint64_t *member_ids, size_t m,
                                                const uint8_t digest[32], uint8_t contribution[16])
{
    if (!c || (m && !member_ids) || !digest || !contribution)
        return fedreci_error(FEDREC_ERR_INVALID, "secagg client reveal: NULL argument");
    if (attempt == 0)
        return fedreci_secagg_client_reveal(c, member_ids, m, digest, contribution);
    if (c->stage != FEDRECI_SECAGG_SHARE_KEYS || c->seeded)
        return wrong_stage(c, "reveal (a seed step retry)");
    if (attempt != c->attempt + 1 || attempt > c->p.seed_retries)
        return refuse(c, FEDRECI_REFUSE_SEED_RETRY,
                      fedreci_error(FEDREC_ERR_PROTOCOL,
                                    "secagg client %llu: seed step attempt %u after attempt %u; "
                                    "the round allows %u retries (each would give the "
                                    "coordinator another graph seed to choose from)",
                                    (unsigned long long)c->id, attempt, c->attempt,
                                    c->p.seed_retries));
    /* only members of the previous attempt, and fewer */
    fedrec_err e = take_roster(c, member_ids, m, (size_t)c->m - 1, 1, digest);
    if (e)
        return e;
    c->attempt = attempt;
    contribution_at(c, attempt, contribution);
    return FEDREC_OK;
}

uint32_t fedreci_secagg_client_seed_attempt(const fedreci_secagg_client *c)
{
    return c ? c->attempt : 0;
}

const uint8_t *fedreci_secagg_client_graph_seed(const fedreci_secagg_client *c)
{
    return c && c->seeded ? c->p.graph_seed : NULL;
}

/* Temporaries of share_keys, committed together or freed together. */
typedef struct share_tmp {
    uint32_t *nbr;
    uint64_t *nbr_ids;
    uint32_t *xs;
    uint8_t *aead_keys, *pair_keys, *cons_keys, *ys, *plain, *commits_seed;
    uint8_t *ct_bytes;
    uint8_t *commits;
    fedreci_secagg_ciphertext *cts;
    uint8_t *nbr_idpk, *dealt;
    client_secrets *sec; /* r_b and b for the new state */
} share_tmp;

static void share_tmp_free(share_tmp *t)
{
    free(t->nbr);
    free(t->commits_seed);
    secure_free(t->cons_keys);
    free(t->nbr_ids);
    free(t->xs);
    secure_free(t->aead_keys);
    secure_free(t->pair_keys);
    secure_free(t->ys);
    secure_free(t->plain);
    free(t->ct_bytes);
    free(t->commits);
    free(t->cts);
    free(t->nbr_idpk);
    secure_free(t->dealt);
    secure_free(t->sec);
    memset(t, 0, sizeof *t);
}

fedrec_err fedreci_secagg_client_share_keys(fedreci_secagg_client *c,
                                            const fedreci_secagg_advert *roster, size_t m,
                                            const uint8_t *contributions,
                                            const fedreci_secagg_ciphertext **cts, size_t *n_cts)
{
    return fedreci_secagg_client_share_keys_missing(c, roster, m, contributions, NULL, cts, n_cts);
}

fedrec_err fedreci_secagg_client_share_keys_missing(fedreci_secagg_client *c,
                                                    const fedreci_secagg_advert *roster, size_t m,
                                                    const uint8_t *contributions,
                                                    const uint8_t *missing,
                                                    const fedreci_secagg_ciphertext **cts,
                                                    size_t *n_cts)
{
    if (!c || !roster || !contributions || !cts || !n_cts)
        return fedreci_error(FEDREC_ERR_INVALID, "secagg client share_keys: NULL argument");
    if (c->stage != FEDRECI_SECAGG_SHARE_KEYS)
        return wrong_stage(c, "share_keys");
    if (m != c->m)
        return refuse(c, FEDRECI_REFUSE_ROSTER,
                      fedreci_error(FEDREC_ERR_PROTOCOL,
                                    "secagg client %llu: roster of %zu clients, the seed stage "
                                    "named %u",
                                    (unsigned long long)c->id, m, c->m));
    for (size_t i = 0; i < m; i++)
        if (roster[i].client_id != c->roster_ids[i])
            return refuse(c, FEDRECI_REFUSE_ROSTER,
                          fedreci_error(FEDREC_ERR_PROTOCOL,
                                        "secagg client %llu: roster entry %zu (id %llu) is not "
                                        "the member the seed stage named",
                                        (unsigned long long)c->id, i,
                                        (unsigned long long)roster[i].client_id));
    fedreci_secagg_params p_local = c->p;
    const fedreci_secagg_params *p = &p_local;
    share_tmp t;
    memset(&t, 0, sizeof t);
    fedreci_graph g;
    memset(&g, 0, sizeof g);
    fedrec_err e = FEDREC_OK;

    long me = fedreci_find_u64(c->roster_ids, m, c->id);
    if (me < 0 || memcmp(roster[me].c_pk, c->c_pk, 32) || memcmp(roster[me].s_pk, c->s_pk, 32)) {
        c->refusal = FEDRECI_REFUSE_ROSTER_SELF;
        e = fedreci_error(FEDREC_ERR_PROTOCOL,
                          "secagg client %llu: roster lacks this client or its keys",
                          (unsigned long long)c->id);
        goto out;
    }
    /* The graph seed: the revealed contributions must open the digest the
       coordinator committed to before any was revealed, and ours must be
       ours; then nobody chose the seed (kdf.h fedreci_secagg_graph_seed). */
    enum { SLOT = FEDRECI_SECAGG_SEED_SLOT_BYTES };
    t.commits_seed = malloc(m * 32);
    if (!t.commits_seed) {
        e = fedreci_error(FEDREC_ERR_NOMEM, "secagg client share_keys: roster of %zu", m);
        goto out;
    }
    size_t n_missing = 0;
    for (size_t i = 0; i < m; i++) {
        if (missing && missing[i]) {
            /* a member that did not reveal: its commitment stands in */
            memcpy(t.commits_seed + 32 * i, contributions + SLOT * i, 32);
            n_missing++;
        } else {
            fedreci_secagg_seed_commit_at(t.commits_seed + 32 * i, p->round_id, c->roster_ids[i],
                                          c->attempt, contributions + SLOT * i);
        }
    }
    {
        uint8_t dg[32], own[FEDRECI_SECAGG_CONTRIB_BYTES];
        fedreci_secagg_seed_digest(dg, p->round_id, c->attempt, c->roster_ids, t.commits_seed, m);
        contribution_at(c, c->attempt, own);
        if (n_missing > FEDRECI_SECAGG_SEED_MISSING_MAX || (missing && missing[me]) ||
            sodium_memcmp(contributions + SLOT * (size_t)me, own, sizeof own) != 0 ||
            sodium_memcmp(dg, c->digest, 32) != 0) {
            c->refusal = FEDRECI_REFUSE_SEED;
            e = fedreci_error(FEDREC_ERR_PROTOCOL,
                              "secagg client %llu: the relayed seed contributions do not open "
                              "the digest of the roster, this client's is not its own, or %zu "
                              "members are said not to have revealed (at most %d may)",
                              (unsigned long long)c->id, n_missing,
                              FEDRECI_SECAGG_SEED_MISSING_MAX);
            goto out;
        }
        fedreci_secagg_graph_seed(p_local.graph_seed, c->digest, contributions, missing, m);
    }
    e = fedreci_graph_build(&g, p, (uint32_t)m);
    if (e)
        goto out;
    uint32_t deg = g.degree;
    if (deg < p->t) {
        c->refusal = FEDRECI_REFUSE_ROSTER;
        e = fedreci_error(FEDREC_ERR_PROTOCOL,
                          "secagg client %llu: roster of %zu gives %u neighbours, fewer than the "
                          "threshold t = %u",
                          (unsigned long long)c->id, m, deg, p->t);
        goto out;
    }
    t.nbr = malloc((size_t)deg * sizeof *t.nbr);
    t.nbr_ids = malloc((size_t)deg * sizeof *t.nbr_ids);
    t.xs = malloc((size_t)deg * sizeof *t.xs);
    t.aead_keys = secure_alloc((size_t)deg * 32);
    t.pair_keys = secure_alloc((size_t)deg * 32);
    t.cons_keys = secure_alloc((size_t)deg * 32);
    t.ys = secure_alloc((size_t)deg * 2 * SB);
    t.plain = secure_alloc(FEDRECI_SHARE_PLAIN_BYTES);
    t.ct_bytes = malloc((size_t)deg * FEDRECI_SHARE_CT_BYTES);
    t.commits = malloc((size_t)deg * FEDRECI_SECAGG_COMMIT_BYTES);
    t.cts = malloc((size_t)deg * sizeof *t.cts);
    t.sec = secure_alloc(sizeof *t.sec);
    t.nbr_idpk = malloc((size_t)deg * 32);
    t.dealt = secure_alloc((size_t)deg * FEDRECI_SHARE_PLAIN_BYTES);
    if (!t.nbr || !t.nbr_ids || !t.xs || !t.aead_keys || !t.pair_keys || !t.cons_keys || !t.ys ||
        !t.plain || !t.ct_bytes || !t.commits || !t.cts || !t.sec || !t.nbr_idpk || !t.dealt) {
        e = fedreci_error(FEDREC_ERR_NOMEM, "secagg client share_keys: %u neighbours", deg);
        goto out;
    }
    fedreci_graph_neighbors(&g, (uint32_t)me, t.nbr);
    for (uint32_t j = 0; j < deg; j++) {
        const fedreci_secagg_advert *a = &roster[t.nbr[j]];
        uint8_t msg[FEDRECI_ADVERT_MSG_BYTES];
        t.nbr_ids[j] = a->client_id;
        memcpy(t.nbr_idpk + (size_t)j * 32, a->identity_pk, 32);
        t.xs[j] = t.nbr[j] + 1; /* share index: 1-based roster position */
        /* its contribution must open the commitment it signed: compared
           when the advert carries the commitment (a relay does not: the
           commitment is derived from the contribution, and the signature
           over it fails instead) */
        static const uint8_t none[32];
        const uint8_t *commit = t.commits_seed + 32 * (size_t)t.nbr[j];
        if (sodium_memcmp(a->seed_commit, none, 32) != 0 &&
            sodium_memcmp(a->seed_commit, commit, 32) != 0) {
            c->refusal = FEDRECI_REFUSE_SEED;
            e = fedreci_error(FEDREC_ERR_PROTOCOL,
                              "secagg client %llu: the seed contribution relayed for neighbour "
                              "%llu does not open the commitment it signed",
                              (unsigned long long)c->id, (unsigned long long)a->client_id);
            goto out;
        }
        fedreci_secagg_advert_msg(msg, p->round_id, a->client_id, a->c_pk, a->s_pk, a->binding,
                                  commit);
        if (crypto_sign_verify_detached(a->sig, msg, sizeof msg, a->identity_pk) != 0) {
            c->refusal = FEDRECI_REFUSE_ADVERT_SIG;
            e = fedreci_error(FEDREC_ERR_SIGNATURE,
                              "secagg client %llu: advert of neighbour %llu has a bad signature "
                              "(over its keys, binding and the commitment to its relayed seed "
                              "contribution)",
                              (unsigned long long)c->id, (unsigned long long)a->client_id);
            goto out;
        }
        /* model and parameter binding: a neighbour given another model or
           other parameters (a model-inconsistency attack against one of
           us) ends the round before any share is dealt */
        if (sodium_memcmp(a->binding, c->binding, 32) != 0) {
            c->refusal = FEDRECI_REFUSE_BINDING;
            e = fedreci_error(FEDREC_ERR_PROTOCOL,
                              "secagg client %llu: neighbour %llu signed another model or other "
                              "round parameters than this client received",
                              (unsigned long long)c->id, (unsigned long long)a->client_id);
            goto out;
        }
        uint8_t ka[32];
        e = fedreci_secagg_ka(ka, c->sec->c_sk, a->c_pk);
        if (!e) {
            fedreci_secagg_pair_derive(t.aead_keys + (size_t)j * 32, FEDRECI_LABEL_AEAD, ka,
                                       p->round_id, c->id, a->client_id);
            fedreci_secagg_pair_derive(t.cons_keys + (size_t)j * 32, FEDRECI_LABEL_CONSIST, ka,
                                       p->round_id, c->id, a->client_id);
            e = fedreci_secagg_ka(ka, c->sec->s_sk, a->s_pk);
        }
        if (!e)
            fedreci_secagg_pair_derive(t.pair_keys + (size_t)j * 32, FEDRECI_LABEL_PAIR, ka,
                                       p->round_id, c->id, a->client_id);
        sodium_memzero(ka, sizeof ka);
        if (e) {
            e = fedreci_error(FEDREC_ERR_CRYPTO,
                              "secagg client %llu: key agreement with neighbour %llu failed",
                              (unsigned long long)c->id, (unsigned long long)a->client_id);
            goto out;
        }
    }
    /* The self-mask seed and the shares of r_s and r_b. */
    memcpy(t.sec, c->sec, sizeof *t.sec);
    crypto_core_ristretto255_scalar_random(t.sec->r_b);
    fedreci_secagg_seed_from_scalar(t.sec->b, FEDRECI_LABEL_SELF, t.sec->r_b, p->round_id, c->id);
    e = fedreci_shamir_create(t.sec->r_b, p->t, t.xs, deg, t.ys);
    if (!e)
        e = fedreci_shamir_create(t.sec->r_s, p->t, t.xs, deg, t.ys + (size_t)deg * SB);
    if (e)
        goto out;
    uint8_t c_b[32];
    fedreci_secagg_b_commit(c_b, p->round_id, c->id, t.sec->b);
    for (uint32_t j = 0; j < deg; j++) {
        uint8_t ad[FEDRECI_SHARE_AD_BYTES];
        uint8_t *ct = t.ct_bytes + (size_t)j * FEDRECI_SHARE_CT_BYTES;
        uint8_t *cm = t.commits + (size_t)j * FEDRECI_SECAGG_COMMIT_BYTES;
        memcpy(t.plain, t.ys + (size_t)j * SB, SB);
        memcpy(t.plain + SB, t.ys + ((size_t)deg + j) * SB, SB);
        /* hash commitments to both shares, opened inside the bundle */
        randombytes_buf(t.plain + 2 * SB, 2 * 32);
        fedreci_secagg_share_commit(cm, p->round_id, c->id, t.nbr_ids[j], FEDRECI_SECAGG_SHARE_B,
                                    t.plain, t.plain + 2 * SB);
        fedreci_secagg_share_commit(cm + 32, p->round_id, c->id, t.nbr_ids[j],
                                    FEDRECI_SECAGG_SHARE_SK, t.plain + SB, t.plain + 2 * SB + 32);
        memcpy(cm + 64, c_b, 32);
        memcpy(t.dealt + (size_t)j * FEDRECI_SHARE_PLAIN_BYTES, t.plain, FEDRECI_SHARE_PLAIN_BYTES);
        fedreci_secagg_share_ad(ad, p->round_id, c->id, t.nbr_ids[j]);
        randombytes_buf(ct, 24);
        crypto_aead_xchacha20poly1305_ietf_encrypt(ct + 24, NULL, t.plain,
                                                   FEDRECI_SHARE_PLAIN_BYTES, ad, sizeof ad, NULL,
                                                   ct, t.aead_keys + (size_t)j * 32);
        t.cts[j].from = c->id;
        t.cts[j].to = t.nbr_ids[j];
        t.cts[j].bytes = ct;
        t.cts[j].len = FEDRECI_SHARE_CT_BYTES;
        t.cts[j].commit = cm;
    }
    /* Commit. */
    secure_free(c->sec);
    c->sec = t.sec;
    t.sec = NULL;
    c->me = (uint32_t)me;
    c->deg = deg;
    c->p = p_local; /* the derived graph seed */
    c->seeded = 1;
    c->nbr = t.nbr;
    c->nbr_ids = t.nbr_ids;
    c->aead_keys = t.aead_keys;
    c->pair_keys = t.pair_keys;
    c->cons_keys = t.cons_keys;
    t.cons_keys = NULL;
    c->ct_bytes = t.ct_bytes;
    c->commits = t.commits;
    c->cts = t.cts;
    free(c->nbr_idpk);
    secure_free(c->dealt);
    c->nbr_idpk = t.nbr_idpk;
    c->dealt = t.dealt;
    t.nbr_idpk = t.dealt = NULL;
    t.nbr = NULL;
    t.nbr_ids = NULL;
    t.aead_keys = t.pair_keys = t.ct_bytes = t.commits = NULL;
    t.cts = NULL;
    c->stage = FEDRECI_SECAGG_MASKED_INPUT;
    *cts = c->cts;
    *n_cts = deg;
out:
    share_tmp_free(&t);
    fedreci_graph_free(&g);
    return e;
}

/* Decrypts and checks the bundles relayed to c (masked_input's checks):
 * *recv_out (secure, deg x 128) gets the plaintexts, *have_out (deg) 0 no
 * bundle / 1 held / 2 bad (lenient), rcommit (deg x COMMIT, optional) the
 * commitments as received, rhash (deg x 32, optional) the bundle hashes of
 * the bad ones. */
static fedrec_err open_bundles(fedreci_secagg_client *c, const fedreci_secagg_ciphertext *in,
                               size_t n_in, uint8_t **recv_out, uint8_t **have_out,
                               uint8_t *rcommit, uint8_t *rhash, uint32_t *n_bad_out)
{
    const fedreci_secagg_params *p = &c->p;
    uint32_t deg = c->deg;
    if (n_in < p->t)
        return fedreci_error(FEDREC_ERR_PROTOCOL,
                             "secagg client %llu: shares from %zu neighbours, fewer than t = %u",
                             (unsigned long long)c->id, n_in, p->t);
    if (n_in > deg)
        return refuse(c, FEDRECI_REFUSE_RELAY,
                      fedreci_error(FEDREC_ERR_PROTOCOL,
                                    "secagg client %llu: %zu share bundles for %u neighbours",
                                    (unsigned long long)c->id, n_in, deg));
    fedrec_err e = FEDREC_OK;
    uint8_t *recv = secure_alloc((size_t)deg * FEDRECI_SHARE_PLAIN_BYTES);
    uint8_t *have = calloc(deg, 1);
    if (!recv || !have) {
        e = fedreci_error(FEDREC_ERR_NOMEM, "secagg client masked_input: %u neighbours", deg);
        goto out;
    }
    uint32_t n_bad = 0;
    for (size_t i = 0; i < n_in; i++) {
        const fedreci_secagg_ciphertext *ct = &in[i];
        long j = fedreci_find_u64(c->nbr_ids, deg, ct->from);
        if (ct->to != c->id || j < 0) {
            c->refusal = FEDRECI_REFUSE_RELAY;
            e = fedreci_error(FEDREC_ERR_PROTOCOL,
                              "secagg client %llu: share bundle from %llu to %llu is not from a "
                              "neighbour to this client",
                              (unsigned long long)c->id, (unsigned long long)ct->from,
                              (unsigned long long)ct->to);
            goto out;
        }
        if (have[j]) {
            c->refusal = FEDRECI_REFUSE_RELAY;
            e = fedreci_error(FEDREC_ERR_DUPLICATE,
                              "secagg client %llu: two share bundles from %llu",
                              (unsigned long long)c->id, (unsigned long long)ct->from);
            goto out;
        }
        uint8_t ad[FEDRECI_SHARE_AD_BYTES];
        fedreci_secagg_share_ad(ad, p->round_id, ct->from, c->id);
        uint8_t *slot = recv + (size_t)j * FEDRECI_SHARE_PLAIN_BYTES;
        int well_formed = ct->bytes && ct->len == FEDRECI_SHARE_CT_BYTES && ct->commit;
        if (rcommit && ct->commit)
            memcpy(rcommit + (size_t)j * FEDRECI_SECAGG_COMMIT_BYTES, ct->commit,
                   FEDRECI_SECAGG_COMMIT_BYTES);
        if (!ct->bytes || ct->len != FEDRECI_SHARE_CT_BYTES ||
            crypto_aead_xchacha20poly1305_ietf_decrypt(
                slot, NULL, NULL, ct->bytes + 24, FEDRECI_SHARE_CT_BYTES - 24, ad, sizeof ad,
                ct->bytes, c->aead_keys + (size_t)j * 32) != 0) {
            if (c->lenient) {
                /* the sender did send a bundle: mask with it (its pair key
                   comes from its signed advert), hold none of its shares */
                sodium_memzero(slot, FEDRECI_SHARE_PLAIN_BYTES);
                have[j] = well_formed ? 2 : 3;
                n_bad++;
                if (rhash && well_formed)
                    fedreci_secagg_bundle_hash(rhash + (size_t)j * 32, p->round_id, ct->from, c->id,
                                               ct->bytes, ct->commit);
                continue;
            }
            e = fedreci_error(FEDREC_ERR_CRYPTO,
                              "secagg client %llu: share bundle from %llu fails authentication "
                              "(wrong round, sender, receiver or corrupted)",
                              (unsigned long long)c->id, (unsigned long long)ct->from);
            goto out;
        }
        const uint8_t *pl = slot;
        int canonical = fedreci_scalar_is_canonical(pl) && fedreci_scalar_is_canonical(pl + SB);
        /* the shares must open the dealer's public commitments, which the
           coordinator checks every revealed share against */
        uint8_t hb[32], hs[32];
        fedreci_secagg_share_commit(hb, p->round_id, ct->from, c->id, FEDRECI_SECAGG_SHARE_B, pl,
                                    pl + 2 * SB);
        fedreci_secagg_share_commit(hs, p->round_id, ct->from, c->id, FEDRECI_SECAGG_SHARE_SK,
                                    pl + SB, pl + 2 * SB + 32);
        int opens = ct->commit && sodium_memcmp(hb, ct->commit, 32) == 0 &&
                    sodium_memcmp(hs, ct->commit + 32, 32) == 0;
        if (c->lenient && (!canonical || !opens)) {
            sodium_memzero(slot, FEDRECI_SHARE_PLAIN_BYTES);
            have[j] = well_formed ? 2 : 3;
            n_bad++;
            if (rhash && well_formed)
                fedreci_secagg_bundle_hash(rhash + (size_t)j * 32, p->round_id, ct->from, c->id,
                                           ct->bytes, ct->commit);
            continue;
        }
        if (!canonical) {
            e = fedreci_error(FEDREC_ERR_PROTOCOL,
                              "secagg client %llu: share from %llu is not a canonical scalar",
                              (unsigned long long)c->id, (unsigned long long)ct->from);
            goto out;
        }
        if (!opens) {
            e = fedreci_error(FEDREC_ERR_CRYPTO,
                              "secagg client %llu: share bundle from %llu does not match the "
                              "sender's commitments",
                              (unsigned long long)c->id, (unsigned long long)ct->from);
            goto out;
        }
        have[j] = 1;
    }
    *recv_out = recv;
    *have_out = have;
    *n_bad_out = n_bad;
    recv = NULL;
    have = NULL;
out:
    secure_free(recv);
    free(have);
    return e;
}

/* masked_input into q and mk (d words each: the client's own buffers or the
 * caller's). */
static fedrec_err masked_input(fedreci_secagg_client *c, const fedreci_secagg_ciphertext *in,
                               size_t n_in, const float *x, uint32_t weight, uint32_t *q,
                               uint32_t *mk, fedreci_secagg_quant_stats *stats)
{
    if (c->stage != FEDRECI_SECAGG_MASKED_INPUT)
        return wrong_stage(c, "masked_input");
    const fedreci_secagg_params *p = &c->p;
    uint32_t deg = c->deg;
    fedrec_err e = FEDREC_OK;
    uint8_t *recv = NULL, *have = NULL;
    uint32_t n_bad = 0;
    uint8_t *keys = secure_alloc((size_t)deg * 32);
    int8_t *signs = malloc(deg ? deg : 1);
    if (!keys || !signs) {
        e = fedreci_error(FEDREC_ERR_NOMEM, "secagg client masked_input: %u neighbours", deg);
        goto out;
    }
    if (c->received) {
        /* the bundles kept by receive, as the complaint step left them */
        uint32_t usable = 0;
        for (uint32_t j = 0; j < deg; j++)
            usable += c->have[j] != 0;
        if (usable < p->t) {
            e = fedreci_error(FEDREC_ERR_PROTOCOL,
                              "secagg client %llu: %u neighbours to mask with, fewer than t = %u",
                              (unsigned long long)c->id, usable, p->t);
            goto out;
        }
    } else {
        e = open_bundles(c, in, n_in, &recv, &have, NULL, NULL, &n_bad);
        if (e)
            goto out;
    }
    const uint8_t *hv = c->received ? c->have : have;
    if (weight > p->max_weight) {
        e = fedreci_error(FEDREC_ERR_INVALID, "secagg: weight %u exceeds max_weight %u", weight,
                          p->max_weight);
        goto out;
    }
    /* y = q + PRG(b) + sum_v sign(u, v) PRG(pair key), built slice by slice:
     * each slice of q is quantized, copied and masked while it is in L1
     * cache, so the whole call is one sweep over memory. */
    size_t n_keys = 0;
    for (uint32_t j = 0; j < deg; j++) {
        if (!hv[j])
            continue;
        memcpy(keys + n_keys * 32, c->pair_keys + (size_t)j * 32, 32);
        signs[n_keys++] = c->id < c->nbr_ids[j] ? 1 : -1;
    }
    uint8_t pair_nonce[FEDRECI_PRG_NONCE_BYTES], self_nonce[FEDRECI_PRG_NONCE_BYTES];
    static const int8_t plus = 1;
    fedreci_prg_nonce(pair_nonce, p->round_id, FEDRECI_PRG_PAIR_MASK);
    fedreci_prg_nonce(self_nonce, p->round_id, FEDRECI_PRG_SELF_MASK);
    const size_t d = p->d, n_x = d - 1, slice = FEDRECI_PRG_CHUNK_BYTES / 4;
    fedreci_secagg_quant_stats st = {0, 0.0f};
    for (size_t off = 0; off < d; off += slice) {
        size_t len = d - off < slice ? d - off : slice;
        size_t len_x = off + len <= n_x ? len : n_x - off; /* the last word is the weight */
        e = fedreci_secagg_quantize_slice(p, x, c->sec->rounding, off, len_x, q, &st);
        if (e)
            goto out;
        if (len_x < len)
            q[n_x] = weight;
        memcpy(mk + off, q + off, len * sizeof *mk);
        /* keystream word off starts at block off / 16 (slice is a multiple of 16) */
        fedreci_prg_add(keys, signs, n_keys, pair_nonce, (uint32_t)(off / 16), mk + off, len);
        fedreci_prg_add(c->sec->b, &plus, 1, self_nonce, (uint32_t)(off / 16), mk + off, len);
    }
    if (stats)
        *stats = st;
    /* Commit. */
    if (!c->received) {
        c->recv = recv;
        c->have = have;
        c->n_bad = n_bad;
        recv = NULL;
        have = NULL;
    }
    c->stage = FEDRECI_SECAGG_CONSISTENCY;
out:
    secure_free(recv);
    free(have);
    secure_free(keys);
    free(signs);
    return e;
}

fedrec_err fedreci_secagg_client_masked_input(fedreci_secagg_client *c,
                                              const fedreci_secagg_ciphertext *in, size_t n_in,
                                              const float *x, uint32_t weight,
                                              const uint32_t **masked,
                                              fedreci_secagg_quant_stats *stats)
{
    if (!c || (n_in && !in) || !x || !masked)
        return fedreci_error(FEDREC_ERR_INVALID, "secagg client masked_input: NULL argument");
    if (!c->q)
        return fedreci_error(FEDREC_ERR_INVALID,
                             "secagg client %llu: masked_input on an unbuffered client (use "
                             "masked_input_into)",
                             (unsigned long long)c->id);
    fedrec_err e = masked_input(c, in, n_in, x, weight, c->q, c->masked, stats);
    if (!e)
        *masked = c->masked;
    return e;
}

fedrec_err fedreci_secagg_client_masked_input_into(fedreci_secagg_client *c,
                                                   const fedreci_secagg_ciphertext *in, size_t n_in,
                                                   const float *x, uint32_t weight, uint32_t *q,
                                                   uint32_t *masked,
                                                   fedreci_secagg_quant_stats *stats)
{
    if (!c || (n_in && !in) || !x || !q || !masked)
        return fedreci_error(FEDREC_ERR_INVALID, "secagg client masked_input_into: NULL argument");
    return masked_input(c, in, n_in, x, weight, q, masked, stats);
}

void fedreci_secagg_client_set_lenient(fedreci_secagg_client *c, int on)
{
    if (c)
        c->lenient = on ? 1 : 0;
}

uint32_t fedreci_secagg_client_bad_bundles(const fedreci_secagg_client *c)
{
    return c ? c->n_bad : 0;
}

fedrec_err fedreci_secagg_client_mac_key(const fedreci_secagg_client *c, const uint8_t coord_pk[32],
                                         uint8_t key[32])
{
    if (!c || !coord_pk || !key)
        return fedreci_error(FEDREC_ERR_INVALID, "secagg client mac_key: NULL argument");
    if (c->stage == FEDRECI_SECAGG_ADVERTISE || c->stage == FEDRECI_SECAGG_ABORTED)
        return wrong_stage(c, "mac_key");
    uint8_t k[32];
    fedrec_err e = fedreci_secagg_mac_key(k, c->sec->s_sk, coord_pk, c->p.round_id, c->id);
    if (!e)
        memcpy(key, k, 32);
    sodium_memzero(k, sizeof k);
    return e;
}

const uint32_t *fedreci_secagg_client_quantized_input(const fedreci_secagg_client *c)
{
    if (!c || c->stage < FEDRECI_SECAGG_CONSISTENCY || c->stage == FEDRECI_SECAGG_ABORTED)
        return NULL;
    return c->q;
}

static int sorted_strict(const uint64_t *a, size_t n)
{
    for (size_t i = 1; i < n; i++)
        if (a[i] <= a[i - 1])
            return 0;
    return 1;
}

fedrec_err fedreci_secagg_client_consistency(fedreci_secagg_client *c, const uint64_t *survivors,
                                             size_t n_survivors, const uint64_t *dropped,
                                             size_t n_dropped, const fedreci_secagg_tag **tags,
                                             size_t *n_tags)
{
    if (!c || (n_survivors && !survivors) || (n_dropped && !dropped) || !tags || !n_tags)
        return fedreci_error(FEDREC_ERR_INVALID, "secagg client consistency: NULL argument");
    if (c->stage != FEDRECI_SECAGG_CONSISTENCY && c->stage != FEDRECI_SECAGG_UNMASK &&
        c->stage != FEDRECI_SECAGG_DONE)
        return wrong_stage(c, "consistency");
    uint8_t h[32];
    fedreci_secagg_request_hash(h, c->p.round_id, survivors, n_survivors, dropped, n_dropped);
    if (c->stage != FEDRECI_SECAGG_CONSISTENCY) {
        /* The set is fixed: only an identical repeat is answered. */
        if (sodium_memcmp(h, c->req_hash, 32) != 0)
            return refuse(c, FEDRECI_REFUSE_UNMASK_AGAIN,
                          fedreci_error(FEDREC_ERR_PROTOCOL,
                                        "secagg client %llu: a second, different survivor set "
                                        "is refused (it could reveal both shares of a "
                                        "neighbour)",
                                        (unsigned long long)c->id));
        *tags = c->tags;
        *n_tags = c->n_tags;
        return FEDREC_OK;
    }
    const char *why = NULL, *name = FEDRECI_REFUSE_UNMASK_BAD;
    if (!sorted_strict(survivors, n_survivors) || !sorted_strict(dropped, n_dropped))
        why = "lists not sorted or with repeats";
    else if (n_survivors < c->p.t)
        why = "fewer than t survivors";
    else if (fedreci_find_u64(survivors, n_survivors, c->id) < 0)
        why = "this client is not named a survivor";
    for (size_t i = 0; !why && i < n_dropped; i++) {
        if (fedreci_find_u64(survivors, n_survivors, dropped[i]) >= 0) {
            why = "a client is named both survivor and dropped";
            name = FEDRECI_REFUSE_UNMASK_BOTH;
        } else if (fedreci_find_u64(c->roster_ids, c->m, dropped[i]) < 0) {
            why = "a dropped client is not in the roster";
        }
    }
    for (size_t i = 0; !why && i < n_survivors; i++)
        if (fedreci_find_u64(c->roster_ids, c->m, survivors[i]) < 0)
            why = "a survivor is not in the roster";
    uint8_t *kind = why ? NULL : calloc(c->deg ? c->deg : 1, 1);
    fedreci_secagg_tag *tg = why ? NULL : malloc((c->deg ? c->deg : 1) * sizeof *tg);
    if (!why && (!kind || !tg)) {
        free(kind);
        free(tg);
        return fedreci_error(FEDREC_ERR_NOMEM, "secagg client consistency: %u neighbours", c->deg);
    }
    size_t nt = 0;
    for (uint32_t j = 0; !why && j < c->deg; j++) {
        uint64_t v = c->nbr_ids[j];
        if (fedreci_find_u64(survivors, n_survivors, v) >= 0)
            kind[j] = 1;
        else if (fedreci_find_u64(dropped, n_dropped, v) >= 0)
            kind[j] = 2;
        else if (c->have[j] == 1)
            why = "a neighbour that sent shares is named neither survivor nor dropped";
        if (kind[j] == 1) {
            tg[nt].from = c->id;
            tg[nt].to = v;
            fedreci_secagg_consistency_tag(tg[nt].tag, c->cons_keys + (size_t)j * 32, c->p.round_id,
                                           c->id, v, h);
            nt++;
        }
    }
    if (why) {
        free(kind);
        free(tg);
        return refuse(c, name,
                      fedreci_error(FEDREC_ERR_PROTOCOL,
                                    "secagg client %llu: survivor set refused: %s (%zu "
                                    "survivors, %zu dropped, t = %u)",
                                    (unsigned long long)c->id, why, n_survivors, n_dropped,
                                    c->p.t));
    }
    /* the attributable endorsement: one Ed25519 signature over the set,
       which the coordinator checks and relays only when a tag fails */
    uint8_t em[FEDRECI_ENDORSE_MSG_BYTES];
    fedreci_secagg_endorse_msg(em, c->p.round_id, c->id, h);
    crypto_sign_detached(c->endorse_sig, NULL, em, sizeof em, c->sec->identity_sk);
    memcpy(c->req_hash, h, 32);
    c->kind = kind;
    c->tags = tg;
    c->n_tags = nt;
    c->stage = FEDRECI_SECAGG_UNMASK;
    *tags = tg;
    *n_tags = nt;
    return FEDREC_OK;
}

/* Marks in seen[deg] the neighbours named survivors whose endorsement of
 * this client's set is valid: their tag (tags), or, for one without a valid
 * tag, their identity-key signature over the set (sigs); returns how many. */
static uint32_t count_endorsed(const fedreci_secagg_client *c, const fedreci_secagg_tag *tags,
                               size_t n_tags, const fedreci_secagg_endorsement *sigs, size_t n_sigs,
                               uint8_t *seen)
{
    uint32_t valid = 0;
    for (size_t i = 0; i < n_tags; i++) {
        long j = fedreci_find_u64(c->nbr_ids, c->deg, tags[i].from);
        if (j < 0 || tags[i].to != c->id || c->kind[j] != 1 || seen[j])
            continue;
        uint8_t want[FEDRECI_SECAGG_TAG_BYTES];
        fedreci_secagg_consistency_tag(want, c->cons_keys + (size_t)j * 32, c->p.round_id,
                                       tags[i].from, c->id, c->req_hash);
        if (sodium_memcmp(want, tags[i].tag, sizeof want) != 0)
            continue;
        seen[j] = 1;
        valid++;
    }
    for (size_t i = 0; i < n_sigs; i++) {
        long j = fedreci_find_u64(c->nbr_ids, c->deg, sigs[i].from);
        if (j < 0 || c->kind[j] != 1 || seen[j])
            continue;
        uint8_t em[FEDRECI_ENDORSE_MSG_BYTES];
        fedreci_secagg_endorse_msg(em, c->p.round_id, sigs[i].from, c->req_hash);
        if (crypto_sign_verify_detached(sigs[i].sig, em, sizeof em, c->nbr_idpk + (size_t)j * 32) !=
            0)
            continue;
        seen[j] = 1;
        valid++;
    }
    return valid;
}

fedrec_err fedreci_secagg_client_endorse_peers(fedreci_secagg_client *c, const uint64_t **ids,
                                               size_t *n)
{
    if (!c || !ids || !n)
        return fedreci_error(FEDREC_ERR_INVALID, "secagg client endorse_peers: NULL argument");
    if (c->stage != FEDRECI_SECAGG_UNMASK && c->stage != FEDRECI_SECAGG_DONE)
        return wrong_stage(c, "endorse_peers");
    if (!c->peer_ids) {
        c->peer_ids = malloc((c->deg ? c->deg : 1) * sizeof *c->peer_ids);
        if (!c->peer_ids)
            return fedreci_error(FEDREC_ERR_NOMEM, "secagg client endorse_peers: %u", c->deg);
        c->n_peer_ids = 0;
        for (uint32_t j = 0; j < c->deg; j++)
            if (c->kind[j] == 1)
                c->peer_ids[c->n_peer_ids++] = c->nbr_ids[j];
    }
    *ids = c->peer_ids;
    *n = c->n_peer_ids;
    return FEDREC_OK;
}

const uint8_t *fedreci_secagg_client_endorsement(const fedreci_secagg_client *c)
{
    if (!c || (c->stage != FEDRECI_SECAGG_UNMASK && c->stage != FEDRECI_SECAGG_DONE))
        return NULL;
    return c->endorse_sig;
}

fedrec_err fedreci_secagg_client_endorse_missing(fedreci_secagg_client *c,
                                                 const fedreci_secagg_tag *tags, size_t n_tags,
                                                 uint64_t *ids, size_t cap, size_t *n)
{
    if (!c || (n_tags && !tags) || !n || (cap && !ids))
        return fedreci_error(FEDREC_ERR_INVALID, "secagg client endorse_missing: NULL argument");
    if (c->stage != FEDRECI_SECAGG_UNMASK)
        return wrong_stage(c, "endorse_missing");
    *n = 0;
    uint8_t *seen = calloc(c->deg ? c->deg : 1, 1);
    if (!seen)
        return fedreci_error(FEDREC_ERR_NOMEM, "secagg client endorse_missing: %u neighbours",
                             c->deg);
    uint32_t valid = count_endorsed(c, tags, n_tags, NULL, 0, seen);
    size_t k = 0;
    for (uint32_t j = 0; valid < c->p.t && j < c->deg; j++)
        if (c->kind[j] == 1 && !seen[j]) {
            if (k >= cap) {
                free(seen);
                return fedreci_error(FEDREC_ERR_INVALID,
                                     "secagg client endorse_missing: room for %zu ids, %u "
                                     "neighbours",
                                     cap, c->deg);
            }
            ids[k++] = c->nbr_ids[j];
        }
    free(seen);
    *n = k;
    return FEDREC_OK;
}

fedrec_err fedreci_secagg_client_unmask(fedreci_secagg_client *c, const fedreci_secagg_tag *tags,
                                        size_t n_tags, const fedreci_secagg_reveal **reveals,
                                        size_t *n_reveals)
{
    return fedreci_secagg_client_unmask_endorsed(c, tags, n_tags, NULL, 0, reveals, n_reveals);
}

fedrec_err fedreci_secagg_client_unmask_endorsed(fedreci_secagg_client *c,
                                                 const fedreci_secagg_tag *tags, size_t n_tags,
                                                 const fedreci_secagg_endorsement *sigs,
                                                 size_t n_sigs,
                                                 const fedreci_secagg_reveal **reveals,
                                                 size_t *n_reveals)
{
    if (!c || (n_tags && !tags) || (n_sigs && !sigs) || !reveals || !n_reveals)
        return fedreci_error(FEDREC_ERR_INVALID, "secagg client unmask: NULL argument");
    if (c->stage != FEDRECI_SECAGG_UNMASK && c->stage != FEDRECI_SECAGG_DONE)
        return wrong_stage(c, "unmask");
    if (c->stage == FEDRECI_SECAGG_DONE) {
        *reveals = c->reveals;
        *n_reveals = c->n_reveals;
        return FEDREC_OK;
    }
    /* Consistency check: t distinct neighbours named survivors must have
       endorsed the set this client endorsed: by a tag keyed with a pair key
       the coordinator cannot compute, or by a signature with the identity
       key of the neighbour's signed advert, which it cannot make either. */
    uint8_t *seen = calloc(c->deg ? c->deg : 1, 1);
    if (!seen)
        return fedreci_error(FEDREC_ERR_NOMEM, "secagg client unmask: %u neighbours", c->deg);
    uint32_t valid = count_endorsed(c, tags, n_tags, sigs, n_sigs, seen);
    free(seen);
    if (valid < c->p.t)
        return refuse(c, FEDRECI_REFUSE_CONSISTENCY,
                      fedreci_error(FEDREC_ERR_PROTOCOL,
                                    "secagg client %llu: only %u neighbours endorsed the survivor "
                                    "set this client was given (of %zu tags and %zu signatures), "
                                    "fewer than t = %u: nothing is revealed",
                                    (unsigned long long)c->id, valid, n_tags, n_sigs, c->p.t));
    fedreci_secagg_reveal *r = secure_alloc((size_t)c->deg * sizeof *r);
    if (!r)
        return fedreci_error(FEDREC_ERR_NOMEM, "secagg client unmask: %u reveals", c->deg);
    size_t n = 0;
    for (uint32_t j = 0; j < c->deg; j++) {
        if (c->have[j] != 1 || !c->kind[j])
            continue; /* no bundle, or a bad one: no share of v held */
        const uint8_t *sh = c->recv + (size_t)j * FEDRECI_SHARE_PLAIN_BYTES;
        if (c->kind[j] == 1) {
            r[n].kind = FEDRECI_SECAGG_SHARE_B;
            memcpy(r[n].share, sh, SB);
            memcpy(r[n].opening, sh + 2 * SB, 32);
        } else {
            r[n].kind = FEDRECI_SECAGG_SHARE_SK;
            memcpy(r[n].share, sh + SB, SB);
            memcpy(r[n].opening, sh + 2 * SB + 32, 32);
        }
        r[n].about = c->nbr_ids[j];
        n++;
    }
    c->reveals = r;
    c->n_reveals = n;
    c->stage = FEDRECI_SECAGG_DONE;
    *reveals = r;
    *n_reveals = n;
    return FEDREC_OK;
}

/* ---- complaint step ---------------------------------------------------------- */

fedrec_err fedreci_secagg_client_receive(fedreci_secagg_client *c,
                                         const fedreci_secagg_ciphertext *in, size_t n_in,
                                         const fedreci_secagg_complaint **cpl, size_t *n_cpl)
{
    if (!c || (n_in && !in) || !cpl || !n_cpl)
        return fedreci_error(FEDREC_ERR_INVALID, "secagg client receive: NULL argument");
    if (c->stage != FEDRECI_SECAGG_MASKED_INPUT)
        return wrong_stage(c, "receive");
    if (c->received) {
        *cpl = c->cpl;
        *n_cpl = c->n_cpl;
        return FEDREC_OK;
    }
    const uint32_t deg = c->deg;
    uint8_t *recv = NULL, *have = NULL;
    uint32_t n_bad = 0;
    uint8_t *rcommit = calloc((size_t)deg ? deg : 1, FEDRECI_SECAGG_COMMIT_BYTES);
    uint8_t *rhash = calloc((size_t)deg ? deg : 1, 32);
    fedreci_secagg_complaint *out = calloc(deg ? deg : 1, sizeof *out);
    fedrec_err e = FEDREC_OK;
    if (!rcommit || !rhash || !out) {
        e = fedreci_error(FEDREC_ERR_NOMEM, "secagg client receive: %u neighbours", deg);
        goto fail;
    }
    e = open_bundles(c, in, n_in, &recv, &have, rcommit, rhash, &n_bad);
    if (e)
        goto fail;
    size_t n = 0;
    for (uint32_t j = 0; j < deg; j++) {
        if (have[j] != 2)
            continue; /* held, absent, or too malformed to name */
        fedreci_secagg_complaint *k = &out[n];
        k->from = c->id;
        k->dealer = c->nbr_ids[j];
        memcpy(k->bundle, rhash + (size_t)j * 32, 32);
        uint8_t msg[FEDRECI_COMPLAINT_MSG_BYTES];
        fedreci_secagg_complaint_msg(msg, c->p.round_id, c->id, k->dealer, k->bundle);
        if (crypto_sign_detached(k->sig, NULL, msg, sizeof msg, c->sec->identity_sk) != 0) {
            e = fedreci_error(FEDREC_ERR_CRYPTO, "secagg client receive: signing a complaint");
            goto fail;
        }
        n++;
    }
    free(rhash);
    c->recv = recv;
    c->have = have;
    c->n_bad = n_bad;
    c->rcommit = rcommit;
    c->cpl = out;
    c->n_cpl = n;
    c->received = 1;
    *cpl = out;
    *n_cpl = n;
    return FEDREC_OK;
fail:
    secure_free(recv);
    free(have);
    free(rcommit);
    free(rhash);
    free(out);
    return e;
}

fedrec_err fedreci_secagg_client_answer(fedreci_secagg_client *c,
                                        const fedreci_secagg_complaint *against, size_t n,
                                        const fedreci_secagg_opening **op, size_t *n_op)
{
    if (!c || (n && !against) || !op || !n_op)
        return fedreci_error(FEDREC_ERR_INVALID, "secagg client answer: NULL argument");
    if (c->stage != FEDRECI_SECAGG_MASKED_INPUT)
        return wrong_stage(c, "answer");
    const uint32_t deg = c->deg;
    fedreci_secagg_opening *o = secure_alloc((size_t)deg * sizeof *o);
    uint8_t *done = calloc(deg ? deg : 1, 1);
    if (!o || !done) {
        secure_free(o);
        free(done);
        return fedreci_error(FEDREC_ERR_NOMEM, "secagg client answer: %u neighbours", deg);
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const fedreci_secagg_complaint *q = &against[i];
        long j = fedreci_find_u64(c->nbr_ids, deg, q->from);
        if (q->dealer != c->id || j < 0 || done[j])
            continue;
        /* it must name exactly the bundle this client sent to q->from, and
           be signed by q->from: otherwise the relay was altered or the
           complaint forged, and opening would give away a share */
        uint8_t h[32], msg[FEDRECI_COMPLAINT_MSG_BYTES];
        fedreci_secagg_bundle_hash(h, c->p.round_id, c->id, q->from,
                                   c->ct_bytes + (size_t)j * FEDRECI_SHARE_CT_BYTES,
                                   c->commits + (size_t)j * FEDRECI_SECAGG_COMMIT_BYTES);
        if (sodium_memcmp(h, q->bundle, 32) != 0)
            continue;
        fedreci_secagg_complaint_msg(msg, c->p.round_id, q->from, c->id, q->bundle);
        if (crypto_sign_verify_detached(q->sig, msg, sizeof msg, c->nbr_idpk + (size_t)j * 32) != 0)
            continue;
        done[j] = 1;
        o[k].dealer = c->id;
        o[k].to = q->from;
        memcpy(o[k].plain, c->dealt + (size_t)j * FEDRECI_SHARE_PLAIN_BYTES,
               FEDRECI_SHARE_PLAIN_BYTES);
        k++;
    }
    free(done);
    secure_free(c->openings);
    c->openings = o;
    c->n_openings = k;
    *op = o;
    *n_op = k;
    return FEDREC_OK;
}

/* 1 when plain (b share || s^SK share || openings) is canonical and opens
 * the commitments commit (h_b || h_s || c_b) of the bundle dealer -> holder. */
static int opening_valid(uint64_t round, uint64_t dealer, uint64_t holder, const uint8_t *plain,
                         const uint8_t *commit)
{
    if (!fedreci_scalar_is_canonical(plain) || !fedreci_scalar_is_canonical(plain + SB))
        return 0;
    uint8_t hb[32], hs[32];
    fedreci_secagg_share_commit(hb, round, dealer, holder, FEDRECI_SECAGG_SHARE_B, plain,
                                plain + 2 * SB);
    fedreci_secagg_share_commit(hs, round, dealer, holder, FEDRECI_SECAGG_SHARE_SK, plain + SB,
                                plain + 2 * SB + 32);
    return sodium_memcmp(hb, commit, 32) == 0 && sodium_memcmp(hs, commit + 32, 32) == 0;
}

fedrec_err fedreci_secagg_client_resolve(fedreci_secagg_client *c, const uint64_t *excluded,
                                         size_t n_excluded, const fedreci_secagg_opening *op,
                                         size_t n_op)
{
    if (!c || (n_excluded && !excluded) || (n_op && !op))
        return fedreci_error(FEDREC_ERR_INVALID, "secagg client resolve: NULL argument");
    if (c->stage != FEDRECI_SECAGG_MASKED_INPUT || !c->received || c->resolved)
        return fedreci_error(FEDREC_ERR_STAGE, "secagg client %llu: resolve %s",
                             (unsigned long long)c->id,
                             c->resolved ? "called twice" : "before receive or after masking");
    if (!sorted_strict(excluded, n_excluded))
        return refuse(c, FEDRECI_REFUSE_RELAY,
                      fedreci_error(FEDREC_ERR_PROTOCOL,
                                    "secagg client %llu: exclusion list not sorted or with repeats",
                                    (unsigned long long)c->id));
    if (fedreci_find_u64(excluded, n_excluded, c->id) >= 0)
        return fedreci_error(FEDREC_ERR_PROTOCOL,
                             "secagg client %llu: excluded from round %llu by the complaint step",
                             (unsigned long long)c->id, (unsigned long long)c->p.round_id);
    const uint32_t deg = c->deg;
    uint8_t *have = malloc(deg ? deg : 1);
    if (!have)
        return fedreci_error(FEDREC_ERR_NOMEM, "secagg client resolve: %u neighbours", deg);
    memcpy(have, c->have, deg);
    uint32_t usable = 0;
    for (uint32_t j = 0; j < deg; j++) {
        if (fedreci_find_u64(excluded, n_excluded, c->nbr_ids[j]) >= 0)
            have[j] = 0;
        usable += have[j] != 0;
    }
    if (usable < c->p.t) {
        free(have);
        return fedreci_error(FEDREC_ERR_PROTOCOL,
                             "secagg client %llu: %u neighbours left to mask with after the "
                             "exclusions, fewer than t = %u",
                             (unsigned long long)c->id, usable, c->p.t);
    }
    /* Commit: openings of bundles this client complained about replace
       them; excluded neighbours are as if their bundle never came. */
    for (size_t i = 0; i < n_op; i++) {
        long j = fedreci_find_u64(c->nbr_ids, deg, op[i].dealer);
        if (op[i].to != c->id || j < 0 || have[j] != 2)
            continue;
        if (!opening_valid(c->p.round_id, op[i].dealer, c->id, op[i].plain,
                           c->rcommit + (size_t)j * FEDRECI_SECAGG_COMMIT_BYTES))
            continue;
        memcpy(c->recv + (size_t)j * FEDRECI_SHARE_PLAIN_BYTES, op[i].plain,
               FEDRECI_SHARE_PLAIN_BYTES);
        have[j] = 1;
        if (c->n_bad)
            c->n_bad--;
    }
    for (uint32_t j = 0; j < deg; j++)
        if (!have[j])
            sodium_memzero(c->recv + (size_t)j * FEDRECI_SHARE_PLAIN_BYTES,
                           FEDRECI_SHARE_PLAIN_BYTES);
    memcpy(c->have, have, deg);
    free(have);
    c->resolved = 1;
    return FEDREC_OK;
}
