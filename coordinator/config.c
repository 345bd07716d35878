#include "config.h"

#include "coordinator/engine.h"

#include <errno.h>
#include <getopt.h>
#include <ini.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "core/opt.h"

typedef enum opt_type {
    T_STR,  /* char * */
    T_LIST, /* listen URLs */
    T_U32,
    T_U64,
    T_DBL,  /* double, finite */
    T_FLT,  /* float, finite */
    T_LOG,  /* log level name */
    T_PATH, /* --config: handled before the rest */
} opt_type;

typedef struct opt {
    const char *name;    /* flag without "--", INI key */
    const char *section; /* INI section */
    opt_type type;
    size_t offset; /* into fedreci_config */
    double min;    /* numeric range, inclusive */
    double max;
    int min_open;    /* min is exclusive (> min) */
    const char *def; /* default, as text ("" = none) */
    const char *help;
} opt;

#define OFF(field) offsetof(fedreci_config, field)
#define U32MAX 4294967295.0

static const opt opts[] = {
    {"config", "", T_PATH, 0, 0, 0, 0, "", "INI file with any of the keys below"},
    {"listen", "network", T_LIST, OFF(listen), 0, 0, 0, "tcp://127.0.0.1:7450",
     "nng URL to accept clients on (tcp://, tls+tcp://, ipc://); repeatable, up to 16"},
    {"http", "network", T_STR, OFF(http), 0, 0, 0, "",
     "status server address http://HOST:PORT (/healthz, /status, /metrics); empty = off"},
    {"tls-cert", "network", T_STR, OFF(tls_cert), 0, 0, 0, "",
     "PEM certificate chain for tls+tcp:// listeners"},
    {"tls-key", "network", T_STR, OFF(tls_key), 0, 0, 0, "", "PEM private key of --tls-cert"},
    {"require-tls", "network", T_U32, OFF(require_tls), 0, 1, 0, "0",
     "1 = refuse plaintext tcp://: client listeners, a master's aggregator-listen and an "
     "aggregator's master URL (tls+tcp://, ipc:// and inproc:// only)"},
    {"db", "storage", T_STR, OFF(db_path), 0, 0, 0, "fedrec.sqlite",
     "SQLite database (WAL): models, catalog, round log, client registry"},
    {"catalog", "storage", T_STR, OFF(catalog), 0, 0, 0, "",
     "CSV catalog (code,description) merged into the stored one at start"},
    {"cohort", "round", T_U32, OFF(cohort), 2, 1000000, 0, "100", "clients invited per round"},
    {"min-cohort", "round", T_U32, OFF(min_cohort), 2, 1000000, 0, "10",
     "no round runs with fewer checked-in clients"},
    {"rounds", "round", T_U64, OFF(rounds), 0, 1e15, 0, "0", "rounds to run, 0 = forever"},
    {"selection", "round", T_STR, OFF(selection), 0, 0, 0, "uniform",
     "cohort selection: uniform (each round from all waiting clients) or reshuffle (a client "
     "at most once per epoch, the not yet drawn first; fedrec-sim's default with the als step; "
     "not with dp-epsilon)"},
    {"abort-streak", "round", T_U32, OFF(abort_streak), 0, 1000000, 0, "3",
     "rounds aborted in a row that make /healthz fail and the next round wait (backoff); 0 = "
     "never"},
    {"backoff", "round", T_U32, OFF(backoff_ms), 1, 86400000, 0, "5000",
     "ms the next round waits after abort-streak aborts in a row, doubling per further abort"},
    {"backoff-max", "round", T_U32, OFF(backoff_max_ms), 1, 86400000, 0, "300000",
     "cap of that wait, ms"},
    {"seed", "round", T_U64, OFF(seed), 0, 1.8446744073709552e19, 0, "42",
     "seed of the model initialization and of new item rows"},
    {"deadline-checkin", "round", T_U32, OFF(checkin_ms), 1, 86400000, 0, "30000",
     "ms a round waits for check-ins"},
    {"deadline-advertise", "round", T_U32, OFF(deadline_ms[0]), 1, 86400000, 0, "30000",
     "ms for stage 0 (advertise keys); late clients count as dropped"},
    {"deadline-share", "round", T_U32, OFF(deadline_ms[1]), 1, 86400000, 0, "30000",
     "ms for stage 1 (share keys)"},
    {"deadline-masked", "round", T_U32, OFF(deadline_ms[2]), 1, 86400000, 0, "60000",
     "ms for stage 2 (masked input)"},
    {"deadline-unmask", "round", T_U32, OFF(deadline_ms[3]), 1, 86400000, 0, "30000",
     "ms for stage 3 (unmask)"},
    {"neighbors", "secagg", T_U32, OFF(neighbors), 0, 1000000, 0, "0",
     "SecAgg+ neighbours per client, capped at n - 1 for a round of n; 0 = n - 1 (classic SecAgg)"},
    {"threshold", "secagg", T_U32, OFF(threshold), 0, 1000000, 0, "0",
     "Shamir threshold t, k/2 < t <= k for every round size; 0 = ceil(2k/3) per round"},
    {"seed-retries", "secagg", T_U32, OFF(seed_retries), 0, 8, 0, "3",
     "graph seed step re-runs without the members that missed the reveal, per round, before it "
     "aborts; each gives a deviating coordinator one more seed to choose from (log2(R + 1) "
     "bits); clients refuse more than their own bound (default 3)"},
    {"clip", "secagg", T_DBL, OFF(clip), 0, 1e9, 1, "16",
     "gradient entries clipped to [-clip, clip] (a model-quality parameter)"},
    {"scale", "secagg", T_DBL, OFF(scale), 0, 1e12, 1, "65536",
     "quantization scale; cohort * clip * scale must stay below 2^31"},
    {"factors", "model", T_U32, OFF(factors), 1, 1024, 0, "32", "latent factors k"},
    {"step", "model", T_STR, OFF(step), 0, 0, 0, "adam",
     "server step: adam (clients upload their gradient) or als (the gradient and the upper "
     "triangle of x_u x_u^T, k(k+1)/2 more words; the step is preconditioned by the cohort's sum "
     "of them; not with dp-epsilon or SecAgg groups)"},
    {"lr", "model", T_FLT, OFF(lr), 0, 100, 1, "0.01",
     "Adam learning rate, or the als step's step size (fedrec-sim's tuned als setting: 0.2)"},
    {"beta1", "model", T_FLT, OFF(beta1), 0, 0.999, 0, "0.9",
     "Adam first-moment decay or the als step's momentum (fedrec-sim's tuned cohort-500 "
     "settings: adam lr 0.03, beta1 0.5; als 0.2, 0.7)"},
    {"x-bound", "model", T_DBL, OFF(x_bound), 0, 1e6, 1, "8",
     "als step: x_u is clipped to this norm in the uploaded x_u x_u^T block, which is scaled "
     "by clip / x-bound^2 so that no entry reaches clip"},
    {"lambda", "model", T_FLT, OFF(lambda), 0, 1e6, 0, "0.1", "L2 regularization"},
    {"population", "model", T_U32, OFF(n_train), 0, U32MAX, 0, "0",
     "N in the step's 2 (lambda/N) Y; 0 = the number of registered clients"},
    {"dp-epsilon", "privacy", T_DBL, OFF(dp_epsilon), 0, 1e6, 0, "0",
     "differential privacy: the budget epsilon per shopper over all rounds, with dp-delta; "
     "0 = no differential privacy"},
    {"dp-delta", "privacy", T_DBL, OFF(dp_delta), 0, 0.5, 0, "0",
     "delta of the budget, 0 < delta <= 0.5 (with dp-epsilon)"},
    {"dp-rounds", "privacy", T_U32, OFF(dp_rounds), 0, 1000000, 0, "0",
     "rounds the noise is calibrated for (the budget gate refuses more); 0 = rounds"},
    {"dp-min-survivors", "privacy", T_DBL, OFF(dp_min_survivors), 0, 1, 1, "0.8",
     "fraction of the cohort a DP round needs; each client adds noise for that many"},
    {"dp-row-bound", "privacy", T_DBL, OFF(dp_row_bound), 0, 1000, 1, "3",
     "L2 bound R of a shopper's item rows in its DP-ALS contribution"},
    {"dp-gram-weight", "privacy", T_DBL, OFF(dp_gram_weight), 0, 1000, 1, "1",
     "weight g of its Gram part; a contribution's L2 norm is <= sqrt(R^2 + g^2)"},
    {"dp-gram-floor", "privacy", T_DBL, OFF(dp_gram_floor), 0, 1, 0, "0",
     "the item step floors the noised Gram sum's eigenvalues at this fraction of its trace "
     "(and always at its noise's level)"},
    {"max-connections", "limits", T_U32, OFF(max_connections), 0, 1000000, 0, "10000",
     "open client connections in total; beyond, a new one is closed at once; 0 = no cap"},
    {"max-connections-per-address", "limits", T_U32, OFF(max_conns_per_addr), 0, 1000000, 0, "64",
     "open connections per remote IPv4 address or IPv6 /64 (NAT: many phones); 0 = no cap"},
    {"new-ids-per-address-burst", "limits", T_U32, OFF(new_ids_addr_burst), 0, 1000000, 0, "32",
     "check-ins under ids not in the registry, per address: bucket size; 0 = no limit"},
    {"new-ids-per-address-rate", "limits", T_DBL, OFF(new_ids_addr_rate), 0, 1e6, 0, "0.5",
     "new-id bucket refill per address, tokens per second (0 = never refilled)"},
    {"new-ids-burst", "limits", T_U32, OFF(new_ids_burst), 0, 100000000, 0, "2000",
     "check-ins under new ids from all addresses: bucket size; 0 = no limit"},
    {"new-ids-rate", "limits", T_DBL, OFF(new_ids_rate), 0, 1e6, 0, "200",
     "global new-id bucket refill, tokens per second (0 = never refilled)"},
    {"max-clients", "limits", T_U32, OFF(max_clients), 0, U32MAX, 0, "1000000",
     "client ids held in memory; beyond, those checked in least recently are forgotten; "
     "0 = no bound"},
    {"bench-max-rounds", "limits", T_U32, OFF(bench_max_rounds), 0, 1000000000, 0, "1024",
     "a member that withheld a step of a round that aborted for it sits out the next "
     "2^(strikes-1) rounds, at most this many; 0 = nobody is benched"},
    {"role", "groups", T_STR, OFF(role), 0, 0, 0, "single",
     "single (one process runs every round), master (cohorts split into SecAgg groups run by "
     "aggregators) or aggregator"},
    {"master", "groups", T_STR, OFF(master), 0, 0, 0, "",
     "aggregator: the master's aggregator URL to dial (its aggregator-listen)"},
    {"aggregator-listen", "groups", T_STR, OFF(agg_listen), 0, 0, 0, "",
     "master: nng URL aggregators dial (tcp://, tls+tcp:// with tls-cert/tls-key, ipc://)"},
    {"aggregator-keys", "groups", T_STR, OFF(agg_keys), 0, 0, 0, "",
     "master: the aggregators allowed, their Ed25519 public keys in hex, comma-separated"},
    {"identity-key", "groups", T_STR, OFF(identity_key), 0, 0, 0, "",
     "master and aggregator: file holding its Ed25519 key seed in hex (created, mode 0600, "
     "if missing); the master signs its replies to aggregators with it"},
    {"master-key", "groups", T_STR, OFF(master_key), 0, 0, 0, "",
     "aggregator: the master's Ed25519 public key in hex (the master logs it at start); "
     "replies not signed with it are refused"},
    {"public-url", "groups", T_STR, OFF(public_url), 0, 0, 0, "",
     "aggregator: the URL its members are told to dial; empty = the first listen URL"},
    {"master-ca", "groups", T_STR, OFF(master_ca), 0, 0, 0, "",
     "aggregator: CA file that verifies a tls+tcp:// master"},
    {"group-size", "groups", T_U32, OFF(group_size), 2, 1000000, 0, "500",
     "master: members per SecAgg group at most (fewer groups if one would fall below "
     "min-cohort)"},
    {"min-groups", "groups", T_U32, OFF(min_groups), 1, 65536, 0, "1",
     "master: groups that must finish for a round to commit (a failed group is dropped whole)"},
    {"max-group", "groups", T_U32, OFF(max_group), 2, 1000000, 0, "1000",
     "aggregator: the largest group it takes"},
    {"log-level", "log", T_LOG, OFF(log_level), 0, 0, 0, "info", "error, warn, info or debug"},
};

