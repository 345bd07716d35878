/* fedrec-sim synth: a purchase log grown S-fold from a real one, and the
 * statistics `describe --versus` shows side by side (sim/synth.c).
 *
 * The construction (docs/scale.md, "A synthetic population"): the items of
 * the cleaned real log are ranked by buyers (distinct customers; ties by
 * item id) and cut into popularity bands of --band consecutive ranks. Copy c
 * (0 .. S-1) of every real shopper u is a new shopper with u's baskets,
 * times and quantities, each item i replaced by pi_{c,b}(i): a seeded
 * permutation of i's band b (copy 0: the identity, so copy 0 is the real
 * log). With --items-scale C (C divides S) every item has C variants and
 * copy c buys variant c mod C. Since each copy's map is a bijection per
 * band, a correct generator must give exactly S times the shoppers, rows,
 * baskets, distinct (shopper, item) pairs and split counts of the real log,
 * exactly C times its items (S >= C), the same distributions of baskets per
 * shopper and rows per basket, and a popularity Gini between that of the
 * band-averaged real popularity and the real one (the synthetic popularity
 * divided by S/C is a doubly stochastic average of band permutations of the
 * real one, hence majorized by it, and it majorizes the band average). */
#ifndef FEDREC_SIM_SYNTH_H
#define FEDREC_SIM_SYNTH_H

#include <stdint.h>
#include <stdio.h>

#include "core/dataset/dataset.h"
#include "core/eval/eval.h"

/* Statistics of a cleaned log and its split (fedreci_sim_log_stats). */
typedef struct fedreci_sim_log_stats {
    uint32_t shoppers, items;
    uint64_t rows, baskets, interactions;
    double baskets_per_shopper, baskets_per_shopper_p50, baskets_per_shopper_p90;
    double rows_per_basket, rows_per_basket_p50, rows_per_basket_p90;
    double items_per_shopper; /* distinct items */
    double gini;              /* of the buyers per item (0 equal, -> 1 concentrated) */
    double top1_share;        /* share of the pairs on the 1% most-bought items */
    uint32_t test_users;
    uint64_t train_interactions;
} fedreci_sim_log_stats;

/* Computes st from a loaded log d and its split s (s may be NULL: the split
 * counts are then 0). Percentiles are the nearest-rank ones. Errors:
 * FEDREC_ERR_NOMEM. */
FEDREC_NODISCARD fedrec_err fedreci_sim_log_stats_get(const fedreci_dataset *d,
                                                      const fedreci_split *s,
                                                      fedreci_sim_log_stats *st);

/* Prints a and b side by side under the column names na and nb (each column
 * as wide as its name, at least 16 characters: names are never cut), with
 * the ratio b / a. */
void fedreci_sim_log_stats_print(FILE *f, const char *na, const fedreci_sim_log_stats *a,
                                 const char *nb, const fedreci_sim_log_stats *b);

/* The split of the population `fedrec-sim synth --scale S --band B --seed
 * N` (--items-scale 1) grows from the log d (its split s), built in memory
 * without writing or parsing a log (`run --synth-scale`): shopper c nu + u
 * (nu real shoppers) is copy c of real shopper u, with u's training row
 * and test items mapped by copy c's band permutation. It equals the split
 * of the written log except that test items unseen in the real training
 * stay out (the written log's split drops only those unseen in the grown
 * training). Errors: FEDREC_ERR_INVALID (more than 2^32 - 2 shoppers),
 * FEDREC_ERR_NOMEM. */
FEDREC_NODISCARD fedrec_err fedreci_sim_synth_split(const fedreci_dataset *d,
                                                    const fedreci_split *s, uint32_t scale,
                                                    uint32_t band, uint64_t seed,
                                                    fedreci_split **out);

#endif
