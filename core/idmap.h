/* An id map: a hash table from 64-bit ids to 32-bit indexes (for instance
 * rows of an array the caller owns).
 *
 * Open addressing with linear probing in a power-of-two table that doubles
 * when an insertion would take the load factor above 1/2, so a lookup probes
 * about 1.5 slots on average when the id is present and 2.5 when it is not.
 * Ids are hashed with fedreci_rng_mix (splitmix64's finalizer), so
 * sequential or clustered ids spread evenly. Every uint64 id is valid, 0 and
 * UINT64_MAX included. Removal shifts the following entries of the probe run
 * back (no tombstones), so lookups stay as fast after many removals; the
 * table does not shrink.
 *
 * Memory: 16 bytes per slot, at most 4 slots per entry after growth.
 * Thread-safety: none; a map is guarded by its owner's lock. */
#ifndef FEDREC_CORE_IDMAP_H
#define FEDREC_CORE_IDMAP_H

#include <stddef.h>
#include <stdint.h>

#include "fedrec/fedrec.h"

/* The largest index a map may hold. */
#define FEDRECI_IDMAP_MAX_INDEX 0xFFFFFFFEu

typedef struct fedreci_idmap_slot {
    uint64_t id;
    uint32_t index1; /* index + 1; 0 = empty slot */
} fedreci_idmap_slot;

/* A map. All-zero bytes (`fedreci_idmap m = {0};`) is a valid empty map;
 * the fields are private. */
typedef struct fedreci_idmap {
    fedreci_idmap_slot *slots; /* cap slots, NULL while empty */
    size_t cap;                /* 0 or a power of two */
    size_t n;                  /* entries */
} fedreci_idmap;

/* Frees the table and leaves an empty map. NULL is a no-op. */
void fedreci_idmap_fini(fedreci_idmap *m);

/* The number of entries. */
size_t fedreci_idmap_size(const fedreci_idmap *m);

/* Looks up id: returns 1 and writes *index when present, else 0 (and leaves
 * *index alone). This function can't fail. */
int fedreci_idmap_find(const fedreci_idmap *m, uint64_t id, uint32_t *index);

/* Adds id -> index. When id is already present nothing changes and *existing
 * (when non-NULL) receives its index; the return is FEDREC_ERR_DUPLICATE.
 * Errors: FEDREC_ERR_INVALID (index above FEDRECI_IDMAP_MAX_INDEX),
 * FEDREC_ERR_NOMEM (growing the table; the map is unchanged),
 * FEDREC_ERR_DUPLICATE; the message names the id. */
FEDREC_NODISCARD fedrec_err fedreci_idmap_put(fedreci_idmap *m, uint64_t id, uint32_t index,
                                              uint32_t *existing);

/* Removes id: 1 when it was present, 0 when not. This function can't
 * fail. */
int fedreci_idmap_del(fedreci_idmap *m, uint64_t id);

/* Changes the index of an id already present: 1, or 0 when id is absent
 * (nothing added). index must be <= FEDRECI_IDMAP_MAX_INDEX (larger: 0).
 * This function can't fail. */
int fedreci_idmap_set(fedreci_idmap *m, uint64_t id, uint32_t index);

/* Iteration in no particular order: start with *pos = 0; each call writes
 * the next entry to *id and *index and returns 1, or returns 0 after the
 * last. fedreci_idmap_set may be called during an iteration; put and del
 * may not. This function can't fail. */
int fedreci_idmap_next(const fedreci_idmap *m, size_t *pos, uint64_t *id, uint32_t *index);

#endif
