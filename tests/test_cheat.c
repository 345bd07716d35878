/* The cheating-coordinator suite (issue 14): a copy of the engine compiled
 * with -DFEDREC_CHEAT (tests/CMakeLists.txt fedrec_coordinator_cheat; never
 * in the daemon) serves a round on tcp:// to shoppers that are real client
 * library handles (fedrec_client_open_with, fedrec_client_sync: the store,
 * the ledger, client/session over nng). The engine runs the protocol; the
 * attack rewrites the replies it sends (fedreci_cheat_on_reply: every reply,
 * the model reply included), one deviation per test:
 *
 *  - test_below_floors: a round of 5 (k = 4, t = 3) offered to shoppers
 *    with the library's default floors;
 *  - test_substituted_key: a neighbour's advert under another identity key
 *    (its id kept), and a neighbour's advert with its X25519 key replaced
 *    under its real identity key;
 *  - test_roster_duplicate / test_roster_missing: a roster listing one id
 *    twice, and one without the client it is sent to;
 *  - test_replayed_roster / test_replayed_unmask: round 2's roster, or its
 *    unmask request, replaced by the same client's message of round 1;
 *  - test_relay_not_addressed: share bundles relabelled to another member;
 *  - test_survivor_and_dropped: an unmask request naming a client both a
 *    survivor and dropped (asking one neighbour for its b and s^SK shares);
 *  - test_unmask_few_survivors: an unmask request naming only the client
 *    itself a survivor (fewer than t);
 *  - test_second_unmask_request: a second unmask request, another set, in
 *    place of the consistency relay;
 *  - test_split_survivor_sets: every member told a different survivor set,
 *    planned so that, answered, the requests would unmask the target with no
 *    colluding client (classic SecAgg, k = 5, t = 3, the lowest threshold
 *    the client's floors can be set to); the consistency check stops it;
 *  - test_seed_*: a ground graph seed: a contribution altered in the
 *    target's relay, a digest over a commitment the coordinator made (with
 *    the contribution that opens it), the target left out after the reveals,
 *    a contribution withheld from the target's relay, two members left out;
 *  - test_crafted_model / test_model_version: one shopper sent other
 *    factors (with their checksum) or a model of another version;
 *  - test_params_changed: one shopper sent other round parameters (n, k, t,
 *    clip, scale, public graph seed, model version), one at a time.
 * The binding attacks need the engine to pass the target's advert to its
 * neighbours (fedreci_cheat_any_binding), as a deviating coordinator would.
 *
 * For each: the oracle takes everything the coordinator collected (every
 * request that decoded: adverts, share bundles' commitments, reveals;
 * fedreci_cheat_on_request) and tries the reconstruction: for every client
 * and each of its two secrets it rebuilds the Shamir secret from the
 * revealed shares when at least t distinct holders revealed one, and checks
 * it against the client's own commitment (b against c_b, s^SK against the
 * s_pk of its signed advert). It asserts that no client's masked input can
 * be unmasked individually: no client has b rebuilt together with its own
 * s^SK, or with the s^SK of every other member (which gives every pairwise
 * mask of its input; the complete graph here). In the honest round of
 * test_replayed_roster it also asserts that every survivor's b is rebuilt,
 * and in test_oracle_control one s^SK (the oracle finds secrets when they
 * are there). Each attacked shopper's sync returns round_outcome
 * FEDREC_ERR_REFUSED and its ledger's last entry is a refusal naming the
 * round, the reason and what was withheld. No timed assertions. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <nng/nng.h>
#include <sodium.h>

#include "client/client_internal.h"
#include "coordinator/engine_internal.h"
#include "core/err.h"
#include "core/secagg/kdf.h"
#include "core/secagg/secagg.h"
#include "core/secagg/shamir.h"
#include "harness_engine.h"
#include "proto/wire.h"

#define NC 5   /* shoppers: k = 4, t = 3 */
#define NMAX 6 /* test_split_survivor_sets: 6 shoppers, k = 5, t = 3 */
#define N_ITEMS 12
#define K_FACTORS 2
#define MAX_ROUNDS 4
#define MAX_REVEALS 256

static const uint8_t KEY[FEDREC_STORE_KEY_BYTES] = {7, 7, 7};

enum attack {
    A_NONE = 0,
    A_SUBST_ID_KEY,
    A_SUBST_ADVERT,
    A_ROSTER_DUP,
    A_ROSTER_MISSING,
    A_REPLAY_ROSTER,
    A_RELAY_OTHER,
    A_SURV_AND_DROP,
    A_DROP_AT_RELAY,  /* not an attack: the control (an Error instead of the relay) */
    A_SPLIT_SETS,     /* a different survivor set for each member */
    A_SEED_ALTER,     /* one contribution altered in the target's relay */
    A_SEED_FORGE,     /* the target's digest over a commitment the coordinator made */
    A_SEED_LEAVE_OUT, /* the target said not to have revealed, in every relay */
    A_SEED_TWO_OUT,   /* the target and another member said not to have revealed */
    A_MODEL_CRAFTED,  /* other factors (with their checksum) for the target */
    A_MODEL_VERSION,  /* a model of another version for the target */
    A_PARAMS,         /* other round parameters for the target (G.param) */
    A_REPLAY_UNMASK,  /* round 2's unmask request: the target's of round 1 */
    A_UNMASK_FEW,     /* an unmask request naming fewer than t survivors */
    A_SECOND_UNMASK,  /* a second unmask request (another set) instead of the tags */
    A_SEED_WITHHOLD,  /* the target's relay without the last member's contribution */
    A_SEED_GRIND,     /* retries of the seed step after everyone revealed (G.announce) */
};

/* A_PARAMS: the parameter changed. */
enum param { P_N, P_K, P_T, P_CLIP, P_SCALE, P_SEED, P_VERSION, P_COUNT, P_BUDGET };

/* What the coordinator collected in one round (by round_id - 1). */
typedef struct collected {
    uint64_t members[NMAX + 1]; /* the honest roster's ids (x of a share: 1-based position) */
    size_t n_members;
    uint64_t ids[NMAX];
    uint8_t s_pk[NMAX][32]; /* from the signed adverts */
    int has_pk[NMAX];
    uint8_t seed_commit[NMAX][32]; /* from the signed adverts */
    uint8_t c_b[NMAX][32];         /* from the share bundles' commitments */
    int has_cb[NMAX];
    struct {
        uint64_t holder, about;
        uint8_t kind;
        uint8_t share[32];
    } rv[MAX_REVEALS];
    size_t n_rv;
} collected;

static struct {
    pthread_mutex_t mu;
    int attack;
    int param;           /* A_PARAMS: enum param */
    uint64_t target;     /* the shopper attacked */
    int all;             /* rewrite every member's replies, not only the target's */
    uint64_t round_from; /* the attack applies from this round on */
    int applied;         /* replies rewritten */
    collected col[MAX_ROUNDS];
    uint8_t *saved_roster; /* the target's roster reply of round 1 (for the replay) */
    size_t saved_len;
    uint8_t *saved_unmask; /* the target's unmask request of round 1 */
    size_t saved_unmask_len;
    uint8_t forged[32]; /* A_SEED_FORGE: the contribution the coordinator chose */
    size_t forged_at;   /* ... for this member index */
    uint32_t announce;  /* seed step retries announced (UINT32_MAX: the configured) */
    uint32_t reveals[FEDRECI_SECAGG_SEED_RETRIES_CAP + 2]; /* SeedReveals seen per attempt */
    uint64_t ground[FEDRECI_SECAGG_SEED_RETRIES_CAP + 2];  /* A_SEED_GRIND: who was left out */
} G = {.mu = PTHREAD_MUTEX_INITIALIZER, .announce = UINT32_MAX};

static collected *col_of(uint64_t round_id)
{
    return round_id >= 1 && round_id <= MAX_ROUNDS ? &G.col[round_id - 1] : NULL;
}

