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

#endif
