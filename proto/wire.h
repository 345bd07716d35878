/*
 * proto/wire: encode and decode fedrec's wire messages (proto/fedrec.proto,
 * package fedrec.v1) with size caps, required-field checks and vector length
 * checks, converting to and from the core/secagg structs. See
 * docs/protocol.md for the message flow.
 *
 * Every message is one fedrec.v1.Envelope (protocol version, client id,
 * round id, stage, one body). Encoders write an nng message (the body of the
 * nng message is the encoded Envelope, nothing else). Decoders take the raw
 * bytes and a size cap, check the cap BEFORE unpacking, unpack with
 * protobuf-c, then check the envelope and the body's structure: protocol
 * version, a body that matches the stage, key/signature/share lengths, sorted
 * id lists, model vector lengths and checksum. Checks that need the round's
 * dimension (masked input length, roster size) are in the accessors below,
 * which take d or the expected sizes.
 *
 * Stage numbers used on the wire (Envelope.stage):
 *   1 check-in, 2 model download, 3 + s for SecAgg stage s (0 advertise,
 *   1 share keys, 2 masked input, 3 unmask), 7 the graph seed (between
 *   advertise and share keys), 8 the consistency check (between masked input
 *   and unmask), 9 complaints and 10 openings (between the share relay and
 *   the masked input).
 *
 * Byte order: vectors are little-endian on the wire; this code targets
 * little-endian hosts (checked at compile time in wire.c), so word vectors
 * are used in place without conversion.
 *
 * Ownership: a decoded envelope (fedreci_wire_env) owns all its memory and is
 * freed with fedreci_wire_free (NULL is a no-op); pointers returned by the
 * accessors point into it and live as long as it. Encoders copy their inputs
 * into the new nng message; on error no message is returned and nothing is
 * leaked. Thread-safety: all functions are reentrant.
 *
 * Errors: FEDREC_ERR_TOO_BIG (over the cap), FEDREC_ERR_FORMAT (truncated,
 * malformed, a missing or wrong-length field, a wrong-length vector),
 * FEDREC_ERR_UNSUPPORTED (another protocol version), FEDREC_ERR_CRYPTO (model
 * checksum mismatch), FEDREC_ERR_NOMEM. The detailed message names the field.
 */
#ifndef FEDREC_PROTO_WIRE_H
#define FEDREC_PROTO_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include <nng/nng.h>

#include "core/dp/round.h"
#include "core/secagg/secagg.h"
#include "fedrec.pb-c.h"
#include "fedrec/fedrec.h"

#define FEDRECI_WIRE_PROTOCOL_VERSION 8u
#define FEDRECI_WIRE_CHECKSUM_BYTES 32u  /* BLAKE2b-256 */
#define FEDRECI_WIRE_MAX_CT_BYTES 4096u  /* one encrypted share bundle */
#define FEDRECI_WIRE_MAX_CODE_BYTES 256u /* one catalog code */
#define FEDRECI_WIRE_MAX_URL_BYTES 255u  /* CheckInReply.aggregator_url */
#define FEDRECI_WIRE_SIG_BYTES 64u       /* Envelope.sig: Ed25519 */
#define FEDRECI_WIRE_SIG_SUFFIX 67u      /* its encoding: tag (2) + length (1) + 64 */
#define FEDRECI_WIRE_MAC_BYTES 40u       /* Envelope.mac: nonce (24) + Poly1305 tag (16) */
#define FEDRECI_WIRE_MAC_SUFFIX 43u      /* its encoding: tag (2) + length (1) + 40 */

