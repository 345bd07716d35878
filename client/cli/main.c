/* fedrec-client: the shopper-side command line over the client API.
 *
 *   fedrec-client COMMAND --store PATH [--key-file FILE] [options]
 *
 * The store key comes from --key-file FILE or else the environment variable
 * FEDREC_STORE_KEY. Exactly 64 hexadecimal digits (surrounding whitespace
 * ignored) are a raw 32-byte key; anything else is a passphrase (a key file's
 * trailing newline is not part of it), stretched with Argon2id. A store made
 * with one form must always be opened with the same form. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include <sodium.h>
#include <zlib.h>

#include "client/client_internal.h"
#include "coordinator/catalog.h"
#include "core/err.h"
#include "core/json.h"
#include "core/opt.h"
#include "core/dataset/dataset.h"
#include "fedrec/client.h"
#include "fedrec/fedrec.h"

#define EXIT_USAGE 2
#define EXIT_NO_STORE 3 /* no store at --store PATH (only import makes one) */

typedef struct cli {
    const char *cmd;
    const char *store;
    const char *key_file;
    const char *file;     /* import FILE */
    const char *customer; /* import --customer */
    const char *format;   /* import, recommend --descriptions-from: --format */
    char columns[1024];   /* --columns, split in place when used */
    int have_columns;
    double rating_threshold;
    const char *catalog; /* recommend --descriptions-from (--catalog: deprecated alias) */
    const char *coordinator;
    const char *tls_ca;          /* sync --tls-ca */
    const char *tls_server_name; /* sync --tls-server-name */
    uint32_t rounds;
    uint32_t deadline_ms;
    /* sync: the round floors (0: the library's defaults, FEDREC_FLOOR_*) */
    uint32_t min_cohort, min_neighbors, min_threshold;
    double min_threshold_fraction;
    uint32_t k;
    int json;
    int help;
} cli;

static const char *const USAGE_MAIN =
    "usage: fedrec-client COMMAND --store PATH [--key-file FILE] [options]\n"
    "\n"
    "The shopper's side of fedrec: an encrypted local store of purchases, on-device\n"
    "recommendations, federated training rounds and the privacy ledger.\n"
    "\n"
    "commands:\n"
    "  import FILE --customer ID   record one shopper's purchases from a purchase log\n"
    "  sync --coordinator URL      download the model, take part in a round if selected\n"
    "  recommend [-k N]            top-N items for this shopper, computed on the device\n"
    "  ledger [--json]             every upload this client made, epsilon spent\n"
    "  info                        store summary: identity, purchases, model, consent\n"
    "  opt-out | opt-in            stop / resume taking part in training\n"
    "  forget                      erase the store: purchases, factors, keys, ledger\n"
    "  recover                     keep what is left of a store whose log lost events\n"
    "\n"
    "common options:\n"
    "  --store PATH      the store directory; import makes it, every other command\n"
    "                    needs it (no store there: exit status 3, nothing created)\n"
    "  --key-file FILE   file holding the store key; else $FEDREC_STORE_KEY.\n"
    "                    64 hex digits = raw 32-byte key; anything else = passphrase\n"
    "  --help            help for a command: fedrec-client COMMAND --help\n"
    "  --version         print the version\n"
    "\n"
    "exit status: 0 done, 1 error, 2 bad usage, 3 no store at --store PATH\n";

