/*
 * coordinator/persist: what the daemon does on the round engine's hooks -
 * write to the database, update the live stats, log one line per event.
 *
 * The engine reports a completed round in two steps: first the new model
 * (on_model_committed: round id, version, Y), then the round's statistics
 * (on_round_done). fedreci_persist_model writes the model version and its
 * round row (status completed, model_version) in one transaction - a crash
 * between the two hooks leaves a completed round whose counts are zero, never
 * a model without its round or the reverse. fedreci_persist_round then fills
 * the counts in (completed) or logs the round as aborted.
 *
 * Before any of that, the engine's on_round_start hook calls
 * fedreci_persist_round_begin before any client learns the round id: it
 * logs the round as running, so that a crash mid-round leaves a row that
 * the next start marks aborted (reason "crash") and the round id is never
 * reused.
 *
 * Thread-safety: every function may be called from any thread (one mutex
 * around the database handle). Errors are logged and returned.
 */
#ifndef FEDREC_COORDINATOR_PERSIST_H
#define FEDREC_COORDINATOR_PERSIST_H

#include <stdint.h>

#include "bootstrap.h"
#include "db.h"
#include "engine.h"
#include "status.h"

typedef struct fedreci_persist fedreci_persist;

/* db and stats are borrowed (stats may be NULL) and must outlive the
 * persister. catalog_id: the catalog the served rows refer to. */
FEDREC_NODISCARD fedrec_err fedreci_persist_create(fedreci_persist **out, fedreci_db *db,
                                                   fedreci_stats *stats, uint64_t catalog_id);
void fedreci_persist_destroy(fedreci_persist *p);

/* A round begins (the engine's on_round_start): its row is written as
 * running, one line "round started: cohort N of M waiting, ..." is logged
 * and the stats show the round at its first stage. A round id at or below
 * one already begun is refused (FEDREC_ERR_DUPLICATE). Errors: those of
 * fedreci_db_round_begin (nothing written; logged): the engine then does not
 * start the round. */
FEDREC_NODISCARD fedrec_err fedreci_persist_round_begin(fedreci_persist *p,
                                                        const fedreci_round_begin *b);

/* A new model version from a completed round: y is n_items x k (copied into
 * the database, not kept). Model + round row in one transaction; on error
 * nothing is written and the engine must not serve the version. */
FEDREC_NODISCARD fedrec_err fedreci_persist_model(fedreci_persist *p, uint64_t round_id,
                                                  uint64_t version, const float *y,
                                                  uint32_t n_items, uint32_t k);

/* A round ended: completed rounds (already committed by
 * fedreci_persist_model) get their counts filled in; aborted ones are
 * logged. Updates the stats (round_end) and logs a summary line. r->status
 * must be completed or aborted. */
FEDREC_NODISCARD fedrec_err fedreci_persist_round(fedreci_persist *p,
                                                  const fedreci_round_record *r);

/* A client seen by the engine: registered or last_seen refreshed; opted_in
 * == 0 marks it opted out. */
FEDREC_NODISCARD fedrec_err fedreci_persist_client(fedreci_persist *p, uint64_t client_id,
                                                   const uint8_t identity_pk[32], int opted_in);

/* Clients registered in the database (counted at create, then one more for
 * each new client fedreci_persist_client registers). */
uint64_t fedreci_persist_clients(fedreci_persist *p);

/* SIGHUP: merges the catalog file at path into the stored catalog
 * (fedreci_bootstrap_run under the persister's lock, so no hook writes
 * meanwhile); when it changed, the grown model is committed as a new
 * version and *out holds it (out->committed = 1), and later round commits
 * refer to the new catalog. The engine must be held with no round open
 * (fedreci_coord_hold): the model it serves is the latest stored one.
 * Errors: those of fedreci_bootstrap_run (nothing changed). */
FEDREC_NODISCARD fedrec_err fedreci_persist_catalog_reload(fedreci_persist *p, const char *path,
                                                           uint32_t factors, uint64_t seed,
                                                           fedreci_bootstrap *out);

/* A client named a culprit in round_id: excluded from later rounds, kept
 * across restarts (clients.excluded_round). */
FEDREC_NODISCARD fedrec_err fedreci_persist_exclude(fedreci_persist *p, uint64_t client_id,
                                                    uint64_t round_id);

/* A client benched in round_id (the engine's on_client_benched): strikes,
 * benched_until and reason are kept in clients (bench_strikes,
 * benched_until, bench_reason) and restored at start, so a restart does not
 * forget them. Errors: those of fedreci_db_client_bench (logged). */
FEDREC_NODISCARD fedrec_err fedreci_persist_bench(fedreci_persist *p, uint64_t client_id,
                                                  uint64_t round_id, uint32_t strikes,
                                                  uint64_t benched_until, const char *reason);

/* Differential privacy: round_id's release is spent (the engine's
 * on_dp_spent hook): recorded in dp_spent before the engine unmasks.
 * Errors: those of fedreci_db_dp_spend (logged). */
FEDREC_NODISCARD fedrec_err fedreci_persist_dp_spent(fedreci_persist *p, uint64_t round_id,
                                                     const fedreci_dp_event *ev, double eps_round,
                                                     double eps_cumulative, double delta);

#endif /* FEDREC_COORDINATOR_PERSIST_H */
