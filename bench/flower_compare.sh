#!/usr/bin/env bash
# fedrec's SecAgg+ round against Flower's, in one invocation (same machine,
# same load), CPU time on both sides.
#
#   bench/flower_compare.sh FLOWER_GIT [BUILD_DIR]
#
# FLOWER_GIT: a git repository (bare or not) of Flower (github.com/adap/
# flower); its HEAD's framework/py/flwr is extracted to a temporary directory
# and bench/flower_secagg.py loads Flower's SecAgg+ functions from there.
# BUILD_DIR (default build): where fedrec-bench was built.
# Environment: DROPOUTS (default "0 0.1"), N, K, T, D (500 16 9 117121),
# SEED (1).
#
# Flower's round (every dropout from one client pass) runs in pieces (setup
# and share keys, two halves of the masked vectors, one server unmask per
# dropout), and `fedrec-bench secagg --only checks --dropout F` runs before,
# between and after them (F cycling through DROPOUTS), so both sides see the
# same load; fedrec's figure at a dropout is the median of its runs there.
# Needs python3-numpy, python3-cryptography and python3-pycryptodome
# (Debian); not part of ctest or CI.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: $0 FLOWER_GIT [BUILD_DIR]" >&2
  exit 2
fi
flower_git=$1
build=${2:-build}
bench=$build/bench/fedrec-bench
[ -x "$bench" ] || { echo "flower_compare: $bench is not built" >&2; exit 2; }
py=/usr/bin/python3
[ -x "$py" ] || py=python3
dropouts=${DROPOUTS:-0 0.1}
n=${N:-500} k=${K:-16} t=${T:-9} d=${D:-117121} seed=${SEED:-1}
if [ "$n" != 500 ] || [ "$k" != 16 ] || [ "$t" != 9 ] || [ "$d" != 117121 ]; then
  echo "flower_compare: fedrec-bench secagg --only checks runs n = 500, k = 16, t = 9," \
       "d = 117121 only; N, K, T, D must match it" >&2
  exit 2
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
commit=$(git -C "$flower_git" rev-parse HEAD)
# the tree below framework/py only (a mirror may lack large files elsewhere)
git -C "$flower_git" archive HEAD:framework/py flwr | tar -x -C "$work"
out=$work/results.jsonl

echo "flower_compare: Flower $commit, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ)" >&2
"$py" "$here/flower_secagg.py" --flwr "$work" --n "$n" --k "$k" --t "$t" --d "$d" \
  --seed "$seed" --dropout "$(echo $dropouts | tr ' ' ',')" --json \
  --interleave "$bench secagg --only checks --json --dropout {dropout}" >> "$out"
echo "flower_compare: done, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ)" >&2

"$py" - "$out" "$commit" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
fed = [r for r in rows if r.get("bench") == "secagg_checks"]
flw = [r for r in rows if r.get("bench") == "flower_secagg"]
print("Flower commit %s; n = %d, k = %d, t = %d, d = %d; CPU time, seconds per round"
      % (sys.argv[2], flw[0]["n"], flw[0]["k"], flw[0]["t"], flw[0]["d"]))
print()
print("| dropout | survivors (fedrec / Flower) | fedrec client median | fedrec server | "
      "fedrec round (state machines) | fedrec round with the wire checks | Flower client median | "
      "Flower server unmask | Flower round | Flower / fedrec (state machines) | "
      "Flower / fedrec (with checks) |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for w in flw:
    fs = [r for r in fed if abs(r["dropout"] - w["dropout"]) < 1e-9]
    med = lambda key: statistics.median(r[key] for r in fs)
    spread = lambda key: "%.3f-%.3f" % (min(r[key] for r in fs), max(r[key] for r in fs))
    print("| %.2f | %d / %d | %.4f | %.3f | %.3f (%s) | %.3f (%s) | %.4f | %.2f | %.1f | %.1fx | %.1fx |" % (
        w["dropout"], fs[0]["survivors"], w["survivors"], med("client_median_s"), med("server_s"),
        med("machines_s"), spread("machines_s"), med("round_s"), spread("round_s"),
        w["client_median_s"], w["server_unmask_s"], w["round_s"],
        w["round_s"] / med("machines_s"), w["round_s"] / med("round_s")))
print()
for w in flw:
    print("Flower, dropout %.2f: client stages (median) setup %.4f s, share keys %.4f s, "
          "masked vector %.4f s; server routing %.3f s, collect (deserialize + sum) %.3f s; "
          "sum over every client %.1f s; sum exact: %s; fedrec runs: %d, all exact (interleaved)"
          % (w["dropout"], w["stage_median_s"]["setup"], w["stage_median_s"]["share"],
             w["stage_median_s"]["masked"], w["server_route_s"], w["server_collect_s"],
             w["clients_sum_s"], w["exact"],
             sum(1 for r in fed if abs(r["dropout"] - w["dropout"]) < 1e-9)))
EOF
