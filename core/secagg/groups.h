/*
 * core/secagg/groups: SecAgg groups behind a master (issue 20). A large
 * cohort is split into G groups; each group runs its own SecAgg+ instance
 * (its own aggregator process, or its own server object in a simulator)
 * and yields the exact unmasked ring sum of its survivors; the master adds
 * the group sums into one master sum and commits it. This is the scheme of
 * Bonawitz et al., "Towards Federated Learning at Scale: System Design",
 * MLSys 2019 (section 4: aggregators under a master aggregator).
 *
 * Three pieces, all transport-free and deterministic:
 *
 *  1. Assignment (fedreci_groups_assign): the cohort (sorted, distinct ids)
 *     is cut into G balanced groups (sizes floor(n/G) or floor(n/G) + 1,
 *     the larger ones first) by a seeded permutation: a Fisher-Yates shuffle
 *     of the cohort positions (from the last down) driven by core/rng
 *     seeded with seed ^ fedreci_rng_mix(round_id ^ "groups-1" as a
 *     64-bit word 0x67726f7570732d31); the
 *     first sizes[0] shuffled positions form group 0, and so on. Every party
 *     with the same (seed, round id, sorted cohort) gets the same groups.
 *     No group is ever smaller than min_group (the minimum cohort of one
 *     SecAgg instance): a G that would make one smaller is refused.
 *
 *  2. Parameters: every group of a round uses the same clip and the same
 *     scale, fixed for the largest group (fedreci_groups_scale): a group sum
 *     is then an integer multiple of the same quantum 1/scale, and group sums
 *     add exactly. Each group's own params (n = its size) pass
 *     fedreci_secagg_params_check, i.e. n_g * ceil(clip * scale) < 2^31: the
 *     overflow budget holds per group, and the cohort (G * n_g) may exceed
 *     2,047 (the one-instance limit at the default clip and scale).
 *
 *  3. The master sum (fedreci_groups_round): a group's result is its ring
 *     sum (d uint32 words, the last one the weight) and its survivor count.
 *     It is checked (fedreci_secagg_check_sum: weight = survivors *
 *     max_weight, every coordinate within survivors * ceil(clip * scale))
 *     and then added, word by word, into an int64 accumulator.
 *
 * Exactness. Within a group, every |q| <= ceil(clip * scale) =: Q and the
 * group's budget n_g * Q < 2^31 make the ring sum, read as int32, the exact
 * integer sum of its survivors' quantized inputs (quantize.h). The master
 * adds at most G such values in int64, so each master coordinate is the
 * exact integer sum of every counted survivor's input as long as
 * sum_g n_g * Q < 2^63; since each term is below 2^31 this holds for any
 * G < 2^32. The master reads it back as (double)acc / scale: exact in
 * double (no rounding before the division) while |acc| < 2^53, i.e. for
 * G < 2^22 groups; fedreci_groups_round_create refuses a plan outside
 * these bounds. Bit-identity with one instance: for the same survivors'
 * inputs at the same scale, one SecAgg instance whose budget holds gets the
 * same integer v in its int32 word, and fedreci_secagg_dequantize computes
 * the same (float)((double)v / scale); so a grouped round and one instance
 * over the same cohort at the same scale commit the same model bit for bit.
 * The weight word is added as an unsigned count.
 *
 * Failed groups. A group that fails (its aggregator dies, its SecAgg round
 * aborts, its sum fails the check, it is late) is dropped whole: its sum is
 * either added completely, after its check passed, or not at all; a result
 * that fails its check changes nothing. A second result for the same group
 * is refused. The round commits when at least min_groups groups are in
 * (fedreci_groups_round_decide); otherwise it aborts and the accumulator is
 * discarded. A group's sum hides its members' inputs from the master just
 * as one instance's sum hides them from a single coordinator (docs/protocol.md
 * "Groups").
 *
 * Errors: functions that can fail return a fedrec_err and set
 * fedrec_errmsg(); FEDREC_ERR_INVALID names the bad argument. Nothing here
 * aborts on bad input or allocates except fedreci_groups_round_create.
 * Thread-safety: pure functions are thread-safe; a fedreci_groups_round is
 * used by one thread at a time.
 */
#ifndef FEDREC_CORE_SECAGG_GROUPS_H
#define FEDREC_CORE_SECAGG_GROUPS_H

#include <stddef.h>
#include <stdint.h>

#include "core/secagg/secagg.h"

/* Most groups in one round (keeps the double read-back exact, see above). */
#define FEDRECI_GROUPS_MAX (1u << 16)

/* The number of groups for a cohort of n clients in groups of at most
 * group_size members: ceil(n / group_size), capped at max_groups (0: no
 * cap; a master caps it at the aggregators it has), then lowered while a
 * group would have fewer than min_group members (so a group may then
 * exceed group_size). 0 when n < min_group. group_size 0 means one group.
 * Pure. */
uint32_t fedreci_groups_count(uint32_t n, uint32_t group_size, uint32_t min_group,
                              uint32_t max_groups);

/* Size of group g of n members split into n_groups (the first n % n_groups
 * groups have one more). Pure; 0 when g >= n_groups or n_groups == 0. */
uint32_t fedreci_groups_size(uint32_t n, uint32_t n_groups, uint32_t g);

