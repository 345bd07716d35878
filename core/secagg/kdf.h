/*
 * core/secagg/kdf: key agreement and key derivation for the SecAgg+ round.
 *
 * Every derived key is BLAKE2b-256 (crypto_generichash) over a domain label
 * (length-prefixed, so no two labels collide) followed by the inputs; each
 * purpose has its own label. Key agreement is X25519 (crypto_scalarmult, RFC
 * 7748) and an all-zero shared secret (a low-order public key) is refused.
 *
 * All outputs are secrets: callers keep them in sodium_malloc memory and wipe
 * them. Thread-safe (no state).
 */
#ifndef FEDREC_CORE_SECAGG_KDF_H
#define FEDREC_CORE_SECAGG_KDF_H

#include <stddef.h>
#include <stdint.h>

#include "fedrec/fedrec.h"

#define FEDRECI_KDF_BYTES 32

/* Domain labels. */
#define FEDRECI_LABEL_ADVERT "fedrec.secagg.v2.advert"       /* Ed25519 message */
#define FEDRECI_LABEL_AEAD "fedrec.secagg.v1.share-aead"     /* share bundle key */
#define FEDRECI_LABEL_AD "fedrec.secagg.v1.share-ad"         /* AEAD associated data */
#define FEDRECI_LABEL_PAIR "fedrec.secagg.v1.pair-mask"      /* pairwise mask key */
#define FEDRECI_LABEL_SELF "fedrec.secagg.v1.self-mask"      /* b seed from its scalar */
#define FEDRECI_LABEL_SK "fedrec.secagg.v1.mask-sk"          /* s^SK from its scalar */
#define FEDRECI_LABEL_GRAPH "fedrec.secagg.v1.graph"         /* graph permutation key */
#define FEDRECI_LABEL_ROUNDING "fedrec.secagg.v1.rounding"   /* stochastic rounding key */
#define FEDRECI_LABEL_COMMIT "fedrec.secagg.v1.share-commit" /* hash commitment to a share */
#define FEDRECI_LABEL_BCOMMIT "fedrec.secagg.v1.b-commit"    /* dealer's commitment to b */
#define FEDRECI_LABEL_MAC "fedrec.secagg.v1.mac-key"         /* masked-input MAC key */
#define FEDRECI_LABEL_SEED_COMMIT                                                                  \
    "fedrec.secagg.v2.seed-commit"                               /* commitment to a contribution   \
                                                                  */
#define FEDRECI_LABEL_SEED_DIGEST "fedrec.secagg.v2.seed-digest" /* the roster's commitments */
#define FEDRECI_LABEL_GRAPH_SEED "fedrec.secagg.v2.graph-seed"   /* seed from the contributions */
#define FEDRECI_LABEL_SEED_CHAIN "fedrec.secagg.v8.seed-chain"   /* contribution hash chain */
#define FEDRECI_LABEL_CONSIST "fedrec.secagg.v2.consistency"     /* pair key for the tags */
#define FEDRECI_LABEL_REQUEST "fedrec.secagg.v2.survivor-set"    /* hash of a survivor set */
#define FEDRECI_LABEL_BUNDLE "fedrec.secagg.v3.bundle"           /* hash of a share bundle */
#define FEDRECI_LABEL_COMPLAINT "fedrec.secagg.v3.complaint"     /* Ed25519 complaint message */
#define FEDRECI_LABEL_ENDORSE "fedrec.secagg.v4.endorse"         /* Ed25519 endorsement */

/* Calls sodium_init() (idempotent, thread-safe). FEDREC_ERR_CRYPTO if it fails. */
FEDREC_NODISCARD fedrec_err fedreci_secagg_sodium_ready(void);

/* out = BLAKE2b-256(len(label) || label || a || b || LE64(u1) || LE64(u2)).
 * a or b may be NULL when their length is 0. Cannot fail. */
void fedreci_secagg_kdf(uint8_t out[FEDRECI_KDF_BYTES], const char *label, const uint8_t *a,
                        size_t a_len, const uint8_t *b, size_t b_len, uint64_t u1, uint64_t u2);

/* X25519: shared = sk * pk. FEDREC_ERR_CRYPTO when the result is all zero
 * (pk of small order); shared is then left zeroed. */
FEDREC_NODISCARD fedrec_err fedreci_secagg_ka(uint8_t shared[32], const uint8_t sk[32],
                                              const uint8_t pk[32]);

/* Writes a 64-bit value little-endian. */
void fedreci_secagg_le64(uint8_t out[8], uint64_t v);