/* Envelope.stage values. */
typedef enum fedreci_wire_stage {
    FEDRECI_WIRE_STAGE_CHECKIN = 1,
    FEDRECI_WIRE_STAGE_MODEL = 2,
    FEDRECI_WIRE_STAGE_ADVERTISE = 3,    /* SecAgg stage 0 */
    FEDRECI_WIRE_STAGE_SHARE_KEYS = 4,   /* SecAgg stage 1 */
    FEDRECI_WIRE_STAGE_MASKED_INPUT = 5, /* SecAgg stage 2 */
    FEDRECI_WIRE_STAGE_UNMASK = 6,       /* SecAgg stage 3 */
    FEDRECI_WIRE_STAGE_SEED = 7,         /* the graph seed, after advertise */
    FEDRECI_WIRE_STAGE_CONSISTENCY = 8,  /* the consistency check, before unmask */
    FEDRECI_WIRE_STAGE_COMPLAINT = 9,    /* complaints, after the share relay */
    FEDRECI_WIRE_STAGE_OPENING = 10,     /* the accused dealers' openings */
} fedreci_wire_stage;

/* SecAgg stage s (0..3) <-> wire stage. */
#define FEDRECI_WIRE_STAGE_OF_SECAGG(s) ((uint32_t)(s) + 3u)

typedef Fedrec__V1__Envelope fedreci_wire_env;

/* The envelope's header fields. */
typedef struct fedreci_wire_hdr {
    uint64_t client_id;
    uint64_t round_id;
    uint32_t stage; /* fedreci_wire_stage */
} fedreci_wire_hdr;

/* RoundParams.step values. */
#define FEDRECI_WIRE_STEP_GRADIENT 0u
#define FEDRECI_WIRE_STEP_ALS 1u

/* Round parameters as carried by CheckInReply (SELECTED). */
typedef struct fedreci_wire_round {
    fedreci_secagg_params secagg; /* round_id is the envelope's */
    uint64_t model_version;
    uint32_t n_items;
    uint32_t k_factors;
    uint32_t stage_timeout_ms;
    uint8_t coord_pk[32];       /* the coordinator's X25519 key for this round (MAC keys) */
    fedreci_dp_round_params dp; /* differential privacy; dp.mechanism 0: none */
    /* The server step the update is for (RoundParams.step): FEDRECI_WIRE_STEP_GRADIENT
     * (0) the gradient alone, FEDRECI_WIRE_STEP_ALS (1) the gradient and the
     * x_u x_u^T block (core/mf/mf.h fedreci_mf_xx_block with bound x_bound and
     * weight fedreci_mf_xx_weight(secagg.clip, x_bound)); never with dp. */
    uint32_t step;
    double x_bound; /* step ALS: the bound on |x_u|; 0 otherwise */
    /* SecAgg groups (issue 20): the aggregator that runs this client's group
     * (CheckInReply.aggregator_url, at most FEDRECI_WIRE_MAX_URL_BYTES), or ""
     * when the round runs at the coordinator that answered the check-in. */
    char aggregator_url[FEDRECI_WIRE_MAX_URL_BYTES + 1];
} fedreci_wire_round;

/* A model as carried by ModelReply. Borrowed pointers (encode) or pointers
 * into the decoded envelope (decode). */
typedef struct fedreci_wire_model {
    uint64_t version;
    uint32_t n_items;
    uint32_t k;
    const float *item_factors;     /* n_items x k, row-major */
    const float *gram;             /* k x k or NULL */
    const uint8_t *checksum;       /* 32 bytes: BLAKE2b-256 of the factor bytes */
    const char *const *item_codes; /* n_items strings or NULL */
    size_t n_item_codes;           /* n_items or 0 */
    const uint32_t *retired_rows;  /* rows of retired products, strictly ascending, each
                                      < n_items; NULL when n_retired is 0 */
    size_t n_retired;              /* <= n_items */
} fedreci_wire_model;

/* ---- sizes --------------------------------------------------------------- */

/* The receive cap for a deployment: the largest legitimate message (model
 * reply with catalog, masked input of d = n_items * k + 1 words, roster and
 * unmask request for max_cohort clients) plus framing slack. catalog_bytes is
 * the total length of the item codes; the retired-row list (at most n_items
 * varints) is included. Saturates at SIZE_MAX / 2. */
