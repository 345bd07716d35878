/*
 * core/secagg: secure aggregation, SecAgg+ with classic SecAgg as the
 * complete-graph case. Transport-free state machines: they take decoded
 * messages and return messages to send; the drivers in client/, coordinator/
 * and sim/ move the bytes.
 *
 * Implements:
 *   Bonawitz, Ivanov, Kreuter, Marcedone, McMahan, Patel, Ramage, Segal,
 *   Seth. "Practical Secure Aggregation for Privacy-Preserving Machine
 *   Learning". CCS 2017. (Stages 0-3, double masking, dropout recovery.)
 *   Bell, Bonawitz, Gascon, Lepoint, Raykova. "Secure Single-Server
 *   Aggregation with (Poly)Logarithmic Overhead". CCS 2020. (SecAgg+: masks
 *   and shares only among k neighbours of a random k-regular graph.)
 *
 * Every primitive comes from libsodium: X25519 key agreement
 * (crypto_scalarmult, all-zero results rejected), BLAKE2b key derivation with
 * domain labels, ChaCha20 (IETF) keystreams as the mask PRG read as
 * little-endian uint32, XChaCha20-Poly1305 for encrypted shares with
 * associated data (round, sender, receiver), Shamir sharing over the
 * ristretto255 scalar field (crypto_core_ristretto255_scalar_*), Ed25519
 * signatures on key advertisements.
 *
 * Arithmetic is in the ring Z_{2^32}. A client's input is a float vector of
 * length d - 1 plus one participant weight, masked as d uint32 words.
 *
 * Ownership: pointers returned through out-parameters point into the state
 * machine and stay valid until the next call on the same object or its
 * destroy, unless stated otherwise. Inputs are copied; the caller keeps them.
 * Thread-safety: an object may be used by one thread at a time; different
 * objects are independent. Secrets live in sodium_malloc memory and are wiped
 * on every exit path; nothing here logs.
 *
 * Errors: every function that can fail returns a fedrec_err and sets the
 * detailed message (fedrec_errmsg()). A message for the wrong stage
 * (FEDREC_ERR_STAGE), round (FEDREC_ERR_ROUND) or from a sender that is not
 * expected (FEDREC_ERR_PROTOCOL), a duplicate (FEDREC_ERR_DUPLICATE), or a bad
 * signature (FEDREC_ERR_SIGNATURE) is refused without changing state.
 */
#ifndef FEDREC_CORE_SECAGG_H
#define FEDREC_CORE_SECAGG_H

#include <stddef.h>
#include <stdint.h>

#include "fedrec/fedrec.h"

#define FEDRECI_SECAGG_PK_BYTES 32      /* X25519 public key */
#define FEDRECI_SECAGG_SIGN_PK_BYTES 32 /* Ed25519 public key */
#define FEDRECI_SECAGG_SIGN_SK_BYTES 64 /* Ed25519 secret key (libsodium layout) */
#define FEDRECI_SECAGG_SIG_BYTES 64     /* Ed25519 signature */
#define FEDRECI_SECAGG_SHARE_BYTES 32   /* a Shamir share's y value (ristretto255 scalar) */
#define FEDRECI_SECAGG_SEED_BYTES 32
#define FEDRECI_SECAGG_COMMIT_BYTES 96 /* per share bundle: h_b || h_s || c_b (kdf.h) */

#define FEDRECI_SECAGG_TAG_BYTES 16 /* consistency tag (keyed BLAKE2b) */

/* The graph seed step (kdf.h fedreci_secagg_graph_seed). A contribution is
 * 16 uniform bytes: 128 bits, all its unpredictability needs (the
 * coordinator must not guess it from the 32-byte commitment before the
 * reveal). Arrays of contributions are m slots of SLOT bytes in roster
 * order: a member that revealed has its contribution in the first 16 bytes
 * of its slot (the rest zero, and ignored), one that did not has its 32-byte
 * commitment. */
#define FEDRECI_SECAGG_CONTRIB_BYTES 16
#define FEDRECI_SECAGG_SEED_SLOT_BYTES 32

/* Roster members that may fail to reveal their graph seed contribution in
 * one attempt of the seed step without a retry (protocol version 8: none).
 * A coordinator that may leave out up to M members after it has seen every
 * contribution chooses among sum_(j <= M) C(m, j) seeds per attempt (2^9 at
 * M = 1, m = 500); a retry gives it one fresh seed instead. A missing member
 * therefore makes the coordinator re-run the seed step without it
 * (fedreci_secagg_server_retry_seed), up to params.seed_retries times
 * (docs/protocol.md "Honest dropouts at the seed step" has the table that
 * chose this). */
#define FEDRECI_SECAGG_SEED_MISSING_MAX 0

/* The most seed retries a round may announce (params_check); each one hands
 * a deviating coordinator one more uniform seed to choose from, so a round
 * with R retries gives it at most R + 1 (log2(R + 1) bits of bias). The
 * default the coordinator announces and the client accepts is 3. */
#define FEDRECI_SECAGG_SEED_RETRIES_CAP 8
#define FEDRECI_SECAGG_SEED_RETRIES_DEFAULT 3

/* The stages, in order. A round ends DONE or ABORTED. SEED (the graph seed
 * contributions, after the roster is fixed) and CONSISTENCY (the survivors
 * endorse the survivor set before anyone unmasks; Bonawitz et al. 2017,
 * section 6) are the two steps issue 14 added. */
typedef enum fedreci_secagg_stage {
    FEDRECI_SECAGG_ADVERTISE = 0,
    FEDRECI_SECAGG_SEED = 1,
    FEDRECI_SECAGG_SHARE_KEYS = 2,
    FEDRECI_SECAGG_MASKED_INPUT = 3,
    FEDRECI_SECAGG_CONSISTENCY = 4,
    FEDRECI_SECAGG_UNMASK = 5,
    FEDRECI_SECAGG_DONE = 6,
    FEDRECI_SECAGG_ABORTED = 7,
} fedreci_secagg_stage;

/* Round parameters, fixed per round and identical on every party. */
typedef struct fedreci_secagg_params {
    uint64_t round_id;   /* bound into signatures, AEAD data and PRG nonces */
    uint32_t n;          /* cohort size: clients invited to the round, >= 2 */
    uint32_t k;          /* neighbours per client; n - 1 = classic SecAgg */
    uint32_t t;          /* Shamir threshold: k/2 < t <= k */
    uint32_t d;          /* masked vector length in words: input length + 1 (weight) */
    double clip;         /* inputs are clipped to [-clip, clip]; finite, > 0 */
    double scale;        /* quantization: q = round(scale * x); finite, > 0 */
    uint32_t max_weight; /* upper bound of one client's weight (e.g. 1) */
    uint8_t graph_seed[FEDRECI_SECAGG_SEED_BYTES]; /* public, seeds the neighbour graph;
                                                      the state machines replace it with
                                                      the seed derived from the members'
                                                      contributions (stage SEED) */
    uint32_t seed_retries; /* R: how often the seed step may be re-run without the
                              members that missed it (0..FEDRECI_SECAGG_SEED_RETRIES_CAP);
                              fixes the depth of each member's contribution chain */
} fedreci_secagg_params;

