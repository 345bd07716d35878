#!/usr/bin/env bash
# Builds the libFuzzer harnesses (clang, address + undefined sanitizers) and
# runs each for SECONDS (default 60), two at a time, starting from its seed
# corpus in tests/fuzz/corpus/<name>/. Exits non-zero if any harness finds a
# crash, leak or sanitizer error; the reproducer is left in build-fuzz/.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
scripts/setup.sh
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=OFF \
  -DFEDREC_FUZZ=ON -DFEDREC_SANITIZE=address,undefined >/dev/null
cmake --build build-fuzz -j "$(nproc 2>/dev/null || echo 2)"
harnesses=$(find build-fuzz/tests/fuzz -maxdepth 1 -type f -name 'fuzz_*' -perm -u+x | sort)
if [ -z "$harnesses" ]; then
  echo "fuzz: no harnesses built" >&2
  exit 1
fi
mkdir -p build-fuzz/logs
status=0
run_one() {
  local bin=$1 name
  name=$(basename "$bin")
  local corpus=tests/fuzz/corpus/${name#fuzz_}
  local work=build-fuzz/corpus-run/${name#fuzz_}
  mkdir -p "$work"
  local seeds=()
  [ -d "$corpus" ] && seeds=("$corpus")
  if (cd build-fuzz && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
        "../$bin" -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=30 -print_final_stats=1 \
        -artifact_prefix="logs/$name-" "../$work" "${seeds[@]/#/../}" \
        >"logs/$name.log" 2>&1); then
    echo "fuzz: $name ok ($(grep -Eo 'stat::number_of_executed_units: [0-9]+' "build-fuzz/logs/$name.log" | awk '{print $2}') runs in ${seconds}s)"
  else
    echo "fuzz: $name FAILED; see build-fuzz/logs/$name.log" >&2
    tail -40 "build-fuzz/logs/$name.log" >&2
    return 1
  fi
}
pids=()
names=()
for h in $harnesses; do
  run_one "$h" & pids+=($!); names+=("$h")
  if [ ${#pids[@]} -ge 2 ]; then
    wait "${pids[0]}" || status=1
    pids=("${pids[@]:1}")
  fi
done
for p in "${pids[@]}"; do wait "$p" || status=1; done
exit $status
