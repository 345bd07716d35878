#!/usr/bin/env python3
"""What honest dropouts at the graph seed step cost (docs/protocol.md
"Honest dropouts at the seed step").

A model of fedrec's rules (not the code itself): a round's roster has m
members (those that advertised); each honest member independently loses
its connection between advertising and revealing its graph seed
contribution with probability p. When more than M members miss
(FEDRECI_SECAGG_SEED_MISSING_MAX, M = 1 in fedrec) the round aborts and
every missing member is benched (coordinator/registry.c fedreci_eng_bench):
at its s-th such abort it sits out the next min(2^(s-1), cap) rounds
(cap = bench-max-rounds, 1024). Strikes never decay. Cohorts are drawn
uniformly from the population of N phones that are not benched (every phone
is always willing to take part: the worst case for strikes).

Prints two tables:

1. per p and M: the fraction of rounds that abort (exact binomial tail,
   P(X > M) with X ~ Binomial(m, p)), and the seeds a coordinator may choose
   from per round by claiming up to M members missing after it has seen the
   contributions (sum over j <= M of C(m, j)), in bits;
2. per p, with M = 1, a simulation of R rounds over a population of N
   phones (several seeds): rounds aborted (fraction with a 95% Wilson
   interval over the pooled rounds, and the spread over seeds), honest
   phones benched at least once (% of the population), phones sitting out
   a round on average, the largest strike count and the phones with 3 or
   more strikes at the end.

Usage: scripts/seed_dropout_mc.py [--m 500] [--p 0.001,0.005,0.01,0.02]
       [--M 1,2,3,4] [--population 20000] [--rounds 1000] [--seeds 1,2,3]
       [--cap 1024]
"""
import argparse
import math
import random


def wilson(x, n, z=1.96):
    if n == 0:
        return (0.0, 0.0)
    q = x / n
    d = 1 + z * z / n
    c = (q + z * z / (2 * n)) / d
    w = z * math.sqrt(q * (1 - q) / n + z * z / (4 * n * n)) / d
    return (max(0.0, c - w), min(1.0, c + w))


def abort_prob(m, p, M):
    """P(X > M), X ~ Binomial(m, p)."""
    keep = sum(math.comb(m, j) * p**j * (1 - p) ** (m - j) for j in range(M + 1))
    return max(0.0, 1.0 - keep)


def grind_bits(m, M):
    return math.log2(sum(math.comb(m, j) for j in range(M + 1)))


def simulate(rng, m, p, M, n_pop, rounds, cap):
    strikes = [0] * n_pop
    until = [0] * n_pop  # benched for rounds <= until
    ever = set()
    aborted = 0
    sitting_out = 0  # phone-rounds benched
    benched_now = set()
    for r in range(1, rounds + 1):
        benched_now = {i for i in benched_now if until[i] >= r}
        sitting_out += len(benched_now)
        if n_pop - len(benched_now) < m:
            aborted += 1  # no cohort: counted as lost
            continue
        cohort = set()
        while len(cohort) < m:
            i = rng.randrange(n_pop)
            if i not in benched_now:
                cohort.add(i)
        missing = [i for i in cohort if rng.random() < p]
        if len(missing) <= M:
            continue
        aborted += 1
        for i in missing:
            strikes[i] += 1
            until[i] = r + min(2 ** (strikes[i] - 1), cap)
            benched_now.add(i)
            ever.add(i)
    return {
        "aborted": aborted,
        "ever": len(ever),
        "sitting_out": sitting_out / rounds,
        "max_strikes": max(strikes),
        "three_plus": sum(1 for s in strikes if s >= 3),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--m", type=int, default=500)
    ap.add_argument("--p", default="0.001,0.005,0.01,0.02")
    ap.add_argument("--M", default="1,2,3,4")
    ap.add_argument("--population", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=1000)
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--cap", type=int, default=1024)
    a = ap.parse_args()
    ps = [float(x) for x in a.p.split(",")]
    Ms = [int(x) for x in a.M.split(",")]
    seeds = [int(x) for x in a.seeds.split(",")]

    print(f"1. rounds aborted at the seed step, m = {a.m} (exact), and the seeds a "
          "coordinator may choose from per round")
    print("| p | " + " | ".join(f"M = {M}" for M in Ms) + " |")
    print("|---|" + "---|" * len(Ms))
    for p in ps:
        print(f"| {p:.3%} | " + " | ".join(f"{abort_prob(a.m, p, M):.3f}" for M in Ms) + " |")
    print("| seeds to choose from | " +
          " | ".join(f"2^{grind_bits(a.m, M):.1f}" for M in Ms) + " |")
    print()
    print(f"2. M = 1, {a.rounds} rounds of m = {a.m} drawn from {a.population} phones, "
          f"bench cap {a.cap}, seeds {a.seeds}")
    print("| p | rounds aborted [95% CI] (per seed) | phones benched at least once "
          "| phones sitting out a round (mean) | most strikes | phones with >= 3 "
          "strikes |")
    print("|---|---|---|---|---|---|")
    for p in ps:
        res = [simulate(random.Random(s), a.m, p, 1, a.population, a.rounds, a.cap)
               for s in seeds]
        tot = sum(r["aborted"] for r in res)
        n = a.rounds * len(res)
        lo, hi = wilson(tot, n)
        per = ", ".join(f"{r['aborted'] / a.rounds:.3f}" for r in res)
        ever = sum(r["ever"] for r in res) / len(res) / a.population
        out = sum(r["sitting_out"] for r in res) / len(res)
        mx = max(r["max_strikes"] for r in res)
        tp = sum(r["three_plus"] for r in res) / len(res)
        print(f"| {p:.3%} | {tot / n:.3f} [{lo:.3f}, {hi:.3f}] ({per}) | {ever:.1%} "
              f"| {out:.1f} | {mx} | {tp:.0f} |")


if __name__ == "__main__":
    main()
