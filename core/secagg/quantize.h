/*
 * core/secagg/quantize: round parameters' validation and the map between
 * float inputs and the ring Z_{2^32}.
 *
 * Quantization of one input x (d - 1 floats) and a weight:
 *   1. clip each entry to [-clip, clip] (counted in stats->clipped; +-inf is
 *      clipped too; NaN is refused);
 *   2. v = scale * x_clipped (double);
 *   3. stochastic rounding: q = floor(v) + [u < v - floor(v)] with u uniform
 *      in [0, 1) on a 2^-32 grid, u = W(i) / 2^32 where W is the ChaCha20
 *      keystream (prg.h, purpose ROUNDING) of the rounding key. E[q] = v up to
 *      2^-32 per entry (unbiased for every practical purpose);
 *   4. q is stored as its two's-complement uint32 word; the weight is word d-1
 *      as is (not scaled).
 * Every |q| <= ceil(clip * scale), so with n * ceil(clip * scale) < 2^31 (checked
 * by fedreci_secagg_params_check) the sum of any number of clients up to n,
 * read as int32, is the exact integer sum.
 */
#ifndef FEDREC_CORE_SECAGG_QUANTIZE_H
#define FEDREC_CORE_SECAGG_QUANTIZE_H

#include <stdint.h>

#include "core/secagg/secagg.h"

/* Largest cohort and vector length accepted by fedreci_secagg_params_check
 * (caps on memory: the server keeps O(n * k) shares and O(d) words). */
#define FEDRECI_SECAGG_MAX_N (1u << 20)
#define FEDRECI_SECAGG_MAX_D (1u << 28)

/* q[0..d-1] from x[0..d-2] and weight (see above). key: 32-byte rounding key.
 * Errors (q may be partly written): FEDREC_ERR_INVALID for a NaN entry (its
 * index is named) or weight > p->max_weight. */
FEDREC_NODISCARD fedrec_err fedreci_secagg_quantize(const fedreci_secagg_params *p, const float *x,
                                                    uint32_t weight, const uint8_t key[32],
                                                    uint32_t *q, fedreci_secagg_quant_stats *stats);

#endif