/* Checks parameters before anything is sent: n >= 2, 1 <= k <= n - 1,
 * k/2 < t <= k, d >= 2, seed_retries <= FEDRECI_SECAGG_SEED_RETRIES_CAP, clip
 * and scale finite and > 0, and the overflow budget
 * n * clip * scale < 2^31 and n * max_weight < 2^31 (the sum is read back as a
 * signed 32-bit value, so it must never wrap). On error the message names the
 * offending parameters and values. */
FEDREC_NODISCARD fedrec_err fedreci_secagg_params_check(const fedreci_secagg_params *p);

/* ---- identities ------------------------------------------------------------- */

/* A client's self-certifying id: the first 8 bytes, read little-endian, of
 * BLAKE2b-256(identity_pk) (identity_pk: its 32-byte Ed25519 public key). The
 * coordinator refuses a check-in whose id is not derived from its key, and a
 * client refuses a roster entry whose id is not derived from the identity key
 * it lists, so nobody can register or advertise under an id that belongs to
 * another key. Pure function, thread-safe. */
uint64_t fedreci_secagg_id_from_pk(const uint8_t identity_pk[FEDRECI_SECAGG_SIGN_PK_BYTES]);

/* ---- messages (decoded) ---------------------------------------------------- */

/* Stage 0, client -> server; the server's roster repeats them to the clients. */
typedef struct fedreci_secagg_advert {
    uint64_t client_id;
    uint8_t identity_pk[FEDRECI_SECAGG_SIGN_PK_BYTES]; /* Ed25519; the server fills it
                                                          from its registry */
    uint8_t c_pk[FEDRECI_SECAGG_PK_BYTES];             /* X25519: for encrypting shares */
    uint8_t s_pk[FEDRECI_SECAGG_PK_BYTES];             /* X25519: for pairwise masks */
    uint8_t binding[32];                               /* what the client trains on: the digest
                                                          of the model bytes and round parameters
                                                          it received (proto/wire.h
                                                          fedreci_wire_binding); every member
                                                          of a round must carry the same */
    uint8_t seed_commit[32];                           /* BLAKE2b commitment to the client's
                                                          graph seed contribution (kdf.h
                                                          fedreci_secagg_seed_commit) */
    uint8_t sig[FEDRECI_SECAGG_SIG_BYTES];             /* Ed25519 over (round_id, client_id,
                                                           c_pk, s_pk, binding, seed_commit)
                                                           with a domain label (kdf.h) */
} fedreci_secagg_advert;

/* Consistency check (stage CONSISTENCY): a member's endorsement, for one
 * neighbour, of the survivor set it was given: a keyed BLAKE2b tag under the
 * pair's consistency key (from the X25519 agreement of their signed c keys,
 * which the coordinator cannot compute) over (round, from, to, the request
 * hash). Only `to` can check it, and only `from` (or `to`) can make it. On
 * the wire the ids are implicit (protocol version 6: 16 bytes per
 * neighbour named survivor, ascending id order; proto/wire.h). */
typedef struct fedreci_secagg_tag {
    uint64_t from;
    uint64_t to;
    uint8_t tag[FEDRECI_SECAGG_TAG_BYTES];
} fedreci_secagg_tag;

/* The attributable half of an endorsement (protocol version 6): `from`'s
 * Ed25519 signature, with its identity key, over kdf.h
 * fedreci_secagg_endorse_msg of the survivor set it was given. Every member
 * sends one with its tags; the coordinator verifies it (a member whose
 * signature fails is named a culprit, one that sends none did not endorse)
 * and relays it to a neighbour only on request, when that neighbour's tag
 * did not verify. So a member with garbage tags but a valid signature still
 * counts, and the honest path stays at tag cost. */
typedef struct fedreci_secagg_endorsement {
    uint64_t from;
    uint8_t sig[FEDRECI_SECAGG_SIG_BYTES];
} fedreci_secagg_endorsement;

/* ---- refusals ---------------------------------------------------------------- */

/* Why a client left a round because of what the coordinator sent: stable
 * names (they go into the shopper's privacy ledger and never change meaning).
 * A client that refuses sends nothing more in the round, in particular no
 * secret material. fedreci_secagg_client_refusal() returns the last one. */
/* a neighbour's advert binds another model or other round parameters */
#define FEDRECI_REFUSE_BINDING "binding_mismatch"
/* a neighbour's advert does not verify under its identity key */
#define FEDRECI_REFUSE_ADVERT_SIG "advert_bad_signature"
/* a roster entry's id is not the id of the identity key it lists */
#define FEDRECI_REFUSE_ADVERT_ID "advert_id_mismatch"
/* a roster that is unsorted, has duplicate ids, or is too small or too large */
#define FEDRECI_REFUSE_ROSTER "roster_invalid"
/* a roster that lacks this client or lists other keys for it */
#define FEDRECI_REFUSE_ROSTER_SELF "roster_missing_self"
/* a relayed share bundle not from a neighbour to this client, or two from one */
#define FEDRECI_REFUSE_RELAY "relay_misaddressed"
/* an unmask request naming a client both survivor and dropped */
#define FEDRECI_REFUSE_UNMASK_BOTH "unmask_both_sets"
/* an unmask request with unsorted lists, fewer than t survivors, this client
   not a survivor, a member not in the roster, or a neighbour that sent
   shares named in neither list */
#define FEDRECI_REFUSE_UNMASK_BAD "unmask_invalid"
/* a second, different unmask request in one round */
#define FEDRECI_REFUSE_UNMASK_AGAIN "unmask_second_request"
/* a reply that belongs to another round (a replay) */
#define FEDRECI_REFUSE_STALE "stale_round"
/* the round's parameters or model changed mid-round */
#define FEDRECI_REFUSE_PARAMS "params_changed"
/* the graph seed: the relayed contributions do not open the digest the
   roster committed to, this client's own contribution is missing or altered,
   or a neighbour's contribution does not open its signed commitment */
#define FEDRECI_REFUSE_SEED "seed_mismatch"
/* a seed step retry beyond the round's announced seed_retries (each retry
   would give the coordinator one more seed to choose from), or a retry
   roster that is not a strict subset of the previous one */
#define FEDRECI_REFUSE_SEED_RETRY "seed_retry_limit"
/* a reply during the round that does not decode or is not the one expected */
#define FEDRECI_REFUSE_MALFORMED "malformed_reply"
/* fewer than t neighbours endorsed the survivor set this client was given:
   the coordinator may have told others another set; nothing is revealed */
#define FEDRECI_REFUSE_CONSISTENCY "consistency_failed"

/* Stage 1: one encrypted share bundle from `from` to `to` (XChaCha20-Poly1305;
 * the receiver's shares of the sender's s^SK and b seed and their openings),
 * with the dealer's public commitments (checked reconstruction): h_b and h_s,
 * hash commitments to the two shares of this bundle, and c_b, the commitment
 * to the dealer's b seed (the same in every bundle of one dealer). The
 * coordinator relays both; the receiver checks the shares against h_b / h_s,
 * the coordinator checks every revealed share against them and the rebuilt b
 * against c_b (kdf.h fedreci_secagg_share_commit, fedreci_secagg_b_commit). */
typedef struct fedreci_secagg_ciphertext {
    uint64_t from;
    uint64_t to;
    const uint8_t *bytes;
    size_t len;
    const uint8_t *commit; /* FEDRECI_SECAGG_COMMIT_BYTES: h_b || h_s || c_b */
} fedreci_secagg_ciphertext;