static int slot_of(collected *c, uint64_t id)
{
    for (int i = 0; i < NMAX; i++)
        if (c->ids[i] == id)
            return i;
    for (int i = 0; i < NMAX; i++)
        if (!c->ids[i]) {
            c->ids[i] = id;
            return i;
        }
    return -1;
}

/* ---- the hooks (engine threads, engine lock held: record, never assert) ---- */

void fedreci_cheat_on_request(const fedreci_wire_env *env)
{
    pthread_mutex_lock(&G.mu);
    collected *c = col_of(env->round_id);
    if (!c) {
        pthread_mutex_unlock(&G.mu);
        return;
    }
    if (env->body_case == FEDREC__V1__ENVELOPE__BODY_ADVERTISE_KEYS) {
        fedreci_secagg_advert a;
        int i = slot_of(c, env->client_id);
        if (i >= 0 && fedreci_wire_get_advert(env, &a) == FEDREC_OK) {
            memcpy(c->s_pk[i], a.s_pk, 32);
            memcpy(c->seed_commit[i], a.seed_commit, 32);
            c->has_pk[i] = 1;
        }
    } else if (env->body_case == FEDREC__V1__ENVELOPE__BODY_SHARE_KEYS) {
        fedreci_secagg_ciphertext *cts = NULL;
        size_t n = 0;
        int i = slot_of(c, env->client_id);
        if (i >= 0 && fedreci_wire_get_ciphertexts(env, 64, &cts, &n) == FEDREC_OK && n > 0 &&
            cts[0].commit) {
            memcpy(c->c_b[i], cts[0].commit + 64, 32);
            c->has_cb[i] = 1;
        }
        free(cts);
    } else if (env->body_case == FEDREC__V1__ENVELOPE__BODY_SEED_REVEAL) {
        uint32_t a = 0;
        if (fedreci_wire_get_seed_attempt(env, &a) == FEDREC_OK &&
            a < sizeof G.reveals / sizeof *G.reveals)
            G.reveals[a]++;
    } else if (env->body_case == FEDREC__V1__ENVELOPE__BODY_UNMASK) {
        fedreci_secagg_reveal *rv = NULL;
        size_t n = 0;
        if (fedreci_wire_get_reveals(env, 64, &rv, &n) == FEDREC_OK)
            for (size_t j = 0; j < n && c->n_rv < MAX_REVEALS; j++) {
                c->rv[c->n_rv].holder = env->client_id;
                c->rv[c->n_rv].about = rv[j].about;
                c->rv[c->n_rv].kind = rv[j].kind;
                memcpy(c->rv[c->n_rv].share, rv[j].share, 32);
                c->n_rv++;
            }
        free(rv);
    }
    pthread_mutex_unlock(&G.mu);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static long index_of(const uint64_t *ids, size_t n, uint64_t id)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] == id)
            return (long)i;
    return -1;
}

/* The roster reply to hd.client_id rewritten by the attack (NULL: keep). */
static nng_msg *cheat_roster(const fedreci_wire_env *env, const fedreci_wire_hdr *hd,
                             const collected *c)
{
    fedreci_secagg_advert *ro = NULL;
    size_t m = 0;
    const uint8_t *digest = NULL;
    if (fedreci_wire_get_seed_digest(env, &digest) ||
        fedreci_wire_get_roster(env, hd->client_id, 1, 64, &ro, &m))
        return NULL;
    uint64_t ids[2 * NMAX + 2];
    size_t n_ids = 0;
    const fedreci_secagg_advert *ap[NMAX + 1];
    size_t na = 0;
    static const uint8_t zero[32];
    uint8_t forged_digest[32];
    int changed = 0;
    if (G.attack == A_SEED_FORGE && c && c->n_members == m && m <= NMAX) {
        /* a digest over the roster with one other member's commitment
           replaced by one the coordinator made: it knows the contribution
           that opens it before the target reveals */
        uint8_t commits[NMAX * 32];
        for (size_t i = 0; i < m; i++) {
            long s = index_of(c->ids, NMAX, c->members[i]);
            if (s < 0)
                goto out;
            memcpy(commits + 32 * i, c->seed_commit[s], 32);
        }
        G.forged_at = c->members[0] == hd->client_id ? 1 : 0;
        randombytes_buf(G.forged, sizeof G.forged);
        fedreci_secagg_seed_commit(commits + 32 * G.forged_at, hd->round_id,
                                   c->members[G.forged_at], G.forged);
        fedreci_secagg_seed_digest(forged_digest, hd->round_id, 0, c->members, commits, m);
        digest = forged_digest;
        changed = 1;
    }
    for (size_t i = 0; i < m && i < NMAX + 1; i++) {
        fedreci_secagg_advert *a = &ro[i];
        int self = a->client_id == hd->client_id;
        if (G.attack == A_ROSTER_MISSING && self) {
            changed = 1;
        } else {
            ids[n_ids++] = a->client_id;
            if (G.attack == A_ROSTER_DUP && !changed && !self) {
                ids[n_ids++] = a->client_id; /* listed twice */
                changed = 1;
            }
        }
        if (memcmp(a->identity_pk, zero, 32) == 0 || (G.attack == A_ROSTER_MISSING && self))
            continue; /* no advert carried for this member */
        if (!self && !changed && G.attack == A_SUBST_ID_KEY) {
            uint8_t sk[64];
            crypto_sign_keypair(a->identity_pk, sk); /* the coordinator's key, the id kept */
            changed = 1;
        } else if (!self && !changed && G.attack == A_SUBST_ADVERT) {
            uint8_t sk[32];
            randombytes_buf(sk, sizeof sk);
            if (crypto_scalarmult_base(a->c_pk, sk) == 0) /* the coordinator's X25519 key */
                changed = 1;
        }
        ap[na++] = a;
    }
out:;
    nng_msg *out = NULL;
    if (!changed || fedreci_wire_enc_roster(&out, hd, ids, n_ids, digest, ap, na))
        out = NULL;
    free(ro);
    return out;
}

/* The seed relay to hd.client_id (every contribution, and the adverts of
 * its neighbours) rewritten by the attack (NULL: keep). */
static nng_msg *cheat_seed_relay(const fedreci_wire_env *env, const fedreci_wire_hdr *hd,
                                 const collected *c)
{
    uint8_t *contribs = NULL, *missing = NULL;
    fedreci_secagg_advert *ro = NULL;
    if (!c || !c->n_members ||
        fedreci_wire_get_seed_relay(env, c->members, c->n_members, &contribs, &missing, &ro))
        return NULL;
    static const uint8_t zero[32];
    const fedreci_secagg_advert *ap[NMAX + 1];
    size_t na = 0;
    int changed = 0;
    size_t m = c->n_members;
    long self = index_of(c->members, m, hd->client_id);
    long target = index_of(c->members, m, G.target);
    if (G.attack == A_SEED_WITHHOLD && self >= 0 && m > 2) {
        /* one contribution withheld (not even flagged missing) */
        size_t last = c->members[m - 1] == hd->client_id ? m - 2 : m - 1;
        memmove(contribs + 32 * last, contribs + 32 * (last + 1), 32 * (m - 1 - last));
        memmove(missing + last, missing + last + 1, m - 1 - last);
        m--;
        changed = 1;
    } else if (G.attack == A_SEED_ALTER && self >= 0) {
        contribs[32 * (size_t)(self == 0 ? 1 : 0) + 5] ^= 1; /* another member's */
        changed = 1;
    } else if (G.attack == A_SEED_FORGE && self >= 0) {
        memcpy(contribs + 32 * G.forged_at, G.forged, 32);
        changed = 1;
    } else if ((G.attack == A_SEED_LEAVE_OUT || G.attack == A_SEED_TWO_OUT) && target >= 0) {
        /* "did not reveal": its commitment stands in for its contribution */
        long out[2] = {target, target == 0 ? 1 : 0};
        for (int j = 0; j < (G.attack == A_SEED_TWO_OUT ? 2 : 1); j++) {
            long s = index_of(c->ids, NMAX, c->members[out[j]]);
            if (s < 0)
                goto done;
            memcpy(contribs + 32 * (size_t)out[j], c->seed_commit[s], 32);
            missing[out[j]] = 1;
        }
        changed = 1;
    }
    for (size_t i = 0; i < m && i < NMAX + 1; i++) {
        fedreci_secagg_advert *a = &ro[i];
        if (memcmp(a->identity_pk, zero, 32) == 0)
            continue; /* no advert carried for this member */
        if (a->client_id != hd->client_id && !changed && G.attack == A_SUBST_ID_KEY) {
            uint8_t sk[64];
            crypto_sign_keypair(a->identity_pk, sk); /* the coordinator's key, the id kept */
            changed = 1;
        } else if (a->client_id != hd->client_id && !changed && G.attack == A_SUBST_ADVERT) {
            uint8_t sk[32];
            randombytes_buf(sk, sizeof sk);
            if (crypto_scalarmult_base(a->c_pk, sk) == 0) /* the coordinator's X25519 key */
                changed = 1;
        }
        ap[na++] = a;
    }
done:;
    nng_msg *out = NULL;
    if (!changed || fedreci_wire_enc_seed_relay(&out, hd, contribs, m, missing, ap, na))
        out = NULL;
    free(contribs);
    free(missing);
    free(ro);
    return out;
}