size_t fedreci_wire_cap(uint32_t n_items, uint32_t k, uint32_t max_cohort, size_t catalog_bytes);

/* The binding a client signs into its advert (secagg.h fedreci_secagg_advert):
 * BLAKE2b-256("fedrec.v2.binding" || LE64(round_id) || LE32(n, k, t, d) ||
 * clip, scale (IEEE-754 binary64, LE) || LE32(max_weight) || graph_seed ||
 * LE64(model_version) || LE32(n_items, k_factors, stage_timeout_ms) ||
 * coord_pk || model_checksum || LE32(seed_retries) [|| dp] [|| LE32(step) || x_bound]),
 * where model_checksum is the
 * BLAKE2b-256 of the
 * item-factor bytes the client trains on (ModelReply.checksum) and dp, present
 * when r->dp.mechanism != 0, is LE32(mechanism, min_survivors) || l2_bound,
 * scale, noise_var, beta, row_bound, gram_weight, lambda, epsilon_round,
 * delta (binary64, LE) || rotation_seed (DpParams), and step || x_bound present
 * when r->step != 0 (binary64, LE). Every round
 * parameter the coordinator sent and the model itself: two members with the
 * same binding were given the same round. Pure, thread-safe. */
void fedreci_wire_binding(const fedreci_wire_round *r,
                          const uint8_t model_checksum[FEDRECI_WIRE_CHECKSUM_BYTES],
                          uint8_t out[32]);

/* BLAKE2b-256 of len bytes (the model checksum). */
void fedreci_wire_checksum(const void *data, size_t len, uint8_t out[FEDRECI_WIRE_CHECKSUM_BYTES]);

/* The encoded size of a ModelReply envelope for this model (no encoding). */
size_t fedreci_wire_model_reply_size(const fedreci_wire_hdr *h, const fedreci_wire_model *model);

/* ---- decode --------------------------------------------------------------- */

/* Decodes and checks one envelope from buf[len]. len > cap is refused with
 * FEDREC_ERR_TOO_BIG before anything is unpacked. *out is written only on
 * success; free it with fedreci_wire_free. */
FEDREC_NODISCARD fedrec_err fedreci_wire_decode(const uint8_t *buf, size_t len, size_t cap,
                                                fedreci_wire_env **out);

/* Decodes the body of an nng message (same checks). The message is not freed. */
FEDREC_NODISCARD fedrec_err fedreci_wire_decode_msg(nng_msg *m, size_t cap, fedreci_wire_env **out);

void fedreci_wire_free(fedreci_wire_env *e);

/* The envelope's header. */
fedreci_wire_hdr fedreci_wire_header(const fedreci_wire_env *e);

/* ---- accessors (dimension checks, conversion to core/secagg structs) ------- */

/* The longest attestation token a check-in may carry, in bytes. */
#define FEDRECI_WIRE_ATTEST_MAX 2048

/* CheckIn: the attestation token (NULL and 0 when none). Errors:
 * FEDREC_ERR_FORMAT (longer than FEDRECI_WIRE_ATTEST_MAX). */
FEDREC_NODISCARD fedrec_err fedreci_wire_get_attestation(const fedreci_wire_env *e,
                                                         const uint8_t **token, size_t *len);

/* CheckIn: identity key, held version, opted-in flag. */
FEDREC_NODISCARD fedrec_err fedreci_wire_get_checkin(const fedreci_wire_env *e,
                                                     const uint8_t **identity_pk,
                                                     uint64_t *model_version, int *opted_in);

/* CheckIn: its sent_unix_ms (0 when absent: a client before this field). */
uint64_t fedreci_wire_checkin_sent_ms(const fedreci_wire_env *e);