/* Complaints (between stage 1 and stage 2; docs/protocol.md "Bad share
 * bundles"). A receiver whose bundle from a neighbour does not decrypt or
 * whose shares do not open the dealer's commitments names that bundle:
 * `bundle` is kdf.h fedreci_secagg_bundle_hash of exactly what it received
 * (ciphertext and commitments), and `sig` its Ed25519 signature with its
 * identity key over kdf.h fedreci_secagg_complaint_msg. A complaint reveals
 * nothing of the complainer's. */
typedef struct fedreci_secagg_complaint {
    uint64_t from;   /* the complainer (the bundle's receiver) */
    uint64_t dealer; /* the accused (the bundle's sender) */
    uint8_t bundle[32];
    uint8_t sig[FEDRECI_SECAGG_SIG_BYTES];
} fedreci_secagg_complaint;

/* A dealer's answer to a complaint it checked (signed by its neighbour and
 * naming the very bundle it sent): the plaintext it dealt to `to`, b share
 * || s^SK share || their two openings (kdf.h FEDRECI_SHARE_PLAIN_BYTES). The
 * coordinator and the receiver check it against the dealer's commitments. */
typedef struct fedreci_secagg_opening {
    uint64_t dealer;
    uint64_t to;
    uint8_t plain[128];
} fedreci_secagg_opening;

/* Stage 3: a survivor's answer about one neighbour: the share of that
 * neighbour's self-mask seed b (neighbour survived) or of its mask key s^SK
 * (neighbour dropped), never both. */
typedef enum fedreci_secagg_share_kind {
    FEDRECI_SECAGG_SHARE_B = 0,
    FEDRECI_SECAGG_SHARE_SK = 1,
} fedreci_secagg_share_kind;

typedef struct fedreci_secagg_reveal {
    uint64_t about; /* the neighbour whose secret this is a share of */
    uint8_t kind;   /* fedreci_secagg_share_kind */
    uint8_t share[FEDRECI_SECAGG_SHARE_BYTES];
    uint8_t opening[32]; /* opens the dealer's commitment h_b / h_s to this share */
} fedreci_secagg_reveal;

/* Quantization report for one client's input (shown in the privacy ledger). */
typedef struct fedreci_secagg_quant_stats {
    uint32_t clipped; /* entries whose |x| exceeded clip */
    float max_abs;    /* largest |x| before clipping */
} fedreci_secagg_quant_stats;

/* ---- neighbour graph --------------------------------------------------------- */

/* The neighbours of `member` (an index 0..m-1 into the sorted list of the m
 * clients that advertised) in the round's random k-regular graph seeded by
 * p->graph_seed: a Harary graph over a seeded permutation (Bell et al. 2020),
 * the complete graph when k >= m - 1. Writes up to `cap` member indices,
 * sorted, to out and their number to *n_out. Deterministic: every party gets
 * the same graph. */
FEDREC_NODISCARD fedrec_err fedreci_secagg_neighbors(const fedreci_secagg_params *p, uint32_t m,
                                                     uint32_t member, uint32_t *out, uint32_t cap,
                                                     uint32_t *n_out);

/* ---- client state machine ---------------------------------------------------- */

typedef struct fedreci_secagg_client fedreci_secagg_client;

/* Creates the client side of one round. identity_sk: the client's Ed25519
 * secret key (copied into secure memory). rounding_seed: seeds stochastic
 * rounding and the graph seed contribution (for reproducible simulations:
 * the same run gets the same graph); NULL, as every deployed client passes,
 * draws both from randombytes.
 * Errors: FEDREC_ERR_INVALID for bad parameters, FEDREC_ERR_NOMEM. */
FEDREC_NODISCARD fedrec_err fedreci_secagg_client_create(
    fedreci_secagg_client **out, const fedreci_secagg_params *p, uint64_t client_id,
    const uint8_t identity_sk[FEDRECI_SECAGG_SIGN_SK_BYTES],
    const uint8_t rounding_seed[FEDRECI_SECAGG_SEED_BYTES]);

/* The same client without round buffers of its own: the two d-word vectors
 * of masked_input (the quantized input and the masked output, 8 d bytes that
 * a buffered client holds from create to destroy) are lent by the caller to
 * fedreci_secagg_client_masked_input_into and never kept. A driver that runs
 * many clients' rounds (the simulator's workers) thus needs memory of the
 * order of d per worker, not per client. masked_input refuses such a client
 * (FEDREC_ERR_INVALID) and quantized_input returns NULL for it. Errors as
 * create. */
FEDREC_NODISCARD fedrec_err fedreci_secagg_client_create_unbuffered(
    fedreci_secagg_client **out, const fedreci_secagg_params *p, uint64_t client_id,
    const uint8_t identity_sk[FEDRECI_SECAGG_SIGN_SK_BYTES],
    const uint8_t rounding_seed[FEDRECI_SECAGG_SEED_BYTES]);

/* Wipes and frees. NULL is a no-op. */
void fedreci_secagg_client_destroy(fedreci_secagg_client *c);

fedreci_secagg_stage fedreci_secagg_client_stage(const fedreci_secagg_client *c);

/* The binding digest this client signs into its advert (32 bytes; proto/wire.h
 * fedreci_wire_binding: the model bytes and round parameters it received).
 * Before advertise; all zero until set. share_keys refuses a roster in which
 * a neighbour's advert carries another binding (FEDREC_ERR_PROTOCOL, refusal
 * FEDRECI_REFUSE_BINDING): every member must have been given the same model
 * and parameters. Errors: FEDREC_ERR_STAGE after advertise. */
FEDREC_NODISCARD fedrec_err fedreci_secagg_client_set_binding(fedreci_secagg_client *c,
                                                              const uint8_t binding[32]);

/* The stable name of the last refusal (FEDRECI_REFUSE_*), or NULL when the
 * client refused nothing. A refusal is recorded by the calls that check what
 * the coordinator sent (share_keys, masked_input, unmask); a refused call
 * leaves the state unchanged, and the driver ends the round. */
const char *fedreci_secagg_client_refusal(const fedreci_secagg_client *c);

/* Records a refusal the driver found itself (e.g. FEDRECI_REFUSE_STALE), so
 * that fedreci_secagg_client_refusal reports it. name: a FEDRECI_REFUSE_*
 * string (static storage). NULL c is a no-op. */
void fedreci_secagg_client_note_refusal(fedreci_secagg_client *c, const char *name);

/* Stage 0: draws the c and s X25519 key pairs and a fresh 16-byte graph seed
 * contribution, and signs the public keys, the binding and the commitment to
 * the contribution. *advert is written (identity_pk, binding and seed_commit
 * included). */
FEDREC_NODISCARD fedrec_err fedreci_secagg_client_advertise(fedreci_secagg_client *c,
                                                            fedreci_secagg_advert *advert);

/* Stage SEED (after the roster is fixed): takes the member ids of the roster
 * (m, strictly ascending, containing this client, 2 <= m <= n) and the seed
 * digest the coordinator committed to (fedreci_secagg_server_seed_digest:
 * a hash of every member's id and seed commitment), and gives this client's
 * contribution (FEDRECI_SECAGG_CONTRIB_BYTES) to reveal. The coordinator learns it only now, after
 * it fixed the roster and the digest, so it cannot choose the members or
 * their commitments knowing the seed. Errors: FEDREC_ERR_PROTOCOL (refusals
 * roster_invalid, roster_missing_self), FEDREC_ERR_STAGE. */
