/*
 * client/store: the shopper's local store, encrypted at rest and crash-safe.
 *
 * A store is a directory holding three files (docs/client.md has the byte
 * layout):
 *   meta      plaintext, written once at creation: format version, how the key
 *             is obtained (raw 32 bytes, or a passphrase stretched with
 *             crypto_pwhash/Argon2id and the salt and limits stored here), a
 *             random 16-byte store id, a keyed BLAKE2b key check and an
 *             unkeyed BLAKE2b checksum of the whole header.
 *   snapshot  the full state at generation g: one
 *             crypto_secretstream_xchacha20poly1305 stream whose last message
 *             carries TAG_FINAL (so a truncated snapshot is detected). Written
 *             to snapshot.tmp, fsync'd, renamed over snapshot, then the
 *             directory is fsync'd.
 *   log       the events since snapshot g, append-only: a header naming the
 *             store id and g, the committed-event counter (two slots, each a
 *             u64 count and a keyed BLAKE2b-128), then one length-prefixed
 *             secretstream message per event. An event is written with one
 *             write() after the last complete frame and synced, then counted
 *             (its counter slot rewritten and synced) before the call that
 *             made it returns. Replaced (never removed) by a fresh one when
 *             the store compacts, the same way as the snapshot; every
 *             snapshot written once a log exists records that one must exist,
 *             so a deleted log is refused rather than silently losing the
 *             events since the snapshot.
 * The stream key is derived per store (BLAKE2b keyed with the master key over
 * a label and the store id), so a file from another store never decrypts, and
 * every message binds the file's header (magic, store id, generation) as
 * associated data.
 *
 * State: purchases (item code, unix time in seconds, quantity, sequence
 * number), the shopper's factor vector x_u, the Ed25519 identity key pair
 * (made at creation), the participation flag (opted in by default), the cached
 * model (version, Y, optional Gram matrix, item codes) and the privacy ledger.
 *
 * Opening an existing store reads and authenticates it and writes nothing
 * (no rename, no fsync): a wrong key (FEDREC_ERR_BADKEY), a corrupted or
 * truncated file, a missing log, or a file of another store
 * (FEDREC_ERR_CORRUPT) are reported with a message naming the file. The log
 * is continued by this process's appends; compaction (a new snapshot and an
 * empty log) happens only on an update that needs it: the first one after a
 * crash left a torn frame or a stale log, the first one on a store of an
 * older format (that is its migration), every COMPACT_EVERY (4096) events,
 * and set_model. Recovery after a crash: a torn last log frame (shorter than
 * its length prefix says, or all zero bytes) is an event whose append never
 * returned, and is dropped. A log with fewer complete frames than its
 * counter has lost committed events (cut at a frame boundary or inside one):
 * FEDREC_ERR_LOST_EVENTS naming how many, unless opened with
 * FEDRECI_OPEN_KEEP_PARTIAL. Not detected: a log replaced by an older one, a
 * whole store rolled back (docs/client.md).
 *
 * Memory: the master and stream keys, the identity secret key and the
 * secretstream state live in sodium_malloc memory, wiped on close; serialized
 * plaintext buffers are wiped before they are freed.
 *
 * Thread-safety: a store object may be used by one thread at a time (the
 * client handle in client.c locks around it). One process may have a store
 * open at a time: open takes an exclusive flock on meta (FEDREC_ERR_BUSY
 * otherwise), released on close or when the process dies.
 */
#ifndef FEDREC_CLIENT_STORE_H
#define FEDREC_CLIENT_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "fedrec/fedrec.h"

#define FEDRECI_STORE_KEY_BYTES 32
#define FEDRECI_STORE_ID_BYTES 16
#define FEDRECI_CODE_MAX 31    /* longest item code in bytes (without the NUL) */
#define FEDRECI_WHAT_MAX 63    /* longest ledger description in bytes */
#define FEDRECI_REASON_MAX 191 /* longest reason of a ledger refusal in bytes */
#define FEDRECI_SIGN_PK_BYTES 32
#define FEDRECI_SIGN_SK_BYTES 64
#define FEDRECI_MODEL_MAX_ITEMS 10000000u
#define FEDRECI_MODEL_MAX_K 1024u
#define FEDRECI_MODEL_MAX_FLOATS (1u << 28) /* n_items * k cap (1 GiB of float32) */

typedef struct fedreci_store fedreci_store;

/* One purchase event. code is NUL-terminated. */
typedef struct fedreci_store_purchase {
    uint64_t seq;      /* 1, 2, ... in recording order; never reused */
    int64_t time;      /* unix time, seconds */
    uint32_t quantity; /* >= 1 */
    char code[FEDRECI_CODE_MAX + 1];
} fedreci_store_purchase;

