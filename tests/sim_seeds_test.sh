#!/usr/bin/env bash
# fedrec-sim run --seeds and fedrec-sim compare on the December extract
# (plain-sum runs of 2 rounds: the statistics, not the training, are tested):
# one folder per seed; seeds.json's mean and 95% t interval recomputed here
# with python3 from the runs' own summary.json; a second invocation keeps the
# finished runs (their files are not rewritten); compare prints and writes
# the table, CSV, JSON and an SVG with one line per group.
#   sim_seeds_test.sh FEDREC_SIM DATA WORKDIR
set -u
sim=$1 data=$2 work=$3
fail() { echo "FAIL (seeds): $*" >&2; exit 1; }
rm -rf "$work"
mkdir -p "$work"
cd "$work" || fail "cd"
args=(run --data "$data" --rounds 2 --cohort 40 --secagg off --quiet --seeds 1,2,3 --out s)
"$sim" "${args[@]}" >first.log 2>&1 || { cat first.log >&2; fail "run --seeds"; }
for n in 1 2 3; do [ -s "s/seed-$n/summary.json" ] || fail "no s/seed-$n/summary.json"; done
python3 - <<'PY' || fail "seeds.json is wrong"
import json, math
runs = [json.load(open(f"s/seed-{n}/summary.json")) for n in (1, 2, 3)]
assert [r["seed"] for r in runs] == [1, 2, 3], [r["seed"] for r in runs]
agg = json.load(open("s/seeds.json"))
assert agg["n_runs"] == 3 and agg["over"] == "seeds", agg
for key in ("hr_at_10", "ndcg_at_10", "ratio_to_centralized"):
    v = [r[key] for r in runs]
    mean = sum(v) / 3
    sd = math.sqrt(sum((x - mean) ** 2 for x in v) / 2)
    half = 4.303 * sd / math.sqrt(3)  # t(0.975, 2 df)
    m = agg[key]
    assert m["values"] == v, (key, m["values"], v)
    assert abs(m["mean"] - mean) < 2e-6 and abs(m["sd"] - sd) < 2e-6, (key, m, mean, sd)
    assert abs(m["ci95_lo"] - (mean - half)) < 2e-6 and abs(m["ci95_hi"] - (mean + half)) < 2e-6, m
assert len(set(r["hr_at_10"] for r in runs)) > 1, "three seeds gave the same HR@10"
# shoppers.csv holds the values behind the final metrics and their intervals
import csv
for n, r in zip((1, 2, 3), runs):
    rows = list(csv.DictReader(open(f"s/seed-{n}/shoppers.csv")))
    assert len(rows) == r["test_users"], (len(rows), r["test_users"])
    for key in ("hr_at_10", "ndcg_at_10"):
        mean = sum(float(x[key]) for x in rows) / len(rows)
        assert abs(mean - r[key]) < 2e-6, (n, key, mean, r[key])
        assert r[key + "_ci95_lo"] <= r[key] <= r[key + "_ci95_hi"], r
        assert r[key + "_ci95_hi"] - r[key + "_ci95_lo"] > 0, r
        # the centralized ALS's values on the same shoppers, and the paired test
        cmean = sum(float(x["centralized_" + key]) for x in rows) / len(rows)
        assert abs(cmean - r["centralized_" + key]) < 2e-6, (n, key, cmean)
    d = r["hr_at_10"] - r["centralized_hr_at_10"]
    assert abs(r["paired_hr_at_10_diff"] - d) < 2e-6, (r["paired_hr_at_10_diff"], d)
    assert r["paired_hr_at_10_diff_ci95_lo"] <= d <= r["paired_hr_at_10_diff_ci95_hi"], r
    assert r["paired_ratio_ci95_lo"] <= r["ratio_to_centralized"] <= r["paired_ratio_ci95_hi"], r
    assert 0 < r["paired_p_value"] <= 1, r
# seeds.json: federated against centralized on the same shoppers, each
# shopper's values averaged over the seeds: the difference of the means
pc = agg["paired_vs_centralized"]
for key in ("hr_at_10", "ndcg_at_10"):
    d = agg[key]["mean"] - agg["centralized_" + key]["mean"]
    p = pc[key]
    assert abs(p["diff"] - d) < 2e-6, (key, p, d)
    assert p["diff_ci95_lo"] <= p["diff"] <= p["diff_ci95_hi"] and 0 < p["p_value"] <= 1, p
    assert p["ratio_ci95_lo"] <= p["ratio"] <= p["ratio_ci95_hi"], p
    assert p["shoppers"] == runs[0]["test_users"], p
