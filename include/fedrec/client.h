/*
 * fedrec client API: what a store app links to personalize on the device and
 * to take part in federated training without the shopper's purchases ever
 * leaving the phone.
 *
 * A client is one shopper on one device. It keeps, in a local store encrypted
 * at rest (docs/client.md): the shopper's purchases, their factor vector x_u,
 * an Ed25519 identity key pair made at the first open, the participation
 * choice, the last downloaded model and the privacy ledger of every upload.
 *
 * The model is implicit-feedback matrix factorization (Hu, Koren & Volinsky,
 * ICDM 2008) trained federatedly (Ammad-ud-din et al. 2019): the coordinator
 * publishes item factors Y; a selected, opted-in client solves its own x_u,
 * computes the dense gradient of its loss term and uploads it masked with
 * SecAgg+ (Bonawitz et al. CCS 2017; Bell et al. CCS 2020), so the
 * coordinator only learns the cohort's sum. Recommendations are computed on
 * the device.
 *
 * Errors: every function that can fail returns a fedrec_err (FEDREC_OK = 0)
 * and sets a detailed, thread-local message (fedrec_errmsg()) naming the
 * input: the file, the item code, the argument. Out-parameters are written
 * only on success.
 *
 * ABI: within a major version the library only grows. The structs it
 * fills (fedrec_sync_result, fedrec_ledger_entry, fedrec_client_info) and
 * the options it reads (fedrec_client_options) start with `struct_size`,
 * which the caller sets to sizeof the struct it was compiled with (or lets
 * fedrec_client_options_init do it); new fields are only ever appended, the
 * library reads and writes only the first struct_size bytes, and an older
 * app therefore keeps working with a newer library. A struct_size below the
 * first version's size is FEDREC_ERR_INVALID. fedrec_recommendation is an
 * array element and is frozen: it never changes. For FFI users (JNI,
 * Kotlin/Native, Swift, Python ctypes) every size is also a function.
 *
 * Thread-safety: a fedrec_client handle is internally locked, so any function
 * below may be called from any thread, concurrently, on the same handle,
 * except fedrec_client_close and fedrec_client_forget, which the caller must
 * not run while another call on that handle is in progress (or after). Calls
 * are short, except fedrec_client_sync, which holds the lock only while it
 * reads or writes the store, so recommend and record stay responsive during
 * a round. Different handles are independent; one store directory can be
 * open in one handle at a time, across processes (FEDREC_ERR_BUSY otherwise).
 */
#ifndef FEDREC_CLIENT_H
#define FEDREC_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "fedrec/fedrec.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Size of a raw store key in bytes. */
#define FEDREC_STORE_KEY_BYTES 32
/* Longest item code in bytes, without the terminating NUL. */
#define FEDREC_ITEM_CODE_MAX 31
/* Longest ledger description ("what") in bytes, without the NUL. */
#define FEDREC_LEDGER_WHAT_MAX 63
/* Longest reason of a ledger refusal in bytes, without the NUL. */
#define FEDREC_LEDGER_REASON_MAX 191

/* The round floors' defaults (docs/client.md "Round floors"): what the
 * library applies when the app leaves a floor at 0. */
#define FEDREC_FLOOR_MIN_COHORT 10   /* clients invited to the round (n) */
#define FEDREC_FLOOR_MIN_NEIGHBORS 8 /* SecAgg+ neighbours holding this client's shares (k) */
#define FEDREC_FLOOR_MIN_THRESHOLD 6 /* Shamir threshold (t) */
#define FEDREC_FLOOR_MIN_THRESHOLD_FRACTION (2.0 / 3.0) /* t >= this x k */

/* An open client: opaque. */
typedef struct fedrec_client fedrec_client;

