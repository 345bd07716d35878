/* Strict parsing of fedrec-bench flag values (shared by the bench_*.c
 * suites; header-only because bench/CMakeLists.txt compiles only
 * bench_*.c files and main.c).
 *
 * Each parser accepts only a whole string that is a number within [lo, hi]
 * (no sign for integers, no trailing characters, no NaN or infinity for
 * reals); otherwise it prints "fedrec-bench SUITE: FLAG 'VALUE': ..." naming
 * the allowed range on stderr and returns -1 (the suites then exit 2). On
 * success it writes *out and returns 0. Not thread-safe only in that it
 * uses errno; the suites call it from main's thread before any work. */
#ifndef FEDREC_BENCH_ARGS_H
#define FEDREC_BENCH_ARGS_H

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static inline int bench_parse_u64(const char *suite, const char *flag, const char *s, uint64_t lo,
                                  uint64_t hi, uint64_t *out)
{
    char *end = NULL;
    unsigned long long v = 0;
    int ok = s && isdigit((unsigned char)s[0]); /* strtoull accepts "-5" and " 5" */
    if (ok) {
        errno = 0;
        v = strtoull(s, &end, 10);
        ok = errno == 0 && *end == '\0' && v >= lo && v <= hi;
    }
    if (!ok) {
        fprintf(stderr, "fedrec-bench %s: %s '%s': expected an integer from %llu to %llu\n", suite,
                flag, s ? s : "", (unsigned long long)lo, (unsigned long long)hi);
        return -1;
    }
    *out = v;
    return 0;
}

static inline int bench_parse_u32(const char *suite, const char *flag, const char *s, uint32_t lo,
                                  uint32_t hi, uint32_t *out)
{
    uint64_t v;
    if (bench_parse_u64(suite, flag, s, lo, hi, &v))
        return -1;
    *out = (uint32_t)v;
    return 0;
}

static inline int bench_parse_real(const char *suite, const char *flag, const char *s, double lo,
                                   double hi, double *out)
{
    char *end = NULL;
    double v = 0;
    int ok = s && *s && !isspace((unsigned char)s[0]);
    if (ok) {
        errno = 0;
        v = strtod(s, &end);
        ok = errno == 0 && *end == '\0' && isfinite(v) && v >= lo && v <= hi;
    }
    if (!ok) {
        fprintf(stderr, "fedrec-bench %s: %s '%s': expected a number from %g to %g\n", suite, flag,
                s ? s : "", lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

#endif