#endif

/* ---- protocol derivations (both parties compute the same values) ---------- */

/* Ed25519-signed advert message: len(label) || label || LE64(round) ||
 * LE64(client_id) || c_pk || s_pk || binding (the digest of the model and
 * round parameters the client received, secagg.h fedreci_secagg_advert) ||
 * seed_commit. */
#define FEDRECI_ADVERT_MSG_BYTES (1 + sizeof FEDRECI_LABEL_ADVERT - 1 + 8 + 8 + 32 * 4)
void fedreci_secagg_advert_msg(uint8_t msg[FEDRECI_ADVERT_MSG_BYTES], uint64_t round,
                               uint64_t client_id, const uint8_t c_pk[32], const uint8_t s_pk[32],
                               const uint8_t binding[32], const uint8_t seed_commit[32]);

/* The graph seed (stage SEED): each member draws a uniform 16-byte
 * contribution r and commits to it in its signed advert,
 *   commit = BLAKE2b(LABEL_SEED_COMMIT, r, round, id);
 * once the roster is fixed the coordinator commits to all of them,
 *   digest = BLAKE2b-256(len || LABEL_SEED_DIGEST || LE64(round) ||
 *            LE64(attempt) || LE64(m) ||
 *            for each member in id order: LE64(id) || commit),
 * every member then reveals r, and
 *   seed = BLAKE2b-256(len || LABEL_GRAPH_SEED || digest ||
 *          for each member: flag (1 byte) || value),
 * value = r (16 bytes) for a member that revealed (flag 0), its commitment
 * (32) for one that did not (flag 1: at most FEDRECI_SECAGG_SEED_MISSING_MAX,
 * secagg.h). values: m slots of FEDRECI_SECAGG_SEED_SLOT_BYTES (secagg.h).
 * Hiding (r uniform) and binding (collision resistance): the seed is fixed
 * by the digest, which the coordinator sends before it learns any honest r.
 *
 * Retries (secagg.h fedreci_secagg_server_retry_seed): a member's
 * contributions for attempts 0..R form a hash chain drawn before the
 * advert: r_R uniform, r_(a-1) = seed_link(a, r_a), and the signed commit
 * is the one to r_0. Attempt a reveals r_a, which opens the signed commit
 * through a links (seed_commit_at); a coordinator that has seen r_0..r_(a-1)
 * would need a BLAKE2b preimage to know r_a before the reveal. So a retry
 * needs no new commitment: the attempt's digest covers the same signed
 * commits under another attempt number and the smaller roster. */
void fedreci_secagg_seed_commit(uint8_t commit[32], uint64_t round, uint64_t id,
                                const uint8_t contribution[16]);
/* prev = BLAKE2b-128(len || LABEL_SEED_CHAIN || LE64(round) || LE64(id) ||
 * LE64(attempt) || r): the contribution of attempt - 1 from that of attempt
 * (attempt >= 1). prev may alias r. */
void fedreci_secagg_seed_link(uint8_t prev[16], uint64_t round, uint64_t id, uint32_t attempt,
                              const uint8_t r[16]);
/* The signed commitment a contribution of `attempt` opens: seed_commit of
 * the chain followed down to attempt 0. */
void fedreci_secagg_seed_commit_at(uint8_t commit[32], uint64_t round, uint64_t id,
                                   uint32_t attempt, const uint8_t contribution[16]);
void fedreci_secagg_seed_digest(uint8_t digest[32], uint64_t round, uint32_t attempt,
                                const uint64_t *ids, const uint8_t *commits, size_t m);
void fedreci_secagg_graph_seed(uint8_t seed[32], const uint8_t digest[32], const uint8_t *values,
                               const uint8_t *missing, size_t m);

/* The hash a survivor set is endorsed under (stage CONSISTENCY):
 * BLAKE2b-256(len || LABEL_REQUEST || LE64(round) || LE64(ns) || survivors ||
 * LE64(nd) || dropped), ids LE64. */
void fedreci_secagg_request_hash(uint8_t h[32], uint64_t round, const uint64_t *survivors,
                                 size_t ns, const uint64_t *dropped, size_t nd);

/* A consistency tag from `from` to `to`: BLAKE2b-128 keyed with the pair's
 * consistency key (pair_derive(LABEL_CONSIST, X25519 of their c keys)) over
 * LE64(round) || LE64(from) || LE64(to) || request hash. */
void fedreci_secagg_consistency_tag(uint8_t tag[16], const uint8_t key[32], uint64_t round,
                                    uint64_t from, uint64_t to, const uint8_t request[32]);

