#!/usr/bin/env bash
# Integration test of the fedrec-client CLI: runs the real program on the
# bundled log and checks outputs, exit codes and error messages.
# usage: client_cli_test.sh FEDREC_CLIENT DATA_FILE
set -euo pipefail
cli=$1
data=$2
work=$(mktemp -d /tmp/fedrec-cli-XXXXXX)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
expect_rc() { # expect_rc CODE CMD...
  local want=$1; shift
  set +e; "$@" >"$work/out" 2>"$work/err"; local rc=$?; set -e
  [ "$rc" = "$want" ] || { cat "$work/out" "$work/err" >&2; fail "'$*' exited $rc, expected $want"; }
}

# help for every command
expect_rc 0 "$cli" --help
grep -q "import FILE --customer ID" "$work/out" || fail "main help lacks import"
for c in import sync recommend ledger opt-out opt-in forget info recover; do
  expect_rc 0 "$cli" "$c" --help
  grep -q "usage: fedrec-client $c" "$work/out" || fail "$c --help"
done
expect_rc 2 "$cli" frobnicate
grep -q "unknown command 'frobnicate'" "$work/err" || fail "unknown command message"
expect_rc 2 "$cli" info --store "$work/s"   # no key at all
grep -q "FEDREC_STORE_KEY" "$work/err" || fail "missing key message"

# a raw key as 64 hex digits in a key file
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/key"; echo >>"$work/key"
K=(--store "$work/s" --key-file "$work/key")
expect_rc 0 "$cli" import "$data" --customer 17850 "${K[@]}"
grep -q "recorded 297 purchases of customer 17850" "$work/out" || fail "import count: $(cat "$work/out")"
expect_rc 0 "$cli" info "${K[@]}"
grep -q "purchases:     297" "$work/out" || fail "info purchases"
grep -q "participation: opted in" "$work/out" || fail "info default participation"
# another layout (docs/data.md, "Bring your own log"): a MovieLens ratings
# log; user 1's rating 2.0 is below the threshold 4 and skipped, never a
# quantity; --columns over the preset; an unknown format is a usage error
ml=$(dirname "$0")/data/movielens_tiny.csv
expect_rc 0 "$cli" import "$ml" --format movielens --customer 1 --store "$work/ml" --key-file "$work/key"
grep -q "recorded 3 purchases of customer 1" "$work/out" || fail "movielens import: $(cat "$work/out")"
expect_rc 0 "$cli" import "$ml" --format=movielens --columns=user=1,rating= --customer 2 \
  --store "$work/ml2" --key-file "$work/key"
grep -q "recorded 3 purchases of customer 2" "$work/out" || fail "--columns rating=: $(cat "$work/out")"
expect_rc 2 "$cli" import "$ml" --format spreadsheet --customer 1 --store "$work/ml" --key-file "$work/key"
grep -q "'spreadsheet'" "$work/err" || fail "unknown --format message: $(cat "$work/err")"
expect_rc 1 "$cli" import "$ml" --customer 1 --store "$work/ml" --key-file "$work/key"
grep -q "missing required column 'CustomerID'" "$work/err" || fail "UCI default on a MovieLens log"

# a copy whose log lost its last committed event (cut by one byte): info
# refuses it naming the loss; recover keeps the other 296
cp -r "$work/s" "$work/cut"
truncate -s -1 "$work/cut/log"
C=(--store "$work/cut" --key-file "$work/key")
expect_rc 1 "$cli" info "${C[@]}"
grep -q "1 committed events are missing" "$work/err" || fail "lost tail message: $(cat "$work/err")"
expect_rc 0 "$cli" recover "${C[@]}"
grep -q "1 committed events were missing" "$work/out" || fail "recover: $(cat "$work/out")"
expect_rc 0 "$cli" info "${C[@]}"
grep -q "purchases:     296" "$work/out" || fail "info after recover: $(cat "$work/out")"
expect_rc 0 "$cli" recover "${C[@]}"
grep -q "is whole" "$work/out" || fail "recover of a whole store: $(cat "$work/out")"
rm -rf "$work/cut"

# getopt_long: --opt=value and --opt value mean the same, operands anywhere
K2=(--store="$work/s2" --key-file="$work/key")
expect_rc 0 "$cli" import --customer=17850 "${K2[@]}" "$data"
grep -q "recorded 297 purchases of customer 17850" "$work/out" || fail "import with --opt=value"
expect_rc 0 "$cli" info "${K2[@]}"
grep -q "purchases:     297" "$work/out" || fail "info with --opt=value"
for bad in "--rounds=0" "--rounds 0" "--deadline-ms=x" "--deadline-ms x"; do
  expect_rc 2 "$cli" sync $bad "${K[@]}"
  cp "$work/err" "$work/err.$(echo "$bad" | tr -d ' =')${bad//[^=]/}"
