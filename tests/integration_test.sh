#!/usr/bin/env bash
# End-to-end test with real processes over tcp://127.0.0.1 (issue 6, "Must
# show" 1 and 2):
#  1. fedrec-coordinator (SQLite in a temp dir, kernel-chosen ports, a small
#     catalog) and 8 fedrec-client processes, each with its own store and
#     key, the purchases of one customer of the December log,
#     `sync --rounds 3`. Two clients are SIGKILLed in the middle of round 1:
#     A after its check-in was held (so it is in the cohort but never
#     advertises), B after its key advertisement was accepted. A must be
#     counted dropped at advertise, B at share keys; the round still
#     completes with the 6 others. A and B then sync again and rounds 2 and
#     3 complete with all 8. The model version advances by exactly 3 (db,
#     /status, /metrics).
#  2. kill -9 of the coordinator in the middle of round 4, restart on the same
#     database: round 4 is marked aborted (crash), the last committed model
#     (version 4) is what a fresh client downloads, round 5 completes, and
#     PRAGMA integrity_check is ok after the crash and after the clean stop.
# Nothing here waits for a deadline: every round starts when its cohort (8)
# has checked in (the quorum), and every stage closes when each member has
# answered or its connection has closed (a killed client is dropped at
# once). The check-in and stage deadlines are a minute, reached only when
# something is broken, so a loaded machine cannot change who is counted
# where. To make "the middle of a round" deterministic, a client is stopped
# (SIGSTOP) while its check-in is held: it is then in the cohort but silent,
# so the round stays in its advertise stage until that client is killed (or
# the coordinator is).
# Usage: integration_test.sh BUILD_DIR DATA_FILE
set -euo pipefail
build=$1
data=$2
tag=integration
. "$(dirname "$0")/daemon_lib.sh"

# ---- a small catalog: the 400 most frequent codes of the December log ------
make_catalog 400
[ "$(wc -l <"$dir/catalog.csv")" -eq 401 ] || fail "catalog"

start_coord() { # log-file extra-args...
  local log=$1
  shift
  launch_coord "$log" --cohort 8 --min-cohort 5 --factors 8 --deadline-checkin 60000 \
    --deadline-advertise 60000 --deadline-share 60000 --deadline-masked 60000 \
    --deadline-unmask 60000 --log-level debug "$@"
}

# ---- 8 shoppers + 1 for later, each with a store and its own raw key ---------
customers=(12748 14911 17850 17841 14606 15311 13174 17341 15574)
declare -a ids
import_customers "${customers[@]}"
for i in "${!customers[@]}"; do
  ids[i]=$(FEDREC_STORE_KEY=${keys[i]} "$cli" info --store "$dir/s$i" |
    sed -nE 's/^client id: +([0-9a-f]+)$/\1/p')
  [ -n "${ids[i]}" ] || fail "no client id for store $i"
done

sync_bg() { # index rounds
  FEDREC_STORE_KEY=${keys[$1]} "$cli" sync --coordinator "$url" --rounds "$2" \
    --deadline-ms 30000 --min-cohort 5 --min-neighbors 4 --min-threshold 4 \
    --store "$dir/s$1" >"$dir/c$1.out" 2>&1 &
  cpids[$1]=$!
  pids+=("${cpids[$1]}")
}

