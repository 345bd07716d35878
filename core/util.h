/* Small helpers shared by the core, the client and the coordinator. */
#ifndef FEDREC_CORE_UTIL_H
#define FEDREC_CORE_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Index of id in ids[0..n-1] (sorted ascending, distinct), or -1.
 * O(log n). This function can't fail. */
long fedreci_find_u64(const uint64_t *ids, size_t n, uint64_t id);

/* The absolute CLOCK_REALTIME time `ms` milliseconds from now (ms >= 0), as
 * pthread_cond_timedwait expects it. This function can't fail. */
void fedreci_deadline_after_ms(struct timespec *ts, int ms);

/* Makes the C library's heap keep freed memory for reuse: with glibc,
 * blocks up to 32 MiB come from the heap instead of their own mmap
 * (M_MMAP_THRESHOLD), and free() hands the heap back to the system only
 * above 128 MiB of free space at its top (M_TRIM_THRESHOLD) and keeps
 * 64 MiB at the top of every arena (M_TOP_PAD; a thread's arena is
 * otherwise shrunk, or its extra heap unmapped, as soon as it is free).
 * For processes that allocate and free 0.5 MB buffers per client and
 * round (the coordinator, the benches): without it each such buffer is
 * faulted in again page by page (docs/scale.md, "The service path").
 * The process keeps up to its peak heap until malloc_trim (the
 * coordinator trims on a timer, engine_internal.h). Call it once at
 * startup, before any thread; elsewhere than glibc it does nothing. This
 * function can't fail (a setting glibc refuses is left at its default). */
void fedreci_heap_keep_freed(void);

#endif
