#!/usr/bin/env python3
"""What honest dropouts at the graph seed step cost (docs/protocol.md
"Honest dropouts at the seed step").

A model of fedrec's rules (not the code itself): a round's roster has m
members (those that advertised); in each attempt of the seed step each
member independently loses its connection between receiving the roster and
revealing its contribution with probability p. When more than M members of
an attempt miss (FEDRECI_SECAGG_SEED_MISSING_MAX) the coordinator re-runs
the step without them, up to R times (RoundParams.seed_retries); when the
last attempt still misses more than M the round aborts. Protocol version 6
had M = 1, R = 0 (and version 7); version 8 has M = 0, R = 3 (the default).

A deviating coordinator may claim up to M members missing after it has
seen every contribution of an attempt (sum over j <= M of C(m, j) seeds to
choose from), and may claim one missing to force each retry: it chooses
among at most (R + 1) * sum_{j<=M} C(m, j) seeds per round, log2 of which
is the bias in bits.

Prints three tables:

1. per (M, R) and p: the fraction of rounds that abort at the seed step
   (exact: a recursion over the roster sizes of the attempts), the mean
   number of retries per round, and the seeds a coordinator may choose from;
2. for the same availability: the (M, R) with the fewest bits of bias
   whose abort fraction at p stays at or below a target;
3. per p, with the chosen (M, R), a simulation of `rounds` rounds over a
   population of N phones (several seeds): rounds aborted (pooled fraction
   with a 95% Wilson interval, and each seed's), honest phones benched at
   least once (% of the population), phones sitting out a round on average,
   the largest strike count and the phones with 3 or more strikes. Benching
   as coordinator/round.c bench_withheld (--bench last, the default): only
   when the round aborts at the seed step, the members that missed its last
   attempt, at their s-th such abort for min(2^(s-1), cap) rounds
   (registry.c fedreci_eng_bench); a member that misses in a round that
   then completes is never benched. --bench all benches every member that
   missed a reveal in any attempt of an aborted round instead. Cohorts are drawn uniformly from the phones that are
   not benched (every phone always willing: the worst case for strikes).

Usage: scripts/seed_dropout_mc.py [--m 500] [--p 0.001,0.005,0.01,0.02]
       [--M 0,1,2] [--R 0,1,2,3,4,6,8] [--design 0:3] [--target 0.01]
       [--population 20000] [--rounds 1000] [--seeds 1,2,3] [--cap 1024]
       [--bench all|last]
"""
import argparse
import math
import random
from functools import lru_cache


def wilson(x, n, z=1.96):
    if n == 0:
        return (0.0, 0.0)
    q = x / n
    d = 1 + z * z / n
    c = (q + z * z / (2 * n)) / d
    w = z * math.sqrt(q * (1 - q) / n + z * z / (4 * n * n)) / d
    return (max(0.0, c - w), min(1.0, c + w))


def binom_pmf(m, p):
    # iterative, stable for m up to a few thousand
    out = [0.0] * (m + 1)
    out[0] = (1 - p) ** m
    for j in range(1, m + 1):
        out[j] = out[j - 1] * (m - j + 1) / j * p / (1 - p)
    return out


def abort_prob(m, p, M, R, floor=2):
    """(P(the seed step aborts), E[retries]) for a roster of m, at most M
    missing per attempt, R retries; a retry needs at least `floor` members
    left (the threshold t in the code)."""

    @lru_cache(maxsize=None)
    def go(ma, a):
        # from attempt a with ma members: (abort probability, expected retries)
        pmf = binom_pmf(ma, p)
        ab = 0.0
        ret = 0.0
        for x, q in enumerate(pmf):
            if x > ma * p and q < 1e-16:
                break  # the rest of the tail is negligible
            if q < 1e-16 or x <= M:
                continue
            if a == R or ma - x < floor:
                ab += q
            else:
                sub_ab, sub_ret = go(ma - x, a + 1)
                ab += q * sub_ab
                ret += q * (1 + sub_ret)
        return ab, ret

    return go(m, 0)


def grind_bits(m, M, R):
    return math.log2((R + 1) * sum(math.comb(m, j) for j in range(M + 1)))


