/*
 * coordinator/link: the checked encoders and decoders of the master-
 * aggregator link of SecAgg groups (issue 20; schema proto/groups.proto,
 * flow in docs/protocol.md "Master and aggregators").
 *
 * Requests (aggregator -> master) are AggSigned: an encoded AggRequest and
 * the aggregator's Ed25519 signature over "fedrec.v1.agg" || request bytes
 * (crypto_sign_detached, libsodium). fedreci_link_dec_request verifies the
 * signature against the key the request names; whether that key is allowed
 * (the master's aggregator key list) and whether seq is fresh is the
 * master's check. Replies (master -> aggregator) are AggSignedReply: an
 * encoded AggReply and the master's Ed25519 signature over
 * "fedrec.v2.agg-reply" || agg_pk || seq (8 bytes, little-endian) || reply
 * bytes, where agg_pk and seq are those of the request answered
 * (fedreci_link_seal_reply). fedreci_link_dec_reply verifies it against the
 * master's key the aggregator was configured with and the request it sent:
 * a reply made without the master's key, meant for another aggregator, or
 * answering an earlier request (a replay: an aggregator's sequence numbers
 * never repeat) is FEDREC_ERR_SIGNATURE, before the reply is parsed.
 *
 * Decoding refuses, with FEDREC_ERR_FORMAT and a message naming the field:
 * unparseable bytes, a missing body, keys that are not 32 bytes or
 * signatures that are not 64, a protocol_version other than
 * FEDRECI_LINK_VERSION (FEDREC_ERR_UNSUPPORTED), group
 * parameters that break the SecAgg rules (secagg.h), member ids not
 * strictly ascending or not n of them, member keys that are not n x 32
 * bytes, stage lists that are not 4 entries, a sum that is not 4 d bytes,
 * a model whose factors are not n_items x k x 4 bytes, codes that are not
 * n_items, retired rows not strictly ascending below n_items, seed
 * withholders not strictly ascending or named by a completed group. A request
 * whose signature does not verify is FEDREC_ERR_SIGNATURE. Messages larger
 * than the caller's cap are FEDREC_ERR_TOO_BIG before parsing.
 *
 * Ownership: decoded structures point into the unpacked message; free them
 * with the matching _free. Thread-safety: no shared state.
 */
#ifndef FEDREC_COORDINATOR_LINK_H
#define FEDREC_COORDINATOR_LINK_H

#include <stddef.h>
#include <stdint.h>

#include <nng/nng.h>

#include "core/secagg/secagg.h"
#include "fedrec/fedrec.h"
#include "groups.pb-c.h"

/* 2: replies signed by the master (1: unsigned replies) */
#define FEDRECI_LINK_VERSION 2u

/* A group as the master assigns it (encode: borrowed pointers; decode:
 * pointers into the message). */
typedef struct fedreci_link_assign {
    uint64_t round_id;
    uint32_t group, n_groups;
    fedreci_secagg_params p; /* p.round_id = round_id, p.n = members */
    uint64_t model_version;
    const uint64_t *ids; /* p.n, strictly ascending */
    const uint8_t *pks;  /* p.n x 32 */
    uint32_t stage_ms[4];
    /* the model, when the aggregator does not hold model_version */
    int has_model;
    uint32_t n_items, k;
    const uint8_t *factors;   /* n_items x k float32 little-endian */
    const char *const *codes; /* n_codes (0 or n_items) */
    size_t n_codes;
    const uint32_t *retired;
    size_t n_retired;
} fedreci_link_assign;

/* A group's outcome as the aggregator reports it. */
typedef struct fedreci_link_result {
    uint64_t round_id;
    uint32_t group;
    int completed;
    const char *reason;
    uint32_t survivors, advertised, shared, unmasked;
    uint32_t dropped[4];
    uint32_t stage_ms[4];
    uint64_t bytes_in, bytes_out;
    const uint32_t *sum; /* d words (completed only; decode: little-endian bytes
                            copied into sum_words) */
    uint32_t d;
    /* A failed group names who withheld the step that aborted it, in the
     * list of that step (at most one list non-empty; each strictly
     * ascending; NULL / 0 otherwise; decode: points into the message),
     * indexed by FEDRECI_LINK_WITHHELD_*: the seed step (members that did
     * not reveal their graph seed contribution), the consistency step
     * (survivors that sent no endorsement of the survivor set), the unmask
     * stage (survivors that endorsed but sent no reveals). */
    const uint64_t *withheld[3];
    size_t n_withheld[3];
} fedreci_link_result;

