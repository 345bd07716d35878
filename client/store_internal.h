/*
 * client/store_internal: what the store's files share (client/store*.c and
 * the store fuzz harnesses; nothing else includes it): the file names and
 * magics, the format versions and caps, the event record types, and the
 * store object itself. The byte layouts are in docs/client.md; the codec is
 * client/store_codec.h, the file I/O client/store_file.h, the key handling
 * client/store_key.h, the snapshot and log client/store_log.h.
 */
#ifndef FEDREC_CLIENT_STORE_INTERNAL_H
#define FEDREC_CLIENT_STORE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <sodium.h>

#include "client/store.h"

#define META_NAME "meta"
#define SNAP_NAME "snapshot"
#define LOG_NAME "log"
#define TMP_SUFFIX ".tmp"

#define META_MAGIC "FEDRECM1"
#define SNAP_MAGIC "FRSNAP01"
#define LOG_MAGIC_V1 "FRLOG001" /* no event counter: read, never appended to */
#define LOG_MAGIC "FRLOG002"    /* with the committed-event counter */
#define META_VERSION 1u
#define STATE_VERSION                                                                              \
    6u                        /* 2: the model carries its retired rows; 3: flags; 4: DP rounds;    \
                                 5: ledger entries carry kind, refusal, n, k, t, reason;           \
                                 6: the model carries its checksum */
#define STATE_VERSION_MIN 1u  /* versions 1 and 2 still open */
#define STATE_FLAG_HAS_LOG 1u /* the directory holds a log whenever this snapshot is current */
#define META_BYTES 112u
#define META_SUM_OFF 96u
#define PREFIX_BYTES 32u /* magic(8) | store id(16) | generation(8): the AD */
#define SS_HEADER crypto_secretstream_xchacha20poly1305_HEADERBYTES
#define SS_ABYTES crypto_secretstream_xchacha20poly1305_ABYTES
#define FILE_HEADER_BYTES (PREFIX_BYTES + SS_HEADER)
#define COUNT_MAC_BYTES 16u
#define COUNT_SLOT_BYTES (8u + COUNT_MAC_BYTES) /* u64 count | keyed BLAKE2b-128 */
#define LOG_HEADER_BYTES (FILE_HEADER_BYTES + 2u * COUNT_SLOT_BYTES)
#define SNAP_CHUNK (1u << 20)      /* plaintext bytes per snapshot message */
#define LOG_FRAME_MAX (1u << 16)   /* a log event is far smaller than this */
#define FILE_MAX ((size_t)1 << 31) /* refuse to read larger files */
#define COMPACT_EVERY 4096u

/* Log record types. REC_LEDGER (the first layout) is still read; new
 * ledger entries are written as REC_LEDGER2 (with kind, refusal, n, k, t,
 * reason). */
enum {
    REC_PURCHASE = 1,
    REC_PARTICIPATION = 2,
    REC_LEDGER = 3,
    REC_USER_FACTORS = 4,
    REC_DP = 5, /* a differentially private round (fedreci_dp_ledger_rec) */
    REC_LEDGER2 = 6
};

/* Secret material, one sodium_malloc block. */
typedef struct store_keys {
    uint8_t master[FEDRECI_STORE_KEY_BYTES];
    uint8_t stream[crypto_secretstream_xchacha20poly1305_KEYBYTES];
    uint8_t sign_sk[FEDRECI_SIGN_SK_BYTES];
    uint8_t count[crypto_generichash_KEYBYTES]; /* MACs the log's event counter */
} store_keys;

struct fedreci_store {
    char *dir;
    int meta_fd; /* holds the flock */
    int log_fd;  /* -1 until the first append of this process */
    /* 1 when the next append must start a new log (compaction): the log on
     * disk is stale, of format 1, has a torn or lost tail, or an append
     * failed. 0: the log is current and push continues its stream. */
    int log_broken;
    uint64_t log_events; /* complete events in the current log */
    uint64_t log_end;    /* byte offset just past the last complete frame */
    uint64_t lost;       /* committed events found missing at open (FEDRECI_OPEN_KEEP_PARTIAL) */
    /* 1 once a log file is known to be in the directory: from then on it is
     * only ever replaced by rename, never removed (except by forget), so every
     * snapshot written says so (STATE_FLAG_HAS_LOG) and an open that finds no
     * log refuses the store. snap_has_log: the flag of the current snapshot. */
    int has_log;
    int snap_has_log;
    uint64_t gen;
    uint8_t store_id[FEDRECI_STORE_ID_BYTES];
    store_keys *keys;
    crypto_secretstream_xchacha20poly1305_state *push; /* sodium_malloc */
    uint8_t log_prefix[PREFIX_BYTES];

    /* state */
    int opted_in;
    uint8_t sign_pk[FEDRECI_SIGN_PK_BYTES];
    uint64_t next_seq;
    fedreci_store_purchase *purchases;
    size_t n_purchases, cap_purchases;
    fedreci_ledger_rec *ledger;
    size_t n_ledger, cap_ledger;
    fedreci_dp_ledger_rec *dp;
    size_t n_dp, cap_dp;
    float *x;
    uint32_t xk;
    fedreci_store_model *model;
};

#endif /* FEDREC_CLIENT_STORE_INTERNAL_H */