print("seeds.json ok")
PY
grep -q '^"s",3,hr_at_10,' s/seeds.csv || fail "seeds.csv lacks the hr_at_10 row"
grep -Eq '^federated - centralized +[-+]0\.[0-9]{4} \[.*p [01]\.[0-9]{3}$' first.log ||
    { cat first.log >&2; fail "no paired comparison with centralized ALS in the table"; }
# resuming: the finished runs are kept, not redone
before=$(stat -c %Y.%s s/seed-*/summary.json s/seed-*/rounds.csv | md5sum)
sleep 1
"$sim" "${args[@]}" >second.log 2>&1 || { cat second.log >&2; fail "second run --seeds"; }
[ "$(grep -c 'holds a finished run, kept' second.log)" -eq 3 ] || fail "the runs were not kept"
[ "$(stat -c %Y.%s s/seed-*/summary.json s/seed-*/rounds.csv | md5sum)" = "$before" ] ||
    fail "a finished run was redone"
# an interrupted run (summary.json cut short) is run again
head -c 100 s/seed-3/summary.json >cut && mv cut s/seed-3/summary.json
"$sim" "${args[@]}" >third.log 2>&1 || { cat third.log >&2; fail "third run --seeds"; }
[ "$(grep -c 'holds a finished run, kept' third.log)" -eq 2 ] || fail "seed 3 was not run again"
python3 -c "import json; json.load(open('s/seed-3/summary.json'))" || fail "seed 3 not rewritten"
# compare: a group of three seeds and one single run
"$sim" compare s s/seed-2 --out=c >compare.log 2>&1 || { cat compare.log >&2; fail "compare"; }
grep -Eq '^s +3 +0\.[0-9]{4} \[' compare.log || { cat compare.log >&2; fail "no row for s"; }
grep -q '^s/seed-2 - s, same [0-9]* shoppers (paired bootstrap): HR@10 ' compare.log ||
    { cat compare.log >&2; fail "no paired comparison"; }
python3 - <<'PY' || fail "compare outputs are wrong"
import json, xml.etree.ElementTree as ET
j = json.load(open("c/compare.json"))
g = {x["name"]: x for x in j["groups"]}
assert g["s"]["n_runs"] == 3 and g["s/seed-2"]["n_runs"] == 1, g.keys()
one = json.load(open("s/seed-2/summary.json"))
assert abs(g["s/seed-2"]["hr_at_10"]["mean"] - one["hr_at_10"]) < 1e-6
assert g["s/seed-2"]["hr_at_10"]["ci95_lo"] is None  # no interval from one run
# paired with the first group on the same shoppers: seed 2 against the mean
# of seeds 1-3; the difference is the difference of the means
p = g["s/seed-2"]["paired_vs_first"]["hr_at_10"]
assert p["shoppers"] == one["test_users"], p
assert abs(p["diff"] - (one["hr_at_10"] - g["s"]["hr_at_10"]["mean"])) < 2e-6, (p, one["hr_at_10"])
assert p["diff_ci95_lo"] <= p["diff"] <= p["diff_ci95_hi"] and 0 < p["p_value"] <= 1, p
assert "paired_vs_first" not in g["s"]
# the same run gives the same paired interval against centralized ALS
# whichever command prints it: the bootstrap is seeded from the run's seed
# (here 2) in run's summary.json and in compare, and from the runs' seeds in
# run --seeds's seeds.json and in compare of that folder
pc = g["s/seed-2"]["paired_vs_centralized"]["hr_at_10"]
for k in ("diff_ci95_lo", "diff_ci95_hi", "ratio_ci95_lo", "ratio_ci95_hi", "p_value"):
    assert abs(pc[k] - one["paired_hr_at_10_" + k if k.startswith("diff") else "paired_" + k]) < 1e-6, (k, pc, one)
assert g["s"]["paired_vs_centralized"] == json.load(open("s/seeds.json"))["paired_vs_centralized"]
ns = "{http://www.w3.org/2000/svg}"
svg = ET.parse("c/compare.svg").getroot()
for panel in (p for p in svg.iter(ns + "g") if p.get("class") == "panel"):
    labels = [s.get("data-label") for s in panel.iter(ns + "g") if s.get("class") == "series"]
    assert labels == ["s", "s/seed-2"], labels
rows = open("c/compare.csv").read().splitlines()
assert rows[0] == "name,n_runs,metric,mean,sd,ci95_lo,ci95_hi" and len(rows) == 1 + 2 * 12, rows[:3]
print("compare ok")
PY
rc=0
"$sim" compare nowhere >/dev/null 2>err.log || rc=$?
[ "$rc" -eq 1 ] && grep -q "nowhere" err.log || fail "compare of a missing folder: rc $rc"
echo "ok: seeds"