/* One upload, or one refused round, recorded in the privacy ledger. */
typedef struct fedreci_ledger_rec {
    int64_t time_ms;     /* unix time of the upload, milliseconds */
    uint64_t round;      /* round id */
    uint32_t stage;      /* protocol stage (0..3, fedreci_secagg_stage); for a refusal
                            the stage whose message was withheld */
    uint64_t bytes_sent; /* bytes handed to the transport for this message (0: refusal) */
    uint32_t clipped;    /* update entries clipped (0 when not an update) */
    char what[FEDRECI_WHAT_MAX + 1];
    /* since state version 4 / log record type 5 (0 / "" in older entries): */
    uint32_t kind;    /* 0 upload, 1 refusal (FEDREC_LEDGER_*) */
    uint32_t refusal; /* fedrec_refusal */
    uint32_t n, k, t; /* the round's cohort, neighbours, threshold as announced */
    char reason[FEDRECI_REASON_MAX + 1];
} fedreci_ledger_rec;

/* One differentially private round in the shopper's privacy ledger
 * (core/dp/round.h): spent (the client sent its noised input) or refused
 * (the client refused the round's DP parameters and sent nothing). The
 * epsilons are computed on the device from the parameters the client
 * verified: eps_round of this round alone at delta, eps_cumulative of every
 * spent round so far (Renyi composition) at the smallest delta seen. */
#define FEDRECI_DP_REASON_MAX 191
typedef struct fedreci_dp_ledger_rec {
    int64_t time_ms;
    uint64_t round;
    uint32_t refused;       /* 1: refused, nothing sent */
    uint32_t min_survivors; /* the noise suffices for this many survivors */
    double eps_round, eps_cumulative, delta;
    double mu, l1, l2; /* the release: total noise variance and sensitivities (integer units) */
    double noise_var;  /* Skellam variance this client added per coordinate */
    double l2_bound;   /* c, input units */
    double scale;      /* s */
    char reason[FEDRECI_DP_REASON_MAX + 1]; /* refused: why; "" otherwise */
} fedreci_dp_ledger_rec;

/* The cached model. Owned by the store; y is n_items x k row-major float32,
 * gram (k x k, full) may be NULL, codes[i] names row i, retired[n_retired]
 * (strictly ascending, < n_items; NULL when none) are the rows of products
 * the retailer no longer sells: never recommended. checksum is the unkeyed
 * BLAKE2b-256 of y's bytes as stored (the model checksum a sync binds into
 * its signed advert): computed once when the model is written (set_model)
 * and kept in the snapshot (format 6), so opening and syncing never hash
 * the model again; a snapshot of an older format has it computed on open. */
typedef struct fedreci_store_model {
    uint64_t version;
    uint32_t n_items;
    uint32_t k;
    uint8_t checksum[32];
    float *y;
    float *gram;
    char (*codes)[FEDRECI_CODE_MAX + 1];
    uint32_t *retired;
    uint32_t n_retired;
} fedreci_store_model;

/* How the master key is given. */
typedef enum fedreci_key_kind {
    FEDRECI_KEY_RAW = 0,        /* 32 bytes from the app's key store */
    FEDRECI_KEY_PASSPHRASE = 1, /* crypto_pwhash (Argon2id13), salt in meta */
} fedreci_key_kind;

/* Opens the store in directory `dir`, creating it (mode 0700) and a new store
 * (new identity key pair, new store id, opted in, no model) when the
 * directory does not exist or holds no store file. For FEDRECI_KEY_RAW, key
 * is 32 bytes; for FEDRECI_KEY_PASSPHRASE, key/key_len is the passphrase
 * (1..4096 bytes) and the pwhash limits are opslimit/memlimit (0 for
 * crypto_pwhash's INTERACTIVE values; used only when creating).
 * Errors: FEDREC_ERR_INVALID (arguments), FEDREC_ERR_BADKEY (wrong key or
 * key kind), FEDREC_ERR_CORRUPT (damaged, truncated, foreign file, log
 * deleted), FEDREC_ERR_LOST_EVENTS (the log lost committed events; the
 * message says how many), FEDREC_ERR_IO, FEDREC_ERR_BUSY (open elsewhere),
 * FEDREC_ERR_NOMEM, FEDREC_ERR_CRYPTO (pwhash failed). *out written only on
 * success; on error nothing was written. A new store is written (meta,
 * snapshot, log) before this returns. */
FEDREC_NODISCARD fedrec_err fedreci_store_open(fedreci_store **out, const char *dir,
                                               fedreci_key_kind kind, const uint8_t *key,
                                               size_t key_len, unsigned long long opslimit,
                                               size_t memlimit);

/* Open flag: a log that lost committed events opens with the events that are
 * left (fedreci_store_lost gives how many are gone) instead of failing with
 * FEDREC_ERR_LOST_EVENTS; the first update then compacts, which makes the
 * loss permanent (the store then opens without the flag). */
#define FEDRECI_OPEN_KEEP_PARTIAL 1u

/* Open flag: open only a store that exists. With no store in dir (no
 * directory, or none of the store's files in it) the open fails with
 * FEDREC_ERR_NOT_FOUND and creates nothing (no directory, no file). */
#define FEDRECI_OPEN_MUST_EXIST 2u

