#!/usr/bin/env bash
# The same purchase log in three layouts gives the same counts and the same
# metrics (issue 19): the UCI layout (spreadsheet times M/D/YYYY H:MM), a
# generic log with renamed and reordered columns (ISO 8601 times with an
# offset; columns mapped by name and by position) and a MovieLens-style
# ratings log (Unix seconds; ratings below the threshold dropped, never used
# as quantities). tests/sim_layouts.py writes the three files from the
# December extract.
#   sim_layouts_test.sh FEDREC_SIM DATA WORKDIR
set -u
sim=$1 data=$2 work=$3
fail() { echo "FAIL (layouts): $*" >&2; exit 1; }
rm -rf "$work"
mkdir -p "$work"
python3 "$(dirname "$0")/sim_layouts.py" "$data" "$work" || fail "sim_layouts.py"
layouts=(uci generic movielens)
opts_uci=()
opts_generic=(--format generic --columns user=shopper,item=2,time=when,quantity=qty)
opts_movielens=(--format=movielens)
small=(--rounds 3 --cohort 40 --secagg off --seed 3 --quiet --threads 2)
for l in "${layouts[@]}"; do
    declare -n o="opts_$l"
    "$sim" describe --data "$work/$l.csv" "${o[@]}" --json >"$work/$l.describe.json" 2>"$work/$l.err" ||
        { cat "$work/$l.err" >&2; fail "describe $l"; }
    "$sim" run --data "$work/$l.csv" "${o[@]}" "${small[@]}" --out "$work/$l" >"$work/$l.log" 2>&1 ||
        { cat "$work/$l.log" >&2; fail "run $l"; }
done
python3 - "$work" <<'PY' || fail "the layouts disagree"
import json, sys
w = sys.argv[1]
d = {l: json.load(open(f"{w}/{l}.describe.json")) for l in ("uci", "generic", "movielens")}
s = {l: json.load(open(f"{w}/{l}/summary.json")) for l in ("uci", "generic", "movielens")}
counts = ["rows_kept", "customers", "items", "interactions", "baskets", "time_min", "time_max",
          "test_users", "train_interactions", "held_out_rows"]
for k in counts:
    vals = {l: d[l][k] for l in d}
    assert len(set(vals.values())) == 1, (k, vals)
assert d["uci"]["rows_kept"] > 20000 and d["uci"]["test_users"] > 200, d["uci"]
# every row is kept in the first two; the ratings below 4 are the only drops
for l in ("uci", "generic"):
    assert d[l]["rows_read"] == d[l]["rows_kept"], (l, d[l])
ml = d["movielens"]
assert ml["dropped_rating"] == ml["rows_read"] - ml["rows_kept"] > 0, ml
metrics = [k for k in s["uci"] if k.endswith("_at_10") or k in ("clients", "items", "test_users",
                                                                  "ratio_to_centralized")]
assert len(metrics) >= 14, metrics
for k in metrics:
    vals = {l: s[l][k] for l in s}
    assert len(set(vals.values())) == 1, (k, vals)
print("layouts agree:", {k: d["uci"][k] for k in ("rows_kept", "customers", "items", "test_users")},
      "hr_at_10", s["uci"]["hr_at_10"])
PY
echo "ok: layouts"