/* test_split_survivor_sets: the survivor set for member `self` of the
 * roster ids[m], against target u: u's holders v_1..v_{m-1} (roster order
 * without u) are told {u, v_i, v_{i+1}} survived, u itself {u, v_1, v_2},
 * everybody else dropped. Answered, these requests reveal b_u (u named a
 * survivor to all its holders) and the s^SK of every v_j (named dropped by
 * t = 3 of its holders when m = 6): every pairwise mask of u. The lists are
 * sorted; returns the counts. */
static void split_view(const uint64_t *ids, size_t m, uint64_t u, uint64_t self, uint64_t *sv,
                       size_t *ns, uint64_t *dr, size_t *nd)
{
    uint64_t v[NMAX];
    size_t nv = 0;
    for (size_t i = 0; i < m && nv < NMAX; i++)
        if (ids[i] != u)
            v[nv++] = ids[i];
    long me = index_of(v, nv, self);
    size_t a = me < 0 ? 0 : (size_t)me, b = (a + 1) % nv;
    *ns = *nd = 0;
    for (size_t i = 0; i < m; i++) {
        if (ids[i] == u || ids[i] == v[a] || ids[i] == v[b])
            sv[(*ns)++] = ids[i];
        else
            dr[(*nd)++] = ids[i];
    }
}

/* The check-in reply to the target with the parameter G.param changed. */
static nng_msg *cheat_params(const fedreci_wire_env *env, const fedreci_wire_hdr *hd)
{
    fedreci_wire_round w;
    if (env->check_in_reply->status != FEDREC__V1__CHECK_IN_REPLY__STATUS__SELECTED ||
        fedreci_wire_get_round(env, &w))
        return NULL;
    switch (G.param) {
    case P_N:
        w.secagg.n += 1; /* announced 6: still one roster of 5, SecAgg+ k = 4 */
        break;
    case P_K:
        w.secagg.k = 2, w.secagg.t = 2;
        break;
    case P_T:
        w.secagg.t += 1;
        break;
    case P_CLIP:
        w.secagg.clip *= 0.5;
        break;
    case P_SCALE:
        w.secagg.scale *= 0.5;
        break;
    case P_SEED:
        w.secagg.graph_seed[0] ^= 1;
        break;
    case P_BUDGET:
        /* one clipped input alone fills half the ring: the sum of n of them
           wraps (n ceil(clip scale) >= 2^31) */
        w.secagg.scale = 1073741824.0 / w.secagg.clip;
        break;
    default:
        w.model_version += 1;
        break;
    }
    nng_msg *out = NULL;
    if (fedreci_wire_enc_checkin_reply(&out, hd, (int)env->check_in_reply->status, &w,
                                       env->check_in_reply->model_version,
                                       env->check_in_reply->retry_after_ms))
        out = NULL;
    return out;
}

/* The model reply to the target: other factors, with their checksum (and
 * Gram matrix), or the same factors under another version. */
static nng_msg *cheat_model(const fedreci_wire_env *env, const fedreci_wire_hdr *hd)
{
    fedreci_wire_model wm;
    if (env->model_reply->not_modified || fedreci_wire_get_model(env, &wm))
        return NULL;
    size_t ny = (size_t)wm.n_items * wm.k;
    float *y = malloc(ny * sizeof *y), *gram = malloc((size_t)wm.k * wm.k * sizeof *gram);
    uint8_t sum[FEDRECI_WIRE_CHECKSUM_BYTES];
    nng_msg *out = NULL;
    if (!y || !gram)
        goto done;
    memcpy(y, wm.item_factors, ny * sizeof *y);
    if (G.attack == A_MODEL_CRAFTED) {
        for (uint32_t j = 0; j < wm.k; j++)
            y[j] = 3.0f; /* item 0's row: a crafted model singles the shopper out */
        fedreci_wire_checksum(y, ny * sizeof *y, sum);
        for (uint32_t a = 0; a < wm.k; a++)
            for (uint32_t b = 0; b < wm.k; b++) {
                double g = 0;
                for (uint32_t i = 0; i < wm.n_items; i++)
                    g += (double)y[(size_t)i * wm.k + a] * y[(size_t)i * wm.k + b];
                gram[a * wm.k + b] = (float)g;
            }
        wm.item_factors = y;
        wm.gram = gram;
        wm.checksum = sum;
    } else {
        wm.version += 1;
    }
    if (fedreci_wire_enc_model_reply(&out, hd, &wm, wm.version))
        out = NULL;
done:
    free(y);
    free(gram);
    return out;
}

static void save_msg(nng_msg *msg, uint8_t **buf, size_t *len)
{
    if (*buf)
        return;
    *buf = malloc(nng_msg_len(msg));
    if (*buf) {
        memcpy(*buf, nng_msg_body(msg), nng_msg_len(msg));
        *len = nng_msg_len(msg);
    }
}

static nng_msg *saved_copy(const uint8_t *buf, size_t len)
{
    nng_msg *out = NULL;
    if (!buf || nng_msg_alloc(&out, 0) != 0)
        return NULL;
    if (nng_msg_append(out, buf, len) != 0) {
        nng_msg_free(out);
        return NULL;
    }
    return out;
}

int fedreci_cheat_any_binding(void)
{
    pthread_mutex_lock(&G.mu);
    int on = G.attack == A_MODEL_CRAFTED || (G.attack == A_PARAMS && G.param != P_VERSION);
    pthread_mutex_unlock(&G.mu);
    return on;
}

int fedreci_cheat_endorse_peers(uint64_t round, uint64_t who, uint64_t *out, size_t cap, size_t *n)
{
    pthread_mutex_lock(&G.mu);
    const collected *c = col_of(round);
    int on = G.attack == A_SPLIT_SETS && c && c->n_members && cap >= NMAX + 1;
    if (on) {
        uint64_t sv[NMAX + 1], dr[NMAX + 1];
        size_t ns, nd;
        split_view(c->members, c->n_members, G.target, who, sv, &ns, dr, &nd);
        *n = 0;
        for (size_t i = 0; i < ns; i++)
            if (sv[i] != who)
                out[(*n)++] = sv[i]; /* classic SecAgg: every who a neighbour */
    }
    pthread_mutex_unlock(&G.mu);
    return on;
}

uint32_t fedreci_cheat_announced_retries(uint32_t configured)
{
    pthread_mutex_lock(&G.mu);
    uint32_t a = G.announce == UINT32_MAX ? configured : G.announce;
    pthread_mutex_unlock(&G.mu);
    return a;
}

/* A_SEED_GRIND: after every attempt, the last roster member is claimed
 * missing, for another seed. */
