/*
 * client/store_log: the store's encrypted snapshot and append-only event log
 * (internal). Both files are a 32-byte prefix (magic, store id, generation:
 * the associated data of every message) and one
 * crypto_secretstream_xchacha20poly1305 stream under the store's stream key;
 * the byte layout and the crash points are in docs/client.md and store.h.
 *
 * Reads (snapshot_load, log_replay) only parse and authenticate bytes the
 * caller has read; writes go through client/store_file (atomic replacement)
 * or append to the open log. Errors carry a message naming the file.
 * Thread-safety: a store is used by one thread at a time.
 */
#ifndef FEDREC_CLIENT_STORE_LOG_H
#define FEDREC_CLIENT_STORE_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "client/store_codec.h"
#include "client/store_internal.h"

/* Authenticates the snapshot file (n bytes at b, read from path) and decodes
 * its state into s (which holds the empty state); s->gen gets its
 * generation. Errors: FEDREC_ERR_CORRUPT (truncated, damaged, another
 * store's, malformed), FEDREC_ERR_NOMEM. */
FEDREC_NODISCARD fedrec_err fedreci_store_snapshot_load(fedreci_store *s, const char *path,
                                                        const uint8_t *b, size_t n);

/* Replays the log file (n bytes at b, read from path) over the snapshot
 * state in s: a log of an older generation is stale and ignored, a torn last
 * frame is dropped. A format 2 log with fewer complete frames than its
 * committed-event counter has lost its tail: FEDREC_ERR_LOST_EVENTS naming
 * how many, unless flags has FEDRECI_OPEN_KEEP_PARTIAL (then s->lost gets
 * the number). A current format 2 log that ends cleanly is continued by the
 * next append (s->push, log_events, log_end set, log_broken 0); any other
 * leaves log_broken set, so the next append compacts first. Errors:
 * FEDREC_ERR_CORRUPT (damaged frame or counter, another store's, newer than
 * the snapshot), FEDREC_ERR_LOST_EVENTS, FEDREC_ERR_NOMEM. Writes nothing. */
FEDREC_NODISCARD fedrec_err fedreci_store_log_replay(fedreci_store *s, const char *path,
                                                     const uint8_t *b, size_t n, unsigned flags);

/* Encrypts one event record (rec: type byte and body), writes it after the
 * log's last complete frame with one write and syncs it, then counts it in
 * the log's committed-event counter and syncs that, then applies it to s.
 * Compacts first when the log cannot be continued (see log_replay), when the
 * snapshot does not yet record a log, or when the log holds COMPACT_EVERY
 * events. Errors:
 * FEDREC_ERR_IO (the log is retired; the next event starts a new
 * generation), FEDREC_ERR_NOMEM, FEDREC_ERR_INTERNAL. */
FEDREC_NODISCARD fedrec_err fedreci_store_log_append(fedreci_store *s, const fedreci_wbuf *rec);

#endif /* FEDREC_CLIENT_STORE_LOG_H */
