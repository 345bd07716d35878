/*
 * core/secagg/prg: the mask generator. A mask is the ChaCha20 keystream (IETF
 * variant, RFC 8439 section 2.4: 256-bit key, 96-bit nonce, 32-bit block
 * counter starting at 0) read as little-endian uint32 words: word i is bytes
 * 4i..4i+3 of the keystream. The nonce is derived from (round, purpose):
 * LE32(purpose) || LE64(round), so one key never serves two purposes or two
 * rounds. The 32-bit block counter limits one keystream to 2^32 * 64 bytes
 * (256 GiB, i.e. 2^36 words); the round parameters cap d far below that.
 *
 * Masks are generated in 16 KiB chunks (crypto_stream_chacha20_ietf_xor_ic
 * over a zero block, the block counter advanced per chunk) and added straight
 * into the caller's accumulator, so masking runs at close to raw keystream
 * speed and needs no d-sized scratch buffer. With several keys the loop is
 * chunk-major: each 16 KiB slice of the accumulator stays in L1 cache while
 * every key's keystream is added into it.
 *
 * Thread-safe (no state). Keys are secrets (caller's sodium_malloc memory);
 * the chunk buffer on the stack is wiped before return.
 */
#ifndef FEDREC_CORE_SECAGG_PRG_H
#define FEDREC_CORE_SECAGG_PRG_H

#include <stddef.h>
#include <stdint.h>

#define FEDRECI_PRG_KEY_BYTES 32
#define FEDRECI_PRG_NONCE_BYTES 12
#define FEDRECI_PRG_CHUNK_BYTES 16384

/* Purposes (part of the nonce). */
#define FEDRECI_PRG_SELF_MASK 1u
#define FEDRECI_PRG_PAIR_MASK 2u
#define FEDRECI_PRG_ROUNDING 3u
#define FEDRECI_PRG_GRAPH 4u

/* nonce = LE32(purpose) || LE64(round). */
void fedreci_prg_nonce(uint8_t nonce[FEDRECI_PRG_NONCE_BYTES], uint64_t round, uint32_t purpose);

/* out[i] += sum_j signs[j] * W_j(i) mod 2^32 for i < d, where W_j is the
 * keystream of keys[j] (n_keys x 32 bytes) under `nonce` read as
 * little-endian uint32, starting at block `counter0`. signs[j] is +1 or -1.
 * d * 4 bytes of keystream per key; d <= 2^36 - 16 * counter0. Cannot fail. */
void fedreci_prg_add(const uint8_t *keys, const int8_t *signs, size_t n_keys,
                     const uint8_t nonce[FEDRECI_PRG_NONCE_BYTES], uint32_t counter0, uint32_t *out,
                     size_t d);

/* out[i] = W(i) for i < d (the keystream words themselves). */
void fedreci_prg_words(const uint8_t key[FEDRECI_PRG_KEY_BYTES],
                       const uint8_t nonce[FEDRECI_PRG_NONCE_BYTES], uint32_t counter0,
                       uint32_t *out, size_t d);

/* out[0..bytes) = the raw keystream bytes from block counter0 on (the
 * stochastic rounding reads them as little-endian 16-bit words). Cannot
 * fail; bytes <= 64 * (2^32 - counter0). */
void fedreci_prg_stream(const uint8_t key[FEDRECI_PRG_KEY_BYTES],
                        const uint8_t nonce[FEDRECI_PRG_NONCE_BYTES], uint32_t counter0,
                        uint8_t *out, size_t bytes);

#endif