#define N_OPTS (sizeof opts / sizeof opts[0])

static const opt *find_opt(const char *name)
{
    for (size_t i = 0; i < N_OPTS; i++)
        if (strcmp(opts[i].name, name) == 0)
            return &opts[i];
    return NULL;
}

void fedreci_config_destroy(fedreci_config *c)
{
    if (!c)
        return;
    for (uint32_t i = 0; i < c->n_listen; i++)
        free(c->listen[i]);
    free(c->db_path);
    free(c->http);
    free(c->tls_cert);
    free(c->tls_key);
    free(c->catalog);
    free(c->config_path);
    free(c->role);
    free(c->step);
    free(c->selection);
    free(c->master);
    free(c->agg_listen);
    free(c->agg_keys);
    free(c->identity_key);
    free(c->master_key);
    free(c->public_url);
    free(c->master_ca);
    free(c);
}

static void clear_list(fedreci_config *c)
{
    for (uint32_t i = 0; i < c->n_listen; i++) {
        free(c->listen[i]);
        c->listen[i] = NULL;
    }
    c->n_listen = 0;
}

/* The table's upper bound (a double) as an integer; 2^64 and above mean
 * UINT64_MAX (converting them would be undefined). */
static uint64_t u64_limit(double max)
{
    return max >= 18446744073709551615.0 ? UINT64_MAX : (uint64_t)max;
}