int fedreci_cheat_seed_grind(uint64_t round, uint32_t attempt, const uint64_t *roster, size_t m,
                             uint64_t *victim)
{
    (void)round;
    pthread_mutex_lock(&G.mu);
    int on = G.attack == A_SEED_GRIND && m > 0 && attempt + 1 < sizeof G.ground / sizeof *G.ground;
    if (on) {
        *victim = roster[m - 1];
        G.ground[attempt] = *victim;
        G.applied++;
    }
    pthread_mutex_unlock(&G.mu);
    return on;
}

int fedreci_cheat_unverified_endorsements(void)
{
    pthread_mutex_lock(&G.mu);
    int on = G.attack == A_SPLIT_SETS;
    pthread_mutex_unlock(&G.mu);
    return on;
}

nng_msg *fedreci_cheat_on_reply(nng_msg *msg)
{
    fedreci_wire_env *env = NULL;
    if (fedreci_wire_decode_msg(msg, 64u << 20, &env))
        return msg;
    fedreci_wire_hdr hd = fedreci_wire_header(env);
    nng_msg *out = NULL;
    pthread_mutex_lock(&G.mu);
    collected *c = col_of(hd.round_id);
    if (c && env->body_case == FEDREC__V1__ENVELOPE__BODY_ROSTER && !c->n_members) {
        /* the honest roster: the x-coordinates of the shares */
        const Fedrec__V1__Roster *r = env->roster;
        for (size_t i = 0; i < r->n_member_ids && i < NMAX + 1; i++)
            c->members[c->n_members++] = r->member_ids[i];
    }
    if (hd.round_id == 1 && hd.client_id == G.target) {
        if (env->body_case == FEDREC__V1__ENVELOPE__BODY_ROSTER)
            save_msg(msg, &G.saved_roster, &G.saved_len);
        if (env->body_case == FEDREC__V1__ENVELOPE__BODY_UNMASK_REQUEST)
            save_msg(msg, &G.saved_unmask, &G.saved_unmask_len);
    }
    int on = G.attack != A_NONE && hd.round_id >= G.round_from &&
             (G.all || G.target == 0 || hd.client_id == G.target);
    switch (on ? env->body_case : FEDREC__V1__ENVELOPE__BODY__NOT_SET) {
    case FEDREC__V1__ENVELOPE__BODY_CHECK_IN_REPLY:
        if (G.attack == A_PARAMS)
            out = cheat_params(env, &hd);
        break;
    case FEDREC__V1__ENVELOPE__BODY_MODEL_REPLY:
        if (G.attack == A_MODEL_CRAFTED || G.attack == A_MODEL_VERSION)
            out = cheat_model(env, &hd);
        break;
    case FEDREC__V1__ENVELOPE__BODY_ROSTER:
        if (G.attack == A_REPLAY_ROSTER && hd.round_id > 1)
            out = saved_copy(G.saved_roster, G.saved_len);
        else if (G.attack != A_REPLAY_ROSTER)
            out = cheat_roster(env, &hd, c);
        break;
    case FEDREC__V1__ENVELOPE__BODY_SEED_RELAY:
        out = cheat_seed_relay(env, &hd, c);
        break;
    case FEDREC__V1__ENVELOPE__BODY_CONSISTENCY_RELAY:
        if (G.attack == A_SECOND_UNMASK && c && c->n_members > 2) {
            /* the first set named every member a survivor; this one names
               another member dropped, for its s^SK next to its b */
            uint64_t sv[NMAX + 1], dr[1];
            size_t ns = 0;
            dr[0] = c->members[0] == hd.client_id ? c->members[1] : c->members[0];
            for (size_t i = 0; i < c->n_members && ns < NMAX; i++)
                if (c->members[i] != dr[0])
                    sv[ns++] = c->members[i];
            fedreci_wire_hdr h2 = hd; /* as the unmask request is sent */
            h2.stage = FEDRECI_WIRE_STAGE_MASKED_INPUT;
            if (fedreci_wire_enc_unmask_request(&out, &h2, sv, ns, dr, 1))
                out = NULL;
        }
        break;
    case FEDREC__V1__ENVELOPE__BODY_SHARE_RELAY: {
        fedreci_secagg_ciphertext *cts = NULL;
        size_t n = 0;
        if (G.attack == A_DROP_AT_RELAY &&
            fedreci_wire_enc_error(&out, &hd, FEDREC_ERR_BUSY, "test: go away") != FEDREC_OK)
            out = NULL;
        if (G.attack == A_RELAY_OTHER && c && c->n_members > 1 &&
            fedreci_wire_get_ciphertexts(env, 64, &cts, &n) == FEDREC_OK && n > 0) {
            /* bundles addressed to another member, relabelled */
            uint64_t other = c->members[0] == hd.client_id ? c->members[1] : c->members[0];
            for (size_t i = 0; i < n; i++)
                cts[i].to = other;
            if (fedreci_wire_enc_ciphertexts(&out, &hd, 1, cts, n))
                out = NULL;
        }
        free(cts);
        break;
    }
    case FEDREC__V1__ENVELOPE__BODY_UNMASK_REQUEST: {
        const uint64_t *sv, *dr;
        size_t ns, nd;
        if (G.attack == A_REPLAY_UNMASK && hd.round_id > 1) {
            out = saved_copy(G.saved_unmask, G.saved_unmask_len);
        } else if (G.attack == A_UNMASK_FEW && c && c->n_members) {
            /* only the target survived: every neighbour's s^SK, and its own b
               from the others (were they asked) */
            uint64_t d2[NMAX + 1];
            size_t n2 = 0;
            for (size_t i = 0; i < c->n_members && n2 < NMAX; i++)
                if (c->members[i] != hd.client_id)
                    d2[n2++] = c->members[i];
            if (fedreci_wire_enc_unmask_request(&out, &hd, &hd.client_id, 1, d2, n2))
                out = NULL;
        } else if (G.attack == A_SPLIT_SETS && c && c->n_members) {
            uint64_t s2[NMAX + 1], d2[NMAX + 1];
            size_t n2s, n2d;
            split_view(c->members, c->n_members, G.target, hd.client_id, s2, &n2s, d2, &n2d);
            if (fedreci_wire_enc_unmask_request(&out, &hd, s2, n2s, d2, n2d))
                out = NULL;
        } else if (G.attack == A_SURV_AND_DROP &&
                   fedreci_wire_get_unmask_request(env, &sv, &ns, &dr, &nd) == FEDREC_OK &&
                   ns > 1) {
            /* another survivor named dropped too: its b and its s^SK shares */
            uint64_t d2[NMAX + 1];
            size_t n2 = 0;
            for (size_t i = 0; i < nd && n2 < NMAX; i++)
                d2[n2++] = dr[i];
            d2[n2++] = sv[0] == hd.client_id ? sv[1] : sv[0];
            qsort(d2, n2, sizeof *d2, cmp_u64);
            if (fedreci_wire_enc_unmask_request(&out, &hd, sv, ns, d2, n2))
                out = NULL;
        }
        break;
    }
    default:
        break;
    }
    if (out)
        G.applied++;
    pthread_mutex_unlock(&G.mu);
    fedreci_wire_free(env);
    if (!out)
        return msg;
    nng_msg_free(msg);
    return out;
}

/* ---- the oracle -------------------------------------------------------------- */

/* Rebuilds client slot i's secret of `kind` from the reveals in c: 1 when at
 * least t distinct holders revealed one and the rebuilt secret matches the
 * client's commitment (b: c_b; s^SK: the s_pk of its signed advert). */
