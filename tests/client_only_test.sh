#!/usr/bin/env bash
# The client library as a store app ships it: configure with
# -DFEDREC_CLIENT_ONLY=ON (which must not need SQLite, inih, libcsv, zlib or
# BLAS/LAPACK), build, run the client tests, install stripped, then check
# with ldd that the shared library pulls in no OpenBLAS, gfortran, libcsv,
# zlib or SQLite and that its dependency closure is at most 3 MB.
#
# The closure is libfedrec plus every library ldd lists for it, each file's
# size on disk (symlinks resolved), excluding the C runtime (libc, libm,
# libpthread, the dynamic loader): every process on the device maps those
# already, and Android and iOS ship their own. That runtime is printed too.
# Usage: client_only_test.sh SOURCE_DIR WORK_DIR
set -euo pipefail
src=$1
work=$2
limit=$((3 * 1024 * 1024))
mkdir -p "$work"
cmake -S "$src" -B "$work/build" -DFEDREC_CLIENT_ONLY=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DFEDREC_WERROR=ON >"$work/configure.log" 2>&1 || { cat "$work/configure.log"; exit 1; }
cmake --build "$work/build" -j 2 >"$work/build.log" 2>&1 || { tail -50 "$work/build.log"; exit 1; }
# test_secagg (33 s) runs in the main build; it has no BLAS path to differ.
(cd "$work/build" && ctest --output-on-failure -j 2 -E test_secagg)
rm -rf "$work/prefix"
cmake --install "$work/build" --prefix "$work/prefix" --strip >/dev/null
lib=$(find "$work/prefix" -name 'libfedrec.so.*.*.*' | head -1)
[ -n "$lib" ] || { echo "no installed libfedrec.so"; exit 1; }

deps=$(ldd "$lib")
echo "$deps"
if grep -Eiq 'openblas|blas|lapack|gfortran|libcsv|libz\.|sqlite|inih' <<<"$deps"; then
    echo "FAIL: the client-only library links a coordinator or simulator dependency"
    exit 1
fi
if grep -q 'not found' <<<"$deps"; then
    echo "FAIL: unresolved dependency"
    exit 1
fi
total=$(stat -c %s "$lib")
runtime=0
printf '%10s  %s\n' "$total" "$(basename "$lib") (stripped)"
while read -r path; do
    real=$(readlink -f "$path")
    size=$(stat -c %s "$real")
    case "$(basename "$real")" in
    libc.so* | libc-* | libm.so* | libm-* | libpthread* | ld-linux* | ld-*.so*)
        runtime=$((runtime + size))
        printf '%10s  %s (C runtime, not counted)\n' "$size" "$real" ;;
    *)
        total=$((total + size))
        printf '%10s  %s\n' "$size" "$real" ;;
    esac
done < <(awk '/=>/ { print $3 } /^[[:space:]]*\/[^ ]*ld-linux/ { print $1 }' <<<"$deps")
printf 'dependency closure: %d bytes (%.2f MiB; limit 3 MiB), plus the C runtime %d bytes\n' \
    "$total" "$(echo "$total / 1048576" | bc -l)" "$runtime"
[ "$total" -le "$limit" ] || { echo "FAIL: closure over 3 MiB"; exit 1; }
echo "client-only build: ok"
