#!/usr/bin/env bash
# /healthz on a full disk: the database on a 4 MiB tmpfs; with the filesystem
# filled, /healthz answers 503 naming the database and the free space, and
# the daemon logs one "unhealthy" line; with room again it answers ok.
# Needs to mount a tmpfs (root); exits 77 (skipped) when it cannot.
# Usage: healthz_disk_test.sh BUILD_DIR
set -euo pipefail
bin="$1/coordinator/fedrec-coordinator"
dir=$(mktemp -d)
mnt="$dir/mnt"
mkdir "$mnt"
pid=""
mounted=0
cleanup() {
  if [ -n "$pid" ]; then kill -9 "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  if [ "$mounted" = 1 ]; then umount "$mnt" || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT
if ! mount -t tmpfs -o size=4m tmpfs "$mnt" 2>"$dir/mount.err"; then
  echo "SKIP: cannot mount a tmpfs: $(cat "$dir/mount.err")"
  exit 77
fi
mounted=1
fail() { echo "FAIL: $*" >&2; cat "$dir/log" >&2 || true; exit 1; }

http() { # port path -> "CODE BODY" (status code, then the body on one line)
  exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
  printf 'GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' "$2" >&3
  local resp
  resp=$(cat <&3 | tr -d '\r')
  exec 3<&-
  printf '%s %s\n' "$(sed -n '1s/^HTTP\/1.1 \([0-9]*\).*/\1/p' <<<"$resp")" \
    "$(sed '1,/^$/d' <<<"$resp" | tr '\n' ' ')"
}
wait_health() { # port, pattern: polls until /healthz matches (a hang guard, not a timing check)
  for _ in $(seq 1 300); do
    if grep -Eq "$2" <<<"$(http "$1" /healthz 2>/dev/null)"; then return 0; fi
    sleep 0.1
  done
  return 1
}

printf 'code,description\nA,apple\nB,pear\nC,plum\n' >"$dir/cat.csv"
# the log exists before the daemon's job opens it: the poll below must not
# read a file that is not there yet (sed fails and set -e ends the script)
: >"$dir/log"
"$bin" --db "$mnt/state.sqlite" --catalog "$dir/cat.csv" --http "http://127.0.0.1:0" \
  --listen "tcp://127.0.0.1:0" --cohort 4 --min-cohort 3 --factors 4 >"$dir/log" 2>&1 &
pid=$!
hport=""
for _ in $(seq 1 300); do
  hport=$(sed -nE 's/.*status on .*\(port ([0-9]+)\).*/\1/p' "$dir/log")
  [ -n "$hport" ] && break
  sleep 0.1
done
[ -n "$hport" ] || fail "no status port in the log"
wait_health "$hport" '^200 ok $' || fail "not healthy at start: $(http "$hport" /healthz)"

# fill the filesystem
dd if=/dev/zero of="$mnt/fill" bs=64k 2>/dev/null || true
[ "$(df --output=avail "$mnt" | tail -1 | tr -d ' ')" -lt 64 ] || fail "tmpfs not full"
wait_health "$hport" "^503 unhealthy: database $mnt/state.sqlite: [0-9]+ bytes free on its filesystem, a model version needs [0-9]+ $" ||
  fail "full disk: /healthz says $(http "$hport" /healthz)"
[ "$(grep -c 'WARN  unhealthy: database' "$dir/log")" = 1 ] || fail "unhealthy not logged once"

# room again
rm "$mnt/fill"
wait_health "$hport" '^200 ok $' || fail "not healthy after freeing: $(http "$hport" /healthz)"
grep -q 'INFO  healthy again' "$dir/log" || fail "recovery not logged"
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pid=""
[ "$rc" -eq 0 ] || fail "exit status $rc after SIGTERM"
echo "healthz on a full disk: ok"
