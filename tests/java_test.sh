#!/usr/bin/env bash
# The JNI binding (bindings/java) with Debian's OpenJDK against a real
# fedrec-coordinator on loopback: FedrecClientTest opens three shoppers,
# records, syncs them into one round of cohort 3, recommends, reads the
# ledger, opts out and forgets.
# Usage: java_test.sh JAVA CLASSPATH JNI_LIB_DIR COORDINATOR VERSION
set -euo pipefail
java=$1
cp=$2
libdir=$3
coordinator=$4
version=$5
here=$(cd "$(dirname "$0")" && pwd)
. "$here/coordinator_lib.sh"
tmp=$(mktemp -d /tmp/fedrec-java-XXXXXX)
trap 'coord_stop; rm -rf "$tmp"' EXIT
coord_start "$coordinator" "$tmp/coord" --cohort 3 --min-cohort 3 --deadline-checkin 20000
mkdir -p "$tmp/shoppers"
"$java" -Xcheck:jni -Djava.library.path="$libdir" -cp "$cp" org.fedrec.FedrecClientTest \
    "$COORD_URL" "$tmp/shoppers" "$version" || { cat "$COORD_LOG" >&2; exit 1; }
