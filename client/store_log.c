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

/* The keyed MAC of counter slot `slot` holding `count`, bound to the log's
 * prefix (so a slot cannot move to another log, generation or store). */
static void count_mac(const fedreci_store *s, const uint8_t prefix[PREFIX_BYTES], unsigned slot,
                      uint64_t count, uint8_t out[COUNT_MAC_BYTES])
{
    uint8_t msg[PREFIX_BYTES + 1 + 8];
    memcpy(msg, prefix, PREFIX_BYTES);
    msg[PREFIX_BYTES] = (uint8_t)slot;
    put_u64le(msg + PREFIX_BYTES + 1, count);
    crypto_generichash(out, COUNT_MAC_BYTES, msg, sizeof msg, s->keys->count,
                       sizeof s->keys->count);
}

static void count_slot_encode(const fedreci_store *s, const uint8_t prefix[PREFIX_BYTES],
                              unsigned slot, uint64_t count, uint8_t out[COUNT_SLOT_BYTES])
{
    put_u64le(out, count);
    count_mac(s, prefix, slot, count, out + 8);
}

/* The committed-event count of a format 2 log (b holds at least
 * LOG_HEADER_BYTES): the larger count of the two slots that authenticate.
 * The slot being rewritten when a crash hit may fail; the other one then
 * holds the count before it. */
static fedrec_err count_read(const fedreci_store *s, const char *path, const uint8_t *b,
                             uint64_t *committed)
{
    int valid = 0;
    *committed = 0;
    for (unsigned i = 0; i < 2; i++) {
        const uint8_t *slot = b + FILE_HEADER_BYTES + i * COUNT_SLOT_BYTES;
        uint8_t mac[COUNT_MAC_BYTES];
        uint64_t c = get_u64le(slot);
        count_mac(s, b, i, c, mac);
        if (sodium_memcmp(mac, slot + 8, COUNT_MAC_BYTES) == 0) {
            valid = 1;
            if (c > *committed)
                *committed = c;
        }
    }
    if (!valid)
        return fedreci_error(FEDREC_ERR_CORRUPT,
                             "%s: the committed-event counter does not authenticate (header "
                             "damaged)",
                             path);
    return FEDREC_OK;
}

/* Creates a fresh log for generation `gen` (format 2, counter 0) and opens it
 * for writing. */
