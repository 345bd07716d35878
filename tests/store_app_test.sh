#!/usr/bin/env bash
# Runs a store_app binary (examples/store_app.c) against a real
# fedrec-coordinator on loopback: three devices, one round of cohort 3.
# Usage: store_app_test.sh STORE_APP COORDINATOR
set -euo pipefail
app=$1
coordinator=$2
here=$(cd "$(dirname "$0")" && pwd)
. "$here/coordinator_lib.sh"
tmp=$(mktemp -d /tmp/fedrec-store-app-XXXXXX)
trap 'coord_stop; rm -rf "$tmp"' EXIT
# its command line: --help prints the usage (exit 0); a bad value is named
# (exit 2) and nothing is made
"$app" --help >"$tmp/help" || { echo "FAIL: store_app --help exits $?" >&2; exit 1; }
grep -q '^usage: store_app --coordinator URL --dir DIR' "$tmp/help" ||
  { echo "FAIL: store_app --help: $(cat "$tmp/help")" >&2; exit 1; }
for bad in "--devices x|--devices: 'x' is not a whole number from 1 to 16" \
  "--devices 0|--devices: '0' is not a whole number from 1 to 16" \
  "--deadline-ms 5s|--deadline-ms: '5s' is not a whole number" \
  "--min-cohort -3|--min-cohort: '-3' is not a whole number" \
  "--dir|--dir needs a value"; do
  args=${bad%%|*}
  want=${bad#*|}
  rc=0
  # shellcheck disable=SC2086
  "$app" --coordinator tcp://127.0.0.1:1 --dir "$tmp/none" $args 2>"$tmp/err" || rc=$?
  [ "$rc" = 2 ] && grep -qF "store_app: $want" "$tmp/err" && [ ! -e "$tmp/none" ] ||
    { echo "FAIL: store_app $args: exit $rc, '$(cat "$tmp/err")'" >&2; exit 1; }
done
coord_start "$coordinator" "$tmp/coord" --cohort 3 --min-cohort 3 \
    --deadline-checkin 20000
"$app" --coordinator "$COORD_URL" --dir "$tmp/devices" --devices 3 --expect-round \
    --deadline-ms 60000 --min-cohort 3 --min-neighbors 2 --min-threshold 2 || { cat "$COORD_LOG" >&2; exit 1; }