/* The same numbers for FFI users who cannot read the macros. Can't fail. */
FEDREC_API size_t fedrec_client_store_key_bytes(void); /* FEDREC_STORE_KEY_BYTES */
FEDREC_API size_t fedrec_client_item_code_max(void);   /* FEDREC_ITEM_CODE_MAX */
FEDREC_API size_t fedrec_client_ledger_what_max(void); /* FEDREC_LEDGER_WHAT_MAX */
FEDREC_API size_t fedrec_client_options_size(void);    /* sizeof(fedrec_client_options) */
FEDREC_API size_t fedrec_sync_result_size(void);       /* sizeof(fedrec_sync_result) */
FEDREC_API size_t fedrec_ledger_entry_size(void);      /* sizeof(fedrec_ledger_entry) */
FEDREC_API size_t fedrec_client_info_size(void);       /* sizeof(fedrec_client_info) */
FEDREC_API size_t fedrec_recommendation_size(void);    /* sizeof(fedrec_recommendation) */

/* ---- open / close ---------------------------------------------------------- */

/* Opens the client whose store is the directory `store_path`, creating the
 * directory (mode 0700) and a new store when there is none: a new Ed25519
 * identity, opted in, no purchases, no model.
 *
 * key: FEDREC_STORE_KEY_BYTES random bytes the app keeps in the platform key
 * store (Android Keystore, iOS Keychain); it is copied into locked, wiped
 * memory, and the caller may wipe its copy after the call. The same key must
 * be given on every open of that store.
 * coordinator_url: where sync goes, e.g. "tls+tcp://shop.example:7443",
 * "tcp://...", "ipc://...", "inproc://..." (copied). May be NULL when the app
 * never syncs (sync then fails with FEDREC_ERR_INVALID).
 *
 * Opening an existing store reads and authenticates it and writes nothing
 * (no flash write, no fsync, no rename): a launch that only reads, or
 * recommends, costs no write. Updates append to the store's log; it is
 * compacted into a new snapshot only when that pays (docs/client.md).
 * Errors: FEDREC_ERR_INVALID (NULL or empty store_path, NULL key),
 * FEDREC_ERR_BADKEY (wrong key, or the store is protected by a passphrase),
 * FEDREC_ERR_CORRUPT (a store file is damaged, truncated, or belongs to
 * another store; the message names the file), FEDREC_ERR_LOST_EVENTS (the log lost
 * committed events, e.g. it was cut; the message says how many; see
 * fedrec_client_recover), FEDREC_ERR_BUSY (open in another handle or
 * process), FEDREC_ERR_IO, FEDREC_ERR_NOMEM. On any error the store's bytes
 * are left unchanged and *out is not written. A last record torn by a crash
 * during its write (its fedrec_client_record never returned) is not an
 * error: the store opens with every committed record.
 * Thread-safety: may be called from any thread. */
FEDREC_API FEDREC_NODISCARD fedrec_err
fedrec_client_open(fedrec_client **out, const char *store_path, const char *coordinator_url,
                   const uint8_t key[FEDREC_STORE_KEY_BYTES]);

/* Like fedrec_client_open, with a passphrase of passphrase_len bytes
 * (1..4096, any bytes) instead of a raw key. The store key is derived with
 * crypto_pwhash (Argon2id, libsodium's INTERACTIVE limits: 64 MiB and about
 * 0.1-0.5 s on a phone) over a random salt stored, with the limits, in the
 * store's plaintext header. A store made with a passphrase must be opened with
 * it, a store made with a raw key with the key (FEDREC_ERR_BADKEY otherwise).
 * Errors: as fedrec_client_open, plus FEDREC_ERR_CRYPTO when the key
 * derivation cannot get its memory. */
FEDREC_API FEDREC_NODISCARD fedrec_err fedrec_client_open_passphrase(fedrec_client **out,
                                                                     const char *store_path,
                                                                     const char *coordinator_url,
                                                                     const char *passphrase,
                                                                     size_t passphrase_len);

/* Everything fedrec_client_open_with needs besides the store path, in one
 * struct that can grow (fields are only appended). Borrowed pointers: the
 * library copies what it keeps during the call. */
