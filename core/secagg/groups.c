/* core/secagg/groups: assignment of a cohort to SecAgg groups and the
 * master's exact sum of the group sums. See groups.h. */
#include "core/secagg/groups.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/rng.h"

/* domain separation of the group permutation from the cohort draw */
#define GROUPS_LABEL 0x67726f7570732d31ull /* "groups-1" */

uint32_t fedreci_groups_count(uint32_t n, uint32_t group_size, uint32_t min_group,
                              uint32_t max_groups)
{
    if (min_group < 1)
        min_group = 1;
    if (n < min_group)
        return 0;
    uint32_t g = group_size ? n / group_size + (n % group_size != 0) : 1;
    if (g < 1)
        g = 1;
    if (max_groups && g > max_groups)
        g = max_groups;
    if (g > FEDRECI_GROUPS_MAX)
        g = FEDRECI_GROUPS_MAX;
    while (g > 1 && n / g < min_group)
        g--;
    return g;
}

uint32_t fedreci_groups_size(uint32_t n, uint32_t n_groups, uint32_t g)
{
    if (n_groups == 0 || g >= n_groups)
        return 0;
    return n / n_groups + (g < n % n_groups ? 1u : 0u);
}

fedrec_err fedreci_groups_assign(const uint64_t *ids, uint32_t n, uint32_t n_groups,
                                 uint32_t min_group, uint64_t seed, uint64_t round_id,
                                 uint32_t *group_of)
{
    if (!ids || !group_of)
        return fedreci_error(FEDREC_ERR_INVALID, "groups: NULL argument");
    if (n_groups == 0 || n_groups > FEDRECI_GROUPS_MAX)
        return fedreci_error(FEDREC_ERR_INVALID, "groups: %u groups (1 to %u)", n_groups,
                             FEDRECI_GROUPS_MAX);
    if (min_group < 2 || n / n_groups < min_group)
        return fedreci_error(FEDREC_ERR_INVALID,
                             "groups: %u clients in %u groups leaves a group of %u, below the "
                             "minimum %u",
                             n, n_groups, n / n_groups, min_group);
    if (n >= 0x80000000u)
        return fedreci_error(FEDREC_ERR_INVALID, "groups: %u clients", n);
    for (uint32_t i = 1; i < n; i++)
        if (ids[i] <= ids[i - 1])
            return fedreci_error(FEDREC_ERR_INVALID,
                                 "groups: cohort ids not strictly ascending at %u", i);
    /* group_of first holds the permutation of positions (a value < n), then
       each position's group: slot j of the shuffled order belongs to the
       group whose block [start, start + size) contains j */
    for (uint32_t i = 0; i < n; i++)
        group_of[i] = i;
    fedreci_rng r = fedreci_rng_seeded(seed ^ fedreci_rng_mix(round_id ^ GROUPS_LABEL));
    for (uint32_t i = n; i > 1; i--) {
        uint32_t j = (uint32_t)fedreci_rng_below(&r, i);
        uint32_t t = group_of[i - 1];
        group_of[i - 1] = group_of[j];
        group_of[j] = t;
    }
    uint32_t base = n / n_groups, extra = n % n_groups;
    uint32_t big = extra * (base + 1); /* slots of the larger groups */
    /* the group of shuffled slot j: blocks of base + 1, then of base */
#define SLOT_GROUP(j) ((j) < big ? (j) / (base + 1) : extra + ((j)-big) / base)
    /* Slot j holds position p = group_of[j]; position p must get group(j).
       In place, cycle by cycle: along start -> p0 -> p1 -> ... -> start,
       the entry of p_i is read (the position at slot p_i) before it is
       overwritten with its group, marked by the top bit (n < 2^31). */
    for (uint32_t start = 0; start < n; start++) {
        if (group_of[start] & 0x80000000u)
            continue;
        uint32_t j = start, p = group_of[start];
        for (;;) {
            uint32_t next = group_of[p];
            group_of[p] = 0x80000000u | (uint32_t)SLOT_GROUP(j);
            if (p == start)
                break;
            j = p;
            p = next;
        }
    }
#undef SLOT_GROUP
    for (uint32_t i = 0; i < n; i++)
        group_of[i] &= 0x7fffffffu;
    return FEDREC_OK;
}