# ================= 1: 3 rounds, 8 clients, 2 killed in round 1 =================
declare -a cpids
log1="$dir/coord1.log"
start_coord "$log1" --catalog "$dir/catalog.csv"
grep -q 'committed model version 1 (400 items' "$log1" || fail "initial model"
A=0 B=1
sync_bg $A 3
wait_log "$log1" "client ${ids[A]} checked in"
kill -STOP "${cpids[A]}"
for i in 1 2 3 4 5 6 7; do sync_bg "$i" 3; done
wait_log "$log1" '\[round 1\] round started: cohort 8 of 8 waiting'
wait_log "$log1" "\[round 1\] client ${ids[B]} stage 0 accepted"
# B's connection closes: dropped once stage 0 has closed (at share keys);
# then A's: dropped at advertise, which closes stage 0
kill -9 "${cpids[B]}"
kill -9 "${cpids[A]}"
wait_log "$log1" '\[round 1\] stage 0 closed: 7 of 8 in'
wait_log "$log1" '\[round 1\] round completed'
# A and B sync again: rounds 2 and 3 have their full cohort of 8
sync_bg $A 2
sync_bg $B 2
for i in 0 1 2 3 4 5 6 7; do
  n=3
  [ "$i" -gt 1 ] || n=2
  wait "${cpids[i]}" || fail "client $i exited with an error: $(cat "$dir/c$i.out")"
  [ "$(grep -c 'took part; the round completed' "$dir/c$i.out")" -eq "$n" ] ||
    fail "client $i did not complete $n rounds: $(cat "$dir/c$i.out")"
done
wait_log "$log1" '\[round 3\] round completed'

# the ledger of a client that took part in all 3 rounds, as JSON: valid, one
# object per upload (as many as the text listing counts), rounds 1 to 3
FEDREC_STORE_KEY=${keys[2]} "$cli" ledger --json --store "$dir/s2" >"$dir/ledger2.json" ||
  fail "ledger --json"
lj() { sqlite3 :memory: "SELECT $1 FROM json_each(CAST(readfile('$dir/ledger2.json') AS TEXT))"; }
n_text=$(FEDREC_STORE_KEY=${keys[2]} "$cli" ledger --store "$dir/s2" |
  sed -nE 's/^([0-9]+) uploads, .*/\1/p')
[ "$(lj 'count(*)')" = "$n_text" ] && [ "$n_text" -ge 3 ] &&
  [ "$(lj "group_concat(DISTINCT json_extract(value, '\$.round'))")" = "1,2,3" ] &&
  [ "$(lj "count(json_extract(value, '\$.bytes_sent'))")" = "$n_text" ] ||
  fail "ledger --json of client 2: $(cat "$dir/ledger2.json")"

# the round log: 3 completed rounds, the two kills counted where they happened
[ "$(q "SELECT group_concat(round_id || ':' || status || ':' || cohort || ':' || survivors || ':' ||
  dropped_advertise || dropped_share_keys || dropped_masked_input || dropped_unmask || ':' ||
  model_version, ' ') FROM rounds ORDER BY round_id")" = \
  "1:completed:8:6:1100:2 2:completed:8:8:0000:3 3:completed:8:8:0000:4" ] ||
  fail "round log: $(q 'SELECT * FROM rounds')"
[ "$(q "SELECT min(version) || ' ' || max(version) FROM models")" = "1 4" ] || fail "model versions"
status=$(http_get "$hport" /status)
grep -q '"model_version":4,' <<<"$status" || fail "/status: $status"
grep -q '"rounds_completed":3,' <<<"$status" || fail "/status: $status"
metrics=$(http_get "$hport" /metrics)
grep -qx 'fedrec_rounds_completed_total 3' <<<"$metrics" || fail "metrics: $metrics"
grep -qx 'fedrec_dropouts_total{stage="advertise"} 1' <<<"$metrics" || fail "metrics: $metrics"
grep -qx 'fedrec_dropouts_total{stage="share_keys"} 1' <<<"$metrics" || fail "metrics: $metrics"
# a client that took part holds the model it trained on last (version 3)
info2=$(FEDREC_STORE_KEY=${keys[2]} "$cli" info --store "$dir/s2")
grep -q 'version 3, 400 items x 8' <<<"$info2" || fail "client 2 model: $info2"
# recommend's descriptions: from the coordinator's catalog (its descriptions
# here are "item CODE") and from the purchase log (the log's own)
rec=$(FEDREC_STORE_KEY=${keys[2]} "$cli" recommend -k 5 --descriptions-from "$dir/catalog.csv" \
  --store "$dir/s2")
