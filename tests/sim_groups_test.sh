#!/usr/bin/env bash
# `fedrec-sim run --group-size` (SecAgg groups, sim/run_groups.c) in one
# process and under mpirun with 1, 2 and 3 ranks (registered by
# tests/sim_groups.cmake):
#   sim_groups_test.sh FEDREC_SIM DATA WORKDIR [MPIRUN]
# Every run has the same seed and options, with dropouts at the masked stage
# heavy enough that some groups fail (fewer than t survivors) and are
# dropped whole. Checks: each run completes with the oracle verified, some
# groups failed and none of the rounds aborted, and summary.json, apart from
# wall_seconds, command_line and started_utc, is the same byte for byte for
# every rank count and the single-process run; --eval-sample scores a subset
# of the test shoppers exactly as the full evaluation does. Without MPIRUN (a build
# without MPI) only the single-process checks run.
set -u
sim=$1 data=$2 work=$3 mpirun=${4:-}
rm -rf "$work"
mkdir -p "$work"
args=(run --data "$data" --rounds 2 --cohort 90 --group-size 10 --neighbors 6 --factors 8
      --dropout 0.3 --dropout-stage masked --sweeps 1 --eval-every 2 --seed 5 --quiet)

fail() { echo "FAIL: $*" >&2; exit 1; }

# mpirun as root in a container, more ranks than cores, no shared-memory
# single-copy (ptrace is often not allowed there), no leak reports from the
# MPI library under the sanitizers
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
export OMPI_MCA_btl=self,vader
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"

strip() { grep -v '"wall_seconds"\|"command_line"\|"started_utc"' "$1/summary.json"; }

check() { # check NAME
    local s=$work/$1/summary.json
    [ -s "$s" ] || fail "$1: no summary.json"
    grep -q '"secagg_verified": true' "$s" || fail "$1: secagg_verified is not true"
    grep -q '"rounds_aborted": 0,' "$s" || fail "$1: a round aborted"
    grep -q '"transport": "groups"' "$s" || fail "$1: transport is not groups"
    grep -q '"groups": 18,' "$s" || fail "$1: not 9 groups in each of 2 rounds"
    grep -Eq '"groups_failed": [1-9][0-9]*,' "$s" || fail "$1: no group failed"
}

"$sim" "${args[@]}" --out "$work/single" >"$work/single.log" 2>&1 ||
    { cat "$work/single.log" >&2; fail "single-process run exited with $?"; }
check single
strip "$work/single" >"$work/single.json"
# --eval-sample: the same training, 40 of the test shoppers scored, each
# exactly as in the full evaluation
"$sim" "${args[@]}" --eval-sample 40 --out "$work/sample" >"$work/sample.log" 2>&1 ||
    { cat "$work/sample.log" >&2; fail "--eval-sample run exited with $?"; }
grep -q '"test_users": 40,' "$work/sample/summary.json" || fail "--eval-sample 40: test_users"
[ "$(tail -n +2 "$work/sample/shoppers.csv" | wc -l)" = 40 ] || fail "--eval-sample 40: shoppers.csv"
tail -n +2 "$work/sample/shoppers.csv" | while IFS= read -r line; do
    grep -qxF "$line" "$work/single/shoppers.csv" || fail "--eval-sample: '$line' not in the full run"
done || exit 1
if [ -z "$mpirun" ]; then
    echo "no mpirun: the single-process run only"
    exit 0
fi
for r in 1 2 3; do
    "$mpirun" -np "$r" "$sim" "${args[@]}" --out "$work/np$r" >"$work/np$r.log" 2>&1 ||
        { cat "$work/np$r.log" >&2; fail "mpirun -np $r exited with $?"; }
    check "np$r"
    strip "$work/np$r" >"$work/np$r.json"
    cmp "$work/single.json" "$work/np$r.json" ||
        { diff "$work/single.json" "$work/np$r.json" >&2; fail "-np $r differs from one process"; }
done
echo "ok: one process and 1, 2, 3 ranks give the same summary"
