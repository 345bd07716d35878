/* libFuzzer harness for the coordinator's configuration file: the input is
 * an INI file (written to a temporary file, since inih reads from a path)
 * parsed by fedreci_config_parse as `fedrec-coordinator --config FILE`, then
 * cross-checked with fedreci_config_check. A parse either fails with a
 * message naming the file or yields a configuration whose numbers lie in the
 * documented ranges, and one that passes the check has a database path;
 * nothing may crash or leak. A second pass puts the first
 * line of the input on the command line as a flag, to fuzz the flag parser. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "coordinator/config.h"
#include "core/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_config(const fedreci_config *c)
{
    if (c->n_listen > FEDRECI_CONFIG_MAX_LISTEN)
        abort();
    for (uint32_t i = 0; i < c->n_listen; i++)
        if (!c->listen[i])
            abort();
    /* an empty `db =` unsets the path; the check must then refuse it (the
     * daemon once passed NULL on to SQLite) */
    if (fedreci_config_check(c) == FEDREC_OK && !c->db_path)
        abort();
    fedreci_secagg_params p;
    fedreci_config_secagg_params(c, c->cohort ? c->cohort : 2, 2, &p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int quiet;
    if (!quiet) {
        fedreci_log_set_level(FEDRECI_LOG_ERROR);
        quiet = 1;
    }
    char path[] = "/tmp/fedrec_fuzz_config_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return 0;
    if (write(fd, data, size) != (ssize_t)size) {
        close(fd);
        unlink(path);
        return 0;
    }
    close(fd);
    char *argv[] = {"fedrec-coordinator", "--config", path, NULL};
    fedreci_config *c = NULL;
    if (fedreci_config_parse(&c, 3, argv) == FEDREC_OK) {
        check_config(c);
        fedreci_config_destroy(c);
    }
    unlink(path);

    /* the first line (up to 200 bytes, no NUL) as one "--flag=value" argument */
    size_t n = 0;
    while (n < size && n < 200 && data[n] != '\n' && data[n] != '\0')
        n++;
    char flag[204] = "--";
    memcpy(flag + 2, data, n);
    flag[n + 2] = '\0';
    char *argv2[] = {"fedrec-coordinator", flag, NULL};
    c = NULL;
    if (fedreci_config_parse(&c, 2, argv2) == FEDREC_OK) {
        check_config(c);
        fedreci_config_destroy(c);
    }
    return 0;
}