/* fedreci_store_open with flags (0, or FEDRECI_OPEN_KEEP_PARTIAL and/or
 * FEDRECI_OPEN_MUST_EXIST). Errors: as fedreci_store_open, plus
 * FEDREC_ERR_LOST_EVENTS (without FEDRECI_OPEN_KEEP_PARTIAL) and
 * FEDREC_ERR_NOT_FOUND (with FEDRECI_OPEN_MUST_EXIST). */
FEDREC_NODISCARD fedrec_err fedreci_store_open_flags(fedreci_store **out, const char *dir,
                                                     fedreci_key_kind kind, const uint8_t *key,
                                                     size_t key_len, unsigned long long opslimit,
                                                     size_t memlimit, unsigned flags);

/* The number of committed events found missing when the store was opened
 * with FEDRECI_OPEN_KEEP_PARTIAL (0 when none). */
uint64_t fedreci_store_lost(const fedreci_store *s);

/* Wipes the secrets and frees; NULL is a no-op. Nothing is written. */
void fedreci_store_close(fedreci_store *s);

/* Erases the store: unlinks log, snapshot, temporary files and meta (in that
 * order), removes the directory if it is then empty, fsyncs the parent, and
 * frees s (always, even on error). Errors: FEDREC_ERR_IO naming the file that
 * could not be removed. */
FEDREC_NODISCARD fedrec_err fedreci_store_forget(fedreci_store *s);

/* fedreci_store_forget, keeping the directory (empty) when keep_dir: for a
 * store made in a directory that was there before it. */
FEDREC_NODISCARD fedrec_err fedreci_store_erase(fedreci_store *s, int keep_dir);

/* ---- durable updates: each is on disk (synced) when it returns OK ---------- */

/* Appends a purchase; *seq (optional) gets its sequence number. code is 1..31
 * bytes of printable ASCII without ',' '"' or control characters. */
FEDREC_NODISCARD fedrec_err fedreci_store_add_purchase(fedreci_store *s, const char *code,
                                                       int64_t time, uint32_t quantity,
                                                       uint64_t *seq);
FEDREC_NODISCARD fedrec_err fedreci_store_set_participation(fedreci_store *s, int opted_in);
FEDREC_NODISCARD fedrec_err fedreci_store_add_ledger(fedreci_store *s,
                                                     const fedreci_ledger_rec *rec);
/* x has k floats (k <= FEDRECI_MODEL_MAX_K). */
FEDREC_NODISCARD fedrec_err fedreci_store_set_user_factors(fedreci_store *s, const float *x,
                                                           uint32_t k);
/* Replaces the cached model (copied) and writes a new snapshot. gram may be
 * NULL; codes has n_items entries, each 1..31 bytes; retired (n_retired
 * rows, strictly ascending, each < n_items) may be NULL when n_retired is 0.
 * Errors: FEDREC_ERR_INVALID (shapes, codes, retired rows), FEDREC_ERR_IO,
 * FEDREC_ERR_NOMEM. */
FEDREC_NODISCARD fedrec_err fedreci_store_set_model(fedreci_store *s, uint64_t version,
                                                    uint32_t n_items, uint32_t k, const float *y,
                                                    const float *gram, const char *const *codes,
                                                    const uint32_t *retired, uint32_t n_retired);
/* Folds the log into a new snapshot and starts an empty log (also done by an
 * update when the log cannot be continued or holds 4096 events, and by
 * set_model). */
FEDREC_NODISCARD fedrec_err fedreci_store_compact(fedreci_store *s);

/* ---- reads: pointers stay valid until the next update or close ------------ */

const fedreci_store_purchase *fedreci_store_purchases(const fedreci_store *s, size_t *n);
const fedreci_ledger_rec *fedreci_store_ledger(const fedreci_store *s, size_t *n);

/* Appends a differentially private round to the privacy ledger (one event,
 * synced). Errors: FEDREC_ERR_INVALID (NULL, reason too long), those of the
 * log. */
FEDREC_NODISCARD fedrec_err fedreci_store_add_dp(fedreci_store *s, const fedreci_dp_ledger_rec *l);

/* The differentially private rounds, oldest first; *n gets their number.
 * Valid until the next write. */
const fedreci_dp_ledger_rec *fedreci_store_dp(const fedreci_store *s, size_t *n);
int fedreci_store_participation(const fedreci_store *s);
/* NULL when no model has been stored. */
const fedreci_store_model *fedreci_store_get_model(const fedreci_store *s);
/* NULL when never set; *k gets the length. */
const float *fedreci_store_user_factors(const fedreci_store *s, uint32_t *k);
const uint8_t *fedreci_store_identity_pk(const fedreci_store *s); /* 32 bytes */
const uint8_t *fedreci_store_identity_sk(const fedreci_store *s); /* 64 bytes, secure memory */
const uint8_t *fedreci_store_id(const fedreci_store *s);          /* 16 bytes */
const char *fedreci_store_dir(const fedreci_store *s);

/* Checks that an item code is acceptable (see add_purchase); names it in the
 * error message. */
FEDREC_NODISCARD fedrec_err fedreci_store_check_code(const char *code);

#endif /* FEDREC_CLIENT_STORE_H */