static void usage_cmd(const char *cmd)
{
    if (!strcmp(cmd, "import"))
        printf("usage: fedrec-client import FILE --customer ID --store PATH [--key-file FILE]\n"
               "                            [--format F] [--columns SPEC] [--rating-threshold T]\n"
               "\n"
               "Reads FILE (CSV or gzip'd CSV, by default in the UCI Online Retail layout:\n"
               "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,...)\n"
               "and records every purchase of customer ID in the store, in file order.\n"
               "  --format F          online-retail (default), movielens (userId, movieId,\n"
               "                      rating, timestamp) or generic (user, item, time, quantity)\n"
               "  --columns SPEC      role=column,... over the preset (roles user, item, time,\n"
               "                      quantity, price, basket, description, rating; a column is\n"
               "                      a header name or a 1-based position)\n"
               "  --rating-threshold T  with a rating column: ratings >= T are purchases\n"
               "                      (default 4); lower ones are skipped\n"
               "docs/data.md, \"Bring your own log\", has the details.\n"
               "Cancelled invoices, returns (quantity <= 0), zero prices and non-product\n"
               "codes (postage, fees, ...) are skipped as core/dataset's cleaning rules say;\n"
               "a fractional quantity is rounded to the nearest integer, at least 1.\n"
               "Importing the same file twice records its purchases twice.\n");
    else if (!strcmp(cmd, "sync"))
        printf("usage: fedrec-client sync --coordinator URL [--rounds N] [--deadline-ms MS]\n"
               "                          [--tls-ca FILE [--tls-server-name NAME]]\n"
               "                          [--min-cohort N] [--min-neighbors K]\n"
               "                          [--min-threshold T] [--min-threshold-fraction F]\n"
               "                          --store PATH [--key-file FILE]\n"
               "\n"
               "Downloads the coordinator's model if it is newer than the stored one and,\n"
               "when this client is opted in and selected, takes part in the round (the\n"
               "local step and SecAgg+ masking; only the masked update leaves the device).\n"
               "--rounds N repeats that N times (default 1); --deadline-ms bounds each sync\n"
               "(default 60000). URL: tcp://, tls+tcp://, ipc://.\n"
               "tls+tcp:// needs --tls-ca FILE: the PEM certificate of the authority that\n"
               "signed the coordinator's certificate (or that certificate itself when it is\n"
               "self-signed); --tls-server-name NAME is the name it must carry.\n"
               "Round floors (set here, never by the coordinator): a round with fewer than\n"
               "--min-cohort N clients (default %u), fewer than --min-neighbors K neighbours\n"
               "holding this client's shares (default %u), a threshold below\n"
               "--min-threshold T (default %u) or below --min-threshold-fraction F x K\n"
               "(default 2/3; 0.5..1) is refused before anything secret is sent, and the\n"
               "refusal is in the ledger.\n",
               FEDREC_FLOOR_MIN_COHORT, FEDREC_FLOOR_MIN_NEIGHBORS, FEDREC_FLOOR_MIN_THRESHOLD);
    else if (!strcmp(cmd, "recommend"))
        printf("usage: fedrec-client recommend [-k N] [--descriptions-from FILE] --store PATH\n"
               "                               [--key-file FILE]\n"
               "\n"
               "Prints the N (default 10) best items for this shopper under the downloaded\n"
               "model, never one already bought: rank, item code, description, score.\n"
               "Descriptions come from --descriptions-from FILE, either the coordinator's\n"
               "catalog (plain CSV whose first line is code,description: fedrec-coordinator\n"
               "catalog writes one) or a purchase log (CSV or gzip'd CSV, as for import;\n"
               "--format and --columns as for import), told apart by the first line;\n"
               "without it they print as '-'. --catalog FILE is a deprecated name of that\n"
               "option. Fails if no model has been downloaded yet.\n");
    else if (!strcmp(cmd, "ledger"))
        printf("usage: fedrec-client ledger [--json] --store PATH [--key-file FILE]\n"
               "\n"
               "Lists every upload this client made, oldest first: time (UTC), round,\n"
               "protocol stage, bytes sent, update entries clipped, and what it was.\n"
               "Then the differentially private rounds: epsilon per round and in total,\n"
               "computed on this device from each round's parameters, with the\n"
               "guarantee's delta, noise, survivor floor and L2 bound (or the rounds\n"
               "whose parameters it refused, and why), or 'differential privacy: none'.\n"
               "--json prints a JSON array of objects: the uploads (\"kind\": \"upload\"\n"
               "or \"refusal\"), then the differentially private rounds (\"kind\":\n"
               "\"dp_round\" with epsilon_round, epsilon_cumulative, delta, noise_variance,\n"
               "min_survivors, l2_bound, scale, sensitivity_l2; or \"dp_refusal\" with the\n"
               "reason).\n");
    else if (!strcmp(cmd, "opt-out") || !strcmp(cmd, "opt-in"))
        printf("usage: fedrec-client %s --store PATH [--key-file FILE]\n"
               "\n"
               "opt-out: this client stops taking part in training; it uploads nothing,\n"
               "but sync still downloads the model and recommend keeps working.\n"
               "opt-in: take part again (the default for a new store).\n",
               cmd);
    else if (!strcmp(cmd, "forget"))
        printf("usage: fedrec-client forget --store PATH [--key-file FILE]\n"
               "\n"
               "Erases the store: purchases, factor vector, identity key, model, ledger.\n"
               "No store file is left; the directory is removed if nothing else is in it.\n"
               "Needs the key, so that only the store's owner can erase it.\n");
    else if (!strcmp(cmd, "recover"))
        printf("usage: fedrec-client recover --store PATH [--key-file FILE]\n"
               "\n"
               "For a store that fails to open because committed events are missing from\n"
               "its log (it was cut): keeps the events that are left, so it opens again,\n"
               "and says how many were lost. A store that is whole is left untouched.\n");
    else if (!strcmp(cmd, "info"))
        printf("usage: fedrec-client info --store PATH [--key-file FILE]\n"
               "\n"
               "Prints the client id, identity public key, participation, purchase count,\n"
               "model version and size, and the number of ledger entries.\n");
    else
        fputs(USAGE_MAIN, stdout);
}

static int die(const char *what, fedrec_err e)
{
    const char *m = fedrec_errmsg();
    fprintf(stderr, "fedrec-client: %s: %s%s%s\n", what, fedrec_strerror(e), *m ? ": " : "", m);
    return 1;
}

enum {
    OPT_STORE = 0x100,
    OPT_KEY_FILE,
    OPT_CUSTOMER,
    OPT_CATALOG,
    OPT_DESCRIPTIONS_FROM,
    OPT_COORDINATOR,
    OPT_TLS_CA,
    OPT_TLS_SERVER_NAME,
    OPT_ROUNDS,
    OPT_DEADLINE_MS,
    OPT_JSON,
    OPT_FORMAT,
    OPT_COLUMNS,
    OPT_RATING_THRESHOLD,
    OPT_MIN_COHORT,
    OPT_MIN_NEIGHBORS,
    OPT_MIN_THRESHOLD,
    OPT_MIN_THRESHOLD_FRACTION,
};

static const struct option long_opts[] = {
    {"help", no_argument, NULL, 'h'},
    {"store", required_argument, NULL, OPT_STORE},
    {"key-file", required_argument, NULL, OPT_KEY_FILE},
    {"customer", required_argument, NULL, OPT_CUSTOMER},
    {"catalog", required_argument, NULL, OPT_CATALOG},
    {"descriptions-from", required_argument, NULL, OPT_DESCRIPTIONS_FROM},
    {"coordinator", required_argument, NULL, OPT_COORDINATOR},
    {"tls-ca", required_argument, NULL, OPT_TLS_CA},
    {"tls-server-name", required_argument, NULL, OPT_TLS_SERVER_NAME},
    {"rounds", required_argument, NULL, OPT_ROUNDS},
    {"deadline-ms", required_argument, NULL, OPT_DEADLINE_MS},
    {"k", required_argument, NULL, 'k'},
    {"json", no_argument, NULL, OPT_JSON},
    {"format", required_argument, NULL, OPT_FORMAT},
    {"columns", required_argument, NULL, OPT_COLUMNS},
    {"rating-threshold", required_argument, NULL, OPT_RATING_THRESHOLD},
    {"min-cohort", required_argument, NULL, OPT_MIN_COHORT},
    {"min-neighbors", required_argument, NULL, OPT_MIN_NEIGHBORS},
    {"min-threshold", required_argument, NULL, OPT_MIN_THRESHOLD},
    {"min-threshold-fraction", required_argument, NULL, OPT_MIN_THRESHOLD_FRACTION},
    {NULL, 0, NULL, 0},
};