/* AEAD associated data of a share bundle: label || LE64(round) || LE64(from) || LE64(to). */
#define FEDRECI_SHARE_AD_BYTES (sizeof FEDRECI_LABEL_AD - 1 + 24)
void fedreci_secagg_share_ad(uint8_t ad[FEDRECI_SHARE_AD_BYTES], uint64_t round, uint64_t from,
                             uint64_t to);

/* Encrypted share bundle: nonce (24) || XChaCha20-Poly1305(b share || s^SK
 * share || b opening || s^SK opening) (128 + 16). The openings are the random
 * 32-byte values of the dealer's hash commitments to the two shares. */
#define FEDRECI_SHARE_PLAIN_BYTES 128
#define FEDRECI_SHARE_CT_BYTES (24 + FEDRECI_SHARE_PLAIN_BYTES + 16)

/* Keys of one unordered pair {u, v} (ids), both directions alike:
 * BLAKE2b(label, KA, round, min id, max id). */
void fedreci_secagg_pair_derive(uint8_t key[32], const char *label, const uint8_t ka[32],
                                uint64_t round, uint64_t u, uint64_t v);

/* A client's seeds from its shared scalars: b = BLAKE2b(LABEL_SELF, r_b,
 * round, id) (the self-mask PRG key) and s^SK = BLAKE2b(LABEL_SK, r_s, round,
 * id) (the X25519 secret key of the mask key pair). Shamir shares the uniform
 * scalars r_b and r_s (canonical, so rebuilt exactly) and every party derives
 * the 32-byte seeds from them with the same hash. */
void fedreci_secagg_seed_from_scalar(uint8_t seed[32], const char *label, const uint8_t r[32],
                                     uint64_t round, uint64_t id);

/* The dealer's hash commitment to one share it deals (checked reconstruction):
 * h = BLAKE2b-256(len || LABEL_COMMIT || LE64(round) || LE64(dealer) ||
 * LE64(holder) || kind || share || opening), opening 32 random bytes sent to
 * the holder inside the encrypted bundle. Hiding (the opening is uniform) and
 * binding (BLAKE2b collision resistance). */
void fedreci_secagg_share_commit(uint8_t h[32], uint64_t round, uint64_t dealer, uint64_t holder,
                                 uint8_t kind, const uint8_t share[32], const uint8_t opening[32]);

/* The hash a complaint names a share bundle by (complaints, secagg.h
 * fedreci_secagg_complaint): BLAKE2b-256(len || LABEL_BUNDLE || LE64(round) ||
 * LE64(dealer) || LE64(holder) || ciphertext (FEDRECI_SHARE_CT_BYTES) ||
 * commitments (FEDRECI_SECAGG_COMMIT_BYTES)). */
void fedreci_secagg_bundle_hash(uint8_t h[32], uint64_t round, uint64_t dealer, uint64_t holder,
                                const uint8_t *ct, const uint8_t *commit);

/* The Ed25519-signed message of an endorsement (the consistency step's
 * attributable half, protocol version 6): len || LABEL_ENDORSE || LE64(round)
 * || LE64(signer) || the request hash (fedreci_secagg_request_hash) of the
 * survivor set the signer was given. */
#define FEDRECI_ENDORSE_MSG_BYTES (1 + sizeof FEDRECI_LABEL_ENDORSE - 1 + 16 + 32)
void fedreci_secagg_endorse_msg(uint8_t msg[FEDRECI_ENDORSE_MSG_BYTES], uint64_t round,
                                uint64_t signer, const uint8_t request[32]);

/* The Ed25519-signed message of a complaint: len || LABEL_COMPLAINT ||
 * LE64(round) || LE64(complainer) || LE64(dealer) || bundle hash. */
#define FEDRECI_COMPLAINT_MSG_BYTES (1 + sizeof FEDRECI_LABEL_COMPLAINT - 1 + 24 + 32)
void fedreci_secagg_complaint_msg(uint8_t msg[FEDRECI_COMPLAINT_MSG_BYTES], uint64_t round,
                                  uint64_t complainer, uint64_t dealer,
                                  const uint8_t bundle_hash[32]);

/* The dealer's commitment to its self-mask seed: BLAKE2b(LABEL_BCOMMIT, b,
 * round, id). b is a uniform 32-byte seed, so this reveals nothing usable. */
void fedreci_secagg_b_commit(uint8_t h[32], uint64_t round, uint64_t id, const uint8_t b[32]);