/* CheckInReply SELECTED: the round parameters (round_id from the envelope);
 * checks d == n_items * k_factors + 1 (with DpParams: d == D + 1, D the
 * padded DP-ALS dimension, and a 32-byte rotation seed; the DP values
 * themselves are the client's to verify, core/dp/round.h) and the SecAgg
 * parameter rules. */
FEDREC_NODISCARD fedrec_err fedreci_wire_get_round(const fedreci_wire_env *e,
                                                   fedreci_wire_round *out);

/* ModelReply (not not_modified): the model, checksum verified by decode, and
 * the retired rows (decode checked them: strictly ascending, < n_items). */
FEDREC_NODISCARD fedrec_err fedreci_wire_get_model(const fedreci_wire_env *e,
                                                   fedreci_wire_model *out);

/* AdvertiseKeys from client_id -> an advert (identity_pk zeroed; the server
 * fills it from its registry). */
FEDREC_NODISCARD fedrec_err fedreci_wire_get_advert(const fedreci_wire_env *e,
                                                    fedreci_secagg_advert *out);

/* Roster -> a malloc'd array of m adverts sorted by id, one per member; the
 * members the message carries no advert for have only client_id set (keys
 * zero). m must be between min_m and max_m and the roster must contain
 * `self`. The caller frees *out with free(). */
FEDREC_NODISCARD fedrec_err fedreci_wire_get_roster(const fedreci_wire_env *e, uint64_t self,
                                                    size_t min_m, size_t max_m,
                                                    fedreci_secagg_advert **out, size_t *m);

/* Roster: its seed digest (32 bytes, pointing into the envelope).
 * FEDREC_ERR_FORMAT when absent. */
FEDREC_NODISCARD fedrec_err fedreci_wire_get_seed_digest(const fedreci_wire_env *e,
                                                         const uint8_t **digest);

/* Roster or SeedReveal: the seed step attempt it belongs to (0 for the
 * first; a Roster with attempt >= 1 answers a SeedReveal: a retry).
 * FEDREC_ERR_FORMAT for another body. */
FEDREC_NODISCARD fedrec_err fedreci_wire_get_seed_attempt(const fedreci_wire_env *e,
                                                          uint32_t *attempt);

/* SeedReveal: the sender's contribution (FEDRECI_SECAGG_CONTRIB_BYTES = 16,
 * checked by decode; into the envelope). */
FEDREC_NODISCARD fedrec_err fedreci_wire_get_seed_reveal(const fedreci_wire_env *e,
                                                         const uint8_t **contribution);

/* SeedRelay for the m members `ids` (sorted, the Roster's): 16 bytes of
 * contribution for each member not listed missing and 32 bytes of
 * commitment for each one listed (FEDREC_ERR_FORMAT otherwise), copied to a
 * malloc'd buffer *contribs of m slots (secagg.h
 * FEDRECI_SECAGG_SEED_SLOT_BYTES; a contribution's slot is zero after its 16
 * bytes); a malloc'd array *missing of m flags (1: the member did not
 * reveal, its slot is its commitment; the indices on the wire must be
 * strictly ascending and < m); and a malloc'd array *adverts of m entries in
 * ids order, filled for the members the message carries an advert for (only
 * client_id set for the others; an advert for a non-member is
 * FEDREC_ERR_FORMAT); their seed_commit is zero (the relay carries none:
 * the client derives it from the contribution). The caller frees all three
 * with free(). */
FEDREC_NODISCARD fedrec_err fedreci_wire_get_seed_relay(const fedreci_wire_env *e,
                                                        const uint64_t *ids, size_t m,
                                                        uint8_t **contribs, uint8_t **missing,
                                                        fedreci_secagg_advert **adverts);

/* Consistency / ConsistencyRelay -> a malloc'd array of the tags they
 * carry, with their ids: the packed slots (16 bytes each, a multiple checked
 * by decode) must be exactly n_peers (FEDREC_ERR_FORMAT otherwise), slot i
 * being peers[i]'s: in a Consistency the tag from self to peers[i], in a
 * relay the tag from peers[i] to self; all-zero slots are left out. Free
 * *out with free(). */
