/* A seeded, platform-deterministic pseudorandom generator: splitmix64
 * (G. L. Steele Jr., D. Lea, C. H. Flood, "Fast splittable pseudorandom
 * number generators", OOPSLA 2014; the constants are those of Vigna's
 * public-domain reference splitmix64.c).
 *
 * For simulation, test data and seeded choices whose results must repeat
 * bit for bit on every platform (model initialization, the coordinator's
 * cohort draw, the simulator's dropouts). Never for keys, masks or anything
 * secret: those come from libsodium.
 *
 * A fedreci_rng is a plain value (one 64-bit word); copy it to fork a stream.
 * No function here can fail or allocate. Thread-safety: a generator is not
 * shared; each thread uses its own. */
#ifndef FEDREC_CORE_RNG_H
#define FEDREC_CORE_RNG_H

#include <stdint.h>

typedef struct fedreci_rng {
    uint64_t state; /* advanced by the golden-ratio increment on every draw */
} fedreci_rng;

/* A generator whose first output is fedreci_rng_mix(seed). Any seed is
 * valid, 0 included. */
fedreci_rng fedreci_rng_seeded(uint64_t seed);

/* The next 64 uniformly distributed bits. */
uint64_t fedreci_rng_u64(fedreci_rng *r);

/* next u64 % n: an integer in [0, n). n must be > 0 (n == 0 returns 0).
 * The modulo keeps the results of the code this replaced; its bias is at
 * most n / 2^64, below anything a simulation can see for n < 2^32. */
uint64_t fedreci_rng_below(fedreci_rng *r, uint64_t n);

/* A double in [0, 1): the top 53 bits of the next u64 times 2^-53. */
double fedreci_rng_unit(fedreci_rng *r);

/* The splitmix64 output for state value x, i.e. the first output of
 * fedreci_rng_seeded(x): a stateless 64-bit mixing function (a bijection),
 * used as a hash of ids and to derive seeds. */
uint64_t fedreci_rng_mix(uint64_t x);

#endif