enum {
    FEDRECI_LINK_WITHHELD_SEED = 0,
    FEDRECI_LINK_WITHHELD_CONSISTENCY = 1,
    FEDRECI_LINK_WITHHELD_UNMASK = 2
};

/* A decoded, signature-checked request. */
typedef struct fedreci_link_req {
    Fedrec__Groups__V1__AggSigned *signed_msg;
    Fedrec__Groups__V1__AggRequest *req;
    uint8_t agg_pk[32];
    uint64_t seq;
    int is_poll; /* else a result */
    /* poll */
    const char *url;
    uint8_t coord_pk[32];
    uint64_t model_version;
    uint32_t max_group;
    /* result (sum points to sum_words, malloc'd) */
    fedreci_link_result result;
    uint32_t *sum_words;
} fedreci_link_req;

/* Longest aggregator URL (the client gets it in CheckInReply). */
#define FEDRECI_LINK_MAX_URL 255u

/* Encodes and signs a Poll / a GroupResult with the aggregator's identity
 * key (sk: 64 bytes, libsodium layout). Errors: FEDREC_ERR_INVALID (a URL
 * longer than FEDRECI_LINK_MAX_URL), FEDREC_ERR_NOMEM. */
FEDREC_NODISCARD fedrec_err fedreci_link_enc_poll(nng_msg **out, const uint8_t sk[64], uint64_t seq,
                                                  const char *url, const uint8_t coord_pk[32],
                                                  uint64_t model_version, uint32_t max_group);
FEDREC_NODISCARD fedrec_err fedreci_link_enc_result(nng_msg **out, const uint8_t sk[64],
                                                    uint64_t seq, const fedreci_link_result *r);

/* Decodes a request of len bytes (at most cap) and verifies its signature
 * with the key it names. max_d bounds a result's sum (the master's d).
 * Errors: see the top of this file. */
FEDREC_NODISCARD fedrec_err fedreci_link_dec_request(const uint8_t *buf, size_t len, size_t cap,
                                                     uint32_t d, fedreci_link_req *out);
void fedreci_link_req_free(fedreci_link_req *r);

/* Replies: each encoder makes an unsigned AggReply; the master seals it
 * with fedreci_link_seal_reply before sending. */
FEDREC_NODISCARD fedrec_err fedreci_link_enc_idle(nng_msg **out, uint32_t retry_after_ms);
FEDREC_NODISCARD fedrec_err fedreci_link_enc_assign(nng_msg **out, const fedreci_link_assign *a);
FEDREC_NODISCARD fedrec_err fedreci_link_enc_verdict(nng_msg **out, uint64_t round_id,
                                                     int completed, int counted,
                                                     uint64_t model_version, const char *reason);
FEDREC_NODISCARD fedrec_err fedreci_link_enc_error(nng_msg **out, fedrec_err code,
                                                   const char *text);

/* Replaces *m (an encoded AggReply, freed) with the AggSignedReply that
 * carries it, signed with the master's identity key master_sk (64 bytes)
 * for the request of aggregator agg_pk (32 bytes) with sequence number seq.
 * On error *m is freed and NULL. Errors: FEDREC_ERR_NOMEM. */
FEDREC_NODISCARD fedrec_err fedreci_link_seal_reply(nng_msg **m, const uint8_t master_sk[64],
                                                    const uint8_t agg_pk[32], uint64_t seq);

/* A decoded reply; for an Assign, *assign is filled (pointers into reply). */
typedef struct fedreci_link_reply {
    Fedrec__Groups__V1__AggSignedReply *signed_msg;
    Fedrec__Groups__V1__AggReply *msg;
    fedreci_link_assign assign;
} fedreci_link_reply;

/* Decodes an AggSignedReply (at most cap bytes), verifies its signature
 * with the master's key master_pk for the request of agg_pk with sequence
 * number seq (FEDREC_ERR_SIGNATURE otherwise, naming the three possible
 * causes), then parses the AggReply and checks an Assign (see the top of
 * this file). */
FEDREC_NODISCARD fedrec_err fedreci_link_dec_reply(const uint8_t *buf, size_t len, size_t cap,
                                                   const uint8_t master_pk[32],
                                                   const uint8_t agg_pk[32], uint64_t seq,
                                                   fedreci_link_reply *out);
void fedreci_link_reply_free(fedreci_link_reply *r);

#endif