static int rebuilt(const collected *c, uint64_t round_id, int i, uint8_t kind, uint32_t t)
{
    uint32_t xs[NMAX + 1];
    uint8_t ys[(NMAX + 1) * 32];
    size_t n = 0;
    for (size_t j = 0; j < c->n_rv && n < NMAX + 1; j++) {
        if (c->rv[j].about != c->ids[i] || c->rv[j].kind != kind)
            continue;
        long x = index_of(c->members, c->n_members, c->rv[j].holder);
        int dup = 0;
        for (size_t q = 0; q < n; q++)
            dup |= xs[q] == (uint32_t)(x + 1);
        if (x < 0 || dup)
            continue;
        xs[n] = (uint32_t)(x + 1);
        memcpy(ys + 32 * n, c->rv[j].share, 32);
        n++;
    }
    if (n < t)
        return 0;
    uint8_t r[32], seed[32], check[32];
    if (fedreci_shamir_recover(xs, ys, n, t, r))
        return 0;
    if (kind == FEDRECI_SECAGG_SHARE_B) {
        fedreci_secagg_seed_from_scalar(seed, FEDRECI_LABEL_SELF, r, round_id, c->ids[i]);
        fedreci_secagg_b_commit(check, round_id, c->ids[i], seed);
        return c->has_cb[i] && sodium_memcmp(check, c->c_b[i], 32) == 0;
    }
    fedreci_secagg_seed_from_scalar(seed, FEDRECI_LABEL_SK, r, round_id, c->ids[i]);
    return crypto_scalarmult_base(check, seed) == 0 && c->has_pk[i] &&
           sodium_memcmp(check, c->s_pk[i], 32) == 0;
}

/* No client of round_id can be unmasked from what the coordinator
 * collected: none has its b rebuilt together with its own s^SK or with the
 * s^SK of every other member that advertised (its pairwise masks; the
 * graph is complete here). Returns how many b were rebuilt, and *n_s (may
 * be NULL) how many s^SK (the positive controls). */
static int oracle_s(uint64_t round_id, uint32_t t, int *n_s)
{
    pthread_mutex_lock(&G.mu);
    const collected *c = col_of(round_id);
    int nb = 0, b[NMAX] = {0}, s[NMAX] = {0};
    for (int i = 0; c && i < NMAX; i++) {
        if (!c->ids[i])
            continue;
        b[i] = rebuilt(c, round_id, i, FEDRECI_SECAGG_SHARE_B, t);
        s[i] = rebuilt(c, round_id, i, FEDRECI_SECAGG_SHARE_SK, t);
        nb += b[i];
        if (n_s)
            *n_s += s[i];
    }
    for (int i = 0; c && i < NMAX; i++) {
        int all_others = 1;
        for (int j = 0; j < NMAX; j++)
            if (j != i && c->ids[j] && c->has_pk[j] && !s[j])
                all_others = 0;
        if (b[i] && (s[i] || all_others)) {
            pthread_mutex_unlock(&G.mu);
            fail_msg("round %llu: the coordinator rebuilt b and %s of client %016llx: its masked "
                     "input can be unmasked",
                     (unsigned long long)round_id,
                     s[i] ? "its s^SK" : "the s^SK of every other member",
                     (unsigned long long)c->ids[i]);
        }
    }
    pthread_mutex_unlock(&G.mu);
    return nb;
}

static int oracle(uint64_t round_id, uint32_t t)
{
    return oracle_s(round_id, t, NULL);
}

/* ---- shoppers and the coordinator ------------------------------------------ */

typedef struct rig {
    th_model model;
    fedreci_coord *coord;
    const char *urls[1];
    char url[64];
    int n; /* shoppers */
    uint32_t t;
    th_shopper s[NMAX];
} rig;

/* A shopper as th_shopper_open, with all four floors (the threshold
 * fraction too). */
static void shopper_open(th_shopper *s, const char *url, const uint32_t floors[3], double frac,
                         const char *code)
{
    memset(s, 0, sizeof *s);
    s->dir = th_tmpdir("cheat");
    fedrec_client_options o;
    fedrec_client_options_init(&o);
    o.key = KEY;
    o.coordinator_url = url;
    o.min_cohort = floors[0];
    o.min_neighbors = floors[1];
    o.min_threshold = floors[2];
    o.min_threshold_fraction = frac;
    if (fedrec_client_open_with(&s->c, s->dir, &o))
        fail_msg("%s: %s", s->dir, fedrec_errmsg());
    assert_int_equal(fedrec_client_record(s->c, code, 100, 2), FEDREC_OK);
    fedrec_client_info info = {.struct_size = sizeof info};
    assert_int_equal(fedrec_client_get_info(s->c, &info), FEDREC_OK);
    s->id = info.client_id;
    memcpy(s->pk, info.identity_pk, sizeof s->pk);
}

/* The coordinator (rounds of n, k = n - 1, t = threshold or ceil(2k/3)
 * when 0) and n shoppers with purchases; floors: the library's floors
 * (NULL), else floors[0..2] with the threshold fraction frac (0: the
 * library's). */
static void rig_start_n(rig *r, int n, uint32_t threshold, const uint32_t *floors, double frac,
                        int attack)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_lock(&G.mu);
    free(G.saved_roster);
    free(G.saved_unmask);
    G.attack = attack;
    G.param = 0;
    G.target = 0;
    G.all = 0;
    G.round_from = 0;
    G.applied = 0;
    memset(G.col, 0, sizeof G.col);
    G.saved_roster = G.saved_unmask = NULL;
    G.saved_len = G.saved_unmask_len = 0;
    G.announce = UINT32_MAX;
    memset(G.reveals, 0, sizeof G.reveals);
    memset(G.ground, 0, sizeof G.ground);
    pthread_mutex_unlock(&G.mu);
    r->n = n;
    r->t = threshold ? threshold : fedreci_coord_default_threshold((uint32_t)n - 1);
    th_model_init(&r->model, N_ITEMS, K_FACTORS, 37, 19, 0.02f, "C%03d");
    fedreci_coord_config cfg;
    th_coord_config(&cfg, r->urls, "tcp://127.0.0.1:0");
    cfg.n_contexts = 32;
    cfg.cohort_size = (uint32_t)n;
    cfg.min_cohort = (uint32_t)n;
    cfg.threshold = threshold;
    for (int s = 0; s < 4; s++)
        cfg.stage_ms[s] = 20000;
    cfg.checkin_window_ms = 60000;
    cfg.seed = 11;
    cfg.opt.n_train = (uint32_t)n;
    fedreci_coord_model m = th_model_start(&r->model, 1);
    r->coord = th_coord_start(&cfg, NULL, &m);
    snprintf(r->url, sizeof r->url, "tcp://127.0.0.1:%d", fedreci_coord_port(r->coord, 0));
    for (int i = 0; i < n; i++) {
        if (floors)
            shopper_open(&r->s[i], r->url, floors, frac, r->model.codes[i]);
        else
            th_shopper_open(&r->s[i], "cheat", r->url, KEY, NULL, r->model.codes[i]);
    }
}

/* rig_start_n for NC shoppers, the default threshold, and floors a round
 * of NC meets (default_floors: the library's, which it does not). */
static void rig_start(rig *r, int default_floors, int attack)
{
    static const uint32_t floors[3] = {NC, NC - 1, 3};
    rig_start_n(r, NC, 0, default_floors ? NULL : floors, 0, attack);
}

static void rig_stop(rig *r)
{
    fedreci_coord_destroy(r->coord);
    for (int i = 0; i < r->n; i++)
        th_shopper_close(&r->s[i]);
    pthread_mutex_lock(&G.mu);
    free(G.saved_roster);
    free(G.saved_unmask);
    G.saved_roster = G.saved_unmask = NULL;
    G.attack = A_NONE;
    pthread_mutex_unlock(&G.mu);
}

/* One sync of every shopper at once; each must return FEDREC_OK, except
 * shopper may_fail (-1: none). */
static void rig_sync(rig *r, int may_fail)
{
    th_shoppers_sync(r->s, r->n, 60000);
    for (int i = 0; i < r->n; i++)
        if (r->s[i].err && i != may_fail)
            fail_msg("shopper %d sync: %s: %s", i, fedrec_strerror(r->s[i].err), r->s[i].msg);
}

static void set_target(const rig *r, int all)
{
    pthread_mutex_lock(&G.mu);
    G.target = r->s[0].id;
    G.all = all;
    pthread_mutex_unlock(&G.mu);
}

static int applied(void)
{
    pthread_mutex_lock(&G.mu);
    int a = G.applied;
    pthread_mutex_unlock(&G.mu);
    return a;
}

