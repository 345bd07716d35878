#!/usr/bin/env bash
# valgrind memcheck on short integration runs, in the plain (non-sanitizer)
# build: exits non-zero on any invalid read/write, use of uninitialised
# memory, or a definite/indirect/possible leak that tests/valgrind.supp does
# not explain (it holds only third-party thread-TLS noise, justified there).
#   - test_engine: a full round over tcp:// and three rounds over inproc://
#     (coordinator engine + client sessions + SecAgg + optimizer);
#   - test_faults: the whole in-process fault matrix (dropouts at every
#     stage, a stalled client, a reconnecting client);
#   - test_store and test_wire (encrypted store, checked decoders);
#   - fedrec-client import/info/recommend on a fresh store.
# Usage: scripts/valgrind.sh [BUILD_DIR]   (default build/, built if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
if [ ! -x "$build/tests/test_engine" ]; then
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFEDREC_WERROR=ON >/dev/null
  cmake --build "$build" -j "$(nproc 2>/dev/null || echo 2)"
fi
logs=$build/valgrind
mkdir -p "$logs"
export OPENBLAS_NUM_THREADS=1
vg=(valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite,indirect,possible
    --errors-for-leak-kinds=definite,indirect,possible --track-origins=yes --num-callers=30
    --error-exitcode=99 --suppressions="$PWD/tests/valgrind.supp")
status=0
run() { # name cmd...
  local name=$1; shift
  if "${vg[@]}" --log-file="$logs/$name.log" "$@" >"$logs/$name.out" 2>&1 &&
     ! grep -q 'PASSED  \] 0 test' "$logs/$name.out"; then
    echo "valgrind: $name clean ($(grep -o 'ERROR SUMMARY: [0-9]* errors' "$logs/$name.log"))"
  else
    echo "valgrind: $name FAILED; see $logs/$name.log" >&2
    grep -A20 -E 'Invalid|uninitialised|definitely|indirectly|possibly' "$logs/$name.log" | head -60 >&2
    status=1
  fi
}
FEDREC_TEST_FILTER='test_t*_round*' run test_engine "$build/tests/test_engine"
run test_faults "$build/tests/test_faults"
run test_store "$build/tests/test_store"
run test_wire "$build/tests/test_wire"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$tmp/key"
K=(--store "$tmp/s" --key-file "$tmp/key")
run cli_import "$build/client/cli/fedrec-client" import \
  data/online-retail/online_retail_2010-12.csv.gz --customer 17850 "${K[@]}"
run cli_info "$build/client/cli/fedrec-client" info "${K[@]}"
exit $status
