/* Key agreement and key derivation (see kdf.h). */
#include "core/secagg/kdf.h"

#include <string.h>

#include <sodium.h>

#include "core/err.h"
#include "core/secagg/secagg.h"

fedrec_err fedreci_secagg_sodium_ready(void)
{
    if (sodium_init() < 0)
        return fedreci_error(FEDREC_ERR_CRYPTO, "secagg: libsodium failed to initialise");
    return FEDREC_OK;
}

void fedreci_secagg_le64(uint8_t out[8], uint64_t v)
{
    for (int i = 0; i < 8; i++)
        out[i] = (uint8_t)(v >> (8 * i));
}

void fedreci_secagg_kdf(uint8_t out[FEDRECI_KDF_BYTES], const char *label, const uint8_t *a,
                        size_t a_len, const uint8_t *b, size_t b_len, uint64_t u1, uint64_t u2)
{
    crypto_generichash_state st;
    size_t label_len = strlen(label);
    uint8_t len_byte = (uint8_t)label_len;
    uint8_t tail[16];

    crypto_generichash_init(&st, NULL, 0, FEDRECI_KDF_BYTES);
    crypto_generichash_update(&st, &len_byte, 1);
    crypto_generichash_update(&st, (const uint8_t *)label, label_len);
    if (a_len)
        crypto_generichash_update(&st, a, a_len);
    if (b_len)
        crypto_generichash_update(&st, b, b_len);
    fedreci_secagg_le64(tail, u1);
    fedreci_secagg_le64(tail + 8, u2);
    crypto_generichash_update(&st, tail, sizeof tail);
    crypto_generichash_final(&st, out, FEDRECI_KDF_BYTES);
    sodium_memzero(&st, sizeof st);
}

fedrec_err fedreci_secagg_ka(uint8_t shared[32], const uint8_t sk[32], const uint8_t pk[32])
{
    /* crypto_scalarmult returns -1 for an all-zero result; check again so a
     * future library change cannot let a zero key through. */
    if (crypto_scalarmult(shared, sk, pk) != 0 || sodium_is_zero(shared, 32)) {
        sodium_memzero(shared, 32);
        return fedreci_error(FEDREC_ERR_CRYPTO,
                             "secagg: X25519 key agreement gave an all-zero secret "
                             "(public key of small order)");
    }
    return FEDREC_OK;
}

void fedreci_secagg_advert_msg(uint8_t msg[FEDRECI_ADVERT_MSG_BYTES], uint64_t round,
                               uint64_t client_id, const uint8_t c_pk[32], const uint8_t s_pk[32],
                               const uint8_t binding[32], const uint8_t seed_commit[32])
{
    size_t l = sizeof FEDRECI_LABEL_ADVERT - 1, o = 0;
    msg[o++] = (uint8_t)l;
    memcpy(msg + o, FEDRECI_LABEL_ADVERT, l);
    o += l;
    fedreci_secagg_le64(msg + o, round);
    fedreci_secagg_le64(msg + o + 8, client_id);
    memcpy(msg + o + 16, c_pk, 32);
    memcpy(msg + o + 48, s_pk, 32);
    memcpy(msg + o + 80, binding, 32);
    memcpy(msg + o + 112, seed_commit, 32);
}

static void hash_label(crypto_generichash_state *st, const char *label)
{
    uint8_t l = (uint8_t)strlen(label);
    crypto_generichash_update(st, &l, 1);
    crypto_generichash_update(st, (const uint8_t *)label, l);
}

static void hash_u64(crypto_generichash_state *st, uint64_t v)
{
    uint8_t w[8];
    fedreci_secagg_le64(w, v);
    crypto_generichash_update(st, w, 8);
}

void fedreci_secagg_seed_commit(uint8_t commit[32], uint64_t round, uint64_t id,
                                const uint8_t contribution[16])
{
    fedreci_secagg_kdf(commit, FEDRECI_LABEL_SEED_COMMIT, contribution,
                       FEDRECI_SECAGG_CONTRIB_BYTES, NULL, 0, round, id);
}

void fedreci_secagg_seed_link(uint8_t prev[16], uint64_t round, uint64_t id, uint32_t attempt,
                              const uint8_t r[16])
{
    crypto_generichash_state st;
    uint8_t out[16];
    crypto_generichash_init(&st, NULL, 0, sizeof out);
    hash_label(&st, FEDRECI_LABEL_SEED_CHAIN);
    hash_u64(&st, round);
    hash_u64(&st, id);
    hash_u64(&st, attempt);
    crypto_generichash_update(&st, r, 16);
    crypto_generichash_final(&st, out, sizeof out);
    memcpy(prev, out, sizeof out);
}

