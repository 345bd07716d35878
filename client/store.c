/* client/store: open, close, forget, the updates and the reads of the local
 * store; see store.h and docs/client.md for the format and guarantees. The
 * byte codec is store_codec.c, the file I/O store_file.c, the keys and meta
 * store_key.c, the snapshot and log store_log.c. */
#include "client/store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "client/store_codec.h"
#include "client/store_file.h"
#include "client/store_internal.h"
#include "client/store_key.h"
#include "client/store_log.h"
#include "core/err.h"

/* ---- open and close ----------------------------------------------------- */

void fedreci_store_close(fedreci_store *s)
{
    if (!s)
        return;
    if (s->log_fd >= 0)
        close(s->log_fd);
    if (s->meta_fd >= 0)
        close(s->meta_fd); /* releases the flock */
    fedreci_store_state_free(s);
    sodium_free(s->keys);
    sodium_free(s->push);
    free(s->dir);
    sodium_memzero(s, sizeof *s);
    free(s);
}

/* Checks the arguments of fedreci_store_open. */
static fedrec_err open_args_check(fedreci_store **out, const char *dir, fedreci_key_kind kind,
                                  const uint8_t *key, size_t key_len)
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
    return FEDREC_OK;
}

/* A store object with no files open and its secure memory allocated; NULL
 * when out of memory. */
static fedreci_store *store_alloc(const char *dir)
{
    fedreci_store *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->meta_fd = -1;
    s->log_fd = -1;
    s->log_broken = 1;
    s->dir = strdup(dir);
    s->keys = sodium_malloc(sizeof *s->keys);
    s->push = sodium_malloc(sizeof *s->push);
    if (!s->dir || !s->keys || !s->push) {
        fedreci_store_close(s);
        return NULL;
    }
    sodium_memzero(s->keys, sizeof *s->keys);
    return s;
}

/* Makes the store directory (mode 0700) unless it exists; with
 * FEDRECI_OPEN_MUST_EXIST a missing one is FEDREC_ERR_NOT_FOUND instead. */
static fedrec_err open_dir(const char *dir, unsigned flags)
{
    struct stat st;
    if (stat(dir, &st) != 0) {
        if (errno == ENOENT && (flags & FEDRECI_OPEN_MUST_EXIST))
            return fedreci_error(FEDREC_ERR_NOT_FOUND, "%s: no store here (no such directory)",
                                 dir);
        if (errno != ENOENT || mkdir(dir, 0700) != 0)
            return fedreci_error(FEDREC_ERR_IO, "%s: cannot create the store directory: %s", dir,
                                 strerror(errno));
    } else if (!S_ISDIR(st.st_mode)) {
        return fedreci_error(FEDREC_ERR_INVALID, "%s: exists and is not a directory", dir);
    }
    return FEDREC_OK;
}

/* Opens meta (creating it, and so a new store, when it does not exist,
 * unless flags has FEDRECI_OPEN_MUST_EXIST), takes the store's flock and
 * derives the keys. */
static fedrec_err open_meta(fedreci_store *s, const char *mpath, fedreci_key_kind kind,
                            const uint8_t *key, size_t key_len, unsigned long long opslimit,
                            size_t memlimit, unsigned flags)
{
    int creating = 0;
    s->meta_fd = open(mpath, O_RDONLY | O_CLOEXEC);
    if (s->meta_fd < 0 && errno != ENOENT)
        return fedreci_error(FEDREC_ERR_IO, "%s: cannot open: %s", mpath, strerror(errno));
    if (s->meta_fd < 0) {
        if (fedreci_store_file_exists(s->dir, SNAP_NAME) ||
            fedreci_store_file_exists(s->dir, LOG_NAME))
            return fedreci_error(FEDREC_ERR_CORRUPT,
                                 "%s: missing, but the directory holds store files (damaged "
                                 "store)",
                                 mpath);
        if (flags & FEDRECI_OPEN_MUST_EXIST)
            return fedreci_error(FEDREC_ERR_NOT_FOUND, "%s: no store here (no %s)", s->dir,
                                 META_NAME);
        creating = 1;
        fedrec_err err = fedreci_store_key_create(s->dir, mpath, kind, key, key_len, opslimit,
                                                  memlimit, s->keys->master, s->store_id);
        if (err)
            return err;
        s->meta_fd = open(mpath, O_RDONLY | O_CLOEXEC);
        if (s->meta_fd < 0)
            return fedreci_error(FEDREC_ERR_IO, "%s: cannot open: %s", mpath, strerror(errno));
    }
    if (flock(s->meta_fd, LOCK_EX | LOCK_NB) != 0)
        return fedreci_error(errno == EWOULDBLOCK ? FEDREC_ERR_BUSY : FEDREC_ERR_IO,
                             "%s: the store is open in another client or process", s->dir);
    if (!creating) {
        fedrec_err err =
            fedreci_store_key_load(mpath, kind, key, key_len, s->keys->master, s->store_id);
        if (err)
            return err;
    }
    fedreci_store_key_derive(s->keys->master, FEDRECI_LABEL_STREAM, s->store_id, s->keys->stream);
    return FEDREC_OK;
}

