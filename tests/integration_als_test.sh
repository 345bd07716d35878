#!/usr/bin/env bash
# The ALS server step over real processes (issue 16): fedrec-coordinator with
# --step als and 6 fedrec-client processes over tcp://127.0.0.1, each with its
# own store and the purchases of one customer of the December log, `sync
# --rounds 2`. Checked: both rounds complete; every client's masked upload
# (ledger, stage 2) carries d = n_items k + k (k + 1) / 2 + 1 words (the
# x_u x_u^T block beside the gradient in the same SecAgg+ vector), more than
# a gradient-only upload could; the committed model moved by a step that is
# not Adam's (Adam's first step moves every coordinate with a non-zero
# gradient by exactly lr); --check-config refuses step als with dp-epsilon,
# with SecAgg groups, and an unknown step, naming the key.
# Usage: integration_als_test.sh BUILD_DIR DATA_FILE
set -euo pipefail
build=$1
data=$2
coord="$build/coordinator/fedrec-coordinator"
cli="$build/client/cli/fedrec-client"
dir=$(mktemp -d /tmp/fedrec-als-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  for f in "$dir"/coord*.log "$dir"/c*.out; do
    [ -f "$f" ] && { echo "---- $f" >&2; tail -n 40 "$f" >&2; }
  done
  exit 1
}
q() { sqlite3 "$dir/state.sqlite" "$1"; }
wait_log() { # file extended-regex
  for _ in $(seq 1 600); do
    grep -Eq -- "$2" "$1" 2>/dev/null && return 0
    sleep 0.05
  done
  fail "no line matching '$2' in $1"
}

# ---- refusals: step als with DP, with groups; an unknown step ----------------
rc=0
out=$("$coord" --check-config --db "$dir/x.sqlite" --listen tcp://127.0.0.1:0 --step als \
  --dp-epsilon 4 --dp-delta 1e-6 --rounds 10 2>&1) || rc=$?
[ "$rc" -ne 0 ] && grep -q 'step als with dp-epsilon' <<<"$out" || fail "als + dp: $rc $out"
rc=0
out=$("$coord" --check-config --db "$dir/x.sqlite" --listen tcp://127.0.0.1:0 --step als \
  --role master --aggregator-listen tcp://127.0.0.1:0 --identity-key "$dir/master.key" \
  --aggregator-keys "$(printf '%064d' 0)" 2>&1) || rc=$?
[ "$rc" -ne 0 ] && grep -q 'step als with role master' <<<"$out" || fail "als + groups: $rc $out"
rc=0
out=$("$coord" --check-config --db "$dir/x.sqlite" --listen tcp://127.0.0.1:0 --step sgd 2>&1) ||
  rc=$?
[ "$rc" -ne 0 ] && grep -q "step: 'sgd' is not adam or als" <<<"$out" || fail "step sgd: $rc $out"

# ---- a small catalog: the 200 most frequent codes of the December log ------
echo "code,description" >"$dir/catalog.csv"
gzip -dc "$data" | awk -F, 'NR > 1 { print $2 }' | sort | uniq -c | sort -k1,1nr -k2 |
  awk 'NR <= 200 { print $2 ",item " $2 }' >>"$dir/catalog.csv"

log="$dir/coord.log"
"$coord" --db "$dir/state.sqlite" --listen tcp://127.0.0.1:0 --http http://127.0.0.1:0 \
  --catalog "$dir/catalog.csv" --cohort 6 --min-cohort 5 --factors 8 --step als --lr 0.5 \
  --beta1 0.5 --x-bound 8 --deadline-checkin 2000 --deadline-advertise 5000 \
  --deadline-share 5000 --deadline-masked 5000 --deadline-unmask 5000 --log-level debug \
  >"$log" 2>&1 &
cpid=$!
pids+=("$cpid")
wait_log "$log" 'listening on tcp://127.0.0.1:0 \(port [0-9]+\)'
port=$(sed -nE 's/.*listening on tcp:\/\/127.0.0.1:0 \(port ([0-9]+)\).*/\1/p' "$log")
url="tcp://127.0.0.1:$port"

customers=(12748 14911 17850 17841 14606 15311)
declare -a keys cpids
for i in "${!customers[@]}"; do
  keys[i]=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
  FEDREC_STORE_KEY=${keys[i]} "$cli" import "$data" --customer "${customers[i]}" \
    --store "$dir/s$i" >/dev/null || fail "import of ${customers[i]}"
done
for i in "${!customers[@]}"; do
  FEDREC_STORE_KEY=${keys[i]} "$cli" sync --coordinator "$url" --rounds 2 \
    --deadline-ms 30000 --min-cohort 5 --min-neighbors 4 --min-threshold 4 --store "$dir/s$i" \
    >"$dir/c$i.out" 2>&1 &
  cpids[i]=$!
  pids+=("${cpids[i]}")
done
for i in "${!customers[@]}"; do
  wait "${cpids[i]}" || fail "client $i exited with an error: $(cat "$dir/c$i.out")"
  [ "$(grep -c 'took part; the round completed' "$dir/c$i.out")" -eq 2 ] ||
    fail "client $i did not complete 2 rounds: $(cat "$dir/c$i.out")"
done
[ "$(q "SELECT group_concat(status || ':' || survivors || ':' || model_version, ' ')
  FROM rounds ORDER BY round_id")" = "completed:6:2 completed:6:3" ] ||
  fail "round log: $(q 'SELECT * FROM rounds')"

# the masked input: d = 200 x 8 + 8 x 9 / 2 + 1 = 1637 words; a gradient
# alone would be 1601 words, 144 bytes less (the envelope adds less than that)
for i in "${!customers[@]}"; do
  FEDREC_STORE_KEY=${keys[i]} "$cli" ledger --json --store "$dir/s$i" >"$dir/l$i.json" ||
    fail "ledger of client $i"
  python3 - "$dir/l$i.json" <<'PY' || fail "ledger of client $i: $(cat "$dir/l$i.json")"
import json, sys
up = [e for e in json.load(open(sys.argv[1])) if e["stage"] == 2]
assert len(up) == 2, up
for e in up:
    assert 1637 * 4 <= e["bytes_sent"] < 1601 * 4 + 144 + 400, e
print("masked uploads:", [e["bytes_sent"] for e in up])
PY
done

# the step: from version 1 to 2, not Adam's (every moved coordinate by lr),
# finite, and every item row moved (the step mixes the factors of a row)
python3 - "$dir/state.sqlite" <<'PY' || fail "model step"
import math, sqlite3, struct, sys
db = sqlite3.connect(sys.argv[1])
rows = dict(db.execute("SELECT version, y FROM models WHERE version IN (1, 2)"))
y1 = struct.unpack("<%df" % (len(rows[1]) // 4), rows[1])
y2 = struct.unpack("<%df" % (len(rows[2]) // 4), rows[2])
d = [abs(a - b) for a, b in zip(y1, y2)]
assert all(math.isfinite(v) for v in y2)
moved = [v for v in d if v > 0]
assert len(moved) > 0.9 * len(d), len(moved)
spread = max(moved) / min(moved)
assert spread > 10, spread            # Adam's first step: all equal (spread 1)
print("als step: %d of %d coordinates moved, max/min %.1f" % (len(moved), len(d), spread))
PY
kill -TERM "$cpid"
rc=0
wait "$cpid" || rc=$?
[ "$rc" -eq 0 ] || fail "coordinator exit status $rc after SIGTERM"
echo "integration als: ok"
