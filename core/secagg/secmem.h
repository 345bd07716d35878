/*
 * core/secagg/secmem: secure memory for the SecAgg secrets, recycled.
 *
 * A SecAgg client allocates about a dozen small secret buffers per round
 * (keys, shares, seeds: secagg.h) and a server a few; each sodium_malloc
 * maps fresh pages with guard pages, mprotect and mlock, and each
 * sodium_free unmaps them: about 30 us of system calls per pair, 4-6% of a
 * simulated client-round at d = 117,121 (docs/scale.md). This front end
 * keeps freed blocks, wiped, in a process-wide cache and hands them out
 * again for a request of exactly the same size, so a steady state of rounds
 * makes no system calls. A recycled block is the same sodium_malloc block
 * (guard page right after the caller's last byte, mlocked, canary before
 * it); its contents are zero, where a fresh one holds garbage: callers may
 * rely on neither.
 *
 * The same holds for a buffered client's quantized input (4 d bytes, 0.47 MB
 * at d = 117,121): mapped, mlocked (its pages faulted in) and unmapped
 * every round, about 0.3 ms of a service client-round (docs/scale.md).
 *
 * Bounds: blocks of at most FEDRECI_SECMEM_CACHE_MAX_BLOCK bytes are kept,
 * at most FEDRECI_SECMEM_CACHE_MAX_BYTES in all (the rest go back to
 * sodium_free), in at most FEDRECI_SECMEM_CACHE_SIZES distinct sizes.
 *
 * Thread-safe (one mutex around the cache). sodium_init must have run.
 */
#ifndef FEDREC_CORE_SECAGG_SECMEM_H
#define FEDREC_CORE_SECAGG_SECMEM_H

#include <stddef.h>

#define FEDRECI_SECMEM_CACHE_MAX_BLOCK (4u * 1024u * 1024u)
#define FEDRECI_SECMEM_CACHE_MAX_BYTES (64u * 1024u * 1024u)
#define FEDRECI_SECMEM_CACHE_SIZES 32

/* n bytes (n = 0 is taken as 1) of secure memory, or NULL when the system
 * has none (out of memory or address space). Free with fedreci_secmem_free
 * only (never sodium_free: the block starts with a small header). */
void *fedreci_secmem_alloc(size_t n);

/* Wipes the block and keeps it for reuse, or returns it to the system.
 * NULL is a no-op. */
void fedreci_secmem_free(void *p);

/* Returns every cached block to the system (sodium_free). */
void fedreci_secmem_trim(void);

/* The cache's current content: blocks and their bytes (tests, bench). */
void fedreci_secmem_cached(size_t *blocks, size_t *bytes);

#endif