done
cmp -s "$work/err.--rounds0=" "$work/err.--rounds0" || fail "--rounds=0 and --rounds 0 differ"
cmp -s "$work/err.--deadline-msx=" "$work/err.--deadline-msx" || fail "--deadline-ms forms differ"
grep -q "rounds: '0' is not an integer from 1 to" "$work/err.--rounds0" || fail "--rounds 0: $(cat "$work/err.--rounds0")"
expect_rc 2 "$cli" sync --rounds "${K[@]}"
# a URL the library cannot dial is a usage error naming it (was exit 1,
# "session: dial http://shop.example: Not supported")
expect_rc 2 "$cli" sync --coordinator http://shop.example "${K[@]}"
grep -qF "fedrec-client sync: --coordinator 'http://shop.example': expected a tcp://, tls+tcp:// or ipc:// URL" \
  "$work/err" || fail "sync http://: $(cat "$work/err")"
expect_rc 2 "$cli" ledger --json=yes "${K[@]}"
grep -q "json: takes no value" "$work/err" || fail "--json=yes: $(cat "$work/err")"
expect_rc 1 "$cli" recommend -k 5 "${K[@]}"
grep -q "no model downloaded yet" "$work/err" || fail "recommend without model"
# recommend's old --catalog still works, with a warning naming the new name
expect_rc 1 "$cli" recommend -k 5 --catalog "$data" "${K[@]}"
grep -q -- "--catalog is deprecated: use --descriptions-from FILE (a catalog or a purchase log)" \
  "$work/err" || fail "recommend --catalog: $(cat "$work/err")"
expect_rc 1 "$cli" recommend -k 5 --descriptions-from "$data" "${K[@]}"
if grep -q deprecated "$work/err"; then fail "--descriptions-from warned"; fi
# --descriptions-from takes the coordinator's catalog too, told by its first
# line code,description (descriptions printed: tests/integration_test.sh);
# anything else gets an error naming the file and what it is not
printf 'code,description\n85123A,WHITE HANGING HEART\n' >"$work/cat.csv"
expect_rc 1 "$cli" recommend --descriptions-from "$work/cat.csv" "${K[@]}"
grep -q "no model downloaded yet" "$work/err" && [ "$(wc -l <"$work/err")" -eq 1 ] ||
  fail "recommend with a catalog: $(cat "$work/err")"
printf '85123A,WHITE HANGING HEART\n' >"$work/nohdr.csv"
expect_rc 1 "$cli" recommend --descriptions-from "$work/nohdr.csv" "${K[@]}"
grep -q "nohdr.csv:1: missing required column 'CustomerID'.*nohdr.csv is neither a catalog (first line code,description) nor a purchase log" \
  "$work/err" || fail "headerless catalog: $(cat "$work/err")"
gzip -k "$work/cat.csv"
expect_rc 1 "$cli" recommend --descriptions-from "$work/cat.csv.gz" "${K[@]}"
grep -q "cat.csv.gz: a gzip'd catalog" "$work/err" || fail "gzip'd catalog: $(cat "$work/err")"
expect_rc 2 "$cli" recommend --descriptions-from "$work/cat.csv" --format generic "${K[@]}"
grep -q "cat.csv is a catalog (code,description): --format and --columns describe a purchase log" \
  "$work/err" || fail "catalog with --format: $(cat "$work/err")"
expect_rc 1 "$cli" recommend --descriptions-from "$work/none.csv" "${K[@]}"
grep -q "none.csv: cannot open: No such file" "$work/err" || fail "missing file: $(cat "$work/err")"
expect_rc 0 "$cli" ledger --json "${K[@]}"
[ "$(cat "$work/out")" = "[]" ] || fail "empty ledger json: $(cat "$work/out")"
expect_rc 0 "$cli" opt-out "${K[@]}"
expect_rc 0 "$cli" info "${K[@]}"
grep -q "participation: opted out" "$work/out" || fail "opt-out not kept"
expect_rc 0 "$cli" opt-in "${K[@]}"