FEDREC_NODISCARD fedrec_err fedreci_secagg_client_reveal(fedreci_secagg_client *c,
                                                         const uint64_t *member_ids, size_t m,
                                                         const uint8_t digest[32],
                                                         uint8_t contribution[16]);

/* Stage SEED, attempt `attempt` (0: the first, as reveal). A retry (attempt
 * >= 1, after a reveal and before share_keys) takes the roster the
 * coordinator re-ran the seed step with, the members of the previous
 * attempt's roster that revealed, and its new digest, and gives this
 * client's contribution for that attempt (the next link of its chain, kdf.h
 * fedreci_secagg_seed_link: unknown to the coordinator until now). Refused,
 * nothing changed: attempt other than the previous one + 1, or beyond the
 * round's seed_retries (FEDREC_ERR_PROTOCOL, refusal seed_retry_limit: the
 * coordinator would get more than seed_retries + 1 seeds to choose from), a
 * roster that is not a strict subset of the previous attempt's
 * (seed_retry_limit), or as reveal (roster_invalid, roster_missing_self).
 * share_keys and its degree check (>= t neighbours) then run on this roster. */
FEDREC_NODISCARD fedrec_err fedreci_secagg_client_reveal_attempt(fedreci_secagg_client *c,
                                                                 uint32_t attempt,
                                                                 const uint64_t *member_ids,
                                                                 size_t m, const uint8_t digest[32],
                                                                 uint8_t contribution[16]);

/* The seed step attempt this client last revealed for (0 before a retry). */
uint32_t fedreci_secagg_client_seed_attempt(const fedreci_secagg_client *c);

/* Stage 1: takes the roster (the adverts of every client that advertised,
 * sorted by client_id: the same m ids reveal was given; entries that are not
 * neighbours may carry only the id) and every member's revealed contribution
 * (m slots of FEDRECI_SECAGG_SEED_SLOT_BYTES, roster order). Checks that the
 * contributions open the digest and that this client's is its own (refusal
 * seed_mismatch), derives the graph seed from them (kdf.h
 * fedreci_secagg_graph_seed), verifies the signatures and bindings of its
 * neighbours, each signature over the commitment to the neighbour's relayed
 * contribution (so a contribution that does not open the commitment the
 * neighbour signed fails it: advert_bad_signature; an advert's seed_commit,
 * when not all zero, is compared first: seed_mismatch), draws the
 * self-mask seed b, Shamir-shares s^SK and b among the neighbours with
 * threshold t and encrypts each neighbour's shares. *cts gets one ciphertext
 * per neighbour (n_cts).
 * Errors: FEDREC_ERR_SIGNATURE (refusal advert_bad_signature),
 * FEDREC_ERR_PROTOCOL (roster malformed or other than revealed on:
 * roster_invalid; this client missing: roster_missing_self; a neighbour's
 * binding differs: binding_mismatch; seed: seed_mismatch),
 * FEDREC_ERR_CRYPTO (all-zero X25519 result). */
FEDREC_NODISCARD fedrec_err fedreci_secagg_client_share_keys(fedreci_secagg_client *c,
                                                             const fedreci_secagg_advert *roster,
                                                             size_t m, const uint8_t *contributions,
                                                             const fedreci_secagg_ciphertext **cts,
                                                             size_t *n_cts);

/* share_keys when some members did not reveal: missing (m flags, or NULL
 * for none) marks them, and their entry in contributions is their seed
 * commitment instead. At most FEDRECI_SECAGG_SEED_MISSING_MAX, and never
 * this client (refusal seed_mismatch otherwise). */
FEDREC_NODISCARD fedrec_err fedreci_secagg_client_share_keys_missing(
    fedreci_secagg_client *c, const fedreci_secagg_advert *roster, size_t m,
    const uint8_t *contributions, const uint8_t *missing, const fedreci_secagg_ciphertext **cts,
    size_t *n_cts);

/* The graph seed this client derived (32 bytes), after share_keys; NULL
 * before. */
const uint8_t *fedreci_secagg_client_graph_seed(const fedreci_secagg_client *c);

/* Stage 2: takes the ciphertexts addressed to this client (from the neighbours
 * that completed stage 1), decrypts and keeps the shares, then masks the input:
 * y = q(x) || weight + PRG(b) + sum_v sign(u,v) PRG(KA(s_u, s_v)) mod 2^32 over
 * the neighbours v that sent shares. x has d - 1 floats; weight <= max_weight.
 * *masked points to d words. stats (optional) gets the clipping report.
 * Errors: FEDREC_ERR_CRYPTO (a ciphertext fails authentication or its shares
 * do not open the sender's commitments; lenient mode ignores such a bundle
 * instead, see fedreci_secagg_client_set_lenient), FEDREC_ERR_PROTOCOL (not
 * addressed to us, not a neighbour, fewer than t). */
FEDREC_NODISCARD fedrec_err fedreci_secagg_client_masked_input(
    fedreci_secagg_client *c, const fedreci_secagg_ciphertext *in, size_t n_in, const float *x,
    uint32_t weight, const uint32_t **masked, fedreci_secagg_quant_stats *stats);

/* masked_input into the caller's buffers, for any client (buffered or not):
 * q (d words; it receives the quantized, unmasked input q(x) || weight, a
 * secret: keep it in secure memory and wipe it) and masked (d words; the
 * masked input to send). The client keeps no pointer to either: the caller
 * may reuse them for the next client as soon as this returns. Same checks,
 * errors and result as masked_input (the same key, nonce and rounding seed
 * give the same words). */
FEDREC_NODISCARD fedrec_err fedreci_secagg_client_masked_input_into(
    fedreci_secagg_client *c, const fedreci_secagg_ciphertext *in, size_t n_in, const float *x,
    uint32_t weight, uint32_t *q, uint32_t *masked, fedreci_secagg_quant_stats *stats);

/* Lenient bundles (on = 1; the session sets it): in masked_input, a share
 * bundle that fails authentication, holds a non-canonical share or whose
 * shares do not open the dealer's commitments no longer fails the call. The
 * client still adds the pairwise mask with its sender (the pair key comes
 * from the sender's signed advert, not from the bundle, and the sender,
 * which did share keys, added the same mask), but holds none of its shares:
 * at unmask it reveals nothing about that neighbour. The round then needs t
 * holders of the sender's secrets among its other neighbours; a sender that
 * sends bad bundles to more than k - t neighbours still makes the round
 * abort. Default off (strict: FEDREC_ERR_CRYPTO / FEDREC_ERR_PROTOCOL). */
void fedreci_secagg_client_set_lenient(fedreci_secagg_client *c, int on);

/* Bad bundles the last masked_input ignored (lenient mode). */
uint32_t fedreci_secagg_client_bad_bundles(const fedreci_secagg_client *c);

