/* client/store_key: the store's key handling and its meta file; see
 * store_key.h. */
#include "client/store_key.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "client/store_codec.h"
#include "client/store_file.h"
#include "client/store_internal.h"
#include "core/err.h"

void fedreci_store_key_derive(const uint8_t master[32], const char *label, const uint8_t *store_id,
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

fedrec_err fedreci_store_key_create(const char *dir, const char *mpath, fedreci_key_kind kind,
                                    const uint8_t *key, size_t key_len, unsigned long long opslimit,
                                    size_t memlimit, uint8_t master[32],
                                    uint8_t store_id[FEDRECI_STORE_ID_BYTES])
{
    meta m;
    memset(&m, 0, sizeof m);
    m.version = META_VERSION;
    m.kind = (uint32_t)kind;
    randombytes_buf(m.store_id, sizeof m.store_id);
    randombytes_buf(m.salt, sizeof m.salt);
    if (kind == FEDRECI_KEY_PASSPHRASE) {
        m.opslimit = opslimit ? opslimit : crypto_pwhash_OPSLIMIT_INTERACTIVE;
        m.memlimit = memlimit ? memlimit : crypto_pwhash_MEMLIMIT_INTERACTIVE;
    }
    fedrec_err err = master_key(mpath, &m, key, key_len, master);
    if (!err) {
        fedreci_store_key_derive(master, FEDRECI_LABEL_CHECK, m.store_id, m.check);
        uint8_t enc[META_BYTES];
        meta_encode(&m, enc);
        err = fedreci_store_write_atomic(dir, META_NAME, enc, sizeof enc);
    }
    if (!err)
        memcpy(store_id, m.store_id, FEDRECI_STORE_ID_BYTES);
    sodium_memzero(&m, sizeof m);
    return err;
}

fedrec_err fedreci_store_key_load(const char *mpath, fedreci_key_kind kind, const uint8_t *key,
                                  size_t key_len, uint8_t master[32],
                                  uint8_t store_id[FEDRECI_STORE_ID_BYTES])
{
    uint8_t *mb = NULL;
    size_t mn = 0;
    uint8_t check[32];
    meta m;
    memset(&m, 0, sizeof m);
    fedrec_err err = fedreci_store_read_file(mpath, &mb, &mn);
    if (err == FEDREC_ERR_NOT_FOUND)
        err = fedreci_error(FEDREC_ERR_IO, "%s: vanished while opening", mpath);
    if (err)
        goto out;
    err = meta_decode(mpath, mb, mn, &m);
    if (err)
        goto out;
    if (m.kind != (uint32_t)kind) {
        err = fedreci_error(FEDREC_ERR_BADKEY, "%s: the store is protected by a %s, not a %s",
                            mpath, m.kind == FEDRECI_KEY_RAW ? "raw key" : "passphrase",
                            kind == FEDRECI_KEY_RAW ? "raw key" : "passphrase");
        goto out;
    }
    err = master_key(mpath, &m, key, key_len, master);
    if (err)
        goto out;
    fedreci_store_key_derive(master, FEDRECI_LABEL_CHECK, m.store_id, check);
    if (sodium_memcmp(check, m.check, 32) != 0) {
        err = fedreci_error(FEDREC_ERR_BADKEY, "%s: wrong key for this store", mpath);
        goto out;
    }
    memcpy(store_id, m.store_id, FEDRECI_STORE_ID_BYTES);
out:
    sodium_memzero(check, sizeof check);
    sodium_memzero(&m, sizeof m);
    free(mb);
    return err;
}
