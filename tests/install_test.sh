#!/usr/bin/env bash
# cmake --install into an empty folder, then, from fresh folders outside the
# source tree, as a store-app developer would:
#  - build and run a small program with `pkg-config --cflags --libs fedrec`
#    and one with find_package(fedrec) (headers' version = library's);
#  - check the ABI of what was installed (exports, archive members);
#  - build examples/store_app.c (public headers only) both ways and run each
#    build against the installed fedrec-coordinator on loopback: three
#    devices take part in a round, recommend, show the ledger, opt out and
#    forget.
# Usage: install_test.sh BUILD_DIR VERSION [SOURCE_DIR]
set -euo pipefail
build=$1
version=$2
src=${3:-$(cd "$(dirname "$0")/.." && pwd)}
here=$(cd "$(dirname "$0")" && pwd)
. "$here/coordinator_lib.sh"
tmp=$(mktemp -d)
trap 'coord_stop; rm -rf "$tmp"' EXIT
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
# The JNI glue, when built, finds libfedrec.so.0 beside it in any prefix
# (RUNPATH $ORIGIN): a JVM given -Djava.library.path=PREFIX/lib loads it
# without LD_LIBRARY_PATH.
jni=$(find "$tmp/prefix" -name libfedrec_jni.so | head -1)
if [ -n "$jni" ]; then
  dep=$(env -u LD_LIBRARY_PATH ldd "$jni" | awk '$1 == "libfedrec.so.0" { print $3 }')
  [ -n "$dep" ] && [ "$(realpath "$dep")" = "$(realpath "$(dirname "$jni")/libfedrec.so.0")" ] ||
    { echo "libfedrec_jni.so resolves libfedrec.so.0 to '$dep', not the one beside it"; exit 1; }
  echo "libfedrec_jni.so: libfedrec.so.0 from its own folder"
fi
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

# examples/store_app.c, copied out of the source tree, built against the
# installed package only (no -I into the sources: an internal header would
# not be found).
mkdir -p "$tmp/app-pc" "$tmp/app-cm"
cp "$src/examples/store_app.c" "$tmp/app-pc/"
cp "$src/examples/store_app.c" "$tmp/app-cm/"
cc -std=c11 -Wall -Wextra -Werror -o "$tmp/app-pc/store_app" "$tmp/app-pc/store_app.c" \
    $(pkg-config --cflags --libs fedrec) -pthread
cat > "$tmp/app-cm/CMakeLists.txt" <<'C'
cmake_minimum_required(VERSION 3.25)
project(store_app C)
find_package(fedrec 0.1 REQUIRED)
find_package(Threads REQUIRED)
add_executable(store_app store_app.c)
target_link_libraries(store_app PRIVATE fedrec::fedrec Threads::Threads)
C
cmake -S "$tmp/app-cm" -B "$tmp/app-cm/build" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/app-cm/build" >/dev/null
for app in "$tmp/app-pc/store_app" "$tmp/app-cm/build/store_app"; do
    dir=$tmp/run-$(basename "$(dirname "$app")")
    coord_start "$tmp/prefix/bin/fedrec-coordinator" "$dir/coord" --cohort 3 --min-cohort 3 \
        --deadline-checkin 20000
    LD_LIBRARY_PATH="$(dirname "$libdir")" "$app" --coordinator "$COORD_URL" \
        --dir "$dir/devices" --devices 3 --expect-round \
        --min-cohort 3 --min-neighbors 2 --min-threshold 2 >"$dir/out" 2>&1 ||
        { cat "$dir/out" "$COORD_LOG"; exit 1; }
    grep -q "store_app: ok" "$dir/out"
    echo "store_app ($app): $(grep -c 'took part, completed' "$dir/out") devices took part; ok"
    coord_stop
done
