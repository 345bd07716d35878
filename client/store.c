/* client/store: see store.h and docs/client.md for the format and guarantees. */
#include "client/store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "core/err.h"

#define META_NAME "meta"
#define SNAP_NAME "snapshot"
#define LOG_NAME "log"
#define TMP_SUFFIX ".tmp"

#define META_MAGIC "FEDRECM1"
#define SNAP_MAGIC "FRSNAP01"
#define LOG_MAGIC "FRLOG001"
#define META_VERSION 1u
#define STATE_VERSION 3u      /* 2: the model carries its retired rows; 3: flags */
#define STATE_VERSION_MIN 1u  /* versions 1 and 2 still open */
#define STATE_FLAG_HAS_LOG 1u /* the directory holds a log whenever this snapshot is current */
#define META_BYTES 112u
#define META_SUM_OFF 96u
#define PREFIX_BYTES 32u /* magic(8) | store id(16) | generation(8): the AD */
#define SS_HEADER crypto_secretstream_xchacha20poly1305_HEADERBYTES
#define SS_ABYTES crypto_secretstream_xchacha20poly1305_ABYTES
#define FILE_HEADER_BYTES (PREFIX_BYTES + SS_HEADER)
#define SNAP_CHUNK (1u << 20)      /* plaintext bytes per snapshot message */
#define LOG_FRAME_MAX (1u << 16)   /* a log event is far smaller than this */
#define FILE_MAX ((size_t)1 << 31) /* refuse to read larger files */
#define COMPACT_EVERY 4096u

enum { REC_PURCHASE = 1, REC_PARTICIPATION = 2, REC_LEDGER = 3, REC_USER_FACTORS = 4 };

/* Secret material, one sodium_malloc block. */
typedef struct store_keys {
    uint8_t master[FEDRECI_STORE_KEY_BYTES];
    uint8_t stream[crypto_secretstream_xchacha20poly1305_KEYBYTES];
    uint8_t sign_sk[FEDRECI_SIGN_SK_BYTES];
} store_keys;

struct fedreci_store {
    char *dir;
    int meta_fd; /* holds the flock */
    int log_fd;  /* -1 when no usable log is open */
    int log_broken;
    uint32_t log_events;
    /* 1 once a log file is known to be in the directory: from then on it is
     * only ever replaced by rename, never removed (except by forget), so every
     * snapshot written says so (STATE_FLAG_HAS_LOG) and an open that finds no
     * log refuses the store. snap_has_log: the flag of the current snapshot. */
    int has_log;
    int snap_has_log;
    uint64_t gen;
    uint8_t store_id[FEDRECI_STORE_ID_BYTES];
    store_keys *keys;
    crypto_secretstream_xchacha20poly1305_state *push; /* sodium_malloc */
    uint8_t log_prefix[PREFIX_BYTES];

    /* state */
    int opted_in;
    uint8_t sign_pk[FEDRECI_SIGN_PK_BYTES];
    uint64_t next_seq;
    fedreci_store_purchase *purchases;
    size_t n_purchases, cap_purchases;
    fedreci_ledger_rec *ledger;
    size_t n_ledger, cap_ledger;
    float *x;
    uint32_t xk;
    fedreci_store_model *model;
};

/* ---- small buffers --------------------------------------------------------- */

typedef struct wbuf {
    uint8_t *p;
    size_t len, cap;
    int oom;
} wbuf;

static void wipe_free(void *p, size_t n)
{
    if (p) {
        sodium_memzero(p, n);
        free(p);
    }
}

/* Grows an array of elem-sized entries to hold `need`, wiping the old copy
 * (the arrays hold the shopper's purchases). Returns 0 or -1 (OOM). */
static int secure_grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap : 16;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2 / elem)
            return -1;
        ncap *= 2;
    }
    void *n = calloc(ncap, elem);
    if (!n)
        return -1;
    if (*arr) {
        memcpy(n, *arr, *cap * elem);
        wipe_free(*arr, *cap * elem);
    }
    *arr = n;
    *cap = ncap;
    return 0;
}

static void wb_put(wbuf *b, const void *d, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n > b->cap) {
        size_t ncap = b->cap ? b->cap : 256;
        while (ncap < b->len + n) {
            if (ncap > SIZE_MAX / 2) {
                b->oom = 1;
                return;
            }
            ncap *= 2;
        }
        uint8_t *np = malloc(ncap);
        if (!np) {
            b->oom = 1;
            return;
        }
        if (b->p) {
            memcpy(np, b->p, b->len);
            wipe_free(b->p, b->cap);
        }
        b->p = np;
        b->cap = ncap;
    }
    memcpy(b->p + b->len, d, n);
    b->len += n;
}

static void wb_u8(wbuf *b, uint8_t v)
{
    wb_put(b, &v, 1);
}

static void wb_u32(wbuf *b, uint32_t v)
{
    uint8_t t[4];
    for (int i = 0; i < 4; i++)
        t[i] = (uint8_t)(v >> (8 * i));
    wb_put(b, t, 4);
}

static void wb_u64(wbuf *b, uint64_t v)
{
    uint8_t t[8];
    for (int i = 0; i < 8; i++)
        t[i] = (uint8_t)(v >> (8 * i));
    wb_put(b, t, 8);
}

static void wb_floats(wbuf *b, const float *f, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &f[i], 4);
        wb_u32(b, u);
    }
}

static void wb_str(wbuf *b, const char *s)
{
    size_t n = strlen(s);
    wb_u8(b, (uint8_t)n);
    wb_put(b, s, n);
}

static void wb_free(wbuf *b)
{
    wipe_free(b->p, b->cap);
    b->p = NULL;
    b->len = b->cap = 0;
}

typedef struct rbuf {
    const uint8_t *p;
    size_t len, off;
    int bad;
} rbuf;

static const uint8_t *rb_take(rbuf *r, size_t n)
{
    if (r->bad || r->len - r->off < n) {
        r->bad = 1;
        return NULL;
    }
    const uint8_t *q = r->p + r->off;
    r->off += n;
    return q;
}

static uint8_t rb_u8(rbuf *r)
{
    const uint8_t *q = rb_take(r, 1);
    return q ? q[0] : 0;
}

static uint32_t rb_u32(rbuf *r)
{
    const uint8_t *q = rb_take(r, 4);
    uint32_t v = 0;
    if (q)
        for (int i = 0; i < 4; i++)
            v |= (uint32_t)q[i] << (8 * i);
    return v;
}

static uint64_t rb_u64(rbuf *r)
{
    const uint8_t *q = rb_take(r, 8);
    uint64_t v = 0;
    if (q)
        for (int i = 0; i < 8; i++)
            v |= (uint64_t)q[i] << (8 * i);
    return v;
}

static void rb_floats(rbuf *r, float *f, size_t n)
{
    for (size_t i = 0; i < n && !r->bad; i++) {
        uint32_t u = rb_u32(r);
        memcpy(&f[i], &u, 4);
    }
}

/* Reads a length-prefixed string of at most max bytes into out (max + 1).
 * A NUL inside the string is malformed: the writer never produces one, and
 * the string would read back shorter than it was stored. */
static void rb_str(rbuf *r, char *out, size_t max)
{
    size_t n = rb_u8(r);
    if (n > max) {
        r->bad = 1;
        return;
    }
    const uint8_t *q = rb_take(r, n);
    if (!q)
        return;
    if (memchr(q, 0, n)) {
        r->bad = 1;
        return;
    }
    memcpy(out, q, n);
    out[n] = '\0';
}

