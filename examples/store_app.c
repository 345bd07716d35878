/*
 * examples/store_app.c: how a store app embeds libfedrec, written against the
 * installed package only (<fedrec/client.h>, nothing internal).
 *
 *   store_app --coordinator URL --dir DIR [--devices N] [--tls-ca FILE]
 *             [--tls-server-name NAME] [--deadline-ms MS] [--expect-round]
 *             [--min-cohort N --min-neighbors K --min-threshold T]
 *   store_app --help
 *
 * Each "device" is one shopper's phone: its own store under DIR, its own key.
 * The example runs N of them (default 3) in threads of one process, so that a
 * coordinator on loopback with --min-cohort N gets a full cohort. The app's
 * side is a handful of calls:
 *
 *   fedrec_client_open_with   the store, its key (from the platform key store
 *                             in a real app), the coordinator URL, TLS, and
 *                             the round floors: the app, not the coordinator,
 *                             decides how small a round may be (the library's
 *                             defaults, n >= 10, k >= 8, t >= 6 and 2k/3,
 *                             unless the app lowers them, as --min-* do for
 *                             a test cohort of 3)
 *   fedrec_client_record      at checkout, one call per bought line
 *   fedrec_client_sync        download the model, take part in a round
 *   fedrec_client_recommend   on the device; bought items are never shown
 *   fedrec_client_ledger_*    what left the device, for the shopper to see
 *   fedrec_client_set_participation   the shopper's consent
 *   fedrec_client_forget      the shopper asks to be forgotten
 *
 * The coordinator's catalog must carry the item codes P001..P012 (the
 * install test writes such a catalog). Exits 0 when every call worked and no
 * recommendation was an item the shopper bought; with --expect-round, every
 * device must also have taken part in a completed round.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <fedrec/client.h>

#define MAX_DEVICES 16
#define BASKET 3

typedef struct device {
    int id;
    char store[4096];
    uint8_t key[FEDREC_STORE_KEY_BYTES];
    const char *basket[BASKET];
    fedrec_client *c;
    fedrec_sync_result sync;
    fedrec_err err;
    char msg[512];
} device;

static struct {
    const char *url, *dir, *ca, *server_name;
    uint32_t deadline_ms;
    int devices, expect_round;
    uint32_t min_cohort, min_neighbors, min_threshold; /* 0: the library's floors */
} opt = {NULL, NULL, NULL, NULL, 60000, 3, 0, 0, 0, 0};

static int fail(const device *d, const char *what, fedrec_err e, const char *msg)
{
    fprintf(stderr, "store_app: device %d: %s: %s: %s\n", d ? d->id : -1, what, fedrec_strerror(e),
            msg);
    return 1;
}

/* A real app keeps this key in the Android Keystore or the iOS Keychain and
 * gives the same key at every open. */
static int make_key(uint8_t *key, size_t n)
{
    FILE *f = fopen("/dev/urandom", "rb");
    size_t got = f ? fread(key, 1, n, f) : 0;
    if (f)
        fclose(f);
    return got == n ? 0 : -1;
}

static void *sync_thread(void *arg)
{
    device *d = arg;
    d->sync.struct_size = sizeof d->sync;
    d->err = fedrec_client_sync(d->c, opt.deadline_ms, &d->sync);
    snprintf(d->msg, sizeof d->msg, "%s", fedrec_errmsg());
    return NULL;
}

static int bought(const device *d, const char *code)
{
    for (int j = 0; j < BASKET; j++)
        if (!strcmp(d->basket[j], code))
            return 1;
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: store_app --coordinator URL --dir DIR [--devices 1..%d] "
            "[--tls-ca FILE] [--tls-server-name NAME] [--deadline-ms MS] "
            "[--expect-round] [--min-cohort N --min-neighbors K --min-threshold T]\n"
            "Runs N devices (threads), each with its own store under DIR, against the\n"
            "coordinator at URL: record, sync, recommend, ledger, opt-out, forget.\n"
            "The coordinator's catalog must hold the codes P001..P012 (docs/client.md,\n"
            "\"Trying the example app\"). Exit status: 0 ok, 1 a call failed, 2 bad usage.\n",
            MAX_DEVICES);
}

/* A decimal number from lo to hi, else a message naming the option and value. */
static int number(const char *name, const char *v, unsigned long lo, unsigned long hi,
                  unsigned long *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long x = strtoul(v, &end, 10);
    if (!*v || *v == '-' || *end || errno || x < lo || x > hi) {
        fprintf(stderr, "store_app: %s: '%s' is not a whole number from %lu to %lu\n", name, v, lo,
                hi);
        return -1;
    }
    *out = x;
    return 0;
}

