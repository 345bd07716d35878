#!/usr/bin/env bash
# Opening a store writes nothing: `fedrec-client info` on an existing store
# makes no fsync, fdatasync or rename (counted by strace -c), while an update
# (opt-out) does sync its event (the positive control: strace sees the calls
# here, so zero above is a real zero).
# usage: store_strace_test.sh FEDREC_CLIENT
set -euo pipefail
cli=$1
fail() { echo "FAIL: $*" >&2; exit 1; }
command -v strace >/dev/null || fail "strace is not installed (scripts/setup.sh installs it)"
work=$(mktemp -d /tmp/fedrec-strace-XXXXXX)
trap 'rm -rf "$work"' EXIT
cat >"$work/p.csv" <<'CSV'
InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country
536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55,17850,United Kingdom
536365,71053,WHITE METAL LANTERN,2,2010-12-01 08:27:00,3.39,17850,United Kingdom
536366,22752,SET 7 BABUSHKA NESTING BOXES,1,2010-12-01 08:28:00,7.65,17850,United Kingdom
CSV
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/key"
echo >>"$work/key"
K=(--store "$work/s" --key-file "$work/key")
"$cli" import "$work/p.csv" --customer 17850 "${K[@]}" >/dev/null
# LeakSanitizer cannot run under ptrace (an address-sanitized build): the
# traced runs skip only the leak check; client_cli checks these commands'
# leaks without strace.
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0
calls='^ *[0-9.]+ .*[[:space:]](fsync|fdatasync|rename|renameat|renameat2)$'
trace() { # trace OUT CMD...: strace -c summary of the sync and rename calls
  local out=$1; shift
  strace -f -c -e trace=fsync,fdatasync,rename,renameat,renameat2 -o "$out" "$@" >"$work/stdout" \
    || fail "'$*' failed under strace: $(cat "$work/stdout" "$out")"
}
for i in 1 2; do
  trace "$work/info$i" "$cli" info "${K[@]}"
  grep -q "purchases:     3" "$work/stdout" || fail "info output: $(cat "$work/stdout")"
  if grep -Eq "$calls" "$work/info$i"; then
    cat "$work/info$i" >&2
    fail "fedrec-client info made sync or rename calls (run $i)"
  fi
done
trace "$work/optout" "$cli" opt-out "${K[@]}"
grep -Eq '[[:space:]]fdatasync$|[[:space:]]fsync$' "$work/optout" \
  || fail "opt-out shows no sync call under strace (is strace counting?): $(cat "$work/optout")"
echo "ok: fedrec-client info made no fsync/fdatasync/rename call; opt-out:"
cat "$work/optout"