/* Sets option o from text v; `where` names the source for errors
 * ("file:3: [round] cohort" or "--cohort"). */
static fedrec_err set_value(fedreci_config *c, const opt *o, const char *v, const char *where)
{
    char *base = (char *)c;
    switch (o->type) {
    case T_PATH:
        return FEDREC_OK;
    case T_STR: {
        char **slot = (char **)(base + o->offset);
        char *copy = NULL;
        if (v[0] && !(copy = strdup(v)))
            return fedreci_error(FEDREC_ERR_NOMEM, "%s: out of memory", where);
        free(*slot);
        *slot = copy;
        return FEDREC_OK;
    }
    case T_LIST: {
        if (!v[0])
            return fedreci_error(FEDREC_ERR_INVALID, "%s: empty URL", where);
        if (c->n_listen >= FEDRECI_CONFIG_MAX_LISTEN)
            return fedreci_error(FEDREC_ERR_RANGE, "%s: '%s': more than %d listen addresses", where,
                                 v, FEDRECI_CONFIG_MAX_LISTEN);
        if (!(c->listen[c->n_listen] = strdup(v)))
            return fedreci_error(FEDREC_ERR_NOMEM, "%s: out of memory", where);
        c->n_listen++;
        return FEDREC_OK;
    }
    case T_LOG: {
        int lvl = fedreci_log_parse_level(v);
        if (lvl < 0)
            return fedreci_error(FEDREC_ERR_PARSE,
                                 "%s: '%s' is not a log level (error, warn, info, debug)", where,
                                 v);
        *(int *)(base + o->offset) = lvl;
        return FEDREC_OK;
    }
    case T_U32:
    case T_U64: {
        uint64_t x;
        fedrec_err e = fedreci_opt_u64(where, v, (uint64_t)o->min, u64_limit(o->max), &x);
        if (e)
            return e;
        if (o->type == T_U32)
            *(uint32_t *)(base + o->offset) = (uint32_t)x;
        else
            *(uint64_t *)(base + o->offset) = x;
        return FEDREC_OK;
    }
    case T_DBL:
    case T_FLT: {
        double x;
        fedrec_err e = o->min_open ? fedreci_opt_double_above(where, v, o->min, o->max, &x)
                                   : fedreci_opt_double(where, v, o->min, o->max, &x);
        if (e)
            return e;
        if (o->type == T_DBL)
            *(double *)(base + o->offset) = x;
        else
            *(float *)(base + o->offset) = (float)x;
        return FEDREC_OK;
    }
    }
    return fedreci_error(FEDREC_ERR_INTERNAL, "%s: unknown option type", where);
}

