/* splitmix64; see rng.h. */
#include "core/rng.h"

#define GOLDEN_GAMMA 0x9e3779b97f4a7c15ull

/* The splitmix64 finalizer (Stafford's "Mix13" variant of MurmurHash3's). */
static uint64_t finalize(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

fedreci_rng fedreci_rng_seeded(uint64_t seed)
{
    fedreci_rng r = {seed};
    return r;
}

uint64_t fedreci_rng_u64(fedreci_rng *r)
{
    r->state += GOLDEN_GAMMA;
    return finalize(r->state);
}

uint64_t fedreci_rng_below(fedreci_rng *r, uint64_t n)
{
    uint64_t x = fedreci_rng_u64(r);
    return n ? x % n : 0;
}

double fedreci_rng_unit(fedreci_rng *r)
{
    return (double)(fedreci_rng_u64(r) >> 11) * 0x1p-53;
}

uint64_t fedreci_rng_mix(uint64_t x)
{
    return finalize(x + GOLDEN_GAMMA);
}
