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
coord_start "$coordinator" "$tmp/coord" --cohort 3 --min-cohort 3 \
    --deadline-checkin 20000
"$app" --coordinator "$COORD_URL" --dir "$tmp/devices" --devices 3 --expect-round \
    --deadline-ms 60000 --min-cohort 3 --min-neighbors 2 --min-threshold 2 || { cat "$COORD_LOG" >&2; exit 1; }
