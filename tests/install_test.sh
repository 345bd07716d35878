#!/usr/bin/env bash
# cmake --install into an empty folder, then build and run a small program
# with `pkg-config --cflags --libs fedrec` and one with find_package(fedrec).
set -euo pipefail
build=$1
version=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
cat > "$tmp/app.c" <<'C'
#include <stdio.h>
#include <fedrec/fedrec.h>
int main(void)
{
    printf("fedrec %s\n", fedrec_version());
    return 0;
}
C
libdir=$(find "$tmp/prefix" -name fedrec.pc -printf '%h\n' | head -1)
export PKG_CONFIG_PATH=$libdir
cc -o "$tmp/app" "$tmp/app.c" $(pkg-config --cflags --libs fedrec)
out=$(LD_LIBRARY_PATH="$(dirname "$libdir")" "$tmp/app")
echo "pkg-config app: $out"
[ "$out" = "fedrec $version" ]

mkdir -p "$tmp/cm"
cat > "$tmp/cm/CMakeLists.txt" <<'C'
cmake_minimum_required(VERSION 3.25)
project(app C)
find_package(fedrec REQUIRED)
add_executable(app ../app.c)
target_link_libraries(app PRIVATE fedrec::fedrec)
C
cmake -S "$tmp/cm" -B "$tmp/cm/build" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/cm/build" >/dev/null
out=$("$tmp/cm/build/app")
echo "find_package app: $out"
[ "$out" = "fedrec $version" ]