/* The empty state of a store nothing was ever recorded in. */
static fedrec_err state_init_empty(fedreci_store *s)
{
    if (crypto_sign_keypair(s->sign_pk, s->keys->sign_sk) != 0)
        return fedreci_error(FEDREC_ERR_CRYPTO, "crypto_sign_keypair failed");
    s->opted_in = 1;
    s->next_seq = 1;
    s->gen = 0;
    s->has_log = s->snap_has_log = 0;
    return FEDREC_OK;
}

/* Reads and authenticates the snapshot and the log into s, writing nothing. */
static fedrec_err open_state(fedreci_store *s, const char *spath, const char *lpath, unsigned flags)
{
    uint8_t *sb = NULL, *lb = NULL;
    size_t sn = 0, ln = 0;
    fedrec_err err = fedreci_store_read_file(spath, &sb, &sn);
    fedrec_err lerr = err ? FEDREC_OK : fedreci_store_read_file(lpath, &lb, &ln);
    if (err == FEDREC_ERR_NOT_FOUND) {
        /* A new store, or a creation cut short after meta was written: nothing
         * was ever recorded, so start from the empty state. */
        if (fedreci_store_file_exists(s->dir, LOG_NAME))
            err = fedreci_error(FEDREC_ERR_CORRUPT, "%s: missing, but a log exists", spath);
        else
            err = state_init_empty(s);
        goto out;
    }
    if (err)
        goto out;
    err = fedreci_store_snapshot_load(s, spath, sb, sn);
    if (!err && lerr && lerr != FEDREC_ERR_NOT_FOUND)
        err = lerr;
    if (!err && lerr == FEDREC_ERR_NOT_FOUND && s->snap_has_log) {
        /* Never a crash point: once a snapshot says so, the log is only
         * replaced by rename. Opening without it would silently roll back
         * every event recorded since that snapshot. */
        err = fedreci_error(FEDREC_ERR_CORRUPT,
                            "%s: missing, but the snapshot (generation %llu) says the store "
                            "has a log (deleted? its events would be lost)",
                            lpath, (unsigned long long)s->gen);
    }
    if (!err && !lerr) {
        s->has_log = 1;
        err = fedreci_store_log_replay(s, lpath, lb, ln, flags);
    }
out:
    if (sb)
        fedreci_wipe_free(sb, sn);
    if (lb)
        fedreci_wipe_free(lb, ln);
    return err;
}

fedrec_err fedreci_store_open(fedreci_store **out, const char *dir, fedreci_key_kind kind,
                              const uint8_t *key, size_t key_len, unsigned long long opslimit,
                              size_t memlimit)
{
    return fedreci_store_open_flags(out, dir, kind, key, key_len, opslimit, memlimit, 0);
}

