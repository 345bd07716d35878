/*
 * Internal entry points of the client handle, used by the round driver
 * (client/session hooks), the simulator, the examples and the tests. They take
 * the handle's lock themselves; none may be called while the caller holds it.
 */
#ifndef FEDREC_CLIENT_CLIENT_INTERNAL_H
#define FEDREC_CLIENT_CLIENT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "core/dp/round.h"
#include "fedrec/client.h"

/* The first published size of each growable public struct (client.h,
 * "ABI"): smaller struct_size values are refused. When a struct grows, its
 * constant here stays at the old size (offsetof the first new field). */
#define FEDRECI_SYNC_RESULT_V1_SIZE sizeof(fedrec_sync_result)
#define FEDRECI_LEDGER_ENTRY_V1_SIZE offsetof(fedrec_ledger_entry, kind)
#define FEDRECI_CLIENT_INFO_V1_SIZE sizeof(fedrec_client_info)
#define FEDRECI_CLIENT_OPTIONS_V1_SIZE offsetof(fedrec_client_options, min_cohort)

/* Checks a caller's struct_size against the first published size; `fn`
 * and `what` name the call and the argument in the error.
 * Errors: FEDREC_ERR_INVALID. */
FEDREC_NODISCARD fedrec_err fedreci_check_struct_size(uint32_t struct_size, size_t v1_size,
                                                      const char *fn, const char *what);

/* Copies `full` (the library's whole struct, size bytes) into the caller's
 * struct up to its struct_size, keeping the caller's struct_size. */
void fedreci_copy_out(void *out, const void *full, size_t size);

/* Training parameters of the local step (Hu et al. 2008): confidence
 * c = 1 + alpha * log(1 + q / eps) over the summed quantity q of an item,
 * and the ALS regularization lambda. Defaults: alpha 1, eps 1, lambda 0.1. */
typedef struct fedreci_client_params {
    float alpha;
    float eps;
    float lambda;
} fedreci_client_params;

/* fedrec_client_forget, keeping the store directory (then empty) when
 * keep_dir: fedrec-client import takes away a store it made in a directory
 * that was there before, and leaves that directory. Frees c, also on error. */
FEDREC_NODISCARD fedrec_err fedreci_client_erase(fedrec_client *c, int keep_dir);

/* Replaces the parameters. Errors: FEDREC_ERR_INVALID (alpha < 0, eps <= 0,
 * lambda < 0, or not finite). */
FEDREC_NODISCARD fedrec_err fedreci_client_set_params(fedrec_client *c,
                                                      const fedreci_client_params *p);

/* Stores a model (durably, in a new snapshot) if `version` is newer than the
 * stored one; *stored (optional) gets 1 if it was stored. y is n_items x k
 * row-major float32; gram (k x k, full) may be NULL; codes[i] (1..31 bytes)
 * names row i and codes are distinct. This is the "model received" hook of
 * the round driver, and how tests and examples place a model in the store.
 * Errors: FEDREC_ERR_INVALID (shapes, codes, duplicates), FEDREC_ERR_IO,
 * FEDREC_ERR_NOMEM. */
FEDREC_NODISCARD fedrec_err fedreci_client_put_model(fedrec_client *c, uint64_t version,
                                                     uint32_t n_items, uint32_t k, const float *y,
                                                     const float *gram, const char *const *codes,
                                                     int *stored);

/* fedreci_client_put_model with the rows of retired products (n_retired
 * rows, strictly ascending, each < n_items; the coordinator sends them with
 * the model): recommendations never include them. put_model is this with
 * none. Errors: as put_model, FEDREC_ERR_INVALID for bad retired rows. */
FEDREC_NODISCARD fedrec_err fedreci_client_put_model_retired(fedrec_client *c, uint64_t version,
                                                             uint32_t n_items, uint32_t k,
                                                             const float *y, const float *gram,
                                                             const char *const *codes,
                                                             const uint32_t *retired,
                                                             uint32_t n_retired, int *stored);

/* The local training step for a round ("compute update" hook): solves x_u on
 * the stored model with the shopper's purchases, stores x_u durably, and
 * writes the dense gradient G_u (n_items x k, row-major) to update, which has
 * room for `len` floats (len must equal n_items * k of the stored model).
 * *weight gets 1 (one shopper). *loss (optional) gets the loss term.
 * Errors: FEDREC_ERR_EMPTY (no model), FEDREC_ERR_INVALID (len mismatch),
 * FEDREC_ERR_NUMERIC, FEDREC_ERR_IO, FEDREC_ERR_NOMEM. */
FEDREC_NODISCARD fedrec_err fedreci_client_local_update(fedrec_client *c, float *update, size_t len,
                                                        uint32_t *weight, double *loss);

/* fedreci_client_local_update for the ALS server step: the same gradient
 * into update[0 .. len) (len = n_items * k of the stored model), then the
 * shopper's x_u x_u^T block into update[len .. len + k (k + 1) / 2)
 * (core/mf/mf.h fedreci_mf_xx_block with bound x_bound and weight
 * xx_weight, both finite and > 0), so update has room for len + k (k + 1) / 2
 * floats. Errors: as fedreci_client_local_update; FEDREC_ERR_INVALID for a
 * bad bound or weight (nothing is stored then). */