uint32_t fedreci_groups_members(const uint64_t *ids, const uint32_t *group_of, uint32_t n,
                                uint32_t g, uint64_t *out, uint32_t cap)
{
    uint32_t m = 0;
    for (uint32_t i = 0; i < n; i++)
        if (group_of[i] == g) {
            if (out && m < cap)
                out[m] = ids[i];
            m++;
        }
    return m;
}

double fedreci_groups_scale(uint32_t n_max, double clip)
{
    if (n_max == 0 || !(clip > 0) || !isfinite(clip))
        return 0;
    return floor(1073741824.0 / ((double)n_max * clip));
}

struct fedreci_groups_round {
    fedreci_secagg_params p; /* clip, scale, max_weight, d of every group */
    uint32_t n_groups, min_groups, max_group_n;
    uint8_t *state;
    int64_t *acc;
    uint64_t survivors;
};

fedrec_err fedreci_groups_round_create(fedreci_groups_round **out, const fedreci_secagg_params *p,
                                       uint32_t n_groups, uint32_t min_groups, uint32_t max_group_n)
{
    if (!out || !p)
        return fedreci_error(FEDREC_ERR_INVALID, "groups: NULL argument");
    *out = NULL;
    if (n_groups == 0 || n_groups > FEDRECI_GROUPS_MAX)
        return fedreci_error(FEDREC_ERR_INVALID, "groups: %u groups (1 to %u)", n_groups,
                             FEDRECI_GROUPS_MAX);
    if (min_groups < 1 || min_groups > n_groups)
        return fedreci_error(FEDREC_ERR_INVALID, "groups: min_groups %u of %u groups", min_groups,
                             n_groups);
    if (p->d < 2)
        return fedreci_error(FEDREC_ERR_INVALID, "groups: d = %u, at least 2", p->d);
    if (!(p->clip > 0) || !isfinite(p->clip) || !(p->scale > 0) || !isfinite(p->scale))
        return fedreci_error(FEDREC_ERR_INVALID, "groups: clip %g, scale %g (finite, > 0)", p->clip,
                             p->scale);
    double q = ceil(p->clip * p->scale);
    if (max_group_n == 0 || (double)max_group_n * q >= 2147483648.0 ||
        (double)max_group_n * p->max_weight >= 2147483648.0)
        return fedreci_error(FEDREC_ERR_INVALID,
                             "groups: overflow budget per group: n %u * ceil(clip %g * scale %g) "
                             "= %.0f must be < 2^31",
                             max_group_n, p->clip, p->scale, (double)max_group_n * q);
    fedreci_groups_round *gr = calloc(1, sizeof *gr);
    if (!gr)
        return fedreci_error(FEDREC_ERR_NOMEM, "groups: round");
    gr->state = calloc(n_groups, 1);
    gr->acc = calloc(p->d, sizeof *gr->acc);
    if (!gr->state || !gr->acc) {
        fedreci_groups_round_destroy(gr);
        return fedreci_error(FEDREC_ERR_NOMEM, "groups: master sum of %u words", p->d);
    }
    gr->p = *p;
    gr->n_groups = n_groups;
    gr->min_groups = min_groups;
    gr->max_group_n = max_group_n;
    *out = gr;
    return FEDREC_OK;
}

void fedreci_groups_round_destroy(fedreci_groups_round *gr)
{
    if (!gr)
        return;
    free(gr->state);
    free(gr->acc);
    free(gr);
}

