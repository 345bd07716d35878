/* The mask generator: chunked ChaCha20-IETF keystreams (see prg.h). */
#include "core/secagg/prg.h"

#include <string.h>

#include <sodium.h>

#define CHUNK_WORDS (FEDRECI_PRG_CHUNK_BYTES / 4)
#define CHUNK_BLOCKS (FEDRECI_PRG_CHUNK_BYTES / 64)

static const uint8_t zero_chunk[FEDRECI_PRG_CHUNK_BYTES];

void fedreci_prg_nonce(uint8_t nonce[FEDRECI_PRG_NONCE_BYTES], uint64_t round, uint32_t purpose)
{
    for (int i = 0; i < 4; i++)
        nonce[i] = (uint8_t)(purpose >> (8 * i));
    for (int i = 0; i < 8; i++)
        nonce[4 + i] = (uint8_t)(round >> (8 * i));
}

/* Keystream bytes of one chunk into buf (words, host order after the fix-up). */
static void chunk(uint32_t *buf, size_t words, const uint8_t *key, const uint8_t *nonce,
                  uint32_t counter)
{
    size_t bytes = words * 4;
    crypto_stream_chacha20_ietf_xor_ic((uint8_t *)buf, zero_chunk, bytes, nonce, counter, key);
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
    for (size_t i = 0; i < words; i++) {
        const uint8_t *p = (const uint8_t *)&buf[i];
        buf[i] = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    }
#endif
}

/* o[i] += b[i] (or -=) for i < n. The fixed-length inner loops vectorize
 * under GCC's -O2 "very cheap" cost model (a loop of unknown trip count,
 * which needs an epilogue, does not); the tail is scalar. */
#define BLOCK 64
static void add_words(uint32_t *restrict o, const uint32_t *restrict b, size_t n, int negate)
{
    size_t i = 0;
    if (!negate) {
        for (; i + BLOCK <= n; i += BLOCK)
            for (size_t j = 0; j < BLOCK; j++)
                o[i + j] += b[i + j];
        for (; i < n; i++)
            o[i] += b[i];
    } else {
        for (; i + BLOCK <= n; i += BLOCK)
            for (size_t j = 0; j < BLOCK; j++)
                o[i + j] -= b[i + j];
        for (; i < n; i++)
            o[i] -= b[i];
    }
}

void fedreci_prg_add(const uint8_t *keys, const int8_t *signs, size_t n_keys,
                     const uint8_t nonce[FEDRECI_PRG_NONCE_BYTES], uint32_t counter0, uint32_t *out,
                     size_t d)
{
    uint32_t buf[CHUNK_WORDS] __attribute__((aligned(64)));
    size_t c = 0;

    for (size_t off = 0; off < d; off += CHUNK_WORDS, c++) {
        size_t words = d - off < CHUNK_WORDS ? d - off : CHUNK_WORDS;
        uint32_t counter = counter0 + (uint32_t)(c * CHUNK_BLOCKS);
        uint32_t *o = out + off;
        for (size_t j = 0; j < n_keys; j++) {
            chunk(buf, words, keys + j * FEDRECI_PRG_KEY_BYTES, nonce, counter);
            add_words(o, buf, words, signs[j] < 0);
        }
    }
    sodium_memzero(buf, sizeof buf);
}

void fedreci_prg_words(const uint8_t key[FEDRECI_PRG_KEY_BYTES],
                       const uint8_t nonce[FEDRECI_PRG_NONCE_BYTES], uint32_t counter0,
                       uint32_t *out, size_t d)
{
    memset(out, 0, d * sizeof *out);
    static const int8_t plus = 1;
    fedreci_prg_add(key, &plus, 1, nonce, counter0, out, d);
}

void fedreci_prg_stream(const uint8_t key[FEDRECI_PRG_KEY_BYTES],
                        const uint8_t nonce[FEDRECI_PRG_NONCE_BYTES], uint32_t counter0,
                        uint8_t *out, size_t bytes)
{
    /* keystream = encryption of zeros, one zero chunk at a time */
    for (size_t off = 0; off < bytes; off += FEDRECI_PRG_CHUNK_BYTES) {
        size_t len = bytes - off < FEDRECI_PRG_CHUNK_BYTES ? bytes - off : FEDRECI_PRG_CHUNK_BYTES;
        crypto_stream_chacha20_ietf_xor_ic(out + off, zero_chunk, len, nonce,
                                           counter0 + (uint32_t)(off / 64), key);
    }
}