# errors name the input, and the store is unchanged by them
sum() { (cd "$work/s" && sha256sum $(ls | sort)); }
# a deleted log would roll back the session's events (here the opt-out):
# refused, naming the log, the other files untouched; restored, it opens
expect_rc 0 "$cli" opt-out "${K[@]}"
mv "$work/s/log" "$work/log.saved"
before=$(sum)
expect_rc 1 "$cli" info "${K[@]}"
grep -q "/log: missing" "$work/err" || fail "deleted log: $(cat "$work/out" "$work/err")"
[ "$(sum)" = "$before" ] || fail "a refused open (no log) changed the store"
mv "$work/log.saved" "$work/s/log"
expect_rc 0 "$cli" info "${K[@]}"
grep -q "participation: opted out" "$work/out" || fail "restored log lost the opt-out"
expect_rc 0 "$cli" opt-in "${K[@]}"
before=$(sum)
FEDREC_STORE_KEY=not-the-passphrase expect_rc 1 "$cli" info --store "$work/s"
grep -q "meta" "$work/err" || fail "key error does not name the file"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/key2"
expect_rc 1 "$cli" info --store "$work/s" --key-file "$work/key2"
grep -q "wrong key" "$work/err" || fail "wrong key message: $(cat "$work/err")"
[ "$(sum)" = "$before" ] || fail "a failed open changed the store"
expect_rc 1 "$cli" import "$work/nope.csv" --customer 1 "${K[@]}"
grep -q "nope.csv" "$work/err" || fail "missing file not named"
expect_rc 1 "$cli" import "$data" --customer 99999999 "${K[@]}"
grep -q "no purchases of customer '99999999'" "$work/err" || fail "unknown customer"
expect_rc 2 "$cli" recommend -k zero "${K[@]}"
grep -q -- "-k: 'zero'" "$work/err" || fail "bad -k not named"
expect_rc 1 "$cli" info --store "$work/s" --key-file "$work/missing-key"
grep -q "missing-key" "$work/err" || fail "missing key file not named"

# sync needs a coordinator URL, and says which one failed
expect_rc 2 "$cli" sync "${K[@]}"
grep -q -- "--coordinator URL is required" "$work/err" || fail "sync without URL"
expect_rc 1 "$cli" sync --coordinator "ipc://$work/nobody.sock" --deadline-ms 300 "${K[@]}"
grep -q "nobody.sock" "$work/err" || fail "sync error does not name the URL: $(cat "$work/err")"
expect_rc 0 "$cli" ledger "${K[@]}"
grep -q "0 uploads, 0 bytes" "$work/out" || fail "a failed sync uploaded something"

# forget leaves no file behind
expect_rc 0 "$cli" forget "${K[@]}"
[ ! -e "$work/s" ] || fail "forget left $(ls -A "$work/s")"
# and no command but import makes a store again: each says there is none
# (exit 3) and creates nothing, in a missing or an empty directory
mkdir "$work/empty"
for st in "$work/s" "$work/empty"; do
  for c in info ledger recommend opt-out opt-in "sync --coordinator ipc://$work/x.sock" forget \
    recover; do
    expect_rc 3 "$cli" $c --store "$st" --key-file "$work/key"
    case $c in
    forget) grep -qx "fedrec-client forget: no store at $st: nothing to erase" "$work/err" ;;
    recover) grep -qx "fedrec-client recover: no store at $st: nothing to recover" "$work/err" ;;
    *) grep -qx "fedrec-client ${c%% *}: no store at $st (nothing was created); make one with fedrec-client import FILE --customer ID --store $st" "$work/err" ;;
    esac || fail "$c on no store: $(cat "$work/err")"
  done
done
[ ! -e "$work/s" ] || fail "a command made a store after forget: $(ls -A "$work/s")"
[ -z "$(ls -A "$work/empty")" ] || fail "a command wrote into an empty directory: $(ls -A "$work/empty")"
# an import that records nothing leaves no new store; one that records makes it
expect_rc 1 "$cli" import "$data" --customer 99999999 "${K[@]}"
expect_rc 1 "$cli" import "$work/nope.csv" --customer 17850 "${K[@]}"
[ ! -e "$work/s" ] || fail "an import that recorded nothing left a store"
# ... into a directory made for it beforehand: the directory stays, empty
expect_rc 1 "$cli" import "$data" --customer 99999999 --store "$work/empty" --key-file "$work/key"
[ -d "$work/empty" ] || fail "an import that recorded nothing removed the pre-made directory"
[ -z "$(ls -A "$work/empty")" ] || fail "an import that recorded nothing left $(ls -A "$work/empty")"
expect_rc 0 "$cli" import "$data" --customer 17850 "${K[@]}"
grep -q "recorded 297 purchases of customer 17850 from .* (new store)" "$work/out" ||
  fail "import into a new store: $(cat "$work/out")"
expect_rc 0 "$cli" forget "${K[@]}"

# a passphrase from the environment
export FEDREC_STORE_KEY="correct horse battery staple"
expect_rc 0 "$cli" import "$data" --customer 13047 --store "$work/p"
expect_rc 0 "$cli" info --store "$work/p"
grep -q "purchases:" "$work/out" || fail "passphrase store"
FEDREC_STORE_KEY="wrong horse" expect_rc 1 "$cli" info --store "$work/p"
grep -q "wrong key" "$work/err" || fail "wrong passphrase message"
expect_rc 0 "$cli" forget --store "$work/p"
[ ! -e "$work/p" ] || fail "forget left files"
echo "fedrec-client CLI: all checks passed"
