/* A string map: interns strings and numbers them 0, 1, 2, ... in the order
 * they are first added (a string -> index hash table plus the index ->
 * string array).
 *
 * Open addressing with linear probing in a power-of-two table that doubles
 * when an insertion would take the load factor above 1/2; strings are
 * hashed with 64-bit FNV-1a and each slot keeps 32 bits of the hash, so a
 * probe compares a string only when the hashes agree. The map owns a copy
 * of every string. Strings may hold any bytes but NUL. Entries are never
 * removed.
 *
 * Thread-safety: none; a map is guarded by its owner. */
#ifndef FEDREC_CORE_STRMAP_H
#define FEDREC_CORE_STRMAP_H

#include <stddef.h>
#include <stdint.h>

#include "fedrec/fedrec.h"

/* The most strings a map may hold. */
#define FEDRECI_STRMAP_MAX 0x7FFFFFFFu

typedef struct fedreci_strmap_slot {
    uint32_t hash; /* low 32 bits of the key's hash */
    uint32_t id1;  /* index + 1; 0 = empty slot */
} fedreci_strmap_slot;

/* A map. All-zero bytes (`fedreci_strmap m = {0};`) is a valid empty map;
 * the fields are private. */
typedef struct fedreci_strmap {
    char **keys;                /* n owned strings; keys[i] has index i */
    fedreci_strmap_slot *slots; /* cap slots */
    uint32_t n, cap_keys;
    size_t cap; /* 0 or a power of two */
} fedreci_strmap;

/* Frees the strings and the table and leaves an empty map. NULL is a
 * no-op. */
void fedreci_strmap_fini(fedreci_strmap *m);

/* The number of strings. */
uint32_t fedreci_strmap_size(const fedreci_strmap *m);

/* The string with index i (NUL-terminated, owned by the map, valid until
 * fedreci_strmap_fini), or NULL when i >= size. */
const char *fedreci_strmap_key(const fedreci_strmap *m, uint32_t i);

/* Looks up the len bytes at s (no NUL needed after them): returns 1 and
 * writes *index when present, else 0. This function can't fail. */
int fedreci_strmap_find(const fedreci_strmap *m, const char *s, size_t len, uint32_t *index);

/* Finds or adds the len bytes at s. *index receives its index; *is_new
 * (when non-NULL) whether it was added now. Errors: FEDREC_ERR_INVALID
 * (a NUL among the len bytes), FEDREC_ERR_TOO_BIG (the map holds
 * FEDRECI_STRMAP_MAX strings), FEDREC_ERR_NOMEM; on error the map is
 * unchanged and the out-parameters are not written. */
FEDREC_NODISCARD fedrec_err fedreci_strmap_intern(fedreci_strmap *m, const char *s, size_t len,
                                                  uint32_t *index, int *is_new);

#endif
