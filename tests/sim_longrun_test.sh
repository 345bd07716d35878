#!/usr/bin/env bash
# A long simulator run: 300 SecAgg+ rounds on the December extract, then the
# per-round resident memory (rounds.csv, rss_kb) is compared: the peak over
# the last 50 rounds must be within 5% of the peak over the first 50 — no
# growth from leaked per-round state (sessions, SecAgg objects, messages).
# Usage: sim_longrun_test.sh FEDREC_SIM DATA OUTDIR [ROUNDS]
set -euo pipefail
sim=$1
data=$2
out=$3
rounds=${4:-300}
rm -rf "$out"
"$sim" run --data "$data" --rounds "$rounds" --cohort 20 --neighbors 8 --dropout 0.1 \
  --eval-every 10 --out "$out" --quiet >"$out.log" 2>&1 || {
  tail -20 "$out.log" >&2
  echo "FAIL: fedrec-sim exited non-zero" >&2
  exit 1
}
csv=$out/rounds.csv
col=$(head -1 "$csv" | tr ',' '\n' | grep -nx rss_kb | cut -d: -f1)
[ -n "$col" ] || { echo "FAIL: rounds.csv has no rss_kb column" >&2; exit 1; }
n=$(($(wc -l <"$csv") - 1))
[ "$n" -eq "$rounds" ] || { echo "FAIL: $n rounds in rounds.csv, expected $rounds" >&2; exit 1; }
first=$(awk -F, -v c="$col" 'NR>1 && NR<=51 && $c>m {m=$c} END {print m+0}' "$csv")
last=$(awk -F, -v c="$col" -v n="$n" 'NR>n-49 && $c>m {m=$c} END {print m+0}' "$csv")
verified=$(grep -o '"secagg_verified": [a-z]*' "$out/summary.json" | awk '{print $2}')
echo "rounds $n: peak RSS first 50 = $first KiB, last 50 = $last KiB; secagg_verified $verified"
[ "$first" -gt 0 ] || { echo "FAIL: no RSS readings" >&2; exit 1; }
[ "$verified" = true ] || { echo "FAIL: secagg_verified is not true" >&2; exit 1; }
awk -v a="$first" -v b="$last" 'BEGIN {
  r = b / a
  printf "ratio last/first = %.4f (limit 0.95..1.05)\n", r
  exit !(r >= 0.95 && r <= 1.05)
}' || { echo "FAIL: peak memory is not flat" >&2; exit 1; }