/* ---- INI ---------------------------------------------------------------------- */

/* The file inih reads, one physical line per read: inih counts a line per
   read, so `line` is the number inih reports for the line it is handling.
   inih's buffer holds num - 1 bytes (199); a longer comment is cut there
   and the rest skipped, any other longer line ends the parse (`too_long`:
   its line), since inih would take its cut value and parse the rest as a
   line of its own. */
typedef struct ini_file {
    FILE *f;
    int line;
    int too_long;
    int max;
} ini_file;

static char *ini_read_line(char *str, int num, void *stream)
{
    ini_file *in = stream;
    if (in->too_long || !fgets(str, num, in->f))
        return NULL;
    in->line++;
    size_t n = strlen(str);
    if (n == (size_t)num - 1 && str[n - 1] != '\n') {
        int ch = getc(in->f);
        if (ch == '\n' || ch == EOF)
            return str; /* exactly num - 1 bytes */
        while (ch != '\n' && ch != EOF)
            ch = getc(in->f);
        const char *p = str + strspn(str, " \t");
        if (*p != ';' && *p != '#') {
            in->too_long = in->line;
            in->max = num - 1;
            return NULL;
        }
    }
    return str;
}

typedef struct ini_ctx {
    fedreci_config *cfg;
    const char *path;
    const ini_file *in;
    int seen_list; /* the file's first listen replaces the default */
    fedrec_err err;
    int err_line;  /* the line of err */
    char msg[600]; /* message of the first error, without file:line */
} ini_ctx;

