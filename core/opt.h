/* Command-line values and getopt_long errors, the same in every program.
 *
 * Each program parses its argv with getopt_long(3), so `--opt value` and
 * `--opt=value` mean the same everywhere (and `-k 5` / `-k5` for the few
 * short options), and converts each value with the parsers below, so the
 * same mistakes get the same messages. An optstring should start with ':'
 * (getopt_long then returns ':' for a missing value and prints nothing);
 * fedreci_opt_getopt_error turns a '?' or ':' into a message.
 *
 * Parsers: `name` is how the message names the value ("--cohort",
 * "[round] cohort"); `text` is the whole value. On success *out is written
 * and FEDREC_OK returned; otherwise *out is untouched and the error's
 * message (fedrec_errmsg) names the option and quotes the value:
 *   FEDREC_ERR_PARSE   not a number of that kind, at all or in part
 *                      ("12x", "", " 5", "+5", "-5" for an unsigned, "0x10",
 *                      "1e3" for an integer, "nan", "inf")
 *   FEDREC_ERR_RANGE   a number, but outside [min, max] or beyond what the
 *                      type holds ("99999999999999999999")
 * Integers are decimal. Thread-safety: the parsers are reentrant (they use
 * errno); getopt_long's state is global, so parse argv from one thread. */
#ifndef FEDREC_CORE_OPT_H
#define FEDREC_CORE_OPT_H

#include <getopt.h>
#include <stdint.h>

#include "fedrec/fedrec.h"

/* An unsigned integer in [min, max]. */
FEDREC_NODISCARD fedrec_err fedreci_opt_u32(const char *name, const char *text, uint32_t min,
                                            uint32_t max, uint32_t *out);
FEDREC_NODISCARD fedrec_err fedreci_opt_u64(const char *name, const char *text, uint64_t min,
                                            uint64_t max, uint64_t *out);

/* A finite real (strtod syntax, no leading space) in [min, max]. */
FEDREC_NODISCARD fedrec_err fedreci_opt_double(const char *name, const char *text, double min,
                                               double max, double *out);

/* A finite real in (min, max]: for values that must be positive. */
FEDREC_NODISCARD fedrec_err fedreci_opt_double_above(const char *name, const char *text, double min,
                                                     double max, double *out);

/* A truth value: 1, true, yes, on / 0, false, no, off (lower case). */
FEDREC_NODISCARD fedrec_err fedreci_opt_bool(const char *name, const char *text, int *out);

/* Makes the next getopt_long call start a new scan of a new argv at
 * argv[1] (`optind = 0`, which glibc and the BSD getopt_long of macOS, iOS
 * and Android's bionic all take as a full reset) and keeps getopt from
 * printing (opterr = 0). Call it before every parse, since tests and the simulator
 * parse several argv in one process. */
void fedreci_opt_reset(void);

/* The error for getopt_long's return c ('?' or ':'), right after that call,
 * naming the offending option from argv and longopts (the array given to
 * getopt_long): FEDREC_ERR_INVALID with "--name: unknown option",
 * "--name: missing value", "--name: takes no value" or "-k: ...". */
FEDREC_NODISCARD fedrec_err fedreci_opt_getopt_error(int c, char *const argv[],
                                                     const struct option *longopts);

#endif