[ "$(awk 'NR > 1 && $3 == "item" && $4 == $2' <<<"$rec" | wc -l)" -eq 5 ] ||
  fail "recommend with the catalog: $rec"
rec=$(FEDREC_STORE_KEY=${keys[2]} "$cli" recommend -k 5 --descriptions-from "$data" --store "$dir/s2")
[ "$(wc -l <<<"$rec")" -eq 6 ] || fail "recommend with the log: $rec"
gzip -dc "$data" >"$dir/log.csv"
while read -r _ code rest; do
  desc=$(sed -E 's/ +[0-9.e+-]+$//' <<<"$rest")
  grep -F ",$code," "$dir/log.csv" | grep -F "$desc" >/dev/null || fail "description of $code: $rec"
done < <(tail -n +2 <<<"$rec")
sed -nE 's/.*\[round ([0-9])\] round completed: .*stages ([0-9/]+) ms.*/round \1 stages (ms): \2/p' \
  "$log1"

# ================= 2: kill -9 of the coordinator in round 4, restart ============
# client 2 is stopped once its check-in is held, so round 4's advertise stage
# stays open until the kill; client 7 is SIGKILLed too (mid-sync store).
m=$(mark "$log1")
sync_bg 2 1
wait_log "$log1" "client ${ids[2]} checked in" "$m"
kill -STOP "${cpids[2]}"
for i in 0 1 3 4 5 6 7; do sync_bg "$i" 1; done
# the line comes after the 'running' row is in the db (the round-start hook)
wait_log "$log1" '\[round 4\] round started: cohort 8 of 8 waiting'
wait_log "$log1" "\[round 4\] client ${ids[7]} stage 0 accepted"
kill -9 "$cpid"
wait "$cpid" 2>/dev/null || true
for i in 0 1 2 3 4 5 6 7; do kill -9 "${cpids[i]}" 2>/dev/null || true; done
for i in 0 1 2 3 4 5 6 7; do wait "${cpids[i]}" 2>/dev/null || true; done
[ "$(q 'SELECT status FROM rounds WHERE round_id = 4')" = running ] || fail "round 4 not running"
[ "$(q 'PRAGMA integrity_check')" = ok ] || fail "integrity_check after kill -9"

log2="$dir/coord2.log"
start_coord "$log2"
grep -q '1 round(s) interrupted by a crash marked aborted' "$log2" || fail "crash not recovered"
grep -q 'serving model version 4 (400 items' "$log2" || fail "not serving version 4"
grep -q '"model_version":4,' <<<"$(http_get "$hport" /status)" || fail "/status after restart"
for i in 0 2 3 4 5 6 7 8; do sync_bg "$i" 1; done
for i in 0 2 3 4 5 6 7 8; do
  wait "${cpids[i]}" || fail "client $i after restart: $(cat "$dir/c$i.out")"
done
grep -q 'sync 1/1: model version 4 (downloaded); round 5: took part; the round completed' \
  "$dir/c8.out" || fail "fresh client: $(cat "$dir/c8.out")"
grep -q 'round 5: took part; the round completed' "$dir/c7.out" || fail "killed client 7 rejoined"
[ "$(q "SELECT status || ' ' || json_extract(metrics, '$.reason') FROM rounds WHERE round_id = 4")" = \
  "aborted crash" ] || fail "round 4: $(q 'SELECT * FROM rounds WHERE round_id = 4')"
[ "$(q 'SELECT status || cohort || survivors || model_version FROM rounds WHERE round_id = 5')" = \
  "completed885" ] || fail "round 5: $(q 'SELECT * FROM rounds WHERE round_id = 5')"
kill -TERM "$cpid"
rc=0
wait "$cpid" || rc=$?
[ "$rc" -eq 0 ] || fail "coordinator exit status $rc after SIGTERM"
[ "$(q 'PRAGMA integrity_check')" = ok ] || fail "integrity_check after restart"
[ "$(q 'SELECT max(version) FROM models')" = 5 ] || fail "final model version"
echo "integration: ok"