/* Shopper s refused round_id: the sync said so, and the ledger's last
 * entry is the refusal with `code`, withholding `what` at `stage`, and a
 * reason containing `why`; `sent` messages `what` of the round went out
 * before it (0 but for a seed step retry refused: the contributions of the
 * attempts it took part in). */
static void expect_refusal_after(const th_shopper *s, uint64_t round_id, uint32_t code,
                                 uint32_t stage, const char *what, const char *why, int sent)
{
    if (s->res.round_outcome != FEDREC_ERR_REFUSED)
        fail_msg("shopper %016llx: round outcome %s, want refused", (unsigned long long)s->id,
                 fedrec_strerror(s->res.round_outcome));
    assert_int_equal(s->res.round_id, round_id);
    size_t n = 0;
    assert_int_equal(fedrec_client_ledger_count(s->c, &n), FEDREC_OK);
    assert_true(n >= 1);
    fedrec_ledger_entry e = {.struct_size = sizeof e};
    assert_int_equal(fedrec_client_ledger_get(s->c, n - 1, &e), FEDREC_OK);
    assert_int_equal(e.kind, FEDREC_LEDGER_REFUSAL);
    if (e.refusal != code || !strstr(e.reason, why) || e.stage != stage || strcmp(e.what, what))
        fail_msg("shopper %016llx: refusal %u at stage %u withholding '%s' (%s), want %u at %u "
                 "withholding '%s' with '%s'",
                 (unsigned long long)s->id, e.refusal, e.stage, e.what, e.reason, code, stage, what,
                 why);
    assert_int_equal(e.round_id, round_id);
    assert_int_equal(e.bytes_sent, 0);
    /* nothing of a later stage, and not the withheld message (beyond the
       `sent` allowed), went out for the round (a stage's earlier message may
       have: the advert before the seed contribution, the consistency tags
       before the unmask shares) */
    int same = 0;
    for (size_t j = 0; j + 1 < n; j++) {
        fedrec_ledger_entry u = {.struct_size = sizeof u};
        assert_int_equal(fedrec_client_ledger_get(s->c, j, &u), FEDREC_OK);
        assert_false(u.round_id == round_id && u.stage > stage);
        same += u.round_id == round_id && u.stage == stage && strcmp(u.what, what) == 0;
    }
    assert_int_equal(same, sent);
}

static void expect_refusal(const th_shopper *s, uint64_t round_id, uint32_t code, uint32_t stage,
                           const char *what, const char *why)
{
    expect_refusal_after(s, round_id, code, stage, what, why, 0);
}

/* ---- the attacks ------------------------------------------------------------ */

/* A round of 5 (k = 4, t = 3) offered to shoppers with the library's
 * default floors (n >= 10, k >= 8, t >= 6): all refuse before their first
 * SecAgg message; the coordinator collects nothing to rebuild. */
static void test_below_floors(void **state)
{
    (void)state;
    rig r;
    rig_start(&r, 1, A_NONE);
    rig_sync(&r, -1);
    for (int i = 0; i < NC; i++) {
        expect_refusal(&r.s[i], 1, FEDREC_REFUSAL_BELOW_FLOORS, 0, "key advertisement",
                       "cohort n = 5 is below the app's floor 10");
        assert_int_equal(r.s[i].res.took_part, 0);
        fedrec_ledger_entry e = {.struct_size = sizeof e};
        assert_int_equal(fedrec_client_ledger_get(r.s[i].c, 0, &e), FEDREC_OK);
        assert_int_equal(e.cohort * 100 + e.neighbors * 10 + e.threshold, 543);
    }
    assert_int_equal(oracle(1, r.t), 0);
    rig_stop(&r);
}

/* Runs one round with `attack` aimed at shopper 0 and checks that it
 * refused with `code` at `stage` (withholding `what`, reason with `why`),
 * that the reconstruction oracle finds no client unmaskable, and that the
 * others' syncs ended without error. */
static void one_attack(int attack, uint32_t code, uint32_t stage, const char *what, const char *why)
{
    rig r;
    rig_start(&r, 0, attack);
    set_target(&r, 0);
    rig_sync(&r, -1);
    assert_true(applied() >= 1);
    expect_refusal(&r.s[0], 1, code, stage, what, why);
    oracle(1, r.t);
    rig_stop(&r);
}

static void test_substituted_key(void **state)
{
    (void)state;
    one_attack(A_SUBST_ID_KEY, FEDREC_REFUSAL_ADVERT_ID_MISMATCH, 1, "encrypted key shares",
               "with an identity key whose id is");
    one_attack(A_SUBST_ADVERT, FEDREC_REFUSAL_ADVERT_BAD_SIGNATURE, 1, "encrypted key shares",
               "roster");
}

static void test_roster_duplicate(void **state)
{
    (void)state;
    one_attack(A_ROSTER_DUP, FEDREC_REFUSAL_ROSTER_INVALID, 0, "graph seed contribution",
               "not strictly ascending");
}

static void test_roster_missing(void **state)
{
    (void)state;
    one_attack(A_ROSTER_MISSING, FEDREC_REFUSAL_ROSTER_MISSING_SELF, 0, "graph seed contribution",
               "does not contain client");
}

static void test_relay_not_addressed(void **state)
{
    (void)state;
    one_attack(A_RELAY_OTHER, FEDREC_REFUSAL_RELAY_MISADDRESSED, 2, "masked update",
               "not from a neighbour to this client");
}

static void test_survivor_and_dropped(void **state)
{
    (void)state;
    one_attack(A_SURV_AND_DROP, FEDREC_REFUSAL_UNMASK_BOTH_SETS, 3, "consistency tags",
               "named both survivor and dropped");
}

static void test_unmask_few_survivors(void **state)
{
    (void)state;
    one_attack(A_UNMASK_FEW, FEDREC_REFUSAL_UNMASK_INVALID, 3, "consistency tags",
               "fewer than t survivors");
}

/* A second survivor set in one round: the target's consistency relay is
 * replaced by another unmask request. The session takes one unmask request
 * per round, so it refuses the reply (malformed_reply) before revealing
 * anything. */
static void test_second_unmask_request(void **state)
{
    (void)state;
    one_attack(A_SECOND_UNMASK, FEDREC_REFUSAL_MALFORMED_REPLY, 3, "unmask shares",
               "unexpected reply");
}

/* Classic SecAgg with 6 shoppers, k = 5 and t = 3 (floors n >= 6, k >= 5,
 * t >= 3, t >= k/2: the lowest threshold an app can allow), no colluding
 * client. The coordinator sends each member another survivor set
 * (split_view). First the plan: had every member answered its own request,
 * the coordinator would hold t shares of the target's b and of every other
 * member's s^SK, i.e. the target's input (checked here from the requests,
 * the attack is real). Then the round: every member endorses its set, finds
 * at most one neighbour endorsing the same set, and refuses
 * (consistency_failed, before any share); the oracle rebuilds nothing. */