fedrec_err fedreci_store_open_flags(fedreci_store **out, const char *dir, fedreci_key_kind kind,
                                    const uint8_t *key, size_t key_len, unsigned long long opslimit,
                                    size_t memlimit, unsigned flags)
{
    fedrec_err err = open_args_check(out, dir, kind, key, key_len);
    if (err)
        return err;
    char *mpath = fedreci_store_path(dir, META_NAME);
    char *spath = fedreci_store_path(dir, SNAP_NAME);
    char *lpath = fedreci_store_path(dir, LOG_NAME);
    fedreci_store *s = store_alloc(dir);
    if (!s || !mpath || !spath || !lpath) {
        err = fedreci_error(FEDREC_ERR_NOMEM, "%s: out of memory", dir);
        goto out;
    }
    err = open_dir(dir, flags);
    if (!err)
        err = open_meta(s, mpath, kind, key, key_len, opslimit, memlimit, flags);
    /* Read and authenticate everything, writing nothing: an existing store
     * is compacted only when an update needs or pays for it (log_ready in
     * store_log.c). */
    if (!err)
        err = open_state(s, spath, lpath, flags);
    /* A new store (or a creation cut short before its first snapshot): its
     * identity key pair was just made, so write it down now, then the log,
     * then the snapshot that says a log exists. */
    if (!err && s->gen == 0) {
        err = fedreci_store_compact(s);
        if (!err)
            err = fedreci_store_compact(s);
    }
out:
    if (err) {
        fedreci_store_close(s);
        s = NULL;
    } else {
        *out = s;
    }
    free(mpath);
    free(spath);
    free(lpath);
    return err;
}

/* ---- forget ----------------------------------------------------------------- */

fedrec_err fedreci_store_forget(fedreci_store *s)
{
    return fedreci_store_erase(s, 0);
}