/* Complaint step, receiver side (after share_keys, before masked_input):
 * takes the bundles relayed to this client, decrypts and checks them as
 * masked_input does (the same refusals; in strict mode a bad bundle fails
 * the call), keeps them, and signs one complaint per bad bundle (lenient
 * mode: *cpl gets them, n_cpl may be 0). masked_input then uses the bundles
 * kept here (its `in` is ignored). A repeated call returns the same
 * complaints. One Ed25519 signature per bad bundle; nothing otherwise.
 * Errors: those of masked_input's bundle checks, FEDREC_ERR_STAGE,
 * FEDREC_ERR_NOMEM. */
FEDREC_NODISCARD fedrec_err fedreci_secagg_client_receive(fedreci_secagg_client *c,
                                                          const fedreci_secagg_ciphertext *in,
                                                          size_t n_in,
                                                          const fedreci_secagg_complaint **cpl,
                                                          size_t *n_cpl);

/* Complaint step, dealer side: takes the complaints relayed against this
 * client and opens, for each one that is addressed to it, comes from a
 * neighbour, carries that neighbour's valid signature (identity key of its
 * signed advert) and names exactly the bundle this client sent it, the
 * plaintext of that bundle (*op, n_op). Any other complaint is ignored and
 * nothing is opened for it: a coordinator that altered a bundle in relay
 * or forged a complaint learns nothing. What an honest dealer opens, the
 * complainer had received already. Errors: FEDREC_ERR_STAGE (before
 * share_keys or after masked_input), FEDREC_ERR_NOMEM. */
FEDREC_NODISCARD fedrec_err fedreci_secagg_client_answer(fedreci_secagg_client *c,
                                                         const fedreci_secagg_complaint *against,
                                                         size_t n,
                                                         const fedreci_secagg_opening **op,
                                                         size_t *n_op);

/* Complaint step, outcome (after receive, before masked_input): excluded
 * (sorted ids, strictly ascending) are the members the coordinator excluded
 * from the round; op the dealers' openings addressed to this client. An
 * opening from a dealer this client complained about that opens the
 * dealer's commitments replaces the bad bundle (its shares are held from
 * now on); other openings are ignored. An excluded neighbour is treated as
 * if its bundle never came: no pairwise mask with it, none of its shares
 * held (the coordinator could do the same by withholding its bundle).
 * Refused, nothing changed: lists unsorted (FEDREC_ERR_PROTOCOL, refusal
 * relay_misaddressed), this client excluded (FEDREC_ERR_PROTOCOL), fewer
 * than t neighbours left to mask with (FEDREC_ERR_PROTOCOL), a second call
 * (FEDREC_ERR_STAGE). */
FEDREC_NODISCARD fedrec_err fedreci_secagg_client_resolve(fedreci_secagg_client *c,
                                                          const uint64_t *excluded,
                                                          size_t n_excluded,
                                                          const fedreci_secagg_opening *op,
                                                          size_t n_op);

/* The key that authenticates this client's masked input to the coordinator
 * (proto/wire.h fedreci_wire_mac): BLAKE2b(LABEL_MAC, X25519(s_sk, coord_pk),
 * round, id), where coord_pk is the coordinator's X25519 key for the round
 * (RoundParams) and s_pk, the public half, is in the signed advert. Only the
 * client and the coordinator can compute it. After advertise; key is written
 * only on success. Errors: FEDREC_ERR_STAGE (not advertised yet),
 * FEDREC_ERR_CRYPTO (coord_pk of small order). */
FEDREC_NODISCARD fedrec_err fedreci_secagg_client_mac_key(const fedreci_secagg_client *c,
                                                          const uint8_t coord_pk[32],
                                                          uint8_t key[32]);

/* The coordinator's side of the same key: BLAKE2b(LABEL_MAC, X25519(coord_sk,
 * s_pk), round, client_id) with s_pk from the client's verified advert.
 * Errors: FEDREC_ERR_CRYPTO (s_pk of small order; key zeroed). */
FEDREC_NODISCARD fedrec_err fedreci_secagg_mac_key(uint8_t key[32], const uint8_t coord_sk[32],
                                                   const uint8_t s_pk[32], uint64_t round_id,
                                                   uint64_t client_id);

/* Simulator oracle only: the quantized, unmasked input q(x) || weight (d
 * words) of the last masked_input call; NULL for an unbuffered client (its
 * caller holds q). The coordinator never sees this. */
const uint32_t *fedreci_secagg_client_quantized_input(const fedreci_secagg_client *c);

/* Stage CONSISTENCY: the server names the survivors (sent a masked input)
 * and the dropped (shared keys but sent no masked input). Refused
 * (FEDREC_ERR_PROTOCOL, nothing made) when a client is in both lists
 * (refusal unmask_both_sets), when fewer than t survivors are named, this
 * client is not a survivor, a listed client is not in the roster or a
 * neighbour that sent shares is named in neither list (unmask_invalid), or
 * when a second, different set arrives (unmask_second_request). Otherwise the
 * set is fixed for the round, *tags gets one endorsement of it per
 * neighbour named a survivor (fedreci_secagg_tag, ascending `to`), for the
 * coordinator to relay, and the set is signed once with the identity key
 * (fedreci_secagg_client_endorsement, one Ed25519 signature). An identical
 * repeated request gets the same tags. */
FEDREC_NODISCARD fedrec_err fedreci_secagg_client_consistency(
    fedreci_secagg_client *c, const uint64_t *survivors, size_t n_survivors,
    const uint64_t *dropped, size_t n_dropped, const fedreci_secagg_tag **tags, size_t *n_tags);

/* Stage UNMASK: takes the tags relayed to this client. Only when at least t
 * distinct neighbours endorsed the very set this client endorsed (tags that
 * do not verify, are not from a neighbour named survivor or not addressed to
 * this client are not counted) does it reveal, for each neighbour that sent
 * it shares, that neighbour's b share if it survived or its s^SK share if it
 * dropped, never both. Otherwise FEDREC_ERR_PROTOCOL, refusal
 * consistency_failed, nothing revealed, and the client stays where it was.
 * A repeated call gets the same reveals. Bonawitz et al. 2017, section 6:
 * since an honest member endorses one set per round, two different sets can
 * both collect t endorsements only from neighbourhoods with enough colluders
 * (docs/threat-model.md states the bound). */
FEDREC_NODISCARD fedrec_err fedreci_secagg_client_unmask(fedreci_secagg_client *c,
                                                         const fedreci_secagg_tag *tags,
                                                         size_t n_tags,
                                                         const fedreci_secagg_reveal **reveals,
                                                         size_t *n_reveals);

/* After consistency: the neighbours this client's set names survivors (its
 * endorsement peers: it sends each a tag and counts each one's tag or
 * signature), strictly ascending ids; *ids points into c. The wire packs
 * the tags in this order (proto/wire.h). Errors: FEDREC_ERR_STAGE. */
FEDREC_NODISCARD fedrec_err fedreci_secagg_client_endorse_peers(fedreci_secagg_client *c,
                                                                const uint64_t **ids, size_t *n);

/* After consistency: this client's endorsement signature (64 bytes, over
 * the set it was given: fedreci_secagg_endorsement), sent with its tags;
 * NULL before. */
const uint8_t *fedreci_secagg_client_endorsement(const fedreci_secagg_client *c);

