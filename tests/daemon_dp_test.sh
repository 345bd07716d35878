#!/usr/bin/env bash
# Differential privacy in the daemon, with real processes over
# tcp://127.0.0.1 (issue 15):
#  1. fedrec-coordinator --dp-epsilon 4 --dp-delta 1e-6 --dp-rounds 2 and 5
#     fedrec-client processes (own stores and keys, one customer of the
#     December log each), `sync --rounds 2`: both rounds complete as DP
#     rounds (each client noises its contribution before masking); the
#     database records 2 releases (dp_spent), the cumulative epsilon <= 4.
#  2. The clients sync again: round 3 is refused before it starts with a
#     message saying what was spent; /status and /metrics show the budget,
#     the epsilon spent and the exhausted budget; no round 3 in the log.
#  3. Every client's ledger shows its own epsilon (computed on the device):
#     2 rounds, the cumulative epsilon equal to the coordinator's.
#  4. Restart on the same database: the spent budget is restored from
#     dp_spent, so the next round is refused at once with the same spent
#     epsilon.
#  5. A cohort whose noised sum could wrap the ring is refused at start, the
#     message naming the parameters.
#  6. Without the flags the log says "no differential privacy" and /status
#     "differential_privacy":"none".
# Usage: daemon_dp_test.sh BUILD_DIR DATA_FILE
set -euo pipefail
build=$1
data=$2
tag=daemon-dp
FAIL_TAIL=40
WAIT_TRIES=1200
. "$(dirname "$0")/daemon_lib.sh"

make_catalog 300

dp=(--dp-epsilon 4 --dp-delta 1e-6 --dp-rounds 2 --dp-min-survivors 0.8)
start_coord() { # log-file extra-args...
  local log=$1
  shift
  launch_coord "$log" --cohort 5 --min-cohort 5 --factors 4 --deadline-checkin 3000 \
    --catalog "$dir/catalog.csv" --deadline-advertise 5000 --deadline-share 5000 \
    --deadline-masked 10000 --deadline-unmask 5000 --log-level debug "$@"
}
stop_coord() {
  kill -TERM "$cpid"
  wait "$cpid" || fail "coordinator exit status $?"
}

customers=(12748 14911 17850 17841 14606)
declare -a cpids
import_customers "${customers[@]}"
sync_all() { # rounds tag
  for i in "${!customers[@]}"; do
    FEDREC_STORE_KEY=${keys[i]} "$cli" sync --coordinator "$url" --rounds "$1" \
      --min-cohort 5 --min-neighbors 4 --min-threshold 3 \
      --deadline-ms 60000 --store "$dir/s$i" >"$dir/c$i.$2.out" 2>&1 &
    cpids[i]=$!
    pids+=("${cpids[i]}")
  done
  for i in "${!customers[@]}"; do
    wait "${cpids[i]}" || fail "client $i ($2): $(cat "$dir/c$i.$2.out")"
  done
}

# ---- 1: two DP rounds ----------------------------------------------------------
log1="$dir/coord1.log"
start_coord "$log1" "${dp[@]}"
grep -Eq 'differential privacy: budget epsilon 4 at delta 1e-06 over 2 rounds' "$log1" ||
  fail "no DP plan in the log"
sync_all 2 a
for i in "${!customers[@]}"; do
  [ "$(grep -c 'took part; the round completed' "$dir/c$i.a.out")" -eq 2 ] ||
    fail "client $i did not complete 2 rounds: $(cat "$dir/c$i.a.out")"
done
[ "$(q "SELECT count(*) FROM dp_spent")" = 2 ] || fail "dp_spent: $(q 'SELECT * FROM dp_spent')"
[ "$(q "SELECT group_concat(round_id || ':' || status, ' ') FROM rounds ORDER BY round_id")" = \
  "1:completed 2:completed" ] || fail "rounds: $(q 'SELECT * FROM rounds')"
spent=$(q "SELECT epsilon_cumulative FROM dp_spent WHERE round_id = 2")
awk -v e="$spent" 'BEGIN { exit !(e > 3.9 && e <= 4.0) }' || fail "spent $spent, want (3.9, 4]"
q "SELECT json_extract(metrics, '$.dp_spent') FROM rounds WHERE round_id = 2" | grep -qx 1 ||
  fail "round 2 metrics: $(q 'SELECT metrics FROM rounds WHERE round_id = 2')"

# ---- 2: the gate refuses round 3 -------------------------------------------------
sync_all 1 b
wait_log "$log1" 'round 3 refused before it started: it would bring epsilon to [0-9.]+, over the budget 4.0000 at delta 1e-06 \(spent so far: [0-9.]+ in 2 rounds\)'
for i in "${!customers[@]}"; do
  grep -q 'took part' "$dir/c$i.b.out" && fail "client $i took part after the budget was spent"
done
[ "$(q "SELECT count(*) FROM rounds WHERE round_id = 3")" = 0 ] || fail "a round 3 was logged"
status=$(http_get "$hport" /status)
grep -q '"differential_privacy":"skellam"' <<<"$status" || fail "/status: $status"
grep -q '"dp_budget_exhausted":true' <<<"$status" || fail "/status: $status"
grep -q '"dp_rounds_spent":2' <<<"$status" || fail "/status: $status"
grep -q '"dp_refusal":"round 3 refused before it started' <<<"$status" || fail "/status: $status"
st_spent=$(sed -nE 's/.*"dp_epsilon_spent":([0-9.]+).*/\1/p' <<<"$status")
awk -v a="$st_spent" -v b="$spent" 'BEGIN { d = a - b; exit !(d < 1e-5 && d > -1e-5) }' ||
  fail "/status spent $st_spent, database $spent"