static int config_ini_entry(void *user, const char *section, const char *name, const char *value)
{
    ini_ctx *x = user;
    if (x->err)
        return 0;
    x->err_line = x->in->line; /* kept only if this entry is refused */
    const opt *o = find_opt(name);
    if (!o || o->type == T_PATH) {
        x->err = FEDREC_ERR_INVALID;
        snprintf(x->msg, sizeof x->msg, "[%s] %s: unknown key", section, name);
        return 0;
    }
    if (strcmp(section, o->section) != 0) {
        x->err = FEDREC_ERR_INVALID;
        snprintf(x->msg, sizeof x->msg, "[%s] %s: key '%s' belongs in section [%s]", section, name,
                 name, o->section);
        return 0;
    }
    if (o->type == T_LIST && !x->seen_list) {
        clear_list(x->cfg);
        x->seen_list = 1;
    }
    char where[128];
    snprintf(where, sizeof where, "[%s] %s", section, name);
    fedrec_err e = set_value(x->cfg, o, value, where);
    if (e) {
        x->err = e;
        snprintf(x->msg, sizeof x->msg, "%s", fedrec_errmsg());
        return 0;
    }
    return 1;
}

static fedrec_err read_ini(fedreci_config *c, const char *path)
{
    ini_file in = {.f = fopen(path, "r")};
    if (!in.f)
        return fedreci_error(FEDREC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    ini_ctx x = {.cfg = c, .path = path, .in = &in};
    int rv = ini_parse_stream(ini_read_line, &in, config_ini_entry, &x);
    fclose(in.f);
    if (rv == -2)
        return fedreci_error(FEDREC_ERR_NOMEM, "%s: out of memory", path);
    if (in.too_long && (rv == 0 || rv > in.too_long))
        return fedreci_error(FEDREC_ERR_PARSE, "%s:%d: line longer than %d bytes", path,
                             in.too_long, in.max);
    if (rv > 0) {
        /* rv is the first bad line: a refused entry, or an earlier line inih
           could not parse (e.g. '[round' without ']'), which is the one to
           name even when an entry after it was refused too */
        if (x.err && x.err_line == rv)
            return fedreci_error(x.err, "%s:%d: %s", path, rv, x.msg);
        return fedreci_error(FEDREC_ERR_PARSE, "%s:%d: not a 'key = value' or '[section]' line",
                             path, rv);
    }
    return FEDREC_OK;
}

/* ---- flags ---------------------------------------------------------------------- */

static fedrec_err apply_defaults(fedreci_config *c)
{
    for (size_t i = 0; i < N_OPTS; i++) {
        const opt *o = &opts[i];
        if (o->type == T_PATH || o->type == T_STR)
            continue; /* strings default to NULL except db, below */
        char where[64];
        snprintf(where, sizeof where, "default of %s", o->name);
        fedrec_err e = set_value(c, o, o->def, where);
        if (e)
            return e;
    }
    fedrec_err e = set_value(c, find_opt("db"), "fedrec.sqlite", "default of db");
    if (!e)
        e = set_value(c, find_opt("step"), "adam", "default of step");
    return e ? e : set_value(c, find_opt("role"), "single", "default of role");
}

/* getopt_long's table: every option of opts[] (val = its index + OPT_BASE),
 * plus --help, --version and --check-config. */
#define OPT_BASE 0x100

static void long_options(struct option *lo)
{
    for (size_t i = 0; i < N_OPTS; i++) {
        lo[i].name = opts[i].name;
        lo[i].has_arg = required_argument;
        lo[i].flag = NULL;
        lo[i].val = OPT_BASE + (int)i;
    }
    lo[N_OPTS] = (struct option){"help", no_argument, NULL, 'h'};
    lo[N_OPTS + 1] = (struct option){"version", no_argument, NULL, 'V'};
    lo[N_OPTS + 2] = (struct option){"check-config", no_argument, NULL, 'C'};
    lo[N_OPTS + 3] = (struct option){NULL, 0, NULL, 0};
}

/* The next flag of argv with getopt_long ("--name value" or "--name=value"):
 * 1 with *o (NULL for -h/-V/--check-config, then *hv is 'h', 'V' or 'C') and
 * *value, 0 at the
 * end, or an error for an unknown flag, a missing value or an operand. */
static fedrec_err next_flag(int argc, char *const *argv, const struct option *lo, const opt **o,
                            const char **value, int *hv, int *more)
{
    /* '+': stop at the first operand (refused below), never permute argv */
    int c = getopt_long(argc, (char **)argv, "+:hV", lo, NULL);
    *more = c != -1;
    *o = NULL;
    *hv = 0;
    if (c == -1) {
        if (optind < argc)
            return fedreci_error(FEDREC_ERR_INVALID, "'%s': expected a flag (--name value)",
                                 argv[optind]);
        return FEDREC_OK;
    }
    if (c == 'h' || c == 'V' || c == 'C') {
        *hv = c;
        return FEDREC_OK;
    }
    if (c < OPT_BASE || c >= OPT_BASE + (int)N_OPTS)
        return fedreci_opt_getopt_error(c, argv, lo);
    *o = &opts[c - OPT_BASE];
    *value = optarg;
    return FEDREC_OK;
}

fedrec_err fedreci_config_parse(fedreci_config **out, int argc, char *const *argv)
{
    fedreci_config *c = calloc(1, sizeof *c);
    if (!c)
        return fedreci_error(FEDREC_ERR_NOMEM, "config: out of memory");
    struct option lo[N_OPTS + 4];
    long_options(lo);
    fedrec_err e = apply_defaults(c);
    const opt *o;
    const char *v = NULL;
    int hv, more = 1;
    /* pass 1: --help, --version, --config, and syntax of every flag */
    fedreci_opt_reset();
    while (!e && more) {
        e = next_flag(argc, argv, lo, &o, &v, &hv, &more);
        if (hv == 'h')
            c->help = 1;
        else if (hv == 'V')
            c->version = 1;
        else if (hv == 'C')
            c->check_only = 1;
        if (!e && o && o->type == T_PATH) {
            free(c->config_path);
            if (!(c->config_path = strdup(v)))
                e = fedreci_error(FEDREC_ERR_NOMEM, "config: out of memory");
        }
    }
    if (c->help || c->version) { /* they win over any other mistake */
        fedreci_error_clear();
        *out = c;
        return FEDREC_OK;
    }
    if (!e && c->config_path)
        e = read_ini(c, c->config_path);
    /* pass 2: flags override the file */
    int cleared_list = 0;
    more = 1;
    fedreci_opt_reset();
    while (!e && more) {
        e = next_flag(argc, argv, lo, &o, &v, &hv, &more);
        if (e || !o)
            continue;
        if (o->type == T_LIST && !cleared_list) {
            clear_list(c);
            cleared_list = 1;
        }
        char where[80];
        snprintf(where, sizeof where, "--%s", o->name);
        e = set_value(c, o, v, where);
    }
    if (e) {
        fedreci_config_destroy(c);
        return e;
    }
    *out = c;
    return FEDREC_OK;
}

/* ---- checks -------------------------------------------------------------------- */

void fedreci_config_secagg_params(const fedreci_config *c, uint32_t n, uint32_t d,
                                  fedreci_secagg_params *p)
{
    memset(p, 0, sizeof *p);
    p->n = n;
    p->k = n > 0 ? n - 1 : 0;
    if (c->neighbors && c->neighbors < p->k)
        p->k = c->neighbors;
    p->t = c->threshold ? c->threshold : fedreci_coord_default_threshold(p->k);
    p->d = d;
    p->clip = c->clip;
    p->scale = c->scale;
    p->max_weight = 1;
    p->seed_retries = c->seed_retries;
}

void fedreci_config_usage(FILE *f, const char *prog)
{
    fprintf(f,
            "usage: %s [--config FILE] [--KEY VALUE | --KEY=VALUE ...]\n"
            "       %s catalog --from-log FILE [--out FILE]   (see catalog --help)\n"
            "\n"
            "The retailer's fedrec coordinator: runs secure-aggregation rounds of federated\n"
            "matrix factorization with store apps and keeps every committed model in SQLite.\n"
            "Each key can be given as a flag or in the INI file under its [section];\n"
            "flags override the file. Durations are in milliseconds.\n"
            "\n",
            prog, prog);
    for (size_t i = 0; i < N_OPTS; i++) {
        const opt *o = &opts[i];
        char left[64];
        snprintf(left, sizeof left, "--%s", o->name);
        fprintf(f, "  %-22s %s", left, o->help);
        if (o->section[0])
            fprintf(f, "\n  %-22s [%s] %s", "", o->section, o->name);
        if (o->def[0])
            fprintf(f, "; default %s", o->def);
        fprintf(f, "\n");
    }
    fprintf(f, "  %-22s %s\n  %-22s %s\n  %-22s %s\n", "--check-config",
            "validate the configuration (file and flags), print it and exit: 0 if valid", "--help",
            "this text", "--version", "print the version and exit");
    fprintf(f, "\nSignals: SIGTERM/SIGINT stop accepting, abort the current round and close "
               "the database.\nSee docs/operations.md.\n");
}

/* ---- effective configuration -------------------------------------------------- */

typedef struct fmt_buf {
    char *buf;
    size_t cap, len;
} fmt_buf;

static void fmt_add(fmt_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fmt_add(fmt_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t room = b->len < b->cap ? b->cap - b->len : 0;
    int n = vsnprintf(room ? b->buf + b->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n > 0)
        b->len += (size_t)n;
}

size_t fedreci_config_format(const fedreci_config *c, char *buf, size_t cap)
{
    static const char *const levels[] = {"error", "warn", "info", "debug"};
    fmt_buf b = {buf, cap, 0};
    if (cap)
        buf[0] = '\0';
    const char *base = (const char *)c;
    for (size_t i = 0; i < N_OPTS; i++) {
        const opt *o = &opts[i];
        const char *sep = b.len ? " " : "";
        switch (o->type) {
        case T_PATH:
            fmt_add(&b, "%sconfig=%s", sep, c->config_path ? c->config_path : "");
            break;
        case T_STR: {
            const char *v = *(char *const *)(base + o->offset);
            fmt_add(&b, "%s%s=%s", sep, o->name, v ? v : "");
            break;
        }
        case T_LIST:
            for (uint32_t j = 0; j < c->n_listen; j++)
                fmt_add(&b, "%s%s=%s", j || b.len ? " " : "", o->name, c->listen[j]);
            break;
        case T_U32:
            fmt_add(&b, "%s%s=%u", sep, o->name, *(const uint32_t *)(base + o->offset));
            break;
        case T_U64:
            fmt_add(&b, "%s%s=%llu", sep, o->name,
                    (unsigned long long)*(const uint64_t *)(base + o->offset));
            break;
        case T_DBL:
            fmt_add(&b, "%s%s=%g", sep, o->name, *(const double *)(base + o->offset));
            break;
        case T_FLT:
            fmt_add(&b, "%s%s=%g", sep, o->name, (double)*(const float *)(base + o->offset));
            break;
        case T_LOG: {
            int l = *(const int *)(base + o->offset);
            fmt_add(&b, "%s%s=%s", sep, o->name, l >= 0 && l < 4 ? levels[l] : "?");
            break;
        }
        }
    }
    if (cap && b.len >= cap)
        buf[cap - 1] = '\0';
    return b.len;
}