fedrec_err fedreci_store_erase(fedreci_store *s, int keep_dir)
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
        char *p = fedreci_store_path(s->dir, names[i]);
        if (!p) {
            err = fedreci_error(FEDREC_ERR_NOMEM, "%s: out of memory", s->dir);
            break;
        }
        if (unlink(p) != 0 && errno != ENOENT && !err)
            err = fedreci_error(FEDREC_ERR_IO, "%s: cannot remove: %s", p, strerror(errno));
        free(p);
    }
    if (!err) {
        err = fedreci_store_fsync_dir(s->dir);
        /* The directory goes too unless the app keeps other files in it (or
           it was there before the store). */
        if (!err && !keep_dir && rmdir(s->dir) == 0) {
            char *parent = strdup(s->dir);
            if (parent) {
                char *slash = strrchr(parent, '/');
                if (slash == parent)
                    slash[1] = '\0';
                else if (slash)
                    *slash = '\0';
                else
                    strcpy(parent, ".");
                err = fedreci_store_fsync_dir(parent);
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
    fedreci_wbuf rec = {0};
    fedreci_wb_u8(&rec, REC_PURCHASE);
    fedreci_store_encode_purchase(&rec, &p);
    err = fedreci_store_log_append(s, &rec);
    fedreci_wb_free(&rec);
    if (!err && seq)
        *seq = p.seq;
    sodium_memzero(&p, sizeof p);
    return err;
}

fedrec_err fedreci_store_set_participation(fedreci_store *s, int opted_in)
{
    fedreci_wbuf rec = {0};
    fedreci_wb_u8(&rec, REC_PARTICIPATION);
    fedreci_wb_u8(&rec, opted_in ? 1 : 0);
    fedrec_err err = fedreci_store_log_append(s, &rec);
    fedreci_wb_free(&rec);
    return err;
}

fedrec_err fedreci_store_add_ledger(fedreci_store *s, const fedreci_ledger_rec *l)
{
    if (!l || strnlen(l->what, sizeof l->what) > FEDRECI_WHAT_MAX ||
        strnlen(l->reason, sizeof l->reason) > FEDRECI_REASON_MAX || l->kind > 1)
        return fedreci_error(FEDREC_ERR_INVALID,
                             "ledger entry: NULL, description or reason too long, or kind %u",
                             l ? l->kind : 0);
    fedreci_wbuf rec = {0};
    fedreci_wb_u8(&rec, REC_LEDGER2);
    fedreci_store_encode_ledger(&rec, l);
    fedrec_err err = fedreci_store_log_append(s, &rec);
    fedreci_wb_free(&rec);
    return err;
}

fedrec_err fedreci_store_add_dp(fedreci_store *s, const fedreci_dp_ledger_rec *l)
{
    if (!l || strlen(l->reason) > FEDRECI_DP_REASON_MAX || l->refused > 1)
        return fedreci_error(FEDREC_ERR_INVALID, "privacy ledger entry: NULL or reason too long");
    fedreci_wbuf rec = {0};
    fedreci_wb_u8(&rec, REC_DP);
    fedreci_store_encode_dp(&rec, l);
    fedrec_err err = fedreci_store_log_append(s, &rec);
    fedreci_wb_free(&rec);
    return err;
}

const fedreci_dp_ledger_rec *fedreci_store_dp(const fedreci_store *s, size_t *n)
{
    *n = s->n_dp;
    return s->dp;
}

fedrec_err fedreci_store_set_user_factors(fedreci_store *s, const float *x, uint32_t k)
{
    if ((!x && k) || k > FEDRECI_MODEL_MAX_K)
        return fedreci_error(FEDREC_ERR_INVALID, "user factors: k = %u (max %u)", k,
                             FEDRECI_MODEL_MAX_K);
    fedreci_wbuf rec = {0};
    fedreci_wb_u8(&rec, REC_USER_FACTORS);
    fedreci_wb_u32(&rec, k);
    fedreci_wb_floats(&rec, x, k);
    fedrec_err err = fedreci_store_log_append(s, &rec);
    fedreci_wb_free(&rec);
    return err;
}

/* Checks a model's shapes, retired rows and codes (see set_model). */
static fedrec_err model_check(uint32_t n_items, uint32_t k, const float *y,
                              const char *const *codes, const uint32_t *retired, uint32_t n_retired)
{
    if (!y || !codes || !fedreci_store_model_dims_ok(n_items, k))
        return fedreci_error(FEDREC_ERR_INVALID, "model: %u items x %u factors out of range",
                             n_items, k);
    if (!fedreci_store_retired_ok(retired, n_retired, n_items))
        return fedreci_error(FEDREC_ERR_INVALID,
                             "model: %u retired rows not strictly ascending below %u items",
                             n_retired, n_items);
    for (uint32_t i = 0; i < n_items; i++) {
        fedrec_err e = fedreci_store_check_code(codes[i]);
        if (e)
            return fedreci_error(e, "model catalog row %u: %s", i, fedrec_errmsg());
    }
    return FEDREC_OK;
}

/* A new model holding copies of the arrays; NULL when out of memory. */
static fedreci_store_model *model_copy(uint64_t version, uint32_t n_items, uint32_t k,
                                       const float *y, const float *gram, const char *const *codes,
                                       const uint32_t *retired, uint32_t n_retired)
{
    fedreci_store_model *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
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
        fedreci_store_model_free(m);
        return NULL;
    }
    if (n_retired)
        memcpy(m->retired, retired, (size_t)n_retired * sizeof *m->retired);
    m->n_retired = n_retired;
    memcpy(m->y, y, (size_t)n_items * k * sizeof(float));
    if (gram)
        memcpy(m->gram, gram, (size_t)k * k * sizeof(float));
    for (uint32_t i = 0; i < n_items; i++)
        strcpy(m->codes[i], codes[i]);
    return m;
}

fedrec_err fedreci_store_set_model(fedreci_store *s, uint64_t version, uint32_t n_items, uint32_t k,
                                   const float *y, const float *gram, const char *const *codes,
                                   const uint32_t *retired, uint32_t n_retired)
{
    fedrec_err err = model_check(n_items, k, y, codes, retired, n_retired);
    if (err)
        return err;
    fedreci_store_model *m = model_copy(version, n_items, k, y, gram, codes, retired, n_retired);
    if (!m)
        return fedreci_error(FEDREC_ERR_NOMEM, "out of memory for the model (%u x %u)", n_items, k);
    fedreci_store_model_checksum(m); /* once per model written, kept in the snapshot */
    fedreci_store_model *old = s->model;
    uint64_t gen = s->gen;
    s->model = m;
    err = fedreci_store_compact(s);
    /* Not replaced on disk (the snapshot was not written): the old model
     * stays. Otherwise either fully done, or the new snapshot is on disk and
     * only the new log failed (the next event retries it): the new model is
     * the state. */
    if (err && s->gen == gen) {
        s->model = old;
        old = m;
    }
    fedreci_store_model_free(old);
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

uint64_t fedreci_store_lost(const fedreci_store *s)
{
    return s->lost;
}

const char *fedreci_store_dir(const fedreci_store *s)
{
    return s->dir;
}
