/* Growing the item factors for new products (kept apart from catalog.c so
 * that only users of the growth path link core/mf). */
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "core/err.h"
#include "core/mf/mf.h"

fedrec_err fedreci_catalog_grow_factors(const float *y, uint32_t old_n, uint32_t k, uint32_t new_n,
                                        uint64_t seed, float std, float **out)
{
    if (k == 0 || new_n < old_n || (old_n > 0 && !y))
        return fedreci_error(FEDREC_ERR_INVALID,
                             "grow item factors: need k > 0 and new rows %u >= old rows %u", new_n,
                             old_n);
    size_t words = (size_t)new_n * k;
    if (words / k != new_n || words > SIZE_MAX / sizeof(float))
        return fedreci_error(FEDREC_ERR_TOO_BIG, "grow item factors: %u x %u is too large", new_n,
                             k);
    float *g = malloc(words ? words * sizeof(float) : sizeof(float));
    if (!g)
        return fedreci_error(FEDREC_ERR_NOMEM, "grow item factors: out of memory (%u x %u)", new_n,
                             k);
    if (old_n)
        memcpy(g, y, (size_t)old_n * k * sizeof(float));
    if (new_n > old_n)
        fedreci_mf_init(g + (size_t)old_n * k, new_n - old_n, k, seed, std);
    *out = g;
    return FEDREC_OK;
}