static fedrec_err log_create(fedreci_store *s, uint64_t gen)
{
    if (s->log_fd >= 0) {
        close(s->log_fd);
        s->log_fd = -1;
    }
    s->log_broken = 1;
    uint8_t file[LOG_HEADER_BYTES];
    make_prefix(file, LOG_MAGIC, s->store_id, gen);
    crypto_secretstream_xchacha20poly1305_init_push(s->push, file + PREFIX_BYTES, s->keys->stream);
    count_slot_encode(s, file, 0, 0, file + FILE_HEADER_BYTES);
    count_slot_encode(s, file, 1, 0, file + FILE_HEADER_BYTES + COUNT_SLOT_BYTES);
    char *path = fedreci_store_path(s->dir, LOG_NAME);
    fedrec_err err = path ? fedreci_store_write_atomic(s->dir, LOG_NAME, file, sizeof file)
                          : fedreci_error(FEDREC_ERR_NOMEM, "%s: out of memory", s->dir);
    if (err)
        goto out;
    s->log_fd = open(path, O_WRONLY | O_CLOEXEC);
    if (s->log_fd < 0) {
        err = fedreci_error(FEDREC_ERR_IO, "%s: cannot open for appending: %s", path,
                            strerror(errno));
        goto out;
    }
    memcpy(s->log_prefix, file, PREFIX_BYTES);
    s->log_broken = 0;
    s->log_events = 0;
    s->log_end = LOG_HEADER_BYTES;
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

/* Makes the log ready for an append: a compaction when it pays or is needed
 * (the log cannot be continued, holds COMPACT_EVERY events, or the snapshot
 * does not yet say that a log exists), else opening the current log for
 * writing at the first append of this process. */
static fedrec_err log_ready(fedreci_store *s)
{
    fedrec_err err = FEDREC_OK;
    if (s->log_broken || !s->snap_has_log || s->log_events >= COMPACT_EVERY) {
        err = fedreci_store_compact(s);
        /* A store without a log until now (new, a creation cut short, or a
         * version 1/2 snapshot): its log exists now, so write the snapshot
         * that says so before any event can go into that log. */
        if (!err && !s->snap_has_log)
            err = fedreci_store_compact(s);
        return err;
    }
    if (s->log_fd < 0) {
        char *path = fedreci_store_path(s->dir, LOG_NAME);
        s->log_fd = path ? open(path, O_WRONLY | O_CLOEXEC) : -1;
        if (s->log_fd < 0) {
            s->log_broken = 1;
            err = fedreci_error(path ? FEDREC_ERR_IO : FEDREC_ERR_NOMEM,
                                "%s/%s: cannot open for appending: %s", s->dir, LOG_NAME,
                                path ? strerror(errno) : "out of memory");
        }
        free(path);
    }
    return err;
}

/* Appends one event record durably, then applies it to memory. */
fedrec_err fedreci_store_log_append(fedreci_store *s, const fedreci_wbuf *rec)
{
    if (rec->oom)
        return fedreci_error(FEDREC_ERR_NOMEM, "%s: out of memory", s->dir);
    fedrec_err err = log_ready(s);
    if (err)
        return err;
    size_t flen = 4 + rec->len + SS_ABYTES;
    uint8_t *frame = malloc(flen);
    if (!frame) {
        err = fedreci_error(FEDREC_ERR_NOMEM, "%s: out of memory", s->dir);
        goto out;
    }
    unsigned long long clen = 0;
    crypto_secretstream_xchacha20poly1305_push(s->push, frame + 4, &clen, rec->p, rec->len,
                                               s->log_prefix, PREFIX_BYTES, 0);
    put_u32le(frame, (uint32_t)clen);
    uint64_t count = s->log_events + 1;
    unsigned slot = (unsigned)(count % 2);
    uint8_t cs[COUNT_SLOT_BYTES];
    count_slot_encode(s, s->log_prefix, slot, count, cs);
    /* The frame with one write, made durable, then the counter that says it
     * is committed, made durable: the event is on disk before the caller
     * hears OK, and after any crash the counter is at most the number of
     * complete frames, so fewer frames than counted is a lost tail, never a
     * torn write. On failure the stream state has moved on, so the log is
     * retired and the next event starts a new generation. */
    int rc = fedreci_store_pwrite_all(s->log_fd, frame, flen, s->log_end);
    if (rc == 0)
        rc = fedreci_store_sync(s->log_fd, 1);
    if (rc == 0)
        rc = fedreci_store_pwrite_all(s->log_fd, cs, sizeof cs,
                                      FILE_HEADER_BYTES + slot * COUNT_SLOT_BYTES);
    if (rc == 0)
        rc = fedreci_store_sync(s->log_fd, 1);
    if (rc != 0) {
        s->log_broken = 1;
        err = fedreci_error(FEDREC_ERR_IO, "%s/%s: append failed: %s", s->dir, LOG_NAME,
                            strerror(errno));
        goto out;
    }
    s->log_events = count;
    s->log_end += flen;
    err = fedreci_store_apply_record(s, rec->p, rec->len);
    if (err == FEDREC_ERR_NOMEM)
        err = fedreci_error(FEDREC_ERR_NOMEM, "%s: out of memory", s->dir);
    else if (err)
        err = fedreci_error(FEDREC_ERR_INTERNAL, "%s: an event failed to apply", s->dir);
out:
    free(frame);
    return err;
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

/* Pulls the frames from b + off on: *events gets the complete frames
 * applied, *end the offset past the last of them, *torn 1 when bytes follow
 * it (a partial frame, or zeros a power loss left). */
static fedrec_err replay_frames(fedreci_store *s, const char *path, const uint8_t *b, size_t n,
                                size_t off, crypto_secretstream_xchacha20poly1305_state *st,
                                uint64_t *events, size_t *end, int *torn)
{
    fedrec_err err = FEDREC_OK;
    uint8_t *m = malloc(LOG_FRAME_MAX);
    if (!m) {
        err = fedreci_error(FEDREC_ERR_NOMEM, "%s: out of memory", path);
        goto out;
    }
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
        if (e) {
            err = e == FEDREC_ERR_NOMEM
                      ? fedreci_error(e, "%s: out of memory", path)
                      : fedreci_error(FEDREC_ERR_CORRUPT, "%s: malformed event at byte %zu", path,
                                      off);
            goto out;
        }
        off += 4 + clen;
        (*events)++;
    }
    *end = off;
    *torn = off < n;
out:
    if (m)
        fedreci_wipe_free(m, LOG_FRAME_MAX);
    return err;
}

/* Checks the log's prefix: *v2 gets 1 for format 2 (with the counter). */
static fedrec_err log_prefix_check(const fedreci_store *s, const char *path, const uint8_t *b,
                                   size_t n, uint64_t *gen, int *v2)
{
    *v2 = n >= 8 && memcmp(b, LOG_MAGIC, 8) == 0;
    fedrec_err err = file_prefix_check(s, path, b, n, *v2 ? LOG_MAGIC : LOG_MAGIC_V1, "log", gen);
    if (!err && *v2 && n < LOG_HEADER_BYTES)
        err = fedreci_error(FEDREC_ERR_CORRUPT, "%s: truncated in its header (%zu of %u bytes)",
                            path, n, LOG_HEADER_BYTES);
    return err;
}

fedrec_err fedreci_store_log_replay(fedreci_store *s, const char *path, const uint8_t *b, size_t n,
                                    unsigned flags)
{
    uint64_t gen = 0, committed = 0, events = 0;
    int v2 = 0, torn = 0;
    size_t end = 0;
    crypto_secretstream_xchacha20poly1305_state *st = NULL;
    fedrec_err err = log_prefix_check(s, path, b, n, &gen, &v2);
    if (err || gen < s->gen)
        goto out; /* gen < s->gen: stale, already folded into the snapshot */
    if (gen > s->gen) {
        err = fedreci_error(FEDREC_ERR_CORRUPT,
                            "%s: generation %llu is newer than the snapshot's %llu (the "
                            "snapshot was replaced by an older one)",
                            path, (unsigned long long)gen, (unsigned long long)s->gen);
        goto out;
    }
    if (v2 && (err = count_read(s, path, b, &committed)))
        goto out;
    if ((err = stream_pull_begin(s, path, b, &st)))
        goto out;
    err = replay_frames(s, path, b, n, v2 ? LOG_HEADER_BYTES : FILE_HEADER_BYTES, st, &events, &end,
                        &torn);
    if (!err && events < committed && !(flags & FEDRECI_OPEN_KEEP_PARTIAL)) {
        err = fedreci_error(FEDREC_ERR_LOST_EVENTS,
                            "%s: %llu committed events are missing: the log holds %llu of the "
                            "%llu events committed to it (it ends after byte %zu); nothing was "
                            "changed, and recovering the store keeps the %llu that are left",
                            path, (unsigned long long)(committed - events),
                            (unsigned long long)events, (unsigned long long)committed, end,
                            (unsigned long long)events);
        goto out;
    }
    if (!err && events < committed)
        s->lost = committed - events;
    /* A current format 2 log that ends with a complete frame and lost
     * nothing is continued: the pull state after the log's messages is the
     * push state after them (secretstream's state is one type for both
     * directions, updated the same way). Otherwise the first append starts a
     * new generation. */
    if (!err && v2 && !torn && events >= committed) {
        memcpy(s->push, st, sizeof *st);
        memcpy(s->log_prefix, b, PREFIX_BYTES);
        s->log_events = events;
        s->log_end = end;
        s->log_broken = 0;
    }
out:
    sodium_free(st);
    return err;
}
