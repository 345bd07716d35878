/*
 * coordinator/model: one committed model version as the coordinator stores
 * and serves it: the item factors Y (n_items x k, row-major float32), its
 * version number and its checksum.
 *
 * Checksum: BLAKE2b-256 (libsodium crypto_generichash, no key) over the
 * little-endian float32 bytes of Y, row-major - the same bytes and the same
 * definition as the wire's ModelReply.item_factors / checksum, so the value
 * stored with a version is the value served with it. (The shape travels
 * beside it as n_items and k.)
 *
 * Ownership: a fedreci_model owns `y` (malloc'd); fedreci_model_clear frees
 * it. Thread-safety: plain data; no internal locking.
 */
#ifndef FEDREC_COORDINATOR_MODEL_H
#define FEDREC_COORDINATOR_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "fedrec/fedrec.h"

#define FEDRECI_MODEL_CHECKSUM_BYTES 32

/* Where a model version came from. */
typedef enum fedreci_model_origin {
    FEDRECI_MODEL_INIT = 0,    /* fresh N(0, 0.01^2) model for the catalog */
    FEDRECI_MODEL_ROUND = 1,   /* optimizer step at the end of a completed round */
    FEDRECI_MODEL_CATALOG = 2, /* item factors grown for new products */
} fedreci_model_origin;

typedef struct fedreci_model {
    uint64_t version;   /* 1, 2, ...; assigned by the database at commit */
    int64_t created_ms; /* Unix time of the commit, milliseconds */
    uint32_t n_items;   /* rows of y */
    uint32_t k;         /* factors, columns of y */
    float *y;           /* n_items x k, owned */
    uint8_t checksum[FEDRECI_MODEL_CHECKSUM_BYTES];
    uint64_t catalog_id; /* catalog version the rows refer to; 0 = none */
    fedreci_model_origin origin;
} fedreci_model;

/* Computes the checksum of y (n_items x k) into out. Cannot fail. */
void fedreci_model_checksum(const float *y, uint32_t n_items, uint32_t k,
                            uint8_t out[FEDRECI_MODEL_CHECKSUM_BYTES]);

/* Serializes y as little-endian float32 words into buf (n_items * k * 4
 * bytes, caller-allocated). Cannot fail. */
void fedreci_model_encode_y(const float *y, size_t n_words, uint8_t *buf);

/* The inverse of fedreci_model_encode_y. Cannot fail. */
void fedreci_model_decode_y(const uint8_t *buf, size_t n_words, float *y);

/* Frees m->y and zeroes *m. NULL is a no-op. */
void fedreci_model_clear(fedreci_model *m);

/* Human-readable origin: "init", "round", "catalog". */
const char *fedreci_model_origin_name(fedreci_model_origin o);

#endif /* FEDREC_COORDINATOR_MODEL_H */
