#!/usr/bin/env bash
# End-to-end checks of `fedrec-sim run --dp-epsilon E --dp-delta D` on the
# December extract (registered by tests/sim_dp.cmake). bash, grep, awk only.
#   sim_dp_test.sh CASE FEDREC_SIM DATA WORKDIR
# Cases:
#   gate    over the coordinator's engine and SecAgg+ (cohort 40, 5% dropout):
#           noise calibrated for 2 releases at epsilon 4, 3 rounds asked: two
#           releases complete, the third is refused before it starts with a
#           message saying what was spent; epsilon per round and cumulative
#           in rounds.csv, the spent epsilon in summary.json (<= the budget);
#           every completed round's unmasked noised sum equals the oracle's
#           sum of the noised words the clients masked (verified = true)
#   gate_inproc  the same gate in the in-process pipeline (--dp-noise
#           aggregate, every client every round)
#   repeat  two DP runs over the engine with the same seed give the same
#           summary (the noise is drawn from seeded ChaCha20 keystreams)
#   nodp    without the flags the run says "no differential privacy" and its
#           summary says so; --dp-epsilon without --dp-delta is a usage error;
#           --group-size with --dp-epsilon is refused, saying why
#   shares  --dp-shares 1,3 in process: the budget spent over two releases, the
#           second's epsilon over 1.5 times the first's; refused over the engine
#   bias    --dp-item-bias in process: nearly noiseless it ranks about as well
#           as without the bias, the budget holds; refused over the engine,
#           without a budget and out of range
set -u
case_name=$1 sim=$2 data=$3 work=$4
rm -rf "$work"
mkdir -p "$work"
small=(--data "$data" --factors 8 --seed 7 --threads 2)

fail() { echo "FAIL ($case_name): $*" >&2; exit 1; }

value() {
    awk -v k="\"$1\":" '$1 == k { v = $2; sub(/,$/, "", v); gsub(/"/, "", v); print v; found = 1 }
                        END { if (!found) exit 1 }' "$2"
}

case $case_name in
gate | gate_inproc)
    if [ "$case_name" = gate ]; then
        mode=(--cohort 40 --dropout 0.05)
    else
        mode=(--dp-noise aggregate --dropout 0)
    fi
    "$sim" run "${small[@]}" --rounds 3 --dp-epsilon 4 --dp-delta 1e-6 --dp-releases 2 \
        "${mode[@]}" --out "$work/g" >"$work/g.log" 2>&1 || { cat "$work/g.log" >&2; fail "exit $?"; }
    grep -q "round 3 refused before it started: it would bring epsilon to [0-9.]*, over the budget 4.0000 at delta 1e-06 (spent so far: [0-9.]* in 2 rounds)" "$work/g.log" ||
        { cat "$work/g.log" >&2; fail "no refusal message"; }
    spent=$(value dp_epsilon_spent "$work/g/summary.json") || fail "no dp_epsilon_spent"
    awk -v e="$spent" 'BEGIN { exit !(e > 3.9 && e <= 4.0) }' || fail "spent $spent, want (3.9, 4]"
    [ "$(value differential_privacy "$work/g/summary.json")" = skellam ] || fail "mechanism"
    # the per-shopper interval and the paired comparison come from the last
    # round's shoppers (they were zeros in process before), so the interval
    # holds HR@10, and the paired difference is HR@10 minus centralized ALS's
    hr=$(value hr_at_10 "$work/g/summary.json") || fail "no hr_at_10"
    lo=$(value hr_at_10_ci95_lo "$work/g/summary.json") || fail "no hr_at_10_ci95_lo"
    hi=$(value hr_at_10_ci95_hi "$work/g/summary.json") || fail "no hr_at_10_ci95_hi"
    cen=$(value centralized_hr_at_10 "$work/g/summary.json") || fail "no centralized_hr_at_10"
    pd=$(value paired_hr_at_10_diff "$work/g/summary.json") || fail "no paired_hr_at_10_diff"
    awk -v h="$hr" -v l="$lo" -v u="$hi" -v c="$cen" -v d="$pd" \
        'BEGIN { exit !(h > 0 && l <= h && h <= u && u > l && (d - (h - c))^2 < 1e-10) }' ||
        fail "HR@10 $hr, interval [$lo, $hi], paired difference $pd against centralized $cen"
    [ "$(value dp_rounds_refused "$work/g/summary.json")" = 1 ] || fail "refused count"
    # rounds.csv: completed 1,1,0; cumulative epsilon increasing, equal to the summary at round 2
    awk -F, '/^#/ { next }
             !h { for (i = 1; i <= NF; i++) col[$i] = i; h = 1; next }
             { n++; c[n] = $col["completed"]; e[n] = $col["dp_epsilon_cumulative"];
               r[n] = $col["dp_epsilon_round"]; v[n] = $col["verified"] }
             END { if (n != 3) exit 1
                   if (c[1] != "true" || c[2] != "true" || c[3] != "false") exit 2
                   if (!(e[1] > 0 && e[2] > e[1])) exit 3
                   if (!(r[1] > 0 && r[2] == r[1])) exit 4
                   if (engine && (v[1] != "true" || v[2] != "true")) exit 5 }' \
        engine=$([ "$case_name" = gate ] && echo 1 || echo 0) "$work/g/rounds.csv" ||
        fail "rounds.csv columns (awk status $?)"
    if [ "$case_name" = gate ]; then
        grep -q "unmasked sum == oracle sum *yes (2 of 2 completed rounds)" "$work/g.log" ||
            fail "the noised sums were not verified against the oracle"
        [ "$(value secagg_verified "$work/g/summary.json")" = true ] || fail "secagg_verified"
    fi
    ;;