typedef struct fedrec_client_options {
    uint32_t struct_size; /* sizeof(fedrec_client_options), set by _init */
    /* Exactly one of key and passphrase: */
    const uint8_t *key;     /* FEDREC_STORE_KEY_BYTES bytes, as fedrec_client_open */
    const char *passphrase; /* passphrase_len bytes, as fedrec_client_open_passphrase */
    size_t passphrase_len;
    const char *coordinator_url; /* may be NULL (no sync), as fedrec_client_open */
    const char *tls_ca_file;     /* NULL, or as fedrec_client_set_tls */
    const char *tls_server_name; /* NULL, or as fedrec_client_set_tls */
    /* Round floors, set by the app (never by the coordinator): a round whose
     * announced cohort n, neighbours k or threshold t is below them is
     * refused before anything secret is sent, and the refusal is recorded
     * in the ledger (docs/client.md "Round floors"). 0 = the library's
     * default (FEDREC_FLOOR_*). A floor can be lowered only by setting it,
     * e.g. min_cohort = 3 for a test deployment. */
    uint32_t min_cohort;           /* n >= min_cohort; >= 2 when set */
    uint32_t min_neighbors;        /* k >= min_neighbors */
    uint32_t min_threshold;        /* t >= min_threshold */
    double min_threshold_fraction; /* t >= fraction x k; 0, or in [0.5, 1] */
    /* 1: open only a store that exists: with no store at store_path (no
     * directory, or no store file in it) the open fails with
     * FEDREC_ERR_NOT_FOUND and creates nothing, neither directory nor file;
     * for a screen or command that only reads, or that must not make a new
     * identity behind the shopper's back. 0 (the default): create a new
     * store when there is none, as fedrec_client_open does. */
    uint32_t must_exist;
    /* The most graph seed step retries a round may announce
     * (docs/protocol.md "Honest dropouts at the seed step"): each retry
     * lets the coordinator choose among one more seed for the neighbour
     * graph, so a round announcing more is refused before anything is sent
     * (refusal below_floors, in the ledger), and a retry beyond the round's
     * own number is refused mid-round (seed_retry_limit). 0 = the library's
     * default, FEDREC_MAX_SEED_RETRIES; at most 8. */
    uint32_t max_seed_retries;
} fedrec_client_options;

#define FEDREC_MAX_SEED_RETRIES 3 /* default bound on a round's seed step retries */

/* Sets o->struct_size to sizeof(fedrec_client_options) and every other
 * field to its default (NULL / 0: the floors then take the library's
 * defaults). Can't fail; NULL is a no-op. */
FEDREC_API void fedrec_client_options_init(fedrec_client_options *o);

/* Opens the client of `store_path` with the options in *opts: the key or
 * passphrase, the coordinator URL and, when tls_ca_file is set, the TLS
 * settings (fedrec_client_set_tls), and the round floors. Same behaviour
 * and errors as fedrec_client_open / fedrec_client_open_passphrase and
 * fedrec_client_set_tls, plus FEDREC_ERR_INVALID (opts NULL, struct_size too
 * small, both or neither of key and passphrase, min_cohort 1,
 * min_threshold_fraction outside 0 or [0.5, 1], must_exist other than 0 or
 * 1, max_seed_retries above 8), FEDREC_ERR_NOT_FOUND (must_exist and no store) and
 * FEDREC_ERR_UNSUPPORTED (struct_size larger than this library's struct with a non-zero field
 * there: an option from a newer fedrec). Nothing is opened on error. */
FEDREC_API FEDREC_NODISCARD fedrec_err fedrec_client_open_with(fedrec_client **out,
                                                               const char *store_path,
                                                               const fedrec_client_options *opts);

/* Keeps what is left of a store whose log lost committed events (open
 * returned FEDREC_ERR_LOST_EVENTS): opens it accepting the loss, writes a new
 * snapshot of the remaining state and an empty log, and closes it, so the
 * next fedrec_client_open succeeds. *n_lost (optional) gets the number of
 * committed events that were missing (0 when nothing was: then nothing is
 * written). The missing events cannot be brought back by the library; an
 * app that can (e.g. from its backend) should do so before calling this.
 * Errors: FEDREC_ERR_NOT_FOUND (no store at store_path), and those of
 * fedrec_client_open except FEDREC_ERR_LOST_EVENTS. Thread-safety: any
 * thread; the store must not be open (FEDREC_ERR_BUSY otherwise). */
FEDREC_API FEDREC_NODISCARD fedrec_err fedrec_client_recover(
    const char *store_path, const uint8_t key[FEDREC_STORE_KEY_BYTES], uint64_t *n_lost);

