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
    /* The headers' macros and the loaded library agree. */
    if (fedrec_version_number() != FEDREC_VERSION_NUMBER)
        return 1;
    printf("fedrec %s %d.%d.%d\n", fedrec_version(), FEDREC_VERSION_MAJOR, FEDREC_VERSION_MINOR,
           FEDREC_VERSION_PATCH);
    return 0;
}
C
libdir=$(find "$tmp/prefix" -name fedrec.pc -printf '%h\n' | head -1)

# ABI hygiene of what was installed: the shared library exports fedrec_*
# only, every symbol under the version node FEDREC_0; the static archive has
# no two members of the same name (ar would keep only one of them on -x).
so=$(find "$tmp/prefix" -name 'libfedrec.so.*.*.*' | head -1)
exports=$(objdump -T "$so" | awk '$2 == "g" && $4 != "*UND*" && $4 != "*ABS*" { print $(NF-1), $NF }')
echo "$exports" | grep -v '^FEDREC_0 fedrec_' && { echo "unversioned or non-fedrec export"; exit 1; }
echo "exports: $(echo "$exports" | wc -l) symbols, all fedrec_* under FEDREC_0"
dups=$(ar t "$(dirname "$libdir")/libfedrec.a" | sort | uniq -d)
[ -z "$dups" ] || { echo "duplicate archive members: $dups"; exit 1; }
export PKG_CONFIG_PATH=$libdir
cc -o "$tmp/app" "$tmp/app.c" $(pkg-config --cflags --libs fedrec)
out=$(LD_LIBRARY_PATH="$(dirname "$libdir")" "$tmp/app")
echo "pkg-config app: $out"
[ "$out" = "fedrec $version $version" ]

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
[ "$out" = "fedrec $version $version" ]
