/* The client API (include/fedrec/client.h) over the local store and core/mf. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <sodium.h>

#include "client/client_internal.h"
#include "core/dp/dpals.h"
#include "core/secagg/secagg.h"
#include "client/store.h"
#include "core/err.h"
#include "core/mf/mf.h"

struct fedrec_client {
    pthread_mutex_t mu;
    fedreci_store *store;
    char *url;
    char *tls_ca;     /* PEM CA file for tls+tcp://, or NULL */
    char *tls_server; /* expected certificate name, or NULL */
    uint8_t *att;     /* attestation token sent with check-ins, or NULL */
    size_t att_len;
    int syncing;
    fedreci_client_params params;
    /* round floors set by the app (0: the library's default) */
    uint32_t min_cohort, min_neighbors, min_threshold;
    double min_fraction;
    uint32_t max_seed_retries; /* 0: FEDREC_MAX_SEED_RETRIES */
    /* Derived from the stored model, rebuilt when its version changes. */
    uint64_t cache_version;
    int cache_valid;
    uint32_t *by_code;     /* model rows sorted by code, for lookups */
    fedreci_mf_step *step; /* workspace for n_items x k */
    uint32_t step_items, step_k;
};

/* ---- helpers ---------------------------------------------------------------- */

uint64_t fedreci_client_id_from_pk(const uint8_t pk[32])
{
    return fedreci_secagg_id_from_pk(pk);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const fedreci_store_model *sort_model; /* qsort context, under c->mu */
static pthread_mutex_t sort_mu = PTHREAD_MUTEX_INITIALIZER;

static int cmp_row_by_code(const void *a, const void *b)
{
    uint32_t ra = *(const uint32_t *)a, rb = *(const uint32_t *)b;
    return strcmp(sort_model->codes[ra], sort_model->codes[rb]);
}

static void cache_drop(fedrec_client *c)
{
    free(c->by_code);
    c->by_code = NULL;
    c->cache_valid = 0;
}

/* Builds the code index (and checks codes are distinct). Caller holds c->mu. */
static fedrec_err build_index(const fedreci_store_model *m, uint32_t **out)
{
    uint32_t *idx = malloc((size_t)m->n_items * sizeof *idx);
    if (!idx)
        return fedreci_error(FEDREC_ERR_NOMEM, "out of memory indexing %u catalog codes",
                             m->n_items);
    for (uint32_t i = 0; i < m->n_items; i++)
        idx[i] = i;
    pthread_mutex_lock(&sort_mu);
    sort_model = m;
    qsort(idx, m->n_items, sizeof *idx, cmp_row_by_code);
    sort_model = NULL;
    pthread_mutex_unlock(&sort_mu);
    for (uint32_t i = 1; i < m->n_items; i++)
        if (strcmp(m->codes[idx[i - 1]], m->codes[idx[i]]) == 0) {
            fedrec_err e = fedreci_error(FEDREC_ERR_INVALID,
                                         "model catalog: item code '%s' appears twice (rows %u "
                                         "and %u)",
                                         m->codes[idx[i]], idx[i - 1], idx[i]);
            free(idx);
            return e;
        }
    *out = idx;
    return FEDREC_OK;
}

/* Makes the index and the step workspace match the stored model. */
static fedrec_err cache_update(fedrec_client *c, const fedreci_store_model *m)
{
    if (c->cache_valid && c->cache_version == m->version && c->step_items == m->n_items &&
        c->step_k == m->k)
        return FEDREC_OK;
    cache_drop(c);
    fedrec_err err = build_index(m, &c->by_code);
    if (err)
        return err;
    if (!c->step || c->step_items != m->n_items || c->step_k != m->k) {
        fedreci_mf_step_destroy(c->step);
        c->step = NULL;
        err = fedreci_mf_step_create(&c->step, m->n_items, m->k);
        if (err) {
            cache_drop(c);
            return err;
        }
        c->step_items = m->n_items;
        c->step_k = m->k;
    }
    c->cache_version = m->version;
    c->cache_valid = 1;
    return FEDREC_OK;
}

static long find_row(const fedreci_store_model *m, const uint32_t *by_code, const char *code)
{
    size_t lo = 0, hi = m->n_items;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int r = strcmp(m->codes[by_code[mid]], code);
        if (r == 0)
            return by_code[mid];
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

typedef struct row_q {
    uint32_t row;
    double q;
} row_q;

static int cmp_row_q(const void *a, const void *b)
{
    uint32_t x = ((const row_q *)a)->row, y = ((const row_q *)b)->row;
    return x < y ? -1 : x > y;
}

/* The shopper's interactions with the stored model's items: distinct rows,
 * ascending, with confidence 1 + alpha log(1 + q/eps) of the summed quantity.
 * Unknown codes are ignored. items/conf are malloc'd (wipe and free). */
typedef struct user_rows {
    uint32_t *items;
    float *conf;
    uint32_t n;
} user_rows;

static void user_rows_free(user_rows *u)
{
    if (u->items) {
        sodium_memzero(u->items, (size_t)u->n * sizeof *u->items);
        free(u->items);
    }
    if (u->conf) {
        sodium_memzero(u->conf, (size_t)u->n * sizeof *u->conf);
        free(u->conf);
    }
    u->items = NULL;
    u->conf = NULL;
    u->n = 0;
}

static fedrec_err user_rows_build(fedrec_client *c, const fedreci_store_model *m, user_rows *u)
{
    size_t np = 0;
    const fedreci_store_purchase *p = fedreci_store_purchases(c->store, &np);
    memset(u, 0, sizeof *u);
    row_q *rq = malloc((np ? np : 1) * sizeof *rq);
    if (!rq)
        return fedreci_error(FEDREC_ERR_NOMEM, "out of memory for %zu purchases", np);
    size_t n = 0;
    for (size_t i = 0; i < np; i++) {
        long r = find_row(m, c->by_code, p[i].code);
        if (r >= 0) {
            rq[n].row = (uint32_t)r;
            rq[n].q = p[i].quantity;
            n++;
        }
    }
    qsort(rq, n, sizeof *rq, cmp_row_q);
    size_t d = 0;
    for (size_t i = 0; i < n; i++) {
        if (d > 0 && rq[d - 1].row == rq[i].row)
            rq[d - 1].q += rq[i].q;
        else
            rq[d++] = rq[i];
    }
    u->items = malloc((d ? d : 1) * sizeof *u->items);
    u->conf = malloc((d ? d : 1) * sizeof *u->conf);
    if (!u->items || !u->conf) {
        free(u->items);
        free(u->conf);
        u->items = NULL;
        u->conf = NULL;
        sodium_memzero(rq, (np ? np : 1) * sizeof *rq);
        free(rq);
        return fedreci_error(FEDREC_ERR_NOMEM, "out of memory for %zu purchases", np);
    }
    const fedreci_client_params *pp = &c->params;
    for (size_t i = 0; i < d; i++) {
        u->items[i] = rq[i].row;
        u->conf[i] = (float)(1.0 + pp->alpha * log1p(rq[i].q / pp->eps));
    }
    u->n = (uint32_t)d;
    sodium_memzero(rq, (np ? np : 1) * sizeof *rq);
    free(rq);
    return FEDREC_OK;
}

/* ---- ABI: sizes and growable structs ------------------------------------------ */

size_t fedrec_client_store_key_bytes(void)
{
    return FEDREC_STORE_KEY_BYTES;
}

size_t fedrec_client_item_code_max(void)
{
    return FEDREC_ITEM_CODE_MAX;
}

size_t fedrec_client_ledger_what_max(void)
{
    return FEDREC_LEDGER_WHAT_MAX;
}

size_t fedrec_client_options_size(void)
{
    return sizeof(fedrec_client_options);
}

size_t fedrec_sync_result_size(void)
{
    return sizeof(fedrec_sync_result);
}

size_t fedrec_ledger_entry_size(void)
{
    return sizeof(fedrec_ledger_entry);
}

size_t fedrec_client_info_size(void)
{
    return sizeof(fedrec_client_info);
}

size_t fedrec_recommendation_size(void)
{
    return sizeof(fedrec_recommendation);
}

/* fedrec_refusal codes and their stable names (core/secagg/secagg.h
 * FEDRECI_REFUSE_*, client/session.h), by code. */
static const char *const refusal_names[] = {
    "none",
    "below_floors",
    "roster_invalid",
    "relay_misaddressed",
    "unmask_both_sets",
    "stale_round",
    "params_changed",
    "protocol_violation",
    "roster_missing_self",
    "advert_id_mismatch",
    "advert_bad_signature",
    "binding_mismatch",
    "unmask_invalid",
    "unmask_second_request",
    "seed_mismatch",
    "malformed_reply",
    "consistency_failed",
    "params_invalid",
    "seed_retry_limit",
};

const char *fedrec_refusal_name(uint32_t refusal)
{
    return refusal < sizeof refusal_names / sizeof *refusal_names ? refusal_names[refusal]
                                                                  : "unknown";
}

uint32_t fedreci_refusal_code(const char *name)
{
    for (uint32_t i = 1; name && i < sizeof refusal_names / sizeof *refusal_names; i++)
        if (strcmp(refusal_names[i], name) == 0)
            return i;
    return FEDREC_REFUSAL_PROTOCOL;
}

fedrec_err fedreci_check_struct_size(uint32_t struct_size, size_t v1_size, const char *fn,
                                     const char *what)
{
    if (struct_size < v1_size)
        return fedreci_error(FEDREC_ERR_INVALID,
                             "%s: %s->struct_size is %u, at least %zu expected (set it to "
                             "sizeof the struct)",
                             fn, what, struct_size, v1_size);
    return FEDREC_OK;
}

void fedreci_copy_out(void *out, const void *full, size_t size)
{
    uint32_t want;
    memcpy(&want, out, sizeof want);
    memcpy(out, full, want < size ? want : size);
    memcpy(out, &want, sizeof want);
}

/* ---- open / close ------------------------------------------------------------- */

/* flags: fedreci_store_open_flags's (0 or FEDRECI_OPEN_MUST_EXIST). */
static fedrec_err client_open(fedrec_client **out, const char *store_path,
                              const char *coordinator_url, fedreci_key_kind kind,
                              const uint8_t *key, size_t key_len, unsigned flags)
{
    if (!out || !store_path || !*store_path || !key)
        return fedreci_error(FEDREC_ERR_INVALID, "fedrec_client_open: %s is NULL or empty",
                             !out                            ? "out"
                             : (!store_path || !*store_path) ? "store_path"
                                                             : "key");
    fedrec_client *c = calloc(1, sizeof *c);
    if (!c)
        return fedreci_error(FEDREC_ERR_NOMEM, "%s: out of memory", store_path);
    if (pthread_mutex_init(&c->mu, NULL) != 0) {
        free(c);
        return fedreci_error(FEDREC_ERR_NOMEM, "%s: cannot create a mutex", store_path);
    }
    c->params.alpha = 1.0f;
    c->params.eps = 1.0f;
    c->params.lambda = 0.1f;
    if (coordinator_url && !(c->url = strdup(coordinator_url))) {
        fedrec_client_close(c);
        return fedreci_error(FEDREC_ERR_NOMEM, "%s: out of memory", store_path);
    }
    fedrec_err err =
        fedreci_store_open_flags(&c->store, store_path, kind, key, key_len, 0, 0, flags);
    if (err) {
        fedrec_client_close(c);
        return err;
    }
    *out = c;
    return FEDREC_OK;
}

fedrec_err fedrec_client_open(fedrec_client **out, const char *store_path,
                              const char *coordinator_url,
                              const uint8_t key[FEDREC_STORE_KEY_BYTES])
{
    return client_open(out, store_path, coordinator_url, FEDRECI_KEY_RAW, key,
                       FEDREC_STORE_KEY_BYTES, 0);
}

fedrec_err fedrec_client_open_passphrase(fedrec_client **out, const char *store_path,
                                         const char *coordinator_url, const char *passphrase,
                                         size_t passphrase_len)
{
    return client_open(out, store_path, coordinator_url, FEDRECI_KEY_PASSPHRASE,
                       (const uint8_t *)passphrase, passphrase_len, 0);
}

void fedrec_client_options_init(fedrec_client_options *o)
{
    if (!o)
        return;
    memset(o, 0, sizeof *o);
    o->struct_size = sizeof *o;
}

fedrec_err fedrec_client_open_with(fedrec_client **out, const char *store_path,
                                   const fedrec_client_options *opts)
{
    static const char fn[] = "fedrec_client_open_with";
    if (!opts)
        return fedreci_error(FEDREC_ERR_INVALID, "%s: opts is NULL", fn);
    fedrec_err err =
        fedreci_check_struct_size(opts->struct_size, FEDRECI_CLIENT_OPTIONS_V1_SIZE, fn, "opts");
    if (err)
        return err;
    fedrec_client_options o;
    memset(&o, 0, sizeof o);
    memcpy(&o, opts, opts->struct_size < sizeof o ? opts->struct_size : sizeof o);
    for (size_t i = sizeof o; i < opts->struct_size; i++)
        if (((const unsigned char *)opts)[i] != 0)
            return fedreci_error(FEDREC_ERR_UNSUPPORTED,
                                 "%s: opts byte %zu is set: an option this library (%s) does not "
                                 "know",
                                 fn, i, fedrec_version());
    if (!o.key == !o.passphrase)
        return fedreci_error(FEDREC_ERR_INVALID, "%s: give exactly one of key and passphrase", fn);
    if (o.min_cohort == 1)
        return fedreci_error(FEDREC_ERR_INVALID,
                             "%s: opts->min_cohort is 1 (a round has at least 2 clients; 0 is the "
                             "default, %u)",
                             fn, FEDREC_FLOOR_MIN_COHORT);
    if (o.min_threshold_fraction != 0 &&
        !(o.min_threshold_fraction >= 0.5 && o.min_threshold_fraction <= 1.0))
        return fedreci_error(FEDREC_ERR_INVALID,
                             "%s: opts->min_threshold_fraction is %g: 0 (the default, 2/3) or "
                             "between 0.5 and 1",
                             fn, o.min_threshold_fraction);
    if (o.max_seed_retries > FEDRECI_SECAGG_SEED_RETRIES_CAP)
        return fedreci_error(
            FEDREC_ERR_INVALID, "%s: opts->max_seed_retries is %u: at most %u (0: the default, %u)",
            fn, o.max_seed_retries, FEDRECI_SECAGG_SEED_RETRIES_CAP, FEDREC_MAX_SEED_RETRIES);
    if (o.must_exist > 1)
        return fedreci_error(FEDREC_ERR_INVALID, "%s: opts->must_exist is %u: 0 or 1", fn,
                             o.must_exist);
    unsigned flags = o.must_exist ? FEDRECI_OPEN_MUST_EXIST : 0;
    fedrec_client *c = NULL;
    if (o.key)
        err = client_open(&c, store_path, o.coordinator_url, FEDRECI_KEY_RAW, o.key,
                          FEDREC_STORE_KEY_BYTES, flags);
    else
        err = client_open(&c, store_path, o.coordinator_url, FEDRECI_KEY_PASSPHRASE,
                          (const uint8_t *)o.passphrase, o.passphrase_len, flags);
    if (err)
        return err;
    if (o.tls_ca_file && (err = fedrec_client_set_tls(c, o.tls_ca_file, o.tls_server_name))) {
        fedrec_client_close(c);
        return err;
    }
    c->min_cohort = o.min_cohort;
    c->min_neighbors = o.min_neighbors;
    c->min_threshold = o.min_threshold;
    c->min_fraction = o.min_threshold_fraction;
    c->max_seed_retries = o.max_seed_retries;
    *out = c;
    return FEDREC_OK;
}

static fedrec_err client_recover(const char *store_path, fedreci_key_kind kind, const uint8_t *key,
                                 size_t key_len, uint64_t *n_lost)
{
    if (!store_path || !*store_path || !key)
        return fedreci_error(FEDREC_ERR_INVALID, "fedrec_client_recover: %s is NULL or empty",
                             !key ? "key" : "store_path");
    /* Recovery never makes a store: one must be there. */
    size_t n = strlen(store_path) + sizeof "/meta";
    char *meta = malloc(n);
    if (!meta)
        return fedreci_error(FEDREC_ERR_NOMEM, "%s: out of memory", store_path);
    snprintf(meta, n, "%s/meta", store_path);
    struct stat st;
    int exists = stat(meta, &st) == 0;
    free(meta);
    if (!exists)
        return fedreci_error(FEDREC_ERR_NOT_FOUND, "%s: no store to recover", store_path);
    fedreci_store *s = NULL;
    fedrec_err err = fedreci_store_open_flags(&s, store_path, kind, key, key_len, 0, 0,
                                              FEDRECI_OPEN_KEEP_PARTIAL);
    if (err)
        return err;
    uint64_t lost = fedreci_store_lost(s);
    if (lost)
        err = fedreci_store_compact(s);
    fedreci_store_close(s);
    if (!err && n_lost)
        *n_lost = lost;
    return err;
}

fedrec_err fedrec_client_recover(const char *store_path, const uint8_t key[FEDREC_STORE_KEY_BYTES],
                                 uint64_t *n_lost)
{
    return client_recover(store_path, FEDRECI_KEY_RAW, key, FEDREC_STORE_KEY_BYTES, n_lost);
}

fedrec_err fedrec_client_recover_passphrase(const char *store_path, const char *passphrase,
                                            size_t passphrase_len, uint64_t *n_lost)
{
    return client_recover(store_path, FEDRECI_KEY_PASSPHRASE, (const uint8_t *)passphrase,
                          passphrase_len, n_lost);
}

static void client_free(fedrec_client *c)
{
    cache_drop(c);
    fedreci_mf_step_destroy(c->step);
    free(c->url);
    free(c->tls_ca);
    free(c->tls_server);
    free(c->att);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

void fedrec_client_close(fedrec_client *c)
{
    if (!c)
        return;
    fedreci_store_close(c->store);
    client_free(c);
}

fedrec_err fedrec_client_forget(fedrec_client *c)
{
    return fedreci_client_erase(c, 0);
}

fedrec_err fedreci_client_erase(fedrec_client *c, int keep_dir)
{
    if (!c)
        return fedreci_error(FEDREC_ERR_INVALID, "fedrec_client_forget: NULL client");
    fedrec_err err = fedreci_store_erase(c->store, keep_dir);
    c->store = NULL;
    client_free(c);
    return err;
}

/* ---- purchases, consent, ledger, info ---------------------------------------- */

#define CHECK_CLIENT(c, fn)                                                                        \
    do {                                                                                           \
        if (!(c))                                                                                  \
            return fedreci_error(FEDREC_ERR_INVALID, "%s: NULL client", fn);                       \
    } while (0)

fedrec_err fedrec_client_record(fedrec_client *c, const char *item_code, int64_t time_unix,
                                uint32_t quantity)
{
    CHECK_CLIENT(c, "fedrec_client_record");
    pthread_mutex_lock(&c->mu);
    fedrec_err err = fedreci_store_add_purchase(c->store, item_code, time_unix, quantity, NULL);
    pthread_mutex_unlock(&c->mu);
    return err;
}

fedrec_err fedrec_client_set_participation(fedrec_client *c, int opted_in)
{
    CHECK_CLIENT(c, "fedrec_client_set_participation");
    pthread_mutex_lock(&c->mu);
    fedrec_err err = FEDREC_OK;
    if (fedreci_store_participation(c->store) != (opted_in != 0))
        err = fedreci_store_set_participation(c->store, opted_in != 0);
    pthread_mutex_unlock(&c->mu);
    return err;
}

fedrec_err fedrec_client_get_participation(fedrec_client *c, int *opted_in)
{
    CHECK_CLIENT(c, "fedrec_client_get_participation");
    if (!opted_in)
        return fedreci_error(FEDREC_ERR_INVALID, "fedrec_client_get_participation: NULL out");
    pthread_mutex_lock(&c->mu);
    *opted_in = fedreci_store_participation(c->store);
    pthread_mutex_unlock(&c->mu);
    return FEDREC_OK;
}

fedrec_err fedrec_client_ledger_count(fedrec_client *c, size_t *n)
{
    CHECK_CLIENT(c, "fedrec_client_ledger_count");
    if (!n)
        return fedreci_error(FEDREC_ERR_INVALID, "fedrec_client_ledger_count: NULL out");
    pthread_mutex_lock(&c->mu);
    fedreci_store_ledger(c->store, n);
    pthread_mutex_unlock(&c->mu);
    return FEDREC_OK;
}

fedrec_err fedrec_client_ledger_get(fedrec_client *c, size_t index, fedrec_ledger_entry *e)
{
    CHECK_CLIENT(c, "fedrec_client_ledger_get");
    if (!e)
        return fedreci_error(FEDREC_ERR_INVALID, "fedrec_client_ledger_get: NULL out");
    fedrec_err err = fedreci_check_struct_size(e->struct_size, FEDRECI_LEDGER_ENTRY_V1_SIZE,
                                               "fedrec_client_ledger_get", "entry");
    if (err)
        return err;
    fedrec_ledger_entry full, *out = e;
    e = &full;
    pthread_mutex_lock(&c->mu);
    size_t n = 0;
    const fedreci_ledger_rec *l = fedreci_store_ledger(c->store, &n);
    if (index >= n) {
        err = fedreci_error(FEDREC_ERR_RANGE, "ledger entry %zu: the ledger has %zu entries", index,
                            n);
    } else {
        memset(e, 0, sizeof *e);
        e->struct_size = sizeof *e;
        e->time_unix_ms = l[index].time_ms;
        e->round_id = l[index].round;
        e->stage = l[index].stage;
        e->bytes_sent = l[index].bytes_sent;
        e->clipped = l[index].clipped;
        memcpy(e->what, l[index].what, sizeof e->what);
        e->kind = l[index].kind;
        e->refusal = l[index].refusal;
        e->cohort = l[index].n;
        e->neighbors = l[index].k;
        e->threshold = l[index].t;
        memcpy(e->reason, l[index].reason, sizeof e->reason);
        fedreci_copy_out(out, e, sizeof *e);
    }
    pthread_mutex_unlock(&c->mu);
    sodium_memzero(&full, sizeof full);
    return err;
}

fedrec_err fedrec_client_privacy_count(fedrec_client *c, size_t *n)
{
    CHECK_CLIENT(c, "fedrec_client_privacy_count");
    if (!n)
        return fedreci_error(FEDREC_ERR_INVALID, "fedrec_client_privacy_count: NULL out");
    pthread_mutex_lock(&c->mu);
    fedreci_store_dp(c->store, n);
    pthread_mutex_unlock(&c->mu);
    return FEDREC_OK;
}

fedrec_err fedrec_client_privacy_get(fedrec_client *c, size_t index, fedrec_privacy_entry *e)
{
    CHECK_CLIENT(c, "fedrec_client_privacy_get");
    if (!e)
        return fedreci_error(FEDREC_ERR_INVALID, "fedrec_client_privacy_get: NULL out");
    fedrec_err err = fedreci_check_struct_size(e->struct_size, sizeof(fedrec_privacy_entry),
                                               "fedrec_client_privacy_get", "entry");
    if (err)
        return err;
    fedrec_privacy_entry full, *out = e;
    e = &full;
    pthread_mutex_lock(&c->mu);
    size_t n = 0;
    const fedreci_dp_ledger_rec *l = fedreci_store_dp(c->store, &n);
    if (index >= n) {
        err = fedreci_error(FEDREC_ERR_RANGE,
                            "privacy entry %zu: the ledger has %zu differentially private rounds",
                            index, n);
    } else {
        memset(e, 0, sizeof *e);
        e->struct_size = sizeof *e;
        e->time_unix_ms = l[index].time_ms;
        e->round_id = l[index].round;
        e->refused = (int)l[index].refused;
        e->epsilon_round = l[index].eps_round;
        e->epsilon_cumulative = l[index].eps_cumulative;
        e->delta = l[index].delta;
        e->noise_variance = l[index].noise_var;
        e->min_survivors = l[index].min_survivors;
        e->l2_bound = l[index].l2_bound;
        e->scale = l[index].scale;
        e->sensitivity_l2 = l[index].l2;
        memcpy(e->reason, l[index].reason, sizeof e->reason);
        fedreci_copy_out(out, e, sizeof *e);
    }
    pthread_mutex_unlock(&c->mu);
    return err;
}

fedrec_err fedrec_client_get_info(fedrec_client *c, fedrec_client_info *info)
{
    CHECK_CLIENT(c, "fedrec_client_get_info");
    if (!info)
        return fedreci_error(FEDREC_ERR_INVALID, "fedrec_client_get_info: NULL out");
    fedrec_err err = fedreci_check_struct_size(info->struct_size, FEDRECI_CLIENT_INFO_V1_SIZE,
                                               "fedrec_client_get_info", "info");
    if (err)
        return err;
    fedrec_client_info full, *out = info;
    info = &full;
    pthread_mutex_lock(&c->mu);
    memset(info, 0, sizeof *info);
    info->struct_size = sizeof *info;
    memcpy(info->identity_pk, fedreci_store_identity_pk(c->store), 32);
    info->client_id = fedreci_client_id_from_pk(info->identity_pk);
    info->opted_in = fedreci_store_participation(c->store);
    size_t n = 0;
    fedreci_store_purchases(c->store, &n);
    info->purchases = n;
    fedreci_store_ledger(c->store, &n);
    info->ledger_entries = n;
    const fedreci_store_model *m = fedreci_store_get_model(c->store);
    if (m) {
        info->model_version = m->version;
        info->model_items = m->n_items;
        info->model_factors = m->k;
    }
    pthread_mutex_unlock(&c->mu);
    fedreci_copy_out(out, info, sizeof *info);
    return FEDREC_OK;
}

/* ---- recommend ---------------------------------------------------------------- */

fedrec_err fedrec_client_recommend(fedrec_client *c, uint32_t k, fedrec_recommendation *out,
                                   uint32_t *n_out)
{
    CHECK_CLIENT(c, "fedrec_client_recommend");
    if (!out || !n_out || k == 0)
        return fedreci_error(FEDREC_ERR_INVALID, "fedrec_client_recommend: %s",
                             k == 0 ? "k is 0" : "NULL output");
    pthread_mutex_lock(&c->mu);
    const fedreci_store_model *m = fedreci_store_get_model(c->store);
    fedrec_err err = FEDREC_OK;
    user_rows u = {0};
    float *x = NULL, *scores = NULL, *top_s = NULL;
    uint32_t *top_i = NULL, *excl = NULL;
    size_t n_excl = 0;
    if (!m) {
        err = fedreci_error(FEDREC_ERR_EMPTY, "%s: no model downloaded yet (run sync first)",
                            fedreci_store_dir(c->store));
        goto out;
    }
    err = cache_update(c, m);
    if (!err)
        err = user_rows_build(c, m, &u);
    if (err)
        goto out;
    uint32_t kk = k < m->n_items ? k : m->n_items;
    x = malloc((size_t)m->k * sizeof *x);
    scores = malloc((size_t)m->n_items * sizeof *scores);
    top_s = malloc((size_t)kk * sizeof *top_s);
    top_i = malloc((size_t)kk * sizeof *top_i);
    if (!x || !scores || !top_s || !top_i) {
        err = fedreci_error(FEDREC_ERR_NOMEM, "out of memory scoring %u items", m->n_items);
        goto out;
    }
    fedreci_mf_user mu = {u.items, u.conf, u.n};
    err = fedreci_mf_solve_user(c->step, m->y, m->gram, m->n_items, m->k, c->params.lambda, &mu, x);
    if (err)
        goto out;
    /* never recommend what the shopper bought, nor a retired product */
    if (m->n_retired) {
        excl = malloc((u.n + m->n_retired) * sizeof *excl);
        if (!excl) {
            err = fedreci_error(FEDREC_ERR_NOMEM, "out of memory for the excluded items");
            goto out;
        }
        size_t a = 0, b = 0;
        while (a < u.n || b < m->n_retired)
            excl[n_excl++] = (b >= m->n_retired || (a < u.n && u.items[a] < m->retired[b]))
                                 ? u.items[a++]
                                 : m->retired[b++];
    }
    uint32_t n = 0;
    err = fedreci_mf_topk(m->y, m->n_items, m->k, x, excl ? excl : u.items, excl ? n_excl : u.n, kk,
                          scores, top_i, top_s, &n);
    if (err)
        goto out;
    for (uint32_t i = 0; i < n; i++) {
        memset(out[i].item_code, 0, sizeof out[i].item_code);
        strcpy(out[i].item_code, m->codes[top_i[i]]);
        out[i].score = top_s[i];
    }
    *n_out = n;
out:
    pthread_mutex_unlock(&c->mu);
    user_rows_free(&u);
    if (x) {
        sodium_memzero(x, (m ? m->k : 0) * sizeof *x);
        free(x);
    }
    if (scores) {
        sodium_memzero(scores, (size_t)m->n_items * sizeof *scores);
        free(scores);
    }
    if (excl) { /* holds the shopper's purchases */
        sodium_memzero(excl, n_excl * sizeof *excl);
        free(excl);
    }
    free(top_s);
    free(top_i);
    return err;
}

/* ---- internal entry points ------------------------------------------------------ */

fedrec_err fedreci_client_set_params(fedrec_client *c, const fedreci_client_params *p)
{
    CHECK_CLIENT(c, "fedreci_client_set_params");
    if (!p || !isfinite(p->alpha) || !isfinite(p->eps) || !isfinite(p->lambda) || p->alpha < 0 ||
        p->eps <= 0 || p->lambda < 0)
        return fedreci_error(FEDREC_ERR_INVALID,
                             "client parameters: need alpha >= 0, eps > 0, lambda >= 0");
    pthread_mutex_lock(&c->mu);
    c->params = *p;
    pthread_mutex_unlock(&c->mu);
    return FEDREC_OK;
}

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Refuses a catalog with a duplicate code before anything is stored. */
static fedrec_err check_distinct(const char *const *codes, uint32_t n)
{
    if (!codes)
        return fedreci_error(FEDREC_ERR_INVALID, "model catalog: NULL codes");
    const char **v = malloc((n ? n : 1) * sizeof *v);
    if (!v)
        return fedreci_error(FEDREC_ERR_NOMEM, "out of memory checking %u codes", n);
    for (uint32_t i = 0; i < n; i++) {
        if (!codes[i]) {
            free(v);
            return fedreci_error(FEDREC_ERR_INVALID, "model catalog: row %u has no code", i);
        }
        v[i] = codes[i];
    }
    qsort(v, n, sizeof *v, cmp_str_ptr);
    for (uint32_t i = 1; i < n; i++)
        if (strcmp(v[i - 1], v[i]) == 0) {
            fedrec_err e = fedreci_error(FEDREC_ERR_INVALID,
                                         "model catalog: item code '%s' appears twice", v[i]);
            free(v);
            return e;
        }
    free(v);
    return FEDREC_OK;
}

fedrec_err fedreci_client_put_model(fedrec_client *c, uint64_t version, uint32_t n_items,
                                    uint32_t k, const float *y, const float *gram,
                                    const char *const *codes, int *stored)
{
    return fedreci_client_put_model_retired(c, version, n_items, k, y, gram, codes, NULL, 0,
                                            stored);
}

fedrec_err fedreci_client_put_model_retired(fedrec_client *c, uint64_t version, uint32_t n_items,
                                            uint32_t k, const float *y, const float *gram,
                                            const char *const *codes, const uint32_t *retired,
                                            uint32_t n_retired, int *stored)
{
    CHECK_CLIENT(c, "fedreci_client_put_model");
    pthread_mutex_lock(&c->mu);
    const fedreci_store_model *cur = fedreci_store_get_model(c->store);
    fedrec_err err = FEDREC_OK;
    int did = 0;
    if (!cur || version > cur->version) {
        err = check_distinct(codes, n_items);
        if (!err)
            err = fedreci_store_set_model(c->store, version, n_items, k, y, gram, codes, retired,
                                          n_retired);
        if (!err) {
            cache_drop(c);
            did = 1;
        }
    }
    pthread_mutex_unlock(&c->mu);
    if (!err && stored)
        *stored = did;
    return err;
}

fedrec_err fedreci_client_model_checksum(fedrec_client *c, uint64_t *version, uint8_t checksum[32])
{
    CHECK_CLIENT(c, "fedreci_client_model_checksum");
    if (!version || !checksum)
        return fedreci_error(FEDREC_ERR_INVALID, "model checksum: NULL output");
    pthread_mutex_lock(&c->mu);
    const fedreci_store_model *m = fedreci_store_get_model(c->store);
    fedrec_err err = FEDREC_OK;
    if (!m) {
        err = fedreci_error(FEDREC_ERR_EMPTY, "%s: no model stored", fedreci_store_dir(c->store));
    } else {
        *version = m->version;
        memcpy(checksum, m->checksum, 32); /* kept by the store: never hashed here */
    }
    pthread_mutex_unlock(&c->mu);
    return err;
}

fedrec_err fedreci_client_local_update(fedrec_client *c, float *update, size_t len,
                                       uint32_t *weight, double *loss)
{
    return fedreci_client_local_update_xx(c, update, len, 0.0, 0.0, weight, loss);
}

fedrec_err fedreci_client_local_update_xx(fedrec_client *c, float *update, size_t len,
                                          double x_bound, double xx_weight, uint32_t *weight,
                                          double *loss)
{
    CHECK_CLIENT(c, "fedreci_client_local_update");
    if (!update || !weight)
        return fedreci_error(FEDREC_ERR_INVALID, "local update: NULL output");
    const int xx = x_bound != 0.0 || xx_weight != 0.0;
    if (xx &&
        (!(x_bound > 0.0) || !isfinite(x_bound) || !(xx_weight > 0.0) || !isfinite(xx_weight)))
        return fedreci_error(FEDREC_ERR_INVALID,
                             "local update: x_u x_u^T block with bound %g and weight %g (need "
                             "finite, > 0)",
                             x_bound, xx_weight);
    pthread_mutex_lock(&c->mu);
    const fedreci_store_model *m = fedreci_store_get_model(c->store);
    fedrec_err err = FEDREC_OK;
    user_rows u = {0};
    float *x = NULL;
    if (!m) {
        err = fedreci_error(FEDREC_ERR_EMPTY, "%s: no model to train on",
                            fedreci_store_dir(c->store));
        goto out;
    }
    if (len != (size_t)m->n_items * m->k) {
        err = fedreci_error(FEDREC_ERR_INVALID,
                            "local update: %zu floats, the model has %u items x %u factors", len,
                            m->n_items, m->k);
        goto out;
    }
    err = cache_update(c, m);
    if (!err)
        err = user_rows_build(c, m, &u);
    if (err)
        goto out;
    x = malloc((size_t)m->k * sizeof *x);
    if (!x) {
        err = fedreci_error(FEDREC_ERR_NOMEM, "out of memory");
        goto out;
    }
    fedreci_mf_user mu = {u.items, u.conf, u.n};
    double l = 0;
    err = fedreci_mf_client_step(c->step, m->y, m->gram, m->n_items, m->k, c->params.lambda, &mu, x,
                                 update, &l);
    if (!err && xx)
        err = fedreci_mf_xx_block(x, m->k, x_bound, xx_weight, update + len, NULL);
    if (!err)
        err = fedreci_store_set_user_factors(c->store, x, m->k);
    if (!err) {
        *weight = 1;
        if (loss)
            *loss = l;
    }
out:
    pthread_mutex_unlock(&c->mu);
    user_rows_free(&u);
    if (x) {
        sodium_memzero(x, (size_t)m->k * sizeof *x);
        free(x);
    }
    return err;
}

fedrec_err fedreci_client_dp_contribution(fedrec_client *c, const fedreci_dp_round_params *dp,
                                          float *v, size_t len)
{
    CHECK_CLIENT(c, "fedreci_client_dp_contribution");
    if (!dp || !v)
        return fedreci_error(FEDREC_ERR_INVALID, "dp contribution: NULL argument");
    pthread_mutex_lock(&c->mu);
    const fedreci_store_model *m = fedreci_store_get_model(c->store);
    fedrec_err err = FEDREC_OK;
    user_rows u = {0};
    if (!m) {
        err = fedreci_error(FEDREC_ERR_EMPTY, "%s: no model to train on",
                            fedreci_store_dir(c->store));
        goto out;
    }
    fedreci_dpals a = {m->n_items, m->k, dp->row_bound, dp->gram_weight};
    if (len != fedreci_dpals_dim(&a)) {
        err = fedreci_error(FEDREC_ERR_INVALID,
                            "dp contribution: %zu floats, the model of %u x %u needs %zu", len,
                            m->n_items, m->k, fedreci_dpals_dim(&a));
        goto out;
    }
    err = cache_update(c, m);
    if (!err)
        err = user_rows_build(c, m, &u);
    if (!err) {
        fedreci_mf_user mu = {u.items, u.conf, u.n};
        err = fedreci_dpals_client(&a, c->step, m->y, m->gram, (float)dp->lambda, &mu, v);
    }
out:
    pthread_mutex_unlock(&c->mu);
    user_rows_free(&u);
    return err;
}

fedrec_err fedreci_client_dp_record(fedrec_client *c, uint64_t round,
                                    const fedreci_dp_round_params *dp, const fedreci_dp_event *ev,
                                    double eps, int refused, const char *reason)
{
    CHECK_CLIENT(c, "fedreci_client_dp_record");
    fedreci_dp_ledger_rec l;
    memset(&l, 0, sizeof l);
    l.time_ms = now_ms();
    l.round = round;
    l.refused = refused ? 1u : 0u;
    l.min_survivors = dp->min_survivors;
    l.delta = dp->delta;
    l.noise_var = dp->noise_var;
    l.l2_bound = dp->l2_bound;
    l.scale = dp->scale;
    snprintf(l.reason, sizeof l.reason, "%s", reason ? reason : "");
    if (!refused && ev) {
        l.eps_round = eps;
        l.mu = ev->mu;
        l.l1 = ev->l1;
        l.l2 = ev->l2;
    }
    pthread_mutex_lock(&c->mu);
    /* the cumulative epsilon: every spent round so far and this one,
       composed, at the smallest delta seen (the larger epsilon) */
    size_t n = 0;
    const fedreci_dp_ledger_rec *prev = fedreci_store_dp(c->store, &n);
    fedreci_dp_accountant acc;
    fedreci_dp_accountant_init(&acc);
    double delta = refused ? 1.0 : l.delta;
    fedrec_err err = FEDREC_OK;
    for (size_t i = 0; i <= n && !err; i++) {
        const fedreci_dp_ledger_rec *r = i < n ? &prev[i] : &l;
        if (r->refused || !(r->mu > 0))
            continue;
        fedreci_dp_event e = {.mech = FEDRECI_DP_SKELLAM,
                              .mu = r->mu,
                              .l1 = r->l1,
                              .l2 = r->l2,
                              .sampling = FEDRECI_DP_FULL};
        err = fedreci_dp_accountant_compose(&acc, &e, 1);
        if (r->delta < delta)
            delta = r->delta;
    }
    if (!err && delta < 1)
        err = fedreci_dp_accountant_epsilon(&acc, delta, &l.eps_cumulative, NULL);
    if (!err && refused && n)
        l.eps_cumulative = prev[n - 1].eps_cumulative; /* nothing spent */
    if (!err)
        err = fedreci_store_add_dp(c->store, &l);
    pthread_mutex_unlock(&c->mu);
    return err;
}

fedrec_err fedreci_client_ledger_add(fedrec_client *c, int64_t time_ms, uint64_t round,
                                     uint32_t stage, uint64_t bytes_sent, const char *what,
                                     uint32_t clipped)
{
    CHECK_CLIENT(c, "fedreci_client_ledger_add");
    fedreci_ledger_rec l;
    memset(&l, 0, sizeof l);
    l.time_ms = time_ms ? time_ms : now_ms();
    l.round = round;
    l.stage = stage;
    l.bytes_sent = bytes_sent;
    l.clipped = clipped;
    if (what) {
        size_t n = strlen(what);
        if (n > FEDRECI_WHAT_MAX)
            n = FEDRECI_WHAT_MAX;
        memcpy(l.what, what, n);
    }
    pthread_mutex_lock(&c->mu);
    fedrec_err err = fedreci_store_add_ledger(c->store, &l);
    pthread_mutex_unlock(&c->mu);
    return err;
}

fedrec_err fedreci_client_ledger_refusal(fedrec_client *c, uint64_t round, uint32_t stage,
                                         const char *what, uint32_t refusal, const char *reason,
                                         uint32_t n, uint32_t k, uint32_t t)
{
    CHECK_CLIENT(c, "fedreci_client_ledger_refusal");
    fedreci_ledger_rec l;
    memset(&l, 0, sizeof l);
    l.time_ms = now_ms();
    l.round = round;
    l.stage = stage;
    l.kind = FEDREC_LEDGER_REFUSAL;
    l.refusal = refusal;
    l.n = n;
    l.k = k;
    l.t = t;
    snprintf(l.what, sizeof l.what, "%s", what ? what : "");
    snprintf(l.reason, sizeof l.reason, "%s", reason ? reason : "");
    pthread_mutex_lock(&c->mu);
    fedrec_err err = fedreci_store_add_ledger(c->store, &l);
    pthread_mutex_unlock(&c->mu);
    return err;
}

void fedreci_client_floors(const fedrec_client *c, uint32_t *min_cohort, uint32_t *min_neighbors,
                           uint32_t *min_threshold, double *min_fraction)
{
    *min_cohort = c->min_cohort ? c->min_cohort : FEDREC_FLOOR_MIN_COHORT;
    *min_neighbors = c->min_neighbors ? c->min_neighbors : FEDREC_FLOOR_MIN_NEIGHBORS;
    *min_threshold = c->min_threshold ? c->min_threshold : FEDREC_FLOOR_MIN_THRESHOLD;
    *min_fraction = c->min_fraction > 0 ? c->min_fraction : FEDREC_FLOOR_MIN_THRESHOLD_FRACTION;
}

uint32_t fedreci_client_seed_retry_bound(const fedrec_client *c)
{
    return c->max_seed_retries ? c->max_seed_retries : FEDREC_MAX_SEED_RETRIES;
}

fedrec_err fedreci_client_identity_sk(fedrec_client *c, uint8_t sk[64])
{
    CHECK_CLIENT(c, "fedreci_client_identity_sk");
    pthread_mutex_lock(&c->mu);
    memcpy(sk, fedreci_store_identity_sk(c->store), 64);
    pthread_mutex_unlock(&c->mu);
    return FEDREC_OK;
}

fedrec_err fedreci_client_sync_begin(fedrec_client *c)
{
    CHECK_CLIENT(c, "fedrec_client_sync");
    pthread_mutex_lock(&c->mu);
    int busy = c->syncing;
    c->syncing = 1;
    pthread_mutex_unlock(&c->mu);
    if (busy)
        return fedreci_error(FEDREC_ERR_BUSY, "%s: another sync is running on this client",
                             fedreci_store_dir(c->store));
    return FEDREC_OK;
}

void fedreci_client_sync_end(fedrec_client *c)
{
    pthread_mutex_lock(&c->mu);
    c->syncing = 0;
    pthread_mutex_unlock(&c->mu);
}

const char *fedreci_client_url(const fedrec_client *c)
{
    return c ? c->url : NULL;
}

fedrec_err fedrec_client_set_tls(fedrec_client *c, const char *ca_file, const char *server_name)
{
    if (!c || !ca_file || !*ca_file)
        return fedreci_error(FEDREC_ERR_INVALID, "fedrec_client_set_tls: %s",
                             !c ? "NULL client" : "no CA file");
    FILE *f = fopen(ca_file, "rb");
    if (!f)
        return fedreci_error(FEDREC_ERR_IO, "%s: %s", ca_file, strerror(errno));
    fclose(f);
    char *ca = strdup(ca_file);
    char *name = server_name ? strdup(server_name) : NULL;
    if (!ca || (server_name && !name)) {
        free(ca);
        free(name);
        return fedreci_error(FEDREC_ERR_NOMEM, "fedrec_client_set_tls: out of memory");
    }
    pthread_mutex_lock(&c->mu);
    if (c->syncing) {
        pthread_mutex_unlock(&c->mu);
        free(ca);
        free(name);
        return fedreci_error(FEDREC_ERR_BUSY, "fedrec_client_set_tls: a sync is running");
    }
    free(c->tls_ca);
    free(c->tls_server);
    c->tls_ca = ca;
    c->tls_server = name;
    pthread_mutex_unlock(&c->mu);
    return FEDREC_OK;
}

void fedreci_client_tls(const fedrec_client *c, const char **ca_file, const char **server_name)
{
    *ca_file = c ? c->tls_ca : NULL;
    *server_name = c ? c->tls_server : NULL;
}

fedrec_err fedrec_client_set_attestation(fedrec_client *c, const uint8_t *token, size_t len)
{
    if (!c || len > 2048 || (len && !token))
        return fedreci_error(FEDREC_ERR_INVALID, "fedrec_client_set_attestation: %s",
                             !c ? "NULL client" : "a token of 1..2048 bytes, or NULL and 0");
    uint8_t *t = NULL;
    if (len && !(t = malloc(len)))
        return fedreci_error(FEDREC_ERR_NOMEM, "fedrec_client_set_attestation: %zu bytes", len);
    if (len)
        memcpy(t, token, len);
    pthread_mutex_lock(&c->mu);
    if (c->syncing) {
        pthread_mutex_unlock(&c->mu);
        free(t);
        return fedreci_error(FEDREC_ERR_BUSY, "fedrec_client_set_attestation: a sync is running");
    }
    free(c->att);
    c->att = t;
    c->att_len = len;
    pthread_mutex_unlock(&c->mu);
    return FEDREC_OK;
}

void fedreci_client_attestation(const fedrec_client *c, const uint8_t **token, size_t *len)
{
    *token = c ? c->att : NULL;
    *len = c ? c->att_len : 0;
}