/* fedrec_client_recover for a store protected by a passphrase. */
FEDREC_API FEDREC_NODISCARD fedrec_err fedrec_client_recover_passphrase(const char *store_path,
                                                                        const char *passphrase,
                                                                        size_t passphrase_len,
                                                                        uint64_t *n_lost);

/* TLS settings for a "tls+tcp://" coordinator URL. ca_file: a PEM file with
 * the certificate(s) of the authority that signed the coordinator's
 * certificate (for a self-signed coordinator, its certificate itself); the
 * coordinator's certificate is always verified, and without a CA file no
 * tls+tcp:// sync can succeed. server_name: the name the certificate must
 * carry (also sent as SNI), or NULL for none; when set, and the coordinator
 * sends the client to a SecAgg group's aggregator at a tls+tcp:// URL, the
 * aggregator's certificate must chain to ca_file and carry that URL's host
 * name (without it, only the chain is checked). Both strings are copied; the
 * file is read at each sync, so a renewed CA file is picked up.
 * Errors: FEDREC_ERR_INVALID (NULL client or ca_file), FEDREC_ERR_IO
 * (ca_file cannot be opened; the message names it), FEDREC_ERR_NOMEM.
 * Thread-safety: any thread, but not while a sync on `c` is running
 * (FEDREC_ERR_BUSY then). */
FEDREC_API FEDREC_NODISCARD fedrec_err fedrec_client_set_tls(fedrec_client *c, const char *ca_file,
                                                             const char *server_name);

/* An attestation token for this client's identity key, sent with every
 * check-in from now on (docs/threat-model.md "Sybils"): a deployment whose
 * coordinator runs an attestation verifier refuses the check-in of an
 * identity key nothing vouches for. The app obtains the token from the
 * platform's attestation service (e.g. Play Integrity, App Attest) over the
 * identity public key (fedrec_client_get_info identity_pk); the library does
 * not interpret it. token: len bytes (1..2048, copied; kept in memory only,
 * never stored: tokens expire, the app supplies a fresh one at each launch),
 * or NULL and 0 to stop sending one. Errors: FEDREC_ERR_INVALID (NULL
 * client, len > 2048, NULL token with len > 0), FEDREC_ERR_NOMEM,
 * FEDREC_ERR_BUSY (a sync is running). Thread-safety: any thread, not while
 * a sync on c is running. */
FEDREC_API FEDREC_NODISCARD fedrec_err fedrec_client_set_attestation(fedrec_client *c,
                                                                     const uint8_t *token,
                                                                     size_t len);

/* Closes the client: wipes the keys and the decrypted state from memory and
 * frees the handle. Everything recorded is already on disk; close writes
 * nothing. NULL is a no-op. Not concurrently with other calls on `c`. */
FEDREC_API void fedrec_client_close(fedrec_client *c);

/* ---- purchases ------------------------------------------------------------- */

/* Records that the shopper bought `quantity` (>= 1) units of `item_code`
 * (1..FEDREC_ITEM_CODE_MAX bytes of printable ASCII, no ',' or '"') at
 * `time_unix` (seconds since 1970-01-01 UTC). The event is durable when the
 * call returns FEDREC_OK: it is encrypted, appended to the store's log and
 * synced, then counted in the log's committed-event counter and synced
 * (docs/client.md), so it survives a crash or kill -9 right after. Repeated
 * purchases of one item add up (confidence 1 + alpha log(1 + q/eps)).
 * Errors: FEDREC_ERR_INVALID (code or quantity), FEDREC_ERR_IO (the event
 * is not acknowledged: it was not recorded, or, when the disk failed after
 * its bytes reached it, it may reappear at the next open, as with any
 * failed sync), FEDREC_ERR_NOMEM. Thread-safety: any thread. */
FEDREC_API FEDREC_NODISCARD fedrec_err fedrec_client_record(fedrec_client *c, const char *item_code,
                                                            int64_t time_unix, uint32_t quantity);

/* ---- recommendations --------------------------------------------------------- */

