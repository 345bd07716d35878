/*
 * coordinator/db: the coordinator's durable state in SQLite (docs/design.md
 * section 5): model versions, the item catalog, the round log and the client
 * registry.
 *
 * Durability: WAL journal mode with synchronous=FULL (the argument is in
 * db.c). A new model version and its round row are written in one
 * transaction, so after a crash the database holds either both or neither. A
 * round is first logged as 'running' in its own small transaction
 * (fedreci_db_round_begin); if the process dies before the round ends, the
 * next fedreci_db_open marks it 'aborted' with reason "crash": the crash
 * loses that round only, its id is never reused, and the last committed
 * model is what fedreci_db_latest_model returns.
 *
 * Identifiers: client ids and round ids are uint64 on the wire and stored in
 * SQLite's signed 64-bit INTEGER with the same bit pattern.
 *
 * Schema (user_version 1): catalogs, items, models, rounds, clients; see
 * db.c. Opening a database with a newer user_version than this build knows
 * is refused (FEDREC_ERR_UNSUPPORTED); older ones are migrated in place in
 * one transaction.
 *
 * Errors: every function returns a fedrec_err; SQLite failures are
 * FEDREC_ERR_DB with the SQLite message and the operation named in
 * fedrec_errmsg(). Out-params are written only on success.
 *
 * Thread-safety: one connection, prepared statements cached in the handle; a
 * fedreci_db may be used by one thread at a time (the daemon calls it from
 * the engine's hook thread and at startup). Open several handles for
 * concurrent use.
 */
#ifndef FEDREC_COORDINATOR_DB_H
#define FEDREC_COORDINATOR_DB_H

#include <stddef.h>
#include <stdint.h>

#include "catalog.h"
#include "core/dp/accountant.h"
#include "fedrec/fedrec.h"
#include "model.h"

#define FEDRECI_DB_SCHEMA_VERSION 5
#define FEDRECI_DB_STAGES 4
#define FEDRECI_DB_BENCH_REASON_MAX                                                                \
    96 /* bytes of clients.bench_reason read back, NUL incl. */ /* advertise, share_keys,          \
                                                                   masked_input, unmask */

typedef struct fedreci_db fedreci_db;

typedef enum fedreci_round_status {
    FEDRECI_ROUND_RUNNING = 0,   /* begun, not ended (crash if seen after restart) */
    FEDRECI_ROUND_COMPLETED = 1, /* a new model version was committed */
    FEDRECI_ROUND_ABORTED = 2,   /* too few clients, deadline, shutdown or crash */
} fedreci_round_status;

/* One row of the round log. Durations in milliseconds, times in Unix ms. */
typedef struct fedreci_round_record {
    uint64_t round_id;
    int64_t started_ms;
    int64_t ended_ms;
    fedreci_round_status status;
    uint32_t cohort;                      /* clients invited */
    uint32_t survivors;                   /* clients whose masked input was summed */
    uint32_t dropped[FEDRECI_DB_STAGES];  /* clients lost at each stage */
    uint32_t stage_ms[FEDRECI_DB_STAGES]; /* wall time of each stage */
    uint64_t bytes_in;                    /* request bytes received in the round */
    uint64_t bytes_out;                   /* reply bytes sent in the round */
    uint64_t model_version;               /* committed version; 0 when none */
    char metrics_json[512];               /* a JSON object, "" = none */
} fedreci_round_record;

/* Opens (creating if needed) the database at path, sets WAL and
 * synchronous=FULL, a busy timeout, foreign keys, migrates the schema to
 * FEDRECI_DB_SCHEMA_VERSION and recovers rounds left 'running' by a crash
 * (marked aborted, metrics {"reason":"crash"}). Errors: FEDREC_ERR_DB,
 * FEDREC_ERR_UNSUPPORTED (newer schema), FEDREC_ERR_NOMEM. */
FEDREC_NODISCARD fedrec_err fedreci_db_open(fedreci_db **out, const char *path);

/* Finalizes the statements and closes the connection (checkpointing the
 * WAL). NULL is a no-op. */
void fedreci_db_close(fedreci_db *db);

/* Number of rounds that fedreci_db_open found 'running' and marked aborted. */
uint32_t fedreci_db_recovered_rounds(const fedreci_db *db);

/* Runs PRAGMA integrity_check. *ok = 1 when SQLite answers "ok"; otherwise 0
 * and msg (cap bytes, may be NULL) gets the first problem reported.
 * Errors: FEDREC_ERR_DB when the check itself cannot run. */
FEDREC_NODISCARD fedrec_err fedreci_db_integrity_check(fedreci_db *db, int *ok, char *msg,
                                                       size_t cap);

/* ---- models ---------------------------------------------------------------- */

/* The newest committed model version (y allocated; free with
 * fedreci_model_clear). The checksum is recomputed and compared with the
 * stored one. Errors: FEDREC_ERR_NOT_FOUND (no model yet), FEDREC_ERR_CORRUPT
 * (blob size or checksum mismatch), FEDREC_ERR_DB, FEDREC_ERR_NOMEM. */
