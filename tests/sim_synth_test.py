#!/usr/bin/env python3
"""fedrec-sim synth and describe --versus (registered by tests/sim_synth.cmake).

    sim_synth_test.py FEDREC_SIM DATA WORKDIR

The real log, cleaned, is synth --scale 1 (copy 0 is the identity). From it
and from synthetic logs (--scale 3; --scale 4 --items-scale 2) this script
computes, independently of fedrec's code, what a correct generator must
give (sim/synth.h): exactly S times the shoppers, rows, baskets and
shopper-item pairs, C times the items, the same multiset of baskets per
shopper and rows per basket (each S times), every popularity band's buyers
exactly S times the real band's, and a popularity Gini between that of the
band-averaged real popularity and the real one. It also checks that
describe --versus prints the same counts and Gini, and that synth is
deterministic in its seed."""
import collections
import csv
import filecmp
import os
import shutil
import subprocess
import sys

sim, data, work = sys.argv[1:4]
os.makedirs(work, exist_ok=True)
BAND = 8


def fail(msg):
    print("FAIL:", msg, file=sys.stderr)
    sys.exit(1)


def run(*args):
    p = subprocess.run([sim, *args], capture_output=True, text=True)
    if p.returncode != 0:
        fail(f"fedrec-sim {' '.join(args)} exited {p.returncode}: {p.stderr}")
    return p.stdout


def synth(name, *extra):
    out = os.path.join(work, name)
    run("synth", "--data", data, "--out", out, "--band", str(BAND), *extra)
    return out


def read(path):
    rows = list(csv.DictReader(open(path, newline="")))
    shoppers = collections.defaultdict(set)  # shopper -> baskets
    basket_rows = collections.Counter()
    buyers = collections.defaultdict(set)  # item -> shoppers
    pairs = set()
    for r in rows:
        c, b, i = r["CustomerID"], r["InvoiceNo"], r["StockCode"]
        shoppers[c].add(b)
        basket_rows[b] += 1
        buyers[i].add(c)
        pairs.add((c, i))
    return {
        "rows": len(rows),
        "shoppers": len(shoppers),
        "baskets": len(basket_rows),
        "pairs": len(pairs),
        "items": len(buyers),
        "bps": collections.Counter(len(v) for v in shoppers.values()),
        "rpb": collections.Counter(basket_rows.values()),
        "buyers": {i: len(s) for i, s in buyers.items()},
    }


def gini(v):
    v = sorted(v)
    n, s = len(v), sum(v)
    return sum((2 * (i + 1) - n - 1) * x for i, x in enumerate(v)) / (n * s)