repeat)
    for o in a b; do
        "$sim" run "${small[@]}" --rounds 2 --cohort 40 --dp-epsilon 8 --dp-delta 1e-6 --quiet \
            --out "$work/$o" >"$work/$o.log" 2>&1 || { cat "$work/$o.log" >&2; fail "exit $?"; }
    done
    strip() { grep -v -e '"wall_seconds"' -e '"started_utc"' -e '"command_line"' "$1"; }
    diff <(strip "$work/a/summary.json") <(strip "$work/b/summary.json") ||
        fail "two runs with the same seed differ"
    ;;
nodp)
    "$sim" run "${small[@]}" --rounds 1 --cohort 40 --secagg off --out "$work/n" >"$work/n.log" 2>&1 ||
        { cat "$work/n.log" >&2; fail "exit $?"; }
    grep -q "no differential privacy" "$work/n.log" || fail "the output does not say 'no differential privacy'"
    [ "$(value differential_privacy "$work/n/summary.json")" = none ] || fail "summary"
    "$sim" run "${small[@]}" --dp-epsilon 1 --out "$work/x" >"$work/x.log" 2>&1
    [ $? -eq 2 ] || fail "--dp-epsilon without --dp-delta: want exit 2"
    grep -q "dp-delta" "$work/x.log" || fail "the usage error does not name --dp-delta"
    # SecAgg groups with differential privacy: refused, saying why
    "$sim" run "${small[@]}" --group-size 20 --dp-epsilon 1 --dp-delta 1e-6 --out "$work/x" \
        >"$work/x.log" 2>&1
    [ $? -eq 2 ] || fail "--group-size with --dp-epsilon: want exit 2"
    grep -q "does not run with SecAgg groups.*smallest accepted survivor count" "$work/x.log" ||
        fail "the group refusal does not say why: $(cat "$work/x.log")"
    ;;