FEDREC_NODISCARD fedrec_err fedreci_db_latest_model(fedreci_db *db, fedreci_model *out);

/* A given version, same contract as fedreci_db_latest_model. */
FEDREC_NODISCARD fedrec_err fedreci_db_get_model(fedreci_db *db, uint64_t version,
                                                 fedreci_model *out);

/* The newest version number, 0 when none. Errors: FEDREC_ERR_DB. */
FEDREC_NODISCARD fedrec_err fedreci_db_latest_version(fedreci_db *db, uint64_t *version);

/* Commits m (n_items x k, y) as version m->version when non-zero (it must
 * exceed the latest) or else the next version (latest + 1), without a round
 * (origin init or catalog). m->version, created_ms and checksum are
 * filled in on success. Errors: FEDREC_ERR_INVALID, FEDREC_ERR_DB. */
FEDREC_NODISCARD fedrec_err fedreci_db_commit_model(fedreci_db *db, fedreci_model *m);

/* ---- rounds ------------------------------------------------------------------ */

/* The id the next round should use: 1 + the largest id logged, 1 when none. */
FEDREC_NODISCARD fedrec_err fedreci_db_next_round_id(fedreci_db *db, uint64_t *round_id);

/* Logs round r->round_id as running (started_ms, cohort) in its own
 * transaction. Errors: FEDREC_ERR_DUPLICATE (id already logged), FEDREC_ERR_DB. */
FEDREC_NODISCARD fedrec_err fedreci_db_round_begin(fedreci_db *db, const fedreci_round_record *r);

/* Ends a round, atomically: when m is non-NULL (a completed round) the model
 * is inserted as version m->version (when non-zero; it must exceed the
 * latest, else FEDREC_ERR_INVALID) or as the next version (latest + 1), and
 * the round row updated to completed
 * with that version, in one transaction; m->version, created_ms and checksum
 * are filled in and r->model_version is set. When m is NULL the round is
 * logged with r->status (aborted). A round not begun is inserted.
 * Errors: FEDREC_ERR_INVALID (completed without a model), FEDREC_ERR_DB
 * (nothing written). */
FEDREC_NODISCARD fedrec_err fedreci_db_round_end(fedreci_db *db, fedreci_round_record *r,
                                                 fedreci_model *m);

/* Fills in the counts, timings, bytes and metrics of a round already logged
 * with r->status (e.g. completed by fedreci_db_round_end from the engine's
 * model hook, whose statistics arrive afterwards); status and model_version
 * are not changed. Errors: FEDREC_ERR_NOT_FOUND (no such round with that
 * status), FEDREC_ERR_DB. */
FEDREC_NODISCARD fedrec_err fedreci_db_round_details(fedreci_db *db, const fedreci_round_record *r);

/* Reads a round row. Errors: FEDREC_ERR_NOT_FOUND, FEDREC_ERR_DB. */
FEDREC_NODISCARD fedrec_err fedreci_db_get_round(fedreci_db *db, uint64_t round_id,
                                                 fedreci_round_record *out);

/* Counts of rounds by status (any pointer may be NULL). */
FEDREC_NODISCARD fedrec_err fedreci_db_round_counts(fedreci_db *db, uint64_t *completed,
                                                    uint64_t *aborted, uint64_t *running);

/* Fault injection for tests: `hook` runs inside fedreci_db_round_end's and
 * fedreci_db_commit_model's transaction after every write and just before
 * COMMIT (a test kills the process there). NULL removes it. */
void fedreci_db_set_precommit_hook(fedreci_db *db, void (*hook)(void *), void *arg);

/* ---- differential privacy (db_dp.c) ------------------------------------------- */

/* One release spent (a row of dp_spent): the Skellam release (total noise
 * variance mu, L1 and L2 sensitivities, integer units) and the epsilon of
 * the round alone and cumulative at delta, as the engine computed them. */
typedef struct fedreci_dp_spend {
    uint64_t round_id;
    double mu, l1, l2;
    double eps_round, eps_cumulative, delta;
} fedreci_dp_spend;

/* Records a spent release (its own transaction, synced before it returns:
 * the engine unmasks only after this succeeded). Errors: FEDREC_ERR_DUPLICATE
 * (round already recorded), FEDREC_ERR_DB. */
FEDREC_NODISCARD fedrec_err fedreci_db_dp_spend(fedreci_db *db, const fedreci_dp_spend *r);

/* Rebuilds the accountant from every recorded release, in round order:
 * acc is reset to the default order grid and each release composed; *n gets
 * their number. Errors: FEDREC_ERR_DB, FEDREC_ERR_CORRUPT (a row the
 * accountant refuses). */
FEDREC_NODISCARD fedrec_err fedreci_db_dp_restore(fedreci_db *db, fedreci_dp_accountant *acc,
                                                  uint64_t *n);

/* ---- catalog ------------------------------------------------------------------ */

