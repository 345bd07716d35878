#!/usr/bin/env bash
# Starts fedrec-coordinator as a process: first start with a catalog commits
# model version 1; /healthz, /status and /metrics answer; SIGTERM exits 0 with
# the database intact; a restart with a grown catalog commits version 2
# (origin catalog) keeping the trained rows; a second instance on the same
# database is refused naming the first one's pid (with journald priorities
# when JOURNAL_STREAM is stderr); startup and ready lines; --check-config on
# good and bad files; a bad flag names the key.
# Usage: daemon_smoke.sh BUILD_DIR
set -euo pipefail
bin="$1/coordinator/fedrec-coordinator"
dir=$(mktemp -d)
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill -9 "$pid" 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT
touch "$dir/log"
fail() { echo "FAIL: $*" >&2; cat "$dir/log" >&2 || true; exit 1; }

# Output is checked with grep ... <<<"$text", never text | grep -q: with
# pipefail, grep -q exits at its first match and the writer's next write
# (bash's echo writes line by line) fails with EPIPE, failing a passing check.
http_get() { # port path -> body on stdout
  exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
  printf 'GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' "$2" >&3
  sed '1,/^\r$/d' <&3
  exec 3<&-
}

wait_healthz() { # port
  for _ in $(seq 1 100); do
    if [ "$(http_get "$1" /healthz 2>/dev/null)" = "ok" ]; then return 0; fi
    sleep 0.1
  done
  return 1
}

start() { # catalog; ports are chosen by the kernel and read back from the log
  local from=$(($(wc -l <"$dir/log") + 1))
  "$bin" --db "$dir/state.sqlite" --catalog "$1" --http "http://127.0.0.1:0" \
    --listen "tcp://127.0.0.1:0" --cohort 4 --min-cohort 3 --factors 4 --log-level info \
    >>"$dir/log" 2>&1 &
  pid=$!
  hport=""
  for _ in $(seq 1 100); do
    hport=$(tail -n "+$from" "$dir/log" | sed -nE 's/.*status on .*\(port ([0-9]+)\).*/\1/p')
    [ -n "$hport" ] && break
    sleep 0.1
  done
  [ -n "$hport" ] || fail "no status port in the log"
  wait_healthz "$hport" || fail "no /healthz on port $hport"
}

stop() {
  kill -TERM "$pid"
  local rc=0
  wait "$pid" || rc=$?
  pid=""
  [ "$rc" -eq 0 ] || fail "exit status $rc after SIGTERM"
}

printf 'code,description\nA,apple\nB,"pear, green"\nC,plum\n' >"$dir/cat1.csv"
start "$dir/cat1.csv"
status=$(http_get "$hport" /status)
grep -q '"round":null,"stage":"idle","model_version":1,' <<<"$status" || fail "status: $status"
metrics=$(http_get "$hport" /metrics)
grep -qx 'fedrec_model_version 1' <<<"$metrics" || fail "metrics: $metrics"
grep -qx 'fedrec_rounds_completed_total 0' <<<"$metrics" || fail "metrics: $metrics"
# one instance per database: a second one on the same database exits at once
# (status 1) naming the first one's pid; the lock file records that pid
[ "$(cat "$dir/state.sqlite.lock")" = "$pid" ] || fail "lock file: $(cat "$dir/state.sqlite.lock")"
rc=0
timeout 60 "$bin" --db "$dir/state.sqlite" --http "http://127.0.0.1:0" \
  --listen "tcp://127.0.0.1:0" --cohort 4 --min-cohort 3 --factors 4 2>"$dir/err2" || rc=$?
[ "$rc" -eq 1 ] || fail "second instance: exit status $rc: $(cat "$dir/err2")"
grep -q "state.sqlite.lock: database in use by pid $pid " "$dir/err2" ||
  fail "second instance message: $(cat "$dir/err2")"
# with stderr as the journal's stream (JOURNAL_STREAM = its device:inode),
# lines carry syslog priorities instead of timestamps
: >"$dir/err3"
rc=0
JOURNAL_STREAM=$(stat -c '%d:%i' "$dir/err3") timeout 60 "$bin" --db "$dir/state.sqlite" \
  --listen "tcp://127.0.0.1:0" 2>>"$dir/err3" || rc=$?
[ "$rc" -eq 1 ] || fail "second instance (journal): exit status $rc"
grep -q '^<6>INFO fedrec-coordinator .* starting' "$dir/err3" || fail "journal: $(cat "$dir/err3")"
grep -q "^<3>ERROR refusing to start: .*in use by pid $pid " "$dir/err3" ||
  fail "journal: $(cat "$dir/err3")"
