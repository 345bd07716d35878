/* Internal logging: one line per event, "LEVEL [round N] message", to stderr
 * unless a sink is installed. Lines start with a UTC timestamp, except when
 * stderr is the systemd journal's stream (JOURNAL_STREAM names its device and
 * inode): then they start with the syslog priority "<3>", "<4>", "<6>" or
 * "<7>" (error, warn, info, debug) for journald, which timestamps them. Never logs secrets: callers
 * pass only public values (ids, counts, sizes, timings). Thread-safe. */
#ifndef FEDREC_CORE_LOG_H
#define FEDREC_CORE_LOG_H

#include <stdint.h>

typedef enum fedreci_log_level {
    FEDRECI_LOG_ERROR = 0,
    FEDRECI_LOG_WARN = 1,
    FEDRECI_LOG_INFO = 2,
    FEDRECI_LOG_DEBUG = 3,
} fedreci_log_level;

/* Messages above `level` are dropped. Default: FEDRECI_LOG_WARN. */
void fedreci_log_set_level(fedreci_log_level level);
fedreci_log_level fedreci_log_get_level(void);

/* Parses "error", "warn", "info" or "debug"; returns -1 when unknown. */
int fedreci_log_parse_level(const char *name);

/* round < 0 means "no round". */
void fedreci_log(fedreci_log_level level, int64_t round, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