/* The stored catalog (all rows, with active flags) and its id (0 and an
 * empty catalog when none was stored). Errors: FEDREC_ERR_DB,
 * FEDREC_ERR_CORRUPT (rows not contiguous), FEDREC_ERR_NOMEM. */
FEDREC_NODISCARD fedrec_err fedreci_db_load_catalog(fedreci_db *db, fedreci_catalog **out,
                                                    uint64_t *catalog_id);

/* Stores catalog c as a new catalog version and, when m is non-NULL, the
 * model grown for it (m->catalog_id is set to the new id) - one transaction,
 * so the rows of Y and the catalog never disagree. c must extend the stored
 * catalog (same codes on the same rows, more rows allowed).
 * Errors: FEDREC_ERR_INVALID (c reorders stored rows), FEDREC_ERR_DB. */
FEDREC_NODISCARD fedrec_err fedreci_db_store_catalog(fedreci_db *db, const fedreci_catalog *c,
                                                     const char *source, fedreci_model *m,
                                                     uint64_t *catalog_id);

/* The BLAKE2b-256 digest recorded for the catalog file `source` (a path as
 * given) at its last merge, and the catalog id after that merge.
 * Errors: FEDREC_ERR_NOT_FOUND (never merged), FEDREC_ERR_DB. */
FEDREC_NODISCARD fedrec_err fedreci_db_catalog_file_get(fedreci_db *db, const char *source,
                                                        uint8_t digest[32], uint64_t *catalog_id);

/* Records that the catalog file `source` with `digest` was merged (whether
 * or not it changed the catalog); catalog_id: the catalog after the merge.
 * Errors: FEDREC_ERR_DB. */
FEDREC_NODISCARD fedrec_err fedreci_db_catalog_file_merged(fedreci_db *db, const char *source,
                                                           const uint8_t digest[32],
                                                           uint64_t catalog_id);

/* ---- client registry ----------------------------------------------------------- */

typedef struct fedreci_client_record {
    uint64_t client_id;
    uint8_t identity_pk[32]; /* Ed25519 */
    int64_t first_seen_ms;
    int64_t last_seen_ms;
    int opted_out;
    uint64_t excluded_round; /* the round that named it a culprit; 0: not excluded */
    uint32_t bench_strikes;  /* times benched (fedreci_db_client_bench); 0: never */
    uint64_t benched_until;  /* not drawn into rounds up to this id; 0: not benched */
    char bench_reason[FEDRECI_DB_BENCH_REASON_MAX]; /* why it was last benched; "" none */
} fedreci_client_record;

/* Registers a client (first sighting) or refreshes its last_seen. A known
 * client presenting another identity key is refused (FEDREC_ERR_SIGNATURE),
 * nothing changed. Errors: FEDREC_ERR_DB. */
FEDREC_NODISCARD fedrec_err fedreci_db_client_seen(fedreci_db *db, uint64_t client_id,
                                                   const uint8_t identity_pk[32], int64_t now_ms);

/* Errors: FEDREC_ERR_NOT_FOUND, FEDREC_ERR_DB. */
FEDREC_NODISCARD fedrec_err fedreci_db_client_get(fedreci_db *db, uint64_t client_id,
                                                  fedreci_client_record *out);

/* Errors: FEDREC_ERR_NOT_FOUND, FEDREC_ERR_DB. */
FEDREC_NODISCARD fedrec_err fedreci_db_client_set_opted_out(fedreci_db *db, uint64_t client_id,
                                                            int opted_out);

/* Marks a registered client excluded since round_id (kept if it already is).
 * Errors: FEDREC_ERR_NOT_FOUND, FEDREC_ERR_DB. */
FEDREC_NODISCARD fedrec_err fedreci_db_client_exclude(fedreci_db *db, uint64_t client_id,
                                                      uint64_t round_id);

/* Records that a registered client is benched (coordinator/registry.c
 * fedreci_eng_bench): strikes so far, the last round it is not drawn into
 * (0 lifts the bench) and why (NUL-terminated; cut to
 * FEDRECI_DB_BENCH_REASON_MAX - 1 bytes). Errors: FEDREC_ERR_NOT_FOUND,
 * FEDREC_ERR_DB. */
FEDREC_NODISCARD fedrec_err fedreci_db_client_bench(fedreci_db *db, uint64_t client_id,
                                                    uint32_t strikes, uint64_t benched_until,
                                                    const char *reason);

/* Number of registered clients. */
FEDREC_NODISCARD fedrec_err fedreci_db_client_count(fedreci_db *db, uint64_t *n);

/* Calls fn for every registered client in ascending id order; a non-OK
 * return from fn stops the walk and is returned. Errors: FEDREC_ERR_DB. */
FEDREC_NODISCARD fedrec_err fedreci_db_client_each(
    fedreci_db *db, fedrec_err (*fn)(void *arg, const fedreci_client_record *c), void *arg);

/* Unix time now in milliseconds. */
int64_t fedreci_db_now_ms(void);

#endif /* FEDREC_COORDINATOR_DB_H */