/* Frozen (an array element): never changes within a major version. */
typedef struct fedrec_recommendation {
    char item_code[FEDREC_ITEM_CODE_MAX + 1]; /* NUL-terminated */
    float score;                              /* predicted preference y_i^T x_u; higher is better */
} fedrec_recommendation;

/* The top `k` items of the downloaded model's catalog for this shopper, best
 * first (ties: catalog order), never an item the shopper has recorded a
 * purchase of. Computed on the device: x_u is solved from the purchases
 * against the model's item factors (an exact ALS step; purchases of codes the
 * model does not know are ignored), then every item is scored. out has room
 * for k entries; *n_out gets min(k, catalog items not bought). A shopper with
 * no known purchases gets items ranked by x_u = 0's solution (all scores 0,
 * catalog order): the app should fall back to its own popular items then.
 * Errors: FEDREC_ERR_EMPTY (no model downloaded yet: call sync first),
 * FEDREC_ERR_INVALID (k == 0, NULL), FEDREC_ERR_NUMERIC, FEDREC_ERR_NOMEM.
 * Cost: O(n_items * k_factors). Thread-safety: any thread. */
FEDREC_API FEDREC_NODISCARD fedrec_err fedrec_client_recommend(fedrec_client *c, uint32_t k,
                                                               fedrec_recommendation *out,
                                                               uint32_t *n_out);

/* ---- consent --------------------------------------------------------------- */

/* Sets whether the shopper takes part in training (1 = opted in, the default
 * for a new store; 0 = opted out). Durable when it returns. An opted-out
 * client never uploads anything: sync still downloads the model, so
 * recommendations keep working, but the client does not join rounds.
 * Errors: FEDREC_ERR_IO, FEDREC_ERR_NOMEM. Thread-safety: any thread; a sync
 * already past its participation check finishes its round. */
FEDREC_API FEDREC_NODISCARD fedrec_err fedrec_client_set_participation(fedrec_client *c,
                                                                       int opted_in);

/* *opted_in gets 1 or 0. Errors: FEDREC_ERR_INVALID (NULL). */
FEDREC_API FEDREC_NODISCARD fedrec_err fedrec_client_get_participation(fedrec_client *c,
                                                                       int *opted_in);

/* ---- sync ------------------------------------------------------------------ */

typedef struct fedrec_sync_result {
    uint32_t struct_size;     /* set by the caller: sizeof(fedrec_sync_result) */
    uint64_t model_version;   /* version held after the sync (0: none) */
    int model_updated;        /* 1 if a newer model was downloaded */
    int took_part;            /* 1 if this client uploaded a masked update */
    uint64_t round_id;        /* the round taken part in (0 if none) */
    fedrec_err round_outcome; /* FEDREC_OK if the round completed;
                                 FEDREC_ERR_OPTED_OUT, FEDREC_ERR_NOT_SELECTED,
                                 FEDREC_ERR_ABORTED, FEDREC_ERR_TIMEOUT,
                                 FEDREC_ERR_REFUSED (the client refused the round:
                                 the ledger's last entry says why) ... */
} fedrec_sync_result;

