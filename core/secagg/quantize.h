/*
 * core/secagg/quantize: round parameters' validation and the map between
 * float inputs and the ring Z_{2^32}.
 *
 * Quantization of one input x (d - 1 floats) and a weight:
 *   1. clip each entry to [-clip, clip] (counted in stats->clipped; +-inf is
 *      clipped too; NaN is refused);
 *   2. v = scale * x_clipped (double);
 *   3. stochastic rounding with 16 random bits per entry:
 *      q = floor(v) + [2r < floor(frac(v) * 2^17)] (that is, round up iff
 *      r + 1/2 <= frac(v) * 2^16), r the entry's 16-bit word of the ChaCha20 keystream of the
 * rounding key (prg.h, purpose ROUNDING): entry i reads keystream bytes 2i, 2i + 1 as a
 * little-endian uint16. P(round up) is frac(v) rounded to the 2^-16 grid (half up), so the rounding
 * is unbiased up to half a grid step: |E[q] - v| <= 2^-17 of one quantization step (1 / scale),
 * i.e. at most 2^-17 / scale in input units per entry and n * 2^-17 steps on a sum of n clients: at
 * scale 2^16, below 1.2e-10 per client-entry, far under float32 resolution of the result. Exactly
 * representable v (frac(v) = 0) are never perturbed. v itself is the double product fl(x * scale)
 * (relative error <= 2^-53). Deterministic: the same key, round and x give the same q on every
 * platform;
 *   4. q is stored as its two's-complement uint32 word; the weight is word d-1
 *      as is (not scaled).
 * Every |q| <= ceil(clip * scale), so with n * ceil(clip * scale) < 2^31 (checked
 * by fedreci_secagg_params_check) the sum of any number of clients up to n,
 * read as int32, is the exact integer sum.
 */
#ifndef FEDREC_CORE_SECAGG_QUANTIZE_H
#define FEDREC_CORE_SECAGG_QUANTIZE_H

#include <stddef.h>
#include <stdint.h>

#include "core/secagg/secagg.h"

/* Largest cohort and vector length accepted by fedreci_secagg_params_check
 * (caps on memory: the server keeps O(n * k) shares and O(d) words). */
#define FEDRECI_SECAGG_MAX_N (1u << 20)
#define FEDRECI_SECAGG_MAX_D (1u << 28)

/* q[0..d-1] from x[0..d-2] and weight (see above). key: 32-byte rounding key.
 * stats may be NULL. Errors (q may be partly written, stats untouched):
 * FEDREC_ERR_INVALID for a NaN entry (its index is named) or weight >
 * p->max_weight. Thread-safe (no state); the rounding words are wiped. */
FEDREC_NODISCARD fedrec_err fedreci_secagg_quantize(const fedreci_secagg_params *p, const float *x,
                                                    uint32_t weight, const uint8_t key[32],
                                                    uint32_t *q, fedreci_secagg_quant_stats *stats);

/* Steps 1-3 for the entries [off, off + len) of x only (x and q are the
 * whole vectors; q[off .. off + len) is written): the same q as the whole
 * call, so a caller can quantize slice by slice while the slice is in
 * cache (masked_input does, interleaved with the masks). off must be a
 * multiple of 32 (the rounding words of a slice start on a ChaCha20 block)
 * and off + len <= d - 1. stats (not NULL) accumulates: clipped is added
 * to, max_abs raised; start from {0, 0}. Errors: FEDREC_ERR_INVALID for a
 * NaN entry (named; q partly written, stats untouched) or a bad slice.
 * Uses SSE2 on x86-64 and portable C elsewhere. */
FEDREC_NODISCARD fedrec_err fedreci_secagg_quantize_slice(const fedreci_secagg_params *p,
                                                          const float *x, const uint8_t key[32],
                                                          size_t off, size_t len, uint32_t *q,
                                                          fedreci_secagg_quant_stats *stats);

/* The same as fedreci_secagg_quantize_slice through the portable C kernel
 * only (the reference the tests hold the SSE2 kernel to, bit for bit). */
FEDREC_NODISCARD fedrec_err fedreci_secagg_quantize_slice_scalar(const fedreci_secagg_params *p,
                                                                 const float *x,
                                                                 const uint8_t key[32], size_t off,
                                                                 size_t len, uint32_t *q,
                                                                 fedreci_secagg_quant_stats *stats);

#endif
