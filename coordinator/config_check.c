/* Cross-key validation of the configuration (apart from config.c so that the
 * parser alone does not link core/secagg). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "core/err.h"

static int readable(const char *path)
{
    return access(path, R_OK) == 0;
}

fedrec_err fedreci_config_check(const fedreci_config *c)
{
    if (c->min_cohort > c->cohort)
        return fedreci_error(FEDREC_ERR_RANGE, "min-cohort (%u) exceeds cohort (%u)", c->min_cohort,
                             c->cohort);
    if (c->neighbors >= c->cohort)
        return fedreci_error(FEDREC_ERR_RANGE, "neighbors (%u) must be below cohort (%u)",
                             c->neighbors, c->cohort);
    /* the SecAgg parameters must hold for the largest round (the budget) and
     * for the smallest one that may run (threshold against capped k) */
    uint32_t sizes[2] = {c->cohort, c->min_cohort};
    for (int i = 0; i < 2; i++) {
        fedreci_secagg_params p;
        fedreci_config_secagg_params(c, sizes[i], 2, &p);
        fedrec_err e = fedreci_secagg_params_check(&p);
        char why[600];
        snprintf(why, sizeof why, "%s", fedrec_errmsg());
        if (e)
            return fedreci_error(
                e, "%s (%u) with neighbors %u, threshold %u, clip %g, scale %g: %s",
                i == 0 ? "cohort" : "min-cohort", sizes[i], p.k, p.t, c->clip, c->scale, why);
    }
    if ((c->dp_epsilon > 0) != (c->dp_delta > 0))
        return fedreci_error(FEDREC_ERR_INVALID,
                             "dp-epsilon (%g) and dp-delta (%g) go together: the budget is "
                             "(epsilon, delta); set both or neither",
                             c->dp_epsilon, c->dp_delta);
    if (c->dp_epsilon > 0 && !c->dp_rounds && !c->rounds)
        return fedreci_error(FEDREC_ERR_INVALID,
                             "dp-epsilon: the noise is calibrated for a number of rounds: set "
                             "dp-rounds (or rounds)");
    if (c->backoff_max_ms < c->backoff_ms)
        return fedreci_error(FEDREC_ERR_RANGE, "backoff-max (%u) is below backoff (%u)",
                             c->backoff_max_ms, c->backoff_ms);
    /* an empty value unsets a string key: for db that leaves no database */
    if (!c->db_path)
        return fedreci_error(FEDREC_ERR_INVALID, "db: empty path (the database file is required)");
    if (c->n_listen == 0)
        return fedreci_error(FEDREC_ERR_INVALID, "listen: no address to accept clients on");
    int tls = 0;
    for (uint32_t i = 0; i < c->n_listen; i++) {
        const char *u = c->listen[i];
        if (strncmp(u, "tls+tcp://", 10) == 0)
            tls = 1;
        else if (c->require_tls && strncmp(u, "ipc://", 6) != 0 && strncmp(u, "inproc://", 9) != 0)
            return fedreci_error(FEDREC_ERR_INVALID,
                                 "listen: '%s' is plaintext and require-tls is 1 (use tls+tcp://)",
                                 u);
        else if (strncmp(u, "tcp://", 6) != 0 && strncmp(u, "ipc://", 6) != 0 &&
                 strncmp(u, "inproc://", 9) != 0 && strncmp(u, "tcp4://", 7) != 0 &&
                 strncmp(u, "tcp6://", 7) != 0)
            return fedreci_error(FEDREC_ERR_INVALID,
                                 "listen: '%s': scheme must be tcp://, tls+tcp://, ipc:// or "
                                 "inproc://",
                                 u);
    }
    if ((c->tls_cert == NULL) != (c->tls_key == NULL))
        return fedreci_error(FEDREC_ERR_INVALID, "tls-cert and tls-key must be given together");
    if (tls && !c->tls_cert)
        return fedreci_error(FEDREC_ERR_INVALID, "listen: tls+tcp:// needs tls-cert and tls-key");
    if (c->tls_cert && !readable(c->tls_cert))
        return fedreci_error(FEDREC_ERR_IO, "tls-cert: '%s': cannot read: %s", c->tls_cert,
                             strerror(errno));
    if (c->tls_key && !readable(c->tls_key))
        return fedreci_error(FEDREC_ERR_IO, "tls-key: '%s': cannot read: %s", c->tls_key,
                             strerror(errno));
    if (c->http && strncmp(c->http, "http://", 7) != 0)
        return fedreci_error(FEDREC_ERR_INVALID, "http: '%s' must be http://HOST:PORT", c->http);
    return FEDREC_OK;
}