void fedreci_secagg_seed_commit_at(uint8_t commit[32], uint64_t round, uint64_t id,
                                   uint32_t attempt, const uint8_t contribution[16])
{
    uint8_t x[16];
    memcpy(x, contribution, sizeof x);
    for (uint32_t a = attempt; a >= 1; a--)
        fedreci_secagg_seed_link(x, round, id, a, x);
    fedreci_secagg_seed_commit(commit, round, id, x);
}

void fedreci_secagg_seed_digest(uint8_t digest[32], uint64_t round, uint32_t attempt,
                                const uint64_t *ids, const uint8_t *commits, size_t m)
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, 32);
    hash_label(&st, FEDRECI_LABEL_SEED_DIGEST);
    hash_u64(&st, round);
    hash_u64(&st, attempt);
    hash_u64(&st, m);
    for (size_t i = 0; i < m; i++) {
        hash_u64(&st, ids[i]);
        crypto_generichash_update(&st, commits + 32 * i, 32);
    }
    crypto_generichash_final(&st, digest, 32);
}

void fedreci_secagg_graph_seed(uint8_t seed[32], const uint8_t digest[32], const uint8_t *values,
                               const uint8_t *missing, size_t m)
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, 32);
    hash_label(&st, FEDRECI_LABEL_GRAPH_SEED);
    crypto_generichash_update(&st, digest, 32);
    for (size_t i = 0; i < m; i++) {
        uint8_t f = missing && missing[i] ? 1 : 0;
        crypto_generichash_update(&st, &f, 1);
        crypto_generichash_update(&st, values + FEDRECI_SECAGG_SEED_SLOT_BYTES * i,
                                  f ? FEDRECI_SECAGG_SEED_SLOT_BYTES
                                    : FEDRECI_SECAGG_CONTRIB_BYTES);
    }
    crypto_generichash_final(&st, seed, 32);
}

void fedreci_secagg_request_hash(uint8_t h[32], uint64_t round, const uint64_t *survivors,
                                 size_t ns, const uint64_t *dropped, size_t nd)
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, 32);
    hash_label(&st, FEDRECI_LABEL_REQUEST);
    hash_u64(&st, round);
    hash_u64(&st, ns);
    for (size_t i = 0; i < ns; i++)
        hash_u64(&st, survivors[i]);
    hash_u64(&st, nd);
    for (size_t i = 0; i < nd; i++)
        hash_u64(&st, dropped[i]);
    crypto_generichash_final(&st, h, 32);
}

void fedreci_secagg_consistency_tag(uint8_t tag[16], const uint8_t key[32], uint64_t round,
                                    uint64_t from, uint64_t to, const uint8_t request[32])
{
    uint8_t msg[24 + 32];
    fedreci_secagg_le64(msg, round);
    fedreci_secagg_le64(msg + 8, from);
    fedreci_secagg_le64(msg + 16, to);
    memcpy(msg + 24, request, 32);
    crypto_generichash(tag, 16, msg, sizeof msg, key, 32);
}

void fedreci_secagg_share_ad(uint8_t ad[FEDRECI_SHARE_AD_BYTES], uint64_t round, uint64_t from,
                             uint64_t to)
{
    size_t l = sizeof FEDRECI_LABEL_AD - 1;
    memcpy(ad, FEDRECI_LABEL_AD, l);
    fedreci_secagg_le64(ad + l, round);
    fedreci_secagg_le64(ad + l + 8, from);
    fedreci_secagg_le64(ad + l + 16, to);
}

void fedreci_secagg_pair_derive(uint8_t key[32], const char *label, const uint8_t ka[32],
                                uint64_t round, uint64_t u, uint64_t v)
{
    uint8_t ids[16];
    fedreci_secagg_le64(ids, u < v ? u : v);
    fedreci_secagg_le64(ids + 8, u < v ? v : u);
    fedreci_secagg_kdf(key, label, ka, 32, ids, sizeof ids, round, 0);
}

void fedreci_secagg_seed_from_scalar(uint8_t seed[32], const char *label, const uint8_t r[32],
                                     uint64_t round, uint64_t id)
{
    fedreci_secagg_kdf(seed, label, r, 32, NULL, 0, round, id);
}