/* Parses the options after the command (argv[1]) with getopt_long: `--opt
 * value` and `--opt=value` alike. Operands (import's FILE) may stand
 * anywhere. Returns 0, or -1 after printing what was wrong. */
static int parse_args(int argc, char **argv, cli *a)
{
    memset(a, 0, sizeof *a);
    a->rounds = 1;
    a->deadline_ms = 60000;
    a->k = 10;
    a->rating_threshold = 4.0;
    a->cmd = argv[1];
    fedreci_opt_reset();
    int c;
    fedrec_err e = FEDREC_OK;
    /* argv + 1: getopt starts after the command */
    while (!e && (c = getopt_long(argc - 1, argv + 1, ":hk:", long_opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            a->help = 1;
            break;
        case OPT_STORE:
            a->store = optarg;
            break;
        case OPT_KEY_FILE:
            a->key_file = optarg;
            break;
        case OPT_CUSTOMER:
            a->customer = optarg;
            break;
        case OPT_CATALOG:
            /* the old name, from when this option read a purchase log only */
            fprintf(stderr, "fedrec-client: --catalog is deprecated: use --descriptions-from "
                            "FILE (a catalog or a purchase log)\n");
            a->catalog = optarg;
            break;
        case OPT_DESCRIPTIONS_FROM:
            a->catalog = optarg;
            break;
        case OPT_COORDINATOR:
            a->coordinator = optarg;
            break;
        case OPT_TLS_CA:
            a->tls_ca = optarg;
            break;
        case OPT_TLS_SERVER_NAME:
            a->tls_server_name = optarg;
            break;
        case OPT_ROUNDS:
            e = fedreci_opt_u32("--rounds", optarg, 1, 1000000, &a->rounds);
            break;
        case OPT_DEADLINE_MS:
            e = fedreci_opt_u32("--deadline-ms", optarg, 1, 86400000, &a->deadline_ms);
            break;
        case 'k':
            e = fedreci_opt_u32("-k", optarg, 1, 100000, &a->k);
            break;
        case OPT_JSON:
            a->json = 1;
            break;
        case OPT_FORMAT:
            a->format = optarg;
            break;
        case OPT_COLUMNS:
            if ((size_t)snprintf(a->columns, sizeof a->columns, "%s", optarg) >= sizeof a->columns)
                e = fedreci_error(FEDREC_ERR_INVALID, "--columns: longer than %zu bytes",
                                  sizeof a->columns - 1);
            a->have_columns = 1;
            break;
        case OPT_MIN_COHORT:
            e = fedreci_opt_u32("--min-cohort", optarg, 2, 1000000, &a->min_cohort);
            break;
        case OPT_MIN_NEIGHBORS:
            e = fedreci_opt_u32("--min-neighbors", optarg, 1, 1000000, &a->min_neighbors);
            break;
        case OPT_MIN_THRESHOLD:
            e = fedreci_opt_u32("--min-threshold", optarg, 1, 1000000, &a->min_threshold);
            break;
        case OPT_MIN_THRESHOLD_FRACTION:
            e = fedreci_opt_double("--min-threshold-fraction", optarg, 0.5, 1.0,
                                   &a->min_threshold_fraction);
            break;
        case OPT_RATING_THRESHOLD:
            e = fedreci_opt_double("--rating-threshold", optarg, -1e9, 1e9, &a->rating_threshold);
            break;
        default:
            e = fedreci_opt_getopt_error(c, argv + 1, long_opts);
            break;
        }
    }
    for (int i = optind + 1; !e && i < argc; i++) {
        if (!strcmp(a->cmd, "import") && !a->file)
            a->file = argv[i];
        else
            e = fedreci_error(FEDREC_ERR_INVALID, "unexpected argument '%s'", argv[i]);
    }
    if (e) {
        fprintf(stderr, "fedrec-client %s: %s (see --help)\n", a->cmd, fedrec_errmsg());
        return -1;
    }
    return 0;
}

/* No store at --store PATH: says so (nothing was created) and how to make
 * one; returns EXIT_NO_STORE. */
static int no_store(const cli *a)
{
    if (!strcmp(a->cmd, "forget") || !strcmp(a->cmd, "recover"))
        fprintf(stderr, "fedrec-client %s: no store at %s: nothing to %s\n", a->cmd, a->store,
                a->cmd[0] == 'f' ? "erase" : "recover");
    else
        fprintf(stderr,
                "fedrec-client %s: no store at %s (nothing was created); make one with "
                "fedrec-client import FILE --customer ID --store %s\n",
                a->cmd, a->store, a->store);
    return EXIT_NO_STORE;
}

/* Reads the key (file or environment) and opens the client; with `lost`
 * non-NULL, recovers the store instead (fedrec_client_recover) and leaves
 * *out alone. Only import makes a new store (create 1); without create,
 * no store there returns EXIT_NO_STORE (nothing created, nothing printed:
 * the caller says it, no_store). */
static int with_key(const cli *a, const char *url, int create, fedrec_client **out, uint64_t *lost)
{
    if (!a->store) {
        fprintf(stderr, "fedrec-client %s: --store PATH is required\n", a->cmd);
        return EXIT_USAGE;
    }
    char *secret = sodium_malloc(4097);
    if (!secret) {
        fprintf(stderr, "fedrec-client: out of memory\n");
        return 1;
    }
    size_t n = 0;
    const char *source;
    if (a->key_file) {
        source = a->key_file;
        FILE *f = fopen(a->key_file, "rb");
        if (!f) {
            fprintf(stderr, "fedrec-client: --key-file %s: %s\n", a->key_file, strerror(errno));
            sodium_free(secret);
            return 1;
        }
        n = fread(secret, 1, 4097, f);
        int err = ferror(f);
        fclose(f);
        if (err || n > 4096) {
            fprintf(stderr, "fedrec-client: --key-file %s: %s\n", a->key_file,
                    err ? "read error" : "longer than 4096 bytes");
            sodium_free(secret);
            return 1;
        }
        while (n > 0 && (secret[n - 1] == '\n' || secret[n - 1] == '\r'))
            n--;
    } else {
        source = "FEDREC_STORE_KEY";
        const char *env = getenv("FEDREC_STORE_KEY");
        if (!env || !*env) {
            fprintf(stderr,
                    "fedrec-client %s: no store key: give --key-file FILE or set "
                    "FEDREC_STORE_KEY\n",
                    a->cmd);
            sodium_free(secret);
            return EXIT_USAGE;
        }
        n = strlen(env);
        if (n > 4096) {
            fprintf(stderr, "fedrec-client: FEDREC_STORE_KEY: longer than 4096 bytes\n");
            sodium_free(secret);
            return 1;
        }
        memcpy(secret, env, n);
    }
    if (n == 0) {
        fprintf(stderr, "fedrec-client: %s: the key is empty\n", source);
        sodium_free(secret);
        return 1;
    }
    /* 64 hex digits (whitespace around ignored) = a raw key. */
    size_t b = 0, e = n;
    while (b < e && isspace((unsigned char)secret[b]))
        b++;
    while (e > b && isspace((unsigned char)secret[e - 1]))
        e--;
    uint8_t *raw = sodium_malloc(FEDREC_STORE_KEY_BYTES);
    size_t rawlen = 0;
    int is_raw = 0;
    if (raw && e - b == 2 * FEDREC_STORE_KEY_BYTES &&
        sodium_hex2bin(raw, FEDREC_STORE_KEY_BYTES, secret + b, e - b, NULL, &rawlen, NULL) == 0 &&
        rawlen == FEDREC_STORE_KEY_BYTES)
        is_raw = 1;
    fedrec_err err = FEDREC_ERR_NOMEM;
    if (raw && lost)
        err = is_raw ? fedrec_client_recover(a->store, raw, lost)
                     : fedrec_client_recover_passphrase(a->store, secret, n, lost);
    else if (raw) {
        fedrec_client_options o;
        fedrec_client_options_init(&o);
        if (is_raw) {
            o.key = raw;
        } else {
            o.passphrase = secret;
            o.passphrase_len = n;
        }
        o.coordinator_url = url;
        o.min_cohort = a->min_cohort;
        o.min_neighbors = a->min_neighbors;
        o.min_threshold = a->min_threshold;
        o.min_threshold_fraction = a->min_threshold_fraction;
        o.must_exist = !create;
        err = fedrec_client_open_with(out, a->store, &o);
    }
    sodium_free(raw);
    sodium_free(secret);
    if (err == FEDREC_ERR_NOT_FOUND)
        return EXIT_NO_STORE; /* the caller says so */
    if (err)
        return die(a->store, err);
    return 0;
}

/* Opens an existing store (EXIT_NO_STORE, said, when there is none). */
static int open_client(const cli *a, const char *url, fedrec_client **out)
{
    int rc = with_key(a, url, 0, out, NULL);
    return rc == EXIT_NO_STORE ? no_store(a) : rc;
}

/* ---- import ---------------------------------------------------------------- */

typedef struct import_ctx {
    fedrec_client *c;
    const char *file;
    unsigned long recorded;
} import_ctx;

static fedrec_err import_row(void *ctx, const fedreci_purchase *p)
{
    import_ctx *ic = ctx;
    double q = floor(p->quantity + 0.5);
    if (q < 1)
        q = 1;
    if (q > 4294967295.0)
        q = 4294967295.0;
    fedrec_err e = fedrec_client_record(ic->c, p->item, p->time, (uint32_t)q);
    if (e)
        return e; /* the message names the item code */
    ic->recorded++;
    return FEDREC_OK;
}

/* --format, then --columns over it, and --rating-threshold (docs/data.md,
 * "Bring your own log"). */
static fedrec_err log_layout(cli *a, fedreci_dataset_options *o)
{
    fedrec_err e = FEDREC_OK;
    if (a->format || a->have_columns)
        e = fedreci_dataset_format(a->format, &o->columns);
    if (!e && a->have_columns) {
        e = fedreci_dataset_columns_parse(a->columns, &o->columns);
        a->have_columns = 0; /* split in place: once */
    }
    o->rating_threshold = a->rating_threshold;
    return e;
}

/* Records customer ID's purchases from FILE, making the store when there is
 * none; an import that records nothing (bad file, unknown customer) leaves
 * no new store behind. */
static int cmd_import(cli *a)
{
    if (!a->file || !a->customer) {
        fprintf(stderr, "fedrec-client import: needs FILE and --customer ID (see --help)\n");
        return EXIT_USAGE;
    }
    fedreci_dataset_options o;
    fedreci_dataset_options_default(&o);
    fedrec_err e = log_layout(a, &o);
    if (e) {
        fprintf(stderr, "fedrec-client import: %s (see --help)\n", fedrec_errmsg());
        return EXIT_USAGE;
    }
    /* an existing store, else a new one (import is the command that makes
       it), in a directory that may have been made for it beforehand */
    struct stat dst;
    int dir_before = stat(a->store, &dst) == 0 && S_ISDIR(dst.st_mode);
    fedrec_client *c = NULL;
    int created = 0;
    int rc = with_key(a, NULL, 0, &c, NULL);
    if (rc == EXIT_NO_STORE) {
        created = 1;
        rc = with_key(a, NULL, 1, &c, NULL);
    }
    if (rc)
        return rc;
    o.only_customer = a->customer;
    o.build_matrix = 0;
    import_ctx ic = {c, a->file, 0};
    o.on_row = import_row;
    o.on_row_ctx = &ic;
    fedreci_dataset *d = NULL;
    fedreci_dataset_report rep;
    e = fedreci_dataset_load(&d, a->file, &o, &rep);
    fedreci_dataset_destroy(d);
    if (e) {
        char what[512];
        snprintf(what, sizeof what, "import %s (after %lu purchases recorded)", a->file,
                 ic.recorded);
        rc = die(what, e);
    } else if (ic.recorded == 0) {
        fprintf(stderr,
                "fedrec-client import: %s: no purchases of customer '%s' (%llu rows "
                "read)\n",
                a->file, a->customer, (unsigned long long)rep.rows_read);
        rc = 1;
    }
    if (rc && created && ic.recorded == 0) {
        /* the store this run made holds nothing: take it away again (a
           directory that was there before stays, empty) */
        if (fedreci_client_erase(c, dir_before) != FEDREC_OK)
            fprintf(stderr, "fedrec-client import: could not remove the empty store %s: %s\n",
                    a->store, fedrec_errmsg());
    } else {
        fedrec_client_close(c);
    }
    if (!rc)
        printf("recorded %lu purchases of customer %s from %s%s\n", ic.recorded, a->customer,
               a->file, created ? " (new store)" : "");
    return rc;
}

/* ---- recommend ---------------------------------------------------------------- */

/* Where recommend's descriptions come from (--descriptions-from FILE):
 * either the coordinator's catalog (code,description; docs/operations.md)
 * or a purchase log; at most one is set. */
typedef struct descriptions {
    fedreci_catalog *cat;
    fedreci_dataset *log;
} descriptions;

/* Tells a catalog from a purchase log by the first line of path (plain or
 * gzip'd): a catalog's names exactly the two columns code,description
 * (case-insensitive, each optionally quoted; a UTF-8 byte order mark is
 * skipped). *catalog gets 1 for a catalog, 0 otherwise; *gzipped whether
 * the file is compressed. Errors: FEDREC_ERR_IO naming the file. */
static fedrec_err sniff_catalog(const char *path, int *catalog, int *gzipped)
{
    *catalog = *gzipped = 0;
    errno = 0;
    gzFile g = gzopen(path, "rb");
    if (!g)
        return fedreci_error(FEDREC_ERR_IO, "%s: cannot open: %s", path,
                             errno ? strerror(errno) : "out of memory");
    char line[128];
    const char *l = gzgets(g, line, sizeof line);
    *gzipped = !gzdirect(g);
    gzclose(g);
    if (!l)
        return FEDREC_OK; /* empty or unreadable: the log reader says which */
    if (!strncmp(l, "\xEF\xBB\xBF", 3))
        l += 3;
    char name[2][32];
    int n = 0;
    for (const char *f = l; n < 3; n++) {
        size_t len = strcspn(f, ",\r\n");
        const char *b = f, *e = f + len;
        while (b < e && isspace((unsigned char)*b))
            b++;
        while (e > b && isspace((unsigned char)e[-1]))
            e--;
        if (e - b >= 2 && *b == '"' && e[-1] == '"')
            b++, e--;
        if (n < 2)
            snprintf(name[n], sizeof name[n], "%.*s", (int)(e - b), b);
        if (f[len] != ',') {
            n++;
            break;
        }
        f += len + 1;
    }
    *catalog = n == 2 && !strcasecmp(name[0], "code") && !strcasecmp(name[1], "description");
    return FEDREC_OK;
}

/* Loads --descriptions-from FILE into *d. Returns 0, or the exit code after
 * printing what is wrong with the file. */
static int descriptions_load(cli *a, descriptions *d)
{
    const char *path = a->catalog;
    char what[600];
    snprintf(what, sizeof what, "recommend --descriptions-from %s", path);
    int catalog, gzipped;
    fedrec_err e = sniff_catalog(path, &catalog, &gzipped);
    if (e)
        return die(what, e);
    if (catalog) {
        if (a->format || a->have_columns) {
            fprintf(stderr,
                    "fedrec-client recommend: %s is a catalog (code,description): --format and "
                    "--columns describe a purchase log\n",
                    path);
            return EXIT_USAGE;
        }
        if (gzipped)
            return die(what, fedreci_error(FEDREC_ERR_FORMAT,
                                           "%s: a gzip'd catalog; a catalog is read as plain CSV "
                                           "(gunzip it first)",
                                           path));
        e = fedreci_catalog_read_csv(&d->cat, path);
        return e ? die(what, e) : 0;
    }
    fedreci_dataset_options o;
    fedreci_dataset_options_default(&o);
    e = log_layout(a, &o);
    if (e) {
        fprintf(stderr, "fedrec-client recommend: %s (see --help)\n", fedrec_errmsg());
        return EXIT_USAGE;
    }
    e = fedreci_dataset_load(&d->log, path, &o, NULL);
    if (e == FEDREC_ERR_FORMAT || e == FEDREC_ERR_EMPTY) {
        char why[600];
        snprintf(why, sizeof why, "%s", fedrec_errmsg());
        e = fedreci_error(e,
                          "%s; %s is neither a catalog (first line code,description) nor a "
                          "purchase log in the %s layout (see --format, --columns)",
                          why, path, a->format ? a->format : "online-retail");
    }
    return e ? die(what, e) : 0;
}

/* The description of item code under d, or "-" when there is none. */
static const char *description_of(const descriptions *d, const char *code)
{
    const char *desc = NULL;
    uint32_t row;
    if (d->cat && fedreci_catalog_find(d->cat, code, &row) == FEDREC_OK)
        desc = fedreci_catalog_at(d->cat, row)->description;
    else if (d->log && fedreci_dataset_item_find(d->log, code, &row) == FEDREC_OK)
        desc = fedreci_dataset_item_description(d->log, row);
    return desc && *desc ? desc : "-";
}

static void descriptions_free(descriptions *d)
{
    fedreci_catalog_destroy(d->cat);
    fedreci_dataset_destroy(d->log);
}

static int cmd_recommend(cli *a)
{
    descriptions cat = {0};
    if (a->catalog) {
        int rc = descriptions_load(a, &cat);
        if (rc)
            return rc;
    }
    fedrec_client *c = NULL;
    int rc = open_client(a, NULL, &c);
    if (rc) {
        descriptions_free(&cat);
        return rc;
    }
    fedrec_recommendation *r = calloc(a->k, sizeof *r);
    uint32_t n = 0;
    fedrec_err e = r ? fedrec_client_recommend(c, a->k, r, &n) : FEDREC_ERR_NOMEM;
    if (e) {
        rc = die("recommend", e);
    } else {
        printf("%-4s  %-12s  %-40s  %s\n", "rank", "item", "description", "score");
        for (uint32_t i = 0; i < n; i++) {
            const char *desc = description_of(&cat, r[i].item_code);
            printf("%-4u  %-12s  %-40.40s  %.4f\n", i + 1, r[i].item_code, desc,
                   (double)r[i].score);
        }
    }
    free(r);
    fedrec_client_close(c);
    descriptions_free(&cat);
    return rc;
}

/* ---- ledger ---------------------------------------------------------------------- */

static void fmt_time(int64_t ms, char *buf, size_t n)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (gmtime_r(&t, &tm))
        snprintf(buf, n, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
    else
        snprintf(buf, n, "%lld", (long long)ms);
}

/* The differentially private rounds of the ledger: the shopper's own
 * epsilon spent (computed on this device) and the guarantee's parameters,
 * or "no differential privacy". */
static fedrec_err print_privacy(fedrec_client *c)
{
    size_t n = 0;
    fedrec_err e = fedrec_client_privacy_count(c, &n);
    if (e)
        return e;
    if (!n) {
        printf("differential privacy: none (no round this client took part in had differential "
               "privacy)\n");
        return FEDREC_OK;
    }
    fedrec_privacy_entry last = {.struct_size = sizeof last};
    size_t spent = 0, refused = 0;
    printf("\ndifferentially private rounds (epsilon computed on this device from the round's "
           "parameters):\n");
    printf("%-24s  %8s  %9s  %9s  %8s  %12s  %8s  %8s  %s\n", "time (UTC)", "round", "eps/round",
           "eps total", "delta", "noise var", "survivor", "L2 bound", "");
    for (size_t i = 0; i < n && !e; i++) {
        fedrec_privacy_entry p = {.struct_size = sizeof p};
        if ((e = fedrec_client_privacy_get(c, i, &p)))
            break;
        char t[96];
        fmt_time(p.time_unix_ms, t, sizeof t);
        if (p.refused) {
            refused++;
            printf("%-24s  %8llu  refused (nothing sent): %s\n", t, (unsigned long long)p.round_id,
                   p.reason);
            continue;
        }
        spent++;
        last = p;
        printf("%-24s  %8llu  %9.4f  %9.4f  %8.2g  %12.6g  %8u  %8.4g\n", t,
               (unsigned long long)p.round_id, p.epsilon_round, p.epsilon_cumulative, p.delta,
               p.noise_variance, p.min_survivors, p.l2_bound);
    }
    if (!e && spent)
        printf("differential privacy: epsilon %.4f spent at delta %g over %zu round(s) (Skellam "
               "noise added on this device before masking; L2 bound %.4g per shopper, noise "
               "for %u survivors)%s\n",
               last.epsilon_cumulative, last.delta, spent, last.l2_bound, last.min_survivors,
               refused ? "; some rounds refused, see above" : "");
    else if (!e)
        printf("differential privacy: nothing spent (%zu round(s) refused)\n", refused);
    return e;
}

/* --json: the differentially private rounds as entries of the ledger's
 * array after the uploads, "kind": "dp_round" (a noised input was sent:
 * epsilon computed on this device, the guarantee's parameters) or
 * "dp_refusal" (the parameters were refused, nothing sent, and why). */
static fedrec_err json_privacy(fedrec_client *c, fedreci_json *w, size_t *written)
{
    size_t n = 0;
    fedrec_err e = fedrec_client_privacy_count(c, &n);
    for (size_t i = 0; i < n && !e; i++) {
        fedrec_privacy_entry p = {.struct_size = sizeof p};
        if ((e = fedrec_client_privacy_get(c, i, &p)))
            break;
        char t[96];
        fmt_time(p.time_unix_ms, t, sizeof t);
        fedreci_json_newline(w, "  ");
        fedreci_json_obj_begin(w);
        fedreci_json_kstr(w, "time", t);
        fedreci_json_ki64(w, "time_unix_ms", p.time_unix_ms);
        fedreci_json_ku64(w, "round", p.round_id);
        fedreci_json_kstr(w, "kind", p.refused ? "dp_refusal" : "dp_round");
        fedreci_json_kstr(w, "mechanism", "skellam");
        if (p.refused) {
            fedreci_json_kstr(w, "reason", p.reason);
        } else {
            fedreci_json_kdouble(w, "epsilon_round", "%.17g", p.epsilon_round);
            fedreci_json_kdouble(w, "epsilon_cumulative", "%.17g", p.epsilon_cumulative);
            fedreci_json_kdouble(w, "delta", "%.17g", p.delta);
            fedreci_json_kdouble(w, "noise_variance", "%.17g", p.noise_variance);
            fedreci_json_ku64(w, "min_survivors", p.min_survivors);
            fedreci_json_kdouble(w, "l2_bound", "%.17g", p.l2_bound);
            fedreci_json_kdouble(w, "scale", "%.17g", p.scale);
            fedreci_json_kdouble(w, "sensitivity_l2", "%.17g", p.sensitivity_l2);
        }
        fedreci_json_obj_end(w);
        (*written)++;
    }
    return e;
}

static int cmd_ledger(const cli *a)
{
    fedrec_client *c = NULL;
    int rc = open_client(a, NULL, &c);
    if (rc)
        return rc;
    size_t n = 0;
    fedrec_err e = fedrec_client_ledger_count(c, &n);
    if (e) {
        fedrec_client_close(c);
        return die("ledger", e);
    }
    fedreci_json w; /* spaced members, one entry per line */
    fedreci_json_init_file(&w, stdout, FEDRECI_JSON_SPACED);
    if (a->json)
        fedreci_json_arr_begin(&w);
    else
        printf("%-24s  %8s  %5s  %10s  %7s  %s\n", "time (UTC)", "round", "stage", "bytes",
               "clipped", "what");
    uint64_t total = 0;
    size_t refusals = 0;
    for (size_t i = 0; i < n; i++) {
        fedrec_ledger_entry le = {.struct_size = sizeof le};
        e = fedrec_client_ledger_get(c, i, &le);
        if (e)
            break;
        char t[96];
        fmt_time(le.time_unix_ms, t, sizeof t);
        total += le.bytes_sent;
        if (a->json) {
            fedreci_json_newline(&w, "  ");
            fedreci_json_obj_begin(&w);
            fedreci_json_kstr(&w, "time", t);
            fedreci_json_ki64(&w, "time_unix_ms", le.time_unix_ms);
            fedreci_json_ku64(&w, "round", le.round_id);
            fedreci_json_ku64(&w, "stage", le.stage);
            fedreci_json_ku64(&w, "bytes_sent", le.bytes_sent);
            fedreci_json_ku64(&w, "clipped", le.clipped);
            fedreci_json_kstr(&w, "what", le.what);
            fedreci_json_kstr(&w, "kind", le.kind == FEDREC_LEDGER_REFUSAL ? "refusal" : "upload");
            if (le.kind == FEDREC_LEDGER_REFUSAL) {
                fedreci_json_ku64(&w, "refusal", le.refusal);
                fedreci_json_kstr(&w, "refusal_name", fedrec_refusal_name(le.refusal));
                fedreci_json_kstr(&w, "reason", le.reason);
                fedreci_json_ku64(&w, "cohort", le.cohort);
                fedreci_json_ku64(&w, "neighbors", le.neighbors);
                fedreci_json_ku64(&w, "threshold", le.threshold);
            }
            fedreci_json_obj_end(&w);
        } else if (le.kind == FEDREC_LEDGER_REFUSAL) {
            refusals++;
            printf("%-24s  %8llu  %5u  %10s  %7s  REFUSED (%s), withheld the %s; round n=%u "
                   "k=%u t=%u: %s\n",
                   t, (unsigned long long)le.round_id, le.stage, "-", "-",
                   fedrec_refusal_name(le.refusal), le.what, le.cohort, le.neighbors, le.threshold,
                   le.reason);
        } else {
            printf("%-24s  %8llu  %5u  %10llu  %7u  %s\n", t, (unsigned long long)le.round_id,
                   le.stage, (unsigned long long)le.bytes_sent, le.clipped, le.what);
        }
    }
    if (a->json) {
        size_t n_dp = 0;
        if (!e)
            e = json_privacy(c, &w, &n_dp);
        if (n || n_dp)
            fedreci_json_newline(&w, "");
        fedreci_json_arr_end(&w);
        fedrec_err we = fedreci_json_finish(&w, NULL, NULL);
        putchar('\n');
        if (!e)
            e = we;
    } else {
        printf("%zu uploads, %llu bytes in total; %zu rounds refused\n", n - refusals,
               (unsigned long long)total, refusals);
        if (!e)
            e = print_privacy(c);
    }
    fedrec_client_close(c);
    return e ? die("ledger", e) : 0;
}

/* ---- consent, info, forget ---------------------------------------------------- */

static int cmd_participation(const cli *a, int in)
{
    fedrec_client *c = NULL;
    int rc = open_client(a, NULL, &c);
    if (rc)
        return rc;
    fedrec_err e = fedrec_client_set_participation(c, in);
    fedrec_client_close(c);
    if (e)
        return die(a->cmd, e);
    printf(in ? "opted in: this client takes part in training rounds\n"
              : "opted out: this client uploads nothing; recommendations keep working\n");
    return 0;
}

static int cmd_info(const cli *a)
{
    fedrec_client *c = NULL;
    int rc = open_client(a, NULL, &c);
    if (rc)
        return rc;
    fedrec_client_info in = {.struct_size = sizeof in};
    fedrec_err e = fedrec_client_get_info(c, &in);
    fedrec_client_close(c);
    if (e)
        return die("info", e);
    char pk[65];
    sodium_bin2hex(pk, sizeof pk, in.identity_pk, 32);
    printf("store:         %s\n", a->store);
    printf("client id:     %016llx\n", (unsigned long long)in.client_id);
    printf("identity key:  %s (Ed25519)\n", pk);
    printf("participation: %s\n", in.opted_in ? "opted in" : "opted out");
    printf("purchases:     %llu\n", (unsigned long long)in.purchases);
    if (in.model_version)
        printf("model:         version %llu, %u items x %u factors\n",
               (unsigned long long)in.model_version, in.model_items, in.model_factors);
    else
        printf("model:         none yet (run sync)\n");
    printf("ledger:        %llu uploads\n", (unsigned long long)in.ledger_entries);
    return 0;
}

static int cmd_forget(const cli *a)
{
    fedrec_client *c = NULL;
    int rc = open_client(a, NULL, &c);
    if (rc)
        return rc;
    fedrec_err e = fedrec_client_forget(c);
    if (e)
        return die("forget", e);
    printf("erased the store at %s\n", a->store);
    return 0;
}

static int cmd_recover(const cli *a)
{
    uint64_t lost = 0;
    int rc = with_key(a, NULL, 0, NULL, &lost);
    if (rc)
        return rc == EXIT_NO_STORE ? no_store(a) : rc;
    if (lost)
        printf("recovered the store at %s: %llu committed events were missing and are gone; "
               "the rest is kept\n",
               a->store, (unsigned long long)lost);
    else
        printf("the store at %s is whole: nothing to recover, nothing written\n", a->store);
    return 0;
}

/* ---- sync ------------------------------------------------------------------ */

static const char *outcome_text(fedrec_err e)
{
    switch (e) {
    case FEDREC_OK:
        return "took part; the round completed";
    case FEDREC_ERR_OPTED_OUT:
        return "opted out: checked in, uploaded nothing";
    case FEDREC_ERR_NOT_SELECTED:
        return "not selected for a round";
    case FEDREC_ERR_REFUSED:
        return "refused the round (see the ledger for why)";
    default:
        return fedrec_strerror(e);
    }
}

static int cmd_sync(const cli *a)
{
    if (!a->coordinator) {
        fprintf(stderr, "fedrec-client sync: --coordinator URL is required (see --help)\n");
        return EXIT_USAGE;
    }
    if (strncmp(a->coordinator, "tcp://", 6) != 0 &&
        strncmp(a->coordinator, "tls+tcp://", 10) != 0 &&
        strncmp(a->coordinator, "ipc://", 6) != 0) {
        /* the library would say "session: dial http://x: Not supported" */
        fprintf(stderr,
                "fedrec-client sync: --coordinator '%s': expected a tcp://, tls+tcp:// or ipc:// "
                "URL\n",
                a->coordinator);
        return EXIT_USAGE;
    }
    if (a->tls_server_name && !a->tls_ca) {
        fprintf(stderr, "fedrec-client sync: --tls-server-name needs --tls-ca FILE\n");
        return EXIT_USAGE;
    }
    fedrec_client *c = NULL;
    int rc = open_client(a, a->coordinator, &c);
    if (rc)
        return rc;
    if (a->tls_ca) {
        fedrec_err e = fedrec_client_set_tls(c, a->tls_ca, a->tls_server_name);
        if (e) {
            fedrec_client_close(c);
            return die("--tls-ca", e);
        }
    }
    for (uint32_t r = 0; r < a->rounds && !rc; r++) {
        fedrec_sync_result res = {.struct_size = sizeof res};
        fedrec_err e = fedrec_client_sync(c, a->deadline_ms, &res);
        if (e) {
            char what[600];
            snprintf(what, sizeof what, "sync %u/%u with %s", r + 1, a->rounds, a->coordinator);
            rc = die(what, e);
            break;
        }
        printf("sync %u/%u: model version %llu%s; ", r + 1, a->rounds,
               (unsigned long long)res.model_version, res.model_updated ? " (downloaded)" : "");
        if (res.round_id)
            printf("round %llu: ", (unsigned long long)res.round_id);
        printf("%s\n", outcome_text(res.round_outcome));
    }
    fedrec_client_close(c);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help")) {
        fputs(USAGE_MAIN, argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
        printf("fedrec-client %s\n", fedrec_version());
        return 0;
    }
    static const char *const cmds[] = {"import", "sync",   "recommend", "ledger", "opt-out",
                                       "opt-in", "forget", "info",      "recover"};
    int known = 0;
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        known |= !strcmp(argv[1], cmds[i]);
    if (!known) {
        fprintf(stderr, "fedrec-client: unknown command '%s' (see fedrec-client --help)\n",
                argv[1]);
        return EXIT_USAGE;
    }
    cli a;
    if (parse_args(argc, argv, &a) != 0)
        return EXIT_USAGE;
    if (a.help) {
        usage_cmd(a.cmd);
        return 0;
    }
    if (sodium_init() < 0) {
        fprintf(stderr, "fedrec-client: libsodium failed to initialize\n");
        return 1;
    }
    if (!strcmp(a.cmd, "import"))
        return cmd_import(&a);
    if (!strcmp(a.cmd, "recommend"))
        return cmd_recommend(&a);
    if (!strcmp(a.cmd, "ledger"))
        return cmd_ledger(&a);
    if (!strcmp(a.cmd, "opt-out"))
        return cmd_participation(&a, 0);
    if (!strcmp(a.cmd, "opt-in"))
        return cmd_participation(&a, 1);
    if (!strcmp(a.cmd, "info"))
        return cmd_info(&a);
    if (!strcmp(a.cmd, "forget"))
        return cmd_forget(&a);
    if (!strcmp(a.cmd, "recover"))
        return cmd_recover(&a);
    return cmd_sync(&a);
}
