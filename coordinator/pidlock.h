/*
 * coordinator/pidlock: one daemon per database. An exclusive POSIX record
 * lock (fcntl F_SETLK) on "<db>.lock", a file next to the database that
 * records the holder's pid, held until fedreci_pidlock_release or the
 * process's exit (the kernel drops the lock when the process dies, so a
 * crash leaves no stale lock; the file itself stays and is reused).
 *
 * A second instance gets FEDREC_ERR_BUSY at once (no waiting) with a
 * message naming the lock file and the holder's pid, as the kernel reports
 * it (F_GETLK), e.g.
 *   "/var/lib/fedrec/state.sqlite.lock: database in use by pid 4242"
 *
 * The lock is per process: do not open or close the lock file elsewhere in
 * the same process (closing any descriptor of the file drops a POSIX lock).
 * Thread-safety: none needed; acquire once at startup.
 */
#ifndef FEDREC_COORDINATOR_PIDLOCK_H
#define FEDREC_COORDINATOR_PIDLOCK_H

#include "fedrec/fedrec.h"

typedef struct fedreci_pidlock fedreci_pidlock;

/* Locks "<db_path>.lock" (created 0644 when absent) and writes our pid into
 * it. Errors: FEDREC_ERR_BUSY (another process holds it; the message names
 * its pid), FEDREC_ERR_IO (the file cannot be created, locked or written;
 * the message names the file and the system error), FEDREC_ERR_NOMEM,
 * FEDREC_ERR_INVALID (NULL or empty db_path). *out is written only on
 * success. */
FEDREC_NODISCARD fedrec_err fedreci_pidlock_acquire(fedreci_pidlock **out, const char *db_path);

/* Unlocks and closes the lock file (the file stays). NULL is a no-op. */
void fedreci_pidlock_release(fedreci_pidlock *l);

#endif /* FEDREC_COORDINATOR_PIDLOCK_H */