static void test_split_survivor_sets(void **state)
{
    (void)state;
    enum { N = 6, T = 3 };
    static const uint32_t floors[3] = {N, N - 1, T};
    rig r;
    rig_start_n(&r, N, T, floors, 0.5, A_SPLIT_SETS);
    set_target(&r, 1);
    rig_sync(&r, -1);
    assert_int_equal(applied(), N);
    pthread_mutex_lock(&G.mu);
    const collected *c = col_of(1);
    assert_int_equal(c->n_members, N);
    int b_holders = 0, s_holders[N] = {0};
    for (size_t h = 0; h < N; h++) {
        uint64_t sv[N], dr[N];
        size_t ns, nd;
        split_view(c->members, N, G.target, c->members[h], sv, &ns, dr, &nd);
        assert_true(ns >= T && index_of(sv, ns, c->members[h]) >= 0);
        b_holders += c->members[h] != G.target && index_of(sv, ns, G.target) >= 0;
        for (size_t v = 0; v < N; v++)
            s_holders[v] += v != h && index_of(dr, nd, c->members[v]) >= 0;
    }
    assert_int_equal(b_holders, N - 1); /* b of the target: from all its holders */
    for (size_t v = 0; v < N; v++)      /* s^SK of every other member: from t holders */
        assert_true(c->members[v] == G.target ? s_holders[v] == 0 : s_holders[v] >= T);
    pthread_mutex_unlock(&G.mu);
    /* each asked for the signatures of the neighbours whose tags failed and
       was given every one of them, unchecked: each is over its signer's own
       set, so none counts (the refusal names the signatures given) */
    for (int i = 0; i < N; i++)
        expect_refusal(&r.s[i], 1, FEDREC_REFUSAL_CONSISTENCY_FAILED, 3, "unmask shares",
                       "endorsed the survivor set");
    for (int i = 0; i < N; i++) {
        fedrec_ledger_entry e = {.struct_size = sizeof e};
        size_t n = 0;
        assert_int_equal(fedrec_client_ledger_count(r.s[i].c, &n), FEDREC_OK);
        assert_int_equal(fedrec_client_ledger_get(r.s[i].c, n - 1, &e), FEDREC_OK);
        if (!strstr(e.reason, " signatures)") || strstr(e.reason, "and 0 signatures"))
            fail_msg("shopper %d: %s; want signatures given and refused", i, e.reason);
        /* the ledger holds both consistency messages: the tags, and the
           same again asking for the signatures */
        int cons = 0;
        for (size_t j = 0; j + 1 < n; j++) {
            fedrec_ledger_entry u = {.struct_size = sizeof u};
            assert_int_equal(fedrec_client_ledger_get(r.s[i].c, j, &u), FEDREC_OK);
            cons += u.round_id == 1 && u.stage == 3 && strcmp(u.what, "consistency tags") == 0;
        }
        assert_int_equal(cons, 2);
    }
    assert_int_equal(oracle(1, T), 0);
    rig_stop(&r);
}

/* The graph seed: the coordinator tries to choose it. The target (shopper
 * 0) refuses before it deals a share (seed_mismatch; for a contribution
 * that opens a forged digest, advert_bad_signature: the member signed the
 * commitment to its own contribution) and the others complete
 * the round without it (the oracle rebuilds their b only: the sum); with
 * two members left out every member refuses and the oracle rebuilds
 * nothing. */
static void seed_attack(int attack, int all, int everyone_refuses, uint32_t code, const char *why)
{
    rig r;
    rig_start(&r, 0, attack);
    set_target(&r, all);
    rig_sync(&r, -1);
    assert_true(applied() >= 1);
    for (int i = 0; i < (everyone_refuses ? NC : 1); i++)
        expect_refusal(&r.s[i], 1, code, 1, "encrypted key shares", why);
    for (int i = everyone_refuses ? NC : 1; i < NC; i++) /* the round runs without it */
        assert_int_equal(r.s[i].res.round_outcome, FEDREC_OK);
    assert_int_equal(oracle(1, r.t), everyone_refuses ? 0 : NC - 1);
    rig_stop(&r);
}

static void test_seed_altered(void **state)
{
    (void)state;
    seed_attack(A_SEED_ALTER, 0, 0, FEDREC_REFUSAL_SEED_MISMATCH,
                "do not open the digest of the roster");
}

static void test_seed_forged_digest(void **state)
{
    (void)state;
    /* the relay carries no seed commitments: the member's signature over
       the commitment to its relayed contribution fails */
    seed_attack(A_SEED_FORGE, 0, 0, FEDREC_REFUSAL_ADVERT_BAD_SIGNATURE,
                "the commitment to its relayed seed");
}

static void test_seed_leave_out(void **state)
{
    (void)state;
    seed_attack(A_SEED_LEAVE_OUT, 1, 1, FEDREC_REFUSAL_SEED_MISMATCH,
                "or 1 members are said not to have revealed");
    seed_attack(A_SEED_WITHHOLD, 0, 0, FEDREC_REFUSAL_SEED_MISMATCH,
                "SeedRelay has 64 contribution bytes and 0 members missing for a roster of 5");
    seed_attack(A_SEED_TWO_OUT, 1, 1, FEDREC_REFUSAL_SEED_MISMATCH,
                "or 2 members are said not to have revealed");
}

/* A coordinator that wants more graph seeds than the round announced
 * (cohort 6, k = 5, t = 3, floors t >= k / 2; the SecAgg server
 * configured for 3 retries,
 * the clients told 1): after every attempt it claims its last member
 * missing and re-runs the seed step. The members reveal in attempt 0 (6 of
 * them) and in the one retry announced (5), and every member still in the
 * round refuses the second retry (seed_retry_limit, in its ledger,
 * withholding its graph seed contribution): no contribution of attempt 2
 * reaches the coordinator, so it chose among at most R + 1 = 2 seeds, and
 * nothing secret was dealt (the oracle rebuilds nothing). Then a round
 * announcing 5 retries, more than the app's bound (the default, 3): every
 * shopper refuses it before its advert (below_floors). */
static void test_seed_retry_beyond(void **state)
{
    (void)state;
    static const uint32_t floors[3] = {NMAX, 2, 2};
    rig r;
    rig_start_n(&r, NMAX, 3, floors, 0.5, A_SEED_GRIND);
    pthread_mutex_lock(&G.mu);
    G.announce = 1;
    pthread_mutex_unlock(&G.mu);
    th_shoppers_sync(r.s, r.n, 60000);
    pthread_mutex_lock(&G.mu);
    uint32_t rv0 = G.reveals[0], rv1 = G.reveals[1], rv2 = G.reveals[2];
    uint64_t out0 = G.ground[0], out1 = G.ground[1];
    pthread_mutex_unlock(&G.mu);
    if (rv0 != NMAX)
        for (int i = 0; i < r.n; i++)
            print_message("shopper %d: %s / %s: %s\n", i, fedrec_strerror(r.s[i].err),
                          fedrec_strerror(r.s[i].res.round_outcome), r.s[i].msg);
    assert_int_equal(rv0, NMAX);
    assert_int_equal(rv1, NMAX - 1);
    assert_int_equal(rv2, 0); /* no third seed */
    int refused = 0;
    for (int i = 0; i < r.n; i++) {
        if (r.s[i].id == out0 || r.s[i].id == out1)
            continue; /* left out by a retry: an Error, no refusal */
        /* the refusal last in the ledger, two contributions sent before it
           (attempts 0 and 1), not three */
        expect_refusal_after(&r.s[i], 1, FEDREC_REFUSAL_SEED_RETRY_LIMIT, 0,
                             "graph seed contribution", "the round allows 1 retries", 2);
        assert_string_equal(fedrec_refusal_name(FEDREC_REFUSAL_SEED_RETRY_LIMIT),
                            "seed_retry_limit");
        refused++;
    }
    assert_int_equal(refused, NMAX - 2);
    assert_int_equal(oracle(1, r.t), 0);
    rig_stop(&r);

    rig_start_n(&r, NMAX, 3, floors, 0.5, A_NONE);
    pthread_mutex_lock(&G.mu);
    G.announce = 5;
    pthread_mutex_unlock(&G.mu);
    rig_sync(&r, -1);
    for (int i = 0; i < r.n; i++)
        expect_refusal(&r.s[i], 1, FEDREC_REFUSAL_BELOW_FLOORS, 0, "key advertisement",
                       "seed step retries 5 exceed the app's bound 3");
    pthread_mutex_lock(&G.mu);
    assert_int_equal(G.reveals[0], 0);
    pthread_mutex_unlock(&G.mu);
    rig_stop(&r);
}

/* One shopper is sent a crafted model (other factors, their checksum and
 * Gram matrix: it decodes and verifies), and the coordinator passes its
 * advert on. Its binding differs from everyone's: every member refuses
 * (binding_mismatch) before dealing a share. */
