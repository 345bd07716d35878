/* fedrec-sim: reading runs back and statistics across runs (results.h). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/rng.h"
#include "sim/results.h"

/* Parses one `  "key": value,` line into r (numbers and booleans). Returns
 * 0, 1 for the closing brace, -1 for anything else. */
static int member(const char *line, fedreci_sim_result *r)
{
    const char *p = line;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p == '}')
        return 1;
    if (*p == '{')
        p++;
    while (*p == ' ')
        p++;
    if (*p == '\n' || *p == '\r' || !*p)
        return 0; /* the opening brace alone */
    if (*p != '"')
        return -1;
    const char *k = ++p;
    while (*p && *p != '"')
        p += (*p == '\\' && p[1]) ? 2 : 1;
    if (*p != '"' || p[1] != ':')
        return -1;
    size_t klen = (size_t)(p - k);
    p += 2;
    while (*p == ' ')
        p++;
    double v;
    if (!strncmp(p, "true", 4)) {
        v = 1.0;
    } else if (!strncmp(p, "false", 5)) {
        v = 0.0;
    } else if (*p == '"' || !strncmp(p, "null", 4)) {
        return 0; /* a string or null: skipped */
    } else {
        char *end;
        errno = 0;
        v = strtod(p, &end);
        if (end == p || errno)
            return -1;
    }
    if (klen == 4 && !memcmp(k, "seed", 4) && *p >= '0' && *p <= '9') {
        char *end;
        errno = 0;
        unsigned long long s = strtoull(p, &end, 10);
        r->have_seed = !errno && (*end == ',' || *end == '\n' || *end == '\r' || !*end);
        r->seed = s;
    }
    if (r->n < FEDRECI_RESULT_MAX_KEYS && klen < sizeof r->key[0]) {
        memcpy(r->key[r->n], k, klen);
        r->key[r->n][klen] = 0;
        r->value[r->n++] = v;
    }
    return 0;
}

fedrec_err fedreci_sim_result_read(const char *path, fedreci_sim_result *out)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return fedreci_error(FEDREC_ERR_IO, "%s: cannot open", path);
    fedreci_sim_result *r = calloc(1, sizeof *r);
    char line[8192];
    unsigned lineno = 0;
    int closed = 0;
    fedrec_err e = r ? FEDREC_OK : fedreci_error(FEDREC_ERR_NOMEM, "%s: out of memory", path);
    while (!e && !closed && fgets(line, sizeof line, f)) {
        lineno++;
        int m = member(line, r);
        if (m < 0)
            e = fedreci_error(FEDREC_ERR_FORMAT, "%s:%u: not a summary.json member", path, lineno);
        closed = m == 1;
    }
    if (!e && !closed)
        e = fedreci_error(FEDREC_ERR_FORMAT, "%s:%u: the object is not closed", path, lineno);
    fclose(f);
    if (!e)
        *out = *r;
    free(r);
    return e;
}

double fedreci_sim_result_get(const fedreci_sim_result *r, const char *key)
{
    for (size_t i = 0; i < r->n; i++)
        if (!strcmp(r->key[i], key))
            return r->value[i];
    return NAN;
}

int fedreci_sim_run_finished(const char *dir)
{
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/summary.json", dir) >= sizeof path)
        return 0;
    fedreci_sim_result *r = malloc(sizeof *r);
    int ok = r && fedreci_sim_result_read(path, r) == FEDREC_OK &&
             !isnan(fedreci_sim_result_get(r, "wall_seconds"));
    if (!ok)
        fedreci_error_clear();
    free(r);
    return ok;
}

/* The index of name among the comma-separated header fields, or -1. */
static int header_index(char *header, const char *name)
{
    int i = 0;
    for (char *save = NULL, *t = strtok_r(header, ",\r\n", &save); t;
         t = strtok_r(NULL, ",\r\n", &save), i++)
        if (!strcmp(t, name))
            return i;
    return -1;
}

fedrec_err fedreci_sim_rounds_column(const char *path, const char *name, double *out, size_t cap,
                                     size_t *n)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return fedreci_error(FEDREC_ERR_IO, "%s: cannot open", path);
    char line[8192];
    int col = -2;
    size_t rows = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#')
            continue;
        if (col == -2) {
            col = header_index(line, name);
            if (col < 0)
                break;
            continue;
        }
        const char *p = line;
        for (int i = 0; i < col && p; i++) {
            p = strchr(p, ',');
            p = p ? p + 1 : NULL;
        }
        double v = NAN;
        if (p && *p != ',' && *p != '\n' && *p) {
            char *end;
            v = strtod(p, &end);
            if (end == p)
                v = NAN;
        }
        if (rows < cap)
            out[rows] = v;
        rows++;
    }
    fclose(f);
    if (col < 0)
        return fedreci_error(FEDREC_ERR_FORMAT, "%s: no column %s", path, name);
    *n = rows;
    return FEDREC_OK;
}

double fedreci_sim_t975(size_t df)
{
    static const double t[31] = {NAN,   12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365,
                                 2.306, 2.262,  2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
                                 2.120, 2.110,  2.101, 2.093, 2.086, 2.080, 2.074, 2.069,
                                 2.064, 2.060,  2.056, 2.052, 2.048, 2.045, 2.042};
    if (df <= 30)
        return t[df];
    const double z = 1.959964, d = (double)df;
    return z + (z * z * z + z) / (4 * d) + (5 * pow(z, 5) + 16 * z * z * z + 3 * z) / (96 * d * d);
}

void fedreci_sim_stat_of(const double *v, size_t n, fedreci_sim_stat *out)
{
    double s = 0.0;
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (!isnan(v[i])) {
            s += v[i];
            m++;
        }
    fedreci_sim_stat st = {m ? s / (double)m : NAN, NAN, NAN, NAN, m};
    if (m >= 2) {
        double ss = 0.0;
        for (size_t i = 0; i < n; i++)
            if (!isnan(v[i]))
                ss += (v[i] - st.mean) * (v[i] - st.mean);
        st.sd = sqrt(ss / (double)(m - 1));
        double half = fedreci_sim_t975(m - 1) * st.sd / sqrt((double)m);
        st.lo = st.mean - half;
        st.hi = st.mean + half;
    }
    *out = st;
}

uint64_t fedreci_sim_boot_seed(const uint64_t *seeds, size_t n)
{
    if (n == 0)
        return 1;
    if (n == 1)
        return seeds[0];
    uint64_t sum = 0; /* a sum: the same seeds in any order give the same */
    for (size_t i = 0; i < n; i++)
        sum += fedreci_rng_mix(seeds[i]);
    return fedreci_rng_mix(sum + n);
}
