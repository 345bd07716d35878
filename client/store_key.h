/*
 * client/store_key: the store's keys and its meta file (internal).
 *
 * The master key is the app's 32 raw bytes, or a passphrase stretched with
 * crypto_pwhash (Argon2id13) over the random salt kept in meta. Per-store
 * keys are BLAKE2b-256 keyed with the master key over a label and the store
 * id (fedreci_store_key_derive). meta (112 bytes, docs/client.md) holds the
 * format version, the key kind, the pwhash limits and salt, the store id, the
 * key check (derived with FEDRECI_LABEL_CHECK) and a BLAKE2b-128 checksum of
 * the rest, so damage is told apart from a wrong key.
 *
 * Secrets: master (32 bytes) is the caller's buffer, normally in sodium_malloc
 * memory; every copy made here is wiped before return. Thread-safety: no
 * shared state.
 */
#ifndef FEDREC_CLIENT_STORE_KEY_H
#define FEDREC_CLIENT_STORE_KEY_H

#include <stddef.h>
#include <stdint.h>

#include "client/store.h"

#define FEDRECI_LABEL_CHECK "fedrec store key check v1"
#define FEDRECI_LABEL_STREAM "fedrec store stream key v1"
#define FEDRECI_LABEL_COUNT "fedrec store log count v1"

/* out = BLAKE2b-256(key = master, label || store_id[16]). */
void fedreci_store_key_derive(const uint8_t master[32], const char *label, const uint8_t *store_id,
                              uint8_t out[32]);

/* Makes the meta file of a new store in dir (mpath = dir/meta, written
 * atomically): a new random store id and salt, the pwhash limits (0 = the
 * INTERACTIVE values; passphrase only) and the key check. master gets the
 * master key, store_id the new id (both only on success). Errors:
 * FEDREC_ERR_CRYPTO (pwhash failed), FEDREC_ERR_IO, FEDREC_ERR_NOMEM. */
FEDREC_NODISCARD fedrec_err fedreci_store_key_create(const char *dir, const char *mpath,
                                                     fedreci_key_kind kind, const uint8_t *key,
                                                     size_t key_len, unsigned long long opslimit,
                                                     size_t memlimit, uint8_t master[32],
                                                     uint8_t store_id[FEDRECI_STORE_ID_BYTES]);

/* Reads the meta file at mpath, checks its checksum, version and key kind,
 * derives the master key from key/key_len and checks it against the stored
 * key check. master and store_id are written on success (master may hold
 * garbage after an error: the caller wipes it). Errors: FEDREC_ERR_CORRUPT
 * (damaged), FEDREC_ERR_UNSUPPORTED (another format version),
 * FEDREC_ERR_BADKEY (wrong key or key kind), FEDREC_ERR_CRYPTO, FEDREC_ERR_IO,
 * FEDREC_ERR_NOMEM. Nothing is written. */
FEDREC_NODISCARD fedrec_err fedreci_store_key_load(const char *mpath, fedreci_key_kind kind,
                                                   const uint8_t *key, size_t key_len,
                                                   uint8_t master[32],
                                                   uint8_t store_id[FEDRECI_STORE_ID_BYTES]);

#endif /* FEDREC_CLIENT_STORE_KEY_H */