FEDREC_NODISCARD fedrec_err fedreci_wire_get_tags(const fedreci_wire_env *e, uint64_t self,
                                                  const uint64_t *peers, size_t n_peers,
                                                  fedreci_secagg_tag **out, size_t *n);

/* Consistency -> its endorsement signature (*sig: 64 bytes, checked by
 * decode) and the ids it asks signatures for (*want, strictly ascending,
 * checked by decode; *n_want may be 0). Pointers into e. */
FEDREC_NODISCARD fedrec_err fedreci_wire_get_endorse(const fedreci_wire_env *e, const uint8_t **sig,
                                                     const uint64_t **want, size_t *n_want);

/* ConsistencyRelay -> a malloc'd array of at most max_n relayed signatures
 * (64 bytes each, checked by decode). Free *out with free(). */
FEDREC_NODISCARD fedrec_err fedreci_wire_get_endorsements(const fedreci_wire_env *e, size_t max_n,
                                                          fedreci_secagg_endorsement **out,
                                                          size_t *n);

/* Complaints, or ComplaintRelay.against -> a malloc'd array of at most max_n
 * complaints (bundle 32 and sig 64 bytes, checked by decode). Free *out with
 * free(). */
FEDREC_NODISCARD fedrec_err fedreci_wire_get_complaints(const fedreci_wire_env *e, size_t max_n,
                                                        fedreci_secagg_complaint **out, size_t *n);

/* Openings, or ComplaintRelay.openings -> a malloc'd array of at most max_n
 * openings (plain 128 bytes, checked by decode). They hold secret shares:
 * the caller wipes (sodium_memzero) and frees *out. */
FEDREC_NODISCARD fedrec_err fedreci_wire_get_openings(const fedreci_wire_env *e, size_t max_n,
                                                      fedreci_secagg_opening **out, size_t *n);

/* ComplaintRelay: *final, and the excluded ids (strictly ascending, checked
 * by decode; pointing into the envelope). */
FEDREC_NODISCARD fedrec_err fedreci_wire_get_complaint_relay(const fedreci_wire_env *e, int *final,
                                                             const uint64_t **excluded,
                                                             size_t *n_excluded);

/* ShareKeys / ShareRelay -> a malloc'd array of n ciphertexts whose bytes
 * point into the envelope; at most max_n. Free *out with free(). */
FEDREC_NODISCARD fedrec_err fedreci_wire_get_ciphertexts(const fedreci_wire_env *e, size_t max_n,
                                                         fedreci_secagg_ciphertext **out,
                                                         size_t *n);

/* MaskedInput: exactly d words (FEDREC_ERR_FORMAT otherwise); *y points into
 * the envelope. */
FEDREC_NODISCARD fedrec_err fedreci_wire_get_masked(const fedreci_wire_env *e, uint32_t d,
                                                    const uint32_t **y);

/* UnmaskRequest: sorted, disjoint id lists pointing into the envelope. */
FEDREC_NODISCARD fedrec_err fedreci_wire_get_unmask_request(const fedreci_wire_env *e,
                                                            const uint64_t **survivors,
                                                            size_t *n_survivors,
                                                            const uint64_t **dropped,
                                                            size_t *n_dropped);

/* Unmask -> a malloc'd array of at most max_n reveals. Free *out with free(). */
FEDREC_NODISCARD fedrec_err fedreci_wire_get_reveals(const fedreci_wire_env *e, size_t max_n,
                                                     fedreci_secagg_reveal **out, size_t *n);

/* ---- authentication --------------------------------------------------------- */

