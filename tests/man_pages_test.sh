#!/usr/bin/env bash
# The man pages (packaging/man) name exactly the long options the programs'
# --help texts name: every --option in a program's --help (and in each of its
# commands' --help) appears in its man page, and every --option in the man
# page appears in one of those help texts.
# Usage: man_pages_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build="$1"
man="$2/packaging/man"
status=0

help_opts() { # program, command...: the long options of every help text
  local prog="$1" c
  shift
  {
    "$prog" --help 2>&1 || true
    for c in "$@"; do "$prog" "$c" --help 2>&1 || true; done
  } | grep -oE -- '--[a-z][a-z0-9-]*[a-z0-9]' | sort -u
}

man_opts() { # roff file: its long options, written \-\-name\-part
  grep -oE -- '\\-\\-[a-z]([a-z0-9]|\\-)*[a-z0-9]' "$1" | sed 's/\\-/-/g' | sort -u
}

check() { # page, program, command...
  local page="$man/$1" prog="$2"
  shift 2
  local h m
  h=$(help_opts "$prog" "$@")
  m=$(man_opts "$page")
  [ -n "$h" ] || { echo "FAIL: $prog --help names no option" >&2; status=1; return; }
  local only_help only_man
  only_help=$(comm -23 <(echo "$h") <(echo "$m"))
  only_man=$(comm -13 <(echo "$h") <(echo "$m"))
  if [ -n "$only_help" ]; then
    echo "FAIL: in $prog --help but not in $page:" $only_help >&2
    status=1
  fi
  if [ -n "$only_man" ]; then
    echo "FAIL: in $page but not in $prog --help:" $only_man >&2
    status=1
  fi
  echo "$page: $(wc -l <<<"$h") options"
}

check fedrec-coordinator.8 "$build/coordinator/fedrec-coordinator" catalog
check fedrec-client.1 "$build/client/cli/fedrec-client" import sync recommend ledger info opt-out \
  opt-in forget recover
check fedrec-sim.1 "$build/sim/fedrec-sim" run baseline describe sweep split synth
exit $status
