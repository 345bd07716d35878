/* Command-line value parsers and getopt_long errors; see opt.h. */
#include "core/opt.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

fedrec_err fedreci_opt_u64(const char *name, const char *text, uint64_t min, uint64_t max,
                           uint64_t *out)
{
    /* strtoull skips spaces and takes a sign ("-5" wraps): digits only */
    if (text[0] < '0' || text[0] > '9')
        return fedreci_error(FEDREC_ERR_PARSE, "%s: '%s' is not an integer from %llu to %llu", name,
                             text, (unsigned long long)min, (unsigned long long)max);
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (*end != '\0')
        return fedreci_error(FEDREC_ERR_PARSE, "%s: '%s' is not an integer from %llu to %llu", name,
                             text, (unsigned long long)min, (unsigned long long)max);
    if (errno == ERANGE || v < min || v > max)
        return fedreci_error(FEDREC_ERR_RANGE, "%s: '%s' is not an integer from %llu to %llu", name,
                             text, (unsigned long long)min, (unsigned long long)max);
    *out = (uint64_t)v;
    return FEDREC_OK;
}

fedrec_err fedreci_opt_u32(const char *name, const char *text, uint32_t min, uint32_t max,
                           uint32_t *out)
{
    uint64_t v = 0;
    fedrec_err e = fedreci_opt_u64(name, text, min, max, &v);
    if (e)
        return e;
    *out = (uint32_t)v;
    return FEDREC_OK;
}

static fedrec_err real(const char *name, const char *text, double min, double max, int open,
                       double *out)
{
    const char *rel = open ? ">" : ">=";
    char *end = NULL;
    errno = 0;
    double v = text[0] && text[0] != ' ' && text[0] != '\t' ? strtod(text, &end) : 0.0;
    if (!end || end == text || *end != '\0' || !isfinite(v) || (errno == ERANGE && v != 0.0))
        return fedreci_error(FEDREC_ERR_PARSE, "%s: '%s' is not a number %s %g and <= %g", name,
                             text, rel, min, max);
    if ((open ? v <= min : v < min) || v > max)
        return fedreci_error(FEDREC_ERR_RANGE, "%s: '%s' is not a number %s %g and <= %g", name,
                             text, rel, min, max);
    *out = v;
    return FEDREC_OK;
}

fedrec_err fedreci_opt_double(const char *name, const char *text, double min, double max,
                              double *out)
{
    return real(name, text, min, max, 0, out);
}

fedrec_err fedreci_opt_double_above(const char *name, const char *text, double min, double max,
                                    double *out)
{
    return real(name, text, min, max, 1, out);
}

fedrec_err fedreci_opt_bool(const char *name, const char *text, int *out)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (!strcmp(text, yes[i])) {
            *out = 1;
            return FEDREC_OK;
        }
        if (!strcmp(text, no[i])) {
            *out = 0;
            return FEDREC_OK;
        }
    }
    return fedreci_error(FEDREC_ERR_PARSE, "%s: '%s' is not a truth value (true or false)", name,
                         text);
}

void fedreci_opt_reset(void)
{
    optind = 0;
    opterr = 0;
}

fedrec_err fedreci_opt_getopt_error(int c, char *const argv[], const struct option *longopts)
{
    const char *arg = optind > 0 ? argv[optind - 1] : NULL;
    if (arg && arg[0] == '-' && arg[1] == '-' && arg[2]) {
        const char *eq = strchr(arg, '=');
        int n = eq ? (int)(eq - arg) : (int)strlen(arg);
        if (c == ':')
            return fedreci_error(FEDREC_ERR_INVALID, "%.*s: missing value", n, arg);
        for (const struct option *o = longopts; eq && o && o->name; o++)
            if (o->has_arg == no_argument && (size_t)(n - 2) == strlen(o->name) &&
                !strncmp(arg + 2, o->name, (size_t)(n - 2)))
                return fedreci_error(FEDREC_ERR_INVALID, "%.*s: takes no value", n, arg);
        return fedreci_error(FEDREC_ERR_INVALID, "%.*s: unknown option", n, arg);
    }
    if (c == ':')
        return fedreci_error(FEDREC_ERR_INVALID, "-%c: missing value", optopt);
    if (optopt > 0 && optopt < 256)
        return fedreci_error(FEDREC_ERR_INVALID, "-%c: unknown option", optopt);
    return fedreci_error(FEDREC_ERR_INVALID, "'%s': unknown option", arg ? arg : "?");
}
