#!/usr/bin/env bash
# Installs what is missing, builds fedrec with warnings as errors, runs the
# whole test suite, then runs it again in a separate build with the address
# and undefined-behaviour sanitizers. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

jobs=$(nproc 2>/dev/null || echo 2)

echo "== build (RelWithDebInfo, -Werror) =="
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFEDREC_WERROR=ON >/dev/null
cmake --build build -j "$jobs"
(cd build && ctest --output-on-failure -j "$jobs")

echo "== build (address,undefined sanitizers) =="
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DFEDREC_WERROR=ON \
      -DFEDREC_SANITIZE=address,undefined >/dev/null
cmake --build build-asan -j "$jobs"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
   UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
   ctest --output-on-failure -j "$jobs")
echo "== all tests passed =="
