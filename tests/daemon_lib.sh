# Shell helpers for the end-to-end tests that run fedrec-coordinator and
# fedrec-client processes over tcp://127.0.0.1 (integration_test.sh,
# daemon_dp_test.sh). Source it after `set -euo pipefail`, with these set:
#   build  the build directory        data  the December log (.csv.gz)
#   tag    names the temporary directory /tmp/fedrec-TAG-XXXXXX
# It sets coord and cli (the two programs), dir (that directory, removed on
# exit unless KEEP is set) and pids (killed with -9 on exit: append every
# background process to it), and defines:
#   fail MSG...                 MSG and the last FAIL_TAIL (default 60) lines of
#                               every dir/coord*.log and dir/c*.out; exit 1
#   q SQL                       SQL on dir/state.sqlite
#   http_get PORT PATH          the body of GET PATH from 127.0.0.1:PORT
#   wait_log FILE REGEX [LINE]  waits up to WAIT_TRIES (default 600) x 50 ms
#                               for a line matching REGEX (extended) from line
#                               LINE (default 1) on; fail()s otherwise
#   mark FILE                   the number of FILE's next line
#   make_catalog N              dir/catalog.csv: the N most frequent codes of
#                               the log
#   launch_coord LOG FLAGS...   the coordinator on dir/state.sqlite with a
#                               listener and a status server on ephemeral
#                               ports, FLAGS added; waits for both; sets cpid,
#                               port, hport and url
#   import_customers ID...      store dir/sI for the I-th customer ID with a
#                               fresh random key keys[I] and its purchases
# Output is checked with grep ... <<<"$text", never text | grep -q: with
# pipefail, grep -q exits at its first match and the writer's next write
# (bash's echo writes line by line) fails with EPIPE, failing a passing check.

coord="$build/coordinator/fedrec-coordinator"
cli="$build/client/cli/fedrec-client"
dir=$(mktemp -d "/tmp/fedrec-$tag-XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  [ -n "${KEEP:-}" ] || rm -rf "$dir"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  for f in "$dir"/coord*.log "$dir"/c*.out; do
    [ -f "$f" ] && { echo "---- $f" >&2; tail -n "${FAIL_TAIL:-60}" "$f" >&2; }
  done
  exit 1
}

q() { sqlite3 "$dir/state.sqlite" "$1"; }

http_get() { # port path -> body
  exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
  printf 'GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' "$2" >&3
  sed '1,/^\r$/d' <&3
  exec 3<&-
}

wait_log() { # file extended-regex [first line to look at]
  for _ in $(seq 1 "${WAIT_TRIES:-600}"); do
    grep -Eq -- "$2" <(tail -n "+${3:-1}" "$1" 2>/dev/null) && return 0
    sleep 0.05
  done
  fail "no line matching '$2' in $1 (from line ${3:-1})"
}

mark() { echo $(($(wc -l <"$1") + 1)); }

make_catalog() { # number of codes
  echo "code,description" >"$dir/catalog.csv"
  gzip -dc "$data" | awk -F, 'NR > 1 { print $2 }' | sort | uniq -c | sort -k1,1nr -k2 |
    awk -v n="$1" 'NR <= n { print $2 ",item " $2 }' >>"$dir/catalog.csv"
}

launch_coord() { # log-file flags...
  local log=$1
  shift
  "$coord" --db "$dir/state.sqlite" --listen tcp://127.0.0.1:0 --http http://127.0.0.1:0 \
    "$@" >"$log" 2>&1 &
  cpid=$!
  pids+=("$cpid")
  wait_log "$log" 'listening on tcp://127.0.0.1:0 \(port [0-9]+\)'
  wait_log "$log" 'status on .*\(port [0-9]+\)'
  port=$(sed -nE 's/.*listening on tcp:\/\/127.0.0.1:0 \(port ([0-9]+)\).*/\1/p' "$log")
  hport=$(sed -nE 's/.*status on .*\(port ([0-9]+)\).*/\1/p' "$log")
  url="tcp://127.0.0.1:$port"
}

keys=()
import_customers() { # customer ids...
  local i=0 c
  for c in "$@"; do
    keys[i]=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
    FEDREC_STORE_KEY=${keys[i]} "$cli" import "$data" --customer "$c" \
      --store "$dir/s$i" >/dev/null || fail "import of $c"
    i=$((i + 1))
  done
}
