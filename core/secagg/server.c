/*
 * The server side of a SecAgg+ round (see secagg.h for the contract and
 * docs/design.md section 3 for the protocol).
 *
 * Members are indexed 0..m-1 in the roster (adverts sorted by client id); a
 * member's Shamir index is its position + 1. Per member the server keeps its
 * stage-1 ciphertexts (in the order of its sorted neighbour list, for relay),
 * whether it sent a masked input, and, in stage 3, the shares revealed about
 * it: slot [owner * degree + j] holds the share held by owner's j-th
 * neighbour, so "the first t holders" is a scan in roster order.
 *
 * Every add_* call validates the whole message before it changes anything.
 * finish() does work proportional to survivors + dropped * neighbours: one
 * Shamir rebuild per secret (Lagrange coefficients shared between secrets
 * whose holder sets differ by one member, which is every secret in the
 * complete graph), one X25519 per (dropped, surviving neighbour) pair, and all
 * the masks removed in one chunk-major pass over the sum (prg.h).
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
#define CT FEDRECI_SHARE_CT_BYTES

enum { ST_NONE = 0, ST_DROPPED = 1, ST_SURVIVOR = 2 };

struct fedreci_secagg_server {
    fedreci_secagg_params p;
    fedreci_secagg_stage stage;
    uint32_t n;
    uint64_t *cohort;                                /* n ids, sorted */
    uint8_t (*id_pks)[FEDRECI_SECAGG_SIGN_PK_BYTES]; /* n, same order */
    fedreci_secagg_advert *adverts;                  /* n, by cohort index */
    uint8_t *has_advert;                             /* n */
    /* the last advert verify_advert checked (add_advert does not verify the
       same signed bytes twice) */
    int adv_ok;
    long adv_ok_i;
    uint8_t adv_ok_sig[64];
    uint8_t adv_ok_msg[FEDRECI_ADVERT_MSG_BYTES];
    uint8_t binding[32]; /* every advert must carry it */

    /* roster, fixed by close_advertise */
    uint32_t m, deg;
    fedreci_secagg_advert *roster; /* m, sorted by id */
    uint64_t *roster_ids;          /* m */
    fedreci_graph g;
    uint32_t *nbrs; /* m x deg sorted neighbour lists (NULL for the complete graph) */

    /* stage SEED */
    uint8_t digest[32]; /* over the roster's ids and seed commitments */
    uint8_t *contribs;  /* m x 32, roster order */
    uint8_t *revealed;  /* m flags */
    uint8_t *missing;   /* m flags after close_reveal: did not reveal (left out) */
    uint32_t n_revealed;
    int seeded;       /* p.graph_seed is the derived seed, the graph is built */
    uint32_t attempt; /* of the seed step (fedreci_secagg_server_retry_seed) */
    uint64_t *seed_dropped, *seed_culprits; /* left out by retries (sorted on use) */
    size_t n_seed_dropped, n_seed_culprits;

    /* stage 1 */
    uint8_t **cts;    /* m pointers to deg x CT bytes (NULL: no shares) */
    uint8_t **cmts;   /* m pointers to deg x COMMIT bytes, same order as cts */
    uint8_t *culprit; /* m flags: caught cheating (secagg.h fedreci_secagg_server_culprits) */
    uint64_t *culprit_ids;
    uint32_t n_share_senders;
    fedreci_secagg_ciphertext *relay; /* deg, for shares_for */

    /* complaint step (between stage 1 and stage 2): the m flags allocated on
       its first message, the m x deg slots and relays on its first accepted
       complaint (NULL while there is none) */
    int cpl_started, cpl_closed;
    uint8_t *cpl_sent;              /* m flags: sent its complaints */
    uint8_t *op_sent;               /* m flags: sent its openings */
    uint8_t *excluded;              /* m flags: out of the round (complaint step) */
    uint8_t *cpl_ok;                /* m x deg: [dealer * deg + j] accepted complaint by
                                       the dealer's j-th neighbour */
    uint8_t *answered;              /* m x deg: ... and the dealer opened it */
    fedreci_secagg_complaint *cpls; /* m x deg, same slots */
    fedreci_secagg_opening *ops;    /* secure, m x deg, same slots */
    size_t n_cpl;
    uint64_t *excluded_ids;
    size_t n_excluded;
    fedreci_secagg_complaint *relay_cpl; /* deg */
    fedreci_secagg_opening *relay_op;    /* secure, deg */

    /* stage 2 */
    uint32_t *sum;   /* d words */
    uint8_t *status; /* m: ST_* */
    uint32_t n_inputs;
    uint64_t *survivors, *dropped;
    size_t n_survivors, n_dropped;

    /* stage CONSISTENCY */
    fedreci_secagg_tag *tags; /* m x deg: slot [u * deg + j] = u's tag to its j-th neighbour */
    uint8_t *has_tag;         /* m x deg */
    uint8_t *endorsed;        /* m flags: sent its tags */
    uint32_t n_endorsed;
    fedreci_secagg_tag *relay_tags; /* deg, for tags_for */
    uint8_t req_hash[32];           /* fedreci_secagg_request_hash of the set named */
    uint8_t *endorse_sigs;          /* m x 64: the endorsers' signatures */
    uint64_t *non_endorsers;        /* after close_consistency */
    uint8_t *will_reveal;           /* m flags after close_consistency: endorsed by t */
    uint64_t *reveal_withheld;      /* fedreci_secagg_server_reveal_withheld */
    size_t n_non_endorsers;
    fedreci_secagg_endorsement *relay_sigs; /* deg, for endorsements_for */
    uint64_t *relay_peers;                  /* deg, for endorse_peers */

    /* stage 3 */
    uint8_t *unmasked; /* m flags: sent its reveals */
    uint8_t *have;     /* m x deg */
    uint8_t *shares;   /* secure, m x deg x 32 */
};

void fedreci_secagg_server_destroy(fedreci_secagg_server *s)
{
    if (!s)
        return;
    free(s->cohort);
    free(s->id_pks);
    free(s->adverts);
    free(s->has_advert);
    free(s->roster);
    free(s->roster_ids);
    fedreci_graph_free(&s->g);
    free(s->nbrs);
    if (s->cts)
        for (uint32_t i = 0; i < s->m; i++)
            free(s->cts[i]);
    free(s->cts);
    if (s->cmts)
        for (uint32_t i = 0; i < s->m; i++)
            free(s->cmts[i]);
    free(s->cmts);
    free(s->culprit);
    free(s->culprit_ids);
    free(s->relay);
    free(s->cpl_sent);
    free(s->op_sent);
    free(s->excluded);
    free(s->cpl_ok);
    free(s->answered);
    free(s->cpls);
    if (s->ops)
        sodium_free(s->ops);
    free(s->excluded_ids);
    free(s->relay_cpl);
    if (s->relay_op)
        sodium_free(s->relay_op);
    free(s->sum);
    free(s->status);
    free(s->survivors);
    free(s->dropped);
    free(s->unmasked);
    free(s->have);
    if (s->shares)
        fedreci_secmem_free(s->shares);
    free(s->contribs);
    free(s->revealed);
    free(s->missing);
    free(s->tags);
    free(s->has_tag);
    free(s->endorsed);
    free(s->relay_tags);
    free(s->endorse_sigs);
    free(s->non_endorsers);
    free(s->relay_sigs);
    free(s->will_reveal);
    free(s->reveal_withheld);
    free(s->relay_peers);
    free(s->seed_dropped);
    free(s->seed_culprits);
    memset(s, 0, sizeof *s);
    free(s);
}

fedreci_secagg_stage fedreci_secagg_server_stage(const fedreci_secagg_server *s)
{
    return s->stage;
}

typedef struct id_idx {
    uint64_t id;
    uint32_t idx;
} id_idx;

static int cmp_id_idx(const void *a, const void *b)
{
    uint64_t x = ((const id_idx *)a)->id, y = ((const id_idx *)b)->id;
    return x < y ? -1 : x > y;
}

fedrec_err fedreci_secagg_server_create(fedreci_secagg_server **out, const fedreci_secagg_params *p,
                                        const uint64_t *cohort,
                                        const uint8_t (*identity_pks)[FEDRECI_SECAGG_SIGN_PK_BYTES])
{
    if (!out || !cohort || !identity_pks)
        return fedreci_error(FEDREC_ERR_INVALID, "secagg server create: NULL argument");
    fedrec_err e = fedreci_secagg_sodium_ready();
    if (e)
        return e;
    e = fedreci_secagg_params_check(p);
    if (e)
        return e;
    fedreci_secagg_server *s = calloc(1, sizeof *s);
    id_idx *tmp = malloc((size_t)p->n * sizeof *tmp);
    if (!s || !tmp) {
        free(s);
        free(tmp);
        return fedreci_error(FEDREC_ERR_NOMEM, "secagg server create: cohort of %u", p->n);
    }
    s->p = *p;
    s->n = p->n;
    s->stage = FEDRECI_SECAGG_ADVERTISE;
    for (uint32_t i = 0; i < p->n; i++) {
        tmp[i].id = cohort[i];
        tmp[i].idx = i;
    }
    qsort(tmp, p->n, sizeof *tmp, cmp_id_idx);
    for (uint32_t i = 1; i < p->n; i++)
        if (tmp[i].id == tmp[i - 1].id) {
            e = fedreci_error(FEDREC_ERR_INVALID,
                              "secagg server create: client id %llu appears twice in the cohort",
                              (unsigned long long)tmp[i].id);
            free(tmp);
            fedreci_secagg_server_destroy(s);
            return e;
        }
    s->cohort = malloc((size_t)p->n * sizeof *s->cohort);
    s->id_pks = malloc((size_t)p->n * sizeof *s->id_pks);
    s->adverts = calloc(p->n, sizeof *s->adverts);
    s->has_advert = calloc(p->n, 1);
    if (!s->cohort || !s->id_pks || !s->adverts || !s->has_advert) {
        free(tmp);
        fedreci_secagg_server_destroy(s);
        return fedreci_error(FEDREC_ERR_NOMEM, "secagg server create: cohort of %u", p->n);
    }
    for (uint32_t i = 0; i < p->n; i++) {
        s->cohort[i] = tmp[i].id;
        memcpy(s->id_pks[i], identity_pks[tmp[i].idx], FEDRECI_SECAGG_SIGN_PK_BYTES);
    }
    free(tmp);
    *out = s;
    return FEDREC_OK;
}