static void test_crafted_model(void **state)
{
    (void)state;
    rig r;
    rig_start(&r, 0, A_MODEL_CRAFTED);
    set_target(&r, 0);
    rig_sync(&r, -1);
    assert_int_equal(applied(), 1);
    for (int i = 0; i < NC; i++)
        expect_refusal(&r.s[i], 1, FEDREC_REFUSAL_BINDING_MISMATCH, 1, "encrypted key shares",
                       "signed another model or other round parameters");
    assert_int_equal(oracle(1, r.t), 0);
    rig_stop(&r);
}

static void test_model_version(void **state)
{
    (void)state;
    one_attack(A_MODEL_VERSION, FEDREC_REFUSAL_PARAMS_CHANGED, 0, "key advertisement",
               "does not match round");
}

/* One shopper is sent other round parameters, one at a time (each passes
 * its floors, which are lowered to k >= 2, t >= 2 here so that the changed
 * k is not refused as below them): for n, k, t, clip, scale and the public
 * graph seed every member refuses binding_mismatch; for the model version
 * the target refuses the model it is then sent (params_changed) and the
 * others complete the round without it. */
static void test_params_changed(void **state)
{
    (void)state;
    static const uint32_t floors[3] = {NC, 2, 2};
    for (int p = 0; p < P_COUNT; p++) {
        rig r;
        rig_start_n(&r, NC, 0, floors, 0, A_PARAMS);
        pthread_mutex_lock(&G.mu);
        G.param = p;
        pthread_mutex_unlock(&G.mu);
        set_target(&r, 0);
        rig_sync(&r, -1);
        assert_true(applied() >= 1);
        if (p == P_VERSION) {
            /* the others run the round without it: the oracle rebuilds
               their b (the sum's), no s^SK, nobody's input */
            expect_refusal(&r.s[0], 1, FEDREC_REFUSAL_PARAMS_CHANGED, 0, "key advertisement",
                           "does not match round");
            for (int i = 1; i < NC; i++)
                assert_int_equal(r.s[i].res.round_outcome, FEDREC_OK);
            assert_int_equal(oracle(1, r.t), NC - 1);
        } else {
            for (int i = 0; i < NC; i++)
                expect_refusal(&r.s[i], 1, FEDREC_REFUSAL_BINDING_MISMATCH, 1,
                               "encrypted key shares",
                               "signed another model or other round parameters");
            assert_int_equal(oracle(1, r.t), 0);
        }
        rig_stop(&r);
    }
}

/* One shopper is sent a scale under which the round's sum could wrap
 * (n ceil(clip scale) >= 2^31: the overflow budget): it refuses before its
 * advert with params_invalid in its ledger, naming the budget, and the
 * others complete the round without it (the oracle rebuilds their b only).
 * Before, the client's sync ended with an error and no ledger entry. */
static void test_overflow_budget(void **state)
{
    (void)state;
    rig r;
    rig_start(&r, 0, A_PARAMS);
    pthread_mutex_lock(&G.mu);
    G.param = P_BUDGET;
    pthread_mutex_unlock(&G.mu);
    set_target(&r, 0);
    rig_sync(&r, -1);
    assert_int_equal(applied(), 1);
    expect_refusal(&r.s[0], 1, FEDREC_REFUSAL_PARAMS_INVALID, 0, "key advertisement",
                   "overflow budget: n * ceil(clip * scale) = 5 * ceil(");
    assert_string_equal(fedrec_refusal_name(FEDREC_REFUSAL_PARAMS_INVALID), "params_invalid");
    fedrec_ledger_entry e = {.struct_size = sizeof e};
    size_t n = 0;
    assert_int_equal(fedrec_client_ledger_count(r.s[0].c, &n), FEDREC_OK);
    assert_int_equal(fedrec_client_ledger_get(r.s[0].c, n - 1, &e), FEDREC_OK);
    assert_int_equal(e.cohort * 100 + e.neighbors * 10 + e.threshold, 543);
    assert_int_equal(r.s[0].res.took_part, 0);
    for (int i = 1; i < NC; i++)
        assert_int_equal(r.s[i].res.round_outcome, FEDREC_OK);
    assert_int_equal(oracle(1, r.t), NC - 1);
    rig_stop(&r);
}

/* Round 1 is honest: it completes, and the oracle rebuilds the b of every
 * survivor (and no s^SK: nobody dropped). In round 2 shopper 0 gets its
 * roster of round 1 again: it refuses it as a replay before sharing. */
static void test_replayed_roster(void **state)
{
    (void)state;
    rig r;
    rig_start(&r, 0, A_NONE);
    set_target(&r, 0);
    rig_sync(&r, -1);
    for (int i = 0; i < NC; i++)
        assert_int_equal(r.s[i].res.round_outcome, FEDREC_OK);
    assert_int_equal(oracle(1, r.t), NC); /* the control: the oracle finds secrets */
    pthread_mutex_lock(&G.mu);
    assert_non_null(G.saved_roster);
    G.attack = A_REPLAY_ROSTER;
    G.round_from = 2;
    pthread_mutex_unlock(&G.mu);
    rig_sync(&r, -1);
    expect_refusal(&r.s[0], 2, FEDREC_REFUSAL_STALE_ROUND, 0, "graph seed contribution",
                   "reply for round 1, expected 2");
    oracle(2, r.t);
    rig_stop(&r);
}

/* As test_replayed_roster, with round 1's unmask request replayed in round
 * 2 (after the masked input): refused before the consistency tags. */
static void test_replayed_unmask(void **state)
{
    (void)state;
    rig r;
    rig_start(&r, 0, A_NONE);
    set_target(&r, 0);
    rig_sync(&r, -1);
    for (int i = 0; i < NC; i++)
        assert_int_equal(r.s[i].res.round_outcome, FEDREC_OK);
    pthread_mutex_lock(&G.mu);
    assert_non_null(G.saved_unmask);
    G.attack = A_REPLAY_UNMASK;
    G.round_from = 2;
    pthread_mutex_unlock(&G.mu);
    rig_sync(&r, -1);
    assert_int_equal(applied(), 1);
    expect_refusal(&r.s[0], 2, FEDREC_REFUSAL_STALE_ROUND, 3, "consistency tags",
                   "reply for round 1, expected 2");
    oracle(2, r.t);
    rig_stop(&r);
}

/* The oracle's control: shopper 0 is sent an Error instead of its relay (it
 * drops out after sharing its keys, as a phone losing its network would);
 * the others complete, reveal b shares for each other and s^SK shares for
 * shopper 0, and the oracle rebuilds exactly those: 4 b, 1 s^SK, and no
 * client both. */
static void test_oracle_control(void **state)
{
    (void)state;
    rig r;
    rig_start(&r, 0, A_DROP_AT_RELAY);
    set_target(&r, 0);
    rig_sync(&r, 0);
    assert_int_equal(r.s[0].err, FEDREC_ERR_BUSY); /* the coordinator's Error: not a refusal */
    for (int i = 1; i < NC; i++)
        assert_int_equal(r.s[i].res.round_outcome, FEDREC_OK);
    int ns = 0;
    assert_int_equal(oracle_s(1, r.t, &ns), NC - 1);
    assert_int_equal(ns, 1);
    rig_stop(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_below_floors),         cmocka_unit_test(test_substituted_key),
        cmocka_unit_test(test_roster_duplicate),     cmocka_unit_test(test_roster_missing),
        cmocka_unit_test(test_relay_not_addressed),  cmocka_unit_test(test_survivor_and_dropped),
        cmocka_unit_test(test_unmask_few_survivors), cmocka_unit_test(test_second_unmask_request),
        cmocka_unit_test(test_split_survivor_sets),  cmocka_unit_test(test_seed_altered),
        cmocka_unit_test(test_seed_forged_digest),   cmocka_unit_test(test_seed_leave_out),
        cmocka_unit_test(test_seed_retry_beyond),    cmocka_unit_test(test_crafted_model),
        cmocka_unit_test(test_model_version),        cmocka_unit_test(test_params_changed),
        cmocka_unit_test(test_replayed_roster),      cmocka_unit_test(test_replayed_unmask),
        cmocka_unit_test(test_oracle_control),       cmocka_unit_test(test_overflow_budget),
    };
    return TH_RUN(tests);
}