static void put_u64le(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_u64le(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static uint32_t get_u32le(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---- files ------------------------------------------------------------------ */

static char *path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static fedrec_err fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return fedreci_error(FEDREC_ERR_IO, "%s: cannot open directory: %s", dir, strerror(errno));
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    if (rc != 0)
        return fedreci_error(FEDREC_ERR_IO, "%s: fsync of directory failed: %s", dir, strerror(e));
    return FEDREC_OK;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads a whole file. FEDREC_ERR_NOT_FOUND (no message) when it is absent. */
static fedrec_err read_file(const char *path, uint8_t **buf, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return FEDREC_ERR_NOT_FOUND;
        return fedreci_error(FEDREC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return fedreci_error(FEDREC_ERR_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > FILE_MAX) {
        close(fd);
        return fedreci_error(FEDREC_ERR_TOO_BIG, "%s: %lld bytes exceeds the store file cap", path,
                             (long long)st.st_size);
    }
    size_t n = (size_t)st.st_size;
    uint8_t *b = malloc(n ? n : 1);
    if (!b) {
        close(fd);
        return fedreci_error(FEDREC_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, n);
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, b + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (got != n) {
        free(b);
        return fedreci_error(FEDREC_ERR_IO, "%s: short read (%zu of %zu bytes)", path, got, n);
    }
    *buf = b;
    *len = n;
    return FEDREC_OK;
}

/* Writes name.tmp, fsyncs it, renames it over name and fsyncs the directory.
 * Either the old or the new content is at `name` after a crash. */
static fedrec_err write_atomic(const char *dir, const char *name, const uint8_t *p, size_t n)
{
    char tmpname[64];
    snprintf(tmpname, sizeof tmpname, "%s%s", name, TMP_SUFFIX);
    char *tmp = path_join(dir, tmpname);
    char *dst = path_join(dir, name);
    fedrec_err err = FEDREC_OK;
    if (!tmp || !dst) {
        err = fedreci_error(FEDREC_ERR_NOMEM, "%s: out of memory", dir);
        goto out;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        err = fedreci_error(FEDREC_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
        goto out;
    }
    if (write_all(fd, p, n) != 0 || fsync(fd) != 0) {
        err = fedreci_error(FEDREC_ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        goto out;
    }
    if (close(fd) != 0) {
        err = fedreci_error(FEDREC_ERR_IO, "%s: close failed: %s", tmp, strerror(errno));
        unlink(tmp);
        goto out;
    }
    if (rename(tmp, dst) != 0) {
        err =
            fedreci_error(FEDREC_ERR_IO, "%s: rename to %s failed: %s", tmp, dst, strerror(errno));
        unlink(tmp);
        goto out;
    }
    err = fsync_dir(dir);
out:
    free(tmp);
    free(dst);
    return err;
}

/* ---- keys and meta -------------------------------------------------------- */

static const char LABEL_CHECK[] = "fedrec store key check v1";
static const char LABEL_STREAM[] = "fedrec store stream key v1";

static void derive(const uint8_t master[32], const char *label, const uint8_t *store_id,
                   uint8_t out[32])
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, master, 32, 32);
    crypto_generichash_update(&st, (const uint8_t *)label, strlen(label));
    crypto_generichash_update(&st, store_id, FEDRECI_STORE_ID_BYTES);
    crypto_generichash_final(&st, out, 32);
    sodium_memzero(&st, sizeof st);
}

typedef struct meta {
    uint32_t version;
    uint32_t kind;
    uint64_t opslimit;
    uint64_t memlimit;
    uint8_t salt[crypto_pwhash_SALTBYTES];
    uint8_t store_id[FEDRECI_STORE_ID_BYTES];
    uint8_t check[32];
} meta;

static void meta_encode(const meta *m, uint8_t out[META_BYTES])
{
    memset(out, 0, META_BYTES);
    memcpy(out, META_MAGIC, 8);
    out[8] = (uint8_t)m->version;
    out[9] = (uint8_t)(m->version >> 8);
    out[10] = (uint8_t)(m->version >> 16);
    out[11] = (uint8_t)(m->version >> 24);
    out[12] = (uint8_t)m->kind;
    put_u64le(out + 16, m->opslimit);
    put_u64le(out + 24, m->memlimit);
    memcpy(out + 32, m->salt, 16);
    memcpy(out + 48, m->store_id, 16);
    memcpy(out + 64, m->check, 32);
    crypto_generichash(out + META_SUM_OFF, 16, out, META_SUM_OFF, NULL, 0);
}

static fedrec_err meta_decode(const char *path, const uint8_t *b, size_t n, meta *m)
{
    if (n != META_BYTES || memcmp(b, META_MAGIC, 8) != 0)
        return fedreci_error(FEDREC_ERR_CORRUPT,
                             "%s: not a fedrec store header (%zu bytes, expected %u with magic "
                             "%s)",
                             path, n, META_BYTES, META_MAGIC);
    uint8_t sum[16];
    crypto_generichash(sum, 16, b, META_SUM_OFF, NULL, 0);
    if (sodium_memcmp(sum, b + META_SUM_OFF, 16) != 0)
        return fedreci_error(FEDREC_ERR_CORRUPT, "%s: header checksum mismatch (file damaged)",
                             path);
    m->version = get_u32le(b + 8);
    m->kind = get_u32le(b + 12);
    m->opslimit = get_u64le(b + 16);
    m->memlimit = get_u64le(b + 24);
    memcpy(m->salt, b + 32, 16);
    memcpy(m->store_id, b + 48, 16);
    memcpy(m->check, b + 64, 32);
    if (m->version != META_VERSION)
        return fedreci_error(FEDREC_ERR_UNSUPPORTED,
                             "%s: store format version %u (this build "
                             "reads version %u)",
                             path, m->version, META_VERSION);
    if (m->kind > FEDRECI_KEY_PASSPHRASE)
        return fedreci_error(FEDREC_ERR_CORRUPT, "%s: unknown key kind %u", path, m->kind);
    return FEDREC_OK;
}

static fedrec_err master_key(const char *path, const meta *m, const uint8_t *key, size_t key_len,
                             uint8_t out[32])
{
    if (m->kind == FEDRECI_KEY_RAW) {
        memcpy(out, key, 32);
        return FEDREC_OK;
    }
    if (m->opslimit < crypto_pwhash_OPSLIMIT_MIN || m->opslimit > crypto_pwhash_OPSLIMIT_MAX ||
        m->memlimit < crypto_pwhash_MEMLIMIT_MIN || m->memlimit > SIZE_MAX)
        return fedreci_error(FEDREC_ERR_CORRUPT, "%s: pwhash limits out of range", path);
    if (crypto_pwhash(out, 32, (const char *)key, key_len, m->salt, m->opslimit,
                      (size_t)m->memlimit, crypto_pwhash_ALG_ARGON2ID13) != 0)
        return fedreci_error(FEDREC_ERR_CRYPTO,
                             "%s: crypto_pwhash failed (out of memory for %llu bytes?)", path,
                             (unsigned long long)m->memlimit);
    return FEDREC_OK;
}

/* ---- state: events and snapshot ------------------------------------------- */

static void encode_purchase(wbuf *b, const fedreci_store_purchase *p)
{
    wb_u64(b, p->seq);
    wb_u64(b, (uint64_t)p->time);
    wb_u32(b, p->quantity);
    wb_str(b, p->code);
}

static void decode_purchase(rbuf *r, fedreci_store_purchase *p)
{
    p->seq = rb_u64(r);
    p->time = (int64_t)rb_u64(r);
    p->quantity = rb_u32(r);
    rb_str(r, p->code, FEDRECI_CODE_MAX);
    if (!r->bad && (p->quantity == 0 || p->code[0] == '\0'))
        r->bad = 1;
}

static void encode_ledger(wbuf *b, const fedreci_ledger_rec *l)
{
    wb_u64(b, (uint64_t)l->time_ms);
    wb_u64(b, l->round);
    wb_u32(b, l->stage);
    wb_u64(b, l->bytes_sent);
    wb_u32(b, l->clipped);
    wb_str(b, l->what);
}

static void decode_ledger(rbuf *r, fedreci_ledger_rec *l)
{
    l->time_ms = (int64_t)rb_u64(r);
    l->round = rb_u64(r);
    l->stage = rb_u32(r);
    l->bytes_sent = rb_u64(r);
    l->clipped = rb_u32(r);
    rb_str(r, l->what, FEDRECI_WHAT_MAX);
}

static void model_free(fedreci_store_model *m)
{
    if (!m)
        return;
    free(m->y);
    free(m->retired);
    free(m->gram);
    free(m->codes);
    free(m);
}

static fedrec_err set_x(fedreci_store *s, const float *x, uint32_t k)
{
    float *nx = NULL;
    if (k > 0) {
        nx = malloc((size_t)k * sizeof *nx);
        if (!nx)
            return fedreci_error(FEDREC_ERR_NOMEM, "out of memory for %u user factors", k);
        memcpy(nx, x, (size_t)k * sizeof *nx);
    }
    wipe_free(s->x, (size_t)s->xk * sizeof *s->x);
    s->x = nx;
    s->xk = k;
    return FEDREC_OK;
}

/* Applies one decoded event to the in-memory state. Returns FEDREC_ERR_FORMAT
 * (without a message) when the record is malformed, FEDREC_ERR_NOMEM. */
static fedrec_err apply_record(fedreci_store *s, const uint8_t *p, size_t n)
{
    rbuf r = {p, n, 0, 0};
    uint8_t type = rb_u8(&r);
    switch (type) {
    case REC_PURCHASE: {
        fedreci_store_purchase pu;
        decode_purchase(&r, &pu);
        /* seq + 1 must not wrap: next_seq 0 would accept any later seq */
        if (r.bad || r.off != n || pu.seq < s->next_seq || pu.seq == UINT64_MAX)
            return FEDREC_ERR_FORMAT;
        if (secure_grow((void **)&s->purchases, &s->cap_purchases, s->n_purchases + 1,
                        sizeof *s->purchases))
            return FEDREC_ERR_NOMEM;
        s->purchases[s->n_purchases++] = pu;
        s->next_seq = pu.seq + 1;
        sodium_memzero(&pu, sizeof pu);
        return FEDREC_OK;
    }
    case REC_PARTICIPATION: {
        uint8_t v = rb_u8(&r);
        if (r.bad || r.off != n || v > 1)
            return FEDREC_ERR_FORMAT;
        s->opted_in = v;
        return FEDREC_OK;
    }
    case REC_LEDGER: {
        fedreci_ledger_rec l;
        decode_ledger(&r, &l);
        if (r.bad || r.off != n)
            return FEDREC_ERR_FORMAT;
        if (secure_grow((void **)&s->ledger, &s->cap_ledger, s->n_ledger + 1, sizeof *s->ledger))
            return FEDREC_ERR_NOMEM;
        s->ledger[s->n_ledger++] = l;
        return FEDREC_OK;
    }
    case REC_USER_FACTORS: {
        uint32_t k = rb_u32(&r);
        if (r.bad || k > FEDRECI_MODEL_MAX_K || n - r.off != (size_t)k * 4)
            return FEDREC_ERR_FORMAT;
        float xb[FEDRECI_MODEL_MAX_K];
        rb_floats(&r, xb, k);
        fedrec_err e = set_x(s, xb, k);
        sodium_memzero(xb, (size_t)k * sizeof(float));
        return e;
    }
    default:
        return FEDREC_ERR_FORMAT;
    }
}

static void encode_state(const fedreci_store *s, wbuf *b)
{
    wb_u32(b, STATE_VERSION);
    wb_u8(b, s->has_log ? STATE_FLAG_HAS_LOG : 0);
    wb_u8(b, (uint8_t)s->opted_in);
    wb_put(b, s->sign_pk, FEDRECI_SIGN_PK_BYTES);
    wb_put(b, s->keys->sign_sk, FEDRECI_SIGN_SK_BYTES);
    wb_u64(b, s->next_seq);
    wb_u32(b, s->xk);
    wb_floats(b, s->x, s->xk);
    wb_u32(b, (uint32_t)s->n_purchases);
    for (size_t i = 0; i < s->n_purchases; i++)
        encode_purchase(b, &s->purchases[i]);
    wb_u32(b, (uint32_t)s->n_ledger);
    for (size_t i = 0; i < s->n_ledger; i++)
        encode_ledger(b, &s->ledger[i]);
    const fedreci_store_model *m = s->model;
    wb_u8(b, m != NULL);
    if (m) {
        wb_u64(b, m->version);
        wb_u32(b, m->n_items);
        wb_u32(b, m->k);
        wb_u8(b, m->gram != NULL);
        wb_floats(b, m->y, (size_t)m->n_items * m->k);
        if (m->gram)
            wb_floats(b, m->gram, (size_t)m->k * m->k);
        for (uint32_t i = 0; i < m->n_items; i++)
            wb_str(b, m->codes[i]);
        wb_u32(b, m->n_retired);
        for (uint32_t i = 0; i < m->n_retired; i++)
            wb_u32(b, m->retired[i]);
    }
}

/* Retired rows must be strictly ascending and inside the model. */
static int retired_ok(const uint32_t *rows, uint32_t n, uint32_t n_items)
{
    if (n > n_items || (n && !rows))
        return 0;
    for (uint32_t i = 0; i < n; i++)
        if (rows[i] >= n_items || (i > 0 && rows[i] <= rows[i - 1]))
            return 0;
    return 1;
}

static int model_dims_ok(uint32_t n_items, uint32_t k)
{
    return n_items >= 1 && n_items <= FEDRECI_MODEL_MAX_ITEMS && k >= 1 &&
           k <= FEDRECI_MODEL_MAX_K && (uint64_t)n_items * k <= FEDRECI_MODEL_MAX_FLOATS;
}

/* Decodes a snapshot's plaintext into s. FEDREC_ERR_FORMAT (no message) when
 * malformed. */
static fedrec_err decode_state(fedreci_store *s, const uint8_t *p, size_t n)
{
    rbuf r = {p, n, 0, 0};
    uint32_t state_version = rb_u32(&r);
    if (state_version < STATE_VERSION_MIN || state_version > STATE_VERSION)
        return FEDREC_ERR_FORMAT;
    /* Versions 1 and 2 have no flags: whether their log must exist is unknown,
     * so a missing log is not detected until the next snapshot (docs). */
    uint8_t flags = state_version >= 3 ? rb_u8(&r) : 0;
    if (r.bad || (flags & ~STATE_FLAG_HAS_LOG) != 0)
        return FEDREC_ERR_FORMAT;
    s->has_log = (flags & STATE_FLAG_HAS_LOG) != 0;
    s->snap_has_log = s->has_log;
    uint8_t opted = rb_u8(&r);
    const uint8_t *pk = rb_take(&r, FEDRECI_SIGN_PK_BYTES);
    const uint8_t *sk = rb_take(&r, FEDRECI_SIGN_SK_BYTES);
    uint64_t next_seq = rb_u64(&r);
    uint32_t xk = rb_u32(&r);
    if (r.bad || opted > 1 || xk > FEDRECI_MODEL_MAX_K)
        return FEDREC_ERR_FORMAT;
    s->opted_in = opted;
    memcpy(s->sign_pk, pk, FEDRECI_SIGN_PK_BYTES);
    memcpy(s->keys->sign_sk, sk, FEDRECI_SIGN_SK_BYTES);
    s->next_seq = next_seq;
    if (xk) {
        float xb[FEDRECI_MODEL_MAX_K];
        rb_floats(&r, xb, xk);
        fedrec_err e = r.bad ? FEDREC_ERR_FORMAT : set_x(s, xb, xk);
        sodium_memzero(xb, (size_t)xk * sizeof(float));
        if (e)
            return e;
    }
    uint32_t np = rb_u32(&r);
    if (r.bad || np > (r.len - r.off) / 21)
        return FEDREC_ERR_FORMAT;
    if (secure_grow((void **)&s->purchases, &s->cap_purchases, np, sizeof *s->purchases))
        return FEDREC_ERR_NOMEM;
    for (uint32_t i = 0; i < np; i++) {
        decode_purchase(&r, &s->purchases[i]);
        if (r.bad || s->purchases[i].seq >= next_seq ||
            (i > 0 && s->purchases[i].seq <= s->purchases[i - 1].seq))
            return FEDREC_ERR_FORMAT;
    }
    s->n_purchases = np;
    uint32_t nl = rb_u32(&r);
    if (r.bad || nl > (r.len - r.off) / 33)
        return FEDREC_ERR_FORMAT;
    if (secure_grow((void **)&s->ledger, &s->cap_ledger, nl, sizeof *s->ledger))
        return FEDREC_ERR_NOMEM;
    for (uint32_t i = 0; i < nl; i++)
        decode_ledger(&r, &s->ledger[i]);
    if (r.bad)
        return FEDREC_ERR_FORMAT;
    s->n_ledger = nl;
    uint8_t has_model = rb_u8(&r);
    if (r.bad || has_model > 1)
        return FEDREC_ERR_FORMAT;
    if (has_model) {
        uint64_t version = rb_u64(&r);
        uint32_t n_items = rb_u32(&r), k = rb_u32(&r);
        uint8_t has_gram = rb_u8(&r);
        if (r.bad || !model_dims_ok(n_items, k) || has_gram > 1 ||
            (uint64_t)n_items * k * 4 > r.len - r.off)
            return FEDREC_ERR_FORMAT;
        fedreci_store_model *m = calloc(1, sizeof *m);
        if (!m)
            return FEDREC_ERR_NOMEM;
        m->version = version;
        m->n_items = n_items;
        m->k = k;
        m->y = malloc((size_t)n_items * k * sizeof(float));
        m->codes = calloc(n_items, sizeof *m->codes);
        if (has_gram)
            m->gram = malloc((size_t)k * k * sizeof(float));
        if (!m->y || !m->codes || (has_gram && !m->gram)) {
            model_free(m);
            return FEDREC_ERR_NOMEM;
        }
        rb_floats(&r, m->y, (size_t)n_items * k);
        if (has_gram)
            rb_floats(&r, m->gram, (size_t)k * k);
        for (uint32_t i = 0; i < n_items && !r.bad; i++) {
            rb_str(&r, m->codes[i], FEDRECI_CODE_MAX);
            if (!r.bad && m->codes[i][0] == '\0')
                r.bad = 1;
        }
        if (!r.bad && state_version >= 2) {
            uint32_t nr = rb_u32(&r);
            if (r.bad || nr > n_items || nr > (r.len - r.off) / 4) {
                r.bad = 1;
            } else if (nr) {
                m->retired = malloc((size_t)nr * sizeof *m->retired);
                if (!m->retired) {
                    model_free(m);
                    return FEDREC_ERR_NOMEM;
                }
                for (uint32_t i = 0; i < nr; i++)
                    m->retired[i] = rb_u32(&r);
                m->n_retired = nr;
                if (!r.bad && !retired_ok(m->retired, nr, n_items))
                    r.bad = 1;
            }
        }
        if (r.bad) {
            model_free(m);
            return FEDREC_ERR_FORMAT;
        }
        s->model = m;
    }
    if (r.off != r.len)
        return FEDREC_ERR_FORMAT;
    return FEDREC_OK;
}

static void make_prefix(uint8_t out[PREFIX_BYTES], const char *magic, const uint8_t *store_id,
                        uint64_t gen)
{
    memcpy(out, magic, 8);
    memcpy(out + 8, store_id, FEDRECI_STORE_ID_BYTES);
    put_u64le(out + 24, gen);
}

/* Encrypts the state as generation `gen` into out (a whole snapshot file). */
static fedrec_err snapshot_build(const fedreci_store *s, uint64_t gen, wbuf *out)
{
    wbuf plain = {0};
    encode_state(s, &plain);
    if (plain.oom) {
        wb_free(&plain);
        return fedreci_error(FEDREC_ERR_NOMEM, "%s: out of memory writing the snapshot", s->dir);
    }
    uint8_t prefix[PREFIX_BYTES];
    make_prefix(prefix, SNAP_MAGIC, s->store_id, gen);
    crypto_secretstream_xchacha20poly1305_state *st = sodium_malloc(sizeof *st);
    uint8_t *c = malloc(SNAP_CHUNK + SS_ABYTES);
    fedrec_err err = FEDREC_OK;
    if (!st || !c) {
        err = fedreci_error(FEDREC_ERR_NOMEM, "%s: out of memory writing the snapshot", s->dir);
        goto out;
    }
    uint8_t header[SS_HEADER];
    crypto_secretstream_xchacha20poly1305_init_push(st, header, s->keys->stream);
    wb_put(out, prefix, PREFIX_BYTES);
    wb_put(out, header, SS_HEADER);
    size_t off = 0;
    do {
        size_t m = plain.len - off < SNAP_CHUNK ? plain.len - off : SNAP_CHUNK;
        int last = off + m == plain.len;
        unsigned long long clen = 0;
        crypto_secretstream_xchacha20poly1305_push(
            st, c, &clen, plain.p + off, m, prefix, PREFIX_BYTES,
            last ? crypto_secretstream_xchacha20poly1305_TAG_FINAL : 0);
        wb_u32(out, (uint32_t)clen);
        wb_put(out, c, (size_t)clen);
        off += m;
    } while (off < plain.len);
    if (out->oom)
        err = fedreci_error(FEDREC_ERR_NOMEM, "%s: out of memory writing the snapshot", s->dir);
out:
    sodium_free(st);
    free(c);
    wb_free(&plain);
    return err;
}

/* Creates a fresh log for generation `gen` and opens it for appending. */
static fedrec_err log_create(fedreci_store *s, uint64_t gen)
{
    if (s->log_fd >= 0) {
        close(s->log_fd);
        s->log_fd = -1;
    }
    s->log_broken = 1;
    uint8_t file[FILE_HEADER_BYTES];
    make_prefix(file, LOG_MAGIC, s->store_id, gen);
    crypto_secretstream_xchacha20poly1305_init_push(s->push, file + PREFIX_BYTES, s->keys->stream);
    fedrec_err err = write_atomic(s->dir, LOG_NAME, file, sizeof file);
    if (err)
        return err;
    char *path = path_join(s->dir, LOG_NAME);
    if (!path)
        return fedreci_error(FEDREC_ERR_NOMEM, "%s: out of memory", s->dir);
    s->log_fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (s->log_fd < 0) {
        err = fedreci_error(FEDREC_ERR_IO, "%s: cannot open for appending: %s", path,
                            strerror(errno));
        free(path);
        return err;
    }
    free(path);
    memcpy(s->log_prefix, file, PREFIX_BYTES);
    s->log_broken = 0;
    s->log_events = 0;
    s->has_log = 1;
    return FEDREC_OK;
}

/* Crash points (docs/client.md, "Crash safety"): before the snapshot's
 * rename, the old snapshot and its log are current; after it, the new
 * snapshot holds every event and the old log (generation gen - 1) is stale,
 * ignored on reopen if the next step does not happen. The new snapshot says
 * "a log exists" only when one already did (has_log): the log is replaced by
 * rename, so from then on a log file is always present, stale or current,
 * and one that is missing was deleted from outside. */
fedrec_err fedreci_store_compact(fedreci_store *s)
{
    wbuf snap = {0};
    int has_log = s->has_log;
    fedrec_err err = snapshot_build(s, s->gen + 1, &snap);
    if (!err)
        err = write_atomic(s->dir, SNAP_NAME, snap.p, snap.len);
    wb_free(&snap);
    if (err)
        return err;
    s->gen++;
    s->snap_has_log = has_log;
    return log_create(s, s->gen);
}

/* Appends one event record durably, then applies it to memory. */
static fedrec_err log_append(fedreci_store *s, const wbuf *rec)
{
    if (rec->oom)
        return fedreci_error(FEDREC_ERR_NOMEM, "%s: out of memory", s->dir);
    if (s->log_broken || s->log_fd < 0 || s->log_events >= COMPACT_EVERY) {
        fedrec_err err = fedreci_store_compact(s);
        if (err)
            return err;
    }
    size_t flen = 4 + rec->len + SS_ABYTES;
    uint8_t *frame = malloc(flen);
    if (!frame)
        return fedreci_error(FEDREC_ERR_NOMEM, "%s: out of memory", s->dir);
    unsigned long long clen = 0;
    crypto_secretstream_xchacha20poly1305_push(s->push, frame + 4, &clen, rec->p, rec->len,
                                               s->log_prefix, PREFIX_BYTES, 0);
    frame[0] = (uint8_t)clen;
    frame[1] = (uint8_t)(clen >> 8);
    frame[2] = (uint8_t)(clen >> 16);
    frame[3] = (uint8_t)(clen >> 24);
    /* One write() per frame, then fdatasync: the event is durable before the
     * caller hears OK. On failure the stream state has moved on, so the log
     * is retired and the next event starts a new generation. */
    int rc = write_all(s->log_fd, frame, flen);
    if (rc == 0)
        rc = fdatasync(s->log_fd);
    int e = errno;
    free(frame);
    if (rc != 0) {
        s->log_broken = 1;
        return fedreci_error(FEDREC_ERR_IO, "%s/%s: append failed: %s", s->dir, LOG_NAME,
                             strerror(e));
    }
    s->log_events++;
    fedrec_err err = apply_record(s, rec->p, rec->len);
    if (err == FEDREC_ERR_NOMEM)
        return fedreci_error(FEDREC_ERR_NOMEM, "%s: out of memory", s->dir);
    if (err)
        return fedreci_error(FEDREC_ERR_INTERNAL, "%s: an event failed to apply", s->dir);
    return FEDREC_OK;
}

/* ---- open ------------------------------------------------------------------ */

static void state_free(fedreci_store *s)
{
    wipe_free(s->purchases, s->cap_purchases * sizeof *s->purchases);
    s->purchases = NULL;
    s->n_purchases = s->cap_purchases = 0;
    wipe_free(s->ledger, s->cap_ledger * sizeof *s->ledger);
    s->ledger = NULL;
    s->n_ledger = s->cap_ledger = 0;
    wipe_free(s->x, (size_t)s->xk * sizeof *s->x);
    s->x = NULL;
    s->xk = 0;
    model_free(s->model);
    s->model = NULL;
}

void fedreci_store_close(fedreci_store *s)
{
    if (!s)
        return;
    if (s->log_fd >= 0)
        close(s->log_fd);
    if (s->meta_fd >= 0)
        close(s->meta_fd); /* releases the flock */
    state_free(s);
    sodium_free(s->keys);
    sodium_free(s->push);
    free(s->dir);
    sodium_memzero(s, sizeof *s);
    free(s);
}

/* Checks a snapshot or log file's plaintext prefix (magic, store id) and
 * returns its generation; `kind` names the file type in errors. The mirror
 * of make_prefix. */
static fedrec_err file_prefix_check(const fedreci_store *s, const char *path, const uint8_t *b,
                                    size_t n, const char *magic, const char *kind, uint64_t *gen)
{
    if (n < FILE_HEADER_BYTES || memcmp(b, magic, 8) != 0)
        return fedreci_error(FEDREC_ERR_CORRUPT, "%s: truncated or not a fedrec %s (%zu bytes)",
                             path, kind, n);
    if (memcmp(b + 8, s->store_id, FEDRECI_STORE_ID_BYTES) != 0)
        return fedreci_error(FEDREC_ERR_CORRUPT,
                             "%s: belongs to another store (store id differs from meta)", path);
    *gen = get_u64le(b + 24);
    return FEDREC_OK;
}

/* Starts pulling the secretstream whose header follows the prefix. *st is
 * allocated in secure memory (the caller sodium_frees it, also on error). */
static fedrec_err stream_pull_begin(const fedreci_store *s, const char *path, const uint8_t *b,
                                    crypto_secretstream_xchacha20poly1305_state **st)
{
    *st = sodium_malloc(sizeof **st);
    if (!*st)
        return fedreci_error(FEDREC_ERR_NOMEM, "%s: out of memory", path);
    if (crypto_secretstream_xchacha20poly1305_init_pull(*st, b + PREFIX_BYTES, s->keys->stream) !=
        0)
        return fedreci_error(FEDREC_ERR_CORRUPT, "%s: bad stream header", path);
    return FEDREC_OK;
}

/* Reads and authenticates the snapshot into s. */
static fedrec_err snapshot_load(fedreci_store *s, const char *path, const uint8_t *b, size_t n)
{
    fedrec_err err = file_prefix_check(s, path, b, n, SNAP_MAGIC, "snapshot", &s->gen);
    if (err)
        return err;
    crypto_secretstream_xchacha20poly1305_state *st = NULL;
    wbuf plain = {0};
    uint8_t *m = malloc(n);
    if (!m) {
        err = fedreci_error(FEDREC_ERR_NOMEM, "%s: out of memory", path);
        goto out;
    }
    if ((err = stream_pull_begin(s, path, b, &st)))
        goto out;
    size_t off = FILE_HEADER_BYTES;
    int final = 0;
    while (!final) {
        if (n - off < 4) {
            err = fedreci_error(FEDREC_ERR_CORRUPT,
                                "%s: truncated at byte %zu (no final "
                                "message)",
                                path, off);
            goto out;
        }
        uint32_t clen = get_u32le(b + off);
        off += 4;
        if (clen < SS_ABYTES || clen > SNAP_CHUNK + SS_ABYTES || clen > n - off) {
            err = fedreci_error(FEDREC_ERR_CORRUPT,
                                "%s: truncated or damaged at byte %zu (message of %u bytes)", path,
                                off - 4, clen);
            goto out;
        }
        unsigned long long mlen = 0;
        unsigned char tag = 0;
        if (crypto_secretstream_xchacha20poly1305_pull(st, m, &mlen, &tag, b + off, clen, b,
                                                       PREFIX_BYTES) != 0) {
            err = fedreci_error(FEDREC_ERR_CORRUPT,
                                "%s: authentication failed at byte %zu (file damaged)", path,
                                off - 4);
            goto out;
        }
        wb_put(&plain, m, (size_t)mlen);
        off += clen;
        final = tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL;
    }
    if (off != n) {
        err = fedreci_error(FEDREC_ERR_CORRUPT, "%s: %zu unexpected bytes after the end", path,
                            n - off);
        goto out;
    }
    if (plain.oom) {
        err = fedreci_error(FEDREC_ERR_NOMEM, "%s: out of memory", path);
        goto out;
    }
    err = decode_state(s, plain.p, plain.len);
    if (err == FEDREC_ERR_FORMAT)
        err = fedreci_error(FEDREC_ERR_CORRUPT, "%s: malformed state", path);
    else if (err)
        err = fedreci_error(err, "%s: out of memory", path);
out:
    if (m)
        wipe_free(m, n);
    wb_free(&plain);
    sodium_free(st);
    return err;
}

static int all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

/* Replays the log over the snapshot state. *replayed gets the events. */
static fedrec_err log_replay(fedreci_store *s, const char *path, const uint8_t *b, size_t n,
                             size_t *replayed)
{
    *replayed = 0;
    uint64_t gen;
    fedrec_err err = file_prefix_check(s, path, b, n, LOG_MAGIC, "log", &gen);
    if (err)
        return err;
    if (gen < s->gen)
        return FEDREC_OK; /* stale: already folded into the snapshot */
    if (gen > s->gen)
        return fedreci_error(FEDREC_ERR_CORRUPT,
                             "%s: generation %llu is newer than the snapshot's %llu (the "
                             "snapshot was replaced by an older one)",
                             path, (unsigned long long)gen, (unsigned long long)s->gen);
    crypto_secretstream_xchacha20poly1305_state *st = NULL;
    uint8_t *m = malloc(LOG_FRAME_MAX);
    if (!m) {
        err = fedreci_error(FEDREC_ERR_NOMEM, "%s: out of memory", path);
        goto out;
    }
    if ((err = stream_pull_begin(s, path, b, &st)))
        goto out;
    size_t off = FILE_HEADER_BYTES;
    while (off < n) {
        /* A torn tail: the last append was cut short (process killed inside
         * write(), or a power loss left zeros). Its record() never returned. */
        if (n - off < 4 || all_zero(b + off, n - off))
            break;
        uint32_t clen = get_u32le(b + off);
        if (clen < SS_ABYTES + 1 || clen > LOG_FRAME_MAX) {
            err = fedreci_error(FEDREC_ERR_CORRUPT, "%s: damaged frame length %u at byte %zu", path,
                                clen, off);
            goto out;
        }
        if (clen > n - off - 4)
            break; /* torn tail */
        unsigned long long mlen = 0;
        unsigned char tag = 0;
        if (crypto_secretstream_xchacha20poly1305_pull(st, m, &mlen, &tag, b + off + 4, clen, b,
                                                       PREFIX_BYTES) != 0) {
            err = fedreci_error(FEDREC_ERR_CORRUPT,
                                "%s: authentication failed at byte %zu (file damaged)", path, off);
            goto out;
        }
        fedrec_err e = apply_record(s, m, (size_t)mlen);
        if (e == FEDREC_ERR_NOMEM) {
            err = fedreci_error(e, "%s: out of memory", path);
            goto out;
        }
        if (e) {
            err = fedreci_error(FEDREC_ERR_CORRUPT, "%s: malformed event at byte %zu", path, off);
            goto out;
        }
        off += 4 + clen;
        (*replayed)++;
    }
out:
    if (m)
        wipe_free(m, LOG_FRAME_MAX);
    sodium_free(st);
    return err;
}

static int file_exists(const char *dir, const char *name)
{
    char *p = path_join(dir, name);
    if (!p)
        return 0;
    struct stat st;
    int r = stat(p, &st) == 0;
    free(p);
    return r;
}

fedrec_err fedreci_store_open(fedreci_store **out, const char *dir, fedreci_key_kind kind,
                              const uint8_t *key, size_t key_len, unsigned long long opslimit,
                              size_t memlimit)
{
    if (!out || !dir || !*dir || !key)
        return fedreci_error(FEDREC_ERR_INVALID, "store open: NULL or empty argument");
    if (kind == FEDRECI_KEY_RAW && key_len != FEDRECI_STORE_KEY_BYTES)
        return fedreci_error(FEDREC_ERR_INVALID, "store key: %zu bytes, expected %u", key_len,
                             FEDRECI_STORE_KEY_BYTES);
    if (kind == FEDRECI_KEY_PASSPHRASE && (key_len < 1 || key_len > 4096))
        return fedreci_error(FEDREC_ERR_INVALID, "store passphrase: %zu bytes, expected 1..4096",
                             key_len);
    if (kind != FEDRECI_KEY_RAW && kind != FEDRECI_KEY_PASSPHRASE)
        return fedreci_error(FEDREC_ERR_INVALID, "store key kind %d unknown", (int)kind);
    if (sodium_init() < 0)
        return fedreci_error(FEDREC_ERR_CRYPTO, "libsodium failed to initialize");

    fedreci_store *s = calloc(1, sizeof *s);
    if (!s)
        return fedreci_error(FEDREC_ERR_NOMEM, "%s: out of memory", dir);
    s->meta_fd = -1;
    s->log_fd = -1;
    s->log_broken = 1;
    s->dir = strdup(dir);
    s->keys = sodium_malloc(sizeof *s->keys);
    s->push = sodium_malloc(sizeof *s->push);
    uint8_t *mb = NULL, *sb = NULL, *lb = NULL;
    size_t mn = 0, sn = 0, ln = 0;
    char *mpath = NULL, *spath = NULL, *lpath = NULL;
    fedrec_err err = FEDREC_OK;
    if (!s->dir || !s->keys || !s->push) {
        err = fedreci_error(FEDREC_ERR_NOMEM, "%s: out of memory", dir);
        goto fail;
    }
    sodium_memzero(s->keys, sizeof *s->keys);
    mpath = path_join(dir, META_NAME);
    spath = path_join(dir, SNAP_NAME);
    lpath = path_join(dir, LOG_NAME);
    if (!mpath || !spath || !lpath) {
        err = fedreci_error(FEDREC_ERR_NOMEM, "%s: out of memory", dir);
        goto fail;
    }

    struct stat st;
    if (stat(dir, &st) != 0) {
        if (errno != ENOENT || mkdir(dir, 0700) != 0) {
            err = fedreci_error(FEDREC_ERR_IO, "%s: cannot create the store directory: %s", dir,
                                strerror(errno));
            goto fail;
        }
    } else if (!S_ISDIR(st.st_mode)) {
        err = fedreci_error(FEDREC_ERR_INVALID, "%s: exists and is not a directory", dir);
        goto fail;
    }

    int creating = 0;
    meta m;
    memset(&m, 0, sizeof m);
    s->meta_fd = open(mpath, O_RDONLY | O_CLOEXEC);
    if (s->meta_fd < 0 && errno != ENOENT) {
        err = fedreci_error(FEDREC_ERR_IO, "%s: cannot open: %s", mpath, strerror(errno));
        goto fail;
    }
    if (s->meta_fd < 0) {
        if (file_exists(dir, SNAP_NAME) || file_exists(dir, LOG_NAME)) {
            err = fedreci_error(FEDREC_ERR_CORRUPT,
                                "%s: missing, but the directory holds store files (damaged "
                                "store)",
                                mpath);
            goto fail;
        }
        creating = 1;
        m.version = META_VERSION;
        m.kind = (uint32_t)kind;
        randombytes_buf(m.store_id, sizeof m.store_id);
        randombytes_buf(m.salt, sizeof m.salt);
        if (kind == FEDRECI_KEY_PASSPHRASE) {
            m.opslimit = opslimit ? opslimit : crypto_pwhash_OPSLIMIT_INTERACTIVE;
            m.memlimit = memlimit ? memlimit : crypto_pwhash_MEMLIMIT_INTERACTIVE;
        }
        err = master_key(mpath, &m, key, key_len, s->keys->master);
        if (err)
            goto fail;
        derive(s->keys->master, LABEL_CHECK, m.store_id, m.check);
        uint8_t enc[META_BYTES];
        meta_encode(&m, enc);
        err = write_atomic(dir, META_NAME, enc, sizeof enc);
        if (err)
            goto fail;
        s->meta_fd = open(mpath, O_RDONLY | O_CLOEXEC);
        if (s->meta_fd < 0) {
            err = fedreci_error(FEDREC_ERR_IO, "%s: cannot open: %s", mpath, strerror(errno));
            goto fail;
        }
    }
    if (flock(s->meta_fd, LOCK_EX | LOCK_NB) != 0) {
        err = fedreci_error(errno == EWOULDBLOCK ? FEDREC_ERR_BUSY : FEDREC_ERR_IO,
                            "%s: the store is open in another client or process", dir);
        goto fail;
    }
    if (!creating) {
        err = read_file(mpath, &mb, &mn);
        if (err == FEDREC_ERR_NOT_FOUND)
            err = fedreci_error(FEDREC_ERR_IO, "%s: vanished while opening", mpath);
        if (err)
            goto fail;
        err = meta_decode(mpath, mb, mn, &m);
        if (err)
            goto fail;
        if (m.kind != (uint32_t)kind) {
            err = fedreci_error(FEDREC_ERR_BADKEY, "%s: the store is protected by a %s, not a %s",
                                mpath, m.kind == FEDRECI_KEY_RAW ? "raw key" : "passphrase",
                                kind == FEDRECI_KEY_RAW ? "raw key" : "passphrase");
            goto fail;
        }
        err = master_key(mpath, &m, key, key_len, s->keys->master);
        if (err)
            goto fail;
        uint8_t check[32];
        derive(s->keys->master, LABEL_CHECK, m.store_id, check);
        int ok = sodium_memcmp(check, m.check, 32) == 0;
        sodium_memzero(check, sizeof check);
        if (!ok) {
            err = fedreci_error(FEDREC_ERR_BADKEY, "%s: wrong key for this store", mpath);
            goto fail;
        }
    }
    memcpy(s->store_id, m.store_id, FEDRECI_STORE_ID_BYTES);
    derive(s->keys->master, LABEL_STREAM, s->store_id, s->keys->stream);

    /* Read and authenticate everything before writing a byte. */
    err = read_file(spath, &sb, &sn);
    fedrec_err lerr = err ? FEDREC_OK : read_file(lpath, &lb, &ln);
    if (err == FEDREC_ERR_NOT_FOUND) {
        if (file_exists(dir, LOG_NAME)) {
            err = fedreci_error(FEDREC_ERR_CORRUPT, "%s: missing, but a log exists", spath);
            goto fail;
        }
        /* A new store, or a creation cut short after meta was written: nothing
         * was ever recorded, so start from the empty state. */
        if (crypto_sign_keypair(s->sign_pk, s->keys->sign_sk) != 0) {
            err = fedreci_error(FEDREC_ERR_CRYPTO, "crypto_sign_keypair failed");
            goto fail;
        }
        s->opted_in = 1;
        s->next_seq = 1;
        s->gen = 0;
        s->has_log = s->snap_has_log = 0;
    } else if (err) {
        goto fail;
    } else {
        err = snapshot_load(s, spath, sb, sn);
        if (err)
            goto fail;
        if (lerr && lerr != FEDREC_ERR_NOT_FOUND) {
            err = lerr;
            goto fail;
        }
        if (lerr == FEDREC_ERR_NOT_FOUND && s->snap_has_log) {
            /* Never a crash point: once a snapshot says so, the log is only
             * replaced by rename. Opening without it would silently roll back
             * every event recorded since that snapshot. */
            err = fedreci_error(FEDREC_ERR_CORRUPT,
                                "%s: missing, but the snapshot (generation %llu) says the store "
                                "has a log (deleted? its events would be lost)",
                                lpath, (unsigned long long)s->gen);
            goto fail;
        }
        if (!lerr) {
            s->has_log = 1;
            size_t replayed = 0;
            err = log_replay(s, lpath, lb, ln, &replayed);
            if (err)
                goto fail;
        }
    }
    /* Fold the log into a new snapshot and start a new log (a secretstream
     * cannot be resumed across processes). */
    err = fedreci_store_compact(s);
    /* A store without a log until now (new, a creation cut short, or a
     * version 1/2 snapshot without a log): its log exists now, so write the
     * snapshot that says so before any event can go into that log. */
    if (!err && !s->snap_has_log)
        err = fedreci_store_compact(s);
    if (err)
        goto fail;
    sodium_memzero(&m, sizeof m);
    free(mb);
    if (sb)
        wipe_free(sb, sn);
    if (lb)
        wipe_free(lb, ln);
    free(mpath);
    free(spath);
    free(lpath);
    *out = s;
    return FEDREC_OK;
fail:
    sodium_memzero(&m, sizeof m);
    free(mb);
    if (sb)
        wipe_free(sb, sn);
    if (lb)
        wipe_free(lb, ln);
    free(mpath);
    free(spath);
    free(lpath);
    fedreci_store_close(s);
    return err;
}

/* ---- forget ----------------------------------------------------------------- */

fedrec_err fedreci_store_forget(fedreci_store *s)
{
    if (!s)
        return fedreci_error(FEDREC_ERR_INVALID, "store forget: NULL store");
    static const char *const names[] = {
        LOG_NAME, SNAP_NAME, LOG_NAME TMP_SUFFIX, SNAP_NAME TMP_SUFFIX, META_NAME TMP_SUFFIX,
        META_NAME};
    fedrec_err err = FEDREC_OK;
    if (s->log_fd >= 0) {
        close(s->log_fd);
        s->log_fd = -1;
    }
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char *p = path_join(s->dir, names[i]);
        if (!p) {
            err = fedreci_error(FEDREC_ERR_NOMEM, "%s: out of memory", s->dir);
            break;
        }
        if (unlink(p) != 0 && errno != ENOENT && !err)
            err = fedreci_error(FEDREC_ERR_IO, "%s: cannot remove: %s", p, strerror(errno));
        free(p);
    }
    if (!err) {
        err = fsync_dir(s->dir);
        /* The directory goes too unless the app keeps other files in it. */
        if (!err && rmdir(s->dir) == 0) {
            char *parent = strdup(s->dir);
            if (parent) {
                char *slash = strrchr(parent, '/');
                if (slash == parent)
                    slash[1] = '\0';
                else if (slash)
                    *slash = '\0';
                else
                    strcpy(parent, ".");
                err = fsync_dir(parent);
                free(parent);
            }
        }
    }
    fedreci_store_close(s);
    return err;
}

/* ---- updates ---------------------------------------------------------------- */

fedrec_err fedreci_store_check_code(const char *code)
{
    if (!code)
        return fedreci_error(FEDREC_ERR_INVALID, "item code: NULL");
    size_t n = strlen(code);
    if (n == 0 || n > FEDRECI_CODE_MAX)
        return fedreci_error(FEDREC_ERR_INVALID, "item code '%.40s': %zu bytes, expected 1..%d",
                             code, n, FEDRECI_CODE_MAX);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)code[i];
        if (ch < 0x20 || ch > 0x7e || ch == ',' || ch == '"')
            return fedreci_error(FEDREC_ERR_INVALID,
                                 "item code '%s': byte %zu (0x%02x) is not allowed", code, i, ch);
    }
    return FEDREC_OK;
}

fedrec_err fedreci_store_add_purchase(fedreci_store *s, const char *code, int64_t time,
                                      uint32_t quantity, uint64_t *seq)
{
    fedrec_err err = fedreci_store_check_code(code);
    if (err)
        return err;
    if (quantity == 0)
        return fedreci_error(FEDREC_ERR_INVALID, "purchase of '%s': quantity 0 (must be >= 1)",
                             code);
    fedreci_store_purchase p;
    memset(&p, 0, sizeof p);
    p.seq = s->next_seq;
    p.time = time;
    p.quantity = quantity;
    strcpy(p.code, code);
    wbuf rec = {0};
    wb_u8(&rec, REC_PURCHASE);
    encode_purchase(&rec, &p);
    err = log_append(s, &rec);
    wb_free(&rec);
    if (!err && seq)
        *seq = p.seq;
    sodium_memzero(&p, sizeof p);
    return err;
}

fedrec_err fedreci_store_set_participation(fedreci_store *s, int opted_in)
{
    wbuf rec = {0};
    wb_u8(&rec, REC_PARTICIPATION);
    wb_u8(&rec, opted_in ? 1 : 0);
    fedrec_err err = log_append(s, &rec);
    wb_free(&rec);
    return err;
}

fedrec_err fedreci_store_add_ledger(fedreci_store *s, const fedreci_ledger_rec *l)
{
    if (!l || strlen(l->what) > FEDRECI_WHAT_MAX)
        return fedreci_error(FEDREC_ERR_INVALID, "ledger entry: NULL or description too long");
    wbuf rec = {0};
    wb_u8(&rec, REC_LEDGER);
    encode_ledger(&rec, l);
    fedrec_err err = log_append(s, &rec);
    wb_free(&rec);
    return err;
}

fedrec_err fedreci_store_set_user_factors(fedreci_store *s, const float *x, uint32_t k)
{
    if ((!x && k) || k > FEDRECI_MODEL_MAX_K)
        return fedreci_error(FEDREC_ERR_INVALID, "user factors: k = %u (max %u)", k,
                             FEDRECI_MODEL_MAX_K);
    wbuf rec = {0};
    wb_u8(&rec, REC_USER_FACTORS);
    wb_u32(&rec, k);
    wb_floats(&rec, x, k);
    fedrec_err err = log_append(s, &rec);
    wb_free(&rec);
    return err;
}

fedrec_err fedreci_store_set_model(fedreci_store *s, uint64_t version, uint32_t n_items, uint32_t k,
                                   const float *y, const float *gram, const char *const *codes,
                                   const uint32_t *retired, uint32_t n_retired)
{
    if (!y || !codes || !model_dims_ok(n_items, k))
        return fedreci_error(FEDREC_ERR_INVALID, "model: %u items x %u factors out of range",
                             n_items, k);
    if (!retired_ok(retired, n_retired, n_items))
        return fedreci_error(FEDREC_ERR_INVALID,
                             "model: %u retired rows not strictly ascending below %u items",
                             n_retired, n_items);
    for (uint32_t i = 0; i < n_items; i++) {
        fedrec_err e = fedreci_store_check_code(codes[i]);
        if (e)
            return fedreci_error(e, "model catalog row %u: %s", i, fedrec_errmsg());
    }
    fedreci_store_model *m = calloc(1, sizeof *m);
    if (!m)
        return fedreci_error(FEDREC_ERR_NOMEM, "out of memory for the model");
    m->version = version;
    m->n_items = n_items;
    m->k = k;
    m->y = malloc((size_t)n_items * k * sizeof(float));
    m->codes = calloc(n_items, sizeof *m->codes);
    if (gram)
        m->gram = malloc((size_t)k * k * sizeof(float));
    if (n_retired)
        m->retired = malloc((size_t)n_retired * sizeof *m->retired);
    if (!m->y || !m->codes || (gram && !m->gram) || (n_retired && !m->retired)) {
        model_free(m);
        return fedreci_error(FEDREC_ERR_NOMEM, "out of memory for the model (%u x %u)", n_items, k);
    }
    if (n_retired)
        memcpy(m->retired, retired, (size_t)n_retired * sizeof *m->retired);
    m->n_retired = n_retired;
    memcpy(m->y, y, (size_t)n_items * k * sizeof(float));
    if (gram)
        memcpy(m->gram, gram, (size_t)k * k * sizeof(float));
    for (uint32_t i = 0; i < n_items; i++)
        strcpy(m->codes[i], codes[i]);
    fedreci_store_model *old = s->model;
    uint64_t gen = s->gen;
    s->model = m;
    fedrec_err err = fedreci_store_compact(s);
    if (err && s->gen == gen) {
        /* The snapshot was not replaced: the old model stays. */
        s->model = old;
        model_free(m);
        return err;
    }
    /* Either fully done, or the new snapshot is on disk and only the new log
     * failed (the next event retries it): the new model is the state. */
    model_free(old);
    return err;
}

/* ---- reads ---------------------------------------------------------------- */

const fedreci_store_purchase *fedreci_store_purchases(const fedreci_store *s, size_t *n)
{
    *n = s->n_purchases;
    return s->purchases;
}

const fedreci_ledger_rec *fedreci_store_ledger(const fedreci_store *s, size_t *n)
{
    *n = s->n_ledger;
    return s->ledger;
}

int fedreci_store_participation(const fedreci_store *s)
{
    return s->opted_in;
}

const fedreci_store_model *fedreci_store_get_model(const fedreci_store *s)
{
    return s->model;
}

const float *fedreci_store_user_factors(const fedreci_store *s, uint32_t *k)
{
    *k = s->xk;
    return s->x;
}

const uint8_t *fedreci_store_identity_pk(const fedreci_store *s)
{
    return s->sign_pk;
}

const uint8_t *fedreci_store_identity_sk(const fedreci_store *s)
{
    return s->keys->sign_sk;
}

const uint8_t *fedreci_store_id(const fedreci_store *s)
{
    return s->store_id;
}

const char *fedreci_store_dir(const fedreci_store *s)
{
    return s->dir;
}