shares)
    # --dp-shares 1,3 in process: two releases on the budget, the second with
    # three times less noise variance (so a larger epsilon of its own: 1.87
    # and 3.41 at epsilon 4; equal shares would give two equal ones)
    "$sim" run "${small[@]}" --rounds 2 --dp-epsilon 4 --dp-delta 1e-6 --dp-shares 1,3 \
        --dp-noise aggregate --dropout 0 --out "$work/s" >"$work/s.log" 2>&1 ||
        { cat "$work/s.log" >&2; fail "exit $?"; }
    spent=$(value dp_epsilon_spent "$work/s/summary.json") || fail "no dp_epsilon_spent"
    awk -v e="$spent" 'BEGIN { exit !(e > 3.9 && e <= 4.0) }' || fail "spent $spent, want (3.9, 4]"
    awk -F, '/^#/ { next }
             !h { for (i = 1; i <= NF; i++) col[$i] = i; h = 1; next }
             { n++; r[n] = $col["dp_epsilon_round"]; e[n] = $col["dp_epsilon_cumulative"] }
             END { if (n != 2) exit 1
                   if (!(r[2] > 1.5 * r[1])) exit 2
                   if (!(e[2] > e[1] && e[1] == r[1])) exit 3 }' "$work/s/rounds.csv" ||
        fail "rounds.csv: epsilon per round (awk status $?)"
    # over the engine the schedule is refused (every round gets the same plan)
    "$sim" run "${small[@]}" --rounds 2 --cohort 40 --dp-epsilon 4 --dp-delta 1e-6 \
        --dp-shares 1,3 --out "$work/x" >"$work/x.log" 2>&1
    [ $? -eq 2 ] || fail "--dp-shares over the engine: want exit 2"
    grep -q "in process only" "$work/x.log" || fail "$(cat "$work/x.log")"
    ;;
bias)
    # --dp-item-bias 0.3 in process: the model carries a bias column learned in
    # the same noised sums. Almost without noise (epsilon 1e6) it ranks about
    # as well as the same pipeline without the bias (0.296 against 0.3125 at
    # seed 7; a scoring that dropped or misread the column, or a solve that
    # ignored the fixed coordinate, falls far below); at epsilon 4 the budget
    # holds; over the engine, without a budget or at a = 1 it is refused
    for b in 0 0.3; do
        "$sim" run "${small[@]}" --rounds 2 --dp-epsilon 1000000 --dp-delta 1e-6 \
            --dp-item-bias $b --dp-noise aggregate --dropout 0 --out "$work/n$b" \
            >"$work/n$b.log" 2>&1 || { cat "$work/n$b.log" >&2; fail "exit $? (bias $b)"; }
    done
    h0=$(value hr_at_10 "$work/n0/summary.json") || fail "no hr_at_10"
    h1=$(value hr_at_10 "$work/n0.3/summary.json") || fail "no hr_at_10"
    awk -v a="$h0" -v b="$h1" 'BEGIN { exit !(a > 0.2 && b > 0.85 * a) }' ||
        fail "HR@10 $h1 with the bias against $h0 without"
    "$sim" run "${small[@]}" --rounds 2 --dp-epsilon 4 --dp-delta 1e-6 --dp-item-bias 0.3 \
        --dp-noise aggregate --dropout 0 --out "$work/b" >"$work/b.log" 2>&1 ||
        { cat "$work/b.log" >&2; fail "exit $?"; }
    spent=$(value dp_epsilon_spent "$work/b/summary.json") || fail "no dp_epsilon_spent"
    awk -v e="$spent" 'BEGIN { exit !(e > 3.9 && e <= 4.0) }' || fail "spent $spent, want (3.9, 4]"
    "$sim" run "${small[@]}" --rounds 2 --cohort 40 --dp-epsilon 4 --dp-delta 1e-6 \
        --dp-item-bias 0.3 --out "$work/x" >"$work/x.log" 2>&1
    [ $? -eq 2 ] || fail "--dp-item-bias over the engine: want exit 2"
    grep -q "in process only" "$work/x.log" || fail "$(cat "$work/x.log")"
    "$sim" run "${small[@]}" --dp-item-bias 0.3 --dp-noise aggregate --out "$work/x" \
        >"$work/x.log" 2>&1
    [ $? -eq 2 ] || fail "--dp-item-bias without a budget: want exit 2"
    "$sim" run "${small[@]}" --dp-epsilon 4 --dp-delta 1e-6 --dp-item-bias 1 \
        --dp-noise aggregate --out "$work/x" >"$work/x.log" 2>&1
    [ $? -eq 2 ] || fail "--dp-item-bias 1: want exit 2"
    grep -q "dp-item-bias" "$work/x.log" || fail "the range error does not name the option"
    ;;
*) fail "unknown case" ;;
esac
echo "ok ($case_name)"
