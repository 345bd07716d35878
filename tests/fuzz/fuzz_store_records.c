/* libFuzzer harness for the client store's plaintext decoders, the code that
 * runs after a snapshot or log message has been authenticated (so it cannot
 * be reached by damaging files without the key): fedreci_store_decode_state
 * (a snapshot's plaintext) and fedreci_store_apply_record (one log event),
 * from the store's internal codec (client/store_codec.h).
 *
 * Input: byte0 bit 0 = 0: the rest is a snapshot plaintext, decoded into an
 * empty store, then (on success) re-encoded, which must reproduce the input
 * byte for byte (the format has one encoding per state). bit 0 = 1: the rest
 * is a sequence of events, each a 2-byte little-endian length and that many
 * bytes, applied in order to an empty store. Every path frees through
 * fedreci_store_state_free exactly as fedreci_store_close does. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "client/store_codec.h"
#include "client/store_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int init;
    if (!init) {
        if (sodium_init() < 0)
            abort();
        init = 1;
    }
    if (size < 1)
        return 0;
    fedreci_store *s = calloc(1, sizeof *s);
    if (!s)
        return 0;
    s->keys = sodium_malloc(sizeof *s->keys);
    if (!s->keys) {
        free(s);
        return 0;
    }
    sodium_memzero(s->keys, sizeof *s->keys);
    s->next_seq = 1;
    s->opted_in = 1;
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    if ((data[0] & 1) == 0) {
        if (fedreci_store_decode_state(s, p, n) == FEDREC_OK) {
            /* The current format has one encoding per state: re-encoding
             * reproduces the input. An older version (still readable) is
             * re-encoded in the current one, which must decode to a state
             * that re-encodes to the same bytes. */
            uint32_t version = n >= 4 ? (uint32_t)p[0] | (uint32_t)p[1] << 8 |
                                            (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24
                                      : 0;
            fedreci_wbuf b = {0};
            fedreci_store_encode_state(s, &b);
            if (!b.oom && version == STATE_VERSION && (b.len != n || memcmp(b.p, p, n) != 0))
                abort();
            if (!b.oom && version != STATE_VERSION) {
                fedreci_store *t = calloc(1, sizeof *t);
                if (t && (t->keys = sodium_malloc(sizeof *t->keys))) {
                    sodium_memzero(t->keys, sizeof *t->keys);
                    if (fedreci_store_decode_state(t, b.p, b.len) != FEDREC_OK)
                        abort();
                    fedreci_wbuf b2 = {0};
                    fedreci_store_encode_state(t, &b2);
                    if (!b2.oom && (b2.len != b.len || memcmp(b2.p, b.p, b.len) != 0))
                        abort();
                    fedreci_wb_free(&b2);
                    fedreci_store_state_free(t);
                    sodium_free(t->keys);
                }
                free(t);
            }
            fedreci_wb_free(&b);
        }
    } else {
        size_t off = 0;
        while (n - off >= 2) {
            size_t len = (size_t)p[off] | (size_t)p[off + 1] << 8;
            off += 2;
            if (len > n - off)
                break;
            fedrec_err e = fedreci_store_apply_record(s, p + off, len);
            if (e != FEDREC_OK && e != FEDREC_ERR_FORMAT)
                break;
            off += len;
        }
        for (size_t i = 1; i < s->n_purchases; i++)
            if (s->purchases[i].seq <= s->purchases[i - 1].seq)
                abort();
    }
    fedreci_store_state_free(s);
    sodium_free(s->keys);
    free(s);
    return 0;
}