metrics=$(http_get "$hport" /metrics)
grep -q '^fedrec_dp_enabled 1$' <<<"$metrics" || fail "/metrics: no fedrec_dp_enabled 1"
grep -q '^fedrec_dp_epsilon_budget 4$' <<<"$metrics" || fail "/metrics: budget"
grep -Eq '^fedrec_dp_epsilon_spent 3\.9[0-9]+$' <<<"$metrics" || fail "/metrics: spent"
grep -q '^fedrec_dp_rounds_spent_total 2$' <<<"$metrics" || fail "/metrics: rounds"
grep -q '^fedrec_dp_budget_exhausted 1$' <<<"$metrics" || fail "/metrics: exhausted"

# ---- 3: every shopper's ledger ---------------------------------------------------
for i in "${!customers[@]}"; do
  FEDREC_STORE_KEY=${keys[i]} "$cli" ledger --store "$dir/s$i" >"$dir/ledger$i.txt" ||
    fail "ledger $i"
  line=$(grep '^differential privacy: epsilon' "$dir/ledger$i.txt") ||
    fail "ledger $i: $(cat "$dir/ledger$i.txt")"
  e=$(sed -nE 's/^differential privacy: epsilon ([0-9.]+) spent at delta 1e-06 over 2 round\(s\).*/\1/p' <<<"$line")
  [ -n "$e" ] || fail "ledger $i: $line"
  awk -v a="$e" -v b="$spent" 'BEGIN { d = a - b; exit !(d < 1e-4 && d > -1e-4) }' ||
    fail "ledger $i says epsilon $e, the coordinator $spent"
  # the same rounds in ledger --json, after the uploads
  FEDREC_STORE_KEY=${keys[i]} "$cli" ledger --json --store "$dir/s$i" >"$dir/ledger$i.json" ||
    fail "ledger --json $i"
  kind="json_extract(value, '\$.kind')"
  jq_() { sqlite3 :memory: "SELECT $1 FROM json_each(CAST(readfile('$dir/ledger$i.json') AS TEXT)) WHERE $2"; }
  [ "$(jq_ 'count(*)' "$kind = 'dp_round'")" = 2 ] ||
    fail "ledger --json $i: not 2 dp_round entries: $(cat "$dir/ledger$i.json")"
  je=$(jq_ "json_extract(value, '\$.epsilon_cumulative') || ' ' ||
    json_extract(value, '\$.delta') || ' ' || json_extract(value, '\$.min_survivors') || ' ' ||
    json_extract(value, '\$.mechanism')" "$kind = 'dp_round' AND json_extract(value, '\$.round') = 2")
  read -r je_eps je_delta je_surv je_mech <<<"$je"
  awk -v a="$je_eps" -v b="$spent" 'BEGIN { d = a - b; exit !(d < 1e-4 && d > -1e-4) }' ||
    fail "ledger --json $i: round 2 epsilon_cumulative $je_eps, the coordinator $spent ($je)"
  awk -v d="$je_delta" 'BEGIN { exit !(d == 1e-6) }' && [ "$je_surv" -ge 1 ] &&
    [ "$je_mech" = skellam ] || fail "ledger --json $i: round 2: $je"
  [ "$(jq_ 'count(*)' "$kind = 'upload'")" -ge 2 ] ||
    fail "ledger --json $i: the uploads are missing: $(cat "$dir/ledger$i.json")"
done
stop_coord

# ---- 4: restart: the spent budget is restored -------------------------------------
log2="$dir/coord2.log"
start_coord "$log2" "${dp[@]}"
grep -Eq 'spent [0-9.]+ in 2\)' "$log2" || fail "restart did not restore the spent budget"
sync_all 1 c
wait_log "$log2" 'round 3 refused before it started: .*\(spent so far: [0-9.]+ in 2 rounds\)'
[ "$(q "SELECT count(*) FROM dp_spent")" = 2 ] || fail "dp_spent grew after the restart"
stop_coord

# ---- 5: a configuration that could wrap is refused, naming the parameters ----------
if "$coord" --db "$dir/wrap.sqlite" --listen tcp://127.0.0.1:0 --cohort 300000 \
  --min-cohort 2 --clip 1 --scale 1 --factors 4 --catalog "$dir/catalog.csv" "${dp[@]}" \
  >"$dir/coord-wrap.log" 2>&1; then
  fail "a cohort of 300000 started"
fi
grep -q 'could wrap' "$dir/coord-wrap.log" || fail "wrap: $(tail -3 "$dir/coord-wrap.log")"
grep -q 'clients n = 300000' "$dir/coord-wrap.log" || fail "wrap message names no n"
grep -q 'scale s = ' "$dir/coord-wrap.log" || fail "wrap message names no s"

# ---- 6: without the flags -------------------------------------------------------
log3="$dir/coord3.log"
start_coord "$log3"
grep -q 'no differential privacy' "$log3" || fail "the log does not say 'no differential privacy'"
status=$(http_get "$hport" /status)
grep -q '"differential_privacy":"none"' <<<"$status" || fail "/status: $status"
grep -q '^fedrec_dp_enabled 0$' <<<"$(http_get "$hport" /metrics)" || fail "/metrics"
stop_coord
echo ok