real = read(synth("real.csv", "--scale", "1"))
# popularity bands of the real log: buyers descending, ties by code (byte order)
ranked = sorted(real["buyers"], key=lambda i: (-real["buyers"][i], i.encode()))
band_of = {i: r // BAND for r, i in enumerate(ranked)}
bands = collections.defaultdict(list)
for i in ranked:
    bands[band_of[i]].append(real["buyers"][i])
g_real = gini(list(real["buyers"].values()))
g_floor = gini([sum(b) / len(b) for b in bands.values() for _ in b])
if not g_floor < g_real:
    fail(f"band-averaged Gini {g_floor} is not below the real {g_real}")

for name, S, C in (("syn3.csv", 3, 1), ("syn4x2.csv", 4, 2)):
    path = synth(name, "--scale", str(S), "--items-scale", str(C), "--seed", "9")
    syn = read(path)
    for key in ("rows", "shoppers", "baskets", "pairs"):
        if syn[key] != S * real[key]:
            fail(f"{name}: {key} {syn[key]} != {S} x {real[key]}")
    if syn["items"] != C * real["items"]:
        fail(f"{name}: items {syn['items']} != {C} x {real['items']}")
    for key in ("bps", "rpb"):
        want = collections.Counter({k: S * v for k, v in real[key].items()})
        if syn[key] != want:
            fail(f"{name}: the distribution {key} is not {S} x the real one")
    # each band's buyers, summed over its items and their variants
    band_tot = collections.Counter()
    for i, n in syn["buyers"].items():
        base = i.rsplit("-v", 1)[0] if C > 1 and i not in real["buyers"] else i
        band_tot[band_of[base]] += n
    for b, v in bands.items():
        if band_tot[b] != S * sum(v):
            fail(f"{name}: band {b} has {band_tot[b]} buyers, not {S} x {sum(v)}")
    g = gini(list(syn["buyers"].values()))
    if not (g_floor - 1e-9 <= g <= g_real + 1e-9):
        fail(f"{name}: Gini {g} outside [{g_floor}, {g_real}]")
    # describe --versus prints the same figures, under the two file names in
    # full (a name longer than the 16-character column is never cut)
    long_real = os.path.join(work, "the-real-december-log-under-a-long-name.csv")
    if not os.path.exists(long_real):
        os.symlink(os.path.join(work, "real.csv"), long_real)
    table = run("describe", "--data", path, "--versus", long_real)
    head = [l for l in table.splitlines() if l.startswith("statistic")]
    if not head or head[0].split()[1:3] != [os.path.basename(long_real), os.path.basename(path)]:
        fail(f"{name}: describe --versus header {head}, want both file names in full")
    lines = {l[:32].strip(): l[32:].split() for l in table.splitlines() if len(l) > 32}
    for label, key in (("shoppers", "shoppers"), ("items", "items"),
                       ("rows (purchase lines)", "rows"), ("baskets", "baskets"),
                       ("shopper-item pairs", "pairs")):
        got = lines.get(label)
        if not got or int(got[0]) != real[key] or int(got[1]) != syn[key]:
            fail(f"{name}: describe --versus '{label}' says {got}, want {real[key]} {syn[key]}")
    got = lines.get("popularity Gini (buyers/item)")
    if not got or abs(float(got[0]) - g_real) > 6e-5 or abs(float(got[1]) - g) > 6e-5:
        fail(f"{name}: describe --versus Gini {got}, want {g_real:.4f} {g:.4f}")
    print(f"{name}: S={S} C={C}: counts exact, Gini {g:.5f} in [{g_floor:.5f}, {g_real:.5f}]")

# describe's usage names --versus (it was missing from the usage line)
if "[--versus FILE]" not in run("describe", "--help").splitlines()[0]:
    fail("describe --help's usage line lacks [--versus FILE]")

# deterministic in the seed; another seed permutes differently
a = synth("seed9.csv", "--scale", "3", "--seed", "9")
if not filecmp.cmp(a, os.path.join(work, "syn3.csv"), shallow=False):
    fail("the same seed gave another log")
b = synth("seed10.csv", "--scale", "3", "--seed", "10")
if filecmp.cmp(a, b, shallow=False):
    fail("seeds 9 and 10 gave the same log")
# --out naming the --data log (or a link to it) is refused before anything
# is written: the log was replaced by the synthetic one
copy = os.path.join(work, "mine.csv.gz")
shutil.copyfile(data, copy)
link = os.path.join(work, "link.csv.gz")
if os.path.lexists(link):
    os.remove(link)
os.symlink(copy, link)
for out in (copy, link):
    p = subprocess.run([sim, "synth", "--data", copy, "--scale", "2", "--out", out],
                       capture_output=True, text=True)
    if p.returncode != 2 or "is the --data log itself" not in p.stderr:
        fail(f"synth --out {out} (the --data log): exit {p.returncode}: {p.stderr}")
    if not filecmp.cmp(copy, data, shallow=False):
        fail("synth --out the --data log changed the log")
# an --out that cannot be opened names it and the reason, once
bad = os.path.join(work, "no-such-dir", "x.csv")
p = subprocess.run([sim, "synth", "--data", data, "--scale", "2", "--out", bad],
                   capture_output=True, text=True)
want = f"fedrec-sim synth: input/output error: {bad}: cannot write: No such file or directory"
if p.returncode != 1 or p.stderr.strip() != want:
    fail(f"synth --out {bad}: exit {p.returncode}: {p.stderr!r}, want {want!r}")
print("ok")