/* 0: parsed; 1: --help printed; -1: bad usage (message printed). */
static int parse_args(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 1;
        }
        if (!strcmp(a, "--expect-round")) {
            opt.expect_round = 1;
            continue;
        }
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "store_app: unexpected argument '%s' (see --help)\n", a);
            return -1;
        }
        if (!v) {
            fprintf(stderr, "store_app: %s needs a value (see --help)\n", a);
            return -1;
        }
        i++;
        unsigned long n = 0;
        if (!strcmp(a, "--coordinator"))
            opt.url = v;
        else if (!strcmp(a, "--dir"))
            opt.dir = v;
        else if (!strcmp(a, "--tls-ca"))
            opt.ca = v;
        else if (!strcmp(a, "--tls-server-name"))
            opt.server_name = v;
        else if (!strcmp(a, "--devices")) {
            if (number(a, v, 1, MAX_DEVICES, &n))
                return -1;
            opt.devices = (int)n;
        } else if (!strcmp(a, "--deadline-ms")) {
            if (number(a, v, 1, UINT32_MAX, &n))
                return -1;
            opt.deadline_ms = (uint32_t)n;
        } else if (!strcmp(a, "--min-cohort")) {
            if (number(a, v, 0, UINT32_MAX, &n))
                return -1;
            opt.min_cohort = (uint32_t)n;
        } else if (!strcmp(a, "--min-neighbors")) {
            if (number(a, v, 0, UINT32_MAX, &n))
                return -1;
            opt.min_neighbors = (uint32_t)n;
        } else if (!strcmp(a, "--min-threshold")) {
            if (number(a, v, 0, UINT32_MAX, &n))
                return -1;
            opt.min_threshold = (uint32_t)n;
        } else {
            fprintf(stderr, "store_app: unknown option %s (see --help)\n", a);
            return -1;
        }
    }
    if (!opt.url || !opt.dir) {
        fprintf(stderr, "store_app: %s is required\n",
                !opt.url ? "--coordinator URL" : "--dir DIR");
        usage(stderr);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    int parsed = parse_args(argc, argv);
    if (parsed)
        return parsed > 0 ? 0 : 2;
    printf("libfedrec %s (headers %d.%d.%d)\n", fedrec_version(), FEDREC_VERSION_MAJOR,
           FEDREC_VERSION_MINOR, FEDREC_VERSION_PATCH);
    static const char *codes[] = {"P001", "P002", "P003", "P004", "P005", "P006",
                                  "P007", "P008", "P009", "P010", "P011", "P012"};
    static device dev[MAX_DEVICES];
    int n = opt.devices, rc = 0;
    mkdir(opt.dir, 0700);

    /* 1. Open each device's store, and 2. record its shopper's purchases. */
    for (int i = 0; i < n; i++) {
        device *d = &dev[i];
        d->id = i;
        snprintf(d->store, sizeof d->store, "%s/device-%d", opt.dir, i);
        for (int j = 0; j < BASKET; j++)
            d->basket[j] = codes[(i * 2 + j * 3) % 12];
        if (make_key(d->key, sizeof d->key))
            return fail(d, "key", FEDREC_ERR_IO, "/dev/urandom");
        fedrec_client_options o;
        fedrec_client_options_init(&o);
        o.key = d->key;
        o.coordinator_url = opt.url;
        o.tls_ca_file = opt.ca;
        o.tls_server_name = opt.server_name;
        o.min_cohort = opt.min_cohort;
        o.min_neighbors = opt.min_neighbors;
        o.min_threshold = opt.min_threshold;
        fedrec_err e = fedrec_client_open_with(&d->c, d->store, &o);
        if (e)
            return fail(d, "open", e, fedrec_errmsg());
        for (int j = 0; j < BASKET; j++) {
            /* time of purchase in seconds since 1970; quantity 1 or 2 */
            e = fedrec_client_record(d->c, d->basket[j], 1700000000 + j * 3600, 1 + (j == 0));
            if (e)
                return fail(d, "record", e, fedrec_errmsg());
        }
    }

    /* 3. Sync, all devices at once: each downloads the model and, if the
     * coordinator selects it, trains on the device and uploads a masked
     * update. The app would do this in the background (e.g. WorkManager). */
    pthread_t t[MAX_DEVICES];
    for (int i = 0; i < n; i++)
        if (pthread_create(&t[i], NULL, sync_thread, &dev[i]) != 0)
            return fail(&dev[i], "thread", FEDREC_ERR_NOMEM, "pthread_create");
    for (int i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < n; i++) {
        device *d = &dev[i];
        if (d->err) {
            rc = fail(d, "sync", d->err, d->msg);
            continue;
        }
        printf("device %d: model version %llu%s, round %llu: %s\n", i,
               (unsigned long long)d->sync.model_version,
               d->sync.model_updated ? " (downloaded)" : "", (unsigned long long)d->sync.round_id,
               d->sync.took_part ? (d->sync.round_outcome == FEDREC_OK ? "took part, completed"
                                                                       : "took part, not completed")
                                 : fedrec_strerror(d->sync.round_outcome));
        if (opt.expect_round && !(d->sync.took_part && d->sync.round_outcome == FEDREC_OK))
            rc = fail(d, "sync", d->sync.round_outcome, "--expect-round: no completed round");
    }
    if (rc)
        return rc;

    /* 4. Recommend on the device: never an item the shopper bought. */
    device *d0 = &dev[0];
    fedrec_recommendation rec[5];
    uint32_t got = 0;
    fedrec_err e = fedrec_client_recommend(d0->c, 5, rec, &got);
    if (e)
        return fail(d0, "recommend", e, fedrec_errmsg());
    printf("device 0 bought %s %s %s; recommended:", d0->basket[0], d0->basket[1], d0->basket[2]);
    for (uint32_t i = 0; i < got; i++) {
        printf(" %s (%.3f)", rec[i].item_code, (double)rec[i].score);
        if (bought(d0, rec[i].item_code))
            rc = fail(d0, "recommend", FEDREC_ERR_INTERNAL, "recommended a bought item");
    }
    printf("\n");
    if (got == 0)
        rc = fail(d0, "recommend", FEDREC_ERR_EMPTY, "no recommendation");

    /* 5. The privacy ledger: every upload, as the shopper can inspect it. */
    size_t n_ledger = 0;
    e = fedrec_client_ledger_count(d0->c, &n_ledger);
    if (e)
        return fail(d0, "ledger", e, fedrec_errmsg());
    uint64_t bytes = 0;
    for (size_t i = 0; i < n_ledger; i++) {
        fedrec_ledger_entry le = {.struct_size = sizeof le};
        e = fedrec_client_ledger_get(d0->c, i, &le);
        if (e)
            return fail(d0, "ledger", e, fedrec_errmsg());
        bytes += le.bytes_sent;
        printf("  ledger %zu: round %llu, stage %u, %s, %llu bytes\n", i,
               (unsigned long long)le.round_id, le.stage, le.what,
               (unsigned long long)le.bytes_sent);
    }
    printf("device 0: %zu uploads, %llu bytes in all\n", n_ledger, (unsigned long long)bytes);
    if (opt.expect_round && n_ledger == 0)
        rc = fail(d0, "ledger", FEDREC_ERR_EMPTY, "took part but the ledger is empty");

    /* 6. Consent: an opted-out device still syncs the model, uploads nothing. */
    e = fedrec_client_set_participation(d0->c, 0);
    if (!e) {
        d0->sync.struct_size = sizeof d0->sync;
        e = fedrec_client_sync(d0->c, opt.deadline_ms, &d0->sync);
    }
    if (e)
        return fail(d0, "opt-out sync", e, fedrec_errmsg());
    size_t after = 0;
    e = fedrec_client_ledger_count(d0->c, &after);
    if (e)
        return fail(d0, "ledger", e, fedrec_errmsg());
    printf("device 0 opted out: sync says \"%s\", ledger %zu -> %zu entries\n",
           fedrec_strerror(d0->sync.round_outcome), n_ledger, after);
    if (d0->sync.round_outcome != FEDREC_ERR_OPTED_OUT || after != n_ledger)
        rc = fail(d0, "opt-out", d0->sync.round_outcome, "an opted-out device took part");

    /* 7. Forget: every store file removed, the keys wiped. (The app then
     * deletes the key from its key store too.) */
    for (int i = 0; i < n; i++) {
        e = fedrec_client_forget(dev[i].c);
        if (e)
            rc = fail(&dev[i], "forget", e, fedrec_errmsg());
        struct stat st;
        if (stat(dev[i].store, &st) == 0)
            rc = fail(&dev[i], "forget", FEDREC_ERR_IO, "the store directory is still there");
    }
    memset(dev, 0, sizeof dev);
    if (!rc)
        printf("store_app: ok\n");
    return rc;
}