/* Assigns the n cohort ids (strictly ascending) to n_groups groups (see the
 * top of this file): group_of[i] gets the group of ids[i]. Each group's
 * members are then the ids with that group index, in ascending order.
 * Errors (nothing written): FEDREC_ERR_INVALID when ids are not strictly
 * ascending, n_groups is 0 or above FEDRECI_GROUPS_MAX, or n / n_groups <
 * min_group (min_group >= 2). Allocates nothing; O(n). */
FEDREC_NODISCARD fedrec_err fedreci_groups_assign(const uint64_t *ids, uint32_t n,
                                                  uint32_t n_groups, uint32_t min_group,
                                                  uint64_t seed, uint64_t round_id,
                                                  uint32_t *group_of);

/* The members of group g (ascending) from an assignment: writes them to out
 * (room for cap) and returns their number (which may exceed cap: then only
 * cap are written). Pure. */
uint32_t fedreci_groups_members(const uint64_t *ids, const uint32_t *group_of, uint32_t n,
                                uint32_t g, uint64_t *out, uint32_t cap);

/* The common quantization scale of a round whose largest group has
 * n_max members: floor(2^30 / (n_max * clip)), the one-instance default
 * (engine.h) for that group size, so the budget n_max * ceil(clip * scale)
 * < 2^31 holds with room for rounding. 0 when clip is not finite and > 0 or
 * n_max == 0. Pure. */
double fedreci_groups_scale(uint32_t n_max, double clip);

/* ---- the master sum ----------------------------------------------------- */

typedef enum fedreci_group_state {
    FEDRECI_GROUP_PENDING = 0, /* no result yet */
    FEDRECI_GROUP_DONE = 1,    /* its checked sum was added */
    FEDRECI_GROUP_FAILED = 2,  /* dropped whole */
} fedreci_group_state;

typedef enum fedreci_groups_verdict {
    FEDRECI_GROUPS_WAIT = 0,   /* groups still pending and the round not final */
    FEDRECI_GROUPS_COMMIT = 1, /* at least min_groups groups in */
    FEDRECI_GROUPS_ABORT = 2,  /* too few groups can still come in */
} fedreci_groups_verdict;

typedef struct fedreci_groups_round fedreci_groups_round;

/* One round's master sum over n_groups groups of vectors of d words (the
 * last the weight), all quantized with p->clip, p->scale and p->max_weight
 * (p->n, k, t are ignored: each group has its own). min_groups (1 ..
 * n_groups) must finish for the round to commit. max_group_n bounds every
 * group's size. Errors: FEDREC_ERR_INVALID (zero or too many groups,
 * min_groups out of range, d < 2, clip or scale not finite and > 0, a group
 * budget max_group_n * ceil(clip * scale) >= 2^31), FEDREC_ERR_NOMEM. */
FEDREC_NODISCARD fedrec_err fedreci_groups_round_create(fedreci_groups_round **out,
                                                        const fedreci_secagg_params *p,
                                                        uint32_t n_groups, uint32_t min_groups,
                                                        uint32_t max_group_n);

/* Frees (NULL: nothing). */
void fedreci_groups_round_destroy(fedreci_groups_round *gr);

/* Group g's result: its unmasked ring sum (d words) and its survivor count.
 * Checked first (weight = survivors * max_weight, every coordinate within
 * survivors * ceil(clip * scale), survivors <= max_group_n); only then added
 * whole into the accumulator and the group marked DONE. Errors, nothing
 * added: FEDREC_ERR_INVALID (g out of range, d differs), FEDREC_ERR_DUPLICATE
 * (g already DONE or FAILED: the state stays), FEDREC_ERR_ABORTED (the check
 * failed: the group is marked FAILED). */
FEDREC_NODISCARD fedrec_err fedreci_groups_round_add(fedreci_groups_round *gr, uint32_t g,
                                                     const uint32_t *sum, size_t d,
                                                     uint32_t survivors);

/* Marks a pending group g FAILED (its aggregator died, its round aborted,
 * its deadline passed). A group already DONE stays DONE (its complete sum
 * counts); returns the state g is in afterwards (FEDRECI_GROUP_FAILED for g
 * out of range). */
fedreci_group_state fedreci_groups_round_fail(fedreci_groups_round *gr, uint32_t g);

fedreci_group_state fedreci_groups_round_state(const fedreci_groups_round *gr, uint32_t g);

/* COMMIT when at least min_groups groups are DONE and either none is
 * pending or `final` (the round's deadline passed: pending groups count as
 * failed); ABORT when DONE plus pending groups cannot reach min_groups, or
 * when final and fewer than min_groups are DONE; WAIT otherwise. */
fedreci_groups_verdict fedreci_groups_round_decide(const fedreci_groups_round *gr, int final);

/* What the groups added: DONE groups, their survivors, the total weight
 * (the sum of their weight words). Any pointer may be NULL. */
void fedreci_groups_round_counts(const fedreci_groups_round *gr, uint32_t *done, uint32_t *failed,
                                 uint64_t *survivors, uint64_t *total_weight);

/* The accumulator: d int64 words (the last the total weight); valid until
 * destroy. */
const int64_t *fedreci_groups_round_sum(const fedreci_groups_round *gr);

/* Reads the master sum back like fedreci_secagg_dequantize: out[i] =
 * (float)((double)acc[i] / scale) for the d - 1 coordinates. */
void fedreci_groups_round_dequantize(const fedreci_groups_round *gr, float *out);

#endif
