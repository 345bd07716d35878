#include "core/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static atomic_int log_level = FEDRECI_LOG_WARN;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

void fedreci_log_set_level(fedreci_log_level level)
{
    atomic_store(&log_level, (int)level);
}

fedreci_log_level fedreci_log_get_level(void)
{
    return (fedreci_log_level)atomic_load(&log_level);
}

int fedreci_log_parse_level(const char *name)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++)
        if (name && strcmp(name, names[i]) == 0)
            return i;
    return -1;
}

/* 1 when stderr is the journal's stream (systemd sets JOURNAL_STREAM to
 * "DEVICE:INODE" of the stream it connected; a stderr redirected elsewhere
 * by the service does not match), 0 otherwise; looked up once. */
static int journal_stderr(void)
{
    static atomic_int cached = -1;
    int v = atomic_load(&cached);
    if (v >= 0)
        return v;
    v = 0;
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    if (js && sscanf(js, "%llu:%llu", &dev, &ino) == 2 && fstat(2, &st) == 0 &&
        (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino)
        v = 1;
    atomic_store(&cached, v);
    return v;
}

void fedreci_log(fedreci_log_level level, int64_t round, const char *fmt, ...)
{
    static const char *const tags[] = {"ERROR", "WARN", "INFO", "DEBUG"};
    if ((int)level > atomic_load(&log_level))
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[32];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    pthread_mutex_lock(&log_lock);
    if (journal_stderr()) {
        /* syslog priorities err(3), warning(4), info(6), debug(7); the
         * journal keeps its own timestamps */
        static const int prio[] = {3, 4, 6, 7};
        if (round >= 0)
            fprintf(stderr, "<%d>%s [round %lld] %s\n", prio[level], tags[level], (long long)round,
                    line);
        else
            fprintf(stderr, "<%d>%s %s\n", prio[level], tags[level], line);
    } else if (round >= 0)
        fprintf(stderr, "%s.%03ldZ %-5s [round %lld] %s\n", when, ts.tv_nsec / 1000000L,
                tags[level], (long long)round, line);
    else
        fprintf(stderr, "%s.%03ldZ %-5s %s\n", when, ts.tv_nsec / 1000000L, tags[level], line);
    pthread_mutex_unlock(&log_lock);
}