uint64_t fedreci_secagg_id_from_pk(const uint8_t identity_pk[FEDRECI_SECAGG_SIGN_PK_BYTES])
{
    uint8_t h[32];
    crypto_generichash(h, sizeof h, identity_pk, FEDRECI_SECAGG_SIGN_PK_BYTES, NULL, 0);
    uint64_t id = 0;
    for (int i = 0; i < 8; i++)
        id |= (uint64_t)h[i] << (8 * i);
    return id;
}

void fedreci_secagg_share_commit(uint8_t h[32], uint64_t round, uint64_t dealer, uint64_t holder,
                                 uint8_t kind, const uint8_t share[32], const uint8_t opening[32])
{
    uint8_t buf[8 * 3 + 1 + 64];
    fedreci_secagg_le64(buf, round);
    fedreci_secagg_le64(buf + 8, dealer);
    fedreci_secagg_le64(buf + 16, holder);
    buf[24] = kind;
    memcpy(buf + 25, share, 32);
    memcpy(buf + 57, opening, 32);
    fedreci_secagg_kdf(h, FEDRECI_LABEL_COMMIT, buf, sizeof buf, NULL, 0, 0, 0);
    sodium_memzero(buf, sizeof buf);
}

void fedreci_secagg_b_commit(uint8_t h[32], uint64_t round, uint64_t id, const uint8_t b[32])
{
    fedreci_secagg_kdf(h, FEDRECI_LABEL_BCOMMIT, b, 32, NULL, 0, round, id);
}

fedrec_err fedreci_secagg_mac_key(uint8_t key[32], const uint8_t coord_sk[32],
                                  const uint8_t s_pk[32], uint64_t round_id, uint64_t client_id)
{
    uint8_t ka[32];
    fedrec_err e = fedreci_secagg_ka(ka, coord_sk, s_pk);
    if (e) {
        sodium_memzero(key, 32);
        return e;
    }
    fedreci_secagg_kdf(key, FEDRECI_LABEL_MAC, ka, 32, NULL, 0, round_id, client_id);
    sodium_memzero(ka, sizeof ka);
    return FEDREC_OK;
}

void fedreci_secagg_bundle_hash(uint8_t h[32], uint64_t round, uint64_t dealer, uint64_t holder,
                                const uint8_t *ct, const uint8_t *commit)
{
    uint8_t ids[16];
    fedreci_secagg_le64(ids, dealer);
    fedreci_secagg_le64(ids + 8, holder);
    crypto_generichash_state st;
    uint8_t len = (uint8_t)(sizeof FEDRECI_LABEL_BUNDLE - 1);
    uint8_t rb[8];
    fedreci_secagg_le64(rb, round);
    crypto_generichash_init(&st, NULL, 0, 32);
    crypto_generichash_update(&st, &len, 1);
    crypto_generichash_update(&st, (const uint8_t *)FEDRECI_LABEL_BUNDLE, len);
    crypto_generichash_update(&st, rb, 8);
    crypto_generichash_update(&st, ids, sizeof ids);
    crypto_generichash_update(&st, ct, FEDRECI_SHARE_CT_BYTES);
    crypto_generichash_update(&st, commit, FEDRECI_SECAGG_COMMIT_BYTES);
    crypto_generichash_final(&st, h, 32);
}

void fedreci_secagg_complaint_msg(uint8_t msg[FEDRECI_COMPLAINT_MSG_BYTES], uint64_t round,
                                  uint64_t complainer, uint64_t dealer,
                                  const uint8_t bundle_hash[32])
{
    size_t l = sizeof FEDRECI_LABEL_COMPLAINT - 1;
    msg[0] = (uint8_t)l;
    memcpy(msg + 1, FEDRECI_LABEL_COMPLAINT, l);
    fedreci_secagg_le64(msg + 1 + l, round);
    fedreci_secagg_le64(msg + 1 + l + 8, complainer);
    fedreci_secagg_le64(msg + 1 + l + 16, dealer);
    memcpy(msg + 1 + l + 24, bundle_hash, 32);
}

void fedreci_secagg_endorse_msg(uint8_t msg[FEDRECI_ENDORSE_MSG_BYTES], uint64_t round,
                                uint64_t signer, const uint8_t request[32])
{
    size_t l = sizeof FEDRECI_LABEL_ENDORSE - 1;
    msg[0] = (uint8_t)l;
    memcpy(msg + 1, FEDRECI_LABEL_ENDORSE, l);
    fedreci_secagg_le64(msg + 1 + l, round);
    fedreci_secagg_le64(msg + 1 + l + 8, signer);
    memcpy(msg + 1 + l + 16, request, 32);
}
