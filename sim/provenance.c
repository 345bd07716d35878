/* fedrec-sim: the provenance of a run's outputs (see sim.h). */
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "core/err.h"
#include "sim/sim.h"

#ifndef FEDREC_GIT_COMMIT
#define FEDREC_GIT_COMMIT "unknown"
#endif

static int g_argc;
static char **g_argv;

void fedreci_sim_set_command_line(int argc, char **argv)
{
    g_argc = argc;
    g_argv = argv;
}

/* Appends arg to buf (len used of cap), single-quoted when it holds anything
 * but letters, digits and -_./=:,@+%. Returns 0, -1 when it does not fit. */
static int append_arg(char *buf, size_t cap, size_t *len, const char *arg)
{
    int plain = *arg != 0;
    for (const char *c = arg; *c; c++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,@+%", *c))
            plain = 0;
    size_t n = *len;
    if (n && n + 1 < cap)
        buf[n++] = ' ';
    if (!plain && n + 1 < cap)
        buf[n++] = '\'';
    for (const char *c = arg; *c && n + 5 < cap; c++) {
        if (*c == '\'' && !plain) { /* ' -> '\'' */
            memcpy(buf + n, "'\\''", 4);
            n += 4;
        } else {
            buf[n++] = *c;
        }
    }
    if (!plain && n + 1 < cap)
        buf[n++] = '\'';
    buf[n < cap ? n : cap - 1] = 0;
    *len = n;
    return n + 5 < cap ? 0 : -1;
}

static fedrec_err sha256_file(const char *path, char hex[65])
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return fedreci_error(FEDREC_ERR_IO, "%s: cannot open for its SHA-256", path);
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    unsigned char buf[1 << 16], out[crypto_hash_sha256_BYTES];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        crypto_hash_sha256_update(&st, buf, n);
    int bad = ferror(f);
    fclose(f);
    if (bad)
        return fedreci_error(FEDREC_ERR_IO, "%s: read error while hashing", path);
    crypto_hash_sha256_final(&st, out);
    sodium_bin2hex(hex, 65, out, sizeof out);
    return FEDREC_OK;
}

fedrec_err fedreci_sim_provenance_init(fedreci_sim_provenance *p, const char *data)
{
    memset(p, 0, sizeof *p);
    p->version = fedrec_version();
    p->commit = FEDREC_GIT_COMMIT;
    size_t len = 0;
    for (int i = 0; i < g_argc; i++)
        if (append_arg(p->command_line, sizeof p->command_line, &len,
                       i == 0 ? "fedrec-sim" : g_argv[i])) {
            snprintf(p->command_line + sizeof p->command_line - 5, 5, " ...");
            break;
        }
    time_t now = time(NULL);
    struct tm tm;
    if (!gmtime_r(&now, &tm) ||
        !strftime(p->started_utc, sizeof p->started_utc, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(p->started_utc, sizeof p->started_utc, "unknown");
    p->cores = sysconf(_SC_NPROCESSORS_ONLN);
    struct utsname u;
    snprintf(p->machine, sizeof p->machine, "unknown");
    if (uname(&u) == 0) {
        size_t n = 0;
        const char *parts[3] = {u.sysname, u.release, u.machine};
        for (int i = 0; i < 3; i++) {
            size_t l = strnlen(parts[i], sizeof p->machine);
            if (n + l + 2 > sizeof p->machine)
                break;
            if (n)
                p->machine[n++] = ' ';
            memcpy(p->machine + n, parts[i], l);
            n += l;
            p->machine[n] = 0;
        }
    }
    return sha256_file(data, p->input_sha256);
}

/* Writes s with control bytes as '?', so that a value stays on its line. */
static void one_line(FILE *f, const char *s)
{
    for (; *s; s++)
        fputc((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s, f);
}

void fedreci_sim_provenance_csv(FILE *f, const fedreci_sim_provenance *p)
{
    fprintf(f, "# fedrec_version: %s\n# git_commit: %s\n# command_line: ", p->version, p->commit);
    one_line(f, p->command_line);
    fprintf(f, "\n# input_sha256: %s\n# started_utc: %s\n# machine_cores: %ld\n# machine: ",
            p->input_sha256, p->started_utc, p->cores);
    one_line(f, p->machine);
    fputc('\n', f);
}