/* Signs an encoded client request in place: appends the Envelope.sig field
 * (FEDRECI_WIRE_SIG_SUFFIX bytes) holding
 *   Ed25519(identity_sk, "fedrec.v1.envelope" || protocol_version (4, LE) ||
 *           round_id (8) || stage (4) || client_id (8) || BLAKE2b-256(body))
 * where body is the message as encoded so far (it holds the same header).
 * h must be the header the message was encoded with. Call it once, last: a
 * message that already ends in a signature is refused (FEDREC_ERR_INVALID).
 * Cost: one BLAKE2b pass over the message and one Ed25519 signature.
 * Errors: FEDREC_ERR_INVALID, FEDREC_ERR_NOMEM (the message is unchanged). */
FEDREC_NODISCARD fedrec_err fedreci_wire_sign(nng_msg *m, const fedreci_wire_hdr *h,
                                              const uint8_t identity_sk[64]);

/* Verifies the signature of a decoded request against identity_pk. buf[len]
 * are the raw bytes e was decoded from (fedreci_wire_decode). Refused with
 * FEDREC_ERR_SIGNATURE, the message naming the client, round and stage: no
 * signature, a signature that is not the last field of the encoding, or one
 * that does not verify (another key, another round, stage or sender, or any
 * byte of the message changed). Reentrant; reads only. */
FEDREC_NODISCARD fedrec_err fedreci_wire_verify(const uint8_t *buf, size_t len,
                                                const fedreci_wire_env *e,
                                                const uint8_t identity_pk[32]);

/* MACs an encoded stage message that follows the member's advert in place
 * (seed reveal, share keys, complaints, openings, masked input, consistency,
 * unmask: only the coordinator checks them, and it holds the key; for the
 * masked input, the bulk message, a signature would
 * need a BLAKE2b pass over 4 d bytes on both sides, about 0.5 ms each at
 * d = 117,121; Poly1305 is several times faster): appends Envelope.mac =
 * nonce || tag of XChaCha20-Poly1305 (random 24-byte nonce, empty plaintext)
 * with the message so far (header included) as associated data, under key
 * (32 bytes, fedreci_secagg_client_mac_key). Errors: FEDREC_ERR_INVALID
 * (already authenticated), FEDREC_ERR_NOMEM (message unchanged). */
FEDREC_NODISCARD fedrec_err fedreci_wire_mac(nng_msg *m, const uint8_t key[32]);

/* Verifies the MAC of a decoded MACed request (fedreci_wire_mac) under key. buf[len] are the raw
 * bytes e was decoded from. FEDREC_ERR_SIGNATURE (naming the client, round
 * and stage): no MAC, a MAC that is not the last field, or one that does not
 * verify. Reentrant; reads only. */
FEDREC_NODISCARD fedrec_err fedreci_wire_verify_mac(const uint8_t *buf, size_t len,
                                                    const fedreci_wire_env *e,
                                                    const uint8_t key[32]);

/* ---- encode ----------------------------------------------------------------- */

/* Each encoder allocates a new nng message holding one envelope with header h
 * and the named body. */

/* fedreci_wire_enc_checkin with an attestation token (token_len bytes, at
 * most FEDRECI_WIRE_ATTEST_MAX; NULL and 0: none), stamped with
 * fedreci_wire_checkin_clock(). */
FEDREC_NODISCARD fedrec_err fedreci_wire_enc_checkin_attested(
    nng_msg **out, const fedreci_wire_hdr *h, const uint8_t identity_pk[32], uint64_t model_version,
    int opted_in, const uint8_t *token, size_t token_len);

/* A CheckIn without an attestation token, stamped with
 * fedreci_wire_checkin_clock(). */
FEDREC_NODISCARD fedrec_err fedreci_wire_enc_checkin(nng_msg **out, const fedreci_wire_hdr *h,
                                                     const uint8_t identity_pk[32],
                                                     uint64_t model_version, int opted_in);

