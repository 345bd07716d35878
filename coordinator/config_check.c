/* Cross-key validation of the configuration (apart from config.c so that the
 * parser alone does not link core/secagg). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <stdlib.h>

#include <sodium.h>

#include "config.h"
#include "core/err.h"
#include "engine.h"

int fedreci_config_step(const fedreci_config *c)
{
    if (!c->step || strcmp(c->step, "adam") == 0)
        return FEDRECI_OPT_ADAM;
    if (strcmp(c->step, "als") == 0)
        return FEDRECI_OPT_ALS;
    return -1;
}

/* Whether nng URL u carries traffic between hosts in clear: anything but
 * tls+..., ipc:// and inproc:// (the last two are local sockets, guarded by
 * file permissions or the process). */
static int plaintext_net(const char *u)
{
    return strncmp(u, "tls+", 4) != 0 && strncmp(u, "ipc://", 6) != 0 &&
           strncmp(u, "inproc://", 9) != 0;
}

int fedreci_config_reshuffle(const fedreci_config *c)
{
    if (!c->selection || strcmp(c->selection, "uniform") == 0)
        return 0;
    if (strcmp(c->selection, "reshuffle") == 0)
        return 1;
    return -1;
}

int fedreci_config_role(const fedreci_config *c)
{
    if (!c->role || strcmp(c->role, "single") == 0)
        return FEDRECI_ROLE_SINGLE;
    if (strcmp(c->role, "master") == 0)
        return FEDRECI_ROLE_MASTER;
    if (strcmp(c->role, "aggregator") == 0)
        return FEDRECI_ROLE_AGGREGATOR;
    return -1;
}

fedrec_err fedreci_config_agg_keys(const fedreci_config *c, uint8_t (**keys)[32], size_t *n)
{
    *keys = NULL;
    *n = 0;
    const char *s = c->agg_keys ? c->agg_keys : "";
    size_t cap = 1;
    for (const char *p = s; *p; p++)
        cap += *p == ',';
    uint8_t(*k)[32] = calloc(cap, sizeof *k);
    if (!k)
        return fedreci_error(FEDREC_ERR_NOMEM, "aggregator-keys: out of memory");
    size_t m = 0;
    for (const char *p = s; *p;) {
        while (*p == ' ' || *p == '\t')
            p++;
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        size_t got = 0;
        if (len != 64 || sodium_hex2bin(k[m], 32, p, len, NULL, &got, NULL) != 0 || got != 32) {
            free(k);
            return fedreci_error(FEDREC_ERR_PARSE,
                                 "aggregator-keys: entry %zu '%.*s' is not 64 hex digits (an "
                                 "Ed25519 public key)",
                                 m + 1, (int)(len > 80 ? 80 : len), p);
        }
        m++;
        if (!end)
            break;
        p = end + 1;
    }
    *keys = k;
    *n = m;
    return FEDREC_OK;
}