def simulate(rng, m, p, M, R, n_pop, rounds, cap, last_only=False):
    strikes = [0] * n_pop
    until = [0] * n_pop  # benched for rounds <= until
    ever = set()
    aborted = 0
    sitting_out = 0  # phone-rounds benched
    retries = 0
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
        roster = list(cohort)
        missed = []  # every member that missed a reveal in some attempt
        ok = False
        for a in range(R + 1):
            missing = [i for i in roster if rng.random() < p]
            if len(missing) <= M:
                ok = True
                break
            missed = missing if last_only else missed + missing
            if a < R:
                retries += 1
                gone = set(missing)
                roster = [i for i in roster if i not in gone]
                if len(roster) < 2:
                    break
        if ok:
            continue
        aborted += 1
        for i in missed:
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
        "retries": retries / rounds,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--m", type=int, default=500)
    ap.add_argument("--p", default="0.001,0.005,0.01,0.02")
    ap.add_argument("--M", default="0,1,2")
    ap.add_argument("--R", default="0,1,2,3,4,6,8")
    ap.add_argument("--design", default="0:3", help="M:R of the simulation (table 3)")
    ap.add_argument("--target", type=float, default=0.01,
                    help="abort fraction for table 2 (same availability)")
    ap.add_argument("--population", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=1000)
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--cap", type=int, default=1024)
    ap.add_argument("--bench", default="last", choices=["all", "last"],
                    help="bench only the last attempt's missing members (fedrec) or every "
                         "member that missed in an aborted round")
    a = ap.parse_args()
    ps = [float(x) for x in a.p.split(",")]
    Ms = [int(x) for x in a.M.split(",")]
    Rs = [int(x) for x in a.R.split(",")]
    dM, dR = (int(x) for x in a.design.split(":"))
    seeds = [int(x) for x in a.seeds.split(",")]

    print(f"1. rounds aborted at the seed step, m = {a.m} (exact), mean retries per round, "
          "and the seeds a coordinator may choose from per round")
    print("| M | R | " + " | ".join(f"p = {p:.1%}" for p in ps) + " | seeds to choose from |")
    print("|---|---|" + "---|" * len(ps) + "---|")
    table = {}
    for M in Ms:
        for R in Rs:
            cells = []
            for p in ps:
                ab, ret = abort_prob(a.m, p, M, R)
                table[(M, R, p)] = ab
                cells.append(f"{ab:.3f} ({ret:.2f})")
            mark = " (v8)" if (M, R) == (0, 3) else " (v6-7)" if (M, R) == (1, 0) else ""
            print(f"| {M} | {R}{mark} | " + " | ".join(cells) +
                  f" | 2^{grind_bits(a.m, M, R):.1f} |")
    print()
    print(f"2. the least bias for the same availability: per p, the (M, R) among those above "
          f"with aborts <= {a.target:g} and the fewest bits")
    print("| p | fewest bits with M = 0 | fewest bits with M = 1 | fewest bits with M = 2 |")
    print("|---|---|---|---|")
    for p in ps:
        cells = []
        for M in (0, 1, 2):
            best = None
            for R in Rs:
                if (M, R, p) in table and table[(M, R, p)] <= a.target:
                    b = grind_bits(a.m, M, R)
                    if best is None or b < best[0]:
                        best = (b, R)
            cells.append("none" if best is None else f"R = {best[1]}: 2^{best[0]:.1f}")
        print(f"| {p:.1%} | " + " | ".join(cells) + " |")
    print()
    print(f"3. M = {dM}, R = {dR}: {a.rounds} rounds of m = {a.m} drawn from {a.population} "
          f"phones, bench cap {a.cap}, benching {a.bench}, seeds {a.seeds}")
    print("| p | rounds aborted [95% CI] (per seed) | retries per round (mean) "
          "| phones benched at least once | phones sitting out a round (mean) "
          "| most strikes | phones with >= 3 strikes |")
    print("|---|---|---|---|---|---|---|")
    for p in ps:
        res = [simulate(random.Random(s), a.m, p, dM, dR, a.population, a.rounds, a.cap,
                        a.bench == "last") for s in seeds]
        tot = sum(r["aborted"] for r in res)
        n = a.rounds * len(res)
        lo, hi = wilson(tot, n)
        per = ", ".join(f"{r['aborted'] / a.rounds:.3f}" for r in res)
        ever = sum(r["ever"] for r in res) / len(res) / a.population
        out = sum(r["sitting_out"] for r in res) / len(res)
        mx = max(r["max_strikes"] for r in res)
        tp = sum(r["three_plus"] for r in res) / len(res)
        rt = sum(r["retries"] for r in res) / len(res)
        print(f"| {p:.1%} | {tot / n:.3f} [{lo:.3f}, {hi:.3f}] ({per}) | {rt:.2f} | {ever:.1%} "
              f"| {out:.1f} | {mx} | {tp:.0f} |")


if __name__ == "__main__":
    main()
