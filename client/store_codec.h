/*
 * client/store_codec: the byte codec of the local store (internal).
 *
 * Growable write buffers and bounded read cursors over little-endian
 * integers, float32 bit patterns and length-prefixed strings; the encoding of
 * the store's records (purchase, ledger entry) and of its whole state (a
 * snapshot's plaintext), and the application of one log event to the state.
 * The byte layouts are in docs/client.md. Nothing here touches a file or a
 * key.
 *
 * Buffers hold the shopper's data, so every buffer this file frees is wiped
 * first. Thread-safety: none of these functions keeps state; a buffer or a
 * store is used by one thread at a time.
 */
#ifndef FEDREC_CLIENT_STORE_CODEC_H
#define FEDREC_CLIENT_STORE_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "client/store_internal.h"

/* A growable write buffer. Zero-initialize it ({0}); a failed growth sets oom
 * and makes every later write a no-op, so a caller checks oom once at the
 * end. fedreci_wb_free wipes and frees it (the struct may be reused). */
typedef struct fedreci_wbuf {
    uint8_t *p;
    size_t len, cap;
    int oom;
} fedreci_wbuf;

/* A read cursor over len bytes at p from offset off. Reading past the end
 * sets bad and returns zeros from then on; a caller checks bad once. */
typedef struct fedreci_rbuf {
    const uint8_t *p;
    size_t len, off;
    int bad;
} fedreci_rbuf;

static inline void put_u64le(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint64_t get_u64le(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static inline void put_u32le(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint32_t get_u32le(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Wipes n bytes at p and frees p; NULL is a no-op. */
void fedreci_wipe_free(void *p, size_t n);

/* Grows *arr (an array of *cap entries of elem bytes) to hold at least need
 * entries, doubling; the old copy is wiped. Returns 0, or -1 on overflow or
 * out of memory (then *arr and *cap are unchanged). */
int fedreci_secure_grow(void **arr, size_t *cap, size_t need, size_t elem);

void fedreci_wb_put(fedreci_wbuf *b, const void *d, size_t n);
void fedreci_wb_u8(fedreci_wbuf *b, uint8_t v);
void fedreci_wb_u32(fedreci_wbuf *b, uint32_t v); /* little-endian */
void fedreci_wb_u64(fedreci_wbuf *b, uint64_t v); /* little-endian */
/* n float32 values as their little-endian bit patterns. */
void fedreci_wb_floats(fedreci_wbuf *b, const float *f, size_t n);
/* u8 length, then the bytes (no NUL); s is at most 255 bytes. */
void fedreci_wb_str(fedreci_wbuf *b, const char *s);
void fedreci_wb_free(fedreci_wbuf *b);

/* Returns a pointer to the next n bytes and advances, or NULL (and sets bad)
 * when fewer remain. */
const uint8_t *fedreci_rb_take(fedreci_rbuf *r, size_t n);
uint8_t fedreci_rb_u8(fedreci_rbuf *r);
uint32_t fedreci_rb_u32(fedreci_rbuf *r);
uint64_t fedreci_rb_u64(fedreci_rbuf *r);
void fedreci_rb_floats(fedreci_rbuf *r, float *f, size_t n);
/* A string written by fedreci_wb_str of at most max bytes into out (max + 1
 * bytes, NUL-terminated). Longer, or holding a NUL: bad. */
void fedreci_rb_str(fedreci_rbuf *r, char *out, size_t max);

/* The record bodies shared by the snapshot and the log events. */
void fedreci_store_encode_purchase(fedreci_wbuf *b, const fedreci_store_purchase *p);
void fedreci_store_encode_ledger(fedreci_wbuf *b, const fedreci_ledger_rec *l);
/* A differentially private round's record (after its type byte): times,
 * round, flags, the nine doubles as little-endian binary64, the reason. */
void fedreci_store_encode_dp(fedreci_wbuf *b, const fedreci_dp_ledger_rec *l);

/* 1 when the retired rows are strictly ascending and below n_items. */
int fedreci_store_retired_ok(const uint32_t *rows, uint32_t n, uint32_t n_items);
/* 1 when n_items x k is within the model caps (FEDRECI_MODEL_MAX_*). */
int fedreci_store_model_dims_ok(uint32_t n_items, uint32_t k);
/* Sets m->checksum: the unkeyed BLAKE2b-256 of y (n_items x k float32). */
void fedreci_store_model_checksum(fedreci_store_model *m);
/* Frees a model and its arrays; NULL is a no-op. */
void fedreci_store_model_free(fedreci_store_model *m);

/* Applies one log event (type byte, then its body; n bytes at p) to the
 * in-memory state of s. Returns FEDREC_ERR_FORMAT (without a message) when
 * the event is malformed or out of order (a purchase seq not above the last
 * one), FEDREC_ERR_NOMEM (without a message); s is unchanged on error. */
FEDREC_NODISCARD fedrec_err fedreci_store_apply_record(fedreci_store *s, const uint8_t *p,
                                                       size_t n);

/* Appends the plaintext of a snapshot of s (format STATE_VERSION) to b; the
 * caller checks b->oom. */
void fedreci_store_encode_state(const fedreci_store *s, fedreci_wbuf *b);

/* Decodes a snapshot's plaintext (n bytes, versions STATE_VERSION_MIN..
 * STATE_VERSION) into s, which holds the empty state. FEDREC_ERR_FORMAT
 * (without a message) when malformed, FEDREC_ERR_NOMEM; on error s may hold
 * part of the state, released by fedreci_store_state_free. */
FEDREC_NODISCARD fedrec_err fedreci_store_decode_state(fedreci_store *s, const uint8_t *p,
                                                       size_t n);

/* Wipes and frees the state arrays of s (purchases, ledger, x_u, model) and
 * leaves it empty; the keys and files are untouched. */
void fedreci_store_state_free(fedreci_store *s);

#endif /* FEDREC_CLIENT_STORE_CODEC_H */