/* A CheckIn with the given sent_unix_ms (tests: stale and future times). */
FEDREC_NODISCARD fedrec_err fedreci_wire_enc_checkin_at(nng_msg **out, const fedreci_wire_hdr *h,
                                                        const uint8_t identity_pk[32],
                                                        uint64_t model_version, int opted_in,
                                                        uint64_t sent_unix_ms);

/* The time a check-in made now carries: the real-time clock in ms since
 * 1970, but always above the last value this process returned (two
 * check-ins in one millisecond still differ, and a clock stepped back does
 * not repeat a value). Thread-safe (an atomic). */
uint64_t fedreci_wire_checkin_clock(void);

/* status: Fedrec__V1__CheckInReply__Status. round: SELECTED only (else NULL). */
FEDREC_NODISCARD fedrec_err fedreci_wire_enc_checkin_reply(nng_msg **out, const fedreci_wire_hdr *h,
                                                           int status,
                                                           const fedreci_wire_round *round,
                                                           uint64_t model_version,
                                                           uint32_t retry_after_ms);

FEDREC_NODISCARD fedrec_err fedreci_wire_enc_model_request(nng_msg **out, const fedreci_wire_hdr *h,
                                                           uint64_t have_version);

/* model NULL: "not modified" for version `version`. */
FEDREC_NODISCARD fedrec_err fedreci_wire_enc_model_reply(nng_msg **out, const fedreci_wire_hdr *h,
                                                         const fedreci_wire_model *model,
                                                         uint64_t version);

FEDREC_NODISCARD fedrec_err fedreci_wire_enc_advertise(nng_msg **out, const fedreci_wire_hdr *h,
                                                       const fedreci_secagg_advert *a);

/* Roster: member_ids[m] (sorted), the seed digest (32 bytes; NULL omits
 * it) and the adverts to include (pointers, na). */
FEDREC_NODISCARD fedrec_err fedreci_wire_enc_roster(nng_msg **out, const fedreci_wire_hdr *h,
                                                    const uint64_t *member_ids, size_t m,
                                                    const uint8_t *seed_digest,
                                                    const fedreci_secagg_advert *const *adverts,
                                                    size_t na);

/* Roster of seed step attempt `attempt` (enc_roster is attempt 0). */
FEDREC_NODISCARD fedrec_err fedreci_wire_enc_roster_attempt(
    nng_msg **out, const fedreci_wire_hdr *h, uint32_t attempt, const uint64_t *member_ids,
    size_t m, const uint8_t *seed_digest, const fedreci_secagg_advert *const *adverts, size_t na);

/* SeedReveal: the contribution (FEDRECI_SECAGG_CONTRIB_BYTES = 16). */
FEDREC_NODISCARD fedrec_err fedreci_wire_enc_seed_reveal(nng_msg **out, const fedreci_wire_hdr *h,
                                                         const uint8_t contribution[16]);

/* SeedReveal for seed step attempt `attempt` (enc_seed_reveal is attempt 0). */
FEDREC_NODISCARD fedrec_err fedreci_wire_enc_seed_reveal_attempt(nng_msg **out,
                                                                 const fedreci_wire_hdr *h,
                                                                 uint32_t attempt,
                                                                 const uint8_t contribution[16]);

/* SeedRelay: m contribution slots (secagg.h FEDRECI_SECAGG_SEED_SLOT_BYTES
 * each, roster order: 16 bytes of each are sent, or the 32-byte commitment
 * of a member flagged missing), the members that did not reveal (m flags or
 * NULL) and the adverts to include (pointers, na; sent without their
 * seed_commit). */
FEDREC_NODISCARD fedrec_err fedreci_wire_enc_seed_relay(nng_msg **out, const fedreci_wire_hdr *h,
                                                        const uint8_t *contribs, size_t m,
                                                        const uint8_t *missing,
                                                        const fedreci_secagg_advert *const *adverts,
                                                        size_t na);

