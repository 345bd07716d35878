/*
 * examples/store_app.c: how a store app embeds libfedrec.
 *
 *   store_app --store DIR --data LOG [--customer ID] [--coordinator URL]
 *
 * The app's side is five calls, all from <fedrec/client.h>:
 *   fedrec_client_open       with a key from the platform key store
 *   fedrec_client_record     whenever the shopper buys something
 *   fedrec_client_sync       download the model / take part in a round
 *   fedrec_client_recommend  on the device, bought items never shown
 *   fedrec_client_close      (or fedrec_client_forget when the shopper asks)
 *
 * With --coordinator URL (a coordinator serving fedrec.v1) step 3 is a real
 * fedrec_client_sync. Without it — how the test suite runs it — there is no
 * coordinator, and an offline stand-in takes its place: the model is trained here, centrally, on
 * the purchase log LOG (what a coordinator would publish after federated rounds) and placed in the
 * store with the internal helper fedreci_client_put_model — the same call the round driver makes
 * when a model arrives. An app never does this: it calls fedrec_client_sync. The shopper's own
 * purchases come from LOG too (customer ID, default 17850), recorded one by one as an app would at
 * checkout.
 *
 * Exits 0 when every step worked and no recommended item was bought.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "fedrec/client.h"

/* Internal headers: only for the offline stand-in below. */
#include "client/client_internal.h"
#include "core/dataset/dataset.h"
#include "core/mf/mf.h"

#define FACTORS 16

/* Trains ALS on the log and stores the item factors as model version 1. */
static fedrec_err offline_model(fedrec_client *c, const fedreci_dataset *d)
{
    fedreci_mf_csr r = fedreci_dataset_csr(d);
    float *x = malloc((size_t)r.n_rows * FACTORS * sizeof *x);
    float *y = malloc((size_t)r.n_cols * FACTORS * sizeof *y);
    const char **codes = malloc((size_t)r.n_cols * sizeof *codes);
    fedrec_err err = FEDREC_ERR_NOMEM;
    if (x && y && codes) {
        fedreci_als_params p = {
            .k = FACTORS, .lambda = 0.1f, .sweeps = 8, .threads = 1, .seed = 1, .init_std = 0.01f};
        err = fedreci_als_train(&r, &p, x, y, NULL);
        for (uint32_t i = 0; i < r.n_cols; i++)
            codes[i] = fedreci_dataset_item_code(d, i);
        if (!err)
            err = fedreci_client_put_model(c, 1, r.n_cols, FACTORS, y, NULL, codes, NULL);
    }
    free(x);
    free(y);
    free(codes);
    return err;
}

typedef struct shopper {
    fedrec_client *c;
    unsigned recorded;
    fedrec_err err;
} shopper;

/* Checkout: record each purchase as it happens. */
static fedrec_err on_purchase(void *ctx, const fedreci_purchase *p)
{
    shopper *s = ctx;
    uint32_t q = p->quantity >= 1 ? (uint32_t)(p->quantity + 0.5) : 1;
    s->err = fedrec_client_record(s->c, p->item, p->time, q);
    if (!s->err)
        s->recorded++;
    return s->err;
}

static int fail(const char *what, fedrec_err e)
{
    fprintf(stderr, "store_app: %s: %s: %s\n", what, fedrec_strerror(e), fedrec_errmsg());
    return 1;
}

int main(int argc, char **argv)
{
    const char *store = NULL, *data = NULL, *customer = "17850", *url = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--store"))
            store = argv[i + 1];
        else if (!strcmp(argv[i], "--data"))
            data = argv[i + 1];
        else if (!strcmp(argv[i], "--customer"))
            customer = argv[i + 1];
        else if (!strcmp(argv[i], "--coordinator"))
            url = argv[i + 1];
    }
    if (!store || !data) {
        fprintf(stderr, "usage: store_app --store DIR --data LOG [--customer ID]\n");
        return 2;
    }
    if (sodium_init() < 0)
        return 1;

    /* 1. Open. A real app keeps this key in the Android Keystore / iOS
     * Keychain; the demo makes a fresh one and a fresh store each run. */
    uint8_t key[FEDREC_STORE_KEY_BYTES];
    randombytes_buf(key, sizeof key);
    fedrec_client *c = NULL;
    fedrec_err e = fedrec_client_open(&c, store, url, key);
    sodium_memzero(key, sizeof key);
    if (e)
        return fail("open", e);

    /* 2. Record the shopper's purchases (one call per bought line). */
    shopper s = {c, 0, FEDREC_OK};
    fedreci_dataset_options o;
    fedreci_dataset_options_default(&o);
    o.only_customer = customer;
    o.build_matrix = 0;
    o.on_row = on_purchase;
    o.on_row_ctx = &s;
    fedreci_dataset *mine = NULL;
    e = fedreci_dataset_load(&mine, data, &o, NULL);
    fedreci_dataset_destroy(mine);
    if (e) {
        fedrec_client_close(c);
        return fail("record", e);
    }
    printf("recorded %u purchases of customer %s\n", s.recorded, customer);

    /* 3. Sync: download the model, take part in a round if selected (within
     * 60 s). Offline: the stand-in described at the top of this file. */
    fedreci_dataset *all = NULL;
    fedreci_dataset_options_default(&o);
    e = fedreci_dataset_load(&all, data, &o, NULL);
    fedrec_sync_result sr = {.struct_size = sizeof sr};
    if (!e && url) {
        e = fedrec_client_sync(c, 60000, &sr);
        if (!e)
            printf("sync: model version %llu, %s\n", (unsigned long long)sr.model_version,
                   sr.took_part ? "took part in a round" : fedrec_strerror(sr.round_outcome));
    } else if (!e) {
        e = offline_model(c, all);
    }
    if (e) {
        fedreci_dataset_destroy(all);
        fedrec_client_close(c);
        return fail("model", e);
    }

    /* 4. Recommend, on the device. */
    fedrec_recommendation rec[10];
    uint32_t n = 0;
    e = fedrec_client_recommend(c, 10, rec, &n);
    if (e) {
        fedreci_dataset_destroy(all);
        fedrec_client_close(c);
        return fail("recommend", e);
    }
    int bad = n == 0;
    uint32_t u;
    int have_user = fedreci_dataset_user_find(all, customer, &u) == FEDREC_OK;
    printf("top %u for customer %s:\n", n, customer);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t item = 0;
        const char *desc = "";
        if (fedreci_dataset_item_find(all, rec[i].item_code, &item) == FEDREC_OK)
            desc = fedreci_dataset_item_description(all, item);
        printf("  %2u. %-10s %-40.40s %.3f\n", i + 1, rec[i].item_code, desc, (double)rec[i].score);
        /* Never an item the shopper bought. */
        if (have_user) {
            fedreci_mf_user mu = fedreci_dataset_user(all, u);
            for (uint32_t j = 0; j < mu.n; j++)
                if (mu.items[j] == item) {
                    fprintf(stderr, "store_app: recommended a bought item %s\n", rec[i].item_code);
                    bad = 1;
                }
        }
    }
    fedreci_dataset_destroy(all);

    /* 5. What left the device (offline: nothing, no round was run). */
    size_t uploads = 0;
    e = fedrec_client_ledger_count(c, &uploads);
    if (e) {
        fedrec_client_close(c);
        return fail("ledger", e);
    }
    printf("privacy ledger: %zu uploads\n", uploads);

    /* 6. The shopper asks to be forgotten (the demo cleans up this way). */
    e = fedrec_client_forget(c);
    if (e)
        return fail("forget", e);
    return bad || (!url && uploads != 0) ? 1 : 0;
}
