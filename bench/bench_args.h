/* Option parsing shared by the fedrec-bench suites (header-only because
 * bench/CMakeLists.txt compiles only bench_*.c files and main.c).
 *
 * Each suite parses its argv (argv[0] is the suite name) with getopt_long,
 * so `--flag value` and `--flag=value` both work, and converts values with
 * core/opt.h's parsers: a whole decimal integer or finite real within the
 * stated range, else "fedrec-bench SUITE: FLAG: 'VALUE' is ..." naming the
 * range on stderr and exit status 2. Not thread-safe (getopt's state); the
 * suites parse from main's thread before any work. */
#ifndef FEDREC_BENCH_ARGS_H
#define FEDREC_BENCH_ARGS_H

#include <stdio.h>

#include "core/opt.h"
#include "fedrec/fedrec.h"

/* Prints the pending error (fedrec_errmsg) for the suite; returns the exit
 * status 2. */
static inline int bench_usage_error(const char *suite)
{
    fprintf(stderr, "fedrec-bench %s: %s\n", suite, fedrec_errmsg());
    return 2;
}

/* The error for getopt_long's return c, or for an operand at argv[optind]
 * when c is -1 (no suite takes operands); returns the exit status 2. */
static inline int bench_getopt_error(const char *suite, int c, int argc, char **argv,
                                     const struct option *lo)
{
    if (c == -1 && optind < argc)
        fprintf(stderr, "fedrec-bench %s: unexpected argument '%s'\n", suite, argv[optind]);
    else if (fedreci_opt_getopt_error(c, argv, lo))
        return bench_usage_error(suite);
    return 2;
}

#endif