/* Stage UNMASK, before unmask: when fewer than t of the relayed tags verify,
 * ids (room for cap >= the client's neighbour count) gets the neighbours
 * named survivors without a valid tag, whose signatures the client then asks
 * the coordinator for; *n = 0 when the tags alone make t (the honest path:
 * no signature is asked for or verified). Reads only. Errors:
 * FEDREC_ERR_STAGE, FEDREC_ERR_INVALID (cap too small), FEDREC_ERR_NOMEM. */
FEDREC_NODISCARD fedrec_err fedreci_secagg_client_endorse_missing(fedreci_secagg_client *c,
                                                                  const fedreci_secagg_tag *tags,
                                                                  size_t n_tags, uint64_t *ids,
                                                                  size_t cap, size_t *n);

/* unmask with signatures too: a neighbour named survivor whose tag does not
 * verify counts when its signature (sigs, from the coordinator's relay)
 * verifies under the identity key of its signed advert over this client's
 * set (one Ed25519 verification per signature given). unmask(c, tags, n,
 * ...) is unmask_endorsed(c, tags, n, NULL, 0, ...). Same refusals. */
FEDREC_NODISCARD fedrec_err fedreci_secagg_client_unmask_endorsed(
    fedreci_secagg_client *c, const fedreci_secagg_tag *tags, size_t n_tags,
    const fedreci_secagg_endorsement *sigs, size_t n_sigs, const fedreci_secagg_reveal **reveals,
    size_t *n_reveals);

/* ---- server state machine ---------------------------------------------------- */

typedef struct fedreci_secagg_server fedreci_secagg_server;

/* Creates the server side of one round for the invited cohort: n client ids
 * (distinct) and their Ed25519 identity public keys (n x 32 bytes).
 * Errors: FEDREC_ERR_INVALID (parameters, duplicate ids), FEDREC_ERR_NOMEM. */
FEDREC_NODISCARD fedrec_err fedreci_secagg_server_create(
    fedreci_secagg_server **out, const fedreci_secagg_params *p, const uint64_t *cohort,
    const uint8_t (*identity_pks)[FEDRECI_SECAGG_SIGN_PK_BYTES]);

void fedreci_secagg_server_destroy(fedreci_secagg_server *s);

fedreci_secagg_stage fedreci_secagg_server_stage(const fedreci_secagg_server *s);

/* The binding every advert must carry (the coordinator's
 * fedreci_wire_binding of the round's parameters and model; all zero until
 * set). Before the adverts. NULL arguments are a no-op. */
void fedreci_secagg_server_set_binding(fedreci_secagg_server *s, const uint8_t binding[32]);

/* Stage 0: accepts one advert (signature checked against the registered
 * identity key; identity_pk is taken from the registry, not the message;
 * then its binding against the round's: FEDREC_ERR_PROTOCOL when another). */
FEDREC_NODISCARD fedrec_err fedreci_secagg_server_add_advert(fedreci_secagg_server *s,
                                                             const fedreci_secagg_advert *a);

/* Checks only the signature of an advert of an invited member under its
 * registered identity key (any stage; nothing of the round changes), so the
 * coordinator can authenticate the message before it counts it. The next
 * add_advert of exactly these signed bytes does not verify them again (the
 * server remembers the last advert verified here; any other call to
 * verify_advert or add_advert forgets it). Errors: FEDREC_ERR_INVALID (NULL),
 * FEDREC_ERR_PROTOCOL (not invited), FEDREC_ERR_SIGNATURE. */
FEDREC_NODISCARD fedrec_err fedreci_secagg_server_verify_advert(fedreci_secagg_server *s,
                                                                const fedreci_secagg_advert *a);

/* Ends stage 0: with fewer than t adverts the round aborts
 * (FEDREC_ERR_ABORTED). Otherwise *roster gets the adverts sorted by id; the
 * roster is fixed, the graph is not built yet (stage SEED). */
FEDREC_NODISCARD fedrec_err fedreci_secagg_server_close_advertise(
    fedreci_secagg_server *s, const fedreci_secagg_advert **roster, size_t *m);

/* Stage SEED: the digest every member's contribution must open (32 bytes:
 * kdf.h fedreci_secagg_seed_digest over the roster's ids and signed seed
 * commitments), relayed with the roster. NULL before close_advertise. */
const uint8_t *fedreci_secagg_server_seed_digest(const fedreci_secagg_server *s);

/* Stage SEED: accepts a roster member's contribution (it must open the
 * commitment in its signed advert: FEDREC_ERR_PROTOCOL otherwise, and the
 * sender is named a culprit, fedreci_secagg_server_culprits: the caller
 * authenticated the message, and the commitment is signed, so nobody else
 * can make it fail; a later contribution from it is refused the same way). */
FEDREC_NODISCARD fedrec_err fedreci_secagg_server_add_reveal(fedreci_secagg_server *s,
                                                             uint64_t sender,
                                                             const uint8_t contribution[16]);

/* Ends stage SEED: at most FEDRECI_SECAGG_SEED_MISSING_MAX (0) roster
 * members may have failed to reveal, otherwise the round aborts
 * (FEDREC_ERR_ABORTED: leaving members out after the reveals would give the
 * coordinator more seeds to choose from; a driver with retries left calls
 * fedreci_secagg_server_retry_seed instead).
 * A member that did not reveal counts as dropped: its shares are refused.
 * Derives the graph seed, builds the graph; *contributions gets the m slots
 * (FEDRECI_SECAGG_SEED_SLOT_BYTES each) in roster order (for relay; a missing
 * member's slot is its commitment, fedreci_secagg_server_seed_missing flags
 * it). */
FEDREC_NODISCARD fedrec_err fedreci_secagg_server_close_reveal(fedreci_secagg_server *s,
                                                               const uint8_t **contributions);

/* Stage SEED, when some roster members have not revealed (the driver's
 * deadline passed) and the round announced retries left: re-runs the seed
 * step without them. The members that did not reveal (culprits included:
 * they stay named by fedreci_secagg_server_culprits) leave the roster as if
 * they had never advertised; *member_ids gets the m' members that remain
 * (sorted; points into s until the next call) and the new digest
 * (fedreci_secagg_server_seed_digest) covers their signed commitments under
 * the next attempt number, for the driver to send as the new roster. Every
 * member reveals again (the next link of its chain). Errors:
 * FEDREC_ERR_STAGE (not stage SEED, or every member revealed: close_reveal
 * instead), FEDREC_ERR_ABORTED (no retry left, fewer than t or 2 members
 * left, or a graph degree below t: the round aborts as close_reveal would). */
FEDREC_NODISCARD fedrec_err fedreci_secagg_server_retry_seed(fedreci_secagg_server *s,
                                                             const uint64_t **member_ids,
                                                             size_t *m);

/* Stage SEED: forgets member `id`'s contribution of this attempt, as if it
 * had not revealed: what a deviating coordinator does when it claims a
 * member missing to get another seed. Only the cheating-coordinator test
 * build calls it (tests/test_cheat.c: the clients must refuse more retries
 * than announced); the daemon never does. Errors: FEDREC_ERR_STAGE,
 * FEDREC_ERR_PROTOCOL (not a member that revealed). */
FEDREC_NODISCARD fedrec_err fedreci_secagg_server_seed_forget(fedreci_secagg_server *s,
                                                              uint64_t id);

