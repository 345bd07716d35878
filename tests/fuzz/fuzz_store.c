/* libFuzzer harness for the client's local store files (client/store*.c):
 * a valid template store (fixed raw key; purchases, a ledger entry, user
 * factors, a cached model, and events in the log) is made once; each input
 * then replaces or damages one of its three files and the store is opened
 * with the right key.
 *
 * Input: byte0 % 3 picks the file (meta, snapshot, log); (byte0 / 3) % 2
 * picks the mode: 0 = the file's content is the rest of the input,
 * 1 = the template file XORed with the rest of the input from offset
 * byte1 * 4 (and truncated to the input's length when byte0 >= 0x80), so
 * the authenticated parsers see near-valid files.
 *
 * Checked: an open either fails with FEDREC_ERR_CORRUPT / BADKEY /
 * UNSUPPORTED / IO / NOMEM (never OK with a damaged authenticated file: with
 * the snapshot or log XOR-damaged in a non-zero byte the open must fail or
 * yield exactly the template's state, since damage to a torn tail is
 * dropped), and an opened store's reads are consistent. Secrets: the key is
 * fixed and public, this is a parser harness. The plaintext decoders behind
 * the authentication are fuzzed by fuzz_store_records. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "client/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t KEY[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
                                17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
static const char *NAMES[3] = {"meta", "snapshot", "log"};
static uint8_t *tmpl[3];
static size_t tmpl_len[3];
static char root[64];
static size_t tmpl_purchases;

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        abort();
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n + 1);
    if (!b || fread(b, 1, (size_t)n, f) != (size_t)n)
        abort();
    fclose(f);
    *len = (size_t)n;
    return b;
}

static void spill(const char *path, const uint8_t *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        abort();
    if (n && fwrite(b, 1, n, f) != n)
        abort();
    fclose(f);
}

static void clear_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    char p[4096 + 256];
    while ((de = readdir(d)))
        if (de->d_name[0] != '.') {
            snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
            unlink(p);
        }
    closedir(d);
}

static void make_template(void)
{
    if (sodium_init() < 0)
        abort();
    snprintf(root, sizeof root, "/tmp/fedrec_fuzz_store_%d", (int)getpid());
    mkdir(root, 0700);
    char dir[128];
    snprintf(dir, sizeof dir, "%s/tmpl", root);
    fedreci_store *s = NULL;
    if (fedreci_store_open(&s, dir, FEDRECI_KEY_RAW, KEY, 32, 0, 0) != FEDREC_OK)
        abort();
    float y[3 * 2] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f};
    const char *codes[3] = {"85123A", "71053", "POST"};
    const uint32_t retired[1] = {2}; /* POST: a retired row */
    float x[2] = {1.5f, -0.5f};
    fedreci_ledger_rec l = {
        .time_ms = 1700000000000,
        .round = 3,
        .stage = 2,
        .bytes_sent = 4096,
        .clipped = 1,
        .what = "masked input",
        .kind = 1,
        .refusal = 1,
        .n = 3,
        .k = 2,
        .t = 2,
        .reason = "round 3 (n = 3, k = 2, t = 2): cohort n = 3 is below the app's floor 10"};
    if (fedreci_store_add_purchase(s, "85123A", 1291191960, 6, NULL) ||
        fedreci_store_set_model(s, 4, 3, 2, y, NULL, codes, retired, 1) ||
        /* after the model's snapshot, these go to the log */
        fedreci_store_add_purchase(s, "71053", 1291191961, 2, NULL) ||
        fedreci_store_set_user_factors(s, x, 2) || fedreci_store_add_ledger(s, &l) ||
        fedreci_store_set_participation(s, 0) ||
        fedreci_store_add_purchase(s, "POST", 1291191962, 1, NULL))
        abort();
    fedreci_store_purchases(s, &tmpl_purchases);
    fedreci_store_close(s);
    char p[4096 + 256];
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, NAMES[i]);
        tmpl[i] = slurp(p, &tmpl_len[i]);
    }
    clear_dir(dir);
    rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!tmpl[0])
        make_template();
    if (size < 2)
        return 0;
    int which = data[0] % 3, xor_mode = (data[0] / 3) % 2, trunc = data[0] >= 0x80;
    size_t off = (size_t)data[1] * 4;
    const uint8_t *in = data + 2;
    size_t n = size - 2;
    char dir[128], p[256];
    snprintf(dir, sizeof dir, "%s/s", root);
    mkdir(dir, 0700);
    int damaged = 0;
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, NAMES[i]);
        if (i != which) {
            spill(p, tmpl[i], tmpl_len[i]);
            continue;
        }
        if (!xor_mode) {
            spill(p, in, n);
            damaged = n != tmpl_len[i] || memcmp(in, tmpl[i], n) != 0;
            continue;
        }
        size_t len = tmpl_len[i];
        if (trunc && off + n < len)
            len = off + n;
        uint8_t *b = malloc(len ? len : 1);
        memcpy(b, tmpl[i], len);
        for (size_t j = 0; j < n && off + j < len; j++) {
            b[off + j] ^= in[j];
            damaged |= in[j] != 0;
        }
        damaged |= len != tmpl_len[i];
        spill(p, b, len);
        free(b);
    }
    fedreci_store *s = NULL;
    fedrec_err e = fedreci_store_open(&s, dir, FEDRECI_KEY_RAW, KEY, 32, 0, 0);
    if (e == FEDREC_OK) {
        size_t np = 0, nl = 0;
        const fedreci_store_purchase *pu = fedreci_store_purchases(s, &np);
        fedreci_store_ledger(s, &nl);
        for (size_t i = 0; i < np; i++)
            if (pu[i].quantity == 0 || !pu[i].code[0] || (i && pu[i].seq <= pu[i - 1].seq))
                abort();
        const fedreci_store_model *m = fedreci_store_get_model(s);
        if (m && (m->n_items == 0 || m->k == 0))
            abort();
        uint32_t k = 0;
        (void)fedreci_store_user_factors(s, &k);
        /* A damaged snapshot never opens (it is one authenticated stream with
         * a final tag); a damaged log may open only by losing its tail. */
        if (damaged && which == 1)
            abort();
        if (damaged && which == 2 && np > tmpl_purchases)
            abort();
        /* an opened store accepts a new event */
        if (fedreci_store_add_purchase(s, "22423", 1291191963, 1, NULL) != FEDREC_OK)
            abort();
        fedreci_store_close(s);
    } else if (e != FEDREC_ERR_CORRUPT && e != FEDREC_ERR_BADKEY && e != FEDREC_ERR_UNSUPPORTED &&
               e != FEDREC_ERR_IO && e != FEDREC_ERR_NOMEM && e != FEDREC_ERR_CRYPTO &&
               e != FEDREC_ERR_LOST_EVENTS) {
        abort();
    }
    clear_dir(dir);
    rmdir(dir);
    return 0;
}
