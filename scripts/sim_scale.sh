#!/usr/bin/env bash
# The simulator's scale figures (docs/scale.md), printed as tables; nothing
# here asserts a speed.
#   scripts/sim_scale.sh BUILD_DIR throughput   client-rounds per second at
#       d = 117,121 (the full Online Retail log, 3,660 items x 32 + 1), k = 16,
#       cohort 1,000 in 2 groups of 500, 3 rounds: one process, then mpirun
#       -np 2, alternated SIM_SCALE_REPS times (default 2) in the same
#       invocation (the ratios are the figures), with the load average and the
#       machine's CPU use and steal time during each run, then each rank's
#       split of its time (groups, waiting, master) in the last pair
#   scripts/sim_scale.sh BUILD_DIR memory       peak RSS of --group-size runs
#       on a synthetic catalog of 101,094 items (synth --items-scale 42 of
#       the December extract; d = 3.2M) at cohorts 40 and 80, against the
#       one-SecAgg-round engine path at cohort 40
set -euo pipefail
build=$1 what=$2
src=$(cd "$(dirname "$0")/.." && pwd)
sim=$build/sim/fedrec-sim
work=${SIM_SCALE_WORK:-/tmp/fedrec-sim-scale}
mkdir -p "$work"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
export OMPI_MCA_btl=self,vader OPENBLAS_NUM_THREADS=1
load() { cut -d' ' -f1 /proc/loadavg; }

case $what in
throughput)
    args=(run --data "$src/data/online-retail/online_retail.csv.gz" --cohort 1000
          --group-size 500 --rounds 3 --eval-every 3 --sweeps 1 --threads 1)
    reps=${SIM_SCALE_REPS:-2}
    echo "fedrec-sim throughput: d = 117,121, k = 16, cohort 1,000 in 2 groups of 500, 3 rounds;"
    echo "1 rank then mpirun -np 2, alternated $reps times; ratios against the 1-rank run of the"
    echo "same pair; load1 before each run, CPU% = user+system+steal of the whole machine during"
    echo "the run (100% = both cores busy), steal = hypervisor steal in that time"
    printf '%-4s %-6s %-7s %-6s %-6s %-16s %-10s %-7s %-8s %-16s %-7s\n' pair ranks load1 CPU% \
        steal client-rounds/s per-rank ratio "CPU s" "per CPU second" ratio
    stat() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6, $9 }' /proc/stat; }
    for ((p = 1; p <= reps; p++)); do
        base="" cbase=""
        for r in 1 2; do
            l=$(load)
            read -r b0 i0 s0 < <(stat)
            log=$work/np$r-$p.log
            if [ "$r" = 1 ]; then
                "$sim" "${args[@]}" --out "$work/np$r-$p" >"$log" 2>&1
            else
                mpirun -np "$r" "$sim" "${args[@]}" --out "$work/np$r-$p" >"$log" 2>&1
            fi
            read -r b1 i1 s1 < <(stat)
            line=$(grep -o 'training (evaluation excluded).*' "$log")
            read -r tot per cpu cper < <(sed -E 's/.* ([0-9.]+) client-rounds\/s, ([0-9.]+) per rank; ([0-9.]+) CPU s, ([0-9.]+) client-rounds per CPU second/\1 \2 \3 \4/' <<<"$line")
            [ -n "$base" ] || { base=$tot; cbase=$cper; }
            printf '%-4s %-6s %-7s %-6s %-6s %-16s %-10s %-7s %-8s %-16s %-7s\n' "$p" "$r" "$l" \
                "$(awk -v b=$((b1 - b0)) -v i=$((i1 - i0)) 'BEGIN { printf "%.0f", 100 * b / (b + i) }')" \
                "$(awk -v s=$((s1 - s0)) -v b=$((b1 - b0)) -v i=$((i1 - i0)) 'BEGIN { printf "%.1f%%", 100 * s / (b + i) }')" \
                "$tot" "$per" "$(awk -v a="$tot" -v b="$base" 'BEGIN { printf "%.2f", a / b }')" "$cpu" \
                "$cper" "$(awk -v a="$cper" -v b="$cbase" 'BEGIN { printf "%.2f", a / b }')"
        done
    done
    echo
    echo "where each rank's training thread spent the rounds (last pair; groups' CPU % of the"
    echo "wall time is the rank's utilization; waiting is for the other ranks' results, sends"
    echo "and the model broadcast; master is rank 0 adding the sums and stepping the model):"
    for r in 1 2; do
        echo "$r rank(s):"
        grep -o 'rank [0-9]*: .*' "$work/np$r-$reps.log" | sed 's/^/  /'
    done
    ;;
memory)
    syn=$work/catalog-100k.csv.gz
    [ -s "$syn" ] || "$sim" synth --data "$src/data/online-retail/online_retail_2010-12.csv.gz" \
        --scale 42 --items-scale 42 --out "$syn" >/dev/null
    printf '%-28s %-8s %-14s %-10s\n' mode cohort peak-RSS-MiB completed
    for spec in "groups 40" "groups 80" "engine 40"; do
        set -- $spec
        extra=(--group-size "$2")
        [ "$1" = engine ] && extra=(--stage-timeout 1200)
        /usr/bin/time -f '%M' -o "$work/mem.$1.$2" "$sim" run --data "$syn" --rounds 1 \
            --cohort "$2" --sweeps 1 --quiet --out "$work/mem-$1-$2" "${extra[@]}" \
            >"$work/mem-$1-$2.log" 2>&1 || true
        printf '%-28s %-8s %-14s %-10s\n' "$1" "$2" \
            "$(awk '{ printf "%.0f", $1 / 1024 }' "$work/mem.$1.$2")" \
            "$(grep -o '"rounds_completed": [0-9]*' "$work/mem-$1-$2/summary.json" 2>/dev/null |
               grep -o '[0-9]*$' || echo -)"
    done
    ;;
*)
    echo "usage: $0 BUILD_DIR throughput|memory" >&2
    exit 2
    ;;
esac