/* The attempt of the seed step (0, then 1 after the first retry, ...). */
uint32_t fedreci_secagg_server_seed_attempt(const fedreci_secagg_server *s);

/* The members retries left out (did not reveal in some attempt, culprits
 * aside), sorted; *ids points into s until the next call. Returns the count. */
size_t fedreci_secagg_server_seed_dropped(fedreci_secagg_server *s, const uint64_t **ids);

/* After close_reveal: m flags, 1 for a member that did not reveal; else NULL. */
const uint8_t *fedreci_secagg_server_seed_missing(const fedreci_secagg_server *s);

/* The graph seed (32 bytes) after close_reveal, else NULL. */
const uint8_t *fedreci_secagg_server_graph_seed(const fedreci_secagg_server *s);

/* Stage 1: accepts a client's ciphertexts (one per neighbour, from == sender). */
FEDREC_NODISCARD fedrec_err fedreci_secagg_server_add_shares(fedreci_secagg_server *s,
                                                             uint64_t sender,
                                                             const fedreci_secagg_ciphertext *cts,
                                                             size_t n);

/* Ends stage 1 (fewer than t senders aborts the round). */
FEDREC_NODISCARD fedrec_err fedreci_secagg_server_close_share_keys(fedreci_secagg_server *s);

/* After stage 1: the ciphertexts addressed to `client` (for relay). */
FEDREC_NODISCARD fedrec_err fedreci_secagg_server_shares_for(fedreci_secagg_server *s,
                                                             uint64_t client,
                                                             const fedreci_secagg_ciphertext **cts,
                                                             size_t *n);

/* Complaint step (after close_share_keys, before any masked input; skipped
 * by a driver that never calls it). add_complaints takes a sender's
 * complaints (at most one per neighbour that dealt to it; n may be 0, "no
 * complaint"). Each must be from the sender about a neighbour, carry the
 * sender's valid signature and name the bundle the dealer really sent (the
 * one kept from add_shares): a bad signature names the sender a culprit
 * (FEDREC_ERR_SIGNATURE), a complaint about another bundle than the one
 * sent excludes the sender from the round (FEDREC_ERR_CRYPTO: it complains
 * about bytes it was never sent; not a culprit, since without TLS the
 * network could have altered the relay); either way none of the message is
 * kept. n_complaints counts the complaints accepted so far. */
FEDREC_NODISCARD fedrec_err fedreci_secagg_server_add_complaints(
    fedreci_secagg_server *s, uint64_t sender, const fedreci_secagg_complaint *cpl, size_t n);
size_t fedreci_secagg_server_n_complaints(const fedreci_secagg_server *s);

/* The accepted complaints against `dealer` (for relay to it); *cpl is
 * NULL when the round has no complaint (*n is 0). Cost: the per-bundle
 * state (m x deg slots, the openings in secure memory) is allocated only
 * once some complaint is accepted; a round without one keeps m flags. */
FEDREC_NODISCARD fedrec_err fedreci_secagg_server_complaints_against(
    fedreci_secagg_server *s, uint64_t dealer, const fedreci_secagg_complaint **cpl, size_t *n);

/* A dealer's openings (one per accepted complaint against it, or fewer).
 * Each must open the commitments the dealer made to that bundle; one that
 * does not names the dealer a culprit (FEDREC_ERR_CRYPTO, nothing kept). */
FEDREC_NODISCARD fedrec_err fedreci_secagg_server_add_openings(fedreci_secagg_server *s,
                                                               uint64_t dealer,
                                                               const fedreci_secagg_opening *op,
                                                               size_t n);

/* Ends the complaint step: *excluded (sorted ids) gets every member caught
 * cheating in it (culprits), every complainer excluded by add_complaints
 * and every dealer with an accepted complaint it did not open. They count
 * as members that never shared keys: their masked inputs are refused and
 * they are neither survivors nor dropped. Aborts (FEDREC_ERR_ABORTED) when
 * fewer than t members remain. */
FEDREC_NODISCARD fedrec_err fedreci_secagg_server_close_complaints(fedreci_secagg_server *s,
                                                                   const uint64_t **excluded,
                                                                   size_t *n_excluded);

/* After close_complaints: the openings addressed to `holder` (for relay;
 * *op is NULL when the round had no complaint, *n 0). */
FEDREC_NODISCARD fedrec_err fedreci_secagg_server_openings_for(fedreci_secagg_server *s,
                                                               uint64_t holder,
                                                               const fedreci_secagg_opening **op,
                                                               size_t *n);

/* Stage 2: accepts a masked input of exactly d words from a stage-1 sender
 * and adds it into the running sum (O(d), no copy kept). */
FEDREC_NODISCARD fedrec_err fedreci_secagg_server_add_masked_input(fedreci_secagg_server *s,
                                                                   uint64_t sender,
                                                                   const uint32_t *y, size_t d);

/* Ends stage 2: names the survivors and the dropped (sorted ids), or aborts
 * with fewer than t survivors. */
FEDREC_NODISCARD fedrec_err fedreci_secagg_server_close_masked_input(fedreci_secagg_server *s,
                                                                     const uint64_t **survivors,
                                                                     size_t *n_survivors,
                                                                     const uint64_t **dropped,
                                                                     size_t *n_dropped);

/* After close_masked_input: the neighbours of `member` named survivors,
 * strictly ascending ids (the order of its packed tags on the wire); *ids
 * points into s until the next call. Errors: FEDREC_ERR_STAGE,
 * FEDREC_ERR_PROTOCOL (not in the roster). */
FEDREC_NODISCARD fedrec_err fedreci_secagg_server_endorse_peers(fedreci_secagg_server *s,
                                                                uint64_t member,
                                                                const uint64_t **ids, size_t *n);

/* Stage CONSISTENCY: accepts a survivor's tags (from == sender, to a
 * neighbour, at most one per neighbour) and its endorsement signature
 * (sig, 64 bytes: fedreci_secagg_endorsement), which is verified against the
 * survivor set this server named and the sender's registered identity key.
 * A signature that does not verify names the sender a culprit
 * (FEDREC_ERR_SIGNATURE; the caller authenticated the message, so nobody
 * else can have made it fail) and nothing of the message is kept: it did not
 * endorse. The server cannot check the tags (only the pair can). */
FEDREC_NODISCARD fedrec_err fedreci_secagg_server_add_consistency(fedreci_secagg_server *s,
                                                                  uint64_t sender,
                                                                  const fedreci_secagg_tag *tags,
                                                                  size_t n, const uint8_t *sig);

/* add_consistency without verifying the signature: what a deviating
 * coordinator does when it relays endorsements it did not check. Only the
 * cheating-coordinator test build calls it (tests/test_cheat.c: the clients
 * must refuse signatures over sets other than their own); the daemon never
 * does. */
FEDREC_NODISCARD fedrec_err fedreci_secagg_server_add_consistency_unverified(
    fedreci_secagg_server *s, uint64_t sender, const fedreci_secagg_tag *tags, size_t n,
    const uint8_t *sig);

/* Ends stage CONSISTENCY. Every survivor that endorsed (valid signature)
 * counts for each neighbour named survivor, whatever its tags (a neighbour
 * whose tag fails asks for the signature). So the server knows which
 * survivors will reveal (those endorsed by at least t of their neighbours
 * named survivors) and whether every secret still has t revealing holders;
 * when one does not, or fewer than t survivors endorsed, the round aborts
 * now (FEDREC_ERR_ABORTED) and fedreci_secagg_server_non_endorsers names
 * the survivors that sent no valid endorsement, the cause. */