FEDREC_NODISCARD fedrec_err fedreci_client_local_update_xx(fedrec_client *c, float *update,
                                                           size_t len, double x_bound,
                                                           double xx_weight, uint32_t *weight,
                                                           double *loss);

/* Appends one upload to the ledger, durably ("uploaded" hook). time_ms 0
 * means now. what is truncated to FEDREC_LEDGER_WHAT_MAX bytes. */
FEDREC_NODISCARD fedrec_err fedreci_client_ledger_add(fedrec_client *c, int64_t time_ms,
                                                      uint64_t round, uint32_t stage,
                                                      uint64_t bytes_sent, const char *what,
                                                      uint32_t clipped);

/* The DP-ALS contribution of this shopper for a differentially private
 * round (core/dp/dpals.h fedreci_dpals_client with the round's R, g and
 * lambda, on the stored model and purchases) into v (len =
 * fedreci_dpals_dim floats). Errors: FEDREC_ERR_EMPTY (no model),
 * FEDREC_ERR_INVALID (len), those of the solve. Takes the handle's lock. */
FEDREC_NODISCARD fedrec_err fedreci_client_dp_contribution(fedrec_client *c,
                                                           const fedreci_dp_round_params *dp,
                                                           float *v, size_t len);

/* Records a differentially private round in the privacy ledger: spent
 * (refused 0: its noised input went out; ev the release, eps its epsilon)
 * or refused (reason). The cumulative epsilon is composed here from every
 * spent round recorded (Renyi DP, core/dp/accountant.h) at the smallest
 * delta seen. Errors: those of the store. Takes the handle's lock. */
FEDREC_NODISCARD fedrec_err fedreci_client_dp_record(fedrec_client *c, uint64_t round,
                                                     const fedreci_dp_round_params *dp,
                                                     const fedreci_dp_event *ev, double eps,
                                                     int refused, const char *reason);

/* The stored model's version and the BLAKE2b-256 of its item-factor bytes
 * (n_items x k float32, what the coordinator's ModelReply.checksum covers),
 * which the session binds into its signed advert. Errors: FEDREC_ERR_EMPTY
 * (no model stored). Takes the handle's lock. */
FEDREC_NODISCARD fedrec_err fedreci_client_model_checksum(fedrec_client *c, uint64_t *version,
                                                          uint8_t checksum[32]);

/* Appends one refused round to the ledger, durably: the round, the SecAgg
 * stage whose message was withheld (0..3), what was withheld, the reason
 * (a fedrec_refusal and its text, truncated to FEDREC_LEDGER_REASON_MAX
 * bytes) and the round's n, k, t as announced (0 when unknown).
 * Errors: FEDREC_ERR_INVALID, FEDREC_ERR_IO, FEDREC_ERR_NOMEM. */
FEDREC_NODISCARD fedrec_err fedreci_client_ledger_refusal(fedrec_client *c, uint64_t round,
                                                          uint32_t stage, const char *what,
                                                          uint32_t refusal, const char *reason,
                                                          uint32_t n, uint32_t k, uint32_t t);

/* The fedrec_refusal code of a refusal name (FEDRECI_REFUSE_*);
 * FEDREC_REFUSAL_PROTOCOL for a name this table does not know (NULL
 * included). This function can't fail. */
uint32_t fedreci_refusal_code(const char *name);

/* The round floors the app set at open (zeros replaced by the library's
 * defaults, FEDREC_FLOOR_*): n >= *min_cohort, k >= *min_neighbors,
 * t >= *min_threshold and t >= *min_fraction x k. */
/* The app's bound on a round's graph seed step retries
 * (fedrec_client_options.max_seed_retries, or FEDREC_MAX_SEED_RETRIES). */
uint32_t fedreci_client_seed_retry_bound(const fedrec_client *c);

void fedreci_client_floors(const fedrec_client *c, uint32_t *min_cohort, uint32_t *min_neighbors,
                           uint32_t *min_threshold, double *min_fraction);

/* The identity secret key (64 bytes, Ed25519, libsodium layout) copied into
 * sk, for the SecAgg client. The caller wipes its copy. */
FEDREC_NODISCARD fedrec_err fedreci_client_identity_sk(fedrec_client *c, uint8_t sk[64]);

/* Marks a sync as running on c: FEDREC_ERR_BUSY when one already is. Every
 * successful begin is paired with an end. */
FEDREC_NODISCARD fedrec_err fedreci_client_sync_begin(fedrec_client *c);
void fedreci_client_sync_end(fedrec_client *c);

/* The coordinator URL given at open (NULL if none). Valid until close. */
const char *fedreci_client_url(const fedrec_client *c);

/* The TLS settings of fedrec_client_set_tls (NULL when not set). Valid until
 * the next set_tls or close; read only while the handle is marked syncing. */
void fedreci_client_tls(const fedrec_client *c, const char **ca_file, const char **server_name);

/* The attestation token of fedrec_client_set_attestation (NULL, 0 when
 * none). Valid until the next set_attestation or close; read only while the
 * handle is marked syncing. */
void fedreci_client_attestation(const fedrec_client *c, const uint8_t **token, size_t *len);

/* client_id from an Ed25519 public key: the first 8 bytes, little-endian, of
 * BLAKE2b-256(pk). */
uint64_t fedreci_client_id_from_pk(const uint8_t pk[32]);

#endif /* FEDREC_CLIENT_CLIENT_INTERNAL_H */