kill -0 "$pid" || fail "first instance died"
[ "$(http_get "$hport" /healthz)" = ok ] || fail "first instance unhealthy after the second one"
stop
grep -q 'SIGTERM: stopping' "$dir/log" || fail "no shutdown line"
grep -q 'database closed' "$dir/log" || fail "database not closed"
[ "$(sqlite3 "$dir/state.sqlite" 'PRAGMA integrity_check')" = ok ] || fail "integrity_check"
[ "$(sqlite3 "$dir/state.sqlite" 'SELECT group_concat(version || origin) FROM models')" = "1init" ] ||
  fail "models after first start"
y1=$(sqlite3 "$dir/state.sqlite" 'SELECT hex(y) FROM models WHERE version = 1')

# same catalog: nothing new; grown catalog (B retired, D new): version 2
start "$dir/cat1.csv"
stop
[ "$(sqlite3 "$dir/state.sqlite" 'SELECT count(*) FROM models')" = 1 ] || fail "restart committed"
printf 'code,description\nC,plum\nA,apple\nD,fig\n' >"$dir/cat2.csv"
start "$dir/cat2.csv"
grep -q '"model_version":2,' <<<"$(http_get "$hport" /status)" || fail "grown model not served"
stop
[ "$(sqlite3 "$dir/state.sqlite" 'SELECT n_items || origin FROM models WHERE version = 2')" = "4catalog" ] ||
  fail "grown model"
y2=$(sqlite3 "$dir/state.sqlite" 'SELECT hex(substr(y, 1, 48)) FROM models WHERE version = 2')
[ "$y2" = "$y1" ] || fail "trained rows changed"
[ "$(sqlite3 "$dir/state.sqlite" "SELECT active FROM items WHERE code = 'B'")" = 0 ] || fail "B not retired"

# the startup line (version, effective configuration) and the ready line
# (listeners with their bound ports)
grep -Eq 'INFO  fedrec-coordinator [0-9.]+.* starting \(pid [0-9]+\): config= listen=tcp://127.0.0.1:0 http=http://127.0.0.1:0 .* cohort=4 min-cohort=3 .* factors=4 ' "$dir/log" ||
  fail "no startup line"
grep -Eq 'ready: clients on tcp://127.0.0.1:0 \(port [0-9]+\); status server http://127.0.0.1:0 \(port [0-9]+\)' "$dir/log" ||
  fail "no ready line"

# --check-config: 0 and the effective configuration for a good file (flags
# override it), 2 and the problem for a bad one; nothing is opened or created
cat >"$dir/good.ini" <<EOF
[network]
listen = tcp://127.0.0.1:7450
[storage]
db = $dir/other.sqlite
catalog = $dir/cat1.csv
[round]
cohort = 20
min-cohort = 5
EOF
out=$("$bin" --config "$dir/good.ini" --cohort 30 --check-config) || fail "good config refused"
grep -qx "fedrec-coordinator: configuration ok: $dir/good.ini" <<<"$out" || fail "check: $out"
grep -q " db=$dir/other.sqlite .* cohort=30 min-cohort=5 " <<<"$out" || fail "check: $out"
[ ! -e "$dir/other.sqlite" ] && [ ! -e "$dir/other.sqlite.lock" ] || fail "check created files"
check_bad() { # expected message, then arguments
  local want="$1" rc=0
  shift
  "$bin" "$@" --check-config >"$dir/out" 2>"$dir/err" || rc=$?
  [ "$rc" -eq 2 ] || fail "check-config $*: exit status $rc"
  [ ! -s "$dir/out" ] || fail "check-config $*: stdout $(cat "$dir/out")"
  grep -qF "fedrec-coordinator: configuration invalid: $want" "$dir/err" ||
    fail "check-config $*: $(cat "$dir/err")"
}
sed 's/^cohort = 20/cohort = 12x/' "$dir/good.ini" >"$dir/bad1.ini"
check_bad "$dir/bad1.ini:7: [round] cohort: '12x'" --config "$dir/bad1.ini"
sed 's/^min-cohort = 5/min-cohort = 50/' "$dir/good.ini" >"$dir/bad2.ini"
check_bad "min-cohort (50) exceeds cohort (20)" --config "$dir/bad2.ini"
sed 's/^\[round\]/[rounds]/' "$dir/good.ini" >"$dir/bad3.ini"
check_bad "$dir/bad3.ini:7: [rounds] cohort: key 'cohort' belongs in section [round]" --config "$dir/bad3.ini"
check_bad "catalog: '$dir/none.csv': cannot read" --config "$dir/good.ini" --catalog "$dir/none.csv"
check_bad "$dir/missing.ini: cannot open" --config "$dir/missing.ini"
check_bad "listen: 'tcp://127.0.0.1:7450' is plaintext and require-tls is 1 (use tls+tcp://)" \
  --config "$dir/good.ini" --require-tls 1
