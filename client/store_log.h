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
 * frame is dropped. *replayed gets the number of events applied. Errors:
 * FEDREC_ERR_CORRUPT (damaged frame, another store's, newer than the
 * snapshot), FEDREC_ERR_NOMEM. */
FEDREC_NODISCARD fedrec_err fedreci_store_log_replay(fedreci_store *s, const char *path,
                                                     const uint8_t *b, size_t n, size_t *replayed);

/* Encrypts one event record (rec: type byte and body), appends it to the log
 * with one write() and fdatasyncs it, then applies it to s. Compacts first
 * when the log is unusable or holds COMPACT_EVERY events. Errors:
 * FEDREC_ERR_IO (the log is retired; the next event starts a new
 * generation), FEDREC_ERR_NOMEM, FEDREC_ERR_INTERNAL. */
FEDREC_NODISCARD fedrec_err fedreci_store_log_append(fedreci_store *s, const fedreci_wbuf *rec);

#endif /* FEDREC_CLIENT_STORE_LOG_H */
