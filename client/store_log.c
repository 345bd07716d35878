/* client/store_log: the store's encrypted snapshot and append-only log; see
 * store_log.h. */
#include "client/store_log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "client/store_codec.h"
#include "client/store_file.h"
#include "client/store_internal.h"
#include "core/err.h"

static void make_prefix(uint8_t out[PREFIX_BYTES], const char *magic, const uint8_t *store_id,
                        uint64_t gen)
{
    memcpy(out, magic, 8);
    memcpy(out + 8, store_id, FEDRECI_STORE_ID_BYTES);
    put_u64le(out + 24, gen);
}

/* Encrypts the state as generation `gen` into out (a whole snapshot file). */
static fedrec_err snapshot_build(const fedreci_store *s, uint64_t gen, fedreci_wbuf *out)
{
    fedreci_wbuf plain = {0};
    fedreci_store_encode_state(s, &plain);
    uint8_t prefix[PREFIX_BYTES];
    make_prefix(prefix, SNAP_MAGIC, s->store_id, gen);
    crypto_secretstream_xchacha20poly1305_state *st = sodium_malloc(sizeof *st);
    uint8_t *c = malloc(SNAP_CHUNK + SS_ABYTES);
    fedrec_err err = FEDREC_OK;
    if (plain.oom || !st || !c) {
        err = fedreci_error(FEDREC_ERR_NOMEM, "%s: out of memory writing the snapshot", s->dir);
        goto out;
    }
    uint8_t header[SS_HEADER];
    crypto_secretstream_xchacha20poly1305_init_push(st, header, s->keys->stream);
    fedreci_wb_put(out, prefix, PREFIX_BYTES);
    fedreci_wb_put(out, header, SS_HEADER);
    size_t off = 0;
    do {
        size_t m = plain.len - off < SNAP_CHUNK ? plain.len - off : SNAP_CHUNK;
        int last = off + m == plain.len;
        unsigned long long clen = 0;
        crypto_secretstream_xchacha20poly1305_push(
            st, c, &clen, plain.p + off, m, prefix, PREFIX_BYTES,
            last ? crypto_secretstream_xchacha20poly1305_TAG_FINAL : 0);
        fedreci_wb_u32(out, (uint32_t)clen);
        fedreci_wb_put(out, c, (size_t)clen);
        off += m;
    } while (off < plain.len);
    if (out->oom)
        err = fedreci_error(FEDREC_ERR_NOMEM, "%s: out of memory writing the snapshot", s->dir);
out:
    sodium_free(st);
    free(c);
    fedreci_wb_free(&plain);
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
    char *path = fedreci_store_path(s->dir, LOG_NAME);
    fedrec_err err = path ? fedreci_store_write_atomic(s->dir, LOG_NAME, file, sizeof file)
                          : fedreci_error(FEDREC_ERR_NOMEM, "%s: out of memory", s->dir);
    if (err)
        goto out;
    s->log_fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (s->log_fd < 0) {
        err = fedreci_error(FEDREC_ERR_IO, "%s: cannot open for appending: %s", path,
                            strerror(errno));
        goto out;
    }
    memcpy(s->log_prefix, file, PREFIX_BYTES);
    s->log_broken = 0;
    s->log_events = 0;
    s->has_log = 1;
out:
    free(path);
    return err;
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
    fedreci_wbuf snap = {0};
    int has_log = s->has_log;
    fedrec_err err = snapshot_build(s, s->gen + 1, &snap);
    if (!err)
        err = fedreci_store_write_atomic(s->dir, SNAP_NAME, snap.p, snap.len);
    fedreci_wb_free(&snap);
    if (err)
        return err;
    s->gen++;
    s->snap_has_log = has_log;
    return log_create(s, s->gen);
}

/* Appends one event record durably, then applies it to memory. */
fedrec_err fedreci_store_log_append(fedreci_store *s, const fedreci_wbuf *rec)
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
    int rc = fedreci_store_write_all(s->log_fd, frame, flen);
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
    fedrec_err err = fedreci_store_apply_record(s, rec->p, rec->len);
    if (err == FEDREC_ERR_NOMEM)
        return fedreci_error(FEDREC_ERR_NOMEM, "%s: out of memory", s->dir);
    if (err)
        return fedreci_error(FEDREC_ERR_INTERNAL, "%s: an event failed to apply", s->dir);
    return FEDREC_OK;
}

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
fedrec_err fedreci_store_snapshot_load(fedreci_store *s, const char *path, const uint8_t *b,
                                       size_t n)
{
    fedrec_err err = file_prefix_check(s, path, b, n, SNAP_MAGIC, "snapshot", &s->gen);
    if (err)
        return err;
    crypto_secretstream_xchacha20poly1305_state *st = NULL;
    fedreci_wbuf plain = {0};
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
        fedreci_wb_put(&plain, m, (size_t)mlen);
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
    err = fedreci_store_decode_state(s, plain.p, plain.len);
    if (err == FEDREC_ERR_FORMAT)
        err = fedreci_error(FEDREC_ERR_CORRUPT, "%s: malformed state", path);
    else if (err)
        err = fedreci_error(err, "%s: out of memory", path);
out:
    if (m)
        fedreci_wipe_free(m, n);
    fedreci_wb_free(&plain);
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
fedrec_err fedreci_store_log_replay(fedreci_store *s, const char *path, const uint8_t *b, size_t n,
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
        fedrec_err e = fedreci_store_apply_record(s, m, (size_t)mlen);
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
        fedreci_wipe_free(m, LOG_FRAME_MAX);
    sodium_free(st);
    return err;
}