void fedreci_secagg_server_set_binding(fedreci_secagg_server *s, const uint8_t binding[32])
{
    if (s && binding)
        memcpy(s->binding, binding, sizeof s->binding);
}

static fedrec_err wrong_stage(const fedreci_secagg_server *s, const char *call)
{
    return fedreci_error(FEDREC_ERR_STAGE, "secagg server: %s in stage %d", call, (int)s->stage);
}

static fedrec_err aborted(fedreci_secagg_server *s, const char *fmt, unsigned a, unsigned b)
{
    s->stage = FEDRECI_SECAGG_ABORTED;
    return fedreci_error(FEDREC_ERR_ABORTED, fmt, a, b);
}

/* 1 when pk is an X25519 point of small order (an all-zero shared secret). */
static int small_order(const uint8_t pk[32])
{
    static const uint8_t probe[32] = {9, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    uint8_t out[32];
    int bad = crypto_scalarmult(out, probe, pk) != 0 || sodium_is_zero(out, 32);
    sodium_memzero(out, sizeof out);
    return bad;
}

fedrec_err fedreci_secagg_server_add_advert(fedreci_secagg_server *s,
                                            const fedreci_secagg_advert *a)
{
    if (!s || !a)
        return fedreci_error(FEDREC_ERR_INVALID, "secagg server add_advert: NULL argument");
    if (s->stage != FEDRECI_SECAGG_ADVERTISE)
        return wrong_stage(s, "add_advert");
    long i = fedreci_find_u64(s->cohort, s->n, a->client_id);
    if (i < 0)
        return fedreci_error(FEDREC_ERR_PROTOCOL, "secagg server: advert from %llu, not invited",
                             (unsigned long long)a->client_id);
    if (s->has_advert[i])
        return fedreci_error(FEDREC_ERR_DUPLICATE, "secagg server: second advert from %llu",
                             (unsigned long long)a->client_id);
    uint8_t msg[FEDRECI_ADVERT_MSG_BYTES];
    fedreci_secagg_advert_msg(msg, s->p.round_id, a->client_id, a->c_pk, a->s_pk, a->binding,
                              a->seed_commit);
    /* verified just before by verify_advert: the same signature over the
       same bytes under the same member's key */
    int verified = s->adv_ok && s->adv_ok_i == i && !memcmp(s->adv_ok_sig, a->sig, 64) &&
                   !memcmp(s->adv_ok_msg, msg, sizeof msg);
    s->adv_ok = 0;
    if (!verified && crypto_sign_verify_detached(a->sig, msg, sizeof msg, s->id_pks[i]) != 0)
        return fedreci_error(FEDREC_ERR_SIGNATURE,
                             "secagg server: advert from %llu does not verify under its "
                             "registered identity key for round %llu",
                             (unsigned long long)a->client_id, (unsigned long long)s->p.round_id);
    if (sodium_memcmp(a->binding, s->binding, sizeof s->binding) != 0)
        return fedreci_error(FEDREC_ERR_PROTOCOL,
                             "secagg server: advert from %llu binds another model or other round "
                             "parameters than round %llu's",
                             (unsigned long long)a->client_id, (unsigned long long)s->p.round_id);
    if (small_order(a->c_pk) || small_order(a->s_pk))
        return fedreci_error(FEDREC_ERR_CRYPTO,
                             "secagg server: advert from %llu has a public key of small order",
                             (unsigned long long)a->client_id);
    s->adverts[i] = *a;
    memcpy(s->adverts[i].identity_pk, s->id_pks[i], FEDRECI_SECAGG_SIGN_PK_BYTES);
    s->has_advert[i] = 1;
    return FEDREC_OK;
}

fedrec_err fedreci_secagg_server_verify_advert(fedreci_secagg_server *s,
                                               const fedreci_secagg_advert *a)
{
    if (!s || !a)
        return fedreci_error(FEDREC_ERR_INVALID, "secagg server verify_advert: NULL argument");
    s->adv_ok = 0;
    long i = fedreci_find_u64(s->cohort, s->n, a->client_id);
    if (i < 0)
        return fedreci_error(FEDREC_ERR_PROTOCOL, "secagg server: advert from %llu, not invited",
                             (unsigned long long)a->client_id);
    uint8_t msg[FEDRECI_ADVERT_MSG_BYTES];
    fedreci_secagg_advert_msg(msg, s->p.round_id, a->client_id, a->c_pk, a->s_pk, a->binding,
                              a->seed_commit);
    if (crypto_sign_verify_detached(a->sig, msg, sizeof msg, s->id_pks[i]) != 0)
        return fedreci_error(FEDREC_ERR_SIGNATURE,
                             "secagg server: advert from %llu does not verify under its "
                             "registered identity key for round %llu",
                             (unsigned long long)a->client_id, (unsigned long long)s->p.round_id);
    s->adv_ok = 1;
    s->adv_ok_i = i;
    memcpy(s->adv_ok_sig, a->sig, sizeof s->adv_ok_sig);
    memcpy(s->adv_ok_msg, msg, sizeof msg);
    return FEDREC_OK;
}

static uint32_t nbr_at(const fedreci_secagg_server *s, uint32_t u, uint32_t j)
{
    if (s->g.complete)
        return j < u ? j : j + 1;
    return s->nbrs[(size_t)u * s->deg + j];
}

/* Index of member v in u's sorted neighbour list, or -1. */
static long nbr_index(const fedreci_secagg_server *s, uint32_t u, uint32_t v)
{
    if (s->g.complete)
        return u == v || v >= s->m ? -1 : (long)(v < u ? v : v - 1);
    const uint32_t *row = s->nbrs + (size_t)u * s->deg;
    uint32_t lo = 0, hi = s->deg;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (row[mid] < v)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < s->deg && row[lo] == v ? (long)lo : -1;
}

/* The degree of the graph over m members (graph.h): the same for every seed. */
static uint32_t graph_degree(const fedreci_secagg_params *p, uint32_t m)
{
    uint32_t k = p->k < m - 1 ? p->k : m - 1;
    if (k >= m - 1)
        return m - 1;
    if (k % 2 == 0 || m % 2 == 0)
        return k;
    return k + 1;
}

/* Frees the per-member state of the seed step and stage 1 (seed_state's). */
static void free_seed_state(fedreci_secagg_server *s)
{
    free(s->cts);
    free(s->cmts);
    free(s->culprit);
    free(s->relay);
    free(s->status);
    free(s->contribs);
    free(s->revealed);
    s->contribs = NULL;
    s->revealed = NULL;
    s->cmts = NULL;
    s->culprit = NULL;
    s->cts = NULL;
    s->relay = NULL;
    s->status = NULL;
}

/* Frees what a failed close_advertise built, so it can be retried. */
static fedrec_err undo_roster(fedreci_secagg_server *s, fedrec_err e)
{
    if (s->stage == FEDRECI_SECAGG_ABORTED)
        return e;
    free(s->roster);
    free(s->roster_ids);
    fedreci_graph_free(&s->g);
    free(s->nbrs);
    free_seed_state(s);
    s->roster = NULL;
    s->roster_ids = NULL;
    s->nbrs = NULL;
    s->m = s->deg = 0;
    return e;
}

static fedrec_err seed_state(fedreci_secagg_server *s);

fedrec_err fedreci_secagg_server_close_advertise(fedreci_secagg_server *s,
                                                 const fedreci_secagg_advert **roster, size_t *m)
{
    if (!s || !roster || !m)
        return fedreci_error(FEDREC_ERR_INVALID, "secagg server close_advertise: NULL argument");
    if (s->stage != FEDRECI_SECAGG_ADVERTISE)
        return wrong_stage(s, "close_advertise");
    uint32_t count = 0;
    for (uint32_t i = 0; i < s->n; i++)
        count += s->has_advert[i];
    if (count < s->p.t || count < 2)
        return aborted(s, "secagg server: %u adverts, fewer than the threshold t = %u", count,
                       s->p.t);
    s->m = count;
    s->roster = malloc((size_t)count * sizeof *s->roster);
    s->roster_ids = malloc((size_t)count * sizeof *s->roster_ids);
    if (!s->roster || !s->roster_ids)
        return undo_roster(s,
                           fedreci_error(FEDREC_ERR_NOMEM, "secagg server: roster of %u", count));
    for (uint32_t i = 0, r = 0; i < s->n; i++)
        if (s->has_advert[i]) {
            s->roster[r] = s->adverts[i];
            s->roster_ids[r++] = s->cohort[i];
        }
    fedrec_err e = seed_state(s);
    if (e)
        return e;
    *roster = s->roster;
    *m = count;
    return FEDREC_OK;
}

/* The seed step's state for the roster s->roster (s->m members) at attempt
 * s->attempt: the degree check, the digest, the per-member arrays. */
static fedrec_err seed_state(fedreci_secagg_server *s)
{
    uint32_t count = s->m;
    s->deg = graph_degree(&s->p, count);
    if (s->deg < s->p.t)
        return aborted(s,
                       "secagg server: graph degree %u is below the threshold t = %u (too few "
                       "members for every secret to be rebuilt)",
                       s->deg, s->p.t);
    /* the coordinator's commitment to every member's seed commitment: sent
       with the roster, before any contribution is revealed */
    s->contribs = calloc(count, FEDRECI_SECAGG_SEED_SLOT_BYTES);
    s->revealed = calloc(count, 1);
    uint8_t *commits = malloc((size_t)count * 32);
    if (!s->contribs || !s->revealed || !commits) {
        free(commits);
        return undo_roster(s, fedreci_error(FEDREC_ERR_NOMEM, "secagg server: seed state"));
    }
    for (uint32_t i = 0; i < count; i++)
        memcpy(commits + (size_t)32 * i, s->roster[i].seed_commit, 32);
    fedreci_secagg_seed_digest(s->digest, s->p.round_id, s->attempt, s->roster_ids, commits, count);
    free(commits);
    s->cts = calloc(count, sizeof *s->cts);
    s->cmts = calloc(count, sizeof *s->cmts);
    s->culprit = calloc(count, 1);
    s->relay = malloc((size_t)s->deg * sizeof *s->relay);
    s->status = calloc(count, 1);
    if (!s->cts || !s->cmts || !s->culprit || !s->relay || !s->status)
        return undo_roster(
            s, fedreci_error(FEDREC_ERR_NOMEM, "secagg server: stage 1 state for %u", count));
    s->n_revealed = 0;
    s->stage = FEDRECI_SECAGG_SEED;
    return FEDREC_OK;
}

/* Appends id to a growing list; 0 on out of memory. */
static int push_id(uint64_t **v, size_t *n, uint64_t id)
{
    uint64_t *w = realloc(*v, (*n + 1) * sizeof *w);
    if (!w)
        return 0;
    w[(*n)++] = id;
    *v = w;
    return 1;
}

fedrec_err fedreci_secagg_server_retry_seed(fedreci_secagg_server *s, const uint64_t **member_ids,
                                            size_t *m)
{
    if (!s || !member_ids || !m)
        return fedreci_error(FEDREC_ERR_INVALID, "secagg server retry_seed: NULL argument");
    if (s->stage != FEDRECI_SECAGG_SEED || s->n_revealed >= s->m)
        return wrong_stage(s, "retry_seed (every member revealed, or not the seed step)");
    if (s->attempt >= s->p.seed_retries)
        return aborted(s,
                       "secagg server: %u of %u roster members revealed their graph seed "
                       "contribution and no seed step retry is left",
                       s->n_revealed, s->m);
    uint32_t keep = s->n_revealed;
    if (keep < s->p.t || keep < 2)
        return aborted(s,
                       "secagg server: %u members revealed their graph seed contribution, "
                       "fewer than the threshold t = %u: nothing to retry with",
                       keep, s->p.t);
    /* the members that did not reveal leave; culprits stay named */
    for (uint32_t u = 0; u < s->m; u++) {
        if (s->revealed[u])
            continue;
        int ok = s->culprit[u] ? push_id(&s->seed_culprits, &s->n_seed_culprits, s->roster_ids[u])
                               : push_id(&s->seed_dropped, &s->n_seed_dropped, s->roster_ids[u]);
        if (!ok)
            return fedreci_error(FEDREC_ERR_NOMEM, "secagg server: seed retry");
    }
    for (uint32_t u = 0, r = 0; u < s->m; u++)
        if (s->revealed[u]) {
            s->roster[r] = s->roster[u];
            s->roster_ids[r++] = s->roster_ids[u];
        }
    free_seed_state(s);
    s->m = keep;
    s->attempt++;
    fedrec_err e = seed_state(s);
    if (e) {
        s->stage = FEDRECI_SECAGG_ABORTED; /* the old roster is gone */
        return e;
    }
    *member_ids = s->roster_ids;
    *m = keep;
    return FEDREC_OK;
}

fedrec_err fedreci_secagg_server_seed_forget(fedreci_secagg_server *s, uint64_t id)
{
    if (!s)
        return fedreci_error(FEDREC_ERR_INVALID, "secagg server seed_forget: NULL argument");
    if (s->stage != FEDRECI_SECAGG_SEED)
        return wrong_stage(s, "seed_forget");
    long u = fedreci_find_u64(s->roster_ids, s->m, id);
    if (u < 0 || !s->revealed[u])
        return fedreci_error(FEDREC_ERR_PROTOCOL,
                             "secagg server seed_forget: %llu revealed nothing in this attempt",
                             (unsigned long long)id);
    s->revealed[u] = 0;
    s->n_revealed--;
    memset(s->contribs + (size_t)FEDRECI_SECAGG_SEED_SLOT_BYTES * u, 0,
           FEDRECI_SECAGG_SEED_SLOT_BYTES);
    return FEDREC_OK;
}

uint32_t fedreci_secagg_server_seed_attempt(const fedreci_secagg_server *s)
{
    return s ? s->attempt : 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

size_t fedreci_secagg_server_seed_dropped(fedreci_secagg_server *s, const uint64_t **ids)
{
    if (!s || !ids)
        return 0;
    *ids = s->seed_dropped;
    if (s->n_seed_dropped)
        qsort(s->seed_dropped, s->n_seed_dropped, sizeof *s->seed_dropped, cmp_u64);
    return s->n_seed_dropped;
}

const uint8_t *fedreci_secagg_server_seed_digest(const fedreci_secagg_server *s)
{
    return s && s->contribs ? s->digest : NULL;
}

const uint8_t *fedreci_secagg_server_seed_missing(const fedreci_secagg_server *s)
{
    return s && s->seeded ? s->missing : NULL;
}

const uint8_t *fedreci_secagg_server_graph_seed(const fedreci_secagg_server *s)
{
    return s && s->seeded ? s->p.graph_seed : NULL;
}

fedrec_err fedreci_secagg_server_add_reveal(fedreci_secagg_server *s, uint64_t sender,
                                            const uint8_t contribution[16])
{
    if (!s || !contribution)
        return fedreci_error(FEDREC_ERR_INVALID, "secagg server add_reveal: NULL argument");
    if (s->stage != FEDRECI_SECAGG_SEED)
        return wrong_stage(s, "add_reveal");
    long u = fedreci_find_u64(s->roster_ids, s->m, sender);
    if (u < 0)
        return fedreci_error(FEDREC_ERR_PROTOCOL,
                             "secagg server: seed contribution from %llu, not in roster",
                             (unsigned long long)sender);
    if (s->revealed[u])
        return fedreci_error(FEDREC_ERR_DUPLICATE,
                             "secagg server: second seed contribution from %llu",
                             (unsigned long long)sender);
    uint8_t cm[32];
    fedreci_secagg_seed_commit_at(cm, s->p.round_id, sender, s->attempt, contribution);
    if (s->culprit[u])
        return fedreci_error(FEDREC_ERR_PROTOCOL,
                             "secagg server: seed contribution from %llu, named a culprit in "
                             "this round",
                             (unsigned long long)sender);
    if (sodium_memcmp(cm, s->roster[u].seed_commit, 32) != 0) {
        /* it signed the commitment: a contribution that does not open it
           is proof that its sender deviates (it is left out of the seed) */
        s->culprit[u] = 1;
        return fedreci_error(FEDREC_ERR_PROTOCOL,
                             "secagg server: seed contribution from %llu does not open the "
                             "commitment in its signed advert; it is named a culprit",
                             (unsigned long long)sender);
    }
    memcpy(s->contribs + (size_t)FEDRECI_SECAGG_SEED_SLOT_BYTES * u, contribution,
           FEDRECI_SECAGG_CONTRIB_BYTES); /* the slot's rest stays zero (calloc) */
    s->revealed[u] = 1;
    s->n_revealed++;
    return FEDREC_OK;
}

fedrec_err fedreci_secagg_server_close_reveal(fedreci_secagg_server *s,
                                              const uint8_t **contributions)
{
    if (!s || !contributions)
        return fedreci_error(FEDREC_ERR_INVALID, "secagg server close_reveal: NULL argument");
    if (s->stage != FEDRECI_SECAGG_SEED)
        return wrong_stage(s, "close_reveal");
    if (s->n_revealed + FEDRECI_SECAGG_SEED_MISSING_MAX < s->m)
        return aborted(s,
                       "secagg server: %u of %u roster members revealed their graph seed "
                       "contribution; every one must (or the seed step is retried)",
                       s->n_revealed, s->m);
    if (!s->missing && !(s->missing = calloc(s->m, 1)))
        return fedreci_error(FEDREC_ERR_NOMEM, "secagg server: seed flags");
    for (uint32_t u = 0; u < s->m; u++)
        if (!s->revealed[u]) {
            s->missing[u] = 1; /* its commitment stands in; it is left out */
            memcpy(s->contribs + (size_t)FEDRECI_SECAGG_SEED_SLOT_BYTES * u,
                   s->roster[u].seed_commit, 32);
        }
    fedreci_secagg_graph_seed(s->p.graph_seed, s->digest, s->contribs, s->missing, s->m);
    fedreci_graph_free(&s->g);
    fedrec_err e = fedreci_graph_build(&s->g, &s->p, s->m);
    if (e)
        return e;
    if (s->g.degree != s->deg)
        return fedreci_error(FEDREC_ERR_INTERNAL, "secagg server: graph degree %u, expected %u",
                             s->g.degree, s->deg);
    if (!s->g.complete && !s->nbrs) {
        s->nbrs = malloc((size_t)s->m * s->deg * sizeof *s->nbrs);
        if (!s->nbrs)
            return fedreci_error(FEDREC_ERR_NOMEM, "secagg server: neighbour lists");
        for (uint32_t u = 0; u < s->m; u++)
            fedreci_graph_neighbors(&s->g, u, s->nbrs + (size_t)u * s->deg);
    }
    s->seeded = 1;
    s->stage = FEDRECI_SECAGG_SHARE_KEYS;
    *contributions = s->contribs;
    return FEDREC_OK;
}

fedrec_err fedreci_secagg_server_add_shares(fedreci_secagg_server *s, uint64_t sender,
                                            const fedreci_secagg_ciphertext *cts, size_t n)
{
    if (!s || (n && !cts))
        return fedreci_error(FEDREC_ERR_INVALID, "secagg server add_shares: NULL argument");
    if (s->stage != FEDRECI_SECAGG_SHARE_KEYS)
        return wrong_stage(s, "add_shares");
    long u = fedreci_find_u64(s->roster_ids, s->m, sender);
    if (u < 0)
        return fedreci_error(FEDREC_ERR_PROTOCOL, "secagg server: shares from %llu, not in roster",
                             (unsigned long long)sender);
    if (s->cts[u])
        return fedreci_error(FEDREC_ERR_DUPLICATE, "secagg server: second share message from %llu",
                             (unsigned long long)sender);
    if (s->missing && s->missing[u])
        return fedreci_error(FEDREC_ERR_PROTOCOL,
                             "secagg server: shares from %llu, which did not reveal its graph seed "
                             "contribution (left out of the round)",
                             (unsigned long long)sender);
    if (n != s->deg)
        return fedreci_error(FEDREC_ERR_PROTOCOL,
                             "secagg server: %zu share bundles from %llu, expected %u (one per "
                             "neighbour)",
                             n, (unsigned long long)sender, s->deg);
    uint8_t *buf = malloc((size_t)s->deg * CT);
    uint8_t *cbuf = malloc((size_t)s->deg * FEDRECI_SECAGG_COMMIT_BYTES);
    uint8_t *seen = calloc(s->deg, 1);
    fedrec_err e = FEDREC_OK;
    if (!buf || !cbuf || !seen) {
        e = fedreci_error(FEDREC_ERR_NOMEM, "secagg server: shares from %llu",
                          (unsigned long long)sender);
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        long v = fedreci_find_u64(s->roster_ids, s->m, cts[i].to);
        long j = v < 0 ? -1 : nbr_index(s, (uint32_t)u, (uint32_t)v);
        if (cts[i].from != sender || j < 0 || seen[j] || cts[i].len != CT || !cts[i].bytes) {
            e = fedreci_error(FEDREC_ERR_PROTOCOL,
                              "secagg server: share bundle %zu from %llu (from %llu to %llu, %zu "
                              "bytes) is not one per neighbour of %u bytes",
                              i, (unsigned long long)sender, (unsigned long long)cts[i].from,
                              (unsigned long long)cts[i].to, cts[i].len, (unsigned)CT);
            goto fail;
        }
        /* every bundle carries the dealer's commitments; c_b (the last 32
           bytes) is one value per dealer */
        if (!cts[i].commit ||
            (i > 0 && sodium_memcmp(cts[i].commit + 64, cts[0].commit + 64, 32) != 0)) {
            e = fedreci_error(FEDREC_ERR_PROTOCOL,
                              "secagg server: share bundle %zu from %llu lacks its commitments or "
                              "commits to another b than the first",
                              i, (unsigned long long)sender);
            goto fail;
        }
        seen[j] = 1;
        memcpy(buf + (size_t)j * CT, cts[i].bytes, CT);
        memcpy(cbuf + (size_t)j * FEDRECI_SECAGG_COMMIT_BYTES, cts[i].commit,
               FEDRECI_SECAGG_COMMIT_BYTES);
    }
    free(seen);
    s->cts[u] = buf;
    s->cmts[u] = cbuf;
    s->n_share_senders++;
    return FEDREC_OK;
fail:
    free(buf);
    free(cbuf);
    free(seen);
    return e;
}

fedrec_err fedreci_secagg_server_close_share_keys(fedreci_secagg_server *s)
{
    if (!s)
        return fedreci_error(FEDREC_ERR_INVALID, "secagg server close_share_keys: NULL");
    if (s->stage != FEDRECI_SECAGG_SHARE_KEYS)
        return wrong_stage(s, "close_share_keys");
    if (s->n_share_senders < s->p.t)
        return aborted(s, "secagg server: %u clients shared keys, fewer than t = %u",
                       s->n_share_senders, s->p.t);
    s->sum = calloc(s->p.d, sizeof *s->sum);
    if (!s->sum)
        return fedreci_error(FEDREC_ERR_NOMEM, "secagg server: sum of %u words", s->p.d);
    s->stage = FEDRECI_SECAGG_MASKED_INPUT;
    return FEDREC_OK;
}

fedrec_err fedreci_secagg_server_shares_for(fedreci_secagg_server *s, uint64_t client,
                                            const fedreci_secagg_ciphertext **cts, size_t *n)
{
    if (!s || !cts || !n)
        return fedreci_error(FEDREC_ERR_INVALID, "secagg server shares_for: NULL argument");
    if (s->stage < FEDRECI_SECAGG_MASKED_INPUT || s->stage > FEDRECI_SECAGG_DONE)
        return wrong_stage(s, "shares_for");
    long u = fedreci_find_u64(s->roster_ids, s->m, client);
    if (u < 0 || !s->cts[u])
        return fedreci_error(FEDREC_ERR_PROTOCOL,
                             "secagg server: shares for %llu, which did not share keys",
                             (unsigned long long)client);
    size_t k = 0;
    for (uint32_t j = 0; j < s->deg; j++) {
        uint32_t v = nbr_at(s, (uint32_t)u, j);
        if (!s->cts[v] || (s->excluded && s->excluded[v]))
            continue;
        long i = nbr_index(s, v, (uint32_t)u);
        s->relay[k].from = s->roster_ids[v];
        s->relay[k].to = client;
        s->relay[k].bytes = s->cts[v] + (size_t)i * CT;
        s->relay[k].len = CT;
        s->relay[k].commit = s->cmts[v] + (size_t)i * FEDRECI_SECAGG_COMMIT_BYTES;
        k++;
    }
    *cts = s->relay;
    *n = k;
    return FEDREC_OK;
}

/* ---- complaint step ------------------------------------------------------------ */

/* Allocates the complaint step's per-member state (m flags each) on its
 * first message. The per-bundle state (m x deg slots, the openings in
 * secure memory: 1.15 MB at m = 500, k = 16) waits for the first complaint
 * (complaint_slots): most rounds have none. */
static fedrec_err complaints_start(fedreci_secagg_server *s)
{
    if (s->cpl_started)
        return FEDREC_OK;
    s->cpl_sent = calloc(s->m, 1);
    s->op_sent = calloc(s->m, 1);
    if (!s->excluded)
        s->excluded = calloc(s->m, 1);
    if (!s->cpl_sent || !s->op_sent || !s->excluded) {
        free(s->cpl_sent);
        free(s->op_sent);
        s->cpl_sent = s->op_sent = NULL;
        return fedreci_error(FEDREC_ERR_NOMEM, "secagg server: complaint state for %u", s->m);
    }
    s->cpl_started = 1;
    return FEDREC_OK;
}

/* Allocates the per-bundle state of the complaint step (cpl_ok, answered,
 * cpls, ops and the relay buffers) on the first accepted complaint; NULL
 * until then, which every reader takes as "no complaint". */
static fedrec_err complaint_slots(fedreci_secagg_server *s)
{
    if (s->cpl_ok)
        return FEDREC_OK;
    size_t slots = (size_t)s->m * s->deg;
    uint8_t *ok = calloc(slots ? slots : 1, 1);
    uint8_t *answered = calloc(slots ? slots : 1, 1);
    fedreci_secagg_complaint *cpls = calloc(slots ? slots : 1, sizeof *cpls);
    fedreci_secagg_opening *ops = sodium_malloc((slots ? slots : 1) * sizeof *ops);
    fedreci_secagg_complaint *relay_cpl = malloc((s->deg ? s->deg : 1) * sizeof *relay_cpl);
    fedreci_secagg_opening *relay_op = sodium_malloc((s->deg ? s->deg : 1) * sizeof *relay_op);
    if (!ok || !answered || !cpls || !ops || !relay_cpl || !relay_op) {
        free(ok);
        free(answered);
        free(cpls);
        if (ops)
            sodium_free(ops);
        free(relay_cpl);
        if (relay_op)
            sodium_free(relay_op);
        return fedreci_error(FEDREC_ERR_NOMEM, "secagg server: complaint state for %u x %u", s->m,
                             s->deg);
    }
    s->cpl_ok = ok;
    s->answered = answered;
    s->cpls = cpls;
    s->ops = ops;
    s->relay_cpl = relay_cpl;
    s->relay_op = relay_op;
    return FEDREC_OK;
}

static fedrec_err complaint_step_open(fedreci_secagg_server *s, const char *call)
{
    if (s->stage != FEDRECI_SECAGG_MASKED_INPUT || s->cpl_closed || s->n_inputs)
        return fedreci_error(FEDREC_ERR_STAGE, "secagg server: %s outside the complaint step",
                             call);
    return complaints_start(s);
}

fedrec_err fedreci_secagg_server_add_complaints(fedreci_secagg_server *s, uint64_t sender,
                                                const fedreci_secagg_complaint *cpl, size_t n)
{
    if (!s || (n && !cpl))
        return fedreci_error(FEDREC_ERR_INVALID, "secagg server add_complaints: NULL argument");
    fedrec_err e = complaint_step_open(s, "add_complaints");
    if (e)
        return e;
    long v = fedreci_find_u64(s->roster_ids, s->m, sender);
    if (v < 0 || !s->cts[v])
        return fedreci_error(FEDREC_ERR_PROTOCOL,
                             "secagg server: complaints from %llu, which did not share keys",
                             (unsigned long long)sender);
    if (s->cpl_sent[v])
        return fedreci_error(FEDREC_ERR_DUPLICATE,
                             "secagg server: second complaint message from %llu",
                             (unsigned long long)sender);
    if (n > s->deg)
        return fedreci_error(FEDREC_ERR_PROTOCOL,
                             "secagg server: %zu complaints from %llu for %u neighbours", n,
                             (unsigned long long)sender, s->deg);
    size_t *slot = malloc((n ? n : 1) * sizeof *slot);
    if (!slot)
        return fedreci_error(FEDREC_ERR_NOMEM, "secagg server: %zu complaints", n);
    for (size_t i = 0; i < n && !e; i++) {
        long u = fedreci_find_u64(s->roster_ids, s->m, cpl[i].dealer);
        long j = u < 0 || !s->cts[u] ? -1 : nbr_index(s, (uint32_t)u, (uint32_t)v);
        if (cpl[i].from != sender || j < 0) {
            e = fedreci_error(FEDREC_ERR_PROTOCOL,
                              "secagg server: complaint %zu from %llu (from %llu about %llu) is "
                              "not about a neighbour that dealt to it",
                              i, (unsigned long long)sender, (unsigned long long)cpl[i].from,
                              (unsigned long long)cpl[i].dealer);
            break;
        }
        slot[i] = (size_t)u * s->deg + (size_t)j;
        for (size_t k = 0; k < i && !e; k++)
            if (slot[k] == slot[i])
                e = fedreci_error(FEDREC_ERR_PROTOCOL,
                                  "secagg server: two complaints from %llu about %llu",
                                  (unsigned long long)sender, (unsigned long long)cpl[i].dealer);
        if (e)
            break;
        uint8_t msg[FEDRECI_COMPLAINT_MSG_BYTES];
        fedreci_secagg_complaint_msg(msg, s->p.round_id, sender, cpl[i].dealer, cpl[i].bundle);
        if (crypto_sign_verify_detached(cpl[i].sig, msg, sizeof msg, s->roster[v].identity_pk) !=
            0) {
            s->culprit[v] = 1;
            s->excluded[v] = 1;
            s->cpl_sent[v] = 1;
            e = fedreci_error(FEDREC_ERR_SIGNATURE,
                              "secagg server: complaint from %llu about %llu does not verify "
                              "under its identity key; it is named a culprit",
                              (unsigned long long)sender, (unsigned long long)cpl[i].dealer);
            break;
        }
        uint8_t h[32];
        fedreci_secagg_bundle_hash(h, s->p.round_id, cpl[i].dealer, sender,
                                   s->cts[u] + (size_t)j * CT,
                                   s->cmts[u] + (size_t)j * FEDRECI_SECAGG_COMMIT_BYTES);
        if (sodium_memcmp(h, cpl[i].bundle, 32) != 0) {
            s->excluded[v] = 1;
            s->cpl_sent[v] = 1;
            e = fedreci_error(FEDREC_ERR_CRYPTO,
                              "secagg server: %llu complains about a bundle from %llu that is "
                              "not the one %llu sent it; the complainer is excluded from the "
                              "round",
                              (unsigned long long)sender, (unsigned long long)cpl[i].dealer,
                              (unsigned long long)cpl[i].dealer);
            break;
        }
    }
    if (!e && n)
        e = complaint_slots(s);
    if (!e) {
        for (size_t i = 0; i < n; i++) {
            s->cpls[slot[i]] = cpl[i];
            s->cpl_ok[slot[i]] = 1;
        }
        s->n_cpl += n;
        s->cpl_sent[v] = 1;
    }
    free(slot);
    return e;
}

size_t fedreci_secagg_server_n_complaints(const fedreci_secagg_server *s)
{
    return s ? s->n_cpl : 0;
}

fedrec_err fedreci_secagg_server_complaints_against(fedreci_secagg_server *s, uint64_t dealer,
                                                    const fedreci_secagg_complaint **cpl, size_t *n)
{
    if (!s || !cpl || !n)
        return fedreci_error(FEDREC_ERR_INVALID, "secagg server complaints_against: NULL argument");
    if (!s->cpl_started)
        return wrong_stage(s, "complaints_against");
    long u = fedreci_find_u64(s->roster_ids, s->m, dealer);
    if (u < 0)
        return fedreci_error(FEDREC_ERR_PROTOCOL,
                             "secagg server: complaints against %llu, not in roster",
                             (unsigned long long)dealer);
    size_t k = 0;
    for (uint32_t j = 0; s->cpl_ok && j < s->deg; j++) {
        size_t slot = (size_t)u * s->deg + j;
        if (s->cpl_ok[slot])
            s->relay_cpl[k++] = s->cpls[slot];
    }
    *cpl = s->relay_cpl;
    *n = k;
    return FEDREC_OK;
}

fedrec_err fedreci_secagg_server_add_openings(fedreci_secagg_server *s, uint64_t dealer,
                                              const fedreci_secagg_opening *op, size_t n)
{
    if (!s || (n && !op))
        return fedreci_error(FEDREC_ERR_INVALID, "secagg server add_openings: NULL argument");
    fedrec_err e = complaint_step_open(s, "add_openings");
    if (e)
        return e;
    long u = fedreci_find_u64(s->roster_ids, s->m, dealer);
    if (u < 0 || !s->cts[u])
        return fedreci_error(FEDREC_ERR_PROTOCOL,
                             "secagg server: openings from %llu, which did not share keys",
                             (unsigned long long)dealer);
    if (s->op_sent[u])
        return fedreci_error(FEDREC_ERR_DUPLICATE, "secagg server: second openings from %llu",
                             (unsigned long long)dealer);
    if (n > s->deg)
        return fedreci_error(FEDREC_ERR_PROTOCOL,
                             "secagg server: %zu openings from %llu for %u neighbours", n,
                             (unsigned long long)dealer, s->deg);
    size_t *slot = malloc((n ? n : 1) * sizeof *slot);
    if (!slot)
        return fedreci_error(FEDREC_ERR_NOMEM, "secagg server: %zu openings", n);
    for (size_t i = 0; i < n && !e; i++) {
        long v = fedreci_find_u64(s->roster_ids, s->m, op[i].to);
        long j = v < 0 ? -1 : nbr_index(s, (uint32_t)u, (uint32_t)v);
        size_t sl = j < 0 ? 0 : (size_t)u * s->deg + (size_t)j;
        if (op[i].dealer != dealer || j < 0 || !s->cpl_ok || !s->cpl_ok[sl]) {
            e = fedreci_error(FEDREC_ERR_PROTOCOL,
                              "secagg server: opening %zu from %llu (of %llu to %llu) answers no "
                              "accepted complaint",
                              i, (unsigned long long)dealer, (unsigned long long)op[i].dealer,
                              (unsigned long long)op[i].to);
            break;
        }
        slot[i] = sl;
        for (size_t k = 0; k < i && !e; k++)
            if (slot[k] == sl)
                e = fedreci_error(FEDREC_ERR_PROTOCOL,
                                  "secagg server: two openings from %llu to %llu",
                                  (unsigned long long)dealer, (unsigned long long)op[i].to);
        if (e)
            break;
        const uint8_t *pl = op[i].plain, *cm = s->cmts[u] + (size_t)j * FEDRECI_SECAGG_COMMIT_BYTES;
        uint8_t hb[32], hs[32];
        int ok = fedreci_scalar_is_canonical(pl) && fedreci_scalar_is_canonical(pl + SB);
        fedreci_secagg_share_commit(hb, s->p.round_id, dealer, op[i].to, FEDRECI_SECAGG_SHARE_B, pl,
                                    pl + 2 * SB);
        fedreci_secagg_share_commit(hs, s->p.round_id, dealer, op[i].to, FEDRECI_SECAGG_SHARE_SK,
                                    pl + SB, pl + 2 * SB + 32);
        if (!ok || sodium_memcmp(hb, cm, 32) != 0 || sodium_memcmp(hs, cm + 32, 32) != 0) {
            s->culprit[u] = 1;
            s->excluded[u] = 1;
            s->op_sent[u] = 1;
            e = fedreci_error(FEDREC_ERR_CRYPTO,
                              "secagg server: %llu opened its bundle to %llu with shares that do "
                              "not open its commitments; it is named a culprit",
                              (unsigned long long)dealer, (unsigned long long)op[i].to);
        }
    }
    if (!e) {
        for (size_t i = 0; i < n; i++) {
            s->ops[slot[i]] = op[i];
            s->answered[slot[i]] = 1;
        }
        s->op_sent[u] = 1;
    }
    free(slot);
    return e;
}

fedrec_err fedreci_secagg_server_close_complaints(fedreci_secagg_server *s,
                                                  const uint64_t **excluded, size_t *n_excluded)
{
    if (!s || !excluded || !n_excluded)
        return fedreci_error(FEDREC_ERR_INVALID, "secagg server close_complaints: NULL argument");
    fedrec_err e = complaint_step_open(s, "close_complaints");
    if (e)
        return e;
    uint64_t *ids = malloc((s->m ? s->m : 1) * sizeof *ids);
    if (!ids)
        return fedreci_error(FEDREC_ERR_NOMEM, "secagg server: exclusion list of %u", s->m);
    /* a dealer with an accepted complaint it did not open is out */
    for (uint32_t u = 0; s->cpl_ok && u < s->m; u++)
        for (uint32_t j = 0; j < s->deg; j++) {
            size_t slot = (size_t)u * s->deg + j;
            if (s->cpl_ok[slot] && !s->answered[slot])
                s->excluded[u] = 1;
        }
    size_t k = 0;
    uint32_t left = 0;
    for (uint32_t u = 0; u < s->m; u++) {
        if (s->culprit[u])
            s->excluded[u] = 1;
        if (s->excluded[u])
            ids[k++] = s->roster_ids[u];
        else if (s->cts[u])
            left++;
    }
    free(s->excluded_ids);
    s->excluded_ids = ids;
    s->n_excluded = k;
    s->cpl_closed = 1;
    if (left < s->p.t)
        return aborted(s,
                       "secagg server: %u members left after the complaint step, fewer than t = %u",
                       left, s->p.t);
    *excluded = ids;
    *n_excluded = k;
    return FEDREC_OK;
}

fedrec_err fedreci_secagg_server_openings_for(fedreci_secagg_server *s, uint64_t holder,
                                              const fedreci_secagg_opening **op, size_t *n)
{
    if (!s || !op || !n)
        return fedreci_error(FEDREC_ERR_INVALID, "secagg server openings_for: NULL argument");
    if (!s->cpl_closed)
        return wrong_stage(s, "openings_for");
    long v = fedreci_find_u64(s->roster_ids, s->m, holder);
    if (v < 0)
        return fedreci_error(FEDREC_ERR_PROTOCOL, "secagg server: openings for %llu, not in roster",
                             (unsigned long long)holder);
    size_t k = 0;
    for (uint32_t j = 0; s->answered && j < s->deg; j++) {
        uint32_t u = nbr_at(s, (uint32_t)v, j);
        long i = nbr_index(s, u, (uint32_t)v);
        size_t slot = (size_t)u * s->deg + (size_t)(i < 0 ? 0 : i);
        if (i >= 0 && !s->excluded[u] && s->answered[slot])
            s->relay_op[k++] = s->ops[slot];
    }
    *op = s->relay_op;
    *n = k;
    return FEDREC_OK;
}

fedrec_err fedreci_secagg_server_add_masked_input(fedreci_secagg_server *s, uint64_t sender,
                                                  const uint32_t *y, size_t d)
{
    if (!s || !y)
        return fedreci_error(FEDREC_ERR_INVALID, "secagg server add_masked_input: NULL argument");
    if (s->stage != FEDRECI_SECAGG_MASKED_INPUT)
        return wrong_stage(s, "add_masked_input");
    long u = fedreci_find_u64(s->roster_ids, s->m, sender);
    if (u < 0 || !s->cts[u])
        return fedreci_error(FEDREC_ERR_PROTOCOL,
                             "secagg server: masked input from %llu, which did not share keys",
                             (unsigned long long)sender);
    if (s->cpl_started && !s->cpl_closed)
        return fedreci_error(FEDREC_ERR_STAGE,
                             "secagg server: masked input from %llu before the complaint step "
                             "closed",
                             (unsigned long long)sender);
    if (s->excluded && s->excluded[u])
        return fedreci_error(FEDREC_ERR_PROTOCOL,
                             "secagg server: masked input from %llu, which the complaint step "
                             "excluded from the round",
                             (unsigned long long)sender);
    if (s->status[u] == ST_SURVIVOR)
        return fedreci_error(FEDREC_ERR_DUPLICATE, "secagg server: second masked input from %llu",
                             (unsigned long long)sender);
    if (d != s->p.d)
        return fedreci_error(FEDREC_ERR_PROTOCOL,
                             "secagg server: masked input from %llu has %zu words, expected %u",
                             (unsigned long long)sender, d, s->p.d);
    uint32_t *sum = s->sum;
    for (size_t i = 0; i < d; i++)
        sum[i] += y[i];
    s->status[u] = ST_SURVIVOR;
    s->n_inputs++;
    return FEDREC_OK;
}

/* Number of u's neighbours that are survivors. */
static uint32_t surviving_neighbours(const fedreci_secagg_server *s, uint32_t u)
{
    uint32_t c = 0;
    for (uint32_t j = 0; j < s->deg; j++)
        c += s->status[nbr_at(s, u, j)] == ST_SURVIVOR;
    return c;
}

fedrec_err fedreci_secagg_server_close_masked_input(fedreci_secagg_server *s,
                                                    const uint64_t **survivors, size_t *n_survivors,
                                                    const uint64_t **dropped, size_t *n_dropped)
{
    if (!s || !survivors || !n_survivors || !dropped || !n_dropped)
        return fedreci_error(FEDREC_ERR_INVALID, "secagg server close_masked_input: NULL");
    if (s->stage != FEDRECI_SECAGG_MASKED_INPUT)
        return wrong_stage(s, "close_masked_input");
    if (s->n_inputs < s->p.t)
        return aborted(s, "secagg server: %u masked inputs, fewer than t = %u", s->n_inputs,
                       s->p.t);
    /* Every secret to rebuild needs t holders among the survivors: check now
     * rather than after a useless unmask stage. */
    for (uint32_t u = 0; u < s->m; u++) {
        if (!s->cts[u] || (s->excluded && s->excluded[u]))
            continue;
        uint32_t c = surviving_neighbours(s, u);
        if (c < s->p.t)
            return aborted(s,
                           "secagg server: a client's secret has %u surviving holders, fewer "
                           "than t = %u",
                           c, s->p.t);
    }
    /* (a retry after NOMEM starts from scratch) */
    free(s->survivors);
    free(s->dropped);
    free(s->unmasked);
    free(s->have);
    if (s->shares)
        fedreci_secmem_free(s->shares);
    s->survivors = malloc((size_t)s->n_inputs * sizeof *s->survivors);
    s->dropped = malloc((size_t)(s->n_share_senders - s->n_inputs + 1) * sizeof *s->dropped);
    s->unmasked = calloc(s->m, 1);
    s->have = calloc((size_t)s->m * s->deg, 1);
    s->shares = fedreci_secmem_alloc((size_t)s->m * s->deg * SB);
    if (!s->survivors || !s->dropped || !s->unmasked || !s->have || !s->shares)
        return fedreci_error(FEDREC_ERR_NOMEM, "secagg server: unmask state for %u x %u", s->m,
                             s->deg);
    s->n_survivors = s->n_dropped = 0;
    for (uint32_t u = 0; u < s->m; u++) {
        if (!s->cts[u] || (s->excluded && s->excluded[u]))
            continue;
        if (s->status[u] == ST_SURVIVOR) {
            s->survivors[s->n_survivors++] = s->roster_ids[u];
        } else {
            s->status[u] = ST_DROPPED;
            s->dropped[s->n_dropped++] = s->roster_ids[u];
        }
    }
    free(s->tags);
    free(s->has_tag);
    free(s->endorsed);
    free(s->relay_tags);
    free(s->endorse_sigs);
    free(s->relay_sigs);
    s->tags = malloc((size_t)s->m * s->deg * sizeof *s->tags);
    s->has_tag = calloc((size_t)s->m * s->deg, 1);
    s->endorsed = calloc(s->m, 1);
    s->relay_tags = malloc((s->deg ? s->deg : 1) * sizeof *s->relay_tags);
    s->endorse_sigs = malloc((size_t)s->m * FEDRECI_SECAGG_SIG_BYTES);
    s->relay_sigs = malloc((s->deg ? s->deg : 1) * sizeof *s->relay_sigs);
    if (!s->tags || !s->has_tag || !s->endorsed || !s->relay_tags || !s->endorse_sigs ||
        !s->relay_sigs)
        return fedreci_error(FEDREC_ERR_NOMEM, "secagg server: consistency state for %u x %u", s->m,
                             s->deg);
    s->n_endorsed = 0;
    fedreci_secagg_request_hash(s->req_hash, s->p.round_id, s->survivors, s->n_survivors,
                                s->dropped, s->n_dropped);
    s->stage = FEDRECI_SECAGG_CONSISTENCY;
    *survivors = s->survivors;
    *n_survivors = s->n_survivors;
    *dropped = s->dropped;
    *n_dropped = s->n_dropped;
    return FEDREC_OK;
}

static fedrec_err add_consistency(fedreci_secagg_server *s, uint64_t sender,
                                  const fedreci_secagg_tag *tags, size_t n, const uint8_t *sig,
                                  int verify);

fedrec_err fedreci_secagg_server_add_consistency(fedreci_secagg_server *s, uint64_t sender,
                                                 const fedreci_secagg_tag *tags, size_t n,
                                                 const uint8_t *sig)
{
    return add_consistency(s, sender, tags, n, sig, 1);
}

fedrec_err fedreci_secagg_server_add_consistency_unverified(fedreci_secagg_server *s,
                                                            uint64_t sender,
                                                            const fedreci_secagg_tag *tags,
                                                            size_t n, const uint8_t *sig)
{
    return add_consistency(s, sender, tags, n, sig, 0);
}

static fedrec_err add_consistency(fedreci_secagg_server *s, uint64_t sender,
                                  const fedreci_secagg_tag *tags, size_t n, const uint8_t *sig,
                                  int verify)
{
    if (!s || (n && !tags) || !sig)
        return fedreci_error(FEDREC_ERR_INVALID, "secagg server add_consistency: NULL argument");
    if (s->stage != FEDRECI_SECAGG_CONSISTENCY)
        return wrong_stage(s, "add_consistency");
    long u = fedreci_find_u64(s->roster_ids, s->m, sender);
    if (u < 0 || s->status[u] != ST_SURVIVOR)
        return fedreci_error(FEDREC_ERR_PROTOCOL,
                             "secagg server: consistency tags from %llu, not a survivor",
                             (unsigned long long)sender);
    if (s->endorsed[u])
        return fedreci_error(FEDREC_ERR_DUPLICATE,
                             "secagg server: second consistency message from %llu",
                             (unsigned long long)sender);
    if (n > s->deg)
        return fedreci_error(FEDREC_ERR_PROTOCOL,
                             "secagg server: %zu consistency tags from %llu for %u neighbours", n,
                             (unsigned long long)sender, s->deg);
    if (s->culprit[u])
        return fedreci_error(FEDREC_ERR_PROTOCOL,
                             "secagg server: consistency message from %llu refused: it is a "
                             "culprit in this round",
                             (unsigned long long)sender);
    size_t base = (size_t)u * s->deg;
    uint8_t *seen = calloc(s->deg ? s->deg : 1, 1);
    if (!seen)
        return fedreci_error(FEDREC_ERR_NOMEM, "secagg server: consistency tags");
    for (size_t i = 0; i < n; i++) {
        long v = fedreci_find_u64(s->roster_ids, s->m, tags[i].to);
        long j = v < 0 ? -1 : nbr_index(s, (uint32_t)u, (uint32_t)v);
        if (tags[i].from != sender || j < 0 || seen[j]) {
            free(seen);
            return fedreci_error(FEDREC_ERR_PROTOCOL,
                                 "secagg server: consistency tag %zu from %llu (from %llu to "
                                 "%llu) is not one per neighbour",
                                 i, (unsigned long long)sender, (unsigned long long)tags[i].from,
                                 (unsigned long long)tags[i].to);
        }
        seen[j] = 1;
    }
    free(seen);
    /* the attributable endorsement: the member's identity key over the set
       this server named (the message was authenticated: a failure is the
       member's) */
    uint8_t em[FEDRECI_ENDORSE_MSG_BYTES];
    fedreci_secagg_endorse_msg(em, s->p.round_id, sender, s->req_hash);
    if (verify && crypto_sign_verify_detached(sig, em, sizeof em, s->roster[u].identity_pk) != 0) {
        s->culprit[u] = 1;
        return fedreci_error(FEDREC_ERR_SIGNATURE,
                             "secagg server: the endorsement signature of %llu does not verify "
                             "over the survivor set: refused, and it is named a culprit",
                             (unsigned long long)sender);
    }
    for (size_t i = 0; i < n; i++) {
        long v = fedreci_find_u64(s->roster_ids, s->m, tags[i].to);
        long j = nbr_index(s, (uint32_t)u, (uint32_t)v);
        s->tags[base + (size_t)j] = tags[i];
        s->has_tag[base + (size_t)j] = 1;
    }
    memcpy(s->endorse_sigs + (size_t)u * FEDRECI_SECAGG_SIG_BYTES, sig, FEDRECI_SECAGG_SIG_BYTES);
    s->endorsed[u] = 1;
    s->n_endorsed++;
    return FEDREC_OK;
}

fedrec_err fedreci_secagg_server_close_consistency(fedreci_secagg_server *s)
{
    if (!s)
        return fedreci_error(FEDREC_ERR_INVALID, "secagg server close_consistency: NULL");
    if (s->stage != FEDRECI_SECAGG_CONSISTENCY)
        return wrong_stage(s, "close_consistency");
    /* the survivors that did not endorse (culprits aside): the cause of any
       abort from here on */
    free(s->non_endorsers);
    s->n_non_endorsers = 0;
    s->non_endorsers = malloc((s->n_survivors ? s->n_survivors : 1) * sizeof *s->non_endorsers);
    uint8_t *reveals = calloc(s->m, 1);
    if (!s->non_endorsers || !reveals) {
        free(reveals);
        return fedreci_error(FEDREC_ERR_NOMEM, "secagg server: close_consistency for %u", s->m);
    }
    for (uint32_t u = 0; u < s->m; u++)
        if (s->status[u] == ST_SURVIVOR && !s->endorsed[u] && !s->culprit[u])
            s->non_endorsers[s->n_non_endorsers++] = s->roster_ids[u];
    if (s->n_endorsed < s->p.t) {
        free(reveals);
        return aborted(s,
                       "secagg server: %u survivors endorsed the survivor set, fewer than t = %u",
                       s->n_endorsed, s->p.t);
    }
    /* Who will reveal: an endorser counts every neighbour named survivor
       that endorsed (by tag, or by signature when the tag fails), so it
       reveals when t of them did. Every secret needs t of its holders among
       those; otherwise the round cannot complete, and aborts now. */
    for (uint32_t u = 0; u < s->m; u++) {
        if (s->status[u] != ST_SURVIVOR || !s->endorsed[u])
            continue;
        uint32_t e = 0;
        for (uint32_t j = 0; j < s->deg; j++) {
            uint32_t v = nbr_at(s, u, j);
            e += s->status[v] == ST_SURVIVOR && s->endorsed[v];
        }
        reveals[u] = e >= s->p.t;
    }
    for (uint32_t u = 0; u < s->m; u++) {
        if (!s->cts[u] || (s->excluded && s->excluded[u]))
            continue;
        uint32_t h = 0;
        for (uint32_t j = 0; j < s->deg; j++)
            h += reveals[nbr_at(s, u, j)];
        if (h < s->p.t) {
            free(reveals);
            return aborted(s,
                           "secagg server: a client's secret would have %u revealing holders, "
                           "fewer than t = %u (members that did not endorse the survivor set)",
                           h, s->p.t);
        }
    }
    free(s->will_reveal);
    s->will_reveal = reveals;
    s->stage = FEDRECI_SECAGG_UNMASK;
    return FEDREC_OK;
}

size_t fedreci_secagg_server_reveal_withheld(fedreci_secagg_server *s, const uint64_t **ids)
{
    if (!s || !ids)
        return 0;
    *ids = NULL;
    if (!s->will_reveal || !s->unmasked)
        return 0;
    size_t n = 0;
    uint64_t *v = realloc(s->reveal_withheld, (s->m ? s->m : 1) * sizeof *v);
    if (!v)
        return 0;
    s->reveal_withheld = v;
    for (uint32_t u = 0; u < s->m; u++)
        if (s->will_reveal[u] && !s->unmasked[u] && !s->culprit[u])
            v[n++] = s->roster_ids[u];
    *ids = v;
    return n;
}

fedrec_err fedreci_secagg_server_endorse_peers(fedreci_secagg_server *s, uint64_t member,
                                               const uint64_t **ids, size_t *n)
{
    if (!s || !ids || !n)
        return fedreci_error(FEDREC_ERR_INVALID, "secagg server endorse_peers: NULL argument");
    if (s->stage < FEDRECI_SECAGG_CONSISTENCY || s->stage > FEDRECI_SECAGG_DONE || !s->status)
        return wrong_stage(s, "endorse_peers");
    long u = fedreci_find_u64(s->roster_ids, s->m, member);
    if (u < 0)
        return fedreci_error(FEDREC_ERR_PROTOCOL,
                             "secagg server: endorsement peers of %llu, not in roster",
                             (unsigned long long)member);
    if (!s->relay_peers && !(s->relay_peers = malloc((s->deg ? s->deg : 1) * sizeof(uint64_t))))
        return fedreci_error(FEDREC_ERR_NOMEM, "secagg server: endorse_peers for %u", s->deg);
    size_t k = 0;
    for (uint32_t j = 0; j < s->deg; j++) {
        uint32_t v = nbr_at(s, (uint32_t)u, j);
        if (s->status[v] == ST_SURVIVOR)
            s->relay_peers[k++] = s->roster_ids[v];
    }
    *ids = s->relay_peers;
    *n = k;
    return FEDREC_OK;
}

size_t fedreci_secagg_server_non_endorsers(fedreci_secagg_server *s, const uint64_t **ids)
{
    if (!s || !ids)
        return 0;
    *ids = s->non_endorsers;
    return s->non_endorsers ? s->n_non_endorsers : 0;
}

fedrec_err fedreci_secagg_server_endorsements_for(fedreci_secagg_server *s, uint64_t client,
                                                  const uint64_t *from, size_t n,
                                                  const fedreci_secagg_endorsement **out,
                                                  size_t *n_out)
{
    if (!s || (n && !from) || !out || !n_out)
        return fedreci_error(FEDREC_ERR_INVALID, "secagg server endorsements_for: NULL argument");
    if (s->stage < FEDRECI_SECAGG_UNMASK || s->stage > FEDRECI_SECAGG_DONE || !s->endorse_sigs)
        return wrong_stage(s, "endorsements_for");
    long v = fedreci_find_u64(s->roster_ids, s->m, client);
    if (v < 0)
        return fedreci_error(FEDREC_ERR_PROTOCOL,
                             "secagg server: endorsements for %llu, not in roster",
                             (unsigned long long)client);
    size_t k = 0;
    for (size_t i = 0; i < n && k < s->deg; i++) {
        long u = fedreci_find_u64(s->roster_ids, s->m, from[i]);
        if (u < 0 || nbr_index(s, (uint32_t)v, (uint32_t)u) < 0 || s->status[u] != ST_SURVIVOR ||
            !s->endorsed[u])
            continue;
        s->relay_sigs[k].from = from[i];
        memcpy(s->relay_sigs[k].sig, s->endorse_sigs + (size_t)u * FEDRECI_SECAGG_SIG_BYTES,
               FEDRECI_SECAGG_SIG_BYTES);
        k++;
    }
    *out = s->relay_sigs;
    *n_out = k;
    return FEDREC_OK;
}

fedrec_err fedreci_secagg_server_tags_for(fedreci_secagg_server *s, uint64_t client,
                                          const fedreci_secagg_tag **tags, size_t *n)
{
    if (!s || !tags || !n)
        return fedreci_error(FEDREC_ERR_INVALID, "secagg server tags_for: NULL argument");
    if (s->stage < FEDRECI_SECAGG_UNMASK || s->stage > FEDRECI_SECAGG_DONE || !s->tags)
        return wrong_stage(s, "tags_for");
    long v = fedreci_find_u64(s->roster_ids, s->m, client);
    if (v < 0)
        return fedreci_error(FEDREC_ERR_PROTOCOL, "secagg server: tags for %llu, not in roster",
                             (unsigned long long)client);
    size_t k = 0;
    for (uint32_t j = 0; j < s->deg; j++) {
        uint32_t u = nbr_at(s, (uint32_t)v, j);
        long i = nbr_index(s, u, (uint32_t)v);
        if (i >= 0 && s->has_tag[(size_t)u * s->deg + (size_t)i])
            s->relay_tags[k++] = s->tags[(size_t)u * s->deg + (size_t)i];
    }
    *tags = s->relay_tags;
    *n = k;
    return FEDREC_OK;
}

fedrec_err fedreci_secagg_server_add_unmask(fedreci_secagg_server *s, uint64_t sender,
                                            const fedreci_secagg_reveal *r, size_t n)
{
    if (!s || (n && !r))
        return fedreci_error(FEDREC_ERR_INVALID, "secagg server add_unmask: NULL argument");
    if (s->stage != FEDRECI_SECAGG_UNMASK)
        return wrong_stage(s, "add_unmask");
    long h = fedreci_find_u64(s->roster_ids, s->m, sender);
    if (h < 0 || s->status[h] != ST_SURVIVOR)
        return fedreci_error(FEDREC_ERR_PROTOCOL,
                             "secagg server: reveals from %llu, not a survivor",
                             (unsigned long long)sender);
    if (s->unmasked[h])
        return fedreci_error(FEDREC_ERR_DUPLICATE, "secagg server: second reveal message from %llu",
                             (unsigned long long)sender);
    if (s->culprit[h])
        return fedreci_error(FEDREC_ERR_PROTOCOL,
                             "secagg server: reveals from %llu refused: it already revealed a "
                             "share that does not open its commitment",
                             (unsigned long long)sender);
    if (n > s->deg)
        return fedreci_error(FEDREC_ERR_PROTOCOL,
                             "secagg server: %zu reveals from %llu for %u "
                             "neighbours",
                             n, (unsigned long long)sender, s->deg);
    size_t *slot = malloc((n ? n : 1) * sizeof *slot);
    if (!slot)
        return fedreci_error(FEDREC_ERR_NOMEM, "secagg server: %zu reveals", n);
    fedrec_err e = FEDREC_OK;
    for (size_t i = 0; i < n && !e; i++) {
        long v = fedreci_find_u64(s->roster_ids, s->m, r[i].about);
        long j = v < 0 ? -1 : nbr_index(s, (uint32_t)v, (uint32_t)h);
        int want = v < 0                         ? -1
                   : s->status[v] == ST_SURVIVOR ? FEDRECI_SECAGG_SHARE_B
                   : s->status[v] == ST_DROPPED  ? FEDRECI_SECAGG_SHARE_SK
                                                 : -1;
        if (j < 0 || want < 0)
            e = fedreci_error(FEDREC_ERR_PROTOCOL,
                              "secagg server: reveal from %llu about %llu, which is not its "
                              "neighbour in the round",
                              (unsigned long long)sender, (unsigned long long)r[i].about);
        else if (r[i].kind != want)
            e = fedreci_error(FEDREC_ERR_PROTOCOL,
                              "secagg server: reveal from %llu about %llu is a %s share, the "
                              "request asked for its %s share",
                              (unsigned long long)sender, (unsigned long long)r[i].about,
                              r[i].kind == FEDRECI_SECAGG_SHARE_B ? "b" : "s^SK",
                              want == FEDRECI_SECAGG_SHARE_B ? "b" : "s^SK");
        else if (!fedreci_scalar_is_canonical(r[i].share))
            e = fedreci_error(FEDREC_ERR_PROTOCOL,
                              "secagg server: reveal from %llu about %llu is not a scalar",
                              (unsigned long long)sender, (unsigned long long)r[i].about);
        else {
            /* checked reconstruction: the share must open the commitment the
               dealer made to the share it dealt this holder */
            uint8_t hc[32];
            fedreci_secagg_share_commit(hc, s->p.round_id, r[i].about, sender, r[i].kind,
                                        r[i].share, r[i].opening);
            const uint8_t *want_c = s->cmts[v] + (size_t)j * FEDRECI_SECAGG_COMMIT_BYTES +
                                    (r[i].kind == FEDRECI_SECAGG_SHARE_B ? 0 : 32);
            if (sodium_memcmp(hc, want_c, 32) != 0) {
                s->culprit[h] = 1;
                e = fedreci_error(FEDREC_ERR_CRYPTO,
                                  "secagg server: client %llu revealed a share of %llu's secret "
                                  "that is not the one dealt to it (commitment mismatch); its "
                                  "reveals are discarded and it is named a culprit",
                                  (unsigned long long)sender, (unsigned long long)r[i].about);
            } else {
                slot[i] = (size_t)v * s->deg + (size_t)j;
            }
        }
        for (size_t k = 0; k < i && !e; k++)
            if (slot[k] == slot[i])
                e = fedreci_error(FEDREC_ERR_PROTOCOL,
                                  "secagg server: two reveals from %llu about %llu",
                                  (unsigned long long)sender, (unsigned long long)r[i].about);
    }
    if (!e) {
        for (size_t i = 0; i < n; i++) {
            memcpy(s->shares + slot[i] * SB, r[i].share, SB);
            s->have[slot[i]] = 1;
        }
        s->unmasked[h] = 1;
    }
    free(slot);
    return e;
}

/* Lagrange coefficients for holder sets, with a reference set R of t + 1
 * members: for S = R \ {e}, lambda^S_i = lambda^R_i * (x_e - x_i) / x_e. */
typedef struct lagrange_ctx {
    uint32_t t;
    uint32_t *r_xs; /* t + 1 sorted indices, or NULL */
    uint8_t *r_lam; /* (t + 1) x 32 */
} lagrange_ctx;

static void lagrange_free(lagrange_ctx *L)
{
    free(L->r_xs);
    free(L->r_lam);
}

static fedrec_err lagrange_for(lagrange_ctx *L, const uint32_t *xs, uint8_t *lam)
{
    uint32_t t = L->t;
    if (L->r_xs) {
        /* xs (sorted) a subset of R missing exactly one element? */
        uint32_t i = 0, r = 0, missing = 0, e_idx = 0;
        while (r < t + 1 && missing <= 1) {
            if (i < t && xs[i] == L->r_xs[r]) {
                i++;
                r++;
            } else {
                missing++;
                e_idx = r++;
            }
        }
        if (i == t && missing == 1) {
            uint8_t xe[SB], inv[SB], f[SB];
            uint32_t x_e = L->r_xs[e_idx];
            fedreci_scalar_from_u64(xe, x_e);
            if (crypto_core_ristretto255_scalar_invert(inv, xe) != 0)
                return fedreci_error(FEDREC_ERR_INTERNAL, "secagg: zero share index");
            for (uint32_t k = 0, o = 0; k < t + 1; k++) {
                if (k == e_idx)
                    continue;
                uint32_t x_i = L->r_xs[k];
                fedreci_scalar_from_u64(f, x_e > x_i ? x_e - x_i : x_i - x_e);
                if (x_e < x_i)
                    crypto_core_ristretto255_scalar_negate(f, f);
                crypto_core_ristretto255_scalar_mul(f, f, inv);
                crypto_core_ristretto255_scalar_mul(lam + (size_t)o * SB, L->r_lam + (size_t)k * SB,
                                                    f);
                o++;
            }
            return FEDREC_OK;
        }
    }
    return fedreci_shamir_lagrange(xs, t, lam);
}

fedrec_err fedreci_secagg_server_finish(fedreci_secagg_server *s, uint32_t *sum, size_t d)
{
    if (!s || !sum)
        return fedreci_error(FEDREC_ERR_INVALID, "secagg server finish: NULL argument");
    if (s->stage != FEDRECI_SECAGG_UNMASK)
        return wrong_stage(s, "finish");
    if (d != s->p.d)
        return fedreci_error(FEDREC_ERR_INVALID, "secagg server finish: %zu words, expected %u", d,
                             s->p.d);
    const uint32_t t = s->p.t, deg = s->deg;
    /* Every secret needs t shares; count the masks to remove. */
    size_t n_pair = 0;
    for (uint32_t u = 0; u < s->m; u++) {
        if (s->status[u] == ST_NONE)
            continue;
        uint32_t c = 0;
        for (uint32_t j = 0; j < deg; j++)
            c += s->have[(size_t)u * deg + j];
        if (c < t)
            return aborted(s, "secagg server: a secret has %u shares, fewer than t = %u", c, t);
        if (s->status[u] == ST_DROPPED)
            n_pair += surviving_neighbours(s, u);
    }
    fedrec_err e = FEDREC_OK;
    size_t n_self = s->n_survivors;
    lagrange_ctx L = {t, NULL, NULL};
    uint32_t *xs = malloc((size_t)(t + 1) * sizeof *xs);
    uint8_t *ys = fedreci_secmem_alloc((size_t)t * SB);
    uint8_t *lam = malloc((size_t)t * SB);
    uint8_t *sec = fedreci_secmem_alloc(3 * 32);
    uint8_t *self_keys = fedreci_secmem_alloc((n_self ? n_self : 1) * 32);
    int8_t *self_signs = malloc(n_self ? n_self : 1);
    uint8_t *pair_keys = fedreci_secmem_alloc((n_pair ? n_pair : 1) * 32);
    int8_t *pair_signs = malloc(n_pair ? n_pair : 1);
    if (!xs || !ys || !lam || !sec || !self_keys || !self_signs || !pair_keys || !pair_signs) {
        e = fedreci_error(FEDREC_ERR_NOMEM, "secagg server finish: %zu + %zu masks", n_self,
                          n_pair);
        goto out;
    }
    /* Reference set: the first t + 1 members that revealed. */
    {
        uint32_t c = 0;
        for (uint32_t u = 0; u < s->m && c < t + 1; u++)
            if (s->unmasked[u])
                xs[c++] = u + 1;
        if (c == t + 1 && t >= 8) {
            L.r_xs = malloc((size_t)(t + 1) * sizeof *L.r_xs);
            L.r_lam = malloc((size_t)(t + 1) * SB);
            if (!L.r_xs || !L.r_lam) {
                e = fedreci_error(FEDREC_ERR_NOMEM, "secagg server finish: Lagrange cache");
                goto out;
            }
            memcpy(L.r_xs, xs, (size_t)(t + 1) * sizeof *xs);
            e = fedreci_shamir_lagrange(L.r_xs, t + 1, L.r_lam);
            if (e)
                goto out;
        }
    }
    uint8_t *r = sec, *seed = sec + 32, *ka = sec + 64;
    size_t i_self = 0, i_pair = 0;
    for (uint32_t u = 0; u < s->m; u++) {
        if (s->status[u] == ST_NONE)
            continue;
        uint32_t c = 0;
        for (uint32_t j = 0; j < deg && c < t; j++) {
            size_t slot = (size_t)u * deg + j;
            if (!s->have[slot])
                continue;
            xs[c] = nbr_at(s, u, j) + 1;
            memcpy(ys + (size_t)c * SB, s->shares + slot * SB, SB);
            c++;
        }
        e = lagrange_for(&L, xs, lam);
        if (e)
            goto out;
        fedreci_shamir_combine(lam, ys, t, r);
        uint64_t id = s->roster_ids[u];
        if (s->status[u] == ST_SURVIVOR) {
            uint8_t *bk = self_keys + i_self * 32;
            fedreci_secagg_seed_from_scalar(bk, FEDRECI_LABEL_SELF, r, s->p.round_id, id);
            /* every share used opened the dealer's commitment, so a b that is
               not the committed one means the dealer dealt inconsistent shares */
            uint8_t cb[32];
            fedreci_secagg_b_commit(cb, s->p.round_id, id, bk);
            if (sodium_memcmp(cb, s->cmts[u] + 64, 32) != 0) {
                s->culprit[u] = 1;
                e = aborted(s,
                            "secagg server: the shares of a survivor's self-mask seed (roster "
                            "member %u) rebuild a value that is not its committed b; the dealer "
                            "is named a culprit (%u)",
                            u, u);
                goto out;
            }
            self_signs[i_self++] = -1;
            continue;
        }
        /* Dropped: rebuild s^SK, check it against the signed s_pk, and the
           pair masks its surviving neighbours added. */
        fedreci_secagg_seed_from_scalar(seed, FEDRECI_LABEL_SK, r, s->p.round_id, id);
        {
            uint8_t pk[32];
            if (crypto_scalarmult_base(pk, seed) != 0 ||
                sodium_memcmp(pk, s->roster[u].s_pk, 32) != 0) {
                s->culprit[u] = 1;
                e = aborted(s,
                            "secagg server: the shares of a dropped client's mask key (roster "
                            "member %u) rebuild a key that does not match its advertised s_pk; "
                            "the dealer is named a culprit (%u)",
                            u, u);
                goto out;
            }
        }
        for (uint32_t j = 0; j < deg; j++) {
            uint32_t v = nbr_at(s, u, j);
            if (s->status[v] != ST_SURVIVOR)
                continue;
            uint64_t vid = s->roster_ids[v];
            e = fedreci_secagg_ka(ka, seed, s->roster[v].s_pk);
            if (e)
                goto out;
            fedreci_secagg_pair_derive(pair_keys + i_pair * 32, FEDRECI_LABEL_PAIR, ka,
                                       s->p.round_id, id, vid);
            /* v added sign(v, u) * PRG; remove it. */
            pair_signs[i_pair++] = vid < id ? -1 : 1;
        }
    }
    uint8_t nonce[FEDRECI_PRG_NONCE_BYTES];
    fedreci_prg_nonce(nonce, s->p.round_id, FEDRECI_PRG_SELF_MASK);
    fedreci_prg_add(self_keys, self_signs, i_self, nonce, 0, s->sum, d);
    fedreci_prg_nonce(nonce, s->p.round_id, FEDRECI_PRG_PAIR_MASK);
    fedreci_prg_add(pair_keys, pair_signs, i_pair, nonce, 0, s->sum, d);
    memcpy(sum, s->sum, d * sizeof *sum);
    s->stage = FEDRECI_SECAGG_DONE;
out:
    lagrange_free(&L);
    free(xs);
    if (ys)
        fedreci_secmem_free(ys);
    free(lam);
    if (sec)
        fedreci_secmem_free(sec);
    if (self_keys)
        fedreci_secmem_free(self_keys);
    free(self_signs);
    if (pair_keys)
        fedreci_secmem_free(pair_keys);
    free(pair_signs);
    return e;
}

size_t fedreci_secagg_server_culprits(fedreci_secagg_server *s, const uint64_t **ids)
{
    if (!s || !ids)
        return 0;
    *ids = NULL;
    size_t n = s->n_seed_culprits; /* left out by a seed step retry */
    for (uint32_t u = 0; s->culprit && u < s->m; u++)
        n += s->culprit[u];
    if (!n)
        return 0;
    uint64_t *v = realloc(s->culprit_ids, n * sizeof *v);
    if (!v)
        return 0;
    s->culprit_ids = v;
    n = 0;
    for (size_t i = 0; i < s->n_seed_culprits; i++)
        v[n++] = s->seed_culprits[i];
    for (uint32_t u = 0; s->culprit && u < s->m; u++)
        if (s->culprit[u])
            v[n++] = s->roster_ids[u];
    if (s->n_seed_culprits)
        qsort(v, n, sizeof *v, cmp_u64);
    *ids = v;
    return n;
}