fedrec_err fedreci_config_master_key(const fedreci_config *c, uint8_t pk[32])
{
    if (!c->master_key || !c->master_key[0])
        return fedreci_error(FEDREC_ERR_INVALID,
                             "role aggregator needs master-key (the master's public key, which "
                             "the master logs at start)");
    const char *p = c->master_key;
    while (*p == ' ' || *p == '\t')
        p++;
    size_t len = strlen(p);
    while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
        len--;
    size_t got = 0;
    if (len != 64 || sodium_hex2bin(pk, 32, p, len, NULL, &got, NULL) != 0 || got != 32)
        return fedreci_error(FEDREC_ERR_PARSE,
                             "master-key: '%.*s' is not 64 hex digits (an Ed25519 public key)",
                             (int)(len > 80 ? 80 : len), p);
    return FEDREC_OK;
}

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
    int role = fedreci_config_role(c);
    if (role < 0)
        return fedreci_error(FEDREC_ERR_INVALID, "role: '%s' is not single, master or aggregator",
                             c->role);
    if (role == FEDRECI_ROLE_MASTER) {
        if (!c->agg_listen)
            return fedreci_error(FEDREC_ERR_INVALID,
                                 "role master needs aggregator-listen (the URL aggregators dial)");
        uint8_t(*keys)[32];
        size_t nk;
        fedrec_err e = fedreci_config_agg_keys(c, &keys, &nk);
        if (e)
            return e;
        free(keys);
        if (nk == 0)
            return fedreci_error(FEDREC_ERR_INVALID,
                                 "role master needs aggregator-keys (at least one aggregator)");
        if (!c->identity_key)
            return fedreci_error(FEDREC_ERR_INVALID,
                                 "role master needs identity-key (a file for the key that signs "
                                 "its replies to aggregators)");
        /* the link carries group sums and the model: require-tls covers it
           as it covers the client listeners */
        if (c->require_tls && plaintext_net(c->agg_listen))
            return fedreci_error(FEDREC_ERR_INVALID,
                                 "aggregator-listen: '%s' is plaintext and require-tls is 1 (use "
                                 "tls+tcp://)",
                                 c->agg_listen);
        if (strncmp(c->agg_listen, "tls+", 4) == 0 && !c->tls_cert)
            return fedreci_error(FEDREC_ERR_INVALID,
                                 "aggregator-listen: '%s' needs tls-cert and tls-key",
                                 c->agg_listen);
        if (c->group_size < c->min_cohort)
            return fedreci_error(FEDREC_ERR_RANGE,
                                 "group-size (%u) is below min-cohort (%u): no group may be "
                                 "smaller than the minimum cohort",
                                 c->group_size, c->min_cohort);
    }
    if (role != FEDRECI_ROLE_SINGLE && c->dp_epsilon > 0)
        return fedreci_error(FEDREC_ERR_INVALID,
                             "dp-epsilon with role %s: differential privacy does not run with "
                             "SecAgg groups in this version (the master sees every group's "
                             "unmasked sum: each group would be a release of its own, its noise "
                             "covering the group's smallest accepted survivor count, and G "
                             "groups would put G times the noise variance one cohort-wide round "
                             "needs into the model; docs/privacy.md)",
                             c->role);
    int resh = fedreci_config_reshuffle(c);
    if (resh < 0)
        return fedreci_error(FEDREC_ERR_INVALID, "selection: '%s' is not uniform or reshuffle",
                             c->selection);
    if (resh && c->dp_epsilon > 0)
        return fedreci_error(FEDREC_ERR_INVALID,
                             "selection reshuffle with dp-epsilon: the privacy accountant assumes "
                             "each round samples the clients independently; set selection = "
                             "uniform");
    int step = fedreci_config_step(c);
    if (step < 0)
        return fedreci_error(FEDREC_ERR_INVALID, "step: '%s' is not adam or als", c->step);
    if (step == FEDRECI_OPT_ALS && c->dp_epsilon > 0)
        return fedreci_error(FEDREC_ERR_INVALID,
                             "step als with dp-epsilon: a differentially private round releases "
                             "the DP-ALS statistics and takes their own item step "
                             "(docs/privacy.md); set step = adam");
    if (step == FEDRECI_OPT_ALS && role != FEDRECI_ROLE_SINGLE)
        return fedreci_error(FEDREC_ERR_INVALID,
                             "step als with role %s: the SecAgg groups' link does not carry the "
                             "x_u x_u^T block in this version; set step = adam",
                             c->role);
    if (step == FEDRECI_OPT_ALS && c->factors > 256)
        return fedreci_error(FEDREC_ERR_RANGE, "step als with factors %u: at most 256", c->factors);
    if (role == FEDRECI_ROLE_AGGREGATOR) {
        if (!c->master)
            return fedreci_error(FEDREC_ERR_INVALID,
                                 "role aggregator needs master (the master's aggregator URL)");
        if (!c->identity_key)
            return fedreci_error(FEDREC_ERR_INVALID,
                                 "role aggregator needs identity-key (a file for its key)");
        uint8_t mpk[32];
        fedrec_err e = fedreci_config_master_key(c, mpk);
        if (e)
            return e;
        if (c->require_tls && plaintext_net(c->master))
            return fedreci_error(FEDREC_ERR_INVALID,
                                 "master: '%s' is plaintext and require-tls is 1 (use tls+tcp:// "
                                 "with master-ca)",
                                 c->master);
        if (strncmp(c->master, "tls+", 4) == 0 && !c->master_ca)
            return fedreci_error(FEDREC_ERR_INVALID,
                                 "master: '%s' needs master-ca (the CA file that verifies the "
                                 "master's certificate)",
                                 c->master);
        if (c->master_ca && !readable(c->master_ca))
            return fedreci_error(FEDREC_ERR_IO, "master-ca: '%s': cannot read: %s", c->master_ca,
                                 strerror(errno));
        /* the URL members are told is announced before the first group
           starts the client listeners: a kernel-chosen port is not known */
        const char *pub = c->public_url ? c->public_url : c->n_listen ? c->listen[0] : "";
        size_t pl = strlen(pub);
        if (pl >= 2 && strcmp(pub + pl - 2, ":0") == 0)
            return fedreci_error(FEDREC_ERR_INVALID,
                                 "role aggregator: members would be told '%s' (port 0: the port "
                                 "is chosen only when the first group starts); set a fixed port "
                                 "in listen or public-url",
                                 pub);
    }
    /* the SecAgg parameters must hold for the largest round (the budget) and
     * for the smallest one that may run (threshold against capped k); with
     * groups the largest SecAgg instance is a group (the master adds group
     * sums in 64 bits: core/secagg/groups.h) */
    uint32_t largest = c->cohort;
    if (role == FEDRECI_ROLE_MASTER && c->group_size < largest)
        largest = c->group_size;
    if (role == FEDRECI_ROLE_AGGREGATOR)
        largest = c->max_group;
    uint32_t sizes[2] = {largest, c->min_cohort};
    for (int i = 0; i < 2; i++) {
        fedreci_secagg_params p;
        fedreci_config_secagg_params(c, sizes[i], 2, &p);
        fedrec_err e = fedreci_secagg_params_check(&p);
        char why[600];
        snprintf(why, sizeof why, "%s", fedrec_errmsg());
        if (e)
            return fedreci_error(
                e, "%s (%u) with neighbors %u, threshold %u, clip %g, scale %g: %s",
                i == 0 ? (largest == c->cohort ? "cohort" : "group") : "min-cohort", sizes[i], p.k,
                p.t, c->clip, c->scale, why);
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
        else if (c->require_tls && plaintext_net(u))
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