/* Contacts the coordinator (client/session: nng REQ, fedrec.v1 messages):
 * checks in, downloads the current model if it is newer than the stored one
 * (stored durably as soon as it arrives, before any round step), then, if the
 * shopper is opted in and the coordinator selected this client, runs the
 * client side of the round: the local training step on exactly the model
 * version the round names (core/mf: x_u solved, dense gradient of the
 * shopper's loss term) and the SecAgg+ stages (core/secagg), uploading only
 * protocol messages and the masked update. Each upload is appended to the
 * ledger as it goes on the wire. An opted-out client checks in as opted out
 * (so the coordinator never selects it), may download the model, and sends
 * no SecAgg message at all.
 *
 * Fail fast: before the round, sync makes one connection to the coordinator
 * (for tls+tcp:// including the handshake and certificate checks) and waits
 * for its first bytes, for at most min(deadline_ms, 10 s). A refused or
 * unreachable coordinator is FEDREC_ERR_TRANSPORT at once (a refused port
 * within milliseconds), not a timeout at the deadline; a TLS failure is
 * FEDREC_ERR_TRANSPORT whose message names the check that failed:
 * "TLS certificate verification failed" (the certificate does not chain to
 * the CA file, is expired or not yet valid, or no CA file was set), "TLS
 * hostname check failed" (it chains to the CA but does not name
 * server_name) or "TLS handshake failed" (no certificate problem). This
 * costs one extra connection per sync.
 *
 * deadline_ms (> 0) bounds the whole call in milliseconds: when it passes,
 * the round is abandoned (the coordinator counts the client as dropped),
 * FEDREC_ERR_TIMEOUT is returned, and whatever was already stored (a new
 * model, ledger entries of uploads made) stays stored.
 *
 * Not taking part (opted out, not selected, no round running) is not an
 * error: the call returns FEDREC_OK and says so in result->round_outcome
 * (FEDREC_ERR_OPTED_OUT, FEDREC_ERR_NOT_SELECTED). A round that aborts after
 * this client uploaded also returns FEDREC_OK with round_outcome
 * FEDREC_ERR_ABORTED. A round the client refuses (below the app's floors,
 * or a coordinator that breaks the protocol: a roster without this client
 * or with a duplicate, a replayed reply of another round, an unmask request
 * naming a client both survivor and dropped, ...) returns FEDREC_OK with
 * round_outcome FEDREC_ERR_REFUSED, and a refusal entry in the ledger
 * names the reason and the round's parameters.
 * Errors: FEDREC_ERR_INVALID (no coordinator URL, deadline 0),
 * FEDREC_ERR_TRANSPORT (cannot reach the coordinator), FEDREC_ERR_TIMEOUT,
 * FEDREC_ERR_PROTOCOL (a malformed or out-of-order reply, or a round for a
 * model other than the one received), FEDREC_ERR_BUSY (another sync on this
 * handle is running), FEDREC_ERR_IO (the store could not record the model or
 * a ledger entry), FEDREC_ERR_NOMEM. result may be NULL; it is written only
 * on FEDREC_OK. Thread-safety: any thread; one sync per handle at a time; the
 * handle's lock is not held while waiting on the network. result->struct_size
 * must be set (see ABI above; FEDREC_ERR_INVALID otherwise). */
FEDREC_API FEDREC_NODISCARD fedrec_err fedrec_client_sync(fedrec_client *c, uint32_t deadline_ms,
                                                          fedrec_sync_result *result);

/* ---- the privacy ledger ------------------------------------------------------ */

/* Why a client refused a round (fedrec_ledger_entry.refusal). Values are
 * permanent: new reasons are appended. fedrec_refusal_name() gives each its
 * stable name (the same the library logs). */
typedef enum fedrec_refusal {
    FEDREC_REFUSAL_NONE = 0,                   /* not a refusal (an upload) */
    FEDREC_REFUSAL_BELOW_FLOORS = 1,           /* below_floors: n, k or t below the app's floors */
    FEDREC_REFUSAL_ROSTER_INVALID = 2,         /* roster_invalid: unsorted, a duplicate id, too
                                                  small or too large */
    FEDREC_REFUSAL_RELAY_MISADDRESSED = 3,     /* relay_misaddressed: share bundles not from a
                                                  neighbour to this client, or two from one */
    FEDREC_REFUSAL_UNMASK_BOTH_SETS = 4,       /* unmask_both_sets: an unmask request naming a
                                                  client both survivor and dropped */
    FEDREC_REFUSAL_STALE_ROUND = 5,            /* stale_round: a reply of another round (replay) */
    FEDREC_REFUSAL_PARAMS_CHANGED = 6,         /* params_changed: the round's parameters or model
                                                  changed mid-round */
    FEDREC_REFUSAL_PROTOCOL = 7,               /* protocol_violation: any other reply that breaks
                                                  the protocol */
    FEDREC_REFUSAL_ROSTER_MISSING_SELF = 8,    /* roster_missing_self: a roster without this
                                                  client, or other keys for it */
    FEDREC_REFUSAL_ADVERT_ID_MISMATCH = 9,     /* advert_id_mismatch: a roster entry's identity key
                                                  is not its id's */
    FEDREC_REFUSAL_ADVERT_BAD_SIGNATURE = 10,  /* advert_bad_signature: a neighbour's advert does
                                                  not verify under its identity key */
    FEDREC_REFUSAL_BINDING_MISMATCH = 11,      /* binding_mismatch: a neighbour's advert binds
                                                  another model or other round parameters */
    FEDREC_REFUSAL_UNMASK_INVALID = 12,        /* unmask_invalid: an unmask request this client
                                                  must not answer (see docs/threat-model.md) */
    FEDREC_REFUSAL_UNMASK_SECOND_REQUEST = 13, /* unmask_second_request: a second, different
                                                  unmask request in one round */
    FEDREC_REFUSAL_SEED_MISMATCH = 14,         /* seed_mismatch: the graph-seed contributions do
                                                  not open the roster's digest or lack this
                                                  client's own */
    FEDREC_REFUSAL_MALFORMED_REPLY = 15,       /* malformed_reply: a reply that does not decode
                                                  or is not the one the step expects */
    FEDREC_REFUSAL_CONSISTENCY_FAILED = 16,    /* consistency_failed: fewer than t neighbours
                                                  endorsed this client's survivor set */
    FEDREC_REFUSAL_PARAMS_INVALID = 17,        /* params_invalid: round parameters that break
                                                  the SecAgg rules (the overflow budget
                                                  n ceil(clip scale) < 2^31, n max_weight
                                                  < 2^31, the caps on n and d) */
    FEDREC_REFUSAL_SEED_RETRY_LIMIT = 18,      /* seed_retry_limit: a graph seed step retry
                                                  beyond the round's announced number (each
                                                  would let the coordinator choose among more
                                                  seeds), or one that does not just leave
                                                  members out */
} fedrec_refusal;