/* Consistency (client -> server): the tags packed (protocol version 6):
 * 16 bytes per id of peers[n_peers] (the sender's neighbours named
 * survivors, strictly ascending), back to back, ids implicit: slot i holds
 * the tag of tags[] addressed to peers[i] (.to), all zero when there is
 * none; the endorsement signature sig (64 bytes, required); and, in a resend
 * after the relay, want (n_want strictly ascending ids whose signatures the
 * client asks for; 0 for none). */
FEDREC_NODISCARD fedrec_err fedreci_wire_enc_consistency(nng_msg **out, const fedreci_wire_hdr *h,
                                                         const uint64_t *peers, size_t n_peers,
                                                         const fedreci_secagg_tag *tags, size_t n,
                                                         const uint8_t sig[64],
                                                         const uint64_t *want, size_t n_want);

/* ConsistencyRelay: the tags addressed to the client packed as above, slot i
 * the tag from peers[i] (.from; the client's neighbours named survivors,
 * strictly ascending), all zero when it sent none; and the signatures it
 * asked for (n_sigs may be 0). */
FEDREC_NODISCARD fedrec_err
fedreci_wire_enc_consistency_relay(nng_msg **out, const fedreci_wire_hdr *h, const uint64_t *peers,
                                   size_t n_peers, const fedreci_secagg_tag *tags, size_t n,
                                   const fedreci_secagg_endorsement *sigs, size_t n_sigs);

FEDREC_NODISCARD fedrec_err fedreci_wire_enc_complaints(nng_msg **out, const fedreci_wire_hdr *h,
                                                        const fedreci_secagg_complaint *cpl,
                                                        size_t n);

FEDREC_NODISCARD fedrec_err fedreci_wire_enc_openings(nng_msg **out, const fedreci_wire_hdr *h,
                                                      const fedreci_secagg_opening *op, size_t n);

/* ComplaintRelay (h->stage: FEDRECI_WIRE_STAGE_COMPLAINT or _OPENING). */
FEDREC_NODISCARD fedrec_err fedreci_wire_enc_complaint_relay(
    nng_msg **out, const fedreci_wire_hdr *h, const fedreci_secagg_complaint *against,
    size_t n_against, int final, const uint64_t *excluded, size_t n_excluded,
    const fedreci_secagg_opening *op, size_t n_op);

/* relay = 0: ShareKeys (client -> server); relay = 1: ShareRelay. */
FEDREC_NODISCARD fedrec_err fedreci_wire_enc_ciphertexts(nng_msg **out, const fedreci_wire_hdr *h,
                                                         int relay,
                                                         const fedreci_secagg_ciphertext *cts,
                                                         size_t n);

FEDREC_NODISCARD fedrec_err fedreci_wire_enc_masked(nng_msg **out, const fedreci_wire_hdr *h,
                                                    const uint32_t *y, size_t d);

FEDREC_NODISCARD fedrec_err fedreci_wire_enc_unmask_request(nng_msg **out,
                                                            const fedreci_wire_hdr *h,
                                                            const uint64_t *survivors, size_t ns,
                                                            const uint64_t *dropped, size_t nd);

FEDREC_NODISCARD fedrec_err fedreci_wire_enc_unmask(nng_msg **out, const fedreci_wire_hdr *h,
                                                    const fedreci_secagg_reveal *r, size_t n);

FEDREC_NODISCARD fedrec_err fedreci_wire_enc_round_result(nng_msg **out, const fedreci_wire_hdr *h,
                                                          int completed, uint64_t model_version,
                                                          uint32_t survivors, const char *reason);

FEDREC_NODISCARD fedrec_err fedreci_wire_enc_error(nng_msg **out, const fedreci_wire_hdr *h,
                                                   fedrec_err code, const char *text);

FEDREC_NODISCARD fedrec_err fedreci_wire_enc_retry(nng_msg **out, const fedreci_wire_hdr *h,
                                                   uint32_t ms);

#endif /* FEDREC_PROTO_WIRE_H */