fedrec_err fedreci_groups_round_add(fedreci_groups_round *gr, uint32_t g, const uint32_t *sum,
                                    size_t d, uint32_t survivors)
{
    if (!gr || !sum)
        return fedreci_error(FEDREC_ERR_INVALID, "groups: NULL argument");
    if (g >= gr->n_groups)
        return fedreci_error(FEDREC_ERR_INVALID, "groups: group %u of %u", g, gr->n_groups);
    if (d != gr->p.d)
        return fedreci_error(FEDREC_ERR_INVALID, "groups: group %u sum of %zu words, expected %u",
                             g, d, gr->p.d);
    if (gr->state[g] != FEDRECI_GROUP_PENDING)
        return fedreci_error(FEDREC_ERR_DUPLICATE, "groups: group %u already %s", g,
                             gr->state[g] == FEDRECI_GROUP_DONE ? "counted" : "failed");
    fedrec_err e = FEDREC_OK;
    if (survivors > gr->max_group_n)
        e = fedreci_error(FEDREC_ERR_ABORTED, "groups: group %u reports %u survivors, above %u", g,
                          survivors, gr->max_group_n);
    if (!e)
        e = fedreci_secagg_check_sum(&gr->p, sum, survivors, survivors * gr->p.max_weight);
    if (e) {
        gr->state[g] = FEDRECI_GROUP_FAILED;
        return fedreci_error(FEDREC_ERR_ABORTED, "groups: group %u dropped: %s", g,
                             fedrec_errmsg());
    }
    size_t n_x = (size_t)gr->p.d - 1;
    for (size_t i = 0; i < n_x; i++) {
        /* two's complement read without implementation-defined conversion */
        int64_t v = sum[i] >= 0x80000000u ? (int64_t)sum[i] - 4294967296LL : (int64_t)sum[i];
        gr->acc[i] += v;
    }
    gr->acc[n_x] += (int64_t)sum[n_x];
    gr->survivors += survivors;
    gr->state[g] = FEDRECI_GROUP_DONE;
    return FEDREC_OK;
}

fedreci_group_state fedreci_groups_round_fail(fedreci_groups_round *gr, uint32_t g)
{
    if (!gr || g >= gr->n_groups)
        return FEDRECI_GROUP_FAILED;
    if (gr->state[g] == FEDRECI_GROUP_PENDING)
        gr->state[g] = FEDRECI_GROUP_FAILED;
    return (fedreci_group_state)gr->state[g];
}

fedreci_group_state fedreci_groups_round_state(const fedreci_groups_round *gr, uint32_t g)
{
    if (!gr || g >= gr->n_groups)
        return FEDRECI_GROUP_FAILED;
    return (fedreci_group_state)gr->state[g];
}

fedreci_groups_verdict fedreci_groups_round_decide(const fedreci_groups_round *gr, int final)
{
    uint32_t done = 0, pending = 0;
    for (uint32_t g = 0; g < gr->n_groups; g++) {
        done += gr->state[g] == FEDRECI_GROUP_DONE;
        pending += gr->state[g] == FEDRECI_GROUP_PENDING;
    }
    if (final || pending == 0)
        return done >= gr->min_groups ? FEDRECI_GROUPS_COMMIT : FEDRECI_GROUPS_ABORT;
    if (done + pending < gr->min_groups)
        return FEDRECI_GROUPS_ABORT;
    return FEDRECI_GROUPS_WAIT;
}

void fedreci_groups_round_counts(const fedreci_groups_round *gr, uint32_t *done, uint32_t *failed,
                                 uint64_t *survivors, uint64_t *total_weight)
{
    uint32_t dn = 0, fl = 0;
    for (uint32_t g = 0; g < gr->n_groups; g++) {
        dn += gr->state[g] == FEDRECI_GROUP_DONE;
        fl += gr->state[g] == FEDRECI_GROUP_FAILED;
    }
    if (done)
        *done = dn;
    if (failed)
        *failed = fl;
    if (survivors)
        *survivors = gr->survivors;
    if (total_weight)
        *total_weight = (uint64_t)gr->acc[gr->p.d - 1];
}

const int64_t *fedreci_groups_round_sum(const fedreci_groups_round *gr)
{
    return gr->acc;
}

void fedreci_groups_round_dequantize(const fedreci_groups_round *gr, float *out)
{
    size_t n_x = (size_t)gr->p.d - 1;
    for (size_t i = 0; i < n_x; i++)
        out[i] = (float)((double)gr->acc[i] / gr->p.scale);
}