/* The stable name of a refusal reason ("below_floors", "stale_round", ...),
 * for logs and a store app's privacy screen (which maps it to its own
 * words); "unknown" for other values. Static storage, never NULL. */
FEDREC_API const char *fedrec_refusal_name(uint32_t refusal);

/* What a ledger entry records (fedrec_ledger_entry.kind). */
#define FEDREC_LEDGER_UPLOAD 0  /* a message this client sent */
#define FEDREC_LEDGER_REFUSAL 1 /* a round this client refused: nothing more was sent */

/* One upload, or one refused round, as the shopper may inspect it. */
typedef struct fedrec_ledger_entry {
    uint32_t struct_size; /* set by the caller: sizeof(fedrec_ledger_entry) */
    int64_t time_unix_ms; /* when it was sent (or refused), ms since 1970 UTC */
    uint64_t round_id;
    uint32_t stage;      /* 0 advertise keys, 1 share keys, 2 masked input, 3 unmask; for a
                            refusal the stage whose message was withheld */
    uint64_t bytes_sent; /* bytes of the whole message handed to the transport (0: refusal) */
    uint32_t clipped;    /* update entries clipped to the round's bound (stage 2) */
    char what[FEDREC_LEDGER_WHAT_MAX + 1]; /* "key advertisement", "encrypted key
                                              shares", "masked update", "unmask shares";
                                              for a refusal what was withheld */
    /* Appended after the first layout (written only when struct_size covers them): */
    uint32_t kind;      /* FEDREC_LEDGER_UPLOAD or FEDREC_LEDGER_REFUSAL */
    uint32_t refusal;   /* a fedrec_refusal (FEDREC_REFUSAL_NONE for uploads) */
    uint32_t cohort;    /* the round's n, k and t as the coordinator announced them */
    uint32_t neighbors; /* (0 in entries recorded before refusals existed) */
    uint32_t threshold;
    char reason[FEDREC_LEDGER_REASON_MAX + 1]; /* a refusal's reason in words, naming
                                                  the values at fault; "" for uploads */
} fedrec_ledger_entry;

/* *n gets the number of ledger entries (every upload since the store was
 * made, oldest first). Errors: FEDREC_ERR_INVALID (NULL). Any thread. */
FEDREC_API FEDREC_NODISCARD fedrec_err fedrec_client_ledger_count(fedrec_client *c, size_t *n);

/* Copies entry `index` (0 = oldest) to *entry (entry->struct_size set by the
 * caller). Errors: FEDREC_ERR_INVALID (NULL, struct_size too small),
 * FEDREC_ERR_RANGE (index >= count). Any thread. */