# SecAgg groups: the link's keys (both ways) are required and checked
k0=$(printf '%064d' 0)
check_bad "role master needs identity-key" --config "$dir/good.ini" --role master \
  --aggregator-listen tcp://127.0.0.1:0 --aggregator-keys "$k0"
check_bad "role aggregator needs master-key" --config "$dir/good.ini" --role aggregator \
  --master tcp://127.0.0.1:7460 --identity-key "$dir/agg.key"
check_bad "master-key: '12ab' is not 64 hex digits" --config "$dir/good.ini" --role aggregator \
  --master tcp://127.0.0.1:7460 --identity-key "$dir/agg.key" --master-key 12ab
"$bin" --config "$dir/good.ini" --role aggregator --master tcp://127.0.0.1:7460 \
  --identity-key "$dir/agg.key" --master-key "$k0" --check-config >/dev/null ||
  fail "aggregator with master-key refused"
[ ! -e "$dir/agg.key" ] || fail "check created the key file"
check_bad "master: 'tls+tcp://localhost:7460' needs master-ca" --config "$dir/good.ini" \
  --role aggregator --master tls+tcp://localhost:7460 --identity-key "$dir/agg.key" \
  --master-key "$k0"
check_bad "role aggregator: members would be told 'tcp://127.0.0.1:0' (port 0" \
  --config "$dir/good.ini" --role aggregator --master tcp://127.0.0.1:7460 \
  --identity-key "$dir/agg.key" --master-key "$k0" --listen tcp://127.0.0.1:0
# require-tls covers the groups' link: a master's aggregator listener and an
# aggregator's master URL (a tls+ aggregator listener needs the certificate)
check_bad "aggregator-listen: 'tcp://127.0.0.1:7461' is plaintext and require-tls is 1" \
  --config "$dir/good.ini" --listen "ipc://$dir/sock" --require-tls 1 --role master \
  --aggregator-listen tcp://127.0.0.1:7461 --aggregator-keys "$k0" --identity-key "$dir/m.key"
check_bad "aggregator-listen: 'tls+tcp://127.0.0.1:7461' needs tls-cert and tls-key" \
  --config "$dir/good.ini" --listen "ipc://$dir/sock" --require-tls 1 --role master \
  --aggregator-listen tls+tcp://127.0.0.1:7461 --aggregator-keys "$k0" --identity-key "$dir/m.key"
"$bin" --config "$dir/good.ini" --listen "ipc://$dir/sock" --require-tls 1 --role master \
  --aggregator-listen "ipc://$dir/link" --aggregator-keys "$k0" --identity-key "$dir/m.key" \
  --check-config >/dev/null || fail "require-tls refused an ipc:// aggregator-listen"
check_bad "master: 'tcp://127.0.0.1:7460' is plaintext and require-tls is 1" \
  --config "$dir/good.ini" --listen "ipc://$dir/sock" --require-tls 1 --role aggregator \
  --master tcp://127.0.0.1:7460 --identity-key "$dir/agg.key" --master-key "$k0"
# ipc:// is local: allowed with require-tls
"$bin" --config "$dir/good.ini" --require-tls 1 --listen "ipc://$dir/sock" --check-config \
  >/dev/null || fail "require-tls refused ipc://"

# a bad value names the key and the value, exit status 2
rc=0
"$bin" --db "$dir/state.sqlite" --cohort 12x 2>"$dir/err" || rc=$?
[ "$rc" -eq 2 ] || fail "bad flag exit status $rc"
grep -q "\-\-cohort: '12x'" "$dir/err" || fail "bad flag message: $(cat "$dir/err")"

# catalog --from-log with --out naming the log itself: refused (exit 2), the
# log untouched (it was replaced by the catalog); a catalog to a new file works
printf 'InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID\n1,P1,ONE,2,2010-12-01 08:26,1.5,7\n' \
  >"$dir/sales.csv"
cp "$dir/sales.csv" "$dir/sales.orig"
rc=0
"$bin" catalog --from-log "$dir/sales.csv" --out "$dir/./sales.csv" 2>"$dir/err" || rc=$?
[ "$rc" -eq 2 ] || fail "catalog --out the log: exit status $rc"
grep -qF "is the --from-log file itself" "$dir/err" || fail "catalog --out the log: $(cat "$dir/err")"
cmp -s "$dir/sales.csv" "$dir/sales.orig" || fail "catalog --out the log changed the log"
"$bin" catalog --from-log "$dir/sales.csv" --out "$dir/products.csv" 2>"$dir/err" ||
  fail "catalog: $(cat "$dir/err")"
[ "$(cat "$dir/products.csv")" = "$(printf 'code,description\nP1,ONE')" ] ||
  fail "catalog: $(cat "$dir/products.csv")"
echo "daemon smoke: ok"