FEDREC_NODISCARD fedrec_err fedreci_secagg_server_close_consistency(fedreci_secagg_server *s);

/* After close_consistency (also when it aborted the round): the survivors
 * that sent no endorsement (sorted ids, not counting culprits, which are
 * named anyway); *ids points into s until the next call. Returns the count
 * (0 before close_consistency or on NULL arguments). */
size_t fedreci_secagg_server_non_endorsers(fedreci_secagg_server *s, const uint64_t **ids);

/* During or after stage UNMASK: the survivors that close_consistency
 * counted on to reveal (endorsed by at least t of their neighbours named
 * survivors, whose endorsements it verified) and that sent no reveals
 * (culprits aside), sorted; *ids points into s until the next call. When
 * finish aborts for want of shares, these are the cause: every secret had t
 * holders among the members counted on. Returns the count. */
size_t fedreci_secagg_server_reveal_withheld(fedreci_secagg_server *s, const uint64_t **ids);

/* After stage CONSISTENCY: for each id in from[n] (a neighbour of `client`
 * named a survivor that endorsed), its endorsement signature, for a client
 * whose tag from it failed; ids that are not such a neighbour are skipped.
 * *out (points into s until the next call) gets *n_out entries in the order
 * asked. Errors: FEDREC_ERR_STAGE, FEDREC_ERR_PROTOCOL (client not in the
 * roster). */
FEDREC_NODISCARD fedrec_err fedreci_secagg_server_endorsements_for(
    fedreci_secagg_server *s, uint64_t client, const uint64_t *from, size_t n,
    const fedreci_secagg_endorsement **out, size_t *n_out);

/* After stage CONSISTENCY: the tags addressed to `client` (for relay). */
FEDREC_NODISCARD fedrec_err fedreci_secagg_server_tags_for(fedreci_secagg_server *s,
                                                           uint64_t client,
                                                           const fedreci_secagg_tag **tags,
                                                           size_t *n);

/* Stage 3: accepts a survivor's reveals. Shares that contradict the request
 * (a b share for a dropped client, an s^SK share for a survivor) are refused. */
FEDREC_NODISCARD fedrec_err fedreci_secagg_server_add_unmask(fedreci_secagg_server *s,
                                                             uint64_t sender,
                                                             const fedreci_secagg_reveal *r,
                                                             size_t n);

/* Ends the round: rebuilds each survivor's b and each dropped client's s^SK
 * from >= t shares, removes every mask and writes the exact sum of the
 * survivors' q(x) || weight: sum[d] in Z_{2^32}. Aborts (FEDREC_ERR_ABORTED,
 * model unchanged) when some secret has fewer than t shares. */
FEDREC_NODISCARD fedrec_err fedreci_secagg_server_finish(fedreci_secagg_server *s, uint32_t *sum,
                                                         size_t d);

/* The clients this server caught cheating so far in the round, sorted by id:
 * a member whose graph seed contribution does not open its signed
 * commitment (add_reveal), a holder whose revealed share does not open the commitment its dealer
 * made to the share dealt to it (add_unmask refuses that message and discards its reveals), and a
 * dealer whose shares all opened their commitments yet rebuild a secret other than the one it
 * committed to (a b seed not matching c_b, or an s^SK whose public key is not the signed s_pk;
 * finish aborts the round). *ids points into s until the next call; returns the count (0 on NULL
 * arguments or out of memory). */
size_t fedreci_secagg_server_culprits(fedreci_secagg_server *s, const uint64_t **ids);

/* Checks an unmasked sum (p->d words, from finish) before anything uses it:
 * the weight coordinate must equal expect_weight (the coordinator's rule:
 * n_survivors * max_weight, since every honest client sends max_weight), and
 * every other coordinate, read as a signed 32-bit value, must lie within
 * n_survivors * ceil(clip * scale), the most that n_survivors honest clipped
 * inputs can add up to. A client that skips clipping or the weight rule is
 * thus caught when it pushes the sum outside that range (it can still move
 * each coordinate by up to 2 n_survivors ceil(clip * scale) inside it; see
 * docs/threat-model.md). FEDREC_ERR_ABORTED naming the first failing
 * coordinate and its value; O(d), reads only. */
FEDREC_NODISCARD fedrec_err fedreci_secagg_check_sum(const fedreci_secagg_params *p,
                                                     const uint32_t *sum, uint32_t n_survivors,
                                                     uint32_t expect_weight);

/* ---- quantization ---------------------------------------------------------- */

/* Reads a ring sum back: sum[i] as a signed 32-bit value divided by scale.
 * out has d - 1 floats; *total_weight gets the weight coordinate. */
void fedreci_secagg_dequantize(const fedreci_secagg_params *p, const uint32_t *sum, float *out,
                               uint32_t *total_weight);

/* ---- clarifications of the contract above (implementation notes) ------------
 *
 * - Overflow budget: stochastic rounding can round up, so one client's |q| is
 *   at most ceil(clip * scale); params_check requires n * ceil(clip * scale)
 *   < 2^31 (the same as n * clip * scale < 2^31 when clip * scale is whole).
 *   It also caps n <= 2^20 and d <= 2^28 (quantize.h).
 * - Shares: holders are the sender's graph neighbours; the x-coordinate of a
 *   share is the holder's 1-based position in the roster (sorted ids). The
 *   secrets shared are two uniform ristretto255 scalars r_b and r_s; the
 *   32-byte seeds are b = BLAKE2b(label, r_b, round, id) and s^SK =
 *   BLAKE2b(label, r_s, round, id) (kdf.h), so the server rebuilds them
 *   exactly. Share bundle: 24-byte random nonce || XChaCha20-Poly1305(b share
 *   || s^SK share), 104 bytes (FEDRECI_SHARE_CT_BYTES in kdf.h).
 * - close_advertise also aborts when the graph degree min(k, m - 1) (k + 1 for
 *   odd k and odd m, see graph.h) is below t: no secret could be rebuilt.
 *   close_masked_input aborts early when some secret has fewer than t
 *   surviving holders; finish aborts when fewer than t were revealed.
 * - Round binding: the decoded messages carry no round id (the envelope
 *   does, and the drivers check it). A message from another round is still
 *   refused here: an advert fails its signature (FEDREC_ERR_SIGNATURE), a
 *   share bundle fails authentication (FEDREC_ERR_CRYPTO).
 * - The server also refuses adverts whose X25519 keys have small order
 *   (FEDREC_ERR_CRYPTO), so no client can be made to fail key agreement.
 * - Zero total weight: dequantize reports *total_weight = 0 and finite values;
 *   the caller skips the update (nothing here divides by the weight).
 * - Deviating server (docs/threat-model.md): a client refuses a second,
 *   different survivor set, and reveals only after t neighbours endorsed the
 *   set it endorsed (stage CONSISTENCY: a tag, or the neighbour's signature
 *   over the same set when its tag fails); the graph seed is derived from the
 *   members' contributions, committed in their signed adverts before the
 *   roster is fixed and revealed after (stage SEED).
 */

#endif /* FEDREC_CORE_SECAGG_H */
