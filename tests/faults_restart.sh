#!/usr/bin/env bash
# The coordinator killed (SIGKILL) and restarted at each SecAgg stage:
#   1. a first round commits model version 2;
#   2. for each stage s (advertise, share_keys, masked_input, unmask): three
#      clients start a round in which one stops at stage s and hangs, so the
#      round sits in stage s (the deadline is a minute); /status shows stage
#      s; the daemon is killed with SIGKILL;
#   3. the database passes PRAGMA integrity_check, its newest model is the one
#      committed before the kill (same version, same bytes: SHA-256 of the
#      blob), the interrupted round is not "completed";
#   4. the restarted daemon serves that version (/status), and a new round
#      with three clients completes and commits the next version.
# Usage: faults_restart.sh FEDREC_COORDINATOR FEDREC_FAULT_CLIENT
set -euo pipefail
coord=$1
client=$2
dir=$(mktemp -d /tmp/fedrec-faults-XXXXXX)
pid=""
cpids=()
cleanup() {
  [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
  for p in "${cpids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; tail -30 "$dir/log" >&2 || true; exit 1; }
# Ports are chosen by the kernel at each start and read back from the log (a
# fixed port can collide with another test's ephemeral ports).
http=""
url=""
db="$dir/state.sqlite"
printf 'code,description\nA,apple\nB,pear\nC,plum\nD,fig\nE,kiwi\n' >"$dir/cat.csv"

http_get() { # path -> body
  exec 3<>"/dev/tcp/127.0.0.1/$http" || return 1
  printf 'GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' "$1" >&3
  sed '1,/^\r$/d' <&3
  exec 3<&-
}
start() {
  touch "$dir/log" # the loop below reads it before the background job may have opened it
  local from=$(($(wc -l <"$dir/log") + 1))
  "$coord" --db "$db" --catalog "$dir/cat.csv" --http "http://127.0.0.1:0" \
    --listen "tcp://127.0.0.1:0" --cohort 3 --min-cohort 3 --factors 2 --deadline-checkin 60000 \
    --deadline-advertise 60000 --deadline-share 60000 --deadline-masked 60000 \
    --deadline-unmask 60000 --log-level info >>"$dir/log" 2>&1 &
  pid=$!
  local port=""
  http=""
  for _ in $(seq 1 200); do
    http=$(tail -n "+$from" "$dir/log" | sed -nE 's/.*status on .*\(port ([0-9]+)\).*/\1/p' | head -1)
    port=$(tail -n "+$from" "$dir/log" | sed -nE 's/.*listening on tcp:.*\(port ([0-9]+)\).*/\1/p' | head -1)
    [ -n "$http" ] && [ -n "$port" ] && break
    sleep 0.05
  done
  [ -n "$http" ] && [ -n "$port" ] || fail "no ports in the log"
  url="tcp://127.0.0.1:$port"
  for _ in $(seq 1 200); do
    [ "$(http_get /healthz 2>/dev/null)" = ok ] && return 0
    sleep 0.05
  done
  fail "daemon did not come up"
}
status_field() { http_get /status | grep -o "\"$1\":[^,}]*" | head -1 | cut -d: -f2 | tr -d '"'; }
sql() { sqlite3 "$db" "$1"; }
latest() { sql 'SELECT version FROM models ORDER BY version DESC LIMIT 1'; }
blob_hash() { sql "SELECT hex(y) FROM models WHERE version = $1" | sha256sum | cut -d' ' -f1; }

run_round() { # id0 -> three clients complete a round
  local ps=() rc=0
  for i in 0 1 2; do "$client" "$url" $(($1 + i)) >>"$dir/clients" 2>&1 & ps+=($!); done
  for p in "${ps[@]}"; do wait "$p" || rc=$?; done
  [ "$rc" -eq 0 ] || fail "a client of the round starting at id $1 exited $rc"
}

start
run_round 1
[ "$(latest)" = 2 ] || fail "first round did not commit version 2"
next_id=10
stages=(advertise share_keys masked_input unmask)
for s in 0 1 2 3; do
  v=$(latest)
  h=$(blob_hash "$v")
  cpids=()
  "$client" "$url" $next_id >>"$dir/clients" 2>&1 & cpids+=($!)
  "$client" "$url" $((next_id + 1)) >>"$dir/clients" 2>&1 & cpids+=($!)
  "$client" "$url" $((next_id + 2)) $s >>"$dir/clients" 2>&1 & cpids+=($!)
  next_id=$((next_id + 3))
  ok=0
  for _ in $(seq 1 400); do
    [ "$(status_field stage)" = "${stages[$s]}" ] && { ok=1; break; }
    sleep 0.05
  done
  [ $ok = 1 ] || fail "stage ${stages[$s]} never showed in /status"
  kill -9 "$pid"
  wait "$pid" 2>/dev/null || true
  pid=""
  for p in "${cpids[@]}"; do kill -9 "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  cpids=()
  [ "$(sql 'PRAGMA integrity_check')" = ok ] || fail "integrity_check after kill at ${stages[$s]}"
  [ "$(latest)" = "$v" ] || fail "kill at ${stages[$s]}: newest model $(latest), want $v"
  [ "$(blob_hash "$v")" = "$h" ] || fail "kill at ${stages[$s]}: model $v bytes changed"
  [ "$(sql "SELECT count(*) FROM rounds WHERE status = 'completed'")" = $((v - 1)) ] ||
    fail "kill at ${stages[$s]}: completed rounds do not match the model versions"
  start
  [ "$(status_field model_version)" = "$v" ] || fail "restart after ${stages[$s]}: serves $(status_field model_version), want $v"
  run_round $next_id
  next_id=$((next_id + 3))
  [ "$(latest)" = $((v + 1)) ] || fail "round after restart at ${stages[$s]} did not commit"
  [ "$(sql 'PRAGMA integrity_check')" = ok ] || fail "integrity_check after restart at ${stages[$s]}"
  echo "kill at ${stages[$s]}: model v$v kept (sha256 ${h:0:12}), restart served v$v, next round committed v$((v + 1))"
done
kill -TERM "$pid"
wait "$pid" || fail "exit status after SIGTERM"
pid=""
echo "faults_restart: ok"