FEDREC_API FEDREC_NODISCARD fedrec_err fedrec_client_ledger_get(fedrec_client *c, size_t index,
                                                                fedrec_ledger_entry *entry);

/* ---- differential privacy in the ledger ------------------------------------------ */

/* One differentially private round this client was invited to, as the
 * shopper may inspect it (docs/privacy.md). Every epsilon here is computed
 * on this device from the round's parameters, which the client checked
 * before taking part (it refuses noise too small for the epsilon the
 * coordinator claims, and records the refusal). */
#define FEDREC_PRIVACY_REASON_MAX 191
typedef struct fedrec_privacy_entry {
    uint32_t struct_size; /* set by the caller: sizeof(fedrec_privacy_entry) */
    int64_t time_unix_ms;
    uint64_t round_id;
    int refused;               /* 1: refused the parameters and sent nothing */
    double epsilon_round;      /* epsilon of this round alone at delta */
    double epsilon_cumulative; /* every round this client sent a noised input in, so far */
    double delta;              /* the delta of the guarantee (cumulative: the smallest seen) */
    double noise_variance;     /* Skellam variance this client added per coordinate */
    uint32_t min_survivors;    /* the noise suffices for this many survivors */
    double l2_bound;           /* L2 bound of one shopper's contribution (input units) */
    double scale;              /* quantization: integer units per input unit */
    double sensitivity_l2;     /* L2 sensitivity of the sum (integer units) */
    char reason[FEDREC_PRIVACY_REASON_MAX + 1]; /* refused: why; "" otherwise */
} fedrec_privacy_entry;

/* *n gets the number of differentially private rounds recorded (oldest
 * first). Errors: FEDREC_ERR_INVALID (NULL). Any thread. */
FEDREC_API FEDREC_NODISCARD fedrec_err fedrec_client_privacy_count(fedrec_client *c, size_t *n);

/* Copies entry `index` to *entry (entry->struct_size set by the caller).
 * Errors: FEDREC_ERR_INVALID (NULL, struct_size too small), FEDREC_ERR_RANGE
 * (index >= count). Any thread. */
FEDREC_API FEDREC_NODISCARD fedrec_err fedrec_client_privacy_get(fedrec_client *c, size_t index,
                                                                 fedrec_privacy_entry *entry);

/* ---- status ------------------------------------------------------------------ */

typedef struct fedrec_client_info {
    uint32_t struct_size;    /* set by the caller: sizeof(fedrec_client_info) */
    uint64_t client_id;      /* the id the coordinator knows this client by:
                                the first 8 bytes (little-endian) of
                                BLAKE2b-256 of the identity public key */
    uint8_t identity_pk[32]; /* Ed25519 public key */
    int opted_in;
    uint64_t purchases;     /* purchase events recorded */
    uint64_t model_version; /* 0: no model yet */
    uint32_t model_items;
    uint32_t model_factors;
    uint64_t ledger_entries;
} fedrec_client_info;

/* Fills *info (info->struct_size set by the caller). Errors:
 * FEDREC_ERR_INVALID (NULL, struct_size too small). Any thread. */
FEDREC_API FEDREC_NODISCARD fedrec_err fedrec_client_get_info(fedrec_client *c,
                                                              fedrec_client_info *info);

/* ---- forget ------------------------------------------------------------------ */

/* Erases everything this client holds: unlinks the store's log, snapshot and
 * header (purchases, x_u, identity key, participation, model, ledger), removes
 * the store directory if nothing else is in it, wipes the keys from memory and
 * frees the handle, also on error. No store file is left behind. The app
 * should also delete the store key from its key store: the files were
 * encrypted with it, so without it any copy (a backup, flash blocks not yet
 * reclaimed) is unreadable. Not concurrently with other calls on `c`.
 * Errors: FEDREC_ERR_INVALID (NULL), FEDREC_ERR_IO naming the file that
 * could not be removed. */
FEDREC_API FEDREC_NODISCARD fedrec_err fedrec_client_forget(fedrec_client *c);

#ifdef __cplusplus
}
#endif
#endif /* FEDREC_CLIENT_H */
