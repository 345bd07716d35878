#!/usr/bin/env python3
"""How often h hostile members abort a SecAgg+ round at the unmask stage.

A model of fedrec's round (not the code itself), for docs/threat-model.md:
the neighbour graph is core/secagg/graph.h's Harary graph H_{k,m} (k even:
each member joined to the k/2 nearest ring positions each way) over a
uniformly random placement of the m members (the members' graph seed is
uniform to everyone, so hostile members cannot choose their positions), and
the rules are those of core/secagg client.c and server.c:

  * withhold:  the hostile members send masked inputs and then reveal
    nothing (the same as dropping out after the masked input);
  * garble:    they also send garbage consistency tags (or none): an honest
    member u reveals only if at least t of its k neighbours named survivors
    endorsed its set, so u leaves without revealing when more than k - t of
    its neighbours are hostile.

The round aborts when some survivor's secret (every member sent a masked
input, so every member's b) has fewer than t revealing holders among its k
neighbours. No honest dropouts are modelled. Prints, per h, the fraction of
rounds that abort with a 95% Wilson interval.

Usage: scripts/hostile_rounds_mc.py [--m 500] [--k 16] [--t 11]
       [--trials 2000] [--seed 1] [--h 5,10,25,50]
"""
import argparse
import math
import random


def wilson(x, n, z=1.96):
    if n == 0:
        return (0.0, 0.0)
    p = x / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    w = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, c - w), min(1.0, c + w))


def one_round(rng, m, k, t, h):
    half = k // 2
    hostile = [False] * m
    for i in rng.sample(range(m), h):
        hostile[i] = True
    ring = list(range(m))
    rng.shuffle(ring)  # ring[position] = member
    hos = [hostile[ring[j]] for j in range(m)]  # by ring position

    def bad_neighbours(flag):
        out = []
        for j in range(m):
            c = 0
            for d in range(1, half + 1):
                c += flag[(j + d) % m] + flag[(j - d) % m]
            out.append(c)
        return out

    nh = bad_neighbours(hos)
    withhold = any(c > k - t for c in nh)
    # garble: honest members with more than k - t hostile neighbours refuse
    silent = [hos[j] or nh[j] > k - t for j in range(m)]
    ns = bad_neighbours(silent)
    garble = any(c > k - t for c in ns)
    refused = sum(1 for j in range(m) if not hos[j] and nh[j] > k - t)
    return withhold, garble, refused


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--m", type=int, default=500)
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--t", type=int, default=11)
    ap.add_argument("--trials", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--h", default="5,10,25,50")
    a = ap.parse_args()
    if a.k % 2 or a.k >= a.m - 1:
        raise SystemExit("k must be even and below m - 1 (the ring graph)")
    rng = random.Random(a.seed)
    print(f"m = {a.m}, k = {a.k}, t = {a.t}, {a.trials} rounds per row, seed {a.seed}")
    print("| hostile h | aborted: withhold reveals | aborted: also garble tags "
          "| honest members refusing (mean) |")
    print("|---|---|---|---|")
    for h in [int(x) for x in a.h.split(",")]:
        w = g = ref = 0
        for _ in range(a.trials):
            x, y, r = one_round(rng, a.m, a.k, a.t, h)
            w += x
            g += y
            ref += r
        lw, hw = wilson(w, a.trials)
        lg, hg = wilson(g, a.trials)
        print(f"| {h} | {w / a.trials:.3f} [{lw:.3f}, {hw:.3f}] "
              f"| {g / a.trials:.3f} [{lg:.3f}, {hg:.3f}] | {ref / a.trials:.2f} |")


if __name__ == "__main__":
    main()
